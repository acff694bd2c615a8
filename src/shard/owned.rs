//! The partitions one shard owns: their logs, and the per-partition work
//! other shards ask of it (append, read, wait, list offsets, delete records,
//! transaction markers, producer descriptions),
//! and the topic config changes it applies to them.
//!
//! Invariant: a `PartitionLog` is reachable only through the `OwnedPartitions`
//! of its owner shard, so it is only ever touched by one thread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{select, select_all, LocalBoxFuture};
use kafka_protocol::error::ResponseError;

use super::messages::{
    FetchOutcome, FetchPart, KafkaError, ListIsolation, ListedOffset, ProducePart, ProduceRefusal,
    ReadBound, TopicPartition,
};
use super::view::ShardView;
use crate::config::{BrokerConfig, TopicConfig};
use crate::log::{
    AppendResult, Backing, CleanerBudget, FrameBudget, LogError, PartitionLog, PinnedFrame,
    ProducerDescription, ProducerError, ShardLoad, SHARD_PINNED_FRAME_BYTES_MAX,
};
use crate::metadata::TopicMeta;
use crate::protocol::records::TxnMarker;

/// ListOffsets special timestamps (KIP-79, KIP-734, KIP-405).
pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
pub const LATEST_TIERED_TIMESTAMP: i64 = -5;
/// DeleteRecords offset meaning "up to the high watermark".
pub const DELETE_TO_HIGH_WATERMARK: i64 = -1;

pub struct OwnedPartitions {
    data_dir: PathBuf,
    logs: RefCell<HashMap<TopicPartition, Rc<PartitionLog>>>,
    /// What the request frames this shard's logs keep slices of may pin.
    frames: Rc<FrameBudget>,
}

/// The aborted transactions a read_committed consumer needs for the batches
/// read from `fetch_offset` to `last_offset`: those overlapping them.
/// Empty for no records, as Kafka answers an empty read.
fn aborted_in(log: &PartitionLog, fetch_offset: i64, last_offset: Option<i64>) -> Vec<(i64, i64)> {
    let Some(last_offset) = last_offset else {
        return Vec::new();
    };
    log.aborted_transactions(fetch_offset, last_offset + 1)
}

/// Where a read bounded by `bound` stops in `log` now.
fn bound_offset(log: &PartitionLog, bound: ReadBound) -> i64 {
    match bound {
        ReadBound::HighWatermark => log.high_watermark(),
        ReadBound::LastStable => log.last_stable_offset(),
        ReadBound::DurableEnd => log.durable_end(),
    }
}

/// KIP-320: a follower whose last fetched epoch this log ends earlier than
/// its fetch offset, or does not hold, has records past the point where
/// the two logs part: the answer names the largest epoch here at or below
/// its epoch and where that epoch ends here, and the follower truncates to
/// it. `None` when the follower's log is a prefix of this one (or it names
/// no epoch: a fetch version without the field).
pub(super) fn diverging_epoch(
    log: &PartitionLog,
    fetch_offset: i64,
    last_fetched_epoch: i32,
) -> Option<(i32, i64)> {
    if last_fetched_epoch < 0 {
        return None;
    }
    let (epoch, end_offset) = log
        .end_offset_for_epoch(last_fetched_epoch)
        .unwrap_or((-1, -1));
    (epoch < last_fetched_epoch || end_offset < fetch_offset).then_some((epoch, end_offset))
}

