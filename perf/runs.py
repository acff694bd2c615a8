"""The standard workloads (W1-W8) and one run of a workload: a fresh
broker, its topic created and warmed up, the `shoal bench` steps against
it, the measured report with the broker's CPU time. Also shoal's idle CPU.
"""

import shlex
import time
import uuid
from dataclasses import dataclass, field

from procs import BENCH_SLACK_S, last_json_line, run_bounded
from brokers import STALL_BUSY_MARK, Shoal

# A --records run is bounded as if it ran at no less than this rate.
BENCH_RATE_FLOOR = 50_000
TOPIC_CREATE_TIMEOUT_S = 60.0
PARTITIONS = 8
E2E_RATE = 100_000
# W7/W8 read 1 KiB records: a catch-up reader (a replica, a reprocessing
# job) moves bytes, and 1 KiB puts the bytes, not the per-record work, on
# the critical path.
CATCHUP_RECORD_SIZE = 1024
# shoal's tail cache per partition (`tail_cache_bytes`, src/config/storage.rs),
# for saying how many times the W7/W8 topic exceeds it.
SHOAL_TAIL_CACHE_BYTES = 4 << 20
# W8's step between the preload and the read: `sync` writes back what is
# dirty (Kafka's appends are, until a segment rolls), then the kernel drops
# the clean page cache, so the read goes to the disk. Needs root.
DROP_PAGE_CACHE = "drop-page-cache"
DROP_PAGE_CACHE_COMMAND = ["sh", "-c", "sync && echo 3 > /proc/sys/vm/drop_caches"]
DROP_PAGE_CACHE_TIMEOUT_S = 120.0
# Idle measurement: the broker settles this long before CPU is counted.
IDLE_SETTLE_S = 1.0


@dataclass(frozen=True)
class Size:
    """How long and how often: --smoke, --quick or the full run."""

    name: str
    runs: int  # per workload and broker; the median is reported
    duration_s: float  # produce and e2e runs
    consume_records: int  # W3: preloaded, then read from the beginning
    ceiling_s: int  # iperf3 and fio
    idle_s: float  # idle CPU measurement
    # Unmeasured produce on another topic before each measured step: a JVM
    # broker's JIT compiles its hot paths and a new topic's leaders settle.
    # Every broker gets the same. On this machine a fresh Kafka's first 5 s
    # of W1 reached a third of the rate of its third 5 s.
    warmup_s: float
    # Records kafka-producer-perf-test sends (it has no duration option).
    perf_test_records: int
    # W7/W8: records of CATCHUP_RECORD_SIZE preloaded, then read from the
    # beginning. Many times the broker's tail caches (shoal keeps 4 MiB per
    # partition, 32 MiB for the 8), so the reads come from the segment files.
    catchup_records: int = 0


# The full run's W7/W8 topic: 2 GiB of 1 KiB records, 64 times shoal's tail
# caches, small enough for the page cache of this 24 GiB machine (W7 reads
# it warm) and for a preload of about 15 s at W2's rate; --quick's 320 MiB
# is still 10 times the tail caches; --smoke's 50 MiB checks the steps run.
FULL = Size("full", runs=3, duration_s=10.0, consume_records=10_000_000, ceiling_s=10, idle_s=10.0,
            warmup_s=5.0, perf_test_records=5_000_000, catchup_records=2_000_000)
QUICK = Size("quick", runs=1, duration_s=3.0, consume_records=1_000_000, ceiling_s=3, idle_s=3.0,
             warmup_s=1.0, perf_test_records=2_000_000, catchup_records=320_000)
# shoal only, so no warm-up: the smoke run checks the harness, fast.
SMOKE = Size("smoke", runs=1, duration_s=1.0, consume_records=100_000, ceiling_s=1, idle_s=1.0,
             warmup_s=0.0, perf_test_records=100_000, catchup_records=50_000)


# ---------------------------------------------------------------- workloads


@dataclass
class Step:
    """One `shoal bench` invocation; `measured` steps are reported, the
    others (preloading) only have to succeed."""

    mode: str
    args: list
    measured: bool = True


@dataclass
class Workload:
    key: str  # a row of the results, e.g. "W1 c=4"
    title: str
    steps: callable  # (size, topic) -> [Step]
    shoal_shards: int | None = None
    # W6 runs shoal only; its peer column repeats this row's peer results.
    peers_from: str | None = None
    metric: str = "records_per_s"
    # Also run against shoal without fsync and Kafka with one (DURABILITY_VARIANTS).
    variants: bool = False
    # W8: the page cache is dropped before the measured read. Needs root,
    # and does not apply to a broker that keeps its records in memory (Tansu).
    cold: bool = False
    results: dict = field(default_factory=dict)  # broker name -> [report]


