//! Metrics: what each shard counts about itself, and how a scrape reads it.
//!
//! A shard is one thread, so its metrics are that thread's `Recorder` (a
//! thread-local of plain `Cell`s and hdrhistograms): only the owner writes
//! them, and a hook is an add to memory no other core touches, with no
//! atomic, no lock and no allocation (a latency histogram is made the
//! first time its API is seen on the shard, at most `API_KEYS_MAX` of
//! them). A scrape (`admin`) asks every shard for a `ShardMetrics`
//! snapshot over the mesh (`ShardRequest::Metrics`, built by
//! `shard::metrics`), merges them off the hot path (`snapshot`) and writes
//! the Prometheus text format (`export`). A thread that never ran
//! `enable` (the tools, tests, `metrics.enabled=false`) records nothing:
//! each hook returns at its first check.
//!
//! Invariant: imports nothing of shoal, so every layer may call its hooks;
//! the series a scrape shows are bounded (docs/operations.md, "Metrics":
//! per API and version, per shard, per partition only when
//! `metrics.partition.series.enabled`).

pub mod export;
pub mod snapshot;
#[cfg(test)]
mod tests;

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

pub use snapshot::{
    group_lag, BrokerMetrics, ClusterGauges, GroupMetrics, PartitionMetrics, ShardGauges,
    ShardMetrics,
};

/// Request API keys counted: Kafka's run below 100 today; a frame with a
/// larger key is refused by the dispatcher and not counted here.
pub const API_KEYS_MAX: usize = 128;
/// Request versions counted per key: Kafka's highest is 17 (Fetch) today.
pub const API_VERSIONS_MAX: usize = 32;
/// The longest time a histogram tells apart; longer ones count as this
/// (in the `+Inf` bucket). A Fetch long poll waits up to the client's
/// `fetch.max.wait.ms`, seconds at most in practice.
pub const DURATION_US_MAX: u64 = 60_000_000;
/// The largest group commit a histogram tells apart, in bytes: above the
/// writer's group bound (`log::partition::writer`).
pub const GROUP_BYTES_MAX: u64 = 1 << 31;
/// The most batches of one group commit a histogram tells apart.
pub const GROUP_BATCHES_MAX: u64 = 1 << 20;
/// Significant decimal digits of every histogram: 1% precision, about
/// 27 KiB per latency histogram.
const SIGNIFICANT_DIGITS: u8 = 2;

/// Declares the shard counters once: the snapshot's `Counters` (plain
/// data, sent over the mesh) and the recorder's cells.
macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// A shard's counters at one moment, each since the shard started.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct Counters {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl Counters {
            /// Adds `other`'s counts to these (merging shards).
            pub fn add(&mut self, other: &Counters) {
                $(self.$name += other.$name;)*
            }
        }

        struct Cells {
            $($name: Cell<u64>,)*
        }

        impl Cells {
            const fn new() -> Cells {
                Cells { $($name: Cell::new(0),)* }
            }

            fn read(&self) -> Counters {
                Counters { $($name: self.$name.get(),)* }
            }
        }
    };
}

counters! {
    /// Record batch bytes appended from produce requests.
    bytes_in,
    /// Records appended from produce requests.
    records_in,
    /// Request frame bytes read from clients.
    network_received_bytes,
    /// Response bytes written to clients (set from the connections' own
    /// counts at a snapshot).
    network_sent_bytes,
    connections_opened,
    connections_closed,
    /// Reactor stalls in which the shard's thread held the CPU.
    stalls_busy,
    /// Reactor stalls in which the OS gave the core to something else.
    stalls_preempted,
    /// Milliseconds of stalled windows, both kinds.
    stall_ms,
    /// Calls this shard sent to other shards over the mesh.
    cross_shard_calls,
    /// Produce and fetch partition parts run here or forwarded (set from
    /// the shard's routing counts at a snapshot).
    produce_parts_local,
    produce_parts_forwarded,
    fetch_parts_local,
    fetch_parts_forwarded,
    isr_shrinks,
    isr_expands,
    retention_deleted_segments,
    cleaner_passes,
    cleaner_read_bytes,
    cleaner_written_bytes,
    cleaner_removed_records,
    /// File operations through the shard's io_uring rings (glommio's
    /// counts, added up at each snapshot).
    io_file_reads,
    io_file_read_bytes,
    io_file_writes,
    io_file_written_bytes,
    /// Tasks the shard's executor ran, and microseconds it ran them.
    tasks_executed,
    busy_us,
}

