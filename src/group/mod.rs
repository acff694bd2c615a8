//! The consumer-group coordinator and committed offsets, as a pure state
//! machine, laid out by protocol: a thin front (`coordinator.rs`: the one
//! `GroupCoordinator`, routing, loading) with committed offsets shared by
//! both kinds (`offsets.rs`) and those pending in transactions until their
//! marker (`txn_offsets.rs`); classic groups (JoinGroup/SyncGroup,
//! `classic/`); consumer-protocol groups of KIP-848 (ConsumerGroupHeartbeat
//! with server-side assignment, `consumer/`). Each protocol's tests sit in
//! its directory. A group id is one kind or the other at a time; offsets
//! belong to the group either way. Every state change, the membership of
//! consumer-protocol groups included (`consumer/records.rs`), is written to
//! `__consumer_offsets`.
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
//! Invariant: this module depends on nothing else in shoal but `config` (its
//! settings, plain data) and `protocol` (the framing of its records, bytes
//! only); `tests/architecture.rs` checks it. It knows neither
//! shards nor sockets nor the log; the shard drives it, `server/handlers`
//! translates requests into its plain-data API.

mod classic;
mod consumer;
mod coordinator;
mod offsets;
pub mod records;
mod txn_offsets;
mod types;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod txn_tests;

pub use coordinator::GroupCoordinator;
// The settings are plain data of `config` (which imports nothing of shoal).
pub use crate::config::{GroupConfig, RANGE_ASSIGNOR, UNIFORM_ASSIGNOR};
pub use records::RecordError;
pub use types::*;

/// Name of the internal topic holding offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

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
