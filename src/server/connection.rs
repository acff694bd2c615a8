//! One client connection: read frames, decode, dispatch to the API handler,
//! write the response. Pipelined requests are handled side by side (up to
//! `IN_FLIGHT_REQUESTS_MAX`, and within the shard's share of
//! `queued.max.requests`) and answered strictly in request order.
//!
//! Invariant: anything wrong with a frame closes this connection only, with
//! a rate-limited log line; nothing a client sends can panic the shard. The
//! read buffer holds no more than the bytes that arrived (grown with them,
//! never to a size a frame announces), so an idle connection holds no
//! buffer and a half-sent frame pins about what was sent. What the kernel
//! already holds of a frame gets its room in one step, so the buffer's
//! growth moves at most the bytes read before the frame's size was known,
//! not the whole frame at every doubling. A frame handed out lies in an
//! allocation of at most `frame_allocation_bytes_max` of its length (a read
//! chunk, or one that ends where the frame does): what a slice of it pins.
//! Answers go out whole and in request order, one at a time; a Fetch
//! answer's file ranges are sent by the kernel from the page cache
//! (`sendfile` on the socket, which is made non-blocking), so the shard
//! never waits for a full socket, nor for the disk: pages evicted since
//! their read are read back through io_uring and written from memory.
//! Over TLS (`stream.rs`) the same ranges are read into a bounded buffer
//! and encrypted instead: `sendfile` cannot encrypt.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd};
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;

use super::handlers::sasl_session::{self, Authenticated, SaslListener, SaslSession};
use super::handlers::{CloseReason, Response};
use super::limits::{ConnectionPermit, ShardConnections};
use super::listener::ClientListener;
use super::stream::{ReadHalf, WriteHalf};
use super::throttle::{self, ConnectionThrottle};
use crate::log::{Chunk, FileRange};
use crate::metadata::brokers::Broker;
use crate::protocol::chunk::FileChunk;
use crate::protocol::frame::{self, FrameError};

/// Why reading a frame stopped.
enum ReadError {
    Frame(FrameError),
    Io(std::io::Error),
    /// The peer closed inside a frame.
    Truncated,
    /// Nothing arrived and nothing was in flight for `connections.max.idle.ms`.
    Idle,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Frame(error) => write!(f, "{error}"),
            ReadError::Io(error) => write!(f, "read failed: {error}"),
            ReadError::Truncated => write!(f, "connection closed inside a frame"),
            ReadError::Idle => write!(f, "idle for connections.max.idle.ms"),
        }
    }
}
use crate::shard::Shard;

/// Most bytes taken from the socket by one read: bounds the buffer grown per
/// read, and the time one read holds the shard.
const READ_CHUNK_BYTES_MAX: usize = 64 * 1024;

/// The most a slice of a request frame of `frame_len` bytes keeps
/// allocated (the allocator's rounding aside). `FrameReader` makes every
/// allocation in one of two ways: for a read while no frame's size is
/// known, of at most the prefix bytes held plus one read; or for the
/// frame whose size is known, ending where that frame ends, so that
/// nothing but that frame is read into it.
pub fn frame_allocation_bytes_max(frame_len: usize) -> usize {
    (frame::SIZE_PREFIX_BYTES + frame_len).max(frame::SIZE_PREFIX_BYTES - 1 + READ_CHUNK_BYTES_MAX)
}

/// Which listener accepted a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// The port every shard shares (SO_REUSEPORT): the node.
    Shared,
    /// This shard's own port in shard-aware mode: the shard's broker.
    Own,
}

/// Per-connection state the handlers may keep (fetch sessions live per shard).
pub struct ConnectionContext {
    pub shard: Rc<Shard>,
    pub peer: Option<SocketAddr>,
    /// The listener the client connected to: a client on a shard's own port
    /// talks to that shard's broker, which lists only its own groups.
    pub port: Port,
    /// The request came in an Envelope from another node (`forward`): it
    /// is answered here, never forwarded again.
    pub forwarded: bool,
    /// The SASL exchange of a connection to a SASL listener; None on others.
    pub sasl: Option<SaslSession>,
    /// Who the client is, as `Type:name` (`server::authorize` checks it):
    /// `User:ANONYMOUS` until the TLS handshake (a client certificate's
    /// mapped subject) or a SASL exchange says otherwise, the original
    /// client's for a forwarded request.
    pub principal: RefCell<Rc<str>>,
    /// Where this node is advertised on the connection's listener, when it
    /// is not the broker listener the view advertises (`seen`).
    pub advertised: Option<(String, i32)>,
    /// Until when a client over its quota is not read (`throttle`).
    pub throttle: ConnectionThrottle,
}

