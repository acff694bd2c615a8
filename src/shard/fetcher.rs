//! A follower shard's fetcher: one task per leader broker this shard
//! follows partitions of, with one connection and one fetch session
//! (KIP-227) for all of them, as DESIGN §6 batches replication: one Fetch
//! per (follower shard, leader broker) pair, not per partition.
//!
//! Each round: the pure `Followers` plans the partitions to fetch from the
//! logs' ends, the session builds the Fetch (this broker's id and broker
//! epoch as `ReplicaState`), the leader's answer becomes one decision per
//! partition, carried out on the logs: batches appended verbatim (each
//! append returns once durable, so the next fetch offset is durable), a
//! truncation to where the logs diverge, the leader's high watermark
//! taken up to this log's end. A partition answered OFFSET_OUT_OF_RANGE
//! has its leader's log start and end asked (ListOffsets, as a replica, on
//! the same connection) and is truncated to the leader's end, or started
//! over at the leader's start (Kafka's `handleOutOfRangeError`).
//!
//! Invariant: one request in flight per leader (the session's rule); a
//! failed exchange drops the connection, restarts the session with a full
//! fetch and backs off `REPLICA_FETCH_BACKOFF_MS`; a fetcher ends when
//! this shard follows nothing of its leader any more; every read is
//! bounded (`FETCH_FRAME_BYTES_MAX`) and every exchange timed
//! (`FETCH_EXCHANGE_TIMEOUT_MS`).

use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ListOffsetsResponse, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable};

use super::messages::TopicPartition;
use super::replication::own_broker_epoch;
use super::Shard;
use crate::clock::now_ms;
use crate::config::host_port;
use crate::log::{Backing, LogError, PartitionLog};
use crate::quorum::channel::request_frame;
use crate::quorum::link::{self, LinkSecurity, LinkStream};
use crate::replication::{
    follower_high_watermark, follower_log_start, leader_offsets, offsets_answer, offsets_request,
    FetchSession, FollowerDecision, LocalEpochEnd, LocalLog, OffsetsQuery, PartitionAnswer,
    ReplicaIdentity, TopicPartitionId, EARLIEST_TIMESTAMP, FETCH_VERSION_MAX, LATEST_TIMESTAMP,
    LIST_OFFSETS_VERSION, REPLICA_FETCH_BACKOFF_MS, REPLICA_FETCH_RESPONSE_MAX_BYTES,
    REPLICA_FETCH_WAIT_MAX_MS,
};

/// The largest Fetch answer read: the response's byte budget plus room
/// for the headers of every partition it may name.
const FETCH_FRAME_BYTES_MAX: usize = REPLICA_FETCH_RESPONSE_MAX_BYTES as usize + (1 << 20);

/// The largest ListOffsets answer read: a few dozen bytes per partition,
/// for at most `PARTITIONS_PER_FETCH_MAX` partitions, with room to spare.
const LIST_OFFSETS_FRAME_BYTES_MAX: usize = 1 << 20;

/// How long one Fetch may take, the leader's long poll included, before
/// the connection is given up: the long poll plus Kafka's 30 s
/// `replica.socket.timeout.ms` for the rest.
const FETCH_EXCHANGE_TIMEOUT_MS: u64 = REPLICA_FETCH_WAIT_MAX_MS as u64 + 30_000;

/// How long a fetcher with nothing ready to fetch (every partition held
/// back) sleeps before it plans again.
const IDLE_PAUSE_MS: u64 = 50;

/// The client id a follower's fetches carry, as Kafka's replica fetchers'.
const CLIENT_ID: &str = "shoal-replica-fetcher";

/// A running fetcher, as `Replication` keeps it.
pub struct Handle;

/// Starts a fetcher for each leader this shard follows and has none for.
pub fn start_missing(shard: &Rc<Shard>) {
    let leaders = shard.replication.followers.borrow().leaders();
    let started: Vec<i32> = {
        let mut fetchers = shard.replication.fetchers.borrow_mut();
        leaders
            .into_iter()
            .filter(|leader_id| fetchers.insert(*leader_id, Handle).is_none())
            .collect()
    };
    // Spawned with no borrow held: glommio polls a new task at once, and
    // `run` borrows `fetchers` when it ends.
    for leader_id in started {
        glommio::spawn_local(run(Rc::downgrade(shard), leader_id)).detach();
    }
}

