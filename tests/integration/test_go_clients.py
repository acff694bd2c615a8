"""The Go clients against shoal: franz-go (kgo producing and consuming in a
group with the classic protocol and KIP-848, kadm admin) and
segmentio/kafka-go (Writer, Reader in a group, kafka.Client admin).

The clients run as the programs in tests/go (built into target/go-bin by
tests/go/build, which tests/run calls), one process per call, talking JSON:
records to produce on stdin, what the client answered on stdout, and the
client's own error on stderr with exit code 1. Every check is here."""

import json
import os
import shutil
import subprocess
import time

import pytest

import client_programs
from client_programs import b64, members, unb64, wait_for_split  # noqa: F401 (members: a fixture)
from test_transactions import joined, spread, values
from conftest import wait_until
from records import BASE_TIMESTAMP_MS, Record, make_records

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GO_BIN = os.path.join(REPO, "target", "go-bin")
BUILD = os.path.join(REPO, "tests", "go", "build")
# Where the official Go tarball installs itself, often not on PATH.
GO_TARBALL_DIR = "/usr/local/go/bin"

# Each program bounds its own run (-timeout); the subprocess bound is a last
# resort that kills a program which did not honour it.
PROGRAM_TIMEOUT_S = 40
KILL_MARGIN_S = 10
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PARTITIONS = 3
PER_PARTITION = 100
# As conftest: the kernel kills a program whose test process died.
SETPRIV = shutil.which("setpriv")
# What a group coordinator answers while it takes its partition of
# `__consumer_offsets` (Kafka, after creating that topic for a new cluster's
# first group), as franz-go and kafka-go print them. The Java client retries
# them; these admin calls return them, so the tests ask again, bounded.
COORDINATOR_SETTLING = (
    "COORDINATOR_NOT_AVAILABLE",
    "NOT_COORDINATOR",
    "COORDINATOR_LOAD_IN_PROGRESS",
    "Group Coordinator Not Available",
    "Not Coordinator For Group",
    "Group Load In Progress",
)
COORDINATOR_SETTLE_TIMEOUT_S = 20
# Kafka's broker applies an altered topic config once the controller's
# metadata reaches it, a moment after AlterConfigs answered.
CONFIG_APPLIED_TIMEOUT_S = 10
COORDINATOR_SETTLE_POLL_S = 0.3

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module", autouse=True)
def go_programs():
    """The programs are built by tests/go/build; a stale build is an error
    (it would test old code), no Go toolchain at all a skip (tests/run has
    warned)."""
    env = {**os.environ, "PATH": os.environ.get("PATH", "") + os.pathsep + GO_TARBALL_DIR}
    if shutil.which("go", path=env["PATH"]) is None:
        pytest.skip("no Go toolchain: tests/run could not install one")
    check = subprocess.run([BUILD, "--check"], env=env, capture_output=True, text=True, timeout=60)
    if check.returncode != 0:
        pytest.fail(f"tests/go/build --check: {check.stderr.strip()}")


@pytest.fixture
def broker(broker_factory):
    """group.initial.rebalance.delay.ms=0, so a group's first rebalance does
    not wait three seconds for more members."""
    return broker_factory(overrides={"group.initial.rebalance.delay.ms": 0}, shards=2)


def run(program, *args, records=None, stdin=None, expect_ok=True):
    """Runs target/go-bin/<program> with args, `records` (or any other JSON
    `stdin`) on its stdin; returns its JSON answer, or the CompletedProcess
    when expect_ok is False."""
    if records is not None:
        stdin = [encode(r) for r in records]
    stdin = None if stdin is None else json.dumps(stdin)
    command = [os.path.join(GO_BIN, program), *args, "-timeout", f"{PROGRAM_TIMEOUT_S}s"]
    if SETPRIV:
        command = [SETPRIV, "--pdeathsig", "KILL", "--", *command]
    proc = subprocess.run(
        command,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=PROGRAM_TIMEOUT_S + KILL_MARGIN_S,
    )
    if not expect_ok:
        return proc
    assert proc.returncode == 0, f"{program} {' '.join(args)} failed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout)


def coordinator_settling(proc):
    return proc.returncode != 0 and any(error in proc.stderr for error in COORDINATOR_SETTLING)


