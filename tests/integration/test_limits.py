"""message.max.bytes and socket.request.max.bytes."""

import random
import struct

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import ConfigResource, ResourceType

import clients
import kafka_wire


MESSAGE_MAX_BYTES = 20_000
SOCKET_REQUEST_MAX_BYTES = 200_000


@pytest.fixture
def limited_broker(broker_factory):
    return broker_factory(
        overrides={
            "message.max.bytes": MESSAGE_MAX_BYTES,
            "socket.request.max.bytes": SOCKET_REQUEST_MAX_BYTES,
        }
    )


def test_record_over_message_max_bytes_is_refused(limited_broker, topic):
    bootstrap = limited_broker.bootstrap
    clients.create_topic(bootstrap, topic, 1)
    rng = random.Random(5)
    # Incompressible, so the batch stays over the limit whatever the codec.
    too_big = rng.randbytes(MESSAGE_MAX_BYTES + 1000)

    prod = clients.producer(bootstrap, compression_type="none", linger_ms=0, message_send_max_retries=0)
    log = clients.DeliveryLog()
    prod.produce(topic, value=b"before", partition=0, on_delivery=log)
    clients.flush(prod)
    prod.produce(topic, value=too_big, partition=0, on_delivery=log)
    clients.flush(prod)
    prod.produce(topic, value=b"after", partition=0, on_delivery=log)
    clients.flush(prod)

    assert [e.code() for e in log.errors] == [KafkaError.MSG_SIZE_TOO_LARGE]
    assert [(p, o, v) for p, o, _, v in log.acked] == [(0, 0, b"before"), (0, 1, b"after")]
    got = clients.consume(bootstrap, topic, {0: 2})[0]
    assert [m.value() for m in got] == [b"before", b"after"]
    limited_broker.answers()


def test_record_just_under_message_max_bytes_is_accepted(limited_broker, topic):
    clients.create_topic(limited_broker.bootstrap, topic, 1)
    value = random.Random(6).randbytes(MESSAGE_MAX_BYTES // 2)
    prod = clients.producer(limited_broker.bootstrap, compression_type="none", linger_ms=0)
    log = clients.DeliveryLog()
    prod.produce(topic, value=value, partition=0, on_delivery=log)
    clients.flush(prod)
    assert log.errors == []
    assert [m.value() for m in clients.consume(limited_broker.bootstrap, topic, {0: 1})[0]] == [value]


@pytest.mark.parametrize("size_bytes", [SOCKET_REQUEST_MAX_BYTES + 1, 100 * SOCKET_REQUEST_MAX_BYTES])
def test_frame_over_socket_request_max_bytes_closes_connection(limited_broker, size_bytes):
    with kafka_wire.connect(limited_broker.bootstrap) as sock:
        # Only the length prefix and a valid-looking header: the broker must
        # refuse on the prefix alone, without waiting for the body.
        sock.sendall(struct.pack(">i", size_bytes) + kafka_wire.request_header(kafka_wire.API_VERSIONS, 0, 1))
        assert kafka_wire.wait_closed(sock), "broker kept the connection open"
    limited_broker.answers()
    assert limited_broker.is_running()



def test_overrides_show_in_broker_configs(limited_broker):
    admin = clients.admin(limited_broker.bootstrap)
    (node_id,) = admin.list_topics(timeout=clients.REQUEST_TIMEOUT_S).brokers
    resource = ConfigResource(ResourceType.BROKER, str(node_id))
    configs = admin.describe_configs([resource], request_timeout=clients.REQUEST_TIMEOUT_S)[resource].result(
        timeout=clients.REQUEST_TIMEOUT_S
    )
    assert configs["message.max.bytes"].value == str(MESSAGE_MAX_BYTES)
    assert configs["socket.request.max.bytes"].value == str(SOCKET_REQUEST_MAX_BYTES)


def test_default_limits_take_a_900_kib_record(broker, topic):
    clients.create_topic(broker.bootstrap, topic, 1)
    value = random.Random(7).randbytes(900 * 1024)
    prod = clients.producer(broker.bootstrap, compression_type="none")
    log = clients.DeliveryLog()
    prod.produce(topic, value=value, partition=0, on_delivery=log)
    clients.flush(prod)
    assert log.errors == []
    assert [m.value() for m in clients.consume(broker.bootstrap, topic, {0: 1})[0]] == [value]
