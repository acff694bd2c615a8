//! The records inside one RecordBatch v2: reading them (decompressing the
//! batch when it is compressed) and building a batch from some of them. The
//! broker looks inside a batch in two places only: the log cleaner, and the
//! produce checks made record by record (a compacted topic gets keyed
//! records; the timestamps of a batch whose header is out of the window).
//!
//! Invariant: a rebuilt batch keeps what consumers, producers and recovery
//! rely on: `baseOffset` and `lastOffsetDelta` (so its last offset, and with
//! it the producer's last sequence), `partitionLeaderEpoch`, producer id,
//! epoch and base sequence, the attribute bits and the codec. Every kept
//! record keeps its bytes, but for its `timestampDelta` when the base
//! timestamp becomes a delete horizon (KIP-534). Decompression is bounded:
//! one batch never inflates past `DECOMPRESSED_BYTES_MAX`.

use std::borrow::Cow;
use std::io::Read;

use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};
use zerocopy::FromBytes;

use super::batch::{
    BatchHeader, ATTR_COMPRESSION_MASK, ATTR_TIMESTAMP_TYPE_LOG_APPEND, BATCH_HEADER_SIZE,
    BATCH_LENGTH_PREFIX_SIZE,
};

/// Attribute bit 6 (KIP-534): `baseTimestamp` holds the delete horizon, the
/// time from which the cleaner may drop the batch's tombstones.
pub const ATTR_DELETE_HORIZON: i16 = 0x40;
/// Most bytes one batch may decompress to. Producers compress at most
/// `max.message.bytes` and batch far less than this before compressing; a
/// batch that inflates past it is refused as a compression bomb.
pub const DECOMPRESSED_BYTES_MAX: usize = 64 << 20;
/// First byte the CRC-32C covers (attributes).
const CRC_START: usize = 21;
/// Most bytes one byte of a raw snappy block can stand for: a 3-byte copy
/// element repeats at most 64 bytes. A block claiming more lies, and the
/// output buffer, zero-filled before decompressing, is sized by the claim.
const SNAPPY_EXPANSION_MAX: usize = 22;

/// Kafka's codec ids (the low three attribute bits).
const CODEC_NONE: i16 = 0;
const CODEC_GZIP: i16 = 1;
const CODEC_SNAPPY: i16 = 2;
const CODEC_LZ4: i16 = 3;
const CODEC_ZSTD: i16 = 4;
/// snappy-java's stream header: magic, then version and compatible version.
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_BYTES: usize = 16;

/// Why the records of a batch cannot be read or rebuilt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordsError {
    /// Fewer bytes than its header says, or not a batch at all.
    Truncated,
    /// A codec id Kafka does not define.
    UnknownCodec(i16),
    /// The compressed bytes do not decompress (or compress).
    Codec(String),
    /// The records inflate past `DECOMPRESSED_BYTES_MAX`.
    TooLarge,
    /// The record bytes do not parse, or disagree with the record count.
    Malformed(&'static str),
}

impl std::fmt::Display for RecordsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordsError::Truncated => f.write_str("truncated record batch"),
            RecordsError::UnknownCodec(codec) => write!(f, "unknown compression codec {codec}"),
            RecordsError::Codec(e) => write!(f, "codec: {e}"),
            RecordsError::TooLarge => write!(
                f,
                "records inflate past {DECOMPRESSED_BYTES_MAX} bytes when decompressed"
            ),
            RecordsError::Malformed(what) => write!(f, "malformed records: {what}"),
        }
    }
}

impl std::error::Error for RecordsError {}

/// One record, borrowed from the decompressed records of its batch.
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// A null value: in a compacted topic, the key's deletion.
    pub is_tombstone: bool,
    attributes: u8,
    /// The record after its `timestampDelta`: offset delta, key, value, headers.
    after_timestamp: &'a [u8],
    /// The whole record, length prefix included.
    raw: &'a [u8],
}

