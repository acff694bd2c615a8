"""Just enough of the Kafka wire protocol, written by hand, to poke the broker
over a raw socket: frame a request, read one response, and tell whether the
broker closed the connection. The requests built here are non-flexible
(pre-KIP-482): every field a fixed-width integer or an int16-length string;
for the APIs that exist only in flexible versions, `call` sends header v2 and
the compact helpers (`uvarint`, `compact_string`, `compact_array`, and the
`Reader` methods of the same names) encode and read their bodies."""

import socket
import struct
import time

import crc32c

API_PRODUCE = 0
API_FETCH = 1
API_METADATA = 3
API_VERSIONS = 18
API_INIT_PRODUCER_ID = 22
PRODUCE_VERSION = 3

# Kafka error codes the tests look for.
ERR_NONE = 0
ERR_UNKNOWN_TOPIC_OR_PARTITION = 3
ERR_MESSAGE_TOO_LARGE = 10
ERR_KAFKA_STORAGE_ERROR = 56

CLIENT_ID = b"shoal-tests"
SOCKET_TIMEOUT_S = 10.0


def parse_bootstrap(bootstrap):
    host, port = bootstrap.rsplit(":", 1)
    return host, int(port)


def connect(bootstrap, timeout_s=SOCKET_TIMEOUT_S):
    sock = socket.create_connection(parse_bootstrap(bootstrap), timeout=timeout_s)
    sock.settimeout(timeout_s)
    return sock


def string(value):
    data = value.encode() if isinstance(value, str) else value
    return struct.pack(">h", len(data)) + data


def request_header(api_key, api_version, correlation_id):
    """Request header v1: api key, version, correlation id, client id."""
    return struct.pack(">hhi", api_key, api_version, correlation_id) + string(CLIENT_ID)


def frame(payload):
    return struct.pack(">i", len(payload)) + payload


def recv_exact(sock, size_bytes, deadline):
    chunks = []
    remaining = size_bytes
    while remaining > 0:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise ConnectionError(f"connection closed with {remaining} bytes still expected")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_response(sock, correlation_id, timeout_s=SOCKET_TIMEOUT_S):
    """Reads one response frame and returns its body after the v0 header."""
    deadline = time.monotonic() + timeout_s
    (size_bytes,) = struct.unpack(">i", recv_exact(sock, 4, deadline))
    assert 4 <= size_bytes < 64 << 20, f"implausible response size {size_bytes}"
    payload = recv_exact(sock, size_bytes, deadline)
    (got_correlation_id,) = struct.unpack(">i", payload[:4])
    assert got_correlation_id == correlation_id, (got_correlation_id, correlation_id)
    return payload[4:]


def wait_closed(sock, timeout_s=SOCKET_TIMEOUT_S):
    """True if the peer closes (EOF or reset) within timeout_s, reading and
    discarding whatever it sends before that; False on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining_s = deadline - time.monotonic()
        if remaining_s <= 0:
            return False
        sock.settimeout(remaining_s)
        try:
            if not sock.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


class Reader:
    """Cursor over a response body."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, fmt):
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return values[0] if len(values) == 1 else values

    def string(self):
        size = self.take(">h")
        if size < 0:
            return None
        value = self.data[self.pos : self.pos + size].decode()
        self.pos += size
        return value

    def array(self, read_item):
        count = self.take(">i")
        return [] if count < 0 else [read_item() for _ in range(count)]

    def uvarint(self):
        value, shift = 0, 0
        while True:
            byte = self.take(">B")
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    def compact_string(self):
        size = self.uvarint() - 1
        value = self.data[self.pos : self.pos + size].decode()
        self.pos += size
        return value

    def compact_array(self, read_item):
        return [read_item() for _ in range(self.uvarint() - 1)]

    def tagged_fields(self):
        """Skips a flexible structure's tagged fields."""
        for _ in range(self.uvarint()):
            self.uvarint()
            self.pos += self.uvarint()


def uvarint(value):
    """Unsigned varint, as flexible versions encode lengths and tags."""
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def compact_string(value):
    data = value.encode()
    return uvarint(len(data) + 1) + data


def compact_array(items):
    return uvarint(len(items) + 1) + b"".join(items)


def call(sock, api_key, version, correlation_id, body, flexible=False):
    """Sends one request and returns the response body. Flexible: request
    header v2 (no tagged fields) and the response header's tagged fields
    skipped; `body` carries its own."""
    header = request_header(api_key, version, correlation_id) + (uvarint(0) if flexible else b"")
    sock.sendall(frame(header + body))
    response = read_response(sock, correlation_id)
    if not flexible:
        return response
    reader = Reader(response)
    reader.tagged_fields()
    return response[reader.pos :]


