//! Shards: one pinned OS thread per core, each running one glommio executor
//! with its own io_uring rings.
//!
//! Invariant: this is the only module that knows threads exist. Everything
//! else runs inside exactly one shard and reaches other shards only through
//! the messages in `messages.rs`. A partition's state is reachable only on its
//! owner shard (`owned.rs`); shared read-mostly state (the metadata view) is an
//! immutable snapshot per shard, replaced by a broadcast: each shard copies
//! it into its own `ShardView` (`view.rs`). The metadata controller runs on
//! `CONTROLLER_SHARD` (`controller.rs`, driving the pure
//! `metadata::controller`, its changes committed through the metadata
//! quorum's voter there, `quorum.rs`), as `groups.rs` drives the pure `group` and
//! `transactions.rs` the pure `txn`, both loading from their internal topic
//! through `replay.rs`.
//!
//! A pure controller (`process.roles=controller`) runs the same shards, but
//! registers no broker (no `LifecycleManager`) and is never given a
//! partition (`metadata::controller::placement_brokers`), so it opens no
//! log and loads no coordinator; its shards other than the controller's
//! idle until stopped (`server::listener`).

pub mod alter_partition;
pub mod brokers;
#[cfg(test)]
mod brokers_tests;
pub mod controller;
pub mod cores;
pub mod delete_records;
pub mod dynamic_tls;
pub mod elections;
mod fetcher;
mod fetches;
pub mod groups;
pub mod lifecycle;
pub mod mesh;
pub mod messages;
pub mod metrics;
pub mod observer;
pub mod owned;
pub mod producer_ids;
pub mod progress;
pub mod quorum;
mod quota_share;
mod replay;
pub mod replication;
pub mod stall;
pub mod strays;
pub mod to_broker;
pub mod to_controller;
pub mod transactions;
mod txn_markers;
pub mod txn_verify;
pub mod view;

pub use cores::{allowed_cores, default_shard_count, shard_cores};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;

use futures_channel::oneshot;
use futures_util::future::LocalBoxFuture;
use kafka_protocol::error::ResponseError;

use crate::config::BrokerConfig;
use crate::group::OFFSETS_TOPIC;
use crate::log::{CleanerBudget, ShardLoad};
use crate::metadata::ClusterView;
use crate::quorum::transport::ControllerApis;
use crate::txn::TRANSACTION_STATE_TOPIC;
use controller::Controller;
use groups::GroupHost;
use mesh::{Links, Mesh, Unreachable};
use messages::{KafkaError, ShardReply, ShardRequest};
use owned::OwnedPartitions;
use producer_ids::ProducerIds;
use progress::{ShardSteps, StartProgress, Step};
use replication::Replication;
use to_controller::{LateApis, ToController};
use transactions::TxnHost;
use view::ShardView;

/// The shard that runs the metadata controller (`controller.rs`); the one
/// definition, which handlers address admin requests to.
pub use crate::metadata::controller::CONTROLLER_SHARD;

/// Locked memory each shard's executor registers with io_uring. glommio's
/// default is 10 MiB, larger than the 8 MiB `ulimit -l` common on servers and
/// containers; 2 MiB per shard keeps several shards inside it.
pub const SHARD_IO_MEMORY_BYTES: usize = 2 << 20;
/// Scheduler shares of the log cleaner's task queue against the default
/// queue's 1000 (glommio's default): when requests and the cleaner both have
/// work, the requests get about 90% of the core.
const CLEANER_SHARES: usize = 100;
/// Calls one shard may have waiting on another at once, counted until the
/// answer is back even when the caller stopped waiting. Each is a request
/// queued or running on the other shard, or an answer on its way back; past
/// this many the caller waits for one to finish, which holds its client
/// request and so, through the connection's in-flight bound, stops the
/// reading of more. So no shard holds more than this times the number of
/// shards of others' work, whatever the clients send. Well above what a shard serves at once in normal load (its
/// share of `queued.max.requests`, 250 of 500 on 2 shards), so it binds only
/// when an owner falls behind. No cycle of waits: the one handler that
/// calls further (the controller's) calls handlers that call no one.
const CROSS_SHARD_CALLS_MAX: usize = 1024;
/// How long a clean shutdown waits for in-flight requests before closing logs.
const SHUTDOWN_DRAIN_MS_MAX: u64 = 10_000;
/// Poll period while draining in-flight requests at shutdown (shutdown only).
const SHUTDOWN_DRAIN_POLL_MS: u64 = 10;
/// How often a shard looks whether it was asked to stop: SIGTERM is answered
/// within this; a timer this slow costs nothing.
const STOP_POLL_MS: u64 = 20;
/// The reactor's tick while a shard starts, before the stall watchdog's
/// timer takes over (`start_tick`).
const START_TICK_MS: u64 = 5;

