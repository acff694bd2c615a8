"""Consumer-group lag on a cluster (issue 18): the node that coordinates a
group shows, in its console (/v1/console/groups and the history charts) and
in /metrics (shoal_group_lag), the exact lag of every partition the group
committed, the ones other nodes lead included: the admin task asks their
leaders for their high watermarks (ListOffsets) once per sample
(src/admin/watermarks.rs). A leader that does not answer leaves its
partition's lag unknown (null, no series) and the pages still answer.

Three nodes, each with an admin listener on its own address (network
namespaces: every node has a host of its own, so one port serves them all),
started as test_delete_records_cluster.py starts them; a topic of three
single-replica partitions, one led by each node; N records produced to each,
M of them consumed and committed by a group, so the lag is N - M."""

import json
import os
import sys
import urllib.request

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import clients  # noqa: E402
from cluster import Cluster  # noqa: E402
from cluster.faults import node_command  # noqa: E402
from cluster.waiting import SHOAL_NODE, wait_until  # noqa: E402
from test_alter_partition_cluster import partitions_of  # noqa: E402
from test_reassign_cluster import settled  # noqa: E402

pytestmark = [pytest.mark.shoal_only, pytest.mark.timeout(300)]

NODES = 3
TOPIC = "lagged"
GROUP = "lag-readers"
ADMIN_PORT = 9644
# Records produced to partition p, and consumed and committed of them.
PRODUCED = [30, 41, 52]
CONSUMED = [10, 0, 25]
# A sample every 10 s (src/admin/history.rs SAMPLE_INTERVAL) asks the
# leaders; a few of them on a loaded two-core machine, and after a kill
# the failed ask (src/admin/watermarks.rs ASK_TIMEOUT, 3 s) on top.
LAG_WAIT_S = 60.0
# Registration, leaders of the new topic, a consumer's fetches.
SETTLE_WAIT_S = 60.0
HTTP_TIMEOUT_S = 10


def get(node, path):
    """The body of GET `path` on `node`'s admin listener (JSON parsed for
    the console's endpoints)."""
    url = f"http://{node.host}:{ADMIN_PORT}{path}"
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
        assert response.status == 200
        body = response.read().decode()
    return json.loads(body) if path.startswith("/v1/") else body


def group_offsets(node):
    """{partition: (committed, high watermark, lag)} of GROUP on TOPIC as
    `node`'s console lists it; None when the node does not coordinate it."""
    for group in get(node, "/v1/console/groups")["groups"]:
        if group["group"] == GROUP:
            return {o["partition"]: (o["committed"], o["high_watermark"], o["lag"])
                    for o in group["offsets"] if o["topic"] == TOPIC}
    return None


def metric_lags(node):
    """{partition: lag} of GROUP on TOPIC in `node`'s /metrics."""
    prefix = f'shoal_group_lag{{group="{GROUP}",topic="{TOPIC}",partition="'
    lags = {}
    for line in get(node, "/metrics").splitlines():
        if line.startswith(prefix):
            series, value = line.rsplit(" ", 1)
            lags[int(series[len(prefix):].split('"', 1)[0])] = int(value)
    return lags


def history_lags(node):
    """{partition: lag} of GROUP on TOPIC in the last sample the history
    recorded (not the "now" the endpoint adds last)."""
    samples = get(node, f"/v1/console/history?group={GROUP}")["samples"]
    if len(samples) < 2:
        return {}
    return {partition: lag for topic, partition, lag in samples[-2]["lags"] if topic == TOPIC}


def create(bootstrap, ids):
    """TOPIC with partition p's only replica on node ids[p]."""
    admin = clients.admin(bootstrap)
    topic = NewTopic(TOPIC, num_partitions=len(ids), replication_factor=-1,
                     replica_assignment=[[node_id] for node_id in ids])
    admin.create_topics([topic], request_timeout=clients.REQUEST_TIMEOUT_S)[TOPIC].result(
        timeout=clients.REQUEST_TIMEOUT_S)


