//! Kafka's windowed rate (`SampledStat` and `Rate` in Kafka's metrics):
//! `quota.window.num` samples of `quota.window.size.seconds` each, plus
//! one that overlaps the window's start; a value is added to the current
//! sample, which is replaced by a fresh one once it is a window old. The
//! rate is the samples' sum over the time they cover, taken as at least
//! `samples - 1` whole windows (so a sensor that just started does not
//! measure a burst as a huge rate). And Kafka's throttle time
//! (`QuotaUtils.throttleTime`): the delay that brings an observed rate O
//! back to the bound T over the window W, `(O - T) / T * W`.
//!
//! Invariant: pure (the caller passes the clock), and a `Rate` holds at
//! most `samples + 1` samples, allocated once.

use crate::config::ConnectionConfig;

/// Milliseconds in a second: rates are per second.
const MS_PER_SECOND: f64 = 1000.0;

/// `quota.window.num` and `quota.window.size.seconds`, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    pub samples: usize,
    pub window_ms: u64,
}

impl WindowConfig {
    /// Kafka's defaults: `quota.window.num=11`, `quota.window.size.seconds=1`.
    #[cfg(test)]
    pub const KAFKA_DEFAULT: WindowConfig = WindowConfig {
        samples: 11,
        window_ms: 1000,
    };

    /// `quota.window.num` and `quota.window.size.seconds` of `config`.
    pub fn of(config: &ConnectionConfig) -> WindowConfig {
        WindowConfig {
            samples: config.quota_window_num,
            window_ms: config
                .quota_window_size_seconds
                .saturating_mul(MS_PER_SECOND as u64),
        }
    }

    /// `controller.quota.window.num` and
    /// `controller.quota.window.size.seconds` of `config`: the controller
    /// mutation quota's (`mutation.rs`).
    pub fn controller_of(config: &ConnectionConfig) -> WindowConfig {
        WindowConfig {
            samples: config.controller_quota_window_num,
            window_ms: config
                .controller_quota_window_size_seconds
                .saturating_mul(MS_PER_SECOND as u64),
        }
    }

    /// How long a sample without events stays counted.
    pub fn expiry_ms(&self) -> u64 {
        self.samples as u64 * self.window_ms
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    start_ms: u64,
    last_event_ms: u64,
    value: f64,
}

impl Sample {
    fn new(now_ms: u64) -> Sample {
        Sample {
            start_ms: now_ms,
            last_event_ms: now_ms,
            value: 0.0,
        }
    }
}

/// One sensor's samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    samples: Vec<Sample>,
    current: usize,
}

impl Rate {
    pub fn new(config: WindowConfig) -> Rate {
        Rate {
            samples: Vec::with_capacity(config.samples + 1),
            current: 0,
        }
    }

    /// Adds `value` at `now_ms` (a negative value takes back one added).
    pub fn record(&mut self, config: WindowConfig, value: f64, now_ms: u64) {
        if self.samples.is_empty() {
            self.samples.push(Sample::new(now_ms));
        }
        let started = self.samples[self.current].start_ms;
        if now_ms.saturating_sub(started) >= config.window_ms {
            self.advance(config, now_ms);
        }
        let sample = &mut self.samples[self.current];
        sample.value += value;
        sample.last_event_ms = now_ms;
    }

    fn advance(&mut self, config: WindowConfig, now_ms: u64) {
        self.current = (self.current + 1) % (config.samples + 1);
        if self.current >= self.samples.len() {
            self.samples.push(Sample::new(now_ms));
        } else {
            self.samples[self.current] = Sample::new(now_ms);
        }
        debug_assert!(self.samples.len() <= config.samples + 1);
    }

    /// Samples with no event for the whole window start over.
    fn purge(&mut self, config: WindowConfig, now_ms: u64) {
        for sample in &mut self.samples {
            if now_ms.saturating_sub(sample.last_event_ms) >= config.expiry_ms() {
                *sample = Sample::new(now_ms);
            }
        }
    }

    /// The time the rate is taken over (Kafka's `Rate.windowSize`): since
    /// the oldest sample began, at least `samples - 1` whole windows, at
    /// least 1 ms.
    pub fn window_ms(&mut self, config: WindowConfig, now_ms: u64) -> u64 {
        self.purge(config, now_ms);
        let oldest_ms = self
            .samples
            .iter()
            .map(|sample| sample.start_ms)
            .min()
            .unwrap_or(now_ms);
        let mut elapsed_ms = now_ms.saturating_sub(oldest_ms);
        let full_windows = elapsed_ms / config.window_ms;
        let min_full_windows = config.samples.saturating_sub(1) as u64;
        if full_windows < min_full_windows {
            elapsed_ms += (min_full_windows - full_windows) * config.window_ms;
        }
        elapsed_ms.max(1)
    }

