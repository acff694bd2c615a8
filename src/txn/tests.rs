//! The coordinator's operations walked the way the shard drives them:
//! every transit appended (or failed), then completed.

use kafka_protocol::error::ResponseError;

use super::*;

const TXN_PARTITION: i32 = 7;
const TIMEOUT_MS: i32 = 60_000;
const ID: &str = "tx";

/// A coordinator of `transaction.version` 1: the version 1 walks below
/// fence with one bump, as Kafka's do at that level.
fn coordinator() -> TxnCoordinator {
    TxnCoordinator::new(TxnConfig {
        transaction_version: 1,
        ..TxnConfig::default()
    })
}

/// Completes `transit` as durable and returns the answer.
fn durable(coordinator: &mut TxnCoordinator, transit: Transit) -> Completion {
    coordinator.complete(transit, Ok(()))
}

fn init(coordinator: &mut TxnCoordinator, now_ms: i64, new_id: i64) -> (i64, i16) {
    let transit = coordinator
        .init_producer_id(now_ms, TXN_PARTITION, ID, TIMEOUT_MS, None, Some(new_id))
        .unwrap();
    durable(coordinator, transit).answer.unwrap()
}

fn add(coordinator: &mut TxnCoordinator, now_ms: i64, producer: (i64, i16), partition: i32) {
    let parts = [("t".to_string(), partition)];
    if let Some(transit) = coordinator
        .add_partitions(now_ms, ID, producer.0, producer.1, &parts, TV_0)
        .unwrap()
    {
        durable(coordinator, transit).answer.unwrap();
    }
}

/// EndTxn, its markers all written, the Complete record durable.
fn end(coordinator: &mut TxnCoordinator, now_ms: i64, producer: (i64, i16), commit: bool) {
    let EndOutcome::Write(transit) = coordinator
        .end_txn(now_ms, ID, producer, commit, TV_0, None)
        .unwrap()
    else {
        panic!("expected a write");
    };
    let completion = durable(coordinator, transit);
    assert_eq!(completion.answer, Ok(producer));
    let job = completion.markers.unwrap();
    assert_eq!(job.commit, commit);
    finish_markers(coordinator, now_ms, &job);
}

fn finish_markers(coordinator: &mut TxnCoordinator, now_ms: i64, job: &MarkerJob) {
    let transit = coordinator.markers_written(now_ms, job).unwrap();
    durable(coordinator, transit).answer.unwrap();
}

fn state(coordinator: &TxnCoordinator) -> TxnState {
    coordinator.metadata(ID).unwrap().state
}

#[test]
fn a_new_id_gets_its_producer_id_at_epoch_zero() {
    let mut coordinator = coordinator();
    assert!(coordinator.needs_producer_id(ID));
    assert_eq!(init(&mut coordinator, 1, 4000), (4000, 0));
    assert_eq!(state(&coordinator), TxnState::Empty);
    assert!(!coordinator.needs_producer_id(ID));
    // Again: the same producer id, the epoch bumped.
    assert_eq!(init(&mut coordinator, 2, 9999), (4000, 1));
}

