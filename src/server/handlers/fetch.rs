//! Fetch: resolves the partitions a request names, opens or advances its
//! incremental fetch session (KIP-227, `session`), long-polls the owner
//! shards (`long_poll`), and writes the response without copying record
//! bytes (`response`). `isolation_level` 1 (read_committed) reads below each
//! partition's last stable offset and answers the aborted transactions of
//! what it read; every answer carries the LSO, as Kafka's does.
//!
//! Invariant: the handler holds no partition state; the one state it keeps
//! is this shard's session cache, touched only by this shard's thread and
//! only here. A session lives on the shard whose connection made it; a
//! client that reconnects to another shard gets FETCH_SESSION_ID_NOT_FOUND
//! and starts over, as after a broker restart.

mod long_poll;
mod response;
mod session;

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{FetchRequest, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use super::{hinted_endpoints, leader_hint, Response};
use crate::metadata::brokers::Broker;
use crate::metadata::ClusterView;
use crate::protocol::chunk::total_len;
use crate::protocol::fetch_writer::{self, FetchResponseParts, NodeEndpoint};
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::server::throttle;
use crate::shard::messages::TopicPartition;
use session::{
    IncrementalFetch, SessionCache, SessionPartition, SessionPartitions, INVALID_SESSION_ID,
};

/// Fetch v13+ names topics by id (KIP-516).
const TOPIC_IDS_VERSION: i16 = 13;
/// Fetch sessions exist from v7 (KIP-227).
const SESSIONS_VERSION: i16 = 7;
/// Session epoch of a full fetch that opens a new session.
const INITIAL_EPOCH: i32 = 0;
/// Session epoch meaning "no session" (full fetch, close any session).
const FINAL_EPOCH: i32 = -1;
/// `isolation_level` of a read_committed consumer (Fetch v4+).
const READ_COMMITTED: i8 = 1;
/// Fetch v15+ carries a follower's id and broker epoch in `ReplicaState`
/// (KIP-903) instead of `replica_id`.
const REPLICA_STATE_VERSION: i16 = 15;
/// A follower's broker epoch when its Fetch version has none.
const NO_BROKER_EPOCH: i64 = -1;

/// This shard's fetch sessions, made on first use, and the instant its
/// clock counts from.
struct ShardSessions {
    cache: SessionCache,
    started: Instant,
}

thread_local! {
    static SESSIONS: RefCell<Option<ShardSessions>> = const { RefCell::new(None) };
}

/// One partition the response may speak of.
struct Wanted {
    partition: TopicPartition,
    topic_id: uuid::Uuid,
    fetch_offset: i64,
    max_bytes: i32,
    /// The epoch of the last batch a follower holds (v12+), -1 if unknown.
    last_fetched_epoch: i32,
    /// A follower's log start offset (v5+), -1 if unknown.
    log_start_offset: i64,
    /// The leader epoch the fetcher knows (v9+), -1 if it names none.
    current_leader_epoch: i32,
    error: Option<ResponseError>,
    /// The shard that owns the partition, when it has no error.
    owner: usize,
    /// KIP-951: the leader to ask instead, and its epoch, for a partition
    /// this node does not lead.
    leader: Option<(Broker, i32)>,
    /// In an incremental fetch, the high watermark and log start offset the
    /// session last sent of this partition.
    sent: Option<(i64, i64)>,
}

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: FetchRequest,
) -> Response {
    let version = header.request_api_version;
    let view = context.shard.view();
    let wanted = resolve(&view, version, &request);
    let (session_id, mut wanted) = match open_session(context, &view, version, &request, wanted) {
        Ok(opened) => opened,
        Err(error) => return error_response(header.correlation_id, version, error),
    };
    let replica = replica_of(version, &request);
    refuse_unauthorized(context, &mut wanted, replica.is_some());
    let poll = long_poll::Poll {
        min_bytes: request.min_bytes,
        max_wait_ms: request.max_wait_ms,
        response_max_bytes: (request.max_bytes.max(0) as usize)
            .min(context.shard.config.fetch_max_bytes),
        // Taken from each request, not the session, as Kafka does; v0-v3
        // have no isolation level (0).
        read_committed: request.isolation_level == READ_COMMITTED,
        replica,
    };
    let mut outcomes = long_poll::read_until_ready(context, &wanted, &poll).await;
    response::trim_to_max_bytes(&mut outcomes, poll.response_max_bytes);
    if replica.is_none() {
        let bytes: usize = outcomes.iter().map(|o| total_len(&o.records)).sum();
        let throttle_time_ms = throttle::fetch(context, header, bytes);
        if throttle_time_ms > 0 {
            return throttled(context, header, &request, session_id, throttle_time_ms);
        }
    }
    let assembled = response::assemble(&wanted, outcomes);
    if session_id != INVALID_SESSION_ID {
        with_sessions(context, |cache, _| {
            cache.record_sent(session_id, assembled.sent)
        });
    }
    let parts = FetchResponseParts {
        session_id,
        topics: assembled.topics,
        node_endpoints: hinted_endpoints(wanted.iter().filter_map(|want| want.leader.as_ref()))
            .into_iter()
            .map(|broker| context.seen(broker))
            .map(|broker| NodeEndpoint {
                node_id: broker.id,
                host: StrBytes::from_string(broker.host),
                port: broker.port,
                rack: broker.rack.map(StrBytes::from_string),
            })
            .collect(),
        ..FetchResponseParts::default()
    };
    Response::Chunks(fetch_writer::encode_fetch_response(
        header.correlation_id,
        version,
        &parts,
    ))
}

