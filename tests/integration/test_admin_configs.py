"""Runtime administration with real clients: topic config changes
(IncrementalAlterConfigs, AlterConfigs) that take effect at once and survive
a restart, growing topics (CreatePartitions), DeleteRecords, and the shoal
CLI commands over them."""

import os
import time

import pytest
from confluent_kafka import OFFSET_END, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    ResourceType,
)
from kafka import KafkaAdminClient
from kafka import TopicPartition as KafkaPythonTopicPartition
from kafka.admin import ConfigResource as KafkaPythonConfigResource
from kafka.admin import ConfigResourceType
from kafka.admin import NewPartitions as KafkaPythonNewPartitions
from kafka.errors import InvalidConfigurationError, InvalidPartitionsError

import clients
from clients import REQUEST_TIMEOUT_S
from conftest import EXTERNAL_SERVE_CMD, wait_until
from test_cli import shoal

# Retention runs this often in the tests that need it to.
RETENTION_CHECK_INTERVAL_MS = 200
# How long a test waits for retention to act.
RETENTION_WAIT_S = 30
# How long the runtime-retention test watches retention do nothing first.
RETENTION_IDLE_S = 1.0
SEGMENT_BYTES = 2000
# Config sources as DescribeConfigs reports them (ConfigEntry.source is an int).
DYNAMIC = ConfigSource.DYNAMIC_TOPIC_CONFIG.value
DEFAULT = ConfigSource.DEFAULT_CONFIG.value
RETENTION_BYTES = 4000
VALUE_BYTES = 100
STATIC = ConfigSource.STATIC_BROKER_CONFIG.value
# Broker configs the describe test sets, and what Kafka shows for them.
BROKER_OVERRIDES = {"max.connections": "1000", "log.retention.hours": "24", "queued.max.requests": "200"}


def incremental(admin, topic, ops):
    """IncrementalAlterConfigs of `topic`: ops are (name, value, op type)."""
    resource = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry(name, value, incremental_operation=op) for name, value, op in ops
        ],
    )
    return admin.incremental_alter_configs([resource], request_timeout=REQUEST_TIMEOUT_S)[resource]


def error_code(future):
    try:
        future.result(timeout=REQUEST_TIMEOUT_S)
    except KafkaException as e:
        return e.args[0].code()
    return KafkaError.NO_ERROR


def value_and_source(bootstrap, topic, name):
    entry = clients.describe_topic_configs(bootstrap, topic)[name]
    return entry.value, entry.source


def produce_values(bootstrap, topic, values, partition=0, key=None, **config):
    """Produces one record per value, one batch each; returns the delivery log."""
    prod = clients.producer(bootstrap, linger_ms=0, batch_num_messages=1, **config)
    log = clients.DeliveryLog()
    for value in values:
        prod.produce(topic, key=key, value=value, partition=partition, on_delivery=log)
        prod.poll(0)
    clients.flush(prod)
    return log


def test_incremental_changes_show_as_dynamic_and_survive_a_restart(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 1, config={"segment.bytes": "1048576"})
    admin = clients.admin(broker.bootstrap)
    ops = [
        ("retention.ms", "3600000", AlterConfigOpType.SET),
        ("segment.bytes", None, AlterConfigOpType.DELETE),
        ("cleanup.policy", "compact", AlterConfigOpType.APPEND),
    ]
    assert error_code(incremental(admin, topic, ops)) == KafkaError.NO_ERROR

    def check():
        b = broker.bootstrap
        assert value_and_source(b, topic, "retention.ms") == ("3600000", DYNAMIC)
        assert value_and_source(b, topic, "cleanup.policy") == ("delete,compact", DYNAMIC)
        assert value_and_source(b, topic, "segment.bytes")[1] == DEFAULT

    check()
    broker.restart()
    check()

    # SUBTRACT from the list, then DELETE back to the default.
    ops = [("cleanup.policy", "delete", AlterConfigOpType.SUBTRACT)]
    assert error_code(incremental(clients.admin(broker.bootstrap), topic, ops)) == KafkaError.NO_ERROR
    assert value_and_source(broker.bootstrap, topic, "cleanup.policy")[0] == "compact"
    ops = [("cleanup.policy", None, AlterConfigOpType.DELETE), ("retention.ms", None, AlterConfigOpType.DELETE)]
    assert error_code(incremental(clients.admin(broker.bootstrap), topic, ops)) == KafkaError.NO_ERROR
    broker.restart()
    assert value_and_source(broker.bootstrap, topic, "cleanup.policy") == ("delete", DEFAULT)
    assert value_and_source(broker.bootstrap, topic, "retention.ms")[1] == DEFAULT


