//! `FetchSession`: the client side of one incremental fetch session
//! (KIP-227) between a follower shard's fetcher and one leader broker, as
//! Kafka's `FetchSessionHandler` keeps it.
//!
//! The first Fetch is full (session id 0, epoch 0: every partition); the
//! leader's answer opens a session; each later Fetch is incremental (the
//! session's id and next epoch) and carries only the partitions whose
//! fetch offset, epochs or log start changed, with the partitions left out
//! of the plan in `forgotten_topics_data`. FETCH_SESSION_ID_NOT_FOUND starts
//! over with a full fetch; any other top-level error, a lost answer, or an
//! answer that makes no sense closes the session and asks for a new one
//! (a full fetch naming the old id, epoch 0). Epochs wrap after `i32::MAX`
//! to 1, as Kafka's do.
//!
//! Invariant: `sent` is exactly what the leader holds of this session
//! after the last request it was told of; a request is built only when no
//! other is awaiting its answer.

use super::follower::{LocalEpochEnd, PlannedPartition};
use super::TopicPartitionId;
use super::{REPLICA_FETCH_MIN_BYTES, REPLICA_FETCH_RESPONSE_MAX_BYTES, REPLICA_FETCH_WAIT_MAX_MS};
use bytes::Bytes;
use kafka_protocol::error::{ParseResponseErrorCode, ResponseError};
use kafka_protocol::messages::fetch_request::{
    FetchPartition, FetchRequest, FetchTopic, ForgottenTopic, ReplicaState,
};
use kafka_protocol::messages::fetch_response::FetchResponse;
use kafka_protocol::messages::BrokerId;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Fetch names topics by id from v13; shoal's followers speak no older.
pub const FETCH_VERSION_MIN: i16 = 13;
/// The newest Fetch shoal builds (and serves: `protocol/versions.rs`).
pub const FETCH_VERSION_MAX: i16 = 18;
/// ReplicaState (replica id and broker epoch) replaces `replica_id` here.
const FETCH_VERSION_REPLICA_STATE: i16 = 15;

/// Kafka's `INVALID_SESSION_ID`: no session.
const NO_SESSION_ID: i32 = 0;
/// Kafka's `INITIAL_EPOCH`: a full fetch (opening a session).
const INITIAL_EPOCH: i32 = 0;

/// Who fetches: this broker as a follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaIdentity {
    pub replica_id: i32,
    pub broker_epoch: i64,
}

/// One partition's part of a Fetch answer, for `Followers::on_answer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionAnswer {
    pub id: TopicPartitionId,
    /// The fetch offset the leader answered (as this session last sent it).
    pub fetch_offset: i64,
    pub error: Option<ResponseError>,
    pub high_watermark_offset: i64,
    pub log_start_offset: i64,
    /// The leader's end of the epoch where our log diverges from its.
    pub diverging_epoch: Option<LocalEpochEnd>,
    pub records: Option<Bytes>,
}

/// Why a request was not built or an answer not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// The version is outside `FETCH_VERSION_MIN..=FETCH_VERSION_MAX`.
    UnsupportedVersion(i16),
    /// A request is already awaiting its answer.
    RequestInFlight,
    /// An answer came with no request awaiting one.
    NoRequestInFlight,
    /// The answer's top-level error; the session starts over.
    Response(ResponseError),
}

/// One fetch session with one leader broker (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct FetchSession {
    session_id: i32,
    /// The epoch of the next request; `INITIAL_EPOCH` makes it full.
    next_epoch: i32,
    /// Each partition as the leader holds it in the session.
    sent: BTreeMap<TopicPartitionId, PlannedPartition>,
    /// The epoch of the request awaiting its answer.
    in_flight_epoch: Option<i32>,
}

impl FetchSession {
    /// No session yet: the first request is full.
    pub fn new() -> FetchSession {
        FetchSession::default()
    }

    pub fn session_id(&self) -> i32 {
        self.session_id
    }

    /// True when the next request is full (epoch 0).
    pub fn next_is_full(&self) -> bool {
        self.next_epoch == INITIAL_EPOCH
    }

    /// The next Fetch for `planned` (a fetcher's whole plan for this
    /// leader): full, or incremental against what the session holds.
    pub fn build(
        &mut self,
        planned: &[PlannedPartition],
        replica: ReplicaIdentity,
        version: i16,
    ) -> Result<FetchRequest, SessionError> {
        if !(FETCH_VERSION_MIN..=FETCH_VERSION_MAX).contains(&version) {
            return Err(SessionError::UnsupportedVersion(version));
        }
        if self.in_flight_epoch.is_some() {
            return Err(SessionError::RequestInFlight);
        }
        let next: BTreeMap<TopicPartitionId, PlannedPartition> =
            planned.iter().map(|p| (p.id, *p)).collect();
        let (changed, forgotten): (Vec<&PlannedPartition>, Vec<TopicPartitionId>) =
            if self.next_is_full() {
                (next.values().collect(), Vec::new())
            } else {
                let changed = next
                    .values()
                    .filter(|p| self.sent.get(&p.id) != Some(*p))
                    .collect();
                let forgotten = self
                    .sent
                    .keys()
                    .filter(|id| !next.contains_key(id))
                    .copied()
                    .collect();
                (changed, forgotten)
            };
        let request = FetchRequest::default()
            .with_max_wait_ms(REPLICA_FETCH_WAIT_MAX_MS)
            .with_min_bytes(REPLICA_FETCH_MIN_BYTES)
            .with_max_bytes(REPLICA_FETCH_RESPONSE_MAX_BYTES)
            .with_session_id(self.session_id)
            .with_session_epoch(self.next_epoch)
            .with_topics(fetch_topics(&changed))
            .with_forgotten_topics_data(forgotten_topics(&forgotten));
        let request = with_replica(request, replica, version);
        self.sent = next;
        self.in_flight_epoch = Some(self.next_epoch);
        Ok(request)
    }

