//! The `__transaction_state` record encodings, byte for byte as Kafka
//! writes them (transaction-coordinator/src/main/resources/common/message/
//! TransactionLogKey.json and TransactionLogValue.json): key and value each
//! start with their int16 schema version.
//!
//! Written: key v0, and value v0 while the `transaction.version` feature is
//! 0, the flexible v1 from level 1 on (Kafka's
//! `TransactionVersion.transactionLogValueVersion`), whose tagged fields
//! carry the previous and next producer id and the client's transactions
//! version when they differ from their defaults. Read: both, whichever
//! level wrote them. The framing (versions, strings, tagged fields) is
//! `protocol::schema`'s.

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};

use super::state::{TxnMetadata, TxnState, NO_PRODUCER_ID};
use crate::protocol::schema::{
    put_compact_length, put_compact_string, put_no_tagged_fields, put_string, put_unsigned_varint,
    Reader,
};
pub use crate::protocol::schema::{RecordError, STRING_BYTES_MAX};

pub const KEY_VERSION: i16 = 0;
/// The value version of `transaction.version` 0.
pub const VALUE_VERSION: i16 = 0;
/// The first flexible value version (compact strings, tagged fields), and
/// the last Kafka has written: from `transaction.version` 1 on.
pub const FLEXIBLE_VALUE_VERSION: i16 = 1;
/// Tags of the flexible value's tagged fields.
const TAG_PREVIOUS_PRODUCER_ID: u32 = 0;
const TAG_NEXT_PRODUCER_ID: u32 = 1;
const TAG_CLIENT_TRANSACTION_VERSION: u32 = 2;
/// Bytes of the tagged fields' values (int64, int64, int16).
const PRODUCER_ID_BYTES: u32 = 8;
const TRANSACTION_VERSION_BYTES: u32 = 2;

/// What a value says about a transactional id: the durable part of its
/// metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnValue {
    pub producer_id: i64,
    pub previous_producer_id: i64,
    /// Only in v1 (tagged); -1 when absent.
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    pub last_update_ms: i64,
    pub start_ms: i64,
    /// Only in v1 (tagged); 0 when absent.
    pub client_transaction_version: i16,
}

impl TxnValue {
    pub fn of(metadata: &TxnMetadata) -> TxnValue {
        TxnValue {
            producer_id: metadata.producer_id,
            previous_producer_id: metadata.previous_producer_id,
            next_producer_id: metadata.next_producer_id,
            producer_epoch: metadata.producer_epoch,
            timeout_ms: metadata.timeout_ms,
            state: metadata.state,
            partitions: metadata.partitions.clone(),
            last_update_ms: metadata.last_update_ms,
            start_ms: metadata.start_ms,
            client_transaction_version: metadata.client_transaction_version,
        }
    }
}

pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(4 + transactional_id.len());
    out.put_i16(KEY_VERSION);
    put_string(&mut out, transactional_id);
    out.freeze()
}

/// TransactionLogValue at `version` (v0, or the flexible v1 from
/// `transaction.version` 1 on). Empty carries a null partition list, as
/// Kafka writes it; v1 writes a tagged field only when it is not its
/// default, as Kafka's generated code does.
pub fn encode_value(value: &TxnValue, version: i16) -> Bytes {
    let flexible = version >= FLEXIBLE_VALUE_VERSION;
    let mut out = BytesMut::with_capacity(64);
    out.put_i16(if flexible {
        FLEXIBLE_VALUE_VERSION
    } else {
        VALUE_VERSION
    });
    out.put_i64(value.producer_id);
    out.put_i16(value.producer_epoch);
    out.put_i32(value.timeout_ms);
    out.put_i8(value.state.id());
    let topics = (value.state != TxnState::Empty).then(|| by_topic(&value.partitions));
    match (&topics, flexible) {
        (None, false) => out.put_i32(-1),
        (None, true) => put_compact_length(&mut out, None),
        (Some(topics), false) => out.put_i32(topics.len() as i32),
        (Some(topics), true) => put_compact_length(&mut out, Some(topics.len())),
    }
    for (topic, partitions) in topics.iter().flatten() {
        if flexible {
            put_compact_string(&mut out, Some(topic));
            put_compact_length(&mut out, Some(partitions.len()));
        } else {
            put_string(&mut out, topic);
            out.put_i32(partitions.len() as i32);
        }
        for partition in partitions {
            out.put_i32(*partition);
        }
        if flexible {
            put_no_tagged_fields(&mut out);
        }
    }
    out.put_i64(value.last_update_ms);
    out.put_i64(value.start_ms);
    if flexible {
        put_tagged_fields(&mut out, value);
    }
    out.freeze()
}

