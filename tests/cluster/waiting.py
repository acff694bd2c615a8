"""What the cluster tests share: the commands that run shoal or Apache Kafka
as one node of a cluster (`SHOAL_NODE`, `KAFKA_NODE`: `Cluster` templates),
and the bounded wait for a cluster to get where a test wants it."""

import os
import struct
import time

import pytest

from .quorum import QuorumError

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHOAL_NODE = (os.path.join(REPO, "tests", "cluster", "shoal-node")
              + " {node_id} {host} {port} {controller_port} {voters} {data_dir} {cluster_id}")
# The same for Apache Kafka from its jars (tests/kafka/setup), the reference.
KAFKA_NODE = (os.path.join(REPO, "tests", "kafka", "kafka-cluster-node")
              + " {node_id} {host} {port} {controller_port} {voters} {data_dir} {cluster_id}")
POLL_INTERVAL_S = 0.2
# What a node answers, or how it fails to, while a cluster settles: a
# refused or dropped connection, an error code, a short answer.
SETTLING = (OSError, QuorumError, AssertionError, struct.error)


def wait_until(predicate, timeout_s, what, settling=()):
    """`predicate()`'s first true value, polled every POLL_INTERVAL_S; the
    test fails after `timeout_s` with the last value or error seen. Errors
    of SETTLING (and `settling`) count as not yet."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last = value
        except (*SETTLING, *settling) as e:
            last = e
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")
        time.sleep(POLL_INTERVAL_S)
