"""N broker processes as a cluster the test can break, each node in its own
network namespace on a bridge (or on loopback ports where namespaces are
unavailable), and the cleanup that leaves nothing behind.

Network (namespaced mode, needs root and `ip`):

    root namespace: bridge <prefix>b, 10.213.X.1/24 (the test and its clients)
    node i:         namespace shoal-cluster-<pid>-<k>-<i>, veth pair
                    <prefix>n<i> (bridge side) / <prefix>p<i> (node side),
                    10.213.X.(10+i)/24, loopback up

where <prefix> is `shc<pid><letters>`: the test process's pid (so that a later
run can tell leftovers of a dead run from a live one) and two letters counting
the Clusters of that process. X is drawn from the run id and moved on while another
interface already uses that /24.

Faults and how each is made:
- kill9 / stop (SIGTERM, bounded) / restart (same data dir, address, ports) /
  pause / resume (SIGSTOP / SIGCONT) act on the node's process, which is the
  command itself: `ip netns exec` and `setpriv` both exec, so the pid we hold
  is the broker's.
- isolate / heal: `ip link set down` on the node's bridge-side veth. It cuts
  every frame both ways (ARP too, and the test process's own connections)
  with no firewall involved, and undoing it is one command; the node keeps
  its address and sockets, as with a pulled cable.
- partition(a, b) and drop_randomly(a, b, p): iptables DROP rules (for
  drop_randomly, each packet with probability p) in the namespaces of the nodes of `a`
  (INPUT from, OUTPUT to every address of `b`), since a link can only be cut
  for everyone. The rules live in the node's namespace, so deleting the
  namespace deletes them: the root namespace's rules are never touched.
- delay: this kernel has no netem qdisc, so a userspace one: an iptables
  NFQUEUE rule in the node's `mangle` table (so that heal_partitions'
  flush of the filter table leaves it) sends every packet the node puts on
  its veth to nfdelay.py, running in the node's namespace, which lets each
  go after delay_ms plus a uniform draw below jitter_ms (so packets leave
  out of order). Delaying only what each node sends, a round trip between
  two nodes takes 2 x delay_ms more. `--queue-bypass`: with no delayer
  listening the rule lets packets through.

Cleanup: `close()` (the context manager's exit) kills every process, deletes
the namespaces (and with them the node-side veths, their qdiscs and iptables
rules), the bridge-side veths, the bridge, and the temp dir (and kills the
delayers, which also die with the test process, as nodes do), each step bounded
and each attempted whatever the one before did. An atexit hook and a SIGTERM
handler close every cluster a crashed test left open, and `sweep()` (run when
a Cluster is made) removes namespaces, links and temp dirs whose owning pid is
no longer alive (a run killed by -9).
"""

import atexit
import base64
import errno
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import roles as node_roles  # noqa: E402

IP = shutil.which("ip")
IPTABLES = shutil.which("iptables")
NFDELAY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nfdelay.py")
# The netfilter queue of a node's delayer (queues are per namespace).
DELAY_QUEUE = 0
# A Python start and one netlink bind, on a loaded machine.
DELAYER_READY_S = 15.0
# With setpriv the kernel SIGKILLs a node whose test process died, even by
# kill -9 (as tests/integration/conftest.py does for single brokers).
SETPRIV = shutil.which("setpriv")

NAMESPACE_PREFIX = "shoal-cluster-"
LINK_PREFIX = "shc"
TEMP_PREFIX = "shoal-cluster-"
# 10.213.0.0/16 is private and rarely routed on CI machines; one /24 a cluster.
SUBNET_FIRST_OCTETS = "10.213"
SUBNETS = 250
BRIDGE_HOST_OCTET = 1
NODE_HOST_OCTET_BASE = 10
# Every node has an address of its own, so all can take Kafka's default ports.
NAMESPACED_PORT = 9092
NAMESPACED_CONTROLLER_PORT = 9093
LOOPBACK_HOST = "127.0.0.1"
# Linux interface names are at most 15 bytes: "shc" + a pid of up to 7 digits
# + two letters + "n" + the node index.
IFNAME_MAX_BYTES = 15
MAX_NODES = 99
LETTERS = "abcdefghijklmnopqrstuvwxyz"
MAX_CLUSTERS_PER_PROCESS = len(LETTERS) ** 2

