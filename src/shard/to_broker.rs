//! What a shard asks other brokers of the cluster, on their client
//! listener (Kafka's inter-broker `NetworkClient`s, one per sender): the
//! transaction verifications of KIP-890 (AddPartitionsToTxn v4+ to the
//! node coordinating the transactional id, `txn_verify.rs`), the
//! transaction markers of this node's coordinators (WriteTxnMarkers to the
//! partitions' leaders, `txn_markers.rs`) and the high watermarks the
//! admin task asks leaders for, for the lag of the groups this node
//! coordinates (ListOffsets, `admin::watermarks`).
//!
//! One connection per (shard, purpose, node), made on first use and kept;
//! one request in flight on it, so a purpose's requests to a node go out
//! in order and a slow one (a marker waiting for its ISR) never holds up
//! another purpose's. A failed exchange drops the connection; the caller
//! decides whether to try again.
//!
//! Invariant: every call is bounded in time (`BROKER_REQUEST_TIMEOUT_MS`)
//! and in the callers waiting for a link (`WAITING_CALLERS_MAX`); every
//! answer is read against `BROKER_FRAME_BYTES_MAX` before it is allocated
//! and decoded without trusting it (`channel::decode`).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use glommio::sync::Semaphore;
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Request};

use super::Shard;
use crate::config::{host_port, BrokerConfig};
use crate::quorum::channel::{decode, request_frame, within};
use crate::quorum::link::{self, LinkSecurity, LinkStream};

/// How long one request to another broker may take, connecting included:
/// below the 30 s `request.timeout.ms` of Kafka's clients, so that a
/// producer waiting on a verification hears a retriable answer before it
/// gives up on the partition's leader, and long enough for a marker that
/// waits for its partition's ISR.
pub const BROKER_REQUEST_TIMEOUT_MS: u64 = 10_000;

/// The largest answer read: AddPartitionsToTxn, WriteTxnMarkers and
/// ListOffsets answers are a few dozen bytes per partition; a batch of
/// verifications is bounded (`txn_verify.rs`), a marker job names a
/// transaction's partitions and a lag ask at most
/// `admin::watermarks::PARTITIONS_ASKED_MAX`, well under this.
const BROKER_FRAME_BYTES_MAX: usize = 16 << 20;

/// Callers waiting for one link's request in flight. Verifications wait
/// as one batch per node, markers one call per prepared transaction per
/// node; more than this waiting means the node does not answer, and its
/// callers are better told at once (they retry) than queued.
const WAITING_CALLERS_MAX: usize = 256;

/// Why a link is used: each purpose has links of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Purpose {
    Verify,
    Markers,
    Lag,
}

impl Purpose {
    fn client_id(self) -> &'static str {
        match self {
            Purpose::Verify => "shoal-txn-verification",
            Purpose::Markers => "shoal-txn-markers",
            Purpose::Lag => "shoal-consumer-lag",
        }
    }
}

/// One connection to one node, one request at a time.
struct Link {
    in_flight: Semaphore,
    waiting: Cell<usize>,
    stream: RefCell<Option<LinkStream>>,
    correlation_id: Cell<i32>,
}

impl Link {
    fn new() -> Link {
        Link {
            in_flight: Semaphore::new(1),
            waiting: Cell::new(0),
            stream: RefCell::new(None),
            correlation_id: Cell::new(0),
        }
    }
}

/// One caller counted as waiting for a link until it is dropped, so that
/// a caller given up on while it waits is counted out too.
struct Waiter<'a>(&'a Cell<usize>);

