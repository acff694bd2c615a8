//! Building RecordBatch v2 payloads and reading record sets back
//! (a Fetch response, a log), through `kafka-protocol`'s encoder and decoder.
//!
//! Invariant: a fetched record set may end in a partial batch (the broker
//! cuts at `max_bytes`); it is skipped, never decoded, and never an error.
//! Control records (transaction markers) never reach the caller of
//! `decode_records`; `decode_batches` keeps them, with each batch's producer
//! and attributes, for readers of internal topics that follow transactions.

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;

use crate::protocol::batch::{self, BatchError, BatchHeader};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};

/// The record batch format the client writes.
const RECORD_BATCH_MAGIC: i8 = 2;

/// One record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

/// One consumed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

/// Encodes `records` as one RecordBatch v2 with `compression`, timestamps set
/// to `timestamp_ms`, and no producer id (not idempotent).
pub fn encode_batch(
    records: &[ProducerRecord],
    compression: Compression,
    timestamp_ms: i64,
) -> anyhow::Result<Bytes> {
    encode(records, compression, timestamp_ms, None)
}

/// Encodes `records` as one transactional RecordBatch v2 of producer
/// `producer_id` at `producer_epoch`, as a coordinator writes a
/// transaction's records to an internal topic (Kafka's group coordinator
/// for TxnOffsetCommit): base sequence 0, the transactional attribute set.
pub fn encode_txn_batch(
    records: &[ProducerRecord],
    compression: Compression,
    timestamp_ms: i64,
    producer_id: i64,
    producer_epoch: i16,
) -> anyhow::Result<Bytes> {
    encode(
        records,
        compression,
        timestamp_ms,
        Some((producer_id, producer_epoch)),
    )
}

fn encode(
    records: &[ProducerRecord],
    compression: Compression,
    timestamp_ms: i64,
    producer: Option<(i64, i16)>,
) -> anyhow::Result<Bytes> {
    let (producer_id, producer_epoch, base_sequence) = match producer {
        Some((producer_id, producer_epoch)) => (producer_id, producer_epoch, 0),
        None => (NO_PRODUCER_ID, NO_PRODUCER_EPOCH, NO_SEQUENCE),
    };
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, record)| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch wherever `offset - sequence`
            // changes; stepping both keeps one batch, whose base sequence is
            // then the first record's.
            sequence: base_sequence.wrapping_add(i as i32),
            timestamp: timestamp_ms,
            key: record.key.clone(),
            value: record.value.clone(),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: RECORD_BATCH_MAGIC,
            compression,
        },
    )
    .context("encoding record batch")?;
    Ok(buf.freeze())
}

/// A transaction marker's control record type (Kafka's `ControlRecordType`).
const CONTROL_TYPE_ABORT: i16 = 0;
const CONTROL_TYPE_COMMIT: i16 = 1;
/// The version of a control record's key and of an end-transaction
/// marker's value.
const CONTROL_RECORD_VERSION: i16 = 0;

/// A transaction's end as a partition's log records it: one control batch
/// (transactional, control) of one record whose key is the marker's type
/// and whose value names the coordinator epoch that wrote it, Kafka's
/// `EndTransactionMarker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    /// COMMIT when true, ABORT when false.
    pub commit: bool,
}

impl TxnMarker {
    /// The marker as a RecordBatch v2 at offset 0, stamped `timestamp_ms`.
    pub fn encode(&self, timestamp_ms: i64) -> anyhow::Result<Bytes> {
        let kind = if self.commit {
            CONTROL_TYPE_COMMIT
        } else {
            CONTROL_TYPE_ABORT
        };
        let mut key = BytesMut::with_capacity(4);
        key.extend_from_slice(&CONTROL_RECORD_VERSION.to_be_bytes());
        key.extend_from_slice(&kind.to_be_bytes());
        let mut value = BytesMut::with_capacity(6);
        value.extend_from_slice(&CONTROL_RECORD_VERSION.to_be_bytes());
        value.extend_from_slice(&self.coordinator_epoch.to_be_bytes());
        let record = Record {
            transactional: true,
            control: true,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: NO_SEQUENCE,
            timestamp: timestamp_ms,
            key: Some(key.freeze()),
            value: Some(value.freeze()),
            headers: IndexMap::new(),
        };
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            [&record],
            &RecordEncodeOptions {
                version: RECORD_BATCH_MAGIC,
                compression: Compression::None,
            },
        )
        .context("encoding a transaction marker")?;
        Ok(buf.freeze())
    }

    /// The marker of a control batch's record, from its key and value;
    /// `None` for a control record that is not a transaction marker.
    pub fn decode(
        producer_id: i64,
        producer_epoch: i16,
        key: &[u8],
        value: &[u8],
    ) -> Option<TxnMarker> {
        let kind = i16::from_be_bytes(key.get(2..4)?.try_into().ok()?);
        let commit = match kind {
            CONTROL_TYPE_COMMIT => true,
            CONTROL_TYPE_ABORT => false,
            _ => return None,
        };
        let coordinator_epoch = i32::from_be_bytes(value.get(2..6)?.try_into().ok()?);
        Some(TxnMarker {
            producer_id,
            producer_epoch,
            coordinator_epoch,
            commit,
        })
    }
}

