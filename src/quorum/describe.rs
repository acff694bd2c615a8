//! What the CONTROLLER listener answers Kafka's tools
//! (`kafka-metadata-quorum.sh --bootstrap-controller`, an admin client with
//! `bootstrap.controllers`): ApiVersions, DescribeCluster with the
//! controllers as its nodes (KIP-919), and DescribeQuorum (KIP-595, 836,
//! 853) from a plain `QuorumStatus` the quorum's driver fills in. The
//! broker listener answers DescribeQuorum from here too
//! (`server::handlers::describe_quorum`, after forwarding it to the active
//! controller as Kafka's brokers do), at the same versions.
//!
//! Pure: no IO, no clock (the caller passes `now_ms`), so each answer is
//! checked against Kafka's rules by unit tests here and by Kafka's own
//! client in `tests/quorum_transport.rs`.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_quorum_response::{
    Listener as NodeListener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, DescribeClusterRequest, DescribeClusterResponse,
    DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::config::Voter;
use crate::protocol::versions::DESCRIBE_QUORUM_VERSIONS;

/// The metadata log's name and partition, as Kafka's (`__cluster_metadata-0`).
pub use crate::metadata::CLUSTER_METADATA_TOPIC as METADATA_TOPIC;
pub const METADATA_PARTITION: i32 = 0;

/// Kafka's "no leader", "no end offset", "no timestamp".
pub const UNKNOWN: i32 = -1;

/// DescribeCluster's `EndpointType` for controllers (KIP-919); 1 is brokers.
const ENDPOINT_TYPE_CONTROLLER: i8 = 2;

/// DescribeCluster's `ClusterAuthorizedOperations` when they were not asked
/// for (Kafka's `Integer.MIN_VALUE`).
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// The APIs the CONTROLLER listener serves, with the versions of each, as
/// `(key, min, max)`: Kafka's ranges as far as `kafka-protocol` 0.18 encodes
/// them. shoal's private Raft request is not listed (Kafka's tools must not
/// see it; voters know it).
pub const CONTROLLER_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::DescribeCluster, 0, 2),
    (
        ApiKey::DescribeQuorum,
        DESCRIBE_QUORUM_VERSIONS.0,
        DESCRIBE_QUORUM_VERSIONS.1,
    ),
];

/// The versions of `api_key` served here, if it is served here at all.
pub fn served_versions(api_key: ApiKey) -> Option<(i16, i16)> {
    CONTROLLER_APIS
        .iter()
        .find(|(key, _, _)| *key == api_key)
        .map(|&(_, min, max)| (min, max))
}

/// The quorum as its driver sees it, for DescribeQuorum. Raft numbers its
/// entries from 1, Kafka its offsets from 0: entry `i` is offset `i - 1`,
/// so Raft's commit index is Kafka's high watermark and a log's last index
/// is its log end offset, unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    /// This node's id.
    pub local_id: i32,
    /// The leader's id, or `UNKNOWN`.
    pub leader_id: i32,
    /// The current term (Kafka's leader epoch).
    pub epoch: i32,
    /// The commit index, or -1 while the leader has not committed in its term.
    pub high_watermark: i64,
    /// Every voter, the leader among them.
    pub voters: Vec<ReplicaStatus>,
    /// Replicas that fetch without voting (brokers, later).
    pub observers: Vec<ReplicaStatus>,
}

/// One replica of the metadata log as the leader tracks it: Raft's
/// `Progress` (`matched` is the end offset) and the leader's wall clock
/// when it last heard from the replica and when the replica last matched
/// the leader's end offset. `UNKNOWN` where not known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub id: i32,
    pub log_end_offset: i64,
    pub last_fetch_timestamp_ms: i64,
    pub last_caught_up_timestamp_ms: i64,
}

