//! Broker and topic configuration: Kafka's names, Kafka's defaults.
//!
//! Invariant: plain data. Parsed once at start (broker) or when a topic is
//! created (topic overrides), validated here, then carried around immutable.
//! `config` imports nothing of shoal (checked by `tests/architecture.rs`):
//! the settings types other layers obey (`LogConfig`, `GroupConfig`) live
//! here and those layers re-export them, so any layer may read a config and
//! a config never pulls a layer in.
//!
//! `config.rs` holds the broker's settings; `describe.rs` them as
//! DescribeConfigs lists them; `topic.rs` topic configs and their resolution; `storage.rs`, `group.rs` and `txn.rs` the settings of the log,
//! of replication (`replication.rs`), of the group coordinator and of the transaction coordinator; `authorizer.rs`
//! the authorizer's; `cluster.rs`
//! the node's roles, quorum and named listeners; `observability.rs` the
//! admin listener, metrics and log format; `parse.rs` the value parsers.

mod authorizer;
mod client;
mod cluster;
mod describe;
mod group;
mod oauthbearer;
mod observability;
mod parse;
mod replication;
mod sasl;
mod security;
mod storage;
mod topic;
mod txn;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use authorizer::{AuthorizerConfig, SHOAL_AUTHORIZER, STANDARD_AUTHORIZER};
pub use client::{ClientCredentials, ClientSecurity, ClientTlsSettings, SaslLogin};
pub use cluster::{
    host_port, ClusterConfig, Listener, ProcessRole, Voter, BROKER_HEARTBEAT_INTERVAL_MS_DEFAULT,
    BROKER_SESSION_TIMEOUT_MS_DEFAULT, QUORUM_ELECTION_BACKOFF_MAX_MS_DEFAULT,
    QUORUM_ELECTION_TIMEOUT_MS_DEFAULT, QUORUM_FETCH_TIMEOUT_MS_DEFAULT,
    SECURITY_PROTOCOL_MAP_DEFAULT,
};
pub use describe::{ConfigKind, ConfigSource, ConfigSynonym, DescribedConfig};
pub use group::{GroupConfig, RANGE_ASSIGNOR, UNIFORM_ASSIGNOR};
pub use oauthbearer::{
    JwksSource, JwksValidatorOptions, OAuthValidatorConfig, UnsecuredValidatorOptions,
    OAUTHBEARER_LOGIN_MODULE,
};
pub use observability::{LogFormat, ObservabilityConfig, ADMIN_LISTENER_DEFAULT};
pub use parse::{split_host_port, split_key_value};
pub use replication::{ReplicationConfig, MIN_INSYNC_REPLICAS_DEFAULT};
pub use sasl::{
    is_sensitive, parse_jaas, JaasConfig, SaslConfig, SaslMechanism,
    SASL_SERVER_MAX_RECEIVE_SIZE_DEFAULT,
};
pub use security::{ClientAuth, PemSource, SecurityConfig, SslSettings, SSL_SENSITIVE_KEYS};
pub use storage::*;
pub use topic::{
    apply_config_ops, cleanup_deletes, is_list_topic_config, topic_config_broker_synonym,
    topic_config_default, validate_topic_config, validated_overrides, ConfigOp, TopicConfig,
    INTERNAL_SEGMENT_BYTES, TOPIC_CONFIG_NAMES,
};
pub use txn::{TxnConfig, TRANSACTION_VERSION_MAX};

use group::consumer_assignors;
use parse::{
    dirty_ratio, flush_policy, parse, parse_range, timestamp_type, validate_cleanup_policy,
};