/// The records of one batch, decompressed.
pub struct BatchRecords<'a> {
    base_offset: i64,
    base_timestamp: i64,
    count: usize,
    data: Cow<'a, [u8]>,
}

impl<'a> BatchRecords<'a> {
    /// Decompresses the records of the complete `batch` (already validated:
    /// framing and CRC). Uncompressed records are borrowed, not copied.
    pub fn decode(batch: &'a [u8]) -> Result<BatchRecords<'a>, RecordsError> {
        let header = BatchHeader::view(batch).ok_or(RecordsError::Truncated)?;
        let total = usize::try_from(header.total_size()).map_err(|_| RecordsError::Truncated)?;
        let payload = batch
            .get(BATCH_HEADER_SIZE..total)
            .ok_or(RecordsError::Truncated)?;
        let count = usize::try_from(header.records_count.get())
            .map_err(|_| RecordsError::Malformed("negative record count"))?;
        let data = match header.compression() {
            CODEC_NONE => Cow::Borrowed(payload),
            // A batch emptied by a cleaner may keep its codec bit and no payload.
            _ if count == 0 && payload.is_empty() => Cow::Borrowed(payload),
            codec => Cow::Owned(decompress(codec, payload)?),
        };
        Ok(BatchRecords {
            base_offset: header.base_offset.get(),
            base_timestamp: header.base_timestamp.get(),
            count,
            data,
        })
    }

    /// Every record, in order; an error when the bytes do not hold exactly
    /// the header's record count.
    pub fn records(&self) -> Result<Vec<RecordView<'_>>, RecordsError> {
        let data: &[u8] = &self.data;
        // A record takes at least 7 bytes: the count cannot promise more.
        let mut records = Vec::with_capacity(self.count.min(data.len() / 7 + 1));
        let mut position = 0;
        while records.len() < self.count {
            let start = position;
            let length = read_varint(data, &mut position)
                .and_then(|length| usize::try_from(length).ok())
                .ok_or(RecordsError::Malformed("record length"))?;
            let end = position
                .checked_add(length)
                .filter(|&end| end <= data.len())
                .ok_or(RecordsError::Malformed("record runs past the batch"))?;
            let body = &data[position..end];
            records.push(self.parse(body, &data[start..end])?);
            position = end;
        }
        if position != data.len() {
            return Err(RecordsError::Malformed("bytes after the last record"));
        }
        Ok(records)
    }

    fn parse<'b>(&self, body: &'b [u8], raw: &'b [u8]) -> Result<RecordView<'b>, RecordsError> {
        let malformed = RecordsError::Malformed;
        let attributes = *body.first().ok_or(malformed("empty record"))?;
        let mut position = 1;
        let timestamp_delta = read_varlong(body, &mut position).ok_or(malformed("timestamp"))?;
        let after_timestamp = &body[position..];
        let offset_delta = read_varint(body, &mut position).ok_or(malformed("offset delta"))?;
        let key = read_bytes(body, &mut position).ok_or(malformed("key"))?;
        let value = read_bytes(body, &mut position).ok_or(malformed("value"))?;
        // A client's batch carries any base offset until the broker assigns
        // one: an overflow is a malformed batch, not a panic.
        let offset = self
            .base_offset
            .checked_add(i64::from(offset_delta))
            .ok_or(malformed("offset delta"))?;
        Ok(RecordView {
            offset,
            timestamp: self.base_timestamp.wrapping_add(timestamp_delta),
            key,
            value,
            is_tombstone: value.is_none(),
            attributes,
            after_timestamp,
            raw,
        })
    }
}

