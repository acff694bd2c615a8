//! The broker's replication settings (`min.insync.replicas`,
//! `unclean.leader.election.enable`, `replica.*`, the internal topics'
//! replication factors, the preferred leaders' rebalance), as plain data with Kafka's names, defaults and
//! validation (`ReplicationConfigs`, `ServerLogConfigs`,
//! `GroupCoordinatorConfig`, `TransactionLogConfig`).
//!
//! Invariant: as all of `config`, imports nothing of shoal; the controller
//! and the replication bookkeeping take their settings from here.

use super::parse::{parse, parse_range};
use super::ConfigError;

/// Kafka's `min.insync.replicas` default.
pub const MIN_INSYNC_REPLICAS_DEFAULT: i32 = 1;
/// Kafka's `replica.lag.time.max.ms` default: a follower that has not
/// caught up for this long leaves the ISR.
pub const REPLICA_LAG_TIME_MAX_MS_DEFAULT: i64 = 30_000;
/// Kafka's `replica.fetch.max.bytes` default (1 MiB per partition).
pub const REPLICA_FETCH_MAX_BYTES_DEFAULT: i32 = 1_048_576;
/// Kafka's `replica.fetch.wait.max.ms` default.
pub const REPLICA_FETCH_WAIT_MAX_MS_DEFAULT: i32 = 500;
/// Kafka's `replica.fetch.min.bytes` default.
pub const REPLICA_FETCH_MIN_BYTES_DEFAULT: i32 = 1;
/// Kafka's `num.replica.fetchers` default.
pub const NUM_REPLICA_FETCHERS_DEFAULT: i32 = 1;
/// Kafka's `offsets.topic.replication.factor` and
/// `transaction.state.log.replication.factor` default.
pub const INTERNAL_TOPIC_REPLICATION_FACTOR_DEFAULT: i16 = 3;
/// Kafka's `leader.imbalance.check.interval.seconds` default.
pub const LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS_DEFAULT: i64 = 300;
/// Kafka's `leader.imbalance.per.broker.percentage` default.
pub const LEADER_IMBALANCE_PER_BROKER_PERCENTAGE_DEFAULT: i32 = 10;

