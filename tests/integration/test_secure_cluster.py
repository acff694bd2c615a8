"""A secured cluster (issue 17): three shoal nodes, every listener
SASL_SSL. The client and inter-broker listener logs in with SCRAM-SHA-512,
the users made at format time (`shoal storage format --add-scram`, as
kafka-storage.sh), the authorizer on and `super.users=User:broker` alone;
the CONTROLLER listener with PLAIN (SCRAM credentials live in the metadata
log the controllers must reach each other to read: Kafka's rule too). The
brokers reach each other and the controllers as TLS clients checking the
node's certificate and log in as `broker` (`sasl.mechanism.inter.broker.protocol`,
`sasl.mechanism.controller.protocol` and the listeners' JAAS entries), so
the quorum forms, brokers register, and topics at RF=3 replicate with a
full ISR; a client user with ACLs produces and consumes, one without is
refused with Kafka's error; a killed follower restarted rejoins the ISR
through the secured fetcher; `shoal topic` and `shoal cluster status`
with `--command-config` work against it; fuzzed TLS and SASL handshakes
against one node leave the cluster healthy (the TLS fuzz of test_tls.py,
on a cluster, plus broken SASL exchanges inside TLS).

Kafka's authorization matrix for the brokers' own APIs: a controller login
that is not a super user is refused BrokerHeartbeat and DescribeQuorum
(CLUSTER_AUTHORIZATION_FAILED), and a client user's fetch naming a replica
id gets TOPIC_AUTHORIZATION_FAILED, while the brokers (`User:broker`) keep
replicating. A produce quota altered through one node reaches every node's
metadata and throttles a producer whose partition another node leads. An
OAUTHBEARER client (librdkafka's unsecured token, enabled beside SCRAM on
the client listener) produces and consumes; such a listener trusts whoever
writes a token, so it belongs in tests only."""

import base64
import hashlib
import hmac
import ipaddress
import os
import random
import socket
import ssl
import struct
import subprocess
import sys
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import clients  # noqa: E402
import kafka_wire  # noqa: E402
from cluster import Cluster  # noqa: E402
from cluster.waiting import SHOAL_NODE, wait_until  # noqa: E402
from conftest import make_temp_dir, remove_temp_dir, shoal_bin  # noqa: E402
from test_quotas import alter_quotas_on, describe_quotas_on, produce_for  # noqa: E402
from test_tls import (  # noqa: E402
    _certificate, _name, _pem_cert, _pem_key, client_hello, fuzzed_handshake_closes,
)

pytestmark = [pytest.mark.shoal_only, pytest.mark.timeout(240)]

NODES = 3
# How long a node may take to list a topic another node created.
LISTED_WITHIN_S = 15
PARTITIONS = 3
BROKER_USER, BROKER_PASSWORD = "broker", "broker-scram-secret"
ALICE, ALICE_PASSWORD = "alice", "alice-scram-secret"
BOB, BOB_PASSWORD = "bob", "bob-scram-secret"
MECHANISM = "SCRAM-SHA-512"
# Every node registered and unfenced on a loaded two-core machine.
SETTLE_WAIT_S = 60.0
# The ISR after a follower is killed (fenced after the session timeout,
# or dropped after the lag bound) and after it comes back.
ISR_WAIT_S = 40.0
# How long a grant may take to reach every partition's leader.
GRANT_WAIT_S = 20.0
# How long a refused client is given to hear its refusal.
DENIAL_WAIT_S = 10
FUZZ_CONNECTIONS = 30
FUZZ_SEED = 1717
FETCH = 1
SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36
DESCRIBE_QUORUM = 55
BROKER_HEARTBEAT = 63
CLUSTER_AUTHORIZATION_FAILED = 31
INTRUDER, INTRUDER_PASSWORD = "intruder", "intruder-plain-secret"
OAUTH_JAAS = ('org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required '
              'unsecuredLoginStringClaim_sub="broker";')
