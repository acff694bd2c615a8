//! TxnOffsetCommit: a transactional producer's offsets for a consumer group
//! (`sendOffsetsToTransaction`), pending in the group's coordinator until
//! the transaction's marker lands; answered once their records are durable.
//!
//! Version 5 comes from a client of transactions version 2 (KIP-890 part
//! 2), which sends no AddOffsetsToTxn: the group's `__consumer_offsets`
//! partition is first added to the producer's transaction here (Kafka's
//! `ADD_PARTITION` operation for TxnOffsetCommit v5), so that the
//! transaction's marker settles these offsets.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{RequestHeader, TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::group_route::group_offsets_partition;
use super::offset_commit::{commit_offsets, commit_partitions, CommitPartition};
use super::txn_route::add_implicitly;
use crate::group::{TxnCommitRequest, TxnProducer, OFFSETS_TOPIC};
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::GroupCall;

/// Leader epochs in commits exist from v2.
const LEADER_EPOCH_VERSION: i16 = 2;
/// Clients before v2 (Kafka 0.11 to 2.0) may fail on a loading error:
/// Kafka answers them COORDINATOR_NOT_AVAILABLE instead (KAFKA-7296).
const LOAD_IN_PROGRESS_VERSION: i16 = 2;
/// TxnOffsetCommit v5 is sent by clients of transactions version 2 only.
const IMPLICIT_ADD_VERSION: i16 = 5;

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let version = header.request_api_version;
    // Kafka's order: the transactional id, then the group (`commit_offsets`).
    if !authorize::transactional_id(context, Operation::Write, &request.transactional_id.0) {
        return refused(&request, ResponseError::TransactionalIdAuthorizationFailed);
    }
    if !authorize::group(context, Operation::Read, &request.group_id.0) {
        return refused(&request, ResponseError::GroupAuthorizationFailed);
    }
    if version >= IMPLICIT_ADD_VERSION {
        if let Err(error) = add_offsets_partition(context, &request).await {
            log::debug!(
                "transactional id {}: offsets of group {} not added: {error:?}",
                request.transactional_id.0,
                request.group_id.0
            );
            return refused(&request, adding_error(error));
        }
    }
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
    answer(&request, |topic, index| {
        for_version(results.code(topic, index), version)
    })
}

/// Adds the group's `__consumer_offsets` partition to the transaction.
async fn add_offsets_partition(
    context: &ConnectionContext,
    request: &TxnOffsetCommitRequest,
) -> Result<(), ResponseError> {
    let partition = group_offsets_partition(context, &request.group_id.0).await?;
    add_implicitly(
        context,
        &request.transactional_id.0,
        (request.producer_id.0, request.producer_epoch),
        vec![(OFFSETS_TOPIC.to_string(), partition)],
    )
    .await
}

/// The coordinator's refusal as the producer reads it: its retriable
/// errors become COORDINATOR_NOT_AVAILABLE, which the Java producer
/// retries after finding the coordinator again (as Kafka's group
/// coordinator normalizes them).
fn adding_error(error: ResponseError) -> ResponseError {
    match error {
        ResponseError::ConcurrentTransactions
        | ResponseError::CoordinatorLoadInProgress
        | ResponseError::NotCoordinator
        | ResponseError::NotEnoughReplicas
        | ResponseError::NetworkException => ResponseError::CoordinatorNotAvailable,
        other => other,
    }
}

/// Every partition of `request` answered `error`.
fn refused(request: &TxnOffsetCommitRequest, error: ResponseError) -> TxnOffsetCommitResponse {
    answer(request, |_, _| error.code())
}

/// The response naming each partition of `request` with `error_code(topic,
/// partition)`.
fn answer(
    request: &TxnOffsetCommitRequest,
    error_code: impl Fn(&str, i32) -> i16,
) -> TxnOffsetCommitResponse {
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
                    answer.error_code = error_code(&topic.name.0, index);
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
