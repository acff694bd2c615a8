//! shoal: a Kafka-compatible streaming broker, one io_uring shard per core.
//!
//! The crate map (see docs/ARCHITECTURE.md): `clock` (wall-clock
//! milliseconds), `config` (settings by
//! Kafka's names), `protocol` (wire framing and hot encoders), `log`
//! (partition storage), `shard` (threads, ownership, messages), `metadata`
//! (topics, placement, the controller, the metadata records and image),
//! `quorum` (the metadata log's Raft storage), `replication` (the leader's
//! ISR and high watermark, the follower's fetch plan and fetch session, as
//! pure state machines), `security` (a connection's session and principal,
//! TLS on the shard's reactor), `quota` (client quotas: Kafka's windowed
//! rates, precedence, each shard's sensors), `server` (listener, connections,
//! one handler per API), `client` (a small blocking Kafka client) and `cli`
//! (the command-line tools built on it), `security` (the authorizer and
//! its ACLs), `bench` (the load generator
//! behind `shoal bench`), `tune` (host checks against `tuning/`),
//! `metrics` (each shard's counters and histograms, the Prometheus text
//! format), `admin` (the admin HTTP listener: `/metrics`, health checks,
//! log levels), `logging` (the logger: formats, levels at runtime) and
//! `fatal` (the frames of a thread that dies of SIGSEGV or SIGBUS).

pub mod admin;
pub mod alloc;
pub mod bench;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod fatal;
pub mod group;
pub mod log;
pub mod logging;
pub mod metadata;
pub mod metrics;
pub mod protocol;
pub mod quorum;
pub mod quota;
pub mod replication;
pub mod security;
pub mod server;
pub mod shard;
pub mod tune;
pub mod txn;

/// Every binary linking shoal (the broker, the tools, the tests) uses it.
#[global_allocator]
static ALLOCATOR: alloc::ReservingAllocator = alloc::ReservingAllocator;
