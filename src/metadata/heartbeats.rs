//! The active controller's decisions about brokers, as Kafka makes them
//! (`ClusterControlManager.registerBroker`, `BrokerHeartbeatManager`,
//! `ReplicationControlManager.processBrokerHeartbeat` and
//! `maybeFenceOneStaleBroker`): a BrokerRegistration checked and turned
//! into the RegisterBrokerRecord to commit; a BrokerHeartbeat answered,
//! with the FenceBroker or UnfenceBroker record its state change needs;
//! brokers whose session (`broker.session.timeout.ms`) ran out fenced.
//!
//! Two kinds of state, as in Kafka. Registrations (and their fencing) are
//! learnt only from committed records, through `replay` with each record's
//! log offset, on every controller. Sessions (last contact, the metadata
//! offset a broker reported, a controlled shutdown's offset) live only on
//! the active controller: `activate` starts every registered broker's
//! session at the election time, as a new Kafka controller does, and
//! decisions change them at once, before their records commit.
//!
//! Offsets: a record's offset is that of the Raft entry carrying it
//! (`quorum::describe`: entry `i` is offset `i - 1`). A new incarnation's
//! broker epoch is the offset its RegisterBrokerRecord will take, which
//! the caller knows before proposing: the leader's last log index (the
//! next entry, `last_index + 1`, is offset `last_index`), Kafka's
//! `nextWriteOffset`. Kafka answers a registration only once its record
//! is committed, so a broker never heartbeats an epoch not yet replayed.
//!
//! Left to the caller, who owns the partitions' records: when a broker
//! becomes fenced or starts a controlled shutdown (`Heartbeat::to`,
//! `expire`), take it out of every ISR and elect other leaders for the
//! partitions it led; when one is unfenced, elect leaders for leaderless
//! partitions. A controlled shutdown ends once the caller, having
//! committed those moves, reports the batch's end offset
//! (`controlled_shutdown_committed`) and every active broker has caught up
//! to it; until then the broker hears `in_controlled_shutdown`.
//!
//! Invariant: pure (no IO, no clock: time is `now_ms`, given); a broker is
//! never unfenced before its metadata offset reaches its registration's;
//! an unfenced broker is fenced by `expire` only once `now_ms` is past its
//! last contact plus the session timeout. Not wired yet: the increment
//! that serves BrokerRegistration and BrokerHeartbeat on the CONTROLLER
//! listener drives it from `shard/controller.rs`.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::controller::KafkaError;
use super::placer::PlacementBroker;
use super::records::{
    BrokerEndpoint, BrokerEpochRecord, BrokerFeature, MetadataRecord, RegisterBrokerRecord,
};
use super::table::METADATA_VERSION_FEATURE;

/// The `metadata.version` assumed of a broker that names none, and the
/// finalized level assumed when none is set: Kafka's first KRaft version
/// (3.0-IV1).
const MINIMUM_KRAFT_METADATA_VERSION: i16 = 1;

/// The first `metadata.version` whose brokers register their log
/// directories (3.7-IV2, Kafka's `isDirectoryAssignmentSupported`).
const DIRECTORY_ASSIGNMENT_METADATA_VERSION: i16 = 17;

/// Directory ids below this, under a zero high half, are Kafka's reserved
/// ones (`DirectoryId.reserved`: unassigned, lost, migrating, ...).
const RESERVED_DIRECTORY_IDS: u64 = 100;

/// A BrokerRegistration request, as the controller receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationRequest {
    pub broker_id: i32,
    pub cluster_id: String,
    pub incarnation_id: Uuid,
    pub listeners: Vec<BrokerEndpoint>,
    pub features: Vec<BrokerFeature>,
    pub rack: Option<String>,
    pub is_migrating_zk_broker: bool,
    pub log_dirs: Vec<Uuid>,
}

/// A BrokerHeartbeat request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRequest {
    pub broker_id: i32,
    pub broker_epoch: i64,
    pub current_metadata_offset: i64,
    pub want_fence: bool,
    pub want_shut_down: bool,
}

/// A broker's state as its heartbeats see it (Kafka's `BrokerControlState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerState {
    Fenced,
    Unfenced,
    ControlledShutdown,
    ShutdownNow,
}

impl BrokerState {
    pub fn fenced(self) -> bool {
        matches!(self, BrokerState::Fenced | BrokerState::ShutdownNow)
    }
}

/// The BrokerHeartbeat response's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub is_caught_up: bool,
    pub is_fenced: bool,
    pub in_controlled_shutdown: bool,
    pub should_shut_down: bool,
}

/// A heartbeat's outcome: the reply, the records to commit before sending
/// it, and the broker's state before and after (see the module doc for
/// what the caller does on each change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub reply: HeartbeatReply,
    pub records: Vec<MetadataRecord>,
    pub from: BrokerState,
    pub to: BrokerState,
}

/// A registration as committed: the record and its log offset.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Registration {
    record: RegisterBrokerRecord,
    offset: i64,
}

/// A broker's session on the active controller.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Session {
    last_contact_ms: i64,
    /// The metadata offset the broker last reported; -1 before it has.
    metadata_offset: i64,
    fenced: bool,
    /// Set once the moves of a controlled shutdown are committed.
    controlled_shutdown_offset: Option<i64>,
}

