//! Transactions with a real log: the last stable offset across a commit and
//! an abort, the markers' checks, the `.txnindex` written with its segment,
//! rebuilt after a crash and deleted with its segment.

use kafka_protocol::records::Compression;

use super::super::{AppendWait, LogError, ProducerError};
use super::tests::{
    append_at, append_one, as_producer, batch_at, segment_files, small_config, with_dir,
};
use super::PartitionLog;
use crate::protocol::records::TxnMarker;

const RECORDS: i32 = 3;

/// A transactional batch of `RECORDS` records from `producer_id` (epoch 0),
/// first sequence `sequence`.
fn transactional(producer_id: i64, sequence: i32) -> Vec<u8> {
    let mut batch = batch_at(RECORDS as usize, Compression::None, 1_700_000_000_000);
    as_producer(&mut batch, producer_id, sequence, true);
    batch
}

fn marker(producer_id: i64, producer_epoch: i16, commit: bool) -> TxnMarker {
    TxnMarker {
        producer_id,
        producer_epoch,
        coordinator_epoch: 0,
        commit,
    }
}

#[test]
fn the_lso_stops_at_open_transactions_and_aborts_are_indexed() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir.clone(), small_config(1 << 20))
            .await
            .unwrap();
        append_one(&log, &transactional(7, 0), AppendWait::Durable)
            .await
            .unwrap();
        assert_eq!((log.last_stable_offset(), log.high_watermark()), (0, 3));
        let plain = batch_at(RECORDS as usize, Compression::None, 1_700_000_000_000);
        append_one(&log, &plain, AppendWait::Durable).await.unwrap();
        append_one(&log, &transactional(8, 0), AppendWait::Durable)
            .await
            .unwrap();
        assert_eq!(log.last_stable_offset(), 0);
        let committed = log.append_txn_marker(marker(7, 0, true)).await.unwrap();
        assert_eq!(committed.base_offset, 9);
        assert_eq!(log.last_stable_offset(), 6);
        log.append_txn_marker(marker(8, 0, false)).await.unwrap();
        assert_eq!(log.last_stable_offset(), 11);
        assert_eq!(log.high_watermark(), 11);
        // A marker from an older epoch than the producer's is refused.
        log.append_txn_marker(marker(8, 2, false)).await.unwrap();
        let fenced = log.append_txn_marker(marker(8, 1, false)).await;
        assert!(matches!(
            fenced,
            Err(LogError::Producer(ProducerError::InvalidProducerEpoch(_)))
        ));
        assert_eq!(log.aborted_transactions(0, 12), vec![(8, 6)]);
        assert_eq!(log.aborted_transactions(10, 12), vec![(8, 6)]);
        // Nothing of the aborted transaction is below 6, nothing after 10.
        assert_eq!(log.aborted_transactions(0, 6), vec![]);
        assert_eq!(log.aborted_transactions(11, 12), vec![]);
        log.close().await.unwrap();
        assert_eq!(segment_files(&dir, "txnindex"), 1);

        let log = PartitionLog::open(dir.clone(), small_config(1 << 20))
            .await
            .unwrap();
        assert_eq!(log.aborted_transactions(0, 12), vec![(8, 6)]);
        assert_eq!(log.last_stable_offset(), log.high_watermark());
        log.close().await.unwrap();
    });
}

/// Transactions of producers 1..=`count`, the odd ones aborted, each over
/// two batches, and a last one of producer 99 left open; returns its first
/// offset.
async fn mixed_transactions(log: &std::rc::Rc<PartitionLog>, count: i64) -> i64 {
    for producer_id in 1..=count {
        for sequence in [0, RECORDS] {
            append_one(
                log,
                &transactional(producer_id, sequence),
                AppendWait::Durable,
            )
            .await
            .unwrap();
        }
        log.append_txn_marker(marker(producer_id, 0, producer_id % 2 == 0))
            .await
            .unwrap();
    }
    let open = append_one(log, &transactional(99, 0), AppendWait::Durable)
        .await
        .unwrap();
    open.base_offset
}

