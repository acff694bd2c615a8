//! The group coordinator as a shard runs it: the pure state machine of
//! `crate::group`, fed with requests, a clock and a timer, its records
//! appended to the `__consumer_offsets` partitions this shard owns, and its
//! waiting JoinGroup/SyncGroup answers delivered once those records are on
//! disk. A transaction's offsets go in transactional batches of its
//! producer, appended as a coordinator's (Kafka's `AppendOrigin`: only the
//! producer epoch is checked); the transaction coordinator calls
//! `complete_txn` once the marker is in, and loading replays markers with
//! the records.
//!
//! Invariant: every group handled here hashes to a `__consumer_offsets`
//! partition owned by this shard, so its state and its log live on one
//! thread. A commit is answered only after its record is durable.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use futures_channel::oneshot;
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::Compression;

use super::messages::{GroupAnswer, GroupCall, TopicPartition};
use super::owned::OwnedPartitions;
use super::replay::{replay_partition, with_records};
use super::Shard;
use crate::clock::now_ms;
use crate::group::{
    offsets_partition, Completion, ConsumerHeartbeatResponse, Effects, GroupConfig,
    GroupCoordinator, JoinResponse, Record, RecordError, RequestToken, SyncResponse, OFFSETS_TOPIC,
};
use crate::log::{AppendOrigin, AppendWait, LogError, ProducerError};
use crate::metadata::ClusterView;
use crate::protocol::records::{
    encode_batch, encode_txn_batch, ConsumedRecord, DecodedBatch, ProducerRecord, TxnMarker,
};

/// How often sessions, join barriers and offset retention are checked.
/// Kafka's coordinator timers have the same resolution.
pub const GROUP_TICK_MS: u64 = 100;

pub struct GroupHost {
    coordinator: RefCell<GroupCoordinator>,
    waiting: RefCell<HashMap<RequestToken, oneshot::Sender<Completion>>>,
    next_token: Cell<RequestToken>,
    /// `__consumer_offsets` partitions being (re)loaded: their groups are
    /// half-built, so requests for them get COORDINATOR_LOAD_IN_PROGRESS.
    loading: RefCell<BTreeSet<i32>>,
}

impl GroupHost {
    pub fn new(config: GroupConfig, shard_id: usize) -> GroupHost {
        // Member ids must differ between broker runs and between shards.
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or(0)
            ^ ((shard_id as u64) << 56);
        GroupHost {
            coordinator: RefCell::new(GroupCoordinator::new(config, seed)),
            waiting: RefCell::new(HashMap::new()),
            next_token: Cell::new(1),
            loading: RefCell::new(BTreeSet::new()),
        }
    }

    /// Every group this shard coordinates, for a scrape (`metrics.rs`).
    pub fn gauges(&self) -> Vec<crate::group::GroupGauge> {
        self.coordinator.borrow().gauges()
    }

    /// COORDINATOR_LOAD_IN_PROGRESS when `call`'s group lives in a
    /// partition that is loading (clients retry it, as with Kafka).
    pub fn refuse_while_loading(&self, call: &GroupCall) -> Option<ResponseError> {
        let loading = self.loading.borrow();
        if loading.is_empty() {
            return None;
        }
        let partitions = self
            .coordinator
            .borrow()
            .config()
            .offsets_topic_num_partitions;
        let group_ids = call.group_ids();
        let busy = group_ids.is_empty()
            || group_ids
                .iter()
                .any(|group_id| loading.contains(&offsets_partition(group_id, partitions)));
        busy.then_some(ResponseError::CoordinatorLoadInProgress)
    }

    /// Rebuilds the coordinator's state from `partitions` of
    /// `__consumer_offsets` (those this shard owns), reading each log from
    /// its start to its log end offset (`replay`). Until a partition is
    /// loaded, requests for its groups are refused (`refuse_while_loading`).
    pub async fn load(&self, owned: &OwnedPartitions, partitions: &[i32]) {
        self.mark_loading(partitions);
        for &partition in partitions {
            self.load_partition(owned, partition).await;
            self.loading.borrow_mut().remove(&partition);
        }
    }

