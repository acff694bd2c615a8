//! Round-trip samples of the consumer group APIs (FindCoordinator,
//! JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, TxnOffsetCommit,
//! OffsetFetch,
//! DescribeGroups, ListGroups, DeleteGroups, OffsetDelete): a populated
//! request and response per version, for the table-wide round trip in
//! `roundtrip.rs`.

use bytes::Bytes;
use kafka_protocol::messages::*;

use super::roundtrip::{broker, group, s, topic};

/// A ConsumerProtocolSubscription v0 naming `orders`, as a consumer puts it
/// in JoinGroup.
const SUBSCRIPTION: &[u8] = b"\0\0\0\0\0\x01\0\x06orders\xff\xff\xff\xff";
/// A ConsumerProtocolAssignment v0 of `orders` partitions 0 and 2, as the
/// leader puts it in SyncGroup.
const ASSIGNMENT: &[u8] = b"\0\0\0\0\0\x01\0\x06orders\0\0\0\x02\0\0\0\0\0\0\0\x02\xff\xff\xff\xff";

pub(super) fn find_coordinator_request(version: i16) -> FindCoordinatorRequest {
    let mut request = FindCoordinatorRequest::default();
    if version >= 1 {
        request.key_type = 1; // TRANSACTION
    }
    match version {
        0 => request.key = s("orders-app"),
        1..=3 => request.key = s("txn-7"),
        _ => request.coordinator_keys = vec![s("txn-7"), s("txn-8")],
    }
    request
}

pub(super) fn find_coordinator_response(version: i16) -> FindCoordinatorResponse {
    let mut response = FindCoordinatorResponse::default();
    if version >= 1 {
        response.throttle_time_ms = 2;
    }
    if version >= 4 {
        response.coordinators = vec![
            find_coordinator_response::Coordinator::default()
                .with_key(s("txn-7"))
                .with_node_id(broker(2))
                .with_host(s("broker-2"))
                .with_port(9092),
            find_coordinator_response::Coordinator::default()
                .with_key(s("txn-8"))
                .with_node_id(broker(-1))
                .with_port(-1)
                .with_error_code(15) // COORDINATOR_NOT_AVAILABLE
                .with_error_message(Some(s("The coordinator is not available."))),
        ];
        return response;
    }
    response.node_id = broker(2);
    response.host = s("broker-2");
    response.port = 9092;
    if version >= 1 {
        response.error_message = Some(s("NONE"));
    }
    response
}

pub(super) fn join_group_request(version: i16) -> JoinGroupRequest {
    let protocol = |name, metadata| {
        join_group_request::JoinGroupRequestProtocol::default()
            .with_name(s(name))
            .with_metadata(Bytes::from_static(metadata))
    };
    let mut request = JoinGroupRequest::default()
        .with_group_id(group("orders-app"))
        .with_session_timeout_ms(45_000)
        .with_member_id(s("rdkafka-5f1e0c2a"))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            protocol("range", SUBSCRIPTION),
            protocol(
                "cooperative-sticky",
                b"\0\x01\0\0\0\0\xff\xff\xff\xff\0\0\0\0",
            ),
        ]);
    if version >= 1 {
        request.rebalance_timeout_ms = 300_000;
    }
    if version >= 5 {
        request.group_instance_id = Some(s("orders-app-1"));
    }
    if version >= 8 {
        request.reason = Some(s("rebalance after metadata change"));
    }
    request
}

pub(super) fn join_group_response(version: i16) -> JoinGroupResponse {
    let members = ["member-a", "member-b"]
        .into_iter()
        .enumerate()
        .map(|(i, member_id)| {
            let mut member = join_group_response::JoinGroupResponseMember::default()
                .with_member_id(s(member_id))
                .with_metadata(Bytes::from_static(SUBSCRIPTION));
            if version >= 5 {
                member.group_instance_id = (i == 0).then(|| s("orders-app-1"));
            }
            member
        })
        .collect();
    let mut response = JoinGroupResponse::default()
        .with_generation_id(3)
        .with_protocol_name(Some(s("range")))
        .with_leader(s("member-a"))
        .with_member_id(s("member-a"))
        .with_members(members);
    if version >= 2 {
        response.throttle_time_ms = 1;
    }
    if version >= 7 {
        response.protocol_type = Some(s("consumer"));
    }
    if version >= 9 {
        response.skip_assignment = true;
    }
    response
}