#[test]
fn commit_walks_ongoing_prepare_and_complete() {
    let mut coordinator = coordinator();
    let producer = init(&mut coordinator, 1, 4000);
    add(&mut coordinator, 10, producer, 0);
    assert_eq!(state(&coordinator), TxnState::Ongoing);
    assert_eq!(coordinator.metadata(ID).unwrap().start_ms, 10);
    add(&mut coordinator, 20, producer, 1);
    // Partitions already in: answered without a write.
    let again = coordinator.add_partitions(30, ID, 4000, 0, &[("t".into(), 1)], TV_0);
    assert_eq!(again, Ok(None));
    let EndOutcome::Write(transit) = coordinator
        .end_txn(40, ID, (4000, 0), true, TV_0, None)
        .unwrap()
    else {
        panic!()
    };
    // While the PrepareCommit record is written, everything else waits.
    assert_eq!(
        coordinator.add_partitions(41, ID, 4000, 0, &[("t".into(), 5)], TV_0),
        Err(ResponseError::ConcurrentTransactions)
    );
    let completion = durable(&mut coordinator, transit);
    assert_eq!(state(&coordinator), TxnState::PrepareCommit);
    let job = completion.markers.unwrap();
    assert_eq!(job.partitions, vec![("t".into(), 0), ("t".into(), 1)]);
    assert_eq!((job.producer_id, job.producer_epoch), (4000, 0));
    // A retry while markers are written, and the wrong direction.
    assert_eq!(
        coordinator.end_txn(42, ID, (4000, 0), true, TV_0, None),
        Err(ResponseError::ConcurrentTransactions)
    );
    finish_markers(&mut coordinator, 50, &job);
    assert_eq!(state(&coordinator), TxnState::CompleteCommit);
    assert!(coordinator.metadata(ID).unwrap().partitions.is_empty());
    // A retried commit is answered as done; an abort is refused.
    assert_eq!(
        coordinator.end_txn(60, ID, (4000, 0), true, TV_0, None),
        Ok(EndOutcome::Done(4000, 0))
    );
    assert_eq!(
        coordinator.end_txn(60, ID, (4000, 0), false, TV_0, None),
        Err(ResponseError::InvalidTxnState)
    );
    // The next transaction starts from CompleteCommit.
    add(&mut coordinator, 70, producer, 3);
    assert_eq!(coordinator.metadata(ID).unwrap().start_ms, 70);
}

#[test]
fn abort_completes_abort_and_end_in_empty_is_invalid() {
    let mut coordinator = coordinator();
    let producer = init(&mut coordinator, 1, 4000);
    assert_eq!(
        coordinator.end_txn(2, ID, (4000, 0), true, TV_0, None),
        Err(ResponseError::InvalidTxnState)
    );
    add(&mut coordinator, 3, producer, 0);
    end(&mut coordinator, 4, producer, false);
    assert_eq!(state(&coordinator), TxnState::CompleteAbort);
    assert_eq!(
        coordinator.end_txn(5, ID, (4000, 0), true, TV_0, None),
        Err(ResponseError::InvalidTxnState)
    );
}

#[test]
fn requests_with_a_stale_epoch_or_other_producer_id_are_refused() {
    let mut coordinator = coordinator();
    init(&mut coordinator, 1, 4000);
    let producer = init(&mut coordinator, 2, 0);
    assert_eq!(producer, (4000, 1));
    let parts = [("t".to_string(), 0)];
    assert_eq!(
        coordinator.add_partitions(3, ID, 4000, 0, &parts, TV_0),
        Err(ResponseError::ProducerFenced)
    );
    assert_eq!(
        coordinator.add_partitions(3, ID, 4001, 1, &parts, TV_0),
        Err(ResponseError::InvalidProducerIdMapping)
    );
    assert_eq!(
        coordinator.add_partitions(3, "other", 4000, 1, &parts, TV_0),
        Err(ResponseError::InvalidProducerIdMapping)
    );
    assert_eq!(
        coordinator.end_txn(3, ID, (4000, 0), true, TV_0, None),
        Err(ResponseError::ProducerFenced)
    );
}

#[test]
fn init_during_a_transaction_fences_and_aborts_it_first() {
    let mut coordinator = coordinator();
    let old = init(&mut coordinator, 1, 4000);
    add(&mut coordinator, 2, old, 0);
    let transit = coordinator
        .init_producer_id(3, TXN_PARTITION, ID, TIMEOUT_MS, None, None)
        .unwrap();
    let completion = durable(&mut coordinator, transit);
    assert_eq!(
        completion.answer,
        Err(ResponseError::ConcurrentTransactions)
    );
    assert_eq!(state(&coordinator), TxnState::PrepareAbort);
    let job = completion.markers.unwrap();
    // The abort markers carry the bumped epoch: they fence the old producer.
    assert_eq!((job.producer_epoch, job.commit), (1, false));
    assert_eq!(
        coordinator.end_txn(4, ID, old, true, TV_0, None),
        Err(ResponseError::ProducerFenced)
    );
    // The new producer retries while the markers are written...
    assert_eq!(
        coordinator.init_producer_id(4, TXN_PARTITION, ID, TIMEOUT_MS, None, None),
        Err(ResponseError::ConcurrentTransactions)
    );
    finish_markers(&mut coordinator, 5, &job);
    // ...and then gets an epoch above the fence's.
    assert_eq!(init(&mut coordinator, 6, 0), (4000, 2));
}

