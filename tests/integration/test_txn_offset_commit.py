"""TxnOffsetCommit over a raw socket: the checks made before the group
coordinator (partitions that do not exist, an empty group id), and on shoal
the offsets of a transaction that never ends staying invisible to
OffsetFetch, a fenced producer epoch refused."""

import struct

import pytest

import clients
import kafka_wire as wire

API_OFFSET_FETCH = 9
API_TXN_OFFSET_COMMIT = 28
# The newest non-flexible versions: what kafka_wire encodes.
TXN_OFFSET_COMMIT_VERSION = 2
OFFSET_FETCH_VERSION = 1
ERR_INVALID_GROUP_ID = 24
ERR_INVALID_PRODUCER_EPOCH = 47
PRODUCER_ID = 4_000


def txn_offset_commit(sock, correlation_id, group, producer_epoch, offsets):
    """TxnOffsetCommit v2 of {(topic, partition): offset}: {(topic, partition): error}."""
    topics = {}
    for (topic, partition), offset in offsets.items():
        topics.setdefault(topic, []).append((partition, offset))
    body = wire.string("txn-app") + wire.string(group) + struct.pack(">qh", PRODUCER_ID, producer_epoch)
    body += struct.pack(">i", len(topics))
    for topic, partitions in topics.items():
        body += wire.string(topic) + struct.pack(">i", len(partitions))
        for partition, offset in partitions:
            body += struct.pack(">iqi", partition, offset, -1) + wire.string("")
    reader = wire.Reader(wire.call(sock, API_TXN_OFFSET_COMMIT, TXN_OFFSET_COMMIT_VERSION, correlation_id, body))
    reader.take(">i")  # throttle time
    errors = {}
    for _ in range(reader.take(">i")):
        topic = reader.string()
        for _ in range(reader.take(">i")):
            partition, error = reader.take(">ih")
            errors[(topic, partition)] = error
    return errors


def offset_fetch(sock, correlation_id, group, topic, partitions):
    """OffsetFetch v1: {partition: (offset, error)}."""
    body = wire.string(group) + struct.pack(">i", 1) + wire.string(topic)
    body += struct.pack(">i", len(partitions)) + b"".join(struct.pack(">i", p) for p in partitions)
    reader = wire.Reader(wire.call(sock, API_OFFSET_FETCH, OFFSET_FETCH_VERSION, correlation_id, body))
    fetched = {}
    for _ in range(reader.take(">i")):
        reader.string()
        for _ in range(reader.take(">i")):
            partition, offset = reader.take(">iq")
            reader.string()
            fetched[partition] = (offset, reader.take(">h"))
    return fetched


def test_partitions_that_do_not_exist_and_an_empty_group_are_refused(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 2)
    with wire.connect(broker.bootstrap) as sock:
        unknown = {(topic, 2): 5, (topic, -1): 5, ("no-such-topic", 0): 5}
        assert txn_offset_commit(sock, 1, "txn-group", 0, unknown) == {
            key: wire.ERR_UNKNOWN_TOPIC_OR_PARTITION for key in unknown
        }
        assert txn_offset_commit(sock, 2, "", 0, {(topic, 0): 5}) == {(topic, 0): ERR_INVALID_GROUP_ID}


# Kafka first verifies with its transaction coordinator that the producer's
# transaction holds the group's partition (KIP-890); this producer has none.
@pytest.mark.shoal_only
def test_pending_offsets_are_invisible_and_a_fenced_epoch_is_refused(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 2)
    with wire.connect(broker.bootstrap) as sock:
        offsets = {(topic, 0): 7, (topic, 1): 9}
        assert txn_offset_commit(sock, 1, "txn-group", 3, offsets) == {key: 0 for key in offsets}
        assert offset_fetch(sock, 2, "txn-group", topic, [0, 1]) == {0: (-1, 0), 1: (-1, 0)}
        assert txn_offset_commit(sock, 3, "txn-group", 2, {(topic, 0): 8}) == {
            (topic, 0): ERR_INVALID_PRODUCER_EPOCH
        }
        assert txn_offset_commit(sock, 4, "txn-group", 3, {(topic, 0): 8}) == {(topic, 0): 0}
    # The offsets stay pending through a restart: no marker ended them.
    broker.stop()
    broker.start()
    with wire.connect(broker.bootstrap) as sock:
        assert offset_fetch(sock, 5, "txn-group", topic, [0, 1]) == {0: (-1, 0), 1: (-1, 0)}
