//! AddOffsetsToTxn: adds the group's `__consumer_offsets` partition to the
//! transaction, so the offsets TxnOffsetCommit writes there are committed
//! or aborted with it (its markers go there too).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use super::group_route::group_offsets_partition;
use super::txn_route::{call_txn, fenced_for};
use crate::group::OFFSETS_TOPIC;
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{TxnAnswer, TxnCall};

/// AddOffsetsToTxn v2 is the first whose clients know PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION: i16 = 2;

pub async fn handle(
    context: &ConnectionContext,
    version: i16,
    request: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let mut response = AddOffsetsToTxnResponse::default();
    if let Err(error) = add(context, &request).await {
        response.error_code = fenced_for(version, PRODUCER_FENCED_VERSION, error).code();
    }
    response
}

async fn add(
    context: &ConnectionContext,
    request: &AddOffsetsToTxnRequest,
) -> Result<(), ResponseError> {
    let transactional_id = request.transactional_id.0.to_string();
    if !authorize::transactional_id(context, Operation::Write, &transactional_id) {
        return Err(ResponseError::TransactionalIdAuthorizationFailed);
    }
    if !authorize::group(context, Operation::Read, &request.group_id.0) {
        return Err(ResponseError::GroupAuthorizationFailed);
    }
    let partition = group_offsets_partition(context, &request.group_id.0).await?;
    let call = TxnCall::AddPartitions {
        transactional_id: transactional_id.clone(),
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
        partitions: vec![(OFFSETS_TOPIC.to_string(), partition)],
        verify_only: false,
    };
    match call_txn(context, &transactional_id, call).await? {
        TxnAnswer::Added(answer) => answer.map(|_| ()),
        _ => Err(ResponseError::UnknownServerError),
    }
}
