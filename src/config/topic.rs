//! Topic configs: the names shoal knows, their broker defaults and synonyms,
//! validation, IncrementalAlterConfigs operations, and `TopicConfig`, a
//! topic's overrides resolved over the broker's defaults.

use std::collections::BTreeMap;

use super::parse::{
    dirty_ratio, flush_policy, parse_range, timestamp_type, validate_cleanup_policy,
    validate_compression,
};
use super::{BrokerConfig, ConfigError, FlushPolicy, LogConfig, FLUSH_INTERVAL_MS_DEFAULT};

/// The topic-level configs shoal knows, with the broker setting each one
/// defaults to. DescribeConfigs lists these; CreateTopics accepts only these.
pub const TOPIC_CONFIG_NAMES: &[&str] = &[
    "cleanup.policy",
    "compression.type",
    "delete.retention.ms",
    "flush.ms",
    "flush.policy",
    "index.interval.bytes",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
    "unclean.leader.election.enable",
];

/// Kafka 4's testing override of `segment.bytes`: accepted by CreateTopics
/// and AlterConfigs, it wins over `segment.bytes` without that config's
/// 1 MiB floor (which shoal does not have either), and DescribeConfigs lists
/// it only where a topic sets it, as Kafka does. Suites that need small
/// segments on both brokers set it.
pub const INTERNAL_SEGMENT_BYTES: &str = "internal.segment.bytes";

/// The broker's default for one topic config, as a string.
pub fn topic_config_default(broker: &BrokerConfig, name: &str) -> Option<String> {
    let value = match name {
        "cleanup.policy" => broker.log_cleanup_policy.clone(),
        "compression.type" => "producer".to_string(),
        "delete.retention.ms" => broker.log_cleaner_delete_retention_ms.to_string(),
        "flush.ms" => broker.log_flush_interval_ms.to_string(),
        "flush.policy" => broker.log_flush_policy.clone(),
        "index.interval.bytes" => broker.log_index_interval_bytes.to_string(),
        "max.compaction.lag.ms" => broker.log_cleaner_max_compaction_lag_ms.to_string(),
        "max.message.bytes" => broker.message_max_bytes.to_string(),
        "message.timestamp.after.max.ms" => broker.log_message_timestamp_after_max_ms.to_string(),
        "message.timestamp.before.max.ms" => broker.log_message_timestamp_before_max_ms.to_string(),
        "message.timestamp.type" => broker.log_message_timestamp_type.clone(),
        "min.cleanable.dirty.ratio" => broker.log_cleaner_min_cleanable_ratio.to_string(),
        "min.compaction.lag.ms" => broker.log_cleaner_min_compaction_lag_ms.to_string(),
        "min.insync.replicas" => broker.replication.min_insync_replicas.to_string(),
        "retention.bytes" => broker.log_retention_bytes.to_string(),
        "retention.ms" => broker.log_retention_ms.to_string(),
        "segment.bytes" => broker.log_segment_bytes.to_string(),
        "segment.ms" => broker.log_roll_ms.to_string(),
        "unclean.leader.election.enable" => broker
            .replication
            .unclean_leader_election_enable
            .to_string(),
        _ => return None,
    };
    Some(value)
}

/// The broker config a topic config falls back to (Kafka's synonym).
pub fn topic_config_broker_synonym(name: &str) -> Option<&'static str> {
    Some(match name {
        "cleanup.policy" => "log.cleanup.policy",
        "delete.retention.ms" => "log.cleaner.delete.retention.ms",
        "max.compaction.lag.ms" => "log.cleaner.max.compaction.lag.ms",
        "min.cleanable.dirty.ratio" => "log.cleaner.min.cleanable.ratio",
        "min.compaction.lag.ms" => "log.cleaner.min.compaction.lag.ms",
        "flush.ms" => "log.flush.interval.ms",
        "flush.policy" => "log.flush.policy",
        "index.interval.bytes" => "log.index.interval.bytes",
        "max.message.bytes" => "message.max.bytes",
        "message.timestamp.after.max.ms" => "log.message.timestamp.after.max.ms",
        "message.timestamp.before.max.ms" => "log.message.timestamp.before.max.ms",
        "message.timestamp.type" => "log.message.timestamp.type",
        "min.insync.replicas" => "min.insync.replicas",
        "retention.bytes" => "log.retention.bytes",
        "retention.ms" => "log.retention.ms",
        "segment.bytes" => "log.segment.bytes",
        "segment.ms" => "log.roll.ms",
        "unclean.leader.election.enable" => "unclean.leader.election.enable",
        _ => return None,
    })
}

