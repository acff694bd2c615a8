//! shoal's private MetadataFetch on the CONTROLLER listener: an observer
//! (a node with `process.roles=broker` alone, not a voter) asks any voter
//! for the committed metadata log after the index it has applied, as
//! Kafka's observers fetch `__cluster_metadata` from the quorum.
//!
//! Request frame (after Kafka's 4-byte size prefix), big-endian:
//! `api_key i16 = METADATA_FETCH_API_KEY`, `api_version i16 = 0`,
//! `correlation_id i32`, `sender_id i32`, `after_index i64` (the index
//! the observer applied through; 0: nothing), `max_wait_ms i32`,
//! `max_bytes i32`. As `wire.rs`'s frame, the first 8 bytes are Kafka's
//! request header prefix, so the listener routes it by its api key.
//!
//! Response frame (after the size prefix): `correlation_id i32`,
//! `error_code i16`, `leader_id i32`, `leader_epoch i64` (the quorum
//! leader and term as the answering voter knows them), `kind i8`, then
//! for `KIND_ENTRIES` `count i32` and `count` times `index i64`,
//! `length i32`, the records bytes of one entry (`node::encode_records`;
//! empty for an entry without records); for `KIND_SNAPSHOT` `index i64`,
//! `length i32` and the image's `snapshot_records` encoded alike.
//!
//! Pure: bytes in, values out; every length is checked before it is used,
//! nothing here panics on what a socket delivered.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::wire::CONTROLLER_FRAME_BYTES_MAX;

/// The request's api key: next to `wire::RAFT_MESSAGES_API_KEY`, far
/// above Kafka's, never listed by ApiVersions.
pub const METADATA_FETCH_API_KEY: i16 = 32_001;

/// The only version of the request.
pub const METADATA_FETCH_VERSION: i16 = 0;

/// `api_key`, `api_version`, `correlation_id`, `sender_id`,
/// `after_index`, `max_wait_ms`, `max_bytes`.
const REQUEST_BYTES: usize = 2 + 2 + 4 + 4 + 8 + 4 + 4;

/// `correlation_id`, `error_code`, `leader_id`, `leader_epoch`, `kind`.
const RESPONSE_HEADER_BYTES: usize = 4 + 2 + 4 + 8 + 1;

/// The `index` and `length` before each entry's (or the snapshot's) bytes.
pub const ENTRY_HEADER_BYTES: usize = 8 + 4;

/// The `count` of an entries answer.
const COUNT_BYTES: usize = 4;

/// Record bytes one answer may carry, whatever the request asks: what a
/// response frame holds after its headers.
pub const ANSWER_BYTES_MAX: usize =
    CONTROLLER_FRAME_BYTES_MAX - RESPONSE_HEADER_BYTES - COUNT_BYTES - ENTRY_HEADER_BYTES;

const KIND_ENTRIES: i8 = 0;
const KIND_SNAPSHOT: i8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchRequest {
    pub sender_id: i32,
    pub after_index: u64,
    pub max_wait_ms: u32,
    pub max_bytes: u32,
}

/// One committed entry: its index and its records' bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedEntry {
    pub index: u64,
    pub records: Bytes,
}

/// What the voter hands the observer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Committed entries right after the request's index, contiguous;
    /// none: nothing new within the wait.
    Entries(Vec<FetchedEntry>),
    /// The image at `index`, for an observer behind the voter's compaction.
    Snapshot(FetchedEntry),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResponse {
    /// Kafka's error code; when not 0, `fetched` is an empty `Entries`.
    pub error_code: i16,
    /// The quorum leader's node id as the voter knows it, or -1.
    pub leader_id: i32,
    pub leader_epoch: u64,
    pub fetched: Fetched,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchWireError {
    /// The frame ends before its header does, or has bytes after its end.
    BadSize {
        size_bytes: usize,
    },
    UnsupportedVersion {
        version: i16,
    },
    /// A negative count, length or field, or one the frame has no bytes for.
    BadLength {
        length: i64,
        left_bytes: usize,
    },
    UnknownKind {
        kind: i8,
    },
}

impl fmt::Display for FetchWireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchWireError::BadSize { size_bytes } => {
                write!(f, "metadata fetch frame of {size_bytes} bytes")
            }
            FetchWireError::UnsupportedVersion { version } => {
                write!(f, "unsupported metadata fetch version {version}")
            }
            FetchWireError::BadLength { length, left_bytes } => write!(
                f,
                "metadata fetch length {length} with {left_bytes} bytes left"
            ),
            FetchWireError::UnknownKind { kind } => {
                write!(f, "metadata fetch answer of unknown kind {kind}")
            }
        }
    }
}

impl std::error::Error for FetchWireError {}

