//! The brokers clients see, and which of them leads each partition.
//!
//! The brokers are every broker registered in the metadata image, at its
//! endpoint on the listener this node serves clients on (Kafka matches the
//! listener name), fenced ones left out as Kafka's Metadata leaves them;
//! and this node from its config while the image has no registration of
//! it (a single node registers none). A partition's leader is the image's,
//! when it is a live broker; else none (LEADER_NOT_AVAILABLE). Which shard
//! owns a partition on this node stays hidden; the shard that accepted a
//! connection reaches the owner over the channel mesh.
//!
//! In shard-aware mode (`listener.shard.aware=true`) every shard of this
//! node is a broker of its own, so that clients, which already send each
//! partition's requests to its leader, send them straight to the owning
//! shard:
//!
//! - shard `s` of node `n` is broker `n × 1000 + s` (node 1: brokers 1000,
//!   1001, …; readable in client logs, and room for 1000 shards a node);
//! - it listens on, and advertises, port `listener.shard.port.base + s` at
//!   the advertised host (the shared port stays, for bootstrapping);
//! - its rack is `node-<n>`, the same for every shard of a node, so rack-aware
//!   replica placement never puts two replicas of a partition on one node;
//! - a partition this node leads has its owner shard's broker as leader, a
//!   group's coordinator is the broker of the shard owning its
//!   `__consumer_offsets` partition, and the controller shard 0's broker
//!   when this node is the controller.
//!
//! Other nodes of a cluster stay one broker each (their shards' ports are
//! not in the image), so a shard-aware node names them by node id.
//!
//! A request that reaches a shard that does not own its partition (stale
//! metadata, the shared port) is still served, over the mesh, as by default.
//!
//! Invariant: every answer that names a broker (Metadata, DescribeCluster,
//! FindCoordinator, the KIP-951 leader hints) takes it from here, so that
//! they never disagree.

use super::controller::CONTROLLER_SHARD;
use super::image::MetadataImage;
use super::records::NO_LEADER;
use super::{ClusterView, TopicMeta};
pub use crate::config::{NODE_ID_MAX_SHARD_AWARE, SHARDS_PER_NODE_MAX};

/// The listener a node without `listeners` serves clients on, as Kafka's
/// default `PLAINTEXT://:9092`.
pub const DEFAULT_LISTENER_NAME: &str = "PLAINTEXT";

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

/// A broker registered in the image, as this node's clients would reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterBroker {
    pub id: i32,
    /// Its endpoint on the view's listener: host and port; None when it
    /// registered none of that name (clients here cannot reach it).
    pub endpoint: Option<(String, i32)>,
    pub rack: Option<String>,
    pub fenced: bool,
    /// The broker epoch of its registration.
    pub epoch: i64,
}

impl ClusterBroker {
    /// Listed to clients and able to lead: unfenced, with an endpoint.
    fn live(&self) -> Option<Broker> {
        let (host, port) = self.endpoint.as_ref().filter(|_| !self.fenced)?;
        Some(Broker {
            id: self.id,
            host: host.clone(),
            port: *port,
            rack: self.rack.clone(),
        })
    }
}

