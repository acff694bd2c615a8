//! The append path and the writer, end to end on real files: offsets,
//! rolls, group commit, the flush policies, a failed write given up, close.

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::Compression;

use super::super::segment;
use super::super::{AppendWait, FlushPolicy, LogConfig, LogError};
use super::tests::*;
use super::PartitionLog;
use crate::clock::now_ms;
use crate::protocol::batch::tests::{sample_batch, CODECS};
use crate::protocol::batch::BatchHeader;

#[test]
fn round_trip_across_a_clean_restart() {
    for cache in [0, TAIL_CACHE_TEST_BYTES] {
        with_dir(move |dir| async move {
            let log = PartitionLog::open(dir.clone(), small_config(cache))
                .await
                .unwrap();
            assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
            let mut sent = Vec::new();
            let mut next = 0;
            for (i, codec) in CODECS.iter().cycle().take(12).enumerate() {
                let batch = sample_batch(i % 4 + 1, *codec);
                let result = log
                    .append(BytesMut::from(&batch[..]), AppendWait::Durable, None)
                    .await
                    .unwrap();
                assert_eq!(result.base_offset, next);
                assert_eq!(result.last_offset, next + (i % 4) as i64);
                next = result.last_offset + 1;
                sent.push(unassigned(&batch));
            }
            assert_eq!(log.log_end_offset(), next);
            assert_eq!(log.high_watermark(), next);
            let check = |got: Vec<Bytes>| {
                assert_eq!(got.len(), sent.len());
                let mut expected_base = 0;
                for (batch, sent) in got.iter().zip(&sent) {
                    let header = BatchHeader::view(batch).unwrap();
                    assert_eq!(header.base_offset.get(), expected_base);
                    expected_base = header.last_offset() + 1;
                    assert_eq!(&unassigned(batch), sent);
                }
            };
            check(read_all(&log).await);
            let size = log.size_bytes();
            log.close().await.unwrap();
            assert!(matches!(
                log.append(BytesMut::from(&sent[0][..]), AppendWait::Nothing, None)
                    .await,
                Err(LogError::Closed)
            ));

            let log = PartitionLog::open(dir.clone(), small_config(cache))
                .await
                .unwrap();
            assert_eq!(
                log.recovery_scanned_bytes(),
                0,
                "a clean close needs no scan"
            );
            assert_eq!(log.log_end_offset(), next);
            assert_eq!(log.high_watermark(), next);
            assert_eq!(log.size_bytes(), size);
            check(read_all(&log).await);
            log.close().await.unwrap();
        });
    }
}

#[test]
fn segments_roll_by_size_and_reads_cross_them() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir.clone(), small_config(0))
            .await
            .unwrap();
        let batch = sample_batch(5, Compression::None);
        for _ in 0..40 {
            log.append(BytesMut::from(&batch[..]), AppendWait::Durable, None)
                .await
                .unwrap();
        }
        let per_segment = 2048 / batch.len();
        assert_eq!(log.segment_count(), 40_usize.div_ceil(per_segment));
        assert!(log.segment_count() >= 3);
        assert!(segment_files(&dir, "index") >= log.segment_count() - 1);
        let got = read_all(&log).await;
        assert_eq!(got.len(), 40);
        // Every offset, read alone, comes back in the batch that holds it.
        for offset in 0..log.log_end_offset() {
            let got = log
                .read(offset, log.high_watermark(), 1, true)
                .await
                .unwrap();
            let header = BatchHeader::view(&got[0]).unwrap();
            assert_eq!(header.base_offset.get(), offset / 5 * 5, "offset {offset}");
        }
        log.close().await.unwrap();
        assert_eq!(segment_files(&dir, "log"), segment_files(&dir, "timeindex"));

        let log = PartitionLog::open(dir, small_config(0)).await.unwrap();
        assert_eq!(log.recovery_scanned_bytes(), 0);
        assert_eq!(read_all(&log).await.len(), 40);
        let got = log
            .read(123, log.high_watermark(), usize::MAX, false)
            .await
            .unwrap();
        assert_eq!(BatchHeader::view(&got[0]).unwrap().base_offset.get(), 120);
        assert_eq!(got.len(), 40 - 24);
    });
}

