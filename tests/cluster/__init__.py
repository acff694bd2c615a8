"""The cluster test harness: N broker processes, each in its own network
namespace on a bridge (loopback ports where namespaces are unavailable), with
the faults a replicated broker must survive (kill -9, SIGTERM, restart,
SIGSTOP/SIGCONT, isolation, partitions, delay with reordering (nfdelay.py,
a userspace netem: this kernel has none) and loss) and a cleanup
that leaves no process, namespace, link, firewall rule or temp dir behind.
`harness.py` holds it all; `quorum.py` reads a KRaft quorum's state over the
wire (DescribeQuorum), which Apache Kafka and shoal answer, and sends
CreateTopics to one chosen node; `shoal-node` runs shoal as one node of a
cluster, as tests/kafka/kafka-cluster-node runs Kafka. For replication
(issue 15): `faults.py` makes faults under load, `checker.py` records what
clients saw and checks it, `segments.py` reads replicas' log files."""

from .harness import Cluster, Node, Unavailable, leftovers, new_cluster_id, probe, sweep

__all__ = ["Cluster", "Node", "Unavailable", "leftovers", "new_cluster_id", "probe", "sweep"]
