//! shoal: a Kafka-compatible streaming broker, one io_uring shard per core.

pub mod log;
pub mod protocol;
pub mod shard;
