#!/usr/bin/env python3
"""Where the time goes in the produce workloads whose targets are not met
(issue 5: "a target not met stays written as not met, with the profile that
shows where the time goes").

For each workload (W1 c=1: 100 B records; W2 c=1: 1 KiB records; 8
partitions, acks=all, one connection, shoal's durable default) it starts a
fresh shoal, drives it with `shoal bench produce`, and after a warm-up runs
`perf record` over the whole machine (every CPU, so the load generator and
idle time are in the picture too). It reports how the machine's CPU time
splits between the broker's shard threads, the broker's io_uring workers
(the kernel threads that run its buffered writes and fdatasyncs), the load
generator and idle, what share of the shards' own time is kernel, and the
hottest symbols. With --record it writes the section into perf/RESULTS.md
between its markers (kept by perf/run).

    perf/profile.py [--duration 8] [--record]

Needs `perf` (Debian: linux-perf) and root or perf_event_paranoid <= 0.
Standard library only; SHOAL_BIN overrides target/release/shoal.
"""

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from procs import (  # noqa: E402
    CommandsLog, PERF_DIR, REPO, _LIVE_PROCESSES, _cleanup_everything, last_json_line, run_bounded,
)
from brokers import Shoal  # noqa: E402
from results import fmt_rate, machine, replace_section  # noqa: E402

BEGIN_MARKER = "<!-- kept: profile -->"
END_MARKER = "<!-- /kept: profile -->"
PARTITIONS = 8
# The bench runs this much longer than the profile: start-up and topic
# creation stay out of it, and the load is steady while perf samples.
WARMUP_S = 2.0
TAIL_S = 1.0
SAMPLE_HZ = 999
# Symbols listed per workload.
TOP_SYMBOLS = 15
PERF_TIMEOUT_S = 120
WORKLOADS = [
    ("W1 c=1", 100),
    ("W2 c=1", 1024),
]
# perf report's lines: "  12.34%  comm  [k] symbol".
REPORT_LINE = re.compile(r"^\s*([\d.]+)%\s+(\S.*?)\s+\[([.k])\]\s+(.*?)\s*$")


def perf_samples(data_path, *filters):
    """(share % of all samples, comm, kernel?, symbol) for every comm/symbol
    pair of the samples `filters` (perf report options) keep."""
    code, out, err = run_bounded(
        ["perf", "report", "-i", data_path, "--no-children", "--sort", "comm,sym", "-g", "none",
         "--stdio", "--percent-limit", "0", "--percentage", "absolute", *filters], PERF_TIMEOUT_S)
    if code != 0:
        sys.exit(f"perf report failed: {err.strip()[-500:]}")
    rows = []
    for line in out.splitlines():
        match = REPORT_LINE.match(line)
        if match:
            share, comm, space, symbol = match.groups()
            rows.append((float(share), comm.strip(), space == "k", symbol))
    return rows


def shares_of(data_path, broker_pid, bench_pid):
    """The machine's CPU time split into its parts, and the broker's rows."""
    broker = perf_samples(data_path, "--pid", str(broker_pid))
    bench = perf_samples(data_path, "--pid", str(bench_pid))
    idle = perf_samples(data_path, "--comm", "swapper")
    shards = sum(share for share, comm, _, _ in broker if comm.startswith("shoal-shard"))
    parts = {
        "broker shards": shards,
        "broker io_uring workers": sum(share for share, _, _, _ in broker) - shards,
        "load generator (shoal bench)": sum(share for share, _, _, _ in bench),
        "idle": sum(share for share, _, _, _ in idle),
    }
    parts["other processes"] = max(0.0, 100.0 - sum(parts.values()))
    return parts, broker


