//! `truncate_to`: the log afterwards is the log that never had the tail,
//! in memory, on disk and after a restart; appends go on from the cut as
//! on a fresh log; a crash between the steps recovers a consistent log.

use std::path::Path;
use std::rc::Rc;

use kafka_protocol::records::Compression;

use super::super::pinned::Backing;
use super::super::{AppendWait, LogConfig};
use super::tests::*;
use super::PartitionLog;

/// Batch `i` of the test logs: sizes vary, timestamps are fixed, every
/// third one an idempotent producer's, so all files are reproducible.
fn batch(i: usize) -> Vec<u8> {
    let mut batch = batch_at(1 + i % 7, Compression::None, 1_000 + i as i64);
    if i.is_multiple_of(3) {
        let sequence: usize = (0..i).step_by(3).map(|j| 1 + j % 7).sum();
        as_producer(&mut batch, 9, sequence as i32, false);
    }
    batch
}

/// A log of batches `0..count`, epoch 2 up to batch 10 and epoch 5 after.
async fn log_of(dir: &Path, count: usize) -> Rc<PartitionLog> {
    let log = PartitionLog::open(dir.to_path_buf(), config())
        .await
        .unwrap();
    log.become_leader(2);
    append_batches(&log, 0..count).await;
    log
}

async fn append_batches(log: &Rc<PartitionLog>, batches: std::ops::Range<usize>) {
    for i in batches {
        if i == 10 {
            log.become_leader(5);
        }
        append_one(log, &batch(i), AppendWait::Durable)
            .await
            .unwrap();
    }
}

/// Segments of a few batches each.
fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        ..small_config(TAIL_CACHE_TEST_BYTES)
    }
}

/// The offset batch `i` starts at.
fn base(i: usize) -> i64 {
    (0..i).map(|j| 1 + (j % 7) as i64).sum()
}

/// What a log's state shows: offsets, marks, the epochs of its batches (a
/// leader's own epoch at the log end describes none), producers, batches.
async fn state(log: &PartitionLog) -> impl PartialEq + std::fmt::Debug {
    let mut epochs = log.leader_epochs();
    epochs.retain(|&(_, start)| start < log.log_end_offset());
    (
        (log.log_start_offset(), log.log_end_offset()),
        (log.durable_end(), log.high_watermark()),
        epochs,
        log.describe_producers(),
        read_all(log).await,
    )
}

#[test]
fn a_truncated_log_is_the_log_that_never_had_the_tail() {
    // Cuts at batch boundaries across segments: the first batch, inside
    // the first segment, around the epoch change, near the end.
    for kept in [0, 1, 9, 10, 11, 25, 39] {
        with_dir(move |dir| async move {
            let fresh = log_of(&dir.join("fresh"), kept).await;
            let full = log_of(&dir.join("full"), 40).await;
            let cut = log_of(&dir.join("cut"), 40).await;
            assert!(cut.segment_count() > 3);
            // A follower cuts its log to its leader's.
            cut.become_follower(5);
            cut.truncate_to(base(kept)).await.unwrap();
            assert_eq!(cut.log_end_offset(), base(kept));
            assert_eq!(state(&cut).await, state(&fresh).await, "kept {kept}");
            // Taking the leader's batches again gives the leader's log.
            let batches = full
                .read(base(kept), full.durable_end(), usize::MAX, true)
                .await
                .unwrap();
            for batch in batches {
                cut.append_replicated(batch, Backing::Own).await.unwrap();
            }
            assert_eq!(state(&cut).await, state(&full).await, "kept {kept}");
            for log in [cut, full, fresh] {
                log.close().await.unwrap();
            }
            assert_eq!(
                files(&dir.join("cut"), &["log"]),
                files(&dir.join("full"), &["log"])
            );
        });
    }
}

/// The segment bases of the log in `dir`.
fn segment_bases(dir: &Path) -> Vec<i64> {
    files(dir, &["log"])
        .iter()
        .map(|(name, _)| name.trim_end_matches(".log").parse().unwrap())
        .collect()
}

#[test]
fn a_truncation_survives_a_restart() {
    with_dir(|dir| async move {
        let cut = log_of(&dir.join("cut"), 40).await;
        // Cut at the last segment's first batch: that segment goes whole.
        let bases = segment_bases(&dir.join("cut"));
        let last = *bases.last().unwrap();
        let kept = (0..40).find(|&i| base(i) == last).unwrap();
        assert!(kept > 10, "the cut keeps both epochs");
        let fresh = log_of(&dir.join("fresh"), kept).await;
        cut.truncate_to(base(kept)).await.unwrap();
        assert_eq!(segment_bases(&dir.join("cut")).len(), bases.len() - 1);
        // A crash right after: no close.
        drop(cut);
        let cut = PartitionLog::open(dir.join("cut"), config()).await.unwrap();
        assert_eq!(state(&cut).await, state(&fresh).await);
        assert_eq!(cut.leader_epochs(), [(2, 0), (5, base(10))]);
        cut.close().await.unwrap();
        fresh.close().await.unwrap();
        assert_eq!(
            files(&dir.join("cut"), &["log"]),
            files(&dir.join("fresh"), &["log"])
        );
    });
}

