//! The metadata controller as `CONTROLLER_SHARD` runs it: the pure decisions
//! of `metadata::controller`, carried out. For each admin request it takes
//! the plan (partitions placed over the brokers the latest image
//! registers), has the owner shards open the partitions this node hosts,
//! turns the plan's topic table into metadata records (`metadata::table`),
//! proposes them to the quorum as one entry (`quorum.rs`), and once they
//! are committed and applied installs the table the image holds on every
//! shard, and only then answers. Owner shards apply a topic's new configs
//! to its open logs when the snapshot arrives
//! (`OwnedPartitions::reconfigure`).
//!
//! On a node that is not the quorum's leader every change is answered
//! NOT_CONTROLLER (until admin requests are forwarded to the leader, as
//! Kafka's brokers do). What the leader commits reaches every other voter
//! through the log: `follow` installs each applied image's table on every
//! shard, in log order, whoever proposed it. Every install, the leader's
//! and the followers', first removes the partitions of topics the image
//! no longer holds and opens those it newly places on this node
//! (`install` says why in that order). The first install holding this
//! process's broker registration also deletes the stray replicas the data
//! directory holds (`strays.rs`). Each shard moves its group and
//! transaction coordinators with the leadership the installed view gives
//! (`Shard::follow_coordinators`).
//!
//! Invariant: changes and installs are serialized (one at a time, under
//! `changes`); a change is answered only after it is committed to the
//! metadata log and installed on every shard; an install never goes back
//! to an older index (`installed`); a view is installed only once its
//! partitions on this node are open.

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use glommio::sync::Semaphore;
use kafka_protocol::error::ResponseError;

use super::messages::{
    KafkaError, NewTopic, PartitionGrowth, ShardReply, ShardRequest, TopicConfigChange,
    TopicPartition, TopicRef,
};
use super::quorum::{Applied, AppliedBell, ProposeError, QuorumHandle};
use super::{dynamic_tls, strays, Shard};
use crate::log::volume_bytes;
use crate::metadata::broker_configs::{self, BrokerConfigChange};
use crate::metadata::controller::{self, placement_brokers, unavailable, PartitionQuota, Plan};
use crate::metadata::image::MetadataImage;
use crate::metadata::producer_ids::{self, ProducerIdBlock};
use crate::metadata::quotas::{self, QuotaAlteration, QuotaResult};
use crate::metadata::records::MetadataRecord;
use crate::metadata::scram::{self, ScramChange, ScramResult};
use crate::metadata::table;
use crate::metadata::{ClusterView, TopicMeta};
use crate::quorum::channel::LeaderFn;
use crate::quorum::describe::QuorumStatus;
use crate::quota::mutation::{MutationQuotas, Mutator};
use crate::quota::rate::WindowConfig;
use crate::quota::{self, QuotaKind};

#[path = "acls.rs"]
mod acls;
#[path = "reassign.rs"]
mod reassign;

/// Free bytes below which the disk counts as full for a deletion: room for
/// a few metadata log frames (a removal, a hard state, a commit) with a
/// filesystem block to spare.
const DISK_FULL_BYTES: u64 = 64 * 1024;

pub struct Controller {
    /// One metadata change at a time: creation awaits partition opens on
    /// other shards, and two changes must not interleave.
    changes: Semaphore,
    quorum: QuorumHandle,
    /// The log index of the image whose table every shard has.
    installed: Cell<u64>,
    /// The quorum leader every shard reports.
    installed_leader: Cell<Option<i32>>,
    /// Whether this process swept its stray replicas (`strays.rs`).
    strays_swept: Cell<bool>,
    /// The controller mutation quota's buckets (KIP-599): the active
    /// controller carries out every mutation, so it alone measures them.
    mutations: RefCell<MutationQuotas>,
    /// The dynamic TLS settings this node applied (`dynamic_tls.rs`).
    tls: dynamic_tls::Applier,
}