/// A batch like `original` holding only `kept`, records of it in order.
/// With `delete_horizon_ms`, the new batch carries that horizon as its base
/// timestamp (KIP-534) and the records' timestamp deltas follow it.
/// `maxTimestamp` becomes the newest kept record's (CreateTime).
pub fn rebuild(
    original: &[u8],
    kept: &[RecordView<'_>],
    delete_horizon_ms: Option<i64>,
) -> Result<Vec<u8>, RecordsError> {
    let header = BatchHeader::view(original).ok_or(RecordsError::Truncated)?;
    let old_base_timestamp = header.base_timestamp.get();
    let base_timestamp = delete_horizon_ms.unwrap_or(old_base_timestamp);
    let mut records = Vec::new();
    for record in kept {
        if base_timestamp == old_base_timestamp {
            records.extend_from_slice(record.raw);
            continue;
        }
        let mut body = Vec::with_capacity(record.raw.len() + 10);
        body.push(record.attributes);
        write_varlong(&mut body, record.timestamp.wrapping_sub(base_timestamp));
        body.extend_from_slice(record.after_timestamp);
        let length = i32::try_from(body.len()).map_err(|_| RecordsError::TooLarge)?;
        write_varlong(&mut records, i64::from(length));
        records.extend_from_slice(&body);
    }
    let mut out = original[..BATCH_HEADER_SIZE].to_vec();
    out.reserve(records.len());
    compress(header.compression(), &records, &mut out)?;
    let log_append_time = header.attributes.get() & ATTR_TIMESTAMP_TYPE_LOG_APPEND != 0;
    let max_timestamp = match kept.iter().map(|r| r.timestamp).max() {
        Some(newest) if !log_append_time => newest,
        _ => header.max_timestamp.get(),
    };
    let horizon_bit = if delete_horizon_ms.is_some() {
        ATTR_DELETE_HORIZON
    } else {
        0
    };
    let count = i32::try_from(kept.len()).map_err(|_| RecordsError::TooLarge)?;
    finish(&mut out, |h| {
        h.attributes.set(h.attributes.get() | horizon_bit);
        h.base_timestamp.set(base_timestamp);
        h.max_timestamp.set(max_timestamp);
        h.records_count.set(count);
    })?;
    Ok(out)
}

/// A batch with no records standing in for `original`: the same offsets,
/// producer fields and timestamps, no codec (an empty compressed payload is
/// not something every client decodes).
pub fn emptied(original: &[u8]) -> Result<Vec<u8>, RecordsError> {
    let mut out = original
        .get(..BATCH_HEADER_SIZE)
        .ok_or(RecordsError::Truncated)?
        .to_vec();
    finish(&mut out, |h| {
        h.attributes
            .set(h.attributes.get() & !ATTR_COMPRESSION_MASK);
        h.records_count.set(0);
    })?;
    Ok(out)
}

/// Applies `edit` to the header of the batch in `out`, then sets its length
/// and CRC.
fn finish(out: &mut [u8], edit: impl FnOnce(&mut BatchHeader)) -> Result<(), RecordsError> {
    let length =
        i32::try_from(out.len() - BATCH_LENGTH_PREFIX_SIZE).map_err(|_| RecordsError::TooLarge)?;
    let (header, _) = BatchHeader::mut_from_prefix(out).map_err(|_| RecordsError::Truncated)?;
    edit(header);
    header.batch_length.set(length);
    let crc = crc32c::crc32c(&out[CRC_START..]);
    let (header, _) = BatchHeader::mut_from_prefix(out).map_err(|_| RecordsError::Truncated)?;
    header.crc.set(crc);
    Ok(())
}

fn decompress(codec: i16, payload: &[u8]) -> Result<Vec<u8>, RecordsError> {
    let codec_error = |e: std::io::Error| RecordsError::Codec(e.to_string());
    match codec {
        CODEC_GZIP => read_bounded(flate2::read::MultiGzDecoder::new(payload)),
        CODEC_SNAPPY => snappy_decompress(payload),
        CODEC_LZ4 => read_bounded(lz4::Decoder::new(payload).map_err(codec_error)?),
        CODEC_ZSTD => {
            read_bounded(zstd::stream::read::Decoder::with_buffer(payload).map_err(codec_error)?)
        }
        other => Err(RecordsError::UnknownCodec(other)),
    }
}

/// Reads `reader` to its end, refusing more than `DECOMPRESSED_BYTES_MAX`.
fn read_bounded(reader: impl Read) -> Result<Vec<u8>, RecordsError> {
    let mut out = Vec::new();
    reader
        .take(DECOMPRESSED_BYTES_MAX as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| RecordsError::Codec(e.to_string()))?;
    if out.len() > DECOMPRESSED_BYTES_MAX {
        return Err(RecordsError::TooLarge);
    }
    Ok(out)
}

/// Snappy as Kafka clients write it: snappy-java's framing (a 16-byte header,
/// then blocks of a u32 BE length and a raw snappy block), or raw snappy.
fn snappy_decompress(payload: &[u8]) -> Result<Vec<u8>, RecordsError> {
    let codec_error = |e: snap::Error| RecordsError::Codec(e.to_string());
    let mut decoder = snap::raw::Decoder::new();
    let mut out = Vec::new();
    let mut append = |block: &[u8], out: &mut Vec<u8>| -> Result<(), RecordsError> {
        let len = snap::raw::decompress_len(block).map_err(codec_error)?;
        if len > block.len().saturating_mul(SNAPPY_EXPANSION_MAX) {
            return Err(RecordsError::Malformed(
                "snappy length past what its block holds",
            ));
        }
        let start = out.len();
        if start + len > DECOMPRESSED_BYTES_MAX {
            return Err(RecordsError::TooLarge);
        }
        out.resize(start + len, 0);
        let written = decoder
            .decompress(block, &mut out[start..])
            .map_err(codec_error)?;
        out.truncate(start + written);
        Ok(())
    };
    if !payload.starts_with(XERIAL_MAGIC) {
        append(payload, &mut out)?;
        return Ok(out);
    }
    let mut position = XERIAL_HEADER_BYTES.min(payload.len());
    while position < payload.len() {
        let length_bytes = payload
            .get(position..position + 4)
            .ok_or(RecordsError::Malformed("snappy block length"))?;
        let length = u32::from_be_bytes([
            length_bytes[0],
            length_bytes[1],
            length_bytes[2],
            length_bytes[3],
        ]) as usize;
        position += 4;
        let block = payload
            .get(position..position.saturating_add(length))
            .ok_or(RecordsError::Malformed("snappy block runs past the batch"))?;
        append(block, &mut out)?;
        position += length;
    }
    Ok(out)
}

/// Appends `records` to `out` compressed with `codec`, as Kafka clients do.
fn compress(codec: i16, records: &[u8], out: &mut Vec<u8>) -> Result<(), RecordsError> {
    let fill = |buf: &mut bytes::BytesMut| {
        buf.extend_from_slice(records);
        Ok(())
    };
    let result = match codec {
        CODEC_NONE => {
            out.extend_from_slice(records);
            Ok(())
        }
        CODEC_GZIP => <Gzip as Compressor<Vec<u8>>>::compress(out, fill),
        CODEC_SNAPPY => <Snappy as Compressor<Vec<u8>>>::compress(out, fill),
        CODEC_LZ4 => <Lz4 as Compressor<Vec<u8>>>::compress(out, fill),
        CODEC_ZSTD => <Zstd as Compressor<Vec<u8>>>::compress(out, fill),
        other => return Err(RecordsError::UnknownCodec(other)),
    };
    result.map_err(|e| RecordsError::Codec(e.to_string()))
}

/// A zigzag varlong (Kafka's `varlong`), at most 10 bytes.
fn read_varlong(buf: &[u8], position: &mut usize) -> Option<i64> {
    let mut value: u64 = 0;
    let mut shift = 0;
    loop {
        let byte = *buf.get(*position)?;
        *position += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    Some((value >> 1) as i64 ^ -((value & 1) as i64))
}

/// A zigzag varint (Kafka's `varint`): a varlong that fits an i32.
fn read_varint(buf: &[u8], position: &mut usize) -> Option<i32> {
    read_varlong(buf, position).and_then(|v| i32::try_from(v).ok())
}

/// A varint length and that many bytes; `Some(None)` for length -1 (null).
fn read_bytes<'a>(buf: &'a [u8], position: &mut usize) -> Option<Option<&'a [u8]>> {
    let length = read_varint(buf, position)?;
    if length < 0 {
        return Some(None);
    }
    let end = position.checked_add(length as usize)?;
    let bytes = buf.get(*position..end)?;
    *position = end;
    Some(Some(bytes))
}

