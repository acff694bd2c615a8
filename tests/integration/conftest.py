"""Fixtures that run the real `shoal` binary for the integration tests.

`Broker` starts `$SHOAL_BIN serve` on a free loopback port with its own data
directory, waits for the ready line, and can stop (SIGTERM), kill -9 and
restart it on the same port and data. Whatever happens to a test, every broker
process it started is killed and every temp directory removed: by the fixture's
teardown, and by an atexit hook for anything a crash left behind.

For trying the tests' client code against another Kafka broker, set
SHOAL_TEST_SERVE_CMD to a command with `{port}` and `{data_dir}` placeholders;
a test's broker config overrides follow it as `KEY=VALUE` arguments,
readiness is then a successful TCP connect, and tests marked `shoal_only` skip.
tests/kafka/kafka-server is such a command for Apache Kafka.
"""

import atexit
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import kafka_wire  # noqa: E402

HOST = "127.0.0.1"
# A start takes well under a second; one in CI once printed nothing in
# 20 s. Past 5 s the broker logs the step it is on (`shard::progress`),
# and past this bound the failure shows its threads' frames.
READY_TIMEOUT_S = 45.0
# A JVM broker (Apache Kafka through SHOAL_TEST_SERVE_CMD) formats its storage
# and starts in one JVM each, well past 20 s on a loaded machine.
EXTERNAL_READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
LOG_TAIL_LINES = 60
# gdb attaching to a hung broker for its frames, and the frames of each
# thread it prints.
STACKS_TIMEOUT_S = 60.0
STACK_FRAMES = 16
STACK_LINE_CHARS = 240
POLL_INTERVAL_S = 0.05

EXTERNAL_SERVE_CMD = os.environ.get("SHOAL_TEST_SERVE_CMD")
# After SIGTERM a JVM runs its shutdown hooks (Kafka's controlled shutdown)
# and then exits with the signal's status, 128 + 15.
EXTERNAL_STOP_CODES = (0, 128 + signal.SIGTERM)

# Every live process and temp dir, so that atexit can clean up whatever a
# crashed test or an interrupted run left behind.
_LIVE_PROCESSES = set()
_LIVE_DIRS = set()


@atexit.register
def _cleanup_everything():
    for proc in list(_LIVE_PROCESSES):
        _kill(proc)
    for path in list(_LIVE_DIRS):
        shutil.rmtree(path, ignore_errors=True)


def _on_sigterm(signum, frame):
    # Python's default SIGTERM handling would skip atexit: clean up first.
    _cleanup_everything()
    os._exit(128 + signum)


# With util-linux's setpriv the kernel SIGKILLs a broker whose test process
# died, even by kill -9. (setpriv execs, so the pid stays the broker's. A
# preexec_fn would do the same but can deadlock in a forked child of a
# process that runs librdkafka threads.)
SETPRIV = shutil.which("setpriv")


def pytest_configure(config):
    signal.signal(signal.SIGTERM, _on_sigterm)


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


def shoal_bin():
    path = os.environ.get("SHOAL_BIN")
    if not path:
        pytest.fail("SHOAL_BIN is not set: run the suite through tests/run")
    if not os.access(path, os.X_OK):
        pytest.fail(f"SHOAL_BIN={path} is not an executable file")
    return path


