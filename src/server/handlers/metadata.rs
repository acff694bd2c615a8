//! Metadata: brokers, topics, partitions, their leaders, replicas and ISR
//! (the cluster's, as the view holds them; brokers as `metadata::brokers`
//! lays them out: the node, or one broker per shard); creates missing topics
//! when `auto.create.topics.enable` and the request allow it (`__consumer_offsets`
//! as the group coordinator makes it).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, MetadataRequest, MetadataResponse, RequestHeader, TopicName,
};

use super::authorized;
use super::group_route::ensure_offsets_topic;
use super::str_bytes;
use crate::group::OFFSETS_TOPIC;
use crate::metadata::records::NO_LEADER;
use crate::metadata::{validate_topic_name, ClusterView, TopicMeta};
use crate::security::acl::{Operation, ResourceType, CLUSTER_NAME};
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::server::forward;
use crate::shard::messages::NewTopic;

/// Authorized operations exist in Metadata from v8; the cluster's until v10.
const AUTHORIZED_OPERATIONS_VERSION: i16 = 8;
const CLUSTER_OPERATIONS_VERSION_MAX: i16 = 10;

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: MetadataRequest,
) -> MetadataResponse {
    let version = header.request_api_version;
    let mut view = context.shard.view();
    let requested: Option<Vec<(Option<String>, uuid::Uuid)>> = match request.topics {
        Some(topics) if !(version == 0 && topics.is_empty()) => Some(
            topics
                .into_iter()
                .map(|topic| (topic.name.map(|name| name.0.to_string()), topic.topic_id))
                .collect(),
        ),
        _ => None,
    };
    let allow_auto_create = (version < 4 || request.allow_auto_topic_creation)
        && context.shard.config.auto_create_topics_enable;

    if let Some(requested) = &requested {
        if allow_auto_create {
            // As in Kafka, the offsets topic is made as the group coordinator
            // needs it (its partition count, compacted), never as a user topic.
            let wants_offsets_topic = requested
                .iter()
                .any(|(name, _)| name.as_deref() == Some(OFFSETS_TOPIC));
            if wants_offsets_topic && ensure_offsets_topic(context).await.is_ok() {
                view = context.shard.view();
            }
            let missing: Vec<NewTopic> = requested
                .iter()
                .filter_map(|(name, _)| name.as_ref())
                .filter(|name| *name != OFFSETS_TOPIC)
                .filter(|name| view.topic(name).is_none() && validate_topic_name(name).is_ok())
                .filter(|name| may_create(context, name))
                .map(|name| NewTopic {
                    name: name.clone(),
                    partitions: -1,
                    replication_factor: -1,
                    configs: Vec::new(),
                    assignments: Vec::new(),
                    validate_only: false,
                })
                .collect();
            if !missing.is_empty() {
                forward::create_topics(context, missing).await;
                view = context.shard.view();
            }
        }
    }

    let topic_operations =
        version >= AUTHORIZED_OPERATIONS_VERSION && request.include_topic_authorized_operations;
    let mut topics: Vec<MetadataResponseTopic> = match requested {
        // Every topic the principal may describe; the others are hidden.
        None => view
            .topics
            .values()
            .filter(|topic| authorize::topic(context, Operation::Describe, &topic.name))
            .map(|topic| topic_entry(&view, topic, version))
            .collect(),
        Some(requested) => requested
            .into_iter()
            .map(|(name, id)| {
                let found = match &name {
                    Some(name) => view.topic(name),
                    None => view.topic_by_id(id),
                };
                let denied = |name: &str| !authorize::topic(context, Operation::Describe, name);
                match (found, name) {
                    (Some(topic), name) if denied(&topic.name) => {
                        missing_entry(name, id, ResponseError::TopicAuthorizationFailed)
                    }
                    (Some(topic), _) => topic_entry(&view, topic, version),
                    (None, Some(name))
                        if denied(&name) || (allow_auto_create && !may_create(context, &name)) =>
                    {
                        missing_entry(Some(name), id, ResponseError::TopicAuthorizationFailed)
                    }
                    (None, Some(name)) => {
                        let error = if validate_topic_name(&name).is_err() {
                            ResponseError::InvalidTopicException
                        } else {
                            ResponseError::UnknownTopicOrPartition
                        };
                        missing_entry(Some(name), uuid::Uuid::nil(), error)
                    }
                    (None, None) => missing_entry(None, id, ResponseError::UnknownTopicId),
                }
            })
            .collect(),
    };

    if topic_operations {
        for topic in topics.iter_mut().filter(|topic| topic.error_code == 0) {
            let name = topic.name.as_ref().map_or("", |name| name.0.as_str());
            topic.topic_authorized_operations =
                authorize::operations(context, ResourceType::Topic, name, authorized::TOPIC);
        }
    }
    let mut response = MetadataResponse::default();
    response.brokers = view
        .brokers()
        .into_iter()
        .map(|broker| context.seen(broker))
        .map(|broker| {
            let mut entry = MetadataResponseBroker::default();
            entry.node_id = BrokerId(broker.id);
            entry.host = str_bytes(broker.host);
            entry.port = broker.port;
            entry.rack = broker.rack.map(str_bytes);
            entry
        })
        .collect();
    response.cluster_id = Some(str_bytes(view.cluster_id.clone()));
    response.controller_id = BrokerId(view.controller_id());
    response.topics = topics;
    if (AUTHORIZED_OPERATIONS_VERSION..=CLUSTER_OPERATIONS_VERSION_MAX).contains(&version)
        && request.include_cluster_authorized_operations
    {
        response.cluster_authorized_operations = authorize::operations(
            context,
            ResourceType::Cluster,
            CLUSTER_NAME,
            authorized::CLUSTER,
        );
    }
    response
}