def produce_args(size, topic, record_size, connections, compression=None):
    args = ["--topic", topic, "--partitions", str(PARTITIONS), "--record-size", str(record_size),
            "--acks", "-1", "--connections", str(connections), "--duration", str(size.duration_s)]
    if compression:
        args += ["--compression", compression]
    return args


def produce_steps(record_size, connections, compression=None):
    return lambda size, topic: [Step("produce", produce_args(size, topic, record_size, connections, compression))]


def consume_steps(size, topic):
    records = str(size.consume_records)
    preload = ["--topic", topic, "--partitions", str(PARTITIONS), "--record-size", "100",
               "--acks", "-1", "--connections", "4", "--records", records]
    return [Step("produce", preload, measured=False),
            Step("consume", ["--topic", topic, "--records", records, "--connections", "1"])]


def catchup_steps(cold):
    """W7 (warm) and W8 (cold): preload size.catchup_records of 1 KiB, then
    read them all from the beginning with one connection; W8 drops the page
    cache in between."""
    def steps(size, topic):
        records = str(size.catchup_records)
        preload = ["--topic", topic, "--partitions", str(PARTITIONS), "--record-size", str(CATCHUP_RECORD_SIZE),
                   "--acks", "-1", "--connections", "4", "--records", records]
        read = ["--topic", topic, "--records", records, "--connections", "1"]
        drop = [Step(DROP_PAGE_CACHE, [], measured=False)] if cold else []
        return [Step("produce", preload, measured=False), *drop, Step("consume", read)]
    return steps


def e2e_steps(size, topic):
    return [Step("e2e", ["--topic", topic, "--partitions", str(PARTITIONS), "--record-size", "100",
                         "--acks", "-1", "--rate", str(E2E_RATE), "--duration", str(size.duration_s)])]


def workloads(smoke):
    if smoke:
        return [
            Workload("W1 c=1", "produce 100 B, 8 partitions, acks=all, 1 connection", produce_steps(100, 1)),
            Workload("W3", "consume 100 B records from the beginning", consume_steps),
            Workload("W7", "catch-up read: consume 1 KiB records from the beginning, warm page cache",
                     catchup_steps(cold=False)),
        ]
    rows = [
        Workload("W1 c=1", "produce 100 B, 8 partitions, acks=all, 1 connection", produce_steps(100, 1),
                 variants=True),
        Workload("W1 c=4", "produce 100 B, 8 partitions, acks=all, 4 connections", produce_steps(100, 4),
                 variants=True),
        Workload("W2 c=1", "produce 1 KiB, 8 partitions, acks=all, 1 connection", produce_steps(1024, 1),
                 variants=True),
        Workload("W2 c=4", "produce 1 KiB, 8 partitions, acks=all, 4 connections", produce_steps(1024, 4),
                 variants=True),
        Workload("W3", "consume 100 B records from the beginning", consume_steps),
        Workload("W4", f"end-to-end latency at {E2E_RATE} records/s, acks=all", e2e_steps, metric="latency",
                 variants=True),
        Workload("W5 lz4", "W1 (4 connections) with lz4", produce_steps(100, 4, "lz4")),
        Workload("W5 zstd", "W1 (4 connections) with zstd", produce_steps(100, 4, "zstd")),
        Workload("W7", "catch-up read: consume 1 KiB records from the beginning, warm page cache",
                 catchup_steps(cold=False)),
        Workload("W8", "W7 after dropping the page cache (cold reads)", catchup_steps(cold=True), cold=True),
    ]
    for shards in (1, 2):
        rows.append(Workload(f"W6 W1 shards={shards}", f"W1 (4 connections), shoal --shards {shards}",
                             produce_steps(100, 4), shoal_shards=shards, peers_from="W1 c=4"))
        rows.append(Workload(f"W6 W3 shards={shards}", f"W3, shoal --shards {shards}",
                             consume_steps, shoal_shards=shards, peers_from="W3"))
    return rows


def bench_timeout_s(size):
    return size.duration_s + BENCH_SLACK_S + max(size.consume_records, size.catchup_records) / BENCH_RATE_FLOOR


def bench_steps(workload, target, shoal_bin, topic, size, commands):
    """The workload's `shoal bench` steps against `target` (a broker or a
    cluster); the measured one's report with the brokers' CPU time, or
    {"error": ...}."""
    report = None
    for step in workload.steps(size, topic):
        if step.mode == DROP_PAGE_CACHE:
            error = drop_page_cache(commands)
            if error:
                return {"error": error}
            continue
        command = [shoal_bin, "bench", step.mode, "--bootstrap", target.bootstrap, *step.args, "--json"]
        commands.add(command, {**target.placeholders(), topic: "$TOPIC"})
        cpu_before = target.cpu_seconds()
        code, out, err = run_bounded(command, bench_timeout_s(size))
        if code != 0:
            return {"error": f"bench {step.mode} exited with {code}: {err.strip()[-400:]} "
                             f"{target.diagnosis()[-600:]}"}
        if step.measured:
            report = last_json_line(out)
            report["broker_cpu_s"] = target.cpu_seconds() - cpu_before
    return report


