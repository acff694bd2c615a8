//! The brokers clients see, and which of them leads each partition.
//!
//! By default the node is one broker: id `node.id`, the advertised address,
//! leader of every partition and coordinator of every group. Which shard owns
//! a partition stays hidden; the shard that accepted a connection reaches the
//! owner over the channel mesh.
//!
//! In shard-aware mode (`listener.shard.aware=true`) every shard is a broker
//! of its own, so that clients, which already send each partition's requests
//! to its leader, send them straight to the owning shard:
//!
//! - shard `s` of node `n` is broker `n × 1000 + s` (node 1: brokers 1000,
//!   1001, …; readable in client logs, and room for 1000 shards a node);
//! - it listens on, and advertises, port `listener.shard.port.base + s` at
//!   the advertised host (the shared port stays, for bootstrapping);
//! - its rack is `node-<n>`, the same for every shard of a node, so rack-aware
//!   replica placement never puts two replicas of a partition on one node;
//! - a partition's leader is its owner shard's broker, a group's coordinator
//!   the broker of the shard owning its `__consumer_offsets` partition, and
//!   the controller shard 0's broker.
//!
//! A request that reaches a shard that does not own its partition (stale
//! metadata, the shared port) is still served, over the mesh, as by default.
//!
//! Invariant: every answer that names a broker (Metadata, DescribeCluster,
//! FindCoordinator) takes it from here, so that they never disagree.

use super::controller::CONTROLLER_SHARD;
use super::ClusterView;
pub use crate::config::{NODE_ID_MAX_SHARD_AWARE, SHARDS_PER_NODE_MAX};

/// How the node presents itself to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerLayout {
    /// One broker, `node.id`, at the advertised address.
    Node,
    /// One broker per shard; shard `s` is advertised at port `port_base + s`.
    PerShard { port_base: i32 },
}

/// One broker as Metadata and DescribeCluster list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// Which part of this node a broker id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalBroker {
    /// The node as one broker (the default layout).
    Node,
    /// One shard (shard-aware mode).
    Shard(usize),
}

/// The broker id of `shard` of node `node_id` in shard-aware mode.
pub fn shard_broker_id(node_id: i32, shard: usize) -> i32 {
    node_id * SHARDS_PER_NODE_MAX as i32 + shard as i32
}

impl ClusterView {
    /// Every broker this node advertises, in id order.
    pub fn brokers(&self) -> Vec<Broker> {
        match self.broker_layout {
            BrokerLayout::Node => vec![self.broker_of_shard(CONTROLLER_SHARD)],
            BrokerLayout::PerShard { .. } => (0..self.shard_count)
                .map(|shard| self.broker_of_shard(shard))
                .collect(),
        }
    }

    /// The broker clients reach shard `shard` through: the node itself by
    /// default, the shard's own broker in shard-aware mode.
    pub fn broker_of_shard(&self, shard: usize) -> Broker {
        match self.broker_layout {
            BrokerLayout::Node => Broker {
                id: self.node_id,
                host: self.advertised_host.clone(),
                port: self.advertised_port,
                rack: None,
            },
            BrokerLayout::PerShard { port_base } => Broker {
                id: shard_broker_id(self.node_id, shard),
                host: self.advertised_host.clone(),
                port: port_base + shard as i32,
                rack: Some(format!("node-{}", self.node_id)),
            },
        }
    }

    /// The broker id that leads `partition` of `topic`.
    pub fn leader_id(&self, topic: &str, partition: i32) -> i32 {
        match self.broker_layout {
            BrokerLayout::Node => self.node_id,
            BrokerLayout::PerShard { .. } => {
                shard_broker_id(self.node_id, self.owner(topic, partition))
            }
        }
    }

    /// The broker id of the controller.
    pub fn controller_id(&self) -> i32 {
        self.broker_of_shard(CONTROLLER_SHARD).id
    }

    /// What a broker id names on this node, or None when it is not one of
    /// the brokers this node advertises.
    pub fn local_broker(&self, id: i32) -> Option<LocalBroker> {
        match self.broker_layout {
            BrokerLayout::Node => (id == self.node_id).then_some(LocalBroker::Node),
            BrokerLayout::PerShard { .. } => (0..self.shard_count)
                .find(|&shard| shard_broker_id(self.node_id, shard) == id)
                .map(LocalBroker::Shard),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::Arc;

    use super::*;
    use crate::metadata::TopicMeta;

    fn view(layout: BrokerLayout) -> ClusterView {
        let topic = TopicMeta {
            name: "t".into(),
            id: uuid::Uuid::nil(),
            partitions: 4,
            configs: BTreeMap::new(),
            placement: vec![1, 0, 1, 1],
        };
        ClusterView {
            cluster_id: "c".into(),
            node_id: 7,
            advertised_host: "broker.example".into(),
            advertised_port: 9092,
            broker_layout: layout,
            shard_count: 2,
            topics: BTreeMap::new(),
            topic_names_by_id: HashMap::new(),
        }
        .with_topics(BTreeMap::from([("t".to_string(), Arc::new(topic))]))
    }

    #[test]
    fn by_default_the_node_is_the_only_broker() {
        let view = view(BrokerLayout::Node);
        let node = Broker {
            id: 7,
            host: "broker.example".into(),
            port: 9092,
            rack: None,
        };
        assert_eq!(view.brokers(), vec![node.clone()]);
        assert_eq!(view.broker_of_shard(1), node);
        assert_eq!(view.leader_id("t", 0), 7);
        assert_eq!(view.controller_id(), 7);
        assert_eq!(view.local_broker(7), Some(LocalBroker::Node));
        assert_eq!(view.local_broker(7000), None);
    }

    #[test]
    fn shard_aware_every_shard_is_a_broker_on_one_rack() {
        let view = view(BrokerLayout::PerShard { port_base: 9100 });
        let brokers = view.brokers();
        assert_eq!(
            brokers.iter().map(|b| (b.id, b.port)).collect::<Vec<_>>(),
            vec![(7000, 9100), (7001, 9101)]
        );
        assert!(brokers
            .iter()
            .all(|b| b.rack.as_deref() == Some("node-7") && b.host == "broker.example"));
        assert_eq!(
            (0..4).map(|p| view.leader_id("t", p)).collect::<Vec<_>>(),
            vec![7001, 7000, 7001, 7001],
            "leaders follow the placement table"
        );
        assert_eq!(view.controller_id(), 7000);
        assert_eq!(view.local_broker(7001), Some(LocalBroker::Shard(1)));
        assert_eq!(view.local_broker(7002), None, "only 2 shards");
        assert_eq!(view.local_broker(7), None, "the node id is no broker now");
        assert_eq!(
            shard_broker_id(NODE_ID_MAX_SHARD_AWARE, SHARDS_PER_NODE_MAX - 1),
            NODE_ID_MAX_SHARD_AWARE * 1000 + 999
        );
        assert!(
            i64::from(NODE_ID_MAX_SHARD_AWARE + 1) * 1000 + 999 > i64::from(i32::MAX),
            "the bound is tight"
        );
    }
}
