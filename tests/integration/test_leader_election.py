"""Leadership that moves on purpose (issue 15, scope 6) on a three-node
cluster, RF=3 topics with `min.insync.replicas=2`:

- ElectLeaders: after a broker is killed and comes back, the partitions it
  preferred (first in their replicas) are led by others;
  `kafka-leader-election --election-type PREFERRED --all-topic-partitions`
  (Kafka's own tool, through any node: a broker forwards it to the active
  controller) moves each back to its preferred replica, one leader epoch
  on; `shoal topic elect-leaders` then finds nothing left to elect;
- `auto.leader.rebalance.enable`: with a short
  `leader.imbalance.check.interval.seconds`, the controller does the same
  by itself;
- a clean shutdown (SIGTERM) of a partition leader under an `acks=all`
  idempotent load: the controller moves its leaderships away and takes it
  out of the ISRs before it lets the broker stop, so the producers see no
  error that is not retried, and the other nodes show the moves by the
  time the process has exited.

Nodes are started as test_cluster_placement.py starts them (tests/cluster)."""

import os
import re
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import kafka_tools  # noqa: E402
from cluster import Cluster  # noqa: E402
from cluster import checker  # noqa: E402
from cluster.waiting import SHOAL_NODE, wait_until  # noqa: E402
from test_cli import shoal  # noqa: E402
from test_alter_partition_cluster import partitions_of  # noqa: E402
from test_cluster_placement import quorum_leader  # noqa: E402

pytestmark = pytest.mark.shoal_only

NODES = 3
PARTITIONS = 6
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 500
FAST_FENCING = f" broker.session.timeout.ms={SESSION_TIMEOUT_MS} broker.heartbeat.interval.ms={HEARTBEAT_INTERVAL_MS}"
NO_REBALANCE = SHOAL_NODE + FAST_FENCING + " auto.leader.rebalance.enable=false"
REBALANCE_INTERVAL_S = 2
QUICK_REBALANCE = SHOAL_NODE + FAST_FENCING + f" leader.imbalance.check.interval.seconds={REBALANCE_INTERVAL_S}"
# Registration, an election and every node's install on a loaded two-core machine.
SETTLE_WAIT_S = 60.0
# A session timeout, the moves' commit, and a returning follower's catch-up.
MOVE_WAIT_S = 45.0
LEADER_ELECTION = "org.apache.kafka.tools.LeaderElectionCommand"
# The load before and after the shutdown.
LOAD_SECONDS = 4.0
# What "the other nodes show it by the time the process exited" allows:
# a client's metadata round trips to two nodes, one of them refused first
# (the stopped broker), well under the 6 s session timeout a fencing
# would take.
SEEN_AFTER_EXIT_S = 30.0


def states(bootstrap, topic):
    """{partition: (leader, replicas in order, sorted isr)} per Metadata."""
    md = checker.admin(bootstrap).list_topics(topic, timeout=checker.ADMIN_TIMEOUT_S)
    meta = md.topics.get(topic)
    if meta is None or meta.error is not None:
        return {}
    return {p: (pm.leader, list(pm.replicas), sorted(pm.isrs)) for p, pm in meta.partitions.items()}


def agreed(cluster, indexes, topic):
    """The states every node of `indexes` shows alike, or None."""
    seen = [states(cluster.nodes[i].bootstrap, topic) for i in indexes]
    return seen[0] if len(seen[0]) == PARTITIONS and all(s == seen[0] for s in seen) else None


def preferred_lead(state):
    return all(leader == replicas[0] for leader, replicas, _ in state.values())


def full_isr(state, ids):
    return all(isr == ids for _, _, isr in state.values())


def failed_over(cluster, topic):
    """Kills and restarts a broker that is not the quorum leader, and waits
    until it is back in every ISR; returns (its id, the states then), where
    the partitions it prefers are led by others."""
    ids = sorted(node.node_id for node in cluster.nodes)
    everyone = list(range(NODES))
    victim = next(i for i in everyone if i != quorum_leader(cluster))
    dead = cluster.nodes[victim].node_id
    cluster.kill9(victim)
    rest = [i for i in everyone if i != victim]
    wait_until(lambda: (s := agreed(cluster, rest, topic)) and all(lead != dead for lead, _, _ in s.values()),
               MOVE_WAIT_S, f"broker {dead}'s partitions to move away")
    cluster.restart(victim)
    back = wait_until(lambda: (s := agreed(cluster, everyone, topic)) and full_isr(s, ids) and s, MOVE_WAIT_S,
                      f"broker {dead} back in every ISR")
    return dead, back


