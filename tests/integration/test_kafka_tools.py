"""Kafka's own command-line tools (4.4.0, run from the jars as the scripts
would run them; kafka_tools.py) against shoal: kafka-topics, the console
producer and consumer, kafka-consumer-groups, kafka-configs,
kafka-get-offsets, kafka-delete-records, kafka-log-dirs,
kafka-dump-log on shoal's own segment files, the producer and consumer perf
tests and kafka-e2e-latency, kafka-streams-application-reset, the
verifiable producer and consumer with their delivery check, and
kafka-transactions.

What the tools print is what a user reads, so its shape is checked, and the
same checks pass against Apache Kafka itself
(SHOAL_TEST_SERVE_CMD='tests/kafka/kafka-server {port} {data_dir}'); where
Kafka and shoal print differently, the check says so and why. One JVM per
call, so each test makes only the calls its checks need."""

import glob
import json
import os
import re
import time
from datetime import datetime, timezone

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

import kafka_tools as kt
from clients import admin, consumer, create_topic, produce_records, watermarks
from conftest import EXTERNAL_SERVE_CMD, wait_until
from records import Record
from test_transactions import open_and_committed, tool_rows

# Every tool call is a JVM start; a test makes up to a dozen on a loaded
# machine.
pytestmark = pytest.mark.timeout(120)

# How long a console or verifiable consumer waits for the records it was
# told to expect before it gives up (inside kafka_tools.TOOL_TIMEOUT_S).
CONSUMER_TIMEOUT_MS = 30000
# Records produced with idempotence off in most tests, the path older
# clients take; test_console_producer_default_config runs the default
# (idempotent) console producer.
NOT_IDEMPOTENT = "enable.idempotence=false"


@pytest.fixture(autouse=True)
def tools():
    kt.require_tools()


@pytest.fixture
def broker(broker_factory):
    """group.initial.rebalance.delay.ms=0, so a group's first rebalance does
    not wait three seconds for more members (tests/kafka/kafka-server sets
    the same)."""
    return broker_factory(overrides={"group.initial.rebalance.delay.ms": 0}, shards=2)


@pytest.fixture
def background(tmp_root):
    procs = kt.Background(tmp_root)
    try:
        yield procs
    finally:
        procs.close()


def broker_id(bootstrap):
    brokers = admin(bootstrap).list_topics(timeout=15).brokers
    assert len(brokers) == 1, brokers
    return next(iter(brokers))


def text_records(partitions, per_partition):
    """Records whose key, value and header print as plain text (the dump
    tool prints them raw), with CreateTimes 1 s apart, each partition
    starting 1000 s after the one before. The first is an hour ago: recent
    enough that a broker's time retention (a week by default) keeps them
    all, Kafka's from its first check a few minutes after it starts."""
    base_ms = (int(time.time()) - 3600) * 1000
    return {
        p: [
            Record(
                partition=p,
                key=f"k{p}-{i}".encode(),
                value=f"v{p}-{i}".encode(),
                headers=[("seq", str(i).encode())],
                timestamp_ms=base_ms + p * 1_000_000 + i * 1000,
            )
            for i in range(per_partition)
        ]
        for p in range(partitions)
    }


