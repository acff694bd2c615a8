"""A garbage flood: clients send mutated copies of real clients' requests
(tests/corpus, see tests/fuzz_requests.rs) over real sockets, reconnecting
whenever the broker closes on them, while a well-behaved producer and
consumer keep working on another topic. The broker must stay up, deliver
every record to the well-behaved client, answer a fresh request afterwards,
never hold a shard in a busy reactor stall, and log a bounded number of
lines however many connections the flood costs.

The busy-stall and bounded-log assertions are what the flood is for: a
shard must not zero-fill the size a frame claims before the bytes arrive,
and closing connections must be logged at a bounded rate.

The seed is printed; SHOAL_FLOOD_SEED=N replays a flood, SHOAL_FLOOD_SECONDS
makes it longer."""

import os
import random
import socket
import struct
import threading
import time

from confluent_kafka import TopicPartition

import clients
import kafka_wire
from conftest import EXTERNAL_SERVE_CMD
from test_bad_input import PARTITIONS, SteadyProducer, wait_for_acks

CORPUS_DIR = os.path.join(os.path.dirname(__file__), "..", "corpus")
FLOOD_SECONDS = float(os.environ.get("SHOAL_FLOOD_SECONDS", "20"))
FLOODERS = 2
# Bounds each flooder whatever the machine's speed: connections it opens, and
# frames it sends on one before reconnecting.
CONNECTIONS_PER_FLOODER_MAX = 50_000
FRAMES_PER_CONNECTION_MAX = 16
# How long a flooder reads what the broker answers before it moves on; a
# frame whose size claims more than was sent leaves the broker waiting.
READ_BACK_S = 0.05
MUTATIONS_PER_FRAME_MAX = 4
# Lying size prefixes: some claim megabytes the flooder never sends, up to
# socket.request.max.bytes (Kafka's default, 100 MiB), which is what made
# read_frame stall.
SOCKET_REQUEST_MAX_BYTES = 104_857_600
LYING_SIZE_ONE_IN = 20
# Log records (a line and the indented lines after it, such as a backtrace)
# the broker may write: a base for start-up and the well-behaved clients,
# and a rate for the flood, from its start to the last assertion. The rate
# allows each of the broker's 2 shards 10 lines a second about connections
# it closes and a summary of the rest, with some slack. The flood opens
# thousands of connections; a record for each would be far past this.
# Reports of preempted stalls are not counted: they say the OS took a
# shard's thread off its core, which on a small shared machine is the
# load's doing.
LOG_RECORDS_BASE = 50
LOG_RECORDS_PER_SECOND_MAX = 25
BUSY_STALL = "reactor stall (busy)"
PREEMPTED_STALL = "reactor stall (preempted)"
CONSUME_AFTER_FLOOD_S = 60


def load_corpus():
    frames = []
    for name in sorted(os.listdir(CORPUS_DIR)):
        if not name.endswith(".frames"):
            continue
        with open(os.path.join(CORPUS_DIR, name), "rb") as f:
            data = f.read()
        pos = 0
        while pos < len(data):
            (size,) = struct.unpack_from(">i", data, pos)
            frames.append(data[pos + 4 : pos + 4 + size])
            pos += 4 + size
    assert frames, f"no corpus in {CORPUS_DIR}"
    return frames


def mutate(rng, frame, corpus):
    """The mutations of tests/fuzz_requests.rs, on bytes."""
    data = bytearray(frame)
    for _ in range(rng.randint(1, MUTATIONS_PER_FRAME_MAX)):
        kind = rng.randrange(9)
        at = rng.randrange(len(data) + 1)
        if kind == 0 and data:
            data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif kind == 1 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif kind == 2:
            del data[at:]
        elif kind == 3:
            data[at:at] = rng.randbytes(rng.randint(1, 16))
        elif kind == 4:
            del data[at : at + rng.randint(1, 32)]
        elif kind == 5 and len(data) >= 4:
            at = min(at, len(data) - 4)
            value = rng.choice([-1, 0, 1, 0x7F, 0x80, 0xFFFF, 0x0100_0000, 0x7FFF_FFFF, -(1 << 31)])
            data[at : at + 4] = struct.pack(">i", value)
        elif kind == 6 and len(data) >= 2:
            data[0:2] = struct.pack(">h", rng.choice([rng.randrange(0, 70), rng.randrange(-(1 << 15), 1 << 15)]))
        elif kind == 7 and len(data) >= 4:
            data[2:4] = struct.pack(">h", rng.randrange(-1, 20))
        elif kind == 8:
            source = rng.choice(corpus)
            start = rng.randrange(len(source))
            piece = source[start : start + rng.randint(1, 64)]
            data[at : at + len(piece)] = piece
    return bytes(data)


