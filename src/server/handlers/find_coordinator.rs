//! FindCoordinator: the coordinator of a group (key type 0) is the broker of
//! the shard owning its `__consumer_offsets` partition, that of a
//! transactional id (key type 1) the broker of the shard owning its
//! `__transaction_state` partition: the node itself by
//! default, that shard's own broker in shard-aware mode (`metadata::brokers`).
//! Group and transaction requests sent elsewhere still reach the
//! coordinating shard over the mesh.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use super::group_route::ensure_offsets_topic;
use super::str_bytes;
use super::txn_route::ensure_txn_topic;
use crate::group::{offsets_partition, OFFSETS_TOPIC};
use crate::metadata::brokers::Broker;
use crate::metadata::ClusterView;
use crate::server::connection::ConnectionContext;
use crate::txn::TRANSACTION_STATE_TOPIC;

/// FindCoordinator v4+ carries a list of keys (KIP-699).
const BATCHED_VERSION: i16 = 4;
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let (internal_topic, outcome) = match request.key_type {
        KEY_TYPE_GROUP => (OFFSETS_TOPIC, ensure_offsets_topic(context).await),
        KEY_TYPE_TRANSACTION => (TRANSACTION_STATE_TOPIC, ensure_txn_topic(context).await),
        _ => ("", Err(ResponseError::InvalidRequest)),
    };
    let view = context.shard.view();
    let (error_code, error_message) = match outcome {
        Ok(()) => (0, None),
        Err(error) => (
            error.code(),
            Some(str_bytes(if internal_topic.is_empty() {
                format!("unknown key type {}", request.key_type)
            } else {
                "The coordinator is not available".to_string()
            })),
        ),
    };
    let found = |key: &StrBytes| {
        (error_code == 0).then(|| coordinator(&view, internal_topic, key.as_str()))
    };
    let mut response = FindCoordinatorResponse::default();
    if header.request_api_version >= BATCHED_VERSION {
        response.coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let (node_id, host, port) = address(found(key));
                let mut coordinator = Coordinator::default();
                coordinator.key = key.clone();
                coordinator.node_id = node_id;
                coordinator.host = host;
                coordinator.port = port;
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
        (response.node_id, response.host, response.port) = address(found(&request.key));
    }
    response
}

/// The broker coordinating `key` (a group id or a transactional id): the
/// broker of the shard owning its partition of `internal_topic`, which
/// exists.
fn coordinator(view: &ClusterView, internal_topic: &str, key: &str) -> Broker {
    let partitions = view
        .topic(internal_topic)
        .map_or(1, |topic| topic.partitions.max(1));
    let owner = view.owner(internal_topic, offsets_partition(key, partitions));
    view.broker_of_shard(owner)
}

/// A coordinator's id, host and port as the response carries them; with
/// none (an error), Kafka's -1, "" and -1.
fn address(broker: Option<Broker>) -> (BrokerId, StrBytes, i32) {
    match broker {
        Some(broker) => (BrokerId(broker.id), str_bytes(broker.host), broker.port),
        None => (BrokerId(-1), str_bytes(String::new()), -1),
    }
}
