//! DeleteRecords: each partition's owner shard moves its log start offset up
//! to the offset asked for (-1: the high watermark) and answers with the new
//! low watermark. Topics whose `cleanup.policy` lacks `delete` refuse it with
//! POLICY_VIOLATION, as in Kafka.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, RequestHeader};

use super::scatter;
use crate::config::cleanup_deletes;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{KafkaError, ShardReply, ShardRequest, TopicPartition};

/// The low watermark Kafka reports with an error.
const NO_LOW_WATERMARK: i64 = -1;

pub async fn handle(
    context: &ConnectionContext,
    _header: &RequestHeader,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let view = context.shard.view();
    let mut answers: Vec<Vec<Option<Result<i64, KafkaError>>>> = Vec::new();
    let mut deletes = Vec::new();
    for (topic_index, topic) in request.topics.iter().enumerate() {
        let meta = view.topic(topic.name.0.as_str());
        let deletes_allowed =
            meta.is_some_and(|meta| cleanup_deletes(&context.shard.config, &meta.configs));
        let mut topic_answers = Vec::new();
        for (partition_index, partition) in topic.partitions.iter().enumerate() {
            match meta {
                Some(meta) if (0..meta.partitions).contains(&partition.partition_index) => {
                    if !deletes_allowed {
                        topic_answers
                            .push(Some(Err(KafkaError::new(ResponseError::PolicyViolation))));
                        continue;
                    }
                    topic_answers.push(None);
                    deletes.push((
                        view.owner(&meta.name, partition.partition_index),
                        (topic_index, partition_index),
                        (
                            TopicPartition::new(&meta.name, partition.partition_index),
                            partition.offset,
                        ),
                    ));
                }
                _ => topic_answers.push(Some(Err(KafkaError::new(
                    ResponseError::UnknownTopicOrPartition,
                )))),
            }
        }
        answers.push(topic_answers);
    }
    let results = scatter(
        context,
        deletes,
        ShardRequest::DeleteRecords,
        |reply, count| match reply {
            ShardReply::DeleteRecords(results) if results.len() == count => results,
            other => vec![Err(other.into_error()); count],
        },
    )
    .await;
    for ((topic_index, partition_index), result) in results {
        answers[topic_index][partition_index] = Some(result);
    }
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
                        Some(Ok(low_watermark)) => out.low_watermark = low_watermark,
                        Some(Err(error)) => {
                            out.low_watermark = NO_LOW_WATERMARK;
                            out.error_code = error.code;
                        }
                        None => {
                            out.low_watermark = NO_LOW_WATERMARK;
                            out.error_code = ResponseError::UnknownServerError.code();
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
