"""The independent clients: W1 and W3 through confluent-kafka
(perf/kafka_client.py), W1 through Kafka's own kafka-producer-perf-test and
W3 through kafka-consumer-perf-test, each at its defaults, so a bias of
`shoal bench` would show as a different ordering of the brokers. W3 is read
twice through confluent-kafka: at librdkafka's defaults, and with
`fetch.queue.backoff.ms` lowered (perf/README.md says why both).
"""

import os
import re
import shutil
import uuid

from procs import PERF_DIR, VENV, last_json_line, run_bounded
from brokers import DURABILITY_VARIANTS, KAFKA_JARS, kafka_jars_present
from runs import PARTITIONS, bench_timeout_s, consume_steps, create_topic, prepare_topic

# kafka-producer-perf-test and kafka-consumer-perf-test, from the same jars.
PRODUCER_PERF_TEST = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_PERF_TEST = "org.apache.kafka.tools.ConsumerPerformance"
# The client's JVM: its producer buffers 32 MiB (buffer.memory); Kafka's
# scripts give tools 256 MiB, this leaves room for 10 M records' bookkeeping.
PERF_TEST_HEAP = "-Xmx512m"
# Its bound: this many produce durations plus the JVM's start.
PERF_TEST_TIMEOUT_PER_RUN = 4
PERF_TEST_JVM_SLACK_S = 30.0
# The tuned confluent-kafka consumer's `fetch.queue.backoff.ms`: librdkafka
# pauses a partition's fetching this long (default 1000 ms) once its queue
# holds `queued.min.messages`; 10 ms keeps the pause below a fetch round
# trip's scale, so the row measures the broker rather than the pause.
TUNED_FETCH_QUEUE_BACKOFF_MS = 10


# ---------------------------------------------------------------- independent client


def independent_client(make_brokers, shoal_bin, size, commands):
    """W1 (one producer) through confluent-kafka and through
    kafka-producer-perf-test, and W3 (one consumer) through confluent-kafka
    (default and tuned) and kafka-consumer-perf-test, once per broker (W3
    not for the durability variants), after the same warm-up as the
    workloads; None when neither client is available."""
    python = os.path.join(VENV, "bin", "python")
    confluent = (os.access(python, os.X_OK)
                 and run_bounded([python, "-c", "import confluent_kafka"], 30)[0] == 0)
    java = kafka_jars_present() and shutil.which("java") is not None
    if not confluent and not java:
        return None
    results = {}
    for name, make_broker in make_brokers.items():
        broker = make_broker()
        try:
            broker.start(commands)
            # Made before the warm-up, so its leaders are settled when the
            # preload starts (as W3's topic is).
            read_topic = f"perf-{uuid.uuid4().hex[:8]}"
            if name not in DURABILITY_VARIANTS:
                create_topic(broker, shoal_bin, read_topic, commands)
            topic = f"perf-{uuid.uuid4().hex[:8]}"
            prepare_topic(broker, shoal_bin, topic, size, commands)
            row = {}
            if confluent:
                row["produce"] = confluent_run(python, broker, topic, "produce",
                                               ["--duration", str(size.duration_s)], size, commands)
            if java:
                row["perf_test"] = producer_perf_test(broker, shoal_bin, size, commands)
            if name in DURABILITY_VARIANTS:
                # They differ from their broker in how they write, not in
                # how they read; a preload through Kafka fsyncing each
                # append would take minutes.
                results[name] = row
                continue
            error = preload(broker, shoal_bin, read_topic, size, commands)
            for mode in ("consume", "consume_tuned") if confluent else ():
                extra = ["--records", str(size.consume_records)]
                if mode == "consume_tuned":
                    extra += ["--fetch-queue-backoff-ms", str(TUNED_FETCH_QUEUE_BACKOFF_MS)]
                row[mode] = error or confluent_run(python, broker, read_topic, "consume", extra, size, commands)
            if java:
                row["consumer_perf_test"] = error or consumer_perf_test(broker, read_topic, size, commands)
            results[name] = row
        except Exception as error:  # noqa: BLE001
            results[name] = {"error": str(error).strip()[-300:]}
        finally:
            broker.close()
    return results


