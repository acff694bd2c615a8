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

use super::offset_commit::{commit_offsets, commit_partitions, CommitPartition};
use crate::group::{TxnCommitRequest, TxnProducer};
use crate::server::connection::ConnectionContext;
use crate::shard::messages::GroupCall;

/// Leader epochs in commits exist from v2.
const LEADER_EPOCH_VERSION: i16 = 2;
/// Clients before v2 (Kafka 0.11 to 2.0) may fail on a loading error:
/// Kafka answers them COORDINATOR_NOT_AVAILABLE instead (KAFKA-7296).
const LOAD_IN_PROGRESS_VERSION: i16 = 2;

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let version = header.request_api_version;
    let partitions = commit_partitions!(request.topics, version >= LEADER_EPOCH_VERSION);
    let results = commit_offsets(context, &request.group_id.0, partitions, |offsets| {
        GroupCall::TxnCommit(TxnCommitRequest {
            group_id: request.group_id.0.to_string(),
            producer: TxnProducer {
                producer_id: request.producer_id.0,
                producer_epoch: request.producer_epoch,
            },
            // Fields of v3+; the crate reads Kafka's defaults before.
            generation_id: request.generation_id,
            member_id: request.member_id.to_string(),
            group_instance_id: request.group_instance_id.as_ref().map(|id| id.to_string()),
            offsets,
        })
    })
    .await;
    let mut response = TxnOffsetCommitResponse::default();
    response.topics = request
        .topics
        .iter()
        .map(|topic| {
            let mut entry = TxnOffsetCommitResponseTopic::default();
            entry.name = topic.name.clone();
            entry.partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let index = partition.partition_index;
                    let mut answer = TxnOffsetCommitResponsePartition::default();
                    answer.partition_index = index;
                    answer.error_code = for_version(results.code(&topic.name.0, index), version);
                    answer
                })
                .collect();
            entry
        })
        .collect();
    response
}

fn for_version(error_code: i16, version: i16) -> i16 {
    if version < LOAD_IN_PROGRESS_VERSION
        && error_code == ResponseError::CoordinatorLoadInProgress.code()
    {
        return ResponseError::CoordinatorNotAvailable.code();
    }
    error_code
}
