"""SASL on a SASL_PLAINTEXT listener (issue 17; over TLS, SASL_SSL, in test_tls.py), configured as Kafka is:
PLAIN users from the listener's JAAS entry, SCRAM-SHA-256/512 users made
with AlterUserScramCredentials (confluent-kafka's admin client, Kafka's own
kafka-configs tool) or by `shoal storage format --add-scram`; confluent-kafka,
kafka-python and Kafka's Java console tools authenticate and produce and
consume; a wrong password is refused with Kafka's error; the wire checks of
Kafka's SaslServerAuthenticator (nothing but ApiVersions and SaslHandshake
before authentication, an unknown mechanism answered with the enabled list,
an oversized token refused); no password ever reaches the broker's log."""

import os
import struct
import subprocess
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient,
    NewTopic,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

import clients
import kafka_tools as kt
import kafka_wire
from conftest import HOST, free_port, shoal_bin, wait_ready

pytestmark = pytest.mark.shoal_only

TIMEOUT_S = 15
ADMIN_PASSWORD = "admin-pw-7c1e"
ALICE_PLAIN_PASSWORD = "alice-plain-pw-93ab"
ALICE_SCRAM_PASSWORD = "alice-scram-pw-5d2f"
BOB_SCRAM_PASSWORD = "bob-scram-pw-0a6c"
CAROL_SCRAM_PASSWORD = "carol-scram-pw-4e8b"
WRONG_PASSWORD = "wrong-pw-11dd"
SECRETS = [ADMIN_PASSWORD, ALICE_PLAIN_PASSWORD, ALICE_SCRAM_PASSWORD, BOB_SCRAM_PASSWORD,
           CAROL_SCRAM_PASSWORD, WRONG_PASSWORD]
PLAIN_JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    f'username="admin" password="{ADMIN_PASSWORD}" '
    f'user_admin="{ADMIN_PASSWORD}" user_alice="{ALICE_PLAIN_PASSWORD}";'
)
# Kafka's protocol numbers.
SASL_HANDSHAKE = 17
API_VERSIONS = 18
METADATA = 3
UNSUPPORTED_SASL_MECHANISM = 33
SASL_AUTHENTICATION_FAILED = 58
SCRAM_SHA_512 = ScramMechanism.SCRAM_SHA_512


def sasl_overrides(listener="PLAINTEXT"):
    """The test broker's listener (named PLAINTEXT by the fixture) mapped
    to SASL_PLAINTEXT, with PLAIN and both SCRAM mechanisms."""
    return {
        "listener.security.protocol.map": f"{listener}:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        f"listener.name.{listener.lower()}.plain.sasl.jaas.config": PLAIN_JAAS,
    }


@pytest.fixture
def broker(broker_factory):
    return broker_factory(overrides=sasl_overrides(), shards=2)


def sasl(mechanism, user, password):
    return {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }


def admin(bootstrap, **conf):
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000,
                        "logger": clients.LIBRDKAFKA_LOG, **sasl("PLAIN", "admin", ADMIN_PASSWORD), **conf})


def add_scram_user(bootstrap, user, password, mechanism=SCRAM_SHA_512, iterations=8192):
    client = admin(bootstrap)
    futures = client.alter_user_scram_credentials(
        [UserScramCredentialUpsertion(user, ScramCredentialInfo(mechanism, iterations), password.encode())]
    )
    for future in futures.values():
        future.result(timeout=TIMEOUT_S)


def create_topic(bootstrap, topic, partitions=2):
    client = admin(bootstrap)
    futures = client.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    futures[topic].result(timeout=TIMEOUT_S)


def produce(bootstrap, topic, values, auth):
    prod = clients.producer(bootstrap, **auth)
    log = clients.DeliveryLog()
    for value in values:
        prod.produce(topic, value=value, on_delivery=log)
    clients.flush(prod)
    assert log.errors == []
    return log


def consume_values(bootstrap, topic, count, auth, partitions=2):
    c = clients.consumer(bootstrap, extra_config=auth, **{"auto.offset.reset": "earliest"})
    got = []
    try:
        from confluent_kafka import TopicPartition
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        for _ in range(200):
            for msg in c.consume(num_messages=100, timeout=0.2):
                if msg.error() is None:
                    got.append(msg.value())
            if len(got) >= count:
                break
    finally:
        c.close()
    return sorted(got)


def assert_no_secret_in_log(broker):
    text = "".join(open(path, errors="replace").read() for path in broker.log_paths)
    for secret in SECRETS:
        assert secret not in text, f"a password reached the broker log"


