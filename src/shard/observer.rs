//! A pure broker's metadata (`process.roles=broker`, not a voter): it
//! observes the quorum's committed log as Kafka's brokers do, instead of
//! voting on it. Before any shard runs, serve catches up once
//! (`catch_up_blocking`: the image partition clean-up and the initial view
//! are made from); then a task on `CONTROLLER_SHARD` long-polls the
//! metadata fetch (`quorum::fetch`) from the voters, applies what they
//! answer with the voters' own code (`quorum::observe::Observed`) and
//! publishes it through a `QuorumHandle` like a voter's
//! (`quorum::observer_handle`), so the controller installs each image on
//! every shard, the lifecycle registers and heartbeats, and admin
//! requests are forwarded, all as on a voter that does not lead.
//!
//! Whom to ask: the leader the last answer named, else the voters of
//! `controller.quorum.voters` in turn; a failure (no connection, no
//! answer within the wait and `controller.quorum.request.timeout.ms`, an
//! error code, an answer that does not follow) moves to the next voter
//! after Kafka's reconnect backoff, doubling to its max; one log line per
//! outage.
//!
//! Gap: a pure broker keeps no metadata on disk, so it cannot start while
//! no voter answers (it could not be unfenced then anyway).
//!
//! Invariant: the image published is always the replay of committed
//! entries through its index (`Observed`), and moves only forward.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{BrokerConfig, Voter};
use crate::quorum::describe::UNKNOWN;
use crate::quorum::fetch::{FetchRequest, FetchResponse};
use crate::quorum::fetch_client::{fetch_blocking, FetchClient};
use crate::quorum::link::LinkSecurity;
use crate::quorum::observe::Observed;
use crate::quorum::transport::{RECONNECT_BACKOFF_MAX_MS, RECONNECT_BACKOFF_MS};

use super::quorum::{observer_handle, Applied, ObserverSide, QuorumHandle, QuorumStart};

/// How long a voter may hold a fetch with nothing new: Kafka's raft
/// client's fetch wait (`KafkaRaftClient`'s 500 ms), so a new entry
/// reaches the observer at once and an idle one asks twice a second.
const FETCH_MAX_WAIT_MS: u32 = 500;

/// Record bytes asked per fetch: Kafka's raft client's fetch size
/// (8 MiB), half a frame (`wire::CONTROLLER_FRAME_BYTES_MAX`).
const FETCH_MAX_BYTES: u32 = 8 * 1024 * 1024;

/// Where the observer is and whom it asks.
pub struct Follower {
    node_id: i32,
    voters: Vec<Voter>,
    observed: Observed,
    /// The leader and term the newest answer named.
    leader_id: i32,
    leader_epoch: u64,
    /// The voter to ask when no leader is known: index into `voters`.
    next: usize,
    /// The voter that last failed: its name as leader is not followed
    /// until a later term names a leader.
    avoid: Option<i32>,
    /// How connections to the voters are secured.
    security: Arc<LinkSecurity>,
}

impl Follower {
    pub fn new(config: &BrokerConfig) -> Follower {
        Follower {
            node_id: config.node_id,
            voters: config.cluster.quorum_voters.clone(),
            observed: Observed::default(),
            leader_id: UNKNOWN,
            leader_epoch: 0,
            next: 0,
            avoid: None,
            security: LinkSecurity::controller_or_plaintext(config),
        }
    }

    /// The applied image and its index.
    pub fn applied(&self) -> Applied {
        Applied {
            index: self.observed.index,
            image: self.observed.image.clone(),
        }
    }

    /// The voter to ask now: the leader last named, else the next one.
    fn target(&self) -> Option<&Voter> {
        let leader = self
            .voters
            .iter()
            .find(|voter| voter.id == self.leader_id && Some(voter.id) != self.avoid);
        leader.or_else(|| self.voters.get(self.next % self.voters.len().max(1)))
    }

    fn request(&self, max_wait_ms: u32) -> FetchRequest {
        FetchRequest {
            sender_id: self.node_id,
            after_index: self.observed.index,
            max_wait_ms,
            max_bytes: FETCH_MAX_BYTES,
        }
    }

