#!/usr/bin/env python3
"""Produce latency with the log cleaner churning, against the same load with
the cleaner off (issue 4: "the cleaner yields so that produce latency does
not suffer").

Each run starts a fresh shoal (`perf/brokers.py`'s broker handling), creates a
compacted topic with 1 MiB segments, preloads it with keyed records (a
backlog for the cleaner), then measures `shoal bench produce --rate` with
keys into the same topic: every produced segment makes the topic dirty again,
so with the cleaner on it rewrites the topic over and over while the latency
is measured. Runs alternate cleaner on / off; the section it writes into
RESULTS.md (between markers that perf/harness.py keeps) has the medians, the
ratio and the exact commands.

    perf/compaction.py [--runs 3] [--duration 20] [--out perf]

Standard library only; SHOAL_BIN overrides target/release/shoal.
"""

import argparse
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from procs import BENCH_SLACK_S, CommandsLog, PERF_DIR, REPO, last_json_line, run_bounded, tail  # noqa: E402
from brokers import Shoal  # noqa: E402
from results import fmt_rate, fmt_ratio, machine, median_of, replace_section  # noqa: E402

TOPIC = "churn"
PARTITIONS = 2
KEYS = 200_000
RECORD_SIZE = 100
PRELOAD_RECORDS = 1_000_000
RATE = 50_000
TOPIC_CONFIGS = [
    "cleanup.policy=compact",
    "segment.bytes=1048576",
    # Dirty again after a tenth of the topic is rewritten: the cleaner is
    # busy for the whole measurement.
    "min.cleanable.dirty.ratio=0.1",
]
BEGIN_MARKER = "<!-- kept: compaction -->"
END_MARKER = "<!-- /kept: compaction -->"
CLEANED_LINE = re.compile(r"cleaned churn-\d+: \d+ segment\(s\) of (\d+) bytes")


# The cleaner settings compared: (name, label, broker overrides).
IO_LIMIT_BYTES_PER_S = 10 * 1024 * 1024
MODES = [
    ("on", "on (`log.cleaner.enable=true`)", ["log.cleaner.enable=true"]),
    ("limited", f"on, `log.cleaner.io.max.bytes.per.second={IO_LIMIT_BYTES_PER_S}`",
     ["log.cleaner.enable=true", f"log.cleaner.io.max.bytes.per.second={IO_LIMIT_BYTES_PER_S}"]),
    ("off", "off (`log.cleaner.enable=false`)", ["log.cleaner.enable=false"]),
]


# Every mode checks for dirty logs often, so passes start within the run.
BACKOFF_OVERRIDE = "log.cleaner.backoff.ms=100"


def cleaned_bytes(log_path):
    """(passes, bytes rewritten) the broker has logged so far."""
    passes, total = 0, 0
    try:
        with open(log_path, errors="replace") as f:
            for line in f:
                match = CLEANED_LINE.search(line)
                if match:
                    passes += 1
                    total += int(match.group(1))
    except FileNotFoundError:
        pass
    return passes, total


def topic_bytes(data_dir):
    """Bytes of the topic's files on disk (segments and indexes); a file the
    cleaner removes while they are counted counts as gone."""
    total = 0
    for entry in os.scandir(data_dir):
        if entry.is_dir() and entry.name.startswith(f"{TOPIC}-"):
            for file in os.scandir(entry.path):
                try:
                    total += file.stat().st_size
                except FileNotFoundError:
                    pass
    return total


