//! The quorum's transport on the CONTROLLER listener, on one glommio
//! executor (shard 0 of a controller): an accept loop that speaks Kafka
//! framing, and one outbound connection per other voter.
//!
//! Inbound, each frame is one of: Kafka's ApiVersions, DescribeCluster and
//! DescribeQuorum (answered from `describe`, for Kafka's tools), a Kafka
//! request the `ControllerService` hook serves (BrokerRegistration,
//! BrokerHeartbeat: the active controller's APIs, `shard::brokers`),
//! awaited before the connection's next frame is read so that answers go
//! out in request order, shoal's private MetadataFetch of an observer
//! (`fetch.rs`), answered by the voter's driver (`serve_fetches`) and
//! awaited likewise, or shoal's private batch of Raft messages
//! (`wire`), checked (the sender a
//! voter of `controller.quorum.voters` other than this node, the same
//! sender for every batch of a connection, every message from it and to
//! this node) and queued for the driver (`Inbound`). Anything else closes
//! that connection with one log line, as Kafka closes a connection that
//! sends an API its listener does not serve; other connections carry on.
//!
//! Outbound, `Transport::send` encodes each message and queues it for its
//! peer without waiting. Every queue is a `queue::BoundedQueue`: full, it
//! drops its oldest, counted and logged once per burst. Each peer's task
//! connects, writes the queue in frames, drops a connection whose writes
//! stall for `controller.quorum.request.timeout.ms`, and reconnects with
//! Kafka's backoff (`reconnect.backoff.ms` doubling to
//! `reconnect.backoff.max.ms`, without Kafka's jitter: a few voters do not
//! make a thundering herd).
//!
//! Every frame past the login is checked against Kafka's authorization
//! matrix for the principal the login gave (`authorize.rs`).
//!
//! Invariants: every queue, frame, connection count and the bytes of all
//! frames being read together are bounded; nothing read from a socket is
//! unwrapped; dropping the `Transport` stops every task it started and
//! closes every socket.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::LocalBoxFuture;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::{TcpListener, TcpStream};
use glommio::task::JoinHandle;
use glommio::Task;
use kafka_protocol::messages::{
    ApiKey, DescribeClusterRequest, DescribeQuorumRequest, RequestHeader,
};
use kafka_protocol::protocol::Decodable;
use log::{info, warn};
use protobuf::Message as _;
use raft::eraftpb::Message;

use super::authorize::{self, Caller, ClusterAuthorizer};
use super::describe::{self, QuorumStatus};
use super::fetch::{self, FetchRequest, FetchResponse, METADATA_FETCH_API_KEY};
use super::gate::{ControllerGate, InboundStream};
use super::link::{self, LinkSecurity, LinkStream};
use super::queue::BoundedQueue;
use super::wire::{self, CONTROLLER_FRAME_BYTES_MAX, RAFT_MESSAGES_API_KEY};
use crate::clock::now_ms;
use crate::config::Voter;
use crate::protocol::frame::{self, SIZE_PREFIX_BYTES};
use crate::security::acl::Operation;

/// Kafka's `reconnect.backoff.ms` default: the wait after a first failed
/// connection to a peer.
pub const RECONNECT_BACKOFF_MS: u64 = 50;
/// Kafka's `reconnect.backoff.max.ms` default: the backoff doubles up to it.
pub const RECONNECT_BACKOFF_MAX_MS: u64 = 1_000;
/// Kafka's `socket.connection.setup.timeout.ms` default.
const CONNECTION_SETUP_TIMEOUT_MS: u64 = 10_000;
/// Kafka's `controller.quorum.request.timeout.ms` default. A write to a
/// peer blocked this long means the peer reads nothing (stopped, cut off):
/// the connection is dropped and made again, so a peer that comes back
/// starts from fresh messages, not from a stale socket buffer.
const QUORUM_REQUEST_TIMEOUT_MS: u64 = 2_000;
/// Kafka's `connections.max.idle.ms` default: an inbound connection that
/// sends nothing this long is closed.
const CONNECTIONS_MAX_IDLE_MS: u64 = 600_000;

