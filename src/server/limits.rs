//! Bounds at the edge of the broker: how many connections it holds, all
//! shards together and per client address (`max.connections`,
//! `max.connections.per.ip`); how fast they may be made, all shards
//! together (`max.connection.creation.rate`) and per client address (the
//! ip entity's `connection_creation_rate` quota); how many requests a
//! shard has read and not yet handled (its share of
//! `queued.max.requests`); how `accept` failures back off; and how many
//! lines a shard logs about connections it closes.
//!
//! Connection rates are Kafka's (`ConnectionQuotas`): windowed rates
//! (`quota::rate`) of new connections. Past the broker-wide rate, the
//! accepting shard waits the throttle time (at most one quota window)
//! before it serves the connection and accepts the next, as Kafka's
//! acceptor blocks. Past an address's rate, the connection is not
//! counted and is closed after the throttle time, so that the client
//! does not reconnect at once, as Kafka delays the close.
//!
//! Invariant: the connection counts and rates are the only state shared
//! between shards, and they are touched when a connection is accepted or
//! closed, never per request. Everything else here belongs to one shard.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use glommio::sync::{Semaphore, StaticPermit};
use kafka_protocol::messages::ApiKey;

use crate::config::{ConnectionConfig, MAX_CONNECTION_CREATION_RATE_DEFAULT};
use crate::quota::rate::{throttle_time_ms, Rate, WindowConfig};

/// First pause after a failed `accept`. Failures such as EMFILE repeat at
/// once until something changes, so retrying without a pause spins the
/// shard and starves the very connections whose closing would free a
/// descriptor.
const ACCEPT_BACKOFF_MS_MIN: u64 = 10;
/// Longest pause between `accept` attempts while they fail: how late the
/// broker notices that descriptors are free again.
const ACCEPT_BACKOFF_MS_MAX: u64 = 1000;
/// How often a shard at `max.connections` looks for a free slot. Slots free
/// on any shard; polling the shared count is simpler than a wake-up across
/// threads and costs a few timer wake-ups per second only while at the limit.
const CONNECTION_SLOT_POLL_MS: u64 = 20;
/// Lines a shard logs per second about connections it closes for a fault;
/// past this, one summary line per second counts the rest. A garbage flood
/// otherwise writes a line per connection (727,000 in three minutes).
const CLOSE_LOG_LINES_PER_SECOND: u32 = 10;
/// Least time between two log lines about failing accepts on one shard.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// The window of `CLOSE_LOG_LINES_PER_SECOND`.
const CLOSE_LOG_WINDOW: Duration = Duration::from_secs(1);
/// Addresses whose connection rate is kept: past it, those idle for the
/// whole window are dropped first, and if none is, a new address is not
/// measured. Bounds the map a flood from many addresses could grow.
const IP_RATES_MAX: usize = 10_000;
/// Connections over their address's rate that a shard holds open at
/// once until their delayed close; past it, one is closed at once. Each
/// holds two descriptors for at most one quota window.
const THROTTLED_CLOSES_MAX: usize = 1_000;

/// API keys of requests that wait for other clients' requests: a JoinGroup
/// or SyncGroup completes when the other members join or the leader syncs.
/// Holding a share of `queued.max.requests` while parked could stop the
/// shard from reading the very requests they wait for; Kafka parks them in
/// purgatory, outside its request queue, too.
const PARKING_API_KEYS: [i16; 2] = [ApiKey::JoinGroup as i16, ApiKey::SyncGroup as i16];

/// The connection counts of the whole broker, shared by every shard.
pub struct BrokerConnections {
    max_connections: usize,
    open: AtomicUsize,
    /// `None` when no per-IP limit is set.
    per_ip: Option<PerIpLimits>,
    /// `max.connection.creation.rate`; `None` at Kafka's default (no limit).
    max_creation_rate: Option<f64>,
    windows: WindowConfig,
    /// Counts per address and connection rates. A lock, taken once on
    /// accept and once on close of a connection and never per request,
    /// keeps them exact across shards: the kernel spreads one client's
    /// connections over every shard, so a per-shard share of a limit
    /// would refuse a client early. Taken only when a per-IP limit or a
    /// rate is set, so the default costs no lock.
    accepting: Mutex<AcceptState>,
}

/// Connections per client address.
struct PerIpLimits {
    default_max: usize,
    overrides: HashMap<IpAddr, usize>,
}

