"""Transactions version 2 (KIP-890 part 2) with the Java client of Kafka
4.4, which runs it when the broker finalizes `transaction.version` at 2 in
ApiVersions (shoal's `transaction.version` config; Kafka's format-time
feature level, which tests/kafka/kafka-server sets from the same key).
Version 2 shows in the epochs: every EndTxn bumps the producer's epoch,
on the coordinator (DescribeTransactions) and in the markers each
partition keeps (DescribeProducers); version 1 keeps epoch 0. The same
transactions read the same either way, and the state survives a restart
(level 2 writes `__transaction_state` value v1, read back at start)."""

import json
import subprocess

import pytest

import clients
import test_java_clients as java_clients
from client_programs import b64, unb64
from test_transactions import java_built  # noqa: F401 (a fixture, taken by name)
from test_transactions import joined, read_values, shoal_tool, spread, tool_rows, txn_id, values


def transact(bootstrap, topic, transactional_id, transactions, partitions=2):
    """Runs the Java `transact` program: each transaction's records spread
    round-robin over `partitions`, ended as it says. Returns its output."""
    stdin = json.dumps([
        {"end": end, "records": [{"partition": i % partitions, "value": b64(v)} for i, v in enumerate(vals)]}
        for end, vals in transactions
    ])
    proc = subprocess.run(
        java_clients.command("transact", "-brokers", bootstrap, "-topic", topic, "-transactional-id",
                             transactional_id),
        input=stdin, capture_output=True, text=True,
        timeout=java_clients.PROGRAM_TIMEOUT_S + java_clients.KILL_MARGIN_S,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


def epochs(bootstrap, topic, transactional_id):
    """The id's epoch on its coordinator and on partition 0 (its last
    marker there), and its state."""
    [txn] = tool_rows(shoal_tool("describe", "--transactional-id", transactional_id, "--bootstrap",
                                 bootstrap).stdout)
    producers = tool_rows(shoal_tool("describe-producers", "--topic", topic, "--partition", "0",
                                     "--bootstrap", bootstrap).stdout)
    [producer] = [p for p in producers if p["ProducerId"] == txn["ProducerId"]]
    return int(txn["ProducerEpoch"]), int(producer["ProducerEpoch"]), txn["TransactionState"]


@pytest.mark.parametrize("level", [1, 2])
def test_java_producer_runs_the_finalized_transactions_version(broker_factory, topic, java_built, level):
    """Commit, abort, and one left open (the program aborts it at its end):
    read_committed sees the commit only; under version 2 each of the three
    ends bumped the epoch, under version 1 none did."""
    broker = broker_factory({"transaction.version": str(level)})
    b = broker.bootstrap
    clients.create_topic(b, topic, 2)
    committed, aborted, left_open = values("v2-commit", 6), values("v2-abort", 6), values("v2-open", 6)
    transactional_id = txn_id()
    out = transact(b, topic, transactional_id,
                   [("commit", committed), ("abort", aborted), ("open", left_open)])

    def decoded(read):
        return {int(p): [unb64(v) for v in vals] for p, vals in read["values"].items()}

    # Per partition: 3 records and a marker for each of the first two, then
    # the open transaction's 3; its abort marker comes after.
    assert out["read_committed"]["ends"] == {"0": 8, "1": 8}
    assert decoded(out["read_committed"]) == spread(committed, 2)
    assert decoded(out["read_uncommitted"]) == joined(spread(committed, 2), spread(aborted, 2),
                                                      spread(left_open, 2))
    assert out["ends_after"] == {"0": 12, "1": 12}
    bumps = 3 if level >= 2 else 0
    assert epochs(b, topic, transactional_id) == (bumps, bumps, "CompleteAbort")

    if level >= 2:
        # Restarted, the coordinator reads its records back: the next
        # producer of the id starts one epoch on, and ends twice more.
        broker.restart()
        assert epochs(b, topic, transactional_id) == (3, 3, "CompleteAbort")
        again = values("v2-again", 4)
        out = transact(b, topic, transactional_id, [("commit", again)])
        assert epochs(b, topic, transactional_id) == (5, 5, "CompleteCommit")
        assert read_values(b, topic, 2, "read_committed") == joined(spread(committed, 2), spread(again, 2))