pub(super) fn sync_group_request(version: i16) -> SyncGroupRequest {
    let assignment = |member_id| {
        sync_group_request::SyncGroupRequestAssignment::default()
            .with_member_id(s(member_id))
            .with_assignment(Bytes::from_static(ASSIGNMENT))
    };
    let mut request = SyncGroupRequest::default()
        .with_group_id(group("orders-app"))
        .with_generation_id(3)
        .with_member_id(s("member-a"))
        .with_assignments(vec![assignment("member-a"), assignment("member-b")]);
    if version >= 3 {
        request.group_instance_id = Some(s("orders-app-1"));
    }
    if version >= 5 {
        request.protocol_type = Some(s("consumer"));
        request.protocol_name = Some(s("range"));
    }
    request
}

pub(super) fn sync_group_response(version: i16) -> SyncGroupResponse {
    let mut response = SyncGroupResponse::default().with_assignment(Bytes::from_static(ASSIGNMENT));
    if version >= 1 {
        response.throttle_time_ms = 1;
    }
    if version >= 5 {
        response.protocol_type = Some(s("consumer"));
        response.protocol_name = Some(s("range"));
    }
    response
}

pub(super) fn heartbeat_request(version: i16) -> HeartbeatRequest {
    let mut request = HeartbeatRequest::default()
        .with_group_id(group("orders-app"))
        .with_generation_id(3)
        .with_member_id(s("member-a"));
    if version >= 3 {
        request.group_instance_id = Some(s("orders-app-1"));
    }
    request
}

pub(super) fn heartbeat_response(version: i16) -> HeartbeatResponse {
    let mut response = HeartbeatResponse::default().with_error_code(27); // REBALANCE_IN_PROGRESS
    if version >= 1 {
        response.throttle_time_ms = 1;
    }
    response
}

pub(super) fn leave_group_request(version: i16) -> LeaveGroupRequest {
    let mut request = LeaveGroupRequest::default().with_group_id(group("orders-app"));
    if version >= 3 {
        request.members = ["member-a", "member-b"]
            .into_iter()
            .enumerate()
            .map(|(i, member_id)| {
                let mut member = leave_group_request::MemberIdentity::default()
                    .with_member_id(s(member_id))
                    .with_group_instance_id((i == 0).then(|| s("orders-app-1")));
                if version >= 5 {
                    member.reason = Some(s("the consumer is being closed"));
                }
                member
            })
            .collect();
    } else {
        request.member_id = s("member-a");
    }
    request
}

pub(super) fn leave_group_response(version: i16) -> LeaveGroupResponse {
    let mut response = LeaveGroupResponse::default();
    if version >= 1 {
        response.throttle_time_ms = 1;
    }
    if version >= 3 {
        response.members = vec![
            leave_group_response::MemberResponse::default()
                .with_member_id(s("member-a"))
                .with_group_instance_id(Some(s("orders-app-1"))),
            leave_group_response::MemberResponse::default()
                .with_member_id(s("member-b"))
                .with_error_code(25), // UNKNOWN_MEMBER_ID
        ];
    }
    response
}

pub(super) fn offset_commit_request(version: i16) -> OffsetCommitRequest {
    let partition = |index, offset, metadata| {
        let mut partition = offset_commit_request::OffsetCommitRequestPartition::default()
            .with_partition_index(index)
            .with_committed_offset(offset)
            .with_committed_metadata(metadata);
        if version >= 6 {
            partition.committed_leader_epoch = 4;
        }
        partition
    };
    let mut request = OffsetCommitRequest::default()
        .with_group_id(group("orders-app"))
        .with_generation_id_or_member_epoch(3)
        .with_member_id(s("member-a"))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(topic("orders"))
                .with_partitions(vec![
                    partition(0, 1_234, Some(s("checkpoint-17"))),
                    partition(2, 0, None),
                ]),
        ]);
    if (2..=4).contains(&version) {
        request.retention_time_ms = 86_400_000;
    }
    if version >= 7 {
        request.group_instance_id = Some(s("orders-app-1"));
    }
    request
}

pub(super) fn offset_commit_response(version: i16) -> OffsetCommitResponse {
    let mut response = OffsetCommitResponse::default().with_topics(vec![
        offset_commit_response::OffsetCommitResponseTopic::default()
            .with_name(topic("orders"))
            .with_partitions(vec![
                offset_commit_response::OffsetCommitResponsePartition::default()
                    .with_partition_index(0),
                offset_commit_response::OffsetCommitResponsePartition::default()
                    .with_partition_index(2)
                    .with_error_code(22), // ILLEGAL_GENERATION
            ]),
    ]);
    if version >= 3 {
        response.throttle_time_ms = 1;
    }
    response
}