/// Messages queued for one peer. Raft sends a few per tick per peer
/// (heartbeat, append, their responses); a thousand is seconds of a
/// disconnected peer, after which the oldest are worthless anyway.
pub const PEER_QUEUE_MESSAGES_MAX: usize = 1_024;
/// Bytes queued for one peer: two frames' worth, so a peer's backlog can
/// never pin more than that however large its messages are.
pub const PEER_QUEUE_BYTES_MAX: usize = 2 * CONTROLLER_FRAME_BYTES_MAX;
/// Messages received and not yet taken by the driver. The driver drains
/// them every tick; if it lags this far behind, the oldest are dropped
/// (the senders' Raft resends) rather than buffered without bound.
pub const INBOUND_MESSAGES_MAX: usize = 4_096;
/// Their bytes: two frames' worth, as a peer's queue.
pub const INBOUND_BYTES_MAX: usize = 2 * CONTROLLER_FRAME_BYTES_MAX;
/// Bytes of inbound frames being read or handled on all connections at
/// once: four whole frames, room for every other voter of a five-voter
/// quorum sending its largest. A frame that would go over it closes its
/// connection (one log line; Raft resends), so connections that announce
/// large frames and trickle them cannot pin more than this together.
pub const INBOUND_FRAME_BYTES_BUDGET: usize = 4 * CONTROLLER_FRAME_BYTES_MAX;
/// Inbound connections at once: one per other voter, plus operators'
/// tools. More are closed at accept, with one log line.
pub const INBOUND_CONNECTIONS_MAX: usize = 64;
/// Bytes asked of the socket per read while a frame arrives, so a large
/// announced frame pins only what was actually sent.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Who this transport is and what it serves.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// `node.id`: must be one of `voters`.
    pub local_id: i32,
    /// `cluster.id` from meta.properties, for DescribeCluster.
    pub cluster_id: String,
    /// The CONTROLLER listener's name, reported by DescribeQuorum v2.
    pub listener_name: String,
    /// `controller.quorum.voters`.
    pub voters: Vec<Voter>,
    /// What the CONTROLLER listener asks of a connection (`gate.rs`).
    pub gate: Arc<ControllerGate>,
    /// How this voter connects to the others (`link.rs`).
    pub peers: Arc<LinkSecurity>,
}

/// The driver's current view, asked for each DescribeQuorum and
/// DescribeCluster.
pub type StatusFn = Rc<dyn Fn() -> QuorumStatus>;

/// A Kafka request on the CONTROLLER listener that the quorum itself does not answer.
pub struct ControllerRequest {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    pub version: i16,
    pub body: Bytes,
}

/// Answers one: the encoded response frame (frame::encode_response), or why the
/// connection must close.
pub type ControllerApis =
    Rc<dyn Fn(ControllerRequest) -> LocalBoxFuture<'static, Result<Bytes, String>>>;

/// The versions the hook serves, for ApiVersions and the served check.
pub type ControllerApiVersions = &'static [(ApiKey, i16, i16)];

/// The Kafka APIs the CONTROLLER listener serves besides the quorum's
/// own (`describe::CONTROLLER_APIS`, which take precedence): a request of
/// one of `versions` goes to `apis`.
#[derive(Clone)]
pub struct ControllerService {
    pub apis: ControllerApis,
    pub versions: ControllerApiVersions,
    /// Who may make which request (`authorize.rs`), the quorum's own
    /// included.
    pub authorize: ClusterAuthorizer,
}

impl ControllerService {
    /// Serves nothing beyond the quorum's own APIs, to anyone.
    pub fn none() -> ControllerService {
        ControllerService {
            apis: Rc::new(|request: ControllerRequest| {
                let refused = format!(
                    "{:?} v{} is not served on the controller listener",
                    request.api_key, request.version
                );
                Box::pin(async move { Err(refused) })
            }),
            versions: &[],
            authorize: authorize::allow_all(),
        }
    }

    /// The versions of `api_key` the hook serves, if it serves it.
    fn served(&self, api_key: ApiKey) -> Option<(i16, i16)> {
        self.versions
            .iter()
            .find(|(key, _, _)| *key == api_key)
            .map(|&(_, min, max)| (min, max))
    }
}

/// Answers an observer's metadata fetch (the voter's driver, which may
/// hold it until an entry applies or the request's wait runs out).
pub type FetchApi = Rc<dyn Fn(FetchRequest) -> LocalBoxFuture<'static, FetchResponse>>;

