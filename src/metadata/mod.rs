//! Cluster metadata: topics, their partitions and configs, which shard owns
//! each partition, and the brokers clients see (`brokers.rs`).
//!
//! Invariant: every shard reads an immutable [`ClusterView`] snapshot; only
//! the controller builds a new one (its decisions are `controller.rs`, pure;
//! `shard/controller.rs` persists and broadcasts the result on
//! `CONTROLLER_SHARD`). Nothing here does IO on the data path but `store.rs`,
//! which the controller's driver calls. `metadata` imports no `shard` or
//! `server` (`tests/architecture.rs`).

pub mod brokers;
pub mod controller;
pub mod heartbeats;
pub mod image;
pub mod placer;
pub mod producer_ids;
pub mod records;
pub mod store;
pub mod table;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use uuid::Uuid;

use crate::config::TOPIC_NAME_LENGTH_MAX;
pub use brokers::BrokerLayout;

/// The topics Kafka reports as internal.
pub const INTERNAL_TOPICS: &[&str] = &["__consumer_offsets", "__transaction_state"];

/// The metadata log's name, as Kafka's: its one partition lives in the
/// data directory as a partition would (`quorum::METADATA_LOG_DIR`), so no
/// topic may take the name.
pub const CLUSTER_METADATA_TOPIC: &str = "__cluster_metadata";

/// A topic as the cluster knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    /// Topic-level config overrides (Kafka names); defaults are not stored.
    pub configs: BTreeMap<String, String>,
    /// The placement table: the shard that owns each partition, by index.
    /// Chosen by `owner_shard` when the topic is made and kept in metadata,
    /// so that a partition can later move without changing the rule.
    #[serde(default)]
    pub placement: Vec<u32>,
}

impl TopicMeta {
    /// True when every partition has an owner among `shard_count` shards.
    pub fn placement_fits(&self, shard_count: usize) -> bool {
        self.placement.len() == self.partitions.max(0) as usize
            && self
                .placement
                .iter()
                .all(|&shard| (shard as usize) < shard_count)
    }

    /// The shard that owns `partition` among `shard_count` shards: the
    /// placement table's entry, or the rule for a partition it does not place.
    pub fn owner(&self, partition: i32, shard_count: usize) -> usize {
        usize::try_from(partition)
            .ok()
            .and_then(|index| self.placement.get(index).copied())
            .map(|shard| shard as usize)
            .filter(|&shard| shard < shard_count)
            .unwrap_or_else(|| owner_shard(&self.name, partition, shard_count))
    }

    /// This topic grown to `partitions`: the new partitions are placed by
    /// the rule, the existing ones stay where they are.
    pub fn grown(&self, partitions: i32, shard_count: usize) -> TopicMeta {
        TopicMeta {
            placement: (0..partitions)
                .map(|partition| self.owner(partition, shard_count) as u32)
                .collect(),
            partitions,
            ..self.clone()
        }
    }

    /// Kafka's own internal topics; a user topic named `__x` is not one.
    pub fn is_internal(&self) -> bool {
        INTERNAL_TOPICS.contains(&self.name.as_str())
    }
}

/// One immutable snapshot of the cluster, shared by every shard.
#[derive(Debug, Clone)]
pub struct ClusterView {
    pub cluster_id: String,
    pub node_id: i32,
    pub advertised_host: String,
    pub advertised_port: i32,
    /// One broker for the node, or one per shard (`brokers.rs`).
    pub broker_layout: BrokerLayout,
    pub shard_count: usize,
    pub topics: BTreeMap<String, Arc<TopicMeta>>,
    pub topic_names_by_id: HashMap<Uuid, String>,
}

impl ClusterView {
    pub fn with_topics(&self, topics: BTreeMap<String, Arc<TopicMeta>>) -> ClusterView {
        let topic_names_by_id = topics
            .values()
            .map(|topic| (topic.id, topic.name.clone()))
            .collect();
        ClusterView {
            topics,
            topic_names_by_id,
            ..self.clone()
        }
    }

