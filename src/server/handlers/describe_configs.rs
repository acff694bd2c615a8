//! DescribeConfigs: topic configs (overrides over broker defaults) and the
//! broker's own configs, with Kafka's config sources and synonyms.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse, RequestHeader};

use super::str_bytes;
use crate::config::{
    topic_config_broker_synonym, topic_config_default, BrokerConfig, TOPIC_CONFIG_NAMES,
};
use crate::metadata::TopicMeta;
use crate::server::connection::ConnectionContext;

/// Kafka's ConfigResource.Type codes.
pub(super) const RESOURCE_TOPIC: i8 = 2;
pub(super) const RESOURCE_BROKER: i8 = 4;

/// Kafka's ConfigSource codes.
pub const SOURCE_DYNAMIC_TOPIC: i8 = 1;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

/// Kafka's ConfigType codes (KIP-569).
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_DOUBLE: i8 = 6;
const TYPE_LIST: i8 = 7;
const TYPE_BOOLEAN: i8 = 1;

/// One config of a topic as clients see it.
pub struct ConfigEntry {
    pub name: &'static str,
    pub value: String,
    pub source: i8,
    /// (broker name, value, source) in Kafka's precedence order after the entry itself.
    pub synonyms: Vec<(String, String, i8)>,
}

fn topic_config_type(name: &str) -> i8 {
    match name {
        "cleanup.policy" => TYPE_LIST,
        "min.cleanable.dirty.ratio" => TYPE_DOUBLE,
        "compression.type" | "message.timestamp.type" | "flush.policy" => TYPE_STRING,
        "index.interval.bytes" | "max.message.bytes" | "min.insync.replicas" | "segment.bytes" => {
            TYPE_INT
        }
        _ => TYPE_LONG,
    }
}

/// Every known config of `topic`: its value and where the value comes from.
pub fn topic_config_entries(broker: &BrokerConfig, topic: &TopicMeta) -> Vec<ConfigEntry> {
    TOPIC_CONFIG_NAMES
        .iter()
        .map(|&name| {
            let default = topic_config_default(broker, name).unwrap_or_default();
            let broker_name = topic_config_broker_synonym(name);
            let broker_set = broker_name.and_then(|key| broker.explicit.get(key).map(|_| key));
            let mut synonyms = Vec::new();
            if let Some(value) = topic.configs.get(name) {
                synonyms.push((name.to_string(), value.clone(), SOURCE_DYNAMIC_TOPIC));
            }
            if let Some(key) = broker_set {
                synonyms.push((key.to_string(), default.clone(), SOURCE_STATIC_BROKER));
            }
            let (value, source) = match topic.configs.get(name) {
                Some(value) => (value.clone(), SOURCE_DYNAMIC_TOPIC),
                None if broker_set.is_some() => (default, SOURCE_STATIC_BROKER),
                None => (default, SOURCE_DEFAULT),
            };
            ConfigEntry {
                name,
                value,
                source,
                synonyms,
            }
        })
        .collect()
}

/// The broker configs shoal reads, with their current values.
fn broker_config_entries(broker: &BrokerConfig) -> Vec<(&'static str, String, i8)> {
    let values: Vec<(&'static str, String, i8)> = vec![
        (
            "advertised.listeners",
            format!("PLAINTEXT://{}", broker.advertise),
            TYPE_STRING,
        ),
        (
            "auto.create.topics.enable",
            broker.auto_create_topics_enable.to_string(),
            TYPE_BOOLEAN,
        ),
        (
            "default.replication.factor",
            broker.default_replication_factor.to_string(),
            TYPE_INT,
        ),
        (
            "fetch.max.bytes",
            broker.fetch_max_bytes.to_string(),
            TYPE_INT,
        ),
        (
            "listener.shard.aware",
            broker.listener_shard_aware.to_string(),
            TYPE_BOOLEAN,
        ),
        (
            "listener.shard.port.base",
            broker.shard_port_base().to_string(),
            TYPE_INT,
        ),
        (
            "listeners",
            format!("PLAINTEXT://{}", broker.listen),
            TYPE_STRING,
        ),
        (
            "log.cleaner.backoff.ms",
            broker.log_cleaner_backoff_ms.to_string(),
            TYPE_LONG,
        ),
        (
            "log.cleaner.dedupe.buffer.size",
            broker.log_cleaner_dedupe_buffer_size.to_string(),
            TYPE_LONG,
        ),
        (
            "log.cleaner.delete.retention.ms",
            broker.log_cleaner_delete_retention_ms.to_string(),
            TYPE_LONG,
        ),
        (
            "log.cleaner.enable",
            broker.log_cleaner_enable.to_string(),
            TYPE_BOOLEAN,
        ),
        (
            "log.cleaner.io.max.bytes.per.second",
            broker.log_cleaner_io_max_bytes_per_second.to_string(),
            TYPE_DOUBLE,
        ),
        (
            "log.cleaner.max.compaction.lag.ms",
            broker.log_cleaner_max_compaction_lag_ms.to_string(),
            TYPE_LONG,
        ),
        (
            "log.cleaner.min.cleanable.ratio",
            broker.log_cleaner_min_cleanable_ratio.to_string(),
            TYPE_DOUBLE,
        ),
        (
            "log.cleaner.min.compaction.lag.ms",
            broker.log_cleaner_min_compaction_lag_ms.to_string(),
            TYPE_LONG,
        ),
        (
            "log.cleanup.policy",
            broker.log_cleanup_policy.clone(),
            TYPE_LIST,
        ),
        (
            "log.dirs",
            broker.data_dir.display().to_string(),
            TYPE_STRING,
        ),
        (
            "log.flush.interval.ms",
            broker.log_flush_interval_ms.to_string(),
            TYPE_LONG,
        ),
        (
            "log.flush.offset.checkpoint.interval.ms",
            broker.log_flush_offset_checkpoint_interval_ms.to_string(),
            TYPE_INT,
        ),
        (
            "log.flush.policy",
            broker.log_flush_policy.clone(),
            TYPE_STRING,
        ),
        (
            "log.index.interval.bytes",
            broker.log_index_interval_bytes.to_string(),
            TYPE_INT,
        ),
        (
            "log.message.timestamp.after.max.ms",
            broker.log_message_timestamp_after_max_ms.to_string(),
            TYPE_LONG,
        ),
        (
            "log.message.timestamp.before.max.ms",
            broker.log_message_timestamp_before_max_ms.to_string(),
            TYPE_LONG,
        ),
        (
            "log.message.timestamp.type",
            broker.log_message_timestamp_type.clone(),
            TYPE_STRING,
        ),
        (
            "log.retention.bytes",
            broker.log_retention_bytes.to_string(),
            TYPE_LONG,
        ),
        (
            "log.retention.check.interval.ms",
            broker.log_retention_check_interval_ms.to_string(),
            TYPE_LONG,
        ),
        (
            "log.retention.ms",
            broker.log_retention_ms.to_string(),
            TYPE_LONG,
        ),
        ("log.roll.ms", broker.log_roll_ms.to_string(), TYPE_LONG),
        (
            "log.segment.bytes",
            broker.log_segment_bytes.to_string(),
            TYPE_INT,
        ),
        (
            "message.max.bytes",
            broker.message_max_bytes.to_string(),
            TYPE_INT,
        ),
        ("node.id", broker.node_id.to_string(), TYPE_INT),
        (
            "offsets.topic.segment.bytes",
            broker.offsets_topic_segment_bytes.to_string(),
            TYPE_INT,
        ),
        (
            "num.partitions",
            broker.num_partitions.to_string(),
            TYPE_INT,
        ),
        (
            "shard.spin.before.park.us",
            broker.shard_spin_before_park_us.to_string(),
            TYPE_LONG,
        ),
        (
            "socket.request.max.bytes",
            broker.socket_request_max_bytes.to_string(),
            TYPE_INT,
        ),
    ];
    values
}

