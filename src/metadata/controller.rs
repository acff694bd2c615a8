//! The metadata controller's decisions, as a pure state machine: it checks
//! topic creation, deletion, config changes and partition growth against the
//! current topic table and the broker's config, and returns a `Plan`: the
//! next table, the answer for each request, and the partitions the owner
//! shards must open or remove. `shard/controller.rs` drives it (on
//! `CONTROLLER_SHARD`): it carries out the plan's opens, writes the table,
//! broadcasts the new snapshot to every shard and only then answers, as
//! `shard/groups.rs` drives the group state machine of `group/`.
//!
//! New partitions go where Kafka's controller puts them: over the brokers
//! the image registers (`placement_brokers`; never a pure controller), by
//! Kafka's striped placer or the client's checked assignment
//! (`placer.rs`); a plan's topic carries each partition's replicas, ISR
//! and leader (`TopicMeta::states`), which `table::changes` writes as
//! they are. Then, on each replica's node, over
//! its shards: this node's shard of a partition it replicates is the
//! placement rule's, or the shard whose broker the client named in
//! shard-aware mode; other nodes place their own replicas by their rule.
//! A replication factor goes up to the brokers registered, as Kafka's; an
//! internal topic asking for the default (-1) gets its
//! `offsets.topic.replication.factor` or
//! `transaction.state.log.replication.factor`, capped at the unfenced
//! brokers (`ReplicationConfig::internal_topic_replication`), so a single
//! node with Kafka's defaults still makes them.
//!
//! Invariant: no IO, no clock, no shards, no randomness of its own (topic
//! ids and placement seeds come from the caller): the same table, brokers
//! and requests always give the same plan. It imports no `shard` or
//! `server` (`tests/architecture.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::brokers::{BrokerLayout, LocalBroker};
use super::image::MetadataImage;
use super::placer::{self, NewPartition, PlacementBroker};
use super::{
    owner_shard, validate_topic_name, ClusterView, PartitionState, TopicMeta,
    CLUSTER_METADATA_TOPIC,
};
use crate::config::{
    apply_config_ops, validated_overrides, BrokerConfig, ConfigError, ConfigOp,
    PARTITIONS_PER_TOPIC_MAX,
};

/// The shard that runs the controller: the only one that changes the topic
/// table, and the broker clients are told is the controller.
pub const CONTROLLER_SHARD: usize = 0;

/// The topic table: every topic by name.
pub type TopicTable = BTreeMap<String, Arc<TopicMeta>>;

/// A Kafka error code with the message to send back with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaError {
    pub code: i16,
    pub message: Option<String>,
}

impl KafkaError {
    pub fn new(error: ResponseError) -> KafkaError {
        KafkaError {
            code: error.code(),
            message: None,
        }
    }

    pub fn with_message(error: ResponseError, message: String) -> KafkaError {
        KafkaError {
            code: error.code(),
            message: Some(message),
        }
    }
}

/// A topic to create, as the controller receives it.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1: the broker's `num.partitions`.
    pub partitions: i32,
    /// -1: the broker's `default.replication.factor`.
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
    /// The client's replica assignment, (partition index, broker ids) in
    /// request order; empty: the placer chooses.
    pub assignments: Vec<(i32, Vec<i32>)>,
    pub validate_only: bool,
}

/// A change to one topic's config overrides, as the controller receives it.
#[derive(Debug, Clone)]
pub struct TopicConfigChange {
    pub topic: String,
    pub change: ConfigChange,
    pub validate_only: bool,
}

#[derive(Debug, Clone)]
pub enum ConfigChange {
    /// IncrementalAlterConfigs: these operations, in order.
    Incremental(Vec<(String, ConfigOp)>),
    /// AlterConfigs: this whole override set replaces the old one.
    Replace(Vec<(String, String)>),
}

/// A topic to grow (CreatePartitions), as the controller receives it.
#[derive(Debug, Clone)]
pub struct PartitionGrowth {
    pub topic: String,
    /// The partition count wanted, the existing partitions included.
    pub count: i32,
    /// The replicas (broker ids) of each new partition, when the client
    /// chose them.
    pub assignments: Option<Vec<Vec<i32>>>,
    pub validate_only: bool,
}

