"""Partition reassignment and the partition reports of Kafka's tools on a
three-node cluster (issue 15, scope 6).

- `kafka-topics --describe --under-replicated-partitions` and
  `--unavailable-partitions` after a broker is killed: the Java admin
  client describes topics with DescribeTopicPartitions (KIP-966) and lists
  reassignments with ListPartitionReassignments, both answered here.
- `kafka-reassign-partitions --generate / --execute / --verify` moves an
  RF=2 partition off its leader onto the third broker while a producer
  writes to it with acks=all: the new replicas join the ISR, the old one
  leaves (and deletes its copy), and every acknowledged record is read back
  from the new replicas.

Nodes are started as test_cluster_placement.py starts them (tests/cluster)."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import clients  # noqa: E402
import kafka_tools  # noqa: E402
import kafka_wire  # noqa: E402
from cluster import Cluster  # noqa: E402
from cluster.segments import partition_dirs  # noqa: E402
from cluster.waiting import SHOAL_NODE, wait_until  # noqa: E402
from load import SequenceProducer  # noqa: E402
from test_alter_partition_cluster import create_replicated, partitions_of  # noqa: E402
from test_cluster_placement import quorum_leader  # noqa: E402

pytestmark = pytest.mark.shoal_only

NODES = 3
# create_replicated's partition count.
REPLICATED_PARTITIONS = 6
REASSIGN = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand"
# Registration and an election on a loaded two-core machine.
SETTLE_WAIT_S = 60.0
# The broker session timeout (9 s) plus the commit and every install.
FENCE_WAIT_S = 40.0
# The new replica catching up under load, then the completion's install.
REASSIGN_WAIT_S = 90.0
ERR_LEADER_NOT_AVAILABLE = 5
LOAD_RATE_PER_S = 500
LOAD_SECONDS_MAX = 120.0


def settled(cluster):
    ids = sorted(node.node_id for node in cluster.nodes)
    listed = lambda node: sorted(b[0] for b in kafka_wire.metadata(node.bootstrap, [], False)[0])  # noqa: E731
    wait_until(lambda: all(listed(node) == ids for node in cluster.nodes), SETTLE_WAIT_S,
               "every node to list the three brokers")
    return ids


def partition_lines(output):
    """`kafka-topics --describe`'s partition lines as {(topic, partition): fields}."""
    rows = {}
    for line in output.splitlines():
        fields = dict(part.split(": ", 1) for part in line.strip().split("\t") if ": " in part)
        if "Partition" in fields:
            rows[(fields["Topic"], int(fields["Partition"]))] = fields
    return rows


def topics_report(bootstrap, flag):
    return partition_lines(kafka_tools.run(kafka_tools.TOPICS, "--bootstrap-server", bootstrap, "--describe", flag))


def test_tools_report_under_replicated_and_unavailable_partitions_after_a_broker_dies():
    kafka_tools.require_tools()
    with Cluster(NODES, SHOAL_NODE) as cluster:
        ids = settled(cluster)
        leader = quorum_leader(cluster)
        bootstrap = cluster.nodes[leader].bootstrap
        victim = next(i for i in range(NODES) if i != leader)
        dead = cluster.nodes[victim].node_id
        assert create_replicated(bootstrap, "replicated") == kafka_wire.ERR_NONE
        kafka_tools.run(kafka_tools.TOPICS, "--bootstrap-server", bootstrap, "--create", "--topic", "alone",
                        "--replica-assignment", str(dead))
        wait_until(lambda: len(partitions_of(bootstrap, "alone")) == 1, SETTLE_WAIT_S, "the topic alone")
        assert topics_report(bootstrap, "--under-replicated-partitions") == {}
        assert topics_report(bootstrap, "--unavailable-partitions") == {}

        cluster.kill9(victim)
        alive = [n for i, n in enumerate(cluster.nodes) if i != victim]
        survivors = [i for i in ids if i != dead]

        def fenced():
            seen = partitions_of(alive[0].bootstrap, "replicated")
            alone = partitions_of(alive[0].bootstrap, "alone")
            shrunk = len(seen) == REPLICATED_PARTITIONS and all(p[4] == survivors for p in seen.values())
            return shrunk and alone.get(0, (0,))[0] == ERR_LEADER_NOT_AVAILABLE

        wait_until(fenced, FENCE_WAIT_S, f"broker {dead} to be fenced")
        # Metadata: the leaderless partition answers LEADER_NOT_AVAILABLE
        # with its replica offline, as Kafka's does.
        error, lead, _, replicas, isr, offline = partitions_of(alive[0].bootstrap, "alone")[0]
        assert (error, lead, replicas, isr, offline) == (
            ERR_LEADER_NOT_AVAILABLE, -1, [dead], [dead], [dead])

        under = topics_report(alive[0].bootstrap, "--under-replicated-partitions")
        assert sorted(under) == [("replicated", p) for p in range(REPLICATED_PARTITIONS)], under
        for fields in under.values():
            assert sorted(map(int, fields["Isr"].split(","))) == survivors, under
        unavailable = topics_report(alive[0].bootstrap, "--unavailable-partitions")
        assert sorted(unavailable) == [("alone", 0)], unavailable
        assert unavailable[("alone", 0)]["Leader"] == "none", unavailable