    /// Refuses requests for the groups of `partitions` until `load` has
    /// read them (it may start later, in a task of its own).
    fn mark_loading(&self, partitions: &[i32]) {
        self.loading.borrow_mut().extend(partitions);
    }

    /// Forgets the groups of `partitions`, answering their waiting
    /// requests NOT_COORDINATOR (the clients look the coordinator up
    /// again); what is durable stays in the log for the next load.
    fn unload(&self, partitions: &[i32]) {
        for &partition in partitions {
            let effects = self.coordinator.borrow_mut().unload_partition(partition);
            self.deliver(effects.completions);
        }
    }

    async fn load_partition(&self, owned: &OwnedPartitions, partition: i32) {
        let topic_partition = TopicPartition::new(OFFSETS_TOPIC, partition);
        replay_partition(owned, &topic_partition, |batch, record| {
            self.replay_record(partition, batch, record)
        })
        .await;
    }

    /// Replays one record read back from `__consumer_offsets` partition
    /// `partition`: pending in its producer's transaction if its batch is
    /// transactional, or the transaction marker it holds.
    fn replay_record(
        &self,
        partition: i32,
        batch: &DecodedBatch,
        record: &ConsumedRecord,
    ) -> Result<(), RecordError> {
        let now = now_ms() as i64;
        let mut coordinator = self.coordinator.borrow_mut();
        if batch.control {
            let (id, epoch) = (batch.producer_id, batch.producer_epoch);
            let marker = match (&record.key, &record.value) {
                (Some(key), Some(value)) => TxnMarker::decode(id, epoch, key, value),
                _ => None,
            };
            if let Some(marker) = marker {
                coordinator.complete_txn(now, partition, id, marker.commit);
            }
            return Ok(());
        }
        let Some(key) = &record.key else {
            return Ok(());
        };
        let txn = batch.transactional.then_some(batch.producer_id);
        coordinator.replay(now, record.offset, txn, key, record.value.as_deref())
    }

    /// The end of producer `producer_id`'s transaction, whose marker
    /// (COMMIT when `commit`) is now durable in `__consumer_offsets`
    /// partition `offsets_partition`: its pending offsets there become
    /// committed or are dropped. While the partition loads, the load reads
    /// the marker itself.
    pub fn complete_txn(&self, offsets_partition: i32, producer_id: i64, commit: bool) {
        if self.loading.borrow().contains(&offsets_partition) {
            return;
        }
        self.coordinator.borrow_mut().complete_txn(
            now_ms() as i64,
            offsets_partition,
            producer_id,
            commit,
        );
    }

    fn token(&self) -> (RequestToken, oneshot::Receiver<Completion>) {
        let token = self.next_token.get();
        self.next_token.set(token + 1);
        let (sender, receiver) = oneshot::channel();
        self.waiting.borrow_mut().insert(token, sender);
        (token, receiver)
    }