/// Checks one topic config override by name and value.
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), ConfigError> {
    let value = value.trim();
    match name {
        "cleanup.policy" => validate_cleanup_policy(value),
        "compression.type" => validate_compression(value),
        "delete.retention.ms" | "min.compaction.lag.ms" => {
            parse_range::<i64>(name, value, 0, i64::MAX).map(drop)
        }
        "max.compaction.lag.ms" => parse_range::<i64>(name, value, 1, i64::MAX).map(drop),
        "min.cleanable.dirty.ratio" => dirty_ratio(name, value).map(drop),
        "flush.ms" => parse_range::<u64>(name, value, 1, u64::MAX).map(drop),
        "flush.policy" => flush_policy(value, FLUSH_INTERVAL_MS_DEFAULT).map(drop),
        "index.interval.bytes" => parse_range::<u32>(name, value, 0, i32::MAX as u32).map(drop),
        "max.message.bytes" => parse_range::<usize>(name, value, 0, i32::MAX as usize).map(drop),
        "message.timestamp.after.max.ms" | "message.timestamp.before.max.ms" => {
            parse_range::<i64>(name, value, 0, i64::MAX).map(drop)
        }
        "message.timestamp.type" => timestamp_type(value),
        "min.insync.replicas" => parse_range::<i32>(name, value, 1, i32::MAX).map(drop),
        "retention.bytes" | "retention.ms" => {
            parse_range::<i64>(name, value, -1, i64::MAX).map(drop)
        }
        "segment.bytes" | INTERNAL_SEGMENT_BYTES => {
            parse_range::<u64>(name, value, 14, i32::MAX as u64).map(drop)
        }
        "segment.ms" => parse_range::<u64>(name, value, 1, u64::MAX).map(drop),
        "unclean.leader.election.enable" => boolean(name, value),
        _ => Err(ConfigError(format!("unknown topic config {name}"))),
    }
}

/// Kafka's BOOLEAN parse: `true` or `false`, any case.
fn boolean(name: &str, value: &str) -> Result<(), ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "false" => Ok(()),
        _ => Err(ConfigError(format!(
            "invalid value {value} for configuration {name}: Expected value to be either true or false"
        ))),
    }
}

/// True when a topic with these overrides has `delete` in its
/// `cleanup.policy`: only then may retention or DeleteRecords remove data.
pub fn cleanup_deletes(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> bool {
    overrides
        .get("cleanup.policy")
        .cloned()
        .or_else(|| topic_config_default(broker, "cleanup.policy"))
        .unwrap_or_default()
        .split(',')
        .any(|policy| policy.trim() == "delete")
}

/// Topic configs of Kafka's type LIST: the only ones IncrementalAlterConfigs
/// may APPEND to or SUBTRACT from.
pub fn is_list_topic_config(name: &str) -> bool {
    name == "cleanup.policy"
}

/// Checks every `(name, value)` and returns them as an override set, values
/// trimmed (a later duplicate name wins).
pub fn validated_overrides(
    pairs: impl IntoIterator<Item = (String, String)>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut overrides = BTreeMap::new();
    for (name, value) in pairs {
        validate_topic_config(&name, &value)?;
        overrides.insert(name, value.trim().to_string());
    }
    Ok(overrides)
}

/// One IncrementalAlterConfigs operation on a topic config, Kafka's
/// `AlterConfigOp.OpType`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    Set(String),
    /// Back to the default: the override goes.
    Delete,
    /// Adds the comma-separated values a LIST config lacks, in order.
    Append(String),
    /// Removes the comma-separated values from a LIST config.
    Subtract(String),
}

