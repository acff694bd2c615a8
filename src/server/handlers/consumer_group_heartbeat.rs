//! ConsumerGroupHeartbeat (KIP-848): the one request of the consumer group
//! protocol, run on the group's coordinator shard with the topic ids and
//! partition counts of this shard's metadata view. As Kafka's, a member
//! the group admits must also be able to DESCRIBE every topic it names in
//! its subscription (TOPIC_AUTHORIZATION_FAILED otherwise).

use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment, TopicPartitions as ResponsePartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, RequestHeader,
};

use kafka_protocol::error::ResponseError;

use super::group_route::{call_group, code};
use super::str_bytes;
use crate::group::{ConsumerHeartbeatRequest, ConsumerHeartbeatResponse};
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{GroupAnswer, GroupCall};

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let group_id = request.group_id.0.to_string();
    if !subscription_describable(context, &group_id, &request) {
        let mut response = ConsumerGroupHeartbeatResponse::default();
        response.error_code = ResponseError::TopicAuthorizationFailed.code();
        return response;
    }
    let beat = ConsumerHeartbeatRequest {
        group_id: group_id.clone(),
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.as_ref().map(|id| id.to_string()),
        rack_id: request.rack_id.as_ref().map(|id| id.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .as_ref()
            .map(|names| names.iter().map(|name| name.0.to_string()).collect()),
        subscribed_topic_regex: request
            .subscribed_topic_regex
            .as_ref()
            .map(|regex| regex.to_string()),
        server_assignor: request
            .server_assignor
            .as_ref()
            .map(|name| name.to_string()),
        topic_partitions: request.topic_partitions.as_ref().map(|owned| {
            owned
                .iter()
                .map(|topic| (topic.topic_id, topic.partitions.clone()))
                .collect()
        }),
        client_id: header
            .client_id
            .as_ref()
            .map(|id| id.to_string())
            .unwrap_or_default(),
        client_host: context.client_host(),
        api_version: header.request_api_version,
    };
    let call = GroupCall::ConsumerHeartbeat(Box::new(beat));
    let answer = match call_group(context, &group_id, call).await {
        Ok(GroupAnswer::ConsumerHeartbeat(answer)) => answer,
        Ok(_) => ConsumerHeartbeatResponse::default(),
        Err(error) => ConsumerHeartbeatResponse {
            error: Some(error),
            ..ConsumerHeartbeatResponse::default()
        },
    };
    let mut response = ConsumerGroupHeartbeatResponse::default();
    response.error_code = code(answer.error);
    response.error_message = answer.error_message.map(str_bytes);
    response.member_id = answer.member_id.map(str_bytes);
    response.member_epoch = answer.member_epoch;
    response.heartbeat_interval_ms = answer.heartbeat_interval_ms;
    response.assignment = answer.assignment.map(|topics| {
        let mut assignment = Assignment::default();
        assignment.topic_partitions = topics
            .into_iter()
            .map(|(topic_id, partitions)| {
                let mut entry = ResponsePartitions::default();
                entry.topic_id = topic_id;
                entry.partitions = partitions;
                entry
            })
            .collect();
        assignment
    });
    response
}

/// Kafka's order: the group's READ first (`call_group` answers
/// GROUP_AUTHORIZATION_FAILED), then DESCRIBE on each subscribed topic.
fn subscription_describable(
    context: &ConnectionContext,
    group_id: &str,
    request: &ConsumerGroupHeartbeatRequest,
) -> bool {
    let Some(names) = &request.subscribed_topic_names else {
        return true;
    };
    !authorize::enabled(context)
        || !authorize::group(context, Operation::Read, group_id)
        || names
            .iter()
            .all(|name| authorize::topic(context, Operation::Describe, &name.0))
}
