//! TxnOffsetCommit: a transactional producer's offsets for a consumer group
//! (`sendOffsetsToTransaction`), pending in the group's coordinator until
//! the transaction's marker lands; answered once their records are durable.
//!
//! Version 5 is accepted as version 4: it differs only in what a client of
//! transactions version 2 (KIP-890) expects the broker to verify, and shoal
//! does not advertise that version, so no client sends it in a transaction.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{RequestHeader, TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::group_route::{call_group, code};
use crate::group::{OffsetToCommit, PartitionOffset, TxnCommitRequest, TxnProducer};
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{GroupAnswer, GroupCall};

/// Leader epochs in commits exist from v2.
const LEADER_EPOCH_VERSION: i16 = 2;
/// Clients before v2 (Kafka 0.11 to 2.0) may fail on a loading error:
/// Kafka answers them COORDINATOR_NOT_AVAILABLE instead (KAFKA-7296).
const LOAD_IN_PROGRESS_VERSION: i16 = 2;
const NO_LEADER_EPOCH: i32 = -1;

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let version = header.request_api_version;
    let group_id = request.group_id.0.to_string();
    let view = context.shard.view();
    // Kafka refuses commits for partitions of topics that do not exist.
    let unknown = |topic: &str, partition: i32| {
        view.topic(topic)
            .is_none_or(|meta| partition < 0 || partition >= meta.partitions)
    };
    let offsets: Vec<OffsetToCommit> = request
        .topics
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(move |partition| (topic.name.0.as_str(), partition))
        })
        .filter(|(topic, partition)| !unknown(topic, partition.partition_index))
        .map(|(topic, partition)| OffsetToCommit {
            topic: topic.to_string(),
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
        })
        .collect();
    let commit = TxnCommitRequest {
        group_id: group_id.clone(),
        producer: TxnProducer {
            producer_id: request.producer_id.0,
            producer_epoch: request.producer_epoch,
        },
        // Fields of v3+; the crate reads Kafka's defaults before.
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|id| id.to_string()),
        offsets,
    };
    let results = if commit.offsets.is_empty() {
        Ok(Vec::new())
    } else {
        match call_group(context, &group_id, GroupCall::TxnCommit(commit)).await {
            Ok(GroupAnswer::Offsets(results)) => Ok(results),
            Ok(_) => Err(ResponseError::UnknownServerError),
            Err(error) => Err(error),
        }
    };
    let mut response = TxnOffsetCommitResponse::default();
    response.topics = request
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.0.as_str();
            let mut entry = TxnOffsetCommitResponseTopic::default();
            entry.name = topic.name.clone();
            entry.partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let index = partition.partition_index;
                    let error = match &results {
                        _ if unknown(name, index) => ResponseError::UnknownTopicOrPartition.code(),
                        Ok(results) => result_code(results, name, index),
                        Err(error) => error.code(),
                    };
                    let mut answer = TxnOffsetCommitResponsePartition::default();
                    answer.partition_index = index;
                    answer.error_code = for_version(error, version);
                    answer
                })
                .collect();
            entry
        })
        .collect();
    response
}

fn result_code(results: &[PartitionOffset], topic: &str, partition: i32) -> i16 {
    results
        .iter()
        .find(|result| result.topic == topic && result.partition == partition)
        .map_or(0, |result| code(result.error))
}

fn for_version(error_code: i16, version: i16) -> i16 {
    if version < LOAD_IN_PROGRESS_VERSION
        && error_code == ResponseError::CoordinatorLoadInProgress.code()
    {
        return ResponseError::CoordinatorNotAvailable.code();
    }
    error_code
}
