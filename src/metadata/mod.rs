//! Cluster metadata: topics, their partitions and configs, each partition's
//! replicas and leader, which shard owns each partition this node holds,
//! and the brokers clients see (`brokers.rs`).
//!
//! Invariant: every shard reads an immutable [`ClusterView`] snapshot, the
//! cluster's as the metadata image holds it (`ClusterView::with_image`), so
//! the same code answers on one node and on any node of a cluster: this
//! node serves a partition's data only when the view names it the leader
//! (`ClusterView::lead`), and opens only the partitions it replicates
//! (`ClusterView::local_partitions`). Only the controller builds a new view
//! (its decisions are `controller.rs`, pure; `shard/controller.rs` persists
//! and broadcasts the result on `CONTROLLER_SHARD`). Nothing here does IO
//! on the data path but `store.rs`, which the controller's driver calls. `metadata` imports no `shard` or
//! `server` (`tests/architecture.rs`).

pub mod acls;
pub mod alter_partition;
#[cfg(test)]
mod alter_partition_tests;
pub mod broker_configs;
pub mod brokers;
pub mod controller;
#[cfg(test)]
mod controller_tests;
pub mod elections;
#[cfg(test)]
mod elections_tests;
pub mod heartbeats;
#[cfg(test)]
mod heartbeats_tests;
pub mod image;
pub mod leadership;
pub mod placer;
pub mod producer_ids;
pub mod quotas;
pub mod reassignment;
pub mod records;
pub mod scram;
pub mod store;
pub mod table;
#[cfg(test)]
pub(crate) mod view_tests;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use crate::config::TOPIC_NAME_LENGTH_MAX;
use crate::security::acl::AclIndex;
pub use brokers::{BrokerLayout, ClusterBroker};
use image::MetadataImage;

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
    /// The placement table: the shard that owns each partition on this
    /// node, by index (for a partition this node holds no replica of, the
    /// rule's shard, never used). Chosen by `owner_shard` when the topic is
    /// made and kept in metadata, so that a partition can later move
    /// without changing the rule.
    #[serde(default)]
    pub placement: Vec<u32>,
    /// Each partition's replicas and leader, by index: as the image's
    /// PartitionRecords left them, or as the controller placed a partition
    /// it is making. Only a table from before the metadata log
    /// (`shoal-topics.json`) holds none: its partitions are this node's
    /// alone (`PartitionState::single_node`).
    #[serde(skip)]
    pub states: Vec<PartitionState>,
}

/// One partition's replicas and leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    /// Node ids, the preferred leader first.
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// The leading node, or `NO_LEADER`.
    pub leader: i32,
    pub leader_epoch: i32,
    /// Bumped by every change of the partition (the image's); a leader
    /// sends it in AlterPartition, which the controller refuses
    /// (INVALID_UPDATE_VERSION) when the partition moved on since.
    pub partition_epoch: i32,
}

impl PartitionState {
    /// A partition a table holds no state for (a single node's, from
    /// before the metadata log): `node_id` its one replica and leader, at
    /// epoch 0 (`table::changes` writes it so).
    pub fn single_node(node_id: i32) -> PartitionState {
        PartitionState {
            replicas: vec![node_id],
            isr: vec![node_id],
            leader: node_id,
            leader_epoch: 0,
            partition_epoch: 0,
        }
    }
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