impl Session {
    fn new(fenced: bool, now_ms: i64) -> Session {
        Session {
            last_contact_ms: now_ms,
            metadata_offset: -1,
            fenced,
            controlled_shutdown_offset: None,
        }
    }

    fn state(&self) -> BrokerState {
        if self.controlled_shutdown_offset.is_some() {
            BrokerState::ControlledShutdown
        } else if self.fenced {
            BrokerState::Fenced
        } else {
            BrokerState::Unfenced
        }
    }

    /// Active: may lead and count for a controlled shutdown's progress.
    fn active(&self) -> bool {
        !self.fenced && self.controlled_shutdown_offset.is_none()
    }
}

/// The controller's registrations and, when active, brokers' sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerLifecycle {
    cluster_id: String,
    session_timeout_ms: i64,
    registrations: BTreeMap<i32, Registration>,
    /// None on a controller that is not the active one.
    sessions: Option<BTreeMap<i32, Session>>,
}

impl BrokerLifecycle {
    /// An inactive controller's state for `cluster_id`, with
    /// `broker.session.timeout.ms`.
    pub fn new(cluster_id: String, session_timeout_ms: i64) -> BrokerLifecycle {
        BrokerLifecycle {
            cluster_id,
            session_timeout_ms,
            registrations: BTreeMap::new(),
            sessions: None,
        }
    }

    /// Becomes the active controller at `now_ms`: every registered broker
    /// gets a session from now, fenced as its registration says.
    pub fn activate(&mut self, now_ms: i64) {
        let sessions = self
            .registrations
            .iter()
            .map(|(&id, registration)| (id, Session::new(registration.record.fenced, now_ms)))
            .collect();
        self.sessions = Some(sessions);
    }

    /// Stops being the active controller: sessions and any decision not
    /// yet committed are dropped.
    pub fn deactivate(&mut self) {
        self.sessions = None;
    }

    pub fn is_active(&self) -> bool {
        self.sessions.is_some()
    }

    /// Learns a committed record at `offset` (a snapshot's records at the
    /// snapshot's last offset, as Kafka loads one). Records about other
    /// things, or about an epoch not registered, change nothing here (the
    /// image refuses the latter too).
    pub fn replay(&mut self, record: &MetadataRecord, offset: i64, now_ms: i64) {
        match record {
            MetadataRecord::RegisterBroker(record) => {
                // Kafka restarts the session of a broker whose registration
                // changes, from its new fencing.
                if let Some(sessions) = &mut self.sessions {
                    sessions.insert(record.broker_id, Session::new(record.fenced, now_ms));
                }
                let registration = Registration {
                    record: record.clone(),
                    offset,
                };
                self.registrations.insert(record.broker_id, registration);
            }
            MetadataRecord::FenceBroker(record) => self.replay_fencing(record, true),
            MetadataRecord::UnfenceBroker(record) => self.replay_fencing(record, false),
            _ => {}
        }
    }

    fn replay_fencing(&mut self, record: &BrokerEpochRecord, fenced: bool) {
        let Some(registration) = self
            .registrations
            .get_mut(&record.id)
            .filter(|registration| registration.record.broker_epoch == record.epoch)
        else {
            return;
        };
        registration.record.fenced = fenced;
        if let Some(session) = self
            .sessions
            .as_mut()
            .and_then(|sessions| sessions.get_mut(&record.id))
        {
            session.fenced = fenced;
            if fenced {
                session.controlled_shutdown_offset = None;
            }
        }
    }

    /// Checks a registration at `now_ms` against the committed ones and the
    /// finalized features (the image's, with `kraft.version` added as Kafka
    /// adds it), and returns the record to commit; its `broker_epoch` is
    /// the reply's. `next_offset` is the offset the record will take.
    pub fn register(
        &self,
        request: &RegistrationRequest,
        finalized_features: &BTreeMap<String, i16>,
        next_offset: i64,
        now_ms: i64,
    ) -> Result<RegisterBrokerRecord, KafkaError> {
        let sessions = self.sessions.as_ref().ok_or_else(not_controller)?;
        if request.cluster_id != self.cluster_id {
            return Err(KafkaError::with_message(
                ResponseError::InconsistentClusterId,
                format!(
                    "Expected cluster ID {}, but got cluster ID {}",
                    self.cluster_id, request.cluster_id
                ),
            ));
        }
        let id = request.broker_id;
        let existing = self.registrations.get(&id);
        if let Some(existing) = existing {
            let live = sessions
                .get(&id)
                .is_some_and(|session| self.valid_session(session, now_ms));
            if live && existing.record.incarnation_id != request.incarnation_id {
                return Err(KafkaError::with_message(
                    ResponseError::DuplicateBrokerRegistration,
                    "Another broker is registered with that broker id.".to_string(),
                ));
            }
        }
        if request.is_migrating_zk_broker {
            return Err(KafkaError::with_message(
                ResponseError::BrokerIdNotRegistered,
                "Controller does not support registering ZK brokers.".to_string(),
            ));
        }
        let metadata_version = finalized_features
            .get(METADATA_VERSION_FEATURE)
            .copied()
            .unwrap_or(MINIMUM_KRAFT_METADATA_VERSION);
        if metadata_version >= DIRECTORY_ASSIGNMENT_METADATA_VERSION {
            self.check_log_dirs(id, &request.log_dirs)?;
        }
        let features = checked_features(&request.features, finalized_features)?;
        let (broker_epoch, fenced, in_controlled_shutdown) = match existing {
            Some(existing) if existing.record.incarnation_id == request.incarnation_id => (
                existing.record.broker_epoch,
                existing.record.fenced,
                existing.record.in_controlled_shutdown,
            ),
            _ => (next_offset, true, false),
        };
        Ok(RegisterBrokerRecord {
            broker_id: id,
            is_migrating_zk_broker: false,
            incarnation_id: request.incarnation_id,
            broker_epoch,
            end_points: request.listeners.clone(),
            features,
            rack: request.rack.clone(),
            fenced,
            in_controlled_shutdown,
            log_dirs: if metadata_version >= DIRECTORY_ASSIGNMENT_METADATA_VERSION {
                request.log_dirs.clone()
            } else {
                Vec::new()
            },
        })
    }

