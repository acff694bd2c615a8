//! One client connection: read frames, decode, dispatch to the API handler,
//! write the response. Requests on a connection are answered in order, one
//! at a time, as Kafka's own broker does.
//!
//! Invariant: anything wrong with a frame closes this connection only, with
//! a log line; nothing a client sends can panic the shard.

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::{Buf, Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use super::handlers::{self, Response};
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

pub async fn serve(shard: Rc<Shard>, mut stream: TcpStream) {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    let context = ConnectionContext { shard, peer };
    let mut buffer = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        let frame = match read_frame(
            &mut stream,
            &mut buffer,
            context.shard.config.socket_request_max_bytes,
        )
        .await
        {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(error) => {
                log::warn!("closing connection from {peer:?}: {error}");
                break;
            }
        };
        let _in_flight = context.shard.request_guard();
        let response = match handlers::dispatch(&context, frame).await {
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
    let _ = stream.close().await;
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
            }
            Ok(())
        }
    }
}
