"""Crash safety with real processes and real files: kill -9 at random moments
under acks=all load, a torn tail with garbage after it, a byte flipped inside
a closed segment, and a full disk. Random choices are seeded; the seed is
printed (shown with a failure) and SHOAL_CRASH_SEED replays it."""

import os
import random
import struct
import subprocess
import time

import pytest
from confluent_kafka import KafkaError, TopicPartition

import clients
import kafka_wire as wire
from load import SequenceProducer
from records import parse_sequenced_value

pytestmark = pytest.mark.shoal_only

SEED = int(os.environ.get("SHOAL_CRASH_SEED", random.SystemRandom().randrange(1 << 32)))

# RecordBatch v2 framing, as on disk.
BATCH_LENGTH_PREFIX_BYTES = 12
BATCH_HEADER_BYTES = 61
# Where the CRC coverage starts (attributes); bytes after it are checked.
CRC_START = 21


def rng_for(name):
    seed = f"{SEED}-{name}"
    print(f"random seed for {name}: SHOAL_CRASH_SEED={SEED}")
    return random.Random(seed)


def partition_dir(data_dir, topic, partition):
    path = os.path.join(data_dir, f"{topic}-{partition}")
    assert os.path.isdir(path), f"no directory {path}"
    return path


def segment_logs(data_dir, topic, partition):
    """Paths of the partition's segment files, oldest first."""
    path = partition_dir(data_dir, topic, partition)
    return [os.path.join(path, n) for n in sorted(os.listdir(path)) if n.endswith(".log")]


def segment_batches(path):
    """[(position, size, base_offset, last_offset)] of the complete batches
    at the start of the segment file."""
    with open(path, "rb") as f:
        data = f.read()
    out = []
    pos = 0
    while pos + BATCH_HEADER_BYTES <= len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        size = BATCH_LENGTH_PREFIX_BYTES + length
        if pos + size > len(data):
            break
        (delta,) = struct.unpack_from(">i", data, pos + 23)
        out.append((pos, size, base, base + delta))
        pos += size
    return out


def read_partitions(bootstrap, topic, partitions, timeout_s=60):
    """{partition: [values]} of everything up to each high watermark,
    asserting the log starts at 0 and the offsets are exactly 0..hw-1."""
    counts = {}
    for p in partitions:
        low, high = clients.watermarks(bootstrap, topic, p)
        assert low == 0, f"{topic}/{p}: log start offset {low}"
        counts[p] = high
    got = clients.consume(bootstrap, topic, counts, timeout_s=timeout_s)
    out = {}
    for p, msgs in got.items():
        offsets = [m.offset() for m in msgs]
        assert offsets == list(range(counts[p])), f"{topic}/{p}: offsets are not 0..{counts[p] - 1}"
        out[p] = [m.value() for m in msgs]
    return out


def assert_acked_present(values, acked, what):
    """Every acknowledged (partition, offset, value) is at its offset."""
    for p, offset, value in acked:
        assert offset < len(values[p]), f"{what}: acked {p}/{offset} lost (high watermark {len(values[p])})"
        assert values[p][offset] == value, f"{what}: acked {p}/{offset} holds other bytes"


KILL_ROUNDS = 10
# Paced so that each round acknowledges thousands of records, not millions.
LOAD_RATE_PER_S = 8000
KILL_PARTITIONS = 4


