//! `Followers`: the fetch plan per leader and the decision per answer.

use super::*;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use uuid::Uuid;

fn tp(partition: i32) -> TopicPartitionId {
    TopicPartitionId {
        topic_id: Uuid::from_u128(7),
        partition,
    }
}

fn followed(partition: i32, leader_id: i32, leader_epoch: i32) -> FollowedPartition {
    FollowedPartition {
        id: tp(partition),
        leader_id,
        leader_epoch,
    }
}

fn log(log_end_offset: i64, latest_epoch: i32, high_watermark_offset: i64) -> LocalLog {
    LocalLog {
        log_start_offset: 0,
        log_end_offset,
        durable_end_offset: log_end_offset,
        latest_epoch: Some(latest_epoch),
        high_watermark_offset,
    }
}

fn answer(partition: i32, fetch_offset: i64) -> PartitionAnswer {
    PartitionAnswer {
        id: tp(partition),
        fetch_offset,
        error: None,
        high_watermark_offset: 40,
        log_start_offset: 0,
        diverging_epoch: None,
        records: Some(Bytes::from_static(b"batches")),
    }
}

fn failed(partition: i32, fetch_offset: i64, error: ResponseError) -> PartitionAnswer {
    PartitionAnswer {
        error: Some(error),
        records: None,
        ..answer(partition, fetch_offset)
    }
}

fn planned_ids(followers: &mut Followers, leader_id: i32, now_ms: i64) -> Vec<i32> {
    followers
        .plan(leader_id, now_ms, |_| Some(log(50, 3, 40)))
        .iter()
        .map(|p| p.id.partition)
        .collect()
}

#[test]
fn metadata_moves_partitions_between_fetchers() {
    let mut followers = Followers::new();
    let added = followers.apply_metadata(&[followed(0, 2, 1), followed(1, 3, 1)]);
    assert_eq!(
        added,
        vec![
            FetcherChange::Added {
                id: tp(0),
                leader_id: 2
            },
            FetcherChange::Added {
                id: tp(1),
                leader_id: 3
            },
        ]
    );
    assert_eq!(followers.leaders(), [2, 3].into());
    let unchanged = followers.apply_metadata(&[followed(0, 2, 1), followed(1, 3, 1)]);
    assert_eq!(unchanged, vec![]);
    let moved = followers.apply_metadata(&[followed(0, 3, 2), followed(2, 3, 4)]);
    assert_eq!(
        moved,
        vec![
            FetcherChange::Removed {
                id: tp(1),
                leader_id: 3
            },
            FetcherChange::Moved {
                id: tp(0),
                from_leader_id: 2,
                to_leader_id: 3,
                leader_epoch: 2
            },
            FetcherChange::Added {
                id: tp(2),
                leader_id: 3
            },
        ]
    );
    assert_eq!(followers.leaders(), [3].into());
    assert_eq!(followers.partitions_of(3), vec![tp(0), tp(2)]);
}

#[test]
fn the_plan_fetches_each_durable_log_from_its_end_with_its_epochs() {
    let mut followers = Followers::new();
    followers.apply_metadata(&[
        followed(0, 2, 5),
        followed(1, 2, 5),
        followed(2, 2, 5),
        followed(3, 9, 5),
    ]);
    let plan = followers.plan(2, 0, |id| match id.partition {
        0 => Some(log(30, 4, 20)),
        // Appended, not yet flushed: left out until the flush.
        1 => Some(LocalLog {
            durable_end_offset: 10,
            ..log(12, 4, 10)
        }),
        _ => None,
    });
    assert_eq!(
        plan,
        vec![PlannedPartition {
            id: tp(0),
            current_leader_epoch: 5,
            fetch_offset: 30,
            last_fetched_epoch: 4,
            log_start_offset: 0,
            partition_max_bytes: REPLICA_FETCH_MAX_BYTES,
        }]
    );
    let empty = followers.plan(2, 0, |_| {
        Some(LocalLog {
            latest_epoch: None,
            ..log(0, 0, 0)
        })
    });
    assert!(empty
        .iter()
        .all(|p| p.last_fetched_epoch == -1 && p.fetch_offset == 0));
}

#[test]
fn beyond_the_bound_partitions_take_turns() {
    let count = PARTITIONS_PER_FETCH_MAX + 10;
    let all: Vec<FollowedPartition> = (0..count as i32).map(|p| followed(p, 2, 1)).collect();
    let mut followers = Followers::new();
    followers.apply_metadata(&all);
    let first = planned_ids(&mut followers, 2, 0);
    let second = planned_ids(&mut followers, 2, 0);
    assert_eq!(first.len(), PARTITIONS_PER_FETCH_MAX);
    assert_eq!(second.len(), PARTITIONS_PER_FETCH_MAX);
    assert_eq!(second[0], PARTITIONS_PER_FETCH_MAX as i32);
    let mut seen: Vec<i32> = first.iter().chain(&second).copied().collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), count, "every partition within two fetches");
}

