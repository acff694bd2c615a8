//! One shard's quota sensors: a windowed rate (`rate.rs`) per quota kind
//! and (user, client id) as `precedence` keys it, of what this shard's
//! connections did, plus the latest rates the other shards reported for
//! the same keys. A quota is per broker, as in Kafka, so a request is
//! checked against this shard's rate plus the others': a user's
//! connections spread over several shards share one quota.
//!
//! Invariant: pure (the caller passes the clock and carries the rates
//! between shards); at most `SENSORS_MAX` sensors and, per other shard,
//! at most as many reported rates. A sensor with no event for the whole
//! window has a rate of 0 and is dropped at the next `local_rates`.

use std::collections::HashMap;

use super::rate::{throttle_time_ms, Rate, WindowConfig};

/// Most sensors a shard keeps: one per active (kind, user, client id).
/// Past it a new key is not measured (and not throttled) until idle ones
/// expire; one log line says so. Ten thousand active clients per shard is
/// far beyond what a broker's quotas are set up for, and the bound keeps
/// a client-id flood from growing the map without end.
pub const SENSORS_MAX: usize = 10_000;

/// The quotas a request is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuotaKind {
    /// Produce request bytes (`producer_byte_rate`).
    Produce,
    /// Consumer fetch response bytes (`consumer_byte_rate`).
    Fetch,
    /// Request handling time, in percent of one thread (`request_percentage`).
    Request,
    /// Partitions created or deleted (`controller_mutation_rate`), on the
    /// controller's token buckets (`mutation.rs`), never on a tracker.
    ControllerMutation,
}

/// What one rate is measured over: the kind, and the user and client id
/// as the quota's level keys them (empty when not part of the key).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SensorKey {
    pub kind: QuotaKind,
    pub user: String,
    pub client_id: String,
}

#[derive(Debug)]
struct Sensor {
    rate: Rate,
    last_event_ms: u64,
}

/// A shard's sensors and what the other shards reported.
#[derive(Debug)]
pub struct QuotaTracker {
    config: WindowConfig,
    shard_id: usize,
    shard_count: usize,
    sensors: HashMap<SensorKey, Sensor>,
    /// Per key, the rate each shard last reported (0 for this one).
    remote: HashMap<SensorKey, Vec<f64>>,
    /// A key was refused at `SENSORS_MAX` since the last report.
    refused: bool,
}

impl QuotaTracker {
    pub fn new(config: WindowConfig, shard_id: usize, shard_count: usize) -> QuotaTracker {
        QuotaTracker {
            config,
            shard_id,
            shard_count,
            sensors: HashMap::new(),
            remote: HashMap::new(),
            refused: false,
        }
    }

    pub fn config(&self) -> WindowConfig {
        self.config
    }

    /// Records `value` for `key` at `now_ms` and returns the throttle
    /// time that brings the broker-wide rate back to `bound` (0 within
    /// it), at most `max_throttle_ms`.
    pub fn record(
        &mut self,
        key: SensorKey,
        bound: f64,
        value: f64,
        now_ms: u64,
        max_throttle_ms: u64,
    ) -> u64 {
        let remote: f64 = self
            .remote
            .get(&key)
            .map_or(0.0, |rates| rates.iter().sum());
        if !self.sensors.contains_key(&key) && self.sensors.len() >= SENSORS_MAX {
            self.refused = true;
            return 0;
        }
        let config = self.config;
        let sensor = self.sensors.entry(key).or_insert_with(|| Sensor {
            rate: Rate::new(config),
            last_event_ms: now_ms,
        });
        sensor.rate.record(config, value, now_ms);
        sensor.last_event_ms = now_ms;
        let local = sensor.rate.measure(config, now_ms);
        let window_ms = sensor.rate.window_ms(config, now_ms);
        throttle_time_ms(local + remote, bound, window_ms).min(max_throttle_ms)
    }

    /// Takes back a value recorded for `key` (a throttled fetch sends no
    /// data, so its bytes do not count, as Kafka's `unrecordQuotaSensor`).
    pub fn unrecord(&mut self, key: &SensorKey, value: f64, now_ms: u64) {
        let config = self.config;
        if let Some(sensor) = self.sensors.get_mut(key) {
            sensor.rate.record(config, -value, now_ms);
        }
    }

    /// This shard's rate of every active key, for the other shards; drops
    /// the sensors idle for the whole window. The second value is whether
    /// keys were refused at `SENSORS_MAX` since the last call.
    pub fn local_rates(&mut self, now_ms: u64) -> (Vec<(SensorKey, f64)>, bool) {
        let config = self.config;
        self.sensors
            .retain(|_, sensor| now_ms.saturating_sub(sensor.last_event_ms) < config.expiry_ms());
        let rates = self
            .sensors
            .iter_mut()
            .map(|(key, sensor)| (key.clone(), sensor.rate.measure(config, now_ms)))
            .collect();
        (rates, std::mem::take(&mut self.refused))
    }

