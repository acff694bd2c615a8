"""Topic administration through confluent-kafka's AdminClient (librdkafka)."""

import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import ConfigResource, NewTopic, ResourceType

import clients
from clients import REQUEST_TIMEOUT_S


def create_error_code(admin, name, partitions=1):
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1)],
        request_timeout=REQUEST_TIMEOUT_S,
    )
    try:
        futures[name].result(timeout=REQUEST_TIMEOUT_S)
    except KafkaException as e:
        return e.args[0].code()
    return KafkaError.NO_ERROR


def test_create_list_describe_delete(broker, topic):
    admin = clients.admin(broker.bootstrap)
    assert create_error_code(admin, topic, partitions=3) == KafkaError.NO_ERROR
    clients.wait_for_partitions(broker.bootstrap, topic, 3)

    md = admin.list_topics(timeout=REQUEST_TIMEOUT_S)
    assert topic in md.topics
    assert len(md.brokers) == 1
    (node_id,) = md.brokers
    assert f"{md.brokers[node_id].host}:{md.brokers[node_id].port}" == broker.bootstrap
    partitions = md.topics[topic].partitions
    assert sorted(partitions) == [0, 1, 2]
    for p in partitions.values():
        assert p.error is None
        assert p.leader == node_id
        assert p.replicas == [node_id]
        assert p.isrs == [node_id]

    description = admin.describe_topics(TopicCollection([topic]))[topic].result(
        timeout=REQUEST_TIMEOUT_S
    )
    assert description.name == topic
    assert [p.id for p in description.partitions] == [0, 1, 2]
    for p in description.partitions:
        assert p.leader.id == node_id
        assert [r.id for r in p.replicas] == [node_id]

    admin.delete_topics([topic], request_timeout=REQUEST_TIMEOUT_S)[topic].result(
        timeout=REQUEST_TIMEOUT_S
    )
    deadline = time.monotonic() + REQUEST_TIMEOUT_S
    while topic in admin.list_topics(timeout=REQUEST_TIMEOUT_S).topics:
        assert time.monotonic() < deadline, f"{topic} still listed after delete"
        time.sleep(0.05)


def test_create_existing_topic_fails(broker, topic):
    admin = clients.admin(broker.bootstrap)
    assert create_error_code(admin, topic, partitions=2) == KafkaError.NO_ERROR
    assert create_error_code(admin, topic, partitions=2) == KafkaError.TOPIC_ALREADY_EXISTS
    clients.wait_for_partitions(broker.bootstrap, topic, 2)


@pytest.mark.parametrize(
    "name", ["bad name!", "..", ".", "x" * 250, "slash/topic"], ids=["space-bang", "dotdot", "dot", "250-chars", "slash"]
)
def test_create_invalid_name_fails(broker, name):
    admin = clients.admin(broker.bootstrap)
    assert create_error_code(admin, name) == KafkaError.TOPIC_EXCEPTION
    assert name not in admin.list_topics(timeout=REQUEST_TIMEOUT_S).topics
    broker.answers()


def test_create_cluster_metadata_topic_fails(broker):
    # The metadata log's name: Kafka refuses it with INVALID_REQUEST, and
    # in shoal its partition would share the metadata log's directory.
    admin = clients.admin(broker.bootstrap)
    assert create_error_code(admin, "__cluster_metadata") == KafkaError.INVALID_REQUEST
    assert "__cluster_metadata" not in admin.list_topics(timeout=REQUEST_TIMEOUT_S).topics
    broker.answers()


def test_delete_unknown_topic_fails(broker, topic):
    admin = clients.admin(broker.bootstrap)
    future = admin.delete_topics([topic], request_timeout=REQUEST_TIMEOUT_S)[topic]
    with pytest.raises(KafkaException) as info:
        future.result(timeout=REQUEST_TIMEOUT_S)
    assert info.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_describe_topic_configs(broker, topic):
    clients.create_topic(
        broker.bootstrap, topic, 1, config={"retention.ms": "123456", "cleanup.policy": "delete"}
    )
    admin = clients.admin(broker.bootstrap)
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([resource], request_timeout=REQUEST_TIMEOUT_S)[
        resource
    ].result(timeout=REQUEST_TIMEOUT_S)
    assert configs["retention.ms"].value == "123456"
    assert configs["cleanup.policy"].value == "delete"


def test_describe_cluster(broker):
    admin = clients.admin(broker.bootstrap)
    cluster = admin.describe_cluster(request_timeout=REQUEST_TIMEOUT_S).result(
        timeout=REQUEST_TIMEOUT_S
    )
    assert len(cluster.nodes) == 1
    (node,) = cluster.nodes
    assert f"{node.host}:{node.port}" == broker.bootstrap
    assert cluster.controller is not None and cluster.controller.id == node.id
    assert cluster.cluster_id
    assert cluster.authorized_operations is None

    asked = admin.describe_cluster(include_authorized_operations=True, request_timeout=REQUEST_TIMEOUT_S).result(
        timeout=REQUEST_TIMEOUT_S
    )
    assert clients.operation_names(asked.authorized_operations) == clients.CLUSTER_OPERATIONS


def test_recreate_after_delete_starts_empty(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 2)
    prod = clients.producer(broker.bootstrap)
    for i in range(20):
        prod.produce(topic, value=b"old %d" % i, partition=i % 2)
    clients.flush(prod)
    admin = clients.admin(broker.bootstrap)
    admin.delete_topics([topic], request_timeout=REQUEST_TIMEOUT_S)[topic].result(timeout=REQUEST_TIMEOUT_S)
    deadline = time.monotonic() + REQUEST_TIMEOUT_S
    while clients.topic_partitions(broker.bootstrap, topic, admin) is not None:
        assert time.monotonic() < deadline, f"{topic} still listed after delete"
        time.sleep(0.05)

    clients.create_topic(broker.bootstrap, topic, 1)
    assert clients.watermarks(broker.bootstrap, topic, 0) == (0, 0)
    prod = clients.producer(broker.bootstrap)
    prod.produce(topic, value=b"new", partition=0)
    clients.flush(prod)
    got = clients.consume(broker.bootstrap, topic, {0: 1})[0]
    assert [(m.offset(), m.value()) for m in got] == [(0, b"new")]