/// ApiVersions of `version` (0 for an unsupported version, which Kafka
/// answers with UNSUPPORTED_VERSION and the ranges, so the client can pick).
/// `more`: the versions the listener's hook serves besides (`transport::ControllerService`).
pub fn api_versions(version: i16, more: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    let (min, max) = served_versions(ApiKey::ApiVersions).unwrap_or((0, 0));
    if version < min || version > max {
        response.error_code = ResponseError::UnsupportedVersion.code();
    }
    response.api_keys = CONTROLLER_APIS
        .iter()
        .chain(
            more.iter()
                .filter(|(key, _, _)| served_versions(*key).is_none()),
        )
        .map(|&(key, min_version, max_version)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min_version)
                .with_max_version(max_version)
        })
        .collect();
    response
}

/// DescribeCluster asked of a controller: the voters as its nodes and the
/// quorum leader as its controller, as Kafka's controller answers it.
/// A request for brokers (v0 can ask for nothing else) is
/// MISMATCHED_ENDPOINT_TYPE.
pub fn describe_cluster(
    request: &DescribeClusterRequest,
    cluster_id: &str,
    leader_id: i32,
    voters: &[Voter],
) -> DescribeClusterResponse {
    let mut response = DescribeClusterResponse::default()
        .with_endpoint_type(ENDPOINT_TYPE_CONTROLLER)
        .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
    if request.endpoint_type != ENDPOINT_TYPE_CONTROLLER {
        let error = ResponseError::MismatchedEndpointType;
        return response
            .with_error_code(error.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "The request was sent to an endpoint of the wrong type.",
            )));
    }
    response.cluster_id = StrBytes::from_string(cluster_id.to_string());
    response.controller_id = BrokerId(leader_id);
    response.brokers = voters
        .iter()
        .map(|voter| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(voter.id))
                .with_host(StrBytes::from_string(voter.host.clone()))
                .with_port(i32::from(voter.port))
        })
        .collect();
    response
}

/// DescribeQuorum of `version` as Kafka's `KafkaRaftClient` answers it:
/// UNKNOWN_TOPIC_OR_PARTITION unless the request names exactly
/// `__cluster_metadata-0`, NOT_LEADER_OR_FOLLOWER unless this node leads,
/// else the leader's view, with its own timestamps `now_ms`. From v2 the
/// voters' endpoints on `listener_name` (their `controller.quorum.voters`
/// addresses); their directory ids are zero, as Kafka's for static voters.
pub fn describe_quorum(
    request: &DescribeQuorumRequest,
    version: i16,
    status: &QuorumStatus,
    voters: &[Voter],
    listener_name: &str,
    now_ms: i64,
) -> DescribeQuorumResponse {
    if !names_metadata_partition(request) || status.leader_id != status.local_id {
        return not_leader(request);
    }
    let replica = |replica: &ReplicaStatus| {
        let leader = replica.id == status.leader_id;
        ReplicaState::default()
            .with_replica_id(BrokerId(replica.id))
            .with_log_end_offset(replica.log_end_offset)
            .with_last_fetch_timestamp(if leader {
                now_ms
            } else {
                replica.last_fetch_timestamp_ms
            })
            .with_last_caught_up_timestamp(if leader {
                now_ms
            } else {
                replica.last_caught_up_timestamp_ms
            })
    };
    let partition = PartitionData::default()
        .with_partition_index(METADATA_PARTITION)
        .with_leader_id(BrokerId(status.leader_id))
        .with_leader_epoch(status.epoch)
        .with_high_watermark(status.high_watermark)
        .with_current_voters(status.voters.iter().map(replica).collect())
        .with_observers(status.observers.iter().map(replica).collect());
    let mut response = DescribeQuorumResponse::default().with_topics(vec![TopicData::default()
        .with_topic_name(metadata_topic())
        .with_partitions(vec![partition])]);
    if version >= 2 {
        response.nodes = voters
            .iter()
            .map(|voter| {
                Node::default()
                    .with_node_id(BrokerId(voter.id))
                    .with_listeners(vec![NodeListener::default()
                        .with_name(StrBytes::from_string(listener_name.to_string()))
                        .with_host(StrBytes::from_string(voter.host.clone()))
                        .with_port(voter.port)])
            })
            .collect();
    }
    response
}

