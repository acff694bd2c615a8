"""A pure broker (`process.roles=broker`, issue 14): three combined
broker-controllers are the metadata quorum's voters and a fourth node only
a broker, an observer that fetches the committed metadata log from them,
each node in its own network namespace through the cluster harness.

Seen as clients see it: every node's Metadata lists the four brokers and
names a live broker as the controller; a 12-partition topic created
through the pure broker (its CreateTopics forwarded to the quorum leader)
has partitions led by it; confluent-kafka produces and reads back with the
pure broker as its only bootstrap server; a topic deleted through a voter
disappears from the pure broker's metadata too; the quorum leader lists
the pure broker among DescribeQuorum's observers, the voters not."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import clients  # noqa: E402
import kafka_wire  # noqa: E402
from cluster import Cluster  # noqa: E402
from cluster import roles  # noqa: E402
from cluster.quorum import controller_address, create_topic, describe_cluster, describe_quorum  # noqa: E402
from cluster.quorum import settled_leader  # noqa: E402
from cluster.waiting import SHOAL_NODE, wait_until  # noqa: E402
from records import make_records  # noqa: E402

# Four processes on a loaded two-core machine.
pytestmark = [pytest.mark.shoal_only, pytest.mark.timeout(300)]

ROLES = [roles.COMBINED] * 3 + [roles.BROKER]
TOPIC = "observed"
PARTITIONS = 12
PER_PARTITION = 5
# Registrations and a heartbeat or two on a loaded machine.
SETTLE_WAIT_S = 60.0
ERR_TOPIC_ALREADY_EXISTS = 36


def all_list(nodes, ids):
    """Every node lists exactly `ids` as live brokers in Metadata and in
    DescribeCluster, and names one of them the controller."""
    for node in nodes:
        live, _ = kafka_wire.metadata(node.bootstrap, [], False)
        controller_id, listed = describe_cluster(node.bootstrap)
        in_metadata = sorted(broker_id for broker_id, _, _ in live)
        if in_metadata != ids or listed != {i: False for i in ids} or controller_id not in ids:
            return False
    return True


def leaders(node, topic):
    """Partition -> leader id as `node`'s Metadata names them; None while
    the topic is unknown there."""
    _, topics = kafka_wire.metadata(node.bootstrap, [topic], False)
    error_code, partitions = topics[topic]
    if error_code != kafka_wire.ERR_NONE:
        return None
    return {p: leader for p, (_, leader) in partitions.items()}


def agreed_leaders(nodes, topic):
    """The topic's leaders once every node names the same ones, all live."""
    seen = [leaders(node, topic) for node in nodes]
    first = seen[0]
    settled = first is not None and len(first) == PARTITIONS and -1 not in first.values()
    return first if settled and all(s == first for s in seen) else None


def observers(leader):
    """The observers the quorum leader lists, once it lists any."""
    return describe_quorum(controller_address(leader)).observers or None


def unknown_to(node, topic):
    _, topics = kafka_wire.metadata(node.bootstrap, [topic], False)
    return topics[topic][0] == kafka_wire.ERR_UNKNOWN_TOPIC_OR_PARTITION


def test_a_pure_broker_serves_clients_from_the_metadata_it_observes():
    with Cluster(len(ROLES), SHOAL_NODE, roles=ROLES) as cluster:
        broker = cluster.nodes[3]
        voter = cluster.nodes[0]
        ids = sorted(node.node_id for node in cluster.nodes)
        wait_until(lambda: all_list(cluster.nodes, ids), SETTLE_WAIT_S,
                   "every node to list the four brokers, the pure one among them")

        # Created through the pure broker: forwarded to the quorum leader.
        wait_until(lambda: create_topic(broker.bootstrap, TOPIC, PARTITIONS)
                   in (kafka_wire.ERR_NONE, ERR_TOPIC_ALREADY_EXISTS),
                   SETTLE_WAIT_S, f"{TOPIC} created through the pure broker")
        placed = wait_until(lambda: agreed_leaders(cluster.nodes, TOPIC), SETTLE_WAIT_S,
                            f"every node to name the leaders of {TOPIC}")
        assert broker.node_id in placed.values(), placed
        assert sorted(set(placed.values())) == ids, placed

        # confluent-kafka through the pure broker alone.
        records = make_records(seed=TOPIC, partitions=PARTITIONS, per_partition=PER_PARTITION)
        clients.produce_records(broker.bootstrap, TOPIC, records)
        clients.assert_read_back(broker.bootstrap, TOPIC, records)

        # Deleted through a voter: gone from the pure broker's metadata.
        admin = clients.admin(voter.bootstrap)
        admin.delete_topics([TOPIC], request_timeout=clients.REQUEST_TIMEOUT_S)[TOPIC].result(
            timeout=clients.REQUEST_TIMEOUT_S)
        wait_until(lambda: unknown_to(broker, TOPIC), SETTLE_WAIT_S,
                   f"{TOPIC} gone from the pure broker's metadata")

        leader, _ = settled_leader(cluster, SETTLE_WAIT_S)
        listed = wait_until(lambda: observers(cluster.nodes[leader]), SETTLE_WAIT_S,
                            "the quorum leader to list an observer")
        assert list(listed) == [broker.node_id], listed
        assert listed[broker.node_id].log_end_offset > 0, listed
        assert listed[broker.node_id].last_fetch_timestamp_ms > 0, listed
