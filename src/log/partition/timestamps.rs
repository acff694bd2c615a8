//! ListOffsets by timestamp: the time indexes narrow the search to a
//! segment and a position, then batches are read and, only where the batch
//! header cannot answer, decoded.
//!
//! Invariant: answers only from below the high watermark (or the log end
//! offset for the largest timestamp) and above the log start offset; reads
//! through `read`, so every byte it looks at was checked.

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

use super::super::segment::NO_TIMESTAMP;
use super::super::LogError;
use super::PartitionLog;
use crate::protocol::batch::{BatchHeader, ATTR_TIMESTAMP_TYPE_LOG_APPEND};

/// Bytes read per step while looking for a timestamp: the time index lands
/// within about `index.interval.bytes` of the answer.
const TIMESTAMP_SCAN_BYTES: usize = 1 << 20;

impl PartitionLog {
    /// ListOffsets by timestamp: offset and timestamp of the first record
    /// (below the high watermark) with a timestamp at or above `timestamp`.
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let start = {
            let segments = self.segments.borrow();
            let Some(segment) = segments
                .iter()
                .find(|s| s.indexes.borrow().max_timestamp >= timestamp)
            else {
                return Ok(None);
            };
            let indexes = segment.indexes.borrow();
            indexes
                .times
                .lookup(timestamp)
                .map_or(segment.base_offset, |relative| {
                    segment.base_offset + i64::from(relative) + 1
                })
        };
        let high_watermark = self.high_watermark();
        let mut offset = start.max(self.log_start_offset());
        while offset < high_watermark {
            let batches = self
                .read(offset, high_watermark, TIMESTAMP_SCAN_BYTES, true)
                .await?;
            if batches.is_empty() {
                break;
            }
            for batch in batches {
                let Some(header) = BatchHeader::view(&batch) else {
                    break;
                };
                offset = header.last_offset() + 1;
                if header.max_timestamp.get() >= timestamp {
                    if let Some(found) = self.find_record(batch, |ts| ts >= timestamp)? {
                        return Ok(Some(found));
                    }
                }
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP: offset and timestamp of the first record
    /// carrying the largest timestamp, `None` when the log is empty.
    pub async fn max_timestamp(&self) -> Result<Option<(i64, i64)>, LogError> {
        let (timestamp, batch_last_offset) = {
            let segments = self.segments.borrow();
            let mut best = (NO_TIMESTAMP, -1);
            for segment in segments.iter() {
                let indexes = segment.indexes.borrow();
                if indexes.max_timestamp > best.0 {
                    best = (indexes.max_timestamp, indexes.offset_of_max_timestamp);
                }
            }
            best
        };
        if batch_last_offset < self.log_start_offset() {
            return Ok(None);
        }
        let batches = self
            .read(batch_last_offset, self.log_end_offset(), 1, true)
            .await?;
        if let Some(batch) = batches.into_iter().next() {
            if let Some(found) = self.find_record(batch, |ts| ts == timestamp)? {
                return Ok(Some(found));
            }
        }
        Ok(Some((batch_last_offset, timestamp)))
    }

    /// (offset, timestamp) of the first record of `batch` whose timestamp
    /// matches. Decodes the batch: only for the rare timestamp lookups.
    fn find_record(
        &self,
        batch: Bytes,
        matches: impl Fn(i64) -> bool,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let Some(header) = BatchHeader::view(&batch) else {
            return Ok(None);
        };
        if header.attributes.get() & ATTR_TIMESTAMP_TYPE_LOG_APPEND != 0 {
            let timestamp = header.max_timestamp.get();
            return Ok(matches(timestamp).then_some((header.base_offset.get(), timestamp)));
        }
        let position = header.base_offset.get();
        let mut buf = batch;
        let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| {
            let reason = format!("undecodable batch at offset {position}: {e}");
            ::log::error!("partition log {}: {reason}", self.dir.display());
            LogError::Corrupt {
                path: self.dir.clone(),
                position: position as u64,
                reason,
            }
        })?;
        Ok(set
            .records
            .iter()
            .find(|r| matches(r.timestamp))
            .map(|r| (r.offset, r.timestamp)))
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::records::Compression;

    use std::rc::Rc;

    use super::super::super::AppendWait;
    use super::super::tests::*;
    use super::super::PartitionLog;
    use crate::protocol::batch::tests::CODECS;
    use crate::protocol::batch::BatchHeader;

    #[test]
    fn log_append_time_is_applied_and_found() {
        with_dir(|dir| async move {
            let log = PartitionLog::open(dir, small_config(0)).await.unwrap();
            for now in [5_000, 6_000] {
                log.append(
                    BytesMut::from(&batch_at(3, Compression::Snappy, 10)[..]),
                    AppendWait::Durable,
                    Some(now),
                )
                .await
                .unwrap();
            }
            let got = read_all(&log).await;
            let header = BatchHeader::view(&got[1]).unwrap();
            assert_eq!(header.max_timestamp.get(), 6_000);
            assert!(crate::protocol::batch::validate(&got[1], 1 << 20).is_ok());
            assert_eq!(
                log.offset_for_timestamp(5_500).await.unwrap(),
                Some((3, 6_000))
            );
            assert_eq!(log.max_timestamp().await.unwrap(), Some((3, 6_000)));
        });
    }

    #[test]
    fn timestamps_are_found() {
        for cache in [0, TAIL_CACHE_TEST_BYTES] {
            with_dir(move |dir| async move {
                let log = PartitionLog::open(dir.clone(), small_config(cache))
                    .await
                    .unwrap();
                assert_eq!(log.max_timestamp().await.unwrap(), None);
                assert_eq!(log.offset_for_timestamp(0).await.unwrap(), None);
                // 30 batches of 4 records, batch b at timestamps 1000 + 40 * b
                // + (0..4), except batch 17 at 9000..9004, the largest.
                for b in 0..30 {
                    let codec = CODECS[b % CODECS.len()];
                    let mut batch = batch_at(4, codec, 1000 + 40 * b as i64);
                    if b == 17 {
                        batch = batch_at(4, codec, 9000);
                    }
                    log.append(BytesMut::from(&batch[..]), AppendWait::Durable, None)
                        .await
                        .unwrap();
                }
                // Batch 17 holds offsets 68..72.
                let check = |log: Rc<PartitionLog>| async move {
                    // (target timestamp, first offset at or after it, its timestamp)
                    let expected = [
                        (0, 0, 1000),
                        (1000, 0, 1000),
                        (1001, 1, 1001),
                        (1003, 3, 1003),
                        (1004, 4, 1040),
                        (1645, 68, 9000),
                        (1641, 65, 1641),
                        (9001, 69, 9001),
                    ];
                    for (target, offset, timestamp) in expected {
                        assert_eq!(
                            log.offset_for_timestamp(target).await.unwrap(),
                            Some((offset, timestamp)),
                            "timestamp {target}"
                        );
                    }
                    assert_eq!(log.offset_for_timestamp(9004).await.unwrap(), None);
                    assert_eq!(log.max_timestamp().await.unwrap(), Some((71, 9003)));
                    log
                };
                let log = check(log).await;
                log.close().await.unwrap();
                let log = PartitionLog::open(dir, small_config(cache)).await.unwrap();
                check(log).await;
            });
        }
    }
}