/// Where the broker keeps its data unless `--data-dir` or `log.dirs` says
/// otherwise (`shoal tune` looks at the same place).
pub const DEFAULT_DATA_DIR: &str = "./shoal-data";
/// Kafka's `message.max.bytes` default: 1 MiB plus record batch overhead.
pub const MESSAGE_MAX_BYTES_DEFAULT: usize = 1_048_588;
/// Kafka's `socket.request.max.bytes` default: the largest request frame a
/// connection accepts, size prefix excluded.
pub const SOCKET_REQUEST_MAX_BYTES_DEFAULT: usize = 104_857_600;
/// Kafka's `log.retention.hours` default: `RETENTION_MS_DEFAULT` in hours.
pub const RETENTION_HOURS_DEFAULT: i64 = RETENTION_MS_DEFAULT / 3_600_000;
/// Kafka's `log.roll.hours` default: `SEGMENT_MS_DEFAULT` in hours.
pub const ROLL_HOURS_DEFAULT: u64 = SEGMENT_MS_DEFAULT / 3_600_000;
/// Kafka's `log.retention.check.interval.ms` default, 5 minutes.
pub const RETENTION_CHECK_INTERVAL_MS_DEFAULT: u64 = 300_000;
/// Kafka's `log.cleaner.dedupe.buffer.size` default: 128 MiB for the whole
/// broker, divided between the shards (each shard runs its own cleaner).
pub const CLEANER_DEDUPE_BUFFER_BYTES_DEFAULT: u64 = 128 << 20;
/// Smallest `log.cleaner.dedupe.buffer.size` accepted (Kafka's floor for
/// one cleaner thread).
pub const CLEANER_DEDUPE_BUFFER_BYTES_MIN: u64 = 1 << 20;
/// Kafka's `log.cleaner.backoff.ms` default: the pause when no log needs cleaning.
pub const CLEANER_BACKOFF_MS_DEFAULT: u64 = 15_000;
/// Kafka's `offsets.topic.segment.bytes` default: `__consumer_offsets`
/// segments roll sooner than data segments so the cleaner can compact them.
pub const OFFSETS_TOPIC_SEGMENT_BYTES_DEFAULT: u64 = 104_857_600;
/// Kafka's `producer.id.expiration.ms` default, one day: how long a
/// partition remembers an idle idempotent producer.
pub const PRODUCER_ID_EXPIRATION_MS_DEFAULT: i64 = 86_400_000;
/// Kafka's `producer.id.expiration.check.interval.ms` default, 10 minutes.
pub const PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS_DEFAULT: u64 = 600_000;
/// Kafka's `log.flush.offset.checkpoint.interval.ms` default.
pub const CHECKPOINT_INTERVAL_MS_DEFAULT: u64 = 60_000;
/// Fsync interval for `flush.policy=interval` when `flush.ms` is not set.
pub const FLUSH_INTERVAL_MS_DEFAULT: u64 = 1000;
/// Kafka's `fetch.max.bytes` broker default (55 MiB).
pub const FETCH_MAX_BYTES_DEFAULT: usize = 57_671_680;
/// Kafka's `max.incremental.fetch.session.cache.slots` default: fetch
/// sessions the broker keeps, divided between the shards.
pub const MAX_INCREMENTAL_FETCH_SESSION_CACHE_SLOTS_DEFAULT: usize = 1000;
/// Kafka's `log.message.timestamp.before.max.ms` default: no lower bound on
/// a CreateTime timestamp.
pub const TIMESTAMP_BEFORE_MAX_MS_DEFAULT: i64 = i64::MAX;
/// Kafka's `log.message.timestamp.after.max.ms` default since 4.0 (KIP-1030):
/// a CreateTime timestamp at most one hour ahead of the broker's clock, so a
/// producer sending microseconds or nanoseconds is refused instead of
/// pinning retention for centuries.
pub const TIMESTAMP_AFTER_MAX_MS_DEFAULT: i64 = 3_600_000;
/// `shard.spin.before.park.us` default: how long an idle shard keeps
/// polling before it sleeps in the kernel. See `shard::stall` and the
/// `cross_shard` bench: a hop to a sleeping shard costs its wake-up.
pub const SHARD_SPIN_BEFORE_PARK_US_DEFAULT: u64 = 0;
/// Upper bound on the spin: past a millisecond an idle broker burns a core.
pub const SHARD_SPIN_BEFORE_PARK_US_MAX: u64 = 1000;
/// Broker ids a node's shards take in shard-aware mode: `node.id` times this
/// plus the shard. A power of ten so that `1003` reads as "node 1, shard 3".
pub const SHARDS_PER_NODE_MAX: usize = 1000;
/// Largest `node.id` whose shards' broker ids fit in an `i32`.
pub const NODE_ID_MAX_SHARD_AWARE: i32 =
    (i32::MAX - (SHARDS_PER_NODE_MAX as i32 - 1)) / SHARDS_PER_NODE_MAX as i32;
/// Highest port number, for `listener.shard.port.base` plus the shard count.
const PORT_MAX: u32 = 65_535;
/// Kafka's longest legal topic name.
pub const TOPIC_NAME_LENGTH_MAX: usize = 249;
/// Upper bound on partitions per topic: each partition holds open files and a
/// tail cache on its shard, so a typo like 1000000 is refused, not obeyed.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;

/// Kafka's `max.connections` and `max.connections.per.ip` default: `Int.MaxValue`, no limit.
pub const MAX_CONNECTIONS_DEFAULT: usize = i32::MAX as usize;
/// Kafka's `connections.max.idle.ms` default, 10 minutes.
pub const CONNECTIONS_MAX_IDLE_MS_DEFAULT: u64 = 600_000;
/// Kafka's `queued.max.requests` default.
pub const QUEUED_MAX_REQUESTS_DEFAULT: usize = 500;
/// Kafka's `max.connection.creation.rate` default: `Int.MaxValue`, no limit.
pub const MAX_CONNECTION_CREATION_RATE_DEFAULT: u32 = i32::MAX as u32;
/// Kafka's `quota.window.num` default.
pub const QUOTA_WINDOW_NUM_DEFAULT: usize = 11;
/// Kafka's `quota.window.size.seconds` default.
pub const QUOTA_WINDOW_SIZE_SECONDS_DEFAULT: u64 = 1;

/// How many connections and requests the broker holds, by Kafka's names and
/// with Kafka's defaults; `server::limits` enforces them.
///
/// - `max.connections`: connections of all shards together. At the limit
///   the broker stops accepting until one closes (new ones wait in the
///   kernel's backlog), as Kafka blocks its acceptor.
/// - `max.connections.per.ip`: connections from one client address; one
///   past it is closed right after accept. 0 is allowed only with overrides
///   (only the listed hosts may connect), as in Kafka.
/// - `max.connections.per.ip.overrides`: `host:count,host:count`, a host
///   being an address or a name resolved at start.
/// - `connections.max.idle.ms`: a connection that sends nothing and has no
///   request in flight for this long is closed.
/// - `queued.max.requests`: requests read and not yet handled, broker-wide;
///   each shard takes an equal share (rounded up) and stops reading its
///   connections while its share is in use.
/// - `max.connection.creation.rate`: new connections per second, all
///   shards together; past it the broker waits before serving the next
///   one, as Kafka's acceptor does (at most one quota window).
/// - `quota.window.num`, `quota.window.size.seconds`: the windows client
///   quotas and connection rates are measured over (`quota::rate`).
/// - `controller.quota.window.num`, `controller.quota.window.size.seconds`:
///   the same for `controller_mutation_rate` (KIP-599), whose token bucket
///   holds `num * size * rate` mutations (`quota::mutation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionConfig {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_connections_per_ip_overrides: BTreeMap<String, usize>,
    pub connections_max_idle_ms: u64,
    pub queued_max_requests: usize,
    pub max_connection_creation_rate: u32,
    pub quota_window_num: usize,
    pub quota_window_size_seconds: u64,
    pub controller_quota_window_num: usize,
    pub controller_quota_window_size_seconds: u64,
}

