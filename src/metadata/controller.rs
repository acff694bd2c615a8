//! The controller: the one place that changes cluster metadata. It runs on
//! shard 0, validates topic creation, deletion, config changes and partition
//! growth, has the owner shards open or remove the partitions, persists the
//! topic table, and broadcasts the new snapshot to every shard before
//! answering. Owner shards apply a topic's new configs to its open logs when
//! the snapshot arrives (`OwnedPartitions::reconfigure`).
//!
//! Invariant: changes are serialized (one at a time) and a change is answered
//! only after it is on disk and installed on every shard.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::rc::Rc;
use std::sync::Arc;

use glommio::sync::Semaphore;
use kafka_protocol::error::ResponseError;

use super::brokers::LocalBroker;
use super::store;
use super::{initial_placement, validate_topic_name, ClusterView, TopicMeta};
use crate::config::{apply_config_ops, validated_overrides, PARTITIONS_PER_TOPIC_MAX};
use crate::shard::messages::{
    ConfigChange, KafkaError, NewTopic, PartitionGrowth, ShardReply, ShardRequest,
    TopicConfigChange, TopicPartition, TopicRef,
};
use crate::shard::Shard;

pub struct Controller {
    /// One metadata change at a time: creation awaits partition opens on
    /// other shards, and two changes must not interleave.
    changes: Semaphore,
}

impl Default for Controller {
    fn default() -> Self {
        Controller::new()
    }
}

impl Controller {
    pub fn new() -> Controller {
        Controller {
            changes: Semaphore::new(1),
        }
    }

