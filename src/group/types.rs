//! The coordinator's plain-data API: what handlers pass in and get back.
//! Field names follow Kafka's request and response schemas; errors are
//! Kafka's error codes (`None` is `NONE`).

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use uuid::Uuid;

/// A caller-chosen id for a request whose answer may come later (JoinGroup,
/// SyncGroup). The caller keeps a oneshot sender per token.
pub type RequestToken = u64;

/// The state of a group, named as DescribeGroups and ListGroups name it.
/// Classic groups go through the rebalance states, consumer-protocol groups
/// (KIP-848) through `Assigning` and `Reconciling`; both know the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    /// A consumer group whose target assignment is behind its group epoch.
    Assigning,
    /// A consumer group whose members are moving to the target assignment.
    Reconciling,
    Stable,
    Dead,
}

impl GroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Assigning => "Assigning",
            GroupState::Reconciling => "Reconciling",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// Parses a ListGroups `statesFilter` entry; Kafka matches them ignoring case.
    pub fn parse(name: &str) -> Option<GroupState> {
        [
            GroupState::Empty,
            GroupState::PreparingRebalance,
            GroupState::CompletingRebalance,
            GroupState::Assigning,
            GroupState::Reconciling,
            GroupState::Stable,
            GroupState::Dead,
        ]
        .into_iter()
        .find(|state| state.as_str().eq_ignore_ascii_case(name))
    }
}

/// A JoinGroup request (all versions; fields a version lacks take Kafka's
/// defaults: `rebalance_timeout_ms` = `session_timeout_ms` before v1,
/// `group_instance_id` = None before v5).
#[derive(Debug, Clone, PartialEq)]
pub struct JoinRequest {
    pub group_id: String,
    /// Empty for a member joining for the first time.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// Protocol name and member metadata, most preferred first.
    pub protocols: Vec<(String, Bytes)>,
    pub reason: Option<String>,
    /// From v4 a new member first gets MEMBER_ID_REQUIRED and a member id
    /// (KIP-394); from v9 a static leader may skip the assignment (KIP-814).
    pub api_version: i16,
}

/// One member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct JoinResponse {
    pub error: Option<ResponseError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    pub member_id: String,
    /// Every member with its metadata for the chosen protocol; leader only.
    pub members: Vec<JoinMember>,
}

