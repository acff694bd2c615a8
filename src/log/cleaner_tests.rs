//! Compaction of a `PartitionLog`, end to end: append keyed records, clean,
//! read back, reopen. Beside `cleaner.rs`, whose pieces these drive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::partition::tests::{as_producer, read_all, small_config, with_dir};
use super::{AppendWait, CleanerBudget, LogConfig, PartitionLog, ShardLoad};
use crate::protocol::batch::tests::CODECS;
use crate::protocol::batch::{
    validate_stored, BatchHeader, ATTR_COMPRESSION_MASK, ATTR_CONTROL, ATTR_TRANSACTIONAL,
};
use crate::protocol::batch_records::ATTR_DELETE_HORIZON;
use crate::protocol::records::{decode_records, encode_batch, ProducerRecord, TxnMarker};

/// Room for every key the tests use.
const MAP_BYTES: usize = 1 << 20;
/// A wall-clock time for the tests' records and passes.
const NOW_MS: i64 = 1_700_000_000_000;
/// A cleaner with a map of `map_bytes` and no IO limit.
fn budget(map_bytes: usize) -> CleanerBudget {
    CleanerBudget {
        map_bytes,
        io_bytes_per_second: f64::MAX,
    }
}

/// A compacted topic's log config with the small segments of `small_config`.
fn compacted() -> LogConfig {
    LogConfig {
        compact: true,
        retention_ms: -1,
        min_cleanable_dirty_ratio: 0.0,
        ..small_config(0)
    }
}

/// `compacted()` keeping tombstones and markers a minute.
fn compacted_keeping_deletes() -> LogConfig {
    LogConfig {
        delete_retention_ms: 60_000,
        ..compacted()
    }
}

type Entry<'a> = (Option<&'a str>, Option<&'a str>);

/// One batch of `(key, value)` records stamped `timestamp`.
fn batch(records: &[Entry<'_>], codec: Compression, timestamp: i64) -> BytesMut {
    let records: Vec<ProducerRecord> = records
        .iter()
        .map(|(key, value)| ProducerRecord {
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
        })
        .collect();
    BytesMut::from(&encode_batch(&records, codec, timestamp).unwrap()[..])
}

async fn append(log: &Rc<PartitionLog>, records: &[Entry<'_>], codec: Compression, ts: i64) {
    log.append(batch(records, codec, ts), AppendWait::Durable, None)
        .await
        .unwrap();
}

/// `rounds` rounds of one single-record batch per key: key `k{i}` gets
/// value `v{round}-{i}` (tombstones where `tombstone(round, i)`).
async fn churn(
    log: &Rc<PartitionLog>,
    keys: usize,
    rounds: usize,
    tombstone: impl Fn(usize, usize) -> bool,
) {
    for round in 0..rounds {
        for i in 0..keys {
            let key = format!("k{i}");
            let value = format!("v{round}-{i}");
            let value = (!tombstone(round, i)).then_some(value.as_str());
            append(log, &[(Some(&key), value)], Compression::None, NOW_MS).await;
        }
    }
}

/// (offset, key, value) of every record readable, in offset order.
type Read = Vec<(i64, Option<Bytes>, Option<Bytes>)>;

async fn contents(log: &PartitionLog) -> Read {
    let batches = read_all(log).await;
    let mut out = Vec::new();
    for batch in batches {
        assert!(validate_stored(&batch, usize::MAX).is_ok());
        for record in decode_records(&batch, 0).unwrap().records {
            out.push((record.offset, record.key, record.value));
        }
    }
    assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "offsets increase");
    out
}

/// Checks that below `cleaned_end` every key is read once.
fn assert_keys_once(read: &Read, cleaned_end: i64) {
    let mut keys: Vec<_> = read
        .iter()
        .filter(|(offset, ..)| *offset < cleaned_end)
        .map(|(_, key, _)| key.clone())
        .collect();
    let total = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), total, "a key twice below offset {cleaned_end}");
}

/// The latest value of every key, `None` for a tombstone.
fn latest(read: &Read) -> BTreeMap<Bytes, Option<Bytes>> {
    read.iter()
        .filter_map(|(_, key, value)| Some((key.clone()?, value.clone())))
        .collect()
}

