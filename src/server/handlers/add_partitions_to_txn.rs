//! AddPartitionsToTxn: adds partitions to the producer's transaction before
//! it writes to them, so the coordinator knows where the markers go. Up to
//! v3 (what clients send) one transaction, one error for all its
//! partitions; v4+ (KIP-890, sent by partition leaders, shoal's
//! `shard/txn_verify.rs` among them) a batch of transactions, each either,
//! with `verify_only`, checked (each partition's own error,
//! TRANSACTION_ABORTABLE when not in the transaction), or added for a
//! producer of transactions version 2, whose Produce adds its partitions
//! (Kafka's `ADD_PARTITION` operation), as Kafka answers both. As Kafka,
//! v4+ is taken only with CLUSTER_ACTION (from brokers); before, WRITE on
//! the transactional id and on each (non-internal) topic.
//!
//! A partition the broker does not have fails the whole transaction's
//! request: UNKNOWN_TOPIC_OR_PARTITION for it, OPERATION_NOT_ATTEMPTED for
//! the others, nothing added.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TopicName, TransactionalId,
};

use super::str_bytes;
use super::txn_route::{call_txn, fenced_for};
use crate::metadata::INTERNAL_TOPICS;
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{TxnAnswer, TxnCall};

/// v4 batches transactions (KIP-890).
const BATCHED_VERSION: i16 = 4;
/// AddPartitionsToTxn v2 is the first whose clients know PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION: i16 = 2;

/// One transaction's part of the request.
struct Transaction {
    transactional_id: String,
    producer_id: i64,
    producer_epoch: i16,
    verify_only: bool,
    partitions: Vec<(String, i32)>,
}

pub async fn handle(
    context: &ConnectionContext,
    version: i16,
    request: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let mut response = AddPartitionsToTxnResponse::default();
    if version < BATCHED_VERSION {
        let transaction = Transaction {
            transactional_id: request.v3_and_below_transactional_id.0.to_string(),
            producer_id: request.v3_and_below_producer_id.0,
            producer_epoch: request.v3_and_below_producer_epoch,
            verify_only: false,
            partitions: flatten(&request.v3_and_below_topics),
        };
        let errors = add(context, version, &transaction).await;
        response.results_by_topic_v3_and_below = topic_results(&transaction.partitions, &errors);
        return response;
    }
    if !authorize::cluster(context, Operation::ClusterAction) {
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return response;
    }
    let transactions: Vec<Transaction> = request
        .transactions
        .iter()
        .map(|transaction| Transaction {
            transactional_id: transaction.transactional_id.0.to_string(),
            producer_id: transaction.producer_id.0,
            producer_epoch: transaction.producer_epoch,
            verify_only: transaction.verify_only,
            partitions: flatten(&transaction.topics),
        })
        .collect();
    let results = futures_util::future::join_all(
        transactions
            .iter()
            .map(|transaction| add(context, version, transaction)),
    )
    .await;
    response.results_by_transaction = transactions
        .iter()
        .zip(results)
        .map(|(transaction, errors)| {
            AddPartitionsToTxnResult::default()
                .with_transactional_id(TransactionalId(str_bytes(
                    transaction.transactional_id.clone(),
                )))
                .with_topic_results(topic_results(&transaction.partitions, &errors))
        })
        .collect();
    response
}

fn flatten(topics: &[AddPartitionsToTxnTopic]) -> Vec<(String, i32)> {
    topics
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(|&partition| (topic.name.0.to_string(), partition))
        })
        .collect()
}

/// Each partition's error code, in the order of `transaction.partitions`.
async fn add(context: &ConnectionContext, version: i16, transaction: &Transaction) -> Vec<i16> {
    let count = transaction.partitions.len();
    if version < BATCHED_VERSION {
        if let Some(refused) = unauthorized(context, transaction) {
            return refused;
        }
    }
    let view = context.shard.view();
    let unknown: Vec<bool> = transaction
        .partitions
        .iter()
        .map(|(topic, partition)| {
            !view
                .topic(topic)
                .is_some_and(|meta| (0..meta.partitions).contains(partition))
        })
        .collect();
    if unknown.contains(&true) {
        return unknown
            .into_iter()
            .map(|unknown| {
                if unknown {
                    ResponseError::UnknownTopicOrPartition.code()
                } else {
                    ResponseError::OperationNotAttempted.code()
                }
            })
            .collect();
    }
    let call = if version >= BATCHED_VERSION && !transaction.verify_only {
        TxnCall::AddImplicitly {
            transactional_id: transaction.transactional_id.clone(),
            producer_id: transaction.producer_id,
            producer_epoch: transaction.producer_epoch,
            partitions: transaction.partitions.clone(),
        }
    } else {
        TxnCall::AddPartitions {
            transactional_id: transaction.transactional_id.clone(),
            producer_id: transaction.producer_id,
            producer_epoch: transaction.producer_epoch,
            partitions: transaction.partitions.clone(),
            verify_only: transaction.verify_only,
        }
    };
    let answer = match call_txn(context, &transaction.transactional_id, call).await {
        Ok(TxnAnswer::Added(answer)) => answer,
        Ok(_) => Err(ResponseError::UnknownServerError),
        Err(error) => Err(error),
    };
    match answer {
        Ok(errors) if errors.len() == count => errors
            .into_iter()
            .map(|error| error.map_or(0, |error| error.code()))
            .collect(),
        Ok(_) => vec![0; count],
        Err(error) => vec![fenced_for(version, PRODUCER_FENCED_VERSION, error).code(); count],
    }
}

/// A client's transaction the principal may not extend: WRITE on the
/// transactional id (else all TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and
/// on each non-internal topic (else TOPIC_AUTHORIZATION_FAILED for those,
/// OPERATION_NOT_ATTEMPTED for the rest).
fn unauthorized(context: &ConnectionContext, transaction: &Transaction) -> Option<Vec<i16>> {
    let count = transaction.partitions.len();
    if !authorize::transactional_id(context, Operation::Write, &transaction.transactional_id) {
        return Some(vec![
            ResponseError::TransactionalIdAuthorizationFailed.code();
            count
        ]);
    }
    let denied: Vec<bool> = transaction
        .partitions
        .iter()
        .map(|(topic, _)| {
            !INTERNAL_TOPICS.contains(&topic.as_str())
                && !authorize::topic(context, Operation::Write, topic)
        })
        .collect();
    denied.contains(&true).then(|| {
        denied
            .into_iter()
            .map(|denied| match denied {
                true => ResponseError::TopicAuthorizationFailed.code(),
                false => ResponseError::OperationNotAttempted.code(),
            })
            .collect()
    })
}

/// Per-topic results of `partitions` with their `codes`, in request order.
fn topic_results(
    partitions: &[(String, i32)],
    codes: &[i16],
) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut results: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for ((topic, partition), &code) in partitions.iter().zip(codes) {
        let result = AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(*partition)
            .with_partition_error_code(code);
        match results
            .iter_mut()
            .find(|entry| entry.name.0.as_str() == topic)
        {
            Some(entry) => entry.results_by_partition.push(result),
            None => results.push(
                AddPartitionsToTxnTopicResult::default()
                    .with_name(TopicName(str_bytes(topic.clone())))
                    .with_results_by_partition(vec![result]),
            ),
        }
    }
    results
}
