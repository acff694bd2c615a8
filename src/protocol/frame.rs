//! Request framing: the 4-byte size prefix and the request header.
//!
//! Invariant: nothing here panics on any input, and a frame size is checked
//! against `socket.request.max.bytes` before a byte is allocated for it.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;

/// Why a connection is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    Io(String),
    /// The peer closed inside a frame.
    Truncated,
    /// A size prefix that is zero or negative.
    BadSize(i32),
    /// A size prefix over `socket.request.max.bytes`.
    TooLarge {
        size: usize,
        max: usize,
    },
    UnknownApiKey(i16),
    UnsupportedVersion {
        api_key: i16,
        version: i16,
    },
    Malformed(String),
    Encode(String),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Io(error) => write!(f, "read failed: {error}"),
            FrameError::Truncated => write!(f, "connection closed inside a frame"),
            FrameError::BadSize(size) => write!(f, "invalid frame size {size}"),
            FrameError::TooLarge { size, max } => write!(
                f,
                "frame of {size} bytes is larger than socket.request.max.bytes ({max})"
            ),
            FrameError::UnknownApiKey(key) => write!(f, "unsupported API key {key}"),
            FrameError::UnsupportedVersion { api_key, version } => {
                write!(f, "unsupported version {version} of API key {api_key}")
            }
            FrameError::Malformed(reason) => write!(f, "malformed request: {reason}"),
            FrameError::Encode(reason) => write!(f, "cannot encode response: {reason}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Smallest request: api key, version, correlation id, client id length.
const REQUEST_HEADER_SIZE_MIN: usize = 10;

/// Checks a size prefix against `max_bytes`; returns the frame size.
pub fn check_frame_size(prefix: [u8; 4], max_bytes: usize) -> Result<usize, FrameError> {
    let size = i32::from_be_bytes(prefix);
    if size <= 0 {
        return Err(FrameError::BadSize(size));
    }
    let size = size as usize;
    if size > max_bytes {
        return Err(FrameError::TooLarge {
            size,
            max: max_bytes,
        });
    }
    Ok(size)
}

/// The api key, version and correlation id at the start of a request frame.
pub fn peek_request_ids(frame: &[u8]) -> Option<(i16, i16, i32)> {
    if frame.len() < 8 {
        return None;
    }
    Some((
        i16::from_be_bytes([frame[0], frame[1]]),
        i16::from_be_bytes([frame[2], frame[3]]),
        i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    ))
}

/// Decodes the request header; returns it and the body after it.
pub fn parse_request_header(frame: &Bytes) -> Result<(RequestHeader, Bytes), FrameError> {
    if frame.len() < REQUEST_HEADER_SIZE_MIN {
        return Err(FrameError::Malformed(format!(
            "{} bytes is shorter than a request header",
            frame.len()
        )));
    }
    let (key, version, _) = peek_request_ids(frame).ok_or(FrameError::Truncated)?;
    let api_key = ApiKey::try_from(key).map_err(|_| FrameError::UnknownApiKey(key))?;
    let header_version = api_key.request_header_version(version);
    let mut body = frame.clone();
    let header = guarded(|| RequestHeader::decode(&mut body, header_version))?;
    Ok((header, body))
}

/// Decodes a request body of `api_key` at `version`.
pub fn decode_request(
    api_key: ApiKey,
    version: i16,
    body: &mut Bytes,
) -> Result<RequestKind, FrameError> {
    guarded(|| RequestKind::decode(api_key, body, version))
}

/// Runs a decoder of the protocol crate, turning both its errors and any
/// panic on hostile input into `FrameError::Malformed`.
fn guarded<T>(decode: impl FnOnce() -> anyhow::Result<T>) -> Result<T, FrameError> {
    match catch_unwind(AssertUnwindSafe(decode)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(FrameError::Malformed(error.to_string())),
        Err(_) => Err(FrameError::Malformed("decoder panicked".to_string())),
    }
}
