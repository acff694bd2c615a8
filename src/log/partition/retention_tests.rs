//! Retention by time and size, DeleteRecords, and reads racing them.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::Compression;

use super::super::{AppendWait, LogConfig, LogError};
use super::tests::*;
use super::PartitionLog;
use crate::clock::now_ms;
use crate::protocol::batch::tests::sample_batch;
use crate::protocol::batch::BatchHeader;

fn assert_out_of_range(result: Result<Vec<Bytes>, LogError>, log_start: i64) {
    match result {
        Err(LogError::OffsetOutOfRange {
            log_start_offset, ..
        }) => assert_eq!(log_start_offset, log_start),
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
}

#[test]
fn retention_by_size_keeps_the_newest_segments() {
    for cache in [0, TAIL_CACHE_TEST_BYTES] {
        with_dir(move |dir| async move {
            let config = LogConfig {
                retention_bytes: 3 * 2048,
                ..small_config(cache)
            };
            let log = PartitionLog::open(dir.clone(), config).await.unwrap();
            append_at(&log, 60, now_ms() as i64).await;
            let (segments_before, size_before) = (log.segment_count(), log.size_bytes());
            assert!(segments_before > 4);
            let outcome = log.enforce_retention(now_ms() as i64).await.unwrap();
            assert!(outcome.deleted_segments > 0);
            assert_eq!(
                log.segment_count(),
                segments_before - outcome.deleted_segments
            );
            assert_eq!(outcome.log_start_offset, log.log_start_offset());
            assert_eq!(log.log_end_offset(), 300);
            // Kafka's rule: what is left holds at least retention.bytes,
            // and without its oldest segment it would not.
            let oldest = log.segments.borrow()[0].queued_bytes.get();
            assert!(log.size_bytes() >= 3 * 2048);
            assert!(log.size_bytes() - oldest < 3 * 2048);
            assert!(log.size_bytes() < size_before);
            let start = log.log_start_offset();
            assert_eq!(start, log.segments.borrow()[0].base_offset);
            assert_out_of_range(log.read(start - 1, 300, usize::MAX, true).await, start);
            assert_out_of_range(log.read(0, 300, usize::MAX, true).await, start);
            let got = read_all(&log).await;
            assert_eq!(BatchHeader::view(&got[0]).unwrap().base_offset.get(), start);
            assert_eq!(got.len() as i64, (300 - start) / 5);
            assert_eq!(segment_files(&dir, "log"), log.segment_count());
            assert_eq!(segment_files(&dir, "index"), log.segment_count() - 1);
            assert_eq!(segment_files(&dir, "timeindex"), log.segment_count() - 1);
            // Nothing more to delete until the log grows.
            let again = log.enforce_retention(now_ms() as i64).await.unwrap();
            assert_eq!(again.deleted_segments, 0);
            assert_eq!(again.log_start_offset, start);
        });
    }
}

#[test]
fn retention_by_time_stops_at_the_first_recent_segment() {
    with_dir(|dir| async move {
        let config = LogConfig {
            retention_ms: 60_000,
            ..small_config(0)
        };
        let log = PartitionLog::open(dir, config).await.unwrap();
        let now = now_ms() as i64;
        append_at(&log, 30, 1_000).await;
        let old_end = log.log_end_offset();
        append_at(&log, 30, now).await;
        append_at(&log, 30, 2_000).await;
        let outcome = log.enforce_retention(now).await.unwrap();
        assert!(outcome.deleted_segments > 0);
        // Every kept segment but the one straddling old and new data
        // holds recent timestamps, and the old ones after them stay.
        let start = log.log_start_offset();
        assert!(start <= old_end);
        assert!(log.segments.borrow()[0].indexes.borrow().max_timestamp >= now - 60_000);
        assert_eq!(read_all(&log).await.len() as i64, (450 - start) / 5);
        assert_out_of_range(log.read(0, 450, usize::MAX, true).await, start);
    });
}

#[test]
fn retention_never_deletes_the_active_segment() {
    with_dir(|dir| async move {
        let config = LogConfig {
            retention_ms: 60_000,
            retention_bytes: 0,
            ..small_config(0)
        };
        let log = PartitionLog::open(dir, config).await.unwrap();
        append_at(&log, 40, 1_000).await;
        let outcome = log.enforce_retention(now_ms() as i64).await.unwrap();
        assert!(outcome.deleted_segments > 0);
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.log_start_offset(), log.active().base_offset);
        assert_eq!(log.log_end_offset(), 200);
        assert!(!read_all(&log).await.is_empty());
        // Appends go on at the log end offset.
        append_at(&log, 1, 1_000).await;
        assert_eq!(log.log_end_offset(), 205);
    });
}

