//! Scenario tests of offsets committed in transactions (`txn_offsets.rs`):
//! TxnOffsetCommit's checks, pending offsets and what ends them (a marker,
//! DeleteGroups, OffsetDelete), and replay of a log with markers.

use kafka_protocol::error::ResponseError;

use super::tests::{replay_records, to_commit, Harness, GROUP};
use super::*;

const PRODUCER: i64 = 4_000;
const OTHER_PRODUCER: i64 = 4_001;

fn partition() -> i32 {
    offsets_partition(GROUP, GroupConfig::default().offsets_topic_num_partitions)
}

fn txn_request(
    producer_id: i64,
    generation_id: i32,
    member_id: &str,
    offsets: &[(&str, i32, i64)],
) -> TxnCommitRequest {
    TxnCommitRequest {
        group_id: GROUP.into(),
        producer: TxnProducer {
            producer_id,
            producer_epoch: 2,
        },
        generation_id,
        member_id: member_id.into(),
        group_instance_id: None,
        offsets: to_commit(offsets),
    }
}

impl Harness {
    fn txn_commit(
        &mut self,
        producer_id: i64,
        generation_id: i32,
        member_id: &str,
        offsets: &[(&str, i32, i64)],
    ) -> Vec<Option<ResponseError>> {
        let request = txn_request(producer_id, generation_id, member_id, offsets);
        let (results, effects) = self.coordinator.txn_commit(self.now_ms, request);
        self.absorb(effects);
        results.into_iter().map(|result| result.error).collect()
    }

    /// OffsetFetch of one partition with `require_stable`: its error and
    /// offset.
    fn stable(&self, topic: &str, partition: i32) -> (Option<ResponseError>, Option<i64>) {
        let wanted = [(topic.to_string(), partition)];
        let fetched = self.coordinator.fetch_offsets(GROUP, Some(&wanted), true);
        let offset = fetched[0].committed.as_ref().map(|c| c.offset);
        (fetched[0].error, offset)
    }

    fn end_txn(&mut self, producer_id: i64, commit: bool) {
        self.coordinator
            .complete_txn(self.now_ms, partition(), producer_id, commit);
    }
}

#[test]
fn offsets_stay_pending_until_the_commit_marker() {
    let mut h = Harness::new();
    assert_eq!(
        h.txn_commit(PRODUCER, -1, "", &[("t", 0, 10), ("t", 1, 20)]),
        vec![None, None]
    );
    let txn = Some(TxnProducer {
        producer_id: PRODUCER,
        producer_epoch: 2,
    });
    assert_eq!(h.log.len(), 2);
    assert!(h.log.iter().all(|record| record.txn == txn));
    assert!(h.log.iter().all(|record| record.partition == partition()));
    assert_eq!(h.committed("t", 0), None, "invisible while pending");
    assert_eq!(
        h.stable("t", 0),
        (Some(ResponseError::UnstableOffsetCommit), None)
    );
    assert_eq!(h.stable("t", 2), (None, None), "no pending offset there");
    // A marker of another producer, or in another partition, changes nothing.
    h.end_txn(OTHER_PRODUCER, true);
    h.coordinator
        .complete_txn(h.now_ms, partition() + 1, PRODUCER, true);
    assert_eq!(h.committed("t", 0), None);

    h.end_txn(PRODUCER, true);
    assert_eq!(h.committed("t", 0), Some(10));
    assert_eq!(h.committed("t", 1), Some(20));
    assert_eq!(h.stable("t", 0), (None, Some(10)));
    assert_eq!(h.log.len(), 2, "the marker is the only record of the end");
}

#[test]
fn an_abort_drops_the_offsets_and_the_group_they_made() {
    let mut h = Harness::new();
    assert_eq!(h.commit(-1, "", &[("t", 0, 5)]), vec![None]);
    assert_eq!(h.txn_commit(PRODUCER, -1, "", &[("t", 0, 9)]), vec![None]);
    h.end_txn(PRODUCER, false);
    assert_eq!(h.stable("t", 0), (None, Some(5)), "the old offset stays");

    let mut fresh = Harness::new();
    fresh.txn_commit(PRODUCER, -1, "", &[("t", 0, 9)]);
    assert_eq!(fresh.coordinator.list_groups(&[]).len(), 1);
    fresh.end_txn(PRODUCER, false);
    assert!(
        fresh.coordinator.list_groups(&[]).is_empty(),
        "a group made only for the transaction's offsets goes with them"
    );
}

