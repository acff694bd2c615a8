"""Transactions across the nodes of a cluster (issue 15, scopes 6 and 7):
on three combined shoal nodes, a topic whose partitions are led by every
node, so that most of a transaction's partitions are led by nodes other
than its coordinator's. The partition leaders verify the producer's batches
with the coordinator's node (KIP-890: AddPartitionsToTxn v4+ in its broker
form; under transactions version 2 the batch adds its partition there), and
the coordinator writes its markers on the leaders' nodes (WriteTxnMarkers).

- The Java producer with its defaults (transactions version 1 and 2) and
  librdkafka's commit and abort transactions touching every partition; a
  read_committed consumer reads exactly the committed records.
- kill -9 of the coordinator's node inside a transaction, while
  transactions stream: the producer finds the new coordinator and goes on; every transaction it saw commit is
  read back whole, none it saw abort is read, none is read in part."""

import os
import sys
import time

import pytest
from confluent_kafka import KafkaException, Producer

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import clients  # noqa: E402
from client_programs import unb64  # noqa: E402
from cluster import Cluster, checker  # noqa: E402
from cluster.quorum import settled_leader  # noqa: E402
from cluster.waiting import SHOAL_NODE, wait_until  # noqa: E402
from test_cluster_placement import java_hash_partition  # noqa: E402
from test_coordinator_failover import ELECTION_WAIT_S, FAILOVER_WAIT_S, create_replicated  # noqa: E402
from test_transactions import java_built  # noqa: E402,F401 (a fixture, taken by name)
from test_transactions import read_values, txn_id  # noqa: E402
from test_txn_version2 import transact  # noqa: E402

pytestmark = [pytest.mark.shoal_only, pytest.mark.timeout(420)]

NODES = 3
# Enough partitions that the placer gives every node some to lead.
PARTITIONS = 6
TXN_STATE_TOPIC = "__transaction_state"
RECORDS_PER_TXN = 12
# Transactions the kill -9 test streams: some before the kill, the rest
# through the failover and after it.
STREAMED_TXNS = 24
KILL_AFTER_TXNS = 6
# A commit or abort the failover interrupts is tried again for this long
# (the broker session, the election, the coordinator's load).
END_RETRY_S = FAILOVER_WAIT_S


def leaders_on_every_node(bootstrap, topic):
    """{partition: leader} once the topic's leaders cover every node."""
    states = checker.quietly(lambda: checker.partition_states(bootstrap, topic)) or {}
    leaders = {p: leader for p, (leader, _, _) in states.items()}
    return leaders if len(leaders) == PARTITIONS and len(set(leaders.values())) == NODES else None


def spread_cluster(cluster, topic):
    """A settled cluster with `topic` replicated on every node and its
    leaders on every node; returns the bootstrap string."""
    settled_leader(cluster, ELECTION_WAIT_S)
    bootstrap = ",".join(node.bootstrap for node in cluster.nodes)
    create_replicated(bootstrap, topic, PARTITIONS)
    wait_until(lambda: leaders_on_every_node(bootstrap, topic), FAILOVER_WAIT_S, f"{topic}'s leaders on every node")
    return bootstrap


def txn_values(prefix, count=RECORDS_PER_TXN):
    return [f"{prefix}-{i}".encode() for i in range(count)]


def by_partition(vals):
    """The values as produced round-robin over every partition."""
    return {p: vals[p::PARTITIONS] for p in range(PARTITIONS)}


@pytest.mark.parametrize("level", [1, 2])
def test_java_transactions_span_partitions_led_by_every_node(java_built, level):  # noqa: F811
    topic = "txn-span-java"
    with Cluster(NODES, f"{SHOAL_NODE} transaction.version={level}") as cluster:
        bootstrap = spread_cluster(cluster, topic)
        committed, aborted, again = txn_values("commit"), txn_values("abort"), txn_values("again")
        out = transact(bootstrap, topic, txn_id(),
                       [("commit", committed), ("abort", aborted), ("commit", again)], PARTITIONS)
        read = {int(p): [unb64(v) for v in vals] for p, vals in out["read_committed"]["values"].items()}
        assert read == {p: committed[p::PARTITIONS] + again[p::PARTITIONS] for p in range(PARTITIONS)}
        assert read_values(bootstrap, topic, PARTITIONS, "read_committed") == read


