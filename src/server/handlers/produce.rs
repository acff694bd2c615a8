//! Produce: validate every batch on the accepting shard (header and CRC, no
//! decompression), send each partition's batches to its owner shard, and
//! answer once each append is as durable as `acks` asks. A batch is read
//! record by record only where Kafka refuses records one by one (keys on a
//! compacted topic; timestamps, when the header is out of the window), and
//! a batch refused that way names its bad records (KIP-467).
//!
//! KIP-890 part 1 (`transaction.partition.verification.enable`): the owner
//! refuses a transactional batch that would open its producer's
//! transaction on a partition, with a guard; this handler then asks the
//! transaction coordinator whether the partition is in that transaction
//! (AddPartitionsToTxn's `verify_only`: over the mesh, or to the
//! coordinator's node, `txn_route::verify`) and sends the
//! batches again with the guard, or answers the coordinator's error as
//! Kafka translates it per Produce version. So a batch reaches a partition
//! only inside a transaction the coordinator knows, and never after that
//! transaction's abort marker (the guard dies with any append of the
//! producer there).
//!
//! KIP-890 part 2: a Produce v12+ comes from a client of transactions
//! version 2, which sends no AddPartitionsToTxn; the same round trip then
//! adds the partition to the transaction instead of verifying it (Kafka's
//! `ADD_PARTITION` operation), whatever the verification setting.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{
    BrokerId, ProduceRequest, ProduceResponse, RequestHeader, TopicName,
};

use super::txn_route::{add_once, verify, AddRetries};
use super::{hinted_endpoints, leader_hint, scatter, str_bytes};
use crate::clock::now_ms;
use crate::config::TopicConfig;
use crate::log::{AppendResult, AppendWait, TxnVerification};
use crate::metadata::brokers::Broker;
use crate::metadata::NO_LEADER_EPOCH;
use crate::protocol::batch::{self, BatchError, BatchHeader};
use crate::protocol::batch_records::BatchRecords;
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::{frame_allocation_bytes_max, ConnectionContext};
use crate::server::throttle;
use crate::shard::messages::{
    KafkaError, ProducePart, ProduceRefusal, ShardReply, ShardRequest, TopicPartition,
};

/// Produce v10+ answers a partition sent to the wrong broker with its
/// `current_leader` and the response with those leaders' `node_endpoints`
/// (KIP-951).
const CURRENT_LEADER_VERSION: i16 = 10;
/// Produce v13 names topics by id only (KIP-516).
const TOPIC_IDS_VERSION: i16 = 13;
/// Kafka's "no timestamp": such a record is not held to the window.
const NO_TIMESTAMP: i64 = -1;
/// Produce v8 answers name the records that made a batch fail (KIP-467).
const RECORD_ERRORS_VERSION: i16 = 8;
/// Most records one partition's answer names. Kafka names them all; a batch
/// of `max.message.bytes` can hold a hundred thousand records, and a request
/// many such batches, so an answer naming each would grow to many times the
/// request. The Java producer fails the records it is not told about with a
/// generic error, so the whole batch still fails, as it must.
const RECORD_ERRORS_MAX: usize = 1000;
/// Kafka's answer names at most this many record errors in `error_message`.
const RECORD_ERRORS_IN_MESSAGE_MAX: usize = 3;
/// Produce v11+ clients know TRANSACTION_ABORTABLE (KIP-890); older ones
/// get INVALID_TXN_STATE for a partition not in the transaction.
const TRANSACTION_ABORTABLE_VERSION: i16 = 11;
/// Produce v12+ is sent by clients of transactions version 2 only: their
/// partitions join the transaction through their first batch (Kafka's
/// `produceRequestVersionToTransactionSupportedOperation`).
const IMPLICIT_ADD_VERSION: i16 = 12;
/// How long a verified batch waits, and how often, for an earlier batch of
/// its producer verified under the same guard: within Kafka's 100 ms
/// budget for a verification's retries
/// (`add.partitions.to.txn.retry.backoff.max.ms`).
const BEHIND_VERIFYING_WAIT_MS: u64 = 5;
const BEHIND_VERIFYING_WAITS_MAX: usize = 20;

/// Why a partition's batches were not appended: the error and, for a batch
/// refused for some of its records (KIP-467), those records' index in the
/// batch and why.
#[derive(Debug)]
struct Refusal {
    error: KafkaError,
    record_errors: Vec<(i32, String)>,
    /// KIP-951: the leader to send to instead, and its epoch.
    leader: Option<(Broker, i32)>,
}

