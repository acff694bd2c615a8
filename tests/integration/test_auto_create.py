"""Topic auto-creation on produce/metadata, and turning it off."""

from confluent_kafka import KafkaError

import clients
import kafka_wire


def test_produce_creates_topic_with_num_partitions(broker_factory, topic):
    broker = broker_factory(overrides={"num.partitions": 3, "auto.create.topics.enable": "true"})
    assert clients.topic_partitions(broker.bootstrap, topic) is None

    prod = clients.producer(broker.bootstrap)
    log = clients.DeliveryLog()
    for i in range(30):
        prod.produce(topic, value=f"auto {i}".encode(), partition=i % 3, on_delivery=log)
    clients.flush(prod)
    assert log.errors == []
    assert len(log.acked) == 30

    assert clients.topic_partitions(broker.bootstrap, topic) == [0, 1, 2]
    got = clients.consume(broker.bootstrap, topic, {0: 10, 1: 10, 2: 10})
    for p in range(3):
        assert [m.value() for m in got[p]] == [f"auto {i}".encode() for i in range(p, 30, 3)]


def test_metadata_request_creates_topic(broker_factory, topic):
    broker = broker_factory(overrides={"num.partitions": 3})
    _, topics = kafka_wire.metadata(broker.bootstrap, [topic], allow_auto_topic_creation=True)
    # While the topic is created Kafka 4.4 answers UNKNOWN_TOPIC_OR_PARTITION
    # (3), older Kafkas LEADER_NOT_AVAILABLE (5); shoal creates it at once.
    assert topics[topic][0] in (kafka_wire.ERR_NONE, kafka_wire.ERR_UNKNOWN_TOPIC_OR_PARTITION, 5)
    clients.wait_for_partitions(broker.bootstrap, topic, 3)


def test_disabled_auto_create(broker_factory, topic):
    broker = broker_factory(overrides={"auto.create.topics.enable": "false", "num.partitions": 3})

    _, topics = kafka_wire.metadata(broker.bootstrap, [topic], allow_auto_topic_creation=True)
    assert topics[topic][0] == kafka_wire.ERR_UNKNOWN_TOPIC_OR_PARTITION

    prod = clients.producer(
        broker.bootstrap, message_timeout_ms=4000, topic_metadata_propagation_max_ms=1000
    )
    log = clients.DeliveryLog()
    prod.produce(topic, value=b"nowhere", on_delivery=log)
    prod.flush(15)
    assert log.acked == []
    assert [e.code() for e in log.errors] in (
        [KafkaError.UNKNOWN_TOPIC_OR_PART],
        [KafkaError._UNKNOWN_TOPIC],
    )
    assert clients.topic_partitions(broker.bootstrap, topic) is None
    _, topics = kafka_wire.metadata(broker.bootstrap, [], allow_auto_topic_creation=False)
    assert topic not in topics
