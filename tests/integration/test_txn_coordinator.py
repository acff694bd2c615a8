"""The transaction coordinator with librdkafka's transactional producer:
commits and aborts end with markers in the log (read here with
read_uncommitted, which returns the records of both and skips the markers;
read_committed filtering is the log's part), a second producer with the same
transactional.id fences the first, a transaction past its timeout is aborted
by the coordinator, and the coordinator's state survives restarts, with a
transaction in flight too; DescribeTransactions and ListTransactions
show them."""

import struct
import uuid

import pytest
from confluent_kafka import KafkaException

import clients
import kafka_wire as wire
from conftest import wait_until

TXN_TIMEOUT_MS = 20_000
READ_UNCOMMITTED = {"isolation.level": "read_uncommitted"}


def transactional_producer(bootstrap, transactional_id, timeout_ms=TXN_TIMEOUT_MS):
    producer = clients.producer(
        bootstrap,
        **{
            "transactional.id": transactional_id,
            "enable.idempotence": True,
            "transaction.timeout.ms": timeout_ms,
            "message.timeout.ms": timeout_ms,
        },
    )
    producer.init_transactions(clients.REQUEST_TIMEOUT_S * 2)
    return producer


def send(producer, topic, values, partition=0):
    log = clients.DeliveryLog()
    for value in values:
        producer.produce(topic, value=value, partition=partition, on_delivery=log)
    clients.flush(producer)
    assert log.errors == []


def transaction(producer, topic, values, commit):
    producer.begin_transaction()
    send(producer, topic, values)
    if commit:
        producer.commit_transaction(clients.REQUEST_TIMEOUT_S)
    else:
        producer.abort_transaction(clients.REQUEST_TIMEOUT_S)


def read_all(bootstrap, topic, count):
    """(offset, value) of the `count` records of partition 0, markers skipped."""
    got = clients.consume(bootstrap, topic, {0: count}, consumer_config=READ_UNCOMMITTED)
    return [(m.offset(), m.value()) for m in got[0]]


def high_watermark(bootstrap, topic):
    return clients.watermarks(bootstrap, topic, 0)[1]


def test_commit_and_abort_write_their_markers(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 1)
    producer = transactional_producer(broker.bootstrap, f"tx-{uuid.uuid4()}")
    transaction(producer, topic, [b"a", b"b", b"c"], commit=True)
    transaction(producer, topic, [b"x", b"y"], commit=False)
    transaction(producer, topic, [b"d"], commit=True)
    producer.flush(0)
    # Each transaction's records, then its marker (one offset each).
    expected = [(0, b"a"), (1, b"b"), (2, b"c"), (4, b"x"), (5, b"y"), (7, b"d")]
    assert read_all(broker.bootstrap, topic, 6) == expected
    assert high_watermark(broker.bootstrap, topic) == 9


def test_a_second_producer_fences_the_first(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 1)
    transactional_id = f"tx-{uuid.uuid4()}"
    first = transactional_producer(broker.bootstrap, transactional_id)
    first.begin_transaction()
    send(first, topic, [b"zombie"])
    # The second producer's InitProducerId aborts the first one's
    # transaction under a bumped epoch before it is answered.
    second = transactional_producer(broker.bootstrap, transactional_id)
    with pytest.raises(KafkaException) as raised:
        first.commit_transaction(clients.REQUEST_TIMEOUT_S)
    assert raised.value.args[0].fatal(), raised.value
    transaction(second, topic, [b"alive"], commit=True)
    assert read_all(broker.bootstrap, topic, 2) == [(0, b"zombie"), (2, b"alive")]
    assert high_watermark(broker.bootstrap, topic) == 4


def test_a_transaction_past_its_timeout_is_aborted(broker_factory, topic):
    broker = broker_factory(
        overrides={"transaction.abort.timed.out.transaction.cleanup.interval.ms": 200}
    )
    clients.create_topic(broker.bootstrap, topic, 1)
    timeout_ms = 1_000
    producer = transactional_producer(broker.bootstrap, f"tx-{uuid.uuid4()}", timeout_ms)
    producer.begin_transaction()
    send(producer, topic, [b"late"])
    # The abort marker lands once the coordinator aborted it.
    wait_until(
        lambda: high_watermark(broker.bootstrap, topic) == 2,
        clients.REQUEST_TIMEOUT_S,
        "the coordinator's abort marker",
    )
    with pytest.raises(KafkaException):
        producer.commit_transaction(clients.REQUEST_TIMEOUT_S)


