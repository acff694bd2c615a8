"""A consume-transform-produce application with exactly-once semantics
(librdkafka's transactional producer), run as its own process by
test_transactions.py so that the test can SIGKILL it mid-transaction.

Each transaction reads a batch of the input (read_committed, no group
membership: it assign()s every partition at the group's committed offsets),
writes b"out:" + value of each record to the same partition of the output,
and commits the batch's input offsets to the group inside the transaction
(send_offsets_to_transaction). It runs until killed.

With --stall-at K the K-th transaction, once its output is written and
acknowledged, is neither committed nor aborted: the program prints "stalled"
and waits to be killed.

    txn_app.py --bootstrap B --input T --output O --group G
               --transactional-id X --partitions N [--stall-at K]
"""

import argparse
import logging
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

BATCH_MAX = 25
POLL_S = 0.2
# The test kills a stalled or idle program well inside this.
RUN_MAX_S = 110
# Long enough for a transaction that a loaded machine slows down; the
# stalled one is ended by the next instance's fencing, not by this timeout.
TRANSACTION_TIMEOUT_MS = 60_000
# Kafka's group.min.session.timeout.ms: the program never joins the group,
# but librdkafka wants one.
SESSION_TIMEOUT_MS = 6000
# How long the group's coordinator may take to answer the committed offsets.
COMMITTED_TIMEOUT_S = 30
COORDINATOR_ERRORS = (
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError._TIMED_OUT,
)

LOG = logging.getLogger("txn_app")


def main():
    parser = argparse.ArgumentParser()
    for name in ("--bootstrap", "--input", "--output", "--group", "--transactional-id"):
        parser.add_argument(name, required=True)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--stall-at", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO)

    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "transactional.id": args.transactional_id,
        "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
        "linger.ms": 5,
        "logger": LOG,
    })
    # Fences an earlier instance and ends its open transaction before this
    # one reads the committed offsets.
    producer.init_transactions()
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "logger": LOG,
    })
    consumer.assign(start_offsets(consumer, args.input, args.partitions))

    transactions = 0
    deadline = time.monotonic() + RUN_MAX_S
    while time.monotonic() < deadline:
        batch = [m for m in consumer.consume(num_messages=BATCH_MAX, timeout=POLL_S) if not skip(m)]
        if not batch:
            continue
        transactions += 1
        producer.begin_transaction()
        next_offsets = {}
        for m in batch:
            producer.produce(args.output, key=m.key(), value=b"out:" + m.value(), partition=m.partition())
            next_offsets[m.partition()] = m.offset() + 1
        if transactions == args.stall_at:
            producer.flush(30)
            print("stalled", flush=True)
            time.sleep(max(0.0, deadline - time.monotonic()))
            break
        producer.send_offsets_to_transaction(
            [TopicPartition(args.input, p, o) for p, o in sorted(next_offsets.items())],
            consumer.consumer_group_metadata(),
        )
        producer.commit_transaction()
        print(f"committed {transactions}", flush=True)
    sys.exit(1)


def start_offsets(consumer, topic, partitions):
    """The group's committed offsets (stable ones: librdkafka asks with
    require_stable under read_committed), the beginning where there is none.
    Asked here rather than left to assign(), which does not ask again after
    a coordinator error (Kafka answers NOT_COORDINATOR while it loads the
    group's __consumer_offsets partition)."""
    deadline = time.monotonic() + COMMITTED_TIMEOUT_S
    while True:
        try:
            got = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=POLL_S * 10)
            return [TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                    for tp in got]
        except KafkaException as e:
            if not e.args[0].retriable() and e.args[0].code() not in COORDINATOR_ERRORS:
                raise
            if time.monotonic() > deadline:
                raise
            LOG.warning("committed offsets: %s", e)
            time.sleep(POLL_S)


def skip(msg):
    """True for what is not a record: a partition EOF, or an error librdkafka
    retries itself (Kafka answers NOT_COORDINATOR while it loads the group's
    offsets); a fatal error ends the program."""
    err = msg.error()
    if err is None:
        return False
    if err.fatal():
        raise KafkaException(err)
    if err.code() != KafkaError._PARTITION_EOF:
        LOG.warning("consumer: %s", err)
    return True


if __name__ == "__main__":
    main()