@pytest.mark.shoal_only  # Kafka 4.4 accepts a SUBTRACT that leaves cleanup.policy empty; shoal refuses it
def test_invalid_changes_are_refused_and_change_nothing(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 1, config={"retention.ms": "1000"})
    admin = clients.admin(broker.bootstrap)
    refused = {
        "bad value": [("retention.ms", "soon", AlterConfigOpType.SET)],
        "out of range": [("segment.bytes", "10", AlterConfigOpType.SET)],
        "unknown name": [("no.such.config", "1", AlterConfigOpType.SET)],
        "append to a non-list": [("retention.ms", "5", AlterConfigOpType.APPEND)],
        "empty policy": [("cleanup.policy", "delete", AlterConfigOpType.SUBTRACT)],
    }
    for what, ops in refused.items():
        assert error_code(incremental(admin, topic, ops)) == KafkaError.INVALID_CONFIG, what
    ops = [("retention.ms", "1", AlterConfigOpType.SET)]
    assert error_code(incremental(admin, f"{topic}-missing", ops)) == KafkaError.UNKNOWN_TOPIC_OR_PART

    # validate_only checks and applies nothing.
    resource = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[ConfigEntry("retention.ms", "2000", incremental_operation=AlterConfigOpType.SET)],
    )
    future = admin.incremental_alter_configs([resource], request_timeout=REQUEST_TIMEOUT_S, validate_only=True)[
        resource
    ]
    assert error_code(future) == KafkaError.NO_ERROR
    assert value_and_source(broker.bootstrap, topic, "retention.ms") == ("1000", DYNAMIC)

    # The broker's own configs are read at start only.
    broker_resource = ConfigResource(
        ResourceType.BROKER,
        "1",
        incremental_configs=[ConfigEntry("num.partitions", "3", incremental_operation=AlterConfigOpType.SET)],
    )
    future = admin.incremental_alter_configs([broker_resource], request_timeout=REQUEST_TIMEOUT_S)[broker_resource]
    assert error_code(future) == KafkaError.INVALID_REQUEST


# The legacy API is the point of this test.
@pytest.mark.filterwarnings("ignore:alter_configs has been deprecated:DeprecationWarning")
def test_alter_configs_replaces_the_whole_override_set(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 1, config={"retention.ms": "1000", "segment.bytes": "1048576"})
    admin = clients.admin(broker.bootstrap)
    resource = ConfigResource(ResourceType.TOPIC, topic, set_config={"max.message.bytes": "500000"})
    assert error_code(admin.alter_configs([resource], request_timeout=REQUEST_TIMEOUT_S)[resource]) == 0
    b = broker.bootstrap
    assert value_and_source(b, topic, "max.message.bytes") == ("500000", DYNAMIC)
    assert value_and_source(b, topic, "retention.ms")[1] == DEFAULT
    assert value_and_source(b, topic, "segment.bytes")[1] == DEFAULT

    bad = ConfigResource(ResourceType.TOPIC, topic, set_config={"max.message.bytes": "-5"})
    assert error_code(admin.alter_configs([bad], request_timeout=REQUEST_TIMEOUT_S)[bad]) == KafkaError.INVALID_CONFIG
    assert value_and_source(b, topic, "max.message.bytes")[0] == "500000"


