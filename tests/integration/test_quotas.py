"""Client quotas and connection-creation limits (issue 17), configured as
Kafka's are: Kafka's kafka-configs tool alters and describes user, client-id
and ip quotas (AlterClientQuotas, DescribeClientQuotas); AlterClientQuotas
refuses what Kafka refuses; a confluent-kafka producer and consumer over
their byte rates are throttled (their rate comes down to the quota, and
their throttle callback hears of it), also when their connections sit on
different shards (shard-aware ports choose them); an address over its
`connection_creation_rate` has its new connections closed, and a broker's
`max.connection.creation.rate` holds new connections back. The controller
mutation quota (KIP-599): the Java admin's CreateTopics and DeleteTopics
past a client's `controller_mutation_rate` get THROTTLING_QUOTA_EXCEEDED for
the topics past the budget, an older CreateTopics version only a throttle
time.

The brokers measure over 3 windows of 1 s instead of Kafka's 11, so that a
rate settles within a few seconds (a new sensor counts 2 s, not 10)."""

import contextlib
import shutil
import socket
import struct
import subprocess
import time

import pytest
from confluent_kafka import Consumer, Producer

import clients
import kafka_tools as kt
import kafka_wire
from conftest import HOST
from test_java_clients import BUILD as JAVA_BUILD, java
from test_shard_aware import free_port_run

pytestmark = pytest.mark.shoal_only

SHARDS = 2
WINDOWS = {"quota.window.num": "3", "quota.window.size.seconds": "1"}
CREATE_TOPICS = 19
DESCRIBE_CLIENT_QUOTAS = 48
ALTER_CLIENT_QUOTAS = 49
ERR_INVALID_REQUEST = 42
# Bytes per second: far below what a producer or consumer on the loopback
# reaches unthrottled, far above what one request carries.
PRODUCE_QUOTA = 150_000
FETCH_QUOTA = 150_000
# How long a client runs against its quota, and the start it is not
# measured over: a new sensor lets the first 2 s worth through at once, as
# Kafka's does, so the rate the quota holds shows after that.
RUN_S = 7
WARMUP_S = 2
# The measured rate may exceed the quota by the shards' 100 ms lag and the
# window's edges; twice the quota would mean the quota did not hold (or
# held per shard only).
RATE_SLACK = 1.5
VALUE = b"q" * 1000
PARTITIONS = 4


def encode_string(value):
    return kafka_wire.string(value) if value is not None else struct.pack(">h", -1)


def alter_quotas(bootstrap, entity, ops, validate_only=False):
    """AlterClientQuotas v0 of one entry: entity [(type, name or None)],
    ops [(key, value or None to remove)]. Returns (error_code, message)."""
    with contextlib.closing(kafka_wire.connect(bootstrap)) as sock:
        return alter_quotas_on(sock, entity, ops, validate_only)


def alter_quotas_on(sock, entity, ops, validate_only=False):
    """alter_quotas on a connection of the caller's."""
    body = struct.pack(">i", 1)
    body += struct.pack(">i", len(entity))
    body += b"".join(kafka_wire.string(t) + encode_string(n) for t, n in entity)
    body += struct.pack(">i", len(ops))
    for key, value in ops:
        body += kafka_wire.string(key) + struct.pack(">d?", value or 0.0, value is None)
    body += struct.pack(">?", validate_only)
    reader = kafka_wire.Reader(kafka_wire.call(sock, ALTER_CLIENT_QUOTAS, 0, 5, body))
    reader.take(">i")

    def entry():
        error_code = reader.take(">h")
        message = reader.string()
        reader.array(lambda: (reader.string(), reader.string()))
        return error_code, message

    (result,) = reader.array(entry)
    return result


def describe_quotas(bootstrap, components, strict=False):
    """DescribeClientQuotas v0: components [(type, match type, match)].
    Returns (error_code, {((type, name), ...): {key: value}})."""
    with contextlib.closing(kafka_wire.connect(bootstrap)) as sock:
        return describe_quotas_on(sock, components, strict)