/// (base offset, last offset) of every batch readable.
async fn batch_offsets(log: &PartitionLog) -> Vec<(i64, i64)> {
    let batches = read_all(log).await;
    batches
        .iter()
        .map(|b| {
            let header = BatchHeader::view(b).unwrap();
            (header.base_offset.get(), header.last_offset())
        })
        .collect()
}

fn files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == extension))
        .collect();
    files.sort();
    files
}

#[test]
fn latest_value_of_every_key_wins_and_offsets_stay() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir.clone(), compacted()).await.unwrap();
        churn(&log, 10, 16, |_, _| false).await;
        let before = contents(&log).await;
        let end = log.log_end_offset();
        let segments = log.segment_count();
        assert!(segments > 3);
        let active = files(&dir, "log").pop().unwrap();
        let active_bytes = std::fs::read(&active).unwrap();

        let outcome = log.clean(NOW_MS, budget(MAP_BYTES), None).await.unwrap();
        assert!(outcome.records_removed > 0);
        assert!(outcome.bytes_after < outcome.bytes_before);
        // Segments shrunk by this pass merge in the next, as in Kafka.
        log.clean(NOW_MS, budget(MAP_BYTES), None).await.unwrap();
        assert!(log.segment_count() < segments, "small segments merge");
        let after = contents(&log).await;
        assert_eq!(latest(&after), latest(&before));
        assert!(after.len() < before.len());
        // Every record left is the one written at its offset.
        for record in &after {
            assert!(before.contains(record), "{record:?}");
        }
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(
            std::fs::read(&active).unwrap(),
            active_bytes,
            "active untouched"
        );
        // The cleaned section holds each key once.
        let cleaned_end = outcome.cleaner_offset;
        assert_keys_once(&after, cleaned_end);
        // Nothing dirty is left but the active segment.
        assert!(log.cleaning_need(NOW_MS).is_none());
        // Appends go on at the log end offset, and all survives a reopen.
        append(
            &log,
            &[(Some("k0"), Some("last"))],
            Compression::None,
            NOW_MS,
        )
        .await;
        assert_eq!(log.log_end_offset(), end + 1);
        let expected = contents(&log).await;
        log.close().await.unwrap();
        let log = PartitionLog::open(dir, compacted()).await.unwrap();
        assert_eq!(log.recovery_scanned_bytes(), 0);
        assert_eq!(contents(&log).await, expected);
    });
}

#[test]
fn kept_batches_keep_their_offsets_and_the_last_one_stays() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir.clone(), compacted()).await.unwrap();
        churn(&log, 5, 12, |_, _| false).await;
        let before = batch_offsets(&log).await;
        let outcome = log.clean(NOW_MS, budget(MAP_BYTES), None).await.unwrap();
        let after = batch_offsets(&log).await;
        for offsets in &after {
            assert!(before.contains(offsets), "{offsets:?} is a batch of before");
        }
        // Each cleaned segment still ends where the segments it replaced
        // ended: the next segment's base offset.
        let bases: Vec<i64> = files(&dir, "log")
            .iter()
            .map(|p| p.file_stem().unwrap().to_str().unwrap().parse().unwrap())
            .collect();
        for pair in bases.windows(2) {
            assert!(
                after.iter().any(|&(_, last)| last + 1 == pair[1]),
                "a batch ends right before segment {}",
                pair[1]
            );
        }
        assert!(outcome.segments_after >= 1);
    });
}

