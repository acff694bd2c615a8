//! The metadata quorum's voter as `CONTROLLER_SHARD` runs it: one task owns
//! the `quorum::QuorumNode`, ticks it every `TICK_MS`, steps the Raft
//! messages other voters send (the transport's `Inbound`, on the
//! CONTROLLER listener), takes the controller's proposals from a bounded
//! channel, and carries out each ready round: its write on glommio's
//! blocking pool (a synced append stalls its thread for milliseconds,
//! which the shard's reactor must not take), then the round finished on
//! the reactor and its messages handed to the transport. A proposal is
//! answered with the image once its entry is committed and applied.
//!
//! A proposal's records are made from the image as the task holds it when
//! it takes the proposal (`QuorumHandle::propose`'s `make`), so they are
//! always the difference from what is committed: only a leader that has
//! committed an entry of its own term takes one (before that its image may
//! lack entries of earlier terms); any other node answers NOT_CONTROLLER.
//! The leader commits the bootstrap records (`QuorumNode::bootstrap_records`)
//! itself when the log has none (a new multi-voter cluster).
//!
//! Every round that makes a new image (entries applied, or a leader's
//! snapshot installed) publishes it and its index (`QuorumHandle::latest`,
//! `applied_bell`), so the controller installs
//! what other voters' leaders committed (`controller.rs`), in log order.
//! DescribeQuorum, on the CONTROLLER listener or through a broker
//! (`QuorumHandle::status`), is answered from the `QuorumStatus` the task
//! refreshes after each event. Observers' metadata fetches are answered
//! between rounds, held until an entry applies (`fetches.rs`). A pure
//! broker has no voter: its observer (`observer.rs`) publishes through
//! the same `QuorumHandle` (`observer_handle`).
//!
//! Invariant: one round at a time, and the node is not touched while a
//! round's write is under way; every queue is bounded (proposals here,
//! messages in the transport); a tick is never starved by messages (it is
//! taken first once due). A proposal waiting for its entry is answered
//! within `PROPOSAL_TIMEOUT_MS`, and at once with NOT_CONTROLLER when this
//! node stops leading. A write that fails (a full disk) is taken as a
//! crash of the voter: the node is dropped and restarted from what is
//! durable, on the blocking pool (the log reopened, its torn tail cut, a
//! lone voter elected again), by the next proposal to a lone voter or
//! every `RESTART_INTERVAL_MS` of ticks for one of several; until that
//! succeeds every proposal is refused with the error. What the failed
//! round wrote whole may still commit then: its proposal was answered with
//! an error, as a request that timed out, and may or may not have happened.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use raft::eraftpb::Message;

use super::fetches::{self, Fetch, Fetches};
use crate::clock::now_ms;
use crate::metadata::image::MetadataImage;
use crate::metadata::records::MetadataRecord;
use crate::quorum::describe::{QuorumStatus, UNKNOWN};
use crate::quorum::node::{node_id, raft_id, Finished, TICK_MS};
use crate::quorum::transport::{ControllerService, Inbound, Transport, TransportConfig};
use crate::quorum::{QuorumError, QuorumNode, QuorumSettings};

/// Proposals queued for the quorum's task: the controller makes one
/// change at a time (`Controller::changes`), so a few is ample; a sender
/// beyond waits.
const COMMANDS_MAX: usize = 8;

/// Proposals waiting for their entry to commit. The controller waits for
/// each before it proposes the next, so this bound is never reached by it.
const WAITING_MAX: usize = 64;

/// Raft messages stepped in one go before the task looks at its clock and
/// its proposals again: the transport's inbound queue holds more, and a
/// burst must not hold the tick back.
const STEPS_PER_EVENT_MAX: usize = 256;

/// How long a proposal may wait for its entry to be applied: Kafka's
/// `request.timeout.ms` default. A leader that loses its majority steps
/// down within an election timeout and fails its proposals then; this
/// bounds the rest (a majority that acknowledges nothing).
const PROPOSAL_TIMEOUT_MS: u64 = 30_000;

/// How often a voter among several, down since a write failed, tries to
/// restart from its log: each try reopens and replays the log on the
/// blocking pool, so not every tick; soon enough that it rejoins within
/// about an election timeout of the disk having room again.
const RESTART_INTERVAL_MS: u64 = 1_000;