    fn check_log_dirs(&self, id: i32, log_dirs: &[Uuid]) -> Result<(), KafkaError> {
        let invalid =
            |message: String| KafkaError::with_message(ResponseError::InvalidRegistration, message);
        if log_dirs.is_empty() {
            return Err(invalid("No directories specified in request".to_string()));
        }
        if log_dirs.iter().any(|dir| {
            let (high, low) = dir.as_u64_pair();
            high == 0 && low < RESERVED_DIRECTORY_IDS
        }) {
            return Err(invalid("Reserved directory ID in request".to_string()));
        }
        let mut sorted = log_dirs.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != log_dirs.len() {
            return Err(invalid("Duplicate directory ID in request".to_string()));
        }
        for dir in log_dirs {
            let owner = self.registrations.values().find(|registration| {
                registration.record.broker_id != id && registration.record.log_dirs.contains(dir)
            });
            if let Some(owner) = owner {
                return Err(invalid(format!(
                    "Broker {} is already registered with directory {dir}",
                    owner.record.broker_id
                )));
            }
        }
        Ok(())
    }

    /// Answers a heartbeat at `now_ms`. `has_leaderships`: whether the
    /// broker leads any partition in the image (a controlled shutdown waits
    /// until it leads none).
    pub fn heartbeat(
        &mut self,
        request: &HeartbeatRequest,
        has_leaderships: bool,
        now_ms: i64,
    ) -> Result<Heartbeat, KafkaError> {
        let id = request.broker_id;
        let registration = self.registrations.get(&id).ok_or_else(|| {
            KafkaError::with_message(
                ResponseError::StaleBrokerEpoch,
                format!("Receive a heartbeat from broker {id} before registration"),
            )
        })?;
        if registration.record.broker_epoch != request.broker_epoch {
            return Err(KafkaError::with_message(
                ResponseError::StaleBrokerEpoch,
                format!(
                    "Expected broker epoch {}, but got broker epoch {}",
                    registration.record.broker_epoch, request.broker_epoch
                ),
            ));
        }
        let registration_offset = registration.offset;
        let lowest_active_offset = self.lowest_active_offset();
        let sessions = self.sessions.as_mut().ok_or_else(not_controller)?;
        let session = sessions
            .entry(id)
            .or_insert_with(|| Session::new(registration.record.fenced, now_ms));
        let from = session.state();
        let to = next_state(
            from,
            request,
            registration_offset,
            has_leaderships,
            session.controlled_shutdown_offset,
            lowest_active_offset,
        );
        let epoch = BrokerEpochRecord {
            id,
            epoch: request.broker_epoch,
        };
        let records = match (from == to, to) {
            (true, _) | (false, BrokerState::ControlledShutdown) => Vec::new(),
            (false, BrokerState::Fenced | BrokerState::ShutdownNow) => {
                vec![MetadataRecord::FenceBroker(epoch)]
            }
            (false, BrokerState::Unfenced) => vec![MetadataRecord::UnfenceBroker(epoch)],
        };
        session.last_contact_ms = now_ms;
        session.metadata_offset = request.current_metadata_offset;
        session.fenced = to.fenced();
        if to.fenced() {
            // Fenced, it leaves controlled shutdown and on its next
            // heartbeat is told to shut down at once.
            session.controlled_shutdown_offset = None;
        }
        Ok(Heartbeat {
            reply: HeartbeatReply {
                is_caught_up: request.current_metadata_offset >= registration_offset,
                is_fenced: to.fenced(),
                in_controlled_shutdown: to == BrokerState::ControlledShutdown,
                should_shut_down: to == BrokerState::ShutdownNow,
            },
            records,
            from,
            to,
        })
    }

    /// The moves of `broker_id`'s controlled shutdown are committed up to
    /// `end_offset`; it may stop once every active broker has caught up to
    /// that. The first offset holds (Kafka's
    /// `maybeUpdateControlledShutdownOffset`); a fenced broker has no
    /// controlled shutdown to record.
    pub fn controlled_shutdown_committed(&mut self, broker_id: i32, end_offset: i64) {
        if let Some(session) = self
            .sessions
            .as_mut()
            .and_then(|sessions| sessions.get_mut(&broker_id))
            .filter(|session| !session.fenced)
        {
            session.controlled_shutdown_offset.get_or_insert(end_offset);
        }
    }

