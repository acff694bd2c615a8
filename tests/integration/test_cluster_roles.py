"""A cluster of pure roles (issue 14): three controllers
(`process.roles=controller`, the quorum's voters, no client listener) and
two pure brokers (`process.roles=broker`, observers of the metadata log),
each in its own network namespace through the cluster harness. The same
test runs on Apache Kafka from its jars, the reference for every answer.

Seen from the brokers' listeners as clients see it: Metadata and
DescribeCluster list the two brokers and never a controller, and name a
broker as the controller (Kafka's clients cannot reach a controller); a
topic's partitions are spread over both brokers and none over a
controller; clients produce through one broker and read through the other;
Java's producer with its default configuration (idempotent: a producer id
block from the active controller) writes through a pure broker. A broker
killed with -9 is fenced once its session runs out and the partitions it
led are reported offline (replication factor 1); restarted, it is
unfenced and serves them again, with every record written before. The
quorum leader killed, the other two controllers elect another and a topic
is created through a broker again."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import clients  # noqa: E402
import kafka_wire  # noqa: E402
from cluster import Cluster  # noqa: E402
from cluster import roles  # noqa: E402
from cluster.quorum import create_topic, describe_cluster, settled_leader  # noqa: E402
from cluster.waiting import KAFKA_NODE, SHOAL_NODE, wait_until  # noqa: E402
from records import make_records  # noqa: E402
from test_java_clients import flat, java, java_programs  # noqa: E402,F401

# Five processes (five JVMs for Kafka) on a loaded two-core machine, a fence,
# a restart and an election.
pytestmark = [pytest.mark.shoal_only, pytest.mark.timeout(420)]

ROLES = [roles.CONTROLLER] * 3 + [roles.BROKER] * 2
TOPIC = "spread"
PARTITIONS = 12
PER_PARTITION = 5
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 500
OVERRIDES = (f" broker.session.timeout.ms={SESSION_TIMEOUT_MS}"
             f" broker.heartbeat.interval.ms={HEARTBEAT_INTERVAL_MS}")
NODE_COMMANDS = {"shoal": SHOAL_NODE + OVERRIDES, "kafka": KAFKA_NODE + OVERRIDES}
# Registrations and a heartbeat or two on a loaded machine (JVMs start slowly).
SETTLE_WAIT_S = 60.0
# A killed broker is fenced a session timeout after its last heartbeat.
FENCE_WAIT_S = 2 * SESSION_TIMEOUT_MS / 1000 + 15
ELECTION_WAIT_S = 30.0
NO_LEADER = -1
ERR_TOPIC_ALREADY_EXISTS = 36


def brokers_seen(node):
    """(controller id, {broker id: fenced}, sorted live ids in Metadata) as
    `node`'s broker listener answers."""
    controller_id, listed = describe_cluster(node.bootstrap)
    live, _ = kafka_wire.metadata(node.bootstrap, [], False)
    return controller_id, listed, sorted(broker_id for broker_id, _, _ in live)


def all_see(nodes, expected):
    """Every node of `nodes` lists exactly `expected` ({id: fenced}) in
    DescribeCluster and the unfenced ones in Metadata, and names a live
    broker the controller."""
    live = sorted(i for i, fenced in expected.items() if not fenced)
    for node in nodes:
        controller_id, listed, in_metadata = brokers_seen(node)
        if listed != expected or in_metadata != live or controller_id not in live:
            return False
    return True


def agreed_leaders(nodes, topic, partitions=PARTITIONS):
    """The topic's leaders once every node of `nodes` names the same ones."""
    seen = [kafka_wire.leaders(node.bootstrap, topic) for node in nodes]
    first = seen[0]
    return first if len(first) == partitions and all(s == first for s in seen) else None


def created(bootstrap, name, partitions):
    """CreateTopics through one broker succeeded (or did before, when the
    answer to an earlier try was lost)."""
    return create_topic(bootstrap, name, partitions) in (kafka_wire.ERR_NONE, ERR_TOPIC_ALREADY_EXISTS)


@pytest.mark.parametrize("implementation", ["shoal", "kafka"])
def test_three_controllers_and_two_pure_brokers(implementation):
    with Cluster(len(ROLES), NODE_COMMANDS[implementation], roles=ROLES) as cluster:
        controllers = cluster.controllers()
        first, second = (cluster.nodes[i] for i in cluster.brokers())
        brokers = [first, second]
        ids = sorted(node.node_id for node in brokers)
        wait_until(lambda: all_see(brokers, {i: False for i in ids}), SETTLE_WAIT_S,
                   "both brokers to list the two brokers and no controller")

        # Partitions spread over the two brokers, none over a controller.
        wait_until(lambda: created(first.bootstrap, TOPIC, PARTITIONS), SETTLE_WAIT_S, f"{TOPIC} created")
        placed = wait_until(lambda: agreed_leaders(brokers, TOPIC), SETTLE_WAIT_S, "both brokers to agree")
        assert sorted(set(placed.values())) == ids, placed

        # Written through one broker, read through the other; Java's
        # default (idempotent) producer through a pure broker.
        records = make_records(seed=TOPIC, partitions=PARTITIONS, per_partition=PER_PARTITION)
        clients.produce_records(first.bootstrap, TOPIC, records)
        clients.assert_read_back(second.bootstrap, TOPIC, records)
        java_topic = "java-default"
        wait_until(lambda: created(second.bootstrap, java_topic, 2), SETTLE_WAIT_S, f"{java_topic} created")
        java_records = make_records(seed=java_topic, partitions=2, per_partition=PER_PARTITION)
        acks = java("produce", "-brokers", second.bootstrap, "-topic", java_topic, "-default-config", "true",
                    records=flat(java_records))
        assert len(acks) == 2 * PER_PARTITION, acks

        # kill -9 a broker: fenced, its partitions offline; back: unfenced,
        # leading them again, every record there.
        cluster.kill9(second.index)
        wait_until(lambda: all_see([first], {first.node_id: False, second.node_id: True}), FENCE_WAIT_S,
                   f"broker {second.node_id} fenced")
        offline = {p: NO_LEADER if led_by == second.node_id else led_by for p, led_by in placed.items()}
        wait_until(lambda: agreed_leaders([first], TOPIC) == offline, SETTLE_WAIT_S,
                   f"the partitions of broker {second.node_id} offline")
        cluster.restart(second.index)
        wait_until(lambda: all_see(brokers, {i: False for i in ids}), SETTLE_WAIT_S,
                   f"broker {second.node_id} unfenced")
        wait_until(lambda: agreed_leaders(brokers, TOPIC) == placed, SETTLE_WAIT_S,
                   f"broker {second.node_id} leading its partitions again")
        clients.assert_read_back(second.bootstrap, TOPIC, records)

        # kill -9 the quorum leader: the other controllers elect another and
        # the cluster takes metadata changes through a broker again.
        leader, _ = settled_leader(cluster, ELECTION_WAIT_S)
        assert leader in controllers
        cluster.kill9(leader)
        wait_until(lambda: created(first.bootstrap, "after-failover", 2), ELECTION_WAIT_S + SETTLE_WAIT_S,
                   "a topic created after the quorum leader died")
        after = wait_until(lambda: agreed_leaders(brokers, "after-failover", 2), SETTLE_WAIT_S,
                           "both brokers to agree on the new topic")
        assert NO_LEADER not in after.values(), after
        cluster.restart(leader)
        settled_leader(cluster, ELECTION_WAIT_S)
