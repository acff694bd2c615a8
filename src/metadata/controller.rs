//! The controller: the one place that changes cluster metadata. It runs on
//! shard 0, validates topic creation and deletion, has the owner shards open
//! or remove the partitions, persists the topic table, and broadcasts the new
//! snapshot to every shard before answering.
//!
//! Invariant: changes are serialized (one at a time) and a change is answered
//! only after it is on disk and installed on every shard.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::rc::Rc;
use std::sync::Arc;

use glommio::sync::Semaphore;
use kafka_protocol::error::ResponseError;

use super::store;
use super::{initial_placement, validate_topic_name, ClusterView, TopicMeta};
use crate::config::{validate_topic_config, PARTITIONS_PER_TOPIC_MAX};
use crate::shard::messages::{
    KafkaError, NewTopic, ShardReply, ShardRequest, TopicPartition, TopicRef,
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
        let mut configs = BTreeMap::new();
        for (name, value) in &topic.configs {
            validate_topic_config(name, value)
                .map_err(|error| KafkaError::with_message(ResponseError::InvalidConfig, error.0))?;
            configs.insert(name.clone(), value.trim().to_string());
        }
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
            let meta = Arc::new(TopicMeta {
                placement: initial_placement(&topic.name, partitions, view.shard_count),
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
        let mut saved = store::save_topics(&shard.config.data_dir, &table);
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
            saved = store::save_topics(&shard.config.data_dir, &table);
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

    /// Persists `table` and installs it on every shard. When the write fails
    /// nothing is installed and the successful results become storage errors.
    async fn install<T>(
        &self,
        shard: &Rc<Shard>,
        table: BTreeMap<String, Arc<TopicMeta>>,
        results: &mut [Result<T, KafkaError>],
    ) {
        let saved = store::save_topics(&shard.config.data_dir, &table);
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

async fn open_partitions(shard: &Rc<Shard>, meta: &Arc<TopicMeta>) -> Result<(), KafkaError> {
    let view = shard.view();
    let mut by_owner: BTreeMap<usize, Vec<i32>> = BTreeMap::new();
    for partition in 0..meta.partitions {
        by_owner
            .entry(view.owner(&meta.name, partition))
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
