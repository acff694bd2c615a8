#!/usr/bin/env python3
"""What idempotence costs (issue 13): W1 (100 B records, 8 partitions,
acks=all, one producer) through confluent-kafka with and without
`enable.idempotence=true`, on shoal and on Apache Kafka, in one run.

    perf/idempotence.py [--runs 5] [--duration 5] [--record] [--brokers shoal,kafka]

Each broker is started once (fresh data directory, harness.Shoal /
harness.Kafka), warmed up as perf/run does, and then measured in
alternating pairs (plain, idempotent, plain, ...) on one topic, so both
sides of a ratio meet the same broker, page cache and machine load. It
prints the median records/s of each side and their ratio per broker; with
--record it writes that table into perf/RESULTS.md below the KEPT marker
(perf/run keeps it), replacing an earlier one.

The bound issue 13 sets: idempotent W1 within 10% of plain W1 (ratio >= 0.90)."""

import argparse
import os
import statistics
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

SECTION_BEGIN = "<!-- section:idempotence -->"
SECTION_END = "<!-- /section:idempotence -->"
BOUND = 0.90


def measure(name, make_broker, args, commands):
    python = os.path.join(harness.VENV, "bin", "python")
    client = os.path.join(harness.PERF_DIR, "kafka_client.py")
    size = harness.QUICK if args.duration <= harness.QUICK.duration_s else harness.FULL
    broker = make_broker()
    sides = {"plain": [], "idempotent": []}
    try:
        broker.start(commands)
        topic = f"perf-{uuid.uuid4().hex[:8]}"
        harness.prepare_topic(broker, args.shoal_bin, topic, size, commands)
        for run in range(args.runs):
            for side in ("plain", "idempotent"):
                command = [python, client, "produce", "--bootstrap", broker.bootstrap, "--topic", topic,
                           "--partitions", str(harness.PARTITIONS), "--record-size", "100",
                           "--duration", str(args.duration)]
                if side == "idempotent":
                    command.append("--idempotent")
                commands.add(command, {**broker.placeholders(), topic: "$TOPIC"})
                code, out, err = harness.run_bounded(command, args.duration * 10 + 60)
                if code != 0:
                    raise RuntimeError(f"{side} run exited with {code}: {(err or out).strip()[-300:]}")
                rate = harness.last_json_line(out)["records_per_s"]
                sides[side].append(rate)
                print(f"idempotence: {name} run {run + 1}/{args.runs} {side}: {rate:,.0f} records/s",
                      file=sys.stderr)
    finally:
        broker.close()
    return sides


def table(results, args, commands):
    info = harness.machine()
    lines = [SECTION_BEGIN, "## Idempotence cost (issue 13)", "",
             f"`perf/idempotence.py --runs {args.runs} --duration {args.duration:g}`, {info['date']}, commit "
             f"{info['commit']}, {info['nproc']} × {info['cpu']}, load average at the end {info['loadavg']}: W1 through confluent-kafka (100 B, 8 partitions, acks=all, one "
             "producer), plain and with `enable.idempotence=true`, alternating on one broker. Issue 13's bound: "
             f"idempotent within 10% of plain (ratio >= {BOUND:.2f}).", "",
             "| broker | plain records/s (median) | idempotent records/s (median) | idempotent / plain | bound |",
             "|---|---|---|---|---|"]
    for name, sides in results.items():
        plain, idem = statistics.median(sides["plain"]), statistics.median(sides["idempotent"])
        ratio = idem / plain
        lines.append(f"| {name} | {plain:,.0f} | {idem:,.0f} | {ratio:.2f} | "
                     f"{'met' if ratio >= BOUND else 'NOT met'} |")
    lines += ["", "Commands:", "", "```"] + commands.lines + ["```", "", SECTION_END]
    return "\n".join(lines) + "\n"


def record(text):
    path = os.path.join(harness.PERF_DIR, "RESULTS.md")
    with open(path) as f:
        current = f.read()
    if SECTION_BEGIN in current:
        begin = current.index(SECTION_BEGIN)
        end = current.index(SECTION_END) + len(SECTION_END) + 1
        current = current[:begin] + text + current[end:]
    else:
        if harness.KEPT_MARKER not in current:
            sys.exit(f"{path} has no KEPT marker")
        current = current.rstrip("\n") + "\n\n" + text
    with open(path, "w") as f:
        f.write(current)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--brokers", default="shoal,kafka")
    parser.add_argument("--record", action="store_true")
    parser.add_argument("--shoal-bin", default=os.environ.get("SHOAL_BIN")
                        or os.path.join(harness.REPO, "target", "release", "shoal"))
    args = parser.parse_args()
    args.shoal_bin = os.path.abspath(args.shoal_bin)
    makers = {"shoal": lambda: harness.Shoal(args.shoal_bin), "kafka": harness.Kafka}
    commands = harness.CommandsLog()
    results = {}
    try:
        for name in args.brokers.split(","):
            if name == "kafka" and not harness.kafka_jars_present():
                print("idempotence: kafka skipped: no jars (tests/kafka/setup)", file=sys.stderr)
                continue
            results[name] = measure(name, makers[name], args, commands)
    finally:
        harness._cleanup_everything()
    text = table(results, args, commands)
    print(text)
    if args.record:
        record(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
