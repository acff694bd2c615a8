//! `LeaderState`: the bookkeeping of one partition this broker leads, as
//! Kafka's `Partition` and `Replica` keep it on the leader.
//!
//! Per follower: its log end (the fetch offset of its last Fetch; a follower
//! fetches only from its durable end, so that is what it has made durable),
//! its log start (as its last Fetch said it), the broker epoch it fetched
//! with, its last fetch time and its last caught-up time (the largest time
//! at which its fetch offset had reached the leader's log end;
//! `replica.lag.time.max.ms` is measured from it).
//!
//! Invariants, asserted after every operation and property-tested over
//! random event sequences (`leader_props.rs`):
//! - the committed ISR contains the leader, lies within the replicas and is
//!   never empty; a shrink never proposes to remove the leader;
//! - at most one AlterPartition is in flight; nothing else is proposed until
//!   it is answered or the metadata moves the partition epoch past it; an
//!   answer for another proposal, or with an older partition epoch, changes
//!   nothing;
//! - the high watermark never moves backward; when it moves, it is the
//!   minimum of the leader's durable end and the log ends of the *maximal*
//!   ISR (the committed ISR plus a pending expansion's new member, Kafka's
//!   `PendingExpandIsr`), and of followers caught up and eligible to join
//!   (Kafka's `shouldWaitForReplicaToJoinIsr`, which keeps a catching-up
//!   follower from being outrun for ever); a member whose log end is not
//!   known yet holds it where it is; it does not move while the committed
//!   ISR is smaller than `min.insync.replicas` (KIP-966);
//! - an expansion adds only a replica whose log end is at least the high
//!   watermark and the start offset of the leader's epoch (Kafka's
//!   `isFollowerInSync`) and whose fetch carried the broker epoch it is
//!   registered with.

use super::PartitionView;
use kafka_protocol::error::ResponseError;
use std::collections::{BTreeMap, BTreeSet};

/// Kafka's `UnifiedLog.UnknownOffset`: a follower's log start before its
/// first Fetch.
const UNKNOWN_OFFSET: i64 = -1;

/// The settings of one led partition (Kafka's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderConfig {
    pub local_broker_id: i32,
    /// This broker's epoch, sent for itself in AlterPartition's ISR.
    pub local_broker_epoch: i64,
    /// The topic's `min.insync.replicas` (or the broker's default).
    pub min_insync_replicas: i32,
    /// `replica.lag.time.max.ms`.
    pub replica_lag_time_max_ms: i64,
}

/// The leader's own log at the moment of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalEnds {
    /// The next offset the leader would assign.
    pub log_end_offset: i64,
    /// The end of what the leader has made durable (written, or fsynced,
    /// as the flush policy says); it counts itself only up to here.
    pub durable_end_offset: i64,
}

/// A follower's Fetch, as the leader's fetch path sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerFetch {
    pub replica_id: i32,
    /// The broker epoch in the Fetch's ReplicaState (-1 before v15).
    pub broker_epoch: i64,
    /// The epoch the metadata image holds for `replica_id` while it is
    /// registered, unfenced and not shutting down; None otherwise.
    pub registered_broker_epoch: Option<i64>,
    pub fetch_offset: i64,
    /// The follower's log start offset (-1: unknown).
    pub log_start_offset: i64,
}

/// One ISR member as AlterPartition sends it (KIP-903: with its broker
/// epoch, -1 when the leader has not seen one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IsrMember {
    pub broker_id: i32,
    pub broker_epoch: i64,
}

/// An AlterPartition to send to the controller for this partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartitionProposal {
    pub leader_id: i32,
    pub leader_epoch: i32,
    /// The partition epoch the proposal is based on.
    pub partition_epoch: i32,
    pub new_isr: Vec<IsrMember>,
}

/// The controller's answer to an `AlterPartitionProposal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterPartitionAnswer {
    /// The partition as the controller left it.
    Committed {
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    },
    /// The partition's (or the request's) error.
    Error(ResponseError),
}

