//! The replication roles of this shard's partitions, carried out: the
//! driver of the pure `replication` bookkeeping, as `groups.rs` drives
//! `group/`.
//!
//! After every view install and every open (`sync`), each open log is put
//! in the role the view gives this node:
//! - sole replica and leader: the log moves its high watermark with its
//!   own durable end, as before replication (no bookkeeping, no cost);
//! - leader of a partition with other replicas: a `LeaderState` (follower
//!   log ends, ISR, high watermark), fed by followers' fetches
//!   (`follower_fetched`), by this log's own durable end (a watcher task
//!   per led partition), by a timer (`REPLICA_TICK_MS`: ISR shrink) and by
//!   AlterPartition answers; its high watermark is set on the log, which
//!   wakes `acks=-1` produces and consumers' long polls;
//! - follower: fetched by this shard's fetcher for its leader broker
//!   (`fetcher.rs`), one per leader with one fetch session.
//!
//! A leader deposed by the view (another leader, or none) becomes a
//! follower at once, which fails its `acks=all` produces still waiting
//! (NOT_LEADER_OR_FOLLOWER), and its DeleteRecords still waiting for the
//! low watermark (`delete_records.rs`), which each follower's fetch and
//! each view install check again. Produce, Fetch and ListOffsets pass through
//! `refuse_then_run`, and skip it when the shard has no replicated
//! partition.
//!
//! Invariant: a partition is led here only while the installed view says
//! this node leads it; every `LeaderState` belongs to an open log of this
//! shard; one AlterPartition per partition is in flight at a time (the
//! state's rule); nothing here blocks the shard (each AlterPartition and
//! watcher is a task of its own, bounded by the partitions this shard
//! leads).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::{Rc, Weak};

use kafka_protocol::error::ResponseError;

use super::alter_partition::{alter_partition, AlterPartitionItem};
use super::delete_records::DeleteWaiters;
use super::fetcher;
use super::messages::{
    FetchOutcome, FetchPart, KafkaError, ListIsolation, ListedOffset, ProducePart, ProduceRefusal,
    ReplicaFetch, TopicPartition,
};
use super::owned;
use super::view::ShardView;
use super::Shard;
use crate::clock::now_ms;
use crate::log::{AppendResult, AppendWait, PartitionLog};
use crate::metadata::records::NO_LEADER;
use crate::metadata::{ClusterView, PartitionState, TopicMeta};
use crate::replication::{
    AcksAllStatus, AlterPartitionAnswer, AlterPartitionProposal, FollowedPartition, FollowerFetch,
    Followers, LeaderConfig, LeaderEffects, LeaderState, LocalEnds, MetadataOutcome, PartitionView,
    TopicPartitionId,
};

/// How often each led partition's ISR is checked for followers that fell
/// behind: Kafka checks every half `replica.lag.time.max.ms`; this is
/// finer so that a small lag setting (tests) is honoured within it.
const REPLICA_TICK_MS: u64 = 250;

/// How long a leader waits before it sends again an AlterPartition the
/// controller refused with a retriable error (NOT_CONTROLLER,
/// STALE_BROKER_EPOCH while this broker's new registration is not in the
/// view yet, ...), as Kafka's leader resends on a later round, not at
/// once. Without the wait, a refusal given at once (this node's own
/// controller, on the partition's own shard, answers without a single
/// await) made the resend recurse on the shard's stack: glommio polls a
/// new task on the spawner's stack, so each round nested in the last until
/// the shard thread overflowed its stack (rolling restarts in CI).
const ALTER_PARTITION_RETRY_BACKOFF_MS: u64 = 100;

/// Produce's `acks` for "all in-sync replicas".
const ALL_ACKS: i16 = -1;

/// AlterPartition's leader recovery state for a partition that is not
/// recovering from an unclean election.
const RECOVERED: i8 = 0;

/// One partition this shard leads with other replicas.
struct Led {
    state: LeaderState,
    log: Rc<PartitionLog>,
    topic_id: uuid::Uuid,
    /// Bumped each time the entry is made anew, so that a watcher or an
    /// AlterPartition answer of an older leadership changes nothing.
    generation: u64,
    /// DeleteRecords waiting for the low watermark (`delete_records.rs`);
    /// dropped with the leadership, which answers them NOT_LEADER_OR_FOLLOWER.
    deletes: DeleteWaiters,
}

