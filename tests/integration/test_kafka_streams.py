"""Kafka Streams (the release pinned in tests/kafka/pom.xml) against shoal: a
word count with a repartition (groupBy on the word) and a state store whose
changelog is a compacted topic, both internal topics created by Streams
itself, at-least-once, including a SIGKILL of the application mid-stream,
and two instances sharing the work; exactly_once_v2 with a SIGKILL
mid-transaction, after which the counts are exact. Two gaps are pinned down too: Streams'
default (idempotent) producers, and the KIP-1071 streams group protocol.

The application is the `wordcount` program of tests/java (WordCount.java),
one JVM that runs until the test closes its stdin. The test feeds the input
and reads the output with librdkafka, so every check is here."""

import collections
import json
import os
import random
import struct
import subprocess
import time
import uuid

import pytest

from clients import admin, committed, consumer, create_topic, describe_topic_configs, flush, producer, topic_partitions, watermarks
from conftest import make_temp_dir, read_text, remove_temp_dir
from confluent_kafka import ConsumerGroupState, KafkaError, KafkaException, TopicPartition
from test_java_clients import command, java_programs  # noqa: F401 (java_programs: an autouse fixture)

# The names WordCount.java gives its repartition and its store; Streams
# prefixes each with the application id.
REPARTITION_SUFFIX = "-words-repartition"
CHANGELOG_SUFFIX = "-counts-changelog"
PARTITIONS = 3
# The at-least-once tests run Streams' producers without idempotence, the
# path Kafka 2.x applications took; test_streams_default_config runs the
# default (idempotent) one.
NOT_IDEMPOTENT = "producer.enable.idempotence=false"

# Words only in the first batch, in every batch, only in the last: the first
# kind shows committed input is never counted again, the last that the
# restarted application still takes new keys.
FIRST_ONLY = [f"first{i}" for i in range(6)]
SHARED = [f"word{i}" for i in range(20)]
LAST_ONLY = [f"last{i}" for i in range(6)]
WORDS_PER_LINE_MAX = 8

# A Streams JVM's start (rebalance, internal topics, restoring a store) on a
# loaded machine; a restart also waits out the killed member's session
# (WordCount.java's session.timeout.ms, 6 s).
CATCH_UP_TIMEOUT_S = 60
POLL_S = 0.2
READ_MAX_S = 1.0
CLOSE_TIMEOUT_S = 30
# A commit interval no run of the test lasts.
NEVER_MS = 600_000
REQUEST_TIMEOUT_S = 15
# librdkafka marks none of these retriable in an admin answer.
COORDINATOR_ERRORS = (
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
)


def lines(seed, words, count):
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(1, WORDS_PER_LINE_MAX))) for _ in range(count)]


def word_counts(batch):
    return collections.Counter(w for line in batch for w in line.split(" "))


def produce_lines(bootstrap, topic, batch):
    """Keyless lines, spread over the partitions as an application's would be."""
    prod = producer(bootstrap)
    for i, line in enumerate(batch):
        prod.produce(topic, value=line.encode(), partition=i % PARTITIONS)
        prod.poll(0)
    flush(prod)


class App:
    """One run of the word-count JVM: stderr goes to a file (Streams logs a
    lot, and a pipe nobody reads would block it), shown when a check fails."""

    def __init__(self, bootstrap, app_id, topics, state_dir, log_path, config):
        self.state_dir = state_dir
        self.log_path = log_path
        self.log = open(log_path, "wb")
        # RocksDB unpacks its native library into java.io.tmpdir on every
        # start and a killed JVM never removes it: inside the state dir it
        # goes with the test's temp dir.
        jvm_tmp = os.path.join(state_dir, "jvm-tmp")
        os.makedirs(jvm_tmp, exist_ok=True)
        self.proc = subprocess.Popen(
            command(
                "wordcount",
                "-brokers", bootstrap,
                "-app-id", app_id,
                "-input", topics.input,
                "-output", topics.output,
                "-state-dir", state_dir,
                "-config", config,
                jvm_args=[f"-Djava.io.tmpdir={jvm_tmp}"],
            ),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
        )

    def stderr(self):
        return read_text(self.log_path)[-4000:]

    def assert_alive(self):
        assert self.proc.poll() is None, f"Kafka Streams exited with {self.proc.returncode}:\n{self.stderr()}"

    def close(self):
        """Closes stdin, the program's signal to close Streams cleanly; returns
        {"states": the states it went through, "last": the one it ended in}."""
        out, _ = self.proc.communicate(input=b"", timeout=CLOSE_TIMEOUT_S)
        assert self.proc.returncode == 0, f"Kafka Streams exited with {self.proc.returncode}:\n{self.stderr()}"
        return json.loads(out)

    def kill(self):
        """SIGKILL: the JVM gets no chance to commit, flush or leave the group."""
        self.proc.kill()
        self.proc.wait(timeout=CLOSE_TIMEOUT_S)

    def cleanup(self):
        if self.proc.poll() is None:
            self.kill()
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.log.close()


