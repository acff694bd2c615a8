//! The metadata fetches a voter's task (`quorum.rs`) serves observers, the
//! pure brokers (`observer.rs`): the CONTROLLER listener hands each over a
//! bounded channel (`channel`), the task answers it between ready rounds
//! from what its node has applied (`quorum::observe::answer`), or holds it
//! until an entry applies or the request's wait runs out (Kafka's
//! long-polled Fetch of `__cluster_metadata`).
//!
//! Invariant: the node's log is read only by the task, between rounds
//! (never while a round's write holds the store on the blocking pool);
//! at most `FETCHES_WAITING_MAX` fetches wait, any beyond are answered at
//! once with nothing new; every waiting fetch is answered by its deadline
//! (to the task's tick) or when the task ends (its reply dropped).
//!
//! The observers that fetch are remembered for DescribeQuorum's
//! `observers` (the leader lists them, as Kafka's): at most
//! `OBSERVERS_MAX`, each forgotten `OBSERVER_SESSION_TIMEOUT_MS` after its
//! last fetch.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use glommio::channels::local_channel::{self, LocalReceiver};
use kafka_protocol::error::ResponseError;

use crate::clock::now_ms;
use crate::quorum::describe::{ReplicaStatus, UNKNOWN};
use crate::quorum::fetch::{FetchRequest, FetchResponse, Fetched};
use crate::quorum::observe;
use crate::quorum::transport::FetchApi;
use crate::quorum::QuorumNode;

/// Fetches held until something applies: one per observer of a cluster
/// of dozens of brokers; an observer beyond is answered at once and asks
/// again, a poll rather than a long poll.
pub const FETCHES_WAITING_MAX: usize = 64;

/// Fetches handed to the task and not yet taken: each connection awaits
/// its answer before it sends the next, so the listener's connection
/// bound (`transport::INBOUND_CONNECTIONS_MAX`) bounds these as well.
const FETCHES_QUEUED_MAX: usize = 64;

/// Observers remembered for DescribeQuorum: as many as fetches may wait;
/// beyond, the one heard from longest ago is forgotten first.
const OBSERVERS_MAX: usize = FETCHES_WAITING_MAX;

/// How long an observer that stopped fetching is still listed: Kafka's
/// leader's `OBSERVER_SESSION_TIMEOUT_MS` (`LeaderState`).
const OBSERVER_SESSION_TIMEOUT_MS: i64 = 300_000;

/// Kafka's error code for none.
const NO_ERROR: i16 = 0;

/// One observer's fetch and where its answer goes.
pub struct Fetch {
    request: FetchRequest,
    reply: oneshot::Sender<FetchResponse>,
}

/// The listener's way to hand fetches to the task, and the task's end.
pub fn channel() -> (FetchApi, LocalReceiver<Fetch>) {
    let (sender, receiver) = local_channel::new_bounded(FETCHES_QUEUED_MAX);
    let sender = Rc::new(sender);
    let api: FetchApi = Rc::new(move |request| {
        let sender = Rc::clone(&sender);
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            let stopped = refused(ResponseError::NotController);
            if sender.send(Fetch { request, reply }).await.is_err() {
                return stopped;
            }
            answer.await.unwrap_or(stopped)
        })
    });
    (api, receiver)
}

/// An error answer, carrying no leader: the observer asks another voter.
fn refused(error: ResponseError) -> FetchResponse {
    FetchResponse {
        error_code: error.code(),
        leader_id: UNKNOWN,
        leader_epoch: 0,
        fetched: Fetched::Entries(Vec::new()),
    }
}

/// The fetches waiting for something to apply.
#[derive(Default)]
pub struct Fetches {
    waiting: Vec<(Fetch, Instant)>,
    /// The last serving error logged, so a persistent one (an image over
    /// a frame) is one log line, not one per fetch.
    logged: Option<String>,
    /// Per observer node id, its fetch offset and times, as DescribeQuorum
    /// lists it.
    observers: BTreeMap<i32, ReplicaStatus>,
}

impl Fetches {
    /// Answers `fetch` now when `node` has something for it (or cannot
    /// serve), else holds it for its wait.
    pub fn take(&mut self, node: &Result<QuorumNode, String>, fetch: Fetch) {
        if let Ok(node) = node {
            self.note(node, &fetch.request, now_ms() as i64);
        }
        if let Some(answer) = self.respond(node, &fetch.request) {
            let _ = fetch.reply.send(answer);
            return;
        }
        let wait = Duration::from_millis(u64::from(fetch.request.max_wait_ms));
        if wait.is_zero() || self.waiting.len() >= FETCHES_WAITING_MAX {
            let _ = fetch.reply.send(self.nothing_new(node));
            return;
        }
        self.waiting.push((fetch, Instant::now() + wait));
    }

