//! Fetch: reads whole batches from each partition's owner shard, long-polls
//! by `max_wait_ms`/`min_bytes` on the owners' append wake-ups, keeps
//! incremental fetch sessions (KIP-227), and writes the response without
//! copying record bytes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{FetchRequest, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use super::{group_by_owner, scatter, Response};
use crate::protocol::fetch_writer::{
    self, FetchPartitionParts, FetchResponseParts, FetchTopicParts,
};
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{FetchOutcome, FetchPart, ShardReply, ShardRequest, TopicPartition};

/// Fetch v13+ names topics by id (KIP-516).
const TOPIC_IDS_VERSION: i16 = 13;
/// Fetch sessions exist from v7 (KIP-227).
const SESSIONS_VERSION: i16 = 7;
/// Session epoch meaning "no session" (full fetch, close any session).
const FINAL_EPOCH: i32 = -1;
/// Sessions one shard keeps (Kafka's `max.incremental.fetch.session.cache.slots`
/// counts partitions; a session per consumer is the unit that matters here).
const FETCH_SESSIONS_PER_SHARD_MAX: usize = 1000;
/// Longest long poll honoured, whatever the client asks.
const MAX_WAIT_MS_MAX: u64 = 30_000;

#[derive(Clone)]
struct SessionPartition {
    topic_id: uuid::Uuid,
    fetch_offset: i64,
    max_bytes: i32,
    sent_high_watermark: i64,
    sent_log_start_offset: i64,
}

struct Session {
    next_epoch: i32,
    partitions: IndexMap<TopicPartition, SessionPartition>,
    last_used: Instant,
}

#[derive(Default)]
struct SessionCache {
    sessions: HashMap<i32, Session>,
    next_id: i32,
}

impl SessionCache {
    fn new_id(&mut self) -> i32 {
        loop {
            self.next_id = self.next_id.wrapping_add(1).max(1);
            if !self.sessions.contains_key(&self.next_id) {
                return self.next_id;
            }
        }
    }

    fn insert(&mut self, session: Session) -> i32 {
        if self.sessions.len() >= FETCH_SESSIONS_PER_SHARD_MAX {
            let oldest = self
                .sessions
                .iter()
                .min_by_key(|(_, session)| session.last_used)
                .map(|(&id, _)| id);
            if let Some(oldest) = oldest {
                self.sessions.remove(&oldest);
            }
        }
        let id = self.new_id();
        self.sessions.insert(id, session);
        id
    }
}

thread_local! {
    /// This shard's fetch sessions. A connection stays on its shard, so a
    /// client's session is always found where it was made; a client that
    /// reconnects elsewhere gets FETCH_SESSION_ID_NOT_FOUND and starts over.
    static SESSIONS: RefCell<SessionCache> = RefCell::new(SessionCache::default());
}

/// One partition the response may speak of.
struct Wanted {
    partition: TopicPartition,
    topic_id: uuid::Uuid,
    fetch_offset: i64,
    max_bytes: i32,
    error: Option<ResponseError>,
}

