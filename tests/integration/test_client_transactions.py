"""Idempotence and transactions with the pure-Python clients, kafka-python
(2.2 and later) and aiokafka: an idempotent producer, a committed and an
aborted transaction seen by read_committed and read_uncommitted consumers of
the same client, a read_committed consumer stopped by an open transaction,
consume-transform-produce with the input offsets sent to
the transaction (one instance left with a transaction open, the next one
fencing it and finishing the input), and a producer fenced by a newer one
with its transactional id.

Both clients are driven through one small adapter each, so that every test
states its checks once. librdkafka, the Java client and Kafka Streams are in
test_transactions.py and test_kafka_streams.py; franz-go in
test_go_clients.py."""

import asyncio
import time

import aiokafka
import aiokafka.errors
import kafka
import kafka.errors
import pytest

import clients
from conftest import wait_until
from test_transactions import joined, shoal_tool, spread, tool_rows, txn_id, values

REQUEST_TIMEOUT_S = 30
# Records each transaction of the consume-transform-produce app reads at most,
# so that the input takes several transactions.
BATCH_MAX = 25
POLL_MS = 200
# A read of what a consumer may see polls this long after the expected count,
# for records that should not be there.
EXTRA_POLL_MS = 500
APP_RUN_S = 60

pytestmark = pytest.mark.timeout(90)


class KafkaPython:
    """kafka-python's KafkaProducer and KafkaConsumer, called directly."""

    # What a fenced producer's commit raises: kafka-python's EndTxn is older
    # than v2, to which Kafka answers INVALID_PRODUCER_EPOCH, not
    # PRODUCER_FENCED.
    FENCED = kafka.errors.InvalidProducerEpochError

    def producer(self, bootstrap, **config):
        prod = kafka.KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5,
                                   request_timeout_ms=REQUEST_TIMEOUT_S * 1000, **config)
        if "transactional_id" in config:
            prod.init_transactions()
        return prod

    def send(self, prod, topic, partition, value, key=None):
        return prod.send(topic, key=key, value=value, partition=partition)

    def acked(self, futures):
        """(partition, offset) of each send, once the producer flushed."""
        return [(m.partition, m.offset) for m in (f.get(timeout=REQUEST_TIMEOUT_S) for f in futures)]

    def flush(self, prod):
        prod.flush(timeout=REQUEST_TIMEOUT_S)

    def begin(self, prod):
        prod.begin_transaction()

    def commit(self, prod):
        prod.commit_transaction()

    def abort(self, prod):
        prod.abort_transaction()

    def send_offsets(self, prod, topic, offsets, group):
        prod.send_offsets_to_transaction(
            {kafka.TopicPartition(topic, p): kafka.OffsetAndMetadata(o, "", -1) for p, o in offsets.items()}, group)

    def close_producer(self, prod):
        prod.close(timeout=REQUEST_TIMEOUT_S)

    def consumer(self, bootstrap, isolation, group=None):
        return kafka.KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, isolation_level=isolation,
                                   enable_auto_commit=False, request_timeout_ms=REQUEST_TIMEOUT_S * 1000)

    def assign(self, cons, topic, offsets):
        tps = {p: kafka.TopicPartition(topic, p) for p in offsets}
        cons.assign(list(tps.values()))
        for p, o in offsets.items():
            cons.seek(tps[p], o)

    def committed(self, cons, topic, partitions):
        """The group's committed offsets, None where it has none."""
        return {p: cons.committed(kafka.TopicPartition(topic, p)) for p in range(partitions)}

    def poll(self, cons, timeout_ms, max_records):
        """[(partition, offset, key, value)] in the order received."""
        got = cons.poll(timeout_ms=timeout_ms, max_records=max_records)
        return [(m.partition, m.offset, m.key, m.value) for batch in got.values() for m in batch]

    def close_consumer(self, cons):
        cons.close()

    def close(self):
        pass