/// The whole request frame, size prefix included.
pub fn encode_request(request: &FetchRequest, correlation_id: i32) -> Bytes {
    let mut frame = BytesMut::with_capacity(4 + REQUEST_BYTES);
    frame.put_i32(REQUEST_BYTES as i32);
    frame.put_i16(METADATA_FETCH_API_KEY);
    frame.put_i16(METADATA_FETCH_VERSION);
    frame.put_i32(correlation_id);
    frame.put_i32(request.sender_id);
    frame.put_i64(i64::try_from(request.after_index).unwrap_or(i64::MAX));
    frame.put_i32(i32::try_from(request.max_wait_ms).unwrap_or(i32::MAX));
    frame.put_i32(i32::try_from(request.max_bytes).unwrap_or(i32::MAX));
    frame.freeze()
}

/// The correlation id and the request of a frame (size prefix removed)
/// whose api key the caller read as `METADATA_FETCH_API_KEY`.
pub fn decode_request(frame: &[u8]) -> Result<(i32, FetchRequest), FetchWireError> {
    if frame.len() != REQUEST_BYTES {
        return Err(FetchWireError::BadSize {
            size_bytes: frame.len(),
        });
    }
    let mut rest = frame;
    let _api_key = rest.get_i16();
    let version = rest.get_i16();
    if version != METADATA_FETCH_VERSION {
        return Err(FetchWireError::UnsupportedVersion { version });
    }
    let correlation_id = rest.get_i32();
    let sender_id = rest.get_i32();
    let after_index = non_negative(rest.get_i64(), rest.len())?;
    let max_wait_ms = non_negative(rest.get_i32().into(), rest.len())?;
    let max_bytes = non_negative(rest.get_i32().into(), rest.len())?;
    Ok((
        correlation_id,
        FetchRequest {
            sender_id,
            after_index,
            max_wait_ms: u32::try_from(max_wait_ms).unwrap_or(u32::MAX),
            max_bytes: u32::try_from(max_bytes).unwrap_or(u32::MAX),
        },
    ))
}

fn non_negative(value: i64, left_bytes: usize) -> Result<u64, FetchWireError> {
    u64::try_from(value).map_err(|_| FetchWireError::BadLength {
        length: value,
        left_bytes,
    })
}

/// The size (without the prefix) of a response carrying entries or a
/// snapshot of these record lengths.
pub fn response_bytes(record_lengths: impl Iterator<Item = usize>) -> usize {
    RESPONSE_HEADER_BYTES
        + COUNT_BYTES
        + record_lengths
            .map(|length| ENTRY_HEADER_BYTES + length)
            .sum::<usize>()
}

/// The whole response frame, size prefix included; None when it would
/// exceed `CONTROLLER_FRAME_BYTES_MAX` (the caller answers an error).
pub fn encode_response(response: &FetchResponse, correlation_id: i32) -> Option<Bytes> {
    let entries: &[FetchedEntry] = match &response.fetched {
        Fetched::Entries(entries) => entries,
        Fetched::Snapshot(snapshot) => std::slice::from_ref(snapshot),
    };
    let size_bytes = response_bytes(entries.iter().map(|entry| entry.records.len()));
    if size_bytes > CONTROLLER_FRAME_BYTES_MAX {
        return None;
    }
    let mut frame = BytesMut::with_capacity(4 + size_bytes);
    frame.put_i32(0);
    frame.put_i32(correlation_id);
    frame.put_i16(response.error_code);
    frame.put_i32(response.leader_id);
    frame.put_i64(i64::try_from(response.leader_epoch).unwrap_or(i64::MAX));
    match &response.fetched {
        Fetched::Entries(entries) => {
            frame.put_i8(KIND_ENTRIES);
            frame.put_i32(entries.len() as i32);
        }
        Fetched::Snapshot(_) => frame.put_i8(KIND_SNAPSHOT),
    }
    for entry in entries {
        frame.put_i64(i64::try_from(entry.index).unwrap_or(i64::MAX));
        frame.put_i32(entry.records.len() as i32);
        frame.put_slice(&entry.records);
    }
    let size = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    Some(frame.freeze())
}

/// The correlation id and the response of a frame (size prefix removed).
pub fn decode_response(frame: &Bytes) -> Result<(i32, FetchResponse), FetchWireError> {
    if frame.len() < RESPONSE_HEADER_BYTES {
        return Err(FetchWireError::BadSize {
            size_bytes: frame.len(),
        });
    }
    let mut rest = frame.clone();
    let correlation_id = rest.get_i32();
    let error_code = rest.get_i16();
    let leader_id = rest.get_i32();
    let leader_epoch = non_negative(rest.get_i64(), rest.len())?;
    let kind = rest.get_i8();
    let fetched = match kind {
        KIND_ENTRIES => {
            let count = if rest.len() >= COUNT_BYTES {
                rest.get_i32()
            } else {
                -1
            };
            if count < 0 || count as usize > rest.len() / ENTRY_HEADER_BYTES {
                return Err(FetchWireError::BadLength {
                    length: count.into(),
                    left_bytes: rest.len(),
                });
            }
            let mut entries = Vec::with_capacity(count as usize);
            for _ in 0..count {
                entries.push(decode_entry(&mut rest)?);
            }
            Fetched::Entries(entries)
        }
        KIND_SNAPSHOT => Fetched::Snapshot(decode_entry(&mut rest)?),
        kind => return Err(FetchWireError::UnknownKind { kind }),
    };
    if !rest.is_empty() {
        return Err(FetchWireError::BadSize {
            size_bytes: frame.len(),
        });
    }
    Ok((
        correlation_id,
        FetchResponse {
            error_code,
            leader_id,
            leader_epoch,
            fetched,
        },
    ))
}