    /// The request built last was not answered (connection lost, timeout),
    /// or its answer did not fit what this side holds: close the session
    /// and ask for a new one with the next request (a full fetch).
    pub fn start_over(&mut self) {
        self.in_flight_epoch = None;
        self.next_epoch = INITIAL_EPOCH;
    }

    /// The leader's answer to the request built last: the session moves
    /// on (or starts over), and each partition answered becomes a
    /// `PartitionAnswer`. Partitions the session does not hold are dropped.
    pub fn on_response(
        &mut self,
        response: &FetchResponse,
    ) -> Result<Vec<PartitionAnswer>, SessionError> {
        let sent_epoch = self
            .in_flight_epoch
            .take()
            .ok_or(SessionError::NoRequestInFlight)?;
        if let Some(error) = response.error_code.err() {
            if error == ResponseError::FetchSessionIdNotFound {
                self.session_id = NO_SESSION_ID;
            }
            self.next_epoch = INITIAL_EPOCH;
            return Err(SessionError::Response(error));
        }
        if response.session_id == NO_SESSION_ID {
            // Sessionless (the leader made none) or closed by the leader.
            self.session_id = NO_SESSION_ID;
            self.next_epoch = INITIAL_EPOCH;
        } else if sent_epoch == INITIAL_EPOCH {
            self.session_id = response.session_id;
            self.next_epoch = next_epoch(INITIAL_EPOCH);
        } else if response.session_id == self.session_id {
            self.next_epoch = next_epoch(sent_epoch);
        } else {
            // An incremental answer from another session: start over.
            self.next_epoch = INITIAL_EPOCH;
            return Ok(Vec::new());
        }
        Ok(self.answers(response))
    }

    fn answers(&self, response: &FetchResponse) -> Vec<PartitionAnswer> {
        let mut answers = Vec::new();
        for topic in &response.responses {
            for data in &topic.partitions {
                let id = TopicPartitionId {
                    topic_id: topic.topic_id,
                    partition: data.partition_index,
                };
                let Some(sent) = self.sent.get(&id) else {
                    continue;
                };
                let diverging = &data.diverging_epoch;
                answers.push(PartitionAnswer {
                    id,
                    fetch_offset: sent.fetch_offset,
                    error: data.error_code.err(),
                    high_watermark_offset: data.high_watermark,
                    log_start_offset: data.log_start_offset,
                    diverging_epoch: (diverging.epoch >= 0 && diverging.end_offset >= 0).then_some(
                        LocalEpochEnd {
                            epoch: diverging.epoch,
                            end_offset: diverging.end_offset,
                        },
                    ),
                    records: data.records.clone(),
                });
            }
        }
        answers
    }
}

/// Kafka's `FetchMetadata.nextEpoch`: after `i32::MAX` comes 1 (0 is the
/// full fetch's).
pub fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

/// Who is fetching, as each version says it.
fn with_replica(request: FetchRequest, replica: ReplicaIdentity, version: i16) -> FetchRequest {
    if version >= FETCH_VERSION_REPLICA_STATE {
        request.with_replica_id(BrokerId(-1)).with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(replica.replica_id))
                .with_replica_epoch(replica.broker_epoch),
        )
    } else {
        request.with_replica_id(BrokerId(replica.replica_id))
    }
}

/// Partitions grouped by topic id, in order.
fn fetch_topics(partitions: &[&PlannedPartition]) -> Vec<FetchTopic> {
    let mut topics: BTreeMap<Uuid, Vec<FetchPartition>> = BTreeMap::new();
    for p in partitions {
        topics.entry(p.id.topic_id).or_default().push(
            FetchPartition::default()
                .with_partition(p.id.partition)
                .with_current_leader_epoch(p.current_leader_epoch)
                .with_fetch_offset(p.fetch_offset)
                .with_last_fetched_epoch(p.last_fetched_epoch)
                .with_log_start_offset(p.log_start_offset)
                .with_partition_max_bytes(p.partition_max_bytes),
        );
    }
    topics
        .into_iter()
        .map(|(topic_id, partitions)| {
            FetchTopic::default()
                .with_topic_id(topic_id)
                .with_partitions(partitions)
        })
        .collect()
}

fn forgotten_topics(ids: &[TopicPartitionId]) -> Vec<ForgottenTopic> {
    let mut topics: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for id in ids {
        topics.entry(id.topic_id).or_default().push(id.partition);
    }
    topics
        .into_iter()
        .map(|(topic_id, partitions)| {
            ForgottenTopic::default()
                .with_topic_id(topic_id)
                .with_partitions(partitions)
        })
        .collect()
}
