#!/usr/bin/env python3
"""W1 and W3 on a 3-node shoal cluster next to a single node (issue 14).

    perf/cluster.py [--quick] [--out DIR] [--shoal-bin PATH]

Runs W1 (produce 100 B, 8 partitions, acks=all, 1 and 4 connections) and W3
(consume 100 B records from the beginning, preloaded first) through
`shoal bench ... --json`, exactly as perf/run runs them against one broker
(perf/runs.py: the same topic creation with `shoal topic create`, the
same unmeasured warm-up, the same bench commands and sizes), once against a
single `shoal serve` and once against three combined broker-and-controller
voters on loopback ports (tests/cluster: its harness in loopback mode, each
node started by tests/cluster/shoal-node). Single and cluster alternate run
by run, each run on fresh processes and fresh data dirs under
target/perf-data; the median of 3 runs per cell (1 with --quick, which also
preloads fewer records for W3).

Topics are created through the first node that takes admin requests (any
node: one that does not lead the quorum forwards them to the leader);
`shoal bench` bootstraps there and routes each partition to its leader
itself. Each run records where the 8 partitions' leaders are, as that
node's Metadata names them, and waits until
every node named leader answers as one (it has opened its partitions): a
partition spread over the nodes is what makes it a cluster run, and the
section says which case was measured.

Writes the section between `<!-- section:cluster -->` markers into
RESULTS.md (perf/, or --out DIR), below perf/run's marker, where perf/run
keeps it.

Bounds: every subprocess has a timeout (perf/procs.py's); every broker and
node is killed and every data dir removed in a `finally`, by atexit and on
SIGTERM (the cluster harness's handler runs first, then perf/procs.py's),
and the kernel kills the brokers if this process dies (setpriv --pdeathsig).

Python 3.11 standard library only.
"""

import argparse
import collections
import os
import re
import signal
import socket
import statistics
import struct
import sys
import time
import uuid

from procs import (
    CommandsLog, PERF_DIR, REPO, _cleanup_everything, _on_sigterm, make_temp_dir, remove_temp_dir,
    run_bounded,
)
from brokers import DIAGNOSIS_LOG_LINES, STALL_BUDGET_MS, STALL_MARK, Shoal
from runs import FULL, PARTITIONS, QUICK, bench_steps, prepare_topic, workloads
from results import fmt_rate, fmt_ratio, loadavg, machine, median_of, ok_reports, replace_section
from conn_memory import recv_exact

# tests/ goes first: run as a script this file is __main__, so `cluster`
# names the cluster harness package tests/cluster, not this file.
sys.path.insert(0, os.path.join(REPO, "tests"))
from cluster import Cluster  # noqa: E402

NODES = 3
SHOAL_NODE = (os.path.join(REPO, "tests", "cluster", "shoal-node")
              + " {node_id} {host} {port} {controller_port} {voters} {data_dir} {cluster_id}")
# The rows of perf/run this compares (perf/runs.py's keys). "W6 W3
# shards=1" is a control: W3 with the single node given one shard, the
# shape of each cluster node (its cluster side is W3's, run again).
WORKLOADS = ("W1 c=1", "W1 c=4", "W3", "W6 W3 shards=1")
SINGLE = "single node"
CLUSTER = f"{NODES}-node cluster"