/// One leader's fetcher: rounds until this shard follows nothing there.
async fn run(shard: Weak<Shard>, leader_id: i32) {
    let mut session = FetchSession::new();
    let mut link: Option<LinkStream> = None;
    let Some(security) = shard.upgrade().map(|shard| shard.to_brokers.security()) else {
        return;
    };
    let mut correlation_id: i32 = 0;
    loop {
        let Some(strong) = shard.upgrade() else {
            return;
        };
        if strong
            .replication
            .followers
            .borrow()
            .partitions_of(leader_id)
            .is_empty()
        {
            strong.replication.fetchers.borrow_mut().remove(&leader_id);
            return;
        }
        let round = prepare(&strong, leader_id, &mut session);
        drop(strong);
        let Some((request, address)) = round else {
            glommio::timer::sleep(Duration::from_millis(IDLE_PAUSE_MS)).await;
            continue;
        };
        correlation_id = correlation_id.wrapping_add(1);
        let answer = exchange::<FetchResponse>(
            (&mut link, &*security),
            &address,
            (ApiKey::Fetch, FETCH_VERSION_MAX, correlation_id),
            |body| request.encode(body, FETCH_VERSION_MAX),
            FETCH_FRAME_BYTES_MAX,
        )
        .await;
        let Some(strong) = shard.upgrade() else {
            return;
        };
        let answers = match answer {
            Ok((response, frame_bytes)) => session
                .on_response(&response)
                .map(|answers| (answers, frame_bytes))
                .map_err(|e| format!("{e:?}")),
            Err(error) => {
                session.start_over();
                Err(error.to_string())
            }
        };
        match answers {
            Ok((answers, frame_bytes)) => {
                let carried = carry_out(&strong, leader_id, answers, frame_bytes).await;
                if carried.misplaced {
                    // The leader served a position this replica is not at:
                    // what the session holds on either side disagrees, so
                    // the next Fetch is full and states every position.
                    log::warn!(
                        "replica fetcher for leader {leader_id}: an answer out of place; starting the fetch session over"
                    );
                    session.start_over();
                }
                let out_of_range = carried.out_of_range;
                if !out_of_range.is_empty() {
                    let link = Link {
                        stream: &mut link,
                        security: &security,
                        address: &address,
                        correlation_id: &mut correlation_id,
                    };
                    resolve_out_of_range(&strong, leader_id, link, out_of_range).await;
                }
            }
            Err(error) => {
                log::warn!("replica fetcher for leader {leader_id}: {error}");
                link = None;
                strong
                    .replication
                    .followers
                    .borrow_mut()
                    .on_fetch_failed(leader_id, now_ms() as i64);
                drop(strong);
                glommio::timer::sleep(Duration::from_millis(REPLICA_FETCH_BACKOFF_MS as u64)).await;
            }
        }
    }
}

/// The next Fetch to `leader_id` and the leader's address, or `None` when
/// nothing is ready to fetch (or the leader has no endpoint in the view).
fn prepare(
    shard: &Rc<Shard>,
    leader_id: i32,
    session: &mut FetchSession,
) -> Option<(FetchRequest, String)> {
    let view = shard.view();
    let address = view
        .registered
        .iter()
        .find(|broker| broker.id == leader_id)
        .and_then(|broker| broker.endpoint.clone())
        .and_then(|(host, port)| Some(host_port(&host, u16::try_from(port).ok()?)))?;
    let now = now_ms() as i64;
    let planned = shard
        .replication
        .followers
        .borrow_mut()
        .plan(leader_id, now, |id| {
            local_log(shard, id).map(|(_, log)| local_state(&log))
        });
    if planned.is_empty() {
        return None;
    }
    let identity = ReplicaIdentity {
        replica_id: view.node_id,
        broker_epoch: own_broker_epoch(&view),
    };
    match session.build(&planned, identity, FETCH_VERSION_MAX) {
        Ok(request) => Some((request, address)),
        Err(error) => {
            log::warn!("replica fetcher for leader {leader_id}: {error:?}");
            None
        }
    }
}

/// The log of the partition `id` names, if this shard has it open.
fn local_log(shard: &Shard, id: &TopicPartitionId) -> Option<(TopicPartition, Rc<PartitionLog>)> {
    let view = shard.view();
    let meta = view.topic_by_id(id.topic_id)?;
    let partition = TopicPartition::new(&meta.name, id.partition);
    let log = shard.partitions.log(&partition)?;
    Some((partition, log))
}

fn local_state(log: &PartitionLog) -> LocalLog {
    LocalLog {
        log_start_offset: log.log_start_offset(),
        log_end_offset: log.log_end_offset(),
        durable_end_offset: log.durable_end(),
        latest_epoch: log.latest_epoch(),
        high_watermark_offset: log.high_watermark(),
    }
}