impl Default for ConnectionConfig {
    fn default() -> ConnectionConfig {
        ConnectionConfig {
            max_connections: MAX_CONNECTIONS_DEFAULT,
            max_connections_per_ip: MAX_CONNECTIONS_DEFAULT,
            max_connections_per_ip_overrides: BTreeMap::new(),
            connections_max_idle_ms: CONNECTIONS_MAX_IDLE_MS_DEFAULT,
            queued_max_requests: QUEUED_MAX_REQUESTS_DEFAULT,
            max_connection_creation_rate: MAX_CONNECTION_CREATION_RATE_DEFAULT,
            quota_window_num: QUOTA_WINDOW_NUM_DEFAULT,
            quota_window_size_seconds: QUOTA_WINDOW_SIZE_SECONDS_DEFAULT,
            controller_quota_window_num: QUOTA_WINDOW_NUM_DEFAULT,
            controller_quota_window_size_seconds: QUOTA_WINDOW_SIZE_SECONDS_DEFAULT,
        }
    }
}

impl ConnectionConfig {
    /// Applies one of its keys; `Ok(false)` when `key` is not one of them.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        let count = |value: &str| parse_range(key, value, 0, i32::MAX as usize);
        match key {
            "max.connections" => self.max_connections = count(value)?,
            "max.connections.per.ip" => self.max_connections_per_ip = count(value)?,
            "max.connections.per.ip.overrides" => {
                let mut overrides = BTreeMap::new();
                for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                    let (host, limit) = entry.rsplit_once(':').ok_or_else(|| {
                        ConfigError(format!(
                            "invalid value {value} for configuration {key}: expected host:count"
                        ))
                    })?;
                    overrides.insert(host.trim().to_string(), count(limit.trim())?);
                }
                self.max_connections_per_ip_overrides = overrides;
            }
            "connections.max.idle.ms" => {
                self.connections_max_idle_ms = parse_range(key, value, 1, i64::MAX as u64)?
            }
            "queued.max.requests" => {
                self.queued_max_requests = parse_range(key, value, 1, i32::MAX as usize)?
            }
            "max.connection.creation.rate" => {
                self.max_connection_creation_rate = parse_range(key, value, 0, i32::MAX as u32)?
            }
            "quota.window.num" => {
                self.quota_window_num = parse_range(key, value, 1, i32::MAX as usize)?
            }
            "quota.window.size.seconds" => {
                self.quota_window_size_seconds = parse_range(key, value, 1, i32::MAX as u64)?
            }
            "controller.quota.window.num" => {
                self.controller_quota_window_num = parse_range(key, value, 1, i32::MAX as usize)?
            }
            "controller.quota.window.size.seconds" => {
                self.controller_quota_window_size_seconds =
                    parse_range(key, value, 1, i32::MAX as u64)?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks what no single key can: Kafka refuses a per-IP limit of 0
    /// without overrides, which would let no client in.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.max_connections_per_ip == 0 && self.max_connections_per_ip_overrides.is_empty() {
            return Err(ConfigError(
                "max.connections.per.ip can be 0 only if max.connections.per.ip.overrides is set"
                    .to_string(),
            ));
        }
        Ok(())
    }
}

/// A config value that failed validation; becomes INVALID_CONFIG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Broker-wide settings (`server.properties` plus the command line).
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `host:port` of the listener clients are served on
    /// (`ClusterConfig::broker_listener`), kept in step with `cluster`.
    pub listen: String,
    /// `host:port` clients are told to connect to, kept in step with `cluster`.
    pub advertise: String,
    pub data_dir: PathBuf,
    pub shards: usize,
    pub node_id: i32,
    pub auto_create_topics_enable: bool,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub message_max_bytes: usize,
    pub socket_request_max_bytes: usize,
    pub log_segment_bytes: u64,
    pub log_roll_ms: u64,
    pub log_retention_ms: i64,
    pub log_retention_bytes: i64,
    pub log_retention_check_interval_ms: u64,
    pub log_index_interval_bytes: u32,
    pub log_flush_policy: String,
    pub log_flush_interval_ms: u64,
    pub log_flush_offset_checkpoint_interval_ms: u64,
    pub producer_id_expiration_ms: i64,
    pub producer_id_expiration_check_interval_ms: u64,
    pub fetch_max_bytes: usize,
    /// `max.incremental.fetch.session.cache.slots`: fetch sessions kept by
    /// all shards together.
    pub max_incremental_fetch_session_cache_slots: usize,
    /// shoal's own: `shard.spin.before.park.us`.
    pub shard_spin_before_park_us: u64,
    /// shoal's own `listener.shard.aware`: every shard also listens on a
    /// port of its own and clients see each shard as a broker
    /// (`metadata::brokers`), so they send each partition's requests to the
    /// shard that owns it.
    pub listener_shard_aware: bool,
    /// shoal's own `listener.shard.port.base`: shard `s` listens on this
    /// port plus `s`; unset, the listener's port plus one.
    pub listener_shard_port_base: Option<u16>,
    pub log_message_timestamp_type: String,
    /// `log.cleanup.policy`: the default `cleanup.policy` of topics.
    pub log_cleanup_policy: String,
    /// `log.cleaner.enable`: whether the shards run their cleaners.
    pub log_cleaner_enable: bool,
    /// `log.cleaner.dedupe.buffer.size`: bytes of key→offset maps of all
    /// shards together.
    pub log_cleaner_dedupe_buffer_size: u64,
    /// `log.cleaner.backoff.ms`: the pause when no log needs cleaning.
    pub log_cleaner_backoff_ms: u64,
    /// `log.cleaner.io.max.bytes.per.second`: bytes the cleaners of all
    /// shards together read and write per second.
    pub log_cleaner_io_max_bytes_per_second: f64,
    /// `log.cleaner.min.cleanable.ratio`: default `min.cleanable.dirty.ratio`.
    pub log_cleaner_min_cleanable_ratio: f64,
    /// `log.cleaner.min.compaction.lag.ms`: default `min.compaction.lag.ms`.
    pub log_cleaner_min_compaction_lag_ms: i64,
    /// `log.cleaner.max.compaction.lag.ms`: default `max.compaction.lag.ms`.
    pub log_cleaner_max_compaction_lag_ms: i64,
    /// `log.cleaner.delete.retention.ms`: default `delete.retention.ms`.
    pub log_cleaner_delete_retention_ms: i64,
    /// `offsets.topic.segment.bytes`: `segment.bytes` of `__consumer_offsets`
    /// when it is created.
    pub offsets_topic_segment_bytes: u64,
    pub log_message_timestamp_before_max_ms: i64,
    pub log_message_timestamp_after_max_ms: i64,
    /// The group coordinator's settings (`group.*`, `offsets.*`).
    pub group: GroupConfig,
    /// The transaction coordinator's settings (`transaction.*`).
    pub txn: TxnConfig,
    /// Replication's settings (`min.insync.replicas`, `replica.*`...).
    pub replication: ReplicationConfig,
    /// `max.connections`, `connections.max.idle.ms` and the other bounds at the edge.
    pub connections: ConnectionConfig,
    /// Roles, quorum, named listeners and rack (`process.roles`, `listeners`...).
    pub cluster: ClusterConfig,
    /// `authorizer.class.name`, `super.users`, `allow.everyone.if.no.acl.found`.
    pub authorizer: AuthorizerConfig,
    /// SASL mechanisms, JAAS users and bounds (`sasl.*`).
    pub sasl: SaslConfig,
    /// The TLS listeners' `ssl.*` keys, global and per listener.
    pub security: SecurityConfig,
    /// The admin listener, metrics and log format.
    pub observability: ObservabilityConfig,
    /// Every key the operator set, as given, for DescribeConfigs.
    pub explicit: BTreeMap<String, String>,
}

