"""Deterministic test records: what a test produced, so it can check exactly
what it reads back."""

import hashlib
import random
from dataclasses import dataclass, field

# 2024-01-01T00:00:00Z: explicit timestamps far from "now", so a broker that
# overwrote CreateTime would be caught.
BASE_TIMESTAMP_MS = 1704067200000


@dataclass
class Record:
    partition: int
    key: bytes
    value: bytes
    headers: list = field(default_factory=list)
    timestamp_ms: int = 0


def make_records(seed, partitions, per_partition, with_headers=True, big_every=0):
    """per_partition records for each partition, values of mixed sizes (some
    compressible text, some random bytes, every big_every-th one ~100 KiB)."""
    rng = random.Random(seed)
    out = {}
    for p in range(partitions):
        rows = []
        for i in range(per_partition):
            if big_every and i % big_every == big_every - 1:
                value = rng.randbytes(100 * 1024)
            elif i % 3 == 0:
                value = rng.randbytes(rng.randint(0, 300))
            else:
                value = (f"value {p}/{i} " * rng.randint(1, 40)).encode()
            headers = []
            if with_headers:
                headers = [("seq", str(i).encode()), ("bin", rng.randbytes(8)), ("empty", b"")]
            rows.append(
                Record(
                    partition=p,
                    key=f"key-{p}-{i}".encode(),
                    value=value,
                    headers=headers,
                    timestamp_ms=BASE_TIMESTAMP_MS + p * 1_000_000 + i * 1000,
                )
            )
        out[p] = rows
    return out


def sequenced_value(seq, size_bytes=200):
    """A value that names its sequence number and carries a digest of itself,
    so a torn or foreign value read back is recognised as garbage."""
    body = (f"seq={seq:010d};" + "x" * size_bytes).encode()
    return body + b";" + hashlib.sha256(body).hexdigest().encode()


def parse_sequenced_value(value):
    """The sequence number of a value made by sequenced_value, or raises."""
    body, _, digest = value.rpartition(b";")
    assert hashlib.sha256(body).hexdigest().encode() == digest, f"corrupt value {value[:60]!r}"
    assert body.startswith(b"seq="), f"foreign value {value[:60]!r}"
    return int(body[4:14])
