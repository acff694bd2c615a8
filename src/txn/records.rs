//! The `__transaction_state` record encodings, byte for byte as Kafka
//! writes them (transaction-coordinator/src/main/resources/common/message/
//! TransactionLogKey.json and TransactionLogValue.json): key and value each
//! start with their int16 schema version.
//!
//! Written: key v0 and value v0, what Kafka writes while the
//! `transaction.version` feature is below 1 (shoal does not finalize it).
//! Read: value v0 and the flexible v1 (tagged previous/next producer id and
//! client transaction version), so a log newer Kafka wrote loads too. The
//! framing (versions, strings, tagged fields) is `protocol::schema`'s.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};

use super::state::{TxnMetadata, TxnState};
use crate::protocol::schema::{put_string, Reader};
pub use crate::protocol::schema::{RecordError, STRING_BYTES_MAX};

pub const KEY_VERSION: i16 = 0;
pub const VALUE_VERSION: i16 = 0;
/// The first flexible value version (compact strings, tagged fields), and
/// the last Kafka has written.
const FLEXIBLE_VALUE_VERSION: i16 = 1;
/// Tags of the flexible value's tagged fields.
const TAG_PREVIOUS_PRODUCER_ID: u32 = 0;

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

/// The transactional id a key names.
pub fn decode_key(key: &[u8]) -> Result<String, RecordError> {
    let mut reader = Reader::new(key, false);
    let version = reader.i16()?;
    if version != KEY_VERSION {
        return Err(RecordError::UnknownKeyVersion(version));
    }
    reader.string()
}

pub fn decode_value(value: &[u8]) -> Result<TxnValue, RecordError> {
    let (mut reader, _) = Reader::value(value, FLEXIBLE_VALUE_VERSION, FLEXIBLE_VALUE_VERSION)?;
    let producer_id = reader.i64()?;
    let producer_epoch = reader.i16()?;
    let timeout_ms = reader.i32()?;
    let state_id = reader.i8()?;
    let state = TxnState::from_id(state_id).ok_or(RecordError::UnknownEnumValue {
        what: "transaction state",
        value: state_id,
    })?;
    let mut partitions = BTreeSet::new();
    if let Some(topics) = reader.nullable_array_len()? {
        for _ in 0..topics {
            let topic = reader.string()?;
            for _ in 0..reader.array_len()? {
                partitions.insert((topic.clone(), reader.i32()?));
            }
            reader.tagged_fields()?;
        }
    }
    let last_update_ms = reader.i64()?;
    let start_ms = reader.i64()?;
    let mut previous_producer_id = -1;
    reader.read_tagged_fields(|tag, mut field| {
        if tag == TAG_PREVIOUS_PRODUCER_ID {
            previous_producer_id = field.i64()?;
        }
        Ok(())
    })?;
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