def wait_ready(proc, log_path, bootstrap):
    """Waits for a broker started by hand (not the fixture) to print its
    ready line in `log_path`; fails with the log if it exits or takes longer
    than READY_TIMEOUT_S."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while f"shoal ready on {bootstrap}" not in read_text(log_path):
        assert proc.poll() is None, read_text(log_path)
        if time.monotonic() >= deadline:
            raise AssertionError(f"{read_text(log_path)}\n{thread_stacks(proc.pid)}")
        time.sleep(POLL_INTERVAL_S)


def thread_stacks(pid):
    """Each thread of process `pid`: its name and kernel wait channel, then
    (where gdb is) its innermost frames. For the message of a broker that
    never got ready: a start that hung once in CI left an empty log and
    nothing else to find the wait by."""
    lines = [f"--- threads of pid {pid} (name, kernel wait channel) ---"]
    task_dir = f"/proc/{pid}/task"
    try:
        tids = sorted(os.listdir(task_dir), key=int)
    except OSError as error:
        return f"no threads of pid {pid}: {error}"
    for tid in tids:
        name = read_text(f"{task_dir}/{tid}/comm").strip()
        wchan = read_text(f"{task_dir}/{tid}/wchan").strip()
        lines.append(f"{tid} {name} {wchan}")
    gdb = shutil.which("gdb")
    if gdb is None:
        lines.append("(no gdb here for the frames)")
        return "\n".join(lines)
    try:
        frames = subprocess.run(
            [gdb, "-p", str(pid), "-batch", "-ex", f"thread apply all bt {STACK_FRAMES}"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=STACKS_TIMEOUT_S,
        ).stdout
    except subprocess.TimeoutExpired:
        lines.append(f"(gdb took more than {STACKS_TIMEOUT_S}s)")
        return "\n".join(lines)
    lines.append("--- frames (gdb) ---")
    lines.extend(
        line[:STACK_LINE_CHARS]
        for line in frames.splitlines()
        if line.startswith(("#", "Thread "))
    )
    return "\n".join(lines)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def make_temp_dir(prefix):
    path = tempfile.mkdtemp(prefix=prefix)
    _LIVE_DIRS.add(path)
    return path


def remove_temp_dir(path):
    shutil.rmtree(path, ignore_errors=True)
    _LIVE_DIRS.discard(path)


def wait_until(predicate, timeout_s, what, interval_s=POLL_INTERVAL_S):
    """Polls predicate until it returns a truthy value (returned) or fails the
    test after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


