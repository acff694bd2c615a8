"""Coordinators on replicated internal topics (issue 15, scope 6): on three
combined shoal nodes `__consumer_offsets` and `__transaction_state` get
three replicas each, and a coordinator moves with the leadership of its
internal partition, reloading its state from the new leader's log.

- A group's committed offsets survive kill -9 of its coordinator's node:
  read through the other nodes once the partition has a new leader.
- A transaction left open survives a whole-cluster kill -9: the restarted
  cluster's transaction coordinator still knows it, so the next producer
  of its transactional id fences it (aborting it) and a read_committed
  consumer reads the records written after it. Had the state read as
  empty, the open transaction would hold the partition's last stable
  offset forever."""

import os
import sys
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import clients  # noqa: E402
from cluster import Cluster, checker  # noqa: E402
from cluster.waiting import SHOAL_NODE, wait_until  # noqa: E402
from cluster.quorum import settled_leader  # noqa: E402
from test_cluster_placement import java_hash_partition  # noqa: E402

pytestmark = [pytest.mark.shoal_only, pytest.mark.timeout(300)]

NODES = 3
REPLICAS = 3
# An election on a loaded two-core machine (Kafka's election timeout is 1 s).
ELECTION_WAIT_S = 30.0
# A killed node's session runs out, its partitions get new leaders and the
# coordinators there load (the broker session is a few seconds; the rest is
# a loaded machine).
FAILOVER_WAIT_S = 90.0
GROUP = "failover-group"
TOPIC = "failover-topic"
PARTITIONS = 4
COMMITTED = {p: 10 + p for p in range(PARTITIONS)}
TXN_TOPIC = "failover-txn"
TXN_STATE_TOPIC = "__transaction_state"
OPEN_RECORDS = 5
AFTER_RECORDS = 3
POLL_TIMEOUT_S = 0.5


def create_replicated(bootstrap, name, partitions):
    """Creates `name` with REPLICAS replicas once every broker is unfenced
    (the internal topics, made later, then get as many)."""
    wait_until(lambda: len(checker.live_brokers(bootstrap)) == NODES, FAILOVER_WAIT_S, "every broker unfenced")
    error = checker.create_topic(bootstrap, name, partitions)
    assert error is None, error
    clients.wait_for_partitions(bootstrap, name, partitions)


def replica_counts(bootstrap, topic):
    """Partition -> number of replicas, as Metadata names them."""
    return {p: len(replicas) for p, (_, replicas, _) in checker.partition_states(bootstrap, topic).items()}


def coordinator_id(bootstrap, group):
    client = clients.admin(bootstrap)  # alive until the answer is in
    futures = client.describe_consumer_groups([group], request_timeout=clients.REQUEST_TIMEOUT_S)
    return futures[group].result(timeout=clients.REQUEST_TIMEOUT_S).coordinator.id


def committed_through(bootstrap):
    """The group's committed offsets, or None while the coordinator moves."""
    try:
        return clients.committed(bootstrap, GROUP, TOPIC, PARTITIONS)
    except Exception:  # noqa: BLE001 - a moving coordinator answers errors clients retry
        return None


def test_committed_offsets_survive_kill9_of_the_coordinators_node():
    with Cluster(NODES, SHOAL_NODE) as cluster:
        settled_leader(cluster, ELECTION_WAIT_S)
        bootstrap = ",".join(node.bootstrap for node in cluster.nodes)
        create_replicated(bootstrap, TOPIC, PARTITIONS)
        consumer = clients.consumer(bootstrap, group_id=GROUP)
        try:
            consumer.commit(offsets=[TopicPartition(TOPIC, p, o) for p, o in COMMITTED.items()],
                            asynchronous=False)
        finally:
            consumer.close()
        assert set(replica_counts(bootstrap, "__consumer_offsets").values()) == {REPLICAS}
        assert clients.committed(bootstrap, GROUP, TOPIC, PARTITIONS) == COMMITTED

        victim_id = coordinator_id(bootstrap, GROUP)
        victim = next(node.index for node in cluster.nodes if node.node_id == victim_id)
        cluster.kill9(victim)
        others = ",".join(node.bootstrap for node in cluster.nodes if node.index != victim)

        def moved():
            got = committed_through(others)
            return got if got == COMMITTED else None

        wait_until(moved, FAILOVER_WAIT_S, f"group {GROUP}'s offsets after kill -9 of node {victim_id}")
        assert coordinator_id(others, GROUP) != victim_id


