#!/usr/bin/env python3
"""Shard-aware mode against the default, A/B in one run (issue 5: "cross-shard
routing: measure the cost when the connection's shard is not the owner; try a
shard-aware mode").

Default: every shard accepts on the one port (SO_REUSEPORT) and a partition
part whose owner is another shard hops there over the channel mesh.
Shard-aware (`listener.shard.aware=true`): each shard also listens on a port
of its own and is advertised as a broker of its own, so the client sends each
partition's requests to its owner and nothing hops.

Workloads, each on a fresh broker (2 shards) per run, the two modes
alternating run by run:
- W1 c=1 and c=4: `shoal bench produce --partitions 8 --record-size 100
  --acks -1 --duration 5`, 1 and 4 connections;
- W3-like: produce 3,000,000 records of 100 B (4 connections), then
  `shoal bench consume` of them from the beginning (1 connection), measured.

After each run the broker is stopped and the routing line each shard logs
(`produce A here, B forwarded; fetch C here, D forwarded`) gives the share
of partition parts that hopped. The section it writes into RESULTS.md
(between `<!-- kept: shard-aware -->` markers) has the medians, the raw runs
and the exact commands.

    perf/shard_aware.py [--runs 3] [--duration 5] [--consume-records 3000000] [--out perf]

Standard library only; SHOAL_BIN overrides target/release/shoal.
"""

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from procs import (  # noqa: E402
    BENCH_SLACK_S, CommandsLog, HOST, PERF_DIR, REPO, STOP_TIMEOUT_S, free_port, last_json_line, run_bounded,
)
from brokers import Shoal  # noqa: E402
from runs import BENCH_RATE_FLOOR  # noqa: E402
from results import fmt_rate, fmt_ratio, loadavg, machine, median_of, replace_section  # noqa: E402

SHARDS = 2
PARTITIONS = 8
RECORD_SIZE = 100
BEGIN_MARKER = "<!-- kept: shard-aware -->"
END_MARKER = "<!-- /kept: shard-aware -->"
ROUTED = re.compile(
    r"shard (\d+): partition parts routed: produce (\d+) here, (\d+) forwarded; "
    r"fetch (\d+) here, (\d+) forwarded"
)
PORT_RUN_ATTEMPTS = 50

MODES = [
    ("default", "default (one port, SO_REUSEPORT)"),
    ("aware", "shard-aware (`listener.shard.aware=true`)"),
]