class Topics:
    def __init__(self, name, app_id):
        self.input = f"{name}-in"
        self.output = f"{name}-out"
        self.repartition = app_id + REPARTITION_SUFFIX
        self.changelog = app_id + CHANGELOG_SUFFIX


class Output:
    """The output topic as a table: the latest count per word, read on from
    where the last look stopped."""

    def __init__(self, bootstrap, topic, isolation="read_committed"):
        self.latest = {}
        self.consumer = consumer(bootstrap, auto_offset_reset="earliest", isolation_level=isolation)
        self.consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])

    def read(self):
        """What there is now: polls until a poll comes back empty, for at most
        READ_MAX_S (a later look reads on)."""
        deadline = time.monotonic() + READ_MAX_S
        while time.monotonic() < deadline:
            msgs = self.consumer.consume(num_messages=1000, timeout=POLL_S)
            if not msgs:
                break
            for m in msgs:
                if m.error() is not None:
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(m.error())
                (count,) = struct.unpack(">q", m.value())
                self.latest[m.key().decode()] = count
        return self.latest

    def close(self):
        self.consumer.close()


def starts(bootstrap, topic):
    return {p: watermarks(bootstrap, topic, p)[0] for p in range(PARTITIONS)}


def ends(bootstrap, topic):
    return {p: watermarks(bootstrap, topic, p)[1] for p in range(PARTITIONS)}


def caught_up(bootstrap, app_id, topics):
    """True once the application committed all its input and then all of its
    repartition topic. A commit comes after Streams flushed its producer, so
    by then every count it made is in the output and the changelog."""
    if committed(bootstrap, app_id, topics.input, PARTITIONS) != ends(bootstrap, topics.input):
        return False
    return committed(bootstrap, app_id, topics.repartition, PARTITIONS) == ends(bootstrap, topics.repartition)


def wait_for(apps, what, predicate, timeout_s=CATCH_UP_TIMEOUT_S):
    """Polls predicate until it holds; apps (an App or a tuple of them) must
    stay alive meanwhile."""
    apps = apps if isinstance(apps, tuple) else (apps,)
    deadline = time.monotonic() + timeout_s
    while True:
        for app in apps:
            app.assert_alive()
        if predicate():
            return
        stderr = "\n".join(app.stderr() for app in apps)
        assert time.monotonic() < deadline, f"timed out after {timeout_s}s waiting for {what}:\n{stderr}"
        time.sleep(POLL_S)


@pytest.fixture
def broker(broker_factory):
    """group.initial.rebalance.delay.ms=0, so each start of the application
    does not wait three seconds for more members."""
    return broker_factory(overrides={"group.initial.rebalance.delay.ms": 0}, shards=2)


@pytest.fixture
def run(broker):
    """start(app_id, topics, config, state_dir=None) -> a running App, with a
    fresh state dir unless given one; every JVM is killed and every dir
    removed at teardown."""
    apps = []
    dirs = []

    def start(app_id, topics, config=NOT_IDEMPOTENT, state_dir=None):
        if state_dir is None:
            state_dir = make_temp_dir("shoal-streams-")
            dirs.append(state_dir)
        log_path = os.path.join(state_dir, f"stderr-{len(apps)}.log")
        app = App(broker.bootstrap, app_id, topics, state_dir, log_path, config)
        apps.append(app)
        return app

    try:
        yield start
    finally:
        for app in apps:
            app.cleanup()
        for d in dirs:
            remove_temp_dir(d)


