"""The reference broker: tests/kafka/kafka-server starts Apache Kafka from the
jars that tests/kafka/setup brought from Maven Central, serves a record to a
real client, keeps it across a restart on the same data dir, and stops on
SIGTERM with nothing left behind. It is what
SHOAL_TEST_SERVE_CMD runs to hold this suite against Kafka itself, so a broken
setup shows here rather than as a hundred failures of that run.
"""

import os
import shutil
import signal
import socket
import subprocess

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import (
    EXTERNAL_READY_TIMEOUT_S,
    EXTERNAL_STOP_CODES,
    HOST,
    SETPRIV,
    STOP_TIMEOUT_S,
    _LIVE_PROCESSES,
    _kill,
    free_port,
    make_temp_dir,
    read_text,
    remove_temp_dir,
    wait_until,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER = os.path.join(ROOT, "tests", "kafka", "kafka-server")
JARS = os.path.join(ROOT, "target", "kafka")
CLIENT_TIMEOUT_S = 60.0
LOG_TAIL_LINES = 60

pytestmark = pytest.mark.skipif(
    shutil.which("java") is None,
    reason="no java on PATH: the reference broker is Apache Kafka, a JVM program",
)


def accepts_connections(port):
    try:
        socket.create_connection((HOST, port), timeout=1).close()
        return True
    except OSError:
        return False


def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().split(b"\0")


class ReferenceBroker:
    """One run of tests/kafka/kafka-server on `port` and `data_dir`."""

    def __init__(self, root, port, data_dir, run):
        self.log_path = os.path.join(root, f"kafka-{run}.log")
        command = [SERVER, str(port), data_dir]
        if SETPRIV:
            command = [SETPRIV, "--pdeathsig", "KILL", "--", *command]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        _LIVE_PROCESSES.add(self.proc)

        def up():
            assert self.proc.poll() is None, (
                f"kafka-server exited with {self.proc.returncode}:\n{tail(self.log_path)}"
            )
            return accepts_connections(port)

        wait_until(up, EXTERNAL_READY_TIMEOUT_S, f"Apache Kafka on {HOST}:{port}")
        # The script execs java: the pid a test signals is the broker's JVM.
        assert b"kafka.Kafka" in cmdline(self.proc.pid)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=STOP_TIMEOUT_S)
        _LIVE_PROCESSES.discard(self.proc)
        assert code in EXTERNAL_STOP_CODES, f"exit {code} after SIGTERM:\n{tail(self.log_path)}"
        # The logging backend is in place: Kafka said it started.
        assert "Kafka Server started" in read_text(self.log_path)

    def close(self):
        _kill(self.proc)


def read_back(bootstrap, topic):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic, "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])

        def record():
            msg = consumer.poll(1.0)
            if msg is None:
                return None
            assert msg.error() is None, msg.error()
            return msg

        msg = wait_until(record, CLIENT_TIMEOUT_S, "the record back")
    finally:
        consumer.close()
    return msg.key(), msg.value(), msg.headers(), msg.offset()


def test_reference_broker_serves_a_record_across_a_restart(topic):
    """Started, a record in and out, SIGTERM, started again on the same data
    dir (as the suite's restart tests do) and the record is still there."""
    assert os.path.isdir(JARS), f"no {JARS}: run tests/kafka/setup (tests/run does)"
    root = make_temp_dir("shoal-kafka-")
    data_dir = os.path.join(root, "data")
    port = free_port()
    bootstrap = f"{HOST}:{port}"
    runs = []
    try:
        runs.append(ReferenceBroker(root, port, data_dir, 1))
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(CLIENT_TIMEOUT_S)

        delivered = []
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
        producer.produce(
            topic,
            key=b"k",
            value=b"reference",
            headers=[("h", b"1")],
            on_delivery=lambda err, msg: delivered.append((err, msg.offset())),
        )
        assert producer.flush(CLIENT_TIMEOUT_S) == 0
        assert delivered == [(None, 0)]
        # Gone before the broker stops, so that they do not keep reconnecting.
        del producer, admin
        expected = (b"k", b"reference", [("h", b"1")], 0)
        assert read_back(bootstrap, topic) == expected
        runs[-1].stop()

        runs.append(ReferenceBroker(root, port, data_dir, 2))
        assert read_back(bootstrap, topic) == expected
        runs[-1].stop()
    finally:
        for run in runs:
            run.close()
        remove_temp_dir(root)


def tail(path):
    return "\n".join(read_text(path).splitlines()[-LOG_TAIL_LINES:])
