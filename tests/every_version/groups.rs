//! The group APIs of one classic-group round: FindCoordinator, JoinGroup,
//! SyncGroup, Heartbeat, DescribeGroups, ListGroups, DeleteGroups, OffsetDelete
//! and LeaveGroup, each at the round's version clamped into its own range.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, ConsumerProtocolSubscription, DeleteGroupsRequest,
    DescribeGroupsRequest, FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest,
    LeaveGroupRequest, ListGroupsRequest, MetadataRequest, OffsetDeleteRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

use crate::broker::{Broker, Conn, CLIENT_ID, NODE_ID};
use crate::group_offsets::{commit, expected_fetch, fetch_offsets, no_offset, Committed};
use crate::wire::{
    name, str_bytes, versions_of, GROUP_ID_NOT_FOUND, ILLEGAL_GENERATION, MEMBER_ID_REQUIRED, NONE,
    NON_EMPTY_GROUP, PARTITIONS, UNKNOWN_MEMBER_ID,
};

/// The group APIs a round walks, JoinGroup's rounds aside.
pub const GROUP_APIS: [ApiKey; 9] = [
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::DescribeGroups,
    ApiKey::ListGroups,
    ApiKey::DeleteGroups,
    ApiKey::OffsetDelete,
];
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Kafka's `offsets.topic.num.partitions` default.
pub const OFFSETS_TOPIC_PARTITIONS: usize = 50;
/// Within the broker's `group.{min,max}.session.timeout.ms`.
const SESSION_TIMEOUT_MS: i32 = 30_000;
const REBALANCE_TIMEOUT_MS: i32 = 30_000;
const PROTOCOL_TYPE: &str = "consumer";
const ASSIGNOR: &str = "range";
/// The leader epoch committed from OffsetCommit v6.
const COMMITTED_LEADER_EPOCH: i32 = 0;
pub const NO_LEADER_EPOCH: i32 = -1;

/// The partitions of `__consumer_offsets` and that it is internal, or the
/// error Metadata gives for it; at every Metadata version from `first`,
/// which must be at least 1 (`is_internal`), and at least 4 if the topic
/// must not be auto-created (v1–v3 cannot ask not to).
pub fn offsets_topic_partitions(conn: &mut Conn, first: i16) -> Result<usize, i16> {
    let mut answers = Vec::new();
    for version in versions_of(ApiKey::Metadata).filter(|&version| version >= first) {
        let mut want = MetadataRequestTopic::default();
        want.name = Some(name(OFFSETS_TOPIC));
        let mut request = MetadataRequest::default();
        request.topics = Some(vec![want]);
        if version >= 4 {
            request.allow_auto_topic_creation = false;
        }
        let response = conn.call(&request, version);
        assert_eq!(response.topics.len(), 1, "Metadata v{version}");
        let topic = &response.topics[0];
        let answer = if topic.error_code == NONE {
            assert!(topic.is_internal, "Metadata v{version}: {OFFSETS_TOPIC}");
            Ok(topic.partitions.len())
        } else {
            Err(topic.error_code)
        };
        answers.push(answer);
    }
    let first = answers[0];
    assert!(
        answers.iter().all(|answer| *answer == first),
        "Metadata versions disagree on {OFFSETS_TOPIC}: {answers:?}"
    );
    first
}

pub fn find_coordinator(conn: &mut Conn, broker: &Broker) {
    for version in versions_of(ApiKey::FindCoordinator) {
        let keys = [
            format!("g-find-v{version}-a"),
            format!("g-find-v{version}-b"),
        ];
        let mut request = FindCoordinatorRequest::default();
        let asked: &[String] = if version >= 4 {
            request.coordinator_keys = keys.iter().map(|key| str_bytes(key)).collect();
            &keys
        } else {
            request.key = str_bytes(&keys[0]);
            &keys[..1]
        };
        let response = conn.call(&request, version);
        // (key, error, node, host, port) per key asked.
        let answers: Vec<(String, i16, i32, String, i32)> = if version >= 4 {
            response
                .coordinators
                .iter()
                .map(|coordinator| {
                    (
                        coordinator.key.to_string(),
                        coordinator.error_code,
                        coordinator.node_id.0,
                        coordinator.host.to_string(),
                        coordinator.port,
                    )
                })
                .collect()
        } else {
            vec![(
                keys[0].clone(),
                response.error_code,
                response.node_id.0,
                response.host.to_string(),
                response.port,
            )]
        };
        let expected: Vec<(String, i16, i32, String, i32)> = asked
            .iter()
            .map(|key| {
                let port = i32::from(broker.port);
                (key.clone(), NONE, NODE_ID, "127.0.0.1".to_owned(), port)
            })
            .collect();
        assert_eq!(answers, expected, "FindCoordinator v{version}");
    }
}