#[test]
fn an_answer_becomes_an_append_with_the_leaders_high_watermark() {
    let mut followers = Followers::new();
    followers.apply_metadata(&[followed(0, 2, 5)]);
    let decision = followers.on_answer(2, &answer(0, 30), &log(30, 4, 20), |_| None, 0);
    assert_eq!(
        decision,
        FollowerDecision::Append {
            records: Some(Bytes::from_static(b"batches")),
            leader_high_watermark_offset: 40,
            leader_log_start_offset: 0,
        }
    );
    // The follower's mark: the leader's, within its own log, never back.
    assert_eq!(follower_high_watermark(20, 40, 35), 35);
    assert_eq!(follower_high_watermark(20, 30, 35), 30);
    assert_eq!(follower_high_watermark(20, 10, 35), 20);
}

#[test]
fn the_follower_log_start_follows_the_leaders_up_to_its_high_watermark() {
    // The leader's DeleteRecords (or retention) moved its start to 40.
    assert_eq!(follower_log_start(0, 40, 100), Some(40));
    // Not past what this replica holds committed: the rest comes later.
    assert_eq!(follower_log_start(0, 40, 25), Some(25));
    // Never backward, and no move is no change.
    assert_eq!(follower_log_start(40, 30, 100), None);
    assert_eq!(follower_log_start(40, 40, 100), None);
    assert_eq!(follower_log_start(40, 60, 40), None);
}

#[test]
fn an_answer_from_another_leader_or_to_another_offset_is_ignored() {
    let mut followers = Followers::new();
    followers.apply_metadata(&[followed(0, 2, 5)]);
    let local = log(30, 4, 20);
    assert_eq!(
        followers.on_answer(3, &answer(0, 30), &local, |_| None, 0),
        FollowerDecision::Ignore
    );
    assert_eq!(
        followers.on_answer(2, &answer(0, 25), &local, |_| None, 0),
        FollowerDecision::Ignore
    );
    assert_eq!(
        followers.on_answer(2, &answer(1, 30), &local, |_| None, 0),
        FollowerDecision::Ignore
    );
}

fn diverging(epoch: i32, end_offset: i64) -> PartitionAnswer {
    PartitionAnswer {
        diverging_epoch: Some(LocalEpochEnd { epoch, end_offset }),
        records: None,
        ..answer(0, 30)
    }
}

#[test]
fn a_diverging_epoch_truncates_to_the_lower_end_of_it() {
    let mut followers = Followers::new();
    followers.apply_metadata(&[followed(0, 2, 5)]);
    let local = log(30, 4, 20);
    // Both hold epoch 3: the lower of the two ends.
    let ours = |epoch| {
        Some(LocalEpochEnd {
            epoch,
            end_offset: 26,
        })
    };
    let decision = followers.on_answer(2, &diverging(3, 24), &local, ours, 0);
    assert_eq!(decision, FollowerDecision::Truncate { to_offset: 24 });
    let decision = followers.on_answer(2, &diverging(3, 28), &local, ours, 0);
    assert_eq!(decision, FollowerDecision::Truncate { to_offset: 26 });
    // This log lacks epoch 3: to the end of its largest epoch below, 2.
    let below = |_| {
        Some(LocalEpochEnd {
            epoch: 2,
            end_offset: 18,
        })
    };
    let decision = followers.on_answer(2, &diverging(3, 24), &local, below, 0);
    assert_eq!(decision, FollowerDecision::Truncate { to_offset: 18 });
    // No epoch at or below: the leader's end, never above our own.
    let decision = followers.on_answer(2, &diverging(3, 24), &local, |_| None, 0);
    assert_eq!(decision, FollowerDecision::Truncate { to_offset: 24 });
    let decision = followers.on_answer(2, &diverging(3, 90), &local, |_| None, 0);
    assert_eq!(decision, FollowerDecision::Truncate { to_offset: 30 });
}

