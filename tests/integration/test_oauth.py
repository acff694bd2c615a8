"""SASL/OAUTHBEARER, re-authentication (KIP-368) and certificate reload
(issue 17), configured as Kafka is. One broker per test:

- OAUTHBEARER with Kafka's unsecured-JWS validator: confluent-kafka with
  librdkafka's unsecured token produces and consumes; a token without the
  required scope, and a malformed one on the wire, are refused with RFC
  7628's JSON status then SASL_AUTHENTICATION_FAILED; the Java client with
  its unsecured login module produces and consumes.
- OAUTHBEARER with a JWKS read from a file:// URL: tokens signed by keys
  made here (ES256, RS256) are accepted, one signed by another key or for
  another audience refused; a key rotated into the file is picked up at
  the next refresh.
- Re-authentication with connections.max.reauth.ms=3000: librdkafka and
  the Java client keep their connections across several re-auths; a
  raw-socket client is told the session lifetime, keeps its session by
  re-authenticating, is refused a change of principal, and is closed at
  its first request after the lifetime when it does not re-authenticate.
- Certificate reload: kafka-configs sets the SSL listener's keystore
  location on the broker entity; new handshakes see the new certificate,
  an open connection keeps working; setting the same path again reloads
  a file replaced in place; a certificate for another subject is refused.
"""

import base64
import http.server
import json
import os
import ssl
import struct
import threading
import time

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

import clients
import kafka_tools as kt
import kafka_wire
from conftest import HOST, Broker, make_temp_dir, remove_temp_dir
from test_tls import TlsBroker, _certificate, _name, _pem_cert, _pem_key, broker_overrides, make_pki

pytestmark = [pytest.mark.timeout(180), pytest.mark.shoal_only]

TIMEOUT_S = 15
OAUTH_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
ADMIN_PASSWORD = "admin-pw-3f1a"
ALICE_PASSWORD = "alice-pw-8b2c"
REQUIRED_SCOPE = "kafka"
REAUTH_MS = 3000
# Kafka's floor for sasl.oauthbearer.jwks.endpoint.refresh.ms.
JWKS_REFRESH_MS = 10_000
AUDIENCE = "shoal-test"
ISSUER = "https://issuer.test"
# Kafka's protocol numbers.
METADATA = 3
SASL_HANDSHAKE = 17
API_VERSIONS = 18
SASL_AUTHENTICATE = 36
SASL_AUTHENTICATION_FAILED = 58
EXPIRED_LINE = "its SASL session expired"


def oauth_jaas(required_scope=None):
    scope = f' unsecuredValidatorRequiredScope="{required_scope}"' if required_scope else ""
    return f'{OAUTH_MODULE} required unsecuredLoginStringClaim_sub="admin"{scope};'


def sasl_overrides(mechanisms="OAUTHBEARER,PLAIN", **extra):
    overrides = {
        "listener.security.protocol.map": "PLAINTEXT:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": mechanisms,
        "listener.name.plaintext.oauthbearer.sasl.jaas.config": oauth_jaas(REQUIRED_SCOPE),
        "listener.name.plaintext.plain.sasl.jaas.config": (
            f'{PLAIN_MODULE} required user_admin="{ADMIN_PASSWORD}" user_alice="{ALICE_PASSWORD}";'
        ),
        "group.initial.rebalance.delay.ms": 0,
    }
    overrides.update(extra)
    return overrides


def unsecured(principal, scope=REQUIRED_SCOPE):
    """librdkafka's unsecured-token settings."""
    config = f"principal={principal}" + (f" scope={scope}" if scope else "")
    return {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "OAUTHBEARER",
        "enable.sasl.oauthbearer.unsecure.jwt": True,
        "sasl.oauthbearer.config": config,
    }


def create_topic(bootstrap, topic, auth, partitions=1):
    admin = AdminClient({"bootstrap.servers": bootstrap, "logger": clients.LIBRDKAFKA_LOG, **auth})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    futures[topic].result(timeout=TIMEOUT_S)


