#!/usr/bin/env python3
"""Where W4's end-to-end latency goes (issue 16: "A target not reached
stays written as not reached, with the profile that shows where the time
goes"): W4 at 100,000 records/s split into what the client sees and what
the broker's own histograms (issue 18's /metrics) say about the same run.

    perf/latency_breakdown.py [--bin target/release/shoal] [--duration 20] [--runs 3] [--out perf]

Per run and per flush policy (`sync`, shoal's default, and `none`), on a
fresh broker with an empty data directory and its admin listener on a free
port, 8 partitions, 100 B records, `acks=all`:
1. `shoal bench produce --rate 100000`: send to acknowledgement, per record;
2. `shoal bench e2e --rate 100000`: W4 itself, send to arrival at the
   consumer;
and across both steps, from `/metrics` scraped before and after: the
Produce requests' time in the broker (arrival to answer), the segment
flushes' time (an `O_DSYNC` write or an fdatasync: the group commit's
disk wait), and the group commits' sizes. The broker's histograms have
coarse buckets (0.1, 0.25, 0.5, 1, 2.5, 5, 10 ms ...): their quantiles
are interpolated within a bucket, as Prometheus's `histogram_quantile`
does. Medians over the runs. The section goes into RESULTS.md between
`<!-- kept: latency16 -->` markers.

Standard library only.
"""

import argparse
import json
import os
import re
import signal
import statistics
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from procs import HOST, PERF_DIR, REPO, CommandsLog, _cleanup_everything, _on_sigterm, free_port, last_json_line, run_bounded  # noqa: E402
from brokers import Shoal  # noqa: E402
from results import loadavg, machine, replace_section  # noqa: E402

BEGIN_MARKER = "<!-- kept: latency16 -->"
END_MARKER = "<!-- /kept: latency16 -->"
RATE = 100_000
PARTITIONS = 8
POLICIES = ("sync", "none")
SCRAPE_TIMEOUT_S = 10.0
CREATE_TIMEOUT_S = 60.0
BENCH_SLACK_S = 60.0
SAMPLE = re.compile(r'^(\w+)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'(\w+)="([^"]*)"')
# (row, histogram family, label filter, unit to ms)
HISTOGRAMS = (
    ("broker: Produce request, arrival to answer", "shoal_request_latency_seconds", {"api": "Produce"}, 1000.0),
    ("broker: segment flush (the group's disk wait)", "shoal_log_flush_seconds", {}, 1000.0),
)
GROUP_BYTES = "shoal_log_group_commit_bytes"


def scrape(url):
    """{(family, frozenset(labels)): value} of one /metrics answer."""
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as answer:
        text = answer.read().decode()
    samples = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and not line.startswith("#"):
            labels = frozenset(LABEL.findall(match[2] or ""))
            samples[(match[1], labels)] = float(match[3])
    return samples


def buckets(before, after, family, wanted):
    """Cumulative (upper bound, count) of the histogram's growth between
    two scrapes, summed over the labels not in `wanted`."""
    counts = {}
    for (name, labels), value in after.items():
        if name != f"{family}_bucket" or not set(wanted.items()) <= labels:
            continue
        bound = float(dict(labels)["le"])
        counts[bound] = counts.get(bound, 0.0) + value - before.get((name, labels), 0.0)
    return sorted(counts.items())


