"""Transactions with real clients: librdkafka's transactional producer and
read_committed consumer, a consume-transform-produce application killed
mid-transaction, zombie fencing, the broker killed mid-transaction,
transactions the broker aborts on timeout, and the Java client's
transactional KafkaProducer with a read_committed KafkaConsumer.

Kafka Streams with exactly_once_v2 is in test_kafka_streams.py."""

import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import uuid

import pytest
from confluent_kafka import IsolationLevel, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import OffsetSpec

import clients
import test_java_clients as java_clients
from client_programs import b64, unb64
from conftest import SETPRIV, make_temp_dir, read_text, remove_temp_dir, shoal_bin, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
TXN_APP = os.path.join(HERE, "helpers", "txn_app.py")
REQUEST_TIMEOUT_S = 15
# librdkafka's own bound on a transactional call is the transaction timeout;
# the tests give each call this much instead.
CALL_TIMEOUT_S = 30
# What a fenced producer is told: librdkafka's own fatal error, or the
# broker's code where it passes it through.
FENCED = (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH)
SEED = int(os.environ.get("SHOAL_CRASH_SEED", random.SystemRandom().randrange(1 << 32)))


def txn_producer(bootstrap, transactional_id, **config):
    conf = {
        "bootstrap.servers": bootstrap,
        "transactional.id": transactional_id,
        "linger.ms": 5,
        "logger": clients.LIBRDKAFKA_LOG,
    }
    conf.update({k.replace("_", "."): v for k, v in config.items()})
    prod = Producer(conf)
    prod.init_transactions(CALL_TIMEOUT_S)
    return prod


def txn_id():
    return f"txn-{uuid.uuid4().hex[:10]}"


def values(prefix, count):
    return [f"{prefix}-{i}".encode() for i in range(count)]


def produce_values(prod, topic, partitions, vals):
    """Spreads vals round-robin over the partitions and waits for every ack."""
    for i, v in enumerate(vals):
        prod.produce(topic, value=v, partition=i % partitions)
        prod.poll(0)
    clients.flush(prod)


def read_values(bootstrap, topic, partitions, isolation, timeout_s=clients.CONSUME_TIMEOUT_S):
    """Every value a consumer with `isolation` ("read_committed" or
    "read_uncommitted") reads from offset 0 to the end it is allowed to see
    (its partition EOF), as {partition: [values]}."""
    c = clients.consumer(bootstrap, isolation_level=isolation)
    got = {p: [] for p in range(partitions)}
    eof = set()
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        deadline = time.monotonic() + timeout_s
        while len(eof) < partitions:
            assert time.monotonic() < deadline, f"no EOF of {topic} within {timeout_s}s: read {got}"
            for m in c.consume(num_messages=500, timeout=clients.POLL_TIMEOUT_S):
                err = m.error()
                if err is None:
                    got[m.partition()].append(m.value())
                    eof.discard(m.partition())
                elif err.code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                else:
                    raise KafkaException(err)
    finally:
        c.close()
    return got


def spread(vals, partitions):
    """What produce_values put on each partition, in order."""
    return {p: vals[p::partitions] for p in range(partitions)}


def joined(*parts):
    out = {}
    for part in parts:
        for p, vals in part.items():
            out.setdefault(p, []).extend(vals)
    return out


def latest(bootstrap, topic, partitions, isolation):
    """ListOffsets LATEST per partition at `isolation`: the high watermark
    for READ_UNCOMMITTED, the last stable offset for READ_COMMITTED."""
    client = clients.admin(bootstrap)  # kept alive until the answer is in
    tps = {TopicPartition(topic, p): OffsetSpec.latest() for p in range(partitions)}
    futures = client.list_offsets(tps, isolation_level=isolation, request_timeout=REQUEST_TIMEOUT_S)
    return {tp.partition: f.result(timeout=REQUEST_TIMEOUT_S).offset for tp, f in futures.items()}


