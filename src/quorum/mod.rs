//! The metadata quorum (issue 14): a Raft log of the metadata records
//! (`metadata::records`) on shard 0 of each controller, driven by TiKV's
//! sans-IO `raft::RawNode`: the log's durable storage (`storage.rs`) and
//! one voter's node over it (`node.rs`: ready rounds split where the IO
//! goes, the image its committed entries build, snapshots). The glommio
//! loop that ticks it and carries its rounds out is `shard/quorum.rs`.
//! Between voters, the CONTROLLER listener (`transport.rs`, `wire.rs`,
//! `queue.rs`) carries shoal's private one-way request of Raft messages
//! in Kafka framing, and answers Kafka's tools (ApiVersions,
//! DescribeCluster, DescribeQuorum: `describe.rs`); serve runs it when
//! `controller.quorum.voters` names several voters (one has no one to
//! talk to), and serves the active controller's APIs through its hook;
//! brokers reach the active controller through `channel.rs`. A pure
//! broker (`process.roles=broker`) observes the log instead of voting:
//! it fetches the committed entries from any voter (`fetch.rs`, its
//! client `fetch_client.rs`, the serving and applying rules `observe.rs`).
//! The CONTROLLER listener is secured as its protocol says: `gate.rs`
//! admits a connection (TLS, then a SASL/PLAIN login), and `link.rs`
//! opens the connections this node makes as a client, to the controllers
//! and to the other brokers alike (TLS, then a SASL login); `authorize.rs`
//! holds Kafka's authorization matrix for what a login may ask there.
//!
//! `quorum` imports no `server` and no `shard` (`tests/architecture.rs`):
//! it is storage and consensus state, handed bytes by whoever runs it.

pub mod authorize;
pub mod bootstrap_file;
pub mod channel;
pub mod describe;
pub mod fetch;
pub mod fetch_client;
pub mod gate;
pub mod link;
pub mod node;
pub mod observe;
pub mod queue;
pub mod storage;
pub mod transport;
pub mod wire;

pub use node::{QuorumError, QuorumNode, QuorumSettings};
pub use storage::{RaftLogStore, StoreError, METADATA_LOG_DIR};

#[cfg(test)]
mod channel_tests;
#[cfg(test)]
mod gate_tests;
#[cfg(test)]
mod observe_tests;
#[cfg(test)]
mod single_voter_tests;
#[cfg(test)]
mod transport_tests;
#[cfg(test)]
mod voters_tests;