/// What the shard does after an operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEffects {
    /// The high watermark moved here: set it on the log, complete the
    /// `acks=-1` produces it covers, wake fetches waiting for it.
    pub high_watermark_offset: Option<i64>,
    /// Send this AlterPartition (one at a time: none comes while one is
    /// in flight, except the same one again after a retriable error).
    pub alter_partition: Option<AlterPartitionProposal>,
}

/// A follower's Fetch the leader refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchRefused {
    /// The fetch's broker epoch is older than the registered one: a
    /// request from before the follower restarted.
    StaleBrokerEpoch,
    /// The fetching broker is not a replica of the partition (the
    /// metadata may not have reached this leader yet).
    NotAReplica,
    /// The fetch offset is past the leader's log end (the follower holds
    /// records this leader does not: it must truncate first).
    OffsetOutOfRange,
}

impl FetchRefused {
    /// The partition error to answer with: Kafka's for each case.
    pub fn error(self) -> ResponseError {
        match self {
            FetchRefused::StaleBrokerEpoch => ResponseError::NotLeaderOrFollower,
            FetchRefused::NotAReplica => ResponseError::UnknownLeaderEpoch,
            FetchRefused::OffsetOutOfRange => ResponseError::OffsetOutOfRange,
        }
    }
}

/// Where an `acks=-1` produce stands, by the offset after its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcksAllStatus {
    /// The high watermark is below the batch's end: keep waiting.
    Waiting,
    /// Covered by the high watermark with enough replicas: answer NONE.
    Done,
    /// Covered, but the ISR shrank below `min.insync.replicas` after the
    /// append: answer NOT_ENOUGH_REPLICAS_AFTER_APPEND.
    NotEnoughReplicasAfterAppend,
}

/// What a new metadata state means for the led partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataOutcome {
    /// Still the leader.
    Leading(LeaderEffects),
    /// This broker no longer leads: drop the state, fail what waits on it
    /// with NOT_LEADER_OR_FOLLOWER.
    Ended,
}

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FollowerState {
    /// None until it fetches from this leader.
    log_end_offset: Option<i64>,
    /// Kafka's `UnknownOffset` (-1) until it fetches from this leader: it
    /// holds the low watermark down while its broker is alive.
    log_start_offset: i64,
    broker_epoch: Option<i64>,
    /// Its last fetch carried the epoch it is registered with (or -1),
    /// and it is unfenced and not shutting down.
    isr_eligible: bool,
    last_fetch_ms: i64,
    /// The leader's log end at its last fetch (never lowered).
    last_fetch_leader_log_end_offset: i64,
    last_caught_up_ms: i64,
}

impl FollowerState {
    fn new(in_sync: bool, now_ms: i64) -> FollowerState {
        FollowerState {
            log_end_offset: None,
            log_start_offset: UNKNOWN_OFFSET,
            broker_epoch: None,
            isr_eligible: false,
            last_fetch_ms: 0,
            last_fetch_leader_log_end_offset: 0,
            last_caught_up_ms: if in_sync { now_ms } else { 0 },
        }
    }

    /// Kafka's `isCaughtUp`: at the leader's end, or caught up recently.
    fn is_caught_up(&self, leader_log_end_offset: i64, now_ms: i64, lag_max_ms: i64) -> bool {
        self.log_end_offset == Some(leader_log_end_offset)
            || now_ms.saturating_sub(self.last_caught_up_ms) <= lag_max_ms
    }