#[test]
fn tombstones_stay_for_delete_retention_then_go() {
    with_dir(|dir| async move {
        let config = compacted_keeping_deletes();
        let log = PartitionLog::open(dir.clone(), config.clone())
            .await
            .unwrap();
        // k0..k4 written, then k1 and k3 deleted, then more of the rest.
        churn(&log, 5, 2, |_, _| false).await;
        churn(&log, 5, 1, |_, i| i == 1 || i == 3).await;
        churn(&log, 5, 6, |_, i| i == 1 || i == 3).await;
        // Only tombstones for k1 and k3 are left after the third round.
        let first = log.clean(NOW_MS, budget(MAP_BYTES), None).await.unwrap();
        assert!(first.records_removed > 0);
        let after_first = latest(&contents(&log).await);
        assert_eq!(after_first.get(&Bytes::from("k1")), Some(&None));
        assert_eq!(after_first.get(&Bytes::from("k3")), Some(&None));
        assert!(after_first.get(&Bytes::from("k0")).unwrap().is_some());
        // Before the horizon nothing is due and a pass keeps them.
        assert!(log.cleaning_need(NOW_MS + 59_999).is_none());
        log.clean(NOW_MS + 59_999, budget(MAP_BYTES), None)
            .await
            .unwrap();
        assert_eq!(latest(&contents(&log).await), after_first);
        // The horizon survives a restart.
        log.close().await.unwrap();
        let log = PartitionLog::open(dir, config).await.unwrap();
        let need = log.cleaning_need(NOW_MS + 60_000).unwrap();
        assert!(need.urgent);
        let last = log
            .clean(NOW_MS + 60_000, budget(MAP_BYTES), None)
            .await
            .unwrap();
        let gone = latest(&contents(&log).await);
        // Tombstones in the active segment are not cleaned yet.
        let cleaned: Vec<_> = contents(&log)
            .await
            .into_iter()
            .filter(|(_, _, value)| value.is_none())
            .collect();
        for (offset, ..) in &cleaned {
            assert!(*offset >= last.cleaner_offset, "tombstone at {offset}");
        }
        assert!(gone.get(&Bytes::from("k0")).unwrap().is_some());
        assert!(log.cleaning_need(NOW_MS + 60_000).is_none());
    });
}

#[test]
fn compressed_batches_are_recompressed_with_their_codec() {
    for codec in CODECS {
        with_dir(move |dir| async move {
            let log = PartitionLog::open(dir, compacted()).await.unwrap();
            for round in 0..40 {
                let values: Vec<String> = (0..6).map(|i| format!("r{round}-{i}")).collect();
                // Duplicate keys inside a batch too: a, b, a, c, b, a.
                let keys = ["a", "b", "a", "c", "b", "a"];
                let records: Vec<Entry<'_>> = keys
                    .iter()
                    .zip(&values)
                    .map(|(k, v)| (Some(*k), Some(v.as_str())))
                    .collect();
                append(&log, &records, codec, NOW_MS).await;
            }
            let before = contents(&log).await;
            log.clean(NOW_MS, budget(MAP_BYTES), None).await.unwrap();
            let after = contents(&log).await;
            assert_eq!(latest(&after), latest(&before), "{codec:?}");
            assert!(after.len() < before.len());
            let batches = read_all(&log).await;
            for batch in &batches {
                let header = BatchHeader::view(batch).unwrap();
                if header.records_count.get() > 0 {
                    assert_eq!(
                        header.attributes.get() & ATTR_COMPRESSION_MASK,
                        codec as i16
                    );
                }
            }
        });
    }
}

/// A transaction commit marker as a coordinator writes it.
fn control_batch() -> BytesMut {
    let record = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: 9,
        producer_epoch: 1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: NOW_MS,
        // ControlRecordType v0, COMMIT; value: version 0, coordinator epoch 3.
        key: Some(Bytes::from_static(&[0, 0, 0, 1])),
        value: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 3])),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, [&record], &options).unwrap();
    buf
}

/// The attributes of a transaction marker.
const MARKER: i16 = ATTR_TRANSACTIONAL | ATTR_CONTROL;

/// The header of the batch at `offset`, if one is readable there.
async fn header_at(log: &PartitionLog, offset: i64) -> Option<(i16, i64, i32)> {
    read_all(log).await.iter().find_map(|b| {
        let header = BatchHeader::view(b).unwrap();
        (header.base_offset.get() == offset).then(|| {
            (
                header.attributes.get(),
                header.base_timestamp.get(),
                header.records_count.get(),
            )
        })
    })
}

