//! FindCoordinator: the coordinator of a group (key type 0) is the leader
//! of its `__consumer_offsets` partition, that of a transactional id (key
//! type 1) the leader of its `__transaction_state` partition, as the view
//! names it (`metadata::brokers`): in shard-aware mode, the broker of the
//! shard owning it. A partition without a live leader answers
//! COORDINATOR_NOT_AVAILABLE. Group and transaction requests that reach
//! another shard of the leader still reach the coordinating shard over the
//! mesh; those reaching another node get NOT_COORDINATOR (`group_route`).

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
use crate::security::acl::Operation;
use crate::server::authorize;
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
    let found = |key: &StrBytes| match outcome {
        // DESCRIBE on the group or transactional id (Kafka's check).
        _ if !may_describe(context, request.key_type, key.as_str()) => {
            let error = match request.key_type {
                KEY_TYPE_GROUP => ResponseError::GroupAuthorizationFailed,
                _ => ResponseError::TransactionalIdAuthorizationFailed,
            };
            Err((error, error.to_string()))
        }
        Ok(()) => coordinator(&view, internal_topic, key.as_str())
            .map(|broker| context.seen(broker))
            .map_err(|error| {
                let message = "The coordinator is not available".to_string();
                (error, message)
            }),
        Err(error) => Err((
            error,
            if internal_topic.is_empty() {
                format!("unknown key type {}", request.key_type)
            } else {
                "The coordinator is not available".to_string()
            },
        )),
    };
    let mut response = FindCoordinatorResponse::default();
    if header.request_api_version >= BATCHED_VERSION {
        response.coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let (node_id, host, port, error_code, error_message) = answer(found(key));
                let mut coordinator = Coordinator::default();
                coordinator.key = key.clone();
                coordinator.node_id = node_id;
                coordinator.host = host;
                coordinator.port = port;
                coordinator.error_code = error_code;
                coordinator.error_message = error_message;
                coordinator
            })
            .collect();
    } else {
        let error_message;
        (
            response.node_id,
            response.host,
            response.port,
            response.error_code,
            error_message,
        ) = answer(found(&request.key));
        if header.request_api_version >= 1 {
            response.error_message = error_message;
        }
    }
    response
}

/// Whether the principal may DESCRIBE the group or transactional id `key`
/// (an unknown key type is refused later, INVALID_REQUEST).
fn may_describe(context: &ConnectionContext, key_type: i8, key: &str) -> bool {
    match key_type {
        KEY_TYPE_GROUP => authorize::group(context, Operation::Describe, key),
        KEY_TYPE_TRANSACTION => authorize::transactional_id(context, Operation::Describe, key),
        _ => true,
    }
}

/// The broker coordinating `key` (a group id or a transactional id): the
/// leader of its partition of `internal_topic`, which exists;
/// COORDINATOR_NOT_AVAILABLE while that partition has no live leader.
fn coordinator(
    view: &ClusterView,
    internal_topic: &str,
    key: &str,
) -> Result<Broker, ResponseError> {
    let meta = view
        .topic(internal_topic)
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
    let partition = offsets_partition(key, meta.partitions.max(1));
    view.leader(meta, partition)
        .map(|(broker, _)| broker)
        .ok_or(ResponseError::CoordinatorNotAvailable)
}

/// A coordinator's id, host, port, error code and message as the response
/// carries them; with none (an error), Kafka's -1, "" and -1.
fn answer(
    found: Result<Broker, (ResponseError, String)>,
) -> (BrokerId, StrBytes, i32, i16, Option<StrBytes>) {
    match found {
        Ok(broker) => (
            BrokerId(broker.id),
            str_bytes(broker.host),
            broker.port,
            0,
            None,
        ),
        Err((error, message)) => (
            BrokerId(-1),
            str_bytes(String::new()),
            -1,
            error.code(),
            Some(str_bytes(message)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::metadata::view_tests::cluster_view;
    use crate::metadata::{BrokerLayout, PartitionState, TopicMeta};
    use crate::server::handlers::group_route::coordinating_shard;

    /// `__consumer_offsets` of 3 partitions led by broker 2, by the fenced
    /// broker 3, and by this node.
    #[test]
    fn the_coordinator_is_the_leader_of_the_keys_partition() {
        let view = cluster_view(BrokerLayout::Node);
        let led_by = |leader| PartitionState {
            replicas: vec![leader],
            isr: vec![leader],
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
        };
        let offsets = TopicMeta {
            name: OFFSETS_TOPIC.to_string(),
            id: uuid::Uuid::from_u128(99),
            partitions: 3,
            configs: Default::default(),
            placement: vec![0, 0, 1],
            states: vec![led_by(2), led_by(3), led_by(1)],
        };
        let mut topics = view.topics.clone();
        topics.insert(OFFSETS_TOPIC.to_string(), Arc::new(offsets));
        let view = view.with_topics(topics);
        let key_of = |partition| {
            (0..1000)
                .map(|n| format!("group-{n}"))
                .find(|key| offsets_partition(key, 3) == partition)
                .expect("some key lands there")
        };
        let found = |partition| coordinator(&view, OFFSETS_TOPIC, &key_of(partition));
        assert_eq!(found(0).map(|broker| broker.id), Ok(2));
        assert_eq!(found(1), Err(ResponseError::CoordinatorNotAvailable));
        assert_eq!(found(2).map(|broker| broker.port), Ok(9092));
        assert_eq!(
            coordinator(&view, TRANSACTION_STATE_TOPIC, "txn"),
            Err(ResponseError::CoordinatorNotAvailable),
            "no such topic yet"
        );
        let meta = view.topic(OFFSETS_TOPIC).unwrap();
        assert_eq!(
            coordinating_shard(&view, meta, 0),
            Err(ResponseError::NotCoordinator)
        );
        assert_eq!(coordinating_shard(&view, meta, 2), Ok(1));
    }
}
