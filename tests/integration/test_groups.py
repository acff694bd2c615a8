"""Consumer groups with real clients: librdkafka (confluent-kafka) members
sharing partitions and rebalancing, kafka-python and aiokafka committing and
resuming across consumer and broker restarts, session expiry, static
membership, the AdminClient group APIs and `shoal group`.

Every wait is bounded in time and every loop in count. Brokers run with
`group.initial.rebalance.delay.ms=0` so a group's first rebalance does not
wait three seconds for more members."""

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest
from aiokafka import AIOKafkaConsumer
from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from kafka import KafkaConsumer

import clients
from test_cli import shoal

PARTITIONS = 6
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 500
POLL_S = 0.1
GROUP_WAIT_S = 40.0
RETRIABLE_COMMIT_ERRORS = (KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS)
# A member stopped at t=0 is gone by SESSION_TIMEOUT_MS; the others then
# need a heartbeat (HEARTBEAT_INTERVAL_MS) to learn of the rebalance and a
# join/sync round trip. This is the slack allowed on top of the timeout.
TAKEOVER_SLACK_S = 5.0


@pytest.fixture
def group_broker(broker_factory):
    return broker_factory(overrides={"group.initial.rebalance.delay.ms": 0}, shards=2)


@pytest.fixture
def group(topic):
    return f"g-{topic}"


def produce(bootstrap, topic, per_partition, start=0, partitions=PARTITIONS):
    """`per_partition` records into each partition, values `p{p}-{i}`."""
    prod = clients.producer(bootstrap)
    log = clients.DeliveryLog()
    for i in range(start, start + per_partition):
        for p in range(partitions):
            prod.produce(topic, value=f"p{p}-{i}".encode(), partition=p, on_delivery=log)
        prod.poll(0)
    clients.flush(prod)
    assert log.errors == []
    return log.acked


class Member:
    """A confluent-kafka group member that records its assignments and every
    record it sees, committing each one synchronously before the next."""

    def __init__(self, bootstrap, group, topic, name, **config):
        conf = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": name,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
            "logger": clients.LIBRDKAFKA_LOG,
        }
        conf.update(config)
        self.name = name
        self.consumer = Consumer(conf)
        self.assign_calls = 0
        self.revoke_calls = 0
        self.records = []
        # Commits that failed with a retriable error, by partition.
        self.pending = {}
        self.commit_retries = 0
        self.consumer.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_assign(self, consumer, partitions):
        self.assign_calls += 1

    def _on_revoke(self, consumer, partitions):
        self.revoke_calls += 1

    def assignment(self):
        return sorted(tp.partition for tp in self.consumer.assignment())

    def poll(self, commit=True):
        self._retry_pending()
        msg = self.consumer.poll(POLL_S)
        if msg is None:
            return
        if msg.error() is not None:
            raise KafkaException(msg.error())
        self.records.append((msg.partition(), msg.offset(), msg.value()))
        if commit:
            self._commit(TopicPartition(msg.topic(), msg.partition(), msg.offset() + 1))

    def _commit(self, tp):
        try:
            self.consumer.commit(offsets=[tp], asynchronous=False)
            self.pending.pop(tp.partition, None)
        except KafkaException as e:
            # A commit racing a rebalance that keeps the partition here (the
            # cooperative protocol) fails once with the old generation; a
            # user's consumer commits again, as this one does on its next poll.
            if e.args[0].code() not in RETRIABLE_COMMIT_ERRORS:
                raise
            self.pending[tp.partition] = tp
            self.commit_retries += 1

    def _retry_pending(self):
        owned = set(self.assignment())
        for partition, tp in list(self.pending.items()):
            if partition in owned:
                self._commit(tp)

    def close(self):
        self.consumer.close()


def poll_until(members, predicate, what, timeout_s=GROUP_WAIT_S, commit=True):
    deadline = time.monotonic() + timeout_s
    for _ in range(int(timeout_s / POLL_S) + 1):
        for m in members:
            m.poll(commit=commit)
        if predicate():
            return
        if time.monotonic() >= deadline:
            break
    states = {m.name: m.assignment() for m in members}
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}; assignments {states}")


def covers_disjointly(members, partitions=PARTITIONS):
    owned = [p for m in members for p in m.assignment()]
    return sorted(owned) == list(range(partitions)) and all(m.assignment() for m in members)


