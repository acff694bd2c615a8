"""Shard-aware mode (`listener.shard.aware=true`): every shard listens on its
own port and is advertised as a broker of its own (id node.id * 1000 + shard,
rack `node-<node.id>`), so clients send each partition's requests to the
shard that owns it. Real clients work unchanged; every port tells the same
story; a request sent to a shard that does not own its partition still works.

Which shard handled what is read from the line each shard logs at shutdown:
`shard S: partition parts routed: produce A here, B forwarded; fetch C here,
D forwarded`."""

import re
import socket
import subprocess
import time

import pytest
from confluent_kafka import TopicPartition as ConfluentTopicPartition
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.admin import NewPartitions, NewTopic

import clients
import kafka_wire
from conftest import HOST, free_port, shoal_bin

pytestmark = pytest.mark.shoal_only

SHARDS = 2
NODE_ID = 1
BROKER_IDS = [NODE_ID * 1000 + shard for shard in range(SHARDS)]
RACK = f"node-{NODE_ID}"
PARTITIONS = 4
PER_PARTITION = 50
OFFSETS_PARTITIONS = 50
REQUEST_TIMEOUT_S = 30
POLL_LIMIT = 400
PORT_RUN_ATTEMPTS = 50
ROUTED = re.compile(
    r"shard (\d+): partition parts routed: produce (\d+) here, (\d+) forwarded; "
    r"fetch (\d+) here, (\d+) forwarded"
)