def produce(bootstrap, topic, values, auth):
    prod = Producer({"bootstrap.servers": bootstrap, "logger": clients.LIBRDKAFKA_LOG,
                     "message.timeout.ms": 20000, **auth})
    log = clients.DeliveryLog()
    for value in values:
        prod.produce(topic, value=value, partition=0, on_delivery=log)
    clients.flush(prod)
    assert log.errors == []


def consume_values(bootstrap, topic, count, auth):
    got = clients.consume(bootstrap, topic, {0: count}, consumer_config=auth)
    return [m.value() for m in got[0]]


def authentication_error(bootstrap, auth):
    """The first error a producer with `auth` reports."""
    errors = []
    prod = Producer({"bootstrap.servers": bootstrap, "error_cb": errors.append,
                     "logger": clients.LIBRDKAFKA_LOG, **auth})
    prod.produce("refused", b"x")
    for _ in range(75):
        prod.poll(0.2)
        if errors:
            return errors[0]
    raise AssertionError("no error reported")


def read_log(broker):
    with open(broker.log_path) as f:
        return f.read()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsecured_token(claims):
    header = b64url(json.dumps({"alg": "none"}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}."


def client_first(token, authzid=""):
    return f"n,{authzid},\x01auth=Bearer {token}\x01\x01".encode()


# The wire: SaslHandshake v1 and SaslAuthenticate v1 on a raw socket.


def handshake(sock, mechanism, correlation_id):
    body = kafka_wire.string(mechanism)
    sock.sendall(kafka_wire.frame(kafka_wire.request_header(SASL_HANDSHAKE, 1, correlation_id) + body))
    reader = kafka_wire.Reader(kafka_wire.read_response(sock, correlation_id))
    return reader.take(">h")


def authenticate(sock, token, correlation_id):
    """(error code, error message, server token, session lifetime ms)."""
    body = struct.pack(">i", len(token)) + token
    sock.sendall(kafka_wire.frame(kafka_wire.request_header(SASL_AUTHENTICATE, 1, correlation_id) + body))
    reader = kafka_wire.Reader(kafka_wire.read_response(sock, correlation_id))
    error_code = reader.take(">h")
    message = reader.string()
    size = reader.take(">i")
    answer = reader.data[reader.pos : reader.pos + max(size, 0)]
    reader.pos += max(size, 0)
    return error_code, message, answer, reader.take(">q")


def api_versions(sock, correlation_id):
    sock.sendall(kafka_wire.frame(kafka_wire.request_header(API_VERSIONS, 0, correlation_id)))
    return kafka_wire.Reader(kafka_wire.read_response(sock, correlation_id)).take(">h")


def plain(user, password):
    return f"\0{user}\0{password}".encode()


@pytest.fixture
def oauth_broker(broker_factory):
    return broker_factory(overrides=sasl_overrides(), shards=2)


def test_unsecured_tokens_with_confluent_kafka(oauth_broker, topic):
    b = oauth_broker.bootstrap
    alice = unsecured("alice")
    create_topic(b, topic, alice)
    values = [f"v{i}".encode() for i in range(20)]
    produce(b, topic, values, alice)
    assert consume_values(b, topic, len(values), unsecured("bob")) == values
    # A token without the scope the listener requires.
    error = authentication_error(b, unsecured("carol", scope=None))
    assert error.code() == KafkaError._AUTHENTICATION, error
    assert "insufficient_scope" in error.str(), error.str()
    log = read_log(oauth_broker)
    assert "SASL/OAUTHBEARER authentication of connection" in log
    assert "missing a required scope (kafka)" in log


def test_a_refused_token_is_a_json_status_then_the_failure(oauth_broker):
    b = oauth_broker.bootstrap
    now = int(time.time())
    expired = unsecured_token({"sub": "alice", "iat": now - 60, "exp": now - 30, "scope": REQUIRED_SCOPE})
    with kafka_wire.connect(b) as sock:
        assert handshake(sock, "OAUTHBEARER", 1) == 0
        error_code, _, answer, _ = authenticate(sock, client_first(expired), 2)
        assert (error_code, answer) == (0, b'{"status":"invalid_token"}')
        error_code, message, _, _ = authenticate(sock, b"\x01", 3)
        assert (error_code, message) == (SASL_AUTHENTICATION_FAILED, '{"status":"invalid_token"}')
        assert kafka_wire.wait_closed(sock)
    # Not an RFC 7628 message at all: Kafka's generic failure.
    with kafka_wire.connect(b) as sock:
        assert handshake(sock, "OAUTHBEARER", 1) == 0
        error_code, message, _, _ = authenticate(sock, b"n,,auth=Bearer x", 2)
        assert error_code == SASL_AUTHENTICATION_FAILED
        assert "invalid credentials with SASL mechanism OAUTHBEARER" in message
        assert kafka_wire.wait_closed(sock)
    # A valid token: the session lasts until its exp (no reauth setting).
    valid = unsecured_token({"sub": "alice", "iat": now, "exp": now + 100, "scope": REQUIRED_SCOPE})
    with kafka_wire.connect(b) as sock:
        assert handshake(sock, "OAUTHBEARER", 1) == 0
        error_code, _, _, lifetime_ms = authenticate(sock, client_first(valid, "a=alice"), 2)
        assert error_code == 0
        assert 90_000 < lifetime_ms <= 100_000, lifetime_ms
        assert api_versions(sock, 3) == 0
    assert expired not in read_log(oauth_broker)


def java_properties(path, jaas, mechanism="OAUTHBEARER"):
    with open(path, "w") as f:
        f.write(f"security.protocol=SASL_PLAINTEXT\nsasl.mechanism={mechanism}\nsasl.jaas.config={jaas}\n")
    return path


def test_java_client_with_its_unsecured_login_module(oauth_broker, topic, tmp_path):
    kt.require_tools()
    b = oauth_broker.bootstrap
    jaas = f'{OAUTH_MODULE} required unsecuredLoginStringClaim_sub="dave" unsecuredLoginListClaim_scope=",{REQUIRED_SCOPE}";'
    config = java_properties(tmp_path / "dave.properties", jaas)
    create_topic(b, topic, unsecured("alice"))
    kt.run(kt.CONSOLE_PRODUCER, "--bootstrap-server", b, "--topic", topic, "--command-config", config,
           stdin="one\ntwo\nthree\n")
    out = kt.run(kt.CONSOLE_CONSUMER, "--bootstrap-server", b, "--topic", topic, "--from-beginning",
                 "--max-messages", 3, "--timeout-ms", 20000, "--command-config", config)
    assert out.split() == ["one", "two", "three"]


# JWKS.


class Signer:
    """A key of the test's identity provider and its JWK."""

    def __init__(self, kind, kid):
        self.kind, self.kid = kind, kid
        if kind == "ES256":
            self.key = ec.generate_private_key(ec.SECP256R1())
            numbers = self.key.public_key().public_numbers()
            self.jwk = {"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
                        "x": b64url(numbers.x.to_bytes(32, "big")), "y": b64url(numbers.y.to_bytes(32, "big"))}
        else:
            self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            numbers = self.key.public_key().public_numbers()
            self.jwk = {"kty": "RSA", "kid": kid, "alg": "RS256",
                        "n": b64url(numbers.n.to_bytes(256, "big")), "e": b64url(numbers.e.to_bytes(3, "big"))}

    def token(self, sub, audience=AUDIENCE, lifetime_s=600, kid=None):
        now = int(time.time())
        header = {"alg": self.kind, "kid": kid or self.kid, "typ": "JWT"}
        claims = {"sub": sub, "iat": now, "exp": now + lifetime_s, "aud": audience, "iss": ISSUER}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        if self.kind == "ES256":
            r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        else:
            signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}"


