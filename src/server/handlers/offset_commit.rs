//! OffsetCommit: member commits (generation checked) and standalone commits
//! (generation -1, the `assign()` consumers); answered once durable.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, RequestHeader};

use super::group_route::{call_group, code};
use crate::group::{CommitRequest, OffsetToCommit};
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{GroupAnswer, GroupCall};

/// Leader epochs in commits exist from v6.
const LEADER_EPOCH_VERSION: i16 = 6;
const NO_LEADER_EPOCH: i32 = -1;

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let version = header.request_api_version;
    let group_id = request.group_id.0.to_string();
    let view = context.shard.view();
    let mut offsets = Vec::new();
    for topic in &request.topics {
        for partition in &topic.partitions {
            offsets.push(OffsetToCommit {
                topic: topic.name.0.to_string(),
                partition: partition.partition_index,
                offset: partition.committed_offset,
                leader_epoch: if version >= LEADER_EPOCH_VERSION {
                    partition.committed_leader_epoch
                } else {
                    NO_LEADER_EPOCH
                },
                metadata: partition
                    .committed_metadata
                    .as_ref()
                    .map(|text| text.to_string()),
            });
        }
    }
    // Kafka refuses commits for partitions of topics that do not exist.
    let unknown = |topic: &str, partition: i32| {
        view.topic(topic)
            .is_none_or(|meta| partition < 0 || partition >= meta.partitions)
    };
    let known: Vec<OffsetToCommit> = offsets
        .iter()
        .filter(|offset| !unknown(&offset.topic, offset.partition))
        .cloned()
        .collect();
    let commit = CommitRequest {
        group_id: group_id.clone(),
        generation_id: request.generation_id_or_member_epoch,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|id| id.to_string()),
        offsets: known,
        api_version: version,
    };
    let results = if commit.offsets.is_empty() {
        Ok(Vec::new())
    } else {
        match call_group(context, &group_id, GroupCall::Commit(commit)).await {
            Ok(GroupAnswer::Offsets(results)) => Ok(results),
            Ok(_) => Err(ResponseError::UnknownServerError),
            Err(error) => Err(error),
        }
    };
    let mut response = OffsetCommitResponse::default();
    response.topics = request
        .topics
        .iter()
        .map(|topic| {
            let mut entry = OffsetCommitResponseTopic::default();
            entry.name = topic.name.clone();
            entry.partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let mut answer = OffsetCommitResponsePartition::default();
                    answer.partition_index = partition.partition_index;
                    answer.error_code = if unknown(topic.name.0.as_str(), partition.partition_index)
                    {
                        ResponseError::UnknownTopicOrPartition.code()
                    } else {
                        match &results {
                            Ok(results) => results
                                .iter()
                                .find(|result| {
                                    result.topic == topic.name.0.as_str()
                                        && result.partition == partition.partition_index
                                })
                                .map_or(0, |result| code(result.error)),
                            Err(error) => error.code(),
                        }
                    };
                    answer
                })
                .collect();
            entry
        })
        .collect();
    response
}
