//! An observer's side of the metadata fetch (`fetch.rs`): one request at a
//! time to one voter's CONTROLLER listener, on a connection kept while
//! the observer asks the same voter. `FetchClient` runs on a glommio
//! executor (the observer's task, `shard/observer.rs`); `fetch_blocking`
//! asks once on a plain socket, for serve's catch-up before any shard runs.
//!
//! Invariants: every answer is awaited at most the voter's wait plus
//! `QUORUM_REQUEST_TIMEOUT_MS`; every frame read is checked against
//! `CONTROLLER_FRAME_BYTES_MAX` before it is allocated; nothing read from
//! a socket is unwrapped; a failed request drops its connection.

use std::io::{self, Read, Write};
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::channel::{connect_to, read_frame, within, CONNECTION_SETUP_TIMEOUT_MS};
use super::fetch::{self, FetchRequest, FetchResponse};
use super::link::{LinkSecurity, LinkStream};
use super::wire::CONTROLLER_FRAME_BYTES_MAX;
use crate::config::Voter;
use crate::protocol::frame::{self, SIZE_PREFIX_BYTES};

/// Kafka's `controller.quorum.request.timeout.ms` default: how long an
/// answer may take beyond the wait the request asked the voter for.
pub const QUORUM_REQUEST_TIMEOUT_MS: u64 = 2_000;

/// The request header's client id of an observer's fetches.
const CLIENT_ID: &str = "shoal-observer";

/// The observer's connection, to the voter it last asked.
pub struct FetchClient {
    connection: Option<(i32, LinkStream)>,
    correlation_id: i32,
    /// How connections to the voters are secured (`link.rs`).
    security: Arc<LinkSecurity>,
}

impl FetchClient {
    pub fn new(security: Arc<LinkSecurity>) -> FetchClient {
        FetchClient {
            connection: None,
            correlation_id: 0,
            security,
        }
    }

    /// Asks `voter` for the log after `request.after_index`; an error
    /// drops the connection, so the next request connects afresh.
    pub async fn fetch(
        &mut self,
        voter: &Voter,
        request: FetchRequest,
    ) -> io::Result<FetchResponse> {
        let deadline = Instant::now() + answer_timeout(&request);
        let answer = self.attempt(voter, request, deadline).await;
        if answer.is_err() {
            self.connection = None;
        }
        answer
    }

    async fn attempt(
        &mut self,
        voter: &Voter,
        request: FetchRequest,
        deadline: Instant,
    ) -> io::Result<FetchResponse> {
        if self.connection.as_ref().map(|(id, _)| *id) != Some(voter.id) {
            self.connection = None;
            let stream = connect_to(voter, deadline, &self.security, CLIENT_ID).await?;
            self.connection = Some((voter.id, stream));
        }
        let Some((_, stream)) = self.connection.as_mut() else {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "no connection"));
        };
        let correlation_id = self.correlation_id;
        self.correlation_id = correlation_id.wrapping_add(1);
        let frame = fetch::encode_request(&request, correlation_id);
        let answer = within(deadline, async {
            stream.write_all(&frame).await?;
            read_frame(stream).await
        })
        .await?;
        decode(&answer, correlation_id)
    }
}

/// How long the voter may hold the request, and then the answer travel.
fn answer_timeout(request: &FetchRequest) -> Duration {
    Duration::from_millis(u64::from(request.max_wait_ms) + QUORUM_REQUEST_TIMEOUT_MS)
}

fn decode(answer: &Bytes, correlation_id: i32) -> io::Result<FetchResponse> {
    let (answered, response) = fetch::decode_response(answer)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error.to_string()))?;
    if answered != correlation_id {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("correlation id {answered} answers request {correlation_id}"),
        ));
    }
    Ok(response)
}

/// Asks `voter` once on a blocking socket (serve's catch-up, before any
/// reactor runs), in PLAINTEXT: a secured CONTROLLER listener is asked
/// through a `FetchClient` on an executor of its own instead
/// (`shard::observer`).
pub fn fetch_blocking(voter: &Voter, request: &FetchRequest) -> io::Result<FetchResponse> {
    let address = voter
        .address()
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
    let mut stream = std::net::TcpStream::connect_timeout(
        &address,
        Duration::from_millis(CONNECTION_SETUP_TIMEOUT_MS),
    )?;
    let timeout = answer_timeout(request);
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(&fetch::encode_request(request, 0))?;
    let mut prefix = [0u8; SIZE_PREFIX_BYTES];
    stream.read_exact(&mut prefix)?;
    let size_bytes = frame::frame_size(prefix, CONTROLLER_FRAME_BYTES_MAX)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error.to_string()))?;
    let mut answer = vec![0u8; size_bytes];
    stream.read_exact(&mut answer)?;
    decode(&Bytes::from(answer), 0)
}
