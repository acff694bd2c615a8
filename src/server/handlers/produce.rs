//! Produce: validate every batch on the accepting shard (header and CRC, no
//! decompression), send each partition's batches to its owner shard, and
//! answer once each append is as durable as `acks` asks.

use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, RequestHeader, TopicName};

use super::{scatter, str_bytes};
use crate::clock::now_ms;
use crate::config::TopicConfig;
use crate::log::AppendWait;
use crate::protocol::batch::{self, BatchError, BatchHeader};
use crate::protocol::batch_records;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{KafkaError, ProducePart, ShardReply, ShardRequest, TopicPartition};

/// Produce v13 names topics by id only (KIP-516).
const TOPIC_IDS_VERSION: i16 = 13;

fn batch_error(error: BatchError) -> KafkaError {
    let (code, message) = match error {
        BatchError::TooLarge => (
            ResponseError::MessageTooLarge,
            "The record batch is larger than max.message.bytes".to_string(),
        ),
        BatchError::UnsupportedMagic(magic) => (
            ResponseError::UnsupportedForMessageFormat,
            format!("Record batch magic {magic} is not supported; only magic 2"),
        ),
        BatchError::InvalidRecordCount => (
            ResponseError::InvalidRecord,
            "Record count disagrees with the batch's offset delta".to_string(),
        ),
        BatchError::CrcMismatch => (
            ResponseError::CorruptMessage,
            "Record batch failed its CRC-32C check".to_string(),
        ),
        BatchError::Truncated | BatchError::CorruptLength => (
            ResponseError::CorruptMessage,
            "Record batch length is inconsistent".to_string(),
        ),
    };
    KafkaError::with_message(code, message)
}

/// The CreateTime window a topic accepts, `[earliest_ms, latest_ms]`, from
/// `message.timestamp.before.max.ms` and `message.timestamp.after.max.ms`.
#[derive(Debug, Clone, Copy)]
struct TimestampWindow {
    earliest_ms: i64,
    latest_ms: i64,
}

impl TimestampWindow {
    /// None under LogAppendTime: the broker's clock replaces the timestamps.
    fn of(config: &TopicConfig, now_ms: i64) -> Option<TimestampWindow> {
        (!config.log_append_time).then(|| TimestampWindow {
            earliest_ms: now_ms.saturating_sub(config.timestamp_before_max_ms),
            latest_ms: now_ms.saturating_add(config.timestamp_after_max_ms),
        })
    }