/// The version of `key` a round at JoinGroup `round` uses.
fn round_version(key: ApiKey, round: i16) -> i16 {
    let range = versions_of(key);
    round.clamp(*range.start(), *range.end())
}

pub fn group_id(text: &str) -> GroupId {
    GroupId(str_bytes(text))
}

/// A ConsumerProtocolSubscription v0 to `topic`, as JoinGroup metadata.
fn subscription(topic: &str) -> Bytes {
    let mut subscription = ConsumerProtocolSubscription::default();
    subscription.topics = vec![str_bytes(topic)];
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    subscription.encode(&mut buf, 0).unwrap();
    buf.freeze()
}

/// A ConsumerProtocolAssignment v0 of every partition of `topic`.
fn assignment(topic: &str) -> Bytes {
    let mut partitions = TopicPartition::default();
    partitions.topic = name(topic);
    partitions.partitions = (0..PARTITIONS).collect();
    let mut assignment = ConsumerProtocolAssignment::default();
    assignment.assigned_partitions = vec![partitions];
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    assignment.encode(&mut buf, 0).unwrap();
    buf.freeze()
}

/// A member of the group of one round, after SyncGroup.
struct Member {
    group: String,
    member_id: String,
    generation_id: i32,
}

/// Join, sync, heartbeat, commit and fetch, describe, list, delete, leave:
/// the life of a one-member consumer group, at JoinGroup version `round`.
pub fn group_round(conn: &mut Conn, round: i16, topic: &str) {
    let member = join_and_sync(conn, round, topic);
    heartbeat(conn, round, &member);

    let commit_version = round_version(ApiKey::OffsetCommit, round);
    let fetch_version = round_version(ApiKey::OffsetFetch, round);
    let round_offset = 100 * i64::from(round);
    let offsets = [
        Committed {
            partition: 0,
            offset: round_offset + 1,
            leader_epoch: COMMITTED_LEADER_EPOCH,
            metadata: Some(format!("round-v{round}")),
        },
        Committed {
            partition: 1,
            offset: round_offset + 2,
            leader_epoch: COMMITTED_LEADER_EPOCH,
            metadata: None,
        },
    ];
    commit(
        conn,
        commit_version,
        &member.group,
        (member.generation_id, &member.member_id),
        topic,
        &offsets,
    );
    let fetched = fetch_offsets(conn, fetch_version, &member.group, topic, Some(&[0, 1]));
    let expected = expected_fetch(&offsets, commit_version, fetch_version);
    assert_eq!(
        fetched, expected,
        "OffsetFetch v{fetch_version} after OffsetCommit v{commit_version}"
    );
    if fetch_version >= 2 {
        let mut every = fetch_offsets(conn, fetch_version, &member.group, topic, None);
        every.sort_by_key(|committed| committed.partition);
        assert_eq!(
            every, expected,
            "OffsetFetch v{fetch_version} of every partition"
        );
    }

    // A standalone commit (an `assign()` consumer): no generation, no
    // member, and the group it names stays Empty.
    let standalone = format!("g-standalone-v{round}");
    let standalone_offsets = [Committed {
        partition: 0,
        offset: round_offset + 3,
        leader_epoch: COMMITTED_LEADER_EPOCH,
        metadata: Some("standalone".to_owned()),
    }];
    commit(
        conn,
        commit_version,
        &standalone,
        (-1, ""),
        topic,
        &standalone_offsets,
    );
    let fetched = fetch_offsets(conn, fetch_version, &standalone, topic, Some(&[0]));
    let expected = expected_fetch(&standalone_offsets, commit_version, fetch_version);
    assert_eq!(
        fetched, expected,
        "OffsetFetch v{fetch_version} after a standalone OffsetCommit v{commit_version}"
    );

    describe_stable(conn, round, &member, topic);
    list_groups(conn, round, &member.group, &standalone);

    let delete_version = round_version(ApiKey::DeleteGroups, round);
    assert_eq!(
        delete_groups(conn, delete_version, &[&member.group]),
        vec![NON_EMPTY_GROUP],
        "DeleteGroups v{delete_version} of a group with a member"
    );

    // OffsetDelete on the Empty group: the offset is gone, nothing else is.
    let version = round_version(ApiKey::OffsetDelete, round);
    let mut partition = OffsetDeleteRequestPartition::default();
    partition.partition_index = 0;
    let mut delete_topic = OffsetDeleteRequestTopic::default();
    delete_topic.name = name(topic);
    delete_topic.partitions = vec![partition];
    let mut request = OffsetDeleteRequest::default();
    request.group_id = group_id(&standalone);
    request.topics = vec![delete_topic];
    let response = conn.call(&request, version);
    assert_eq!(response.error_code, NONE, "OffsetDelete v{version}");
    let answers = partition_errors!(response.topics);
    assert_eq!(
        answers,
        vec![(topic.to_owned(), 0, NONE)],
        "OffsetDelete v{version}"
    );
    let fetched = fetch_offsets(conn, fetch_version, &standalone, topic, Some(&[0]));
    assert_eq!(
        fetched,
        expected_fetch(&[no_offset(0)], commit_version, fetch_version),
        "OffsetFetch v{fetch_version} after OffsetDelete v{version}"
    );

    leave(conn, round, &member);
    assert_eq!(
        delete_groups(conn, delete_version, &[&member.group, &standalone]),
        vec![NONE, NONE],
        "DeleteGroups v{delete_version} of empty groups"
    );
    let listed = listed_groups(conn, round_version(ApiKey::ListGroups, round), &[]);
    for deleted in [&member.group, &standalone] {
        assert!(
            !listed.iter().any(|(group, _, _)| group == deleted),
            "ListGroups after DeleteGroups v{delete_version}: {deleted} still listed"
        );
    }
    assert_eq!(
        delete_groups(conn, delete_version, &[&member.group]),
        vec![GROUP_ID_NOT_FOUND],
        "DeleteGroups v{delete_version} of a deleted group"
    );
    describe_deleted(conn, round, &member.group);
}