def once_coordinator_settles(program, *args):
    """run(program, *args), asked again while the group coordinator is
    settling; its JSON answer."""
    deadline = time.monotonic() + COORDINATOR_SETTLE_TIMEOUT_S
    for _ in range(int(COORDINATOR_SETTLE_TIMEOUT_S / COORDINATOR_SETTLE_POLL_S) + 1):
        proc = run(program, *args, expect_ok=False)
        if not coordinator_settling(proc) or time.monotonic() >= deadline:
            break
        time.sleep(COORDINATOR_SETTLE_POLL_S)
    assert proc.returncode == 0, f"{program} {' '.join(args)} failed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout)


def configs_once_applied(adm, topic, name, value):
    """describe-configs of `topic` through `adm` once `name` reads `value`."""

    def applied():
        configs = adm("describe-configs", "-topic", topic)
        return configs if configs[name]["value"] == value else None

    return wait_until(applied, CONFIG_APPLIED_TIMEOUT_S, f"{name}={value} in DescribeConfigs", interval_s=0.3)


def franz(*args, **kw):
    return run("franz", *args, **kw)


def kafkago(*args, **kw):
    return run("kafkago", *args, **kw)


def encode(r):
    return {
        "partition": r.partition,
        "key": b64(r.key),
        "value": b64(r.value),
        "headers": [{"key": k, "value": b64(v)} for k, v in r.headers],
        "timestamp_ms": r.timestamp_ms,
    }


def by_partition(consumed, null_is_empty=False):
    """{partition: [(offset, key, value, headers, timestamp)]} in the order
    received. null_is_empty: the client cannot tell a null key, value or
    header value from an empty one (kafka-go), so both read as b""."""
    fix = (lambda b: b or b"") if null_is_empty else (lambda b: b)
    out = {}
    for c in consumed:
        headers = [(h["key"], fix(unb64(h["value"]))) for h in c["headers"] or []]
        out.setdefault(c["partition"], []).append(
            (c["offset"], fix(unb64(c["key"])), fix(unb64(c["value"])), headers, c["timestamp_ms"])
        )
    return out


def expected(records, null_is_empty=False):
    fix = (lambda b: b or b"") if null_is_empty else (lambda b: b)
    return {
        p: [
            (i, fix(r.key), fix(r.value), [(k, fix(v)) for k, v in r.headers], r.timestamp_ms)
            for i, r in enumerate(rows)
        ]
        for p, rows in records.items()
    }


def flat(records):
    return [r for p in sorted(records) for r in records[p]]


def group_name():
    return client_programs.group_name("go")


def with_tombstone(records):
    """Adds a record with a null key and a null value to partition 0."""
    rows = records[0]
    rows.append(Record(partition=0, key=None, value=None, headers=[], timestamp_ms=rows[-1].timestamp_ms + 1))
    return records


@pytest.mark.parametrize("codec", CODECS)
def test_franz_round_trip(broker, topic, codec):
    b = broker.bootstrap
    franz("admin", "-brokers", b, "-op", "create-topic", "-topic", topic, "-partitions", str(PARTITIONS))
    records = with_tombstone(
        make_records(seed=f"franz-{codec}", partitions=PARTITIONS, per_partition=PER_PARTITION, big_every=50)
    )
    acks = franz("produce", "-brokers", b, "-topic", topic, "-codec", codec, records=flat(records))
    # Offsets acknowledged in the order produced, contiguous per partition.
    want_acks = [{"partition": p, "offset": i} for p in sorted(records) for i in range(len(records[p]))]
    assert acks == want_acks

    group = group_name()
    total = sum(len(rows) for rows in records.values())
    consumed = franz("consume", "-brokers", b, "-topic", topic, "-group", group, "-count", str(total))
    assert len(consumed) == total
    assert by_partition(consumed) == expected(records)

    # The commit is the group's, as kadm sees it; the group is empty after
    # the member left, and a classic one.
    ends = {str(p): len(rows) for p, rows in records.items()}
    assert franz("admin", "-brokers", b, "-op", "fetch-offsets", "-group", group) == {topic: ends}
    assert franz("admin", "-brokers", b, "-op", "offsets", "-topic", topic) == {
        "start": {str(p): 0 for p in records},
        "end": ends,
    }
    listed = franz("admin", "-brokers", b, "-op", "list-groups")[group]
    assert listed == {"state": "Empty", "protocol_type": "consumer", "type": "classic"}


