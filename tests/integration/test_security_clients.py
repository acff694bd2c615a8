"""Every client family over SASL_SSL, with PLAIN and with SCRAM-SHA-512,
and over mutual TLS (issue 17's client list): confluent-kafka,
kafka-python, aiokafka and the Java client (Kafka's console tools, with a
client config file as Kafka users write it). One broker for the module
with a PLAINTEXT listener (the test's own admin work), a SASL_SSL one and
a mutual-TLS one; each client writes records to a fresh topic over the
secured listener and reads them back whole. test_tls.py covers the
handshakes' failures and principal mapping, test_sasl.py wrong passwords."""

import asyncio
import time

import pytest

import kafka_tools as kt
from clients import CONSUME_TIMEOUT_S, REQUEST_TIMEOUT_S, consume, create_topic, producer, flush
from conftest import make_temp_dir, remove_temp_dir
from test_tls import TlsBroker, add_scram_user, broker_overrides, make_pki

pytestmark = [pytest.mark.timeout(240), pytest.mark.shoal_only]

PLAIN_USER, PLAIN_PASSWORD = "paula", "paula-plain-pw-51"
SCRAM_USER, SCRAM_PASSWORD = "sam", "sam-scram-pw-83"
RECORDS = 12
MECHANISMS = ("PLAIN", "SCRAM-SHA-512")
PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              f'user_{PLAIN_USER}="{PLAIN_PASSWORD}";')


@pytest.fixture(scope="module")
def secure(request):
    """(broker, pki): listener SSL is SASL_SSL (PLAIN and SCRAM-SHA-512),
    MTLS is SSL with client certificates required."""
    root = make_temp_dir("shoal-it-")
    pki = make_pki(root)
    overrides = broker_overrides(pki)
    overrides["listener.security.protocol.map"] = "PLAINTEXT:PLAINTEXT,SSL:SASL_SSL,MTLS:SSL"
    overrides["sasl.enabled.mechanisms"] = ",".join(MECHANISMS)
    overrides["listener.name.ssl.plain.sasl.jaas.config"] = PLAIN_JAAS
    broker = TlsBroker(root, overrides)
    try:
        broker.start()
        add_scram_user(broker.bootstrap, SCRAM_USER, SCRAM_PASSWORD)
        yield broker, pki
    finally:
        broker.close()
        panics = broker.panic_lines()
        remove_temp_dir(root)
        assert not panics, "broker panicked:\n" + "\n".join(panics[:20])


def login(mechanism):
    return (PLAIN_USER, PLAIN_PASSWORD) if mechanism == "PLAIN" else (SCRAM_USER, SCRAM_PASSWORD)


def values(client, kind):
    return [f"{client}-{kind}-{i}".encode() for i in range(RECORDS)]


def fresh_topic(broker, client, kind):
    name = f"sec-{client}-{kind.lower().replace('-', '')}-{time.monotonic_ns() % 10**9}"
    create_topic(broker.bootstrap, name, 1)
    return name


# ---------------------------------------------------------------- confluent-kafka


def confluent_config(pki, kind):
    if kind == "MTLS":
        return {"security.protocol": "SSL", "ssl.ca.location": pki["ca"],
                "ssl.certificate.location": pki["client_cert"], "ssl.key.location": pki["client_key"]}
    user, password = login(kind)
    return {"security.protocol": "SASL_SSL", "ssl.ca.location": pki["ca"], "sasl.mechanism": kind,
            "sasl.username": user, "sasl.password": password}


def run_confluent(bootstrap, topic, pki, kind, sent):
    config = confluent_config(pki, kind)
    prod = producer(bootstrap, **{k.replace(".", "_"): v for k, v in config.items()})
    errors = []
    for value in sent:
        prod.produce(topic, value=value, partition=0, on_delivery=lambda err, _: err and errors.append(err))
    flush(prod)
    assert errors == []
    got = consume(bootstrap, topic, {0: len(sent)}, consumer_config=config)
    return [m.value() for m in got[0]]


# ---------------------------------------------------------------- kafka-python


def kafka_python_config(pki, kind):
    common = {"ssl_cafile": pki["ca"]}
    if kind == "MTLS":
        return {**common, "security_protocol": "SSL", "ssl_certfile": pki["client_cert"],
                "ssl_keyfile": pki["client_key"]}
    user, password = login(kind)
    return {**common, "security_protocol": "SASL_SSL", "sasl_mechanism": kind,
            "sasl_plain_username": user, "sasl_plain_password": password}


def run_kafka_python(bootstrap, topic, pki, kind, sent):
    kafka = pytest.importorskip("kafka")
    config = {"bootstrap_servers": bootstrap, **kafka_python_config(pki, kind)}
    prod = kafka.KafkaProducer(acks="all", **config)
    for value in sent:
        prod.send(topic, value=value, partition=0)
    prod.flush(timeout=REQUEST_TIMEOUT_S)
    prod.close()
    cons = kafka.KafkaConsumer(auto_offset_reset="earliest",
                               consumer_timeout_ms=int(CONSUME_TIMEOUT_S * 1000), **config)
    cons.assign([kafka.TopicPartition(topic, 0)])
    cons.seek_to_beginning()
    got = []
    deadline = time.monotonic() + CONSUME_TIMEOUT_S
    while len(got) < len(sent) and time.monotonic() < deadline:
        for records in cons.poll(timeout_ms=500).values():
            got.extend(r.value for r in records)
    cons.close()
    return got