# A quorum elects its leader one to two election timeouts (1 s each, as
# Kafka's) after the voters start; the rest is a loaded two-core machine.
LEADER_WAIT_S = 60.0
# After CreateTopics commits, each node opens the partitions it leads when
# it applies the record.
PARTITION_LEADERS_WAIT_S = 30.0
POLL_INTERVAL_S = 0.2
ADMIN_TIMEOUT_S = 30.0
# Deleting a topic that does not exist changes nothing. A node that takes
# admin requests answers UNKNOWN_TOPIC_OR_PARTITION (every node, forwarding
# them to the quorum leader, once the quorum has one), and the first one
# that does is used.
PROBE_TOPIC = "perf-cluster-no-such-topic"
# `shoal topic describe`'s partition lines (kafka-topics.sh's shape).
DESCRIBE_LINE = re.compile(r"\tPartition: (\d+)\tLeader: (\S+)\t")
NO_LEADER = "none"
# Brokers register with the quorum after it elects a leader; a topic created
# before they have is placed on the brokers registered so far. The wait is
# bounded because a build whose brokers do not register lists only the
# answering node: the run goes on and records how many were listed.
REGISTERED_WAIT_S = 10.0
# Metadata v1 (non-flexible, the broker list and the controller id, no
# topics), as any Kafka client's first request.
API_METADATA = 3
METADATA_VERSION = 1
CLIENT_ID = b"perf-cluster"
SOCKET_TIMEOUT_S = 10.0

SECTION_BEGIN = "<!-- section:cluster -->"
SECTION_END = "<!-- /section:cluster -->"


# ---------------------------------------------------------------- the two sides


class SingleNode(Shoal):
    """One `shoal serve`, as perf/run starts it (default shards unless the
    workload names a count)."""

    brokers_listed = 1

    def node_addresses(self):
        """Node id -> address of every node that may lead a partition; one
        node answers for itself, whatever its id."""
        return {}

    def stalls(self):
        return self.reactor_stalls()


class ShoalCluster:
    """NODES combined voters on loopback ports (tests/cluster/harness.py in
    loopback mode), data dirs under target/perf-data. Quacks like
    perf/brokers.py's Broker where run_once and prepare_topic use
    it: `bootstrap` is the address of the first node that takes admin
    requests."""

    name = CLUSTER
    topic_configs = ()

    def __init__(self, shoal_bin):
        self.shoal_bin = shoal_bin
        self.root = make_temp_dir("cluster-")
        self.cluster = Cluster(NODES, SHOAL_NODE, namespaces=False, temp_parent=self.root)
        self.bootstrap = None
        self.brokers_listed = None

    def start(self, commands):
        # tests/cluster/shoal-node execs the binary this names.
        os.environ["SHOAL_BIN"] = self.shoal_bin
        commands.add([f"SHOAL_BIN={self.shoal_bin}", "tests/cluster/shoal-node", "$NODE_ID", "127.0.0.1",
                      "$PORT", "$CONTROLLER_PORT", "$VOTERS", "$DATA_DIR", "$CLUSTER_ID",
                      f"# for each of the {NODES} nodes"])
        self.cluster.start()
        commands.add([self.shoal_bin, "topic", "delete", PROBE_TOPIC, "--bootstrap", "127.0.0.1:$PORT",
                      "# on each node: the first to answer UNKNOWN_TOPIC_OR_PARTITION is used"])
        self.bootstrap = self.admin_node()
        self.brokers_listed = self.await_registrations()
        return self

    def admin_node(self):
        """The address of the node that takes admin requests (see
        PROBE_TOPIC), once the quorum has elected one."""
        deadline = time.monotonic() + LEADER_WAIT_S
        while True:
            answers = []
            for node in self.cluster.nodes:
                code, _, err = run_bounded(
                    [self.shoal_bin, "topic", "delete", PROBE_TOPIC, "--bootstrap", node.bootstrap], ADMIN_TIMEOUT_S)
                if code != 0 and "UNKNOWN_TOPIC_OR_PARTITION" in err:
                    return node.bootstrap
                answers.append(f"node {node.node_id}: {err.strip()[-120:]}")
            if time.monotonic() >= deadline:
                raise RuntimeError(f"no node takes admin requests after {LEADER_WAIT_S:.0f} s: " + "; ".join(answers))
            time.sleep(POLL_INTERVAL_S)

    def await_registrations(self):
        """How many brokers the bootstrap node's Metadata lists, once it
        lists every node or after REGISTERED_WAIT_S."""
        deadline = time.monotonic() + REGISTERED_WAIT_S
        while True:
            try:
                listed = len(metadata_brokers(self.bootstrap))
            except OSError:
                listed = 0
            if listed >= NODES or time.monotonic() >= deadline:
                return listed
            time.sleep(POLL_INTERVAL_S)

    def node_addresses(self):
        return {str(node.node_id): node.bootstrap for node in self.cluster.nodes}

    def placeholders(self):
        found = {self.root: "$TMP"}
        for node in self.cluster.nodes:
            found[f":{node.port}"] = ":$PORT"
        return found

    def cpu_seconds(self):
        """User + system CPU time of every node (the node's process is
        shoal itself: shoal-node and setpriv exec)."""
        return sum(process_cpu_seconds(node.proc.pid) for node in self.cluster.nodes)

    def stalls(self):
        count = 0
        for node in self.cluster.nodes:
            try:
                with open(node.log_paths[-1], errors="replace") as f:
                    count += sum(STALL_MARK in line for line in f)
            except (OSError, IndexError):
                return None
        return count

    def diagnosis(self):
        return f"[{CLUSTER}; its logs end: {self.cluster.log_tails(DIAGNOSIS_LOG_LINES)}]"

    def close(self):
        try:
            self.cluster.close()
        finally:
            remove_temp_dir(self.root)