impl From<KafkaError> for Refusal {
    fn from(error: KafkaError) -> Refusal {
        Refusal {
            error,
            record_errors: Vec::new(),
            leader: None,
        }
    }
}

impl Refusal {
    /// Kafka's answer for a batch whose records `record_errors` (index in
    /// the batch, reason) are refused: INVALID_TIMESTAMP when a timestamp is
    /// among the reasons, else INVALID_RECORD, with Kafka's summary.
    fn of_records(record_errors: Vec<(i32, String)>, bad_timestamp: bool) -> Refusal {
        let error = if bad_timestamp {
            KafkaError::with_message(
                ResponseError::InvalidTimestamp,
                "One or more records have been rejected due to invalid timestamp".to_string(),
            )
        } else {
            let shown: Vec<String> = record_errors
                .iter()
                .take(RECORD_ERRORS_IN_MESSAGE_MAX)
                .map(|(index, message)| {
                    format!("RecordError(batchIndex={index}, message='{message}')")
                })
                .collect();
            KafkaError::with_message(
                ResponseError::InvalidRecord,
                format!(
                    "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
                    record_errors.len(),
                    shown.join(", ")
                ),
            )
        };
        Refusal {
            error,
            record_errors: record_errors.into_iter().take(RECORD_ERRORS_MAX).collect(),
            leader: None,
        }
    }
}

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

    fn contains(&self, timestamp_ms: i64) -> bool {
        (self.earliest_ms..=self.latest_ms).contains(&timestamp_ms)
    }

    /// Checks a batch's first and max timestamps from its header, so that
    /// compressed batches stay undecoded (Kafka decompresses to check every
    /// record). The future bound is exact: `maxTimestamp` is the largest
    /// record timestamp. The past bound checks the first record, so an older
    /// record placed later in the same batch is not caught unless the batch
    /// is decoded anyway (a compacted topic's, for its keys).
    fn refuses(&self, header: &BatchHeader) -> Option<KafkaError> {
        let timestamp = [header.base_timestamp.get(), header.max_timestamp.get()]
            .into_iter()
            .find(|&t| !self.contains(t))?;
        Some(KafkaError::with_message(
            ResponseError::InvalidTimestamp,
            format!(
                "Timestamp {timestamp} of a record batch is out of range. The timestamp should be within [{}, {}]",
                self.earliest_ms, self.latest_ms
            ),
        ))
    }

    /// Kafka's reason for a record out of the window.
    fn record_error(&self, timestamp_ms: i64, offset: i64) -> String {
        format!(
            "Timestamp {timestamp_ms} of message with offset {offset} is out of range. The timestamp should be within [{}, {}]",
            self.earliest_ms, self.latest_ms
        )
    }
}

/// What a partition's batches must pass, from its topic's config.
struct Rules<'a> {
    max_batch_bytes: usize,
    window: Option<TimestampWindow>,
    /// Set for a compacted topic: every record needs a key, or the cleaner
    /// could not tell which value is the latest (Kafka's rule).
    compacted: Option<(&'a str, i32)>,
}

/// Checks every batch in `records`: framing, CRC and size (the batch fails
/// as a whole), then timestamps and, on a compacted topic, keys (the batch
/// fails naming its bad records, as Kafka's `LogValidator` does).
fn validate_batches(records: &[u8], rules: &Rules) -> Result<(), Refusal> {
    if records.is_empty() {
        return Err(KafkaError::with_message(
            ResponseError::InvalidRecord,
            "Produce request carried no record batch".to_string(),
        )
        .into());
    }
    let mut position = 0;
    while position < records.len() {
        let size =
            batch::validate(&records[position..], rules.max_batch_bytes).map_err(batch_error)?;
        let one = &records[position..position + size];
        position += size;
        let Some(header) = BatchHeader::view(one) else {
            continue;
        };
        // Markers are the transaction coordinator's (WriteTxnMarkers): one
        // from a client would end a transaction (Kafka's `LogValidator`).
        if header.is_control() {
            return Err(KafkaError::with_message(
                ResponseError::InvalidRecord,
                "Clients are not allowed to write control records".to_string(),
            )
            .into());
        }
        let header_out_of_window = rules.window.and_then(|w| w.refuses(header));
        let keys_to_check = rules.compacted.is_some();
        if header_out_of_window.is_some() || keys_to_check {
            check_records(one, rules)?;
        }
        if let Some(error) = header_out_of_window {
            // No record is out of the window: the header's timestamps are
            // wrong, or absent (-1), and the time index would take them.
            return Err(error.into());
        }
    }
    Ok(())
}

