"""The metadata log (`__cluster_metadata-0`): topics, configs and partition
counts live in it across restarts and kill -9, a snapshot bounds it, and a
data directory from before it (`shoal-topics.json`) is migrated once."""

import json
import os
import random
import threading
import time
import uuid

import pytest

import clients
import kafka_wire as wire

pytestmark = pytest.mark.shoal_only

METADATA_LOG = os.path.join("__cluster_metadata-0", "raft.log")


def create_topics(bootstrap, specs):
    """Creates {name: (partitions, config)} in one request."""
    from confluent_kafka.admin import NewTopic

    admin = clients.admin(bootstrap)  # kept alive until the answers are in
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=n, replication_factor=1, config=config) for name, (n, config) in specs.items()],
        request_timeout=clients.REQUEST_TIMEOUT_S,
    )
    for future in futures.values():
        future.result(timeout=clients.REQUEST_TIMEOUT_S)


def assert_topics(bootstrap, specs):
    """Every topic of {name: (partitions, config)} has its partitions and
    its config overrides, per Metadata and DescribeConfigs."""
    for name, (partitions, config) in specs.items():
        assert clients.topic_partitions(bootstrap, name) == list(range(partitions)), name
        described = clients.describe_topic_configs(bootstrap, name)
        for key, value in config.items():
            assert described[key].value == value, f"{name}: {key}"


def test_restart_keeps_topics_configs_and_partition_counts_through_the_log(broker_factory, topic):
    broker = broker_factory(shards=2)
    specs = {f"{topic}-{i}": (i + 1, {"retention.ms": str(1000 + i)}) for i in range(3)}
    create_topics(broker.bootstrap, specs)
    admin = clients.admin(broker.bootstrap)
    from confluent_kafka.admin import NewPartitions

    grown = f"{topic}-0"
    admin.create_partitions([NewPartitions(grown, 4)])[grown].result(timeout=clients.REQUEST_TIMEOUT_S)
    specs[grown] = (4, specs[grown][1])
    gone = f"{topic}-2"
    admin.delete_topics([gone])[gone].result(timeout=clients.REQUEST_TIMEOUT_S)
    del specs[gone]
    broker.restart()
    assert os.path.getsize(os.path.join(broker.data_dir, METADATA_LOG)) > 0
    assert not os.path.exists(os.path.join(broker.data_dir, "shoal-topics.json"))
    assert_topics(broker.bootstrap, specs)
    assert clients.topic_partitions(broker.bootstrap, gone) is None


KILL_AFTER_S_MAX = 3.0
CREATIONS_MAX = 200


def test_kill9_during_topic_creation_loses_no_acknowledged_topic(broker_factory, topic):
    broker = broker_factory(shards=2)
    rng = random.Random(f"kill9-creation-{topic}")
    acknowledged = []
    stop = threading.Event()

    def create_until_stopped():
        for i in range(CREATIONS_MAX):
            if stop.is_set():
                return
            name = f"{topic}-{i}"
            try:
                create_topics(broker.bootstrap, {name: (1 + i % 3, {"cleanup.policy": "compact"})})
            except Exception:
                return  # the broker is gone: this one may or may not exist
            acknowledged.append(name)

    creator = threading.Thread(target=create_until_stopped, daemon=True)
    creator.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 3:
        assert time.monotonic() < deadline, "no topic created in 30 s"
        time.sleep(0.01)
    time.sleep(rng.uniform(0, KILL_AFTER_S_MAX))
    broker.kill9()
    stop.set()
    creator.join(timeout=clients.REQUEST_TIMEOUT_S * 2)
    assert not creator.is_alive()
    broker.start()
    specs = {name: (1 + int(name.rsplit("-", 1)[1]) % 3, {"cleanup.policy": "compact"}) for name in acknowledged}
    print(f"{len(acknowledged)} topics acknowledged before kill -9")
    metadata = clients.admin(broker.bootstrap).list_topics(timeout=clients.REQUEST_TIMEOUT_S)
    for name, (partitions, _) in specs.items():
        assert name in metadata.topics, f"acknowledged topic {name} lost"
        assert sorted(metadata.topics[name].partitions) == list(range(partitions)), name
    assert_topics(broker.bootstrap, dict(list(specs.items())[-2:]))


