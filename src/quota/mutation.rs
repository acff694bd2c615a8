//! The controller mutation quota (KIP-599, Kafka's
//! `ControllerMutationQuotaManager`): `controller_mutation_rate` is the
//! partitions per second a user or client id may create or delete
//! (CreateTopics, CreatePartitions, DeleteTopics), found by the same
//! precedence as the other client quotas (`precedence.rs`).
//!
//! Measured with Kafka's `TokenBucket`, not a windowed rate: the bucket
//! holds at most `burst = controller.quota.window.num *
//! controller.quota.window.size.seconds * rate` tokens, refills at the
//! rate, and each partition mutated takes one. A new bucket is full.
//! Requests of versions that know THROTTLING_QUOTA_EXCEEDED are *strict*
//! (Kafka's `StrictControllerMutationQuota`): a topic is refused once the
//! bucket is below zero, while a topic that finds it at zero or above is
//! taken whole even if that takes it below; the refusal's throttle time
//! is the time the bucket needs to climb back to zero. Older versions are
//! *permissive*: every topic goes through, and the answer's throttle time
//! says how long the bucket stays below zero.
//!
//! Invariant: pure (the caller passes the clock); one bucket per sensor
//! key, at most `SENSORS_MAX`; a full bucket is the same as none, so
//! full ones are dropped when room is needed.

use std::collections::HashMap;

use super::precedence;
use super::rate::WindowConfig;
use super::tracker::SENSORS_MAX;
use super::{user_of, QuotaKind, SensorKey};
use crate::metadata::quotas::ClientQuotas;

/// Milliseconds in a second: the rate is per second.
const MS_PER_SECOND: f64 = 1000.0;

/// Who asks for a mutation, and whether its request's version takes a
/// refusal (strict) or only a throttle time (permissive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutator {
    pub principal: String,
    pub client_id: String,
    pub strict: bool,
}

/// Kafka's `TokenBucket` with the rate it was last used at.
#[derive(Debug, Clone, Copy, PartialEq)]
struct TokenBucket {
    tokens: f64,
    last_update_ms: u64,
    rate: f64,
}

impl TokenBucket {
    fn full(burst: f64, rate: f64, now_ms: u64) -> TokenBucket {
        TokenBucket {
            tokens: burst,
            last_update_ms: now_ms,
            rate,
        }
    }

    /// The tokens at `now_ms`, refilled at `rate` up to `burst`.
    fn measure(&mut self, rate: f64, burst: f64, now_ms: u64) -> f64 {
        let elapsed_s = now_ms.saturating_sub(self.last_update_ms) as f64 / MS_PER_SECOND;
        self.tokens = burst.min(self.tokens + rate * elapsed_s);
        self.last_update_ms = self.last_update_ms.max(now_ms);
        self.rate = rate;
        self.tokens
    }

    fn take(&mut self, permits: f64, rate: f64, burst: f64, now_ms: u64) {
        self.measure(rate, burst, now_ms);
        self.tokens = burst.min(self.tokens - permits);
    }

    /// Whether the bucket is full again at `now_ms` (so it is as good as
    /// a new one), at the rate it was last used at.
    fn refilled(&self, config: WindowConfig, now_ms: u64) -> bool {
        let elapsed_s = now_ms.saturating_sub(self.last_update_ms) as f64 / MS_PER_SECOND;
        self.tokens + self.rate * elapsed_s >= burst(config, self.rate)
    }
}

/// `samples * window * rate`: the most tokens a bucket holds.
fn burst(config: WindowConfig, rate: f64) -> f64 {
    config.samples as f64 * (config.window_ms as f64 / MS_PER_SECOND) * rate
}

/// Kafka's `ControllerMutationQuotaManager.throttleTimeMs`: how long a
/// bucket at `tokens` (below zero) takes to refill to zero at `rate`.
fn throttle_ms(tokens: f64, rate: f64) -> u64 {
    if tokens >= 0.0 || rate <= 0.0 {
        return 0;
    }
    (-tokens / rate * MS_PER_SECOND).round() as u64
}

/// The controller's buckets (on the shard that carries out mutations).
#[derive(Debug)]
pub struct MutationQuotas {
    config: WindowConfig,
    buckets: HashMap<SensorKey, TokenBucket>,
}

impl MutationQuotas {
    pub fn new(config: WindowConfig) -> MutationQuotas {
        MutationQuotas {
            config,
            buckets: HashMap::new(),
        }
    }

