"""A follower that comes back to what its leader no longer has (issue 15):
three combined shoal nodes in network namespaces (tests/cluster), a topic of
replication factor 3 with min.insync.replicas=2, one follower stopped while
the leader moves on.

- Retention on the leader passes the stopped follower's log end: the
  follower, out of range, asks the leader's log start and end (ListOffsets as
  a replica), starts its log over at the leader's start, copies the rest and
  is back in the ISR, its files holding exactly the leader's records from
  there (Kafka's `truncateFullyAndStartAt`).
- The leader of a compacted topic cleans while the follower is down: the
  follower copies the batches with their offset gaps, verbatim, and is back
  in the ISR with the leader's values at the leader's offsets."""

import os
import sys

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cluster import Cluster, checker, faults, segments  # noqa: E402
from cluster.waiting import SHOAL_NODE, wait_until  # noqa: E402

# Three nodes to start, a node restarted and caught up, a cleaner's passes.
TEST_TIMEOUT_S = 300
pytestmark = [pytest.mark.shoal_only, pytest.mark.timeout(TEST_TIMEOUT_S)]

NODES = 3
REPLICATION = 3
# Registration and elections on a loaded two-core machine.
SETTLE_WAIT_S = 60.0
# A restarted node's registration, its catch-up and the ISR expansion.
CATCH_UP_WAIT_S = 120.0
# The leader's cleaner, woken every 100 ms, on segments of 1 KiB.
CLEAN_WAIT_S = 60.0
FLUSH_S = 60.0
ADMIN_TIMEOUT_S = 15.0
CLEANER_BACKOFF_MS = 100
SEGMENT_BYTES = 1024
KEYS = 20
ROUNDS = 8
FILLER_RECORDS = 100
# Retention checked every 200 ms; segments older than 1 s go.
RETENTION_CHECK_MS = 200
SHORT_RETENTION_MS = 1000
KEEP_FOREVER = -1
RETENTION_WAIT_S = 30.0


@pytest.fixture(scope="module")
def cluster():
    lag = faults.shoal_knows("replica.lag.time.max.ms")
    command = (faults.node_command(SHOAL_NODE, lag=lag) + f" log.cleaner.backoff.ms={CLEANER_BACKOFF_MS}"
               + f" log.retention.check.interval.ms={RETENTION_CHECK_MS}")
    with Cluster(NODES, command) as made:
        wait_until(lambda: checker.quietly(lambda: len(checker.live_brokers(bootstrap(made))) == NODES),
                   SETTLE_WAIT_S, "every broker to register")
        yield made


def bootstrap(cluster):
    return ",".join(node.bootstrap for node in cluster.nodes if node.running)


def create(cluster, topic, config):
    client = checker.admin(bootstrap(cluster))
    config = {"min.insync.replicas": str(checker.MIN_INSYNC_REPLICAS), **config}
    futures = client.create_topics([NewTopic(topic, 1, REPLICATION, config=config)],
                                   request_timeout=ADMIN_TIMEOUT_S)
    futures[topic].result(timeout=ADMIN_TIMEOUT_S)
    wait_until(lambda: checker.quietly(lambda: checker.in_sync(bootstrap(cluster), topic, 1)),
               SETTLE_WAIT_S, f"{topic} to be in sync")


def produce(cluster, topic, records, batch_each=False):
    """Writes (key, value) records to partition 0 with acks=all, each in a
    batch of its own if `batch_each`; every one acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap(cluster), "acks": "all",
                         "enable.idempotence": True, "linger.ms": 5, "logger": checker.LIBRDKAFKA_LOG})
    errors = []
    for key, value in records:
        producer.produce(topic, key=key, value=value, partition=0,
                         on_delivery=lambda err, _msg: err and errors.append(err))
        producer.poll(0)
        if batch_each:
            assert producer.flush(FLUSH_S) == 0, "a record still in flight"
    assert producer.flush(FLUSH_S) == 0, "records still in flight"
    assert errors == []


def stop_a_follower(cluster, topic):
    """Stops (cleanly) a replica that neither leads the partition nor the
    quorum; returns its node index and the leader's."""
    leader_id, replicas, _isr = checker.partition_states(bootstrap(cluster), topic)[0]
    index_of = {node.node_id: node.index for node in cluster.nodes}
    victim = next(index_of[r] for r in replicas if r != leader_id)
    cluster.stop(victim)
    return victim, index_of[leader_id]


