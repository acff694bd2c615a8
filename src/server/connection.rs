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
//! never waits for a full socket, nor for the disk but for pages evicted
//! since their read, and then only after `PAGE_WAITS_MAX` timer waits.
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

use super::handlers::{self, CloseReason, Response};
use super::limits::{ConnectionPermit, ShardConnections};
use super::listener::ClientListener;
use super::stream::{ReadHalf, WriteHalf};
use crate::log::{Chunk, FileRange};
use crate::metadata::brokers::Broker;
use crate::protocol::chunk::FileChunk;
use crate::protocol::frame::{self, FrameError};
use crate::security::{Principal, Session};

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

/// Most bytes taken from the socket by one read: bounds the buffer grown and
/// zero-filled per read, and the time one read holds the shard.
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
    /// The listener, its security protocol and the client's principal.
    /// Borrowed briefly, never across an await.
    pub session: RefCell<Session>,
    /// Where this node is advertised on the connection's listener, when it
    /// is not the broker listener the view advertises (`seen`).
    pub advertised: Option<(String, i32)>,
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
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    // The idle timeout is the wait for a request's first byte: a read that
    // times out while requests are in flight waits on.
    let _ = stream.set_read_timeout(Some(limits.idle_timeout));
    let (mut stream, writer, session) =
        match listener.secure(stream, writer, limits.idle_timeout).await {
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
    if session.principal != Principal::anonymous() {
        log::info!(
            "connection from {peer:?} on listener {} authenticated as {}",
            session.listener,
            session.principal
        );
    }
    let context = Rc::new(ConnectionContext {
        shard,
        peer,
        port,
        forwarded: false,
        session: RefCell::new(session),
        advertised: listener.advertised.clone(),
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
        let max_bytes = context.shard.config.socket_request_max_bytes;
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
        // Waiting here stops this connection's reads while the shard's
        // share of `queued.max.requests` is in use.
        let queued = limits.request_permit(&frame).await;
        let guard = context.shard.request_guard();
        let request_context = context.clone();
        in_flight.set(in_flight.get() + 1);
        let task: Pending = glommio::spawn_local(async move {
            let _in_flight = guard;
            let answer = handlers::dispatch(&request_context, frame).await;
            drop(queued);
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
            if waiting == 0 {
                self.release_allocation();
                if !self.wait_for_bytes(stream, in_flight, max_bytes).await? {
                    return match self.buffer.is_empty() {
                        true => Ok(None),
                        false => Err(ReadError::Truncated),
                    };
                }
                continue;
            }
            // Only what the kernel holds: the buffer grows with the bytes
            // that arrived, and no more is zero-filled than this read fills.
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
            let filled = self.buffer.len();
            self.buffer.resize(filled + room, 0);
            match stream.read(&mut self.buffer[filled..]).await {
                Ok(0) => {
                    self.buffer.truncate(filled);
                    return Err(ReadError::Truncated);
                }
                Ok(read) => self.buffer.truncate(filled + read),
                Err(error) => {
                    self.buffer.truncate(filled);
                    return Err(ReadError::Io(error));
                }
            }
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

/// Buffers handed to one `sendmsg`: Linux's `UIO_MAXIOV`.
const SEND_IOVECS_MAX: usize = 1024;
/// Most bytes of a file range given to one `sendfile`: each step is
/// checked to be in the page cache first, and other tasks run between
/// steps, as between the copy path's reads (`log::segment`).
const SEND_FILE_STEP_BYTES: usize = 256 << 10;
/// Waits for pages of a file range evicted since its read (rare: the read
/// found them cached), each after asking the kernel to read them back:
/// 1 ms is about an SSD read of a step. After the last wait the send goes
/// on and may hold the shard for one disk read.
const PAGE_WAITS_MAX: usize = 50;
/// One of those waits.
const PAGE_WAIT: std::time::Duration = std::time::Duration::from_millis(1);

/// Writes a frame in pieces with as few system calls as the socket buffer
/// allows: a non-blocking vectored `sendmsg` of the memory pieces up to the
/// next file range, and a non-blocking `sendfile` of each file range (the
/// kernel sends it from the page cache: its bytes never enter user space);
/// only when the socket is full a wait through glommio. Nothing else is
/// written to the socket meanwhile: the frame goes out whole, in order.
pub(super) async fn write_chunks(stream: &mut TcpStream, chunks: &[Chunk]) -> std::io::Result<()> {
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
                position = position.advance(chunks, sent);
                // A fast reader empties the socket as quickly as it fills:
                // without this, a response of many megabytes goes out in
                // one poll of this task, holding the reactor.
                glommio::yield_if_needed().await;
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                stream.write_all(&bytes[position.offset..]).await?;
                position = position.next_piece();
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Sends `range` from `from` bytes in, `SEND_FILE_STEP_BYTES` at a time,
/// each step checked to be in the page cache first (see `PAGE_WAITS_MAX`)
/// so that `sendfile` does not wait for the disk on the reactor. The
/// socket is non-blocking (`set_nonblocking`); when it is full, one byte
/// goes through glommio's write, which waits for room without holding the
/// shard. A file shorter than the range (cut under the send) fails the
/// write: the frame cannot be finished, and the connection closes.
async fn send_file_range(
    stream: &mut TcpStream,
    range: &FileRange,
    mut from: usize,
) -> std::io::Result<()> {
    while from < range.byte_len() {
        let step = (range.byte_len() - from).min(SEND_FILE_STEP_BYTES);
        wait_for_pages(range, from, step).await;
        match range.send(stream.as_raw_fd(), from, step) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(sent) => {
                from += sent;
                glommio::yield_if_needed().await;
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                stream.write_all(&[range.byte_at(from)?]).await?;
                from += 1;
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Waits until the `len` bytes `from` bytes into `range` are in the page
/// cache, having asked the kernel to read them, for at most
/// `PAGE_WAITS_MAX` waits of `PAGE_WAIT`.
pub(super) async fn wait_for_pages(range: &FileRange, from: usize, len: usize) {
    if range.cached(from, len) {
        return;
    }
    range.prefetch(from, len);
    for _ in 0..PAGE_WAITS_MAX {
        glommio::timer::sleep(PAGE_WAIT).await;
        if range.cached(from, len) {
            return;
        }
    }
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
mod tests {
    use super::*;
    use futures_lite::AsyncReadExt;

    fn chunks(lengths: &[usize]) -> Vec<Chunk> {
        lengths
            .iter()
            .map(|&n| Chunk::Memory(Bytes::from(vec![7u8; n])))
            .collect()
    }

    #[test]
    fn advance_walks_across_pieces_and_skips_empty_ones() {
        let pieces = chunks(&[3, 0, 5, 2]);
        let start = ChunkPosition::default();
        let at = |index, offset| ChunkPosition { index, offset };
        assert_eq!(start.advance(&pieces, 2), at(0, 2));
        assert_eq!(start.advance(&pieces, 3), at(2, 0));
        assert_eq!(start.advance(&pieces, 4), at(2, 1));
        assert_eq!(at(2, 1).advance(&pieces, 4), at(3, 0));
        assert_eq!(at(2, 1).advance(&pieces, 5), at(3, 1));
        assert_eq!(start.advance(&pieces, 10), at(4, 0));
    }

    /// Runs `reader` against a real socket whose client sends `pieces`
    /// (pausing between them) and then stays connected and silent.
    fn read_from_client<T: Send + 'static>(
        pieces: Vec<Vec<u8>>,
        reader: impl FnOnce(TcpStream) -> futures_lite::future::BoxedLocal<T> + Send + 'static,
    ) -> T {
        crate::shard::block_on(move || async move {
            let listener = glommio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let address = listener.local_addr().expect("address");
            let (done, finished) = futures_channel::oneshot::channel::<()>();
            let client = glommio::spawn_local(async move {
                let mut stream = TcpStream::connect(address).await.expect("connect");
                for piece in pieces {
                    stream.write_all(&piece).await.expect("write");
                    glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
                }
                let _ = finished.await;
            });
            let stream = listener.accept().await.expect("accept");
            let result = reader(stream).await;
            drop(done);
            client.await;
            result
        })
    }

    fn frame_bytes(body: &[u8]) -> Vec<u8> {
        let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(body);
        bytes
    }

    #[test]
    fn frames_split_and_joined_anyhow_come_out_whole_and_in_order() {
        let bodies: Vec<Vec<u8>> = (1..=5u8).map(|n| vec![n; n as usize * 1000]).collect();
        let stream: Vec<u8> = bodies.iter().flat_map(|b| frame_bytes(b)).collect();
        // Cuts inside a size prefix, inside bodies, and several frames at once.
        let cuts = [0, 2, 3, 1500, 1504, 9000, stream.len()];
        let pieces = cuts
            .windows(2)
            .map(|w| stream[w[0]..w[1]].to_vec())
            .collect();
        let frames = read_from_client(pieces, move |stream| {
            Box::pin(async move {
                let mut stream = ReadHalf::Plain(stream);
                let mut reader = FrameReader::default();
                let in_flight = Cell::new(0);
                let mut frames = Vec::new();
                for _ in 0..5 {
                    let frame = reader.next(&mut stream, 1 << 20, &in_flight).await;
                    frames.push(frame.ok().flatten().expect("a frame").to_vec());
                }
                frames
            })
        });
        assert!(frames == bodies, "frames differ");
    }

    /// A frame whose size is known before all of it is read lies in an
    /// allocation that ends where it ends: the bytes of the next frame, sent
    /// with its last piece, go to another (`frame_allocation_bytes_max`).
    #[test]
    fn a_frame_read_in_pieces_shares_its_allocation_with_no_other() {
        let first = vec![1u8; 3 * READ_CHUNK_BYTES_MAX];
        let second = vec![2u8; 100];
        let mut stream = frame_bytes(&first);
        stream.extend_from_slice(&frame_bytes(&second));
        let cuts = [0, 1000, READ_CHUNK_BYTES_MAX, stream.len()];
        let pieces = cuts
            .windows(2)
            .map(|w| stream[w[0]..w[1]].to_vec())
            .collect();
        let (frames, spare_after_first) = read_from_client(pieces, move |stream| {
            Box::pin(async move {
                let mut stream = ReadHalf::Plain(stream);
                let mut reader = FrameReader::default();
                let in_flight = Cell::new(0);
                let one = reader.next(&mut stream, 1 << 20, &in_flight).await;
                let spare = reader.buffer.capacity();
                let two = reader.next(&mut stream, 1 << 20, &in_flight).await;
                let frames: Vec<Vec<u8>> = [one, two]
                    .into_iter()
                    .map(|frame| frame.ok().flatten().expect("a frame").to_vec())
                    .collect();
                (frames, spare)
            })
        });
        assert!(frames == [first, second], "frames differ");
        assert_eq!(
            spare_after_first, 0,
            "room past the frame in its allocation"
        );
    }

    #[test]
    fn a_big_announced_frame_pins_only_what_arrived() {
        let announced: u32 = 100_000_000;
        let mut piece = announced.to_be_bytes().to_vec();
        piece.extend_from_slice(&[7; 10]);
        let (error, capacity) = read_from_client(vec![piece], |stream| {
            Box::pin(async move {
                stream
                    .set_read_timeout(Some(std::time::Duration::from_millis(200)))
                    .expect("timeout");
                let mut stream = ReadHalf::Plain(stream);
                let mut reader = FrameReader::default();
                let result = reader.next(&mut stream, 1 << 30, &Cell::new(0)).await;
                (
                    result.err().map(|e| e.to_string()),
                    reader.buffer.capacity(),
                )
            })
        });
        assert_eq!(error.as_deref(), Some("idle for connections.max.idle.ms"));
        assert!(capacity < 1024, "{capacity} bytes held for 14 received");
    }

    #[test]
    fn a_frame_the_kernel_holds_whole_is_read_without_moving_its_bytes() {
        const FRAME_BYTES: usize = 1 << 20;
        // Room for the whole frame in the socket, set before the connection
        // is made so that the window offered covers it.
        const RECEIVE_BUFFER_BYTES: usize = 4 << 20;
        let body: Vec<u8> = (0..FRAME_BYTES).map(|n| (n % 251) as u8).collect();
        let sent = frame_bytes(&body);
        let (frame, capacity_left) = crate::shard::block_on(move || async move {
            let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                .expect("socket");
            socket
                .set_recv_buffer_size(RECEIVE_BUFFER_BYTES)
                .expect("SO_RCVBUF");
            let any_port: SocketAddr = "127.0.0.1:0".parse().expect("address");
            socket.bind(&any_port.into()).expect("bind");
            socket.listen(1).expect("listen");
            // SAFETY: the listening socket's descriptor, whose ownership
            // passes to the glommio listener.
            let listener = unsafe {
                glommio::net::TcpListener::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(socket))
            };
            let address = listener.local_addr().expect("address");
            let (written, all_written) = futures_channel::oneshot::channel::<()>();
            let client = glommio::spawn_local(async move {
                let mut stream = TcpStream::connect(address).await.expect("connect");
                stream.write_all(&sent).await.expect("write");
                let _ = written.send(());
                stream
            });
            let mut stream = ReadHalf::Plain(listener.accept().await.expect("accept"));
            all_written.await.expect("the client wrote");
            let mut reader = FrameReader::default();
            let frame = reader.next(&mut stream, 1 << 30, &Cell::new(0)).await;
            drop(client.await);
            (frame.ok().flatten(), reader.buffer.capacity())
        });
        assert!(frame.is_some_and(|f| f == body), "the frame differs");
        // Grown read by read, the buffer would have doubled past the frame
        // (copying it at each step) and kept about as much again.
        assert!(
            capacity_left < READ_CHUNK_BYTES_MAX,
            "{capacity_left} bytes of room left past a frame read whole"
        );
    }

    #[test]
    fn chunks_arrive_whole_and_in_order_through_a_small_socket_buffer() {
        // Pieces much larger than the socket buffer force the WouldBlock
        // path; many small ones force more than one sendmsg.
        let mut pieces = chunks(&[1, 0, 3_000_000, 17]);
        pieces.extend((0..3000).map(|n| Chunk::Memory(Bytes::from(vec![(n % 251) as u8; n % 97]))));
        let expected: Vec<u8> = pieces
            .iter()
            .flat_map(|p| p.memory().expect("in memory").iter().copied())
            .collect();
        let received = send_through_socket(pieces);
        assert_eq!(received.len(), expected.len());
        assert!(received == expected, "bytes differ");
    }

    /// What a reader on the other end of a socket receives when
    /// `write_chunks` sends `pieces` on a non-blocking socket.
    fn send_through_socket(pieces: Vec<Chunk>) -> Vec<u8> {
        crate::shard::block_on(move || async move {
            let listener = glommio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let address = listener.local_addr().expect("address");
            let reader = glommio::spawn_local(async move {
                let mut stream = TcpStream::connect(address).await.expect("connect");
                let mut all = Vec::new();
                stream.read_to_end(&mut all).await.expect("read");
                all
            });
            let mut stream = listener.accept().await.expect("accept");
            set_nonblocking(&stream).expect("O_NONBLOCK");
            write_chunks(&mut stream, &pieces).await.expect("write");
            stream.close().await.expect("close");
            reader.await
        })
    }

    /// File ranges go out between memory pieces, in order, through a socket
    /// that fills (each wait for room sends one byte through glommio), and
    /// from a file removed after the ranges were made.
    #[test]
    fn file_ranges_arrive_whole_and_in_order_between_memory_pieces() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("segment");
        let file_bytes: Vec<u8> = (0..5_000_000u32).map(|n| (n % 241) as u8).collect();
        std::fs::write(&path, &file_bytes).expect("write the file");
        let file = std::sync::Arc::new(std::os::fd::OwnedFd::from(
            std::fs::File::open(&path).expect("open"),
        ));
        std::fs::remove_file(&path).expect("unlink");
        let range = |start: usize, len: usize| {
            Chunk::File(FileRange::new(file.clone(), start as u64, len, 0..1))
        };
        let pieces = vec![
            Chunk::Memory(Bytes::from_static(b"head")),
            range(10, 4_000_000),
            range(4_500_000, 3),
            Chunk::Memory(Bytes::from_static(b"middle")),
            range(0, 1),
            Chunk::Memory(Bytes::from_static(b"tail")),
        ];
        let mut expected = b"head".to_vec();
        expected.extend_from_slice(&file_bytes[10..4_000_010]);
        expected.extend_from_slice(&file_bytes[4_500_000..4_500_003]);
        expected.extend_from_slice(b"middle");
        expected.extend_from_slice(&file_bytes[..1]);
        expected.extend_from_slice(b"tail");
        let received = send_through_socket(pieces);
        assert_eq!(received.len(), expected.len());
        assert!(received == expected, "bytes differ");
    }
}