impl BrokerConfig {
    /// Defaults as Kafka ships them, for the given data directory and shard count.
    pub fn new(data_dir: PathBuf, shards: usize) -> BrokerConfig {
        BrokerConfig {
            listen: "127.0.0.1:9092".to_string(),
            advertise: "127.0.0.1:9092".to_string(),
            data_dir,
            shards,
            node_id: 1,
            auto_create_topics_enable: true,
            num_partitions: 1,
            default_replication_factor: 1,
            message_max_bytes: MESSAGE_MAX_BYTES_DEFAULT,
            socket_request_max_bytes: SOCKET_REQUEST_MAX_BYTES_DEFAULT,
            log_segment_bytes: SEGMENT_BYTES_DEFAULT,
            log_roll_ms: SEGMENT_MS_DEFAULT,
            log_retention_ms: RETENTION_MS_DEFAULT,
            log_retention_bytes: RETENTION_BYTES_DEFAULT,
            log_retention_check_interval_ms: RETENTION_CHECK_INTERVAL_MS_DEFAULT,
            log_index_interval_bytes: INDEX_INTERVAL_BYTES_DEFAULT,
            log_flush_policy: "sync".to_string(),
            log_flush_interval_ms: FLUSH_INTERVAL_MS_DEFAULT,
            log_flush_offset_checkpoint_interval_ms: CHECKPOINT_INTERVAL_MS_DEFAULT,
            producer_id_expiration_ms: PRODUCER_ID_EXPIRATION_MS_DEFAULT,
            producer_id_expiration_check_interval_ms:
                PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS_DEFAULT,
            fetch_max_bytes: FETCH_MAX_BYTES_DEFAULT,
            max_incremental_fetch_session_cache_slots:
                MAX_INCREMENTAL_FETCH_SESSION_CACHE_SLOTS_DEFAULT,
            shard_spin_before_park_us: SHARD_SPIN_BEFORE_PARK_US_DEFAULT,
            listener_shard_aware: false,
            listener_shard_port_base: None,
            log_message_timestamp_type: "CreateTime".to_string(),
            log_cleanup_policy: "delete".to_string(),
            log_cleaner_enable: true,
            log_cleaner_dedupe_buffer_size: CLEANER_DEDUPE_BUFFER_BYTES_DEFAULT,
            log_cleaner_backoff_ms: CLEANER_BACKOFF_MS_DEFAULT,
            log_cleaner_io_max_bytes_per_second: f64::MAX,
            log_cleaner_min_cleanable_ratio: MIN_CLEANABLE_DIRTY_RATIO_DEFAULT,
            log_cleaner_min_compaction_lag_ms: MIN_COMPACTION_LAG_MS_DEFAULT,
            log_cleaner_max_compaction_lag_ms: MAX_COMPACTION_LAG_MS_DEFAULT,
            log_cleaner_delete_retention_ms: DELETE_RETENTION_MS_DEFAULT,
            offsets_topic_segment_bytes: OFFSETS_TOPIC_SEGMENT_BYTES_DEFAULT,
            log_message_timestamp_before_max_ms: TIMESTAMP_BEFORE_MAX_MS_DEFAULT,
            log_message_timestamp_after_max_ms: TIMESTAMP_AFTER_MAX_MS_DEFAULT,
            group: GroupConfig::default(),
            txn: TxnConfig::default(),
            replication: ReplicationConfig::default(),
            connections: ConnectionConfig::default(),
            authorizer: AuthorizerConfig::default(),
            cluster: ClusterConfig::default(),
            sasl: SaslConfig::default(),
            security: SecurityConfig::default(),
            observability: ObservabilityConfig::default(),
            explicit: BTreeMap::new(),
        }
    }

