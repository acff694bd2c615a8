//! What a benchmark run counts — records, bytes, a latency histogram, broker
//! errors by name — shared by its worker threads, the progress line printed
//! every second, and the report printed at the end.
//!
//! Invariant: workers record per response or per fetch, never per record
//! under the lock more often than that; the progress thread only reads.
//!
//! Why a `Mutex` here: this is the load generator, a client, not the broker
//! (whose produce and fetch paths take no lock). Its workers are OS threads
//! that take the histogram lock once per Produce or Fetch response — a few
//! thousand times a second, uncontended in practice — which costs far less
//! than a per-thread histogram merged under the progress line would save.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency the histogram holds; longer ones are clamped to it.
pub const LATENCY_US_MAX: u64 = 600_000_000;
/// Significant decimal digits the histogram keeps (0.1% resolution).
const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;
/// How often the progress line is printed.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// Bytes in the "MB" of `mb_per_s`: MiB, as kafka-producer-perf-test counts.
const BYTES_PER_MB: f64 = 1024.0 * 1024.0;

/// Counters shared by one run's threads.
pub struct Meter {
    records: AtomicU64,
    bytes: AtomicU64,
    latency_us: Mutex<Histogram<u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
    /// Set when the run must end early (a worker failed, or time is up).
    stop: AtomicBool,
}

impl Meter {
    pub fn new() -> anyhow::Result<Arc<Meter>> {
        Ok(Arc::new(Meter {
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            latency_us: Mutex::new(new_histogram()?),
            errors: Mutex::new(BTreeMap::new()),
            stop: AtomicBool::new(false),
        }))
    }

    /// Counts `records` records of `bytes` payload bytes; returns the
    /// record total before them.
    pub fn add(&self, records: u64, bytes: u64) -> u64 {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.records.fetch_add(records, Ordering::Relaxed)
    }

    /// Counts up to `records` records without taking the total past
    /// `limit`; returns how many were counted.
    pub fn claim(&self, records: u64, limit: u64) -> u64 {
        let before = self
            .records
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |total| {
                Some(total.max(limit.min(total.saturating_add(records))))
            })
            .unwrap_or_else(|total| total);
        records.min(limit.saturating_sub(before))
    }

    pub fn add_bytes(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    /// The latency histogram, in microseconds, to record into.
    pub fn latencies(&self) -> MutexGuard<'_, Histogram<u64>> {
        // A worker that panicked while recording leaves counts that are
        // still counts; keep going with them.
        self.latency_us
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts `records` records lost to the broker error `name`.
    pub fn error(&self, name: String, records: u64) {
        *self
            .errors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(name)
            .or_default() += records;
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The report of a run that took `elapsed`.
    pub fn report(&self, mode: &'static str, topic: &str, elapsed: Duration) -> Report {
        let records = self.records();
        let bytes = self.bytes.load(Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        let histogram = self.latencies();
        Report {
            mode,
            topic: topic.to_owned(),
            records,
            bytes,
            seconds,
            records_per_s: records as f64 / seconds,
            mb_per_s: bytes as f64 / BYTES_PER_MB / seconds,
            latency_ms: (!histogram.is_empty()).then(|| Percentiles::of(&histogram)),
            errors: self
                .errors
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone(),
        }
    }
}

/// A latency histogram in microseconds, up to [`LATENCY_US_MAX`].
fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_DIGITS)
        .context("creating latency histogram")
}

/// `duration` in whole microseconds, within the histogram's range.
pub fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, LATENCY_US_MAX)
}

/// The one JSON object `--json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub topic: String,
    pub records: u64,
    /// Payload (value) bytes of those records.
    pub bytes: u64,
    pub seconds: f64,
    pub records_per_s: f64,
    pub mb_per_s: f64,
    /// `null` when nothing was timed (`--acks 0`).
    pub latency_ms: Option<Percentiles>,
    /// Records lost per Kafka error name.
    pub errors: BTreeMap<String, u64>,
}

