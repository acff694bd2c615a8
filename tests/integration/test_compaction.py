"""Log compaction with real clients: a compacted topic keeps the latest value
of every key at its offset, tombstones go after delete.retention.ms, keyless
records are refused, the result survives a restart, and __consumer_offsets is
compacted by the same cleaner."""

import os
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaPythonPartition

import clients
from conftest import wait_until


KEYS = 20
ROUNDS = 8
# Keys 0..DELETED-1 get a tombstone after the last round.
DELETED = 5
FILLER_RECORDS = 150
SEGMENT_BYTES = 1024
DELETE_RETENTION_MS = 4000
CLEAN_WAIT_S = 60
READ_TIMEOUT_S = 30
POLL_LIMIT = 400
CLEANER_OVERRIDES = {"log.cleaner.backoff.ms": "100"}
COMMITS = 400
# One commit is a batch of about 170 bytes, so 400 of them take ~68 KB; the
# compacted partition keeps the latest commit, an emptied batch per cleaned
# segment and the active segment.
COMPACTED_OFFSETS_BYTES_MAX = 10_000


def key(i):
    return b"key-%02d" % i


def read_all(bootstrap, topic):
    """(offset, key, value) of every record of partition 0, from the start to
    the end of the partition, read with librdkafka."""
    c = clients.consumer(bootstrap, auto_offset_reset="earliest")
    out = []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + READ_TIMEOUT_S
        for _ in range(POLL_LIMIT):
            if time.monotonic() >= deadline:
                break
            eof = False
            for msg in c.consume(num_messages=500, timeout=0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        eof = True
                        continue
                    raise KafkaException(err)
                out.append((msg.offset(), msg.key(), msg.value()))
            if eof:
                return out
    finally:
        c.close()
    pytest.fail(f"no end of partition within {READ_TIMEOUT_S}s; read {len(out)} records")


def read_all_kafka_python(bootstrap, topic, end_offset):
    """The same with kafka-python, to the given end offset: its fetcher must
    step over the gaps and emptied batches compaction leaves."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    out = []
    try:
        tp = KafkaPythonPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        deadline = time.monotonic() + READ_TIMEOUT_S
        for _ in range(POLL_LIMIT):
            if consumer.position(tp) >= end_offset or time.monotonic() >= deadline:
                break
            for records in consumer.poll(timeout_ms=500).values():
                out.extend((r.offset, r.key, r.value) for r in records)
        assert consumer.position(tp) >= end_offset, f"kafka-python stopped at {consumer.position(tp)}"
    finally:
        consumer.close()
    return out


def main_keys(records):
    """The records of the test's keys (not the filler), in offset order."""
    return [r for r in records if r[1] != b"filler"]


def compacted(records, expected):
    """Every live key appears once, with its latest value; a deleted key at
    most once, as a tombstone."""
    rows = main_keys(records)
    keys = [k for _, k, _ in rows]
    if len(keys) != len(set(keys)):
        return False
    values = {k: v for _, k, v in rows}
    return all(values.get(key(i)) == expected[key(i)] for i in range(DELETED, KEYS)) and all(
        values.get(key(i), None) is None for i in range(DELETED)
    )


def test_compaction_keeps_latest_values_drops_tombstones_and_survives_restart(broker_factory, topic):
    broker = broker_factory(overrides=CLEANER_OVERRIDES, shards=2)
    clients.create_topic(
        broker.bootstrap,
        topic,
        1,
        config={
            "cleanup.policy": "compact",
            "internal.segment.bytes": str(SEGMENT_BYTES),
            "min.cleanable.dirty.ratio": "0.01",
            "delete.retention.ms": str(DELETE_RETENTION_MS),
        },
    )
    prod = clients.producer(broker.bootstrap, compression_type="zstd", linger_ms=2)
    log = clients.DeliveryLog()
    expected = {}
    for round_ in range(ROUNDS):
        for i in range(KEYS):
            value = b"%s=%d" % (key(i), round_)
            prod.produce(topic, key=key(i), value=value, partition=0, on_delivery=log)
            expected[key(i)] = value
        clients.flush(prod)
    for i in range(DELETED):
        prod.produce(topic, key=key(i), value=None, partition=0, on_delivery=log)
        expected[key(i)] = None
    clients.flush(prod)
    # Filler rolls the segments holding the test's keys out of the active one.
    for n in range(FILLER_RECORDS):
        prod.produce(topic, key=b"filler", value=b"%040d" % n, partition=0, on_delivery=log)
        clients.flush(prod)
    assert log.errors == []
    written = {offset: (k, v) for _, offset, k, v in log.acked}
    total = len(written)

    # A record without a key is refused, as Kafka refuses it.
    refused = clients.DeliveryLog()
    prod.produce(topic, value=b"no key", partition=0, on_delivery=refused)
    clients.flush(prod)
    assert [e.code() for e in refused.errors] == [KafkaError.INVALID_RECORD]

    records = wait_until(
        lambda: (lambda r: r if compacted(r, expected) else None)(read_all(broker.bootstrap, topic)),
        CLEAN_WAIT_S,
        "the cleaner to compact the topic",
        interval_s=0.5,
    )
    for offset, k, v in records:
        assert written[offset] == (k, v), f"offset {offset} holds what was written there"
    low, high = clients.watermarks(broker.bootstrap, topic, 0)
    assert (low, high) == (0, total)
    assert len(records) < total

    # delete.retention.ms after the pass that kept them, tombstones go. Each
    # look adds a filler record: Kafka's cleaner takes a log again only once
    # it is dirty again.
    def tombstones_gone():
        prod.produce(topic, key=b"filler", value=b"%040d" % 0, partition=0, on_delivery=log)
        clients.flush(prod)
        r = read_all(broker.bootstrap, topic)
        present = {k for _, k, _ in r}
        return r if compacted(r, expected) and not any(key(i) in present for i in range(DELETED)) else None

    records = wait_until(tombstones_gone, CLEAN_WAIT_S, "the tombstones to be removed", interval_s=0.5)
    assert [r[:2] for r in main_keys(records)] == sorted(r[:2] for r in main_keys(records))
    assert len(main_keys(records)) == KEYS - DELETED
    total = len(log.acked)

    # kafka-python reads the same across the gaps.
    assert main_keys(read_all_kafka_python(broker.bootstrap, topic, total)) == main_keys(records)

    broker.restart()
    after = read_all(broker.bootstrap, topic)
    assert main_keys(after) == main_keys(records)
    assert clients.watermarks(broker.bootstrap, topic, 0) == (0, total)
    assert broker.panic_lines() == []


def offsets_log_bytes(data_dir):
    partition_dir = os.path.join(data_dir, "__consumer_offsets-0")
    total = 0
    for name in os.listdir(partition_dir):
        if name.endswith(".log"):
            try:
                total += os.path.getsize(os.path.join(partition_dir, name))
            except FileNotFoundError:
                pass
    return total


# Kafka 4 refuses `offsets.topic.segment.bytes` under 1 MiB (its `segment.bytes`
# floor) and has no internal override for `__consumer_offsets`, so this test
# cannot make Kafka roll that topic's segments small enough.
@pytest.mark.shoal_only
def test_consumer_offsets_are_compacted(broker_factory, topic):
    broker = broker_factory(
        overrides={
            **CLEANER_OVERRIDES,
            "offsets.topic.num.partitions": "1",
            "offsets.topic.segment.bytes": str(SEGMENT_BYTES),
        },
        shards=2,
    )
    clients.create_topic(broker.bootstrap, topic, 1)
    group = f"{topic}-group"
    c = clients.consumer(broker.bootstrap, group_id=group)
    try:
        for offset in range(1, COMMITS + 1):
            c.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        c.close()
    wait_until(
        lambda: offsets_log_bytes(broker.data_dir) < COMPACTED_OFFSETS_BYTES_MAX,
        CLEAN_WAIT_S,
        "__consumer_offsets to be compacted",
        interval_s=0.5,
    )

    def committed():
        c = clients.consumer(broker.bootstrap, group_id=group)
        try:
            return c.committed([TopicPartition(topic, 0)], timeout=clients.REQUEST_TIMEOUT_S)[0].offset
        finally:
            c.close()

    assert committed() == COMMITS
    broker.restart()
    assert committed() == COMMITS
    assert broker.panic_lines() == []
