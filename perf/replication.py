#!/usr/bin/env python3
"""W1, W3 and W4 on 3-node clusters of shoal and of Apache Kafka, each with
replication factor 3 and 1: what replication costs, and shoal against Kafka
replicated (issue 15).

    perf/replication.py [--quick] [--perf-test] [--out DIR] [--shoal-bin PATH]

Four sides, each 3 combined broker-and-controller voters on loopback ports
started by tests/cluster's harness (loopback mode):
- shoal RF=3: tests/cluster/shoal-node (one shard a node), topics with
  replication factor 3 and min.insync.replicas=2;
- shoal RF=1: the same nodes, topics with replication factor 1;
- kafka RF=3 / kafka RF=1: Apache Kafka in KRaft mode from tests/kafka's
  jars, each node started by perf/kafka-node (tests/kafka/kafka-cluster-node
  with perf/run's JVM: 1 GiB heap, default collector and JIT).

The workloads are perf/run's (perf/runs.py): W1 produce 100 B, 8
partitions, acks=all, 1 and 4 connections; W3 consume from the beginning
(preloaded first); W4 end-to-end latency at 100 000 records/s, acks=all.
Every side gets the same topic creation (`shoal topic create` with the
side's replication factor and configs), the same unmeasured warm-up and the
same `shoal bench` commands: `shoal bench` bootstraps at the node that
takes admin requests and sends each partition's requests to its leader.
Before the measured step the run waits (bounded) until every partition has
a leader that says so itself (perf/cluster.py's check) and, for RF=3, until
every partition's ISR holds all 3 replicas, so acks=all waits for
followers that are fetching; each run records the leaders' spread and the
ISR sizes seen.

The sides alternate run by run, each run on fresh processes and fresh data
dirs under target/perf-data; the median of 3 runs per cell (1 with --quick,
which also runs shorter and preloads fewer records for W3; the full run's W3
preloads FULL_CONSUME_RECORDS, not perf/run's 10 M). A run that
fails is recorded with its error, and the nodes' logs are copied under
target/perf-data/replication-failed/ before the data dirs go.

With --perf-test it runs W1 through kafka-producer-perf-test instead (the
second, independent client, as perf/clients.py runs it against one broker)
into a section of its own, `<!-- section:replication-perf-test -->`.

Writes the section between `<!-- section:replication -->` markers into
RESULTS.md (perf/, or --out DIR), which perf/run keeps.

Bounds: those of perf/cluster.py (every subprocess a timeout, every node
killed and data dir removed in a finally, by atexit and on SIGTERM, and by
the kernel if this process dies).

Python 3.11 standard library only.
"""

import argparse
import dataclasses
import importlib.util
import os
import re
import shutil
import sys
import time
import uuid

from procs import (
    DATA_ROOT, PERF_DIR, REPO, CommandsLog, _cleanup_everything, make_temp_dir, run_bounded,
)
from runs import FULL, PARTITIONS, QUICK, Workload, bench_steps, prepare_topic, workloads
from brokers import KAFKA_JARS
import clients
from results import fmt_rate, fmt_ratio, loadavg, machine, median_of, replace_section

# tests/ goes first, so `cluster` names the harness package tests/cluster;
# perf/cluster.py (whose ShoalCluster this builds on) is loaded under
# another name.
sys.path.insert(0, os.path.join(REPO, "tests"))
from cluster import Cluster  # noqa: E402