def test_read_committed_sees_committed_transactions_only(broker, topic):
    b = broker.bootstrap
    clients.create_topic(b, topic, 2)
    prod = txn_producer(b, txn_id())
    first, aborted, last = values("first", 20), values("aborted", 20), values("last", 20)
    for vals, commit in [(first, True), (aborted, False), (last, True)]:
        prod.begin_transaction()
        produce_values(prod, topic, 2, vals)
        if commit:
            prod.commit_transaction(CALL_TIMEOUT_S)
        else:
            prod.abort_transaction(CALL_TIMEOUT_S)
    assert read_values(b, topic, 2, "read_committed") == joined(spread(first, 2), spread(last, 2))
    assert read_values(b, topic, 2, "read_uncommitted") == joined(spread(first, 2), spread(aborted, 2), spread(last, 2))
    # No transaction is open: the last stable offset is the high watermark,
    # past every record and control record.
    ends = latest(b, topic, 2, IsolationLevel.READ_UNCOMMITTED)
    assert latest(b, topic, 2, IsolationLevel.READ_COMMITTED) == ends
    # Each partition holds its 30 records and a marker per transaction.
    assert ends == {0: 33, 1: 33}


def test_read_committed_stops_at_the_last_stable_offset(broker, topic):
    """A consumer reading committed data never reads past the first offset of
    an open transaction, not even records that other producers wrote after
    it outside any transaction; once the transaction commits, it reads on."""
    b = broker.bootstrap
    clients.create_topic(b, topic, 1)
    plain = clients.producer(b)
    before = values("before", 5)
    produce_values(plain, topic, 1, before)
    prod = txn_producer(b, txn_id())
    prod.begin_transaction()
    open_txn = values("open", 10)
    produce_values(prod, topic, 1, open_txn)
    after = values("after", 5)
    produce_values(plain, topic, 1, after)

    assert latest(b, topic, 1, IsolationLevel.READ_UNCOMMITTED) == {0: 20}
    assert latest(b, topic, 1, IsolationLevel.READ_COMMITTED) == {0: 5}
    assert read_values(b, topic, 1, "read_committed") == {0: before}
    assert read_values(b, topic, 1, "read_uncommitted") == {0: before + open_txn + after}

    # A consumer already waiting at the last stable offset gets the rest as
    # soon as the transaction commits.
    c = clients.consumer(b, isolation_level="read_committed")
    try:
        c.assign([TopicPartition(topic, 0, 5)])
        first_poll = c.consume(num_messages=100, timeout=1.0)
        assert [m.value() for m in first_poll if m.error() is None] == []
        prod.commit_transaction(CALL_TIMEOUT_S)
        got = []
        deadline = time.monotonic() + clients.CONSUME_TIMEOUT_S
        while len(got) < 15:
            assert time.monotonic() < deadline, f"read {got} after the commit"
            for m in c.consume(num_messages=100, timeout=clients.POLL_TIMEOUT_S):
                if m.error() is None:
                    got.append(m.value())
                elif m.error().code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(m.error())
        assert got == open_txn + after
    finally:
        c.close()
    assert latest(b, topic, 1, IsolationLevel.READ_COMMITTED) == {0: 21}


def test_an_older_producer_with_the_same_transactional_id_is_fenced(broker, topic):
    b = broker.bootstrap
    clients.create_topic(b, topic, 1)
    shared = txn_id()
    older = txn_producer(b, shared)
    older.begin_transaction()
    produce_values(older, topic, 1, values("older", 5))
    # The newer producer's InitProducerId bumps the epoch and aborts the
    # older one's open transaction.
    newer = txn_producer(b, shared)
    newer.begin_transaction()
    produce_values(newer, topic, 1, values("newer", 5))
    newer.commit_transaction(CALL_TIMEOUT_S)
    with pytest.raises(KafkaException) as raised:
        older.commit_transaction(CALL_TIMEOUT_S)
    error = raised.value.args[0]
    assert error.fatal() and error.code() in FENCED, error
    assert read_values(b, topic, 1, "read_committed") == {0: values("newer", 5)}
    assert read_values(b, topic, 1, "read_uncommitted") == {0: values("older", 5) + values("newer", 5)}


