#!/usr/bin/env python3
"""Two shoal binaries against each other, A/B in one run (issue 11: "a
perf/run A/B in one run against the commit before this work shows no loss on
W1 and W3 beyond noise").

Only the broker differs: both sides are driven by B's `shoal bench`, so a
change in the client cannot pass for a change in the broker. Workloads are
perf/run's (`perf/harness.py`), each run on a fresh broker with an empty data
directory, A then B in every run (ABAB...), so the machine's drift and the
other work on it fall on both sides alike:
- W1 c=1 and c=4: `shoal bench produce --partitions 8 --record-size 100
  --acks -1 --duration D`, 1 and 4 connections;
- W3-like: N records of 100 B produced (4 connections), then `shoal bench
  consume` of them from the beginning (1 connection), measured;
- W7 and W8, when named in `--workloads`: perf/run's catch-up reads of
  `--catchup-records` records of 1 KiB, warm (W7) and after dropping the page
  cache (W8).

Per workload the section it writes into RESULTS.md (between `<!-- kept: ab
-->` markers, which perf/run keeps) has each side's median records/s and
spread, B/A, and a Mann-Whitney test of B's runs against A's (exact over
every split of the pooled runs while that is small, else the normal
approximation), then the raw runs and the exact commands.

    perf/ab.py --a BIN --a-label TEXT --b BIN --b-label TEXT [--runs 5] [--duration 5]
               [--consume-records 3000000] [--workloads "W1 c=1,W1 c=4,W3"]
               [--catchup-records 2000000] [--out perf]
               [--a-config KEY=VALUE ...] [--b-config KEY=VALUE ...] [--name NAME]

The same binary with two configurations is an A/B too (`--a-config
metrics.enabled=false`): each side's `--override`s are listed with it.
`--name` keeps several A/Bs in RESULTS.md: the section's markers are
`<!-- kept: ab-NAME -->` (without it, `<!-- kept: ab -->`).

Standard library only.
"""

import argparse
import hashlib
import itertools
import math
import os
import random
import shlex
import signal
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from procs import CommandsLog, PERF_DIR, _cleanup_everything, _on_sigterm  # noqa: E402
from brokers import Shoal  # noqa: E402
from runs import PARTITIONS, Size, run_workload_once, workloads  # noqa: E402
from results import fmt_rate, fmt_ratio, loadavg, machine, median_of, ok_reports, replace_section  # noqa: E402

def markers(name):
    """The section's begin and end markers for an A/B called `name`."""
    kept = "ab" if name is None else f"ab-{name}"
    return f"<!-- kept: {kept} -->", f"<!-- /kept: {kept} -->"


# The workloads run unless --workloads names others (perf/run's keys).
WORKLOADS = ("W1 c=1", "W1 c=4", "W3")
# Any of these may be named: W7/W8 for a change to the catch-up read path.
CHOOSABLE = ("W1 c=1", "W1 c=4", "W3", "W7", "W8")
SIDES = ("A", "B")
# Below this two-sided p the test calls B faster or slower than A.
ALPHA = 0.05
# Splits of the pooled runs counted one by one for the exact test: 10 runs a
# side is 184,756 splits, a second of Python; beyond, the normal approximation.
EXACT_SPLITS_MAX = 200_000
# A failed run's message in RESULTS.md, cut to this (the broker log's tail
# is in the terminal output too).
PROBLEM_CHARS_MAX = 300
# Bytes of a binary read at a time when hashing it.
HASH_CHUNK_BYTES = 1 << 20
# The interval of B/A: a percentile bootstrap of median(B)/median(A), each
# side's runs resampled on their own, this many times, from a fixed seed so
# that the same runs give the same interval; 95% two-sided.
BOOTSTRAP_RESAMPLES = 4000
BOOTSTRAP_SEED = 11
INTERVAL_LEVEL = 0.95
# Fewer runs a side than this give no interval.
INTERVAL_RUNS_MIN = 4


def midranks(values):
    """Rank of each value among `values` from 1, tied values sharing the mean
    of their ranks."""
    order = sorted(values)
    first = {}
    for i, v in enumerate(order):
        first.setdefault(v, i)
    return [first[v] + (order.count(v) + 1) / 2 for v in values]


