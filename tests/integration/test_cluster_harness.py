"""The cluster harness (tests/cluster/) proven on the real thing it must drive:
an Apache Kafka 4.4 KRaft cluster of three combined nodes, each in its own
network namespace (tests/kafka/kafka-cluster-node), then every fault the
harness makes: kill -9 of the quorum leader and its restart, isolation, a
pause, delay (nfdelay.py); and that nothing of a run is left behind, even after a
failing step. The harness's own mechanics are first checked on plain
processes (Python's http.server), which start in a blink.

Needs root for namespaces (the tests that need them skip, saying why, when
`ip netns add` fails), Java and Kafka's jars (tests/kafka/setup)."""

import contextlib
import functools
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import clients  # noqa: E402
import kafka_tools  # noqa: E402
import kafka_wire  # noqa: E402
from cluster import Cluster, harness, leftovers, probe, sweep  # noqa: E402
from cluster import waiting  # noqa: E402
from cluster.quorum import QuorumError, describe_quorum  # noqa: E402
from confluent_kafka import KafkaException  # noqa: E402
from confluent_kafka.admin import NewTopic  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# A Kafka admin client's errors are settling errors too here.
wait_until = functools.partial(waiting.wait_until, settling=(KafkaException,))
KAFKA_NODE = waiting.KAFKA_NODE
# A node that is only a listening socket: the harness's mechanics without a JVM.
PLAIN_NODE = f"{sys.executable} -m http.server {{port}} --bind {{host}} --directory {{data_dir}}"
NODES = 3
PARTITIONS = 6
RECORDS = 600
# Kafka's defaults: a voter starts an election 1 to 2 s after it last heard
# its leader; the controller fences a broker 9 s after its last heartbeat.
ELECTION_TIMEOUT_S = 30.0
FENCE_TIMEOUT_S = 45.0
CATCH_UP_TIMEOUT_S = 60.0
# Three JVM brokers forming a cluster on a loaded two-core machine, then one
# fault's worth of waits.
KAFKA_TEST_TIMEOUT_S = 240
PAUSE_S = 3.0
CONNECT_TIMEOUT_S = 1.0
DELAY_MS = 300
NOTHING = {"namespaces": [], "links": [], "dirs": [], "pids": []}
needs_namespaces = pytest.mark.skipif(probe()["namespaces"] is not None, reason=str(probe()["namespaces"]))
# Namespaced where this machine allows it, and the loopback fallback.
modes = pytest.mark.parametrize("namespaces", [True, False], ids=["namespaces", "loopback"])


def require(cluster, feature):
    reason = cluster.unavailable(feature)
    if reason is not None:
        pytest.skip(reason)


def connects(host, port, timeout_s=CONNECT_TIMEOUT_S):
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def http_get(node, timeout_s):
    with urllib.request.urlopen(f"http://{node.bootstrap}/", timeout=timeout_s) as response:
        return response.status


def connect_from(cluster, i, node):
    """Whether node i's namespace reaches `node`'s port (a process run there)."""
    code = f"import socket; socket.create_connection(({node.host!r}, {node.port}), timeout={CONNECT_TIMEOUT_S})"
    return cluster.exec(i, [sys.executable, "-c", code], check=False).returncode == 0


def assert_nothing_left(pid, root_dir, subnet):
    left = leftovers(pid)
    assert left == NOTHING, left
    assert not os.path.exists(root_dir)
    # No process of the run (every node's command line names its data dir).
    pgrep = subprocess.run(["pgrep", "-f", root_dir], capture_output=True, text=True)
    assert pgrep.stdout.strip() == "", pgrep.stdout
    # No firewall rule of the run in the root namespace either.
    iptables_save = shutil.which("iptables-save")
    if iptables_save and subnet:
        rules = subprocess.run([iptables_save], capture_output=True, text=True).stdout
        assert f"{subnet}." not in rules, rules