def test_kill9_at_random_moments_under_acks_all_load(broker_factory, topic):
    rng = rng_for("kill9")
    broker = broker_factory(shards=2)
    # Small segments, so that kills also land on rolls and seals.
    clients.create_topic(broker.bootstrap, topic, KILL_PARTITIONS, config={"segment.bytes": str(256 << 10)})
    acked = []
    next_seq = 0
    for round_index in range(KILL_ROUNDS):
        delay_s = rng.uniform(0.05, 1.0)
        print(f"round {round_index}: kill -9 {delay_s:.3f}s after the first ack")
        writer = SequenceProducer(
            broker.bootstrap, topic, KILL_PARTITIONS, next_seq, rate_per_s=LOAD_RATE_PER_S, value_bytes=80,
            max_records=200_000, max_seconds=30.0, message_timeout_ms=10000,
        )
        writer.start()
        try:
            deadline = time.monotonic() + 20
            while not writer.log.acked:
                assert broker.is_running(), f"broker died in round {round_index}"
                assert writer.is_alive() and writer.failure is None, writer.failure
                assert time.monotonic() < deadline, f"round {round_index}: no ack in 20s"
                time.sleep(0.005)
            time.sleep(delay_s)
            assert broker.is_running(), f"broker died in round {round_index}"
            assert not writer.log.errors, writer.log.errors[:3]
            broker.kill9()
        finally:
            writer.stop()
        acked.extend((p, o, v) for p, o, _, v in writer.log.acked)
        print(f"round {round_index}: {len(writer.log.acked)} acknowledged of {writer.next_seq - next_seq} sent")
        next_seq = writer.next_seq

        broker.start()
        values = read_partitions(broker.bootstrap, topic, range(KILL_PARTITIONS))
        assert_acked_present(values, acked, f"round {round_index}")
        for p, vals in values.items():
            for offset, value in enumerate(vals):
                seq = parse_sequenced_value(value)
                assert seq % KILL_PARTITIONS == p, f"{p}/{offset} holds seq {seq} of another partition"
                assert seq < next_seq, f"{p}/{offset} holds seq {seq} never produced"
    assert len(acked) >= KILL_ROUNDS, "too few acknowledged records to mean anything"
    # The log goes on at each log end offset, and a clean restart keeps it all.
    ends = {p: len(vals) for p, vals in values.items()}
    more = produce_values(broker.bootstrap, topic, {p: [b"after %d" % p] for p in range(KILL_PARTITIONS)})
    assert {p: rows[0][0] for p, rows in more.items()} == ends
    broker.stop()
    broker.start()
    values = read_partitions(broker.bootstrap, topic, range(KILL_PARTITIONS))
    assert_acked_present(values, acked, "after a clean restart")
    assert {p: len(vals) for p, vals in values.items()} == {p: end + 1 for p, end in ends.items()}


def produce_values(bootstrap, topic, values_by_partition, **config):
    """Produces the values (acks=all), one batch per few records; returns
    {partition: [(offset, value)]} as acknowledged."""
    prod = clients.producer(bootstrap, linger_ms=1, batch_num_messages=7, compression_type="none", **config)
    log = clients.DeliveryLog()
    for p, values in values_by_partition.items():
        for value in values:
            prod.produce(topic, value=value, partition=p, on_delivery=log)
            prod.poll(0)
    clients.flush(prod)
    assert log.errors == []
    out = {p: [] for p in values_by_partition}
    for p, offset, _, value in log.acked:
        out[p].append((offset, value))
    return {p: sorted(rows) for p, rows in out.items()}


def seeded_values(rng, count, tag):
    return [f"{tag}-{i}-".encode() + rng.randbytes(rng.randint(10, 400)) for i in range(count)]


def plausible_header(base_offset, batch_length):
    """The start of a RecordBatch v2 that claims batch_length bytes."""
    return struct.pack(">qiibI", base_offset, batch_length, 0, 2, 0x12345678) + struct.pack(
        ">hiqqqhii", 0, 9, 1_700_000_000_000, 1_700_000_000_000, -1, -1, -1, 10
    )


