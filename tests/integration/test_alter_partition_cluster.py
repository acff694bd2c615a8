"""Replicated partitions on a three-node cluster (issue 15, the controller's
side): a topic of replication factor 3 with `min.insync.replicas=2` has every
broker in each partition's replicas and ISR, as every node's Metadata (v9:
replicas, ISR, offline replicas, leader epoch) and Kafka's own
`kafka-topics --describe` show it. Killing a broker with `kill -9` fences it
once its session runs out: it leaves the ISR of every partition, shows as an
offline replica, and the partitions it led move to another ISR member one
leader epoch on (the existing fencing path, `metadata::leadership`).

Nodes are started as test_cluster_placement.py starts them (tests/cluster)."""

import os
import struct
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import kafka_tools  # noqa: E402
import kafka_wire  # noqa: E402
from cluster import Cluster  # noqa: E402
from cluster.waiting import SHOAL_NODE, wait_until  # noqa: E402
from test_cluster_placement import quorum_leader  # noqa: E402

pytestmark = pytest.mark.shoal_only

NODES = 3
PARTITIONS = 6
REPLICATION = 3
MIN_INSYNC = "2"
API_METADATA = 3
METADATA_VERSION = 9
API_CREATE_TOPICS = 19
CREATE_TOPICS_VERSION = 2
CREATE_TIMEOUT_MS = 30_000
# Registration and an election on a loaded two-core machine.
SETTLE_WAIT_S = 60.0
# shoal's `broker.session.timeout.ms` default (9 s, Kafka's) plus the
# moves' commit and every node's install of them.
FENCE_WAIT_S = 40.0
CORRELATION_ID = 15


def create_replicated(bootstrap, name):
    """CreateTopics v2 of `name`: PARTITIONS partitions of REPLICATION
    replicas with min.insync.replicas=MIN_INSYNC; its error code."""
    config = kafka_wire.string("min.insync.replicas") + kafka_wire.string(MIN_INSYNC)
    topic = (kafka_wire.string(name) + struct.pack(">ih", PARTITIONS, REPLICATION)
             + struct.pack(">i", 0)  # no replica assignments
             + struct.pack(">i", 1) + config)
    body = struct.pack(">i", 1) + topic + struct.pack(">ib", CREATE_TIMEOUT_MS, 0)
    with kafka_wire.connect(bootstrap) as sock:
        response = kafka_wire.call(sock, API_CREATE_TOPICS, CREATE_TOPICS_VERSION, CORRELATION_ID, body)
    reader = kafka_wire.Reader(response)
    reader.take(">i")  # throttle_time_ms

    def result():
        topic_name = reader.string()
        error_code = reader.take(">h")
        reader.string()  # error_message
        return topic_name, error_code

    return dict(reader.array(result))[name]


def partitions_of(bootstrap, topic):
    """Metadata v9 (flexible) of `topic` as the node at `bootstrap` sees it:
    {partition: (error, leader, leader epoch, replicas, isr, offline)}."""
    body = (kafka_wire.compact_array([kafka_wire.compact_string(topic) + kafka_wire.uvarint(0)])
            + struct.pack(">bbb", 0, 0, 0)  # no auto-creation, no authorized operations
            + kafka_wire.uvarint(0))
    with kafka_wire.connect(bootstrap) as sock:
        response = kafka_wire.call(sock, API_METADATA, METADATA_VERSION, CORRELATION_ID, body, flexible=True)
    reader = kafka_wire.Reader(response)
    reader.take(">i")  # throttle_time_ms

    def nullable_string():
        size = reader.uvarint() - 1
        reader.pos += max(size, 0)

    def broker():
        reader.take(">i")
        reader.compact_string()
        reader.take(">i")
        nullable_string()  # rack
        reader.tagged_fields()

    reader.compact_array(broker)
    nullable_string()  # cluster_id
    reader.take(">i")  # controller_id

    def ids():
        return sorted(reader.compact_array(lambda: reader.take(">i")))

    def partition():
        error, index, leader, leader_epoch = reader.take(">hiii")
        replicas, isr, offline = ids(), ids(), ids()
        reader.tagged_fields()
        return index, (error, leader, leader_epoch, replicas, isr, offline)

    def one_topic():
        error = reader.take(">h")
        name = reader.compact_string()
        reader.take(">b")  # is_internal
        partitions = dict(reader.compact_array(partition))
        reader.take(">i")  # topic_authorized_operations
        reader.tagged_fields()
        return name, (error, partitions)

    topics = dict(reader.compact_array(one_topic))
    error, partitions = topics[topic]
    return partitions if error == kafka_wire.ERR_NONE else {}


