"""Certificate reload on a cluster (issue 17): three shoal nodes whose
client and inter-broker listener is SSL, each with a keystore for its own
address. Kafka's own kafka-configs, bootstrapped at another node, sets
one broker's `listener.name.ssl.ssl.keystore.location` to a new
keystore; the change is committed to the metadata log as a ConfigRecord
for that broker, which applies it: a new TLS handshake with it shows the
new certificate, the other nodes still show theirs, and a connection
opened before keeps working. kafka-configs --describe lists the key as
DYNAMIC_BROKER_CONFIG; a keystore that does not load is refused with
INVALID_REQUEST and changes nothing; a change naming another broker than
the one it reaches is refused as Kafka refuses it, while a topic's change
in the same request (sent to a broker that is not the controller) travels
on to the controller and applies. Restarted, the broker
applies the record again from the metadata log and shows the new
certificate, not its config file's."""

import os
import ssl
import sys

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from cryptography import x509
from cryptography.hazmat.primitives import serialization

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import clients  # noqa: E402
import kafka_tools as kt  # noqa: E402
import kafka_wire  # noqa: E402
from cluster import Cluster  # noqa: E402
from cluster.waiting import SHOAL_NODE, wait_until  # noqa: E402
from conftest import make_temp_dir, remove_temp_dir  # noqa: E402
from test_secure_cluster import Pki  # noqa: E402

pytestmark = [pytest.mark.shoal_only, pytest.mark.timeout(240)]

NODES = 3
KEY = "listener.name.ssl.ssl.keystore.location"
# Every node registered and unfenced on a loaded two-core machine.
SETTLE_WAIT_S = 60.0
# How long the record may take to reach the broker it names.
APPLIED_WITHIN_S = 20.0
API_VERSIONS = 18
INCREMENTAL_ALTER_CONFIGS = 44
RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4
OP_SET = 0
INVALID_REQUEST = 42


def node_command(ca_path):
    overrides = {
        "listeners": "SSL://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": "SSL://{host}:{port}",
        "inter.broker.listener.name": "SSL",
        "listener.security.protocol.map": "SSL:SSL,CONTROLLER:PLAINTEXT",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": "{data_dir}/keystore.pem",
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": ca_path,
        "connections.max.idle.ms": "120000",
    }
    return SHOAL_NODE + " " + " ".join(f"'{key}={value}'" for key, value in overrides.items())


class SslCluster(Cluster):
    """Each node's keystore made for its address before it first starts."""

    def __init__(self, pki):
        super().__init__(NODES, node_command(pki.ca_path), kafka=False)
        self.pki = pki

    def _spawn(self, node):
        keystore = os.path.join(node.data_dir, "keystore.pem")
        if not os.path.exists(keystore):
            self.pki.keystore(node.host, keystore)
        super()._spawn(node)


def keystore_certificate(path):
    """The DER of the first certificate in a PEM keystore."""
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificates(f.read())[0].public_bytes(serialization.Encoding.DER)


def tls_connection(node, pki):
    context = ssl.create_default_context(cafile=pki.ca_path)
    context.check_hostname = False
    return context.wrap_socket(kafka_wire.connect(node.bootstrap), server_hostname=node.host)


def presented(node, pki):
    """The DER certificate a new TLS handshake with `node` shows."""
    with tls_connection(node, pki) as sock:
        return sock.getpeercert(binary_form=True)


def api_versions(sock, correlation_id):
    sock.sendall(kafka_wire.frame(kafka_wire.request_header(API_VERSIONS, 0, correlation_id)))
    return kafka_wire.Reader(kafka_wire.read_response(sock, correlation_id)).take(">h")


def incremental_alter(node, pki, resources):
    """IncrementalAlterConfigs v0 sent to `node`, each resource a
    (type, name, key, value) to SET: each resource's (error code,
    message), in order."""
    body = len(resources).to_bytes(4, "big")
    for kind, name, key, value in resources:
        config = kafka_wire.string(key) + bytes([OP_SET]) + kafka_wire.string(value)
        body += bytes([kind]) + kafka_wire.string(name) + (1).to_bytes(4, "big") + config
    body += b"\x00"  # validate_only
    with tls_connection(node, pki) as sock:
        sock.sendall(kafka_wire.frame(kafka_wire.request_header(INCREMENTAL_ALTER_CONFIGS, 0, 7) + body))
        reader = kafka_wire.Reader(kafka_wire.read_response(sock, 7))
        reader.take(">i")  # throttle_time_ms

        def result():
            code, message = reader.take(">h"), reader.string()
            reader.take(">b")
            reader.string()
            return code, message
        return reader.array(result)


def test_a_reload_reaches_the_broker_it_names_and_survives_its_restart():
    kt.require_tools()
    root = make_temp_dir("shoal-it-reload-")
    pki = Pki(root)
    try:
        with SslCluster(pki) as cluster:
            run_reload(cluster, pki, root)
    finally:
        remove_temp_dir(root)