    /// Runs one group request on this shard's coordinator. `view` resolves
    /// the topics consumer-protocol groups subscribe to.
    pub async fn call(
        &self,
        owned: &OwnedPartitions,
        view: &ClusterView,
        call: GroupCall,
    ) -> GroupAnswer {
        let now = now_ms() as i64;
        match call {
            GroupCall::Join(request) => {
                let member_id = request.member_id.clone();
                let (token, answer) = self.token();
                let effects = self.coordinator.borrow_mut().join(now, token, request);
                self.apply(owned, effects).await;
                match answer.await {
                    Ok(Completion::Join(_, response)) => GroupAnswer::Join(response),
                    _ => GroupAnswer::Join(JoinResponse {
                        error: Some(ResponseError::NotCoordinator),
                        generation_id: -1,
                        member_id,
                        ..JoinResponse::default()
                    }),
                }
            }
            GroupCall::Sync(request) => {
                let (token, answer) = self.token();
                let effects = self.coordinator.borrow_mut().sync(now, token, request);
                self.apply(owned, effects).await;
                match answer.await {
                    Ok(Completion::Sync(_, response)) => GroupAnswer::Sync(response),
                    _ => GroupAnswer::Sync(SyncResponse {
                        error: Some(ResponseError::NotCoordinator),
                        ..SyncResponse::default()
                    }),
                }
            }
            GroupCall::Heartbeat(request) => {
                GroupAnswer::Heartbeat(self.coordinator.borrow_mut().heartbeat(now, &request))
            }
            GroupCall::Leave { group_id, members } => {
                let (response, effects) =
                    self.coordinator.borrow_mut().leave(now, &group_id, members);
                self.apply(owned, effects).await;
                GroupAnswer::Leave(response)
            }
            GroupCall::Commit(request) => {
                let (mut results, effects) = self.coordinator.borrow_mut().commit(now, request);
                if !self.apply(owned, effects).await {
                    for result in results.iter_mut().filter(|result| result.error.is_none()) {
                        result.error = Some(ResponseError::NotCoordinator);
                    }
                }
                GroupAnswer::Offsets(results)
            }
            GroupCall::TxnCommit(request) => {
                let (mut results, effects) = self.coordinator.borrow_mut().txn_commit(now, request);
                if let Err(error) = self.apply_all(owned, effects).await {
                    for result in results.iter_mut().filter(|result| result.error.is_none()) {
                        result.error = Some(error);
                    }
                }
                GroupAnswer::Offsets(results)
            }
            GroupCall::FetchOffsets {
                group_id,
                member,
                partitions,
                require_stable,
            } => {
                let coordinator = self.coordinator.borrow();
                let refused = member.and_then(|(member_id, epoch)| {
                    coordinator.validate_consumer_fetch(&group_id, &member_id, epoch)
                });
                GroupAnswer::FetchedOffsets(match refused {
                    Some(error) => Err(error),
                    None => Ok(coordinator.fetch_offsets(
                        &group_id,
                        partitions.as_deref(),
                        require_stable,
                    )),
                })
            }
            GroupCall::DeleteOffsets {
                group_id,
                partitions,
            } => {
                let (result, effects) = self
                    .coordinator
                    .borrow_mut()
                    .delete_offsets(&group_id, &partitions);
                let durable = self.apply(owned, effects).await;
                GroupAnswer::DeleteOffsets(match result {
                    Ok(_) if !durable => Err(ResponseError::NotCoordinator),
                    other => other,
                })
            }
            GroupCall::Describe(group_id) => {
                GroupAnswer::Described(self.coordinator.borrow().describe_group(&group_id))
            }
            GroupCall::List(states) => {
                GroupAnswer::Listed(self.coordinator.borrow().list_groups(&states))
            }
            GroupCall::ConsumerHeartbeat(request) => {
                let topics = |name: &str| view.topic(name).map(|meta| (meta.id, meta.partitions));
                let (mut response, effects) = self
                    .coordinator
                    .borrow_mut()
                    .consumer_heartbeat(now, *request, &topics);
                if !self.apply(owned, effects).await && response.error.is_none() {
                    response = ConsumerHeartbeatResponse::failure(
                        ResponseError::NotCoordinator,
                        "cannot write the group's records",
                    );
                }
                GroupAnswer::ConsumerHeartbeat(response)
            }
            GroupCall::ConsumerDescribe(group_ids) => GroupAnswer::ConsumerDescribed(
                self.coordinator.borrow().consumer_describe(&group_ids),
            ),
            GroupCall::Delete(group_id) => {
                let (error, effects) = self.coordinator.borrow_mut().delete_group(now, &group_id);
                let durable = self.apply(owned, effects).await;
                GroupAnswer::Deleted(match error {
                    None if !durable => Some(ResponseError::NotCoordinator),
                    other => other,
                })
            }
        }
    }

    /// Expires sessions, closes barriers, expires offsets; called every
    /// `GROUP_TICK_MS` by the shard.
    pub async fn tick(&self, owned: &OwnedPartitions) {
        let effects = self.coordinator.borrow_mut().tick(now_ms() as i64);
        if !effects.is_empty() {
            self.apply(owned, effects).await;
        }
    }

