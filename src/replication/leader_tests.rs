//! `LeaderState`, one rule per test, in the order a partition lives them.

use super::*;
use kafka_protocol::error::ResponseError;

const LEADER: i32 = 1;
const LAG_MAX_MS: i64 = 30_000;

fn config(min_insync_replicas: i32) -> LeaderConfig {
    LeaderConfig {
        local_broker_id: LEADER,
        local_broker_epoch: 100,
        min_insync_replicas,
        replica_lag_time_max_ms: LAG_MAX_MS,
    }
}

fn view(isr: &[i32]) -> PartitionView {
    PartitionView {
        replicas: vec![1, 2, 3],
        isr: isr.to_vec(),
        leader: LEADER,
        leader_epoch: 5,
        partition_epoch: 10,
    }
}

fn ends(log_end_offset: i64, durable_end_offset: i64) -> LocalEnds {
    LocalEnds {
        log_end_offset,
        durable_end_offset,
    }
}

/// A fetch from a registered, unfenced follower with its current epoch.
fn fetch(replica_id: i32, fetch_offset: i64) -> FollowerFetch {
    FollowerFetch {
        replica_id,
        broker_epoch: 1000 + i64::from(replica_id),
        registered_broker_epoch: Some(1000 + i64::from(replica_id)),
        fetch_offset,
        log_start_offset: 0,
    }
}

fn leader(min_isr: i32, isr: &[i32], local: LocalEnds, high_watermark: i64) -> LeaderState {
    LeaderState::new(config(min_isr), &view(isr), local, high_watermark, 0).unwrap()
}

fn hw_after_fetch(
    state: &mut LeaderState,
    f: FollowerFetch,
    local: LocalEnds,
    now_ms: i64,
) -> Option<i64> {
    state
        .on_follower_fetch(&f, local, now_ms)
        .unwrap()
        .high_watermark_offset
}

#[test]
fn a_view_led_by_another_broker_or_with_an_isr_without_the_leader_makes_no_state() {
    let mut other = view(&[1, 2, 3]);
    other.leader = 2;
    assert!(LeaderState::new(config(2), &other, ends(0, 0), 0, 0).is_none());
    assert!(LeaderState::new(config(2), &view(&[2, 3]), ends(0, 0), 0, 0).is_none());
    assert!(LeaderState::new(config(2), &view(&[1, 4]), ends(0, 0), 0, 0).is_none());
}

#[test]
fn the_high_watermark_is_the_least_of_the_isr_log_ends_and_the_leaders_durable_end() {
    let mut state = leader(2, &[1, 2, 3], ends(10, 8), 0);
    // Follower 3 has not fetched: its log end is unknown, nothing moves.
    assert_eq!(
        hw_after_fetch(&mut state, fetch(2, 10), ends(10, 8), 1),
        None
    );
    assert_eq!(
        hw_after_fetch(&mut state, fetch(3, 6), ends(10, 8), 2),
        Some(6)
    );
    // Both followers at 10, the leader durable to 8 only.
    assert_eq!(
        hw_after_fetch(&mut state, fetch(3, 10), ends(10, 8), 3),
        Some(8)
    );
    let flushed = state.on_local_ends(ends(10, 10), 4);
    assert_eq!(flushed.high_watermark_offset, Some(10));
    assert_eq!(state.high_watermark_offset(), 10);
}

#[test]
fn the_high_watermark_never_moves_backward() {
    let mut state = leader(1, &[1, 2], ends(10, 10), 0);
    assert_eq!(
        hw_after_fetch(&mut state, fetch(2, 10), ends(10, 10), 1),
        Some(10)
    );
    // The follower truncated and fetches from below: the mark stays.
    assert_eq!(
        hw_after_fetch(&mut state, fetch(2, 4), ends(12, 12), 2),
        None
    );
    assert_eq!(state.high_watermark_offset(), 10);
}