#[test]
fn a_failed_fence_keeps_its_epoch_and_does_not_bump_twice() {
    let mut coordinator = coordinator();
    let producer = init(&mut coordinator, 1, 4000);
    add(&mut coordinator, 2, producer, 0);
    let transit = coordinator
        .init_producer_id(3, TXN_PARTITION, ID, TIMEOUT_MS, None, None)
        .unwrap();
    let completion = coordinator.complete(transit, Err(ResponseError::NotCoordinator));
    assert_eq!(completion.answer, Err(ResponseError::NotCoordinator));
    let txn = coordinator.metadata(ID).unwrap();
    assert_eq!((txn.state, txn.producer_epoch), (TxnState::Ongoing, 1));
    let transit = coordinator
        .init_producer_id(4, TXN_PARTITION, ID, TIMEOUT_MS, None, None)
        .unwrap();
    let job = durable(&mut coordinator, transit).markers.unwrap();
    assert_eq!(job.producer_epoch, 1);
}

#[test]
fn a_failed_append_leaves_the_state_as_it_was() {
    let mut coordinator = coordinator();
    let producer = init(&mut coordinator, 1, 4000);
    let transit = coordinator
        .add_partitions(2, ID, 4000, 0, &[("t".into(), 0)], TV_0)
        .unwrap()
        .unwrap();
    let completion = coordinator.complete(transit, Err(ResponseError::NotCoordinator));
    assert_eq!(completion.answer, Err(ResponseError::NotCoordinator));
    assert_eq!(state(&coordinator), TxnState::Empty);
    add(&mut coordinator, 3, producer, 0);
    assert_eq!(state(&coordinator), TxnState::Ongoing);
}

#[test]
fn timeouts_above_the_maximum_are_refused() {
    let mut coordinator = coordinator();
    let max = coordinator.config().max_timeout_ms;
    for timeout_ms in [0, max + 1] {
        assert_eq!(
            coordinator.init_producer_id(1, TXN_PARTITION, ID, timeout_ms, None, Some(1)),
            Err(ResponseError::InvalidTransactionTimeout)
        );
    }
    for id in [String::new(), "x".repeat(records::STRING_BYTES_MAX + 1)] {
        assert_eq!(
            coordinator.init_producer_id(1, TXN_PARTITION, &id, TIMEOUT_MS, None, Some(1)),
            Err(ResponseError::InvalidRequest)
        );
    }
}

#[test]
fn exhausted_epochs_rotate_the_producer_id() {
    let mut coordinator = coordinator();
    init(&mut coordinator, 1, 4000);
    let mut txn = coordinator.metadata(ID).unwrap().clone();
    txn.producer_epoch = i16::MAX - 1;
    let record = records::encode_value(&records::TxnValue::of(&txn), records::VALUE_VERSION);
    coordinator
        .replay(TXN_PARTITION, &records::encode_key(ID), Some(&record))
        .unwrap();
    assert!(coordinator.needs_producer_id(ID));
    assert_eq!(init(&mut coordinator, 2, 5000), (5000, 0));
    assert_eq!(coordinator.metadata(ID).unwrap().previous_producer_id, 4000);
}

