"""The cleaner and transactions, with librdkafka's transactional producer on
a compacted topic: the cleaner drops an aborted transaction's records
whatever their keys (a committed value is never hidden by an aborted one),
keeps the committed ones by compaction's rules, and removes the ABORT marker
delete.retention.ms after its data is gone; a read_committed consumer from
the start sees the same latest values before and after."""

import struct
import time
import uuid

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition

import clients
import kafka_wire as wire
from conftest import wait_until

KEYS = 10
# Keys 0..ABORTED_KEYS-1 get an aborted value after their committed one.
ABORTED_KEYS = 5
# Segments roll by age (Kafka 4 refuses a segment.bytes under 1 MiB), as
# filler is written while the test waits: Kafka's cleaner runs only on a
# dirty ratio, so each of the marker's passes needs new dirty segments.
SEGMENT_MS = 100
FILLER_PAUSE_S = 0.02
DELETE_RETENTION_MS = 3000
CLEAN_WAIT_S = 60
CALL_TIMEOUT_S = 30
READ_TIMEOUT_S = 30
FILLER_RECORDS = 20
FILLER_PER_CHECK = 3
# Each Fetch reads up to a segment's end: more than the topic's segments.
FETCHES_MAX = 1000
CLEANER_OVERRIDES = {"log.cleaner.backoff.ms": "100"}
# RecordBatch v2: where the attributes and the records start.
ATTRIBUTES_AT = 21
LAST_OFFSET_DELTA_AT = 23
RECORDS_AT = 61
ATTR_CONTROL = 0x20
CONTROL_TYPE_ABORT = 0


def key(i):
    return b"key-%d" % i


def read_latest(bootstrap, topic, isolation):
    """{key: latest value} of the test's keys, and every value read, from
    the start to the end `isolation` lets a consumer see."""
    c = clients.consumer(bootstrap, isolation_level=isolation, auto_offset_reset="earliest")
    latest, values = {}, []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + READ_TIMEOUT_S
        while time.monotonic() < deadline:
            for msg in c.consume(num_messages=500, timeout=0.5):
                err = msg.error()
                if err is None:
                    if msg.key() != b"filler":
                        latest[msg.key()] = msg.value()
                        values.append(msg.value())
                elif err.code() == KafkaError._PARTITION_EOF:
                    return latest, values
                else:
                    raise KafkaException(err)
    finally:
        c.close()
    pytest.fail(f"no end of {topic} within {READ_TIMEOUT_S}s")


def varint(data, pos):
    """A zig-zag varint at pos: (value, next pos)."""
    shift, raw = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        raw |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return (raw >> 1) ^ -(raw & 1), pos


def batches(records):
    """(base offset, last offset, attributes, records bytes or None for an
    empty batch) of the complete batches of a Fetch response's records."""
    out, pos = [], 0
    while pos + RECORDS_AT <= len(records):
        base_offset, length = struct.unpack_from(">qi", records, pos)
        end = pos + 12 + length
        if end > len(records):
            break
        (attributes,) = struct.unpack_from(">h", records, pos + ATTRIBUTES_AT)
        (delta,) = struct.unpack_from(">i", records, pos + LAST_OFFSET_DELTA_AT)
        (count,) = struct.unpack_from(">i", records, pos + RECORDS_AT - 4)
        out.append((base_offset, base_offset + delta, attributes, records[pos + RECORDS_AT : end] if count else None))
        pos = end
    return out


def control_type(record):
    """The type in a control record's key (version i16, type i16)."""
    _, at = varint(record, 0)  # record length
    at += 1  # attributes
    for _ in range(3):  # timestamp delta, offset delta, key length
        _, at = varint(record, at)
    return struct.unpack_from(">h", record, at + 2)[0]


def abort_markers(bootstrap, topic):
    """Base offsets of the ABORT markers raw read_uncommitted Fetches return
    from the start of the partition to its end."""
    found, offset = [], 0
    for _ in range(FETCHES_MAX):
        _, high_watermark, records = wire.fetch(bootstrap, [(topic, 0, offset, 1 << 20)])[(topic, 0)]
        got = batches(records)
        for base_offset, _, attributes, record in got:
            if attributes & ATTR_CONTROL and record is not None and control_type(record) == CONTROL_TYPE_ABORT:
                found.append(base_offset)
        if not got:
            return found
        offset = got[-1][1] + 1
        if offset >= high_watermark:
            return found
    pytest.fail(f"{topic} not read to its end in {FETCHES_MAX} fetches")


