"""The partition log follows transactions, without a transaction
coordinator: TRANSACTIONAL batches produced by hand (a producer id from
InitProducerId), COMMIT and ABORT markers written with WriteTxnMarkers, and
raw Fetch v11 read_committed against read_uncommitted (the last stable
offset, the aborted transactions), ListOffsets with isolation_level 1, and
a confluent-kafka read_committed consumer that gets only committed records,
across kill -9 and a clean restart; and Kafka's own tools reading the
producer state (DescribeProducers) and the `.txnindex`."""

import glob
import os
import struct

import pytest

import clients
import kafka_tools
import kafka_wire as wire

API_LIST_OFFSETS = 2
API_WRITE_TXN_MARKERS = 27
FETCH_VERSION = 11
LIST_OFFSETS_VERSION = 2
WRITE_TXN_MARKERS_VERSION = 1
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20
READ_UNCOMMITTED = 0
READ_COMMITTED = 1
ERR_INVALID_PRODUCER_EPOCH = 47
ERR_INVALID_RECORD = 87


def txn_batch(values, producer_id, epoch, base_sequence, attributes=ATTR_TRANSACTIONAL, key=None):
    return wire.record_batch(values, producer_id, epoch, base_sequence, attributes, key)


def init_producer_id(sock, correlation_id):
    error, producer_id, epoch = wire.init_producer_id(sock, correlation_id)
    assert error == 0
    return producer_id, epoch


def write_marker(sock, correlation_id, topic, producer_id, epoch, commit):
    """WriteTxnMarkers v1, one marker for partition 0: its error code."""
    topic_entry = wire.compact_string(topic) + wire.compact_array([struct.pack(">i", 0)]) + b"\x00"
    marker = struct.pack(">qh?", producer_id, epoch, commit) + wire.compact_array([topic_entry])
    marker += struct.pack(">i", 0) + b"\x00"  # coordinator epoch, tags
    body = wire.compact_array([marker]) + b"\x00"
    response = wire.call(sock, API_WRITE_TXN_MARKERS, WRITE_TXN_MARKERS_VERSION, correlation_id, body, True)
    reader = wire.Reader(response)
    assert reader.uvarint() == 2  # one marker
    assert reader.take(">q") == producer_id
    assert reader.uvarint() == 2  # one topic
    reader.compact_string()
    assert reader.uvarint() == 2  # one partition
    partition, error = reader.take(">ih")
    assert partition == 0
    return error


def fetch(sock, correlation_id, topic, offset, isolation_level):
    """Fetch v11 of partition 0 from `offset`: (error, high watermark, last
    stable offset, aborted transactions or None, [(base, last) of batches])."""
    body = struct.pack(">iiiib", -1, 0, 0, 1 << 20, isolation_level)
    body += struct.pack(">ii", 0, -1)  # no session
    body += struct.pack(">i", 1) + wire.string(topic)
    body += struct.pack(">i", 1) + struct.pack(">iiqqi", 0, -1, offset, -1, 1 << 20)
    body += struct.pack(">i", 0) + wire.string("")  # forgotten topics, rack
    reader = wire.Reader(wire.call(sock, wire.API_FETCH, FETCH_VERSION, correlation_id, body))
    reader.take(">ihi")  # throttle, error, session
    assert reader.take(">i") == 1
    reader.string()
    assert reader.take(">i") == 1
    _index, error, high_watermark, last_stable_offset, _log_start = reader.take(">ihqqq")
    count = reader.take(">i")
    aborted = None if count < 0 else [reader.take(">qq") for _ in range(count)]
    reader.take(">i")  # preferred read replica
    size = reader.take(">i")
    records = reader.data[reader.pos : reader.pos + max(size, 0)]
    return error, high_watermark, last_stable_offset, aborted, wire.batch_offsets(records)


def latest_offset(sock, correlation_id, topic, isolation_level):
    """ListOffsets v2 latest (-1) of partition 0."""
    body = struct.pack(">ib", -1, isolation_level) + struct.pack(">i", 1) + wire.string(topic)
    body += struct.pack(">i", 1) + struct.pack(">iq", 0, -1)
    reader = wire.Reader(wire.call(sock, API_LIST_OFFSETS, LIST_OFFSETS_VERSION, correlation_id, body))
    reader.take(">i")
    reader.take(">i")
    reader.string()
    reader.take(">i")
    _partition, error, _timestamp, offset = reader.take(">ihqq")
    assert error == 0
    return offset


def consumed_values(bootstrap, topic, count, isolation_level):
    got = clients.consume(bootstrap, topic, {0: count}, consumer_config={"isolation.level": isolation_level})
    return [m.value() for m in got[0]]