def _load_perf_cluster():
    spec = importlib.util.spec_from_file_location("perf_cluster", os.path.join(PERF_DIR, "cluster.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


perf_cluster = _load_perf_cluster()
NODES = perf_cluster.NODES
KAFKA_NODE = (os.path.join(PERF_DIR, "kafka-node")
              + " {node_id} {host} {port} {controller_port} {voters} {data_dir} {cluster_id}")
WORKLOADS = ("W1 c=1", "W1 c=4", "W3", "W4")
REPLICATED = 3
MIN_INSYNC = 2
SHOAL_RF3, SHOAL_RF1 = "shoal RF=3", "shoal RF=1"
KAFKA_RF3, KAFKA_RF1 = "kafka RF=3", "kafka RF=1"
SIDES = (SHOAL_RF3, KAFKA_RF3, SHOAL_RF1, KAFKA_RF1)
# Followers join the ISR once they have fetched to the leader's end: at
# once for an empty topic, unless a node is still starting.
ISR_WAIT_S = 30.0
POLL_INTERVAL_S = 0.2
ADMIN_TIMEOUT_S = 30.0
# `shoal topic describe`'s partition lines (kafka-topics.sh's shape).
ISR_LINE = re.compile(r"\tPartition: (\d+)\tLeader: \S+\tReplicas: \S+\tIsr: (\S*)")
FAILED_LOGS = os.path.join(DATA_ROOT, "replication-failed")
LATENCY_QUANTILES = ("p50", "p99", "p999")
# perf/run's 10 M records for W3 would be preloaded through acks=all by
# three replicas on two shared cores: a slow side would pass its bounded
# time (perf/runs.py's bench_timeout_s) before W3 is even measured.
FULL_CONSUME_RECORDS = 2_000_000

SECTION_BEGIN = "<!-- section:replication -->"
SECTION_END = "<!-- /section:replication -->"
# --perf-test: W1 through Kafka's own producer instead, in a section of its own.
PERF_TEST_KEY = "W1 perf-test"
PERF_TEST_WORKLOAD = Workload(PERF_TEST_KEY, "produce 100 B, 8 partitions, acks=all, kafka-producer-perf-test "
                              "(the Java producer's defaults: idempotent)", steps=None)
PERF_TEST_BEGIN = "<!-- section:replication-perf-test -->"
PERF_TEST_END = "<!-- /section:replication-perf-test -->"


# ---------------------------------------------------------------- the sides


class ReplicatedCluster(perf_cluster.ShoalCluster):
    """NODES nodes of shoal or Kafka; every topic of a run is created with
    `replication_factor` replicas (and min.insync.replicas=2 when
    replicated)."""

    def __init__(self, name, shoal_bin, kafka, replication_factor):
        self.name = name
        self.shoal_bin = shoal_bin
        self.kafka = kafka
        self.replication_factor = replication_factor
        self.topic_configs = (f"min.insync.replicas={MIN_INSYNC}",) if replication_factor > 1 else ()
        self.root = make_temp_dir("replication-")
        template = KAFKA_NODE if kafka else perf_cluster.SHOAL_NODE
        self.cluster = Cluster(NODES, template, namespaces=False, temp_parent=self.root)
        self.bootstrap = None
        self.brokers_listed = None

    def start(self, commands):
        if not self.kafka:
            return super().start(commands)
        commands.add(["perf/kafka-node", "$NODE_ID", "127.0.0.1", "$PORT", "$CONTROLLER_PORT", "$VOTERS",
                      "$DATA_DIR", "$CLUSTER_ID", f"# for each of the {NODES} nodes"])
        self.cluster.start()
        self.bootstrap = self.admin_node()
        self.brokers_listed = self.await_registrations()
        return self

    def await_registrations(self):
        try:
            return super().await_registrations()
        except Exception:  # noqa: BLE001 - a broker without Metadata v1: the count is unknown
            return None

    def stalls(self):
        return None if self.kafka else super().stalls()

    def keep_logs(self, label):
        """Copies every node's logs under FAILED_LOGS/label; the path."""
        target = os.path.join(FAILED_LOGS, label)
        os.makedirs(target, exist_ok=True)
        for node in self.cluster.nodes:
            for path in node.log_paths:
                if os.path.exists(path):
                    shutil.copy(path, os.path.join(target, f"node-{node.node_id}-{os.path.basename(path)}"))
        return os.path.relpath(target, REPO)


def isr_sizes(shoal_bin, bootstrap, topic):
    """Partition -> ISR size, as the node at `bootstrap` describes the topic."""
    code, out, _ = run_bounded([shoal_bin, "topic", "describe", topic, "--bootstrap", bootstrap], ADMIN_TIMEOUT_S)
    if code != 0:
        return {}
    return {int(p): len([r for r in isr.split(",") if r]) for p, isr in ISR_LINE.findall(out)}


def full_isr(target, shoal_bin, topic):
    """Waits (bounded) until every partition's ISR holds every replica; the
    sizes last seen, as "3×8" style text."""
    deadline = time.monotonic() + ISR_WAIT_S
    while True:
        sizes = isr_sizes(shoal_bin, target.bootstrap, topic)
        if len(sizes) == PARTITIONS and min(sizes.values()) >= target.replication_factor:
            break
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_INTERVAL_S)
    counts = {}
    for size in sizes.values():
        counts[size] = counts.get(size, 0) + 1
    return ", ".join(f"{size}×{n}" for size, n in sorted(counts.items())) or "unknown"


# ---------------------------------------------------------------- one run


def run_once(workload, make_target, shoal_bin, size, commands, label):
    """perf/cluster.py's run_once with the ISR wait, and the logs kept when
    a run fails."""
    target = make_target()
    try:
        target.start(commands)
        topic = f"perf-{uuid.uuid4().hex[:8]}"
        prepare_topic(target, shoal_bin, topic, size, commands)
        leaders = perf_cluster.settled_leaders(target, shoal_bin, topic)
        isr = full_isr(target, shoal_bin, topic)
        if workload.key == PERF_TEST_KEY:
            report = perf_test(target, topic, size, commands)
        else:
            report = bench_steps(workload, target, shoal_bin, topic, size, commands)
        if "error" in report:
            return {"error": f"{report['error']} (nodes' logs: {target.keep_logs(label)})",
                    "spread": perf_cluster.spread(leaders)}
        report["spread"] = perf_cluster.spread(leaders)
        report["isr"] = isr
        report["brokers_listed"] = target.brokers_listed
        report["reactor_stalls"] = target.stalls()
        return report
    except Exception as error:  # noqa: BLE001 - one failed run must not end the comparison
        try:
            logs = target.keep_logs(label)
        except OSError as copy_error:
            logs = f"not kept: {copy_error}"
        return {"error": f"{str(error).strip()[-600:]} (nodes' logs: {logs})"}
    finally:
        target.close()


def perf_test(target, topic, size, commands):
    """W1 through kafka-producer-perf-test as perf/run runs it
    (perf/clients.py: the Java producer's defaults, idempotent, acks=all),
    into the run's topic."""
    command = ["java", clients.PERF_TEST_HEAP, "-cp", os.path.join(KAFKA_JARS, "*"), clients.PRODUCER_PERF_TEST,
               "--bootstrap-server", target.bootstrap, "--topic", topic, "--num-records",
               str(size.perf_test_records), "--record-size", "100", "--throughput", "-1",
               "--command-property", "acks=all"]
    commands.add(command, {**target.placeholders(), topic: "$TOPIC"})
    return clients.measured(target, command, size, clients.perf_test_report,
                            timeout_s=clients.perf_test_timeout_s(size), partial_ok=True)


# ---------------------------------------------------------------- report


def throughput_rows(rows, results):
    lines = [
        f"| workload | {' | '.join(f'{s} (records/s)' for s in SIDES)} | shoal/kafka RF=3 | shoal/kafka RF=1 | "
        "RF=3/RF=1 shoal | RF=3/RF=1 kafka | broker CPU s per M records (same order) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for w in rows:
        if w.metric != "records_per_s":
            continue
        m = {side: median_of(results[w.key][side], ["records_per_s"]) for side in SIDES}
        lines.append(
            f"| {w.key}: {w.title} | {' | '.join(fmt_rate(m[s]) for s in SIDES)} | "
            f"{fmt_ratio(m[SHOAL_RF3], m[KAFKA_RF3])} | {fmt_ratio(m[SHOAL_RF1], m[KAFKA_RF1])} | "
            f"{fmt_ratio(m[SHOAL_RF3], m[SHOAL_RF1])} | {fmt_ratio(m[KAFKA_RF3], m[KAFKA_RF1])} | "
            f"{' / '.join(perf_cluster.cpu_per_million(results[w.key][s]) for s in SIDES)} |")
    return lines


def latency_rows(rows, results):
    lines = []
    for w in rows:
        if w.metric != "latency":
            continue
        lines += [f"{w.key}: {w.title} (ms, median over runs of each run's quantile; ratios of the p99):", "",
                  "| side | records/s reached | p50 | p99 | p999 |", "|---|---|---|---|---|"]
        p99 = {}
        for side in SIDES:
            reports = results[w.key][side]
            cells = [median_of(reports, ["latency_ms", q]) for q in LATENCY_QUANTILES]
            p99[side] = cells[1]
            lines.append(f"| {side} | {fmt_rate(median_of(reports, ['records_per_s']))} | "
                         + " | ".join("—" if c is None else f"{c:,.2f}" for c in cells) + " |")
        lines += ["", f"p99 shoal/kafka: RF=3 {fmt_ratio(p99[SHOAL_RF3], p99[KAFKA_RF3])}, RF=1 "
                  f"{fmt_ratio(p99[SHOAL_RF1], p99[KAFKA_RF1])}; RF=3/RF=1: shoal "
                  f"{fmt_ratio(p99[SHOAL_RF3], p99[SHOAL_RF1])}, kafka {fmt_ratio(p99[KAFKA_RF3], p99[KAFKA_RF1])} "
                  "(below 1× is better for shoal, and for RF=3).", ""]
    return lines


def runs_rows(rows, results):
    """Every run: its figure, leaders' spread and ISR sizes."""
    lines = ["Each run (records/s, or p99 ms for W4; partition leaders per node; ISR sizes × partitions at the "
             "start of the measured step):", "", "| workload | side | runs |", "|---|---|---|"]
    for w in rows:
        for side in SIDES:
            cells = []
            for r in results[w.key][side]:
                if "error" in r:
                    cells.append("failed")
                    continue
                figure = (f"p99 {r['latency_ms']['p99']:,.2f} ms" if w.metric == "latency"
                          else f"{r['records_per_s']:,.0f}/s")
                cells.append(f"{figure} ({r['spread']}; ISR {r['isr']})")
            lines.append(f"| {w.key} | {side} | {'; '.join(cells) or '—'} |")
    return lines


def section(argv, size, rows, results, info, end_loadavg, shoal_bin, progress=None, markers=None):
    """The RESULTS.md section; `progress` says how far a run still going
    (or cut short) got."""
    begin, end = markers or (SECTION_BEGIN, SECTION_END)
    title = ("W1 through kafka-producer-perf-test" if rows[0].key == PERF_TEST_KEY
             else "W1, W3 and W4 through `shoal bench`")
    shown_bin = os.path.relpath(shoal_bin, REPO)
    stalls = [r["reactor_stalls"] for w in rows for s in (SHOAL_RF3, SHOAL_RF1) for r in results[w.key][s]
              if r.get("reactor_stalls") is not None]
    lines = [
        begin,
        f"## Replication: RF=3 against RF=1, shoal against Apache Kafka, on 3-node clusters (issue 15): {title}",
        "",
        f"`{' '.join(['perf/replication.py', *argv])}` (binary `{shown_bin}`), {info['date']}, commit "
        f"`{info['commit']}`, {info['nproc']} × {info['cpu']}, load average (1/5/15 min) at the start "
        f"{info['loadavg']}, at the end {end_loadavg}. Median of {size.runs} run(s) per cell, the four sides "
        "alternating run by run (every workload's first run, then every workload's second, and so on), each "
        "run on fresh processes and empty data dirs under target/perf-data, "
        f"after {size.warmup_s:g} s of unmeasured produce to another topic made the same way; runs of "
        f"{size.duration_s:g} s, W3 preloads {size.consume_records:,} records. Workloads, topic creation, "
        "warm-up and bench commands are perf/run's (perf/runs.py).",
        "",
        *([progress, ""] if progress else []),
        *profile_note(shoal_bin),
        *perf_cluster.busy_note(info),
        f"- **The machine: {info['nproc']} cores shared by all {NODES} brokers of a side and the load "
        "generator** (the client's process), and one disk. Three replicas do three "
        "times the writing on the same cores and disk, so RF=3/RF=1 here is the cost of replication on one "
        "small machine, not over a network of machines.",
        f"- **shoal**: {NODES} nodes started by tests/cluster/shoal-node: combined broker and controller, "
        "a voter of the metadata quorum, one shard each, default config (`flush.policy=sync`: acks=all "
        "answers after the leader's fdatasync and once every ISR follower has fetched past the records; a "
        "follower fetches only from a durable log end (src/replication/follower.rs), so at RF=3 an ack also "
        "waits for the followers' fdatasync and their next Fetch).",
        f"- **kafka**: {NODES} nodes of Apache Kafka in KRaft mode (combined broker and controller, static "
        "voters) started by perf/kafka-node: tests/kafka/kafka-cluster-node's configs with perf/run's JVM "
        "(1 GiB heap, the JVM's default collector and JIT), Kafka's default flushing (the page cache, on "
        "leaders and followers alike: no fsync before an ack).",
        f"- **RF=3** topics: replication factor {REPLICATED}, `min.insync.replicas={MIN_INSYNC}`; **RF=1**: "
        "replication factor 1, partitions placed over the 3 brokers. Every topic has "
        f"{PARTITIONS} partitions. " + client_note(rows),
        "",
        *throughput_rows(rows, results),
        "",
        *latency_rows(rows, results),
        *runs_rows(rows, results),
        "",
        f"Reactor stalls over 10 ms logged by shoal's nodes in all runs: {sum(stalls) if stalls else '—'}.",
        "",
    ]
    failures = [f"- {w.key}, {side}: {' / '.join(r['error'].splitlines())}" for w in rows
                for side in SIDES for r in results[w.key][side] if "error" in r]
    if failures:
        lines += ["Failed runs:", "", *failures, ""]
    lines += ["Commands:", "", "```", *COMMANDS.lines, "```", end]
    return "\n".join(lines) + "\n"


def client_note(rows):
    if rows[0].key == PERF_TEST_KEY:
        return ("kafka-producer-perf-test (Apache Kafka's ProducerPerformance from the same jars, as perf/run "
                "runs it: the Java producer's defaults, idempotent, `acks=all`; no duration option, so a side too "
                "slow for its records is measured over the 5 s windows it completed) bootstraps at the node that "
                "takes admin requests and sends to each partition's leader, after the same warm-up through "
                "`shoal bench`.")
    return ("`shoal bench` (the same load tool for every side) sends each partition's Produce and Fetch to its "
            "leader, with `--acks -1`.")


def profile_note(shoal_bin):
    """What a binary of cargo's `ci` profile is (Cargo.toml): it is not the
    release build perf/run measures."""
    if os.path.basename(os.path.dirname(shoal_bin)) != "ci":
        return []
    return ["The shoal binary is `cargo build --profile ci`'s: release optimisation, but with debug assertions "
            "and overflow checks in the shoal crate (Cargo.toml), so shoal's figures are a little below a "
            "release build's.", ""]


COMMANDS = CommandsLog()


def make_side(side, shoal_bin):
    kafka = side.startswith("kafka")
    factor = REPLICATED if side.endswith(f"RF={REPLICATED}") else 1
    return lambda: ReplicatedCluster(side, shoal_bin, kafka, factor)


def shown(report, workload):
    if "error" in report:
        return report["error"]
    figure = (f"p99 {report['latency_ms']['p99']:,.2f} ms" if workload.metric == "latency"
              else f"{report['records_per_s']:,.0f} records/s")
    return f"{figure} ({report['spread']}; ISR {report['isr']})"


def slug(text):
    """A cell's name as part of a directory name."""
    return re.sub(r"[^A-Za-z0-9]+", "_", text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    perf_cluster.cluster_run_arguments(parser)
    parser.add_argument("--perf-test", action="store_true",
                        help="W1 through kafka-producer-perf-test (the second, independent client), in its own section")
    args = parser.parse_args()
    shoal_bin, out_dir = perf_cluster.start_cluster_run(args)
    size = QUICK if args.quick else dataclasses.replace(FULL, consume_records=FULL_CONSUME_RECORDS)
    info = machine()
    if args.perf_test:
        rows, markers = [PERF_TEST_WORKLOAD], (PERF_TEST_BEGIN, PERF_TEST_END)
    else:
        rows, markers = [w for w in workloads(False) if w.key in WORKLOADS], (SECTION_BEGIN, SECTION_END)
    results = {w.key: {side: [] for side in SIDES} for w in rows}
    path = os.path.join(out_dir, "RESULTS.md")
    total, done = size.runs * len(rows) * len(SIDES), 0
    try:
        # Run-major: after each pass every cell has one more run, so a run
        # cut short still leaves whole passes to read.
        for run in range(size.runs):
            for w in rows:
                for side in SIDES:
                    label = f"{slug(w.key)}-{slug(side)}-{run + 1}"
                    report = run_once(w, make_side(side, shoal_bin), shoal_bin, size, COMMANDS, label)
                    results[w.key][side].append(report)
                    done += 1
                    print(f"perf: {w.key} run {run + 1}/{size.runs} {side}: {shown(report, w)}", file=sys.stderr)
                    if done < total:
                        progress = f"**Partial: {done} of {total} runs done** (still going, or cut short)."
                        replace_section(path, *markers,
                                        section(sys.argv[1:], size, rows, results, info, loadavg(), shoal_bin,
                                                progress, markers))
    finally:
        _cleanup_everything()
    text = section(sys.argv[1:], size, rows, results, info, loadavg(), shoal_bin, markers=markers)
    replace_section(path, *markers, text)
    print(text)
    print(f"perf: wrote the section into {path}", file=sys.stderr)
    failed = any("error" in r for w in rows for side in (SHOAL_RF3, SHOAL_RF1) for r in results[w.key][side])
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("perf: interrupted; no results written", file=sys.stderr)
        sys.exit(130)