def describe_quotas_on(sock, components, strict=False):
    """describe_quotas on a connection of the caller's."""
    body = struct.pack(">i", len(components))
    for entity_type, match_type, match in components:
        body += kafka_wire.string(entity_type) + struct.pack(">b", match_type) + encode_string(match)
    body += struct.pack(">?", strict)
    reader = kafka_wire.Reader(kafka_wire.call(sock, DESCRIBE_CLIENT_QUOTAS, 0, 6, body))
    reader.take(">i")
    error_code = reader.take(">h")
    reader.string()

    def entry():
        entity = tuple(reader.array(lambda: (reader.string(), reader.string())))
        values = dict(reader.array(lambda: (reader.string(), reader.take(">d"))))
        return entity, values

    return error_code, dict(reader.array(entry))


def shard_aware_broker(broker_factory):
    """Two shards, each also on its own port: a client learns one broker per
    shard and talks to each partition's shard on that shard's port."""
    base = free_port_run(SHARDS)
    return broker_factory(
        shards=SHARDS,
        overrides={"listener.shard.aware": "true", "listener.shard.port.base": str(base), **WINDOWS},
    )


class Throttles:
    """The throttle times (seconds) a client's throttle callback reported:
    librdkafka reports a broker's non-zero throttle times, and a zero only
    after one of those."""

    def __init__(self):
        self.times_s = []

    def __call__(self, event):
        self.times_s.append(event.throttle_time)


def produce_for(bootstrap, topic, client_id, seconds, warmup_s=0, config=None, partitions=PARTITIONS):
    """Produces VALUE to each of `partitions` as fast as the broker lets a
    producer of `client_id` (with `config` besides) for `seconds`; returns
    (acknowledged bytes per second after the first `warmup_s`, throttle
    times reported)."""
    throttles = Throttles()
    acked = [0]

    def delivered(err, msg):
        if err is None:
            acked[0] += len(msg.value())

    producer = Producer({
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "linger.ms": 5,
        # A small queue: what is left at the end is dropped, not waited for.
        "queue.buffering.max.kbytes": 64,
        "throttle_cb": throttles,
        **(config or {}),
    })
    started = time.monotonic()
    deadline = started + seconds
    warm = None
    n = 0
    while time.monotonic() < deadline:
        if warm is None and time.monotonic() - started >= warmup_s:
            warm = (time.monotonic(), acked[0])
        try:
            producer.produce(topic, VALUE, partition=n % partitions, on_delivery=delivered)
            n += 1
        except BufferError:
            producer.poll(0.01)
        producer.poll(0)
    warm_at, warm_acked = warm
    rate = (acked[0] - warm_acked) / (time.monotonic() - warm_at)
    producer.poll(0.2)
    producer.purge()
    producer.flush(5)
    return rate, throttles.times_s


def test_kafka_configs_alters_and_describes_quotas(broker):
    kt.require_tools()
    b = broker.bootstrap

    def configs(*args):
        return kt.run(kt.CONFIGS, "--bootstrap-server", b, *args)

    alice = ("--entity-type", "users", "--entity-name", "alice")
    configs("--alter", "--add-config", "producer_byte_rate=1024,consumer_byte_rate=2048", *alice)
    configs("--alter", "--add-config", "request_percentage=50", *alice,
            "--entity-type", "clients", "--entity-default")
    configs("--alter", "--add-config", "connection_creation_rate=100", "--entity-type", "ips",
            "--entity-default")
    out = configs("--describe", *alice)
    assert "Quota configs for user-principal 'alice' are" in out, out
    assert "producer_byte_rate=1024.0" in out and "consumer_byte_rate=2048.0" in out, out
    # The tool's filter is strict: alice with the default client id is
    # another entity.
    assert "request_percentage" not in out, out
    out = configs("--describe", "--entity-type", "users", "--entity-type", "clients")
    assert ("Quota configs for user-principal 'alice', the default client-id are "
            "request_percentage=50.0") in out, out
    out = configs("--describe", "--entity-type", "ips")
    assert "Quota configs for the default ip are connection_creation_rate=100.0" in out, out
    configs("--alter", "--delete-config", "producer_byte_rate", *alice)
    # Every shard answers from the same image: describe on fresh
    # connections (the kernel spreads them over the shards).
    for _ in range(4):
        error, entries = describe_quotas(b, [("user", 0, "alice")], strict=True)
        assert error == 0
        assert entries == {(("user", "alice"),): {"consumer_byte_rate": 2048.0}}


