//! Client quotas (Kafka's `ClientQuotaManager`, KIP-13, KIP-124,
//! KIP-219): byte rates of produce and fetch, the share of a thread
//! that a client's requests take, measured over Kafka's windows
//! (`rate.rs`), the quota that holds for a user and client id by Kafka's
//! precedence (`precedence.rs`), and each shard's sensors (`tracker.rs`);
//! and the controller mutation quota (KIP-599), token buckets kept by the
//! controller alone (`mutation.rs`).
//!
//! **How shards agree on a rate.** Kafka's quotas are per broker; a
//! shoal broker is several shards, and a user's connections may sit on
//! any of them. Each shard measures its own connections only, on sensors
//! no other thread touches, and every `SHARE_INTERVAL_MS` sends the
//! rates of its active sensors to the other shards over the mesh
//! (`shard::quota_share`). A request is checked against its own shard's
//! rate, exact up to that request, plus the others' last reports. There is
//! no lock and no shared counter: the hot path reads and writes only its
//! shard's memory. The others' part is at most one interval old, which
//! against a rate taken over Kafka's 11 one-second windows moves the
//! throttle by about 1%; the throttle time then brings the broker-wide
//! rate back to the quota, whichever shard the traffic came through.
//!
//! Where the windows start is each shard's own, as each Kafka sensor's is.
//!
//! Invariant: `ShardQuotas` belongs to one shard; with no quota set,
//! nothing here runs per request (`server::throttle` checks the image
//! first) and nothing is sent between shards.

pub mod mutation;
pub mod precedence;
pub mod rate;
pub mod tracker;

use std::cell::RefCell;
use std::sync::OnceLock;
use std::time::Instant;

pub use tracker::{QuotaKind, SensorKey};

use crate::metadata::quotas::ClientQuotas;
use rate::WindowConfig;
use tracker::QuotaTracker;

/// How often a shard sends its rates to the others: 10 times a second,
/// against a window of 11 seconds.
pub const SHARE_INTERVAL_MS: u64 = 100;

/// Milliseconds on the process's monotonic clock: rates need a clock
/// that never steps back, and one that every shard reads alike.
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// What a request recorded, to take it back.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    key: SensorKey,
    value: f64,
}

/// The user of a principal `Type:name` (Kafka's quotas name the user by
/// the principal's name): `User:alice` is `alice`.
pub fn user_of(principal: &str) -> &str {
    principal
        .split_once(':')
        .map_or(principal, |(_, name)| name)
}

/// One shard's sensors.
pub struct ShardQuotas {
    tracker: RefCell<QuotaTracker>,
    /// The last report sent had rates (the next, even empty, clears them).
    reported: std::cell::Cell<bool>,
}

impl ShardQuotas {
    pub fn new(config: WindowConfig, shard_id: usize, shard_count: usize) -> ShardQuotas {
        ShardQuotas {
            tracker: RefCell::new(QuotaTracker::new(config, shard_id, shard_count)),
            reported: std::cell::Cell::new(false),
        }
    }

    /// Records `value` of `kind` for `principal` and `client_id` against
    /// the quota `quotas` set for them: the throttle time (0 within the
    /// quota, or with none) and what was recorded.
    pub fn record(
        &self,
        quotas: &ClientQuotas,
        kind: QuotaKind,
        principal: &str,
        client_id: &str,
        value: f64,
    ) -> (u64, Option<Recorded>) {
        let user = user_of(principal);
        let Some(resolved) = precedence::resolve(quotas, kind.key(), user, client_id) else {
            return (0, None);
        };
        let tagged = |tagged: bool, name: &str| {
            if tagged {
                name.to_string()
            } else {
                String::new()
            }
        };
        let key = SensorKey {
            kind,
            user: tagged(resolved.tags.user, user),
            client_id: tagged(resolved.tags.client_id, client_id),
        };
        let mut tracker = self.tracker.borrow_mut();
        // Kafka bounds the request quota's throttle by one window.
        let max_throttle_ms = match kind {
            QuotaKind::Request => tracker.config().window_ms,
            QuotaKind::Produce | QuotaKind::Fetch | QuotaKind::ControllerMutation => u64::MAX,
        };
        let throttle_ms = tracker.record(
            key.clone(),
            resolved.bound,
            value,
            now_ms(),
            max_throttle_ms,
        );
        (throttle_ms, Some(Recorded { key, value }))
    }