def api_versions(bootstrap, timeout_s=SOCKET_TIMEOUT_S):
    """ApiVersions v0 on a fresh connection: returns {api_key: (min, max)}.
    Fails unless the broker answers with error code 0."""
    with connect(bootstrap, timeout_s) as sock:
        sock.sendall(frame(request_header(API_VERSIONS, 0, 7)))
        reader = Reader(read_response(sock, 7, timeout_s))
        error_code = reader.take(">h")
        assert error_code == ERR_NONE, f"ApiVersions error {error_code}"
        apis = reader.array(lambda: reader.take(">hhh"))
        return {key: (lo, hi) for key, lo, hi in apis}


def metadata(bootstrap, topics, allow_auto_topic_creation, timeout_s=SOCKET_TIMEOUT_S):
    """Metadata v4 on a fresh connection. Returns (brokers, topics) with
    topics as {name: (error_code, {partition: (error_code, leader)})}."""
    body = struct.pack(">i", len(topics)) + b"".join(string(t) for t in topics)
    body += struct.pack(">b", 1 if allow_auto_topic_creation else 0)
    with connect(bootstrap, timeout_s) as sock:
        sock.sendall(frame(request_header(API_METADATA, 4, 11) + body))
        reader = Reader(read_response(sock, 11, timeout_s))
    reader.take(">i")  # throttle_time_ms

    def broker():
        node_id = reader.take(">i")
        host = reader.string()
        port = reader.take(">i")
        reader.string()  # rack
        return node_id, host, port

    brokers = reader.array(broker)
    reader.string()  # cluster_id
    reader.take(">i")  # controller_id

    def partition():
        error_code, index, leader = reader.take(">hii")
        reader.array(lambda: reader.take(">i"))  # replicas
        reader.array(lambda: reader.take(">i"))  # isr
        return index, (error_code, leader)

    def topic():
        error_code = reader.take(">h")
        name = reader.string()
        reader.take(">b")  # is_internal
        return name, (error_code, dict(reader.array(partition)))

    return brokers, dict(reader.array(topic))


def leaders(bootstrap, topic):
    """{partition: leader id} of `topic` as the node at `bootstrap` names
    them in Metadata (-1 for an offline partition)."""
    _, topics = metadata(bootstrap, [topic], False)
    _, partitions = topics[topic]
    return {p: leader for p, (_, leader) in partitions.items()}


FETCH_VERSION = 4
# Byte offsets inside a RecordBatch v2 header.
BATCH_HEADER_BYTES = 61
BATCH_LENGTH_PREFIX_BYTES = 12
LAST_OFFSET_DELTA_AT = 23


# Fetch versions whose shapes the encoder below knows: v5 adds log start
# offsets to partitions, v7 fetch sessions (KIP-227).
FETCH_LOG_START_VERSION = 5
FETCH_SESSIONS_VERSION = 7
# Fetch v9 names the leader epoch the fetcher knows, per partition (KIP-320).
FETCH_LEADER_EPOCH_VERSION = 9
NO_LEADER_EPOCH = -1
NO_FETCH_SESSION = 0
NO_FETCH_SESSION_EPOCH = -1


def fetch_request(partitions, version, max_bytes=64 << 20, session_id=NO_FETCH_SESSION, epoch=NO_FETCH_SESSION_EPOCH,
                  replica_id=-1):
    """A Fetch body (v4 to v10, no wait). partitions is [(topic, partition,
    offset, partition_max_bytes)], or from v9 [(topic, partition, offset,
    partition_max_bytes, current_leader_epoch)] (-1 when left out);
    session_id and epoch are sent from v7; a replica_id of 0 or more is a
    follower's fetch."""
    by_topic = {}
    for topic, partition, offset, partition_max_bytes, *rest in partitions:
        if version >= FETCH_LEADER_EPOCH_VERSION:
            leader_epoch = rest[0] if rest else NO_LEADER_EPOCH
            part = struct.pack(">iiqqi", partition, leader_epoch, offset, -1, partition_max_bytes)
        elif version >= FETCH_LOG_START_VERSION:
            part = struct.pack(">iqqi", partition, offset, -1, partition_max_bytes)
        else:
            part = struct.pack(">iqi", partition, offset, partition_max_bytes)
        by_topic.setdefault(topic, []).append(part)
    body = struct.pack(">iiiib", replica_id, 0, 0, max_bytes, 0)
    if version >= FETCH_SESSIONS_VERSION:
        body += struct.pack(">ii", session_id, epoch)
    body += struct.pack(">i", len(by_topic))
    for topic, parts in by_topic.items():
        body += string(topic) + struct.pack(">i", len(parts)) + b"".join(parts)
    if version >= FETCH_SESSIONS_VERSION:
        body += struct.pack(">i", 0)  # forgotten topics
    return body


