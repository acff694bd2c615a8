//! A zero-copy view of a RecordBatch v2 header, and the validation every
//! produced batch passes before it is forwarded to its owner shard.
//!
//! Invariant: nothing here allocates or decompresses. A batch is checked by
//! its header and its CRC-32C only; record bytes are never decoded.

use zerocopy::byteorder::big_endian::{I16, I32, I64, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Size in bytes of the fixed RecordBatch v2 header.
pub const BATCH_HEADER_SIZE: usize = 61;
/// Bytes before `batchLength` ends: baseOffset (8) + batchLength (4).
pub const BATCH_LENGTH_PREFIX_SIZE: usize = 12;
/// Offset of the first byte the CRC covers (attributes).
const CRC_START: usize = 21;
/// Smallest encoded record: length varint, attributes, ts delta, offset delta,
/// key len, value len, header count — seven single bytes.
const RECORD_SIZE_MIN: usize = 7;
/// The only record batch format shoal stores.
pub const MAGIC_V2: i8 = 2;

/// Bits of `attributes`.
pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
pub const ATTR_TIMESTAMP_TYPE_LOG_APPEND: i16 = 0x08;
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
pub const ATTR_CONTROL: i16 = 0x20;

/// RecordBatch v2 header exactly as on the wire and on disk (big-endian).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Debug)]
#[repr(C, packed)]
pub struct BatchHeader {
    pub base_offset: I64,
    pub batch_length: I32,
    pub partition_leader_epoch: I32,
    pub magic: i8,
    pub crc: U32,
    pub attributes: I16,
    pub last_offset_delta: I32,
    pub base_timestamp: I64,
    pub max_timestamp: I64,
    pub producer_id: I64,
    pub producer_epoch: I16,
    pub base_sequence: I32,
    pub records_count: I32,
}

const _: () = assert!(std::mem::size_of::<BatchHeader>() == BATCH_HEADER_SIZE);

/// Why a batch was refused. Converted to a Kafka error code at the protocol edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchError {
    /// Fewer bytes than a header, or `batchLength` points past the buffer.
    Truncated,
    /// `batchLength` too small for a header or not matching the record count.
    CorruptLength,
    /// Magic byte other than 2.
    UnsupportedMagic(i8),
    /// CRC-32C over attributes..end does not match.
    CrcMismatch,
    /// A batch larger than `max.message.bytes`.
    TooLarge,
    /// Negative record count, or `lastOffsetDelta` disagreeing with it.
    InvalidRecordCount,
}

impl BatchHeader {
    /// Views the first `BATCH_HEADER_SIZE` bytes of `buf` as a header.
    pub fn view(buf: &[u8]) -> Option<&BatchHeader> {
        let (header, _) = BatchHeader::ref_from_prefix(buf).ok()?;
        Some(header)
    }

    /// Total size of the batch on the wire: the 12-byte prefix plus `batchLength`.
    pub fn total_size(&self) -> i64 {
        BATCH_LENGTH_PREFIX_SIZE as i64 + i64::from(self.batch_length.get())
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset.get() + i64::from(self.last_offset_delta.get())
    }

    pub fn compression(&self) -> i16 {
        self.attributes.get() & ATTR_COMPRESSION_MASK
    }

    pub fn is_control(&self) -> bool {
        self.attributes.get() & ATTR_CONTROL != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes.get() & ATTR_TRANSACTIONAL != 0
    }
}

/// Size of the complete batch at the start of `buf`, if its length field is
/// sane and all its bytes are present. Checks nothing else.
pub fn framed_size(buf: &[u8]) -> Result<usize, BatchError> {
    let header = BatchHeader::view(buf).ok_or(BatchError::Truncated)?;
    let batch_length = header.batch_length.get();
    if batch_length < (BATCH_HEADER_SIZE - BATCH_LENGTH_PREFIX_SIZE) as i32 {
        return Err(BatchError::CorruptLength);
    }
    let total = BATCH_LENGTH_PREFIX_SIZE + batch_length as usize;
    if total > buf.len() {
        return Err(BatchError::Truncated);
    }
    Ok(total)
}

/// Checks the complete batch at the start of `buf` and returns its size:
/// framing, magic, CRC-32C, record count against length and offset delta,
/// and the `max_batch_bytes` limit (`max.message.bytes`).
pub fn validate(buf: &[u8], max_batch_bytes: usize) -> Result<usize, BatchError> {
    check(buf, max_batch_bytes, Counting::Dense)
}