impl ConnectionContext {
    /// `broker` as a client of this connection reaches it: this node at
    /// the address of the listener the client came in on, as Kafka answers
    /// with the endpoints of the request's listener.
    pub fn seen(&self, mut broker: Broker) -> Broker {
        if let Some((host, port)) = &self.advertised {
            if broker.id == self.shard.view().node_id {
                broker.host = host.clone();
                broker.port = *port;
            }
        }
        broker
    }

    /// The client's address as Kafka shows it in group descriptions (`/ip`).
    pub fn client_host(&self) -> String {
        self.peer
            .map(|peer| format!("/{}", peer.ip()))
            .unwrap_or_default()
    }
}

/// Requests of one connection being handled at once. A durable append waits
/// for its group's fdatasync; handling the next pipelined request meanwhile
/// lets one connection's produce requests share a group commit instead of
/// paying one fdatasync each. Answers still go out in request order, as the
/// protocol requires; past this many, the connection is not read until the
/// oldest is answered.
const IN_FLIGHT_REQUESTS_MAX: usize = 16;

/// A request being handled: resolves to its answer.
type Pending = glommio::Task<Result<Response, CloseReason>>;

/// A second handle on the connection's socket, for the writer: reading the
/// next request and writing an answer go on side by side without a lock.
/// It fails as `accept` does when the process is out of descriptors.
pub fn writer_handle(stream: &TcpStream) -> std::io::Result<TcpStream> {
    // SAFETY: dup of a descriptor `stream` owns and keeps open for the call.
    let duplicate = unsafe { libc::dup(stream.as_raw_fd()) };
    if duplicate < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `duplicate` is a fresh descriptor of a connected TCP socket,
    // owned by nothing else; the returned TcpStream closes it.
    Ok(unsafe { TcpStream::from_raw_fd(duplicate) })
}

/// Serves one connection accepted on `listener`: `stream` reads requests,
/// `writer` (its `writer_handle`) writes the answers; on a TLS listener
/// both after the handshake.
pub async fn serve(
    shard: Rc<Shard>,
    limits: Rc<ShardConnections>,
    (stream, writer): (TcpStream, TcpStream),
    (port, listener): (Port, Arc<ClientListener>),
    _permit: ConnectionPermit,
) {
    let _open = crate::metrics::OpenConnection::open();
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    // The idle timeout is the wait for a request's first byte: a read that
    // times out while requests are in flight waits on.
    let _ = stream.set_read_timeout(Some(limits.idle_timeout));
    let (mut stream, writer, principal) = match listener
        .secure(&shard.tls, stream, writer, limits.idle_timeout)
        .await
    {
        Ok(secured) => secured,
        Err(error) => {
            if limits.close_log.allow() {
                log::warn!(
                    "closing connection from {peer:?} on listener {}: {error}",
                    listener.name
                );
            }
            return;
        }
    };
    if !principal.is_anonymous() {
        log::info!(
            "connection from {peer:?} on listener {} authenticated as {principal}",
            listener.name
        );
    }
    let sasl =
        SaslListener::of(&shard.config, &listener.name, listener.protocol).map(SaslSession::new);
    let context = Rc::new(ConnectionContext {
        shard,
        peer,
        port,
        forwarded: false,
        sasl,
        principal: RefCell::new(Rc::from(principal.to_string())),
        advertised: listener.advertised.clone(),
        throttle: ConnectionThrottle::default(),
    });
    // Requests read and not yet answered: while any is, the connection is
    // not idle, however long its client stays silent.
    let in_flight = Rc::new(Cell::new(0usize));
    let (queue, pending) = glommio::channels::local_channel::new_bounded(IN_FLIGHT_REQUESTS_MAX);
    let writing = glommio::spawn_local(write_answers(
        writer,
        pending,
        peer,
        limits.clone(),
        in_flight.clone(),
    ));
    let mut reader = FrameReader::default();
    loop {
        // KIP-219: a client over its quota is not read until its throttle
        // time has passed.
        context.throttle.wait().await;
        let max_bytes = match context.sasl.as_ref().filter(|s| !s.authenticated()) {
            Some(session) => session.listener.max_receive_bytes,
            None => context.shard.config.socket_request_max_bytes,
        };
        let frame = match reader.next(&mut stream, max_bytes, &in_flight).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(ReadError::Idle) => {
                log::debug!("closing connection from {peer:?}: {}", ReadError::Idle);
                break;
            }
            Err(error) => {
                if limits.close_log.allow() {
                    log::warn!("closing connection from {peer:?}: {error}");
                }
                break;
            }
        };
        // Until authenticated (and while re-authenticating), a SASL
        // connection's frames go to the gate one at a time, each answered
        // before the next is read; a session past its lifetime closes.
        let authenticating = match &context.sasl {
            Some(session) if session.authenticated() => {
                match session.after_authentication(&frame, std::time::Instant::now()) {
                    Authenticated::Serve => None,
                    Authenticated::Reauthenticate => Some(session),
                    Authenticated::Expired => {
                        if limits.close_log.allow() {
                            log::info!(
                                "closing connection from {peer:?}: its SASL session expired (connections.max.reauth.ms or the credential's lifetime) and it did not re-authenticate"
                            );
                        }
                        break;
                    }
                }
            }
            other => other.as_ref(),
        };
        if let Some(session) = authenticating {
            let gate = sasl_session::gate(&context, session, frame, &limits.close_log).await;
            in_flight.set(in_flight.get() + 1);
            let answer = gate.answer.unwrap_or(Response::None);
            let task: Pending = glommio::spawn_local(async move { Ok(answer) });
            if queue.send(task).await.is_err() || gate.close {
                break;
            }
            continue;
        }
        let timer = crate::metrics::RequestTimer::start(&frame);
        // Waiting here stops this connection's reads while the shard's
        // share of `queued.max.requests` is in use.
        let queued = limits.request_permit(&frame).await;
        let guard = context.shard.request_guard();
        let request_context = context.clone();
        in_flight.set(in_flight.get() + 1);
        let task: Pending = glommio::spawn_local(async move {
            let _in_flight = guard;
            let answer = throttle::dispatch(&request_context, frame).await;
            drop(queued);
            if let Some(timer) = timer {
                timer.done();
            }
            answer
        });
        if queue.send(task).await.is_err() {
            break;
        }
    }
    drop(queue);
    writing.await;
}

