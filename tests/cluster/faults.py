"""The faults a replicated topic must survive, each made under the checker's
load (tests/cluster/checker.py) on a cluster of the harness, and `run_fault`,
which makes one and checks the history: the short matrix
(tests/integration/test_replication_faults.py) and the long run
(tests/faults/run) differ only in the rounds and seconds they pass.

A fault is `fault(run, rounds, seconds)`: `run` holds the cluster and the
topic (and gathers what the fault did in `run.events`, and what it saw go
wrong outside the history in `run.violations`), `rounds` how many times it
is made, `seconds` how long each time it is held. After each round the
fault heals what it broke and waits (bounded) until every node is up and
every replica of the topic back in sync, so rounds never pile up into a
loss of two replicas the fault did not mean.

Invariant: a fault leaves the cluster as it found it, every node running
and no firewall rule, whatever goes wrong (`heal` in a finally), and every
wait is bounded."""

import os
import sys
import time
import uuid
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checker  # noqa: E402
import quorum  # noqa: E402

# Kafka's broker session is 9 s by default; 6 s (with a heartbeat every
# 500 ms) fences a dead broker sooner.
SESSION_TIMEOUT_MS = 6000
OVERRIDES = {
    "broker.session.timeout.ms": SESSION_TIMEOUT_MS,
    "broker.heartbeat.interval.ms": 500,
}
# A follower that stops fetching leaves the ISR after this instead of
# Kafka's 30 s. shoal refuses a config it does not know, and knows this one
# only once it replicates: until then its nodes start without it.
LAG_OVERRIDES = {"replica.lag.time.max.ms": 5000}
PARTITIONS = 3
# A fault's round ends when the cluster is whole again: a JVM restarts in
# well under a minute on a loaded two-core machine, then catches up.
HEAL_WAIT_S = 120.0
QUORUM_WAIT_S = 60.0
POLL_S = 0.5
# Load before the first fault and after the last: records to lose.
WARM_UP_S = 3.0
COOL_DOWN_S = 3.0
# Acknowledgements already on their way when two replicas die: after this
# long none may come (min.insync.replicas=2 with one replica alive).
ACK_GRACE_S = 3.0
# Each node's data dir is a tmpfs of this size (for follower-disk-full):
# far more than a run writes, RAM taken only as written.
DATA_DISK_MB = 1024
LOSS_PROBABILITY = 0.2
DELAY_MS = 50
# Far above the spacing of a loaded link's packets: most leave out of order.
JITTER_MS = 20


def node_command(template, lag=True):
    """The harness's node command with the faults' broker overrides (and
    LAG_OVERRIDES when `lag`)."""
    overrides = {**OVERRIDES, **(LAG_OVERRIDES if lag else {})}
    return template + "".join(f" {key}={value}" for key, value in overrides.items())


def shoal_knows(key):
    """Whether the shoal binary ($SHOAL_BIN) names broker config `key` (it
    refuses to start with one it does not know; a config's name is a string
    in the binary once its parser reads it)."""
    path = os.environ.get("SHOAL_BIN")
    if not path or not os.path.isfile(path):
        return False
    with open(path, "rb") as f:
        return key.encode() in f.read()


def command_for(broker):
    """The node command of "kafka" or "shoal" with the faults' overrides."""
    from cluster.waiting import KAFKA_NODE, SHOAL_NODE

    if broker == "kafka":
        return node_command(KAFKA_NODE)
    return node_command(SHOAL_NODE, lag=all(shoal_knows(key) for key in LAG_OVERRIDES))


@dataclass
class Run:
    cluster: object
    topic: str
    partitions: int
    load: object = None
    events: list = field(default_factory=list)
    violations: list = field(default_factory=list)
    # Whether a node may exit by itself during this fault (a full disk:
    # Kafka halts); otherwise a node found exited that the fault did not
    # kill crashed, and that is a violation.
    exits_allowed: bool = False

    def note(self, what):
        self.events.append(f"{time.monotonic() - self.load.started:7.1f}s {what}")

    @property
    def bootstrap(self):
        return self.load.bootstrap


# The log lines a crashed node's violation quotes.
CRASH_LOG_LINES = 3


def _states(run):
    return checker.quietly(lambda: checker.partition_states(run.bootstrap, run.topic)) or {}


def leader(run, partition):
    """The node index leading `partition` (bounded wait for one)."""
    deadline = time.monotonic() + HEAL_WAIT_S
    while True:
        state = _states(run).get(partition)
        if state is not None and state[0] >= 0:
            return _index(run, state[0])
        if time.monotonic() >= deadline:
            raise AssertionError(f"no leader of {run.topic}-{partition} after {HEAL_WAIT_S}s")
        time.sleep(POLL_S)