/// A marker with no transaction behind it may go, after
/// `delete.retention.ms`; as the last record of its producer (which has no
/// data batch) it stays, emptied.
#[test]
fn a_marker_without_data_follows_its_horizon_keyless_records_go() {
    with_dir(|dir| async move {
        let config = compacted_keeping_deletes();
        let log = PartitionLog::open(dir, config).await.unwrap();
        append(
            &log,
            &[(Some("a"), Some("1")), (None, Some("keyless"))],
            Compression::None,
            NOW_MS,
        )
        .await;
        let marker = log
            .append(control_batch(), AppendWait::Durable, None)
            .await
            .unwrap()
            .base_offset;
        churn(&log, 3, 10, |_, _| false).await;
        log.clean(NOW_MS, budget(MAP_BYTES), None).await.unwrap();
        let read = contents(&log).await;
        assert!(
            read.iter().all(|(_, key, _)| key.is_some()),
            "keyless record dropped"
        );
        assert_eq!(
            latest(&read).get(&Bytes::from("a")),
            Some(&Some(Bytes::from("1")))
        );
        let horizon = NOW_MS + 60_000;
        assert_eq!(
            header_at(&log, marker).await,
            Some((MARKER | ATTR_DELETE_HORIZON, horizon, 1))
        );
        log.clean(horizon - 1, budget(MAP_BYTES), None)
            .await
            .unwrap();
        assert_eq!(header_at(&log, marker).await.map(|h| h.2), Some(1));
        log.clean(horizon, budget(MAP_BYTES), None).await.unwrap();
        let (attributes, _, count) = header_at(&log, marker).await.unwrap();
        assert_eq!((attributes & MARKER, count), (MARKER, 0), "emptied, kept");
        log.clean(horizon, budget(MAP_BYTES), None).await.unwrap();
        assert_eq!(header_at(&log, marker).await.map(|h| h.2), Some(0));
    });
}

/// `records` as one batch of producer `producer_id` (epoch 0) from
/// sequence `sequence`, in a transaction or only idempotent.
fn produced(
    records: &[Entry<'_>],
    producer_id: i64,
    sequence: i32,
    transactional: bool,
) -> BytesMut {
    let mut batch = batch(records, Compression::None, NOW_MS);
    as_producer(&mut batch, producer_id, sequence, transactional);
    batch
}

async fn produce(log: &Rc<PartitionLog>, batch: BytesMut) -> i64 {
    log.append(batch, AppendWait::Durable, None)
        .await
        .unwrap()
        .base_offset
}

async fn end_txn(log: &Rc<PartitionLog>, producer_id: i64, commit: bool) -> i64 {
    let marker = TxnMarker {
        producer_id,
        producer_epoch: 0,
        coordinator_epoch: 0,
        commit,
    };
    log.append_txn_marker(marker).await.unwrap().base_offset
}

/// Producer 1 commits a and b; producer 2 aborts a newer a and c, then
/// commits d. Returns the ABORT marker's offset; the churn after them
/// rolls segments so that all of it is cleanable.
async fn committed_and_aborted(log: &Rc<PartitionLog>) -> i64 {
    let committed = [(Some("a"), Some("1")), (Some("b"), Some("1"))];
    produce(log, produced(&committed, 1, 0, true)).await;
    end_txn(log, 1, true).await;
    let aborted = [(Some("a"), Some("2")), (Some("c"), Some("2"))];
    produce(log, produced(&aborted, 2, 0, true)).await;
    let abort = end_txn(log, 2, false).await;
    produce(log, produced(&[(Some("d"), Some("3"))], 2, 2, true)).await;
    end_txn(log, 2, true).await;
    churn(log, 3, 20, |_, _| false).await;
    abort
}

fn value_of(read: &Read, key: &str) -> Option<Option<Bytes>> {
    latest(read)
        .get(&Bytes::copy_from_slice(key.as_bytes()))
        .cloned()
}

#[test]
fn aborted_records_go_whatever_their_keys_and_their_markers_follow() {
    with_dir(|dir| async move {
        let config = compacted_keeping_deletes();
        let log = PartitionLog::open(dir.clone(), config.clone())
            .await
            .unwrap();
        let abort = committed_and_aborted(&log).await;
        let end = log.log_end_offset();
        assert_eq!(log.aborted_transactions(0, end), vec![(2, 3)]);
        assert!(log.segment_count() > 2, "the test wants rolls");

        // First pass: the aborted records go, and the committed value of a
        // stays (the aborted one was not mapped). The marker stays, with
        // its entry: its transaction had data in this pass.
        let first = log.clean(NOW_MS, budget(MAP_BYTES), None).await.unwrap();
        assert!(first.records_removed >= 2);
        let read = contents(&log).await;
        assert!(read.iter().all(|(offset, ..)| !(3..=4).contains(offset)));
        assert_eq!(value_of(&read, "a"), Some(Some(Bytes::from("1"))));
        assert_eq!(value_of(&read, "b"), Some(Some(Bytes::from("1"))));
        assert_eq!(value_of(&read, "c"), None);
        assert_eq!(value_of(&read, "d"), Some(Some(Bytes::from("3"))));
        assert_eq!(header_at(&log, abort).await.map(|h| h.0), Some(MARKER));
        assert_eq!(log.aborted_transactions(0, end), vec![(2, 3)]);

        // The next pass is due at once: the marker has no data left. It
        // gets its delete horizon and loses its entry; the COMMIT markers,
        // whose data stays, stay as they were.
        assert!(log.cleaning_need(NOW_MS).unwrap().urgent);
        log.clean(NOW_MS, budget(MAP_BYTES), None).await.unwrap();
        let horizon = NOW_MS + 60_000;
        assert_eq!(
            header_at(&log, abort).await,
            Some((MARKER | ATTR_DELETE_HORIZON, horizon, 1))
        );
        assert_eq!(header_at(&log, 2).await.map(|h| h.0), Some(MARKER));
        assert_eq!(log.aborted_transactions(0, end), vec![]);
        // Nor does the entry come back with a restart.
        log.close().await.unwrap();
        let log = PartitionLog::open(dir, config).await.unwrap();
        assert_eq!(log.aborted_transactions(0, end), vec![]);

        // At the horizon it goes; the records read stay the same.
        assert!(log.cleaning_need(horizon).unwrap().urgent);
        log.clean(horizon, budget(MAP_BYTES), None).await.unwrap();
        assert_eq!(header_at(&log, abort).await, None);
        assert_eq!(contents(&log).await, read);
        assert_eq!(header_at(&log, 2).await.map(|h| h.0), Some(MARKER));
        log.close().await.unwrap();
    });
}

#[test]
fn an_open_transaction_holds_the_cleaner_back() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir, compacted()).await.unwrap();
        produce(&log, produced(&[(Some("k0"), Some("open"))], 1, 0, true)).await;
        churn(&log, 3, 20, |_, _| false).await;
        assert!(log.segment_count() > 2, "the test wants rolls");
        assert_eq!(log.last_stable_offset(), 0);
        let before = contents(&log).await;
        assert!(log.cleaning_need(NOW_MS).is_none());
        let held = log.clean(NOW_MS, budget(MAP_BYTES), None).await.unwrap();
        assert_eq!((held.segments_before, held.records_removed), (0, 0));
        assert_eq!(contents(&log).await, before);
        end_txn(&log, 1, true).await;
        assert!(log.cleaning_need(NOW_MS).is_some());
        let cleaned = log.clean(NOW_MS, budget(MAP_BYTES), None).await.unwrap();
        assert!(cleaned.records_removed > 0);
        log.close().await.unwrap();
    });
}

