use kafka_protocol::messages::describe_topic_partitions_request::{self, TopicRequest};
use uuid::Uuid;

use super::*;
use crate::metadata::records::{MetadataRecord, PartitionRecord, TopicRecord};
use crate::metadata::view_tests::cluster_view_after;

/// Topics `a` (2 partitions) and `z` (3) beside `cluster_view`'s `t` (5).
fn view() -> ClusterView {
    let mut records = Vec::new();
    for (name, id, partitions) in [("a", 0xa, 2), ("z", 0xf, 3)] {
        let topic_id = Uuid::from_u128(id);
        records.push(MetadataRecord::Topic(TopicRecord {
            name: name.into(),
            topic_id,
        }));
        records.extend((0..partitions).map(|partition_id| {
            MetadataRecord::Partition(PartitionRecord {
                partition_id,
                topic_id,
                replicas: vec![1, 2],
                isr: vec![1, 2],
                removing_replicas: Vec::new(),
                adding_replicas: Vec::new(),
                leader: 1,
                leader_recovery_state: 0,
                leader_epoch: 0,
                partition_epoch: 0,
                directories: Vec::new(),
                shards: vec![0, 0],
            })
        }));
    }
    cluster_view_after(&records)
}

fn request(
    topics: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> DescribeTopicPartitionsRequest {
    let mut request = DescribeTopicPartitionsRequest::default();
    request.topics = topics
        .iter()
        .map(|name| {
            let mut topic = TopicRequest::default();
            topic.name = TopicName(str_bytes(*name));
            topic
        })
        .collect();
    request.response_partition_limit = limit;
    request.cursor = cursor.map(|(name, index)| {
        let mut cursor = describe_topic_partitions_request::Cursor::default();
        cursor.topic_name = TopicName(str_bytes(name));
        cursor.partition_index = index;
        cursor
    });
    request
}

/// A topic's name and a partition index.
type At = (String, i32);

/// (partition, error, leader, ISR, offline replicas).
type Seen = (i32, i16, i32, Vec<i32>, Vec<i32>);

/// (topic, partition) of every partition in `response`, and its cursor.
fn seen(response: &DescribeTopicPartitionsResponse) -> (Vec<At>, Option<At>) {
    let partitions = response
        .topics
        .iter()
        .flat_map(|topic| {
            let name = topic
                .name
                .as_ref()
                .map(|n| n.0.to_string())
                .unwrap_or_default();
            topic
                .partitions
                .iter()
                .map(move |p| (name.clone(), p.partition_index))
        })
        .collect();
    let cursor = response
        .next_cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    (partitions, cursor)
}

fn all_partitions() -> Vec<(String, i32)> {
    [("a", 2), ("t", 5), ("z", 3)]
        .iter()
        .flat_map(|&(name, count)| (0..count).map(move |p| (name.to_string(), p)))
        .collect()
}

#[test]
fn pages_walk_every_partition_once_in_order_at_any_limit() {
    let view = view();
    for limit in 1..=11 {
        let mut walked = Vec::new();
        let mut cursor: Option<(String, i32)> = None;
        let mut pages = 0;
        loop {
            let at = cursor.as_ref().map(|(name, index)| (name.as_str(), *index));
            let (partitions, next) = seen(&describe(&view, &request(&[], limit, at)));
            assert!(partitions.len() <= limit as usize, "limit {limit}");
            walked.extend(partitions);
            pages += 1;
            assert!(pages <= 10, "limit {limit}: the cursor does not move on");
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(walked, all_partitions(), "limit {limit}");
    }
}

#[test]
fn a_page_ends_with_kafkas_cursor() {
    let view = view();
    // Within a topic: the cursor names the first partition left out.
    let (partitions, cursor) = seen(&describe(&view, &request(&[], 3, None)));
    assert_eq!(partitions.len(), 3);
    assert_eq!(cursor, Some(("t".to_string(), 1)));
    // At a topic's end with the limit spent: the next topic, partition 0.
    let (_, cursor) = seen(&describe(&view, &request(&["a", "z"], 2, None)));
    assert_eq!(cursor, Some(("z".to_string(), 0)));
    // A limit below 1 is raised to 1, as Kafka does.
    let (partitions, _) = seen(&describe(&view, &request(&[], 0, None)));
    assert_eq!(partitions, vec![("a".to_string(), 0)]);
}

#[test]
fn named_topics_answer_sorted_with_errors_for_the_missing() {
    let view = view();
    let response = describe(
        &view,
        &request(&["z", "no-such", "bad name", "z"], 100, None),
    );
    let topics: Vec<(String, i16, usize)> = response
        .topics
        .iter()
        .map(|t| {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            (name, t.error_code, t.partitions.len())
        })
        .collect();
    assert_eq!(
        topics,
        vec![
            (
                "bad name".into(),
                ResponseError::InvalidTopicException.code(),
                0
            ),
            (
                "no-such".into(),
                ResponseError::UnknownTopicOrPartition.code(),
                0
            ),
            ("z".into(), 0, 3),
        ]
    );
    assert_eq!(
        response.topics[2].topic_authorized_operations,
        authorized::TOPIC
    );
    assert_eq!(response.topics[2].topic_id, Uuid::from_u128(0xf));
}

#[test]
fn a_cursor_kafka_refuses_is_an_invalid_request() {
    let view = view();
    let invalid = ResponseError::InvalidRequest.code();
    for (topics, cursor) in [(&["t"][..], ("a", 0)), (&["t"][..], ("t", -1))] {
        let response = describe(&view, &request(topics, 10, Some(cursor)));
        assert_eq!(response.topics.len(), 1);
        assert_eq!(response.topics[0].error_code, invalid);
        assert!(response.topics[0].partitions.is_empty());
    }
}

#[test]
fn partitions_show_leaderless_and_offline_replicas_without_an_error() {
    let view = view();
    let response = describe(&view, &request(&["t"], 10, Some(("t", 2))));
    let partitions: Vec<Seen> = response.topics[0]
        .partitions
        .iter()
        .map(|p| {
            let ids = |nodes: &[kafka_protocol::messages::BrokerId]| {
                nodes.iter().map(|id| id.0).collect::<Vec<_>>()
            };
            (
                p.partition_index,
                p.error_code,
                p.leader_id.0,
                ids(&p.isr_nodes),
                ids(&p.offline_replicas),
            )
        })
        .collect();
    assert_eq!(
        partitions,
        vec![
            (2, 0, 2, vec![2], vec![3]),
            (3, 0, -1, vec![1], vec![3]),
            (4, 0, -1, vec![1, 2], vec![]),
        ]
    );
}