    /// Kafka's `updateFetchStateOrThrow`: a fetch at `fetch_offset` proves
    /// the follower caught up at this fetch if it reached the leader's end,
    /// or at its previous fetch if it reached the end the leader had then.
    fn record_fetch(&mut self, fetch: &FollowerFetch, leader_log_end_offset: i64, now_ms: i64) {
        let caught_up_at = if fetch.fetch_offset >= leader_log_end_offset {
            Some(now_ms)
        } else if fetch.fetch_offset >= self.last_fetch_leader_log_end_offset {
            Some(self.last_fetch_ms)
        } else {
            None
        };
        if let Some(at) = caught_up_at {
            self.last_caught_up_ms = self.last_caught_up_ms.max(at);
        }
        self.log_end_offset = Some(fetch.fetch_offset);
        self.log_start_offset = fetch.log_start_offset;
        self.broker_epoch = Some(fetch.broker_epoch);
        self.isr_eligible = fetch
            .registered_broker_epoch
            .is_some_and(|registered| fetch.broker_epoch == -1 || fetch.broker_epoch == registered);
        self.last_fetch_ms = now_ms;
        self.last_fetch_leader_log_end_offset = self
            .last_fetch_leader_log_end_offset
            .max(leader_log_end_offset);
    }

    /// Kafka's `resetReplicaState` when this broker starts a new leader
    /// epoch while already leading: the log end is kept, the clocks restart.
    fn reset_for_new_epoch(&mut self, in_sync: bool, leader_log_end_offset: i64, now_ms: i64) {
        let at = if in_sync { now_ms } else { 0 };
        self.last_caught_up_ms = at;
        self.last_fetch_ms = at;
        self.last_fetch_leader_log_end_offset = leader_log_end_offset;
    }
}

/// The one ISR change in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PendingChange {
    /// Kafka's `PendingExpandIsr`: the new member counts for the high
    /// watermark already (stricter, so safe if the change fails).
    Expand {
        new_member: i32,
        sent: AlterPartitionProposal,
    },
    /// Kafka's `PendingShrinkIsr`: the removed members still count until
    /// the controller commits (else a failed shrink could have advanced
    /// the high watermark past them).
    Shrink { sent: AlterPartitionProposal },
}

impl PendingChange {
    fn sent(&self) -> &AlterPartitionProposal {
        match self {
            PendingChange::Expand { sent, .. } | PendingChange::Shrink { sent } => sent,
        }
    }
}

/// One led partition's replica bookkeeping (see the module doc).
#[derive(Debug, Clone)]
pub struct LeaderState {
    config: LeaderConfig,
    replicas: Vec<i32>,
    committed_isr: BTreeSet<i32>,
    leader_epoch: i32,
    partition_epoch: i32,
    /// The leader's log end when its epoch began (Kafka's
    /// `leaderEpochStartOffsetOpt`): the shard records it in the epoch
    /// checkpoint; a follower below it cannot join the ISR.
    leader_epoch_start_offset: i64,
    high_watermark_offset: i64,
    followers: BTreeMap<i32, FollowerState>,
    pending: Option<PendingChange>,
}

impl LeaderState {
    /// The state of a partition this broker now leads. `high_watermark_offset`
    /// is the log's (its checkpoint); the epoch starts at `local.log_end_offset`.
    /// None when `view` does not make `config.local_broker_id` the leader,
    /// or its ISR does not hold the leader or lies outside its replicas.
    pub fn new(
        config: LeaderConfig,
        view: &PartitionView,
        local: LocalEnds,
        high_watermark_offset: i64,
        now_ms: i64,
    ) -> Option<LeaderState> {
        if !view_is_led_by(view, config.local_broker_id) {
            return None;
        }
        let mut state = LeaderState {
            config,
            replicas: Vec::new(),
            committed_isr: BTreeSet::new(),
            leader_epoch: view.leader_epoch,
            partition_epoch: view.partition_epoch,
            leader_epoch_start_offset: local.log_end_offset,
            high_watermark_offset,
            followers: BTreeMap::new(),
            pending: None,
        };
        state.set_assignment(view, now_ms);
        state.check_invariants();
        Some(state)
    }

