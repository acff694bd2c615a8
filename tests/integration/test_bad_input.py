"""Malformed input on raw sockets closes only that connection: a producer on
another connection keeps going, and the broker answers afterwards."""

import random
import socket
import struct
import threading
import time

import pytest

import clients
import kafka_wire

PARTITIONS = 2


class SteadyProducer(threading.Thread):
    """Produces acks=all records until stopped, one flush per small group, so
    that progress is visible while the attacks run. Bounded in count and
    time."""

    MAX_GROUPS = 100_000
    MAX_SECONDS = 90.0
    GROUP = 20

    def __init__(self, bootstrap, topic):
        super().__init__(daemon=True)
        self.topic = topic
        self.producer = clients.producer(bootstrap, linger_ms=1, message_timeout_ms=10000)
        self.log = clients.DeliveryLog()
        self.stop_event = threading.Event()
        self.produced = 0
        self.failure = None

    def run(self):
        try:
            deadline = time.monotonic() + self.MAX_SECONDS
            for _ in range(self.MAX_GROUPS):
                if self.stop_event.is_set() or time.monotonic() > deadline:
                    break
                for _ in range(self.GROUP):
                    self.producer.produce(
                        self.topic,
                        value=f"steady {self.produced}".encode(),
                        partition=self.produced % PARTITIONS,
                        on_delivery=self.log,
                    )
                    self.produced += 1
                self.producer.flush(15)
            self.producer.flush(15)
        except Exception as e:  # surfaced by the test thread
            self.failure = e
        finally:
            self.producer = None  # destroys the client and its threads


def wait_for_acks(writer, broker, at_least, after, timeout_s=20):
    deadline = time.monotonic() + timeout_s
    while len(writer.log.acked) < at_least:
        assert broker.is_running(), f"broker died after {after}: exit {broker.proc.returncode}"
        assert writer.failure is None, writer.failure
        assert not writer.log.errors, writer.log.errors[:3]
        assert time.monotonic() < deadline, f"producer stalled at {len(writer.log.acked)} acks after {after}"
        time.sleep(0.01)


def header(api_key, api_version, correlation_id=1):
    return kafka_wire.request_header(api_key, api_version, correlation_id)


def attacks():
    rng = random.Random(1234)
    garbage = rng.randbytes(4096)
    return [
        # name, bytes to send, and whether the broker must close the
        # connection (True) or the test closes it after sending (None).
        ("random bytes, then close", garbage, None),
        ("framed random bytes", kafka_wire.frame(rng.randbytes(1000)), True),
        ("2 GiB length prefix", struct.pack(">I", 2 << 30) + garbage[:100], True),
        ("2 GiB - 1 length prefix", struct.pack(">i", (2 << 30) - 1) + garbage[:100], True),
        ("negative length prefix", struct.pack(">i", -5) + garbage[:100], True),
        ("zero length prefix", struct.pack(">i", 0), True),
        ("produce header, garbage body", kafka_wire.frame(header(kafka_wire.API_PRODUCE, 7) + rng.randbytes(300)), True),
        ("metadata header, truncated body", kafka_wire.frame(header(kafka_wire.API_METADATA, 4) + b"\x00\x00"), True),
        ("metadata header, huge array count", kafka_wire.frame(header(kafka_wire.API_METADATA, 4) + struct.pack(">i", 0x7FFFFFFF)), True),
        ("unknown api key", kafka_wire.frame(header(9999, 0)), True),
        ("header shorter than its client id", kafka_wire.frame(struct.pack(">hhih", 18, 0, 1, 500) + b"abc"), True),
        ("truncated frame, then close", struct.pack(">i", 100) + garbage[:10], None),
    ]


ATTACKS = attacks()


@pytest.mark.parametrize("name,payload,must_close", ATTACKS, ids=[a[0].replace(" ", "-") for a in ATTACKS])
def test_malformed_input_only_closes_its_connection(broker, topic, name, payload, must_close):
    clients.create_topic(broker.bootstrap, topic, PARTITIONS)
    writer = SteadyProducer(broker.bootstrap, topic)
    writer.start()
    try:
        wait_for_acks(writer, broker, 100, after="start")
        for attempt in range(3):
            before = len(writer.log.acked)
            with kafka_wire.connect(broker.bootstrap) as sock:
                try:
                    sock.sendall(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # closed by the broker before we finished sending
                if must_close:
                    assert kafka_wire.wait_closed(sock), f"{name}: connection left open"
                    assert broker.is_running(), f"broker died on {name}"
                else:
                    sock.shutdown(socket.SHUT_RDWR)
            # The other connection still makes progress, and new ones work.
            wait_for_acks(writer, broker, before + 40, after=f"{name} #{attempt}")
            broker.answers()
    finally:
        writer.stop_event.set()
        writer.join(timeout=60)
    assert not writer.is_alive()
    assert writer.failure is None, writer.failure
    assert writer.log.errors == []
    assert broker.is_running()

    # Everything the producer sent is there, in order per partition.
    counts = {p: len([1 for a in writer.log.acked if a[0] == p]) for p in range(PARTITIONS)}
    assert sum(counts.values()) == writer.produced
    got = clients.consume(broker.bootstrap, topic, counts, timeout_s=60)
    for p in range(PARTITIONS):
        expected = [f"steady {i}".encode() for i in range(p, writer.produced, PARTITIONS)]
        assert [m.value() for m in got[p]] == expected


def test_many_bad_connections_in_a_row(broker):
    """A bounded burst of junk connections, then a normal request."""
    rng = random.Random(99)
    for _ in range(200):
        with kafka_wire.connect(broker.bootstrap) as sock:
            try:
                sock.sendall(struct.pack(">i", rng.randint(1, 64)) + rng.randbytes(rng.randint(0, 64)))
            except (BrokenPipeError, ConnectionResetError):
                pass
    broker.answers()
    assert broker.is_running()
