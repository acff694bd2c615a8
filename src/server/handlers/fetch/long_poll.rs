//! Fetch's reads and long poll: reads every wanted partition from its owner
//! shard and, while the answer is smaller than `min_bytes`, waits for an
//! append on one of the owners and reads again. A read_committed fetch reads
//! below each partition's last stable offset and waits for that to move.
//!
//! Invariant: the wait ends at the first of `min_bytes` reached, an error in
//! any partition, nothing left to wait on, or the deadline (`max_wait_ms`,
//! capped by `MAX_WAIT_MS_MAX`); it is woken by the owners' append wake-ups,
//! never by a timer that spins. Reads only: no session or response state here.

use std::time::{Duration, Instant};

use super::super::{group_by_owner, scatter};
use super::Wanted;
use crate::protocol::chunk::total_len;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{
    FetchOutcome, FetchPart, ReadBound, ReplicaFetch, ShardReply, ShardRequest, TopicPartition,
};

/// Longest long poll honoured, whatever the client asks.
const MAX_WAIT_MS_MAX: u64 = 30_000;

/// What the request asks of the wait.
pub struct Poll {
    pub min_bytes: i32,
    pub max_wait_ms: i32,
    /// The response's byte budget (request's `max_bytes` within `fetch.max.bytes`).
    pub response_max_bytes: usize,
    /// `isolation_level` 1: reads stop at the last stable offset, and the
    /// wait is for it to move.
    pub read_committed: bool,
    /// A follower's fetch: its replica id and broker epoch.
    pub replica: Option<(i32, i64)>,
}

/// One outcome per wanted partition, in order, once the poll is satisfied
/// or its time is up.
pub async fn read_until_ready(
    context: &ConnectionContext,
    wanted: &[Wanted],
    poll: &Poll,
) -> Vec<FetchOutcome> {
    let max_wait_ms = (poll.max_wait_ms.max(0) as u64).min(MAX_WAIT_MS_MAX);
    let deadline = Instant::now() + Duration::from_millis(max_wait_ms);
    let min_bytes = poll.min_bytes.max(0) as usize;
    loop {
        let outcomes = read_all(context, wanted, poll).await;
        let now = Instant::now();
        if ready(&outcomes, min_bytes) || now >= deadline {
            return outcomes;
        }
        let timeout_ms = (deadline - now).as_millis() as u64 + 1;
        if !wait_for_append(context, wanted, &outcomes, poll, timeout_ms).await {
            return outcomes;
        }
    }
}

fn ready(outcomes: &[FetchOutcome], min_bytes: usize) -> bool {
    let total_bytes: usize = outcomes
        .iter()
        .map(|outcome| total_len(&outcome.records))
        .sum();
    total_bytes >= min_bytes || outcomes.iter().any(|outcome| outcome.error_code != 0)
}

/// Waits until an owner appends past what was read of one of its partitions,
/// or `timeout_ms` passes. False when there is nothing to wait on.
async fn wait_for_append(
    context: &ConnectionContext,
    wanted: &[Wanted],
    outcomes: &[FetchOutcome],
    poll: &Poll,
    timeout_ms: u64,
) -> bool {
    let waits: Vec<(usize, (), (TopicPartition, i64, ReadBound))> = wanted
        .iter()
        .zip(outcomes)
        .filter(|(want, _)| want.error.is_none())
        .map(|(want, outcome)| {
            let seen = outcome.bound_offset.max(want.fetch_offset);
            (
                want.owner,
                (),
                (want.partition.clone(), seen, part(want, poll).bound()),
            )
        })
        .collect();
    if waits.is_empty() {
        return false;
    }
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
    true
}

/// The read `want` asks of its owner.
fn part(want: &Wanted, poll: &Poll) -> FetchPart {
    FetchPart {
        partition: want.partition.clone(),
        offset: want.fetch_offset,
        max_bytes: (want.max_bytes.max(0) as usize).min(poll.response_max_bytes),
        read_committed: poll.read_committed,
        replica: poll.replica.map(|(replica_id, broker_epoch)| ReplicaFetch {
            replica_id,
            broker_epoch,
            last_fetched_epoch: want.last_fetched_epoch,
            log_start_offset: want.log_start_offset,
        }),
    }
}

/// Reads every wanted partition from its owner, in parallel across owners.
async fn read_all(
    context: &ConnectionContext,
    wanted: &[Wanted],
    poll: &Poll,
) -> Vec<FetchOutcome> {
    let mut outcomes: Vec<FetchOutcome> = wanted
        .iter()
        .map(|want| FetchOutcome {
            error_code: want.error.map(|error| error.code()).unwrap_or(0),
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            ..FetchOutcome::default()
        })
        .collect();
    let reads: Vec<(usize, usize, FetchPart)> = wanted
        .iter()
        .enumerate()
        .filter(|(_, want)| want.error.is_none())
        .map(|(position, want)| (want.owner, position, part(want, poll)))
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
                    last_stable_offset: -1,
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