def test_franz_kip848_group(broker, topic):
    b = broker.bootstrap
    franz("admin", "-brokers", b, "-op", "create-topic", "-topic", topic, "-partitions", str(PARTITIONS))
    records = make_records(seed="franz-848", partitions=PARTITIONS, per_partition=40)
    franz("produce", "-brokers", b, "-topic", topic, "-codec", "lz4", records=flat(records))
    group = group_name()
    total = PARTITIONS * 40
    consumed = franz("consume", "-brokers", b, "-topic", topic, "-group", group, "-protocol", "consumer", "-count", str(total))
    assert by_partition(consumed) == expected(records)
    # The group is a KIP-848 one: franz-go would have fallen back to the
    # classic protocol without a word if the broker had not taken it.
    assert franz("admin", "-brokers", b, "-op", "list-groups")[group]["type"] == "consumer"
    described = franz("admin", "-brokers", b, "-op", "describe-consumer-groups", "-group", group)
    # With no member left to ask for range, the group names the broker's
    # default assignor (Kafka's answer; a live group's is checked below).
    assert (described["state"], described["assignor"], described["members"]) == ("Empty", "uniform", None)
    committed = franz("admin", "-brokers", b, "-op", "fetch-offsets", "-group", group)
    assert committed == {topic: {str(p): 40 for p in records}}


@pytest.mark.parametrize(
    "program, protocol",
    [("franz", "classic"), ("franz", "consumer"), ("kafkago", None)],
    ids=["franz-classic", "franz-kip848", "kafkago"],
)
def test_group_resumes_from_its_commits(broker, topic, program, protocol):
    """A second consumer of a group reads exactly what the first did not
    commit: per partition, the two reads together are the log, in order,
    once."""
    b = broker.bootstrap
    member = ["-protocol", protocol] if protocol else []
    run(program, "admin", "-brokers", b, "-op", "create-topic", "-topic", topic, "-partitions", str(PARTITIONS))
    records = make_records(seed=f"resume-{program}", partitions=PARTITIONS, per_partition=30)
    run(program, "produce", "-brokers", b, "-topic", topic, "-codec", "gzip", records=flat(records))
    group = group_name()
    first = run(program, "consume", "-brokers", b, "-topic", topic, "-group", group, "-count", "40", *member)
    second = run(program, "consume", "-brokers", b, "-topic", topic, "-group", group, "-count", "50", *member)
    assert len(first) == 40
    null_is_empty = program == "kafkago"
    assert by_partition(first + second, null_is_empty) == expected(records, null_is_empty)
    committed = franz("admin", "-brokers", b, "-op", "fetch-offsets", "-group", group)
    assert committed == {topic: {str(p): 30 for p in records}}


def start_member(members, program, bootstrap, topic, group, *args):
    command = [os.path.join(GO_BIN, program), "consume", "-brokers", bootstrap, "-topic", topic,
               "-group", group, "-count", "1000000", *args, "-timeout", f"{PROGRAM_TIMEOUT_S}s"]
    if SETPRIV:
        command = [SETPRIV, "--pdeathsig", "KILL", "--", *command]
    members.start(command)


