//! The transaction coordinator as a shard runs it: the pure state machine
//! of `crate::txn`, fed with requests, a clock, producer ids and timers; its
//! records appended to the `__transaction_state` partitions this shard owns
//! before anything is answered; the markers of each prepared commit or
//! abort written to the transaction's partitions, here or on the nodes
//! leading them (`Shard::send_txn_markers`), in a task of their own after EndTxn is answered, then the record that
//! completes the transaction. A partition the broker no longer has is
//! dropped from the markers, as Kafka drops a partition without a leader;
//! other errors are retried with a backoff.
//!
//! Invariant: every transactional id handled here hashes to a
//! `__transaction_state` partition owned by this shard, so its state and
//! its log live on one thread. A state change is answered only after its
//! record is durable. After a restart, the markers of every transaction
//! loaded in PrepareCommit or PrepareAbort are written again.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::{Rc, Weak};
use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::Compression;

use super::messages::{TopicPartition, TxnAnswer, TxnCall};
use super::owned::OwnedPartitions;
use super::replay::{replay_partition, with_records};
use super::Shard;
use crate::clock::now_ms;
use crate::group::offsets_partition;
use crate::log::AppendWait;
use crate::protocol::records::{encode_batch, ProducerRecord, TxnMarker};
use crate::txn::{
    Completion, EndOutcome, MarkerJob, Transit, TxnConfig, TxnCoordinator, TRANSACTION_STATE_TOPIC,
    TV_0, TV_2,
};

/// First wait before markers (or the record completing them) are tried
/// again; doubled up to `RETRY_BACKOFF_MS_MAX`. Kafka's marker sender
/// retries at its request backoff, 100 ms.
const RETRY_BACKOFF_MS: u64 = 100;
/// A partition that keeps failing is tried at least this often.
const RETRY_BACKOFF_MS_MAX: u64 = 5_000;

pub struct TxnHost {
    coordinator: RefCell<TxnCoordinator>,
    /// `__transaction_state` partitions being loaded: their ids are not
    /// known yet, so requests for them get COORDINATOR_LOAD_IN_PROGRESS.
    loading: RefCell<BTreeSet<i32>>,
}

fn now() -> i64 {
    i64::try_from(now_ms()).unwrap_or(i64::MAX)
}

impl TxnHost {
    pub fn new(config: TxnConfig) -> TxnHost {
        TxnHost {
            coordinator: RefCell::new(TxnCoordinator::new(config)),
            loading: RefCell::new(BTreeSet::new()),
        }
    }

    fn partition_of(&self, shard: &Shard, transactional_id: &str) -> i32 {
        let partitions = shard
            .view()
            .topic(TRANSACTION_STATE_TOPIC)
            .map_or(1, |topic| topic.partitions.max(1));
        offsets_partition(transactional_id, partitions)
    }

    /// COORDINATOR_LOAD_IN_PROGRESS when `call`'s id lives in a partition
    /// that is loading (clients retry it, as with Kafka).
    pub fn refuse_while_loading(&self, shard: &Shard, call: &TxnCall) -> Option<ResponseError> {
        let loading = self.loading.borrow();
        if loading.is_empty() {
            return None;
        }
        let busy = match call.transactional_id() {
            Some(id) => loading.contains(&self.partition_of(shard, id)),
            None => true,
        };
        busy.then_some(ResponseError::CoordinatorLoadInProgress)
    }

    /// Rebuilds the coordinator's state from `partitions` of
    /// `__transaction_state` (those this shard owns), then resumes the
    /// markers of every transaction left prepared.
    pub async fn load(&self, shard: &Rc<Shard>, partitions: &[i32]) {
        self.mark_loading(partitions);
        for &partition in partitions {
            let topic_partition = TopicPartition::new(TRANSACTION_STATE_TOPIC, partition);
            replay_partition(&shard.partitions, &topic_partition, |batch, record| match (
                &record.key,
                batch.control,
            ) {
                (Some(key), false) => {
                    let value = record.value.as_deref();
                    self.coordinator.borrow_mut().replay(partition, key, value)
                }
                _ => Ok(()),
            })
            .await;
            self.loading.borrow_mut().remove(&partition);
            let jobs = self.coordinator.borrow_mut().loaded(partition);
            for job in jobs {
                spawn_markers(shard, job);
            }
        }
    }