/// DescribeGroups of a group that does not exist: Dead before v6, an error
/// from v6 (KIP-1043).
fn describe_deleted(conn: &mut Conn, round: i16, group: &str) {
    let version = round_version(ApiKey::DescribeGroups, round);
    let mut request = DescribeGroupsRequest::default();
    request.groups = vec![group_id(group)];
    let response = conn.call(&request, version);
    assert_eq!(response.groups.len(), 1, "DescribeGroups v{version}");
    let described = &response.groups[0];
    assert_eq!(described.group_id.0.as_str(), group);
    assert!(
        described.members.is_empty(),
        "DescribeGroups v{version} {group}"
    );
    if version >= 6 {
        assert_eq!(
            described.error_code, GROUP_ID_NOT_FOUND,
            "DescribeGroups v{version} of a deleted group"
        );
    } else {
        assert_eq!(
            (described.error_code, described.group_state.as_str()),
            (NONE, "Dead"),
            "DescribeGroups v{version} of a deleted group"
        );
    }
}

/// JoinGroup at `round` (twice from v4: KIP-394's MEMBER_ID_REQUIRED hands
/// out the member id to rejoin with), then SyncGroup with the leader's
/// assignment.
fn join_and_sync(conn: &mut Conn, round: i16, topic: &str) -> Member {
    let group = format!("g-round-v{round}");
    let join = |member_id: &str| {
        let mut protocol = JoinGroupRequestProtocol::default();
        protocol.name = str_bytes(ASSIGNOR);
        protocol.metadata = subscription(topic);
        let mut request = JoinGroupRequest::default();
        request.group_id = group_id(&group);
        request.session_timeout_ms = SESSION_TIMEOUT_MS;
        if round >= 1 {
            request.rebalance_timeout_ms = REBALANCE_TIMEOUT_MS;
        }
        request.member_id = str_bytes(member_id);
        request.protocol_type = str_bytes(PROTOCOL_TYPE);
        request.protocols = vec![protocol];
        if round >= 8 {
            request.reason = Some(str_bytes("every-version round"));
        }
        request
    };
    let mut response = conn.call(&join(""), round);
    if round >= 4 {
        assert_eq!(
            response.error_code, MEMBER_ID_REQUIRED,
            "JoinGroup v{round} without a member id"
        );
        assert!(
            !response.member_id.is_empty(),
            "JoinGroup v{round}: MEMBER_ID_REQUIRED without a member id"
        );
        let member_id = response.member_id.to_string();
        response = conn.call(&join(&member_id), round);
        assert_eq!(
            response.member_id.as_str(),
            member_id,
            "JoinGroup v{round} rejoin"
        );
    }
    assert_eq!(response.error_code, NONE, "JoinGroup v{round}");
    let member_id = response.member_id.to_string();
    assert!(!member_id.is_empty(), "JoinGroup v{round}: no member id");
    assert_eq!(response.generation_id, 1, "JoinGroup v{round} generation");
    assert_eq!(
        response.leader.as_str(),
        member_id,
        "JoinGroup v{round} leader"
    );
    assert_eq!(
        response.protocol_name.as_deref(),
        Some(ASSIGNOR),
        "JoinGroup v{round} protocol"
    );
    if round >= 7 {
        assert_eq!(
            response.protocol_type.as_deref(),
            Some(PROTOCOL_TYPE),
            "JoinGroup v{round} protocol type"
        );
    }
    let members: Vec<(String, Option<StrBytes>, Bytes)> = response
        .members
        .iter()
        .map(|member| {
            let id = member.member_id.to_string();
            (
                id,
                member.group_instance_id.clone(),
                member.metadata.clone(),
            )
        })
        .collect();
    assert_eq!(
        members,
        vec![(member_id.clone(), None, subscription(topic))],
        "JoinGroup v{round}: the leader gets the members"
    );

    let version = round_version(ApiKey::SyncGroup, round);
    let mut share = SyncGroupRequestAssignment::default();
    share.member_id = str_bytes(&member_id);
    share.assignment = assignment(topic);
    let mut request = SyncGroupRequest::default();
    request.group_id = group_id(&group);
    request.generation_id = response.generation_id;
    request.member_id = str_bytes(&member_id);
    request.assignments = vec![share];
    if version >= 5 {
        request.protocol_type = Some(str_bytes(PROTOCOL_TYPE));
        request.protocol_name = Some(str_bytes(ASSIGNOR));
    }
    let synced = conn.call(&request, version);
    assert_eq!(synced.error_code, NONE, "SyncGroup v{version}");
    assert_eq!(synced.assignment, assignment(topic), "SyncGroup v{version}");
    if version >= 5 {
        assert_eq!(synced.protocol_type.as_deref(), Some(PROTOCOL_TYPE));
        assert_eq!(synced.protocol_name.as_deref(), Some(ASSIGNOR));
    }
    Member {
        group,
        member_id,
        generation_id: response.generation_id,
    }
}

