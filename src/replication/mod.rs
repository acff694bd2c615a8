//! Replication's bookkeeping, Kafka's ISR protocol as pure state machines
//! (DESIGN §6): what the leader of a partition knows of its followers, and
//! what a follower shard fetches from its leaders and does with the answers.
//!
//! - `leader.rs`: `LeaderState`, one partition this broker leads: follower
//!   log ends, the ISR (committed, and the one AlterPartition in flight), the
//!   high watermark (min over the maximal ISR, never backward, frozen below
//!   `min.insync.replicas`), the `acks=-1` produce checks, the low
//!   watermark (least log start over the alive replicas) DeleteRecords
//!   waits for.
//! - `follower.rs`: `Followers`, the partitions one follower shard follows,
//!   grouped by leader broker (one fetcher each): the next Fetch's partitions,
//!   and one `FollowerDecision` per partition answer (append, truncate, back
//!   off, wait for metadata).
//! - `out_of_range.rs`: the ListOffsets a follower sends its leader after
//!   OFFSET_OUT_OF_RANGE (the leader's log start and end), and its answer.
//! - `session.rs`: `FetchSession`, the client side of one incremental fetch
//!   session (KIP-227) with one leader broker: it turns a fetcher's planned
//!   partitions into a `kafka_protocol` FetchRequest and a FetchResponse back
//!   into per-partition `PartitionAnswer`s.
//!
//! The shard drives them, as `shard/groups.rs` drives `group/`: it passes
//! what happened (a follower's fetch, a flush, a timer tick, an answer, a new
//! metadata image) with the time as `now_ms`, and carries out what comes
//! back (send an AlterPartition, complete `acks=-1` produces, append or
//! truncate a log, send a Fetch).
//!
//! Invariant: no IO, no clock, no threads, no async; deterministic. This
//! module imports nothing of shoal but `metadata` (the partition image it is
//! built from); never `shard`, `server`, `log` or `quorum`
//! (`tests/architecture.rs` checks it). Offsets are Kafka offsets (`_offset`),
//! times are milliseconds (`_ms`), broker ids and epochs are Kafka's.

mod follower;
mod leader;
mod out_of_range;
mod session;

#[cfg(test)]
mod follower_tests;
#[cfg(test)]
mod leader_props;
#[cfg(test)]
mod leader_tests;
#[cfg(test)]
mod session_tests;

pub use follower::{
    follower_high_watermark, follower_log_start, FetcherChange, FollowedPartition,
    FollowerDecision, Followers, LeaderOffsets, LocalEpochEnd, LocalLog, PlannedPartition,
    PARTITIONS_PER_FETCH_MAX, REPLICA_FETCH_BACKOFF_MS, REPLICA_FETCH_MAX_BYTES,
    REPLICA_FETCH_MIN_BYTES, REPLICA_FETCH_RESPONSE_MAX_BYTES, REPLICA_FETCH_WAIT_MAX_MS,
};
pub use leader::{
    AcksAllStatus, AlterPartitionAnswer, AlterPartitionProposal, FetchRefused, FollowerFetch,
    IsrMember, LeaderConfig, LeaderEffects, LeaderState, LocalEnds, MetadataOutcome,
};
pub use out_of_range::{
    leader_offsets, offsets_answer, offsets_request, OffsetsQuery, EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP, LIST_OFFSETS_VERSION,
};
pub use session::{
    next_epoch, FetchSession, PartitionAnswer, ReplicaIdentity, SessionError, FETCH_VERSION_MAX,
    FETCH_VERSION_MIN,
};

use crate::metadata::image::PartitionImage;
use uuid::Uuid;

/// One partition, by topic id (Kafka's Fetch names partitions so from v13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartitionId {
    pub topic_id: Uuid,
    pub partition: i32,
}

/// The metadata's state of one partition, as replication reads it: a
/// `PartitionImage` (or a test's) reduced to the fields that matter here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    /// Broker ids, the preferred leader first.
    pub replicas: Vec<i32>,
    /// The committed ISR.
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

impl From<&PartitionImage> for PartitionView {
    fn from(image: &PartitionImage) -> PartitionView {
        PartitionView {
            replicas: image.replicas.clone(),
            isr: image.isr.clone(),
            leader: image.leader,
            leader_epoch: image.leader_epoch,
            partition_epoch: image.partition_epoch,
        }
    }
}