    /// Refuses requests for the ids of `partitions` until `load` has read
    /// them (it may start later, in a task of its own).
    fn mark_loading(&self, partitions: &[i32]) {
        self.loading.borrow_mut().extend(partitions);
    }

    /// Forgets the ids of `partitions`; what is durable stays in the log
    /// for the next load.
    fn unload(&self, partitions: &[i32]) {
        let mut coordinator = self.coordinator.borrow_mut();
        for &partition in partitions {
            coordinator.unload_partition(partition);
        }
    }

    /// Runs one transaction request on this shard's coordinator.
    pub async fn call(&self, shard: &Rc<Shard>, call: TxnCall) -> TxnAnswer {
        match call {
            TxnCall::InitProducerId {
                transactional_id,
                timeout_ms,
                expected,
            } => TxnAnswer::ProducerId(
                self.init_producer_id(shard, &transactional_id, timeout_ms, expected)
                    .await,
            ),
            TxnCall::AddPartitions {
                transactional_id,
                producer_id,
                producer_epoch,
                partitions,
                verify_only: true,
            } => TxnAnswer::Added(self.coordinator.borrow().verify_partitions(
                &transactional_id,
                producer_id,
                producer_epoch,
                &partitions,
            )),
            TxnCall::AddPartitions {
                transactional_id,
                producer_id,
                producer_epoch,
                partitions,
                verify_only: false,
            } => TxnAnswer::Added(
                self.add(
                    shard,
                    &transactional_id,
                    (producer_id, producer_epoch),
                    &partitions,
                    TV_0,
                )
                .await,
            ),
            TxnCall::AddImplicitly {
                transactional_id,
                producer_id,
                producer_epoch,
                partitions,
            } => TxnAnswer::Added(
                self.add(
                    shard,
                    &transactional_id,
                    (producer_id, producer_epoch),
                    &partitions,
                    TV_2,
                )
                .await,
            ),
            TxnCall::EndTxn {
                transactional_id,
                producer_id,
                producer_epoch,
                commit,
                client_tv,
            } => TxnAnswer::Ended(
                self.end_txn(
                    shard,
                    &transactional_id,
                    (producer_id, producer_epoch),
                    commit,
                    client_tv,
                )
                .await,
            ),
            TxnCall::Describe(transactional_id) => {
                TxnAnswer::Described(self.coordinator.borrow().describe(&transactional_id))
            }
            TxnCall::List {
                states,
                producer_ids,
                min_duration_ms,
            } => TxnAnswer::Listed(self.coordinator.borrow().list(
                now(),
                &states,
                &producer_ids,
                min_duration_ms,
            )),
        }
    }

    /// Adds `partitions` to the producer's transaction, writing the
    /// record when that changes it.
    async fn add(
        &self,
        shard: &Rc<Shard>,
        transactional_id: &str,
        (producer_id, producer_epoch): (i64, i16),
        partitions: &[(String, i32)],
        client_tv: i16,
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        let outcome = self.coordinator.borrow_mut().add_partitions(
            now(),
            transactional_id,
            producer_id,
            producer_epoch,
            partitions,
            client_tv,
        );
        match outcome {
            Ok(None) => Ok(Vec::new()),
            Ok(Some(transit)) => self.write(shard, transit).await.answer.map(|_| Vec::new()),
            Err(error) => Err(error),
        }
    }

    async fn end_txn(
        &self,
        shard: &Rc<Shard>,
        transactional_id: &str,
        (producer_id, producer_epoch): (i64, i16),
        commit: bool,
        client_tv: i16,
    ) -> Result<(i64, i16), ResponseError> {
        let rotates = self
            .coordinator
            .borrow()
            .end_needs_producer_id(transactional_id, client_tv);
        let new_producer_id = if rotates {
            Some(self.allocate(shard).await?)
        } else {
            None
        };
        let outcome = self.coordinator.borrow_mut().end_txn(
            now(),
            transactional_id,
            (producer_id, producer_epoch),
            commit,
            client_tv,
            new_producer_id,
        );
        match outcome? {
            EndOutcome::Done(producer_id, epoch) => Ok((producer_id, epoch)),
            EndOutcome::Write(transit) => self.write(shard, transit).await.answer,
        }
    }

