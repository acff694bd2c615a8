#!/usr/bin/env python3
"""What a scrape of `/metrics` costs on a broker with many partitions
(issue 18, "Performance": under 50 ms with 1,000 partitions).

    perf/scrape.py [--bin target/release/shoal] [--topics 10] [--partitions 100]
                   [--scrapes 50] [--out perf]

A fresh broker on an empty data directory with its admin listener on a free
port; `--topics` topics of `--partitions` partitions each, every partition
given records by `shoal bench produce` (so that its series carry values);
then `--scrapes` timed `GET /metrics` one after the other, after one
untimed. Reported: the median, p90 and largest time from sending the
request to the last byte of the answer, the answer's size and its series
(lines that are not comments). The same again with
`metrics.partition.series.enabled=false` on a second fresh broker. The
section goes into RESULTS.md between `<!-- kept: scrape18 -->` markers.

Standard library only.
"""

import argparse
import os
import signal
import statistics
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from procs import HOST, PERF_DIR, REPO, CommandsLog, _cleanup_everything, _on_sigterm, free_port, run_bounded  # noqa: E402
from brokers import Shoal  # noqa: E402
from results import loadavg, machine, replace_section  # noqa: E402

BEGIN_MARKER = "<!-- kept: scrape18 -->"
END_MARKER = "<!-- /kept: scrape18 -->"
# The bound for a broker with 1,000 partitions.
SCRAPE_MS_MAX = 50.0
SCRAPE_TIMEOUT_S = 10.0
CREATE_TIMEOUT_S = 60.0
PRODUCE_S = 1.0
PRODUCE_TIMEOUT_S = 60.0
CASES = (
    ("per-partition series on (default)", ()),
    ("metrics.partition.series.enabled=false", ("metrics.partition.series.enabled=false",)),
)


def scrape(url):
    """(milliseconds, body) of one GET."""
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as answer:
        body = answer.read()
    return (time.perf_counter() - started) * 1000, body


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(shoal_bin, overrides, args, commands):
    admin_port = free_port()
    broker = Shoal(shoal_bin, overrides=(f"admin.listeners=http://{HOST}:{admin_port}", *overrides))
    try:
        broker.start(commands)
        for t in range(args.topics):
            topic = f"scrape-{t}"
            create = [shoal_bin, "topic", "create", topic, "--bootstrap", broker.bootstrap,
                      "--partitions", str(args.partitions)]
            produce = [shoal_bin, "bench", "produce", "--bootstrap", broker.bootstrap, "--topic", topic,
                       "--acks", "1", "--duration", str(PRODUCE_S), "--json"]
            for command, timeout_s in ((create, CREATE_TIMEOUT_S), (produce, PRODUCE_TIMEOUT_S)):
                if t == 0:
                    commands.add(command, {**broker.placeholders(), topic: "$TOPIC"})
                code, _, err = run_bounded(command, timeout_s)
                if code != 0:
                    raise RuntimeError(f"{command[1]} exited with {code}: {err.strip()[-300:]}")
        url = f"http://{HOST}:{admin_port}/metrics"
        commands.add(["curl", url], {f":{admin_port}": ":$ADMIN_PORT"})
        scrape(url)
        times, body = [], b""
        for _ in range(args.scrapes):
            took, body = scrape(url)
            times.append(took)
        series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        return {"median": statistics.median(times), "p90": percentile(times, 0.9), "max": max(times),
                "bytes": len(body), "series": series}
    finally:
        broker.close()


def section(rows, args, argv, info, commands, load_end):
    partitions = args.topics * args.partitions
    lines = [
        BEGIN_MARKER,
        f"## A scrape of /metrics with {partitions:,} partitions (issue 18)",
        "",
        f"Written by `{argv}` ({info['date']}, commit `{info['commit']}`, load average {info['loadavg']} at "
        f"the start, {load_end} at the end). A fresh broker, {args.topics} topics of {args.partitions} "
        f"partitions, each given records for {PRODUCE_S:g} s by `shoal bench produce`; then "
        f"{args.scrapes} timed `GET /metrics` one after another (after one untimed), each from the request "
        "to the last byte of the answer, the client on the same machine. Target: under "
        f"{SCRAPE_MS_MAX:g} ms with 1,000 partitions.",
        "",
        "| broker | median ms | p90 ms | max ms | answer bytes | series | under the bound |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, r in rows:
        met = "met" if r["median"] < SCRAPE_MS_MAX and r["p90"] < SCRAPE_MS_MAX else "NOT met"
        lines.append(f"| {label} | {r['median']:.1f} | {r['p90']:.1f} | {r['max']:.1f} | {r['bytes']:,} | "
                     f"{r['series']:,} | {met} |")
    lines += ["", "```", *commands.lines, "```", END_MARKER]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=os.path.join(REPO, "target", "release", "shoal"))
    parser.add_argument("--topics", type=int, default=10)
    parser.add_argument("--partitions", type=int, default=100, help="partitions per topic")
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--out", default=PERF_DIR, help="directory of the RESULTS.md to update")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _on_sigterm)
    shoal_bin = os.path.abspath(args.bin)
    argv = " ".join(["perf/scrape.py", *sys.argv[1:]])
    info = machine()
    commands = CommandsLog()
    rows = []
    try:
        for label, overrides in CASES:
            rows.append((label, measure(shoal_bin, overrides, args, commands)))
            print(f"scrape: {label}: {rows[-1][1]}", file=sys.stderr)
    finally:
        _cleanup_everything()
    text = section(rows, args, argv, info, commands, loadavg())
    replace_section(os.path.join(args.out, "RESULTS.md"), BEGIN_MARKER, END_MARKER, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