    /// The quota of one request of `mutator`, under the image's `quotas`:
    /// unbounded when no entity sets `controller_mutation_rate` for it.
    pub fn request(
        &mut self,
        quotas: &ClientQuotas,
        mutator: &Mutator,
        now_ms: u64,
    ) -> RequestQuota<'_> {
        let key = QuotaKind::ControllerMutation.key();
        let user = user_of(&mutator.principal);
        let unbounded = RequestQuota {
            bucket: None,
            strict: mutator.strict,
            throttle: None,
        };
        let Some(resolved) = precedence::resolve(quotas, key, user, &mutator.client_id) else {
            return unbounded;
        };
        let tagged = |tagged: bool, name: &str| {
            if tagged {
                name.to_string()
            } else {
                String::new()
            }
        };
        let key = SensorKey {
            kind: QuotaKind::ControllerMutation,
            user: tagged(resolved.tags.user, user),
            client_id: tagged(resolved.tags.client_id, &mutator.client_id),
        };
        if !self.buckets.contains_key(&key) && self.buckets.len() >= SENSORS_MAX {
            let config = self.config;
            self.buckets
                .retain(|_, bucket| !bucket.refilled(config, now_ms));
            if self.buckets.len() >= SENSORS_MAX {
                log::warn!(
                    "controller mutation quota: more than {SENSORS_MAX} clients with a bucket; {} is not limited until others refill",
                    mutator.principal
                );
                return unbounded;
            }
        }
        let rate = resolved.bound;
        let burst = burst(self.config, rate);
        let bucket = self
            .buckets
            .entry(key)
            .or_insert_with(|| TokenBucket::full(burst, rate, now_ms));
        RequestQuota {
            bucket: Some((bucket, rate, burst)),
            strict: mutator.strict,
            throttle: None,
        }
    }
}

/// One request's use of its bucket (Kafka's strict or permissive
/// `ControllerMutationQuota`).
#[derive(Debug)]
pub struct RequestQuota<'a> {
    /// The bucket, its rate and its burst; `None`: unbounded.
    bucket: Option<(&'a mut TokenBucket, f64, f64)>,
    strict: bool,
    /// The last throttle time and when it was taken.
    throttle: Option<(u64, u64)>,
}