#[test]
fn below_min_insync_replicas_the_high_watermark_stays_and_acks_all_is_refused() {
    let mut state = leader(2, &[1], ends(10, 10), 3);
    assert_eq!(
        state.on_local_ends(ends(10, 10), 1).high_watermark_offset,
        None
    );
    assert_eq!(state.high_watermark_offset(), 3);
    assert_eq!(
        state.check_append(-1),
        Err(ResponseError::NotEnoughReplicas)
    );
    assert_eq!(state.check_append(1), Ok(()));
    assert_eq!(state.check_append(0), Ok(()));
    // min.insync.replicas above the replication factor counts as the factor.
    let all = leader(5, &[1, 2, 3], ends(0, 0), 0);
    assert_eq!(all.effective_min_isr(), 3);
    assert_eq!(all.check_append(-1), Ok(()));
}

#[test]
fn a_follower_in_sync_is_proposed_into_the_isr_with_its_broker_epoch_once() {
    let mut state = leader(1, &[1, 2], ends(10, 10), 0);
    hw_after_fetch(&mut state, fetch(2, 10), ends(10, 10), 1);
    assert_eq!(state.high_watermark_offset(), 10);
    // Below the high watermark: not in sync yet.
    let behind = state
        .on_follower_fetch(&fetch(3, 9), ends(10, 10), 2)
        .unwrap();
    assert_eq!(behind.alter_partition, None);
    let caught_up = state
        .on_follower_fetch(&fetch(3, 10), ends(10, 10), 3)
        .unwrap();
    let proposal = caught_up.alter_partition.expect("an expansion");
    assert_eq!(
        proposal,
        AlterPartitionProposal {
            leader_id: LEADER,
            leader_epoch: 5,
            partition_epoch: 10,
            new_isr: vec![
                IsrMember {
                    broker_id: 1,
                    broker_epoch: 100
                },
                IsrMember {
                    broker_id: 2,
                    broker_epoch: 1002
                },
                IsrMember {
                    broker_id: 3,
                    broker_epoch: 1003
                },
            ],
        }
    );
    assert_eq!(state.in_flight(), Some(&proposal));
    let again = state
        .on_follower_fetch(&fetch(3, 10), ends(10, 10), 4)
        .unwrap();
    assert_eq!(again.alter_partition, None, "one AlterPartition in flight");
    // The pending member already counts: the mark waits for it.
    assert_eq!(state.maximal_isr(), [1, 2, 3].into());
    assert_eq!(
        hw_after_fetch(&mut state, fetch(2, 12), ends(12, 12), 5),
        None
    );
}

#[test]
fn a_follower_without_its_registered_broker_epoch_does_not_join() {
    let mut state = leader(1, &[1, 2], ends(10, 10), 10);
    let fenced = FollowerFetch {
        registered_broker_epoch: None,
        ..fetch(3, 10)
    };
    assert_eq!(
        state
            .on_follower_fetch(&fenced, ends(10, 10), 1)
            .unwrap()
            .alter_partition,
        None
    );
    let stale = FollowerFetch {
        broker_epoch: 7,
        ..fetch(3, 10)
    };
    assert_eq!(
        state.on_follower_fetch(&stale, ends(10, 10), 2),
        Err(FetchRefused::StaleBrokerEpoch)
    );
    assert_eq!(
        FetchRefused::StaleBrokerEpoch.error(),
        ResponseError::NotLeaderOrFollower
    );
    assert_eq!(
        state.on_follower_fetch(&fetch(4, 10), ends(10, 10), 3),
        Err(FetchRefused::NotAReplica)
    );
    assert_eq!(
        state.on_follower_fetch(&fetch(3, 11), ends(10, 10), 3),
        Err(FetchRefused::OffsetOutOfRange)
    );
    // An old follower fetching with -1 (before KIP-903) is not checked.
    let unversioned = FollowerFetch {
        broker_epoch: -1,
        ..fetch(3, 10)
    };
    let joined = state
        .on_follower_fetch(&unversioned, ends(10, 10), 4)
        .unwrap();
    assert!(joined.alter_partition.is_some());
}