/// Where a DeleteRecords stands once the leader's log start has moved.
pub enum LowWatermarkWait {
    /// No other replica counts: the leader's log start is the answer.
    Unreplicated,
    /// The low watermark already reached the offset asked for.
    Reached(i64),
    /// Sent the low watermark once it reaches the offset.
    Waiting(futures_channel::oneshot::Receiver<i64>),
    /// `DELETE_RECORDS_WAITING_MAX` wait already on the partition.
    Full,
}

/// This shard's replication roles (see the module doc).
#[derive(Default)]
pub struct Replication {
    led: RefCell<HashMap<TopicPartition, Led>>,
    /// Replicated partitions the view names this node leader of, held back
    /// until the view holds this incarnation's registration: a restarted
    /// node's image is its log from before it stopped, which may still name
    /// it leader of partitions led elsewhere since (Kafka's broker does not
    /// serve before it has caught up with the metadata log either).
    held: RefCell<HashSet<TopicPartition>>,
    /// The broker epoch the view had for this node when the shard started
    /// (-1: none): a view with a larger one holds this incarnation's.
    start_epoch: Cell<Option<i64>>,
    pub(super) followers: RefCell<Followers>,
    /// Leader broker ids with a running fetcher task.
    pub(super) fetchers: RefCell<HashMap<i32, fetcher::Handle>>,
    generations: Cell<u64>,
    /// Open logs of partitions with other replicas, as the last `sync`
    /// counted them: none, and produce, fetch and ListOffsets skip every
    /// check here (RF=1 costs nothing).
    replicated: Cell<usize>,
}

/// The log's ends now, as the bookkeeping reads them.
/// Counts a committed ISR change of a partition led here, from `before`
/// members to `after` (Kafka's IsrShrinksPerSec and IsrExpandsPerSec).
fn count_isr_change(before: usize, after: usize) {
    if after != before {
        crate::metrics::isr_changed(after < before);
    }
}

fn local_ends(log: &PartitionLog) -> LocalEnds {
    LocalEnds {
        log_end_offset: log.log_end_offset(),
        durable_end_offset: log.durable_end(),
    }
}

fn partition_view(state: &PartitionState) -> PartitionView {
    PartitionView {
        replicas: state.replicas.clone(),
        isr: state.isr.clone(),
        leader: state.leader,
        leader_epoch: state.leader_epoch,
        partition_epoch: state.partition_epoch,
    }
}

impl Replication {
    /// Puts every open log of `shard` in the role the installed view gives
    /// it, and starts or stops fetchers to match.
    pub fn sync(shard: &Rc<Shard>) {
        let view = shard.view();
        let replication = &shard.replication;
        let start_epoch = *replication
            .start_epoch
            .get()
            .get_or_insert(own_broker_epoch(&view));
        replication.start_epoch.set(Some(start_epoch));
        let registered = own_broker_epoch(&view) > start_epoch;
        replication.held.borrow_mut().clear();
        let mut followed = Vec::new();
        let mut replicated_count = 0;
        for (partition, log) in shard.partitions.open_logs() {
            let Some(meta) = view.topic(&partition.topic) else {
                continue;
            };
            let state = view.state(meta, partition.partition).into_owned();
            let node_id = view.node_id;
            // A replica reassigned away neither leads nor
            // follows; the controller's install deletes its log next.
            if !state.replicas.is_empty() && !state.replicas.contains(&node_id) {
                Self::end_leadership(shard, &partition);
                continue;
            }
            let replicated = state.replicas.len() > 1;
            if state.leader == node_id {
                log.become_leader(state.leader_epoch);
            } else if state.leader != NO_LEADER {
                log.become_follower(state.leader_epoch);
            } else if replicated && state.leader_epoch >= log.leader_epoch() {
                // A replica left without a leader leads no more either: its
                // `acks=all` waits fail now, not at their timeout.
                log.become_follower(state.leader_epoch);
            }
            log.set_replicated(replicated);
            replicated_count += usize::from(replicated);
            if replicated && state.leader == node_id && !registered {
                Self::end_leadership(shard, &partition);
                replication.held.borrow_mut().insert(partition);
                continue;
            }
            if replicated && state.leader == node_id {
                Self::lead(shard, &view, meta, &partition, log, &state);
                continue;
            }
            Self::end_leadership(shard, &partition);
            if replicated && state.leader != NO_LEADER && state.leader != node_id {
                followed.push(FollowedPartition {
                    id: TopicPartitionId {
                        topic_id: meta.id,
                        partition: partition.partition,
                    },
                    leader_id: state.leader,
                    leader_epoch: state.leader_epoch,
                });
            }
        }
        replication.replicated.set(replicated_count);
        let changes = shard
            .replication
            .followers
            .borrow_mut()
            .apply_metadata(&followed);
        if !changes.is_empty() {
            fetcher::start_missing(shard);
        }
    }

