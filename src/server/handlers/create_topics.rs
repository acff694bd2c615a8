//! CreateTopics: validated and applied by the controller (shard 0).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, RequestHeader};

use super::describe_configs::topic_config_entries;
use super::str_bytes;
use crate::metadata::brokers::LocalBroker;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{KafkaError, NewTopic, ShardReply, ShardRequest};
use crate::shard::CONTROLLER_SHARD;

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let version = header.request_api_version;
    let view = context.shard.view();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for topic in &request.topics {
        *seen.entry(topic.name.0.to_string()).or_default() += 1;
    }
    let mut results: Vec<Option<Result<_, KafkaError>>> = Vec::with_capacity(request.topics.len());
    let mut to_create = Vec::new();
    for topic in &request.topics {
        let name = topic.name.0.to_string();
        if seen.get(&name).copied().unwrap_or(0) > 1 {
            results.push(Some(Err(KafkaError::with_message(
                ResponseError::InvalidRequest,
                format!("Create topics request from client contains duplicate topic {name}"),
            ))));
            continue;
        }
        let mut partitions = topic.num_partitions;
        let mut replication_factor = topic.replication_factor;
        let mut placement = None;
        if !topic.assignments.is_empty() {
            if partitions != -1 || replication_factor != -1 {
                results.push(Some(Err(KafkaError::with_message(
                    ResponseError::InvalidRequest,
                    "Both numPartitions or replicationFactor and replicasAssignments were set."
                        .to_string(),
                ))));
                continue;
            }
            let owners: Option<Vec<LocalBroker>> = topic
                .assignments
                .iter()
                .enumerate()
                .map(
                    |(index, assignment)| match assignment.broker_ids.as_slice() {
                        [only] if assignment.partition_index == index as i32 => {
                            view.local_broker(only.0)
                        }
                        _ => None,
                    },
                )
                .collect();
            let Some(owners) = owners else {
                let brokers: Vec<String> =
                    view.brokers().iter().map(|b| b.id.to_string()).collect();
                results.push(Some(Err(KafkaError::with_message(
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "Replica assignment must list partitions 0.. in order, each on one broker of {} only.",
                        brokers.join(", ")
                    ),
                ))));
                continue;
            };
            placement = owners
                .iter()
                .map(|owner| match owner {
                    LocalBroker::Shard(shard) => Some(*shard as u32),
                    LocalBroker::Node => None,
                })
                .collect();
            partitions = topic.assignments.len() as i32;
            replication_factor = 1;
        }
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
            partitions,
            replication_factor,
            configs,
            placement,
            validate_only: request.validate_only,
        });
    }
    let mut created = if to_create.is_empty() {
        Vec::new()
    } else {
        match context
            .shard
            .call(CONTROLLER_SHARD, ShardRequest::CreateTopics(to_create))
            .await
        {
            ShardReply::CreateTopics(created) => created,
            ShardReply::Failed(error) => {
                vec![Err(error); results.iter().filter(|r| r.is_none()).count()]
            }
            _ => Vec::new(),
        }
    }
    .into_iter();

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
                    if version >= 5 {
                        result.num_partitions = meta.partitions;
                        result.replication_factor = 1;
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
    response
}