/// DescribeQuorum as a node that does not lead the quorum answers it,
/// Kafka's `KafkaRaftClient` on a follower: UNKNOWN_TOPIC_OR_PARTITION on
/// each partition asked unless the request names exactly
/// `__cluster_metadata-0`, else NOT_LEADER_OR_FOLLOWER on it (retriable:
/// Kafka's admin client asks again, of the controller it finds then).
pub fn not_leader(request: &DescribeQuorumRequest) -> DescribeQuorumResponse {
    if !names_metadata_partition(request) {
        return partition_errors(request, ResponseError::UnknownTopicOrPartition);
    }
    metadata_partition_error(ResponseError::NotLeaderOrFollower)
}

fn metadata_topic() -> TopicName {
    TopicName(StrBytes::from_static_str(METADATA_TOPIC))
}

fn names_metadata_partition(request: &DescribeQuorumRequest) -> bool {
    match request.topics.as_slice() {
        [topic] => {
            topic.topic_name.0.as_str() == METADATA_TOPIC
                && matches!(topic.partitions.as_slice(),
                    [partition] if partition.partition_index == METADATA_PARTITION)
        }
        _ => false,
    }
}

/// `error` on every partition the request names (Kafka's
/// `getPartitionLevelErrorResponse`).
fn partition_errors(
    request: &DescribeQuorumRequest,
    error: ResponseError,
) -> DescribeQuorumResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            TopicData::default()
                .with_topic_name(topic.topic_name.clone())
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .map(|partition| {
                            PartitionData::default()
                                .with_partition_index(partition.partition_index)
                                .with_error_code(error.code())
                                .with_error_message(Some(error_message(error)))
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeQuorumResponse::default().with_topics(topics)
}

/// `error` on `__cluster_metadata-0` (Kafka's `singletonErrorResponse`).
fn metadata_partition_error(error: ResponseError) -> DescribeQuorumResponse {
    let partition = PartitionData::default()
        .with_partition_index(METADATA_PARTITION)
        .with_error_code(error.code())
        .with_error_message(Some(error_message(error)));
    DescribeQuorumResponse::default().with_topics(vec![TopicData::default()
        .with_topic_name(metadata_topic())
        .with_partitions(vec![partition])])
}

fn error_message(error: ResponseError) -> StrBytes {
    StrBytes::from_string(error.to_string())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::describe_quorum_request::{
        PartitionData as RequestPartition, TopicData as RequestTopic,
    };

    use super::*;

    fn voters() -> Vec<Voter> {
        (1..=3)
            .map(|id| Voter {
                id,
                host: "127.0.0.1".to_string(),
                port: 9092 + id as u16,
            })
            .collect()
    }

    fn replica(id: i32, log_end_offset: i64) -> ReplicaStatus {
        ReplicaStatus {
            id,
            log_end_offset,
            last_fetch_timestamp_ms: 1_000 + i64::from(id),
            last_caught_up_timestamp_ms: 2_000 + i64::from(id),
        }
    }

    fn status(local_id: i32, leader_id: i32) -> QuorumStatus {
        QuorumStatus {
            local_id,
            leader_id,
            epoch: 7,
            high_watermark: 40,
            voters: vec![replica(1, 42), replica(2, 40), replica(3, UNKNOWN.into())],
            observers: vec![replica(4, 10)],
        }
    }

    fn request(topic: &str, partitions: &[i32]) -> DescribeQuorumRequest {
        DescribeQuorumRequest::default().with_topics(vec![RequestTopic::default()
            .with_topic_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&index| RequestPartition::default().with_partition_index(index))
                    .collect(),
            )])
    }

    #[test]
    fn the_leader_reports_every_replica_and_its_own_times_as_now() {
        let response = describe_quorum(
            &request(METADATA_TOPIC, &[0]),
            2,
            &status(1, 1),
            &voters(),
            "CONTROLLER",
            5_000,
        );
        assert_eq!(response.error_code, 0);
        let partition = &response.topics[0].partitions[0];
        assert_eq!(partition.error_code, 0);
        assert_eq!(
            (
                partition.leader_id.0,
                partition.leader_epoch,
                partition.high_watermark
            ),
            (1, 7, 40)
        );
        let leader = &partition.current_voters[0];
        assert_eq!(
            (leader.log_end_offset, leader.last_fetch_timestamp),
            (42, 5_000)
        );
        assert_eq!(leader.last_caught_up_timestamp, 5_000);
        let follower = &partition.current_voters[1];
        assert_eq!(
            (
                follower.replica_id.0,
                follower.last_fetch_timestamp,
                follower.last_caught_up_timestamp
            ),
            (2, 1_002, 2_002)
        );
        assert_eq!(partition.current_voters[2].log_end_offset, -1);
        assert_eq!(partition.observers[0].replica_id.0, 4);
        let ports: Vec<u16> = response
            .nodes
            .iter()
            .map(|node| node.listeners[0].port)
            .collect();
        assert_eq!(ports, [9093, 9094, 9095]);
        assert_eq!(response.nodes[0].listeners[0].name.as_str(), "CONTROLLER");
    }

    #[test]
    fn nodes_are_left_out_before_v2() {
        let response = describe_quorum(
            &request(METADATA_TOPIC, &[0]),
            1,
            &status(1, 1),
            &voters(),
            "CONTROLLER",
            5_000,
        );
        assert!(response.nodes.is_empty());
        assert_eq!(response.topics[0].partitions[0].current_voters.len(), 3);
    }

    #[test]
    fn a_follower_answers_not_leader() {
        for leader_id in [2, UNKNOWN] {
            let response = describe_quorum(
                &request(METADATA_TOPIC, &[0]),
                2,
                &status(1, leader_id),
                &voters(),
                "CONTROLLER",
                5_000,
            );
            let partition = &response.topics[0].partitions[0];
            assert_eq!(
                partition.error_code,
                ResponseError::NotLeaderOrFollower.code()
            );
            assert!(partition.current_voters.is_empty());
        }
    }

    #[test]
    fn any_other_partition_is_unknown_on_each_partition_asked() {
        for asked in [
            request("other", &[0]),
            request(METADATA_TOPIC, &[1]),
            request(METADATA_TOPIC, &[0, 1]),
        ] {
            let response = describe_quorum(&asked, 2, &status(1, 1), &voters(), "C", 0);
            let codes: Vec<i16> = response.topics[0]
                .partitions
                .iter()
                .map(|partition| partition.error_code)
                .collect();
            assert_eq!(codes.len(), asked.topics[0].partitions.len());
            assert!(codes
                .iter()
                .all(|&code| code == ResponseError::UnknownTopicOrPartition.code()));
        }
    }

    #[test]
    fn describe_cluster_lists_the_controllers_or_refuses_a_broker_request() {
        let asked = DescribeClusterRequest::default().with_endpoint_type(ENDPOINT_TYPE_CONTROLLER);
        let response = describe_cluster(&asked, "cluster-a", 2, &voters());
        assert_eq!(response.error_code, 0);
        assert_eq!(response.controller_id.0, 2);
        assert_eq!(response.cluster_id.as_str(), "cluster-a");
        assert_eq!(response.brokers.len(), 3);
        assert_eq!(response.endpoint_type, ENDPOINT_TYPE_CONTROLLER);
        let brokers = DescribeClusterRequest::default().with_endpoint_type(1);
        let refused = describe_cluster(&brokers, "cluster-a", 2, &voters());
        assert_eq!(
            refused.error_code,
            ResponseError::MismatchedEndpointType.code()
        );
        assert!(refused.brokers.is_empty());
    }

    #[test]
    fn api_versions_lists_kafkas_apis_only_and_refuses_a_newer_version() {
        let response = api_versions(3, &[]);
        assert_eq!(response.error_code, 0);
        let keys: Vec<i16> = response.api_keys.iter().map(|api| api.api_key).collect();
        assert_eq!(keys, [18, 60, 55]);
        assert_eq!(
            api_versions(5, &[]).error_code,
            ResponseError::UnsupportedVersion.code()
        );
    }
}
