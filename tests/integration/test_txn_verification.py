"""KIP-890 part 1 over the wire: a transactional batch reaches a partition
only once the transaction coordinator confirms the partition is in the
producer's transaction (`transaction.partition.verification.enable`, on by
default). By hand, as no client sends such a batch on purpose: Produce
before AddPartitionsToTxn is refused INVALID_TXN_STATE (Produce v3; v11
gets TRANSACTION_ABORTABLE) and nothing is appended; once added it
is appended; after the transaction is aborted, a batch of it is refused
again; with no coordinator yet (no `__transaction_state`) it is refused
NOT_ENOUGH_REPLICAS, which clients retry. With verification off the same
batch is appended, as before KIP-890."""

import struct
import time
import uuid

import clients
import kafka_wire as wire
from conftest import wait_until
from test_txn_coordinator import flexible_call

API_END_TXN = 26
API_ADD_PARTITIONS_TO_TXN = 24
API_INIT_PRODUCER_ID = 22
API_FIND_COORDINATOR = 10
PRODUCE_VERSION = 3
COORDINATOR_TYPE_TRANSACTION = 1
TXN_TIMEOUT_MS = 60_000
ATTRIBUTE_TRANSACTIONAL = 0x10
ERR_NOT_ENOUGH_REPLICAS = 19
ERR_INVALID_TXN_STATE = 48
ERR_TRANSACTION_ABORTABLE = 120
# Produce v11 is the first whose clients know TRANSACTION_ABORTABLE.
PRODUCE_ABORTABLE_VERSION = 11
# Retriable while the coordinator or the partition settles (Kafka creates
# __transaction_state on the first FindCoordinator and loads it).
RETRIABLE = {5, 6, 14, 15, 16, 51}
SETTLE_TIMEOUT_S = 30


class Conversation:
    """One connection, with its correlation ids."""

    def __init__(self, bootstrap):
        self.sock = wire.connect(bootstrap)
        self.correlation_id = 0

    def call(self, api_key, version, body):
        self.correlation_id += 1
        header = wire.request_header(api_key, version, self.correlation_id)
        self.sock.sendall(wire.frame(header + body))
        return wire.Reader(wire.read_response(self.sock, self.correlation_id))

    def close(self):
        self.sock.close()


def settled(call, what):
    """call() until its error code (first of what it returns) is not a retriable one."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        answer = call()
        if answer[0] not in RETRIABLE or time.monotonic() >= deadline:
            assert answer[0] == 0, f"{what}: {answer}"
            return answer
        time.sleep(0.2)


def find_coordinator(conn, transactional_id):
    def call():
        body = wire.string(transactional_id) + struct.pack(">b", COORDINATOR_TYPE_TRANSACTION)
        reader = conn.call(API_FIND_COORDINATOR, 1, body)
        _throttle, error = reader.take(">ih")
        return (error,)

    settled(call, "FindCoordinator")


def init_producer_id(conn, transactional_id):
    """InitProducerId v0 for transactional_id: (producer id, epoch)."""

    def call():
        body = wire.string(transactional_id) + struct.pack(">i", TXN_TIMEOUT_MS)
        reader = conn.call(API_INIT_PRODUCER_ID, 0, body)
        _throttle, error, producer_id, epoch = reader.take(">ihqh")
        return error, producer_id, epoch

    _, producer_id, epoch = settled(call, "InitProducerId")
    return producer_id, epoch


def add_partition(conn, transactional_id, producer_id, epoch, topic, partition):
    """AddPartitionsToTxn v1 for one partition: its error code."""
    body = wire.string(transactional_id) + struct.pack(">qh", producer_id, epoch)
    body += struct.pack(">i", 1) + wire.string(topic) + struct.pack(">ii", 1, partition)
    reader = conn.call(API_ADD_PARTITIONS_TO_TXN, 1, body)
    reader.take(">i")
    reader.take(">i")
    reader.string()
    reader.take(">i")
    _partition, error = reader.take(">ih")
    return error


def end_txn(conn, transactional_id, producer_id, epoch, commit):
    body = wire.string(transactional_id) + struct.pack(">qhb", producer_id, epoch, commit)
    reader = conn.call(API_END_TXN, 1, body)
    _throttle, error = reader.take(">ih")
    return error


def transactional_batch(value, producer_id, epoch, base_sequence):
    """A RecordBatch v2 of one record, transactional."""
    return wire.record_batch([value], producer_id, epoch, base_sequence, attributes=ATTRIBUTE_TRANSACTIONAL)


def produce(conn, transactional_id, topic, partition, data):
    """Produce v3, acks=-1, one partition: (error code, base offset)."""
    body = wire.string(transactional_id) + struct.pack(">hi", -1, 10_000)
    body += struct.pack(">i", 1) + wire.string(topic)
    body += struct.pack(">iii", 1, partition, len(data)) + data
    reader = conn.call(wire.API_PRODUCE, PRODUCE_VERSION, body)
    reader.take(">i")
    reader.string()
    reader.take(">i")
    _partition, error, base_offset, _append_time = reader.take(">ihqq")
    return error, base_offset


def first_produce(conn, transactional_id, topic, batch):
    """produce() to partition 0 of a new topic, again while Kafka's new
    partition has no leader yet."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    answer = produce(conn, transactional_id, topic, 0, batch)
    while answer[0] in RETRIABLE and time.monotonic() < deadline:
        time.sleep(0.2)
        answer = produce(conn, transactional_id, topic, 0, batch)
    return answer