def franz_describe(bootstrap, group, op):
    proc = franz("admin", "-brokers", bootstrap, "-op", op, "-group", group, expect_ok=False)
    # Until the first member's first join or heartbeat the group does not
    # exist (DescribeGroups v6+ and ConsumerGroupDescribe say so), nor, on a
    # new Kafka, its coordinator.
    if coordinator_settling(proc):
        return None
    if proc.returncode != 0:
        assert "GROUP_ID_NOT_FOUND" in proc.stderr, proc.stderr
        return None
    return json.loads(proc.stdout)


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_franz_members_split_partitions(broker, topic, members, protocol):
    """Two franz-go members share the partitions: classic with franz-go's
    default cooperative-sticky balancer (seen through DescribeGroups), KIP-848
    with the broker's range assignor (seen through ConsumerGroupDescribe)."""
    b = broker.bootstrap
    franz("admin", "-brokers", b, "-op", "create-topic", "-topic", topic, "-partitions", "4")
    group = group_name()
    op = "describe-groups" if protocol == "classic" else "describe-consumer-groups"
    start_member(members, "franz", b, topic, group, "-protocol", protocol)
    wait_for_split(members, lambda: franz_describe(b, group, op), topic, 1, 4)
    start_member(members, "franz", b, topic, group, "-protocol", protocol)
    described = wait_for_split(members, lambda: franz_describe(b, group, op), topic, 2, 4)
    rows = described["members"]
    assert sorted(len(m["assigned"][topic]) for m in rows) == [2, 2]
    assert {m["client_id"] for m in rows} == {"kgo"}
    if protocol == "consumer":
        assert described["assignor"] == "range", "the assignor the members ask for"


def test_kafkago_members_split_partitions(broker, topic, members):
    """Two kafka-go Readers in one group share the partitions (kafka-go's
    range balancer runs in the leader), seen through kafka-go's
    DescribeGroups."""
    b = broker.bootstrap
    kafkago("admin", "-brokers", b, "-op", "create-topic", "-topic", topic, "-partitions", "4")
    group = group_name()

    def describe():
        proc = kafkago("admin", "-brokers", b, "-op", "describe-groups", "-group", group, expect_ok=False)
        if coordinator_settling(proc):
            return None
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    start_member(members, "kafkago", b, topic, group)
    wait_for_split(members, describe, topic, 1, 4)
    start_member(members, "kafkago", b, topic, group)
    rows = wait_for_split(members, describe, topic, 2, 4)["members"]
    assert sorted(len(m["assigned"][topic]) for m in rows) == [2, 2]


def test_franz_default_config_produces(broker, topic):
    """franz-go's default producer is idempotent: the records arrive once,
    in order, with the offsets acknowledged."""
    b = broker.bootstrap
    franz("admin", "-brokers", b, "-op", "create-topic", "-topic", topic, "-partitions", "2")
    records = make_records(seed="franz-default", partitions=2, per_partition=30)
    acks = franz("produce", "-brokers", b, "-topic", topic, "-idempotent", records=flat(records))
    assert acks == [{"partition": p, "offset": i} for p in sorted(records) for i in range(30)]
    consumed = franz("consume", "-brokers", b, "-topic", topic, "-group", group_name(), "-count", "60")
    assert by_partition(consumed) == expected(records)


def test_franz_default_config_is_idempotent(broker, topic):
    """franz-go's default producer gets a producer id (InitProducerId) and
    every record it wrote carries it."""
    b = broker.bootstrap
    franz("admin", "-brokers", b, "-op", "create-topic", "-topic", topic, "-partitions", "1")
    records = make_records(seed="franz-idempotent", partitions=1, per_partition=10)
    franz("produce", "-brokers", b, "-topic", topic, "-idempotent", records=flat(records))
    consumed = franz("consume", "-brokers", b, "-topic", topic, "-group", group_name(), "-count", "10")
    assert [c["producer_id"] >= 0 for c in consumed] == [True] * 10