def test_alter_client_quotas_refuses_what_kafka_refuses(broker):
    b = broker.bootstrap
    refused = [
        ([("user", "a")], [("bogus", 1.0)], "Invalid configuration key bogus"),
        ([("ip", None)], [("producer_byte_rate", 1.0)], "Invalid configuration key producer_byte_rate"),
        ([("user", "a"), ("ip", "10.0.0.1")], [("request_percentage", 1.0)],
         "Invalid quota entity combination"),
        ([("client-id", "c")], [("producer_byte_rate", 10.5)], "producer_byte_rate cannot be a fractional value."),
        ([("client-id", "c")], [("consumer_byte_rate", -1.0)], "Quota consumer_byte_rate must be greater than 0"),
        ([("group", "g")], [("producer_byte_rate", 1.0)], "Unhandled client quota entity type: group"),
    ]
    for entity, ops, message in refused:
        error, text = alter_quotas(b, entity, ops)
        assert error == ERR_INVALID_REQUEST and text.startswith(message), (entity, ops, error, text)
    # validate_only checks and keeps nothing.
    assert alter_quotas(b, [("user", "a")], [("producer_byte_rate", 5.0)], validate_only=True) == (0, None)
    assert describe_quotas(b, [])[1] == {}
    assert alter_quotas(b, [("user", "a")], [("producer_byte_rate", 5.0)]) == (0, None)
    assert describe_quotas(b, [("user", 2, None)])[1] == {(("user", "a"),): {"producer_byte_rate": 5.0}}


def test_a_producer_over_its_quota_is_throttled_across_shards(broker_factory, topic):
    broker = shard_aware_broker(broker_factory)
    b = broker.bootstrap
    clients.create_topic(b, topic, PARTITIONS)
    leaders = {leader for _, leader in kafka_wire.leaders(b, topic).items()}
    assert len(leaders) == SHARDS, f"the partitions sit on both shards' brokers: {leaders}"
    free_rate, free_throttles = produce_for(b, topic, "free-producer", 2)
    assert free_rate > 3 * PRODUCE_QUOTA, f"unthrottled {free_rate:.0f} B/s: the test could not tell"
    assert not free_throttles
    assert alter_quotas(b, [("client-id", "slow-producer")], [("producer_byte_rate", PRODUCE_QUOTA)]) == (0, None)
    rate, throttles = produce_for(b, topic, "slow-producer", RUN_S, WARMUP_S)
    assert rate < RATE_SLACK * PRODUCE_QUOTA, f"{rate:.0f} B/s against a quota of {PRODUCE_QUOTA}"
    assert rate > 0.5 * PRODUCE_QUOTA, f"{rate:.0f} B/s: throttled far below the quota"
    assert throttles and max(throttles) > 0, "the producer was told of its throttle"


