//! OffsetForLeaderEpoch (KIP-101, KIP-320): for each partition, the largest
//! leader epoch the leader's log holds at or below the asked one, and the
//! offset where that epoch ends there (the start of the next epoch, or the
//! log end for the latest). Consumers ask it after a leader change to find
//! whether the records they read were truncated; followers learn the same
//! from Fetch's `DivergingEpoch`. Answered by each partition's owner shard
//! from its leader-epoch cache; only the leader answers (a follower's
//! cache may be behind), as Kafka does for consumers.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, RequestHeader,
};

use super::per_partition;
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{KafkaError, ShardReply, ShardRequest};

/// An epoch (or offset) the log has no answer for: the asked epoch is
/// older than the oldest the log holds.
const UNDEFINED: (i32, i64) = (-1, -1);

pub async fn handle(
    context: &ConnectionContext,
    _header: &RequestHeader,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let answers = per_partition(
        context,
        request.topics.iter().map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| (p.partition, p.current_leader_epoch, p.leader_epoch))
                .collect();
            (topic.topic.0.as_str(), partitions)
        }),
        |name| unauthorized(context, request.replica_id.0, name),
        |_| None,
        ShardRequest::EpochEndOffsets,
        |reply, count| match reply {
            ShardReply::EpochEndOffsets(results) if results.len() == count => results,
            other => vec![Err(other.into_error()); count],
        },
    )
    .await;
    let topics = request
        .topics
        .iter()
        .zip(answers)
        .map(|(topic, topic_answers)| {
            let mut entry = OffsetForLeaderTopicResult::default();
            entry.topic = topic.topic.clone();
            entry.partitions = topic
                .partitions
                .iter()
                .zip(topic_answers)
                .map(|(partition, answer)| {
                    let mut out = EpochEndOffset::default();
                    out.partition = partition.partition;
                    let (epoch, end_offset) = match answer {
                        Ok(found) => found.unwrap_or(UNDEFINED),
                        Err(error) => {
                            out.error_code = error.code;
                            UNDEFINED
                        }
                    };
                    out.leader_epoch = epoch;
                    out.end_offset = end_offset;
                    out
                })
                .collect();
            entry
        })
        .collect();
    let mut response = OffsetForLeaderEpochResponse::default();
    response.topics = topics;
    response
}

/// Kafka's checks: a follower (a replica id) needs CLUSTER_ACTION on the
/// cluster, a consumer DESCRIBE on the topic.
fn unauthorized(context: &ConnectionContext, replica_id: i32, topic: &str) -> Option<KafkaError> {
    if replica_id >= 0 {
        return (!authorize::cluster(context, Operation::ClusterAction))
            .then(authorize::cluster_denied);
    }
    (!authorize::topic(context, Operation::Describe, topic)).then(authorize::topic_denied)
}
