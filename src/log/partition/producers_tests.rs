//! The producer state with a real log: checks on append, a retry answered
//! with its first offsets, and the state back after a clean close (its
//! snapshot) and without any snapshot (replayed from the segments);
//! KIP-890's verification of a transaction's first batch.

use bytes::BytesMut;
use kafka_protocol::records::Compression;

use super::super::{AppendWait, Backing, LogError, ProducerError, TxnVerification};
use super::tests::{append_one, batch_at, segment_files, small_config, with_dir};
use super::PartitionLog;
use crate::protocol::records::TxnMarker;

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

/// `idempotent`, transactional.
fn transactional(epoch: i16, sequence: i32) -> Vec<u8> {
    let mut batch = idempotent(epoch, sequence);
    let attributes = i16::from_be_bytes([batch[21], batch[22]]) | 0x10;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

/// The first try starts a verification and appends nothing; the guard
/// lets the batch in; an abort marker between the two turns the guard
/// away, so no transaction is left open that the coordinator has ended.
#[test]
fn a_transactions_first_batch_waits_for_its_verification() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir.clone(), small_config(1 << 20))
            .await
            .unwrap();
        let append = |verification, batch: Vec<u8>| {
            let log = log.clone();
            async move {
                log.append_verified(
                    verification,
                    BytesMut::from(&batch[..]),
                    Backing::Own,
                    AppendWait::Durable,
                    None,
                )
                .await
            }
        };
        let unverified = append(TxnVerification::Start, transactional(0, 0)).await;
        let Err(LogError::TxnUnverified {
            producer_id: 7,
            epoch: 0,
            guard,
        }) = unverified
        else {
            panic!("{unverified:?}");
        };
        assert_eq!(log.log_end_offset(), 0);
        let abort = TxnMarker {
            producer_id: 7,
            producer_epoch: 0,
            coordinator_epoch: 0,
            commit: false,
        };
        log.append_txn_marker(abort).await.unwrap();
        let stale = append(TxnVerification::Verified(guard), transactional(0, 0)).await;
        assert!(
            matches!(
                stale,
                Err(LogError::Producer(ProducerError::InvalidTxnState(_)))
            ),
            "{stale:?}"
        );
        assert_eq!(log.last_stable_offset(), 1);

        let Err(LogError::TxnUnverified { guard, .. }) =
            append(TxnVerification::Start, transactional(0, 0)).await
        else {
            panic!("a retry starts again");
        };
        let first = append(TxnVerification::Verified(guard), transactional(0, 0))
            .await
            .unwrap();
        assert_eq!(first.base_offset, 1);
        // The transaction is open here: no verification for the next.
        let next = append(TxnVerification::Start, transactional(0, RECORDS))
            .await
            .unwrap();
        assert_eq!(next.base_offset, 1 + i64::from(RECORDS));
        assert_eq!(log.last_stable_offset(), 1);
        log.close().await.unwrap();
    });
}
