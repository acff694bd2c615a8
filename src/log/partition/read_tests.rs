//! Reads from the tail cache and the segment files: limits, ranges, and
//! the checks that keep a rotten or misplaced batch from being served.

use std::path::Path;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::Compression;

use super::super::{AppendWait, Chunk, LogConfig, LogError};
use super::append::SLICE_BATCH_BYTES_MIN;
use super::tests::*;
use super::PartitionLog;
use crate::protocol::batch::tests::sample_batch;
use crate::protocol::batch::{BatchHeader, ATTR_TIMESTAMP_TYPE_LOG_APPEND, BATCH_HEADER_SIZE};
use crate::protocol::chunk::total_len;

/// A log whose segments hold these tests' large batches and whose tail
/// holds `tail_cache_bytes`, with its config for reopening it.
pub(super) async fn open_large(
    dir: &Path,
    tail_cache_bytes: usize,
) -> (Rc<PartitionLog>, LogConfig) {
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..small_config(tail_cache_bytes)
    };
    let log = PartitionLog::open(dir.to_path_buf(), config.clone())
        .await
        .unwrap();
    (log, config)
}

/// A batch of `SLICE_BATCH_BYTES_MIN` or more, and one below it.
pub(super) fn large_and_small() -> (Vec<u8>, Vec<u8>) {
    let large = sample_batch(400, Compression::None);
    let small = sample_batch(5, Compression::None);
    assert!(large.len() >= SLICE_BATCH_BYTES_MIN && small.len() < SLICE_BATCH_BYTES_MIN);
    (large, small)
}

/// Zero-copy fetch, the log's half: a read for a fetch served from the
/// tail cache hands out the very memory the append was given, but for the
/// headers the log patched and the small batches it copied whole (the
/// Fetch writer's half is `record_buffers_go_out_as_the_same_memory`).
#[test]
fn tail_reads_share_the_appended_memory() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir, small_config(TAIL_CACHE_TEST_BYTES))
            .await
            .unwrap();
        let (large, small) = large_and_small();
        let mut appended = Vec::new();
        for _ in 0..3 {
            let mut request = BytesMut::from(&large[..]);
            request.extend_from_slice(&small);
            let buffer = request.freeze();
            let start = buffer.as_ptr() as usize;
            appended.push(start..start + buffer.len());
            log.append(buffer, AppendWait::Durable, None).await.unwrap();
        }
        let read = log
            .read_chunks(0, log.high_watermark(), usize::MAX, true)
            .await
            .unwrap();
        let fetched = total_len(&read.chunks);
        assert_eq!(fetched, 3 * (large.len() + small.len()));
        assert_eq!(read.last_offset, Some(log.log_end_offset() - 1));
        let copied: usize = read
            .chunks
            .iter()
            .filter_map(Chunk::memory)
            .filter(|chunk| {
                let start = chunk.as_ptr() as usize;
                !appended
                    .iter()
                    .any(|range| range.contains(&start) && start + chunk.len() <= range.end)
            })
            .map(Bytes::len)
            .sum();
        assert_eq!(
            copied,
            3 * (BATCH_HEADER_SIZE + small.len()),
            "bytes copied per {fetched} fetched"
        );
        log.close().await.unwrap();
    });
}

/// A batch held as its patched header and a slice of the request is, from
/// the tail, byte for byte what the segment gives back once the tail is
/// gone (the log reopened), with CreateTime and with LogAppendTime (whose
/// CRC the log computes over the two parts); every read checks the CRC.
#[test]
fn a_sliced_batch_from_the_tail_is_the_batch_in_the_segment() {
    for log_append_time_ms in [None, Some(1_700_000_000_123)] {
        with_dir(move |dir| async move {
            let (log, config) = open_large(&dir, TAIL_CACHE_TEST_BYTES).await;
            let (large, small) = large_and_small();
            let mut request = BytesMut::from(&small[..]);
            request.extend_from_slice(&large);
            request.extend_from_slice(&small);
            log.append(request.freeze(), AppendWait::Durable, log_append_time_ms)
                .await
                .unwrap();
            log.append(BytesMut::from(&large[..]), AppendWait::Durable, None)
                .await
                .unwrap();
            let hw = log.high_watermark();
            let read = log.read_chunks(0, hw, usize::MAX, true).await.unwrap();
            assert_eq!(read.chunks.len(), 6, "two batches in two parts each");
            assert_eq!(read.last_offset, Some(hw - 1));
            let from_tail: Vec<u8> = chunk_bytes(&read.chunks);
            let whole: Vec<u8> = log.read(0, hw, usize::MAX, true).await.unwrap().concat();
            assert_eq!(from_tail, whole);
            log.close().await.unwrap();

            let log = PartitionLog::open(dir, config).await.unwrap();
            let from_segment = log.read_chunks(0, hw, usize::MAX, true).await.unwrap();
            assert_eq!(from_segment.chunks.len(), 4);
            assert_eq!(from_segment.last_offset, Some(hw - 1));
            assert_eq!(chunk_bytes(&from_segment.chunks), from_tail);
            let second = from_segment.chunks[1].memory().unwrap();
            let second = BatchHeader::view(second).unwrap();
            let stamped = second.attributes.get() & ATTR_TIMESTAMP_TYPE_LOG_APPEND != 0;
            assert_eq!(stamped, log_append_time_ms.is_some());
            if let Some(now) = log_append_time_ms {
                assert_eq!(second.max_timestamp.get(), now);
            }
            log.close().await.unwrap();
        });
    }
}