def size_prefix(rng, frame):
    """Mostly the true size; one in LYING_SIZE_ONE_IN lies, by a little or by
    up to socket.request.max.bytes, or is zero, negative or over the limit."""
    if rng.randrange(LYING_SIZE_ONE_IN):
        return struct.pack(">i", len(frame))
    return struct.pack(
        ">i",
        rng.choice(
            [
                len(frame) + rng.randint(1, 64),
                rng.randint(1 << 20, SOCKET_REQUEST_MAX_BYTES),
                SOCKET_REQUEST_MAX_BYTES + 1,
                0,
                -rng.randint(1, 1 << 31),
            ]
        ),
    )


class Flooder(threading.Thread):
    """Opens connections one after another and sends each a burst of mutated
    frames, reading back whatever comes, until the deadline."""

    def __init__(self, bootstrap, corpus, seed, deadline):
        super().__init__(daemon=True)
        self.address = kafka_wire.parse_bootstrap(bootstrap)
        self.corpus = corpus
        self.rng = random.Random(seed)
        self.deadline = deadline
        self.connections = 0
        self.frames = 0
        self.failure = None

    def run(self):
        try:
            while time.monotonic() < self.deadline and self.connections < CONNECTIONS_PER_FLOODER_MAX:
                self.one_connection()
        except Exception as e:  # surfaced by the test thread
            self.failure = e

    def one_connection(self):
        burst = []
        for _ in range(self.rng.randint(1, FRAMES_PER_CONNECTION_MAX)):
            frame = mutate(self.rng, self.rng.choice(self.corpus), self.corpus)
            burst.append(size_prefix(self.rng, frame) + frame)
        with socket.create_connection(self.address, timeout=5) as sock:
            # Reset on close: no TIME_WAIT left per connection, so tens of
            # thousands of them do not exhaust the ephemeral ports.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connections += 1
            try:
                sock.sendall(b"".join(burst))
                self.frames += len(burst)
                sock.settimeout(READ_BACK_S)
                while sock.recv(1 << 16):
                    pass
            except (socket.timeout, ConnectionError):
                pass  # the broker closed on a bad frame, or waits for more


def consume_all(bootstrap, topic, expected, deadline):
    """Reads both partitions from the start until `expected` ({p: [values]})
    is there, or the deadline; returns {p: [values]} as read."""
    consumer = clients.consumer(bootstrap, auto_offset_reset="earliest")
    got = {p: [] for p in expected}
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in expected])
        while time.monotonic() < deadline and any(len(got[p]) < len(expected[p]) for p in expected):
            message = consumer.poll(0.2)
            if message is None or message.error() is not None:
                continue
            got[message.partition()].append(message.value())
    finally:
        consumer.close()
    return got


class SteadyConsumer(threading.Thread):
    """Consumes the well-behaved producer's topic while the flood runs."""

    def __init__(self, bootstrap, topic):
        super().__init__(daemon=True)
        self.consumer = clients.consumer(bootstrap, auto_offset_reset="earliest")
        self.consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        self.stop_event = threading.Event()
        self.consumed = 0
        self.failure = None

    def run(self):
        try:
            deadline = time.monotonic() + SteadyProducer.MAX_SECONDS
            while not self.stop_event.is_set() and time.monotonic() < deadline:
                message = self.consumer.poll(0.2)
                if message is not None and message.error() is None:
                    self.consumed += 1
        except Exception as e:  # surfaced by the test thread
            self.failure = e
        finally:
            self.consumer.close()



