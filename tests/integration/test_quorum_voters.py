"""Three shoal nodes, each a combined broker and controller and one of three
voters of the metadata quorum (issue 14, increment 3), started from storage
`shoal storage format` prepared, by the cluster harness (tests/cluster/): in
network namespaces where this machine allows it, on loopback ports where not.

The quorum is read with DescribeQuorum on each node's CONTROLLER listener
(and once with Kafka's kafka-metadata-quorum tool). Topics are created with
CreateTopics sent to one chosen node itself (an admin client would go to the
controller it finds): the leader commits it, any other node forwards it to
the leader in an Envelope, and every node's metadata converges. Faults: kill -9 of the leader and its restart, and
the leader cut off the network and healed."""

import os
import sys
import threading

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import kafka_tools  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
import kafka_wire  # noqa: E402
from cluster import Cluster  # noqa: E402
from cluster.waiting import SHOAL_NODE, wait_until  # noqa: E402
from cluster.quorum import QuorumError, create_topic, describe_quorum  # noqa: E402

pytestmark = pytest.mark.shoal_only

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NODES = 3
PARTITIONS = 3
# Kafka's election timeout is 1 s (a follower campaigns 1 to 2 s after it
# last heard its leader); the rest is a loaded two-core machine.
ELECTION_WAIT_S = 20.0
ERR_NOT_LEADER_OR_FOLLOWER = 6
CONVERGE_WAIT_S = 20.0
# A request to a node that is cut off may wait for its answer this long:
# the node steps down an election timeout or two after it lost its majority.
ISOLATED_REQUEST_TIMEOUT_S = 15.0
REQUEST_TIMEOUT_S = 10
QUORUM_TOOL = "org.apache.kafka.tools.MetadataQuorumCommand"


def ok_or_none(answer):
    """An InitProducerId answer, or None while the node is told to retry."""
    return answer if answer[0] == kafka_wire.ERR_NONE else None


def controller(node):
    return f"{node.host}:{node.controller_port}"


class Epochs:
    """Every (epoch, leader) a node reported, to check that no two leaders
    ever had the same epoch."""

    def __init__(self):
        self.leaders = {}

    def see(self, quorum):
        if quorum.leader_id != -1:
            self.leaders.setdefault(quorum.leader_epoch, set()).add(quorum.leader_id)

    def check(self):
        shared = {epoch: ids for epoch, ids in self.leaders.items() if len(ids) > 1}
        assert not shared, f"two leaders in one epoch: {shared}"


def leaders(cluster, indexes, epochs):
    """The DescribeQuorum answers of the nodes `indexes` that answer as the
    leader, by node index: as Kafka's, a voter that does not lead answers
    NOT_LEADER_OR_FOLLOWER."""
    answers = {}
    for i in indexes:
        try:
            quorum = describe_quorum(controller(cluster.nodes[i]))
        except QuorumError as e:
            if e.error_code != ERR_NOT_LEADER_OR_FOLLOWER:
                raise
            continue
        epochs.see(quorum)
        answers[i] = quorum
    return answers


def agreed_leader(cluster, indexes, epochs, exclude_leader=None):
    """Waits until exactly one of the nodes `indexes` leads, with every one
    of them caught up to its high watermark (the bootstrap records at least);
    returns (leader index, the leader's quorum)."""

    def agreed():
        answers = leaders(cluster, indexes, epochs)
        if len(answers) != 1:
            return None
        leader, quorum = answers.popitem()
        assert quorum.leader_id == cluster.nodes[leader].node_id, quorum
        if quorum.leader_id == exclude_leader:
            return None
        assert set(quorum.voters) == {node.node_id for node in cluster.nodes}, quorum
        if quorum.high_watermark <= 0:
            return None
        for i in indexes:
            if quorum.voters[cluster.nodes[i].node_id].log_end_offset < quorum.high_watermark:
                return None
        return leader, quorum

    return wait_until(agreed, ELECTION_WAIT_S, f"one leader among nodes {[i + 1 for i in indexes]}")


def topic_state(node, name):
    """The error code and partition count node gives `name` in Metadata."""
    _, topics = kafka_wire.metadata(node.bootstrap, [name], False)
    error_code, partitions = topics[name]
    return error_code, len(partitions)


