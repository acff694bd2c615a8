"""`shoal cluster status`: the metadata quorum read from a controller
(DescribeCluster on its CONTROLLER listener names the leader, the leader
answers DescribeQuorum), the brokers and offline partitions read from a
broker. Against three voters started by the cluster harness (tests/cluster/),
against a single `shoal serve`, and against addresses nothing listens on."""

import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import clients  # noqa: E402
import kafka_tools  # noqa: E402
from cluster import Cluster  # noqa: E402
from cluster.waiting import SHOAL_NODE  # noqa: E402
from cluster.quorum import controller_address, describe_quorum, settled_leader  # noqa: E402
from conftest import free_port  # noqa: E402
from test_cli import shoal  # noqa: E402

pytestmark = pytest.mark.shoal_only

NODES = 3
# An election on a loaded two-core machine (Kafka's election timeout is 1 s).
ELECTION_WAIT_S = 20.0
QUORUM_TOOL = "org.apache.kafka.tools.MetadataQuorumCommand"


def parse_status(text):
    """({field: value}, {first header: [row as {header: cell}]}) of the
    output: blocks apart by blank lines, each either `Name:  value` lines or
    a table whose cells end in tabs."""
    fields, tables = {}, {}
    for block in text.strip("\n").split("\n\n"):
        lines = block.splitlines()
        if "\t" in lines[0]:
            header = [cell.strip() for cell in lines[0].rstrip("\t").split("\t")]
            tables[header[0]] = [dict(zip(header, (cell.strip() for cell in line.rstrip("\t").split("\t"))))
                                 for line in lines[1:]]
        else:
            for line in lines:
                name, _, value = line.partition(":")
                fields[name] = value.strip()
    return fields, tables


def status(*args):
    fields, tables = parse_status(shoal("cluster", "status", *args).stdout.decode())
    return fields, tables


def failed_status(*args):
    """The result of a status that must fail: exit 1 and one stderr line."""
    result = shoal("cluster", "status", *args, check=False)
    stderr = result.stderr.decode()
    assert result.returncode == 1, (result.returncode, result.stdout, stderr)
    assert len(stderr.splitlines()) == 1, stderr
    return result.stdout.decode(), stderr


def dead_address():
    return f"127.0.0.1:{free_port()}"


def kafka_tools_present():
    """As kafka_tools.require_tools checks, without skipping the test."""
    return (shutil.which("java") is not None and os.path.isdir(kafka_tools.JARS)
            and any(name.startswith("kafka-tools-") for name in os.listdir(kafka_tools.JARS)))


def test_status_of_three_voters_names_the_leader_and_each_voters_end_offset():
    with Cluster(NODES, SHOAL_NODE) as cluster:
        leader, before = settled_leader(cluster, ELECTION_WAIT_S)
        leader_node = cluster.nodes[leader]
        followers = [node for node in cluster.nodes if node is not leader_node]
        # From a follower's listener, after an address nothing listens on.
        fields, tables = status("--bootstrap-controller", f"{dead_address()},{controller_address(followers[0])}")
        after = describe_quorum(controller_address(leader_node))
        assert after.leader_id == before.leader_id, "the leader changed while the test read it"

        assert fields["LeaderId"] == str(leader_node.node_id), fields
        assert fields["LeaderEpoch"] == str(after.leader_epoch)
        assert before.high_watermark <= int(fields["HighWatermark"]) <= after.high_watermark
        assert fields["CurrentVoters"].count('"id":') == NODES, fields
        assert fields["CurrentObservers"] == "[]"
        assert fields["ClusterId"] == cluster.cluster_id
        rows = tables["NodeId"]
        assert [row["Status"] for row in rows] == ["Leader", "Follower", "Follower"], rows
        assert rows[0]["NodeId"] == str(leader_node.node_id)
        for row in rows:
            node = cluster.nodes[int(row["NodeId"]) - 1]
            assert row["Endpoint"] == controller_address(node)
            end = int(row["LogEndOffset"])
            assert before.voters[node.node_id].log_end_offset <= end <= after.voters[node.node_id].log_end_offset
            assert row["LastCaughtUpTimestamp"].endswith(" ms ago"), row

        # Kafka's own tool names the same leader.
        if kafka_tools_present():
            printed = kafka_tools.run(QUORUM_TOOL, "--bootstrap-controller", controller_address(followers[1]),
                                      "describe", "--status")
            assert f"LeaderId:               {leader_node.node_id}\n" in printed, printed

        # A broker alone: the controller it knows and itself (brokers do not
        # register yet, so each node lists only itself).
        for node in cluster.nodes:
            fields, tables = status("--bootstrap-server", node.bootstrap)
            assert fields["ClusterId"] == cluster.cluster_id
            assert fields["ControllerId"] == str(leader_node.node_id), (node.node_id, fields)
            assert {"BrokerId": str(node.node_id), "Endpoint": node.bootstrap, "Rack": "-",
                    "Status": "Unfenced"} in tables["BrokerId"]
            assert fields["OfflinePartitionCount"] == "0"

        # Both: the whole picture, the cluster id once.
        output = shoal("cluster", "status", "--bootstrap-controller", controller_address(leader_node),
                       "--bootstrap-server", leader_node.bootstrap).stdout.decode()
        fields, tables = parse_status(output)
        assert output.count("ClusterId:") == 1, output
        assert fields["LeaderId"] == fields["ControllerId"] == str(leader_node.node_id)
        assert len(tables["NodeId"]) == NODES and tables["BrokerId"]


def test_status_of_a_single_node(broker, topic):
    b = broker.bootstrap
    shoal("topic", "create", topic, "--partitions", "3", "--bootstrap", b)
    fields, tables = status("--bootstrap-server", b)
    assert fields["ClusterId"] == clients.admin(b).list_topics(timeout=clients.REQUEST_TIMEOUT_S).cluster_id
    assert (fields["ControllerId"], fields["BrokerCount"], fields["FencedBrokerCount"]) == ("1", "1", "0")
    assert tables["BrokerId"] == [{"BrokerId": "1", "Endpoint": b, "Rack": "-", "Status": "Unfenced"}]
    assert int(fields["PartitionCount"]) >= 3
    assert fields["OfflinePartitionCount"] == "0"
    assert "Topic" not in tables

    # A lone node has no CONTROLLER listener; its broker port is no
    # controller and says so in one line.
    stdout, stderr = failed_status("--bootstrap-controller", b)
    assert stdout == ""
    assert stderr.startswith("Error: no controller answered: ") and b in stderr, stderr


def test_unreachable_addresses_fail_in_one_line_after_what_was_reached(broker):
    first, second = dead_address(), dead_address()
    for option in ("--bootstrap-server", "--bootstrap-controller"):
        stdout, stderr = failed_status(option, f"{first},{second}")
        assert stdout == ""
        assert first in stderr and second in stderr, stderr

    # A reachable broker and an unreachable controller: the brokers are
    # printed, then the failure.
    stdout, stderr = failed_status("--bootstrap-controller", first, "--bootstrap-server", broker.bootstrap)
    assert parse_status(stdout)[0]["BrokerCount"] == "1", stdout
    assert stderr.startswith("Error: no controller answered: ") and first in stderr, stderr
