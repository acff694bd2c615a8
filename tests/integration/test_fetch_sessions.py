"""Incremental fetch sessions (KIP-227) on a broker of several shards.

Session ids are unique across the broker, as Kafka's are random and unique
per broker, so a request carrying one client's session id can only ever
reach that client's session. Clients send an old id in a full fetch after a
reconnect (the Java client's FetchSessionHandler does: epoch 0 with the id it
had, which closes that session); when the reconnection lands on another
shard, it must not close whatever session happens to have the same id there.

A real client cannot make that collision reproducible (which shard a
reconnection lands on is the kernel's SO_REUSEPORT hash), so the reconnecting
client here speaks Fetch v7 on raw sockets, on the shards' own ports of
shard-aware mode to choose each connection's shard. The client whose session
must survive is kafka-python, which keeps incremental fetch sessions
(librdkafka does not)."""

import logging

import pytest
from kafka import KafkaAdminClient, KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.admin import NewTopic

import clients
import kafka_wire
from conftest import HOST
from test_shard_aware import BROKER_IDS, free_port_run

pytestmark = pytest.mark.shoal_only

SHARDS = 2
FETCH_SESSIONS_VERSION = kafka_wire.FETCH_SESSIONS_VERSION
INITIAL_EPOCH = 0
FINAL_EPOCH = -1
NO_SESSION = kafka_wire.NO_FETCH_SESSION
ERR_FETCH_SESSION_ID_NOT_FOUND = 70
ERR_UNKNOWN_LEADER_EPOCH = 75
# A leader epoch the broker has not reached (a new topic's is 0).
AHEAD_LEADER_EPOCH = 5
PARTITION_MAX_BYTES = 1 << 20
RECORDS_PER_ROUND = 10
SESSIONS_PER_SHARD = 20
ROUNDS = 5
POLL_LIMIT = 200
POLL_TIMEOUT_MS = 200
FETCH_MAX_WAIT_MS = 50
REQUEST_TIMEOUT_MS = 30_000
FETCHER_LOG = "kafka.consumer.fetcher"


def sessions_broker(broker_factory, overrides=None):
    base = free_port_run(SHARDS)
    broker = broker_factory(
        shards=SHARDS,
        overrides={
            "listener.shard.aware": "true",
            "listener.shard.port.base": str(base),
            **(overrides or {}),
        },
    )
    broker.shard_ports = [base + shard for shard in range(SHARDS)]
    return broker


def connect_to_shard(broker, shard):
    return kafka_wire.connect(f"{HOST}:{broker.shard_ports[shard]}")


class FetchSession:
    """One client's view of its fetch session on one connection."""

    def __init__(self, sock, version=FETCH_SESSIONS_VERSION):
        self.sock = sock
        self.version = version
        self.correlation_id = 0
        self.session_id = NO_SESSION
        self.epoch = INITIAL_EPOCH

    def fetch(self, session_id, epoch, partitions=()):
        """Fetch with no wait. partitions is [(topic, partition, offset)],
        from v9 also [(topic, partition, offset, current_leader_epoch)].
        Returns (error_code, session_id, {(topic, partition): (error_code,
        high_watermark, records)})."""
        self.correlation_id += 1
        body = kafka_wire.fetch_request(
            [(topic, partition, offset, PARTITION_MAX_BYTES, *epoch)
             for topic, partition, offset, *epoch in partitions],
            self.version,
            session_id=session_id,
            epoch=epoch,
        )
        header = kafka_wire.request_header(kafka_wire.API_FETCH, self.version, self.correlation_id)
        self.sock.sendall(kafka_wire.frame(header + body))
        response = kafka_wire.read_response(self.sock, self.correlation_id)
        return kafka_wire.parse_fetch_response(response, self.version)

    def open(self, partitions):
        error, session_id, answer = self.fetch(NO_SESSION, INITIAL_EPOCH, partitions)
        assert error == kafka_wire.ERR_NONE, f"full fetch: error {error}"
        self.session_id, self.epoch = session_id, 1
        return answer

    def next(self, moved=()):
        """An incremental fetch: the session's partitions, those in `moved`
        at their new offsets and the rest where the session left them."""
        error, session_id, answer = self.fetch(self.session_id, self.epoch, moved)
        if error == kafka_wire.ERR_NONE:
            assert session_id == self.session_id
            self.epoch += 1
        return error, answer


