//! Round-trip samples of the partition APIs of issue 15's reassignment
//! work: DescribeTopicPartitions (KIP-966), AlterPartitionReassignments and
//! ListPartitionReassignments, for the table-wide round trip in
//! `roundtrip.rs`.

use kafka_protocol::messages::*;

use super::roundtrip::{broker, s, topic, TOPIC_ID};

pub(super) fn describe_topic_partitions_request(_version: i16) -> DescribeTopicPartitionsRequest {
    let named =
        |name| describe_topic_partitions_request::TopicRequest::default().with_name(topic(name));
    DescribeTopicPartitionsRequest::default()
        .with_topics(vec![named("orders"), named("payments")])
        .with_response_partition_limit(500)
        .with_cursor(Some(
            describe_topic_partitions_request::Cursor::default()
                .with_topic_name(topic("orders"))
                .with_partition_index(7),
        ))
}

pub(super) fn describe_topic_partitions_response(_version: i16) -> DescribeTopicPartitionsResponse {
    use describe_topic_partitions_response::*;
    let partition = DescribeTopicPartitionsResponsePartition::default()
        .with_partition_index(7)
        .with_leader_id(broker(2))
        .with_leader_epoch(4)
        .with_replica_nodes(vec![broker(2), broker(3), broker(1)])
        .with_isr_nodes(vec![broker(2), broker(1)])
        .with_eligible_leader_replicas(Some(vec![broker(1)]))
        .with_last_known_elr(None)
        .with_offline_replicas(vec![broker(3)]);
    let leaderless = DescribeTopicPartitionsResponsePartition::default()
        .with_partition_index(8)
        .with_leader_id(broker(-1))
        .with_leader_epoch(2)
        .with_replica_nodes(vec![broker(3)])
        .with_isr_nodes(vec![broker(3)])
        .with_eligible_leader_replicas(Some(Vec::new()))
        .with_last_known_elr(Some(vec![broker(3)]))
        .with_offline_replicas(vec![broker(3)]);
    DescribeTopicPartitionsResponse::default()
        .with_throttle_time_ms(1)
        .with_topics(vec![
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(topic("orders")))
                .with_topic_id(TOPIC_ID)
                .with_partitions(vec![partition, leaderless])
                .with_topic_authorized_operations(0x0df8),
            DescribeTopicPartitionsResponseTopic::default()
                .with_error_code(3)
                .with_name(Some(topic("payments"))),
        ])
        .with_next_cursor(Some(
            Cursor::default()
                .with_topic_name(topic("orders"))
                .with_partition_index(9),
        ))
}

/// The first AlterPartitionReassignments version with KIP-860's
/// `AllowReplicationFactorChange`, in the request and echoed in the answer.
const ALLOW_RF_CHANGE_VERSION: i16 = 1;

pub(super) fn alter_partition_reassignments_request(
    version: i16,
) -> AlterPartitionReassignmentsRequest {
    use alter_partition_reassignments_request::*;
    let moved = ReassignablePartition::default()
        .with_partition_index(0)
        .with_replicas(Some(vec![broker(3), broker(1)]));
    let cancelled = ReassignablePartition::default()
        .with_partition_index(4)
        .with_replicas(None);
    AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(60_000)
        .with_allow_replication_factor_change(version < ALLOW_RF_CHANGE_VERSION)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(topic("orders"))
            .with_partitions(vec![moved, cancelled])])
}

pub(super) fn alter_partition_reassignments_response(
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    use alter_partition_reassignments_response::*;
    let refused = ReassignablePartitionResponse::default()
        .with_partition_index(4)
        .with_error_code(85)
        .with_error_message(Some(s("No partition reassignment is in progress.")));
    let resized = ReassignablePartitionResponse::default()
        .with_partition_index(5)
        .with_error_code(38)
        .with_error_message(Some(s("The replication factor is changed from 3 to 2")));
    AlterPartitionReassignmentsResponse::default()
        .with_throttle_time_ms(1)
        .with_allow_replication_factor_change(version < ALLOW_RF_CHANGE_VERSION)
        .with_responses(vec![ReassignableTopicResponse::default()
            .with_name(topic("orders"))
            .with_partitions(vec![
                ReassignablePartitionResponse::default().with_partition_index(0),
                refused,
                resized,
            ])])
}

pub(super) fn list_partition_reassignments_request(
    _version: i16,
) -> ListPartitionReassignmentsRequest {
    ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(Some(vec![
            list_partition_reassignments_request::ListPartitionReassignmentsTopics::default()
                .with_name(topic("orders"))
                .with_partition_indexes(vec![0, 4]),
        ]))
}

pub(super) fn list_partition_reassignments_response(
    _version: i16,
) -> ListPartitionReassignmentsResponse {
    use list_partition_reassignments_response::*;
    ListPartitionReassignmentsResponse::default()
        .with_throttle_time_ms(1)
        .with_topics(vec![OngoingTopicReassignment::default()
            .with_name(topic("orders"))
            .with_partitions(vec![OngoingPartitionReassignment::default()
                .with_partition_index(0)
                .with_replicas(vec![broker(3), broker(1), broker(2)])
                .with_adding_replicas(vec![broker(3)])
                .with_removing_replicas(vec![broker(2)])])])
}
