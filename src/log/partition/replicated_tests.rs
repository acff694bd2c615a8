//! A follower's append: the leader's batches kept verbatim, so that the
//! two logs end byte for byte equal, with the same epochs, producers and
//! aborted transactions; and what it refuses.

use std::path::Path;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::Compression;

use super::super::pinned::Backing;
use super::super::{AppendWait, LogConfig, LogError};
use super::tests::*;
use super::PartitionLog;
use crate::protocol::batch::tests::sample_batch;
use crate::protocol::batch::BatchError;
use crate::protocol::records::TxnMarker;

/// A leader log in `dir` written at epochs 1 then 4: plain batches of
/// every size (some past `SLICE_BATCH_BYTES_MIN`), an idempotent
/// producer's, and a transaction aborted by its marker.
async fn leader_log(dir: &Path, config: LogConfig) -> Rc<PartitionLog> {
    let log = PartitionLog::open(dir.to_path_buf(), config).await.unwrap();
    log.become_leader(1);
    for i in 0..12 {
        let batch = batch_at(1 + i * 17, Compression::None, 1_000 + i as i64);
        append_one(&log, &batch, AppendWait::Durable).await.unwrap();
    }
    let mut idempotent = sample_batch(4, Compression::Zstd);
    as_producer(&mut idempotent, 7, 0, false);
    append_one(&log, &idempotent, AppendWait::Durable)
        .await
        .unwrap();
    log.become_leader(4);
    let mut transactional = sample_batch(3, Compression::None);
    as_producer(&mut transactional, 8, 0, true);
    append_one(&log, &transactional, AppendWait::Durable)
        .await
        .unwrap();
    let abort = TxnMarker {
        producer_id: 8,
        producer_epoch: 0,
        coordinator_epoch: 0,
        commit: false,
    };
    log.append_txn_marker(abort).await.unwrap();
    append_at(&log, 6, 2_000).await;
    log
}

/// Every batch of `leader` from `offset` up to its durable end.
async fn fetch(leader: &PartitionLog, offset: i64) -> Vec<Bytes> {
    leader
        .read(offset, leader.durable_end(), usize::MAX, true)
        .await
        .unwrap()
}

fn concat(batches: &[Bytes]) -> Bytes {
    let mut all = BytesMut::new();
    for batch in batches {
        all.extend_from_slice(batch);
    }
    all.freeze()
}

#[test]
fn a_follower_fed_its_leaders_batches_ends_byte_for_byte_equal() {
    for cache in [0, TAIL_CACHE_TEST_BYTES] {
        with_dir(move |dir| async move {
            let leader_dir = dir.join("leader");
            let follower_dir = dir.join("follower");
            let leader = leader_log(&leader_dir, small_config(cache)).await;
            let follower = PartitionLog::open(follower_dir.clone(), small_config(cache))
                .await
                .unwrap();
            follower.become_follower(4);
            // One batch per append, as the leader's appends came: the
            // segments roll at the same batches.
            for batch in fetch(&leader, 0).await {
                let end = follower
                    .append_replicated(batch.clone(), Backing::Own)
                    .await
                    .unwrap();
                assert_eq!(end, follower.log_end_offset());
                assert!(follower.durable_end() >= end, "answered once durable");
            }
            assert_eq!(follower.log_end_offset(), leader.log_end_offset());
            let epochs = leader.leader_epochs();
            assert_eq!(follower.leader_epochs(), epochs);
            assert_eq!((epochs.len(), epochs[0]), (2, (1, 0)));
            assert_eq!(follower.describe_producers(), leader.describe_producers());
            let end = leader.log_end_offset();
            assert_eq!(
                follower.aborted_transactions(0, end),
                leader.aborted_transactions(0, end)
            );
            assert_eq!(follower.aborted_transactions(0, end).len(), 1);
            assert_eq!(read_all(&follower).await, read_all(&leader).await);
            leader.close().await.unwrap();
            follower.close().await.unwrap();
            let compared = ["log", "index", "timeindex", "txnindex"];
            let leader_files = files(&leader_dir, &compared);
            assert!(leader_files.len() > 6, "several segments");
            assert_eq!(files(&follower_dir, &compared), leader_files);
            assert_eq!(
                std::fs::read(follower_dir.join("leader-epoch-checkpoint")).unwrap(),
                std::fs::read(leader_dir.join("leader-epoch-checkpoint")).unwrap()
            );
            // And after a restart, the follower still knows its producers.
            let follower = PartitionLog::open(follower_dir, small_config(cache))
                .await
                .unwrap();
            assert_eq!(follower.leader_epochs(), epochs);
            assert_eq!(follower.describe_producers().len(), 2);
            follower.close().await.unwrap();
        });
    }
}

