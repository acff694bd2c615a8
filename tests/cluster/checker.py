"""The replication fault checker: what a replicated topic's clients and
replicas saw while faults were made, and the anomalies Jepsen found in
Kafka-compatible systems, found in it. Broker-agnostic: it speaks only the
Kafka protocol (confluent-kafka, and ListOffsets by hand) and reads the
replicas' data directories (tests/cluster/segments.py).

A run has three parts:

- `Load.start()`: writers (idempotent, `acks=all` producers, unique values
  `w<writer>-<seq>`, round-robin over the partitions) record every
  acknowledged (partition, offset, value) from their delivery reports and
  every error; a consumer (assign, from the beginning) records every
  (partition, offset, value) it is handed; one poller per node asks that
  node for ListOffsets LATEST (the high watermark) of every partition, and
  records each answer with the leader epoch it came with and when it was
  asked and answered.
- `Load.stop()`, then, once the faults are healed, `collect()`: the final
  high watermarks from the leaders, everything consumed from the beginning
  up to them, and every replica's log read from its files.
- `check(history)`, a pure function: the anomalies, each kind of ANOMALY_KINDS,
  and `report()` to print the first few of each.

Invariant: every thread, loop and wait here is bounded in count and time,
and `Load.stop()` (which the tests run in a finalizer) joins every thread
it started whatever state the cluster is in."""

import logging
import os
import struct
import sys
import threading
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import kafka_wire  # noqa: E402
import segments  # noqa: E402

ANOMALY_KINDS = (
    "lost",  # an acknowledged record is at no offset after healing
    "moved",  # an acknowledged record is at another offset than acknowledged
    "conflict",  # two different values at one offset (acks, consumers, replicas)
    "divergent",  # a replica's log differs from the leader's below the final high watermark
    "hw-backward",  # a later ListOffsets LATEST answered less, from the same or a newer leader epoch
    "disappeared",  # a consumer saw a record that is not there after healing
    "duplicate",  # one value at two offsets, written in one producer session (id and epoch)
)

# --- the history and the check (pure) ---------------------------------------


@dataclass
class Watermark:
    """One ListOffsets LATEST answer: asked at `sent`, answered at
    `received` (monotonic seconds), by a leader in `leader_epoch`."""

    node_id: int
    partition: int
    sent: float
    received: float
    leader_epoch: int
    high_watermark: int


@dataclass
class Replica:
    """One replica's log as its files hold it: {offset: value}, its end
    offset, why reading stopped early (None when it did not), and
    {offset: (producer id, producer epoch)} of the batch of each record."""

    node_id: int
    partition: int
    values: dict
    end_offset: int
    stopped: str = None
    sessions: dict = field(default_factory=dict)


@dataclass
class History:
    # (partition, offset, value) of every acknowledged record.
    acked: list = field(default_factory=list)
    # (value, error) of every record whose delivery failed.
    errors: list = field(default_factory=list)
    # (partition, offset, value) of every record the consumer was handed.
    seen: list = field(default_factory=list)
    watermarks: list = field(default_factory=list)
    # Read after healing: {partition: {offset: value}} up to final_hw.
    final: dict = field(default_factory=dict)
    final_hw: dict = field(default_factory=dict)
    replicas: list = field(default_factory=list)
    # What the clients reported that is no anomaly but helps to read one.
    notes: list = field(default_factory=list)


@dataclass
class Anomaly:
    kind: str
    partition: int
    offset: int
    detail: str

    def __str__(self):
        return f"{self.kind:12} p{self.partition} @{self.offset}: {self.detail}"


def check(history):
    """Every anomaly of `history`, by kind in ANOMALY_KINDS' order."""
    where = _final_positions(history.final)
    anomalies = []
    anomalies += _acked(history, where)
    anomalies += _conflicts(history)
    anomalies += _divergent(history)
    anomalies += _hw_backward(history.watermarks)
    anomalies += _disappeared(history)
    anomalies += _duplicated(history)[0]
    return anomalies


def _final_positions(final):
    """{value: (partition, offset)} of the final read (the first position of
    a duplicated value)."""
    where = {}
    for p, values in final.items():
        for offset, value in values.items():
            where.setdefault(value, (p, offset))
    return where