# One ip / tc / iptables call; they answer in milliseconds unless the
# machine is stuck.
COMMAND_TIMEOUT_S = 15.0
# A JVM broker formats its storage and starts in two JVMs, well past a
# minute on a loaded two-core machine when three start at once.
READY_TIMEOUT_S = 150.0
STOP_TIMEOUT_S = 30.0
KILL_WAIT_S = 10.0
CONNECT_TIMEOUT_S = 1.0
# ApiVersions v0 (api key 18), correlation id 1, no client id: the
# readiness probe, the request every Kafka client sends first.
API_VERSIONS_PROBE = bytes.fromhex("0000000a" "0012" "0000" "00000001" "ffff")
POLL_INTERVAL_S = 0.1
LOG_TAIL_LINES = 40
# The file that fills a node's data disk (a file in the data dir, which
# brokers ignore: they read only directories there).
DISK_FILLER = "disk-filler"
DISK_FILL_STEPS = (64 << 20, 1 << 20, 4 << 10)

PLACEHOLDERS = ("node_id", "host", "port", "controller_port", "voters", "data_dir", "cluster_id")


class Unavailable(Exception):
    """A fault this machine cannot make (no namespaces, no iptables, no
    NFQUEUE); the message says why, for a test's skip."""


def _run(argv, check=True, timeout_s=COMMAND_TIMEOUT_S):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited with {proc.returncode}: {proc.stderr.strip()}")
    return proc


def _in_namespace(namespace, argv):
    return [IP, "netns", "exec", namespace, *argv]


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def new_cluster_id():
    # Kafka's cluster ids are 16 random bytes in URL-safe base64, unpadded;
    # one starting with "-" would read as an option to a command line.
    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not value.startswith("-"):
            return value


def list_namespaces():
    if IP is None:
        return []
    proc = _run([IP, "netns", "list"], check=False)
    # Lines are "name" or "name (id: N)".
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def list_links():
    if IP is None:
        return []
    proc = _run([IP, "-o", "link", "show"], check=False)
    names = []
    for line in proc.stdout.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def _owner_pid(name, pattern):
    match = pattern.match(name)
    return int(match.group(1)) if match else None


_NAMESPACE_OWNER = re.compile(re.escape(NAMESPACE_PREFIX) + r"(\d+)-")
_LINK_OWNER = re.compile(re.escape(LINK_PREFIX) + r"(\d+)[a-z]")
_TEMP_OWNER = re.compile(re.escape(TEMP_PREFIX) + r"(\d+)-")


def leftovers(pid):
    """What runs of test process `pid` left on this machine: namespaces,
    links and temp dirs by name, and the processes of those namespaces."""
    namespaces = [n for n in list_namespaces() if _owner_pid(n, _NAMESPACE_OWNER) == pid]
    links = [n for n in list_links() if _owner_pid(n, _LINK_OWNER) == pid]
    temp_root = tempfile.gettempdir()
    dirs = [os.path.join(temp_root, n) for n in os.listdir(temp_root) if _owner_pid(n, _TEMP_OWNER) == pid]
    pids = [p for n in namespaces for p in _namespace_pids(n)]
    return {"namespaces": namespaces, "links": links, "dirs": dirs, "pids": pids}


