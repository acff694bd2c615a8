"""Partitions placed over the brokers of a cluster (issue 14, placement and
serving from any broker): three shoal nodes, each a combined broker and
controller and a voter of the metadata quorum, through the cluster harness
(tests/cluster/) as test_quorum_voters.py starts them.

Once every node has registered as a broker, a topic of 12 partitions created
through the quorum leader has leaders on every node (Kafka's striped placer,
replication factor 1); every node's Metadata names the same leaders; each
partition's leader takes a produce and serves it back, and the other nodes
refuse it with NOT_LEADER_OR_FOLLOWER. A group's coordinator is the leader of
its `__consumer_offsets` partition, wherever the placer put it, and a
confluent-kafka consumer group reads the topic and commits there.

A topic deleted through the quorum leader leaves every node's disk, and
re-created under its name it starts empty on every node, wherever its
partitions now are.

`__consumer_offsets` is made by a FindCoordinator sent to the quorum leader
(another node answers COORDINATOR_NOT_AVAILABLE until admin requests are
forwarded to the controller)."""

import os
import struct
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import clients  # noqa: E402
import kafka_wire  # noqa: E402
from cluster import Cluster  # noqa: E402
from cluster.waiting import SHOAL_NODE, wait_until  # noqa: E402
from cluster.quorum import QuorumError, create_topic, describe_quorum  # noqa: E402

pytestmark = pytest.mark.shoal_only

NODES = 3
PARTITIONS = 12
RECORDS_PER_PARTITION = 5
OFFSETS_TOPIC = "__consumer_offsets"
# shoal's default `offsets.topic.num.partitions`, as Kafka's.
OFFSETS_PARTITIONS = 50
ERR_NOT_LEADER_OR_FOLLOWER = 6
# An election and every node's registration on a loaded two-core machine
# (Kafka's heartbeat is 2 s; registration is answered once committed).
SETTLE_WAIT_S = 60.0
CONVERGE_WAIT_S = 20.0
CONSUME_WAIT_S = 60.0
API_FIND_COORDINATOR = 10
FIND_COORDINATOR_VERSION = 1
KEY_TYPE_GROUP = 0


def quorum_leader(cluster):
    """The index of the node that leads the metadata quorum, once the
    nodes that answer agree on one."""

    def found():
        leaders = set()
        for node in cluster.nodes:
            try:
                quorum = describe_quorum(f"{node.host}:{node.controller_port}")
            except QuorumError:
                continue
            leaders.add(quorum.leader_id)
        if len(leaders) != 1:
            return None
        (leader_id,) = leaders
        return [i for i, node in enumerate(cluster.nodes) if node.node_id == leader_id]

    return wait_until(found, SETTLE_WAIT_S, "a quorum leader")[0]


def brokers_listed(node):
    brokers, _ = kafka_wire.metadata(node.bootstrap, [], False)
    return sorted(brokers)


def leaders_seen(node, topic, partitions):
    """{partition: leader id} in node's Metadata, None until all
    `partitions` have a leader."""
    _, topics = kafka_wire.metadata(node.bootstrap, [topic], False)
    error, by_partition = topics[topic]
    if error != kafka_wire.ERR_NONE or len(by_partition) != partitions:
        return None
    leaders = {p: leader for p, (perr, leader) in by_partition.items() if perr == kafka_wire.ERR_NONE}
    return leaders if len(leaders) == partitions and -1 not in leaders.values() else None


def agreed_leaders(cluster, topic, partitions):
    """The partitions' leaders, once every node's Metadata names the same."""

    def agreed():
        seen = [leaders_seen(node, topic, partitions) for node in cluster.nodes]
        return seen[0] if seen[0] is not None and all(s == seen[0] for s in seen) else None

    return wait_until(agreed, CONVERGE_WAIT_S, f"every node to name the same leaders of {topic}")