def _acked(history, where):
    out = []
    for p, offset, value in history.acked:
        if history.final.get(p, {}).get(offset) == value:
            continue
        if value in where:
            out.append(Anomaly("moved", p, offset, f"{value!r} acknowledged here, found at p{where[value][0]} "
                                                   f"@{where[value][1]}"))
        else:
            hw = history.final_hw.get(p)
            out.append(Anomaly("lost", p, offset, f"{value!r} acknowledged, final high watermark {hw}, "
                                                  f"there now: {history.final.get(p, {}).get(offset)!r}"))
    return out


def _conflicts(history):
    """Offsets where acks, the consumer, the final read and the replicas
    (below the final high watermark) name different values."""
    values = defaultdict(lambda: defaultdict(set))
    for source, rows in (("ack", history.acked), ("consumer", history.seen)):
        for p, offset, value in rows:
            values[(p, offset)][value].add(source)
    for p, rows in history.final.items():
        for offset, value in rows.items():
            values[(p, offset)][value].add("final")
    for replica in history.replicas:
        hw = history.final_hw.get(replica.partition, 0)
        for offset, value in replica.values.items():
            if offset < hw:
                values[(replica.partition, offset)][value].add(f"node {replica.node_id}")
    out = []
    for (p, offset), by_value in sorted(values.items()):
        if len(by_value) > 1:
            named = "; ".join(f"{v!r} ({', '.join(sorted(s))})" for v, s in by_value.items())
            out.append(Anomaly("conflict", p, offset, named))
    return out


def _divergent(history):
    """Each replica whose log below the final high watermark is not the
    final read's: its first differing offset and how many differ."""
    out = []
    for replica in sorted(history.replicas, key=lambda r: (r.partition, r.node_id)):
        final = history.final.get(replica.partition, {})
        hw = history.final_hw.get(replica.partition, 0)
        differ = [o for o in sorted(final) if o < hw and replica.values.get(o) != final[o]]
        if differ:
            first = differ[0]
            why = f"; its files stop early: {replica.stopped}" if replica.stopped else ""
            out.append(Anomaly("divergent", replica.partition, first,
                               f"node {replica.node_id} has {replica.values.get(first)!r}, the leader "
                               f"{final[first]!r} ({len(differ)} offsets below the high watermark {hw} differ, "
                               f"its log ends at {replica.end_offset}{why})"))
    return out


def _hw_backward(watermarks):
    """An answer less than one answered before it was asked, by a leader of
    the same or an older epoch (a deposed leader that does not know it yet
    may answer its stale high watermark; a newer leader may not go back)."""
    out = []
    by_partition = defaultdict(list)
    for w in watermarks:
        by_partition[w.partition].append(w)
    for p, rows in sorted(by_partition.items()):
        answered = sorted(rows, key=lambda w: w.received)
        # The highest answer of each epoch among those received so far.
        top = {}
        taken = 0
        for later in sorted(rows, key=lambda w: w.sent):
            while taken < len(answered) and answered[taken].received < later.sent:
                w = answered[taken]
                if w.leader_epoch not in top or w.high_watermark > top[w.leader_epoch].high_watermark:
                    top[w.leader_epoch] = w
                taken += 1
            before = [w for epoch, w in top.items() if epoch <= later.leader_epoch]
            if not before:
                continue
            highest = max(before, key=lambda w: w.high_watermark)
            if later.high_watermark < highest.high_watermark:
                out.append(Anomaly("hw-backward", p, later.high_watermark,
                                   f"node {later.node_id} (epoch {later.leader_epoch}) answered "
                                   f"{later.high_watermark} after node {highest.node_id} (epoch "
                                   f"{highest.leader_epoch}) answered {highest.high_watermark}"))
    return out


def _disappeared(history):
    out = []
    for p, offset, value in history.seen:
        now = history.final.get(p, {}).get(offset)
        if now != value:
            out.append(Anomaly("disappeared", p, offset, f"consumer saw {value!r}, there now: {now!r}"))
    return out


def _duplicated(history):
    """(anomalies, re-sent): each value at more than one offset is an
    anomaly when two of its copies were written in one producer session
    (producer id and epoch, from the replicas' batch headers) or a copy's
    session is unknown: a broker deduplicates retries within a session.
    Copies each in a session of its own are counted as re-sent: librdkafka
    bumps its epoch after a message times out and may send again what was
    possibly written before (confluentinc/librdkafka#4953), which no broker
    can tell from a new record."""
    sessions = {}
    for replica in history.replicas:
        for offset, session in replica.sessions.items():
            sessions.setdefault((replica.partition, offset), session)
    positions = defaultdict(list)
    for p, values in history.final.items():
        for offset, value in values.items():
            positions[value].append((p, offset))
    anomalies, resent = [], 0
    for value, spots in positions.items():
        if len(spots) < 2:
            continue
        copies = [sessions.get(spot) for spot in spots]
        if None in copies or len(set(copies)) < len(copies):
            (p, offset), others = spots[0], spots[1:]
            anomalies.append(Anomaly("duplicate", p, offset, f"{value!r} also at {others}, producer sessions "
                                                             f"(id, epoch) {copies}"))
        else:
            resent += 1
    return anomalies, resent