def free_port_run(count):
    """A port p with p .. p+count-1 free on the loopback (bounded tries)."""
    for _ in range(PORT_RUN_ATTEMPTS):
        base = free_port()
        held = []
        try:
            for port in range(base, base + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                held.append(sock)
                sock.bind((HOST, port))
            return base
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise RuntimeError(f"no run of {count} free ports")


class ModeShoal(Shoal):
    def __init__(self, shoal_bin, mode):
        super().__init__(shoal_bin, shards=SHARDS)
        self.mode = mode
        self.port_base = free_port_run(SHARDS) if mode == "aware" else None

    def command(self):
        command = super().command()
        if self.mode == "aware":
            command += ["--override", "listener.shard.aware=true",
                        "--override", f"listener.shard.port.base={self.port_base}"]
        return command

    def placeholders(self):
        extra = {} if self.port_base is None else {f"={self.port_base}": "=$PORT_BASE"}
        return {**super().placeholders(), **extra}

    def stop_and_count(self):
        """SIGTERM, then the routing counts the shards logged, summed:
        (produce here, produce forwarded, fetch here, fetch forwarded)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return None
        with open(self.log_path, errors="replace") as f:
            found = [tuple(int(g) for g in m.groups()[1:]) for m in ROUTED.finditer(f.read())]
        if len(found) != SHARDS:
            return None
        return tuple(sum(column) for column in zip(*found))


def workloads(duration_s, consume_records):
    produce = ["--partitions", str(PARTITIONS), "--record-size", str(RECORD_SIZE), "--acks", "-1",
               "--duration", f"{duration_s:g}"]
    preload = ["--partitions", str(PARTITIONS), "--record-size", str(RECORD_SIZE), "--acks", "-1",
               "--connections", "4", "--records", str(consume_records)]
    return [
        ("W1 c=1", [("produce", produce + ["--connections", "1"], True)]),
        ("W1 c=4", [("produce", produce + ["--connections", "4"], True)]),
        ("W3-like", [("produce", preload, False),
                     ("consume", ["--records", str(consume_records), "--connections", "1"], True)]),
    ]


def run_once(shoal_bin, mode, steps, timeout_s, commands):
    broker = ModeShoal(shoal_bin, mode)
    try:
        broker.start(commands)
        topic = f"sa-{uuid.uuid4().hex[:8]}"
        report = None
        for bench_mode, args, measured in steps:
            command = [shoal_bin, "bench", bench_mode, "--bootstrap", broker.bootstrap, "--topic", topic,
                       *args, "--json"]
            commands.add(command, {**broker.placeholders(), topic: "$TOPIC"})
            code, out, err = run_bounded(command, timeout_s)
            if code != 0:
                return {"error": f"bench {bench_mode} exited with {code}: {err.strip()[-400:]}"}
            if measured:
                report = last_json_line(out)
        report["routed"] = broker.stop_and_count()
        report["reactor_stalls"] = broker.reactor_stalls()
        return report
    except RuntimeError as error:
        return {"error": str(error)}
    finally:
        broker.close()


def hop_share(report, kind):
    """'forwarded / all' partition parts of `kind` (produce or fetch) in a run."""
    routed = report.get("routed")
    if not routed:
        return "—"
    here, forwarded = (routed[0], routed[1]) if kind == "produce" else (routed[2], routed[3])
    total = here + forwarded
    return "—" if total == 0 else f"{forwarded:,} / {total:,} ({100 * forwarded / total:.0f}%)"


def hop_shares(reports, kind):
    """hop_share of every run, or one dash when no run had such parts."""
    shares = [hop_share(r, kind) for r in reports if "error" not in r]
    return "—" if all(share == "—" for share in shares) else "; ".join(shares)


def section(results, args, commands, info, load_end):
    names = [name for name, _ in workloads(args.duration, args.consume_records)]
    lines = [
        BEGIN_MARKER,
        "## Shard-aware mode against the default: A/B (issue 5)",
        "",
        f"Written by `perf/shard_aware.py --runs {args.runs} --duration {args.duration:g} "
        f"--consume-records {args.consume_records}` ({info['date']}, commit `{info['commit']}`, "
        f"load average {info['loadavg']} at the start, {load_end} at the end). Each run: a fresh "
        f"broker with {SHARDS} shards on an empty data directory; the two modes alternate run by run. "
        f"W1: `shoal bench produce` of {RECORD_SIZE} B records to {PARTITIONS} partitions, `acks=all`, "
        f"{args.duration:g} s. W3-like: {args.consume_records:,} records produced (4 connections), then "
        "`shoal bench consume` of them from the beginning (1 connection), measured. records/s; "
        "the bench client shares the 2 cores with the broker.",
        "",
        "| workload | mode | records/s (median) | runs | p99 ms (median) | stalls > 10 ms (all runs) | "
        "produce parts forwarded (per run) | fetch parts forwarded (per run) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        default_median = median_of(results[name]["default"], ("records_per_s",))
        for mode, label in MODES:
            reports = results[name][mode]
            median = median_of(reports, ("records_per_s",))
            runs = " / ".join(fmt_rate(r.get("records_per_s")) if "error" not in r else "error"
                              for r in reports)
            ratio = "" if mode == "default" else f" ({fmt_ratio(median, default_median)})"
            p99 = median_of(reports, ("latency_ms", "p99"))
            produce = hop_shares(reports, "produce")
            fetch = hop_shares(reports, "fetch")
            stalls = sum(r.get("reactor_stalls") or 0 for r in reports if "error" not in r)
            lines.append(f"| {name} | {label} | {fmt_rate(median)}{ratio} | {runs} | {p99} | "
                         f"{stalls} | {produce} | {fetch} |")
    errors = [f"{name} {mode}: {r['error']}" for name in names for mode, _ in MODES
              for r in results[name][mode] if "error" in r]
    stalls = sum(r.get("reactor_stalls") or 0 for name in names for mode, _ in MODES
                 for r in results[name][mode] if "error" not in r)
    lines += ["", f"Reactor stalls over 10 ms in all runs: {stalls}."]
    if errors:
        lines += ["", "Failed runs:", *[f"- {e}" for e in errors]]
    lines += [
        "",
        "Forwarded parts: partition parts of produce (or fetch) requests that the accepting shard "
        "sent to the owner over the mesh, out of all, from the line each shard logs at shutdown "
        "(the W3-like counts include the preload).",
        "",
        "```",
        *commands.lines,
        "```",
        END_MARKER,
    ]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--consume-records", type=int, default=3_000_000)
    parser.add_argument("--out", default=PERF_DIR, help="directory of the RESULTS.md to update")
    args = parser.parse_args()
    shoal_bin = os.environ.get("SHOAL_BIN") or os.path.join(REPO, "target", "release", "shoal")
    info = machine()
    commands = CommandsLog()
    timeout_s = args.duration + BENCH_SLACK_S + args.consume_records / BENCH_RATE_FLOOR
    plan = workloads(args.duration, args.consume_records)
    results = {name: {mode: [] for mode, _ in MODES} for name, _ in plan}
    for run in range(args.runs):
        for name, steps in plan:
            for mode, _ in MODES:
                report = run_once(shoal_bin, mode, steps, timeout_s, commands)
                results[name][mode].append(report)
                print(f"run {run + 1} {name} {mode}: {report.get('records_per_s', report)} "
                      f"routed {report.get('routed')}", file=sys.stderr)
    text = section(results, args, commands, info, loadavg())
    replace_section(os.path.join(args.out, "RESULTS.md"), BEGIN_MARKER, END_MARKER, text)
    print(text)


if __name__ == "__main__":
    main()