def delivered(members):
    return [(p, o) for m in members for (p, o, _) in m.records]


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_three_members_share_rebalance_and_deliver_once(group_broker, topic, group, strategy):
    b = group_broker.bootstrap
    clients.create_topic(b, topic, PARTITIONS)
    first = produce(b, topic, 20)
    members = [Member(b, group, topic, f"m{i}", **{"partition.assignment.strategy": strategy}) for i in range(3)]
    try:
        poll_until(members, lambda: covers_disjointly(members), "3 members to split 6 partitions")
        assert sorted(len(m.assignment()) for m in members) == [2, 2, 2]

        leaving = members.pop()
        leaving.close()
        poll_until(members, lambda: covers_disjointly(members), "2 members to take over every partition")

        second = produce(b, topic, 20, start=20)
        total = len(first) + len(second)
        everyone = members + [leaving]
        poll_until(members, lambda: len(delivered(everyone)) >= total, f"{total} records")
        for _ in range(10):
            for m in members:
                m.poll()
        got = delivered(everyone)
        assert all(not m.pending for m in members), [m.pending for m in members]
        assert sorted(got) == sorted((p, o) for (p, o, _, _) in first + second), "each record exactly once"
        assert len(got) == len(set(got)) == total
    finally:
        for m in members:
            m.close()

    # A second group reads everything on its own and leaves the first
    # group's offsets alone.
    other = Member(b, f"{group}-other", topic, "other")
    try:
        poll_until([other], lambda: len(other.records) >= total, "the second group to read everything")
        assert sorted((p, o) for (p, o, _) in other.records) == sorted(got)
    finally:
        other.close()
    check = clients.consumer(b, {"group.id": group})
    try:
        committed = check.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=15)
        assert {tp.partition: tp.offset for tp in committed} == {p: 40 for p in range(PARTITIONS)}
    finally:
        check.close()


def committed_offsets(bootstrap, group, topic, partitions=PARTITIONS):
    got = clients.committed(bootstrap, group, topic, partitions)
    return {p: offset for p, offset in got.items() if offset != OFFSET_INVALID}


def python_group_member(bootstrap, group):
    """The settings of a kafka-python or aiokafka group member (the two
    take the same names): from the start, committing by hand."""
    return {
        "bootstrap_servers": bootstrap,
        "group_id": group,
        "auto_offset_reset": "earliest",
        "enable_auto_commit": False,
        "session_timeout_ms": SESSION_TIMEOUT_MS,
        "heartbeat_interval_ms": HEARTBEAT_INTERVAL_MS,
    }


def kafka_python_consume(bootstrap, group, topic, count, timeout_s=GROUP_WAIT_S):
    """Joins `group`, reads `count` records, commits, leaves; returns them."""
    consumer = KafkaConsumer(topic, **python_group_member(bootstrap, group))
    got = []
    try:
        deadline = time.monotonic() + timeout_s
        for _ in range(int(timeout_s / POLL_S) + 1):
            for records in consumer.poll(timeout_ms=int(POLL_S * 1000), max_records=count - len(got)).values():
                got.extend((r.partition, r.offset, r.value) for r in records)
            if len(got) >= count or time.monotonic() >= deadline:
                break
        consumer.commit()
    finally:
        consumer.close()
    return got


def aiokafka_consume(bootstrap, group, topic, count, timeout_s=GROUP_WAIT_S):
    async def run():
        consumer = AIOKafkaConsumer(topic, **python_group_member(bootstrap, group))
        await consumer.start()
        got = []
        try:
            deadline = time.monotonic() + timeout_s
            for _ in range(int(timeout_s / POLL_S) + 1):
                batches = await consumer.getmany(timeout_ms=int(POLL_S * 1000), max_records=count - len(got))
                for records in batches.values():
                    got.extend((r.partition, r.offset, r.value) for r in records)
                if len(got) >= count or time.monotonic() >= deadline:
                    break
            await consumer.commit()
        finally:
            await consumer.stop()
        return got

    return asyncio.run(run())


@pytest.mark.parametrize("consume", [kafka_python_consume, aiokafka_consume], ids=["kafka-python", "aiokafka"])
def test_group_consumer_resumes_after_restarts_and_kill9(group_broker, topic, group, consume):
    b = group_broker.bootstrap
    partitions = 2
    clients.create_topic(b, topic, partitions)
    acked = produce(b, topic, 30, partitions=partitions)
    everything = sorted((p, o) for (p, o, _, _) in acked)

    first = consume(b, group, topic, 25)
    assert len(first) == 25
    second = consume(b, group, topic, len(acked) - 25)
    seen = sorted((p, o) for (p, o, _) in first + second)
    assert seen == everything, "a restarted consumer resumes at its committed offsets"
    assert committed_offsets(b, group, topic, partitions) == {0: 30, 1: 30}

    group_broker.kill9()
    group_broker.start()
    assert committed_offsets(b, group, topic, partitions) == {0: 30, 1: 30}
    more = produce(b, topic, 3, start=30, partitions=partitions)
    third = consume(b, group, topic, len(more))
    assert sorted((p, o) for (p, o, _) in third) == sorted((p, o) for (p, o, _, _) in more)
    assert committed_offsets(b, group, topic, partitions) == {0: 33, 1: 33}