def write_jwks(path, signers):
    with open(path + ".tmp", "w") as f:
        json.dump({"keys": [s.jwk for s in signers]}, f)
    os.replace(path + ".tmp", path)


def bearer(token, principal="client"):
    """confluent-kafka settings that log in with `token`."""
    return {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "OAUTHBEARER",
        "oauth_cb": lambda _config: (token, time.time() + 600, principal),
    }


def test_jwks_from_a_file_url(broker_factory, topic, tmp_path):
    es, rs, other = Signer("ES256", "es-1"), Signer("RS256", "rs-1"), Signer("ES256", "es-2")
    jwks = str(tmp_path / "jwks.json")
    write_jwks(jwks, [es, rs])
    broker = broker_factory(overrides=sasl_overrides(
        mechanisms="OAUTHBEARER",
        **{
            "sasl.oauthbearer.jwks.endpoint.url": f"file://{jwks}",
            "sasl.oauthbearer.jwks.endpoint.refresh.ms": JWKS_REFRESH_MS,
            "sasl.oauthbearer.expected.audience": AUDIENCE,
            "sasl.oauthbearer.expected.issuer": ISSUER,
            "listener.name.plaintext.oauthbearer.sasl.server.callback.handler.class":
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
        }), shards=2)
    b = broker.bootstrap
    create_topic(b, topic, bearer(es.token("alice")))
    produce(b, topic, [b"es256"], bearer(es.token("alice")))
    produce(b, topic, [b"rs256"], bearer(rs.token("bob")))
    assert consume_values(b, topic, 2, bearer(rs.token("bob"))) == [b"es256", b"rs256"]
    for refused in [other.token("mallory"), es.token("alice", audience="elsewhere"),
                    other.token("mallory", kid="es-1"), unsecured_token({"sub": "x", "exp": 2**40})]:
        error = authentication_error(b, bearer(refused))
        assert error.code() == KafkaError._AUTHENTICATION, error
        assert "invalid_token" in error.str(), error.str()
    log = read_log(broker)
    assert "no key of the JWKS matches" in log and "signature does not verify" in log
    assert "Audience (aud)" in log
    # A key rotated into the file is used after the next refresh.
    write_jwks(jwks, [es, rs, other])
    deadline = time.monotonic() + JWKS_REFRESH_MS / 1000 + 10
    while True:
        try:
            produce(b, topic, [b"rotated"], {**bearer(other.token("carol")), "message.timeout.ms": 3000})
            break
        except AssertionError:
            assert time.monotonic() < deadline, "the rotated key was never accepted"
            time.sleep(1)


