"""Stray replicas (issue 15): a replica reassigned away, or a topic deleted,
while its node is stopped is deleted when the node comes back, as Kafka's
KRaft broker finds stray logs once it has caught up with the metadata
(KIP-858), and nothing else on the node is.

The stopped node is a pure broker (`process.roles=broker`): it catches up
with the metadata log before its shards start, so it never opens the
replica that moved away, and no metadata install deletes it (a voter
opens it from its own log's older image, and the install that brings the
move deletes it): the pure broker is the node a stray stays on. The
cluster is three combined nodes (the quorum's voters) and the pure broker,
as in test_pure_broker.py."""

import os
import sys

import pytest
from confluent_kafka.admin import NewTopic

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import clients  # noqa: E402
import kafka_wire  # noqa: E402
from cluster import Cluster  # noqa: E402
from cluster import roles  # noqa: E402
from cluster.waiting import SHOAL_NODE, wait_until  # noqa: E402
from test_alter_partition_cluster import partitions_of  # noqa: E402
from test_cli import shoal  # noqa: E402
from test_reassign_cluster import settled  # noqa: E402

# Four processes on a loaded two-core machine.
pytestmark = [pytest.mark.shoal_only, pytest.mark.timeout(300)]

ROLES = [roles.COMBINED] * 3 + [roles.BROKER]
RECORDS = 10
# Registrations, catching up, a reassignment and a restart on a loaded
# two-core machine.
SETTLE_WAIT_S = 60.0
STRAY_SUFFIX = "-stray"
# shoal's data dir in a node's (tests/cluster/shoal-node).
LOG_DIR = "log"


def create(bootstrap, assignments):
    """Topics {name: replica ids} of one partition each, RECORDS records in each."""
    admin = clients.admin(bootstrap)
    topics = [NewTopic(name, num_partitions=1, replication_factor=-1, replica_assignment=[replicas])
              for name, replicas in assignments.items()]
    for future in admin.create_topics(topics, request_timeout=clients.REQUEST_TIMEOUT_S).values():
        future.result(timeout=clients.REQUEST_TIMEOUT_S)
    for name, replicas in assignments.items():
        wait_until(lambda: partitions_of(bootstrap, name).get(0, (None, None, 0, [], []))[4] == sorted(replicas),
                   SETTLE_WAIT_S, f"every replica of {name} in its ISR")
        producer = clients.producer(bootstrap)
        for i in range(RECORDS):
            producer.produce(name, value=b"%s-%d" % (name.encode(), i), partition=0)
        clients.flush(producer)


def held(node):
    """The directories in `node`'s data directory."""
    data_dir = os.path.join(node.data_dir, LOG_DIR)
    return sorted(entry for entry in os.listdir(data_dir) if os.path.isdir(os.path.join(data_dir, entry)))


def unknown(bootstrap, topic):
    _, topics = kafka_wire.metadata(bootstrap, [topic], False)
    return topics[topic][0] == kafka_wire.ERR_UNKNOWN_TOPIC_OR_PARTITION


def test_replicas_moved_away_or_deleted_while_a_node_is_down_are_deleted_when_it_returns():
    with Cluster(len(ROLES), SHOAL_NODE, roles=ROLES) as cluster:
        settled(cluster)
        voter, other, third, victim = cluster.nodes
        bootstrap = voter.bootstrap
        create(bootstrap, {
            "moved": [other.node_id, victim.node_id],
            "gone": [victim.node_id],
            "kept": [victim.node_id, other.node_id],
        })
        before = held(victim)
        assert {"moved-0", "gone-0", "kept-0"} <= set(before), before

        cluster.stop(cluster.nodes.index(victim))
        shoal("topic", "reassign", "moved", "--partition", "0", "--replicas", f"{other.node_id},{third.node_id}",
              "--bootstrap", bootstrap)
        moved = sorted([other.node_id, third.node_id])
        wait_until(lambda: partitions_of(bootstrap, "moved").get(0, (None, None, 0, []))[3] == moved,
                   SETTLE_WAIT_S, "the reassignment to complete")
        admin = clients.admin(bootstrap)
        admin.delete_topics(["gone"], request_timeout=clients.REQUEST_TIMEOUT_S)["gone"].result(
            timeout=clients.REQUEST_TIMEOUT_S)
        wait_until(lambda: unknown(bootstrap, "gone"), SETTLE_WAIT_S, "the topic gone to be deleted")

        cluster.restart(cluster.nodes.index(victim))
        after = [name for name in before if name not in ("moved-0", "gone-0")]
        wait_until(lambda: held(victim) == after, SETTLE_WAIT_S,
                   f"broker {victim.node_id} to delete its stray replicas (it holds {held(victim)})")
        assert not [name for name in held(victim) if name.endswith(STRAY_SUFFIX)]
        with open(victim.log_paths[-1], errors="replace") as log:
            said = log.read()
        assert "stray replica moved-0" in said, victim.log_tail()
        # "gone" was never opened: the start's clean-up of topics no longer
        # in the metadata took it before the shards ran.
        assert "stray replica kept-0" not in said

        # What it still replicates is whole, and the moved partition too.
        for name in ("kept", "moved"):
            got = clients.consume(bootstrap, name, {0: RECORDS})
            assert [m.value() for m in got[0]] == [b"%s-%d" % (name.encode(), i) for i in range(RECORDS)]