    /// Starts (or updates) the bookkeeping of `partition`, led here.
    fn lead(
        shard: &Rc<Shard>,
        view: &ShardView,
        meta: &TopicMeta,
        partition: &TopicPartition,
        log: Rc<PartitionLog>,
        state: &PartitionState,
    ) {
        let replication = &shard.replication;
        let now = now_ms() as i64;
        let local = local_ends(&log);
        let partition_view = partition_view(state);
        let effects = {
            let mut led = replication.led.borrow_mut();
            match led.get_mut(partition) {
                Some(entry) => match entry.state.on_metadata(&partition_view, local, now) {
                    MetadataOutcome::Leading(effects) => Some((effects, entry.generation)),
                    MetadataOutcome::Ended => None,
                },
                None => None,
            }
        };
        if let Some((effects, generation)) = effects {
            Self::apply(shard, partition, generation, effects);
            // The view may have fenced or unfenced a follower's broker.
            Self::answer_deletes(shard, partition);
            return;
        }
        let config = LeaderConfig {
            local_broker_id: view.node_id,
            local_broker_epoch: own_broker_epoch(view),
            min_insync_replicas: view
                .topic_config(&meta.name)
                .map_or(shard.config.replication.min_insync_replicas, |config| {
                    config.min_insync_replicas
                }),
            replica_lag_time_max_ms: shard.config.replication.replica_lag_time_max_ms,
        };
        let Some(leader) =
            LeaderState::new(config, &partition_view, local, log.high_watermark(), now)
        else {
            return;
        };
        let generation = replication.generations.get() + 1;
        replication.generations.set(generation);
        replication.led.borrow_mut().insert(
            partition.clone(),
            Led {
                state: leader,
                log: log.clone(),
                topic_id: meta.id,
                generation,
                deletes: DeleteWaiters::default(),
            },
        );
        Self::watch_durable_end(shard, partition.clone(), log, generation);
    }

    fn end_leadership(shard: &Rc<Shard>, partition: &TopicPartition) {
        shard.replication.led.borrow_mut().remove(partition);
    }

    /// A task that feeds the leader's own durable end to its bookkeeping
    /// each time it moves, until the leadership of `generation` ends.
    fn watch_durable_end(
        shard: &Rc<Shard>,
        partition: TopicPartition,
        log: Rc<PartitionLog>,
        generation: u64,
    ) {
        let weak = Rc::downgrade(shard);
        glommio::spawn_local(async move {
            loop {
                log.wait_for_durable_end_past(log.durable_end()).await;
                let Some(shard) = weak.upgrade() else {
                    return;
                };
                let effects = {
                    let mut led = shard.replication.led.borrow_mut();
                    match led.get_mut(&partition) {
                        Some(entry) if entry.generation == generation => entry
                            .state
                            .on_local_ends(local_ends(&entry.log), now_ms() as i64),
                        _ => return,
                    }
                };
                Self::apply(&shard, &partition, generation, effects);
                if !log.is_open() {
                    return;
                }
            }
        })
        .detach();
    }