/// Kafka's checks: a follower's fetch needs CLUSTER_ACTION on the
/// cluster, a consumer's READ on each topic; a partition refused is
/// TOPIC_AUTHORIZATION_FAILED (an unknown topic id stays UNKNOWN_TOPIC_ID:
/// it names no topic to authorize).
fn refuse_unauthorized(context: &ConnectionContext, wanted: &mut [Wanted], follower: bool) {
    if !authorize::enabled(context) {
        return;
    }
    let cluster_action = follower && authorize::cluster(context, Operation::ClusterAction);
    let mut last: Option<(Arc<str>, bool)> = None;
    for want in wanted {
        if want.error == Some(ResponseError::UnknownTopicId) {
            continue;
        }
        let allowed = match &last {
            _ if follower => cluster_action,
            Some((topic, allowed)) if *topic == want.partition.topic => *allowed,
            _ => {
                let allowed = authorize::topic(context, Operation::Read, &want.partition.topic);
                last = Some((want.partition.topic.clone(), allowed));
                allowed
            }
        };
        if !allowed {
            want.error = Some(ResponseError::TopicAuthorizationFailed);
            want.leader = None;
        }
    }
}

/// A follower's replica id and broker epoch: from v15 in `ReplicaState`,
/// before in `replica_id`; `None` for a consumer (a negative id).
fn replica_of(version: i16, request: &FetchRequest) -> Option<(i32, i64)> {
    let (replica_id, broker_epoch) = if version >= REPLICA_STATE_VERSION {
        let state = &request.replica_state;
        (state.replica_id.0, state.replica_epoch)
    } else {
        (request.replica_id.0, NO_BROKER_EPOCH)
    };
    (replica_id >= 0).then_some((replica_id, broker_epoch))
}

/// The partitions the request names, each with its owner shard, or the
/// error it earns if metadata does not know it or this node does not lead
/// it (with the leader to ask instead).
fn resolve(view: &ClusterView, version: i16, request: &FetchRequest) -> Vec<Wanted> {
    let mut wanted = Vec::new();
    for topic in &request.topics {
        let meta = if version >= TOPIC_IDS_VERSION {
            view.topic_by_id(topic.topic_id)
        } else {
            view.topic(topic.topic.0.as_str())
        };
        for partition in &topic.partitions {
            let mut owner = 0;
            let mut leader = None;
            let (name, topic_id, error) = match meta {
                Some(meta) if (0..meta.partitions).contains(&partition.partition) => {
                    let led = view.lead(meta, partition.partition, partition.current_leader_epoch);
                    let error = match led {
                        Ok(shard) => {
                            owner = shard;
                            None
                        }
                        Err(error) => {
                            leader = leader_hint(view, meta, partition.partition, error);
                            Some(error)
                        }
                    };
                    (meta.name.clone(), meta.id, error)
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
                last_fetched_epoch: partition.last_fetched_epoch,
                log_start_offset: partition.log_start_offset,
                current_leader_epoch: partition.current_leader_epoch,
                error,
                owner,
                leader,
                sent: None,
            });
        }
    }
    wanted
}