    pub fn high_watermark_offset(&self) -> i64 {
        self.high_watermark_offset
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    /// Where this leader's epoch began in its log.
    pub fn leader_epoch_start_offset(&self) -> i64 {
        self.leader_epoch_start_offset
    }

    /// The ISR the controller committed, sorted.
    pub fn committed_isr(&self) -> Vec<i32> {
        self.committed_isr.iter().copied().collect()
    }

    /// The committed ISR plus a pending expansion's new member: the
    /// replicas the high watermark and `acks=-1` wait for.
    pub fn maximal_isr(&self) -> BTreeSet<i32> {
        let mut isr = self.committed_isr.clone();
        if let Some(PendingChange::Expand { new_member, .. }) = &self.pending {
            isr.insert(*new_member);
        }
        isr
    }

    /// The AlterPartition in flight, if any.
    pub fn in_flight(&self) -> Option<&AlterPartitionProposal> {
        self.pending.as_ref().map(PendingChange::sent)
    }

    /// A follower's last known log end (None before its first fetch).
    pub fn follower_log_end_offset(&self, replica_id: i32) -> Option<i64> {
        self.followers.get(&replica_id)?.log_end_offset
    }

    /// Kafka's `effectiveMinIsr`: `min.insync.replicas`, at most the
    /// replication factor.
    pub fn effective_min_isr(&self) -> usize {
        let configured = usize::try_from(self.config.min_insync_replicas).unwrap_or(0);
        configured.min(self.replicas.len())
    }

    /// Kafka's `isUnderMinIsr`, on the committed ISR.
    pub fn is_under_min_isr(&self) -> bool {
        self.committed_isr.len() < self.effective_min_isr()
    }

    /// A request's `current_leader_epoch` against this leader's: -1 skips
    /// the check (old clients), older is FENCED_LEADER_EPOCH, newer is
    /// UNKNOWN_LEADER_EPOCH (this broker has not seen it yet).
    pub fn check_leader_epoch(&self, current_leader_epoch: i32) -> Result<(), ResponseError> {
        match current_leader_epoch {
            -1 => Ok(()),
            epoch if epoch < self.leader_epoch => Err(ResponseError::FencedLeaderEpoch),
            epoch if epoch > self.leader_epoch => Err(ResponseError::UnknownLeaderEpoch),
            _ => Ok(()),
        }
    }

    /// Before a produce's append: `acks=-1` while the committed ISR is
    /// below `min.insync.replicas` is refused NOT_ENOUGH_REPLICAS, nothing
    /// written (Kafka's `appendRecordsToLeader`).
    pub fn check_append(&self, acks: i16) -> Result<(), ResponseError> {
        if acks == -1 && self.is_under_min_isr() {
            return Err(ResponseError::NotEnoughReplicas);
        }
        Ok(())
    }

    /// An `acks=-1` produce whose batch ends before `required_end_offset`
    /// (its last offset + 1): Kafka's `checkEnoughReplicasReachOffset`.
    pub fn acks_all_status(&self, required_end_offset: i64) -> AcksAllStatus {
        if self.high_watermark_offset < required_end_offset {
            AcksAllStatus::Waiting
        } else if self.maximal_isr().len() >= self.effective_min_isr() {
            AcksAllStatus::Done
        } else {
            AcksAllStatus::NotEnoughReplicasAfterAppend
        }
    }

    /// Kafka's `lowWatermarkIfLeader`: the lowest log start among the
    /// leader's (`leader_log_start_offset`) and those of the followers on
    /// alive brokers (`alive`: registered and unfenced); a follower not
    /// heard from since this broker began leading counts as -1. What
    /// DeleteRecords waits for before it answers.
    pub fn low_watermark(&self, leader_log_start_offset: i64, alive: impl Fn(i32) -> bool) -> i64 {
        self.followers
            .iter()
            .filter(|(id, _)| alive(**id))
            .map(|(_, follower)| follower.log_start_offset)
            .fold(leader_log_start_offset, i64::min)
    }

    /// A follower's Fetch arrived: record it, then maybe expand the ISR
    /// and move the high watermark.
    pub fn on_follower_fetch(
        &mut self,
        fetch: &FollowerFetch,
        local: LocalEnds,
        now_ms: i64,
    ) -> Result<LeaderEffects, FetchRefused> {
        let follower = self
            .followers
            .get_mut(&fetch.replica_id)
            .ok_or(FetchRefused::NotAReplica)?;
        if fetch.broker_epoch != -1
            && fetch
                .registered_broker_epoch
                .is_some_and(|registered| registered > fetch.broker_epoch)
        {
            return Err(FetchRefused::StaleBrokerEpoch);
        }
        if fetch.fetch_offset > local.log_end_offset {
            return Err(FetchRefused::OffsetOutOfRange);
        }
        follower.record_fetch(fetch, local.log_end_offset, now_ms);
        let alter_partition = self.maybe_expand(fetch.replica_id);
        let effects = LeaderEffects {
            high_watermark_offset: self.maybe_advance(local, now_ms),
            alter_partition,
        };
        self.check_invariants();
        Ok(effects)
    }

    /// The leader's own log moved (an append, a flush): maybe a new high
    /// watermark (an ISR of the leader alone advances with its durable end).
    pub fn on_local_ends(&mut self, local: LocalEnds, now_ms: i64) -> LeaderEffects {
        let effects = LeaderEffects {
            high_watermark_offset: self.maybe_advance(local, now_ms),
            alter_partition: None,
        };
        self.check_invariants();
        effects
    }

    /// The timer: propose to shrink the ISR by the followers not caught up
    /// for more than `replica.lag.time.max.ms` (Kafka's `maybeShrinkIsr`).
    /// A follower that caught up late may let the high watermark move.
    pub fn on_tick(&mut self, local: LocalEnds, now_ms: i64) -> LeaderEffects {
        let mut effects = LeaderEffects {
            high_watermark_offset: None,
            alter_partition: self.maybe_shrink(local, now_ms),
        };
        effects.high_watermark_offset = self.maybe_advance(local, now_ms);
        self.check_invariants();
        effects
    }

    /// The controller answered `sent`. An answer for a proposal no longer
    /// in flight changes nothing, nor one from an older leader or
    /// partition epoch; a committed answer sets the ISR; OPERATION_NOT_ATTEMPTED
    /// and INELIGIBLE_REPLICA drop the proposal (the controller did not
    /// apply it); other final errors keep it pending until the metadata
    /// moves; a retriable error sends it again, unless it would now take in
    /// a follower no longer in sync (then it is dropped, and proposed anew
    /// when the follower is).
    pub fn on_alter_partition(
        &mut self,
        sent: &AlterPartitionProposal,
        answer: &AlterPartitionAnswer,
        local: LocalEnds,
        now_ms: i64,
    ) -> LeaderEffects {
        if self.in_flight() != Some(sent) {
            return LeaderEffects::default();
        }
        let mut effects = LeaderEffects::default();
        match answer {
            AlterPartitionAnswer::Committed {
                leader_epoch,
                partition_epoch,
                isr,
            } => {
                if *leader_epoch == self.leader_epoch
                    && *partition_epoch >= self.partition_epoch
                    && isr_is_valid(isr, &self.replicas, self.config.local_broker_id)
                {
                    self.committed_isr = isr.iter().copied().collect();
                    self.partition_epoch = *partition_epoch;
                    self.pending = None;
                }
            }
            AlterPartitionAnswer::Error(error) => match alter_partition_error(*error) {
                AlterErrorAction::Revert => self.pending = None,
                AlterErrorAction::AwaitMetadata => {}
                AlterErrorAction::Retry if self.pending_still_holds() => {
                    effects.alter_partition = Some(sent.clone())
                }
                AlterErrorAction::Retry => self.pending = None,
            },
        }
        effects.high_watermark_offset = self.maybe_advance(local, now_ms);
        self.check_invariants();
        effects
    }

    /// A new metadata state for the partition. An older partition epoch
    /// changes nothing; a new leader epoch restarts the followers' clocks
    /// and the epoch's start offset (Kafka's `makeLeader`); the committed
    /// ISR and the replicas follow the view, and an AlterPartition based on
    /// an older partition epoch is no longer in flight.
    pub fn on_metadata(
        &mut self,
        view: &PartitionView,
        local: LocalEnds,
        now_ms: i64,
    ) -> MetadataOutcome {
        if !view_is_led_by(view, self.config.local_broker_id) {
            return MetadataOutcome::Ended;
        }
        if view.partition_epoch <= self.partition_epoch && view.leader_epoch <= self.leader_epoch {
            return MetadataOutcome::Leading(LeaderEffects::default());
        }
        if view.leader_epoch > self.leader_epoch {
            self.leader_epoch = view.leader_epoch;
            self.leader_epoch_start_offset = local.log_end_offset;
            for (id, follower) in &mut self.followers {
                let in_sync = view.isr.contains(id);
                follower.reset_for_new_epoch(in_sync, local.log_end_offset, now_ms);
            }
        }
        self.partition_epoch = view.partition_epoch.max(self.partition_epoch);
        self.pending = None;
        self.set_assignment(view, now_ms);
        let effects = LeaderEffects {
            high_watermark_offset: self.maybe_advance(local, now_ms),
            alter_partition: None,
        };
        self.check_invariants();
        MetadataOutcome::Leading(effects)
    }

    /// Takes the view's replicas and committed ISR: a new follower starts
    /// unknown, a removed one is forgotten.
    fn set_assignment(&mut self, view: &PartitionView, now_ms: i64) {
        let local = self.config.local_broker_id;
        self.replicas = view.replicas.clone();
        self.committed_isr = view.isr.iter().copied().collect();
        self.followers
            .retain(|id, _| view.replicas.contains(id) && *id != local);
        for &id in view.replicas.iter().filter(|&&id| id != local) {
            let in_sync = self.committed_isr.contains(&id);
            self.followers
                .entry(id)
                .or_insert_with(|| FollowerState::new(in_sync, now_ms));
        }
    }

    /// Kafka's `maybeExpandIsr`: propose adding `replica_id` if nothing is
    /// in flight and it is in sync and eligible.
    fn maybe_expand(&mut self, replica_id: i32) -> Option<AlterPartitionProposal> {
        if self.pending.is_some() || self.committed_isr.contains(&replica_id) {
            return None;
        }
        if !self.is_in_sync(self.followers.get(&replica_id)?) {
            return None;
        }
        let mut isr = self.committed_isr.clone();
        isr.insert(replica_id);
        let sent = self.proposal(&isr);
        self.pending = Some(PendingChange::Expand {
            new_member: replica_id,
            sent: sent.clone(),
        });
        Some(sent)
    }

    /// A retried expansion's new member must still be in sync (it may have
    /// truncated since, and the controller would take it in below the high
    /// watermark); a shrink is sent again as it was (Kafka's).
    fn pending_still_holds(&self) -> bool {
        match &self.pending {
            Some(PendingChange::Expand { new_member, .. }) => self
                .followers
                .get(new_member)
                .is_some_and(|follower| self.is_in_sync(follower)),
            Some(PendingChange::Shrink { .. }) => true,
            None => false,
        }
    }

    /// Kafka's `isFollowerInSync` and `isReplicaIsrEligible`: at or past
    /// the high watermark and the start of the leader's epoch, with the
    /// broker epoch it is registered with.
    fn is_in_sync(&self, follower: &FollowerState) -> bool {
        follower.isr_eligible
            && follower.log_end_offset.is_some_and(|end| {
                end >= self.high_watermark_offset && end >= self.leader_epoch_start_offset
            })
    }

    /// Kafka's `maybeShrinkIsr`: propose removing the ISR followers not
    /// caught up within the lag, if nothing is in flight.
    fn maybe_shrink(&mut self, local: LocalEnds, now_ms: i64) -> Option<AlterPartitionProposal> {
        if self.pending.is_some() {
            return None;
        }
        let lag_max_ms = self.config.replica_lag_time_max_ms;
        let out_of_sync: BTreeSet<i32> = self
            .committed_isr
            .iter()
            .filter(|&&id| id != self.config.local_broker_id)
            .filter(|id| {
                self.followers.get(id).is_none_or(|follower| {
                    !follower.is_caught_up(local.log_end_offset, now_ms, lag_max_ms)
                })
            })
            .copied()
            .collect();
        if out_of_sync.is_empty() {
            return None;
        }
        let isr: BTreeSet<i32> = self
            .committed_isr
            .difference(&out_of_sync)
            .copied()
            .collect();
        assert!(
            isr.contains(&self.config.local_broker_id),
            "a shrink keeps the leader"
        );
        let sent = self.proposal(&isr);
        self.pending = Some(PendingChange::Shrink { sent: sent.clone() });
        Some(sent)
    }

    /// An AlterPartition for `isr`, each member with the broker epoch
    /// known for it (this broker's own; a follower's from its last fetch).
    fn proposal(&self, isr: &BTreeSet<i32>) -> AlterPartitionProposal {
        let new_isr = isr
            .iter()
            .map(|&broker_id| IsrMember {
                broker_id,
                broker_epoch: if broker_id == self.config.local_broker_id {
                    self.config.local_broker_epoch
                } else {
                    self.followers
                        .get(&broker_id)
                        .and_then(|follower| follower.broker_epoch)
                        .unwrap_or(-1)
                },
            })
            .collect();
        AlterPartitionProposal {
            leader_id: self.config.local_broker_id,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            new_isr,
        }
    }

    /// The high watermark the replicas allow now (Kafka's
    /// `maybeIncrementLeaderHW`), None while under min ISR or while a
    /// counted member's log end is unknown.
    fn candidate_high_watermark(&self, local: LocalEnds, now_ms: i64) -> Option<i64> {
        if self.is_under_min_isr() {
            return None;
        }
        let maximal_isr = self.maximal_isr();
        let lag_max_ms = self.config.replica_lag_time_max_ms;
        let mut candidate = local.durable_end_offset;
        for (id, follower) in &self.followers {
            let waits_to_join = follower.isr_eligible
                && follower.is_caught_up(local.log_end_offset, now_ms, lag_max_ms);
            if maximal_isr.contains(id) || waits_to_join {
                candidate = candidate.min(follower.log_end_offset?);
            }
        }
        Some(candidate)
    }

    /// Moves the high watermark forward if the replicas allow it.
    fn maybe_advance(&mut self, local: LocalEnds, now_ms: i64) -> Option<i64> {
        let candidate = self.candidate_high_watermark(local, now_ms)?;
        if candidate <= self.high_watermark_offset {
            return None;
        }
        self.high_watermark_offset = candidate;
        Some(candidate)
    }

    fn check_invariants(&self) {
        let leader = self.config.local_broker_id;
        assert!(
            isr_is_valid(&self.committed_isr(), &self.replicas, leader),
            "ISR {:?} with replicas {:?} and leader {leader}",
            self.committed_isr,
            self.replicas
        );
        if let Some(PendingChange::Expand { new_member, .. }) = &self.pending {
            assert!(self.replicas.contains(new_member) && *new_member != leader);
        }
    }
}

/// The view makes `broker_id` the leader with a valid ISR.
fn view_is_led_by(view: &PartitionView, broker_id: i32) -> bool {
    view.leader == broker_id && isr_is_valid(&view.isr, &view.replicas, broker_id)
}

/// An ISR holds the leader and lies within the replicas.
fn isr_is_valid(isr: &[i32], replicas: &[i32], leader: i32) -> bool {
    isr.contains(&leader) && isr.iter().all(|id| replicas.contains(id))
}

enum AlterErrorAction {
    Revert,
    AwaitMetadata,
    Retry,
}

/// Kafka's `handleAlterPartitionError`.
fn alter_partition_error(error: ResponseError) -> AlterErrorAction {
    match error {
        ResponseError::OperationNotAttempted | ResponseError::IneligibleReplica => {
            AlterErrorAction::Revert
        }
        ResponseError::UnknownTopicOrPartition
        | ResponseError::UnknownTopicId
        | ResponseError::FencedLeaderEpoch
        | ResponseError::InvalidUpdateVersion
        | ResponseError::InvalidRequest
        | ResponseError::NewLeaderElected => AlterErrorAction::AwaitMetadata,
        _ => AlterErrorAction::Retry,
    }
}