    /// Fences one broker whose session ran out at `now_ms`, the one heard
    /// from longest ago: its FenceBroker record, or None. One at a time, as
    /// Kafka does, so that the caller's ISR and leader changes for each are
    /// made against the image the previous one left; call until None.
    pub fn expire(&mut self, now_ms: i64) -> Option<(i32, MetadataRecord)> {
        let timeout_ms = self.session_timeout_ms;
        let sessions = self.sessions.as_mut()?;
        let (&id, session) = sessions
            .iter_mut()
            .filter(|(_, session)| !session.fenced)
            .min_by_key(|(&id, session)| (session.last_contact_ms, id))?;
        if session.last_contact_ms.saturating_add(timeout_ms) >= now_ms {
            return None;
        }
        session.fenced = true;
        session.controlled_shutdown_offset = None;
        let epoch = self.registrations.get(&id)?.record.broker_epoch;
        Some((
            id,
            MetadataRecord::FenceBroker(BrokerEpochRecord { id, epoch }),
        ))
    }

    /// When the next session runs out (`expire` fences from just after
    /// it), or None with no unfenced broker.
    pub fn next_expiry_ms(&self) -> Option<i64> {
        self.sessions
            .as_ref()?
            .values()
            .filter(|session| !session.fenced)
            .map(|session| {
                session
                    .last_contact_ms
                    .saturating_add(self.session_timeout_ms)
            })
            .min()
    }

    /// The registered brokers as placement sees them: fenced and in
    /// controlled shutdown as the sessions say on the active controller.
    pub fn placement_brokers(&self) -> Vec<PlacementBroker> {
        self.registrations
            .iter()
            .map(|(id, registration)| {
                let session = self.sessions.as_ref().and_then(|sessions| sessions.get(id));
                PlacementBroker {
                    id: *id,
                    rack: registration.record.rack.clone(),
                    fenced: session.map_or(registration.record.fenced, |session| session.fenced),
                    in_controlled_shutdown: session
                        .is_some_and(|session| session.controlled_shutdown_offset.is_some()),
                }
            })
            .collect()
    }

    /// Kafka's `hasValidSession`: unfenced and heard from within the timeout.
    fn valid_session(&self, session: &Session, now_ms: i64) -> bool {
        !session.fenced
            && session
                .last_contact_ms
                .saturating_add(self.session_timeout_ms)
                >= now_ms
    }

    /// The least metadata offset an active broker reported: a controlled
    /// shutdown completes once it reaches the shutdown's offset.
    fn lowest_active_offset(&self) -> i64 {
        self.sessions
            .iter()
            .flat_map(|sessions| sessions.values())
            .filter(|session| session.active())
            .map(|session| session.metadata_offset)
            .min()
            .unwrap_or(i64::MAX)
    }
}

fn not_controller() -> KafkaError {
    KafkaError::new(ResponseError::NotController)
}

/// Kafka's `calculateNextBrokerState`.
fn next_state(
    from: BrokerState,
    request: &HeartbeatRequest,
    registration_offset: i64,
    has_leaderships: bool,
    controlled_shutdown_offset: Option<i64>,
    lowest_active_offset: i64,
) -> BrokerState {
    match from {
        BrokerState::Fenced if request.want_shut_down => BrokerState::ShutdownNow,
        BrokerState::Fenced
            if !request.want_fence && request.current_metadata_offset >= registration_offset =>
        {
            BrokerState::Unfenced
        }
        BrokerState::Fenced => BrokerState::Fenced,
        BrokerState::Unfenced if request.want_fence && request.want_shut_down => {
            BrokerState::ShutdownNow
        }
        BrokerState::Unfenced if request.want_fence => BrokerState::Fenced,
        BrokerState::Unfenced if request.want_shut_down && has_leaderships => {
            BrokerState::ControlledShutdown
        }
        BrokerState::Unfenced if request.want_shut_down => BrokerState::ShutdownNow,
        BrokerState::Unfenced => BrokerState::Unfenced,
        BrokerState::ControlledShutdown if has_leaderships => BrokerState::ControlledShutdown,
        BrokerState::ControlledShutdown
            if controlled_shutdown_offset.is_some_and(|offset| offset <= lowest_active_offset) =>
        {
            BrokerState::ShutdownNow
        }
        BrokerState::ControlledShutdown => BrokerState::ControlledShutdown,
        BrokerState::ShutdownNow => BrokerState::ShutdownNow,
    }
}