impl JoinResponse {
    pub(crate) fn failure(error: ResponseError, member_id: &str) -> JoinResponse {
        JoinResponse {
            error: Some(error),
            generation_id: -1,
            member_id: member_id.to_string(),
            ..JoinResponse::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// v5+: checked against the group's when present.
    pub protocol_type: Option<String>,
    /// v5+: checked against the group's when present.
    pub protocol_name: Option<String>,
    /// The leader's assignment per member id; empty from followers.
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyncResponse {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    pub(crate) fn failure(error: ResponseError) -> SyncResponse {
        SyncResponse {
            error: Some(error),
            ..SyncResponse::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// One member leaving. Before LeaveGroup v3 a request names exactly one
/// member by id, and its error is the response's top-level error.
#[derive(Debug, Clone, PartialEq)]
pub struct LeavingMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LeaveResponse {
    /// Set when the whole request failed (unknown group).
    pub error: Option<ResponseError>,
    pub members: Vec<(LeavingMember, Option<ResponseError>)>,
}

/// One partition's offset to commit.
#[derive(Debug, Clone, PartialEq)]
pub struct OffsetToCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// -1 when unknown.
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CommitRequest {
    pub group_id: String,
    /// -1 for a consumer outside group management (`assign()`) or a tool.
    /// The member epoch for members of a consumer-protocol group
    /// (`generation_id_or_member_epoch`).
    pub generation_id: i32,
    /// Empty for a consumer outside group management.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub offsets: Vec<OffsetToCommit>,
    /// Members of consumer-protocol groups must commit with v9 or later.
    pub api_version: i16,
}

/// A TxnOffsetCommit (all versions; before v3 there is no member, and
/// `generation_id` is -1, `member_id` empty). Its offsets stay pending
/// until the producer's transaction ends (`complete_txn`).
#[derive(Debug, Clone, PartialEq)]
pub struct TxnCommitRequest {
    pub group_id: String,
    pub producer: TxnProducer,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub offsets: Vec<OffsetToCommit>,
}

/// A committed offset as OffsetFetch returns it and as it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    /// -1 when unknown.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// One partition's answer to OffsetCommit, OffsetFetch or OffsetDelete.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionOffset {
    pub topic: String,
    pub partition: i32,
    pub error: Option<ResponseError>,
    /// For OffsetFetch: `None` answers offset -1, metadata "" (nothing committed).
    pub committed: Option<CommittedOffset>,
}

/// Which protocol a group's members speak: ListGroups v5 `groupType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupType {
    /// JoinGroup/SyncGroup/Heartbeat, client-side assignment.
    Classic,
    /// ConsumerGroupHeartbeat, server-side assignment (KIP-848).
    Consumer,
}

impl GroupType {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupType::Classic => "classic",
            GroupType::Consumer => "consumer",
        }
    }

    /// Parses a ListGroups `typesFilter` entry, ignoring case as Kafka does.
    pub fn parse(name: &str) -> Option<GroupType> {
        [GroupType::Classic, GroupType::Consumer]
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(name))
    }
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedGroup {
    pub group_id: String,
    pub group_type: GroupType,
    /// Empty for groups that only hold offsets (simple consumers, tools).
    pub protocol_type: String,
    pub state: GroupState,
}

/// One group as the broker's metrics show it (`GroupCoordinator::gauges`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupGauge {
    pub group_id: String,
    pub state: GroupState,
    pub members: usize,
    /// (topic, partition, committed offset), by topic and partition.
    pub offsets: Vec<(String, i32, i64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DescribedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// The member's metadata for the chosen protocol; empty unless Stable.
    pub metadata: Bytes,
    /// Empty unless Stable.
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it. An unknown group is `Dead` with no
/// members and no error, as in Kafka.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribedGroup {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    /// The chosen protocol; empty unless Stable.
    pub protocol_name: String,
    pub members: Vec<DescribedMember>,
}

/// Partitions by topic id, as the consumer protocol names them.
pub type TopicPartitions = Vec<(Uuid, Vec<i32>)>;

/// What the coordinator needs to know of a topic: its id and partition count.
/// The caller's view of the cluster answers it by name.
pub type TopicLookup<'a> = &'a dyn Fn(&str) -> Option<(Uuid, i32)>;

/// The epoch a member sends to join (or rejoin) a consumer group.
pub const JOIN_MEMBER_EPOCH: i32 = 0;
/// The epoch a member sends to leave a consumer group for good.
pub const LEAVE_MEMBER_EPOCH: i32 = -1;
/// The epoch a static member sends to leave for a while, keeping its
/// assignment until its session expires.
pub const LEAVE_STATIC_MEMBER_EPOCH: i32 = -2;

/// A ConsumerGroupHeartbeat (KIP-848), v0 and v1. Optional fields are
/// `None` when the member did not change them since its last heartbeat.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConsumerHeartbeatRequest {
    pub group_id: String,
    /// Empty from a v0 member joining: the coordinator makes one up. From
    /// v1 the member always brings its own.
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1: unchanged.
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns now; `None`: unchanged.
    pub topic_partitions: Option<TopicPartitions>,
    pub client_id: String,
    pub client_host: String,
    pub api_version: i16,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConsumerHeartbeatResponse {
    pub error: Option<ResponseError>,
    pub error_message: Option<String>,
    pub member_id: Option<String>,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's whole assignment, when it changed or the request was a
    /// full one; `None` otherwise.
    pub assignment: Option<TopicPartitions>,
}

impl ConsumerHeartbeatResponse {
    pub(crate) fn failure(error: ResponseError, message: impl Into<String>) -> Self {
        ConsumerHeartbeatResponse {
            error: Some(error),
            error_message: Some(message.into()),
            ..ConsumerHeartbeatResponse::default()
        }
    }
}

/// Partitions of one topic in a ConsumerGroupDescribe answer.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribedTopicPartitions {
    pub topic_id: Uuid,
    /// Empty when the topic is no longer known.
    pub topic_name: String,
    pub partitions: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DescribedConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assignment: Vec<DescribedTopicPartitions>,
    pub target_assignment: Vec<DescribedTopicPartitions>,
}

/// A consumer-protocol group as ConsumerGroupDescribe shows it. A group that
/// does not exist, or is a classic group, carries GROUP_ID_NOT_FOUND.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribedConsumerGroup {
    pub group_id: String,
    pub error: Option<ResponseError>,
    pub error_message: Option<String>,
    pub state: GroupState,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor_name: String,
    pub members: Vec<DescribedConsumerMember>,
}

/// A record for `__consumer_offsets`: Kafka's key and value encodings, a
/// `None` value is a tombstone.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The `__consumer_offsets` partition it belongs to (`offsets_partition`).
    pub partition: i32,
    pub key: Bytes,
    pub value: Option<Bytes>,
    /// The transaction it belongs to (TxnOffsetCommit): written in a
    /// transactional batch of that producer, whose COMMIT or ABORT marker in
    /// the same partition later decides it. `None` for everything else.
    pub txn: Option<TxnProducer>,
}

/// A transactional producer as its batches name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TxnProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// A late answer to a waiting request.
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    Join(RequestToken, JoinResponse),
    Sync(RequestToken, SyncResponse),
}

/// What one call changed: records to append to `__consumer_offsets`, then
/// answers to deliver. Append first: an answer may promise what a record
/// makes durable. The coordinator's memory is already ahead of the log; if
/// the append fails, answer with NOT_COORDINATOR instead and rebuild the
/// partition (`unload_partition`, then `replay`).
#[must_use = "records must be appended and completions delivered"]
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Effects {
    pub records: Vec<Record>,
    pub completions: Vec<Completion>,
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.completions.is_empty()
    }
}