# --- the harness's mechanics, on plain processes -------------------------------------------------


@modes
def test_harness_leaves_nothing_after_a_failing_step(namespaces):
    cluster = Cluster(NODES, PLAIN_NODE, namespaces=namespaces, kafka=False)
    with pytest.raises(RuntimeError, match="deliberate"):
        with cluster:
            for node in cluster.nodes:
                assert connects(node.host, node.port)
            if cluster.unavailable("iptables") is None:
                cluster.partition([0], [1])
            raise RuntimeError("deliberate failure inside the cluster's block")
    assert_nothing_left(os.getpid(), cluster.root_dir, cluster.subnet)


def test_temp_parent_holds_the_data_dirs_and_is_left_empty(tmp_path):
    # perf/cluster.py puts the nodes' data on the disk it measures.
    parent = str(tmp_path)
    cluster = Cluster(NODES, PLAIN_NODE, namespaces=False, temp_parent=parent, kafka=False)
    with cluster:
        assert os.path.dirname(cluster.root_dir) == parent
        for node in cluster.nodes:
            assert os.path.commonpath([node.data_dir, cluster.root_dir]) == cluster.root_dir
            assert os.path.isdir(node.data_dir)
            assert http_get(node, CONNECT_TIMEOUT_S) == 200
    assert os.listdir(parent) == []
    assert_nothing_left(os.getpid(), cluster.root_dir, cluster.subnet)


@modes
def test_harness_faults_on_plain_processes(namespaces):
    with Cluster(NODES, PLAIN_NODE, namespaces=namespaces, kafka=False) as cluster:
        a, b, c = cluster.nodes
        # kill -9 and restart on the same address and port.
        first_pid = a.proc.pid
        cluster.kill9(0)
        assert not connects(a.host, a.port)
        cluster.restart(0)
        assert a.proc.pid != first_pid and connects(a.host, a.port)
        # SIGTERM, bounded: http.server dies of it.
        assert cluster.stop(1) == -signal.SIGTERM
        cluster.restart(1)
        # A paused process's kernel still completes the handshake, but
        # nothing answers a request until it resumes.
        cluster.pause(2)
        with pytest.raises(OSError):
            http_get(c, timeout_s=1.0)
        cluster.resume(2)
        assert http_get(c, timeout_s=10.0) == 200
        require(cluster, "isolate")
        cluster.isolate(2)
        assert not connects(c.host, c.port)
        assert not connect_from(cluster, 0, c)
        assert connect_from(cluster, 0, b)
        cluster.heal(2)
        wait_until(lambda: connects(c.host, c.port), 10, "the healed node to be reachable")
        require(cluster, "iptables")
        cluster.partition([0], [1])
        assert not connect_from(cluster, 0, b)
        assert not connect_from(cluster, 1, a)
        assert connect_from(cluster, 0, c) and connect_from(cluster, 1, c)
        assert connects(a.host, a.port) and connects(b.host, b.port)
        cluster.heal_partitions()
        assert connect_from(cluster, 0, b) and connect_from(cluster, 1, a)


# A test process that opens a cluster of plain nodes, says so and waits to be
# killed; argv: the tests directory, the node command.
HOLDER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from cluster import Cluster
with Cluster(2, sys.argv[2], kafka=False):
    print("open", flush=True)
    time.sleep(60)