/// The override set after applying `ops` in order to `overrides`, checked
/// whole. APPEND and SUBTRACT start from the current value, or from the
/// default when there is no override, as Kafka's controller does.
pub fn apply_config_ops(
    broker: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
    ops: &[(String, ConfigOp)],
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut next = overrides.clone();
    for (name, op) in ops {
        let (values, adding) = match op {
            ConfigOp::Set(value) => {
                next.insert(name.clone(), value.clone());
                continue;
            }
            ConfigOp::Delete => {
                next.remove(name);
                continue;
            }
            ConfigOp::Append(values) => (values, true),
            ConfigOp::Subtract(values) => (values, false),
        };
        let verb = if adding { "APPEND" } else { "SUBTRACT" };
        if !is_list_topic_config(name) {
            return Err(ConfigError(format!(
                "Can't {verb} to key {name} because its type is not LIST."
            )));
        }
        let current = next
            .get(name)
            .cloned()
            .or_else(|| topic_config_default(broker, name))
            .unwrap_or_default();
        let mut list: Vec<String> = current
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(str::to_string)
            .collect();
        for value in values.split(',').map(str::trim) {
            if adding {
                if !list.iter().any(|part| part == value) {
                    list.push(value.to_string());
                }
            } else {
                list.retain(|part| part != value);
            }
        }
        next.insert(name.clone(), list.join(","));
    }
    validated_overrides(next)
}

/// A topic's effective settings: its overrides over the broker defaults.
#[derive(Debug, Clone)]
pub struct TopicConfig {
    pub max_message_bytes: usize,
    pub log_append_time: bool,
    /// CreateTime bounds: `message.timestamp.before.max.ms` and
    /// `message.timestamp.after.max.ms` (ignored under LogAppendTime).
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    /// `min.insync.replicas`: the ISR size below which the leader's high
    /// watermark stops and `acks=all` produces are refused
    /// (NOT_ENOUGH_REPLICAS).
    pub min_insync_replicas: i32,
    /// `unclean.leader.election.enable`: the controller may elect a
    /// replica outside the ISR when no ISR member can lead.
    pub unclean_leader_election_enable: bool,
    pub log: LogConfig,
}