/// Counters of one peer's outbound queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Messages written to the peer's socket.
    pub sent_messages: u64,
    /// Messages dropped: queue full, lost with a failed write, or too large.
    pub dropped_messages: u64,
    /// Connections made to the peer.
    pub connects: u64,
    /// Messages waiting now.
    pub queued_messages: usize,
    /// Their bytes.
    pub queued_bytes: usize,
}

/// One peer's outbound messages, encoded, and its counters.
struct PeerQueue {
    messages: BoundedQueue<Bytes>,
    sent_messages: u64,
    connects: u64,
}

impl PeerQueue {
    /// The oldest messages that fit one frame (at least one: the queue
    /// refuses a message over a frame alone).
    fn take_batch(&mut self) -> Vec<Bytes> {
        let mut batch = Vec::new();
        let mut size_bytes = wire::frame_bytes(std::iter::empty());
        while let Some(next_bytes) = self.messages.front_bytes() {
            let framed_bytes = wire::MESSAGE_LENGTH_BYTES + next_bytes;
            if !batch.is_empty() && size_bytes + framed_bytes > CONTROLLER_FRAME_BYTES_MAX {
                break;
            }
            size_bytes += framed_bytes;
            batch.extend(self.messages.pop().map(|(message, _)| message));
        }
        batch
    }
}

struct Peer {
    queue: Rc<RefCell<PeerQueue>>,
    /// Wakes the peer's task; capacity one, a full bell is already rung.
    doorbell: LocalSender<()>,
    _task: Task<()>,
}

/// The Raft messages other voters sent this node, for the driver to step.
/// Ends (`recv` gives `None`) once the transport is dropped and drained.
pub struct Inbound {
    queue: Rc<RefCell<BoundedQueue<Message>>>,
    bell: LocalReceiver<()>,
}

impl Inbound {
    /// The oldest message not yet taken, without waiting: the driver
    /// drains these before each `ready`.
    pub fn try_recv(&self) -> Option<Message> {
        self.queue.borrow_mut().pop().map(|(message, _)| message)
    }

    /// The oldest message not yet taken, waiting for one.
    pub async fn recv(&self) -> Option<Message> {
        loop {
            if let Some(message) = self.try_recv() {
                return Some(message);
            }
            self.bell.recv().await?;
        }
    }
}

/// What the inbound connections share.
struct Shared {
    config: TransportConfig,
    status: StatusFn,
    service: ControllerService,
    inbound: Rc<RefCell<BoundedQueue<Message>>>,
    /// Rings `Inbound::recv`; capacity one, as a peer's doorbell.
    inbound_bell: LocalSender<()>,
    connections: RefCell<BTreeMap<u64, JoinHandle<()>>>,
    next_connection: Cell<u64>,
    /// Bytes of frames being read or handled, all connections together.
    frame_bytes_pinned: Rc<Cell<usize>>,
    /// Who answers metadata fetches, once the driver says.
    fetches: RefCell<Option<FetchApi>>,
}

/// The running transport; dropping it stops everything it started.
pub struct Transport {
    shared: Rc<Shared>,
    local_address: SocketAddr,
    peers: BTreeMap<i32, Peer>,
    _accept: Task<()>,
}

#[derive(Debug)]
pub enum TransportError {
    /// `local_id` is not among the voters.
    NotAVoter {
        local_id: i32,
    },
    Io(io::Error),
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::NotAVoter { local_id } => {
                write!(f, "node {local_id} is not in controller.quorum.voters")
            }
            TransportError::Io(error) => write!(f, "controller listener: {error}"),
        }
    }
}

impl std::error::Error for TransportError {}

