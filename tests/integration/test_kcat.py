"""kcat (librdkafka's command-line client): metadata, produce, consume."""

import json
import shutil
import subprocess

import pytest

import clients

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
KCAT_TIMEOUT_S = 60

pytestmark = pytest.mark.skipif(
    KCAT is None, reason="kcat is not installed (tests/run installs it when run as root)"
)


def kcat(*args, stdin=None):
    feed = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
    result = subprocess.run([KCAT, *args], capture_output=True, timeout=KCAT_TIMEOUT_S, **feed)
    assert result.returncode == 0, f"kcat {args} exited {result.returncode}: {result.stderr.decode()}"
    return result.stdout


def test_metadata_lists_broker_and_topics(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 3)
    md = json.loads(kcat("-L", "-J", "-b", broker.bootstrap, "-m", "15"))
    assert len(md["brokers"]) == 1
    node = md["brokers"][0]
    assert node["name"] == broker.bootstrap
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic in topics
    partitions = topics[topic]["partitions"]
    assert [p["partition"] for p in partitions] == [0, 1, 2]
    for p in partitions:
        assert p["leader"] == node["id"]
        assert [r["id"] for r in p["replicas"]] == [node["id"]]


def test_produce_then_consume_exact_lines(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 1)
    lines = [f"line {i} " + "abc" * (i % 17) for i in range(300)] + ["ünïcødé ✓", "tab\there"]
    kcat("-P", "-b", broker.bootstrap, "-t", topic, "-p", "0", "-z", "snappy", stdin="\n".join(lines).encode() + b"\n")
    out = kcat("-C", "-b", broker.bootstrap, "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q", "-f", "%o|%s\n")
    got = out.decode().split("\n")
    assert got[-1] == ""
    assert got[:-1] == [f"{i}|{line}" for i, line in enumerate(lines)]


def test_keys_round_trip(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 1)
    pairs = [(f"k{i}", f"v{i}") for i in range(50)]
    kcat("-P", "-b", broker.bootstrap, "-t", topic, "-p", "0", "-K", ":", stdin="".join(f"{k}:{v}\n" for k, v in pairs).encode())
    out = kcat("-C", "-b", broker.bootstrap, "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q", "-f", "%k=%s\n")
    assert out.decode().splitlines() == [f"{k}={v}" for k, v in pairs]