/// Runs the future `make_future` builds to completion on a fresh single-shard
/// executor. For tests and the command-line tools, never for the broker's
/// own shards.
pub fn block_on<M, F, T>(make_future: M) -> T
where
    M: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(SHARD_IO_MEMORY_BYTES)
        .spawn(make_future)
        .expect("spawn executor")
        .join()
        .expect("executor thread")
}

/// One shard's state. Lives on its own thread; other shards reach it only
/// through the mesh (`mesh.rs`).
pub struct Shard {
    pub id: usize,
    pub config: Arc<BrokerConfig>,
    /// This shard's own copy of the cluster view (`view.rs`).
    view: RefCell<Rc<ShardView>>,
    shard_count: usize,
    mesh: Mesh,
    /// Per other shard, the calls this one may still have waiting there
    /// (`CROSS_SHARD_CALLS_MAX`): what bounds the work it queues there.
    calls_to: Vec<Rc<glommio::sync::Semaphore>>,
    pub partitions: OwnedPartitions,
    /// The consumer groups whose `__consumer_offsets` partition this shard owns.
    pub groups: GroupHost,
    /// The transactional ids whose `__transaction_state` partition this
    /// shard owns.
    pub transactions: TxnHost,
    /// The producer ids this shard hands out (and, on the controller
    /// shard, the blocks it gives every shard).
    pub producer_ids: ProducerIds,
    controller: Option<Controller>,
    /// On `CONTROLLER_SHARD` of a node among several: its way to the
    /// active controller (`to_controller.rs`).
    to_controller: Option<Rc<ToController>>,
    /// On `CONTROLLER_SHARD` of a broker: its way to the active controller
    /// for ISR changes (`alter_partition.rs`).
    alter_partitions: Option<alter_partition::AlterPartitions>,
    /// On `CONTROLLER_SHARD` of a voter: its controller's brokers, for
    /// leader elections while it leads (`elections.rs`).
    broker_control: Option<Weak<brokers::BrokerControl>>,
    /// What its CONTROLLER listener serves other nodes, once the server
    /// says (`serve_controller_apis`).
    controller_apis: LateApis,
    stop: RefCell<Option<oneshot::Sender<()>>>,
    in_flight_requests: Cell<usize>,
    routing: RoutingCounts,
    /// Requests and calls from other shards started here, which the log
    /// cleaner watches to stay out of their way.
    load: ShardLoad,
    /// The replication roles of the partitions this shard owns.
    replication: Replication,
    /// Its connections to other brokers (`to_broker.rs`).
    to_brokers: to_broker::BrokerLinks,
    /// Its verifications waiting on other nodes' transaction
    /// coordinators (`txn_verify.rs`).
    txn_verifier: txn_verify::TxnVerifier,
    /// Its copy of each OAUTHBEARER key set its listeners validate with
    /// (`server::jwks_refresh` keeps it fresh).
    pub jwks: crate::security::jwks::JwksCache,
    /// The acceptor each TLS listener's new connections get here (a
    /// certificate reload replaces it on every shard).
    pub tls: crate::security::tls::TlsAcceptors,
    /// Its client-quota sensors (`quota`).
    pub quotas: crate::quota::ShardQuotas,
}

/// Produce and fetch partition parts this shard routed: run here (it owns
/// the partition) or forwarded to the owner over the mesh. Logged at
/// shutdown, to see what shard-aware mode saves; plain cells, since only
/// this shard touches them.
#[derive(Default)]
struct RoutingCounts {
    produce_here: Cell<u64>,
    produce_forwarded: Cell<u64>,
    fetch_here: Cell<u64>,
    fetch_forwarded: Cell<u64>,
}

impl RoutingCounts {
    fn count(&self, request: &ShardRequest, here: bool) {
        let (counter, parts) = match request {
            ShardRequest::Produce(parts) if here => (&self.produce_here, parts.len()),
            ShardRequest::Produce(parts) => (&self.produce_forwarded, parts.len()),
            ShardRequest::Fetch(parts) if here => (&self.fetch_here, parts.len()),
            ShardRequest::Fetch(parts) => (&self.fetch_forwarded, parts.len()),
            _ => return,
        };
        counter.set(counter.get() + parts as u64);
    }
}

impl Shard {
    pub fn count(&self) -> usize {
        self.shard_count
    }

    /// The current metadata snapshot: this shard's own copy, so taking it
    /// writes only this shard's memory.
    /// Whether this node leads the metadata quorum now: only the
    /// controller shard of a voter knows, and says so.
    pub fn leads_quorum(&self) -> bool {
        self.controller.as_ref().is_some_and(Controller::leads)
    }

    /// Has this node's CONTROLLER listener (a voter's, on
    /// `CONTROLLER_SHARD`) serve other nodes' requests with `apis`.
    pub fn serve_controller_apis(&self, apis: ControllerApis) {
        *self.controller_apis.borrow_mut() = Some(apis);
    }

    pub fn view(&self) -> Rc<ShardView> {
        self.view.borrow().clone()
    }