def transactional_producer(bootstrap, transactional_id):
    return Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                     "logger": clients.LIBRDKAFKA_LOG})


def run_transaction(producer, topic, vals, commit, before_end=None):
    """One transaction of `vals` over every partition, ended as asked
    (`before_end()` called first, if given): "committed" or "aborted". A
    retriable failure of the end is tried again; an abortable one is
    aborted, as librdkafka asks; any other fails the test."""
    producer.begin_transaction()
    for i, v in enumerate(vals):
        producer.produce(topic, value=v, partition=i % PARTITIONS)
        producer.poll(0)
    if before_end is not None:
        before_end()
    deadline = time.monotonic() + END_RETRY_S
    while True:
        try:
            if commit:
                producer.commit_transaction(clients.REQUEST_TIMEOUT_S)
                return "committed"
            producer.abort_transaction(clients.REQUEST_TIMEOUT_S)
            return "aborted"
        except KafkaException as e:
            error = e.args[0]
            if error.txn_requires_abort():
                commit = False
            elif not error.retriable() or time.monotonic() >= deadline:
                raise


def test_confluent_transactions_span_partitions_led_by_every_node():
    topic = "txn-span-confluent"
    with Cluster(NODES, SHOAL_NODE) as cluster:
        bootstrap = spread_cluster(cluster, topic)
        producer = transactional_producer(bootstrap, txn_id())
        producer.init_transactions(FAILOVER_WAIT_S)
        expected = {p: [] for p in range(PARTITIONS)}
        for i in range(4):
            commit = i % 2 == 0
            vals = txn_values(f"confluent-{i}")
            assert run_transaction(producer, topic, vals, commit) == ("committed" if commit else "aborted")
            if commit:
                for p, part in by_partition(vals).items():
                    expected[p].extend(part)
        assert read_values(bootstrap, topic, PARTITIONS, "read_committed") == expected


def coordinator_index(cluster, bootstrap, transactional_id):
    """The index of the node leading `transactional_id`'s
    `__transaction_state` partition."""
    states = wait_until(lambda: checker.quietly(lambda: checker.partition_states(bootstrap, TXN_STATE_TOPIC)),
                        FAILOVER_WAIT_S, "__transaction_state's leaders")
    leader = states[java_hash_partition(transactional_id, len(states))][0]
    return next(node.index for node in cluster.nodes if node.node_id == leader)


def test_transactions_go_on_through_kill9_of_the_coordinators_node():
    topic = "txn-span-failover"
    with Cluster(NODES, SHOAL_NODE) as cluster:
        bootstrap = spread_cluster(cluster, topic)
        transactional_id = txn_id()
        producer = transactional_producer(bootstrap, transactional_id)
        producer.init_transactions(FAILOVER_WAIT_S)
        victim = coordinator_index(cluster, bootstrap, transactional_id)
        outcomes = {}
        for i in range(STREAMED_TXNS):
            # The kill lands inside a transaction: its records sent, its
            # commit not yet asked.
            kill = (lambda: cluster.kill9(victim)) if i == KILL_AFTER_TXNS else None
            commit = i % 3 != 2
            vals = txn_values(f"failover-{i}")
            outcomes[i] = (run_transaction(producer, topic, vals, commit, before_end=kill), vals)
        assert any(outcome == "committed" for i, (outcome, _) in outcomes.items() if i > KILL_AFTER_TXNS), \
            f"no commit after the kill: {outcomes}"

        survivors = ",".join(node.bootstrap for node in cluster.nodes if node.index != victim)
        assert coordinator_index(cluster, survivors, transactional_id) != victim
        read = read_values(survivors, topic, PARTITIONS, "read_committed")
        read_set = {v for vals in read.values() for v in vals}
        for i, (outcome, vals) in outcomes.items():
            got = [v for v in vals if v in read_set]
            if outcome == "committed":
                assert got == vals, f"committed transaction {i} read as {got}"
            else:
                assert got == [], f"aborted transaction {i} read as {got}"
        expected = {p: [] for p in range(PARTITIONS)}
        for _, (outcome, vals) in sorted(outcomes.items()):
            if outcome == "committed":
                for p, part in by_partition(vals).items():
                    expected[p].extend(part)
        assert read == expected, "each partition holds the committed transactions in order"
