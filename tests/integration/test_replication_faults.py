"""Replication under faults (issue 15), the short matrix: an RF=3 topic with
min.insync.replicas=2 on three combined KRaft nodes in network namespaces,
written by idempotent `acks=all` producers, read by a consumer and polled
for its high watermark while a fault is made (tests/cluster/faults.py), then
checked (tests/cluster/checker.py): no acknowledged record lost or moved, no
two values at one offset, replicas equal below the high watermark, no high
watermark going back, nothing a consumer saw gone, no value twice.

Apache Kafka 4.x from its jars runs kill -9 of a leader here and must pass
(the whole long matrix passed on it, perf/RESULTS.md): that is what shows the
checker sound. Its other faults are left to the long run, to keep
tests/run inside CI's time. That it can fail is shown without a cluster:
the checker is fed fabricated histories with each anomaly, and the log file
reader fabricated segments. shoal runs the matrix as soon as it accepts a
topic with replication factor 3; until then each test skips with its
answer (INVALID_REPLICATION_FACTOR).

The long version of the matrix (minutes per fault, 20 rounds of kill -9 of
a leader) is tests/faults/run."""

import os
import struct
import sys

import crc32c
import lz4.frame
import pytest
from confluent_kafka import KafkaError

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import kafka_wire  # noqa: E402
from cluster import Cluster  # noqa: E402
from cluster import checker, faults, segments  # noqa: E402

pytestmark = pytest.mark.shoal_only

NODES = 3

# The first test of an implementation starts its three nodes (three JVMs
# for Kafka on a loaded two-core machine); a fault's rounds each wait for
# the cluster to be whole again.
FAULT_TIMEOUT_S = 420
REPORT_LOG_LINES = 15
# Faults shoal's replication does not survive yet, each with what fails
# (docs/compatibility.md, "Known gaps"); Kafka runs them all.
SHOAL_GAPS = {}
# What Kafka runs here: three JVMs restart slowly on two cores, and the
# long run (tests/faults/run --broker kafka, perf/RESULTS.md) has the rest.
KAFKA_MATRIX = ("kill-leader",)


@pytest.fixture(scope="module", params=["kafka", "shoal"])
def cluster(request):
    """Three combined nodes of one implementation, shared by its faults
    (each on a topic of its own; run_fault heals and restarts what a failed
    one left broken)."""
    with Cluster(NODES, faults.command_for(request.param), data_size_mb=faults.DATA_DISK_MB) as made:
        made.implementation = request.param
        made.refused = None
        yield made


@pytest.mark.timeout(FAULT_TIMEOUT_S)
@pytest.mark.parametrize("fault", faults.SHORT_MATRIX)
def test_no_acknowledged_record_lost_under_fault(cluster, fault):
    if cluster.refused is not None:
        pytest.skip(cluster.refused)
    if cluster.implementation == "shoal" and fault in SHOAL_GAPS:
        pytest.skip(SHOAL_GAPS[fault])
    if cluster.implementation == "kafka" and fault not in KAFKA_MATRIX:
        pytest.skip(f"kafka runs {fault} in the long run only (tests/faults/run --broker kafka)")
    _, (rounds, seconds), _ = faults.FAULTS[fault]
    try:
        result = faults.run_fault(cluster, fault, rounds, seconds)
    except faults.Refused as e:
        if e.error.code() != KafkaError.INVALID_REPLICATION_FACTOR:
            raise
        cluster.refused = f"{cluster.implementation} refuses replication factor 3: {e.error}"
        pytest.skip(cluster.refused)
    except faults.Skip as e:
        pytest.skip(str(e))
    print(result.report())
    failed = result.anomalies or result.violations
    assert not failed, f"{result.report()}\n{cluster.log_tails(REPORT_LOG_LINES)}"
    # The run proved something only if records were written through it.
    assert len(result.history.acked) > 0, result.report()