#[test]
fn a_cut_inside_a_batch_takes_the_batch_and_clamps_the_marks() {
    with_dir(|dir| async move {
        let log = log_of(&dir, 20).await;
        log.set_replicated(true);
        assert_eq!(log.high_watermark(), base(20));
        // Batch 12 holds offsets base(12)..base(13).
        log.truncate_to(base(12) + 1).await.unwrap();
        assert_eq!(log.log_end_offset(), base(12));
        assert_eq!(
            (log.high_watermark(), log.durable_end()),
            (base(12), base(12))
        );
        // Nothing to cut at or past the end.
        log.truncate_to(base(12)).await.unwrap();
        log.truncate_to(1_000).await.unwrap();
        assert_eq!(log.log_end_offset(), base(12));
        log.close().await.unwrap();
    });
}

#[test]
fn a_crash_between_the_steps_recovers_a_consistent_log() {
    with_dir(|dir| async move {
        let (log_dir, before) = (dir.join("log"), dir.join("before"));
        let log = log_of(&log_dir, 40).await;
        log.close().await.unwrap();
        copy_dir(&log_dir, &before);
        let log = PartitionLog::open(log_dir.clone(), config()).await.unwrap();
        log.become_follower(5);
        log.truncate_to(base(8)).await.unwrap();
        drop(log);
        let restore = |name: &str| {
            std::fs::copy(before.join(name), log_dir.join(name)).unwrap();
        };
        // Crashed before the epoch file and the snapshots were replaced:
        // the old ones are there, with an epoch past the cut.
        restore("leader-epoch-checkpoint");
        for entry in std::fs::read_dir(&before).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(".snapshot") {
                restore(&name);
            }
        }
        let log = PartitionLog::open(log_dir.clone(), config()).await.unwrap();
        let fresh = log_of(&dir.join("fresh"), 8).await;
        assert_eq!(state(&log).await, state(&fresh).await);
        assert_eq!(log.leader_epochs(), [(2, 0)]);
        log.close().await.unwrap();
        fresh.close().await.unwrap();
        // Crashed before the cut segment's file was cut (the later segments
        // already gone, the epoch file not yet replaced): the longer log
        // comes back whole, its epochs cut to it.
        let (last, _) = files(&log_dir, &["log"]).last().unwrap().clone();
        restore(&last);
        restore("leader-epoch-checkpoint");
        let log = PartitionLog::open(log_dir.clone(), config()).await.unwrap();
        let end = log.log_end_offset();
        assert!(end >= base(8));
        let batches = (0..40).take_while(|&i| base(i) < end).count();
        assert_eq!(base(batches), end, "the log ends at a batch boundary");
        assert_eq!(read_all(&log).await.len(), batches);
        let expected: Vec<(i32, i64)> = [(2, 0), (5, base(10))]
            .into_iter()
            .filter(|&(_, start)| start < end)
            .collect();
        assert_eq!(log.leader_epochs(), expected);
        log.close().await.unwrap();
    });
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

#[test]
fn a_follower_restarted_at_its_leaders_start_takes_the_rest_and_keeps_it() {
    with_dir(|dir| async move {
        // The leader's DeleteRecords removed what the follower never copied.
        let leader = log_of(&dir.join("leader"), 40).await;
        let start = leader.delete_records(base(25)).await.unwrap();
        assert_eq!(start, base(25));
        let follower = log_of(&dir.join("follower"), 5).await;
        follower.become_follower(5);
        follower.checkpoint().await.unwrap();
        assert!(segment_files(&dir.join("follower"), "snapshot") > 0);
        follower.truncate_fully_and_start_at(start).await.unwrap();
        assert_eq!(
            (follower.log_start_offset(), follower.log_end_offset()),
            (start, start)
        );
        assert_eq!(
            (follower.durable_end(), follower.high_watermark()),
            (start, start)
        );
        assert_eq!(follower.leader_epochs(), []);
        assert_eq!(follower.describe_producers(), []);
        assert_eq!(segment_files(&dir.join("follower"), "snapshot"), 0);
        assert!(follower.read(0, start, usize::MAX, true).await.is_err());
        let batches = leader
            .read(start, leader.durable_end(), usize::MAX, true)
            .await
            .unwrap();
        for batch in batches {
            follower
                .append_replicated(batch, Backing::Own)
                .await
                .unwrap();
        }
        follower.advance_high_watermark(leader.high_watermark());
        assert_eq!(follower.log_end_offset(), leader.log_end_offset());
        assert_eq!(follower.leader_epochs(), leader.leader_epochs());
        assert_eq!(read_all(&follower).await, read_all(&leader).await);
        // A crash right after: the restarted log comes back as it is.
        drop(follower);
        let follower = PartitionLog::open(dir.join("follower"), config())
            .await
            .unwrap();
        assert_eq!(follower.log_start_offset(), start);
        assert_eq!(follower.leader_epochs(), leader.leader_epochs());
        assert_eq!(read_all(&follower).await, read_all(&leader).await);
        assert_eq!(segment_bases(&dir.join("follower"))[0], start);
        follower.close().await.unwrap();
        leader.close().await.unwrap();
    });
}

#[test]
fn a_crash_after_a_restart_before_any_append_opens_empty_at_the_new_start() {
    with_dir(|dir| async move {
        let log = log_of(&dir, 12).await;
        log.become_follower(5);
        log.truncate_fully_and_start_at(1_000).await.unwrap();
        drop(log);
        let log = PartitionLog::open(dir.clone(), config()).await.unwrap();
        assert_eq!(
            (log.log_start_offset(), log.log_end_offset()),
            (1_000, 1_000)
        );
        assert_eq!(log.leader_epochs(), []);
        assert_eq!(segment_files(&dir, "log"), 0);
        log.close().await.unwrap();
    });
}
