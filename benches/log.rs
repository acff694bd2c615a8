//! The log's produce path and its index, on a real glommio shard and real
//! files:
//!
//! - `offset_assignment`: `PartitionLog::append` without waiting, i.e. the
//!   synchronous half every produce request pays on the owner shard (offsets
//!   and leader epoch patched into the batches, index entries, tail cache,
//!   queueing). Writes run between measured stretches, not inside them.
//! - `request_append`: the same from a request's `Bytes` as the produce
//!   handler passes them (slices of the frame, no copy of their own, in a
//!   frame of that one batch charged to a shard's budget): the log copies
//!   each batch's header to patch it, and a batch under
//!   `SLICE_BATCH_BYTES_MIN` whole.
//! - `frame_append`: W1's shape: one request frame holding a 16 KiB batch
//!   for each of 8 partitions, appended to the 8 logs as the owner shard
//!   does (one `PinnedFrame` for the frame), with the shard's budget at its
//!   bound (`sliced`: each batch's body kept as a slice, the frame charged
//!   once) and full (`copied`: each batch copied whole, as before the
//!   budget, when each tail charged itself the whole frame).
//! - `segment_append`: `append` until the bytes are written to the segment
//!   file (`acks=1`), with the group writer coalescing concurrent appends;
//!   `flush.policy=none`, so this is the write path without the disk's sync.
//! - `index_lookup`: the offset and time index searches every fetch and
//!   ListOffsets starts with, on an index as full as a 1 GiB segment's.
//! - `segment_read`: `PartitionLog::read` of 1 MiB (a consumer's
//!   `max.partition.fetch.bytes`) from a segment file whose pages are in the
//!   page cache, with no tail cache: the read of every consumer that is
//!   behind, batches checked (CRC-32C) before they are served.
//!
//! Throughput is in record-batch bytes (appends, reads) or lookups.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kafka_protocol::records::Compression;
use shoal::log::index::{OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};
use shoal::log::{
    AppendWait, Backing, FlushPolicy, FrameBudget, LogConfig, PartitionLog, PinnedFrame,
    TxnVerification, SHARD_PINNED_FRAME_BYTES_MAX,
};
use shoal::protocol::batch::BatchHeader;
use shoal::protocol::records::{encode_batch, ProducerRecord};
use shoal::server::connection::frame_allocation_bytes_max;

/// Records per appended batch, of `VALUE_SIZE_BYTES` each: a producer's
/// batch at `linger.ms` 5 under moderate load.
const RECORDS_PER_BATCH: [usize; 2] = [16, 256];
const VALUE_SIZE_BYTES: usize = 100;
/// Appends between two drains in `offset_assignment`: bounds the bytes
/// queued in memory while only the synchronous half is timed.
const APPENDS_PER_DRAIN: u64 = 256;
/// Concurrent appends in `segment_append`, as pipelined requests give.
const APPENDS_IN_FLIGHT: u64 = 16;
/// Segments small enough that retention, run at every drain, keeps the
/// bench's disk use to a few of them.
const SEGMENT_BYTES: u64 = 64 << 20;
const RETENTION_BYTES: i64 = 128 << 20;
/// What `segment_read` appends and then reads over and over: past any tail
/// cache, within the page cache, and small enough to append at every sample.
const READ_LOG_BYTES: usize = 16 << 20;
/// What one read asks for: Kafka's `max.partition.fetch.bytes`.
const READ_MAX_BYTES: usize = 1 << 20;
/// Samples of `segment_read`: each appends `READ_LOG_BYTES` first.
const READ_SAMPLES: usize = 10;
/// W1's requests (`shoal bench produce --partitions 8 --record-size 100`):
/// a batch of about 16 KiB for each of 8 partitions in one frame.
const FRAME_PARTITIONS: usize = 8;
const FRAME_RECORDS_PER_BATCH: usize = 150;
/// A 1 GiB segment indexed every 4 KiB (Kafka's `index.interval.bytes`).
const INDEX_ENTRIES: u32 = (1 << 30) / 4096;

fn batch(records: usize) -> Bytes {
    let value = Bytes::from(vec![b'v'; VALUE_SIZE_BYTES]);
    let records: Vec<ProducerRecord> = (0..records)
        .map(|_| ProducerRecord {
            key: None,
            value: Some(value.clone()),
        })
        .collect();
    encode_batch(&records, Compression::None, 1_700_000_000_000).expect("encodes")
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: SEGMENT_BYTES,
        flush_policy: FlushPolicy::None,
        retention_bytes: RETENTION_BYTES,
        ..LogConfig::default()
    }
}

/// Runs `body` with a fresh log of `config` on a one-shard glommio executor
/// in a temporary directory, removed afterwards.
fn with_log<T: Send + 'static>(
    config: LogConfig,
    body: impl FnOnce(Rc<PartitionLog>) -> Pin<Box<dyn Future<Output = T>>> + Send + 'static,
) -> T {
    with_logs(1, config, move |mut logs| body(logs.remove(0)))
}

