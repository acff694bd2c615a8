"""Size-based retention: old segments go, the log start offset moves, and a
consumer asking for a deleted offset is reset to the earliest one left."""

import os

import clients
from conftest import wait_until


RECORDS = 400
VALUE_BYTES = 100
SEGMENT_BYTES = 2000
RETENTION_BYTES = 6000
RETENTION_WAIT_S = 30


def segment_sizes(broker, topic):
    """Sizes of the partition's .log files, oldest first; a file that
    retention deletes while it is listed is left out."""
    partition_dir = broker.partition_dir(topic, 0)
    sizes = []
    for name in sorted(n for n in os.listdir(partition_dir) if n.endswith(".log")):
        try:
            sizes.append(os.path.getsize(os.path.join(partition_dir, name)))
        except FileNotFoundError:
            pass
    return sizes


def retention_done(broker, topic):
    """Kafka's rule holds: without its oldest segment the log would be
    smaller than retention.bytes, so nothing more can go."""
    sizes = segment_sizes(broker, topic)
    return sum(sizes) - sizes[0] < RETENTION_BYTES


def test_size_retention_deletes_old_segments_and_resets_consumers(broker_factory, topic):
    broker = broker_factory(overrides={"log.retention.check.interval.ms": "200"}, shards=2)
    clients.create_topic(
        broker.bootstrap,
        topic,
        1,
        config={"internal.segment.bytes": str(SEGMENT_BYTES), "retention.bytes": str(RETENTION_BYTES)},
    )
    # One record per batch, so the segments roll often.
    prod = clients.producer(broker.bootstrap, acks="all", linger_ms=0, batch_num_messages=1)
    log = clients.DeliveryLog()
    for i in range(RECORDS):
        prod.produce(topic, value=b"%08d" % i + b"x" * VALUE_BYTES, partition=0, on_delivery=log)
        prod.flush()
    assert log.errors == []
    assert len(log.acked) == RECORDS
    # Each record takes more than VALUE_BYTES on disk.
    segments_written = RECORDS * VALUE_BYTES // SEGMENT_BYTES

    wait_until(
        lambda: retention_done(broker, topic),
        RETENTION_WAIT_S,
        "retention to delete the old segments",
    )
    low, high = clients.watermarks(broker.bootstrap, topic, 0)
    assert high == RECORDS
    assert 0 < low < RECORDS
    sizes = segment_sizes(broker, topic)
    assert sum(sizes) >= RETENTION_BYTES
    assert len(sizes) < segments_written

    # Offset 0 is gone: auto.offset.reset=earliest starts at the new low
    # watermark.
    first = clients.first_record_from_earliest(broker.bootstrap, topic, RETENTION_WAIT_S)
    assert first.offset() == low
    assert first.value()[:8] == b"%08d" % first.offset()
