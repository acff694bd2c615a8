//! The active controller's side of brokers' lifecycle, on
//! `CONTROLLER_SHARD` of each voter: the pure `metadata::heartbeats`
//! (`BrokerLifecycle`) and `metadata::leadership`, carried out.
//! BrokerRegistration (62), BrokerHeartbeat (63) and AlterPartition (56)
//! come through the CONTROLLER listener's hook (`service`), or in process
//! from this node's own broker (`shard::lifecycle`,
//! `shard::alter_partition`).
//!
//! The lifecycle learns registrations from the committed image
//! (`sync`, whenever the quorum's image moved): a broker's record is
//! replayed at its broker epoch, the offset of the RegisterBrokerRecord
//! that made its incarnation. (A re-registration of the same incarnation
//! lands at a later offset with the same epoch; it is replayed at the
//! epoch, so such a broker may be unfenced before it has caught up to the
//! re-registration itself. shoal's brokers re-register only with a new
//! incarnation.) The lifecycle is active while this node leads the quorum
//! (`QuorumHandle::leads`, looked at on every request and timer round).
//!
//! A registration is answered once its record is committed; a heartbeat
//! once the records of its state change are, with the partition moves the
//! change needs (`leadership`, unclean elections where the topic's or this
//! controller's `unclean.leader.election.enable` allows) in the same
//! entry; an AlterPartition once its ISR changes are
//! (`metadata::alter_partition`), with each partition as committed. A timer fences brokers
//! whose session ran out, one entry each. A lone voter's own broker is
//! never fenced by the timer: it is the only broker, and it is alive for
//! as long as this code runs.
//!
//! Invariant: one change at a time (`changes`); nothing is answered
//! before its records are committed; the lifecycle is active only on the
//! quorum's leader.

use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

use glommio::sync::Semaphore;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    alter_partition_response, AlterPartitionRequest, AlterPartitionResponse, ApiKey,
    BrokerHeartbeatRequest, BrokerHeartbeatResponse, BrokerId, BrokerRegistrationRequest,
    BrokerRegistrationResponse,
};

use super::quorum::{ProposeError, QuorumHandle};
use crate::clock::now_ms;
use crate::metadata::alter_partition::{self, BrokerStanding, IsrRequest};
use crate::metadata::controller::KafkaError;
use crate::metadata::heartbeats::{
    BrokerLifecycle, BrokerState, HeartbeatRequest, RegistrationRequest,
};
use crate::metadata::image::MetadataImage;
use crate::metadata::leadership;
use crate::metadata::records::{
    BrokerEndpoint, BrokerEpochRecord, BrokerFeature, MetadataRecord, RegisterBrokerRecord,
};
use crate::protocol::frame;
use crate::quorum::transport::{decode_body, ControllerRequest, ControllerService};

/// The versions served on the CONTROLLER listener: Kafka 4's.
pub const BROKER_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::BrokerRegistration, 0, 4),
    (ApiKey::BrokerHeartbeat, 0, 1),
    (
        ApiKey::AlterPartition,
        ALTER_PARTITION_VERSION_MIN,
        ALTER_PARTITION_VERSION_MAX,
    ),
];

/// AlterPartition's versions: Kafka 4's (topic ids; 3 adds each new ISR
/// member's broker epoch).
pub const ALTER_PARTITION_VERSION_MIN: i16 = 2;
pub const ALTER_PARTITION_VERSION_MAX: i16 = 3;

/// The longest the expiry timer sleeps: it also notices that this node
/// became (or stopped being) the leader, so a new leader starts brokers'
/// sessions within this even if no broker speaks to it.
const EXPIRY_POLL_MS: u64 = 250;

/// The active controller's brokers.
pub struct BrokerControl {
    pub(super) quorum: QuorumHandle,
    lifecycle: Rc<RefCell<BrokerLifecycle>>,
    /// The image the lifecycle learnt from last.
    synced: RefCell<Option<Arc<MetadataImage>>>,
    /// One change at a time: a heartbeat's records, a fencing, an ISR
    /// change.
    pub(super) changes: Semaphore,
    /// This controller's `unclean.leader.election.enable`, for topics
    /// that do not set their own.
    unclean_default: bool,
}

