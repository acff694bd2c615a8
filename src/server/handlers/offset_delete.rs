//! OffsetDelete: removes a group's committed offsets for some partitions.
//! As Kafka's: DELETE on the group (`call_group`), then READ on each topic;
//! a topic the principal may not read is answered
//! TOPIC_AUTHORIZATION_FAILED per partition and left out of the call.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, RequestHeader};

use kafka_protocol::error::ResponseError;

use super::group_route::{call_group, code};
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{GroupAnswer, GroupCall};

pub async fn handle(
    context: &ConnectionContext,
    _header: &RequestHeader,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group_id = request.group_id.0.to_string();
    let readable: Vec<bool> = request
        .topics
        .iter()
        .map(|topic| authorize::topic(context, Operation::Read, &topic.name.0))
        .collect();
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .zip(&readable)
        .filter(|(_, readable)| **readable)
        .flat_map(|(topic, _)| {
            topic
                .partitions
                .iter()
                .map(|partition| (topic.name.0.to_string(), partition.partition_index))
        })
        .collect();
    let call = GroupCall::DeleteOffsets {
        group_id: group_id.clone(),
        partitions,
    };
    let mut response = OffsetDeleteResponse::default();
    let results = match call_group(context, &group_id, call).await {
        Ok(GroupAnswer::DeleteOffsets(Ok(results))) => results,
        Ok(GroupAnswer::DeleteOffsets(Err(error))) | Err(error) => {
            response.error_code = error.code();
            return response;
        }
        Ok(_) => Vec::new(),
    };
    response.topics = request
        .topics
        .iter()
        .zip(readable)
        .map(|(topic, readable)| {
            let mut entry = OffsetDeleteResponseTopic::default();
            entry.name = topic.name.clone();
            entry.partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let mut answer = OffsetDeleteResponsePartition::default();
                    answer.partition_index = partition.partition_index;
                    answer.error_code = if !readable {
                        ResponseError::TopicAuthorizationFailed.code()
                    } else {
                        results
                            .iter()
                            .find(|result| {
                                result.topic == topic.name.0.as_str()
                                    && result.partition == partition.partition_index
                            })
                            .map_or(0, |result| code(result.error))
                    };
                    answer
                })
                .collect();
            entry
        })
        .collect();
    response
}