fn decode_entry(rest: &mut Bytes) -> Result<FetchedEntry, FetchWireError> {
    if rest.len() < ENTRY_HEADER_BYTES {
        return Err(FetchWireError::BadLength {
            length: -1,
            left_bytes: rest.len(),
        });
    }
    let index = non_negative(rest.get_i64(), rest.len())?;
    let length = rest.get_i32();
    if length < 0 || length as usize > rest.len() {
        return Err(FetchWireError::BadLength {
            length: length.into(),
            left_bytes: rest.len(),
        });
    }
    let records = rest.split_to(length as usize);
    Ok(FetchedEntry { index, records })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, length: usize) -> FetchedEntry {
        FetchedEntry {
            index,
            records: Bytes::from(vec![index as u8; length]),
        }
    }

    fn body(frame: &Bytes) -> Bytes {
        let size = i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(size, frame.len() - 4);
        frame.slice(4..)
    }

    fn responses() -> Vec<FetchResponse> {
        vec![
            FetchResponse {
                error_code: 0,
                leader_id: 2,
                leader_epoch: 7,
                fetched: Fetched::Entries(vec![entry(5, 3), entry(6, 0), entry(7, 20)]),
            },
            FetchResponse {
                error_code: 0,
                leader_id: -1,
                leader_epoch: 0,
                fetched: Fetched::Entries(Vec::new()),
            },
            FetchResponse {
                error_code: 0,
                leader_id: 1,
                leader_epoch: 3,
                fetched: Fetched::Snapshot(entry(40, 17)),
            },
        ]
    }

    #[test]
    fn requests_and_responses_decode_to_what_was_encoded() {
        let request = FetchRequest {
            sender_id: 4,
            after_index: 12,
            max_wait_ms: 500,
            max_bytes: 1 << 20,
        };
        let frame = encode_request(&request, 9);
        assert_eq!(
            i16::from_be_bytes([frame[4], frame[5]]),
            METADATA_FETCH_API_KEY
        );
        assert_eq!(decode_request(&body(&frame)), Ok((9, request)));
        for response in responses() {
            let frame = encode_response(&response, 11).unwrap();
            assert_eq!(decode_response(&body(&frame)), Ok((11, response)));
        }
    }

    #[test]
    fn every_cut_and_every_bent_byte_is_an_error_not_a_panic() {
        let request = body(&encode_request(
            &FetchRequest {
                sender_id: 4,
                after_index: 12,
                max_wait_ms: 500,
                max_bytes: 100,
            },
            1,
        ));
        for cut in 0..request.len() {
            assert!(decode_request(&request[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = request.to_vec();
        longer.push(0);
        assert!(decode_request(&longer).is_err());
        for field in [12, 20, 24] {
            let mut negative = request.to_vec();
            negative[field] = 0x80;
            assert!(matches!(
                decode_request(&negative),
                Err(FetchWireError::BadLength { .. })
            ));
        }
        let mut other_version = request.to_vec();
        other_version[2..4].copy_from_slice(&1i16.to_be_bytes());
        assert_eq!(
            decode_request(&other_version),
            Err(FetchWireError::UnsupportedVersion { version: 1 })
        );
        for response in responses() {
            let frame = body(&encode_response(&response, 3).unwrap());
            for cut in 0..frame.len() {
                assert!(
                    decode_response(&frame.slice(..cut)).is_err(),
                    "cut at {cut}"
                );
            }
            for position in 0..frame.len() {
                for value in [0x00, 0x7f, 0x80, 0xff] {
                    let mut bent = frame.to_vec();
                    bent[position] = value;
                    let _ = decode_response(&Bytes::from(bent));
                }
            }
        }
        let entries = body(&encode_response(&responses()[0], 3).unwrap());
        let mut huge_count = entries.to_vec();
        huge_count[19..23].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(
            decode_response(&Bytes::from(huge_count)),
            Err(FetchWireError::BadLength { .. })
        ));
        let mut unknown_kind = entries.to_vec();
        unknown_kind[18] = 9;
        assert_eq!(
            decode_response(&Bytes::from(unknown_kind)),
            Err(FetchWireError::UnknownKind { kind: 9 })
        );
    }

    #[test]
    fn a_response_over_a_frame_does_not_encode() {
        let response = FetchResponse {
            error_code: 0,
            leader_id: 1,
            leader_epoch: 1,
            fetched: Fetched::Snapshot(entry(1, ANSWER_BYTES_MAX + 1)),
        };
        assert_eq!(encode_response(&response, 1), None);
        let fits = FetchResponse {
            fetched: Fetched::Snapshot(entry(1, ANSWER_BYTES_MAX)),
            ..response
        };
        assert!(encode_response(&fits, 1).is_some());
    }
}