impl Transport {
    /// Starts serving `listener` (bound by the caller to the CONTROLLER
    /// listener's address) and connecting to every other voter, on the
    /// current glommio executor; Kafka requests beyond the quorum's own go
    /// to `service`. Returns the transport and the `Inbound` queue of the
    /// Raft messages other voters send this node.
    pub fn start(
        config: TransportConfig,
        listener: std::net::TcpListener,
        status: StatusFn,
        service: ControllerService,
    ) -> Result<(Transport, Inbound), TransportError> {
        if !config
            .voters
            .iter()
            .any(|voter| voter.id == config.local_id)
        {
            return Err(TransportError::NotAVoter {
                local_id: config.local_id,
            });
        }
        let local_address = listener.local_addr().map_err(TransportError::Io)?;
        // SAFETY: `into_raw_fd` consumed the std listener, so the fd is
        // open and owned by nothing else; glommio's listener closes it.
        // io_uring accepts on it whatever its blocking mode.
        let listener = unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) };
        let inbound = Rc::new(RefCell::new(BoundedQueue::new(
            "raft messages the driver has not taken".to_string(),
            INBOUND_MESSAGES_MAX,
            INBOUND_BYTES_MAX,
            wire::RAFT_MESSAGE_BYTES_MAX,
        )));
        let (inbound_bell, bell) = local_channel::new_bounded(1);
        let receiver = Inbound {
            queue: Rc::clone(&inbound),
            bell,
        };
        let peers = config
            .voters
            .iter()
            .filter(|voter| voter.id != config.local_id)
            .map(|voter| {
                let peer = start_peer(config.local_id, voter.clone(), config.peers.clone());
                (voter.id, peer)
            })
            .collect();
        let shared = Rc::new(Shared {
            config,
            status,
            service,
            inbound,
            inbound_bell,
            connections: RefCell::default(),
            next_connection: Cell::new(0),
            frame_bytes_pinned: Rc::default(),
            fetches: RefCell::new(None),
        });
        let accept = glommio::spawn_local(accept_loop(listener, Rc::downgrade(&shared)));
        Ok((
            Transport {
                shared,
                local_address,
                peers,
                _accept: accept,
            },
            receiver,
        ))
    }

    /// Has `api` answer the metadata fetches of observers; until then a
    /// fetch closes its connection.
    pub fn serve_fetches(&self, api: FetchApi) {
        *self.shared.fetches.borrow_mut() = Some(api);
    }

    /// The address the CONTROLLER listener is bound to.
    pub fn local_address(&self) -> SocketAddr {
        self.local_address
    }

    /// Queues each message for the voter it is addressed to (`to`); never
    /// waits. A message to an unknown voter or to this node is dropped
    /// with a log line: the driver's configuration and this transport's
    /// disagree, which Raft cannot repair by retrying.
    pub fn send(&self, messages: impl IntoIterator<Item = Message>) {
        for message in messages {
            let peer = i32::try_from(message.to)
                .ok()
                .and_then(|to| self.peers.get(&to).map(|peer| (to, peer)));
            let Some((to, peer)) = peer else {
                warn!(
                    "raft message to {} dropped: not another voter of controller.quorum.voters",
                    message.to
                );
                continue;
            };
            let Some(encoded) = wire::encode_message(&message) else {
                warn!("raft message to voter {to} dropped: it does not encode");
                continue;
            };
            let size_bytes = encoded.len();
            peer.queue.borrow_mut().messages.push(encoded, size_bytes);
            // Full means the bell already rings.
            let _ = peer.doorbell.try_send(());
        }
    }

    /// The counters of the queue to voter `peer_id`, if it is another voter.
    pub fn peer_stats(&self, peer_id: i32) -> Option<PeerStats> {
        self.peers.get(&peer_id).map(|peer| {
            let queue = peer.queue.borrow();
            PeerStats {
                sent_messages: queue.sent_messages,
                dropped_messages: queue.messages.drops.total(),
                connects: queue.connects,
                queued_messages: queue.messages.len(),
                queued_bytes: queue.messages.bytes(),
            }
        })
    }

    /// Received messages dropped because the driver did not take them.
    pub fn inbound_dropped(&self) -> u64 {
        self.shared.inbound.borrow().drops.total()
    }

    /// Inbound connections open now.
    pub fn inbound_connections(&self) -> usize {
        self.shared.connections.borrow().len()
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        for (_, connection) in std::mem::take(&mut *self.shared.connections.borrow_mut()) {
            connection.cancel();
        }
    }
}

fn start_peer(local_id: i32, voter: Voter, security: Arc<LinkSecurity>) -> Peer {
    let queue = Rc::new(RefCell::new(PeerQueue {
        messages: BoundedQueue::new(
            format!("raft messages to voter {}", voter.id),
            PEER_QUEUE_MESSAGES_MAX,
            PEER_QUEUE_BYTES_MAX,
            wire::RAFT_MESSAGE_BYTES_MAX,
        ),
        sent_messages: 0,
        connects: 0,
    }));
    let (doorbell, bell) = local_channel::new_bounded(1);
    let task = glommio::spawn_local(run_peer(
        (local_id, security),
        voter,
        Rc::clone(&queue),
        bell,
    ));
    Peer {
        queue,
        doorbell,
        _task: task,
    }
}

