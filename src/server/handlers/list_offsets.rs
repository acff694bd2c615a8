//! ListOffsets: earliest, latest, max timestamp, or the first offset at or
//! after a timestamp, answered by each partition's owner shard.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, RequestHeader};

use super::scatter;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{KafkaError, ShardReply, ShardRequest, TopicPartition};

/// (timestamp, offset) of one partition, once its owner answered.
type OffsetAnswer = Option<Result<(i64, i64), KafkaError>>;

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let version = header.request_api_version;
    let view = context.shard.view();
    let mut answers: Vec<Vec<OffsetAnswer>> = Vec::new();
    let mut lookups = Vec::new();
    for (topic_index, topic) in request.topics.iter().enumerate() {
        let meta = view.topic(topic.name.0.as_str());
        let mut topic_answers = Vec::new();
        for (partition_index, partition) in topic.partitions.iter().enumerate() {
            match meta {
                Some(meta) if (0..meta.partitions).contains(&partition.partition_index) => {
                    topic_answers.push(None);
                    let owner = view.owner(&meta.name, partition.partition_index);
                    lookups.push((
                        owner,
                        (topic_index, partition_index),
                        (
                            TopicPartition::new(&meta.name, partition.partition_index),
                            partition.timestamp,
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
        lookups,
        ShardRequest::ListOffsets,
        |reply, count| match reply {
            ShardReply::ListOffsets(results) => results,
            other => vec![Err(other.into_error()); count],
        },
    )
    .await;
    for ((topic_index, partition_index), result) in results {
        answers[topic_index][partition_index] = Some(result);
    }
    let topics = request
        .topics
        .iter()
        .zip(answers)
        .map(|(topic, topic_answers)| {
            let mut entry = ListOffsetsTopicResponse::default();
            entry.name = topic.name.clone();
            entry.partitions = topic
                .partitions
                .iter()
                .zip(topic_answers)
                .map(|(partition, answer)| {
                    let mut out = ListOffsetsPartitionResponse::default();
                    out.partition_index = partition.partition_index;
                    out.timestamp = -1;
                    out.offset = -1;
                    match answer {
                        Some(Ok((timestamp, offset))) => {
                            out.timestamp = timestamp;
                            out.offset = offset;
                            if version >= 4 {
                                out.leader_epoch = 0;
                            }
                        }
                        Some(Err(error)) => out.error_code = error.code,
                        None => out.error_code = ResponseError::UnknownServerError.code(),
                    }
                    out
                })
                .collect();
            entry
        })
        .collect();
    let mut response = ListOffsetsResponse::default();
    response.topics = topics;
    response
}