/// What the lock guards.
struct AcceptState {
    open: HashMap<IpAddr, usize>,
    broker_rate: Rate,
    ip_rates: HashMap<IpAddr, Rate>,
}

/// What becomes of an accepted connection.
pub enum Admission {
    /// Serve it, after `delay` when the broker-wide creation rate is
    /// exceeded (the accepting shard waits: its next accept too).
    Admitted {
        permit: ConnectionPermit,
        delay: Duration,
    },
    /// Its address holds `max.connections.per.ip` connections.
    TooMany,
    /// Its address is over its `connection_creation_rate`: close it
    /// after this long.
    Throttled(Duration),
}

/// Records a new connection on `rate`: the throttle time past `bound`
/// connections per second, at most one window (Kafka's
/// `boundedThrottleTime` for connection quotas).
fn record_connection(rate: &mut Rate, windows: WindowConfig, bound: f64, now_ms: u64) -> u64 {
    rate.record(windows, 1.0, now_ms);
    let observed = rate.measure(windows, now_ms);
    throttle_time_ms(observed, bound, rate.window_ms(windows, now_ms)).min(windows.window_ms)
}

impl BrokerConnections {
    /// Resolves the override hosts; a name that does not resolve fails the
    /// start, as in Kafka.
    pub fn new(config: &ConnectionConfig) -> anyhow::Result<BrokerConnections> {
        config.check()?;
        let limited = config.max_connections_per_ip < crate::config::MAX_CONNECTIONS_DEFAULT
            || !config.max_connections_per_ip_overrides.is_empty();
        let per_ip = if limited {
            let mut overrides = HashMap::new();
            for (host, &limit) in &config.max_connections_per_ip_overrides {
                let addresses = (host.as_str(), 0).to_socket_addrs().with_context(|| {
                    format!("max.connections.per.ip.overrides: cannot resolve {host}")
                })?;
                for address in addresses {
                    overrides.insert(address.ip(), limit);
                }
            }
            Some(PerIpLimits {
                default_max: config.max_connections_per_ip,
                overrides,
            })
        } else {
            None
        };
        let windows = WindowConfig::of(config);
        let rate = config.max_connection_creation_rate;
        Ok(BrokerConnections {
            max_connections: config.max_connections,
            open: AtomicUsize::new(0),
            per_ip,
            max_creation_rate: (rate < MAX_CONNECTION_CREATION_RATE_DEFAULT)
                .then_some(f64::from(rate)),
            windows,
            accepting: Mutex::new(AcceptState {
                open: HashMap::new(),
                broker_rate: Rate::new(windows),
                ip_rates: HashMap::new(),
            }),
        })
    }

    fn accept_state(&self) -> std::sync::MutexGuard<'_, AcceptState> {
        // Counts left by a panicking shard are still counts.
        self.accepting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Admits a connection from `ip` under `max.connections.per.ip`,
    /// `max.connection.creation.rate` and `ip_rate`, the address's
    /// `connection_creation_rate` quota if it has one.
    pub fn admit(self: &Arc<Self>, ip: Option<IpAddr>, ip_rate: Option<f64>) -> Admission {
        let ip_limited = self.per_ip.is_some() && ip.is_some();
        let permit = |ip| ConnectionPermit {
            connections: self.clone(),
            ip,
            counted: false,
        };
        if !ip_limited && ip_rate.is_none() && self.max_creation_rate.is_none() {
            let delay = Duration::ZERO;
            let permit = permit(None);
            return Admission::Admitted { permit, delay };
        }
        let now_ms = crate::quota::now_ms();
        let mut state = self.accept_state();
        let delay_ms = self.max_creation_rate.map_or(0, |bound| {
            record_connection(&mut state.broker_rate, self.windows, bound, now_ms)
        });
        if let (Some(ip), Some(bound)) = (ip, ip_rate) {
            let throttle_ms = self.record_ip_connection(&mut state, ip, bound, now_ms);
            if throttle_ms > 0 {
                return Admission::Throttled(Duration::from_millis(throttle_ms));
            }
        }
        let counted_ip = match (&self.per_ip, ip) {
            (Some(limits), Some(ip)) => {
                let max = limits
                    .overrides
                    .get(&ip)
                    .copied()
                    .unwrap_or(limits.default_max);
                let count = state.open.entry(ip).or_insert(0);
                if *count >= max {
                    if *count == 0 {
                        state.open.remove(&ip);
                    }
                    return Admission::TooMany;
                }
                *count += 1;
                Some(ip)
            }
            _ => None,
        };
        let delay = Duration::from_millis(delay_ms);
        let permit = permit(counted_ip);
        Admission::Admitted { permit, delay }
    }

