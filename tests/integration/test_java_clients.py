"""The Java client (kafka-clients, the release pinned in tests/kafka/pom.xml)
against shoal: KafkaProducer, KafkaConsumer with the classic protocol and
KIP-848, and Admin.

The clients run as the programs in tests/java (compiled into
target/java-classes by tests/java/build, which tests/run calls), one JVM per
call, talking JSON: records to produce on stdin, what the client answered on
stdout, the client's own exception on stderr with exit code 1. Every check is
here."""

import json
import os
import random
import shutil
import subprocess
import time

import pytest

import client_programs
from client_programs import b64, members, unb64, wait_for_split  # noqa: F401 (members: a fixture)
from clients import assert_read_back, create_topic, produce_records, watermarks
from conftest import HOST
from records import Record, make_records

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLASSES = os.path.join(REPO, "target", "java-classes")
JARS = os.path.join(REPO, "target", "kafka")
BUILD = os.path.join(REPO, "tests", "java", "build")
LOG_CONFIG = os.path.join(REPO, "tests", "java", "log4j2.properties")
# A short-lived client JVM: the C1 compiler and the serial collector start
# fastest, and one call never runs long enough to want more.
JVM_FLAGS = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx256m"]

# Each program bounds its own run (-timeout); the subprocess bound is a last
# resort that kills a program which did not honour it.
PROGRAM_TIMEOUT_S = 40
KILL_MARGIN_S = 10
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PARTITIONS = 3
PER_PARTITION = 100
# The kill -9 test: records sent at a pace, so that each kill meets the
# producer mid-stream (900 records take 6 s), and the kills.
KILL_TEST_PER_PARTITION = 300
KILL_TEST_RATE_PER_S = 150
KILLS = 3
# As conftest: the kernel kills a program whose test process died.
SETPRIV = shutil.which("setpriv")
# A JVM per call, several calls per test, on a loaded machine.
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module", autouse=True)
def java_programs():
    """The programs are compiled by tests/java/build; a stale build is an
    error (it would test old code), no JDK at all a skip (tests/run has
    warned)."""
    if shutil.which("javac") is None:
        pytest.skip("no JDK: tests/run could not install one")
    check = subprocess.run([BUILD, "--check"], capture_output=True, text=True, timeout=60)
    if check.returncode != 0:
        pytest.fail(f"tests/java/build --check: {check.stderr.strip()}")


@pytest.fixture
def broker(broker_factory):
    """group.initial.rebalance.delay.ms=0, so a group's first rebalance does
    not wait three seconds for more members."""
    return broker_factory(overrides={"group.initial.rebalance.delay.ms": 0}, shards=2)


def command(*args, jvm_args=()):
    cmd = [
        "java",
        *JVM_FLAGS,
        *jvm_args,
        f"-Dlog4j2.configurationFile={LOG_CONFIG}",
        "-cp",
        f"{CLASSES}{os.pathsep}{JARS}/*",
        "shoal.clients.Main",
        *args,
        "-timeout",
        f"{PROGRAM_TIMEOUT_S}s",
    ]
    return [SETPRIV, "--pdeathsig", "KILL", "--", *cmd] if SETPRIV else cmd


def java(*args, records=None, expect_ok=True):
    """Runs one call; returns its JSON answer, or the CompletedProcess when
    expect_ok is False."""
    stdin = None if records is None else json.dumps([encode(r) for r in records])
    proc = subprocess.run(
        command(*args), input=stdin, capture_output=True, text=True, timeout=PROGRAM_TIMEOUT_S + KILL_MARGIN_S
    )
    if not expect_ok:
        return proc
    assert proc.returncode == 0, f"java {' '.join(args)} failed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout)


def encode(r):
    return {
        "partition": r.partition,
        "key": b64(r.key),
        "value": b64(r.value),
        "headers": [{"key": k, "value": b64(v)} for k, v in r.headers],
        "timestamp_ms": r.timestamp_ms,
    }


def by_partition(consumed):
    """{partition: [(offset, key, value, headers, timestamp)]} in the order
    received; every record must carry its producer's CreateTime."""
    out = {}
    for c in consumed:
        assert c["timestamp_type"] == "CreateTime", c
        headers = [(h["key"], unb64(h["value"])) for h in c["headers"]]
        out.setdefault(c["partition"], []).append(
            (c["offset"], unb64(c["key"]), unb64(c["value"]), headers, c["timestamp_ms"])
        )
    return out