def test_franz_admin(broker, topic):
    b = broker.bootstrap

    def adm(op, *args):
        return franz("admin", "-brokers", b, "-op", op, *args)

    created = adm("create-topic", "-topic", topic, "-partitions", "2", "-config", "retention.ms=3600000")
    assert created["partitions"] == 2
    listed = adm("topics")
    assert listed[topic] == {"id": created["id"], "internal": False, "partitions": [0, 1], "error": ""}
    assert adm("topics", "-topic", topic) == {topic: listed[topic]}

    configs = adm("describe-configs", "-topic", topic)
    assert configs["retention.ms"] == {"value": "3600000", "source": "DYNAMIC_TOPIC_CONFIG", "sensitive": False}
    assert configs["cleanup.policy"]["source"] == "DEFAULT_CONFIG"
    adm("alter-configs", "-topic", topic, "-config", "retention.ms=7200000,segment.bytes=1048576")
    configs = configs_once_applied(adm, topic, "retention.ms", "7200000")
    assert configs["segment.bytes"] == {"value": "1048576", "source": "DYNAMIC_TOPIC_CONFIG", "sensitive": False}

    adm("create-partitions", "-topic", topic, "-partitions", "2")
    assert adm("topics", "-topic", topic)[topic]["partitions"] == [0, 1, 2, 3]

    records = make_records(seed="franz-admin", partitions=4, per_partition=10)
    franz("produce", "-brokers", b, "-topic", topic, records=flat(records))
    assert adm("delete-records", "-topic", topic, "-offsets", "0=4,3=10") == {"0": 4, "3": 10}
    assert adm("offsets", "-topic", topic) == {
        "start": {"0": 4, "1": 0, "2": 0, "3": 10},
        "end": {"0": 10, "1": 10, "2": 10, "3": 10},
    }
    # ListOffsets by timestamp: the first record at or after it; kadm shows
    # "none" (Kafka's -1) as the end offset.
    at = records[1][5].timestamp_ms
    assert adm("offsets-after", "-topic", topic, "-millis", str(at)) == {"0": 10, "1": 5, "2": 0, "3": 10}

    group = group_name()
    adm("commit-offsets", "-group", group, "-topic", topic, "-offsets", "0=7,2=3")
    assert adm("fetch-offsets", "-group", group) == {topic: {"0": 7, "2": 3}}
    assert adm("list-groups")[group]["state"] == "Empty"
    adm("delete-group", "-group", group)
    assert group not in adm("list-groups")
    # DescribeGroups v6 (KIP-1043): an unknown group is an error.
    gone = franz("admin", "-brokers", b, "-op", "describe-groups", "-group", group, expect_ok=False)
    assert gone.returncode == 1 and "GROUP_ID_NOT_FOUND" in gone.stderr

    adm("delete-topic", "-topic", topic)
    assert topic not in adm("topics")
    gone = franz("admin", "-brokers", b, "-op", "delete-topic", "-topic", topic, expect_ok=False)
    assert gone.returncode == 1 and "UNKNOWN_TOPIC_OR_PARTITION" in gone.stderr


@pytest.mark.parametrize("codec", CODECS)
def test_kafkago_round_trip(broker, topic, codec):
    b = broker.bootstrap
    kafkago("admin", "-brokers", b, "-op", "create-topic", "-topic", topic, "-partitions", str(PARTITIONS))
    records = make_records(seed=f"kafkago-{codec}", partitions=PARTITIONS, per_partition=PER_PARTITION, big_every=50)
    total = PARTITIONS * PER_PARTITION
    written = kafkago("produce", "-brokers", b, "-topic", topic, "-codec", codec, records=flat(records))
    assert written == {"written": total}

    group = group_name()
    consumed = kafkago("consume", "-brokers", b, "-topic", topic, "-group", group, "-count", str(total))
    assert by_partition(consumed, null_is_empty=True) == expected(records, null_is_empty=True)

    # kafka-go's commits, seen by kafka-go and by kadm.
    ends = {str(p): PER_PARTITION for p in records}
    assert kafkago("admin", "-brokers", b, "-op", "fetch-offsets", "-group", group) == {topic: ends}
    assert franz("admin", "-brokers", b, "-op", "fetch-offsets", "-group", group) == {topic: ends}
    assert franz("admin", "-brokers", b, "-op", "list-groups")[group]["state"] == "Empty"