/// Looks at each record of one batch (decompressing it, bounded) for what
/// Kafka refuses record by record: a keyless record on a compacted topic,
/// a timestamp out of the window. In Kafka's order: the key first.
fn check_records(batch: &[u8], rules: &Rules) -> Result<(), Refusal> {
    let unreadable = |error| {
        KafkaError::with_message(
            ResponseError::CorruptMessage,
            format!("Record batch cannot be read: {error}"),
        )
    };
    let decoded = BatchRecords::decode(batch).map_err(unreadable)?;
    let records = decoded.records().map_err(unreadable)?;
    let mut record_errors = Vec::new();
    let mut bad_timestamp = false;
    for (index, record) in records.iter().enumerate() {
        let index = i32::try_from(index).unwrap_or(i32::MAX);
        if let (Some((topic, partition)), None) = (rules.compacted, record.key) {
            record_errors.push((
                index,
                format!(
                    "Compacted topic cannot accept message without key in topic partition {topic}-{partition}"
                ),
            ));
        } else if let Some(window) = rules
            .window
            .filter(|w| record.timestamp != NO_TIMESTAMP && !w.contains(record.timestamp))
        {
            bad_timestamp = true;
            record_errors.push((index, window.record_error(record.timestamp, record.offset)));
        }
    }
    if record_errors.is_empty() {
        return Ok(());
    }
    Err(Refusal::of_records(record_errors, bad_timestamp))
}

/// Where one partition of the request stands before the owner answers.
enum Slot {
    Done(Result<(i64, i64, i64), Refusal>),
    Pending { log_append_time_ms: i64 },
}

/// A partition's batches with its owner shard and (topic, partition) position.
type RoutedPart = (usize, (usize, usize), ProducePart);
/// A partition's answer, by its position in the request.
type Answer = ((usize, usize), Result<AppendResult, KafkaError>);

/// Where a partition's batches go, kept to send them again once verified.
struct Route {
    owner: usize,
    position: (usize, usize),
    partition: TopicPartition,
    wait: AppendWait,
    log_append_time_ms: Option<i64>,
    /// `ProducePart::pinned_bytes` of the request.
    pinned_bytes: usize,
}

/// A partition whose batches wait for the coordinator's confirmation.
struct Unverified {
    route: Route,
    producer_id: i64,
    epoch: i16,
    guard: u64,
}

/// Whether `records` (validated) hold a transactional batch.
fn has_transactional_batch(records: &[u8]) -> bool {
    let mut position = 0;
    while position < records.len() {
        let Ok(size) = batch::framed_size(&records[position..]) else {
            return false;
        };
        let Some(header) = records
            .get(position..position + size)
            .and_then(BatchHeader::view)
        else {
            return false;
        };
        if header.is_transactional() && header.producer_id.get() >= 0 {
            return true;
        }
        position += size;
    }
    false
}