    /// Carries out `effects` of the leadership `generation` of `partition`.
    fn apply(
        shard: &Rc<Shard>,
        partition: &TopicPartition,
        generation: u64,
        effects: LeaderEffects,
    ) {
        // No borrow of `led` may outlive this block: `send_alter_partition`
        // spawns a task glommio may poll at once, and that task borrows
        // `led` mutably when its answer is already there.
        let (log, topic_id) = {
            let led = shard.replication.led.borrow();
            let Some(entry) = led.get(partition).filter(|e| e.generation == generation) else {
                return;
            };
            (entry.log.clone(), entry.topic_id)
        };
        if let Some(high_watermark) = effects.high_watermark_offset {
            log.advance_high_watermark(high_watermark);
        }
        if let Some(proposal) = effects.alter_partition {
            let item = AlterPartitionItem {
                topic_id,
                partition: partition.partition,
                leader_epoch: proposal.leader_epoch,
                partition_epoch: proposal.partition_epoch,
                new_isr: proposal
                    .new_isr
                    .iter()
                    .map(|member| (member.broker_id, member.broker_epoch))
                    .collect(),
                leader_recovery_state: RECOVERED,
            };
            Self::send_alter_partition(shard, partition.clone(), generation, proposal, item);
        }
    }

    fn send_alter_partition(
        shard: &Rc<Shard>,
        partition: TopicPartition,
        generation: u64,
        proposal: AlterPartitionProposal,
        item: AlterPartitionItem,
    ) {
        let weak: Weak<Shard> = Rc::downgrade(shard);
        glommio::spawn_local(async move {
            let Some(shard) = weak.upgrade() else {
                return;
            };
            let answer = match alter_partition(&shard, item).await {
                Ok(committed) => AlterPartitionAnswer::Committed {
                    leader_epoch: committed.leader_epoch,
                    partition_epoch: committed.partition_epoch,
                    isr: committed.isr,
                },
                Err(error) => AlterPartitionAnswer::Error(
                    ResponseError::try_from_code(error.code)
                        .unwrap_or(ResponseError::UnknownServerError),
                ),
            };
            let mut effects = {
                let mut led = shard.replication.led.borrow_mut();
                match led.get_mut(&partition) {
                    Some(entry) if entry.generation == generation => {
                        if let AlterPartitionAnswer::Committed { isr, .. } = &answer {
                            count_isr_change(entry.state.committed_isr().len(), isr.len());
                        }
                        let local = local_ends(&entry.log);
                        entry
                            .state
                            .on_alter_partition(&proposal, &answer, local, now_ms() as i64)
                    }
                    _ => return,
                }
            };
            if let Some(resend) = effects.alter_partition.take() {
                // The high watermark now; the resend after the backoff,
                // and only while it is still the change in flight.
                Self::apply(&shard, &partition, generation, effects);
                drop(shard);
                glommio::timer::sleep(std::time::Duration::from_millis(
                    ALTER_PARTITION_RETRY_BACKOFF_MS,
                ))
                .await;
                let Some(shard) = weak.upgrade() else {
                    return;
                };
                let still_in_flight = shard
                    .replication
                    .led
                    .borrow()
                    .get(&partition)
                    .filter(|entry| entry.generation == generation)
                    .is_some_and(|entry| entry.state.in_flight() == Some(&resend));
                if still_in_flight {
                    let resent = LeaderEffects {
                        alter_partition: Some(resend),
                        ..LeaderEffects::default()
                    };
                    Self::apply(&shard, &partition, generation, resent);
                }
                return;
            }
            Self::apply(&shard, &partition, generation, effects);
        })
        .detach();
    }