#[test]
fn kip_360_init_checks_the_producer_it_is_given() {
    let mut coordinator = coordinator();
    init(&mut coordinator, 1, 4000);
    let bump = |coordinator: &mut TxnCoordinator, expected| {
        coordinator
            .init_producer_id(2, TXN_PARTITION, ID, TIMEOUT_MS, Some(expected), None)
            .map(|transit| durable(coordinator, transit).answer)
    };
    // The current epoch: bumped, the old one remembered.
    assert_eq!(bump(&mut coordinator, (4000, 0)), Ok(Ok((4000, 1))));
    // A retry of that bump gets the same answer.
    assert_eq!(bump(&mut coordinator, (4000, 0)), Ok(Ok((4000, 1))));
    // Another producer id, or an epoch neither current nor last: fenced.
    assert_eq!(
        bump(&mut coordinator, (4001, 1)),
        Err(ResponseError::ProducerFenced)
    );
    assert_eq!(
        bump(&mut coordinator, (4000, 7)),
        Err(ResponseError::ProducerFenced)
    );
}

#[test]
fn a_transaction_past_its_timeout_is_aborted_with_an_epoch_bump() {
    let mut coordinator = coordinator();
    let producer = init(&mut coordinator, 1, 4000);
    add(&mut coordinator, 100, producer, 0);
    assert!(coordinator
        .abort_timed_out(100 + TIMEOUT_MS as i64)
        .is_empty());
    let transits = coordinator.abort_timed_out(101 + TIMEOUT_MS as i64);
    assert_eq!(transits.len(), 1);
    // Not twice while the first is in flight.
    assert!(coordinator.abort_timed_out(200_000).is_empty());
    let transit = transits.into_iter().next().unwrap();
    let job = durable(&mut coordinator, transit).markers.unwrap();
    assert_eq!((job.producer_epoch, job.commit), (1, false));
    finish_markers(&mut coordinator, 200_000, &job);
    assert_eq!(state(&coordinator), TxnState::CompleteAbort);
    assert_eq!(
        coordinator.end_txn(200_001, ID, (4000, 0), true, TV_0, None),
        Err(ResponseError::ProducerFenced)
    );
}

#[test]
fn idle_ids_expire_with_a_tombstone() {
    let mut coordinator = coordinator();
    let producer = init(&mut coordinator, 1, 4000);
    add(&mut coordinator, 2, producer, 0);
    let expiration_ms = coordinator.config().id_expiration_ms;
    // An ongoing transaction never expires.
    assert!(coordinator.expire(10 + expiration_ms).is_empty());
    end(&mut coordinator, 3, producer, true);
    assert!(coordinator.expire(2 + expiration_ms).is_empty());
    let transits = coordinator.expire(3 + expiration_ms);
    assert_eq!(transits.len(), 1);
    assert_eq!(transits[0].record.value, None);
    assert_eq!(transits[0].record.partition, TXN_PARTITION);
    let transit = transits.into_iter().next().unwrap();
    durable(&mut coordinator, transit);
    assert!(coordinator.metadata(ID).is_none());
    assert_eq!(
        coordinator.describe(ID),
        Err(ResponseError::TransactionalIdNotFound)
    );
}

#[test]
fn replay_rebuilds_the_state_and_resumes_prepared_markers() {
    let mut coordinator = coordinator();
    let producer = init(&mut coordinator, 1, 4000);
    let mut written = Vec::new();
    let mut keep = |transit: &Transit| written.push(transit.record.clone());
    let transit = coordinator
        .add_partitions(2, ID, 4000, 0, &[("t".into(), 0), ("u".into(), 2)], TV_0)
        .unwrap()
        .unwrap();
    keep(&transit);
    durable(&mut coordinator, transit);
    let EndOutcome::Write(transit) = coordinator
        .end_txn(3, ID, (4000, 0), true, TV_0, None)
        .unwrap()
    else {
        panic!()
    };
    keep(&transit);
    let job = durable(&mut coordinator, transit).markers.unwrap();

    // A restart before the markers were all written.
    let mut reloaded = TxnCoordinator::new(TxnConfig::default());
    for record in &written {
        reloaded
            .replay(record.partition, &record.key, record.value.as_deref())
            .unwrap();
    }
    let jobs = reloaded.loaded(TXN_PARTITION);
    assert_eq!(jobs, vec![job.clone()]);
    assert_eq!(
        reloaded.metadata(ID).unwrap().state,
        TxnState::PrepareCommit
    );
    finish_markers(&mut reloaded, 4, &job);
    assert_eq!(
        reloaded.end_txn(5, ID, producer, true, TV_0, None),
        Ok(EndOutcome::Done(4000, 0))
    );
    // A tombstone forgets the id.
    reloaded
        .replay(TXN_PARTITION, &records::encode_key(ID), None)
        .unwrap();
    assert!(reloaded.metadata(ID).is_none());
}

