//! Client quotas on a connection (KIP-219): what a request costs is
//! recorded against the quota that holds for the connection's user and
//! the request's client id (`quota::precedence`), on the shard's sensors
//! (`quota::ShardQuotas`, which hear the other shards' rates). Past the
//! quota, the answer goes out at once with `throttle_time_ms` set, and
//! the connection reads no further request until that time has passed.
//!
//! - Produce: the request's bytes (`producer_byte_rate`), recorded once
//!   the batches are appended, as Kafka records them.
//! - Fetch from a consumer: the response's record bytes
//!   (`consumer_byte_rate`); a throttled fetch is answered with no data
//!   (its bytes are taken back), as Kafka's `getThrottledResponse`.
//! - Any request: the time the shard spent running its handler (the
//!   polls of its future: not the waits for the disk or other shards),
//!   in percent of one thread (`request_percentage`), throttled at most
//!   one quota window, as Kafka's `ClientRequestQuotaManager`. Measured
//!   once the answer is made, it mutes the connection but is not in that
//!   answer's `throttle_time_ms`; produce and fetch answers carry their
//!   byte quota's throttle. Follower fetches and WriteTxnMarkers are
//!   exempt, as Kafka exempts cluster actions.
//! - CreateTopics, CreatePartitions, DeleteTopics: the partitions they
//!   create or delete (`controller_mutation_rate`), counted by the active
//!   controller (`quota::mutation`), whose throttle time the answer
//!   carries. A node that forwarded the request mutes its client's
//!   connection for the throttle time of the answer it relays, as Kafka's
//!   broker throttles a forwarded request's channel.
//!
//! Invariant: with no quota of a kind in the metadata, a request costs
//! one map lookup for it: nothing is measured, parsed or allocated.

use std::cell::Cell;
use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader};

use super::connection::ConnectionContext;
use super::handlers::{self, CloseReason, Response};
use crate::metadata::quotas::{CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE, REQUEST_PERCENTAGE};
use crate::protocol::frame::{self, Request};
use crate::quota::mutation::Mutator;
use crate::quota::{QuotaKind, Recorded};

/// Kafka's conversion of handler time to a share of one thread: a whole
/// second of it is 100 percent.
const PERCENT_PER_NANO: f64 = 100.0 / 1e9;
/// Fetch v15+ names a follower in `replica_state` (KIP-903).
const REPLICA_STATE_VERSION: i16 = 15;

/// When a throttled connection may read its next request.
#[derive(Debug, Default)]
pub struct ConnectionThrottle {
    muted_until: Cell<Option<Instant>>,
}

impl ConnectionThrottle {
    /// Reads nothing more for `throttle_ms` (or longer, if already muted
    /// for longer).
    pub fn mute_for(&self, throttle_ms: u64) {
        if throttle_ms == 0 {
            return;
        }
        let until = Instant::now() + Duration::from_millis(throttle_ms);
        if self.muted_until.get().is_none_or(|muted| muted < until) {
            self.muted_until.set(Some(until));
        }
    }

    /// Waits out the mute, if any.
    pub async fn wait(&self) {
        while let Some(until) = self.muted_until.get() {
            let now = Instant::now();
            if until <= now {
                self.muted_until.set(None);
                return;
            }
            glommio::timer::sleep(until - now).await;
        }
    }
}

/// The client id a request names ("" when none).
fn client_id(header: &RequestHeader) -> &str {
    header.client_id.as_ref().map_or("", |id| id.as_str())
}

/// Records `value` of `kind` for the connection and the request's client,
/// mutes the connection for the throttle; the throttle and what was
/// recorded. Nothing when no quota of `kind` is set.
fn record(
    context: &ConnectionContext,
    kind: QuotaKind,
    key: &str,
    client: &str,
    value: f64,
) -> (u64, Option<Recorded>) {
    let view = context.shard.view();
    if !view.quotas.has_key(key) {
        return (0, None);
    }
    let principal = context.principal.borrow().clone();
    let (throttle_ms, recorded) =
        context
            .shard
            .quotas
            .record(&view.quotas, kind, &principal, client, value);
    context.throttle.mute_for(throttle_ms);
    (throttle_ms, recorded)
}

/// The millis as a response's `throttle_time_ms`.
fn as_field(throttle_ms: u64) -> i32 {
    i32::try_from(throttle_ms).unwrap_or(i32::MAX)
}

/// A produce request of `request_bytes`: its throttle time.
pub fn produce(context: &ConnectionContext, header: &RequestHeader, request_bytes: usize) -> i32 {
    let (throttle_ms, _) = record(
        context,
        QuotaKind::Produce,
        PRODUCER_BYTE_RATE,
        client_id(header),
        request_bytes as f64,
    );
    as_field(throttle_ms)
}

/// A consumer's fetch answering `response_bytes`: its throttle time; when
/// throttled, the bytes are taken back (the answer carries none).
pub fn fetch(context: &ConnectionContext, header: &RequestHeader, response_bytes: usize) -> i32 {
    let (throttle_ms, recorded) = record(
        context,
        QuotaKind::Fetch,
        CONSUMER_BYTE_RATE,
        client_id(header),
        response_bytes as f64,
    );
    if throttle_ms > 0 {
        if let Some(recorded) = recorded {
            context.shard.quotas.unrecord(&recorded);
        }
    }
    as_field(throttle_ms)
}

