//! `LeaderState` over random event sequences: appends, flushes, follower
//! fetches (forward, backward, with stale or unregistered epochs), timer
//! ticks, the controller's answers (committed, stale, errors) and metadata
//! updates, with the module doc's invariants checked after every event.

use super::*;
use kafka_protocol::error::ResponseError;
use proptest::prelude::*;
use std::collections::BTreeSet;

const LEADER: i32 = 1;
const REPLICAS: [i32; 3] = [1, 2, 3];
const LAG_MAX_MS: i64 = 1_000;

#[derive(Debug, Clone)]
enum Event {
    Append(u8),
    Flush,
    /// A follower (2 or 3) fetches `back` offsets below the leader's end
    /// (a negative `back` is past it: refused).
    Fetch {
        follower: i32,
        back: i8,
        epoch: EpochKind,
    },
    Tick(u16),
    /// The controller applies the proposal in flight and answers.
    Commit,
    /// An answer from before: an older partition epoch.
    StaleAnswer,
    Error(ResponseError),
    /// The controller removes a follower on its own (fencing), and tells.
    ControllerShrinks(i32),
}

#[derive(Debug, Clone, Copy)]
enum EpochKind {
    Current,
    Unversioned,
    Unregistered,
    Stale,
}

fn event() -> impl Strategy<Value = Event> {
    let epoch = prop_oneof![
        6 => Just(EpochKind::Current),
        1 => Just(EpochKind::Unversioned),
        1 => Just(EpochKind::Unregistered),
        1 => Just(EpochKind::Stale),
    ];
    let error = prop_oneof![
        Just(ResponseError::OperationNotAttempted),
        Just(ResponseError::InvalidUpdateVersion),
        Just(ResponseError::RequestTimedOut),
    ];
    prop_oneof![
        3 => (1u8..20).prop_map(Event::Append),
        2 => Just(Event::Flush),
        6 => (2i32..4, prop_oneof![3 => Just(0i8), 2 => -2i8..30], epoch)
            .prop_map(|(follower, back, epoch)| Event::Fetch { follower, back, epoch }),
        2 => (0u16..1_500).prop_map(Event::Tick),
        2 => Just(Event::Commit),
        1 => Just(Event::StaleAnswer),
        1 => error.prop_map(Event::Error),
        1 => (2i32..4).prop_map(Event::ControllerShrinks),
    ]
}

/// The leader, its log, the clock and the controller's side of things.
struct World {
    state: LeaderState,
    local: LocalEnds,
    now_ms: i64,
    /// The controller's committed ISR and partition epoch.
    isr: Vec<i32>,
    partition_epoch: i32,
    sent: Option<AlterPartitionProposal>,
}

impl World {
    fn new(min_isr: i32) -> World {
        let config = LeaderConfig {
            local_broker_id: LEADER,
            local_broker_epoch: 100,
            min_insync_replicas: min_isr,
            replica_lag_time_max_ms: LAG_MAX_MS,
        };
        let local = LocalEnds {
            log_end_offset: 0,
            durable_end_offset: 0,
        };
        let view = view(&REPLICAS, 0);
        let state = LeaderState::new(config, &view, local, 0, 0).unwrap();
        World {
            state,
            local,
            now_ms: 0,
            isr: REPLICAS.to_vec(),
            partition_epoch: 0,
            sent: None,
        }
    }

    fn apply(&mut self, event: &Event) -> LeaderEffects {
        let (local, now_ms) = (self.local, self.now_ms);
        match event {
            Event::Append(count) => {
                self.local.log_end_offset += i64::from(*count);
                LeaderEffects::default()
            }
            Event::Flush => {
                self.local.durable_end_offset = self.local.log_end_offset;
                self.state.on_local_ends(self.local, now_ms)
            }
            Event::Fetch {
                follower,
                back,
                epoch,
            } => {
                let fetch = follower_fetch(*follower, *back, *epoch, local.log_end_offset);
                self.state
                    .on_follower_fetch(&fetch, local, now_ms)
                    .unwrap_or_default()
            }
            Event::Tick(ms) => {
                self.now_ms += i64::from(*ms);
                self.state.on_tick(local, self.now_ms)
            }
            Event::Commit => self.commit(),
            Event::StaleAnswer => match self.sent.clone() {
                Some(sent) => {
                    let answer = AlterPartitionAnswer::Committed {
                        leader_epoch: 0,
                        partition_epoch: self.partition_epoch - 1,
                        isr: sent.new_isr.iter().map(|m| m.broker_id).collect(),
                    };
                    self.state.on_alter_partition(&sent, &answer, local, now_ms)
                }
                None => LeaderEffects::default(),
            },
            Event::Error(error) => match self.sent.clone() {
                Some(sent) => {
                    let answer = AlterPartitionAnswer::Error(*error);
                    self.state.on_alter_partition(&sent, &answer, local, now_ms)
                }
                None => LeaderEffects::default(),
            },
            Event::ControllerShrinks(follower) => {
                self.isr.retain(|id| id != follower);
                self.partition_epoch += 1;
                let view = view(&self.isr, self.partition_epoch);
                match self.state.on_metadata(&view, local, now_ms) {
                    MetadataOutcome::Leading(effects) => effects,
                    MetadataOutcome::Ended => panic!("still the leader"),
                }
            }
        }
    }