def assert_internal_topics(b, topics):
    """Streams made its internal topics through CreateTopics, with the
    configs it asks for; the changelog is compacted."""
    assert topic_partitions(b, topics.repartition) == list(range(PARTITIONS))
    assert topic_partitions(b, topics.changelog) == list(range(PARTITIONS))
    repartition = {k: v.value for k, v in describe_topic_configs(b, topics.repartition).items()}
    assert repartition["cleanup.policy"] == "delete"
    assert repartition["retention.ms"] == "-1"
    assert repartition["segment.bytes"] == "52428800"
    assert repartition["message.timestamp.type"] == "CreateTime"
    changelog = {k: v.value for k, v in describe_topic_configs(b, topics.changelog).items()}
    assert changelog["cleanup.policy"] == "compact"
    assert changelog["message.timestamp.type"] == "CreateTime"


def test_streams_word_count_survives_a_crash(broker, topic, run):
    b = broker.bootstrap
    app_id = f"wordcount-{uuid.uuid4().hex[:8]}"
    topics = Topics(topic, app_id)
    create_topic(b, topics.input, PARTITIONS)
    create_topic(b, topics.output, PARTITIONS)
    first = lines("first", FIRST_ONLY + SHARED, 250)
    before_kill = lines("before-kill", SHARED, 250)
    after_kill = lines("after-kill", SHARED, 150)
    last = lines("last", SHARED + LAST_ONLY, 150)
    output = Output(b, topics.output)
    try:
        # The first run counts the first batch and closes cleanly.
        produce_lines(b, topics.input, first)
        app = run(app_id, topics)
        exact = word_counts(first)
        # No crash, so nothing can have been counted twice: the counts are
        # exact.
        wait_for(app, "the first counts", lambda: output.read() == exact)
        wait_for(app, "the first commits", lambda: caught_up(b, app_id, topics))
        assert_internal_topics(b, topics)
        state_dir = app.state_dir
        closed = app.close()
        assert "RUNNING" in closed["states"] and closed["last"] == "NOT_RUNNING", closed
        first_commits = committed(b, app_id, topics.input, PARTITIONS)
        assert first_commits == ends(b, topics.input)

        # The second run, on the first one's state dir, counts the next batch
        # but never commits (its commit interval is longer than the test), and
        # is SIGKILLed once all those counts are out, before the rest of the
        # input even exists: a crash with counts sent and their input not
        # committed, the case at-least-once is about.
        app = run(app_id, topics, f"{NOT_IDEMPOTENT},commit.interval.ms={NEVER_MS}", state_dir)
        produce_lines(b, topics.input, before_kill)
        exact = exact + word_counts(before_kill)
        wait_for(app, "the counts before the kill", lambda: output.read() == exact)
        assert committed(b, app_id, topics.input, PARTITIONS) == first_commits
        app.kill()
        produce_lines(b, topics.input, after_kill)
        exact = exact + word_counts(after_kill)

        # The third run starts from a fresh state dir: it has only the
        # changelog on the broker to rebuild its store from.
        app = run(app_id, topics)
        wait_for(app, "the restarted application to catch up", lambda: caught_up(b, app_id, topics))
        counts = dict(output.read())
        assert set(counts) == set(exact)
        # At-least-once: the restart reads again all the crash left
        # uncommitted, both the input of the batch before the kill (so its
        # repartition records are sent a second time) and the killed run's
        # repartition records. Each occurrence of a word of that batch is so
        # counted twice after the restart, and a third time where the
        # changelog kept the killed run's count: at least once more than it
        # occurs. No word is counted fewer times than it occurs.
        again = word_counts(before_kill)
        not_again = {w: (counts[w], exact[w] + n) for w, n in again.items() if counts[w] < exact[w] + n}
        assert not_again == {}, "words of the uncommitted batch not counted again: (counted, at least)"
        short = {w: (counts[w], n) for w, n in exact.items() if counts[w] < n}
        assert short == {}, "words counted fewer times than they occur: (counted, occurrences)"
        # The first batch was all committed, and its own words occur nowhere
        # else: counting any of them again would mean lost commits.
        assert {w: counts[w] for w in FIRST_ONLY} == {w: exact[w] for w in FIRST_ONLY}

        # No crash since the restart caught up: the store restored from the
        # changelog holds exactly the counts last output, and each count moves
        # by exactly its new words.
        produce_lines(b, topics.input, last)
        expected = collections.Counter(counts) + word_counts(last)
        wait_for(app, "the last counts", lambda: output.read() == expected)
        # Streams deletes the records of its repartition topic it committed.
        wait_for(app, "the repartition topic purged up to the commits",
                 lambda: starts(b, topics.repartition) == committed(b, app_id, topics.repartition, PARTITIONS))
        closed = app.close()
        assert closed["last"] == "NOT_RUNNING", closed
        assert output.read() == expected
        assert committed(b, app_id, topics.input, PARTITIONS) == ends(b, topics.input)
    finally:
        output.close()


