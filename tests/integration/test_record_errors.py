"""KIP-467: a batch refused for some of its records names them. Produce v8+
answers carry `record_errors` (each bad record's index in its batch and why)
and an `error_message` summing them up, as Kafka's LogValidator writes them:
keyless records on a compacted topic (INVALID_RECORD), timestamps out of the
topic's window (INVALID_TIMESTAMP, which wins when both occur). Nothing of a
refused batch lands. Raw requests, so the fields are seen as sent."""

import re
import struct
import time

import crc32c

import clients
import kafka_wire as wire

ERR_NOT_LEADER_OR_FOLLOWER = 6
ERR_INVALID_TIMESTAMP = 32
ERR_INVALID_RECORD = 87
HOUR_MS = 3_600_000
LEADER_WAIT_S = 10.0
RETRY_INTERVAL_S = 0.1


def field(data):
    return wire.varint(-1) if data is None else wire.varint(len(data)) + data


def batch(records):
    """An uncompressed RecordBatch v2 of (timestamp_ms, key, value) records."""
    base_ts = records[0][0]
    body = b""
    for delta, (ts, key, value) in enumerate(records):
        one = b"\x00" + wire.varint(ts - base_ts) + wire.varint(delta) + field(key) + field(value) + wire.varint(0)
        body += wire.varint(len(one)) + one
    max_ts = max(ts for ts, _, _ in records)
    after_crc = struct.pack(">hiqqqhii", 0, len(records) - 1, base_ts, max_ts, -1, -1, -1, len(records)) + body
    after_length = struct.pack(">ibI", 0, 2, crc32c.crc32c(after_crc)) + after_crc
    return struct.pack(">qi", 0, len(after_length)) + after_length


def produce(bootstrap, topic, data, version=8):
    """One partition's `data` to partition 0 at Produce `version` (7 or 8,
    acks=-1); returns (error_code, base_offset, record_errors, error_message),
    the last two None before v8. Retries while the partition has no leader
    yet (Apache Kafka, just after CreateTopics)."""
    body = struct.pack(">hhi", -1, -1, 10_000) + struct.pack(">i", 1) + wire.string(topic)
    body += struct.pack(">i", 1) + struct.pack(">ii", 0, len(data)) + data
    deadline = time.monotonic() + LEADER_WAIT_S
    while True:
        with wire.connect(bootstrap) as sock:
            sock.sendall(wire.frame(wire.request_header(wire.API_PRODUCE, version, 1) + body))
            reader = wire.Reader(wire.read_response(sock, 1))
        (answer,) = reader.array(lambda: (reader.string(), reader.array(lambda: partition(reader, version))))[0][1]
        if answer[0] != ERR_NOT_LEADER_OR_FOLLOWER or time.monotonic() > deadline:
            return answer
        time.sleep(RETRY_INTERVAL_S)


def partition(reader, version):
    _index, error_code, base_offset, _append_time, _log_start = reader.take(">ihqqq")
    if version < 8:
        return error_code, base_offset, None, None
    record_errors = reader.array(lambda: (reader.take(">i"), reader.string()))
    return error_code, base_offset, record_errors, reader.string()


def now_ms():
    return int(time.time() * 1000)


def out_of_range(timestamp, offset):
    """Kafka's reason for one record out of the window (its bounds follow
    the broker's clock, so they are matched, not compared)."""
    return re.compile(
        rf"Timestamp {timestamp} of message with offset {offset} is out of range\. "
        r"The timestamp should be within \[\d+, \d+\]"
    )


def test_keyless_records_on_a_compacted_topic_are_named(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 1, config={"cleanup.policy": "compact"})
    now = now_ms()
    mixed = batch([(now, b"a", b"1"), (now, None, b"2"), (now, b"c", b"3"), (now, None, b"4")])
    error, base_offset, record_errors, message = produce(broker.bootstrap, topic, mixed)
    reason = f"Compacted topic cannot accept message without key in topic partition {topic}-0"
    assert (error, base_offset) == (ERR_INVALID_RECORD, -1)
    assert record_errors == [(1, reason), (3, reason)]
    assert message == (
        "One or more records have been rejected due to 2 record errors in total, and only showing the first "
        f"three errors at most: [RecordError(batchIndex=1, message='{reason}'), "
        f"RecordError(batchIndex=3, message='{reason}')]"
    )
    # Before v8 the answer has the code only.
    assert produce(broker.bootstrap, topic, mixed, version=7) == (ERR_INVALID_RECORD, -1, None, None)
    # Nothing of the refused batches landed.
    keyed = batch([(now, b"a", b"1")])
    assert produce(broker.bootstrap, topic, keyed)[:3] == (0, 0, [])


def test_records_out_of_the_timestamp_window_are_named(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 1, config={"message.timestamp.before.max.ms": str(HOUR_MS)})
    now = now_ms()
    old, older = now - 2 * HOUR_MS, now - 3 * HOUR_MS
    error, _, record_errors, message = produce(
        broker.bootstrap, topic, batch([(old, None, b"old"), (now, None, b"fresh"), (older, None, b"older")])
    )
    assert error == ERR_INVALID_TIMESTAMP
    assert [index for index, _ in record_errors] == [0, 2]
    assert out_of_range(old, 0).fullmatch(record_errors[0][1]), record_errors
    assert out_of_range(older, 2).fullmatch(record_errors[1][1]), record_errors
    assert message == "One or more records have been rejected due to invalid timestamp"
    assert produce(broker.bootstrap, topic, batch([(now, None, b"fresh")]))[:3] == (0, 0, [])


def test_a_record_missing_its_key_is_named_for_that_and_a_bad_timestamp_wins(broker, topic):
    """Kafka looks at a record's key before its timestamp, and answers
    INVALID_TIMESTAMP when any record's timestamp is refused."""
    clients.create_topic(
        broker.bootstrap,
        topic,
        1,
        config={"cleanup.policy": "compact", "message.timestamp.before.max.ms": str(HOUR_MS)},
    )
    now = now_ms()
    old = now - 2 * HOUR_MS
    error, _, record_errors, message = produce(
        broker.bootstrap, topic, batch([(old, None, b"keyless and old"), (old, b"k", b"old"), (now, b"k", b"fine")])
    )
    assert error == ERR_INVALID_TIMESTAMP
    assert record_errors[0] == (0, f"Compacted topic cannot accept message without key in topic partition {topic}-0")
    assert [index for index, _ in record_errors] == [0, 1]
    assert out_of_range(old, 1).fullmatch(record_errors[1][1]), record_errors
    assert message == "One or more records have been rejected due to invalid timestamp"