# Bytes per second: far below what a producer over TLS reaches, far above
# one request. The nodes measure over 3 windows of 1 s (test_quotas.py).
PRODUCE_QUOTA = 150_000
QUOTA_RUN_S = 7
QUOTA_WARMUP_S = 2
RATE_SLACK = 1.5
# How long a quota altered through one node may take to reach the others.
QUOTA_SPREAD_S = 15
JAAS = (f'org.apache.kafka.common.security.scram.ScramLoginModule required '
        f'username="{BROKER_USER}" password="{BROKER_PASSWORD}";')
CONTROLLER_PASSWORD = "controller-plain-secret"
CONTROLLER_JAAS = (f'org.apache.kafka.common.security.plain.PlainLoginModule required '
                   f'username="{BROKER_USER}" password="{CONTROLLER_PASSWORD}" '
                   f'user_{BROKER_USER}="{CONTROLLER_PASSWORD}" '
                   f'user_{INTRUDER}="{INTRUDER_PASSWORD}";')


def scram(user, password):
    return f"SCRAM-SHA-512=[name={user},password={password}]"


def node_command(ca_path):
    """shoal-node with every client and inter-broker connection SASL_SSL."""
    overrides = {
        "listeners": "SASL_SSL://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": "SASL_SSL://{host}:{port}",
        "inter.broker.listener.name": "SASL_SSL",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SASL_SSL",
        "sasl.enabled.mechanisms": f"{MECHANISM},OAUTHBEARER",
        "sasl.mechanism.inter.broker.protocol": MECHANISM,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": JAAS,
        "listener.name.sasl_ssl.oauthbearer.sasl.jaas.config": OAUTH_JAAS,
        "quota.window.num": "3",
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": CONTROLLER_JAAS,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": "{data_dir}/keystore.pem",
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": ca_path,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{BROKER_USER}",
        "replica.lag.time.max.ms": "5000",
        "add-scram.broker": scram(BROKER_USER, BROKER_PASSWORD),
        "add-scram.alice": scram(ALICE, ALICE_PASSWORD),
        "add-scram.bob": scram(BOB, BOB_PASSWORD),
    }
    words = [f"'{key}={value}'" for key, value in overrides.items()]
    return SHOAL_NODE + " " + " ".join(words)


class Pki:
    """A CA, and a keystore per node for its own address."""

    def __init__(self, root):
        self.root = root
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca_name = _name([(NameOID.COMMON_NAME, "shoal-cluster-ca")])
        ca = _certificate(self.ca_name, self.ca_name, self.ca_key.public_key(), self.ca_key, ca=True)
        self.ca_pem = _pem_cert(ca)
        self.ca_path = os.path.join(root, "ca.pem")
        with open(self.ca_path, "wb") as f:
            f.write(self.ca_pem)

    def keystore(self, host, path):
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = _certificate(_name([(NameOID.COMMON_NAME, host)]), self.ca_name, key.public_key(),
                                   self.ca_key, sans=[x509.IPAddress(ipaddress.ip_address(host))])
        with open(path, "wb") as f:
            f.write(_pem_key(key) + _pem_cert(certificate) + self.ca_pem)


class SecureCluster(Cluster):
    """The harness's cluster, each node's keystore made for its address
    before it first starts (the addresses are known only then)."""

    def __init__(self, pki):
        super().__init__(NODES, node_command(pki.ca_path), kafka=False)
        self.pki = pki

    def _spawn(self, node):
        keystore = os.path.join(node.data_dir, "keystore.pem")
        if not os.path.exists(keystore):
            self.pki.keystore(node.host, keystore)
        super()._spawn(node)


def auth(pki, user, password):
    return {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": MECHANISM,
        "sasl.username": user,
        "sasl.password": password,
        "ssl.ca.location": pki.ca_path,
    }


def bootstrap_of(cluster):
    return ",".join(node.bootstrap for node in cluster.nodes)


