"""Replication's configs on a single node (issue 15): `min.insync.replicas`
and `unclean.leader.election.enable` as broker defaults and topic overrides,
described as Kafka describes them; the `replica.*` settings and the internal
topics' replication factors among the broker's configs with Kafka's
defaults; and a single node with those defaults (3 replicas for
`__consumer_offsets`) still making its internal topics, with one replica,
while a user topic asking for 2 is refused as Kafka refuses it."""

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import ConfigSource, NewTopic
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource as KafkaPythonConfigResource
from kafka.admin import ConfigResourceType

import clients
import kafka_wire
from clients import REQUEST_TIMEOUT_S
from conftest import wait_until
from test_alter_partition_cluster import partitions_of
from test_cluster_placement import OFFSETS_PARTITIONS, OFFSETS_TOPIC, find_coordinator

pytestmark = pytest.mark.shoal_only

DYNAMIC = ConfigSource.DYNAMIC_TOPIC_CONFIG.value
STATIC = ConfigSource.STATIC_BROKER_CONFIG.value
DEFAULT = ConfigSource.DEFAULT_CONFIG.value
OVERRIDES = {"min.insync.replicas": "2", "unclean.leader.election.enable": "true"}
ERR_INVALID_REPLICATION_FACTOR = 38
# The internal topic's creation and its install on every shard.
COORDINATOR_WAIT_S = 30.0


def described(bootstrap, kind, name):
    """{config: (value, source, synonyms)} of one resource, with synonyms."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(REQUEST_TIMEOUT_S * 1000))
    try:
        (response,) = admin.describe_configs([KafkaPythonConfigResource(kind, name)], include_synonyms=True)
    finally:
        admin.close()
    ((error, _, _, _, entries),) = [r[:5] for r in response.resources]
    assert error == 0
    return {e[0]: (e[1], e[3], [tuple(s) for s in e[5]]) for e in entries}


def test_replication_configs_resolve_topic_over_broker(broker_factory, topic):
    broker = broker_factory(overrides=OVERRIDES)
    clients.create_topic(broker.bootstrap, topic, 1, config={"unclean.leader.election.enable": "false"})
    configs = described(broker.bootstrap, ConfigResourceType.TOPIC, topic)
    value, source, synonyms = configs["min.insync.replicas"]
    assert (value, source) == ("2", STATIC)
    assert synonyms[0] == ("min.insync.replicas", "2", STATIC)
    value, source, synonyms = configs["unclean.leader.election.enable"]
    assert (value, source) == ("false", DYNAMIC)
    assert synonyms[:2] == [("unclean.leader.election.enable", "false", DYNAMIC),
                            ("unclean.leader.election.enable", "true", STATIC)]

    (node,) = [b[0] for b in kafka_wire.metadata(broker.bootstrap, [], False)[0]]
    configs = described(broker.bootstrap, ConfigResourceType.BROKER, str(node))
    assert configs["min.insync.replicas"][:2] == ("2", STATIC)
    assert configs["unclean.leader.election.enable"][:2] == ("true", STATIC)
    for name, default in [("replica.lag.time.max.ms", "30000"), ("replica.fetch.wait.max.ms", "500"),
                          ("replica.fetch.min.bytes", "1"), ("replica.fetch.max.bytes", "1048576"),
                          ("num.replica.fetchers", "1"), ("offsets.topic.replication.factor", "3"),
                          ("transaction.state.log.replication.factor", "3")]:
        assert configs[name][:2] == (default, DEFAULT), name


def test_a_single_node_makes_its_internal_topics_and_refuses_two_replicas(broker, topic):
    # A FindCoordinator makes __consumer_offsets: one replica here, whatever
    # offsets.topic.replication.factor (3) says.
    group = f"{topic}-group"
    wait_until(lambda: find_coordinator(broker, group)[0] == kafka_wire.ERR_NONE, COORDINATOR_WAIT_S,
               "a coordinator for the group")
    (node,) = [b[0] for b in kafka_wire.metadata(broker.bootstrap, [], False)[0]]
    offsets = partitions_of(broker.bootstrap, OFFSETS_TOPIC)
    assert len(offsets) == OFFSETS_PARTITIONS
    for p, (error, leader, _, replicas, isr, offline) in offsets.items():
        assert (error, leader, replicas, isr, offline) == (kafka_wire.ERR_NONE, node, [node], [node], []), p

    admin = clients.admin(broker.bootstrap)
    futures = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=2)],
                                  request_timeout=REQUEST_TIMEOUT_S)
    with pytest.raises(KafkaException) as refused:
        futures[topic].result(timeout=REQUEST_TIMEOUT_S)
    error = refused.value.args[0]
    assert error.code() == ERR_INVALID_REPLICATION_FACTOR, error
    assert "only 1 broker(s) are registered" in error.str(), error
