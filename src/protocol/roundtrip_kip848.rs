//! Round-trip samples of the KIP-848 APIs, ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe: a populated request and response per version, for
//! the table-wide round trip in `roundtrip.rs`.

use kafka_protocol::messages::consumer_group_describe_response as describe;
use kafka_protocol::messages::consumer_group_heartbeat_request as heartbeat_request;
use kafka_protocol::messages::consumer_group_heartbeat_response as heartbeat_response;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

const TOPIC_ID: Uuid = Uuid::from_u128(0x5a17_0000_0000_4000_8000_0000_0000_0848);
/// The first version with `subscribed_topic_regex` (heartbeat) and
/// `member_type` (describe).
const V1: i16 = 1;

fn s(value: &'static str) -> StrBytes {
    StrBytes::from_static_str(value)
}

/// A member's first heartbeat (epoch 0, full subscription).
pub(super) fn consumer_group_heartbeat_request(version: i16) -> ConsumerGroupHeartbeatRequest {
    let mut request = ConsumerGroupHeartbeatRequest::default();
    request.group_id = s("orders").into();
    request.member_id = s("b9e2f0c4-4f3c-4c4e-9d55-0a4a8a1f3c21");
    request.member_epoch = 0;
    request.instance_id = Some(s("instance-1"));
    request.rack_id = Some(s("rack-a"));
    request.rebalance_timeout_ms = 300_000;
    request.subscribed_topic_names = Some(vec![s("events").into()]);
    if version >= V1 {
        request.subscribed_topic_regex = Some(s("^events-.*"));
    }
    request.server_assignor = Some(s("uniform"));
    let mut owned = heartbeat_request::TopicPartitions::default();
    owned.topic_id = TOPIC_ID;
    owned.partitions = vec![0, 2, 4];
    request.topic_partitions = Some(vec![owned]);
    request
}

pub(super) fn consumer_group_heartbeat_response(_version: i16) -> ConsumerGroupHeartbeatResponse {
    let mut response = ConsumerGroupHeartbeatResponse::default();
    response.throttle_time_ms = 0;
    response.error_code = 0;
    response.error_message = None;
    response.member_id = Some(s("b9e2f0c4-4f3c-4c4e-9d55-0a4a8a1f3c21"));
    response.member_epoch = 7;
    response.heartbeat_interval_ms = 5_000;
    let mut partitions = heartbeat_response::TopicPartitions::default();
    partitions.topic_id = TOPIC_ID;
    partitions.partitions = vec![1, 3];
    let mut assignment = heartbeat_response::Assignment::default();
    assignment.topic_partitions = vec![partitions];
    response.assignment = Some(assignment);
    response
}

pub(super) fn consumer_group_describe_request(_version: i16) -> ConsumerGroupDescribeRequest {
    let mut request = ConsumerGroupDescribeRequest::default();
    request.group_ids = vec![s("orders").into(), s("audit").into()];
    request.include_authorized_operations = true;
    request
}

pub(super) fn consumer_group_describe_response(version: i16) -> ConsumerGroupDescribeResponse {
    let mut partitions = describe::TopicPartitions::default();
    partitions.topic_id = TOPIC_ID;
    partitions.topic_name = s("events").into();
    partitions.partitions = vec![0, 1, 2];
    let mut assignment = describe::Assignment::default();
    assignment.topic_partitions = vec![partitions];
    let mut member = describe::Member::default();
    member.member_id = s("b9e2f0c4-4f3c-4c4e-9d55-0a4a8a1f3c21");
    member.instance_id = Some(s("instance-1"));
    member.rack_id = None;
    member.member_epoch = 7;
    member.client_id = s("rdkafka");
    member.client_host = s("/127.0.0.1");
    member.subscribed_topic_names = vec![s("events").into()];
    member.subscribed_topic_regex = None;
    member.assignment = assignment.clone();
    member.target_assignment = assignment;
    if version >= V1 {
        member.member_type = 1;
    }
    let mut group = describe::DescribedGroup::default();
    group.group_id = s("orders").into();
    group.group_state = s("Stable");
    group.group_epoch = 7;
    group.assignment_epoch = 7;
    group.assignor_name = s("uniform");
    group.members = vec![member];
    group.authorized_operations = i32::MIN;
    let mut missing = describe::DescribedGroup::default();
    missing.error_code = 69;
    missing.error_message = Some(s("Group audit is not a consumer group."));
    missing.group_id = s("audit").into();
    missing.group_state = s("Dead");
    missing.group_epoch = -1;
    missing.assignment_epoch = -1;
    let mut response = ConsumerGroupDescribeResponse::default();
    response.groups = vec![group, missing];
    response
}