    fn check(
        shard: &Shard,
        topic: &NewTopic,
    ) -> Result<(i32, BTreeMap<String, String>), KafkaError> {
        validate_topic_name(&topic.name).map_err(|message| {
            KafkaError::with_message(ResponseError::InvalidTopicException, message)
        })?;
        let partitions = if topic.partitions == -1 {
            shard.config.num_partitions
        } else {
            topic.partitions
        };
        if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
            return Err(KafkaError::with_message(
                ResponseError::InvalidPartitions,
                format!("Number of partitions must be in [1, {PARTITIONS_PER_TOPIC_MAX}], got {partitions}."),
            ));
        }
        let replication = if topic.replication_factor == -1 {
            shard.config.default_replication_factor
        } else {
            topic.replication_factor
        };
        if replication < 1 {
            return Err(KafkaError::with_message(
                ResponseError::InvalidReplicationFactor,
                "Replication factor must be larger than 0.".to_string(),
            ));
        }
        if replication > 1 {
            return Err(KafkaError::with_message(
                ResponseError::InvalidReplicationFactor,
                format!("Unable to replicate the partition {replication} time(s): The target replication factor of {replication} cannot be reached because only 1 broker(s) are registered."),
            ));
        }
        let configs = validated_overrides(topic.configs.iter().cloned()).map_err(invalid_config)?;
        Ok((partitions, configs))
    }

    pub async fn create_topics(
        &self,
        shard: &Rc<Shard>,
        topics: Vec<NewTopic>,
    ) -> Vec<Result<Arc<TopicMeta>, KafkaError>> {
        let Ok(_change) = self.changes.acquire_permit(1).await else {
            return unavailable(topics.len());
        };
        let view = shard.view();
        let mut table = view.topics.clone();
        let mut results = Vec::with_capacity(topics.len());
        let mut created = Vec::new();
        for topic in topics {
            if table.contains_key(&topic.name) {
                results.push(Err(KafkaError::with_message(
                    ResponseError::TopicAlreadyExists,
                    format!("Topic '{}' already exists.", topic.name),
                )));
                continue;
            }
            let (partitions, configs) = match Controller::check(shard, &topic) {
                Ok(checked) => checked,
                Err(error) => {
                    results.push(Err(error));
                    continue;
                }
            };
            let placement = match &topic.placement {
                Some(owners) if owners.len() == partitions as usize => owners.clone(),
                _ => initial_placement(&topic.name, partitions, view.shard_count),
            };
            let meta = Arc::new(TopicMeta {
                placement,
                name: topic.name.clone(),
                id: uuid::Uuid::new_v4(),
                partitions,
                configs,
            });
            if !topic.validate_only {
                table.insert(meta.name.clone(), meta.clone());
                created.push(meta.clone());
            }
            results.push(Ok(meta));
        }
        if created.is_empty() {
            return results;
        }
        for meta in &created {
            if let Err(error) = open_partitions(shard, meta).await {
                log::error!("creating topic {}: {:?}", meta.name, error.message);
                table.remove(&meta.name);
                for result in results.iter_mut() {
                    if matches!(result, Ok(m) if m.name == meta.name) {
                        *result = Err(error.clone());
                    }
                }
            }
        }
        self.install(shard, table, &mut results).await;
        results
    }

    pub async fn delete_topics(
        &self,
        shard: &Rc<Shard>,
        topics: Vec<TopicRef>,
    ) -> Vec<Result<(String, uuid::Uuid), KafkaError>> {
        let Ok(_change) = self.changes.acquire_permit(1).await else {
            return unavailable(topics.len());
        };
        let view = shard.view();
        let mut table = view.topics.clone();
        let mut results = Vec::with_capacity(topics.len());
        let mut deleted = Vec::new();
        for topic in topics {
            let found = match &topic {
                TopicRef::Name(name) => table.get(name).cloned(),
                TopicRef::Id(id) => table.values().find(|meta| meta.id == *id).cloned(),
            };
            match found {
                Some(meta) => {
                    table.remove(&meta.name);
                    results.push(Ok((meta.name.clone(), meta.id)));
                    deleted.push(meta);
                }
                None => results.push(Err(match topic {
                    TopicRef::Name(_) => KafkaError::new(ResponseError::UnknownTopicOrPartition),
                    TopicRef::Id(_) => KafkaError::new(ResponseError::UnknownTopicId),
                })),
            }
        }
        if deleted.is_empty() {
            return results;
        }
        let mut saved = save(shard, &table).await;
        if matches!(&saved, Err(error) if error.kind() == ErrorKind::StorageFull) {
            // Deleting a topic is how a full disk gets room again, yet the
            // table that forgets it needs a little room first. So the data
            // goes first here; a crash before the table is written brings
            // these topics back, empty, and a second delete finishes them.
            let names: Vec<&str> = deleted.iter().map(|meta| meta.name.as_str()).collect();
            log::warn!("disk full: deleting the data of {names:?} before the topic table");
            for meta in &deleted {
                delete_partitions(shard, &view, meta).await;
            }
            saved = save(shard, &table).await;
        }
        if !Controller::saved(saved, &mut results) {
            return results;
        }
        Controller::install_view(shard, table).await;
        for meta in &deleted {
            delete_partitions(shard, &view, meta).await;
        }
        results
    }

    /// Applies config changes (IncrementalAlterConfigs, AlterConfigs) to
    /// topics: the new override set of each is checked whole
    /// (INVALID_CONFIG), persisted and broadcast, unless `validate_only`.
    pub async fn alter_topic_configs(
        &self,
        shard: &Rc<Shard>,
        changes: Vec<TopicConfigChange>,
    ) -> Vec<Result<(), KafkaError>> {
        let Ok(_change) = self.changes.acquire_permit(1).await else {
            return unavailable(changes.len());
        };
        let mut table = shard.view().topics.clone();
        let mut changed = false;
        let mut results = Vec::with_capacity(changes.len());
        for change in changes {
            let Some(meta) = table.get(&change.topic).cloned() else {
                results.push(Err(unknown_topic(&change.topic)));
                continue;
            };
            let configs = match change.change {
                ConfigChange::Incremental(ops) => {
                    apply_config_ops(&shard.config, &meta.configs, &ops)
                }
                ConfigChange::Replace(pairs) => validated_overrides(pairs),
            };
            match configs {
                Ok(configs) => {
                    if !change.validate_only && configs != meta.configs {
                        let meta = TopicMeta {
                            configs,
                            ..meta.as_ref().clone()
                        };
                        table.insert(change.topic, Arc::new(meta));
                        changed = true;
                    }
                    results.push(Ok(()));
                }
                Err(error) => results.push(Err(invalid_config(error))),
            }
        }
        if changed {
            self.install(shard, table, &mut results).await;
        }
        results
    }

    /// CreatePartitions: grows topics to the partition counts asked for,
    /// has the owners open the new partitions, then persists and broadcasts.
    pub async fn create_partitions(
        &self,
        shard: &Rc<Shard>,
        growths: Vec<PartitionGrowth>,
    ) -> Vec<Result<(), KafkaError>> {
        let Ok(_change) = self.changes.acquire_permit(1).await else {
            return unavailable(growths.len());
        };
        let view = shard.view();
        let mut table = view.topics.clone();
        let mut results = Vec::with_capacity(growths.len());
        let mut grown = Vec::new();
        for growth in growths {
            let checked = Controller::check_growth(shard, table.get(&growth.topic), &growth);
            match checked {
                Ok(meta) if !growth.validate_only => {
                    let meta = Arc::new(meta);
                    table.insert(growth.topic, meta.clone());
                    grown.push((results.len(), meta));
                    results.push(Ok(()));
                }
                Ok(_) => results.push(Ok(())),
                Err(error) => results.push(Err(error)),
            }
        }
        if grown.is_empty() {
            return results;
        }
        for (index, meta) in &grown {
            if let Err(error) = open_partitions(shard, meta).await {
                log::error!("adding partitions to {}: {:?}", meta.name, error.message);
                if let Some(before) = view.topic(&meta.name) {
                    table.insert(meta.name.clone(), before.clone());
                }
                results[*index] = Err(error);
            }
        }
        self.install(shard, table, &mut results).await;
        results
    }

    /// The topic `growth` asks for, with Kafka's errors for a request that
    /// does not grow it or places replicas elsewhere than this node's
    /// brokers. A new partition assigned to a shard's broker (shard-aware
    /// mode) is placed on that shard.
    fn check_growth(
        shard: &Shard,
        current: Option<&Arc<TopicMeta>>,
        growth: &PartitionGrowth,
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
        if let Some(assignments) = &growth.assignments {
            let bad = |message| {
                KafkaError::with_message(ResponseError::InvalidReplicaAssignment, message)
            };
            let added = wanted - now;
            if assignments.len() != added as usize {
                return Err(bad(format!(
                    "Attempted to add {added} additional partition(s), but only {} assignment(s) were specified.",
                    assignments.len()
                )));
            }
            let view = shard.view();
            let mut grown = meta.grown(wanted, shard.count());
            for (index, replicas) in assignments.iter().enumerate() {
                if let Some(other) = replicas.iter().find(|&&id| view.local_broker(id).is_none()) {
                    return Err(bad(format!(
                        "The manual partition assignment includes broker {other}, but no broker with that ID is registered."
                    )));
                }
                if replicas.len() != 1 {
                    return Err(bad(format!(
                        "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have 1 replica(s).",
                        replicas.len()
                    )));
                }
                if let Some(LocalBroker::Shard(owner)) = view.local_broker(replicas[0]) {
                    grown.placement[now as usize + index] = owner as u32;
                }
            }
            return Ok(grown);
        }
        Ok(meta.grown(wanted, shard.count()))
    }

    /// Persists `table` and installs it on every shard. When the write fails
    /// nothing is installed and the successful results become storage errors.
    async fn install<T>(
        &self,
        shard: &Rc<Shard>,
        table: BTreeMap<String, Arc<TopicMeta>>,
        results: &mut [Result<T, KafkaError>],
    ) {
        let saved = save(shard, &table).await;
        if Controller::saved(saved, results) {
            Controller::install_view(shard, table).await;
        }
    }

    /// Whether the table was written; if not, the successful results become
    /// storage errors.
    fn saved<T>(saved: std::io::Result<()>, results: &mut [Result<T, KafkaError>]) -> bool {
        let Err(error) = saved else {
            return true;
        };
        log::error!("cannot persist topic metadata: {error}");
        for result in results.iter_mut() {
            if result.is_ok() {
                *result = Err(KafkaError::with_message(
                    ResponseError::KafkaStorageError,
                    error.to_string(),
                ));
            }
        }
        false
    }

    async fn install_view(shard: &Rc<Shard>, table: BTreeMap<String, Arc<TopicMeta>>) {
        let view = Arc::new(shard.view().with_topics(table));
        shard
            .broadcast(|| ShardRequest::InstallView(view.clone()))
            .await;
    }
}