/// v1's tagged fields, in tag order, those at their default left out.
fn put_tagged_fields(out: &mut BytesMut, value: &TxnValue) {
    let producer_ids = [
        (TAG_PREVIOUS_PRODUCER_ID, value.previous_producer_id),
        (TAG_NEXT_PRODUCER_ID, value.next_producer_id),
    ];
    let written: Vec<(u32, i64)> = producer_ids
        .into_iter()
        .filter(|&(_, id)| id != NO_PRODUCER_ID)
        .collect();
    let version = value.client_transaction_version;
    let count = written.len() + usize::from(version != 0);
    put_unsigned_varint(out, count as u32);
    for (tag, id) in written {
        put_unsigned_varint(out, tag);
        put_unsigned_varint(out, PRODUCER_ID_BYTES);
        out.put_i64(id);
    }
    if version != 0 {
        put_unsigned_varint(out, TAG_CLIENT_TRANSACTION_VERSION);
        put_unsigned_varint(out, TRANSACTION_VERSION_BYTES);
        out.put_i16(version);
    }
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
    let mut previous_producer_id = NO_PRODUCER_ID;
    let mut next_producer_id = NO_PRODUCER_ID;
    let mut client_transaction_version = 0;
    reader.read_tagged_fields(|tag, mut field| {
        match tag {
            TAG_PREVIOUS_PRODUCER_ID => previous_producer_id = field.i64()?,
            TAG_NEXT_PRODUCER_ID => next_producer_id = field.i64()?,
            TAG_CLIENT_TRANSACTION_VERSION => client_transaction_version = field.i16()?,
            _ => {}
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
        next_producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        last_update_ms,
        start_ms,
        client_transaction_version,
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
            next_producer_id: -1,
            producer_epoch: 7,
            timeout_ms: 60_000,
            state,
            partitions,
            last_update_ms: 1_700_000_000_123,
            start_ms: 1_700_000_000_000,
            client_transaction_version: 0,
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
            assert_eq!(
                decode_value(&encode_value(&written, VALUE_VERSION)).unwrap(),
                written
            );
        }
    }

    #[test]
    fn flexible_values_round_trip_with_their_tagged_fields() {
        for state in TxnState::ALL {
            let mut written = value(state);
            assert_eq!(
                decode_value(&encode_value(&written, FLEXIBLE_VALUE_VERSION)).unwrap(),
                written
            );
            written.previous_producer_id = 3999;
            written.next_producer_id = 4001;
            written.client_transaction_version = 2;
            let bytes = encode_value(&written, FLEXIBLE_VALUE_VERSION);
            assert_eq!(&bytes[..2], &[0, 1]);
            assert_eq!(decode_value(&bytes).unwrap(), written);
        }
    }

    /// The layout the reading test below spells out, written back: what
    /// Kafka's generated `TransactionLogValue` writes for v1.
    #[test]
    fn flexible_value_v1_bytes_are_kafkas_layout() {
        let mut written = value(TxnState::PrepareCommit);
        written.producer_id = 5000;
        written.previous_producer_id = 4999;
        written.producer_epoch = 2;
        written.timeout_ms = 30_000;
        written.partitions = [("t".to_string(), 9)].into_iter().collect();
        written.last_update_ms = 11;
        written.start_ms = 10;
        written.client_transaction_version = 2;
        assert_eq!(
            encode_value(&written, FLEXIBLE_VALUE_VERSION),
            kafka_v1_bytes()
        );
        // The empty state's null list is a compact 0.
        let empty = encode_value(&value(TxnState::Empty), FLEXIBLE_VALUE_VERSION);
        assert_eq!(empty[2 + 8 + 2 + 4 + 1], 0);
    }

    #[test]
    fn empty_value_has_a_null_partition_list() {
        let bytes = encode_value(&value(TxnState::Empty), VALUE_VERSION);
        // version, producer id, epoch, timeout, state, then the null array.
        assert_eq!(&bytes[2 + 8 + 2 + 4 + 1..][..4], &(-1i32).to_be_bytes());
    }

    #[test]
    fn value_v0_bytes_are_kafkas_layout() {
        let bytes = encode_value(&value(TxnState::Ongoing), VALUE_VERSION);
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

    fn kafka_v1_bytes() -> Bytes {
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
        bytes.put_i16(2);
        bytes.freeze()
    }

    #[test]
    fn flexible_value_v1_is_read_with_its_tagged_fields() {
        let decoded = decode_value(&kafka_v1_bytes()).unwrap();
        assert_eq!(decoded.producer_id, 5000);
        assert_eq!(decoded.previous_producer_id, 4999);
        assert_eq!(decoded.next_producer_id, -1);
        assert_eq!(decoded.client_transaction_version, 2);
        assert_eq!(decoded.state, TxnState::PrepareCommit);
        assert_eq!(
            decoded.partitions,
            [("t".to_string(), 9)].into_iter().collect()
        );
        assert_eq!((decoded.last_update_ms, decoded.start_ms), (11, 10));
    }

    #[test]
    fn every_cut_of_a_value_is_an_error_not_a_panic() {
        for version in [VALUE_VERSION, FLEXIBLE_VALUE_VERSION] {
            let mut written = value(TxnState::PrepareAbort);
            written.next_producer_id = 4001;
            written.client_transaction_version = 2;
            let bytes = encode_value(&written, version);
            for cut in 0..bytes.len() {
                assert!(
                    decode_value(&bytes[..cut]).is_err(),
                    "v{version} cut at {cut}"
                );
            }
        }
    }
}