/// Storage errors as Kafka error codes, logged where they lose detail.
/// Corrupt data and appends given up after a failed write are
/// KAFKA_STORAGE_ERROR too; the log already logged those where it found
/// them (once, not per retried fetch or produce).
pub fn log_error_to_kafka(partition: &TopicPartition, error: &LogError) -> KafkaError {
    match error {
        LogError::OffsetOutOfRange { .. } => KafkaError::new(ResponseError::OffsetOutOfRange),
        LogError::Closed | LogError::NotLeader => {
            KafkaError::new(ResponseError::NotLeaderOrFollower)
        }
        LogError::Producer(ProducerError::InvalidProducerEpoch(message)) => {
            KafkaError::with_message(ResponseError::InvalidProducerEpoch, message.clone())
        }
        LogError::Producer(
            ProducerError::OutOfOrderSequence(message) | ProducerError::BehindVerifying(message),
        ) => KafkaError::with_message(ResponseError::OutOfOrderSequenceNumber, message.clone()),
        LogError::Producer(ProducerError::InvalidTxnState(message)) => {
            KafkaError::with_message(ResponseError::InvalidTxnState, message.clone())
        }
        LogError::Producer(ProducerError::CoordinatorFenced(message)) => {
            KafkaError::with_message(ResponseError::TransactionCoordinatorFenced, message.clone())
        }
        // Verification is a step of the produce path, which answers it
        // (`ProduceRefusal::Unverified`); no client gets this from the log.
        LogError::Producer(ProducerError::Unverified { .. }) | LogError::TxnUnverified { .. } => {
            KafkaError::new(ResponseError::InvalidTxnState)
        }
        LogError::Corrupt { .. } | LogError::WriteFailed(_) => {
            KafkaError::with_message(ResponseError::KafkaStorageError, error.to_string())
        }
        other => {
            log::error!("partition {}: storage error: {other}", partition.dir_name());
            KafkaError::with_message(ResponseError::KafkaStorageError, other.to_string())
        }
    }
}

impl OwnedPartitions {
    pub fn new(data_dir: PathBuf) -> OwnedPartitions {
        OwnedPartitions {
            data_dir,
            logs: RefCell::new(HashMap::new()),
            frames: FrameBudget::new(SHARD_PINNED_FRAME_BYTES_MAX),
        }
    }

    /// A handle on a frame of `bytes` whose slices this shard's logs may
    /// keep, charged once to the shard's budget when first sliced.
    pub fn pinned_frame(&self, bytes: usize) -> Rc<PinnedFrame> {
        PinnedFrame::new(&self.frames, bytes)
    }

    /// Every open log of this shard.
    pub fn open_logs(&self) -> Vec<(TopicPartition, Rc<PartitionLog>)> {
        self.logs
            .borrow()
            .iter()
            .map(|(partition, log)| (partition.clone(), log.clone()))
            .collect()
    }

    /// The log of `partition`, if this shard owns it.
    pub fn log(&self, partition: &TopicPartition) -> Option<Rc<PartitionLog>> {
        self.logs.borrow().get(partition).cloned()
    }

    fn get(&self, partition: &TopicPartition) -> Result<Rc<PartitionLog>, KafkaError> {
        self.logs
            .borrow()
            .get(partition)
            .cloned()
            .ok_or_else(|| KafkaError::new(ResponseError::UnknownTopicOrPartition))
    }

    /// Opens the logs of `partitions` of `topic` not open yet, running
    /// recovery on each. Opening what is open does nothing, so an install
    /// may ask again.
    pub async fn open(
        &self,
        broker: &BrokerConfig,
        topic: &TopicMeta,
        partitions: &[i32],
    ) -> Result<(), KafkaError> {
        let config = TopicConfig::resolve(broker, &topic.configs);
        for &index in partitions {
            let partition = TopicPartition::new(&topic.name, index);
            if self.logs.borrow().contains_key(&partition) {
                continue;
            }
            let dir = self.data_dir.join(partition.dir_name());
            let log = PartitionLog::open(dir, config.log.clone())
                .await
                .map_err(|error| log_error_to_kafka(&partition, &error))?;
            let scanned_bytes = log.recovery_scanned_bytes();
            if scanned_bytes > 0 {
                log::info!(
                    "partition {}: recovery scanned {scanned_bytes} bytes past the recovery point",
                    partition.dir_name()
                );
            }
            self.logs.borrow_mut().insert(partition, log);
        }
        Ok(())
    }

    pub async fn delete(&self, partitions: &[TopicPartition]) {
        for partition in partitions {
            let removed = self.logs.borrow_mut().remove(partition);
            if let Some(log) = removed {
                if let Err(error) = log.delete().await {
                    log::error!("deleting {}: {error}", partition.dir_name());
                }
            }
        }
    }