    /// Answers the waiting fetches that `node` now has something for, and
    /// those whose wait ran out.
    pub fn settle(&mut self, node: &Result<QuorumNode, String>) {
        let now = Instant::now();
        let mut index = 0;
        while index < self.waiting.len() {
            let (request, deadline) = (self.waiting[index].0.request, self.waiting[index].1);
            let answer = match self.respond(node, &request) {
                Some(answer) => answer,
                None if deadline <= now => self.nothing_new(node),
                None => {
                    index += 1;
                    continue;
                }
            };
            let (fetch, _) = self.waiting.swap_remove(index);
            let _ = fetch.reply.send(answer);
        }
    }

    /// Notes an observer's fetch: the index it applied is its log's end
    /// offset (entry `i` is offset `i - 1`); caught up when that is all
    /// this voter applied.
    fn note(&mut self, node: &QuorumNode, request: &FetchRequest, now_ms: i64) {
        let id = request.sender_id;
        if !self.observers.contains_key(&id) && self.observers.len() >= OBSERVERS_MAX {
            let oldest = self
                .observers
                .values()
                .min_by_key(|observer| observer.last_fetch_timestamp_ms)
                .map(|observer| observer.id);
            if let Some(oldest) = oldest {
                self.observers.remove(&oldest);
            }
        }
        let observer = self.observers.entry(id).or_insert(ReplicaStatus {
            id,
            log_end_offset: 0,
            last_fetch_timestamp_ms: now_ms,
            last_caught_up_timestamp_ms: i64::from(UNKNOWN),
        });
        observer.log_end_offset = i64::try_from(request.after_index).unwrap_or(i64::MAX);
        observer.last_fetch_timestamp_ms = now_ms;
        if request.after_index >= node.applied() {
            observer.last_caught_up_timestamp_ms = now_ms;
        }
    }

    /// The observers heard from within their session, in id order; the
    /// others are forgotten.
    pub fn observers(&mut self, now_ms: i64) -> Vec<ReplicaStatus> {
        self.observers.retain(|_, observer| {
            now_ms - observer.last_fetch_timestamp_ms < OBSERVER_SESSION_TIMEOUT_MS
        });
        self.observers.values().cloned().collect()
    }

    /// The answer to `request`, or None when nothing was applied after
    /// its index.
    fn respond(
        &mut self,
        node: &Result<QuorumNode, String>,
        request: &FetchRequest,
    ) -> Option<FetchResponse> {
        let Ok(node) = node else {
            return Some(refused(ResponseError::KafkaStorageError));
        };
        match observe::answer(node, request.after_index, request.max_bytes as usize) {
            Ok(fetched) => fetched.map(|fetched| {
                self.logged = None;
                FetchResponse {
                    error_code: NO_ERROR,
                    leader_id: node.leader_id(),
                    leader_epoch: node.term(),
                    fetched,
                }
            }),
            Err(error) => {
                let error = error.to_string();
                if self.logged.as_ref() != Some(&error) {
                    log::error!("metadata fetch of observer {}: {error}", request.sender_id);
                    self.logged = Some(error);
                }
                Some(refused(ResponseError::UnknownServerError))
            }
        }
    }

