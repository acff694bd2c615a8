"""A whole cluster stopped and started again keeps everything: three
combined voters (the cluster harness, tests/cluster/), two topics (one with
a `retention.ms` override), records in every partition and a consumer
group's committed offsets, made once every broker is unfenced, so that
`__consumer_offsets` has three replicas; then every node is stopped at
once, by SIGTERM or by kill -9, and started again.

After the restart the topics and their configs are read through the new
quorum leader, the records and the offsets through the node that made
them. The group's coordinator is wherever its `__consumer_offsets`
partition's leader was elected: it loads the partition from its log to
the end, not to a high watermark that trails until the followers fetch
again (issue 15), so the offsets are all there."""

import os
import signal
import sys
import time

import pytest
from confluent_kafka import TopicPartition

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import clients  # noqa: E402
from cluster import Cluster, checker  # noqa: E402
from cluster.waiting import SHOAL_NODE, wait_until  # noqa: E402
from cluster.quorum import settled_leader  # noqa: E402
from records import make_records  # noqa: E402

pytestmark = pytest.mark.shoal_only

NODES = 3
# An election on a loaded two-core machine (Kafka's election timeout is 1 s).
ELECTION_WAIT_S = 30.0
# A node closes its connections and its logs within shoal's 10 s drain.
STOP_TIMEOUT_S = 30.0
TOPICS = {"restart-configured": 3, "restart-plain": 2}
CONFIGURED = {"retention.ms": "7654321"}
PER_PARTITION = 40
GROUP = "restart-group"
# The group reads everything, then commits a little less in each partition,
# so that the offsets kept are told apart from the end of the log.
COMMIT_SHORT_BY = 5
# Joining a group waits out the coordinator's initial rebalance delay.
GROUP_WAIT_S = 60.0
# Every node's registration on a loaded machine (Kafka's heartbeat is 2 s).
REGISTER_WAIT_S = 60.0
POLL_TIMEOUT_S = 0.5


def make_data(bootstrap):
    """Creates the topics, produces, and commits the group's offsets, all
    through `bootstrap`; returns ({topic: records by partition}, {(topic,
    partition): committed offset})."""
    data = {}
    for name, partitions in TOPICS.items():
        config = CONFIGURED if name == "restart-configured" else None
        clients.create_topic(bootstrap, name, partitions, config=config)
        data[name] = make_records(seed=name, partitions=partitions, per_partition=PER_PARTITION)
        clients.produce_records(bootstrap, name, data[name])
    offsets = commit_group_offsets(bootstrap)
    return data, offsets


def commit_group_offsets(bootstrap):
    """A group member subscribed to both topics reads every record, then
    commits each partition COMMIT_SHORT_BY short of its end."""
    consumer = clients.consumer(bootstrap, group_id=GROUP, auto_offset_reset="earliest",
                                enable_partition_eof=False)
    wanted = {(name, p) for name, partitions in TOPICS.items() for p in range(partitions)}
    seen = {}
    try:
        consumer.subscribe(list(TOPICS))
        deadline = time.monotonic() + GROUP_WAIT_S
        while set(seen) != wanted or min(seen.values()) < PER_PARTITION:
            assert time.monotonic() < deadline, f"group read {seen} after {GROUP_WAIT_S}s"
            for msg in consumer.consume(num_messages=500, timeout=POLL_TIMEOUT_S):
                assert msg.error() is None, msg.error()
                key = (msg.topic(), msg.partition())
                seen[key] = seen.get(key, 0) + 1
        offsets = {key: PER_PARTITION - COMMIT_SHORT_BY for key in wanted}
        consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
    finally:
        consumer.close()
    return offsets


def stop_all(cluster, kill):
    """Every node stopped at once: kill -9, or SIGTERM and a clean exit."""
    if kill:
        for i in range(NODES):
            cluster.kill9(i)
        return
    for node in cluster.nodes:
        node.proc.send_signal(signal.SIGTERM)
    for i in range(NODES):
        assert cluster.stop(i, timeout_s=STOP_TIMEOUT_S) == 0, cluster.log_tails()


def start_all(cluster):
    for i in range(NODES):
        cluster.restart(i, wait=False)
    for i in range(NODES):
        cluster.wait_ready(i)


def assert_topics_and_configs(bootstrap):
    for name, partitions in TOPICS.items():
        clients.wait_for_partitions(bootstrap, name, partitions)
    configs = clients.describe_topic_configs(bootstrap, "restart-configured")
    assert configs["retention.ms"].value == CONFIGURED["retention.ms"]
    assert not configs["retention.ms"].is_default
    assert configs["retention.ms"].value != clients.describe_topic_configs(bootstrap, "restart-plain")[
        "retention.ms"].value


def assert_records_and_offsets(bootstrap, data, offsets):
    for name, records in data.items():
        clients.assert_read_back(bootstrap, name, records)
    for name, partitions in TOPICS.items():
        got = clients.committed(bootstrap, GROUP, name, partitions)
        assert got == {p: offsets[(name, p)] for p in range(partitions)}, (name, got)


def restart_keeps_everything(kill):
    with Cluster(NODES, SHOAL_NODE) as cluster:
        leader, before = settled_leader(cluster, ELECTION_WAIT_S)
        holder = cluster.nodes[leader]
        wait_until(lambda: len(checker.live_brokers(holder.bootstrap)) == NODES, REGISTER_WAIT_S,
                   "every broker unfenced")
        data, offsets = make_data(holder.bootstrap)
        replicas = checker.partition_states(holder.bootstrap, "__consumer_offsets")
        assert {len(r) for _, r, _ in replicas.values()} == {NODES}, replicas
        # Before the stop, as after: the checks themselves hold.
        assert_records_and_offsets(holder.bootstrap, data, offsets)

        stop_all(cluster, kill)
        start_all(cluster)

        new_leader, after = settled_leader(cluster, ELECTION_WAIT_S)
        assert after.leader_epoch > before.leader_epoch
        assert after.high_watermark > before.high_watermark
        assert_topics_and_configs(cluster.nodes[new_leader].bootstrap)
        assert_records_and_offsets(holder.bootstrap, data, offsets)


def test_a_cluster_stopped_by_sigterm_keeps_topics_configs_records_and_offsets():
    restart_keeps_everything(kill=False)


def test_a_cluster_killed_by_sigkill_keeps_topics_configs_records_and_offsets():
    restart_keeps_everything(kill=True)