def consume_and_commit(bootstrap):
    """Reads CONSUMED[p] records of each partition p as GROUP and commits
    there."""
    consumer = clients.consumer(bootstrap, group_id=GROUP, auto_offset_reset="earliest")
    try:
        wanted = {p: count for p, count in enumerate(CONSUMED) if count}
        consumer.assign([TopicPartition(TOPIC, p, 0) for p in wanted])
        read = {p: 0 for p in wanted}

        def caught_up():
            message = consumer.poll(clients.POLL_TIMEOUT_S)
            if message is not None and message.error() is None:
                partition = message.partition()
                read[partition] = min(read[partition] + 1, wanted[partition])
            return read == wanted

        wait_until(caught_up, SETTLE_WAIT_S, f"{CONSUMED} records consumed")
        offsets = [TopicPartition(TOPIC, p, count) for p, count in enumerate(CONSUMED)]
        clients.retried(lambda: consumer.commit(offsets=offsets, asynchronous=False),
                        clients.COORDINATOR_SETTLING_ERRORS, SETTLE_WAIT_S, "the commit")
    finally:
        consumer.close()


def test_the_coordinator_shows_the_lag_of_partitions_led_elsewhere():
    cluster = Cluster(NODES, node_command(SHOAL_NODE, lag=False) + f" admin.listeners=http://{{host}}:{ADMIN_PORT}")
    if cluster.unavailable("namespaces"):
        cluster.close()
        pytest.skip(f"each node's admin listener needs an address of its own: {cluster.unavailable('namespaces')}")
    with cluster:
        ids = settled(cluster)
        bootstrap = ",".join(node.bootstrap for node in cluster.nodes)
        create(bootstrap, ids)
        first = cluster.nodes[0].bootstrap
        wait_until(lambda: {p: state[1] for p, state in partitions_of(first, TOPIC).items()}
                   == dict(enumerate(ids)), SETTLE_WAIT_S, "each partition led by its one replica")
        producer = clients.producer(bootstrap)
        for partition, count in enumerate(PRODUCED):
            for i in range(count):
                producer.produce(TOPIC, value=b"%04d" % i, partition=partition)
        clients.flush(producer)
        consume_and_commit(bootstrap)

        coordinators = wait_until(lambda: [node for node in cluster.nodes if group_offsets(node) is not None],
                                  SETTLE_WAIT_S, f"a node's console to list group {GROUP}")
        assert len(coordinators) == 1, [node.node_id for node in coordinators]
        (coordinator,) = coordinators
        led_elsewhere = [p for p, node_id in enumerate(ids) if node_id != coordinator.node_id]
        assert len(led_elsewhere) == NODES - 1

        expected = {p: (CONSUMED[p], PRODUCED[p], PRODUCED[p] - CONSUMED[p]) for p in range(NODES)}
        wait_until(lambda: group_offsets(coordinator) == expected, LAG_WAIT_S,
                   f"the console's lag of every partition ({expected})")
        expected_lags = {p: lag for p, (_, _, lag) in expected.items()}
        assert metric_lags(coordinator) == expected_lags
        wait_until(lambda: history_lags(coordinator) == expected_lags, LAG_WAIT_S,
                   "a recorded sample with every partition's lag")

        # A leader that does not answer: its partition's lag becomes
        # unknown; the others stay, and the pages answer.
        victim_partition = led_elsewhere[0]
        victim = next(node for node in cluster.nodes if node.node_id == ids[victim_partition])
        cluster.kill9(cluster.nodes.index(victim))
        unknown = dict(expected)
        unknown[victim_partition] = (CONSUMED[victim_partition], None, None)
        wait_until(lambda: group_offsets(coordinator) == unknown, LAG_WAIT_S,
                   f"partition {victim_partition}'s lag unknown once its leader is gone")
        del expected_lags[victim_partition]
        assert metric_lags(coordinator) == expected_lags
