"""A KRaft quorum's state read over the wire: DescribeQuorum v1 (KIP-836) for
the metadata log, `__cluster_metadata` partition 0. Any Kafka broker answers
it (a broker forwards it to the active controller), so a test can ask any
live node; a controller listener (Kafka's or shoal's) answers it on the
leader only, NOT_LEADER_OR_FOLLOWER elsewhere. And CreateTopics sent to one
node itself (`create_topic`), and the wait for a quorum to settle on one
leader every voter has caught up with (`settled_leader`). Needs
tests/integration on sys.path for `kafka_wire` (the integration suite's
conftest puts it there)."""

import struct
import time
from dataclasses import dataclass

import kafka_wire

API_DESCRIBE_QUORUM = 55
DESCRIBE_QUORUM_VERSION = 1
METADATA_TOPIC = "__cluster_metadata"
METADATA_PARTITION = 0
NO_LEADER = -1
CORRELATION_ID = 55


@dataclass
class Replica:
    replica_id: int
    log_end_offset: int
    # Wall-clock ms on the leader; -1 when unknown (and for the leader's own
    # fetch time).
    last_fetch_timestamp_ms: int
    last_caught_up_timestamp_ms: int


@dataclass
class Quorum:
    leader_id: int
    leader_epoch: int
    high_watermark: int
    voters: dict
    observers: dict


class QuorumError(Exception):
    """The broker answered DescribeQuorum with an error code."""

    def __init__(self, error_code):
        super().__init__(f"DescribeQuorum error code {error_code}")
        self.error_code = error_code


def describe_quorum(bootstrap, timeout_s=kafka_wire.SOCKET_TIMEOUT_S):
    """Asks the node at `bootstrap` for the metadata quorum's state; raises
    OSError when it does not answer and QuorumError on an error code."""
    body = kafka_wire.compact_array([
        kafka_wire.compact_string(METADATA_TOPIC)
        + kafka_wire.compact_array([struct.pack(">i", METADATA_PARTITION) + kafka_wire.uvarint(0)])
        + kafka_wire.uvarint(0)
    ]) + kafka_wire.uvarint(0)
    with kafka_wire.connect(bootstrap, timeout_s) as sock:
        response = kafka_wire.call(sock, API_DESCRIBE_QUORUM, DESCRIBE_QUORUM_VERSION, CORRELATION_ID, body,
                                   flexible=True)
    reader = kafka_wire.Reader(response)
    error_code = reader.take(">h")
    if error_code != kafka_wire.ERR_NONE:
        raise QuorumError(error_code)

    def replica():
        replica_id, log_end_offset, last_fetch, last_caught_up = reader.take(">iqqq")
        reader.tagged_fields()
        return replica_id, Replica(replica_id, log_end_offset, last_fetch, last_caught_up)

    def partition():
        index, partition_error, leader_id, leader_epoch, high_watermark = reader.take(">ihiiq")
        voters = dict(reader.compact_array(replica))
        observers = dict(reader.compact_array(replica))
        reader.tagged_fields()
        return index, partition_error, Quorum(leader_id, leader_epoch, high_watermark, voters, observers)

    def topic():
        name = reader.compact_string()
        partitions = reader.compact_array(partition)
        reader.tagged_fields()
        return name, partitions

    for name, partitions in reader.compact_array(topic):
        for index, partition_error, quorum in partitions:
            if name == METADATA_TOPIC and index == METADATA_PARTITION:
                if partition_error != kafka_wire.ERR_NONE:
                    raise QuorumError(partition_error)
                return quorum
    raise AssertionError(f"DescribeQuorum answered without {METADATA_TOPIC}-{METADATA_PARTITION}")


API_CREATE_TOPICS = 19
# The last CreateTopics version before flexible encoding (v5): plain arrays
# and strings, as kafka_wire writes them.
CREATE_TOPICS_VERSION = 4
CREATE_TOPICS_CORRELATION_ID = 19
ERR_REQUEST_TIMED_OUT = 7
ERR_NOT_CONTROLLER = 41
# How long the broker may take to commit the topic (the request's timeout_ms).
CREATE_TIMEOUT_MS = 5000