def drop_page_cache(commands):
    """Writes back and drops the page cache; the error, or None."""
    commands.add([shlex.join(DROP_PAGE_CACHE_COMMAND)])
    code, _, err = run_bounded(DROP_PAGE_CACHE_COMMAND, DROP_PAGE_CACHE_TIMEOUT_S)
    return None if code == 0 else f"dropping the page cache exited with {code}: {err.strip()[-300:]}"


def run_workload_once(workload, make_broker, shoal_bin, size, commands):
    """One fresh broker, the workload's steps against it; the measured
    report, or {"error": ...}."""
    broker = make_broker()
    try:
        broker.start(commands)
        topic = f"perf-{uuid.uuid4().hex[:8]}"
        prepare_topic(broker, shoal_bin, topic, size, commands)
        report = bench_steps(workload, broker, shoal_bin, topic, size, commands)
        if "error" in report:
            return report
        if report.get("errors"):
            report["error_note"] = f"broker errors: {report['errors']}"
        if isinstance(broker, Shoal):
            report["reactor_stalls"] = broker.reactor_stalls()
            report["reactor_stalls_busy"] = broker.reactor_stalls(STALL_BUSY_MARK)
        return report
    except Exception as error:  # noqa: BLE001 - one failed run must not end the comparison
        return {"error": str(error).strip()[-400:]}
    finally:
        broker.close()


def create_topic(broker, shoal_bin, topic, commands):
    command = [shoal_bin, "topic", "create", topic, "--bootstrap", broker.bootstrap,
               "--partitions", str(PARTITIONS)]
    # A cluster's broker names its topics' replication factor
    # (perf/replication.py); one broker takes the default.
    replication_factor = getattr(broker, "replication_factor", None)
    if replication_factor is not None:
        command += ["--replication-factor", str(replication_factor)]
    for config in broker.topic_configs:
        command += ["--config", config]
    commands.add(command, {**broker.placeholders(), topic: "$TOPIC"})
    code, _, err = run_bounded(command, TOPIC_CREATE_TIMEOUT_S)
    if code != 0:
        raise RuntimeError(f"topic create exited with {code}: {err.strip()[-300:]}")


def prepare_topic(broker, shoal_bin, topic, size, commands):
    """Creates the run's topic (with the broker's topic configs), then
    produces for size.warmup_s to another topic made the same way, so the
    measured step meets a warm broker and a topic whose leaders are settled
    (a Kafka just started answers NOT_LEADER_OR_FOLLOWER for a new topic's
    first second or so). The smoke size neither warms up nor pre-creates."""
    if size.warmup_s <= 0 and not broker.topic_configs:
        return
    create_topic(broker, shoal_bin, topic, commands)
    if size.warmup_s <= 0:
        return
    warmup_topic = f"perf-warmup-{uuid.uuid4().hex[:8]}"
    create_topic(broker, shoal_bin, warmup_topic, commands)
    command = [shoal_bin, "bench", "produce", "--bootstrap", broker.bootstrap, "--topic", warmup_topic,
               "--record-size", "100", "--acks", "-1", "--duration", str(size.warmup_s), "--json"]
    commands.add(command, {**broker.placeholders(), warmup_topic: "$WARMUP_TOPIC"})
    code, _, err = run_bounded(command, bench_timeout_s(size))
    if code != 0:
        raise RuntimeError(f"warm-up exited with {code}: {err.strip()[-300:]}")


def idle_cpu(shoal_bin, seconds, commands):
    """Percent of one core shoal uses while idle: started, one topic
    created, no clients, measured over `seconds` after a settling second."""
    broker = Shoal(shoal_bin)
    try:
        broker.start(commands)
        topic = f"perf-{uuid.uuid4().hex[:8]}"
        code, _, err = run_bounded([shoal_bin, "topic", "create", topic, "--bootstrap", broker.bootstrap,
                                    "--partitions", str(PARTITIONS)], 60)
        if code != 0:
            return {"error": f"topic create exited with {code}: {err.strip()[-300:]}"}
        time.sleep(IDLE_SETTLE_S)
        before, start = broker.cpu_seconds(), time.monotonic()
        time.sleep(seconds)
        used, elapsed = broker.cpu_seconds() - before, time.monotonic() - start
        return {"percent_of_one_core": 100 * used / elapsed, "seconds": elapsed,
                "reactor_stalls": broker.reactor_stalls()}
    except Exception as error:  # noqa: BLE001
        return {"error": str(error).strip()[-300:]}
    finally:
        broker.close()
