"""Issue 16's targets as a table of RESULTS.md: each target against Apache
Kafka in the same run, once per client that measured it (`shoal bench` and
the independent clients at their defaults), marked met or NOT met.

A target this run did not measure (a broker or workload left out with
--only, a client that failed) shows "—", never a verdict.
"""

from brokers import KAFKA_FSYNC
from results import fmt_ratio, median_of, verdict

# The targets, as the issue states them.
PRODUCE_RATIO = 2.0
PRODUCE_BOTH_DURABLE_RATIO = 3.0
CONSUME_RATIO = 2.0
E2E_P99_FRACTION = 0.25
CPU_FRACTION = 1 / 3
W2_FIO_FRACTION = 0.80
# "At the disk's sequential read ceiling": W8 within a tenth of what fio
# reads with O_DIRECT, 1 MiB blocks and 8 in flight.
W8_CEILING_FRACTION = 0.90

# Independent clients: (mode in the harness's results, label).
PRODUCE_CLIENTS = (("produce", "confluent-kafka"), ("perf_test", "kafka-producer-perf-test"))
CONSUME_CLIENTS = (("consume", "confluent-kafka, default"), ("consumer_perf_test", "kafka-consumer-perf-test"))


def targets16(by_key, medians, ceiling, independent):
    """The table's lines, or none when Kafka was not in the run."""
    if not any("kafka" in medians.get(key, {}) for key in medians):
        return []
    rows = ["## Targets (issue 16): against Apache Kafka in this run", "",
            "| target | measured by | shoal/kafka | |", "|---|---|---|---|"]
    rows += ratio_rows(f"produce 100 B, acks=all: ≥ {PRODUCE_RATIO:g}× Kafka (shoal durable, Kafka default)",
                       "kafka", PRODUCE_RATIO, ("W1 c=1", "W1 c=4"), PRODUCE_CLIENTS, medians, independent)
    rows += ratio_rows(f"produce 100 B, both durable: ≥ {PRODUCE_BOTH_DURABLE_RATIO:g}× Kafka flush.messages=1",
                       KAFKA_FSYNC, PRODUCE_BOTH_DURABLE_RATIO, ("W1 c=1", "W1 c=4"), PRODUCE_CLIENTS,
                       medians, independent)
    rows += ratio_rows(f"consume (W3, W7): ≥ {CONSUME_RATIO:g}× Kafka", "kafka", CONSUME_RATIO, ("W3", "W7"),
                       CONSUME_CLIENTS, medians, independent)
    rows += [w8_row(by_key, ceiling), e2e_row(by_key)]
    rows += cpu_rows(by_key, independent)
    rows += w2_rows(by_key, ceiling)
    rows += ["| user-space bytes copied per byte fetched: 0 (tail cache, page cache) | "
             "tests/integration/test_zero_copy_fetch.py in tests/run | — | see the test |", "",
             "CPU is the broker process's user + system time per million records (every thread). A target not "
             "met stays written as not met; where the time goes is in the profile sections below.", ""]
    return rows


def ratio_rows(target, peer, at_least, workloads, clients, medians, independent):
    rows = []
    for key in workloads:
        s, k = medians.get(key, {}).get("shoal"), medians.get(key, {}).get(peer)
        rows.append(row(target, f"`shoal bench` {key}", s, k, None if s is None or not k else s / k >= at_least))
    for mode, label in clients:
        s, k = (client_rate(independent, b, mode) for b in ("shoal", peer))
        rows.append(row(target, label, s, k, None if s is None or not k else s / k >= at_least))
    return rows


def client_rate(independent, broker, mode):
    report = ((independent or {}).get(broker) or {}).get(mode) or {}
    return None if "error" in report else report.get("records_per_s")


def row(target, by, s, k, met):
    return f"| {target} | {by} | {fmt_ratio(s, k)} | {verdict(met)} |"


def w8_row(by_key, ceiling):
    target = f"W8 (cold reads): ≥ {W8_CEILING_FRACTION:.0%} of the disk's sequential read ceiling (fio)"
    mb = median_of(by_key["W8"].results.get("shoal", []), ["mb_per_s"]) if "W8" in by_key else None
    read = ceiling.get("disk_seq_read_bytes_per_s")
    if mb is None or not isinstance(read, (int, float)):
        return f"| {target} | `shoal bench` W8 | — | — |"
    fraction = mb * (1 << 20) / read
    return (f"| {target} | `shoal bench` W8 | {fraction:.0%} of the ceiling (payload bytes) | "
            f"{verdict(fraction >= W8_CEILING_FRACTION)} |")


def e2e_row(by_key):
    target = f"end-to-end p99 at 100k records/s: ≤ {E2E_P99_FRACTION:g} of Kafka's"
    if "W4" not in by_key:
        return f"| {target} | `shoal bench` W4 | — | — |"
    s, k = (median_of(by_key["W4"].results.get(b, []), ["latency_ms", "p99"]) for b in ("shoal", "kafka"))
    return row(target, "`shoal bench` W4", s, k, None if s is None or not k else s / k <= E2E_P99_FRACTION)


def cpu_rows(by_key, independent):
    target = "broker CPU per million records: ≤ 1/3 of Kafka's"
    rows = []
    for key in ("W1 c=1", "W1 c=4", "W3", "W7"):
        s, k = (bench_cpu(by_key, key, b) for b in ("shoal", "kafka"))
        rows.append(row(target, f"`shoal bench` {key}", s, k, None if s is None or not k else s / k <= CPU_FRACTION))
    for mode, label in PRODUCE_CLIENTS + CONSUME_CLIENTS:
        s, k = (client_cpu(independent, b, mode) for b in ("shoal", "kafka"))
        rows.append(row(target, label, s, k, None if s is None or not k else s / k <= CPU_FRACTION))
    return rows


def bench_cpu(by_key, key, broker):
    if key not in by_key:
        return None
    values = [r["broker_cpu_s"] / r["records"] for r in by_key[key].results.get(broker, [])
              if "error" not in r and r.get("broker_cpu_s") is not None and r.get("records")]
    return sorted(values)[len(values) // 2] if values else None


def client_cpu(independent, broker, mode):
    report = ((independent or {}).get(broker) or {}).get(mode) or {}
    cpu, records = report.get("broker_cpu_s"), report.get("records")
    return None if "error" in report or cpu is None or not records else cpu / records


def w2_rows(by_key, ceiling):
    target = f"W2 (1 KiB): ≥ {W2_FIO_FRACTION:.0%} of fio's bytes/s with W2's write pattern"
    fio = ceiling.get("disk_w2_pattern_bytes_per_s")
    rows = []
    for key in ("W2 c=1", "W2 c=4"):
        mb = median_of(by_key[key].results.get("shoal", []), ["mb_per_s"]) if key in by_key else None
        if mb is None or not isinstance(fio, (int, float)):
            rows.append(f"| {target} | `shoal bench` {key} | — | — |")
            continue
        fraction = mb * (1 << 20) / fio
        rows.append(f"| {target} | `shoal bench` {key} | {fraction:.0%} of fio (payload bytes) | "
                    f"{verdict(fraction >= W2_FIO_FRACTION)} |")
    return rows
