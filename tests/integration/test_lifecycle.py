"""Process lifecycle: the ready line, graceful stop on SIGTERM and SIGINT,
and the data-directory lock."""

import signal
import subprocess

import pytest

import clients
from conftest import Broker, read_text

pytestmark = pytest.mark.shoal_only

REFUSE_TIMEOUT_S = 20


def test_ready_line_is_exact(broker):
    lines = read_text(broker.log_path).splitlines()
    assert lines.count(f"shoal ready on {broker.bootstrap}") == 1
    broker.answers()


def test_sigint_stops_gracefully(broker):
    broker.proc.send_signal(signal.SIGINT)
    assert broker.proc.wait(timeout=20) == 0, broker.log_tail()


def test_sigterm_stops_gracefully_with_open_clients(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 1)
    prod = clients.producer(broker.bootstrap)
    prod.produce(topic, value=b"x", partition=0)
    clients.flush(prod)
    # The producer keeps its connection open across the stop.
    broker.stop()


def test_second_broker_on_same_data_dir_refuses(broker, tmp_root, topic):
    clients.create_topic(broker.bootstrap, topic, 1)
    second = Broker(tmp_root, data_dir=broker.data_dir)
    proc = second.spawn()
    try:
        code = proc.wait(timeout=REFUSE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"second broker still running after {REFUSE_TIMEOUT_S}s:\n{second.log_tail()}")
    finally:
        second.close()
    output = read_text(second.log_path)
    assert code != 0
    assert "lock" in output.lower(), output
    assert f"shoal ready on {second.bootstrap}" not in output
    # The first broker is untouched.
    broker.answers()
    assert clients.topic_partitions(broker.bootstrap, topic) == [0]
    broker.stop()
    # And once it is gone, the directory is free again.
    broker.start()
    assert clients.topic_partitions(broker.bootstrap, topic) == [0]