/// Producer 3's only batch is superseded, yet stays, emptied: it holds the
/// producer's sequence. After a crash with no snapshot, the replay of the
/// cleaned log gives back every producer, the aborted transactions and the
/// open one.
#[test]
fn a_crash_after_cleaning_rebuilds_producers_and_transactions() {
    with_dir(|dir| async move {
        let config = compacted_keeping_deletes();
        let log = PartitionLog::open(dir.clone(), config.clone())
            .await
            .unwrap();
        let idempotent = produce(&log, produced(&[(Some("k1"), Some("x"))], 3, 0, false)).await;
        committed_and_aborted(&log).await;
        let open = produce(&log, produced(&[(Some("k2"), Some("open"))], 4, 0, true)).await;
        log.clean(NOW_MS, budget(MAP_BYTES), None).await.unwrap();
        assert_eq!(header_at(&log, idempotent).await.map(|h| h.2), Some(0));
        assert_eq!(log.last_stable_offset(), open);
        let producers = log.describe_producers();
        assert_eq!(producers.len(), 4);
        let end = log.log_end_offset();
        let read = contents(&log).await;
        let aborted = log.aborted_transactions(0, end);
        assert_eq!(aborted, vec![(2, 4)]);
        drop(log);
        for snapshot in files(&dir, "snapshot") {
            std::fs::remove_file(snapshot).unwrap();
        }
        let log = PartitionLog::open(dir, config).await.unwrap();
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(log.describe_producers(), producers);
        assert_eq!(log.last_stable_offset(), open);
        assert_eq!(log.aborted_transactions(0, end), aborted);
        assert_eq!(contents(&log).await, read);
        end_txn(&log, 4, false).await;
        assert_eq!(log.last_stable_offset(), log.high_watermark());
        log.close().await.unwrap();
    });
}