/// Whether the request holds transactional batches its principal may not
/// write: no transactional id, or no WRITE on it.
fn transactional_id_denied(context: &ConnectionContext, request: &ProduceRequest) -> bool {
    if !authorize::enabled(context) {
        return false;
    }
    let transactional = request.topic_data.iter().any(|topic| {
        topic.partition_data.iter().any(|partition| {
            has_transactional_batch(partition.records.as_deref().unwrap_or_default())
        })
    });
    transactional
        && !request
            .transactional_id
            .as_ref()
            .is_some_and(|id| authorize::transactional_id(context, Operation::Write, id.0.as_str()))
}

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: ProduceRequest,
    frame_len: usize,
) -> Option<ProduceResponse> {
    let pinned_bytes = frame_allocation_bytes_max(frame_len);
    let version = header.request_api_version;
    let view = context.shard.view();
    let wait = match request.acks {
        0 => Some(AppendWait::Nothing),
        1 => Some(AppendWait::Written),
        -1 => Some(AppendWait::Durable),
        _ => None,
    };
    let now = now_ms() as i64;
    let transactional_id = request
        .transactional_id
        .as_ref()
        .map(|id| id.0.to_string())
        .filter(|_| {
            context.shard.config.txn.partition_verification_enable
                || version >= IMPLICIT_ADD_VERSION
        });
    // Kafka's order: the transactional id, then each topic's WRITE.
    let refused_before_topic =
        transactional_id_denied(context, &request).then(authorize::transactional_id_denied);
    let mut slots: Vec<Vec<Slot>> = Vec::with_capacity(request.topic_data.len());
    let mut parts: Vec<RoutedPart> = Vec::new();
    // Only when batches may need verification: the routes to send them again.
    let mut routes: Vec<Route> = Vec::new();
    for (topic_index, topic) in request.topic_data.iter().enumerate() {
        let meta = if version >= TOPIC_IDS_VERSION {
            view.topic_by_id(topic.topic_id)
        } else {
            view.topic(topic.name.0.as_str())
        };
        let config = meta.and_then(|meta| view.topic_config(&meta.name));
        let denied = refused_before_topic.clone().or_else(|| {
            let name = meta.map_or(topic.name.0.as_str(), |meta| meta.name.as_str());
            let unknown_id = meta.is_none() && version >= TOPIC_IDS_VERSION;
            (!unknown_id && !authorize::topic(context, Operation::Write, name))
                .then(authorize::topic_denied)
        });
        let mut topic_slots = Vec::with_capacity(topic.partition_data.len());
        for (partition_index, partition) in topic.partition_data.iter().enumerate() {
            if let Some(error) = &denied {
                topic_slots.push(Slot::Done(Err(error.clone().into())));
                continue;
            }
            let (Some(meta), Some(config)) = (meta, config) else {
                let error = if version >= TOPIC_IDS_VERSION {
                    ResponseError::UnknownTopicId
                } else {
                    ResponseError::UnknownTopicOrPartition
                };
                topic_slots.push(Slot::Done(Err(KafkaError::new(error).into())));
                continue;
            };
            let Some(wait) = wait else {
                topic_slots.push(Slot::Done(Err(KafkaError::new(
                    ResponseError::InvalidRequiredAcks,
                )
                .into())));
                continue;
            };
            if partition.index < 0 || partition.index >= meta.partitions {
                topic_slots.push(Slot::Done(Err(KafkaError::new(
                    ResponseError::UnknownTopicOrPartition,
                )
                .into())));
                continue;
            }
            // Leadership before the batches, as Kafka's
            // `Partition.appendRecordsToLeader` checks it.
            let owner = match view.lead(meta, partition.index, NO_LEADER_EPOCH) {
                Ok(owner) => owner,
                Err(error) => {
                    topic_slots.push(Slot::Done(Err(Refusal {
                        leader: leader_hint(&view, meta, partition.index, error),
                        ..KafkaError::new(error).into()
                    })));
                    continue;
                }
            };
            let records = partition.records.as_deref().unwrap_or_default();
            let rules = Rules {
                max_batch_bytes: config.max_message_bytes,
                window: TimestampWindow::of(config, now),
                compacted: config
                    .log
                    .compact
                    .then_some((meta.name.as_str(), partition.index)),
            };
            if let Err(refusal) = validate_batches(records, &rules) {
                log::debug!(
                    "produce to {}-{} refused: {:?}",
                    meta.name,
                    partition.index,
                    refusal.error.message
                );
                topic_slots.push(Slot::Done(Err(refusal)));
                continue;
            }
            let log_append_time_ms = config.log_append_time.then_some(now);
            topic_slots.push(Slot::Pending {
                log_append_time_ms: log_append_time_ms.unwrap_or(-1),
            });
            let topic_partition = TopicPartition::new(&meta.name, partition.index);
            let verification = if transactional_id.is_some() && has_transactional_batch(records) {
                routes.push(Route {
                    owner,
                    position: (topic_index, partition_index),
                    partition: topic_partition.clone(),
                    wait,
                    log_append_time_ms,
                    pinned_bytes,
                });
                TxnVerification::Start
            } else {
                TxnVerification::Off
            };
            parts.push((
                owner,
                (topic_index, partition_index),
                ProducePart {
                    partition: topic_partition,
                    batches: partition.records.clone().unwrap_or_default(),
                    pinned_bytes,
                    wait,
                    log_append_time_ms,
                    verification,
                },
            ));
        }
        slots.push(topic_slots);
    }

    let answers = append(context, parts).await;
    let mut unverified = Vec::new();
    for (position, answer) in answers {
        match answer {
            Err(ProduceRefusal::Unverified {
                producer_id,
                epoch,
                guard,
            }) => match routes.iter().position(|route| route.position == position) {
                Some(index) => unverified.push(Unverified {
                    route: routes.swap_remove(index),
                    producer_id,
                    epoch,
                    guard,
                }),
                None => fill(
                    &mut slots,
                    position,
                    Err(KafkaError::new(ResponseError::UnknownServerError)),
                ),
            },
            Err(ProduceRefusal::Error(error) | ProduceRefusal::BehindVerifying(error)) => {
                fill(&mut slots, position, Err(error))
            }
            Ok(appended) => fill(&mut slots, position, Ok(appended)),
        }
    }
    if let Some(transactional_id) = transactional_id.filter(|_| !unverified.is_empty()) {
        let answers =
            verify_and_append(context, version, &request, &transactional_id, unverified).await;
        for (position, answer) in answers {
            fill(&mut slots, position, answer);
        }
    }
    // KIP-219: recorded once appended, as Kafka does; an `acks=0` client
    // has no answer to read it from, and is muted all the same.
    let throttle_time_ms = throttle::produce(context, header, frame_len);
    if request.acks == 0 {
        return None;
    }

    let node_endpoints = node_endpoints(version, &slots, |broker| context.seen(broker));
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
                .map(|(partition, slot)| partition_answer(version, partition.index, slot))
                .collect();
            entry
        })
        .collect();
    let mut response = ProduceResponse::default();
    response.responses = responses;
    response.node_endpoints = node_endpoints;
    response.throttle_time_ms = throttle_time_ms;
    Some(response)
}