    fn nothing_new(&self, node: &Result<QuorumNode, String>) -> FetchResponse {
        match node {
            Ok(node) => FetchResponse {
                error_code: NO_ERROR,
                leader_id: node.leader_id(),
                leader_epoch: node.term(),
                fetched: Fetched::Entries(Vec::new()),
            },
            Err(_) => refused(ResponseError::KafkaStorageError),
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_channel::oneshot::Receiver;

    use super::*;
    use crate::metadata::records::MetadataRecord;
    use crate::quorum::QuorumSettings;

    fn voter(dir: &std::path::Path) -> Result<QuorumNode, String> {
        let settings = QuorumSettings {
            node_id: 1,
            voters: vec![1],
            election_timeout_ms: 1000,
            snapshot_bytes: u64::MAX,
        };
        let mut node = QuorumNode::open(dir, settings).unwrap();
        node.elect_blocking().unwrap();
        Ok(node)
    }

    fn fetch(after_index: u64, max_wait_ms: u32) -> (Fetch, Receiver<FetchResponse>) {
        let (reply, answer) = oneshot::channel();
        let request = FetchRequest {
            sender_id: 4,
            after_index,
            max_wait_ms,
            max_bytes: u32::MAX,
        };
        (Fetch { request, reply }, answer)
    }

    fn answered(answer: &mut Receiver<FetchResponse>) -> Option<FetchResponse> {
        answer.try_recv().unwrap()
    }

    fn indexes(response: &FetchResponse) -> Vec<u64> {
        match &response.fetched {
            Fetched::Entries(entries) => entries.iter().map(|entry| entry.index).collect(),
            Fetched::Snapshot(_) => panic!("a snapshot"),
        }
    }

    #[test]
    fn a_fetch_with_nothing_new_waits_for_the_next_entry_applied() {
        let dir = tempfile::tempdir().unwrap();
        let mut node = voter(dir.path());
        let applied = node.as_ref().unwrap().applied();
        let mut fetches = Fetches::default();

        let (behind, mut behind_answer) = fetch(0, 10_000);
        fetches.take(&node, behind);
        let response = answered(&mut behind_answer).expect("answered at once");
        assert_eq!(indexes(&response), (1..=applied).collect::<Vec<_>>());
        assert_eq!((response.error_code, response.leader_id), (0, 1));

        let (waiting, mut waiting_answer) = fetch(applied, 10_000);
        fetches.take(&node, waiting);
        fetches.settle(&node);
        assert_eq!(answered(&mut waiting_answer), None, "held: nothing new");
        let proposed = node.as_mut().unwrap();
        proposed.propose(&[MetadataRecord::NoOp]).unwrap();
        fetches.settle(&node);
        assert_eq!(answered(&mut waiting_answer), None, "proposed, not applied");
        node.as_mut().unwrap().run_blocking().unwrap();
        fetches.settle(&node);
        let response = answered(&mut waiting_answer).expect("answered once applied");
        assert_eq!(indexes(&response), vec![applied + 1]);
    }

    #[test]
    fn observers_are_listed_bounded_and_forgotten_after_their_session() {
        let dir = tempfile::tempdir().unwrap();
        let node = voter(dir.path());
        let voter_node = node.as_ref().unwrap();
        let applied = voter_node.applied();
        let mut fetches = Fetches::default();
        let request = |sender_id, after_index| FetchRequest {
            sender_id,
            after_index,
            max_wait_ms: 0,
            max_bytes: 1,
        };
        fetches.note(voter_node, &request(4, 0), 1_000);
        fetches.note(voter_node, &request(5, applied), 2_000);
        let listed = fetches.observers(3_000);
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].log_end_offset, 0);
        assert_eq!(listed[0].last_caught_up_timestamp_ms, i64::from(UNKNOWN));
        assert_eq!(listed[1].log_end_offset, applied as i64);
        assert_eq!(listed[1].last_caught_up_timestamp_ms, 2_000);
        let listed = fetches.observers(1_000 + OBSERVER_SESSION_TIMEOUT_MS);
        assert_eq!(listed.iter().map(|o| o.id).collect::<Vec<_>>(), vec![5]);

        for id in 100..100 + OBSERVERS_MAX as i32 {
            fetches.note(voter_node, &request(id, 0), 10_000 + i64::from(id));
        }
        let listed = fetches.observers(20_000);
        assert_eq!(listed.len(), OBSERVERS_MAX);
        assert!(listed.iter().all(|o| o.id != 5), "the oldest made room");
    }

    #[test]
    fn waits_end_at_their_deadline_and_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let node = voter(dir.path());
        let applied = node.as_ref().unwrap().applied();
        let mut fetches = Fetches::default();

        let (now, mut now_answer) = fetch(applied, 0);
        fetches.take(&node, now);
        assert_eq!(
            indexes(&answered(&mut now_answer).unwrap()),
            Vec::<u64>::new()
        );

        let (short, mut short_answer) = fetch(applied, 1);
        fetches.take(&node, short);
        std::thread::sleep(Duration::from_millis(5));
        fetches.settle(&node);
        let response = answered(&mut short_answer).expect("answered at its deadline");
        assert_eq!((response.error_code, indexes(&response)), (0, vec![]));

        let mut held = Vec::new();
        for _ in 0..FETCHES_WAITING_MAX {
            let (waiting, answer) = fetch(applied, 10_000);
            fetches.take(&node, waiting);
            held.push(answer);
        }
        assert!(held.iter_mut().all(|answer| answered(answer).is_none()));
        let (beyond, mut beyond_answer) = fetch(applied, 10_000);
        fetches.take(&node, beyond);
        let response = answered(&mut beyond_answer).expect("one too many: answered at once");
        assert_eq!((response.error_code, indexes(&response)), (0, vec![]));

        let down = Err("disk full".to_string());
        fetches.settle(&down);
        for answer in &mut held {
            let response = answered(answer).expect("a voter that is down answers");
            assert_eq!(response.error_code, ResponseError::KafkaStorageError.code());
        }
    }
}
