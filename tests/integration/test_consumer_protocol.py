"""The consumer group protocol of KIP-848 (`group.protocol=consumer`) with
librdkafka: server-side assignment, incremental reconciliation, a member
leaving, commits carrying the member epoch, and a second group reading the
same records on its own."""

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

import clients
from conftest import EXTERNAL_SERVE_CMD

PARTITIONS = 6
MEMBERS = 3
RECORDS_PER_PARTITION = 10
SETTLE_TIMEOUT_S = 60.0
POLL_S = 0.05
# A short heartbeat interval so reconciliation steps take less than a
# second each; Kafka's default is 5 s.
HEARTBEAT_INTERVAL_MS = 500

BROKER_OVERRIDES = {
    "group.initial.rebalance.delay.ms": 0,
    "group.consumer.heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
}
if EXTERNAL_SERVE_CMD:
    # Kafka refuses to start with an interval under its floor (default 5 s),
    # which shoal does not have as a config.
    BROKER_OVERRIDES["group.consumer.min.heartbeat.interval.ms"] = HEARTBEAT_INTERVAL_MS


def group_consumer(bootstrap, group_id, **config):
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "group.protocol": "consumer",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "logger": clients.LIBRDKAFKA_LOG,
    }
    conf.update({k.replace("_", "."): v for k, v in config.items()})
    return Consumer(conf)


def produce(bootstrap, topic, start):
    """RECORDS_PER_PARTITION records per partition, values unique from `start`."""
    prod = clients.producer(bootstrap)
    log = clients.DeliveryLog()
    values = []
    for p in range(PARTITIONS):
        for i in range(RECORDS_PER_PARTITION):
            value = f"{start + p * RECORDS_PER_PARTITION + i}".encode()
            values.append(value)
            prod.produce(topic, value=value, partition=p, on_delivery=log)
            prod.poll(0)
    clients.flush(prod)
    assert log.errors == []
    return values


class Member:
    """A group consumer that commits every record it reads before the next."""

    def __init__(self, consumer):
        self.consumer = consumer
        self.seen = []

    def poll(self):
        msg = self.consumer.poll(POLL_S)
        if msg is None:
            return
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                return
            raise KafkaException(err)
        self.seen.append((msg.partition(), msg.offset(), msg.value()))
        self.consumer.commit(message=msg, asynchronous=False)

    def partitions(self):
        return {tp.partition for tp in self.consumer.assignment()}


def run_until(members, done, what):
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        for member in members:
            member.poll()
        if done():
            return
    owned = [sorted(member.partitions()) for member in members]
    got = sum(len(member.seen) for member in members)
    pytest.fail(f"timed out waiting for {what}: assignments {owned}, {got} records read")


def disjoint_and_complete(members, each):
    owned = [member.partitions() for member in members]
    union = set().union(*owned)
    return (
        union == set(range(PARTITIONS))
        and sum(len(p) for p in owned) == PARTITIONS
        and all(len(p) == each for p in owned)
    )