class JwksServer:
    """An HTTPS server of one JWKS document, its certificate from the test CA."""

    def __init__(self, pki, document):
        body = json.dumps(document).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200 if self.path == "/jwks.json" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki["keystore"])
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://{HOST}:{self.server.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_jwks_from_an_https_url(broker_factory, topic, tmp_path, monkeypatch):
    pki = make_pki(str(tmp_path))
    signer = Signer("ES256", "https-1")
    server = JwksServer(pki, {"keys": [signer.jwk]})
    try:
        # shoal trusts the CA bundle SSL_CERT_FILE names: the test CA here.
        monkeypatch.setenv("SSL_CERT_FILE", pki["ca"])
        broker = broker_factory(overrides=sasl_overrides(
            mechanisms="OAUTHBEARER", **{"sasl.oauthbearer.jwks.endpoint.url": server.url}), shards=1)
        b = broker.bootstrap
        create_topic(b, topic, bearer(signer.token("alice")))
        produce(b, topic, [b"over-https"], bearer(signer.token("alice")))
        assert consume_values(b, topic, 1, bearer(signer.token("alice"))) == [b"over-https"]
        assert "1 OAUTHBEARER keys from https://" in read_log(broker)
    finally:
        server.close()


def test_a_broker_refuses_an_unreadable_jwks_at_start(tmp_path):
    root = make_temp_dir("shoal-it-")
    try:
        broker = Broker(root, overrides=sasl_overrides(
            mechanisms="OAUTHBEARER", **{"sasl.oauthbearer.jwks.endpoint.url": f"file://{tmp_path}/none.json"}))
        proc = broker.spawn()
        assert proc.wait(timeout=TIMEOUT_S) != 0
        assert "sasl.oauthbearer.jwks.endpoint.url" in read_log(broker)
    finally:
        remove_temp_dir(root)


# Re-authentication.


@pytest.fixture
def reauth_broker(broker_factory):
    return broker_factory(overrides=sasl_overrides(**{"connections.max.reauth.ms": REAUTH_MS}), shards=2)