def parse_fetch_response(body, version):
    """(error_code, session_id, {(topic, partition): (error_code,
    high_watermark, records_bytes)}) of a Fetch response (v4 to v10; before
    v7 there is no top-level error or session, given as ERR_NONE and
    NO_FETCH_SESSION)."""
    reader = Reader(body)
    reader.take(">i")  # throttle_time_ms
    error_code, session_id = ERR_NONE, NO_FETCH_SESSION
    if version >= FETCH_SESSIONS_VERSION:
        error_code, session_id = reader.take(">hi")
    partition_header = ">ihqqq" if version >= FETCH_LOG_START_VERSION else ">ihqq"
    out = {}

    def partition(topic):
        index, part_error, high_watermark = reader.take(partition_header)[:3]
        reader.array(lambda: reader.take(">qq"))  # aborted transactions
        size = reader.take(">i")
        records = b"" if size < 0 else reader.data[reader.pos : reader.pos + size]
        reader.pos += max(size, 0)
        assert (topic, index) not in out, f"the response names {topic}-{index} twice"
        out[(topic, index)] = (part_error, high_watermark, records)

    def topic():
        name = reader.string()
        reader.array(lambda: partition(name))

    reader.array(topic)
    return error_code, session_id, out


def fetch(bootstrap, partitions, max_bytes=64 << 20, timeout_s=SOCKET_TIMEOUT_S):
    """Fetch v4 (no wait) on a fresh connection. partitions is
    [(topic, partition, offset, partition_max_bytes)]; returns
    {(topic, partition): (error_code, high_watermark, records_bytes)}."""
    body = fetch_request(partitions, FETCH_VERSION, max_bytes)
    with connect(bootstrap, timeout_s) as sock:
        sock.sendall(frame(request_header(API_FETCH, FETCH_VERSION, 13) + body))
        response = read_response(sock, 13, timeout_s)
    return parse_fetch_response(response, FETCH_VERSION)[2]


def batch_offsets(records):
    """[(base_offset, last_offset)] of the complete batches in a Fetch
    response's records bytes (a trailing partial batch is ignored, as
    clients do)."""
    out = []
    pos = 0
    while pos + BATCH_HEADER_BYTES <= len(records):
        base_offset, batch_length = struct.unpack_from(">qi", records, pos)
        total = BATCH_LENGTH_PREFIX_BYTES + batch_length
        if pos + total > len(records):
            break
        (delta,) = struct.unpack_from(">i", records, pos + LAST_OFFSET_DELTA_AT)
        out.append((base_offset, base_offset + delta))
        pos += total
    return out


def varint(value):
    """Zig-zag varint, as record fields are encoded."""
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def record_batch(values, producer_id, epoch, base_sequence, attributes=0, key=None):
    """A RecordBatch v2 of `values` (each with `key`) from producer_id/epoch,
    first sequence base_sequence; `attributes` as the header carries them."""
    records = b""
    key_field = varint(-1) if key is None else varint(len(key)) + key
    for i, value in enumerate(values):
        body = b"\x00" + varint(0) + varint(i) + key_field + varint(len(value)) + value + varint(0)
        records += varint(len(body)) + body
    now = int(time.time() * 1000)
    after_crc = struct.pack(
        ">hiqqqhii", attributes, len(values) - 1, now, now, producer_id, epoch, base_sequence, len(values)
    ) + records
    after_length = struct.pack(">ibI", 0, 2, crc32c.crc32c(after_crc)) + after_crc
    return struct.pack(">qi", 0, len(after_length)) + after_length


def init_producer_id(sock, correlation_id):
    """InitProducerId v0 without a transactional id: (error, producer id, epoch)."""
    body = struct.pack(">hi", -1, 60_000)
    reader = Reader(call(sock, API_INIT_PRODUCER_ID, 0, correlation_id, body))
    _throttle, error, producer_id, epoch = reader.take(">ihqh")
    return error, producer_id, epoch


def produce(sock, correlation_id, topic, partition, data):
    """Produce v3 (a null transactional id), acks=-1, one partition:
    (error code, base offset)."""
    body = struct.pack(">hhi", -1, -1, 10_000) + struct.pack(">i", 1) + string(topic)
    body += struct.pack(">iii", 1, partition, len(data)) + data
    reader = Reader(call(sock, API_PRODUCE, PRODUCE_VERSION, correlation_id, body))
    reader.take(">i")
    reader.string()
    reader.take(">i")
    _partition, error, base_offset, _append_time = reader.take(">ihqq")
    return error, base_offset