EXACTLY_ONCE = "processing.guarantee=exactly_once_v2"


def written(bootstrap, topic):
    """The sum of the topic's high watermarks, open transactions included
    (a read_committed consumer's latest offset would be the last stable
    offset)."""
    c = consumer(bootstrap, isolation_level="read_uncommitted")
    try:
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=REQUEST_TIMEOUT_S)[1]
                   for p in range(PARTITIONS))
    finally:
        c.close()


def test_streams_exactly_once_survives_a_crash(broker, topic, run):
    """exactly_once_v2: each task's output, changelog writes, repartition
    writes and input offsets go in one transaction. The application is
    SIGKILLed with a transaction open (its repartition records written,
    nothing committed); the restart, on the same state dir (the same process
    id, so the same transactional.id, which fences the killed producer and
    aborts its transaction) counts every word exactly as often as it occurs."""
    b = broker.bootstrap
    app_id = f"wordcount-{uuid.uuid4().hex[:8]}"
    topics = Topics(topic, app_id)
    create_topic(b, topics.input, PARTITIONS)
    create_topic(b, topics.output, PARTITIONS)
    first = lines("eos-first", FIRST_ONLY + SHARED, 200)
    before_kill = lines("eos-before-kill", SHARED, 200)
    after_kill = lines("eos-after-kill", SHARED + LAST_ONLY, 150)
    # librdkafka's consumer reads committed data by default.
    output = Output(b, topics.output)
    try:
        produce_lines(b, topics.input, first)
        app = run(app_id, topics, EXACTLY_ONCE)
        exact = word_counts(first)
        wait_for(app, "the first counts", lambda: output.read() == exact)
        state_dir = app.state_dir
        assert app.close()["last"] == "NOT_RUNNING"
        first_commits = committed(b, app_id, topics.input, PARTITIONS)
        assert first_commits == ends(b, topics.input)
        repartitioned = written(b, topics.repartition)

        # A transaction that never commits: the commit interval and the
        # transaction timeout outlast the test.
        app = run(app_id, topics, f"{EXACTLY_ONCE},commit.interval.ms={NEVER_MS},"
                                  f"producer.transaction.timeout.ms={NEVER_MS}", state_dir)
        produce_lines(b, topics.input, before_kill)
        words = sum(word_counts(before_kill).values())
        wait_for(app, "the repartition records of the batch before the kill",
                 lambda: written(b, topics.repartition) >= repartitioned + words)
        assert output.read() == exact
        assert committed(b, app_id, topics.input, PARTITIONS) == first_commits
        app.kill()
        produce_lines(b, topics.input, after_kill)
        exact = exact + word_counts(before_kill) + word_counts(after_kill)

        app = run(app_id, topics, EXACTLY_ONCE, state_dir)
        wait_for(app, "the exact counts", lambda: output.read() == exact)
        # Closing commits all it processed: a count made twice would show now.
        assert app.close()["last"] == "NOT_RUNNING"
        assert committed(b, app_id, topics.input, PARTITIONS) == ends(b, topics.input)
        assert output.read() == exact
    finally:
        output.close()


