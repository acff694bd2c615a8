//! FindCoordinator: this broker coordinates every group (key type 0). The
//! shard that owns the group's state is reached internally, so every group
//! has the same answer: this node.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, RequestHeader,
};

use super::group_route::ensure_offsets_topic;
use super::str_bytes;
use crate::server::connection::ConnectionContext;

/// FindCoordinator v4+ carries a list of keys (KIP-699).
const BATCHED_VERSION: i16 = 4;
const KEY_TYPE_GROUP: i8 = 0;

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let view = context.shard.view();
    let outcome = if request.key_type != KEY_TYPE_GROUP {
        Err(ResponseError::CoordinatorNotAvailable)
    } else {
        ensure_offsets_topic(context).await
    };
    let (error_code, error_message) = match outcome {
        Ok(()) => (0, None),
        Err(error) => (
            error.code(),
            Some(str_bytes(if request.key_type != KEY_TYPE_GROUP {
                "Transaction coordinators are not supported".to_string()
            } else {
                "The coordinator is not available".to_string()
            })),
        ),
    };
    let mut response = FindCoordinatorResponse::default();
    if header.request_api_version >= BATCHED_VERSION {
        response.coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let mut coordinator = Coordinator::default();
                coordinator.key = key.clone();
                coordinator.node_id = BrokerId(if error_code == 0 { view.node_id } else { -1 });
                coordinator.host = str_bytes(if error_code == 0 {
                    view.advertised_host.clone()
                } else {
                    String::new()
                });
                coordinator.port = if error_code == 0 {
                    view.advertised_port
                } else {
                    -1
                };
                coordinator.error_code = error_code;
                coordinator.error_message = error_message.clone();
                coordinator
            })
            .collect();
    } else {
        response.error_code = error_code;
        if header.request_api_version >= 1 {
            response.error_message = error_message;
        }
        response.node_id = BrokerId(if error_code == 0 { view.node_id } else { -1 });
        response.host = str_bytes(if error_code == 0 {
            view.advertised_host.clone()
        } else {
            String::new()
        });
        response.port = if error_code == 0 {
            view.advertised_port
        } else {
            -1
        };
    }
    response
}