#[test]
fn a_small_map_cleans_in_several_passes() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir, compacted()).await.unwrap();
        churn(&log, 40, 4, |_, _| false).await;
        let before = contents(&log).await;
        // Room for 18 keys: a pass maps fewer batches than the log holds.
        let map_bytes = 20 * super::cleaner::OFFSET_MAP_SLOT_BYTES;
        let mut passes = 0;
        let mut offsets = Vec::new();
        while log.cleaning_need(NOW_MS).is_some() {
            let outcome = log.clean(NOW_MS, budget(map_bytes), None).await.unwrap();
            offsets.push(outcome.cleaner_offset);
            passes += 1;
            assert!(passes < 100, "passes must make progress");
        }
        assert!(passes > 2, "{passes} passes");
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
        let after = contents(&log).await;
        assert_eq!(latest(&after), latest(&before));
        // As clean as one pass with a large map would leave it.
        let cleaned_end = *offsets.last().unwrap();
        assert_keys_once(&after, cleaned_end);
    });
}

#[test]
fn min_compaction_lag_keeps_young_records_dirty() {
    with_dir(|dir| async move {
        let config = LogConfig {
            min_compaction_lag_ms: 60_000,
            ..compacted()
        };
        let log = PartitionLog::open(dir, config).await.unwrap();
        churn(&log, 5, 8, |_, _| false).await;
        let before = contents(&log).await;
        // Written at NOW_MS: too young at NOW_MS + 59 s.
        assert!(log.cleaning_need(NOW_MS + 59_000).is_none());
        let outcome = log
            .clean(NOW_MS + 59_000, budget(MAP_BYTES), None)
            .await
            .unwrap();
        assert_eq!(outcome.records_removed, 0);
        assert_eq!(contents(&log).await, before);
        assert!(log.cleaning_need(NOW_MS + 61_000).is_some());
        let outcome = log
            .clean(NOW_MS + 61_000, budget(MAP_BYTES), None)
            .await
            .unwrap();
        assert!(outcome.records_removed > 0);
    });
}

#[test]
fn dirty_ratio_and_max_compaction_lag_decide() {
    with_dir(|dir| async move {
        let config = LogConfig {
            min_cleanable_dirty_ratio: 0.5,
            max_compaction_lag_ms: 3_600_000,
            ..compacted()
        };
        let log = PartitionLog::open(dir, config).await.unwrap();
        assert!(log.cleaning_need(NOW_MS).is_none(), "an empty log");
        churn(&log, 60, 2, |_, _| false).await;
        let need = log.cleaning_need(NOW_MS).unwrap();
        assert_eq!(need.dirty_ratio, 1.0);
        assert!(!need.urgent);
        log.clean(NOW_MS, budget(MAP_BYTES), None).await.unwrap();
        assert!(log.cleaning_need(NOW_MS).is_none());
        // A little more dirt: under the ratio, until it is an hour old.
        let segments = log.segment_count();
        while log.segment_count() == segments {
            append(
                &log,
                &[(Some("k0"), Some("again"))],
                Compression::None,
                NOW_MS,
            )
            .await;
        }
        let ratio = log.cleaning_need(NOW_MS + 3_600_000).unwrap().dirty_ratio;
        assert!(ratio > 0.0 && ratio < 0.5, "{ratio}");
        assert!(log.cleaning_need(NOW_MS).is_none());
        let need = log.cleaning_need(NOW_MS + 3_600_000).unwrap();
        assert!(need.urgent);
    });
}

#[test]
fn the_io_limit_slows_a_pass() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir, compacted()).await.unwrap();
        churn(&log, 10, 16, |_, _| false).await;
        let started = std::time::Instant::now();
        let throttled = CleanerBudget {
            map_bytes: MAP_BYTES,
            io_bytes_per_second: 20_000.0,
        };
        let outcome = log.clean(NOW_MS, throttled, None).await.unwrap();
        // Read once to map, read and written to clean: at least this much IO.
        let io_bytes = (outcome.bytes_before + outcome.bytes_after) as f64;
        assert!(started.elapsed().as_secs_f64() >= io_bytes / 20_000.0 * 0.9);
    });
}