    /// The rate per second at `now_ms`.
    pub fn measure(&mut self, config: WindowConfig, now_ms: u64) -> f64 {
        let window_ms = self.window_ms(config, now_ms);
        let total: f64 = self.samples.iter().map(|sample| sample.value).sum();
        total / (window_ms as f64 / MS_PER_SECOND)
    }

    /// When the last value was recorded, if ever.
    pub fn last_event_ms(&self) -> Option<u64> {
        self.samples.iter().map(|sample| sample.last_event_ms).max()
    }
}

/// Kafka's `QuotaUtils.throttleTime`: how long to wait for `observed`
/// (per second, over `window_ms`) to come back down to `bound`; 0 within it.
pub fn throttle_time_ms(observed: f64, bound: f64, window_ms: u64) -> u64 {
    if observed <= bound || bound <= 0.0 {
        return 0;
    }
    ((observed - bound) / bound * window_ms as f64).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: WindowConfig = WindowConfig::KAFKA_DEFAULT;

    #[test]
    fn a_new_rate_counts_ten_whole_windows() {
        let mut rate = Rate::new(CONFIG);
        rate.record(CONFIG, 1000.0, 5_000);
        // 0 ms elapsed, taken as 10 windows: 1000 bytes over 10 s.
        assert_eq!(rate.window_ms(CONFIG, 5_000), 10_000);
        assert!((rate.measure(CONFIG, 5_000) - 100.0).abs() < 1e-9);
        // 2.5 s on: 2 whole windows have passed, 8 are added.
        assert_eq!(rate.window_ms(CONFIG, 7_500), 10_500);
    }

    #[test]
    fn past_ten_windows_the_elapsed_time_counts() {
        let mut rate = Rate::new(CONFIG);
        for second in 0..=12u64 {
            rate.record(CONFIG, 100.0, 1_000 * second);
        }
        // 12 samples (11 + the overlapping one); the first was replaced
        // when the 13th window began.
        assert_eq!(rate.samples.len(), CONFIG.samples + 1);
        // At 12.5 s the sample of second 1 has had no event for 11 s and
        // is dropped: seconds 2 to 12 remain, over 10.5 s.
        let window_ms = rate.window_ms(CONFIG, 12_500);
        assert_eq!(window_ms, 10_500);
        let measured = rate.measure(CONFIG, 12_500);
        assert!((measured - 1100.0 / 10.5).abs() < 1e-9, "{measured}");
    }

    #[test]
    fn idle_samples_expire_after_the_whole_window() {
        let mut rate = Rate::new(CONFIG);
        rate.record(CONFIG, 5000.0, 0);
        assert!(rate.measure(CONFIG, 10_999) > 0.0);
        assert_eq!(rate.measure(CONFIG, 11_000), 0.0);
    }

    #[test]
    fn a_negative_value_takes_back_a_recorded_one() {
        let mut rate = Rate::new(CONFIG);
        rate.record(CONFIG, 300.0, 100);
        rate.record(CONFIG, 700.0, 100);
        rate.record(CONFIG, -700.0, 100);
        // 300 over the 10 whole windows a new rate counts.
        assert!((rate.measure(CONFIG, 100) - 30.0).abs() < 1e-9);
    }

    #[test]
    fn throttle_time_brings_the_rate_back_to_the_bound() {
        // Kafka's QuotaUtilsTest: 2x the bound over 10 s waits 10 s.
        assert_eq!(throttle_time_ms(20.0, 10.0, 10_000), 10_000);
        assert_eq!(throttle_time_ms(15.0, 10.0, 11_000), 5_500);
        assert_eq!(throttle_time_ms(10.0, 10.0, 11_000), 0);
        assert_eq!(throttle_time_ms(5.0, 10.0, 11_000), 0);
        // Waiting that long at rate 0 brings the measured rate to the bound.
        let (observed, bound, window_ms) = (3000.0, 1000.0, 10_000u64);
        let wait = throttle_time_ms(observed, bound, window_ms);
        let total = observed * window_ms as f64 / 1000.0;
        let after = total / ((window_ms + wait) as f64 / 1000.0);
        assert!((after - bound).abs() < 1e-6);
    }
}