REPORT_PER_KIND = 5


def report(history, anomalies, per_kind=REPORT_PER_KIND):
    """A readable summary: the counts, and the first few anomalies of each
    kind."""
    lines = [f"acknowledged {len(history.acked)}, failed {len(history.errors)}, consumed {len(history.seen)}, "
             f"high watermarks polled {len(history.watermarks)}, final high watermarks "
             f"{dict(sorted(history.final_hw.items()))}, replicas read {len(history.replicas)}, "
             f"anomalies {len(anomalies)}"]
    for kind in ANOMALY_KINDS:
        of_kind = [a for a in anomalies if a.kind == kind]
        if of_kind:
            lines.append(f"{kind}: {len(of_kind)}")
            lines += [f"  {a}" for a in of_kind[:per_kind]]
    if history.errors:
        by_error = Counter(error for _, error in history.errors)
        lines.append("failed by error: " + "; ".join(f"{n} x {error}" for error, n in by_error.most_common()))
    resent = _duplicated(history)[1]
    if resent:
        lines.append(f"re-sent by the client in a new producer epoch (no anomaly): {resent} values")
    if history.notes:
        lines.append(f"notes ({len(history.notes)}): " + "; ".join(history.notes[:per_kind]))
    return "\n".join(lines)


# --- the topic --------------------------------------------------------------

REPLICATION_FACTOR = 3
# librdkafka's own log lines (a refused connection to a killed node, every
# few hundred ms) go through Python logging, kept with a failing test's
# output instead of flooding stderr.
LIBRDKAFKA_LOG = logging.getLogger("librdkafka")
# Client errors that only say a node is down or unreachable: expected under
# faults, not worth a note.
TRANSPORT_ERRORS = (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN)
MIN_INSYNC_REPLICAS = 2
ADMIN_TIMEOUT_S = 15.0
ERR_INVALID_REPLICATION_FACTOR = 38


def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000, "logger": LIBRDKAFKA_LOG})


def create_topic(bootstrap, topic, partitions):
    """Creates `topic` with replication factor 3 and min.insync.replicas 2;
    returns None, or the KafkaError of a broker that refuses it (a broker
    without replication answers INVALID_REPLICATION_FACTOR)."""
    client = admin(bootstrap)  # alive until the answer is in
    futures = client.create_topics(
        [NewTopic(topic, partitions, REPLICATION_FACTOR, config={"min.insync.replicas": str(MIN_INSYNC_REPLICAS)})],
        request_timeout=ADMIN_TIMEOUT_S)
    try:
        futures[topic].result(timeout=ADMIN_TIMEOUT_S)
    except KafkaException as e:
        return e.args[0]
    return None


def live_brokers(bootstrap):
    """The ids of the brokers Metadata lists (the unfenced ones)."""
    return sorted(admin(bootstrap).list_topics(timeout=ADMIN_TIMEOUT_S).brokers)


def partition_states(bootstrap, topic):
    """{partition: (leader, replicas, isr)} of `topic` per Metadata from one
    of `bootstrap`'s nodes; {} while it answers nothing for the topic."""
    md = admin(bootstrap).list_topics(topic, timeout=ADMIN_TIMEOUT_S)
    meta = md.topics.get(topic)
    if meta is None or meta.error is not None:
        return {}
    return {p: (pm.leader, sorted(pm.replicas), sorted(pm.isrs)) for p, pm in meta.partitions.items()}


def in_sync(bootstrap, topic, partitions):
    """Every partition has a leader and every replica in its ISR."""
    states = partition_states(bootstrap, topic)
    return len(states) == partitions and all(
        leader >= 0 and isr == replicas and len(replicas) == REPLICATION_FACTOR
        for leader, replicas, isr in states.values())


# --- the load ----------------------------------------------------------------