pub fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let version = header.request_api_version;
    let view = context.shard.view();
    let broker = &context.shard.config;
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let mut result = DescribeConfigsResult::default();
            result.resource_type = resource.resource_type;
            result.resource_name = resource.resource_name.clone();
            let wanted = |name: &str| {
                resource
                    .configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|key| key.as_str() == name))
            };
            let entry = |name: &str,
                         value: String,
                         source: i8,
                         config_type: i8,
                         synonyms: Vec<(String, String, i8)>| {
                let mut config = DescribeConfigsResourceResult::default();
                config.name = str_bytes(name);
                config.value = Some(str_bytes(value));
                config.config_source = source;
                if request.include_synonyms {
                    config.synonyms = synonyms
                        .into_iter()
                        .map(|(name, value, source)| {
                            let mut synonym = DescribeConfigsSynonym::default();
                            synonym.name = str_bytes(name);
                            synonym.value = Some(str_bytes(value));
                            synonym.source = source;
                            synonym
                        })
                        .collect();
                }
                if version >= 3 {
                    config.config_type = config_type;
                }
                config
            };
            match resource.resource_type {
                RESOURCE_TOPIC => match view.topic(resource.resource_name.as_str()) {
                    Some(topic) => {
                        result.configs = topic_config_entries(broker, topic)
                            .into_iter()
                            .filter(|config| wanted(config.name))
                            .map(|config| {
                                let mut synonyms = config.synonyms;
                                synonyms.push((
                                    config.name.to_string(),
                                    topic_config_default(broker, config.name).unwrap_or_default(),
                                    SOURCE_DEFAULT,
                                ));
                                entry(
                                    config.name,
                                    config.value,
                                    config.source,
                                    topic_config_type(config.name),
                                    synonyms,
                                )
                            })
                            .collect();
                    }
                    None => {
                        result.error_code = ResponseError::UnknownTopicOrPartition.code();
                        result.error_message = Some(str_bytes(format!(
                            "Topic '{}' does not exist.",
                            resource.resource_name.as_str()
                        )));
                    }
                },
                RESOURCE_BROKER => {
                    let name = resource.resource_name.as_str();
                    let ours = name
                        .parse::<i32>()
                        .is_ok_and(|id| view.local_broker(id).is_some());
                    if name.is_empty() || ours {
                        result.configs = broker_config_entries(broker)
                            .into_iter()
                            .filter(|(name, _, _)| wanted(name))
                            .map(|(name, value, config_type)| {
                                let source = if broker.explicit.contains_key(name) {
                                    SOURCE_STATIC_BROKER
                                } else {
                                    SOURCE_DEFAULT
                                };
                                entry(
                                    name,
                                    value.clone(),
                                    source,
                                    config_type,
                                    vec![(name.to_string(), value, source)],
                                )
                            })
                            .collect();
                    } else {
                        result.error_code = ResponseError::InvalidRequest.code();
                        result.error_message =
                            Some(str_bytes(format!("Unexpected broker id {name}")));
                    }
                }
                other => {
                    result.error_code = ResponseError::InvalidRequest.code();
                    result.error_message =
                        Some(str_bytes(format!("Unsupported resource type {other}")));
                }
            }
            result
        })
        .collect();
    let mut response = DescribeConfigsResponse::default();
    response.results = results;
    response
}