def read_text(path):
    try:
        with open(path, "r", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


class Broker:
    """One broker process and its data directory."""

    def __init__(self, root_dir, overrides=None, shards=None, data_dir=None):
        self.root_dir = root_dir
        self.data_dir = data_dir or os.path.join(root_dir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.overrides = dict(overrides or {})
        self.shards = shards
        self.port = free_port()
        self.bootstrap = f"{HOST}:{self.port}"
        self.proc = None
        self.starts = 0
        self.log_paths = []

    @property
    def log_path(self):
        return self.log_paths[-1]

    def partition_dir(self, topic, partition):
        """The directory of one partition's files: `<topic>-<partition>` in
        the data directory, or one level down (where another broker puts
        its log dir inside the data directory)."""
        name = f"{topic}-{partition}"
        for path in [self.data_dir, *sorted(d.path for d in os.scandir(self.data_dir) if d.is_dir())]:
            if os.path.isdir(os.path.join(path, name)):
                return os.path.join(path, name)
        raise AssertionError(f"no directory {name} under {self.data_dir}")

    def command(self):
        if EXTERNAL_SERVE_CMD:
            command = shlex.split(EXTERNAL_SERVE_CMD.format(port=self.port, data_dir=self.data_dir))
            return command + [f"{key}={value}" for key, value in self.overrides.items()]
        cmd = [
            shoal_bin(),
            "serve",
            "--listen",
            self.bootstrap,
            "--advertise",
            self.bootstrap,
            "--data-dir",
            self.data_dir,
        ]
        if self.shards is not None:
            cmd += ["--shards", str(self.shards)]
        for key, value in self.overrides.items():
            cmd += ["--override", f"{key}={value}"]
        return cmd

    def spawn(self):
        """Starts the process with output going to a fresh log file; does not
        wait for readiness."""
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        self.starts += 1
        log_path = os.path.join(self.root_dir, f"broker-{self.starts}.log")
        self.log_paths.append(log_path)
        command = self.command()
        if SETPRIV:
            command = [SETPRIV, "--pdeathsig", "KILL", "--", *command]
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "RUST_BACKTRACE": "1"},
            )
        _LIVE_PROCESSES.add(self.proc)
        return self.proc

    def start(self):
        self.spawn()
        ready_line = f"shoal ready on {self.bootstrap}"
        ready_timeout_s = EXTERNAL_READY_TIMEOUT_S if EXTERNAL_SERVE_CMD else READY_TIMEOUT_S
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if EXTERNAL_SERVE_CMD:
                if self._accepts_connections():
                    return self
            elif ready_line in read_text(self.log_path).splitlines():
                return self
            code = self.proc.poll()
            if code is not None:
                raise AssertionError(
                    f"broker exited with {code} before it was ready:\n{self.log_tail()}"
                )
            if time.monotonic() >= deadline:
                stacks = "" if EXTERNAL_SERVE_CMD else f"\n{thread_stacks(self.proc.pid)}"
                raise AssertionError(
                    f"broker printed no {ready_line!r} within {ready_timeout_s}s:\n{self.log_tail()}{stacks}"
                )
            time.sleep(POLL_INTERVAL_S)

    def _accepts_connections(self):
        try:
            socket.create_connection((HOST, self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def is_running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """Graceful stop: SIGTERM, bounded wait, and the exit code must be 0."""
        assert self.is_running(), "broker is not running"
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _kill(self.proc)
            raise AssertionError(f"broker did not stop within {STOP_TIMEOUT_S}s of SIGTERM")
        _LIVE_PROCESSES.discard(self.proc)
        ok_codes = EXTERNAL_STOP_CODES if EXTERNAL_SERVE_CMD else (0,)
        assert code in ok_codes, f"broker exited with {code} after SIGTERM:\n{self.log_tail()}"

    def kill9(self):
        assert self.is_running(), "broker is not running"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT_S)
        _LIVE_PROCESSES.discard(self.proc)

    def restart(self):
        if self.is_running():
            self.stop()
        return self.start()

    def close(self):
        if self.proc is not None:
            _kill(self.proc)

    def log_tail(self, lines=LOG_TAIL_LINES):
        parts = []
        for path in self.log_paths:
            tail = read_text(path).splitlines()[-lines:]
            parts.append(f"--- {os.path.basename(path)} (last {len(tail)} lines) ---")
            parts.extend(tail)
        return "\n".join(parts)

    def panic_lines(self):
        return [
            line
            for path in self.log_paths
            for line in read_text(path).splitlines()
            if "panicked at" in line
        ]

    def answers(self):
        """The broker answers ApiVersions on a fresh connection."""
        return kafka_wire.api_versions(self.bootstrap)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for broker in getattr(item, "shoal_brokers", []):
            report.sections.append((f"shoal broker log ({broker.bootstrap})", broker.log_tail()))


def pytest_collection_modifyitems(config, items):
    if not EXTERNAL_SERVE_CMD:
        return
    skip = pytest.mark.skip(reason="shoal-specific; SHOAL_TEST_SERVE_CMD runs another broker")
    for item in items:
        if "shoal_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def broker_factory(request):
    """Returns start(overrides=None, shards=None) -> a running Broker. All of
    them are killed and their directories removed at teardown."""
    root_dirs = []
    brokers = []
    request.node.shoal_brokers = brokers

    def start(overrides=None, shards=None, data_dir=None):
        root_dir = make_temp_dir("shoal-it-")
        root_dirs.append(root_dir)
        broker = Broker(root_dir, overrides=overrides, shards=shards, data_dir=data_dir)
        brokers.append(broker)
        return broker.start()

    panics = []
    try:
        yield start
    finally:
        for broker in brokers:
            broker.close()
            panics.extend(broker.panic_lines())
        for root_dir in root_dirs:
            remove_temp_dir(root_dir)
    # A panic is a bug even when the clients never noticed it (a shard thread
    # can die while another keeps answering).
    if panics:
        pytest.fail("broker panicked:\n" + "\n".join(panics[:20]))


@pytest.fixture
def broker(broker_factory):
    return broker_factory(shards=2)


@pytest.fixture
def topic(request):
    """A topic name unique to this test."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60]
    return f"{base}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def tmp_root():
    path = make_temp_dir("shoal-it-")
    try:
        yield path
    finally:
        remove_temp_dir(path)