#[test]
fn index_files_have_kafkas_layout() {
    with_dir(|dir| async move {
        let config = LogConfig {
            index_interval_bytes: 0,
            ..small_config(0)
        };
        let log = PartitionLog::open(dir.clone(), config).await.unwrap();
        let mut expected_index = Vec::new();
        let mut expected_time_index = Vec::new();
        let mut position = 0u32;
        for b in 0..5i64 {
            let batch = batch_at(3, Compression::None, 100 * b);
            let result = log
                .append(BytesMut::from(&batch[..]), AppendWait::Durable, None)
                .await
                .unwrap();
            let relative = result.last_offset as u32;
            expected_index.extend(relative.to_be_bytes());
            expected_index.extend(position.to_be_bytes());
            expected_time_index.extend((100 * b + 2).to_be_bytes());
            expected_time_index.extend(relative.to_be_bytes());
            position += batch.len() as u32;
        }
        log.close().await.unwrap();
        let name = format!("{:020}", 0);
        let read = |ext: &str| std::fs::read(dir.join(format!("{name}.{ext}"))).unwrap();
        assert_eq!(read("index"), expected_index);
        assert_eq!(read("timeindex"), expected_time_index);
        assert_eq!(read("log").len() as u32, position);
    });
}

#[test]
fn unacknowledged_appends_are_flushed_by_close() {
    for policy in [
        FlushPolicy::Interval { flush_ms: 60_000 },
        FlushPolicy::None,
    ] {
        with_dir(move |dir| async move {
            let config = LogConfig {
                flush_policy: policy,
                ..small_config(TAIL_CACHE_TEST_BYTES)
            };
            let log = PartitionLog::open(dir.clone(), config.clone())
                .await
                .unwrap();
            for _ in 0..50 {
                let batch = sample_batch(2, Compression::Lz4);
                log.append(BytesMut::from(&batch[..]), AppendWait::Nothing, None)
                    .await
                    .unwrap();
            }
            assert_eq!(log.log_end_offset(), 100);
            log.close().await.unwrap();
            let log = PartitionLog::open(dir, config).await.unwrap();
            assert_eq!(log.recovery_scanned_bytes(), 0);
            assert_eq!(log.high_watermark(), 100);
            assert_eq!(read_all(&log).await.len(), 50);
        });
    }
}

#[test]
fn segments_roll_by_age() {
    with_dir(|dir| async move {
        let config = LogConfig {
            segment_ms: 0,
            ..small_config(0)
        };
        let log = PartitionLog::open(dir, config).await.unwrap();
        for _ in 0..3 {
            log.append(
                BytesMut::from(&sample_batch(1, Compression::None)[..]),
                AppendWait::Durable,
                None,
            )
            .await
            .unwrap();
        }
        assert_eq!(log.segment_count(), 3);
    });
}

#[test]
fn bad_appends_are_refused_whole() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir, small_config(0)).await.unwrap();
        let batch = sample_batch(2, Compression::None);
        let mut torn = batch.clone();
        torn.extend_from_slice(&batch[..30]);
        for bad in [Vec::new(), batch[..40].to_vec(), torn] {
            assert!(matches!(
                log.append(BytesMut::from(&bad[..]), AppendWait::Durable, None)
                    .await,
                Err(LogError::InvalidBatch(_))
            ));
        }
        assert_eq!(log.log_end_offset(), 0);
    });
}

