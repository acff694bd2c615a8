//! DescribeProducers (KIP-664): per partition, the producers its log
//! remembers, as `kafka-transactions.sh describe-producers` shows them:
//! id, epoch, last sequence and timestamp, the coordinator epoch of the
//! last marker, and where its open transaction started. Answered by each
//! partition's owner shard.

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use super::per_partition;
use crate::log::ProducerDescription;
use crate::metadata::NO_LEADER_EPOCH;
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{ShardReply, ShardRequest};

pub async fn handle(
    context: &ConnectionContext,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let answers = per_partition(
        context,
        request.topics.iter().map(|topic| {
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|&partition| (partition, NO_LEADER_EPOCH, ()))
                .collect();
            (topic.name.0.as_str(), partitions)
        }),
        |name| (!authorize::topic(context, Operation::Read, name)).then(authorize::topic_denied),
        |_| None,
        |parts| ShardRequest::DescribeProducers(parts.into_iter().map(|(p, ())| p).collect()),
        |reply, count| match reply {
            ShardReply::Producers(results) if results.len() == count => results,
            other => vec![Err(other.into_error()); count],
        },
    )
    .await;
    let mut response = DescribeProducersResponse::default();
    response.topics = request
        .topics
        .iter()
        .zip(answers)
        .map(|(topic, topic_answers)| {
            let mut entry = TopicResponse::default();
            entry.name = topic.name.clone();
            entry.partitions = topic
                .partition_indexes
                .iter()
                .zip(topic_answers)
                .map(|(&partition_index, answer)| {
                    let mut out = PartitionResponse::default();
                    out.partition_index = partition_index;
                    match answer {
                        Ok(producers) => {
                            out.active_producers = producers.iter().map(producer_state).collect()
                        }
                        Err(error) => {
                            out.error_code = error.code;
                            out.error_message = error.message.clone().map(Into::into);
                        }
                    }
                    out
                })
                .collect();
            entry
        })
        .collect();
    response
}

fn producer_state(producer: &ProducerDescription) -> ProducerState {
    let mut state = ProducerState::default();
    state.producer_id = ProducerId(producer.producer_id);
    state.producer_epoch = i32::from(producer.epoch);
    state.last_sequence = producer.last_sequence;
    state.last_timestamp = producer.last_timestamp;
    state.coordinator_epoch = producer.coordinator_epoch;
    state.current_txn_start_offset = producer.txn_start_offset;
    state
}