#[test]
fn a_follower_below_the_start_of_the_leaders_epoch_does_not_join() {
    // The epoch began at 20; the high watermark is 10.
    let mut state = leader(1, &[1, 2], ends(20, 20), 10);
    assert_eq!(state.leader_epoch_start_offset(), 20);
    let below = state
        .on_follower_fetch(&fetch(3, 15), ends(20, 20), 1)
        .unwrap();
    assert_eq!(below.alter_partition, None);
    let at = state
        .on_follower_fetch(&fetch(3, 20), ends(20, 20), 2)
        .unwrap();
    assert!(at.alter_partition.is_some());
}

#[test]
fn a_follower_not_caught_up_for_longer_than_the_lag_is_proposed_out() {
    let mut state = leader(1, &[1, 2, 3], ends(10, 10), 0);
    hw_after_fetch(&mut state, fetch(2, 10), ends(10, 10), 1_000);
    // 3 never fetched: it counts as caught up at the epoch's start (0).
    assert_eq!(
        state.on_tick(ends(10, 10), LAG_MAX_MS).alter_partition,
        None
    );
    let shrink = state.on_tick(ends(10, 10), LAG_MAX_MS + 1).alter_partition;
    let shrink = shrink.expect("a shrink");
    let members: Vec<i32> = shrink.new_isr.iter().map(|m| m.broker_id).collect();
    assert_eq!(members, vec![1, 2]);
    // While it is pending, 3 still counts for the high watermark.
    assert_eq!(state.maximal_isr(), [1, 2, 3].into());
    assert_eq!(
        state.on_tick(ends(10, 10), LAG_MAX_MS + 2).alter_partition,
        None
    );
}

#[test]
fn reaching_the_leaders_end_of_the_previous_fetch_counts_as_caught_up_then() {
    let mut state = leader(1, &[1, 2, 3], ends(10, 10), 0);
    hw_after_fetch(&mut state, fetch(3, 10), ends(10, 10), 0);
    // Produce keeps the leader ahead of each fetch: 2 reaches at each
    // fetch the end the leader had at the one before.
    hw_after_fetch(&mut state, fetch(2, 5), ends(10, 10), 1_000);
    hw_after_fetch(&mut state, fetch(2, 10), ends(12, 12), 20_000);
    hw_after_fetch(&mut state, fetch(3, 12), ends(12, 12), 20_000);
    // Caught up at 1,000 (it reached 10 then), not at 20,000.
    assert_eq!(
        state
            .on_tick(ends(12, 12), 1_000 + LAG_MAX_MS)
            .alter_partition,
        None
    );
    let shrink = state
        .on_tick(ends(12, 12), 1_001 + LAG_MAX_MS)
        .alter_partition;
    assert!(shrink.is_some_and(|p| p.new_isr.iter().all(|m| m.broker_id != 2)));
}

#[test]
fn a_caught_up_follower_outside_the_isr_holds_the_high_watermark() {
    // Its epoch began at 12, so 3 at 11 cannot join, but it is caught up.
    let mut state = leader(1, &[1, 2], ends(12, 12), 10);
    let joined = state
        .on_follower_fetch(&fetch(3, 11), ends(12, 12), 100)
        .unwrap();
    assert_eq!(joined.alter_partition, None);
    assert_eq!(
        hw_after_fetch(&mut state, fetch(2, 12), ends(12, 12), 101),
        Some(11)
    );
}

fn expanded() -> (LeaderState, AlterPartitionProposal) {
    let mut state = leader(1, &[1, 2], ends(10, 10), 10);
    let effects = state
        .on_follower_fetch(&fetch(3, 10), ends(10, 10), 1)
        .unwrap();
    (state, effects.alter_partition.unwrap())
}

fn committed(partition_epoch: i32, isr: &[i32]) -> AlterPartitionAnswer {
    AlterPartitionAnswer::Committed {
        leader_epoch: 5,
        partition_epoch,
        isr: isr.to_vec(),
    }
}