impl<'a> Waiter<'a> {
    fn new(waiting: &'a Cell<usize>) -> Waiter<'a> {
        waiting.set(waiting.get() + 1);
        Waiter(waiting)
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// A shard's links to other brokers, by purpose and node id, and how
/// they are secured (`quorum::link`).
pub struct BrokerLinks {
    links: RefCell<BTreeMap<(Purpose, i32), Rc<Link>>>,
    security: Rc<LinkSecurity>,
}

impl BrokerLinks {
    /// No links yet; their security from the inter-broker listener's
    /// settings (`server::serve` has checked they load on a node of
    /// several: on one alone, where no link leaves the node, a setting
    /// that does not load leaves the links in PLAINTEXT, logged).
    pub fn new(config: &BrokerConfig) -> BrokerLinks {
        let security = LinkSecurity::inter_broker(config).unwrap_or_else(|error| {
            log::debug!("inter-broker connections in PLAINTEXT: {error}");
            LinkSecurity::default()
        });
        BrokerLinks {
            links: RefCell::default(),
            security: Rc::new(security),
        }
    }

    /// How this shard's connections to other brokers are secured.
    pub fn security(&self) -> Rc<LinkSecurity> {
        self.security.clone()
    }

    fn link(&self, purpose: Purpose, node_id: i32) -> Rc<Link> {
        self.links
            .borrow_mut()
            .entry((purpose, node_id))
            .or_insert_with(|| Rc::new(Link::new()))
            .clone()
    }
}

impl Shard {
    /// The client endpoint of node `node_id` as this shard's view
    /// registers it: None for a node it does not know, fenced, or
    /// without an endpoint on the client listener.
    fn broker_address(&self, node_id: i32) -> Option<String> {
        let view = self.view();
        let broker = view
            .registered
            .iter()
            .find(|broker| broker.id == node_id && !broker.fenced)?;
        let (host, port) = broker.endpoint.clone()?;
        Some(host_port(&host, u16::try_from(port).ok()?))
    }

    /// Sends `request` at `version` to node `node_id` on the link of
    /// `purpose` and returns its answer; any failure (no endpoint, too
    /// many waiting, no connection, no answer in time, an answer that
    /// does not decode) as a message.
    pub async fn call_broker<R: Request>(
        &self,
        purpose: Purpose,
        node_id: i32,
        request: &R,
        version: i16,
    ) -> Result<R::Response, String> {
        let deadline = Instant::now() + Duration::from_millis(BROKER_REQUEST_TIMEOUT_MS);
        let link = self.to_brokers.link(purpose, node_id);
        if link.waiting.get() >= WAITING_CALLERS_MAX {
            return Err(format!(
                "{WAITING_CALLERS_MAX} requests already wait for node {node_id}"
            ));
        }
        let waiter = Waiter::new(&link.waiting);
        let permit = within(deadline, async {
            link.in_flight
                .acquire_permit(1)
                .await
                .map_err(|_| std::io::Error::other("the link is closed"))
        })
        .await;
        drop(waiter);
        let _permit = permit.map_err(|error| error.to_string())?;
        let address = self
            .broker_address(node_id)
            .ok_or_else(|| format!("node {node_id} has no live endpoint"))?;
        let security = self.to_brokers.security();
        let answer = exchange(
            &link,
            (address.as_str(), &*security),
            purpose,
            request,
            version,
            deadline,
        )
        .await;
        if answer.is_err() {
            link.stream.borrow_mut().take();
        }
        answer.map_err(|error| format!("node {node_id} at {address}: {error}"))
    }
}

/// One request on `link` (connected first if need be) and its answer.
async fn exchange<R: Request>(
    link: &Link,
    (address, security): (&str, &LinkSecurity),
    purpose: Purpose,
    request: &R,
    version: i16,
    deadline: Instant,
) -> std::io::Result<R::Response> {
    let api_key = ApiKey::try_from(R::KEY)
        .map_err(|()| std::io::Error::other(format!("unknown api key {}", R::KEY)))?;
    let mut body = BytesMut::new();
    request
        .encode(&mut body, version)
        .map_err(|error| std::io::Error::other(error.to_string()))?;
    let correlation_id = link.correlation_id.get().wrapping_add(1);
    link.correlation_id.set(correlation_id);
    let frame = request_frame(
        api_key,
        version,
        correlation_id,
        purpose.client_id(),
        &body.freeze(),
    )?;
    // The stream leaves its cell for the exchange: no borrow is held
    // across an await.
    let stream = link.stream.borrow_mut().take();
    let mut stream = match stream {
        Some(stream) => stream,
        None => link::connect(address, deadline, security, purpose.client_id()).await?,
    };
    let answer = within(deadline, async {
        stream.write_all(&frame).await?;
        stream.read_frame(BROKER_FRAME_BYTES_MAX).await
    })
    .await;
    let mut answer = answer?;
    *link.stream.borrow_mut() = Some(stream);
    let header = ResponseHeader::decode(&mut answer, api_key.response_header_version(version))
        .map_err(|error| std::io::Error::other(error.to_string()))?;
    if header.correlation_id != correlation_id {
        return Err(std::io::Error::other(format!(
            "correlation id {} answers request {correlation_id}",
            header.correlation_id
        )));
    }
    decode::<R::Response>(&mut answer, version)
}