# ---------------------------------------------------------------- aiokafka


def aiokafka_config(pki, kind):
    helpers = pytest.importorskip("aiokafka.helpers")
    if kind == "MTLS":
        context = helpers.create_ssl_context(cafile=pki["ca"], certfile=pki["client_cert"],
                                             keyfile=pki["client_key"])
        return {"security_protocol": "SSL", "ssl_context": context}
    user, password = login(kind)
    return {"security_protocol": "SASL_SSL", "ssl_context": helpers.create_ssl_context(cafile=pki["ca"]),
            "sasl_mechanism": kind, "sasl_plain_username": user, "sasl_plain_password": password}


async def aiokafka_round_trip(bootstrap, topic, pki, kind, sent):
    aiokafka = pytest.importorskip("aiokafka")
    config = {"bootstrap_servers": bootstrap, "request_timeout_ms": int(REQUEST_TIMEOUT_S * 1000),
              **aiokafka_config(pki, kind)}
    prod = aiokafka.AIOKafkaProducer(acks="all", enable_idempotence=False, **config)
    await prod.start()
    try:
        for value in sent:
            await asyncio.wait_for(await prod.send(topic, value=value, partition=0), REQUEST_TIMEOUT_S)
    finally:
        await prod.stop()
    cons = aiokafka.AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **config)
    await cons.start()
    got = []
    try:
        partition = aiokafka.TopicPartition(topic, 0)
        cons.assign([partition])
        await cons.seek_to_beginning(partition)
        deadline = time.monotonic() + CONSUME_TIMEOUT_S
        while len(got) < len(sent) and time.monotonic() < deadline:
            batches = await cons.getmany(partition, timeout_ms=500)
            got.extend(r.value for records in batches.values() for r in records)
    finally:
        await cons.stop()
    return got


def run_aiokafka(bootstrap, topic, pki, kind, sent):
    return asyncio.run(aiokafka_round_trip(bootstrap, topic, pki, kind, sent))


# ---------------------------------------------------------------- Java


def java_config(pki, kind, path):
    lines = ["ssl.truststore.type=PEM", f"ssl.truststore.location={pki['ca']}"]
    if kind == "MTLS":
        with open(path.with_suffix(".keystore.pem"), "w") as keystore:
            keystore.write(open(pki["client_key"]).read() + open(pki["client_cert"]).read())
        lines += ["security.protocol=SSL", "ssl.keystore.type=PEM",
                  f"ssl.keystore.location={path.with_suffix('.keystore.pem')}"]
    else:
        user, password = login(kind)
        module = ("org.apache.kafka.common.security.plain.PlainLoginModule" if kind == "PLAIN"
                  else "org.apache.kafka.common.security.scram.ScramLoginModule")
        lines += ["security.protocol=SASL_SSL", f"sasl.mechanism={kind}",
                  f'sasl.jaas.config={module} required username="{user}" password="{password}";']
    path.write_text("\n".join(lines) + "\n")
    return path


def run_java(bootstrap, topic, pki, kind, sent, tmp_path):
    kt.require_tools()
    config = java_config(pki, kind, tmp_path / f"client-{kind.lower()}.properties")
    text = [value.decode() for value in sent]
    kt.run(kt.CONSOLE_PRODUCER, "--bootstrap-server", bootstrap, "--topic", topic,
           "--command-config", config, stdin="\n".join(text) + "\n")
    out = kt.run(kt.CONSOLE_CONSUMER, "--bootstrap-server", bootstrap, "--topic", topic,
                 "--command-config", config, "--from-beginning", "--max-messages", len(sent),
                 "--timeout-ms", 20000)
    return [line.encode() for line in out.splitlines()]


CLIENTS = {
    "confluent": lambda b, t, pki, kind, sent, _tmp: run_confluent(b, t, pki, kind, sent),
    "kafka-python": lambda b, t, pki, kind, sent, _tmp: run_kafka_python(b, t, pki, kind, sent),
    "aiokafka": lambda b, t, pki, kind, sent, _tmp: run_aiokafka(b, t, pki, kind, sent),
    "java": run_java,
}


@pytest.mark.parametrize("kind", [*MECHANISMS, "MTLS"])
@pytest.mark.parametrize("client", list(CLIENTS))
def test_each_client_over_sasl_ssl_and_mutual_tls(secure, client, kind, tmp_path):
    broker, pki = secure
    bootstrap = broker.mtls_bootstrap if kind == "MTLS" else broker.ssl_bootstrap
    topic = fresh_topic(broker, client, kind)
    sent = values(client, kind)
    assert CLIENTS[client](bootstrap, topic, pki, kind, sent, tmp_path) == sent
