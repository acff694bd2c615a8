//! The `__transaction_state` record encodings, byte for byte as Kafka
//! writes them (transaction-coordinator/src/main/resources/common/message/
//! TransactionLogKey.json and TransactionLogValue.json): key and value each
//! start with their int16 schema version.
//!
//! Written: key v0 and value v0, what Kafka writes while the
//! `transaction.version` feature is below 1 (shoal does not finalize it).
//! Read: value v0 and the flexible v1 (tagged previous/next producer id and
//! client transaction version), so a log newer Kafka wrote loads too.

use std::collections::BTreeSet;
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::state::{TxnMetadata, TxnState};

pub const KEY_VERSION: i16 = 0;
pub const VALUE_VERSION: i16 = 0;
/// The first flexible value version (compact strings, tagged fields).
const FLEXIBLE_VALUE_VERSION: i16 = 1;
/// Tags of the flexible value's tagged fields.
const TAG_PREVIOUS_PRODUCER_ID: u32 = 0;
/// Kafka's non-flexible strings carry an int16 length.
pub const STRING_BYTES_MAX: usize = i16::MAX as usize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    Truncated,
    NegativeLength,
    NotUtf8,
    UnknownKeyVersion(i16),
    UnknownValueVersion(i16),
    UnknownState(i8),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Truncated => write!(f, "record ends early"),
            RecordError::NegativeLength => write!(f, "negative length for a non-null field"),
            RecordError::NotUtf8 => write!(f, "string is not UTF-8"),
            RecordError::UnknownKeyVersion(version) => write!(f, "unknown key version {version}"),
            RecordError::UnknownValueVersion(version) => {
                write!(f, "unknown value version {version}")
            }
            RecordError::UnknownState(id) => write!(f, "unknown transaction state {id}"),
        }
    }
}

impl std::error::Error for RecordError {}

/// What a value says about a transactional id: the durable part of its
/// metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnValue {
    pub producer_id: i64,
    pub previous_producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    pub last_update_ms: i64,
    pub start_ms: i64,
}

impl TxnValue {
    pub fn of(metadata: &TxnMetadata) -> TxnValue {
        TxnValue {
            producer_id: metadata.producer_id,
            previous_producer_id: metadata.previous_producer_id,
            producer_epoch: metadata.producer_epoch,
            timeout_ms: metadata.timeout_ms,
            state: metadata.state,
            partitions: metadata.partitions.clone(),
            last_update_ms: metadata.last_update_ms,
            start_ms: metadata.start_ms,
        }
    }
}

pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(4 + transactional_id.len());
    out.put_i16(KEY_VERSION);
    put_string(&mut out, transactional_id);
    out.freeze()
}

/// TransactionLogValue v0. Empty carries a null partition list, as Kafka
/// writes it.
pub fn encode_value(value: &TxnValue) -> Bytes {
    let mut out = BytesMut::with_capacity(64);
    out.put_i16(VALUE_VERSION);
    out.put_i64(value.producer_id);
    out.put_i16(value.producer_epoch);
    out.put_i32(value.timeout_ms);
    out.put_i8(value.state.id());
    if value.state == TxnState::Empty {
        out.put_i32(-1);
    } else {
        let topics = by_topic(&value.partitions);
        out.put_i32(topics.len() as i32);
        for (topic, partitions) in topics {
            put_string(&mut out, topic);
            out.put_i32(partitions.len() as i32);
            for partition in partitions {
                out.put_i32(partition);
            }
        }
    }
    out.put_i64(value.last_update_ms);
    out.put_i64(value.start_ms);
    out.freeze()
}

fn by_topic(partitions: &BTreeSet<(String, i32)>) -> Vec<(&str, Vec<i32>)> {
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, partition) in partitions {
        match topics.last_mut() {
            Some((last, ids)) if *last == topic.as_str() => ids.push(*partition),
            _ => topics.push((topic.as_str(), vec![*partition])),
        }
    }
    topics
}