@pytest.mark.shoal_only  # restarts the broker: Kafka's coordinator needs a while to come back
def test_transactions_survive_restarts(broker_factory, topic):
    broker = broker_factory()
    clients.create_topic(broker.bootstrap, topic, 1)
    transactional_id = f"tx-{uuid.uuid4()}"
    producer = transactional_producer(broker.bootstrap, transactional_id)
    transaction(producer, topic, [b"before"], commit=True)
    producer.flush(0)
    del producer
    # Between transactions: its markers written and the transaction
    # complete (a restart before that writes its markers again, so twice).
    wait_until(
        lambda: describe_transaction(broker.bootstrap, transactional_id)[1] == "CompleteCommit",
        clients.REQUEST_TIMEOUT_S,
        "the first transaction to complete",
    )

    broker.restart()
    producer = transactional_producer(broker.bootstrap, transactional_id)
    transaction(producer, topic, [b"between"], commit=True)
    # A transaction in flight when the broker dies (its partition added
    # only once the previous commit completed).
    producer.begin_transaction()
    send(producer, topic, [b"in-flight"])
    broker.kill9()
    del producer

    broker.start()
    # The next producer of the id aborts the transaction left open.
    producer = transactional_producer(broker.bootstrap, transactional_id)
    transaction(producer, topic, [b"after"], commit=True)
    expected = [(0, b"before"), (2, b"between"), (4, b"in-flight"), (6, b"after")]
    assert read_all(broker.bootstrap, topic, 4) == expected
    assert high_watermark(broker.bootstrap, topic) == 8


API_DESCRIBE_TRANSACTIONS = 65
API_LIST_TRANSACTIONS = 66
ERR_TRANSACTIONAL_ID_NOT_FOUND = 105


def flexible_call(bootstrap, api_key, version, body):
    """Sends a flexible request (no tagged fields) and returns a reader of
    its response body."""
    with wire.connect(bootstrap) as sock:
        return wire.Reader(wire.call(sock, api_key, version, 1, body + wire.uvarint(0), flexible=True))


def describe_transaction(bootstrap, transactional_id):
    """DescribeTransactions v0 for one id: (error, state, timeout, producer
    id, {topic: partitions})."""
    reader = flexible_call(
        bootstrap,
        API_DESCRIBE_TRANSACTIONS,
        0,
        wire.compact_array([wire.compact_string(transactional_id)]),
    )
    reader.take(">i")

    def topic():
        name = reader.compact_string()
        partitions = reader.compact_array(lambda: reader.take(">i"))
        reader.tagged_fields()
        return name, partitions

    def state():
        error = reader.take(">h")
        assert reader.compact_string() == transactional_id
        name = reader.compact_string()
        timeout_ms, _start_ms, producer_id, _epoch = reader.take(">iqqh")
        topics = dict(reader.compact_array(topic))
        reader.tagged_fields()
        return error, name, timeout_ms, producer_id, topics

    (described,) = reader.compact_array(state)
    return described


def list_transactions(bootstrap, states):
    """ListTransactions v1: (error, unknown state filters, {id: state})."""
    body = wire.compact_array([wire.compact_string(state) for state in states])
    body += wire.compact_array([]) + struct.pack(">q", -1)
    reader = flexible_call(bootstrap, API_LIST_TRANSACTIONS, 1, body)
    _throttle, error = reader.take(">ih")
    unknown = reader.compact_array(reader.compact_string)

    def state():
        transactional_id = reader.compact_string()
        reader.take(">q")
        name = reader.compact_string()
        reader.tagged_fields()
        return transactional_id, name

    return error, unknown, dict(reader.compact_array(state))


def test_describe_and_list_transactions(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 2)
    transactional_id = f"tx-{uuid.uuid4()}"
    producer = transactional_producer(broker.bootstrap, transactional_id)
    producer.begin_transaction()
    send(producer, topic, [b"a"], partition=1)
    error, state, timeout_ms, _producer_id, topics = describe_transaction(
        broker.bootstrap, transactional_id
    )
    assert (error, state, timeout_ms, topics) == (0, "Ongoing", TXN_TIMEOUT_MS, {topic: [1]})
    error, unknown, listed = list_transactions(broker.bootstrap, ["Ongoing", "Bogus"])
    assert (error, unknown) == (0, ["Bogus"])
    assert listed[transactional_id] == "Ongoing"
    _, unknown, listed = list_transactions(broker.bootstrap, ["Bogus"])
    assert (unknown, listed) == (["Bogus"], {})
    producer.commit_transaction(clients.REQUEST_TIMEOUT_S)
    wait_until(
        lambda: describe_transaction(broker.bootstrap, transactional_id)[1] == "CompleteCommit",
        clients.REQUEST_TIMEOUT_S,
        "the transaction to complete",
    )
    assert list_transactions(broker.bootstrap, ["Ongoing"])[2].get(transactional_id) is None
    error = describe_transaction(broker.bootstrap, f"tx-{uuid.uuid4()}")[0]
    assert error == ERR_TRANSACTIONAL_ID_NOT_FOUND
