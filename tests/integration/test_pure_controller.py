"""A pure controller (`process.roles=controller`) among the voters (issue
14): two combined nodes (broker and controller) and one pure controller,
three voters, each node in its own network namespace through the cluster
harness.

The pure controller binds only its CONTROLLER listener: it is never in
Metadata's or DescribeCluster's brokers, never named the controller to
clients (they could not reach it), and never given a partition (a
12-partition topic is led by the two brokers only, and its data directory
holds no partition). Made the quorum leader (its leader paused until
another voter wins, a bounded number of times), it takes every metadata
change the brokers forward to it: CreateTopics, DeleteTopics and the
producer id blocks behind InitProducerId through each broker, and a topic
made by librdkafka's admin client. `shoal cluster status` lists it as a
voter, the leader, and not as a broker. SIGTERM stops it cleanly, the
other two elect a leader, and it rejoins."""

import os
import struct
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import clients  # noqa: E402
import kafka_wire  # noqa: E402
from cluster import Cluster  # noqa: E402
from cluster import roles  # noqa: E402
from cluster.quorum import (  # noqa: E402
    QuorumError,
    controller_address,
    describe_cluster,
    describe_quorum,
    settled_leader,
)
from cluster.waiting import SHOAL_NODE, wait_until  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from test_cli import shoal  # noqa: E402
from test_cli_cluster import parse_status  # noqa: E402
from test_cluster_roles import created  # noqa: E402

# Three processes on a loaded two-core machine and up to LEADER_TRIES
# elections.
pytestmark = [pytest.mark.shoal_only, pytest.mark.timeout(420)]

ROLES = [roles.COMBINED, roles.COMBINED, roles.CONTROLLER]
PURE = 2
TOPIC = "spread"
PARTITIONS = 12
# Registrations and a heartbeat or two on a loaded machine.
SETTLE_WAIT_S = 60.0
ELECTION_WAIT_S = 30.0
# Each try gives the pure controller about an even chance (it and the
# other broker race for the votes): 1 in 2^8 to fail for want of luck.
LEADER_TRIES = 8
ERR_UNKNOWN_TOPIC_OR_PARTITION = 3
API_DELETE_TOPICS = 20
# The last DeleteTopics version before flexible encoding (v4).
DELETE_TOPICS_VERSION = 3
DELETE_TIMEOUT_MS = 5000


def delete_topic(bootstrap, name):
    """DeleteTopics of one topic sent to the node at `bootstrap` itself (an
    admin client would go to the controller it finds): its error code."""
    body = struct.pack(">i", 1) + kafka_wire.string(name) + struct.pack(">i", DELETE_TIMEOUT_MS)
    with kafka_wire.connect(bootstrap) as sock:
        response = kafka_wire.call(sock, API_DELETE_TOPICS, DELETE_TOPICS_VERSION, API_DELETE_TOPICS, body)
    reader = kafka_wire.Reader(response)
    reader.take(">i")  # throttle_time_ms

    def result():
        return reader.string(), reader.take(">h")

    return dict(reader.array(result))[name]


def deleted(bootstrap, name):
    return delete_topic(bootstrap, name) in (kafka_wire.ERR_NONE, ERR_UNKNOWN_TOPIC_OR_PARTITION)


def producer_id(node):
    """InitProducerId (no transactional id) on `node`: the id, or -1 while
    its block is on its way from the controller (a retriable error)."""
    with kafka_wire.connect(node.bootstrap) as sock:
        error, producer_id, _ = kafka_wire.init_producer_id(sock, 2)
    return producer_id if error == kafka_wire.ERR_NONE else -1


def brokers_only(brokers, ids):
    """Every broker of `brokers` lists exactly `ids`, unfenced, in
    DescribeCluster and Metadata, and names one of them the controller."""
    for node in brokers:
        controller_id, listed = describe_cluster(node.bootstrap)
        live, _ = kafka_wire.metadata(node.bootstrap, [], False)
        if listed != {i: False for i in ids} or sorted(b for b, _, _ in live) != ids or controller_id not in ids:
            return False
    return True


def leaders(node, topic, partitions):
    """Partition -> leader id in `node`'s Metadata, once it has them all."""
    _, topics = kafka_wire.metadata(node.bootstrap, [topic], False)
    _, led = topics.get(topic, (None, {}))
    found = {p: leader for p, (_, leader) in led.items()}
    return found if len(found) == partitions else None


def lead_by_one_of(brokers, topic, partitions, ids):
    """The topic's leaders once every broker names the same ones, each of
    `ids`."""
    seen = [leaders(node, topic, partitions) for node in brokers]
    first = seen[0]
    if first is None or any(s != first for s in seen) or not set(first.values()) <= set(ids):
        return None
    return first


def leading(cluster, among):
    """The index of the one node of `among` that answers DescribeQuorum as
    the leader (the others answer NOT_LEADER_OR_FOLLOWER), or None."""
    for i in among:
        node = cluster.nodes[i]
        try:
            quorum = describe_quorum(controller_address(node))
        except (QuorumError, OSError):
            continue
        if quorum.leader_id == node.node_id:
            return i
    return None


