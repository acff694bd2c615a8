//! CreatePartitions: grows topics, validated and applied by the controller
//! (shard 0), which has the owner shards open the new partitions before
//! the new metadata is broadcast; clients find them through Metadata. The
//! partitions added count against the client's controller mutation quota
//! (`quota::mutation`: strict from v3, as Kafka's).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, RequestHeader};

use super::str_bytes;
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::server::throttle::{self, mutator};
use crate::shard::messages::{KafkaError, PartitionGrowth, ShardReply, ShardRequest};
use crate::shard::CONTROLLER_SHARD;

/// The first version that takes THROTTLING_QUOTA_EXCEEDED.
const STRICT_QUOTA_VERSION: i16 = 3;

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for topic in &request.topics {
        *seen.entry(topic.name.0.as_str()).or_default() += 1;
    }
    let mut prechecked = Vec::with_capacity(request.topics.len());
    let mut growths = Vec::new();
    for topic in &request.topics {
        if seen.get(topic.name.0.as_str()).copied().unwrap_or(0) > 1 {
            prechecked.push(Some(Err(KafkaError::with_message(
                ResponseError::InvalidRequest,
                "Duplicate topic name.".to_string(),
            ))));
            continue;
        }
        if !authorize::topic(context, Operation::Alter, &topic.name.0) {
            prechecked.push(Some(Err(authorize::topic_denied())));
            continue;
        }
        prechecked.push(None);
        growths.push(PartitionGrowth {
            topic: topic.name.0.to_string(),
            count: topic.count,
            assignments: topic.assignments.as_ref().map(|assignments| {
                assignments
                    .iter()
                    .map(|assignment| assignment.broker_ids.iter().map(|id| id.0).collect())
                    .collect()
            }),
            validate_only: request.validate_only,
        });
    }
    let count = growths.len();
    let mutator = Some(mutator(context, header, STRICT_QUOTA_VERSION));
    let (applied, throttle_ms) = if growths.is_empty() {
        (Vec::new(), 0)
    } else {
        match context
            .shard
            .call(
                CONTROLLER_SHARD,
                ShardRequest::CreatePartitions(growths, mutator),
            )
            .await
        {
            ShardReply::PartitionsCreated(results, throttle_ms) if results.len() == count => {
                (results, throttle_ms)
            }
            other => (vec![Err(other.into_error()); count], 0),
        }
    };
    let mut applied = applied.into_iter();
    let mut response = CreatePartitionsResponse::default();
    response.results = request
        .topics
        .iter()
        .zip(prechecked)
        .map(|(topic, prechecked)| {
            let outcome = prechecked.unwrap_or_else(|| {
                applied
                    .next()
                    .unwrap_or_else(|| Err(KafkaError::new(ResponseError::UnknownServerError)))
            });
            let mut result = CreatePartitionsTopicResult::default();
            result.name = topic.name.clone();
            if let Err(error) = outcome {
                result.error_code = error.code;
                result.error_message = error.message.map(str_bytes);
            }
            result
        })
        .collect();
    response.throttle_time_ms = throttle::mutation(context, throttle_ms);
    response
}