def admin(bootstrap, pki):
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000,
                        "logger": clients.LIBRDKAFKA_LOG, **auth(pki, BROKER_USER, BROKER_PASSWORD)})


def isr_sizes(client, topic):
    """Partition -> ISR size, as the cluster's Metadata says."""
    metadata = client.list_topics(topic, timeout=clients.REQUEST_TIMEOUT_S)
    return {p: len(meta.isrs) for p, meta in metadata.topics[topic].partitions.items()}


def wait_isr(client, topic, size, what):
    wait_until(lambda: (lambda sizes: len(sizes) == PARTITIONS and all(s == size for s in sizes.values()))(
        isr_sizes(client, topic)), ISR_WAIT_S, what)


def produce(bootstrap, topic, values, config):
    prod = clients.producer(bootstrap, **config)
    log = clients.DeliveryLog()
    for i, value in enumerate(values):
        prod.produce(topic, value=value, partition=i % PARTITIONS, on_delivery=log)
    clients.flush(prod)
    assert log.errors == []


def consume(bootstrap, topic, expected, config):
    """The values read from the start of every partition until all of
    `expected` came (a producer's retry may have written one twice)."""
    consumer = clients.consumer(bootstrap, extra_config={**config, "group.id": "readers",
                                                         "auto.offset.reset": "earliest"})
    got = set()
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        deadline = time.monotonic() + clients.CONSUME_TIMEOUT_S
        while not set(expected) <= got and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=100, timeout=0.2):
                if msg.error() is None:
                    got.add(msg.value())
    finally:
        consumer.close()
    return got


def produce_error(bootstrap, topic, config):
    prod = clients.producer(bootstrap, **{"message.timeout.ms": DENIAL_WAIT_S * 1000, **config})
    log = clients.DeliveryLog()
    prod.produce(topic, value=b"v", on_delivery=log)
    clients.flush(prod, DENIAL_WAIT_S + 5)
    return log.errors[0].code() if log.errors else None


def grant(client, topic, user, bootstrap, config, partitions=PARTITIONS):
    """WRITE and READ on the topic (each implying DESCRIBE), READ on the group,
    in one CreateAcls, then waits until every partition's leader lets `user`
    (connecting with `config`) describe the topic. The controller answers
    once the bindings are committed; each broker applies them when the
    record reaches it, a moment later (Kafka's too), and librdkafka takes a
    TOPIC_AUTHORIZATION_FAILED on a produce as final."""
    principal = f"User:{user}"
    bindings = [
        AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, principal, "*",
                   AclOperation.WRITE, AclPermissionType.ALLOW),
        AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, principal, "*",
                   AclOperation.READ, AclPermissionType.ALLOW),
        AclBinding(ResourceType.GROUP, "readers", ResourcePatternType.LITERAL, principal, "*",
                   AclOperation.READ, AclPermissionType.ALLOW),
    ]
    for future in client.create_acls(bindings, request_timeout=clients.REQUEST_TIMEOUT_S).values():
        future.result(timeout=clients.REQUEST_TIMEOUT_S)
    probe = clients.consumer(bootstrap, extra_config={**config, "group.id": "readers"})
    try:
        wait_until(lambda: all(described_at_leader(probe, topic, p) for p in range(partitions)),
                   GRANT_WAIT_S, f"{user}'s ACLs on every leader of {topic}")
    finally:
        probe.close()


def described_at_leader(consumer, topic, partition):
    """Whether the partition's leader answers ListOffsets (DESCRIBE) for the
    consumer's principal. Any refusal is "not yet": TOPIC_AUTHORIZATION_FAILED
    until the grant reaches the leader, and librdkafka's own
    _UNKNOWN_PARTITION until the topic's metadata reaches it (the wait is
    bounded, and says what it waited for)."""
    # librdkafka runs an OAUTHBEARER client's token callback from poll():
    # without one the probe never logs in.
    consumer.poll(0)
    try:
        consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=clients.REQUEST_TIMEOUT_S)
        return True
    except KafkaException:
        return False


