"""Produce and consume with confluent-kafka (librdkafka), every compression
codec, acks=all, keys, headers and explicit timestamps."""

import pytest

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