/// Connects to `voter` and writes its queue, for as long as the transport
/// lives. A failed connection or write waits the backoff before the next
/// attempt, doubling while failures repeat and reset by a write that goes
/// through, so a peer that keeps closing on us is not hammered. One log
/// line per outage, not per attempt.
async fn run_peer(
    (local_id, security): (i32, Arc<LinkSecurity>),
    voter: Voter,
    queue: Rc<RefCell<PeerQueue>>,
    bell: LocalReceiver<()>,
) {
    let mut backoff_ms = RECONNECT_BACKOFF_MS;
    let mut failing = false;
    let mut correlation_id = 0i32;
    loop {
        let failure = match connect(local_id, &voter, &security).await {
            Ok(mut stream) => {
                info!("connected to voter {} at {}", voter.id, voter.address());
                queue.borrow_mut().connects += 1;
                let mut written = false;
                let Some(error) = write_queue(
                    &mut stream,
                    local_id,
                    &mut correlation_id,
                    &queue,
                    &bell,
                    &mut written,
                )
                .await
                else {
                    return;
                };
                if written {
                    failing = false;
                    backoff_ms = RECONNECT_BACKOFF_MS;
                }
                format!("connection lost: {error}")
            }
            Err(error) => format!("cannot connect: {error}"),
        };
        if !failing {
            warn!(
                "voter {} at {}: {failure}; retrying every {}..{} ms",
                voter.id,
                voter.address(),
                RECONNECT_BACKOFF_MS,
                RECONNECT_BACKOFF_MAX_MS
            );
            failing = true;
        }
        glommio::timer::sleep(Duration::from_millis(backoff_ms)).await;
        backoff_ms = (backoff_ms * 2).min(RECONNECT_BACKOFF_MAX_MS);
    }
}

/// Writes the queue to `stream` in frames as messages come, until a write
/// fails (its error; the frame in flight is counted as dropped) or the
/// transport is gone (`None`). `written` tells whether a frame went out.
async fn write_queue(
    stream: &mut LinkStream,
    local_id: i32,
    correlation_id: &mut i32,
    queue: &RefCell<PeerQueue>,
    bell: &LocalReceiver<()>,
    written: &mut bool,
) -> Option<io::Error> {
    loop {
        while queue.borrow().messages.is_empty() {
            bell.recv().await?;
        }
        let batch = queue.borrow_mut().take_batch();
        let frame = wire::encode_frame(local_id, *correlation_id, &batch);
        *correlation_id = correlation_id.wrapping_add(1);
        let result = stream.write_all(&frame).await;
        let mut queue = queue.borrow_mut();
        if let Err(error) = result {
            queue.messages.lost(batch.len() as u64);
            return Some(error);
        }
        *written = true;
        queue.sent_messages += batch.len() as u64;
        queue.messages.flowing();
    }
}

async fn connect(local_id: i32, voter: &Voter, security: &LinkSecurity) -> io::Result<LinkStream> {
    // Resolved at each attempt, as Kafka does, so a voter's host name may
    // move. glommio's connect assumes a resolved address.
    let address = voter
        .address()
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
    let stream =
        TcpStream::connect_timeout(address, Duration::from_millis(CONNECTION_SETUP_TIMEOUT_MS))
            .await
            .map_err(io::Error::from)?;
    stream.set_nodelay(true).map_err(io::Error::from)?;
    stream
        .set_write_timeout(Some(Duration::from_millis(QUORUM_REQUEST_TIMEOUT_MS)))
        .map_err(io::Error::from)?;
    let deadline = Instant::now() + Duration::from_millis(CONNECTION_SETUP_TIMEOUT_MS);
    let client_id = format!("raft-{local_id}-to-{}", voter.id);
    link::secure(stream, &voter.address(), deadline, security, &client_id).await
}

