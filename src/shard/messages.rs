//! The messages shards send each other. Every per-partition operation is a
//! request to the partition's owner shard; the answer comes back over the
//! mesh (`mesh.rs`).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{EnvelopeRequest, EnvelopeResponse};

use crate::group::{
    CommitRequest, ConsumerHeartbeatRequest, ConsumerHeartbeatResponse, DescribedConsumerGroup,
    DescribedGroup, GroupState, HeartbeatRequest, JoinRequest, JoinResponse, LeaveResponse,
    LeavingMember, ListedGroup, PartitionOffset, SyncRequest, SyncResponse, TxnCommitRequest,
};
use crate::log::{AppendResult, AppendWait, Chunk, ProducerDescription, TxnVerification};
// The controller's requests and errors are the pure controller's types.
pub use crate::metadata::controller::{
    ConfigChange, KafkaError, NewTopic, PartitionGrowth, TopicConfigChange, TopicRef,
};
use crate::metadata::producer_ids::ProducerIdBlock;
use crate::metadata::{ClusterView, TopicMeta};
use crate::protocol::records::TxnMarker;
use crate::quorum::describe::QuorumStatus;
use crate::quota::mutation::Mutator;
use crate::txn::{DescribedTxn, ListedTxn, TxnState};

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
    pub batches: Bytes,
    /// The most memory a slice of `batches` keeps allocated: the request
    /// frame's allocation (`connection::frame_allocation_bytes_max`), what
    /// the owner charges its shard's frame budget, once for all the parts
    /// of the frame it appends (`OwnedPartitions::produce`). A size, not a
    /// handle: the budget's handle (`log::PinnedFrame`) is `!Send` and is
    /// made on the owner.
    pub pinned_bytes: usize,
    pub wait: AppendWait,
    pub log_append_time_ms: Option<i64>,
    /// KIP-890: what the batches bring to the check that a transaction's
    /// first batch here is in the coordinator's transaction.
    pub verification: TxnVerification,
}

/// Why the owner did not append a partition's batches.
#[derive(Debug, Clone)]
pub enum ProduceRefusal {
    Error(KafkaError),
    /// KIP-890: the batches would open their producer's transaction on the
    /// partition; once the transaction coordinator confirms the partition
    /// is in it, they come again with `guard`.
    Unverified {
        producer_id: i64,
        epoch: i16,
        guard: u64,
    },
    /// A verified batch after an earlier one of its producer still
    /// waiting for the same verification; the error if it stays so.
    BehindVerifying(KafkaError),
}

/// One partition's read of a Fetch.
#[derive(Debug, Clone)]
pub struct FetchPart {
    pub partition: TopicPartition,
    pub offset: i64,
    pub max_bytes: usize,
    /// `isolation_level` 1 (READ_COMMITTED): read below the last stable
    /// offset, with the aborted transactions of what is read.
    pub read_committed: bool,
    /// A follower's fetch: it reads up to the leader's durable end, not the
    /// high watermark, and its fetch offset is its log end.
    pub replica: Option<ReplicaFetch>,
}

impl FetchPart {
    /// Where this read stops, and what its long poll waits to move.
    pub fn bound(&self) -> ReadBound {
        match (self.replica, self.read_committed) {
            (Some(_), _) => ReadBound::DurableEnd,
            (None, true) => ReadBound::LastStable,
            (None, false) => ReadBound::HighWatermark,
        }
    }
}

/// A follower's fetch of a partition (Fetch's `replica_id`, or from v15
/// its `ReplicaState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaFetch {
    pub replica_id: i32,
    /// The follower's broker epoch (v15+), -1 before.
    pub broker_epoch: i64,
    /// The epoch of the last batch in the follower's log (v12+), -1 when
    /// unknown: the leader answers a divergence from it (KIP-320).
    pub last_fetched_epoch: i32,
    /// The follower's log start offset, -1 when unknown: the leader's low
    /// watermark (DeleteRecords) counts it.
    pub log_start_offset: i64,
}

/// How far a read may go: what consumers read up to (the high watermark,
/// or the last stable offset for read_committed), or what a follower may
/// copy (the leader's durable end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBound {
    HighWatermark,
    LastStable,
    DurableEnd,
}