/// The open-file flags of this process's descriptor for `path`, from
/// `/proc/self/fdinfo` (octal).
fn open_flags(path: &Path) -> Option<u32> {
    std::fs::read_dir("/proc/self/fd").ok()?.find_map(|entry| {
        let entry = entry.ok()?;
        if std::fs::read_link(entry.path()).ok()? != path {
            return None;
        }
        let info =
            std::fs::read_to_string(format!("/proc/self/fdinfo/{}", entry.file_name().to_str()?))
                .ok()?;
        let flags = info.lines().find_map(|line| line.strip_prefix("flags:"))?;
        u32::from_str_radix(flags.trim(), 8).ok()
    })
}

#[test]
fn segments_are_written_through_only_under_the_sync_policy() {
    for (policy, through) in [
        (FlushPolicy::Sync, true),
        (FlushPolicy::Interval { flush_ms: 5 }, false),
        (FlushPolicy::None, false),
    ] {
        with_dir(move |dir| async move {
            let config = LogConfig {
                flush_policy: policy,
                ..small_config(0)
            };
            let log = PartitionLog::open(dir.clone(), config).await.unwrap();
            let batch = sample_batch(2, Compression::None);
            log.append(BytesMut::from(&batch[..]), AppendWait::Durable, None)
                .await
                .unwrap();
            let path = segment::log_path(&dir, 0);
            let flags = open_flags(&path).expect("the segment file is open");
            assert_eq!(
                flags & libc::O_DSYNC as u32 != 0,
                through,
                "{policy:?}: flags {flags:o}"
            );
            assert_eq!(read_all(&log).await.len(), 1);
        });
    }
}

#[test]
fn several_batches_in_one_append() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir, small_config(0)).await.unwrap();
        let mut batches = sample_batch(2, Compression::None);
        batches.extend(sample_batch(3, Compression::Zstd));
        let result = log
            .append(BytesMut::from(&batches[..]), AppendWait::Durable, None)
            .await
            .unwrap();
        assert_eq!((result.base_offset, result.last_offset), (0, 4));
        let got = read_all(&log).await;
        assert_eq!(got.len(), 2);
        assert_eq!(BatchHeader::view(&got[1]).unwrap().base_offset.get(), 2);
    });
}

#[test]
fn concurrent_appends_are_group_committed_in_order() {
    for policy in [
        FlushPolicy::Sync,
        FlushPolicy::Interval { flush_ms: 5 },
        FlushPolicy::None,
    ] {
        with_dir(move |dir| async move {
            let config = LogConfig {
                flush_policy: policy,
                ..small_config(0)
            };
            let log = PartitionLog::open(dir, config).await.unwrap();
            // A reader reading from the files while appends roll segments.
            let reader = {
                let log = log.clone();
                glommio::spawn_local(async move {
                    while log.log_end_offset() < 100 {
                        let got = read_all(&log).await;
                        assert!(got.len() <= 64);
                        log.wait_for_data().await;
                    }
                })
            };
            let tasks: Vec<_> = (0..64)
                .map(|i| {
                    let log = log.clone();
                    glommio::spawn_local(async move {
                        let batch = sample_batch(i % 3 + 1, Compression::None);
                        log.append(BytesMut::from(&batch[..]), AppendWait::Durable, None)
                            .await
                            .unwrap()
                    })
                })
                .collect();
            let mut results = Vec::new();
            for task in tasks {
                results.push(task.await);
            }
            results.sort_by_key(|r| r.base_offset);
            let mut next = 0;
            for result in &results {
                assert_eq!(result.base_offset, next);
                next = result.last_offset + 1;
            }
            assert_eq!(log.high_watermark(), next);
            assert_eq!(read_all(&log).await.len(), 64);
            assert!(log.segment_count() > 1);
            log.close().await.unwrap();
            reader.await;
        });
    }
}