def assert_listed_everywhere(cluster, indexes, name):
    def listed():
        return all(topic_state(cluster.nodes[i], name) == (kafka_wire.ERR_NONE, PARTITIONS) for i in indexes)

    wait_until(listed, CONVERGE_WAIT_S, f"{name} in the metadata of nodes {[i + 1 for i in indexes]}")


def assert_unknown_everywhere(cluster, indexes, name):
    for i in indexes:
        assert topic_state(cluster.nodes[i], name)[0] == kafka_wire.ERR_UNKNOWN_TOPIC_OR_PARTITION, (i, name)


def controller_named_by(node):
    """The controller id node's Metadata names (librdkafka's view)."""
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    return admin.list_topics(timeout=REQUEST_TIMEOUT_S).controller_id


def others(leader):
    return [i for i in range(NODES) if i != leader]


def test_three_voters_form_a_quorum_create_topics_through_the_leader_only():
    epochs = Epochs()
    with Cluster(NODES, SHOAL_NODE) as cluster:
        everyone = list(range(NODES))
        leader, quorum = agreed_leader(cluster, everyone, epochs)
        assert quorum.observers == {}

        assert create_topic(cluster.nodes[leader].bootstrap, "voters-made", PARTITIONS) == kafka_wire.ERR_NONE
        assert_listed_everywhere(cluster, everyone, "voters-made")
        # Partition 0 lives on the node the metadata names its leader
        # (wherever the placer put it): that node takes a write, the others
        # refuse it as Kafka's brokers refuse a partition they do not lead.
        _, topics = kafka_wire.metadata(cluster.nodes[leader].bootstrap, ["voters-made"], False)
        owner_id = topics["voters-made"][1][0][1]
        batch = kafka_wire.record_batch([b"v"], -1, -1, -1)
        for i in everyone:
            with kafka_wire.connect(cluster.nodes[i].bootstrap) as sock:
                error, _ = kafka_wire.produce(sock, 1, "voters-made", 0, batch)
            owns = cluster.nodes[i].node_id == owner_id
            assert error == (kafka_wire.ERR_NONE if owns else ERR_NOT_LEADER_OR_FOLLOWER), (i, error)
        # Producer ids come from the quorum's leader, which hands any node
        # a block (AllocateProducerIds): every node gives out ids, none twice.
        ids = set()
        for i in everyone:
            with kafka_wire.connect(cluster.nodes[i].bootstrap) as sock:
                error, producer_id, _ = wait_until(
                    lambda: ok_or_none(kafka_wire.init_producer_id(sock, 2)), CONVERGE_WAIT_S,
                    f"a producer id from node {i + 1}")
            ids.add(producer_id)
        assert len(ids) == NODES, ids
        # A node that does not lead forwards CreateTopics to the one that
        # does (Kafka's forwarding, in an Envelope): created all the same.
        for i in others(leader):
            assert create_topic(cluster.nodes[i].bootstrap, f"forwarded-{i}", PARTITIONS) == kafka_wire.ERR_NONE
            assert_listed_everywhere(cluster, everyone, f"forwarded-{i}")
        # Every node names the leader as the controller (an admin client goes
        # there once Metadata lists every broker: increment 4), and Kafka's
        # admin client creates topics through the leader.
        leader_id = cluster.nodes[leader].node_id
        wait_until(lambda: all(controller_named_by(cluster.nodes[i]) == leader_id for i in everyone),
                   CONVERGE_WAIT_S, f"every node to name {leader_id} the controller")
        admin = AdminClient({"bootstrap.servers": cluster.nodes[leader].bootstrap})
        admin.create_topics([NewTopic("by-admin", PARTITIONS, 1)])["by-admin"].result(REQUEST_TIMEOUT_S)
        assert_listed_everywhere(cluster, everyone, "by-admin")
        _, after = agreed_leader(cluster, everyone, epochs)
        assert after.high_watermark > quorum.high_watermark

        # Kafka's own tool reads the same quorum from a follower's listener.
        kafka_tools.require_tools()
        follower = cluster.nodes[others(leader)[0]]
        status = kafka_tools.run(QUORUM_TOOL, "--bootstrap-controller", controller(follower), "describe", "--status")
        assert f"LeaderId:               {cluster.nodes[leader].node_id}" in status, status
        assert f"CurrentVoters:" in status and status.count('"id":') >= NODES, status
    epochs.check()


