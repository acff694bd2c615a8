"""Record timestamps: the CreateTime window (`message.timestamp.before.max.ms`,
`message.timestamp.after.max.ms`, KIP-937 / KIP-1030), LogAppendTime, and
ListOffsets by timestamp through the `.timeindex`."""

import time

import pytest
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, KafkaError, TopicPartition
from kafka import KafkaProducer
from kafka.errors import InvalidTimestampError

import clients


HOUR_MS = 3_600_000
MINUTE_MS = 60_000


def now_ms():
    return int(time.time() * 1000)


def produce_each(bootstrap, topic, stamped_values):
    """Produces each (timestamp, value) on its own, in order, without retries;
    returns the DeliveryLog."""
    prod = clients.producer(bootstrap, linger_ms=0, message_send_max_retries=0)
    log = clients.DeliveryLog()
    for timestamp, value in stamped_values:
        prod.produce(topic, value=value, partition=0, timestamp=timestamp, on_delivery=log)
        clients.flush(prod)
    return log


def test_default_window_refuses_timestamps_over_an_hour_ahead(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 1)
    now = now_ms()
    log = produce_each(
        broker.bootstrap,
        topic,
        [
            (now - 365 * 24 * HOUR_MS, b"a-year-ago"),
            (now + 2 * HOUR_MS, b"two-hours-ahead"),
            # Microseconds instead of milliseconds: the mistake the bound is for.
            (now * 1000, b"microseconds"),
            (now + 30 * MINUTE_MS, b"half-an-hour-ahead"),
        ],
    )
    assert [e.code() for e in log.errors] == [KafkaError.INVALID_TIMESTAMP] * 2
    assert [(o, v) for _, o, _, v in log.acked] == [(0, b"a-year-ago"), (1, b"half-an-hour-ahead")]
    got = clients.consume(broker.bootstrap, topic, {0: 2})[0]
    assert [m.value() for m in got] == [b"a-year-ago", b"half-an-hour-ahead"]


def test_topic_before_bound_refuses_old_timestamps(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 1, config={"message.timestamp.before.max.ms": str(MINUTE_MS)})
    now = now_ms()
    log = produce_each(broker.bootstrap, topic, [(now - HOUR_MS, b"old"), (now, b"fresh")])
    assert [e.code() for e in log.errors] == [KafkaError.INVALID_TIMESTAMP]
    assert [(o, v) for _, o, _, v in log.acked] == [(0, b"fresh")]

    # kafka-python sees the same code as its own exception type.
    prod = KafkaProducer(bootstrap_servers=broker.bootstrap, retries=0, request_timeout_ms=10000)
    try:
        future = prod.send(topic, value=b"old-again", partition=0, timestamp_ms=now - HOUR_MS)
        with pytest.raises(InvalidTimestampError):
            future.get(timeout=clients.REQUEST_TIMEOUT_S)
    finally:
        prod.close(timeout=5)


def test_broker_override_sets_the_window(broker_factory, topic):
    broker = broker_factory(overrides={"log.message.timestamp.after.max.ms": 1000})
    clients.create_topic(broker.bootstrap, topic, 1)
    log = produce_each(broker.bootstrap, topic, [(now_ms() + MINUTE_MS, b"a-minute-ahead"), (now_ms(), b"now")])
    assert [e.code() for e in log.errors] == [KafkaError.INVALID_TIMESTAMP]
    assert [v for _, _, _, v in log.acked] == [b"now"]
    # The topic sees the broker's value as its default.
    resource = clients.describe_topic_configs(broker.bootstrap, topic)
    entry = resource["message.timestamp.after.max.ms"]
    assert entry.value == "1000"


def test_log_append_time_ignores_the_window_and_stamps_the_broker_clock(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 1, config={"message.timestamp.type": "LogAppendTime"})
    before = now_ms()
    log = produce_each(broker.bootstrap, topic, [(before + 10 * HOUR_MS, b"far-future")])
    after = now_ms()
    assert log.errors == []
    (msg,) = clients.consume(broker.bootstrap, topic, {0: 1})[0]
    kind, stamp = msg.timestamp()
    assert kind == TIMESTAMP_LOG_APPEND_TIME
    assert before <= stamp <= after + 1000, (before, stamp, after)


def test_offsets_for_times_across_segments(broker, topic):
    # Small segments so the lookup has to pick the right segment by its
    # time index before scanning batches.
    clients.create_topic(broker.bootstrap, topic, 1, config={"internal.segment.bytes": "2000"})
    base = now_ms() - HOUR_MS
    stamped = [(base + i * 1000, f"v{i:03d}".encode() * 20) for i in range(60)]
    prod = clients.producer(broker.bootstrap, linger_ms=0)
    for timestamp, value in stamped:
        prod.produce(topic, value=value, partition=0, timestamp=timestamp)
        clients.flush(prod)

    c = clients.consumer(broker.bootstrap)
    try:
        for i in [0, 1, 17, 30, 59]:
            (found,) = c.offsets_for_times([TopicPartition(topic, 0, base + i * 1000 - 500)], timeout=clients.REQUEST_TIMEOUT_S)
            assert found.offset == i, (i, found)
        (past_end,) = c.offsets_for_times([TopicPartition(topic, 0, base + 61_000)], timeout=clients.REQUEST_TIMEOUT_S)
        assert past_end.offset == -1
    finally:
        c.close()
