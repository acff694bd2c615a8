#!/usr/bin/env python3
"""Exactly-once on shoal and on Apache Kafka, in one run (issue 13).

What idempotence costs: W1 (100 B records, 8 partitions,
acks=all, one connection) with and without idempotence, through two
clients: `shoal bench produce` (perf/run's W1 c=1; `--idempotent`: a
producer id and sequenced batches, up to 5 requests in flight, as before)
and confluent-kafka (`enable.idempotence=true`, which also makes librdkafka
keep at most 5 requests in flight where it otherwise keeps many), on shoal
and on Apache Kafka, in one run. A third client, confluent-kafka with
`max.in.flight.requests.per.connection=5` on both sides, tells the cost of
idempotence apart from the cost of that cap: shoal pipelines up to 16
requests of a connection (Kafka handles one at a time), so a plain
librdkafka producer gains more on shoal from its many requests in flight.

The transactional workload: one confluent-kafka transactional producer
(perf/txn_client.py) committing a transaction every 100 ms of producing to
8 partitions; records/s and commit latency per broker.

    perf/exactly_once.py [--runs 5] [--duration 5] [--record] [--brokers shoal,kafka]

Each broker is started once (fresh data directory, brokers.Shoal /
brokers.Kafka), warmed up as perf/run does, and then measured in
alternating pairs (plain, idempotent, plain, ...) on one topic, so both
sides of a ratio meet the same broker, page cache and machine load. It
prints the median records/s of each side and their ratio per broker and
client, and the CPU seconds per million records the broker and the client
each spent on either side (the client shares the machine's cores); with
--record it writes that table into perf/RESULTS.md below the KEPT marker
(perf/run keeps it), replacing an earlier one.

The bound issue 13 sets: idempotent W1 within 10% of plain W1 (ratio >= 0.90)."""

import argparse
import os
import resource
import statistics
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from procs import CommandsLog, PERF_DIR, REPO, VENV, _cleanup_everything, last_json_line, run_bounded  # noqa: E402
from brokers import Kafka, Shoal, kafka_jars_present  # noqa: E402
from runs import FULL, PARTITIONS, QUICK, prepare_topic  # noqa: E402
from results import machine  # noqa: E402
from report import KEPT_MARKER  # noqa: E402

SECTION_BEGIN = "<!-- section:exactly-once -->"
SECTION_END = "<!-- /section:exactly-once -->"
TXN_MS = 100
BOUND = 0.90
CLIENTS = ("shoal bench", "confluent", "confluent, 5 in flight")
IN_FLIGHT_CAPPED = 5


def client_command(client, side, broker, topic, args):
    """The W1 command of `client` (one of CLIENTS) for `side`."""
    if client == "shoal bench":
        command = [args.shoal_bin, "bench", "produce", "--bootstrap", broker.bootstrap, "--topic", topic,
                   "--partitions", str(PARTITIONS), "--record-size", "100", "--acks", "-1",
                   "--connections", "1", "--duration", str(args.duration), "--json"]
        return command + (["--idempotent"] if side == "idempotent" else [])
    python = os.path.join(VENV, "bin", "python")
    command = [python, os.path.join(PERF_DIR, "kafka_client.py"), "produce", "--bootstrap",
               broker.bootstrap, "--topic", topic, "--partitions", str(PARTITIONS),
               "--record-size", "100", "--duration", str(args.duration)]
    if client == "confluent, 5 in flight":
        command += ["--max-in-flight", str(IN_FLIGHT_CAPPED)]
    return command + (["--idempotent"] if side == "idempotent" else [])


