//! The admin HTTP listener (`admin.listeners`, default
//! `http://127.0.0.1:9644`): `GET /metrics` (Prometheus text format),
//! `GET /v1/status/live` (the process serves HTTP), `GET
//! /v1/status/ready` (the broker is registered, unfenced and caught up
//! with the metadata log; 503 otherwise), and `GET`/`PUT /v1/log/level`
//! (log levels by module at runtime, `logging`); and the web console,
//! `/console/` and its JSON under `/v1/console/` (`console`), whose
//! charts read the last hour the admin task samples (`history`). Each
//! sample also asks the leaders of the partitions the groups coordinated
//! here consume, where another node leads them, for their high watermarks
//! (`watermarks`), so that the console and `/metrics` show every group
//! partition's lag.
//! Its admin actions (`actions`, off by default) run as the Kafka API's
//! requests (`kafka`) for the user HTTP Basic names (`auth`) while an
//! authorizer is on.
//!
//! It runs on one shard (`admin_shard`, the last, away from the
//! controller's), in a task queue of its own with a small share of the
//! core, so a scrape yields to the shard's Kafka work; a scrape asks every
//! shard for its snapshot over the mesh (`ShardRequest::Metrics`).
//!
//! Invariant: bounded and off the Kafka path. At most
//! `CONNECTIONS_MAX` connections at once (more wait in the backlog); one
//! request per connection, whole within `REQUEST_TIMEOUT` and `http`'s
//! size bounds, its answer written within `WRITE_TIMEOUT`; nothing a
//! client sends here touches a Kafka connection or a partition, but for
//! the console's actions and record pages, which go through the Kafka
//! API's handlers and the partitions' owner shards, within the same
//! checks.

mod actions;
mod auth;
mod browse;
mod console;
mod history;
pub mod http;
mod kafka;
mod watermarks;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use futures_util::future::{select, Either};
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::Semaphore;
use glommio::TaskQueueHandle;
use log::LevelFilter;
use serde_json::json;

use crate::metrics::{export, BrokerMetrics};
use crate::server::connection::Port;
use crate::shard::messages::{ShardReply, ShardRequest};
use crate::shard::{self, Shard};
use history::History;
use http::{Parsed, Request, Response};
use watermarks::LeaderWatermarks;

/// Admin connections served at once: scrapers and health checks are a
/// handful; past this, connections wait in the listen backlog.
pub const CONNECTIONS_MAX: usize = 8;
/// How long a client has to send its whole request: a slow or silent one
/// is closed, and its slot freed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an answer may take to write to a client that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Scheduler shares of the admin task queue against the default queue's
/// 1000: a scrape takes at most about a tenth of a busy shard.
const ADMIN_SHARES: usize = 100;
/// The pause after a failed accept (out of descriptors), so the loop
/// does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Bytes read from an admin socket at a time.
const READ_CHUNK_BYTES: usize = 1024;

/// What the admin task keeps between samples, for its pages to read.
#[derive(Default)]
pub struct Memory {
    /// The last hour's samples.
    pub history: RefCell<History>,
    /// The high watermarks the leaders of group partitions led elsewhere
    /// gave at the last sample.
    pub led_elsewhere: RefCell<LeaderWatermarks>,
}

/// The shard that serves the admin listener: the last, so that the
/// controller's shard (the first) keeps its core.
pub fn admin_shard(shards: usize) -> usize {
    shards.saturating_sub(1)
}