fn error_response(
    correlation_id: i32,
    version: i16,
    error: ResponseError,
    session_id: i32,
) -> Response {
    let parts = FetchResponseParts {
        error_code: error.code(),
        session_id,
        ..FetchResponseParts::default()
    };
    Response::Chunks(fetch_writer::encode_fetch_response(
        correlation_id,
        version,
        &parts,
    ))
}

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: FetchRequest,
) -> Response {
    let version = header.request_api_version;
    let view = context.shard.view();

    let mut wanted: Vec<Wanted> = Vec::new();
    for topic in &request.topics {
        let meta = if version >= TOPIC_IDS_VERSION {
            view.topic_by_id(topic.topic_id)
        } else {
            view.topic(topic.topic.0.as_str())
        };
        for partition in &topic.partitions {
            let (name, topic_id, error) = match meta {
                Some(meta) if (0..meta.partitions).contains(&partition.partition) => {
                    (meta.name.clone(), meta.id, None)
                }
                Some(meta) => (
                    meta.name.clone(),
                    meta.id,
                    Some(ResponseError::UnknownTopicOrPartition),
                ),
                None if version >= TOPIC_IDS_VERSION => (
                    String::new(),
                    topic.topic_id,
                    Some(ResponseError::UnknownTopicId),
                ),
                None => (
                    topic.topic.0.to_string(),
                    uuid::Uuid::nil(),
                    Some(ResponseError::UnknownTopicOrPartition),
                ),
            };
            wanted.push(Wanted {
                partition: TopicPartition::new(&name, partition.partition),
                topic_id,
                fetch_offset: partition.fetch_offset,
                max_bytes: partition.partition_max_bytes,
                error,
            });
        }
    }

    // Session bookkeeping: which partitions this fetch covers, and the id to answer with.
    let mut session_id = 0;
    let mut incremental = false;
    if version >= SESSIONS_VERSION {
        let outcome = SESSIONS.with(|cache| {
            let mut cache = cache.borrow_mut();
            if request.session_epoch == FINAL_EPOCH {
                cache.sessions.remove(&request.session_id);
                return Ok(None);
            }
            if request.session_epoch == 0 {
                cache.sessions.remove(&request.session_id);
                let partitions = wanted
                    .iter()
                    .filter(|want| want.error.is_none())
                    .map(|want| (want.partition.clone(), session_partition(want)))
                    .collect();
                let id = cache.insert(Session {
                    next_epoch: 1,
                    partitions,
                    last_used: Instant::now(),
                });
                return Ok(Some((id, false, Vec::new())));
            }
            let Some(session) = cache.sessions.get_mut(&request.session_id) else {
                return Err(ResponseError::FetchSessionIdNotFound);
            };
            if session.next_epoch != request.session_epoch {
                return Err(ResponseError::InvalidFetchSessionEpoch);
            }
            session.next_epoch = session.next_epoch.wrapping_add(1).max(1);
            session.last_used = Instant::now();
            // A partition sent again only moves its position (KIP-227): what
            // was last sent for it stays, so an unchanged partition stays quiet.
            for want in wanted.iter().filter(|want| want.error.is_none()) {
                match session.partitions.get_mut(&want.partition) {
                    Some(state) => {
                        state.topic_id = want.topic_id;
                        state.fetch_offset = want.fetch_offset;
                        state.max_bytes = want.max_bytes;
                    }
                    None => {
                        session
                            .partitions
                            .insert(want.partition.clone(), session_partition(want));
                    }
                }
            }
            for forgotten in &request.forgotten_topics_data {
                let name = if version >= TOPIC_IDS_VERSION {
                    view.topic_by_id(forgotten.topic_id)
                        .map(|meta| meta.name.clone())
                } else {
                    Some(forgotten.topic.0.to_string())
                };
                if let Some(name) = name {
                    for &partition in &forgotten.partitions {
                        session
                            .partitions
                            .shift_remove(&TopicPartition::new(&name, partition));
                    }
                }
            }
            let covered: Vec<(TopicPartition, SessionPartition)> = session
                .partitions
                .iter()
                .map(|(partition, state)| (partition.clone(), state.clone()))
                .collect();
            Ok(Some((request.session_id, true, covered)))
        });
        match outcome {
            Err(error) => return error_response(header.correlation_id, version, error, 0),
            Ok(None) => {}
            Ok(Some((id, is_incremental, covered))) => {
                session_id = id;
                incremental = is_incremental;
                if incremental {
                    let errors: Vec<Wanted> = wanted
                        .into_iter()
                        .filter(|want| want.error.is_some())
                        .collect();
                    wanted = covered
                        .into_iter()
                        .map(|(partition, state)| Wanted {
                            partition,
                            topic_id: state.topic_id,
                            fetch_offset: state.fetch_offset,
                            max_bytes: state.max_bytes,
                            error: None,
                        })
                        .chain(errors)
                        .collect();
                }
            }
        }
    }

    let response_max_bytes =
        (request.max_bytes.max(0) as usize).min(context.shard.config.fetch_max_bytes);
    let max_wait = Duration::from_millis((request.max_wait_ms.max(0) as u64).min(MAX_WAIT_MS_MAX));
    let deadline = Instant::now() + max_wait;
    let mut outcomes = read_all(context, &view, &wanted, response_max_bytes).await;
    loop {
        let total: usize = outcomes
            .iter()
            .map(|outcome| outcome.records.iter().map(Bytes::len).sum::<usize>())
            .sum();
        let any_error = outcomes.iter().any(|outcome| outcome.error_code != 0);
        let now = Instant::now();
        if total >= request.min_bytes.max(0) as usize
            || any_error
            || now >= deadline
            || wanted.is_empty()
        {
            break;
        }
        let waits: Vec<(usize, (), (TopicPartition, i64))> = wanted
            .iter()
            .zip(&outcomes)
            .filter(|(want, _)| want.error.is_none())
            .map(|(want, outcome)| {
                let owner = view.owner(&want.partition.topic, want.partition.partition);
                let seen = outcome.high_watermark.max(want.fetch_offset);
                (owner, (), (want.partition.clone(), seen))
            })
            .collect();
        if waits.is_empty() {
            break;
        }
        let timeout_ms = (deadline - now).as_millis() as u64 + 1;
        let calls: Vec<_> = group_by_owner(waits)
            .into_iter()
            .map(|(owner, (_, parts))| {
                let shard = context.shard.clone();
                Box::pin(async move {
                    shard
                        .call(owner, ShardRequest::WaitForData { parts, timeout_ms })
                        .await;
                })
            })
            .collect();
        futures_util::future::select_all(calls).await;
        outcomes = read_all(context, &view, &wanted, response_max_bytes).await;
    }

    // KIP-74: the response stays within max_bytes, except that the first
    // non-empty partition is returned whole so a large batch cannot stall a consumer.
    let mut total_bytes = 0usize;
    for outcome in outcomes.iter_mut() {
        let size: usize = outcome.records.iter().map(Bytes::len).sum();
        if size == 0 {
            continue;
        }
        if total_bytes > 0 && total_bytes + size > response_max_bytes {
            outcome.records.clear();
            continue;
        }
        total_bytes += size;
    }

    let mut topics: Vec<FetchTopicParts> = Vec::new();
    let mut sent: Vec<(TopicPartition, i64, i64)> = Vec::new();
    for (want, outcome) in wanted.iter().zip(outcomes) {
        if incremental && want.error.is_none() {
            let unchanged = SESSIONS.with(|cache| {
                cache
                    .borrow()
                    .sessions
                    .get(&session_id)
                    .and_then(|session| session.partitions.get(&want.partition))
                    .is_some_and(|state| {
                        outcome.error_code == 0
                            && outcome.records.is_empty()
                            && state.sent_high_watermark == outcome.high_watermark
                            && state.sent_log_start_offset == outcome.log_start_offset
                    })
            });
            if unchanged {
                continue;
            }
        }
        sent.push((
            want.partition.clone(),
            outcome.high_watermark,
            outcome.log_start_offset,
        ));
        let part = FetchPartitionParts {
            partition_index: want.partition.partition,
            error_code: outcome.error_code,
            high_watermark: outcome.high_watermark,
            last_stable_offset: outcome.high_watermark,
            log_start_offset: outcome.log_start_offset,
            aborted_transactions: None,
            preferred_read_replica: -1,
            current_leader: None,
            records: outcome.records,
        };
        let same_topic = topics.last().is_some_and(|last| {
            last.name.as_str() == &*want.partition.topic && last.topic_id == want.topic_id
        });
        if same_topic {
            if let Some(last) = topics.last_mut() {
                last.partitions.push(part);
            }
        } else {
            topics.push(FetchTopicParts {
                name: StrBytes::from_string(want.partition.topic.to_string()),
                topic_id: want.topic_id,
                partitions: vec![part],
            });
        }
    }
    if session_id != 0 {
        SESSIONS.with(|cache| {
            if let Some(session) = cache.borrow_mut().sessions.get_mut(&session_id) {
                for (partition, high_watermark, log_start_offset) in sent {
                    if let Some(state) = session.partitions.get_mut(&partition) {
                        state.sent_high_watermark = high_watermark;
                        state.sent_log_start_offset = log_start_offset;
                    }
                }
            }
        });
    }
    let parts = FetchResponseParts {
        session_id,
        topics,
        ..FetchResponseParts::default()
    };
    Response::Chunks(fetch_writer::encode_fetch_response(
        header.correlation_id,
        version,
        &parts,
    ))
}