def shoal_tool(args, config_path):
    return subprocess.run([shoal_bin(), *args, "--command-config", config_path], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def tls_closed(sock, timeout_s=10):
    """True if the peer ends the TLS connection within timeout_s: EOF, with
    or without close_notify (Python raises for the latter), or a reset."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            return False
        except OSError:
            return True
    return False


def fuzz_handshakes(node, pki):
    """ClientHellos cut anywhere and random bytes on the TLS port; then,
    inside TLS, a SaslHandshake for an unknown mechanism, a SCRAM
    exchange with a garbage token, and a wrong password: each connection
    closed or refused, none crashing the node."""
    hello = client_hello(node.host)
    rng = random.Random(FUZZ_SEED)
    for round_ in range(FUZZ_CONNECTIONS):
        fuzzed_handshake_closes(node.bootstrap, rng, hello, round_)
    context = ssl.create_default_context(cafile=pki.ca_path)

    def tls_call(sock, api_key, version, correlation_id, body):
        sock.sendall(kafka_wire.frame(kafka_wire.request_header(api_key, version, correlation_id) + body))
        return kafka_wire.Reader(kafka_wire.read_response(sock, correlation_id))

    with context.wrap_socket(kafka_wire.connect(node.bootstrap), server_hostname=node.host) as sock:
        reader = tls_call(sock, SASL_HANDSHAKE, 1, 1, kafka_wire.string("GSSAPI"))
        assert reader.take(">h") == KafkaError.UNSUPPORTED_SASL_MECHANISM
    for token in (b"", b"n,,", b"\xff" * 300, rng.randbytes(2000)):
        with context.wrap_socket(kafka_wire.connect(node.bootstrap), server_hostname=node.host) as sock:
            assert tls_call(sock, SASL_HANDSHAKE, 1, 1, kafka_wire.string(MECHANISM)).take(">h") == 0
            body = len(token).to_bytes(4, "big") + token
            try:
                code = tls_call(sock, SASL_AUTHENTICATE, 1, 2, body).take(">h")
            except (ConnectionError, EOFError, OSError):
                code = None  # closed without an answer: refused too
            assert code in (None, KafkaError.SASL_AUTHENTICATION_FAILED), code
            assert tls_closed(sock)


class RawClient:
    """A connection of the test's own over TLS, logged in by hand, for
    the requests no client library sends."""

    def __init__(self, address, pki):
        host = kafka_wire.parse_bootstrap(address)[0]
        context = ssl.create_default_context(cafile=pki.ca_path)
        self.sock = context.wrap_socket(kafka_wire.connect(address), server_hostname=host)
        self.correlation_id = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def call(self, api_key, version, body, flexible=False):
        self.correlation_id += 1
        return kafka_wire.Reader(kafka_wire.call(self.sock, api_key, version, self.correlation_id, body, flexible))

    def authenticate(self, token):
        """SaslAuthenticate v1: the server's answer, which must not be an error."""
        reader = self.call(SASL_AUTHENTICATE, 1, struct.pack(">i", len(token)) + token)
        error_code, message = reader.take(">h"), reader.string()
        assert error_code == 0, message
        size = reader.take(">i")
        return reader.data[reader.pos:reader.pos + size]

    def login(self, mechanism):
        assert self.call(SASL_HANDSHAKE, 1, kafka_wire.string(mechanism)).take(">h") == 0

    def plain(self, user, password):
        self.login("PLAIN")
        self.authenticate(f"\0{user}\0{password}".encode())

    def scram(self, user, password):
        """SCRAM-SHA-512 as RFC 5802's client."""
        self.login(MECHANISM)
        nonce = base64.b64encode(os.urandom(18)).decode()
        first_bare = f"n={user},r={nonce}"
        server_first = self.authenticate(f"n,,{first_bare}".encode()).decode()
        fields = dict(field.split("=", 1) for field in server_first.split(","))
        assert fields["r"].startswith(nonce), server_first
        salted = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(fields["s"]), int(fields["i"]))
        client_key = hmac.new(salted, b"Client Key", "sha512").digest()
        without_proof = f"c=biws,r={fields['r']}"
        auth_message = f"{first_bare},{server_first},{without_proof}".encode()
        signature = hmac.new(hashlib.sha512(client_key).digest(), auth_message, "sha512").digest()
        proof = base64.b64encode(bytes(k ^ s for k, s in zip(client_key, signature))).decode()
        assert self.authenticate(f"{without_proof},p={proof}".encode()).startswith(b"v=")