fn heartbeat(conn: &mut Conn, round: i16, member: &Member) {
    let version = round_version(ApiKey::Heartbeat, round);
    for (generation_id, expected) in [
        (member.generation_id, NONE),
        (member.generation_id + 1, ILLEGAL_GENERATION),
    ] {
        let mut request = HeartbeatRequest::default();
        request.group_id = group_id(&member.group);
        request.generation_id = generation_id;
        request.member_id = str_bytes(&member.member_id);
        let response = conn.call(&request, version);
        assert_eq!(
            response.error_code, expected,
            "Heartbeat v{version} generation {generation_id}"
        );
    }
}

/// DescribeGroups of a Stable one-member group: its protocol, and the member
/// with the client id and host of this connection, its subscription and its
/// assignment.
fn describe_stable(conn: &mut Conn, round: i16, member: &Member, topic: &str) {
    let version = round_version(ApiKey::DescribeGroups, round);
    let mut request = DescribeGroupsRequest::default();
    request.groups = vec![group_id(&member.group)];
    let response = conn.call(&request, version);
    assert_eq!(response.groups.len(), 1, "DescribeGroups v{version}");
    let described = &response.groups[0];
    assert_eq!(described.error_code, NONE, "DescribeGroups v{version}");
    assert_eq!(described.group_id.0.as_str(), member.group);
    assert_eq!(
        described.group_state.as_str(),
        "Stable",
        "DescribeGroups v{version}"
    );
    assert_eq!(described.protocol_type.as_str(), PROTOCOL_TYPE);
    assert_eq!(described.protocol_data.as_str(), ASSIGNOR);
    assert_eq!(described.members.len(), 1, "DescribeGroups v{version}");
    let described_member = &described.members[0];
    assert_eq!(described_member.member_id.as_str(), member.member_id);
    assert_eq!(described_member.group_instance_id, None);
    assert_eq!(
        described_member.client_id.as_str(),
        CLIENT_ID,
        "DescribeGroups v{version}"
    );
    assert!(
        described_member.client_host.contains("127.0.0.1"),
        "DescribeGroups v{version} client host {:?}",
        described_member.client_host
    );
    assert_eq!(described_member.member_metadata, subscription(topic));
    assert_eq!(described_member.member_assignment, assignment(topic));
}

/// (group, protocol type, state) of every group ListGroups gives for
/// `states` (a filter only from v4; the state is "" before v4).
fn listed_groups(conn: &mut Conn, version: i16, states: &[&str]) -> Vec<(String, String, String)> {
    let mut request = ListGroupsRequest::default();
    request.states_filter = states.iter().map(|state| str_bytes(state)).collect();
    let response = conn.call(&request, version);
    assert_eq!(response.error_code, NONE, "ListGroups v{version}");
    response
        .groups
        .iter()
        .map(|group| {
            (
                group.group_id.0.to_string(),
                group.protocol_type.to_string(),
                group.group_state.to_string(),
            )
        })
        .collect()
}

