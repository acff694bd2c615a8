//! A shard's own copy of the cluster view. The controller broadcasts one
//! shared snapshot (`Arc<ClusterView>`); each shard copies it into its own
//! memory when it is installed and resolves every topic's configs over the
//! broker's defaults then, once. A request then takes an `Rc` of this copy:
//! no reference count that every core writes, no config parsed per request.
//!
//! Invariant: a `ShardView` is immutable and held only in an `Rc` of its
//! shard; it has a resolved `TopicConfig` for every topic it holds.

use std::collections::BTreeMap;
use std::ops::Deref;

use crate::config::{BrokerConfig, TopicConfig};
use crate::metadata::ClusterView;

pub struct ShardView {
    cluster: ClusterView,
    /// Each topic's overrides resolved over the broker's defaults, by name.
    configs: BTreeMap<String, TopicConfig>,
}

impl ShardView {
    /// This shard's copy of `shared`, with every topic's configs resolved.
    pub fn new(shared: &ClusterView, broker: &BrokerConfig) -> ShardView {
        let configs = shared
            .topics
            .iter()
            .map(|(name, meta)| (name.clone(), TopicConfig::resolve(broker, &meta.configs)))
            .collect();
        ShardView {
            cluster: shared.clone(),
            configs,
        }
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
                states: Vec::new(),
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
            acls: Default::default(),
            scram: Default::default(),
            quotas: Default::default(),
            broker_configs: Default::default(),
            listener_name: "PLAINTEXT".into(),
            controller_node_id: 1,
            registered: Vec::new(),
        }
        .with_topics(BTreeMap::from([
            topic("plain", &[]),
            topic(
                "small",
                &[("max.message.bytes", "1000"), ("segment.bytes", "4096")],
            ),
        ]));
        let view = ShardView::new(&shared, &broker);
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