    /// Takes a voter's answer: the leader it names, then what it fetched.
    /// Ok(true) when the image moved, Ok(false) when nothing was new.
    fn take(&mut self, response: FetchResponse) -> Result<bool, String> {
        if response.error_code != 0 {
            return Err(format!("error code {}", response.error_code));
        }
        let newer = response.leader_epoch > self.leader_epoch;
        let same = response.leader_epoch == self.leader_epoch;
        if newer || (same && Some(response.leader_id) != self.avoid) {
            if newer {
                self.avoid = None;
            }
            self.leader_id = response.leader_id;
            self.leader_epoch = response.leader_epoch;
        }
        self.observed
            .take(response.fetched)
            .map_err(|error| error.to_string())
    }

    /// The voter `voter_id` failed: the next request goes to the next one.
    fn failed(&mut self, voter_id: i32) {
        self.avoid = Some(voter_id);
        if self.leader_id == voter_id {
            self.leader_id = UNKNOWN;
        }
        let at = self.voters.iter().position(|voter| voter.id == voter_id);
        self.next = at.map_or(0, |at| (at + 1) % self.voters.len().max(1));
    }
}

/// Fetches from the voters until one answers with nothing newer than what
/// it applied, after a leader was named and something was applied (a
/// quorum that elected no leader yet has nothing to give, and an empty
/// image would have serve delete every partition directory). Blocking;
/// retries without end, one log line per round of the voters.
pub fn catch_up_blocking(config: &BrokerConfig) -> Follower {
    let mut follower = Follower::new(config);
    let mut backoff_ms = RECONNECT_BACKOFF_MS;
    loop {
        let mut last_failure = String::from("no voters");
        for _ in 0..follower.voters.len() {
            let Some(voter) = follower.target().cloned() else {
                break;
            };
            let outcome = fetch_once(&follower, &voter)
                .map_err(|error| error.to_string())
                .and_then(|response| follower.take(response));
            match outcome {
                Ok(true) => continue,
                Ok(false) if follower.observed.index > 0 && follower.leader_id != UNKNOWN => {
                    log::info!(
                        "metadata caught up from voter {} at index {}",
                        voter.id,
                        follower.observed.index
                    );
                    return follower;
                }
                Ok(false) => last_failure = format!("voter {}: no leader yet", voter.id),
                Err(error) => last_failure = format!("voter {}: {error}", voter.id),
            }
            follower.failed(voter.id);
        }
        log::warn!(
            "metadata catch-up: no voter of controller.quorum.voters gave the metadata ({last_failure}); retrying in {backoff_ms} ms"
        );
        std::thread::sleep(Duration::from_millis(backoff_ms));
        backoff_ms = (backoff_ms * 2).min(RECONNECT_BACKOFF_MAX_MS);
    }
}

/// One fetch for the catch-up: on a blocking socket in PLAINTEXT, else
/// through a `FetchClient` on an executor of its own (TLS and the login
/// run on glommio).
fn fetch_once(follower: &Follower, voter: &Voter) -> std::io::Result<FetchResponse> {
    let request = follower.request(0);
    if follower.security.is_plaintext() {
        return fetch_blocking(voter, &request);
    }
    let (security, voter) = (follower.security.clone(), voter.clone());
    let executor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(super::SHARD_IO_MEMORY_BYTES)
        .spawn(move || async move {
            let mut client = FetchClient::new(security);
            client.fetch(&voter, request).await
        })
        .map_err(|error| {
            std::io::Error::other(format!("no executor for the catch-up: {error:?}"))
        })?;
    executor
        .join()
        .map_err(|error| std::io::Error::other(format!("the catch-up's executor: {error:?}")))?
}

/// What `CONTROLLER_SHARD` runs for the metadata: this node's voter, or
/// a pure broker's observer.
pub enum MetadataStart {
    Voter(Box<QuorumStart>),
    Observer(Follower),
}

impl MetadataStart {
    /// The voter's start and the observer's, whichever this is.
    pub fn split(start: Option<MetadataStart>) -> (Option<QuorumStart>, Option<Follower>) {
        match start {
            Some(MetadataStart::Voter(voter)) => (Some(*voter), None),
            Some(MetadataStart::Observer(follower)) => (None, Some(follower)),
            None => (None, None),
        }
    }
}