def test_kafkago_admin(broker, topic):
    b = broker.bootstrap

    def adm(op, *args):
        return kafkago("admin", "-brokers", b, "-op", op, *args)

    adm("create-topic", "-topic", topic, "-partitions", "2", "-config", "retention.ms=3600000")
    meta = adm("topics", "-topic", topic)
    assert meta == {"brokers": 1, "topics": {topic: {"internal": False, "partitions": [0, 1], "error": ""}}}

    configs = adm("describe-configs", "-topic", topic)
    # ConfigSource 1 is DYNAMIC_TOPIC_CONFIG, 5 DEFAULT_CONFIG.
    assert configs["retention.ms"] == {"value": "3600000", "source": 1, "read_only": False}
    assert configs["cleanup.policy"]["source"] == 5
    adm("alter-configs", "-topic", topic, "-config", "retention.ms=7200000")
    configs_once_applied(adm, topic, "retention.ms", "7200000")

    adm("create-partitions", "-topic", topic, "-partitions", "3")  # the new total
    assert adm("topics", "-topic", topic)["topics"][topic]["partitions"] == [0, 1, 2]

    records = make_records(seed="kafkago-admin", partitions=3, per_partition=5)
    kafkago("produce", "-brokers", b, "-topic", topic, records=flat(records))
    assert adm("offsets", "-topic", topic) == {"start": {"0": 0, "1": 0, "2": 0}, "end": {"0": 5, "1": 5, "2": 5}}
    # ListOffsets by timestamp: kafka-go passes Kafka's -1 through where no
    # record is that late.
    at = records[1][2].timestamp_ms
    assert adm("offsets-after", "-topic", topic, "-millis", str(at)) == {"0": -1, "1": 2, "2": 0}

    group = group_name()
    # The cluster's first group: on Kafka its coordinator is still loading.
    once_coordinator_settles("kafkago", "admin", "-brokers", b, "-op", "commit-offsets", "-group", group,
                             "-topic", topic, "-offsets", "0=2,1=5")
    assert adm("fetch-offsets", "-group", group) == {topic: {"0": 2, "1": 5}}
    assert group in adm("list-groups")
    described = adm("describe-groups", "-group", group)
    assert described == {"state": "Empty", "members": None}
    adm("delete-group", "-group", group)
    assert group not in adm("list-groups")
    # kafka-go's DescribeGroups is older than v6: an unknown group is Dead,
    # not an error.
    assert adm("describe-groups", "-group", group) == {"state": "Dead", "members": None}

    adm("delete-topic", "-topic", topic)
    assert topic not in adm("topics")["topics"]


def test_franz_produced_kafkago_consumed(broker, topic):
    """What one Go client wrote the other reads, CreateTime included."""
    b = broker.bootstrap
    franz("admin", "-brokers", b, "-op", "create-topic", "-topic", topic, "-partitions", "1")
    rows = [Record(partition=0, key=b"k%d" % i, value=b"v%d" % i, timestamp_ms=BASE_TIMESTAMP_MS + i) for i in range(6)]
    franz("produce", "-brokers", b, "-topic", topic, "-codec", "zstd", records=rows[:3])
    kafkago("produce", "-brokers", b, "-topic", topic, "-codec", "gzip", records=rows[3:])
    consumed = kafkago("consume", "-brokers", b, "-topic", topic, "-group", group_name(), "-count", "6")
    assert by_partition(consumed, null_is_empty=True) == expected({0: rows}, null_is_empty=True)


# franz-go's transactions (the franztxn program): what a consumer of each
# isolation level reads, zombie fencing, and consume-transform-produce in a
# GroupTransactSession. franz-go's idempotent producer is its default, above.


def franztxn(*args, **kw):
    return run("franztxn", *args, **kw)


def txn_id():
    return client_programs.group_name("go-txn")


def value_records(vals, partitions):
    """vals round-robin over the partitions, as JSON records."""
    return [{"partition": i % partitions, "key": None, "value": b64(v), "headers": [], "timestamp_ms": -1}
            for i, v in enumerate(vals)]


def franz_read(bootstrap, topic, isolation, count):
    """franz-go's consumer at `isolation` ("committed" or "uncommitted"):
    count records from the start, and whatever else comes in the half
    second after; {partition: values} in offset order."""
    got = {}
    for r in franztxn("read", "-brokers", bootstrap, "-topic", topic, "-isolation", isolation, "-count", str(count)):
        got.setdefault(r["partition"], []).append((r["offset"], unb64(r["value"])))
    return {p: [v for _, v in sorted(rows)] for p, rows in got.items()}