def run_once(shoal_bin, overrides, duration_s, commands):
    broker = Shoal(shoal_bin, overrides=overrides + [BACKOFF_OVERRIDE]).start(commands)
    try:
        placeholders = broker.placeholders()
        bootstrap = ["--bootstrap", broker.bootstrap]
        create = [shoal_bin, "topic", "create", TOPIC, "--partitions", str(PARTITIONS), *bootstrap]
        for config in TOPIC_CONFIGS:
            create += ["--config", config]
        bench = [shoal_bin, "bench", "produce", *bootstrap, "--topic", TOPIC, "--keys", str(KEYS),
                 "--record-size", str(RECORD_SIZE)]
        preload = bench + ["--records", str(PRELOAD_RECORDS), "--acks", "1", "--connections", "2", "--json"]
        measure = bench + ["--rate", str(RATE), "--duration", str(duration_s), "--acks", "-1", "--json"]
        for command in (create, preload):
            commands.add(command, placeholders)
            code, out, err = run_bounded(command, BENCH_SLACK_S + duration_s)
            if code != 0:
                raise RuntimeError(f"{' '.join(command)} failed: {err.strip()[-500:]}")
        commands.add(measure, placeholders)
        before = cleaned_bytes(broker.log_path)
        code, out, err = run_bounded(measure, BENCH_SLACK_S + duration_s)
        after = cleaned_bytes(broker.log_path)
        if code != 0:
            raise RuntimeError(f"bench failed: {err.strip()[-500:]}")
        report = last_json_line(out)
        report["cleaner_passes"] = after[0] - before[0]
        report["cleaner_bytes"] = after[1] - before[1]
        report["topic_bytes"] = topic_bytes(broker.data_dir)
        return report
    except RuntimeError as error:
        raise RuntimeError(f"{error}\nbroker log:\n{tail(broker.log_path)}") from error
    finally:
        broker.close()


def section(reports, duration_s, runs, commands, info):
    def med(mode, *path):
        return median_of(reports[mode], path)

    off_p99 = med("off", "latency_ms", "p99")
    lines = [
        BEGIN_MARKER,
        "## Produce latency while the log cleaner runs (issue 4)",
        "",
        f"Written by `perf/compaction.py --runs {runs} --duration {duration_s:g}` "
        f"({info['date']}, commit `{info['commit']}`, load average {info['loadavg']} at the start). "
        f"Each run: a fresh broker (2 shards), a compacted topic of {PARTITIONS} partitions with 1 MiB "
        f"segments and `min.cleanable.dirty.ratio=0.1`, preloaded with {PRELOAD_RECORDS:,} records "
        f"over {KEYS:,} keys; then {RATE:,} keyed records/s of {RECORD_SIZE} B with `acks=all` for "
        f"{duration_s:g} s, latency counted from when each record was due. The settings "
        "alternate run by run; medians of the runs. The bench client shares the 2 cores with the "
        "broker and its cleaner.",
        "",
        "| cleaner | records/s | p50 ms | p99 ms | p999 ms | p99 / off | p99 of each run | "
        "cleaner passes in the run | MB cleaned | topic MB at the end |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, label, _ in MODES:
        per_run = [r.get("latency_ms", {}).get("p99") for r in reports[mode]]
        lines.append(
            f"| {label} | {fmt_rate(med(mode, 'records_per_s'))} | {med(mode, 'latency_ms', 'p50')} | "
            f"{med(mode, 'latency_ms', 'p99')} | {med(mode, 'latency_ms', 'p999')} | "
            f"{fmt_ratio(med(mode, 'latency_ms', 'p99'), off_p99)} | {per_run} | "
            f"{fmt_rate(med(mode, 'cleaner_passes'))} | "
            f"{fmt_rate((med(mode, 'cleaner_bytes') or 0) / 1e6)} | "
            f"{fmt_rate((med(mode, 'topic_bytes') or 0) / 1e6)} |"
        )
    lines += [
        "",
        "MB cleaned: bytes of the segments the cleaner rewrote during the measured run. Topic MB: "
        "the topic's files on disk when the run ends (what the cleaner has not yet removed).",
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
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--out", default=PERF_DIR, help="directory of the RESULTS.md to update")
    args = parser.parse_args()
    shoal_bin = os.environ.get("SHOAL_BIN") or os.path.join(REPO, "target", "release", "shoal")
    info = machine()
    commands = CommandsLog()
    reports = {mode: [] for mode, _, _ in MODES}
    for run in range(args.runs):
        for mode, _, overrides in MODES:
            try:
                report = run_once(shoal_bin, overrides, args.duration, commands)
            except RuntimeError as error:
                report = {"error": str(error)}
            reports[mode].append(report)
            print(f"run {run + 1} cleaner {mode}: {report.get('latency_ms', report)}, "
                  f"passes {report.get('cleaner_passes')}", file=sys.stderr)
    text = section(reports, args.duration, args.runs, commands, info)
    replace_section(os.path.join(args.out, "RESULTS.md"), BEGIN_MARKER, END_MARKER, text)
    print(text)


if __name__ == "__main__":
    main()
