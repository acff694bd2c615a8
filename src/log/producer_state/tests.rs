//! The unit tests of `producer_state`: sequences, epochs, duplicates,
//! transactions and their markers, the last stable offset, snapshots,
//! KIP-890's verification.
use super::*;

const PARTITION: &str = "t-0";

fn batch(producer_id: i64, epoch: i16, first_seq: i32, records: i32, offset: i64) -> ProducerBatch {
    ProducerBatch {
        producer_id,
        epoch,
        transactional: false,
        meta: BatchMetadata {
            first_seq,
            last_seq: increment_sequence(first_seq, records - 1),
            first_offset: offset,
            last_offset: offset + i64::from(records) - 1,
            max_timestamp: 1_000 + offset,
        },
    }
}

/// Admits and commits; the error or the duplicate otherwise.
fn append(
    table: &mut ProducerStateTable,
    batches: &[ProducerBatch],
) -> Result<Option<BatchMetadata>, ProducerError> {
    let appends: Vec<ProducerAppend> = batches.iter().copied().map(ProducerAppend::Data).collect();
    match table.admit(
        &appends,
        PARTITION,
        AppendOrigin::Client,
        TxnVerification::Off,
    )? {
        Admission::Append(updated) => {
            table.commit(updated);
            Ok(None)
        }
        Admission::Duplicate(batch) => Ok(Some(batch)),
    }
}

/// The group coordinator writes every transactional batch at sequence
/// 0: only the epoch is checked, as Kafka checks a coordinator's.
#[test]
fn a_coordinators_batches_pass_on_their_epoch_alone() {
    let mut table = ProducerStateTable::default();
    let coordinator = |table: &ProducerStateTable, epoch, offset| {
        let append = ProducerAppend::Data(batch(9, epoch, 0, 1, offset));
        table.admit(
            &[append],
            PARTITION,
            AppendOrigin::Coordinator,
            TxnVerification::Off,
        )
    };
    for (epoch, offset) in [(3, 0), (3, 1), (4, 2), (4, 3)] {
        match coordinator(&table, epoch, offset) {
            Ok(Admission::Append(updated)) => {
                table.commit(updated);
            }
            other => panic!("epoch {epoch} at {offset}: {other:?}"),
        }
    }
    assert!(matches!(
        coordinator(&table, 3, 4),
        Err(ProducerError::InvalidProducerEpoch(_))
    ));
    assert_eq!(
        append(&mut table, &[batch(9, 4, 0, 1, 4)]),
        Ok(Some(batch(9, 4, 0, 1, 2).meta)),
        "the same batch from a client is a retry"
    );
}

#[test]
fn sequences_follow_on_and_gaps_are_out_of_order() {
    let mut table = ProducerStateTable::default();
    assert_eq!(append(&mut table, &[batch(7, 0, 0, 3, 0)]), Ok(None));
    assert_eq!(append(&mut table, &[batch(7, 0, 3, 2, 3)]), Ok(None));
    assert!(matches!(
        append(&mut table, &[batch(7, 0, 6, 1, 5)]),
        Err(ProducerError::OutOfOrderSequence(_))
    ));
    // An unknown producer may start anywhere (KIP-360).
    assert_eq!(append(&mut table, &[batch(8, 3, 42, 1, 5)]), Ok(None));
    assert_eq!(table.len(), 2);
}

#[test]
fn a_retry_of_any_of_the_last_five_is_a_duplicate_with_its_offsets() {
    let mut table = ProducerStateTable::default();
    for i in 0..7 {
        append(&mut table, &[batch(1, 0, i * 2, 2, i64::from(i) * 2)]).unwrap();
    }
    // Batches 2..=6 are remembered; 0 and 1 are not.
    let dup = append(&mut table, &[batch(1, 0, 4, 2, 99)])
        .unwrap()
        .unwrap();
    assert_eq!((dup.first_offset, dup.last_offset), (4, 5));
    assert!(append(&mut table, &[batch(1, 0, 12, 2, 99)])
        .unwrap()
        .is_some());
    assert!(matches!(
        append(&mut table, &[batch(1, 0, 2, 2, 99)]),
        Err(ProducerError::OutOfOrderSequence(_))
    ));
    // A different range at a known sequence is no duplicate.
    assert!(matches!(
        append(&mut table, &[batch(1, 0, 4, 1, 99)]),
        Err(ProducerError::OutOfOrderSequence(_))
    ));
}