def test_a_raw_client_reauthenticates_or_is_closed(reauth_broker):
    b = reauth_broker.bootstrap
    with kafka_wire.connect(b) as sock:
        assert handshake(sock, "PLAIN", 1) == 0
        error_code, _, _, lifetime_ms = authenticate(sock, plain("alice", ALICE_PASSWORD), 2)
        assert (error_code, lifetime_ms) == (0, REAUTH_MS)
        # Re-authenticating within the lifetime, three times over twice
        # the lifetime: the session goes on.
        correlation_id = 3
        for _ in range(3):
            time.sleep(REAUTH_MS / 1000 * 0.6)
            assert handshake(sock, "PLAIN", correlation_id) == 0
            error_code, _, _, lifetime_ms = authenticate(sock, plain("alice", ALICE_PASSWORD), correlation_id + 1)
            assert (error_code, lifetime_ms) == (0, REAUTH_MS)
            assert api_versions(sock, correlation_id + 2) == 0
            correlation_id += 3
        # Past the lifetime without re-authenticating: closed at the next request.
        time.sleep(REAUTH_MS / 1000 + 0.5)
        sock.sendall(kafka_wire.frame(kafka_wire.request_header(METADATA, 1, 99) + struct.pack(">i", -1)))
        assert kafka_wire.wait_closed(sock)
    # Another principal, or another mechanism, on re-authentication is refused.
    with kafka_wire.connect(b) as sock:
        assert handshake(sock, "PLAIN", 1) == 0
        assert authenticate(sock, plain("alice", ALICE_PASSWORD), 2)[0] == 0
        assert handshake(sock, "PLAIN", 3) == 0
        error_code, message, _, _ = authenticate(sock, plain("admin", ADMIN_PASSWORD), 4)
        assert error_code == SASL_AUTHENTICATION_FAILED
        assert message == "Cannot change principals during re-authentication from User.alice: User.admin"
        assert kafka_wire.wait_closed(sock)
    with kafka_wire.connect(b) as sock:
        assert handshake(sock, "PLAIN", 1) == 0
        assert authenticate(sock, plain("alice", ALICE_PASSWORD), 2)[0] == 0
        assert handshake(sock, "OAUTHBEARER", 3) == 0
        error_code, message, _, _ = authenticate(sock, client_first("x.y."), 4)
        assert error_code == SASL_AUTHENTICATION_FAILED
        assert "not supported for re-authentication of mechanism 'PLAIN'" in message
        assert kafka_wire.wait_closed(sock)
    assert EXPIRED_LINE in read_log(reauth_broker)


def test_librdkafka_keeps_its_connection_across_reauthentications(reauth_broker, topic):
    b = reauth_broker.bootstrap
    auth = unsecured("alice")
    create_topic(b, topic, auth)
    stats = []
    prod = Producer({"bootstrap.servers": b, "logger": clients.LIBRDKAFKA_LOG, "linger.ms": 5,
                     "statistics.interval.ms": 500, "stats_cb": stats.append, **auth})
    log = clients.DeliveryLog()
    produced = []
    # Four lifetimes of steady produce requests.
    deadline = time.monotonic() + 4 * REAUTH_MS / 1000
    i = 0
    while time.monotonic() < deadline:
        value = f"r{i}".encode()
        prod.produce(topic, value=value, partition=0, on_delivery=log)
        produced.append(value)
        prod.poll(0.05)
        i += 1
    clients.flush(prod)
    assert log.errors == []
    connects = [broker["connects"] for broker in json.loads(stats[-1])["brokers"].values()
                if broker["nodeid"] >= 0]
    # One connection per broker the whole time: re-authenticated, never closed.
    assert connects and max(connects) == 1, connects
    assert consume_values(b, topic, len(produced), auth) == produced
    assert EXPIRED_LINE not in read_log(reauth_broker)


def test_the_java_client_reauthenticates(reauth_broker, topic, tmp_path):
    kt.require_tools()
    b = reauth_broker.bootstrap
    config = java_properties(tmp_path / "alice.properties",
                             f'{PLAIN_MODULE} required username="alice" password="{ALICE_PASSWORD}";', "PLAIN")
    create_topic(b, topic, unsecured("alice"))
    values = [f"j{i}" for i in range(5)]
    produce(b, topic, [v.encode() for v in values], unsecured("alice"))
    # The consumer waits for one record more than there are, fetching the
    # whole time: three lifetimes of requests on one session.
    proc = kt.run(kt.CONSOLE_CONSUMER, "--bootstrap-server", b, "--topic", topic, "--from-beginning",
                  "--max-messages", len(values) + 1, "--timeout-ms", 3 * REAUTH_MS, "--command-config", config,
                  expect_ok=False)
    assert proc.stdout.split() == values, proc.stderr[-2000:]
    assert EXPIRED_LINE not in read_log(reauth_broker)