async fn accept_loop(listener: TcpListener, shared: Weak<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(error) => {
                // A refused accept (EMFILE, a reset before accept) passes;
                // the backoff keeps a persistent one from spinning.
                warn!("controller listener: accept failed: {error}");
                glommio::timer::sleep(Duration::from_millis(RECONNECT_BACKOFF_MS)).await;
                continue;
            }
        };
        let Some(owner) = shared.upgrade() else {
            return;
        };
        if owner.connections.borrow().len() >= INBOUND_CONNECTIONS_MAX {
            warn!(
                "controller listener: connection from {:?} closed: {INBOUND_CONNECTIONS_MAX} open",
                stream.peer_addr().ok()
            );
            continue;
        }
        let id = owner.next_connection.get();
        owner.next_connection.set(id + 1);
        let handle =
            glommio::spawn_local(serve_connection(stream, Weak::clone(&shared), id)).detach();
        owner.connections.borrow_mut().insert(id, handle);
    }
}

async fn serve_connection(stream: TcpStream, shared: Weak<Shared>, id: u64) {
    let peer = stream.peer_addr().ok();
    let idle = Duration::from_millis(CONNECTIONS_MAX_IDLE_MS);
    let outcome = match stream.set_read_timeout(Some(idle)) {
        Ok(()) => admit_and_serve(stream, &shared, peer).await,
        Err(error) => Err(error.to_string()),
    };
    if let Err(reason) = outcome {
        warn!("controller listener: connection from {peer:?} closed: {reason}");
    }
    if let Some(shared) = shared.upgrade() {
        shared.connections.borrow_mut().remove(&id);
    }
}

/// Admits the connection as the listener's protocol says (`gate.rs`),
/// then serves it as the principal its login gave.
async fn admit_and_serve(
    stream: TcpStream,
    shared: &Weak<Shared>,
    peer: Option<SocketAddr>,
) -> Result<(), String> {
    let Some((gate, apis)) = shared
        .upgrade()
        .map(|shared| (Arc::clone(&shared.config.gate), shared.service.versions))
    else {
        return Ok(());
    };
    let (mut stream, principal) = gate.admit(stream, apis).await?;
    let caller = Caller {
        principal: principal.to_string(),
        host: peer.map(|peer| peer.ip()),
    };
    serve_frames(&mut stream, shared, &caller).await
}

/// Answers the connection's frames in order until it closes (`Ok`) or
/// sends what it must not (`Err`, the reason to log).
async fn serve_frames(
    stream: &mut InboundStream,
    shared: &Weak<Shared>,
    caller: &Caller,
) -> Result<(), String> {
    let Some(budget) = shared
        .upgrade()
        .map(|shared| Rc::clone(&shared.frame_bytes_pinned))
    else {
        return Ok(());
    };
    let mut sender = None;
    loop {
        let Some((frame, _pinned)) = read_frame(stream, &budget).await? else {
            return Ok(());
        };
        let Some(shared) = shared.upgrade() else {
            return Ok(());
        };
        let answer = match handle_frame(&shared, &frame, &mut sender, caller)? {
            Handled::Answer(answer) => answer,
            Handled::Hook(request) => {
                // Not holding the transport while the hook runs: a
                // dropped transport cancels this task anyway.
                let apis = Rc::clone(&shared.service.apis);
                drop(shared);
                Some(apis(request).await?)
            }
            Handled::Fetch(correlation_id, request) => {
                let api = shared.fetches.borrow().clone();
                drop(shared);
                let api =
                    api.ok_or_else(|| "metadata fetch not served by this node".to_string())?;
                Some(fetch_answer(api(request).await, correlation_id))
            }
        };
        if let Some(answer) = answer {
            stream
                .write_all(&answer)
                .await
                .map_err(|error| error.to_string())?;
        }
    }
}

/// What a frame asks for: an answer made at once (`None` for the one-way
/// Raft batch), or the hook's.
enum Handled {
    Answer(Option<Bytes>),
    Hook(ControllerRequest),
    /// A metadata fetch and its correlation id.
    Fetch(i32, FetchRequest),
}

/// The response frame of a fetch; one over a frame (the driver keeps its
/// answers within one) becomes an error answer.
fn fetch_answer(response: FetchResponse, correlation_id: i32) -> Bytes {
    fetch::encode_response(&response, correlation_id).unwrap_or_else(|| {
        warn!("a metadata fetch answer over {CONTROLLER_FRAME_BYTES_MAX} bytes refused");
        let refused = FetchResponse {
            error_code: kafka_protocol::error::ResponseError::UnknownServerError.code(),
            fetched: fetch::Fetched::Entries(Vec::new()),
            ..response
        };
        fetch::encode_response(&refused, correlation_id).unwrap_or_default()
    })
}