/// Kafka's answer for a topic the table does not hold.
fn unknown_topic(topic: &str) -> KafkaError {
    KafkaError::with_message(
        ResponseError::UnknownTopicOrPartition,
        format!("Topic '{topic}' does not exist."),
    )
}

fn invalid_config(error: crate::config::ConfigError) -> KafkaError {
    KafkaError::with_message(ResponseError::InvalidConfig, error.0)
}

/// Has the owner shards (per `view`, which still holds the topic) close and
/// remove every partition of `meta`; those already gone are skipped.
async fn delete_partitions(shard: &Rc<Shard>, view: &ClusterView, meta: &TopicMeta) {
    let mut by_owner: BTreeMap<usize, Vec<TopicPartition>> = BTreeMap::new();
    for partition in 0..meta.partitions {
        by_owner
            .entry(view.owner(&meta.name, partition))
            .or_default()
            .push(TopicPartition::new(&meta.name, partition));
    }
    for (owner, partitions) in by_owner {
        shard
            .call(owner, ShardRequest::DeletePartitions(partitions))
            .await;
    }
}

/// Every result an error: the controller is shutting down.
fn unavailable<T>(count: usize) -> Vec<Result<T, KafkaError>> {
    (0..count)
        .map(|_| Err(KafkaError::new(ResponseError::BrokerNotAvailable)))
        .collect()
}

/// Has the owners (per `meta`'s placement) open every partition of `meta`
/// they do not have open yet.
async fn open_partitions(shard: &Rc<Shard>, meta: &Arc<TopicMeta>) -> Result<(), KafkaError> {
    let mut by_owner: BTreeMap<usize, Vec<i32>> = BTreeMap::new();
    for partition in 0..meta.partitions {
        by_owner
            .entry(meta.owner(partition, shard.count()))
            .or_default()
            .push(partition);
    }
    for (owner, partitions) in by_owner {
        let request = ShardRequest::OpenPartitions {
            topic: meta.clone(),
            partitions,
        };
        if let ShardReply::Failed(error) = shard.call(owner, request).await {
            return Err(error);
        }
    }
    Ok(())
}

/// Writes the topic table on glommio's blocking pool: the write and its
/// fsyncs would otherwise hold the controller shard's reactor (a stall).
async fn save(shard: &Rc<Shard>, table: &BTreeMap<String, Arc<TopicMeta>>) -> std::io::Result<()> {
    let data_dir = shard.config.data_dir.clone();
    let table = table.clone();
    glommio::executor()
        .spawn_blocking(move || store::save_topics(&data_dir, &table))
        .await
}
