//! DeleteTopics: by name (v1–v5) or by name or id (v6+), via the controller,
//! each topic's partitions counted against the client's controller
//! mutation quota (`quota::mutation`: strict from v5, as Kafka's).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    DeleteTopicsRequest, DeleteTopicsResponse, RequestHeader, TopicName,
};

use super::str_bytes;
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::server::throttle::{self, mutator};
use crate::shard::messages::{KafkaError, ShardReply, ShardRequest, TopicRef};
use crate::shard::CONTROLLER_SHARD;

/// The first version that takes THROTTLING_QUOTA_EXCEEDED.
const STRICT_QUOTA_VERSION: i16 = 5;

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let version = header.request_api_version;
    let targets: Vec<TopicRef> = if version >= 6 {
        request
            .topics
            .iter()
            .map(|topic| match &topic.name {
                Some(name) => TopicRef::Name(name.0.to_string()),
                None => TopicRef::Id(topic.topic_id),
            })
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|name| TopicRef::Name(name.0.to_string()))
            .collect()
    };
    let denied = deletion_denied(context, &targets);
    let allowed: Vec<TopicRef> = targets
        .iter()
        .zip(&denied)
        .filter(|(_, denied)| !**denied)
        .map(|(target, _)| target.clone())
        .collect();
    let mutator = Some(mutator(context, header, STRICT_QUOTA_VERSION));
    let (deleted, throttle_ms) = if allowed.is_empty() {
        (Vec::new(), 0)
    } else {
        match context
            .shard
            .call(
                CONTROLLER_SHARD,
                ShardRequest::DeleteTopics(allowed.clone(), mutator),
            )
            .await
        {
            ShardReply::DeleteTopics(outcomes, throttle_ms) => (outcomes, throttle_ms),
            ShardReply::Failed(error) => (allowed.iter().map(|_| Err(error.clone())).collect(), 0),
            _ => (Vec::new(), 0),
        }
    };
    let mut deleted = deleted.into_iter();
    let outcomes: Vec<_> = denied
        .iter()
        .map(|denied| match denied {
            true => Err(authorize::topic_denied()),
            false => deleted
                .next()
                .unwrap_or_else(|| Err(KafkaError::new(ResponseError::UnknownServerError))),
        })
        .collect();
    let responses = targets
        .into_iter()
        .zip(outcomes)
        .map(|(target, outcome)| {
            let mut result = DeletableTopicResult::default();
            match (&target, &outcome) {
                (_, Ok((name, id))) => {
                    result.name = Some(TopicName(str_bytes(name.clone())));
                    if version >= 6 {
                        result.topic_id = *id;
                    }
                }
                (TopicRef::Name(name), Err(_)) => {
                    result.name = Some(TopicName(str_bytes(name.clone())))
                }
                (TopicRef::Id(id), Err(_)) => {
                    result.name = None;
                    result.topic_id = *id;
                }
            }
            if let Err(error) = outcome {
                result.error_code = error.code;
                if version >= 5 {
                    result.error_message = error.message.map(str_bytes);
                }
            }
            result
        })
        .collect();
    let mut response = DeleteTopicsResponse::default();
    response.responses = responses;
    response.throttle_time_ms = throttle::mutation(context, throttle_ms);
    response
}

/// For each target, whether the principal lacks DELETE on it (an unknown
/// id names no topic: the controller answers it).
fn deletion_denied(context: &ConnectionContext, targets: &[TopicRef]) -> Vec<bool> {
    let view = context.shard.view();
    targets
        .iter()
        .map(|target| {
            let name = match target {
                TopicRef::Name(name) => Some(name.as_str()),
                TopicRef::Id(id) => view.topic_by_id(*id).map(|meta| meta.name.as_str()),
            };
            name.is_some_and(|name| !authorize::topic(context, Operation::Delete, name))
        })
        .collect()
}