# Records a writer hands librdkafka between two looks at the clock.
WRITER_STEP_RECORDS = 20
# A record not acknowledged within this long is reported failed (it may
# still have been written: a failure is no anomaly, a lost ack is).
# Longer than any fault is held (the long run's longest is 60 s), so that
# records wait out an outage instead of failing: every one can be checked,
# and librdkafka's epoch bump after a timeout (see _duplicated) stays rare.
MESSAGE_TIMEOUT_MS = 90000
# How long a stopping writer waits for what is in flight before purging it.
FLUSH_S = 30.0
# A writer whose producer hit a fatal error (idempotence broken) makes a new
# one at most this many times.
PRODUCER_RENEWALS_MAX = 5
CONSUME_BATCH = 500
POLL_S = 0.5
WATERMARK_INTERVAL_S = 0.25
WATERMARK_TIMEOUT_S = 2.0
# Every thread stops within this after it is told to (each blocks at most
# POLL_S, WATERMARK_TIMEOUT_S or FLUSH_S at a time).
JOIN_S = FLUSH_S + 10
# Python frames shown of a load thread that outlived JOIN_S.
HUNG_FRAMES = 4
# A consumer's request to a node that died or was cut is given up after
# this, not librdkafka's default 60 s: a stopping consumer (its close waits
# for its requests) once outlived JOIN_S in a kill-leader run against Kafka.
CONSUMER_SOCKET_TIMEOUT_MS = 10000
# Rows any one list of the history may hold, whatever the run's length.
ROWS_MAX = 2_000_000
NOTES_MAX = 1000
API_LIST_OFFSETS = 2
LIST_OFFSETS_VERSION = 4
LATEST = -1
NO_EPOCH = -1


