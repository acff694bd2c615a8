#!/usr/bin/env python3
"""What waiting for every replica's fdatasync costs a replicated produce
(issue 15, scope 4: durability decided and measured).

    perf/flush_cost.py [--quick] [--out DIR] [--shoal-bin PATH]

Three-node shoal clusters (perf/replication.py's, fresh processes and data
dirs each run) with RF=3, `min.insync.replicas=2` topics of
`flush.policy=sync` (the default: a leader or follower counts toward the
high watermark only up to what it has fdatasync'd, so an acknowledged
record survives every broker losing power at once) against
`flush.policy=interval` (counted once written to the page cache: it
survives the loss of processes, not of power everywhere), alternating run
by run: W1 (4 connections, `acks=all`) and W4 (end-to-end latency at a
fixed rate). The section goes into RESULTS.md between its markers.
"""

import argparse
import os
import sys

from procs import CommandsLog, _cleanup_everything
from results import fmt_rate, fmt_ratio, loadavg, machine, median_of, replace_section
from runs import FULL, QUICK, workloads

import replication

SYNC = "shoal RF=3 flush.policy=sync"
INTERVAL = "shoal RF=3 flush.policy=interval"
SIDES = (SYNC, INTERVAL)
WORKLOADS = ("W1 c=4", "W4")
SECTION_BEGIN = "<!-- section:flush-cost -->"
SECTION_END = "<!-- /section:flush-cost -->"
COMMANDS = CommandsLog()


def make_side(side, shoal_bin):
    def make():
        target = replication.ReplicatedCluster(side, shoal_bin, False, replication.REPLICATED)
        if side == INTERVAL:
            target.topic_configs += ("flush.policy=interval",)
        return target
    return make


def figure(report, workload):
    if "error" in report:
        return report["error"]
    if workload.metric == "latency":
        return f"p99 {report['latency_ms']['p99']:,.2f} ms"
    return f"{report['records_per_s']:,.0f} records/s"


def section(argv, size, rows, results, info, load_end, shoal_bin):
    lines = [SECTION_BEGIN, "## What fsync costs a replicated produce: RF=3 with flush.policy=sync against "
             "interval (issue 15)", "",
             f"`perf/flush_cost.py {' '.join(argv)}` (binary `{os.path.relpath(shoal_bin, replication.REPO)}`), "
             f"{info['date']}, commit `{info['commit']}`, {info['nproc']} × {info['cpu']}, load average (1/5/15 min) "
             f"at the start {info['loadavg']}, at the end {load_end}. Median of {size.runs} run(s) per cell, the two sides "
             "alternating run by run, each on fresh processes and empty data dirs; 3 combined nodes on one "
             "machine (one disk), 8 partitions, RF=3, `min.insync.replicas=2`, `shoal bench` as perf/run runs it.",
             "", *replication.perf_cluster.busy_note(info),
             "| workload | sync | interval | sync/interval |", "|---|---|---|---|"]
    for w in rows:
        if w.metric == "latency":
            m = {s: median_of(results[w.key][s], ["latency_ms", "p99"]) for s in SIDES}
            cells = [f"p99 {m[s]:,.2f} ms" if m[s] is not None else "failed" for s in SIDES]
        else:
            m = {s: median_of(results[w.key][s], ["records_per_s"]) for s in SIDES}
            cells = [fmt_rate(m[s]) for s in SIDES]
        lines.append(f"| {w.key}: {w.title} | {cells[0]} | {cells[1]} | {fmt_ratio(m[SYNC], m[INTERVAL])} |")
    lines += ["", "| workload | side | runs |", "|---|---|---|"]
    for w in rows:
        for side in SIDES:
            lines.append(f"| {w.key} | {side} | {'; '.join(figure(r, w) for r in results[w.key][side])} |")
    lines += ["", "```", *COMMANDS.lines, "```", SECTION_END]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    replication.perf_cluster.cluster_run_arguments(parser)
    args = parser.parse_args()
    shoal_bin, out_dir = replication.perf_cluster.start_cluster_run(args)
    size = QUICK if args.quick else FULL
    info = machine()
    rows = [w for w in workloads(False) if w.key in WORKLOADS]
    results = {w.key: {side: [] for side in SIDES} for w in rows}
    try:
        for run in range(size.runs):
            for w in rows:
                for side in SIDES:
                    label = f"flush-{replication.slug(w.key)}-{replication.slug(side)}-{run + 1}"
                    report = replication.run_once(w, make_side(side, shoal_bin), shoal_bin, size, COMMANDS, label)
                    results[w.key][side].append(report)
                    print(f"perf: {w.key} run {run + 1}/{size.runs} {side}: {figure(report, w)}", file=sys.stderr)
    finally:
        _cleanup_everything()
    text = section(sys.argv[1:], size, rows, results, info, loadavg(), shoal_bin)
    path = os.path.join(out_dir, "RESULTS.md")
    replace_section(path, SECTION_BEGIN, SECTION_END, text)
    print(text)
    failed = any("error" in r for w in rows for reports in results[w.key].values() for r in reports)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