#[test]
fn epochs_fence_older_ones_and_a_new_epoch_starts_at_zero() {
    let mut table = ProducerStateTable::default();
    append(&mut table, &[batch(1, 2, 0, 1, 0)]).unwrap();
    assert!(matches!(
        append(&mut table, &[batch(1, 1, 1, 1, 1)]),
        Err(ProducerError::InvalidProducerEpoch(_))
    ));
    assert!(matches!(
        append(&mut table, &[batch(1, 3, 5, 1, 1)]),
        Err(ProducerError::OutOfOrderSequence(_))
    ));
    assert_eq!(append(&mut table, &[batch(1, 3, 0, 1, 1)]), Ok(None));
    // The old epoch's batches are forgotten: no duplicate across epochs.
    assert!(matches!(
        append(&mut table, &[batch(1, 2, 0, 1, 2)]),
        Err(ProducerError::InvalidProducerEpoch(_))
    ));
}

#[test]
fn sequences_wrap_at_i32_max() {
    let mut table = ProducerStateTable::default();
    append(&mut table, &[batch(1, 0, i32::MAX - 1, 2, 0)]).unwrap();
    assert_eq!(table.get(1).unwrap().batches[0].last_seq, i32::MAX);
    assert_eq!(append(&mut table, &[batch(1, 0, 0, 3, 2)]), Ok(None));
    let wrapped = batch(1, 0, i32::MAX, 3, 5);
    assert_eq!(wrapped.meta.last_seq, 1);
    assert!(matches!(
        append(&mut table, &[wrapped]),
        Err(ProducerError::OutOfOrderSequence(_))
    ));
    assert_eq!(append(&mut table, &[batch(1, 0, 3, 1, 5)]), Ok(None));
}

#[test]
fn an_append_of_several_batches_is_checked_in_order_and_all_or_nothing() {
    let mut table = ProducerStateTable::default();
    append(&mut table, &[batch(1, 0, 0, 1, 0)]).unwrap();
    let before = table.clone();
    assert!(append(&mut table, &[batch(1, 0, 1, 1, 1), batch(1, 0, 5, 1, 2)]).is_err());
    assert_eq!(table, before);
    assert_eq!(
        append(&mut table, &[batch(1, 0, 1, 1, 1), batch(1, 0, 2, 1, 2)]),
        Ok(None)
    );
    assert_eq!(table.get(1).unwrap().batches.len(), 3);
}

#[test]
fn given_up_batches_are_forgotten() {
    let mut table = ProducerStateTable::default();
    append(&mut table, &[batch(1, 0, 0, 2, 0)]).unwrap();
    append(&mut table, &[batch(1, 0, 2, 2, 2)]).unwrap();
    append(&mut table, &[batch(2, 0, 0, 2, 4)]).unwrap();
    table.truncate_from(2);
    assert_eq!(table.get(1).unwrap().batches.len(), 1);
    assert!(table.get(2).is_none());
    // The retry of the given-up batch is appended again, not a duplicate.
    assert_eq!(append(&mut table, &[batch(1, 0, 2, 2, 2)]), Ok(None));
}

#[test]
fn idle_producers_expire() {
    let mut table = ProducerStateTable::default();
    append(&mut table, &[batch(1, 0, 0, 1, 0)]).unwrap(); // timestamp 1000
    append(&mut table, &[batch(2, 0, 0, 1, 500)]).unwrap(); // timestamp 1500
    assert_eq!(table.expire(1_999, 1_000), 0);
    assert_eq!(table.expire(2_000, 1_000), 1);
    assert!(table.get(1).is_none() && table.get(2).is_some());
}

#[test]
fn replay_rebuilds_what_appends_built() {
    let mut appended = ProducerStateTable::default();
    let mut replayed = ProducerStateTable::default();
    let batches = [
        batch(1, 0, 0, 2, 0),
        batch(2, 0, 0, 1, 2),
        batch(1, 0, 2, 1, 3),
        batch(1, 1, 0, 1, 4),
    ];
    for b in &batches {
        append(&mut appended, &[*b]).unwrap();
        replayed.replay(&ProducerAppend::Data(*b));
    }
    // A batch already covered (replay from an older offset) changes nothing.
    replayed.replay(&ProducerAppend::Data(batches[2]));
    assert_eq!(appended, replayed);
}