/// Sends each partition's batches to its owner.
async fn append(
    context: &ConnectionContext,
    parts: Vec<RoutedPart>,
) -> Vec<((usize, usize), Result<AppendResult, ProduceRefusal>)> {
    scatter(
        context,
        parts,
        ShardRequest::Produce,
        |reply, count| match reply {
            ShardReply::Produce(answers) => answers,
            other => vec![Err(ProduceRefusal::Error(other.into_error())); count],
        },
    )
    .await
}

/// Puts the owner's answer for the partition at `position` in its slot.
fn fill(
    slots: &mut [Vec<Slot>],
    position: (usize, usize),
    answer: Result<AppendResult, KafkaError>,
) {
    let slot = &mut slots[position.0][position.1];
    if let Slot::Pending { log_append_time_ms } = *slot {
        *slot = Slot::Done(
            answer
                .map(|appended| {
                    (
                        appended.base_offset,
                        log_append_time_ms,
                        appended.log_start_offset,
                    )
                })
                .map_err(Refusal::from),
        );
    }
}

/// Asks the coordinator whether each `unverified` partition is in its
/// producer's transaction, or adds them to it from Produce v12 on (Kafka's
/// AddPartitionsToTxnManager, one call per producer), then appends the
/// confirmed ones under their guards.
async fn verify_and_append(
    context: &ConnectionContext,
    version: i16,
    request: &ProduceRequest,
    transactional_id: &str,
    mut unverified: Vec<Unverified>,
) -> Vec<Answer> {
    let mut answers = Vec::new();
    let mut producers: Vec<(i64, i16)> = unverified
        .iter()
        .map(|u| (u.producer_id, u.epoch))
        .collect();
    producers.sort_unstable();
    producers.dedup();
    let mut verified: Vec<Unverified> = Vec::new();
    for (producer_id, epoch) in producers {
        let (mine, rest) = unverified
            .into_iter()
            .partition(|u| (u.producer_id, u.epoch) == (producer_id, epoch));
        unverified = rest;
        let (mine, errors) = if version >= IMPLICIT_ADD_VERSION {
            add_to_transaction(context, request, transactional_id, mine, &mut answers).await
        } else {
            let producer = (producer_id, epoch);
            let errors = verify(context, transactional_id, producer, partitions_of(&mine)).await;
            (mine, errors)
        };
        for (u, error) in mine.into_iter().zip(errors) {
            if let Some(error) = error {
                log::debug!(
                    "produce to {} by producer {producer_id} epoch {epoch} not verified: {error:?}",
                    u.route.partition.dir_name()
                );
                answers.push((u.route.position, Err(verification_error(version, error))));
                continue;
            }
            verified.push(u);
        }
    }
    append_verified(context, request, verified, &mut answers).await;
    answers
}

