//! ListPartitionReassignments: the reassignments in progress, of every
//! topic or of the partitions named, as the active controller's committed
//! image holds them (a broker forwards the request there, `forward.rs`).
//! Unknown topics and partitions not reassigning are left out, as Kafka
//! leaves them.

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};

use super::str_bytes;
use crate::metadata::reassignment::Ongoing;
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{ShardReply, ShardRequest};
use crate::shard::CONTROLLER_SHARD;

pub async fn handle(
    context: &ConnectionContext,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let topics = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|topic| (topic.name.0.to_string(), topic.partition_indexes))
            .collect()
    });
    let listed = if !authorize::cluster(context, Operation::Describe) {
        Err(authorize::cluster_denied())
    } else {
        match context
            .shard
            .call(CONTROLLER_SHARD, ShardRequest::ListReassignments(topics))
            .await
        {
            ShardReply::Reassignments(listed) => listed,
            other => Err(other.into_error()),
        }
    };
    let mut response = ListPartitionReassignmentsResponse::default();
    match listed {
        Ok(ongoing) => response.topics = by_topic(ongoing),
        Err(error) => {
            response.error_code = error.code;
            response.error_message = error.message.map(str_bytes);
        }
    }
    response
}

/// The partitions grouped under their topics, in the order given.
fn by_topic(ongoing: Vec<Ongoing>) -> Vec<OngoingTopicReassignment> {
    let ids = |nodes: Vec<i32>| nodes.into_iter().map(BrokerId).collect();
    let mut topics: Vec<OngoingTopicReassignment> = Vec::new();
    for entry in ongoing {
        let mut partition = OngoingPartitionReassignment::default();
        partition.partition_index = entry.partition;
        partition.replicas = ids(entry.replicas);
        partition.adding_replicas = ids(entry.adding);
        partition.removing_replicas = ids(entry.removing);
        match topics.last_mut() {
            Some(topic) if topic.name.0.as_str() == entry.topic => topic.partitions.push(partition),
            _ => {
                let mut topic = OngoingTopicReassignment::default();
                topic.name = TopicName(str_bytes(entry.topic));
                topic.partitions = vec![partition];
                topics.push(topic);
            }
        }
    }
    topics
}