def free_port_run(count):
    """A port p with p .. p+count-1 all free on the loopback (bounded tries)."""
    for _ in range(PORT_RUN_ATTEMPTS):
        base = free_port()
        if base + count > 65535:
            continue
        held = []
        try:
            for port in range(base, base + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                held.append(sock)
                sock.bind((HOST, port))
            return base
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    pytest.fail(f"no run of {count} free ports in {PORT_RUN_ATTEMPTS} tries")


@pytest.fixture
def shard_broker(broker_factory):
    base = free_port_run(SHARDS)
    broker = broker_factory(
        shards=SHARDS,
        overrides={"listener.shard.aware": "true", "listener.shard.port.base": str(base)},
    )
    broker.shard_ports = [base + shard for shard in range(SHARDS)]
    return broker


def shard_address(broker, shard):
    return f"{HOST}:{broker.shard_ports[shard]}"


def routed(broker):
    """{shard: (produce here, produce forwarded, fetch here, fetch forwarded)}
    from the lines of the broker's last run (it must be stopped)."""
    with open(broker.log_path, errors="replace") as f:
        text = f.read()
    counts = {int(m.group(1)): tuple(int(g) for g in m.groups()[1:]) for m in ROUTED.finditer(text)}
    assert sorted(counts) == list(range(SHARDS)), f"routing lines missing:\n{broker.log_tail()}"
    return counts


def java_hash_partition(group_id, partitions):
    """Kafka's coordinator partition: abs(String.hashCode()) % partitions."""
    data = group_id.encode("utf-16-be")
    h = 0
    for at in range(0, len(data), 2):
        h = (h * 31 + int.from_bytes(data[at : at + 2], "big")) & 0xFFFFFFFF
    h = h - (1 << 32) if h >= 1 << 31 else h
    h = 0 if h == -(1 << 31) else abs(h)
    return h % partitions


def leaders(address, topic):
    brokers, topics = kafka_wire.metadata(address, [topic], False)
    error, partitions = topics[topic]
    assert error == 0, f"{topic}: error {error}"
    return brokers, {p: leader for p, (perr, leader) in partitions.items() if perr == 0}


def test_every_port_reports_one_broker_per_shard_and_routes_to_owners(shard_broker, topic):
    broker = shard_broker
    clients.create_topic(broker.bootstrap, topic, PARTITIONS)
    expected_brokers = [(BROKER_IDS[s], HOST, broker.shard_ports[s]) for s in range(SHARDS)]

    # The shared port and each shard's own port give the same answer.
    seen = []
    for address in [broker.bootstrap] + [shard_address(broker, s) for s in range(SHARDS)]:
        brokers, leader_of = leaders(address, topic)
        assert sorted(brokers) == expected_brokers, address
        assert sorted(leader_of) == list(range(PARTITIONS)), address
        seen.append(leader_of)
    assert all(s == seen[0] for s in seen)
    leader_of = seen[0]
    assert set(leader_of.values()) == set(BROKER_IDS), "the partitions spread over both shards"

    # DescribeCluster (librdkafka) and Metadata (kafka-python) agree, with
    # every shard on the node's rack and shard 0's broker as the controller.
    confluent_admin = clients.admin(broker.bootstrap)  # kept alive until the answer is in
    described = confluent_admin.describe_cluster(request_timeout=REQUEST_TIMEOUT_S).result(timeout=REQUEST_TIMEOUT_S)
    assert sorted((n.id, n.host, n.port, n.rack) for n in described.nodes) == [
        (*b, RACK) for b in expected_brokers
    ]
    assert described.controller.id == BROKER_IDS[0]
    admin = KafkaAdminClient(bootstrap_servers=shard_address(broker, 1), request_timeout_ms=REQUEST_TIMEOUT_S * 1000)
    try:
        cluster = admin.describe_cluster()
        assert sorted((b["node_id"], b["host"], b["port"], b["rack"]) for b in cluster["brokers"]) == [
            (*b, RACK) for b in expected_brokers
        ]
        assert cluster["controller_id"] == BROKER_IDS[0]
        # Replicas assigned by hand to a shard's broker land on that shard.
        placed = f"{topic}-placed"
        admin.create_topics(
            [NewTopic(placed, num_partitions=-1, replication_factor=-1,
                      replica_assignments={0: [BROKER_IDS[1]], 1: [BROKER_IDS[1]], 2: [BROKER_IDS[0]]})]
        )
        admin.create_partitions({placed: NewPartitions(total_count=4, new_assignments=[[BROKER_IDS[1]]])})
    finally:
        admin.close()
    _, placed_leaders = leaders(broker.bootstrap, placed)
    assert placed_leaders == {0: BROKER_IDS[1], 1: BROKER_IDS[1], 2: BROKER_IDS[0], 3: BROKER_IDS[1]}

    # librdkafka produces to each partition's leader: every part lands on
    # its owner shard.
    records = {p: [(f"k{p}-{i}".encode(), f"v{p}-{i}".encode()) for i in range(PER_PARTITION)] for p in range(PARTITIONS)}
    prod = clients.producer(broker.bootstrap)
    log = clients.DeliveryLog()
    for p, rows in records.items():
        for key, value in rows:
            prod.produce(topic, key=key, value=value, partition=p, on_delivery=log)
    clients.flush(prod)
    assert log.errors == []

    # A fetch sent to the shard that does not own the partition (as with
    # stale metadata) still gets the partition's records, over the mesh.
    for p in range(PARTITIONS):
        owner = BROKER_IDS.index(leader_of[p])
        other = shard_address(broker, 1 - owner)
        answer = kafka_wire.fetch(other, [(topic, p, 0, 1 << 20)])
        error, high_watermark, data = answer[(topic, p)]
        assert (error, high_watermark) == (0, PER_PARTITION), f"partition {p} via the other shard"
        assert kafka_wire.batch_offsets(data)[-1][1] == PER_PARTITION - 1

    broker.stop()
    counts = routed(broker)
    for shard in range(SHARDS):
        produce_here, produce_forwarded, _, fetch_forwarded = counts[shard]
        assert produce_here > 0, f"shard {shard} produced nothing itself: {counts}"
        assert produce_forwarded == 0, f"shard {shard} forwarded produce parts: {counts}"
        assert fetch_forwarded > 0, f"shard {shard}: the wrong-port fetches hop: {counts}"
    assert sum(c[3] for c in counts.values()) == PARTITIONS, counts


def group_coordinator_id(broker, group):
    _, offsets_leaders = leaders(broker.bootstrap, "__consumer_offsets")
    assert len(offsets_leaders) == OFFSETS_PARTITIONS
    return offsets_leaders[java_hash_partition(group, OFFSETS_PARTITIONS)]


def test_confluent_group_consume_and_commit(shard_broker, topic):
    broker = shard_broker
    clients.create_topic(broker.bootstrap, topic, PARTITIONS)
    prod = clients.producer(broker.bootstrap)
    log = clients.DeliveryLog()
    for i in range(PARTITIONS * PER_PARTITION):
        prod.produce(topic, value=f"v{i}".encode(), partition=i % PARTITIONS, on_delivery=log)
    clients.flush(prod)
    assert log.errors == []

    group = f"{topic}-group"
    consumer = clients.consumer(
        broker.bootstrap, **{"group.id": group, "auto.offset.reset": "earliest", "enable.auto.offset.store": True}
    )
    got = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + REQUEST_TIMEOUT_S
        for _ in range(POLL_LIMIT):
            if len(got) >= PARTITIONS * PER_PARTITION or time.monotonic() > deadline:
                break
            for msg in consumer.consume(num_messages=500, timeout=0.5):
                if msg.error() is None:
                    got.append(msg)
        assert len(got) == PARTITIONS * PER_PARTITION
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()

    check = clients.consumer(broker.bootstrap, **{"group.id": group})
    try:
        committed = check.committed(
            [ConfluentTopicPartition(topic, p) for p in range(PARTITIONS)], timeout=REQUEST_TIMEOUT_S
        )
    finally:
        check.close()
    assert sorted((tp.partition, tp.offset) for tp in committed) == [(p, PER_PARTITION) for p in range(PARTITIONS)]

    # The coordinator librdkafka was sent to is the shard owning the group's
    # __consumer_offsets partition.
    confluent_admin = clients.admin(broker.bootstrap)  # kept alive until the answer is in
    description = confluent_admin.describe_consumer_groups([group], request_timeout=REQUEST_TIMEOUT_S)
    coordinator = description[group].result(timeout=REQUEST_TIMEOUT_S).coordinator
    expected = group_coordinator_id(broker, group)
    assert coordinator.id == expected
    assert coordinator.port == broker.shard_ports[BROKER_IDS.index(expected)]

    broker.stop()
    counts = routed(broker)
    assert all(c[1] == 0 and c[3] == 0 for c in counts.values()), f"no hop with real clients: {counts}"
    assert all(c[0] > 0 and c[2] > 0 for c in counts.values()), counts


def test_kafka_python_group_consume_commit_and_list(shard_broker, topic):
    broker = shard_broker
    clients.create_topic(broker.bootstrap, topic, PARTITIONS)
    prod = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", enable_idempotence=False, linger_ms=5)
    try:
        futures = [prod.send(topic, value=f"v{i}".encode(), partition=i % PARTITIONS) for i in range(PARTITIONS * PER_PARTITION)]
        prod.flush(timeout=REQUEST_TIMEOUT_S)
        for future in futures:
            future.get(timeout=REQUEST_TIMEOUT_S)
    finally:
        prod.close(timeout=REQUEST_TIMEOUT_S)

    group = f"{topic}-group"
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        request_timeout_ms=REQUEST_TIMEOUT_S * 1000,
    )
    got = 0
    try:
        deadline = time.monotonic() + REQUEST_TIMEOUT_S
        for _ in range(POLL_LIMIT):
            if got >= PARTITIONS * PER_PARTITION or time.monotonic() > deadline:
                break
            got += sum(len(batch) for batch in consumer.poll(timeout_ms=200).values())
        assert got == PARTITIONS * PER_PARTITION
        consumer.commit()
        committed = {p: consumer.committed(KafkaTopicPartition(topic, p)) for p in range(PARTITIONS)}
    finally:
        consumer.close()
    assert committed == {p: PER_PARTITION for p in range(PARTITIONS)}

    # ListGroups goes to every broker: each shard lists only the groups it
    # coordinates, so the group shows up once.
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=REQUEST_TIMEOUT_S * 1000)
    try:
        listed = [g for g in admin.list_consumer_groups() if g[0] == group]
    finally:
        admin.close()
    assert len(listed) == 1, listed

    broker.stop()
    counts = routed(broker)
    assert all(c[1] == 0 and c[3] == 0 for c in counts.values()), f"no hop with real clients: {counts}"