    /// Appends each part to its log. The parts of one call are one request
    /// frame's for this shard (the produce handler sends each owner one
    /// message per request), so the frame is charged once to this shard's
    /// budget however many of its logs slice it: the budget of the shard
    /// whose tails and writers hold the slices, and where the handle to it
    /// stays (the `Rc` never leaves this thread; only the `Bytes` and the
    /// frame's size crossed the mesh). A frame whose parts reach several
    /// shards is charged by each: more than it pins, never less.
    pub async fn produce(
        &self,
        parts: Vec<ProducePart>,
    ) -> Vec<Result<AppendResult, ProduceRefusal>> {
        let allocation_bytes = parts.iter().map(|part| part.pinned_bytes).max();
        let frame = PinnedFrame::new(&self.frames, allocation_bytes.unwrap_or(0));
        let appends = parts.into_iter().map(|part| {
            let frame = frame.clone();
            async move {
                let log = self.get(&part.partition).map_err(ProduceRefusal::Error)?;
                let bytes = part.batches.len();
                let appended = log
                    .append_verified(
                        part.verification,
                        part.batches,
                        Backing::Frame(frame),
                        part.wait,
                        part.log_append_time_ms,
                    )
                    .await;
                if let Ok(result) = &appended {
                    let records = result.last_offset - result.base_offset + 1;
                    crate::metrics::produced(bytes, u64::try_from(records).unwrap_or(0));
                }
                appended.map_err(|error| match error {
                    LogError::TxnUnverified {
                        producer_id,
                        epoch,
                        guard,
                    } => ProduceRefusal::Unverified {
                        producer_id,
                        epoch,
                        guard,
                    },
                    LogError::Producer(ProducerError::BehindVerifying(_)) => {
                        ProduceRefusal::BehindVerifying(log_error_to_kafka(&part.partition, &error))
                    }
                    error => ProduceRefusal::Error(log_error_to_kafka(&part.partition, &error)),
                })
            }
        });
        futures_util::future::join_all(appends).await
    }

    pub async fn fetch(&self, parts: Vec<FetchPart>) -> Vec<FetchOutcome> {
        let reads = parts.into_iter().map(|part| async move {
            let log = match self.get(&part.partition) {
                Ok(log) => log,
                Err(error) => {
                    return FetchOutcome {
                        error_code: error.code,
                        high_watermark: -1,
                        last_stable_offset: -1,
                        log_start_offset: -1,
                        ..FetchOutcome::default()
                    }
                }
            };
            let max_offset = bound_offset(&log, part.bound());
            let mut outcome = FetchOutcome {
                error_code: 0,
                high_watermark: log.high_watermark(),
                last_stable_offset: log.last_stable_offset(),
                log_start_offset: log.log_start_offset(),
                leader_epoch: log.leader_epoch(),
                bound_offset: max_offset,
                ..FetchOutcome::default()
            };
            if let Some(replica) = part.replica {
                outcome.diverging_epoch =
                    diverging_epoch(&log, part.offset, replica.last_fetched_epoch);
                if outcome.diverging_epoch.is_some() {
                    return outcome;
                }
            }
            let last_offset = match log
                .read_chunks(part.offset, max_offset, part.max_bytes, true)
                .await
            {
                Ok(read) => {
                    outcome.records = read.chunks;
                    read.last_offset
                }
                Err(error) => {
                    outcome.error_code = log_error_to_kafka(&part.partition, &error).code;
                    return outcome;
                }
            };
            if part.read_committed {
                outcome.aborted_transactions = Some(aborted_in(&log, part.offset, last_offset));
            }
            outcome
        });
        futures_util::future::join_all(reads).await
    }