    /// Records a connection from `ip` against its rate `bound`: its
    /// throttle time. A throttled connection is taken back from the
    /// address's and the broker's rates: it is not made (Kafka's
    /// `recordIpConnectionMaybeThrottle`).
    fn record_ip_connection(
        &self,
        state: &mut AcceptState,
        ip: IpAddr,
        bound: f64,
        now_ms: u64,
    ) -> u64 {
        let windows = self.windows;
        if !state.ip_rates.contains_key(&ip) && state.ip_rates.len() >= IP_RATES_MAX {
            state.ip_rates.retain(|_, rate| {
                rate.last_event_ms()
                    .is_some_and(|last| now_ms.saturating_sub(last) < windows.expiry_ms())
            });
            if state.ip_rates.len() >= IP_RATES_MAX {
                return 0;
            }
        }
        let rate = state
            .ip_rates
            .entry(ip)
            .or_insert_with(|| Rate::new(windows));
        let throttle_ms = record_connection(rate, windows, bound, now_ms);
        if throttle_ms > 0 {
            rate.record(windows, -1.0, now_ms);
            if self.max_creation_rate.is_some() {
                state.broker_rate.record(windows, -1.0, now_ms);
            }
        }
        throttle_ms
    }

    /// Connections counted against `max.connections`.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn try_count(&self) -> bool {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |open| {
                (open < self.max_connections).then_some(open + 1)
            })
            .is_ok()
    }

    /// Whether `max.connections` leaves room for one more.
    pub fn has_room(&self) -> bool {
        self.open() < self.max_connections
    }
}

/// One admitted connection's place in the counts, given back on drop.
pub struct ConnectionPermit {
    connections: Arc<BrokerConnections>,
    ip: Option<IpAddr>,
    counted: bool,
}

impl ConnectionPermit {
    /// Takes a slot under `max.connections`, waiting while every slot is
    /// taken; `false` if `stop` resolves first.
    pub async fn count(&mut self, stop: impl std::future::Future<Output = ()>) -> bool {
        let counted = {
            let connections = &self.connections;
            let waiting = async {
                while !connections.try_count() {
                    glommio::timer::sleep(Duration::from_millis(CONNECTION_SLOT_POLL_MS)).await;
                }
            };
            futures_lite::pin!(waiting, stop);
            matches!(
                futures_util::future::select(waiting, stop).await,
                futures_util::future::Either::Left(_)
            )
        };
        self.counted = counted;
        counted
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        if self.counted {
            self.connections.open.fetch_sub(1, Ordering::AcqRel);
        }
        if let Some(ip) = self.ip {
            let mut state = self.connections.accept_state();
            if let Some(count) = state.open.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    state.open.remove(&ip);
                }
            }
        }
    }
}

/// One shard's view of the limits, shared by its listener and connections.
pub struct ShardConnections {
    pub shard_id: usize,
    pub broker: Arc<BrokerConnections>,
    /// This shard's share of `queued.max.requests`.
    requests: Rc<Semaphore>,
    pub idle_timeout: Duration,
    pub close_log: LogLimiter,
    /// Connections waiting for their delayed close (`close_later`).
    throttled_closes: Rc<Cell<usize>>,
}

impl ShardConnections {
    pub fn new(
        shard_id: usize,
        shards: usize,
        config: &ConnectionConfig,
        broker: Arc<BrokerConnections>,
    ) -> ShardConnections {
        ShardConnections {
            shard_id,
            broker,
            requests: Rc::new(Semaphore::new(
                request_share(config.queued_max_requests, shards) as u64,
            )),
            idle_timeout: Duration::from_millis(config.connections_max_idle_ms),
            close_log: LogLimiter::new(shard_id),
            throttled_closes: Rc::default(),
        }
    }