/// A topic to delete, by name or by id.
#[derive(Debug, Clone)]
pub enum TopicRef {
    Name(String),
    Id(Uuid),
}

/// What one batch of requests does, decided before anything is carried out.
#[derive(Debug)]
pub struct Plan<T> {
    /// The topic table once every request that succeeded is applied.
    pub table: TopicTable,
    /// One answer per request, in request order.
    pub results: Vec<Result<T, KafkaError>>,
    /// Topics whose owner shards must open their partitions (created or
    /// grown), with the index of the request each answers.
    pub open: Vec<(usize, Arc<TopicMeta>)>,
    /// Topics whose owner shards must remove their partitions.
    pub delete: Vec<Arc<TopicMeta>>,
    /// Some topic's config overrides change.
    pub reconfigured: bool,
}

impl<T> Plan<T> {
    fn new(table: TopicTable, requests: usize) -> Plan<T> {
        Plan {
            table,
            results: Vec::with_capacity(requests),
            open: Vec::new(),
            delete: Vec::new(),
            reconfigured: false,
        }
    }

    /// True when the table changes: only then is it written and broadcast.
    pub fn changes_table(&self) -> bool {
        !self.open.is_empty() || !self.delete.is_empty() || self.reconfigured
    }

    /// The owners could not open the partitions of request `index`: the
    /// topic goes back to `before` (absent when it was new) and the request
    /// fails with `error`.
    pub fn open_failed(&mut self, index: usize, before: Option<Arc<TopicMeta>>, error: KafkaError) {
        let Some((_, meta)) = self.open.iter().find(|(at, _)| *at == index) else {
            return;
        };
        match before {
            Some(before) => self.table.insert(meta.name.clone(), before),
            None => self.table.remove(&meta.name),
        };
        self.results[index] = Err(error);
    }

    /// The table could not be written: nothing is installed and every
    /// request that succeeded fails with KAFKA_STORAGE_ERROR.
    pub fn save_failed(&mut self, error: &str) {
        for result in self.results.iter_mut().filter(|result| result.is_ok()) {
            *result = Err(KafkaError::with_message(
                ResponseError::KafkaStorageError,
                error.to_string(),
            ));
        }
    }
}

/// The brokers new replicas may go to: every broker `image` registers and
/// no other node, so a pure controller is never given a replica, and with
/// no broker unfenced the placer answers as Kafka's,
/// INVALID_REPLICATION_FACTOR "All brokers are currently fenced.".
///
/// One exception, `lone_broker`: the node of a lone voter that is also a
/// broker, while the image registers no broker at all. Its broker
/// registers in process as it starts (`LifecycleManager::start_sole`), but
/// its other shards may take requests a moment before that registration
/// commits (auto-created topics, a CreateTopics), and that node is the
/// whole cluster either way.
pub fn placement_brokers(image: &MetadataImage, lone_broker: Option<i32>) -> Vec<PlacementBroker> {
    if let (true, Some(id)) = (image.brokers.is_empty(), lone_broker) {
        return vec![PlacementBroker {
            id,
            rack: None,
            fenced: false,
            in_controlled_shutdown: false,
        }];
    }
    image
        .brokers
        .values()
        .map(|record| PlacementBroker {
            id: record.broker_id,
            rack: record.rack.clone(),
            fenced: record.fenced,
            in_controlled_shutdown: record.in_controlled_shutdown,
        })
        .collect()
}

/// Kafka's `applyPartitionChangeQuota` (the controller mutation quota,
/// `quota::mutation`): asked for the partitions one topic of a request
/// creates or deletes, once that topic is otherwise sound; an error
/// (THROTTLING_QUOTA_EXCEEDED) refuses the topic.
pub type PartitionQuota<'a> = &'a mut dyn FnMut(i32) -> Result<(), KafkaError>;