def test_torn_tail_and_garbage_are_cut_at_the_last_complete_batch(broker_factory, topic):
    rng = rng_for("torn-tail")
    broker = broker_factory(shards=1)
    clients.create_topic(broker.bootstrap, topic, 3)
    sent = {p: seeded_values(rng, 60, f"p{p}") for p in range(3)}
    acked = produce_values(broker.bootstrap, topic, sent)
    assert all([o for o, _ in acked[p]] == list(range(60)) for p in range(3))
    broker.kill9()

    # Partition 0: cut inside its last batch, then random bytes.
    # Partition 1: complete batches, then a plausible header claiming ~2 GiB.
    # Partition 2: cut right after the header of its last batch, then zeros.
    kept = {}
    for p in range(3):
        (log,) = segment_logs(broker.data_dir, topic, p)
        batches = segment_batches(log)
        assert batches[-1][3] == 59 and len(batches) > 3, batches
        position, size, base, _ = batches[-1]
        if p == 0:
            cut, tail = position + rng.randrange(1, size), rng.randbytes(rng.randint(1, 3000))
            kept[p] = base
        elif p == 1:
            cut, tail = position + size, plausible_header(60, 0x7FF0_0000) + rng.randbytes(500)
            kept[p] = 60
        else:
            cut, tail = position + BATCH_HEADER_BYTES, bytes(4096)
            kept[p] = base
        print(f"partition {p}: cut {log} at {cut} (last batch at {position}, {size} bytes), {len(tail)} bytes after")
        with open(log, "r+b") as f:
            f.truncate(cut)
            f.seek(cut)
            f.write(tail)

    broker.start()
    values = read_partitions(broker.bootstrap, topic, range(3))
    for p in range(3):
        assert len(values[p]) == kept[p], f"partition {p}: {len(values[p])} records kept, expected {kept[p]}"
        assert values[p] == [v for _, v in acked[p][: kept[p]]], f"partition {p}: records differ"
        (log,) = segment_logs(broker.data_dir, topic, p)
        batches = segment_batches(log)
        assert os.path.getsize(log) == batches[-1][0] + batches[-1][1], "the garbage is still in the file"
    log_text = "\n".join(open(path, errors="replace").read() for path in broker.log_paths[-1:])
    assert "truncating segment 0" in log_text

    # New records go on at the log end offset of each partition.
    more = {p: seeded_values(rng, 20, f"more{p}") for p in range(3)}
    acked_more = produce_values(broker.bootstrap, topic, more)
    for p in range(3):
        assert [o for o, _ in acked_more[p]] == list(range(kept[p], kept[p] + 20))
    expected = {p: [v for _, v in acked[p][: kept[p]]] + more[p] for p in range(3)}
    assert read_partitions(broker.bootstrap, topic, range(3)) == expected

    # After a clean stop the checkpoint vouches for the files, yet its index
    # must still name a last batch that ends the file: garbage appended
    # behind the broker's back is found and cut just the same.
    broker.stop()
    (log,) = segment_logs(broker.data_dir, topic, 0)
    with open(log, "ab") as f:
        f.write(plausible_header(kept[0] + 20, 500) + rng.randbytes(200))
    broker.start()
    assert read_partitions(broker.bootstrap, topic, range(3)) == expected
    assert broker.panic_lines() == []


FLIP_SEGMENT_BYTES = 16 << 10


def test_flipped_byte_in_a_closed_segment_is_a_storage_error_for_that_range_only(broker_factory, topic):
    rng = rng_for("flip")
    broker = broker_factory(shards=2)
    other = f"{topic}-other"
    clients.create_topic(broker.bootstrap, topic, 2, config={"segment.bytes": str(FLIP_SEGMENT_BYTES)})
    clients.create_topic(broker.bootstrap, other, 1)
    sent = {p: seeded_values(rng, 400, f"p{p}") for p in range(2)}
    acked = produce_values(broker.bootstrap, topic, sent)
    other_sent = seeded_values(rng, 50, "other")
    produce_values(broker.bootstrap, other, {0: other_sent})
    broker.stop()

    logs = segment_logs(broker.data_dir, topic, 0)
    assert len(logs) >= 4, f"only {len(logs)} segments"
    victim = logs[1]
    batches = segment_batches(victim)
    position, size, bad_base, bad_last = batches[2]
    at = position + rng.randrange(BATCH_HEADER_BYTES, size)  # inside the records
    with open(victim, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ (1 << rng.randrange(8))]))
    print(f"flipped byte {at} of {victim}: batch {bad_base}..{bad_last} at {position}")

    broker.start()
    end = len(sent[0])
    big = 8 << 20
    got = wire.fetch(
        broker.bootstrap,
        [(topic, 0, bad_base, big), (topic, 1, 0, big), (other, 0, 0, big)],
    )
    error, high_watermark, records = got[(topic, 0)]
    assert error == wire.ERR_KAFKA_STORAGE_ERROR, f"fetch at the bad batch: error {error}"
    assert records == b"" and high_watermark == end
    # The same partition before and after the bad batch, other partitions
    # and topics: all served.
    assert got[(topic, 1)][0] == 0 and wire.batch_offsets(got[(topic, 1)][2])[0][0] == 0
    assert got[(other, 0)][0] == 0 and wire.batch_offsets(got[(other, 0)][2])[-1][1] == 49
    first_of_victim = segment_batches(victim)[0][2]
    got = wire.fetch(broker.bootstrap, [(topic, 0, first_of_victim, big)])
    error, _, records = got[(topic, 0)]
    assert error == 0, f"fetch before the bad batch: error {error}"
    offsets = wire.batch_offsets(records)
    assert offsets[0][0] == first_of_victim and offsets[-1][1] == bad_base - 1, (
        "a read from before the bad batch ends right before it"
    )
    got = wire.fetch(broker.bootstrap, [(topic, 0, bad_last + 1, big)])
    error, _, records = got[(topic, 0)]
    assert error == 0 and wire.batch_offsets(records)[0][0] == bad_last + 1
    assert wire.batch_offsets(records)[-1][1] == end - 1

    # Real consumers: the other topic and the other partition read fully; on
    # the bad partition one reads up to the bad batch and no further.
    assert read_partitions(broker.bootstrap, other, [0])[0] == other_sent
    assert read_partitions(broker.bootstrap, topic, [1])[1] == [v for _, v in acked[1]]
    before, errors = consume_until_stuck(broker.bootstrap, topic, 0, bad_base)
    assert [m.value() for m in before] == [v for _, v in acked[0][:bad_base]]
    print(f"consumer errors at the bad batch: {errors}")
    after = clients.consume(broker.bootstrap, topic, {0: end - bad_last - 1}, start_offsets={0: bad_last + 1})[0]
    assert [m.value() for m in after] == [v for _, v in acked[0][bad_last + 1 :]]

    log_text = open(broker.log_path, errors="replace").read()
    lines = [line for line in log_text.splitlines() if "corrupt data in" in line]
    assert lines, "the broker did not log the corruption"
    assert os.path.basename(victim) in lines[0] and f"file position {position}" in lines[0], lines[0]
    assert f"offsets {bad_base}..={bad_last}" in lines[0], lines[0]
    # Logged once, however often clients retry.
    assert len(lines) == 1, lines
    # Appends to the damaged partition go on.
    acked_more = produce_values(broker.bootstrap, topic, {0: [b"after the flip"]})
    assert acked_more[0] == [(end, b"after the flip")]