/// One shard's metrics as it records them.
struct Recorder {
    enabled: Cell<bool>,
    cells: Cells,
    /// Requests by API key and version.
    requests: [[Cell<u64>; API_VERSIONS_MAX]; API_KEYS_MAX],
    histograms: RefCell<Histograms>,
}

/// The recorder's histograms, each made when first recorded into.
struct Histograms {
    /// Request latency in microseconds, by API key.
    latency_us: Vec<Option<Histogram<u64>>>,
    fsync_us: Option<Histogram<u64>>,
    group_bytes: Option<Histogram<u64>>,
    group_batches: Option<Histogram<u64>>,
}

thread_local! {
    static RECORDER: Recorder = const {
        Recorder {
            enabled: Cell::new(false),
            cells: Cells::new(),
            requests: [const { [const { Cell::new(0) }; API_VERSIONS_MAX] }; API_KEYS_MAX],
            histograms: RefCell::new(Histograms {
                latency_us: Vec::new(),
                fsync_us: None,
                group_bytes: None,
                group_batches: None,
            }),
        }
    };
}

/// Turns recording on (or off) for this thread: a shard at its start,
/// with `metrics.enabled`.
pub fn enable(on: bool) {
    RECORDER.with(|recorder| recorder.enabled.set(on));
}

fn enabled() -> bool {
    RECORDER.with(|recorder| recorder.enabled.get())
}

/// Adds `n` to the counter `cell` picks, when recording.
fn bump(cell: impl Fn(&Cells) -> &Cell<u64>, n: u64) {
    RECORDER.with(|recorder| {
        if recorder.enabled.get() {
            let cell = cell(&recorder.cells);
            cell.set(cell.get().wrapping_add(n));
        }
    });
}

/// Records `value` in the histogram `pick` chooses, made with `high` as
/// its bound the first time.
fn record(pick: impl Fn(&mut Histograms) -> &mut Option<Histogram<u64>>, high: u64, value: u64) {
    RECORDER.with(|recorder| {
        if recorder.enabled.get() {
            let mut histograms = recorder.histograms.borrow_mut();
            record_into(pick(&mut histograms), high, value);
        }
    });
}