    /// Closes `connection` after `delay` (a connection over its address's
    /// rate, `Admission::Throttled`), or at once past
    /// `THROTTLED_CLOSES_MAX` such connections on this shard.
    pub fn close_later<T: 'static>(&self, connection: T, delay: Duration) {
        if self.throttled_closes.get() >= THROTTLED_CLOSES_MAX {
            return;
        }
        let waiting = self.throttled_closes.clone();
        waiting.set(waiting.get() + 1);
        glommio::spawn_local(async move {
            glommio::timer::sleep(delay).await;
            drop(connection);
            waiting.set(waiting.get() - 1);
        })
        .detach();
    }

    /// Waits for room in this shard's share of `queued.max.requests` for the
    /// request in `frame`; the permit is held until it has been handled.
    /// `None` for requests that wait for other clients (`PARKING_API_KEYS`).
    pub async fn request_permit(&self, frame: &[u8]) -> Option<StaticPermit> {
        let api_key = match frame {
            [high, low, ..] => i16::from_be_bytes([*high, *low]),
            _ => -1,
        };
        if PARKING_API_KEYS.contains(&api_key) {
            return None;
        }
        // Fails only once the semaphore is closed, which this shard never does.
        self.requests.acquire_static_permit(1).await.ok()
    }
}

/// A shard's share of a broker-wide count: equal parts, rounded up, so the
/// shards together allow at least the broker-wide number.
fn request_share(total: usize, shards: usize) -> usize {
    total.div_ceil(shards.max(1)).max(1)
}

/// Lets `CLOSE_LOG_LINES_PER_SECOND` lines through per second; the rest are
/// counted and reported in one line at the end of their second.
pub struct LogLimiter {
    shard_id: usize,
    window_start: Cell<Instant>,
    lines: Cell<u32>,
    suppressed: Rc<Cell<u64>>,
}

impl LogLimiter {
    fn new(shard_id: usize) -> LogLimiter {
        LogLimiter {
            shard_id,
            window_start: Cell::new(Instant::now()),
            lines: Cell::new(0),
            suppressed: Rc::new(Cell::new(0)),
        }
    }

    /// Whether to log the next line; when not, it is counted for the summary.
    pub fn allow(&self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.window_start.get()) >= CLOSE_LOG_WINDOW {
            self.window_start.set(now);
            self.lines.set(0);
        }
        if self.lines.get() < CLOSE_LOG_LINES_PER_SECOND {
            self.lines.set(self.lines.get() + 1);
            return true;
        }
        let suppressed = self.suppressed.get();
        self.suppressed.set(suppressed + 1);
        if suppressed == 0 {
            let counted = self.suppressed.clone();
            let shard_id = self.shard_id;
            glommio::spawn_local(async move {
                glommio::timer::sleep(CLOSE_LOG_WINDOW).await;
                let count = counted.replace(0);
                log::warn!("shard {shard_id}: ... and {count} more closed connections not logged");
            })
            .detach();
        }
        false
    }
}

/// The pause after each failed `accept`, growing while failures go on, and
/// the log lines about them: at most one per `ACCEPT_LOG_INTERVAL` saying
/// how many attempts failed, and one when accepting works again. Descriptors
/// freed and taken again make failures come and go many times a second; a
/// line for each would flood the log.
#[derive(Default)]
pub struct AcceptBackoff {
    /// 0 while accepting works.
    delay_ms: u64,
    /// Failed attempts not yet counted in a log line.
    unreported: u64,
    /// A failure was logged since accepting last worked.
    reported: bool,
    last_line: Option<Instant>,
}

impl AcceptBackoff {
    /// Records a failure; returns how long to wait before the next attempt.
    pub fn failed(&mut self, shard_id: usize, error: &impl std::fmt::Display) -> Duration {
        self.delay_ms = match self.delay_ms {
            0 => ACCEPT_BACKOFF_MS_MIN,
            delay_ms => (delay_ms * 2).min(ACCEPT_BACKOFF_MS_MAX),
        };
        self.unreported += 1;
        let now = Instant::now();
        if self
            .last_line
            .is_none_or(|last| now.duration_since(last) >= ACCEPT_LOG_INTERVAL)
        {
            log::warn!(
                "shard {shard_id}: accept failed: {error} ({} failed attempts since the last report); retrying with backoff up to {ACCEPT_BACKOFF_MS_MAX} ms",
                self.unreported
            );
            self.unreported = 0;
            self.reported = true;
            self.last_line = Some(now);
        }
        Duration::from_millis(self.delay_ms)
    }

