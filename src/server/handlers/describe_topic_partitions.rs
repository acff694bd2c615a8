//! DescribeTopicPartitions (KIP-966): Metadata's partitions with Kafka's
//! cursor paging, which the Java admin client 4.x uses for `describeTopics`.
//! Topics are answered in name order from the cursor's topic (all topics
//! when the request names none), partitions from the cursor's index, until
//! the partition limit; the next cursor points at the first partition left
//! out. As Kafka's `KRaftMetadataCache`, a leaderless partition carries no
//! error code here (its leader is -1), and a named topic that does not exist
//! answers UNKNOWN_TOPIC_OR_PARTITION (INVALID_TOPIC_EXCEPTION for an
//! invalid name), while listing all topics leaves nothing to report.
//!
//! Invariant: a page never holds more partitions than its limit, and the
//! partitions of consecutive pages, cursor to cursor, are every partition of
//! the answered topics once each, in order.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};

use super::metadata::partition_entry;
use super::{authorized, str_bytes};
use crate::metadata::{validate_topic_name, ClusterView, TopicMeta};
use crate::security::acl::{Operation, ResourceType};
use crate::server::authorize;
use crate::server::connection::ConnectionContext;

/// Kafka's `max.request.partition.size.limit` default: the most partitions
/// one page answers, whatever the client asks.
const PARTITIONS_PER_PAGE_MAX: i32 = 2000;

pub fn handle(
    context: &ConnectionContext,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let mut response = describe(&context.shard.view(), &request);
    if authorize::enabled(context) {
        authorize_topics(context, &mut response, request.topics.is_empty());
    }
    response
}

/// Kafka's DESCRIBE check on each topic: of every topic, those the
/// principal may not describe are left out; a named one is answered
/// TOPIC_AUTHORIZATION_FAILED. The others carry the principal's own
/// authorized operations.
fn authorize_topics(
    context: &ConnectionContext,
    response: &mut DescribeTopicPartitionsResponse,
    list_all: bool,
) {
    let name = |topic: &DescribeTopicPartitionsResponseTopic| {
        topic
            .name
            .as_ref()
            .map_or(String::new(), |name| name.0.to_string())
    };
    if list_all {
        response
            .topics
            .retain(|topic| authorize::topic(context, Operation::Describe, &name(topic)));
    }
    for topic in &mut response.topics {
        let name = name(topic);
        if !authorize::topic(context, Operation::Describe, &name) {
            topic.error_code = ResponseError::TopicAuthorizationFailed.code();
            topic.partitions.clear();
        } else if topic.error_code == 0 {
            topic.topic_authorized_operations =
                authorize::operations(context, ResourceType::Topic, &name, authorized::TOPIC);
        }
    }
}

/// The page `request` asks for, or INVALID_REQUEST for each named topic
/// when its cursor is not one Kafka accepts.
fn describe(
    view: &ClusterView,
    request: &DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let cursor = request
        .cursor
        .as_ref()
        .map(|cursor| (cursor.topic_name.0.to_string(), cursor.partition_index));
    let (cursor_topic, cursor_partition) = cursor.clone().unwrap_or_default();
    let list_all = request.topics.is_empty();
    let names: BTreeSet<String> = if list_all {
        view.topics.keys().cloned().collect()
    } else {
        request
            .topics
            .iter()
            .map(|topic| topic.name.0.to_string())
            .collect()
    };
    let names: Vec<String> = names.into_iter().filter(|n| *n >= cursor_topic).collect();
    let cursor_missing = !list_all && cursor.is_some() && !names.contains(&cursor_topic);
    if cursor_missing || cursor_partition < 0 {
        return invalid_request(request);
    }
    let limit = request
        .response_partition_limit
        .clamp(1, PARTITIONS_PER_PAGE_MAX);
    let mut response = page(
        view,
        &names,
        &cursor_topic,
        cursor_partition,
        limit,
        list_all,
    );
    for topic in response.topics.iter_mut().filter(|t| t.error_code == 0) {
        topic.topic_authorized_operations = authorized::TOPIC;
    }
    response
}

/// Kafka's `getTopicMetadataForDescribeTopicResponse`: `names` in order,
/// the cursor's topic from `cursor_partition`, at most `limit` partitions.
fn page(
    view: &ClusterView,
    names: &[String],
    cursor_topic: &str,
    cursor_partition: i32,
    limit: i32,
    list_all: bool,
) -> DescribeTopicPartitionsResponse {
    let mut response = DescribeTopicPartitionsResponse::default();
    let mut remaining = limit;
    for name in names {
        if remaining == 0 {
            response.next_cursor = Some(cursor(name, 0));
            break;
        }
        let Some(topic) = view.topic(name) else {
            if !list_all {
                response.topics.push(missing_topic(name));
            }
            continue;
        };
        let start = if name == cursor_topic {
            cursor_partition
        } else {
            0
        };
        let end = topic.partitions.min(start.saturating_add(remaining));
        response.topics.push(topic_entry(view, topic, start..end));
        if end < topic.partitions {
            response.next_cursor = Some(cursor(name, end));
            break;
        }
        remaining -= (end - start).max(0);
    }
    response
}

fn topic_entry(
    view: &ClusterView,
    topic: &TopicMeta,
    partitions: std::ops::Range<i32>,
) -> DescribeTopicPartitionsResponseTopic {
    let mut entry = DescribeTopicPartitionsResponseTopic::default();
    entry.name = Some(TopicName(str_bytes(topic.name.clone())));
    entry.topic_id = topic.id;
    entry.is_internal = topic.is_internal();
    entry.partitions = partitions
        .map(|index| {
            let described = partition_entry(view, topic, index);
            let mut partition = DescribeTopicPartitionsResponsePartition::default();
            partition.partition_index = index;
            partition.leader_id = described.leader_id;
            partition.leader_epoch = described.leader_epoch;
            partition.replica_nodes = described.replica_nodes;
            partition.isr_nodes = described.isr_nodes;
            partition.offline_replicas = described.offline_replicas;
            // shoal keeps no eligible leader replicas (KIP-966's ELR).
            partition.eligible_leader_replicas = Some(Vec::new());
            partition.last_known_elr = Some(Vec::new());
            partition
        })
        .collect();
    entry
}

fn missing_topic(name: &str) -> DescribeTopicPartitionsResponseTopic {
    let error = if validate_topic_name(name).is_err() {
        ResponseError::InvalidTopicException
    } else {
        ResponseError::UnknownTopicOrPartition
    };
    let mut entry = DescribeTopicPartitionsResponseTopic::default();
    entry.error_code = error.code();
    entry.name = Some(TopicName(str_bytes(name)));
    entry
}

fn cursor(name: &str, partition_index: i32) -> Cursor {
    let mut cursor = Cursor::default();
    cursor.topic_name = TopicName(str_bytes(name));
    cursor.partition_index = partition_index;
    cursor
}

/// Kafka's `getErrorResponse`: the error on each topic the request named.
fn invalid_request(request: &DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse {
    let mut response = DescribeTopicPartitionsResponse::default();
    response.topics = request
        .topics
        .iter()
        .map(|topic| {
            let mut entry = DescribeTopicPartitionsResponseTopic::default();
            entry.error_code = ResponseError::InvalidRequest.code();
            entry.name = Some(topic.name.clone());
            entry
        })
        .collect();
    response
}

#[cfg(test)]
#[path = "describe_topic_partitions_tests.rs"]
mod tests;
