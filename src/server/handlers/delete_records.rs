//! DeleteRecords: each partition's owner shard moves its log start offset up
//! to the offset asked for (-1: the high watermark) and answers with the new
//! low watermark once every replica on an alive broker has moved its own
//! there, or REQUEST_TIMED_OUT after the request's `timeout_ms`
//! (`shard/delete_records.rs`, Kafka's `DelayedDeleteRecords`). Topics whose
//! `cleanup.policy` lacks `delete` refuse it with POLICY_VIOLATION, as in
//! Kafka.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, RequestHeader};

use super::per_partition;
use crate::config::cleanup_deletes;
use crate::metadata::NO_LEADER_EPOCH;
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{KafkaError, ShardReply, ShardRequest};

/// The low watermark Kafka reports with an error.
const NO_LOW_WATERMARK: i64 = -1;

pub async fn handle(
    context: &ConnectionContext,
    _header: &RequestHeader,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let config = &context.shard.config;
    let answers = per_partition(
        context,
        request.topics.iter().map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| (partition.partition_index, NO_LEADER_EPOCH, partition.offset))
                .collect();
            (topic.name.0.as_str(), partitions)
        }),
        |name| (!authorize::topic(context, Operation::Delete, name)).then(authorize::topic_denied),
        |meta| {
            (!cleanup_deletes(config, &meta.configs))
                .then(|| KafkaError::new(ResponseError::PolicyViolation))
        },
        |parts| ShardRequest::DeleteRecords {
            parts,
            timeout_ms: request.timeout_ms,
        },
        |reply, count| match reply {
            ShardReply::DeleteRecords(results) if results.len() == count => results,
            other => vec![Err(other.into_error()); count],
        },
    )
    .await;
    let mut response = DeleteRecordsResponse::default();
    response.topics = request
        .topics
        .iter()
        .zip(answers)
        .map(|(topic, topic_answers)| {
            let mut entry = DeleteRecordsTopicResult::default();
            entry.name = topic.name.clone();
            entry.partitions = topic
                .partitions
                .iter()
                .zip(topic_answers)
                .map(|(partition, answer)| {
                    let mut out = DeleteRecordsPartitionResult::default();
                    out.partition_index = partition.partition_index;
                    match answer {
                        Ok(low_watermark) => out.low_watermark = low_watermark,
                        Err(error) => {
                            out.low_watermark = NO_LOW_WATERMARK;
                            out.error_code = error.code;
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