    /// Runs `request` on shard `owner`: inline when that is this shard,
    /// otherwise as a message over the mesh.
    pub async fn call(self: &Rc<Self>, owner: usize, request: ShardRequest) -> ShardReply {
        self.routing.count(&request, owner == self.id);
        if owner == self.id {
            return self.handle(request).await;
        }
        let Some(calls) = self.calls_to.get(owner) else {
            return ShardReply::Failed(KafkaError::new(ResponseError::BrokerNotAvailable));
        };
        crate::metrics::cross_shard_call();
        self.mesh
            .call(owner, calls, request)
            .await
            .unwrap_or_else(|Unreachable| {
                ShardReply::Failed(KafkaError::new(ResponseError::BrokerNotAvailable))
            })
    }

    /// Sends `request` built by `make` to every shard and waits for all.
    pub async fn broadcast(self: &Rc<Self>, make: impl Fn() -> ShardRequest) {
        let calls = (0..self.count()).map(|shard| self.call(shard, make()));
        futures_util::future::join_all(calls).await;
    }

    async fn handle(self: &Rc<Self>, request: ShardRequest) -> ShardReply {
        match request {
            ShardRequest::Produce(parts) => {
                ShardReply::Produce(replication::produce(self, parts).await)
            }
            ShardRequest::Fetch(parts) => ShardReply::Fetch(replication::fetch(self, parts).await),
            ShardRequest::InstallTls { listener, acceptor } => {
                self.tls.install(&listener, acceptor);
                ShardReply::Done
            }
            ShardRequest::WaitForData { parts, timeout_ms } => {
                self.partitions.wait_for_data(parts, timeout_ms).await;
                ShardReply::Done
            }
            ShardRequest::EpochEndOffsets(parts) => {
                ShardReply::EpochEndOffsets(self.partitions.epoch_end_offsets(parts))
            }
            ShardRequest::ListOffsets(parts) => {
                ShardReply::ListOffsets(replication::list_offsets(self, parts).await)
            }
            ShardRequest::OpenPartitions { topic, partitions } => {
                // Only replicas are opened: nothing is made on disk for a
                // partition other nodes hold.
                let view = self.view();
                let partitions: Vec<i32> = partitions
                    .into_iter()
                    .filter(|&partition| view.hosts(&topic, partition))
                    .collect();
                match self
                    .partitions
                    .open(&self.config, &topic, &partitions)
                    .await
                {
                    Ok(()) => {
                        Replication::sync(self);
                        ShardReply::Done
                    }
                    Err(error) => ShardReply::Failed(error),
                }
            }
            ShardRequest::DeletePartitions(partitions) => {
                self.partitions.delete(&partitions).await;
                ShardReply::Done
            }
            ShardRequest::CreateTopics(topics, mutator) => match &self.controller {
                Some(controller) => {
                    // Boxed: the controller calls back into shards (`call`), so
                    // the future type would otherwise contain itself.
                    let create: LocalBoxFuture<'_, _> =
                        Box::pin(controller.create_topics(self, topics, mutator));
                    let (results, throttle_ms) = create.await;
                    ShardReply::CreateTopics(results, throttle_ms)
                }
                None => ShardReply::Failed(KafkaError::new(ResponseError::NotController)),
            },
            ShardRequest::DeleteTopics(topics, mutator) => match &self.controller {
                Some(controller) => {
                    let delete: LocalBoxFuture<'_, _> =
                        Box::pin(controller.delete_topics(self, topics, mutator));
                    let (results, throttle_ms) = delete.await;
                    ShardReply::DeleteTopics(results, throttle_ms)
                }
                None => ShardReply::Failed(KafkaError::new(ResponseError::NotController)),
            },
            ShardRequest::AlterTopicConfigs(changes) => match &self.controller {
                Some(controller) => {
                    let alter: LocalBoxFuture<'_, _> =
                        Box::pin(controller.alter_topic_configs(self, changes));
                    ShardReply::Applied(alter.await)
                }
                None => ShardReply::Failed(KafkaError::new(ResponseError::NotController)),
            },
            ShardRequest::CreatePartitions(growths, mutator) => match &self.controller {
                Some(controller) => {
                    let grow: LocalBoxFuture<'_, _> =
                        Box::pin(controller.create_partitions(self, growths, mutator));
                    let (results, throttle_ms) = grow.await;
                    ShardReply::PartitionsCreated(results, throttle_ms)
                }
                None => ShardReply::Failed(KafkaError::new(ResponseError::NotController)),
            },
            ShardRequest::AlterReassignments(items) => match &self.controller {
                Some(controller) => {
                    let alter: LocalBoxFuture<'_, _> =
                        Box::pin(controller.alter_reassignments(self, items));
                    ShardReply::Applied(alter.await)
                }
                None => ShardReply::Failed(KafkaError::new(ResponseError::NotController)),
            },
            ShardRequest::CreateAcls(acls) => match &self.controller {
                Some(controller) => {
                    let create: LocalBoxFuture<'_, _> =
                        Box::pin(controller.create_acls(self, acls));
                    ShardReply::Applied(create.await)
                }
                None => ShardReply::Failed(KafkaError::new(ResponseError::NotController)),
            },
            ShardRequest::DeleteAcls(filters) => match &self.controller {
                Some(controller) => {
                    let delete: LocalBoxFuture<'_, _> =
                        Box::pin(controller.delete_acls(self, filters));
                    ShardReply::AclsDeleted(delete.await)
                }
                None => ShardReply::Failed(KafkaError::new(ResponseError::NotController)),
            },
            ShardRequest::ListReassignments(topics) => match &self.controller {
                Some(controller) => {
                    ShardReply::Reassignments(controller.list_reassignments(topics.as_deref()))
                }
                None => ShardReply::Failed(KafkaError::new(ResponseError::NotController)),
            },
            ShardRequest::DeleteRecords { parts, timeout_ms } => ShardReply::DeleteRecords(
                delete_records::delete_records(self, parts, timeout_ms).await,
            ),
            ShardRequest::AllocateProducerIds(requester) => {
                ShardReply::ProducerIds(producer_ids::allocate(self, requester).await)
            }
            ShardRequest::AlterScram(changes) => match &self.controller {
                Some(controller) => {
                    let alter: LocalBoxFuture<'_, _> =
                        Box::pin(controller.alter_scram(self, changes));
                    match alter.await {
                        Ok(results) => ShardReply::Scram(results),
                        Err(error) => ShardReply::Failed(error),
                    }
                }
                None => ShardReply::Failed(KafkaError::new(ResponseError::NotController)),
            },
            ShardRequest::QuotaRates { from, rates } => {
                self.quotas.absorb(from, rates);
                ShardReply::Done
            }
            ShardRequest::AlterBrokerConfigs(changes) => match &self.controller {
                Some(controller) => {
                    let alter: LocalBoxFuture<'_, _> =
                        Box::pin(controller.alter_broker_configs(self, changes));
                    ShardReply::Applied(alter.await)
                }
                None => ShardReply::Failed(KafkaError::new(ResponseError::NotController)),
            },
            ShardRequest::AlterQuotas(alterations) => match &self.controller {
                Some(controller) => {
                    let alter: LocalBoxFuture<'_, _> =
                        Box::pin(controller.alter_quotas(self, alterations));
                    match alter.await {
                        Ok(results) => ShardReply::Quotas(results),
                        Err(error) => ShardReply::Failed(error),
                    }
                }
                None => ShardReply::Failed(KafkaError::new(ResponseError::NotController)),
            },
            ShardRequest::Forward(envelope) => ShardReply::Forwarded(match &self.to_controller {
                Some(to_controller) => to_controller.forward(*envelope).await,
                None => Err("this node has no controller to forward to".to_string()),
            }),
            ShardRequest::AlterPartition(item) => {
                ShardReply::AlterPartition(alter_partition::serve(self, *item).await)
            }
            ShardRequest::ElectLeaders(request) => {
                ShardReply::Elected(match self.broker_control.as_ref().and_then(Weak::upgrade) {
                    Some(control) => control.elect_leaders(*request).await,
                    None => Err(KafkaError::new(ResponseError::NotController)),
                })
            }
            ShardRequest::QuorumStatus => {
                match self.controller.as_ref().and_then(Controller::quorum_status) {
                    Some(status) => ShardReply::QuorumStatus(Box::new(status)),
                    None => ShardReply::Failed(KafkaError::new(ResponseError::NotController)),
                }
            }
            ShardRequest::PartitionSizes => ShardReply::PartitionSizes(self.partitions.sizes()),
            ShardRequest::Metrics { series } => {
                ShardReply::Metrics(Box::new(metrics::snapshot(self, series)))
            }
            ShardRequest::WriteTxnMarkers(parts) => {
                ShardReply::TxnMarkers(self.write_txn_markers_here(parts).await)
            }
            ShardRequest::DescribeProducers(parts) => {
                ShardReply::Producers(self.partitions.describe_producers(&parts))
            }
            ShardRequest::Group(call) => match self.groups.refuse_while_loading(&call) {
                Some(error) => ShardReply::Failed(KafkaError::new(error)),
                None => {
                    ShardReply::Group(self.groups.call(&self.partitions, &self.view(), call).await)
                }
            },
            ShardRequest::Txn(call) => match self.transactions.refuse_while_loading(self, &call) {
                Some(error) => ShardReply::Failed(KafkaError::new(error)),
                None => {
                    // Boxed: taking a producer id may call the controller
                    // shard (`call`), so the future would contain itself.
                    let run: LocalBoxFuture<'_, _> = Box::pin(self.transactions.call(self, call));
                    ShardReply::Txn(run.await)
                }
            },
            ShardRequest::InstallView(shared) => {
                let view = Rc::new(ShardView::new(&shared, &self.config));
                let old = self.view.replace(view.clone());
                self.partitions.reconfigure(&old, &view);
                Replication::sync(self);
                self.follow_coordinators(&old, &view);
                ShardReply::Done
            }
        }
    }

