"""Idempotent producers: InitProducerId, Kafka's sequence and epoch checks on
append (a retried batch answered with the offsets it got the first time,
gaps and stale epochs refused), producer state that survives kill -9, and
librdkafka's idempotent producer writing every record exactly once, in
order, while the broker is killed under it."""

import os
import random
import struct
import subprocess
import threading
import time

import pytest

import clients
import kafka_wire as wire
from clients import REQUEST_TIMEOUT_S
from conftest import shoal_bin
from records import parse_sequenced_value, sequenced_value

ERR_OUT_OF_ORDER_SEQUENCE_NUMBER = 45
ERR_INVALID_PRODUCER_EPOCH = 47
# Where a batch header keeps its producer id, epoch and base sequence.
PRODUCER_FIELDS_AT = 43

SEED = int(os.environ.get("SHOAL_CRASH_SEED", random.SystemRandom().randrange(1 << 32)))


ERR_COORDINATOR_LOAD_IN_PROGRESS = 14
# Kafka answers COORDINATOR_LOAD_IN_PROGRESS until its first block of
# producer ids arrives from its controller, a while after it starts.
PRODUCER_ID_WAIT_S = 30


def init_producer_id_when_ready(sock, correlation_id):
    """InitProducerId, asked again while the broker is still loading."""
    deadline = time.monotonic() + PRODUCER_ID_WAIT_S
    while True:
        answer = wire.init_producer_id(sock, correlation_id)
        if answer[0] != ERR_COORDINATOR_LOAD_IN_PROGRESS or time.monotonic() >= deadline:
            return answer
        time.sleep(0.2)


def test_init_producer_id_gives_new_ids(broker):
    with wire.connect(broker.bootstrap) as sock:
        answers = [init_producer_id_when_ready(sock, i) for i in range(3)]
    assert [(error, epoch) for error, _, epoch in answers] == [(0, 0)] * 3
    ids = [producer_id for _, producer_id, _ in answers]
    assert len(set(ids)) == 3 and min(ids) >= 0


@pytest.mark.shoal_only  # restarts the broker: Kafka answers NOT_LEADER_OR_FOLLOWER for a while after
def test_sequences_and_epochs_are_checked_and_a_retry_keeps_its_offsets(broker_factory, topic):
    broker = broker_factory(shards=1)
    clients.create_topic(broker.bootstrap, topic, 1)
    with wire.connect(broker.bootstrap) as sock:
        error, pid, epoch = wire.init_producer_id(sock, 1)
        assert error == 0
        first = wire.record_batch([b"a", b"b"], pid, epoch, 0)
        assert wire.produce(sock, 2, topic, 0, first) == (0, 0)
        assert wire.produce(sock, 3, topic, 0, wire.record_batch([b"c"], pid, epoch, 2)) == (0, 2)
        # A retry is answered with the offsets of the first append.
        assert wire.produce(sock, 4, topic, 0, first) == (0, 0)
        assert wire.produce(sock, 5, topic, 0, wire.record_batch([b"x"], pid, epoch, 7))[0] == (
            ERR_OUT_OF_ORDER_SEQUENCE_NUMBER
        )
        # A new epoch starts at sequence 0 (the client's own bump, KIP-360).
        assert wire.produce(sock, 6, topic, 0, wire.record_batch([b"x"], pid, epoch + 1, 3))[0] == (
            ERR_OUT_OF_ORDER_SEQUENCE_NUMBER
        )
        assert wire.produce(sock, 7, topic, 0, wire.record_batch([b"d"], pid, epoch + 1, 0)) == (0, 3)
        assert wire.produce(sock, 8, topic, 0, wire.record_batch([b"x"], pid, epoch, 3))[0] == (
            ERR_INVALID_PRODUCER_EPOCH
        )
    # The state survives kill -9 (rebuilt from the log) and a clean restart
    # (its snapshot): the retry is still known, the sequence goes on.
    retry = wire.record_batch([b"d"], pid, epoch + 1, 0)
    for restart, correlation_id in [(broker.kill9, 10), (broker.stop, 20)]:
        restart()
        broker.start()
        with wire.connect(broker.bootstrap) as sock:
            assert wire.produce(sock, correlation_id, topic, 0, retry) == (0, 3)
            gap = wire.record_batch([b"x"], pid, epoch + 1, 5)
            assert wire.produce(sock, correlation_id + 1, topic, 0, gap)[0] == ERR_OUT_OF_ORDER_SEQUENCE_NUMBER
    with wire.connect(broker.bootstrap) as sock:
        assert wire.produce(sock, 30, topic, 0, wire.record_batch([b"e"], pid, epoch + 1, 1)) == (0, 4)
        # Producer ids never repeat across restarts.
        error, new_pid, _ = wire.init_producer_id(sock, 31)
        assert error == 0 and new_pid != pid
    consumed = clients.consume(broker.bootstrap, topic, {0: 5})
    assert [m.value() for m in consumed[0]] == [b"a", b"b", b"c", b"d", b"e"]