/// Kafka's `processRegistrationFeature` over every feature the broker names,
/// then `metadata.version` if it names none (assumed to support only the
/// first KRaft version), then every finalized feature it does not name
/// (assumed unsupported beyond level 0).
fn checked_features(
    requested: &[BrokerFeature],
    finalized: &BTreeMap<String, i16>,
) -> Result<Vec<BrokerFeature>, KafkaError> {
    let mut features = Vec::with_capacity(requested.len() + 1);
    for feature in requested {
        check_feature(feature, finalized)?;
        features.push(feature.clone());
    }
    if !requested
        .iter()
        .any(|feature| feature.name == METADATA_VERSION_FEATURE)
    {
        let assumed = BrokerFeature {
            name: METADATA_VERSION_FEATURE.to_string(),
            min_supported_version: MINIMUM_KRAFT_METADATA_VERSION,
            max_supported_version: MINIMUM_KRAFT_METADATA_VERSION,
        };
        check_feature(&assumed, finalized)?;
        features.push(assumed);
    }
    for (name, &level) in finalized {
        let named = requested.iter().any(|feature| &feature.name == name);
        if level != 0 && !named && name != METADATA_VERSION_FEATURE {
            let unsupported = BrokerFeature {
                name: name.clone(),
                min_supported_version: 0,
                max_supported_version: 0,
            };
            check_feature(&unsupported, finalized)?;
        }
    }
    Ok(features)
}