    pub fn unrecord(&self, recorded: &Recorded) {
        self.tracker
            .borrow_mut()
            .unrecord(&recorded.key, recorded.value, now_ms());
    }

    /// The rates to send the other shards, `None` when there is nothing
    /// to say (no active sensor now nor at the last report).
    pub fn report(&self) -> Option<Vec<(SensorKey, f64)>> {
        let mut tracker = self.tracker.borrow_mut();
        if !tracker.active() && !self.reported.get() {
            return None;
        }
        let (rates, refused) = tracker.local_rates(now_ms());
        if refused {
            log::warn!(
                "client quotas: more than {} active clients on one shard; new ones are not measured until others go idle",
                tracker::SENSORS_MAX
            );
        }
        self.reported.set(!rates.is_empty());
        Some(rates)
    }

    /// Another shard's report.
    pub fn absorb(&self, from: usize, rates: Vec<(SensorKey, f64)>) {
        self.tracker.borrow_mut().absorb(from, rates);
    }
}

impl QuotaKind {
    /// The quota key this kind measures.
    pub fn key(self) -> &'static str {
        use crate::metadata::quotas::{
            CONSUMER_BYTE_RATE, CONTROLLER_MUTATION_RATE, PRODUCER_BYTE_RATE, REQUEST_PERCENTAGE,
        };
        match self {
            QuotaKind::Produce => PRODUCER_BYTE_RATE,
            QuotaKind::Fetch => CONSUMER_BYTE_RATE,
            QuotaKind::Request => REQUEST_PERCENTAGE,
            QuotaKind::ControllerMutation => CONTROLLER_MUTATION_RATE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::quotas::{ClientQuotaRecord, QuotaValue, PRODUCER_BYTE_RATE};

    const CONFIG: WindowConfig = WindowConfig::KAFKA_DEFAULT;

    #[test]
    fn the_user_is_the_principals_name() {
        assert_eq!(user_of("User:alice"), "alice");
        assert_eq!(user_of("User:ANONYMOUS"), "ANONYMOUS");
        assert_eq!(user_of("User:CN=a:b"), "CN=a:b");
        assert_eq!(user_of("plain"), "plain");
    }

    #[test]
    fn nothing_is_measured_without_a_quota_and_a_users_clients_share_one() {
        let quotas_of = |entity: Vec<(String, Option<String>)>| {
            let mut quotas = ClientQuotas::default();
            quotas
                .apply(&ClientQuotaRecord {
                    entity,
                    key: PRODUCER_BYTE_RATE.to_string(),
                    value: QuotaValue(100.0),
                    remove: false,
                })
                .expect("apply");
            quotas
        };
        let shard = ShardQuotas::new(CONFIG, 0, 1);
        let none = ClientQuotas::default();
        assert_eq!(
            shard.record(&none, QuotaKind::Produce, "User:alice", "a", 1e9),
            (0, None)
        );
        assert_eq!(shard.report(), None, "no sensor was made");
        let quotas = quotas_of(vec![("user".to_string(), Some("alice".to_string()))]);
        let (throttle, recorded) =
            shard.record(&quotas, QuotaKind::Produce, "User:alice", "a", 1000.0);
        assert_eq!(throttle, 0);
        let recorded = recorded.expect("recorded");
        assert_eq!(
            (recorded.key.user.as_str(), recorded.key.client_id.as_str()),
            ("alice", "")
        );
        // Client b of alice adds to the same rate: 2000 over 10 s.
        let (throttle, _) = shard.record(&quotas, QuotaKind::Produce, "User:alice", "b", 1000.0);
        assert!(throttle > 0);
        // A fetch quota is another kind: not set, not measured.
        assert_eq!(
            shard
                .record(&quotas, QuotaKind::Fetch, "User:alice", "a", 1e9)
                .0,
            0
        );
        let report = shard.report().expect("a report");
        assert_eq!(report.len(), 1);
    }
}