    /// Applies one `key=value` by Kafka's broker config name. Unknown keys are
    /// refused so a typo never silently does nothing.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let value = value.trim();
        // Not kept in `explicit`: some are secrets (`SSL_SENSITIVE_KEYS`).
        if self.security.set(key, value)? {
            return Ok(());
        }
        match key {
            "listeners" => self.set_cluster(key, value)?,
            "listen" => self.set_cluster(key, value)?,
            "advertised.listeners" => self.set_cluster(key, value)?,
            "advertise" => self.set_cluster(key, value)?,
            "process.roles" => self.set_cluster(key, value)?,
            "controller.quorum.voters" => self.set_cluster(key, value)?,
            "controller.quorum.bootstrap.servers" => self.set_cluster(key, value)?,
            "listener.security.protocol.map" => self.set_cluster(key, value)?,
            "controller.listener.names" => self.set_cluster(key, value)?,
            "inter.broker.listener.name" => self.set_cluster(key, value)?,
            "security.inter.broker.protocol" => self.set_cluster(key, value)?,
            "broker.rack" => self.set_cluster(key, value)?,
            "controller.quorum.election.timeout.ms" => self.set_cluster(key, value)?,
            "controller.quorum.fetch.timeout.ms" => self.set_cluster(key, value)?,
            "controller.quorum.election.backoff.max.ms" => self.set_cluster(key, value)?,
            "broker.session.timeout.ms" => self.set_cluster(key, value)?,
            "broker.heartbeat.interval.ms" => self.set_cluster(key, value)?,
            "metadata.log.max.record.bytes.between.snapshots" => self.set_cluster(key, value)?,
            "log.dirs" | "log.dir" => self.data_dir = PathBuf::from(value),
            "node.id" | "broker.id" => self.node_id = parse(key, value)?,
            "auto.create.topics.enable" => self.auto_create_topics_enable = parse(key, value)?,
            "num.partitions" => {
                self.num_partitions = parse_range(key, value, 1, PARTITIONS_PER_TOPIC_MAX)?
            }
            "default.replication.factor" => {
                self.default_replication_factor = parse_range(key, value, 1, i16::MAX)?
            }
            "message.max.bytes" => {
                self.message_max_bytes = parse_range(key, value, 0, i32::MAX as usize)?
            }
            "socket.request.max.bytes" => {
                self.socket_request_max_bytes = parse_range(key, value, 1, i32::MAX as usize)?
            }
            _ if self.connections.set(key, value)? => {}
            _ if self.replication.set(key, value)? => {}
            _ if self.authorizer.set(key, value)? => {}
            _ if self.sasl.set(key, value)? => {}
            _ if self.observability.set(key, value)? => {}
            "log.segment.bytes" => {
                self.log_segment_bytes = parse_range(key, value, 14, i32::MAX as u64)?
            }
            // The finer unit wins whatever the order, as in Kafka.
            "log.roll.ms" => self.log_roll_ms = parse_range(key, value, 1, u64::MAX)?,
            "log.roll.hours" => {
                let roll_ms = parse_range::<u64>(key, value, 1, u64::MAX / 3_600_000)? * 3_600_000;
                if !self.explicit.contains_key("log.roll.ms") {
                    self.log_roll_ms = roll_ms;
                }
            }
            "log.retention.ms" => self.log_retention_ms = parse(key, value)?,
            "log.retention.minutes" => {
                let retention_ms = parse::<i64>(key, value)?.saturating_mul(60_000);
                if !self.explicit.contains_key("log.retention.ms") {
                    self.log_retention_ms = retention_ms;
                }
            }
            "log.retention.hours" => {
                let retention_ms = parse::<i64>(key, value)?.saturating_mul(3_600_000);
                let finer = ["log.retention.ms", "log.retention.minutes"];
                if !finer.iter().any(|key| self.explicit.contains_key(*key)) {
                    self.log_retention_ms = retention_ms;
                }
            }
            "log.retention.bytes" => {
                self.log_retention_bytes = parse_range(key, value, -1, i64::MAX)?
            }
            "log.retention.check.interval.ms" => {
                self.log_retention_check_interval_ms = parse_range(key, value, 1, u64::MAX)?
            }
            "log.index.interval.bytes" => {
                self.log_index_interval_bytes = parse_range(key, value, 0, i32::MAX as u32)?
            }
            "log.flush.policy" => {
                flush_policy(value, self.log_flush_interval_ms)?;
                self.log_flush_policy = value.to_string();
            }
            "log.flush.interval.ms" => {
                self.log_flush_interval_ms = parse_range(key, value, 1, u64::MAX)?
            }
            "log.flush.offset.checkpoint.interval.ms" => {
                self.log_flush_offset_checkpoint_interval_ms = parse_range(key, value, 1, u64::MAX)?
            }
            "producer.id.expiration.ms" => {
                self.producer_id_expiration_ms = parse_range(key, value, 1, i64::from(i32::MAX))?
            }
            "producer.id.expiration.check.interval.ms" => {
                self.producer_id_expiration_check_interval_ms =
                    parse_range(key, value, 1, i32::MAX as u64)?
            }
            "fetch.max.bytes" => {
                self.fetch_max_bytes = parse_range(key, value, 0, i32::MAX as usize)?
            }
            "max.incremental.fetch.session.cache.slots" => {
                self.max_incremental_fetch_session_cache_slots =
                    parse_range(key, value, 0, i32::MAX as usize)?
            }
            "shard.spin.before.park.us" => {
                self.shard_spin_before_park_us =
                    parse_range(key, value, 0, SHARD_SPIN_BEFORE_PARK_US_MAX)?
            }
            "listener.shard.aware" => self.listener_shard_aware = parse(key, value)?,
            "listener.shard.port.base" => {
                self.listener_shard_port_base = Some(parse_range(key, value, 1, u16::MAX)?)
            }
            "log.message.timestamp.type" => {
                timestamp_type(value)?;
                self.log_message_timestamp_type = value.to_string();
            }
            "log.cleanup.policy" => {
                validate_cleanup_policy(value)?;
                self.log_cleanup_policy = value.to_string();
            }
            "log.cleaner.enable" => self.log_cleaner_enable = parse(key, value)?,
            "log.cleaner.dedupe.buffer.size" => {
                self.log_cleaner_dedupe_buffer_size =
                    parse_range(key, value, CLEANER_DEDUPE_BUFFER_BYTES_MIN, i64::MAX as u64)?
            }
            "log.cleaner.backoff.ms" => {
                self.log_cleaner_backoff_ms = parse_range(key, value, 0, i64::MAX as u64)?
            }
            "log.cleaner.io.max.bytes.per.second" => {
                let rate: f64 = parse(key, value)?;
                if rate.is_nan() || rate <= 0.0 {
                    return Err(ConfigError(format!(
                        "invalid value {value} for configuration {key}: value must be above 0"
                    )));
                }
                self.log_cleaner_io_max_bytes_per_second = rate;
            }
            "log.cleaner.min.cleanable.ratio" => {
                self.log_cleaner_min_cleanable_ratio = dirty_ratio(key, value)?
            }
            "log.cleaner.min.compaction.lag.ms" => {
                self.log_cleaner_min_compaction_lag_ms = parse_range(key, value, 0, i64::MAX)?
            }
            "log.cleaner.max.compaction.lag.ms" => {
                self.log_cleaner_max_compaction_lag_ms = parse_range(key, value, 1, i64::MAX)?
            }
            "log.cleaner.delete.retention.ms" => {
                self.log_cleaner_delete_retention_ms = parse_range(key, value, 0, i64::MAX)?
            }
            "log.message.timestamp.before.max.ms" => {
                self.log_message_timestamp_before_max_ms = parse_range(key, value, 0, i64::MAX)?
            }
            "log.message.timestamp.after.max.ms" => {
                self.log_message_timestamp_after_max_ms = parse_range(key, value, 0, i64::MAX)?
            }
            "group.min.session.timeout.ms" => {
                self.group.min_session_timeout_ms = parse_range(key, value, 1, i32::MAX)?
            }
            "group.max.session.timeout.ms" => {
                self.group.max_session_timeout_ms = parse_range(key, value, 1, i32::MAX)?
            }
            "group.max.size" => {
                self.group.max_size = parse_range(key, value, 1, i32::MAX as usize)?
            }
            "group.initial.rebalance.delay.ms" => {
                self.group.initial_rebalance_delay_ms = parse_range(key, value, 0, i32::MAX)?
            }
            "group.consumer.session.timeout.ms" => {
                self.group.consumer_session_timeout_ms = parse_range(key, value, 1, i32::MAX)?
            }
            "group.consumer.heartbeat.interval.ms" => {
                self.group.consumer_heartbeat_interval_ms = parse_range(key, value, 1, i32::MAX)?
            }
            "group.consumer.max.size" => {
                self.group.consumer_max_size = parse_range(key, value, 1, i32::MAX as usize)?
            }
            "group.consumer.assignors" => {
                self.group.consumer_assignors = consumer_assignors(value)?
            }
            "offsets.retention.minutes" => {
                self.group.offsets_retention_ms =
                    parse_range::<i64>(key, value, 1, i64::MAX / 60_000)? * 60_000
            }
            "offsets.retention.check.interval.ms" => {
                self.group.offsets_retention_check_interval_ms =
                    parse_range(key, value, 1, i64::MAX)?
            }
            "offset.metadata.max.bytes" => {
                self.group.offset_metadata_max_bytes =
                    parse_range(key, value, 0, i32::MAX as usize)?
            }
            "offsets.topic.segment.bytes" => {
                self.offsets_topic_segment_bytes = parse_range(key, value, 14, i32::MAX as u64)?
            }
            "offsets.topic.num.partitions" => {
                self.group.offsets_topic_num_partitions =
                    parse_range(key, value, 1, PARTITIONS_PER_TOPIC_MAX)?
            }
            "transaction.max.timeout.ms" => {
                self.txn.max_timeout_ms = parse_range(key, value, 1, i32::MAX)?
            }
            "transactional.id.expiration.ms" => {
                self.txn.id_expiration_ms = parse_range(key, value, 1, i64::from(i32::MAX))?
            }
            "transaction.abort.timed.out.transaction.cleanup.interval.ms" => {
                self.txn.abort_timed_out_interval_ms =
                    parse_range(key, value, 1, i64::from(i32::MAX))?
            }
            "transaction.remove.expired.transaction.cleanup.interval.ms" => {
                self.txn.remove_expired_interval_ms =
                    parse_range(key, value, 1, i64::from(i32::MAX))?
            }
            "transaction.state.log.num.partitions" => {
                self.txn.state_log_num_partitions =
                    parse_range(key, value, 1, PARTITIONS_PER_TOPIC_MAX)?
            }
            "transaction.state.log.segment.bytes" => {
                self.txn.state_log_segment_bytes = parse_range(key, value, 1, i32::MAX as u64)?
            }
            "transaction.partition.verification.enable" => {
                self.txn.partition_verification_enable = parse(key, value)?
            }
            "transaction.version" => {
                self.txn.transaction_version = parse_range(key, value, 0, TRANSACTION_VERSION_MAX)?
            }
            _ => return Err(ConfigError(format!("unknown broker config {key}"))),
        }
        // A secret is kept as set, never as given: nothing shows it.
        let shown = if is_sensitive(key) { "[hidden]" } else { value };
        self.explicit.insert(key.to_string(), shown.to_string());
        Ok(())
    }

    /// Applies a key of `ClusterConfig` and keeps the client listener's
    /// addresses in step with it.
    fn set_cluster(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        self.cluster.set(key, value)?;
        if let Some(listener) = self.cluster.broker_listener() {
            self.listen = listener.address();
        }
        if let Some(listener) = self.cluster.advertised_broker_listener() {
            self.advertise = listener.address();
        }
        Ok(())
    }

    /// Applies a `server.properties` file, if any, then `KEY=VALUE`
    /// overrides, as `serve` and `storage format` take them.
    pub fn apply_file_and_overrides(
        &mut self,
        path: Option<&Path>,
        overrides: &[String],
    ) -> Result<(), ConfigError> {
        if let Some(path) = path {
            let text = std::fs::read_to_string(path)
                .map_err(|error| ConfigError(format!("cannot read {}: {error}", path.display())))?;
            self.load_properties(&text)?;
        }
        for item in overrides {
            let (key, value) = split_key_value(item)
                .ok_or_else(|| ConfigError(format!("--override expects KEY=VALUE, got {item}")))?;
            self.set(key, value)?;
        }
        Ok(())
    }

    /// Checks the rules that span keys, once every key is known: Kafka's
    /// cluster rules (`ClusterConfig::check`) and shoal's one data directory.
    pub fn check_cluster(&self) -> Result<(), ConfigError> {
        let dirs = self.data_dir.to_string_lossy();
        if dirs.contains(',') {
            return Err(ConfigError(format!(
                "shoal keeps its data in one directory; log.dirs lists several: {dirs}"
            )));
        }
        self.replication.check()?;
        let node_id_set = ["node.id", "broker.id"]
            .iter()
            .any(|key| self.explicit.contains_key(*key));
        self.cluster.check(self.node_id, node_id_set)?;
        self.check_sasl()?;
        self.check_ssl()
    }

    /// Every SASL listener's mechanisms and users are set (a controller
    /// listener's gate serves PLAIN: `quorum::gate`); a node with other
    /// nodes has its own login for the inter-broker and controller
    /// listeners (`ClientSecurity`: the mechanism and JAAS username and
    /// password, or the truststore).
    fn check_sasl(&self) -> Result<(), ConfigError> {
        let protocols = self.cluster.effective_security_protocol_map();
        let is_sasl = |name: &str| protocols.get(name).is_some_and(|p| p.starts_with("SASL_"));
        if let Some(listener) = self.cluster.controller_listener() {
            if is_sasl(&listener.name) {
                self.sasl.check_listener(&listener.name)?;
                let mechanisms = self.sasl.mechanisms_of(&listener.name);
                if !mechanisms.contains(&SaslMechanism::Plain) {
                    return Err(ConfigError(format!(
                        "controller listener {} enables {}: it serves PLAIN only (SCRAM credentials live in the metadata log, which the controllers must reach each other to read); enable PLAIN on it",
                        listener.name,
                        mechanisms.iter().map(|m| m.name()).collect::<Vec<_>>().join(",")
                    )));
                }
            }
        }
        let lone_node = !self.cluster.kraft()
            || (self.cluster.quorum_voters.len() <= 1
                && self.cluster.has_role(ProcessRole::Controller));
        if !lone_node {
            ClientSecurity::inter_broker(self).map_err(|error| {
                ConfigError(format!("connections to the other brokers: {}", error.0))
            })?;
            ClientSecurity::controller(self).map_err(|error| {
                ConfigError(format!("connections to the controllers: {}", error.0))
            })?;
        }
        for listener in self.cluster.client_listeners() {
            if is_sasl(&listener.name) {
                self.sasl.check_listener(&listener.name)?;
            }
        }
        Ok(())
    }

    /// Every TLS listener (SSL, SASL_SSL) has its key and certificate.
    fn check_ssl(&self) -> Result<(), ConfigError> {
        let protocols = self.cluster.effective_security_protocol_map();
        let controller = self.cluster.controller_listener();
        for listener in self.cluster.client_listeners().chain(controller) {
            if protocols
                .get(&listener.name)
                .is_some_and(|p| p.ends_with("SSL"))
            {
                self.security.ssl(&listener.name)?;
            }
        }
        Ok(())
    }

    /// Applies a Java-properties file: `key=value` lines, `#`/`!` comments.
    pub fn load_properties(&mut self, text: &str) -> Result<(), ConfigError> {
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let (key, value) = split_key_value(line)
                .ok_or_else(|| ConfigError(format!("line {}: expected key=value", number + 1)))?;
            self.set(key, value)?;
        }
        Ok(())
    }

    /// `host` and `port` clients are told to connect to.
    pub fn advertised_host_port(&self) -> (String, i32) {
        split_host_port(&self.advertise).unwrap_or_else(|| ("127.0.0.1".to_string(), 9092))
    }

    /// The first shard's own port in shard-aware mode: `listener.shard.port.base`,
    /// or the listener's port plus one.
    pub fn shard_port_base(&self) -> i32 {
        match self.listener_shard_port_base {
            Some(base) => i32::from(base),
            None => split_host_port(&self.listen).map_or(9093, |(_, port)| port + 1),
        }
    }

    /// Where shard `shard`'s own listener binds in shard-aware mode: the
    /// listener's host, the shard's port.
    pub fn shard_listen_address(&self, shard: usize) -> String {
        let host =
            split_host_port(&self.listen).map_or_else(|| "127.0.0.1".to_string(), |(h, _)| h);
        let port = self.shard_port_base() + shard as i32;
        if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }

    /// Checks what shard-aware mode needs of the final config (after the
    /// command line): a broker id for every shard (`metadata::brokers`) and
    /// a port for every shard that is not the shared listener's.
    pub fn check_shard_listeners(&self) -> Result<(), ConfigError> {
        if !self.listener_shard_aware {
            return Ok(());
        }
        // A node's shards are brokers `node.id * 1000 + shard`, which could
        // be another node's id, and other nodes' shard ports are in no
        // registration yet (issue 14, increment 4).
        if self.cluster.quorum_voters.len() > 1 {
            return Err(ConfigError(format!(
                "listener.shard.aware=true runs on a single node only, got {} voters in controller.quorum.voters",
                self.cluster.quorum_voters.len()
            )));
        }
        if self.cluster.client_listeners().count() > 1 {
            return Err(ConfigError(
                "listener.shard.aware=true serves one client listener: the shards' own ports belong to it".to_string(),
            ));
        }
        if self.shards > SHARDS_PER_NODE_MAX {
            return Err(ConfigError(format!(
                "listener.shard.aware=true supports at most {SHARDS_PER_NODE_MAX} shards (broker ids are node.id * {SHARDS_PER_NODE_MAX} + shard), got {}",
                self.shards
            )));
        }
        if !(0..=NODE_ID_MAX_SHARD_AWARE).contains(&self.node_id) {
            return Err(ConfigError(format!(
                "listener.shard.aware=true needs node.id in [0, {NODE_ID_MAX_SHARD_AWARE}] (broker ids are node.id * {SHARDS_PER_NODE_MAX} + shard), got {}",
                self.node_id
            )));
        }
        let base = self.shard_port_base();
        let last = base as u32 + self.shards as u32 - 1;
        if last > PORT_MAX {
            return Err(ConfigError(format!(
                "listener.shard.port.base {base} + {} shards goes past port {PORT_MAX}",
                self.shards
            )));
        }
        if let Some((_, port)) = split_host_port(&self.listen) {
            if (base..=last as i32).contains(&port) {
                return Err(ConfigError(format!(
                    "the shards' own ports {base}..={last} (listener.shard.port.base) include the listener's port {port}"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_names_override_defaults() {
        let mut config = BrokerConfig::new(PathBuf::from("/tmp/x"), 2);
        assert_eq!(config.message_max_bytes, 1_048_588);
        config.set("num.partitions", "3").unwrap();
        config.set("auto.create.topics.enable", "false").unwrap();
        config.set("log.roll.hours", "2").unwrap();
        config
            .load_properties(
                "# comment\nmessage.max.bytes = 2000\nlisteners=PLAINTEXT://127.0.0.1:9999\n",
            )
            .unwrap();
        assert_eq!(config.num_partitions, 3);
        assert!(!config.auto_create_topics_enable);
        assert_eq!(config.log_roll_ms, 7_200_000);
        assert_eq!(config.message_max_bytes, 2000);
        assert_eq!(config.listen, "127.0.0.1:9999");
        assert!(config.set("no.such.key", "1").is_err());
        assert!(config.set("num.partitions", "zero").is_err());
        assert!(config.set("num.partitions", "0").is_err());
    }

    #[test]
    fn host_port_parsing() {
        assert_eq!(
            split_host_port("127.0.0.1:9092"),
            Some(("127.0.0.1".into(), 9092))
        );
        assert_eq!(split_host_port("[::1]:9092"), Some(("::1".into(), 9092)));
        assert_eq!(split_host_port("nope"), None);
        assert_eq!(split_host_port("h:0"), None);
    }

    #[test]
    fn shard_listeners_follow_the_listener_and_are_checked() {
        let mut config = BrokerConfig::new(PathBuf::from("/tmp/x"), 3);
        config.listen = "127.0.0.1:7000".to_string();
        assert!(
            config.check_shard_listeners().is_ok(),
            "off: nothing to check"
        );
        config.set("listener.shard.aware", "true").unwrap();
        assert_eq!(config.shard_port_base(), 7001);
        assert_eq!(config.shard_listen_address(2), "127.0.0.1:7003");
        assert!(config.check_shard_listeners().is_ok());
        config.set("listener.shard.port.base", "6999").unwrap();
        let error = config.check_shard_listeners().unwrap_err();
        assert!(
            error.0.contains("include the listener's port 7000"),
            "{error}"
        );
        config.set("listener.shard.port.base", "65534").unwrap();
        assert!(config.check_shard_listeners().is_err(), "65534 + 3 shards");
        config.set("listener.shard.port.base", "8000").unwrap();
        assert_eq!(config.shard_listen_address(1), "127.0.0.1:8001");
        config.node_id = -1;
        assert!(config.check_shard_listeners().is_err());
        config.node_id = 7;
        assert!(config.check_shard_listeners().is_ok());
        config
            .set("controller.quorum.voters", "7@h:9093,8@h:9093")
            .unwrap();
        let error = config.check_shard_listeners().unwrap_err();
        assert!(error.0.contains("single node only"), "{error}");
        config.set("controller.quorum.voters", "7@h:9093").unwrap();
        assert!(config.check_shard_listeners().is_ok());
        config.shards = 1001;
        assert!(config.check_shard_listeners().is_err());
        config.listen = "[::1]:7000".to_string();
        assert_eq!(config.shard_listen_address(0), "[::1]:8000");
        assert!(config.set("listener.shard.port.base", "0").is_err());
        assert!(config.set("listener.shard.aware", "yes").is_err());
    }
}