fn record_into(slot: &mut Option<Histogram<u64>>, high: u64, value: u64) {
    if slot.is_none() {
        *slot = Histogram::new_with_bounds(1, high, SIGNIFICANT_DIGITS).ok();
    }
    if let Some(histogram) = slot {
        histogram.saturating_record(value.max(1));
    }
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

/// A client request being timed, from its frame's arrival to its answer.
pub struct RequestTimer {
    api_key: usize,
    api_version: usize,
    started: Instant,
}

impl RequestTimer {
    /// Counts the request in `frame` (its header starts with the API key
    /// and version) and starts its clock; `None` when this thread does not
    /// record, or the key or version is out of range (the dispatcher
    /// refuses such a frame).
    pub fn start(frame: &[u8]) -> Option<RequestTimer> {
        if !enabled() {
            return None;
        }
        bump(|c| &c.network_received_bytes, frame.len() as u64);
        let &[key_high, key_low, version_high, version_low, ..] = frame else {
            return None;
        };
        let api_key = usize::try_from(i16::from_be_bytes([key_high, key_low])).ok()?;
        let api_version = usize::try_from(i16::from_be_bytes([version_high, version_low])).ok()?;
        (api_key < API_KEYS_MAX && api_version < API_VERSIONS_MAX).then(|| RequestTimer {
            api_key,
            api_version,
            started: Instant::now(),
        })
    }

    /// The answer is ready: counts the request and its latency.
    pub fn done(self) {
        let latency_us = micros(self.started.elapsed());
        RECORDER.with(|recorder| {
            let count = &recorder.requests[self.api_key][self.api_version];
            count.set(count.get() + 1);
            let mut histograms = recorder.histograms.borrow_mut();
            let latencies = &mut histograms.latency_us;
            if latencies.len() <= self.api_key {
                latencies.resize_with(self.api_key + 1, || None);
            }
            record_into(&mut latencies[self.api_key], DURATION_US_MAX, latency_us);
        });
    }
}

/// A client connection, counted open until dropped.
pub struct OpenConnection(());

impl OpenConnection {
    pub fn open() -> OpenConnection {
        bump(|c| &c.connections_opened, 1);
        OpenConnection(())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        bump(|c| &c.connections_closed, 1);
    }
}

/// The owner appended `bytes` of produced batches holding `records`.
pub fn produced(bytes: usize, records: u64) {
    bump(|c| &c.bytes_in, bytes as u64);
    bump(|c| &c.records_in, records);
}

/// The reactor stalled for `window` (`shard::stall`); `busy` when the
/// thread held the CPU.
pub fn stalled(busy: bool, window: Duration) {
    match busy {
        true => bump(|c| &c.stalls_busy, 1),
        false => bump(|c| &c.stalls_preempted, 1),
    }
    bump(
        |c| &c.stall_ms,
        u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
    );
}

/// This shard sent a call to another one.
pub fn cross_shard_call() {
    bump(|c| &c.cross_shard_calls, 1);
}

/// A segment's flush took `elapsed`: its fdatasync, or under
/// `flush.policy=sync` (segments opened `O_DSYNC`) its write, which
/// returns once durable.
pub fn fsynced(elapsed: Duration) {
    record(|h| &mut h.fsync_us, DURATION_US_MAX, micros(elapsed));
}

/// The group-commit writer wrote one group of `batches` appends, `bytes`
/// in all.
pub fn group_committed(batches: usize, bytes: usize) {
    record(|h| &mut h.group_batches, GROUP_BATCHES_MAX, batches as u64);
    record(|h| &mut h.group_bytes, GROUP_BYTES_MAX, bytes as u64);
}

/// The controller committed an ISR this shard's leader proposed, which
/// `shrank` or grew.
pub fn isr_changed(shrank: bool) {
    match shrank {
        true => bump(|c| &c.isr_shrinks, 1),
        false => bump(|c| &c.isr_expands, 1),
    }
}

/// Retention deleted `segments` segments of a log.
pub fn retention_deleted(segments: usize) {
    bump(|c| &c.retention_deleted_segments, segments as u64);
}

/// A cleaning pass read `read_bytes` of segments, wrote `written_bytes`
/// and removed `records`.
pub fn cleaned(read_bytes: u64, written_bytes: u64, records: u64) {
    bump(|c| &c.cleaner_passes, 1);
    bump(|c| &c.cleaner_read_bytes, read_bytes);
    bump(|c| &c.cleaner_written_bytes, written_bytes);
    bump(|c| &c.cleaner_removed_records, records);
}

/// What the executor counted since the last call (glommio's io and
/// executor stats are taken, not read): added to this thread's totals.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecutorDelta {
    pub file_reads: u64,
    pub file_read_bytes: u64,
    pub file_writes: u64,
    pub file_written_bytes: u64,
    pub tasks_executed: u64,
    pub busy_us: u64,
}

pub fn executor_ran(delta: ExecutorDelta) {
    bump(|c| &c.io_file_reads, delta.file_reads);
    bump(|c| &c.io_file_read_bytes, delta.file_read_bytes);
    bump(|c| &c.io_file_writes, delta.file_writes);
    bump(|c| &c.io_file_written_bytes, delta.file_written_bytes);
    bump(|c| &c.tasks_executed, delta.tasks_executed);
    bump(|c| &c.busy_us, delta.busy_us);
}

/// This thread's counters, requests and histograms now, as a snapshot
/// of shard `shard` without its gauges (`shard::metrics` adds them).
pub fn snapshot(shard: usize) -> ShardMetrics {
    RECORDER.with(|recorder| {
        let mut requests = Vec::new();
        for (key, versions) in recorder.requests.iter().enumerate() {
            for (version, count) in versions.iter().enumerate() {
                if count.get() > 0 {
                    // Both below `API_KEYS_MAX` and `API_VERSIONS_MAX`.
                    requests.push((key as i16, version as i16, count.get()));
                }
            }
        }
        let histograms = recorder.histograms.borrow();
        let latency_us = histograms
            .latency_us
            .iter()
            .enumerate()
            .filter_map(|(key, histogram)| Some((key as i16, histogram.clone()?)))
            .collect();
        ShardMetrics {
            shard,
            counters: recorder.cells.read(),
            requests,
            latency_us,
            fsync_us: histograms.fsync_us.clone(),
            group_commit_bytes: histograms.group_bytes.clone(),
            group_commit_batches: histograms.group_batches.clone(),
            ..ShardMetrics::default()
        }
    })
}