class Load:
    """The writers (each `rate_per_s` records a second at most), the
    consumer and the pollers of one topic (see the module doc).
    `max_seconds` bounds every thread, should stop() never come."""

    def __init__(self, cluster, topic, partitions, writers=2, rate_per_s=200, max_seconds=900.0):
        self.cluster = cluster
        self.topic = topic
        self.partitions = partitions
        self.bootstrap = ",".join(cluster.nodes[i].bootstrap for i in cluster.brokers())
        self.rate_per_s = rate_per_s
        self.max_seconds = max_seconds
        self.history = History()
        self.started = time.monotonic()
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._guard, args=(self._write, w), daemon=True, name=f"writer-{w}")
                        for w in range(writers)]
        self.threads.append(threading.Thread(target=self._guard, args=(self._consume,), daemon=True,
                                             name="consumer"))
        self.threads += [threading.Thread(target=self._guard, args=(self._poll, i), daemon=True, name=f"poller-{i}")
                         for i in cluster.brokers()]
        self.failures = []

    def start(self):
        self.started = time.monotonic()
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        """Stops and joins every thread; raises if one failed or hangs."""
        self.stop_event.set()
        deadline = time.monotonic() + JOIN_S
        for t in self.threads:
            if t.ident is not None:
                t.join(max(0.0, deadline - time.monotonic()))
        hung = [t for t in self.threads if t.is_alive()]
        if hung:
            frames = sys._current_frames()
            where = "\n".join(f"{t.name}:\n{''.join(traceback.format_stack(frames[t.ident])[-HUNG_FRAMES:])}"
                              for t in hung if t.ident in frames)
            raise AssertionError(f"load threads still running {JOIN_S}s after stop:\n{where}")
        assert not self.failures, f"load threads failed: {self.failures}"

    def acked(self):
        return len(self.history.acked)

    def _note(self, text):
        if len(self.history.notes) < NOTES_MAX:
            self.history.notes.append(text)

    def _running(self):
        return not self.stop_event.is_set() and time.monotonic() - self.started < self.max_seconds

    def _guard(self, target, *args):
        try:
            target(*args)
        except Exception as e:  # surfaced by stop()
            self.failures.append(f"{threading.current_thread().name}: {e!r}")

    def _producer(self, writer, fatal):
        def on_error(err):
            if err.code() not in TRANSPORT_ERRORS:
                self._note(f"writer {writer}: {err}")
            if err.fatal():
                fatal.set()

        return Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 5, "compression.type": "lz4", "message.timeout.ms": MESSAGE_TIMEOUT_MS,
                         "error_cb": on_error, "logger": LIBRDKAFKA_LOG})

    def _write(self, writer):
        history = self.history

        def delivered(err, msg):
            if err is not None:
                history.errors.append((msg.value(), str(err)))
            elif len(history.acked) < ROWS_MAX:
                history.acked.append((msg.partition(), msg.offset(), msg.value()))

        fatal = threading.Event()
        producer, renewals, seq = self._producer(writer, fatal), 0, 0
        interval_s = WRITER_STEP_RECORDS / self.rate_per_s
        while self._running():
            for _ in range(WRITER_STEP_RECORDS):
                try:
                    producer.produce(self.topic, value=f"w{writer}-{seq}".encode(), partition=seq % self.partitions,
                                     on_delivery=delivered)
                    seq += 1
                except BufferError:
                    break
                except KafkaException as e:
                    # A fatal producer refuses every record with _FATAL,
                    # an error not itself marked fatal.
                    if not (e.args[0].fatal() or e.args[0].code() == KafkaError._FATAL):
                        raise
                    fatal.set()
                    break
            producer.poll(0)
            if fatal.is_set():
                # Idempotence broken (librdkafka's fatal error): what is in
                # flight fails, and a new producer (a new producer id) goes on.
                if renewals >= PRODUCER_RENEWALS_MAX:
                    raise AssertionError(f"writer {writer}: {renewals} producers hit fatal errors")
                self._drain(producer)
                fatal = threading.Event()
                producer, renewals = self._producer(writer, fatal), renewals + 1
            self.stop_event.wait(interval_s)
        self._drain(producer)

    @staticmethod
    def _drain(producer):
        producer.flush(FLUSH_S)
        producer.purge(in_queue=True, in_flight=True, blocking=False)
        producer.flush(1.0)

    def _consume(self):
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"checker-{self.topic}",
                             "enable.auto.commit": False, "auto.offset.reset": "earliest",
                             "enable.partition.eof": False, "socket.timeout.ms": CONSUMER_SOCKET_TIMEOUT_MS,
                             "logger": LIBRDKAFKA_LOG})
        try:
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(self.partitions)])
            while self._running():
                for msg in consumer.consume(num_messages=CONSUME_BATCH, timeout=POLL_S):
                    if msg.error() is not None:
                        if msg.error().code() not in TRANSPORT_ERRORS:
                            self._note(f"consumer: {msg.error()}")
                    elif len(self.history.seen) < ROWS_MAX:
                        self.history.seen.append((msg.partition(), msg.offset(), msg.value()))
        finally:
            consumer.close()

    def _poll(self, i):
        node = self.cluster.nodes[i]
        sock = None
        while self._running():
            try:
                if sock is None:
                    sock = kafka_wire.connect(node.bootstrap, WATERMARK_TIMEOUT_S)
                sent = time.monotonic()
                answers = list_offsets_latest(sock, self.topic, self.partitions)
                received = time.monotonic()
                for p, (error_code, offset, epoch) in answers.items():
                    if error_code == kafka_wire.ERR_NONE and len(self.history.watermarks) < ROWS_MAX:
                        self.history.watermarks.append(Watermark(node.node_id, p, sent, received, epoch, offset))
            except (OSError, AssertionError, struct.error):
                # A node killed, paused or cut off: ask again on a new
                # connection (an answer that never came is no observation).
                if sock is not None:
                    sock.close()
                sock = None
            self.stop_event.wait(WATERMARK_INTERVAL_S)
        if sock is not None:
            sock.close()


def list_offsets_latest(sock, topic, partitions, timeout_s=WATERMARK_TIMEOUT_S):
    """ListOffsets v4 LATEST (read_uncommitted: the high watermark) of every
    partition on one connection: {partition: (error code, offset, leader
    epoch)}."""
    body = struct.pack(">ib", -1, 0) + struct.pack(">i", 1) + kafka_wire.string(topic)
    body += struct.pack(">i", partitions) + b"".join(struct.pack(">iiq", p, NO_EPOCH, LATEST)
                                                      for p in range(partitions))
    sock.settimeout(timeout_s)
    reader = kafka_wire.Reader(kafka_wire.call(sock, API_LIST_OFFSETS, LIST_OFFSETS_VERSION, API_LIST_OFFSETS, body))
    reader.take(">i")  # throttle_time_ms
    out = {}

    def partition():
        index, error_code, _timestamp, offset, epoch = reader.take(">ihqqi")
        out[index] = (error_code, offset, epoch)

    def one_topic():
        reader.string()
        reader.array(partition)

    reader.array(one_topic)
    return out


# --- after healing -------------------------------------------------------------

IN_SYNC_WAIT_S = 90.0
FINAL_CONSUME_S = 60.0
SETTLE_POLL_S = 0.5


