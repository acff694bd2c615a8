"""A small reader of Kafka's on-disk log, for the fault checker to compare
every replica's files: a partition is a directory `<topic>-<partition>` of
segments `<20-digit base offset>.log`, each a sequence of RecordBatch v2
exactly as on the wire with offsets assigned. Apache Kafka and shoal write the
same format (Kafka's log dir is `kraft-logs/` in the harness's data dir,
shoal's is `log/`; `partition_dirs` finds either).

A log is read batch by batch, in base-offset order of its segments, up to
its end or to the first batch that is incomplete or fails its CRC-32C (a
torn tail, or a batch being written while we read): what comes before is
returned, and `Log.stopped` says why reading stopped early. Compressed
batches are decompressed with the codecs the producers use (gzip, snappy raw
or xerial-framed, lz4 frame, zstd where the `zstandard` module exists);
control batches (transaction markers) take offsets but hold no values.
Reading never raises on bad bytes: a file is data from disk."""

import gzip
import os
import struct
from dataclasses import dataclass, field

import crc32c

try:
    import lz4.frame as lz4_frame
except ImportError:  # the codec is then reported as unsupported
    lz4_frame = None
try:
    import snappy
except ImportError:
    snappy = None
try:
    import zstandard
except ImportError:
    zstandard = None

SEGMENT_SUFFIX = ".log"
SEGMENT_NAME_DIGITS = 20
# baseOffset int64, batchLength int32: the part of a batch not counted in
# batchLength.
LENGTH_PREFIX_BYTES = 12
# The whole v2 header, from baseOffset to the record count.
BATCH_HEADER_BYTES = 61
HEADER_FORMAT = ">qiibIhiqqqhii"
assert struct.calcsize(HEADER_FORMAT) == BATCH_HEADER_BYTES
# The CRC covers from the attributes (after baseOffset, batchLength,
# partitionLeaderEpoch, magic and the crc itself) to the end of the batch.
CRC_START = 21
MAGIC_V2 = 2
COMPRESSION_MASK = 0x07
CONTROL_FLAG = 0x20
CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD = range(5)
XERIAL_MAGIC = b"\x82SNAPPY\x00"
XERIAL_HEADER_BYTES = 16
# A batch larger than this is not one a test producer wrote: treat the
# length as garbage rather than allocate it (Kafka's message.max.bytes
# default is about 1 MiB; this leaves room for a raised one).
BATCH_BYTES_MAX = 64 << 20
# Records per batch beyond which the count is garbage (the parser would
# otherwise loop on a corrupt count).
RECORDS_PER_BATCH_MAX = 1 << 20


@dataclass
class Batch:
    base_offset: int
    last_offset: int
    leader_epoch: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    control: bool
    # (offset, key, value) of each record; empty for a control batch.
    records: list


@dataclass
class Log:
    """One replica's log as read from its files."""

    batches: list = field(default_factory=list)
    # Why reading stopped before the end of the last file (None: it did not).
    stopped: str = None

    @property
    def end_offset(self):
        """The offset after the last complete batch (the replica's log end
        offset as far as its files show); 0 for an empty log."""
        return self.batches[-1].last_offset + 1 if self.batches else 0

    def sessions(self):
        """{offset: (producer id, producer epoch)} of every data record."""
        return {offset: (batch.producer_id, batch.producer_epoch) for batch in self.batches if not batch.control
                for offset, _key, _value in batch.records}

    def values(self):
        """{offset: value} of every data record."""
        return {offset: value for batch in self.batches if not batch.control
                for offset, _key, value in batch.records}


class Malformed(Exception):
    """Bytes that are no valid record batch (the reader stops there)."""


def partition_dirs(data_dir, topic, depth_max=3):
    """{partition: path} of every directory `<topic>-<partition>` under
    data_dir, looking at most depth_max levels down (Kafka's and shoal's log
    dirs sit one level below the harness's data dir)."""
    found = {}
    prefix = f"{topic}-"
    level = [data_dir]
    for _ in range(depth_max):
        below = []
        for path in level:
            try:
                entries = list(os.scandir(path))
            except (FileNotFoundError, NotADirectoryError, PermissionError):
                continue
            for entry in entries:
                if not entry.is_dir():
                    continue
                suffix = entry.name[len(prefix):] if entry.name.startswith(prefix) else ""
                if suffix.isdigit():
                    found[int(suffix)] = entry.path
                else:
                    below.append(entry.path)
        level = below
    return found


def segment_paths(partition_dir):
    """The partition's segment files in base-offset order."""
    names = [n for n in os.listdir(partition_dir)
             if n.endswith(SEGMENT_SUFFIX) and len(n) == SEGMENT_NAME_DIGITS + len(SEGMENT_SUFFIX)
             and n[:SEGMENT_NAME_DIGITS].isdigit()]
    return [os.path.join(partition_dir, n) for n in sorted(names)]