/// CreateTopics: each topic checked (name, partition count, replication
/// factor or assignment, configs), its partitions placed over `brokers`
/// from a fresh `seed`, counted against `quota` (validate-only ones too,
/// as Kafka counts them), and, unless `validate_only`, added with an id
/// from `new_id`.
pub fn create_topics(
    config: &BrokerConfig,
    view: &ClusterView,
    brokers: &[PlacementBroker],
    topics: Vec<NewTopic>,
    mut seed: impl FnMut() -> u64,
    mut new_id: impl FnMut() -> Uuid,
    quota: PartitionQuota<'_>,
) -> Plan<Arc<TopicMeta>> {
    let mut plan = Plan::new(view.topics.clone(), topics.len());
    for topic in topics {
        if plan.table.contains_key(&topic.name) {
            plan.results.push(Err(KafkaError::with_message(
                ResponseError::TopicAlreadyExists,
                format!("Topic '{}' already exists.", topic.name),
            )));
            continue;
        }
        let checked = check_new_topic(&topic).and_then(|()| {
            let placed = place_topic(config, view, brokers, &topic, seed())?;
            let configs =
                validated_overrides(topic.configs.iter().cloned()).map_err(invalid_config)?;
            Ok((placed, configs))
        });
        let checked = checked.and_then(|(placed, configs)| {
            quota(placed.states.len() as i32)?;
            Ok((placed, configs))
        });
        let (placed, configs) = match checked {
            Ok(checked) => checked,
            Err(error) => {
                plan.results.push(Err(error));
                continue;
            }
        };
        let meta = Arc::new(TopicMeta {
            name: topic.name,
            id: new_id(),
            partitions: placed.states.len() as i32,
            configs,
            placement: placed.placement,
            states: placed.states,
        });
        if !topic.validate_only {
            plan.table.insert(meta.name.clone(), meta.clone());
            plan.open.push((plan.results.len(), meta.clone()));
        }
        plan.results.push(Ok(meta));
    }
    plan
}

/// DeleteTopics: each topic found by name or id, and within `quota`,
/// leaves the table; its partitions are to be removed by their owners
/// (per `view`, which still holds it).
pub fn delete_topics(
    view: &ClusterView,
    topics: Vec<TopicRef>,
    quota: PartitionQuota<'_>,
) -> Plan<(String, Uuid)> {
    let mut plan = Plan::new(view.topics.clone(), topics.len());
    for topic in topics {
        let found = match &topic {
            TopicRef::Name(name) => plan.table.get(name).cloned(),
            TopicRef::Id(id) => plan.table.values().find(|meta| meta.id == *id).cloned(),
        };
        match found {
            Some(meta) => {
                if let Err(error) = quota(meta.partitions) {
                    plan.results.push(Err(error));
                    continue;
                }
                plan.table.remove(&meta.name);
                plan.results.push(Ok((meta.name.clone(), meta.id)));
                plan.delete.push(meta);
            }
            None => plan.results.push(Err(match topic {
                TopicRef::Name(_) => KafkaError::new(ResponseError::UnknownTopicOrPartition),
                TopicRef::Id(_) => KafkaError::new(ResponseError::UnknownTopicId),
            })),
        }
    }
    plan
}

/// IncrementalAlterConfigs and AlterConfigs on topics: the new override set
/// of each is checked whole (INVALID_CONFIG) and, unless `validate_only`,
/// replaces the old one.
pub fn alter_topic_configs(
    config: &BrokerConfig,
    view: &ClusterView,
    changes: Vec<TopicConfigChange>,
) -> Plan<()> {
    let mut plan = Plan::new(view.topics.clone(), changes.len());
    for change in changes {
        let Some(meta) = plan.table.get(&change.topic).cloned() else {
            plan.results.push(Err(unknown_topic(&change.topic)));
            continue;
        };
        let configs = match change.change {
            ConfigChange::Incremental(ops) => apply_config_ops(config, &meta.configs, &ops),
            ConfigChange::Replace(pairs) => validated_overrides(pairs),
        };
        match configs {
            Ok(configs) => {
                if !change.validate_only && configs != meta.configs {
                    let meta = TopicMeta {
                        configs,
                        ..meta.as_ref().clone()
                    };
                    plan.table.insert(change.topic, Arc::new(meta));
                    plan.reconfigured = true;
                }
                plan.results.push(Ok(()));
            }
            Err(error) => plan.results.push(Err(invalid_config(error))),
        }
    }
    plan
}