/// Kafka's session rules for one request: the session id to answer with
/// and the partitions the response covers. A full fetch (epoch 0 or -1)
/// closes the session it names, then epoch 0 opens a new one; an
/// incremental fetch covers its session's partitions.
fn open_session(
    context: &ConnectionContext,
    view: &ClusterView,
    version: i16,
    request: &FetchRequest,
    wanted: Vec<Wanted>,
) -> Result<(i32, Vec<Wanted>), ResponseError> {
    if version < SESSIONS_VERSION {
        return Ok((INVALID_SESSION_ID, wanted));
    }
    let uses_topic_ids = version >= TOPIC_IDS_VERSION;
    if request.session_epoch != INITIAL_EPOCH && request.session_epoch != FINAL_EPOCH {
        return incremental(context, view, request, uses_topic_ids, wanted);
    }
    with_sessions(context, |cache, now_ms| {
        if request.session_id != INVALID_SESSION_ID {
            cache.close(request.session_id);
        }
        if request.session_epoch == FINAL_EPOCH {
            return Ok((INVALID_SESSION_ID, wanted));
        }
        let partitions = cached(&wanted).collect();
        let id = cache.create(now_ms, uses_topic_ids, partitions, &mut random_u64);
        Ok((id, wanted))
    })
}

/// An incremental fetch: the session's partitions after this request's
/// changes, then the partitions it named that metadata does not know.
fn incremental(
    context: &ConnectionContext,
    view: &ClusterView,
    request: &FetchRequest,
    uses_topic_ids: bool,
    wanted: Vec<Wanted>,
) -> Result<(i32, Vec<Wanted>), ResponseError> {
    let update = IncrementalFetch {
        session_id: request.session_id,
        epoch: request.session_epoch,
        uses_topic_ids,
        upserts: cached(&wanted).collect(),
        forgotten: forgotten(view, request, uses_topic_ids),
    };
    let covered = with_sessions(context, |cache, now_ms| cache.update(now_ms, update))?;
    let Some(covered) = covered else {
        return Ok((INVALID_SESSION_ID, wanted));
    };
    // What the session cannot hold is answered once, from the request; all
    // the rest is the session's, each partition once.
    let uncached = wanted.into_iter().filter(|want| !is_cached(want));
    Ok((
        request.session_id,
        covered_wanted(view, covered).chain(uncached).collect(),
    ))
}

/// The session's partitions, each with its owner shard, or the error it
/// earns now, checked with the leader epoch its fetcher last named, as a
/// request naming it is (led elsewhere, an epoch behind or ahead, deleted).
fn covered_wanted(
    view: &ClusterView,
    covered: SessionPartitions,
) -> impl Iterator<Item = Wanted> + '_ {
    covered.into_iter().map(|(partition, state)| {
        let index = partition.partition;
        let (owner, error, leader) = match view.topic(&partition.topic) {
            Some(meta) if meta.id == state.topic_id || state.topic_id.is_nil() => {
                match view.lead(meta, index, state.current_leader_epoch) {
                    Ok(owner) => (owner, None, None),
                    Err(error) => (0, Some(error), leader_hint(view, meta, index, error)),
                }
            }
            _ => (0, Some(ResponseError::UnknownTopicOrPartition), None),
        };
        Wanted {
            partition,
            topic_id: state.topic_id,
            fetch_offset: state.fetch_offset,
            max_bytes: state.max_bytes,
            last_fetched_epoch: state.last_fetched_epoch,
            log_start_offset: state.log_start_offset,
            current_leader_epoch: state.current_leader_epoch,
            error,
            owner,
            leader,
            sent: Some((state.sent_high_watermark, state.sent_log_start_offset)),
        }
    })
}

/// Whether a session holds `want`: every partition of a topic metadata
/// knows, whatever its leadership error, as Kafka's session caches every
/// partition a request names. A session that left out a partition
/// answered with an error while its fetcher counts it in, or kept an older
/// position of it, would serve it from a position the fetcher no longer
/// has, or never again.
fn is_cached(want: &Wanted) -> bool {
    !matches!(
        want.error,
        Some(ResponseError::UnknownTopicId | ResponseError::UnknownTopicOrPartition)
    )
}

/// The wanted partitions a session holds (`is_cached`), as it keeps them.
fn cached(wanted: &[Wanted]) -> impl Iterator<Item = (TopicPartition, SessionPartition)> + '_ {
    wanted.iter().filter(|want| is_cached(want)).map(|want| {
        (
            want.partition.clone(),
            SessionPartition {
                log_start_offset: want.log_start_offset,
                current_leader_epoch: want.current_leader_epoch,
                ..SessionPartition::new(
                    want.topic_id,
                    want.fetch_offset,
                    want.max_bytes,
                    want.last_fetched_epoch,
                )
            },
        )
    })
}

/// The partitions the request drops from its session; a topic id metadata
/// no longer knows names nothing the session could hold.
fn forgotten(
    view: &ClusterView,
    request: &FetchRequest,
    uses_topic_ids: bool,
) -> Vec<TopicPartition> {
    let mut forgotten = Vec::new();
    for topic in &request.forgotten_topics_data {
        let name = if uses_topic_ids {
            view.topic_by_id(topic.topic_id)
                .map(|meta| meta.name.clone())
        } else {
            Some(topic.topic.0.to_string())
        };
        if let Some(name) = name {
            forgotten.extend(
                topic
                    .partitions
                    .iter()
                    .map(|&partition| TopicPartition::new(&name, partition)),
            );
        }
    }
    forgotten
}