/// Writes the answers in request order. A request that must close the
/// connection ends it here, after every earlier answer went out; requests
/// queued behind it are dropped unanswered, as the protocol expects.
async fn write_answers(
    mut stream: WriteHalf,
    pending: glommio::channels::local_channel::LocalReceiver<Pending>,
    peer: Option<SocketAddr>,
    limits: Rc<ShardConnections>,
    in_flight: Rc<Cell<usize>>,
) {
    if let Err(error) = set_nonblocking(stream.socket()) {
        log::warn!("connection from {peer:?}: cannot make its socket non-blocking: {error}");
        stream.close().await;
        return;
    }
    while let Some(task) = pending.recv().await {
        let response = match task.await {
            Ok(response) => response,
            Err(error) => {
                if limits.close_log.allow() {
                    log::warn!("closing connection from {peer:?}: {error}");
                }
                break;
            }
        };
        if let Err(error) = stream.write_response(response).await {
            log::debug!("connection from {peer:?} closed while writing: {error}");
            break;
        }
        in_flight.set(in_flight.get() - 1);
    }
    // Ends the reader's wait too: its next read sees the socket closed.
    stream.close().await;
}

/// The bytes of a connection read and not yet handed out as frames.
#[derive(Default)]
struct FrameReader {
    buffer: BytesMut,
    /// The buffer is the tail of an allocation whose frames were handed out:
    /// kept while the client is silent, it would pin their whole allocation.
    shares_allocation: bool,
}

impl FrameReader {
    /// Reads the next complete frame (without its 4-byte size). `Ok(None)`
    /// on a clean close between frames. A size over `max_bytes` is refused
    /// before any byte of the frame is read.
    async fn next(
        &mut self,
        stream: &mut ReadHalf,
        max_bytes: usize,
        in_flight: &Cell<usize>,
    ) -> Result<Option<Bytes>, ReadError> {
        loop {
            if let Some(frame) = self.take_frame(max_bytes)? {
                return Ok(Some(frame));
            }
            let waiting = stream.bytes_waiting();
            if waiting > 0 && self.read_waiting(stream, waiting, max_bytes)? {
                continue;
            }
            self.release_allocation();
            if !self.wait_for_bytes(stream, in_flight, max_bytes).await? {
                return match self.buffer.is_empty() {
                    true => Ok(None),
                    false => Err(ReadError::Truncated),
                };
            }
        }
    }

