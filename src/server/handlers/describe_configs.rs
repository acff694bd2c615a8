//! DescribeConfigs: topic configs (overrides over broker defaults) and the
//! broker's own configs, with Kafka's config sources and synonyms: those
//! read at start, and the dynamic ones of the metadata log
//! (`broker_configs::described`).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse, RequestHeader};

use super::{broker_configs, str_bytes};
use crate::config::{
    topic_config_broker_synonym, topic_config_default, BrokerConfig, ConfigKind, ConfigSource,
    INTERNAL_SEGMENT_BYTES, TOPIC_CONFIG_NAMES,
};
use crate::metadata::TopicMeta;
use crate::security::acl::Operation;
use crate::server::authorize;
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
const TYPE_SHORT: i8 = 4;
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
        "unclean.leader.election.enable" => TYPE_BOOLEAN,
        "min.cleanable.dirty.ratio" => TYPE_DOUBLE,
        "compression.type" | "message.timestamp.type" | "flush.policy" => TYPE_STRING,
        "index.interval.bytes"
        | "max.message.bytes"
        | "min.insync.replicas"
        | "segment.bytes"
        | INTERNAL_SEGMENT_BYTES => TYPE_INT,
        _ => TYPE_LONG,
    }
}

/// Every known config of `topic`: its value and where the value comes from;
/// `internal.segment.bytes` only where the topic sets it, as Kafka lists it.
pub fn topic_config_entries(broker: &BrokerConfig, topic: &TopicMeta) -> Vec<ConfigEntry> {
    let internal = topic.configs.contains_key(INTERNAL_SEGMENT_BYTES);
    TOPIC_CONFIG_NAMES
        .iter()
        .copied()
        .chain(internal.then_some(INTERNAL_SEGMENT_BYTES))
        .map(|name| {
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

/// The DEFAULT_CONFIG synonym of topic config `name`, as Kafka lists it:
/// under the broker config the default comes from. `retention.ms` and
/// `segment.ms` have none: their broker configs (`log.retention.ms`,
/// `log.roll.ms`) have no default of their own in Kafka, which lists only
/// synonyms with a value.
fn default_synonym(name: &str, default: String) -> Option<(String, String, i8)> {
    if matches!(name, "retention.ms" | "segment.ms") {
        return None;
    }
    let synonym = topic_config_broker_synonym(name).unwrap_or(name);
    Some((synonym.to_string(), default, SOURCE_DEFAULT))
}

fn config_type(kind: ConfigKind) -> i8 {
    match kind {
        ConfigKind::Boolean => TYPE_BOOLEAN,
        ConfigKind::String => TYPE_STRING,
        ConfigKind::Int => TYPE_INT,
        ConfigKind::Short => TYPE_SHORT,
        ConfigKind::Long => TYPE_LONG,
        ConfigKind::Double => TYPE_DOUBLE,
        ConfigKind::List => TYPE_LIST,
    }
}

fn source_code(source: ConfigSource) -> i8 {
    match source {
        ConfigSource::StaticBroker => SOURCE_STATIC_BROKER,
        ConfigSource::Default => SOURCE_DEFAULT,
    }
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
                         value: Option<String>,
                         source: i8,
                         config_type: i8,
                         synonyms: Vec<(String, Option<String>, i8)>| {
                let mut config = DescribeConfigsResourceResult::default();
                config.name = str_bytes(name);
                config.value = value.map(str_bytes);
                config.config_source = source;
                if request.include_synonyms {
                    config.synonyms = synonyms
                        .into_iter()
                        .map(|(name, value, source)| {
                            let mut synonym = DescribeConfigsSynonym::default();
                            synonym.name = str_bytes(name);
                            synonym.value = value.map(str_bytes);
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
            let name = resource.resource_name.as_str();
            let operation = Operation::DescribeConfigs;
            if let Some(error) =
                authorize::config_resource(context, resource.resource_type, name, operation)
            {
                result.error_code = error.code;
                return result;
            }
            match resource.resource_type {
                RESOURCE_TOPIC => match view.topic(resource.resource_name.as_str()) {
                    Some(topic) => {
                        result.configs = topic_config_entries(broker, topic)
                            .into_iter()
                            .filter(|config| wanted(config.name))
                            .map(|config| {
                                let mut synonyms = config.synonyms;
                                synonyms.extend(default_synonym(
                                    config.name,
                                    topic_config_default(broker, config.name).unwrap_or_default(),
                                ));
                                entry(
                                    config.name,
                                    Some(config.value),
                                    config.source,
                                    topic_config_type(config.name),
                                    synonyms
                                        .into_iter()
                                        .map(|(name, value, source)| (name, Some(value), source))
                                        .collect(),
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
                    if ours {
                        result.configs = broker
                            .describe()
                            .into_iter()
                            .filter(|config| wanted(config.name))
                            .map(|config| {
                                let synonyms = config
                                    .synonyms
                                    .into_iter()
                                    .map(|s| (s.name.to_string(), s.value, source_code(s.source)))
                                    .collect();
                                let mut entry = entry(
                                    config.name,
                                    config.value,
                                    source_code(config.source),
                                    config_type(config.kind),
                                    synonyms,
                                );
                                // Read at start only; the dynamic
                                // ones are listed below.
                                entry.read_only = true;
                                entry
                            })
                            .collect();
                    } else if !name.is_empty() {
                        result.error_code = ResponseError::InvalidRequest.code();
                        result.error_message =
                            Some(str_bytes(format!("Unexpected broker id {name}")));
                        return result;
                    }
                    // This broker's dynamic configs, or for the empty name
                    // the cluster-wide defaults alone.
                    let dynamic = broker_configs::described(&view, broker, name);
                    result.configs.extend(
                        dynamic
                            .into_iter()
                            .filter(|d| wanted(d.name.as_str()))
                            .map(|d| {
                                let mut entry =
                                    entry(&d.name, d.value, d.source, d.config_type, d.synonyms);
                                entry.is_sensitive = d.sensitive;
                                entry
                            }),
                    );
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
