//! EndTxn: commits or aborts the producer's transaction. Answered once the
//! PrepareCommit or PrepareAbort record is durable; the coordinator then
//! writes the markers and completes the transaction on its own. v5 is a
//! client of transactions version 2 (KIP-890 part 2): the epoch is bumped
//! and the answer names the producer id and epoch to go on with.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};

use super::txn_route::{call_txn, fenced_for};
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{TxnAnswer, TxnCall};
use crate::txn::{NO_PRODUCER_EPOCH, NO_PRODUCER_ID, TV_0, TV_2};

/// EndTxn v2 is the first whose clients know PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION: i16 = 2;
/// EndTxn v5 is sent by clients of transactions version 2 only (Kafka's
/// `EndTxnRequest.isTransactionV2Enabled`).
const TRANSACTIONS_V2_VERSION: i16 = 5;

pub async fn handle(
    context: &ConnectionContext,
    version: i16,
    request: EndTxnRequest,
) -> EndTxnResponse {
    let transactional_id = request.transactional_id.0.to_string();
    let call = TxnCall::EndTxn {
        transactional_id: transactional_id.clone(),
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
        commit: request.committed,
        client_tv: if version >= TRANSACTIONS_V2_VERSION {
            TV_2
        } else {
            TV_0
        },
    };
    let outcome = if !authorize::transactional_id(context, Operation::Write, &transactional_id) {
        Err(ResponseError::TransactionalIdAuthorizationFailed)
    } else {
        match call_txn(context, &transactional_id, call).await {
            Ok(TxnAnswer::Ended(answer)) => answer,
            Ok(_) => Err(ResponseError::UnknownServerError),
            Err(error) => Err(error),
        }
    };
    let mut response = EndTxnResponse::default();
    match outcome {
        Ok((producer_id, epoch)) => {
            response.producer_id = ProducerId(producer_id);
            response.producer_epoch = epoch;
        }
        Err(error) => {
            response.error_code = fenced_for(version, PRODUCER_FENCED_VERSION, error).code();
            response.producer_id = ProducerId(NO_PRODUCER_ID);
            response.producer_epoch = NO_PRODUCER_EPOCH;
        }
    }
    response
}