fn put_string(out: &mut BytesMut, value: &str) {
    // Ids longer are refused at InitProducerId; topic names are shorter.
    assert!(
        value.len() <= STRING_BYTES_MAX,
        "string of {} bytes",
        value.len()
    );
    out.put_i16(value.len() as i16);
    out.put_slice(value.as_bytes());
}

/// The transactional id a key names.
pub fn decode_key(key: &[u8]) -> Result<String, RecordError> {
    let mut reader = Reader(key);
    let version = reader.i16()?;
    if version != KEY_VERSION {
        return Err(RecordError::UnknownKeyVersion(version));
    }
    reader.string()
}

pub fn decode_value(value: &[u8]) -> Result<TxnValue, RecordError> {
    let mut reader = Reader(value);
    let version = reader.i16()?;
    let flexible = match version {
        VALUE_VERSION => false,
        FLEXIBLE_VALUE_VERSION => true,
        other => return Err(RecordError::UnknownValueVersion(other)),
    };
    let producer_id = reader.i64()?;
    let producer_epoch = reader.i16()?;
    let timeout_ms = reader.i32()?;
    let state_id = reader.i8()?;
    let state = TxnState::from_id(state_id).ok_or(RecordError::UnknownState(state_id))?;
    let mut partitions = BTreeSet::new();
    if let Some(topics) = reader.array_len(flexible)? {
        for _ in 0..topics {
            let topic = reader.string_of(flexible)?;
            let count = reader
                .array_len(flexible)?
                .ok_or(RecordError::NegativeLength)?;
            for _ in 0..count {
                partitions.insert((topic.clone(), reader.i32()?));
            }
            if flexible {
                reader.skip_tagged_fields(|_, _| Ok(()))?;
            }
        }
    }
    let last_update_ms = reader.i64()?;
    let start_ms = reader.i64()?;
    let mut previous_producer_id = -1;
    if flexible {
        reader.skip_tagged_fields(|tag, mut field| {
            if tag == TAG_PREVIOUS_PRODUCER_ID {
                previous_producer_id = field.i64()?;
            }
            Ok(())
        })?;
    }
    // Kafka ignores the partitions of an Empty value.
    if state == TxnState::Empty {
        partitions.clear();
    }
    Ok(TxnValue {
        producer_id,
        previous_producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        last_update_ms,
        start_ms,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], RecordError> {
        if self.0.len() < count {
            return Err(RecordError::Truncated);
        }
        let (head, rest) = self.0.split_at(count);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn i8(&mut self) -> Result<i8, RecordError> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn unsigned_varint(&mut self) -> Result<u32, RecordError> {
        let mut value: u32 = 0;
        for shift in (0..35).step_by(7) {
            let [byte] = self.array()?;
            value |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::Truncated)
    }

    fn string(&mut self) -> Result<String, RecordError> {
        let length = usize::try_from(self.i16()?).map_err(|_| RecordError::NegativeLength)?;
        self.utf8(length)
    }

    fn string_of(&mut self, flexible: bool) -> Result<String, RecordError> {
        if !flexible {
            return self.string();
        }
        let length = self
            .unsigned_varint()?
            .checked_sub(1)
            .ok_or(RecordError::NegativeLength)?;
        self.utf8(length as usize)
    }

    fn utf8(&mut self, length: usize) -> Result<String, RecordError> {
        let bytes = self.take(length)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| RecordError::NotUtf8)
    }

    /// An array's length; None for a null array. Each element takes at
    /// least one byte, so a length beyond what is left is truncation.
    fn array_len(&mut self, flexible: bool) -> Result<Option<usize>, RecordError> {
        let length = if flexible {
            match self.unsigned_varint()? {
                0 => return Ok(None),
                length => (length - 1) as usize,
            }
        } else {
            match self.i32()? {
                -1 => return Ok(None),
                length => usize::try_from(length).map_err(|_| RecordError::NegativeLength)?,
            }
        };
        if length > self.0.len() {
            return Err(RecordError::Truncated);
        }
        Ok(Some(length))
    }

    fn skip_tagged_fields(
        &mut self,
        mut read: impl FnMut(u32, Reader<'a>) -> Result<(), RecordError>,
    ) -> Result<(), RecordError> {
        let count = self.unsigned_varint()?;
        for _ in 0..count {
            let tag = self.unsigned_varint()?;
            let size = self.unsigned_varint()? as usize;
            read(tag, Reader(self.take(size)?))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(state: TxnState) -> TxnValue {
        let partitions = if state == TxnState::Empty {
            BTreeSet::new()
        } else {
            [
                ("a".to_string(), 1),
                ("a".to_string(), 0),
                ("b".to_string(), 3),
            ]
            .into_iter()
            .collect()
        };
        TxnValue {
            producer_id: 4000,
            previous_producer_id: -1,
            producer_epoch: 7,
            timeout_ms: 60_000,
            state,
            partitions,
            last_update_ms: 1_700_000_000_123,
            start_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn key_is_version_zero_and_the_id() {
        let key = encode_key("tx-1");
        assert_eq!(&key[..], &[0, 0, 0, 4, b't', b'x', b'-', b'1']);
        assert_eq!(decode_key(&key).unwrap(), "tx-1");
        assert_eq!(
            decode_key(&[0, 1, 0, 0]),
            Err(RecordError::UnknownKeyVersion(1))
        );
    }

    #[test]
    fn values_round_trip_in_every_state() {
        for state in TxnState::ALL {
            let written = value(state);
            assert_eq!(decode_value(&encode_value(&written)).unwrap(), written);
        }
    }

    #[test]
    fn empty_value_has_a_null_partition_list() {
        let bytes = encode_value(&value(TxnState::Empty));
        // version, producer id, epoch, timeout, state, then the null array.
        assert_eq!(&bytes[2 + 8 + 2 + 4 + 1..][..4], &(-1i32).to_be_bytes());
    }

    #[test]
    fn value_v0_bytes_are_kafkas_layout() {
        let bytes = encode_value(&value(TxnState::Ongoing));
        let mut expected = BytesMut::new();
        expected.put_i16(0);
        expected.put_i64(4000);
        expected.put_i16(7);
        expected.put_i32(60_000);
        expected.put_i8(1);
        expected.put_i32(2);
        expected.put_slice(&[0, 1, b'a']);
        expected.put_i32(2);
        expected.put_i32(0);
        expected.put_i32(1);
        expected.put_slice(&[0, 1, b'b']);
        expected.put_i32(1);
        expected.put_i32(3);
        expected.put_i64(1_700_000_000_123);
        expected.put_i64(1_700_000_000_000);
        assert_eq!(bytes, expected.freeze());
    }

    #[test]
    fn flexible_value_v1_is_read_with_its_tagged_previous_producer_id() {
        let mut bytes = BytesMut::new();
        bytes.put_i16(1);
        bytes.put_i64(5000);
        bytes.put_i16(2);
        bytes.put_i32(30_000);
        bytes.put_i8(2);
        bytes.put_u8(2); // one topic
        bytes.put_slice(&[2, b't']);
        bytes.put_u8(2); // one partition
        bytes.put_i32(9);
        bytes.put_u8(0); // topic's tagged fields
        bytes.put_i64(11);
        bytes.put_i64(10);
        bytes.put_u8(2); // two tagged fields
        bytes.put_slice(&[0, 8]);
        bytes.put_i64(4999);
        bytes.put_slice(&[2, 2]);
        bytes.put_i16(1);
        let decoded = decode_value(&bytes).unwrap();
        assert_eq!(decoded.producer_id, 5000);
        assert_eq!(decoded.previous_producer_id, 4999);
        assert_eq!(decoded.state, TxnState::PrepareCommit);
        assert_eq!(
            decoded.partitions,
            [("t".to_string(), 9)].into_iter().collect()
        );
        assert_eq!((decoded.last_update_ms, decoded.start_ms), (11, 10));
    }

    #[test]
    fn every_cut_of_a_value_is_an_error_not_a_panic() {
        let bytes = encode_value(&value(TxnState::PrepareAbort));
        for cut in 0..bytes.len() {
            assert!(decode_value(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