"""
HOLDER_OPEN_TIMEOUT_S = 30.0


@contextlib.contextmanager
def holder():
    """A test process holding a cluster open; killed, and what it left swept,
    whatever the test did to it."""
    tests_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    command = [sys.executable, "-c", HOLDER, tests_dir, PLAIN_NODE]
    if harness.SETPRIV:
        command = [harness.SETPRIV, "--pdeathsig", "KILL", "--", *command]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        ready = select.select([proc.stdout], [], [], HOLDER_OPEN_TIMEOUT_S)[0]
        assert ready and proc.stdout.readline() == "open\n", "the holder did not open its cluster"
        left = leftovers(proc.pid)
        assert len(left["namespaces"]) == 2 and len(left["links"]) == 3 and len(left["dirs"]) == 1, left
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        sweep()


@needs_namespaces
def test_sigterm_of_the_test_process_removes_its_cluster():
    with holder() as proc:
        proc.terminate()
        assert proc.wait(timeout=HOLDER_OPEN_TIMEOUT_S) == 128 + signal.SIGTERM
        assert leftovers(proc.pid) == NOTHING


@needs_namespaces
def test_sweep_removes_what_a_killed_test_process_left():
    with holder() as proc:
        proc.kill()
        proc.wait()
        left = leftovers(proc.pid)
        assert left["namespaces"] and left["links"] and left["dirs"], left
        # The nodes die with their test process (setpriv's death signal); the
        # network and the temp dir wait for the next run's sweep.
        wait_until(lambda: not leftovers(proc.pid)["pids"], 10, "the dead run's nodes to die")
        removed = sweep()
        # A veth goes with its namespace (its peer is there), the bridge by name.
        assert set(left["namespaces"] + left["dirs"]) <= set(removed)
        assert leftovers(proc.pid) == NOTHING


# --- an Apache Kafka cluster -----------------------------------------------------------------------


def logs_on_failure(test):
    """Prints the tail of every node's log when the test fails (shown with
    its report): a cluster's failure is read in its nodes' logs."""
    @functools.wraps(test)
    def wrapper(kafka_cluster, *args, **kwargs):
        try:
            return test(kafka_cluster, *args, **kwargs)
        except BaseException:
            print(kafka_cluster.log_tails())
            raise
    return wrapper


@pytest.fixture(scope="module")
def kafka_cluster():
    kafka_tools.require_tools()
    cluster = Cluster(NODES, KAFKA_NODE)
    try:
        with cluster:
            wait_until(lambda: len(brokers(cluster, 0)) == NODES, FENCE_TIMEOUT_S, "three registered brokers")
            yield cluster
    except BaseException:
        print(cluster.log_tails())
        raise
    assert_nothing_left(os.getpid(), cluster.root_dir, cluster.subnet)


def brokers(cluster, via):
    """Node ids of the unfenced brokers, per node `via`'s Metadata."""
    listed, _ = kafka_wire.metadata(cluster.nodes[via].bootstrap, [], False)
    return sorted(node_id for node_id, _, _ in listed)


def index_of(cluster, node_id):
    return next(n.index for n in cluster.nodes if n.node_id == node_id)


def quorum_via(cluster, indexes):
    """DescribeQuorum from the first of `indexes` that answers."""
    for i in indexes:
        try:
            return describe_quorum(cluster.nodes[i].bootstrap, timeout_s=5.0)
        except (OSError, QuorumError):
            continue
    raise AssertionError(f"no node of {indexes} answered DescribeQuorum")


def wait_caught_up(cluster, node_id, since_ms, via):
    """Waits until the quorum leader saw `node_id` caught up after since_ms
    (its LastCaughtUpTimestamp, KIP-836)."""
    def caught_up():
        voter = quorum_via(cluster, via).voters[node_id]
        return voter.last_caught_up_timestamp_ms >= since_ms
    wait_until(caught_up, CATCH_UP_TIMEOUT_S, f"node {node_id} to catch up with the metadata log")


def create_topic(bootstrap, name, partitions, replication_factor):
    """CreateTopics, asked again while the controller is settling (a new
    leader, a fenced broker)."""
    def created():
        client = clients.admin(bootstrap)
        futures = client.create_topics([NewTopic(name, num_partitions=partitions,
                                                 replication_factor=replication_factor)],
                                       request_timeout=clients.REQUEST_TIMEOUT_S)
        try:
            futures[name].result(timeout=clients.REQUEST_TIMEOUT_S)
        except KafkaException as e:
            if e.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
        return True
    wait_until(created, ELECTION_TIMEOUT_S, f"topic {name} to be created")
    clients.wait_for_partitions(bootstrap, name, partitions, timeout_s=ELECTION_TIMEOUT_S)


