"""TLS listeners configured as Kafka's: one broker (for the module) with a
PLAINTEXT listener, an SSL listener and a mutual-TLS listener (the same
`ssl.*` keys, with `listener.name.mtls.ssl.client.auth=required` and a
principal mapping rule), PEM files made here with the `cryptography`
package. confluent-kafka, the Java client (Kafka's console tools) and
kafka-python produce and consume over TLS; a client without a certificate
is refused on the mutual-TLS listener and one with a certificate is logged
under its mapped principal; plaintext, garbage and truncated handshakes on
the TLS port each close that connection and nothing else. Configurations
shoal cannot serve are refused at start with the reason."""

import datetime
import ipaddress
import os
import random
import socket
import ssl
import subprocess
import time

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import kafka_tools as kt
import kafka_wire
from clients import CONSUME_TIMEOUT_S, REQUEST_TIMEOUT_S, consume, create_topic, producer, flush
from conftest import HOST, Broker, free_port, make_temp_dir, remove_temp_dir, shoal_bin

pytestmark = [pytest.mark.timeout(180), pytest.mark.shoal_only]

# The stalled-handshake bound is min(connections.max.idle.ms, 10 s): a
# short idle bound keeps that test short.
IDLE_MS = 3000
# Fuzz rounds against the TLS port, each a fresh connection.
FUZZ_CONNECTIONS = 60
FUZZ_SEED = 17
CLIENT_DN = "CN=alice,OU=eng,O=corp"
# Maps CN=<name>,OU=eng,... to <name>, upper-cased.
MAPPING_RULES = "RULE:^CN=([^,]*),OU=eng,.*$/$1/U,DEFAULT"


def _name(dn_parts):
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in dn_parts])


