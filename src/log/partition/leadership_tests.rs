//! Leadership and the leader-epoch cache on a real log: the epochs a leader
//! stamps and records, the file across a restart, its rebuild when
//! missing, and the cache cut from the start with the log.

use bytes::BytesMut;
use futures_lite::future::poll_once;
use kafka_protocol::records::Compression;

use super::super::epochs::EPOCHS_FILE;
use super::super::{AppendWait, LogError};
use super::tests::*;
use super::PartitionLog;
use crate::protocol::batch::tests::sample_batch;
use crate::protocol::batch::BatchHeader;

#[test]
fn a_leader_stamps_and_records_its_epochs_and_they_survive_a_restart() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir.clone(), small_config(0))
            .await
            .unwrap();
        assert_eq!(log.latest_epoch(), None);
        log.become_leader(3);
        assert_eq!(log.leader_epochs(), [(3, 0)]);
        append_at(&log, 4, 1_000).await;
        // A newer epoch starts at the log end; taking it again changes nothing.
        log.become_leader(5);
        log.become_leader(5);
        append_at(&log, 2, 1_000).await;
        assert_eq!(log.leader_epochs(), [(3, 0), (5, 20)]);
        assert_eq!(log.latest_epoch(), Some(5));
        let epochs: Vec<i32> = read_all(&log)
            .await
            .iter()
            .map(|b| BatchHeader::view(b).unwrap().partition_leader_epoch.get())
            .collect();
        assert_eq!(epochs, [3, 3, 3, 3, 5, 5]);
        assert_eq!(log.end_offset_for_epoch(3), Some((3, 20)));
        assert_eq!(log.end_offset_for_epoch(4), Some((3, 20)));
        assert_eq!(log.end_offset_for_epoch(5), Some((5, 30)));
        assert_eq!(log.end_offset_for_epoch(6), None);
        assert_eq!(log.end_offset_for_epoch(1), Some((1, 0)));
        // Written before the batches of an epoch were.
        let file = std::fs::read_to_string(dir.join(EPOCHS_FILE)).unwrap();
        assert_eq!(file, "0\n2\n3 0\n5 20\n");
        log.close().await.unwrap();

        let log = PartitionLog::open(dir.clone(), small_config(0))
            .await
            .unwrap();
        assert_eq!(log.leader_epochs(), [(3, 0), (5, 20)]);
        assert_eq!(log.leader_epoch(), 5);
        log.close().await.unwrap();
    });
}

#[test]
fn the_cache_is_rebuilt_from_the_batches_when_its_file_is_missing() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir.clone(), small_config(0))
            .await
            .unwrap();
        for epoch in [0, 2, 7] {
            log.become_leader(epoch);
            append_at(&log, 5, 1_000).await;
        }
        let expected = log.leader_epochs();
        assert_eq!(expected, [(0, 0), (2, 25), (7, 50)]);
        log.close().await.unwrap();
        std::fs::remove_file(dir.join(EPOCHS_FILE)).unwrap();
        let log = PartitionLog::open(dir.clone(), small_config(0))
            .await
            .unwrap();
        assert_eq!(log.leader_epochs(), expected);
        // And written again.
        assert!(dir.join(EPOCHS_FILE).exists());
        log.close().await.unwrap();
        // A damaged file is rebuilt the same way.
        std::fs::write(dir.join(EPOCHS_FILE), "0\n5\n1 0\n").unwrap();
        let log = PartitionLog::open(dir.clone(), small_config(0))
            .await
            .unwrap();
        assert_eq!(log.leader_epochs(), expected);
        log.close().await.unwrap();
    });
}

#[test]
fn entries_past_the_recovered_log_end_are_dropped_at_open() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir.clone(), small_config(0))
            .await
            .unwrap();
        log.become_leader(1);
        append_at(&log, 3, 1_000).await;
        log.close().await.unwrap();
        // As if a crash lost the bytes of epochs 4 and 6 but not the file.
        std::fs::write(dir.join(EPOCHS_FILE), "0\n3\n1 0\n4 15\n6 40\n").unwrap();
        let log = PartitionLog::open(dir.clone(), small_config(0))
            .await
            .unwrap();
        assert_eq!(log.leader_epochs(), [(1, 0)]);
        log.close().await.unwrap();
    });
}

#[test]
fn a_follower_takes_no_client_appends() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir, small_config(0)).await.unwrap();
        log.become_follower(2);
        assert_eq!(log.leader_epoch(), 2);
        let refused = log
            .append(
                BytesMut::from(&sample_batch(1, Compression::None)[..]),
                AppendWait::Nothing,
                None,
            )
            .await;
        assert!(matches!(refused, Err(LogError::NotLeader)));
        assert_eq!(log.log_end_offset(), 0);
        log.become_leader(3);
        append_at(&log, 1, 1_000).await;
        assert_eq!(log.leader_epochs(), [(3, 0)]);
        log.close().await.unwrap();
    });
}

#[test]
fn delete_records_and_retention_cut_the_cache_from_the_start() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir.clone(), small_config(0))
            .await
            .unwrap();
        for epoch in [1, 2, 3] {
            log.become_leader(epoch);
            append_at(&log, 10, 1_000).await;
        }
        assert_eq!(log.leader_epochs(), [(1, 0), (2, 50), (3, 100)]);
        log.delete_records(60).await.unwrap();
        assert_eq!(log.leader_epochs(), [(2, 60), (3, 100)]);
        log.close().await.unwrap();
        let log = PartitionLog::open(dir, small_config(0)).await.unwrap();
        assert_eq!(log.leader_epochs(), [(2, 60), (3, 100)]);
        log.close().await.unwrap();
    });
}

#[test]
fn acks_all_waiting_on_a_deposed_leader_fail_at_once_as_not_leader() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir, small_config(0)).await.unwrap();
        log.set_replicated(true);
        log.become_leader(1);
        let waiting = |batch_records: usize| {
            let log = log.clone();
            glommio::spawn_local(async move {
                let batch = BytesMut::from(&sample_batch(batch_records, Compression::None)[..]);
                log.append(batch, AppendWait::Durable, None).await
            })
        };
        let committed = waiting(5);
        let pending = waiting(3);
        log.wait_until(|log| log.durable_end() == 8).await.unwrap();
        // The followers confirmed the first batch only.
        assert!(log.advance_high_watermark(5));
        assert_eq!(committed.await.unwrap().base_offset, 0);
        // Re-elected at a newer epoch, it still leads: the wait goes on.
        log.become_leader(2);
        let mut pending = Box::pin(pending);
        assert!(poll_once(&mut pending).await.is_none());
        log.become_follower(3);
        let started = std::time::Instant::now();
        assert!(matches!(pending.await, Err(LogError::NotLeader)));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // Never a success afterwards, whatever the high watermark does.
        assert_eq!(log.high_watermark(), 5);
        log.close().await.unwrap();
    });
}

#[test]
fn the_epoch_at_an_offset_is_the_one_that_wrote_its_batch() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir, small_config(0)).await.unwrap();
        for epoch in [0, 2, 7] {
            log.become_leader(epoch);
            append_at(&log, 5, 1_000).await;
        }
        let epochs: Vec<Option<i32>> = [0, 24, 25, 49, 50, 74]
            .into_iter()
            .map(|offset| log.epoch_at(offset))
            .collect();
        assert_eq!(
            epochs,
            [Some(0), Some(0), Some(2), Some(2), Some(7), Some(7)]
        );
        log.close().await.unwrap();
    });
}
