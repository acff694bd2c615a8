//! `Followers`: the partitions one follower shard replicates, grouped by
//! leader broker (one fetcher, and one `FetchSession`, per leader), what
//! the next Fetch to each leader carries, and what each partition's answer
//! makes the shard do (Kafka's `AbstractFetcherThread` and
//! `ReplicaFetcherThread`).
//!
//! A follower fetches from its log end, and only once that end is durable:
//! the leader takes the fetch offset for what the follower has made durable
//! (it counts toward the high watermark), so a partition whose flush is
//! still pending is left out of the next Fetch (the session forgets it and
//! takes it back after the flush).
//!
//! Invariants: a partition is fetched from at most one leader, with the
//! leader epoch the metadata gave it; an answer applies only to the leader
//! and the fetch offset it was asked with (else it is ignored); a partition
//! backing off or waiting for metadata is not fetched; a truncation never
//! goes above the log end and, for OFFSET_OUT_OF_RANGE, never below the
//! high watermark this replica knows.

use super::{PartitionAnswer, TopicPartitionId};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use std::collections::{BTreeMap, BTreeSet};

/// `replica.fetch.max.bytes`, Kafka's default: one partition's share of a
/// Fetch (the leader still returns a first batch larger than it).
pub const REPLICA_FETCH_MAX_BYTES: i32 = 1024 * 1024;
/// `replica.fetch.response.max.bytes`, Kafka's default: a whole Fetch
/// answer, so one leader's answer cannot take more than this of memory.
pub const REPLICA_FETCH_RESPONSE_MAX_BYTES: i32 = 10 * 1024 * 1024;
/// `replica.fetch.wait.max.ms`, Kafka's default: how long the leader holds
/// a Fetch with nothing new; under `replica.lag.time.max.ms` (30 s) by far,
/// so an idle follower still proves it is caught up.
pub const REPLICA_FETCH_WAIT_MAX_MS: i32 = 500;
/// `replica.fetch.min.bytes`, Kafka's default: answer as soon as anything
/// is there, the lowest replication latency.
pub const REPLICA_FETCH_MIN_BYTES: i32 = 1;
/// `replica.fetch.backoff.ms`, Kafka's default: a partition whose fetch
/// failed waits this long before it is fetched again.
pub const REPLICA_FETCH_BACKOFF_MS: i64 = 1000;
/// Partitions in one Fetch to one leader. Kafka sets no limit; this keeps a
/// request and its answer's bookkeeping bounded (2,000 partitions are
/// about 60 KiB of request). Beyond it the partitions take turns.
pub const PARTITIONS_PER_FETCH_MAX: usize = 2000;

/// One partition this shard follows, as the metadata says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowedPartition {
    pub id: TopicPartitionId,
    pub leader_id: i32,
    pub leader_epoch: i32,
}

/// This replica's log of one partition, as the shard reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalLog {
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// The end of what is durable; a fetch waits until it is the log end.
    pub durable_end_offset: i64,
    /// The epoch of the last batch, None for an empty log.
    pub latest_epoch: Option<i32>,
    pub high_watermark_offset: i64,
}

/// The log's answer to "where does epoch E end?" (Kafka's
/// `endOffsetForEpoch`): the largest epoch at or below E that the log
/// holds, and the offset after its last record (the next epoch's start, or
/// the log end for the latest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalEpochEnd {
    pub epoch: i32,
    pub end_offset: i64,
}

/// A leader's log bounds for one partition (ListOffsets earliest, latest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderOffsets {
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// One partition of the next Fetch to a leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedPartition {
    pub id: TopicPartitionId,
    pub current_leader_epoch: i32,
    pub fetch_offset: i64,
    /// The epoch of the last batch this replica holds, -1 for none.
    pub last_fetched_epoch: i32,
    pub log_start_offset: i64,
    pub partition_max_bytes: i32,
}

/// How the metadata moved a followed partition between fetchers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetcherChange {
    /// Now followed, from `leader_id`.
    Added {
        id: TopicPartitionId,
        leader_id: i32,
    },
    /// No longer followed by this shard (it leads it, or holds no replica).
    Removed {
        id: TopicPartitionId,
        leader_id: i32,
    },
    /// Followed from a new leader, or at a new epoch of the same one (the
    /// fetch state restarts; the leader's first answer may diverge).
    Moved {
        id: TopicPartitionId,
        from_leader_id: i32,
        to_leader_id: i32,
        leader_epoch: i32,
    },
}