/// Why a proposal was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProposeError {
    /// This node is not (or no longer) the quorum's leader with its term's
    /// first entry committed: Kafka's NOT_CONTROLLER, which clients retry.
    NotController,
    /// Not applied within `PROPOSAL_TIMEOUT_MS`; it may still be.
    TimedOut,
    /// The quorum is down (a failed write) or stopped.
    Failed(String),
}

impl std::fmt::Display for ProposeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProposeError::NotController => {
                f.write_str("this node is not the metadata quorum's leader")
            }
            ProposeError::TimedOut => write!(
                f,
                "the metadata change was not committed within {PROPOSAL_TIMEOUT_MS} ms"
            ),
            ProposeError::Failed(error) => f.write_str(error),
        }
    }
}

/// An image and the log index it was applied through.
#[derive(Clone)]
pub struct Applied {
    pub index: u64,
    pub image: Arc<MetadataImage>,
}

/// What a proposal is answered with: the image with its records applied,
/// or why it was not committed.
pub type Committed = Result<Applied, ProposeError>;

/// Makes a proposal's records from the committed image; none: nothing to
/// propose, answered with the image as it is.
pub type MakeRecords = Box<dyn FnOnce(&MetadataImage) -> Vec<MetadataRecord>>;

/// As `MakeRecords`, also given the offset the entry's records will take
/// (the leader's last index: entry `i` is offset `i - 1`), which a
/// RegisterBrokerRecord's broker epoch is, as Kafka's `nextWriteOffset`.
pub type MakeRecordsAt = Box<dyn FnOnce(&MetadataImage, i64) -> Vec<MetadataRecord>>;

struct Proposal {
    make: MakeRecordsAt,
    reply: oneshot::Sender<Committed>,
}

/// What the task publishes for the controller on the same shard.
struct Published {
    /// This node is the quorum's only voter.
    sole: bool,
    /// This node leads and may take proposals (`QuorumNode::leads_committed`).
    leads: Cell<bool>,
    /// The leader's node id as this node knows it, or -1.
    leader_id: Cell<i32>,
    latest: RefCell<Applied>,
}

/// The controller's way to the quorum's task (the controller's and the
/// brokers' lifecycle, `brokers.rs`, share it).
#[derive(Clone)]
pub struct QuorumHandle {
    proposals: Rc<LocalSender<Proposal>>,
    published: Rc<Published>,
    applied: AppliedBell,
    /// A voter's view of the quorum; none on an observer, which votes in
    /// no term and tracks no replica.
    status: Option<Rc<RefCell<QuorumStatus>>>,
}

/// Rung when `QuorumHandle::latest` or the leader moves on (capacity one: a full bell
/// already rings); ends when the quorum's task does.
pub type AppliedBell = Rc<LocalReceiver<()>>;

impl QuorumHandle {
    /// Proposes the records `make` makes from the committed image as one
    /// entry and waits until it is applied.
    pub async fn propose(&self, make: MakeRecords) -> Committed {
        self.propose_at(Box::new(move |image, _| make(image))).await
    }