@pytest.mark.shoal_only  # restarts the broker
def test_read_committed_sees_committed_records_only_across_restarts(broker_factory, topic):
    broker = broker_factory(shards=2)
    clients.create_topic(broker.bootstrap, topic, 1)
    with wire.connect(broker.bootstrap) as sock:
        committed_pid, epoch = init_producer_id(sock, 1)
        aborted_pid, aborted_epoch = init_producer_id(sock, 2)
        assert wire.produce(sock, 3, topic, 0, txn_batch([b"a1", b"a2"], committed_pid, epoch, 0)) == (0, 0)
        assert wire.produce(sock, 4, topic, 0, txn_batch([b"b1"], aborted_pid, aborted_epoch, 0)) == (0, 2)
        assert wire.produce(sock, 5, topic, 0, txn_batch([b"a3"], committed_pid, epoch, 2)) == (0, 3)
        # Both transactions are open: nothing is stable yet.
        assert fetch(sock, 6, topic, 0, READ_COMMITTED) == (0, 4, 0, [], [])
        error, hw, lso, aborted, batches = fetch(sock, 7, topic, 0, READ_UNCOMMITTED)
        assert (error, hw, lso, aborted) == (0, 4, 0, None)
        assert batches == [(0, 1), (2, 2), (3, 3)]
        assert latest_offset(sock, 8, topic, READ_COMMITTED) == 0
        assert latest_offset(sock, 9, topic, READ_UNCOMMITTED) == 4

        assert write_marker(sock, 10, topic, committed_pid, epoch, True) == 0
        assert fetch(sock, 11, topic, 0, READ_COMMITTED)[:3] == (0, 5, 2)
        assert write_marker(sock, 12, topic, aborted_pid, aborted_epoch, False) == 0
        # A marker from an older epoch than the producer's is refused.
        assert write_marker(sock, 13, topic, aborted_pid, aborted_epoch - 1, False) == ERR_INVALID_PRODUCER_EPOCH
        error, hw, lso, aborted, batches = fetch(sock, 14, topic, 0, READ_COMMITTED)
        assert (error, hw, lso) == (0, 6, 6)
        assert aborted == [(aborted_pid, 2)]
        assert batches == [(0, 1), (2, 2), (3, 3), (4, 4), (5, 5)]
        # A third transaction stays open across the restarts.
        assert wire.produce(sock, 15, topic, 0, txn_batch([b"a4"], committed_pid, epoch, 3)) == (0, 6)
        assert latest_offset(sock, 16, topic, READ_COMMITTED) == 6
        # A client may not write a marker (Kafka's rule): it would end the transaction.
        abort = txn_batch([b"\x00\x00\x00\x00\x00\x00"], committed_pid, epoch, -1,
                          ATTR_TRANSACTIONAL | ATTR_CONTROL, key=b"\x00\x00\x00\x00")
        assert wire.produce(sock, 17, topic, 0, abort)[0] == ERR_INVALID_RECORD
        assert latest_offset(sock, 18, topic, READ_COMMITTED) == 6

    assert consumed_values(broker.bootstrap, topic, 3, "read_committed") == [b"a1", b"a2", b"a3"]
    assert consumed_values(broker.bootstrap, topic, 5, "read_uncommitted") == [b"a1", b"a2", b"b1", b"a3", b"a4"]
    for restart in [broker.kill9, broker.stop]:
        restart()
        broker.start()
        with wire.connect(broker.bootstrap) as sock:
            error, hw, lso, aborted, _ = fetch(sock, 20, topic, 0, READ_COMMITTED)
            assert (error, hw, lso, aborted) == (0, 7, 6, [(aborted_pid, 2)])
        assert consumed_values(broker.bootstrap, topic, 3, "read_committed") == [b"a1", b"a2", b"a3"]

    with wire.connect(broker.bootstrap) as sock:
        assert write_marker(sock, 30, topic, committed_pid, epoch, True) == 0
        assert fetch(sock, 31, topic, 7, READ_COMMITTED)[:4] == (0, 8, 8, [])
    assert consumed_values(broker.bootstrap, topic, 4, "read_committed") == [b"a1", b"a2", b"a3", b"a4"]


TRANSACTIONS = "org.apache.kafka.tools.TransactionsCommand"


@pytest.mark.shoal_only  # stops the broker and reads its files
def test_kafka_tools_read_the_txnindex_and_describe_producers(broker_factory, topic):
    """kafka-transactions.sh describe-producers shows each producer's state,
    and Kafka's DumpLogSegments reads the `.txnindex` shoal wrote."""
    kafka_tools.require_tools()
    broker = broker_factory(shards=1)
    clients.create_topic(broker.bootstrap, topic, 1)
    with wire.connect(broker.bootstrap) as sock:
        aborted_pid, epoch = init_producer_id(sock, 1)
        open_pid, open_epoch = init_producer_id(sock, 2)
        assert wire.produce(sock, 3, topic, 0, txn_batch([b"x1", b"x2"], aborted_pid, epoch, 0)) == (0, 0)
        assert write_marker(sock, 4, topic, aborted_pid, epoch, False) == 0
        assert wire.produce(sock, 5, topic, 0, txn_batch([b"y1"], open_pid, open_epoch, 0)) == (0, 3)
    out = kafka_tools.run(TRANSACTIONS, "--bootstrap-server", broker.bootstrap, "describe-producers",
                          "--topic", topic, "--partition", 0)
    rows = {int(row["ProducerId"]): row for row in kafka_tools.table(out, "ProducerId")}
    assert set(rows) == {aborted_pid, open_pid}, out
    assert rows[aborted_pid]["LastSequence"] == "1"
    assert rows[aborted_pid]["LatestCoordinatorEpoch"] == "0"
    assert rows[aborted_pid]["CurrentTransactionStartOffset"] == "None"
    assert rows[open_pid]["LatestCoordinatorEpoch"] == "-1"
    assert rows[open_pid]["CurrentTransactionStartOffset"] == "3"

    broker.stop()
    [index] = glob.glob(os.path.join(broker.data_dir, f"{topic}-0", "*.txnindex"))
    out = kafka_tools.run(kafka_tools.DUMP_LOG, "--files", index)
    entries = [line for line in out.splitlines() if line.startswith("version:")]
    assert entries == [f"version: 0 producerId: {aborted_pid} firstOffset: 0 lastOffset: 2 lastStableOffset: 3"], out