def produce(broker, topic, round_index):
    prod = clients.producer(broker.bootstrap)
    log = clients.DeliveryLog()
    for i in range(RECORDS_PER_ROUND):
        prod.produce(topic, value=f"{round_index}-{i}".encode(), partition=0, on_delivery=log)
    clients.flush(prod)
    assert log.errors == []


def last_offset(answer, topic):
    error, _, records = answer[(topic, 0)]
    assert error == kafka_wire.ERR_NONE, f"{topic}: error {error}"
    return kafka_wire.batch_offsets(records)[-1][1]


def test_another_clients_full_fetch_or_close_leaves_a_session_alone(broker_factory, topic):
    broker = sessions_broker(broker_factory)
    topic_a, topic_b = f"{topic}-a", f"{topic}-b"
    for name in (topic_a, topic_b):
        clients.create_topic(broker.bootstrap, name, 1)
        produce(broker, name, 0)

    with connect_to_shard(broker, 0) as sock_a, connect_to_shard(broker, 1) as sock_b:
        client_a, client_b = FetchSession(sock_a), FetchSession(sock_b)
        assert last_offset(client_a.open([(topic_a, 0, 0)]), topic_a) == RECORDS_PER_ROUND - 1
        assert last_offset(client_b.open([(topic_b, 0, 0)]), topic_b) == RECORDS_PER_ROUND - 1
        assert NO_SESSION not in (client_a.session_id, client_b.session_id)
        assert client_a.session_id != client_b.session_id, "one id for two clients of one broker"

        # B reconnects and lands on A's shard: a full fetch carrying its old
        # id, then a close carrying it.
        with connect_to_shard(broker, 0) as sock_b2:
            reconnected = FetchSession(sock_b2)
            error, session_id, _ = reconnected.fetch(client_b.session_id, INITIAL_EPOCH, [(topic_b, 0, 0)])
            assert error == kafka_wire.ERR_NONE
            assert session_id not in (NO_SESSION, client_a.session_id)
            error, session_id, _ = reconnected.fetch(client_b.session_id, FINAL_EPOCH, [(topic_b, 0, 0)])
            assert (error, session_id) == (kafka_wire.ERR_NONE, NO_SESSION)

        # A's session is untouched: it goes on, and sees what comes next.
        error, answer = client_a.next([(topic_a, 0, RECORDS_PER_ROUND)])
        assert error != ERR_FETCH_SESSION_ID_NOT_FOUND, "A's session was closed by B's requests"
        assert error == kafka_wire.ERR_NONE
        assert answer == {}, "nothing new since A's last fetch, so nothing said"
        produce(broker, topic_a, 1)
        error, answer = client_a.next()
        assert error == kafka_wire.ERR_NONE
        batches = kafka_wire.batch_offsets(answer[(topic_a, 0)][2])
        assert (batches[0][0], batches[-1][1]) == (RECORDS_PER_ROUND, 2 * RECORDS_PER_ROUND - 1)

        # B's own session, on its own shard, is untouched too.
        error, _ = client_b.next()
        assert error == kafka_wire.ERR_NONE


def test_a_partition_named_with_an_error_moves_in_its_session(broker_factory, topic):
    """A fetcher that names a partition at a new offset and gets an error
    for it (here a leader epoch ahead of the broker's: a follower whose
    metadata is newer than its leader's) has moved that partition in its
    session all the same, as Kafka's session caches every partition a
    request names: the answer names it once, with the error, and later
    fetches that cover it without naming it are checked with that epoch and
    served from that offset, never from where it was before."""
    broker = sessions_broker(broker_factory)
    clients.create_topic(broker.bootstrap, topic, 1)
    produce(broker, topic, 0)
    with connect_to_shard(broker, 0) as sock:
        client = FetchSession(sock, kafka_wire.FETCH_LEADER_EPOCH_VERSION)
        assert last_offset(client.open([(topic, 0, 0)]), topic) == RECORDS_PER_ROUND - 1
        moved_to = RECORDS_PER_ROUND // 2
        error, answer = client.next([(topic, 0, moved_to, AHEAD_LEADER_EPOCH)])
        assert error == kafka_wire.ERR_NONE
        assert answer[(topic, 0)][0] == ERR_UNKNOWN_LEADER_EPOCH, answer
        error, answer = client.next()
        assert error == kafka_wire.ERR_NONE
        assert answer[(topic, 0)][0] == ERR_UNKNOWN_LEADER_EPOCH, \
            f"served from the position before the move: {answer}"
        error, answer = client.next([(topic, 0, moved_to, kafka_wire.NO_LEADER_EPOCH)])
        assert error == kafka_wire.ERR_NONE
        batches = kafka_wire.batch_offsets(answer[(topic, 0)][2])
        assert batches[0][0] <= moved_to <= batches[0][1], batches