    /// A producer id never handed out.
    async fn allocate(&self, shard: &Rc<Shard>) -> Result<i64, ResponseError> {
        shard.producer_ids.next(shard).await.map_err(|error| {
            ResponseError::try_from_code(error.code)
                .unwrap_or(ResponseError::CoordinatorNotAvailable)
        })
    }

    async fn init_producer_id(
        &self,
        shard: &Rc<Shard>,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), ResponseError> {
        let new_producer_id = if self
            .coordinator
            .borrow()
            .needs_producer_id(transactional_id)
        {
            Some(self.allocate(shard).await?)
        } else {
            None
        };
        let txn_partition = self.partition_of(shard, transactional_id);
        let transit = self.coordinator.borrow_mut().init_producer_id(
            now(),
            txn_partition,
            transactional_id,
            timeout_ms,
            expected,
            new_producer_id,
        )?;
        self.write(shard, transit).await.answer
    }

    /// Appends `transit`'s record durably, completes it, and starts the
    /// markers it leads to.
    async fn write(&self, shard: &Rc<Shard>, transit: Transit) -> Completion {
        let appended = append(&shard.partitions, &transit).await;
        let completion = self.coordinator.borrow_mut().complete(transit, appended);
        if let Some(job) = completion.markers.clone() {
            spawn_markers(shard, job);
        }
        completion
    }

    /// Aborts the transactions past their timeout; called every
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    async fn abort_timed_out(&self, shard: &Rc<Shard>) {
        let transits = self.coordinator.borrow_mut().abort_timed_out(now());
        for transit in transits {
            log::info!(
                "transactional id {}: aborting its transaction past its timeout",
                transit.transactional_id
            );
            self.write(shard, transit).await;
        }
    }

    /// Removes the transactional ids idle past
    /// `transactional.id.expiration.ms`; called every
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    async fn expire(&self, shard: &Rc<Shard>) {
        let transits = self.coordinator.borrow_mut().expire(now());
        for transit in transits {
            self.write(shard, transit).await;
        }
    }

    /// The coordinator epoch markers carry: the leader epoch of the id's
    /// `__transaction_state` partition.
    fn coordinator_epoch(&self, shard: &Shard, txn_partition: i32) -> i32 {
        shard
            .partitions
            .log(&TopicPartition::new(TRANSACTION_STATE_TOPIC, txn_partition))
            .map_or(0, |log| log.leader_epoch())
    }

    /// Writes `job`'s markers until every partition has one (or is gone),
    /// then the record completing the transaction; returns early when the
    /// transaction stops waiting (its partition unloaded) or the shard
    /// stops.
    async fn finish(shard: Weak<Shard>, job: MarkerJob) {
        let mut remaining = job.partitions.clone();
        let mut backoff_ms = RETRY_BACKOFF_MS;
        while !remaining.is_empty() {
            let Some(shard) = shard.upgrade() else { return };
            if !shard.transactions.coordinator.borrow().awaits_markers(&job) {
                return;
            }
            let marker = TxnMarker {
                producer_id: job.producer_id,
                producer_epoch: job.producer_epoch,
                coordinator_epoch: shard
                    .transactions
                    .coordinator_epoch(&shard, job.txn_partition),
                commit: job.commit,
            };
            let parts = remaining
                .iter()
                .map(|(topic, partition)| (TopicPartition::new(topic, *partition), marker))
                .collect();
            let results = shard.send_txn_markers(parts).await;
            remaining = remaining
                .into_iter()
                .zip(results)
                .filter(|((topic, partition), result)| {
                    retry_marker(&job, topic, *partition, result)
                })
                .map(|(partition, _)| partition)
                .collect();
            if remaining.is_empty() {
                break;
            }
            drop(shard);
            glommio::timer::sleep(Duration::from_millis(backoff_ms)).await;
            backoff_ms = (backoff_ms * 2).min(RETRY_BACKOFF_MS_MAX);
        }
        loop {
            let Some(shard) = shard.upgrade() else { return };
            let host = &shard.transactions;
            let transit = host.coordinator.borrow_mut().markers_written(now(), &job);
            let Some(transit) = transit else { return };
            if host.write(&shard, transit).await.answer.is_ok() {
                return;
            }
            drop(shard);
            glommio::timer::sleep(Duration::from_millis(backoff_ms)).await;
            backoff_ms = (backoff_ms * 2).min(RETRY_BACKOFF_MS_MAX);
        }
    }
}

