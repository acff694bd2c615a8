"""The reference broker: tests/kafka/kafka-server starts Apache Kafka from the
jars that tests/kafka/setup brought from Maven Central, serves a record to a
real client, and stops on SIGTERM with nothing left behind. It is what
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


def test_reference_broker_serves_a_record_and_stops_on_sigterm(topic):
    assert os.path.isdir(JARS), f"no {JARS}: run tests/kafka/setup (tests/run does)"
    root = make_temp_dir("shoal-kafka-")
    log_path = os.path.join(root, "kafka.log")
    port = free_port()
    bootstrap = f"{HOST}:{port}"
    command = [SERVER, str(port), os.path.join(root, "data")]
    if SETPRIV:
        command = [SETPRIV, "--pdeathsig", "KILL", "--", *command]
    proc = None
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        _LIVE_PROCESSES.add(proc)

        def up():
            assert proc.poll() is None, (
                f"kafka-server exited with {proc.returncode}:\n{tail(log_path)}"
            )
            return accepts_connections(port)

        wait_until(up, EXTERNAL_READY_TIMEOUT_S, f"Apache Kafka on {bootstrap}")
        # The script execs java: the pid a test signals is the broker's JVM.
        assert b"kafka.Kafka" in cmdline(proc.pid)

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

        consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": topic, "enable.auto.commit": False}
        )
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
        assert (msg.key(), msg.value(), msg.headers(), msg.offset()) == (
            b"k",
            b"reference",
            [("h", b"1")],
            0,
        )

        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=STOP_TIMEOUT_S)
        assert code in EXTERNAL_STOP_CODES, f"exit {code} after SIGTERM:\n{tail(log_path)}"
        assert "Kafka Server started" in read_text(log_path)
    finally:
        if proc is not None:
            _kill(proc)
        remove_temp_dir(root)


def tail(path):
    return "\n".join(read_text(path).splitlines()[-LOG_TAIL_LINES:])
