"""Produce and consume with kafka-python (a pure-Python client: its own
protocol encoder and its own codecs)."""

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.codec import has_gzip, has_lz4, has_snappy, has_zstd
from kafka.errors import TopicAlreadyExistsError

import clients
from records import make_records

PARTITIONS = 3
PER_PARTITION = 120
REQUEST_TIMEOUT_S = 30
POLL_LIMIT = 400

# Kafka's answer without an authorizer: every operation it defines on a
# topic (kafka-python always asks for them).
TOPIC_OPERATIONS = ["ALTER", "ALTER_CONFIGS", "CREATE", "DELETE", "DESCRIBE", "DESCRIBE_CONFIGS", "READ", "WRITE"]
GROUP_POLL_LIMIT = 200

CODECS = {"none": lambda: True, "gzip": has_gzip, "snappy": has_snappy, "lz4": has_lz4, "zstd": has_zstd}


def produce(bootstrap, topic, records, compression):
    prod = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        compression_type=None if compression == "none" else compression,
        enable_idempotence=False,
        linger_ms=5,
        request_timeout_ms=REQUEST_TIMEOUT_S * 1000,
    )
    try:
        futures = [
            (r, prod.send(topic, key=r.key, value=r.value, headers=r.headers, partition=r.partition, timestamp_ms=r.timestamp_ms))
            for rows in records.values()
            for r in rows
        ]
        prod.flush(timeout=REQUEST_TIMEOUT_S)
        acked = {p: [] for p in records}
        for r, future in futures:
            meta = future.get(timeout=REQUEST_TIMEOUT_S)
            assert (meta.topic, meta.partition) == (topic, r.partition)
            acked[r.partition].append(meta.offset)
    finally:
        prod.close(timeout=REQUEST_TIMEOUT_S)
    for p, rows in records.items():
        assert acked[p] == list(range(len(rows))), f"partition {p} acked offsets"


def consume(bootstrap, topic, start_offsets, counts):
    """Reads counts[p] records of each partition p from start_offsets[p]
    using assign + seek; no group."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        request_timeout_ms=REQUEST_TIMEOUT_S * 1000,
    )
    got = {p: [] for p in counts}
    try:
        tps = [TopicPartition(topic, p) for p in counts]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, start_offsets[tp.partition])
        deadline = time.monotonic() + REQUEST_TIMEOUT_S
        for _ in range(POLL_LIMIT):
            if all(len(got[p]) >= counts[p] for p in counts) or time.monotonic() > deadline:
                break
            for tp, batch in consumer.poll(timeout_ms=200).items():
                got[tp.partition].extend(batch)
        # One more short poll: nothing beyond what was produced may show up.
        for tp, batch in consumer.poll(timeout_ms=300).items():
            got[tp.partition].extend(batch)
    finally:
        consumer.close()
    return got


@pytest.mark.parametrize("compression", list(CODECS))
def test_round_trip_and_seek(broker, topic, compression):
    if not CODECS[compression]():
        pytest.skip(f"kafka-python has no {compression} codec library installed")
    clients.create_topic(broker.bootstrap, topic, PARTITIONS)
    records = make_records(seed=f"kp-{compression}", partitions=PARTITIONS, per_partition=PER_PARTITION, big_every=40)
    produce(broker.bootstrap, topic, records, compression)

    got = consume(broker.bootstrap, topic, {p: 0 for p in records}, {p: PER_PARTITION for p in records})
    for p, rows in records.items():
        msgs = got[p]
        assert [m.offset for m in msgs] == list(range(PER_PARTITION)), f"partition {p} offsets"
        for r, m in zip(rows, msgs):
            assert (m.topic, m.partition) == (topic, p)
            assert m.key == r.key
            assert m.value == r.value
            assert [(k, v) for k, v in m.headers] == r.headers
            assert m.timestamp == r.timestamp_ms
            assert m.timestamp_type == 0  # CreateTime

    middle = PER_PARTITION // 2 + 3
    got = consume(broker.bootstrap, topic, {1: middle}, {1: PER_PARTITION - middle})
    assert [m.offset for m in got[1]] == list(range(middle, PER_PARTITION))
    assert [m.value for m in got[1]] == [r.value for r in records[1][middle:]]


def test_admin_client(broker, topic):
    """kafka-python's own CreateTopics, Metadata (with the topic's authorized
    operations), DescribeConfigs and DeleteTopics encodings."""
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=REQUEST_TIMEOUT_S * 1000)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1, topic_configs={"retention.ms": "3600000"})])
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        clients.wait_for_partitions(broker.bootstrap, topic, 3)
        assert topic in admin.list_topics()
        (described,) = admin.describe_topics([topic])
        assert (described["error_code"], described["topic"], len(described["partitions"])) == (0, topic, 3)
        assert sorted(described["authorized_operations"]) == TOPIC_OPERATIONS

        (response,) = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        (resource,) = response.resources
        assert resource[0] == 0, resource[:4]
        entries = {entry[0]: entry[1] for entry in resource[4]}
        assert entries["retention.ms"] == "3600000"

        admin.delete_topics([topic])
        deadline = time.monotonic() + REQUEST_TIMEOUT_S
        while clients.topic_partitions(broker.bootstrap, topic) is not None:
            assert time.monotonic() < deadline, f"{topic} still listed after delete"
            time.sleep(0.05)
    finally:
        admin.close()


def test_admin_describes_a_consumer_group(broker, topic):
    """kafka-python's describe_consumer_groups: DescribeGroups v3 with the
    group's authorized operations, and the member's subscription and
    assignment decoded from the consumer protocol."""
    clients.create_topic(broker.bootstrap, topic, PARTITIONS)
    group = f"g-{topic}"
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=group,
        client_id="kp-member",
        request_timeout_ms=REQUEST_TIMEOUT_S * 1000,
    )
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=REQUEST_TIMEOUT_S * 1000)
    try:
        deadline = time.monotonic() + REQUEST_TIMEOUT_S
        for _ in range(GROUP_POLL_LIMIT):
            if len(consumer.assignment()) == PARTITIONS or time.monotonic() > deadline:
                break
            consumer.poll(timeout_ms=100)
        assert len(consumer.assignment()) == PARTITIONS, "the member never got the whole topic"

        (described,) = admin.describe_consumer_groups([group])
        assert (described.error_code, described.group, described.state) == (0, group, "Stable")
        assert (described.protocol_type, described.protocol) == ("consumer", "range")
        assert sorted(described.authorized_operations) == clients.GROUP_OPERATIONS
        (member,) = described.members
        assert member.client_id == "kp-member"
        assert member.member_metadata.topics == [topic]
        ((assigned_topic, partitions),) = member.member_assignment.assignment
        assert (assigned_topic, sorted(partitions)) == (topic, list(range(PARTITIONS)))
    finally:
        consumer.close()
        admin.close()