/// The next frame without its size prefix, or `None` at a clean end of
/// stream. The size is checked before anything is allocated, and the
/// buffer grows only with what arrives.
async fn read_frame(
    stream: &mut InboundStream,
    budget: &Rc<Cell<usize>>,
) -> Result<Option<(Vec<u8>, Pinned)>, String> {
    let mut prefix = [0u8; SIZE_PREFIX_BYTES];
    let mut filled = 0;
    while filled < SIZE_PREFIX_BYTES {
        match stream.read(&mut prefix[filled..]).await {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err("end of stream inside a size prefix".to_string()),
            Ok(read) => filled += read,
            Err(error) => return Err(error.to_string()),
        }
    }
    let size_bytes =
        frame::frame_size(prefix, CONTROLLER_FRAME_BYTES_MAX).map_err(|error| error.to_string())?;
    let mut frame = Vec::new();
    let mut pinned = Pinned {
        budget: Rc::clone(budget),
        bytes: 0,
    };
    while frame.len() < size_bytes {
        let filled = frame.len();
        frame.resize(filled + (size_bytes - filled).min(READ_CHUNK_BYTES), 0);
        pinned.grow_to(frame.capacity())?;
        match stream.read(&mut frame[filled..]).await {
            Ok(0) => {
                return Err(format!(
                    "end of stream inside a frame of {size_bytes} bytes"
                ))
            }
            Ok(read) => frame.truncate(filled + read),
            Err(error) => return Err(error.to_string()),
        }
    }
    Ok(Some((frame, pinned)))
}

/// The bytes one connection holds of `INBOUND_FRAME_BYTES_BUDGET`, given
/// back when dropped.
struct Pinned {
    budget: Rc<Cell<usize>>,
    bytes: usize,
}

impl Pinned {
    /// Holds `bytes` in all, if the budget has them.
    fn grow_to(&mut self, bytes: usize) -> Result<(), String> {
        let more = bytes.saturating_sub(self.bytes);
        let pinned = self.budget.get() + more;
        if pinned > INBOUND_FRAME_BYTES_BUDGET {
            return Err(format!(
                "frames being read on the controller listener over \
                 {INBOUND_FRAME_BYTES_BUDGET} bytes together"
            ));
        }
        self.budget.set(pinned);
        self.bytes += more;
        Ok(())
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        self.budget.set(self.budget.get() - self.bytes);
    }
}