def test_a_consumer_over_its_quota_is_throttled(broker_factory, topic):
    broker = broker_factory(shards=SHARDS, overrides=WINDOWS)
    b = broker.bootstrap
    clients.create_topic(b, topic, PARTITIONS)
    produced, _ = produce_for(b, topic, "filler", 2)
    assert produced * 2 > FETCH_QUOTA * (RUN_S + 2), "enough records to read for the whole run"
    assert alter_quotas(b, [("client-id", "slow-consumer")], [("consumer_byte_rate", FETCH_QUOTA)]) == (0, None)
    throttles = Throttles()
    consumer = Consumer({
        "bootstrap.servers": b,
        "group.id": "quota-group",
        "client.id": "slow-consumer",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        # Each answer well under what the quota allows over the window, as
        # Kafka needs too: a larger one is always throttled.
        "fetch.max.bytes": 32768,
        "max.partition.fetch.bytes": 16384,
        "message.max.bytes": 32768,
        "throttle_cb": throttles,
    })
    try:
        consumer.subscribe([topic])
        read = 0
        started = warm = None
        deadline = time.monotonic() + RUN_S + 15
        while time.monotonic() < deadline:
            msg = consumer.poll(0.1)
            if msg is None or msg.error():
                continue
            now = time.monotonic()
            if started is None:
                started = now
            if warm is None and now - started >= WARMUP_S:
                warm = (now, read)
            read += len(msg.value())
            if now - started >= RUN_S:
                break
        assert warm is not None, "the consumer read past its first burst"
        rate = (read - warm[1]) / (time.monotonic() - warm[0])
    finally:
        consumer.close()
    assert rate < RATE_SLACK * FETCH_QUOTA, f"{rate:.0f} B/s against a quota of {FETCH_QUOTA}"
    assert rate > 0.3 * FETCH_QUOTA, f"{rate:.0f} B/s: throttled far below the quota"
    assert throttles.times_s and max(throttles.times_s) > 0, "the consumer was told of its throttle"


def connect_from(bootstrap, source_ip):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source_ip, 0))
    sock.settimeout(kafka_wire.SOCKET_TIMEOUT_S)
    sock.connect(kafka_wire.parse_bootstrap(bootstrap))
    return sock


def served_at_once(bootstrap, source_ip, count):
    """Opens `count` connections from source_ip at once and sends each an
    ApiVersions: how many the broker answered."""
    socks = [connect_from(bootstrap, source_ip) for _ in range(count)]
    try:
        for n, sock in enumerate(socks):
            sock.sendall(kafka_wire.frame(kafka_wire.request_header(kafka_wire.API_VERSIONS, 0, n)))
        answered = 0
        for n, sock in enumerate(socks):
            try:
                kafka_wire.read_response(sock, n, timeout_s=3)
                answered += 1
            except (ConnectionError, socket.timeout, OSError):
                pass
        return answered
    finally:
        for sock in socks:
            sock.close()


def test_an_address_over_its_connection_creation_rate_is_refused(broker_factory):
    broker = broker_factory(shards=SHARDS, overrides=WINDOWS)
    b = broker.bootstrap
    limited, other = "127.0.0.4", "127.0.0.5"
    assert alter_quotas(b, [("ip", limited)], [("connection_creation_rate", 2.0)]) == (0, None)
    # 2 per second over the 2 s a new rate counts: 4 connections pass.
    answered = served_at_once(b, limited, 12)
    assert 2 <= answered <= 6, f"{answered} of 12 fast connections from {limited} served"
    assert served_at_once(b, other, 12) == 12, "another address is not limited"
    # Once the window has passed, the address connects again.
    time.sleep(3.5)
    assert served_at_once(b, limited, 1) == 1
    # Removed, the quota no longer holds.
    assert alter_quotas(b, [("ip", limited)], [("connection_creation_rate", None)]) == (0, None)
    assert served_at_once(b, limited, 12) == 12