#[test]
fn the_most_recent_record_wins_when_commits_mix() {
    let mut h = Harness::new();
    h.txn_commit(PRODUCER, -1, "", &[("t", 0, 5)]);
    h.commit(-1, "", &[("t", 0, 7)]);
    assert_eq!(
        h.stable("t", 0),
        (Some(ResponseError::UnstableOffsetCommit), None)
    );
    h.end_txn(PRODUCER, true);
    assert_eq!(h.committed("t", 0), Some(7), "the later plain commit stays");

    h.txn_commit(PRODUCER, -1, "", &[("t", 0, 9)]);
    h.end_txn(PRODUCER, true);
    assert_eq!(h.committed("t", 0), Some(9), "a later transaction wins");

    // Two open transactions: the one written last wins, whichever ends first.
    h.txn_commit(PRODUCER, -1, "", &[("t", 0, 11)]);
    h.txn_commit(OTHER_PRODUCER, -1, "", &[("t", 0, 12)]);
    h.end_txn(OTHER_PRODUCER, true);
    assert_eq!(
        h.stable("t", 0),
        (Some(ResponseError::UnstableOffsetCommit), None)
    );
    h.end_txn(PRODUCER, true);
    assert_eq!(h.stable("t", 0), (None, Some(12)));
    // Within one transaction the last commit of a partition counts.
    h.txn_commit(PRODUCER, -1, "", &[("t", 0, 20)]);
    h.txn_commit(PRODUCER, -1, "", &[("t", 0, 21)]);
    h.end_txn(PRODUCER, true);
    assert_eq!(h.committed("t", 0), Some(21));
}

#[test]
fn checks_are_those_of_a_commit_without_the_group_state() {
    let mut h = Harness::new();
    assert_eq!(
        h.txn_commit(PRODUCER, 3, "m", &[("t", 0, 1)]),
        vec![Some(ResponseError::IllegalGeneration)],
        "an unknown group with a generation"
    );
    let (ids, generation) = h.stable_group(2);
    assert_eq!(
        h.txn_commit(PRODUCER, generation, &ids[1], &[("t", 0, 1)]),
        vec![None]
    );
    assert_eq!(
        h.txn_commit(PRODUCER, generation - 1, &ids[1], &[("t", 0, 1)]),
        vec![Some(ResponseError::IllegalGeneration)]
    );
    assert_eq!(
        h.txn_commit(PRODUCER, generation, "stranger", &[("t", 0, 1)]),
        vec![Some(ResponseError::UnknownMemberId)]
    );
    assert_eq!(
        h.txn_commit(PRODUCER, -1, "", &[("t", 0, 2)]),
        vec![None],
        "before v3 there is no member to check, whatever the group's state"
    );
    let mut fenced = txn_request(PRODUCER, generation, &ids[0], &[("t", 0, 1)]);
    fenced.group_instance_id = Some("unknown-instance".into());
    let (results, _) = h.coordinator.txn_commit(h.now_ms, fenced);
    assert_eq!(results[0].error, Some(ResponseError::UnknownMemberId));

    let _rejoin = h.join(&ids[0], None, "c");
    let _rejoin = h.join(&ids[1], None, "c");
    assert_eq!(h.state(), GroupState::CompletingRebalance);
    assert_eq!(
        h.txn_commit(PRODUCER, generation + 1, &ids[0], &[("t", 0, 3)]),
        vec![None],
        "no REBALANCE_IN_PROGRESS for a transaction's offsets"
    );

    let mut long = txn_request(PRODUCER, -1, "", &[("t", 0, 4), ("t", 1, 4)]);
    long.offsets[1].metadata = Some("x".repeat(4097));
    let (results, effects) = h.coordinator.txn_commit(h.now_ms, long);
    let errors: Vec<_> = results.iter().map(|result| result.error).collect();
    assert_eq!(errors, [None, Some(ResponseError::OffsetMetadataTooLarge)]);
    assert_eq!(effects.records.len(), 1);

    let mut nameless = txn_request(PRODUCER, -1, "", &[("t", 0, 1)]);
    nameless.group_id = String::new();
    let (results, effects) = h.coordinator.txn_commit(h.now_ms, nameless);
    assert_eq!(results[0].error, Some(ResponseError::InvalidGroupId));
    assert!(effects.records.is_empty());
}