#[test]
fn retention_waits_for_the_writer_to_seal_a_segment() {
    with_dir(|dir| async move {
        let config = LogConfig {
            retention_bytes: 0,
            ..small_config(0)
        };
        let log = PartitionLog::open(dir, config).await.unwrap();
        for _ in 0..40 {
            let batch = sample_batch(5, Compression::None);
            log.append(BytesMut::from(&batch[..]), AppendWait::Nothing, None)
                .await
                .unwrap();
        }
        assert!(log.segment_count() > 1);
        // Nothing is written or sealed yet: nothing may go.
        let outcome = log.enforce_retention(now_ms() as i64).await.unwrap();
        assert_eq!(outcome.deleted_segments, 0);
        log.wait_until(|log| log.offsets.sealed() == log.active().base_offset)
            .await
            .unwrap();
        let outcome = log.enforce_retention(now_ms() as i64).await.unwrap();
        assert!(outcome.deleted_segments > 0);
        assert_eq!(log.segment_count(), 1);
    });
}

#[test]
fn a_read_racing_retention_gets_its_data_or_out_of_range() {
    with_dir(|dir| async move {
        let config = LogConfig {
            retention_bytes: 0,
            ..small_config(0)
        };
        let log = PartitionLog::open(dir, config).await.unwrap();
        append_at(&log, 40, 1_000).await;
        let reader = {
            let log = log.clone();
            glommio::spawn_local(async move { log.read(0, 200, usize::MAX, true).await })
        };
        let outcome = log.enforce_retention(now_ms() as i64).await.unwrap();
        match reader.await {
            Ok(got) => {
                assert_eq!(BatchHeader::view(&got[0]).unwrap().base_offset.get(), 0)
            }
            Err(e) => assert_out_of_range(Err(e), outcome.log_start_offset),
        }
        assert_out_of_range(
            log.read(0, 200, usize::MAX, true).await,
            outcome.log_start_offset,
        );
    });
}

#[test]
fn log_start_offset_survives_a_restart() {
    for clean in [true, false] {
        with_dir(move |dir| async move {
            let config = LogConfig {
                retention_bytes: 2 * 2048,
                ..small_config(0)
            };
            let log = PartitionLog::open(dir.clone(), config.clone())
                .await
                .unwrap();
            append_at(&log, 40, 1_000).await;
            let outcome = log.enforce_retention(now_ms() as i64).await.unwrap();
            assert!(outcome.log_start_offset > 0);
            let segments = log.segment_count();
            if clean {
                log.close().await.unwrap();
            }
            drop(log);
            let log = PartitionLog::open(dir, config).await.unwrap();
            assert_eq!(log.log_start_offset(), outcome.log_start_offset);
            assert_eq!(log.segment_count(), segments);
            assert_eq!(log.log_end_offset(), 200);
            assert_out_of_range(
                log.read(0, 200, usize::MAX, true).await,
                outcome.log_start_offset,
            );
            let got = read_all(&log).await;
            assert_eq!(
                BatchHeader::view(&got[0]).unwrap().base_offset.get(),
                outcome.log_start_offset
            );
        });
    }
}

#[test]
fn delete_records_moves_the_start_and_drops_whole_segments() {
    for (cache, clean) in [(0, true), (TAIL_CACHE_TEST_BYTES, false)] {
        with_dir(move |dir| async move {
            let log = PartitionLog::open(dir.clone(), small_config(cache))
                .await
                .unwrap();
            append_at(&log, 80, 1_000).await;
            let segments_before = log.segment_count();
            assert!(segments_before > 3);
            assert!(matches!(
                log.delete_records(401).await,
                Err(LogError::OffsetOutOfRange { .. })
            ));
            assert_eq!(log.delete_records(103).await.unwrap(), 103);
            assert_eq!(log.log_start_offset(), 103);
            assert!(log.segment_count() < segments_before);
            assert!(log.segments.borrow()[0].base_offset <= 103);
            assert_eq!(segment_files(&dir, "log"), log.segment_count());
            assert_out_of_range(log.read(102, 400, usize::MAX, true).await, 103);
            // The batch holding the new start is served whole.
            let got = log.read(103, 400, usize::MAX, true).await.unwrap();
            assert_eq!(BatchHeader::view(&got[0]).unwrap().base_offset.get(), 100);
            // Below the start is no change.
            assert_eq!(log.delete_records(50).await.unwrap(), 103);
            if clean {
                log.close().await.unwrap();
            }
            drop(log);
            let log = PartitionLog::open(dir.clone(), small_config(cache))
                .await
                .unwrap();
            assert_eq!(log.log_start_offset(), 103);
            assert_out_of_range(log.read(0, 400, usize::MAX, true).await, 103);
            // Up to the high watermark: only the active segment is left.
            assert_eq!(log.delete_records(400).await.unwrap(), 400);
            assert_eq!(log.segment_count(), 1);
            assert!(log
                .read(400, 400, usize::MAX, true)
                .await
                .unwrap()
                .is_empty());
            append_at(&log, 1, 1_000).await;
            assert_eq!(log.log_end_offset(), 405);
            let got = read_all(&log).await;
            assert_eq!(BatchHeader::view(&got[0]).unwrap().base_offset.get(), 400);
        });
    }
}
