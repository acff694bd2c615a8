"""Every produced batch is checked before it is stored: magic 2 only, CRC-32C,
record count against the offset delta, lengths. A bad batch gets its Kafka
error code for that partition only; the connection stays usable, good batches
in the same request land, and nothing bad is ever read back."""

import struct

import crc32c
import pytest

import clients
import kafka_wire as wire

ERR_CORRUPT_MESSAGE = 2
ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT = 43
ERR_INVALID_RECORD = 87
PRODUCE_VERSION = 3


def record(offset_delta, value):
    body = b"\x00" + wire.varint(0) + wire.varint(offset_delta) + wire.varint(-1) + wire.varint(len(value)) + value + wire.varint(0)
    return wire.varint(len(body)) + body


def batch(values, magic=2, records_count=None, corrupt_crc=False, batch_length_delta=0):
    """A RecordBatch v2 of `values`, with optional lies."""
    records = b"".join(record(i, v) for i, v in enumerate(values))
    count = len(values) if records_count is None else records_count
    after_crc = struct.pack(">hiqqqhii", 0, len(values) - 1, 1_700_000_000_000, 1_700_000_000_000, -1, -1, -1, count) + records
    crc = crc32c.crc32c(after_crc)
    if corrupt_crc:
        crc ^= 0x1
    after_length = struct.pack(">ibI", 0, magic, crc) + after_crc
    return struct.pack(">qi", 0, len(after_length) + batch_length_delta) + after_length


def produce(sock, correlation_id, topic, batches_by_partition):
    """Produce v3 (acks=-1); returns {partition: (error_code, base_offset)}."""
    partitions = b"".join(struct.pack(">ii", p, len(data)) + data for p, data in batches_by_partition.items())
    body = struct.pack(">hhi", -1, -1, 10_000) + struct.pack(">i", 1) + wire.string(topic)
    body += struct.pack(">i", len(batches_by_partition)) + partitions
    sock.sendall(wire.frame(wire.request_header(wire.API_PRODUCE, PRODUCE_VERSION, correlation_id) + body))
    reader = wire.Reader(wire.read_response(sock, correlation_id))
    results = {}
    for _ in range(reader.take(">i")):
        reader.string()
        for _ in range(reader.take(">i")):
            partition, error_code, base_offset, _append_time = reader.take(">ihqq")
            results[partition] = (error_code, base_offset)
    return results


@pytest.mark.shoal_only  # Kafka 4.4 answers INVALID_RECORD to magic 1 and to a bad batch length where shoal answers 43 and 2
def test_bad_batches_get_their_error_and_good_ones_land(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 3)
    with wire.connect(broker.bootstrap) as sock:
        assert produce(sock, 1, topic, {0: batch([b"a", b"b"])}) == {0: (0, 0)}
        cases = [
            (batch([b"x"], corrupt_crc=True), ERR_CORRUPT_MESSAGE),
            (batch([b"x"], magic=1), ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT),
            (batch([b"x"], records_count=5), ERR_INVALID_RECORD),
            (batch([b"x", b"y"], records_count=-1), ERR_INVALID_RECORD),
            (batch([b"x"], batch_length_delta=7), ERR_CORRUPT_MESSAGE),
            (batch([b"x"], batch_length_delta=-40), ERR_CORRUPT_MESSAGE),
            (batch([b"x"])[:-3], ERR_CORRUPT_MESSAGE),
        ]
        for index, (bad, expected) in enumerate(cases):
            answer = produce(sock, 10 + index, topic, {1: bad, 2: batch([b"good-%d" % index])})
            assert answer[1][0] == expected, (index, answer)
            assert answer[2] == (0, index), (index, answer)
        assert produce(sock, 99, topic, {0: batch([b"c"])}) == {0: (0, 2)}
    assert clients.watermarks(broker.bootstrap, topic, 1) == (0, 0)
    consumed = clients.consume(broker.bootstrap, topic, {0: 3, 2: len(cases)})
    assert [m.value() for m in consumed[0]] == [b"a", b"b", b"c"]
    assert [m.value() for m in consumed[2]] == [b"good-%d" % i for i in range(len(cases))]
