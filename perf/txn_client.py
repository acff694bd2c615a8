"""The transactional workload of perf/transactions.py (issue 13), through
confluent-kafka: one transactional producer that, for --duration seconds,
begins a transaction, produces 100 B records round-robin over the topic's
partitions for --txn-ms milliseconds, and commits, again and again.

    txn_client.py --bootstrap H:P --topic T --partitions 8 --duration 10 --txn-ms 100

Prints one JSON object: records, seconds, records_per_s, transactions, and
the commit latency (commit_transaction's duration) p50/p99 in ms."""

import argparse
import json
import statistics
import sys
import time
import uuid

from confluent_kafka import KafkaException, Producer

QUEUE_FULL_POLL_S = 0.01
CALL_TIMEOUT_S = 60.0


def run(args):
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "transactional.id": f"perf-txn-{uuid.uuid4().hex[:8]}",
        "linger.ms": 5,
    })
    producer.init_transactions(CALL_TIMEOUT_S)
    value = b"x" * args.record_size
    records = 0
    commits_ms = []
    start = time.monotonic()
    deadline = start + args.duration
    while time.monotonic() < deadline:
        producer.begin_transaction()
        txn_end = time.monotonic() + args.txn_ms / 1000
        while time.monotonic() < txn_end:
            try:
                producer.produce(args.topic, value, partition=records % args.partitions)
                records += 1
            except BufferError:
                producer.poll(QUEUE_FULL_POLL_S)
            if records % 1000 == 0:
                producer.poll(0)
        began = time.monotonic()
        producer.commit_transaction(CALL_TIMEOUT_S)
        commits_ms.append((time.monotonic() - began) * 1000)
    seconds = time.monotonic() - start
    commits_ms.sort()
    return {
        "records": records,
        "seconds": seconds,
        "records_per_s": records / seconds,
        "transactions": len(commits_ms),
        "commit_ms": {
            "p50": statistics.median(commits_ms),
            "p99": commits_ms[min(len(commits_ms) - 1, int(len(commits_ms) * 0.99))],
        },
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--record-size", type=int, default=100)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--txn-ms", type=float, default=100.0)
    args = parser.parse_args()
    try:
        print(json.dumps(run(args)))
    except KafkaException as error:
        sys.exit(f"transaction failed: {error}")


if __name__ == "__main__":
    main()