impl Controller {
    /// `window`: `controller.quota.window.*` (`quota::mutation`).
    pub fn new(quorum: QuorumHandle, window: WindowConfig) -> Controller {
        let installed = Cell::new(quorum.latest().index);
        Controller {
            mutations: RefCell::new(MutationQuotas::new(window)),
            changes: Semaphore::new(1),
            installed_leader: Cell::new(quorum.quorum_leader()),
            strays_swept: Cell::new(false),
            tls: dynamic_tls::Applier::default(),
            quorum,
            installed,
        }
    }

    /// Whether this node leads the quorum and may take changes now.
    pub fn leads(&self) -> bool {
        self.quorum.leads()
    }

    /// The quorum's status, for DescribeQuorum: none on a pure broker.
    pub fn quorum_status(&self) -> Option<QuorumStatus> {
        self.quorum.status()
    }

    /// The quorum leader this node knows, for its way to the controller
    /// (`to_controller`): none for a lone voter, or while none is known.
    pub fn leader_fn(&self) -> LeaderFn {
        let quorum = self.quorum.clone();
        Rc::new(move || quorum.quorum_leader().filter(|&id| id >= 0))
    }

    /// Starts the task that installs on every shard the table of each
    /// image the quorum applies (the entries other nodes' leaders commit);
    /// it ends with the shard.
    pub fn follow(&self, shard: &Rc<Shard>) {
        glommio::spawn_local(follow(Rc::downgrade(shard), self.quorum.applied_bell())).detach();
    }

    /// Installs the newest image's table if the shards lag behind it (a
    /// leader's plan is made from the installed view, and `follow` may
    /// not have installed the last entries of the leader before it).
    async fn catch_up(&self, shard: &Rc<Shard>) {
        let latest = self.quorum.latest();
        if latest.index > self.installed.get() {
            self.install(shard, Some(&latest)).await;
        }
    }

    /// Installs on every shard the view of `applied`'s image (none: the
    /// installed view's topics and brokers), naming as the controller the
    /// quorum leader as this node knows it now.
    ///
    /// Before the view goes out, the partitions of topics the image no
    /// longer holds are removed, then the partitions it newly gives this
    /// node are opened. Opens first: a view names this node the leader
    /// only of partitions its shards have open, so a produce or fetch
    /// never gets UNKNOWN_TOPIC_OR_PARTITION for a partition that exists
    /// (until the view arrives it gets the old view's answer, a retriable
    /// UNKNOWN_TOPIC_OR_PARTITION from metadata or NOT_LEADER_OR_FOLLOWER).
    /// Removals before opens: a topic deleted and re-created under its
    /// name between two installs is opened fresh, never on its
    /// predecessor's log; meanwhile requests for the deleted topic find no
    /// log, UNKNOWN_TOPIC_OR_PARTITION, as the committed image has it.
    /// An open that fails is logged (the partition stays offline here:
    /// a committed image cannot be refused). Partitions a reassignment
    /// took from this node are deleted after the view is out, once the
    /// shards stopped following them (`departing_in`).
    async fn install(&self, shard: &Rc<Shard>, applied: Option<&Applied>) {
        let leader = self.quorum.quorum_leader();
        let installed = shard.view();
        let mut view = match applied {
            Some(applied) => installed.with_image(&applied.image),
            None => ClusterView::clone(&installed),
        };
        view.controller_node_id = leader.unwrap_or(view.node_id);
        for meta in installed.removed_in(&view) {
            delete_partitions(shard, &installed, &meta).await;
        }
        for (meta, partitions) in installed.arriving_in(&view) {
            if let Err(error) = open_partitions(shard, &view, &meta, partitions).await {
                log::error!(
                    "opening the partitions of {} this node hosts: {:?}",
                    meta.name,
                    error.message
                );
            }
        }
        let departing = installed.departing_in(&view);
        let view = Arc::new(view);
        shard
            .broadcast(|| ShardRequest::InstallView(view.clone()))
            .await;
        // After the install: the shards stopped following them first.
        for (meta, partitions) in departing {
            delete_hosted(shard, &installed, &meta, partitions).await;
        }
        // Once, at the first view with this incarnation's registration.
        if !self.strays_swept.get() && shard.replication.holds_own_registration(&view) {
            self.strays_swept.set(true);
            strays::sweep(shard, &view).await;
        }
        if let Some(applied) = applied {
            self.installed.set(self.installed.get().max(applied.index));
            // The dynamic broker configs addressed to this node.
            self.tls.follow(shard, &applied.image).await;
        }
        self.installed_leader.set(leader);
    }