    /// Moves this shard's coordinators with the leadership of the internal
    /// partitions it owns, as a newly installed view (`new`, after `old`)
    /// has it: a coordinator lives on the leader of its partition,
    /// wherever the placer put it and wherever it is elected. Start-up
    /// loads those led at start (`run_shard`); the partitions a later view
    /// makes this node lead (made here, or their leader elected back) are
    /// loaded, those it no longer leads unloaded.
    fn follow_coordinators(self: &Rc<Self>, old: &ClusterView, new: &ClusterView) {
        let (gained, lost) = old.leadership_moves(new, OFFSETS_TOPIC, self.id);
        groups::follow_leadership(self, gained, &lost);
        let (gained, lost) = old.leadership_moves(new, TRANSACTION_STATE_TOPIC, self.id);
        transactions::follow_leadership(self, gained, &lost);
    }

    /// Counts a client request as in flight until the guard drops, so a
    /// shutdown lets it finish before logs close.
    pub fn request_guard(self: &Rc<Self>) -> RequestGuard {
        self.load.started_work();
        self.in_flight_requests
            .set(self.in_flight_requests.get() + 1);
        RequestGuard {
            shard: self.clone(),
        }
    }
}

pub struct RequestGuard {
    shard: Rc<Shard>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let shard = &self.shard;
        shard
            .in_flight_requests
            .set(shard.in_flight_requests.get() - 1);
    }
}

