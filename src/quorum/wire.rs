//! shoal's private request between voters on the CONTROLLER listener: a
//! batch of Raft messages (`raft::eraftpb::Message`, protobuf-encoded as
//! the `raft` crate defines them), one way.
//!
//! Frame (after Kafka's 4-byte size prefix), big-endian:
//! `api_key i16 = RAFT_MESSAGES_API_KEY`, `api_version i16 = 0`,
//! `correlation_id i32`, `sender_id i32`, `count i32`, then `count` times
//! `length i32` and that many bytes of one message. The first 8 bytes are
//! Kafka's request header prefix, so a Kafka-framing reader can route it
//! and name it in a log line; there is no client id and no tagged fields.
//!
//! One way: no response. Raft already tolerates loss and retries on its
//! own clock (heartbeats, append probes, elections), so an acknowledgement
//! would only tell the sender what Raft's next message tells it anyway. A
//! refused frame closes the connection; the sender reconnects.
//!
//! Pure: bytes in, messages out; every length is checked before it is
//! used, nothing here panics on what a socket delivered.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use protobuf::Message as _;
use raft::eraftpb::Message;

/// The private request's api key. Kafka's keys count up from 0 by one per
/// KIP (about 90 in Kafka 4); one near the top of the `INT16` range will
/// not meet them, and ApiVersions never lists it, so Kafka's tools never
/// send it.
pub const RAFT_MESSAGES_API_KEY: i16 = 32_000;

/// The only version of the private request.
pub const RAFT_MESSAGES_VERSION: i16 = 0;

/// `api_key`, `api_version`, `correlation_id`, `sender_id`, `count`.
const FRAME_HEADER_BYTES: usize = 2 + 2 + 4 + 4 + 4;

/// The `i32` before each message.
pub const MESSAGE_LENGTH_BYTES: usize = 4;

/// The largest frame a voter sends or accepts on the CONTROLLER listener.
/// It bounds a single Raft message, so the driver keeps `max_size_per_msg`
/// (appends) under it; a snapshot larger than this cannot be sent until
/// snapshots travel in chunks (Kafka's FetchSnapshot), the next
/// increment's concern. 16 MiB holds the metadata of many thousands of
/// partitions, and is far below `socket.request.max.bytes` (100 MiB).
pub const CONTROLLER_FRAME_BYTES_MAX: usize = 16 * 1024 * 1024;

/// The largest encoded Raft message that fits a frame alone.
pub const RAFT_MESSAGE_BYTES_MAX: usize =
    CONTROLLER_FRAME_BYTES_MAX - FRAME_HEADER_BYTES - MESSAGE_LENGTH_BYTES;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The frame ends before its header does.
    TooShort { size_bytes: usize },
    /// A version other than `RAFT_MESSAGES_VERSION`.
    UnsupportedVersion { version: i16 },
    /// A negative count or length, or one the frame has no bytes for.
    BadLength { length: i32, left_bytes: usize },
    /// A message's bytes do not decode as `raft::eraftpb::Message`.
    Malformed { index: usize },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::TooShort { size_bytes } => {
                write!(
                    f,
                    "raft frame of {size_bytes} bytes shorter than its header"
                )
            }
            WireError::UnsupportedVersion { version } => {
                write!(f, "unsupported raft frame version {version}")
            }
            WireError::BadLength { length, left_bytes } => {
                write!(f, "raft frame length {length} with {left_bytes} bytes left")
            }
            WireError::Malformed { index } => {
                write!(f, "raft message {index} of the frame does not decode")
            }
        }
    }
}

impl std::error::Error for WireError {}

/// One message encoded for the wire, or `None` if protobuf refuses it
/// (it does only for messages over 2 GiB).
pub fn encode_message(message: &Message) -> Option<Bytes> {
    message.write_to_bytes().ok().map(Bytes::from)
}

/// A whole frame, size prefix included, of already encoded messages. The
/// caller keeps it within `CONTROLLER_FRAME_BYTES_MAX` (`frame_bytes`).
pub fn encode_frame(sender_id: i32, correlation_id: i32, messages: &[Bytes]) -> Bytes {
    let size_bytes = frame_bytes(messages.iter().map(Bytes::len));
    assert!(size_bytes <= CONTROLLER_FRAME_BYTES_MAX);
    let mut frame = BytesMut::with_capacity(4 + size_bytes);
    frame.put_i32(size_bytes as i32);
    frame.put_i16(RAFT_MESSAGES_API_KEY);
    frame.put_i16(RAFT_MESSAGES_VERSION);
    frame.put_i32(correlation_id);
    frame.put_i32(sender_id);
    frame.put_i32(messages.len() as i32);
    for message in messages {
        frame.put_i32(message.len() as i32);
        frame.put_slice(message);
    }
    assert_eq!(frame.len(), 4 + size_bytes);
    frame.freeze()
}

