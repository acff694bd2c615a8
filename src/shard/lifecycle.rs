//! A broker's side of its lifecycle (Kafka's `BrokerLifecycleManager`),
//! on `CONTROLLER_SHARD` of every node with the broker role: it registers
//! with the active controller (a new incarnation id each process start,
//! its advertised client listener, `broker.rack`, the `metadata.version`
//! range it supports, its log directory), then heartbeats every
//! `broker.heartbeat.interval.ms` with its metadata offset (the applied
//! image's index − 1), and registers again when the controller no longer
//! knows its epoch (STALE_BROKER_EPOCH). On shutdown (`shut_down`) it
//! heartbeats with `want_shut_down` until told `should_shut_down`, so the
//! controller moves its leaderships away first, within
//! `CONTROLLED_SHUTDOWN_MS_MAX`.
//!
//! One of several voters reaches the controller through the
//! `ControllerChannel` (the CONTROLLER listeners); a lone voter calls its
//! own `BrokerControl` in process, registered and unfenced before it
//! serves clients (`start_sole`), and skips the controlled shutdown: no
//! other broker could take its partitions, and fencing itself would only
//! leave them leaderless until its next start.
//!
//! Invariant: one request to the controller at a time; every wait is
//! bounded (the channel's timeout, the heartbeat interval, the shutdown's
//! bound).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::broker_registration_request::{Feature, Listener};
use kafka_protocol::messages::{
    BrokerHeartbeatRequest, BrokerHeartbeatResponse, BrokerId, BrokerRegistrationRequest,
    BrokerRegistrationResponse,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::brokers::BrokerControl;
use super::quorum::QuorumHandle;
use crate::config::BrokerConfig;
use crate::metadata::brokers::DEFAULT_LISTENER_NAME;
use crate::metadata::table::{METADATA_VERSION_FEATURE, METADATA_VERSION_LEVEL};
use crate::quorum::channel::{ChannelConfig, ControllerChannel};
use crate::quorum::link::LinkSecurity;

/// How long a controlled shutdown may hold the process: about Kafka's
/// `broker.session.timeout.ms` default, after which the controller would
/// fence a silent broker anyway.
const CONTROLLED_SHUTDOWN_MS_MAX: u64 = 10_000;

/// The pause between heartbeats of a controlled shutdown: short, so the
/// broker learns soon that it may stop.
const SHUTDOWN_HEARTBEAT_MS: u64 = 100;

/// The oldest `metadata.version` a shoal broker reads: Kafka's first
/// KRaft version (3.0-IV1).
const METADATA_VERSION_MIN: i16 = 1;

/// Kafka's `controller.quorum.request.timeout.ms` default, a heartbeat's
/// time (Kafka's broker heartbeats through a channel with this timeout).
const HEARTBEAT_TIMEOUT_MS: u64 = 2_000;

/// PLAINTEXT's id in Kafka's `SecurityProtocol`.
const PLAINTEXT_PROTOCOL: i16 = 0;

/// Where the controller is.
enum Controller {
    /// This node is the only voter.
    InProcess(Rc<BrokerControl>),
    Remote(Box<ControllerChannel>),
}

/// The broker's lifecycle task's state.
pub struct LifecycleManager {
    controller: Controller,
    quorum: QuorumHandle,
    registration: BrokerRegistrationRequest,
    heartbeat_interval: Duration,
    /// The epoch the controller gave this incarnation; -1 unregistered.
    epoch: Cell<i64>,
    fenced: Cell<bool>,
    stopping: Cell<bool>,
}

impl LifecycleManager {
    fn new(
        controller: Controller,
        quorum: QuorumHandle,
        config: &BrokerConfig,
        registration: BrokerRegistrationRequest,
    ) -> Rc<LifecycleManager> {
        Rc::new(LifecycleManager {
            controller,
            quorum,
            registration,
            heartbeat_interval: Duration::from_millis(
                u64::try_from(config.cluster.broker_heartbeat_interval_ms)
                    .unwrap_or(1)
                    .max(1),
            ),
            epoch: Cell::new(-1),
            fenced: Cell::new(true),
            stopping: Cell::new(false),
        })
    }

    /// A lone voter's broker: registered and unfenced in process before
    /// this returns, then heartbeating in a task of its own.
    pub async fn start_sole(
        control: Rc<BrokerControl>,
        quorum: QuorumHandle,
        config: &BrokerConfig,
        cluster_id: &str,
    ) -> Rc<LifecycleManager> {
        // No other process can be this node's broker: its registration in
        // the image is its previous incarnation's, taken over at once.
        let previous_epoch = quorum
            .latest()
            .image
            .brokers
            .get(&config.node_id)
            .map_or(-1, |record| record.broker_epoch);
        let request = registration(config, cluster_id).with_previous_broker_epoch(previous_epoch);
        let lifecycle =
            LifecycleManager::new(Controller::InProcess(control), quorum, config, request);
        // Registration, then a heartbeat that finds it caught up.
        for _ in 0..2 {
            lifecycle.beat().await;
        }
        if lifecycle.fenced.get() {
            log::warn!("broker {}: not unfenced at start", config.node_id);
        }
        glommio::spawn_local(run(Rc::clone(&lifecycle))).detach();
        lifecycle
    }

    /// One of several voters' broker, heartbeating in a task of its own.
    pub fn start_remote(
        quorum: QuorumHandle,
        config: &BrokerConfig,
        cluster_id: &str,
    ) -> Rc<LifecycleManager> {
        let leader_quorum = quorum.clone();
        let channel = ControllerChannel::new(
            ChannelConfig {
                client_id: format!(
                    "broker-{}-to-controller-heartbeat-channel-manager",
                    config.node_id
                ),
                voters: config.cluster.quorum_voters.clone(),
                request_timeout_ms: HEARTBEAT_TIMEOUT_MS,
                security: LinkSecurity::controller_or_plaintext(config),
            },
            Rc::new(move || Some(leader_quorum.leader_id()).filter(|id| *id >= 0)),
        );
        let lifecycle = LifecycleManager::new(
            Controller::Remote(Box::new(channel)),
            quorum,
            config,
            registration(config, cluster_id),
        );
        glommio::spawn_local(run(Rc::clone(&lifecycle))).detach();
        lifecycle
    }

    /// Heartbeats with `want_shut_down` until the controller says the
    /// broker may stop (its leaderships moved), within
    /// `CONTROLLED_SHUTDOWN_MS_MAX`; a lone voter's returns at once.
    pub async fn shut_down(&self) {
        self.stopping.set(true);
        if matches!(self.controller, Controller::InProcess(_)) || self.epoch.get() < 0 {
            return;
        }
        let deadline = Instant::now() + Duration::from_millis(CONTROLLED_SHUTDOWN_MS_MAX);
        while Instant::now() < deadline {
            match self.heartbeat(true).await {
                Some(answer) if answer.should_shut_down => {
                    log::info!("controlled shutdown: the controller lets this broker stop");
                    return;
                }
                _ => glommio::timer::sleep(Duration::from_millis(SHUTDOWN_HEARTBEAT_MS)).await,
            }
        }
        log::warn!("controlled shutdown not finished within {CONTROLLED_SHUTDOWN_MS_MAX} ms: stopping anyway");
    }

    /// Registers if it must, else heartbeats.
    async fn beat(&self) {
        if self.epoch.get() < 0 {
            if let Some(answer) = self.register().await {
                if answer.error_code == 0 {
                    log::info!("broker registered with epoch {}", answer.broker_epoch);
                    self.epoch.set(answer.broker_epoch);
                } else {
                    log::warn!("broker registration refused: error {}", answer.error_code);
                }
            }
            return;
        }
        let _ = self.heartbeat(false).await;
    }

    async fn register(&self) -> Option<BrokerRegistrationResponse> {
        let request = self.registration.clone();
        match &self.controller {
            Controller::InProcess(control) => Some(control.register(&request).await),
            Controller::Remote(channel) => {
                match channel.call(request, REGISTRATION_VERSION).await {
                    Ok(answer) => Some(answer),
                    Err(error) => {
                        log::debug!("broker registration: {error}");
                        None
                    }
                }
            }
        }
    }

    /// One heartbeat; its answer, or None when no controller answered.
    async fn heartbeat(&self, want_shut_down: bool) -> Option<BrokerHeartbeatResponse> {
        let offset = i64::try_from(self.quorum.latest().index).unwrap_or(i64::MAX) - 1;
        let request = BrokerHeartbeatRequest::default()
            .with_broker_id(self.registration.broker_id)
            .with_broker_epoch(self.epoch.get())
            .with_current_metadata_offset(offset)
            .with_want_fence(false)
            .with_want_shut_down(want_shut_down);
        let answer = match &self.controller {
            Controller::InProcess(control) => control.heartbeat(&request).await,
            Controller::Remote(channel) => match channel.call(request, HEARTBEAT_VERSION).await {
                Ok(answer) => answer,
                Err(error) => {
                    log::debug!("broker heartbeat: {error}");
                    return None;
                }
            },
        };
        if answer.error_code == ResponseError::StaleBrokerEpoch.code() {
            log::warn!(
                "the controller does not know broker epoch {}: registering again",
                self.epoch.get()
            );
            self.epoch.set(-1);
            self.fenced.set(true);
            return Some(answer);
        }
        if answer.error_code == 0 && answer.is_fenced != self.fenced.get() {
            log::info!(
                "broker {}",
                if answer.is_fenced {
                    "fenced"
                } else {
                    "unfenced"
                }
            );
            self.fenced.set(answer.is_fenced);
        }
        Some(answer)
    }
}

/// BrokerRegistration's version: 4 (Kafka 4.0's, previous broker epoch).
const REGISTRATION_VERSION: i16 = 4;
/// BrokerHeartbeat's version: 1 (offline log directories).
const HEARTBEAT_VERSION: i16 = 1;

/// Heartbeats (registering first, and again when told) every interval
/// until shutdown begins.
async fn run(lifecycle: Rc<LifecycleManager>) {
    while !lifecycle.stopping.get() {
        lifecycle.beat().await;
        glommio::timer::sleep(lifecycle.heartbeat_interval).await;
    }
}

/// This process's registration: a new incarnation.
fn registration(config: &BrokerConfig, cluster_id: &str) -> BrokerRegistrationRequest {
    let (host, port) = config.advertised_host_port();
    let listener_name = config.cluster.broker_listener().map_or_else(
        || DEFAULT_LISTENER_NAME.to_string(),
        |listener| listener.name.clone(),
    );
    BrokerRegistrationRequest::default()
        .with_broker_id(BrokerId(config.node_id))
        .with_cluster_id(StrBytes::from_string(cluster_id.to_string()))
        .with_incarnation_id(Uuid::new_v4())
        .with_listeners(vec![Listener::default()
            .with_name(StrBytes::from_string(listener_name))
            .with_host(StrBytes::from_string(host))
            .with_port(u16::try_from(port).unwrap_or(0))
            .with_security_protocol(PLAINTEXT_PROTOCOL)])
        .with_features(vec![Feature::default()
            .with_name(StrBytes::from_static_str(METADATA_VERSION_FEATURE))
            .with_min_supported_version(METADATA_VERSION_MIN)
            .with_max_supported_version(METADATA_VERSION_LEVEL)])
        .with_rack(
            config
                .cluster
                .broker_rack
                .clone()
                .map(StrBytes::from_string),
        )
        .with_log_dirs(vec![log_dir_id(config)])
        .with_previous_broker_epoch(-1)
}

/// The log directory's id from meta.properties (`directory.id`, written by
/// `shoal storage format`); a node formatted without one (a plain `shoal
/// serve`) gets a new id each start, as nothing else names its directory.
fn log_dir_id(config: &BrokerConfig) -> Uuid {
    use base64::Engine;
    crate::metadata::store::read_meta_properties(&config.data_dir)
        .ok()
        .flatten()
        .and_then(|meta| meta.directory_id)
        .and_then(|id| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(id)
                .ok()
        })
        .and_then(|bytes| Uuid::from_slice(&bytes).ok())
        .unwrap_or_else(Uuid::new_v4)
}
