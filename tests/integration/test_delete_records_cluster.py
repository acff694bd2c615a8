"""DeleteRecords on a replicated partition (issue 15), as Kafka's leader
answers it: once the low watermark, the lowest log start among the replicas
on alive brokers (registered, unfenced), reaches the offset asked for.

On a three-node cluster, an RF=3 partition led by the quorum leader:
- with every replica up, the answer comes once both followers have moved
  their own log start there (each follows its leader's log start as it
  fetches), so their checkpoints hold it when the answer arrives;
- with one follower killed (`kill -9`), the answer still comes, once the
  controller fences the dead broker (which then no longer counts), well
  within the request's timeout; the live follower holds the new start;
- the killed follower, restarted, moves its log start there too.

Nodes are started as test_cluster_placement.py starts them (tests/cluster),
with a shorter broker session (as the fault tests use) so the fence comes
sooner."""

import os
import sys
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import clients  # noqa: E402
from cluster import Cluster  # noqa: E402
from cluster.faults import node_command  # noqa: E402
from cluster.waiting import SHOAL_NODE, wait_until  # noqa: E402
from test_alter_partition_cluster import partitions_of  # noqa: E402
from test_cluster_placement import quorum_leader  # noqa: E402
from test_reassign_cluster import settled  # noqa: E402

pytestmark = [pytest.mark.shoal_only, pytest.mark.timeout(300)]

NODES = 3
TOPIC = "purged"
RECORDS = 100
FIRST_CUT = 20
SECOND_CUT = 40
# DeleteRecords' `timeout_ms` (librdkafka's operation timeout): far more
# than the fence takes (a 6 s session, its commit, every node's install).
OPERATION_TIMEOUT_S = 30.0
# The client's own wait for the answer, past the broker's.
REQUEST_TIMEOUT_S = OPERATION_TIMEOUT_S + 15.0
# Registration, an election, a restart and catching up on a loaded
# two-core machine.
SETTLE_WAIT_S = 60.0
CHECKPOINT_FILE = "shoal.checkpoint"
# shoal's data dir in a node's (tests/cluster/shoal-node).
LOG_DIR = "log"


def create(bootstrap, assignment):
    admin = clients.admin(bootstrap)
    topic = NewTopic(TOPIC, num_partitions=1, replication_factor=-1, replica_assignment=[assignment],
                     config={"min.insync.replicas": "2"})
    admin.create_topics([topic], request_timeout=clients.REQUEST_TIMEOUT_S)[TOPIC].result(
        timeout=clients.REQUEST_TIMEOUT_S)


def delete_records(bootstrap, offset):
    """(error code, low watermark or None) of DeleteRecords on partition 0."""
    admin = clients.admin(bootstrap)
    futures = admin.delete_records([TopicPartition(TOPIC, 0, offset)], request_timeout=REQUEST_TIMEOUT_S,
                                   operation_timeout=OPERATION_TIMEOUT_S)
    (future,) = futures.values()
    try:
        return KafkaError.NO_ERROR, future.result(timeout=REQUEST_TIMEOUT_S).low_watermark
    except KafkaException as e:
        return e.args[0].code(), None


def log_start(node):
    """The log start offset `node`'s replica of the partition checkpointed
    (None before its first checkpoint)."""
    path = os.path.join(node.data_dir, LOG_DIR, f"{TOPIC}-0", CHECKPOINT_FILE)
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        key, _, value = line.partition(" ")
        if key == "log_start_offset":
            return int(value)
    return None


def test_delete_records_waits_for_the_alive_replicas_and_not_for_a_killed_one():
    with Cluster(NODES, node_command(SHOAL_NODE, lag=False)) as cluster:
        ids = settled(cluster)
        at = quorum_leader(cluster)
        bootstrap = cluster.nodes[at].bootstrap
        # Led by the quorum leader, so the follower killed is no controller.
        leader = cluster.nodes[at]
        followers = [node for node in cluster.nodes if node is not leader]
        create(bootstrap, [leader.node_id] + [node.node_id for node in followers])
        wait_until(lambda: partitions_of(bootstrap, TOPIC).get(0, (None, None, 0, [], []))[4] == ids,
                   SETTLE_WAIT_S, "every replica in the ISR")
        producer = clients.producer(bootstrap)
        for i in range(RECORDS):
            producer.produce(TOPIC, value=b"%04d" % i, partition=0)
        clients.flush(producer)

        # Every replica up: answered once both followers moved their start.
        assert delete_records(bootstrap, FIRST_CUT) == (KafkaError.NO_ERROR, FIRST_CUT)
        assert [log_start(node) for node in followers] == [FIRST_CUT, FIRST_CUT]

        victim, survivor = followers
        cluster.kill9(cluster.nodes.index(victim))
        started = time.monotonic()
        assert delete_records(bootstrap, SECOND_CUT) == (KafkaError.NO_ERROR, SECOND_CUT)
        assert time.monotonic() - started < OPERATION_TIMEOUT_S
        assert log_start(survivor) == SECOND_CUT
        assert log_start(victim) == FIRST_CUT
        assert clients.watermarks(bootstrap, TOPIC, 0) == (SECOND_CUT, RECORDS)

        # Back, it follows its leader's start.
        cluster.restart(cluster.nodes.index(victim))
        wait_until(lambda: log_start(victim) == SECOND_CUT, SETTLE_WAIT_S,
                   f"broker {victim.node_id} to move its log start to {SECOND_CUT}")
        got = clients.consume(bootstrap, TOPIC, {0: RECORDS - SECOND_CUT}, start_offsets={0: SECOND_CUT})
        assert [m.value() for m in got[0]] == [b"%04d" % i for i in range(SECOND_CUT, RECORDS)]