def transactional_producer(bootstrap, transactional_id):
    return Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                     "logger": clients.LIBRDKAFKA_LOG})


def colocated_transactional_id(bootstrap):
    """A transactional id whose coordinator is the leader of TXN_TOPIC-0,
    so that the restart is the only thing this test exercises (a
    coordinator on another node: test_txn_cluster.py)."""
    warm_up = transactional_producer(bootstrap, "failover-warm-up")
    warm_up.init_transactions(FAILOVER_WAIT_S)  # makes __transaction_state
    states = wait_until(lambda: checker.quietly(lambda: checker.partition_states(bootstrap, TXN_STATE_TOPIC)),
                        FAILOVER_WAIT_S, "__transaction_state's leaders")
    leader = checker.partition_states(bootstrap, TXN_TOPIC)[0][0]
    return next(f"failover-txn-{i}" for i in range(10_000)
                if states[java_hash_partition(f"failover-txn-{i}", len(states))][0] == leader)


def read_committed(bootstrap, wanted):
    """The values a read_committed consumer reads from the start of
    TXN_TOPIC, once it has `wanted` of them (fails after the wait)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "failover-reader",
                         "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "logger": clients.LIBRDKAFKA_LOG})
    values = []
    try:
        consumer.assign([TopicPartition(TXN_TOPIC, 0, 0)])
        deadline = time.monotonic() + FAILOVER_WAIT_S
        while len(values) < wanted:
            assert time.monotonic() < deadline, f"read_committed read {values} after {FAILOVER_WAIT_S}s"
            for msg in consumer.consume(num_messages=100, timeout=POLL_TIMEOUT_S):
                if msg.error() is None:
                    values.append(msg.value())
    finally:
        consumer.close()
    return values


def test_an_open_transaction_survives_a_whole_cluster_kill9():
    with Cluster(NODES, SHOAL_NODE) as cluster:
        settled_leader(cluster, ELECTION_WAIT_S)
        bootstrap = ",".join(node.bootstrap for node in cluster.nodes)
        create_replicated(bootstrap, TXN_TOPIC, 1)
        transactional_id = colocated_transactional_id(bootstrap)
        left_open = transactional_producer(bootstrap, transactional_id)
        left_open.init_transactions(FAILOVER_WAIT_S)
        left_open.begin_transaction()
        for i in range(OPEN_RECORDS):
            left_open.produce(TXN_TOPIC, value=f"open-{i}".encode(), partition=0)
        clients.flush(left_open)
        assert set(replica_counts(bootstrap, TXN_STATE_TOPIC).values()) == {REPLICAS}

        for node in cluster.nodes:
            cluster.kill9(node.index)
        for node in cluster.nodes:
            cluster.restart(node.index, wait=False)
        for node in cluster.nodes:
            cluster.wait_ready(node.index)
        settled_leader(cluster, ELECTION_WAIT_S)

        # The coordinator knows the open transaction: the next producer of
        # its id aborts it. Records written after it are then readable.
        transactional_producer(bootstrap, transactional_id).init_transactions(FAILOVER_WAIT_S)
        after = clients.producer(bootstrap)
        for i in range(AFTER_RECORDS):
            after.produce(TXN_TOPIC, value=f"after-{i}".encode(), partition=0)
        clients.flush(after)
        values = read_committed(bootstrap, AFTER_RECORDS)
        assert values == [f"after-{i}".encode() for i in range(AFTER_RECORDS)]