#[test]
fn a_committed_answer_sets_the_isr_and_the_partition_epoch() {
    let (mut state, sent) = expanded();
    state.on_alter_partition(&sent, &committed(11, &[1, 2, 3]), ends(10, 10), 2);
    assert_eq!(state.committed_isr(), vec![1, 2, 3]);
    assert_eq!(state.partition_epoch(), 11);
    assert_eq!(state.in_flight(), None);
}

#[test]
fn a_stale_answer_or_one_for_another_proposal_changes_nothing() {
    let (mut state, sent) = expanded();
    state.on_alter_partition(&sent, &committed(9, &[1, 2, 3]), ends(10, 10), 2);
    assert_eq!(
        (state.committed_isr(), state.partition_epoch()),
        (vec![1, 2], 10)
    );
    assert_eq!(state.in_flight(), Some(&sent));
    let other = AlterPartitionProposal {
        partition_epoch: 8,
        ..sent.clone()
    };
    state.on_alter_partition(&other, &committed(11, &[1, 2, 3]), ends(10, 10), 3);
    assert_eq!(state.committed_isr(), vec![1, 2]);
    let mut old_epoch = committed(11, &[1, 2, 3]);
    if let AlterPartitionAnswer::Committed { leader_epoch, .. } = &mut old_epoch {
        *leader_epoch = 4;
    }
    state.on_alter_partition(&sent, &old_epoch, ends(10, 10), 4);
    assert_eq!(state.committed_isr(), vec![1, 2]);
}

#[test]
fn errors_revert_retry_or_wait_for_metadata_as_kafkas_do() {
    let (mut state, sent) = expanded();
    let retried = state.on_alter_partition(
        &sent,
        &AlterPartitionAnswer::Error(ResponseError::RequestTimedOut),
        ends(10, 10),
        2,
    );
    assert_eq!(retried.alter_partition, Some(sent.clone()));
    let waiting = state.on_alter_partition(
        &sent,
        &AlterPartitionAnswer::Error(ResponseError::InvalidUpdateVersion),
        ends(10, 10),
        3,
    );
    assert_eq!(waiting.alter_partition, None);
    assert_eq!(state.in_flight(), Some(&sent));
    state.on_alter_partition(
        &sent,
        &AlterPartitionAnswer::Error(ResponseError::IneligibleReplica),
        ends(10, 10),
        4,
    );
    assert_eq!(state.in_flight(), None);
    // Reverted: the next fetch may propose again.
    let again = state
        .on_follower_fetch(&fetch(3, 10), ends(10, 10), 5)
        .unwrap();
    assert_eq!(again.alter_partition, Some(sent));
}

#[test]
fn metadata_past_the_pending_epoch_ends_the_proposal_and_a_new_leader_ends_the_state() {
    let (mut state, _) = expanded();
    let same = state.on_metadata(&view(&[1, 2]), ends(10, 10), 2);
    assert_eq!(same, MetadataOutcome::Leading(LeaderEffects::default()));
    assert!(
        state.in_flight().is_some(),
        "the same partition epoch keeps it"
    );
    let mut next = view(&[1, 2, 3]);
    next.partition_epoch = 11;
    assert!(matches!(
        state.on_metadata(&next, ends(10, 10), 3),
        MetadataOutcome::Leading(_)
    ));
    assert_eq!(state.in_flight(), None);
    assert_eq!(state.committed_isr(), vec![1, 2, 3]);
    let mut moved = next.clone();
    moved.leader = 2;
    moved.leader_epoch = 6;
    moved.partition_epoch = 12;
    assert_eq!(
        state.on_metadata(&moved, ends(10, 10), 4),
        MetadataOutcome::Ended
    );
}