def test_a_killed_leader_is_replaced_and_rejoins_as_a_follower():
    epochs = Epochs()
    with Cluster(NODES, SHOAL_NODE) as cluster:
        everyone = list(range(NODES))
        leader, first = agreed_leader(cluster, everyone, epochs)
        cluster.kill9(leader)
        survivors = others(leader)
        new_leader, second = agreed_leader(cluster, survivors, epochs,
                                           exclude_leader=cluster.nodes[leader].node_id)
        assert second.leader_epoch > first.leader_epoch
        new_id = cluster.nodes[new_leader].node_id
        wait_until(lambda: all(controller_named_by(cluster.nodes[i]) == new_id for i in survivors),
                   CONVERGE_WAIT_S, f"the survivors to name {new_id} the controller")
        assert create_topic(cluster.nodes[new_leader].bootstrap, "after-kill", PARTITIONS) == kafka_wire.ERR_NONE
        assert_listed_everywhere(cluster, survivors, "after-kill")

        cluster.restart(leader)
        final, _ = agreed_leader(cluster, everyone, epochs)
        assert final != leader, "a restarted voter must not depose a working leader"
        assert_listed_everywhere(cluster, everyone, "after-kill")
    epochs.check()


def test_an_isolated_leader_stops_committing_and_rejoins_as_a_follower():
    epochs = Epochs()
    with Cluster(NODES, SHOAL_NODE) as cluster:
        reason = cluster.unavailable("isolate")
        if reason is not None:
            pytest.skip(reason)
        everyone = list(range(NODES))
        leader, first = agreed_leader(cluster, everyone, epochs)
        isolated = cluster.nodes[leader]
        cluster.isolate(leader)

        # From inside its namespace the isolated node is still reachable: a
        # CreateTopics sent to it never succeeds.
        answer = {}

        def ask_isolated():
            code = (f"import sys; sys.path[:0] = [{os.path.join(REPO, 'tests')!r}, "
                    f"{os.path.join(REPO, 'tests', 'integration')!r}]; "
                    "from cluster.quorum import create_topic; "
                    f"print(create_topic({isolated.bootstrap!r}, 'cut-off', {PARTITIONS}, "
                    f"timeout_s={ISOLATED_REQUEST_TIMEOUT_S}))")
            result = cluster.exec(leader, [sys.executable, "-c", code], check=False,
                                  timeout_s=ISOLATED_REQUEST_TIMEOUT_S + 5)
            answer["result"] = result

        asking = threading.Thread(target=ask_isolated)
        asking.start()
        survivors = others(leader)
        new_leader, second = agreed_leader(cluster, survivors, epochs, exclude_leader=isolated.node_id)
        assert second.leader_epoch > first.leader_epoch
        assert create_topic(cluster.nodes[new_leader].bootstrap, "majority-made", PARTITIONS) == kafka_wire.ERR_NONE
        asking.join(ISOLATED_REQUEST_TIMEOUT_S + 10)
        assert not asking.is_alive()
        result = answer["result"]
        assert result.returncode == 0, result.stderr
        assert int(result.stdout.strip()) != kafka_wire.ERR_NONE, result.stdout

        cluster.heal(leader)
        final, _ = agreed_leader(cluster, everyone, epochs)
        assert final != leader
        assert_listed_everywhere(cluster, everyone, "majority-made")
        assert_unknown_everywhere(cluster, everyone, "cut-off")
    epochs.check()


def test_a_follower_behind_the_leaders_snapshot_catches_up_from_it():
    """With a snapshot after every record the leader's log no longer holds
    what a stopped follower missed: restarted, the follower is sent the
    leader's snapshot and serves the topics it brings."""
    epochs = Epochs()
    with Cluster(NODES, SHOAL_NODE + " metadata.log.max.record.bytes.between.snapshots=1") as cluster:
        everyone = list(range(NODES))
        leader, _ = agreed_leader(cluster, everyone, epochs)
        behind = others(leader)[0]
        cluster.kill9(behind)
        missed = ["missed-1", "missed-2"]
        for name in missed:
            assert create_topic(cluster.nodes[leader].bootstrap, name, PARTITIONS) == kafka_wire.ERR_NONE
        cluster.restart(behind)
        final, _ = agreed_leader(cluster, everyone, epochs)
        assert final == leader, "a restarted voter must not depose a working leader"
        for name in missed:
            assert_listed_everywhere(cluster, [behind], name)
    epochs.check()
