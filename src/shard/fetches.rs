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

use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use glommio::channels::local_channel::{self, LocalReceiver};
use kafka_protocol::error::ResponseError;

use crate::quorum::describe::UNKNOWN;
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
}

impl Fetches {
    /// Answers `fetch` now when `node` has something for it (or cannot
    /// serve), else holds it for its wait.
    pub fn take(&mut self, node: &Result<QuorumNode, String>, fetch: Fetch) {
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