    /// Reads bytes of the `waiting` the stream holds, without waiting:
    /// false when it gave none after all (the kernel counted urgent data
    /// that a read skips), and the caller waits for bytes as when none are
    /// held.
    fn read_waiting(
        &mut self,
        stream: &mut ReadHalf,
        waiting: usize,
        max_bytes: usize,
    ) -> Result<bool, ReadError> {
        // Only what the kernel holds: the buffer grows with the bytes
        // that arrived.
        let room = waiting.min(READ_CHUNK_BYTES_MAX);
        // The part of the frame that the kernel already holds gets its
        // room at once: grown one read at a time, the buffer would copy
        // the frame's bytes read so far at every reallocation.
        let rest = self.frame_rest(max_bytes);
        if rest > 0 {
            self.make_room(rest.min(waiting), rest);
        } else {
            self.make_room(room, room);
        }
        // Within the allocation: one made for a frame ends where it does.
        let room = room.min(self.buffer.capacity() - self.buffer.len());
        match stream.read_waiting(&mut self.buffer, room) {
            Ok(0) => Err(ReadError::Truncated),
            Ok(_) => Ok(true),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) =>
            {
                Ok(false)
            }
            Err(error) => Err(ReadError::Io(error)),
        }
    }

    fn take_frame(&mut self, max_bytes: usize) -> Result<Option<Bytes>, ReadError> {
        let buffer = &mut self.buffer;
        if buffer.len() < frame::SIZE_PREFIX_BYTES {
            return Ok(None);
        }
        let size = frame::frame_size([buffer[0], buffer[1], buffer[2], buffer[3]], max_bytes)
            .map_err(ReadError::Frame)?;
        if buffer.len() < frame::SIZE_PREFIX_BYTES + size {
            return Ok(None);
        }
        buffer.advance(frame::SIZE_PREFIX_BYTES);
        let frame = buffer.split_to(size).freeze();
        self.shares_allocation = true;
        Ok(Some(frame))
    }

    /// Bytes of the frame at the start of the buffer still to be read; 0
    /// before its size prefix is complete (or when the prefix is refused,
    /// which `take_frame` reports).
    fn frame_rest(&self, max_bytes: usize) -> usize {
        let Some(&[a, b, c, d]) = self.buffer.get(..frame::SIZE_PREFIX_BYTES) else {
            return 0;
        };
        frame::frame_size([a, b, c, d], max_bytes).map_or(0, |size| {
            (frame::SIZE_PREFIX_BYTES + size).saturating_sub(self.buffer.len())
        })
    }

    /// Room for `wanted` more bytes: the buffer's own when it has it, else a
    /// new allocation for at most `limit` more (doubling the bytes held, so
    /// a frame that trickles in is moved a bounded number of times). Never
    /// `BytesMut::reserve` past the room: it may grow an allocation beyond
    /// `frame_allocation_bytes_max`, or move bytes within a shared one.
    fn make_room(&mut self, wanted: usize, limit: usize) {
        debug_assert!(wanted <= limit);
        let held = self.buffer.len();
        if self.buffer.capacity() - held >= wanted {
            return;
        }
        let capacity = held + wanted.max(held).min(limit);
        let mut grown = BytesMut::with_capacity(capacity);
        grown.extend_from_slice(&self.buffer);
        self.buffer = grown;
        self.shares_allocation = false;
    }

    /// Before waiting on a silent client: an empty buffer gives its memory
    /// back; a partial frame left behind handed-out frames moves to a buffer
    /// of its own size (at most one read's worth, once per wait).
    fn release_allocation(&mut self) {
        if self.buffer.is_empty() {
            self.buffer = BytesMut::new();
        } else if self.shares_allocation {
            self.buffer = BytesMut::from(&self.buffer[..]);
        }
        self.shares_allocation = false;
    }

    /// Waits until the socket has bytes, reading the first one; `false` when
    /// the peer closed. With nothing in flight for `connections.max.idle.ms`
    /// (the socket's read timeout), fails with `Idle`.
    async fn wait_for_bytes(
        &mut self,
        stream: &mut ReadHalf,
        in_flight: &Cell<usize>,
        max_bytes: usize,
    ) -> Result<bool, ReadError> {
        let mut first = [0u8; 1];
        loop {
            match stream.read(&mut first).await {
                Ok(0) => return Ok(false),
                Ok(_) => {
                    let rest = self.frame_rest(max_bytes).max(1);
                    self.make_room(1, rest);
                    self.buffer.extend_from_slice(&first);
                    return Ok(true);
                }
                Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {
                    if in_flight.get() == 0 {
                        return Err(ReadError::Idle);
                    }
                }
                Err(error) => return Err(ReadError::Io(error)),
            }
        }
    }
}

