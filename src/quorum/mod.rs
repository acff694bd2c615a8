//! The metadata quorum (issue 14): a Raft log of the metadata records
//! (`metadata::records`) on shard 0 of each controller, driven by TiKV's
//! sans-IO `raft::RawNode`. So far this is the log's durable storage
//! (`storage.rs`); the driver that wires it into serve comes next.
//!
//! `quorum` imports no `server` and no `shard` (`tests/architecture.rs`):
//! it is storage and consensus state, handed bytes by whoever runs it.

pub mod describe;
pub mod queue;
pub mod storage;
pub mod transport;
pub mod wire;

pub use storage::{RaftLogStore, StoreError, METADATA_LOG_DIR};

#[cfg(test)]
mod single_voter_tests;
#[cfg(test)]
mod transport_tests;