def mann_whitney(a, b):
    """(share of (A run, B run) pairs in which B's is the higher, a tie
    counting half; two-sided p) for "A and B come from the same
    distribution"; None when a side has no runs."""
    if not a or not b:
        return None
    pooled, pairs = a + b, len(a) * len(b)
    ranks = midranks(pooled)
    # U of B: its rank sum less the least that sum can be.
    floor = len(b) * (len(b) + 1) / 2
    u = sum(ranks[len(a):]) - floor
    distance = abs(u - pairs / 2)
    if math.comb(len(pooled), len(b)) <= EXACT_SPLITS_MAX:
        # Every way the pooled runs could have fallen into B: the share of
        # them at least as far from an even split as the runs that happened.
        extreme = total = 0
        for chosen in itertools.combinations(ranks, len(b)):
            total += 1
            extreme += abs(sum(chosen) - floor - pairs / 2) >= distance - 1e-9
        return u / pairs, extreme / total
    n = len(pooled)
    ties = sum(t ** 3 - t for t in (pooled.count(v) for v in set(pooled)))
    variance = pairs / 12 * ((n + 1) - ties / (n * (n - 1)))
    if variance == 0:
        return u / pairs, 1.0
    return u / pairs, math.erfc(distance / math.sqrt(variance) / math.sqrt(2))


def ratio_interval(a, b):
    """The 95% bootstrap interval of median(b) / median(a), or None with
    fewer than INTERVAL_RUNS_MIN runs a side. A bound such as "B costs at
    most 2%" holds when the interval's low end is at least 0.98."""
    if min(len(a), len(b)) < INTERVAL_RUNS_MIN or 0 in a:
        return None
    rng = random.Random(BOOTSTRAP_SEED)
    ratios = sorted(statistics.median(rng.choices(b, k=len(b))) / statistics.median(rng.choices(a, k=len(a)))
                    for _ in range(BOOTSTRAP_RESAMPLES))
    tail = (1 - INTERVAL_LEVEL) / 2
    return ratios[int(tail * BOOTSTRAP_RESAMPLES)], ratios[int((1 - tail) * BOOTSTRAP_RESAMPLES) - 1]


def fmt_interval(interval):
    return "—" if interval is None else f"{interval[0]:.3f} – {interval[1]:.3f}"


def cpu_per_million(reports):
    """The broker's CPU seconds per million records of each run that has both."""
    return [r["broker_cpu_s"] / r["records"] * 1e6 for r in ok_reports(reports)
            if r.get("records") and r.get("broker_cpu_s") is not None]


def smallest_p(a_runs, b_runs):
    """The smallest two-sided p the exact test can give for these run
    counts (no ties): both extreme splits out of all."""
    return min(1.0, 2 / math.comb(a_runs + b_runs, b_runs))


def rates(reports):
    return [r["records_per_s"] for r in ok_reports(reports) if r.get("records_per_s") is not None]


def spread(values):
    return "—" if not values else f"{fmt_rate(min(values))} – {fmt_rate(max(values))}"


def reading(test):
    if test is None:
        return "—"
    share, p = test
    if p >= ALPHA:
        return "no difference shown"
    return "**B slower**" if share < 0.5 else "B faster"