def assignments(bootstrap, group):
    """{member's client id: {topic: [partitions]}} once the group is Stable
    with its assignments known, else None. So is a coordinator error, which
    clients retry: Kafka answers NOT_COORDINATOR while it loads a new
    __consumer_offsets."""
    client = admin(bootstrap)  # kept alive until the answer is in
    future = client.describe_consumer_groups([group], request_timeout=REQUEST_TIMEOUT_S)[group]
    try:
        described = future.result(timeout=REQUEST_TIMEOUT_S)
    except KafkaException as e:
        if e.args[0].code() in COORDINATOR_ERRORS:
            return None
        raise
    if described.state != ConsumerGroupState.STABLE:
        return None
    out = {}
    for m in described.members:
        for tp in m.assignment.topic_partitions:
            out.setdefault(m.client_id, {}).setdefault(tp.topic, []).append(tp.partition)
    return out


def split_over(bootstrap, group, topic_names, members):
    """True once `members` members of the group share out every partition of
    each of `topic_names`, each partition to one member only."""
    got = assignments(bootstrap, group)
    if got is None or len(got) != members:
        return False
    for name in topic_names:
        held = [p for topics in got.values() for p in topics.get(name, [])]
        if sorted(held) != list(range(PARTITIONS)):
            return False
    return all(got.values())


def test_streams_instances_split_the_tasks(broker, topic, run):
    """Two instances of the application share its tasks through Streams' own
    assignor on the classic group protocol; when one closes, the other takes
    its tasks over, restoring their stores from the changelog. Without a
    crash nothing is counted twice: rebalances commit before they move a
    task."""
    b = broker.bootstrap
    app_id = f"wordcount-{uuid.uuid4().hex[:8]}"
    topics = Topics(topic, app_id)
    create_topic(b, topics.input, PARTITIONS)
    create_topic(b, topics.output, PARTITIONS)
    output = Output(b, topics.output)
    try:
        exact = collections.Counter()
        first = lines("split-first", SHARED, 300)
        produce_lines(b, topics.input, first)
        exact += word_counts(first)
        one, two = run(app_id, topics), run(app_id, topics)
        wait_for((one, two), "both instances to hold tasks",
                 lambda: split_over(b, app_id, [topics.input, topics.repartition], 2))
        second = lines("split-second", SHARED, 300)
        produce_lines(b, topics.input, second)
        exact += word_counts(second)
        wait_for((one, two), "the counts of both instances", lambda: output.read() == exact)

        two.close()
        third = lines("split-third", SHARED, 300)
        produce_lines(b, topics.input, third)
        exact += word_counts(third)
        wait_for(one, "the counts after one instance left", lambda: output.read() == exact)
        wait_for(one, "the one instance left to hold every task",
                 lambda: split_over(b, app_id, [topics.input, topics.repartition], 1))
        wait_for(one, "the last commits", lambda: caught_up(b, app_id, topics))
        assert one.close()["last"] == "NOT_RUNNING"
    finally:
        output.close()


def test_streams_default_config(broker, topic, run):
    b = broker.bootstrap
    app_id = f"wordcount-{uuid.uuid4().hex[:8]}"
    topics = Topics(topic, app_id)
    create_topic(b, topics.input, PARTITIONS)
    create_topic(b, topics.output, PARTITIONS)
    batch = lines("default", SHARED, 50)
    produce_lines(b, topics.input, batch)
    output = Output(b, topics.output)
    try:
        app = run(app_id, topics, config="")
        wait_for(app, "the counts", lambda: output.read() == word_counts(batch))
        assert "RUNNING" in app.close()["states"]
    finally:
        output.close()


@pytest.mark.shoal_only
def test_streams_group_protocol_is_refused(broker, topic, run):
    """KIP-1071's streams group protocol needs StreamsGroupHeartbeat, which
    shoal does not advertise: the application fails at once, saying so,
    instead of waiting for a group that never forms."""
    b = broker.bootstrap
    app_id = f"wordcount-{uuid.uuid4().hex[:8]}"
    topics = Topics(topic, app_id)
    create_topic(b, topics.input, PARTITIONS)
    create_topic(b, topics.output, PARTITIONS)
    app = run(app_id, topics, config=f"{NOT_IDEMPOTENT},group.protocol=streams")
    assert app.proc.wait(timeout=CATCH_UP_TIMEOUT_S) == 1
    assert "UnsupportedVersionException: The cluster does not support the STREAMS group protocol" in app.stderr()