def test_garbage_flood_costs_no_stall_and_a_bounded_log(broker, topic):
    corpus = load_corpus()
    seed = int(os.environ.get("SHOAL_FLOOD_SEED", random.randrange(1 << 32)))
    print(f"SHOAL_FLOOD_SEED={seed}")
    clients.create_topic(broker.bootstrap, topic, PARTITIONS)
    writer = SteadyProducer(broker.bootstrap, topic)
    reader = SteadyConsumer(broker.bootstrap, topic)
    writer.start()
    reader.start()
    try:
        wait_for_acks(writer, broker, 100, after="start")
        flood_started = time.monotonic()
        deadline = flood_started + FLOOD_SECONDS
        flooders = [Flooder(broker.bootstrap, corpus, seed + i, deadline) for i in range(FLOODERS)]
        for flooder in flooders:
            flooder.start()
        acked_before = len(writer.log.acked)
        for flooder in flooders:
            flooder.join(FLOOD_SECONDS + 30)
        assert not any(f.is_alive() for f in flooders), "a flooder outlived its deadline"
        connections = sum(f.connections for f in flooders)
        frames = sum(f.frames for f in flooders)
        print(f"flood: {connections} connections, {frames} frames in {FLOOD_SECONDS} s")
        # Once it died here of a double free: a glommio task freed twice,
        # through a waker dropped on another shard's thread (src/shard/mesh.rs).
        assert broker.is_running(), f"broker died in the flood: exit {broker.proc.returncode}"
        for flooder in flooders:
            assert flooder.failure is None, flooder.failure
        # The well-behaved client made progress through the flood and still does.
        assert len(writer.log.acked) > acked_before, "no record acknowledged during the flood"
        wait_for_acks(writer, broker, len(writer.log.acked) + 100, after="the flood")
        assert reader.consumed > 0, "nothing consumed during the flood"
    finally:
        writer.stop_event.set()
        reader.stop_event.set()
        writer.join(timeout=60)
        reader.join(timeout=30)
    assert writer.failure is None, writer.failure
    assert reader.failure is None, reader.failure
    assert writer.log.errors == []

    # Every record the producer sent is there, in order per partition.
    assert len(writer.log.acked) == writer.produced
    expected = {p: [f"steady {i}".encode() for i in range(p, writer.produced, PARTITIONS)] for p in range(PARTITIONS)}
    got = consume_all(broker.bootstrap, topic, expected, time.monotonic() + CONSUME_AFTER_FLOOD_S)
    for p in range(PARTITIONS):
        assert got[p] == expected[p], f"partition {p}: {len(got[p])} records of {len(expected[p])}"

    # A fresh connection with a valid request is served.
    assert kafka_wire.API_PRODUCE in broker.answers()
    assert broker.is_running()

    if EXTERNAL_SERVE_CMD:
        # The stall and log bounds are shoal's own: Kafka logs every bad
        # connection (three records each) and prints no stall reports.
        return
    records = log_records(broker)
    stalls = [record for record in records if BUSY_STALL in record]
    counted = [record for record in records if PREEMPTED_STALL not in record]
    print(
        f"broker log: {len(records)} records, {len(stalls)} busy stalls, "
        f"{len(records) - len(counted)} preempted stalls"
    )
    assert not stalls, f"{len(stalls)} busy reactor stalls, the first: {stalls[0][:2000]}"
    records_max = LOG_RECORDS_BASE + LOG_RECORDS_PER_SECOND_MAX * (time.monotonic() - flood_started)
    assert len(counted) <= records_max, (
        f"{len(counted)} log records (at most {records_max:.0f}) for a flood of {connections} connections; the most common: "
        + repr(most_common_lines(counted))
    )


def log_records(broker):
    """The broker's log as records: each line with the indented lines after
    it (a stall report's backtrace)."""
    records = []
    with open(broker.log_path, errors="replace") as f:
        for line in f:
            if not line[:1].isspace() or not records:
                records.append(line)
            else:
                records[-1] += line
    return records


def most_common_lines(records, count=3):
    """The most frequent log records, first line only, with timestamps and
    addresses cut, to show what filled the log."""
    shapes = {}
    for record in records:
        first = record.split("\n", 1)[0]
        shape = " ".join(word for word in first.split() if not any(c.isdigit() for c in word))
        shapes[shape] = shapes.get(shape, 0) + 1
    return sorted(shapes.items(), key=lambda item: -item[1])[:count]