/// Starts the observer's task on this shard from where the catch-up left
/// it; the handle is what the controller, the lifecycle and forwarding use.
pub fn start(follower: Follower) -> QuorumHandle {
    let (handle, side) = observer_handle(follower.applied());
    side.publish(None, follower.leader_id);
    glommio::spawn_local(run(follower, side)).detach();
    handle
}

async fn run(mut follower: Follower, side: ObserverSide) {
    let mut client = FetchClient::new(follower.security.clone());
    let mut backoff_ms = RECONNECT_BACKOFF_MS;
    let mut failing = false;
    loop {
        let Some(voter) = follower.target().cloned() else {
            return;
        };
        let asked = Instant::now();
        let outcome = match client
            .fetch(&voter, follower.request(FETCH_MAX_WAIT_MS))
            .await
        {
            Ok(response) => follower.take(response),
            Err(error) => Err(error.to_string()),
        };
        let failure = match outcome {
            Ok(moved) => {
                let applied = moved.then(|| follower.applied());
                if !side.publish(applied, follower.leader_id) {
                    return;
                }
                if failing {
                    log::info!("metadata observer: fetching from voter {} again", voter.id);
                    failing = false;
                }
                backoff_ms = RECONNECT_BACKOFF_MS;
                let early =
                    asked.elapsed() < Duration::from_millis(u64::from(FETCH_MAX_WAIT_MS / 2));
                if !moved && early {
                    // Nothing new and not held: the voter holds as many
                    // fetches as it may; ask again after a pause, not at once.
                    glommio::timer::sleep(Duration::from_millis(RECONNECT_BACKOFF_MS)).await;
                }
                continue;
            }
            Err(failure) => failure,
        };
        follower.failed(voter.id);
        if !side.publish(None, follower.leader_id) {
            return;
        }
        if !failing {
            log::warn!(
                "metadata observer: voter {} at {}: {failure}; trying the next voter every {RECONNECT_BACKOFF_MS}..{RECONNECT_BACKOFF_MAX_MS} ms",
                voter.id,
                voter.address()
            );
            failing = true;
        }
        glommio::timer::sleep(Duration::from_millis(backoff_ms)).await;
        backoff_ms = (backoff_ms * 2).min(RECONNECT_BACKOFF_MAX_MS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::fetch::Fetched;

    fn follower() -> Follower {
        let voter = |id: i32| Voter {
            id,
            host: "127.0.0.1".into(),
            port: 9093 + id as u16,
        };
        Follower {
            node_id: 4,
            voters: vec![voter(1), voter(2), voter(3)],
            observed: Observed::default(),
            leader_id: UNKNOWN,
            leader_epoch: 0,
            next: 0,
            avoid: None,
            security: Default::default(),
        }
    }

    fn answer(leader_id: i32, leader_epoch: u64) -> FetchResponse {
        FetchResponse {
            error_code: 0,
            leader_id,
            leader_epoch,
            fetched: Fetched::Entries(Vec::new()),
        }
    }

    #[test]
    fn the_leader_named_is_asked_first_and_a_failed_one_is_not_followed_again_in_its_term() {
        let mut follower = follower();
        assert_eq!(follower.target().map(|voter| voter.id), Some(1));
        assert_eq!(follower.take(answer(3, 2)), Ok(false));
        assert_eq!(follower.target().map(|voter| voter.id), Some(3));
        follower.failed(3);
        assert_eq!(follower.leader_id, UNKNOWN);
        assert_eq!(follower.target().map(|voter| voter.id), Some(1));
        // Voter 1 has not noticed yet: its stale naming of 3 is not followed.
        follower.take(answer(3, 2)).unwrap();
        assert_eq!(follower.target().map(|voter| voter.id), Some(1));
        // An older term's leader never replaces a newer one's.
        follower.take(answer(2, 1)).unwrap();
        assert_eq!(follower.leader_id, UNKNOWN);
        // A new term's leader is followed, even the one that failed.
        follower.take(answer(3, 3)).unwrap();
        assert_eq!(follower.target().map(|voter| voter.id), Some(3));
        follower.failed(2);
        assert_eq!(follower.next, 2);
        assert!(follower
            .take(FetchResponse {
                error_code: 15,
                ..answer(1, 9)
            })
            .is_err());
        assert_eq!(follower.leader_epoch, 3, "an error answer names no leader");
    }
}
