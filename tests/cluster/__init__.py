"""The cluster test harness: N broker processes, each in its own network
namespace on a bridge (loopback ports where namespaces are unavailable), with
the faults a replicated broker must survive (kill -9, SIGTERM, restart,
SIGSTOP/SIGCONT, isolation, partitions, netem delay and loss) and a cleanup
that leaves no process, namespace, link, firewall rule or temp dir behind.
`harness.py` holds it all; `quorum.py` reads a KRaft quorum's state over the
wire (DescribeQuorum), which Apache Kafka answers today and shoal's Raft
quorum will."""

from .harness import Cluster, Node, Unavailable, leftovers, new_cluster_id, probe, sweep

__all__ = ["Cluster", "Node", "Unavailable", "leftovers", "new_cluster_id", "probe", "sweep"]
