//! The requests other nodes send this node's CONTROLLER listener beyond
//! the quorum's own (`quorum::transport` answers those): Envelopes of
//! forwarded admin requests (`forward.rs`) and AllocateProducerIds, each
//! answered by the controller shard (`shard::to_controller` lists the
//! versions).
//!
//! Invariant: the handler holds the shard weakly (the shard holds the
//! handler), and a request whose body does not decode closes its
//! connection, as on any listener.

use std::rc::{Rc, Weak};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    AllocateProducerIdsRequest, AllocateProducerIdsResponse, ApiKey, ProducerId,
};

use super::forward;
use crate::metadata::producer_ids::ProducerIdBlock;
use crate::protocol::frame;
use crate::quorum::transport::{decode_body, ControllerApis, ControllerRequest};
use crate::shard::messages::{ShardReply, ShardRequest};
use crate::shard::Shard;

/// The handler for `shard`'s CONTROLLER listener
/// (`Shard::serve_controller_apis`).
pub fn apis(shard: &Rc<Shard>) -> ControllerApis {
    let shard = Rc::downgrade(shard);
    Rc::new(move |request: ControllerRequest| Box::pin(serve(Weak::clone(&shard), request)))
}

async fn serve(shard: Weak<Shard>, request: ControllerRequest) -> Result<Bytes, String> {
    let shard = shard
        .upgrade()
        .ok_or_else(|| "the controller is stopping".to_string())?;
    let ControllerRequest {
        header,
        api_key,
        version,
        mut body,
    } = request;
    match api_key {
        ApiKey::Envelope => forward::serve_envelope(shard, header, body).await,
        ApiKey::AllocateProducerIds => {
            let request: AllocateProducerIdsRequest = decode_body(&mut body, api_key, version)?;
            let answer = allocate_producer_ids(&shard, request).await;
            frame::encode_response(&header, version, &answer)
        }
        _ => Err(format!(
            "{api_key:?} v{version} is not served on the controller listener"
        )),
    }
}

/// A block for the requesting broker, committed before the answer; the
/// controller's error (NOT_CONTROLLER, STALE_BROKER_EPOCH, ...) otherwise.
async fn allocate_producer_ids(
    shard: &Rc<Shard>,
    request: AllocateProducerIdsRequest,
) -> AllocateProducerIdsResponse {
    let requester = (request.broker_id.0, request.broker_epoch);
    let block = match shard
        .call(shard.id, ShardRequest::AllocateProducerIds(Some(requester)))
        .await
    {
        ShardReply::ProducerIds(block) => block,
        other => Err(other.into_error()),
    };
    let length = |block: &ProducerIdBlock| i32::try_from(block.end - block.next).ok();
    match block {
        Ok(block) if length(&block).is_some() => AllocateProducerIdsResponse::default()
            .with_producer_id_start(ProducerId(block.next))
            .with_producer_id_len(length(&block).unwrap_or_default()),
        Ok(_) => refused(ResponseError::UnknownServerError.code()),
        Err(error) => refused(error.code),
    }
}

fn refused(error_code: i16) -> AllocateProducerIdsResponse {
    AllocateProducerIdsResponse::default()
        .with_error_code(error_code)
        .with_producer_id_start(ProducerId(-1))
}
