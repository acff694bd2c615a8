//! The producer state with a real log: checks on append, a retry answered
//! with its first offsets, and the state back after a clean close (its
//! snapshot) and without any snapshot (replayed from the segments).

use kafka_protocol::records::Compression;

use super::super::{AppendWait, LogError, ProducerError};
use super::tests::{append_one, batch_at, segment_files, small_config, with_dir};
use super::PartitionLog;

const RECORDS: i32 = 3;

/// A batch of `RECORDS` records from producer 7 at `epoch`, first sequence `sequence`.
fn idempotent(epoch: i16, sequence: i32) -> Vec<u8> {
    let mut batch = batch_at(RECORDS as usize, Compression::None, 1_700_000_000_000);
    batch[43..51].copy_from_slice(&7i64.to_be_bytes());
    batch[51..53].copy_from_slice(&epoch.to_be_bytes());
    batch[53..57].copy_from_slice(&sequence.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

#[test]
fn retries_are_recognised_before_and_after_a_restart() {
    with_dir(|dir| async move {
        const BATCHES: i32 = 40;
        let log = PartitionLog::open(dir.clone(), small_config(1 << 20))
            .await
            .unwrap();
        for i in 0..BATCHES {
            let appended = append_one(&log, &idempotent(0, i * RECORDS), AppendWait::Durable)
                .await
                .unwrap();
            assert_eq!(appended.base_offset, i64::from(i * RECORDS));
        }
        let end = log.log_end_offset();
        assert!(log.segment_count() > 2, "the test wants rolls");
        let last = idempotent(0, (BATCHES - 1) * RECORDS);
        let retried = append_one(&log, &last, AppendWait::Durable).await.unwrap();
        assert_eq!(retried.base_offset, end - i64::from(RECORDS));
        assert_eq!(log.log_end_offset(), end);
        let gap = append_one(
            &log,
            &idempotent(0, BATCHES * RECORDS + 1),
            AppendWait::Durable,
        )
        .await;
        assert!(matches!(
            gap,
            Err(LogError::Producer(ProducerError::OutOfOrderSequence(_)))
        ));
        let stale = append_one(
            &log,
            &idempotent(-1, BATCHES * RECORDS),
            AppendWait::Durable,
        )
        .await;
        assert!(matches!(
            stale,
            Err(LogError::Producer(ProducerError::InvalidProducerEpoch(_)))
        ));
        log.close().await.unwrap();
        assert!((1..=2).contains(&segment_files(&dir, "snapshot")));

        // From the snapshot of the clean close, then from the log alone.
        for without_snapshots in [false, true] {
            if without_snapshots {
                for entry in std::fs::read_dir(&dir).unwrap() {
                    let path = entry.unwrap().path();
                    if path.extension().is_some_and(|e| e == "snapshot") {
                        std::fs::remove_file(path).unwrap();
                    }
                }
            }
            let log = PartitionLog::open(dir.clone(), small_config(1 << 20))
                .await
                .unwrap();
            assert_eq!(log.producer_count(), 1);
            let retried = append_one(&log, &last, AppendWait::Durable).await.unwrap();
            assert_eq!(retried.base_offset, end - i64::from(RECORDS));
            assert_eq!(log.log_end_offset(), end);
            log.close().await.unwrap();
        }
        let log = PartitionLog::open(dir.clone(), small_config(1 << 20))
            .await
            .unwrap();
        let next = append_one(&log, &idempotent(0, BATCHES * RECORDS), AppendWait::Durable)
            .await
            .unwrap();
        assert_eq!(next.base_offset, end);
        log.close().await.unwrap();
    });
}