/// What the shard does with one partition's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowerDecision {
    /// Append these batches verbatim (None or empty: nothing new), then
    /// set the high watermark to `follower_high_watermark` of the leader's.
    Append {
        records: Option<Bytes>,
        leader_high_watermark_offset: i64,
        leader_log_start_offset: i64,
    },
    /// Truncate the log to `to_offset`, then fetch again from there.
    Truncate { to_offset: i64 },
    /// Drop the whole log and start it empty at `offset`.
    TruncateFullyAndStartAt { offset: i64 },
    /// OFFSET_OUT_OF_RANGE: ask the leader for its log start and end
    /// (ListOffsets earliest and latest), then `Followers::on_leader_offsets`.
    /// Not fetched meanwhile.
    ResolveOutOfRange,
    /// Nothing to change: fetch again from the log end.
    FetchAgain,
    /// Not fetched until `until_ms`, or until the metadata moves its leader
    /// or epoch, whichever comes first.
    BackOff { error: ResponseError, until_ms: i64 },
    /// FENCED_LEADER_EPOCH: this replica's epoch is older than the leader's;
    /// not fetched until the metadata brings the new epoch.
    AwaitMetadata,
    /// An answer for a partition no longer fetched from this leader, or to
    /// an older fetch offset: nothing to do.
    Ignore,
}

/// Why a partition is not fetched for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    None,
    Until(i64),
    /// Waiting for `on_leader_offsets`.
    Resolving,
    Metadata,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Followed {
    leader_id: i32,
    leader_epoch: i32,
    hold: Hold,
}

/// The partitions one follower shard replicates (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct Followers {
    partitions: BTreeMap<TopicPartitionId, Followed>,
    /// Per leader, the last partition a capped plan took: the next one
    /// starts after it.
    cursors: BTreeMap<i32, TopicPartitionId>,
}

impl Followers {
    pub fn new() -> Followers {
        Followers::default()
    }

    /// The leaders this shard fetches from: one fetcher (and session) each.
    pub fn leaders(&self) -> BTreeSet<i32> {
        self.partitions.values().map(|f| f.leader_id).collect()
    }