#[test]
fn delete_removes_the_partition() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir.clone(), small_config(0))
            .await
            .unwrap();
        log.append(
            BytesMut::from(&sample_batch(2, Compression::None)[..]),
            AppendWait::Nothing,
            None,
        )
        .await
        .unwrap();
        log.delete().await.unwrap();
        assert!(!dir.exists());
        assert!(matches!(
            log.read(0, 2, 100, true).await,
            Err(LogError::Closed)
        ));
        assert!(matches!(
            log.append(
                BytesMut::from(&sample_batch(2, Compression::None)[..]),
                AppendWait::Nothing,
                None
            )
            .await,
            Err(LogError::Closed)
        ));
    });
}

#[test]
fn a_failed_write_gives_up_its_appends_and_the_log_goes_on() {
    for cache in [0, TAIL_CACHE_TEST_BYTES] {
        with_dir(move |dir| async move {
            let batch = sample_batch(5, Compression::None);
            let per_segment = 2048 / batch.len();
            let log = PartitionLog::open(dir.clone(), small_config(cache))
                .await
                .unwrap();
            append_at(&log, per_segment - 2, 1_000).await;
            let acked = log.log_end_offset();
            // Sealing segment 0 fails: its index file cannot be created.
            let trap = super::super::segment::index_path(&dir, 0);
            std::fs::create_dir(&trap).unwrap();
            for _ in 0..2 {
                // The end of segment 0, its seal and the start of
                // segment 1, unacknowledged (acks=0), then one that waits.
                for _ in 0..=per_segment {
                    if log.segment_count() > 1 {
                        break;
                    }
                    append_one(&log, &batch, AppendWait::Nothing).await.unwrap();
                }
                assert_eq!(log.segment_count(), 2);
                let failed = append_one(&log, &batch, AppendWait::Durable).await;
                assert!(
                    matches!(failed, Err(LogError::WriteFailed(_))),
                    "{failed:?}"
                );
                // Back to what was written before the failed group:
                // the acknowledged batches, maybe some acks=0 ones.
                let end = log.log_end_offset();
                assert!((acked..acked + 15).contains(&end), "log end {end}");
                assert_eq!(log.high_watermark(), end);
                assert_eq!(log.segment_count(), 1);
                assert_eq!(log.size_bytes(), (end / 5) as u64 * batch.len() as u64);
                let log_file = super::super::segment::log_path(&dir, 0);
                let file_size = std::fs::metadata(log_file).unwrap().len();
                assert_eq!(file_size, log.size_bytes());
                assert_eq!(segment_files(&dir, "log"), 1);
                assert_contiguous(&read_all(&log).await, (end / 5) as usize);
            }
            // Room again: the given-up offsets are taken anew.
            std::fs::remove_dir(&trap).unwrap();
            let end = log.log_end_offset();
            let result = append_one(&log, &batch, AppendWait::Durable).await.unwrap();
            assert_eq!(result.base_offset, end);
            append_at(&log, 5, 1_000).await;
            let batches = (end / 5 + 6) as usize;
            assert_eq!(log.log_end_offset(), 5 * batches as i64);
            assert_eq!(log.segment_count(), 2);
            assert_contiguous(&read_all(&log).await, batches);
            log.close().await.unwrap();

            let log = PartitionLog::open(dir, small_config(cache)).await.unwrap();
            assert_eq!(log.recovery_scanned_bytes(), 0);
            assert_contiguous(&read_all(&log).await, batches);
        });
    }
}

#[test]
fn wait_for_data_wakes_on_append() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir, small_config(0)).await.unwrap();
        let woke = Rc::new(Cell::new(false));
        let waiter = {
            let woke = woke.clone();
            let wait = log.wait_for_data();
            glommio::spawn_local(async move {
                wait.await;
                woke.set(true);
            })
        };
        glommio::yield_if_needed().await;
        assert!(!woke.get());
        log.append(
            BytesMut::from(&sample_batch(1, Compression::None)[..]),
            AppendWait::Durable,
            None,
        )
        .await
        .unwrap();
        waiter.await;
        assert!(woke.get());
        // A long poll given up leaves nothing behind.
        let abandoned = log.wait_for_data();
        let polled = futures_lite::future::poll_once(Box::pin(abandoned)).await;
        assert!(polled.is_none());
        assert!(log.marks.progress.wakers.borrow().is_empty());
        // A waiter on a closing log is released too.
        let wait = log.wait_for_data();
        log.close().await.unwrap();
        wait.await;
    });
}