def described(bootstrap, topic):
    """`kafka-topics --describe`'s partition lines: {partition: {field: value}}."""
    output = kafka_tools.run(kafka_tools.TOPICS, "--bootstrap-server", bootstrap, "--describe", "--topic", topic)
    rows = {}
    for line in output.splitlines():
        fields = dict(part.split(": ", 1) for part in line.strip().split("\t") if ": " in part)
        if "Partition" in fields:
            rows[int(fields["Partition"])] = fields
    return rows, output


def test_replicated_topic_shows_its_isr_and_shrinks_it_when_a_broker_dies():
    with Cluster(NODES, SHOAL_NODE) as cluster:
        ids = sorted(node.node_id for node in cluster.nodes)
        leader = quorum_leader(cluster)
        listed = lambda node: sorted(b[0] for b in kafka_wire.metadata(node.bootstrap, [], False)[0])  # noqa: E731
        wait_until(lambda: all(listed(node) == ids for node in cluster.nodes), SETTLE_WAIT_S,
                   "every node to list the three brokers")
        topic = "replicated"
        assert create_replicated(cluster.nodes[leader].bootstrap, topic) == kafka_wire.ERR_NONE

        def full_everywhere():
            seen = [partitions_of(node.bootstrap, topic) for node in cluster.nodes]
            return seen[0] if len(seen[0]) == PARTITIONS and all(s == seen[0] for s in seen) else None

        start = wait_until(full_everywhere, SETTLE_WAIT_S, "every node to show the replicated topic")
        for p, (error, lead, epoch, replicas, isr, offline) in start.items():
            assert (error, replicas, isr, offline, epoch) == (kafka_wire.ERR_NONE, ids, ids, [], 0), p
        assert {lead for _, lead, *_ in start.values()} == set(ids), f"leaders spread: {start}"

        # Kafka's tool shows the same, in its own shape.
        kafka_tools.require_tools()
        rows, output = described(cluster.nodes[leader].bootstrap, topic)
        assert sorted(rows) == list(range(PARTITIONS)), output
        assert f"ReplicationFactor: {REPLICATION}" in output, output
        assert f"min.insync.replicas={MIN_INSYNC}" in output, output
        for p, fields in rows.items():
            assert sorted(map(int, fields["Replicas"].split(","))) == ids, output
            assert sorted(map(int, fields["Isr"].split(","))) == ids, output
            assert int(fields["Leader"]) == start[p][1], output

        # kill -9 a broker that is not the quorum leader: once fenced it
        # leaves every ISR, shows offline, and leads nothing.
        victim = next(i for i in range(NODES) if i != leader)
        dead = cluster.nodes[victim].node_id
        cluster.kill9(victim)
        alive = [n for i, n in enumerate(cluster.nodes) if i != victim]
        survivors = [i for i in ids if i != dead]

        def shrunk():
            seen = [partitions_of(node.bootstrap, topic) for node in alive]
            settled = seen[0] if len(seen[0]) == PARTITIONS and all(s == seen[0] for s in seen) else None
            if settled is None or any(isr != survivors for _, _, _, _, isr, _ in settled.values()):
                return None
            return settled

        after = wait_until(shrunk, FENCE_WAIT_S, f"the ISRs to shrink without broker {dead}")
        for p, (error, lead, epoch, replicas, isr, offline) in after.items():
            assert (error, replicas, isr, offline) == (kafka_wire.ERR_NONE, ids, survivors, [dead]), p
            assert lead in survivors, (p, lead)
            was_led_by_dead = start[p][1] == dead
            assert epoch == (1 if was_led_by_dead else 0), (p, start[p], after[p])
        rows, output = described(alive[0].bootstrap, topic)
        for p, fields in rows.items():
            assert sorted(map(int, fields["Isr"].split(","))) == survivors, output
            assert int(fields["Leader"]) in survivors, output