/// How far ListOffsets latest reads: Kafka's isolation level for a
/// consumer, none for a replica (or a debugging client): the log end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListIsolation {
    LogEnd,
    /// read_uncommitted.
    HighWatermark,
    /// read_committed.
    LastStableOffset,
}

/// One partition's ListOffsets answer: the offset found (-1 for none),
/// its timestamp (-1 for a special one), and the leader epoch of the
/// batch holding it (`None`: the leader's current one, as for latest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    pub timestamp: i64,
    pub offset: i64,
    pub leader_epoch: Option<i32>,
}

/// What a partition answered to a read.
#[derive(Debug, Clone, Default)]
pub struct FetchOutcome {
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    pub leader_epoch: i32,
    /// Where the read's bound (`FetchPart::bound`) stood when it read: its
    /// long poll waits for the bound to pass it.
    pub bound_offset: i64,
    /// A follower's fetch whose last fetched epoch diverges from this log:
    /// (the largest epoch here at or below it, where it ends here).
    pub diverging_epoch: Option<(i32, i64)>,
    /// READ_COMMITTED only: (producer id, first offset) of each aborted
    /// transaction overlapping the records.
    pub aborted_transactions: Option<Vec<(i64, i64)>>,
    /// Whole batches, shared with the owner's tail cache or as ranges of
    /// its segment files (zero copy).
    pub records: Vec<Chunk>,
}