def test_plain_and_scram_with_confluent_kafka_and_kafka_python(broker, topic):
    b = broker.bootstrap
    create_topic(b, topic)
    add_scram_user(b, "alice", ALICE_SCRAM_PASSWORD)
    client = admin(b)
    described = client.describe_user_scram_credentials(["alice"])
    info = described["alice"].result(timeout=TIMEOUT_S)
    assert [(c.mechanism, c.iterations) for c in info.scram_credential_infos] == [(SCRAM_SHA_512, 8192)]

    values = [f"v{i}".encode() for i in range(20)]
    produce(b, topic, values[:10], sasl("SCRAM-SHA-512", "alice", ALICE_SCRAM_PASSWORD))
    produce(b, topic, values[10:], sasl("PLAIN", "alice", ALICE_PLAIN_PASSWORD))
    got = consume_values(b, topic, 20, sasl("SCRAM-SHA-512", "alice", ALICE_SCRAM_PASSWORD))
    assert got == sorted(values)

    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    for mechanism, password in [("SCRAM-SHA-512", ALICE_SCRAM_PASSWORD), ("PLAIN", ALICE_PLAIN_PASSWORD)]:
        auth = dict(bootstrap_servers=b, security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism,
                    sasl_plain_username="alice", sasl_plain_password=password, request_timeout_ms=10000)
        prod = KafkaProducer(**auth)
        prod.send(topic, value=f"kp-{mechanism}".encode(), partition=0).get(timeout=TIMEOUT_S)
        prod.close()
        cons = KafkaConsumer(**auth, enable_auto_commit=False, consumer_timeout_ms=5000)
        cons.assign([TopicPartition(topic, 0)])
        cons.seek_to_beginning()
        read = [m.value for m in cons]
        cons.close()
        assert f"kp-{mechanism}".encode() in read

    # A deleted credential no longer authenticates.
    futures = client.alter_user_scram_credentials([UserScramCredentialDeletion("alice", SCRAM_SHA_512)])
    futures["alice"].result(timeout=TIMEOUT_S)
    with pytest.raises(KafkaException):
        client.describe_user_scram_credentials(["alice"])["alice"].result(timeout=TIMEOUT_S)
    assert_no_secret_in_log(broker)


def authentication_error(bootstrap, auth):
    """The error a confluent-kafka client reports when `auth` is refused."""
    errors = []
    prod = Producer({"bootstrap.servers": bootstrap, "logger": clients.LIBRDKAFKA_LOG, **auth,
                     "error_cb": errors.append})
    for _ in range(50):
        prod.poll(0.2)
        if errors:
            break
    assert errors, "no error reported"
    return errors[0]


def test_wrong_password_and_unknown_user_are_refused_with_kafkas_error(broker):
    b = broker.bootstrap
    add_scram_user(b, "bob", BOB_SCRAM_PASSWORD)
    plain = authentication_error(b, sasl("PLAIN", "alice", WRONG_PASSWORD))
    assert plain.code() == KafkaError._AUTHENTICATION, plain
    assert "Authentication failed: Invalid username or password" in plain.str()
    scram = authentication_error(b, sasl("SCRAM-SHA-512", "bob", WRONG_PASSWORD))
    assert scram.code() == KafkaError._AUTHENTICATION, scram
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in scram.str()
    unknown = authentication_error(b, sasl("SCRAM-SHA-256", "nobody", WRONG_PASSWORD))
    assert unknown.code() == KafkaError._AUTHENTICATION, unknown

    from kafka import KafkaProducer
    from kafka.errors import KafkaError as KafkaPythonError
    # kafka-python logs the broker's SaslAuthenticationFailedError and
    # gives the producer no metadata: the send fails.
    with pytest.raises(KafkaPythonError):
        prod = KafkaProducer(bootstrap_servers=b, security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                             sasl_plain_username="alice", sasl_plain_password=WRONG_PASSWORD,
                             request_timeout_ms=3000, max_block_ms=3000)
        prod.send("refused", b"x").get(timeout=5)
    # The broker served the refused clients and stays up for the rest.
    add_scram_user(b, "bob", BOB_SCRAM_PASSWORD, iterations=4096)
    assert "authentication of connection" in open(broker.log_path).read()
    assert_no_secret_in_log(broker)


def wire_call(sock, api_key, version, correlation_id, body):
    sock.sendall(kafka_wire.frame(kafka_wire.request_header(api_key, version, correlation_id) + body))
    return kafka_wire.Reader(kafka_wire.read_response(sock, correlation_id))