def test_max_message_bytes_applies_at_once(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 1)
    big = b"x" * 3000
    log = produce_values(broker.bootstrap, topic, [big])
    assert log.errors == []

    ops = [("max.message.bytes", "1000", AlterConfigOpType.SET)]
    assert error_code(incremental(clients.admin(broker.bootstrap), topic, ops)) == KafkaError.NO_ERROR
    log = produce_values(broker.bootstrap, topic, [big, b"small"])
    assert [e.code() for e in log.errors] == [KafkaError.MSG_SIZE_TOO_LARGE]
    assert [offset for _, offset, _, _ in log.acked] == [1]

    ops = [("max.message.bytes", None, AlterConfigOpType.DELETE)]
    assert error_code(incremental(clients.admin(broker.bootstrap), topic, ops)) == KafkaError.NO_ERROR
    assert produce_values(broker.bootstrap, topic, [big]).errors == []


def segment_files(data_dir, topic, partition=0):
    directory = os.path.join(data_dir, f"{topic}-{partition}")
    return [name for name in os.listdir(directory) if name.endswith(".log")]


@pytest.mark.shoal_only
def test_segment_and_retention_changes_apply_to_open_partitions(broker_factory, topic):
    broker = broker_factory(overrides={"log.retention.check.interval.ms": str(RETENTION_CHECK_INTERVAL_MS)}, shards=2)
    clients.create_topic(broker.bootstrap, topic, 1)
    values = [b"%08d" % i + b"x" * VALUE_BYTES for i in range(100)]
    assert produce_values(broker.bootstrap, topic, values).errors == []
    assert len(segment_files(broker.data_dir, topic)) == 1
    time.sleep(RETENTION_IDLE_S)
    assert clients.watermarks(broker.bootstrap, topic, 0) == (0, 100)

    ops = [
        ("segment.bytes", str(SEGMENT_BYTES), AlterConfigOpType.SET),
        ("retention.bytes", str(RETENTION_BYTES), AlterConfigOpType.SET),
    ]
    assert error_code(incremental(clients.admin(broker.bootstrap), topic, ops)) == KafkaError.NO_ERROR
    more = [b"%08d" % i + b"y" * VALUE_BYTES for i in range(100, 200)]
    assert produce_values(broker.bootstrap, topic, more).errors == []
    # The open log rolls at the new segment.bytes, and retention, at its
    # next pass, cuts it to the new retention.bytes.
    wait_until(
        lambda: clients.watermarks(broker.bootstrap, topic, 0)[0] >= 100,
        RETENTION_WAIT_S,
        "retention.bytes set at runtime to delete the old segments",
    )
    assert len(segment_files(broker.data_dir, topic)) > 1
    low, high = clients.watermarks(broker.bootstrap, topic, 0)
    assert high == 200
    got = clients.consume(broker.bootstrap, topic, {0: high - low}, start_offsets={0: low})
    assert [m.value()[:8] for m in got[0]] == [b"%08d" % i for i in range(low, high)]


def test_create_partitions_grows_the_topic_across_a_restart(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 1)
    admin = clients.admin(broker.bootstrap)
    futures = admin.create_partitions([NewPartitions(topic, 3)], request_timeout=REQUEST_TIMEOUT_S)
    assert error_code(futures[topic]) == KafkaError.NO_ERROR
    clients.wait_for_partitions(broker.bootstrap, topic, 3)
    assert produce_values(broker.bootstrap, topic, [b"p2-%d" % i for i in range(5)], partition=2).errors == []

    for count in (3, 2):
        futures = admin.create_partitions([NewPartitions(topic, count)], request_timeout=REQUEST_TIMEOUT_S)
        assert error_code(futures[topic]) == KafkaError.INVALID_PARTITIONS, count
    futures = admin.create_partitions([NewPartitions(f"{topic}-missing", 3)], request_timeout=REQUEST_TIMEOUT_S)
    assert error_code(futures[f"{topic}-missing"]) == KafkaError.UNKNOWN_TOPIC_OR_PART
    futures = admin.create_partitions(
        [NewPartitions(topic, 5)], request_timeout=REQUEST_TIMEOUT_S, validate_only=True
    )
    assert error_code(futures[topic]) == KafkaError.NO_ERROR
    assert clients.topic_partitions(broker.bootstrap, topic) == [0, 1, 2]

    broker.restart()
    assert clients.topic_partitions(broker.bootstrap, topic) == [0, 1, 2]
    got = clients.consume(broker.bootstrap, topic, {0: 0, 1: 0, 2: 5})
    assert [m.value() for m in got[2]] == [b"p2-%d" % i for i in range(5)]