def create_topic(bootstrap, name, partitions, timeout_s=kafka_wire.SOCKET_TIMEOUT_S):
    """CreateTopics of one topic (replication factor 1) sent to the node at
    `bootstrap` itself, never redirected as an admin client would to the
    controller it finds: returns the topic's error code (0 when created)."""
    topic = (kafka_wire.string(name) + struct.pack(">ih", partitions, 1)
             + struct.pack(">i", 0)  # no replica assignments
             + struct.pack(">i", 0))  # no configs
    body = struct.pack(">i", 1) + topic + struct.pack(">ib", CREATE_TIMEOUT_MS, 0)
    with kafka_wire.connect(bootstrap, timeout_s) as sock:
        response = kafka_wire.call(sock, API_CREATE_TOPICS, CREATE_TOPICS_VERSION, CREATE_TOPICS_CORRELATION_ID,
                                   body)
    reader = kafka_wire.Reader(response)
    reader.take(">i")  # throttle_time_ms

    def result():
        topic_name = reader.string()
        error_code = reader.take(">h")
        reader.string()  # error_message
        return topic_name, error_code

    results = dict(reader.array(result))
    return results[name]


ERR_NOT_LEADER_OR_FOLLOWER = 6
SETTLE_POLL_INTERVAL_S = 0.2


def controller_address(node):
    """Where `node` answers the quorum's requests: its CONTROLLER listener."""
    return f"{node.host}:{node.controller_port}"


def settled_leader(cluster, timeout_s):
    """Waits until exactly one controller of `cluster` answers
    DescribeQuorum as the leader, names every controller a voter, has
    committed in its epoch, and every voter holds its high watermark;
    returns (leader's node index, Quorum). Raises TimeoutError with the
    last answer after timeout_s."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        answers = {}
        for i in cluster.controllers():
            node = cluster.nodes[i]
            try:
                answers[i] = describe_quorum(controller_address(node))
            except QuorumError as e:
                if e.error_code != ERR_NOT_LEADER_OR_FOLLOWER:
                    last = e
            except OSError as e:
                last = e
        if len(answers) == 1:
            index, quorum = answers.popitem()
            last = quorum
            ids = {cluster.nodes[i].node_id for i in cluster.controllers()}
            if (quorum.leader_id == cluster.nodes[index].node_id and set(quorum.voters) == ids
                    and quorum.high_watermark > 0
                    and all(v.log_end_offset >= quorum.high_watermark for v in quorum.voters.values())):
                return index, quorum
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no settled quorum leader after {timeout_s}s (last: {last!r})")
        time.sleep(SETTLE_POLL_INTERVAL_S)


API_DESCRIBE_CLUSTER = 60
DESCRIBE_CLUSTER_VERSION = 2
ENDPOINT_TYPE_BROKERS = 1


def describe_cluster(bootstrap):
    """DescribeCluster v2 with include_fenced_brokers on a broker listener:
    (controller id, {broker id: fenced})."""
    body = struct.pack(">bbb", 0, ENDPOINT_TYPE_BROKERS, 1) + kafka_wire.uvarint(0)
    with kafka_wire.connect(bootstrap) as sock:
        response = kafka_wire.call(sock, API_DESCRIBE_CLUSTER, DESCRIBE_CLUSTER_VERSION, API_DESCRIBE_CLUSTER, body,
                                   flexible=True)
    reader = kafka_wire.Reader(response)
    reader.take(">i")  # throttle_time_ms
    error_code = reader.take(">h")
    assert error_code == 0, error_code
    size = reader.uvarint()  # error_message, compact nullable
    reader.pos += max(size - 1, 0)
    reader.take(">b")  # endpoint_type
    reader.compact_string()  # cluster_id
    controller_id = reader.take(">i")

    def broker():
        broker_id = reader.take(">i")
        reader.compact_string()  # host
        reader.take(">i")  # port
        rack = reader.uvarint()
        reader.pos += max(rack - 1, 0)
        fenced = reader.take(">b") == 1
        reader.tagged_fields()
        return broker_id, fenced

    return controller_id, dict(reader.compact_array(broker))