impl BrokerControl {
    /// The control for `cluster_id` with `broker.session.timeout.ms` and
    /// `unclean.leader.election.enable`; its expiry timer runs until the
    /// control is dropped.
    pub fn start(
        quorum: QuorumHandle,
        cluster_id: String,
        session_timeout_ms: i64,
        unclean_default: bool,
        sole: bool,
    ) -> Rc<BrokerControl> {
        let control = Rc::new(BrokerControl {
            quorum,
            lifecycle: Rc::new(RefCell::new(BrokerLifecycle::new(
                cluster_id,
                session_timeout_ms,
            ))),
            synced: RefCell::new(None),
            changes: Semaphore::new(1),
            unclean_default,
        });
        // A lone voter's own broker is never expired (the module doc).
        if !sole {
            glommio::spawn_local(expire_sessions(Rc::downgrade(&control))).detach();
        }
        control
    }

    /// Whether this node is the active controller.
    pub fn leads(&self) -> bool {
        self.quorum.leads()
    }

    /// BrokerRegistration and BrokerHeartbeat for the CONTROLLER listener
    /// (authorized by `to_controller::controller_service`, which serves
    /// them with the rest).
    pub fn service(self: &Rc<Self>) -> ControllerService {
        let control = Rc::downgrade(self);
        ControllerService {
            apis: Rc::new(move |request| Box::pin(serve(Weak::clone(&control), request))),
            versions: BROKER_APIS,
            authorize: crate::quorum::authorize::allow_all(),
        }
    }

    /// Learns what the quorum committed since the last look, and becomes
    /// active (or not) as this node leads (or not).
    pub(super) fn sync(&self) {
        let latest = self.quorum.latest().image;
        let moved = !self
            .synced
            .borrow()
            .as_ref()
            .is_some_and(|synced| Arc::ptr_eq(synced, &latest));
        let now = now();
        let mut lifecycle = self.lifecycle.borrow_mut();
        if moved {
            for record in latest.brokers.values() {
                for change in replays(&lifecycle, record) {
                    lifecycle.replay(&change, record.broker_epoch, now);
                }
            }
            *self.synced.borrow_mut() = Some(latest);
        }
        match (self.quorum.leads(), lifecycle.is_active()) {
            (true, false) => lifecycle.activate(now),
            (false, true) => lifecycle.deactivate(),
            _ => {}
        }
    }

    /// Answers a registration once its record is committed.
    pub async fn register(
        &self,
        request: &BrokerRegistrationRequest,
    ) -> BrokerRegistrationResponse {
        let answer = |error: Option<KafkaError>, epoch| {
            BrokerRegistrationResponse::default()
                .with_error_code(error.map_or(0, |error| error.code))
                .with_broker_epoch(epoch)
        };
        let Ok(_change) = self.changes.acquire_permit(1).await else {
            return answer(Some(KafkaError::new(ResponseError::NotController)), -1);
        };
        self.sync();
        let request = registration(request);
        let made: Rc<RefCell<Option<Result<RegisterBrokerRecord, KafkaError>>>> = Rc::default();
        let (lifecycle, out) = (Rc::clone(&self.lifecycle), Rc::clone(&made));
        let committed = self
            .quorum
            .propose_at(Box::new(move |image, next_offset| {
                let record =
                    lifecycle
                        .borrow()
                        .register(&request, &image.features, next_offset, now());
                let records = match &record {
                    Ok(record) => vec![MetadataRecord::RegisterBroker(record.clone())],
                    Err(_) => Vec::new(),
                };
                *out.borrow_mut() = Some(record);
                records
            }))
            .await;
        self.sync();
        let made = made.borrow_mut().take();
        match (committed, made) {
            (Ok(_), Some(Ok(record))) => answer(None, record.broker_epoch),
            (Ok(_), Some(Err(error))) => answer(Some(error), -1),
            (Ok(_), None) | (Err(ProposeError::NotController), _) => {
                answer(Some(KafkaError::new(ResponseError::NotController)), -1)
            }
            (Err(error), _) => answer(Some(proposal_failed(&error)), -1),
        }
    }