def _certificate(subject, issuer, public_key, signing_key, ca=False, sans=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _pem_key(key, password=None):
    encryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def _pem_cert(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


# `ssl.key.password` of the encrypted keystore.
KEY_PASSWORD = "keystore-pw-5c1e"


def make_pki(root):
    """A CA; the server's keystore (key and chain in one PEM file, SANs
    localhost and 127.0.0.1); a client key and certificate with subject
    CLIENT_DN; the server's keystore with its key encrypted (PKCS#8,
    with KEY_PASSWORD); the CA's
    key, to issue more (test_oauth.py's certificate reload). Paths."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name([(NameOID.COMMON_NAME, "shoal-test-ca")])
    ca = _certificate(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate(
        _name([(NameOID.COMMON_NAME, "localhost")]),
        ca_name,
        server_key.public_key(),
        ca_key,
        sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))],
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _certificate(
        _name([(NameOID.ORGANIZATION_NAME, "corp"), (NameOID.ORGANIZATIONAL_UNIT_NAME, "eng"),
               (NameOID.COMMON_NAME, "alice")]),
        ca_name,
        client_key.public_key(),
        ca_key,
    )
    files = {
        "ca": _pem_cert(ca),
        "ca_key": _pem_key(ca_key),
        "keystore": _pem_key(server_key) + _pem_cert(server) + _pem_cert(ca),
        "encrypted_keystore": _pem_key(server_key, KEY_PASSWORD.encode()) + _pem_cert(server),
        "client_cert": _pem_cert(client),
        "client_key": _pem_key(client_key),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = os.path.join(root, f"{name}.pem")
        with open(paths[name], "wb") as f:
            f.write(data)
    return paths


class TlsBroker(Broker):
    """A broker with PLAINTEXT (the bootstrap), SSL and MTLS listeners."""

    def __init__(self, root_dir, overrides):
        super().__init__(root_dir, overrides=overrides, shards=2)
        self.ssl_port = free_port()
        self.mtls_port = free_port()
        self.ssl_bootstrap = f"{HOST}:{self.ssl_port}"
        self.mtls_bootstrap = f"{HOST}:{self.mtls_port}"

    def command(self):
        listeners = (
            f"PLAINTEXT://{self.bootstrap},SSL://{self.ssl_bootstrap},MTLS://{self.mtls_bootstrap}"
        )
        command = super().command()
        for flag in ("--listen", "--advertise"):
            command[command.index(flag) + 1] = listeners
        return command


@pytest.fixture(scope="module")
def pki():
    root = make_temp_dir("shoal-tls-")
    try:
        yield make_pki(root)
    finally:
        remove_temp_dir(root)


def broker_overrides(pki):
    return {
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SSL:SSL,MTLS:SSL",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": pki["keystore"],
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": pki["ca"],
        "listener.name.mtls.ssl.client.auth": "required",
        "listener.name.mtls.ssl.principal.mapping.rules": MAPPING_RULES,
        "connections.max.idle.ms": IDLE_MS,
        "group.initial.rebalance.delay.ms": 0,
    }


@pytest.fixture(scope="module")
def tls_broker(pki):
    root = make_temp_dir("shoal-it-")
    broker = TlsBroker(root, broker_overrides(pki))
    try:
        yield broker.start()
    finally:
        broker.close()
        panics = broker.panic_lines()
        remove_temp_dir(root)
        assert not panics, "broker panicked:\n" + "\n".join(panics[:20])


def ssl_config(pki, with_certificate=False):
    config = {"security.protocol": "SSL", "ssl.ca.location": pki["ca"]}
    if with_certificate:
        config["ssl.certificate.location"] = pki["client_cert"]
        config["ssl.key.location"] = pki["client_key"]
    return config


def produce_values(bootstrap, topic, values, config):
    prod = producer(bootstrap, **{k.replace(".", "_"): v for k, v in config.items()})
    errors = []
    for v in values:
        prod.produce(topic, value=v, partition=0, on_delivery=lambda err, _: err and errors.append(err))
        prod.poll(0)
    flush(prod)
    assert errors == []


def values(seed, count, size_max):
    rng = random.Random(seed)
    return [rng.randbytes(rng.randrange(1, size_max)) for _ in range(count)]


def test_confluent_produces_and_consumes_over_ssl(tls_broker, pki, topic):
    """Records produced over SSL and over PLAINTEXT come back whole over
    SSL, large fetches included (they leave the broker through the TLS copy
    path, not sendfile); the SSL client is told the SSL port, or its next
    connection would not be TLS."""
    create_topic(tls_broker.bootstrap, topic, 1)
    over_ssl = values("ssl", 400, 20_000)
    over_plaintext = values("plain", 50, 2_000)
    produce_values(tls_broker.ssl_bootstrap, topic, over_ssl, ssl_config(pki))
    produce_values(tls_broker.bootstrap, topic, over_plaintext, {})
    total = len(over_ssl) + len(over_plaintext)
    got = consume(tls_broker.ssl_bootstrap, topic, {0: total}, consumer_config=ssl_config(pki))
    assert [m.value() for m in got[0]] == over_ssl + over_plaintext


def test_mutual_tls_refuses_a_client_without_a_certificate_and_maps_the_subject(tls_broker, pki, topic):
    create_topic(tls_broker.bootstrap, topic, 1)
    prod = producer(tls_broker.mtls_bootstrap, **{k.replace(".", "_"): v for k, v in ssl_config(pki).items()})
    with pytest.raises(Exception):
        prod.list_topics(timeout=5)
    log = read_log(tls_broker)
    assert "on listener MTLS: TLS handshake failed" in log, log[-3000:]

    produce_values(tls_broker.mtls_bootstrap, topic, [b"one", b"two"], ssl_config(pki, with_certificate=True))
    got = consume(tls_broker.mtls_bootstrap, topic, {0: 2},
                  consumer_config=ssl_config(pki, with_certificate=True))
    assert [m.value() for m in got[0]] == [b"one", b"two"]
    assert "on listener MTLS authenticated as User:ALICE" in read_log(tls_broker)


def read_log(broker):
    with open(broker.log_path, encoding="utf-8", errors="replace") as f:
        return f.read()


def test_java_console_tools_over_ssl(tls_broker, pki, topic, tmp_path):
    """Kafka's console producer and consumer with a client config file as
    a Kafka user writes it (PEM truststore)."""
    kt.require_tools()
    config = tmp_path / "client-ssl.properties"
    config.write_text(
        "security.protocol=SSL\n"
        "ssl.truststore.type=PEM\n"
        f"ssl.truststore.location={pki['ca']}\n"
    )
    create_topic(tls_broker.bootstrap, topic, 1)
    sent = [f"java-{i}" for i in range(20)]
    kt.run(kt.CONSOLE_PRODUCER, "--bootstrap-server", tls_broker.ssl_bootstrap, "--topic", topic,
           "--command-config", config, stdin="\n".join(sent) + "\n")
    out = kt.run(kt.CONSOLE_CONSUMER, "--bootstrap-server", tls_broker.ssl_bootstrap, "--topic", topic,
                 "--command-config", config, "--from-beginning", "--max-messages", len(sent),
                 "--timeout-ms", 20000)
    assert out.splitlines() == sent


def test_kafka_python_over_ssl(tls_broker, pki, topic):
    kafka = pytest.importorskip("kafka")
    create_topic(tls_broker.bootstrap, topic, 1)
    common = {"bootstrap_servers": tls_broker.ssl_bootstrap, "security_protocol": "SSL",
              "ssl_cafile": pki["ca"]}
    prod = kafka.KafkaProducer(acks="all", **common)
    for i in range(10):
        prod.send(topic, value=f"kp-{i}".encode(), partition=0)
    prod.flush(timeout=REQUEST_TIMEOUT_S)
    prod.close()
    cons = kafka.KafkaConsumer(auto_offset_reset="earliest", consumer_timeout_ms=int(CONSUME_TIMEOUT_S * 1000),
                               **common)
    cons.assign([kafka.TopicPartition(topic, 0)])
    cons.seek_to_beginning()
    got = []
    deadline = time.monotonic() + CONSUME_TIMEOUT_S
    while len(got) < 10 and time.monotonic() < deadline:
        for records in cons.poll(timeout_ms=500).values():
            got.extend(r.value for r in records)
    cons.close()
    assert got == [f"kp-{i}".encode() for i in range(10)]


def client_hello(server_name="localhost"):
    """The first flight of a real TLS client: its ClientHello record."""
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def send_and_wait_closed(bootstrap, data, close_within_s):
    with kafka_wire.connect(bootstrap) as sock:
        try:
            sock.sendall(data)
        except (ConnectionResetError, BrokenPipeError):
            return True
        return kafka_wire.wait_closed(sock, close_within_s)


def fuzzed_handshake_closes(bootstrap, rng, hello, round_):
    """One fuzz round against a TLS port: random bytes (odd rounds) or a
    cut ClientHello (even ones), then the write side shut; the broker must
    close that connection."""
    data = rng.randbytes(rng.randrange(1, 4096)) if round_ % 2 else hello[: rng.randrange(1, len(hello))]
    with kafka_wire.connect(bootstrap) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        assert kafka_wire.wait_closed(sock, 10), f"round {round_}: still open"


def test_bad_handshakes_close_only_their_connection(tls_broker, pki):
    """A plaintext Kafka request on the TLS port, a TLS client on the
    plaintext port, random bytes and ClientHellos cut anywhere on the TLS
    port, and a handshake left unfinished: each connection is closed; the
    broker keeps answering on both kinds of listener, and a TLS connection
    opened before the flood is served throughout it."""
    context = ssl.create_default_context(cafile=pki["ca"])
    survivor = context.wrap_socket(kafka_wire.connect(tls_broker.ssl_bootstrap), server_hostname="localhost")
    api_versions = kafka_wire.frame(kafka_wire.request_header(kafka_wire.API_VERSIONS, 0, 7))

    assert send_and_wait_closed(tls_broker.ssl_bootstrap, api_versions, 10)
    assert send_and_wait_closed(tls_broker.bootstrap, client_hello(), 10)

    def survivor_answers():
        survivor.sendall(api_versions)
        assert kafka_wire.read_response(survivor, 7)[:2] == b"\x00\x00"

    survivor_answers()
    hello = client_hello()
    rng = random.Random(FUZZ_SEED)
    for round_ in range(FUZZ_CONNECTIONS):
        if round_ % 10 == 0:
            survivor_answers()
        fuzzed_handshake_closes(tls_broker.ssl_bootstrap, rng, hello, round_)
    survivor_answers()
    survivor.close()

    # Half a handshake, then silence: closed by the handshake bound.
    started = time.monotonic()
    assert send_and_wait_closed(tls_broker.ssl_bootstrap, hello[:40], IDLE_MS / 1000 + 10)
    assert time.monotonic() - started < IDLE_MS / 1000 + 5

    assert tls_broker.answers()
    assert tls_broker.is_running()


@pytest.mark.parametrize(
    "overrides, reason",
    [
        ({"ssl.keystore.type": "JKS"}, "ssl.keystore.type=JKS is not supported"),
        ({"ssl.keystore.location": "ENCRYPTED", "ssl.key.password": "not-the-password"},
         "cannot be decrypted with ssl.key.password"),
        ({"ssl.keystore.location": "ENCRYPTED"}, "ssl.key.password is not set"),
        ({"listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SSL:SASL_SSL,MTLS:SSL"},
         "listener SSL uses SASL but no mechanism is enabled"),
        ({"listener.name.mtls.ssl.principal.mapping.rules": "RULE:broken"}, "ssl.principal.mapping.rules"),
    ],
)
def test_configs_shoal_cannot_serve_are_refused_at_start(pki, overrides, reason):
    root = make_temp_dir("shoal-it-")
    try:
        broker = TlsBroker(root, broker_overrides(pki))
        broker.overrides.update(overrides)
        if broker.overrides["ssl.keystore.location"] == "ENCRYPTED":
            broker.overrides["ssl.keystore.location"] = pki["encrypted_keystore"]
        proc = subprocess.run(broker.command(), capture_output=True, text=True, timeout=30)
        assert proc.returncode != 0
        assert reason in proc.stderr + proc.stdout, proc.stderr[-2000:]
        assert "not-the-password" not in proc.stderr + proc.stdout
    finally:
        remove_temp_dir(root)


SCRAM_USER = "carol"
SCRAM_PASSWORD = "carol-scram-pw-77b1"


def add_scram_user(bootstrap, user, password):
    """SCRAM-SHA-512 credentials, made over the PLAINTEXT listener (no
    authorizer: an anonymous client may)."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})
    upsert = UserScramCredentialUpsertion(
        user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), password.encode()
    )
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(timeout=REQUEST_TIMEOUT_S)


def sasl_ssl_config(pki, password):
    return {
        **ssl_config(pki),
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": SCRAM_USER,
        "sasl.password": password,
    }


def test_scram_over_sasl_ssl_beside_plaintext_with_confluent_kafka(pki, topic):
    """A SASL_SSL listener: TLS first, then a SCRAM-SHA-512 login in it.
    Records produced and consumed through it come back whole (large
    fetches through the TLS copy path), the PLAINTEXT listener beside it
    needs no login, and a wrong password is refused with Kafka's error.
    The broker's key is encrypted, opened with `ssl.key.password`."""
    root = make_temp_dir("shoal-it-")
    overrides = broker_overrides(pki)
    overrides["ssl.keystore.location"] = pki["encrypted_keystore"]
    overrides["ssl.key.password"] = KEY_PASSWORD
    overrides["listener.security.protocol.map"] = "PLAINTEXT:PLAINTEXT,SSL:SASL_SSL,MTLS:SSL"
    overrides["sasl.enabled.mechanisms"] = "SCRAM-SHA-512"
    broker = TlsBroker(root, overrides)
    try:
        broker.start()
        add_scram_user(broker.bootstrap, SCRAM_USER, SCRAM_PASSWORD)
        create_topic(broker.bootstrap, topic, 1)
        over_sasl_ssl = values("sasl_ssl", 200, 20_000)
        produce_values(broker.ssl_bootstrap, topic, over_sasl_ssl, sasl_ssl_config(pki, SCRAM_PASSWORD))
        produce_values(broker.bootstrap, topic, [b"plain"], {})
        got = consume(broker.ssl_bootstrap, topic, {0: len(over_sasl_ssl) + 1},
                      consumer_config=sasl_ssl_config(pki, SCRAM_PASSWORD))
        assert [m.value() for m in got[0]] == over_sasl_ssl + [b"plain"]

        errors = []
        refused = Producer({"bootstrap.servers": broker.ssl_bootstrap, "error_cb": errors.append,
                            **sasl_ssl_config(pki, "wrong-pw")})
        for _ in range(50):
            refused.poll(0.2)
            if errors:
                break
        assert errors and errors[0].code() == KafkaError._AUTHENTICATION, errors
        assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in errors[0].str()
        log = read_log(broker)
        assert SCRAM_PASSWORD not in log and "wrong-pw" not in log and KEY_PASSWORD not in log
    finally:
        broker.close()
        panics = broker.panic_lines()
        remove_temp_dir(root)
        assert not panics, "broker panicked:\n" + "\n".join(panics[:20])