/// The records of one fetched record set, and where the next fetch starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchedRecords {
    pub records: Vec<ConsumedRecord>,
    /// One past the last offset of the last complete batch, if there was one.
    /// Batches of only control records, or emptied by compaction, still
    /// advance it, so a consumer never fetches the same batch forever.
    pub next_offset: Option<i64>,
}

/// Decodes every complete batch in a fetched record set, in order, dropping
/// control records and records before `from_offset` (a fetch returns whole
/// batches, which may start before the offset asked for).
pub fn decode_records(records: &Bytes, from_offset: i64) -> anyhow::Result<FetchedRecords> {
    let (batches, next_offset) = decode_batches(records, from_offset)?;
    let records = batches
        .into_iter()
        .filter(|batch| !batch.control)
        .flat_map(|batch| batch.records)
        .collect();
    Ok(FetchedRecords {
        records,
        next_offset,
    })
}

/// One batch of a record set, with what its header says of its producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBatch {
    /// `NO_PRODUCER_ID` (-1) for a batch of no idempotent producer.
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Attributes bit 4: part of a transaction.
    pub transactional: bool,
    /// Attributes bit 5: its records are control records (markers).
    pub control: bool,
    /// Records before `from_offset` left out; control records kept.
    pub records: Vec<ConsumedRecord>,
}