#[test]
fn reconfigure_applies_to_the_next_append_and_retention_pass() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir, LogConfig::default()).await.unwrap();
        append_at(&log, 20, 1_000).await;
        assert_eq!(log.segment_count(), 1);
        log.reconfigure(LogConfig {
            retention_bytes: 0,
            ..small_config(0)
        });
        append_at(&log, 20, 1_000).await;
        assert!(log.segment_count() > 1);
        let outcome = log.enforce_retention(now_ms() as i64).await.unwrap();
        assert!(outcome.deleted_segments > 0);
        assert_eq!(log.segment_count(), 1);
    });
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
    /// Random batches in, the same bytes out (but for the assigned
    /// offsets and epoch), across a clean close or a crash.
    #[test]
    fn random_batches_survive_a_restart(
        appends in proptest::collection::vec(
            proptest::collection::vec((1usize..20, 0usize..CODECS.len()), 1..4),
            1..20,
        ),
        segment_bytes in 200u64..6000,
        cached in proptest::bool::ANY,
        clean in proptest::bool::ANY,
    ) {
        with_dir(move |dir| async move {
            let config = LogConfig {
                segment_bytes,
                index_interval_bytes: 256,
                tail_cache_bytes: if cached { TAIL_CACHE_TEST_BYTES } else { 0 },
                ..LogConfig::default()
            };
            let log = PartitionLog::open(dir.clone(), config.clone()).await.unwrap();
            let mut sent = Vec::new();
            for batches in &appends {
                let mut bytes = Vec::new();
                for &(records, codec) in batches {
                    let batch = sample_batch(records, CODECS[codec]);
                    sent.push(unassigned(&batch));
                    bytes.extend(batch);
                }
                log.append(BytesMut::from(&bytes[..]), AppendWait::Durable, None)
                    .await
                    .unwrap();
            }
            let expect = |got: Vec<Bytes>| {
                let got: Vec<Vec<u8>> = got.iter().map(|b| unassigned(b)).collect();
                assert_eq!(got, sent);
            };
            expect(read_all(&log).await);
            let log_end_offset = log.log_end_offset();
            if clean {
                log.close().await.unwrap();
            }
            drop(log);
            let log = PartitionLog::open(dir, config).await.unwrap();
            assert_eq!(log.log_end_offset(), log_end_offset);
            if clean {
                assert_eq!(log.recovery_scanned_bytes(), 0);
            }
            expect(read_all(&log).await);
        });
    }
}

#[test]
fn appends_past_the_queue_bound_wait_their_turn_and_keep_their_order() {
    use super::admission::QUEUED_BYTES_MAX;
    with_dir(|dir| async move {
        let config = LogConfig {
            tail_cache_bytes: 0,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir, config).await.unwrap();
        let batch = sample_batch(2000, Compression::None);
        let records = i64::from(BatchHeader::view(&batch).unwrap().last_offset_delta.get()) + 1;
        // Twice the bound, all asking before the writer runs: without the
        // admission, the queue would pass the bound (`Admission::queued`
        // asserts it does not).
        let count = 2 * QUEUED_BYTES_MAX / batch.len() + 2;
        let appends: Vec<_> = (0..count)
            .map(|_| {
                let log = log.clone();
                let bytes = BytesMut::from(&batch[..]);
                glommio::spawn_local(
                    async move { log.append(bytes, AppendWait::Nothing, None).await },
                )
            })
            .collect();
        for (n, append) in appends.into_iter().enumerate() {
            let result = append.await.unwrap();
            assert_eq!(result.base_offset, n as i64 * records, "out of order");
        }
        log.close().await.unwrap();
    });
}
