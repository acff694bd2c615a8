//! The metadata controller as `CONTROLLER_SHARD` runs it: the pure decisions
//! of `metadata::controller`, carried out. For each admin request it takes
//! the plan, has the owner shards open (or remove) the partitions, turns
//! the plan's topic table into metadata records (`metadata::table`),
//! proposes them to the quorum as one entry (`quorum.rs`), and once they
//! are committed and applied broadcasts the table the image holds to every
//! shard, and only then answers. Owner shards apply a topic's new configs
//! to its open logs when the snapshot arrives
//! (`OwnedPartitions::reconfigure`).
//!
//! Invariant: changes are serialized (one at a time) and a change is
//! answered only after it is committed to the metadata log and installed
//! on every shard.

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use glommio::sync::Semaphore;
use kafka_protocol::error::ResponseError;

use super::messages::{
    KafkaError, NewTopic, PartitionGrowth, ShardReply, ShardRequest, TopicConfigChange,
    TopicPartition, TopicRef,
};
use super::quorum::QuorumHandle;
use super::Shard;
use crate::log::volume_bytes;
use crate::metadata::controller::{self, partitions_by_owner, unavailable, Plan};
use crate::metadata::image::MetadataImage;
use crate::metadata::producer_ids::{self, ProducerIdBlock};
use crate::metadata::table;
use crate::metadata::{ClusterView, TopicMeta};

/// Free bytes below which the disk counts as full for a deletion: room for
/// a few metadata log frames (a removal, a hard state, a commit) with a
/// filesystem block to spare.
const DISK_FULL_BYTES: u64 = 64 * 1024;

pub struct Controller {
    /// One metadata change at a time: creation awaits partition opens on
    /// other shards, and two changes must not interleave.
    changes: Semaphore,
    quorum: QuorumHandle,
}

impl Controller {
    pub fn new(quorum: QuorumHandle) -> Controller {
        Controller {
            changes: Semaphore::new(1),
            quorum,
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
        let data_first = disk_full(&shard.config.data_dir);
        if data_first {
            // Deleting a topic is how a full disk gets room again, yet the
            // records that forget it need a little room first, and a
            // metadata log write that fails stops the quorum. So the data
            // goes first here; a crash before the removal is committed
            // brings these topics back, empty, and a second delete
            // finishes them.
            let names: Vec<&str> = plan.delete.iter().map(|meta| meta.name.as_str()).collect();
            log::warn!("disk full: deleting the data of {names:?} before the topic table");
            for meta in &plan.delete {
                delete_partitions(shard, &view, meta).await;
            }
        }
        let Some(image) = self.commit(shard, &mut plan).await else {
            return plan.results;
        };
        install_view(shard, &image).await;
        for meta in plan.delete.iter().filter(|_| !data_first) {
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

    /// A block of producer ids for a shard: its `ProducerIdsRecord`,
    /// made from the committed image, is committed before it is handed
    /// out. Serialized with the other changes, so two blocks are never
    /// made from the same image.
    pub async fn allocate_producer_ids(
        &self,
        shard: &Rc<Shard>,
    ) -> Result<ProducerIdBlock, KafkaError> {
        let unavailable = |reason: String| {
            KafkaError::with_message(ResponseError::CoordinatorNotAvailable, reason)
        };
        let Ok(_change) = self.changes.acquire_permit(1).await else {
            return Err(unavailable("the controller is stopping".into()));
        };
        let node_id = shard.view().node_id;
        let block = Rc::new(Cell::new(None));
        let made = block.clone();
        let make = move |image: &MetadataImage| match producer_ids::next_block(
            image.next_producer_id,
            node_id,
        ) {
            Some((block, record)) => {
                made.set(Some(block));
                vec![record]
            }
            None => Vec::new(),
        };
        match self.quorum.propose(Box::new(make)).await {
            Ok(_) => block.get().ok_or_else(|| {
                KafkaError::with_message(
                    ResponseError::UnknownServerError,
                    "producer ids are used up".into(),
                )
            }),
            Err(error) => {
                log::error!("producer ids: cannot commit the next block: {error}");
                Err(unavailable(format!(
                    "producer ids cannot be persisted: {error}"
                )))
            }
        }
    }

    /// Has the owners open the partitions `plan` adds (a topic whose opens
    /// fail goes back to what it was), then commits the table and installs
    /// it on every shard. When the commit fails nothing is installed and
    /// the successful results become storage errors.
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
        let Some(image) = self.commit(shard, &mut plan).await else {
            return plan.results;
        };
        install_view(shard, &image).await;
        plan.results
    }

    /// Commits the records that make the image's table `plan.table`, and
    /// returns the image then committed; None when the quorum did not
    /// commit them (the plan's results say why).
    async fn commit<T>(&self, shard: &Rc<Shard>, plan: &mut Plan<T>) -> Option<Arc<MetadataImage>> {
        let (node_id, shard_count) = (shard.view().node_id, shard.count());
        let wanted = plan.table.clone();
        let make = move |image: &_| table::changes(image, &wanted, node_id, shard_count);
        match self.quorum.propose(Box::new(make)).await {
            Ok(image) => Some(image),
            Err(error) => {
                log::error!("cannot commit topic metadata: {error}");
                plan.save_failed(&error);
                None
            }
        }
    }
}

/// Whether the data directory's filesystem has less than `DISK_FULL_BYTES`
/// free (for an unprivileged writer); false when that cannot be read.
fn disk_full(data_dir: &Path) -> bool {
    volume_bytes(data_dir).is_some_and(|volume| volume.usable < DISK_FULL_BYTES)
}

/// Broadcasts the snapshot of `image` to every shard and waits for all.
async fn install_view(shard: &Rc<Shard>, image: &MetadataImage) {
    let view = Arc::new(shard.view().with_image(image));
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