fn check_feature(
    feature: &BrokerFeature,
    finalized: &BTreeMap<String, i16>,
) -> Result<(), KafkaError> {
    let default = if feature.name == METADATA_VERSION_FEATURE {
        MINIMUM_KRAFT_METADATA_VERSION
    } else {
        0
    };
    let level = finalized.get(&feature.name).copied().unwrap_or(default);
    if (feature.min_supported_version..=feature.max_supported_version).contains(&level) {
        return Ok(());
    }
    Err(KafkaError::with_message(
        ResponseError::UnsupportedVersion,
        format!(
            "Unable to register because the broker does not support finalized version {level} of {}. The broker wants a version between {} and {}, inclusive.",
            feature.name, feature.min_supported_version, feature.max_supported_version
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::image::MetadataImage;
    use proptest::prelude::*;

    /// Kafka's `broker.session.timeout.ms` default, 9000.
    const TIMEOUT_MS: i64 = 9000;
    const CLUSTER: &str = "MkU3OEVBNTcwNTJENDM2Qg";
    /// shoal's bootstrap `metadata.version` (4.0-IV3).
    const METADATA_VERSION: i16 = 25;

    fn finalized() -> BTreeMap<String, i16> {
        BTreeMap::from([(METADATA_VERSION_FEATURE.to_string(), METADATA_VERSION)])
    }

    fn request(id: i32, incarnation: u128) -> RegistrationRequest {
        RegistrationRequest {
            broker_id: id,
            cluster_id: CLUSTER.to_string(),
            incarnation_id: Uuid::from_u128(incarnation),
            listeners: vec![BrokerEndpoint {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092,
                security_protocol: 0,
            }],
            features: vec![BrokerFeature {
                name: METADATA_VERSION_FEATURE.into(),
                min_supported_version: 1,
                max_supported_version: METADATA_VERSION,
            }],
            rack: None,
            is_migrating_zk_broker: false,
            log_dirs: vec![Uuid::from_u128(1000 + id as u128)],
        }
    }

    fn heartbeat(id: i32, epoch: i64, offset: i64) -> HeartbeatRequest {
        HeartbeatRequest {
            broker_id: id,
            broker_epoch: epoch,
            current_metadata_offset: offset,
            want_fence: false,
            want_shut_down: false,
        }
    }

    /// The committed metadata log: a record's offset is its index.
    #[derive(Default)]
    struct Log {
        records: Vec<MetadataRecord>,
    }

    impl Log {
        fn next_offset(&self) -> i64 {
            self.records.len() as i64
        }

        fn commit(
            &mut self,
            records: Vec<MetadataRecord>,
            state: &mut BrokerLifecycle,
            now_ms: i64,
        ) {
            for record in records {
                state.replay(&record, self.next_offset(), now_ms);
                self.records.push(record);
            }
        }

        /// Registers `id` and commits its record: the broker epoch.
        fn register(
            &mut self,
            state: &mut BrokerLifecycle,
            id: i32,
            incarnation: u128,
            now_ms: i64,
        ) -> i64 {
            let record = state
                .register(
                    &request(id, incarnation),
                    &finalized(),
                    self.next_offset(),
                    now_ms,
                )
                .unwrap();
            let epoch = record.broker_epoch;
            self.commit(vec![MetadataRecord::RegisterBroker(record)], state, now_ms);
            epoch
        }
    }

    #[test]
    fn the_session_timeout_is_kafkas_default() {
        let config = crate::config::ClusterConfig::default();
        assert_eq!(i64::from(config.broker_session_timeout_ms), TIMEOUT_MS);
    }

    fn active() -> BrokerLifecycle {
        let mut state = BrokerLifecycle::new(CLUSTER.to_string(), TIMEOUT_MS);
        state.activate(0);
        state
    }

    fn error(result: Result<impl std::fmt::Debug, KafkaError>) -> (i16, String) {
        let error = result.unwrap_err();
        (error.code, error.message.unwrap_or_default())
    }

    #[test]
    fn registrations_are_checked_as_kafka_does() {
        let mut state = active();
        let mut log = Log::default();
        log.commit(vec![MetadataRecord::NoOp; 5], &mut state, 0);
        let epoch = log.register(&mut state, 1, 7, 0);
        assert_eq!(epoch, 5, "a new incarnation's epoch is its record's offset");
        let unfence = state
            .heartbeat(&heartbeat(1, epoch, 5), false, 100)
            .unwrap();
        log.commit(unfence.records, &mut state, 100);

        let check = |state: &BrokerLifecycle, request: &RegistrationRequest, now_ms| {
            error(state.register(request, &finalized(), 50, now_ms))
        };
        let mut other_cluster = request(2, 1);
        other_cluster.cluster_id = "other".into();
        assert_eq!(
            check(&state, &other_cluster, 100),
            (
                ResponseError::InconsistentClusterId.code(),
                format!("Expected cluster ID {CLUSTER}, but got cluster ID other")
            )
        );
        let duplicate = (
            ResponseError::DuplicateBrokerRegistration.code(),
            "Another broker is registered with that broker id.".to_string(),
        );
        assert_eq!(check(&state, &request(1, 8), 100 + TIMEOUT_MS), duplicate);
        // Once the live broker's session has run out, a new incarnation may take the id.
        let replaced = state
            .register(&request(1, 8), &finalized(), 50, 101 + TIMEOUT_MS)
            .unwrap();
        assert_eq!((replaced.broker_epoch, replaced.fenced), (50, true));
        // The same incarnation amends its registration: epoch and fencing kept.
        let amended = state
            .register(&request(1, 7), &finalized(), 50, 100)
            .unwrap();
        assert_eq!((amended.broker_epoch, amended.fenced), (5, false));

        let mut zk = request(2, 1);
        zk.is_migrating_zk_broker = true;
        let invalid = ResponseError::InvalidRegistration.code();
        let mut no_dirs = request(2, 1);
        no_dirs.log_dirs.clear();
        let mut reserved = request(2, 1);
        reserved.log_dirs = vec![Uuid::from_u128(99)];
        let mut twice = request(2, 1);
        twice.log_dirs = vec![Uuid::from_u128(5000), Uuid::from_u128(5000)];
        let mut taken = request(2, 1);
        taken.log_dirs = vec![Uuid::from_u128(1001)];
        let mut old_broker = request(2, 1);
        old_broker.features.clear();
        let mut new_feature = finalized();
        new_feature.insert("kraft.version".into(), 1);
        let unsupported = ResponseError::UnsupportedVersion.code();
        for (request, expected) in [
            (zk, (ResponseError::BrokerIdNotRegistered.code(), "Controller does not support registering ZK brokers.".to_string())),
            (no_dirs, (invalid, "No directories specified in request".to_string())),
            (reserved, (invalid, "Reserved directory ID in request".to_string())),
            (twice, (invalid, "Duplicate directory ID in request".to_string())),
            (taken, (invalid, format!("Broker 1 is already registered with directory {}", Uuid::from_u128(1001)))),
            (old_broker, (unsupported, "Unable to register because the broker does not support finalized version 25 of metadata.version. The broker wants a version between 1 and 1, inclusive.".to_string())),
        ] {
            assert_eq!(check(&state, &request, 100), expected);
        }
        assert_eq!(
            error(state.register(&request(2, 1), &new_feature, 50, 100)),
            (unsupported, "Unable to register because the broker does not support finalized version 1 of kraft.version. The broker wants a version between 0 and 0, inclusive.".to_string())
        );
        state.deactivate();
        assert_eq!(
            state
                .register(&request(2, 1), &finalized(), 50, 100)
                .unwrap_err(),
            KafkaError::new(ResponseError::NotController)
        );
    }

    #[test]
    fn a_broker_is_unfenced_once_caught_up_and_fenced_when_it_asks() {
        let mut state = active();
        let mut log = Log::default();
        log.commit(vec![MetadataRecord::NoOp; 3], &mut state, 0);
        let epoch = log.register(&mut state, 1, 7, 0);
        assert_eq!(
            error(state.heartbeat(&heartbeat(2, epoch, 0), false, 1)),
            (
                ResponseError::StaleBrokerEpoch.code(),
                "Receive a heartbeat from broker 2 before registration".to_string()
            )
        );
        assert_eq!(
            error(state.heartbeat(&heartbeat(1, epoch - 1, 0), false, 1)),
            (
                ResponseError::StaleBrokerEpoch.code(),
                format!(
                    "Expected broker epoch {epoch}, but got broker epoch {}",
                    epoch - 1
                )
            )
        );
        let behind = state
            .heartbeat(&heartbeat(1, epoch, epoch - 1), false, 1)
            .unwrap();
        assert_eq!(
            (behind.from, behind.to),
            (BrokerState::Fenced, BrokerState::Fenced)
        );
        assert!(behind.records.is_empty() && behind.reply.is_fenced && !behind.reply.is_caught_up);
        let caught_up = state
            .heartbeat(&heartbeat(1, epoch, epoch), false, 2)
            .unwrap();
        assert_eq!(caught_up.to, BrokerState::Unfenced);
        assert!(caught_up.reply.is_caught_up && !caught_up.reply.is_fenced);
        assert_eq!(
            caught_up.records,
            vec![MetadataRecord::UnfenceBroker(BrokerEpochRecord {
                id: 1,
                epoch
            })]
        );
        // Decided but not yet committed: no second record.
        assert!(state
            .heartbeat(&heartbeat(1, epoch, epoch), false, 3)
            .unwrap()
            .records
            .is_empty());
        log.commit(caught_up.records, &mut state, 3);
        let mut fence = heartbeat(1, epoch, epoch + 1);
        fence.want_fence = true;
        let fenced = state.heartbeat(&fence, false, 4).unwrap();
        assert_eq!(fenced.to, BrokerState::Fenced);
        assert_eq!(
            fenced.records,
            vec![MetadataRecord::FenceBroker(BrokerEpochRecord {
                id: 1,
                epoch
            })]
        );
        let mut stop = heartbeat(1, epoch, epoch + 1);
        stop.want_shut_down = true;
        let stopped = state.heartbeat(&stop, true, 5).unwrap();
        assert_eq!(stopped.to, BrokerState::ShutdownNow);
        assert!(stopped.reply.should_shut_down && stopped.reply.is_fenced);
    }

    #[test]
    fn a_controlled_shutdown_waits_for_leaders_to_move_and_brokers_to_catch_up() {
        let mut state = active();
        let mut log = Log::default();
        let one = log.register(&mut state, 1, 1, 0);
        let two = log.register(&mut state, 2, 2, 0);
        for (id, epoch) in [(1, one), (2, two)] {
            let unfence = state.heartbeat(&heartbeat(id, epoch, 2), false, 1).unwrap();
            log.commit(unfence.records, &mut state, 1);
        }
        let mut stop = heartbeat(1, one, 3);
        stop.want_shut_down = true;
        let asked = state.heartbeat(&stop, true, 2).unwrap();
        assert_eq!(
            (asked.from, asked.to),
            (BrokerState::Unfenced, BrokerState::ControlledShutdown)
        );
        assert!(
            asked.records.is_empty()
                && asked.reply.in_controlled_shutdown
                && !asked.reply.is_fenced
        );
        // The caller commits the leadership moves; their batch ends at 20.
        state.controlled_shutdown_committed(1, 20);
        let shutting = state.placement_brokers();
        assert!(shutting[0].in_controlled_shutdown && !shutting[1].in_controlled_shutdown);
        assert_eq!(
            state.heartbeat(&stop, true, 3).unwrap().to,
            BrokerState::ControlledShutdown
        );
        state.heartbeat(&heartbeat(2, two, 19), false, 3).unwrap();
        assert_eq!(
            state.heartbeat(&stop, false, 4).unwrap().to,
            BrokerState::ControlledShutdown
        );
        state.heartbeat(&heartbeat(2, two, 20), false, 5).unwrap();
        let done = state.heartbeat(&stop, false, 6).unwrap();
        assert_eq!(
            (done.from, done.to),
            (BrokerState::ControlledShutdown, BrokerState::ShutdownNow)
        );
        assert!(done.reply.should_shut_down);
        assert_eq!(
            done.records,
            vec![MetadataRecord::FenceBroker(BrokerEpochRecord {
                id: 1,
                epoch: one
            })]
        );
    }

    /// One step of a cluster's life: a registration, a heartbeat or an
    /// expiry check, `elapsed_ms` after the one before.
    #[derive(Debug, Clone)]
    enum Event {
        Register {
            id: i32,
            incarnation: u128,
        },
        Heartbeat {
            id: i32,
            stale_epoch: bool,
            lag: i64,
            want_fence: bool,
            want_shut_down: bool,
            leads: bool,
        },
        Expire,
    }

    fn event() -> impl Strategy<Value = (i64, Event)> {
        let event = prop_oneof![
            (0..3i32, 0..2u128).prop_map(|(id, incarnation)| Event::Register { id, incarnation }),
            (
                0..3i32,
                prop::bool::weighted(0.1),
                -2..4i64,
                prop::bool::weighted(0.1),
                prop::bool::weighted(0.1),
                any::<bool>()
            )
                .prop_map(
                    |(id, stale_epoch, lag, want_fence, want_shut_down, leads)| Event::Heartbeat {
                        id,
                        stale_epoch,
                        lag,
                        want_fence,
                        want_shut_down,
                        leads
                    }
                ),
            Just(Event::Expire),
        ];
        (0..TIMEOUT_MS / 2, event)
    }

    /// What a decision gave, to compare two controllers by.
    #[derive(Debug, PartialEq, Eq)]
    enum Outcome {
        Registered(Result<RegisterBrokerRecord, KafkaError>),
        Heartbeat(Result<Heartbeat, KafkaError>),
        Expired(Vec<(i32, MetadataRecord)>),
    }

    /// Runs `event` on `state` at `now_ms`, committing what it decides.
    fn run(state: &mut BrokerLifecycle, log: &mut Log, event: &Event, now_ms: i64) -> Outcome {
        match *event {
            Event::Register { id, incarnation } => {
                let result = state.register(
                    &request(id, incarnation),
                    &finalized(),
                    log.next_offset(),
                    now_ms,
                );
                if let Ok(record) = &result {
                    log.commit(
                        vec![MetadataRecord::RegisterBroker(record.clone())],
                        state,
                        now_ms,
                    );
                }
                Outcome::Registered(result)
            }
            Event::Heartbeat {
                id,
                stale_epoch,
                lag,
                want_fence,
                want_shut_down,
                leads,
            } => {
                let epoch = state
                    .registrations
                    .get(&id)
                    .map_or(0, |r| r.record.broker_epoch);
                let request = HeartbeatRequest {
                    broker_id: id,
                    broker_epoch: epoch - i64::from(stale_epoch),
                    current_metadata_offset: log.next_offset() - 1 - lag,
                    want_fence,
                    want_shut_down,
                };
                let result = state.heartbeat(&request, leads, now_ms);
                if let Ok(heartbeat) = &result {
                    log.commit(heartbeat.records.clone(), state, now_ms);
                    if heartbeat.to == BrokerState::ControlledShutdown {
                        state.controlled_shutdown_committed(id, log.next_offset() - 1);
                    }
                }
                Outcome::Heartbeat(result)
            }
            Event::Expire => {
                let mut expired = Vec::new();
                while let Some((id, record)) = state.expire(now_ms) {
                    log.commit(vec![record.clone()], state, now_ms);
                    expired.push((id, record));
                }
                Outcome::Expired(expired)
            }
        }
    }

    proptest! {
        #[test]
        fn a_broker_is_never_unfenced_before_it_caught_up(events in prop::collection::vec(event(), 0..60)) {
            let mut state = active();
            let mut log = Log::default();
            let mut now_ms = 0;
            for (elapsed_ms, event) in &events {
                now_ms += elapsed_ms;
                if let Outcome::Heartbeat(Ok(heartbeat)) = run(&mut state, &mut log, event, now_ms) {
                    let Event::Heartbeat { id, lag, .. } = *event else { unreachable!() };
                    let caught_up = log.next_offset() - 1 - lag >= state.registrations[&id].offset;
                    if !heartbeat.reply.is_fenced {
                        prop_assert!(caught_up || heartbeat.from != BrokerState::Fenced);
                    }
                    if heartbeat.records.iter().any(|r| matches!(r, MetadataRecord::UnfenceBroker(_))) {
                        prop_assert!(caught_up);
                    }
                }
            }
            // The controller's view of fencing is the image's.
            let image = MetadataImage::replay(&log.records).unwrap();
            for broker in state.placement_brokers() {
                prop_assert_eq!(broker.fenced, image.brokers[&broker.id].fenced);
            }
        }

        #[test]
        fn a_silent_broker_is_fenced_after_the_session_timeout_and_never_before(
            beats in prop::collection::vec(0..TIMEOUT_MS, 1..10),
            checks in prop::collection::vec(0..3 * TIMEOUT_MS, 1..10),
        ) {
            let mut state = active();
            let mut log = Log::default();
            let epoch = log.register(&mut state, 1, 1, 0);
            let mut now_ms = 0;
            for beat in beats {
                now_ms += beat;
                let heartbeat = state.heartbeat(&heartbeat(1, epoch, epoch), false, now_ms).unwrap();
                log.commit(heartbeat.records, &mut state, now_ms);
            }
            let last_contact_ms = now_ms;
            prop_assert_eq!(state.next_expiry_ms(), Some(last_contact_ms + TIMEOUT_MS));
            let mut checks = checks;
            // The edge itself: still live at the timeout, fenced just after.
            checks.extend([TIMEOUT_MS, TIMEOUT_MS + 1]);
            checks.sort_unstable();
            let mut fenced_at = None;
            for check in checks {
                let now_ms = last_contact_ms + check;
                if let Some((id, record)) = state.expire(now_ms) {
                    prop_assert_eq!(fenced_at, None);
                    prop_assert_eq!(id, 1);
                    prop_assert_eq!(record, MetadataRecord::FenceBroker(BrokerEpochRecord { id: 1, epoch }));
                    fenced_at = Some(check);
                }
                prop_assert_eq!(fenced_at.is_some(), check > TIMEOUT_MS);
            }
        }

        #[test]
        fn a_new_controller_rebuilt_from_the_log_decides_as_the_old_one(
            before in prop::collection::vec(event(), 0..40),
            after in prop::collection::vec(event(), 0..40),
        ) {
            let mut old = active();
            let mut log = Log::default();
            let mut now_ms = 0;
            for (elapsed_ms, event) in &before {
                now_ms += elapsed_ms;
                run(&mut old, &mut log, event, now_ms);
            }
            // Elected at `now_ms`, a new controller starts every session then;
            // so does the old one when it is elected again.
            let mut new = BrokerLifecycle::new(CLUSTER.to_string(), TIMEOUT_MS);
            for (offset, record) in log.records.iter().enumerate() {
                new.replay(record, offset as i64, 0);
            }
            new.activate(now_ms);
            old.deactivate();
            old.activate(now_ms);
            prop_assert_eq!(&new, &old);
            let mut new_log = Log { records: log.records.clone() };
            for (elapsed_ms, event) in &after {
                now_ms += elapsed_ms;
                let old_outcome = run(&mut old, &mut log, event, now_ms);
                let new_outcome = run(&mut new, &mut new_log, event, now_ms);
                prop_assert_eq!(old_outcome, new_outcome);
            }
        }
    }
}
