"""Durability across a graceful restart and across kill -9."""

import os
import time

import pytest
from confluent_kafka import TopicPartition

import clients
from load import SequenceProducer
from records import make_records, parse_sequenced_value


PARTITIONS = 3


def test_graceful_restart_keeps_everything(broker, topic):
    clients.create_topic(broker.bootstrap, topic, PARTITIONS)
    first = make_records(seed="restart-1", partitions=PARTITIONS, per_partition=300, big_every=60)
    clients.produce_records(broker.bootstrap, topic, first, compression_type="zstd")

    broker.stop()
    broker.start()
    clients.assert_read_back(broker.bootstrap, topic, first)

    # Offsets carry on where they were, and a second restart keeps both.
    second = make_records(seed="restart-2", partitions=PARTITIONS, per_partition=50)
    log = clients.produce_records(broker.bootstrap, topic, second, compression_type="none")
    for p, offset, _, _ in log.acked:
        assert offset >= 300, f"partition {p}: new record at offset {offset}"
    broker.restart()
    clients.assert_read_back(broker.bootstrap, topic, {p: first[p] + second[p] for p in first})


def test_restart_keeps_topics_and_configs(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 4, config={"retention.ms": "7654321"})
    empty = f"{topic}-empty"
    clients.create_topic(broker.bootstrap, empty, 2)
    broker.restart()
    assert clients.topic_partitions(broker.bootstrap, topic) == [0, 1, 2, 3]
    assert clients.topic_partitions(broker.bootstrap, empty) == [0, 1]
    for p in range(2):
        assert clients.watermarks(broker.bootstrap, empty, p) == (0, 0)


def read_everything(bootstrap, topic):
    """{partition: [values]} from offset 0 to the high watermark, asserting
    the offsets are exactly 0..hw-1."""
    counts = {}
    for p in range(PARTITIONS):
        low, high = clients.watermarks(bootstrap, topic, p)
        assert low == 0, f"partition {p}: log start offset {low}"
        counts[p] = high
    got = clients.consume(bootstrap, topic, counts, timeout_s=60)
    out = {}
    for p, msgs in got.items():
        assert [m.offset() for m in msgs] == list(range(counts[p])), f"partition {p}: gaps in offsets"
        out[p] = [m.value() for m in msgs]
    return out


# acks=1 is answered once the write is done but before any fsync: a killed
# process (not a crashed machine) still must not lose it.
@pytest.mark.parametrize("acks", ["all", "1"])
def test_kill9_mid_stream_loses_no_acknowledged_record(broker, topic, acks):
    clients.create_topic(broker.bootstrap, topic, PARTITIONS)
    acked = []  # (partition, offset, value) over all rounds
    next_seq = 0
    rounds = 4
    for round_index in range(rounds):
        writer = SequenceProducer(broker.bootstrap, topic, PARTITIONS, next_seq, acks=acks)
        writer.start()
        try:
            # Kill at a different depth each round, while records are still
            # in flight.
            target = 200 * (round_index + 1)
            deadline = time.monotonic() + 30
            while writer.acked_count() < target:
                assert broker.is_running(), f"broker died in round {round_index}"
                assert writer.is_alive() and writer.failure is None, writer.failure
                assert not writer.log.errors, writer.log.errors[:3]
                assert time.monotonic() < deadline, f"only {writer.acked_count()} acks in 30s"
                time.sleep(0.01)
            broker.kill9()
        finally:
            writer.stop()
        # Errors after the kill are expected (purged or timed out), never
        # before it; acks are what count.
        acked.extend((p, o, v) for p, o, _, v in writer.log.acked)
        next_seq = writer.next_seq

        broker.start()
        values = read_everything(broker.bootstrap, topic)
        for p, offset, value in acked:
            assert offset < len(values[p]), f"acked record {p}/{offset} lost (hw {len(values[p])})"
            assert values[p][offset] == value, f"acked record {p}/{offset} differs"
        for p, vals in values.items():
            for offset, value in enumerate(vals):
                seq = parse_sequenced_value(value)
                assert seq % PARTITIONS == p, f"{p}/{offset} holds seq {seq} of another partition"
                assert seq < next_seq, f"{p}/{offset} holds seq {seq} never produced"

    assert len(acked) >= 200 * (1 + 2 + 3 + 4)


