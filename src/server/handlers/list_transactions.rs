//! ListTransactions: the transactional ids the coordinators this connection
//! speaks for know, filtered by state name, producer id and (v1, KIP-994)
//! how long the transaction has run. Unknown state names come back in
//! `unknown_state_filters` and match nothing, as in Kafka.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};

use super::str_bytes;
use super::txn_route::list_all;
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::txn::TxnState;

/// The duration filter Kafka reads as "none".
const NO_DURATION_FILTER: i64 = -1;

pub async fn handle(
    context: &ConnectionContext,
    version: i16,
    request: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let mut response = ListTransactionsResponse::default();
    let mut states = Vec::new();
    for name in &request.state_filters {
        match TxnState::from_name(name.as_str()) {
            Some(state) => states.push(state),
            None => response.unknown_state_filters.push(name.clone()),
        }
    }
    if !request.state_filters.is_empty() && states.is_empty() {
        return response;
    }
    let producer_ids = request.producer_id_filters.iter().map(|id| id.0).collect();
    let min_duration_ms = if version >= 1 {
        request.duration_filter
    } else {
        NO_DURATION_FILTER
    };
    match list_all(context, states, producer_ids, min_duration_ms).await {
        Ok(listed) => {
            response.transaction_states = listed
                .into_iter()
                .filter(|txn| {
                    authorize::transactional_id(context, Operation::Describe, &txn.transactional_id)
                })
                .map(|txn| {
                    TransactionState::default()
                        .with_transactional_id(TransactionalId(str_bytes(txn.transactional_id)))
                        .with_producer_id(ProducerId(txn.producer_id))
                        .with_transaction_state(str_bytes(txn.state.name()))
                })
                .collect();
        }
        Err(error) => response.error_code = error.code(),
    }
    response
}