    /// Checks a batch's first and max timestamps from its header, so that
    /// compressed batches stay undecoded (Kafka decompresses to check every
    /// record). The future bound is exact: `maxTimestamp` is the largest
    /// record timestamp. The past bound checks the first record, so an older
    /// record placed later in the same batch is not caught.
    fn check(&self, header: &batch::BatchHeader) -> Result<(), KafkaError> {
        for timestamp in [header.base_timestamp.get(), header.max_timestamp.get()] {
            if !(self.earliest_ms..=self.latest_ms).contains(&timestamp) {
                return Err(KafkaError::with_message(
                    ResponseError::InvalidTimestamp,
                    format!(
                        "Timestamp {timestamp} of a record batch is out of range. The timestamp should be within [{}, {}]",
                        self.earliest_ms, self.latest_ms
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Checks every batch in `records`: framing, CRC, size and timestamps.
fn validate_batches(
    records: &[u8],
    max_batch_bytes: usize,
    window: Option<TimestampWindow>,
) -> Result<(), KafkaError> {
    if records.is_empty() {
        return Err(KafkaError::with_message(
            ResponseError::InvalidRecord,
            "Produce request carried no record batch".to_string(),
        ));
    }
    let mut position = 0;
    while position < records.len() {
        let batch = &records[position..];
        position += batch::validate(batch, max_batch_bytes).map_err(batch_error)?;
        if let (Some(window), Some(header)) = (window, batch::BatchHeader::view(batch)) {
            window.check(header)?;
        }
    }
    Ok(())
}

/// Kafka's rule for compacted topics: every record needs a key, or the
/// cleaner could not tell which value is the latest. Looks inside each batch
/// (decompressing it, bounded); control batches are the coordinator's.
fn check_keys(records: &[u8], topic: &str, partition: i32) -> Result<(), KafkaError> {
    let mut position = 0;
    while position < records.len() {
        let size = batch::framed_size(&records[position..]).map_err(batch_error)?;
        let one = &records[position..position + size];
        position += size;
        if BatchHeader::view(one).is_some_and(|h| h.is_control()) {
            continue;
        }
        match batch_records::all_keyed(one) {
            Ok(true) => {}
            Ok(false) => {
                return Err(KafkaError::with_message(
                    ResponseError::InvalidRecord,
                    format!(
                        "Compacted topic cannot accept message without key in topic partition {topic}-{partition}."
                    ),
                ))
            }
            Err(error) => {
                return Err(KafkaError::with_message(
                    ResponseError::CorruptMessage,
                    format!("Record batch cannot be read: {error}"),
                ))
            }
        }
    }
    Ok(())
}

/// Where one partition of the request stands before the owner answers.
enum Slot {
    Done(Result<(i64, i64, i64), KafkaError>),
    Pending { log_append_time_ms: i64 },
}

/// A partition's batches with its owner shard and (topic, partition) position.
type RoutedPart = (usize, (usize, usize), ProducePart);

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: ProduceRequest,
) -> Option<ProduceResponse> {
    let version = header.request_api_version;
    let view = context.shard.view();
    let wait = match request.acks {
        0 => Some(AppendWait::Nothing),
        1 => Some(AppendWait::Written),
        -1 => Some(AppendWait::Durable),
        _ => None,
    };
    let now = now_ms() as i64;
    let mut slots: Vec<Vec<Slot>> = Vec::with_capacity(request.topic_data.len());
    let mut parts: Vec<RoutedPart> = Vec::new();
    for (topic_index, topic) in request.topic_data.iter().enumerate() {
        let meta = if version >= TOPIC_IDS_VERSION {
            view.topic_by_id(topic.topic_id)
        } else {
            view.topic(topic.name.0.as_str())
        };
        let config = meta.and_then(|meta| view.topic_config(&meta.name));
        let mut topic_slots = Vec::with_capacity(topic.partition_data.len());
        for (partition_index, partition) in topic.partition_data.iter().enumerate() {
            let (Some(meta), Some(config)) = (meta, config) else {
                let error = if version >= TOPIC_IDS_VERSION {
                    ResponseError::UnknownTopicId
                } else {
                    ResponseError::UnknownTopicOrPartition
                };
                topic_slots.push(Slot::Done(Err(KafkaError::new(error))));
                continue;
            };
            let Some(wait) = wait else {
                topic_slots.push(Slot::Done(Err(KafkaError::new(
                    ResponseError::InvalidRequiredAcks,
                ))));
                continue;
            };
            if partition.index < 0 || partition.index >= meta.partitions {
                topic_slots.push(Slot::Done(Err(KafkaError::new(
                    ResponseError::UnknownTopicOrPartition,
                ))));
                continue;
            }
            let records = partition.records.as_deref().unwrap_or_default();
            let window = TimestampWindow::of(config, now);
            let checked =
                validate_batches(records, config.max_message_bytes, window).and_then(|()| {
                    if config.log.compact {
                        check_keys(records, &meta.name, partition.index)
                    } else {
                        Ok(())
                    }
                });
            if let Err(error) = checked {
                log::debug!(
                    "produce to {}-{} refused: {:?}",
                    meta.name,
                    partition.index,
                    error.message
                );
                topic_slots.push(Slot::Done(Err(error)));
                continue;
            }
            let log_append_time_ms = config.log_append_time.then_some(now);
            topic_slots.push(Slot::Pending {
                log_append_time_ms: log_append_time_ms.unwrap_or(-1),
            });
            let owner = view.owner(&meta.name, partition.index);
            parts.push((
                owner,
                (topic_index, partition_index),
                ProducePart {
                    partition: TopicPartition::new(&meta.name, partition.index),
                    batches: BytesMut::from(records),
                    wait,
                    log_append_time_ms,
                },
            ));
        }
        slots.push(topic_slots);
    }

    let answers = scatter(
        context,
        parts,
        ShardRequest::Produce,
        |reply, count| match reply {
            ShardReply::Produce(answers) => answers,
            other => vec![Err(other.into_error()); count],
        },
    )
    .await;
    {
        for ((topic_index, partition_index), answer) in answers {
            let slot = &mut slots[topic_index][partition_index];
            if let Slot::Pending { log_append_time_ms } = *slot {
                *slot = Slot::Done(answer.map(|appended| {
                    (
                        appended.base_offset,
                        log_append_time_ms,
                        appended.log_start_offset,
                    )
                }));
            }
        }
    }
    if request.acks == 0 {
        return None;
    }

    let responses = request
        .topic_data
        .iter()
        .zip(slots)
        .map(|(topic, topic_slots)| {
            let mut entry = TopicProduceResponse::default();
            if version >= TOPIC_IDS_VERSION {
                entry.topic_id = topic.topic_id;
            } else {
                entry.name = TopicName(topic.name.0.clone());
            }
            entry.partition_responses = topic
                .partition_data
                .iter()
                .zip(topic_slots)
                .map(|(partition, slot)| {
                    let mut answer = PartitionProduceResponse::default();
                    answer.index = partition.index;
                    answer.base_offset = -1;
                    answer.log_append_time_ms = -1;
                    answer.log_start_offset = -1;
                    match slot {
                        Slot::Done(Ok((base_offset, log_append_time_ms, log_start_offset))) => {
                            answer.base_offset = base_offset;
                            answer.log_append_time_ms = log_append_time_ms;
                            if version >= 5 {
                                answer.log_start_offset = log_start_offset;
                            }
                        }
                        Slot::Done(Err(error)) => {
                            answer.error_code = error.code;
                            if version >= 8 {
                                answer.error_message = error.message.map(str_bytes);
                            }
                        }
                        Slot::Pending { .. } => {
                            answer.error_code = ResponseError::UnknownServerError.code();
                        }
                    }
                    answer
                })
                .collect();
            entry
        })
        .collect();
    let mut response = ProduceResponse::default();
    response.responses = responses;
    Some(response)
}
