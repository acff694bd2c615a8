"""Kafka's clients on a cluster through any one node (issue 14: serving from
any broker): three shoal nodes, each a combined broker and controller and a
voter of the metadata quorum, through the cluster harness. Each node in
turn is the only bootstrap server of every client, each family on a topic
of its own whose partitions the placer spreads over the three brokers:
confluent-kafka creates, produces and reads back; kafka-python produces
and consumes; Java's Admin creates, its producer with the default
configuration (idempotent: a producer id from whichever node it asks, the
block from the quorum leader) produces, and a Java consumer group reads and
commits, the commits then read through another node. Every node's
Metadata names the same leaders."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import clients  # noqa: E402
import kafka_wire  # noqa: E402
from cluster import Cluster  # noqa: E402
from cluster.waiting import SHOAL_NODE, wait_until  # noqa: E402
from records import make_records  # noqa: E402
from test_java_clients import by_partition, flat, java, java_programs  # noqa: E402,F401
from test_kafka_python import consume as kafka_python_consume  # noqa: E402
from test_kafka_python import produce as kafka_python_produce  # noqa: E402

# Three JVM calls per node and a cluster start, on a loaded two-core machine.
pytestmark = [pytest.mark.shoal_only, pytest.mark.timeout(300)]

NODES = 3
PARTITIONS = 6
PER_PARTITION = 10
# Every node's registration on a loaded machine (Kafka's heartbeat is 2 s).
SETTLE_WAIT_S = 60.0


def leaders(node, topic):
    """Partition -> leader id as `node`'s Metadata names them."""
    _, topics = kafka_wire.metadata(node.bootstrap, [topic], False)
    error_code, partitions = topics[topic]
    assert error_code == kafka_wire.ERR_NONE, error_code
    return {p: leader for p, (_, leader) in partitions.items()}


def agreed_leaders(cluster, topic):
    """The topic's leaders once every node names the same ones, all live."""

    def agreed():
        seen = [leaders(node, topic) for node in cluster.nodes]
        first = seen[0]
        settled = len(first) == PARTITIONS and -1 not in first.values()
        return first if settled and all(s == first for s in seen) else None

    return wait_until(agreed, SETTLE_WAIT_S, f"every node to name the leaders of {topic}")


def test_every_client_family_works_through_any_node():
    with Cluster(NODES, SHOAL_NODE) as cluster:
        ids = {node.node_id for node in cluster.nodes}
        wait_until(lambda: all(len(kafka_wire.metadata(node.bootstrap, [], False)[0]) == NODES
                               for node in cluster.nodes), SETTLE_WAIT_S, "every node to list three brokers")
        for node in cluster.nodes:
            bootstrap = node.bootstrap

            # confluent-kafka: a topic created, written and read back
            # through this node, its partitions spread over the brokers.
            topic = f"confluent-{node.node_id}"
            clients.create_topic(bootstrap, topic, PARTITIONS)
            assert set(agreed_leaders(cluster, topic).values()) == ids
            records = make_records(seed=topic, partitions=PARTITIONS, per_partition=PER_PARTITION)
            clients.produce_records(bootstrap, topic, records)
            clients.assert_read_back(bootstrap, topic, records)

            # kafka-python.
            topic = f"python-{node.node_id}"
            clients.create_topic(bootstrap, topic, PARTITIONS)
            agreed_leaders(cluster, topic)
            records = make_records(seed=topic, partitions=PARTITIONS, per_partition=PER_PARTITION)
            kafka_python_produce(bootstrap, topic, records, "none")
            got = kafka_python_consume(bootstrap, topic, {p: 0 for p in records}, {p: PER_PARTITION for p in records})
            assert {p: [m.value for m in got[p]] for p in records} == {
                p: [r.value for r in rows] for p, rows in records.items()}

            # Java: Admin creates, the producer's default configuration
            # (idempotent) writes, and a consumer group reads and commits; its
            # coordinator is wherever the group's __consumer_offsets partition
            # is led, and another node reads the commits.
            topic = f"java-{node.node_id}"
            java("admin", "-brokers", bootstrap, "-op", "create-topic", "-topic", topic,
                 "-partitions", str(PARTITIONS))
            agreed_leaders(cluster, topic)
            records = make_records(seed=topic, partitions=PARTITIONS, per_partition=PER_PARTITION)
            acks = java("produce", "-brokers", bootstrap, "-topic", topic, "-default-config", "true",
                        records=flat(records))
            assert sorted((a["partition"], a["offset"]) for a in acks) == [
                (p, i) for p in range(PARTITIONS) for i in range(PER_PARTITION)]
            group = f"group-{node.node_id}"
            consumed = java("consume", "-brokers", bootstrap, "-topic", topic, "-count",
                            str(PARTITIONS * PER_PARTITION), "-group", group, "-protocol", "classic",
                            "-commit", "sync")
            assert {p: [row[2] for row in rows] for p, rows in by_partition(consumed).items()} == {
                p: [r.value for r in rows] for p, rows in records.items()}
            other = cluster.nodes[node.node_id % NODES].bootstrap
            assert java("admin", "-brokers", other, "-op", "fetch-offsets", "-group", group) == {
                topic: {str(p): PER_PARTITION for p in range(PARTITIONS)}
            }
