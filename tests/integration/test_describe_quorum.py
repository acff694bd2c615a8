"""DescribeQuorum through a broker listener (issue 14): Kafka's
`kafka-metadata-quorum --bootstrap-server` (MetadataQuorumCommand, the admin
client's describeMetadataQuorum) against every node of three voters, each
forwarding the request to the active controller as a Kafka broker does, and
against a single `shoal serve`, which answers it itself. A raw DescribeQuorum
to each node's broker port (one request, no retry) proves the forwarding:
a node that answered from its own status would refuse it unless it leads."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import kafka_tools  # noqa: E402
from cluster import Cluster  # noqa: E402
from cluster.waiting import SHOAL_NODE  # noqa: E402
from cluster.quorum import controller_address, describe_quorum, settled_leader  # noqa: E402
from test_cli_cluster import parse_status  # noqa: E402

pytestmark = pytest.mark.shoal_only

NODES = 3
# An election on a loaded two-core machine (Kafka's election timeout is 1 s).
ELECTION_WAIT_S = 20.0
QUORUM_TOOL = "org.apache.kafka.tools.MetadataQuorumCommand"


def status_fields(text):
    """{field: value} of `describe --status`."""
    return parse_status(text)[0]


def replication_rows(text):
    """The rows of `describe --replication`, each {header: cell}."""
    (rows,) = parse_status(text)[1].values()
    return rows


def describe(bootstrap, what):
    return kafka_tools.run(QUORUM_TOOL, "--bootstrap-server", bootstrap, "describe", what)


def test_every_node_of_three_answers_describe_quorum_as_the_leader():
    kafka_tools.require_tools()
    with Cluster(NODES, SHOAL_NODE) as cluster:
        leader, before = settled_leader(cluster, ELECTION_WAIT_S)
        leader_id = cluster.nodes[leader].node_id
        ids = sorted(node.node_id for node in cluster.nodes)

        # One request to each broker port, followers' included: the leader's view.
        for node in cluster.nodes:
            quorum = describe_quorum(node.bootstrap)
            assert quorum.leader_id == leader_id, (node.node_id, quorum)
            assert sorted(quorum.voters) == ids, (node.node_id, quorum)
            assert quorum.high_watermark >= before.high_watermark

        for node in cluster.nodes:
            fields = status_fields(describe(node.bootstrap, "--status"))
            assert fields["ClusterId"] == cluster.cluster_id, (node.node_id, fields)
            assert fields["LeaderId"] == str(leader_id), (node.node_id, fields)
            assert int(fields["HighWatermark"]) >= before.high_watermark
            voters = json.loads(fields["CurrentVoters"])
            assert sorted(voter["id"] for voter in voters) == ids, fields
            # v2 names each voter's CONTROLLER listener.
            for voter in voters:
                endpoint = controller_address(cluster.nodes[voter["id"] - 1])
                assert [e.split("://", 1)[1] for e in voter["endpoints"]] == [endpoint], voter
            assert fields["CurrentObservers"] == "[]"

            rows = replication_rows(describe(node.bootstrap, "--replication"))
            assert sorted(int(row["NodeId"]) for row in rows) == ids, rows
            assert [row["Status"] for row in rows] == ["Leader", "Follower", "Follower"], rows
            assert rows[0]["NodeId"] == str(leader_id), rows
            assert all(int(row["LogEndOffset"]) >= before.high_watermark for row in rows), rows

        after = describe_quorum(controller_address(cluster.nodes[leader]))
        assert after.leader_id == leader_id, "the leader changed while the test read it"


def test_a_single_node_answers_describe_quorum_itself(broker):
    kafka_tools.require_tools()
    quorum = describe_quorum(broker.bootstrap)
    assert (quorum.leader_id, sorted(quorum.voters)) == (1, [1]), quorum

    fields = status_fields(describe(broker.bootstrap, "--status"))
    assert fields["LeaderId"] == "1", fields
    assert (fields["MaxFollowerLag"], fields["MaxFollowerLagTimeMs"]) == ("0", "0"), fields
    # A lone node has no CONTROLLER listener, so no endpoint to name.
    voters = json.loads(fields["CurrentVoters"])
    assert [(voter["id"], voter.get("endpoints")) for voter in voters] == [(1, None)], fields
    assert fields["CurrentObservers"] == "[]"

    rows = replication_rows(describe(broker.bootstrap, "--replication"))
    assert [(row["NodeId"], row["Lag"], row["Status"]) for row in rows] == [("1", "0", "Leader")], rows
    assert int(rows[0]["LogEndOffset"]) >= quorum.high_watermark, rows
