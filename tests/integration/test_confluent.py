"""Produce and consume with confluent-kafka (librdkafka), every compression
codec, acks=all, keys, headers and explicit timestamps."""

import threading
import time

import pytest
from confluent_kafka import KafkaError, TopicPartition

import clients
from records import make_records

PARTITIONS = 3
PER_PARTITION = 200


@pytest.mark.parametrize("compression", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_round_trip(broker, topic, compression):
    clients.create_topic(broker.bootstrap, topic, PARTITIONS)
    records = make_records(seed=compression, partitions=PARTITIONS, per_partition=PER_PARTITION, big_every=50)
    log = clients.produce_records(broker.bootstrap, topic, records, compression_type=compression)

    # Delivery reports: every record acknowledged, at contiguous offsets in
    # the order produced.
    by_partition = {p: [] for p in records}
    for p, offset, key, _ in log.acked:
        by_partition[p].append((offset, key))
    for p, rows in records.items():
        assert sorted(by_partition[p]) == [(i, r.key) for i, r in enumerate(rows)]

    clients.assert_read_back(broker.bootstrap, topic, records)
    for p, rows in records.items():
        assert clients.watermarks(broker.bootstrap, topic, p) == (0, len(rows))


def test_seek_to_middle(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 1)
    records = make_records(seed="seek", partitions=1, per_partition=100)
    clients.produce_records(broker.bootstrap, topic, records, compression_type="lz4", batch_num_messages=7)
    got = clients.consume(broker.bootstrap, topic, {0: 63}, start_offsets={0: 37})
    assert [m.offset() for m in got[0]] == list(range(37, 100))
    assert [m.value() for m in got[0]] == [r.value for r in records[0][37:]]


def test_null_key_and_value(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 1)
    prod = clients.producer(broker.bootstrap)
    log = clients.DeliveryLog()
    prod.produce(topic, value=None, key=b"tombstone", partition=0, on_delivery=log)
    prod.produce(topic, value=b"no key", partition=0, on_delivery=log)
    prod.produce(topic, value=b"", key=b"", partition=0, on_delivery=log)
    clients.flush(prod)
    assert log.errors == []
    msgs = clients.consume(broker.bootstrap, topic, {0: 3})[0]
    assert [(m.key(), m.value()) for m in msgs] == [(b"tombstone", None), (None, b"no key"), (b"", b"")]


def test_many_partitions_across_shards(broker_factory, topic):
    broker = broker_factory(shards=2)
    partitions = 16
    clients.create_topic(broker.bootstrap, topic, partitions)
    records = make_records(seed="many", partitions=partitions, per_partition=25)
    # One linger window gathers all partitions into the same ProduceRequest,
    # which the broker has to split over its shards and answer as one.
    clients.produce_records(broker.bootstrap, topic, records, linger_ms=50, compression_type="gzip")
    clients.assert_read_back(broker.bootstrap, topic, records)


def test_offsets_for_times(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 1)
    records = make_records(seed="times", partitions=1, per_partition=80)
    clients.produce_records(broker.bootstrap, topic, records, batch_num_messages=10)
    c = clients.consumer(broker.bootstrap)
    try:
        for index in (0, 37, 79):
            ts = records[0][index].timestamp_ms
            (found,) = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=clients.REQUEST_TIMEOUT_S)
            assert found.error is None
            assert found.offset == index
            # A time between two records finds the later one.
            (found,) = c.offsets_for_times([TopicPartition(topic, 0, ts - 1)], timeout=clients.REQUEST_TIMEOUT_S)
            assert found.offset == index
        (found,) = c.offsets_for_times(
            [TopicPartition(topic, 0, records[0][-1].timestamp_ms + 1)], timeout=clients.REQUEST_TIMEOUT_S
        )
        assert found.offset == -1  # past the last record: no offset (Kafka's OFFSET_END)
    finally:
        c.close()


def test_long_poll_is_woken_by_append(broker, topic):
    """A consumer waiting at the end of the log (fetch.wait.max.ms well above
    the bound below) gets a new record as soon as it is appended. Its first
    EOF comes only when the broker ends the first long poll, after up to
    fetch.wait.max.ms."""
    clients.create_topic(broker.bootstrap, topic, 1)
    c = clients.consumer(broker.bootstrap, fetch_wait_max_ms=8000, fetch_min_bytes=1)
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 30
        caught_up = False
        while not caught_up:
            assert time.monotonic() < deadline, "no EOF on an empty partition"
            msg = c.poll(0.5)
            caught_up = msg is not None and msg.error() is not None and msg.error().code() == KafkaError._PARTITION_EOF
        prod = clients.producer(broker.bootstrap, linger_ms=0)
        prod.produce(topic, value=b"wake up", partition=0)
        clients.flush(prod)
        acked_at = time.monotonic()
        got = None
        while got is None and time.monotonic() - acked_at < 5:
            msg = c.poll(0.2)
            if msg is not None and msg.error() is None:
                got = msg
        assert got is not None, "long poll not woken within 5 s of the append"
        assert (got.offset(), got.value()) == (0, b"wake up")
    finally:
        c.close()