# Certificate reload.


def server_certificate(bootstrap, ca_path):
    """The DER certificate a new TLS handshake with `bootstrap` shows."""
    context = ssl.create_default_context(cafile=ca_path)
    context.check_hostname = False
    with kafka_wire.connect(bootstrap) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.getpeercert(binary_form=True)


def issue_keystore(pki, path, common_name="localhost"):
    """A new server key and certificate for `common_name`, signed by the
    test CA, written as a PEM keystore to `path`; its DER certificate."""
    ca_cert = x509.load_pem_x509_certificate(open(pki["ca"], "rb").read())
    ca_key = serialization.load_pem_private_key(open(pki["ca_key"], "rb").read(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(_name([(NameOID.COMMON_NAME, common_name)]), ca_cert.subject, key.public_key(), ca_key,
                        sans=[x509.DNSName("localhost")])
    with open(path + ".tmp", "wb") as f:
        f.write(_pem_key(key) + _pem_cert(cert))
    os.replace(path + ".tmp", path)
    return cert.public_bytes(serialization.Encoding.DER)


def test_certificate_reload_with_kafka_configs(tmp_path):
    kt.require_tools()
    root = make_temp_dir("shoal-it-")
    pki = make_pki(str(tmp_path))
    # Connections stay open across the tool runs (the module's idle
    # bound is short for its own stalled-handshake test).
    broker = TlsBroker(root, {**broker_overrides(pki), "connections.max.idle.ms": 120_000})
    try:
        broker.start()
        ssl_bootstrap = broker.ssl_bootstrap
        before = server_certificate(ssl_bootstrap, pki["ca"])
        key = "listener.name.ssl.ssl.keystore.location"
        # An open connection, to see it keeps working after the reload.
        context = ssl.create_default_context(cafile=pki["ca"])
        context.check_hostname = False
        held = context.wrap_socket(kafka_wire.connect(ssl_bootstrap), server_hostname="localhost")
        assert api_versions(held, 1) == 0

        def alter(value, expect_ok=True):
            return kt.run(kt.CONFIGS, "--bootstrap-server", broker.bootstrap, "--entity-type", "brokers",
                          "--entity-name", node_id(broker), "--alter", "--add-config", f"{key}={value}",
                          expect_ok=expect_ok)

        new_path = str(tmp_path / "keystore-2.pem")
        second = issue_keystore(pki, new_path)
        alter(new_path)
        assert server_certificate(ssl_bootstrap, pki["ca"]) == second != before
        assert api_versions(held, 2) == 0
        # The same path again, after the file was replaced in place.
        third = issue_keystore(pki, new_path)
        alter(new_path)
        assert server_certificate(ssl_bootstrap, pki["ca"]) == third
        # A certificate for another subject is refused; the old one stays.
        other_path = str(tmp_path / "keystore-other.pem")
        issue_keystore(pki, other_path, common_name="elsewhere")
        proc = alter(other_path, expect_ok=False)
        assert proc.returncode != 0
        assert "DistinguishedName does not match" in proc.stdout + proc.stderr
        assert server_certificate(ssl_bootstrap, pki["ca"]) == third
        # At the cluster-default level it is refused, as Kafka refuses it.
        proc = kt.run(kt.CONFIGS, "--bootstrap-server", broker.bootstrap, "--entity-type", "brokers",
                      "--entity-default", "--alter", "--add-config", f"{key}={new_path}", expect_ok=False)
        assert proc.returncode != 0
        assert "default cluster level" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        held.close()
    finally:
        broker.close()
        panics = broker.panic_lines()
        remove_temp_dir(root)
        assert not panics, "broker panicked:\n" + "\n".join(panics[:20])


def node_id(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, "logger": clients.LIBRDKAFKA_LOG})
    return str(admin.describe_cluster().result(timeout=TIMEOUT_S).nodes[0].id)
