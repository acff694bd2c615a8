"""The console's admin actions on a three-node cluster: a topic created
through a node that is not the controller is forwarded to it (as Kafka's
CreateTopics is) and every node's Metadata lists it; a group reset asked of
a node that does not coordinate the group is refused with 409
NOT_COORDINATOR naming the node that does (the console does not relay)."""

import json
import os
import sys
import urllib.error
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import clients  # noqa: E402
import kafka_wire  # noqa: E402
from cluster import Cluster  # noqa: E402
from cluster.waiting import SHOAL_NODE, wait_until  # noqa: E402

pytestmark = [pytest.mark.shoal_only, pytest.mark.timeout(300)]

NODES = 3
# Each node's admin listener, on its own address (a namespace each) or
# its own port (loopback mode): 1964<node id>.
NODE_COMMAND = SHOAL_NODE + " admin.listeners=http://{host}:1964{node_id} admin.console.actions.enabled=true"
SETTLE_WAIT_S = 60.0
HTTP_TIMEOUT_S = 30


def admin_url(node):
    return f"http://{node.host}:1964{node.node_id}"


def call(url, payload=None):
    """(status, JSON body) of a GET, or of a console POST with `payload`."""
    headers = {}
    data = None
    if payload is not None:
        headers = {"Content-Type": "application/json", "X-Shoal-Console": "1"}
        data = json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_actions_through_any_node_of_a_cluster():
    with Cluster(NODES, NODE_COMMAND) as cluster:
        wait_until(lambda: all(len(kafka_wire.metadata(node.bootstrap, [], False)[0]) == NODES
                               for node in cluster.nodes), SETTLE_WAIT_S, "every node to list three brokers")
        status, brokers = call(f"{admin_url(cluster.nodes[0])}/v1/console/brokers")
        assert status == 200, brokers
        controller = brokers["controller_id"]
        follower = next(node for node in cluster.nodes if node.node_id != controller)

        topic = "console-cluster"
        status, answer = call(f"{admin_url(follower)}/v1/console/actions/create-topic",
                              {"name": topic, "partitions": 3, "replication_factor": 3})
        assert status == 200 and answer["partitions"] == 3, answer
        for node in cluster.nodes:
            clients.wait_for_partitions(node.bootstrap, topic, 3, timeout_s=SETTLE_WAIT_S)
        status, answer = call(f"{admin_url(follower)}/v1/console/actions/create-topic",
                              {"name": topic, "partitions": 3, "replication_factor": 3})
        assert (status, answer["error"]) == (409, "TOPIC_ALREADY_EXISTS"), answer

        # Exactly one node coordinates the group; the others name it.
        group = "console-cluster-group"
        reset = {"group": group, "topic": topic, "to": "earliest"}
        answers = {}

        def every_node_answered():
            for node in cluster.nodes:
                answers[node.node_id] = call(f"{admin_url(node)}/v1/console/actions/reset-offsets", reset)
            return all(status != 503 for status, _ in answers.values())

        wait_until(every_node_answered, SETTLE_WAIT_S, "every node's answer, __consumer_offsets led")
        refused = {node_id: answer for node_id, (status, answer) in answers.items()
                   if answer.get("error") == "NOT_COORDINATOR"}
        assert len(refused) == NODES - 1, answers
        coordinator = next(node_id for node_id in answers if node_id not in refused)
        for answer in refused.values():
            assert f"node {coordinator} " in answer["message"], answer
        # The coordinator resets the group where it leads every partition;
        # else it names the leader of one it does not.
        status, answer = answers[coordinator]
        assert status == 200 or (status, answer["error"]) == (409, "NOT_LEADER_OR_FOLLOWER"), answer
