//! The metadata controller as `CONTROLLER_SHARD` runs it: the pure decisions
//! of `metadata::controller`, carried out. For each admin request it takes
//! the plan, has the owner shards open (or remove) the partitions, writes
//! the topic table, broadcasts the new snapshot to every shard, and only
//! then answers. Owner shards apply a topic's new configs to its open logs
//! when the snapshot arrives (`OwnedPartitions::reconfigure`).
//!
//! Invariant: changes are serialized (one at a time) and a change is
//! answered only after it is on disk and installed on every shard.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::rc::Rc;
use std::sync::Arc;

use glommio::sync::Semaphore;

use super::messages::{
    KafkaError, NewTopic, PartitionGrowth, ShardReply, ShardRequest, TopicConfigChange,
    TopicPartition, TopicRef,
};
use super::Shard;
use crate::metadata::controller::{self, partitions_by_owner, unavailable, Plan, TopicTable};
use crate::metadata::{store, ClusterView, TopicMeta};

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

    pub async fn create_topics(
        &self,
        shard: &Rc<Shard>,
        topics: Vec<NewTopic>,
    ) -> Vec<Result<Arc<TopicMeta>, KafkaError>> {
        let Ok(_change) = self.changes.acquire_permit(1).await else {
            return unavailable(topics.len());
        };
        let plan =
            controller::create_topics(&shard.config, &shard.view(), topics, uuid::Uuid::new_v4);
        self.carry_out(shard, plan).await
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
        let mut plan = controller::delete_topics(&view, topics);
        if !plan.changes_table() {
            return plan.results;
        }
        let mut saved = save(shard, &plan.table).await;
        if matches!(&saved, Err(error) if error.kind() == ErrorKind::StorageFull) {
            // Deleting a topic is how a full disk gets room again, yet the
            // table that forgets it needs a little room first. So the data
            // goes first here; a crash before the table is written brings
            // these topics back, empty, and a second delete finishes them.
            let names: Vec<&str> = plan.delete.iter().map(|meta| meta.name.as_str()).collect();
            log::warn!("disk full: deleting the data of {names:?} before the topic table");
            for meta in &plan.delete {
                delete_partitions(shard, &view, meta).await;
            }
            saved = save(shard, &plan.table).await;
        }
        if let Err(error) = saved {
            log::error!("cannot persist topic metadata: {error}");
            plan.save_failed(&error.to_string());
            return plan.results;
        }
        install_view(shard, plan.table).await;
        for meta in &plan.delete {
            delete_partitions(shard, &view, meta).await;
        }
        plan.results
    }

    /// Applies config changes (IncrementalAlterConfigs, AlterConfigs) to
    /// topics: persisted and broadcast unless `validate_only`.
    pub async fn alter_topic_configs(
        &self,
        shard: &Rc<Shard>,
        changes: Vec<TopicConfigChange>,
    ) -> Vec<Result<(), KafkaError>> {
        let Ok(_change) = self.changes.acquire_permit(1).await else {
            return unavailable(changes.len());
        };
        let plan = controller::alter_topic_configs(&shard.config, &shard.view(), changes);
        self.carry_out(shard, plan).await
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
        let plan = controller::create_partitions(&shard.view(), growths);
        self.carry_out(shard, plan).await
    }

    /// Has the owners open the partitions `plan` adds (a topic whose opens
    /// fail goes back to what it was), then persists the table and installs
    /// it on every shard. When the write fails nothing is installed and the
    /// successful results become storage errors.
    async fn carry_out<T>(
        &self,
        shard: &Rc<Shard>,
        mut plan: Plan<T>,
    ) -> Vec<Result<T, KafkaError>> {
        if !plan.changes_table() {
            return plan.results;
        }
        let view = shard.view();
        for (index, meta) in plan.open.clone() {
            if let Err(error) = open_partitions(shard, &meta).await {
                log::error!(
                    "opening the partitions of {}: {:?}",
                    meta.name,
                    error.message
                );
                plan.open_failed(index, view.topic(&meta.name).cloned(), error);
            }
        }
        if let Err(error) = save(shard, &plan.table).await {
            log::error!("cannot persist topic metadata: {error}");
            plan.save_failed(&error.to_string());
            return plan.results;
        }
        install_view(shard, plan.table).await;
        plan.results
    }
}

/// Broadcasts the snapshot with `table` to every shard and waits for all.
async fn install_view(shard: &Rc<Shard>, table: TopicTable) {
    let view = Arc::new(shard.view().with_topics(table));
    shard
        .broadcast(|| ShardRequest::InstallView(view.clone()))
        .await;
}

/// Has the owner shards (per `view`, which still holds the topic) close and
/// remove every partition of `meta`; those already gone are skipped.
async fn delete_partitions(shard: &Rc<Shard>, view: &ClusterView, meta: &TopicMeta) {
    for (owner, partitions) in partitions_by_owner(meta, view.shard_count) {
        let partitions = partitions
            .into_iter()
            .map(|partition| TopicPartition::new(&meta.name, partition))
            .collect();
        shard
            .call(owner, ShardRequest::DeletePartitions(partitions))
            .await;
    }
}

/// Has the owners (per `meta`'s placement) open every partition of `meta`
/// they do not have open yet.
async fn open_partitions(shard: &Rc<Shard>, meta: &Arc<TopicMeta>) -> Result<(), KafkaError> {
    for (owner, partitions) in partitions_by_owner(meta, shard.count()) {
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