/// `validate` for a batch read back from a log: there the cleaner may have
/// dropped records, so a batch may hold fewer records than its offsets span
/// (none at all, even), as in Kafka.
pub fn validate_stored(buf: &[u8], max_batch_bytes: usize) -> Result<usize, BatchError> {
    check(buf, max_batch_bytes, Counting::Compacted)
}

/// How a batch's record count must relate to its `lastOffsetDelta`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Counting {
    /// As produced: one record per offset.
    Dense,
    /// As a cleaner may leave it: at most one record per offset.
    Compacted,
}

fn check(buf: &[u8], max_batch_bytes: usize, counting: Counting) -> Result<usize, BatchError> {
    if buf.len() >= BATCH_LENGTH_PREFIX_SIZE {
        let declared = i32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        if declared > 0 && BATCH_LENGTH_PREFIX_SIZE + declared as usize > max_batch_bytes {
            return Err(BatchError::TooLarge);
        }
    }
    let total = framed_size(buf)?;
    let header = BatchHeader::view(buf).ok_or(BatchError::Truncated)?;
    if header.magic != MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic(header.magic));
    }
    let count = header.records_count.get();
    let delta = header.last_offset_delta.get();
    let count_fits = match counting {
        // Widened: a client's count of i32::MIN must not overflow.
        Counting::Dense => count == 0 || i64::from(delta) == i64::from(count) - 1,
        Counting::Compacted => delta >= 0 && i64::from(count) <= i64::from(delta) + 1,
    };
    if count < 0 || !count_fits {
        return Err(BatchError::InvalidRecordCount);
    }
    let body = total - BATCH_HEADER_SIZE;
    if header.compression() == 0 && (count as usize).saturating_mul(RECORD_SIZE_MIN) > body {
        return Err(BatchError::CorruptLength);
    }
    if !crc_matches(&buf[..total], header) {
        return Err(BatchError::CrcMismatch);
    }
    Ok(total)
}

/// Checks one complete batch read back from a segment file (`batch` is
/// exactly its framed bytes): magic 2 and the CRC-32C, nothing that needs
/// the records decoded. The fields outside the CRC (base offset, length,
/// leader epoch) are for the log to check against its own offsets.
pub fn verify_stored(batch: &[u8]) -> Result<(), BatchError> {
    let (covered, claimed) = stored_crc(batch)?;
    if crc32c::crc32c(covered) != claimed {
        return Err(BatchError::CrcMismatch);
    }
    Ok(())
}

/// `verify_stored` up to the CRC: after the magic check, the bytes the
/// CRC-32C covers and the CRC the header claims, for a caller that
/// checksums a large batch in steps (`crc32c::crc32c_append`).
pub fn stored_crc(batch: &[u8]) -> Result<(&[u8], u32), BatchError> {
    let header = BatchHeader::view(batch).ok_or(BatchError::Truncated)?;
    if header.magic != MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic(header.magic));
    }
    Ok((&batch[CRC_START..], header.crc.get()))
}

/// CRC-32C (hardware accelerated by the `crc32c` crate) over attributes to
/// the end of `batch` against the header's.
fn crc_matches(batch: &[u8], header: &BatchHeader) -> bool {
    crc32c::crc32c(&batch[CRC_START..]) == header.crc.get()
}

/// `sequence + increment` for an idempotent producer's sequence numbers,
/// which wrap from `i32::MAX` to 0 (Kafka's `DefaultRecordBatch.incrementSequence`).
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

/// Rewrites `baseOffset` in place. The CRC does not cover it, so the batch
/// stays valid.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrites `partitionLeaderEpoch` in place (also outside the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[12..16].copy_from_slice(&epoch.to_be_bytes());
}