impl RequestQuota<'_> {
    /// Takes `permits` (partitions) at `now_ms`. Strict, a bucket already
    /// below zero refuses them with the throttle time; permissive, they
    /// are always taken, and the throttle time noted.
    pub fn record(&mut self, permits: i32, now_ms: u64) -> Result<(), u64> {
        let Some((bucket, rate, burst)) = self.bucket.as_mut() else {
            return Ok(());
        };
        let (rate, burst) = (*rate, *burst);
        if self.strict {
            let tokens = bucket.measure(rate, burst, now_ms);
            if tokens < 0.0 {
                let throttle = throttle_ms(tokens, rate);
                self.throttle = Some((throttle, now_ms));
                return Err(throttle);
            }
            bucket.take(f64::from(permits), rate, burst, now_ms);
            return Ok(());
        }
        bucket.take(f64::from(permits), rate, burst, now_ms);
        let tokens = bucket.measure(rate, burst, now_ms);
        if tokens < 0.0 {
            self.throttle = Some((throttle_ms(tokens, rate), now_ms));
        }
        Ok(())
    }

    /// The answer's throttle time at `now_ms` (Kafka's `throttleTime`):
    /// the last one noted, less the time since.
    pub fn throttle_ms(&self, now_ms: u64) -> u64 {
        self.throttle.map_or(0, |(throttle, at_ms)| {
            throttle.saturating_sub(now_ms.saturating_sub(at_ms))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::quotas::{ClientQuotaRecord, QuotaValue, CONTROLLER_MUTATION_RATE};

    const CONFIG: WindowConfig = WindowConfig::KAFKA_DEFAULT;

    fn quotas(entity: Vec<(&str, Option<&str>)>, rate: f64) -> ClientQuotas {
        let mut quotas = ClientQuotas::default();
        quotas
            .apply(&ClientQuotaRecord {
                entity: entity
                    .into_iter()
                    .map(|(kind, name)| (kind.to_string(), name.map(str::to_string)))
                    .collect(),
                key: CONTROLLER_MUTATION_RATE.to_string(),
                value: QuotaValue(rate),
                remove: false,
            })
            .expect("apply");
        quotas
    }

    fn mutator(principal: &str, client_id: &str, strict: bool) -> Mutator {
        Mutator {
            principal: principal.to_string(),
            client_id: client_id.to_string(),
            strict,
        }
    }

    #[test]
    fn kafkas_token_bucket() {
        // Rate 2/s, 2 samples of 1 s: a burst of 4.
        let config = WindowConfig {
            samples: 2,
            window_ms: 1000,
        };
        let mut bucket = TokenBucket::full(burst(config, 2.0), 2.0, 0);
        bucket.take(3.0, 2.0, 4.0, 0);
        assert_eq!(bucket.measure(2.0, 4.0, 0), 1.0);
        bucket.take(5.0, 2.0, 4.0, 0);
        assert_eq!(bucket.measure(2.0, 4.0, 0), -4.0);
        assert_eq!(throttle_ms(-4.0, 2.0), 2_000);
        // Refilled at 2/s, never past the burst.
        assert_eq!(bucket.measure(2.0, 4.0, 1_000), -2.0);
        assert_eq!(bucket.measure(2.0, 4.0, 10_000), 4.0);
        assert!(bucket.refilled(config, 10_000));
    }

    #[test]
    fn strict_takes_what_finds_tokens_and_refuses_once_below_zero() {
        let mut buckets = MutationQuotas::new(CONFIG);
        // 1/s over 11 windows: 11 partitions at once.
        let quotas = quotas(vec![("user", Some("alice"))], 1.0);
        let alice = mutator("User:alice", "admin", true);
        let mut quota = buckets.request(&quotas, &alice, 0);
        assert_eq!(quota.record(10, 0), Ok(()));
        // One token left: a topic of 5 still goes through, to -4.
        assert_eq!(quota.record(5, 0), Ok(()));
        assert_eq!(
            quota.throttle_ms(0),
            0,
            "strict: no throttle without a refusal"
        );
        assert_eq!(quota.record(1, 0), Err(4_000));
        assert_eq!(quota.throttle_ms(1_500), 2_500);
        // The next request finds the same bucket, refilled meanwhile.
        let mut quota = buckets.request(&quotas, &alice, 4_000);
        assert_eq!(quota.record(1, 4_000), Ok(()));
        // Another user has no quota.
        let mut quota = buckets.request(&quotas, &mutator("User:bob", "admin", true), 4_000);
        assert_eq!(quota.record(1_000, 4_000), Ok(()));
        assert_eq!(quota.throttle_ms(4_000), 0);
    }

    #[test]
    fn permissive_takes_everything_and_throttles() {
        let mut buckets = MutationQuotas::new(CONFIG);
        let quotas = quotas(vec![("client-id", None)], 2.0);
        let old = mutator("User:ANONYMOUS", "old-client", false);
        let mut quota = buckets.request(&quotas, &old, 0);
        assert_eq!(quota.record(22, 0), Ok(()));
        assert_eq!(quota.throttle_ms(0), 0, "exactly the burst");
        assert_eq!(quota.record(6, 0), Ok(()));
        assert_eq!(quota.throttle_ms(0), 3_000, "-6 tokens at 2/s");
        // A default client-id quota is each client id's own.
        let mut quota = buckets.request(&quotas, &mutator("User:ANONYMOUS", "other", false), 0);
        assert_eq!(quota.record(22, 0), Ok(()));
        assert_eq!(quota.throttle_ms(0), 0);
    }

    #[test]
    fn buckets_are_bounded_and_full_ones_make_room() {
        let mut buckets = MutationQuotas::new(CONFIG);
        let quotas = quotas(vec![("client-id", None)], 1.0);
        for n in 0..SENSORS_MAX {
            let mut quota = buckets.request(&quotas, &mutator("User:a", &n.to_string(), true), 0);
            quota.record(1, 0).expect("within the burst");
        }
        // All in use: a new client id is not limited.
        let mut quota = buckets.request(&quotas, &mutator("User:a", "new", true), 0);
        assert_eq!(quota.record(1_000, 0), Ok(()));
        assert_eq!(buckets.buckets.len(), SENSORS_MAX);
        // A second later every bucket has its token back: room again.
        let mut quota = buckets.request(&quotas, &mutator("User:a", "new", true), 1_000);
        quota.record(20, 1_000).expect("a fresh bucket");
        assert!(quota.record(1, 1_000).is_err());
        assert_eq!(buckets.buckets.len(), 1);
    }
}
