//! A connection's two halves as the request loop sees them: the socket
//! itself on a PLAINTEXT listener, or the TLS reader and writer on an SSL
//! one (`security::tls`). An enum, not a trait object: the PLAINTEXT path
//! costs one branch per read or write and keeps `sendfile`.
//!
//! Invariant: over TLS no byte bypasses the encryption: a Fetch answer's
//! file ranges are read into a bounded buffer (`TLS_FILE_STEP_BYTES`),
//! cached pages with a `pread`, evicted ones through io_uring (after the
//! same page-cache check `sendfile` makes), and encrypted; the shard never
//! waits for the disk on either path.

use std::os::fd::AsRawFd;

use bytes::BytesMut;
use futures_lite::AsyncReadExt;
use glommio::net::TcpStream;

use super::connection::{count_written, write_response};
use super::handlers::Response;
use crate::log::{Chunk, FileRange};
use crate::protocol::chunk::FileChunk;
use crate::security::tls::{TlsReader, TlsWriter};

/// Bytes of an answer gathered before they are encrypted over TLS (a file
/// range is read this much at a time): four full TLS records, the buffer
/// a TLS connection holds while it sends an answer.
const TLS_FILE_STEP_BYTES: usize = 64 << 10;

/// The half of a connection requests are read from.
pub enum ReadHalf {
    Plain(TcpStream),
    Tls(TlsReader),
}

/// The half of a connection answers are written to.
pub enum WriteHalf {
    Plain(TcpStream),
    Tls(TlsWriter),
}

impl ReadHalf {
    pub async fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match self {
            ReadHalf::Plain(stream) => stream.read(buffer).await,
            ReadHalf::Tls(tls) => tls.read(buffer).await,
        }
    }

    /// Bytes a read returns without waiting: what the kernel holds of the
    /// socket (FIONREAD), or the plaintext TLS already decrypted.
    pub fn bytes_waiting(&self) -> usize {
        match self {
            ReadHalf::Plain(stream) => bytes_waiting(stream),
            ReadHalf::Tls(tls) => tls.plaintext_waiting(),
        }
    }

    /// Appends at most `len` of the `bytes_waiting` (at least one) to the
    /// spare capacity of `buffer`, without waiting: `WouldBlock` when there
    /// were none after all. The socket's bytes go straight into the spare
    /// capacity (`receive`); TLS plaintext is copied out of rustls.
    pub fn read_waiting(&mut self, buffer: &mut BytesMut, len: usize) -> std::io::Result<usize> {
        match self {
            ReadHalf::Plain(stream) => receive(stream, buffer, len),
            ReadHalf::Tls(tls) => {
                let filled = buffer.len();
                let len = len.min(buffer.capacity() - filled);
                buffer.resize(filled + len, 0);
                let read = tls.read_plaintext(&mut buffer[filled..]);
                buffer.truncate(filled + *read.as_ref().unwrap_or(&0));
                read
            }
        }
    }

    pub fn socket(&self) -> &TcpStream {
        match self {
            ReadHalf::Plain(stream) => stream,
            ReadHalf::Tls(tls) => tls.socket(),
        }
    }
}

/// One `recv(MSG_DONTWAIT)` of at most `len` bytes (and at least one) into
/// the spare capacity of `buffer`, which then covers exactly the bytes the
/// kernel wrote: the buffer is not zero-filled first, as a read through a
/// `&mut [u8]` would need. For bytes the kernel already holds
/// (`bytes_waiting`): this never waits.
fn receive(stream: &TcpStream, buffer: &mut BytesMut, len: usize) -> std::io::Result<usize> {
    let spare = buffer.spare_capacity_mut();
    let len = len.min(spare.len());
    assert!(len > 0, "a receive into no room");
    // SAFETY: the kernel writes at most `len` bytes into the spare capacity,
    // which nothing else touches during the call, and reads none of it;
    // the descriptor is this connection's open socket.
    let received = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            spare.as_mut_ptr().cast(),
            len,
            libc::MSG_DONTWAIT,
        )
    };
    let Ok(received) = usize::try_from(received) else {
        return Err(std::io::Error::last_os_error());
    };
    assert!(received <= len, "recv wrote more than asked");
    // SAFETY: the kernel wrote `received` bytes at the start of the spare
    // capacity, right after the buffer's initialized bytes.
    unsafe { buffer.set_len(buffer.len() + received) };
    Ok(received)
}