def delete_records(admin, topic, partition, offset):
    """(error code, low watermark or None) of DeleteRecords."""
    futures = admin.delete_records([TopicPartition(topic, partition, offset)], request_timeout=REQUEST_TIMEOUT_S)
    (future,) = futures.values()
    try:
        return KafkaError.NO_ERROR, future.result(timeout=REQUEST_TIMEOUT_S).low_watermark
    except KafkaException as e:
        return e.args[0].code(), None


def hundred_records_forty_deleted(broker, topic):
    """A one-partition topic of 100 records, the first 40 deleted with
    DeleteRecords: (the admin client, the values)."""
    clients.create_topic(broker.bootstrap, topic, 1)
    values = [b"%08d" % i for i in range(100)]
    assert produce_values(broker.bootstrap, topic, values).errors == []
    admin = clients.admin(broker.bootstrap)
    assert delete_records(admin, topic, 0, 40) == (KafkaError.NO_ERROR, 40)
    return admin, values


def test_delete_records_then_consume_from_earliest(broker, topic):
    admin, _ = hundred_records_forty_deleted(broker, topic)
    assert clients.watermarks(broker.bootstrap, topic, 0) == (40, 100)
    first = clients.first_record_from_earliest(broker.bootstrap, topic)
    assert (first.offset(), first.value()) == (40, b"00000040")
    # Below the low watermark changes nothing; past the high watermark fails.
    assert delete_records(admin, topic, 0, 10) == (KafkaError.NO_ERROR, 40)
    assert delete_records(admin, topic, 0, 101)[0] == KafkaError.OFFSET_OUT_OF_RANGE


# Kafka checkpoints the log start every `log.flush.start.offset.checkpoint.interval.ms`
# (a minute): after kill -9 its low watermark falls back to the first segment's
# base. shoal's DeleteRecords answers once the new log start is durable.
@pytest.mark.shoal_only
def test_delete_records_survives_kill9(broker, topic):
    _, values = hundred_records_forty_deleted(broker, topic)
    broker.kill9()
    broker.start()
    assert clients.watermarks(broker.bootstrap, topic, 0) == (40, 100)
    got = clients.consume(broker.bootstrap, topic, {0: 60}, start_offsets={0: 40})
    assert [m.value() for m in got[0]] == values[40:]

    # Up to the high watermark (OFFSET_END, -1): nothing is left to read.
    admin = clients.admin(broker.bootstrap)
    assert delete_records(admin, topic, 0, OFFSET_END) == (KafkaError.NO_ERROR, 100)
    broker.restart()
    assert clients.watermarks(broker.bootstrap, topic, 0) == (100, 100)
    assert produce_values(broker.bootstrap, topic, [b"after"]).errors == []
    first = clients.first_record_from_earliest(broker.bootstrap, topic)
    assert (first.offset(), first.value()) == (100, b"after")


def test_delete_records_of_a_compacted_topic_is_a_policy_violation(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 1, config={"cleanup.policy": "compact"})
    # A compacted topic takes keyed records only.
    assert produce_values(broker.bootstrap, topic, [b"v"], key=b"k").errors == []
    assert delete_records(clients.admin(broker.bootstrap), topic, 0, 1)[0] == KafkaError.POLICY_VIOLATION
    assert clients.watermarks(broker.bootstrap, topic, 0) == (0, 1)