@pytest.mark.parametrize("assignor", ["uniform", "range"])
def test_three_members_split_reconcile_and_take_over(broker_factory, topic, assignor):
    broker = broker_factory(overrides=BROKER_OVERRIDES, shards=2)
    clients.create_topic(broker.bootstrap, topic, PARTITIONS)
    first_batch = produce(broker.bootstrap, topic, 0)
    group_id = f"{topic}-group"

    members = [
        Member(group_consumer(broker.bootstrap, group_id, group_remote_assignor=assignor))
        for _ in range(MEMBERS)
    ]
    for member in members:
        member.consumer.subscribe([topic])
    try:
        run_until(
            members,
            lambda: disjoint_and_complete(members, PARTITIONS // MEMBERS)
            and sum(len(m.seen) for m in members) == len(first_batch),
            "three disjoint assignments and the first batch",
        )

        leaving = members.pop(1)
        leaving.consumer.close()
        second_batch = produce(broker.bootstrap, topic, len(first_batch))
        run_until(
            members,
            lambda: disjoint_and_complete(members, PARTITIONS // len(members))
            and sum(len(m.seen) for m in members + [leaving]) == len(first_batch) + len(second_batch),
            "the two remaining members to own every partition and read the second batch",
        )
    finally:
        for member in members:
            member.consumer.close()

    seen = [record for member in members + [leaving] for record in member.seen]
    positions = [(p, offset) for p, offset, _ in seen]
    assert len(positions) == len(set(positions)), "a record was delivered twice"
    assert sorted(value for _, _, value in seen) == sorted(first_batch + second_batch)

    # The group committed everything it read.
    check = clients.consumer(broker.bootstrap, group_id=group_id)
    try:
        committed = check.committed(
            [TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=clients.REQUEST_TIMEOUT_S
        )
    finally:
        check.close()
    assert {tp.partition: tp.offset for tp in committed} == {
        p: 2 * RECORDS_PER_PARTITION for p in range(PARTITIONS)
    }

    # Another group reads every record again, on its own.
    other = Member(group_consumer(broker.bootstrap, f"{topic}-other"))
    other.consumer.subscribe([topic])
    try:
        run_until(
            [other],
            lambda: len(other.seen) == len(first_batch) + len(second_batch),
            "the second group to read everything",
        )
    finally:
        other.consumer.close()
    assert sorted(value for _, _, value in other.seen) == sorted(first_batch + second_batch)


def test_admin_sees_consumer_protocol_groups(broker_factory, topic):
    broker = broker_factory(overrides=BROKER_OVERRIDES, shards=2)
    clients.create_topic(broker.bootstrap, topic, PARTITIONS)
    group_id = f"{topic}-group"
    member = Member(group_consumer(broker.bootstrap, group_id, client_id="kip848-client"))
    member.consumer.subscribe([topic])
    try:
        run_until([member], lambda: len(member.partitions()) == PARTITIONS, "the whole assignment")
        admin = clients.admin(broker.bootstrap)
        listed = admin.list_consumer_groups(request_timeout=clients.REQUEST_TIMEOUT_S).result()
        ours = [g for g in listed.valid if g.group_id == group_id]
        assert len(ours) == 1
        assert str(ours[0].state).endswith("STABLE")
        assert str(ours[0].type).endswith("CONSUMER")
        described = admin.describe_consumer_groups([group_id], request_timeout=clients.REQUEST_TIMEOUT_S)[
            group_id
        ].result()
        assert str(described.type).endswith("CONSUMER")
        assert described.partition_assignor == "uniform"
        assert len(described.members) == 1
        assert described.members[0].client_id == "kip848-client"
        assigned = {tp.partition for tp in described.members[0].assignment.topic_partitions}
        assert assigned == set(range(PARTITIONS))
        assert described.authorized_operations is None
        asked = admin.describe_consumer_groups(
            [group_id], include_authorized_operations=True, request_timeout=clients.REQUEST_TIMEOUT_S
        )[group_id].result()
        assert clients.operation_names(asked.authorized_operations) == clients.GROUP_OPERATIONS
    finally:
        member.consumer.close()


def test_a_group_resumes_from_its_commits_after_a_broker_restart(broker_factory, topic):
    """Committed offsets are durable: after a restart a new member of the
    group reads on from where the group committed."""
    broker = broker_factory(overrides=BROKER_OVERRIDES, shards=2)
    clients.create_topic(broker.bootstrap, topic, PARTITIONS)
    group_id = f"{topic}-group"
    first_batch = produce(broker.bootstrap, topic, 0)
    before = Member(group_consumer(broker.bootstrap, group_id))
    before.consumer.subscribe([topic])
    try:
        run_until([before], lambda: len(before.seen) == len(first_batch), "the first batch")
    finally:
        # Clients close first, so the broker's port is not held by
        # connections it closed itself when it comes back.
        before.consumer.close()
    broker.restart()
    second_batch = produce(broker.bootstrap, topic, len(first_batch))
    after = Member(group_consumer(broker.bootstrap, group_id))
    after.consumer.subscribe([topic])
    try:
        run_until(
            [after],
            lambda: len(after.seen) >= len(second_batch) and len(after.partitions()) == PARTITIONS,
            "the second batch after the restart",
        )
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            after.poll()
    finally:
        after.consumer.close()
    assert sorted(value for _, _, value in before.seen) == sorted(first_batch)
    assert sorted(value for _, _, value in after.seen) == sorted(second_batch), "resumed elsewhere"


def test_membership_survives_a_broker_kill(broker_factory, topic):
    """Members, epochs and assignments are durable records: after `kill -9`
    and a restart the members carry on heartbeating with their epochs, and
    no partition is revoked or reassigned."""
    broker = broker_factory(overrides=BROKER_OVERRIDES, shards=2)
    clients.create_topic(broker.bootstrap, topic, PARTITIONS)
    group_id = f"{topic}-group"
    produce(broker.bootstrap, topic, 0)
    changes = []
    members = []
    for name in ["a", "b"]:
        member = Member(group_consumer(broker.bootstrap, group_id, client_id=f"durable-{name}"))
        member.consumer.subscribe(
            [topic],
            on_assign=lambda c, tps, name=name: changes.append((name, "assign", sorted(tp.partition for tp in tps))),
            on_revoke=lambda c, tps, name=name: changes.append((name, "revoke", sorted(tp.partition for tp in tps))),
            on_lost=lambda c, tps, name=name: changes.append((name, "lost", sorted(tp.partition for tp in tps))),
        )
        members.append(member)
    try:
        run_until(members, lambda: disjoint_and_complete(members, PARTITIONS // 2), "a stable split")
        before = [sorted(member.partitions()) for member in members]
        settled = len(changes)

        broker.kill9()
        broker.start()
        second_batch = produce(broker.bootstrap, topic, PARTITIONS * RECORDS_PER_PARTITION)
        run_until(
            members,
            lambda: sum(len(m.seen) for m in members) >= 2 * len(second_batch),
            "the records produced after the restart",
        )
        # A few more heartbeat intervals, to let a fencing show if there is one.
        deadline = time.monotonic() + 4 * HEARTBEAT_INTERVAL_MS / 1000
        while time.monotonic() < deadline:
            for member in members:
                member.poll()
        assert changes[settled:] == [], "the restart moved partitions"
        assert [sorted(member.partitions()) for member in members] == before
        admin = clients.admin(broker.bootstrap)
        described = admin.describe_consumer_groups([group_id], request_timeout=clients.REQUEST_TIMEOUT_S)[
            group_id
        ].result(timeout=clients.REQUEST_TIMEOUT_S)
        assert sorted(m.client_id for m in described.members) == ["durable-a", "durable-b"]
    finally:
        for member in members:
            member.consumer.close()