def sha256_prefix(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def section(results, args, argv, binaries, commands, info, load_end):
    begin_marker, end_marker = markers(args.name)
    lines = [
        begin_marker,
        f"## A/B: {args.a_label} (A) against {args.b_label} (B)",
        "",
        f"Written by `{argv}` ({info['date']}, perf/ab.py from commit `{info['commit']}`, load average "
        f"{info['loadavg']} at the start, {load_end} at the end).",
        "",
        *[f"- {side}: {label}: `{path}` (sha256 `{digest}`)"
          + "".join(f", `--override {o}`" for o in overrides)
          for side, label, path, digest, overrides in binaries],
        "",
        "Each run: a fresh broker (default shards) on an empty data directory, A then B; both driven by "
        f"B's `shoal bench`. {described(args)}records/s; the bench client shares the "
        "machine's cores with the broker. *B above A*: the share of (A run, B run) pairs in which B's "
        "run is the faster (Mann–Whitney U over the pairs; 50% is no difference); p: two-sided, "
        f"\"no difference shown\" at p ≥ {ALPHA:g}. *B/A 95%*: a bootstrap interval of the medians' "
        "ratio (each side's runs resampled): B costs at most x% where its low end is at least 1 − x%.",
        "",
        "| workload | A records/s (median) | A spread | B records/s (median) | B spread | B/A | "
        "B/A 95% | B above A | p | reading |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in args.workloads:
        a, b = rates(results[name]["A"]), rates(results[name]["B"])
        a_median = median_of(results[name]["A"], ("records_per_s",))
        b_median = median_of(results[name]["B"], ("records_per_s",))
        test = mann_whitney(a, b)
        share, p = ("—", "—") if test is None else (f"{test[0]:.0%}", f"{test[1]:.3f}")
        bounds = fmt_interval(ratio_interval(a, b))
        lines.append(f"| {label_of(name)} | {fmt_rate(a_median)} | {spread(a)} | "
                     f"{fmt_rate(b_median)} | {spread(b)} | {fmt_ratio(b_median, a_median)} | "
                     f"{bounds} | {share} | {p} | {reading(test)} |")
    lines += [
        "",
        "The broker's CPU time per million records of the measured step (its process's user and "
        "system time, `/proc/PID/stat`): steadier than records/s when the client shares the cores. "
        "*B/A 95%* as above; B costs at most x% more CPU where its high end is at most 1 + x%.",
        "",
        "| workload | A CPU s per million (median) | B CPU s per million (median) | B/A | B/A 95% |",
        "|---|---|---|---|---|",
    ]
    for name in args.workloads:
        a, b = cpu_per_million(results[name]["A"]), cpu_per_million(results[name]["B"])
        if not a or not b:
            lines.append(f"| {label_of(name)} | — | — | — | — |")
            continue
        bounds = fmt_interval(ratio_interval(a, b))
        a_median, b_median = statistics.median(a), statistics.median(b)
        lines.append(f"| {label_of(name)} | {a_median:.3f} | {b_median:.3f} | "
                     f"{fmt_ratio(b_median, a_median)} | {bounds} |")
    floor = smallest_p(args.runs, args.runs)
    if floor >= ALPHA:
        lines += ["", f"With {args.runs} run(s) a side the smallest p the test can give is {floor:.2f}: "
                  f"no difference can reach p < {ALPHA:g}, so the readings say nothing; take more runs."]
    lines += [
        "",
        "Raw runs, records/s in the order run (run i of A came just before run i of B); stalls: "
        "reactor stalls over 10 ms the broker logged, all runs of the side.",
        "",
        "| workload | side | runs | stalls > 10 ms |",
        "|---|---|---|---|",
    ]
    for name in args.workloads:
        for side in SIDES:
            reports = results[name][side]
            runs = " / ".join("error" if "error" in r else fmt_rate(r.get("records_per_s"))
                              for r in reports)
            ok = ok_reports(reports)
            stalls = sum(r.get("reactor_stalls") or 0 for r in ok) if ok else "—"
            lines.append(f"| {label_of(name)} | {side} | {runs} | {stalls} |")
    problems = [f"{label_of(name)} {side} run {i + 1}: {problem}" for name in args.workloads for side in SIDES
                for i, r in enumerate(results[name][side])
                for problem in (r.get("error"), r.get("error_note")) if problem]
    if problems:
        # One line each: a failed start carries the broker log's tail.
        lines += ["", "Failed runs and broker errors:",
                  *[f"- {' '.join(p.split())[:PROBLEM_CHARS_MAX]}" for p in problems]]
    lines += [
        "",
        "Commands (`$A_BIN`, `$B_BIN` the binaries above; `$PORT`, `$TMP`, `$TOPIC` per run):",
        "",
        "```",
        *commands.lines,
        "```",
        end_marker,
    ]
    return "\n".join(lines) + "\n"


def described(args):
    """What the workloads run do, a sentence each."""
    names = set(args.workloads)
    text = ""
    if names & {"W1 c=1", "W1 c=4"}:
        text += f"W1: 100 B records to {PARTITIONS} partitions, `acks=all`, {args.duration:g} s. "
    if "W3" in names:
        text += (f"W3-like: {args.consume_records:,} records produced (4 connections), then consumed from "
                 "the beginning (1 connection), measured. ")
    if names & {"W7", "W8"}:
        text += (f"W7/W8: {args.catchup_records:,} records of 1 KiB produced (4 connections), then consumed "
                 "from the beginning (1 connection), measured; W8 drops the page cache in between. ")
    return text


def label_of(name):
    return "W3-like" if name == "W3" else name


def executable(path):
    path = os.path.abspath(path)
    if not os.access(path, os.X_OK):
        sys.exit(f"ab: {path} is not an executable")
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", required=True, help="the baseline broker binary")
    parser.add_argument("--a-label", required=True, help="what A is, e.g. its commit")
    parser.add_argument("--b", required=True, help="the broker binary compared; its `shoal bench` drives both")
    parser.add_argument("--b-label", required=True, help="what B is, e.g. its commit")
    parser.add_argument("--runs", type=int, default=5, help="runs per workload and side")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per W1 run")
    parser.add_argument("--consume-records", type=int, default=3_000_000, help="records the W3-like run reads")
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help=f"comma-separated, of {', '.join(CHOOSABLE)}")
    parser.add_argument("--catchup-records", type=int, default=2_000_000, help="records W7 and W8 read")
    parser.add_argument("--out", default=PERF_DIR, help="directory of the RESULTS.md to update")
    parser.add_argument("--a-config", action="append", default=[], metavar="KEY=VALUE",
                        help="a broker config of A's (`serve --override`); repeatable")
    parser.add_argument("--b-config", action="append", default=[], metavar="KEY=VALUE",
                        help="a broker config of B's; repeatable")
    parser.add_argument("--name", help="the A/B's name in RESULTS.md's section markers")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    args.workloads = [name.strip() for name in args.workloads.split(",") if name.strip()]
    unknown = [name for name in args.workloads if name not in CHOOSABLE]
    if unknown or not args.workloads:
        parser.error(f"--workloads: {', '.join(unknown) or 'none named'}; choose from {', '.join(CHOOSABLE)}")
    signal.signal(signal.SIGTERM, _on_sigterm)
    # Started in the background by a non-interactive shell, Python inherits
    # SIGINT ignored; Ctrl-C (or kill -INT) must still end the run.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    brokers = {"A": executable(args.a), "B": executable(args.b)}
    bench_bin = brokers["B"]
    argv = " ".join(["perf/ab.py", *map(shlex.quote, sys.argv[1:])])
    overrides = {"A": tuple(args.a_config), "B": tuple(args.b_config)}
    binaries = [(side, label, brokers[side], sha256_prefix(brokers[side]), overrides[side])
                for side, label in (("A", args.a_label), ("B", args.b_label))]
    # No warm-up and no kafka-producer-perf-test: both sides are shoal, alike.
    size = Size("ab", runs=args.runs, duration_s=args.duration, consume_records=args.consume_records,
                        ceiling_s=0, idle_s=0.0, warmup_s=0.0, perf_test_records=0,
                catchup_records=args.catchup_records)
    plan = [w for w in workloads(smoke=False) if w.key in args.workloads]
    info = machine()
    commands = CommandsLog()
    # The binaries' paths as placeholders, so A's and B's commands read apart.
    named = {brokers["A"]: "$A_BIN", brokers["B"]: "$B_BIN"}
    logged = NamedCommands(commands, named)
    results = {w.key: {side: [] for side in SIDES} for w in plan}
    try:
        for run in range(args.runs):
            for w in plan:
                for side in SIDES:
                    report = run_workload_once(w, lambda side=side: Shoal(brokers[side],
                                                                          overrides=overrides[side]),
                                                       bench_bin, size, logged)
                    results[w.key][side].append(report)
                    shown = report.get("error") or f"{report['records_per_s']:,.0f} records/s"
                    print(f"ab: run {run + 1}/{args.runs} {label_of(w.key)} {side}: {shown}", file=sys.stderr)
    finally:
        _cleanup_everything()
    text = section(results, args, argv, binaries, commands, info, loadavg())
    replace_section(os.path.join(args.out, "RESULTS.md"), *markers(args.name), text)
    print(text)
    failed = any("error" in r for sides in results.values() for reports in sides.values() for r in reports)
    return 1 if failed else 0


class NamedCommands:
    """A CommandsLog view that also shows the binaries by name."""

    def __init__(self, log, named):
        self.log, self.named = log, named

    def add(self, command, placeholders=None):
        self.log.add(command, {**self.named, **(placeholders or {})})


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # main's finally and atexit have killed the brokers by now.
        print("ab: interrupted; no results written", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)