def make_topic(cluster, topic):
    ids = sorted(node.node_id for node in cluster.nodes)
    wait_until(lambda: checker.live_brokers(cluster.nodes[0].bootstrap) == ids, SETTLE_WAIT_S,
               "three live brokers")
    assert checker.create_topic(cluster.nodes[0].bootstrap, topic, PARTITIONS) is None
    start = wait_until(lambda: (s := agreed(cluster, range(NODES), topic)) and full_isr(s, ids) and s,
                       SETTLE_WAIT_S, "every node to show the topic fully in sync")
    assert preferred_lead(start), start
    return ids, start


def test_kafka_leader_election_moves_leadership_back_to_the_preferred_replicas():
    kafka_tools.require_tools()
    with Cluster(NODES, NO_REBALANCE) as cluster:
        topic = "elect"
        make_topic(cluster, topic)
        dead, back = failed_over(cluster, topic)
        moved = {p for p, (lead, replicas, _) in back.items() if replicas[0] == dead}
        assert moved and all(back[p][0] != dead for p in moved), back
        # Without the rebalance, nothing moves back by itself.
        time.sleep(REBALANCE_INTERVAL_S * 2)
        assert not preferred_lead(states(cluster.nodes[0].bootstrap, topic))

        # Through a node that is not the controller: forwarded.
        follower = next(i for i in range(NODES) if i != quorum_leader(cluster))
        bootstrap = cluster.nodes[follower].bootstrap
        output = kafka_tools.run(LEADER_ELECTION, "--bootstrap-server", bootstrap,
                                 "--election-type", "PREFERRED", "--all-topic-partitions")
        assert "Successfully completed leader election (PREFERRED) for partitions" in output, output
        for p in moved:
            assert f"{topic}-{p}" in output, output
        after = wait_until(lambda: (s := agreed(cluster, range(NODES), topic)) and preferred_lead(s) and s,
                           MOVE_WAIT_S, "the preferred replicas to lead again")
        assert full_isr(after, sorted(back[0][1])), after

        # Nothing left to elect: Kafka's answer, in Kafka's tool's words.
        result = shoal("topic", "elect-leaders", "--topic", topic, "--partition", str(min(moved)),
                       "--bootstrap", bootstrap)
        assert f"Valid replica already elected for partitions {topic}-{min(moved)}" in result.stdout.decode()
        result = shoal("topic", "elect-leaders", "--topic", "no-such-topic", "--partition", "0",
                       "--bootstrap", bootstrap, check=False)
        assert result.returncode != 0
        assert "UNKNOWN_TOPIC_OR_PARTITION" in result.stdout.decode(), result


def test_the_controller_rebalances_leadership_by_itself():
    with Cluster(NODES, QUICK_REBALANCE) as cluster:
        topic = "rebalance"
        make_topic(cluster, topic)
        victim = next(i for i in range(NODES) if i != quorum_leader(cluster))
        dead = cluster.nodes[victim].node_id
        cluster.kill9(victim)
        rest = [i for i in range(NODES) if i != victim]
        wait_until(lambda: (s := agreed(cluster, rest, topic)) and all(lead != dead for lead, _, _ in s.values()),
                   MOVE_WAIT_S, f"broker {dead}'s partitions to move away")
        cluster.restart(victim)
        wait_until(lambda: (s := agreed(cluster, range(NODES), topic)) and preferred_lead(s),
                   MOVE_WAIT_S + REBALANCE_INTERVAL_S, "the rebalance to bring the preferred leaders back")


def test_sigterm_moves_leadership_before_the_broker_exits():
    with Cluster(NODES, NO_REBALANCE) as cluster:
        topic = "shutdown"
        ids, start = make_topic(cluster, topic)
        load = checker.Load(cluster, topic, PARTITIONS).start()
        try:
            time.sleep(LOAD_SECONDS)
            stopped = next(i for i in range(NODES) if i != quorum_leader(cluster))
            stopped_id = cluster.nodes[stopped].node_id
            assert any(lead == stopped_id for lead, _, _ in start.values())
            assert cluster.stop(stopped) == 0
            log = "".join(open(path, errors="replace").read() for path in cluster.nodes[stopped].log_paths)
            assert re.search(r"controlled shutdown: the controller lets this broker stop", log), \
                cluster.nodes[stopped].log_tail()
            rest = [i for i in range(NODES) if i != stopped]

            def moved_away():
                # Each node asked itself, over one connection (Metadata v9).
                seen = [partitions_of(cluster.nodes[i].bootstrap, topic) for i in rest]
                return all(len(state) == PARTITIONS and all(lead != stopped_id and stopped_id not in isr
                                                            for _, lead, _, _, isr, _ in state.values())
                           for state in seen)

            wait_until(moved_away, SEEN_AFTER_EXIT_S, f"broker {stopped_id} out of every leadership and ISR")
            time.sleep(LOAD_SECONDS)
        finally:
            load.stop()
        assert load.acked() > 0
        assert not load.history.errors, load.history.errors[:5]