def test_max_connection_creation_rate_holds_new_connections_back(broker_factory):
    broker = broker_factory(shards=SHARDS, overrides={"max.connection.creation.rate": "5", **WINDOWS})
    b = broker.bootstrap
    started = time.monotonic()
    for _ in range(20):
        with contextlib.closing(connect_from(b, HOST)) as sock:
            sock.sendall(kafka_wire.frame(kafka_wire.request_header(kafka_wire.API_VERSIONS, 0, 1)))
            kafka_wire.read_response(sock, 1, timeout_s=10)
    elapsed = time.monotonic() - started
    # 10 pass at once (5 per second over 2 s); the other 10 come at about
    # 5 per second. Without the limit, 20 take a few milliseconds.
    assert elapsed > 1.2, f"20 connections served in {elapsed:.2f} s"


# Partitions per second, and the bucket of 2 windows of 1 s it fills:
# 2 * 1 * 2 = 4 partitions at once.
MUTATION_RATE = 2.0
MUTATION_WINDOWS = {"controller.quota.window.num": "2", "controller.quota.window.size.seconds": "1"}


def create_topics_v4(bootstrap, topics):
    """CreateTopics v4 (before THROTTLING_QUOTA_EXCEEDED: a permissive
    quota) as kafka_wire's client id, {name: partitions}; returns
    (throttle_time_ms, {name: error_code})."""
    body = struct.pack(">i", len(topics))
    for name, partitions in topics.items():
        body += kafka_wire.string(name) + struct.pack(">ihii", partitions, 1, 0, 0)
    body += struct.pack(">i?", 30_000, False)
    with contextlib.closing(kafka_wire.connect(bootstrap)) as sock:
        reader = kafka_wire.Reader(kafka_wire.call(sock, CREATE_TOPICS, 4, 3, body))
    throttle_ms = reader.take(">i")

    def result():
        name = reader.string()
        error_code = reader.take(">h")
        reader.string()
        return name, error_code

    return throttle_ms, dict(reader.array(result))


def test_controller_mutations_past_their_quota_are_refused_or_throttled(broker_factory):
    if shutil.which("javac") is None:
        pytest.skip("no JDK: tests/run could not install one")
    check = subprocess.run([JAVA_BUILD, "--check"], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    broker = broker_factory(overrides=MUTATION_WINDOWS)
    b = broker.bootstrap
    for client in ("mutator", kafka_wire.CLIENT_ID.decode()):
        assert alter_quotas(b, [("client-id", client)], [("controller_mutation_rate", MUTATION_RATE)]) == (0, None)

    def admin(*args, client="mutator"):
        return java("admin", "-brokers", b, "-client-id", client, *args)

    # Strict (the Java admin's CreateTopics v7): the first topic finds the
    # bucket full and takes 6 of its 4 tokens; the next finds it below zero.
    out = admin("-op", "create-topics-once", "-partitions-of", "big=6,small=1")
    assert out["big"] == {"error": None}, out
    assert out["small"]["error"] == "ThrottlingQuotaExceededException", out
    # -2 tokens at 2 per second: at most a second to wait.
    assert 0 < out["small"]["throttle_time_ms"] <= 1000, out
    # Another client id has a bucket of its own.
    assert admin("-op", "create-topics-once", "-partitions-of", "other=3", client="free") == {
        "other": {"error": None}}
    # Refilled, the bucket takes a deletion of 6 and refuses the next.
    time.sleep(out["small"]["throttle_time_ms"] / 1000 + 0.2)
    out = admin("-op", "delete-topics-once", "-topics", "big,other")
    assert out["big"] == {"error": None}, out
    assert out["other"]["error"] == "ThrottlingQuotaExceededException", out
    # Permissive (CreateTopics v4): created whatever the bucket holds, and
    # the answer says how long the client waits.
    throttle_ms, errors = create_topics_v4(b, {"permissive": 20})
    assert errors == {"permissive": 0}
    # 20 partitions from a bucket of at most 4: at least 8 s to refill.
    assert throttle_ms >= 8000, throttle_ms
    assert "permissive" in clients.admin(b).list_topics(timeout=clients.REQUEST_TIMEOUT_S).topics
