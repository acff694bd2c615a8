//! The consumer-group coordinator and committed offsets, as a pure state
//! machine: classic groups (JoinGroup/SyncGroup, `coordinator.rs`) and
//! consumer-protocol groups of KIP-848 (ConsumerGroupHeartbeat with
//! server-side assignment, `consumer.rs` and `assignor.rs`). A group id is
//! one kind or the other at a time; offsets belong to the group either way.
//! The membership of consumer-protocol groups is kept in memory only (see
//! `consumer.rs`); everything else is written to `__consumer_offsets`.
//!
//! One `GroupCoordinator` runs on the shard that owns the `__consumer_offsets`
//! partitions of its groups (`offsets_partition`). It is single-threaded and
//! deterministic: no IO, no clock, no channels. Time comes in as `now_ms`
//! arguments; expirations (sessions, join and sync barriers, offset
//! retention) happen in `tick`, which the shard calls from a timer.
//!
//! Requests that wait (JoinGroup until the barrier closes, SyncGroup until
//! the leader's assignment) carry a caller-chosen token; their answers come
//! back as `Completion`s in the `Effects` of whichever call released them,
//! possibly the same call. Every state change Kafka writes to
//! `__consumer_offsets` comes back as a `Record` in the same `Effects`: the
//! caller appends the records first and delivers the completions after, so
//! nothing is answered before it is as durable as the internal topic makes it.
//! `replay` rebuilds the state from those records at load time.
//!
//! Invariant: this module depends on nothing else in shoal. It knows neither
//! shards nor sockets nor the log; the shard drives it, `server/handlers`
//! translates requests into its plain-data API.

mod assignor;
mod classic;
mod consumer;
mod consumer_records;
mod coordinator;
mod offsets;
pub mod records;
mod types;

#[cfg(test)]
mod consumer_tests;
#[cfg(test)]
mod tests;

pub use assignor::{RANGE_ASSIGNOR, UNIFORM_ASSIGNOR};
pub use coordinator::GroupCoordinator;
pub use records::RecordError;
pub use types::*;

/// Name of the internal topic holding offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Broker settings of the group coordinator, by Kafka's names, with Kafka's
/// defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`
    pub max_session_timeout_ms: i32,
    /// `group.max.size`: members per group.
    pub max_size: usize,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an
    /// empty group waits for more members, so a group starting up rebalances
    /// once rather than once per member.
    pub initial_rebalance_delay_ms: i32,
    /// How long a new member waits in a join barrier before it is dropped
    /// (Kafka's internal `group.classic.new.member.join.timeout.ms`, not a
    /// broker config): a client that gave up on its JoinGroup would otherwise
    /// stay a member forever, since it has no member id to heartbeat with.
    pub new_member_join_timeout_ms: i32,
    /// `offsets.retention.minutes`, in milliseconds.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes`: longest commit metadata string kept.
    pub offset_metadata_max_bytes: usize,
    /// `offsets.topic.num.partitions`: how groups spread over
    /// `__consumer_offsets`.
    pub offsets_topic_num_partitions: i32,
    /// `group.consumer.session.timeout.ms`: how long a consumer-protocol
    /// member lives without a heartbeat.
    pub consumer_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`: told to every member.
    pub consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.assignors`: the server assignors members may ask for;
    /// the first is the default.
    pub consumer_assignors: Vec<String>,
    /// `group.consumer.max.size`: members per consumer-protocol group.
    pub consumer_max_size: usize,
}

impl Default for GroupConfig {
    fn default() -> GroupConfig {
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX as usize,
            initial_rebalance_delay_ms: 3_000,
            new_member_join_timeout_ms: 5 * 60 * 1000,
            offsets_retention_ms: 10_080 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            offsets_topic_num_partitions: 50,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
            consumer_assignors: vec![UNIFORM_ASSIGNOR.to_string(), RANGE_ASSIGNOR.to_string()],
            consumer_max_size: i32::MAX as usize,
        }
    }
}

/// The `__consumer_offsets` partition holding `group_id`, computed as Kafka
/// does (`Utils.abs(groupId.hashCode()) % partitions`, Java's UTF-16 string
/// hash),
/// so a group lands on the same partition number as in Apache Kafka.
pub fn offsets_partition(group_id: &str, partitions: i32) -> i32 {
    debug_assert!(partitions > 0);
    let hash = group_id.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(unit as i32)
    });
    // Kafka's `Utils.abs`: Math.abs, except that i32::MIN maps to 0.
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partitions
}