/// Broker settings of replication, by Kafka's names, with Kafka's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationConfig {
    /// `min.insync.replicas`: the default of the topic config of that name
    /// (`TopicConfig::min_insync_replicas` resolves both).
    pub min_insync_replicas: i32,
    /// `unclean.leader.election.enable`: the default of the topic config
    /// of that name; the controller may elect a replica outside the ISR
    /// when no ISR member can lead.
    pub unclean_leader_election_enable: bool,
    /// `replica.lag.time.max.ms`: how long a follower may stay behind the
    /// leader's log end before the leader takes it out of the ISR.
    pub replica_lag_time_max_ms: i64,
    /// `replica.fetch.max.bytes`: bytes a follower asks per partition.
    pub replica_fetch_max_bytes: i32,
    /// `replica.fetch.wait.max.ms`: a follower's Fetch `max_wait_ms`; at
    /// most `replica.lag.time.max.ms`, as Kafka requires.
    pub replica_fetch_wait_max_ms: i32,
    /// `replica.fetch.min.bytes`: a follower's Fetch `min_bytes`.
    pub replica_fetch_min_bytes: i32,
    /// `num.replica.fetchers`: accepted for Kafka's configs; shoal fetches
    /// with one session per (follower shard, leader broker) pair instead.
    pub num_replica_fetchers: i32,
    /// `offsets.topic.replication.factor`: the replicas of
    /// `__consumer_offsets`, capped at the unfenced brokers when it is made.
    pub offsets_topic_replication_factor: i16,
    /// `transaction.state.log.replication.factor`: the same for
    /// `__transaction_state`.
    pub transaction_state_log_replication_factor: i16,
    /// `auto.leader.rebalance.enable`: the active controller moves
    /// leadership back to each partition's preferred replica (the first
    /// of its replicas) when that replica is in the ISR.
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds`: how often it looks.
    pub leader_imbalance_check_interval_seconds: i64,
    /// `leader.imbalance.per.broker.percentage`: the share of a broker's
    /// preferred partitions led elsewhere above which it moves them back.
    pub leader_imbalance_per_broker_percentage: i32,
}

impl Default for ReplicationConfig {
    fn default() -> ReplicationConfig {
        ReplicationConfig {
            min_insync_replicas: MIN_INSYNC_REPLICAS_DEFAULT,
            unclean_leader_election_enable: false,
            replica_lag_time_max_ms: REPLICA_LAG_TIME_MAX_MS_DEFAULT,
            replica_fetch_max_bytes: REPLICA_FETCH_MAX_BYTES_DEFAULT,
            replica_fetch_wait_max_ms: REPLICA_FETCH_WAIT_MAX_MS_DEFAULT,
            replica_fetch_min_bytes: REPLICA_FETCH_MIN_BYTES_DEFAULT,
            num_replica_fetchers: NUM_REPLICA_FETCHERS_DEFAULT,
            offsets_topic_replication_factor: INTERNAL_TOPIC_REPLICATION_FACTOR_DEFAULT,
            transaction_state_log_replication_factor: INTERNAL_TOPIC_REPLICATION_FACTOR_DEFAULT,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_seconds:
                LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS_DEFAULT,
            leader_imbalance_per_broker_percentage: LEADER_IMBALANCE_PER_BROKER_PERCENTAGE_DEFAULT,
        }
    }
}

impl ReplicationConfig {
    /// Applies `key` if it is one of these settings: Ok(false) when it is
    /// not.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        match key {
            "min.insync.replicas" => {
                self.min_insync_replicas = parse_range(key, value, 1, i32::MAX)?
            }
            "unclean.leader.election.enable" => {
                self.unclean_leader_election_enable = parse(key, value)?
            }
            "replica.lag.time.max.ms" => {
                self.replica_lag_time_max_ms = parse_range(key, value, 0, i64::MAX)?
            }
            "replica.fetch.max.bytes" => {
                self.replica_fetch_max_bytes = parse_range(key, value, 0, i32::MAX)?
            }
            "replica.fetch.wait.max.ms" => {
                self.replica_fetch_wait_max_ms = parse_range(key, value, 0, i32::MAX)?
            }
            "replica.fetch.min.bytes" => {
                self.replica_fetch_min_bytes = parse_range(key, value, 0, i32::MAX)?
            }
            "num.replica.fetchers" => {
                self.num_replica_fetchers = parse_range(key, value, 1, i32::MAX)?
            }
            "offsets.topic.replication.factor" => {
                self.offsets_topic_replication_factor = parse_range(key, value, 1, i16::MAX)?
            }
            "transaction.state.log.replication.factor" => {
                self.transaction_state_log_replication_factor =
                    parse_range(key, value, 1, i16::MAX)?
            }
            "auto.leader.rebalance.enable" => {
                self.auto_leader_rebalance_enable = parse(key, value)?
            }
            "leader.imbalance.check.interval.seconds" => {
                self.leader_imbalance_check_interval_seconds = parse_range(key, value, 1, i64::MAX)?
            }
            "leader.imbalance.per.broker.percentage" => {
                self.leader_imbalance_per_broker_percentage = parse_range(key, value, 0, 100)?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The rule across keys Kafka checks at start (`KafkaConfig`):
    /// a follower must not wait longer than it may lag.
    pub fn check(&self) -> Result<(), ConfigError> {
        if i64::from(self.replica_fetch_wait_max_ms) > self.replica_lag_time_max_ms {
            return Err(ConfigError(
                "replica.fetch.wait.max.ms should always be less than or equal to replica.lag.time.max.ms to prevent frequent changes in ISR".to_string(),
            ));
        }
        Ok(())
    }

    /// The replication factor of the internal topic `name` made now, with
    /// `unfenced` brokers: its config, capped at the brokers there are and
    /// never below 1 (Kafka refuses to make it until enough brokers exist,
    /// which stops a single node with the defaults); None for any other
    /// topic.
    pub fn internal_topic_replication(&self, name: &str, unfenced: usize) -> Option<i16> {
        let configured = match name {
            "__consumer_offsets" => self.offsets_topic_replication_factor,
            "__transaction_state" => self.transaction_state_log_replication_factor,
            _ => return None,
        };
        let available = i16::try_from(unfenced).unwrap_or(i16::MAX).max(1);
        Some(configured.min(available))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_names_defaults_and_bounds() {
        let mut config = ReplicationConfig::default();
        assert_eq!(config.min_insync_replicas, 1);
        assert!(!config.unclean_leader_election_enable);
        assert_eq!(config.replica_lag_time_max_ms, 30_000);
        assert_eq!(config.replica_fetch_wait_max_ms, 500);
        assert_eq!(config.offsets_topic_replication_factor, 3);
        assert!(config.set("min.insync.replicas", "2").unwrap());
        assert_eq!(config.min_insync_replicas, 2);
        assert!(config.set("min.insync.replicas", "0").is_err());
        assert!(config
            .set("unclean.leader.election.enable", "true")
            .unwrap());
        assert!(config.unclean_leader_election_enable);
        assert!(config.set("unclean.leader.election.enable", "yes").is_err());
        assert!(config.set("offsets.topic.replication.factor", "0").is_err());
        assert!(config.set("num.replica.fetchers", "4").unwrap());
        assert!(config.auto_leader_rebalance_enable);
        assert_eq!(config.leader_imbalance_check_interval_seconds, 300);
        assert_eq!(config.leader_imbalance_per_broker_percentage, 10);
        assert!(config.set("auto.leader.rebalance.enable", "false").unwrap());
        assert!(!config.auto_leader_rebalance_enable);
        assert!(config
            .set("leader.imbalance.check.interval.seconds", "0")
            .is_err());
        assert!(config
            .set("leader.imbalance.per.broker.percentage", "101")
            .is_err());
        assert!(config
            .set("leader.imbalance.per.broker.percentage", "0")
            .unwrap());
        assert!(!config.set("replica.selector.class", "x").unwrap());
        assert!(config.check().is_ok());
        config.set("replica.fetch.wait.max.ms", "40000").unwrap();
        assert!(config.check().is_err());
    }

    #[test]
    fn internal_topics_take_at_most_the_brokers_there_are() {
        let config = ReplicationConfig::default();
        let rf = |name, unfenced| config.internal_topic_replication(name, unfenced);
        assert_eq!(rf("__consumer_offsets", 1), Some(1));
        assert_eq!(rf("__consumer_offsets", 0), Some(1));
        assert_eq!(rf("__transaction_state", 2), Some(2));
        assert_eq!(rf("__consumer_offsets", 5), Some(3));
        assert_eq!(rf("orders", 5), None);
    }
}