def test_kafka_python_admin(broker, topic):
    """kafka-python's own AlterConfigs, CreatePartitions and DeleteRecords
    encodings. (Its describe_log_dirs speaks only DescribeLogDirs v0, which
    Kafka 4 and shoal no longer accept.)"""
    clients.create_topic(broker.bootstrap, topic, 1, config={"segment.bytes": "1048576"})
    assert produce_values(broker.bootstrap, topic, [b"%d" % i for i in range(10)]).errors == []
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=int(REQUEST_TIMEOUT_S * 1000))
    try:
        response = admin.alter_configs(
            [KafkaPythonConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "7200000"})]
        )
        assert [r[0] for r in response.resources] == [0], response.resources
        (response,) = admin.describe_configs([KafkaPythonConfigResource(ConfigResourceType.TOPIC, topic)])
        (resource,) = response.resources
        entries = {entry[0]: entry for entry in resource[4]}
        assert entries["retention.ms"][1] == "7200000"
        # AlterConfigs replaced every override: segment.bytes is back to its default.
        assert entries["segment.bytes"][1] == str(1 << 30)

        response = admin.alter_configs(
            [KafkaPythonConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "never"})]
        )
        assert [r[0] for r in response.resources] == [InvalidConfigurationError.errno], response.resources

        admin.create_partitions({topic: KafkaPythonNewPartitions(total_count=2)})
        clients.wait_for_partitions(broker.bootstrap, topic, 2)
        with pytest.raises(InvalidPartitionsError):
            admin.create_partitions({topic: KafkaPythonNewPartitions(total_count=2)})

        deleted = admin.delete_records({KafkaPythonTopicPartition(topic, 0): 4})
        assert deleted[KafkaPythonTopicPartition(topic, 0)]["low_watermark"] == 4
        assert clients.watermarks(broker.bootstrap, topic, 0) == (4, 10)
    finally:
        admin.close()


@pytest.mark.shoal_only
def test_cli_alter_config_add_partitions_delete_records(broker, topic):
    b = broker.bootstrap
    shoal("topic", "create", topic, "--partitions", "1", "--config", "segment.bytes=1048576", "--bootstrap", b)
    out = shoal(
        "topic", "alter-config", topic, "--set", "retention.ms=86400000", "--delete", "segment.bytes", "--bootstrap", b
    )
    assert out.stdout.decode() == f"Completed updating config for topic {topic}.\n"
    assert value_and_source(b, topic, "retention.ms") == ("86400000", DYNAMIC)
    assert value_and_source(b, topic, "segment.bytes")[1] == DEFAULT
    head = shoal("topic", "describe", topic, "--bootstrap", b).stdout.decode().splitlines()[0]
    assert head.endswith("\tConfigs: retention.ms=86400000"), head

    bad = shoal("topic", "alter-config", topic, "--set", "retention.ms=soon", "--bootstrap", b, check=False)
    assert bad.returncode == 1
    assert bad.stderr.decode().startswith("Error: INVALID_CONFIG"), bad.stderr
    assert value_and_source(b, topic, "retention.ms")[0] == "86400000"

    out = shoal("topic", "add-partitions", topic, "--partitions", "3", "--bootstrap", b)
    assert out.stdout.decode() == "Adding partitions succeeded!\n"
    assert clients.topic_partitions(b, topic) == [0, 1, 2]
    shrink = shoal("topic", "add-partitions", topic, "--partitions", "2", "--bootstrap", b, check=False)
    assert shrink.returncode == 1
    assert shrink.stderr.decode().startswith("Error: INVALID_PARTITIONS"), shrink.stderr

    assert produce_values(b, topic, [b"%d" % i for i in range(10)], partition=2).errors == []
    out = shoal("topic", "delete-records", topic, "--partition", "2", "--before-offset", "6", "--bootstrap", b)
    assert out.stdout.decode() == (
        "Executing records delete operation\n"
        "Records delete operation completed:\n"
        f"partition: {topic}-2\tlow_watermark: 6\n"
    )
    assert clients.watermarks(b, topic, 2) == (6, 10)
    out = shoal("topic", "delete-records", topic, "--partition", "2", "--before-offset", "-1", "--bootstrap", b)
    assert out.stdout.decode().endswith(f"partition: {topic}-2\tlow_watermark: 10\n")
    past = shoal("topic", "delete-records", topic, "--partition", "2", "--before-offset", "11", "--bootstrap", b, check=False)
    assert past.returncode == 1
    assert past.stderr.decode().startswith("Error: OFFSET_OUT_OF_RANGE"), past.stderr