/// What a shard's service (the listener) is given to run.
pub struct ShardStart {
    pub shard: Rc<Shard>,
    /// Resolves when the shard is asked to stop.
    pub stop: oneshot::Receiver<()>,
    /// Report readiness (or a fatal start error) to the main thread.
    pub ready: std_mpsc::Sender<Result<usize, String>>,
}

/// Handles to the running shards, held by the main thread.
pub struct ShardSet {
    threads: Vec<glommio::ExecutorJoinHandle<()>>,
    /// Set once to stop every shard; each looks at it every
    /// `STOP_POLL_MS` (a flag, not a message: the main thread is not a
    /// shard, and no waker may cross threads, see `mesh.rs`).
    stopping: Arc<AtomicBool>,
}

impl ShardSet {
    /// Asks every shard to stop and waits for their threads to finish.
    pub fn shutdown(self) {
        self.stopping.store(true, Ordering::Release);
        for thread in self.threads {
            if let Err(error) = thread.join() {
                log::error!("shard thread failed: {error}");
            }
        }
    }
}

/// Starts `config.shards` shards, pinned one per core where the machine has
/// enough, each opening the partitions it owns and then running `service`.
/// Returns once every shard reported ready, or the first start error.
pub fn spawn_all<S, F>(
    config: Arc<BrokerConfig>,
    view: Arc<ClusterView>,
    quorum: observer::MetadataStart,
    progress: &Arc<StartProgress>,
    service: S,
) -> Result<ShardSet, String>
where
    S: Fn(ShardStart) -> F + Send + Clone + 'static,
    F: Future<Output = ()> + 'static,
{
    let count = config.shards;
    let cores = shard_cores(count);
    let stopping = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = std_mpsc::channel();
    let mut threads = Vec::with_capacity(count);
    let mut quorum = Some(quorum);
    for (id, links) in mesh::links(count).into_iter().enumerate() {
        let quorum = if id == CONTROLLER_SHARD {
            quorum.take()
        } else {
            None
        };
        let placement = match &cores {
            Some(cores) => glommio::Placement::Fixed(cores[id]),
            None => glommio::Placement::Unbound,
        };
        let config = config.clone();
        let view = view.clone();
        let stopping = stopping.clone();
        let service = service.clone();
        let ready = ready_tx.clone();
        let steps = progress.of_shard(id);
        let thread = glommio::LocalExecutorBuilder::new(placement)
            .name(&format!("shoal-shard-{id}"))
            .io_memory(SHARD_IO_MEMORY_BYTES)
            .preempt_timer(Duration::from_millis(stall::PREEMPT_TIMER_MS))
            .spin_before_park(Duration::from_micros(config.shard_spin_before_park_us))
            .spawn(move || {
                crate::fatal::on_this_thread();
                let metadata = StartMetadata { view, quorum };
                run_shard(steps, config, metadata, links, stopping, service, ready)
            })
            .map_err(|error| format!("cannot start shard {id}: {error}"))?;
        threads.push(thread);
    }
    drop(ready_tx);
    let set = ShardSet { threads, stopping };
    for _ in 0..count {
        match ready_rx.recv() {
            Ok(Ok(id)) => log::debug!("shard {id} is ready"),
            Ok(Err(message)) => {
                set.shutdown();
                return Err(message);
            }
            Err(_) => {
                set.shutdown();
                return Err("a shard exited during start".to_string());
            }
        }
    }
    Ok(set)
}