STUCK_SETTLE_S = 2.0


def consume_until_stuck(bootstrap, topic, partition, count, timeout_s=30):
    """Reads `partition` from offset 0 until `count` records came, then for
    STUCK_SETTLE_S more; fails if anything past them arrives. Returns the
    messages and the consumer errors seen."""
    c = clients.consumer(bootstrap, enable_partition_eof=False)
    got, errors = [], []
    try:
        c.assign([TopicPartition(topic, partition, 0)])
        deadline = time.monotonic() + timeout_s
        settle_until = None
        for _ in range(int(timeout_s / clients.POLL_TIMEOUT_S) + 100):
            now = time.monotonic()
            if settle_until is None and len(got) >= count:
                settle_until = now + STUCK_SETTLE_S
            if now >= deadline or (settle_until is not None and now >= settle_until):
                break
            for msg in c.consume(num_messages=500, timeout=clients.POLL_TIMEOUT_S):
                if msg.error() is not None:
                    errors.append(msg.error())
                else:
                    got.append(msg)
    finally:
        c.close()
    assert len(got) == count, f"read {len(got)} records, expected exactly {count}"
    return got, errors


TMPFS_BYTES = 16 << 20


@pytest.fixture
def small_disk(tmp_root):
    """A 16 MiB tmpfs mounted for this test (root only), unmounted after."""
    path = os.path.join(tmp_root, "disk")
    os.makedirs(path)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", path], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        # The broker may still hold files open if the test failed before
        # stopping it: a lazy unmount lets go as soon as it exits.
        if subprocess.run(["umount", path], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", path], capture_output=True)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill_up(path, name):
    """Writes a file of whatever room is left, 4 KiB at a time, until ENOSPC."""
    chunk = b"\xa5" * 4096
    with open(os.path.join(path, name), "wb", buffering=0) as f:
        for _ in range(TMPFS_BYTES // len(chunk) + 1):
            try:
                f.write(chunk)
            except OSError:
                break
    assert free_bytes(path) == 0, f"{free_bytes(path)} bytes still free"


FILL_SECONDS_MAX = 60


def test_full_disk_fails_produces_cleanly_and_writes_resume_once_space_is_freed(small_disk, broker_factory, topic):
    rng = rng_for("full-disk")
    broker = broker_factory(shards=2, data_dir=small_disk)
    keep, filler = f"{topic}-keep", f"{topic}-filler"
    clients.create_topic(broker.bootstrap, keep, 2)
    clients.create_topic(broker.bootstrap, filler, 2, config={"segment.bytes": str(1 << 20)})
    keep_sent = {p: seeded_values(rng, 100, f"keep{p}") for p in range(2)}
    keep_acked = produce_values(broker.bootstrap, keep, keep_sent)

    # Fill the disk with incompressible records until produces fail. They
    # must fail, promptly, with KAFKA_STORAGE_ERROR: no hang, no crash.
    prod = clients.producer(
        broker.bootstrap, linger_ms=5, retries=0, message_timeout_ms=15000, compression_type="none"
    )
    log = clients.DeliveryLog()
    deadline = time.monotonic() + FILL_SECONDS_MAX
    sent_bytes = 0
    while not log.errors and sent_bytes < 4 * TMPFS_BYTES:
        assert time.monotonic() < deadline, f"no produce error after {sent_bytes} bytes"
        for i in range(64):
            try:
                prod.produce(filler, value=rng.randbytes(4000), partition=i % 2, on_delivery=log)
                sent_bytes += 4000
            except BufferError:
                prod.poll(0.05)
        prod.poll(0.01)
    remaining = prod.flush(30)
    assert remaining == 0, f"{remaining} produces neither acknowledged nor failed after 30s"
    del prod
    assert log.errors, f"{sent_bytes} bytes produced into {TMPFS_BYTES} without an error"
    codes = {e.code() for e in log.errors}
    assert codes == {KafkaError.KAFKA_STORAGE_ERROR}, f"produce errors: {codes}"
    filler_acked = [(p, o, v) for p, o, _, v in log.acked]
    print(f"{len(filler_acked)} filler records acknowledged, {len(log.errors)} refused")
    # Whatever room the failed appends left: gone too, so that nothing
    # the broker writes next can fit.
    fill_up(small_disk, "ballast")

    # The broker stays up and serves metadata and fetches.
    assert broker.is_running()
    assert clients.topic_partitions(broker.bootstrap, keep) == [0, 1]
    values = read_partitions(broker.bootstrap, filler, [0, 1])
    assert_acked_present(values, filler_acked, "filler on a full disk")
    assert read_partitions(broker.bootstrap, keep, [0, 1]) == keep_sent
    # A produce now fails the same way, and fast. (Larger than a page: a
    # few bytes could still go in the last, partly used page of the file.)
    prod = clients.producer(broker.bootstrap, retries=0, message_timeout_ms=15000)
    refused = clients.DeliveryLog()
    prod.produce(keep, value=rng.randbytes(64 << 10), partition=0, on_delivery=refused)
    assert prod.flush(30) == 0
    del prod
    assert [e.code() for e in refused.errors] == [KafkaError.KAFKA_STORAGE_ERROR], refused.errors

    # A crash on a full disk: the broker comes back and loses nothing.
    broker.kill9()
    broker.start()
    assert_acked_present(read_partitions(broker.bootstrap, filler, [0, 1]), filler_acked, "after kill -9 on a full disk")
    assert read_partitions(broker.bootstrap, keep, [0, 1]) == keep_sent

    # Deleting a topic makes room, even when the table that forgets it has
    # none to be written in at first.
    admin = clients.admin(broker.bootstrap)
    admin.delete_topics([filler], request_timeout=clients.REQUEST_TIMEOUT_S)[filler].result(
        timeout=clients.REQUEST_TIMEOUT_S
    )
    assert free_bytes(small_disk) > TMPFS_BYTES // 2, f"only {free_bytes(small_disk)} bytes free after the delete"
    assert "disk full: deleting the data of" in open(broker.log_path, errors="replace").read()

    # Writes resume, at the offsets where the acknowledged ones ended.
    more = {p: seeded_values(rng, 50, f"more{p}") for p in range(2)}
    more_acked = produce_values(broker.bootstrap, keep, more)
    for p in range(2):
        assert [o for o, _ in more_acked[p]] == list(range(100, 150)), f"partition {p} offsets"
    expected = {p: keep_sent[p] + more[p] for p in range(2)}
    assert read_partitions(broker.bootstrap, keep, [0, 1]) == expected
    assert [o for o, _ in keep_acked[0]] == list(range(100))
    broker.stop()
    broker.start()
    assert read_partitions(broker.bootstrap, keep, [0, 1]) == expected
    assert clients.topic_partitions(broker.bootstrap, filler) is None
    broker.stop()