def test_topic_config_synonyms_name_the_broker_defaults(broker, topic):
    """DescribeConfigs of a topic with synonyms, as Kafka lists them: an
    override first, then the default under the broker config it comes from;
    none for retention.ms and segment.ms, whose broker configs
    (log.retention.ms, log.roll.ms) have no default of their own."""
    clients.create_topic(broker.bootstrap, topic, 1, config={"retention.ms": "3600000"})
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=int(REQUEST_TIMEOUT_S * 1000))
    try:
        resource = KafkaPythonConfigResource(ConfigResourceType.TOPIC, topic)
        (response,) = admin.describe_configs([resource], include_synonyms=True)
    finally:
        admin.close()
    ((error, _, _, name, entries),) = [r[:5] for r in response.resources]
    assert (error, name) == (0, topic)
    configs = {entry[0]: (entry[1], entry[3], [tuple(s) for s in entry[5]]) for entry in entries}
    assert configs["retention.ms"] == (
        "3600000", DYNAMIC, [("retention.ms", "3600000", DYNAMIC)]
    )
    assert configs["segment.ms"] == ("604800000", DEFAULT, [])
    assert configs["max.message.bytes"] == ("1048588", DEFAULT, [("message.max.bytes", "1048588", DEFAULT)])
    assert configs["cleanup.policy"] == ("delete", DEFAULT, [("log.cleanup.policy", "delete", DEFAULT)])


def test_broker_configs_are_described_as_kafka_describes_them(broker_factory):
    """DescribeConfigs of the broker, as kafka-python receives it (name,
    value, read_only, source, sensitive, synonyms): a config that was set is
    STATIC_BROKER_CONFIG with its default as the next synonym; one that was
    not is DEFAULT_CONFIG; one with no default of its own (log.retention.ms
    falls back to log.retention.hours) has no value and no synonyms."""
    broker = broker_factory(overrides=BROKER_OVERRIDES)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=int(REQUEST_TIMEOUT_S * 1000))
    try:
        (node,) = [b.nodeId for b in admin._client.cluster.brokers()]
        resource = KafkaPythonConfigResource(ConfigResourceType.BROKER, str(node))
        (response,) = admin.describe_configs([resource], include_synonyms=True)
    finally:
        admin.close()
    ((error, _, _, name, entries),) = [r[:5] for r in response.resources]
    assert (error, name) == (0, str(node))
    configs = {entry[0]: entry[1:] for entry in entries}

    def shown(name):
        value, read_only, source, sensitive, synonyms = configs[name]
        # Kafka can change some of these at runtime; shoal none.
        assert read_only or EXTERNAL_SERVE_CMD, f"{name} is not read-only"
        assert not sensitive
        return value, source, [tuple(synonym) for synonym in synonyms]

    assert shown("max.connections") == (
        "1000", STATIC, [("max.connections", "1000", STATIC), ("max.connections", "2147483647", DEFAULT)]
    )
    assert shown("queued.max.requests") == (
        "200", STATIC, [("queued.max.requests", "200", STATIC), ("queued.max.requests", "500", DEFAULT)]
    )
    assert shown("log.retention.hours") == (
        "24", STATIC, [("log.retention.hours", "24", STATIC), ("log.retention.hours", "168", DEFAULT)]
    )
    assert shown("log.retention.ms") == (None, DEFAULT, [])
    assert shown("message.max.bytes") == ("1048588", DEFAULT, [("message.max.bytes", "1048588", DEFAULT)])
    for name, default in [
        ("max.connections.per.ip", "2147483647"),
        ("max.connections.per.ip.overrides", ""),
        ("connections.max.idle.ms", "600000"),
        ("max.incremental.fetch.session.cache.slots", "1000"),
        ("log.cleaner.io.max.bytes.per.second", "1.7976931348623157E308"),
        ("offsets.retention.minutes", "10080"),
    ]:
        assert shown(name) == (default, DEFAULT, [(name, default, DEFAULT)])
    assert shown("node.id")[0] == str(node)
    assert shown("listeners")[1] == STATIC