def quantile(cumulative, q):
    """histogram_quantile over cumulative buckets; None when empty."""
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    rank = q * cumulative[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in cumulative:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


def bench(shoal_bin, mode, broker, topic, duration_s, commands):
    command = [shoal_bin, "bench", mode, "--bootstrap", broker.bootstrap, "--topic", topic,
               "--partitions", str(PARTITIONS), "--record-size", "100", "--acks", "-1", "--rate", str(RATE),
               "--duration", str(duration_s), "--json"]
    commands.add(command, {**broker.placeholders(), topic: "$TOPIC"})
    code, out, err = run_bounded(command, duration_s + BENCH_SLACK_S)
    if code != 0:
        raise RuntimeError(f"bench {mode} exited with {code}: {err.strip()[-300:]}")
    return last_json_line(out)


def one_run(shoal_bin, policy, args, commands):
    admin_port = free_port()
    broker = Shoal(shoal_bin, overrides=(f"admin.listeners=http://{HOST}:{admin_port}",
                                         f"log.flush.policy={policy}"))
    try:
        broker.start(commands)
        topic = "latency"
        create = [shoal_bin, "topic", "create", topic, "--bootstrap", broker.bootstrap,
                  "--partitions", str(PARTITIONS)]
        commands.add(create, {**broker.placeholders(), topic: "$TOPIC"})
        code, _, err = run_bounded(create, CREATE_TIMEOUT_S)
        if code != 0:
            raise RuntimeError(f"topic create exited with {code}: {err.strip()[-300:]}")
        url = f"http://{HOST}:{admin_port}/metrics"
        before = scrape(url)
        produce = bench(shoal_bin, "produce", broker, topic, args.duration, commands)
        e2e = bench(shoal_bin, "e2e", broker, topic, args.duration, commands)
        after = scrape(url)
        row = {
            "client: produce, send to ack": produce["latency_ms"],
            "client: W4, send to arrival at the consumer": e2e["latency_ms"],
        }
        for label, family, wanted, to_ms in HISTOGRAMS:
            cumulative = buckets(before, after, family, wanted)
            row[label] = {f"p{name}": (None if (v := quantile(cumulative, q)) is None else round(v * to_ms, 3))
                          for name, q in (("50", 0.5), ("99", 0.99), ("999", 0.999))}
        groups = buckets(before, after, GROUP_BYTES, {})
        row["group commits"] = {"count": groups[-1][1] if groups else 0,
                                "median bytes": round(quantile(groups, 0.5) or 0)}
        return row
    finally:
        broker.close()


def fmt(value):
    return "—" if value is None else f"{value:.3f}"


def section(results, args, argv, info, commands, load_end):
    lines = [
        BEGIN_MARKER,
        "## Where W4's end-to-end latency goes (issue 16)",
        "",
        f"Written by `{argv}` ({info['date']}, commit `{info['commit']}`, load average {info['loadavg']} at "
        f"the start, {load_end} at the end). Per run and flush policy a fresh broker, {PARTITIONS} "
        f"partitions, 100 B records, `acks=all`, {RATE:,} records/s for {args.duration:g} s: `shoal bench "
        "produce` (send to acknowledgement), then `shoal bench e2e` (W4: send to arrival at the consumer); "
        "the broker's rows are its `/metrics` histograms over both steps (coarse buckets, interpolated as "
        f"`histogram_quantile` does). Milliseconds, median of {args.runs} run(s).",
        "",
        "| flush.policy | what | p50 | p99 | p99.9 |",
        "|---|---|---|---|---|",
    ]
    for policy in POLICIES:
        runs = results[policy]
        for what in runs[0]:
            if what == "group commits":
                continue
            cells = []
            for key in ("p50", "p99", "p999"):
                values = [r[what].get(key) for r in runs if r[what].get(key) is not None]
                cells.append(fmt(statistics.median(values)) if values else "—")
            lines.append(f"| {policy} | {what} | " + " | ".join(cells) + " |")
    lines += ["", "Group commits over both steps (median over runs): "
              + "; ".join(f"`{p}`: {statistics.median(r['group commits']['count'] for r in results[p]):,.0f} "
                          f"groups, median {statistics.median(r['group commits']['median bytes'] for r in results[p]):,.0f} bytes"
                          for p in POLICIES) + ".",
              "", "Every run:", "", "```"]
    for policy in POLICIES:
        for i, r in enumerate(results[policy]):
            lines.append(f"{policy} run {i + 1}: {json.dumps(r, default=str)}")
    lines += ["```", "", "```", *commands.lines, "```", END_MARKER]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=os.path.join(REPO, "target", "release", "shoal"))
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=PERF_DIR, help="directory of the RESULTS.md to update")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _on_sigterm)
    shoal_bin = os.path.abspath(args.bin)
    argv = " ".join(["perf/latency_breakdown.py", *sys.argv[1:]])
    info = machine()
    commands = CommandsLog()
    results = {policy: [] for policy in POLICIES}
    try:
        for run in range(args.runs):
            for policy in POLICIES:
                results[policy].append(one_run(shoal_bin, policy, args, commands))
                print(f"latency: run {run + 1} {policy}: {json.dumps(results[policy][-1], default=str)}",
                      file=sys.stderr)
    finally:
        _cleanup_everything()
    text = section(results, args, argv, info, commands, loadavg())
    replace_section(os.path.join(args.out, "RESULTS.md"), BEGIN_MARKER, END_MARKER, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