/// Sends the request `encode` writes (its api key, version and
/// correlation id in `header`) on the connection, made first if need be,
/// and reads its answer (at most `frame_bytes_max`); any failure leaves
/// the connection to be dropped.
async fn exchange<R: Decodable>(
    (link, security): (&mut Option<LinkStream>, &LinkSecurity),
    address: &str,
    (api_key, version, correlation_id): (ApiKey, i16, i32),
    encode: impl FnOnce(&mut BytesMut) -> anyhow::Result<()>,
    frame_bytes_max: usize,
) -> std::io::Result<(R, usize)> {
    let deadline = Instant::now() + Duration::from_millis(FETCH_EXCHANGE_TIMEOUT_MS);
    if link.is_none() {
        *link = Some(link::connect(address, deadline, security, CLIENT_ID).await?);
    }
    let stream = link
        .as_mut()
        .ok_or_else(|| std::io::Error::other("no connection"))?;
    let mut body = BytesMut::new();
    encode(&mut body).map_err(|error| std::io::Error::other(error.to_string()))?;
    let frame = request_frame(api_key, version, correlation_id, CLIENT_ID, &body.freeze())?;
    let answer = crate::quorum::channel::within(deadline, async {
        stream.write_all(&frame).await?;
        stream.read_frame(frame_bytes_max).await
    })
    .await;
    let mut answer: Bytes = answer?;
    let frame_bytes = answer.len();
    let invalid = |message: String| std::io::Error::new(std::io::ErrorKind::InvalidData, message);
    let header = ResponseHeader::decode(&mut answer, api_key.response_header_version(version))
        .map_err(|error| invalid(error.to_string()))?;
    if header.correlation_id != correlation_id {
        return Err(invalid(format!(
            "correlation id {} answers request {correlation_id}",
            header.correlation_id
        )));
    }
    let response = R::decode(&mut answer, version).map_err(|error| invalid(error.to_string()))?;
    Ok((response, frame_bytes))
}

/// The fetcher's connection to its leader, lent to a ListOffsets exchange.
struct Link<'a> {
    stream: &'a mut Option<LinkStream>,
    security: &'a LinkSecurity,
    address: &'a str,
    correlation_id: &'a mut i32,
}

/// Asks the leader for the log start and end of the partitions `ids`
/// answered OFFSET_OUT_OF_RANGE (earliest, then latest, as a replica) and
/// carries out what `Followers::on_leader_offsets` decides for each; a
/// failed exchange drops the connection and each partition backs off.
async fn resolve_out_of_range(
    shard: &Rc<Shard>,
    leader_id: i32,
    link: Link<'_>,
    ids: Vec<TopicPartitionId>,
) {
    let (ids, queries): (Vec<TopicPartitionId>, Vec<OffsetsQuery>) = ids
        .into_iter()
        .filter_map(|id| {
            let (partition, log) = local_log(shard, &id)?;
            let query = OffsetsQuery {
                topic: partition.topic.to_string(),
                partition: partition.partition,
                current_leader_epoch: log.leader_epoch(),
            };
            Some((id, query))
        })
        .unzip();
    let replica_id = shard.view().node_id;
    let mut bounds = Vec::with_capacity(2);
    for timestamp in [EARLIEST_TIMESTAMP, LATEST_TIMESTAMP] {
        let request = offsets_request(&queries, replica_id, timestamp);
        *link.correlation_id = link.correlation_id.wrapping_add(1);
        let answer = exchange::<ListOffsetsResponse>(
            (&mut *link.stream, link.security),
            link.address,
            (
                ApiKey::ListOffsets,
                LIST_OFFSETS_VERSION,
                *link.correlation_id,
            ),
            |body| request.encode(body, LIST_OFFSETS_VERSION),
            LIST_OFFSETS_FRAME_BYTES_MAX,
        )
        .await;
        match answer {
            Ok((response, _)) => bounds.push(offsets_answer(&queries, &response)),
            Err(error) => {
                log::warn!("replica fetcher for leader {leader_id}: ListOffsets: {error}");
                *link.stream = None;
                let failed = Err(ResponseError::NetworkException);
                bounds.push(vec![failed; queries.len()]);
            }
        }
    }
    let latest = bounds.pop().unwrap_or_default();
    let earliest = bounds.pop().unwrap_or_default();
    let steps =
        ids.iter()
            .zip(earliest.into_iter().zip(latest))
            .filter_map(|(id, (earliest, latest))| {
                let (partition, log) = local_log(shard, id)?;
                let decision = shard.replication.followers.borrow_mut().on_leader_offsets(
                    leader_id,
                    id,
                    leader_offsets(earliest, latest),
                    &local_state(&log),
                    now_ms() as i64,
                );
                Some(apply(partition, log, decision, Backing::Own))
            });
    futures_util::future::join_all(steps).await;
}