/// Whether a missing topic may be created for the principal: CREATE on
/// the cluster or on the topic (Kafka's auto-creation check).
fn may_create(context: &ConnectionContext, name: &str) -> bool {
    authorize::cluster(context, Operation::Create)
        || authorize::topic(context, Operation::Create, name)
}

fn topic_entry(view: &ClusterView, topic: &Arc<TopicMeta>, version: i16) -> MetadataResponseTopic {
    let mut entry = MetadataResponseTopic::default();
    entry.name = Some(TopicName(str_bytes(topic.name.clone())));
    if version >= 10 {
        entry.topic_id = topic.id;
    }
    entry.is_internal = topic.is_internal();
    entry.partitions = (0..topic.partitions)
        .map(|index| partition_entry(view, topic, index))
        .collect();
    entry
}

/// One partition as the view holds it: its leader when live (else
/// LEADER_NOT_AVAILABLE, as Kafka answers), leader epoch, replicas, ISR,
/// and the replicas whose broker is not live.
pub(super) fn partition_entry(
    view: &ClusterView,
    topic: &TopicMeta,
    index: i32,
) -> MetadataResponsePartition {
    let state = view.state(topic, index);
    let ids = |nodes: &mut dyn Iterator<Item = &i32>| -> Vec<BrokerId> {
        nodes
            .map(|&node| BrokerId(view.replica_broker_id(topic, index, node)))
            .collect()
    };
    let leader = view.leader_id(topic, index);
    let mut partition = MetadataResponsePartition::default();
    partition.partition_index = index;
    if leader == NO_LEADER {
        partition.error_code = ResponseError::LeaderNotAvailable.code();
    }
    partition.leader_id = BrokerId(leader);
    partition.leader_epoch = state.leader_epoch;
    partition.replica_nodes = ids(&mut state.replicas.iter());
    partition.isr_nodes = ids(&mut state.isr.iter());
    partition.offline_replicas = ids(&mut state
        .replicas
        .iter()
        .filter(|&&node| !view.node_is_live(node)));
    partition
}

fn missing_entry(
    name: Option<String>,
    id: uuid::Uuid,
    error: ResponseError,
) -> MetadataResponseTopic {
    let mut entry = MetadataResponseTopic::default();
    entry.error_code = error.code();
    entry.name = name.map(|name| TopicName(str_bytes(name)));
    entry.topic_id = id;
    entry
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::view_tests::cluster_view;
    use crate::metadata::BrokerLayout;

    /// Error, leader, leader epoch, replicas, ISR, offline replicas.
    type Seen = (i16, i32, i32, Vec<i32>, Vec<i32>, Vec<i32>);

    #[test]
    fn partitions_carry_the_clusters_leaders_replicas_and_isr() {
        let view = cluster_view(BrokerLayout::Node);
        let t = view.topic("t").unwrap().clone();
        let entry = topic_entry(&view, &t, 12);
        let ids = |nodes: &[BrokerId]| nodes.iter().map(|id| id.0).collect::<Vec<_>>();
        let seen: Vec<Seen> = entry
            .partitions
            .iter()
            .map(|p| {
                (
                    p.error_code,
                    p.leader_id.0,
                    p.leader_epoch,
                    ids(&p.replica_nodes),
                    ids(&p.isr_nodes),
                    ids(&p.offline_replicas),
                )
            })
            .collect();
        let unavailable = ResponseError::LeaderNotAvailable.code();
        assert_eq!(
            seen,
            vec![
                (0, 1, 5, vec![1, 2, 3], vec![1, 2], vec![3]),
                (0, 2, 3, vec![2, 1], vec![2, 1], vec![]),
                (0, 2, 0, vec![2, 3], vec![2], vec![3]),
                (unavailable, -1, 1, vec![3, 1], vec![1], vec![3]),
                (unavailable, -1, 2, vec![1, 2], vec![1, 2], vec![]),
            ]
        );
    }
}