def _namespace_pids(namespace):
    proc = _run([IP, "netns", "pids", namespace], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def _kill_pid(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _delete_namespace(namespace):
    # A namespace whose processes live on survives `ip netns del` (only its
    # name goes), so its processes go first.
    for pid in _namespace_pids(namespace):
        _kill_pid(pid)
    _run([IP, "netns", "del", namespace], check=False)


def sweep():
    """Removes the namespaces, links and temp dirs of runs whose test process
    is dead (a run killed by -9 or a pytest-timeout that exits at once).
    Returns what it removed."""
    removed = []
    for namespace in list_namespaces():
        pid = _owner_pid(namespace, _NAMESPACE_OWNER)
        if pid is not None and not pid_alive(pid):
            _delete_namespace(namespace)
            removed.append(namespace)
    for link in list_links():
        pid = _owner_pid(link, _LINK_OWNER)
        if pid is not None and not pid_alive(pid):
            _run([IP, "link", "del", link], check=False)
            removed.append(link)
    temp_root = tempfile.gettempdir()
    for name in os.listdir(temp_root):
        pid = _owner_pid(name, _TEMP_OWNER)
        if pid is not None and not pid_alive(pid):
            _unmount_under(os.path.join(temp_root, name))
            shutil.rmtree(os.path.join(temp_root, name), ignore_errors=True)
            removed.append(os.path.join(temp_root, name))
    return removed


_probe_lock = threading.Lock()
_probe_result = None


def probe():
    """What this machine can do, found once by trying it in a scratch
    namespace: {"namespaces": reason or None, "iptables": ..., "delay": ...},
    a reason being why the feature is unavailable."""
    global _probe_result
    with _probe_lock:
        if _probe_result is not None:
            return _probe_result
        result = {"namespaces": None, "iptables": None, "delay": None}
        if IP is None:
            result["namespaces"] = "no `ip` command (iproute2)"
        elif os.geteuid() != 0:
            result["namespaces"] = "network namespaces need root"
        else:
            scratch = f"{NAMESPACE_PREFIX}{os.getpid()}-probe"
            proc = _run([IP, "netns", "add", scratch], check=False)
            if proc.returncode != 0:
                result["namespaces"] = f"`ip netns add` failed: {proc.stderr.strip()}"
            else:
                try:
                    if IPTABLES is None:
                        result["iptables"] = result["delay"] = "no `iptables` command"
                    else:
                        rule = _run(_in_namespace(scratch, [IPTABLES, "-A", "OUTPUT", "-d", "192.0.2.1", "-j", "DROP"]),
                                    check=False)
                        if rule.returncode != 0:
                            result["iptables"] = f"iptables failed: {rule.stderr.strip()}"
                        queue = _run(_in_namespace(scratch, _delay_rule("-A", "lo")), check=False)
                        if queue.returncode != 0:
                            result["delay"] = f"no iptables NFQUEUE target: {queue.stderr.strip()}"
                finally:
                    _delete_namespace(scratch)
        if result["namespaces"] is not None:
            result["iptables"] = result["delay"] = result["namespaces"]
        _probe_result = result
        return result


# Every open cluster, for atexit and the SIGTERM handler.
_LIVE_CLUSTERS = set()
_clusters_made = 0
_previous_sigterm = None
_handler_installed = False


def _close_all():
    for cluster in list(_LIVE_CLUSTERS):
        try:
            cluster.close()
        except Exception as e:
            # At exit nobody catches it: say so and close the next one.
            sys.stderr.write(f"closing cluster {cluster.run_id}: {e!r}\n")


atexit.register(_close_all)


def _on_sigterm(signum, frame):
    _close_all()
    # Whatever handled SIGTERM before (the integration suite's conftest has
    # its own cleanup) still runs.
    if callable(_previous_sigterm):
        _previous_sigterm(signum, frame)
    os._exit(128 + signum)


def _install_sigterm_handler():
    global _previous_sigterm, _handler_installed
    if _handler_installed or threading.current_thread() is not threading.main_thread():
        return
    _previous_sigterm = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _on_sigterm)
    _handler_installed = True


class Node:
    """One node: its id (1-based), address, ports, data dir and process."""

    def __init__(self, index, host, port, controller_port, root_dir, roles=node_roles.COMBINED):
        self.index = index
        self.node_id = index + 1
        self.roles = roles
        self.host = host
        self.port = port
        self.controller_port = controller_port
        self.root_dir = root_dir
        self.data_dir = os.path.join(root_dir, "data")
        self.namespace = None
        self.veth = None
        self.peer = None
        self.proc = None
        # nfdelay.py's process while the node's packets are delayed.
        self.delayer = None
        self.starts = 0
        self.log_paths = []

    @property
    def bootstrap(self):
        return f"{self.host}:{self.port}"

    @property
    def controller_bootstrap(self):
        """The node's CONTROLLER listener (a voter's)."""
        return f"{self.host}:{self.controller_port}"

    @property
    def is_broker(self):
        return node_roles.BROKER in node_roles.parse(self.roles)

    @property
    def is_controller(self):
        return node_roles.CONTROLLER in node_roles.parse(self.roles)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines=LOG_TAIL_LINES):
        if not self.log_paths:
            return ""
        try:
            with open(self.log_paths[-1], "r", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except FileNotFoundError:
            return ""


def answers_api_versions(sock):
    """Whether the broker behind `sock` answers ApiVersions within the
    socket's timeout (the answer's size prefix and correlation id suffice)."""
    sock.sendall(API_VERSIONS_PROBE)
    head = b""
    while len(head) < 8:
        chunk = sock.recv(8 - len(head))
        if not chunk:
            return False
        head += chunk
    return head[4:8] == API_VERSIONS_PROBE[8:12]


class Cluster:
    """N nodes running `node_command`, a template whose words may hold
    {node_id}, {host}, {port}, {controller_port}, {voters} (`id@host:port`
    of every node's controller listener, comma-separated), {data_dir} and
    {cluster_id}. Use as a context manager; `start()` is called on entry.
    A node is ready once it answers ApiVersions (`kafka`), or, for a node
    that is no Kafka broker, once it accepts a connection."""

    def __init__(self, n, node_command, namespaces=True, ready_timeout_s=READY_TIMEOUT_S, temp_parent=None,
                 kafka=True, roles=None, data_size_mb=None):
        global _clusters_made
        if not 1 <= n <= MAX_NODES:
            raise ValueError(f"a cluster has 1 to {MAX_NODES} nodes, not {n}")
        if _clusters_made >= MAX_CLUSTERS_PER_PROCESS:
            raise RuntimeError(f"one test process makes at most {MAX_CLUSTERS_PER_PROCESS} clusters")
        self.run_letters = LETTERS[_clusters_made // len(LETTERS)] + LETTERS[_clusters_made % len(LETTERS)]
        _clusters_made += 1
        self.pid = os.getpid()
        self.run_id = f"{self.pid}-{self.run_letters}"
        self.command_template = shlex.split(node_command)
        # Where the cluster's temp dir (the nodes' data dirs) goes: None for
        # the system's temp dir, which sweep() also cleans; a benchmark puts
        # it on the disk it measures (perf/cluster.py).
        self.temp_parent = temp_parent
        self.ready_timeout_s = ready_timeout_s
        self.kafka = kafka
        # Each node's `process.roles` (tests/cluster/roles.py), passed to the
        # node command as a KEY=VALUE argument; None: every node combined,
        # the command's own default.
        if roles is not None:
            if len(roles) != n:
                raise ValueError(f"{len(roles)} roles for {n} nodes")
            for value in roles:
                node_roles.parse(value)
            if not any(node_roles.CONTROLLER in node_roles.parse(value) for value in roles):
                raise ValueError("a cluster needs at least one controller")
        self.roles = roles
        self.cluster_id = new_cluster_id()
        self.reasons = dict(probe())
        # Each node's data dir on a tmpfs of this size, so a fault can fill
        # one node's disk alone (`fill_disk`); None: on the temp dir's disk.
        self.data_size_mb = data_size_mb
        if data_size_mb is None:
            self.reasons["disk-full"] = "the cluster's data dirs are not on disks of their own (data_size_mb)"
        elif os.geteuid() != 0:
            self.reasons["disk-full"] = "mounting a tmpfs per node needs root"
        else:
            self.reasons["disk-full"] = None
        if not namespaces:
            self.reasons["namespaces"] = self.reasons["iptables"] = self.reasons["delay"] = "loopback mode asked for"
        self.namespaced = self.reasons["namespaces"] is None
        self.link_prefix = f"{LINK_PREFIX}{self.pid}{self.run_letters}"
        assert len(f"{self.link_prefix}n{MAX_NODES}") <= IFNAME_MAX_BYTES
        self.bridge = None
        self.subnet = None
        self.root_dir = None
        self.nodes = []
        self.n = n
        self.closed = False
        _install_sigterm_handler()
        sweep()

    def unavailable(self, feature):
        """Why `feature` ("namespaces", "iptables" for partition, "delay",
        "isolate" or "disk-full") cannot be used here, or None when it can."""
        if feature == "isolate":
            return self.reasons["namespaces"]
        return self.reasons[feature]

    def _require(self, feature):
        reason = self.unavailable(feature)
        if reason is not None:
            raise Unavailable(reason)

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False

    def start(self):
        _LIVE_CLUSTERS.add(self)
        self.root_dir = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{self.run_id}-", dir=self.temp_parent)
        if self.namespaced:
            self._make_network()
        else:
            for i in range(self.n):
                self.nodes.append(Node(i, LOOPBACK_HOST, _free_port(), _free_port(),
                                       os.path.join(self.root_dir, f"node-{i + 1}"), self._roles(i)))
        for node in self.nodes:
            os.makedirs(node.data_dir, exist_ok=True)
            if self.unavailable("disk-full") is None:
                _run(["mount", "-t", "tmpfs", "-o", f"size={self.data_size_mb}m", "tmpfs", node.data_dir])
        for node in self.nodes:
            self._spawn(node)
        for node in self.nodes:
            self.wait_ready(node.index)

    def _free_subnet(self):
        addresses = _run([IP, "-o", "-4", "addr", "show"]).stdout
        routes = _run([IP, "-4", "route", "show", "table", "all"]).stdout
        first = (self.pid * 7 + _clusters_made) % SUBNETS
        for step in range(SUBNETS):
            subnet = f"{SUBNET_FIRST_OCTETS}.{(first + step) % SUBNETS + 1}"
            if f" {subnet}." not in addresses and f"{subnet}." not in routes:
                return subnet
        raise RuntimeError(f"every {SUBNET_FIRST_OCTETS}.X.0/24 is in use on this machine")

    def _make_network(self):
        self.subnet = self._free_subnet()
        self.bridge = f"{self.link_prefix}b"
        # forward_delay 0: a port joins (and rejoins after heal) forwarding
        # at once instead of after STP's 15 s of listening and learning.
        _run([IP, "link", "add", self.bridge, "type", "bridge", "forward_delay", "0"])
        _run([IP, "addr", "add", f"{self.subnet}.{BRIDGE_HOST_OCTET}/24", "dev", self.bridge])
        _run([IP, "link", "set", self.bridge, "up"])
        for i in range(self.n):
            node = Node(i, f"{self.subnet}.{NODE_HOST_OCTET_BASE + i}", NAMESPACED_PORT,
                        NAMESPACED_CONTROLLER_PORT, os.path.join(self.root_dir, f"node-{i + 1}"), self._roles(i))
            node.namespace = f"{NAMESPACE_PREFIX}{self.run_id}-{i}"
            node.veth = f"{self.link_prefix}n{i}"
            node.peer = f"{self.link_prefix}p{i}"
            self.nodes.append(node)
            _run([IP, "netns", "add", node.namespace])
            _run([IP, "link", "add", node.veth, "type", "veth", "peer", "name", node.peer, "netns", node.namespace])
            _run([IP, "link", "set", node.veth, "master", self.bridge])
            _run([IP, "link", "set", node.veth, "up"])
            ns = [IP, "-n", node.namespace]
            _run([*ns, "link", "set", "lo", "up"])
            _run([*ns, "addr", "add", f"{node.host}/24", "dev", node.peer])
            _run([*ns, "link", "set", node.peer, "up"])

    def _roles(self, i):
        return node_roles.COMBINED if self.roles is None else self.roles[i]

    def voters(self):
        """`controller.quorum.voters`: the nodes with the controller role."""
        return ",".join(f"{n.node_id}@{n.host}:{n.controller_port}" for n in self.nodes if n.is_controller)

    def brokers(self):
        """The indexes of the nodes with the broker role."""
        return [n.index for n in self.nodes if n.is_broker]

    def controllers(self):
        """The indexes of the nodes with the controller role (the voters)."""
        return [n.index for n in self.nodes if n.is_controller]

    def command(self, i):
        node = self.nodes[i]
        values = {
            "node_id": node.node_id,
            "host": node.host,
            "port": node.port,
            "controller_port": node.controller_port,
            "voters": self.voters(),
            "data_dir": node.data_dir,
            "cluster_id": self.cluster_id,
        }
        argv = [word.format(**values) for word in self.command_template]
        if self.roles is not None:
            argv.append(f"process.roles={node.roles}")
        if SETPRIV:
            argv = [SETPRIV, "--pdeathsig", "KILL", "--", *argv]
        return _in_namespace(node.namespace, argv) if node.namespace else argv

    def _spawn(self, node):
        assert not node.running, f"node {node.node_id} is already running"
        node.starts += 1
        log_path = os.path.join(node.root_dir, f"start-{node.starts}.log")
        node.log_paths.append(log_path)
        with open(log_path, "wb") as log:
            node.proc = subprocess.Popen(self.command(node.index), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)

    def wait_ready(self, i, timeout_s=None):
        """Waits until node i is ready on its port (a shoal node of a
        cluster answers clients only once its broker is unfenced; before,
        a connection waits in the listen backlog), failing at once if its
        process exits. A pure controller has no client port: it is ready
        once its CONTROLLER listener answers."""
        node = self.nodes[i]
        port = node.port if node.is_broker else node.controller_port
        deadline = time.monotonic() + (timeout_s or self.ready_timeout_s)
        while True:
            if not node.running:
                raise RuntimeError(f"node {node.node_id} exited with {node.proc.returncode} before it was ready; "
                                   f"log tail:\n{node.log_tail()}")
            try:
                with socket.create_connection((node.host, port), timeout=CONNECT_TIMEOUT_S) as sock:
                    if not self.kafka or answers_api_versions(sock):
                        return
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise TimeoutError(f"node {node.node_id} not accepting on {node.host}:{port} after "
                                   f"{timeout_s or self.ready_timeout_s}s; log tail:\n{node.log_tail()}")
            time.sleep(POLL_INTERVAL_S)

    def kill9(self, i):
        node = self.nodes[i]
        if node.running:
            node.proc.kill()
        node.proc.wait(timeout=KILL_WAIT_S)

    def stop(self, i, timeout_s=STOP_TIMEOUT_S):
        """SIGTERM and wait; a node still running after timeout_s is killed
        and TimeoutError raised. Returns the exit code."""
        node = self.nodes[i]
        if not node.running:
            return node.proc.returncode
        # A paused process would hold SIGTERM pending until resumed.
        node.proc.send_signal(signal.SIGCONT)
        node.proc.terminate()
        try:
            return node.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill9(i)
            raise TimeoutError(f"node {node.node_id} ignored SIGTERM for {timeout_s}s and was killed") from None

    def restart(self, i, wait=True):
        """Starts node i again on the same data dir, address and ports (after
        a kill9 or stop; a running node is killed first)."""
        node = self.nodes[i]
        if node.running:
            self.kill9(i)
        self._spawn(node)
        if wait:
            self.wait_ready(i)

    def fill_disk(self, i):
        """Fills node i's data disk (its tmpfs): a file takes every free
        byte, so the node's next write fails with ENOSPC. Returns the bytes
        taken."""
        self._require("disk-full")
        node = self.nodes[i]
        path = os.path.join(node.data_dir, DISK_FILLER)
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        try:
            # Grown until ENOSPC in smaller and smaller steps (a tmpfs keeps
            # a little of what statvfs calls free).
            taken = os.fstat(fd).st_size
            for step in DISK_FILL_STEPS:
                while True:
                    try:
                        os.posix_fallocate(fd, taken, step)
                    except OSError as e:
                        if e.errno != errno.ENOSPC:
                            raise
                        break
                    taken += step
        finally:
            os.close(fd)
        return taken

    def free_disk(self, i):
        """Undoes fill_disk (safe when the disk is not full)."""
        try:
            os.unlink(os.path.join(self.nodes[i].data_dir, DISK_FILLER))
        except FileNotFoundError:
            pass

    def pause(self, i):
        self.nodes[i].proc.send_signal(signal.SIGSTOP)

    def resume(self, i):
        self.nodes[i].proc.send_signal(signal.SIGCONT)

    def isolate(self, i):
        """Cuts every frame to and from node i (its bridge-side veth down)."""
        self._require("isolate")
        _run([IP, "link", "set", self.nodes[i].veth, "down"])

    def heal(self, i):
        self._require("isolate")
        _run([IP, "link", "set", self.nodes[i].veth, "up"])

    def partition(self, side_a, side_b):
        """Every node of side_a drops all traffic to and from every node of
        side_b (so both ways are cut, whatever side_b's rules)."""
        self._require("iptables")
        for a in side_a:
            for b in side_b:
                host_b = self.nodes[b].host
                self.exec(a, [IPTABLES, "-A", "INPUT", "-s", host_b, "-j", "DROP"])
                self.exec(a, [IPTABLES, "-A", "OUTPUT", "-d", host_b, "-j", "DROP"])

    def drop_randomly(self, side_a, side_b, probability):
        """Every node of side_a drops each packet from and to every node of
        side_b with `probability` (iptables' `statistic` match, drawn per
        packet): loss without netem, which this kernel may lack. Removed by
        heal_partitions."""
        self._require("iptables")
        if not 0.0 < probability < 1.0:
            raise ValueError(f"a drop probability is between 0 and 1, not {probability}")
        chance = ["-m", "statistic", "--mode", "random", "--probability", f"{probability}"]
        for a in side_a:
            for b in side_b:
                host_b = self.nodes[b].host
                self.exec(a, [IPTABLES, "-A", "INPUT", "-s", host_b, *chance, "-j", "DROP"])
                self.exec(a, [IPTABLES, "-A", "OUTPUT", "-d", host_b, *chance, "-j", "DROP"])

    def heal_partitions(self):
        """Removes every partition rule (flushes the nodes' filter tables)."""
        self._require("iptables")
        for i in range(self.n):
            self.exec(i, [IPTABLES, "-F"])

    def delay(self, i, delay_ms, jitter_ms=0.0):
        """Holds every packet node i sends for delay_ms plus a uniform draw
        below jitter_ms (packets then leave out of order when jitter_ms
        exceeds their spacing): nfdelay.py in the node's namespace, fed by
        an NFQUEUE rule. Replaces an earlier delay of that node."""
        self._require("delay")
        self.clear_delay(i)
        node = self.nodes[i]
        argv = [sys.executable, NFDELAY, "--queue", str(DELAY_QUEUE), "--delay-ms", str(delay_ms),
                "--jitter-ms", str(jitter_ms)]
        if SETPRIV:
            argv = [SETPRIV, "--pdeathsig", "KILL", "--", *argv]
        node.delayer = subprocess.Popen(_in_namespace(node.namespace, argv), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        ready, _, _ = select.select([node.delayer.stdout], [], [], DELAYER_READY_S)
        line = node.delayer.stdout.readline() if ready else ""
        if line.strip() != "nfdelay ready":
            self.clear_delay(i)
            raise RuntimeError(f"node {node.node_id}'s delayer did not start: {line.strip() or 'no answer'}")
        self.exec(i, _delay_rule("-A", node.peer))

    def clear_delay(self, i):
        """Ends node i's delay: its rule, then its delayer."""
        self._require("delay")
        node = self.nodes[i]
        self.exec(i, [IPTABLES, "-t", "mangle", "-F", "OUTPUT"], check=False)
        _kill_delayer(node)

    def exec(self, i, argv, check=True, timeout_s=COMMAND_TIMEOUT_S):
        """Runs argv to its end inside node i's namespace (as is in loopback
        mode); returns the CompletedProcess (text output)."""
        node = self.nodes[i]
        full = _in_namespace(node.namespace, argv) if node.namespace else argv
        return _run(full, check=check, timeout_s=timeout_s)

    def log_tails(self, lines=LOG_TAIL_LINES):
        return "\n".join(f"--- node {n.node_id} ({n.bootstrap}) ---\n{n.log_tail(lines)}" for n in self.nodes)

    def close(self):
        """Removes everything of this cluster; safe to call twice and after
        a failed start. Every step is tried whatever the ones before did;
        the first error is raised at the end."""
        if self.closed:
            return
        self.closed = True
        steps = [lambda node=node: _kill_node(node) for node in self.nodes]
        steps += [lambda node=node: _kill_delayer(node) for node in self.nodes]
        if self.namespaced:
            for node in self.nodes:
                steps.append(lambda node=node: _delete_namespace(node.namespace))
                steps.append(lambda node=node: _run([IP, "link", "del", node.veth], check=False))
            if self.bridge is not None:
                steps.append(lambda: _run([IP, "link", "del", self.bridge], check=False))
        if self.root_dir is not None:
            steps.append(lambda: _unmount_under(self.root_dir))
            steps.append(lambda: shutil.rmtree(self.root_dir, ignore_errors=True))
        first_error = None
        for step in steps:
            try:
                step()
            except Exception as e:
                # The remaining steps must still run.
                first_error = first_error or e
        _LIVE_CLUSTERS.discard(self)
        if first_error is not None:
            raise first_error


def _unmount_under(root):
    """Unmounts every mount point below `root` (the nodes' tmpfs data dirs),
    lazily, so a process still holding a file there cannot keep it."""
    root = os.path.realpath(root) + os.sep
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    for point in sorted(points, reverse=True):
        if point.startswith(root):
            _run(["umount", "-l", point], check=False)


def _kill_node(node):
    if node.proc is not None and node.proc.poll() is None:
        node.proc.kill()
        node.proc.wait(timeout=KILL_WAIT_S)


def _kill_delayer(node):
    if node.delayer is not None:
        if node.delayer.poll() is None:
            node.delayer.kill()
            node.delayer.wait(timeout=KILL_WAIT_S)
        node.delayer.stdout.close()
        node.delayer = None


def _delay_rule(action, interface):
    """The iptables command that sends what leaves by `interface` to the
    delayer's queue (or lets it through while no delayer listens)."""
    return [IPTABLES, "-t", "mangle", action, "OUTPUT", "-o", interface, "-j", "NFQUEUE",
            "--queue-num", str(DELAY_QUEUE), "--queue-bypass"]


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK_HOST, 0))
        return sock.getsockname()[1]