def iso_utc(timestamp_ms):
    """The consumer-groups tool's --to-datetime format, in UTC."""
    moment = datetime.fromtimestamp(timestamp_ms / 1000, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{timestamp_ms % 1000:03d}Z"


def test_topics_tool(broker, topic):
    """kafka-topics: create with a config, alter the partition count,
    describe, list, delete."""
    b = broker.bootstrap
    out = kt.run(kt.TOPICS, "--bootstrap-server", b, "--create", "--topic", topic, "--partitions", 2,
                 "--replication-factor", 1, "--config", "retention.ms=3600000")
    assert out.strip() == f"Created topic {topic}."
    kt.run(kt.TOPICS, "--bootstrap-server", b, "--alter", "--topic", topic, "--partitions", 3)

    out = kt.run(kt.TOPICS, "--bootstrap-server", b, "--describe", "--topic", topic)
    lines = out.splitlines()
    summary = dict(field.split(": ", 1) for field in lines[0].split("\t"))
    assert summary["Topic"] == topic
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", summary["TopicId"]), summary
    assert summary["PartitionCount"] == "3"
    assert summary["ReplicationFactor"] == "1"
    # Kafka also lists min.insync.replicas=1 here: its controller sets that
    # as a cluster-wide dynamic default, which shows as a non-default config.
    assert "retention.ms=3600000" in summary["Configs"].split(","), summary
    node = str(broker_id(b))
    for partition, line in enumerate(lines[1:]):
        fields = dict(field.split(": ", 1) if ": " in field else (field.rstrip(":"), "")
                      for field in line.strip().split("\t"))
        assert fields["Topic"] == topic
        assert fields["Partition"] == str(partition)
        assert fields["Leader"] == fields["Replicas"] == fields["Isr"] == node, fields
        # Eligible leader replicas: Kafka answers DescribeTopicPartitions,
        # which has them (empty); shoal does not serve that API, so the tool
        # falls back to Metadata and prints N/A.
        assert fields["Elr"] in ("", "N/A"), fields
    assert len(lines) == 4, out

    assert topic in kt.run(kt.TOPICS, "--bootstrap-server", b, "--list").split()
    kt.run(kt.TOPICS, "--bootstrap-server", b, "--delete", "--topic", topic)
    # Deletion is complete when the tool returns, on both brokers.
    assert topic not in kt.run(kt.TOPICS, "--bootstrap-server", b, "--list").split()


def test_console_producer_and_consumer(broker, topic):
    """Lines with headers and keys through the console producer; the console
    consumer in a group reads them all back from the beginning, printing
    partition, offset, headers, key and value, and commits."""
    b = broker.bootstrap
    create_topic(b, topic, 3)
    sent = [(f"h{i % 3}:x{i},seq:{i}", f"key{i % 5}", f"value-{i}") for i in range(30)]
    stdin = "".join(f"{h}\t{k}\t{v}\n" for h, k, v in sent)
    kt.run(kt.CONSOLE_PRODUCER, "--bootstrap-server", b, "--topic", topic,
           "--reader-property", "parse.key=true", "--reader-property", "parse.headers=true",
           "--command-property", NOT_IDEMPOTENT, stdin=stdin)

    group = f"{topic}-g"
    out = kt.run(kt.CONSOLE_CONSUMER, "--bootstrap-server", b, "--topic", topic, "--group", group,
                 "--from-beginning", "--max-messages", len(sent), "--timeout-ms", CONSUMER_TIMEOUT_MS,
                 "--formatter-property", "print.partition=true", "--formatter-property", "print.offset=true",
                 "--formatter-property", "print.headers=true", "--formatter-property", "print.key=true")
    got = []
    for line in out.splitlines():
        partition, offset, headers, key, value = line.split("\t")
        got.append((int(partition.removeprefix("Partition:")), int(offset.removeprefix("Offset:")),
                    headers, key, value))
    assert sorted((h, k, v) for _, _, h, k, v in got) == sorted(sent)
    by_partition = {}
    for partition, offset, _, key, value in got:
        by_partition.setdefault(partition, []).append((offset, key, int(value.removeprefix("value-"))))
    for partition, rows in by_partition.items():
        # In each partition: offsets from 0 with no gap, in the order sent.
        assert [offset for offset, _, _ in rows] == list(range(len(rows))), partition
        assert [seq for _, _, seq in rows] == sorted(seq for _, _, seq in rows), partition
    # The default partitioner: one key, one partition.
    partitions_of_key = {}
    for partition, _, _, key, _ in got:
        partitions_of_key.setdefault(key, set()).add(partition)
    assert all(len(ps) == 1 for ps in partitions_of_key.values()), partitions_of_key

    # The consumer committed where it stopped: the group has no lag.
    out = kt.run(kt.CONSUMER_GROUPS, "--bootstrap-server", b, "--describe", "--group", group)
    rows = kt.table(out, "GROUP")
    assert {int(r["PARTITION"]): int(r["CURRENT-OFFSET"]) for r in rows} == {
        p: len(by_partition.get(p, [])) for p in range(3)
    }
    assert all(r["LAG"] == "0" and r["TOPIC"] == topic for r in rows), rows


def test_consumer_groups_tool(broker, topic, background):
    """kafka-consumer-groups: --reset-offsets --execute by datetime, by a
    shift on one partition and from a CSV file; --describe shows the new
    offsets and their lag; a console consumer of the group reads on from
    exactly there; --describe --members shows a live member and its
    assignment, and a reset is refused while it is there; --delete-offsets,
    --list, --delete."""
    b = broker.bootstrap
    create_topic(b, topic, 3)
    records = text_records(3, 10)
    produce_records(b, topic, records)
    group = f"{topic}-g"

    def reset(*how):
        out = kt.run(kt.CONSUMER_GROUPS, "--bootstrap-server", b, "--group", group, "--reset-offsets",
                     *how, "--execute")
        return {int(r["PARTITION"]): int(r["NEW-OFFSET"]) for r in kt.table(out, "GROUP")}

    # Partition 0's record 4 is the first at or after this time; every
    # record of partitions 1 and 2 is later still.
    at = iso_utc(records[0][4].timestamp_ms - 500)
    assert reset("--to-datetime", at, "--topic", topic) == {0: 4, 1: 0, 2: 0}
    assert reset("--shift-by", 3, "--topic", f"{topic}:1") == {1: 3}
    csv = os.path.join(broker.root_dir, "offsets.csv")
    with open(csv, "w") as f:
        f.write(f"{topic},0,2\n{topic},2,10\n")
    assert reset("--from-file", csv) == {0: 2, 2: 10}

    out = kt.run(kt.CONSUMER_GROUPS, "--bootstrap-server", b, "--describe", "--group", group, "--offsets")
    rows = {int(r["PARTITION"]): r for r in kt.table(out, "GROUP")}
    assert {p: (int(r["CURRENT-OFFSET"]), int(r["LOG-END-OFFSET"]), int(r["LAG"])) for p, r in rows.items()} == {
        0: (2, 10, 8),
        1: (3, 10, 7),
        2: (10, 10, 0),
    }
    # No member: the member columns are dashes.
    assert all(r["CONSUMER-ID"] == "-" for r in rows.values())

    out = kt.run(kt.CONSOLE_CONSUMER, "--bootstrap-server", b, "--topic", topic, "--group", group,
                 "--max-messages", 15, "--timeout-ms", CONSUMER_TIMEOUT_MS,
                 "--formatter-property", "print.key=true")
    assert sorted(out.splitlines()) == sorted(
        f"k{p}-{i}\tv{p}-{i}" for p, first in ((0, 2), (1, 3)) for i in range(first, 10)
    )

    member, member_out = background.start("member", kt.VERIFIABLE_CONSUMER, "--bootstrap-server", b,
                                          "--topic", topic, "--group-id", group)

    def assigned():
        assert member.poll() is None, open(member_out + ".err").read()[-3000:]
        return any(e["name"] == "partitions_assigned" for e in verifiable_events(member_out))

    wait_until(assigned, CONSUMER_TIMEOUT_MS / 1000, "the member's assignment")
    out = kt.run(kt.CONSUMER_GROUPS, "--bootstrap-server", b, "--describe", "--group", group, "--members",
                 "--verbose")
    [row] = kt.table(out, "GROUP")
    assert (row["HOST"], row["CLIENT-ID"], row["#PARTITIONS"]) == ("/127.0.0.1", f"consumer-{group}-1", "3"), row
    assert row["CURRENT-ASSIGNMENT"] == f"{topic}:0,1,2", row
    out = kt.run(kt.CONSUMER_GROUPS, "--bootstrap-server", b, "--group", group, "--reset-offsets",
                 "--to-earliest", "--topic", topic, "--execute")
    assert (f"Error: Assignments can only be reset if the group '{group}' is inactive, "
            "but the current state is Stable.") in out
    # SIGTERM: the consumer's shutdown hook leaves the group.
    member.terminate()
    member.wait(timeout=kt.TOOL_TIMEOUT_S)

    out = kt.run(kt.CONSUMER_GROUPS, "--bootstrap-server", b, "--group", group, "--delete-offsets",
                 "--topic", f"{topic}:0")
    assert f"Request succeeded for deleting offsets from group {group}." in out
    assert kt.table(out, "TOPIC") == [{"TOPIC": topic, "PARTITION": "0", "STATUS": "Successful"}]
    out = kt.run(kt.CONSUMER_GROUPS, "--bootstrap-server", b, "--list", "--state")
    assert {"GROUP": group, "STATE": "Empty"} in kt.table(out, "GROUP")

    out = kt.run(kt.CONSUMER_GROUPS, "--bootstrap-server", b, "--delete", "--group", group)
    assert f"Deletion of requested consumer groups ('{group}') was successful." in out
    assert group not in kt.run(kt.CONSUMER_GROUPS, "--bootstrap-server", b, "--list").split()


def test_configs_tool(broker, topic):
    """kafka-configs: a topic's dynamic configs described, added (a list
    value too) and deleted in one alter; the broker's configs described.
    Changing a broker config differs on purpose: Kafka applies it, shoal
    reads broker configs at start only and refuses, saying so."""
    b = broker.bootstrap
    create_topic(b, topic, 1, config={"retention.ms": "3600000"})
    entity = ["--bootstrap-server", b, "--entity-type", "topics", "--entity-name", topic]

    def dynamic():
        out = kt.run(kt.CONFIGS, *entity, "--describe")
        lines = out.splitlines()
        assert lines[0] == f"Dynamic configs for topic {topic} are:"
        configs = {}
        for line in lines[1:]:
            match = re.fullmatch(r"  ([a-z.]+)=(.*) sensitive=false synonyms=\{DYNAMIC_TOPIC_CONFIG:\1=\2.*\}",
                                 line)
            assert match, line
            configs[match[1]] = match[2]
        return configs

    assert dynamic() == {"retention.ms": "3600000"}
    out = kt.run(kt.CONFIGS, *entity, "--alter", "--add-config",
                 "cleanup.policy=[compact,delete],max.message.bytes=20000", "--delete-config", "retention.ms")
    assert out.strip() == f"Completed updating config for topic {topic}."
    assert dynamic() == {"cleanup.policy": "compact,delete", "max.message.bytes": "20000"}

    node = broker_id(b)
    out = kt.run(kt.CONFIGS, "--bootstrap-server", b, "--entity-type", "brokers", "--entity-name", node,
                 "--describe", "--all")
    lines = out.splitlines()
    assert lines[0] == f"All configs for broker {node} are:"
    configs = {}
    for line in lines[1:]:
        match = re.fullmatch(r"  ([a-z0-9.]+)=(.*) sensitive=(true|false) synonyms=\{.*\}", line)
        assert match, line
        configs[match[1]] = match[2]
    assert configs["advertised.listeners"] == f"PLAINTEXT://{b}"
    assert configs["auto.create.topics.enable"] == "true"
    assert configs["message.max.bytes"] == "1048588"

    proc = kt.run(kt.CONFIGS, "--bootstrap-server", b, "--entity-type", "brokers", "--entity-name", node,
                  "--alter", "--add-config", "log.cleaner.backoff.ms=20000", expect_ok=False)
    if EXTERNAL_SERVE_CMD:
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == f"Completed updating config for broker {node}."
    else:
        assert proc.returncode == 1
        assert ("InvalidRequestException: Cannot update these configs dynamically: log.cleaner.backoff.ms. "
                "shoal reads broker configs at start only") in proc.stderr


def test_offsets_delete_records_and_log_dirs(broker, topic):
    """kafka-get-offsets (latest, earliest, max timestamp, by time, latest
    tiered), kafka-log-dirs (sizes are the segment files' on disk),
    kafka-delete-records with its JSON file, and kafka-dump-log reading
    the broker's own segment file (shoal's is Kafka's format, byte for
    byte)."""
    b = broker.bootstrap
    create_topic(b, topic, 2)
    records = text_records(2, 10)
    produce_records(b, topic, records)

    def get_offsets(*args):
        return kt.offsets(kt.run(kt.GET_OFFSETS, "--bootstrap-server", b, "--topic", topic, *args))

    assert get_offsets() == {(topic, 0): 10, (topic, 1): 10}
    assert get_offsets("--time", -3) == {(topic, 0): 9, (topic, 1): 9}
    assert get_offsets("--time", records[0][6].timestamp_ms - 1) == {(topic, 0): 6, (topic, 1): 0}
    # Latest tiered (KIP-1005): with no tiered storage the answer is offset
    # -1, which the tool leaves out.
    assert get_offsets("--time", -5) == {}

    out = kt.run(kt.LOG_DIRS, "--bootstrap-server", b, "--describe", "--topic-list", topic)
    described = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    [node] = described["brokers"]
    assert node["broker"] == broker_id(b)
    [log_dir] = node["logDirs"]
    assert log_dir["error"] is None
    sizes = {p["partition"]: p["size"] for p in log_dir["partitions"]}
    on_disk = {
        f"{topic}-{p}": sum(os.path.getsize(f) for f in glob.glob(os.path.join(log_dir["logDir"], f"{topic}-{p}", "*.log")))
        for p in range(2)
    }
    assert sizes == on_disk
    assert all(size > 0 for size in sizes.values()), sizes

    spec = os.path.join(broker.root_dir, "delete.json")
    with open(spec, "w") as f:
        json.dump({"version": 1, "partitions": [{"topic": topic, "partition": 0, "offset": 4},
                                                {"topic": topic, "partition": 1, "offset": -1}]}, f)
    out = kt.run(kt.DELETE_RECORDS, "--bootstrap-server", b, "--offset-json-file", spec)
    assert sorted(line for line in out.splitlines() if line.startswith("partition:")) == [
        f"partition: {topic}-0\tlow_watermark: 4",
        f"partition: {topic}-1\tlow_watermark: 10",
    ]
    assert get_offsets("--time", -2) == {(topic, 0): 4, (topic, 1): 10}

    [segment] = glob.glob(os.path.join(log_dir["logDir"], f"{topic}-0", "*.log"))
    out = kt.run(kt.DUMP_LOG, "--files", segment, "--print-data-log")
    batches = [line for line in out.splitlines() if line.startswith("baseOffset:")]
    assert batches and all("magic: 2" in line and "isvalid: true" in line for line in batches), out
    dumped = [line for line in out.splitlines() if line.startswith("| offset:")]
    assert len(dumped) == 10, out
    for i, line in enumerate(dumped):
        r = records[0][i]
        assert line.startswith(f"| offset: {i} CreateTime: {r.timestamp_ms} ")
        assert line.endswith(f"headerKeys: [seq] key: {r.key.decode()} payload: {r.value.decode()}")


def test_perf_tools(broker, topic):
    """kafka-producer-perf-test sends every record with acks=all, and
    kafka-consumer-perf-test reads every one back; kafka-e2e-latency sends
    and receives records one by one."""
    b = broker.bootstrap
    create_topic(b, topic, 2)
    count = 5000
    out = kt.run(kt.PRODUCER_PERF, "--topic", topic, "--num-records", count, "--record-size", 100,
                 "--throughput", -1, "--command-property", f"bootstrap.servers={b}", "acks=all", NOT_IDEMPOTENT)
    final = out.strip().splitlines()[-1]
    assert final.startswith(f"{count} records sent, "), out
    assert sum(watermarks(b, topic, p)[1] for p in range(2)) == count

    out = kt.run(kt.CONSUMER_PERF, "--bootstrap-server", b, "--topic", topic, "--num-records", count,
                 "--timeout", CONSUMER_TIMEOUT_MS)
    header, row = out.strip().splitlines()[-2:]
    stats = dict(zip([c.strip() for c in header.split(",")], [c.strip() for c in row.split(",")]))
    assert int(stats["data.consumed.in.nMsg"]) == count, out
    assert float(stats["data.consumed.in.MB"]) == pytest.approx(count * 100 / 1024 / 1024, abs=0.001)

    latency_topic = f"{topic}-latency"
    create_topic(b, latency_topic, 1)
    config = os.path.join(broker.root_dir, "producer.properties")
    with open(config, "w") as f:
        f.write(NOT_IDEMPOTENT + "\n")
    out = kt.run(kt.END_TO_END_LATENCY, "--bootstrap-server", b, "--topic", latency_topic, "--num-records", 100,
                 "--producer-acks", "all", "--record-size", 100, "--command-config", config)
    assert re.search(r"^Avg latency: [0-9.]+ ms$", out, re.M), out
    assert watermarks(b, latency_topic, 0) == (0, 100)


def test_streams_application_reset(broker, topic):
    """kafka-streams-application-reset: an application's committed input
    offsets go back to the earliest, and its internal topics (changelog,
    repartition) are deleted; a topic of another application stays."""
    b = broker.bootstrap
    app = f"{topic}-app"
    create_topic(b, topic, 2)
    produce_records(b, topic, text_records(2, 5))
    internal = [f"{app}-KSTREAM-AGGREGATE-STATE-STORE-0000000003-changelog",
                f"{app}-KSTREAM-AGGREGATE-STATE-STORE-0000000003-repartition"]
    other = f"{topic}-other-KSTREAM-AGGREGATE-STATE-STORE-0000000003-changelog"
    for name in [*internal, other]:
        create_topic(b, name, 1)
    commit_offsets(b, app, topic, {0: 5, 1: 3})

    out = kt.run(kt.STREAMS_RESETTER, "--bootstrap-server", b, "--application-id", app, "--input-topics", topic,
                 "--to-earliest")
    assert sorted(line for line in out.splitlines() if line.startswith("Topic: ")) == [
        f"Topic: {topic} Partition: {p} Offset: 0" for p in range(2)
    ]
    prefix = "Deleting inferred internal topics ["
    [deleted] = [line.removeprefix(prefix).removesuffix("]") for line in out.splitlines() if line.startswith(prefix)]
    assert sorted(deleted.split(", ")) == sorted(internal)
    assert committed_offsets(b, app, topic, 2) == {0: 0, 1: 0}
    topics = admin(b).list_topics(timeout=15).topics
    assert not any(name in topics for name in internal)
    assert other in topics and topic in topics


COORDINATOR_MOVING = (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE,
                      KafkaError.COORDINATOR_LOAD_IN_PROGRESS)


def commit_offsets(bootstrap, group, topic, offsets):
    """Commits as a consumer would, retrying what is retriable: Kafka
    answers NOT_COORDINATOR while it creates and loads __consumer_offsets
    on a group's first commit (shoal creates it at start)."""
    client = consumer(bootstrap, group_id=group)

    def commit():
        try:
            client.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
            return True
        except KafkaException as error:
            # librdkafka does not flag these retriable, though they are.
            if error.args[0].code() not in COORDINATOR_MOVING and not error.args[0].retriable():
                raise
            return False

    try:
        wait_until(commit, 30, f"a commit of group {group}", interval_s=0.5)
    finally:
        client.close()


def committed_offsets(bootstrap, group, topic, partitions):
    client = consumer(bootstrap, group_id=group)
    try:
        got = client.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=15)
    finally:
        client.close()
    return {tp.partition: tp.offset for tp in got}