/// Every broker `image` registers, in id order, at its endpoint named
/// `listener_name`.
pub fn registered(image: &MetadataImage, listener_name: &str) -> Vec<ClusterBroker> {
    image
        .brokers
        .values()
        .map(|record| ClusterBroker {
            id: record.broker_id,
            endpoint: record
                .end_points
                .iter()
                .find(|endpoint| endpoint.name == listener_name)
                .map(|endpoint| (endpoint.host.clone(), i32::from(endpoint.port))),
            rack: record.rack.clone(),
            fenced: record.fenced,
            epoch: record.broker_epoch,
        })
        .collect()
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
    /// Every live broker, in id order: this node's (itself, or its shards)
    /// and every other unfenced registered broker with an endpoint on the
    /// view's listener.
    pub fn brokers(&self) -> Vec<Broker> {
        let mut brokers: Vec<Broker> = match self.broker_layout {
            BrokerLayout::Node => vec![self.broker_of_shard(CONTROLLER_SHARD)],
            BrokerLayout::PerShard { .. } => (0..self.shard_count)
                .map(|shard| self.broker_of_shard(shard))
                .collect(),
        };
        brokers.extend(
            self.registered
                .iter()
                .filter(|broker| broker.id != self.node_id)
                .filter_map(ClusterBroker::live),
        );
        brokers.sort_by_key(|broker| broker.id);
        brokers
    }

    /// The fenced registered brokers with an endpoint on the view's
    /// listener, in id order (DescribeCluster v2 lists them on request).
    pub fn fenced_brokers(&self) -> Vec<Broker> {
        self.registered
            .iter()
            .filter(|broker| broker.fenced && broker.id != self.node_id)
            .filter_map(|broker| {
                let unfenced = ClusterBroker {
                    fenced: false,
                    ..broker.clone()
                };
                unfenced.live()
            })
            .collect()
    }

    /// The live broker with client-visible id `id`.
    pub fn broker(&self, id: i32) -> Option<Broker> {
        match self.local_broker(id) {
            Some(LocalBroker::Node) => Some(self.broker_of_shard(CONTROLLER_SHARD)),
            Some(LocalBroker::Shard(shard)) => Some(self.broker_of_shard(shard)),
            None => self
                .registered
                .iter()
                .filter(|broker| broker.id != self.node_id)
                .find(|broker| broker.id == id)
                .and_then(ClusterBroker::live),
        }
    }

    /// True when node `node_id` can serve clients: this node, or another
    /// broker that is live.
    pub fn node_is_live(&self, node_id: i32) -> bool {
        node_id == self.node_id
            || self
                .registered
                .iter()
                .any(|broker| broker.id == node_id && broker.live().is_some())
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

    /// The broker id clients see for node `node_id` holding `partition` of
    /// `meta`: this node's shard broker in shard-aware mode, else the node.
    pub fn replica_broker_id(&self, meta: &TopicMeta, partition: i32, node_id: i32) -> i32 {
        match self.broker_layout {
            BrokerLayout::PerShard { .. } if node_id == self.node_id => {
                shard_broker_id(self.node_id, meta.owner(partition, self.shard_count))
            }
            _ => node_id,
        }
    }

    /// The broker id that leads `partition` of `meta`, `NO_LEADER` when it
    /// has none or its leader is not live.
    pub fn leader_id(&self, meta: &TopicMeta, partition: i32) -> i32 {
        let leader = self.state(meta, partition).leader;
        if leader == NO_LEADER || !self.node_is_live(leader) {
            return NO_LEADER;
        }
        self.replica_broker_id(meta, partition, leader)
    }

    /// The live broker that leads `partition` of `meta`, with the
    /// partition's leader epoch: the KIP-951 hint for a client that asked
    /// the wrong broker, and the coordinator of an internal partition.
    pub fn leader(&self, meta: &TopicMeta, partition: i32) -> Option<(Broker, i32)> {
        let broker = self.broker(self.leader_id(meta, partition))?;
        Some((broker, self.state(meta, partition).leader_epoch))
    }

    /// The broker id clients are told is the controller (Metadata,
    /// DescribeCluster): the quorum leader when it is a live broker, so
    /// admin requests go straight there; else this node's broker, which
    /// forwards them. A pure controller, or a leader not known yet, is no
    /// broker a client can reach: Kafka's brokers never name one either
    /// (they name a random live broker, `KRaftMetadataCache.getControllerId`).
    pub fn controller_id(&self) -> i32 {
        let leader = self.controller_node_id;
        if leader != self.node_id && self.node_is_live(leader) {
            leader
        } else {
            self.broker_of_shard(CONTROLLER_SHARD).id
        }
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
            states: Vec::new(),
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
            acls: Default::default(),
            scram: Default::default(),
            quotas: Default::default(),
            broker_configs: Default::default(),
            listener_name: "PLAINTEXT".into(),
            controller_node_id: 7,
            registered: Vec::new(),
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
        let topic = view.topic("t").unwrap().clone();
        assert_eq!(view.leader_id(&topic, 0), 7);
        assert_eq!(view.controller_id(), 7);
        // 3: registered as no broker; -1: no quorum leader known.
        for leader in [3, -1] {
            let elsewhere = ClusterView {
                controller_node_id: leader,
                ..view.clone()
            };
            assert_eq!(
                elsewhere.controller_id(),
                7,
                "{leader}: no broker, so this node, which forwards"
            );
        }
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
            (0..4)
                .map(|p| view.leader_id(view.topic("t").unwrap(), p))
                .collect::<Vec<_>>(),
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

    #[test]
    fn clients_are_told_a_controller_they_can_reach() {
        let registered = |id: i32, fenced: bool| ClusterBroker {
            id,
            endpoint: Some(("other.example".into(), 9092)),
            rack: None,
            fenced,
            epoch: 1,
        };
        let mut view = view(BrokerLayout::Node);
        view.registered = vec![registered(2, true), registered(3, false)];
        let told = |view: &ClusterView, leader: i32| {
            ClusterView {
                controller_node_id: leader,
                ..view.clone()
            }
            .controller_id()
        };
        assert_eq!(told(&view, 3), 3, "a leader that is a live broker");
        assert_eq!(told(&view, 2), 7, "a fenced broker: this node forwards");
        assert_eq!(told(&view, 9), 7, "a pure controller is no broker");
        assert_eq!(told(&view, -1), 7, "no leader known");
        assert_eq!(told(&view, 7), 7);
        let view = ClusterView {
            broker_layout: BrokerLayout::PerShard { port_base: 9100 },
            ..view
        };
        assert_eq!(told(&view, 9), 7000, "this node's controller shard");
    }
}