/// Reads what shard `peer` sends: its calls, each run in a task of its own
/// whose answer goes back when done, and the answers to this shard's calls.
/// Never waits on anything but the channel (`mesh.rs`).
async fn serve_peer(
    shard: Rc<Shard>,
    peer: usize,
    receiver: glommio::channels::shared_channel::ConnectedReceiver<mesh::Message>,
) {
    while let Some(message) = receiver.recv().await {
        match message {
            mesh::Message::Request { id, request } => {
                let shard = shard.clone();
                shard.load.started_work();
                glommio::spawn_local(async move {
                    let reply = shard.handle(*request).await;
                    shard.mesh.reply(peer, id, reply).await;
                })
                .detach();
            }
            mesh::Message::Reply { id, reply } => shard.mesh.answered(id, *reply),
        }
    }
    shard.mesh.peer_gone(peer);
}

/// Stops the shard's service once the main thread sets `stopping`.
async fn watch_stop(
    stopping: Arc<AtomicBool>,
    shard: std::rc::Weak<Shard>,
    lifecycle: Option<Rc<lifecycle::LifecycleManager>>,
) {
    loop {
        glommio::timer::sleep(Duration::from_millis(STOP_POLL_MS)).await;
        let Some(shard) = shard.upgrade() else {
            return;
        };
        if stopping.load(Ordering::Acquire) {
            // The broker's controlled shutdown first: its leaderships
            // move while it still serves.
            if let Some(lifecycle) = &lifecycle {
                lifecycle.shut_down().await;
            }
            if let Some(stop) = shard.stop.borrow_mut().take() {
                let _ = stop.send(());
            }
            return;
        }
    }
}

/// The shard's log cleaner: one pass at a time on the neediest compacted
/// log, at once again after a pass, `log.cleaner.backoff.ms` after finding
/// nothing to do. It runs in its own low-share task queue, so requests on
/// the shard go first; its passes take short turns and back off while the
/// shard serves requests (`log/cleaner.rs`, `Pacer`). Each shard
/// gets an equal part of `log.cleaner.dedupe.buffer.size` and of
/// `log.cleaner.io.max.bytes.per.second`.
fn spawn_cleaner(shard: &Rc<Shard>) {
    let config = &shard.config;
    let backoff = Duration::from_millis(config.log_cleaner_backoff_ms);
    let shards = config.shards.max(1);
    let budget = CleanerBudget {
        map_bytes: usize::try_from(config.log_cleaner_dedupe_buffer_size / shards as u64)
            .unwrap_or(usize::MAX),
        io_bytes_per_second: config.log_cleaner_io_max_bytes_per_second / shards as f64,
    };
    let queue = glommio::executor().create_task_queue(
        glommio::Shares::Static(CLEANER_SHARES),
        glommio::Latency::NotImportant,
        "log-cleaner",
    );
    let cleaner = Rc::downgrade(shard);
    let spawned = glommio::spawn_local_into(
        async move {
            loop {
                let Some(shard) = cleaner.upgrade() else {
                    break;
                };
                let now_ms = i64::try_from(crate::clock::now_ms()).unwrap_or(i64::MAX);
                let cleaned = shard
                    .partitions
                    .clean_neediest(now_ms, budget, &shard.load)
                    .await;
                drop(shard);
                if !cleaned {
                    glommio::timer::sleep(backoff).await;
                }
            }
        },
        queue,
    );
    match spawned {
        Ok(task) => {
            task.detach();
        }
        Err(error) => log::error!("shard {}: cannot start the log cleaner: {error}", shard.id),
    }
}

/// A task that wakes the shard's reactor every `START_TICK_MS` until it is
/// dropped (a glommio task is cancelled with its handle). glommio 0.9 can
/// miss the wake-up for a blocking-pool result (the truncate of a torn
/// segment tail in recovery): the reactor slept on, and the start hung,
/// in 1 to 2 of 100 restarts after kill -9 on a loaded machine (both shard
/// threads parked in io_uring, the pool's threads idle). Every reactor pass
/// collects the pool's results, so a tick bounds that wait. Once started,
/// the stall watchdog's timer wakes the reactor as often.
fn start_tick() -> glommio::Task<()> {
    glommio::spawn_local(async {
        loop {
            glommio::timer::sleep(Duration::from_millis(START_TICK_MS)).await;
        }
    })
}

/// The metadata a shard starts from: the cluster view and, on
/// `CONTROLLER_SHARD`, the metadata quorum's voter.
struct StartMetadata {
    view: Arc<ClusterView>,
    quorum: Option<observer::MetadataStart>,
}