def verifiable_events(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.startswith("{")]


def delivered(events):
    """The (partition, offset, value) of every record a verifiable
    consumer logged."""
    return [(e["partition"], e["offset"], e["value"]) for e in events if e["name"] == "record_data"]


def test_verifiable_producer_and_consumer(broker, topic, background):
    """The verifiable consumer (classic group protocol) runs while the
    verifiable producer sends; every acked record is consumed exactly once,
    at the offset the producer was told, and the commits cover them all. A
    second consumer with the KIP-848 protocol reads the same. (The
    verifiable producer sets retries=0, which turns its default idempotence
    off: it runs with its defaults.)"""
    b = broker.bootstrap
    create_topic(b, topic, 3)
    count = 500
    common = ["--bootstrap-server", b, "--topic", topic, "--max-messages", count]
    consumer, consumer_out = background.start("classic", kt.VERIFIABLE_CONSUMER, *common,
                                              "--group-id", f"{topic}-classic", "--verbose")
    out = kt.run(kt.VERIFIABLE_PRODUCER, *common, "--acks", -1, "--repeating-keys", 7)
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    acked = sorted((e["partition"], e["offset"], e["value"]) for e in events if e["name"] == "producer_send_success")
    assert [e for e in events if e["name"] == "producer_send_error"] == []
    assert len(acked) == count
    assert events[-1]["name"] == "tool_data" and events[-1]["acked"] == count, events[-1]

    wait_until(lambda: consumer.poll() is not None, CONSUMER_TIMEOUT_MS / 1000, "the verifiable consumer to finish")
    assert consumer.returncode == 0, open(consumer_out + ".err").read()[-3000:]
    consumed = verifiable_events(consumer_out)
    assert sorted(delivered(consumed)) == acked
    committed = {}
    for e in consumed:
        if e["name"] == "offsets_committed":
            assert e["success"], e
            committed.update({o["partition"]: o["offset"] for o in e["offsets"]})
    assert committed == {p: 1 + max(o for q, o, _ in acked if q == p) for p in range(3)}

    out = kt.run(kt.VERIFIABLE_CONSUMER, *common, "--group-id", f"{topic}-consumer", "--group-protocol",
                 "consumer", "--verbose")
    assert sorted(delivered([json.loads(line) for line in out.splitlines() if line.startswith("{")])) == acked


