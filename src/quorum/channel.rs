//! A broker's way to the active controller (Kafka's
//! `NodeToControllerChannelManager`): one Kafka request at a time, sent on
//! one connection to a voter's CONTROLLER listener, its response decoded.
//!
//! Whom to ask: the quorum leader this node knows (`LeaderFn`, the local
//! voter's view), else the voters of `controller.quorum.voters` in turn. A
//! connection that fails, an answer that does not come within the
//! attempt's time, or one that says NOT_CONTROLLER (`ControllerResponse`)
//! drops the connection and moves to the next voter after Kafka's
//! reconnect backoff (doubling to its max), until the call's
//! `request_timeout_ms` runs out. The voter that answered is kept for the
//! next call (`controller_id`).
//!
//! Invariants: one request in flight (a semaphore of one), at most
//! `WAITING_CALLERS_MAX` callers waiting behind it (more are refused with
//! `ChannelError::Busy`, never queued without bound); every frame read is
//! checked against `CONTROLLER_FRAME_BYTES_MAX` before it is allocated;
//! every wait is bounded by the call's deadline; nothing read from a
//! socket is unwrapped.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::ToSocketAddrs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    AllocateProducerIdsResponse, AlterPartitionResponse, ApiKey, BrokerHeartbeatResponse,
    BrokerRegistrationResponse, EnvelopeResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

use super::link::{self, LinkSecurity, LinkStream};
use super::transport::{RECONNECT_BACKOFF_MAX_MS, RECONNECT_BACKOFF_MS};
use super::wire::CONTROLLER_FRAME_BYTES_MAX;
use crate::config::Voter;
use crate::protocol::frame::SIZE_PREFIX_BYTES;

/// Callers waiting for the one request in flight. A broker sends a
/// heartbeat every interval and, later, forwarded admin requests; more
/// than this waiting means the controller is unreachable, and the callers
/// are better told at once than queued.
pub const WAITING_CALLERS_MAX: usize = 64;

/// Kafka's `socket.connection.setup.timeout.ms` default, cut to the call's
/// deadline when that is nearer.
pub(super) const CONNECTION_SETUP_TIMEOUT_MS: u64 = 10_000;

/// The quorum leader this node knows, if any.
pub type LeaderFn = Rc<dyn Fn() -> Option<i32>>;

/// A controller's response that can say "not me": the channel then tries
/// the next voter. Implemented for the APIs brokers send the controller.
pub trait ControllerResponse {
    fn not_controller(&self) -> bool;
}

macro_rules! controller_response {
    ($($response:ty),*) => {$(
        impl ControllerResponse for $response {
            fn not_controller(&self) -> bool {
                self.error_code == ResponseError::NotController.code()
            }
        }
    )*};
}

controller_response!(
    BrokerRegistrationResponse,
    BrokerHeartbeatResponse,
    EnvelopeResponse,
    AllocateProducerIdsResponse,
    AlterPartitionResponse
);

/// Why a call got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelError {
    /// `WAITING_CALLERS_MAX` callers already wait.
    Busy,
    /// No voter answered as the controller within the call's time; the
    /// last failure.
    TimedOut(String),
    /// The request does not encode at that version.
    Encode(String),
}

impl std::fmt::Display for ChannelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChannelError::Busy => write!(
                f,
                "{WAITING_CALLERS_MAX} requests already wait for the controller"
            ),
            ChannelError::TimedOut(last) => write!(f, "no controller answered: {last}"),
            ChannelError::Encode(error) => write!(f, "request does not encode: {error}"),
        }
    }
}

/// Who the channel is and whom it may ask.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    /// The request header's client id (Kafka's brokers send
    /// `broker-<id>-to-controller-...`).
    pub client_id: String,
    /// `controller.quorum.voters`.
    pub voters: Vec<Voter>,
    /// How long one call may take, every retry included.
    pub request_timeout_ms: u64,
    /// How the connections to the controllers are secured (`link.rs`).
    pub security: Arc<LinkSecurity>,
}

/// The open connection and the voter it reaches.
struct Connection {
    stream: LinkStream,
    voter_id: i32,
}

