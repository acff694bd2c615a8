//! The broker configs shoal honours as Kafka's DescribeConfigs lists a
//! broker's: each by Kafka's name with its type, its value as Kafka would
//! print it, where the value comes from, and its synonyms in Kafka's order
//! of precedence (`ConfigHelper.createBrokerConfigEntry`).
//!
//! Invariant: every key `BrokerConfig::set` accepts is a row here, or an
//! alias of one (`ALIASES`); a test reads `config.rs` to hold it so.

use std::path::PathBuf;

use super::{BrokerConfig, ClusterConfig, DEFAULT_DATA_DIR, SECURITY_PROTOCOL_MAP_DEFAULT};

/// Kafka's `ConfigDef.Type` of a config, as DescribeConfigs v3+ reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    Boolean,
    String,
    Int,
    Short,
    Long,
    Double,
    List,
}

/// Where a broker config's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// The operator set it: the config file, `--override` or a flag.
    StaticBroker,
    /// Nobody did: the default.
    Default,
}

/// One synonym: a config whose value stands for this one's, most
/// important first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    pub name: &'static str,
    pub value: Option<String>,
    pub source: ConfigSource,
}

/// One broker config as DescribeConfigs describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConfig {
    pub name: &'static str,
    /// None where Kafka's default is none and nobody set it: a config that
    /// falls back to a synonym (`log.retention.ms` to `log.retention.hours`).
    pub value: Option<String>,
    pub kind: ConfigKind,
    pub source: ConfigSource,
    pub synonyms: Vec<ConfigSynonym>,
}

/// shoal's own spellings of a Kafka config, and the row they set.
const ALIASES: &[(&str, &str)] = &[
    ("listen", "listeners"),
    ("advertise", "advertised.listeners"),
    ("log.dir", "log.dirs"),
];

struct Row {
    name: &'static str,
    kind: ConfigKind,
    /// Kafka's synonyms of the config, itself included, most important first
    /// (`DynamicBrokerConfig.brokerConfigSynonyms`).
    synonyms: &'static [&'static str],
    value: fn(&BrokerConfig) -> Option<String>,
}

const RETENTION: &[&str] = &[
    "log.retention.ms",
    "log.retention.minutes",
    "log.retention.hours",
];
const ROLL: &[&str] = &["log.roll.ms", "log.roll.hours"];

macro_rules! row {
    ($name:literal, $kind:ident, |$config:ident| $value:expr) => {
        row!($name, $kind, &[$name], |$config| $value)
    };
    ($name:literal, $kind:ident, $synonyms:expr, |$config:ident| $value:expr) => {
        Row {
            name: $name,
            kind: ConfigKind::$kind,
            synonyms: $synonyms,
            value: |$config: &BrokerConfig| $value,
        }
    };
}

/// The value the operator gave `key`, as validated by `set`.
fn explicit(config: &BrokerConfig, key: &str) -> Option<String> {
    config.explicit.get(key).cloned()
}

/// A double as Java's `Double.toString` prints it, which is what Kafka
/// shows: `0.5`, `1.0`, `1.7976931348623157E308`.
fn java_double(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-3..1e7).contains(&magnitude) {
        let text = format!("{value:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.to_string()
        } else {
            format!("{mantissa}.0")
        };
        format!("{mantissa}E{exponent}")
    } else {
        format!("{value:?}")
    }
}