def profile_once(shoal_bin, label, record_size, duration_s, commands):
    broker = Shoal(shoal_bin)
    data_path = os.path.join(broker.root, "perf.data")
    try:
        broker.start(commands)
        bench = [shoal_bin, "bench", "produce", "--bootstrap", broker.bootstrap, "--topic", "profile",
                 "--partitions", str(PARTITIONS), "--record-size", str(record_size), "--acks", "-1",
                 "--connections", "1", "--duration", str(WARMUP_S + duration_s + TAIL_S), "--json"]
        commands.add(bench, broker.placeholders())
        load = subprocess.Popen(bench, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        _LIVE_PROCESSES.add(load)
        time.sleep(WARMUP_S)
        record = ["perf", "record", "-a", "-g", "-F", str(SAMPLE_HZ), "-o", data_path, "--",
                  "sleep", str(duration_s)]
        commands.add(record, broker.placeholders())
        code, _, err = run_bounded(record, duration_s + PERF_TIMEOUT_S)
        if code != 0:
            sys.exit(f"perf record failed: {err.strip()[-500:]}")
        out, _ = load.communicate(timeout=duration_s + PERF_TIMEOUT_S)
        rate = last_json_line(out)["records_per_s"]
        parts, broker_rows = shares_of(data_path, broker.proc.pid, load.pid)
        return {"label": label, "records_per_s": rate, "parts": parts, "broker": broker_rows}
    finally:
        broker.close()


def summarize(run):
    """The shards' kernel time and the broker's time per symbol."""
    shard_kernel = 0.0
    symbols = collections.Counter()
    for share, comm, kernel, symbol in run["broker"]:
        if comm.startswith("shoal-shard") and kernel:
            shard_kernel += share
        symbols[("[k] " if kernel else "") + symbol] += share
    return shard_kernel, symbols


def section(runs, info, commands, duration_s):
    parts = ["broker shards", "broker io_uring workers", "load generator (shoal bench)", "other processes",
             "idle"]
    lines = [
        BEGIN_MARKER,
        "## Where the time goes: profiles of W1 c=1 and W2 c=1 (issue 5)",
        "",
        f"Written by `perf/profile.py --duration {duration_s:g} --record` ({info['date']}, commit "
        f"`{info['commit']}`, load average {info['loadavg']} at the start). A fresh broker per "
        f"workload, `shoal bench produce` with one connection, acks=all, {PARTITIONS} partitions; "
        f"`perf record -a` samples every CPU at {SAMPLE_HZ} Hz for {duration_s:g} s of steady load. "
        "Shares are of all CPU time on the machine (2 cores = 100%).",
        "",
        "| workload | records/s while sampled | " + " | ".join(parts) + " | kernel share of the shards' time |",
        "|---|---|" + "---|" * len(parts) + "---|",
    ]
    summaries = []
    for run in runs:
        shares = run["parts"]
        shard_kernel, symbols = summarize(run)
        summaries.append((run, shares, symbols))
        shard_total = shares["broker shards"]
        kernel_part = f"{100 * shard_kernel / shard_total:.0f}%" if shard_total else "—"
        lines.append(f"| {run['label']} | {fmt_rate(run['records_per_s'])} | "
                     + " | ".join(f"{shares[p]:.1f}%" for p in parts) + f" | {kernel_part} |")
    lines.append("")
    for run, shares, symbols in summaries:
        broker_total = shares["broker shards"] + shares["broker io_uring workers"]
        lines += [f"Hottest symbols of the broker in {run['label']} (share of all CPU time; "
                  f"the broker's threads had {broker_total:.1f}% in all, `[k]` = kernel):", "",
                  "| symbol | share |", "|---|---|"]
        for symbol, share in symbols.most_common(TOP_SYMBOLS):
            lines.append(f"| `{symbol.replace('|', '/')}` | {share:.2f}% |")
        lines.append("")
    lines += ["```", *commands.lines, "```", END_MARKER]
    return "\n".join(lines) + "\n"


def profiled(work):
    """What a profile script's `main` does around its work: checks that perf
    is there, finds the broker (SHOAL_BIN, else target/release/shoal), notes
    the machine, runs `work(shoal_bin, commands)` and stops every process it
    started whatever happens. Returns the work's result, the machine and the
    commands it logged."""
    if shutil.which("perf") is None:
        sys.exit("perf is not installed (Debian: apt-get install linux-perf)")
    shoal_bin = os.environ.get("SHOAL_BIN") or os.path.join(REPO, "target", "release", "shoal")
    info = machine()
    commands = CommandsLog()
    try:
        result = work(shoal_bin, commands)
    finally:
        _cleanup_everything()
    return result, info, commands


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds perf samples per workload")
    parser.add_argument("--record", action="store_true", help="write the section into perf/RESULTS.md")
    args = parser.parse_args()
    runs, info, commands = profiled(lambda shoal_bin, commands: [
        profile_once(shoal_bin, label, size, args.duration, commands) for label, size in WORKLOADS])
    text = section(runs, info, commands, args.duration)
    print(text)
    if args.record:
        replace_section(os.path.join(PERF_DIR, "RESULTS.md"), BEGIN_MARKER, END_MARKER, text)
        print("wrote the section into perf/RESULTS.md", file=sys.stderr)


if __name__ == "__main__":
    main()