/// Decodes every complete batch in a record set, in order, keeping control
/// batches; a partial batch at the end is skipped. Also returns where the
/// next read starts (see `FetchedRecords::next_offset`).
pub fn decode_batches(
    records: &Bytes,
    from_offset: i64,
) -> anyhow::Result<(Vec<DecodedBatch>, Option<i64>)> {
    let mut batches = Vec::new();
    let mut next_offset = None;
    let mut position = 0;
    loop {
        let rest = &records[position..];
        let batch_size = match batch::framed_size(rest) {
            Ok(size) => size,
            Err(BatchError::Truncated) => break,
            Err(error) => bail!("malformed record batch at byte {position}: {error:?}"),
        };
        let Some(header) = BatchHeader::view(rest) else {
            bail!("record batch at byte {position} has no full header");
        };
        next_offset = Some(header.last_offset() + 1);
        let (producer_id, producer_epoch) = (header.producer_id.get(), header.producer_epoch.get());
        let (transactional, control) = (header.is_transactional(), header.is_control());
        let mut batch = records.slice(position..position + batch_size);
        let set = RecordBatchDecoder::decode(&mut batch)
            .with_context(|| format!("decoding record batch at byte {position}"))?;
        position += batch_size;
        batches.push(DecodedBatch {
            producer_id,
            producer_epoch,
            transactional,
            control,
            records: set
                .records
                .into_iter()
                .filter(|record| record.offset >= from_offset)
                .map(|record| ConsumedRecord {
                    offset: record.offset,
                    timestamp: record.timestamp,
                    key: record.key,
                    value: record.value,
                })
                .collect(),
        });
    }
    Ok((batches, next_offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: Option<&'static str>, value: &'static str) -> ProducerRecord {
        ProducerRecord {
            key: key.map(|k| Bytes::from_static(k.as_bytes())),
            value: Some(Bytes::from_static(value.as_bytes())),
        }
    }

    /// A marker is one transactional control batch whose record reads back
    /// as the same marker, and which consumers never see as a record.
    #[test]
    fn txn_marker_round_trip() {
        for commit in [true, false] {
            let marker = TxnMarker {
                producer_id: 4_000,
                producer_epoch: 7,
                coordinator_epoch: 3,
                commit,
            };
            let bytes = marker.encode(1_700_000_000_000).unwrap();
            let header = BatchHeader::view(&bytes).unwrap();
            assert!(header.is_control() && header.is_transactional());
            assert_eq!(header.producer_id.get(), 4_000);
            assert_eq!(header.producer_epoch.get(), 7);
            assert_eq!(header.base_sequence.get(), NO_SEQUENCE);
            assert_eq!(header.last_offset_delta.get(), 0);
            let set = RecordBatchDecoder::decode(&mut bytes.clone()).unwrap();
            let record = &set.records[0];
            assert!(record.control);
            let decoded = TxnMarker::decode(
                record.producer_id,
                record.producer_epoch,
                record.key.as_deref().unwrap(),
                record.value.as_deref().unwrap(),
            );
            assert_eq!(decoded, Some(marker));
            let fetched = decode_records(&bytes, 0).unwrap();
            assert!(fetched.records.is_empty());
            assert_eq!(fetched.next_offset, Some(1));
        }
    }

    #[test]
    fn control_records_that_are_not_markers_decode_to_none() {
        assert_eq!(
            TxnMarker::decode(1, 0, &[0, 0, 0, 5], &[0, 0, 0, 0, 0, 1]),
            None
        );
        assert_eq!(TxnMarker::decode(1, 0, &[0, 0], &[0, 0, 0, 0, 0, 1]), None);
        assert_eq!(TxnMarker::decode(1, 0, &[0, 0, 0, 1], &[0, 0, 0]), None);
    }

    /// Patches the base offset the way a broker does on append.
    fn with_base_offset(batch: &Bytes, base_offset: i64) -> BytesMut {
        let mut batch = BytesMut::from(&batch[..]);
        batch[..8].copy_from_slice(&base_offset.to_be_bytes());
        batch
    }

    #[test]
    fn every_codec_round_trips() {
        let records = vec![
            record(Some("k"), "v1"),
            record(None, "v2"),
            record(None, ""),
        ];
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch = encode_batch(&records, compression, 1_700_000_000_000).unwrap();
            assert_eq!(batch::framed_size(&batch), Ok(batch.len()), "one batch");
            let header = BatchHeader::view(&batch).unwrap();
            assert_eq!(header.base_sequence.get(), NO_SEQUENCE);
            assert_eq!(header.producer_id.get(), NO_PRODUCER_ID);
            let fetched = decode_records(&batch, 0).unwrap();
            assert_eq!(fetched.next_offset, Some(3));
            let decoded = fetched.records;
            assert_eq!(decoded.len(), 3, "{compression:?}");
            for (i, (sent, got)) in records.iter().zip(&decoded).enumerate() {
                assert_eq!(got.offset, i as i64);
                assert_eq!(got.key, sent.key);
                assert_eq!(got.value, sent.value);
                assert_eq!(got.timestamp, 1_700_000_000_000);
            }
        }
    }

    /// A coordinator's transactional batch: its producer and attributes in
    /// the header, read back by `decode_batches` beside a plain batch.
    #[test]
    fn transactional_batches_carry_their_producer() {
        let records = [record(Some("k"), "a"), record(Some("k"), "b")];
        let txn = encode_txn_batch(&records, Compression::None, 0, 4_000, 3).unwrap();
        let header = BatchHeader::view(&txn).unwrap();
        assert!(header.is_transactional() && !header.is_control());
        assert_eq!(header.producer_id.get(), 4_000);
        assert_eq!(header.producer_epoch.get(), 3);
        assert_eq!(header.base_sequence.get(), 0);
        assert_eq!(header.last_offset_delta.get(), 1, "one batch");
        let plain = encode_batch(&records[..1], Compression::None, 0).unwrap();
        let mut set = with_base_offset(&plain, 5);
        set.extend_from_slice(&with_base_offset(&txn, 6));
        let (batches, next_offset) = decode_batches(&set.freeze(), 0).unwrap();
        assert_eq!(next_offset, Some(8));
        let seen: Vec<_> = batches
            .iter()
            .map(|b| {
                (
                    b.producer_id,
                    b.producer_epoch,
                    b.transactional,
                    b.control,
                    b.records.len(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (NO_PRODUCER_ID, NO_PRODUCER_EPOCH, false, false, 1),
                (4_000, 3, true, false, 2)
            ]
        );
        assert_eq!(batches[1].records[1].offset, 7);
    }

    #[test]
    fn partial_trailing_batch_is_skipped_and_offsets_filtered() {
        let first = encode_batch(
            &[record(None, "a"), record(None, "b")],
            Compression::None,
            0,
        )
        .unwrap();
        let second = encode_batch(&[record(None, "c")], Compression::Lz4, 0).unwrap();
        let mut set = with_base_offset(&first, 10);
        set.extend_from_slice(&with_base_offset(&second, 12));
        let set = set.freeze();

        let all = decode_records(&set, 0).unwrap();
        assert_eq!(all.next_offset, Some(13));
        let all = all.records;
        assert_eq!(
            all.iter().map(|r| r.offset).collect::<Vec<_>>(),
            [10, 11, 12]
        );

        let from_11 = decode_records(&set, 11).unwrap().records;
        assert_eq!(
            from_11.iter().map(|r| r.offset).collect::<Vec<_>>(),
            [11, 12]
        );

        for cut in [set.len() - 1, first.len() + 5, first.len() + 11] {
            let truncated = set.slice(..cut);
            let decoded = decode_records(&truncated, 0).unwrap();
            assert_eq!(decoded.records.len(), 2, "cut at {cut}");
            assert_eq!(decoded.next_offset, Some(12), "cut at {cut}");
        }
        assert_eq!(
            decode_records(&set.slice(..3), 0).unwrap(),
            FetchedRecords::default()
        );
    }

    #[test]
    fn corrupt_batch_is_an_error() {
        let batch = encode_batch(&[record(None, "a")], Compression::None, 0).unwrap();
        let mut corrupt = BytesMut::from(&batch[..]);
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        assert!(decode_records(&corrupt.freeze(), 0).is_err());
    }
}