    /// Runs `plan` with the controller mutation quota of `mutator` (none,
    /// or no `controller_mutation_rate` in the image: unbounded); the plan
    /// and its answer's throttle time.
    fn within_quota<T>(
        &self,
        view: &ClusterView,
        mutator: Option<&Mutator>,
        plan: impl FnOnce(PartitionQuota<'_>) -> T,
    ) -> (T, u64) {
        let measured = view.quotas.has_key(QuotaKind::ControllerMutation.key());
        let Some(mutator) = mutator.filter(|_| measured) else {
            return (plan(&mut |_| Ok(())), 0);
        };
        let mut buckets = self.mutations.borrow_mut();
        let mut request = buckets.request(&view.quotas, mutator, quota::now_ms());
        let planned = plan(&mut |partitions| {
            request
                .record(partitions, quota::now_ms())
                .map_err(|_| throttled())
        });
        (planned, request.throttle_ms(quota::now_ms()))
    }

    /// CreateTopics; the results and the throttle time of `mutator`'s
    /// quota.
    pub async fn create_topics(
        &self,
        shard: &Rc<Shard>,
        topics: Vec<NewTopic>,
        mutator: Option<Mutator>,
    ) -> (Vec<Result<Arc<TopicMeta>, KafkaError>>, u64) {
        let Ok(_change) = self.changes.acquire_permit(1).await else {
            return (unavailable(topics.len()), 0);
        };
        if !self.quorum.leads() {
            return (not_controller(topics.len()), 0);
        }
        self.catch_up(shard).await;
        let view = shard.view();
        let brokers = placement_brokers(&self.quorum.latest().image, lone_broker(shard));
        let (plan, throttle_ms) = self.within_quota(&view, mutator.as_ref(), |quota| {
            controller::create_topics(
                &shard.config,
                &view,
                &brokers,
                topics,
                placement_seed,
                uuid::Uuid::new_v4,
                quota,
            )
        });
        (self.carry_out(shard, plan).await, throttle_ms)
    }

    /// DeleteTopics; the results and the throttle time of `mutator`'s
    /// quota.
    pub async fn delete_topics(
        &self,
        shard: &Rc<Shard>,
        topics: Vec<TopicRef>,
        mutator: Option<Mutator>,
    ) -> (Vec<Result<(String, uuid::Uuid), KafkaError>>, u64) {
        let Ok(_change) = self.changes.acquire_permit(1).await else {
            return (unavailable(topics.len()), 0);
        };
        if !self.quorum.leads() {
            return (not_controller(topics.len()), 0);
        }
        self.catch_up(shard).await;
        let view = shard.view();
        let (plan, throttle_ms) = self.within_quota(&view, mutator.as_ref(), |quota| {
            controller::delete_topics(&view, topics, quota)
        });
        (self.delete_planned(shard, &view, plan).await, throttle_ms)
    }

    /// Carries out a deletion plan made from `view`.
    async fn delete_planned(
        &self,
        shard: &Rc<Shard>,
        view: &ClusterView,
        mut plan: Plan<(String, uuid::Uuid)>,
    ) -> Vec<Result<(String, uuid::Uuid), KafkaError>> {
        if !plan.changes_table() {
            return plan.results;
        }
        if disk_full(&shard.config.data_dir) {
            // Deleting a topic is how a full disk gets room again, yet the
            // records that forget it need a little room first, and a
            // metadata log write that fails stops the quorum. So the data
            // goes first here; a crash before the removal is committed
            // brings these topics back, empty, and a second delete
            // finishes them.
            let names: Vec<&str> = plan.delete.iter().map(|meta| meta.name.as_str()).collect();
            log::warn!("disk full: deleting the data of {names:?} before the topic table");
            for meta in &plan.delete {
                delete_partitions(shard, view, meta).await;
            }
        }
        // Otherwise the install removes them (after the commit: a crash
        // before it keeps the topics whole).
        let Some(applied) = self.commit(shard, &mut plan).await else {
            return plan.results;
        };
        self.install(shard, Some(&applied)).await;
        plan.results
    }

    /// Applies config changes (IncrementalAlterConfigs, AlterConfigs) to
    /// topics: persisted and broadcast unless `validate_only`.
    pub async fn alter_topic_configs(
        &self,
        shard: &Rc<Shard>,
        changes: Vec<TopicConfigChange>,
    ) -> Vec<Result<(), KafkaError>> {
        let Ok(_change) = self.changes.acquire_permit(1).await else {
            return unavailable(changes.len());
        };
        if !self.quorum.leads() {
            return not_controller(changes.len());
        }
        self.catch_up(shard).await;
        let plan = controller::alter_topic_configs(&shard.config, &shard.view(), changes);
        self.carry_out(shard, plan).await
    }

    /// CreatePartitions: grows topics to the partition counts asked for,
    /// has the owners open the new partitions, then persists and
    /// broadcasts; the results and the throttle time of `mutator`'s quota.
    pub async fn create_partitions(
        &self,
        shard: &Rc<Shard>,
        growths: Vec<PartitionGrowth>,
        mutator: Option<Mutator>,
    ) -> (Vec<Result<(), KafkaError>>, u64) {
        let Ok(_change) = self.changes.acquire_permit(1).await else {
            return (unavailable(growths.len()), 0);
        };
        if !self.quorum.leads() {
            return (not_controller(growths.len()), 0);
        }
        self.catch_up(shard).await;
        let view = shard.view();
        let brokers = placement_brokers(&self.quorum.latest().image, lone_broker(shard));
        let (plan, throttle_ms) = self.within_quota(&view, mutator.as_ref(), |quota| {
            controller::create_partitions(&view, &brokers, growths, placement_seed, quota)
        });
        (self.carry_out(shard, plan).await, throttle_ms)
    }

    /// A block of producer ids for broker `broker_id`: its
    /// `ProducerIdsRecord`, made from the committed image, is committed
    /// before it is handed out. Serialized with the other changes, so two
    /// blocks are never made from the same image. Another node's request
    /// (AllocateProducerIds) names its broker epoch, which must be its
    /// registration's (STALE_BROKER_EPOCH, as Kafka); this node's own
    /// shards name none.
    pub async fn allocate_producer_ids(
        &self,
        broker_id: i32,
        broker_epoch: Option<i64>,
    ) -> Result<ProducerIdBlock, KafkaError> {
        let unavailable = |reason: String| {
            KafkaError::with_message(ResponseError::CoordinatorNotAvailable, reason)
        };
        let Ok(_change) = self.changes.acquire_permit(1).await else {
            return Err(unavailable("the controller is stopping".into()));
        };
        if !self.quorum.leads() {
            return Err(KafkaError::new(ResponseError::NotController));
        }
        let outcome = Rc::new(RefCell::new(None));
        let made = outcome.clone();
        let make = move |image: &MetadataImage| {
            let (block, records) = block_for(image, broker_id, broker_epoch);
            *made.borrow_mut() = Some(block);
            records
        };
        match self.quorum.propose(Box::new(make)).await {
            Ok(_) => outcome
                .take()
                .unwrap_or_else(|| Err(unavailable("the producer id block was not made".into()))),
            Err(ProposeError::NotController) => Err(KafkaError::new(ResponseError::NotController)),
            Err(error) => {
                log::error!("producer ids: cannot commit the next block: {error}");
                Err(unavailable(format!(
                    "producer ids cannot be persisted: {error}"
                )))
            }
        }
    }

    /// Commits the records `decide` makes from the committed image, under
    /// the one-change-at-a-time permit and only while this node leads, and
    /// installs the image they leave before answering: `count` results,
    /// those that succeeded failed with the reason when nothing could be
    /// committed (AlterPartitionReassignments, CreateAcls, DeleteAcls).
    async fn commit_decision<R: 'static>(
        &self,
        shard: &Rc<Shard>,
        count: usize,
        decide: impl FnOnce(&MetadataImage) -> (Vec<MetadataRecord>, Vec<Result<R, KafkaError>>)
            + 'static,
    ) -> Vec<Result<R, KafkaError>> {
        let Ok(_change) = self.changes.acquire_permit(1).await else {
            return unavailable(count);
        };
        if !self.quorum.leads() {
            return not_controller(count);
        }
        let outcomes: Rc<RefCell<Vec<Result<R, KafkaError>>>> = Rc::default();
        let made = Rc::clone(&outcomes);
        let make = move |image: &MetadataImage| {
            let (records, results) = decide(image);
            *made.borrow_mut() = results;
            records
        };
        let committed = self.quorum.propose(Box::new(make)).await;
        let mut results = outcomes.take();
        if results.len() != count {
            return not_controller(count);
        }
        match committed {
            Ok(applied) => self.install(shard, Some(&applied)).await,
            Err(error) => {
                let error = match error {
                    ProposeError::NotController => ResponseError::NotController,
                    ProposeError::TimedOut => ResponseError::RequestTimedOut,
                    ProposeError::Failed(_) => ResponseError::UnknownServerError,
                };
                fail_succeeded(&mut results, error);
            }
        }
        results
    }

