#!/usr/bin/env python3
"""Where shoal's CPU goes while it serves the producers users run (issue 16,
scope 4): librdkafka's default producer (confluent-kafka through
perf/kafka_client.py: acks=all, librdkafka's default batching and linger)
or the Java producer's defaults (kafka-producer-perf-test: idempotent,
acks=all), 100 B records to 8 partitions, one connection, shoal's durable
default.

It starts a fresh shoal, starts the client, and after a warm-up runs
`perf record -a` for a fixed window; then it splits the broker's samples
(never the client's: the machine is shared, so only shares within the
broker compare across runs) into its shard threads in user space, its
shard threads in the kernel and its io_uring workers, lists the broker's
hottest symbols as shares of the broker's own samples, and gives the
broker's CPU time per million records over the client's whole run
(/proc/PID/stat). Prints a Markdown block; `--json FILE` keeps the numbers.

    perf/profile_produce.py --client confluent [--duration 8] [--json out.json]
    perf/profile_produce.py --client java --records 4000000

Needs `perf` and root or perf_event_paranoid <= 0. Standard library only;
SHOAL_BIN overrides target/release/shoal (e.g. target/ci/shoal).
"""

import argparse
import collections
import json
import os
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from procs import (  # noqa: E402
    PERF_DIR, REPO, VENV, _LIVE_PROCESSES, last_json_line, run_bounded,
)
from brokers import KAFKA_JARS, Shoal  # noqa: E402
from clients import PERF_TEST_HEAP, PRODUCER_PERF_TEST, perf_test_report  # noqa: E402
from profile import perf_samples, profiled  # noqa: E402  (perf/profile.py, not the standard library's)
from runs import PARTITIONS, create_topic  # noqa: E402

RECORD_SIZE = 100
SAMPLE_HZ = 999
# perf samples after the client has run this long (a JVM compiles its hot
# paths, librdkafka fills its queues), and the client goes on this long
# after perf stops, so the window sees steady load only.
WARMUP_S = 4.0
TAIL_S = 2.0
TOP_SYMBOLS = 25
PERF_TIMEOUT_S = 180
# The client's bound past its expected run time (JVM start, the last acks).
CLIENT_SLACK_S = 120
# The test suite's venv has confluent-kafka when perf/run's has not been made.
VENVS = (VENV, os.path.join(REPO, "target", "test-venv"))


def python_with_confluent():
    for venv in VENVS:
        python = os.path.join(venv, "bin", "python")
        if os.access(python, os.X_OK) and run_bounded([python, "-c", "import confluent_kafka"], 30)[0] == 0:
            return python
    sys.exit("no venv with confluent-kafka (target/perf-venv or target/test-venv)")


def client_command(args, broker, shoal_bin, commands):
    """The client's command line and the parser of its output."""
    topic = f"profile-{uuid.uuid4().hex[:8]}"
    if args.client == "confluent":
        run_s = WARMUP_S + args.duration + TAIL_S
        command = [python_with_confluent(), os.path.join(PERF_DIR, "kafka_client.py"), "produce",
                   "--bootstrap", broker.bootstrap, "--topic", topic, "--partitions", str(PARTITIONS),
                   "--record-size", str(RECORD_SIZE), "--duration", str(run_s)]
        return command, topic, last_json_line
    create_topic(broker, shoal_bin, topic, commands)
    command = ["java", PERF_TEST_HEAP, "-cp", os.path.join(KAFKA_JARS, "*"), PRODUCER_PERF_TEST,
               "--bootstrap-server", broker.bootstrap, "--topic", topic, "--num-records", str(args.records),
               "--record-size", str(RECORD_SIZE), "--throughput", "-1", "--command-property", "acks=all"]
    return command, topic, perf_test_report