/// On the admin shard, binds the admin listener and serves it in a low
/// task queue. A port the operator named and that cannot be bound fails
/// the start; the default's only warns (another broker on the host has it).
pub fn start(shard: &Rc<Shard>) -> Result<(), String> {
    let config = &shard.config.observability;
    let Some(address) = config.admin_address.as_deref() else {
        return Ok(());
    };
    if shard.id != admin_shard(shard.count()) {
        return Ok(());
    }
    let listener = match crate::server::listener::bind(address, Port::Own) {
        Ok(listener) => listener,
        Err(error) if !config.admin_explicit => {
            log::warn!(
                "admin listener not started: cannot listen on {address}: {error} (admin.listeners moves or turns it off)"
            );
            return Ok(());
        }
        Err(error) => {
            return Err(format!(
                "cannot listen on admin listener {address}: {error}"
            ))
        }
    };
    let queue = glommio::executor().create_task_queue(
        glommio::Shares::Static(ADMIN_SHARES),
        glommio::Latency::NotImportant,
        "admin",
    );
    let memory = Rc::new(Memory::default());
    let sampling = glommio::spawn_local_into(sample(Rc::downgrade(shard), memory.clone()), queue)
        .map_err(|error| format!("cannot start the admin listener: {error}"))?;
    sampling.detach();
    let accepting =
        glommio::spawn_local_into(accept(Rc::downgrade(shard), memory, listener, queue), queue)
            .map_err(|error| format!("cannot start the admin listener: {error}"))?;
    accepting.detach();
    log::info!("admin listener on http://{address}");
    Ok(())
}

/// Keeps a sample of the broker's metrics every `SAMPLE_INTERVAL` in
/// `memory`, with the high watermarks of group partitions led elsewhere
/// as their leaders give them then, until the shard's executor stops.
async fn sample(shard: Weak<Shard>, memory: Rc<Memory>) {
    loop {
        let Some(strong) = shard.upgrade() else {
            return;
        };
        let mut metrics = gather(&strong, &memory, true).await;
        let led_elsewhere = watermarks::ask_leaders(&strong, &metrics).await;
        drop(strong);
        metrics.led_elsewhere = led_elsewhere.clone();
        *memory.led_elsewhere.borrow_mut() = led_elsewhere;
        memory
            .history
            .borrow_mut()
            .record(&metrics, crate::clock::now_ms());
        glommio::timer::sleep(history::SAMPLE_INTERVAL).await;
    }
}