/// CreatePartitions: each topic grown to the count asked for, the new
/// partitions placed over `brokers` from a fresh `seed` or where the
/// client assigned them (checked as Kafka checks them), the new ones
/// counted against `quota`.
pub fn create_partitions(
    view: &ClusterView,
    brokers: &[PlacementBroker],
    growths: Vec<PartitionGrowth>,
    mut seed: impl FnMut() -> u64,
    quota: PartitionQuota<'_>,
) -> Plan<()> {
    let mut plan = Plan::new(view.topics.clone(), growths.len());
    for growth in growths {
        let current = plan.table.get(&growth.topic);
        let before = current.map_or(0, |meta| meta.partitions);
        let grown = check_growth(view, brokers, current, &growth, seed())
            .and_then(|meta| quota(meta.partitions - before).map(|()| meta));
        match grown {
            Ok(meta) if !growth.validate_only => {
                let meta = Arc::new(meta);
                plan.table.insert(growth.topic, meta.clone());
                plan.open.push((plan.results.len(), meta));
                plan.results.push(Ok(()));
            }
            Ok(_) => plan.results.push(Ok(())),
            Err(error) => plan.results.push(Err(error)),
        }
    }
    plan
}

/// Every result an error: the controller is shutting down.
pub fn unavailable<T>(count: usize) -> Vec<Result<T, KafkaError>> {
    (0..count)
        .map(|_| Err(KafkaError::new(ResponseError::BrokerNotAvailable)))
        .collect()
}

/// The name of a topic to create, as Kafka checks it.
fn check_new_topic(topic: &NewTopic) -> Result<(), KafkaError> {
    validate_topic_name(&topic.name).map_err(|message| {
        KafkaError::with_message(ResponseError::InvalidTopicException, message)
    })?;
    if topic.name == CLUSTER_METADATA_TOPIC {
        // Kafka's answer (`ControllerApis.createTopics`).
        return Err(KafkaError::with_message(
            ResponseError::InvalidRequest,
            format!("Creation of internal topic {CLUSTER_METADATA_TOPIC} is prohibited."),
        ));
    }
    Ok(())
}

/// A new topic's partitions: the client's assignment as Kafka checks it,
/// or the broker's defaults for what the request leaves at -1, placed
/// over `brokers` from `seed`.
fn place_topic(
    config: &BrokerConfig,
    view: &ClusterView,
    brokers: &[PlacementBroker],
    topic: &NewTopic,
    seed: u64,
) -> Result<Placed, KafkaError> {
    let partitions = if topic.assignments.is_empty() {
        let count = match topic.partitions {
            -1 => config.num_partitions,
            count => count,
        };
        check_partition_count(count)?;
        let unfenced = brokers.iter().filter(|broker| !broker.fenced).count();
        let internal = config
            .replication
            .internal_topic_replication(&topic.name, unfenced);
        let replication = match (topic.replication_factor, internal) {
            (-1, Some(internal)) => internal,
            (-1, None) => config.default_replication_factor,
            (replication, _) => replication,
        };
        if replication < 1 {
            return Err(KafkaError::with_message(
                ResponseError::InvalidReplicationFactor,
                "Replication factor must be larger than 0.".to_string(),
            ));
        }
        placer::place_new_topic(brokers, count as usize, replication, seed)?
    } else {
        let partitions = placer::check_topic_assignments(
            &assignment_brokers(view, brokers),
            topic.partitions,
            topic.replication_factor,
            &topic.assignments,
        )?;
        check_partition_count(i32::try_from(partitions.len()).unwrap_or(i32::MAX))?;
        partitions
    };
    Ok(on_shards(view, &topic.name, 0, partitions))
}

fn check_partition_count(count: i32) -> Result<(), KafkaError> {
    if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&count) {
        return Err(KafkaError::with_message(
            ResponseError::InvalidPartitions,
            format!(
                "Number of partitions must be in [1, {PARTITIONS_PER_TOPIC_MAX}], got {count}."
            ),
        ));
    }
    Ok(())
}

/// New partitions, with their replicas, ISR and leader, and this node's
/// owner shard of each.
struct Placed {
    placement: Vec<u32>,
    states: Vec<PartitionState>,
}