    /// The state of `partition`, None for one the image does not hold yet
    /// (or that does not exist).
    pub fn state(&self, partition: i32) -> Option<&PartitionState> {
        usize::try_from(partition)
            .ok()
            .and_then(|index| self.states.get(index))
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
    /// The name of the listener clients reach this node on (`PLAINTEXT`):
    /// other brokers are advertised at their endpoint of that name, as
    /// Kafka matches the listener a request came in on.
    pub listener_name: String,
    /// One broker for the node, or one per shard (`brokers.rs`).
    pub broker_layout: BrokerLayout,
    pub shard_count: usize,
    /// The node that is the active controller (the metadata quorum's
    /// leader); this node until the quorum names another.
    pub controller_node_id: i32,
    /// Every broker registered in the image, by id.
    pub registered: Vec<ClusterBroker>,
    pub topics: BTreeMap<String, Arc<TopicMeta>>,
    pub topic_names_by_id: HashMap<Uuid, String>,
    /// The image's ACLs, indexed for the authorizer (`server::authorize`).
    pub acls: Arc<AclIndex>,
    /// The SCRAM credentials of the image, shared between views.
    pub scram: Arc<scram::ScramCredentials>,
    /// The client quotas of the image (`quota`), shared between views.
    pub quotas: Arc<quotas::ClientQuotas>,
    /// The image's dynamic broker configs (`broker_configs`), by resource
    /// name.
    pub broker_configs: Arc<broker_configs::BrokerConfigs>,
}

impl ClusterView {
    /// This view with the topics and brokers `image` holds: each topic's
    /// partitions with their replicas and leaders, placed on this node's
    /// shards by `table::topic_table`.
    pub fn with_image(&self, image: &MetadataImage) -> ClusterView {
        ClusterView {
            registered: brokers::registered(image, &self.listener_name),
            acls: Arc::new(AclIndex::new(image.acls.clone())),
            scram: Arc::new(image.scram.clone()),
            quotas: Arc::new(image.quotas.clone()),
            broker_configs: Arc::new(image.broker_configs()),
            ..self.with_topics(table::topic_table(image, self.node_id, self.shard_count))
        }
    }

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