#[test]
fn verify_only_reports_partitions_outside_the_transaction() {
    let mut coordinator = coordinator();
    let producer = init(&mut coordinator, 1, 4000);
    add(&mut coordinator, 2, producer, 0);
    let parts = [("t".to_string(), 0), ("t".to_string(), 1)];
    assert_eq!(
        coordinator.verify_partitions(ID, 4000, 0, &parts),
        Ok(vec![None, Some(ResponseError::TransactionAbortable)])
    );
    assert_eq!(
        coordinator.verify_partitions(ID, 4000, 1, &parts),
        Err(ResponseError::ProducerFenced)
    );
}

#[test]
fn describe_and_list_filter_as_kafka() {
    let mut coordinator = coordinator();
    let producer = init(&mut coordinator, 1, 4000);
    add(&mut coordinator, 10, producer, 0);
    let described = coordinator.describe(ID).unwrap();
    assert_eq!(described.state, TxnState::Ongoing);
    assert_eq!((described.producer_id, described.start_ms), (4000, 10));
    assert_eq!(described.timeout_ms, TIMEOUT_MS);
    assert_eq!(coordinator.describe(""), Err(ResponseError::InvalidRequest));
    let ids = |listed: Vec<ListedTxn>| listed.len();
    assert_eq!(ids(coordinator.list(20, &[], &[], -1)), 1);
    assert_eq!(ids(coordinator.list(20, &[TxnState::Empty], &[], -1)), 0);
    assert_eq!(ids(coordinator.list(20, &[TxnState::Ongoing], &[], -1)), 1);
    assert_eq!(ids(coordinator.list(20, &[], &[1], -1)), 0);
    assert_eq!(ids(coordinator.list(20, &[], &[4000], -1)), 1);
    assert_eq!(ids(coordinator.list(20, &[], &[], 10)), 0);
    assert_eq!(ids(coordinator.list(20, &[], &[], 9)), 1);
}

/// Transactions version 2 (KIP-890 part 2): a coordinator of the default
/// `transaction.version` 2 and EndTxn v5 clients.
mod version_2 {
    use super::*;

    fn coordinator() -> TxnCoordinator {
        TxnCoordinator::new(TxnConfig::default())
    }

    fn add(coordinator: &mut TxnCoordinator, now_ms: i64, producer: (i64, i16), partition: i32) {
        let parts = [("t".to_string(), partition)];
        if let Some(transit) = coordinator
            .add_partitions(now_ms, ID, producer.0, producer.1, &parts, TV_2)
            .unwrap()
        {
            durable(coordinator, transit).answer.unwrap();
        }
    }

    fn end_v2(
        coordinator: &mut TxnCoordinator,
        now_ms: i64,
        producer: (i64, i16),
        commit: bool,
        new_id: Option<i64>,
    ) -> Result<EndOutcome, ResponseError> {
        coordinator.end_txn(now_ms, ID, producer, commit, TV_2, new_id)
    }

    /// EndTxn written durably: its answer and the markers to write.
    fn prepare(
        coordinator: &mut TxnCoordinator,
        now_ms: i64,
        producer: (i64, i16),
        commit: bool,
        new_id: Option<i64>,
    ) -> ((i64, i16), MarkerJob) {
        let Ok(EndOutcome::Write(transit)) = end_v2(coordinator, now_ms, producer, commit, new_id)
        else {
            panic!("expected a write");
        };
        // Level 2 writes the flexible value v1.
        assert_eq!(&transit.record.value.as_ref().unwrap()[..2], &[0, 1]);
        let completion = durable(coordinator, transit);
        (completion.answer.unwrap(), completion.markers.unwrap())
    }