const ROWS: &[Row] = &[
    row!("admin.listeners", String, |c| Some(
        c.observability.admin_listeners()
    )),
    row!("admin.console.actions.enabled", Boolean, |c| Some(
        c.observability.console_actions_enabled.to_string()
    )),
    row!("advertised.listeners", String, |c| c
        .cluster
        .advertised_listeners
        .as_deref()
        .map(ClusterConfig::listeners_text)),
    row!("auto.create.topics.enable", Boolean, |c| Some(
        c.auto_create_topics_enable.to_string()
    )),
    row!("auto.leader.rebalance.enable", Boolean, |c| Some(
        c.replication.auto_leader_rebalance_enable.to_string()
    )),
    row!("broker.heartbeat.interval.ms", Int, |c| Some(
        c.cluster.broker_heartbeat_interval_ms.to_string()
    )),
    row!("broker.id", Int, |c| Some(c.node_id.to_string())),
    row!("broker.rack", String, |c| c.cluster.broker_rack.clone()),
    row!("broker.session.timeout.ms", Int, |c| Some(
        c.cluster.broker_session_timeout_ms.to_string()
    )),
    row!("connections.max.idle.ms", Long, |c| Some(
        c.connections.connections_max_idle_ms.to_string()
    )),
    row!("default.replication.factor", Int, |c| Some(
        c.default_replication_factor.to_string()
    )),
    row!("fetch.max.bytes", Int, |c| Some(
        c.fetch_max_bytes.to_string()
    )),
    row!("group.consumer.assignors", List, |c| Some(
        c.group.consumer_assignors.join(",")
    )),
    row!("group.consumer.heartbeat.interval.ms", Int, |c| Some(
        c.group.consumer_heartbeat_interval_ms.to_string()
    )),
    row!("group.consumer.max.size", Int, |c| Some(
        c.group.consumer_max_size.to_string()
    )),
    row!("group.consumer.session.timeout.ms", Int, |c| Some(
        c.group.consumer_session_timeout_ms.to_string()
    )),
    row!("group.initial.rebalance.delay.ms", Int, |c| Some(
        c.group.initial_rebalance_delay_ms.to_string()
    )),
    row!("group.max.session.timeout.ms", Int, |c| Some(
        c.group.max_session_timeout_ms.to_string()
    )),
    row!("group.max.size", Int, |c| Some(
        c.group.max_size.to_string()
    )),
    row!("group.min.session.timeout.ms", Int, |c| Some(
        c.group.min_session_timeout_ms.to_string()
    )),
    row!("leader.imbalance.check.interval.seconds", Long, |c| Some(
        c.replication
            .leader_imbalance_check_interval_seconds
            .to_string()
    )),
    row!("leader.imbalance.per.broker.percentage", Int, |c| Some(
        c.replication
            .leader_imbalance_per_broker_percentage
            .to_string()
    )),
    row!("listener.shard.aware", Boolean, |c| Some(
        c.listener_shard_aware.to_string()
    )),
    row!("listener.shard.port.base", Int, |c| c
        .listener_shard_port_base
        .map(|base| base.to_string())),
    row!("controller.listener.names", String, |c| (!c
        .cluster
        .controller_listener_names
        .is_empty())
    .then(|| c.cluster.controller_listener_names.join(","))),
    row!("controller.quorum.bootstrap.servers", List, |c| Some(
        c.cluster
            .quorum_bootstrap_servers
            .iter()
            .map(|(host, port)| format!("{host}:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    )),
    row!("controller.quorum.election.backoff.max.ms", Int, |c| Some(
        c.cluster.quorum_election_backoff_max_ms.to_string()
    )),
    row!("controller.quorum.election.timeout.ms", Int, |c| Some(
        c.cluster.quorum_election_timeout_ms.to_string()
    )),
    row!("controller.quorum.fetch.timeout.ms", Int, |c| Some(
        c.cluster.quorum_fetch_timeout_ms.to_string()
    )),
    row!("controller.quorum.voters", List, |c| Some(
        c.cluster
            .quorum_voters
            .iter()
            .map(|v| format!("{}@{}", v.id, v.address()))
            .collect::<Vec<_>>()
            .join(",")
    )),
    row!("controller.quota.window.num", Int, |c| Some(
        c.connections.controller_quota_window_num.to_string()
    )),
    row!("controller.quota.window.size.seconds", Int, |c| Some(
        c.connections
            .controller_quota_window_size_seconds
            .to_string()
    )),
    row!("inter.broker.listener.name", String, |c| c
        .cluster
        .inter_broker_listener_name
        .clone()),
    row!("listener.security.protocol.map", String, |c| explicit(
        c,
        "listener.security.protocol.map"
    )
    .or_else(|| Some(SECURITY_PROTOCOL_MAP_DEFAULT.to_string()))),
    row!("listeners", String, |c| Some(
        ClusterConfig::listeners_text(&c.cluster.listeners)
    )),
    row!("log.cleaner.backoff.ms", Long, |c| Some(
        c.log_cleaner_backoff_ms.to_string()
    )),
    row!("log.cleaner.dedupe.buffer.size", Long, |c| Some(
        c.log_cleaner_dedupe_buffer_size.to_string()
    )),
    row!("log.cleaner.delete.retention.ms", Long, |c| Some(
        c.log_cleaner_delete_retention_ms.to_string()
    )),
    row!("log.cleaner.enable", Boolean, |c| Some(
        c.log_cleaner_enable.to_string()
    )),
    row!("log.cleaner.io.max.bytes.per.second", Double, |c| Some(
        java_double(c.log_cleaner_io_max_bytes_per_second)
    )),
    row!("log.cleaner.max.compaction.lag.ms", Long, |c| Some(
        c.log_cleaner_max_compaction_lag_ms.to_string()
    )),
    row!("log.cleaner.min.cleanable.ratio", Double, |c| Some(
        java_double(c.log_cleaner_min_cleanable_ratio)
    )),
    row!("log.cleaner.min.compaction.lag.ms", Long, |c| Some(
        c.log_cleaner_min_compaction_lag_ms.to_string()
    )),
    row!("log.cleanup.policy", List, |c| Some(
        c.log_cleanup_policy.clone()
    )),
    row!("log.dirs", String, |c| Some(
        c.data_dir.display().to_string()
    )),
    row!("log.flush.interval.ms", Long, |c| Some(
        c.log_flush_interval_ms.to_string()
    )),
    row!("log.flush.offset.checkpoint.interval.ms", Int, |c| Some(
        c.log_flush_offset_checkpoint_interval_ms.to_string()
    )),
    row!("log.flush.policy", String, |c| Some(
        c.log_flush_policy.clone()
    )),
    row!("log.format", String, |c| Some(
        c.observability.log_format.name().to_string()
    )),
    row!("log.index.interval.bytes", Int, |c| Some(
        c.log_index_interval_bytes.to_string()
    )),
    row!("log.message.timestamp.after.max.ms", Long, |c| Some(
        c.log_message_timestamp_after_max_ms.to_string()
    )),
    row!("log.message.timestamp.before.max.ms", Long, |c| Some(
        c.log_message_timestamp_before_max_ms.to_string()
    )),
    row!("log.message.timestamp.type", String, |c| Some(
        c.log_message_timestamp_type.clone()
    )),
    row!("log.retention.bytes", Long, |c| Some(
        c.log_retention_bytes.to_string()
    )),
    row!("log.retention.check.interval.ms", Long, |c| Some(
        c.log_retention_check_interval_ms.to_string()
    )),
    row!("log.retention.hours", Int, RETENTION, |c| explicit(
        c,
        "log.retention.hours"
    )
    .or(Some(super::RETENTION_HOURS_DEFAULT.to_string()))),
    row!("log.retention.minutes", Int, RETENTION, |c| explicit(
        c,
        "log.retention.minutes"
    )),
    row!("log.retention.ms", Long, RETENTION, |c| explicit(
        c,
        "log.retention.ms"
    )),
    row!("log.roll.hours", Int, ROLL, |c| explicit(
        c,
        "log.roll.hours"
    )
    .or(Some(super::ROLL_HOURS_DEFAULT.to_string()))),
    row!("log.roll.ms", Long, ROLL, |c| explicit(c, "log.roll.ms")),
    row!("log.segment.bytes", Int, |c| Some(
        c.log_segment_bytes.to_string()
    )),
    row!("max.connection.creation.rate", Int, |c| Some(
        c.connections.max_connection_creation_rate.to_string()
    )),
    row!("max.connections", Int, |c| Some(
        c.connections.max_connections.to_string()
    )),
    row!("max.connections.per.ip", Int, |c| Some(
        c.connections.max_connections_per_ip.to_string()
    )),
    row!("max.connections.per.ip.overrides", String, |c| Some(
        c.connections
            .max_connections_per_ip_overrides
            .iter()
            .map(|(host, count)| format!("{host}:{count}"))
            .collect::<Vec<_>>()
            .join(",")
    )),
    row!("max.incremental.fetch.session.cache.slots", Int, |c| Some(
        c.max_incremental_fetch_session_cache_slots.to_string()
    )),
    row!("message.max.bytes", Int, |c| Some(
        c.message_max_bytes.to_string()
    )),
    row!(
        "metadata.log.max.record.bytes.between.snapshots",
        Long,
        |c| Some(c.cluster.metadata_snapshot_bytes.to_string())
    ),
    row!("metrics.enabled", Boolean, |c| Some(
        c.observability.metrics_enabled.to_string()
    )),
    row!("metrics.partition.series.enabled", Boolean, |c| Some(
        c.observability.metrics_partition_series_enabled.to_string()
    )),
    row!("min.insync.replicas", Int, |c| Some(
        c.replication.min_insync_replicas.to_string()
    )),
    row!("node.id", Int, |c| Some(c.node_id.to_string())),
    row!("num.partitions", Int, |c| Some(
        c.num_partitions.to_string()
    )),
    row!("num.replica.fetchers", Int, |c| Some(
        c.replication.num_replica_fetchers.to_string()
    )),
    row!("offset.metadata.max.bytes", Int, |c| Some(
        c.group.offset_metadata_max_bytes.to_string()
    )),
    row!("offsets.retention.check.interval.ms", Long, |c| Some(
        c.group.offsets_retention_check_interval_ms.to_string()
    )),
    row!("offsets.retention.minutes", Int, |c| Some(
        (c.group.offsets_retention_ms / 60_000).to_string()
    )),
    row!("offsets.topic.num.partitions", Int, |c| Some(
        c.group.offsets_topic_num_partitions.to_string()
    )),
    row!("offsets.topic.replication.factor", Short, |c| Some(
        c.replication.offsets_topic_replication_factor.to_string()
    )),
    row!("offsets.topic.segment.bytes", Int, |c| Some(
        c.offsets_topic_segment_bytes.to_string()
    )),
    row!("process.roles", List, |c| Some(
        c.cluster
            .process_roles
            .iter()
            .map(|role| role.name())
            .collect::<Vec<_>>()
            .join(",")
    )),
    row!("producer.id.expiration.check.interval.ms", Int, |c| Some(
        c.producer_id_expiration_check_interval_ms.to_string()
    )),
    row!("producer.id.expiration.ms", Int, |c| Some(
        c.producer_id_expiration_ms.to_string()
    )),
    row!("queued.max.requests", Int, |c| Some(
        c.connections.queued_max_requests.to_string()
    )),
    row!("quota.window.num", Int, |c| Some(
        c.connections.quota_window_num.to_string()
    )),
    row!("quota.window.size.seconds", Int, |c| Some(
        c.connections.quota_window_size_seconds.to_string()
    )),
    row!("replica.fetch.max.bytes", Int, |c| Some(
        c.replication.replica_fetch_max_bytes.to_string()
    )),
    row!("replica.fetch.min.bytes", Int, |c| Some(
        c.replication.replica_fetch_min_bytes.to_string()
    )),
    row!("replica.fetch.wait.max.ms", Int, |c| Some(
        c.replication.replica_fetch_wait_max_ms.to_string()
    )),
    row!("replica.lag.time.max.ms", Long, |c| Some(
        c.replication.replica_lag_time_max_ms.to_string()
    )),
    row!("security.inter.broker.protocol", String, |c| c
        .cluster
        .inter_broker_security_protocol
        .clone()),
    row!("shard.spin.before.park.us", Long, |c| Some(
        c.shard_spin_before_park_us.to_string()
    )),
    row!("socket.request.max.bytes", Int, |c| Some(
        c.socket_request_max_bytes.to_string()
    )),
    row!(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        Int,
        |c| Some(c.txn.abort_timed_out_interval_ms.to_string())
    ),
    row!("transaction.max.timeout.ms", Int, |c| Some(
        c.txn.max_timeout_ms.to_string()
    )),
    row!("transaction.partition.verification.enable", Boolean, |c| {
        Some(c.txn.partition_verification_enable.to_string())
    }),
    row!(
        "transaction.remove.expired.transaction.cleanup.interval.ms",
        Int,
        |c| Some(c.txn.remove_expired_interval_ms.to_string())
    ),
    // shoal's setting of Kafka's `transaction.version` feature level.
    row!("transaction.version", Int, |c| Some(
        c.txn.transaction_version.to_string()
    )),
    row!("transaction.state.log.num.partitions", Int, |c| Some(
        c.txn.state_log_num_partitions.to_string()
    )),
    row!("transaction.state.log.replication.factor", Short, |c| Some(
        c.replication
            .transaction_state_log_replication_factor
            .to_string()
    )),
    row!("transaction.state.log.segment.bytes", Int, |c| Some(
        c.txn.state_log_segment_bytes.to_string()
    )),
    row!("transactional.id.expiration.ms", Int, |c| Some(
        c.txn.id_expiration_ms.to_string()
    )),
    row!("unclean.leader.election.enable", Boolean, |c| Some(
        c.replication.unclean_leader_election_enable.to_string()
    )),
];

impl BrokerConfig {
    /// Every broker config shoal honours, by name, described as Kafka
    /// describes a broker's (`DescribeConfigs` for the broker's id).
    pub fn describe(&self) -> Vec<DescribedConfig> {
        let defaults = BrokerConfig::new(PathBuf::from(DEFAULT_DATA_DIR), self.shards);
        ROWS.iter()
            .map(|row| {
                // Kafka lists what the operator set, then the defaults, of
                // every synonym, and drops those ahead of the config itself.
                let set = row
                    .synonyms
                    .iter()
                    .filter(|name| self.was_set(name))
                    .map(|&name| ConfigSynonym {
                        name,
                        value: value_of(self, name),
                        source: ConfigSource::StaticBroker,
                    });
                let defaulted = row.synonyms.iter().filter_map(|&name| {
                    value_of(&defaults, name).map(|value| ConfigSynonym {
                        name,
                        value: Some(value),
                        source: ConfigSource::Default,
                    })
                });
                let synonyms: Vec<ConfigSynonym> = set
                    .chain(defaulted)
                    .skip_while(|synonym| synonym.name != row.name)
                    .collect();
                DescribedConfig {
                    name: row.name,
                    value: (row.value)(self),
                    kind: row.kind,
                    source: synonyms.first().map_or(ConfigSource::Default, |s| s.source),
                    synonyms,
                }
            })
            .collect()
    }

    /// Whether the operator set the config `name` (by it or by an alias).
    fn was_set(&self, name: &str) -> bool {
        self.explicit.contains_key(name)
            || ALIASES
                .iter()
                .any(|&(alias, of)| of == name && self.explicit.contains_key(alias))
    }
}

fn value_of(config: &BrokerConfig, name: &str) -> Option<String> {
    ROWS.iter()
        .find(|row| row.name == name)
        .and_then(|row| (row.value)(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(config: &BrokerConfig, name: &str) -> DescribedConfig {
        config
            .describe()
            .into_iter()
            .find(|entry| entry.name == name)
            .unwrap_or_else(|| panic!("{name} is not described"))
    }

    /// The keys `BrokerConfig::set`, `ConnectionConfig::set`,
    /// `ReplicationConfig::set` and `ObservabilityConfig::set` match on, read from their source: a config
    /// added there and not here fails.
    fn keys_set_accepts() -> Vec<String> {
        let sources = [
            include_str!("../config.rs"),
            include_str!("replication.rs"),
            include_str!("observability.rs"),
        ];
        let mut keys = Vec::new();
        for body in sources
            .iter()
            .flat_map(|source| source.split("pub fn set(").skip(1))
        {
            let body = body.split("\n    }\n").next().unwrap_or_default();
            for line in body.lines().filter(|line| line.contains("=>")) {
                let pattern = line.split("=>").next().unwrap_or_default();
                keys.extend(pattern.split('"').skip(1).step_by(2).map(str::to_string));
            }
        }
        keys
    }

    #[test]
    fn every_key_set_accepts_is_described() {
        let keys = keys_set_accepts();
        assert!(keys.len() > 50, "found only {keys:?} in config.rs");
        let config = BrokerConfig::new(PathBuf::from("/tmp/x"), 2);
        let names: Vec<&str> = config.describe().iter().map(|entry| entry.name).collect();
        for key in &keys {
            let row = ALIASES
                .iter()
                .find(|(alias, _)| alias == key)
                .map_or(key.as_str(), |&(_, of)| of);
            assert!(names.contains(&row), "{key} is accepted but not described");
        }
        for name in &names {
            assert!(
                keys.iter().any(|key| key == name),
                "{name} is described but not accepted"
            );
        }
    }

    #[test]
    fn defaults_as_kafka_prints_them() {
        let config = BrokerConfig::new(PathBuf::from("/tmp/x"), 2);
        let entry = described(&config, "message.max.bytes");
        assert_eq!(entry.value.as_deref(), Some("1048588"));
        assert_eq!(entry.source, ConfigSource::Default);
        assert_eq!(entry.kind, ConfigKind::Int);
        assert_eq!(
            entry.synonyms,
            vec![ConfigSynonym {
                name: "message.max.bytes",
                value: Some("1048588".to_string()),
                source: ConfigSource::Default
            }]
        );
        let io = described(&config, "log.cleaner.io.max.bytes.per.second");
        assert_eq!(io.value.as_deref(), Some("1.7976931348623157E308"));
        let ratio = described(&config, "log.cleaner.min.cleanable.ratio");
        assert_eq!(ratio.value.as_deref(), Some("0.5"));
        let overrides = described(&config, "max.connections.per.ip.overrides");
        assert_eq!(overrides.value.as_deref(), Some(""));
        // No default and not set: no value, and the hours it falls back to
        // are not its synonyms (Kafka drops those ahead of the config).
        let retention_ms = described(&config, "log.retention.ms");
        assert_eq!((retention_ms.value, retention_ms.synonyms), (None, vec![]));
        let hours = described(&config, "log.retention.hours");
        assert_eq!(hours.value.as_deref(), Some("168"));
        assert_eq!(hours.source, ConfigSource::Default);
        assert_eq!(described(&config, "advertised.listeners").value, None);
        assert_eq!(
            described(&config, "process.roles").value.as_deref(),
            Some("")
        );
        assert_eq!(described(&config, "controller.listener.names").value, None);
        let map = described(&config, "listener.security.protocol.map");
        assert_eq!(
            map.value.as_deref(),
            Some("SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT")
        );
        let session = described(&config, "broker.session.timeout.ms");
        assert_eq!(session.value.as_deref(), Some("9000"));
    }

    #[test]
    fn cluster_configs_as_set() {
        let mut config = BrokerConfig::new(PathBuf::from("/tmp/x"), 2);
        config
            .load_properties(
                "process.roles=controller,broker\nnode.id=3\ncontroller.quorum.voters=3@[::1]:9093\nlisteners=plaintext://[::1]:9092,CONTROLLER://[::1]:9093\ncontroller.listener.names=CONTROLLER\nbroker.rack=r1\n",
            )
            .unwrap();
        config.check_cluster().unwrap();
        assert_eq!(config.listen, "[::1]:9092");
        assert_eq!(config.advertise, "[::1]:9092");
        let value = |name| described(&config, name).value;
        assert_eq!(value("process.roles").as_deref(), Some("broker,controller"));
        assert_eq!(
            value("controller.quorum.voters").as_deref(),
            Some("3@[::1]:9093")
        );
        assert_eq!(
            value("listeners").as_deref(),
            Some("PLAINTEXT://[::1]:9092,CONTROLLER://[::1]:9093")
        );
        assert_eq!(value("broker.rack").as_deref(), Some("r1"));
        assert_eq!(
            described(&config, "process.roles").source,
            ConfigSource::StaticBroker
        );
    }

    #[test]
    fn set_configs_are_static_with_their_defaults_after_them() {
        let mut config = BrokerConfig::new(PathBuf::from("/tmp/x"), 2);
        config.set("log.retention.hours", "24").unwrap();
        config.set("max.connections", "100").unwrap();
        config
            .set("max.connections.per.ip.overrides", "b:3, a:2")
            .unwrap();
        config.set("listen", "127.0.0.1:7000").unwrap();
        config
            .set("log.cleaner.io.max.bytes.per.second", "1e20")
            .unwrap();

        let max = described(&config, "max.connections");
        assert_eq!(max.value.as_deref(), Some("100"));
        assert_eq!(max.source, ConfigSource::StaticBroker);
        let sources: Vec<_> = max
            .synonyms
            .iter()
            .map(|s| (s.value.as_deref(), s.source))
            .collect();
        assert_eq!(
            sources,
            vec![
                (Some("100"), ConfigSource::StaticBroker),
                (Some("2147483647"), ConfigSource::Default)
            ]
        );
        let overrides = described(&config, "max.connections.per.ip.overrides");
        assert_eq!(overrides.value.as_deref(), Some("a:2,b:3"));
        let listeners = described(&config, "listeners");
        assert_eq!(
            listeners.value.as_deref(),
            Some("PLAINTEXT://127.0.0.1:7000")
        );
        assert_eq!(listeners.source, ConfigSource::StaticBroker);
        let io = described(&config, "log.cleaner.io.max.bytes.per.second");
        assert_eq!(io.value.as_deref(), Some("1.0E20"));

        // log.retention.ms still has no value of its own; the hours are set.
        assert_eq!(described(&config, "log.retention.ms").value, None);
        let hours = described(&config, "log.retention.hours");
        assert_eq!(hours.value.as_deref(), Some("24"));
        let names: Vec<_> = hours.synonyms.iter().map(|s| (s.name, s.source)).collect();
        assert_eq!(
            names,
            vec![
                ("log.retention.hours", ConfigSource::StaticBroker),
                ("log.retention.hours", ConfigSource::Default)
            ]
        );

        // The milliseconds win over the hours whatever the order, as in Kafka.
        config.set("log.retention.ms", "5000").unwrap();
        config.set("log.retention.hours", "48").unwrap();
        assert_eq!(config.log_retention_ms, 5000);
        let ms = described(&config, "log.retention.ms");
        assert_eq!(
            (ms.value.as_deref(), ms.source),
            (Some("5000"), ConfigSource::StaticBroker)
        );
        let names: Vec<_> = ms.synonyms.iter().map(|s| (s.name, s.source)).collect();
        assert_eq!(
            names,
            vec![
                ("log.retention.ms", ConfigSource::StaticBroker),
                ("log.retention.hours", ConfigSource::StaticBroker),
                ("log.retention.hours", ConfigSource::Default)
            ]
        );
    }
}