def expected(records, first=0):
    """As by_partition for what was produced, from offset `first` on."""
    return {
        p: [
            (i, r.key, r.value, list(r.headers), r.timestamp_ms)
            for i, r in enumerate(rows)
            if i >= first
        ]
        for p, rows in records.items()
    }


def flat(records):
    return [r for p in sorted(records) for r in records[p]]


def group_name():
    return client_programs.group_name("java")


def with_nulls(records):
    """Adds a tombstone with a null key and a record with a null header
    value to partition 0."""
    rows = records[0]
    ts = rows[-1].timestamp_ms
    rows.append(Record(partition=0, key=None, value=None, headers=[], timestamp_ms=ts + 1))
    rows.append(Record(partition=0, key=b"k", value=b"v", headers=[("null", None)], timestamp_ms=ts + 2))
    return records


def produce_and_create(b, topic, records, *args):
    java("admin", "-brokers", b, "-op", "create-topic", "-topic", topic, "-partitions", str(len(records)))
    return java("produce", "-brokers", b, "-topic", topic, *args, records=flat(records))


@pytest.mark.parametrize("codec", CODECS)
def test_java_round_trip(broker, topic, codec):
    """Every codec, acks=all: keys, headers, CreateTime, null key, value and
    header value come back exactly, in order per partition, through a classic
    group whose commits Admin then sees."""
    b = broker.bootstrap
    records = with_nulls(
        make_records(seed=f"java-{codec}", partitions=PARTITIONS, per_partition=PER_PARTITION, big_every=50)
    )
    acks = produce_and_create(b, topic, records, "-codec", codec, "-acks", "all")
    assert acks == [{"partition": p, "offset": i} for p in sorted(records) for i in range(len(records[p]))]

    group = group_name()
    total = sum(len(rows) for rows in records.values())
    consumed = java("consume", "-brokers", b, "-topic", topic, "-group", group, "-count", str(total))
    assert by_partition(consumed) == expected(records)

    ends = {str(p): len(rows) for p, rows in records.items()}
    assert java("admin", "-brokers", b, "-op", "fetch-offsets", "-group", group) == {topic: ends}
    assert java("admin", "-brokers", b, "-op", "list-groups")[group] == {
        "state": "Empty",
        "type": "Classic",
        "protocol": "consumer",
    }


@pytest.mark.parametrize("acks", ["0", "1"])
def test_java_acks(broker, topic, acks):
    """acks=1 learns each offset; acks=0 learns none (the client reports -1)
    but the records land all the same."""
    b = broker.bootstrap
    records = make_records(seed=f"java-acks-{acks}", partitions=2, per_partition=50)
    got = produce_and_create(b, topic, records, "-acks", acks, "-codec", "lz4")
    want_offset = (lambda i: i) if acks == "1" else (lambda i: -1)
    assert got == [{"partition": p, "offset": want_offset(i)} for p in sorted(records) for i in range(50)]
    consumed = java("consume", "-brokers", b, "-topic", topic, "-assign", "0,1", "-count", "100")
    assert by_partition(consumed) == expected(records)


