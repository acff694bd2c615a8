"""A partition's owner shard comes from the placement table in the topic
metadata. Restarting the same data directory with fewer or more shards
re-places what no longer fits, and every record is still there."""

import pytest

import clients
from records import make_records

pytestmark = pytest.mark.shoal_only

PARTITIONS = 6


def test_restart_with_another_shard_count_keeps_everything(broker_factory, topic):
    first = broker_factory(shards=2)
    clients.create_topic(first.bootstrap, topic, PARTITIONS)
    records = make_records(seed="shards", partitions=PARTITIONS, per_partition=50)
    clients.produce_records(first.bootstrap, topic, records)
    first.stop()

    one = broker_factory(shards=1, data_dir=first.data_dir)
    clients.assert_read_back(one.bootstrap, topic, records)
    more = make_records(seed="shards-more", partitions=PARTITIONS, per_partition=10)
    clients.produce_records(one.bootstrap, topic, more)
    one.stop()

    again = broker_factory(shards=2, data_dir=first.data_dir)
    counts = {p: 60 for p in range(PARTITIONS)}
    got = clients.consume(again.bootstrap, topic, counts)
    for p in range(PARTITIONS):
        assert [m.offset() for m in got[p]] == list(range(60))