    /// Takes `from`'s report: its rates replace all it reported before.
    pub fn absorb(&mut self, from: usize, rates: Vec<(SensorKey, f64)>) {
        if from >= self.shard_count || from == self.shard_id {
            return;
        }
        for reported in self.remote.values_mut() {
            reported[from] = 0.0;
        }
        let shard_count = self.shard_count;
        for (key, rate) in rates.into_iter().take(SENSORS_MAX) {
            self.remote
                .entry(key)
                .or_insert_with(|| vec![0.0; shard_count])[from] = rate;
        }
        self.remote
            .retain(|_, reported| reported.iter().any(|rate| *rate != 0.0));
    }

    /// Whether there is anything to report or to clear at the others.
    pub fn active(&self) -> bool {
        !self.sensors.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: WindowConfig = WindowConfig {
        samples: 11,
        window_ms: 1000,
    };
    const NO_MAX: u64 = u64::MAX;

    fn key(user: &str) -> SensorKey {
        SensorKey {
            kind: QuotaKind::Produce,
            user: user.to_string(),
            client_id: String::new(),
        }
    }

    #[test]
    fn within_the_bound_nothing_is_throttled_and_past_it_kafkas_time() {
        let mut tracker = QuotaTracker::new(CONFIG, 0, 1);
        // 1000 bytes over the 10 s a new sensor counts: 100/s.
        assert_eq!(tracker.record(key("a"), 100.0, 1000.0, 0, NO_MAX), 0);
        // 3000 bytes: 300/s against 100/s, (300 - 100) / 100 * 10 s.
        assert_eq!(tracker.record(key("a"), 100.0, 2000.0, 0, NO_MAX), 20_000);
        assert_eq!(tracker.record(key("a"), 100.0, 0.0, 0, 500), 500);
        // Another key has its own rate.
        assert_eq!(tracker.record(key("b"), 100.0, 1000.0, 0, NO_MAX), 0);
    }

    #[test]
    fn another_shards_rate_counts_toward_the_quota() {
        let mut one = QuotaTracker::new(CONFIG, 0, 2);
        let mut two = QuotaTracker::new(CONFIG, 1, 2);
        // Each shard alone stays within 100/s...
        assert_eq!(one.record(key("a"), 100.0, 800.0, 0, NO_MAX), 0);
        assert_eq!(two.record(key("a"), 100.0, 800.0, 0, NO_MAX), 0);
        // ... but once they hear each other, the user is at 160/s.
        let (rates, refused) = one.local_rates(0);
        assert!(!refused);
        two.absorb(0, rates);
        let throttle = two.record(key("a"), 100.0, 0.0, 0, NO_MAX);
        assert_eq!(throttle, 6_000, "(160 - 100) / 100 * 10 s");
        // A report without the key clears it.
        two.absorb(0, Vec::new());
        assert_eq!(two.record(key("a"), 100.0, 0.0, 0, NO_MAX), 0);
        // Reports from itself or an unknown shard are ignored.
        two.absorb(1, vec![(key("a"), 1e9)]);
        two.absorb(7, vec![(key("a"), 1e9)]);
        assert_eq!(two.record(key("a"), 100.0, 0.0, 0, NO_MAX), 0);
    }

    #[test]
    fn idle_sensors_are_dropped_and_unrecord_takes_back() {
        let mut tracker = QuotaTracker::new(CONFIG, 0, 1);
        tracker.record(key("a"), 100.0, 3000.0, 0, NO_MAX);
        tracker.unrecord(&key("a"), 2000.0, 0);
        assert_eq!(tracker.record(key("a"), 100.0, 0.0, 0, NO_MAX), 0);
        assert!(tracker.active());
        let (rates, _) = tracker.local_rates(CONFIG.expiry_ms());
        assert!(rates.is_empty());
        assert!(!tracker.active());
    }

    #[test]
    fn sensors_are_bounded() {
        let mut tracker = QuotaTracker::new(CONFIG, 0, 1);
        for n in 0..SENSORS_MAX {
            tracker.record(key(&n.to_string()), 1.0, 0.0, 0, NO_MAX);
        }
        assert_eq!(tracker.record(key("one more"), 1.0, 1e9, 0, NO_MAX), 0);
        assert_eq!(tracker.sensors.len(), SENSORS_MAX);
        assert!(tracker.local_rates(0).1, "the refusal is reported once");
        assert!(!tracker.local_rates(0).1);
    }
}