def test_java_default_producer(broker, topic):
    """KafkaProducer's default config is idempotent (acks=all,
    enable.idempotence=true): it asks InitProducerId for a producer id and
    sends sequenced batches."""
    b = broker.bootstrap
    records = make_records(seed="java-default", partitions=1, per_partition=10)
    java("admin", "-brokers", b, "-op", "create-topic", "-topic", topic, "-partitions", "1")
    proc = java("produce", "-brokers", b, "-topic", topic, "-default-config", "true", records=flat(records),
                expect_ok=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == [{"partition": 0, "offset": i} for i in range(10)]


# Three restarts inside the producer's 20 s delivery timeout and the
# program's 40 s: a JVM broker (Kafka) restarts in 10 to 20 s each on a
# loaded machine, so there it would measure restart time, not the producer.
@pytest.mark.shoal_only
def test_java_default_producer_writes_each_record_once_through_kill9(broker, topic, tmp_root):
    """The out-of-the-box (idempotent) KafkaProducer while the broker is
    killed with kill -9 and restarted mid-stream: every record is in the log
    once, in send order per partition, and each acknowledgement names the
    offset where its record is."""
    rng = random.Random(f"java-kill9-{topic}")
    b = broker.bootstrap
    records = make_records(seed="java-kill9", partitions=PARTITIONS, per_partition=KILL_TEST_PER_PARTITION)
    create_topic(b, topic, PARTITIONS)
    # Round robin over the partitions, so that every kill meets all three.
    sent = [records[p][i] for i in range(KILL_TEST_PER_PARTITION) for p in sorted(records)]
    records_path = os.path.join(tmp_root, "records.json")
    with open(records_path, "w") as f:
        json.dump([encode(r) for r in sent], f)
    with open(records_path) as stdin:
        proc = subprocess.Popen(
            command("produce", "-brokers", b, "-topic", topic, "-default-config", "true",
                    "-rate-per-s", str(KILL_TEST_RATE_PER_S)),
            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
    try:
        deadline = time.monotonic() + PROGRAM_TIMEOUT_S
        while watermarks(b, topic, 0)[1] == 0:
            assert time.monotonic() < deadline and proc.poll() is None, "the producer never wrote"
            time.sleep(0.1)
        for kill in range(KILLS):
            time.sleep(rng.uniform(0.3, 1.0))
            if proc.poll() is not None:
                errors = [line for line in proc.stderr.read().splitlines() if line.startswith("error:")]
                pytest.fail(f"the producer was done before kill {kill}: {errors}")
            broker.kill9()
            time.sleep(rng.uniform(0.0, 0.3))
            broker.start()
        out, err = proc.communicate(timeout=PROGRAM_TIMEOUT_S + KILL_MARGIN_S)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err[-4000:]
    acks = json.loads(out)
    position = {p: 0 for p in records}
    for record, ack in zip(sent, acks, strict=True):
        assert ack == {"partition": record.partition, "offset": position[record.partition]}
        position[record.partition] += 1
    assert [watermarks(b, topic, p)[1] for p in sorted(records)] == [KILL_TEST_PER_PARTITION] * PARTITIONS
    assert_read_back(b, topic, records)


@pytest.mark.parametrize(
    "protocol, commit",
    [("classic", "sync"), ("classic", "async"), ("consumer", "sync"), ("consumer", "async")],
)
def test_java_group_resumes_from_its_commits(broker, topic, protocol, commit):
    """A second consumer of the group reads exactly what the first did not
    commit (commitSync or commitAsync): per partition, the two reads together
    are the log, in order, once."""
    b = broker.bootstrap
    records = make_records(seed=f"java-resume-{protocol}-{commit}", partitions=PARTITIONS, per_partition=30)
    produce_and_create(b, topic, records, "-codec", "gzip")
    group = group_name()
    member = ["-group", group, "-protocol", protocol, "-commit", commit]
    first = java("consume", "-brokers", b, "-topic", topic, "-count", "40", *member)
    second = java("consume", "-brokers", b, "-topic", topic, "-count", "50", *member)
    assert len(first) == 40
    assert by_partition(first + second) == expected(records)
    assert java("admin", "-brokers", b, "-op", "fetch-offsets", "-group", group) == {
        topic: {str(p): 30 for p in records}
    }
    assert java("admin", "-brokers", b, "-op", "list-groups")[group]["type"] == (
        "Classic" if protocol == "classic" else "Consumer"
    )


def start_member(members, bootstrap, topic, group, *args):
    members.start(command("consume", "-brokers", bootstrap, "-topic", topic, "-group", group, "-count", "1000000", *args))


def describe(bootstrap, group, missing_ok=False):
    """Admin's describeConsumerGroups; None for a group that does not exist
    (yet: until its first member's first join or heartbeat) if missing_ok."""
    proc = java("admin", "-brokers", bootstrap, "-op", "describe-groups", "-group", group, expect_ok=False)
    if missing_ok and proc.returncode != 0 and "GroupIdNotFoundException" in proc.stderr:
        return None
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize(
    "protocol, assignor",
    [("classic", "range"), ("classic", "cooperative-sticky"), ("consumer", "uniform"), ("consumer", "range")],
)
def test_java_members_split_partitions(broker, topic, members, protocol, assignor):
    """Two KafkaConsumers share the partitions: with the classic protocol the
    client's assignor runs in the leader, with KIP-848 the broker's."""
    b = broker.bootstrap
    java("admin", "-brokers", b, "-op", "create-topic", "-topic", topic, "-partitions", "4")
    group = group_name()
    args = ["-protocol", protocol, "-assignor", assignor]
    start_member(members, b, topic, group, *args)
    wait_for_split(members, lambda: describe(b, group, missing_ok=True), topic, 1, 4)
    start_member(members, b, topic, group, *args)
    described = wait_for_split(members, lambda: describe(b, group, missing_ok=True), topic, 2, 4)
    assert sorted(len(m["assigned"][topic]) for m in described["members"]) == [2, 2]
    assert (described["type"], described["assignor"]) == ("Classic" if protocol == "classic" else "Consumer", assignor)


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_java_static_membership(broker, topic, protocol):
    """A member with group.instance.id does not leave on close (KIP-345;
    KIP-848 keeps it too, until its session times out): the group keeps it
    and its partitions until it comes back under the same id and reads on
    from its commits. A KIP-848 group with a member away (epoch -2) is
    Reconciling, not Stable, as in Kafka."""
    b = broker.bootstrap
    records = make_records(seed=f"java-static-{protocol}", partitions=2, per_partition=20)
    produce_and_create(b, topic, records)
    group = group_name()
    member = ["-group", group, "-instance-id", "static-a", "-protocol", protocol]
    first = java("consume", "-brokers", b, "-topic", topic, "-count", "15", *member)
    gone = describe(b, group)
    assert gone["state"] == ("Stable" if protocol == "classic" else "Reconciling")
    assert [(m["instance_id"], m["assigned"]) for m in gone["members"]] == [("static-a", {topic: [0, 1]})]
    second = java("consume", "-brokers", b, "-topic", topic, "-count", "25", *member)
    assert by_partition(first + second) == expected(records)
    if protocol == "classic":
        # LeaveGroup by instance id (KIP-345's way to let a static member go).
        java("admin", "-brokers", b, "-op", "remove-members", "-group", group)
        assert describe(b, group) == {"state": "Empty", "type": "Classic", "assignor": "", "members": []}


def test_java_seek_and_offsets_for_times(broker, topic):
    """assign() and seek() to offsets or to a time (offsetsForTimes), and the
    consumer's own offset queries."""
    b = broker.bootstrap
    records = make_records(seed="java-seek", partitions=3, per_partition=10)
    produce_and_create(b, topic, records, "-codec", "snappy")
    consumed = java("consume", "-brokers", b, "-topic", topic, "-assign", "0,2", "-seek", "0=4,2=9", "-count", "7")
    assert by_partition(consumed) == {0: expected(records, first=4)[0], 2: expected(records, first=9)[2]}

    # Partition 1's sixth record is the first at or after that time; the other
    # partitions' timestamps lie wholly before it (0) or after it (2).
    at = records[1][5].timestamp_ms
    found = java("query", "-brokers", b, "-topic", topic, "-op", "for-times", "-millis", str(at))
    assert found == {
        "0": None,
        "1": {"offset": 5, "timestamp_ms": at},
        "2": {"offset": 0, "timestamp_ms": records[2][0].timestamp_ms},
    }
    consumed = java("consume", "-brokers", b, "-topic", topic, "-assign", "0,1,2", "-seek-time", str(at),
                    "-count", "15")
    assert by_partition(consumed) == {1: expected(records, first=5)[1], 2: expected(records)[2]}
    ends = java("query", "-brokers", b, "-topic", topic, "-op", "ends")
    assert ends == {"start": {"0": 0, "1": 0, "2": 0}, "end": {"0": 10, "1": 10, "2": 10}}


def test_java_pause_resume(broker, topic):
    """A paused partition yields nothing until resumed, then everything."""
    b = broker.bootstrap
    records = make_records(seed="java-pause", partitions=3, per_partition=20)
    produce_and_create(b, topic, records)
    consumed = java("consume", "-brokers", b, "-topic", topic, "-group", group_name(), "-pause", "0",
                    "-resume-after", "40", "-count", "60")
    assert all(c["partition"] != 0 for c in consumed[:40])
    assert by_partition(consumed) == expected(records)


def test_java_admin(broker, topic):
    """Every Admin call for an API shoal serves, checked by its effect."""
    b = broker.bootstrap

    def adm(op, *args):
        return java("admin", "-brokers", b, "-op", op, *args)

    created = adm("create-topic", "-topic", topic, "-partitions", "2", "-config", "retention.ms=3600000")
    assert (created["partitions"], created["replication_factor"]) == (2, 1)
    assert adm("topics")[topic] == {"id": created["id"], "internal": False}
    cluster = adm("cluster")
    assert [(n["host"], n["port"]) for n in cluster["nodes"]] == [(HOST, broker.port)]
    node = cluster["nodes"][0]["id"]
    assert cluster["controller"] == node
    assert adm("describe-topic", "-topic", topic) == {
        "id": created["id"],
        "internal": False,
        "partitions": [{"partition": p, "leader": node, "replicas": [node], "isr": [node]} for p in range(2)],
    }

    configs = adm("describe-configs", "-topic", topic)
    assert configs["retention.ms"] == {
        "value": "3600000", "source": "DYNAMIC_TOPIC_CONFIG", "sensitive": False, "read_only": False
    }
    assert configs["cleanup.policy"]["source"] == "DEFAULT_CONFIG"
    adm("alter-configs", "-topic", topic, "-set", "segment.bytes=1048576", "-delete", "retention.ms")
    configs = adm("describe-configs", "-topic", topic)
    assert configs["segment.bytes"]["value"] == "1048576"
    assert (configs["retention.ms"]["value"], configs["retention.ms"]["source"]) == ("604800000", "DEFAULT_CONFIG")
    broker_configs = adm("describe-configs", "-broker", str(node))
    assert broker_configs["message.max.bytes"]["value"] == "1048588"

    adm("create-partitions", "-topic", topic, "-total", "4")
    assert len(adm("describe-topic", "-topic", topic)["partitions"]) == 4

    records = make_records(seed="java-admin", partitions=4, per_partition=10)
    java("produce", "-brokers", b, "-topic", topic, records=flat(records))
    assert adm("delete-records", "-topic", topic, "-offsets", "0=4,3=10") == {"0": 4, "3": 10}
    assert {p: o["offset"] for p, o in adm("offsets", "-topic", topic, "-spec", "earliest").items()} == {
        "0": 4, "1": 0, "2": 0, "3": 10
    }
    assert {p: o["offset"] for p, o in adm("offsets", "-topic", topic, "-spec", "latest").items()} == {
        str(p): 10 for p in range(4)
    }
    newest = adm("offsets", "-topic", topic, "-spec", "max-timestamp")
    assert newest["1"] == {"offset": 9, "timestamp_ms": records[1][9].timestamp_ms}
    at = records[1][5].timestamp_ms
    # The first record at or after the time; -1 where none is (partition 0's
    # are all earlier, partition 3's all deleted).
    assert {p: o["offset"] for p, o in adm("offsets", "-topic", topic, "-spec", str(at)).items()} == {
        "0": -1, "1": 5, "2": 0, "3": -1
    }

    dirs = adm("log-dirs")
    assert len(dirs) == 1
    (described,) = dirs.values()
    assert described["error"] is None and described["broker"] == node
    assert all(described["replicas"][f"{topic}-{p}"] > 0 for p in range(4))

    group = group_name()
    adm("alter-offsets", "-group", group, "-topic", topic, "-offsets", "0=7,2=3")
    assert adm("fetch-offsets", "-group", group) == {topic: {"0": 7, "2": 3}}
    adm("delete-offsets", "-group", group, "-topic", topic, "-partitions", "2")
    assert adm("fetch-offsets", "-group", group) == {topic: {"0": 7}}
    assert adm("list-groups")[group] == {"state": "Empty", "type": "Classic", "protocol": ""}
    adm("delete-group", "-group", group)
    assert group not in adm("list-groups")

    adm("delete-topic", "-topic-id", created["id"])
    assert topic not in adm("topics")
    gone = java("admin", "-brokers", b, "-op", "delete-topic", "-topic", topic, expect_ok=False)
    assert gone.returncode == 1 and "UnknownTopicOrPartitionException" in gone.stderr


def test_java_and_librdkafka_read_each_other(broker, topic):
    """What the Java client wrote librdkafka reads, and the other way round,
    headers and CreateTime included."""
    b = broker.bootstrap
    java_records = make_records(seed="java-to-rdkafka", partitions=2, per_partition=40)
    produce_and_create(b, topic, java_records, "-codec", "zstd")
    assert_read_back(b, topic, java_records)

    other = f"{topic}-rdkafka"
    create_topic(b, other, 2)
    rdkafka_records = make_records(seed="rdkafka-to-java", partitions=2, per_partition=40)
    produce_records(b, other, rdkafka_records, compression_type="lz4")
    consumed = java("consume", "-brokers", b, "-topic", other, "-assign", "0,1", "-count", "80")
    assert by_partition(consumed) == expected(rdkafka_records)


@pytest.mark.shoal_only
def test_java_unsupported_admin_calls(broker, topic):
    """Admin calls for APIs shoal does not serve fail with the client's
    UnsupportedVersionException, as against a Kafka too old for them.
    docs/compatibility.md lists them."""
    b = broker.bootstrap
    java("admin", "-brokers", b, "-op", "create-topic", "-topic", topic, "-partitions", "1")
    assert java("admin", "-brokers", b, "-op", "unsupported", "-topic", topic) == {
        # Served since issue 17; with no authorizer configured, Kafka's
        # answer is SECURITY_DISABLED.
        "describeAcls": "SecurityDisabledException",
        # Served since issue 17 (client quotas in the metadata).
        "describeClientQuotas": "ok",
        # Served since issue 17 (SCRAM credentials in the metadata).
        "describeUserScramCredentials": "ok",
        "listTransactions": "ok",
        # Served since issue 15 (forwarded to the controller).
        "listPartitionReassignments": "ok",
        # Served since issue 14: a lone node answers from its own quorum.
        "describeMetadataQuorum": "ok",
        "describeDelegationToken": "UnsupportedVersionException",
        # Served since transactions: each partition's producer state.
        "describeProducers": "ok",
        # Served since issue 15: partition 0's only replica leads it
        # already, Kafka's answer for that.
        "electLeaders": "ElectionNotNeededException",
        "createAcls": "SecurityDisabledException",
        "alterClientQuotas": "ok",
        "alterUserScramCredentials": "ok",
        "alterPartitionReassignments": "ok",
        # Served since the transaction coordinator: it bumps the id's epoch.
        "fenceProducers": "ok",
        "describeFeatures": "ok",
    }


def test_java_producer_fails_a_batch_naming_its_keyless_records(broker, topic):
    """KIP-467 as the Java producer takes it (Sender.failBatch): a batch to a
    compacted topic with keyless records fails whole; each record the answer
    names gets an InvalidRecordException with the broker's reason, the other
    records of the batch a generic KafkaException, and none of it lands."""
    b = broker.bootstrap
    java("admin", "-brokers", b, "-op", "create-topic", "-topic", topic, "-partitions", "1",
         "-config", "cleanup.policy=compact")
    ts = int(time.time() * 1000)
    keys = [b"a", None, b"c", None]
    mixed = [Record(partition=0, key=k, value=b"v%d" % i, timestamp_ms=ts) for i, k in enumerate(keys)]
    # A long linger: the four records go as one batch, sent by the flush.
    got = java("produce", "-brokers", b, "-topic", topic, "-config", "linger.ms=5000", "-report-errors", "true",
               records=mixed)
    named = {
        "error": "InvalidRecordException",
        "message": f"Compacted topic cannot accept message without key in topic partition {topic}-0",
    }
    bystander = {
        "error": "KafkaException",
        "message": "Failed to append record because it was part of a batch which had one more more invalid records",
    }
    assert got == [bystander, named, bystander, named]
    keyed = [Record(partition=0, key=b"k", value=b"v", timestamp_ms=ts)]
    assert java("produce", "-brokers", b, "-topic", topic, records=keyed) == [{"partition": 0, "offset": 0}]