/// Accepts admin connections, `CONNECTIONS_MAX` served at a time, until
/// the shard's executor stops.
async fn accept(
    shard: Weak<Shard>,
    memory: Rc<Memory>,
    listener: TcpListener,
    queue: TaskQueueHandle,
) {
    let slots = Rc::new(Semaphore::new(CONNECTIONS_MAX as u64));
    loop {
        let Ok(slot) = slots.acquire_static_permit(1).await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(error) => {
                log::debug!("admin listener: accept failed: {error}");
                glommio::timer::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let shard = shard.clone();
        let memory = memory.clone();
        let serving = glommio::spawn_local_into(
            async move {
                serve(&shard, &memory, stream).await;
                drop(slot);
            },
            queue,
        );
        if let Ok(task) = serving {
            task.detach();
        }
    }
}

/// Reads one request, answers it, closes.
async fn serve(shard: &Weak<Shard>, memory: &Memory, mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let peer = stream.peer_addr().ok();
    let read = {
        let reading = Box::pin(read_request(&mut stream));
        let deadline = Box::pin(glommio::timer::sleep(REQUEST_TIMEOUT));
        match select(reading, deadline).await {
            Either::Left((read, _)) => read,
            Either::Right(_) => Err(Some(408)),
        }
    };
    let (response, head_only) = match read {
        Ok(request) => (
            route(shard, memory, &request, peer).await,
            request.method == "HEAD",
        ),
        Err(Some(status)) => (Response::status(status), false),
        // The client closed before a whole request: nobody to answer.
        Err(None) => return,
    };
    let _ = stream.write_all(&response.encode(head_only)).await;
    let _ = stream.close().await;
}

/// The request the client sends; `Err(Some(status))` to refuse it,
/// `Err(None)` when the client closed (or failed) first.
async fn read_request(stream: &mut TcpStream) -> Result<Request, Option<u16>> {
    let mut buffer = Vec::with_capacity(READ_CHUNK_BYTES);
    let mut chunk = [0u8; READ_CHUNK_BYTES];
    loop {
        match http::parse(&buffer) {
            Parsed::Complete(request) => return Ok(request),
            Parsed::Invalid(status) => return Err(Some(status)),
            Parsed::Partial => {}
        }
        let read = stream.read(&mut chunk).await.map_err(|_| None)?;
        if read == 0 {
            return Err(None);
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

const READ_ONLY: &str = "GET, HEAD";

async fn route(
    shard: &Weak<Shard>,
    memory: &Memory,
    request: &Request,
    peer: Option<SocketAddr>,
) -> Response {
    let Some(shard) = shard.upgrade() else {
        return Response::status(503);
    };
    if let Some(response) = console::route(&shard, memory, request, peer).await {
        return response;
    }
    let reading = matches!(request.method.as_str(), "GET" | "HEAD");
    match request.path.as_str() {
        "/metrics" if reading => {
            let series = shard.config.observability.metrics_partition_series_enabled;
            let text = export::render(&gather(&shard, memory, series).await);
            Response::new(200, export::CONTENT_TYPE, text)
        }
        "/v1/status/live" if reading => Response::json(200, &json!({ "status": "live" })),
        "/v1/status/ready" if reading => ready(&shard),
        "/v1/log/level" if reading => log_levels(),
        "/v1/log/level" if request.method == "PUT" => set_log_level(&request.query),
        "/v1/log/level" => Response::method_not_allowed("GET, HEAD, PUT"),
        "/metrics" | "/v1/status/live" | "/v1/status/ready" => {
            Response::method_not_allowed(READ_ONLY)
        }
        _ => Response::status(404),
    }
}

/// Every shard's snapshot, merged with the cluster as this shard sees it;
/// with every partition's series and group's offsets, and the high
/// watermarks `memory` holds of partitions led elsewhere, when `series`.
pub async fn gather(shard: &Rc<Shard>, memory: &Memory, series: bool) -> BrokerMetrics {
    let calls = (0..shard.count()).map(|id| shard.call(id, ShardRequest::Metrics { series }));
    let snapshots = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .filter_map(|reply| match reply {
            ShardReply::Metrics(snapshot) => Some(*snapshot),
            _ => None,
        })
        .collect();
    let mut metrics = BrokerMetrics::merge(snapshots, shard::metrics::cluster(shard));
    if series {
        metrics.led_elsewhere = memory.led_elsewhere.borrow().clone();
    }
    metrics
}

fn ready(shard: &Shard) -> Response {
    match shard::metrics::ready(shard, &shard.view()) {
        true => Response::json(200, &json!({ "status": "ready" })),
        false => Response::json(503, &json!({ "status": "not ready" })),
    }
}

fn log_levels() -> Response {
    let modules: serde_json::Map<String, serde_json::Value> = crate::logging::levels()
        .into_iter()
        .map(|(module, level)| (module, json!(level.as_str().to_ascii_lowercase())))
        .collect();
    let base = crate::logging::base_level().as_str().to_ascii_lowercase();
    Response::json(200, &json!({ "base": base, "modules": modules }))
}

/// `PUT /v1/log/level?module=shoal::server&level=debug` (`level=reset`
/// returns the module to the base filter).
fn set_log_level(query: &str) -> Response {
    let pairs = http::query_pairs(query);
    let value = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let (Some(module), Some(level)) = (value("module"), value("level")) else {
        return bad_request(
            "expected ?module=<path>&level=<off|error|warn|info|debug|trace|reset>",
        );
    };
    let level = match level {
        "reset" => None,
        name => match name.parse::<LevelFilter>() {
            Ok(level) => Some(level),
            Err(_) => return bad_request(&format!("unknown level {name:?}")),
        },
    };
    match crate::logging::set_level(module, level) {
        Ok(()) => {
            log::info!(
                "log level of {module} set to {}",
                level.map_or("the base filter's", |level| level.as_str())
            );
            log_levels()
        }
        Err(reason) => bad_request(&reason),
    }
}

fn bad_request(reason: &str) -> Response {
    Response::json(400, &json!({ "error": reason }))
}