def confluent_run(python, broker, topic, mode, extra, size, commands):
    """One perf/kafka_client.py run: `mode` is its produce or consume."""
    command = [python, os.path.join(PERF_DIR, "kafka_client.py"), mode, "--bootstrap",
               broker.bootstrap, "--topic", topic, "--partitions", str(PARTITIONS), "--record-size", "100", *extra]
    commands.add(command, {**broker.placeholders(), topic: "$TOPIC"})
    return measured(broker, command, size, last_json_line)


def preload(broker, shoal_bin, topic, size, commands):
    """W3's preload (`shoal bench produce` of size.consume_records) into
    `topic`, so every consumer reads the batches `shoal bench`'s W3 reads;
    {"error": ...} if it failed or the broker refused records (the
    consumers would wait for them), else None."""
    step = consume_steps(size, topic)[0]
    command = [shoal_bin, "bench", step.mode, "--bootstrap", broker.bootstrap, *step.args, "--json"]
    commands.add(command, {**broker.placeholders(), topic: "$TOPIC"})
    code, out, err = run_bounded(command, bench_timeout_s(size))
    if code != 0:
        return {"error": f"preload exited with {code}: {err.strip()[-300:]}"}
    errors = last_json_line(out).get("errors")
    return {"error": f"the preload's produce errors: {errors}"} if errors else None


def producer_perf_test(broker, shoal_bin, size, commands):
    """kafka-producer-perf-test with the Java producer's defaults
    (idempotent) as its users run it; the tool refuses to start without
    one property, so it is given a default (acks=all)."""
    topic = f"perf-{uuid.uuid4().hex[:8]}"
    create_topic(broker, shoal_bin, topic, commands)
    command = ["java", PERF_TEST_HEAP, "-cp", os.path.join(KAFKA_JARS, "*"), PRODUCER_PERF_TEST,
               "--bootstrap-server", broker.bootstrap, "--topic", topic,
               "--num-records", str(size.perf_test_records), "--record-size", "100",
               "--throughput", "-1", "--command-property", "acks=all"]
    commands.add(command, {**broker.placeholders(), topic: "$TOPIC"})
    return measured(broker, command, size, perf_test_report, timeout_s=perf_test_timeout_s(size), partial_ok=True)


def consumer_perf_test(broker, topic, size, commands):
    """kafka-consumer-perf-test at its defaults: a consumer group of one
    (the Java consumer's defaults, the tool's 1 MiB fetch size and 2 MiB
    socket buffer) reading the preloaded topic from the beginning."""
    command = ["java", PERF_TEST_HEAP, "-cp", os.path.join(KAFKA_JARS, "*"), CONSUMER_PERF_TEST,
               "--bootstrap-server", broker.bootstrap, "--topic", topic,
               "--messages", str(size.consume_records)]
    commands.add(command, {**broker.placeholders(), topic: "$TOPIC"})
    return measured(broker, command, size, consumer_perf_test_report,
                    timeout_s=bench_timeout_s(size) + PERF_TEST_JVM_SLACK_S)


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


# kafka-consumer-perf-test's summary: "start.time, end.time,
# data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec,
# rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec".
CONSUMER_PERF_TEST_FIELDS = 10
# What it prints when no record came for its --timeout (10 s by default);
# "messages" or "records" follows, by release.
CONSUMER_PERF_TEST_TIMED_OUT = "WARNING: Exiting before consuming the expected number of"


def consumer_perf_test_report(out):
    """kafka-consumer-perf-test's summary in `shoal bench --json`'s shape.
    Its rate is `fetch.nMsg.sec`, which leaves out the group join (the
    brokers' `group.initial.rebalance.delay.ms` differ: shoal keeps Kafka's
    3 s default, the test Kafka 0)."""
    if "Exception" in out:
        raise ValueError("the consumer failed")
    if CONSUMER_PERF_TEST_TIMED_OUT in out:
        raise ValueError("it stopped short: no record for its 10 s timeout")
    rows = [line.split(",") for line in out.splitlines()
            if line.count(",") == CONSUMER_PERF_TEST_FIELDS - 1 and not line.startswith("start.time")]
    if not rows:
        raise ValueError("no kafka-consumer-perf-test summary in the output")
    fields = [field.strip() for field in rows[-1]]
    if int(fields[4]) == 0:
        raise ValueError("it read nothing")
    return {"records": int(fields[4]), "records_per_s": float(fields[9]), "mb_per_s": float(fields[8]),
            "join_ms": int(fields[6]), "records_per_s_with_join": float(fields[5])}