    /// Appends the records (durably), then hands out the completions.
    /// Returns false when an append failed: the in-memory state of those
    /// partitions is then rebuilt from what is on disk.
    async fn apply(&self, owned: &OwnedPartitions, effects: Effects) -> bool {
        self.apply_all(owned, effects).await.is_ok()
    }

    /// `apply`, with the error to answer when an append failed:
    /// INVALID_PRODUCER_EPOCH when the log refused a transaction's batch of
    /// a fenced producer, else NOT_COORDINATOR.
    async fn apply_all(
        &self,
        owned: &OwnedPartitions,
        effects: Effects,
    ) -> Result<(), ResponseError> {
        let Effects {
            records,
            completions,
        } = effects;
        let mut by_partition: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
        for record in records {
            by_partition
                .entry(record.partition)
                .or_default()
                .push(record);
        }
        let mut failed = Vec::new();
        let mut answer = Ok(());
        for (partition, records) in by_partition {
            // One batch per run of records of one transaction (or of none).
            for run in records.chunk_by(|a, b| a.txn == b.txn) {
                if let Err(error) = append(owned, partition, run).await {
                    log::error!(
                        "{OFFSETS_TOPIC}-{partition}: cannot append group records: {error}"
                    );
                    answer = Err(append_error(&error));
                    failed.push(partition);
                    break;
                }
            }
        }
        self.deliver(completions);
        if failed.is_empty() {
            return Ok(());
        }
        self.unload(&failed);
        self.load(owned, &failed).await;
        answer
    }

    fn deliver(&self, completions: Vec<Completion>) {
        for completion in completions {
            let token = match &completion {
                Completion::Join(token, _) | Completion::Sync(token, _) => *token,
            };
            let waiter = self.waiting.borrow_mut().remove(&token);
            if let Some(waiter) = waiter {
                let _ = waiter.send(completion);
            }
        }
    }
}

/// The Kafka error for a failed append of group records.
fn append_error(error: &anyhow::Error) -> ResponseError {
    match error.downcast_ref::<LogError>() {
        Some(LogError::Producer(ProducerError::InvalidProducerEpoch(_))) => {
            ResponseError::InvalidProducerEpoch
        }
        _ => ResponseError::NotCoordinator,
    }
}

/// Appends `records` to `__consumer_offsets`-`partition` as one batch (a
/// transactional one of their producer if they belong to a transaction)
/// and waits until it is durable.
async fn append(owned: &OwnedPartitions, partition: i32, records: &[Record]) -> anyhow::Result<()> {
    let topic_partition = TopicPartition::new(OFFSETS_TOPIC, partition);
    let log = owned
        .log(&topic_partition)
        .ok_or_else(|| anyhow::anyhow!("partition not owned by this shard"))?;
    let txn = records.first().and_then(|record| record.txn);
    debug_assert!(records.iter().all(|record| record.txn == txn));
    let records: Vec<ProducerRecord> = records
        .iter()
        .map(|record| ProducerRecord {
            key: Some(record.key.clone()),
            value: record.value.clone(),
        })
        .collect();
    let timestamp_ms = now_ms() as i64;
    let batch = match txn {
        None => encode_batch(&records, Compression::None, timestamp_ms)?,
        Some(txn) => encode_txn_batch(
            &records,
            Compression::None,
            timestamp_ms,
            txn.producer_id,
            txn.producer_epoch,
        )?,
    };
    log.append_from(
        AppendOrigin::Coordinator,
        BytesMut::from(&batch[..]),
        AppendWait::Durable,
        None,
    )
    .await?;
    Ok(())
}

/// Moves the coordinator of `shard` with the leadership of the
/// `__consumer_offsets` partitions it owns: the groups of `lost` are
/// forgotten; those of `gained` are read from their log afresh (whatever
/// an earlier term here left is forgotten first), in a task of their own
/// so that an install never waits for a replay, their requests refused as
/// loading from now on.
pub fn follow_leadership(shard: &Rc<Shard>, gained: Vec<i32>, lost: &[i32]) {
    let host = &shard.groups;
    host.unload(lost);
    host.unload(&gained);
    let gained = with_records(&shard.partitions, OFFSETS_TOPIC, gained);
    if gained.is_empty() {
        return;
    }
    host.mark_loading(&gained);
    let shard = shard.clone();
    glommio::spawn_local(async move {
        shard.groups.load(&shard.partitions, &gained).await;
    })
    .detach();
}

