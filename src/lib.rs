//! shoal: a Kafka-compatible streaming broker, one io_uring shard per core.

pub mod cli;
pub mod client;
pub mod protocol;
pub mod shard;