    /// As `propose`, `make` also given the offset its records will take.
    pub async fn propose_at(&self, make: MakeRecordsAt) -> Committed {
        let stopped = || ProposeError::Failed("the metadata quorum is stopped".to_string());
        let (reply, answer) = oneshot::channel();
        if self.proposals.send(Proposal { make, reply }).await.is_err() {
            return Err(stopped());
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Whether this node may take metadata changes now (the leader, caught
    /// up in its term).
    pub fn leads(&self) -> bool {
        self.published.leads.get()
    }

    /// The quorum leader's node id as this node knows it, or -1.
    pub fn leader_id(&self) -> i32 {
        self.published.leader_id.get()
    }

    /// The leader the view names as the controller
    /// (`ClusterView::controller_node_id`): none for a lone voter, which
    /// is its own.
    pub fn quorum_leader(&self) -> Option<i32> {
        (!self.published.sole).then(|| self.leader_id())
    }

    /// The quorum as the voter's task last saw it, for DescribeQuorum;
    /// none on an observer (a pure broker).
    pub fn status(&self) -> Option<QuorumStatus> {
        self.status.as_ref().map(|status| status.borrow().clone())
    }

    /// The newest image applied here and its index.
    pub fn latest(&self) -> Applied {
        self.published.latest.borrow().clone()
    }

    /// The bell of newly applied entries with records.
    pub fn applied_bell(&self) -> AppliedBell {
        self.applied.clone()
    }
}

/// The side of a `QuorumHandle` that a pure broker's observer
/// (`observer.rs`) publishes through: `latest`, the leader and the bell.
/// The handle's proposals are answered NOT_CONTROLLER at once, by a task
/// that ends with the last handle.
pub struct ObserverSide {
    published: Weak<Published>,
    applied_bell: LocalSender<()>,
}

impl ObserverSide {
    /// Publishes a new image (if any) and the leader as last heard,
    /// ringing the bell when either moved; false once every handle is
    /// gone (the observer stops).
    pub fn publish(&self, applied: Option<Applied>, leader_id: i32) -> bool {
        let Some(published) = self.published.upgrade() else {
            return false;
        };
        let mut moved = published.leader_id.replace(leader_id) != leader_id;
        if let Some(applied) = applied {
            *published.latest.borrow_mut() = applied;
            moved = true;
        }
        if moved {
            // Full means the bell already rings.
            let _ = self.applied_bell.try_send(());
        }
        true
    }
}

/// A handle whose image an observer publishes, never this node's voter.
pub fn observer_handle(latest: Applied) -> (QuorumHandle, ObserverSide) {
    let (proposals, receiver) = local_channel::new_bounded::<Proposal>(COMMANDS_MAX);
    let (applied_bell, applied) = local_channel::new_bounded(1);
    let published = Rc::new(Published {
        sole: false,
        leads: Cell::new(false),
        leader_id: Cell::new(UNKNOWN),
        latest: RefCell::new(latest),
    });
    glommio::spawn_local(async move {
        while let Some(proposal) = receiver.recv().await {
            let _ = proposal.reply.send(Err(ProposeError::NotController));
        }
    })
    .detach();
    let side = ObserverSide {
        published: Rc::downgrade(&published),
        applied_bell,
    };
    let handle = QuorumHandle {
        proposals: Rc::new(proposals),
        published,
        applied: Rc::new(applied),
        status: None,
    };
    (handle, side)
}

/// What the quorum's task starts from: the node opened by serve (a lone
/// voter already elected), and for several voters the CONTROLLER listener
/// serve bound and whom to reach.
pub struct QuorumStart {
    pub node: QuorumNode,
    pub settings: QuorumSettings,
    pub network: Option<(TransportConfig, std::net::TcpListener)>,
}

/// Starts the quorum's task on this shard, whose log is under `data_dir`;
/// it ends when every handle is dropped. `service` makes, from the handle,
/// what the CONTROLLER listener serves beyond the quorum's own APIs.
pub fn start(
    start: QuorumStart,
    data_dir: PathBuf,
    service: impl FnOnce(&QuorumHandle) -> ControllerService,
) -> Result<QuorumHandle, String> {
    let QuorumStart {
        node,
        settings,
        network,
    } = start;
    let (proposals, receiver) = local_channel::new_bounded(COMMANDS_MAX);
    let (applied_bell, applied) = local_channel::new_bounded(1);
    let published = Rc::new(Published {
        sole: settings.sole_voter(),
        leads: Cell::new(false),
        leader_id: Cell::new(UNKNOWN),
        latest: RefCell::new(Applied {
            index: node.applied(),
            image: node.image().clone(),
        }),
    });
    let status = Rc::new(RefCell::new(node.status(now_ms() as i64, |_| {
        (i64::from(UNKNOWN), i64::from(UNKNOWN))
    })));
    let handle = QuorumHandle {
        proposals: Rc::new(proposals),
        published: published.clone(),
        applied: Rc::new(applied),
        status: Some(status.clone()),
    };
    let service = service(&handle);
    let (transport, inbound, fetch_receiver) = match network {
        Some((config, listener)) => {
            let shown = status.clone();
            let (transport, inbound) = Transport::start(
                config,
                listener,
                Rc::new(move || shown.borrow().clone()),
                service,
            )
            .map_err(|error| error.to_string())?;
            let (fetch_api, fetch_receiver) = fetches::channel();
            transport.serve_fetches(fetch_api);
            (Some(transport), Some(inbound), Some(fetch_receiver))
        }
        None => (None, None, None),
    };
    let mut voter = Voter {
        node: Ok(node),
        data_dir,
        settings,
        waiting: Vec::new(),
        transport,
        contacts: BTreeMap::new(),
        status,
        published: published.clone(),
        applied_bell,
        bootstrap_term: 0,
        fetches: Fetches::default(),
    };
    voter.publish();
    let events = Events {
        proposals: receiver,
        inbound,
        fetches: fetch_receiver,
    };
    glommio::spawn_local(run(voter, events)).detach();
    Ok(handle)
}

/// When this node last heard from a voter and when the voter last matched
/// the leader's log end (wall-clock ms; `UNKNOWN` for never).
#[derive(Clone, Copy)]
struct Contact {
    heard_ms: i64,
    caught_up_ms: i64,
}

/// The node, or why it is down since a write failed.
struct Voter {
    node: Result<QuorumNode, String>,
    data_dir: PathBuf,
    settings: QuorumSettings,
    waiting: Vec<Waiting>,
    transport: Option<Transport>,
    contacts: BTreeMap<i32, Contact>,
    status: Rc<RefCell<QuorumStatus>>,
    published: Rc<Published>,
    applied_bell: LocalSender<()>,
    /// The term whose leader (this node) last proposed the bootstrap records.
    bootstrap_term: u64,
    /// Observers' fetches waiting for an entry to apply.
    fetches: Fetches,
}

impl Voter {
    /// The node, restarted from the log first if a write failed.
    async fn node(&mut self) -> Result<&mut QuorumNode, String> {
        if self.node.is_err() {
            let (data_dir, settings) = (self.data_dir.clone(), self.settings.clone());
            let restarted = glommio::executor()
                .spawn_blocking(move || {
                    let sole = settings.sole_voter();
                    let mut node = QuorumNode::open(&data_dir, settings)?;
                    if sole {
                        node.elect_blocking()?;
                    }
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
            let _ = reply.send(Err(ProposeError::Failed(
                "too many metadata changes waiting".to_string(),
            )));
            return;
        }
        let node = match self.node().await {
            Ok(node) => node,
            Err(error) => {
                let _ = reply.send(Err(ProposeError::Failed(error)));
                return;
            }
        };
        if !node.leads_committed() {
            let _ = reply.send(Err(ProposeError::NotController));
            return;
        }
        let next_offset = i64::try_from(node.last_index()).unwrap_or(i64::MAX);
        let records = make(node.image(), next_offset);
        if records.is_empty() {
            let _ = reply.send(Ok(Applied {
                index: node.applied(),
                image: node.image().clone(),
            }));
            return;
        }
        match node.propose(&records) {
            Ok((index, term)) => self.waiting.push(Waiting {
                index,
                term,
                deadline: Instant::now() + Duration::from_millis(PROPOSAL_TIMEOUT_MS),
                reply,
            }),
            Err(QuorumError::NotLeader) => {
                let _ = reply.send(Err(ProposeError::NotController));
            }
            Err(error) => {
                let _ = reply.send(Err(ProposeError::Failed(error.to_string())));
            }
        }
    }

    /// Steps a message from another voter, noting when it was heard from.
    fn step(&mut self, mut message: Message) {
        let Ok(node) = &mut self.node else {
            return;
        };
        let from = i32::try_from(message.from).unwrap_or(UNKNOWN);
        message.from = raft_id(from);
        message.to = self.settings.raft_id();
        let heard_ms = now_ms() as i64;
        self.contacts
            .entry(from)
            .and_modify(|contact| contact.heard_ms = heard_ms)
            .or_insert(Contact {
                heard_ms,
                caught_up_ms: i64::from(UNKNOWN),
            });
        if let Err(error) = node.step(message) {
            log::debug!("metadata quorum: a message from voter {from} not stepped: {error}");
        }
    }

    /// Runs the node's rounds, then what follows from where they leave it:
    /// the bootstrap records of a new leader's log, the proposals a lost
    /// leadership or their deadline fails, what is published.
    async fn settle(&mut self) {
        self.drive().await;
        if self.bootstrap() {
            self.drive().await;
        }
        self.expire();
        self.publish();
    }

    /// Runs the node's rounds; a failure takes it down and fails what waits.
    async fn drive(&mut self) {
        let Ok(node) = &mut self.node else {
            return;
        };
        let rounds = Rounds {
            transport: self.transport.as_ref(),
            published: &self.published,
            applied_bell: &self.applied_bell,
        };
        if let Err(error) = drive(node, &mut self.waiting, rounds).await {
            log::error!("metadata quorum down: {error}; the next metadata change restarts it");
            let error = error.to_string();
            for waiter in self.waiting.drain(..) {
                let _ = waiter.reply.send(Err(ProposeError::Failed(error.clone())));
            }
            self.node = Err(error);
        }
    }

    /// Proposes the bootstrap records once per term when this node leads a
    /// log that lacks them; true when it did.
    fn bootstrap(&mut self) -> bool {
        let Ok(node) = &mut self.node else {
            return false;
        };
        if !node.leads_committed() || self.bootstrap_term == node.term() {
            return false;
        }
        self.bootstrap_term = node.term();
        let records = node.bootstrap_records();
        if records.is_empty() {
            return false;
        }
        match node.propose(&records) {
            Ok(_) => {
                log::info!("metadata quorum: the leader proposes the bootstrap records");
                true
            }
            Err(error) => {
                log::warn!("metadata quorum: the bootstrap records not proposed: {error}");
                false
            }
        }
    }

    /// Fails the proposals of a node that no longer leads, and those past
    /// their deadline.
    fn expire(&mut self) {
        let leads = matches!(&self.node, Ok(node) if node.is_leader());
        let now = Instant::now();
        let mut index = 0;
        while index < self.waiting.len() {
            let error = if !leads {
                ProposeError::NotController
            } else if self.waiting[index].deadline <= now {
                ProposeError::TimedOut
            } else {
                index += 1;
                continue;
            };
            let _ = self.waiting.swap_remove(index).reply.send(Err(error));
        }
    }

    /// Refreshes what the controller and DescribeQuorum see.
    fn publish(&mut self) {
        let Ok(node) = &self.node else {
            // A lone voter that is down restarts with the next proposal
            // and leads again, so it still takes them (and answers the
            // error while it cannot restart); one of several restarts on
            // its ticks and follows whoever leads then.
            self.published.leads.set(self.published.sole);
            self.published.leader_id.set(UNKNOWN);
            return;
        };
        self.published.leads.set(node.leads_committed());
        if self.published.leader_id.replace(node.leader_id()) != node.leader_id() {
            // The controller reports the new leader on every shard.
            let _ = self.applied_bell.try_send(());
        }
        let now = now_ms() as i64;
        let last_index = node.last_index();
        for (id, contact) in self.contacts.iter_mut() {
            if node
                .matched(*id)
                .is_some_and(|matched| matched >= last_index)
            {
                contact.caught_up_ms = contact.heard_ms;
            }
        }
        let contacts = &self.contacts;
        let mut status = node.status(now, |id| {
            contacts
                .get(&id)
                .map_or((i64::from(UNKNOWN), i64::from(UNKNOWN)), |contact| {
                    (contact.heard_ms, contact.caught_up_ms)
                })
        });
        if node.is_leader() {
            status.observers = self.fetches.observers(now);
        }
        *self.status.borrow_mut() = status;
    }
}

enum Event {
    Tick,
    Proposal(Proposal),
    Message(Message),
    Fetch(Fetch),
    Stop,
}

/// What the task waits on besides its tick.
struct Events {
    proposals: LocalReceiver<Proposal>,
    inbound: Option<Inbound>,
    fetches: Option<LocalReceiver<Fetch>>,
}

impl Events {
    /// The next proposal, message or fetch; `Stop` once proposals end.
    async fn next(&self) -> Event {
        futures_lite::future::or(
            async {
                match self.proposals.recv().await {
                    Some(proposal) => Event::Proposal(proposal),
                    None => Event::Stop,
                }
            },
            futures_lite::future::or(
                async {
                    match &self.inbound {
                        Some(inbound) => match inbound.recv().await {
                            Some(message) => Event::Message(message),
                            None => std::future::pending().await,
                        },
                        None => std::future::pending().await,
                    }
                },
                async {
                    match self.fetches.as_ref() {
                        Some(fetches) => match fetches.recv().await {
                            Some(fetch) => Event::Fetch(fetch),
                            None => std::future::pending().await,
                        },
                        None => std::future::pending().await,
                    }
                },
            ),
        )
        .await
    }
}

struct Waiting {
    index: u64,
    term: u64,
    deadline: Instant,
    reply: oneshot::Sender<Committed>,
}

async fn run(mut voter: Voter, events: Events) {
    let tick = Duration::from_millis(TICK_MS);
    let mut next_tick = Instant::now() + tick;
    let mut next_restart = Instant::now();
    loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        let event = if wait.is_zero() {
            Event::Tick
        } else {
            futures_lite::future::or(events.next(), async {
                glommio::timer::sleep(wait).await;
                Event::Tick
            })
            .await
        };
        match event {
            Event::Stop => return,
            Event::Tick => {
                next_tick += tick;
                if next_tick < Instant::now() {
                    // Behind by more than a tick (a long round): one tick
                    // now, the next a period on, rather than a burst.
                    next_tick = Instant::now() + tick;
                }
                match &mut voter.node {
                    Ok(node) => node.tick(),
                    Err(_) if !voter.published.sole && Instant::now() >= next_restart => {
                        next_restart = Instant::now() + Duration::from_millis(RESTART_INTERVAL_MS);
                        let _ = voter.node().await;
                    }
                    Err(_) => {}
                }
            }
            Event::Proposal(proposal) => voter.propose(proposal).await,
            Event::Fetch(fetch) => voter.fetches.take(&voter.node, fetch),
            Event::Message(message) => {
                voter.step(message);
                for _ in 1..STEPS_PER_EVENT_MAX {
                    match events.inbound.as_ref().and_then(Inbound::try_recv) {
                        Some(message) => voter.step(message),
                        None => break,
                    }
                }
            }
        }
        voter.settle().await;
        voter.fetches.settle(&voter.node);
    }
}

/// Where a round's results go besides the node.
struct Rounds<'a> {
    transport: Option<&'a Transport>,
    published: &'a Published,
    applied_bell: &'a LocalSender<()>,
}

/// Runs the node's ready rounds until it has none, sending their messages,
/// publishing what they apply and answering the proposals they apply;
/// then compacts the log when a snapshot is due.
async fn drive(
    node: &mut QuorumNode,
    waiting: &mut Vec<Waiting>,
    rounds: Rounds<'_>,
) -> Result<(), QuorumError> {
    while let Some((round, persist)) = node.next_ready() {
        let log = node.log().clone();
        glommio::executor()
            .spawn_blocking(move || persist.run(&log))
            .await?;
        let mut finished = node.finish(round)?;
        let messages = std::mem::take(&mut finished.messages);
        if let Some(commit) = finished.commit {
            let log = node.log().clone();
            glommio::executor()
                .spawn_blocking(move || log.lock().set_commit(commit))
                .await?;
        }
        node.advance_apply();
        match rounds.transport {
            Some(transport) => transport.send(messages.into_iter().map(to_node_ids)),
            None if !messages.is_empty() => {
                // A lone voter has no one to send to.
                log::warn!(
                    "metadata quorum: {} messages and no other voter",
                    messages.len()
                );
            }
            None => {}
        }
        // Entries applied, or a leader's snapshot installed (a follower
        // that fell behind the leader's compaction): either makes a new
        // image, which the controller must install.
        let image_moved = !Arc::ptr_eq(&rounds.published.latest.borrow().image, node.image());
        if image_moved {
            *rounds.published.latest.borrow_mut() = Applied {
                index: node.applied(),
                image: node.image().clone(),
            };
            // Full means the bell already rings.
            let _ = rounds.applied_bell.try_send(());
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

/// A message as the transport routes it: `from` and `to` are Kafka's node
/// ids on the wire (raft-rs numbers its voters from 1, `raft_id`), so the
/// transport checks senders against `controller.quorum.voters` as they are.
fn to_node_ids(mut message: Message) -> Message {
    message.from = node_id_u64(message.from);
    message.to = node_id_u64(message.to);
    message
}

fn node_id_u64(raft: u64) -> u64 {
    u64::try_from(node_id(raft)).unwrap_or(u64::MAX)
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
            Ok(Applied {
                index: applied,
                image: node.image().clone(),
            })
        } else {
            Err(ProposeError::NotController)
        };
        let _ = waiter.reply.send(reply);
    }
}
