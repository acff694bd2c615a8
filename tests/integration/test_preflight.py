"""`shoal serve` checks what io_uring needs before it starts a shard: a
locked-memory limit it cannot raise is refused at once with the cause and the
fix, never a panic or a hang; a soft limit below the hard one is raised. An
io_uring refused by seccomp (as container profiles do) is reported likewise."""

import os
import shutil
import subprocess

import pytest

from conftest import Broker, shoal_bin

pytestmark = pytest.mark.shoal_only

REFUSE_TIMEOUT_S = 10
# 1 MiB: below the 2 MiB each shard locks for io_uring.
TOO_LITTLE_MEMLOCK = 1 << 20
# A hard limit two shards fit in: raising the soft limit up to it needs no privilege.
ENOUGH_MEMLOCK = 8 << 20

needs_root_tools = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("prlimit") or not shutil.which("setpriv"),
    reason="needs root, prlimit and setpriv to set and lock a small memlock limit",
)


@needs_root_tools
def test_memlock_too_small_and_fixed_is_refused_with_the_fix(tmp_root):
    cmd = [
        "prlimit",
        f"--memlock={TOO_LITTLE_MEMLOCK}:{TOO_LITTLE_MEMLOCK}",
        # Without CAP_SYS_RESOURCE even root cannot raise the hard limit.
        "setpriv",
        "--bounding-set",
        "-sys_resource",
        "--inh-caps",
        "-sys_resource",
        shoal_bin(),
        "serve",
        "--listen",
        "127.0.0.1:1",
        "--data-dir",
        os.path.join(tmp_root, "data"),
        "--shards",
        "2",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=REFUSE_TIMEOUT_S, stdin=subprocess.DEVNULL)
    assert done.returncode != 0
    assert "shoal ready" not in done.stdout
    assert "locked-memory limit" in done.stderr and "ulimit -l" in done.stderr, done.stderr
    assert "panicked" not in done.stderr, done.stderr


@needs_root_tools
def test_memlock_soft_limit_too_small_is_raised(tmp_root):
    broker = Broker(tmp_root, shards=2)
    original = broker.command

    def with_small_limit():
        return ["prlimit", f"--memlock={TOO_LITTLE_MEMLOCK}:{ENOUGH_MEMLOCK}", *original()]

    broker.command = with_small_limit
    try:
        broker.start()
        assert broker.answers()
        broker.stop()
    finally:
        broker.close()


HELPER_SOURCE = os.path.join(os.path.dirname(__file__), "helpers", "no_io_uring.c")


@pytest.mark.skipif(not shutil.which("cc"), reason="needs a C compiler for the seccomp helper")
def test_io_uring_blocked_is_refused_with_the_fix(tmp_root):
    helper = os.path.join(tmp_root, "no_io_uring")
    subprocess.run(["cc", "-O1", "-o", helper, HELPER_SOURCE], check=True, timeout=60)
    cmd = [helper, shoal_bin(), "serve", "--listen", "127.0.0.1:1", "--data-dir", os.path.join(tmp_root, "data")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=REFUSE_TIMEOUT_S, stdin=subprocess.DEVNULL)
    assert done.returncode != 0
    assert "shoal ready" not in done.stdout
    assert "io_uring" in done.stderr and "seccomp" in done.stderr, done.stderr
    assert "panicked" not in done.stderr, done.stderr
