"""Catch-up reads from segment files (issue 16): a partition several times
its tail cache read from the beginning. Ranges the broker wrote this run go
out as file ranges (`sendfile` from the page cache); after a restart the
first read of each range is read and checked, the next goes out from the
file. Either way a consumer gets every record, in order, and a raw Fetch
with a small byte budget gets whole batches that follow on."""

import random

import clients
import kafka_wire as wire

# Several times the broker's 4 MiB tail cache per partition.
RECORDS = 12_000
RECORD_BYTES = 1000
SEGMENT_BYTES = 1 << 20
# A budget that cuts most responses inside a segment.
SMALL_FETCH_BYTES = 100_000


def produce(bootstrap, topic, values):
    # Batches of about 16 KiB (the Java client's default), so that a fetch
    # of SMALL_FETCH_BYTES holds several.
    prod = clients.producer(bootstrap, linger_ms=5, batch_size=16384, compression_type="none")
    log = clients.DeliveryLog()
    for value in values:
        prod.produce(topic, value=value, partition=0, on_delivery=log)
        prod.poll(0)
    clients.flush(prod)
    assert log.errors == []


def read_values(bootstrap, topic):
    got = clients.consume(bootstrap, topic, {0: RECORDS}, timeout_s=120)[0]
    assert [m.offset() for m in got] == list(range(RECORDS))
    return [m.value() for m in got]


def read_in_small_fetches(bootstrap, topic):
    """Every batch, through raw Fetches of SMALL_FETCH_BYTES: each response
    is whole batches (no partial one at the end), within the budget unless
    it is one batch, starting where the last one ended."""
    offset, fetches = 0, 0
    while offset < RECORDS:
        error, high_watermark, records = wire.fetch(bootstrap, [(topic, 0, offset, SMALL_FETCH_BYTES)])[(topic, 0)]
        assert error == 0 and high_watermark == RECORDS
        batches = wire.batch_offsets(records)
        assert batches and batches[0][0] <= offset <= batches[0][1], f"fetch at {offset}: {batches[:1]}"
        assert len(records) <= SMALL_FETCH_BYTES or len(batches) == 1, f"{len(records)} bytes"
        for (_, last), (base, _) in zip(batches, batches[1:]):
            assert base == last + 1
        whole = sum(wire.BATCH_LENGTH_PREFIX_BYTES + _batch_length(records, pos) for pos in _starts(records))
        assert whole == len(records), "a partial batch at the end of a response"
        offset = batches[-1][1] + 1
        fetches += 1
    return fetches


def _batch_length(records, pos):
    return int.from_bytes(records[pos + 8 : pos + 12], "big")


def _starts(records):
    pos = 0
    while pos < len(records):
        yield pos
        pos += wire.BATCH_LENGTH_PREFIX_BYTES + _batch_length(records, pos)


def test_catch_up_reads_from_segment_files_serve_every_record(broker_factory, topic):
    broker = broker_factory(shards=2)
    clients.create_topic(broker.bootstrap, topic, 1, config={"segment.bytes": str(SEGMENT_BYTES)})
    rng = random.Random(16)
    values = [f"{i:08d}-".encode() + rng.randbytes(RECORD_BYTES - 9) for i in range(RECORDS)]
    produce(broker.bootstrap, topic, values)

    # Written this run: checked on produce, served from the files as ranges.
    assert read_values(broker.bootstrap, topic) == values
    assert read_in_small_fetches(broker.bootstrap, topic) > RECORDS * RECORD_BYTES // SMALL_FETCH_BYTES

    # After a restart: the first read checks each range, the second sends it.
    broker.stop()
    broker.start()
    assert read_values(broker.bootstrap, topic) == values
    assert read_values(broker.bootstrap, topic) == values
    read_in_small_fetches(broker.bootstrap, topic)
    assert broker.panic_lines() == []