    pub fn topic(&self, name: &str) -> Option<&Arc<TopicMeta>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<&Arc<TopicMeta>> {
        self.topic_names_by_id
            .get(&id)
            .and_then(|name| self.topics.get(name))
    }

    /// The shard that owns `partition` of `topic`: the placement table's
    /// entry, or the rule for a partition the table does not place.
    pub fn owner(&self, topic: &str, partition: i32) -> usize {
        match self.topics.get(topic) {
            Some(meta) => meta.owner(partition, self.shard_count),
            None => owner_shard(topic, partition, self.shard_count),
        }
    }
}

/// Placement rule: a topic's partitions go round-robin over the shards,
/// starting at a shard chosen by the topic name's hash, so one topic's
/// partitions spread evenly and different topics start on different shards.
pub fn owner_shard(topic: &str, partition: i32, shard_count: usize) -> usize {
    let start = u64::from(crc32c::crc32c(topic.as_bytes()));
    let shards = shard_count.max(1) as u64;
    ((start + partition.max(0) as u64) % shards) as usize
}

/// The initial placement table of a topic: `owner_shard` for each partition.
pub fn initial_placement(topic: &str, partitions: i32, shard_count: usize) -> Vec<u32> {
    (0..partitions)
        .map(|partition| owner_shard(topic, partition, shard_count) as u32)
        .collect()
}

/// Why a topic name is illegal, as Kafka words it.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".to_string());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".to_string());
    }
    if name.len() > TOPIC_NAME_LENGTH_MAX {
        return Err(format!(
            "Topic name is illegal, it can't be longer than {TOPIC_NAME_LENGTH_MAX} characters, topic name: {name}"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(format!(
            "Topic name {name} is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_spreads_a_topic_over_all_shards() {
        for shards in 1..=8 {
            let mut seen = vec![0; shards];
            for partition in 0..(shards as i32 * 4) {
                seen[owner_shard("orders", partition, shards)] += 1;
            }
            assert!(seen.iter().all(|&count| count == 4), "{shards}: {seen:?}");
        }
        assert_eq!(owner_shard("t", 3, 1), 0);
    }

    #[test]
    fn the_placement_table_decides_and_the_rule_fills_gaps() {
        let mut topic = TopicMeta {
            name: "t".into(),
            id: uuid::Uuid::nil(),
            partitions: 3,
            configs: BTreeMap::new(),
            placement: vec![1, 1, 0],
        };
        assert!(topic.placement_fits(2));
        assert!(!topic.placement_fits(1));
        let empty = ClusterView {
            cluster_id: String::new(),
            node_id: 1,
            advertised_host: String::new(),
            advertised_port: 9092,
            broker_layout: BrokerLayout::Node,
            shard_count: 2,
            topics: BTreeMap::new(),
            topic_names_by_id: HashMap::new(),
        };
        let mut topics = BTreeMap::new();
        topics.insert("t".to_string(), Arc::new(topic.clone()));
        let view = empty.with_topics(topics.clone());
        assert_eq!(
            (0..3).map(|p| view.owner("t", p)).collect::<Vec<_>>(),
            vec![1, 1, 0]
        );
        topic.placement = vec![5];
        topics.insert("t".to_string(), Arc::new(topic));
        let view = empty.with_topics(topics);
        assert_eq!(view.owner("t", 0), owner_shard("t", 0, 2));
        assert_eq!(view.owner("t", 2), owner_shard("t", 2, 2));
        assert_eq!(initial_placement("t", 3, 2).len(), 3);
        let grown = TopicMeta {
            name: "t".into(),
            id: uuid::Uuid::nil(),
            partitions: 2,
            configs: BTreeMap::new(),
            placement: vec![1, 1],
        }
        .grown(5, 2);
        assert_eq!(grown.partitions, 5);
        assert_eq!(&grown.placement[..2], &[1, 1]);
        assert_eq!(grown.placement[2..], initial_placement("t", 5, 2)[2..]);
        assert!(grown.placement_fits(2));
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_x-2").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("bad name!").is_err());
        assert!(validate_topic_name(&"a".repeat(249)).is_ok());
        assert!(validate_topic_name(&"a".repeat(250)).is_err());
    }
}