    #[test]
    fn every_end_bumps_the_epoch_and_its_markers_carry_it() {
        let mut coordinator = coordinator();
        let producer = init(&mut coordinator, 1, 4000);
        assert_eq!(producer, (4000, 0));
        add(&mut coordinator, 2, producer, 0);
        let (answer, job) = prepare(&mut coordinator, 3, producer, true, None);
        assert_eq!(answer, (4000, 1));
        assert_eq!((job.producer_id, job.producer_epoch), (4000, 1));
        // The next transaction's first add, at the new epoch, waits for
        // the markers; the old epoch is fenced.
        let parts = [("t".to_string(), 1)];
        assert_eq!(
            coordinator.add_partitions(4, ID, 4000, 1, &parts, TV_2),
            Err(ResponseError::ConcurrentTransactions)
        );
        // A retry while the markers are written.
        assert_eq!(
            end_v2(&mut coordinator, 4, producer, true, None),
            Err(ResponseError::ConcurrentTransactions)
        );
        finish_markers(&mut coordinator, 5, &job);
        assert_eq!(state(&coordinator), TxnState::CompleteCommit);
        // A retry after completion: the same answer; the other way is
        // refused.
        assert_eq!(
            end_v2(&mut coordinator, 6, producer, true, None),
            Ok(EndOutcome::Done(4000, 1))
        );
        assert_eq!(
            end_v2(&mut coordinator, 6, producer, false, None),
            Err(ResponseError::InvalidTxnState)
        );
        assert_eq!(
            coordinator.add_partitions(7, ID, 4000, 0, &parts, TV_2),
            Err(ResponseError::ProducerFenced)
        );
        add(&mut coordinator, 7, (4000, 1), 1);
        let (answer, job) = prepare(&mut coordinator, 8, (4000, 1), false, None);
        assert_eq!(answer, (4000, 2));
        assert!(!job.commit && job.producer_epoch == 2);
        finish_markers(&mut coordinator, 9, &job);
        assert_eq!(state(&coordinator), TxnState::CompleteAbort);
        // A stale epoch two below is no retry.
        assert_eq!(
            end_v2(&mut coordinator, 10, producer, false, None),
            Err(ResponseError::ProducerFenced)
        );
    }

    #[test]
    fn an_abort_with_nothing_added_bumps_the_epoch_too() {
        let mut coordinator = coordinator();
        let producer = init(&mut coordinator, 1, 4000);
        assert_eq!(
            end_v2(&mut coordinator, 2, producer, true, None),
            Err(ResponseError::InvalidTxnState)
        );
        let (answer, job) = prepare(&mut coordinator, 2, producer, false, None);
        assert_eq!(answer, (4000, 1));
        assert!(job.partitions.is_empty());
        finish_markers(&mut coordinator, 3, &job);
        assert_eq!(state(&coordinator), TxnState::CompleteAbort);
        assert_eq!(
            end_v2(&mut coordinator, 4, producer, false, None),
            Ok(EndOutcome::Done(4000, 1))
        );
    }

    /// A coordinator whose producer 4000 is in a version 2 transaction on
    /// ("t", 0) at the last epoch before the maximum, as replayed from
    /// its log.
    fn ongoing_at_the_last_epoch() -> TxnCoordinator {
        let mut coordinator = coordinator();
        init(&mut coordinator, 1, 4000);
        let mut txn = coordinator.metadata(ID).unwrap().clone();
        txn.producer_epoch = i16::MAX - 1;
        txn.state = TxnState::Ongoing;
        txn.partitions.insert(("t".to_string(), 0));
        txn.client_transaction_version = TV_2;
        let value = records::TxnValue::of(&txn);
        let record = records::encode_value(&value, records::FLEXIBLE_VALUE_VERSION);
        coordinator
            .replay(TXN_PARTITION, &records::encode_key(ID), Some(&record))
            .unwrap();
        coordinator
    }

