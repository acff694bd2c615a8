//! Tests of `heartbeats.rs`: the broker lifecycle as the active
//! controller decides it, and rebuilt from the log.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::controller::KafkaError;
use super::heartbeats::*;
use super::records::*;
use super::table::METADATA_VERSION_FEATURE;
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
        previous_broker_epoch: -1,
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

    fn commit(&mut self, records: Vec<MetadataRecord>, state: &mut BrokerLifecycle, now_ms: i64) {
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
    // Unless it names the live registration's epoch as its previous one.
    let mut restarted = request(1, 8);
    restarted.previous_broker_epoch = epoch;
    let restarted = state.register(&restarted, &finalized(), 50, 100).unwrap();
    assert_eq!((restarted.broker_epoch, restarted.fenced), (50, true));
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
        asked.records.is_empty() && asked.reply.in_controlled_shutdown && !asked.reply.is_fenced
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
                .registration(id)
                .map_or(0, |(record, _)| record.broker_epoch);
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
                let caught_up = log.next_offset() - 1 - lag >= state.registration(id).expect("registered").1;
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