# --- the checker fails on each anomaly -----------------------------------------


def clean_history():
    """Two partitions of three records, acknowledged, consumed, read back and
    on three replicas alike, the high watermark polled going up."""
    h = checker.History()
    h.final_hw = {0: 3, 1: 3}
    h.final = {p: {o: f"p{p}-{o}".encode() for o in range(3)} for p in (0, 1)}
    h.acked = [(p, o, v) for p, rows in h.final.items() for o, v in rows.items()]
    h.seen = list(h.acked)
    h.replicas = [checker.Replica(node, p, dict(rows), 3) for node in (1, 2, 3) for p, rows in h.final.items()]
    h.watermarks = [checker.Watermark(1, 0, t, t + 0.1, 5, hw) for t, hw in ((0.0, 1), (1.0, 2), (2.0, 3))]
    return h


def kinds(history):
    return sorted({a.kind for a in checker.check(history)})


def test_checker_passes_a_clean_history():
    assert checker.check(clean_history()) == []


def test_checker_reports_a_lost_acknowledged_record():
    h = clean_history()
    h.acked.append((1, 3, b"w0-99"))
    assert kinds(h) == ["lost"]
    assert any(a.kind == "lost" and a.partition == 1 and a.offset == 3 for a in checker.check(h))
    assert "lost: 1" in checker.report(h, checker.check(h))


def test_checker_reports_an_acknowledged_record_at_another_offset():
    h = clean_history()
    h.acked[0] = (0, 0, b"p1-2")
    assert "moved" in kinds(h) and "conflict" in kinds(h)


def test_checker_reports_two_values_at_one_offset():
    h = clean_history()
    h.seen.append((0, 1, b"other"))
    assert "conflict" in kinds(h) and "disappeared" in kinds(h)


def test_checker_reports_a_divergent_replica_below_the_high_watermark():
    h = clean_history()
    h.replicas[4].values[1] = b"truncated-and-rewritten"
    found = [a for a in checker.check(h) if a.kind == "divergent"]
    assert len(found) == 1 and found[0].partition == 0 and found[0].offset == 1, found
    assert "node 3" in found[0].detail


def test_checker_reports_a_replica_missing_committed_records():
    h = clean_history()
    del h.replicas[1].values[2]
    h.replicas[1] = checker.Replica(1, 1, h.replicas[1].values, 2, "00000000000000000000.log: incomplete batch")
    assert kinds(h) == ["divergent"]


def test_checker_ignores_differences_above_the_high_watermark():
    h = clean_history()
    h.replicas[0].values[3] = b"not yet committed"
    assert checker.check(h) == []


def test_checker_reports_a_high_watermark_going_back():
    h = clean_history()
    h.watermarks.append(checker.Watermark(2, 0, 3.0, 3.1, 5, 2))
    found = [a for a in checker.check(h) if a.kind == "hw-backward"]
    assert len(found) == 1 and "answered 2 after node 1 (epoch 5) answered 3" in found[0].detail, found
    # A newer leader may not go back either.
    h = clean_history()
    h.watermarks.append(checker.Watermark(2, 0, 3.0, 3.1, 6, 1))
    assert kinds(h) == ["hw-backward"]


def test_checker_allows_a_deposed_leader_its_stale_high_watermark():
    """A leader of an older epoch, not yet told it was replaced, answers its
    own (lower) high watermark; so do answers that overlapped in time."""
    h = clean_history()
    h.watermarks.append(checker.Watermark(2, 0, 3.0, 3.1, 4, 1))
    h.watermarks.append(checker.Watermark(3, 0, 1.9, 2.5, 5, 2))
    assert checker.check(h) == []


def test_checker_reports_a_record_a_consumer_saw_that_disappeared():
    h = clean_history()
    h.seen.append((1, 3, b"read beyond the final log"))
    assert kinds(h) == ["disappeared"]


