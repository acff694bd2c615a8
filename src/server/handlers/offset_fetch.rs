//! OffsetFetch: committed offsets of one group (v1–v7) or several (v8+).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    GroupId, OffsetFetchRequest, OffsetFetchResponse, RequestHeader, TopicName,
};

use super::group_route::{call_group, code};
use super::str_bytes;
use crate::group::PartitionOffset;
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{GroupAnswer, GroupCall};

/// OffsetFetch v8 (KIP-709) asks for several groups at once.
const GROUPS_VERSION: i16 = 8;
/// A partition with no committed offset.
const NO_OFFSET: i64 = -1;
const NO_LEADER_EPOCH: i32 = -1;

/// One group's offsets; `require_stable` as the request's (v7+).
async fn fetch(
    context: &ConnectionContext,
    group_id: &str,
    member: Option<(String, i32)>,
    partitions: Option<Vec<(String, i32)>>,
    require_stable: bool,
) -> Result<Vec<PartitionOffset>, ResponseError> {
    let every_partition = partitions.is_none();
    let call = GroupCall::FetchOffsets {
        group_id: group_id.to_string(),
        member,
        partitions,
        require_stable,
    };
    let offsets = match call_group(context, group_id, call).await? {
        GroupAnswer::FetchedOffsets(offsets) => offsets?,
        _ => return Err(ResponseError::UnknownServerError),
    };
    Ok(describable(context, offsets, every_partition))
}

/// Kafka's topic check: DESCRIBE on each topic; of every partition, those
/// of other topics are left out, of named partitions they are
/// TOPIC_AUTHORIZATION_FAILED.
fn describable(
    context: &ConnectionContext,
    mut offsets: Vec<PartitionOffset>,
    every_partition: bool,
) -> Vec<PartitionOffset> {
    if !authorize::enabled(context) {
        return offsets;
    }
    let allowed =
        |offset: &PartitionOffset| authorize::topic(context, Operation::Describe, &offset.topic);
    if every_partition {
        offsets.retain(allowed);
        return offsets;
    }
    for offset in offsets.iter_mut().filter(|offset| !allowed(offset)) {
        offset.error = Some(ResponseError::TopicAuthorizationFailed);
        offset.committed = None;
    }
    offsets
}

/// Offsets grouped by topic, in first-seen order.
fn by_topic(offsets: Vec<PartitionOffset>) -> Vec<(String, Vec<PartitionOffset>)> {
    let mut topics: Vec<(String, Vec<PartitionOffset>)> = Vec::new();
    for offset in offsets {
        match topics.iter_mut().find(|(name, _)| *name == offset.topic) {
            Some((_, list)) => list.push(offset),
            None => topics.push((offset.topic.clone(), vec![offset])),
        }
    }
    topics
}

fn values(offset: &PartitionOffset) -> (i64, i32, String) {
    match &offset.committed {
        Some(committed) => (
            committed.offset,
            committed.leader_epoch,
            committed.metadata.clone(),
        ),
        None => (NO_OFFSET, NO_LEADER_EPOCH, String::new()),
    }
}

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let version = header.request_api_version;
    let mut response = OffsetFetchResponse::default();
    if version >= GROUPS_VERSION {
        for group in &request.groups {
            let wanted = group.topics.as_ref().map(|topics| {
                topics
                    .iter()
                    .flat_map(|topic| {
                        topic
                            .partition_indexes
                            .iter()
                            .map(|&p| (topic.name.0.to_string(), p))
                    })
                    .collect()
            });
            let mut entry = OffsetFetchResponseGroup::default();
            entry.group_id = GroupId(group.group_id.0.clone());
            // v9: members of consumer-protocol groups say who they are.
            let member = group
                .member_id
                .as_ref()
                .map(|member_id| (member_id.to_string(), group.member_epoch));
            let group_id = group.group_id.0.as_str();
            match fetch(context, group_id, member, wanted, request.require_stable).await {
                Ok(offsets) => {
                    entry.topics = by_topic(offsets)
                        .into_iter()
                        .map(|(name, offsets)| {
                            let mut topic = OffsetFetchResponseTopics::default();
                            topic.name = TopicName(str_bytes(name));
                            topic.partitions = offsets
                                .iter()
                                .map(|offset| {
                                    let (committed, epoch, metadata) = values(offset);
                                    let mut partition = OffsetFetchResponsePartitions::default();
                                    partition.partition_index = offset.partition;
                                    partition.committed_offset = committed;
                                    partition.committed_leader_epoch = epoch;
                                    partition.metadata = Some(str_bytes(metadata));
                                    partition.error_code = code(offset.error);
                                    partition
                                })
                                .collect();
                            topic
                        })
                        .collect();
                }
                Err(error) => entry.error_code = error.code(),
            }
            response.groups.push(entry);
        }
        return response;
    }
    let wanted = request.topics.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|topic| {
                topic
                    .partition_indexes
                    .iter()
                    .map(|&p| (topic.name.0.to_string(), p))
            })
            .collect()
    });
    // `require_stable` exists from v7 (the crate reads false before).
    let group_id = request.group_id.0.as_str();
    match fetch(context, group_id, None, wanted, request.require_stable).await {
        Ok(offsets) => {
            response.topics = by_topic(offsets)
                .into_iter()
                .map(|(name, offsets)| {
                    let mut topic = OffsetFetchResponseTopic::default();
                    topic.name = TopicName(str_bytes(name));
                    topic.partitions = offsets
                        .iter()
                        .map(|offset| {
                            let (committed, epoch, metadata) = values(offset);
                            let mut partition = OffsetFetchResponsePartition::default();
                            partition.partition_index = offset.partition;
                            partition.committed_offset = committed;
                            if version >= 5 {
                                partition.committed_leader_epoch = epoch;
                            }
                            partition.metadata = Some(str_bytes(metadata));
                            partition.error_code = code(offset.error);
                            partition
                        })
                        .collect();
                    topic
                })
                .collect();
        }
        Err(error) => {
            if version >= 2 {
                response.error_code = error.code();
            }
        }
    }
    response
}
