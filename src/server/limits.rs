//! Bounds at the edge of the broker: how many connections it holds, all
//! shards together and per client address (`max.connections`,
//! `max.connections.per.ip`); how many requests a shard has read and not yet
//! handled (its share of `queued.max.requests`); how `accept` failures back
//! off; and how many lines a shard logs about connections it closes.
//!
//! Invariant: the connection counts are the only state shared between
//! shards, and they are touched when a connection is accepted or closed,
//! never per request. Everything else here belongs to one shard.

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

use crate::config::ConnectionConfig;

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
    /// `None` when no per-IP limit is set, so the default costs no lock.
    per_ip: Option<PerIpLimits>,
}

/// Connections per client address. A lock, taken once on accept and once
/// on close of a connection and never per request, keeps the count exact
/// across shards: the kernel spreads one client's connections over every
/// shard, so a per-shard share of the limit would refuse a client early.
struct PerIpLimits {
    default_max: usize,
    overrides: HashMap<IpAddr, usize>,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIpLimits {
    fn open_counts(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // A count map left by a panicking shard is still a count map.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
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
                open: Mutex::new(HashMap::new()),
            })
        } else {
            None
        };
        Ok(BrokerConnections {
            max_connections: config.max_connections,
            open: AtomicUsize::new(0),
            per_ip,
        })
    }

    /// Admits a connection from `ip` under `max.connections.per.ip`, or
    /// `None` when that address already holds its limit.
    pub fn admit(self: &Arc<Self>, ip: Option<IpAddr>) -> Option<ConnectionPermit> {
        let counted_ip = match (&self.per_ip, ip) {
            (Some(limits), Some(ip)) => {
                let max = limits
                    .overrides
                    .get(&ip)
                    .copied()
                    .unwrap_or(limits.default_max);
                let mut open = limits.open_counts();
                let count = open.entry(ip).or_insert(0);
                if *count >= max {
                    if *count == 0 {
                        open.remove(&ip);
                    }
                    return None;
                }
                *count += 1;
                Some(ip)
            }
            _ => None,
        };
        Some(ConnectionPermit {
            connections: self.clone(),
            ip: counted_ip,
            counted: false,
        })
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
        if let (Some(limits), Some(ip)) = (&self.connections.per_ip, self.ip) {
            let mut open = limits.open_counts();
            if let Some(count) = open.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    open.remove(&ip);
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
        }
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
        let first: Vec<_> = (0..2).map(|_| limits.admit(Some(one))).collect();
        assert!(first.iter().all(Option::is_some));
        assert!(limits.admit(Some(one)).is_none());
        let second: Vec<_> = (0..3).map(|_| limits.admit(Some(two))).collect();
        assert!(second.iter().all(Option::is_some));
        assert!(limits.admit(Some(two)).is_none());
        drop(first);
        assert!(limits.admit(Some(one)).is_some());
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
        assert!(limits.admit("127.0.0.3".parse().ok()).is_none());
        assert!(limits.admit("127.0.0.1".parse().ok()).is_some());
    }

    #[test]
    fn max_connections_slots_are_exact_and_given_back() {
        let mut config = ConnectionConfig::default();
        config.set("max.connections", "2").expect("set");
        let limits = limits(&config);
        crate::shard::block_on(move || async move {
            let never = std::future::pending::<()>;
            let mut a = limits.admit(None).expect("admit");
            let mut b = limits.admit(None).expect("admit");
            assert!(a.count(never()).await);
            assert!(b.count(never()).await);
            assert!(!limits.has_room());
            let mut c = limits.admit(None).expect("admit");
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