    /// Answers a heartbeat once the records of its state change (and the
    /// partition moves it needs) are committed.
    pub async fn heartbeat(&self, request: &BrokerHeartbeatRequest) -> BrokerHeartbeatResponse {
        let failed =
            |error: KafkaError| BrokerHeartbeatResponse::default().with_error_code(error.code);
        let Ok(_change) = self.changes.acquire_permit(1).await else {
            return failed(KafkaError::new(ResponseError::NotController));
        };
        self.sync();
        let id = request.broker_id.0;
        let heartbeat = HeartbeatRequest {
            broker_id: id,
            broker_epoch: request.broker_epoch,
            current_metadata_offset: request.current_metadata_offset,
            want_fence: request.want_fence,
            want_shut_down: request.want_shut_down,
        };
        let leads = leadership::leads_any(&self.quorum.latest().image, id);
        let outcome = self
            .lifecycle
            .borrow_mut()
            .heartbeat(&heartbeat, leads, now());
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => return failed(error),
        };
        let reply = BrokerHeartbeatResponse::default()
            .with_is_caught_up(outcome.reply.is_caught_up)
            .with_is_fenced(outcome.reply.is_fenced)
            .with_should_shut_down(outcome.reply.should_shut_down);
        let leaves = outcome.from == BrokerState::Unfenced && outcome.to != BrokerState::Unfenced;
        let returns = outcome.from.fenced() && outcome.to == BrokerState::Unfenced;
        if outcome.records.is_empty() && !leaves {
            return reply;
        }
        let active = self.active_brokers();
        let unclean = self.unclean_default;
        let records = outcome.records;
        let committed = self
            .quorum
            .propose(Box::new(move |image| {
                let mut records = records;
                if leaves {
                    records.extend(leadership::broker_leaves(
                        image,
                        id,
                        |other| active.contains(&other),
                        unclean,
                    ));
                } else if returns {
                    records.extend(leadership::broker_returns(image, id, unclean));
                }
                records
            }))
            .await;
        self.sync();
        match committed {
            Ok(applied) => {
                if outcome.to == BrokerState::ControlledShutdown {
                    let end_offset = i64::try_from(applied.index).unwrap_or(i64::MAX) - 1;
                    self.lifecycle
                        .borrow_mut()
                        .controlled_shutdown_committed(id, end_offset);
                }
                reply
            }
            Err(error) => failed(proposal_failed(&error)),
        }
    }

    /// Answers an AlterPartition (`version` 2 or 3) once the ISR changes
    /// it makes are committed, each partition as committed or with its
    /// error; the whole request fails with STALE_BROKER_EPOCH when the
    /// sender is not registered at its epoch.
    pub async fn alter_partition(
        &self,
        request: &AlterPartitionRequest,
        version: i16,
    ) -> AlterPartitionResponse {
        let failed =
            |error: KafkaError| AlterPartitionResponse::default().with_error_code(error.code);
        let Ok(_change) = self.changes.acquire_permit(1).await else {
            return failed(KafkaError::new(ResponseError::NotController));
        };
        self.sync();
        if !self.quorum.leads() {
            return failed(KafkaError::new(ResponseError::NotController));
        }
        let standings = self.standings();
        let sender = request.broker_id.0;
        if let Err(error) = alter_partition::check_sender(&standings, sender, request.broker_epoch)
        {
            return failed(error);
        }
        let items = isr_requests(request, version);
        let outcomes: Rc<RefCell<Vec<Result<(), KafkaError>>>> = Rc::default();
        let (checked, out) = (items.clone(), Rc::clone(&outcomes));
        let committed = self
            .quorum
            .propose(Box::new(move |image| {
                let mut records = Vec::new();
                let mut outcomes = out.borrow_mut();
                for item in &checked {
                    let outcome = alter_partition::alter_isr(image, &standings, sender, item);
                    if let Ok(Some(record)) = &outcome {
                        records.push(MetadataRecord::PartitionChange(record.clone()));
                    }
                    outcomes.push(outcome.map(drop));
                }
                records
            }))
            .await;
        self.sync();
        let applied = match committed {
            Ok(applied) => applied,
            Err(error) => return failed(proposal_failed(&error)),
        };
        let outcomes = outcomes.borrow();
        if outcomes.len() != items.len() {
            return failed(KafkaError::new(ResponseError::NotController));
        }
        let answers = items.iter().zip(outcomes.iter()).map(|(item, outcome)| {
            let answer = outcome
                .clone()
                .and_then(|()| alter_partition::committed(&applied.image, item));
            (item, answer)
        });
        alter_partition_response(answers)
    }

    /// Every registered broker as AlterPartition checks it: the epoch it
    /// registered at, fenced and shutting down as the sessions say.
    fn standings(&self) -> Vec<BrokerStanding> {
        let lifecycle = self.lifecycle.borrow();
        lifecycle
            .placement_brokers()
            .into_iter()
            .filter_map(|broker| {
                let (record, _) = lifecycle.registration(broker.id)?;
                Some(BrokerStanding {
                    id: broker.id,
                    epoch: record.broker_epoch,
                    fenced: broker.fenced,
                    in_controlled_shutdown: broker.in_controlled_shutdown,
                })
            })
            .collect()
    }

    /// The brokers that may lead: unfenced and not shutting down.
    pub(super) fn active_brokers(&self) -> Vec<i32> {
        self.lifecycle
            .borrow()
            .placement_brokers()
            .into_iter()
            .filter(|broker| !broker.fenced && !broker.in_controlled_shutdown)
            .map(|broker| broker.id)
            .collect()
    }

    /// Fences every broker whose session ran out, one entry each, with
    /// the partition moves that follow.
    async fn expire(&self) {
        let Ok(_change) = self.changes.acquire_permit(1).await else {
            return;
        };
        self.sync();
        loop {
            let expired = self.lifecycle.borrow_mut().expire(now());
            let Some((id, fence)) = expired else {
                return;
            };
            log::info!("broker {id}: session expired, fenced");
            let active = self.active_brokers();
            let unclean = self.unclean_default;
            let committed = self
                .quorum
                .propose(Box::new(move |image| {
                    let mut records = vec![fence];
                    records.extend(leadership::broker_leaves(
                        image,
                        id,
                        |other| active.contains(&other),
                        unclean,
                    ));
                    records
                }))
                .await;
            self.sync();
            if let Err(error) = committed {
                log::warn!("broker {id}: its fencing not committed: {error}");
                return;
            }
        }
    }

    /// When the timer should look again.
    fn next_look(&self) -> Duration {
        let now = now();
        let next = self.lifecycle.borrow().next_expiry_ms();
        let wait_ms = next.map_or(EXPIRY_POLL_MS, |at| {
            u64::try_from(at.saturating_sub(now).saturating_add(1)).unwrap_or(0)
        });
        Duration::from_millis(wait_ms.clamp(1, EXPIRY_POLL_MS))
    }
}