    /// AlterUserScramCredentials: the records Kafka's rules make of the
    /// changes against the committed image (`metadata::scram::alter`),
    /// committed and installed on every shard before the answer, so a
    /// client authenticates with a new credential on any shard at once.
    pub async fn alter_scram(
        &self,
        shard: &Rc<Shard>,
        changes: Vec<ScramChange>,
    ) -> Result<Vec<ScramResult>, KafkaError> {
        self.decide_and_commit(shard, "SCRAM credentials", move |image| {
            scram::alter(&image.scram, &changes)
        })
        .await
    }

    /// AlterConfigs and IncrementalAlterConfigs on BROKER resources,
    /// checked by the handler: their ConfigRecords committed together and
    /// installed (this node applying those addressed to it) before the
    /// answer; the other brokers apply theirs as the records reach them.
    pub async fn alter_broker_configs(
        &self,
        shard: &Rc<Shard>,
        changes: Vec<BrokerConfigChange>,
    ) -> Vec<Result<(), KafkaError>> {
        let count = changes.len();
        let committed = self
            .decide_and_commit(shard, "broker configs", move |image| {
                (broker_configs::alter(&image.broker_configs(), &changes), ())
            })
            .await;
        match committed {
            Ok(()) => (0..count).map(|_| Ok(())).collect(),
            Err(error) => (0..count).map(|_| Err(error.clone())).collect(),
        }
    }