/// The channel; lives on one glommio executor.
pub struct ControllerChannel {
    config: ChannelConfig,
    leader: LeaderFn,
    in_flight: Semaphore,
    waiting: Cell<usize>,
    connection: RefCell<Option<Connection>>,
    /// The voter to try when no leader is known: index into the voters.
    next_voter: Cell<usize>,
    correlation_id: Cell<i32>,
    controller_id: Cell<Option<i32>>,
}

impl ControllerChannel {
    pub fn new(config: ChannelConfig, leader: LeaderFn) -> ControllerChannel {
        ControllerChannel {
            config,
            leader,
            in_flight: Semaphore::new(1),
            waiting: Cell::new(0),
            connection: RefCell::new(None),
            next_voter: Cell::new(0),
            correlation_id: Cell::new(0),
            controller_id: Cell::new(None),
        }
    }

    /// The voter that answered the last call as the controller.
    pub fn controller_id(&self) -> Option<i32> {
        self.controller_id.get()
    }

    /// Sends `request` at `version` to the active controller and returns
    /// its response, trying voters until one answers as the controller or
    /// the call's time runs out.
    pub async fn call<R>(&self, request: R, version: i16) -> Result<R::Response, ChannelError>
    where
        R: Request,
        R::Response: ControllerResponse,
    {
        if self.waiting.get() >= WAITING_CALLERS_MAX {
            return Err(ChannelError::Busy);
        }
        self.waiting.set(self.waiting.get() + 1);
        let permit = self.in_flight.acquire_permit(1).await;
        self.waiting.set(self.waiting.get() - 1);
        let Ok(_permit) = permit else {
            return Err(ChannelError::TimedOut("the channel is closed".to_string()));
        };
        let api_key = ApiKey::try_from(R::KEY)
            .map_err(|()| ChannelError::Encode(format!("unknown api key {}", R::KEY)))?;
        let mut body = BytesMut::new();
        request
            .encode(&mut body, version)
            .map_err(|error| ChannelError::Encode(error.to_string()))?;
        let body = body.freeze();
        let deadline = Instant::now() + Duration::from_millis(self.config.request_timeout_ms);
        let mut backoff_ms = RECONNECT_BACKOFF_MS;
        loop {
            let failure = match self.attempt::<R>(api_key, version, &body, deadline).await {
                Ok(response) if !response.not_controller() => return Ok(response),
                Ok(_) => "NOT_CONTROLLER".to_string(),
                Err(error) => error.to_string(),
            };
            // The next connection goes to the next voter (`connect`
            // moved on when it chose this one).
            let failed = self.connection.borrow_mut().take();
            log::debug!(
                "controller channel: voter {:?}: {failure}",
                failed.map(|failed| failed.voter_id)
            );
            self.controller_id.set(None);
            let now = Instant::now();
            let pause = Duration::from_millis(backoff_ms);
            if now + pause >= deadline {
                return Err(ChannelError::TimedOut(failure));
            }
            glommio::timer::sleep(pause).await;
            backoff_ms = (backoff_ms * 2).min(RECONNECT_BACKOFF_MAX_MS);
        }
    }

