//! CreateTopics: validated, placed and applied by the controller (shard 0),
//! replica assignments included (`metadata::controller`), each topic's
//! partitions counted against the client's controller mutation quota
//! (`quota::mutation`: strict from v6, as Kafka's); only duplicate names
//! are refused here, as Kafka's broker does.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, RequestHeader};

use super::describe_configs::topic_config_entries;
use super::str_bytes;
use crate::metadata::INTERNAL_TOPICS;
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::server::forward;
use crate::server::throttle::{self, mutator};
use crate::shard::messages::{KafkaError, NewTopic, ShardReply, ShardRequest};
use crate::shard::CONTROLLER_SHARD;

/// The first version that takes THROTTLING_QUOTA_EXCEEDED (Kafka's
/// `strictSinceVersion`); older ones are throttled only.
const STRICT_QUOTA_VERSION: i16 = 6;

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let version = header.request_api_version;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for topic in &request.topics {
        *seen.entry(topic.name.0.to_string()).or_default() += 1;
    }
    let mut results: Vec<Option<Result<_, KafkaError>>> = Vec::with_capacity(request.topics.len());
    let mut to_create = Vec::new();
    let internal = internal_creation(context, header, &request);
    let cluster_create = internal || authorize::cluster(context, Operation::Create);
    for topic in &request.topics {
        let name = topic.name.0.to_string();
        if !cluster_create && !authorize::topic(context, Operation::Create, &name) {
            results.push(Some(Err(authorize::topic_denied())));
            continue;
        }
        if seen.get(&name).copied().unwrap_or(0) > 1 {
            results.push(Some(Err(KafkaError::with_message(
                ResponseError::InvalidRequest,
                format!("Create topics request from client contains duplicate topic {name}"),
            ))));
            continue;
        }
        let assignments = topic
            .assignments
            .iter()
            .map(|assignment| {
                let brokers = assignment.broker_ids.iter().map(|id| id.0).collect();
                (assignment.partition_index, brokers)
            })
            .collect();
        let configs = topic
            .configs
            .iter()
            .filter_map(|config| {
                config
                    .value
                    .as_ref()
                    .map(|value| (config.name.to_string(), value.to_string()))
            })
            .collect();
        results.push(None);
        to_create.push(NewTopic {
            name,
            partitions: topic.num_partitions,
            replication_factor: topic.replication_factor,
            configs,
            assignments,
            validate_only: request.validate_only,
        });
    }
    // The node's own internal topics are not the client's mutations.
    let mutator = (!internal).then(|| mutator(context, header, STRICT_QUOTA_VERSION));
    let (created, throttle_ms) = if to_create.is_empty() {
        (Vec::new(), 0)
    } else {
        match context
            .shard
            .call(
                CONTROLLER_SHARD,
                ShardRequest::CreateTopics(to_create, mutator),
            )
            .await
        {
            ShardReply::CreateTopics(created, throttle_ms) => (created, throttle_ms),
            ShardReply::Failed(error) => (
                vec![Err(error); results.iter().filter(|r| r.is_none()).count()],
                0,
            ),
            _ => (Vec::new(), 0),
        }
    };
    let mut created = created.into_iter();

    let topics = request
        .topics
        .iter()
        .zip(results)
        .map(|(topic, precheck)| {
            let outcome = match precheck {
                Some(outcome) => outcome,
                None => created
                    .next()
                    .unwrap_or_else(|| Err(KafkaError::new(ResponseError::UnknownServerError))),
            };
            let mut result = CreatableTopicResult::default();
            result.name = topic.name.clone();
            match outcome {
                Ok(meta) => {
                    if version >= 7 {
                        result.topic_id = meta.id;
                    }
                    if version >= 5
                        && !authorize::topic(context, Operation::DescribeConfigs, &meta.name)
                    {
                        // Kafka's: created, but its configs, partitions and
                        // replication factor are not shown.
                        result.topic_config_error_code =
                            ResponseError::TopicAuthorizationFailed.code();
                        result.num_partitions = -1;
                        result.replication_factor = -1;
                    } else if version >= 5 {
                        result.num_partitions = meta.partitions;
                        result.replication_factor = meta
                            .states
                            .first()
                            .map_or(1, |state| state.replicas.len() as i16);
                        result.configs = Some(
                            topic_config_entries(&context.shard.config, &meta)
                                .into_iter()
                                .map(|entry| {
                                    let mut config = CreatableTopicConfigs::default();
                                    config.name = str_bytes(entry.name);
                                    config.value = Some(str_bytes(entry.value));
                                    config.config_source = entry.source;
                                    config
                                })
                                .collect(),
                        );
                    }
                }
                Err(error) => {
                    result.error_code = error.code;
                    result.error_message = error.message.map(str_bytes);
                    if version >= 5 {
                        result.num_partitions = -1;
                        result.replication_factor = -1;
                    }
                }
            }
            result
        })
        .collect();
    let mut response = CreateTopicsResponse::default();
    response.topics = topics;
    response.throttle_time_ms = throttle::mutation(context, throttle_ms);
    response
}

/// A node's own creation of internal topics, forwarded to this controller
/// (`forward::create_topics`): the node needs them whoever its client is,
/// so they are not checked against the client's principal, which the
/// Envelope carries (Kafka's brokers send those as their own principal).
/// A client that names itself so gets nothing but the internal topics.
fn internal_creation(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: &CreateTopicsRequest,
) -> bool {
    context.forwarded
        && header.client_id.as_deref() == Some(forward::AUTO_CREATE_CLIENT_ID)
        && request
            .topics
            .iter()
            .all(|topic| INTERNAL_TOPICS.contains(&topic.name.0.as_str()))
}