#[test]
fn a_shard_that_never_idles_slows_a_pass_but_does_not_stop_it() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir, compacted()).await.unwrap();
        churn(&log, 10, 16, |_, _| false).await;
        let before = contents(&log).await;
        // Work starts on the shard every 100 µs for as long as the pass runs.
        let load = Rc::new(ShardLoad::default());
        let done = Rc::new(std::cell::Cell::new(false));
        let busy = {
            let (load, done) = (load.clone(), done.clone());
            glommio::spawn_local(async move {
                while !done.get() {
                    load.started_work();
                    glommio::timer::sleep(std::time::Duration::from_micros(100)).await;
                }
            })
        };
        let outcome = log.clean(NOW_MS, budget(MAP_BYTES), Some(&load)).await;
        done.set(true);
        busy.await;
        let outcome = outcome.unwrap();
        assert!(outcome.records_removed > 0);
        let after = contents(&log).await;
        assert_eq!(latest(&after), latest(&before));
        assert_keys_once(&after, outcome.cleaner_offset);
    });
}

#[test]
fn a_close_stops_a_slow_pass_and_leaves_the_log_as_it_was() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir.clone(), compacted()).await.unwrap();
        churn(&log, 10, 16, |_, _| false).await;
        let before = contents(&log).await;
        let crawling = CleanerBudget {
            map_bytes: MAP_BYTES,
            io_bytes_per_second: 1.0,
        };
        let pass = {
            let log = log.clone();
            glommio::spawn_local(async move { log.clean(NOW_MS, crawling, None).await })
        };
        glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        log.close().await.unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert!(matches!(pass.await, Err(super::LogError::Closed)));
        let leftovers = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_str().unwrap().ends_with(".cleaned")
            })
            .count();
        assert_eq!(leftovers, 0);
        let log = PartitionLog::open(dir, compacted()).await.unwrap();
        assert_eq!(contents(&log).await, before);
    });
}

#[test]
fn delete_records_during_a_pass_wins() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir.clone(), compacted()).await.unwrap();
        churn(&log, 10, 16, |_, _| false).await;
        let cut = log.log_end_offset() / 2;
        let slow = CleanerBudget {
            map_bytes: MAP_BYTES,
            io_bytes_per_second: 40_000.0,
        };
        let pass = {
            let log = log.clone();
            glommio::spawn_local(async move { log.clean(NOW_MS, slow, None).await })
        };
        glommio::timer::sleep(std::time::Duration::from_millis(150)).await;
        assert_eq!(log.delete_records(cut).await.unwrap(), cut);
        pass.await.unwrap();
        let check = |read: Read| {
            assert!(read.iter().all(|(offset, ..)| *offset >= cut));
            read
        };
        let after = check(contents(&log).await);
        assert_eq!(log.log_start_offset(), cut);
        let in_flight = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                let name = name.to_str().unwrap();
                name.ends_with(".cleaned") || name.ends_with(".swap")
            })
            .count();
        assert_eq!(in_flight, 0);
        log.close().await.unwrap();
        let log = PartitionLog::open(dir, compacted()).await.unwrap();
        assert_eq!(log.log_start_offset(), cut);
        assert_eq!(check(contents(&log).await), after);
    });
}

#[test]
fn reads_racing_a_pass_see_whole_batches() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir, compacted()).await.unwrap();
        churn(&log, 8, 12, |_, _| false).await;
        let expected = latest(&contents(&log).await);
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let log = log.clone();
                glommio::spawn_local(async move {
                    let mut seen = Vec::new();
                    for _ in 0..20 {
                        seen.push(contents(&log).await);
                        glommio::yield_if_needed().await;
                    }
                    seen
                })
            })
            .collect();
        log.clean(NOW_MS, budget(MAP_BYTES), None).await.unwrap();
        for reader in readers {
            for read in reader.await {
                assert_eq!(latest(&read), expected);
            }
        }
    });
}