fn write_varlong(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push(zigzag as u8 | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::batch::tests::CODECS;
    use crate::protocol::batch::{validate_stored as validate, ATTR_COMPRESSION_MASK};
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };

    /// A batch of `(key, value)` records with timestamps 1000 + i, as the
    /// Kafka encoder writes it, based at offset 100.
    fn keyed_batch(records: &[(Option<&str>, Option<&str>)], codec: Compression) -> Vec<u8> {
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 3,
                producer_id: 77,
                producer_epoch: 2,
                timestamp_type: TimestampType::Creation,
                offset: 100 + i as i64,
                sequence: 40 + i as i32,
                timestamp: 1000 + i as i64,
                key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
                value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: codec,
        };
        RecordBatchEncoder::encode(&mut buf, records.iter(), &options).unwrap();
        buf.to_vec()
    }

    fn decoded(batch: &[u8]) -> Vec<Record> {
        let mut bytes = Bytes::copy_from_slice(batch);
        RecordBatchDecoder::decode(&mut bytes).unwrap().records
    }

    #[test]
    fn records_are_read_in_every_codec() {
        let input = [(Some("a"), Some("1")), (Some("b"), None), (None, Some("3"))];
        for codec in CODECS {
            let batch = keyed_batch(&input, codec);
            let records = BatchRecords::decode(&batch).unwrap();
            let views = records.records().unwrap();
            assert_eq!(views.len(), 3, "{codec:?}");
            assert_eq!(views[0].key, Some(&b"a"[..]));
            assert!(!views[0].is_tombstone);
            assert!(views[1].is_tombstone);
            assert_eq!(views[2].key, None);
            assert_eq!(
                views
                    .iter()
                    .map(|r| (r.offset, r.timestamp))
                    .collect::<Vec<_>>(),
                [(100, 1000), (101, 1001), (102, 1002)]
            );
        }
    }

    #[test]
    fn a_rebuilt_batch_keeps_offsets_producer_and_codec() {
        let input = [
            (Some("a"), Some("1")),
            (Some("b"), Some("2")),
            (Some("c"), None),
            (Some("d"), Some("4")),
        ];
        for codec in CODECS {
            let batch = keyed_batch(&input, codec);
            let records = BatchRecords::decode(&batch).unwrap();
            let views = records.records().unwrap();
            for horizon in [None, Some(5_000_000)] {
                let kept = [views[1], views[2]];
                let rebuilt = rebuild(&batch, &kept, horizon).unwrap();
                assert_eq!(validate(&rebuilt, 1 << 20), Ok(rebuilt.len()), "{codec:?}");
                let old = BatchHeader::view(&batch).unwrap();
                let new = BatchHeader::view(&rebuilt).unwrap();
                assert_eq!(new.base_offset.get(), 100);
                assert_eq!(new.last_offset(), old.last_offset());
                assert_eq!(new.records_count.get(), 2);
                assert_eq!(new.producer_id.get(), 77);
                assert_eq!(new.producer_epoch.get(), 2);
                assert_eq!(new.base_sequence.get(), 40);
                assert_eq!(new.partition_leader_epoch.get(), 3);
                assert_eq!(new.compression(), old.compression());
                assert_eq!(new.max_timestamp.get(), 1002);
                assert_eq!(
                    new.attributes.get() & ATTR_DELETE_HORIZON != 0,
                    horizon.is_some()
                );
                if let Some(horizon) = horizon {
                    assert_eq!(new.base_timestamp.get(), horizon);
                }
                // A Kafka decoder reads the same records back.
                let got = decoded(&rebuilt);
                assert_eq!(
                    got.iter()
                        .map(|r| (r.offset, r.timestamp, r.key.clone(), r.value.clone()))
                        .collect::<Vec<_>>(),
                    [
                        (101, 1001, Some(Bytes::from("b")), Some(Bytes::from("2"))),
                        (102, 1002, Some(Bytes::from("c")), None),
                    ]
                );
            }
        }
    }

    #[test]
    fn an_emptied_batch_keeps_its_offsets_and_decodes() {
        let batch = keyed_batch(
            &[(Some("a"), Some("1")), (Some("b"), Some("2"))],
            Compression::Zstd,
        );
        let empty = emptied(&batch).unwrap();
        assert_eq!(empty.len(), BATCH_HEADER_SIZE);
        assert_eq!(validate(&empty, 1 << 20), Ok(BATCH_HEADER_SIZE));
        let header = BatchHeader::view(&empty).unwrap();
        assert_eq!((header.base_offset.get(), header.last_offset()), (100, 101));
        assert_eq!(header.records_count.get(), 0);
        assert_eq!(header.attributes.get() & ATTR_COMPRESSION_MASK, 0);
        assert!(decoded(&empty).is_empty());
        assert!(BatchRecords::decode(&empty)
            .unwrap()
            .records()
            .unwrap()
            .is_empty());
    }

    #[test]
    fn lies_and_bombs_are_errors_not_panics() {
        let batch = keyed_batch(
            &[(Some("a"), Some("1")), (Some("b"), Some("2"))],
            Compression::None,
        );
        // Record count larger than the records: an error.
        let mut lying = batch.clone();
        lying[57..61].copy_from_slice(&3i32.to_be_bytes());
        assert!(BatchRecords::decode(&lying).unwrap().records().is_err());
        // Every truncation of the payload: an error, never a panic.
        for cut in BATCH_HEADER_SIZE..batch.len() {
            let mut short = batch[..cut].to_vec();
            let length = (cut - BATCH_LENGTH_PREFIX_SIZE) as i32;
            short[8..12].copy_from_slice(&length.to_be_bytes());
            assert!(BatchRecords::decode(&short)
                .and_then(|r| r.records().map(drop))
                .is_err());
        }
        // Zeros compress to almost nothing and would inflate past the bound.
        let zeros = vec![0u8; DECOMPRESSED_BYTES_MAX + 1];
        let mut bomb = batch[..BATCH_HEADER_SIZE].to_vec();
        compress(CODEC_ZSTD, &zeros, &mut bomb).unwrap();
        bomb[21..23].copy_from_slice(&CODEC_ZSTD.to_be_bytes());
        let length = (bomb.len() - BATCH_LENGTH_PREFIX_SIZE) as i32;
        bomb[8..12].copy_from_slice(&length.to_be_bytes());
        assert_eq!(
            BatchRecords::decode(&bomb).err(),
            Some(RecordsError::TooLarge)
        );
    }

    #[test]
    fn varints_round_trip() {
        for value in [
            0,
            1,
            -1,
            63,
            -64,
            64,
            i64::from(i32::MAX),
            i64::MIN,
            i64::MAX,
        ] {
            let mut buf = Vec::new();
            write_varlong(&mut buf, value);
            let mut position = 0;
            assert_eq!(read_varlong(&buf, &mut position), Some(value));
            assert_eq!(position, buf.len());
        }
        assert_eq!(read_varlong(&[0x80; 11], &mut 0), None);
        assert_eq!(read_varlong(&[0x80], &mut 0), None);
    }
}