/// What this thread's connections wrote, since it started: the writer's
/// side of "user-space bytes copied per byte fetched" (`log::copy_counts`
/// is the reads' side). Neither kind is copied in user space; `memory`
/// bytes pass from user memory into the socket, `file` bytes never enter
/// user space at all.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteCounts {
    /// Bytes written from memory: answers' fixed fields, batches shared
    /// with the tail cache or read through the copy path, pages read back
    /// at a send, and the bytes sent to wait for room.
    pub memory_bytes: u64,
    /// Bytes of file ranges the kernel sent (`sendfile`).
    pub file_bytes: u64,
}

thread_local! {
    static WRITE_COUNTS: Cell<WriteCounts> = Cell::new(WriteCounts::default());
}

/// This thread's counts (each shard is one thread: its connections').
pub fn write_counts() -> WriteCounts {
    WRITE_COUNTS.with(Cell::get)
}

pub(super) fn count_written(memory_bytes: usize, file_bytes: usize) {
    WRITE_COUNTS.with(|cell| {
        let mut counts = cell.get();
        counts.memory_bytes += memory_bytes as u64;
        counts.file_bytes += file_bytes as u64;
        cell.set(counts);
    });
}

/// Writes one answer whole on a PLAINTEXT connection (`WriteHalf`).
pub(super) async fn write_response(
    stream: &mut TcpStream,
    response: Response,
) -> std::io::Result<()> {
    match response {
        Response::None => Ok(()),
        Response::Frame(bytes) => {
            stream.write_all(&bytes).await?;
            count_written(bytes.len(), 0);
            Ok(())
        }
        Response::Chunks(chunks) => write_chunks(stream, &chunks).await,
    }
}

/// Buffers handed to one `sendmsg`: Linux's `UIO_MAXIOV`.
const SEND_IOVECS_MAX: usize = 1024;
/// Most bytes of a file range given to one `sendfile`: each step is
/// checked to be in the page cache first, and other tasks run between
/// steps, as between the copy path's reads (`log::segment`). A step whose
/// pages were evicted since the read is read into a buffer of this size
/// through io_uring instead: the bound of that buffer.
const SEND_FILE_STEP_BYTES: usize = 256 << 10;

