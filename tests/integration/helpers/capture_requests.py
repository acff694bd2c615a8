"""Captures the request frames that real Kafka clients send, for the fuzz
corpus in tests/corpus.

It starts a shoal broker that advertises a proxy's address, so that every
connection the clients open (bootstrap and the ones metadata points them to)
goes through the proxy. The proxy forwards bytes both ways and records each
complete request frame a client sends. Each client library then runs a short
workload: admin calls, produce with every compression codec, a classic group
and a KIP-848 group consuming, group administration, deletes.

    target/test-venv/bin/python tests/integration/helpers/capture_requests.py \\
        --shoal target/ci/shoal --out tests/corpus

Writes one file per client, <client>.frames: the captured frames as on the
wire (a big-endian int32 size, then the frame), at most
FRAMES_PER_API_VERSION_MAX distinct frames per API key and version, so the
corpus stays small while covering every request kind the client sent. Prints
the count per API key and version.
"""

import argparse
import asyncio
import collections
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HOST = "127.0.0.1"
# Distinct frames kept per (API key, version) and client: enough to hold the
# variations a workload produces (empty and full arrays, codecs), few enough
# to keep the corpus at a few hundred KB.
FRAMES_PER_API_VERSION_MAX = 6
# A frame over this is cut from the corpus: record payloads add nothing the
# mutations need and the corpus must stay small.
FRAME_BYTES_MAX = 16 << 10
READY_TIMEOUT_S = 30
STEP_TIMEOUT_S = 20
RECORDS_PER_PRODUCER = 20
SIZE = struct.Struct(">i")


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Recorder:
    """The frames one client sent, by (api key, version), deduplicated."""

    def __init__(self):
        self.lock = threading.Lock()
        self.client = "unlabelled"
        self.frames = collections.defaultdict(lambda: collections.defaultdict(dict))

    def record(self, client, frame):
        if len(frame) < 8 or len(frame) > FRAME_BYTES_MAX:
            return
        key, version = struct.unpack_from(">hh", frame)
        # The correlation id differs in every copy of the same request.
        identity = frame[:4] + frame[8:]
        with self.lock:
            kept = self.frames[client][(key, version)]
            if len(kept) < FRAMES_PER_API_VERSION_MAX and identity not in kept:
                kept[identity] = frame