impl TopicConfig {
    /// Resolves `overrides` (already validated) against `broker`.
    pub fn resolve(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> TopicConfig {
        let effective = |name: &str| -> String {
            overrides
                .get(name)
                .cloned()
                .or_else(|| topic_config_default(broker, name))
                .unwrap_or_default()
        };
        // A compact-only topic (`__consumer_offsets`) is never cut by time
        // or size: only `cleanup.policy` with `delete` is.
        let policy = effective("cleanup.policy");
        let has_policy = |wanted: &str| policy.split(',').any(|p| p.trim() == wanted);
        let deletes = has_policy("delete");
        let compact = has_policy("compact");
        let max_compaction_lag_ms = effective("max.compaction.lag.ms")
            .parse()
            .unwrap_or(broker.log_cleaner_max_compaction_lag_ms);
        let segment_ms = effective("segment.ms")
            .parse()
            .unwrap_or(broker.log_roll_ms);
        let retention = |name: &str, broker_default: i64| -> i64 {
            if deletes {
                effective(name).parse().unwrap_or(broker_default)
            } else {
                -1
            }
        };
        let flush_ms = effective("flush.ms")
            .parse()
            .unwrap_or(broker.log_flush_interval_ms);
        let log = LogConfig {
            segment_bytes: overrides
                .get(INTERNAL_SEGMENT_BYTES)
                .cloned()
                .unwrap_or_else(|| effective("segment.bytes"))
                .parse()
                .unwrap_or(broker.log_segment_bytes),
            // As in Kafka, a compacted topic rolls by `max.compaction.lag.ms`
            // too: the active segment is never cleaned.
            segment_ms: if compact {
                segment_ms.min(u64::try_from(max_compaction_lag_ms).unwrap_or(u64::MAX))
            } else {
                segment_ms
            },
            index_interval_bytes: effective("index.interval.bytes")
                .parse()
                .unwrap_or(broker.log_index_interval_bytes),
            flush_policy: flush_policy(&effective("flush.policy"), flush_ms)
                .unwrap_or(FlushPolicy::Sync),
            retention_ms: retention("retention.ms", broker.log_retention_ms),
            retention_bytes: retention("retention.bytes", broker.log_retention_bytes),
            compact,
            delete_retention_ms: effective("delete.retention.ms")
                .parse()
                .unwrap_or(broker.log_cleaner_delete_retention_ms),
            min_cleanable_dirty_ratio: effective("min.cleanable.dirty.ratio")
                .parse()
                .unwrap_or(broker.log_cleaner_min_cleanable_ratio),
            min_compaction_lag_ms: effective("min.compaction.lag.ms")
                .parse()
                .unwrap_or(broker.log_cleaner_min_compaction_lag_ms),
            max_compaction_lag_ms,
            ..LogConfig::default()
        };
        TopicConfig {
            max_message_bytes: effective("max.message.bytes")
                .parse()
                .unwrap_or(broker.message_max_bytes),
            log_append_time: effective("message.timestamp.type") == "LogAppendTime",
            timestamp_before_max_ms: effective("message.timestamp.before.max.ms")
                .parse()
                .unwrap_or(broker.log_message_timestamp_before_max_ms),
            timestamp_after_max_ms: effective("message.timestamp.after.max.ms")
                .parse()
                .unwrap_or(broker.log_message_timestamp_after_max_ms),
            min_insync_replicas: effective("min.insync.replicas")
                .parse()
                .unwrap_or(broker.replication.min_insync_replicas),
            unclean_leader_election_enable: effective("unclean.leader.election.enable")
                .to_ascii_lowercase()
                .parse()
                .unwrap_or(broker.replication.unclean_leader_election_enable),
            log,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::{MESSAGE_MAX_BYTES_DEFAULT, RETENTION_MS_DEFAULT};

    #[test]
    fn topic_overrides_resolve_over_broker_defaults() {
        let broker = BrokerConfig::new(PathBuf::from("/tmp/x"), 1);
        let mut overrides = BTreeMap::new();
        overrides.insert("segment.bytes".to_string(), "1000".to_string());
        overrides.insert(
            "message.timestamp.type".to_string(),
            "LogAppendTime".to_string(),
        );
        overrides.insert("retention.bytes".to_string(), "6000".to_string());
        let topic = TopicConfig::resolve(&broker, &overrides);
        assert_eq!(topic.log.segment_bytes, 1000);
        overrides.insert(INTERNAL_SEGMENT_BYTES.to_string(), "200".to_string());
        let topic = TopicConfig::resolve(&broker, &overrides);
        assert_eq!(topic.log.segment_bytes, 200, "the internal override wins");
        assert_eq!(topic.log.retention_bytes, 6000);
        assert_eq!(topic.log.retention_ms, RETENTION_MS_DEFAULT);
        assert!(topic.log_append_time);
        assert_eq!(topic.max_message_bytes, MESSAGE_MAX_BYTES_DEFAULT);
        assert_eq!(topic.timestamp_before_max_ms, i64::MAX);
        assert_eq!(topic.timestamp_after_max_ms, 3_600_000);
        overrides.insert(
            "message.timestamp.before.max.ms".to_string(),
            "5000".to_string(),
        );
        let topic = TopicConfig::resolve(&broker, &overrides);
        assert_eq!(topic.timestamp_before_max_ms, 5000);
        assert_eq!(topic.min_insync_replicas, 1);
        assert!(!topic.unclean_leader_election_enable);
        let mut replicated = broker.clone();
        replicated.set("min.insync.replicas", "2").unwrap();
        replicated
            .set("unclean.leader.election.enable", "true")
            .unwrap();
        let topic = TopicConfig::resolve(&replicated, &BTreeMap::new());
        assert_eq!(
            (
                topic.min_insync_replicas,
                topic.unclean_leader_election_enable
            ),
            (2, true),
            "the broker's defaults"
        );
        let overrides = BTreeMap::from([
            ("min.insync.replicas".to_string(), "3".to_string()),
            (
                "unclean.leader.election.enable".to_string(),
                "FALSE".to_string(),
            ),
        ]);
        let topic = TopicConfig::resolve(&replicated, &overrides);
        assert_eq!(
            (
                topic.min_insync_replicas,
                topic.unclean_leader_election_enable
            ),
            (3, false),
            "the topic's overrides"
        );
        assert!(validate_topic_config("unclean.leader.election.enable", "maybe").is_err());
        assert!(validate_topic_config("min.insync.replicas", "0").is_err());
        assert!(validate_topic_config("message.timestamp.after.max.ms", "-1").is_err());
        assert!(validate_topic_config("segment.bytes", "10").is_err());
        assert!(validate_topic_config(INTERNAL_SEGMENT_BYTES, "abc").is_err());
        assert!(validate_topic_config("cleanup.policy", "compact,delete").is_ok());
        assert!(validate_topic_config("cleanup.policy", "shred").is_err());
        assert!(validate_topic_config("bogus", "1").is_err());
        for name in TOPIC_CONFIG_NAMES {
            let default = topic_config_default(&broker, name).unwrap();
            assert!(
                validate_topic_config(name, &default).is_ok(),
                "{name}={default}"
            );
        }
        let mut broker = broker;
        broker.set("log.retention.hours", "1").unwrap();
        broker.set("log.retention.bytes", "123").unwrap();
        broker
            .set("log.retention.check.interval.ms", "200")
            .unwrap();
        assert_eq!(broker.log_retention_check_interval_ms, 200);
        let topic = TopicConfig::resolve(&broker, &BTreeMap::new());
        assert_eq!(
            (topic.log.retention_ms, topic.log.retention_bytes),
            (3_600_000, 123)
        );
        assert!(broker.set("log.retention.bytes", "-2").is_err());
        for (policy, retained) in [("compact", -1), ("compact,delete", 123), ("delete", 123)] {
            let overrides = BTreeMap::from([("cleanup.policy".to_string(), policy.to_string())]);
            let topic = TopicConfig::resolve(&broker, &overrides);
            assert_eq!(topic.log.retention_bytes, retained, "{policy}");
        }
    }

    #[test]
    fn compaction_configs_resolve_with_kafkas_names_and_defaults() {
        let mut broker = BrokerConfig::new(PathBuf::from("/tmp/x"), 2);
        let topic = TopicConfig::resolve(&broker, &BTreeMap::new());
        assert!(!topic.log.compact);
        assert_eq!(topic.log.delete_retention_ms, 86_400_000);
        assert_eq!(topic.log.min_cleanable_dirty_ratio, 0.5);
        assert_eq!(topic.log.min_compaction_lag_ms, 0);
        assert_eq!(topic.log.max_compaction_lag_ms, i64::MAX);
        assert_eq!(
            topic_config_default(&broker, "min.cleanable.dirty.ratio").unwrap(),
            "0.5"
        );
        broker
            .set("log.cleaner.min.cleanable.ratio", "0.25")
            .unwrap();
        broker
            .set("log.cleaner.delete.retention.ms", "1000")
            .unwrap();
        broker
            .set("log.cleaner.min.compaction.lag.ms", "5")
            .unwrap();
        broker
            .set("log.cleaner.max.compaction.lag.ms", "60000")
            .unwrap();
        broker.set("log.cleaner.backoff.ms", "100").unwrap();
        broker.set("log.cleaner.enable", "false").unwrap();
        broker
            .set("log.cleaner.dedupe.buffer.size", "2097152")
            .unwrap();
        broker
            .set("log.cleaner.io.max.bytes.per.second", "1e7")
            .unwrap();
        assert_eq!(broker.log_cleaner_io_max_bytes_per_second, 1e7);
        assert!(broker
            .set("log.cleaner.io.max.bytes.per.second", "0")
            .is_err());
        assert!(broker
            .set("log.cleaner.dedupe.buffer.size", "1000")
            .is_err());
        assert!(broker
            .set("log.cleaner.min.cleanable.ratio", "1.5")
            .is_err());
        assert!(broker
            .set("log.cleaner.max.compaction.lag.ms", "0")
            .is_err());
        assert!(!broker.log_cleaner_enable);
        assert_eq!(broker.log_cleaner_backoff_ms, 100);
        assert_eq!(broker.log_cleaner_dedupe_buffer_size, 2 << 20);
        let overrides = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("min.compaction.lag.ms".to_string(), "7".to_string()),
        ]);
        let topic = TopicConfig::resolve(&broker, &overrides);
        assert!(topic.log.compact);
        assert_eq!(topic.log.min_cleanable_dirty_ratio, 0.25);
        assert_eq!(topic.log.delete_retention_ms, 1000);
        assert_eq!(topic.log.min_compaction_lag_ms, 7);
        // A compacted topic rolls by max.compaction.lag.ms as well.
        assert_eq!(topic.log.segment_ms, 60_000);
        assert_eq!(topic.log.retention_ms, -1);
        broker.set("log.cleanup.policy", "compact,delete").unwrap();
        let topic = TopicConfig::resolve(&broker, &BTreeMap::new());
        assert!(topic.log.compact);
        assert_eq!(topic.log.retention_ms, RETENTION_MS_DEFAULT);
        assert!(validate_topic_config("min.cleanable.dirty.ratio", "0.9").is_ok());
        assert!(validate_topic_config("min.cleanable.dirty.ratio", "-0.1").is_err());
        assert!(validate_topic_config("delete.retention.ms", "-1").is_err());
        assert!(validate_topic_config("max.compaction.lag.ms", "0").is_err());
        assert_eq!(
            topic_config_broker_synonym("min.cleanable.dirty.ratio"),
            Some("log.cleaner.min.cleanable.ratio")
        );
    }

    #[test]
    fn incremental_ops_follow_kafka_semantics() {
        let broker = BrokerConfig::new(PathBuf::from("/tmp/x"), 1);
        let current = BTreeMap::from([
            ("retention.ms".to_string(), "1000".to_string()),
            ("segment.bytes".to_string(), "4096".to_string()),
        ]);
        let op = |name: &str, op: ConfigOp| (name.to_string(), op);
        let next = apply_config_ops(
            &broker,
            &current,
            &[
                op("retention.ms", ConfigOp::Set(" 2000 ".into())),
                op("segment.bytes", ConfigOp::Delete),
                op("max.message.bytes", ConfigOp::Delete),
                op("cleanup.policy", ConfigOp::Append("compact".into())),
            ],
        )
        .unwrap();
        assert_eq!(
            next,
            BTreeMap::from([
                ("cleanup.policy".to_string(), "delete,compact".to_string()),
                ("retention.ms".to_string(), "2000".to_string()),
            ])
        );
        let next = apply_config_ops(
            &broker,
            &next,
            &[
                op("cleanup.policy", ConfigOp::Subtract("delete".into())),
                op("cleanup.policy", ConfigOp::Append("compact".into())),
            ],
        )
        .unwrap();
        assert_eq!(next["cleanup.policy"], "compact");
        // Nothing left of a list is not a policy.
        let error = apply_config_ops(
            &broker,
            &next,
            &[op("cleanup.policy", ConfigOp::Subtract("compact".into()))],
        )
        .unwrap_err();
        assert!(error.0.contains("cleanup.policy"), "{error}");
        let error = apply_config_ops(
            &broker,
            &current,
            &[op("retention.ms", ConfigOp::Append("5".into()))],
        )
        .unwrap_err();
        assert_eq!(
            error.0,
            "Can't APPEND to key retention.ms because its type is not LIST."
        );
        assert!(apply_config_ops(
            &broker,
            &current,
            &[op("segment.bytes", ConfigOp::Set("1".into()))]
        )
        .is_err());
        assert!(apply_config_ops(
            &broker,
            &current,
            &[op("no.such", ConfigOp::Set("1".into()))]
        )
        .is_err());
        assert_eq!(
            validated_overrides([("retention.ms".to_string(), " 5 ".to_string())]).unwrap()
                ["retention.ms"],
            "5"
        );
    }
}