impl Report {
    /// The human-readable summary, shaped like kafka-producer-perf-test's.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "{} records {} in {:.2} s, {:.1} records/s ({:.2} MB/s)",
            self.records,
            match self.mode {
                "produce" => "sent",
                _ => "received",
            },
            self.seconds,
            self.records_per_s,
            self.mb_per_s
        );
        if let Some(p) = &self.latency_ms {
            line += &format!(
                ", latency ms p50 {:.3}, p90 {:.3}, p99 {:.3}, p99.9 {:.3}, max {:.3}",
                p.p50, p.p90, p.p99, p.p999, p.max
            );
        }
        for (name, records) in &self.errors {
            line += &format!(", {records} records failed with {name}");
        }
        line
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    fn of(histogram: &Histogram<u64>) -> Percentiles {
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }
}

/// Prints `mode: N records/s, M MB/s, p99 X ms` to stderr every second
/// until dropped.
pub struct Progress {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    pub fn start(mode: &'static str, meter: Arc<Meter>) -> Progress {
        let done = Arc::new(AtomicBool::new(false));
        let thread = thread::spawn({
            let done = done.clone();
            move || {
                let mut last = (Instant::now(), 0, 0);
                while !done.load(Ordering::Relaxed) {
                    thread::park_timeout(PROGRESS_INTERVAL.saturating_sub(last.0.elapsed()));
                    if done.load(Ordering::Relaxed) || last.0.elapsed() < PROGRESS_INTERVAL {
                        continue;
                    }
                    let now = (
                        Instant::now(),
                        meter.records(),
                        meter.bytes.load(Ordering::Relaxed),
                    );
                    let seconds = (now.0 - last.0).as_secs_f64();
                    let p99 = {
                        let histogram = meter.latencies();
                        (!histogram.is_empty())
                            .then(|| histogram.value_at_quantile(0.99) as f64 / 1000.0)
                    };
                    eprintln!(
                        "{mode}: {:.0} records/s, {:.2} MB/s, p99 {}, {} records",
                        (now.1 - last.1) as f64 / seconds,
                        (now.2 - last.2) as f64 / BYTES_PER_MB / seconds,
                        p99.map_or("-".to_owned(), |ms| format!("{ms:.3} ms")),
                        now.1
                    );
                    last = now;
                }
            }
        });
        Progress {
            done,
            thread: Some(thread),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            // The thread only prints; a panic there must not hide the report.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_has_rates_percentiles_and_errors() {
        let meter = Meter::new().unwrap();
        meter.add(1000, 100_000);
        {
            let mut latencies = meter.latencies();
            for us in 1..=1000 {
                latencies.record(us * 10).unwrap();
            }
        }
        meter.error("NOT_LEADER_OR_FOLLOWER".to_owned(), 7);
        let report = meter.report("produce", "t", Duration::from_secs(2));
        assert_eq!(report.records, 1000);
        assert_eq!(report.records_per_s, 500.0);
        let p = report.latency_ms.unwrap();
        assert!(p.p50 <= p.p90 && p.p90 <= p.p99 && p.p99 <= p.p999 && p.p999 <= p.max);
        assert!((p.max - 10.0).abs() < 0.01, "{}", p.max);
        assert_eq!(report.errors["NOT_LEADER_OR_FOLLOWER"], 7);
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert_eq!(json["latency_ms"]["p999"].as_f64(), Some(p.p999));
        assert!(report.summary().contains("7 records failed"));

        assert_eq!(meter.claim(10, 1005), 5);
        assert_eq!(meter.claim(10, 1005), 0);
        assert_eq!(meter.records(), 1005);
        assert_eq!(meter.claim(3, u64::MAX), 3);

        let empty = Meter::new().unwrap().report("consume", "t", Duration::ZERO);
        assert!(empty.latency_ms.is_none());
        assert!(empty.records_per_s.is_finite());
    }

    #[test]
    fn micros_clamp_to_the_histogram() {
        assert_eq!(micros(Duration::ZERO), 1);
        assert_eq!(micros(Duration::from_millis(3)), 3000);
        assert_eq!(micros(Duration::from_secs(1 << 40)), LATENCY_US_MAX);
    }
}
