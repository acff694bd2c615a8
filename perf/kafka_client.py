"""An independent client for the perf harness: W1 and W3 through
confluent-kafka (librdkafka), to check that `shoal bench` ranks brokers the
way a widely used client does.

    kafka_client.py produce --bootstrap H:P --topic T --partitions 8 --record-size 100 --duration 3
    kafka_client.py produce ... --records N
    kafka_client.py produce ... --idempotent     (enable.idempotence=true)
    kafka_client.py consume --bootstrap H:P --topic T --records N
    kafka_client.py consume ... --fetch-queue-backoff-ms 10
    kafka_client.py consume ... --librdkafka-debug fetch     (librdkafka's log on stderr)
    kafka_client.py ... --config security.protocol=SASL_SSL --config ...   (any librdkafka property)

Prints one JSON object shaped like `shoal bench --json` (records, bytes,
seconds, records_per_s, mb_per_s). The producer keeps librdkafka's default
batching and linger, with acks=all; the consumer assigns every partition
from the beginning, without a group, with librdkafka's defaults unless
told otherwise (see perf/README.md, "Reading the independent-client rows",
for what its default `fetch.queue.backoff.ms` does to a fast broker).
"""

import argparse
import json
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

# librdkafka's own bound on a full local queue: wait for deliveries, then retry.
QUEUE_FULL_POLL_S = 0.01
FLUSH_TIMEOUT_S = 60.0
ADMIN_TIMEOUT_S = 10.0
POLL_TIMEOUT_S = 1.0
# A consumer that receives nothing for this long gives up.
IDLE_TIMEOUT_S = 30.0


def create_topic(bootstrap, topic, partitions, extra_config):
    admin = AdminClient({"bootstrap.servers": bootstrap, **extra_config})
    future = admin.create_topics([NewTopic(topic, partitions, 1)],
                                 operation_timeout=ADMIN_TIMEOUT_S)[topic]
    try:
        future.result(timeout=ADMIN_TIMEOUT_S)
    except KafkaException as error:
        if error.args[0].name() != "TOPIC_ALREADY_EXISTS":
            raise


def report(records, seconds, record_size):
    return {
        "records": records,
        "bytes": records * record_size,
        "seconds": seconds,
        "records_per_s": records / seconds,
        "mb_per_s": records * record_size / seconds / (1024 * 1024),
    }


def produce(args):
    create_topic(args.bootstrap, args.topic, args.partitions, args.config)
    config = {"bootstrap.servers": args.bootstrap, "acks": "all", "enable.idempotence": args.idempotent,
              **args.config}
    if args.max_in_flight is not None:
        config["max.in.flight.requests.per.connection"] = args.max_in_flight
    producer = Producer(config)
    failed = 0

    def on_delivery(error, _message):
        nonlocal failed
        if error is not None:
            failed += 1

    value = b"x" * args.record_size
    sent = 0
    start = time.monotonic()
    deadline = start + args.duration if args.records is None else None
    while (sent < args.records) if deadline is None else (time.monotonic() < deadline):
        try:
            producer.produce(args.topic, value, partition=sent % args.partitions, on_delivery=on_delivery)
            sent += 1
        except BufferError:
            producer.poll(QUEUE_FULL_POLL_S)
        if sent % 1000 == 0:
            producer.poll(0)
    if producer.flush(FLUSH_TIMEOUT_S) != 0:
        sys.exit("flush timed out with records undelivered")
    seconds = time.monotonic() - start
    if failed:
        sys.exit(f"{failed} records failed")
    return report(sent, seconds, args.record_size)


def consume(args):
    config = {"bootstrap.servers": args.bootstrap, "group.id": "perf-independent", "enable.auto.commit": False,
              **args.config}
    if args.fetch_queue_backoff_ms is not None:
        config["fetch.queue.backoff.ms"] = args.fetch_queue_backoff_ms
    if args.librdkafka_debug:
        config["debug"] = args.librdkafka_debug
    consumer = Consumer(config)
    try:
        metadata = consumer.list_topics(args.topic, timeout=ADMIN_TIMEOUT_S)
        partitions = metadata.topics[args.topic].partitions
        consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in partitions])
        received = 0
        start = time.monotonic()
        last_seen = start
        while received < args.records:
            messages = consumer.consume(num_messages=10_000, timeout=POLL_TIMEOUT_S)
            now = time.monotonic()
            if messages:
                last_seen = now
            elif now - last_seen > IDLE_TIMEOUT_S:
                sys.exit(f"nothing received for {IDLE_TIMEOUT_S} s after {received} records")
            for message in messages:
                if message.error() is None:
                    received += 1
        return report(received, time.monotonic() - start, args.record_size)
    finally:
        consumer.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["produce", "consume"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--record-size", type=int, default=100)
    parser.add_argument("--records", type=int)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--idempotent", action="store_true",
                        help="produce with enable.idempotence=true (librdkafka's default is false)")
    parser.add_argument("--max-in-flight", type=int,
                        help="max.in.flight.requests.per.connection (librdkafka's default is 1000000; "
                             "idempotence caps it at 5)")
    parser.add_argument("--fetch-queue-backoff-ms", type=int,
                        help="consume with this fetch.queue.backoff.ms (librdkafka's default is 1000)")
    parser.add_argument("--librdkafka-debug", help="librdkafka's `debug` contexts (e.g. fetch), logged to stderr")
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                        help="a librdkafka property for every client of the run (e.g. security.protocol=SASL_SSL)")
    args = parser.parse_args()
    args.config = dict(item.split("=", 1) for item in args.config)
    if (args.records is None) == (args.duration is None):
        parser.error("give exactly one of --records and --duration")
    result = produce(args) if args.mode == "produce" else consume(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