#[test]
fn whole_fetches_land_as_the_same_bytes_and_a_partial_batch_is_left_out() {
    with_dir(|dir| async move {
        let config = LogConfig {
            segment_bytes: 1 << 20,
            ..small_config(TAIL_CACHE_TEST_BYTES)
        };
        let leader = leader_log(&dir.join("leader"), config.clone()).await;
        let follower = PartitionLog::open(dir.join("follower"), config)
            .await
            .unwrap();
        follower.become_follower(4);
        let batches = fetch(&leader, 0).await;
        let all = concat(&batches);
        // A fetch cut inside the eighth batch: the seven whole ones land.
        let seven: usize = batches[..7].iter().map(Bytes::len).sum();
        let cut = all.slice(..seven + 30);
        let end = follower.append_replicated(cut, Backing::Own).await.unwrap();
        assert_eq!(end, base_of(&batches[7]));
        // Nothing whole at all: the log end, unchanged.
        let nothing = all.slice(seven..seven + 20);
        assert_eq!(
            follower
                .append_replicated(nothing, Backing::Own)
                .await
                .unwrap(),
            end
        );
        let rest = all.slice(seven..);
        let end = follower
            .append_replicated(rest, Backing::Own)
            .await
            .unwrap();
        assert_eq!(end, leader.log_end_offset());
        assert_eq!(read_all(&follower).await, read_all(&leader).await);
        leader.close().await.unwrap();
        follower.close().await.unwrap();
    });
}

#[test]
fn batches_out_of_place_backward_or_corrupt_are_refused_and_change_nothing() {
    with_dir(|dir| async move {
        let leader = leader_log(&dir.join("leader"), small_config(0)).await;
        let follower = PartitionLog::open(dir.join("follower"), small_config(0))
            .await
            .unwrap();
        follower.become_follower(4);
        let batches = fetch(&leader, 0).await;
        // A batch overlapping the one before it (or below the log end).
        let overlapping = concat(&[batches[0].clone(), batches[0].clone()]);
        let refused = follower.append_replicated(overlapping, Backing::Own).await;
        assert!(matches!(
            refused,
            Err(LogError::NotAtLogEnd {
                log_end_offset: 0,
                base_offset: 0
            })
        ));
        // The last batch (epoch 4), then the leader's first again moved to
        // the log end with epoch 1: backward.
        let last = batches.last().unwrap();
        let at = |batch: &Bytes, offset: i64, epoch: i32| {
            let mut batch = batch.to_vec();
            batch[..8].copy_from_slice(&offset.to_be_bytes());
            batch[12..16].copy_from_slice(&epoch.to_be_bytes());
            Bytes::from(batch)
        };
        let end = follower
            .append_replicated(at(last, 0, 4), Backing::Own)
            .await
            .unwrap();
        let two = concat(&[at(&batches[0], end, 4), at(&batches[0], end + 1, 1)]);
        let refused = follower.append_replicated(two, Backing::Own).await;
        assert!(matches!(
            refused,
            Err(LogError::EpochBackward {
                previous_epoch: 4,
                epoch: 1,
                ..
            })
        ));
        assert_eq!(
            follower.log_end_offset(),
            end,
            "nothing of a refused append"
        );
        let mut corrupt = at(&batches[0], end, 4).to_vec();
        let last_byte = corrupt.len() - 1;
        corrupt[last_byte] ^= 1;
        let refused = follower
            .append_replicated(Bytes::from(corrupt), Backing::Own)
            .await;
        assert!(matches!(
            refused,
            Err(LogError::InvalidBatch(BatchError::CrcMismatch))
        ));
        assert_eq!(follower.log_end_offset(), end);
        assert_eq!(follower.leader_epochs(), [(4, 0)]);
        leader.close().await.unwrap();
        follower.close().await.unwrap();
    });
}

#[test]
fn a_compacted_leaders_offset_gaps_are_taken_verbatim_and_survive_a_restart() {
    for cache in [0, TAIL_CACHE_TEST_BYTES] {
        with_dir(move |dir| async move {
            let config = LogConfig {
                segment_bytes: 2_000,
                ..small_config(cache)
            };
            let leader = leader_log(&dir.join("leader"), config.clone()).await;
            let all = fetch(&leader, 0).await;
            // What a compacted leader serves: some plain batches gone.
            let kept: Vec<Bytes> = all
                .iter()
                .enumerate()
                .filter(|&(i, _)| i >= 12 || i % 3 != 1)
                .map(|(_, batch)| batch.clone())
                .collect();
            let follower = PartitionLog::open(dir.join("follower"), config.clone())
                .await
                .unwrap();
            follower.become_follower(4);
            for chunk in kept.chunks(3) {
                follower
                    .append_replicated(concat(chunk), Backing::Own)
                    .await
                    .unwrap();
            }
            assert!(follower.segment_count() > 1, "the gaps cross segments");
            assert_eq!(follower.log_end_offset(), leader.log_end_offset());
            assert_eq!(follower.leader_epochs(), leader.leader_epochs());
            follower.advance_high_watermark(i64::MAX);
            assert_eq!(read_all(&follower).await, kept);
            // A read from inside a gap starts at the batch after it.
            let in_gap = base_of(&all[1]) + 1;
            let from_gap = follower
                .read(in_gap, follower.high_watermark(), usize::MAX, true)
                .await
                .unwrap();
            assert_eq!(from_gap, kept[1..]);
            // Overlaps are still refused.
            let again = kept.last().unwrap().clone();
            let refused = follower.append_replicated(again, Backing::Own).await;
            assert!(matches!(refused, Err(LogError::NotAtLogEnd { .. })));
            // A crash: recovery takes the gaps as the cleaner's.
            drop(follower);
            let follower = PartitionLog::open(dir.join("follower"), config)
                .await
                .unwrap();
            assert_eq!(follower.log_end_offset(), leader.log_end_offset());
            assert_eq!(read_all(&follower).await, kept);
            follower.close().await.unwrap();
            leader.close().await.unwrap();
        });
    }
}