STOPPABLE_MEMBER = r"""
import sys, time
from confluent_kafka import Consumer
bootstrap, group, topic, session_ms, heartbeat_ms = sys.argv[1:]
def on_assign(consumer, partitions):
    print("assigned", ",".join(str(tp.partition) for tp in partitions), flush=True)
c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": "stoppable",
              "session.timeout.ms": int(session_ms), "heartbeat.interval.ms": int(heartbeat_ms),
              "enable.auto.commit": False, "auto.offset.reset": "earliest"})
c.subscribe([topic], on_assign=on_assign)
deadline = time.monotonic() + 110
while time.monotonic() < deadline:
    c.poll(0.1)
"""


def test_member_that_stops_heartbeating_is_expired(group_broker, topic, group, tmp_root):
    b = group_broker.bootstrap
    clients.create_topic(b, topic, PARTITIONS)
    out_path = os.path.join(tmp_root, "stoppable.out")
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", STOPPABLE_MEMBER, b, group, topic, str(SESSION_TIMEOUT_MS), str(HEARTBEAT_INTERVAL_MS)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    members = []
    try:
        members = [Member(b, group, topic, f"m{i}") for i in range(2)]

        def stoppable_partitions():
            lines = [line for line in clients_read(out_path).splitlines() if line.startswith("assigned")]
            return [int(p) for p in lines[-1].split(" ", 1)[1].split(",") if p] if lines else []

        def three_way_split():
            theirs = stoppable_partitions()
            ours = [p for m in members for p in m.assignment()]
            return theirs and all(m.assignment() for m in members) and sorted(theirs + ours) == list(range(PARTITIONS))

        poll_until(members, three_way_split, "3 members (one in a subprocess) to split the partitions")
        proc.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        poll_until(members, lambda: covers_disjointly(members), "the others to take over the stopped member's partitions")
        took_s = time.monotonic() - stopped_at
        assert took_s <= SESSION_TIMEOUT_MS / 1000 + TAKEOVER_SLACK_S, f"takeover after {took_s:.1f}s"
        admin = clients.admin(b)
        described = admin.describe_consumer_groups([group])[group].result(timeout=15)
        assert sorted(m.client_id for m in described.members) == ["m0", "m1"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=15)
        for m in members:
            m.close()


def clients_read(path):
    with open(path, "r", errors="replace") as f:
        return f.read()


def test_static_member_restart_keeps_partitions_without_rebalance(group_broker, topic, group):
    b = group_broker.bootstrap
    clients.create_topic(b, topic, PARTITIONS)

    def static(i):
        return Member(b, group, topic, f"s{i}", **{"group.instance.id": f"instance-{i}"})

    members = [static(i) for i in range(3)]
    try:
        poll_until(members, lambda: covers_disjointly(members), "3 static members to split the partitions")
        # Let the group settle: no callback for a while.
        for _ in range(20):
            for m in members:
                m.poll()
        before = {m.name: m.assignment() for m in members}
        calls = [(m.assign_calls, m.revoke_calls) for m in members[:2]]

        restarting = members.pop()
        restarting.close()
        back = static(2)
        members.append(back)
        poll_until(members, lambda: back.assignment() == before["s2"], "the restarted member to get its partitions back")
        # Give a rebalance, if there were one, time to reach the others.
        settle_until = time.monotonic() + 3 * HEARTBEAT_INTERVAL_MS / 1000
        for _ in range(100):
            for m in members:
                m.poll()
            if time.monotonic() >= settle_until:
                break
        assert [(m.assign_calls, m.revoke_calls) for m in members[:2]] == calls, "others saw a rebalance"
        assert {m.name: m.assignment() for m in members} == before
        assert back.assign_calls == 1
    finally:
        for m in members:
            m.close()


