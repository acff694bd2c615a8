//! A shard's own copy of the cluster view. The controller broadcasts one
//! shared snapshot (`Arc<ClusterView>`); each shard copies it into its own
//! memory when it is installed and resolves every topic's configs over the
//! broker's defaults then, once. A request then takes an `Rc` of this copy:
//! no reference count that every core writes, no config parsed per request.
//!
//! It also carries the metadata quorum's leader as the controller last
//! saw it, which `Metadata` and `DescribeCluster` report as the controller
//! (Kafka's clients send admin requests there).
//!
//! Invariant: a `ShardView` is immutable and held only in an `Rc` of its
//! shard; it has a resolved `TopicConfig` for every topic it holds.

use std::collections::BTreeMap;
use std::ops::Deref;

use crate::config::{BrokerConfig, TopicConfig};
use crate::metadata::ClusterView;

/// The quorum leader a view reports as the controller: `None` on a node
/// that is its quorum's only voter (the cluster view's own controller, as
/// before there were several), else the leader's node id or -1 while
/// there is none.
pub type QuorumLeader = Option<i32>;

pub struct ShardView {
    cluster: ClusterView,
    quorum_leader: QuorumLeader,
    /// Each topic's overrides resolved over the broker's defaults, by name.
    configs: BTreeMap<String, TopicConfig>,
}

impl ShardView {
    /// This shard's copy of `shared`, with every topic's configs resolved.
    pub fn new(
        shared: &ClusterView,
        broker: &BrokerConfig,
        quorum_leader: QuorumLeader,
    ) -> ShardView {
        let configs = shared
            .topics
            .iter()
            .map(|(name, meta)| (name.clone(), TopicConfig::resolve(broker, &meta.configs)))
            .collect();
        ShardView {
            cluster: shared.clone(),
            quorum_leader,
            configs,
        }
    }

    /// The broker id Metadata and DescribeCluster name as the controller:
    /// the quorum's leader where there are several voters.
    pub fn controller_id(&self) -> i32 {
        self.quorum_leader
            .unwrap_or_else(|| self.cluster.controller_id())
    }

    pub fn quorum_leader(&self) -> QuorumLeader {
        self.quorum_leader
    }

    /// The resolved configs of `topic`, if the view holds it.
    pub fn topic_config(&self, topic: &str) -> Option<&TopicConfig> {
        self.configs.get(topic)
    }
}

/// A shard view reads as the cluster view it copies.
impl Deref for ShardView {
    type Target = ClusterView;

    fn deref(&self) -> &ClusterView {
        &self.cluster
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::Arc;

    use super::*;
    use crate::metadata::{BrokerLayout, TopicMeta};

    #[test]
    fn every_topic_has_its_configs_resolved_once_installed() {
        let broker = BrokerConfig::new(PathBuf::from("/tmp/x"), 1);
        let topic = |name: &str, configs: &[(&str, &str)]| {
            let meta = TopicMeta {
                name: name.to_string(),
                id: uuid::Uuid::from_u128(name.len() as u128),
                partitions: 1,
                configs: configs
                    .iter()
                    .map(|(key, value)| (key.to_string(), value.to_string()))
                    .collect(),
                placement: vec![0],
            };
            (name.to_string(), Arc::new(meta))
        };
        let shared = ClusterView {
            cluster_id: "c".into(),
            node_id: 1,
            advertised_host: "localhost".into(),
            advertised_port: 9092,
            broker_layout: BrokerLayout::Node,
            shard_count: 1,
            topics: BTreeMap::new(),
            topic_names_by_id: HashMap::new(),
        }
        .with_topics(BTreeMap::from([
            topic("plain", &[]),
            topic(
                "small",
                &[("max.message.bytes", "1000"), ("segment.bytes", "4096")],
            ),
        ]));
        let view = ShardView::new(&shared, &broker, None);
        assert_eq!(view.controller_id(), shared.controller_id());
        assert_eq!(ShardView::new(&shared, &broker, Some(3)).controller_id(), 3);
        assert_eq!(view.topics.len(), 2, "reads as the cluster view");
        let small = view.topic_config("small").expect("resolved");
        assert_eq!(
            (small.max_message_bytes, small.log.segment_bytes),
            (1000, 4096)
        );
        let plain = view.topic_config("plain").expect("resolved");
        assert_eq!(plain.max_message_bytes, broker.message_max_bytes);
        assert!(view.topic_config("absent").is_none());
    }
}
