"""Brokers in a cluster (issue 14, scope 2): three combined nodes, each
registering with the active controller and heartbeating
(BrokerRegistration and BrokerHeartbeat on the CONTROLLER listener), with a
short `broker.session.timeout.ms` so that fencing is quick to see.

Seen from the brokers' listeners as clients see it: Metadata lists the
live brokers; DescribeCluster v2 with include_fenced_brokers lists the
fenced ones too, marked. A broker killed with -9 is fenced once its session
runs out; the partitions it led lose their leader (RF 1), the others keep
theirs, and it leads them again when it returns, unfenced under a new broker epoch. SIGTERM is a controlled
shutdown: fenced at once, well before the session could run out."""

import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import kafka_wire  # noqa: E402
from cluster import Cluster  # noqa: E402
from cluster import waiting  # noqa: E402
from cluster.waiting import wait_until  # noqa: E402
from cluster.quorum import QuorumError, create_topic, describe_cluster, describe_quorum  # noqa: E402

pytestmark = pytest.mark.shoal_only

NODES = 3
# Two partitions led by each of the three brokers.
SPREAD_PARTITIONS = 6
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 500
SHOAL_NODE = (waiting.SHOAL_NODE
              + f" broker.session.timeout.ms={SESSION_TIMEOUT_MS}"
              + f" broker.heartbeat.interval.ms={HEARTBEAT_INTERVAL_MS}")
# An election, registrations and a heartbeat or two on a loaded two-core machine.
CONVERGE_WAIT_S = 30.0
# A killed broker is fenced a session timeout after its last heartbeat (and
# a new quorum leader gives every broker a fresh session first).
FENCE_WAIT_S = 2 * SESSION_TIMEOUT_MS / 1000 + 15
# A controlled shutdown fences the broker before the process exits: seen
# within well under a session timeout of the exit.
CONTROLLED_FENCE_WAIT_S = SESSION_TIMEOUT_MS / 1000 / 2
NO_LEADER = -1


def metadata_brokers(node):
    brokers, _ = kafka_wire.metadata(node.bootstrap, [], False)
    return sorted(broker_id for broker_id, _, _ in brokers)


def quorum_leader(cluster, indexes):
    """The index of the node among `indexes` that leads the quorum."""

    def leader():
        for i in indexes:
            try:
                quorum = describe_quorum(f"{cluster.nodes[i].host}:{cluster.nodes[i].controller_port}")
            except QuorumError:
                continue
            if quorum.leader_id == cluster.nodes[i].node_id and quorum.high_watermark > 0:
                return i + 1
        return None

    return wait_until(leader, CONVERGE_WAIT_S, "a quorum leader") - 1


def registered_epochs(node):
    """The broker epochs node's broker was given, from its logs."""
    epochs = []
    for path in node.log_paths:
        with open(path, errors="replace") as f:
            epochs += [int(e) for e in re.findall(r"broker registered with epoch (\d+)", f.read())]
    return epochs


def all_see(cluster, indexes, expected):
    """Every node of `indexes` lists exactly `expected` ({id: fenced}) in
    DescribeCluster, and the unfenced ones in Metadata."""
    live = sorted(i for i, fenced in expected.items() if not fenced)
    for i in indexes:
        node = cluster.nodes[i]
        if describe_cluster(node.bootstrap)[1] != expected or metadata_brokers(node) != live:
            return False
    return True


def test_brokers_register_are_fenced_when_silent_and_return():
    with Cluster(NODES, SHOAL_NODE) as cluster:
        everyone = list(range(NODES))
        ids = [node.node_id for node in cluster.nodes]
        wait_until(lambda: all_see(cluster, everyone, {i: False for i in ids}), CONVERGE_WAIT_S,
                   "every node to list three live brokers")
        leader = quorum_leader(cluster, everyone)
        victim = next(i for i in everyone if i != leader)
        victim_id = ids[victim]
        first_epochs = registered_epochs(cluster.nodes[victim])
        assert first_epochs, "the victim logged no registration"

        # kill -9: fenced once its session runs out, listed as such.
        cluster.kill9(victim)
        rest = [i for i in everyone if i != victim]
        fenced = {i: i == victim_id for i in ids}
        wait_until(lambda: all_see(cluster, rest, fenced), FENCE_WAIT_S, f"broker {victim_id} fenced")

        # Back: unfenced under a new epoch.
        cluster.restart(victim)
        wait_until(lambda: all_see(cluster, everyone, {i: False for i in ids}), CONVERGE_WAIT_S,
                   f"broker {victim_id} unfenced")
        later = registered_epochs(cluster.nodes[victim])
        assert len(later) > len(first_epochs) and later[-1] > first_epochs[-1], (first_epochs, later)

        # A topic's partitions are spread over the three brokers; the
        # quorum leader's broker is killed: the other two elect a new
        # leader, fence it, and report the partitions it led leaderless,
        # the others led as before; back, it leads its own again.
        assert create_topic(cluster.nodes[leader].bootstrap, "lifecycle", SPREAD_PARTITIONS) == kafka_wire.ERR_NONE
        leader_id = ids[leader]

        def agreed_leaders(indexes):
            maps = [kafka_wire.leaders(cluster.nodes[i].bootstrap, "lifecycle") for i in indexes]
            first = maps[0]
            agreed = len(first) == SPREAD_PARTITIONS and all(m == first for m in maps)
            return first if agreed else None

        placed = wait_until(lambda: agreed_leaders(everyone), CONVERGE_WAIT_S, "every node to agree on the leaders")
        assert set(placed.values()) == set(ids), placed
        theirs = {p for p, led_by in placed.items() if led_by == leader_id}
        orphaned = {p: NO_LEADER if p in theirs else led_by for p, led_by in placed.items()}
        cluster.kill9(leader)
        rest = [i for i in everyone if i != leader]
        fenced = {i: i == leader_id for i in ids}
        wait_until(lambda: all_see(cluster, rest, fenced), FENCE_WAIT_S, f"broker {leader_id} fenced")
        wait_until(lambda: agreed_leaders(rest) == orphaned, CONVERGE_WAIT_S, "its partitions leaderless")
        cluster.restart(leader)
        wait_until(lambda: all_see(cluster, everyone, {i: False for i in ids}), CONVERGE_WAIT_S,
                   f"broker {leader_id} unfenced")
        wait_until(lambda: agreed_leaders(everyone) == placed, CONVERGE_WAIT_S, "its partitions led by it again")

        # SIGTERM: a controlled shutdown fences it before it exits.
        leader = quorum_leader(cluster, everyone)
        stopped = next(i for i in everyone if i != leader)
        stopped_id = ids[stopped]
        assert cluster.stop(stopped) == 0
        rest = [i for i in everyone if i != stopped]
        fenced = {i: i == stopped_id for i in ids}
        wait_until(lambda: all_see(cluster, rest, fenced), CONTROLLED_FENCE_WAIT_S,
                   f"broker {stopped_id} fenced by its controlled shutdown")
