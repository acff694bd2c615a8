//! The metadata quorum (issue 14): a Raft log of the metadata records
//! (`metadata::records`) on shard 0 of each controller, driven by TiKV's
//! sans-IO `raft::RawNode`: the log's durable storage (`storage.rs`) and
//! one voter's node over it (`node.rs`: ready rounds split where the IO
//! goes, the image its committed entries build, snapshots). The glommio
//! loop that ticks it and carries its rounds out is `shard/quorum.rs`.
//!
//! `quorum` imports no `server` and no `shard` (`tests/architecture.rs`):
//! it is storage and consensus state, handed bytes by whoever runs it.

pub mod node;
pub mod storage;

pub use node::{QuorumError, QuorumNode, QuorumSettings};
pub use storage::{RaftLogStore, StoreError, METADATA_LOG_DIR};

#[cfg(test)]
mod single_voter_tests;