def follower(run, partition):
    """A node index holding a replica of `partition` that does not lead it."""
    led_by = leader(run, partition)
    _leader, replicas, _isr = _states(run)[partition]
    return next(_index(run, r) for r in replicas if _index(run, r) != led_by)


def _index(run, node_id):
    return next(n.index for n in run.cluster.nodes if n.node_id == node_id)


def wait_healthy(run):
    """Every node running and answering, every replica in sync."""
    deadline = time.monotonic() + HEAL_WAIT_S
    for node in run.cluster.nodes:
        if not node.running:
            if not run.exits_allowed:
                last = node.log_tail(CRASH_LOG_LINES).strip().splitlines()
                run.violations.append(f"node {node.node_id} exited by itself (code {node.proc.returncode}): "
                                      + " / ".join(last))
            run.cluster.restart(node.index, wait=False)
        run.cluster.wait_ready(node.index, timeout_s=max(1.0, deadline - time.monotonic()))
    while not checker.quietly(lambda: checker.in_sync(run.bootstrap, run.topic, run.partitions)):
        if time.monotonic() >= deadline:
            raise AssertionError(f"{run.topic} not back in sync {HEAL_WAIT_S}s after the fault: {_states(run)}")
        time.sleep(POLL_S)
    run.note("healthy: every replica in sync")


def heal(run):
    """Undoes whatever a fault left: paused nodes resumed, firewall rules
    flushed, dead nodes restarted (by wait_healthy)."""
    cluster = run.cluster
    for node in cluster.nodes:
        if node.running:
            cluster.resume(node.index)
        if cluster.unavailable("disk-full") is None:
            cluster.free_disk(node.index)
    if cluster.unavailable("iptables") is None:
        cluster.heal_partitions()


def _kill_rounds(run, rounds, seconds, pick):
    """Each round: kill -9 of the node `pick(run, round)` gives (its index
    and what it is), down for `seconds`, restarted on its data, healthy."""
    for r in range(rounds):
        victim, what = pick(run, r)
        run.cluster.kill9(victim)
        run.note(f"round {r + 1}: kill -9 node {victim + 1}, {what}")
        time.sleep(seconds)
        run.cluster.restart(victim, wait=False)
        wait_healthy(run)


def kill_leader(run, rounds, seconds):
    """kill -9 of a partition's leader (a different partition each round)."""
    _kill_rounds(run, rounds, seconds,
                 lambda run, r: (leader(run, r % run.partitions), f"leader of partition {r % run.partitions}"))


def kill_follower(run, rounds, seconds):
    _kill_rounds(run, rounds, seconds,
                 lambda run, r: (follower(run, r % run.partitions), f"a follower of partition {r % run.partitions}"))


def kill_quorum_leader(run, rounds, seconds):
    """kill -9 of the metadata quorum's leader (the active controller)."""

    def pick(run, _round):
        victim, state = quorum.settled_leader(run.cluster, QUORUM_WAIT_S)
        return victim, f"quorum leader in epoch {state.leader_epoch}"

    _kill_rounds(run, rounds, seconds, pick)


def kill_two(run, rounds, seconds):
    """kill -9 of a leader and another node at once: one replica of three
    left, below min.insync.replicas, so writes stop; nothing acknowledged
    may be lost, and nothing may be acknowledged until they are back."""
    for r in range(rounds):
        first = leader(run, r % run.partitions)
        second = next(i for i in run.cluster.brokers() if i != first)
        run.cluster.kill9(first)
        run.cluster.kill9(second)
        run.note(f"round {r + 1}: kill -9 nodes {first + 1} and {second + 1}")
        time.sleep(ACK_GRACE_S)
        before = run.load.acked()
        time.sleep(max(0.0, seconds - ACK_GRACE_S))
        during = run.load.acked() - before
        run.note(f"acknowledged while one replica was alive: {during}")
        if during:
            run.violations.append(f"round {r + 1}: {during} records acknowledged with one replica of three alive")
        run.cluster.restart(first, wait=False)
        run.cluster.restart(second, wait=False)
        wait_healthy(run)