/// The answer to one frame, or why the connection must close. `sender`
/// is the voter whose Raft batches this connection carries, fixed by its
/// first; `caller` who logged in, checked as `authorize.rs` says.
fn handle_frame(
    shared: &Shared,
    frame: &[u8],
    sender: &mut Option<i32>,
    caller: &Caller,
) -> Result<Handled, String> {
    let private = frame.len() >= 2
        && [RAFT_MESSAGES_API_KEY, METADATA_FETCH_API_KEY]
            .contains(&i16::from_be_bytes([frame[0], frame[1]]));
    if private && !caller.may(&shared.service.authorize, Operation::ClusterAction) {
        return Err(format!(
            "{} is not authorized for CLUSTER_ACTION on the cluster (the quorum's own requests)",
            caller.principal
        ));
    }
    if frame.len() >= 2 && i16::from_be_bytes([frame[0], frame[1]]) == RAFT_MESSAGES_API_KEY {
        let (sender_id, messages) = wire::decode_frame(frame).map_err(|error| error.to_string())?;
        if sender.is_some_and(|pinned| pinned != sender_id) {
            return Err(format!(
                "raft messages from {sender_id} on the connection of voter {sender:?}"
            ));
        }
        deliver(shared, sender_id, messages)?;
        *sender = Some(sender_id);
        return Ok(Handled::Answer(None));
    }
    if frame.len() >= 2 && i16::from_be_bytes([frame[0], frame[1]]) == METADATA_FETCH_API_KEY {
        let (correlation_id, request) =
            fetch::decode_request(frame).map_err(|error| error.to_string())?;
        return Ok(Handled::Fetch(correlation_id, request));
    }
    let frame = Bytes::copy_from_slice(frame);
    let (header, mut body) =
        frame::parse_request_header(&frame).map_err(|error| error.to_string())?;
    let api_key = ApiKey::try_from(header.request_api_key)
        .map_err(|()| format!("unknown api key {}", header.request_api_key))?;
    let version = header.request_api_version;
    if api_key == ApiKey::ApiVersions {
        // Answered whatever the version, in v0 if it is unsupported, so a
        // newer client learns the versions it may use (Kafka's rule).
        let answer = describe::api_versions(version, shared.service.versions);
        let served = describe::served_versions(api_key)
            .is_some_and(|(min, max)| min <= version && version <= max);
        return frame::encode_response(&header, if served { version } else { 0 }, &answer)
            .map(|answer| Handled::Answer(Some(answer)));
    }
    // Served here, or by the hook: versions checked before anything else,
    // as Kafka's socket server checks them.
    let own = describe::served_versions(api_key);
    let served = own
        .or_else(|| shared.service.served(api_key))
        .is_some_and(|(min, max)| min <= version && version <= max);
    if !served {
        return Err(format!(
            "{api_key:?} v{version} is not served on the controller listener"
        ));
    }
    let allowed = authorize::required(api_key)
        .is_none_or(|operation| caller.may(&shared.service.authorize, operation));
    if !allowed {
        warn!(
            "controller listener: {api_key:?} from {} refused: CLUSTER_AUTHORIZATION_FAILED",
            caller.principal
        );
        return authorize::refusal(&header, api_key, version)
            .map(|answer| Handled::Answer(Some(answer)));
    }
    if own.is_none() {
        return Ok(Handled::Hook(ControllerRequest {
            header,
            api_key,
            version,
            body,
        }));
    }
    let status = (shared.status)();
    let config = &shared.config;
    match api_key {
        ApiKey::DescribeCluster => {
            let request: DescribeClusterRequest = decode_body(&mut body, api_key, version)?;
            let answer = describe::describe_cluster(
                &request,
                &config.cluster_id,
                status.leader_id,
                &config.voters,
            );
            frame::encode_response(&header, version, &answer)
                .map(|answer| Handled::Answer(Some(answer)))
        }
        ApiKey::DescribeQuorum => {
            let request: DescribeQuorumRequest = decode_body(&mut body, api_key, version)?;
            let now_ms = i64::try_from(now_ms()).unwrap_or(i64::MAX);
            let answer = describe::describe_quorum(
                &request,
                version,
                &status,
                &config.voters,
                &config.listener_name,
                now_ms,
            );
            frame::encode_response(&header, version, &answer)
                .map(|answer| Handled::Answer(Some(answer)))
        }
        _ => Err(format!(
            "{api_key:?} v{version} is not served on the controller listener"
        )),
    }
}

/// Hands a voter's messages to the driver, after checking that the
/// sender is another voter and each message is from it and to this node.
fn deliver(shared: &Shared, sender_id: i32, messages: Vec<Message>) -> Result<(), String> {
    let config = &shared.config;
    let is_voter = config.voters.iter().any(|voter| voter.id == sender_id);
    if !is_voter || sender_id == config.local_id {
        return Err(format!(
            "raft messages from {sender_id}, not another voter of controller.quorum.voters"
        ));
    }
    let misaddressed = messages
        .iter()
        .find(|message| message.from != sender_id as u64 || message.to != config.local_id as u64);
    if let Some(message) = misaddressed {
        return Err(format!(
            "raft message from {} to {} on the connection of voter {sender_id}",
            message.from, message.to
        ));
    }
    let mut inbound = shared.inbound.borrow_mut();
    for message in messages {
        let size_bytes = message.compute_size() as usize;
        inbound.push(message, size_bytes);
    }
    if inbound.len() < INBOUND_MESSAGES_MAX {
        inbound.flowing();
    }
    // Full means the bell already rings.
    let _ = shared.inbound_bell.try_send(());
    Ok(())
}

/// Decodes a request body of `api_key` at `version`; malformed (or a
/// decoder panic), the reason to close the connection.
pub fn decode_body<R: Decodable>(
    body: &mut Bytes,
    api_key: ApiKey,
    version: i16,
) -> Result<R, String> {
    // The crate's decoders may panic on hostile input (protocol::frame).
    match catch_unwind(AssertUnwindSafe(|| R::decode(body, version))) {
        Ok(Ok(request)) => Ok(request),
        Ok(Err(_)) | Err(_) => Err(format!("malformed {api_key:?} v{version} request body")),
    }
}