def test_console_producer_default_config(broker, topic):
    b = broker.bootstrap
    create_topic(b, topic, 1)
    proc = kt.run(kt.CONSOLE_PRODUCER, "--bootstrap-server", b, "--topic", topic, stdin="one\ntwo\n",
                  expect_ok=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert watermarks(b, topic, 0) == (0, 2)


# kafka-transactions.sh's main class.
TRANSACTIONS = "org.apache.kafka.tools.TransactionsCommand"


def test_transactions_tool(broker, topic):
    """kafka-transactions: list shows an open and a committed transaction,
    describe the open one with its partition, describe-producers its
    producer with the transaction's start offset on that partition."""
    b = broker.bootstrap
    create_topic(b, topic, 2)
    open_id, done_id, hanging = open_and_committed(b, topic)

    listed = {r["TransactionalId"]: r for r in tool_rows(kt.run(TRANSACTIONS, "--bootstrap-server", b, "list"))}
    assert listed[open_id]["TransactionState"] == "Ongoing"
    assert listed[done_id]["TransactionState"] == "CompleteCommit"
    assert listed[open_id]["Coordinator"] == str(broker_id(b))
    [described] = tool_rows(kt.run(TRANSACTIONS, "--bootstrap-server", b, "describe", "--transactional-id", open_id))
    assert described["TransactionalId"] == open_id
    assert described["CoordinatorId"] == str(broker_id(b))
    assert described["ProducerId"] == listed[open_id]["ProducerId"]
    assert described["TransactionState"] == "Ongoing"
    assert described["TransactionTimeoutMs"] == "120000"
    assert described["TopicPartitions"] == f"{topic}-0"
    [producer] = tool_rows(kt.run(TRANSACTIONS, "--bootstrap-server", b, "describe-producers", "--topic", topic,
                                  "--partition", 0))
    assert producer["ProducerId"] == listed[open_id]["ProducerId"]
    assert producer["CurrentTransactionStartOffset"] == "0"
    assert producer["LastSequence"] == "2"
    hanging.abort_transaction(30)