async fn run_shard<S, F>(
    steps: ShardSteps,
    config: Arc<BrokerConfig>,
    metadata: StartMetadata,
    links: Links,
    stopping: Arc<AtomicBool>,
    service: S,
    ready: std_mpsc::Sender<Result<usize, String>>,
) where
    S: Fn(ShardStart) -> F,
    F: Future<Output = ()> + 'static,
{
    let id = steps.id;
    let StartMetadata { view, quorum } = metadata;
    steps.step(Step::StartingQuorum);
    let (quorum, follower) = observer::MetadataStart::split(quorum);
    let among_several = follower.is_some()
        || quorum
            .as_ref()
            .is_some_and(|start| !start.settings.sole_voter());
    let controller_apis = LateApis::default();
    let mutation_window = crate::quota::rate::WindowConfig::controller_of(&config.connections);
    // The active controller's brokers, served on the CONTROLLER listener.
    let mut brokers = None;
    let controller = match quorum.map(|start| {
        let sole = start.settings.sole_voter();
        quorum::start(start, config.data_dir.clone(), |handle| {
            let control = brokers::BrokerControl::start(
                handle.clone(),
                view.cluster_id.clone(),
                i64::from(config.cluster.broker_session_timeout_ms),
                config.replication.unclean_leader_election_enable,
                sole,
            );
            elections::spawn_rebalance(&control, &config.replication);
            let service = to_controller::controller_service(
                control.service(),
                &controller_apis,
                &config,
                handle,
            );
            brokers = Some((control, handle.clone(), sole));
            service
        })
    }) {
        None => None,
        Some(Ok(handle)) => Some(Controller::new(handle, mutation_window)),
        Some(Err(error)) => {
            let _ = ready.send(Err(format!(
                "shard {id}: cannot start the metadata quorum: {error}"
            )));
            return;
        }
    };
    // A pure broker observes the quorum instead (`observer.rs`).
    let observed = follower.map(observer::start);
    let controller = controller.or_else(|| {
        observed
            .clone()
            .map(|handle| Controller::new(handle, mutation_window))
    });
    let (stop_tx, stop_rx) = oneshot::channel();
    let shard_count = config.shards;
    let ticking = start_tick();
    // In a task of its own, and polled on a timer (`Links::connect`): a
    // shard waiting for its peers' connections otherwise sometimes slept
    // through them.
    crate::metrics::enable(config.observability.metrics_enabled);
    steps.step(Step::ConnectingShards);
    let connecting = glommio::spawn_local(links.connect());
    let (mesh, receivers) = connecting.await;
    log::debug!("shard {id}: connected to the other shards");
    let shard = Rc::new(Shard {
        id,
        partitions: OwnedPartitions::new(config.data_dir.clone()),
        groups: GroupHost::new(config.group.clone(), id),
        transactions: TxnHost::new(config.txn.clone()),
        producer_ids: ProducerIds::default(),
        to_controller: controller
            .as_ref()
            .filter(|_| among_several)
            .map(|controller| ToController::new(&config, controller.leader_fn())),
        alter_partitions: controller.as_ref().map(|controller| {
            alter_partition::AlterPartitions::new(
                &config,
                brokers.as_ref().map(|(control, _, _)| control),
                among_several.then(|| controller.leader_fn()),
            )
        }),
        broker_control: brokers
            .as_ref()
            .map(|(control, _, _)| Rc::downgrade(control)),
        controller,
        controller_apis,
        config: config.clone(),
        view: RefCell::new(Rc::new(ShardView::new(&view, &config))),
        calls_to: (0..shard_count)
            .map(|_| Rc::new(glommio::sync::Semaphore::new(CROSS_SHARD_CALLS_MAX as u64)))
            .collect(),
        shard_count,
        mesh,
        stop: RefCell::new(Some(stop_tx)),
        in_flight_requests: Cell::new(0),
        routing: RoutingCounts::default(),
        load: ShardLoad::default(),
        replication: Replication::default(),
        to_brokers: to_broker::BrokerLinks::new(&config),
        txn_verifier: txn_verify::TxnVerifier::default(),
        jwks: Default::default(),
        tls: Default::default(),
        quotas: crate::quota::ShardQuotas::new(
            crate::quota::rate::WindowConfig::of(&config.connections),
            id,
            shard_count,
        ),
    });
    steps.step(Step::OpeningPartitions);
    for topic in view.topics.values() {
        let mine = view.local_partitions(topic, id);
        if let Err(error) = shard.partitions.open(&config, topic, &mine).await {
            let _ = ready.send(Err(format!(
                "shard {id}: cannot open partitions of {}: {:?}",
                topic.name, error.message
            )));
            return;
        }
    }
    // Before the coordinators load: a replicated log reads up to the high
    // watermark its checkpoint kept, not its log end.
    Replication::sync(&shard);
    Replication::start_ticks(&shard);
    steps.step(Step::LoadingGroups);
    if let Some(offsets) = view.topic(OFFSETS_TOPIC) {
        let mine = view.led_partitions(offsets, id);
        shard.groups.load(&shard.partitions, &mine).await;
    }
    glommio::spawn_local(groups::run_ticks(Rc::downgrade(&shard))).detach();
    steps.step(Step::LoadingTransactions);
    if let Some(states) = view.topic(TRANSACTION_STATE_TOPIC) {
        let mine = view.led_partitions(states, id);
        shard.transactions.load(&shard, &mine).await;
    }
    transactions::spawn_timers(&shard);
    quota_share::start(&shard);
    for (peer, receiver) in receivers {
        glommio::spawn_local(serve_peer(shard.clone(), peer, receiver)).detach();
    }
    // After the shards serve each other: installing a view calls them all.
    if let Some(controller) = &shard.controller {
        controller.follow(&shard);
    }
    steps.step(Step::Registering);
    // After `follow`: the registration's image is installed by it.
    // `_control` lives as long as the shard: the CONTROLLER listener's
    // hook and the expiry timer hold it only weakly.
    let (lifecycle, _control) = match brokers {
        Some((control, _, _)) if config.cluster.pure_controller() => (None, Some(control)),
        Some((control, handle, true)) => {
            let lifecycle = lifecycle::LifecycleManager::start_sole(
                Rc::clone(&control),
                handle,
                &config,
                &view.cluster_id,
            )
            .await;
            (Some(lifecycle), Some(control))
        }
        Some((control, handle, false)) => {
            let lifecycle =
                lifecycle::LifecycleManager::start_remote(handle, &config, &view.cluster_id);
            (Some(lifecycle), Some(control))
        }
        None => (
            observed.map(|handle| {
                lifecycle::LifecycleManager::start_remote(handle, &config, &view.cluster_id)
            }),
            None,
        ),
    };
    glommio::spawn_local(watch_stop(stopping, Rc::downgrade(&shard), lifecycle)).detach();
    let checkpointer = Rc::downgrade(&shard);
    let checkpoint_interval = Duration::from_millis(config.log_flush_offset_checkpoint_interval_ms);
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(checkpoint_interval).await;
            match checkpointer.upgrade() {
                Some(shard) => shard.partitions.checkpoint_all().await,
                None => break,
            }
        }
    })
    .detach();
    let expirer = Rc::downgrade(&shard);
    let expiration_interval =
        Duration::from_millis(config.producer_id_expiration_check_interval_ms);
    let expiration_ms = config.producer_id_expiration_ms;
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(expiration_interval).await;
            match expirer.upgrade() {
                Some(shard) => {
                    let now_ms = i64::try_from(crate::clock::now_ms()).unwrap_or(i64::MAX);
                    shard.partitions.expire_producers_all(now_ms, expiration_ms)
                }
                None => break,
            }
        }
    })
    .detach();
    let retainer = Rc::downgrade(&shard);
    let retention_interval = Duration::from_millis(config.log_retention_check_interval_ms);
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(retention_interval).await;
            match retainer.upgrade() {
                Some(shard) => {
                    let now_ms = i64::try_from(crate::clock::now_ms()).unwrap_or(i64::MAX);
                    shard.partitions.enforce_retention_all(now_ms).await
                }
                None => break,
            }
        }
    })
    .detach();

    if config.log_cleaner_enable {
        spawn_cleaner(&shard);
    }
    stall::spawn_watchdog(id);
    drop(ticking);
    steps.step(Step::Listening);
    log::debug!("shard {id}: started, running its service");

    service(ShardStart {
        shard: shard.clone(),
        stop: stop_rx,
        ready,
    })
    .await;

    let mut waited_ms = 0;
    while shard.in_flight_requests.get() > 0 && waited_ms < SHUTDOWN_DRAIN_MS_MAX {
        glommio::timer::sleep(Duration::from_millis(SHUTDOWN_DRAIN_POLL_MS)).await;
        waited_ms += SHUTDOWN_DRAIN_POLL_MS;
    }
    shard.partitions.close_all().await;
    shard.mesh.close();
    let routing = &shard.routing;
    log::info!(
        "shard {id}: partition parts routed: produce {} here, {} forwarded; fetch {} here, {} forwarded",
        routing.produce_here.get(),
        routing.produce_forwarded.get(),
        routing.fetch_here.get(),
        routing.fetch_forwarded.get()
    );
    let (read, written) = (
        crate::log::copy_counts(),
        crate::server::connection::write_counts(),
    );
    log::info!(
        "shard {id}: fetch bytes: {} copied from files, {} batch header bytes read, {} as file ranges; \
         written {} from memory, {} by sendfile, {} to wait for room",
        read.copied_bytes,
        read.header_bytes,
        read.file_bytes,
        written.memory_bytes,
        written.file_bytes,
        read.wait_bytes
    );
}
