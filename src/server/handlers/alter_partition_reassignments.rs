//! AlterPartitionReassignments: each partition's target replicas (or a
//! cancel), carried out by the active controller (a broker forwards the
//! request there, `forward.rs`), which answers once the reassignments'
//! first step is committed (`metadata::reassignment`). From v1 a request
//! may forbid replication factor changes (KIP-860): a target of another
//! length is refused INVALID_REPLICATION_FACTOR.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};

use super::str_bytes;
use crate::metadata::reassignment::ReassignItem;
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{KafkaError, ShardReply, ShardRequest};
use crate::shard::CONTROLLER_SHARD;

pub async fn handle(
    context: &ConnectionContext,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let items: Vec<ReassignItem> = request
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|partition| ReassignItem {
                topic: topic.name.0.to_string(),
                partition: partition.partition_index,
                target: partition
                    .replicas
                    .as_ref()
                    .map(|replicas| replicas.iter().map(|id| id.0).collect()),
                allow_replication_factor_change: request.allow_replication_factor_change,
            })
        })
        .collect();
    let count = items.len();
    let results = if !authorize::cluster(context, Operation::Alter) {
        vec![Err(authorize::cluster_denied()); count]
    } else if items.is_empty() {
        Vec::new()
    } else {
        match context
            .shard
            .call(CONTROLLER_SHARD, ShardRequest::AlterReassignments(items))
            .await
        {
            ShardReply::Applied(results) if results.len() == count => results,
            other => vec![Err(other.into_error()); count],
        }
    };
    response(&request, results)
}

/// Each partition's result under its topic, in request order.
fn response(
    request: &AlterPartitionReassignmentsRequest,
    results: Vec<Result<(), KafkaError>>,
) -> AlterPartitionReassignmentsResponse {
    let mut results = results.into_iter();
    let mut response = AlterPartitionReassignmentsResponse::default();
    // v1 echoes the request's flag (KIP-860).
    response.allow_replication_factor_change = request.allow_replication_factor_change;
    response.responses = request
        .topics
        .iter()
        .map(|topic| {
            let mut entry = ReassignableTopicResponse::default();
            entry.name = topic.name.clone();
            entry.partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let outcome = results
                        .next()
                        .unwrap_or_else(|| Err(KafkaError::new(ResponseError::UnknownServerError)));
                    let mut answer = ReassignablePartitionResponse::default();
                    answer.partition_index = partition.partition_index;
                    if let Err(error) = outcome {
                        answer.error_code = error.code;
                        answer.error_message = error.message.map(str_bytes);
                    }
                    answer
                })
                .collect();
            entry
        })
        .collect();
    response
}