def replica_log(cluster, index, topic):
    return segments.read_log(segments.partition_dirs(cluster.nodes[index].data_dir, topic)[0])


def rejoin(cluster, victim, topic, leader):
    """Restarts `victim` and waits until it is in the ISR again with the
    leader's log end; its log and the leader's."""
    cluster.restart(victim)
    wait_until(lambda: checker.quietly(lambda: checker.in_sync(bootstrap(cluster), topic, 1)),
               CATCH_UP_WAIT_S, f"node {victim} back in the ISR of {topic}")

    def caught_up():
        logs = replica_log(cluster, victim, topic), replica_log(cluster, leader, topic)
        return logs if logs[0].end_offset == logs[1].end_offset else None

    return wait_until(caught_up, CATCH_UP_WAIT_S, f"node {victim} to reach the leader's log end")


def set_retention(cluster, topic, retention_ms):
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", str(retention_ms), incremental_operation=AlterConfigOpType.SET)])
    client = checker.admin(bootstrap(cluster))  # alive until the answer is in
    futures = client.incremental_alter_configs([resource])
    for future in futures.values():
        future.result(timeout=ADMIN_TIMEOUT_S)


def log_start(cluster, topic):
    consumer = Consumer({"bootstrap.servers": bootstrap(cluster), "group.id": "log-start",
                         "logger": checker.LIBRDKAFKA_LOG})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=ADMIN_TIMEOUT_S)[0]
    finally:
        consumer.close()


def test_a_follower_behind_the_leaders_log_start_starts_over_there_and_rejoins(cluster):
    topic = "behind-log-start"
    create(cluster, topic, {"internal.segment.bytes": str(SEGMENT_BYTES)})
    produce(cluster, topic, [(b"k", b"before-%d" % i) for i in range(50)])
    victim, leader = stop_a_follower(cluster, topic)
    # One batch, and one segment, per round: retention can pass offset 50.
    for round_ in range(5):
        produce(cluster, topic, [(b"k", b"missed-%d-%d" % (round_, i)) for i in range(10)])
    set_retention(cluster, topic, SHORT_RETENTION_MS)
    start = wait_until(lambda: checker.quietly(lambda: (lambda s: s if s > 50 else None)(log_start(cluster, topic))),
                       RETENTION_WAIT_S, "the leader's retention to pass the stopped follower's end")
    set_retention(cluster, topic, KEEP_FOREVER)
    produce(cluster, topic, [(b"k", b"after-%d" % i) for i in range(20)])

    follower, leader_log = rejoin(cluster, victim, topic, leader)
    assert follower.stopped is None, follower.stopped
    values = follower.values()
    assert min(values) >= start, sorted(values)[:5]
    assert values == leader_log.values()
    assert values[119] == b"after-19"


def test_a_follower_copies_a_compacted_leaders_offset_gaps(cluster):
    topic = "compacted-gaps"
    create(cluster, topic, {"cleanup.policy": "compact", "internal.segment.bytes": str(SEGMENT_BYTES),
                            "min.cleanable.dirty.ratio": "0.01"})
    victim, leader = stop_a_follower(cluster, topic)
    latest = {}
    for round_ in range(ROUNDS):
        records = [(b"key-%02d" % i, b"%d-%d" % (i, round_)) for i in range(KEYS)]
        # A batch a record: the cleaner drops whole batches, leaving gaps
        # between those it keeps.
        produce(cluster, topic, records, batch_each=True)
        latest.update(records)
    # Filler rolls the keys' segments out of the active one.
    produce(cluster, topic, [(b"filler", b"%040d" % n) for n in range(FILLER_RECORDS)])

    def gaps(log):
        ends = [(b.base_offset, b.last_offset) for b in log.batches]
        return any(base > last + 1 for (_, last), (base, _) in zip(ends, ends[1:]))

    wait_until(lambda: gaps(replica_log(cluster, leader, topic)), CLEAN_WAIT_S,
               "the leader's cleaner to leave offset gaps")

    follower, leader_log = rejoin(cluster, victim, topic, leader)
    assert follower.stopped is None, follower.stopped
    assert gaps(follower)
    # Both cleaners may run on: no offset holds two values, and both keep
    # every key's latest value.
    ours, theirs = follower.values(), leader_log.values()
    assert all(ours[o] == theirs[o] for o in set(ours) & set(theirs))
    for log in (follower, leader_log):
        kept = {}
        for batch in log.batches:
            for _offset, key, value in batch.records:
                kept[key] = value
        assert {k: kept.get(k) for k in latest} == latest