/// Carries out each partition's answer: appends in parallel (each
/// durable before it returns), truncations, high watermarks. Returns the
/// partitions whose leader's offsets are to be asked
/// (`FollowerDecision::ResolveOutOfRange`).
async fn carry_out(
    shard: &Rc<Shard>,
    leader_id: i32,
    answers: Vec<PartitionAnswer>,
    frame_bytes: usize,
) -> Carried {
    // The records are slices of one response frame, charged once to this
    // shard's budget for pinned frames, as a produce request's are.
    let frame = shard.partitions.pinned_frame(frame_bytes);
    let mut out_of_range = Vec::new();
    let steps = answers.into_iter().filter_map(|answer| {
        let (partition, log) = local_log(shard, &answer.id)?;
        let local = local_state(&log);
        let decision = shard.replication.followers.borrow_mut().on_answer(
            leader_id,
            &answer,
            &local,
            |epoch| {
                log.end_offset_for_epoch(epoch)
                    .map(|(epoch, end_offset)| LocalEpochEnd { epoch, end_offset })
            },
            now_ms() as i64,
        );
        if decision == FollowerDecision::ResolveOutOfRange {
            out_of_range.push(answer.id);
        }
        Some(apply(
            partition,
            log,
            decision,
            Backing::Frame(frame.clone()),
        ))
    });
    let steps: Vec<_> = steps.collect();
    let misplaced = futures_util::future::join_all(steps)
        .await
        .into_iter()
        .any(|misplaced| misplaced);
    Carried {
        out_of_range,
        misplaced,
    }
}

/// What one answer's partitions came to, for the fetcher's loop.
struct Carried {
    /// Partitions whose leader's offsets are to be asked.
    out_of_range: Vec<TopicPartitionId>,
    /// Whether the log refused an answer's batches as not where it ends
    /// (`LogError::NotAtLogEnd`, `EpochBackward`).
    misplaced: bool,
}

/// Carries out one partition's decision on its log; `backing` is what
/// appended records lie in. True when the log refused the batches as out
/// of place.
async fn apply(
    partition: TopicPartition,
    log: Rc<PartitionLog>,
    decision: FollowerDecision,
    backing: Backing,
) -> bool {
    let outcome = match decision {
        FollowerDecision::Append {
            records,
            leader_high_watermark_offset,
            leader_log_start_offset,
        } => {
            let appended = match records.filter(|records| !records.is_empty()) {
                Some(records) => log.append_replicated(records, backing).await.map(drop),
                None => Ok(()),
            };
            let high_watermark = follower_high_watermark(
                log.high_watermark(),
                leader_high_watermark_offset,
                log.durable_end(),
            );
            if high_watermark > log.high_watermark() {
                log.advance_high_watermark(high_watermark);
            }
            match follower_log_start(
                log.log_start_offset(),
                leader_log_start_offset,
                log.high_watermark(),
            ) {
                Some(log_start_offset) if appended.is_ok() => {
                    log.delete_records(log_start_offset).await.map(drop)
                }
                _ => appended,
            }
        }
        FollowerDecision::Truncate { to_offset } => {
            log::info!(
                "replica of {}: truncating from {} to {to_offset}, where it diverges from its leader",
                partition.dir_name(),
                log.log_end_offset()
            );
            log.truncate_to(to_offset).await
        }
        FollowerDecision::TruncateFullyAndStartAt { offset } => {
            log::info!(
                "replica of {}: the leader's log starts at {offset}, past this replica's end {}; starting over there",
                partition.dir_name(),
                log.log_end_offset()
            );
            log.truncate_fully_and_start_at(offset).await
        }
        FollowerDecision::ResolveOutOfRange => {
            log::info!(
                "replica of {}: its offset {} is out of the leader's range; asking the leader's",
                partition.dir_name(),
                log.log_end_offset()
            );
            Ok(())
        }
        FollowerDecision::BackOff { error, .. } => {
            log::info!(
                "replica of {}: leader answered {error:?}",
                partition.dir_name()
            );
            Ok(())
        }
        FollowerDecision::FetchAgain
        | FollowerDecision::AwaitMetadata
        | FollowerDecision::Ignore => Ok(()),
    };
    match outcome {
        Ok(()) => false,
        Err(error) => {
            log::warn!("replica of {}: {error}", partition.dir_name());
            matches!(
                error,
                LogError::NotAtLogEnd { .. } | LogError::EpochBackward { .. }
            )
        }
    }
}