/// Whether a marker's result means trying that partition again.
fn retry_marker(
    job: &MarkerJob,
    topic: &str,
    partition: i32,
    result: &Result<(), super::messages::KafkaError>,
) -> bool {
    let Err(error) = result else { return false };
    match ResponseError::try_from_code(error.code) {
        // The partition is gone (deleted): its marker is not needed.
        Some(ResponseError::UnknownTopicOrPartition) => false,
        // The partition has seen a newer epoch of the producer (a later
        // transaction of the id superseded this one there) or a newer
        // coordinator epoch.
        Some(
            ResponseError::InvalidProducerEpoch
            | ResponseError::ProducerFenced
            | ResponseError::TransactionCoordinatorFenced,
        ) => {
            log::warn!(
                "transactional id {}: {topic}-{partition} refused the marker of epoch {}: {:?}",
                job.transactional_id,
                job.producer_epoch,
                error.message
            );
            false
        }
        _ => true,
    }
}

/// Moves the coordinator of `shard` with the leadership of the
/// `__transaction_state` partitions it owns: the ids of `lost` are
/// forgotten; those of `gained` are read from their log afresh (whatever
/// an earlier term here left is forgotten first) and their prepared
/// transactions finished, in a task of their own so that an install never
/// waits for a replay, their requests refused as loading from now on.
pub fn follow_leadership(shard: &Rc<Shard>, gained: Vec<i32>, lost: &[i32]) {
    let host = &shard.transactions;
    host.unload(lost);
    host.unload(&gained);
    let gained = with_records(&shard.partitions, TRANSACTION_STATE_TOPIC, gained);
    if gained.is_empty() {
        return;
    }
    host.mark_loading(&gained);
    let shard = shard.clone();
    glommio::spawn_local(async move {
        shard.transactions.load(&shard, &gained).await;
    })
    .detach();
}

fn spawn_markers(shard: &Rc<Shard>, job: MarkerJob) {
    glommio::spawn_local(TxnHost::finish(Rc::downgrade(shard), job)).detach();
}

/// Appends `transit`'s record to its `__transaction_state` partition as one
/// batch and waits until it is durable. Kafka answers a failed append with
/// a retriable coordinator error; so does this.
async fn append(owned: &OwnedPartitions, transit: &Transit) -> Result<(), ResponseError> {
    let record = &transit.record;
    let topic_partition = TopicPartition::new(TRANSACTION_STATE_TOPIC, record.partition);
    let Some(log) = owned.log(&topic_partition) else {
        return Err(ResponseError::NotCoordinator);
    };
    let records = [ProducerRecord {
        key: Some(record.key.clone()),
        value: record.value.clone(),
    }];
    let batch = encode_batch(&records, Compression::None, now()).map_err(|error| {
        log::error!("{}: cannot encode: {error}", topic_partition.dir_name());
        ResponseError::UnknownServerError
    })?;
    match log
        .append(BytesMut::from(&batch[..]), AppendWait::Durable, None)
        .await
    {
        Ok(_) => Ok(()),
        Err(error) => {
            log::error!(
                "{}: cannot append transaction state: {error}",
                topic_partition.dir_name()
            );
            Err(ResponseError::CoordinatorNotAvailable)
        }
    }
}

/// Starts the timers of the timeouts and of expiration, each at its
/// configured interval until the shard goes away.
pub fn spawn_timers(shard: &Rc<Shard>) {
    let config = &shard.config.txn;
    let abort_every = Duration::from_millis(config.abort_timed_out_interval_ms.max(1) as u64);
    let expire_every = Duration::from_millis(config.remove_expired_interval_ms.max(1) as u64);
    let aborter = Rc::downgrade(shard);
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(abort_every).await;
            let Some(shard) = aborter.upgrade() else {
                break;
            };
            shard.transactions.abort_timed_out(&shard).await;
        }
    })
    .detach();
    let expirer = Rc::downgrade(shard);
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(expire_every).await;
            let Some(shard) = expirer.upgrade() else {
                break;
            };
            shard.transactions.expire(&shard).await;
        }
    })
    .detach();
}