/// The records that bring the lifecycle's view of `record`'s broker to it.
fn replays(lifecycle: &BrokerLifecycle, record: &RegisterBrokerRecord) -> Vec<MetadataRecord> {
    let epoch = BrokerEpochRecord {
        id: record.broker_id,
        epoch: record.broker_epoch,
    };
    match lifecycle.registration(record.broker_id) {
        Some((known, _)) if known == record => Vec::new(),
        Some((known, _))
            if RegisterBrokerRecord {
                fenced: record.fenced,
                ..known.clone()
            } == *record =>
        {
            if record.fenced {
                vec![MetadataRecord::FenceBroker(epoch)]
            } else {
                vec![MetadataRecord::UnfenceBroker(epoch)]
            }
        }
        _ => vec![MetadataRecord::RegisterBroker(record.clone())],
    }
}

async fn expire_sessions(control: Weak<BrokerControl>) {
    loop {
        let Some(wait) = control.upgrade().map(|control| control.next_look()) else {
            return;
        };
        glommio::timer::sleep(wait).await;
        let Some(control) = control.upgrade() else {
            return;
        };
        control.expire().await;
    }
}

/// Serves one hooked request.
async fn serve(
    control: Weak<BrokerControl>,
    request: ControllerRequest,
) -> Result<bytes::Bytes, String> {
    let ControllerRequest {
        header,
        api_key,
        version,
        mut body,
    } = request;
    let control = control
        .upgrade()
        .ok_or_else(|| "the controller is stopping".to_string())?;
    match api_key {
        ApiKey::BrokerRegistration => {
            let request: BrokerRegistrationRequest = decode_body(&mut body, api_key, version)?;
            let answer = control.register(&request).await;
            frame::encode_response(&header, version, &answer)
        }
        ApiKey::BrokerHeartbeat => {
            let request: BrokerHeartbeatRequest = decode_body(&mut body, api_key, version)?;
            let answer = control.heartbeat(&request).await;
            frame::encode_response(&header, version, &answer)
        }
        ApiKey::AlterPartition => {
            let request: AlterPartitionRequest = decode_body(&mut body, api_key, version)?;
            let answer = control.alter_partition(&request, version).await;
            frame::encode_response(&header, version, &answer)
        }
        _ => Err(format!("{api_key:?} is not served here")),
    }
}

