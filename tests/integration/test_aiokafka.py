"""Produce and consume with aiokafka (asyncio, pure-Python protocol)."""

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.codec import has_gzip, has_lz4, has_snappy, has_zstd

import clients
from records import make_records

PARTITIONS = 2
PER_PARTITION = 100
REQUEST_TIMEOUT_S = 30
POLL_LIMIT = 400

CODECS = {"none": lambda: True, "gzip": has_gzip, "snappy": has_snappy, "lz4": has_lz4, "zstd": has_zstd}


async def produce(bootstrap, topic, records, compression):
    prod = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        compression_type=None if compression == "none" else compression,
        enable_idempotence=False,
        linger_ms=5,
        request_timeout_ms=REQUEST_TIMEOUT_S * 1000,
    )
    await prod.start()
    try:
        futures = []
        for rows in records.values():
            for r in rows:
                fut = await prod.send(
                    topic, key=r.key, value=r.value, headers=r.headers, partition=r.partition, timestamp_ms=r.timestamp_ms
                )
                futures.append((r, fut))
        acked = {p: [] for p in records}
        for r, fut in futures:
            meta = await asyncio.wait_for(fut, REQUEST_TIMEOUT_S)
            assert (meta.topic, meta.partition) == (topic, r.partition)
            acked[r.partition].append(meta.offset)
    finally:
        await prod.stop()
    for p, rows in records.items():
        assert acked[p] == list(range(len(rows))), f"partition {p} acked offsets"


async def consume(bootstrap, topic, start_offsets, counts):
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        request_timeout_ms=REQUEST_TIMEOUT_S * 1000,
    )
    await consumer.start()
    got = {p: [] for p in counts}
    try:
        tps = [TopicPartition(topic, p) for p in counts]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, start_offsets[tp.partition])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REQUEST_TIMEOUT_S
        for _ in range(POLL_LIMIT):
            if all(len(got[p]) >= counts[p] for p in counts) or loop.time() > deadline:
                break
            for tp, batch in (await consumer.getmany(timeout_ms=200)).items():
                got[tp.partition].extend(batch)
        for tp, batch in (await consumer.getmany(timeout_ms=300)).items():
            got[tp.partition].extend(batch)
    finally:
        await consumer.stop()
    return got


@pytest.mark.parametrize("compression", list(CODECS))
def test_round_trip_and_seek(broker, topic, compression):
    if not CODECS[compression]():
        pytest.skip(f"aiokafka has no {compression} codec library installed")
    clients.create_topic(broker.bootstrap, topic, PARTITIONS)
    records = make_records(seed=f"aio-{compression}", partitions=PARTITIONS, per_partition=PER_PARTITION, big_every=30)

    async def scenario():
        await produce(broker.bootstrap, topic, records, compression)
        got = await consume(broker.bootstrap, topic, {p: 0 for p in records}, {p: PER_PARTITION for p in records})
        middle = 41
        tail = await consume(broker.bootstrap, topic, {0: middle}, {0: PER_PARTITION - middle})
        return got, tail, middle

    got, tail, middle = asyncio.run(asyncio.wait_for(scenario(), 100))
    for p, rows in records.items():
        msgs = got[p]
        assert [m.offset for m in msgs] == list(range(PER_PARTITION)), f"partition {p} offsets"
        for r, m in zip(rows, msgs):
            assert (m.topic, m.partition) == (topic, p)
            assert m.key == r.key
            assert m.value == r.value
            assert list(m.headers) == r.headers
            assert m.timestamp == r.timestamp_ms
            assert m.timestamp_type == 0  # CreateTime
    assert [m.offset for m in tail[0]] == list(range(middle, PER_PARTITION))
    assert [m.value for m in tail[0]] == [r.value for r in records[0][middle:]]