    /// One try: connects if need be, writes the request, reads its answer.
    async fn attempt<R: Request>(
        &self,
        api_key: ApiKey,
        version: i16,
        body: &Bytes,
        deadline: Instant,
    ) -> io::Result<R::Response> {
        if self.connection.borrow().is_none() {
            let connection = self.connect(deadline).await?;
            *self.connection.borrow_mut() = Some(connection);
        }
        let correlation_id = self.correlation_id.get();
        self.correlation_id.set(correlation_id.wrapping_add(1));
        let frame = request_frame(
            api_key,
            version,
            correlation_id,
            &self.config.client_id,
            body,
        )?;
        let mut connection = self.connection.borrow_mut().take().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "no connection to a controller")
        })?;
        let answer = within(deadline, async {
            connection.stream.write_all(&frame).await?;
            read_frame(&mut connection.stream).await
        })
        .await;
        let voter_id = connection.voter_id;
        *self.connection.borrow_mut() = Some(connection);
        let mut answer = answer?;
        let header = ResponseHeader::decode(&mut answer, api_key.response_header_version(version))
            .map_err(|error| invalid(error.to_string()))?;
        if header.correlation_id != correlation_id {
            return Err(invalid(format!(
                "correlation id {} answers request {correlation_id}",
                header.correlation_id
            )));
        }
        let response = decode::<R::Response>(&mut answer, version)?;
        self.controller_id.set(Some(voter_id));
        Ok(response)
    }

    /// Connects to the leader this node knows, else to the next voter.
    async fn connect(&self, deadline: Instant) -> io::Result<Connection> {
        let voters = &self.config.voters;
        let known = (self.leader)().and_then(|id| voters.iter().find(|voter| voter.id == id));
        let voter = match known {
            Some(voter) => voter,
            None => voters
                .get(self.next_voter.get() % voters.len().max(1))
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no voters"))?,
        };
        self.next_voter.set(self.voter_after(voter.id));
        Ok(Connection {
            stream: connect_to(
                voter,
                deadline,
                &self.config.security,
                &self.config.client_id,
            )
            .await?,
            voter_id: voter.id,
        })
    }

    /// The index of the voter after `voter_id`, to try next.
    fn voter_after(&self, voter_id: i32) -> usize {
        let voters = &self.config.voters;
        voters
            .iter()
            .position(|voter| voter.id == voter_id)
            .map_or(0, |at| (at + 1) % voters.len().max(1))
    }
}

/// A connection to `voter`'s CONTROLLER listener, made and secured as
/// `security` says by `deadline`.
pub(super) async fn connect_to(
    voter: &Voter,
    deadline: Instant,
    security: &LinkSecurity,
    client_id: &str,
) -> io::Result<LinkStream> {
    link::connect(&voter.address(), deadline, security, client_id).await
}

/// A connection to `address` (host:port), made by `deadline`, with
/// Nagle's algorithm off.
pub(crate) async fn connect_address(address: &str, deadline: Instant) -> io::Result<TcpStream> {
    let address = address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
    let setup = deadline
        .saturating_duration_since(Instant::now())
        .min(Duration::from_millis(CONNECTION_SETUP_TIMEOUT_MS))
        .max(Duration::from_millis(1));
    let stream = TcpStream::connect_timeout(address, setup)
        .await
        .map_err(io::Error::from)?;
    stream.set_nodelay(true).map_err(io::Error::from)?;
    Ok(stream)
}

/// The framed request: size, header, body.
pub(crate) fn request_frame(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &Bytes,
) -> io::Result<Bytes> {
    let mut header = RequestHeader::default();
    header.request_api_key = api_key as i16;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    header.client_id = Some(StrBytes::from_string(client_id.to_string()));
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    header
        .encode(&mut frame, api_key.request_header_version(version))
        .map_err(|error| invalid(error.to_string()))?;
    frame.put_slice(body);
    let size = i32::try_from(frame.len() - SIZE_PREFIX_BYTES)
        .map_err(|_| invalid("request over 2 GiB".to_string()))?;
    frame[..SIZE_PREFIX_BYTES].copy_from_slice(&size.to_be_bytes());
    Ok(frame.freeze())
}

/// The next frame without its size prefix, its size checked first.
pub(super) async fn read_frame(stream: &mut LinkStream) -> io::Result<Bytes> {
    stream.read_frame(CONTROLLER_FRAME_BYTES_MAX).await
}

/// `future`, or a timed-out error at `deadline`.
pub(crate) async fn within<T>(
    deadline: Instant,
    future: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    let wait = deadline.saturating_duration_since(Instant::now());
    futures_lite::future::or(future, async {
        glommio::timer::sleep(wait).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no answer within the request timeout",
        ))
    })
    .await
}

pub(crate) fn decode<T: Decodable>(bytes: &mut Bytes, version: i16) -> io::Result<T> {
    // The crate's decoders may panic on hostile input (protocol::frame).
    match catch_unwind(AssertUnwindSafe(|| T::decode(bytes, version))) {
        Ok(Ok(decoded)) => Ok(decoded),
        Ok(Err(error)) => Err(invalid(error.to_string())),
        Err(_) => Err(invalid("malformed response".to_string())),
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}