def reassign(bootstrap, root, *args, plan=None):
    files = []
    if plan is not None:
        path = os.path.join(root, "plan.json")
        with open(path, "w") as out:
            json.dump(plan, out)
        files = ["--reassignment-json-file", path]
    return kafka_tools.run(REASSIGN, "--bootstrap-server", bootstrap, *args, *files)


def proposed(output):
    """The proposed assignment `--generate` prints (the JSON after its
    'Proposed partition reassignment configuration' line)."""
    lines = output.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Proposed"))
    return json.loads(lines[at + 1])


def test_kafka_reassign_partitions_moves_a_partition_under_load(tmp_path):
    kafka_tools.require_tools()
    with Cluster(NODES, SHOAL_NODE) as cluster:
        ids = settled(cluster)
        bootstrap = cluster.nodes[quorum_leader(cluster)].bootstrap
        first, second, third = ids
        topic = "moving"
        kafka_tools.run(kafka_tools.TOPICS, "--bootstrap-server", bootstrap, "--create", "--topic", topic,
                        "--replica-assignment", f"{first}:{second}", "--config", "min.insync.replicas=1")
        wait_until(lambda: partitions_of(bootstrap, topic).get(0, (None, None, 0, [], []))[4] == [first, second],
                   SETTLE_WAIT_S, "both replicas in the ISR")
        moved_away = cluster.nodes[ids.index(first)]
        assert 0 in partition_dirs(moved_away.data_dir, topic), f"broker {first} holds no copy to move"

        # --generate proposes a plan over the brokers named.
        topics_file = tmp_path / "topics.json"
        topics_file.write_text(json.dumps({"version": 1, "topics": [{"topic": topic}]}))
        generated = kafka_tools.run(REASSIGN, "--bootstrap-server", bootstrap, "--generate",
                                    "--topics-to-move-json-file", str(topics_file),
                                    "--broker-list", f"{second},{third}")
        plan = proposed(generated)
        assert [sorted(p["replicas"]) for p in plan["partitions"]] == [[second, third]], generated

        # The move: off the leader (first), onto third, while producing.
        load = SequenceProducer(bootstrap, topic, 1, first_seq=0, rate_per_s=LOAD_RATE_PER_S,
                                max_seconds=LOAD_SECONDS_MAX)
        load.start()
        try:
            wait_until(lambda: load.acked_count() > LOAD_RATE_PER_S, SETTLE_WAIT_S, "records acknowledged")
            target = {"version": 1, "partitions": [{"topic": topic, "partition": 0, "replicas": [third, second]}]}
            executed = reassign(bootstrap, str(tmp_path), "--execute", plan=target)
            assert "Successfully started partition reassignment" in executed, executed

            def verified():
                # Without --preserve-throttles: the tool deletes each
                # broker's throttle configs (IncrementalAlterConfigs on
                # BROKER resources of other nodes, forwarded).
                out = reassign(bootstrap, str(tmp_path), "--verify", plan=target)
                return out if "is completed" in out else None

            wait_until(verified, REASSIGN_WAIT_S, "the reassignment to complete")
            done_at = load.acked_count()
            wait_until(lambda: load.acked_count() > done_at + LOAD_RATE_PER_S, SETTLE_WAIT_S,
                       "records acknowledged after the move")
        finally:
            load.stop()
        assert load.acked_count() > 0

        state = partitions_of(bootstrap, topic)[0]
        _, lead, _, replicas, isr, offline = state
        assert (replicas, isr, offline) == (sorted([third, second]), sorted([third, second]), []), state
        assert lead in (second, third), state
        wait_until(lambda: 0 not in partition_dirs(moved_away.data_dir, topic), SETTLE_WAIT_S,
                   f"broker {first} to delete its copy")

        # Every acknowledged record, from the new replicas.
        acked = {offset: value for _, offset, _, value in load.log.acked}
        _, high = clients.watermarks(bootstrap, topic, 0)
        assert high > max(acked), (high, max(acked))
        got = clients.consume(bootstrap, topic, {0: high})[0]
        by_offset = {m.offset(): m.value() for m in got}
        missing = [o for o, v in acked.items() if by_offset.get(o) != v]
        assert missing == [], f"{len(missing)} acknowledged records lost, first {missing[:5]}"