def test_kill9_idle_broker_restarts_with_data(broker, topic):
    clients.create_topic(broker.bootstrap, topic, PARTITIONS)
    records = make_records(seed="kill9-idle", partitions=PARTITIONS, per_partition=100)
    clients.produce_records(broker.bootstrap, topic, records)
    broker.kill9()
    broker.start()
    clients.assert_read_back(broker.bootstrap, topic, records)


def segment_files(data_dir, partition_dir_name):
    """{suffix: sorted file names} of the one directory named
    partition_dir_name under data_dir."""
    found = [root for root, dirs, _ in os.walk(data_dir) if os.path.basename(root) == partition_dir_name]
    assert len(found) == 1, f"directories named {partition_dir_name}: {found}"
    names = os.listdir(found[0])
    return {suffix: sorted(n for n in names if n.endswith(suffix)) for suffix in (".log", ".index", ".timeindex")}


# Some batches here are bigger than a segment: shoal writes such a batch as a
# segment of its own, where Kafka refuses it (RECORD_BATCH_TOO_LARGE).
@pytest.mark.shoal_only
def test_many_segments_survive_restart(broker, topic):
    segment_bytes = 100_000
    clients.create_topic(broker.bootstrap, topic, 2, config={"internal.segment.bytes": str(segment_bytes)})
    # ~600 KiB per partition, with some records bigger than a whole segment.
    records = make_records(seed="segments", partitions=2, per_partition=600, big_every=150)
    clients.produce_records(broker.bootstrap, topic, records, compression_type="none", batch_num_messages=20)
    broker.stop()

    for p in range(2):
        files = segment_files(broker.data_dir, f"{topic}-{p}")
        logs = files[".log"]
        assert len(logs) >= 5, f"partition {p}: only {logs}"
        assert logs[0] == "00000000000000000000.log"
        assert all(len(n) == len("00000000000000000000.log") and n[:20].isdigit() for n in logs), logs
        for suffix in (".index", ".timeindex"):
            assert [n[:20] for n in files[suffix]] == [n[:20] for n in logs], f"partition {p} {suffix}"

    broker.start()
    clients.assert_read_back(broker.bootstrap, topic, records)
    got = clients.consume(broker.bootstrap, topic, {1: 600 - 451}, start_offsets={1: 451})[1]
    assert [m.value() for m in got] == [r.value for r in records[1][451:]]
    c = clients.consumer(broker.bootstrap)
    try:
        ts = records[0][333].timestamp_ms
        (found,) = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=clients.REQUEST_TIMEOUT_S)
        assert found.offset == 333
    finally:
        c.close()


def test_deleted_topic_stays_deleted_after_restart(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 2)
    keep = f"{topic}-keep"
    clients.create_topic(broker.bootstrap, keep, 1)
    prod = clients.producer(broker.bootstrap)
    for i in range(10):
        prod.produce(topic, value=b"gone %d" % i, partition=i % 2)
        prod.produce(keep, value=b"kept %d" % i, partition=0)
    clients.flush(prod)
    # A live producer refreshes metadata for the topics it knows, and a
    # Metadata request for a missing topic creates it (auto.create.topics.enable),
    # exactly as with Kafka: let it go before the topic does.
    del prod
    admin = clients.admin(broker.bootstrap)
    admin.delete_topics([topic], request_timeout=clients.REQUEST_TIMEOUT_S)[topic].result(timeout=clients.REQUEST_TIMEOUT_S)
    deadline = time.monotonic() + clients.REQUEST_TIMEOUT_S
    while clients.topic_partitions(broker.bootstrap, topic, admin) is not None:
        assert time.monotonic() < deadline, f"{topic} still listed after delete"
        time.sleep(0.05)

    broker.restart()
    assert clients.topic_partitions(broker.bootstrap, topic) is None
    got = clients.consume(broker.bootstrap, keep, {0: 10})[0]
    assert [m.value() for m in got] == [b"kept %d" % i for i in range(10)]
    clients.create_topic(broker.bootstrap, topic, 1)
    assert clients.watermarks(broker.bootstrap, topic, 0) == (0, 0)