def children_cpu_seconds():
    """User + system CPU time of this process's finished children: a client
    run's share is the difference across it."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(name, make_broker, args, commands):
    """{client: {"plain": [records/s], "idempotent": [records/s]}} on one broker."""
    size = QUICK if args.duration <= QUICK.duration_s else FULL
    broker = make_broker()
    results = {client: {"plain": [], "idempotent": []} for client in CLIENTS}
    results["transactions"] = []
    # {client: {side: [(broker s, client s) per million records]}}: where
    # the cost of idempotence lands, the broker or the client, which share
    # the machine's cores.
    cpu = {client: {"plain": [], "idempotent": []} for client in CLIENTS}
    results["cpu"] = cpu
    try:
        broker.start(commands)
        topic = f"perf-{uuid.uuid4().hex[:8]}"
        prepare_topic(broker, args.shoal_bin, topic, size, commands)
        for run in range(args.runs):
            for client in CLIENTS:
                for side in ("plain", "idempotent"):
                    command = client_command(client, side, broker, topic, args)
                    commands.add(command, {**broker.placeholders(), topic: "$TOPIC"})
                    broker_before, client_before = broker.cpu_seconds(), children_cpu_seconds()
                    code, out, err = run_bounded(command, args.duration * 10 + 60)
                    if code != 0:
                        raise RuntimeError(f"{client} {side} exited with {code}: {(err or out).strip()[-300:]}")
                    report = last_json_line(out)
                    rate = report["records_per_s"]
                    results[client][side].append(rate)
                    per_million = 1e6 / max(report["records"], 1)
                    cpu[client][side].append(((broker.cpu_seconds() - broker_before) * per_million,
                                              (children_cpu_seconds() - client_before) * per_million))
                    print(f"exactly-once: {name} run {run + 1}/{args.runs} {client} {side}: {rate:,.0f} records/s",
                          file=sys.stderr)
            command = [os.path.join(VENV, "bin", "python"), os.path.join(PERF_DIR, "txn_client.py"),
                       "--bootstrap", broker.bootstrap, "--topic", topic, "--partitions", str(PARTITIONS),
                       "--duration", str(args.duration), "--txn-ms", str(TXN_MS)]
            commands.add(command, {**broker.placeholders(), topic: "$TOPIC"})
            code, out, err = run_bounded(command, args.duration * 10 + 60)
            if code != 0:
                raise RuntimeError(f"transactions exited with {code}: {(err or out).strip()[-300:]}")
            report = last_json_line(out)
            results["transactions"].append(report)
            print(f"exactly-once: {name} run {run + 1}/{args.runs} transactions: "
                  f"{report['records_per_s']:,.0f} records/s, commit p50 {report['commit_ms']['p50']:.1f} ms",
                  file=sys.stderr)
    finally:
        broker.close()
    return results


def table(results, args, commands):
    info = machine()
    lines = [SECTION_BEGIN, "## Exactly-once: idempotence cost and transactions (issue 13)", "",
             f"`perf/exactly_once.py --runs {args.runs} --duration {args.duration:g}`, {info['date']}, commit "
             f"{info['commit']}, {info['nproc']} × {info['cpu']}, load average at the end {info['loadavg']}: W1 "
             "(100 B, 8 partitions, acks=all, one connection), plain and idempotent, alternating on one broker, "
             "through `shoal bench produce` (`--idempotent`) and confluent-kafka (`enable.idempotence=true`; "
             "the third row caps both sides at 5 requests in flight, idempotence's own cap). "
             f"Issue 13's bound: idempotent within 10% of plain (ratio >= {BOUND:.2f}).", "",
             "| broker | client | plain records/s (median) | idempotent records/s (median) | idempotent / plain "
             "(median of the runs' pairs) | each pair | bound |",
             "|---|---|---|---|---|---|---|"]
    for name, by_client in results.items():
        for client in CLIENTS:
            sides = by_client[client]
            plain, idem = statistics.median(sides["plain"]), statistics.median(sides["idempotent"])
            # Each run's idempotent step ran right after its plain one: the
            # pair shares the machine's load of the moment, so the ratio of
            # each pair is steadier than the ratio of the medians.
            pairs = [i / p for p, i in zip(sides["plain"], sides["idempotent"])]
            ratio = statistics.median(pairs)
            lines.append(f"| {name} | {client} | {plain:,.0f} | {idem:,.0f} | {ratio:.2f} | "
                         f"{', '.join(f'{r:.2f}' for r in pairs)} | {'met' if ratio >= BOUND else 'NOT met'} |")
    lines += ["", "CPU seconds per million records (medians of the runs), of the broker process (all its threads) "
              "and of the client process (its children included); both share the machine's cores, so a client "
              "that spends more per record leaves the broker less room.", "",
              "| broker | client | broker plain | broker idempotent | client plain | client idempotent |",
              "|---|---|---|---|---|---|"]
    for name, by_client in results.items():
        for client in CLIENTS:
            sides = by_client["cpu"][client]
            broker_cpu = {side: statistics.median(b for b, _ in runs) for side, runs in sides.items()}
            client_cpu = {side: statistics.median(c for _, c in runs) for side, runs in sides.items()}
            lines.append(f"| {name} | {client} | {broker_cpu['plain']:.2f} | {broker_cpu['idempotent']:.2f} | "
                         f"{client_cpu['plain']:.2f} | {client_cpu['idempotent']:.2f} |")
    lines += ["", f"The transactional workload: one confluent-kafka transactional producer, a commit every "
              f"{TXN_MS} ms of producing 100 B records over 8 partitions (perf/txn_client.py); medians of "
              f"{args.runs} runs.", "",
              "| broker | records/s | commits/s | commit p50 ms | commit p99 ms | records/s vs kafka |",
              "|---|---|---|---|---|---|"]
    kafka_rate = (statistics.median(r["records_per_s"] for r in results["kafka"]["transactions"])
                  if "kafka" in results else None)
    for name, by_client in results.items():
        runs = by_client["transactions"]
        rate = statistics.median(r["records_per_s"] for r in runs)
        commits = statistics.median(r["transactions"] / r["seconds"] for r in runs)
        p50 = statistics.median(r["commit_ms"]["p50"] for r in runs)
        p99 = statistics.median(r["commit_ms"]["p99"] for r in runs)
        ratio = f"{rate / kafka_rate:.2f}" if kafka_rate else "—"
        lines.append(f"| {name} | {rate:,.0f} | {commits:.1f} | {p50:.1f} | {p99:.1f} | {ratio} |")
    lines += ["", "Commands:", "", "```"] + commands.lines + ["```", "", SECTION_END]
    return "\n".join(lines) + "\n"


def record(text):
    path = os.path.join(PERF_DIR, "RESULTS.md")
    with open(path) as f:
        current = f.read()
    if SECTION_BEGIN in current:
        begin = current.index(SECTION_BEGIN)
        end = current.index(SECTION_END) + len(SECTION_END) + 1
        current = current[:begin] + text + current[end:]
    else:
        if KEPT_MARKER not in current:
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
                        or os.path.join(REPO, "target", "release", "shoal"))
    args = parser.parse_args()
    args.shoal_bin = os.path.abspath(args.shoal_bin)
    makers = {"shoal": lambda: Shoal(args.shoal_bin), "kafka": Kafka}
    commands = CommandsLog()
    results = {}
    try:
        for name in args.brokers.split(","):
            if name == "kafka" and not kafka_jars_present():
                print("exactly-once: kafka skipped: no jars (tests/kafka/setup)", file=sys.stderr)
                continue
            results[name] = measure(name, makers[name], args, commands)
    finally:
        _cleanup_everything()
    text = table(results, args, commands)
    print(text)
    if args.record:
        record(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
