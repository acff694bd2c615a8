"""The `shoal` command-line client: topic create/list/describe/delete,
produce and consume."""

import re
import subprocess
import time

import pytest

import clients
from conftest import shoal_bin

pytestmark = pytest.mark.shoal_only

CLI_TIMEOUT_S = 60


def shoal(*args, stdin=None, check=True):
    # Without input the CLI gets /dev/null, never the runner's own stdin.
    feed = {"input": stdin.encode()} if stdin is not None else {"stdin": subprocess.DEVNULL}
    result = subprocess.run([shoal_bin(), *args], capture_output=True, timeout=CLI_TIMEOUT_S, **feed)
    if check:
        assert result.returncode == 0, (
            f"shoal {' '.join(args)} exited {result.returncode}\n"
            f"stdout: {result.stdout.decode()}\nstderr: {result.stderr.decode()}"
        )
    return result


def listed_topics(bootstrap):
    return shoal("topic", "list", "--bootstrap", bootstrap).stdout.decode().splitlines()


def test_topic_create_list_describe_delete(broker, topic):
    b = broker.bootstrap
    out = shoal("topic", "create", topic, "--partitions", "3", "--config", "retention.ms=86400000", "--bootstrap", b)
    assert out.stdout.decode() == f"Created topic {topic}.\n"
    assert clients.topic_partitions(b, topic) == [0, 1, 2]

    other = f"{topic}-other"
    shoal("topic", "create", other, "--partitions", "1", "--bootstrap", b)
    listed = listed_topics(b)
    assert topic in listed and other in listed
    assert len(listed) == len(set(listed))
    assert all(name.strip() == name and name for name in listed)

    lines = shoal("topic", "describe", topic, "--bootstrap", b).stdout.decode().splitlines()
    head = lines[0].split("\t")
    assert head[0] == f"Topic: {topic}"
    assert re.fullmatch(r"TopicId: \S+", head[1]), head
    assert head[2:4] == ["PartitionCount: 3", "ReplicationFactor: 1"]
    assert head[4].startswith("Configs: ")
    assert "retention.ms=86400000" in head[4][len("Configs: "):].split(","), head[4]
    assert len(lines) == 4, lines
    for p, line in enumerate(lines[1:]):
        assert re.fullmatch(
            rf"\tTopic: {re.escape(topic)}\tPartition: {p}\tLeader: 1\tReplicas: 1\tIsr: 1(\t.*)?", line
        ), line

    shoal("topic", "delete", topic, "--bootstrap", b)
    deadline = time.monotonic() + 15
    while topic in listed_topics(b):
        assert time.monotonic() < deadline, f"{topic} still listed after delete"
        time.sleep(0.1)
    assert other in listed_topics(b)
    assert clients.topic_partitions(b, topic) is None


def test_topic_create_existing_fails(broker, topic):
    shoal("topic", "create", topic, "--partitions", "1", "--bootstrap", broker.bootstrap)
    again = shoal("topic", "create", topic, "--partitions", "1", "--bootstrap", broker.bootstrap, check=False)
    assert again.returncode != 0
    assert "exist" in (again.stdout + again.stderr).decode().lower()


def test_describe_unknown_topic_fails(broker, topic):
    result = shoal("topic", "describe", topic, "--bootstrap", broker.bootstrap, check=False)
    assert result.returncode != 0


def test_produce_then_consume_lines(broker, topic):
    b = broker.bootstrap
    shoal("topic", "create", topic, "--partitions", "1", "--bootstrap", b)
    lines = [f"message {i}: " + "z" * (i % 13) for i in range(100)]
    shoal("produce", topic, "--bootstrap", b, stdin="\n".join(lines) + "\n")

    out = shoal("consume", topic, "--bootstrap", b, "--from-beginning", "--max-messages", "100", "--timeout-ms", "20000")
    assert out.stdout.decode().splitlines() == lines

    # The same records as a Kafka client sees them.
    got = clients.consume(b, topic, {0: 100})[0]
    assert [m.value() for m in got] == [line.encode() for line in lines]
    assert all(m.key() is None for m in got)

    out = shoal(
        "consume", topic, "--bootstrap", b, "--partition", "0", "--offset", "40",
        "--max-messages", "5", "--timeout-ms", "20000",
    )
    assert out.stdout.decode().splitlines() == lines[40:45]


def test_consume_stops_at_timeout_with_fewer_messages(broker, topic):
    b = broker.bootstrap
    shoal("topic", "create", topic, "--partitions", "1", "--bootstrap", b)
    shoal("produce", topic, "--bootstrap", b, stdin="only\nthree\nlines\n")
    started = time.monotonic()
    out = shoal(
        "consume", topic, "--bootstrap", b, "--from-beginning", "--max-messages", "10", "--timeout-ms", "2000",
        check=False,
    )
    assert out.stdout.decode().splitlines() == ["only", "three", "lines"]
    assert time.monotonic() - started < CLI_TIMEOUT_S


def test_produce_with_key_separator(broker, topic):
    b = broker.bootstrap
    shoal("topic", "create", topic, "--partitions", "1", "--bootstrap", b)
    shoal("produce", topic, "--bootstrap", b, "--key-separator", ":", stdin="k1:v1\nk2:v2:with:colons\nk3:\n")
    got = clients.consume(b, topic, {0: 3})[0]
    assert [(m.key(), m.value()) for m in got] == [(b"k1", b"v1"), (b"k2", b"v2:with:colons"), (b"k3", b"")]


def test_produce_auto_partitions_all_records(broker, topic):
    b = broker.bootstrap
    shoal("topic", "create", topic, "--partitions", "3", "--bootstrap", b)
    lines = [f"spread {i}" for i in range(60)]
    shoal("produce", topic, "--bootstrap", b, "--key-separator", "|", stdin="".join(f"key{i}|{line}\n" for i, line in enumerate(lines)))
    total = 0
    for p in range(3):
        low, high = clients.watermarks(b, topic, p)
        assert low == 0
        total += high
    assert total == 60
    out = shoal("consume", topic, "--bootstrap", b, "--from-beginning", "--max-messages", "60", "--timeout-ms", "20000")
    assert sorted(out.stdout.decode().splitlines()) == sorted(lines)