def test_cleaning_drops_aborted_records_then_their_marker(broker_factory, topic):
    broker = broker_factory(overrides=CLEANER_OVERRIDES)
    b = broker.bootstrap
    clients.create_topic(
        b,
        topic,
        1,
        config={
            "cleanup.policy": "compact",
            "segment.ms": str(SEGMENT_MS),
            "min.cleanable.dirty.ratio": "0.01",
            "delete.retention.ms": str(DELETE_RETENTION_MS),
        },
    )
    prod = Producer(
        {
            "bootstrap.servers": b,
            "transactional.id": f"txn-{uuid.uuid4().hex[:10]}",
            "linger.ms": 5,
            "logger": clients.LIBRDKAFKA_LOG,
        }
    )
    prod.init_transactions(CALL_TIMEOUT_S)
    # Every key committed; then newer values of the first keys, and of keys
    # written nowhere else, aborted; then the last keys committed again.
    transactions = [
        ([(key(i), b"committed-%d" % i) for i in range(KEYS)], True),
        (
            [(key(i), b"aborted-%d" % i) for i in range(ABORTED_KEYS)]
            + [(b"aborted-only-%d" % i, b"aborted-%d" % i) for i in range(ABORTED_KEYS)],
            False,
        ),
        ([(key(i), b"again-%d" % i) for i in range(ABORTED_KEYS, KEYS)], True),
    ]
    for records, commit in transactions:
        prod.begin_transaction()
        for k, v in records:
            prod.produce(topic, key=k, value=v, partition=0)
        clients.flush(prod)
        if commit:
            prod.commit_transaction(CALL_TIMEOUT_S)
        else:
            prod.abort_transaction(CALL_TIMEOUT_S)
    expected = {key(i): b"committed-%d" % i for i in range(ABORTED_KEYS)}
    expected.update({key(i): b"again-%d" % i for i in range(ABORTED_KEYS, KEYS)})
    committed_before, _ = read_latest(b, topic, "read_committed")
    assert committed_before == expected

    # Filler rolls the transactions' segment out of the active one.
    filler = clients.producer(b)

    def fill(count):
        for n in range(count):
            filler.produce(topic, key=b"filler", value=b"%040d" % n, partition=0)
            clients.flush(filler)
            time.sleep(FILLER_PAUSE_S)

    fill(FILLER_RECORDS)

    def aborted_gone():
        fill(FILLER_PER_CHECK)
        latest, values = read_latest(b, topic, "read_uncommitted")
        return latest if not any(v.startswith(b"aborted") for v in values) else None

    latest = wait_until(aborted_gone, CLEAN_WAIT_S, "the aborted records to be cleaned", interval_s=0.5)
    # Compaction kept the committed value of every key.
    assert latest == expected
    assert read_latest(b, topic, "read_committed")[0] == expected
    # delete.retention.ms after its data went, the marker goes too.
    def marker_gone():
        fill(FILLER_PER_CHECK)
        return abort_markers(b, topic) == []

    wait_until(marker_gone, CLEAN_WAIT_S, "the ABORT marker to be removed", interval_s=0.5)
    assert read_latest(b, topic, "read_committed")[0] == expected

    # The producer's state survived the cleaning: it goes on.
    prod.begin_transaction()
    prod.produce(topic, key=key(0), value=b"after", partition=0)
    prod.commit_transaction(CALL_TIMEOUT_S)
    broker.restart()
    # The restart finds no aborted transaction the cleaner dropped (one
    # would hide every later batch of the producer from read_committed).
    after = {**expected, key(0): b"after"}
    wait_until(
        lambda: read_latest(b, topic, "read_committed")[0] == after,
        CLEAN_WAIT_S,
        "read_committed to see the last transaction",
        interval_s=0.5,
    )
    assert broker.panic_lines() == []