/// Writes a frame in pieces with as few system calls as the socket buffer
/// allows: a non-blocking vectored `sendmsg` of the memory pieces up to the
/// next file range, and a non-blocking `sendfile` of each file range (the
/// kernel sends it from the page cache: its bytes never enter user space);
/// only when the socket is full a wait through glommio. Nothing else is
/// written to the socket meanwhile: the frame goes out whole, in order.
async fn write_chunks(stream: &mut TcpStream, chunks: &[Chunk]) -> std::io::Result<()> {
    let mut position = ChunkPosition::default();
    while position.index < chunks.len() {
        let bytes = match &chunks[position.index] {
            Chunk::File(range) => {
                send_file_range(stream, range, position.offset).await?;
                position = position.next_piece();
                continue;
            }
            Chunk::Memory(bytes) if bytes.len() == position.offset => {
                position = position.next_piece();
                continue;
            }
            Chunk::Memory(bytes) => bytes,
        };
        match send_now(stream.as_raw_fd(), chunks, position) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(sent) => {
                count_written(sent, 0);
                position = position.advance(chunks, sent);
                // A fast reader empties the socket as quickly as it fills:
                // without this, a response of many megabytes goes out in
                // one poll of this task, holding the reactor.
                glommio::yield_if_needed().await;
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                stream.write_all(&bytes[position.offset..]).await?;
                count_written(bytes.len() - position.offset, 0);
                position = position.next_piece();
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Sends `range` from `from` bytes in, `SEND_FILE_STEP_BYTES` at a time,
/// each step checked to be in the page cache first, so that `sendfile`
/// does not wait for the disk on the reactor. A step with pages evicted
/// since the read is read through io_uring (`FileRange::read`: the shard
/// runs other tasks while the disk works) and written from that buffer.
/// The socket is non-blocking (`set_nonblocking`); when it is full, one
/// byte goes through glommio's write, which waits for room without
/// holding the shard. A file shorter than the range (cut under the send)
/// fails the write: the frame cannot be finished, and the connection
/// closes.
async fn send_file_range(
    stream: &mut TcpStream,
    range: &FileRange,
    mut from: usize,
) -> std::io::Result<()> {
    while from < range.byte_len() {
        let step = (range.byte_len() - from).min(SEND_FILE_STEP_BYTES);
        if !range.cached(from, step) {
            from += send_evicted(stream, range, from, step).await?;
            continue;
        }
        match range.send(stream.as_raw_fd(), from, step) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(sent) => {
                count_written(0, sent);
                from += sent;
                glommio::yield_if_needed().await;
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                stream.write_all(&[range.byte_at(from)?]).await?;
                count_written(1, 0);
                from += 1;
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Reads up to `len` bytes `from` bytes into `range` through io_uring and
/// writes them: how many went out. Rare (the read found the pages cached),
/// so simple: one buffer of at most `SEND_FILE_STEP_BYTES`.
async fn send_evicted(
    stream: &mut TcpStream,
    range: &FileRange,
    from: usize,
    len: usize,
) -> std::io::Result<usize> {
    let bytes = range.read(from, len).await?;
    if bytes.is_empty() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    stream.write_all(&bytes).await?;
    count_written(bytes.len(), 0);
    Ok(bytes.len())
}

/// Makes the connection's socket non-blocking, so that `sendfile` returns
/// when it is full instead of holding the shard. glommio's own socket
/// calls are unaffected: it sends and receives with `MSG_DONTWAIT` and
/// waits through io_uring polls either way. The flag is on the socket
/// itself, which the reader's handle shares.
fn set_nonblocking(stream: &TcpStream) -> std::io::Result<()> {
    let fd = stream.as_raw_fd();
    // SAFETY: fcntl on the connection's open socket; it reads and sets
    // the status flags only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// How far into a list of pieces a write has got.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct ChunkPosition {
    /// The first piece not wholly sent.
    index: usize,
    /// Bytes of that piece already sent.
    offset: usize,
}

impl ChunkPosition {
    /// The start of the piece after this one.
    fn next_piece(self) -> ChunkPosition {
        ChunkPosition {
            index: self.index + 1,
            offset: 0,
        }
    }

    /// The position after `sent` more bytes went out, past empty pieces.
    fn advance(self, chunks: &[Chunk], mut sent: usize) -> ChunkPosition {
        let ChunkPosition {
            mut index,
            mut offset,
        } = self;
        while index < chunks.len() {
            let left = chunks[index].len() - offset;
            if sent < left {
                return ChunkPosition {
                    index,
                    offset: offset + sent,
                };
            }
            sent -= left;
            index += 1;
            offset = 0;
        }
        ChunkPosition { index, offset }
    }
}

/// One `sendmsg(MSG_DONTWAIT)` of the memory pieces from `position` up to
/// the next file range: never blocks the shard; `WouldBlock` when the
/// socket buffer is full. `MSG_MORE` when a file range follows, so that
/// the fixed fields before it leave in its first packet.
fn send_now(fd: i32, chunks: &[Chunk], position: ChunkPosition) -> std::io::Result<usize> {
    let mut iovecs = Vec::with_capacity((chunks.len() - position.index).min(SEND_IOVECS_MAX));
    let mut flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    for (n, chunk) in chunks[position.index..].iter().enumerate() {
        if iovecs.len() == SEND_IOVECS_MAX {
            break;
        }
        let Chunk::Memory(chunk) = chunk else {
            flags |= libc::MSG_MORE;
            break;
        };
        let bytes = if n == 0 {
            &chunk[position.offset..]
        } else {
            &chunk[..]
        };
        if !bytes.is_empty() {
            iovecs.push(libc::iovec {
                iov_base: bytes.as_ptr() as *mut libc::c_void,
                iov_len: bytes.len(),
            });
        }
    }
    // SAFETY: an all-zero msghdr is valid (no address, no control data).
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = iovecs.as_mut_ptr();
    message.msg_iovlen = iovecs.len() as _;
    // SAFETY: every iovec points into a `Bytes` borrowed for this call, and
    // the kernel only reads them; `fd` is this connection's open socket.
    let sent = unsafe { libc::sendmsg(fd, &message, flags) };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(sent as usize)
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