def run_reload(cluster, pki, root):
    ssl_config = {"security.protocol": "SSL", "ssl.ca.location": pki.ca_path}
    bootstrap = ",".join(node.bootstrap for node in cluster.nodes)
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000,
                         "logger": clients.LIBRDKAFKA_LOG, **ssl_config})
    wait_until(lambda: len(admin.list_topics(timeout=clients.REQUEST_TIMEOUT_S).brokers) == NODES,
               SETTLE_WAIT_S, "three brokers over SSL")
    controller = admin.describe_cluster(request_timeout=clients.REQUEST_TIMEOUT_S).result(
        timeout=clients.REQUEST_TIMEOUT_S).controller.id
    # Broker 2, unless it is the active controller: the change then
    # travels from the broker to another node's controller.
    target = next(node for node in (cluster.nodes[1], cluster.nodes[2]) if node.node_id != controller)
    others = [node for node in cluster.nodes if node is not target]
    before = {node.node_id: presented(node, pki) for node in cluster.nodes}
    for node in cluster.nodes:
        assert before[node.node_id] == keystore_certificate(os.path.join(node.data_dir, "keystore.pem"))

    config_path = os.path.join(root, "client.properties")
    with open(config_path, "w") as f:
        f.write(f"security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={pki.ca_path}\n")

    def configs(*args, expect_ok=True):
        # Bootstrapped at a node other than the one the change names.
        return kt.run(kt.CONFIGS, "--bootstrap-server", others[0].bootstrap, "--command-config", config_path,
                      "--entity-type", "brokers", "--entity-name", target.node_id, *args, expect_ok=expect_ok)

    held = tls_connection(target, pki)
    assert api_versions(held, 1) == 0
    new_path = os.path.join(root, f"keystore-{target.node_id}-new.pem")
    pki.keystore(target.host, new_path)
    renewed = keystore_certificate(new_path)
    assert renewed != before[target.node_id]
    configs("--alter", "--add-config", f"{KEY}={new_path}")
    wait_until(lambda: presented(target, pki) == renewed, APPLIED_WITHIN_S,
               f"broker {target.node_id} showing its new certificate")
    for node in others:
        assert presented(node, pki) == before[node.node_id], f"node {node.node_id} changed its certificate"
    # The connection opened before keeps its session.
    assert api_versions(held, 2) == 0
    held.close()

    described = configs("--describe")
    assert f"Dynamic configs for broker {target.node_id} are:" in described, described
    assert f"{KEY}={new_path} sensitive=false synonyms={{DYNAMIC_BROKER_CONFIG:{KEY}={new_path}" in described, \
        described

    # A keystore that does not load is refused, and nothing changes.
    broken = os.path.join(root, "broken.pem")
    with open(broken, "w") as f:
        f.write("not a keystore\n")
    proc = configs("--alter", "--add-config", f"{KEY}={broken}", expect_ok=False)
    assert proc.returncode != 0
    assert "InvalidRequestException" in proc.stderr, proc.stderr[-3000:]
    assert presented(target, pki) == renewed
    assert f"{KEY}={new_path}" in configs("--describe")

    # A change reaching another broker than the one it names is refused
    # there, as Kafka's broker refuses it; a topic's change in the same
    # request goes on to the controller and is applied.
    topic = "reloaded"
    admin.create_topics([NewTopic(topic, 1, NODES)])[topic].result(timeout=clients.REQUEST_TIMEOUT_S)
    wrong_broker = (RESOURCE_BROKER, str(others[0].node_id), KEY, new_path)
    retention = (RESOURCE_TOPIC, topic, "retention.ms", "123456")
    answers = wait_until(lambda: (lambda a: a if a[1][0] == 0 else None)(
        incremental_alter(target, pki, [wrong_broker, retention])), APPLIED_WITHIN_S, "the topic's change applied")
    assert answers[0] == (INVALID_REQUEST, f"Unexpected broker id, expected {target.node_id}, "
                                           f"but received {others[0].node_id}"), answers
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    described_topic = admin.describe_configs([resource])[resource].result(timeout=clients.REQUEST_TIMEOUT_S)
    assert described_topic["retention.ms"].value == "123456"

    # Restarted, the broker applies the record from the metadata log: the
    # new certificate, not the config file's.
    cluster.kill9(target.index)
    cluster.restart(target.index)
    wait_until(lambda: presented(target, pki) == renewed, APPLIED_WITHIN_S,
               f"restarted broker {target.node_id} showing its new certificate")
    for node in others:
        assert presented(node, pki) == before[node.node_id]
    for node in cluster.nodes:
        log = "".join(open(path, errors="replace").read() for path in node.log_paths)
        assert "panicked" not in log, f"node {node.node_id} panicked"