#[derive(Debug)]
pub enum ShardRequest {
    Produce(Vec<ProducePart>),
    Fetch(Vec<FetchPart>),
    /// Resolves when any listed partition's bound (`ReadBound`: its high
    /// watermark, last stable offset or durable end) passes the offset
    /// given for it, or after `timeout_ms`.
    WaitForData {
        parts: Vec<(TopicPartition, i64, ReadBound)>,
        timeout_ms: u64,
    },
    /// ListOffsets by timestamp (or -1 latest, -2 earliest, -3 max
    /// timestamp), with how far latest reads.
    ListOffsets(Vec<(TopicPartition, (i64, ListIsolation))>),
    /// OffsetForLeaderEpoch: each partition's largest epoch at or below
    /// the one given, and where it ends in the log.
    EpochEndOffsets(Vec<(TopicPartition, i32)>),
    /// Opens (creating when missing) the logs of these partitions of `topic`.
    OpenPartitions {
        topic: Arc<TopicMeta>,
        partitions: Vec<i32>,
    },
    /// Closes and removes the logs of these partitions.
    DeletePartitions(Vec<TopicPartition>),
    /// To the controller (shard 0), measured against the controller
    /// mutation quota of the `Mutator` (none: not measured).
    CreateTopics(Vec<NewTopic>, Option<Mutator>),
    /// To the controller (shard 0), measured as `CreateTopics`.
    DeleteTopics(Vec<TopicRef>, Option<Mutator>),
    /// To the controller (shard 0).
    AlterTopicConfigs(Vec<TopicConfigChange>),
    /// To every shard: new handshakes on `listener` use `acceptor`, made
    /// under the dynamic broker configs (`dynamic_tls`).
    InstallTls {
        listener: String,
        acceptor: Arc<crate::security::tls::TlsAcceptor>,
    },
    /// To the controller (shard 0): changes to BROKER resources' dynamic
    /// configs, committed together; one result each in `Applied`.
    AlterBrokerConfigs(Vec<crate::metadata::broker_configs::BrokerConfigChange>),
    /// To the controller (shard 0), measured as `CreateTopics`.
    CreatePartitions(Vec<PartitionGrowth>, Option<Mutator>),
    /// DeleteRecords: moves each partition's log start offset up to the
    /// offset given (-1: the high watermark), and answers once the low
    /// watermark reaches it or after `timeout_ms` (`delete_records.rs`).
    DeleteRecords {
        parts: Vec<(TopicPartition, i64)>,
        timeout_ms: i32,
    },
    /// To the controller (shard 0): a block of producer ids, persisted
    /// before the answer: for a shard of this node (`None`), or for
    /// another node's broker, by its id and broker epoch
    /// (AllocateProducerIds on the CONTROLLER listener).
    AllocateProducerIds(Option<(i32, i64)>),
    /// To `CONTROLLER_SHARD`: a request for the active controller, sent
    /// there in this Envelope (`server::forward`).
    Forward(Box<EnvelopeRequest>),
    /// To the controller (shard 0): AlterUserScramCredentials' changes,
    /// committed together.
    AlterScram(Vec<crate::metadata::scram::ScramChange>),
    /// To the controller (shard 0): AlterClientQuotas' entries,
    /// committed together.
    AlterQuotas(Vec<crate::metadata::quotas::QuotaAlteration>),
    /// Another shard's client-quota rates (`shard::quota_share`).
    QuotaRates {
        from: usize,
        rates: Vec<(crate::quota::SensorKey, f64)>,
    },
    /// To `CONTROLLER_SHARD`: a partition leader's ISR change, for the
    /// active controller (`alter_partition.rs`).
    AlterPartition(Box<crate::metadata::alter_partition::IsrRequest>),
    /// To the controller (shard 0): AlterPartitionReassignments, each
    /// partition's target (`None`: cancel), committed together.
    AlterReassignments(Vec<crate::metadata::reassignment::ReassignItem>),
    /// To the controller (shard 0): ListPartitionReassignments, of every
    /// topic (`None`) or of these topics' partitions.
    ListReassignments(Option<Vec<(String, Vec<i32>)>>),
    /// To `CONTROLLER_SHARD`: ElectLeaders, for the active controller
    /// (`elections.rs`).
    ElectLeaders(Box<super::elections::ElectionRequest>),
    /// To the controller (shard 0): CreateAcls, each ACL's result in
    /// `Applied`, once committed (`controller/acls.rs`).
    CreateAcls(Vec<crate::security::acl::Acl>),
    /// To the controller (shard 0): DeleteAcls, each filter's removed
    /// ACLs, once committed.
    DeleteAcls(Vec<crate::security::acl::AclFilter>),
    /// To `CONTROLLER_SHARD`: the metadata quorum's status, for
    /// DescribeQuorum (`server::handlers::describe_quorum`).
    QuorumStatus,
    /// Appends each transaction marker to its partition, answering once
    /// it is durable (`Shard::write_txn_markers`).
    WriteTxnMarkers(Vec<(TopicPartition, TxnMarker)>),
    /// DescribeProducers: the producers each partition remembers.
    DescribeProducers(Vec<TopicPartition>),
    /// The size in bytes of every partition the shard owns.
    PartitionSizes,
    /// Replaces the shard's metadata snapshot.
    InstallView(Arc<ClusterView>),
    /// The shard's metrics, for a scrape of the admin listener (or its
    /// console); with a series per partition and group offsets when
    /// `series`.
    Metrics {
        series: bool,
    },
    /// To the group coordinator of the shard that owns the group's
    /// `__consumer_offsets` partition (`List` goes to every shard).
    Group(GroupCall),
    /// To the transaction coordinator of the shard that owns the id's
    /// `__transaction_state` partition (`List` goes to every shard).
    Txn(TxnCall),
}

