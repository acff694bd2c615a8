//! The messages shards send each other. Every per-partition operation is a
//! request to the partition's owner shard; the answer comes back over the
//! mesh (`mesh.rs`).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::group::{
    CommitRequest, ConsumerHeartbeatRequest, ConsumerHeartbeatResponse, DescribedConsumerGroup,
    DescribedGroup, GroupState, HeartbeatRequest, JoinRequest, JoinResponse, LeaveResponse,
    LeavingMember, ListedGroup, PartitionOffset, SyncRequest, SyncResponse, TxnCommitRequest,
};
use crate::log::{AppendResult, AppendWait};
// The controller's requests and errors are the pure controller's types.
pub use crate::metadata::controller::{
    ConfigChange, KafkaError, NewTopic, PartitionGrowth, TopicConfigChange, TopicRef,
};
use crate::metadata::producer_ids::ProducerIdBlock;
use crate::metadata::{ClusterView, TopicMeta};
use crate::protocol::records::TxnMarker;

/// A partition of a topic, named the way shards address it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: Arc::from(topic),
            partition,
        }
    }

    /// The partition's directory name under the data directory, as Kafka names it.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

/// Batches for one partition, already validated by the accepting shard.
#[derive(Debug)]
pub struct ProducePart {
    pub partition: TopicPartition,
    pub batches: BytesMut,
    pub wait: AppendWait,
    pub log_append_time_ms: Option<i64>,
}

/// One partition's read of a Fetch.
#[derive(Debug, Clone)]
pub struct FetchPart {
    pub partition: TopicPartition,
    pub offset: i64,
    pub max_bytes: usize,
}

/// What a partition answered to a read.
#[derive(Debug, Clone, Default)]
pub struct FetchOutcome {
    pub error_code: i16,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub leader_epoch: i32,
    /// Whole batches, shared with the owner's tail cache (zero copy).
    pub records: Vec<Bytes>,
}

#[derive(Debug)]
pub enum ShardRequest {
    Produce(Vec<ProducePart>),
    Fetch(Vec<FetchPart>),
    /// Resolves when any listed partition's high watermark passes the
    /// offset given for it, or after `timeout_ms`.
    WaitForData {
        parts: Vec<(TopicPartition, i64)>,
        timeout_ms: u64,
    },
    /// ListOffsets by timestamp (or -1 latest, -2 earliest, -3 max timestamp).
    ListOffsets(Vec<(TopicPartition, i64)>),
    /// Opens (creating when missing) the logs of these partitions of `topic`.
    OpenPartitions {
        topic: Arc<TopicMeta>,
        partitions: Vec<i32>,
    },
    /// Closes and removes the logs of these partitions.
    DeletePartitions(Vec<TopicPartition>),
    /// To the controller (shard 0).
    CreateTopics(Vec<NewTopic>),
    /// To the controller (shard 0).
    DeleteTopics(Vec<TopicRef>),
    /// To the controller (shard 0).
    AlterTopicConfigs(Vec<TopicConfigChange>),
    /// To the controller (shard 0).
    CreatePartitions(Vec<PartitionGrowth>),
    /// DeleteRecords: moves each partition's log start offset up to the
    /// offset given (-1: the high watermark).
    DeleteRecords(Vec<(TopicPartition, i64)>),
    /// To the controller (shard 0): a block of producer ids for the
    /// calling shard, persisted before the answer.
    AllocateProducerIds,
    /// Appends each transaction marker to its partition, answering once
    /// it is durable (`Shard::write_txn_markers`).
    WriteTxnMarkers(Vec<(TopicPartition, TxnMarker)>),
    /// The size in bytes of every partition the shard owns.
    PartitionSizes,
    /// Replaces the shard's metadata snapshot.
    InstallView(Arc<ClusterView>),
    /// To the group coordinator of the shard that owns the group's
    /// `__consumer_offsets` partition (`List` goes to every shard).
    Group(GroupCall),
}