#[test]
fn a_pass_interrupted_at_any_step_recovers() {
    // Step 0: only `.cleaned` files; 1: `.swap` files, old segments there;
    // 2: old segments deleted but the first; 3: indexes renamed already.
    for step in 0..4 {
        with_dir(move |dir| async move {
            let log = PartitionLog::open(dir.clone(), compacted()).await.unwrap();
            churn(&log, 6, 10, |_, _| false).await;
            let original = contents(&log).await;
            log.close().await.unwrap();
            drop(log);
            let copy = dir.with_file_name("cleaned-copy");
            copy_dir(&dir, &copy);
            let log = PartitionLog::open(copy.clone(), compacted()).await.unwrap();
            log.clean(NOW_MS, budget(MAP_BYTES), None).await.unwrap();
            let cleaned = contents(&log).await;
            log.close().await.unwrap();
            drop(log);
            // Stage what a crash at `step` leaves: the cleaner checkpoint a
            // pass writes before its first segment, and the cleaned
            // segments' files under their in-flight names, beside the old
            // segments.
            std::fs::copy(copy.join("shoal.cleaner"), dir.join("shoal.cleaner")).unwrap();
            let suffix = if step == 0 { ".cleaned" } else { ".swap" };
            for extension in ["log", "index", "timeindex"] {
                for path in files(&copy, extension) {
                    let name = path.file_name().unwrap().to_str().unwrap().to_string();
                    let old = dir.join(&name);
                    if std::fs::read(&old).ok() == Some(std::fs::read(&path).unwrap()) {
                        continue;
                    }
                    let staged = if step == 3 && extension != "log" {
                        old.clone()
                    } else {
                        dir.join(format!("{name}{suffix}"))
                    };
                    std::fs::copy(&path, staged).unwrap();
                }
            }
            if step >= 2 {
                // The old segments inside a cleaned group are gone already.
                let kept: Vec<String> = files(&copy, "log")
                    .iter()
                    .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
                    .collect();
                for path in files(&dir, "log") {
                    let name = path.file_name().unwrap().to_str().unwrap().to_string();
                    if !kept.contains(&name) {
                        for extension in ["log", "index", "timeindex"] {
                            let _ = std::fs::remove_file(path.with_extension(extension));
                        }
                    }
                }
            }
            let log = PartitionLog::open(dir.clone(), compacted()).await.unwrap();
            let recovered = contents(&log).await;
            if step == 0 {
                assert_eq!(recovered, original, "an unfinished pass changes nothing");
            } else {
                assert_eq!(recovered, cleaned, "step {step}: the pass is finished");
            }
            let leftovers = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_str().unwrap().to_string())
                .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
                .count();
            assert_eq!(leftovers, 0);
            std::fs::remove_dir_all(&copy).unwrap();
        });
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
    /// Random keyed records in random batches and codecs: after any number
    /// of passes with any map size, reading the log gives every key's last
    /// value, each record left is the one written at its offset, and a
    /// reopen reads the same.
    #[test]
    fn cleaning_keeps_the_last_value_of_every_key(
        batches in proptest::collection::vec(
            (proptest::collection::vec((0u8..12, proptest::option::weighted(0.9, 0u16..1000)), 1..6),
             0usize..CODECS.len()),
            1..60,
        ),
        map_slots in 4usize..64,
        passes in 1usize..4,
        segment_bytes in 300u64..3000,
    ) {
        with_dir(move |dir| async move {
            let config = LogConfig { segment_bytes, ..compacted() };
            let log = PartitionLog::open(dir.clone(), config.clone()).await.unwrap();
            for (records, codec) in &batches {
                let owned: Vec<(String, Option<String>)> = records
                    .iter()
                    .map(|(k, v)| (format!("key-{k}"), v.map(|v| format!("value-{v}"))))
                    .collect();
                let entries: Vec<Entry<'_>> = owned
                    .iter()
                    .map(|(k, v)| (Some(k.as_str()), v.as_deref()))
                    .collect();
                append(&log, &entries, CODECS[*codec], NOW_MS).await;
            }
            let before = contents(&log).await;
            for _ in 0..passes {
                log.clean(NOW_MS, budget(map_slots * super::cleaner::OFFSET_MAP_SLOT_BYTES), None).await
                    .unwrap();
            }
            let after = contents(&log).await;
            assert_eq!(latest(&after), latest(&before));
            for record in &after {
                assert!(before.contains(record));
            }
            log.close().await.unwrap();
            let log = PartitionLog::open(dir, config).await.unwrap();
            assert_eq!(contents(&log).await, after);
        });
    }
}