pub(super) fn txn_offset_commit_request(version: i16) -> TxnOffsetCommitRequest {
    let partition = |index, offset, metadata| {
        let mut partition = txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
            .with_partition_index(index)
            .with_committed_offset(offset)
            .with_committed_metadata(metadata);
        if version >= 2 {
            partition.committed_leader_epoch = 4;
        }
        partition
    };
    let mut request = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s("orders-enricher-0")))
        .with_group_id(group("orders-app"))
        .with_producer_id(ProducerId(4_001))
        .with_producer_epoch(3)
        .with_topics(vec![
            txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                .with_name(topic("orders"))
                .with_partitions(vec![
                    partition(0, 1_234, Some(s("checkpoint-17"))),
                    partition(2, 0, None),
                ]),
        ]);
    if version >= 3 {
        request.generation_id = 5;
        request.member_id = s("member-a");
        request.group_instance_id = Some(s("orders-app-1"));
    }
    request
}

pub(super) fn txn_offset_commit_response(_version: i16) -> TxnOffsetCommitResponse {
    TxnOffsetCommitResponse::default()
        .with_throttle_time_ms(1)
        .with_topics(vec![
            txn_offset_commit_response::TxnOffsetCommitResponseTopic::default()
                .with_name(topic("orders"))
                .with_partitions(vec![
                    txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(0),
                    txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(2)
                        .with_error_code(47), // INVALID_PRODUCER_EPOCH
                ]),
        ])
}

pub(super) fn offset_fetch_request(version: i16) -> OffsetFetchRequest {
    let mut request = OffsetFetchRequest::default();
    if version >= 8 {
        let mut named = offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(group("orders-app"))
            .with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopics::default()
                    .with_name(topic("orders"))
                    .with_partition_indexes(vec![0, 2]),
            ]));
        if version >= 9 {
            named.member_id = Some(s("member-a"));
            named.member_epoch = 5;
        }
        let every_topic = offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(group("audit-app"))
            .with_topics(None);
        request.groups = vec![named, every_topic];
    } else {
        request.group_id = group("orders-app");
        request.topics = Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(topic("orders"))
                .with_partition_indexes(vec![0, 2]),
        ]);
    }
    if version >= 7 {
        request.require_stable = true;
    }
    request
}

pub(super) fn offset_fetch_response(version: i16) -> OffsetFetchResponse {
    let mut response = OffsetFetchResponse::default();
    if version >= 3 {
        response.throttle_time_ms = 1;
    }
    if version >= 8 {
        let partitions = vec![
            offset_fetch_response::OffsetFetchResponsePartitions::default()
                .with_partition_index(0)
                .with_committed_offset(1_234)
                .with_committed_leader_epoch(4)
                .with_metadata(Some(s("checkpoint-17"))),
            offset_fetch_response::OffsetFetchResponsePartitions::default()
                .with_partition_index(2)
                .with_committed_offset(-1)
                .with_metadata(Some(s(""))),
        ];
        response.groups = vec![
            offset_fetch_response::OffsetFetchResponseGroup::default()
                .with_group_id(group("orders-app"))
                .with_topics(vec![
                    offset_fetch_response::OffsetFetchResponseTopics::default()
                        .with_name(topic("orders"))
                        .with_partitions(partitions),
                ]),
            offset_fetch_response::OffsetFetchResponseGroup::default()
                .with_group_id(group("audit-app"))
                .with_error_code(14), // COORDINATOR_LOAD_IN_PROGRESS
        ];
        return response;
    }
    let mut found = offset_fetch_response::OffsetFetchResponsePartition::default()
        .with_partition_index(0)
        .with_committed_offset(1_234)
        .with_metadata(Some(s("checkpoint-17")));
    let none = offset_fetch_response::OffsetFetchResponsePartition::default()
        .with_partition_index(2)
        .with_committed_offset(-1)
        .with_metadata(Some(s("")));
    if version >= 5 {
        found.committed_leader_epoch = 4;
    }
    response.topics = vec![offset_fetch_response::OffsetFetchResponseTopic::default()
        .with_name(topic("orders"))
        .with_partitions(vec![found, none])];
    response
}

pub(super) fn describe_groups_request(version: i16) -> DescribeGroupsRequest {
    let mut request = DescribeGroupsRequest::default()
        .with_groups(vec![group("orders-app"), group("missing-app")]);
    if version >= 3 {
        request.include_authorized_operations = true;
    }
    request
}