def produce_flexible(bootstrap, transactional_id, topic, partition, data):
    """Produce v11, acks=-1, one partition: its error code."""
    partition_data = struct.pack(">i", partition) + wire.uvarint(len(data) + 1) + data + wire.uvarint(0)
    topic_data = wire.compact_string(topic) + wire.compact_array([partition_data]) + wire.uvarint(0)
    body = wire.compact_string(transactional_id) + struct.pack(">hi", -1, 10_000) + wire.compact_array([topic_data])
    reader = flexible_call(bootstrap, wire.API_PRODUCE, PRODUCE_ABORTABLE_VERSION, body)
    assert reader.uvarint() == 2, "one topic"
    reader.compact_string()
    assert reader.uvarint() == 2, "one partition"
    _partition, error = reader.take(">ih")
    return error


def high_watermark(bootstrap, topic):
    return clients.watermarks(bootstrap, topic, 0)[1]


def start_producer(broker, topic):
    """A fresh transactional id with its producer id and epoch, on a new
    one-partition topic."""
    clients.create_topic(broker.bootstrap, topic, 1)
    transactional_id = f"verify-{uuid.uuid4()}"
    conn = Conversation(broker.bootstrap)
    find_coordinator(conn, transactional_id)
    producer_id, epoch = init_producer_id(conn, transactional_id)
    return conn, transactional_id, producer_id, epoch


def test_a_batch_outside_the_transaction_is_refused(broker, topic):
    conn, transactional_id, producer_id, epoch = start_producer(broker, topic)
    try:
        batch = transactional_batch(b"early", producer_id, epoch, 0)
        # Not added to the transaction (none is even open): refused, and
        # nothing is appended.
        assert first_produce(conn, transactional_id, topic, batch)[0] == ERR_INVALID_TXN_STATE
        assert high_watermark(broker.bootstrap, topic) == 0

        assert add_partition(conn, transactional_id, producer_id, epoch, topic, 0) == 0
        assert produce(conn, transactional_id, topic, 0, batch) == (0, 0)
        # The transaction is open there now: later batches need nothing more.
        later = transactional_batch(b"later", producer_id, epoch, 1)
        assert produce(conn, transactional_id, topic, 0, later) == (0, 1)

        assert end_txn(conn, transactional_id, producer_id, epoch, False) == 0
        # The abort marker closes the transaction on the partition.
        wait_until(lambda: high_watermark(broker.bootstrap, topic) == 3, SETTLE_TIMEOUT_S, "the abort marker")

        # A batch of the aborted transaction, never added to another one: it
        # would hang a transaction nobody ends. Refused (NOT_ENOUGH_REPLICAS,
        # retriable, while the coordinator still completes the abort).
        late = transactional_batch(b"late", producer_id, epoch, 2)

        def refused():
            error, _ = produce(conn, transactional_id, topic, 0, late)
            assert error in (ERR_INVALID_TXN_STATE, ERR_NOT_ENOUGH_REPLICAS), error
            return error == ERR_INVALID_TXN_STATE

        wait_until(refused, SETTLE_TIMEOUT_S, "INVALID_TXN_STATE once the abort is complete")
        assert high_watermark(broker.bootstrap, topic) == 3
    finally:
        conn.close()


def test_produce_v11_is_told_transaction_abortable(broker, topic):
    conn, transactional_id, producer_id, epoch = start_producer(broker, topic)
    conn.close()
    batch = transactional_batch(b"early", producer_id, epoch, 0)
    assert produce_flexible(broker.bootstrap, transactional_id, topic, 0, batch) == ERR_TRANSACTION_ABORTABLE
    assert high_watermark(broker.bootstrap, topic) == 0


def test_a_transactional_batch_without_a_coordinator_is_retriable(broker, topic):
    # A transactional id nobody initialised, before any transactional
    # client: no coordinator to ask, NOT_ENOUGH_REPLICAS (which clients
    # retry), nothing appended.
    clients.create_topic(broker.bootstrap, topic, 1)
    conn = Conversation(broker.bootstrap)
    try:
        batch = transactional_batch(b"stray", 4242, 0, 0)
        assert first_produce(conn, f"nobody-{uuid.uuid4()}", topic, batch)[0] == ERR_NOT_ENOUGH_REPLICAS
    finally:
        conn.close()
    assert high_watermark(broker.bootstrap, topic) == 0


def test_without_verification_the_batch_is_appended(broker_factory, topic):
    broker = broker_factory({"transaction.partition.verification.enable": "false"})
    conn, transactional_id, producer_id, epoch = start_producer(broker, topic)
    try:
        batch = transactional_batch(b"early", producer_id, epoch, 0)
        assert first_produce(conn, transactional_id, topic, batch) == (0, 0)
    finally:
        conn.close()