/// Runs `f` on this shard's session cache with the shard's clock in ms.
fn with_sessions<T>(context: &ConnectionContext, f: impl FnOnce(&mut SessionCache, u64) -> T) -> T {
    SESSIONS.with(|cell| {
        let mut sessions = cell.borrow_mut();
        let sessions = sessions.get_or_insert_with(|| ShardSessions {
            cache: SessionCache::new(
                context.shard.id,
                context.shard.count(),
                context
                    .shard
                    .config
                    .max_incremental_fetch_session_cache_slots,
            ),
            started: Instant::now(),
        });
        let now_ms = sessions.started.elapsed().as_millis() as u64;
        f(&mut sessions.cache, now_ms)
    })
}

/// Random bits for session ids, from the OS (ids must not be guessable: a
/// client that guessed another's id could close its session). The low half
/// of a v4 UUID: 62 random bits under the 2 variant bits.
fn random_u64() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().1
}

/// A consumer over its `consumer_byte_rate`, as Kafka's
/// `getThrottledResponse` answers it: no partitions, the throttle time,
/// the session as it was (a session this full fetch opened is closed
/// again: its id is never told, so its answer has no session).
fn throttled(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: &FetchRequest,
    session_id: i32,
    throttle_time_ms: i32,
) -> Response {
    let opened = session_id != INVALID_SESSION_ID && request.session_epoch == INITIAL_EPOCH;
    if opened {
        with_sessions(context, |cache, _| cache.close(session_id));
    }
    let parts = FetchResponseParts {
        throttle_time_ms,
        session_id: if opened {
            INVALID_SESSION_ID
        } else {
            session_id
        },
        ..FetchResponseParts::default()
    };
    Response::Chunks(fetch_writer::encode_fetch_response(
        header.correlation_id,
        header.request_api_version,
        &parts,
    ))
}

fn error_response(correlation_id: i32, version: i16, error: ResponseError) -> Response {
    let parts = FetchResponseParts {
        error_code: error.code(),
        session_id: INVALID_SESSION_ID,
        ..FetchResponseParts::default()
    };
    Response::Chunks(fetch_writer::encode_fetch_response(
        correlation_id,
        version,
        &parts,
    ))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::TopicName;

    use super::*;
    use crate::metadata::view_tests::cluster_view;
    use crate::metadata::BrokerLayout;

    /// Partitions 0 (led here at epoch 5, asked at epochs 5, 4, 6 and
    /// none), 1 (led by broker 2 at epoch 3) and 3 (its leader fenced).
    #[test]
    fn only_partitions_led_here_are_read_and_the_others_name_their_leader() {
        let view = cluster_view(BrokerLayout::Node);
        let asked = [(0, 5), (0, 4), (0, 6), (0, -1), (1, -1), (3, -1)];
        let mut topic = FetchTopic::default();
        topic.topic = TopicName("t".to_string().into());
        topic.partitions = asked
            .iter()
            .map(|&(partition, epoch)| {
                FetchPartition::default()
                    .with_partition(partition)
                    .with_current_leader_epoch(epoch)
            })
            .collect();
        let request = FetchRequest::default().with_topics(vec![topic]);
        let wanted = resolve(&view, 12, &request);
        let errors: Vec<Option<ResponseError>> = wanted.iter().map(|want| want.error).collect();
        assert_eq!(
            errors,
            vec![
                None,
                Some(ResponseError::FencedLeaderEpoch),
                Some(ResponseError::UnknownLeaderEpoch),
                None,
                Some(ResponseError::NotLeaderOrFollower),
                Some(ResponseError::NotLeaderOrFollower),
            ]
        );
        assert_eq!(wanted[0].owner, 1, "this node's shard for partition 0");
        let hints: Vec<Option<(i32, i32)>> = wanted
            .iter()
            .map(|want| {
                want.leader
                    .as_ref()
                    .map(|(broker, epoch)| (broker.id, *epoch))
            })
            .collect();
        assert_eq!(
            hints,
            vec![None, Some((1, 5)), None, None, Some((2, 3)), None],
            "FENCED_LEADER_EPOCH and NOT_LEADER_OR_FOLLOWER name the live leader"
        );
        let endpoints = hinted_endpoints(wanted.iter().filter_map(|want| want.leader.as_ref()));
        assert_eq!(
            endpoints.iter().map(|broker| broker.id).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }
}