def test_confluent_idempotent_producer(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 3)
    prod = clients.producer(broker.bootstrap, enable_idempotence=True, linger_ms=2)
    log = clients.DeliveryLog()
    for seq in range(300):
        prod.produce(topic, value=sequenced_value(seq, 50), partition=seq % 3, on_delivery=log)
        prod.poll(0)
    clients.flush(prod)
    assert log.errors == []
    got = clients.consume(broker.bootstrap, topic, {p: 100 for p in range(3)})
    for p, msgs in got.items():
        assert [parse_sequenced_value(m.value()) for m in msgs] == list(range(p, 300, 3))


class IdempotentWriter(threading.Thread):
    """Sends sequence-numbered values round-robin over the partitions with one
    idempotent librdkafka producer that lives through every broker crash."""

    def __init__(self, bootstrap, topic, partitions, total, rate_per_s):
        super().__init__(daemon=True)
        self.topic, self.partitions, self.total, self.rate_per_s = topic, partitions, total, rate_per_s
        # Retries run for as long as the test may keep the broker down.
        self.prod = clients.producer(
            bootstrap, enable_idempotence=True, linger_ms=5, message_timeout_ms=90_000,
            batch_num_messages=50, reconnect_backoff_max_ms=200,
        )
        self.log = clients.DeliveryLog()
        self.sent = 0
        self.stopped = threading.Event()

    def run(self):
        start = time.monotonic()
        while self.sent < self.total and not self.stopped.is_set():
            due = start + self.sent / self.rate_per_s
            if time.monotonic() < due:
                self.prod.poll(min(0.01, due - time.monotonic()))
                continue
            try:
                self.prod.produce(
                    self.topic, value=sequenced_value(self.sent, 60),
                    partition=self.sent % self.partitions, on_delivery=self.log,
                )
            except BufferError:
                self.prod.poll(0.05)
                continue
            self.sent += 1
            self.prod.poll(0)


KILLS = 4
CRASH_PARTITIONS = 3
CRASH_RECORDS = 6000