class AioKafka:
    """aiokafka's AIOKafkaProducer and AIOKafkaConsumer, each call run to its
    end on the adapter's own event loop (the clients belong to the loop they
    were made on)."""

    FENCED = aiokafka.errors.ProducerFenced

    def __init__(self):
        self.loop = asyncio.new_event_loop()

    def run(self, coro):
        return self.loop.run_until_complete(asyncio.wait_for(coro, REQUEST_TIMEOUT_S))

    def producer(self, bootstrap, **config):
        async def start():
            prod = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5,
                                             request_timeout_ms=REQUEST_TIMEOUT_S * 1000, **config)
            # With a transactional id, start() gets the producer id and
            # epoch (InitProducerId), fencing any older instance.
            await prod.start()
            return prod
        return self.run(start())

    def send(self, prod, topic, partition, value, key=None):
        return self.run(prod.send(topic, key=key, value=value, partition=partition))

    def acked(self, futures):
        async def wait():
            return [await f for f in futures]
        return [(m.partition, m.offset) for m in self.run(wait())]

    def flush(self, prod):
        self.run(prod.flush())

    def begin(self, prod):
        self.run(prod.begin_transaction())

    def commit(self, prod):
        self.run(prod.commit_transaction())

    def abort(self, prod):
        self.run(prod.abort_transaction())

    def send_offsets(self, prod, topic, offsets, group):
        self.run(prod.send_offsets_to_transaction(
            {aiokafka.TopicPartition(topic, p): o for p, o in offsets.items()}, group))

    def close_producer(self, prod):
        self.run(prod.stop())

    def consumer(self, bootstrap, isolation, group=None):
        async def start():
            cons = aiokafka.AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, isolation_level=isolation,
                                             enable_auto_commit=False, request_timeout_ms=REQUEST_TIMEOUT_S * 1000)
            await cons.start()
            return cons
        return self.run(start())

    def assign(self, cons, topic, offsets):
        async def assign():
            tps = {p: aiokafka.TopicPartition(topic, p) for p in offsets}
            cons.assign(list(tps.values()))
            for p, o in offsets.items():
                cons.seek(tps[p], o)
        self.run(assign())

    def committed(self, cons, topic, partitions):
        async def fetch():
            return {p: await cons.committed(aiokafka.TopicPartition(topic, p)) for p in range(partitions)}
        return self.run(fetch())

    def poll(self, cons, timeout_ms, max_records):
        got = self.run(cons.getmany(timeout_ms=timeout_ms, max_records=max_records))
        return [(m.partition, m.offset, m.key, m.value) for batch in got.values() for m in batch]

    def close_consumer(self, cons):
        self.run(cons.stop())

    def close(self):
        self.loop.close()


@pytest.fixture(params=["kafka-python", "aiokafka"])
def client(request):
    c = KafkaPython() if request.param == "kafka-python" else AioKafka()
    try:
        yield c
    finally:
        c.close()


def produce_values(client, prod, topic, partitions, vals):
    """Sends vals round-robin over the partitions and waits for every ack;
    returns the (partition, offset) of each."""
    futures = [client.send(prod, topic, i % partitions, v) for i, v in enumerate(vals)]
    client.flush(prod)
    return client.acked(futures)


def read_values(client, bootstrap, topic, expected):
    """What a consumer of `client` reads from offset 0 of each partition:
    polls until it has as many records as `expected` ({partition: values})
    holds, then a little longer for any that should not be there; one
    consumer per isolation level in `expected`. Returns {isolation:
    {partition: values}}."""
    out = {}
    for isolation, want in expected.items():
        cons = client.consumer(bootstrap, isolation)
        got = {p: [] for p in want}
        try:
            client.assign(cons, topic, {p: 0 for p in want})
            deadline = time.monotonic() + clients.CONSUME_TIMEOUT_S
            while sum(map(len, got.values())) < sum(map(len, want.values())) and time.monotonic() < deadline:
                for p, _, _, v in client.poll(cons, POLL_MS, 500):
                    got[p].append(v)
            for p, _, _, v in client.poll(cons, EXTRA_POLL_MS, 500):
                got[p].append(v)
        finally:
            client.close_consumer(cons)
        out[isolation] = got
    return out