    /// AlterClientQuotas: the records Kafka's rules make of the entries
    /// against the committed image (`metadata::quotas::alter`), committed
    /// and installed on every shard before the answer, so the quota holds
    /// on every shard at once.
    pub async fn alter_quotas(
        &self,
        shard: &Rc<Shard>,
        alterations: Vec<QuotaAlteration>,
    ) -> Result<Vec<QuotaResult>, KafkaError> {
        self.decide_and_commit(shard, "client quotas", move |image| {
            quotas::alter(&image.quotas, &alterations)
        })
        .await
    }

    /// Commits the records `decide` makes of the committed image, installs
    /// them on every shard, and returns what `decide` answered; `what`
    /// names the change in a log line if the commit fails.
    async fn decide_and_commit<R: 'static>(
        &self,
        shard: &Rc<Shard>,
        what: &str,
        decide: impl FnOnce(&MetadataImage) -> (Vec<MetadataRecord>, R) + 'static,
    ) -> Result<R, KafkaError> {
        let Ok(_change) = self.changes.acquire_permit(1).await else {
            return Err(KafkaError::new(ResponseError::CoordinatorNotAvailable));
        };
        if !self.quorum.leads() {
            return Err(KafkaError::new(ResponseError::NotController));
        }
        let outcome = Rc::new(RefCell::new(None));
        let made = outcome.clone();
        let make = move |image: &MetadataImage| {
            let (records, results) = decide(image);
            *made.borrow_mut() = Some(results);
            records
        };
        match self.quorum.propose(Box::new(make)).await {
            Ok(applied) => {
                self.install(shard, Some(&applied)).await;
                outcome
                    .take()
                    .ok_or_else(|| KafkaError::new(ResponseError::UnknownServerError))
            }
            Err(ProposeError::NotController) => Err(KafkaError::new(ResponseError::NotController)),
            Err(ProposeError::TimedOut) => Err(KafkaError::new(ResponseError::RequestTimedOut)),
            Err(error) => {
                log::error!("{what}: cannot commit the change: {error}");
                Err(KafkaError::new(ResponseError::UnknownServerError))
            }
        }
    }

    /// Has the owners open the partitions `plan` adds on this node (a
    /// topic whose opens fail goes back to what it was), then commits the
    /// table and installs it on every shard. When the commit fails nothing
    /// is installed and the successful results become storage errors.
    async fn carry_out<T>(
        &self,
        shard: &Rc<Shard>,
        mut plan: Plan<T>,
    ) -> Vec<Result<T, KafkaError>> {
        if !plan.changes_table() {
            return plan.results;
        }
        let view = shard.view();
        for (index, meta) in plan.open.clone() {
            let partitions = 0..meta.partitions;
            if let Err(error) = open_partitions(shard, &view, &meta, partitions).await {
                log::error!(
                    "opening the partitions of {}: {:?}",
                    meta.name,
                    error.message
                );
                plan.open_failed(index, view.topic(&meta.name).cloned(), error);
            }
        }
        let Some(applied) = self.commit(shard, &mut plan).await else {
            return plan.results;
        };
        self.install(shard, Some(&applied)).await;
        plan.results
    }

    /// Commits the records that make the image's table `plan.table`, and
    /// returns what the quorum then applied; None when the quorum did not
    /// commit them (the plan's results say why).
    async fn commit<T>(&self, shard: &Rc<Shard>, plan: &mut Plan<T>) -> Option<Applied> {
        let (node_id, shard_count) = (shard.view().node_id, shard.count());
        let wanted = plan.table.clone();
        let make = move |image: &_| table::changes(image, &wanted, node_id, shard_count);
        match self.quorum.propose(Box::new(make)).await {
            Ok(applied) => Some(applied),
            Err(ProposeError::NotController) => {
                fail_succeeded(&mut plan.results, ResponseError::NotController);
                None
            }
            Err(ProposeError::TimedOut) => {
                fail_succeeded(&mut plan.results, ResponseError::RequestTimedOut);
                None
            }
            Err(error) => {
                log::error!("cannot commit topic metadata: {error}");
                plan.save_failed(&error.to_string());
                None
            }
        }
    }
}