def test_the_gate_answers_only_sasl_before_authentication(broker):
    b = broker.bootstrap
    with kafka_wire.connect(b) as sock:
        reader = wire_call(sock, API_VERSIONS, 0, 1, b"")
        assert reader.take(">h") == 0
        keys = {key for key, _, _ in reader.array(lambda: reader.take(">hhh"))}
        assert SASL_HANDSHAKE in keys
        # After ApiVersions only a handshake: a Metadata request closes.
        sock.sendall(kafka_wire.frame(kafka_wire.request_header(METADATA, 1, 2) + struct.pack(">i", -1)))
        assert kafka_wire.wait_closed(sock)
    with kafka_wire.connect(b) as sock:
        reader = wire_call(sock, SASL_HANDSHAKE, 1, 3, kafka_wire.string("GSSAPI"))
        assert reader.take(">h") == UNSUPPORTED_SASL_MECHANISM
        enabled = reader.array(reader.string)
        assert enabled == ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
        assert kafka_wire.wait_closed(sock)
    # A v0 handshake, then the bare PLAIN token of old clients.
    with kafka_wire.connect(b) as sock:
        reader = wire_call(sock, SASL_HANDSHAKE, 0, 4, kafka_wire.string("PLAIN"))
        assert reader.take(">h") == 0
        sock.sendall(kafka_wire.frame(f"\0admin\0{ADMIN_PASSWORD}".encode()))
        assert kafka_wire.recv_exact(sock, 4, time.monotonic() + TIMEOUT_S) == b"\0\0\0\0"
        reader = wire_call(sock, API_VERSIONS, 0, 5, b"")
        assert reader.take(">h") == 0
    # A token beyond sasl.server.max.receive.size closes before it is read.
    with kafka_wire.connect(b) as sock:
        wire_call(sock, SASL_HANDSHAKE, 0, 6, kafka_wire.string("PLAIN"))
        sock.sendall(struct.pack(">i", 600_000) + b"\0" * 1000)
        assert kafka_wire.wait_closed(sock)
    # Garbage where a request is expected.
    with kafka_wire.connect(b) as sock:
        sock.sendall(kafka_wire.frame(b"\x00\x11\x00\x01"))
        assert kafka_wire.wait_closed(sock)
    add_scram_user(b, "carol", CAROL_SCRAM_PASSWORD)


