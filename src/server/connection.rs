//! One client connection: read frames, decode, dispatch to the API handler,
//! write the response. Pipelined requests are handled side by side (up to
//! `IN_FLIGHT_REQUESTS_MAX`) and answered strictly in request order.
//!
//! Invariant: anything wrong with a frame closes this connection only, with
//! a log line; nothing a client sends can panic the shard.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd};
use std::rc::Rc;

use bytes::{Buf, Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use super::handlers::{self, CloseReason, Response};
use crate::protocol::frame::{self, FrameError};

/// Why reading a frame stopped.
enum ReadError {
    Frame(FrameError),
    Io(std::io::Error),
    /// The peer closed inside a frame.
    Truncated,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Frame(error) => write!(f, "{error}"),
            ReadError::Io(error) => write!(f, "read failed: {error}"),
            ReadError::Truncated => write!(f, "connection closed inside a frame"),
        }
    }
}
use crate::shard::Shard;

/// Bytes asked of the socket per read when no frame size is known yet.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Per-connection state the handlers may keep (fetch sessions live per shard).
pub struct ConnectionContext {
    pub shard: Rc<Shard>,
    pub peer: Option<SocketAddr>,
}

impl ConnectionContext {
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

pub async fn serve(shard: Rc<Shard>, mut stream: TcpStream) {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    // A second handle on the same socket for the writer, so reading the next
    // request and writing an answer go on side by side without a lock.
    // SAFETY: dup of a descriptor this function owns; the new one is owned
    // by the writer's TcpStream, which closes it.
    let duplicate = unsafe { libc::dup(stream.as_raw_fd()) };
    if duplicate < 0 {
        log::warn!(
            "closing connection from {peer:?}: dup failed: {}",
            std::io::Error::last_os_error()
        );
        return;
    }
    // SAFETY: `duplicate` is a fresh descriptor of a connected TCP socket.
    let writer = unsafe { TcpStream::from_raw_fd(duplicate) };
    let context = Rc::new(ConnectionContext { shard, peer });
    let (queue, pending) = glommio::channels::local_channel::new_bounded(IN_FLIGHT_REQUESTS_MAX);
    let writing = glommio::spawn_local(write_answers(writer, pending, peer));
    let mut buffer = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        let max_bytes = context.shard.config.socket_request_max_bytes;
        let frame = match read_frame(&mut stream, &mut buffer, max_bytes).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(error) => {
                log::warn!("closing connection from {peer:?}: {error}");
                break;
            }
        };
        let in_flight = context.shard.request_guard();
        let request_context = context.clone();
        let task: Pending = glommio::spawn_local(async move {
            let _in_flight = in_flight;
            handlers::dispatch(&request_context, frame).await
        });
        if queue.send(task).await.is_err() {
            break;
        }
    }
    drop(queue);
    writing.await;
    let _ = stream.close().await;
}

/// Writes the answers in request order. A request that must close the
/// connection ends it here, after every earlier answer went out; requests
/// queued behind it are dropped unanswered, as the protocol expects.
async fn write_answers(
    mut stream: TcpStream,
    pending: glommio::channels::local_channel::LocalReceiver<Pending>,
    peer: Option<SocketAddr>,
) {
    while let Some(task) = pending.recv().await {
        let response = match task.await {
            Ok(response) => response,
            Err(error) => {
                log::warn!("closing connection from {peer:?}: {error}");
                break;
            }
        };
        if let Err(error) = write_response(&mut stream, response).await {
            log::debug!("connection from {peer:?} closed while writing: {error}");
            break;
        }
    }
    // Ends the reader's wait too: its next read sees the socket closed.
    let _ = stream.shutdown(std::net::Shutdown::Both).await;
}

/// Reads the next complete frame (without its 4-byte size). `Ok(None)` on a
/// clean close between frames. A size over `max_bytes` is refused before any
/// buffer is grown for it.
async fn read_frame(
    stream: &mut TcpStream,
    buffer: &mut BytesMut,
    max_bytes: usize,
) -> Result<Option<Bytes>, ReadError> {
    loop {
        if buffer.len() >= 4 {
            let size = frame::frame_size([buffer[0], buffer[1], buffer[2], buffer[3]], max_bytes)
                .map_err(ReadError::Frame)?;
            if buffer.len() >= 4 + size {
                buffer.advance(4);
                return Ok(Some(buffer.split_to(size).freeze()));
            }
            buffer.reserve(4 + size - buffer.len());
        }
        let filled = buffer.len();
        let room = (buffer.capacity() - filled).max(READ_CHUNK_BYTES);
        buffer.resize(filled + room, 0);
        let read = stream.read(&mut buffer[filled..]).await;
        let read = match read {
            Ok(read) => read,
            Err(error) => {
                buffer.truncate(filled);
                return Err(ReadError::Io(error));
            }
        };
        buffer.truncate(filled + read);
        if read == 0 {
            if filled == 0 {
                return Ok(None);
            }
            return Err(ReadError::Truncated);
        }
    }
}

async fn write_response(stream: &mut TcpStream, response: Response) -> std::io::Result<()> {
    match response {
        Response::None => Ok(()),
        Response::Frame(bytes) => stream.write_all(&bytes).await,
        Response::Chunks(chunks) => {
            for chunk in &chunks {
                stream.write_all(chunk).await?;
                // A socket with room takes every chunk at once: without this,
                // a fetch response of many megabytes to a fast reader goes out
                // in one poll of this task, holding the reactor.
                glommio::yield_if_needed().await;
            }
            Ok(())
        }
    }
}