/// Sets LogAppendTime: the timestamp type bit and `maxTimestamp`, then
/// recomputes the CRC, which covers both.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = i16::from_be_bytes([batch[21], batch[22]]) | ATTR_TIMESTAMP_TYPE_LOG_APPEND;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    batch[35..43].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
pub(crate) mod tests {
    #[test]
    fn sequences_wrap_past_i32_max_to_zero() {
        assert_eq!(super::increment_sequence(5, 3), 8);
        assert_eq!(super::increment_sequence(i32::MAX - 2, 2), i32::MAX);
        assert_eq!(super::increment_sequence(i32::MAX - 2, 3), 0);
        assert_eq!(super::increment_sequence(i32::MAX, 5), 4);
    }

    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    /// Every codec Kafka defines.
    pub const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// Encodes `n` small records as one batch with the real Kafka encoder.
    pub fn sample_batch(n: usize, compression: Compression) -> Vec<u8> {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32,
                timestamp: 1_700_000_000_000 + i as i64,
                key: Some(format!("k{i}").into_bytes().into()),
                value: Some(format!("value-{i}").into_bytes().into()),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut buf, records.iter(), &options).expect("encode");
        buf.to_vec()
    }

    #[test]
    fn valid_batches_pass_in_every_codec() {
        for codec in CODECS {
            let batch = sample_batch(10, codec);
            assert_eq!(validate(&batch, 1 << 20), Ok(batch.len()), "{codec:?}");
            let header = BatchHeader::view(&batch).unwrap();
            assert_eq!(header.records_count.get(), 10);
            assert_eq!(header.last_offset_delta.get(), 9);
        }
    }

    #[test]
    fn flipped_byte_fails_crc() {
        let mut batch = sample_batch(3, Compression::None);
        let last = batch.len() - 1;
        batch[last] ^= 0x40;
        assert_eq!(validate(&batch, 1 << 20), Err(BatchError::CrcMismatch));
    }

    #[test]
    fn stored_batches_are_verified_by_magic_and_crc() {
        let batch = sample_batch(4, Compression::Zstd);
        assert_eq!(verify_stored(&batch), Ok(()));
        for at in [CRC_START, 40, batch.len() - 1] {
            let mut flipped = batch.clone();
            flipped[at] ^= 0x01;
            assert_eq!(
                verify_stored(&flipped),
                Err(BatchError::CrcMismatch),
                "byte {at}"
            );
        }
        let mut wrong_magic = batch.clone();
        wrong_magic[16] = 0;
        assert_eq!(
            verify_stored(&wrong_magic),
            Err(BatchError::UnsupportedMagic(0))
        );
        assert_eq!(verify_stored(&batch[..20]), Err(BatchError::Truncated));
    }

    #[test]
    fn base_offset_is_outside_crc() {
        let mut batch = sample_batch(3, Compression::None);
        set_base_offset(&mut batch, 12345);
        set_partition_leader_epoch(&mut batch, 7);
        assert!(validate(&batch, 1 << 20).is_ok());
        let header = BatchHeader::view(&batch).unwrap();
        assert_eq!(header.base_offset.get(), 12345);
        assert_eq!(header.last_offset(), 12347);
    }

    #[test]
    fn log_append_time_keeps_crc_valid() {
        let mut batch = sample_batch(2, Compression::Lz4);
        set_log_append_time(&mut batch, 42);
        assert!(validate(&batch, 1 << 20).is_ok());
        assert_eq!(BatchHeader::view(&batch).unwrap().max_timestamp.get(), 42);
    }

    #[test]
    fn limits_and_lies_are_refused() {
        let batch = sample_batch(5, Compression::None);
        assert_eq!(validate(&batch, batch.len() - 1), Err(BatchError::TooLarge));
        assert_eq!(
            validate(&batch[..batch.len() - 1], 1 << 20),
            Err(BatchError::Truncated)
        );
        assert_eq!(validate(&batch[..30], 1 << 20), Err(BatchError::Truncated));
        let mut wrong_magic = batch.clone();
        wrong_magic[16] = 1;
        assert_eq!(
            validate(&wrong_magic, 1 << 20),
            Err(BatchError::UnsupportedMagic(1))
        );
        let mut lying_count = batch.clone();
        lying_count[57..61].copy_from_slice(&1000i32.to_be_bytes());
        assert_eq!(
            validate(&lying_count, 1 << 20),
            Err(BatchError::InvalidRecordCount)
        );
        let mut tiny_length = batch;
        tiny_length[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert_eq!(
            validate(&tiny_length, 1 << 20),
            Err(BatchError::CorruptLength)
        );
    }

    #[test]
    fn a_compacted_batch_is_valid_only_as_stored() {
        // Three records spanning offsets 0..=9, as a cleaner leaves them.
        let mut batch = sample_batch(3, Compression::None);
        batch[23..27].copy_from_slice(&9i32.to_be_bytes());
        let crc = crc32c::crc32c(&batch[CRC_START..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(validate_stored(&batch, 1 << 20), Ok(batch.len()));
        assert_eq!(
            validate(&batch, 1 << 20),
            Err(BatchError::InvalidRecordCount)
        );
        // More records than offsets is never valid.
        batch[23..27].copy_from_slice(&1i32.to_be_bytes());
        let crc = crc32c::crc32c(&batch[CRC_START..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            validate_stored(&batch, 1 << 20),
            Err(BatchError::InvalidRecordCount)
        );
    }

    #[test]
    fn every_prefix_of_a_batch_is_truncated_never_a_panic() {
        let batch = sample_batch(4, Compression::Zstd);
        for cut in 0..batch.len() {
            assert!(validate(&batch[..cut], 1 << 20).is_err());
        }
    }
}