#[test]
fn replay_keeps_offsets_pending_until_their_marker() {
    let mut h = Harness::new();
    h.commit(-1, "", &[("t", 0, 1)]);
    h.txn_commit(PRODUCER, -1, "", &[("t", 0, 10), ("t", 1, 10)]);
    h.txn_commit(OTHER_PRODUCER, -1, "", &[("t", 2, 30)]);

    // A restart before any marker: both transactions are still open.
    let mut loaded = GroupCoordinator::new(GroupConfig::default(), 8);
    replay_records(&mut loaded, h.now_ms, &h.log);
    let stable = |coordinator: &GroupCoordinator, partition| {
        let wanted = [("t".to_string(), partition)];
        let fetched = coordinator.fetch_offsets(GROUP, Some(&wanted), true);
        (
            fetched[0].error,
            fetched[0].committed.as_ref().map(|c| c.offset),
        )
    };
    let unstable = (Some(ResponseError::UnstableOffsetCommit), None);
    assert_eq!(stable(&loaded, 0), unstable);
    assert_eq!(stable(&loaded, 2), unstable);
    // The markers arrive after the restart, as the transaction coordinator
    // retries them.
    loaded.complete_txn(h.now_ms, partition(), PRODUCER, true);
    loaded.complete_txn(h.now_ms, partition(), OTHER_PRODUCER, false);
    assert_eq!(stable(&loaded, 0), (None, Some(10)));
    assert_eq!(stable(&loaded, 1), (None, Some(10)));
    assert_eq!(stable(&loaded, 2), (None, None));

    // Markers met in the log while loading, in log order: a later plain
    // commit still wins over an earlier transaction's offset.
    h.commit(-1, "", &[("t", 1, 15)]);
    let mut relogged = GroupCoordinator::new(GroupConfig::default(), 9);
    replay_records(&mut relogged, h.now_ms, &h.log);
    relogged.complete_txn(h.now_ms, partition(), PRODUCER, true);
    assert_eq!(stable(&relogged, 0), (None, Some(10)));
    assert_eq!(stable(&relogged, 1), (None, Some(15)));
}

#[test]
fn deleting_the_group_or_an_offset_ends_pending_ones_too() {
    let mut h = Harness::new();
    h.commit(-1, "", &[("t", 0, 1)]);
    h.txn_commit(PRODUCER, -1, "", &[("t", 0, 10), ("t", 1, 10)]);
    let (error, effects) = h.coordinator.delete_group(h.now_ms, GROUP);
    assert_eq!(error, None);
    let tombstones: Vec<&Record> = effects
        .records
        .iter()
        .filter(|record| record.value.is_none())
        .collect();
    assert_eq!(tombstones.len(), 3, "t-0, t-1 (pending only), the group");
    assert!(effects.records.iter().all(|record| record.txn.is_none()));
    h.absorb(effects);
    h.end_txn(PRODUCER, true);
    assert!(h.coordinator.list_groups(&[]).is_empty());
    assert_eq!(h.committed("t", 1), None, "the commit found nothing");

    let mut h = Harness::new();
    h.txn_commit(PRODUCER, -1, "", &[("t", 0, 10), ("t", 1, 10)]);
    let (result, effects) = h.coordinator.delete_offsets(GROUP, &[("t".into(), 0)]);
    assert_eq!(result.map(|r| r[0].error), Ok(None));
    assert_eq!(effects.records.len(), 1, "a tombstone for a pending offset");
    h.absorb(effects);
    assert_eq!(h.stable("t", 0), (None, None));
    h.end_txn(PRODUCER, true);
    assert_eq!(h.committed("t", 0), None);
    assert_eq!(h.committed("t", 1), Some(10));
    // The same, read back from the log: the tombstone ends the pending offset.
    let mut loaded = GroupCoordinator::new(GroupConfig::default(), 8);
    replay_records(&mut loaded, h.now_ms, &h.log);
    loaded.complete_txn(h.now_ms, partition(), PRODUCER, true);
    assert_eq!(
        loaded.fetch_offsets(GROUP, None, true),
        h.coordinator.fetch_offsets(GROUP, None, true)
    );
}

#[test]
fn an_open_transaction_holds_back_expiry_and_unloading_forgets_it() {
    let config = GroupConfig {
        offsets_retention_ms: 20_000,
        offsets_retention_check_interval_ms: 1_000,
        ..GroupConfig::default()
    };
    let mut h = Harness::with_config(config.clone());
    h.commit(-1, "", &[("t", 0, 1)]);
    h.txn_commit(PRODUCER, -1, "", &[("t", 0, 10)]);
    h.advance(60_000);
    assert_eq!(h.coordinator.list_groups(&[]).len(), 1);
    assert_eq!(
        h.stable("t", 0),
        (Some(ResponseError::UnstableOffsetCommit), None),
        "neither the offset nor the group expires under a transaction"
    );
    h.end_txn(PRODUCER, true);
    assert_eq!(h.committed("t", 0), Some(10));
    h.advance(21_000);
    assert!(h.coordinator.list_groups(&[]).is_empty(), "then they do");

    let mut h = Harness::with_config(config);
    h.txn_commit(PRODUCER, -1, "", &[("t", 0, 10)]);
    let _ = h.coordinator.unload_partition(partition());
    assert!(h.coordinator.list_groups(&[]).is_empty());
    h.end_txn(PRODUCER, true);
    assert!(h.coordinator.list_groups(&[]).is_empty());
}