def metadata_brokers(bootstrap):
    """The broker ids the node at `bootstrap` lists in a Metadata v1
    response (asked for no topics)."""
    host, port = bootstrap.rsplit(":", 1)
    header = struct.pack(">hhih", API_METADATA, METADATA_VERSION, 1, len(CLIENT_ID)) + CLIENT_ID
    request = header + struct.pack(">i", 0)
    with socket.create_connection((host, int(port)), timeout=SOCKET_TIMEOUT_S) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", recv_exact(sock, 4))[0]
        response = recv_exact(sock, size)
    # correlation id, then the brokers: id, host, port, rack (nullable).
    offset, count = 8, struct.unpack_from(">i", response, 4)[0]
    brokers = []
    for _ in range(count):
        node_id, host_len = struct.unpack_from(">ih", response, offset)
        offset += 6 + host_len + 4
        rack_len = struct.unpack_from(">h", response, offset)[0]
        offset += 2 + max(rack_len, 0)
        brokers.append(node_id)
    return brokers


def process_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- one run


def partition_leaders(shoal_bin, bootstrap, topic):
    """Partition -> leader id (a string, "none" when the node knows none)
    as the node at `bootstrap` describes the topic; {} when it cannot."""
    code, out, _ = run_bounded([shoal_bin, "topic", "describe", topic, "--bootstrap", bootstrap],
                                       ADMIN_TIMEOUT_S)
    if code != 0:
        return {}
    return {int(p): leader for p, leader in DESCRIBE_LINE.findall(out)}


def settled_leaders(target, shoal_bin, topic):
    """The topic's partition leaders as the bootstrap node names them, once
    every partition has one and every node named leader says so itself."""
    deadline = time.monotonic() + PARTITION_LEADERS_WAIT_S
    while True:
        leaders = partition_leaders(shoal_bin, target.bootstrap, topic)
        if len(leaders) == PARTITIONS and NO_LEADER not in leaders.values():
            addresses = target.node_addresses()
            confirmed = True
            for leader in set(leaders.values()) & set(addresses):
                own = partition_leaders(shoal_bin, addresses[leader], topic)
                confirmed &= all(own.get(p) == leader for p, who in leaders.items() if who == leader)
            if confirmed:
                return leaders
        if time.monotonic() >= deadline:
            raise RuntimeError(f"topic {topic}: partition leaders not settled after "
                               f"{PARTITION_LEADERS_WAIT_S:.0f} s: {leaders}")
        time.sleep(POLL_INTERVAL_S)


