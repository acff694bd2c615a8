"""Thin helpers over confluent-kafka (librdkafka) used by several tests. Every
wait is bounded in time and every loop in count."""

import logging
import time

from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

REQUEST_TIMEOUT_S = 15.0
CONSUME_TIMEOUT_S = 30.0
POLL_TIMEOUT_S = 0.5

# librdkafka's own log lines go through Python logging, so pytest keeps them
# with the test that made them (shown only when it fails) instead of spraying
# stderr from clients that outlive their test.
LIBRDKAFKA_LOG = logging.getLogger("librdkafka")

# Errors a partition's leader answers while its leadership settles (Kafka
# just after a change); clients retry them.
SETTLING_ERRORS = (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE)
# Errors a group coordinator answers while it takes its partition of
# `__consumer_offsets` (Kafka accepts connections right after a start, before
# its coordinators have loaded); the Java consumer's `committed` retries them
# until its timeout, librdkafka's returns them.
COORDINATOR_SETTLING_ERRORS = (
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
)

# What Kafka without an authorizer answers as a resource's authorized
# operations (every operation it defines for that resource type), by name.
GROUP_OPERATIONS = ["ALTER_CONFIGS", "DELETE", "DESCRIBE", "DESCRIBE_CONFIGS", "READ"]
CLUSTER_OPERATIONS = ["ALTER", "ALTER_CONFIGS", "CLUSTER_ACTION", "CREATE", "DESCRIBE", "DESCRIBE_CONFIGS", "IDEMPOTENT_WRITE"]


def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000, "logger": LIBRDKAFKA_LOG})


def operation_names(operations):
    """A confluent-kafka `authorized_operations` list (None when not asked
    for) as sorted names."""
    return None if operations is None else sorted(op.name for op in operations)


def create_topic(bootstrap, name, partitions, config=None):
    client = admin(bootstrap)
    futures = client.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        request_timeout=REQUEST_TIMEOUT_S,
    )
    futures[name].result(timeout=REQUEST_TIMEOUT_S)
    wait_for_partitions(bootstrap, name, partitions)


def describe_topic_configs(bootstrap, name):
    """{config name: ConfigEntry} of topic `name` per DescribeConfigs."""
    resource = ConfigResource(ResourceType.TOPIC, name)
    client = admin(bootstrap)  # kept alive until the answer is in
    futures = client.describe_configs([resource], request_timeout=REQUEST_TIMEOUT_S)
    return futures[resource].result(timeout=REQUEST_TIMEOUT_S)


def topic_partitions(bootstrap, name, client=None):
    """Partition ids of `name` per Metadata, or None if the broker does not
    know the topic."""
    md = (client or admin(bootstrap)).list_topics(timeout=REQUEST_TIMEOUT_S)
    topic = md.topics.get(name)
    if topic is None or topic.error is not None:
        return None
    return sorted(topic.partitions)


def wait_for_partitions(bootstrap, name, partitions, timeout_s=REQUEST_TIMEOUT_S):
    client = admin(bootstrap)
    deadline = time.monotonic() + timeout_s
    while True:
        got = topic_partitions(bootstrap, name, client)
        if got == list(range(partitions)):
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"topic {name}: partitions {got}, expected {partitions}")
        time.sleep(0.05)


def producer(bootstrap, **config):
    conf = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": False,
        "linger.ms": 5,
        "message.timeout.ms": 20000,
        "logger": LIBRDKAFKA_LOG,
    }
    conf.update({k.replace("_", "."): v for k, v in config.items()})
    return Producer(conf)


class DeliveryLog:
    """Collects delivery reports: (partition, offset, key, value) for each
    acknowledged record and the errors of the others."""

    def __init__(self):
        self.acked = []
        self.errors = []

    def __call__(self, err, msg):
        if err is not None:
            self.errors.append(err)
        else:
            self.acked.append((msg.partition(), msg.offset(), msg.key(), msg.value()))


def flush(prod, timeout_s=REQUEST_TIMEOUT_S * 2):
    remaining = prod.flush(timeout_s)
    assert remaining == 0, f"{remaining} records still undelivered after {timeout_s}s"


def consumer(bootstrap, extra_config=None, **config):
    # The Python binding insists on a group.id; the tests only assign(), so no
    # group coordinator is ever needed for fetching.
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": "shoal-it-assign-only",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "error",
        "enable.partition.eof": True,
        "logger": LIBRDKAFKA_LOG,
    }
    conf.update({k.replace("_", "."): v for k, v in config.items()})
    conf.update(extra_config or {})
    return Consumer(conf)