/// One append's batches share what they pin (the log's copies and the
/// caller's buffer, `Backing::Own`): it stays charged until the last of them leaves the tail,
/// from the front (retention) or from the back (a given-up write).
#[test]
fn a_multi_batch_append_is_charged_until_its_last_batch_goes() {
    for from_the_front in [true, false] {
        with_dir(move |dir| async move {
            let (large, small) = large_and_small();
            let log = PartitionLog::open(dir, small_config(TAIL_CACHE_TEST_BYTES))
                .await
                .unwrap();
            let mut request = BytesMut::from(&large[..]);
            request.extend_from_slice(&small);
            request.extend_from_slice(&large);
            let request_len = request.len();
            log.append(request, AppendWait::Durable, None)
                .await
                .unwrap();
            let charge = 2 * BATCH_HEADER_SIZE + small.len() + request_len;
            let end = log.log_end_offset();
            {
                let mut tail = log.tail.borrow_mut();
                assert_eq!(tail.pinned_bytes(), charge);
                let third = end - (end - 5) / 2;
                if from_the_front {
                    tail.evict_below(end - 1);
                } else {
                    tail.truncate_from(third);
                }
                assert_eq!(tail.pinned_bytes(), charge);
                if from_the_front {
                    tail.evict_below(end);
                } else {
                    tail.truncate_from(0);
                }
                assert_eq!(tail.pinned_bytes(), 0);
            }
            log.close().await.unwrap();
        });
    }
}

#[test]
fn max_bytes_and_min_one_batch() {
    for cache in [0, TAIL_CACHE_TEST_BYTES] {
        with_dir(move |dir| async move {
            let log = PartitionLog::open(dir, small_config(cache)).await.unwrap();
            let batch = sample_batch(3, Compression::None);
            let size = batch.len();
            for _ in 0..5 {
                log.append(BytesMut::from(&batch[..]), AppendWait::Durable, None)
                    .await
                    .unwrap();
            }
            let hw = log.high_watermark();
            assert_eq!(log.read(0, hw, 2 * size + 1, false).await.unwrap().len(), 2);
            assert_eq!(log.read(0, hw, 2 * size, true).await.unwrap().len(), 2);
            assert!(log.read(0, hw, size - 1, false).await.unwrap().is_empty());
            assert_eq!(log.read(0, hw, 1, true).await.unwrap().len(), 1);
            // max_offset is exclusive and never splits a batch.
            assert_eq!(log.read(0, 6, usize::MAX, true).await.unwrap().len(), 2);
            assert_eq!(log.read(0, 7, usize::MAX, true).await.unwrap().len(), 2);
            assert!(log.read(6, 6, usize::MAX, true).await.unwrap().is_empty());
        });
    }
}

#[test]
fn offsets_out_of_range() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir, small_config(0)).await.unwrap();
        log.append(
            BytesMut::from(&sample_batch(4, Compression::Lz4)[..]),
            AppendWait::Durable,
            None,
        )
        .await
        .unwrap();
        assert!(log.read(4, 4, 100, true).await.unwrap().is_empty());
        for offset in [-1, 5, i64::MAX] {
            match log.read(offset, 4, 100, true).await {
                Err(LogError::OffsetOutOfRange {
                    log_start_offset: 0,
                    log_end_offset: 4,
                }) => {}
                other => panic!("offset {offset}: {other:?}"),
            }
        }
    });
}