/// `with_log` of `partitions` logs on the one shard.
fn with_logs<T: Send + 'static>(
    partitions: usize,
    config: LogConfig,
    body: impl FnOnce(Vec<Rc<PartitionLog>>) -> Pin<Box<dyn Future<Output = T>>> + Send + 'static,
) -> T {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    let result = shoal::shard::block_on(move || async move {
        let mut logs = Vec::with_capacity(partitions);
        for partition in 0..partitions {
            let dir = path.join(format!("bench-{partition}"));
            logs.push(
                PartitionLog::open(dir, config.clone())
                    .await
                    .expect("opens"),
            );
        }
        let result = body(logs.clone()).await;
        for log in logs {
            log.close().await.expect("closes");
        }
        result
    });
    drop(dir);
    result
}

/// Waits until everything appended so far is written, then applies
/// retention so the bench's files stay few.
async fn drain(log: &Rc<PartitionLog>, batch: &Bytes) {
    log.append(BytesMut::from(&batch[..]), AppendWait::Written, None)
        .await
        .expect("append");
    log.enforce_retention(i64::MAX).await.expect("retention");
}

/// What one append bench times: `iters` appends of `batch` to `log`.
type AppendBody = fn(Rc<PartitionLog>, Bytes, u64) -> Pin<Box<dyn Future<Output = Duration>>>;

/// Runs `body` as the bench `name`, once per batch size, each time on a
/// fresh log.
fn bench_appends(c: &mut Criterion, name: &str, body: AppendBody) {
    let mut group = c.benchmark_group(name);
    for records in RECORDS_PER_BATCH {
        let batch = batch(records);
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("records_per_batch", records),
            &batch,
            |b, batch| {
                b.iter_custom(|iters| {
                    let batch = batch.clone();
                    with_log(config(), move |log| body(log, batch, iters))
                })
            },
        );
    }
    group.finish();
}

fn offset_assignment(c: &mut Criterion) {
    bench_appends(c, "offset_assignment", |log, batch, iters| {
        Box::pin(unwaited_appends(log, batch, iters, false))
    });
}

fn request_append(c: &mut Criterion) {
    bench_appends(c, "request_append", |log, batch, iters| {
        Box::pin(unwaited_appends(log, batch, iters, true))
    });
}

/// Times `iters` appends of `batch` that do not wait for the writer, in
/// stretches of `APPENDS_PER_DRAIN` with the writes run between them. With
/// `from_request`, each append takes `batch` itself, as the produce handler
/// passes a slice of the request; else a copy of its own made before the
/// stretch, in memory nothing else shares.
async fn unwaited_appends(
    log: Rc<PartitionLog>,
    batch: Bytes,
    iters: u64,
    from_request: bool,
) -> Duration {
    let copy = || Bytes::from(BytesMut::from(&batch[..]));
    let budget = FrameBudget::new(SHARD_PINNED_FRAME_BYTES_MAX);
    // A frame holds a little more than its one batch: this bounds it below.
    let allocation_bytes = frame_allocation_bytes_max(batch.len());
    let mut measured = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let stretch = left.min(APPENDS_PER_DRAIN);
        let mut copies: Vec<Bytes> = match from_request {
            true => Vec::new(),
            false => (0..stretch).map(|_| copy()).collect(),
        };
        let start = Instant::now();
        for _ in 0..stretch {
            let (batches, backing) = match copies.pop() {
                Some(copy) => (copy, Backing::Own),
                None => (
                    batch.clone(),
                    Backing::Frame(PinnedFrame::new(&budget, allocation_bytes)),
                ),
            };
            let appended = log.append_verified(
                TxnVerification::Off,
                batches,
                backing,
                AppendWait::Nothing,
                None,
            );
            black_box(appended.await).expect("append");
        }
        measured += start.elapsed();
        left -= stretch;
        drain(&log, &batch).await;
    }
    measured
}

fn frame_append(c: &mut Criterion) {
    let batch = batch(FRAME_RECORDS_PER_BATCH);
    let mut frame = BytesMut::new();
    for _ in 0..FRAME_PARTITIONS {
        frame.extend_from_slice(&batch);
    }
    let frame = frame.freeze();
    let mut group = c.benchmark_group("frame_append");
    group.throughput(Throughput::Bytes(frame.len() as u64));
    for (name, budget_bytes) in [("sliced", SHARD_PINNED_FRAME_BYTES_MAX), ("copied", 0)] {
        group.bench_with_input(BenchmarkId::new("budget", name), &frame, |b, frame| {
            b.iter_custom(|iters| {
                let frame = frame.clone();
                with_logs(FRAME_PARTITIONS, config(), move |logs| {
                    Box::pin(frame_appends(logs, frame, budget_bytes, iters))
                })
            })
        });
    }
    group.finish();
}