# How often the broker looks for timed-out transactions: a second, not
# Kafka's default 10 s, so that the test does not wait for the default.
TIMEOUT_CHECK_INTERVAL_MS = 1000
STALL_TIMEOUT_MS = 10000


def test_the_broker_aborts_a_transaction_that_outlives_its_timeout(broker_factory, topic):
    """A producer that begins a transaction and stalls past
    transaction.timeout.ms: the broker aborts it (it checks every
    transaction.abort.timed.out.transaction.cleanup.interval.ms), the last
    stable offset moves past it, and the producer is fenced."""
    broker = broker_factory(
        overrides={"transaction.abort.timed.out.transaction.cleanup.interval.ms": TIMEOUT_CHECK_INTERVAL_MS},
        shards=2,
    )
    b = broker.bootstrap
    clients.create_topic(b, topic, 1)
    # Long enough that a loaded machine still checks the held-back last
    # stable offset before the timeout passes (2 s was not, once, in CI).
    stalled = txn_producer(b, txn_id(), transaction_timeout_ms=STALL_TIMEOUT_MS,
                           message_timeout_ms=STALL_TIMEOUT_MS)
    stalled.begin_transaction()
    produce_values(stalled, topic, 1, values("stalled", 5))
    plain = clients.producer(b)
    after = values("after", 5)
    produce_values(plain, topic, 1, after)
    assert latest(b, topic, 1, IsolationLevel.READ_COMMITTED) == {0: 0}
    # The abort marker is one offset past the ten records.
    wait_until(lambda: latest(b, topic, 1, IsolationLevel.READ_COMMITTED) == {0: 11}, 40,
               "the broker to abort the timed-out transaction", interval_s=0.5)
    assert read_values(b, topic, 1, "read_committed") == {0: after}
    with pytest.raises(KafkaException) as raised:
        stalled.commit_transaction(CALL_TIMEOUT_S)
    assert raised.value.args[0].code() in FENCED + (KafkaError.INVALID_TXN_STATE,), raised.value.args[0]


class App:
    """One run of helpers/txn_app.py; its stderr (librdkafka's log) goes to a
    file, shown when a check fails."""

    def __init__(self, root, run, args):
        self.log_path = os.path.join(root, f"app-{run}.log")
        self.log = open(self.log_path, "wb")
        cmd = [sys.executable, TXN_APP, *args]
        if SETPRIV:
            cmd = [SETPRIV, "--pdeathsig", "KILL", "--", *cmd]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.decode().strip())

    def wait_for_line(self, line, timeout_s):
        deadline = time.monotonic() + timeout_s
        while line not in self.lines:
            self.assert_alive()
            assert time.monotonic() < deadline, (
                f"the app printed no {line!r} in {timeout_s}s:\n{read_text(self.log_path)[-3000:]}"
            )
            time.sleep(0.05)

    def assert_alive(self):
        assert self.proc.poll() is None, f"the app exited with {self.proc.returncode}:\n{read_text(self.log_path)[-3000:]}"

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self.reader.join(timeout=10)
        self.proc.stdout.close()
        self.log.close()


