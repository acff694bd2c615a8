//! The group coordinator's broker settings (`group.*`, `offsets.*`) and the
//! names of the server assignors, as plain data.
//!
//! Invariant: as all of `config`, imports nothing of shoal; `group` takes its
//! settings from here.

use super::ConfigError;

/// `uniform`: Kafka's default server assignor.
pub const UNIFORM_ASSIGNOR: &str = "uniform";
/// `range`: co-partitions topics the way the client-side range assignor does.
pub const RANGE_ASSIGNOR: &str = "range";

/// Broker settings of the group coordinator, by Kafka's names, with Kafka's
/// defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`
    pub max_session_timeout_ms: i32,
    /// `group.max.size`: members per group.
    pub max_size: usize,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an
    /// empty group waits for more members, so a group starting up rebalances
    /// once rather than once per member.
    pub initial_rebalance_delay_ms: i32,
    /// How long a new member waits in a join barrier before it is dropped
    /// (Kafka's internal `group.classic.new.member.join.timeout.ms`, not a
    /// broker config): a client that gave up on its JoinGroup would otherwise
    /// stay a member forever, since it has no member id to heartbeat with.
    pub new_member_join_timeout_ms: i32,
    /// `offsets.retention.minutes`, in milliseconds.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes`: longest commit metadata string kept.
    pub offset_metadata_max_bytes: usize,
    /// `offsets.topic.num.partitions`: how groups spread over
    /// `__consumer_offsets`.
    pub offsets_topic_num_partitions: i32,
    /// `group.consumer.session.timeout.ms`: how long a consumer-protocol
    /// member lives without a heartbeat.
    pub consumer_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`: told to every member.
    pub consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.assignors`: the server assignors members may ask for;
    /// the first is the default.
    pub consumer_assignors: Vec<String>,
    /// `group.consumer.max.size`: members per consumer-protocol group.
    pub consumer_max_size: usize,
}

impl Default for GroupConfig {
    fn default() -> GroupConfig {
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX as usize,
            initial_rebalance_delay_ms: 3_000,
            new_member_join_timeout_ms: 5 * 60 * 1000,
            offsets_retention_ms: 10_080 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            offsets_topic_num_partitions: 50,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
            consumer_assignors: vec![UNIFORM_ASSIGNOR.to_string(), RANGE_ASSIGNOR.to_string()],
            consumer_max_size: i32::MAX as usize,
        }
    }
}

/// `group.consumer.assignors`: a comma-separated list of the server
/// assignors shoal has (`uniform`, `range`), the first being the default.
/// Kafka also takes class names; shoal only the short names.
pub(super) fn consumer_assignors(value: &str) -> Result<Vec<String>, ConfigError> {
    let names: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect();
    let known = [UNIFORM_ASSIGNOR, RANGE_ASSIGNOR];
    match names.iter().find(|name| !known.contains(&name.as_str())) {
        Some(name) => Err(ConfigError(format!(
            "group.consumer.assignors: unknown assignor {name} (known: uniform, range)"
        ))),
        None if names.is_empty() => Err(ConfigError(
            "group.consumer.assignors: at least one assignor".to_string(),
        )),
        None => Ok(names),
    }
}
