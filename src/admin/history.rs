//! The console's memory of the last hour: every `SAMPLE_INTERVAL` the
//! admin task gathers the broker's own metrics (as a scrape does) and
//! keeps a `Sample` of them: counters since start (the charts show their
//! rates), Produce and Fetch latency percentiles over the interval, and
//! the lag of each group's partitions. The console's charts read it.
//!
//! Invariant: bounded. At most `SAMPLES_MAX` samples (an hour), each with
//! at most `LAGS_PER_SAMPLE_MAX` lags whose names are shared with the
//! previous sample's; two latency histograms kept between samples. Pure:
//! the caller gives the metrics and the time.

use std::collections::{HashSet, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use hdrhistogram::Histogram;
use kafka_protocol::messages::ApiKey;

use crate::metrics::{group_lag, BrokerMetrics};

/// One sample every ten seconds: an hour is `SAMPLES_MAX` of them.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(10);
/// An hour of samples.
pub const SAMPLES_MAX: usize = 360;
/// Group partitions whose lag one sample keeps; past it, the rest (in
/// group, topic, partition order) have no history.
pub const LAGS_PER_SAMPLE_MAX: usize = 256;
/// The APIs whose latency is charted.
const CHARTED_APIS: [ApiKey; 2] = [ApiKey::Produce, ApiKey::Fetch];

/// Request latency over one interval, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub count: u64,
}

/// One partition's lag behind its high watermark for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lag {
    pub group: Rc<str>,
    pub topic: Rc<str>,
    pub partition: i32,
    pub lag: i64,
}

/// The broker at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub time_ms: u64,
    /// Counters since the broker started, over all shards.
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub records_in: u64,
    pub requests: u64,
    /// Produce's latency then Fetch's (`CHARTED_APIS`), over the interval
    /// since the last recorded sample; `None` when none was answered.
    pub latency: [Option<Latency>; 2],
    pub lags: Vec<Lag>,
}

/// The last hour's samples, oldest first.
#[derive(Default)]
pub struct History {
    samples: VecDeque<Sample>,
    /// The cumulative latency histograms of the last recorded sample, by
    /// `CHARTED_APIS` index: the next sample's percentiles are of what
    /// was added since.
    last_latency: [Option<Histogram<u64>>; 2],
}

impl History {
    /// The sample `metrics` make at `time_ms`, against the last recorded
    /// one (the console shows it as "now" without keeping it).
    pub fn sample(&self, metrics: &BrokerMetrics, time_ms: u64) -> Sample {
        let total = metrics.total();
        let latency = std::array::from_fn(|index| {
            let current = metrics.latency_us.get(&(CHARTED_APIS[index] as i16))?;
            interval_latency(current, self.last_latency[index].as_ref())
        });
        Sample {
            time_ms,
            bytes_in: total.bytes_in,
            bytes_out: total.network_sent_bytes,
            records_in: total.records_in,
            requests: metrics.requests.values().sum(),
            latency,
            lags: self.lags(metrics),
        }
    }

    /// Keeps the sample `metrics` make at `time_ms`, forgetting the oldest
    /// past `SAMPLES_MAX`.
    pub fn record(&mut self, metrics: &BrokerMetrics, time_ms: u64) {
        let sample = self.sample(metrics, time_ms);
        if self.samples.len() == SAMPLES_MAX {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
        self.last_latency = std::array::from_fn(|index| {
            metrics
                .latency_us
                .get(&(CHARTED_APIS[index] as i16))
                .cloned()
        });
        assert!(self.samples.len() <= SAMPLES_MAX);
    }

    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter()
    }

    /// Each group partition's lag where this node knows the high
    /// watermark (`BrokerMetrics::high_watermarks`), as `/metrics` shows
    /// it; names shared with the last sample's.
    fn lags(&self, metrics: &BrokerMetrics) -> Vec<Lag> {
        let high_watermarks = metrics.high_watermarks();
        // One `Rc` per name, shared with the last sample's lags.
        let mut names: HashSet<Rc<str>> = HashSet::new();
        if let Some(last) = self.samples.back() {
            for lag in &last.lags {
                names.insert(Rc::clone(&lag.group));
                names.insert(Rc::clone(&lag.topic));
            }
        }
        let mut name = |text: &str| match names.get(text) {
            Some(known) => Rc::clone(known),
            None => {
                let new: Rc<str> = Rc::from(text);
                names.insert(Rc::clone(&new));
                new
            }
        };
        let mut lags = Vec::new();
        for group in &metrics.groups {
            for (topic, partition, offset) in &group.offsets {
                if lags.len() == LAGS_PER_SAMPLE_MAX {
                    return lags;
                }
                let Some(high_watermark) = high_watermarks.get(&(topic.as_str(), *partition))
                else {
                    continue;
                };
                lags.push(Lag {
                    group: name(&group.group),
                    topic: name(topic),
                    partition: *partition,
                    lag: group_lag(*high_watermark, *offset),
                });
            }
        }
        lags
    }
}