def cluster_actions_refused(cluster, pki, client, topic):
    """Kafka's authorization matrix for the brokers' own APIs: a
    controller login that is not a super user is refused BrokerHeartbeat
    and DescribeQuorum; alice, who may READ the topic, is refused a fetch
    naming a replica id (a follower's), and served a consumer's."""
    with RawClient(cluster.nodes[0].controller_bootstrap, pki) as raw:
        raw.plain(INTRUDER, INTRUDER_PASSWORD)
        # BrokerHeartbeat v0: broker id, epoch, metadata offset, want fence,
        # want shutdown.
        heartbeat = struct.pack(">iqq??", 2, 1, 0, False, False) + kafka_wire.uvarint(0)
        reader = raw.call(BROKER_HEARTBEAT, 0, heartbeat, flexible=True)
        reader.take(">i")  # throttle_time_ms
        assert reader.take(">h") == CLUSTER_AUTHORIZATION_FAILED
        describe = kafka_wire.compact_array([]) + kafka_wire.uvarint(0)
        assert raw.call(DESCRIBE_QUORUM, 0, describe, flexible=True).take(">h") == CLUSTER_AUTHORIZATION_FAILED
    leader = client.list_topics(topic, timeout=clients.REQUEST_TIMEOUT_S).topics[topic].partitions[0].leader
    node = next(node for node in cluster.nodes if node.node_id == leader)
    with RawClient(node.bootstrap, pki) as raw:
        raw.scram(ALICE, ALICE_PASSWORD)
        for replica_id, expected in ((-1, 0), (2, KafkaError.TOPIC_AUTHORIZATION_FAILED)):
            body = kafka_wire.fetch_request([(topic, 0, 0, 1 << 20)], 4, replica_id=replica_id)
            parts = kafka_wire.parse_fetch_response(raw.call(FETCH, 4, body).data, 4)[2]
            assert parts[(topic, 0)][0] == expected, (replica_id, parts)


def oauth_client_produces_and_consumes(bootstrap, pki, client):
    """librdkafka's unsecured token for alice, on the SASL_SSL listener."""
    topic = "oauth"
    futures = client.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=NODES)],
                                   request_timeout=clients.REQUEST_TIMEOUT_S)
    futures[topic].result(timeout=clients.REQUEST_TIMEOUT_S)
    oauth = {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "OAUTHBEARER",
        "enable.sasl.oauthbearer.unsecure.jwt": True,
        "sasl.oauthbearer.config": f"principal={ALICE}",
        "ssl.ca.location": pki.ca_path,
    }
    # Probed as alice through SCRAM: the same principal, without
    # librdkafka's token callback in the way.
    grant(client, topic, ALICE, bootstrap, auth(pki, ALICE, ALICE_PASSWORD))
    values = [f"oauth-{i}".encode() for i in range(30)]
    produce(bootstrap, topic, values, oauth)
    assert consume(bootstrap, topic, values, oauth) == set(values)