def spread(leaders):
    """"node 3: 8 of 8" style: how many partitions each node leads."""
    counts = collections.Counter(leaders.values())
    return ", ".join(f"node {node}: {n}" for node, n in sorted(counts.items()))


def run_once(workload, make_target, shoal_bin, size, commands):
    """Fresh processes, the topic made and the broker warmed up as perf/run
    does (runs.prepare_topic), the leaders settled and recorded, then
    the workload's bench steps; the measured report or {"error": ...}."""
    target = make_target()
    try:
        target.start(commands)
        topic = f"perf-{uuid.uuid4().hex[:8]}"
        prepare_topic(target, shoal_bin, topic, size, commands)
        leaders = settled_leaders(target, shoal_bin, topic)
        report = bench_steps(workload, target, shoal_bin, topic, size, commands)
        if "error" in report:
            return {**report, "spread": spread(leaders)}
        report["spread"] = spread(leaders)
        report["brokers_listed"] = target.brokers_listed
        report["reactor_stalls"] = target.stalls()
        return report
    except Exception as error:  # noqa: BLE001 - one failed run must not end the comparison
        return {"error": str(error).strip()[-600:]}
    finally:
        target.close()


# ---------------------------------------------------------------- report


def cpu_per_million(reports):
    values = [r["broker_cpu_s"] / r["records"] * 1e6 for r in ok_reports(reports)
              if r.get("records") and "broker_cpu_s" in r]
    return f"{statistics.median(values):.3f}" if values else "—"


