"""A background producer for crash tests: sequence-numbered values
(records.sequenced_value) round-robin over the partitions, every
acknowledged (partition, offset, key, value) recorded through delivery
callbacks. Bounded in records and seconds whatever happens."""

import threading
import time

import clients
from records import sequenced_value

# Records handed to librdkafka between two rate checks.
STEP_RECORDS = 40


class SequenceProducer(threading.Thread):
    """Produces until `stop_event` is set or a bound is reached, at most
    `rate_per_s` records/s when given. When it stops, whatever is not yet
    acknowledged is purged: the broker is gone, and purged records report
    errors, not offsets."""

    def __init__(self, bootstrap, topic, partitions, first_seq, acks="all", rate_per_s=None,
                 value_bytes=200, max_records=500_000, max_seconds=60.0, message_timeout_ms=15000):
        super().__init__(daemon=True)
        self.topic = topic
        self.partitions = partitions
        self.next_seq = first_seq
        self.rate_per_s = rate_per_s
        self.value_bytes = value_bytes
        self.max_records = max_records
        self.max_seconds = max_seconds
        self.log = clients.DeliveryLog()
        self.stop_event = threading.Event()
        self.producer = clients.producer(
            bootstrap, acks=acks, linger_ms=2, message_timeout_ms=message_timeout_ms, compression_type="lz4"
        )
        self.failure = None

    def acked_count(self):
        return len(self.log.acked)

    def stop(self, timeout_s=30):
        """Stops the thread; fails the test if it does not stop or failed."""
        self.stop_event.set()
        self.join(timeout=timeout_s)
        assert not self.is_alive(), "producer thread did not stop"
        assert self.failure is None, self.failure

    def run(self):
        try:
            start = time.monotonic()
            produced = 0
            while produced < self.max_records and not self.stop_event.is_set():
                if time.monotonic() - start > self.max_seconds:
                    break
                for _ in range(STEP_RECORDS):
                    seq = self.next_seq
                    try:
                        self.producer.produce(
                            self.topic,
                            value=sequenced_value(seq, size_bytes=self.value_bytes),
                            partition=seq % self.partitions,
                            on_delivery=self.log,
                        )
                    except BufferError:
                        self.producer.poll(0.05)
                        break
                    self.next_seq += 1
                    produced += 1
                self.producer.poll(0)
                if self.rate_per_s:
                    ahead_s = produced / self.rate_per_s - (time.monotonic() - start)
                    if ahead_s > 0:
                        self.stop_event.wait(ahead_s)
            self.producer.poll(0)
            self.producer.purge(in_queue=True, in_flight=True, blocking=False)
            self.producer.flush(10)
        except Exception as e:  # surfaced by the test thread
            self.failure = e
        finally:
            self.producer = None  # destroys the client and its threads