def written_twice(session):
    """A clean history whose partition 1 holds p0-0 again at offset 3, in a
    batch of producer session `session` (p0-0's own is (1000, 0))."""
    h = clean_history()
    h.final[1][3] = b"p0-0"
    h.final_hw[1] = 4
    for replica in h.replicas:
        replica.sessions = {o: (1000, 0) for o in replica.values}
        if replica.partition == 1:
            replica.values[3] = b"p0-0"
            replica.sessions[3] = session
            replica.end_offset = 4
    return h


def test_checker_reports_a_value_written_twice_in_one_producer_session():
    assert kinds(written_twice((1000, 0))) == ["duplicate"]
    # Where the replicas do not say which session wrote a copy, it counts.
    h = written_twice((1000, 0))
    for replica in h.replicas:
        replica.sessions = {}
    assert kinds(h) == ["duplicate"]


def test_checker_counts_a_value_resent_in_a_new_producer_epoch_apart():
    h = written_twice((1000, 1))
    assert checker.check(h) == []
    assert "re-sent by the client in a new producer epoch (no anomaly): 1 values" in checker.report(h, [])


# --- the log file reader --------------------------------------------------------


def batch(base_offset, values, leader_epoch=0, codec=segments.CODEC_NONE, control=False):
    """A RecordBatch v2 as a log file holds it."""
    records = b""
    for i, value in enumerate(values):
        body = b"\x00" + kafka_wire.varint(0) + kafka_wire.varint(i) + kafka_wire.varint(-1)
        body += kafka_wire.varint(len(value)) + value + kafka_wire.varint(0)
        records += kafka_wire.varint(len(body)) + body
    if codec == segments.CODEC_LZ4:
        records = lz4.frame.compress(records)
    attributes = codec | (segments.CONTROL_FLAG if control else 0)
    after_crc = struct.pack(">hiqqqhii", attributes, len(values) - 1, 0, 0, 7, 0, base_offset, len(values)) + records
    after_length = struct.pack(">ibI", leader_epoch, 2, crc32c.crc32c(after_crc)) + after_crc
    return struct.pack(">qi", base_offset, len(after_length)) + after_length


def write_segment(directory, base_offset, data):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, f"{base_offset:020d}.log"), "wb") as f:
        f.write(data)


def test_segments_reads_batches_across_segments_and_codecs(tmp_path):
    part = tmp_path / "log" / "t-1"
    write_segment(part, 0, batch(0, [b"a", b"b"], leader_epoch=1) + batch(2, [b"c"], codec=segments.CODEC_LZ4))
    write_segment(part, 3, batch(3, [b"marker"], control=True) + batch(4, [b"d", b"e"], leader_epoch=2,
                                                                        codec=segments.CODEC_LZ4))
    (tmp_path / "log" / "t-x").mkdir()
    (tmp_path / "log" / "other-1").mkdir()
    assert segments.partition_dirs(str(tmp_path), "t") == {1: str(part)}
    log = segments.read_log(str(part))
    assert log.stopped is None
    assert log.values() == {0: b"a", 1: b"b", 2: b"c", 4: b"d", 5: b"e"}
    assert log.end_offset == 6
    assert [b.leader_epoch for b in log.batches] == [1, 0, 0, 2]


def test_segments_stops_at_a_torn_or_corrupt_batch(tmp_path):
    good = batch(0, [b"a"])
    bad = bytearray(batch(1, [b"b"]))
    bad[-1] ^= 0xFF
    for name, tail, why in (("torn", batch(1, [b"b"])[:-3], "incomplete batch"), ("crc", bytes(bad), "CRC-32C"),
                            ("short", b"\x00" * 10, "trailing bytes")):
        write_segment(tmp_path / name, 0, good + tail)
        log = segments.read_log(str(tmp_path / name))
        assert log.values() == {0: b"a"} and log.end_offset == 1, name
        assert why in log.stopped, (name, log.stopped)