fn list_groups(conn: &mut Conn, round: i16, stable: &str, empty: &str) {
    let version = round_version(ApiKey::ListGroups, round);
    let state = |text: &'static str| if version >= 4 { text } else { "" };
    let ours = |listed: Vec<(String, String, String)>| -> Vec<(String, String, String)> {
        let mut ours: Vec<_> = listed
            .into_iter()
            .filter(|(group, _, _)| group == stable || group == empty)
            .collect();
        ours.sort();
        ours
    };
    let mut expected = vec![
        (
            stable.to_owned(),
            PROTOCOL_TYPE.to_owned(),
            state("Stable").to_owned(),
        ),
        (empty.to_owned(), String::new(), state("Empty").to_owned()),
    ];
    expected.sort();
    assert_eq!(
        ours(listed_groups(conn, version, &[])),
        expected,
        "ListGroups v{version}"
    );
    if version >= 4 {
        assert_eq!(
            ours(listed_groups(conn, version, &["Stable"])),
            vec![(
                stable.to_owned(),
                PROTOCOL_TYPE.to_owned(),
                "Stable".to_owned()
            )],
            "ListGroups v{version} states Stable"
        );
        assert_eq!(
            ours(listed_groups(conn, version, &["Dead"])),
            Vec::new(),
            "ListGroups v{version} states Dead"
        );
    }
}

/// The error of each of `groups` after DeleteGroups.
fn delete_groups(conn: &mut Conn, version: i16, groups: &[&str]) -> Vec<i16> {
    let mut request = DeleteGroupsRequest::default();
    request.groups_names = groups.iter().map(|group| group_id(group)).collect();
    let response = conn.call(&request, version);
    let named: Vec<&str> = response
        .results
        .iter()
        .map(|result| result.group_id.0.as_str())
        .collect();
    assert_eq!(named, groups, "DeleteGroups v{version}");
    response
        .results
        .iter()
        .map(|result| result.error_code)
        .collect()
}

/// LeaveGroup of `member_id`: the request's error and, from v3, the one
/// member's (checked to name it); NONE for the member's before v3.
fn leave_group(conn: &mut Conn, version: i16, group: &str, member_id: &str) -> (i16, i16) {
    let mut request = LeaveGroupRequest::default();
    request.group_id = group_id(group);
    if version >= 3 {
        let mut identity = MemberIdentity::default();
        identity.member_id = str_bytes(member_id);
        if version >= 5 {
            identity.reason = Some(str_bytes("every-version round done"));
        }
        request.members = vec![identity];
    } else {
        request.member_id = str_bytes(member_id);
    }
    let response = conn.call(&request, version);
    if version < 3 {
        return (response.error_code, NONE);
    }
    assert_eq!(response.members.len(), 1, "LeaveGroup v{version}");
    let left = &response.members[0];
    assert_eq!(left.member_id.as_str(), member_id, "LeaveGroup v{version}");
    assert_eq!(left.group_instance_id, None, "LeaveGroup v{version}");
    (response.error_code, left.error_code)
}

/// LeaveGroup of the round's only member: by member id (v0–v2) or in the
/// members list (v3+). The group is Empty after it.
fn leave(conn: &mut Conn, round: i16, member: &Member) {
    let version = round_version(ApiKey::LeaveGroup, round);
    assert_eq!(
        leave_group(conn, version, &member.group, &member.member_id),
        (NONE, NONE),
        "LeaveGroup v{version}"
    );
    // A member the group does not know: the whole request's error before
    // v3, that member's from v3.
    assert_eq!(
        leave_group(conn, version, &member.group, "no-such-member"),
        if version >= 3 {
            (NONE, UNKNOWN_MEMBER_ID)
        } else {
            (UNKNOWN_MEMBER_ID, NONE)
        },
        "LeaveGroup v{version} of an unknown member"
    );

    let describe_version = round_version(ApiKey::DescribeGroups, round);
    let mut request = DescribeGroupsRequest::default();
    request.groups = vec![group_id(&member.group)];
    let response = conn.call(&request, describe_version);
    let described = &response.groups[0];
    assert_eq!(
        (described.group_state.as_str(), described.members.len()),
        ("Empty", 0),
        "DescribeGroups v{describe_version} after LeaveGroup v{version}"
    );
}
