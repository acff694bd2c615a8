//! The metadata quorum's voter as `CONTROLLER_SHARD` runs it: one task owns
//! the `quorum::QuorumNode`, ticks it every `TICK_MS`, takes the
//! controller's proposals from a bounded channel, and carries out each
//! ready round: its write on glommio's blocking pool (a synced append
//! stalls its thread for milliseconds, which the shard's reactor must not
//! take), then the round finished on the reactor. A proposal is answered
//! with the image once its entry is committed and applied.
//!
//! Invariant: one round at a time, and the node is not touched while a
//! round's write is under way. A write that fails stops the quorum
//! (fail-stop, as Kafka's controller halts on a metadata log error: the
//! file may end in a partial frame): every proposal after it is refused
//! with that error until the broker restarts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};

use crate::metadata::image::MetadataImage;
use crate::metadata::records::MetadataRecord;
use crate::quorum::node::{Finished, TICK_MS};
use crate::quorum::{QuorumError, QuorumNode};

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

struct Proposal {
    records: Vec<MetadataRecord>,
    reply: oneshot::Sender<Committed>,
}

/// The controller's way to the quorum's task.
pub struct QuorumHandle {
    proposals: LocalSender<Proposal>,
}

impl QuorumHandle {
    /// Proposes `records` as one entry and waits until it is applied.
    pub async fn propose(&self, records: Vec<MetadataRecord>) -> Committed {
        let stopped = || "the metadata quorum is stopped".to_string();
        let (reply, answer) = oneshot::channel();
        if self
            .proposals
            .send(Proposal { records, reply })
            .await
            .is_err()
        {
            return Err(stopped());
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// Starts the quorum's task on this shard; it ends when the handle is
/// dropped.
pub fn start(node: QuorumNode) -> QuorumHandle {
    let (proposals, receiver) = local_channel::new_bounded(COMMANDS_MAX);
    glommio::spawn_local(run(node, receiver)).detach();
    QuorumHandle { proposals }
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

async fn run(mut node: QuorumNode, proposals: LocalReceiver<Proposal>) {
    let tick = Duration::from_millis(TICK_MS);
    let mut next_tick = Instant::now() + tick;
    let mut waiting: Vec<Waiting> = Vec::new();
    let mut failed: Option<String> = None;
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
                if failed.is_none() {
                    node.tick();
                }
            }
            Event::Proposal(Proposal { records, reply }) => {
                let proposed = match &failed {
                    Some(error) => Err(error.clone()),
                    None if waiting.len() >= WAITING_MAX => {
                        Err("too many metadata changes waiting".to_string())
                    }
                    None => node.propose(&records).map_err(|error| error.to_string()),
                };
                match proposed {
                    Ok((index, term)) => waiting.push(Waiting { index, term, reply }),
                    Err(error) => {
                        let _ = reply.send(Err(error));
                    }
                }
            }
        }
        if failed.is_some() {
            continue;
        }
        if let Err(error) = drive(&mut node, &mut waiting).await {
            log::error!(
                "metadata quorum stopped: {error}; metadata changes are refused until a restart"
            );
            let error = error.to_string();
            for waiter in waiting.drain(..) {
                let _ = waiter.reply.send(Err(error.clone()));
            }
            failed = Some(error);
        }
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