def quota_throttles_on_another_node(cluster, pki, client):
    """alice's producer_byte_rate, altered through a node that does not
    lead the topic's partition, reaches every node and throttles her
    producer at the leader."""
    topic = "quota-led-elsewhere"
    futures = client.create_topics([NewTopic(topic, num_partitions=1, replication_factor=NODES)],
                                   request_timeout=clients.REQUEST_TIMEOUT_S)
    futures[topic].result(timeout=clients.REQUEST_TIMEOUT_S)
    alice = auth(pki, ALICE, ALICE_PASSWORD)
    grant(client, topic, ALICE, bootstrap_of(cluster), alice, partitions=1)
    leader = client.list_topics(topic, timeout=clients.REQUEST_TIMEOUT_S).topics[topic].partitions[0].leader
    through = next(node for node in cluster.nodes if node.node_id != leader)
    with RawClient(through.bootstrap, pki) as raw:
        raw.scram(BROKER_USER, BROKER_PASSWORD)
        assert alter_quotas_on(raw.sock, [("user", ALICE)], [("producer_byte_rate", PRODUCE_QUOTA)]) == (0, None)
    wanted = {(("user", ALICE),): {"producer_byte_rate": float(PRODUCE_QUOTA)}}

    def described(node):
        with RawClient(node.bootstrap, pki) as raw:
            raw.scram(BROKER_USER, BROKER_PASSWORD)
            error_code, entries = describe_quotas_on(raw.sock, [("user", 0, ALICE)], strict=True)
            return error_code == 0 and entries == wanted

    for node in cluster.nodes:
        wait_until(lambda: described(node), QUOTA_SPREAD_S, f"alice's quota in node {node.node_id}'s metadata")
    rate, throttles = produce_for(bootstrap_of(cluster), topic, "alice-producer", QUOTA_RUN_S, QUOTA_WARMUP_S,
                                  config=alice, partitions=1)
    assert rate < RATE_SLACK * PRODUCE_QUOTA, f"{rate:.0f} B/s against a quota of {PRODUCE_QUOTA}"
    assert throttles and max(throttles) > 0, "the producer was told of its throttle"
    with RawClient(through.bootstrap, pki) as raw:
        raw.scram(BROKER_USER, BROKER_PASSWORD)
        assert alter_quotas_on(raw.sock, [("user", ALICE)], [("producer_byte_rate", None)]) == (0, None)


def test_a_cluster_secured_on_every_broker_connection():
    root = make_temp_dir("shoal-it-secure-")
    pki = Pki(root)
    try:
        with SecureCluster(pki) as cluster:
            run_secured_cluster(cluster, pki, root)
    finally:
        remove_temp_dir(root)