#[test]
fn snapshots_round_trip_and_damage_is_an_error() {
    let mut table = ProducerStateTable::default();
    for i in 0..7 {
        append(
            &mut table,
            &[batch(i64::from(i % 3), 0, i, 1, i64::from(i))],
        )
        .ok();
    }
    let bytes = table.encode();
    assert_eq!(ProducerStateTable::decode(&bytes).unwrap(), table);
    assert_eq!(
        ProducerStateTable::decode(&ProducerStateTable::default().encode()).unwrap(),
        ProducerStateTable::default()
    );
    for cut in 0..bytes.len() {
        assert!(
            ProducerStateTable::decode(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    for i in 0..bytes.len() {
        let mut flipped = bytes.clone();
        flipped[i] ^= 0x40;
        assert!(ProducerStateTable::decode(&flipped).is_err(), "flip at {i}");
    }
}

fn txn_batch(producer_id: i64, epoch: i16, first_seq: i32, offset: i64) -> ProducerAppend {
    ProducerAppend::Data(ProducerBatch {
        transactional: true,
        ..batch(producer_id, epoch, first_seq, 2, offset)
    })
}

fn marker(
    producer_id: i64,
    epoch: i16,
    coordinator_epoch: i32,
    commit: bool,
    offset: i64,
) -> ProducerAppend {
    ProducerAppend::Marker(ProducerMarker {
        marker: TxnMarker {
            producer_id,
            producer_epoch: epoch,
            coordinator_epoch,
            commit,
        },
        offset,
        timestamp: 5_000 + offset,
    })
}

/// Admits and commits one batch or marker; the completed transactions.
fn apply(
    table: &mut ProducerStateTable,
    append: ProducerAppend,
) -> Result<Vec<CompletedTxn>, ProducerError> {
    match table.admit(
        &[append],
        PARTITION,
        AppendOrigin::Client,
        TxnVerification::Off,
    )? {
        Admission::Append(update) => Ok(table.commit(update)),
        Admission::Duplicate(_) => panic!("not a duplicate"),
    }
}

#[test]
fn transactions_open_at_their_first_batch_and_markers_close_them() {
    let mut table = ProducerStateTable::default();
    assert_eq!(table.first_unstable_offset(), None);
    apply(&mut table, txn_batch(1, 0, 0, 10)).unwrap();
    apply(&mut table, txn_batch(2, 0, 0, 12)).unwrap();
    apply(&mut table, txn_batch(1, 0, 2, 14)).unwrap();
    assert_eq!(table.first_unstable_offset(), Some(10));
    assert_eq!(table.get(1).unwrap().txn_first_offset, Some(10));
    let committed = apply(&mut table, marker(1, 0, 3, true, 16)).unwrap();
    assert_eq!(
        committed,
        vec![CompletedTxn {
            producer_id: 1,
            first_offset: 10,
            last_offset: 16,
            aborted: false
        }]
    );
    assert_eq!(table.first_unstable_offset(), Some(12));
    let aborted = apply(&mut table, marker(2, 0, 3, false, 17)).unwrap();
    assert!(aborted[0].aborted && aborted[0].first_offset == 12);
    assert_eq!(table.first_unstable_offset(), None);
    // A marker of a transaction with no data here completes nothing.
    assert_eq!(apply(&mut table, marker(3, 0, 3, false, 18)), Ok(vec![]));
    let described = table.describe();
    assert_eq!(described.len(), 3);
    assert_eq!(described[0].coordinator_epoch, 3);
    assert_eq!(described[0].last_sequence, 3);
    assert_eq!(described[2].last_sequence, -1);
    assert!(described.iter().all(|d| d.txn_start_offset == -1));
}

#[test]
fn markers_of_old_epochs_and_coordinators_are_refused() {
    let mut table = ProducerStateTable::default();
    apply(&mut table, txn_batch(1, 2, 0, 0)).unwrap();
    assert!(matches!(
        apply(&mut table, marker(1, 1, 0, true, 2)),
        Err(ProducerError::InvalidProducerEpoch(_))
    ));
    apply(&mut table, marker(1, 2, 5, false, 2)).unwrap();
    apply(&mut table, txn_batch(1, 2, 2, 3)).unwrap();
    assert!(matches!(
        apply(&mut table, marker(1, 2, 4, true, 5)),
        Err(ProducerError::CoordinatorFenced(_))
    ));
    // A bumped epoch (the coordinator fencing the producer) ends it.
    apply(&mut table, marker(1, 3, 5, false, 5)).unwrap();
    assert_eq!(table.get(1).unwrap().epoch, 3);
    assert_eq!(table.first_unstable_offset(), None);
}

/// Transactions version 2: the marker carries the epoch the EndTxn
/// bumped; the next transaction starts there at sequence 0, and the old
/// epoch's late batches are fenced.
#[test]
fn a_bumped_epochs_marker_ends_the_transaction_and_the_next_starts_at_zero() {
    let mut table = ProducerStateTable::default();
    apply(&mut table, txn_batch(1, 4, 0, 0)).unwrap();
    apply(&mut table, txn_batch(1, 4, 2, 2)).unwrap();
    let committed = apply(&mut table, marker(1, 5, 0, true, 4)).unwrap();
    assert_eq!(
        (committed[0].first_offset, committed[0].aborted),
        (0, false)
    );
    assert_eq!(table.get(1).unwrap().epoch, 5);
    assert!(matches!(
        apply(&mut table, txn_batch(1, 4, 4, 5)),
        Err(ProducerError::InvalidProducerEpoch(_))
    ));
    // The marker brought the epoch with no batch: the second batch of
    // the next transaction may not come first (two requests in flight).
    assert!(matches!(
        apply(&mut table, txn_batch(1, 5, 2, 5)),
        Err(ProducerError::OutOfOrderSequence(_))
    ));
    apply(&mut table, txn_batch(1, 5, 0, 5)).unwrap();
    assert_eq!(table.first_unstable_offset(), Some(5));
    // An abort with nothing written here still moves the epoch on.
    apply(&mut table, marker(1, 6, 0, false, 7)).unwrap();
    apply(&mut table, marker(1, 7, 0, false, 8)).unwrap();
    assert_eq!(table.get(1).unwrap().epoch, 7);
    apply(&mut table, txn_batch(1, 7, 0, 9)).unwrap();
    // The same through a replay of the log.
    let mut replayed = ProducerStateTable::default();
    for append in [
        txn_batch(1, 4, 0, 0),
        marker(1, 5, 0, true, 4),
        txn_batch(1, 5, 0, 5),
    ] {
        replayed.replay(&append);
    }
    assert_eq!(replayed.get(1).unwrap().epoch, 5);
    assert_eq!(replayed.first_unstable_offset(), Some(5));
}

#[test]
fn a_plain_batch_inside_a_transaction_is_invalid_txn_state() {
    let mut table = ProducerStateTable::default();
    apply(&mut table, txn_batch(1, 0, 0, 0)).unwrap();
    assert!(matches!(
        append(&mut table, &[batch(1, 0, 2, 1, 2)]),
        Err(ProducerError::InvalidTxnState(_))
    ));
    apply(&mut table, marker(1, 0, 0, true, 2)).unwrap();
    assert_eq!(append(&mut table, &[batch(1, 0, 2, 1, 3)]), Ok(None));
}

#[test]
fn giving_up_undoes_transaction_starts_and_ends() {
    let mut table = ProducerStateTable::default();
    apply(&mut table, txn_batch(1, 0, 0, 0)).unwrap();
    apply(&mut table, marker(1, 0, 0, false, 2)).unwrap();
    apply(&mut table, txn_batch(2, 0, 0, 3)).unwrap();
    table.truncate_from(3);
    assert_eq!(table.first_unstable_offset(), None);
    assert!(table.get(2).is_none());
    table.truncate_from(2);
    assert_eq!(table.first_unstable_offset(), Some(0));
    // The retried marker completes the transaction again.
    let completed = apply(&mut table, marker(1, 0, 0, false, 2)).unwrap();
    assert_eq!(completed.len(), 1);
}

#[test]
fn replay_rebuilds_transactions_and_open_ones_do_not_expire() {
    let appends = [
        txn_batch(1, 0, 0, 0),
        txn_batch(2, 0, 0, 2),
        marker(1, 0, 1, false, 4),
        txn_batch(1, 0, 2, 5),
    ];
    let mut appended = ProducerStateTable::default();
    let mut replayed = ProducerStateTable::default();
    let mut completed = Vec::new();
    for append in appends {
        apply(&mut appended, append).unwrap();
        completed.extend(replayed.replay(&append));
    }
    assert_eq!(replayed.replay(&appends[2]), None);
    assert_eq!(appended, replayed);
    assert_eq!(completed.len(), 1);
    assert_eq!(replayed.first_unstable_offset(), Some(2));
    assert_eq!(replayed.expire(i64::MAX, 1), 0);
}

#[test]
fn snapshots_keep_open_transactions_and_read_version_one() {
    let mut table = ProducerStateTable::default();
    apply(&mut table, txn_batch(1, 0, 0, 0)).unwrap();
    apply(&mut table, marker(2, 4, 7, true, 2)).unwrap();
    append(&mut table, &[batch(3, 0, 0, 1, 3)]).unwrap();
    let decoded = ProducerStateTable::decode(&table.encode()).unwrap();
    assert_eq!(decoded.first_unstable_offset(), Some(0));
    assert_eq!(decoded.get(2).unwrap().coordinator_epoch, 7);
    assert_eq!(decoded.describe(), table.describe());
    // Version 1: producer 3 alone, as the idempotence release wrote it.
    let mut body = Vec::new();
    body.extend_from_slice(&1u32.to_be_bytes());
    body.extend_from_slice(&3i64.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&1_003i64.to_be_bytes());
    body.push(1);
    for field in [0i32, 0] {
        body.extend_from_slice(&field.to_be_bytes());
    }
    for field in [3i64, 3, 1_003] {
        body.extend_from_slice(&field.to_be_bytes());
    }
    let mut v1 = SNAPSHOT_MAGIC_V1.to_vec();
    v1.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    v1.extend_from_slice(&body);
    let old = ProducerStateTable::decode(&v1).unwrap();
    assert_eq!(old.get(3), table.get(3));
}

/// Admits and commits one batch or marker of a client under
/// `verification`.
fn apply_verified(
    table: &mut ProducerStateTable,
    append: ProducerAppend,
    verification: TxnVerification,
) -> Result<(), ProducerError> {
    match table.admit(&[append], PARTITION, AppendOrigin::Client, verification)? {
        Admission::Append(update) => {
            table.commit(update);
            Ok(())
        }
        Admission::Duplicate(_) => panic!("not a duplicate"),
    }
}

/// KIP-890: the first transactional batch of a transaction needs a guard;
/// the ones after it (the transaction is open here) need none.
#[test]
fn a_transactions_first_batch_needs_its_verification_guard() {
    let mut table = ProducerStateTable::default();
    assert_eq!(
        apply_verified(&mut table, txn_batch(1, 0, 0, 0), TxnVerification::Start),
        Err(ProducerError::Unverified {
            producer_id: 1,
            epoch: 0,
            first_seq: 0
        })
    );
    assert!(
        table.get(1).is_none(),
        "a refused first try changes nothing"
    );
    let guard = table.start_verification(1, (0, 0), 100);
    assert_eq!(
        table.start_verification(1, (0, 0), 200),
        guard,
        "one per producer"
    );
    assert!(matches!(
        apply_verified(
            &mut table,
            txn_batch(1, 0, 0, 0),
            TxnVerification::Verified(guard + 1)
        ),
        Err(ProducerError::InvalidTxnState(_))
    ));
    apply_verified(
        &mut table,
        txn_batch(1, 0, 0, 0),
        TxnVerification::Verified(guard),
    )
    .unwrap();
    assert_eq!(table.verifications(), 0, "the append ends the verification");
    apply_verified(&mut table, txn_batch(1, 0, 2, 2), TxnVerification::Start).unwrap();
    // Plain batches, and appends without verification, pass as before.
    apply_verified(
        &mut table,
        ProducerAppend::Data(batch(2, 0, 0, 1, 4)),
        TxnVerification::Start,
    )
    .unwrap();
    apply_verified(&mut table, txn_batch(3, 0, 0, 5), TxnVerification::Off).unwrap();
    assert_eq!(table.first_unstable_offset(), Some(0));
}

/// The hanging transaction KIP-890 closes: a batch verified in a
/// transaction whose abort marker got here first must not open a new
/// transaction nobody will end.
#[test]
fn a_guard_from_before_an_abort_marker_is_refused_after_it() {
    let mut table = ProducerStateTable::default();
    let guard = table.start_verification(1, (0, 0), 100);
    apply(&mut table, marker(1, 0, 0, false, 0)).unwrap();
    assert!(matches!(
        apply_verified(
            &mut table,
            txn_batch(1, 0, 0, 1),
            TxnVerification::Verified(guard)
        ),
        Err(ProducerError::InvalidTxnState(_))
    ));
    assert_eq!(table.first_unstable_offset(), None);
    // The client's retry verifies again, with a new guard.
    let again = table.start_verification(1, (0, 0), 300);
    assert_ne!(again, guard);
    apply_verified(
        &mut table,
        txn_batch(1, 0, 0, 1),
        TxnVerification::Verified(again),
    )
    .unwrap();
    assert_eq!(table.first_unstable_offset(), Some(1));
}

/// Two requests in flight wait for one verification: the later batch may
/// not be appended before the earlier (Kafka's lowest sequence), however
/// the coordinator's answers come back; a newer epoch starts over.
#[test]
fn a_later_batch_waiting_for_a_verification_may_not_come_first() {
    let mut table = ProducerStateTable::default();
    let guard = table.start_verification(1, (0, 2), 100);
    assert_eq!(table.start_verification(1, (0, 0), 100), guard);
    assert!(matches!(
        apply_verified(
            &mut table,
            txn_batch(1, 0, 2, 0),
            TxnVerification::Verified(guard)
        ),
        Err(ProducerError::BehindVerifying(_))
    ));
    apply_verified(
        &mut table,
        txn_batch(1, 0, 0, 0),
        TxnVerification::Verified(guard),
    )
    .unwrap();
    apply_verified(&mut table, txn_batch(1, 0, 2, 2), TxnVerification::Start).unwrap();
    let newer = table.start_verification(1, (1, 3), 200);
    assert_eq!(table.start_verification(1, (2, 5), 200), newer);
    assert_eq!(table.start_verification(1, (1, 0), 200), newer);
    assert!(matches!(
        apply_verified(
            &mut table,
            txn_batch(1, 2, 6, 4),
            TxnVerification::Verified(newer)
        ),
        Err(ProducerError::BehindVerifying(_))
    ));
}

/// A transaction open in an older epoch does not stand for the new one's.
#[test]
fn a_new_epoch_verifies_again() {
    let mut table = ProducerStateTable::default();
    apply_verified(&mut table, txn_batch(1, 0, 0, 0), TxnVerification::Off).unwrap();
    assert_eq!(
        apply_verified(&mut table, txn_batch(1, 1, 0, 2), TxnVerification::Start),
        Err(ProducerError::Unverified {
            producer_id: 1,
            epoch: 1,
            first_seq: 0
        })
    );
}

/// Verifications are bounded and expire with `producer.id.expiration.ms`.
#[test]
fn verifications_are_bounded_and_expire() {
    let mut table = ProducerStateTable::default();
    let first = table.start_verification(0, (0, 0), 0);
    for producer_id in 1..=verification::VERIFICATIONS_MAX as i64 {
        table.start_verification(producer_id, (0, 0), 10);
    }
    assert_eq!(table.verifications(), verification::VERIFICATIONS_MAX);
    assert!(
        matches!(
            apply_verified(
                &mut table,
                txn_batch(0, 0, 0, 0),
                TxnVerification::Verified(first)
            ),
            Err(ProducerError::InvalidTxnState(_))
        ),
        "the oldest was dropped"
    );
    table.expire(20, 10);
    assert_eq!(table.verifications(), 0);
}
