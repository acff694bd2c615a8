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
//! last contact plus the session timeout. `shard/brokers.rs` drives it
//! (BrokerRegistration and BrokerHeartbeat on the CONTROLLER listener),
//! with `leadership.rs` for the partition moves.

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
    /// The epoch the broker had before this incarnation (BrokerRegistration
    /// v4), or -1: naming the live registration's epoch lets a restarted
    /// broker take its id at once (Kafka's check in `registerBroker`).
    pub previous_broker_epoch: i64,
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
    /// Broker `id`'s registration and the log offset it was committed at
    /// (its registration's offset, which a heartbeat must have caught up to).
    pub fn registration(&self, id: i32) -> Option<(&RegisterBrokerRecord, i64)> {
        self.registrations
            .get(&id)
            .map(|registration| (&registration.record, registration.offset))
    }

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
            if live
                && existing.record.incarnation_id != request.incarnation_id
                && existing.record.broker_epoch != request.previous_broker_epoch
            {
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
