"""Every process and temp dir the perf scripts make, and their bounds: a
long-lived process (broker, iperf3 server) is killed at the end (finally,
atexit, SIGTERM; and by the kernel if the harness dies, via setpriv
--pdeathsig), a command runs to completion or is killed at its timeout,
every temp dir under target/perf-data is removed. Only 127.0.0.1 is used.

Also the log of the distinct commands run, as RESULTS.md shows them.
"""

import atexit
import json
import os
import shutil
import socket
import subprocess
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PERF_DIR = os.path.join(REPO, "perf")
HOST = "127.0.0.1"
VENV = os.path.join(REPO, "target", "perf-venv")
# fio and the brokers' data dirs live here, so the ceilings are measured on
# the filesystem the brokers write to.
DATA_ROOT = os.path.join(REPO, "target", "perf-data")
READY_TIMEOUT_S = 60.0  # Kafka's JVM start on 2 cores is the slow one
STOP_TIMEOUT_S = 20.0
POLL_INTERVAL_S = 0.05
# A bench run gets its duration plus this much before it is killed.
BENCH_SLACK_S = 60.0
LOG_TAIL_LINES = 20


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