/// Who a mutation request (CreateTopics, CreatePartitions, DeleteTopics)
/// of `header` is measured as: strict from `strict_since_version`.
pub fn mutator(
    context: &ConnectionContext,
    header: &RequestHeader,
    strict_since_version: i16,
) -> Mutator {
    Mutator {
        principal: context.principal.borrow().to_string(),
        client_id: client_id(header).to_string(),
        strict: header.request_api_version >= strict_since_version,
    }
}

/// The controller mutation quota's throttle time: the connection is
/// muted for it; the answer's `throttle_time_ms`.
pub fn mutation(context: &ConnectionContext, throttle_ms: u64) -> i32 {
    context.throttle.mute_for(throttle_ms);
    as_field(throttle_ms)
}

/// A mutation request's answer relayed from the controller
/// (`forward`): its throttle time mutes the client's connection here.
pub fn relayed(context: &ConnectionContext, api_key: ApiKey, version: i16, response: &Bytes) {
    if !MUTATION_APIS.contains(&api_key) {
        return;
    }
    let throttle_ms = relayed_throttle_ms(api_key, version, response.clone()).unwrap_or(0);
    context
        .throttle
        .mute_for(u64::try_from(throttle_ms).unwrap_or(0));
}

/// The APIs the controller mutation quota measures.
const MUTATION_APIS: [ApiKey; 3] = [
    ApiKey::CreateTopics,
    ApiKey::CreatePartitions,
    ApiKey::DeleteTopics,
];

/// The `throttle_time_ms` of a response (its header and body, without the
/// size prefix) of one of `MUTATION_APIS`; `None` when it does not decode.
fn relayed_throttle_ms(api_key: ApiKey, version: i16, mut response: Bytes) -> Option<i32> {
    use kafka_protocol::messages::{
        CreatePartitionsResponse, CreateTopicsResponse, DeleteTopicsResponse, ResponseHeader,
    };
    use kafka_protocol::protocol::Decodable;
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        ResponseHeader::decode(&mut response, api_key.response_header_version(version)).ok()?;
        match api_key {
            ApiKey::CreateTopics => CreateTopicsResponse::decode(&mut response, version)
                .ok()
                .map(|body| body.throttle_time_ms),
            ApiKey::CreatePartitions => CreatePartitionsResponse::decode(&mut response, version)
                .ok()
                .map(|body| body.throttle_time_ms),
            ApiKey::DeleteTopics => DeleteTopicsResponse::decode(&mut response, version)
                .ok()
                .map(|body| body.throttle_time_ms),
            _ => None,
        }
    }));
    decoded.ok().flatten()
}

/// Runs the request in `frame` (`handlers::dispatch`), measuring the
/// shard's time in its handler against `request_percentage` when such a
/// quota is set.
pub async fn dispatch(context: &ConnectionContext, frame: Bytes) -> Result<Response, CloseReason> {
    let measured = context.shard.view().quotas.has_key(REQUEST_PERCENTAGE);
    let client = if measured {
        measured_client(&frame)
    } else {
        None
    };
    let Some(client) = client else {
        return handlers::dispatch(context, frame).await;
    };
    let (answer, spent) = timed(handlers::dispatch(context, frame)).await;
    let percent = spent.as_nanos() as f64 * PERCENT_PER_NANO;
    record(
        context,
        QuotaKind::Request,
        REQUEST_PERCENTAGE,
        &client,
        percent,
    );
    answer
}

/// Runs `future`, adding up the time spent in its polls.
async fn timed<T>(future: impl Future<Output = T>) -> (T, Duration) {
    let mut future = std::pin::pin!(future);
    let mut spent = Duration::ZERO;
    let output = std::future::poll_fn(|cx| {
        let started = Instant::now();
        let poll = future.as_mut().poll(cx);
        spent += started.elapsed();
        poll
    })
    .await;
    (output, spent)
}

/// The client id of a request the request quota applies to; `None` for
/// an exempt one (a follower's fetch, WriteTxnMarkers) or a frame that
/// does not parse (dispatch refuses it).
fn measured_client(frame: &Bytes) -> Option<String> {
    let (header, body) = frame::parse_request_header(frame).ok()?;
    let api_key = ApiKey::try_from(header.request_api_key).ok()?;
    let version = header.request_api_version;
    let exempt = match api_key {
        ApiKey::WriteTxnMarkers => true,
        ApiKey::Fetch => {
            let mut body = body;
            match frame::decode_request(api_key, version, &mut body).ok()? {
                Request::Fetch(request) if version >= REPLICA_STATE_VERSION => {
                    request.replica_state.replica_id.0 >= 0
                }
                Request::Fetch(request) => request.replica_id.0 >= 0,
                _ => false,
            }
        }
        _ => false,
    };
    (!exempt).then(|| client_id(&header).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mute_holds_the_reader_for_its_time_and_the_longest_wins() {
        crate::shard::block_on(|| async {
            let throttle = ConnectionThrottle::default();
            let started = Instant::now();
            throttle.wait().await;
            assert!(started.elapsed() < Duration::from_millis(20), "not muted");
            throttle.mute_for(60);
            throttle.mute_for(10);
            throttle.mute_for(0);
            throttle.wait().await;
            assert!(started.elapsed() >= Duration::from_millis(60));
            let again = Instant::now();
            throttle.wait().await;
            assert!(
                again.elapsed() < Duration::from_millis(20),
                "the mute is over"
            );
        });
    }
}