    /// Waits until one of `parts` has data past its offset (below its last
    /// stable offset, for a read_committed one), or the timeout. The LSO
    /// moves only when the high watermark does (a marker is an append), so
    /// waiting on the high watermark misses no change of it.
    pub async fn wait_for_data(
        &self,
        parts: Vec<(TopicPartition, i64, ReadBound)>,
        timeout_ms: u64,
    ) {
        let mut logs = Vec::new();
        for (partition, offset, bound) in &parts {
            if let Ok(log) = self.get(partition) {
                if bound_offset(&log, *bound) > *offset {
                    return;
                }
                logs.push((log, *bound, *offset));
            }
        }
        let timeout = glommio::timer::sleep(Duration::from_millis(timeout_ms));
        if logs.is_empty() {
            timeout.await;
            return;
        }
        let waits: Vec<LocalBoxFuture<'_, ()>> = logs
            .iter()
            .map(|(log, bound, offset)| -> LocalBoxFuture<'_, ()> {
                match bound {
                    ReadBound::DurableEnd => Box::pin(log.wait_for_durable_end_past(*offset)),
                    _ => Box::pin(log.wait_for_data()),
                }
            })
            .collect();
        let either = select(Box::pin(timeout), select_all(waits)).await;
        drop(either);
    }

    /// OffsetForLeaderEpoch: each partition's largest epoch at or below the
    /// asked one and where it ends (`None`: older than the log's oldest).
    pub fn epoch_end_offsets(
        &self,
        parts: Vec<(TopicPartition, i32)>,
    ) -> Vec<Result<Option<(i32, i64)>, KafkaError>> {
        parts
            .into_iter()
            .map(|(partition, epoch)| Ok(self.get(&partition)?.end_offset_for_epoch(epoch)))
            .collect()
    }

    /// ListOffsets: each partition's offset for its timestamp, with the
    /// epoch of the batch found (Kafka's: the log start's for earliest,
    /// the batch's for a timestamp or the largest one).
    pub async fn list_offsets(
        &self,
        parts: Vec<(TopicPartition, (i64, ListIsolation))>,
    ) -> Vec<Result<ListedOffset, KafkaError>> {
        let lookups = parts
            .into_iter()
            .map(|(partition, (timestamp, isolation))| async move {
                let log = self.get(&partition)?;
                let special = |offset: i64, leader_epoch: Option<i32>| {
                    Ok(ListedOffset {
                        timestamp: -1,
                        offset,
                        leader_epoch,
                    })
                };
                let lookup = match timestamp {
                    LATEST_TIMESTAMP => {
                        let offset = match isolation {
                            ListIsolation::LogEnd => log.log_end_offset(),
                            ListIsolation::HighWatermark => log.high_watermark(),
                            ListIsolation::LastStableOffset => log.last_stable_offset(),
                        };
                        return special(offset, None);
                    }
                    EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => {
                        let start = log.log_start_offset();
                        return special(start, log.epoch_at(start));
                    }
                    // Nothing is tiered: Kafka without remote storage answers
                    // no offset (-1), not the log start.
                    LATEST_TIERED_TIMESTAMP => return special(-1, None),
                    MAX_TIMESTAMP => log.max_timestamp().await,
                    timestamp if timestamp >= 0 => log.offset_for_timestamp(timestamp).await,
                    _ => return Err(KafkaError::new(ResponseError::InvalidRequest)),
                };
                // Kafka answers no offset for one a read_committed
                // consumer could not read yet.
                let stable = |offset: i64| {
                    isolation != ListIsolation::LastStableOffset
                        || offset < log.last_stable_offset()
                };
                match lookup {
                    Ok(Some((offset, found_timestamp))) if stable(offset) => Ok(ListedOffset {
                        timestamp: found_timestamp,
                        offset,
                        leader_epoch: log.epoch_at(offset),
                    }),
                    Ok(_) => special(-1, None),
                    Err(error) => Err(log_error_to_kafka(&partition, &error)),
                }
            });
        futures_util::future::join_all(lookups).await
    }

    /// DeleteRecords: each partition's log start offset moved up to its
    /// offset; the answer is the offset asked for (the high watermark
    /// for -1: what the low watermark must reach) and the log start offset
    /// afterwards.
    pub async fn delete_records(
        &self,
        parts: Vec<(TopicPartition, i64)>,
    ) -> Vec<Result<(i64, i64), KafkaError>> {
        let deletes = parts.into_iter().map(|(partition, offset)| async move {
            let log = self.get(&partition)?;
            let offset = match offset {
                DELETE_TO_HIGH_WATERMARK => log.high_watermark(),
                offset => offset,
            };
            log.delete_records(offset)
                .await
                .map(|log_start_offset| (offset, log_start_offset))
                .map_err(|error| log_error_to_kafka(&partition, &error))
        });
        futures_util::future::join_all(deletes).await
    }

    /// Appends each marker to its partition, each answered once durable.
    pub async fn write_txn_markers(
        &self,
        parts: Vec<(TopicPartition, TxnMarker)>,
    ) -> Vec<Result<(), KafkaError>> {
        let appends = parts.into_iter().map(|(partition, marker)| async move {
            let log = self.get(&partition)?;
            log.append_txn_marker(marker)
                .await
                .map(|_| ())
                .map_err(|error| log_error_to_kafka(&partition, &error))
        });
        futures_util::future::join_all(appends).await
    }

    /// The producers each partition remembers (DescribeProducers).
    pub fn describe_producers(
        &self,
        parts: &[TopicPartition],
    ) -> Vec<Result<Vec<ProducerDescription>, KafkaError>> {
        parts
            .iter()
            .map(|partition| Ok(self.get(partition)?.describe_producers()))
            .collect()
    }

    /// Bytes on disk (and queued for it) of every partition this shard owns.
    pub fn sizes(&self) -> Vec<(TopicPartition, u64)> {
        self.logs
            .borrow()
            .iter()
            .map(|(partition, log)| (partition.clone(), log.size_bytes()))
            .collect()
    }

    /// Applies the configs of every topic whose overrides differ between
    /// `old` and `new` to the logs of it this shard owns. Produce-side
    /// settings (`max.message.bytes`, timestamps) need nothing: the produce
    /// path reads them from the view per request.
    pub fn reconfigure(&self, old: &ShardView, new: &ShardView) {
        for (partition, log) in self.logs.borrow().iter() {
            let Some(topic) = new.topic(&partition.topic) else {
                continue;
            };
            let changed = old
                .topic(&partition.topic)
                .is_some_and(|before| before.id == topic.id && before.configs != topic.configs);
            if let Some(config) = new.topic_config(&partition.topic).filter(|_| changed) {
                log.reconfigure(config.log.clone());
            }
        }
    }

    /// Writes every log's checkpoint (recovery point etc.).
    pub async fn checkpoint_all(&self) {
        for (partition, log) in self.all_logs() {
            if let Err(error) = log.checkpoint().await {
                log::error!("checkpoint of {}: {error}", partition.dir_name());
            }
        }
    }

    /// Forgets, in every log, the idempotent producers idle for
    /// `producer.id.expiration.ms`.
    pub fn expire_producers_all(&self, now_ms: i64, expiration_ms: i64) {
        for (partition, log) in self.all_logs() {
            let expired = log.expire_producers(now_ms, expiration_ms);
            if expired > 0 {
                log::debug!(
                    "{}: {expired} idle producer id(s) expired",
                    partition.dir_name()
                );
            }
        }
    }

    /// Applies `retention.ms` and `retention.bytes` to every log, one at a
    /// time, and logs what each deleted.
    pub async fn enforce_retention_all(&self, now_ms: i64) {
        for (partition, log) in self.all_logs() {
            match log.enforce_retention(now_ms).await {
                Ok(outcome) if outcome.deleted_segments > 0 => {
                    crate::metrics::retention_deleted(outcome.deleted_segments);
                    log::info!(
                        "retention deleted {} segment(s) of {}; log start offset {}",
                        outcome.deleted_segments,
                        partition.dir_name(),
                        outcome.log_start_offset
                    )
                }
                Ok(_) | Err(LogError::Closed) => {}
                Err(error) => log::error!("retention of {}: {error}", partition.dir_name()),
            }
        }
    }

    /// Runs one cleaning pass on the compacted log that needs it most, as
    /// Kafka's cleaner picks: an urgent one (`max.compaction.lag.ms` passed,
    /// tombstones due) first, else the highest dirty ratio. Returns whether
    /// there was one. The pass backs off while `load` shows the shard busy,
    /// unless it is urgent: `max.compaction.lag.ms` bounds how long a record
    /// stays uncleaned whatever the load.
    pub async fn clean_neediest(
        &self,
        now_ms: i64,
        budget: CleanerBudget,
        load: &ShardLoad,
    ) -> bool {
        let neediest = self
            .all_logs()
            .into_iter()
            .filter_map(|(partition, log)| {
                let need = log.cleaning_need(now_ms)?;
                Some((need, partition, log))
            })
            .max_by(|(a, ..), (b, ..)| {
                (a.urgent, a.dirty_ratio)
                    .partial_cmp(&(b.urgent, b.dirty_ratio))
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
        let Some((need, partition, log)) = neediest else {
            return false;
        };
        let load = (!need.urgent).then_some(load);
        match log.clean(now_ms, budget, load).await {
            Ok(outcome) => {
                crate::metrics::cleaned(
                    outcome.bytes_before,
                    outcome.bytes_after,
                    outcome.records_removed,
                );
                log::info!(
                    "cleaned {}: {} segment(s) of {} bytes into {} of {} bytes, {} record(s) removed, cleaned up to offset {}",
                    partition.dir_name(),
                    outcome.segments_before,
                    outcome.bytes_before,
                    outcome.segments_after,
                    outcome.bytes_after,
                    outcome.records_removed,
                    outcome.cleaner_offset
                )
            }
            Err(LogError::Closed) => {}
            Err(error) => {
                // Kafka marks such a partition uncleanable; here it is retried
                // after the backoff, and the log says why.
                log::error!("cleaning {}: {error}", partition.dir_name());
                return false;
            }
        }
        true
    }

    fn all_logs(&self) -> Vec<(TopicPartition, Rc<PartitionLog>)> {
        self.logs
            .borrow()
            .iter()
            .map(|(partition, log)| (partition.clone(), log.clone()))
            .collect()
    }

    /// Flushes and closes every log (clean shutdown).
    pub async fn close_all(&self) {
        let logs: Vec<(TopicPartition, Rc<PartitionLog>)> =
            self.logs.borrow_mut().drain().collect();
        for (partition, log) in logs {
            if let Err(error) = log.close().await {
                log::error!("closing {}: {error}", partition.dir_name());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::Compression;

    use super::*;
    use crate::log::{AppendWait, TxnVerification};
    use crate::protocol::batch::tests::sample_batch;

    /// W1's request on its owner: one message with a batch for each of 8
    /// partitions, sliced by all, charges the shard's budget the frame
    /// once; deleting the partitions gives it back.
    #[test]
    fn a_frame_for_eight_partitions_is_charged_once_to_the_owner() {
        crate::shard::block_on(|| async {
            let tmp = tempfile::tempdir().unwrap();
            let owned = OwnedPartitions::new(tmp.path().to_path_buf());
            let topic = TopicMeta {
                name: "w1".into(),
                id: uuid::Uuid::from_u128(1),
                partitions: 8,
                configs: BTreeMap::new(),
                placement: Vec::new(),
                states: Vec::new(),
            };
            let broker = BrokerConfig::new(tmp.path().to_path_buf(), 1);
            let indexes: Vec<i32> = (0..8).collect();
            owned.open(&broker, &topic, &indexes).await.unwrap();
            let first = owned.log(&TopicPartition::new("w1", 0)).expect("open");
            owned.open(&broker, &topic, &indexes).await.unwrap();
            let again = owned.log(&TopicPartition::new("w1", 0)).expect("open");
            assert!(
                Rc::ptr_eq(&first, &again),
                "opening again keeps the open log"
            );
            drop((first, again));
            let batch = sample_batch(400, Compression::None);
            let mut frame = BytesMut::new();
            for _ in &indexes {
                frame.extend_from_slice(&batch);
            }
            let frame: Bytes = frame.freeze();
            let pinned_bytes = frame.len() + 4;
            let parts = indexes
                .iter()
                .map(|&index| {
                    let at = index as usize * batch.len();
                    ProducePart {
                        partition: TopicPartition::new("w1", index),
                        batches: frame.slice(at..at + batch.len()),
                        pinned_bytes,
                        wait: AppendWait::Durable,
                        log_append_time_ms: None,
                        verification: TxnVerification::Off,
                    }
                })
                .collect();
            drop(frame);
            for answer in owned.produce(parts).await {
                assert_eq!(answer.map(|appended| appended.base_offset).ok(), Some(0));
            }
            assert_eq!(owned.frames.charged_bytes(), pinned_bytes);
            let partitions: Vec<TopicPartition> = indexes
                .iter()
                .map(|&index| TopicPartition::new("w1", index))
                .collect();
            owned.delete(&partitions).await;
            assert_eq!(owned.frames.charged_bytes(), 0);
        });
    }
}