#[test]
fn a_new_leader_epoch_starts_at_the_log_end_and_restarts_the_followers_clocks() {
    let mut state = leader(1, &[1, 2, 3], ends(10, 10), 10);
    let mut next = view(&[1, 2, 3]);
    next.leader_epoch = 6;
    next.partition_epoch = 11;
    state.on_metadata(&next, ends(14, 14), 50_000);
    assert_eq!(
        (state.leader_epoch(), state.leader_epoch_start_offset()),
        (6, 14)
    );
    // Neither follower fetched since: both were reset as caught up at 50,000.
    assert_eq!(
        state
            .on_tick(ends(14, 14), 50_000 + LAG_MAX_MS)
            .alter_partition,
        None
    );
}

#[test]
fn acks_all_waits_for_the_high_watermark_and_notes_an_isr_shrunk_after_the_append() {
    let mut state = leader(2, &[1, 2, 3], ends(10, 10), 0);
    assert_eq!(state.acks_all_status(10), AcksAllStatus::Waiting);
    hw_after_fetch(&mut state, fetch(2, 10), ends(10, 10), 1);
    hw_after_fetch(&mut state, fetch(3, 10), ends(10, 10), 1);
    assert_eq!(state.acks_all_status(10), AcksAllStatus::Done);
    let mut shrunk = view(&[1]);
    shrunk.partition_epoch = 11;
    state.on_metadata(&shrunk, ends(10, 10), 2);
    assert_eq!(
        state.acks_all_status(10),
        AcksAllStatus::NotEnoughReplicasAfterAppend
    );
    assert_eq!(state.acks_all_status(11), AcksAllStatus::Waiting);
}

#[test]
fn a_requests_leader_epoch_is_checked_as_kafka_checks_it() {
    let state = leader(1, &[1], ends(0, 0), 0);
    assert_eq!(state.check_leader_epoch(-1), Ok(()));
    assert_eq!(state.check_leader_epoch(5), Ok(()));
    assert_eq!(
        state.check_leader_epoch(4),
        Err(ResponseError::FencedLeaderEpoch)
    );
    assert_eq!(
        state.check_leader_epoch(6),
        Err(ResponseError::UnknownLeaderEpoch)
    );
}

#[test]
fn the_low_watermark_is_the_least_log_start_of_the_leader_and_the_alive_followers() {
    let mut state = leader(2, &[1, 2, 3], ends(100, 100), 100);
    let everyone = |_| true;
    // Neither follower has fetched since this broker leads: unknown, -1.
    assert_eq!(state.low_watermark(40, everyone), -1);
    let at = |replica_id, log_start_offset| FollowerFetch {
        log_start_offset,
        ..fetch(replica_id, 100)
    };
    state
        .on_follower_fetch(&at(2, 40), ends(100, 100), 1)
        .unwrap();
    assert_eq!(state.low_watermark(40, everyone), -1, "3 still unknown");
    state
        .on_follower_fetch(&at(3, 10), ends(100, 100), 2)
        .unwrap();
    assert_eq!(state.low_watermark(40, everyone), 10);
    // A follower on a broker that is not alive (fenced, unregistered)
    // holds nothing back: Kafka's `metadataCache.hasAliveBroker`.
    assert_eq!(state.low_watermark(40, |id| id != 3), 40);
    assert_eq!(state.low_watermark(40, |_| false), 40);
    // It moves as the followers follow the leader's start.
    state
        .on_follower_fetch(&at(3, 40), ends(100, 100), 3)
        .unwrap();
    assert_eq!(state.low_watermark(40, everyone), 40);
    // Never above the leader's own start.
    assert_eq!(state.low_watermark(30, everyone), 30);
    // A new leader epoch keeps what the followers said (Kafka's reset
    // for a leader re-elected); a follower moved out is forgotten.
    state
        .on_follower_fetch(&at(3, 10), ends(100, 100), 4)
        .unwrap();
    let next = PartitionView {
        replicas: vec![1, 2],
        isr: vec![1, 2],
        leader_epoch: 6,
        partition_epoch: 11,
        ..view(&[1, 2])
    };
    state.on_metadata(&next, ends(100, 100), 5);
    assert_eq!(state.low_watermark(40, everyone), 40);
}
