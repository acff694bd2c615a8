//! Builds RecordBatch v2 payloads for the load generator by hand, without
//! allocating per record: records are appended as bytes into one reusable
//! buffer, and a finished batch is one allocation (plus the codec's own
//! buffers when compressed).
//!
//! Invariant: every batch built here decodes with `kafka-protocol`'s decoder
//! and passes the broker's validation (checked by the tests below).

use anyhow::Context;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{self as codec, Compressor};
use kafka_protocol::records::{
    Compression, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};

use crate::protocol::batch::{BATCH_HEADER_SIZE, BATCH_LENGTH_PREFIX_SIZE, MAGIC_V2};

/// Offset of the CRC-32C in the batch header; it covers everything after it.
const CRC_OFFSET: usize = 17;
/// Offset of `attributes`, where the CRC-covered part starts.
const ATTRIBUTES_OFFSET: usize = CRC_OFFSET + 4;
/// Longest zigzag varint of an i32.
const VARINT_BYTES_MAX: usize = 5;
/// A record's fixed fields after its length: attributes, timestamp delta (0),
/// offset delta, key length, value length (varints) and header count (0).
const RECORD_OVERHEAD_BYTES_MAX: usize = 1 + 1 + 3 * VARINT_BYTES_MAX + 1;

/// The idempotent producer a batch is stamped with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerStamp {
    pub producer_id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
}

/// One batch being filled: records whose keys and values the caller supplies.
pub struct BatchBuilder {
    compression: Compression,
    records: BytesMut,
    count: i32,
    timestamp_ms: i64,
}

impl BatchBuilder {
    pub fn new(compression: Compression) -> BatchBuilder {
        BatchBuilder {
            compression,
            records: BytesMut::new(),
            count: 0,
            timestamp_ms: 0,
        }
    }