    /// Records a success, ending a run of failures.
    pub fn succeeded(&mut self, shard_id: usize) {
        self.delay_ms = 0;
        if self.reported {
            log::warn!("shard {shard_id}: accept works again");
            self.reported = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(config: &ConnectionConfig) -> Arc<BrokerConnections> {
        Arc::new(BrokerConnections::new(config).expect("limits"))
    }

    /// The permit of a connection from `ip` admitted at once.
    fn admitted(limits: &Arc<BrokerConnections>, ip: Option<IpAddr>) -> Option<ConnectionPermit> {
        match limits.admit(ip, None) {
            Admission::Admitted { permit, delay } if delay.is_zero() => Some(permit),
            _ => None,
        }
    }

    #[test]
    fn per_ip_limit_counts_each_address_and_frees_on_drop() {
        let mut config = ConnectionConfig::default();
        config.set("max.connections.per.ip", "2").expect("set");
        config
            .set("max.connections.per.ip.overrides", "127.0.0.2:3")
            .expect("set");
        let limits = limits(&config);
        let one: IpAddr = "127.0.0.1".parse().expect("ip");
        let two: IpAddr = "127.0.0.2".parse().expect("ip");
        let first: Vec<_> = (0..2).map(|_| admitted(&limits, Some(one))).collect();
        assert!(first.iter().all(Option::is_some));
        assert!(admitted(&limits, Some(one)).is_none());
        let second: Vec<_> = (0..3).map(|_| admitted(&limits, Some(two))).collect();
        assert!(second.iter().all(Option::is_some));
        assert!(admitted(&limits, Some(two)).is_none());
        drop(first);
        assert!(admitted(&limits, Some(one)).is_some());
    }

    #[test]
    fn zero_per_ip_needs_overrides() {
        let mut config = ConnectionConfig::default();
        config.set("max.connections.per.ip", "0").expect("set");
        assert!(BrokerConnections::new(&config).is_err());
        config
            .set("max.connections.per.ip.overrides", "127.0.0.1:1")
            .expect("set");
        let limits = limits(&config);
        assert!(admitted(&limits, "127.0.0.3".parse().ok()).is_none());
        assert!(admitted(&limits, "127.0.0.1".parse().ok()).is_some());
    }

    #[test]
    fn max_connections_slots_are_exact_and_given_back() {
        let mut config = ConnectionConfig::default();
        config.set("max.connections", "2").expect("set");
        let limits = limits(&config);
        crate::shard::block_on(move || async move {
            let never = std::future::pending::<()>;
            let mut a = admitted(&limits, None).expect("admit");
            let mut b = admitted(&limits, None).expect("admit");
            assert!(a.count(never()).await);
            assert!(b.count(never()).await);
            assert!(!limits.has_room());
            let mut c = admitted(&limits, None).expect("admit");
            assert!(
                !c.count(glommio::timer::sleep(Duration::from_millis(50)))
                    .await
            );
            drop(a);
            assert!(c.count(never()).await);
            assert_eq!(limits.open(), 2);
            drop((b, c));
            assert_eq!(limits.open(), 0);
        });
    }

    #[test]
    fn an_address_over_its_rate_is_throttled_and_not_counted() {
        let mut config = ConnectionConfig::default();
        config.set("max.connections.per.ip", "100").expect("set");
        let limits = limits(&config);
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        // 2 per second over a new rate's 10 s: 20 connections pass at once.
        let passed: Vec<_> = (0..20)
            .map_while(|_| match limits.admit(Some(ip), Some(2.0)) {
                Admission::Admitted { permit, .. } => Some(permit),
                _ => None,
            })
            .collect();
        assert_eq!(passed.len(), 20);
        match limits.admit(Some(ip), Some(2.0)) {
            Admission::Throttled(delay) => {
                // (21 / 10 - 2) / 2 * 10 s = 500 ms, less any ms elapsed.
                assert!(delay > Duration::from_millis(400));
                assert!(delay <= Duration::from_millis(500));
            }
            _ => panic!("the 21st connection is throttled"),
        }
        // Not counted: the rate is back at 20, the count at 20.
        assert_eq!(limits.accept_state().open.get(&ip), Some(&20));
        assert!(matches!(
            limits.admit(Some(ip), Some(2.0)),
            Admission::Throttled(_)
        ));
        // Another address, or none set, passes.
        let other: IpAddr = "127.0.0.2".parse().expect("ip");
        assert!(matches!(
            limits.admit(Some(other), Some(2.0)),
            Admission::Admitted { .. }
        ));
        assert!(admitted(&limits, Some(ip)).is_some());
    }

    #[test]
    fn past_the_broker_rate_admission_waits_at_most_a_window() {
        let mut config = ConnectionConfig::default();
        config
            .set("max.connection.creation.rate", "2")
            .expect("set");
        let limits = limits(&config);
        let delays: Vec<Duration> = (0..30)
            .map(|_| match limits.admit(None, None) {
                Admission::Admitted { delay, .. } => delay,
                _ => panic!("no per-IP limit"),
            })
            .collect();
        // 2 per second over a new rate's 10 s: 20 pass at once; the 21st
        // waits (21 / 10 - 2) / 2 * 10 s = 500 ms, the next ones longer.
        assert!(delays[..20].iter().all(Duration::is_zero));
        assert!(delays[20] > Duration::from_millis(400));
        assert!(delays[20] <= Duration::from_millis(500));
        assert_eq!(
            delays[29],
            Duration::from_millis(1000),
            "bounded by a window"
        );
        // Without any rate or per-IP limit, no lock and no wait.
        let free = self::limits(&ConnectionConfig::default());
        assert!(admitted(&free, None).is_some());
        assert!(free.accept_state().broker_rate.last_event_ms().is_none());
    }

    #[test]
    fn a_shard_holds_back_requests_past_its_share_but_not_parking_ones() {
        let mut config = ConnectionConfig::default();
        config.set("queued.max.requests", "2").expect("set");
        let broker = limits(&config);
        crate::shard::block_on(move || async move {
            // Two shards: a share of one request each.
            let shard = ShardConnections::new(0, 2, &config, broker);
            let produce = [0u8, 0, 0, 9];
            let join_group = (ApiKey::JoinGroup as i16).to_be_bytes();
            let first = shard.request_permit(&produce).await;
            assert!(first.is_some());
            let waiting = futures_util::future::select(
                Box::pin(shard.request_permit(&produce)),
                Box::pin(glommio::timer::sleep(Duration::from_millis(50))),
            )
            .await;
            assert!(matches!(waiting, futures_util::future::Either::Right(_)));
            assert!(shard.request_permit(&join_group).await.is_none());
            drop(first);
            assert!(shard.request_permit(&produce).await.is_some());
        });
    }

    #[test]
    fn shares_cover_the_broker_wide_count() {
        assert_eq!(request_share(500, 2), 250);
        assert_eq!(request_share(500, 3), 167);
        assert_eq!(request_share(1, 4), 1);
    }

    #[test]
    fn accept_backoff_grows_to_its_bound_and_resets() {
        let mut backoff = AcceptBackoff::default();
        let error = std::io::Error::from_raw_os_error(libc::EMFILE);
        let delays: Vec<u64> = (0..10)
            .map(|_| backoff.failed(0, &error).as_millis() as u64)
            .collect();
        assert_eq!(delays[0], ACCEPT_BACKOFF_MS_MIN);
        assert!(delays.windows(2).all(|pair| pair[0] <= pair[1]));
        assert_eq!(delays[9], ACCEPT_BACKOFF_MS_MAX);
        // One line for the first failure; the others wait for the interval.
        assert!(backoff.reported);
        assert_eq!(backoff.unreported, 9);
        backoff.succeeded(0);
        assert!(!backoff.reported);
        assert_eq!(
            backoff.failed(0, &error).as_millis() as u64,
            ACCEPT_BACKOFF_MS_MIN
        );
        // Failing again soon after is counted, not logged.
        assert!(!backoff.reported);
        assert_eq!(backoff.unreported, 10);
    }

    #[test]
    fn log_limiter_lets_a_few_lines_through_per_window() {
        crate::shard::block_on(|| async {
            let limiter = LogLimiter::new(0);
            let allowed = (0..1000).filter(|_| limiter.allow()).count();
            assert_eq!(allowed, CLOSE_LOG_LINES_PER_SECOND as usize);
            assert_eq!(limiter.suppressed.get(), 1000 - allowed as u64);
            glommio::timer::sleep(CLOSE_LOG_WINDOW * 2).await;
            assert_eq!(limiter.suppressed.get(), 0);
            assert!(limiter.allow());
        });
    }
}