/// The partitions of an AlterPartition, each with its new ISR's broker
/// epochs (version 2 sends none: unchecked).
fn isr_requests(request: &AlterPartitionRequest, version: i16) -> Vec<IsrRequest> {
    let mut items = Vec::new();
    for topic in &request.topics {
        for partition in &topic.partitions {
            let new_isr = if version >= 3 {
                partition
                    .new_isr_with_epochs
                    .iter()
                    .map(|member| (member.broker_id.0, member.broker_epoch))
                    .collect()
            } else {
                partition
                    .new_isr
                    .iter()
                    .map(|id| (id.0, alter_partition::UNCHECKED_BROKER_EPOCH))
                    .collect()
            };
            items.push(IsrRequest {
                topic_id: topic.topic_id,
                partition: partition.partition_index,
                leader_epoch: partition.leader_epoch,
                partition_epoch: partition.partition_epoch,
                new_isr,
                leader_recovery_state: partition.leader_recovery_state,
            });
        }
    }
    items
}

/// The response: each partition under its topic, in request order.
fn alter_partition_response<'a>(
    answers: impl Iterator<
        Item = (
            &'a IsrRequest,
            Result<alter_partition::CommittedPartition, KafkaError>,
        ),
    >,
) -> AlterPartitionResponse {
    let mut topics: Vec<alter_partition_response::TopicData> = Vec::new();
    for (item, answer) in answers {
        let partition = match answer {
            Ok(state) => alter_partition_response::PartitionData::default()
                .with_leader_id(BrokerId(state.leader))
                .with_leader_epoch(state.leader_epoch)
                .with_isr(state.isr.into_iter().map(BrokerId).collect())
                .with_leader_recovery_state(state.leader_recovery_state)
                .with_partition_epoch(state.partition_epoch),
            Err(error) => {
                alter_partition_response::PartitionData::default().with_error_code(error.code)
            }
        }
        .with_partition_index(item.partition);
        match topics.last_mut() {
            Some(topic) if topic.topic_id == item.topic_id => topic.partitions.push(partition),
            _ => topics.push(
                alter_partition_response::TopicData::default()
                    .with_topic_id(item.topic_id)
                    .with_partitions(vec![partition]),
            ),
        }
    }
    AlterPartitionResponse::default().with_topics(topics)
}

fn registration(request: &BrokerRegistrationRequest) -> RegistrationRequest {
    RegistrationRequest {
        broker_id: request.broker_id.0,
        cluster_id: request.cluster_id.to_string(),
        incarnation_id: request.incarnation_id,
        listeners: request
            .listeners
            .iter()
            .map(|listener| BrokerEndpoint {
                name: listener.name.to_string(),
                host: listener.host.to_string(),
                port: listener.port,
                security_protocol: listener.security_protocol,
            })
            .collect(),
        features: request
            .features
            .iter()
            .map(|feature| BrokerFeature {
                name: feature.name.to_string(),
                min_supported_version: feature.min_supported_version,
                max_supported_version: feature.max_supported_version,
            })
            .collect(),
        rack: request.rack.as_ref().map(|rack| rack.to_string()),
        is_migrating_zk_broker: request.is_migrating_zk_broker,
        log_dirs: request.log_dirs.clone(),
        previous_broker_epoch: request.previous_broker_epoch,
    }
}

pub(super) fn proposal_failed(error: &ProposeError) -> KafkaError {
    match error {
        ProposeError::NotController => KafkaError::new(ResponseError::NotController),
        ProposeError::TimedOut => KafkaError::new(ResponseError::RequestTimedOut),
        ProposeError::Failed(message) => {
            KafkaError::with_message(ResponseError::UnknownServerError, message.clone())
        }
    }
}

fn now() -> i64 {
    i64::try_from(now_ms()).unwrap_or(i64::MAX)
}