/// The brokers a client's assignment may name: `brokers`, or in
/// shard-aware mode (a single node) the brokers of this node's shards, as
/// fenced as the node.
fn assignment_brokers(view: &ClusterView, brokers: &[PlacementBroker]) -> Vec<PlacementBroker> {
    let BrokerLayout::PerShard { .. } = view.broker_layout else {
        return brokers.to_vec();
    };
    let Some(node) = brokers.iter().find(|broker| broker.id == view.node_id) else {
        return Vec::new();
    };
    (0..view.shard_count)
        .map(|shard| {
            let broker = view.broker_of_shard(shard);
            PlacementBroker {
                id: broker.id,
                rack: broker.rack,
                ..node.clone()
            }
        })
        .collect()
}

/// `partitions`, numbered from `first`, as the table holds them: replica
/// ids that name one of this node's shards (shard-aware mode) become this
/// node's id with that shard as the partition's owner; every other
/// partition is owned here by the placement rule's shard.
fn on_shards(view: &ClusterView, topic: &str, first: i32, partitions: Vec<NewPartition>) -> Placed {
    let mut placed = Placed {
        placement: Vec::with_capacity(partitions.len()),
        states: Vec::with_capacity(partitions.len()),
    };
    let node_of = |id: i32| match view.local_broker(id) {
        Some(LocalBroker::Shard(_)) => view.node_id,
        _ => id,
    };
    for (partition, new) in (first..).zip(partitions) {
        let assigned = new
            .replicas
            .iter()
            .find_map(|&id| match view.local_broker(id) {
                Some(LocalBroker::Shard(shard)) => Some(shard),
                _ => None,
            });
        let owner = assigned.unwrap_or_else(|| owner_shard(topic, partition, view.shard_count));
        placed.placement.push(owner as u32);
        placed.states.push(PartitionState {
            replicas: new.replicas.iter().map(|&id| node_of(id)).collect(),
            isr: new.isr.iter().map(|&id| node_of(id)).collect(),
            leader: node_of(new.leader),
            leader_epoch: 0,
            partition_epoch: 0,
        });
    }
    placed
}

/// The topic `growth` asks for, with Kafka's errors for a request that does
/// not grow it or assigns replicas Kafka would refuse. The new partitions
/// have the replication factor of the topic's first partition.
fn check_growth(
    view: &ClusterView,
    brokers: &[PlacementBroker],
    current: Option<&Arc<TopicMeta>>,
    growth: &PartitionGrowth,
    seed: u64,
) -> Result<TopicMeta, KafkaError> {
    let meta = current.ok_or_else(|| unknown_topic(&growth.topic))?;
    let (now, wanted) = (meta.partitions, growth.count);
    let invalid = |message| KafkaError::with_message(ResponseError::InvalidPartitions, message);
    if wanted < now {
        return Err(invalid(format!(
            "The topic {} currently has {now} partition(s); {wanted} would not be an increase.",
            growth.topic
        )));
    }
    if wanted == now {
        return Err(invalid(format!("Topic already has {now} partition(s).")));
    }
    if wanted > PARTITIONS_PER_TOPIC_MAX {
        return Err(invalid(format!(
            "Number of partitions must be in [1, {PARTITIONS_PER_TOPIC_MAX}], got {wanted}."
        )));
    }
    let replication = i16::try_from(view.state(meta, 0).replicas.len()).unwrap_or(i16::MAX);
    let added = (wanted - now) as usize;
    let partitions = match &growth.assignments {
        None => placer::place_new_partitions(brokers, added, replication, seed)?,
        Some(assignments) => placer::check_added_assignments(
            &assignment_brokers(view, brokers),
            now,
            added,
            replication,
            assignments,
        )?,
    };
    let new = on_shards(view, &meta.name, now, partitions);
    let existing = 0..now;
    Ok(TopicMeta {
        partitions: wanted,
        placement: existing
            .clone()
            .map(|partition| meta.owner(partition, view.shard_count) as u32)
            .chain(new.placement)
            .collect(),
        states: existing
            .map(|partition| view.state(meta, partition).into_owned())
            .chain(new.states)
            .collect(),
        ..meta.as_ref().clone()
    })
}

/// Kafka's answer for a topic the table does not hold.
fn unknown_topic(topic: &str) -> KafkaError {
    KafkaError::with_message(
        ResponseError::UnknownTopicOrPartition,
        format!("Topic '{topic}' does not exist."),
    )
}

fn invalid_config(error: ConfigError) -> KafkaError {
    KafkaError::with_message(ResponseError::InvalidConfig, error.0)
}