    /// The controller commits the proposal in flight, if it was based on
    /// its partition epoch (else it refuses with INVALID_UPDATE_VERSION).
    fn commit(&mut self) -> LeaderEffects {
        let Some(sent) = self.sent.clone() else {
            return LeaderEffects::default();
        };
        let answer = if sent.partition_epoch == self.partition_epoch {
            self.isr = sent.new_isr.iter().map(|m| m.broker_id).collect();
            self.partition_epoch += 1;
            AlterPartitionAnswer::Committed {
                leader_epoch: 0,
                partition_epoch: self.partition_epoch,
                isr: self.isr.clone(),
            }
        } else {
            AlterPartitionAnswer::Error(ResponseError::InvalidUpdateVersion)
        };
        self.state
            .on_alter_partition(&sent, &answer, self.local, self.now_ms)
    }
}

fn view(isr: &[i32], partition_epoch: i32) -> PartitionView {
    PartitionView {
        replicas: REPLICAS.to_vec(),
        isr: isr.to_vec(),
        leader: LEADER,
        leader_epoch: 0,
        partition_epoch,
    }
}

fn follower_fetch(follower: i32, back: i8, epoch: EpochKind, log_end_offset: i64) -> FollowerFetch {
    let registered = 1000 + i64::from(follower);
    let (broker_epoch, registered_broker_epoch) = match epoch {
        EpochKind::Current => (registered, Some(registered)),
        EpochKind::Unversioned => (-1, Some(registered)),
        EpochKind::Unregistered => (registered, None),
        EpochKind::Stale => (registered - 1, Some(registered)),
    };
    FollowerFetch {
        replica_id: follower,
        broker_epoch,
        registered_broker_epoch,
        fetch_offset: (log_end_offset - i64::from(back)).max(0),
        log_start_offset: 0,
    }
}

fn members(proposal: &AlterPartitionProposal) -> BTreeSet<i32> {
    proposal.new_isr.iter().map(|m| m.broker_id).collect()
}

/// The module doc's invariants across one event.
fn check(before: &LeaderState, after: &LeaderState, effects: &LeaderEffects, local: LocalEnds) {
    let (hw_before, hw_after) = (
        before.high_watermark_offset(),
        after.high_watermark_offset(),
    );
    assert!(hw_after >= hw_before, "backward: {hw_before} -> {hw_after}");
    assert_eq!(
        effects.high_watermark_offset.is_some(),
        hw_after != hw_before
    );
    if hw_after != hw_before {
        assert!(!after.is_under_min_isr(), "moved under min ISR");
        assert!(hw_after <= local.durable_end_offset);
        for id in after.maximal_isr().iter().filter(|&&id| id != LEADER) {
            let end = after.follower_log_end_offset(*id);
            assert!(
                end.is_some_and(|end| end >= hw_after),
                "{id} at {end:?} < {hw_after}"
            );
        }
    }
    for id in [2, 3] {
        let end = after.follower_log_end_offset(id);
        assert!(
            end.is_none_or(|end| end <= local.log_end_offset),
            "{id} past the leader"
        );
    }
    let isr = after.committed_isr();
    assert!(isr.contains(&LEADER) && isr.iter().all(|id| REPLICAS.contains(id)));
    if let Some(proposal) = &effects.alter_partition {
        let retry = before.in_flight() == Some(proposal);
        assert!(
            retry || before.in_flight().is_none(),
            "a second AlterPartition in flight"
        );
        assert_eq!(after.in_flight(), Some(proposal));
        let new = members(proposal);
        assert!(new.contains(&LEADER), "the leader left out: {new:?}");
        let committed: BTreeSet<i32> = before.committed_isr().into_iter().collect();
        for joined in new.difference(&committed) {
            // A retry too: the member is in sync when the request is sent.
            let end = after.follower_log_end_offset(*joined).unwrap();
            assert!(end >= hw_before && end >= after.leader_epoch_start_offset());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn leader_bookkeeping_keeps_its_invariants(
        min_isr in 1i32..4,
        events in prop::collection::vec(event(), 1..120),
    ) {
        let mut world = World::new(min_isr);
        for event in &events {
            let before = world.state.clone();
            let pending_before = world.state.in_flight().cloned();
            let (isr_before, epoch_before) = (before.committed_isr(), before.partition_epoch());
            let effects = world.apply(event);
            check(&before, &world.state, &effects, world.local);
            if matches!(event, Event::StaleAnswer) {
                prop_assert_eq!(world.state.committed_isr(), isr_before);
                prop_assert_eq!(world.state.partition_epoch(), epoch_before);
                prop_assert_eq!(world.state.in_flight().cloned(), pending_before);
            }
            world.sent = world.state.in_flight().cloned();
        }
    }

    #[test]
    fn followers_that_keep_fetching_to_the_end_keep_the_high_watermark_at_the_durable_end(
        appends in prop::collection::vec(1u8..20, 1..40),
    ) {
        let mut world = World::new(2);
        for count in appends {
            world.apply(&Event::Append(count));
            world.apply(&Event::Flush);
            for follower in [2, 3] {
                let fetch = Event::Fetch { follower, back: 0, epoch: EpochKind::Current };
                world.apply(&fetch);
            }
            prop_assert_eq!(world.state.high_watermark_offset(), world.local.durable_end_offset);
            prop_assert_eq!(world.state.in_flight(), None);
        }
    }
}
