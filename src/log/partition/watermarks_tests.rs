//! The high watermark split from the durable end: a partition not
//! replicated keeps today's behaviour; a replicated one moves its high
//! watermark only when told, never back, never past the durable end, and
//! starts from the checkpointed one after a restart.

use std::rc::Rc;

use futures_lite::future::poll_once;
use kafka_protocol::records::Compression;

use super::super::{AppendWait, FlushPolicy, LogConfig};
use super::tests::*;
use super::PartitionLog;
use crate::protocol::batch::tests::sample_batch;

/// Appends `count` 5-record batches, each waited for as `wait` says.
async fn append_batches(log: &Rc<PartitionLog>, count: usize, wait: AppendWait) {
    for _ in 0..count {
        append_one(log, &sample_batch(5, Compression::None), wait)
            .await
            .unwrap();
    }
}

#[test]
fn a_partition_not_replicated_moves_both_marks_together() {
    for flush_policy in [FlushPolicy::Sync, FlushPolicy::None] {
        with_dir(move |dir| async move {
            let config = LogConfig {
                flush_policy,
                ..small_config(0)
            };
            let log = PartitionLog::open(dir, config).await.unwrap();
            assert!(!log.is_replicated());
            append_batches(&log, 3, AppendWait::Durable).await;
            assert_eq!((log.high_watermark(), log.durable_end()), (15, 15));
            append_batches(&log, 1, AppendWait::Local).await;
            assert_eq!((log.high_watermark(), log.durable_end()), (20, 20));
            // Asking changes nothing: the high watermark is the durable end.
            assert!(!log.advance_high_watermark(100));
            log.close().await.unwrap();
        });
    }
}

#[test]
fn a_replicated_high_watermark_moves_only_when_told_and_never_back() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir, small_config(TAIL_CACHE_TEST_BYTES))
            .await
            .unwrap();
        append_batches(&log, 2, AppendWait::Durable).await;
        log.set_replicated(true);
        assert_eq!(
            log.high_watermark(),
            10,
            "marking never raises or lowers it here"
        );
        append_batches(&log, 2, AppendWait::Local).await;
        assert_eq!((log.high_watermark(), log.durable_end()), (10, 20));
        // acks=all waits for the high watermark.
        let acked = {
            let log = log.clone();
            glommio::spawn_local(async move {
                append_one(
                    &log,
                    &sample_batch(5, Compression::None),
                    AppendWait::Durable,
                )
                .await
                .unwrap()
            })
        };
        let long_poll = log.wait_for_data();
        let mut long_poll = Box::pin(long_poll);
        log.wait_until(|log| log.durable_end() == 25).await.unwrap();
        assert!(poll_once(&mut long_poll).await.is_none());
        assert!(log.advance_high_watermark(22));
        assert_eq!(log.high_watermark(), 22);
        long_poll.await;
        assert!(!log.advance_high_watermark(21), "never back");
        assert!(!log.advance_high_watermark(22));
        assert_eq!(log.high_watermark(), 22);
        assert!(
            log.advance_high_watermark(1_000),
            "clamped to the durable end"
        );
        assert_eq!(log.high_watermark(), 25);
        assert_eq!(acked.await.base_offset, 20);
        // Back to not replicated: raised to the durable end, moving with it.
        log.set_replicated(true);
        append_batches(&log, 1, AppendWait::Local).await;
        assert_eq!(log.high_watermark(), 25);
        log.set_replicated(false);
        assert_eq!(log.high_watermark(), 30);
        log.close().await.unwrap();
    });
}

#[test]
fn reads_reach_the_durable_end_past_the_high_watermark() {
    for cache in [0, TAIL_CACHE_TEST_BYTES] {
        with_dir(move |dir| async move {
            let log = PartitionLog::open(dir, small_config(cache)).await.unwrap();
            log.set_replicated(true);
            append_batches(&log, 30, AppendWait::Local).await;
            assert_eq!((log.high_watermark(), log.durable_end()), (0, 150));
            let consumer = log.read(0, log.high_watermark(), usize::MAX, true).await;
            assert!(consumer.unwrap().is_empty());
            let follower = log
                .read(0, log.durable_end(), usize::MAX, true)
                .await
                .unwrap();
            assert_contiguous(&follower, 30);
            let chunks = log
                .read_chunks(120, log.durable_end(), usize::MAX, false)
                .await
                .unwrap();
            assert_eq!(chunks.last_offset, Some(149));
            log.close().await.unwrap();
        });
    }
}

#[test]
fn a_follower_fetch_parked_at_the_log_end_wakes_on_the_durable_end() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir, small_config(0)).await.unwrap();
        log.set_replicated(true);
        append_batches(&log, 1, AppendWait::Local).await;
        let mut parked = Box::pin(log.wait_for_durable_end_past(5));
        let mut consumer = Box::pin(log.wait_for_data());
        assert!(poll_once(&mut parked).await.is_none());
        append_batches(&log, 1, AppendWait::Local).await;
        parked.await;
        // The consumer's long poll still waits: nothing more is committed.
        assert!(poll_once(&mut consumer).await.is_none());
        assert!(log.advance_high_watermark(10));
        consumer.await;
        log.close().await.unwrap();
    });
}

#[test]
fn a_restarted_replica_starts_from_its_checkpointed_high_watermark() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir.clone(), small_config(0))
            .await
            .unwrap();
        log.set_replicated(true);
        append_batches(&log, 6, AppendWait::Local).await;
        assert!(log.advance_high_watermark(15));
        log.close().await.unwrap();

        // Not replicated, it behaves as always: everything is committed.
        let log = PartitionLog::open(dir.clone(), small_config(0))
            .await
            .unwrap();
        assert_eq!((log.high_watermark(), log.durable_end()), (30, 30));
        drop(log);
        // A crash right after that open (no close): the checkpoint it wrote
        // still holds 15, so a replicated open starts there.
        let log = PartitionLog::open(dir.clone(), small_config(0))
            .await
            .unwrap();
        log.set_replicated(true);
        assert_eq!((log.high_watermark(), log.durable_end()), (15, 30));
        assert!(log.advance_high_watermark(20));
        log.close().await.unwrap();

        let log = PartitionLog::open(dir.clone(), small_config(0))
            .await
            .unwrap();
        log.set_replicated(true);
        assert_eq!(log.high_watermark(), 20);
        log.close().await.unwrap();
    });
}

#[test]
fn retention_never_deletes_past_the_high_watermark() {
    with_dir(|dir| async move {
        let config = LogConfig {
            retention_bytes: 0,
            ..small_config(0)
        };
        let log = PartitionLog::open(dir, config).await.unwrap();
        log.set_replicated(true);
        append_batches(&log, 40, AppendWait::Local).await;
        assert!(log.segment_count() >= 3);
        let outcome = log.enforce_retention(0).await.unwrap();
        assert_eq!(outcome.deleted_segments, 0);
        assert!(log.advance_high_watermark(log.durable_end()));
        let outcome = log.enforce_retention(0).await.unwrap();
        assert!(outcome.deleted_segments > 0);
        assert!(log.log_start_offset() <= log.high_watermark());
        log.close().await.unwrap();
    });
}