def read_log(partition_dir):
    """The partition's log read from every segment (see the module doc)."""
    log = Log()
    for path in segment_paths(partition_dir):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            log.stopped = f"{os.path.basename(path)}: {e}"
            return log
        for batch, stopped in _batches(data):
            if stopped is not None:
                log.stopped = f"{os.path.basename(path)}: {stopped}"
                return log
            log.batches.append(batch)
    return log


def _batches(data):
    """Yields (Batch, None) for each valid batch of one segment's bytes, then
    (None, reason) if it stops before the end."""
    pos = 0
    while pos < len(data):
        if len(data) - pos < BATCH_HEADER_BYTES:
            yield None, f"{len(data) - pos} trailing bytes at {pos}, less than a batch header"
            return
        base_offset, length = struct.unpack_from(">qi", data, pos)
        end = pos + LENGTH_PREFIX_BYTES + length
        if length < BATCH_HEADER_BYTES - LENGTH_PREFIX_BYTES or length > BATCH_BYTES_MAX:
            yield None, f"batch length {length} at {pos}"
            return
        if end > len(data):
            yield None, f"incomplete batch at {pos} ({len(data) - pos} of {end - pos} bytes)"
            return
        try:
            yield parse_batch(data[pos:end]), None
        except Malformed as e:
            yield None, f"batch at {pos} (base offset {base_offset}): {e}"
            return
        pos = end


def parse_batch(data):
    """One whole RecordBatch v2 (its bytes from baseOffset to its end)."""
    (base_offset, _length, leader_epoch, magic, crc, attributes, last_delta, _base_ts, _max_ts, producer_id,
     producer_epoch, base_sequence, count) = struct.unpack_from(HEADER_FORMAT, data, 0)
    if magic != MAGIC_V2:
        raise Malformed(f"magic {magic}")
    if crc32c.crc32c(data[CRC_START:]) != crc:
        raise Malformed("CRC-32C mismatch")
    if not 0 <= count <= RECORDS_PER_BATCH_MAX:
        raise Malformed(f"record count {count}")
    control = bool(attributes & CONTROL_FLAG)
    records = []
    if not control:
        body = decompress(attributes & COMPRESSION_MASK, data[BATCH_HEADER_BYTES:])
        records = _records(body, base_offset, count)
    return Batch(base_offset, base_offset + last_delta, leader_epoch, producer_id, producer_epoch, base_sequence,
                 control, records)


def decompress(codec, body):
    try:
        if codec == CODEC_NONE:
            return body
        if codec == CODEC_GZIP:
            return gzip.decompress(body)
        if codec == CODEC_SNAPPY and snappy is not None:
            return _unsnappy(body)
        if codec == CODEC_LZ4 and lz4_frame is not None:
            return lz4_frame.decompress(body)
        if codec == CODEC_ZSTD and zstandard is not None:
            return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    except Exception as e:  # any codec's own error: the bytes are bad
        raise Malformed(f"codec {codec}: {e!r}") from None
    raise Malformed(f"codec {codec} unsupported here (its Python module is missing)")


def _unsnappy(body):
    """Raw snappy, or Kafka's xerial framing: a 16-byte header, then blocks
    each prefixed by its compressed length (int32)."""
    if not body.startswith(XERIAL_MAGIC):
        return snappy.uncompress(body)
    out = []
    pos = XERIAL_HEADER_BYTES
    while pos < len(body):
        (size,) = struct.unpack_from(">i", body, pos)
        pos += 4
        out.append(snappy.uncompress(body[pos:pos + size]))
        pos += size
    return b"".join(out)


def _records(body, base_offset, count):
    reader = _VarintReader(body)
    records = []
    for _ in range(count):
        length = reader.varint()
        end = reader.pos + length
        reader.take(1)  # attributes
        reader.varint()  # timestamp delta
        offset_delta = reader.varint()
        key = reader.bytes_or_none()
        value = reader.bytes_or_none()
        reader.pos = end  # headers are not needed
        if end > len(body):
            raise Malformed("record past the batch's end")
        records.append((base_offset + offset_delta, key, value))
    return records


class _VarintReader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, size):
        if self.pos + size > len(self.data):
            raise Malformed("record past the batch's end")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def varint(self):
        """Zig-zag varint (at most 10 bytes, a varlong)."""
        value, shift = 0, 0
        for _ in range(10):
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return (value >> 1) ^ -(value & 1)
        raise Malformed("varint longer than 10 bytes")

    def bytes_or_none(self):
        size = self.varint()
        return None if size < 0 else bytes(self.take(size))
