//! OffsetCommit: member commits (generation checked) and standalone commits
//! (generation -1, the `assign()` consumers); answered once durable. Also
//! the per-partition part that TxnOffsetCommit shares: partitions of topics
//! that do not exist are refused here, the rest go to the group's
//! coordinator in one call.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use super::group_route::{call_group, code};
use crate::group::{CommitRequest, OffsetToCommit, PartitionOffset};
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{GroupAnswer, GroupCall};
use crate::shard::view::ShardView;

/// Leader epochs in commits exist from v6.
const LEADER_EPOCH_VERSION: i16 = 6;
const NO_LEADER_EPOCH: i32 = -1;

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let version = header.request_api_version;
    let partitions = commit_partitions!(request.topics, version >= LEADER_EPOCH_VERSION);
    let results = commit_offsets(context, &request.group_id.0, partitions, |offsets| {
        GroupCall::Commit(CommitRequest {
            group_id: request.group_id.0.to_string(),
            generation_id: request.generation_id_or_member_epoch,
            member_id: request.member_id.to_string(),
            group_instance_id: request.group_instance_id.as_ref().map(|id| id.to_string()),
            offsets,
            api_version: version,
        })
    })
    .await;
    let mut response = OffsetCommitResponse::default();
    response.topics = request
        .topics
        .iter()
        .map(|topic| {
            let mut entry = OffsetCommitResponseTopic::default();
            entry.name = topic.name.clone();
            entry.partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let mut answer = OffsetCommitResponsePartition::default();
                    answer.partition_index = partition.partition_index;
                    answer.error_code = results.code(&topic.name.0, partition.partition_index);
                    answer
                })
                .collect();
            entry
        })
        .collect();
    response
}

/// One partition of an OffsetCommit or TxnOffsetCommit request.
pub(super) struct CommitPartition<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// None before the request's version carries it.
    pub leader_epoch: Option<i32>,
    pub metadata: Option<&'a StrBytes>,
}

/// The `CommitPartition`s of an OffsetCommit or TxnOffsetCommit request's
/// `topics`: their types differ, their fields are named alike. The leader
/// epoch only `with_epoch`, the versions that carry it.
macro_rules! commit_partitions {
    ($topics:expr, $with_epoch:expr) => {{
        let with_epoch: bool = $with_epoch;
        $topics.iter().flat_map(move |topic| {
            topic
                .partitions
                .iter()
                .map(move |partition| CommitPartition {
                    topic: topic.name.0.as_str(),
                    partition: partition.partition_index,
                    offset: partition.committed_offset,
                    leader_epoch: with_epoch.then_some(partition.committed_leader_epoch),
                    metadata: partition.committed_metadata.as_ref(),
                })
        })
    }};
}
pub(super) use commit_partitions;

/// What a commit answers for each of its partitions.
pub(super) struct CommitResults {
    view: std::rc::Rc<ShardView>,
    /// Topics the principal may not READ (TOPIC_AUTHORIZATION_FAILED).
    unreadable: BTreeSet<String>,
    results: Result<Vec<PartitionOffset>, ResponseError>,
}

impl CommitResults {
    /// The error code of `partition` of `topic`, in Kafka's order:
    /// GROUP_AUTHORIZATION_FAILED for all, TOPIC_AUTHORIZATION_FAILED for
    /// a topic the principal may not read, UNKNOWN_TOPIC_OR_PARTITION for
    /// one that does not exist, else the coordinator's verdict.
    pub fn code(&self, topic: &str, partition: i32) -> i16 {
        if let Err(ResponseError::GroupAuthorizationFailed) = &self.results {
            return ResponseError::GroupAuthorizationFailed.code();
        }
        if self.unreadable.contains(topic) {
            return ResponseError::TopicAuthorizationFailed.code();
        }
        if unknown(&self.view, topic, partition) {
            return ResponseError::UnknownTopicOrPartition.code();
        }
        match &self.results {
            Ok(results) => results
                .iter()
                .find(|result| result.topic == topic && result.partition == partition)
                .map_or(0, |result| code(result.error)),
            Err(error) => error.code(),
        }
    }
}

/// Commits the `partitions` that exist to group `group_id` with the call
/// `make_call` builds from them; none when no partition exists.
pub(super) async fn commit_offsets<'a>(
    context: &ConnectionContext,
    group_id: &str,
    partitions: impl Iterator<Item = CommitPartition<'a>>,
    make_call: impl FnOnce(Vec<OffsetToCommit>) -> GroupCall,
) -> CommitResults {
    let view = context.shard.view();
    let mut unreadable = BTreeSet::new();
    if !authorize::group(context, Operation::Read, group_id) {
        let results = Err(ResponseError::GroupAuthorizationFailed);
        return CommitResults {
            view,
            unreadable,
            results,
        };
    }
    let offsets: Vec<OffsetToCommit> = partitions
        .filter(|entry| {
            let readable = !unreadable.contains(entry.topic)
                && authorize::topic(context, Operation::Read, entry.topic);
            if !readable {
                unreadable.insert(entry.topic.to_string());
            }
            readable && !unknown(&view, entry.topic, entry.partition)
        })
        .map(|entry| OffsetToCommit {
            topic: entry.topic.to_string(),
            partition: entry.partition,
            offset: entry.offset,
            leader_epoch: entry.leader_epoch.unwrap_or(NO_LEADER_EPOCH),
            metadata: entry.metadata.map(|text| text.to_string()),
        })
        .collect();
    let results = if offsets.is_empty() {
        Ok(Vec::new())
    } else {
        match call_group(context, group_id, make_call(offsets)).await {
            Ok(GroupAnswer::Offsets(results)) => Ok(results),
            Ok(_) => Err(ResponseError::UnknownServerError),
            Err(error) => Err(error),
        }
    };
    CommitResults {
        view,
        unreadable,
        results,
    }
}

/// Kafka refuses commits for partitions of topics that do not exist.
fn unknown(view: &ShardView, topic: &str, partition: i32) -> bool {
    view.topic(topic)
        .is_none_or(|meta| partition < 0 || partition >= meta.partitions)
}