def split(rows, broker_total):
    """The broker's samples by where they ran, as shares of the broker's."""
    parts = collections.Counter()
    symbols = collections.Counter()
    for share, comm, kernel, symbol in rows:
        if comm.startswith("shoal-shard"):
            parts["shards, user space" if not kernel else "shards, kernel"] += share
        else:
            parts["other threads (io_uring workers)"] += share
        symbols[("[k] " if kernel else "") + symbol] += share
    scale = 100.0 / broker_total if broker_total else 0.0
    return ({k: v * scale for k, v in parts.items()},
            [(symbol, share * scale) for symbol, share in symbols.most_common(TOP_SYMBOLS)])


def profile(args, shoal_bin, commands):
    broker = Shoal(shoal_bin)
    data_path = args.perf_data or os.path.join(broker.root, "perf.data")
    try:
        broker.start(commands)
        command, topic, parse = client_command(args, broker, shoal_bin, commands)
        commands.add(command, {**broker.placeholders(), topic: "$TOPIC"})
        cpu_before = broker.cpu_seconds()
        client = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        _LIVE_PROCESSES.add(client)
        time.sleep(WARMUP_S)
        record = ["perf", "record", "-a", "-F", str(args.hz), "-o", data_path]
        if args.call_graph:
            record += ["--call-graph", args.call_graph]
        record += ["--", "sleep", str(args.duration)]
        commands.add(record, broker.placeholders())
        code, _, err = run_bounded(record, args.duration + PERF_TIMEOUT_S)
        if code != 0:
            sys.exit(f"perf record failed: {err.strip()[-500:]}")
        out, err = client.communicate(timeout=WARMUP_S + args.duration + CLIENT_SLACK_S + 600)
        broker_cpu_s = broker.cpu_seconds() - cpu_before
        if client.returncode != 0:
            sys.exit(f"the client exited with {client.returncode}: {(err or out).strip()[-500:]}")
        report = parse(out)
        rows = perf_samples(data_path, "--pid", str(broker.proc.pid))
        broker_total = sum(share for share, _, _, _ in rows)
        parts, symbols = split(rows, broker_total)
        return {
            "client": args.client,
            "label": args.label,
            "records": report["records"],
            "records_per_s": report["records_per_s"],
            "broker_cpu_s": broker_cpu_s,
            "broker_cpu_s_per_million": broker_cpu_s / report["records"] * 1e6,
            "broker_share_of_machine": broker_total,
            "parts": parts,
            "symbols": symbols,
        }
    finally:
        broker.close()


def markdown(run, info, commands):
    lines = [
        f"**{run['label'] or run['client']}** ({info['date']}, commit `{info['commit'][:12]}`, load average "
        f"{info['loadavg']}): {run['records_per_s']:,.0f} records/s over {run['records']:,} records, broker CPU "
        f"{run['broker_cpu_s_per_million']:.3f} s per million records; the broker had "
        f"{run['broker_share_of_machine']:.1f}% of the machine's samples.",
        "",
        "| where | share of the broker's samples |",
        "|---|---|",
    ]
    lines += [f"| {part} | {share:.1f}% |" for part, share in sorted(run["parts"].items())]
    lines += ["", "| symbol | share of the broker's samples |", "|---|---|"]
    lines += [f"| `{symbol.replace('|', '/')}` | {share:.2f}% |" for symbol, share in run["symbols"]]
    lines += ["", "```", *commands.lines, "```"]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", choices=("confluent", "java"), required=True)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds perf samples")
    parser.add_argument("--records", type=int, default=4_000_000, help="records the Java producer sends")
    parser.add_argument("--hz", type=int, default=SAMPLE_HZ, help="samples per second per CPU")
    parser.add_argument("--call-graph", help="perf record's --call-graph mode (e.g. dwarf); none by default")
    parser.add_argument("--perf-data", help="keep perf's samples in this file (for perf report's callers)")
    parser.add_argument("--label", default="", help="names the run in the output")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    run, info, commands = profiled(lambda shoal_bin, commands: profile(args, shoal_bin, commands))
    print(markdown(run, info, commands))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(run, f, indent=1)


if __name__ == "__main__":
    main()