def test_franz_transactions_commit_and_abort(broker, topic):
    """A committed, an aborted and a committed transaction: franz-go's
    read_committed consumer reads the committed ones, read_uncommitted all."""
    b = broker.bootstrap
    franz("admin", "-brokers", b, "-op", "create-topic", "-topic", topic, "-partitions", "2")
    first, aborted, last = values("first", 20), values("aborted", 20), values("last", 20)
    txns = [{"end": end, "records": value_records(vals, 2)}
            for vals, end in [(first, "commit"), (aborted, "abort"), (last, "commit")]]
    franztxn("transact", "-brokers", b, "-topic", topic, "-transactional-id", txn_id(), stdin=txns)
    assert franz_read(b, topic, "committed", 40) == joined(spread(first, 2), spread(last, 2))
    assert franz_read(b, topic, "uncommitted", 60) == joined(spread(first, 2), spread(aborted, 2), spread(last, 2))


def test_franz_read_committed_stops_at_an_open_transaction(broker, topic):
    """franz-go's read_committed consumer reads nothing from the first offset
    of an open transaction on, not even records written after it outside
    any transaction; read_uncommitted reads them all."""
    b = broker.bootstrap
    franz("admin", "-brokers", b, "-op", "create-topic", "-topic", topic, "-partitions", "1")
    before, open_txn, after = values("before", 5), values("open", 10), values("after", 5)

    def plain(vals):
        return [Record(partition=0, key=None, value=v, headers=[], timestamp_ms=BASE_TIMESTAMP_MS) for v in vals]

    franz("produce", "-brokers", b, "-topic", topic, records=plain(before))
    franztxn("transact", "-brokers", b, "-topic", topic, "-transactional-id", txn_id(),
             stdin=[{"end": "open", "records": value_records(open_txn, 1)}])
    franz("produce", "-brokers", b, "-topic", topic, records=plain(after))
    assert franz_read(b, topic, "committed", 5) == {0: before}
    assert franz_read(b, topic, "uncommitted", 20) == {0: before + open_txn + after}


def test_franz_older_transactional_producer_is_fenced(broker, topic):
    b = broker.bootstrap
    franz("admin", "-brokers", b, "-op", "create-topic", "-topic", topic, "-partitions", "1")
    older, newer = values("older", 5), values("newer", 5)
    out = franztxn("fence", "-brokers", b, "-topic", topic, "-transactional-id", txn_id(),
                   stdin={"older": value_records(older, 1), "newer": value_records(newer, 1)})
    assert out["older_commit_error"].startswith("PRODUCER_FENCED:"), out
    assert franz_read(b, topic, "committed", 5) == {0: newer}
    assert franz_read(b, topic, "uncommitted", 10) == {0: older + newer}


def test_franz_consume_transform_produce(broker, topic):
    """A GroupTransactSession commits two transactions (output and input
    offsets) and leaves with the third open; a second instance with the same
    transactional id fences it, resumes from the committed offsets and
    finishes the input: each input is in the committed output exactly once,
    and the group's offsets are the input's end."""
    b = broker.bootstrap
    partitions = 2
    source, sink, group, tid = f"{topic}-in", f"{topic}-out", group_name(), txn_id()
    for t in (source, sink):
        franz("admin", "-brokers", b, "-op", "create-topic", "-topic", t, "-partitions", str(partitions))
    inputs = values("input", 150)
    franz("produce", "-brokers", b, "-topic", source, records=[
        Record(partition=i % partitions, key=None, value=v, headers=[], timestamp_ms=BASE_TIMESTAMP_MS + i)
        for i, v in enumerate(inputs)])
    app = ["etl", "-brokers", b, "-input", source, "-output", sink, "-group", group, "-transactional-id", tid]
    assert franztxn(*app, "-stall-at", "3")["transactions"] == 3
    resumed = franztxn(*app)
    assert 0 < sum(resumed["first"].values()) < len(inputs), resumed
    # EndTxn answers once the commit is decided; the COMMIT marker that makes
    # the last transaction's offsets visible to OffsetFetch follows (in
    # Kafka too).
    ends = {source: {str(p): len(vals) for p, vals in spread(inputs, partitions).items()}}
    wait_until(lambda: franz("admin", "-brokers", b, "-op", "fetch-offsets", "-group", group) == ends, 30,
               "the group's offsets to reach the input's end", interval_s=0.2)
    want = {p: [b"out:" + v for v in vals] for p, vals in spread(inputs, partitions).items()}
    assert franz_read(b, sink, "committed", len(inputs)) == want
