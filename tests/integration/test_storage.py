"""`shoal storage` and a node started the Kafka way: a cluster id from
`random-uuid`, `format -t ID -c server.properties`, then `serve --config`
with Kafka's KRaft names for one combined broker and controller. Kafka's
refusals: a formatted directory formatted again, an unformatted one served,
another node's directory, bad cluster configs; and the quorums not built
yet (a pure broker: issue 14, increment 4) refused in one line."""

import base64
import os
import signal
import subprocess

import pytest
from confluent_kafka.admin import ConfigResource, ResourceType

import clients
from conftest import HOST, STOP_TIMEOUT_S, free_port, shoal_bin, wait_ready

pytestmark = pytest.mark.shoal_only

COMMAND_TIMEOUT_S = 30
REQUEST_TIMEOUT_S = 10


def shoal(*args):
    return subprocess.run(
        [shoal_bin(), *args], capture_output=True, text=True, stdin=subprocess.DEVNULL,
        timeout=COMMAND_TIMEOUT_S,
    )


class Node:
    """One node's server.properties in Kafka's KRaft example shape."""

    def __init__(self, root):
        self.root = root
        self.port = free_port()
        self.controller_port = free_port()
        self.data_dir = os.path.join(root, "data")
        self.config = os.path.join(root, "server.properties")
        self.write()

    def properties(self):
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": self.data_dir,
        }

    def write(self, drop=(), **changes):
        settings = {**self.properties(), **{k.replace("_", "."): v for k, v in changes.items()}}
        with open(self.config, "w") as f:
            f.write("# A single combined node, as Kafka's config/server.properties\n")
            for key, value in settings.items():
                if key not in drop:
                    f.write(f"{key}={value}\n")

    def format(self, cluster_id, *extra):
        return shoal("storage", "format", "-t", cluster_id, "-c", self.config, *extra)

    def serve_refused(self, *extra):
        """Runs serve, which must exit at once; returns its stderr."""
        result = shoal("serve", "--config", self.config, "--shards", "1", *extra)
        assert result.returncode != 0, result.stdout + result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        return result.stderr


@pytest.fixture
def node(tmp_root):
    return Node(tmp_root)


def test_random_uuid_prints_kafka_cluster_ids():
    ids = set()
    for _ in range(5):
        result = shoal("storage", "random-uuid")
        assert result.returncode == 0, result.stderr
        cluster_id = result.stdout.strip()
        assert len(cluster_id) == 22 and not cluster_id.startswith("-"), cluster_id
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
        ids.add(cluster_id)
    assert len(ids) == 5


def test_format_then_serve_a_combined_node(node):
    cluster_id = shoal("storage", "random-uuid").stdout.strip()
    refused = node.serve_refused()
    assert f"No `meta.properties` found in {node.data_dir}" in refused
    assert "(have you run `shoal storage format` to format the directory?)" in refused

    formatted = node.format(cluster_id)
    assert formatted.returncode == 0, formatted.stderr
    with open(os.path.join(node.data_dir, "meta.properties")) as f:
        meta = dict(line.strip().split("=", 1) for line in f if "=" in line)
    assert meta["version"] == "1" and meta["node.id"] == "1" and meta["cluster.id"] == cluster_id
    assert len(meta["directory.id"]) == 22

    again = node.format(cluster_id)
    assert again.returncode == 1
    assert f"Log directory {node.data_dir} is already formatted. Use --ignore-formatted" in again.stderr
    ignored = node.format(cluster_id, "--ignore-formatted")
    assert ignored.returncode == 0, ignored.stderr
    assert "All of the log directories are already formatted." in ignored.stdout
    info = shoal("storage", "info", "-c", node.config)
    assert info.returncode == 0, info.stdout
    assert f"clusterId={cluster_id}, nodeId=1" in info.stdout

    log_path = os.path.join(node.root, "serve.log")
    bootstrap = f"{HOST}:{node.port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [shoal_bin(), "serve", "--config", node.config, "--shards", "1"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(proc, log_path, bootstrap)
        admin = clients.admin(bootstrap)
        cluster = admin.describe_cluster(request_timeout=REQUEST_TIMEOUT_S).result(timeout=REQUEST_TIMEOUT_S)
        assert cluster.cluster_id == cluster_id
        assert [(n.id, n.host, n.port) for n in cluster.nodes] == [(1, HOST, node.port)]
        resource = ConfigResource(ResourceType.BROKER, "1")
        configs = admin.describe_configs([resource], request_timeout=REQUEST_TIMEOUT_S)[resource].result(
            timeout=REQUEST_TIMEOUT_S
        )
        shown = {name: configs[name].value for name in node.properties()}
        assert shown == {**node.properties(), "log.dirs": os.path.realpath(node.data_dir)}
        assert configs["broker.session.timeout.ms"].value == "9000"
        assert configs["controller.quorum.election.timeout.ms"].value == "1000"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_TIMEOUT_S) == 0, open(log_path).read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)

    node.write(node_id="2", controller_quorum_voters=f"2@{HOST}:{node.controller_port}")
    refused = node.serve_refused()
    assert "Stored node id 1 doesn't match previous node id 2" in refused
    other = node.format(shoal("storage", "random-uuid").stdout.strip(), "--ignore-formatted")
    assert other.returncode == 1 and "Invalid cluster.id in:" in other.stderr


def test_a_pure_broker_is_refused_in_one_line(node):
    node.write(process_roles="broker", controller_quorum_voters="2@127.0.0.1:1",
               listeners=f"PLAINTEXT://{HOST}:{node.port}")
    cluster_id = shoal("storage", "random-uuid").stdout.strip()
    assert node.format(cluster_id).returncode == 0
    refused = node.serve_refused()
    # A lone voter serves no CONTROLLER listener yet: no broker can reach it.
    assert "a pure broker (process.roles=broker) needs a quorum of several controller.quorum.voters" in refused


@pytest.mark.parametrize(
    "drop, changes, message",
    [
        (("node.id",), {}, "Missing configuration `node.id` which is required when `process.roles` is defined"),
        (("controller.quorum.voters",), {}, "either controller.quorum.bootstrap.servers must contain"),
        ((), {"controller_listener_names": "CTRL", "listener_security_protocol_map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,CTRL:PLAINTEXT"},
         "controller.listener.names must contain at least one value appearing in the 'listeners' configuration"),
        ((), {"controller_quorum_voters": "1@127.0.0.1:1"}, "but its controller listener CONTROLLER is at"),
        ((), {"process_roles": "broker,zookeeper"}, "Unknown process role 'zookeeper'"),
    ],
    ids=["no-node-id", "no-voters", "controller-listener-not-listed", "voter-port", "bad-role"],
)
def test_bad_cluster_configs_are_refused_with_kafkas_message(node, drop, changes, message):
    node.write(drop=drop, **changes)
    assert message in node.serve_refused()
    formatted = node.format(shoal("storage", "random-uuid").stdout.strip())
    assert formatted.returncode == 1 and message in formatted.stderr
    assert not os.path.exists(os.path.join(node.data_dir, "meta.properties"))