def run_secured_cluster(cluster, pki, root):
    bootstrap = bootstrap_of(cluster)
    client = admin(bootstrap, pki)
    wait_until(lambda: len(client.list_topics(timeout=clients.REQUEST_TIMEOUT_S).brokers) == NODES,
               SETTLE_WAIT_S, "three brokers over SASL_SSL")
    topic = "secured"
    futures = client.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=NODES)],
                                   request_timeout=clients.REQUEST_TIMEOUT_S)
    futures[topic].result(timeout=clients.REQUEST_TIMEOUT_S)
    # The followers fetch from the leaders as User:broker (CLUSTER_ACTION).
    wait_isr(client, topic, NODES, "every replica in the ISR")

    # A user with ACLs produces and consumes; one without is refused.
    alice = auth(pki, ALICE, ALICE_PASSWORD)
    grant(client, topic, ALICE, bootstrap, alice)
    first = [f"first-{i}".encode() for i in range(30)]
    produce(bootstrap, topic, first, alice)
    assert consume(bootstrap, topic, first, alice) == set(first)
    bob = auth(pki, BOB, BOB_PASSWORD)
    assert produce_error(bootstrap, topic, bob) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    wrong = auth(pki, ALICE, "not-her-password")
    errors = []
    refused = Producer({"bootstrap.servers": bootstrap, "error_cb": errors.append, **wrong})
    deadline = time.monotonic() + DENIAL_WAIT_S
    while not errors and time.monotonic() < deadline:
        refused.poll(0.2)
    assert errors and errors[0].code() == KafkaError._AUTHENTICATION, errors

    # A follower killed and restarted rejoins the ISR, fetching over SASL_SSL.
    follower = cluster.nodes[NODES - 1]
    cluster.kill9(follower.index)
    survivors = ",".join(node.bootstrap for node in cluster.nodes[:-1])
    survivor_admin = admin(survivors, pki)
    wait_isr(survivor_admin, topic, NODES - 1, "the killed follower out of the ISR")
    second = [f"second-{i}".encode() for i in range(30)]
    produce(survivors, topic, second, alice)
    cluster.restart(follower.index)
    wait_isr(survivor_admin, topic, NODES, "the restarted follower back in the ISR")

    # shoal's own tools with Kafka's client properties.
    config_path = os.path.join(root, "broker.properties")
    with open(config_path, "w") as f:
        f.write(f"security.protocol=SASL_SSL\nsasl.mechanism={MECHANISM}\nsasl.jaas.config={JAAS}\n"
                f"ssl.truststore.type=PEM\nssl.truststore.location={pki.ca_path}\n")
    created = shoal_tool(["topic", "create", "by-tool", "--partitions", "2", "--replication-factor", "3",
                          "--bootstrap", cluster.nodes[0].bootstrap], config_path)
    assert created.returncode == 0, created.stderr
    # Through the node restarted above: it lists the new topic once its
    # copy of the metadata has caught up.
    deadline = time.monotonic() + LISTED_WITHIN_S
    while True:
        listed = shoal_tool(["topic", "list", "--bootstrap", cluster.nodes[2].bootstrap], config_path)
        assert listed.returncode == 0, listed.stderr
        if {"by-tool", topic} <= set(listed.stdout.split()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert {"by-tool", topic} <= set(listed.stdout.split()), listed.stdout
    described = shoal_tool(["topic", "describe", topic, "--bootstrap", cluster.nodes[1].bootstrap], config_path)
    assert described.returncode == 0, described.stderr
    assert "ReplicationFactor: 3" in described.stdout, described.stdout
    plaintext = subprocess.run([shoal_bin(), "topic", "list", "--bootstrap", cluster.nodes[0].bootstrap],
                               capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert plaintext.returncode != 0
    # The quorum through a controller's SASL_SSL listener, logged in with PLAIN.
    controller_config = os.path.join(root, "controller.properties")
    with open(controller_config, "w") as f:
        f.write(f"security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nsasl.jaas.config={CONTROLLER_JAAS}\n"
                f"ssl.truststore.type=PEM\nssl.truststore.location={pki.ca_path}\n")
    controller = cluster.nodes[0]
    status = shoal_tool(["cluster", "status", "--bootstrap-controller",
                         f"{controller.host}:{controller.controller_port}"], controller_config)
    assert status.returncode == 0, status.stderr
    assert "LeaderId" in status.stdout, status.stdout

    # The brokers' own APIs, OAUTHBEARER, and a quota on another node.
    cluster_actions_refused(cluster, pki, client, topic)
    oauth_client_produces_and_consumes(bootstrap, pki, client)
    quota_throttles_on_another_node(cluster, pki, client)

    # Broken handshakes against one node; the cluster carries on.
    fuzz_handshakes(cluster.nodes[0], pki)
    assert all(node.running for node in cluster.nodes)
    third = [f"third-{i}".encode() for i in range(30)]
    produce(bootstrap, topic, third, alice)
    assert consume(bootstrap, topic, first + second + third, alice) == set(first + second + third)
    wait_isr(client, topic, NODES, "every replica in the ISR after the fuzz")
    for node in cluster.nodes:
        log = "".join(open(path, errors="replace").read() for path in node.log_paths)
        for secret in (BROKER_PASSWORD, ALICE_PASSWORD, BOB_PASSWORD, CONTROLLER_PASSWORD, INTRUDER_PASSWORD):
            assert secret not in log, f"a password reached node {node.node_id}'s log"