    /// The partitions fetched from `leader_id`.
    pub fn partitions_of(&self, leader_id: i32) -> Vec<TopicPartitionId> {
        self.partitions
            .iter()
            .filter(|(_, f)| f.leader_id == leader_id)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Takes the metadata's list of partitions this shard follows (all of
    /// them): what moved between fetchers. A partition whose leader or
    /// epoch changed is fetched again at once.
    pub fn apply_metadata(&mut self, followed: &[FollowedPartition]) -> Vec<FetcherChange> {
        let wanted: BTreeMap<TopicPartitionId, &FollowedPartition> =
            followed.iter().map(|f| (f.id, f)).collect();
        let mut changes: Vec<FetcherChange> = self
            .partitions
            .iter()
            .filter(|(id, _)| !wanted.contains_key(id))
            .map(|(id, f)| FetcherChange::Removed {
                id: *id,
                leader_id: f.leader_id,
            })
            .collect();
        self.partitions.retain(|id, _| wanted.contains_key(id));
        for (id, new) in wanted {
            let entry = Followed {
                leader_id: new.leader_id,
                leader_epoch: new.leader_epoch,
                hold: Hold::None,
            };
            match self.partitions.insert(id, entry) {
                None => changes.push(FetcherChange::Added {
                    id,
                    leader_id: new.leader_id,
                }),
                Some(old)
                    if (old.leader_id, old.leader_epoch) != (new.leader_id, new.leader_epoch) =>
                {
                    changes.push(FetcherChange::Moved {
                        id,
                        from_leader_id: old.leader_id,
                        to_leader_id: new.leader_id,
                        leader_epoch: new.leader_epoch,
                    })
                }
                Some(old) => {
                    self.partitions.insert(id, old);
                }
            }
        }
        let leaders = self.leaders();
        self.cursors.retain(|leader, _| leaders.contains(leader));
        changes
    }

    /// The partitions of the next Fetch to `leader_id`: those not held back
    /// whose log `local_log` finds and whose end is durable, fetched from
    /// that end, at most `PARTITIONS_PER_FETCH_MAX` (taking turns beyond).
    pub fn plan(
        &mut self,
        leader_id: i32,
        now_ms: i64,
        local_log: impl Fn(&TopicPartitionId) -> Option<LocalLog>,
    ) -> Vec<PlannedPartition> {
        let ready: Vec<PlannedPartition> = self
            .partitions
            .iter()
            .filter(|(_, f)| f.leader_id == leader_id && f.is_ready(now_ms))
            .filter_map(|(id, f)| {
                let log = local_log(id)?;
                (log.durable_end_offset >= log.log_end_offset).then(|| planned(*id, f, &log))
            })
            .collect();
        if ready.len() <= PARTITIONS_PER_FETCH_MAX {
            return ready;
        }
        let start = self
            .cursors
            .get(&leader_id)
            .map_or(0, |last| ready.partition_point(|p| p.id <= *last));
        let taken: Vec<PlannedPartition> = ready
            .iter()
            .cycle()
            .skip(start)
            .take(PARTITIONS_PER_FETCH_MAX)
            .copied()
            .collect();
        if let Some(last) = taken.last() {
            self.cursors.insert(leader_id, last.id);
        }
        taken
    }

    /// One partition's answer from `leader_id`. `local` is the log now;
    /// `epoch_end` answers "where does this epoch end in my log" for a
    /// diverging epoch (KIP-320).
    pub fn on_answer(
        &mut self,
        leader_id: i32,
        answer: &PartitionAnswer,
        local: &LocalLog,
        epoch_end: impl FnOnce(i32) -> Option<LocalEpochEnd>,
        now_ms: i64,
    ) -> FollowerDecision {
        let Some(followed) = self.partitions.get_mut(&answer.id) else {
            return FollowerDecision::Ignore;
        };
        if followed.leader_id != leader_id || answer.fetch_offset != local.log_end_offset {
            return FollowerDecision::Ignore;
        }
        let decision = match answer.error {
            None => match answer.diverging_epoch {
                Some(diverging) => truncation_for_diverging(diverging, local, epoch_end),
                None => FollowerDecision::Append {
                    records: answer.records.clone(),
                    leader_high_watermark_offset: answer.high_watermark_offset,
                    leader_log_start_offset: answer.log_start_offset,
                },
            },
            Some(ResponseError::OffsetOutOfRange) => FollowerDecision::ResolveOutOfRange,
            Some(ResponseError::FencedLeaderEpoch) => FollowerDecision::AwaitMetadata,
            Some(error) => back_off(error, now_ms),
        };
        followed.hold = hold_after(&decision);
        decision
    }

    /// The whole Fetch to `leader_id` failed (connection lost, a session
    /// error): its partitions back off together.
    pub fn on_fetch_failed(&mut self, leader_id: i32, now_ms: i64) {
        let until_ms = now_ms.saturating_add(REPLICA_FETCH_BACKOFF_MS);
        for followed in self.partitions.values_mut() {
            if followed.leader_id == leader_id && followed.hold == Hold::None {
                followed.hold = Hold::Until(until_ms);
            }
        }
    }

    /// The leader's offsets asked for after a `ResolveOutOfRange` (or the
    /// error that ListOffsets got instead), with the log now (Kafka's
    /// `fetchOffsetAndTruncate`): our end above the leader's, truncate to
    /// the leader's end but never below our high watermark (what this
    /// replica knows committed stays; if that leaves nothing to cut, back
    /// off until the leader's log grows past it); the leader's start above
    /// our end, drop everything and start at the leader's start; else fetch
    /// again from our end.
    /// An answer for a partition not waiting for one from `leader_id` (it
    /// moved meanwhile) is ignored.
    pub fn on_leader_offsets(
        &mut self,
        leader_id: i32,
        id: &TopicPartitionId,
        leader_offsets: Result<LeaderOffsets, ResponseError>,
        local: &LocalLog,
        now_ms: i64,
    ) -> FollowerDecision {
        let Some(followed) = self
            .partitions
            .get_mut(id)
            .filter(|f| f.leader_id == leader_id && f.hold == Hold::Resolving)
        else {
            return FollowerDecision::Ignore;
        };
        let decision = match leader_offsets {
            Ok(leader) => resolve_out_of_range(leader, local, now_ms),
            Err(error) => back_off(error, now_ms),
        };
        followed.hold = hold_after(&decision);
        decision
    }
}

impl Followed {
    fn is_ready(&self, now_ms: i64) -> bool {
        match self.hold {
            Hold::None => true,
            Hold::Until(until_ms) => now_ms >= until_ms,
            Hold::Resolving | Hold::Metadata => false,
        }
    }
}

fn planned(id: TopicPartitionId, followed: &Followed, log: &LocalLog) -> PlannedPartition {
    PlannedPartition {
        id,
        current_leader_epoch: followed.leader_epoch,
        fetch_offset: log.log_end_offset,
        last_fetched_epoch: log.latest_epoch.unwrap_or(-1),
        log_start_offset: log.log_start_offset,
        partition_max_bytes: REPLICA_FETCH_MAX_BYTES,
    }
}

/// KIP-320's truncation on a diverging epoch (Kafka's
/// `getOffsetTruncationState`): where this log holds the leader's epoch,
/// to the lower of the two ends of it; where it does not, to the end of the
/// largest epoch below it, and the next Fetch (with that epoch as the last
/// fetched) finds the rest; where it holds no epoch at or below it, to the
/// leader's end. Never above the log end.
fn truncation_for_diverging(
    diverging: LocalEpochEnd,
    local: &LocalLog,
    epoch_end: impl FnOnce(i32) -> Option<LocalEpochEnd>,
) -> FollowerDecision {
    let to_offset = match epoch_end(diverging.epoch) {
        Some(ours) if ours.epoch == diverging.epoch => ours.end_offset.min(diverging.end_offset),
        Some(ours) => ours.end_offset,
        None => diverging.end_offset,
    };
    FollowerDecision::Truncate {
        to_offset: to_offset.min(local.log_end_offset).max(0),
    }
}

fn resolve_out_of_range(leader: LeaderOffsets, local: &LocalLog, now_ms: i64) -> FollowerDecision {
    if leader.log_end_offset < local.log_end_offset {
        let to_offset = leader.log_end_offset.max(local.high_watermark_offset);
        if to_offset < local.log_end_offset {
            return FollowerDecision::Truncate { to_offset };
        }
        return back_off(ResponseError::OffsetOutOfRange, now_ms);
    }
    if leader.log_start_offset > local.log_end_offset {
        return FollowerDecision::TruncateFullyAndStartAt {
            offset: leader.log_start_offset,
        };
    }
    FollowerDecision::FetchAgain
}

fn back_off(error: ResponseError, now_ms: i64) -> FollowerDecision {
    FollowerDecision::BackOff {
        error,
        until_ms: now_ms.saturating_add(REPLICA_FETCH_BACKOFF_MS),
    }
}

/// Whether a partition is fetched after `decision`: not while the leader's
/// offsets are asked for, nor while backing off or awaiting metadata.
fn hold_after(decision: &FollowerDecision) -> Hold {
    match decision {
        FollowerDecision::ResolveOutOfRange => Hold::Resolving,
        FollowerDecision::AwaitMetadata => Hold::Metadata,
        FollowerDecision::BackOff { until_ms, .. } => Hold::Until(*until_ms),
        _ => Hold::None,
    }
}

/// The follower's high watermark after an answer: the leader's, but never
/// above this log's end, and never backward while the log holds it.
pub fn follower_high_watermark(
    current_high_watermark_offset: i64,
    leader_high_watermark_offset: i64,
    log_end_offset: i64,
) -> i64 {
    leader_high_watermark_offset
        .min(log_end_offset)
        .max(current_high_watermark_offset.min(log_end_offset))
}

/// Where the follower's log start goes after an answer (Kafka's
/// `maybeIncrementLogStartOffset` with the leader's log start): up to the
/// leader's, so that the leader's DeleteRecords and retention reach every
/// replica, but never past this replica's high watermark (the rest comes
/// with a later answer) and never backward. None: it stays.
pub fn follower_log_start(
    current_log_start_offset: i64,
    leader_log_start_offset: i64,
    high_watermark_offset: i64,
) -> Option<i64> {
    let next = leader_log_start_offset.min(high_watermark_offset);
    (next > current_log_start_offset).then_some(next)
}
