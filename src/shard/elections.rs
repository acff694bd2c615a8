//! The active controller's leader elections beyond failover, on
//! `CONTROLLER_SHARD` of a voter: ElectLeaders (api 43, from
//! `server::handlers::elect_leaders` once the request reached the active
//! controller) and the timer of `auto.leader.rebalance.enable`, which
//! looks every `leader.imbalance.check.interval.seconds` and proposes only
//! a round with elections to make. Both are the
//! pure `metadata::elections` carried out by `BrokerControl`: the records
//! are made from the image the proposal is applied to, with the brokers
//! that may lead (unfenced, not shutting down) as the sessions say.
//!
//! Invariant: one change at a time (`BrokerControl::changes`, shared with
//! heartbeats, fencing and AlterPartition); an election is answered only
//! once its records are committed; the timer elects only while this node
//! leads the quorum.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::Duration;

use kafka_protocol::error::ResponseError;

use super::brokers::{proposal_failed, BrokerControl};
use crate::config::ReplicationConfig;
use crate::metadata::controller::KafkaError;
use crate::metadata::elections::{self, TopicElection};
use crate::metadata::leadership::Election;

/// What ElectLeaders asks: the election type and the partitions by topic,
/// or None for every partition.
pub type ElectionRequest = (Election, Option<Vec<(String, Vec<i32>)>>);

/// The wait before the next rebalance round when one stopped at its bound:
/// Kafka's controller reschedules such a round "immediately", 10 ms on, so
/// that other events run in between.
const REBALANCE_AGAIN_MS: u64 = 10;

impl BrokerControl {
    /// ElectLeaders: each partition's answer once the elections are
    /// committed; NOT_CONTROLLER when this node does not lead the quorum.
    pub async fn elect_leaders(
        &self,
        request: ElectionRequest,
    ) -> Result<Vec<TopicElection>, KafkaError> {
        let not_controller = || KafkaError::new(ResponseError::NotController);
        let Ok(_change) = self.changes.acquire_permit(1).await else {
            return Err(not_controller());
        };
        self.sync();
        if !self.quorum.leads() {
            return Err(not_controller());
        }
        let (election, wanted) = request;
        let active = self.active_brokers();
        let results: Rc<RefCell<Option<Vec<TopicElection>>>> = Rc::default();
        let out = Rc::clone(&results);
        let committed = self
            .quorum
            .propose(Box::new(move |image| {
                let elected = elections::elect_leaders(image, election, wanted.as_deref(), |id| {
                    active.contains(&id)
                });
                *out.borrow_mut() = Some(elected.results);
                elected.records
            }))
            .await;
        self.sync();
        committed.map_err(|error| proposal_failed(&error))?;
        let answered = results.borrow_mut().take();
        answered.ok_or_else(not_controller)
    }

    /// One rebalance round, while this node leads: proposed only when
    /// the committed image has a preferred leader to elect (Kafka writes
    /// nothing for a round without records). True when the round stopped
    /// at its bound with partitions left, so the next comes at once.
    async fn rebalance(&self) -> bool {
        let Ok(_change) = self.changes.acquire_permit(1).await else {
            return false;
        };
        self.sync();
        if !self.quorum.leads() {
            return false;
        }
        let active = self.active_brokers();
        let latest = self.quorum.latest();
        if elections::rebalance(&latest.image, |id| active.contains(&id))
            .records
            .is_empty()
        {
            return false;
        }
        let round = Rc::new(Cell::new((0, false)));
        let made = Rc::clone(&round);
        let committed = self
            .quorum
            .propose(Box::new(move |image| {
                let next = elections::rebalance(image, |id| active.contains(&id));
                made.set((next.records.len(), next.more));
                next.records
            }))
            .await;
        self.sync();
        let (moved, more) = round.get();
        match committed {
            Ok(_) if moved > 0 => {
                log::info!(
                    "leader rebalance: {moved} partitions led by their preferred replica again"
                );
                more
            }
            Ok(_) => false,
            Err(error) => {
                log::warn!("leader rebalance not committed: {error}");
                false
            }
        }
    }
}

/// Starts the rebalance timer of `control` when `config` enables it; it
/// stops once the control is dropped.
pub fn spawn_rebalance(control: &Rc<BrokerControl>, config: &ReplicationConfig) {
    if !config.auto_leader_rebalance_enable {
        return;
    }
    let seconds = u64::try_from(config.leader_imbalance_check_interval_seconds).unwrap_or(1);
    let interval = Duration::from_secs(seconds.max(1));
    glommio::spawn_local(run_rebalance(Rc::downgrade(control), interval)).detach();
}

/// A round every `interval`, or after `REBALANCE_AGAIN_MS` when the last
/// one stopped at its bound (Kafka's immediate reschedule).
async fn run_rebalance(control: Weak<BrokerControl>, interval: Duration) {
    let mut wait = interval;
    loop {
        glommio::timer::sleep(wait).await;
        let Some(control) = control.upgrade() else {
            return;
        };
        wait = match control.rebalance().await {
            true => Duration::from_millis(REBALANCE_AGAIN_MS),
            false => interval,
        };
    }
}