class Proxy(threading.Thread):
    """Accepts client connections and relays each to the broker, recording the
    client's frames."""

    def __init__(self, listen_port, broker_port, recorder):
        super().__init__(daemon=True)
        self.server = socket.create_server((HOST, listen_port))
        self.broker_port = broker_port
        self.recorder = recorder

    def run(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                broker = socket.create_connection((HOST, self.broker_port))
            except OSError:
                client.close()
                continue
            # A connection belongs to the client whose workload opened it.
            with self.recorder.lock:
                label = self.recorder.client
            threading.Thread(target=self.requests, args=(label, client, broker), daemon=True).start()
            threading.Thread(target=self.responses, args=(broker, client), daemon=True).start()

    def requests(self, label, client, broker):
        pending = b""
        try:
            while chunk := client.recv(1 << 16):
                broker.sendall(chunk)
                pending += chunk
                while len(pending) >= 4:
                    (size,) = SIZE.unpack_from(pending)
                    if size < 0 or len(pending) < 4 + size:
                        break
                    self.recorder.record(label, pending[4 : 4 + size])
                    pending = pending[4 + size :]
        except OSError:
            pass
        finally:
            for s in (client, broker):
                shutdown(s)

    @staticmethod
    def responses(broker, client):
        try:
            while chunk := broker.recv(1 << 16):
                client.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (client, broker):
                shutdown(s)


def shutdown(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def step(name, action):
    """Runs one workload step; a step a client or the broker refuses is
    reported and the capture goes on with the next."""
    started = time.monotonic()
    try:
        action()
        print(f"  ok   {name} ({time.monotonic() - started:.1f}s)")
    except Exception as e:
        print(f"  FAIL {name}: {type(e).__name__}: {e}")


def confluent_workload(bootstrap, prefix):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import (
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        NewPartitions,
        NewTopic,
        OffsetSpec,
    )
    from confluent_kafka import ConsumerGroupTopicPartitions

    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic, other = f"{prefix}-a", f"{prefix}-b"
    group = f"{prefix}-classic"

    def wait(futures):
        for future in futures.values():
            future.result(STEP_TIMEOUT_S)

    step("create topics", lambda: wait(admin.create_topics([NewTopic(topic, 2), NewTopic(other, 1)])))
    step("describe cluster", lambda: admin.describe_cluster(request_timeout=STEP_TIMEOUT_S).result(STEP_TIMEOUT_S))
    step("describe topics", lambda: admin.list_topics(timeout=STEP_TIMEOUT_S))
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    step("describe configs", lambda: wait(admin.describe_configs([resource])))
    step(
        "incremental alter configs",
        lambda: wait(
            admin.incremental_alter_configs(
                [
                    ConfigResource(
                        ConfigResource.Type.TOPIC,
                        topic,
                        incremental_configs=[
                            ConfigEntry("retention.ms", "86400000", incremental_operation=AlterConfigOpType.SET)
                        ],
                    )
                ]
            )
        ),
    )
    step(
        "alter configs",
        lambda: wait(admin.alter_configs([ConfigResource(ConfigResource.Type.TOPIC, other, set_config={"retention.ms": "3600000"})])),
    )
    step("create partitions", lambda: wait(admin.create_partitions([NewPartitions(other, 2)])))
    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):

        def produce(codec=codec):
            producer = Producer({"bootstrap.servers": bootstrap, "compression.type": codec, "linger.ms": 5, "acks": "all"})
            for i in range(RECORDS_PER_PRODUCER):
                producer.produce(topic, key=f"k{i}".encode(), value=f"{codec} {i}".encode() * 3, headers=[("h", b"v")], partition=i % 2)
            assert producer.flush(STEP_TIMEOUT_S) == 0

        step(f"produce {codec}", produce)
    step(
        "list offsets",
        lambda: wait(admin.list_offsets({TopicPartition(topic, 0): OffsetSpec.latest(), TopicPartition(topic, 1): OffsetSpec.earliest()})),
    )

    def consume(group_id, protocol):
        config = {
            "bootstrap.servers": bootstrap,
            "group.id": group_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
        if protocol == "consumer":
            config["group.protocol"] = "consumer"
        else:
            config["session.timeout.ms"] = 6000
            config["heartbeat.interval.ms"] = 500
        consumer = Consumer(config)
        consumer.subscribe([topic])
        got = 0
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while got < RECORDS_PER_PRODUCER and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                got += 1
        consumer.commit(asynchronous=False)
        # Heartbeats while idle.
        for _ in range(4):
            consumer.poll(0.5)
        consumer.committed([TopicPartition(topic, 0)], timeout=STEP_TIMEOUT_S)
        consumer.close()
        assert got > 0, "no record consumed"

    step("classic group consume", lambda: consume(group, "classic"))
    step("consumer-protocol group consume", lambda: consume(f"{prefix}-kip848", "consumer"))
    step("list groups", lambda: admin.list_consumer_groups(request_timeout=STEP_TIMEOUT_S).result(STEP_TIMEOUT_S))
    step("describe groups", lambda: wait(admin.describe_consumer_groups([group, f"{prefix}-kip848"])))
    step(
        "list group offsets",
        lambda: wait(admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])])),
    )
    step(
        "alter group offsets",
        lambda: wait(admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 1)])])),
    )
    step("delete records", lambda: wait(admin.delete_records([TopicPartition(topic, 0, 2)])))
    step("delete groups", lambda: wait(admin.delete_consumer_groups([group])))
    step("delete topics", lambda: wait(admin.delete_topics([other], operation_timeout=STEP_TIMEOUT_S)))


def kafka_python_workload(bootstrap, prefix):
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic

    topic, other, group = f"{prefix}-a", f"{prefix}-b", f"{prefix}-group"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=STEP_TIMEOUT_S * 1000)
    step("create topics", lambda: admin.create_topics([NewTopic(topic, 2, 1), NewTopic(other, 1, 1)]))
    step("describe cluster", lambda: admin.describe_cluster())
    step("describe configs", lambda: admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)]))
    step("alter configs", lambda: admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, other, configs={"retention.ms": "3600000"})]))
    step("create partitions", lambda: admin.create_partitions({other: NewPartitions(2)}))
    step("describe log dirs", lambda: admin.describe_log_dirs())
    for codec in (None, "gzip", "snappy", "lz4", "zstd"):

        def produce(codec=codec):
            producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, acks="all", linger_ms=5)
            for i in range(RECORDS_PER_PRODUCER):
                producer.send(topic, key=f"k{i}".encode(), value=f"{codec} {i}".encode() * 3, headers=[("h", b"v")], partition=i % 2)
            producer.flush(STEP_TIMEOUT_S)
            producer.close(STEP_TIMEOUT_S)

        step(f"produce {codec}", produce)

    def consume():
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            consumer_timeout_ms=STEP_TIMEOUT_S * 500,
            heartbeat_interval_ms=500,
        )
        got = sum(1 for _ in consumer)
        consumer.commit()
        consumer.committed(TopicPartition(topic, 0))
        consumer.close()
        assert got > 0, "no record consumed"

    step("group consume", consume)
    step("list groups", lambda: admin.list_consumer_groups())
    step("describe groups", lambda: admin.describe_consumer_groups([group]))
    step("list group offsets", lambda: admin.list_consumer_group_offsets(group))
    if hasattr(admin, "delete_records"):
        step("delete records", lambda: admin.delete_records({TopicPartition(topic, 0): 1}))
    step("delete groups", lambda: admin.delete_consumer_groups([group]))
    step("delete topics", lambda: admin.delete_topics([other]))
    admin.close()


