//! The metadata quorum's voter as `CONTROLLER_SHARD` runs it: one task owns
//! the `quorum::QuorumNode`, ticks it every `TICK_MS`, takes the
//! controller's proposals from a bounded channel, and carries out each
//! ready round: its write on glommio's blocking pool (a synced append
//! stalls its thread for milliseconds, which the shard's reactor must not
//! take), then the round finished on the reactor. A proposal is answered
//! with the image once its entry is committed and applied.
//!
//! A proposal's records are made from the image as the task holds it when
//! it takes the proposal (`QuorumHandle::propose`'s `make`), so they are
//! always the difference from what is committed.
//!
//! Invariant: one round at a time, and the node is not touched while a
//! round's write is under way. A write that fails (a full disk) is taken
//! as a crash of the voter: the node is dropped, and the next proposal
//! first restarts it from what is durable, on the blocking pool (the log
//! reopened, its torn tail cut, the node elected again); until that
//! succeeds every proposal is refused with the error. What the failed
//! round wrote whole may still commit then: its proposal was answered with
//! an error, as a request that timed out, and may or may not have happened.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};

use crate::metadata::image::MetadataImage;
use crate::metadata::records::MetadataRecord;
use crate::quorum::node::{Finished, TICK_MS};
use crate::quorum::{QuorumError, QuorumNode, QuorumSettings};

/// Proposals queued for the quorum's task: the controller makes one
/// change at a time (`Controller::changes`), so a few is ample; a sender
/// beyond waits.
const COMMANDS_MAX: usize = 8;

/// Proposals waiting for their entry to commit. A voter alone commits
/// each before it takes the next; with several voters the controller
/// still waits for each, so this bound is never reached by it.
const WAITING_MAX: usize = 64;

/// What a proposal is answered with: the image with its records applied,
/// or why it was not committed.
pub type Committed = Result<Arc<MetadataImage>, String>;

/// Makes a proposal's records from the committed image; none: nothing to
/// propose, answered with the image as it is.
pub type MakeRecords = Box<dyn FnOnce(&MetadataImage) -> Vec<MetadataRecord>>;

struct Proposal {
    make: MakeRecords,
    reply: oneshot::Sender<Committed>,
}

/// The controller's way to the quorum's task.
pub struct QuorumHandle {
    proposals: LocalSender<Proposal>,
}