/// Every result NOT_CONTROLLER (Kafka's code 41): this node does not lead
/// the quorum; the client looks for the controller again and retries.
fn not_controller<T>(count: usize) -> Vec<Result<T, KafkaError>> {
    (0..count)
        .map(|_| Err(KafkaError::new(ResponseError::NotController)))
        .collect()
}

/// A topic refused by the controller mutation quota, with Kafka's message.
fn throttled() -> KafkaError {
    KafkaError::with_message(
        ResponseError::ThrottlingQuotaExceeded,
        "The throttling quota has been exceeded.".to_string(),
    )
}

/// Turns each result that succeeded so far into `error`: the change they
/// belong to was not committed.
fn fail_succeeded<T>(results: &mut [Result<T, KafkaError>], error: ResponseError) {
    for result in results.iter_mut().filter(|result| result.is_ok()) {
        *result = Err(KafkaError::new(error));
    }
}

/// Installs the table of each image the quorum applies past what is
/// installed, one at a time with the local changes. Holds the shard only
/// while it installs, so the shard's end ends the quorum's task and then
/// this one.
async fn follow(shard: Weak<Shard>, applied: AppliedBell) {
    // The dynamic broker configs of the image this node starts from (the
    // metadata log replayed or its snapshot), before any new entry.
    if let Some(shard) = shard.upgrade() {
        if let Some(controller) = &shard.controller {
            if let Ok(_change) = controller.changes.acquire_permit(1).await {
                let image = controller.quorum.latest().image;
                controller.tls.follow(&shard, &image).await;
            }
        }
    }
    while applied.recv().await.is_some() {
        let Some(shard) = shard.upgrade() else {
            return;
        };
        let Some(controller) = &shard.controller else {
            return;
        };
        let Ok(_change) = controller.changes.acquire_permit(1).await else {
            return;
        };
        let latest = controller.quorum.latest();
        if latest.index > controller.installed.get() {
            controller.install(&shard, Some(&latest)).await;
        } else if controller.quorum.quorum_leader() != controller.installed_leader.get() {
            controller.install(&shard, None).await;
        }
    }
}