#[test]
fn out_of_range_asks_the_leaders_offsets_and_holds_the_partition_meanwhile() {
    let mut followers = Followers::new();
    followers.apply_metadata(&[followed(0, 2, 5)]);
    let local = log(30, 4, 20);
    let out = failed(0, 30, ResponseError::OffsetOutOfRange);
    assert_eq!(
        followers.on_answer(2, &out, &local, |_| None, 0),
        FollowerDecision::ResolveOutOfRange
    );
    assert_eq!(planned_ids(&mut followers, 2, 10_000), Vec::<i32>::new());
    let leader = |log_start_offset, log_end_offset| {
        Ok(LeaderOffsets {
            log_start_offset,
            log_end_offset,
        })
    };
    // Each answer counts once, while the partition is held for it.
    let mut resolve = |leader_offsets, local: &LocalLog| {
        let out = failed(0, local.log_end_offset, ResponseError::OffsetOutOfRange);
        followers.on_answer(2, &out, local, |_| None, 0);
        followers.on_leader_offsets(2, &tp(0), leader_offsets, local, 0)
    };
    // The leader's end below ours: cut to it.
    let cut = resolve(leader(0, 25), &local);
    assert_eq!(cut, FollowerDecision::Truncate { to_offset: 25 });
    // ... but never below our high watermark.
    let kept = resolve(leader(0, 12), &local);
    assert_eq!(kept, FollowerDecision::Truncate { to_offset: 20 });
    let at_hw = resolve(leader(0, 12), &log(20, 4, 20));
    assert!(matches!(
        at_hw,
        FollowerDecision::BackOff {
            until_ms: 1_000,
            ..
        }
    ));
    // The leader's start above our end: start over there.
    let fresh = resolve(leader(45, 60), &local);
    assert_eq!(
        fresh,
        FollowerDecision::TruncateFullyAndStartAt { offset: 45 }
    );
    let again = resolve(leader(10, 60), &local);
    assert_eq!(again, FollowerDecision::FetchAgain);
    let lost = resolve(Err(ResponseError::NotLeaderOrFollower), &local);
    assert!(matches!(lost, FollowerDecision::BackOff { .. }));
    assert_eq!(planned_ids(&mut followers, 2, 10_000), vec![0]);
    // An answer nobody waits for any more (resolved, or the partition
    // moved to another leader meanwhile) changes nothing.
    let late = followers.on_leader_offsets(2, &tp(0), leader(45, 60), &local, 0);
    assert_eq!(late, FollowerDecision::Ignore);
    let out = failed(0, 30, ResponseError::OffsetOutOfRange);
    followers.on_answer(2, &out, &local, |_| None, 0);
    followers.apply_metadata(&[followed(0, 3, 6)]);
    let moved = followers.on_leader_offsets(2, &tp(0), leader(45, 60), &local, 0);
    assert_eq!(moved, FollowerDecision::Ignore);
}

#[test]
fn errors_back_off_until_the_time_or_the_metadata_moves() {
    let mut followers = Followers::new();
    followers.apply_metadata(&[followed(0, 2, 5), followed(1, 2, 5)]);
    let local = log(30, 4, 20);
    let not_leader = failed(0, 30, ResponseError::NotLeaderOrFollower);
    let backed_off = followers.on_answer(2, &not_leader, &local, |_| None, 100);
    assert_eq!(
        backed_off,
        FollowerDecision::BackOff {
            error: ResponseError::NotLeaderOrFollower,
            until_ms: 100 + REPLICA_FETCH_BACKOFF_MS,
        }
    );
    assert_eq!(planned_ids(&mut followers, 2, 1_099), vec![1]);
    assert_eq!(planned_ids(&mut followers, 2, 1_100), vec![0, 1]);
    // Fenced: our epoch is old; only the metadata brings it back.
    let fenced = failed(1, 30, ResponseError::FencedLeaderEpoch);
    assert_eq!(
        followers.on_answer(2, &fenced, &local, |_| None, 0),
        FollowerDecision::AwaitMetadata
    );
    assert_eq!(planned_ids(&mut followers, 2, 1_000_000), vec![0]);
    followers.apply_metadata(&[followed(0, 2, 5), followed(1, 2, 6)]);
    assert_eq!(planned_ids(&mut followers, 2, 1_100), vec![0, 1]);
    // A new leader or epoch also ends a back-off early.
    followers.on_answer(2, &not_leader, &local, |_| None, 2_000);
    assert_eq!(planned_ids(&mut followers, 2, 2_000), vec![1]);
    followers.apply_metadata(&[followed(0, 3, 6), followed(1, 2, 6)]);
    assert_eq!(planned_ids(&mut followers, 3, 2_000), vec![0]);
}

#[test]
fn a_failed_fetch_backs_off_all_of_its_leaders_partitions() {
    let mut followers = Followers::new();
    followers.apply_metadata(&[followed(0, 2, 5), followed(1, 3, 5)]);
    followers.on_fetch_failed(2, 0);
    assert_eq!(planned_ids(&mut followers, 2, 999), Vec::<i32>::new());
    assert_eq!(planned_ids(&mut followers, 3, 0), vec![1]);
    assert_eq!(planned_ids(&mut followers, 2, 1_000), vec![0]);
}