#[derive(Debug)]
pub enum ShardReply {
    Produce(Vec<Result<AppendResult, ProduceRefusal>>),
    Fetch(Vec<FetchOutcome>),
    ListOffsets(Vec<Result<ListedOffset, KafkaError>>),
    /// (epoch, end offset) per partition; `None` when the asked epoch is
    /// older than the log's oldest.
    EpochEndOffsets(Vec<Result<Option<(i32, i64)>, KafkaError>>),
    /// With the throttle time of the mutation quota.
    CreateTopics(Vec<Result<Arc<TopicMeta>, KafkaError>>, u64),
    /// (name, id) per requested topic, and the throttle time.
    DeleteTopics(Vec<Result<(String, uuid::Uuid), KafkaError>>, u64),
    /// One result per topic of `CreatePartitions`, and the throttle time.
    PartitionsCreated(Vec<Result<(), KafkaError>>, u64),
    /// One result per item (`AlterTopicConfigs`, `CreateAcls`, ...).
    Applied(Vec<Result<(), KafkaError>>),
    /// The log start offset afterwards (low watermark) per partition.
    DeleteRecords(Vec<Result<i64, KafkaError>>),
    PartitionSizes(Vec<(TopicPartition, u64)>),
    /// One per marker of `WriteTxnMarkers`, in order.
    TxnMarkers(Vec<Result<(), KafkaError>>),
    /// One per partition of `DescribeProducers`, in order.
    Producers(Vec<Result<Vec<ProducerDescription>, KafkaError>>),
    ProducerIds(Result<ProducerIdBlock, KafkaError>),
    /// The controller's Envelope response, or why none came.
    Forwarded(Result<EnvelopeResponse, String>),
    QuorumStatus(Box<QuorumStatus>),
    /// The reassignments in progress (`ListReassignments`).
    Reassignments(Result<Vec<crate::metadata::reassignment::Ongoing>, KafkaError>),
    /// The partition as the controller committed it.
    AlterPartition(Result<crate::metadata::alter_partition::CommittedPartition, KafkaError>),
    /// DeleteAcls' answer per filter: the ACLs it removed.
    AclsDeleted(Vec<Result<Vec<crate::security::acl::Acl>, KafkaError>>),
    /// AlterUserScramCredentials' result per user, once committed.
    Scram(Vec<crate::metadata::scram::ScramResult>),
    /// AlterClientQuotas' result per entry, once committed.
    Quotas(Vec<crate::metadata::quotas::QuotaResult>),
    /// ElectLeaders' answer per topic, once committed.
    Elected(Result<Vec<crate::metadata::elections::TopicElection>, KafkaError>),
    Group(GroupAnswer),
    Txn(TxnAnswer),
    /// Boxed: the largest answer by far.
    Metrics(Box<crate::metrics::ShardMetrics>),
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

/// A transaction coordinator request, as its plain-data API takes it.
#[derive(Debug)]
pub enum TxnCall {
    InitProducerId {
        transactional_id: String,
        timeout_ms: i32,
        /// KIP-360: the producer id and epoch the client had.
        expected: Option<(i64, i16)>,
    },
    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's
    /// `__consumer_offsets` partition).
    AddPartitions {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<(String, i32)>,
        /// AddPartitionsToTxn v4+: only say whether each is in.
        verify_only: bool,
    },
    /// Transactions version 2 (Produce v12+, TxnOffsetCommit v5): the
    /// request's partitions join the producer's transaction as it writes
    /// to them, with no AddPartitionsToTxn before.
    AddImplicitly {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<(String, i32)>,
    },
    EndTxn {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        /// The client's transactions version: 2 from EndTxn v5.
        client_tv: i16,
    },
    Describe(String),
    List {
        states: Vec<TxnState>,
        producer_ids: Vec<i64>,
        /// KIP-994: only transactions running longer; -1 for all.
        min_duration_ms: i64,
    },
}

impl TxnCall {
    /// The transactional id the call is about; None for List, which is
    /// about every id of the coordinator.
    pub fn transactional_id(&self) -> Option<&str> {
        match self {
            TxnCall::InitProducerId {
                transactional_id, ..
            }
            | TxnCall::AddPartitions {
                transactional_id, ..
            }
            | TxnCall::AddImplicitly {
                transactional_id, ..
            }
            | TxnCall::EndTxn {
                transactional_id, ..
            }
            | TxnCall::Describe(transactional_id) => Some(transactional_id),
            TxnCall::List { .. } => None,
        }
    }
}

#[derive(Debug)]
pub enum TxnAnswer {
    /// InitProducerId: the producer id and epoch.
    ProducerId(Result<(i64, i16), kafka_protocol::error::ResponseError>),
    /// AddPartitions and AddImplicitly: nothing per partition once added;
    /// with `verify_only`, each partition's error in the request's order.
    Added(
        Result<
            Vec<Option<kafka_protocol::error::ResponseError>>,
            kafka_protocol::error::ResponseError,
        >,
    ),
    /// EndTxn: the producer id and epoch.
    Ended(Result<(i64, i16), kafka_protocol::error::ResponseError>),
    Described(Result<DescribedTxn, kafka_protocol::error::ResponseError>),
    Listed(Vec<ListedTxn>),
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
