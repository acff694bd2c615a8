//! DescribeQuorum on the broker listener (`kafka-metadata-quorum.sh
//! --bootstrap-server`, Kafka's `Admin.describeMetadataQuorum`). Kafka's
//! broker forwards it to the active controller whole (`forward.rs`); what
//! reaches this handler is run where the quorum's status is: the
//! Envelope'd request on the active controller, the request of a lone
//! voter (its own controller), or a request no controller took within
//! the forwarding bounds. The status comes from `CONTROLLER_SHARD`, where
//! the quorum's task keeps it, and the answer is Kafka's controller's
//! (`quorum::describe`): a node that does not lead answers
//! NOT_LEADER_OR_FOLLOWER, which Kafka's admin client retries.
//!
//! Invariant: the answer names a leader only when this node leads the
//! quorum as its own status says, so every node that answers names the
//! same leader in one term.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{DescribeQuorumRequest, DescribeQuorumResponse, RequestHeader};

use crate::config::Voter;
use crate::quorum::describe::{self, QuorumStatus};
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{ShardReply, ShardRequest};
use crate::shard::CONTROLLER_SHARD;

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    if !authorize::cluster(context, Operation::Describe) {
        let mut response = DescribeQuorumResponse::default();
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return response;
    }
    let status = match context
        .shard
        .call(CONTROLLER_SHARD, ShardRequest::QuorumStatus)
        .await
    {
        ShardReply::QuorumStatus(status) => Some(*status),
        _ => None,
    };
    let cluster = &context.shard.config.cluster;
    let listener_name = cluster
        .controller_listener()
        .map_or("", |listener| listener.name.as_str());
    let now_ms = i64::try_from(crate::clock::now_ms()).unwrap_or(i64::MAX);
    answer(
        &request,
        header.request_api_version,
        status.as_ref(),
        endpoints(&cluster.quorum_voters),
        listener_name,
        now_ms,
    )
}

/// The voters whose endpoints DescribeQuorum v2 reports: those of
/// `controller.quorum.voters` when the quorum has several, each reached on
/// its CONTROLLER listener; none for a lone voter, which binds no
/// CONTROLLER listener (Kafka's tool then prints no endpoints).
fn endpoints(voters: &[Voter]) -> &[Voter] {
    if voters.len() > 1 {
        voters
    } else {
        &[]
    }
}

/// The answer from `status` (none: the controller shard has no quorum, as
/// a node that does not lead).
fn answer(
    request: &DescribeQuorumRequest,
    version: i16,
    status: Option<&QuorumStatus>,
    voters: &[Voter],
    listener_name: &str,
    now_ms: i64,
) -> DescribeQuorumResponse {
    match status {
        Some(status) => {
            describe::describe_quorum(request, version, status, voters, listener_name, now_ms)
        }
        None => describe::not_leader(request),
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::error::ResponseError;
    use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;

    use super::*;
    use crate::quorum::describe::{ReplicaStatus, METADATA_TOPIC, UNKNOWN};

    fn voter(id: i32) -> Voter {
        Voter {
            id,
            host: "127.0.0.1".to_string(),
            port: 19_090 + id as u16,
        }
    }

    fn request() -> DescribeQuorumRequest {
        DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)])])
    }

    fn lone_voter() -> QuorumStatus {
        QuorumStatus {
            local_id: 1,
            leader_id: 1,
            epoch: 1,
            high_watermark: 5,
            voters: vec![ReplicaStatus {
                id: 1,
                log_end_offset: 6,
                last_fetch_timestamp_ms: UNKNOWN.into(),
                last_caught_up_timestamp_ms: UNKNOWN.into(),
            }],
            observers: Vec::new(),
        }
    }

    #[test]
    fn only_a_quorum_of_several_reports_endpoints() {
        assert!(endpoints(&[]).is_empty());
        assert!(endpoints(&[voter(1)]).is_empty());
        assert_eq!(endpoints(&[voter(1), voter(2), voter(3)]).len(), 3);
    }

    #[test]
    fn a_lone_voter_answers_from_its_status_without_endpoints() {
        let configured = [voter(1)];
        let response = answer(
            &request(),
            2,
            Some(&lone_voter()),
            endpoints(&configured),
            "",
            7_000,
        );
        let partition = &response.topics[0].partitions[0];
        assert_eq!(partition.error_code, 0);
        assert_eq!((partition.leader_id.0, partition.high_watermark), (1, 5));
        assert_eq!(partition.current_voters.len(), 1);
        assert_eq!(partition.current_voters[0].last_fetch_timestamp, 7_000);
        assert!(response.nodes.is_empty());
    }

    #[test]
    fn without_a_status_the_answer_is_a_followers() {
        let response = answer(&request(), 2, None, &[], "", 0);
        assert_eq!(
            response.topics[0].partitions[0].error_code,
            ResponseError::NotLeaderOrFollower.code()
        );
        let mut follower = lone_voter();
        follower.leader_id = 2;
        let response = answer(&request(), 2, Some(&follower), &[], "", 0);
        assert_eq!(
            response.topics[0].partitions[0].error_code,
            ResponseError::NotLeaderOrFollower.code()
        );
    }
}
