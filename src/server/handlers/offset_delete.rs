//! OffsetDelete: removes a group's committed offsets for some partitions.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, RequestHeader};

use super::group_route::{call_group, code};
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{GroupAnswer, GroupCall};

pub async fn handle(
    context: &ConnectionContext,
    _header: &RequestHeader,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group_id = request.group_id.0.to_string();
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|topic| {
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
        .map(|topic| {
            let mut entry = OffsetDeleteResponseTopic::default();
            entry.name = topic.name.clone();
            entry.partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let mut answer = OffsetDeleteResponsePartition::default();
                    answer.partition_index = partition.partition_index;
                    answer.error_code = results
                        .iter()
                        .find(|result| {
                            result.topic == topic.name.0.as_str()
                                && result.partition == partition.partition_index
                        })
                        .map_or(0, |result| code(result.error));
                    answer
                })
                .collect();
            entry
        })
        .collect();
    response
}