def leaders(bootstrap, name):
    _, topics = kafka_wire.metadata(bootstrap, [name], False)
    _, partitions = topics[name]
    return {p: leader for p, (_, leader) in partitions.items()}


def produce(bootstrap, topic, partitions, tag, acks="all"):
    """RECORDS values spread over `partitions`; every one must be acknowledged.
    Returns {partition: [value]} in the order sent."""
    prod = clients.producer(bootstrap, acks=acks)
    log = clients.DeliveryLog()
    sent = {p: [] for p in partitions}
    for k in range(RECORDS):
        p = partitions[k % len(partitions)]
        value = f"{tag}-{k}".encode()
        sent[p].append(value)
        prod.produce(topic, value=value, partition=p, on_delivery=log)
        prod.poll(0)
    clients.flush(prod)
    assert log.errors == []
    assert sorted(v for _, _, _, v in log.acked) == sorted(v for vs in sent.values() for v in vs)
    return sent


def assert_read_once(bootstrap, topic, sent, start_offsets=None):
    got = clients.consume(bootstrap, topic, {p: len(vs) for p, vs in sent.items()}, start_offsets=start_offsets)
    for p, values in sent.items():
        assert [m.value() for m in got[p]] == values, f"partition {p}"


@pytest.mark.timeout(KAFKA_TEST_TIMEOUT_S)
@logs_on_failure
def test_kafka_cluster_produce_through_one_node_consume_through_another(kafka_cluster):
    cluster = kafka_cluster
    topic = "spread"
    create_topic(cluster.nodes[0].bootstrap, topic, PARTITIONS, NODES)
    sent = produce(cluster.nodes[0].bootstrap, topic, list(range(PARTITIONS)), "first")
    assert_read_once(cluster.nodes[2].bootstrap, topic, sent)


@pytest.mark.timeout(KAFKA_TEST_TIMEOUT_S)
@logs_on_failure
def test_kafka_quorum_leader_killed_then_restarted(kafka_cluster):
    cluster = kafka_cluster
    everyone = list(range(NODES))
    before = quorum_via(cluster, everyone)
    victim = index_of(cluster, before.leader_id)
    others = [i for i in everyone if i != victim]
    cluster.kill9(victim)

    def new_leader():
        q = quorum_via(cluster, others)
        return q if q.leader_id not in (before.leader_id, -1) and q.leader_epoch > before.leader_epoch else None
    after = wait_until(new_leader, ELECTION_TIMEOUT_S, "a new quorum leader")
    assert after.leader_id in {cluster.nodes[i].node_id for i in others}
    # The controller works again: a topic is created (on the two live brokers
    # once the dead one is fenced; replication factor 3 would need it).
    create_topic(cluster.nodes[others[0]].bootstrap, "after-kill", PARTITIONS, NODES - 1)

    restarted_ms = int(time.time() * 1000)
    cluster.restart(victim)
    wait_caught_up(cluster, before.leader_id, restarted_ms, everyone)
    wait_until(lambda: len(brokers(cluster, others[0])) == NODES, FENCE_TIMEOUT_S, "the restarted broker to register")