/// The percentiles of what `current` (cumulative) holds beyond
/// `previous`; all of `current` when there is no previous one, or when it
/// is not a prefix of `current` (it always is: histograms only grow).
fn interval_latency(
    current: &Histogram<u64>,
    previous: Option<&Histogram<u64>>,
) -> Option<Latency> {
    let mut interval = current.clone();
    if let Some(previous) = previous {
        if interval.subtract(previous).is_err() {
            interval = current.clone();
        }
    }
    (!interval.is_empty()).then(|| Latency {
        p50_us: interval.value_at_quantile(0.5),
        p99_us: interval.value_at_quantile(0.99),
        max_us: interval.max(),
        count: interval.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Counters, GroupMetrics, PartitionMetrics, ShardGauges};

    fn latency(values_us: &[u64]) -> Histogram<u64> {
        let mut histogram = Histogram::new_with_bounds(1, 60_000_000, 2).expect("bounds");
        for &value in values_us {
            histogram.record(value).expect("in range");
        }
        histogram
    }

    fn metrics(bytes_in: u64, produce_us: &[u64], lag_of: &[(&str, i64, i64)]) -> BrokerMetrics {
        let counters = Counters {
            bytes_in,
            ..Counters::default()
        };
        let mut metrics = BrokerMetrics {
            shards: vec![(0, counters, ShardGauges::default())],
            ..BrokerMetrics::default()
        };
        metrics.latency_us.insert(0, latency(produce_us));
        metrics.requests.insert((0, 9), produce_us.len() as u64);
        for (index, &(group, committed, high_watermark)) in lag_of.iter().enumerate() {
            let partition = index as i32;
            metrics.partitions.push(PartitionMetrics {
                topic: "t".into(),
                partition,
                log_start_offset: 0,
                log_end_offset: high_watermark,
                high_watermark,
                size_bytes: 0,
                segments: 1,
                leader: true,
                under_replicated: false,
            });
            metrics.groups.push(GroupMetrics {
                group: group.to_string(),
                state: "Empty",
                members: 0,
                offsets: vec![("t".to_string(), partition, committed)],
            });
        }
        metrics
    }

    #[test]
    fn latency_percentiles_are_of_the_interval_only() {
        let mut history = History::default();
        history.record(&metrics(10, &[1_000; 100], &[]), 1);
        let first = history.samples().last().expect("kept").latency[0].expect("some");
        assert_eq!((first.count, first.p99_us / 10), (100, 100));
        let mut later: Vec<u64> = vec![1_000; 100];
        later.extend([50_000; 100]);
        history.record(&metrics(20, &later, &[]), 2);
        let second = history.samples().last().expect("kept").latency[0].expect("some");
        assert_eq!(second.count, 100, "only what the interval added");
        assert_eq!(second.p50_us / 1_000, 50);
        assert_eq!(history.samples().last().map(|s| s.bytes_in), Some(20));
        // No Produce answered since: no latency, not the last one again.
        history.record(&metrics(20, &later, &[]), 3);
        assert_eq!(history.samples().last().expect("kept").latency[0], None);
        assert_eq!(history.samples().last().expect("kept").latency[1], None);
    }

    #[test]
    fn an_hour_is_kept_and_no_more() {
        let mut history = History::default();
        for time_ms in 0..(SAMPLES_MAX as u64 + 25) {
            history.record(&metrics(time_ms, &[], &[("g", 3, 10)]), time_ms);
        }
        let times: Vec<u64> = history.samples().map(|s| s.time_ms).collect();
        assert_eq!(times.len(), SAMPLES_MAX);
        assert_eq!(times[0], 25);
        let last = history.samples().last().expect("kept");
        assert_eq!(last.lags.len(), 1);
        assert_eq!(last.lags[0].lag, 7);
    }

    #[test]
    fn lags_are_bounded_and_names_shared_between_samples() {
        let many: Vec<(&str, i64, i64)> =
            (0..LAGS_PER_SAMPLE_MAX + 10).map(|_| ("g", 0, 5)).collect();
        let mut history = History::default();
        history.record(&metrics(0, &[], &many), 0);
        history.record(&metrics(0, &[], &many), 1);
        let samples: Vec<&Sample> = history.samples().collect();
        assert_eq!(samples[1].lags.len(), LAGS_PER_SAMPLE_MAX);
        assert!(Rc::ptr_eq(
            &samples[0].lags[0].group,
            &samples[1].lags[0].group
        ));
        assert!(Rc::ptr_eq(
            &samples[0].lags[3].topic,
            &samples[1].lags[3].topic
        ));
        // A partition this node does not lead has no lag here, unless its
        // leader gave its high watermark.
        let mut followed = metrics(0, &[], &[("g", 0, 5)]);
        followed.partitions[0].leader = false;
        assert!(history.sample(&followed, 2).lags.is_empty());
        followed.led_elsewhere.insert(("t".into(), 0), 9);
        let lags = history.sample(&followed, 3).lags;
        assert_eq!(lags.iter().map(|lag| lag.lag).collect::<Vec<_>>(), [9]);
    }
}