    /// A follower's fetch of `partition` at `fetch_offset`, on its owner
    /// shard, before the read: its progress counted, or the error it gets.
    /// A partition led here without other replicas, or not led here, has
    /// no bookkeeping: the read's own checks answer.
    pub fn follower_fetched(
        shard: &Rc<Shard>,
        partition: &TopicPartition,
        replica: ReplicaFetch,
        fetch_offset: i64,
    ) -> Result<(), ResponseError> {
        let view = shard.view();
        let registered_broker_epoch = view
            .registered
            .iter()
            .find(|broker| broker.id == replica.replica_id && !broker.fenced)
            .map(|broker| broker.epoch);
        let (effects, generation) = {
            let mut led = shard.replication.led.borrow_mut();
            let Some(entry) = led.get_mut(partition) else {
                return Ok(());
            };
            let fetch = FollowerFetch {
                replica_id: replica.replica_id,
                broker_epoch: replica.broker_epoch,
                registered_broker_epoch,
                fetch_offset,
                log_start_offset: replica.log_start_offset,
            };
            let local = local_ends(&entry.log);
            let effects = entry
                .state
                .on_follower_fetch(&fetch, local, now_ms() as i64)
                .map_err(|refused| refused.error())?;
            (effects, entry.generation)
        };
        Self::apply(shard, partition, generation, effects);
        Self::answer_deletes(shard, partition);
        Ok(())
    }

    /// DeleteRecords on `partition` once the leader's log start moved:
    /// the low watermark if it has reached `required`, else a waiter for
    /// it (`delete_records.rs`).
    pub fn wait_for_low_watermark(
        &self,
        view: &ShardView,
        partition: &TopicPartition,
        required: i64,
    ) -> LowWatermarkWait {
        let mut led = self.led.borrow_mut();
        let Some(entry) = led.get_mut(partition) else {
            return LowWatermarkWait::Unreplicated;
        };
        let low_watermark = entry
            .state
            .low_watermark(entry.log.log_start_offset(), |id| broker_alive(view, id));
        if low_watermark >= required {
            return LowWatermarkWait::Reached(low_watermark);
        }
        match entry.deletes.add(required) {
            Some(receiver) => LowWatermarkWait::Waiting(receiver),
            None => LowWatermarkWait::Full,
        }
    }

    /// Answers the DeleteRecords of `partition` its low watermark now
    /// satisfies (after a follower's Fetch, or a new view).
    fn answer_deletes(shard: &Rc<Shard>, partition: &TopicPartition) {
        let view = shard.view();
        let (low_watermark, reached) = {
            let mut led = shard.replication.led.borrow_mut();
            let Some(entry) = led.get_mut(partition).filter(|e| !e.deletes.is_empty()) else {
                return;
            };
            let low_watermark = entry
                .state
                .low_watermark(entry.log.log_start_offset(), |id| broker_alive(&view, id));
            (low_watermark, entry.deletes.take_reached(low_watermark))
        };
        for sender in reached {
            // A request that ended meanwhile no longer listens.
            let _ = sender.send(low_watermark);
        }
    }

    /// Whether `view` holds the registration of this incarnation of the
    /// broker (one made since the shard started): this node has caught up
    /// with the metadata log since it started.
    pub fn holds_own_registration(&self, view: &ClusterView) -> bool {
        self.start_epoch
            .get()
            .is_some_and(|start| own_broker_epoch(view) > start)
    }

    /// Partitions led here whose committed ISR is short of
    /// `min.insync.replicas` (Kafka's UnderMinIsrPartitionCount).
    pub fn under_min_isr(&self) -> usize {
        self.led
            .borrow()
            .values()
            .filter(|entry| entry.state.is_under_min_isr())
            .count()
    }

    /// Whether any open log of this shard has other replicas.
    pub fn any_replicated(&self) -> bool {
        self.replicated.get() > 0
    }

    /// NOT_LEADER_OR_FOLLOWER for a partition the view names this node
    /// leader of before this incarnation is registered (`held`).
    pub fn refuse_held(&self, partition: &TopicPartition) -> Result<(), ResponseError> {
        match self.held.borrow().contains(partition) {
            true => Err(ResponseError::NotLeaderOrFollower),
            false => Ok(()),
        }
    }

    /// KIP-207: OFFSET_NOT_AVAILABLE for ListOffsets latest while a new
    /// leader's high watermark is below the start of its epoch, where the
    /// previous leader's may have been: answering it would show clients a
    /// high watermark going backward.
    pub fn refuse_unsettled(&self, partition: &TopicPartition) -> Result<(), ResponseError> {
        self.refuse_held(partition)?;
        match self.led.borrow().get(partition) {
            Some(entry) if entry.log.high_watermark() < entry.state.leader_epoch_start_offset() => {
                Err(ResponseError::OffsetNotAvailable)
            }
            _ => Ok(()),
        }
    }