def aiokafka_workload(bootstrap, prefix):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic, group = f"{prefix}-a", f"{prefix}-group"

    async def admin_steps():
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, 2, 1)])
            await admin.describe_cluster()
            await admin.list_consumer_groups()
        finally:
            await admin.close()

    async def produce(codec):
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, acks="all")
        await producer.start()
        try:
            for i in range(RECORDS_PER_PRODUCER):
                await producer.send(topic, key=f"k{i}".encode(), value=f"{codec} {i}".encode() * 3, headers=[("h", b"v")], partition=i % 2)
            await producer.flush()
        finally:
            await producer.stop()

    async def consume():
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            got = 0
            deadline = time.monotonic() + STEP_TIMEOUT_S
            while got < RECORDS_PER_PRODUCER and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=500)
                got += sum(len(records) for records in batches.values())
            await consumer.commit()
            assert got > 0, "no record consumed"
        finally:
            await consumer.stop()

    step("admin", lambda: asyncio.run(asyncio.wait_for(admin_steps(), STEP_TIMEOUT_S)))
    for codec in (None, "gzip", "snappy", "lz4", "zstd"):
        step(f"produce {codec}", lambda codec=codec: asyncio.run(asyncio.wait_for(produce(codec), STEP_TIMEOUT_S)))
    step("group consume", lambda: asyncio.run(asyncio.wait_for(consume(), STEP_TIMEOUT_S * 2)))


WORKLOADS = {
    "confluent-kafka": confluent_workload,
    "kafka-python": kafka_python_workload,
    "aiokafka": aiokafka_workload,
}


def write_corpus(recorder, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for client, by_api in sorted(recorder.frames.items()):
        path = os.path.join(out_dir, f"{client}.frames")
        count = 0
        with open(path, "wb") as out:
            for (key, version), kept in sorted(by_api.items()):
                for frame in kept.values():
                    out.write(SIZE.pack(len(frame)) + frame)
                    count += 1
        summary = ", ".join(f"{key}v{version}:{len(kept)}" for (key, version), kept in sorted(by_api.items()))
        print(f"{path}: {count} frames, {len({k for k, _ in by_api})} API keys ({summary})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shoal", required=True, help="the shoal binary")
    parser.add_argument("--out", required=True, help="directory for the <client>.frames files")
    parser.add_argument("--clients", default=",".join(WORKLOADS), help="comma-separated subset of " + ",".join(WORKLOADS))
    args = parser.parse_args()

    broker_port, proxy_port = free_port(), free_port()
    recorder = Recorder()
    Proxy(proxy_port, broker_port, recorder).start()
    data_dir = tempfile.mkdtemp(prefix="shoal-capture-")
    log_path = os.path.join(data_dir, "broker.log")
    command = [
        args.shoal,
        "serve",
        "--listen",
        f"{HOST}:{broker_port}",
        "--advertise",
        f"{HOST}:{proxy_port}",
        "--data-dir",
        os.path.join(data_dir, "data"),
    ]
    with open(log_path, "wb") as log:
        broker = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while f"shoal ready on {HOST}:{broker_port}" not in open(log_path, errors="replace").read():
            if broker.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"broker did not start:\n{open(log_path, errors='replace').read()}")
            time.sleep(0.1)
        bootstrap = f"{HOST}:{proxy_port}"
        for client in args.clients.split(","):
            print(f"{client}:")
            with recorder.lock:
                recorder.client = client
            WORKLOADS[client](bootstrap, f"capture-{client}")
        write_corpus(recorder, args.out)
    finally:
        broker.terminate()
        try:
            broker.wait(10)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
