"""What the tests that drive client programs in other languages share
(test_go_clients.py, test_java_clients.py): records as base64 in JSON, group
members kept alive as processes, and waiting for a group to split a topic."""

import base64
import subprocess
import time
import uuid

import pytest

# How long a group may take to settle: a JVM member's start on a loaded
# machine, then a rebalance.
SPLIT_TIMEOUT_S = 60
SPLIT_POLL_S = 0.3


def b64(data):
    return None if data is None else base64.b64encode(data).decode()


def unb64(text):
    return None if text is None else base64.b64decode(text)


def group_name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Members:
    """Group members that wait for records that never come, so they stay in
    the group until the test kills them (at the end, whatever happened)."""

    def __init__(self):
        self.procs = []

    def start(self, command):
        self.procs.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))

    def assert_alive(self):
        for proc in self.procs:
            assert proc.poll() is None, proc.stderr.read().decode()

    def close(self):
        for proc in self.procs:
            proc.kill()
            proc.wait(timeout=10)
            proc.stderr.close()


@pytest.fixture
def members():
    m = Members()
    try:
        yield m
    finally:
        m.close()


def wait_for_split(members, describe, topic, count, partitions):
    """Polls describe() until the group is Stable with count members whose
    assignments split the topic's partitions; returns the description."""
    deadline = time.monotonic() + SPLIT_TIMEOUT_S
    while True:
        members.assert_alive()
        described = describe()
        rows = (described or {}).get("members") or []
        got = sorted(p for m in rows for p in m["assigned"].get(topic, []))
        if described and described["state"] == "Stable" and len(rows) == count and got == list(range(partitions)):
            return described
        assert time.monotonic() < deadline, f"group never split {partitions} partitions over {count}: {described}"
        time.sleep(SPLIT_POLL_S)
