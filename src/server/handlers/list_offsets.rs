//! ListOffsets: earliest, latest, max timestamp, or the first offset at or
//! after a timestamp, answered by each partition's owner shard. Latest is
//! the last stable offset for `isolation_level` 1 (read_committed), the high
//! watermark otherwise, and the log end for a replica (`replica_id` not -1:
//! a follower resolving OFFSET_OUT_OF_RANGE), as Kafka answers. The leader
//! epoch answered is the found batch's, the current leader's for latest.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, RequestHeader};

use super::per_partition;
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{ListIsolation, ShardReply, ShardRequest};

/// `isolation_level` of a read_committed consumer (ListOffsets v2+).
const READ_COMMITTED: i8 = 1;

/// `replica_id` of a consumer; any other (a broker's id, or -2 for a
/// debugging client) reads up to the log end, as Kafka's `isClientRequest`.
const CONSUMER_REPLICA_ID: i32 = -1;

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let version = header.request_api_version;
    let answers = per_partition(
        context,
        request.topics.iter().map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    (
                        partition.partition_index,
                        partition.current_leader_epoch,
                        (partition.timestamp, isolation(&request)),
                    )
                })
                .collect();
            (topic.name.0.as_str(), partitions)
        }),
        |name| {
            (!authorize::topic(context, Operation::Describe, name)).then(authorize::topic_denied)
        },
        |_| None,
        ShardRequest::ListOffsets,
        |reply, count| match reply {
            ShardReply::ListOffsets(results) if results.len() == count => results,
            other => vec![Err(other.into_error()); count],
        },
    )
    .await;
    let view = context.shard.view();
    let topics = request
        .topics
        .iter()
        .zip(answers)
        .map(|(topic, topic_answers)| {
            let meta = view.topic(topic.name.0.as_str());
            let mut entry = ListOffsetsTopicResponse::default();
            entry.name = topic.name.clone();
            entry.partitions = topic
                .partitions
                .iter()
                .zip(topic_answers)
                .map(|(partition, answer)| {
                    let mut out = ListOffsetsPartitionResponse::default();
                    out.partition_index = partition.partition_index;
                    out.timestamp = -1;
                    out.offset = -1;
                    match answer {
                        Ok(listed) => {
                            out.timestamp = listed.timestamp;
                            out.offset = listed.offset;
                            // No offset found has no epoch either (-1, as in
                            // Kafka); else the found batch's, or the epoch
                            // this leader leads in.
                            if version >= 4 && listed.offset >= 0 {
                                out.leader_epoch = listed.leader_epoch.unwrap_or_else(|| {
                                    meta.map_or(0, |meta| {
                                        view.state(meta, partition.partition_index).leader_epoch
                                    })
                                });
                            }
                        }
                        Err(error) => out.error_code = error.code,
                    }
                    out
                })
                .collect();
            entry
        })
        .collect();
    let mut response = ListOffsetsResponse::default();
    response.topics = topics;
    response
}

/// How far latest reads for this request.
fn isolation(request: &ListOffsetsRequest) -> ListIsolation {
    if request.replica_id.0 != CONSUMER_REPLICA_ID {
        ListIsolation::LogEnd
    } else if request.isolation_level == READ_COMMITTED {
        ListIsolation::LastStableOffset
    } else {
        ListIsolation::HighWatermark
    }
}