def find_coordinator(node, group):
    """FindCoordinator v1 for `group` sent to node: (error code, node id)."""
    body = kafka_wire.string(group) + struct.pack(">b", KEY_TYPE_GROUP)
    with kafka_wire.connect(node.bootstrap) as sock:
        response = kafka_wire.call(sock, API_FIND_COORDINATOR, FIND_COORDINATOR_VERSION, 10, body)
    reader = kafka_wire.Reader(response)
    reader.take(">i")  # throttle_time_ms
    error = reader.take(">h")
    reader.string()  # error_message
    node_id = reader.take(">i")
    return error, node_id


def partition_dirs(node, topic):
    """The directories of `topic`'s partitions in node's log dir."""
    log_dir = os.path.join(node.data_dir, "log")
    prefix = f"{topic}-"
    return sorted(name for name in os.listdir(log_dir)
                  if name.startswith(prefix) and name[len(prefix):].isdigit())


def produce_to_leaders(cluster, topic, leaders, tag):
    """One batch of RECORDS_PER_PARTITION values to each partition's leader:
    {partition: base offset}."""
    by_id = {node.node_id: node for node in cluster.nodes}
    base_offsets = {}
    for p, leader_id in leaders.items():
        values = [f"{tag}-p{p}-{i}".encode() for i in range(RECORDS_PER_PARTITION)]
        with kafka_wire.connect(by_id[leader_id].bootstrap) as sock:
            error, base_offsets[p] = kafka_wire.produce(sock, 1, topic, p, kafka_wire.record_batch(values, -1, -1, -1))
        assert error == kafka_wire.ERR_NONE, (p, leader_id, error)
    return base_offsets


def java_hash_partition(group_id, partitions):
    """Kafka's coordinator partition: abs(String.hashCode()) % partitions."""
    data = group_id.encode("utf-16-be")
    h = 0
    for at in range(0, len(data), 2):
        h = (h * 31 + int.from_bytes(data[at: at + 2], "big")) & 0xFFFFFFFF
    h = h - (1 << 32) if h >= 1 << 31 else h
    h = 0 if h == -(1 << 31) else abs(h)
    return h % partitions