def test_consume_transform_produce_killed_mid_transaction(broker, topic):
    """The application is SIGKILLed with a transaction's output written but
    not committed; its restart fences it, aborts that transaction and goes
    on from the offsets committed with the output: each input is in the
    committed output exactly once, and the group's offsets are the input's
    end."""
    b = broker.bootstrap
    partitions = 2
    source, sink, group = f"{topic}-in", f"{topic}-out", f"{topic}-group"
    clients.create_topic(b, source, partitions)
    clients.create_topic(b, sink, partitions)
    inputs = values("input", 200)
    produce_values(clients.producer(b), source, partitions, inputs)
    root = make_temp_dir("shoal-txn-app-")
    apps = []
    args = ["--bootstrap", b, "--input", source, "--output", sink, "--group", group,
            "--transactional-id", txn_id(), "--partitions", str(partitions)]
    try:
        apps.append(App(root, 1, [*args, "--stall-at", "3"]))
        apps[0].wait_for_line("stalled", 60)
        apps[0].kill()
        # The stalled transaction's output is in the log, uncommitted.
        stalled = latest(b, sink, partitions, IsolationLevel.READ_UNCOMMITTED)
        assert latest(b, sink, partitions, IsolationLevel.READ_COMMITTED) != stalled

        apps.append(App(root, 2, args))
        ends = latest(b, source, partitions, IsolationLevel.READ_UNCOMMITTED)
        def all_committed():
            apps[1].assert_alive()
            return clients.committed(b, group, source, partitions, isolation_level="read_committed") == ends

        wait_until(all_committed, 60, "the restarted application to commit all its input", interval_s=0.3)
    finally:
        for app in apps:
            app.kill()
        remove_temp_dir(root)
    expected = {p: [b"out:" + v for v in vals] for p, vals in spread(inputs, partitions).items()}
    assert read_values(b, sink, partitions, "read_committed") == expected
    uncommitted = read_values(b, sink, partitions, "read_uncommitted")
    assert sum(map(len, uncommitted.values())) > len(inputs), "nothing was written by the killed transaction"


def test_broker_killed_mid_transaction(broker, topic):
    """kill -9 of the broker with one transaction committed, one open and one
    being committed: after the restart each is in the log whole or not at
    all (the first whole), and no open transaction holds back the last
    stable offset."""
    rng = random.Random(f"{SEED}-broker-kill")
    print(f"SHOAL_CRASH_SEED={SEED}")
    b = broker.bootstrap
    partitions = 3
    clients.create_topic(b, topic, partitions)
    # Retries outlast a broker restart, a JVM's on a loaded machine too.
    config = {"transaction_timeout_ms": 90_000, "message_timeout_ms": 90_000, "reconnect_backoff_max_ms": 200}
    committed_txn, open_txn, committing_txn = values("committed", 30), values("open", 30), values("committing", 30)
    first = txn_producer(b, txn_id(), **config)
    first.begin_transaction()
    produce_values(first, topic, partitions, committed_txn)
    first.commit_transaction(CALL_TIMEOUT_S)
    first.begin_transaction()
    produce_values(first, topic, partitions, open_txn)

    second_id = txn_id()
    second = txn_producer(b, second_id, **config)
    second.begin_transaction()
    produce_values(second, topic, partitions, committing_txn)
    outcome = {}

    def commit():
        try:
            second.commit_transaction(90)
            outcome["committed"] = True
        except KafkaException as e:
            outcome["error"] = e.args[0]

    committer = threading.Thread(target=commit, daemon=True)
    committer.start()
    time.sleep(rng.uniform(0.0, 0.05))
    broker.kill9()
    broker.start()
    committer.join(timeout=100)
    assert not committer.is_alive(), "commit_transaction did not return"
    if "error" in outcome:
        # The commit may or may not have reached the coordinator: a new
        # producer's InitProducerId completes or aborts whatever it left.
        txn_producer(b, second_id, **config)

    # The open transaction: its producer goes on and aborts it.
    first.abort_transaction(90)
    # EndTxn is answered once PrepareAbort is durable, and the markers that
    # follow move the high watermark too: both are read afresh each time.
    wait_until(
        lambda: latest(b, topic, partitions, IsolationLevel.READ_COMMITTED)
        == latest(b, topic, partitions, IsolationLevel.READ_UNCOMMITTED),
        30,
        "the last stable offset to reach the high watermark",
        interval_s=0.5,
    )
    got = read_values(b, topic, partitions, "read_committed")
    whole = joined(spread(committed_txn, partitions), spread(committing_txn, partitions))
    none = spread(committed_txn, partitions)
    assert got in (whole, none), f"half a transaction: {got}"
    if outcome.get("committed"):
        assert got == whole


