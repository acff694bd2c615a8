//! The leader's offsets a follower asks for after OFFSET_OUT_OF_RANGE
//! (Kafka's `fetchEarliestOffset` and `fetchLatestOffset`): one ListOffsets
//! per bound (Kafka refuses a partition named twice in one request), sent
//! as a replica, with this broker's id, so that latest is the leader's log
//! end and not its high watermark, and with the leader epoch the follower
//! fetches at, so that a leader of another epoch refuses it.
//!
//! Invariant: an answer counts for a partition only when it names that
//! partition, has no error and an offset of at least 0; anything else is
//! an error for it (the follower backs off and fetches again).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, ListOffsetsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::LeaderOffsets;

/// The ListOffsets version a follower sends: flexible (v6+), with
/// `current_leader_epoch` (v4+); every shoal and Kafka 3.x broker takes it.
pub const LIST_OFFSETS_VERSION: i16 = 7;
/// ListOffsets' timestamp for the log end (a replica's latest).
pub const LATEST_TIMESTAMP: i64 = -1;
/// ListOffsets' timestamp for the log start.
pub const EARLIEST_TIMESTAMP: i64 = -2;

/// One partition whose leader's offsets are asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetsQuery {
    pub topic: String,
    pub partition: i32,
    pub current_leader_epoch: i32,
}

/// The ListOffsets asking each of `queries` for `timestamp`, as replica
/// `replica_id`.
pub fn offsets_request(
    queries: &[OffsetsQuery],
    replica_id: i32,
    timestamp: i64,
) -> ListOffsetsRequest {
    let mut topics: Vec<ListOffsetsTopic> = Vec::new();
    for query in queries {
        let mut partition = ListOffsetsPartition::default();
        partition.partition_index = query.partition;
        partition.current_leader_epoch = query.current_leader_epoch;
        partition.timestamp = timestamp;
        match topics.iter_mut().find(|t| t.name.0.as_str() == query.topic) {
            Some(topic) => topic.partitions.push(partition),
            None => {
                let mut topic = ListOffsetsTopic::default();
                topic.name = TopicName(StrBytes::from_string(query.topic.clone()));
                topic.partitions.push(partition);
                topics.push(topic);
            }
        }
    }
    let mut request = ListOffsetsRequest::default();
    request.replica_id = BrokerId(replica_id);
    request.topics = topics;
    request
}

/// Each query's offset in `response` (in the order of `queries`), or the
/// error it got; a partition the answer does not name is
/// UNKNOWN_SERVER_ERROR.
pub fn offsets_answer(
    queries: &[OffsetsQuery],
    response: &ListOffsetsResponse,
) -> Vec<Result<i64, ResponseError>> {
    queries
        .iter()
        .map(|query| {
            let found = response
                .topics
                .iter()
                .filter(|t| t.name.0.as_str() == query.topic)
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == query.partition)
                .ok_or(ResponseError::UnknownServerError)?;
            match ResponseError::try_from_code(found.error_code) {
                Some(error) => Err(error),
                None if found.offset >= 0 => Ok(found.offset),
                None => Err(ResponseError::UnknownServerError),
            }
        })
        .collect()
}

/// Both bounds of one partition, or the first error either got.
pub fn leader_offsets(
    earliest: Result<i64, ResponseError>,
    latest: Result<i64, ResponseError>,
) -> Result<LeaderOffsets, ResponseError> {
    Ok(LeaderOffsets {
        log_start_offset: earliest?,
        log_end_offset: latest?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::list_offsets_response::{
        ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
    };

    fn query(topic: &str, partition: i32) -> OffsetsQuery {
        OffsetsQuery {
            topic: topic.into(),
            partition,
            current_leader_epoch: 4,
        }
    }

    fn answer(entries: &[(&str, i32, i16, i64)]) -> ListOffsetsResponse {
        let mut response = ListOffsetsResponse::default();
        for &(name, partition, error_code, offset) in entries {
            let mut p = ListOffsetsPartitionResponse::default();
            p.partition_index = partition;
            p.error_code = error_code;
            p.offset = offset;
            let mut topic = ListOffsetsTopicResponse::default();
            topic.name = TopicName(StrBytes::from_string(name.into()));
            topic.partitions.push(p);
            response.topics.push(topic);
        }
        response
    }

    #[test]
    fn a_request_groups_partitions_by_topic_as_a_replica_at_the_followed_epoch() {
        let queries = [query("a", 0), query("b", 1), query("a", 2)];
        let request = offsets_request(&queries, 3, EARLIEST_TIMESTAMP);
        assert_eq!(request.replica_id, BrokerId(3));
        // (topic, [(partition, current leader epoch, timestamp)]).
        type Shape = Vec<(String, Vec<(i32, i32, i64)>)>;
        let shape: Shape = request
            .topics
            .iter()
            .map(|t| {
                let parts = t
                    .partitions
                    .iter()
                    .map(|p| (p.partition_index, p.current_leader_epoch, p.timestamp))
                    .collect();
                (t.name.0.to_string(), parts)
            })
            .collect();
        assert_eq!(
            shape,
            [
                ("a".to_string(), vec![(0, 4, -2), (2, 4, -2)]),
                ("b".to_string(), vec![(1, 4, -2)]),
            ]
        );
    }

    #[test]
    fn answers_are_read_per_query_and_a_missing_or_failed_one_is_an_error() {
        let queries = [query("a", 0), query("a", 1), query("b", 0), query("c", 0)];
        let response = answer(&[
            ("a", 0, 0, 120),
            ("a", 1, ResponseError::FencedLeaderEpoch.code(), -1),
            ("b", 0, 0, -1),
        ]);
        assert_eq!(
            offsets_answer(&queries, &response),
            [
                Ok(120),
                Err(ResponseError::FencedLeaderEpoch),
                Err(ResponseError::UnknownServerError),
                Err(ResponseError::UnknownServerError),
            ]
        );
        assert_eq!(
            leader_offsets(Ok(5), Ok(9)),
            Ok(LeaderOffsets {
                log_start_offset: 5,
                log_end_offset: 9
            })
        );
        assert_eq!(
            leader_offsets(Ok(5), Err(ResponseError::NotLeaderOrFollower)),
            Err(ResponseError::NotLeaderOrFollower)
        );
    }
}