def test_partitions_spread_over_the_brokers_and_each_leader_serves_its_own():
    with Cluster(NODES, SHOAL_NODE) as cluster:
        by_id = {node.node_id: node for node in cluster.nodes}
        leader = quorum_leader(cluster)
        expected = sorted((node.node_id, node.host, node.port) for node in cluster.nodes)
        wait_until(lambda: all(brokers_listed(node) == expected for node in cluster.nodes),
                   SETTLE_WAIT_S, "every node to list the three registered brokers")

        topic = "placed"
        assert create_topic(cluster.nodes[leader].bootstrap, topic, PARTITIONS) == kafka_wire.ERR_NONE
        leaders = agreed_leaders(cluster, topic, PARTITIONS)
        assert set(leaders.values()) == set(by_id), f"leaders on every node: {leaders}"

        # Each partition's leader takes a write; every other node refuses it.
        for p, leader_id in leaders.items():
            for node in cluster.nodes:
                values = [f"p{p}-{i}".encode() for i in range(RECORDS_PER_PARTITION)]
                batch = kafka_wire.record_batch(values, -1, -1, -1)
                with kafka_wire.connect(node.bootstrap) as sock:
                    error, base_offset = kafka_wire.produce(sock, 1, topic, p, batch)
                if node.node_id == leader_id:
                    assert (error, base_offset) == (kafka_wire.ERR_NONE, 0), (p, node.node_id)
                else:
                    assert error == ERR_NOT_LEADER_OR_FOLLOWER, (p, node.node_id, error)
            answer = kafka_wire.fetch(by_id[leader_id].bootstrap, [(topic, p, 0, 1 << 20)])
            error, high_watermark, data = answer[(topic, p)]
            assert (error, high_watermark) == (kafka_wire.ERR_NONE, RECORDS_PER_PARTITION), p
            assert kafka_wire.batch_offsets(data)[-1][1] == RECORDS_PER_PARTITION - 1

        # The coordinator of a group is the leader of its partition of
        # `__consumer_offsets`, as every node names it.
        group = "placed-group"
        assert find_coordinator(cluster.nodes[leader], group)[0] == kafka_wire.ERR_NONE
        offsets_leaders = agreed_leaders(cluster, OFFSETS_TOPIC, OFFSETS_PARTITIONS)
        assert set(offsets_leaders.values()) == set(by_id), "coordinators on every node"
        coordinator = offsets_leaders[java_hash_partition(group, OFFSETS_PARTITIONS)]
        for node in cluster.nodes:
            assert find_coordinator(node, group) == (kafka_wire.ERR_NONE, coordinator), node.node_id

        # A consumer group bootstrapped through another node reads every
        # partition from its leader and commits at the coordinator.
        elsewhere = next(node for node in cluster.nodes if node.node_id != coordinator)
        consumer = clients.consumer(elsewhere.bootstrap, group_id=group, auto_offset_reset="earliest",
                                    enable_partition_eof=False, enable_auto_offset_store=True)
        read = {}
        try:
            consumer.subscribe([topic])
            deadline = time.monotonic() + CONSUME_WAIT_S
            while sum(read.values()) < PARTITIONS * RECORDS_PER_PARTITION and time.monotonic() < deadline:
                for msg in consumer.consume(num_messages=100, timeout=clients.POLL_TIMEOUT_S):
                    assert msg.error() is None, msg.error()
                    read[msg.partition()] = read.get(msg.partition(), 0) + 1
            assert read == {p: RECORDS_PER_PARTITION for p in range(PARTITIONS)}
            clients.retried(lambda: consumer.commit(asynchronous=False), clients.COORDINATOR_SETTLING_ERRORS,
                            clients.REQUEST_TIMEOUT_S, "the group's commit")
        finally:
            consumer.close()
        for node in cluster.nodes:
            committed = clients.committed(node.bootstrap, group, topic, PARTITIONS)
            assert committed == {p: RECORDS_PER_PARTITION for p in range(PARTITIONS)}, node.node_id


def test_a_deleted_topic_leaves_every_node_and_comes_back_empty():
    with Cluster(NODES, SHOAL_NODE) as cluster:
        leader = quorum_leader(cluster)
        expected = sorted((node.node_id, node.host, node.port) for node in cluster.nodes)
        wait_until(lambda: all(brokers_listed(node) == expected for node in cluster.nodes),
                   SETTLE_WAIT_S, "every node to list the three registered brokers")
        topic = "recreated"
        assert create_topic(cluster.nodes[leader].bootstrap, topic, PARTITIONS) == kafka_wire.ERR_NONE
        leaders = agreed_leaders(cluster, topic, PARTITIONS)
        assert set(produce_to_leaders(cluster, topic, leaders, "first").values()) == {0}
        for node in cluster.nodes:
            led_here = sorted(f"{topic}-{p}" for p, leader_id in leaders.items() if leader_id == node.node_id)
            assert partition_dirs(node, topic) == led_here, node.node_id

        admin = clients.admin(cluster.nodes[leader].bootstrap)
        admin.delete_topics([topic], request_timeout=clients.REQUEST_TIMEOUT_S)[topic].result(
            timeout=clients.REQUEST_TIMEOUT_S)
        wait_until(lambda: all(not partition_dirs(node, topic) for node in cluster.nodes),
                   CONVERGE_WAIT_S, f"every node to remove the partitions of {topic}")

        assert create_topic(cluster.nodes[leader].bootstrap, topic, PARTITIONS) == kafka_wire.ERR_NONE
        leaders = agreed_leaders(cluster, topic, PARTITIONS)
        assert set(produce_to_leaders(cluster, topic, leaders, "second").values()) == {0}, "a fresh log"
