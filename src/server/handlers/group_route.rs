//! Routing of consumer-group requests to the shard that coordinates the
//! group: the owner of its `__consumer_offsets` partition, which is created
//! (compacted, `offsets.topic.num.partitions` partitions) on first use.

use kafka_protocol::error::ResponseError;

use crate::group::{offsets_partition, GroupState, ListedGroup, OFFSETS_TOPIC};
use crate::metadata::{ClusterView, TopicMeta};
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::{ConnectionContext, Port};
use crate::server::forward;
use crate::shard::messages::{GroupAnswer, GroupCall, NewTopic, ShardReply, ShardRequest};

/// Creates `__consumer_offsets` unless it exists. Errors are Kafka's
/// COORDINATOR_NOT_AVAILABLE, which clients retry.
pub async fn ensure_offsets_topic(context: &ConnectionContext) -> Result<(), ResponseError> {
    let config = &context.shard.config;
    ensure_internal_topic(
        context,
        OFFSETS_TOPIC,
        config.group.offsets_topic_num_partitions,
        vec![
            ("cleanup.policy".to_string(), "compact".to_string()),
            (
                "segment.bytes".to_string(),
                config.offsets_topic_segment_bytes.to_string(),
            ),
        ],
    )
    .await
}

/// Creates the internal topic `name` (a coordinator's log) with
/// `partitions` and `configs` unless it exists. Errors are Kafka's
/// COORDINATOR_NOT_AVAILABLE, which clients retry.
pub async fn ensure_internal_topic(
    context: &ConnectionContext,
    name: &str,
    partitions: i32,
    configs: Vec<(String, String)>,
) -> Result<(), ResponseError> {
    if context.shard.view().topic(name).is_some() {
        return Ok(());
    }
    let topic = NewTopic {
        name: name.to_string(),
        partitions,
        // The controller's `offsets.topic.replication.factor` (or the
        // transaction log's), capped at the brokers there are.
        replication_factor: -1,
        configs,
        assignments: Vec::new(),
        validate_only: false,
    };
    forward::create_topics(context, vec![topic]).await;
    if context.shard.view().topic(name).is_some() {
        Ok(())
    } else {
        log::debug!("{name} is not in this node's metadata yet");
        Err(ResponseError::CoordinatorNotAvailable)
    }
}

/// The `__consumer_offsets` partition of `group_id`, the topic created on
/// first use.
pub async fn group_offsets_partition(
    context: &ConnectionContext,
    group_id: &str,
) -> Result<i32, ResponseError> {
    ensure_offsets_topic(context).await?;
    let partitions = context
        .shard
        .view()
        .topic(OFFSETS_TOPIC)
        .map(|topic| topic.partitions)
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
    Ok(offsets_partition(group_id, partitions))
}

/// The owner shard of `partition` of an internal topic when this node
/// leads it and so runs its coordinator; NOT_COORDINATOR when it does not.
pub fn coordinating_shard(
    view: &ClusterView,
    meta: &TopicMeta,
    partition: i32,
) -> Result<usize, ResponseError> {
    if !view.leads(meta, partition) {
        return Err(ResponseError::NotCoordinator);
    }
    Ok(meta.owner(partition, view.shard_count))
}

/// Runs `call` on the coordinator of `group_id`, once the principal may
/// do the call's operation on the group (GROUP_AUTHORIZATION_FAILED).
pub async fn call_group(
    context: &ConnectionContext,
    group_id: &str,
    call: GroupCall,
) -> Result<GroupAnswer, ResponseError> {
    if !authorize::group(context, group_operation(&call), group_id) {
        return Err(ResponseError::GroupAuthorizationFailed);
    }
    if group_id.is_empty() {
        return Err(ResponseError::InvalidGroupId);
    }
    let partition = group_offsets_partition(context, group_id).await?;
    let view = context.shard.view();
    let meta = view
        .topic(OFFSETS_TOPIC)
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
    let owner = coordinating_shard(&view, meta, partition)?;
    match context.shard.call(owner, ShardRequest::Group(call)).await {
        ShardReply::Group(answer) => Ok(answer),
        ShardReply::Failed(error) => Err(ResponseError::try_from_code(error.code)
            .unwrap_or(ResponseError::CoordinatorNotAvailable)),
        _ => Err(ResponseError::CoordinatorNotAvailable),
    }
}

/// The operation on the group Kafka's authorization matrix asks of each
/// call: READ to be a member or commit, DESCRIBE to look, DELETE to
/// delete the group or its offsets.
fn group_operation(call: &GroupCall) -> Operation {
    match call {
        GroupCall::Join(_)
        | GroupCall::Sync(_)
        | GroupCall::Heartbeat(_)
        | GroupCall::Leave { .. }
        | GroupCall::Commit(_)
        | GroupCall::TxnCommit(_)
        | GroupCall::ConsumerHeartbeat(_) => Operation::Read,
        GroupCall::FetchOffsets { .. }
        | GroupCall::Describe(_)
        | GroupCall::List(_)
        | GroupCall::ConsumerDescribe(_) => Operation::Describe,
        GroupCall::DeleteOffsets { .. } | GroupCall::Delete(_) => Operation::Delete,
    }
}

/// ListGroups over the coordinators a connection speaks for: every shard's
/// on the shared port, only its own shard's on a shard's own port (where the
/// client talks to that shard's broker and asks every broker in turn).
pub async fn list_all(context: &ConnectionContext, states: Vec<GroupState>) -> Vec<ListedGroup> {
    let shards = match context.port {
        Port::Shared => 0..context.shard.count(),
        Port::Own => context.shard.id..context.shard.id + 1,
    };
    let calls = shards.map(|shard| {
        context
            .shard
            .call(shard, ShardRequest::Group(GroupCall::List(states.clone())))
    });
    let mut groups: Vec<ListedGroup> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .flat_map(|reply| match reply {
            ShardReply::Group(GroupAnswer::Listed(groups)) => groups,
            _ => Vec::new(),
        })
        .collect();
    groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    groups
}

/// The code to put in a response for an optional coordinator error.
pub fn code(error: Option<ResponseError>) -> i16 {
    error.map_or(0, |error| error.code())
}