/// Bytes the kernel holds for this socket (FIONREAD); 0 when none or on error.
fn bytes_waiting(stream: &TcpStream) -> usize {
    let mut waiting: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer, which points to
    // a live local; the descriptor is this connection's open socket.
    let result = unsafe { libc::ioctl(stream.as_raw_fd(), libc::FIONREAD, &mut waiting) };
    if result < 0 {
        return 0;
    }
    usize::try_from(waiting).unwrap_or(0)
}

impl WriteHalf {
    pub fn socket(&self) -> &TcpStream {
        match self {
            WriteHalf::Plain(stream) => stream,
            WriteHalf::Tls(tls) => tls.socket(),
        }
    }

    /// Writes one answer whole.
    pub async fn write_response(&mut self, response: Response) -> std::io::Result<()> {
        match (self, response) {
            (_, Response::None) => Ok(()),
            (WriteHalf::Plain(stream), response) => write_response(stream, response).await,
            (WriteHalf::Tls(tls), Response::Frame(bytes)) => {
                tls.write_all(&bytes).await?;
                count_written(bytes.len(), 0);
                tls.flush().await
            }
            (WriteHalf::Tls(tls), Response::Chunks(chunks)) => {
                write_chunks_tls(tls, &chunks).await?;
                tls.flush().await
            }
        }
    }

    /// Ends the connection: over TLS with a close_notify first.
    pub async fn close(self) {
        match self {
            WriteHalf::Plain(stream) => {
                let _ = stream.shutdown(std::net::Shutdown::Both).await;
            }
            WriteHalf::Tls(tls) => tls.close().await,
        }
    }
}

/// The TLS copy path of `write_chunks`: pieces are gathered into one
/// buffer of at most `TLS_FILE_STEP_BYTES` and encrypted when it fills
/// (every write to rustls makes at least one TLS record, so a fetch
/// answer's many small fixed fields are not each a record of their own);
/// file ranges are read into it a step at a time (`copy_file_range`).
/// Every byte is counted as written from memory (`count_written`).
async fn write_chunks_tls(tls: &mut TlsWriter, chunks: &[Chunk]) -> std::io::Result<()> {
    let mut buffer = Vec::with_capacity(TLS_FILE_STEP_BYTES);
    let mut written = 0;
    for chunk in chunks {
        match chunk {
            Chunk::Memory(bytes) if buffer.len() + bytes.len() <= TLS_FILE_STEP_BYTES => {
                buffer.extend_from_slice(bytes)
            }
            Chunk::Memory(bytes) => {
                tls.write_all(&buffer).await?;
                written += buffer.len();
                buffer.clear();
                tls.write_all(bytes).await?;
                written += bytes.len();
            }
            Chunk::File(range) => written += copy_file_range(tls, range, &mut buffer).await?,
        }
        glommio::yield_if_needed().await;
    }
    tls.write_all(&buffer).await?;
    count_written(written + buffer.len(), 0);
    Ok(())
}

/// Appends `range` to `buffer` a step at a time, encrypting the buffer
/// whenever it is full: the bytes encrypted meanwhile. A step in the page
/// cache is read with a `pread` that does not wait; one evicted since the
/// range was made is read through io_uring, as the PLAINTEXT path reads it
/// back (`FileRange::read`).
async fn copy_file_range(
    tls: &mut TlsWriter,
    range: &FileRange,
    buffer: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut written = 0;
    let mut from = 0;
    while from < range.byte_len() {
        if buffer.len() == TLS_FILE_STEP_BYTES {
            tls.write_all(buffer).await?;
            written += buffer.len();
            buffer.clear();
        }
        let filled = buffer.len();
        let step = (range.byte_len() - from).min(TLS_FILE_STEP_BYTES - filled);
        let read = match range.cached(from, step) {
            true => {
                buffer.resize(filled + step, 0);
                let read = range.read_cached(from, &mut buffer[filled..]);
                let read = read.inspect_err(|_| buffer.truncate(filled))?;
                buffer.truncate(filled + read);
                read
            }
            false => {
                let bytes = range.read(from, step).await?;
                buffer.extend_from_slice(&bytes);
                bytes.len()
            }
        };
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        from += read;
        glommio::yield_if_needed().await;
    }
    Ok(written)
}