def test_admin_client_group_apis(group_broker, topic, group):
    b = group_broker.bootstrap
    clients.create_topic(b, topic, PARTITIONS)
    produce(b, topic, 10)
    admin = clients.admin(b)
    member = Member(b, group, topic, "solo")
    try:
        poll_until([member], lambda: len(member.records) >= 10 * PARTITIONS, "the member to read everything")

        listed = admin.list_consumer_groups(request_timeout=15).result(timeout=20)
        assert group in [g.group_id for g in listed.valid]

        described = admin.describe_consumer_groups([group])[group].result(timeout=20)
        assert described.group_id == group
        assert str(described.state).endswith("STABLE")
        assert described.partition_assignor == "range"
        assert [m.client_id for m in described.members] == ["solo"]
        assigned = sorted(tp.partition for tp in described.members[0].assignment.topic_partitions)
        assert assigned == list(range(PARTITIONS))
        assert described.authorized_operations is None
        asked = admin.describe_consumer_groups([group], include_authorized_operations=True)[group].result(timeout=20)
        assert clients.operation_names(asked.authorized_operations) == clients.GROUP_OPERATIONS

        # Offsets of a group with a member can be read but not altered.
        request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(PARTITIONS)])
        offsets = admin.list_consumer_group_offsets([request])[group].result(timeout=20)
        assert {tp.partition: tp.offset for tp in offsets.topic_partitions} == {p: 10 for p in range(PARTITIONS)}
        alter = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 3)])
        refused_alter = admin.alter_consumer_group_offsets([alter])[group].result(timeout=20)
        assert refused_alter.topic_partitions[0].error.code() == KafkaError.UNKNOWN_MEMBER_ID
        with pytest.raises(KafkaException) as refused:
            admin.delete_consumer_groups([group], request_timeout=15)[group].result(timeout=20)
        assert refused.value.args[0].code() == KafkaError.NON_EMPTY_GROUP
    finally:
        member.close()

    altered = admin.alter_consumer_group_offsets([alter])[group].result(timeout=20)
    assert [(tp.partition, tp.offset, tp.error) for tp in altered.topic_partitions] == [(0, 3, None)]
    offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=20)
    assert {tp.partition: tp.offset for tp in offsets.topic_partitions} == {0: 3, **{p: 10 for p in range(1, PARTITIONS)}}
    described = admin.describe_consumer_groups([group])[group].result(timeout=20)
    assert str(described.state).endswith("EMPTY") and described.members == []

    admin.delete_consumer_groups([group], request_timeout=15)[group].result(timeout=20)
    listed = admin.list_consumer_groups(request_timeout=15).result(timeout=20)
    assert group not in [g.group_id for g in listed.valid]
    assert committed_offsets(b, group, topic) == {}


def tables(text):
    """The whitespace-split rows of each blank-line-separated table."""
    blocks = [block for block in text.split("\n\n") if block.strip()]
    return [[line.split() for line in block.strip("\n").splitlines()] for block in blocks]


OFFSETS_HEADER = ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"]