def pause_leader(run, rounds, seconds):
    """SIGSTOP of a partition's leader for `seconds` (shorter or longer than
    the broker session), then SIGCONT: a zombie that lost its leadership
    meanwhile must not acknowledge what it held."""
    for r in range(rounds):
        victim = leader(run, r % run.partitions)
        run.cluster.pause(victim)
        run.note(f"round {r + 1}: SIGSTOP node {victim + 1}, leader of partition {r % run.partitions}, "
                 f"for {seconds}s (session timeout {SESSION_TIMEOUT_MS / 1000}s)")
        try:
            time.sleep(seconds)
        finally:
            run.cluster.resume(victim)
        wait_healthy(run)


def _firewall_rounds(run, rounds, seconds, apply):
    """Each round: iptables rules `apply(run, round)` installs (returning
    what they do), held for `seconds`, flushed, then healthy."""
    _require(run, "iptables")
    for r in range(rounds):
        try:
            run.note(f"round {r + 1}: {apply(run, r)}")
            time.sleep(seconds)
        finally:
            run.cluster.heal_partitions()
        wait_healthy(run)


def cut_leader(run, rounds, seconds):
    """A partition's leader cut off from the other nodes (both ways; the
    clients still reach it): it must not acknowledge alone."""

    def apply(run, r):
        victim = leader(run, r % run.partitions)
        others = [i for i in run.cluster.brokers() if i != victim]
        run.cluster.partition([victim], others)
        return f"node {victim + 1}, leader of partition {r % run.partitions}, cut from nodes {[i + 1 for i in others]}"

    _firewall_rounds(run, rounds, seconds, apply)


def bridge(run, rounds, seconds):
    """A partition's leader and one of its followers cut from each other,
    the third node seeing both (a bridge): the follower leaves the ISR or
    the leadership moves, and the metadata quorum loses a link too."""

    def apply(run, r):
        cut_leader, cut_follower = leader(run, r % run.partitions), follower(run, r % run.partitions)
        run.cluster.partition([cut_leader], [cut_follower])
        bridging = [i + 1 for i in run.cluster.brokers() if i not in (cut_leader, cut_follower)]
        return (f"node {cut_leader + 1}, leader of partition {r % run.partitions}, and node {cut_follower + 1} "
                f"cut from each other, node {bridging} seeing both")

    _firewall_rounds(run, rounds, seconds, apply)


def lossy_links(run, rounds, seconds):
    """Every node drops LOSS_PROBABILITY of the packets to and from every
    other node (iptables `statistic`)."""

    def apply(run, _round):
        everyone = run.cluster.brokers()
        for i in everyone:
            run.cluster.drop_randomly([i], [j for j in everyone if j != i], LOSS_PROBABILITY)
        return f"{LOSS_PROBABILITY:.0%} of packets between nodes dropped"

    _firewall_rounds(run, rounds, seconds, apply)


def delay_links(run, rounds, seconds):
    """Every node holds what it sends for DELAY_MS plus up to JITTER_MS more,
    drawn per packet, so packets between brokers arrive late and out of
    order (netem's delay and reordering, made by nfdelay.py: this kernel
    has no netem); a broker-to-broker round trip grows by 2 x DELAY_MS to
    2 x (DELAY_MS + JITTER_MS)."""
    _require(run, "delay")
    for r in range(rounds):
        try:
            for i in run.cluster.brokers():
                run.cluster.delay(i, delay_ms=DELAY_MS, jitter_ms=JITTER_MS)
            run.note(f"round {r + 1}: every node's packets held {DELAY_MS} ms + up to {JITTER_MS} ms")
            time.sleep(seconds)
        finally:
            for i in run.cluster.brokers():
                run.cluster.clear_delay(i)
        wait_healthy(run)


def follower_disk_full(run, rounds, seconds):
    """A follower's data disk filled for `seconds`, then freed: its appends
    fail (Kafka takes the log dir offline and, with no other, halts; a
    follower must stop counting toward the high watermark either way),
    and once there is room it catches up or restarts on its data."""
    _require(run, "disk-full")
    run.exits_allowed = True
    for r in range(rounds):
        victim = follower(run, r % run.partitions)
        try:
            taken = run.cluster.fill_disk(victim)
            run.note(f"round {r + 1}: node {victim + 1}'s disk filled ({taken} bytes), "
                     f"a follower of partition {r % run.partitions}")
            time.sleep(seconds)
        finally:
            run.cluster.free_disk(victim)
        run.note(f"round {r + 1}: node {victim + 1} {'running' if run.cluster.nodes[victim].running else 'exited'} "
                 "when its disk was freed")
        wait_healthy(run)


def rolling_restart(run, rounds, seconds):
    """Every node in turn stopped (SIGTERM, a clean shutdown), kept down for
    `seconds`, restarted, and waited for until every replica is in sync."""
    for r in range(rounds):
        for node in run.cluster.nodes:
            code = run.cluster.stop(node.index)
            run.note(f"round {r + 1}: node {node.node_id} stopped (exit {code})")
            time.sleep(seconds)
            run.cluster.restart(node.index, wait=False)
            wait_healthy(run)


