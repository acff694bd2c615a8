//! InitProducerId. Without a `transactional.id`: a new producer id with
//! epoch 0 for an idempotent producer, as Kafka's transaction coordinator
//! answers (whatever id and epoch it passes: KIP-360 epoch bumps of
//! idempotent producers happen in the client, which then starts the new
//! epoch at sequence 0, and the partitions accept that). With one: the
//! transaction coordinator of the id (`txn_route`), which bumps the epoch
//! (fencing the previous producer of the id) or gives a new producer id.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::txn_route::{call_txn, fenced_for};
use crate::security::acl::{Operation, ResourceType};
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{TxnAnswer, TxnCall};
use crate::txn::{NO_PRODUCER_EPOCH, NO_PRODUCER_ID};

/// The epoch of a new producer id.
const FIRST_EPOCH: i16 = 0;
/// InitProducerId v4 is the first whose clients know PRODUCER_FENCED.
const PRODUCER_FENCED_VERSION: i16 = 4;

pub async fn handle(
    context: &ConnectionContext,
    version: i16,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default();
    response.producer_id = ProducerId(NO_PRODUCER_ID);
    response.producer_epoch = NO_PRODUCER_EPOCH;
    let outcome = match &request.transactional_id {
        Some(id) if !authorize::transactional_id(context, Operation::Write, id) => {
            Err(ResponseError::TransactionalIdAuthorizationFailed)
        }
        // An idempotent producer: IDEMPOTENT_WRITE on the cluster, or WRITE
        // on some topic (Kafka's check).
        None if !authorize::cluster(context, Operation::IdempotentWrite)
            && !authorize::any_of_type(context, Operation::Write, ResourceType::Topic) =>
        {
            Err(ResponseError::ClusterAuthorizationFailed)
        }
        // Kafka refuses an empty id, as the Java client does.
        Some(id) if id.is_empty() => Err(ResponseError::InvalidRequest),
        Some(id) => transactional(context, id, &request).await,
        None => match context.shard.producer_ids.next(&context.shard).await {
            Ok(id) => Ok((id, FIRST_EPOCH)),
            Err(error) => Err(ResponseError::try_from_code(error.code)
                .unwrap_or(ResponseError::CoordinatorNotAvailable)),
        },
    };
    match outcome {
        Ok((producer_id, epoch)) => {
            response.producer_id = ProducerId(producer_id);
            response.producer_epoch = epoch;
        }
        Err(error) => {
            response.error_code = fenced_for(version, PRODUCER_FENCED_VERSION, error).code();
        }
    }
    response
}

async fn transactional(
    context: &ConnectionContext,
    transactional_id: &str,
    request: &InitProducerIdRequest,
) -> Result<(i64, i16), ResponseError> {
    // KIP-360: both or neither of the producer id and epoch.
    let expected = match (request.producer_id.0, request.producer_epoch) {
        (NO_PRODUCER_ID, NO_PRODUCER_EPOCH) => None,
        (NO_PRODUCER_ID, _) | (_, NO_PRODUCER_EPOCH) => return Err(ResponseError::InvalidRequest),
        (producer_id, epoch) => Some((producer_id, epoch)),
    };
    let call = TxnCall::InitProducerId {
        transactional_id: transactional_id.to_string(),
        timeout_ms: request.transaction_timeout_ms,
        expected,
    };
    match call_txn(context, transactional_id, call).await? {
        TxnAnswer::ProducerId(answer) => answer,
        _ => Err(ResponseError::UnknownServerError),
    }
}
