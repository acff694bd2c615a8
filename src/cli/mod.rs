//! The command-line tools `shoal topic`, `shoal group`, `shoal transactions`,
//! `shoal acl`, `shoal cluster`, `shoal produce` and `shoal consume`: clap argument types and the functions
//! that run them, speaking the Kafka protocol through [`crate::client`], with
//! the output shapes of Kafka's `kafka-topics.sh`, `kafka-consumer-groups.sh`,
//! `kafka-transactions.sh`, `kafka-acls.sh`, `kafka-metadata-quorum.sh`, `kafka-console-producer.sh` and
//! `kafka-console-consumer.sh`.
//!
//! `shoal storage` (like `kafka-storage.sh`) is the exception: it formats
//! and inspects a node's own data directory and reaches no broker.
//!
//! Invariant: the tools reach a broker only over the Kafka protocol, exactly
//! as any other client would; they share no code path with the broker. Errors
//! come back as `anyhow` errors whose message starts with the Kafka error name
//! (e.g. `TOPIC_ALREADY_EXISTS: ...`); the caller prints them and exits 1.

mod acl;
mod cluster;
#[cfg(test)]
mod cluster_tests;
mod consume;
mod elect;
mod group;
mod produce;
mod storage;
mod table;
mod topic;
mod transactions;

pub use acl::{run_acl, AclCommand};
pub use cluster::{run_cluster, ClusterCommand, StatusArgs};
pub use consume::{run_consume, ConsumeArgs, OffsetSpec};
pub use group::{run_group, GroupCommand, ResetOffsetsArgs, ResetTarget, TopicPartitions};
pub use produce::{run_produce, CompressionArg, ProduceArgs};
pub use storage::{run_storage, FormatArgs, InfoArgs, StorageCommand};
pub use topic::{run_topic, TopicCommand};
pub use transactions::{run_transactions, AbortArgs, TransactionsCommand};

/// Where the tools look for a broker unless told otherwise.
pub const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";

/// The `--bootstrap` and `--command-config` options every tool takes.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct BootstrapArg {
    /// A broker to start from, as HOST:PORT.
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_BOOTSTRAP)]
    pub bootstrap: String,
    /// Client properties, as Kafka's tools take them (security.protocol,
    /// sasl.mechanism, sasl.jaas.config, ssl.truststore.*, ssl.keystore.*).
    /// `main` installs them for every connection the tool makes
    /// (`client::security`), under the argument id `COMMAND_CONFIG_ID`.
    #[arg(long, value_name = "FILE")]
    pub command_config: Option<std::path::PathBuf>,
}

/// The clap id of every tool's `--command-config`, by which `main` finds it.
pub const COMMAND_CONFIG_ID: &str = "command_config";