class Skip(Exception):
    """The fault cannot be made here; the message says why."""


def _require(run, feature):
    reason = run.cluster.unavailable(feature)
    if reason is not None:
        raise Skip(reason)


# name: (fault, (short rounds, short seconds), (long rounds, long seconds)).
# The pauses straddle the 6 s session: 2 s keeps the leader, 10 s loses it.
FAULTS = {
    "kill-leader": (kill_leader, (3, 2.0), (20, 5.0)),
    "kill-follower": (kill_follower, (1, 5.0), (5, 20.0)),
    "kill-quorum-leader": (kill_quorum_leader, (1, 3.0), (5, 10.0)),
    "kill-two": (kill_two, (1, 8.0), (3, 30.0)),
    "pause-leader-short": (pause_leader, (1, 2.0), (5, 2.0)),
    "pause-leader-long": (pause_leader, (1, 10.0), (5, 15.0)),
    "cut-leader": (cut_leader, (1, 10.0), (5, 30.0)),
    "bridge": (bridge, (1, 10.0), (3, 30.0)),
    "lossy-links": (lossy_links, (1, 10.0), (3, 60.0)),
    "delayed-links": (delay_links, (1, 10.0), (3, 60.0)),
    "follower-disk-full": (follower_disk_full, (1, 10.0), (3, 30.0)),
    "rolling-restart": (rolling_restart, (1, 1.0), (2, 5.0)),
}
SHORT_MATRIX = ("kill-leader", "kill-follower", "kill-two", "pause-leader-long", "cut-leader", "delayed-links",
                "follower-disk-full", "rolling-restart")


@dataclass
class Result:
    fault: str
    rounds: int
    seconds: float
    elapsed_s: float
    history: object
    anomalies: list
    events: list
    violations: list

    def summary(self):
        return (f"{self.fault:20} rounds {self.rounds:3} x {self.seconds:5.1f}s  {self.elapsed_s:6.0f}s  "
                f"acked {len(self.history.acked):7}  failed {len(self.history.errors):6}  "
                f"anomalies {len(self.anomalies) + len(self.violations)}")

    def report(self):
        lines = [self.summary(), checker.report(self.history, self.anomalies)]
        lines += [f"violation: {v}" for v in self.violations]
        lines += ["events:"] + [f"  {e}" for e in self.events]
        return "\n".join(lines)


class Refused(Exception):
    """The broker refused the replicated topic (its error is the message)."""

    def __init__(self, error):
        super().__init__(str(error))
        self.error = error


def run_fault(cluster, name, rounds, seconds, rate_per_s=200, partitions=PARTITIONS):
    """Makes fault `name` under load on a new topic of `cluster` and checks
    the history; raises Refused when the broker will not create an RF=3
    topic, Skip when the fault cannot be made here."""
    fault = FAULTS[name][0]
    topic = f"faults-{name}-{uuid.uuid4().hex[:6]}"
    bootstrap = ",".join(cluster.nodes[i].bootstrap for i in cluster.brokers())
    # A broker still registering would make the topic refused for too few
    # brokers, which is no answer about replication.
    deadline = time.monotonic() + HEAL_WAIT_S
    while len(checker.quietly(lambda: checker.live_brokers(bootstrap)) or []) < len(cluster.brokers()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"not every broker registered after {HEAL_WAIT_S}s")
        time.sleep(POLL_S)
    error = checker.create_topic(bootstrap, topic, partitions)
    if error is not None:
        raise Refused(error)
    run = Run(cluster, topic, partitions)
    # The load's own bound: every round held and healed at its slowest.
    bound_s = WARM_UP_S + COOL_DOWN_S + (rounds * len(cluster.nodes) + 1) * (seconds + HEAL_WAIT_S)
    run.load = checker.Load(cluster, topic, partitions, rate_per_s=rate_per_s, max_seconds=bound_s)
    wait_healthy(run)
    started = time.monotonic()
    run.load.start()
    try:
        time.sleep(WARM_UP_S)
        try:
            fault(run, rounds, seconds)
        finally:
            heal(run)
        wait_healthy(run)
        time.sleep(COOL_DOWN_S)
    finally:
        run.load.stop()
    history = checker.collect(run.load)
    return Result(name, rounds, seconds, time.monotonic() - started, history, checker.check(history), run.events,
                  run.violations)
