//! InitProducerId: a new producer id with epoch 0 for an idempotent
//! producer, as Kafka's transaction coordinator answers one without a
//! `transactional.id` (whatever id and epoch it passes: KIP-360 epoch bumps
//! of idempotent producers happen in the client, which then starts the new
//! epoch at sequence 0, and the partitions accept that). Transactional
//! producers get what Kafka answers while no transaction coordinator is
//! available.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::server::connection::ConnectionContext;

/// The epoch of a new producer id.
const FIRST_EPOCH: i16 = 0;

pub async fn handle(
    context: &ConnectionContext,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    let error_code = match request.transactional_id {
        // Kafka refuses an empty id, as the Java client does.
        Some(id) if id.is_empty() => ResponseError::InvalidRequest.code(),
        Some(_) => ResponseError::CoordinatorNotAvailable.code(),
        None => match context.shard.producer_ids.next(&context.shard).await {
            Ok(id) => {
                response.producer_id = ProducerId(id);
                response.producer_epoch = FIRST_EPOCH;
                return response;
            }
            Err(error) => error.code,
        },
    };
    response.error_code = error_code;
    response
}
