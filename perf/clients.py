"""The independent clients: W1 and W3 through confluent-kafka
(perf/kafka_client.py) and W1 through Kafka's own kafka-producer-perf-test,
so a bias of `shoal bench` would show as a different ordering of the brokers.
"""

import os
import re
import shutil
import uuid

from procs import PERF_DIR, VENV, last_json_line, run_bounded
from brokers import KAFKA_JARS, kafka_jars_present
from runs import PARTITIONS, bench_timeout_s, create_topic, prepare_topic

# kafka-producer-perf-test, from the same jars.
PRODUCER_PERF_TEST = "org.apache.kafka.tools.ProducerPerformance"
# The client's JVM: its producer buffers 32 MiB (buffer.memory); Kafka's
# scripts give tools 256 MiB, this leaves room for 10 M records' bookkeeping.
PERF_TEST_HEAP = "-Xmx512m"
# Its bound: this many produce durations plus the JVM's start.
PERF_TEST_TIMEOUT_PER_RUN = 4
PERF_TEST_JVM_SLACK_S = 30.0


# ---------------------------------------------------------------- independent client


def independent_client(make_brokers, shoal_bin, size, commands):
    """W1 (one producer) through confluent-kafka and through
    kafka-producer-perf-test, and W3 through confluent-kafka, once per
    broker, after the same warm-up as the workloads; None when neither
    client is available."""
    python = os.path.join(VENV, "bin", "python")
    confluent = (os.access(python, os.X_OK)
                 and run_bounded([python, "-c", "import confluent_kafka"], 30)[0] == 0)
    java = kafka_jars_present() and shutil.which("java") is not None
    if not confluent and not java:
        return None
    client = os.path.join(PERF_DIR, "kafka_client.py")
    results = {}
    for name, make_broker in make_brokers.items():
        broker = make_broker()
        try:
            broker.start(commands)
            topic = f"perf-{uuid.uuid4().hex[:8]}"
            prepare_topic(broker, shoal_bin, topic, size, commands)
            row = {}
            if confluent:
                for mode, extra in (("produce", ["--duration", str(size.duration_s)]),
                                    ("consume", ["--records", str(size.consume_records)])):
                    command = [python, client, mode, "--bootstrap", broker.bootstrap, "--topic", topic,
                               "--partitions", str(PARTITIONS), "--record-size", "100", *extra]
                    commands.add(command, {**broker.placeholders(), topic: "$TOPIC"})
                    if mode == "consume":
                        preload = [python, client, "produce", "--bootstrap", broker.bootstrap, "--topic", topic,
                                   "--partitions", str(PARTITIONS), "--record-size", "100",
                                   "--records", str(size.consume_records)]
                        code, _, err = run_bounded(preload, bench_timeout_s(size))
                        if code != 0:
                            row[mode] = {"error": f"preload exited with {code}: {err.strip()[-300:]}"}
                            continue
                    row[mode] = measured(broker, command, size, last_json_line)
            if java:
                perf_topic = f"perf-{uuid.uuid4().hex[:8]}"
                create_topic(broker, shoal_bin, perf_topic, commands)
                # The Java producer's defaults (idempotent) as its users run
                # it; the tool refuses to start without one property.
                command = ["java", PERF_TEST_HEAP, "-cp", os.path.join(KAFKA_JARS, "*"), PRODUCER_PERF_TEST,
                           "--bootstrap-server", broker.bootstrap, "--topic", perf_topic,
                           "--num-records", str(size.perf_test_records), "--record-size", "100",
                           "--throughput", "-1", "--command-property", "acks=all"]
                commands.add(command, {**broker.placeholders(), perf_topic: "$TOPIC"})
                row["perf_test"] = measured(broker, command, size, perf_test_report,
                                            timeout_s=perf_test_timeout_s(size), partial_ok=True)
            results[name] = row
        except Exception as error:  # noqa: BLE001
            results[name] = {"error": str(error).strip()[-300:]}
        finally:
            broker.close()
    return results


def measured(broker, command, size, parse, timeout_s=None, partial_ok=False):
    """Runs one client command against the broker: its parsed report with
    the broker's CPU time over the run, or {"error": ...}. With partial_ok,
    a run killed at its timeout is parsed too (the parser decides what its
    output is worth)."""
    cpu_before = broker.cpu_seconds()
    code, out, err = run_bounded(command, timeout_s or bench_timeout_s(size))
    if code != 0 and not (partial_ok and code is None):
        return {"error": f"exited with {code}: {(err or out).strip()[-300:]}"}
    try:
        report = parse(out)
    except ValueError as error:
        return {"error": f"{error}: {out.strip()[-300:]}"}
    report["broker_cpu_s"] = broker.cpu_seconds() - cpu_before
    return report


# ProducerPerformance's summary, its last line: "N records sent, R records/sec
# (M MB/sec), A ms avg latency, X ms max latency, P50 ms 50th, P95 ms 95th,
# P99 ms 99th, P999 ms 99.9th."
PERF_TEST_SUMMARY = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99\.9th")


# Its progress line every 5 s: "N records sent, R records/sec (M MB/sec), ...".
PERF_TEST_WINDOW = re.compile(r"^(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg "
                              r"latency, ([\d.]+) ms max latency\.$")


def perf_test_timeout_s(size):
    """kafka-producer-perf-test has no duration option: a broker too slow
    for size.perf_test_records in this time is measured over the 5 s
    windows it completed."""
    return PERF_TEST_TIMEOUT_PER_RUN * size.duration_s + PERF_TEST_JVM_SLACK_S


def perf_test_report(out):
    """kafka-producer-perf-test's summary in `shoal bench --json`'s shape;
    when it was stopped before its last record, its completed windows."""
    if "Exception" in out:
        raise ValueError("the producer failed")
    for line in reversed(out.splitlines()):
        found = PERF_TEST_SUMMARY.search(line)
        if found:
            records, rate, mb, _avg, high, p50, p95, p99, p999 = found.groups()
            return {"records": int(records), "records_per_s": float(rate), "mb_per_s": float(mb),
                    "latency_ms": {"p50": float(p50), "p95": float(p95), "p99": float(p99),
                                   "p999": float(p999), "max": float(high)}}
    windows = [PERF_TEST_WINDOW.match(line.strip()) for line in out.splitlines()]
    windows = [(int(w.group(1)), float(w.group(2))) for w in windows if w and float(w.group(2)) > 0]
    if not windows:
        raise ValueError("no kafka-producer-perf-test summary in the output")
    records = sum(n for n, _ in windows)
    seconds = sum(n / rate for n, rate in windows)
    return {"records": records, "records_per_s": records / seconds, "partial_windows": len(windows)}