    /// Records appended since the last [`BatchBuilder::finish`].
    pub fn len(&self) -> usize {
        usize::try_from(self.count).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether a record of `payload_bytes` (key and value) would take the
    /// uncompressed records past `batch_bytes`. An empty batch always takes
    /// one record, as Kafka's producer does with a record larger than
    /// `batch.size`.
    pub fn is_full(&self, payload_bytes: usize, batch_bytes: usize) -> bool {
        self.count > 0
            && BATCH_HEADER_SIZE
                + self.records.len()
                + VARINT_BYTES_MAX
                + RECORD_OVERHEAD_BYTES_MAX
                + payload_bytes
                > batch_bytes
    }

    /// Appends a record with `key` (none: keyless) and `value`, the value's
    /// first bytes replaced by `stamp` (the end-to-end timestamp) when given.
    pub fn push(
        &mut self,
        key: Option<&[u8]>,
        value: &[u8],
        stamp: Option<&[u8]>,
        timestamp_ms: i64,
    ) {
        if self.count == 0 {
            self.timestamp_ms = timestamp_ms;
        }
        let key_len = key.map_or(-1, |k| i32::try_from(k.len()).unwrap_or(i32::MAX));
        let value_len = i32::try_from(value.len()).unwrap_or(i32::MAX);
        let mut head = [0u8; RECORD_OVERHEAD_BYTES_MAX];
        let mut at = 0;
        head[at] = 0; // attributes
        at += 1;
        at += put_varint(&mut head[at..], 0); // timestamp delta
        at += put_varint(&mut head[at..], self.count); // offset delta
        at += put_varint(&mut head[at..], key_len);
        let mut value_length = [0u8; VARINT_BYTES_MAX];
        let value_length_len = put_varint(&mut value_length, value_len);
        let headers_bytes = 1;
        let key = key.unwrap_or_default();
        let body_len = at + key.len() + value_length_len + value.len() + headers_bytes;
        let mut length = [0u8; VARINT_BYTES_MAX];
        let length_len = put_varint(&mut length, i32::try_from(body_len).unwrap_or(i32::MAX));

        self.records.reserve(length_len + body_len);
        self.records.put_slice(&length[..length_len]);
        self.records.put_slice(&head[..at]);
        self.records.put_slice(key);
        self.records.put_slice(&value_length[..value_length_len]);
        match stamp {
            Some(stamp) if stamp.len() <= value.len() => {
                self.records.put_slice(stamp);
                self.records.put_slice(&value[stamp.len()..]);
            }
            _ => self.records.put_slice(value),
        }
        self.records.put_u8(0); // no headers
        self.count += 1;
    }

    /// The finished batch, from `producer` when given (else without a
    /// producer id); the builder is empty again, keeping its buffer.
    pub fn finish(&mut self, producer: Option<ProducerStamp>) -> anyhow::Result<Bytes> {
        let mut batch = BytesMut::with_capacity(BATCH_HEADER_SIZE + self.records.len());
        batch.put_i64(0); // base offset, assigned by the broker
        batch.put_i32(0); // batch length, patched below
        batch.put_i32(NO_PARTITION_LEADER_EPOCH);
        batch.put_i8(MAGIC_V2);
        batch.put_u32(0); // crc, patched below
        batch.put_i16(compression_attribute(self.compression));
        batch.put_i32(self.count - 1); // last offset delta
        batch.put_i64(self.timestamp_ms);
        batch.put_i64(self.timestamp_ms);
        match producer {
            Some(stamp) => {
                batch.put_i64(stamp.producer_id);
                batch.put_i16(stamp.epoch);
                batch.put_i32(stamp.base_sequence);
            }
            None => {
                batch.put_i64(NO_PRODUCER_ID);
                batch.put_i16(NO_PRODUCER_EPOCH);
                batch.put_i32(NO_SEQUENCE);
            }
        }
        batch.put_i32(self.count);
        let records = &self.records[..];
        let fill = |tmp: &mut BytesMut| {
            tmp.put_slice(records);
            Ok(())
        };
        match self.compression {
            Compression::None => batch.put_slice(records),
            Compression::Gzip => codec::Gzip::compress(&mut batch, fill)?,
            Compression::Snappy => codec::Snappy::compress(&mut batch, fill)?,
            Compression::Lz4 => codec::Lz4::compress(&mut batch, fill)?,
            Compression::Zstd => codec::Zstd::compress(&mut batch, fill)?,
        }
        let batch_length = i32::try_from(batch.len() - BATCH_LENGTH_PREFIX_SIZE)
            .context("record batch larger than i32::MAX")?;
        batch[8..12].copy_from_slice(&batch_length.to_be_bytes());
        let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
        batch[CRC_OFFSET..ATTRIBUTES_OFFSET].copy_from_slice(&crc.to_be_bytes());
        self.records.clear();
        self.count = 0;
        Ok(batch.freeze())
    }
}

/// The codec bits of a batch's attributes.
fn compression_attribute(compression: Compression) -> i16 {
    match compression {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    }
}

/// Writes `value` as a zigzag varint into `out`; returns the bytes written.
fn put_varint(out: &mut [u8], value: i32) -> usize {
    let mut zigzag = ((value << 1) ^ (value >> 31)) as u32;
    let mut at = 0;
    while zigzag >= 0x80 {
        out[at] = (zigzag as u8) | 0x80;
        zigzag >>= 7;
        at += 1;
    }
    out[at] = zigzag as u8;
    at + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::batch;
    use crate::protocol::records::decode_records;

    #[test]
    fn batches_decode_and_validate_for_every_codec() {
        let value: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut builder = BatchBuilder::new(compression);
            for round in 0..2 {
                for i in 0..200u64 {
                    let stamp = (round * 1000 + i).to_be_bytes();
                    builder.push(None, &value, Some(&stamp), 1_700_000_000_000);
                }
                builder.push(Some(b"key"), &value[..3], None, 0);
                assert_eq!(builder.len(), 201);
                let built = builder.finish(None).unwrap();
                assert!(builder.is_empty());
                assert_eq!(batch::validate(&built, 1 << 20), Ok(built.len()));
                let decoded = decode_records(&built, 0).unwrap();
                assert_eq!(decoded.next_offset, Some(201), "{compression:?}");
                for (i, record) in decoded.records.iter().enumerate() {
                    assert_eq!(record.offset, i as i64);
                    assert_eq!(record.timestamp, 1_700_000_000_000);
                    let got = record.value.as_deref().unwrap();
                    if i == 200 {
                        assert_eq!(record.key.as_deref(), Some(&b"key"[..]));
                        assert_eq!(got, &value[..3]);
                    } else {
                        assert_eq!(record.key, None);
                        let stamp = (round * 1000 + i as u64).to_be_bytes();
                        assert_eq!(&got[..8], stamp);
                        assert_eq!(&got[8..], &value[8..]);
                    }
                }
            }
        }
    }

    #[test]
    fn fullness_counts_header_and_record_overhead() {
        let mut builder = BatchBuilder::new(Compression::None);
        assert!(!builder.is_full(1 << 20, 100), "an empty batch takes one");
        builder.push(None, &[0; 100], None, 0);
        assert!(builder.is_full(100, 200));
        assert!(!builder.is_full(100, 400));
        let built = builder.finish(None).unwrap();
        assert!(built.len() <= 200);
    }

    #[test]
    fn varints_are_zigzag() {
        let mut out = [0u8; VARINT_BYTES_MAX];
        assert_eq!((put_varint(&mut out, 0), out[0]), (1, 0));
        assert_eq!((put_varint(&mut out, -1), out[0]), (1, 1));
        assert_eq!((put_varint(&mut out, 1), out[0]), (1, 2));
        assert_eq!(put_varint(&mut out, 64), 2);
        assert_eq!(&out[..2], [0x80, 0x01]);
        assert_eq!(put_varint(&mut out, i32::MIN), 5);
    }
}