@pytest.fixture
def java_built():
    """As test_java_clients.py's module fixture, for the one Java test here."""
    if shutil.which("javac") is None:
        pytest.skip("no JDK: tests/run could not install one")
    check = subprocess.run([java_clients.BUILD, "--check"], capture_output=True, text=True, timeout=60)
    if check.returncode != 0:
        pytest.fail(f"tests/java/build --check: {check.stderr.strip()}")


def test_java_transactional_producer_and_read_committed_consumer(broker, topic, java_built):
    """KafkaProducer with a transactional.id commits, aborts and leaves one
    transaction open; KafkaConsumer read_committed reads the committed
    records only and stops at the open transaction (its endOffsets is the
    last stable offset), read_uncommitted reads them all."""
    b = broker.bootstrap
    clients.create_topic(b, topic, 2)
    committed_vals, aborted, open_vals = values("java-commit", 10), values("java-abort", 10), values("java-open", 10)

    def txn(end, vals):
        return {"end": end, "records": [{"partition": i % 2, "value": b64(v)} for i, v in enumerate(vals)]}

    stdin = json.dumps([txn("commit", committed_vals), txn("abort", aborted), txn("open", open_vals)])
    proc = subprocess.run(
        java_clients.command("transact", "-brokers", b, "-topic", topic, "-transactional-id", txn_id()),
        input=stdin, capture_output=True, text=True,
        timeout=java_clients.PROGRAM_TIMEOUT_S + java_clients.KILL_MARGIN_S,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout)

    def decoded(read):
        return {int(p): [unb64(v) for v in vals] for p, vals in read["values"].items()}

    # Per partition: 5 committed records and their marker, 5 aborted and
    # their marker, then the open transaction's 5.
    assert out["read_committed"]["ends"] == {"0": 12, "1": 12}
    assert out["read_uncommitted"]["ends"] == {"0": 17, "1": 17}
    assert decoded(out["read_committed"]) == spread(committed_vals, 2)
    assert decoded(out["read_uncommitted"]) == joined(spread(committed_vals, 2), spread(aborted, 2), spread(open_vals, 2))
    assert out["ends_after"] == {"0": 18, "1": 18}
    assert read_values(b, topic, 2, "read_committed") == spread(committed_vals, 2)


def tool_rows(output):
    """kafka-transactions.sh's tables (shoal's tool prints the same): cells
    padded to their column's width, each followed by a tab; header first.
    Returns [{header: cell}]."""
    lines = [[cell.strip() for cell in line.split("\t")[:-1]] for line in output.splitlines() if line.strip()]
    assert lines, f"no table in {output!r}"
    header = lines[0]
    assert all(len(line) == len(header) for line in lines), output
    return [dict(zip(header, line)) for line in lines[1:]]


def shoal_tool(*args, check=True):
    result = subprocess.run([shoal_bin(), "transactions", *args], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=60)
    if check:
        assert result.returncode == 0, f"shoal transactions {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def open_and_committed(bootstrap, topic):
    """A transaction left open on partition 0 (three records from offset 0)
    and one committed on partition 1: returns their transactional ids and
    the open one's producer, which must stay alive."""
    open_id, done_id = txn_id(), txn_id()
    done = txn_producer(bootstrap, done_id)
    done.begin_transaction()
    done.produce(topic, value=b"done", partition=1)
    clients.flush(done)
    done.commit_transaction(CALL_TIMEOUT_S)
    hanging = txn_producer(bootstrap, open_id, transaction_timeout_ms=120_000)
    hanging.begin_transaction()
    produce_values(hanging, topic, 1, values("open", 3))
    return open_id, done_id, hanging