fn session_partition(want: &Wanted) -> SessionPartition {
    SessionPartition {
        topic_id: want.topic_id,
        fetch_offset: want.fetch_offset,
        max_bytes: want.max_bytes,
        sent_high_watermark: -1,
        sent_log_start_offset: -1,
    }
}

/// Reads every wanted partition from its owner, in parallel across owners.
async fn read_all(
    context: &ConnectionContext,
    view: &crate::metadata::ClusterView,
    wanted: &[Wanted],
    response_max_bytes: usize,
) -> Vec<FetchOutcome> {
    let mut outcomes: Vec<FetchOutcome> = wanted
        .iter()
        .map(|want| FetchOutcome {
            error_code: want.error.map(|error| error.code()).unwrap_or(0),
            high_watermark: -1,
            log_start_offset: -1,
            ..FetchOutcome::default()
        })
        .collect();
    let reads: Vec<(usize, usize, FetchPart)> = wanted
        .iter()
        .enumerate()
        .filter(|(_, want)| want.error.is_none())
        .map(|(position, want)| {
            let owner = view.owner(&want.partition.topic, want.partition.partition);
            let part = FetchPart {
                partition: want.partition.clone(),
                offset: want.fetch_offset,
                max_bytes: (want.max_bytes.max(0) as usize).min(response_max_bytes),
            };
            (owner, position, part)
        })
        .collect();
    let results = scatter(
        context,
        reads,
        ShardRequest::Fetch,
        |reply, count| match reply {
            ShardReply::Fetch(results) => results,
            other => vec![
                FetchOutcome {
                    error_code: other.into_error().code,
                    high_watermark: -1,
                    log_start_offset: -1,
                    ..FetchOutcome::default()
                };
                count
            ],
        },
    )
    .await;
    for (position, outcome) in results {
        outcomes[position] = outcome;
    }
    outcomes
}