@pytest.mark.shoal_only
def test_cli_list_describe_reset_delete(group_broker, topic, group):
    b = group_broker.bootstrap
    partitions = 3
    clients.create_topic(b, topic, partitions)
    produce(b, topic, 10, partitions=partitions)
    member = Member(b, group, topic, "cli-member")
    try:
        poll_until([member], lambda: len(member.records) >= 7, "some records", commit=False)
        member.consumer.commit(
            offsets=[TopicPartition(topic, 0, 4), TopicPartition(topic, 1, 10)], asynchronous=False
        )
        assert group in shoal("group", "list", "--bootstrap", b).stdout.decode().splitlines()

        active = shoal("group", "describe", group, "--bootstrap", b)
        assert active.stderr.decode().strip() == ""
        offsets, state, members = tables(active.stdout.decode())
        assert offsets[0] == OFFSETS_HEADER
        rows = {int(r[2]): r for r in offsets[1:]}
        assert sorted(rows) == [0, 1, 2]
        assert rows[0][:6] == [group, topic, "0", "4", "10", "6"]
        assert rows[1][:6] == [group, topic, "1", "10", "10", "0"]
        assert rows[2][:6] == [group, topic, "2", "-", "10", "-"]
        assert all(r[6].startswith("cli-member") and r[7] == "/127.0.0.1" and r[8] == "cli-member" for r in rows.values())
        assert state[0] == ["GROUP", "COORDINATOR", "(ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"]
        assert state[1] == [group, b, "(1)", "range", "Stable", "1"]
        assert members[0] == ["GROUP", "CONSUMER-ID", "GROUP-INSTANCE-ID", "HOST", "CLIENT-ID", "#PARTITIONS", "ASSIGNMENT"]
        assert members[1][2:] == ["-", "/127.0.0.1", "cli-member", "3", f"{topic}(0,1,2)"]

        refused = shoal("group", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute", "--bootstrap", b, check=False)
        assert refused.returncode == 1
        assert (
            f"Assignments can only be reset if the group '{group}' is inactive, but the current state is Stable."
            in refused.stderr.decode()
        )
    finally:
        member.close()

    empty = shoal("group", "describe", group, "--bootstrap", b)
    assert empty.stderr.decode().strip() == f"Consumer group '{group}' has no active members."
    offsets, state = tables(empty.stdout.decode())
    assert [r[:9] for r in offsets[1:]] == [
        [group, topic, "0", "4", "10", "6", "-", "-", "-"],
        [group, topic, "1", "10", "10", "0", "-", "-", "-"],
    ]
    assert state[1][4:] == ["Empty", "0"]

    def reset(*how, only=None, execute=False):
        spec = topic if only is None else f"{topic}:{only}"
        args = ["group", "reset-offsets", group, "--topic", spec, *how, "--bootstrap", b]
        out = shoal(*args, *(["--execute"] if execute else [])).stdout.decode()
        (table,) = tables(out)
        assert table[0] == ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]
        assert all(r[:2] == [group, topic] for r in table[1:])
        return {int(r[2]): int(r[3]) for r in table[1:]}

    assert reset("--to-earliest") == {0: 0, 1: 0, 2: 0}
    assert committed_offsets(b, group, topic, partitions) == {0: 4, 1: 10}, "a dry run changes nothing"
    assert reset("--shift-by", "-3", only="0,1") == {0: 1, 1: 7}
    assert reset("--shift-by", "-30", only="0,1") == {0: 0, 1: 0}
    assert reset("--shift-by", "30", only="1") == {1: 10}
    assert reset("--to-offset", "25") == {0: 10, 1: 10, 2: 10}
    assert reset("--to-latest") == {0: 10, 1: 10, 2: 10}
    assert reset("--to-datetime", "2000-01-01T00:00:00.000Z") == {0: 0, 1: 0, 2: 0}
    assert reset("--to-datetime", "2999-01-01T00:00:00+01:00") == {0: 10, 1: 10, 2: 10}
    no_commit = shoal("group", "reset-offsets", group, "--topic", f"{topic}:2", "--shift-by", "1", "--bootstrap", b, check=False)
    assert no_commit.returncode == 1 and "no current committed offset" in no_commit.stderr.decode()

    assert reset("--shift-by", "-2", only="0,1", execute=True) == {0: 2, 1: 8}
    assert committed_offsets(b, group, topic, partitions) == {0: 2, 1: 8}
    assert reset("--to-offset", "5", execute=True) == {0: 5, 1: 5, 2: 5}
    assert committed_offsets(b, group, topic, partitions) == {0: 5, 1: 5, 2: 5}
    offsets, _ = tables(shoal("group", "describe", group, "--bootstrap", b).stdout.decode())
    assert [r[3:6] for r in offsets[1:]] == [["5", "10", "5"]] * 3

    deleted = shoal("group", "delete", group, "--bootstrap", b)
    assert deleted.stdout.decode() == f"Deletion of requested consumer groups ('{group}') was successful.\n"
    assert group not in shoal("group", "list", "--bootstrap", b).stdout.decode().splitlines()
    gone = shoal("group", "describe", group, "--bootstrap", b, check=False)
    assert gone.returncode == 1
    assert f"Consumer group '{group}' does not exist." in gone.stderr.decode()
    again = shoal("group", "delete", group, "--bootstrap", b, check=False)
    assert again.returncode == 1
    assert f"* Group '{group}' could not be deleted due to: GROUP_ID_NOT_FOUND" in again.stdout.decode()


def test_live_member_survives_broker_kill9(group_broker, topic, group):
    """A member consuming while the broker is killed and restarted carries
    on: it reads what is produced afterwards exactly once, from its
    committed offsets, and keeps committing."""
    b = group_broker.bootstrap
    partitions = 2
    clients.create_topic(b, topic, partitions)
    first = produce(b, topic, 10, partitions=partitions)
    member = Member(b, group, topic, "survivor")
    try:
        poll_until([member], lambda: len(member.records) >= len(first), "the first records")
        group_broker.kill9()
        group_broker.start()
        second = produce(b, topic, 10, start=10, partitions=partitions)
        total = len(first) + len(second)
        poll_until([member], lambda: len(member.records) >= total and not member.pending, f"{total} records")
        got = [(p, o) for (p, o, _) in member.records]
        assert sorted(got) == sorted((p, o) for (p, o, _, _) in first + second)
    finally:
        member.close()
    assert committed_offsets(b, group, topic, partitions) == {0: 20, 1: 20}