@pytest.mark.parametrize("acks", ["0", "1"])
def test_weaker_acks_round_trip(broker, topic, acks):
    clients.create_topic(broker.bootstrap, topic, 1)
    prod = clients.producer(broker.bootstrap, acks=acks)
    log = clients.DeliveryLog()
    values = [f"acks={acks} #{i}".encode() for i in range(200)]
    for value in values:
        prod.produce(topic, value=value, partition=0, on_delivery=log)
    clients.flush(prod)
    assert log.errors == []
    got = clients.consume(broker.bootstrap, topic, {0: len(values)})[0]
    assert [m.value() for m in got] == values
    assert [m.offset() for m in got] == list(range(len(values)))


def test_fetch_past_the_end_is_out_of_range(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 1)
    prod = clients.producer(broker.bootstrap)
    for i in range(10):
        prod.produce(topic, value=b"v%d" % i, partition=0)
    clients.flush(prod)
    c = clients.consumer(broker.bootstrap, auto_offset_reset="error")
    try:
        c.assign([TopicPartition(topic, 0, 1000)])
        deadline = time.monotonic() + 20
        error = None
        while error is None:
            assert time.monotonic() < deadline, "no out-of-range error for offset 1000 of 10"
            msg = c.poll(0.5)
            if msg is not None:
                assert msg.error() is not None, f"got a record at offset {msg.offset()}"
                error = msg.error()
        assert error.code() == KafkaError._AUTO_OFFSET_RESET, error
    finally:
        c.close()


def test_small_fetch_limits_still_return_big_records(broker, topic):
    """A batch larger than max.partition.fetch.bytes and fetch.max.bytes is
    still returned whole (Kafka returns at least one batch), so a consumer
    with small limits never gets stuck."""
    clients.create_topic(broker.bootstrap, topic, 1)
    records = make_records(seed="small-fetch", partitions=1, per_partition=12, big_every=3)
    clients.produce_records(broker.bootstrap, topic, records, compression_type="none", linger_ms=0)
    got = clients.consume(
        broker.bootstrap,
        topic,
        {0: 12},
        consumer_config={
            "message.max.bytes": 1000,
            "max.partition.fetch.bytes": 1024,
            "fetch.max.bytes": 1024,
            "receive.message.max.bytes": 1_000_000,
        },
    )[0]
    assert [m.value() for m in got] == [r.value for r in records[0]]


def test_concurrent_producers_keep_their_order(broker, topic):
    partitions = 3
    clients.create_topic(broker.bootstrap, topic, partitions)
    writers = 4
    per_writer = 600
    errors = []

    def write(writer_id):
        # Without idempotence a retried batch may land after later ones
        # (Kafka answers retriable errors for a moment after CreateTopics):
        # one request in flight keeps each writer's order through retries.
        prod = clients.producer(
            broker.bootstrap, linger_ms=1, batch_num_messages=25, max_in_flight_requests_per_connection=1
        )
        log = clients.DeliveryLog()
        for i in range(per_writer):
            prod.produce(topic, key=b"w%d" % writer_id, value=b"%d:%d" % (writer_id, i), partition=i % partitions, on_delivery=log)
            prod.poll(0)
        if prod.flush(60) != 0 or log.errors:
            errors.append((writer_id, log.errors[:3]))

    threads = [threading.Thread(target=write, args=(w,), daemon=True) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert not any(t.is_alive() for t in threads)
    assert errors == []

    per_partition = {p: len(range(p, per_writer, partitions)) * writers for p in range(partitions)}
    got = clients.consume(broker.bootstrap, topic, per_partition, timeout_s=60)
    for p, msgs in got.items():
        assert [m.offset() for m in msgs] == list(range(per_partition[p]))
        for w in range(writers):
            mine = [m.value() for m in msgs if m.key() == b"w%d" % w]
            assert mine == [b"%d:%d" % (w, i) for i in range(p, per_writer, partitions)], f"writer {w} partition {p}"