    /// NOT_ENOUGH_REPLICAS for an `acks=-1` produce to a partition whose
    /// ISR is below `min.insync.replicas`, checked before the append.
    pub fn check_append(&self, partition: &TopicPartition, acks: i16) -> Result<(), ResponseError> {
        match self.led.borrow().get(partition) {
            Some(entry) => entry.state.check_append(acks),
            None => Ok(()),
        }
    }

    /// After an `acks=-1` append up to `end_offset` is covered by the high
    /// watermark: NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR shrank
    /// below `min.insync.replicas` meanwhile.
    pub fn after_append(
        &self,
        partition: &TopicPartition,
        end_offset: i64,
    ) -> Result<(), ResponseError> {
        match self
            .led
            .borrow()
            .get(partition)
            .map(|e| e.state.acks_all_status(end_offset))
        {
            Some(AcksAllStatus::NotEnoughReplicasAfterAppend) => {
                Err(ResponseError::NotEnoughReplicasAfterAppend)
            }
            _ => Ok(()),
        }
    }

    /// The timer: each led partition's ISR checked for followers that fell
    /// behind, every `REPLICA_TICK_MS`, for as long as the shard runs.
    pub fn start_ticks(shard: &Rc<Shard>) {
        let weak = Rc::downgrade(shard);
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(std::time::Duration::from_millis(REPLICA_TICK_MS)).await;
                let Some(shard) = weak.upgrade() else {
                    return;
                };
                let now = now_ms() as i64;
                let effects: Vec<_> = shard
                    .replication
                    .led
                    .borrow_mut()
                    .iter_mut()
                    .map(|(partition, entry)| {
                        let local = local_ends(&entry.log);
                        (
                            partition.clone(),
                            entry.generation,
                            entry.state.on_tick(local, now),
                        )
                    })
                    .collect();
                for (partition, generation, effects) in effects {
                    Self::apply(&shard, &partition, generation, effects);
                }
            }
        })
        .detach();
    }
}

/// Produce on the owner shard: an `acks=-1` part of a led partition whose
/// ISR is below `min.insync.replicas` is refused before the append
/// (NOT_ENOUGH_REPLICAS), and one whose ISR shrank below it by the time
/// the high watermark covered it is answered
/// NOT_ENOUGH_REPLICAS_AFTER_APPEND, as Kafka answers.
pub async fn produce(
    shard: &Rc<Shard>,
    parts: Vec<ProducePart>,
) -> Vec<Result<AppendResult, ProduceRefusal>> {
    let replication = &shard.replication;
    if !replication.any_replicated() {
        return shard.partitions.produce(parts).await;
    }
    let refuse = |part: &ProducePart| {
        let acks_all = part.wait == AppendWait::Durable;
        replication
            .refuse_held(&part.partition)
            .and_then(|()| match acks_all {
                true => replication.check_append(&part.partition, ALL_ACKS),
                false => Ok(()),
            })
            .err()
    };
    let run = |accepted: Vec<ProducePart>| async move {
        let acks_all: Vec<Option<TopicPartition>> = accepted
            .iter()
            .map(|part| (part.wait == AppendWait::Durable).then(|| part.partition.clone()))
            .collect();
        let appended = shard.partitions.produce(accepted).await;
        appended
            .into_iter()
            .zip(acks_all)
            .map(|(result, acks_all)| match (result, acks_all) {
                (Ok(done), Some(partition)) => replication
                    .after_append(&partition, done.last_offset + 1)
                    .map(|()| done)
                    .map_err(|error| ProduceRefusal::Error(KafkaError::new(error))),
                (other, _) => other,
            })
            .collect()
    };
    refuse_then_run(parts, refuse, run, |error| {
        Err(ProduceRefusal::Error(KafkaError::new(error)))
    })
    .await
}