/// The frame size (without the prefix) of messages of these lengths.
pub fn frame_bytes(message_lengths: impl Iterator<Item = usize>) -> usize {
    FRAME_HEADER_BYTES
        + message_lengths
            .map(|length| MESSAGE_LENGTH_BYTES + length)
            .sum::<usize>()
}

/// The sender id and the messages of a frame (size prefix removed) whose
/// api key the caller has read as `RAFT_MESSAGES_API_KEY`.
pub fn decode_frame(frame: &[u8]) -> Result<(i32, Vec<Message>), WireError> {
    if frame.len() < FRAME_HEADER_BYTES {
        return Err(WireError::TooShort {
            size_bytes: frame.len(),
        });
    }
    let mut rest = frame;
    let _api_key = rest.get_i16();
    let version = rest.get_i16();
    if version != RAFT_MESSAGES_VERSION {
        return Err(WireError::UnsupportedVersion { version });
    }
    let _correlation_id = rest.get_i32();
    let sender_id = rest.get_i32();
    let count = rest.get_i32();
    if count < 0 || count as usize > rest.len() / MESSAGE_LENGTH_BYTES {
        return Err(WireError::BadLength {
            length: count,
            left_bytes: rest.len(),
        });
    }
    let mut messages = Vec::with_capacity(count as usize);
    for index in 0..count as usize {
        let length = if rest.len() >= MESSAGE_LENGTH_BYTES {
            rest.get_i32()
        } else {
            -1
        };
        if length < 0 || length as usize > rest.len() {
            return Err(WireError::BadLength {
                length,
                left_bytes: rest.len(),
            });
        }
        let (bytes, after) = rest.split_at(length as usize);
        let message =
            Message::parse_from_bytes(bytes).map_err(|_| WireError::Malformed { index })?;
        messages.push(message);
        rest = after;
    }
    if !rest.is_empty() {
        return Err(WireError::BadLength {
            length: count,
            left_bytes: rest.len(),
        });
    }
    Ok((sender_id, messages))
}

#[cfg(test)]
mod tests {
    use raft::eraftpb::{Entry, MessageType};

    use super::*;

    fn message(from: u64, to: u64, term: u64, entries: usize) -> Message {
        let mut message = Message::default();
        message.set_msg_type(MessageType::MsgAppend);
        message.from = from;
        message.to = to;
        message.term = term;
        message.entries = (0..entries)
            .map(|index| Entry {
                index: index as u64 + 1,
                term,
                data: Bytes::from(vec![index as u8; index * 10]),
                ..Entry::default()
            })
            .collect::<Vec<_>>()
            .into();
        message
    }

    fn frame_of(sender_id: i32, messages: &[Message]) -> Bytes {
        let encoded: Vec<Bytes> = messages
            .iter()
            .map(|message| encode_message(message).unwrap())
            .collect();
        encode_frame(sender_id, 9, &encoded)
    }

    #[test]
    fn a_frame_decodes_to_the_messages_encoded() {
        let messages = vec![
            message(2, 1, 3, 0),
            message(2, 1, 3, 5),
            message(2, 1, 4, 1),
        ];
        let frame = frame_of(2, &messages);
        let size = i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(size, frame.len() - 4);
        assert_eq!(
            i16::from_be_bytes([frame[4], frame[5]]),
            RAFT_MESSAGES_API_KEY
        );
        let (sender_id, decoded) = decode_frame(&frame[4..]).unwrap();
        assert_eq!(sender_id, 2);
        assert_eq!(decoded, messages);
        assert_eq!(decode_frame(&frame_of(3, &[])[4..]).unwrap(), (3, vec![]));
    }

    #[test]
    fn every_cut_and_every_flipped_length_is_an_error_not_a_panic() {
        let frame = frame_of(2, &[message(2, 1, 3, 2), message(2, 1, 3, 1)]);
        let body = &frame[4..];
        for cut in 0..body.len() {
            assert!(decode_frame(&body[..cut]).is_err(), "cut at {cut}");
        }
        for position in 0..body.len() {
            for value in [0x00, 0x7f, 0x80, 0xff] {
                let mut bent = body.to_vec();
                bent[position] = value;
                let _ = decode_frame(&bent);
            }
        }
        let mut huge_count = body.to_vec();
        huge_count[12..16].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(
            decode_frame(&huge_count),
            Err(WireError::BadLength { .. })
        ));
        let mut other_version = body.to_vec();
        other_version[2..4].copy_from_slice(&1i16.to_be_bytes());
        assert_eq!(
            decode_frame(&other_version),
            Err(WireError::UnsupportedVersion { version: 1 })
        );
    }
}