def section(argv, size, rows, results, info, end_loadavg, shoal_bin):
    shown_bin = os.path.relpath(shoal_bin, REPO)
    lines = [
        SECTION_BEGIN,
        f"## W1 and W3 on a {NODES}-node cluster next to a single node (issue 14)",
        "",
        f"`{' '.join(['perf/cluster.py', *argv])}` (binary `{shown_bin}`), {info['date']}, commit "
        f"`{info['commit']}`, {info['nproc']} × {info['cpu']}, load average (1/5/15 min) at the start "
        f"{info['loadavg']}, at the end {end_loadavg}. Median of {size.runs} run(s) per cell, single node "
        f"and cluster alternating run by run, each run on fresh processes and empty data dirs under "
        f"target/perf-data, after {size.warmup_s:g} s of unmeasured produce to another topic; W3 preloads "
        f"{size.consume_records:,} records. The workloads, topic creation, warm-up and bench commands are "
        "perf/run's (perf/harness.py).",
        "",
        *busy_note(info),
        f"- **{SINGLE}**: `shoal serve`, default config and shards (one per core), as perf/run starts it, "
        "except in the control row W6 W3 shards=1: `--shards 1`, the shape of one cluster node (that row's "
        "cluster column is W3's cluster, run again).",
        f"- **{CLUSTER}**: {NODES} shoal processes on loopback ports, each a combined broker and "
        "controller and a voter of the metadata quorum, one shard each (tests/cluster/shoal-node), "
        "default config (`flush.policy=sync`), replication factor 1. Topics are created through the "
        "first node that takes admin requests (forwarded to the quorum leader), and `shoal bench` bootstraps there and sends each partition's requests to its "
        "leader. Broker CPU is the three processes' sum.",
        "- **How W3 reads from several leaders** (src/bench/consume.rs): `shoal bench consume` keeps one "
        "Fetch in flight per leader and sends each leader its next Fetch as soon as it answers, as Kafka's "
        "consumer and librdkafka do. Before commit `9e1c798` it sent one Fetch to every leader, then waited "
        "for all of them (lockstep rounds), and that made W3's 0.13× in the 2026-12-06 15:24 UTC run "
        "(commit `bfda384`). The cluster's preload leaves its partitions uneven (each of the 4 producer lanes "
        "writes a fixed share to its 2 partitions, and more to the one whose leader answers sooner when "
        "their leaders differ: largest / smallest partition 1.19× and 1.65× in two diagnostic runs, "
        "exactly equal on the single node and within a lane of one leader), so one leader's partitions ran "
        "out first, and from then on each round waited out that leader's long poll "
        "(`fetch.max.wait.ms`, 500 ms): in a traced run, 132 rounds read about 96% of the records in 2.3 s, then "
        "11 rounds of 500 ms each read the last 4% in 5.6 s (Fetch round trip p99 502 ms). On one preloaded "
        "cluster, the old and the new consumer alternating 3 times each: median 629 k and 3.28 M records/s "
        "(5.2×; p99 Fetch round trip 502 ms and 40 ms).",
        f"- **All {NODES} nodes, the single node and the load generator share this machine's "
        f"{info['nproc']} cores** (and its disk): the cluster has no more hardware than the single node, "
        "so this measures what the cluster's extra processes, quorum and routing cost, not scaling.",
        "",
        f"| workload | {SINGLE} (records/s) | {CLUSTER} (records/s) | cluster/single | each run, single | "
        "each run, cluster | broker CPU s per M records, single / cluster | partition leaders, cluster | "
        "brokers the bootstrap node listed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for w in rows:
        single, cluster = results[w.key][SINGLE], results[w.key][CLUSTER]
        median_single = median_of(single, ["records_per_s"])
        median_cluster = median_of(cluster, ["records_per_s"])
        spreads = sorted({r["spread"] for r in cluster if "spread" in r})
        listed = sorted({str(r["brokers_listed"]) for r in cluster if "brokers_listed" in r})
        lines.append(
            f"| {w.key}: {w.title} | {fmt_rate(median_single)} | {fmt_rate(median_cluster)} | "
            f"{fmt_ratio(median_cluster, median_single)} | {each_run(single)} | {each_run(cluster)} | "
            f"{cpu_per_million(single)} / {cpu_per_million(cluster)} | {'; '.join(spreads) or '—'} | "
            f"{', '.join(listed) or '—'} |")
    lines += ["", spread_note(rows, results), "", stalls_line(rows, results), ""]
    failures = [f"- {w.key}, {side}: {' / '.join(r['error'].splitlines())}" for w in rows
                for side in (SINGLE, CLUSTER) for r in results[w.key][side] if "error" in r]
    if failures:
        lines += ["Failed runs:", "", *failures, ""]
    lines += ["Commands:", "", "```", *COMMANDS.lines, "```", SECTION_END]
    return "\n".join(lines) + "\n"


def busy_note(info):
    """A warning when other work was running: a 1-minute load average over
    the core count at the start (at the end it counts this run's own)."""
    load = float(info["loadavg"].split()[0])
    if load <= info["nproc"]:
        return []
    return [f"**Other work was running on the machine** (1-minute load average {load:.1f} on "
            f"{info['nproc']} cores at the start): these numbers are not a quiet machine's; rerun before "
            "reading much into them.", ""]


def stalls_line(rows, results):
    """The shards' reactor stalls over all runs of each side (every node's
    log for the cluster), as perf/run counts them."""
    counts = {}
    for side in (SINGLE, CLUSTER):
        known = [r["reactor_stalls"] for w in rows for r in results[w.key][side]
                 if r.get("reactor_stalls") is not None]
        counts[side] = str(sum(known)) if known else "—"
    return (f"Reactor stalls over {STALL_BUDGET_MS} ms logged in all runs (src/shard/stall.rs): "
            f"{SINGLE} {counts[SINGLE]}, {CLUSTER} {counts[CLUSTER]}.")


def each_run(reports):
    return ", ".join("failed" if "error" in r else f"{r['records_per_s']:,.0f}" for r in reports) or "—"


def spread_note(rows, results):
    """Which case the cluster column measured: partitions on one node or
    spread over several, and whether the brokers had registered."""
    runs = [r for w in rows for r in results[w.key][CLUSTER] if "spread" in r]
    nodes_used = {len(r["spread"].split(", ")) for r in runs}
    unregistered = sum(r.get("brokers_listed") is not None and r["brokers_listed"] < NODES for r in runs)
    lines = ["The partition leaders column gives, per distinct placement seen in the cluster runs, how many of "
             f"the {PARTITIONS} partitions each node led; the last column, how many brokers the bootstrap "
             f"node's Metadata listed when the topic was created (after waiting up to {REGISTERED_WAIT_S:g} s "
             f"for all {NODES})."]
    if nodes_used == {1}:
        lines.append("**Every partition of every cluster run was led by one node**: the cluster column measures "
                     "one broker doing all the work while two more processes (quorum voters) share its cores, "
                     "not load spread over brokers.")
    if unregistered:
        lines.append(f"In {unregistered} of {len(runs)} runs the bootstrap node listed fewer than {NODES} "
                     "brokers: the others had not "
                     "registered (or this build's brokers do not register), so placement could only use the "
                     "brokers listed.")
    return " ".join(lines)


COMMANDS = CommandsLog()


def cluster_run_arguments(parser):
    """The options every 3-node cluster run takes (this one and
    perf/replication.py)."""
    parser.add_argument("--quick", action="store_true", help="1 run per cell, short durations, fewer W3 records")
    parser.add_argument("--out", help="the directory whose RESULTS.md gets the section (default: perf/)")
    parser.add_argument("--shoal-bin", default=os.environ.get("SHOAL_BIN") or
                        os.path.join(REPO, "target", "release", "shoal"))


def start_cluster_run(args):
    """Signal handlers set, the shoal binary checked and the output
    directory made: (absolute shoal binary, output directory)."""
    signal_handlers()
    shoal_bin = os.path.abspath(args.shoal_bin)
    if not os.access(shoal_bin, os.X_OK):
        sys.exit(f"perf: {shoal_bin} is not an executable; run cargo build --release")
    out_dir = args.out or PERF_DIR
    os.makedirs(out_dir, exist_ok=True)
    return shoal_bin, out_dir


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cluster_run_arguments(parser)
    args = parser.parse_args()
    shoal_bin, out_dir = start_cluster_run(args)
    size = QUICK if args.quick else FULL
    info = machine()
    rows = [w for w in workloads(False) if w.key in WORKLOADS]
    results = {w.key: {side: [] for side in (SINGLE, CLUSTER)} for w in rows}
    try:
        for w in rows:
            targets = {SINGLE: lambda w=w: SingleNode(shoal_bin, w.shoal_shards),
                       CLUSTER: lambda: ShoalCluster(shoal_bin)}
            for run in range(size.runs):
                for side, make in targets.items():
                    report = run_once(w, make, shoal_bin, size, COMMANDS)
                    results[w.key][side].append(report)
                    shown = report.get("error") or f"{report['records_per_s']:,.0f} records/s ({report['spread']})"
                    print(f"perf: {w.key} run {run + 1}/{size.runs} {side}: {shown}", file=sys.stderr)
    finally:
        _cleanup_everything()
    argv = sys.argv[1:]
    text = section(argv, size, rows, results, info, loadavg(), shoal_bin)
    path = os.path.join(out_dir, "RESULTS.md")
    replace_section(path, SECTION_BEGIN, SECTION_END, text)
    print(text)
    print(f"perf: wrote the section into {path}", file=sys.stderr)
    failed = any("error" in r for w in rows for reports in results[w.key].values() for r in reports)
    return 1 if failed else 0


def signal_handlers():
    """perf/harness.py's: SIGTERM cleans up before exiting, and Ctrl-C ends
    the run even when started in the background. The cluster harness puts
    its own SIGTERM handler in front of this one when the first cluster is
    made, and chains to it."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("perf: interrupted; no results written", file=sys.stderr)
        sys.exit(130)
