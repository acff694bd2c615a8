//! Cluster metadata: topics, their partitions and configs, and which shard
//! owns each partition.
//!
//! Invariant: every shard reads an immutable [`ClusterView`] snapshot; only
//! the controller (shard 0, see `controller.rs`) builds a new one, persists it
//! and broadcasts it. Nothing here does IO on the data path.

pub mod controller;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use uuid::Uuid;

use crate::config::TOPIC_NAME_LENGTH_MAX;

/// The topics Kafka reports as internal.
pub const INTERNAL_TOPICS: &[&str] = &["__consumer_offsets", "__transaction_state"];

/// A topic as the cluster knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    /// Topic-level config overrides (Kafka names); defaults are not stored.
    pub configs: BTreeMap<String, String>,
}

impl TopicMeta {
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

    /// The shard that owns `partition` of `topic`.
    pub fn owner(&self, topic: &str, partition: i32) -> usize {
        owner_shard(topic, partition, self.shard_count)
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
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_x-2").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("bad name!").is_err());
        assert!(validate_topic_name(&"a".repeat(249)).is_ok());
        assert!(validate_topic_name(&"a".repeat(250)).is_err());
    }
}