/// Appends the `verified` partitions under their guards. One whose
/// producer's earlier batch, in another request, waits for the same
/// verification goes again once that one had its time to land (a few
/// milliseconds: its coordinator answer is on its way), so the
/// transaction's batches land in sequence order.
async fn append_verified(
    context: &ConnectionContext,
    request: &ProduceRequest,
    mut verified: Vec<Unverified>,
    answers: &mut Vec<Answer>,
) {
    for waits in 0.. {
        let parts = verified
            .iter()
            .map(|u| routed(request, &u.route, TxnVerification::Verified(u.guard)))
            .collect();
        let mut behind = Vec::new();
        for (position, answer) in append(context, parts).await {
            match answer {
                Err(ProduceRefusal::BehindVerifying(_)) if waits < BEHIND_VERIFYING_WAITS_MAX => {
                    behind.push(position)
                }
                // A guard never starts a verification again.
                answer => answers.push((position, answer.map_err(refusal_error))),
            }
        }
        if behind.is_empty() {
            return;
        }
        verified.retain(|u| behind.contains(&u.route.position));
        glommio::timer::sleep(Duration::from_millis(BEHIND_VERIFYING_WAIT_MS)).await;
    }
}

/// Produce v12+: adds one producer's `unverified` partitions to its
/// transaction, with Kafka's retries of CONCURRENT_TRANSACTIONS; gives back
/// the partitions to append, each with the coordinator's error or none. A
/// retry takes each partition's guard again before asking again: the
/// previous transaction's markers, still being written when the
/// coordinator answered CONCURRENT_TRANSACTIONS, end the guards taken
/// before them, as they must (a guard taken before an abort marker may not
/// open a transaction after it).
async fn add_to_transaction(
    context: &ConnectionContext,
    request: &ProduceRequest,
    transactional_id: &str,
    mut unverified: Vec<Unverified>,
    answers: &mut Vec<Answer>,
) -> (Vec<Unverified>, Vec<Option<ResponseError>>) {
    let retries = AddRetries::new();
    loop {
        let Some(first) = unverified.first() else {
            return (unverified, Vec::new());
        };
        let producer = (first.producer_id, first.epoch);
        let partitions = partitions_of(&unverified);
        let error = match add_once(context, transactional_id, producer, partitions).await {
            Ok(()) => None,
            Err(error) if retries.wait(error).await => {
                unverified = guard_again(context, request, unverified, answers).await;
                continue;
            }
            Err(error) => Some(error),
        };
        let errors = vec![error; unverified.len()];
        return (unverified, errors);
    }
}

/// Sends `unverified`'s batches again as first tries, so each partition
/// takes a guard anew; one appended or refused meanwhile (as a first try
/// can be) has its answer in `answers`. The partitions still unverified.
async fn guard_again(
    context: &ConnectionContext,
    request: &ProduceRequest,
    unverified: Vec<Unverified>,
    answers: &mut Vec<Answer>,
) -> Vec<Unverified> {
    let parts = unverified
        .iter()
        .map(|u| routed(request, &u.route, TxnVerification::Start))
        .collect();
    let mut unverified: Vec<Option<Unverified>> = unverified.into_iter().map(Some).collect();
    let mut again = Vec::new();
    for (position, answer) in append(context, parts).await {
        let Some(mut u) = unverified
            .iter_mut()
            .find(|u| u.as_ref().is_some_and(|u| u.route.position == position))
            .and_then(Option::take)
        else {
            continue;
        };
        match answer {
            Err(ProduceRefusal::Unverified { guard, .. }) => {
                u.guard = guard;
                again.push(u);
            }
            answer => answers.push((position, answer.map_err(refusal_error))),
        }
    }
    again
}

/// The records of the partition `route` names, sent to its owner under
/// `verification`.
fn routed(request: &ProduceRequest, route: &Route, verification: TxnVerification) -> RoutedPart {
    let (topic_index, partition_index) = route.position;
    let records = request.topic_data[topic_index].partition_data[partition_index]
        .records
        .clone()
        .unwrap_or_default();
    (
        route.owner,
        route.position,
        ProducePart {
            partition: route.partition.clone(),
            batches: records,
            pinned_bytes: route.pinned_bytes,
            wait: route.wait,
            log_append_time_ms: route.log_append_time_ms,
            verification,
        },
    )
}

/// The (topic, partition) pairs of `unverified`, for the coordinator.
fn partitions_of(unverified: &[Unverified]) -> Vec<(String, i32)> {
    unverified
        .iter()
        .map(|u| {
            (
                u.route.partition.topic.to_string(),
                u.route.partition.partition,
            )
        })
        .collect()
}