def test_bench_follows_leaders_to_each_shard(shard_broker, topic):
    """`shoal bench` is a Kafka client too: in shard-aware mode it connects
    to each partition's shard and nothing hops."""
    broker = shard_broker
    common = ["--bootstrap", broker.bootstrap, "--topic", topic, "--record-size", "100"]
    produce = [shoal_bin(), "bench", "produce", *common, "--partitions", "8", "--records", "20000",
               "--acks", "-1", "--connections", "2", "--json"]
    consume = [shoal_bin(), "bench", "consume", *common, "--records", "20000", "--json"]
    for command in (produce, consume):
        done = subprocess.run(command, capture_output=True, text=True, timeout=REQUEST_TIMEOUT_S * 2)
        assert done.returncode == 0, done.stderr[-2000:]
        assert '"errors":{}' in done.stdout.replace(" ", ""), done.stdout
    broker.stop()
    counts = routed(broker)
    assert all(c[1] == 0 and c[3] == 0 for c in counts.values()), counts
    assert all(c[0] > 0 and c[2] > 0 for c in counts.values()), counts


def test_refuses_shard_ports_that_include_the_listener(broker_factory, tmp_root):
    """The shards' ports must not include the shared port; the broker says so
    at start instead of failing to bind half its listeners."""
    port = free_port()
    done = subprocess.run(
        [shoal_bin(), "serve", "--listen", f"{HOST}:{port}", "--data-dir", f"{tmp_root}/data", "--shards", "2",
         "--override", "listener.shard.aware=true", "--override", f"listener.shard.port.base={port - 1}"],
        capture_output=True, text=True, timeout=REQUEST_TIMEOUT_S,
    )
    assert done.returncode != 0
    assert "include the listener's port" in done.stderr, done.stderr