/// This node's id when it is the quorum's lone voter and a broker too:
/// the one node placement may use before any broker registers
/// (`placement_brokers` says why).
fn lone_broker(shard: &Shard) -> Option<i32> {
    let cluster = &shard.config.cluster;
    (cluster.quorum_voters.len() <= 1 && !cluster.pure_controller()).then_some(shard.config.node_id)
}

/// Whether the data directory's filesystem has less than `DISK_FULL_BYTES`
/// free (for an unprivileged writer); false when that cannot be read.
fn disk_full(data_dir: &Path) -> bool {
    volume_bytes(data_dir).is_some_and(|volume| volume.usable < DISK_FULL_BYTES)
}

/// A fresh seed for the replica placer, per request (Kafka's controller
/// draws from one `Random` for its life): from the generator topic ids
/// come from.
fn placement_seed() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

/// Has the owner shards (per `view`, which still holds the topic) close and
/// remove every partition of `meta` this node hosts; those already gone
/// are skipped.
async fn delete_partitions(shard: &Rc<Shard>, view: &ClusterView, meta: &TopicMeta) {
    delete_hosted(shard, view, meta, 0..meta.partitions).await;
}

/// Has the owner shards (per `view`) close and remove those of
/// `partitions` of `meta` this node hosts in `view`.
async fn delete_hosted(
    shard: &Rc<Shard>,
    view: &ClusterView,
    meta: &TopicMeta,
    partitions: impl IntoIterator<Item = i32>,
) {
    for (owner, partitions) in view.hosted_by_owner(meta, partitions) {
        let partitions = partitions
            .into_iter()
            .map(|partition| TopicPartition::new(&meta.name, partition))
            .collect();
        shard
            .call(owner, ShardRequest::DeletePartitions(partitions))
            .await;
    }
}

/// Has the owners (per `meta`'s placement) open those of `partitions` of
/// `meta` that this node hosts and they do not have open yet.
async fn open_partitions(
    shard: &Rc<Shard>,
    view: &ClusterView,
    meta: &Arc<TopicMeta>,
    partitions: impl IntoIterator<Item = i32>,
) -> Result<(), KafkaError> {
    for (owner, partitions) in view.hosted_by_owner(meta, partitions) {
        let request = ShardRequest::OpenPartitions {
            topic: meta.clone(),
            partitions,
        };
        if let ShardReply::Failed(error) = shard.call(owner, request).await {
            return Err(error);
        }
    }
    Ok(())
}

/// The next block of `image` for `broker_id` and the records to commit
/// for it (none when it is refused).
fn block_for(
    image: &MetadataImage,
    broker_id: i32,
    broker_epoch: Option<i64>,
) -> (Result<ProducerIdBlock, KafkaError>, Vec<MetadataRecord>) {
    if let Some(epoch) = broker_epoch {
        let registered = image
            .brokers
            .get(&broker_id)
            .map(|record| record.broker_epoch);
        if registered != Some(epoch) {
            let error = KafkaError::with_message(
                ResponseError::StaleBrokerEpoch,
                format!("broker {broker_id} is not registered at epoch {epoch}"),
            );
            return (Err(error), Vec::new());
        }
    }
    let epoch = broker_epoch.unwrap_or(-1);
    match producer_ids::next_block(image.next_producer_id, broker_id, epoch) {
        Some((block, record)) => (Ok(block), vec![record]),
        None => {
            let error = KafkaError::with_message(
                ResponseError::UnknownServerError,
                "producer ids are used up".into(),
            );
            (Err(error), Vec::new())
        }
    }
}