def test_shoal_transactions_tool(broker, topic):
    """`shoal transactions list | describe | describe-producers | abort`,
    against any Kafka-compatible broker: the open transaction is listed and
    described with its partition, its producer with its start offset; abort
    by that offset writes the marker that lets read_committed consumers past
    it."""
    b = broker.bootstrap
    clients.create_topic(b, topic, 2)
    # The open transaction's producer goes unused: the tool ends its
    # transaction on the partition, as for a producer that hung.
    open_id, done_id, _ = open_and_committed(b, topic)

    listed = {r["TransactionalId"]: r for r in tool_rows(shoal_tool("list", "--bootstrap", b).stdout)}
    assert listed[open_id]["TransactionState"] == "Ongoing"
    assert listed[done_id]["TransactionState"] == "CompleteCommit"
    [described] = tool_rows(shoal_tool("describe", "--transactional-id", open_id, "--bootstrap", b).stdout)
    assert described["TransactionalId"] == open_id
    assert described["ProducerId"] == listed[open_id]["ProducerId"]
    assert described["CoordinatorId"] == listed[open_id]["Coordinator"]
    assert described["TransactionState"] == "Ongoing"
    assert described["TransactionTimeoutMs"] == "120000"
    assert int(described["CurrentTransactionStartTimeMs"]) > 0 and int(described["TransactionDurationMs"]) >= 0
    assert described["TopicPartitions"] == f"{topic}-0"
    unknown = shoal_tool("describe", "--transactional-id", "no-such-id", "--bootstrap", b, check=False)
    assert unknown.returncode == 1 and "TRANSACTIONAL_ID_NOT_FOUND" in unknown.stderr, unknown.stderr

    [producer] = tool_rows(shoal_tool("describe-producers", "--topic", topic, "--partition", "0",
                                      "--bootstrap", b).stdout)
    assert producer["ProducerId"] == listed[open_id]["ProducerId"]
    assert producer["ProducerEpoch"] == described["ProducerEpoch"]
    assert producer["LastSequence"] == "2"
    assert producer["CurrentTransactionStartOffset"] == "0"

    assert latest(b, topic, 2, IsolationLevel.READ_COMMITTED)[0] == 0
    wrong = shoal_tool("abort", "--topic", topic, "--partition", "0", "--start-offset", "1", "--bootstrap", b,
                       check=False)
    assert wrong.returncode == 1
    assert f"Could not find any open transactions starting at offset 1 on partition {topic}-0" in wrong.stderr
    shoal_tool("abort", "--topic", topic, "--partition", "0", "--start-offset", "0", "--bootstrap", b)
    # The ABORT marker follows the three records: the partition is stable
    # again, and read_committed consumers skip the aborted records.
    assert latest(b, topic, 2, IsolationLevel.READ_COMMITTED)[0] == 4
    assert read_values(b, topic, 2, "read_committed") == {0: [], 1: [b"done"]}

    # The older form names the producer outright; a producer that never
    # ended a transaction on the partition has no coordinator epoch (-1).
    other_id = txn_id()
    other = txn_producer(b, other_id)
    other.begin_transaction()
    other.produce(topic, value=b"other", partition=1)
    clients.flush(other)
    [row] = tool_rows(shoal_tool("describe", "--transactional-id", other_id, "--bootstrap", b).stdout)
    high = latest(b, topic, 2, IsolationLevel.READ_UNCOMMITTED)[1]
    assert latest(b, topic, 2, IsolationLevel.READ_COMMITTED)[1] == high - 1
    shoal_tool("abort", "--topic", topic, "--partition", "1", "--producer-id", row["ProducerId"],
               "--producer-epoch", row["ProducerEpoch"], "--coordinator-epoch", "-1", "--bootstrap", b)
    assert latest(b, topic, 2, IsolationLevel.READ_COMMITTED)[1] == high + 1
    assert read_values(b, topic, 2, "read_committed") == {0: [], 1: [b"done"]}