def make_leader(cluster, target):
    """Pauses the quorum leader until another voter wins, until `target`
    leads (bounded tries); returns the Quorum it leads."""
    controllers = cluster.controllers()
    for _ in range(LEADER_TRIES):
        leader, quorum = settled_leader(cluster, ELECTION_WAIT_S)
        if leader == target:
            return quorum
        others = [i for i in controllers if i != leader]
        cluster.pause(leader)
        try:
            wait_until(lambda: leading(cluster, others) is not None, ELECTION_WAIT_S,
                       f"a leader among nodes {[i + 1 for i in others]}")
        finally:
            cluster.resume(leader)
    pytest.fail(f"node {target + 1} did not win an election in {LEADER_TRIES} tries")


def partition_dirs(node):
    """The partition directories in `node`'s log dir (the metadata log's
    is not one)."""
    log_dir = os.path.join(node.data_dir, "log")
    return sorted(name for name in os.listdir(log_dir)
                  if os.path.isdir(os.path.join(log_dir, name)) and not name.startswith("__cluster_metadata"))


def test_a_pure_controller_leads_the_quorum_and_is_no_broker():
    with Cluster(len(ROLES), SHOAL_NODE, roles=ROLES) as cluster:
        pure = cluster.nodes[PURE]
        brokers = [cluster.nodes[i] for i in cluster.brokers()]
        ids = sorted(node.node_id for node in brokers)
        assert cluster.controllers() == [0, 1, PURE] and pure.node_id not in ids
        wait_until(lambda: brokers_only(brokers, ids), SETTLE_WAIT_S, f"the brokers to list {ids} only")

        # Partitions over the two brokers, none on the pure controller.
        wait_until(lambda: created(brokers[0].bootstrap, TOPIC, PARTITIONS), SETTLE_WAIT_S, f"{TOPIC} created")
        placed = wait_until(lambda: lead_by_one_of(brokers, TOPIC, PARTITIONS, ids), SETTLE_WAIT_S,
                            "the brokers to agree on its leaders")
        assert sorted(set(placed.values())) == ids, placed

        quorum = make_leader(cluster, PURE)
        assert quorum.leader_id == pure.node_id and set(quorum.voters) == {1, 2, 3}, quorum
        wait_until(lambda: brokers_only(brokers, ids), SETTLE_WAIT_S,
                   "the brokers to list themselves only, one named the controller")

        # Every change forwarded to the pure controller, through each broker.
        for node in brokers:
            name = f"via-{node.node_id}"
            wait_until(lambda: created(node.bootstrap, name, 4), SETTLE_WAIT_S, f"{name} created")
            wait_until(lambda: lead_by_one_of(brokers, name, 4, ids), SETTLE_WAIT_S, f"{name} led by the brokers")
            wait_until(lambda: producer_id(node) >= 0, SETTLE_WAIT_S, f"a producer id from broker {node.node_id}")
        for node, other in zip(brokers, reversed(brokers)):
            name = f"via-{other.node_id}"
            wait_until(lambda: deleted(node.bootstrap, name), SETTLE_WAIT_S, f"{name} deleted")
            wait_until(lambda: all(kafka_wire.metadata(b.bootstrap, [name], False)[1][name][0]
                                   == ERR_UNKNOWN_TOPIC_OR_PARTITION for b in brokers),
                       SETTLE_WAIT_S, f"{name} gone from the brokers")
        # librdkafka goes to the controller Metadata names: a broker.
        admin = AdminClient({"bootstrap.servers": brokers[1].bootstrap})
        admin.create_topics([NewTopic("by-admin", 6, 1)])["by-admin"].result(clients.REQUEST_TIMEOUT_S)
        wait_until(lambda: lead_by_one_of(brokers, "by-admin", 6, ids), SETTLE_WAIT_S, "by-admin led by the brokers")
        assert describe_quorum(controller_address(pure)).leader_id == pure.node_id, "the leader moved meanwhile"

        # The operators' view: a voter and the leader, not a broker.
        output = shoal("cluster", "status", "--bootstrap-controller", controller_address(pure),
                       "--bootstrap-server", brokers[0].bootstrap).stdout.decode()
        fields, tables = parse_status(output)
        assert fields["LeaderId"] == str(pure.node_id), output
        assert sorted(row["NodeId"] for row in tables["NodeId"]) == ["1", "2", "3"], output
        assert {"NodeId": "3", "Status": "Leader"}.items() <= tables["NodeId"][0].items(), output
        assert [row["BrokerId"] for row in tables["BrokerId"]] == [str(i) for i in ids], output
        assert fields["ControllerId"] in [str(i) for i in ids], output
        assert partition_dirs(pure) == [], "the pure controller holds no partition"
        assert any(name.startswith(f"{TOPIC}-") for b in brokers for name in partition_dirs(b))

        # SIGTERM: a clean stop; the others elect a leader; it rejoins.
        assert cluster.stop(PURE) == 0, pure.log_tail()
        wait_until(lambda: leading(cluster, [0, 1]) is not None, ELECTION_WAIT_S, "a leader among the brokers")
        wait_until(lambda: created(brokers[0].bootstrap, "without-it", 2), SETTLE_WAIT_S, "without-it created")
        cluster.restart(PURE)
        leader, quorum = settled_leader(cluster, ELECTION_WAIT_S)
        assert set(quorum.voters) == {1, 2, 3}, quorum
        assert partition_dirs(pure) == []