pub(super) fn describe_groups_response(version: i16) -> DescribeGroupsResponse {
    let mut member = describe_groups_response::DescribedGroupMember::default()
        .with_member_id(s("member-a"))
        .with_client_id(s("rdkafka"))
        .with_client_host(s("/127.0.0.1"))
        .with_member_metadata(Bytes::from_static(SUBSCRIPTION))
        .with_member_assignment(Bytes::from_static(ASSIGNMENT));
    if version >= 4 {
        member.group_instance_id = Some(s("orders-app-1"));
    }
    let mut stable = describe_groups_response::DescribedGroup::default()
        .with_group_id(group("orders-app"))
        .with_group_state(s("Stable"))
        .with_protocol_type(s("consumer"))
        .with_protocol_data(s("range"))
        .with_members(vec![member]);
    if version >= 3 {
        stable.authorized_operations = 0b1_0110_0000;
    }
    // Before v6 an unknown group is described as Dead without an error.
    let mut missing = describe_groups_response::DescribedGroup::default()
        .with_group_id(group("missing-app"))
        .with_group_state(s("Dead"));
    if version >= 6 {
        missing.error_code = 69; // GROUP_ID_NOT_FOUND
        missing.error_message = Some(s("Group missing-app not found."));
    }
    let mut response = DescribeGroupsResponse::default().with_groups(vec![stable, missing]);
    if version >= 1 {
        response.throttle_time_ms = 1;
    }
    response
}

pub(super) fn list_groups_request(version: i16) -> ListGroupsRequest {
    let mut request = ListGroupsRequest::default();
    if version >= 4 {
        request.states_filter = vec![s("Stable"), s("Empty")];
    }
    if version >= 5 {
        request.types_filter = vec![s("classic")];
    }
    request
}

pub(super) fn list_groups_response(version: i16) -> ListGroupsResponse {
    let groups = [("orders-app", "Stable"), ("audit-app", "Empty")]
        .into_iter()
        .map(|(group_id, state)| {
            let mut listed = list_groups_response::ListedGroup::default()
                .with_group_id(group(group_id))
                .with_protocol_type(s("consumer"));
            if version >= 4 {
                listed.group_state = s(state);
            }
            if version >= 5 {
                listed.group_type = s("classic");
            }
            listed
        })
        .collect();
    let mut response = ListGroupsResponse::default().with_groups(groups);
    if version >= 1 {
        response.throttle_time_ms = 1;
    }
    response
}

pub(super) fn delete_groups_request(_version: i16) -> DeleteGroupsRequest {
    DeleteGroupsRequest::default().with_groups_names(vec![group("audit-app"), group("orders-app")])
}

pub(super) fn delete_groups_response(_version: i16) -> DeleteGroupsResponse {
    DeleteGroupsResponse::default()
        .with_throttle_time_ms(1)
        .with_results(vec![
            delete_groups_response::DeletableGroupResult::default()
                .with_group_id(group("audit-app")),
            delete_groups_response::DeletableGroupResult::default()
                .with_group_id(group("orders-app"))
                .with_error_code(68), // NON_EMPTY_GROUP
        ])
}

pub(super) fn offset_delete_request(_version: i16) -> OffsetDeleteRequest {
    OffsetDeleteRequest::default()
        .with_group_id(group("audit-app"))
        .with_topics(vec![
            offset_delete_request::OffsetDeleteRequestTopic::default()
                .with_name(topic("orders"))
                .with_partitions(vec![
                    offset_delete_request::OffsetDeleteRequestPartition::default()
                        .with_partition_index(0),
                    offset_delete_request::OffsetDeleteRequestPartition::default()
                        .with_partition_index(2),
                ]),
        ])
}

pub(super) fn offset_delete_response(_version: i16) -> OffsetDeleteResponse {
    OffsetDeleteResponse::default()
        .with_throttle_time_ms(1)
        .with_topics(vec![
            offset_delete_response::OffsetDeleteResponseTopic::default()
                .with_name(topic("orders"))
                .with_partitions(vec![
                    offset_delete_response::OffsetDeleteResponsePartition::default()
                        .with_partition_index(0),
                    offset_delete_response::OffsetDeleteResponsePartition::default()
                        .with_partition_index(2)
                        .with_error_code(86), // GROUP_SUBSCRIBED_TO_TOPIC
                ]),
        ])
}