def retried(call, settling_errors, timeout_s, what):
    """call()'s answer, asked again while it fails with one of
    settling_errors (as a client's own calls would) until timeout_s."""
    deadline = time.monotonic() + timeout_s
    for _ in range(int(timeout_s / POLL_TIMEOUT_S) + 1):
        try:
            return call()
        except KafkaException as e:
            if e.args[0].code() not in settling_errors or time.monotonic() >= deadline:
                raise
        time.sleep(POLL_TIMEOUT_S)
    raise AssertionError(f"no {what} within {timeout_s}s")


def committed(bootstrap, group, topic, partitions, **config):
    """The group's committed offset of each of the topic's first
    `partitions` partitions (OFFSET_INVALID, -1001, where none)."""
    c = consumer(bootstrap, group_id=group, **config)
    try:
        got = retried(lambda: c.committed([TopicPartition(topic, p) for p in range(partitions)],
                                          timeout=REQUEST_TIMEOUT_S),
                      COORDINATOR_SETTLING_ERRORS, REQUEST_TIMEOUT_S, f"committed offsets of group {group}")
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def watermarks(bootstrap, name, partition, timeout_s=REQUEST_TIMEOUT_S):
    """(low, high) of a partition. A retriable error (Kafka answers
    NOT_LEADER_OR_FOLLOWER while a partition's leadership settles) is asked
    again, as a client's own calls would, until timeout_s."""
    c = consumer(bootstrap)
    try:
        return retried(lambda: c.get_watermark_offsets(TopicPartition(name, partition), timeout=REQUEST_TIMEOUT_S),
                       SETTLING_ERRORS, timeout_s, f"watermarks of {name}[{partition}]")
    finally:
        c.close()


def consume(bootstrap, name, counts, start_offsets=None, timeout_s=CONSUME_TIMEOUT_S, consumer_config=None):
    """Reads exactly counts[p] records from each partition p, starting at
    start_offsets[p] (default 0), and returns {p: [Message]}. Fails if more
    records show up before each partition's EOF, or on any consumer error."""
    start_offsets = start_offsets or {}
    c = consumer(bootstrap, extra_config=consumer_config)
    got = {p: [] for p in counts}
    eof = set()
    try:
        c.assign([TopicPartition(name, p, start_offsets.get(p, 0)) for p in counts])
        deadline = time.monotonic() + timeout_s
        max_polls = int(timeout_s / 0.01) + 1
        for _ in range(max_polls):
            done = all(len(got[p]) >= counts[p] for p in counts) and eof >= set(counts)
            if done or time.monotonic() >= deadline:
                break
            for msg in c.consume(num_messages=500, timeout=POLL_TIMEOUT_S):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        if len(got[msg.partition()]) >= counts[msg.partition()]:
                            eof.add(msg.partition())
                        continue
                    raise KafkaException(err)
                got[msg.partition()].append(msg)
    finally:
        c.close()
    for p in counts:
        assert len(got[p]) == counts[p], (
            f"partition {p}: read {len(got[p])} records, expected {counts[p]}"
        )
    return got


def produce_records(bootstrap, topic, records, **config):
    prod = producer(bootstrap, **config)
    log = DeliveryLog()
    for rows in records.values():
        for r in rows:
            prod.produce(
                topic,
                key=r.key,
                value=r.value,
                headers=r.headers,
                partition=r.partition,
                timestamp=r.timestamp_ms,
                on_delivery=log,
            )
            prod.poll(0)
    flush(prod)
    assert log.errors == []
    return log


def assert_read_back(bootstrap, topic, records):
    got = consume(bootstrap, topic, {p: len(rows) for p, rows in records.items()})
    for p, rows in records.items():
        msgs = got[p]
        assert [m.offset() for m in msgs] == list(range(len(rows))), f"partition {p} offsets"
        for r, m in zip(rows, msgs):
            assert m.partition() == p
            assert m.topic() == topic
            assert m.key() == r.key
            assert m.value() == r.value
            assert m.headers() == (r.headers or None)
            assert m.timestamp() == (TIMESTAMP_CREATE_TIME, r.timestamp_ms)


def first_record_from_earliest(bootstrap, topic, timeout_s=CONSUME_TIMEOUT_S):
    """The first record of partition 0 that a consumer starting at offset 0
    reads, reset to the earliest offset when 0 is gone."""
    c = consumer(bootstrap, auto_offset_reset="earliest")
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        for _ in range(int(timeout_s / POLL_TIMEOUT_S)):
            msg = c.poll(POLL_TIMEOUT_S)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(err)
            return msg
    finally:
        c.close()
    raise AssertionError(f"no record of {topic}[0] read from earliest within {timeout_s}s")