    #[test]
    fn the_last_epoch_rotates_the_producer_id_once_the_markers_are_written() {
        let mut coordinator = ongoing_at_the_last_epoch();
        let last = (4000, i16::MAX - 1);
        assert!(coordinator.end_needs_producer_id(ID, TV_2));
        assert!(!coordinator.end_needs_producer_id(ID, TV_0));
        // Without the new id the caller is told to retry.
        assert_eq!(
            end_v2(&mut coordinator, 2, last, true, None),
            Err(ResponseError::ConcurrentTransactions)
        );
        let (answer, job) = prepare(&mut coordinator, 2, last, true, Some(5000));
        assert_eq!(answer, (5000, 0));
        // The markers fence the old id at its very last epoch.
        assert_eq!((job.producer_id, job.producer_epoch), (4000, i16::MAX));
        let parts = [("t".to_string(), 1)];
        assert_eq!(
            coordinator.add_partitions(3, ID, 5000, 0, &parts, TV_2),
            Err(ResponseError::ConcurrentTransactions)
        );
        finish_markers(&mut coordinator, 3, &job);
        let metadata = coordinator.metadata(ID).unwrap();
        assert_eq!((metadata.producer_id, metadata.producer_epoch), (5000, 0));
        assert_eq!(metadata.previous_producer_id, 4000);
        assert_eq!(metadata.next_producer_id, NO_PRODUCER_ID);
        // The retry of that EndTxn names the old id.
        assert_eq!(
            end_v2(&mut coordinator, 4, last, true, None),
            Ok(EndOutcome::Done(5000, 0))
        );
        add(&mut coordinator, 5, (5000, 0), 1);
        assert_eq!(
            prepare(&mut coordinator, 6, (5000, 0), true, None).0,
            (5000, 1)
        );
    }

    #[test]
    fn a_rotation_in_flight_survives_a_restart() {
        let mut coordinator = ongoing_at_the_last_epoch();
        let Ok(EndOutcome::Write(transit)) =
            end_v2(&mut coordinator, 2, (4000, i16::MAX - 1), false, Some(5000))
        else {
            panic!("expected a write");
        };
        let prepared = transit.record.clone();
        let job = durable(&mut coordinator, transit).markers.unwrap();
        let mut reloaded = coordinator_v2_replaying(&prepared);
        assert_eq!(reloaded.loaded(TXN_PARTITION), vec![job.clone()]);
        finish_markers(&mut reloaded, 3, &job);
        let metadata = reloaded.metadata(ID).unwrap();
        assert_eq!(
            (
                metadata.producer_id,
                metadata.producer_epoch,
                metadata.state
            ),
            (5000, 0, TxnState::CompleteAbort)
        );
    }

    fn coordinator_v2_replaying(record: &Record) -> TxnCoordinator {
        let mut reloaded = coordinator();
        reloaded
            .replay(record.partition, &record.key, record.value.as_deref())
            .unwrap();
        reloaded
    }

    #[test]
    fn a_timed_out_transaction_is_fenced_then_aborted_with_a_second_bump() {
        let mut coordinator = coordinator();
        let producer = init(&mut coordinator, 1, 4000);
        add(&mut coordinator, 100, producer, 0);
        let transit = coordinator
            .abort_timed_out(101 + TIMEOUT_MS as i64)
            .into_iter()
            .next()
            .unwrap();
        let job = durable(&mut coordinator, transit).markers.unwrap();
        assert_eq!(job.producer_epoch, 2);
        finish_markers(&mut coordinator, 200_000, &job);
        // The producer's own abort at its epoch is no retry of this one.
        assert_eq!(
            end_v2(&mut coordinator, 200_001, producer, false, None),
            Err(ResponseError::ProducerFenced)
        );
    }

    #[test]
    fn level_zero_writes_value_v0() {
        let mut coordinator = TxnCoordinator::new(TxnConfig {
            transaction_version: 0,
            ..TxnConfig::default()
        });
        let transit = coordinator
            .init_producer_id(1, TXN_PARTITION, ID, TIMEOUT_MS, None, Some(4000))
            .unwrap();
        assert_eq!(&transit.record.value.as_ref().unwrap()[..2], &[0, 0]);
    }
}