def test_kafka_configs_and_console_tools_over_scram(broker, topic, tmp_root):
    kt.require_tools()
    b = broker.bootstrap
    admin_config = os.path.join(tmp_root, "admin.properties")
    with open(admin_config, "w") as f:
        f.write("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n")
        f.write("sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="admin" password="{ADMIN_PASSWORD}";\n')
    kt.run(kt.CONFIGS, "--bootstrap-server", b, "--command-config", admin_config, "--alter",
           "--add-config", f"SCRAM-SHA-512=[iterations=8192,password={BOB_SCRAM_PASSWORD}]",
           "--entity-type", "users", "--entity-name", "bob")
    # (kafka-configs --describe of users also asks for client quotas,
    # which shoal does not serve: the admin client describes them.)
    client = admin(b)
    info = client.describe_user_scram_credentials(["bob"])["bob"].result(timeout=TIMEOUT_S)
    assert [(c.mechanism, c.iterations) for c in info.scram_credential_infos] == [(SCRAM_SHA_512, 8192)]

    bob_config = os.path.join(tmp_root, "bob.properties")
    with open(bob_config, "w") as f:
        f.write("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n")
        f.write("sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="bob" password="{BOB_SCRAM_PASSWORD}";\n')
    create_topic(b, topic, partitions=1)
    kt.run(kt.CONSOLE_PRODUCER, "--bootstrap-server", b, "--topic", topic, "--command-config", bob_config,
           stdin="one\ntwo\nthree\n")
    out = kt.run(kt.CONSOLE_CONSUMER, "--bootstrap-server", b, "--topic", topic, "--from-beginning",
                 "--max-messages", 3, "--timeout-ms", 20000, "--command-config", bob_config)
    assert out.split() == ["one", "two", "three"]
    assert_no_secret_in_log(broker)


def test_add_scram_at_format_authenticates_a_combined_node(tmp_root, topic):
    port, controller_port = free_port(), free_port()
    data_dir = os.path.join(tmp_root, "data")
    config = os.path.join(tmp_root, "server.properties")
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{controller_port}",
        "listeners": f"SASL_PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "SCRAM-SHA-256",
        "log.dirs": data_dir,
    }
    with open(config, "w") as f:
        f.writelines(f"{key}={value}\n" for key, value in settings.items())

    def shoal(*args):
        return subprocess.run([shoal_bin(), *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=60)

    cluster_id = shoal("storage", "random-uuid").stdout.strip()
    formatted = shoal("storage", "format", "-t", cluster_id, "-c", config,
                      "--add-scram", f"SCRAM-SHA-256=[name=carol,password={CAROL_SCRAM_PASSWORD}]")
    assert formatted.returncode == 0, formatted.stderr
    log_path = os.path.join(tmp_root, "serve.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([shoal_bin(), "serve", "--config", config, "--shards", "1"],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        bootstrap = f"{HOST}:{port}"
        wait_ready(proc, log_path, bootstrap)
        auth = sasl("SCRAM-SHA-256", "carol", CAROL_SCRAM_PASSWORD)
        client = AdminClient({"bootstrap.servers": bootstrap, **auth})
        client.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(
            timeout=TIMEOUT_S)
        produce(bootstrap, topic, [b"from-format"], auth)
        assert consume_values(bootstrap, topic, 1, auth, partitions=1) == [b"from-format"]
        refused = authentication_error(bootstrap, sasl("SCRAM-SHA-256", "carol", WRONG_PASSWORD))
        assert refused.code() == KafkaError._AUTHENTICATION
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert CAROL_SCRAM_PASSWORD not in open(log_path, errors="replace").read()


def test_a_bad_sasl_config_is_refused_in_one_line(tmp_root):
    def refused(*overrides):
        args = [shoal_bin(), "serve", "--data-dir", os.path.join(tmp_root, "d"), "--listen",
                f"{HOST}:{free_port()}", "--shards", "1"]
        for override in overrides:
            args += ["--override", override]
        result = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
        assert result.returncode != 0, result.stdout
        return result.stderr

    mapped = "listener.security.protocol.map=PLAINTEXT:SASL_PLAINTEXT"
    assert "GSSAPI is not served" in refused(mapped)
    assert "shoal does not serve SASL/GSSAPI" in refused(mapped, "sasl.enabled.mechanisms=GSSAPI")
    assert "plain.sasl.jaas.config is not set" in refused(mapped, "sasl.enabled.mechanisms=PLAIN")
    assert "connections.max.reauth.ms" in refused(mapped, "connections.max.reauth.ms=-1")
    assert "oauthbearer.sasl.jaas.config is not set" in refused(mapped, "sasl.enabled.mechanisms=OAUTHBEARER")
    bad_jaas = refused(mapped, "sasl.enabled.mechanisms=PLAIN",
                       f'listener.name.plaintext.plain.sasl.jaas.config=org.X required user_a="{ADMIN_PASSWORD}"')
    assert "invalid JAAS configuration" in bad_jaas and ADMIN_PASSWORD not in bad_jaas


def wait_listening(port, proc, log_path, timeout_s=20):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, open(log_path, errors="replace").read()
        try:
            kafka_wire.connect(f"{HOST}:{port}", timeout_s=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}:\n" + open(log_path, errors="replace").read())


def test_a_plaintext_listener_beside_the_sasl_one_needs_no_login(tmp_root, topic):
    plain_port, sasl_port = free_port(), free_port()
    args = [shoal_bin(), "serve", "--data-dir", os.path.join(tmp_root, "data"), "--shards", "1"]
    for key, value in {
        "listeners": f"PLAINTEXT://{HOST}:{plain_port},SASL_PLAINTEXT://{HOST}:{sasl_port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
    }.items():
        args += ["--override", f"{key}={value}"]
    log_path = os.path.join(tmp_root, "serve.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_listening(plain_port, proc, log_path)
        wait_listening(sasl_port, proc, log_path)
        plain, secured = f"{HOST}:{plain_port}", f"{HOST}:{sasl_port}"
        produce(plain, topic, [b"no-login"], {})
        auth = sasl("PLAIN", "alice", ALICE_PLAIN_PASSWORD)
        produce(secured, topic, [b"with-login"], auth)
        assert consume_values(secured, topic, 2, auth, partitions=1) == [b"no-login", b"with-login"]
        with kafka_wire.connect(secured) as sock:
            sock.sendall(kafka_wire.frame(kafka_wire.request_header(METADATA, 1, 1) + struct.pack(">i", -1)))
            assert kafka_wire.wait_closed(sock)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