/// Times `iters` frames appended to `logs`, each log its slice of the
/// frame, without waiting for the writers, in stretches of about
/// `APPENDS_PER_DRAIN` appends with the writes run between them.
async fn frame_appends(
    logs: Vec<Rc<PartitionLog>>,
    frame: Bytes,
    budget_bytes: usize,
    iters: u64,
) -> Duration {
    let budget = FrameBudget::new(budget_bytes);
    let allocation_bytes = frame_allocation_bytes_max(frame.len());
    let batch_len = frame.len() / logs.len();
    let stretch_max = APPENDS_PER_DRAIN / logs.len() as u64;
    let append_frames = |frames: u64| {
        let (logs, frame, budget) = (&logs, &frame, &budget);
        async move {
            let start = Instant::now();
            for _ in 0..frames {
                // As the owner shard does: one handle per frame, for all its parts.
                let pinned = PinnedFrame::new(budget, allocation_bytes);
                for (index, log) in logs.iter().enumerate() {
                    let appended = log.append_verified(
                        TxnVerification::Off,
                        frame.slice(index * batch_len..(index + 1) * batch_len),
                        Backing::Frame(pinned.clone()),
                        AppendWait::Nothing,
                        None,
                    );
                    black_box(appended.await).expect("append");
                }
            }
            let elapsed = start.elapsed();
            for log in logs {
                drain(log, &frame.slice(..batch_len)).await;
            }
            elapsed
        }
    };
    // Untimed: the first stretch into fresh logs grows their tails and queues.
    append_frames(stretch_max).await;
    let mut measured = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let stretch = left.min(stretch_max);
        measured += append_frames(stretch).await;
        left -= stretch;
    }
    measured
}

fn segment_append(c: &mut Criterion) {
    bench_appends(c, "segment_append", |log, batch, iters| {
        Box::pin(async move {
            let start = Instant::now();
            let mut left = iters;
            while left > 0 {
                let wave = left.min(APPENDS_IN_FLIGHT);
                let appends = (0..wave)
                    .map(|_| log.append(BytesMut::from(&batch[..]), AppendWait::Written, None));
                for result in futures_util::future::join_all(appends).await {
                    result.expect("append");
                }
                left -= wave;
                if left % (APPENDS_PER_DRAIN * APPENDS_IN_FLIGHT) < wave {
                    log.enforce_retention(i64::MAX).await.expect("retention");
                }
            }
            start.elapsed()
        })
    });
}

fn index_lookup(c: &mut Criterion) {
    let mut offsets = OffsetIndex::default();
    let mut times = TimeIndex::default();
    for entry in 0..INDEX_ENTRIES {
        offsets.push(OffsetEntry {
            relative_offset: entry * 40,
            position: entry * 4096,
        });
        times.push(TimeEntry {
            timestamp: 1_700_000_000_000 + i64::from(entry) * 10,
            relative_offset: entry * 40,
        });
    }
    // Spread-out targets so the branch predictor and caches see a fetch
    // mix, not one hot key.
    let targets: Vec<u32> = (0..1024u32)
        .map(|n| n.wrapping_mul(2_654_435_761) % (INDEX_ENTRIES * 40))
        .collect();
    let mut group = c.benchmark_group("index_lookup");
    group.throughput(Throughput::Elements(targets.len() as u64));
    group.bench_function("offset_1GiB_segment", |b| {
        b.iter(|| {
            for &target in &targets {
                black_box(offsets.lookup(black_box(target)));
            }
        })
    });
    group.bench_function("time_1GiB_segment", |b| {
        b.iter(|| {
            for &target in &targets {
                black_box(times.lookup(black_box(1_700_000_000_000 + i64::from(target) / 4)));
            }
        })
    });
    group.finish();
}

fn segment_read(c: &mut Criterion) {
    let mut group = c.benchmark_group("segment_read");
    group.sample_size(READ_SAMPLES);
    group.throughput(Throughput::Bytes(READ_MAX_BYTES as u64));
    group.bench_function("page_cache_1MiB", |b| {
        b.iter_custom(|iters| {
            let config = LogConfig {
                tail_cache_bytes: 0,
                ..config()
            };
            with_log(config, move |log| Box::pin(read_over_and_over(log, iters)))
        })
    });
    group.finish();
}

/// Appends `READ_LOG_BYTES`, then times `iters` reads of `READ_MAX_BYTES`
/// walking the log from its start, round and round.
async fn read_over_and_over(log: Rc<PartitionLog>, iters: u64) -> Duration {
    let batch = batch(RECORDS_PER_BATCH[1]);
    for _ in 0..READ_LOG_BYTES / batch.len() {
        log.append(BytesMut::from(&batch[..]), AppendWait::Nothing, None)
            .await
            .expect("append");
    }
    drain(&log, &batch).await;
    let end = log.high_watermark();
    let mut offset = 0;
    let start = Instant::now();
    for _ in 0..iters {
        let got = log
            .read(offset, end, READ_MAX_BYTES, true)
            .await
            .expect("read");
        let last = got
            .last()
            .and_then(|b| BatchHeader::view(b))
            .expect("a batch");
        offset = last.last_offset() + 1;
        if offset >= end {
            offset = 0;
        }
        black_box(got);
    }
    start.elapsed()
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    targets = offset_assignment, request_append, frame_append, segment_append, index_lookup,
        segment_read
}
criterion_main!(benches);
