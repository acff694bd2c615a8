//! The Kafka wire protocol edge: request framing, the record batch header
//! view, the hand-written encoders of the hot responses, and the
//! versioned-struct framing of the internal topics' records (`schema.rs`).
//!
//! Invariant: this module knows bytes and Kafka message types only. It never
//! touches a file, a socket or a shard, and imports nothing else of shoal
//! (checked by `tests/architecture.rs`).

pub mod batch;
pub mod batch_records;
pub mod chunk;
pub mod fetch_writer;
pub mod frame;
pub mod records;
#[cfg(test)]
mod roundtrip;
#[cfg(test)]
mod roundtrip_acls;
#[cfg(test)]
mod roundtrip_admin;
#[cfg(test)]
mod roundtrip_elect;
#[cfg(test)]
mod roundtrip_groups;
#[cfg(test)]
mod roundtrip_kip848;
#[cfg(test)]
mod roundtrip_quotas;
#[cfg(test)]
mod roundtrip_reassign;
#[cfg(test)]
mod roundtrip_sasl;
#[cfg(test)]
mod roundtrip_txn;
pub mod schema;
pub mod versions;