def test_session_ids_are_unique_across_the_broker(broker_factory, topic):
    broker = sessions_broker(broker_factory)
    clients.create_topic(broker.bootstrap, topic, 1)
    ids = []
    for shard in range(SHARDS):
        with connect_to_shard(broker, shard) as sock:
            client = FetchSession(sock)
            for _ in range(SESSIONS_PER_SHARD):
                client.open([(topic, 0, 0)])
                ids.append(client.session_id)
    assert NO_SESSION not in ids
    assert len(set(ids)) == len(ids), f"ids handed out twice: {sorted(ids)}"


def test_a_full_cache_answers_without_a_session(broker_factory, topic):
    # One slot per shard: the second session a shard is asked for finds
    # only a young session of the same size, which Kafka does not evict.
    broker = sessions_broker(broker_factory, {"max.incremental.fetch.session.cache.slots": str(SHARDS)})
    clients.create_topic(broker.bootstrap, topic, 1)
    produce(broker, topic, 0)
    with connect_to_shard(broker, 0) as first_sock, connect_to_shard(broker, 0) as second_sock:
        first = FetchSession(first_sock)
        first.open([(topic, 0, 0)])
        assert first.session_id != NO_SESSION
        error, session_id, answer = FetchSession(second_sock).fetch(NO_SESSION, INITIAL_EPOCH, [(topic, 0, 0)])
        assert (error, session_id) == (kafka_wire.ERR_NONE, NO_SESSION)
        assert last_offset(answer, topic) == RECORDS_PER_ROUND - 1, "the fetch itself is served"
        error, _ = first.next()
        assert error == kafka_wire.ERR_NONE


def create_on_shard(broker, name, shard):
    """Topic `name` with its one partition owned by `shard`."""
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS)
    try:
        admin.create_topics(
            [NewTopic(name, num_partitions=-1, replication_factor=-1, replica_assignments={0: [BROKER_IDS[shard]]})]
        )
    finally:
        admin.close()
    clients.wait_for_partitions(broker.bootstrap, name, 1)


def reconnect_elsewhere(broker, topic):
    """Client B: a session on shard 1, then a reconnection that lands on
    shard 0 and sends the old id in a full fetch and in a close."""
    with connect_to_shard(broker, 1) as sock:
        client = FetchSession(sock)
        client.open([(topic, 0, 0)])
    with connect_to_shard(broker, 0) as sock:
        reconnected = FetchSession(sock)
        for epoch in (INITIAL_EPOCH, FINAL_EPOCH):
            error, _, _ = reconnected.fetch(client.session_id, epoch, [(topic, 0, 0)])
            assert error == kafka_wire.ERR_NONE


def poll_values(consumer, count):
    """The values of the next `count` records (bounded polls)."""
    values = []
    for _ in range(POLL_LIMIT):
        for records in consumer.poll(timeout_ms=POLL_TIMEOUT_MS).values():
            values.extend(record.value.decode() for record in records)
        if len(values) >= count:
            return values
    pytest.fail(f"read {len(values)} of {count} records in {POLL_LIMIT} polls")


def test_kafka_python_keeps_its_session_while_another_client_reconnects(broker_factory, topic, caplog):
    caplog.set_level(logging.DEBUG, logger=FETCHER_LOG)
    broker = sessions_broker(broker_factory)
    topic_a, topic_b = f"{topic}-a", f"{topic}-b"
    create_on_shard(broker, topic_a, 0)
    create_on_shard(broker, topic_b, 1)
    produce(broker, topic_b, 0)
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        request_timeout_ms=REQUEST_TIMEOUT_MS,
    )
    got = []
    try:
        consumer.assign([KafkaTopicPartition(topic_a, 0)])
        for round_index in range(ROUNDS):
            produce(broker, topic_a, round_index)
            got += poll_values(consumer, RECORDS_PER_ROUND)
            reconnect_elsewhere(broker, topic_b)
    finally:
        consumer.close()

    expected = [f"{r}-{i}" for r in range(ROUNDS) for i in range(RECORDS_PER_ROUND)]
    assert got == expected
    lines = [record.getMessage() for record in caplog.records if record.name == FETCHER_LOG]
    refused = [line for line in lines if "unable to process the fetch request" in line]
    assert refused == [], "kafka-python's session was closed under it"
    created = [line for line in lines if "created a new incremental fetch session" in line]
    assert len(created) == 1, created