LEGACY_NEXT_PRODUCER_ID = 7000


def producer_ids(bootstrap, count=3):
    """New producer ids from InitProducerId (no transactional id)."""
    with wire.connect(bootstrap) as sock:
        answers = [wire.init_producer_id(sock, i) for i in range(count)]
    assert [error for error, _, _ in answers] == [0] * count, answers
    return [producer_id for _, producer_id, _ in answers]


def test_a_topic_table_from_before_the_log_is_migrated_once(broker_factory, tmp_root, topic):
    data_dir = os.path.join(tmp_root, "data")
    os.makedirs(data_dir)
    old = [
        {
            "name": f"{topic}-a",
            "id": str(uuid.uuid4()),
            "partitions": 3,
            "configs": {"retention.ms": "123456"},
            "placement": [1, 0, 1],
        },
        {"name": f"{topic}-b", "id": str(uuid.uuid4()), "partitions": 1, "configs": {}, "placement": [0]},
    ]
    with open(os.path.join(data_dir, "shoal-topics.json"), "w") as f:
        json.dump(old, f)
    with open(os.path.join(data_dir, "shoal-producer-ids"), "w") as f:
        f.write(f"shoal-producer-ids 1\nnext_block_start {LEGACY_NEXT_PRODUCER_ID}\n")
    broker = broker_factory(shards=2, data_dir=data_dir)
    first_ids = producer_ids(broker.bootstrap)
    assert min(first_ids) >= LEGACY_NEXT_PRODUCER_ID, first_ids
    assert os.path.exists(os.path.join(data_dir, "shoal-producer-ids.migrated"))
    specs = {t["name"]: (t["partitions"], t["configs"]) for t in old}
    assert_topics(broker.bootstrap, specs)
    assert "migrated into the metadata log" in open(broker.log_path, errors="replace").read()
    assert not os.path.exists(os.path.join(data_dir, "shoal-topics.json"))
    assert os.path.exists(os.path.join(data_dir, "shoal-topics.json.migrated"))

    # Changes after the migration stay; the retired file is not read again.
    admin = clients.admin(broker.bootstrap)
    deleted = f"{topic}-b"
    admin.delete_topics([deleted])[deleted].result(timeout=clients.REQUEST_TIMEOUT_S)
    del specs[deleted]
    broker.restart()
    assert_topics(broker.bootstrap, specs)
    assert clients.topic_partitions(broker.bootstrap, deleted) is None
    assert "migrated into the metadata log" not in open(broker.log_path, errors="replace").read()
    # Blocks come from the log now: none is handed out twice.
    again = producer_ids(broker.bootstrap)
    assert min(again) > max(first_ids), (first_ids, again)


def test_a_snapshot_bounds_the_log_and_a_restart_reads_it(broker_factory, topic):
    broker = broker_factory(shards=2, overrides={"metadata.log.max.record.bytes.between.snapshots": "2000"})
    specs = {f"{topic}-{i}": (4, {"retention.ms": str(5000 + i)}) for i in range(12)}
    for name, spec in specs.items():
        create_topics(broker.bootstrap, {name: spec})
    assert "metadata log compacted to a snapshot" in open(broker.log_path, errors="replace").read()
    broker.restart()
    assert_topics(broker.bootstrap, specs)
    broker.kill9()
    broker.start()
    assert_topics(broker.bootstrap, specs)


def test_storage_format_writes_the_bootstrap_records_into_the_log(tmp_root):
    from test_storage import Node, shoal

    node = Node(tmp_root)
    cluster_id = shoal("storage", "random-uuid").stdout.strip()
    formatted = node.format(cluster_id)
    assert formatted.returncode == 0, formatted.stderr
    with open(os.path.join(node.data_dir, METADATA_LOG), "rb") as f:
        log = f.read()
    # FeatureLevelRecord's name, a compact string: its length + 1, then it.
    assert bytes([len("metadata.version") + 1]) + b"metadata.version" in log