impl QuorumHandle {
    /// Proposes the records `make` makes from the committed image as one
    /// entry and waits until it is applied.
    pub async fn propose(&self, make: MakeRecords) -> Committed {
        let stopped = || "the metadata quorum is stopped".to_string();
        let (reply, answer) = oneshot::channel();
        if self.proposals.send(Proposal { make, reply }).await.is_err() {
            return Err(stopped());
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// Starts the quorum's task on this shard for `node`, whose log is under
/// `data_dir`; it ends when the handle is dropped.
pub fn start(node: QuorumNode, data_dir: PathBuf, settings: QuorumSettings) -> QuorumHandle {
    let (proposals, receiver) = local_channel::new_bounded(COMMANDS_MAX);
    let voter = Voter {
        node: Ok(node),
        data_dir,
        settings,
        waiting: Vec::new(),
    };
    glommio::spawn_local(run(voter, receiver)).detach();
    QuorumHandle { proposals }
}

/// The node, or why it is down since a write failed.
struct Voter {
    node: Result<QuorumNode, String>,
    data_dir: PathBuf,
    settings: QuorumSettings,
    waiting: Vec<Waiting>,
}

impl Voter {
    /// The node, restarted from the log first if a write failed.
    async fn node(&mut self) -> Result<&mut QuorumNode, String> {
        if self.node.is_err() {
            let (data_dir, settings) = (self.data_dir.clone(), self.settings);
            let restarted = glommio::executor()
                .spawn_blocking(move || {
                    let mut node = QuorumNode::open(&data_dir, settings)?;
                    node.elect_blocking()?;
                    Ok::<_, QuorumError>(node)
                })
                .await;
            match restarted {
                Ok(node) => {
                    log::info!("metadata quorum restarted from its log");
                    self.node = Ok(node);
                }
                Err(error) => {
                    let error = error.to_string();
                    log::warn!("metadata quorum still down: {error}");
                    self.node = Err(error);
                }
            }
        }
        self.node.as_mut().map_err(|error| error.clone())
    }

    async fn propose(&mut self, Proposal { make, reply }: Proposal) {
        if self.waiting.len() >= WAITING_MAX {
            let _ = reply.send(Err("too many metadata changes waiting".to_string()));
            return;
        }
        let node = match self.node().await {
            Ok(node) => node,
            Err(error) => {
                let _ = reply.send(Err(error));
                return;
            }
        };
        let records = make(node.image());
        if records.is_empty() {
            let _ = reply.send(Ok(node.image().clone()));
            return;
        }
        match node.propose(&records) {
            Ok((index, term)) => self.waiting.push(Waiting { index, term, reply }),
            Err(error) => {
                let _ = reply.send(Err(error.to_string()));
            }
        }
    }

    /// Runs the node's rounds; a failure takes it down and fails what waits.
    async fn drive(&mut self) {
        let Ok(node) = &mut self.node else {
            return;
        };
        if let Err(error) = drive(node, &mut self.waiting).await {
            log::error!("metadata quorum down: {error}; the next metadata change restarts it");
            let error = error.to_string();
            for waiter in self.waiting.drain(..) {
                let _ = waiter.reply.send(Err(error.clone()));
            }
            self.node = Err(error);
        }
    }
}

enum Event {
    Tick,
    Proposal(Proposal),
    Stop,
}

struct Waiting {
    index: u64,
    term: u64,
    reply: oneshot::Sender<Committed>,
}

async fn run(mut voter: Voter, proposals: LocalReceiver<Proposal>) {
    let tick = Duration::from_millis(TICK_MS);
    let mut next_tick = Instant::now() + tick;
    loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        let event = futures_lite::future::or(
            async {
                match proposals.recv().await {
                    Some(proposal) => Event::Proposal(proposal),
                    None => Event::Stop,
                }
            },
            async {
                glommio::timer::sleep(wait).await;
                Event::Tick
            },
        )
        .await;
        match event {
            Event::Stop => return,
            Event::Tick => {
                next_tick = Instant::now() + tick;
                if let Ok(node) = &mut voter.node {
                    node.tick();
                }
            }
            Event::Proposal(proposal) => voter.propose(proposal).await,
        }
        voter.drive().await;
    }
}

/// Runs the node's ready rounds until it has none, answering the
/// proposals they apply; then compacts the log when a snapshot is due.
async fn drive(node: &mut QuorumNode, waiting: &mut Vec<Waiting>) -> Result<(), QuorumError> {
    while let Some((round, persist)) = node.next_ready() {
        let log = node.log().clone();
        glommio::executor()
            .spawn_blocking(move || persist.run(&log))
            .await?;
        let finished = node.finish(round)?;
        if let Some(commit) = finished.commit {
            let log = node.log().clone();
            glommio::executor()
                .spawn_blocking(move || log.lock().set_commit(commit))
                .await?;
        }
        node.advance_apply();
        if !finished.messages.is_empty() {
            // A quorum of this node alone has no one to send to; the
            // transport of several voters takes them.
            log::warn!(
                "metadata quorum: {} messages and no transport",
                finished.messages.len()
            );
        }
        answer(node, waiting, &finished);
    }
    if let Some((index, data)) = node.snapshot_due() {
        let log = node.log().clone();
        glommio::executor()
            .spawn_blocking(move || log.lock().compact(index, data))
            .await?;
        node.snapshot_taken();
        log::info!("metadata log compacted to a snapshot at {index}");
    }
    Ok(())
}

/// Answers each proposal applied in its term with the image; one whose
/// index was applied in another term was replaced by a new leader's log.
fn answer(node: &QuorumNode, waiting: &mut Vec<Waiting>, finished: &Finished) {
    let applied = node.applied();
    let mut index = 0;
    while index < waiting.len() {
        let waiter = &waiting[index];
        let committed = finished.applied.contains(&(waiter.index, waiter.term));
        if !committed && waiter.index > applied {
            index += 1;
            continue;
        }
        let waiter = waiting.swap_remove(index);
        let reply = if committed {
            Ok(node.image().clone())
        } else {
            Err(QuorumError::NotLeader.to_string())
        };
        let _ = waiter.reply.send(reply);
    }
}