@pytest.mark.timeout(KAFKA_TEST_TIMEOUT_S)
@logs_on_failure
def test_kafka_isolated_node_then_healed(kafka_cluster):
    cluster = kafka_cluster
    require(cluster, "isolate")
    everyone = list(range(NODES))
    leader_id = quorum_via(cluster, everyone).leader_id
    # Isolating the quorum leader makes the other two elect one and fence it.
    victim = index_of(cluster, leader_id)
    others = [i for i in everyone if i != victim]
    entry = cluster.nodes[others[0]].bootstrap
    cluster.isolate(victim)
    try:
        wait_until(lambda: brokers(cluster, others[0]) == sorted(cluster.nodes[i].node_id for i in others),
                   FENCE_TIMEOUT_S, "the isolated broker to be fenced")
        create_topic(entry, "while-isolated", PARTITIONS, NODES - 1)
        sent = produce(entry, "while-isolated", list(range(PARTITIONS)), "isolated")
        assert_read_once(cluster.nodes[others[1]].bootstrap, "while-isolated", sent)
        # The replication-factor-3 topic of the first test: fencing moved its
        # leaders to the two and took the isolated one out of every ISR.
        assert set(leaders(entry, "spread").values()) <= {cluster.nodes[i].node_id for i in others}
        ends = {p: clients.watermarks(entry, "spread", p)[1] for p in range(PARTITIONS)}
        sent = produce(entry, "spread", list(range(PARTITIONS)), "isolated")
        assert_read_once(entry, "spread", sent, start_offsets=ends)
    finally:
        healed_ms = int(time.time() * 1000)
        cluster.heal(victim)
    wait_caught_up(cluster, leader_id, healed_ms, others)
    wait_until(lambda: len(brokers(cluster, others[0])) == NODES, FENCE_TIMEOUT_S, "the healed broker to register")


@pytest.mark.timeout(KAFKA_TEST_TIMEOUT_S)
@logs_on_failure
def test_kafka_paused_node_then_resumed(kafka_cluster):
    cluster = kafka_cluster
    everyone = list(range(NODES))
    q = quorum_via(cluster, everyone)
    led = leaders(cluster.nodes[0].bootstrap, "spread")
    # A quorum follower, the one leading fewest partitions: the earlier
    # faults moved leaders around (Kafka moves them back only every 300 s),
    # and the others must lead some.
    followers = [i for i in everyone if cluster.nodes[i].node_id != q.leader_id]
    victim = min(followers, key=lambda i: list(led.values()).count(cluster.nodes[i].node_id))
    victim_id = cluster.nodes[victim].node_id
    others = [i for i in everyone if i != victim]
    entry = cluster.nodes[others[0]].bootstrap
    partitions = [p for p, leader in led.items() if leader != victim_id]
    assert partitions, led
    cluster.pause(victim)
    try:
        paused_at = time.monotonic()
        with pytest.raises(OSError):
            describe_quorum(cluster.nodes[victim].bootstrap, timeout_s=1.0)
        ends = {p: clients.watermarks(entry, "spread", p)[1] for p in partitions}
        # acks=1: an ISR keeps the paused follower for replica.lag.time.max.ms
        # (30 s), longer than this pause; its leaders still take writes.
        sent = produce(entry, "spread", partitions, "paused", acks="1")
        assert_read_once(entry, "spread", sent, start_offsets=ends)
        time.sleep(max(0.0, PAUSE_S - (time.monotonic() - paused_at)))
    finally:
        resumed_ms = int(time.time() * 1000)
        cluster.resume(victim)
    wait_caught_up(cluster, victim_id, resumed_ms, everyone)


@pytest.mark.timeout(KAFKA_TEST_TIMEOUT_S)
@logs_on_failure
def test_kafka_delay_slows_requests(kafka_cluster):
    cluster = kafka_cluster
    require(cluster, "delay")
    node = cluster.nodes[1]

    def round_trip_s():
        start = time.monotonic()
        kafka_wire.api_versions(node.bootstrap)
        return time.monotonic() - start

    cluster.delay(1, delay_ms=DELAY_MS)
    try:
        # A connect and one request: two round trips, each delayed once (only
        # what the node sends is held); one delay is the generous bound.
        assert round_trip_s() >= DELAY_MS / 1000
    finally:
        cluster.clear_delay(1)
    assert min(round_trip_s() for _ in range(3)) < DELAY_MS / 1000