/// Drives `host.tick` every `GROUP_TICK_MS` until the shard goes away.
pub async fn run_ticks(shard: std::rc::Weak<super::Shard>) {
    loop {
        glommio::timer::sleep(Duration::from_millis(GROUP_TICK_MS)).await;
        let Some(shard) = shard.upgrade() else { break };
        shard.groups.tick(&shard.partitions).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_registered() {
        let host = GroupHost::new(GroupConfig::default(), 0);
        let (first, _a) = host.token();
        let (second, _b) = host.token();
        assert_ne!(first, second);
        assert_eq!(host.waiting.borrow().len(), 2);
    }

    use std::collections::BTreeMap;

    use crate::config::BrokerConfig;
    use crate::group::{OffsetToCommit, TxnCommitRequest, TxnProducer};
    use crate::metadata::TopicMeta;

    const GROUP: &str = "txn-group";

    /// The COMMIT or ABORT marker of `producer`'s transaction.
    fn marker(producer: TxnProducer, commit: bool) -> TxnMarker {
        TxnMarker {
            producer_id: producer.producer_id,
            producer_epoch: producer.producer_epoch,
            coordinator_epoch: 0,
            commit,
        }
    }

    /// A plain (not transactional) OffsetCommit of the group's offset of
    /// `t`-`topic_partition`.
    fn plain_commit(topic_partition: i32, offset: i64) -> crate::group::CommitRequest {
        let no_producer = TxnProducer {
            producer_id: -1,
            producer_epoch: -1,
        };
        crate::group::CommitRequest {
            group_id: GROUP.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            offsets: txn_commit(no_producer, topic_partition, offset).offsets,
            api_version: 9,
        }
    }

    fn txn_commit(producer: TxnProducer, topic_partition: i32, offset: i64) -> TxnCommitRequest {
        TxnCommitRequest {
            group_id: GROUP.into(),
            producer,
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            offsets: vec![OffsetToCommit {
                topic: "t".into(),
                partition: topic_partition,
                offset,
                leader_epoch: -1,
                metadata: None,
            }],
        }
    }

    /// What OffsetFetch with `require_stable` answers for t-0 .. t-2:
    /// (error code, offset).
    fn stable(host: &GroupHost) -> Vec<(i16, i64)> {
        let wanted: Vec<(String, i32)> = (0..3).map(|p| ("t".to_string(), p)).collect();
        let coordinator = host.coordinator.borrow();
        coordinator
            .fetch_offsets(GROUP, Some(&wanted), true)
            .iter()
            .map(|fetched| {
                let offset = fetched.committed.as_ref().map_or(-1, |c| c.offset);
                (fetched.error.map_or(0, |e| e.code()), offset)
            })
            .collect()
    }

    /// `__consumer_offsets` with `partitions` partitions, as the tests open it.
    fn offsets_topic(partitions: i32) -> TopicMeta {
        TopicMeta {
            name: OFFSETS_TOPIC.into(),
            id: uuid::Uuid::from_u128(7),
            partitions,
            configs: BTreeMap::new(),
            placement: Vec::new(),
            states: Vec::new(),
        }
    }

    /// The transactional records and the markers of a real
    /// `__consumer_offsets` log: applied live, then loaded by a fresh host
    /// (a restart) into the same offsets; a fenced producer's batch is
    /// refused by the log with INVALID_PRODUCER_EPOCH.
    #[test]
    fn transactions_in_the_log_load_into_what_their_markers_decided() {
        crate::shard::block_on(|| async {
            let tmp = tempfile::tempdir().unwrap();
            let config = GroupConfig::default();
            let partitions = config.offsets_topic_num_partitions;
            let partition = offsets_partition(GROUP, partitions);
            let owned = OwnedPartitions::new(tmp.path().to_path_buf());
            let topic = offsets_topic(partitions);
            let broker = BrokerConfig::new(tmp.path().to_path_buf(), 1);
            owned.open(&broker, &topic, &[partition]).await.unwrap();
            let log = owned
                .log(&TopicPartition::new(OFFSETS_TOPIC, partition))
                .unwrap();
            let committing = TxnProducer {
                producer_id: 4_000,
                producer_epoch: 3,
            };
            let aborting = TxnProducer {
                producer_id: 4_001,
                producer_epoch: 0,
            };
            let host = GroupHost::new(config.clone(), 0);
            let commit = |request| {
                let (results, effects) = host.coordinator.borrow_mut().txn_commit(0, request);
                assert!(results.iter().all(|result| result.error.is_none()));
                effects
            };
            for (producer, topic_partition, offset) in
                [(committing, 0, 10), (committing, 0, 11), (aborting, 1, 20)]
            {
                let effects = commit(txn_commit(producer, topic_partition, offset));
                assert_eq!(host.apply_all(&owned, effects).await, Ok(()));
            }
            let effects = commit(txn_commit(committing, 2, 30));
            let (_, plain) = host.coordinator.borrow_mut().commit(0, plain_commit(1, 5));
            let mut both = effects;
            both.records.extend(plain.records);
            assert_eq!(host.apply_all(&owned, both).await, Ok(()));
            let unstable = ResponseError::UnstableOffsetCommit.code();
            assert_eq!(
                stable(&host),
                [(unstable, -1), (unstable, -1), (unstable, -1)]
            );

            log.append_txn_marker(marker(committing, true))
                .await
                .unwrap();
            host.complete_txn(partition, committing.producer_id, true);
            let decided = [(0, 11), (unstable, -1), (0, 30)];
            assert_eq!(stable(&host), decided);

            // A restart with one transaction still open.
            let restarted = GroupHost::new(config.clone(), 0);
            restarted.load(&owned, &[partition]).await;
            assert_eq!(stable(&restarted), decided);
            log.append_txn_marker(marker(aborting, false))
                .await
                .unwrap();
            restarted.complete_txn(partition, aborting.producer_id, false);
            let decided = [(0, 11), (0, 5), (0, 30)];
            assert_eq!(stable(&restarted), decided);
            let again = GroupHost::new(config, 0);
            again.load(&owned, &[partition]).await;
            assert_eq!(stable(&again), decided);

            // A zombie: its epoch is older than the one the log has seen.
            let zombie = TxnProducer {
                producer_id: 4_000,
                producer_epoch: 2,
            };
            let effects = again
                .coordinator
                .borrow_mut()
                .txn_commit(0, txn_commit(zombie, 0, 99))
                .1;
            assert_eq!(
                again.apply_all(&owned, effects).await,
                Err(ResponseError::InvalidProducerEpoch)
            );
            assert_eq!(stable(&again), decided, "reloaded from what is durable");
        });
    }

    /// What a coordinator does when leadership of its partition leaves
    /// and comes back (`follow_leadership`): the groups are forgotten,
    /// then read back from what is durable; a partition with nothing to
    /// read is not loaded at all.
    #[test]
    fn a_partition_led_again_is_read_back_from_its_log() {
        crate::shard::block_on(|| async {
            let tmp = tempfile::tempdir().unwrap();
            let config = GroupConfig::default();
            let partitions = config.offsets_topic_num_partitions;
            let partition = offsets_partition(GROUP, partitions);
            let empty = (partition + 1) % partitions;
            let owned = OwnedPartitions::new(tmp.path().to_path_buf());
            let topic = offsets_topic(partitions);
            let broker = BrokerConfig::new(tmp.path().to_path_buf(), 1);
            owned
                .open(&broker, &topic, &[partition, empty])
                .await
                .unwrap();
            let host = GroupHost::new(config, 0);
            let (_, effects) = host.coordinator.borrow_mut().commit(0, plain_commit(0, 5));
            assert_eq!(host.apply_all(&owned, effects).await, Ok(()));
            let committed = [(0, 5), (0, -1), (0, -1)];
            assert_eq!(stable(&host), committed);

            host.unload(&[partition]);
            assert_eq!(stable(&host)[0], (0, -1), "forgotten while led elsewhere");
            let gained = with_records(&owned, OFFSETS_TOPIC, vec![partition, empty]);
            assert_eq!(gained, vec![partition], "the empty partition needs no load");
            host.mark_loading(&gained);
            assert_eq!(
                host.refuse_while_loading(&GroupCall::Describe(GROUP.into())),
                Some(ResponseError::CoordinatorLoadInProgress)
            );
            host.load(&owned, &gained).await;
            assert_eq!(stable(&host), committed);
            assert_eq!(
                host.refuse_while_loading(&GroupCall::Describe(GROUP.into())),
                None
            );
        });
    }

    /// A replicated partition's leader after a kill -9 (issue 15): its
    /// high watermark is the checkpointed one, below what its log holds,
    /// until the followers fetch again; the load reads the whole log, so
    /// the offsets committed before the kill are there at once.
    #[test]
    fn a_load_reads_past_a_high_watermark_not_yet_caught_up() {
        crate::shard::block_on(|| async {
            let tmp = tempfile::tempdir().unwrap();
            let config = GroupConfig::default();
            let partition = offsets_partition(GROUP, config.offsets_topic_num_partitions);
            let topic = offsets_topic(config.offsets_topic_num_partitions);
            let broker = BrokerConfig::new(tmp.path().to_path_buf(), 1);
            let owned = OwnedPartitions::new(tmp.path().to_path_buf());
            owned.open(&broker, &topic, &[partition]).await.unwrap();
            let host = GroupHost::new(config.clone(), 0);
            let (_, effects) = host.coordinator.borrow_mut().commit(0, plain_commit(0, 7));
            assert_eq!(host.apply_all(&owned, effects).await, Ok(()));

            // Opened again as after a kill -9, then led with replicas.
            let restarted = OwnedPartitions::new(tmp.path().to_path_buf());
            restarted.open(&broker, &topic, &[partition]).await.unwrap();
            let log = restarted
                .log(&TopicPartition::new(OFFSETS_TOPIC, partition))
                .unwrap();
            log.set_replicated(true);
            assert!(log.high_watermark() < log.log_end_offset());
            let gained = with_records(&restarted, OFFSETS_TOPIC, vec![partition]);
            assert_eq!(gained, vec![partition]);
            let loaded = GroupHost::new(config, 0);
            loaded.load(&restarted, &gained).await;
            assert_eq!(stable(&loaded)[0], (0, 7));
        });
    }

    #[test]
    fn groups_of_a_loading_partition_are_refused_until_it_is_loaded() {
        crate::shard::block_on(|| async {
            let host = GroupHost::new(GroupConfig::default(), 0);
            let partitions = GroupConfig::default().offsets_topic_num_partitions;
            let describe = |group: &str| GroupCall::Describe(group.to_string());
            let loading = offsets_partition("loading-group", partitions);
            let other = (0..1000)
                .map(|n| format!("other-{n}"))
                .find(|group| offsets_partition(group, partitions) != loading)
                .expect("a group in another partition");
            host.loading.borrow_mut().insert(loading);
            assert_eq!(
                host.refuse_while_loading(&describe("loading-group")),
                Some(ResponseError::CoordinatorLoadInProgress)
            );
            assert_eq!(host.refuse_while_loading(&describe(&other)), None);
            assert_eq!(
                host.refuse_while_loading(&GroupCall::List(Vec::new())),
                Some(ResponseError::CoordinatorLoadInProgress)
            );
            // Loading ends with the partition served again (no log here:
            // the partition is simply empty).
            let owned = OwnedPartitions::new(std::path::PathBuf::from("/nonexistent"));
            host.load(&owned, &[loading]).await;
            assert_eq!(host.refuse_while_loading(&describe("loading-group")), None);
        });
    }
}