@pytest.mark.shoal_only
def test_idempotent_producer_writes_each_record_once_through_kill9(broker_factory, topic):
    rng = random.Random(f"{SEED}-idempotent-kill9")
    print(f"SHOAL_CRASH_SEED={SEED}")
    broker = broker_factory(shards=2)
    # Small segments: kills land on rolls and snapshots too.
    clients.create_topic(broker.bootstrap, topic, CRASH_PARTITIONS, config={"segment.bytes": str(64 << 10)})
    writer = IdempotentWriter(broker.bootstrap, topic, CRASH_PARTITIONS, CRASH_RECORDS, rate_per_s=1500)
    writer.start()
    try:
        for kill in range(KILLS):
            acked_before = len(writer.log.acked)
            deadline = time.monotonic() + 30
            while len(writer.log.acked) == acked_before < CRASH_RECORDS:
                assert time.monotonic() < deadline, f"kill {kill}: no ack in 30 s"
                if writer.is_alive():
                    time.sleep(0.01)
                else:
                    # Every record is queued and the writer has returned:
                    # delivery reports now come only through this poll.
                    assert writer.sent == CRASH_RECORDS
                    writer.prod.poll(0.01)
            time.sleep(rng.uniform(0.05, 0.6))
            print(f"kill {kill}: after {writer.sent} sent, {len(writer.log.acked)} acked")
            broker.kill9()
            time.sleep(rng.uniform(0.0, 0.5))
            broker.start()
        writer.join(timeout=60)
        assert not writer.is_alive(), "the writer did not finish sending"
        clients.flush(writer.prod, timeout_s=90)
    finally:
        writer.stopped.set()
    assert writer.log.errors == []
    assert len(writer.log.acked) == CRASH_RECORDS
    counts = {p: len(range(p, CRASH_RECORDS, CRASH_PARTITIONS)) for p in range(CRASH_PARTITIONS)}
    assert [clients.watermarks(broker.bootstrap, topic, p)[1] for p in range(CRASH_PARTITIONS)] == [
        counts[p] for p in range(CRASH_PARTITIONS)
    ]
    got = clients.consume(broker.bootstrap, topic, counts)
    for p, msgs in got.items():
        seqs = [parse_sequenced_value(m.value()) for m in msgs]
        assert seqs == list(range(p, CRASH_RECORDS, CRASH_PARTITIONS)), f"partition {p}"
    acked_offsets = sorted((p, o) for p, o, _, _ in writer.log.acked)
    assert acked_offsets == [(p, o) for p in range(CRASH_PARTITIONS) for o in range(counts[p])]


def producer_fields(records):
    """[(producer_id, epoch, base_sequence, record_count)] of the complete
    batches in a Fetch response's records bytes."""
    out = []
    pos = 0
    for base_offset, last_offset in wire.batch_offsets(records):
        (batch_length,) = struct.unpack_from(">i", records, pos + 8)
        producer_id, epoch, base_sequence = struct.unpack_from(">qhi", records, pos + PRODUCER_FIELDS_AT)
        out.append((producer_id, epoch, base_sequence, last_offset - base_offset + 1))
        pos += 12 + batch_length
    return out


def test_bench_produces_as_an_idempotent_producer(broker, topic):
    """`shoal bench produce --idempotent` (perf W1 with idempotence): every
    batch carries its connection's producer id, and each partition's
    sequences run on without a gap, which the broker checked on append."""
    clients.create_topic(broker.bootstrap, topic, 4)
    # The bench does not retry, and Kafka answers NOT_LEADER_OR_FOLLOWER for
    # a moment after CreateTopics: each partition is asked until it is led.
    for partition in range(4):
        clients.watermarks(broker.bootstrap, topic, partition)
    command = [shoal_bin(), "bench", "produce", "--bootstrap", broker.bootstrap, "--topic", topic,
               "--partitions", "4", "--records", "8000", "--record-size", "50", "--connections", "2",
               "--idempotent", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=REQUEST_TIMEOUT_S * 2)
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"errors":{}' in done.stdout.replace(" ", ""), done.stdout
    fetched = wire.fetch(broker.bootstrap, [(topic, p, 0, 64 << 20) for p in range(4)])
    producers, total = set(), 0
    for partition in range(4):
        error, high_watermark, records = fetched[(topic, partition)]
        assert error == 0
        batches = producer_fields(records)
        assert sum(count for *_, count in batches) == high_watermark
        total += high_watermark
        next_sequence = {}
        for producer_id, epoch, base_sequence, count in batches:
            assert producer_id >= 0 and epoch == 0
            assert base_sequence == next_sequence.get(producer_id, 0), (partition, batches)
            next_sequence[producer_id] = base_sequence + count
            producers.add(producer_id)
    assert total == 8000
    assert 1 <= len(producers) <= 2

    refused = subprocess.run([*command[:-1], "--acks", "1"], capture_output=True, text=True,
                             timeout=REQUEST_TIMEOUT_S)
    assert refused.returncode != 0 and "--idempotent needs --acks -1" in refused.stderr