/// Flips one byte of the `index`-th batch of the segment file at `path`
/// (`batch_len` bytes each), `at` bytes into the batch.
fn flip_byte(path: &Path, batch_len: usize, index: usize, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[batch_len * index + at] ^= 0x04;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_flipped_byte_in_a_closed_segment_is_caught_when_read() {
    with_dir(|dir| async move {
        let batch = sample_batch(5, Compression::None);
        let log = PartitionLog::open(dir.clone(), small_config(0))
            .await
            .unwrap();
        append_at(&log, 40, 1_000).await;
        log.close().await.unwrap();
        let per_segment = (2048 / batch.len()) as i64;
        let second = 5 * per_segment;
        // A byte of a record of the third batch of the second segment.
        let victim = super::super::segment::log_path(&dir, second);
        flip_byte(&victim, batch.len(), 2, batch.len() - 3);
        let bad = second + 10;

        let log = PartitionLog::open(dir.clone(), small_config(0))
            .await
            .unwrap();
        assert_eq!(log.recovery_scanned_bytes(), 0, "a closed log is trusted");
        let hw = log.high_watermark();
        // The first batch of a read is bad: an error naming file and position.
        for offset in [bad, bad + 4] {
            match log.read(offset, hw, usize::MAX, true).await {
                Err(LogError::Corrupt { path, position, .. }) => {
                    assert_eq!(path, victim);
                    assert_eq!(position, 2 * batch.len() as u64);
                }
                other => panic!("offset {offset}: expected Corrupt, got {other:?}"),
            }
        }
        // A read from before it gets the good batches and stops there.
        let got = log.read(0, hw, usize::MAX, true).await.unwrap();
        assert_eq!(got.len() as i64, bad / 5);
        assert_eq!(base_of(got.last().unwrap()), bad - 5);
        // After it, and in other segments, everything reads.
        let got = log.read(bad + 5, hw, usize::MAX, true).await.unwrap();
        assert_eq!(base_of(&got[0]), bad + 5);
        assert_eq!(got.len() as i64, (200 - bad - 5) / 5);
        assert_eq!(log.read(0, hw, 1, true).await.unwrap().len(), 1);
        // Appends go on.
        append_at(&log, 1, 1_000).await;
        assert_eq!(log.log_end_offset(), 205);
    });
}

#[test]
fn a_batch_at_the_wrong_offset_is_not_served() {
    with_dir(|dir| async move {
        let batch = sample_batch(5, Compression::None);
        let log = PartitionLog::open(dir.clone(), small_config(0))
            .await
            .unwrap();
        append_at(&log, 4, 1_000).await;
        log.close().await.unwrap();
        // baseOffset is outside the CRC: only the offsets give it away.
        flip_byte(&super::super::segment::log_path(&dir, 0), batch.len(), 2, 7);
        let log = PartitionLog::open(dir, small_config(0)).await.unwrap();
        let got = log.read(0, 20, usize::MAX, true).await.unwrap();
        assert_eq!(got.len(), 2);
        assert!(matches!(
            log.read(10, 20, usize::MAX, true).await,
            Err(LogError::Corrupt { .. })
        ));
    });
}

#[test]
fn batches_larger_than_a_read_step_are_read_whole_and_checked() {
    with_dir(|dir| async move {
        let records = 20_000;
        let batch = sample_batch(records, Compression::None);
        let step = super::super::segment::READ_STEP_BYTES;
        assert!(batch.len() > step + 100, "{} bytes", batch.len());
        let config = small_config(0);
        let config = LogConfig {
            segment_bytes: LogConfig::default().segment_bytes,
            ..config
        };
        let log = PartitionLog::open(dir.clone(), config.clone())
            .await
            .unwrap();
        for _ in 0..3 {
            append_one(&log, &batch, AppendWait::Durable).await.unwrap();
        }
        let got: Vec<Vec<u8>> = read_all(&log).await.iter().map(|b| unassigned(b)).collect();
        assert_eq!(got, vec![unassigned(&batch); 3]);
        log.close().await.unwrap();
        // A byte of the second batch that its first step does not cover.
        let path = super::super::segment::log_path(&dir, 0);
        flip_byte(&path, batch.len(), 1, step + 100);

        let log = PartitionLog::open(dir, config).await.unwrap();
        let hw = log.high_watermark();
        let got = log.read(0, hw, usize::MAX, true).await.unwrap();
        assert_eq!(got.len(), 1, "the read stops before the damaged batch");
        match log.read(records as i64, hw, usize::MAX, true).await {
            Err(LogError::Corrupt { position, .. }) => {
                assert_eq!(position, batch.len() as u64)
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        let got = log.read(2 * records as i64, hw, 1, true).await.unwrap();
        assert_eq!(got.len(), 1, "the batch after it reads");
    });
}