/// An owner's refusal of a batch that came with its guard.
fn refusal_error(refusal: ProduceRefusal) -> KafkaError {
    match refusal {
        ProduceRefusal::Error(error) | ProduceRefusal::BehindVerifying(error) => error,
        ProduceRefusal::Unverified { .. } => KafkaError::new(ResponseError::UnknownServerError),
    }
}

/// The coordinator's `error` as Kafka answers it to a Produce of `version`
/// (AddPartitionsToTxnManager's and ReplicaManager's translations).
fn verification_error(version: i16, error: ResponseError) -> KafkaError {
    match error {
        // Producers expect INVALID_PRODUCER_EPOCH from a produce.
        ResponseError::ProducerFenced => KafkaError::new(ResponseError::InvalidProducerEpoch),
        ResponseError::TransactionAbortable if version >= TRANSACTION_ABORTABLE_VERSION => {
            KafkaError::new(error)
        }
        ResponseError::TransactionAbortable | ResponseError::InvalidTxnState => {
            KafkaError::with_message(
                ResponseError::InvalidTxnState,
                "Partition was not added to the transaction".to_string(),
            )
        }
        // Retriable for the coordinator, not for every producer: Kafka picks
        // an error all of them retry without a metadata refresh.
        ResponseError::ConcurrentTransactions
        | ResponseError::NetworkException
        | ResponseError::CoordinatorLoadInProgress
        | ResponseError::CoordinatorNotAvailable
        | ResponseError::NotCoordinator => KafkaError::with_message(
            ResponseError::NotEnoughReplicas,
            format!(
                "Unable to verify the partition has been added to the transaction. Underlying error: {}",
                error_name(error)
            ),
        ),
        other => KafkaError::new(other),
    }
}

/// Kafka's name of an error (`CONCURRENT_TRANSACTIONS`).
fn error_name(error: ResponseError) -> String {
    let mut name = String::new();
    for (index, character) in format!("{error:?}").chars().enumerate() {
        if character.is_uppercase() && index > 0 {
            name.push('_');
        }
        name.push(character.to_ascii_uppercase());
    }
    name
}

/// KIP-951: the brokers the refusals name as leaders, each once (v10+).
/// `seen`: a broker as the connection's client reaches it.
fn node_endpoints(
    version: i16,
    slots: &[Vec<Slot>],
    seen: impl Fn(Broker) -> Broker,
) -> Vec<NodeEndpoint> {
    if version < CURRENT_LEADER_VERSION {
        return Vec::new();
    }
    let hints = slots.iter().flatten().filter_map(|slot| match slot {
        Slot::Done(Err(refusal)) => refusal.leader.as_ref(),
        _ => None,
    });
    hinted_endpoints(hints)
        .into_iter()
        .map(seen)
        .map(|broker| {
            let mut node = NodeEndpoint::default();
            node.node_id = BrokerId(broker.id);
            node.host = str_bytes(broker.host);
            node.port = broker.port;
            node.rack = broker.rack.map(str_bytes);
            node
        })
        .collect()
}

/// One partition's answer: where its batches landed, or why they did not.
fn partition_answer(version: i16, index: i32, slot: Slot) -> PartitionProduceResponse {
    let mut answer = PartitionProduceResponse::default();
    answer.index = index;
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
        Slot::Done(Err(refusal)) => {
            answer.error_code = refusal.error.code;
            if let Some((broker, epoch)) =
                refusal.leader.filter(|_| version >= CURRENT_LEADER_VERSION)
            {
                answer.current_leader.leader_id = BrokerId(broker.id);
                answer.current_leader.leader_epoch = epoch;
            }
            if version >= RECORD_ERRORS_VERSION {
                answer.error_message = refusal.error.message.map(str_bytes);
                answer.record_errors = refusal
                    .record_errors
                    .into_iter()
                    .map(|(index, message)| {
                        let mut entry = BatchIndexAndErrorMessage::default();
                        entry.batch_index = index;
                        entry.batch_index_error_message = Some(str_bytes(message));
                        entry
                    })
                    .collect();
            }
        }
        Slot::Pending { .. } => {
            answer.error_code = ResponseError::UnknownServerError.code();
        }
    }
    answer
}

#[cfg(test)]
#[path = "produce_tests.rs"]
mod tests;