    /// The state of `partition` of `meta`: the table's, or this node's
    /// alone for a table without states.
    pub fn state<'a>(&self, meta: &'a TopicMeta, partition: i32) -> Cow<'a, PartitionState> {
        match meta.state(partition) {
            Some(state) => Cow::Borrowed(state),
            None => Cow::Owned(PartitionState::single_node(self.node_id)),
        }
    }

    /// True when this node holds a replica of `partition` of `meta`.
    pub fn hosts(&self, meta: &TopicMeta, partition: i32) -> bool {
        meta.state(partition)
            .is_none_or(|state| state.replicas.contains(&self.node_id))
    }

    /// True when this node leads `partition` of `meta`.
    pub fn leads(&self, meta: &TopicMeta, partition: i32) -> bool {
        meta.state(partition)
            .is_none_or(|state| state.leader == self.node_id)
    }

    /// The owner shard of `partition` of `meta` when this node serves its
    /// data, as Kafka's `Partition.localLogWithEpochOrThrow` decides: not a
    /// replica here, NOT_LEADER_OR_FOLLOWER; a `current_leader_epoch`
    /// (`-1` for none) older than the partition's, FENCED_LEADER_EPOCH,
    /// newer, UNKNOWN_LEADER_EPOCH; a replica that does not lead,
    /// NOT_LEADER_OR_FOLLOWER. On the data path: a served view holds every
    /// partition's state, so this allocates nothing.
    pub fn lead(
        &self,
        meta: &TopicMeta,
        partition: i32,
        current_leader_epoch: i32,
    ) -> Result<usize, ResponseError> {
        let state = self.state(meta, partition);
        if !state.replicas.contains(&self.node_id) {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        if current_leader_epoch != NO_LEADER_EPOCH {
            if current_leader_epoch < state.leader_epoch {
                return Err(ResponseError::FencedLeaderEpoch);
            }
            if current_leader_epoch > state.leader_epoch {
                return Err(ResponseError::UnknownLeaderEpoch);
            }
        }
        if state.leader != self.node_id {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        Ok(meta.owner(partition, self.shard_count))
    }

    /// The partitions of `meta` this node replicates and `shard` owns: the
    /// ones that shard opens and recovers.
    pub fn local_partitions(&self, meta: &TopicMeta, shard: usize) -> Vec<i32> {
        (0..meta.partitions)
            .filter(|&partition| {
                self.hosts(meta, partition) && meta.owner(partition, self.shard_count) == shard
            })
            .collect()
    }

    /// `partitions` of `meta` that this node replicates, by the shard that
    /// owns each: what each shard opens or removes of them.
    pub fn hosted_by_owner(
        &self,
        meta: &TopicMeta,
        partitions: impl IntoIterator<Item = i32>,
    ) -> BTreeMap<usize, Vec<i32>> {
        let mut by_owner: BTreeMap<usize, Vec<i32>> = BTreeMap::new();
        for partition in partitions {
            if self.hosts(meta, partition) {
                by_owner
                    .entry(meta.owner(partition, self.shard_count))
                    .or_default()
                    .push(partition);
            }
        }
        by_owner
    }

    /// The topics this view holds and `next` does not (by id, so a topic
    /// re-created under its name is one of them): this node removes their
    /// partitions when it installs `next`.
    pub fn removed_in(&self, next: &ClusterView) -> Vec<Arc<TopicMeta>> {
        self.topics
            .values()
            .filter(|meta| next.topic_by_id(meta.id).is_none())
            .cloned()
            .collect()
    }

    /// The partitions `next` gives this node that this view does not, by
    /// topic as `next` holds it: this node opens them before it installs
    /// `next`.
    pub fn arriving_in(&self, next: &ClusterView) -> Vec<(Arc<TopicMeta>, Vec<i32>)> {
        next.topics
            .values()
            .filter_map(|meta| {
                let before = self.topic_by_id(meta.id);
                let held = |partition| {
                    before.is_some_and(|before| {
                        partition < before.partitions && self.hosts(before, partition)
                    })
                };
                let arriving: Vec<i32> = (0..meta.partitions)
                    .filter(|&partition| next.hosts(meta, partition) && !held(partition))
                    .collect();
                (!arriving.is_empty()).then(|| (meta.clone(), arriving))
            })
            .collect()
    }

    /// The partitions of topics both views hold that this view has this
    /// node replicate and `next` does not (a reassignment moved them
    /// away), by topic as this view holds it: this node deletes its copies
    /// once it installed `next` (Kafka's StopReplica with delete).
    pub fn departing_in(&self, next: &ClusterView) -> Vec<(Arc<TopicMeta>, Vec<i32>)> {
        self.topics
            .values()
            .filter_map(|meta| {
                let after = next.topic_by_id(meta.id)?;
                let departing: Vec<i32> = (0..meta.partitions.min(after.partitions))
                    .filter(|&p| self.hosts(meta, p) && !next.hosts(after, p))
                    .collect();
                (!departing.is_empty()).then(|| (meta.clone(), departing))
            })
            .collect()
    }

    /// The partitions of internal topic `topic` that `shard` of this node
    /// leads in `next` and not in this view (gained), and the other way
    /// round (lost): the coordinators that shard loads and unloads.
    pub fn leadership_moves(
        &self,
        next: &ClusterView,
        topic: &str,
        shard: usize,
    ) -> (Vec<i32>, Vec<i32>) {
        let led = |view: &ClusterView| -> BTreeSet<i32> {
            view.topic(topic)
                .map(|meta| view.led_partitions(meta, shard))
                .unwrap_or_default()
                .into_iter()
                .collect()
        };
        let (before, after) = (led(self), led(next));
        (
            after.difference(&before).copied().collect(),
            before.difference(&after).copied().collect(),
        )
    }

    /// The partitions of `meta` this node leads and `shard` owns: the ones
    /// whose coordinators (groups, transactions) that shard runs.
    pub fn led_partitions(&self, meta: &TopicMeta, shard: usize) -> Vec<i32> {
        (0..meta.partitions)
            .filter(|&partition| {
                self.leads(meta, partition) && meta.owner(partition, self.shard_count) == shard
            })
            .collect()
    }
}

/// A request's `current_leader_epoch` when the client names none.
pub const NO_LEADER_EPOCH: i32 = -1;

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
            states: Vec::new(),
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
            acls: Default::default(),
            scram: Default::default(),
            quotas: Default::default(),
            broker_configs: Default::default(),
            listener_name: "PLAINTEXT".into(),
            controller_node_id: 1,
            registered: Vec::new(),
        };
        let mut topics = BTreeMap::new();
        topics.insert("t".to_string(), Arc::new(topic.clone()));
        let view = empty.with_topics(topics.clone());
        assert_eq!(
            (0..3)
                .map(|p| view.topic("t").unwrap().owner(p, 2))
                .collect::<Vec<_>>(),
            vec![1, 1, 0]
        );
        topic.placement = vec![5];
        topics.insert("t".to_string(), Arc::new(topic));
        let view = empty.with_topics(topics);
        let t = view.topic("t").unwrap();
        assert_eq!(t.owner(0, 2), owner_shard("t", 0, 2));
        assert_eq!(t.owner(2, 2), owner_shard("t", 2, 2));
        assert_eq!(initial_placement("t", 3, 2).len(), 3);
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