/// Fetch on the owner shard: each follower's fetch counted by the leader's
/// bookkeeping first (or refused: a broker that is no replica, a stale
/// broker epoch), then every part read.
pub async fn fetch(shard: &Rc<Shard>, parts: Vec<FetchPart>) -> Vec<FetchOutcome> {
    if !shard.replication.any_replicated() {
        return shard.partitions.fetch(parts).await;
    }
    let refuse = |part: &FetchPart| match part.replica {
        // A follower whose log diverges from this one is answered where
        // (the read's `diverging_epoch`), its offset not counted: it
        // truncates first (Kafka's order).
        Some(replica) if !diverges(shard, part, replica) => {
            Replication::follower_fetched(shard, &part.partition, replica, part.offset).err()
        }
        Some(_) => None,
        None => shard.replication.refuse_held(&part.partition).err(),
    };
    let refused = |error: ResponseError| FetchOutcome {
        error_code: error.code(),
        high_watermark: -1,
        last_stable_offset: -1,
        log_start_offset: -1,
        ..FetchOutcome::default()
    };
    refuse_then_run(
        parts,
        refuse,
        |reads| shard.partitions.fetch(reads),
        refused,
    )
    .await
}

fn diverges(shard: &Shard, part: &FetchPart, replica: ReplicaFetch) -> bool {
    shard.partitions.log(&part.partition).is_some_and(|log| {
        owned::diverging_epoch(&log, part.offset, replica.last_fetched_epoch).is_some()
    })
}

/// ListOffsets on the owner shard: refused for a partition held back, and
/// a consumer's for one whose new leader's high watermark has not reached
/// its epoch's start (a replica reads the log end: Kafka's rule).
pub async fn list_offsets(
    shard: &Rc<Shard>,
    parts: Vec<(TopicPartition, (i64, ListIsolation))>,
) -> Vec<Result<ListedOffset, KafkaError>> {
    let replication = &shard.replication;
    let refuse =
        |(partition, (_, isolation)): &(TopicPartition, (i64, ListIsolation))| match isolation {
            ListIsolation::LogEnd => replication.refuse_held(partition).err(),
            _ => replication.refuse_unsettled(partition).err(),
        };
    let run = |asked| shard.partitions.list_offsets(asked);
    refuse_then_run(parts, refuse, run, |error| Err(KafkaError::new(error))).await
}

/// What the wrappers share (and DeleteRecords'): the parts `refuse` finds
/// an error for are answered with `refused(error)`, the others go to `run`
/// together, and the answers come back in the order of `parts`. With
/// nothing refused, `parts` go to `run` as they are.
pub(super) async fn refuse_then_run<P, A, F>(
    parts: Vec<P>,
    refuse: impl Fn(&P) -> Option<ResponseError>,
    run: impl FnOnce(Vec<P>) -> F,
    refused: impl Fn(ResponseError) -> A,
) -> Vec<A>
where
    F: std::future::Future<Output = Vec<A>>,
{
    let refusals: Vec<Option<ResponseError>> = parts.iter().map(refuse).collect();
    if refusals.iter().all(Option::is_none) {
        return run(parts).await;
    }
    let admitted = parts
        .into_iter()
        .zip(&refusals)
        .filter(|(_, refusal)| refusal.is_none())
        .map(|(part, _)| part)
        .collect();
    let mut answers = run(admitted).await.into_iter();
    refusals
        .into_iter()
        .map(|refusal| match refusal {
            Some(error) => refused(error),
            None => answers
                .next()
                .unwrap_or_else(|| refused(ResponseError::UnknownServerError)),
        })
        .collect()
}

/// Kafka's `metadataCache.hasAliveBroker`: registered and unfenced.
fn broker_alive(view: &ShardView, broker_id: i32) -> bool {
    view.registered
        .iter()
        .any(|broker| broker.id == broker_id && !broker.fenced)
}

/// This node's broker epoch as the view has it registered, -1 before it is.
pub fn own_broker_epoch(view: &ClusterView) -> i64 {
    view.registered
        .iter()
        .find(|broker| broker.id == view.node_id)
        .map_or(-1, |broker| broker.epoch)
}