#[derive(Debug)]
pub enum ShardReply {
    Produce(Vec<Result<AppendResult, KafkaError>>),
    Fetch(Vec<FetchOutcome>),
    /// (timestamp, offset) per requested partition.
    ListOffsets(Vec<Result<(i64, i64), KafkaError>>),
    CreateTopics(Vec<Result<Arc<TopicMeta>, KafkaError>>),
    /// (name, id) per requested topic.
    DeleteTopics(Vec<Result<(String, uuid::Uuid), KafkaError>>),
    /// One result per topic of `AlterTopicConfigs` or `CreatePartitions`.
    Applied(Vec<Result<(), KafkaError>>),
    /// The log start offset afterwards (low watermark) per partition.
    DeleteRecords(Vec<Result<i64, KafkaError>>),
    PartitionSizes(Vec<(TopicPartition, u64)>),
    /// One per marker of `WriteTxnMarkers`, in order.
    TxnMarkers(Vec<Result<(), KafkaError>>),
    ProducerIds(Result<ProducerIdBlock, KafkaError>),
    Group(GroupAnswer),
    Done,
    /// The request failed as a whole (e.g. a partition could not be opened).
    Failed(KafkaError),
}

/// A consumer-group request, as the coordinator's plain-data API takes it.
#[derive(Debug)]
pub enum GroupCall {
    Join(JoinRequest),
    Sync(SyncRequest),
    Heartbeat(HeartbeatRequest),
    Leave {
        group_id: String,
        members: Vec<LeavingMember>,
    },
    Commit(CommitRequest),
    /// TxnOffsetCommit: answered with `GroupAnswer::Offsets`.
    TxnCommit(TxnCommitRequest),
    FetchOffsets {
        group_id: String,
        /// OffsetFetch v9: the asking member's id and epoch, checked
        /// against a consumer-protocol group's membership.
        member: Option<(String, i32)>,
        /// None: every partition with a committed offset.
        partitions: Option<Vec<(String, i32)>>,
        /// OffsetFetch v7+: UNSTABLE_OFFSET_COMMIT for a partition with
        /// offsets pending in an open transaction.
        require_stable: bool,
    },
    DeleteOffsets {
        group_id: String,
        partitions: Vec<(String, i32)>,
    },
    Describe(String),
    List(Vec<GroupState>),
    Delete(String),
    /// KIP-848; boxed, it is the largest request by far.
    ConsumerHeartbeat(Box<ConsumerHeartbeatRequest>),
    /// KIP-848: groups that all hash to the receiving coordinator.
    ConsumerDescribe(Vec<String>),
}

impl GroupCall {
    /// The groups the call is about; empty for ListGroups, which is about
    /// every group of the coordinator.
    pub fn group_ids(&self) -> Vec<&str> {
        let group_id = match self {
            GroupCall::Join(request) => &request.group_id,
            GroupCall::Sync(request) => &request.group_id,
            GroupCall::Heartbeat(request) => &request.group_id,
            GroupCall::Commit(request) => &request.group_id,
            GroupCall::TxnCommit(request) => &request.group_id,
            GroupCall::ConsumerHeartbeat(request) => &request.group_id,
            GroupCall::Leave { group_id, .. }
            | GroupCall::FetchOffsets { group_id, .. }
            | GroupCall::DeleteOffsets { group_id, .. }
            | GroupCall::Describe(group_id)
            | GroupCall::Delete(group_id) => group_id,
            GroupCall::List(_) => return Vec::new(),
            GroupCall::ConsumerDescribe(group_ids) => {
                return group_ids.iter().map(String::as_str).collect()
            }
        };
        vec![group_id.as_str()]
    }
}

#[derive(Debug)]
pub enum GroupAnswer {
    Join(JoinResponse),
    Sync(SyncResponse),
    Heartbeat(Option<kafka_protocol::error::ResponseError>),
    Leave(LeaveResponse),
    Offsets(Vec<PartitionOffset>),
    FetchedOffsets(Result<Vec<PartitionOffset>, kafka_protocol::error::ResponseError>),
    DeleteOffsets(Result<Vec<PartitionOffset>, kafka_protocol::error::ResponseError>),
    Described(DescribedGroup),
    Listed(Vec<ListedGroup>),
    Deleted(Option<kafka_protocol::error::ResponseError>),
    ConsumerHeartbeat(ConsumerHeartbeatResponse),
    ConsumerDescribed(Vec<DescribedConsumerGroup>),
}

impl ShardReply {
    /// The error to report for every item of a request that got this reply
    /// instead of the one it expected.
    pub fn into_error(self) -> KafkaError {
        match self {
            ShardReply::Failed(error) => error,
            _ => KafkaError::new(kafka_protocol::error::ResponseError::UnknownServerError),
        }
    }
}