def collect(load, in_sync_wait_s=IN_SYNC_WAIT_S):
    """Completes `load`'s history once its faults are healed and it is
    stopped: waits (bounded) for every replica to be back in sync, then the
    final high watermarks, everything consumed from the beginning up to
    them, and every replica's log from its files. Returns the history."""
    history = load.history
    deadline = time.monotonic() + in_sync_wait_s
    while not quietly(lambda: in_sync(load.bootstrap, load.topic, load.partitions)):
        if time.monotonic() >= deadline:
            history.notes.append(f"not every replica in sync after {in_sync_wait_s}s: "
                                 f"{quietly(lambda: partition_states(load.bootstrap, load.topic))}")
            break
        time.sleep(SETTLE_POLL_S)
    history.final_hw = final_high_watermarks(load.cluster, load.topic, load.partitions)
    history.final = consume_all(load.bootstrap, load.topic, history.final_hw)
    # Offsets below the high watermark of a topic without compaction or
    # transactions are all records: fewer read means the read stopped short
    # (the "lost" records that follows are the reader's, not the broker's).
    short = {p: (len(history.final[p]), hw) for p, hw in history.final_hw.items() if len(history.final[p]) < hw}
    if short:
        history.notes.append(f"the final read stopped short (records read, high watermark): {short}")
    history.replicas = read_replicas(load.cluster, load.topic, history.final_hw, max(0.0, deadline - time.monotonic()))
    return history


def quietly(call):
    """call()'s answer, or None when the cluster cannot answer it yet."""
    try:
        return call()
    except (KafkaException, OSError, AssertionError, struct.error):
        return None


def final_high_watermarks(cluster, topic, partitions, timeout_s=FINAL_CONSUME_S):
    """{partition: high watermark} as the leader of the newest epoch answers
    ListOffsets LATEST (every live node is asked; followers refuse)."""
    deadline = time.monotonic() + timeout_s
    while True:
        best = {}
        for i in cluster.brokers():
            if not cluster.nodes[i].running:
                continue
            try:
                with kafka_wire.connect(cluster.nodes[i].bootstrap, WATERMARK_TIMEOUT_S) as sock:
                    answers = list_offsets_latest(sock, topic, partitions)
            except (OSError, AssertionError, struct.error):
                continue
            for p, (error_code, offset, epoch) in answers.items():
                if error_code == kafka_wire.ERR_NONE and (p not in best or epoch > best[p][0]):
                    best[p] = (epoch, offset)
        if len(best) == partitions:
            return {p: offset for p, (_epoch, offset) in best.items()}
        if time.monotonic() >= deadline:
            raise AssertionError(f"no high watermark of every partition of {topic} after {timeout_s}s: {best}")
        time.sleep(SETTLE_POLL_S)


def consume_all(bootstrap, topic, high_watermarks, timeout_s=FINAL_CONSUME_S):
    """{partition: {offset: value}} of every record below each partition's
    high watermark, read from the beginning through the leaders."""
    out = {p: {} for p in high_watermarks}
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"checker-final-{topic}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "enable.partition.eof": False, "socket.timeout.ms": CONSUMER_SOCKET_TIMEOUT_MS,
                         "logger": LIBRDKAFKA_LOG})
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in high_watermarks])
        deadline = time.monotonic() + timeout_s
        reached = {p for p, hw in high_watermarks.items() if hw == 0}
        while len(reached) < len(high_watermarks) and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=CONSUME_BATCH, timeout=POLL_S):
                if msg.error() is not None:
                    continue
                p, offset = msg.partition(), msg.offset()
                if offset < high_watermarks[p]:
                    out[p][offset] = msg.value()
                if offset + 1 >= high_watermarks[p]:
                    reached.add(p)
    finally:
        consumer.close()
    return out


def read_replicas(cluster, topic, high_watermarks, timeout_s):
    """Every replica of `topic` read from its node's files, read again
    (bounded) while one ends below the high watermark (a follower still
    fetching the last records)."""
    deadline = time.monotonic() + timeout_s
    while True:
        replicas = []
        for i in cluster.brokers():
            node = cluster.nodes[i]
            for p, path in sorted(segments.partition_dirs(node.data_dir, topic).items()):
                log = segments.read_log(path)
                replicas.append(Replica(node.node_id, p, log.values(), log.end_offset, log.stopped, log.sessions()))
        behind = [r for r in replicas if r.end_offset < high_watermarks.get(r.partition, 0)]
        if not behind or time.monotonic() >= deadline:
            return replicas
        time.sleep(SETTLE_POLL_S)