def test_idempotent_producer(broker, topic, client):
    """enable_idempotence: the producer gets a producer id and sequences its
    batches; every record is acknowledged and stored once, in order."""
    b = broker.bootstrap
    clients.create_topic(b, topic, 2)
    prod = client.producer(b, enable_idempotence=True, acks="all")
    try:
        vals = values("idem", 100)
        acks = produce_values(client, prod, topic, 2, vals)
    finally:
        client.close_producer(prod)
    assert acks == [(i % 2, i // 2) for i in range(100)]
    want = spread(vals, 2)
    assert read_values(client, b, topic, {"read_uncommitted": want}) == {"read_uncommitted": want}
    # One producer wrote each partition, its sequences from 0 (DescribeProducers).
    for p in range(2):
        [producer] = tool_rows(shoal_tool("describe-producers", "--topic", topic, "--partition", str(p),
                                          "--bootstrap", b).stdout)
        assert producer["LastSequence"] == "49", producer


def test_read_committed_sees_committed_transactions_only(broker, topic, client):
    b = broker.bootstrap
    clients.create_topic(b, topic, 2)
    prod = client.producer(b, transactional_id=txn_id())
    first, aborted, last = values("first", 20), values("aborted", 20), values("last", 20)
    try:
        for vals, commit in [(first, True), (aborted, False), (last, True)]:
            client.begin(prod)
            produce_values(client, prod, topic, 2, vals)
            client.commit(prod) if commit else client.abort(prod)
    finally:
        client.close_producer(prod)
    committed = joined(spread(first, 2), spread(last, 2))
    everything = joined(spread(first, 2), spread(aborted, 2), spread(last, 2))
    expected = {"read_committed": committed, "read_uncommitted": everything}
    assert read_values(client, b, topic, expected) == expected


def test_read_committed_stops_at_an_open_transaction(broker, topic, client):
    """A read_committed consumer reads nothing from the first offset of an
    open transaction on (the last stable offset), not even the records
    written after it outside any transaction; after the commit it reads
    them all."""
    b = broker.bootstrap
    clients.create_topic(b, topic, 1)
    plain = client.producer(b)
    txn = client.producer(b, transactional_id=txn_id())
    before, open_txn, after = values("before", 5), values("open", 10), values("after", 5)
    try:
        produce_values(client, plain, topic, 1, before)
        client.begin(txn)
        produce_values(client, txn, topic, 1, open_txn)
        produce_values(client, plain, topic, 1, after)
        expected = {"read_committed": {0: before}, "read_uncommitted": {0: before + open_txn + after}}
        assert read_values(client, b, topic, expected) == expected
        client.commit(txn)
    finally:
        client.close_producer(txn)
        client.close_producer(plain)
    expected = {"read_committed": {0: before + open_txn + after}}
    assert read_values(client, b, topic, expected) == expected


def test_an_older_producer_with_the_same_transactional_id_is_fenced(broker, topic, client):
    b = broker.bootstrap
    clients.create_topic(b, topic, 1)
    shared = txn_id()
    older = client.producer(b, transactional_id=shared)
    newer = None
    try:
        client.begin(older)
        produce_values(client, older, topic, 1, values("older", 5))
        # The newer producer's InitProducerId bumps the epoch and aborts the
        # older one's open transaction.
        newer = client.producer(b, transactional_id=shared)
        client.begin(newer)
        produce_values(client, newer, topic, 1, values("newer", 5))
        client.commit(newer)
        with pytest.raises(client.FENCED):
            client.commit(older)
    finally:
        for prod in (older, newer):
            if prod is not None:
                client.close_producer(prod)
    expected = {"read_committed": {0: values("newer", 5)},
                "read_uncommitted": {0: values("older", 5) + values("newer", 5)}}
    assert read_values(client, b, topic, expected) == expected


class App:
    """A consume-transform-produce application: each transaction reads up to
    BATCH_MAX records of the input (read_committed, the partitions assigned
    at the group's committed offsets), writes b"out:" + value to the same
    partition of the output and sends the input offsets to the transaction.
    Starting it (its producer's InitProducerId) fences an older instance and
    aborts the transaction that one left open."""

    def __init__(self, client, bootstrap, source, sink, group, transactional_id, partitions):
        self.client, self.source, self.sink, self.group = client, source, sink, group
        self.producer = client.producer(bootstrap, transactional_id=transactional_id)
        self.consumer = client.consumer(bootstrap, "read_committed", group=group)
        committed = client.committed(self.consumer, source, partitions)
        self.positions = {p: 0 if o is None else o for p, o in committed.items()}
        client.assign(self.consumer, source, self.positions)

    def run(self, ends, stall_at=0):
        """Transacts until the group's offsets reach `ends`; with stall_at=K
        the K-th transaction's output is written and acknowledged but the
        transaction neither committed nor aborted, as by an application that
        died there. Returns the number of transactions begun."""
        c = self.client
        transactions = 0
        deadline = time.monotonic() + APP_RUN_S
        while self.positions != ends:
            assert time.monotonic() < deadline, f"the app got to {self.positions} of {ends}"
            batch = c.poll(self.consumer, POLL_MS, BATCH_MAX)
            if not batch:
                continue
            transactions += 1
            c.begin(self.producer)
            futures = [c.send(self.producer, self.sink, p, b"out:" + v, key=k) for p, _, k, v in batch]
            if transactions == stall_at:
                c.flush(self.producer)
                c.acked(futures)
                return transactions
            nexts = {p: o + 1 for p, o, _, _ in batch}
            c.send_offsets(self.producer, self.source, nexts, self.group)
            c.commit(self.producer)
            self.positions.update(nexts)
        return transactions

    def close(self):
        self.client.close_consumer(self.consumer)
        self.client.close_producer(self.producer)


def test_consume_transform_produce(broker, topic, client):
    """The first instance commits two transactions and leaves the third open;
    a second instance with the same transactional id fences it and goes on
    from the committed offsets to the end of the input: each input is in the
    committed output exactly once, and the group's offsets are the input's
    end."""
    b = broker.bootstrap
    partitions = 2
    source, sink, group, tid = f"{topic}-in", f"{topic}-out", f"{topic}-group", txn_id()
    clients.create_topic(b, source, partitions)
    clients.create_topic(b, sink, partitions)
    inputs = values("input", 150)
    prod = client.producer(b)
    try:
        produce_values(client, prod, source, partitions, inputs)
    finally:
        client.close_producer(prod)
    ends = {p: len(vals) for p, vals in spread(inputs, partitions).items()}

    apps = [App(client, b, source, sink, group, tid, partitions)]
    try:
        assert apps[0].run(ends, stall_at=3) == 3
        apps.append(App(client, b, source, sink, group, tid, partitions))
        assert 0 < sum(apps[1].positions.values()) < len(inputs)
        apps[1].run(ends)
    finally:
        for app in apps:
            app.close()
    # EndTxn answers once the commit is decided; the COMMIT marker that makes
    # the last transaction's offsets visible to OffsetFetch follows (in
    # Kafka too).
    check = client.consumer(b, "read_committed", group=group)
    try:
        wait_until(lambda: client.committed(check, source, partitions) == ends, REQUEST_TIMEOUT_S,
                   "the group's offsets to reach the input's end", interval_s=0.2)
    finally:
        client.close_consumer(check)
    want = {p: [b"out:" + v for v in vals] for p, vals in spread(inputs, partitions).items()}
    got = read_values(client, b, sink, {"read_committed": want})["read_committed"]
    assert got == want