/// A crash: no close, so the active segment's `.txnindex` was never
/// written; with `damage`, the sealed ones' files are damaged too and the
/// checkpoint is gone (every segment is scanned).
fn a_crash_loses_no_aborted_transaction_nor_open_one(damage: bool) {
    with_dir(move |dir| async move {
        let log = PartitionLog::open(dir.clone(), small_config(1 << 20))
            .await
            .unwrap();
        // The last transaction before the open one is aborted: its marker
        // is in the active segment.
        let open_at = mixed_transactions(&log, 31).await;
        assert!(log.segment_count() > 3, "the test wants rolls");
        let end = log.log_end_offset();
        let aborted = log.aborted_transactions(0, end);
        assert_eq!(aborted.len(), 16);
        assert!(aborted.windows(2).all(|pair| pair[0].1 < pair[1].1));
        assert_eq!(log.last_stable_offset(), open_at);
        // The snapshot of the last roll, then one at the log end: the
        // replay must start from the first.
        log.checkpoint().await.unwrap();
        log.checkpoint().await.unwrap();
        assert_eq!(segment_files(&dir, "snapshot"), 2);
        drop(log);
        if damage {
            damage_txn_indexes(&dir);
        }
        let log = PartitionLog::open(dir.clone(), small_config(1 << 20))
            .await
            .unwrap();
        assert!(log.recovery_scanned_bytes() > 0);
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(log.aborted_transactions(0, end), aborted);
        assert_eq!(log.last_stable_offset(), open_at);
        log.append_txn_marker(marker(99, 0, false)).await.unwrap();
        assert_eq!(log.last_stable_offset(), log.high_watermark());
        log.close().await.unwrap();
    });
}

#[test]
fn a_crash_rebuilds_the_active_segments_txnindex() {
    a_crash_loses_no_aborted_transaction_nor_open_one(false);
}

#[test]
fn a_crash_with_damaged_txnindex_files_rebuilds_them_all() {
    a_crash_loses_no_aborted_transaction_nor_open_one(true);
}

fn damage_txn_indexes(dir: &std::path::Path) {
    let mut damaged = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "txnindex") {
            std::fs::write(&path, b"damaged").unwrap();
            damaged += 1;
        }
    }
    assert!(damaged > 0);
    std::fs::remove_file(dir.join("shoal.checkpoint")).unwrap();
}

#[test]
fn the_txnindex_goes_with_its_segments() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir.clone(), small_config(1 << 20))
            .await
            .unwrap();
        let open_at = mixed_transactions(&log, 30).await;
        log.append_txn_marker(marker(99, 0, true)).await.unwrap();
        log.checkpoint().await.unwrap();
        let files = segment_files(&dir, "txnindex");
        assert!(files > 1, "{files} .txnindex files");
        let start = log.delete_records(open_at).await.unwrap();
        assert_eq!(start, open_at);
        assert!(segment_files(&dir, "txnindex") < files);
        let end = log.log_end_offset();
        let left = log.aborted_transactions(log.log_start_offset(), end);
        assert!(left.len() < 15);
        log.close().await.unwrap();
        let log = PartitionLog::open(dir.clone(), small_config(1 << 20))
            .await
            .unwrap();
        assert_eq!(log.aborted_transactions(log.log_start_offset(), end), left);
        log.close().await.unwrap();
    });
}

/// Retention or DeleteRecords may take an open transaction's first batches
/// (DeleteRecords up to the high watermark, past the LSO, as Kafka): the
/// LSO is then the log start, through a restart, until the transaction ends.
#[test]
fn the_lso_never_falls_below_the_log_start() {
    with_dir(|dir| async move {
        let config = small_config(1 << 20);
        let log = PartitionLog::open(dir.clone(), config.clone())
            .await
            .unwrap();
        append_one(&log, &transactional(7, 0), AppendWait::Durable)
            .await
            .unwrap();
        append_at(&log, 40, 1_700_000_000_000).await;
        assert_eq!(log.last_stable_offset(), 0);
        let high_watermark = log.high_watermark();
        assert!(matches!(
            log.delete_records(high_watermark + 1).await,
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert_eq!(log.delete_records(10).await.unwrap(), 10);
        assert_eq!(log.last_stable_offset(), 10);
        log.close().await.unwrap();
        let log = PartitionLog::open(dir, config).await.unwrap();
        assert_eq!(log.last_stable_offset(), 10);
        log.append_txn_marker(marker(7, 0, true)).await.unwrap();
        assert_eq!(log.last_stable_offset(), log.high_watermark());
        log.close().await.unwrap();
    });
}
