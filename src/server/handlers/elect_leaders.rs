//! ElectLeaders (api 43): preferred or unclean leader elections, decided
//! and committed by the active controller (`shard::elections`). A node
//! that is not the controller forwards the request there whole
//! (`server::forward`), so this handler runs on the controller's node,
//! or answers NOT_CONTROLLER when no controller could be reached.
//! `TopicPartitions: null` asks for every partition; the answer then
//! leaves out those that needed no election, as Kafka's does.
//!
//! Invariant: every partition listed is answered, in request order; the
//! answer comes only once the elections are committed.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{
    ElectLeadersRequest, ElectLeadersResponse, RequestHeader, TopicName,
};

use super::str_bytes;
use crate::metadata::elections::TopicElection;
use crate::metadata::leadership::Election;
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{KafkaError, ShardReply, ShardRequest};
use crate::shard::CONTROLLER_SHARD;

/// Kafka's `ElectionType` codes.
const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

pub async fn handle(
    context: &ConnectionContext,
    _header: &RequestHeader,
    request: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let wanted: Option<Vec<(String, Vec<i32>)>> = request.topic_partitions.as_ref().map(|topics| {
        topics
            .iter()
            .map(|topic| (topic.topic.0.to_string(), topic.partitions.clone()))
            .collect()
    });
    if !authorize::cluster(context, Operation::Alter) {
        return refused(wanted.as_deref(), authorize::cluster_denied());
    }
    let election = match request.election_type {
        PREFERRED => Election::Preferred,
        UNCLEAN => Election::Unclean,
        other => {
            let error = KafkaError::with_message(
                ResponseError::InvalidRequest,
                format!("Unknown election type {other}"),
            );
            return refused(wanted.as_deref(), error);
        }
    };
    let reply = context
        .shard
        .call(
            CONTROLLER_SHARD,
            ShardRequest::ElectLeaders(Box::new((election, wanted.clone()))),
        )
        .await;
    let outcome = match reply {
        ShardReply::Elected(outcome) => outcome,
        other => Err(other.into_error()),
    };
    match outcome {
        Ok(results) => ElectLeadersResponse::default()
            .with_replica_election_results(results.into_iter().map(topic_result).collect()),
        Err(error) => refused(wanted.as_deref(), error),
    }
}

fn topic_result(topic: TopicElection) -> ReplicaElectionResult {
    ReplicaElectionResult::default()
        .with_topic(TopicName(str_bytes(topic.topic)))
        .with_partition_result(
            topic
                .partitions
                .into_iter()
                .map(|(partition, outcome)| partition_result(partition, outcome.err()))
                .collect(),
        )
}

fn partition_result(partition: i32, error: Option<KafkaError>) -> PartitionResult {
    let (code, message) = error.map_or((0, None), |error| (error.code, error.message));
    PartitionResult::default()
        .with_partition_id(partition)
        .with_error_code(code)
        .with_error_message(message.map(str_bytes))
}

/// The whole request refused with `error`: at the top (versions 1 and
/// later read it) and on each partition listed (version 0 reads only
/// those), as Kafka's `ElectLeadersRequest.getErrorResponse`.
fn refused(wanted: Option<&[(String, Vec<i32>)]>, error: KafkaError) -> ElectLeadersResponse {
    let results = wanted
        .unwrap_or_default()
        .iter()
        .map(|(topic, partitions)| {
            topic_result(TopicElection {
                topic: topic.clone(),
                partitions: partitions
                    .iter()
                    .map(|&partition| (partition, Err(error.clone())))
                    .collect(),
            })
        })
        .collect();
    ElectLeadersResponse::default()
        .with_error_code(error.code)
        .with_replica_election_results(results)
}
