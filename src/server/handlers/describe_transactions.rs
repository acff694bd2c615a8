//! DescribeTransactions: each transactional id's state, producer, timeout,
//! start time and partitions, from the coordinator of the id. As Kafka's:
//! DESCRIBE on the transactional id, and only the partitions of topics the
//! principal may DESCRIBE are listed.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
    TransactionalId,
};

use super::str_bytes;
use super::txn_route::call_txn;
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{TxnAnswer, TxnCall};
use crate::txn::DescribedTxn;

pub async fn handle(
    context: &ConnectionContext,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let described = futures_util::future::join_all(
        request
            .transactional_ids
            .iter()
            .map(|id| describe(context, id.0.to_string())),
    )
    .await;
    let mut response = DescribeTransactionsResponse::default();
    response.transaction_states = request
        .transactional_ids
        .into_iter()
        .zip(described)
        .map(|(id, described)| state(id, described))
        .collect();
    response
}

async fn describe(
    context: &ConnectionContext,
    transactional_id: String,
) -> Result<DescribedTxn, ResponseError> {
    if !authorize::transactional_id(context, Operation::Describe, &transactional_id) {
        return Err(ResponseError::TransactionalIdAuthorizationFailed);
    }
    let call = TxnCall::Describe(transactional_id.clone());
    let mut described = match call_txn(context, &transactional_id, call).await? {
        TxnAnswer::Described(answer) => answer?,
        _ => return Err(ResponseError::UnknownServerError),
    };
    described
        .partitions
        .retain(|(topic, _)| authorize::topic(context, Operation::Describe, topic));
    Ok(described)
}

fn state(id: TransactionalId, described: Result<DescribedTxn, ResponseError>) -> TransactionState {
    let mut state = TransactionState::default().with_transactional_id(id);
    let txn = match described {
        Ok(txn) => txn,
        Err(error) => return state.with_error_code(error.code()),
    };
    let mut topics: Vec<TopicData> = Vec::new();
    for (topic, partition) in &txn.partitions {
        match topics
            .iter_mut()
            .find(|data| data.topic.0.as_str() == topic)
        {
            Some(data) => data.partitions.push(*partition),
            None => topics.push(
                TopicData::default()
                    .with_topic(TopicName(str_bytes(topic.clone())))
                    .with_partitions(vec![*partition]),
            ),
        }
    }
    state.transaction_state = str_bytes(txn.state.name());
    state.transaction_timeout_ms = txn.timeout_ms;
    state.transaction_start_time_ms = txn.start_ms;
    state.producer_id = ProducerId(txn.producer_id);
    state.producer_epoch = txn.producer_epoch;
    state.topics = topics;
    state
}
