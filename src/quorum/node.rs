//! One voter of the metadata quorum: TiKV's `RawNode` over the durable
//! log (`storage.rs`), the metadata image its committed entries build, and
//! the steps of a ready round, split where the caller does the IO: take a
//! round (`next_ready`: what to persist), persist it (`Persist::run`, a
//! blocking call: a synced write stalls its thread for milliseconds, so a
//! reactor runs it on its blocking pool), then finish it (`finish`: apply
//! what is committed, hand back the messages to send and the commit index
//! to persist). `run_blocking` and friends do the rounds inline, for
//! start-up, before any reactor runs.
//!
//! An entry's data is a batch of metadata records (`encode_records`), one
//! proposal each; a snapshot's data is the image's `snapshot_records` in
//! the same framing. After `snapshot_bytes` of records applied since the
//! last one, `snapshot_due` hands out the image's records to compact the
//! log to (Kafka's `metadata.log.max.record.bytes.between.snapshots`).
//!
//! Invariant: the image is the replay of the snapshot and every committed
//! entry up to `applied`, in order; nothing is applied before it is
//! persisted here, and a proposal is reported applied only with the term
//! it was proposed in.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use raft::eraftpb::{ConfState, Entry, EntryType, HardState, Message, Snapshot};
use raft::{Config, GetEntriesContext, RaftState, RawNode, StateRole, Storage};

use super::storage::{RaftLogStore, StoreError};
use crate::metadata::image::MetadataImage;
use crate::metadata::records::MetadataRecord;

/// One tick of the Raft clock: Kafka's election timeout
/// (`controller.quorum.election.timeout.ms`, 1000 by default) is that
/// many ms of these ticks (10). A leader's heartbeat goes every
/// `HEARTBEAT_TICKS` (200 ms): a Kafka follower fetches from the leader
/// continuously, so the leader's sign of life comes far more often than
/// the timeout, and several heartbeats fit in one timeout as Raft's
/// papers advise.
pub const TICK_MS: u64 = 100;
pub const HEARTBEAT_TICKS: usize = 2;

/// How a voter runs, from the broker's config.
#[derive(Debug, Clone)]
pub struct QuorumSettings {
    /// Kafka's `node.id`.
    pub node_id: i32,
    /// The node ids of `controller.quorum.voters`; empty for a plain node,
    /// which is its own one voter.
    pub voters: Vec<i32>,
    /// `controller.quorum.election.timeout.ms`.
    pub election_timeout_ms: u64,
    /// `metadata.log.max.record.bytes.between.snapshots`.
    pub snapshot_bytes: u64,
}

impl QuorumSettings {
    pub fn of(config: &crate::config::BrokerConfig) -> QuorumSettings {
        QuorumSettings {
            node_id: config.node_id,
            voters: config
                .cluster
                .quorum_voters
                .iter()
                .map(|voter| voter.id)
                .collect(),
            election_timeout_ms: u64::try_from(config.cluster.quorum_election_timeout_ms)
                .unwrap_or(0),
            snapshot_bytes: config.cluster.metadata_snapshot_bytes,
        }
    }

    /// The voter's id in raft-rs, which reserves 0 (`INVALID_ID`) where
    /// Kafka's node ids start: `node.id` + 1 (a negative id is refused by
    /// the config's checks before it gets here).
    pub fn raft_id(&self) -> u64 {
        raft_id(self.node_id)
    }

    /// The raft ids of the voters: this node alone when none are set.
    pub fn raft_voters(&self) -> Vec<u64> {
        if self.voters.is_empty() {
            return vec![self.raft_id()];
        }
        self.voters.iter().map(|&id| raft_id(id)).collect()
    }

    /// Whether this node is the quorum's only voter: it elects itself and
    /// commits alone, so start-up may do both inline.
    pub fn sole_voter(&self) -> bool {
        self.raft_voters() == [self.raft_id()]
    }

    /// The election timeout in ticks: more than a heartbeat, as raft-rs
    /// requires.
    fn election_ticks(&self) -> usize {
        let ticks = usize::try_from(self.election_timeout_ms / TICK_MS).unwrap_or(usize::MAX);
        ticks.max(HEARTBEAT_TICKS + 1)
    }
}

/// Entry bytes one append to a follower carries (at least one entry
/// whatever its size): well under a transport frame
/// (`wire::RAFT_MESSAGE_BYTES_MAX`), so a catching-up follower gets its
/// backlog in pieces each frame holds.
const APPEND_BYTES_MAX: u64 = 1024 * 1024;
/// Appends sent to a follower and not yet acknowledged: with
/// `APPEND_BYTES_MAX` each, half of a peer's outbound queue
/// (`transport::PEER_QUEUE_BYTES_MAX`), so catch-up does not overflow it.
const APPENDS_IN_FLIGHT_MAX: usize = 16;

/// raft-rs's id of Kafka's `node.id` (see `QuorumSettings::raft_id`).
pub fn raft_id(node_id: i32) -> u64 {
    u64::try_from(node_id).unwrap_or(0) + 1
}

/// Kafka's `node.id` of a raft-rs id; `describe::UNKNOWN` for raft's
/// `INVALID_ID` (0: no leader known).
pub fn node_id(raft_id: u64) -> i32 {
    raft_id
        .checked_sub(1)
        .and_then(|id| i32::try_from(id).ok())
        .unwrap_or(super::describe::UNKNOWN)
}

/// Ready rounds a voter alone needs to elect itself or commit what it
/// proposed: a handful. The bound keeps start-up from spinning forever on
/// a node that cannot (several voters, which start-up does not drive).
const START_ROUNDS_MAX: usize = 100;

#[derive(Debug)]
pub enum QuorumError {
    Store(StoreError),
    Raft(raft::Error),
    /// A proposal to a node that is not the leader, or one a new leader's
    /// log replaced before it was committed.
    NotLeader,
    /// Start-up could not elect this node or commit its proposal in
    /// `START_ROUNDS_MAX` rounds.
    NotElected,
    /// A snapshot or an entry whose records do not decode or apply.
    Corrupt(String),
}

impl std::fmt::Display for QuorumError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuorumError::Store(error) => error.fmt(f),
            QuorumError::Raft(error) => write!(f, "metadata quorum: {error}"),
            QuorumError::NotLeader => f.write_str("this node is not the metadata quorum's leader"),
            QuorumError::NotElected => f.write_str(
                "metadata quorum: this node was not elected leader of its single-voter quorum",
            ),
            QuorumError::Corrupt(what) => write!(f, "metadata log: {what}"),
        }
    }
}

impl std::error::Error for QuorumError {}

impl From<StoreError> for QuorumError {
    fn from(error: StoreError) -> QuorumError {
        QuorumError::Store(error)
    }
}

impl From<raft::Error> for QuorumError {
    fn from(error: raft::Error) -> QuorumError {
        QuorumError::Raft(error)
    }
}

/// The log store, shared by the `RawNode` (which reads it) and the
/// blocking pool's thread (which writes a round's persistence). The lock
/// is never contended: the driver does not touch the node while a round's
/// write is under way, so it only hands the store across threads.
#[derive(Clone)]
pub struct SharedLog(Arc<Mutex<RaftLogStore>>);

impl SharedLog {
    pub fn lock(&self) -> MutexGuard<'_, RaftLogStore> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Storage for SharedLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.lock().initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.lock().entries(low, high, max_size, context)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        self.lock().term(index)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.lock().first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.lock().last_index()
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        self.lock().snapshot(request_index, to)
    }
}

/// What one ready round must make durable before it is finished.
pub struct Persist {
    entries: Vec<Entry>,
    hard_state: Option<HardState>,
    snapshot: Option<Snapshot>,
}

impl Persist {
    /// Writes the round with one sync (a leader's snapshot first, when the
    /// round brings one). Blocking.
    pub fn run(&self, log: &SharedLog) -> Result<(), StoreError> {
        let mut store = log.lock();
        if let Some(snapshot) = &self.snapshot {
            store.apply_snapshot(snapshot.clone())?;
        }
        store.persist(&self.entries, self.hard_state.as_ref())
    }
}

/// A ready round taken from the node, to be finished once its `Persist`
/// is durable.
pub struct Round {
    ready: raft::Ready,
    /// A leader's snapshot the round installs, for the image.
    snapshot: Option<Snapshot>,
}

/// What a finished round leaves to the caller.
#[derive(Default)]
pub struct Finished {
    /// To send to the other voters (none while the quorum is one voter).
    pub messages: Vec<Message>,
    /// The new commit index, to persist (`RaftLogStore::set_commit`).
    pub commit: Option<u64>,
    /// Each entry applied that carried records: its index and term.
    pub applied: Vec<(u64, u64)>,
}

pub struct QuorumNode {
    raw: RawNode<SharedLog>,
    log: SharedLog,
    image: Arc<MetadataImage>,
    applied: u64,
    /// Record bytes applied since the image was last snapshot.
    bytes_since_snapshot: u64,
    snapshot_bytes: u64,
    /// The records format left for the first leader (`bootstrap_file`).
    bootstrap_extra: Vec<MetadataRecord>,
}

impl QuorumNode {
    /// Opens the log under `data_dir` as voter `node_id`, bootstrapping the
    /// configuration of `settings.voters` (this node alone when none) into a
    /// log that has none, and rebuilds the image from its snapshot and
    /// committed entries.
    pub fn open(
        data_dir: &std::path::Path,
        settings: QuorumSettings,
    ) -> Result<QuorumNode, QuorumError> {
        let node_id = settings.raft_id();
        let mut store = RaftLogStore::open(data_dir)?;
        let bootstrap_extra = super::bootstrap_file::read(data_dir)?;
        let RaftState {
            hard_state,
            conf_state,
        } = store.initial_state()?;
        if conf_state.voters.is_empty() {
            let mut voters = ConfState::default();
            voters.set_voters(settings.raft_voters());
            store.set_conf_state(&voters)?;
        }
        let snapshot = store.last_snapshot().clone();
        let mut image = image_of_records(&snapshot.data)?;
        let mut applied = snapshot.get_metadata().index;
        let committed = store.entries(
            applied + 1,
            hard_state.commit.max(applied) + 1,
            None,
            GetEntriesContext::empty(false),
        )?;
        for entry in &committed {
            apply_entry(&mut image, entry);
            applied = entry.index;
        }
        let config = Config {
            id: node_id,
            election_tick: settings.election_ticks(),
            heartbeat_tick: HEARTBEAT_TICKS,
            applied,
            // A leader that has not heard from a majority for an election
            // timeout steps down (Kafka's leader resigns after
            // `controller.quorum.fetch.timeout.ms` without fetches from a
            // majority): cut off, it stops taking proposals that could
            // never commit, and answers NOT_CONTROLLER instead.
            check_quorum: true,
            // A voter that was cut off asks before it raises the term
            // (Kafka's pre-vote, KIP-996), so healing it does not depose
            // a leader the majority kept.
            pre_vote: true,
            max_size_per_msg: APPEND_BYTES_MAX,
            max_inflight_msgs: APPENDS_IN_FLIGHT_MAX,
            ..Config::default()
        };
        config.validate()?;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let log = SharedLog(Arc::new(Mutex::new(store)));
        let raw = RawNode::new(&config, log.clone(), &logger)?;
        Ok(QuorumNode {
            raw,
            log,
            image: Arc::new(image),
            applied,
            bytes_since_snapshot: 0,
            snapshot_bytes: settings.snapshot_bytes,
            bootstrap_extra,
        })
    }

    /// What a leader of a log that lacks them proposes first
    /// (`metadata::table::bootstrap_records`), with the records format
    /// left for it (`bootstrap_file`); nothing once the log has them.
    pub fn bootstrap_records(&self) -> Vec<MetadataRecord> {
        let mut records = crate::metadata::table::bootstrap_records(self.image());
        if !records.is_empty() {
            records.extend(self.bootstrap_extra.iter().cloned());
        }
        records
    }

    /// Opens the log, elects this node its one voter and commits the
    /// bootstrap records (`metadata::table::bootstrap_records`) when the
    /// log has none yet, as Kafka's storage format writes them. Blocking.
    pub fn start_blocking(
        data_dir: &std::path::Path,
        settings: QuorumSettings,
    ) -> Result<QuorumNode, QuorumError> {
        let mut node = QuorumNode::open(data_dir, settings)?;
        node.elect_blocking()?;
        let bootstrap = node.bootstrap_records();
        if !bootstrap.is_empty() {
            node.propose_blocking(&bootstrap)?;
        }
        Ok(node)
    }

    pub fn log(&self) -> &SharedLog {
        &self.log
    }

    /// The image of every entry applied so far.
    pub fn image(&self) -> &Arc<MetadataImage> {
        &self.image
    }

    pub fn applied(&self) -> u64 {
        self.applied
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The leader's `node.id` as this node knows it, or `describe::UNKNOWN`.
    pub fn leader_id(&self) -> i32 {
        node_id(self.raw.raft.leader_id)
    }

    /// The current term (Kafka's epoch).
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// Whether this node leads and has committed an entry of its own term:
    /// only then is its image every committed record (Raft's leader
    /// commits the earlier terms' entries with its first one).
    pub fn leads_committed(&self) -> bool {
        self.is_leader()
            && self.raw.raft.commit_to_current_term()
            && self.applied >= self.raw.raft.raft_log.committed
    }

    /// The quorum as this node knows it, for DescribeQuorum. The leader
    /// reports each voter's matched index as its end offset; a follower
    /// knows only its own log, as Kafka's. `contacts` gives, per voter
    /// node id, the wall-clock ms this node last heard from it, and
    /// `caught_up` when it last matched the leader's end (`describe::UNKNOWN`
    /// where never).
    pub fn status(
        &self,
        now_ms: i64,
        contact: impl Fn(i32) -> (i64, i64),
    ) -> super::describe::QuorumStatus {
        use super::describe::{QuorumStatus, ReplicaStatus, UNKNOWN};
        let raft = &self.raw.raft;
        let local = node_id(raft.id);
        let last_index = to_offset(raft.raft_log.last_index());
        let leader = self.is_leader();
        let mut voters: Vec<ReplicaStatus> = raft
            .prs()
            .iter()
            // Every replica is a voter: shoal's quorum has no learners.
            .map(|(&id, _)| {
                let id = node_id(id);
                if id == local {
                    return ReplicaStatus {
                        id,
                        log_end_offset: last_index,
                        last_fetch_timestamp_ms: now_ms,
                        last_caught_up_timestamp_ms: now_ms,
                    };
                }
                let matched = raft
                    .prs()
                    .get(raft_id(id))
                    .filter(|_| leader)
                    .map_or(i64::from(UNKNOWN), |progress| to_offset(progress.matched));
                let (fetch_ms, caught_up_ms) = if leader {
                    contact(id)
                } else {
                    (i64::from(UNKNOWN), i64::from(UNKNOWN))
                };
                ReplicaStatus {
                    id,
                    log_end_offset: matched,
                    last_fetch_timestamp_ms: fetch_ms,
                    last_caught_up_timestamp_ms: caught_up_ms,
                }
            })
            .collect();
        voters.sort_by_key(|voter| voter.id);
        let leader_id = self.leader_id();
        QuorumStatus {
            local_id: local,
            leader_id,
            epoch: i32::try_from(raft.term).unwrap_or(i32::MAX),
            high_watermark: if leader_id == UNKNOWN {
                i64::from(UNKNOWN)
            } else {
                to_offset(raft.raft_log.committed)
            },
            voters,
            observers: Vec::new(),
        }
    }

    /// The leader's last index, for telling when a voter caught up.
    pub fn last_index(&self) -> u64 {
        self.raw.raft.raft_log.last_index()
    }

    /// What the leader knows a voter (by node id) has matched; None on a
    /// follower or for a node that is not a voter.
    pub fn matched(&self, node: i32) -> Option<u64> {
        if !self.is_leader() {
            return None;
        }
        self.raw.raft.prs().get(raft_id(node)).map(|p| p.matched)
    }

    pub fn tick(&mut self) {
        self.raw.tick();
    }

    /// A message from another voter (the transport's).
    pub fn step(&mut self, message: Message) -> Result<(), QuorumError> {
        Ok(self.raw.step(message)?)
    }

    /// Proposes `records` as one entry; returns its index and term, which
    /// `Finished::applied` reports once it is committed and applied.
    pub fn propose(&mut self, records: &[MetadataRecord]) -> Result<(u64, u64), QuorumError> {
        if !self.is_leader() {
            return Err(QuorumError::NotLeader);
        }
        self.raw
            .propose(Vec::new(), encode_records(records).to_vec())?;
        let index = self.raw.raft.raft_log.last_index();
        Ok((index, self.raw.raft.term))
    }

    /// The next ready round, if the node has one, and what it must make
    /// durable before it is finished.
    pub fn next_ready(&mut self) -> Option<(Round, Persist)> {
        if !self.raw.has_ready() {
            return None;
        }
        let ready = self.raw.ready();
        let snapshot = ready.snapshot();
        let snapshot = (snapshot.get_metadata().index > 0).then(|| snapshot.clone());
        let persist = Persist {
            entries: ready.entries().clone(),
            hard_state: ready.hs().cloned(),
            snapshot: snapshot.clone(),
        };
        Some((Round { ready, snapshot }, persist))
    }

    /// Finishes a round whose `persist` is durable: installs its snapshot,
    /// applies what it commits, and advances the node. The caller persists
    /// `commit` and then calls `advance_apply`.
    pub fn finish(&mut self, round: Round) -> Result<Finished, QuorumError> {
        let Round {
            mut ready,
            snapshot,
        } = round;
        if let Some(snapshot) = &snapshot {
            self.image = Arc::new(image_of_records(&snapshot.data)?);
            self.applied = snapshot.get_metadata().index;
            self.bytes_since_snapshot = 0;
        }
        let mut finished = Finished {
            messages: ready.take_messages(),
            ..Finished::default()
        };
        self.apply(ready.take_committed_entries(), &mut finished);
        finished.messages.extend(ready.take_persisted_messages());
        let mut light = self.raw.advance(ready);
        finished.commit = light.commit_index();
        finished.messages.extend(light.take_messages());
        self.apply(light.take_committed_entries(), &mut finished);
        Ok(finished)
    }

    pub fn advance_apply(&mut self) {
        self.raw.advance_apply();
    }

    fn apply(&mut self, entries: Vec<Entry>, finished: &mut Finished) {
        if entries.is_empty() {
            return;
        }
        let image = Arc::make_mut(&mut self.image);
        for entry in entries {
            self.applied = entry.index;
            if apply_entry(image, &entry) {
                self.bytes_since_snapshot += entry.data.len() as u64;
                finished.applied.push((entry.index, entry.term));
            }
        }
    }

    /// The index and data of a snapshot of the image, when enough record
    /// bytes were applied since the last one; the caller compacts the log
    /// to it (`RaftLogStore::compact`) and reports with `snapshot_taken`.
    pub fn snapshot_due(&self) -> Option<(u64, Bytes)> {
        (self.bytes_since_snapshot >= self.snapshot_bytes)
            .then(|| (self.applied, encode_records(&self.image.snapshot_records())))
    }

    pub fn snapshot_taken(&mut self) {
        self.bytes_since_snapshot = 0;
    }

    /// Runs ready rounds inline until the node has none: for start-up,
    /// before a reactor runs. Blocking.
    pub fn run_blocking(&mut self) -> Result<Vec<(u64, u64)>, QuorumError> {
        let mut applied = Vec::new();
        while let Some((round, persist)) = self.next_ready() {
            persist.run(&self.log)?;
            let finished = self.finish(round)?;
            if let Some(commit) = finished.commit {
                self.log.lock().set_commit(commit)?;
            }
            self.advance_apply();
            applied.extend(finished.applied);
        }
        if let Some((index, data)) = self.snapshot_due() {
            self.log.lock().compact(index, data)?;
            self.snapshot_taken();
        }
        Ok(applied)
    }

    /// Campaigns and runs rounds until this node leads and has applied its
    /// whole log: a voter alone elects itself at once. Blocking.
    pub fn elect_blocking(&mut self) -> Result<(), QuorumError> {
        self.raw.campaign()?;
        for _ in 0..START_ROUNDS_MAX {
            self.run_blocking()?;
            if self.is_leader() && self.applied >= self.raw.raft.raft_log.last_index() {
                return Ok(());
            }
        }
        Err(QuorumError::NotElected)
    }

    /// Proposes `records` and runs rounds until they are applied. Blocking.
    pub fn propose_blocking(&mut self, records: &[MetadataRecord]) -> Result<(), QuorumError> {
        let proposed = self.propose(records)?;
        for _ in 0..START_ROUNDS_MAX {
            let applied = self.run_blocking()?;
            if applied.contains(&proposed) {
                return Ok(());
            }
            if self.applied >= proposed.0 {
                return Err(QuorumError::NotLeader);
            }
        }
        Err(QuorumError::NotElected)
    }
}

/// Raft's index as Kafka's offset: entry `i` is offset `i - 1`, so an index
/// is the end offset of the log up to it (`describe::QuorumStatus`).
fn to_offset(index: u64) -> i64 {
    i64::try_from(index).unwrap_or(i64::MAX)
}

/// Applies the records of a committed entry; false for an entry with none
/// (a new leader's empty entry, a configuration change). A record that
/// does not decode or apply is logged and skipped: every voter skips it
/// alike, so their images stay equal.
fn apply_entry(image: &mut MetadataImage, entry: &Entry) -> bool {
    if entry.get_entry_type() != EntryType::EntryNormal {
        return false;
    }
    apply_records(image, entry.index, &entry.data)
}

/// Applies the records of committed entry `index` (`encode_records`'s
/// framing); false for none. A voter (`apply_entry`) and an observer
/// (`observe.rs`) apply alike, so their images stay equal.
pub fn apply_records(image: &mut MetadataImage, index: u64, data: &[u8]) -> bool {
    if data.is_empty() {
        return false;
    }
    match decode_records(data) {
        Ok(records) => {
            for record in &records {
                if let Err(error) = image.apply(record) {
                    log::error!("metadata log entry {index}: record {record:?} skipped: {error}");
                }
            }
        }
        Err(error) => log::error!("metadata log entry {index} skipped: {error}"),
    }
    true
}

/// A batch of records as an entry's (or a snapshot's) data: each record's
/// length (u32) and its bytes in Kafka's framing (`MetadataRecord::encode`).
pub fn encode_records(records: &[MetadataRecord]) -> Bytes {
    let mut buf = BytesMut::new();
    for record in records {
        let bytes = record.encode();
        buf.put_u32(bytes.len() as u32);
        buf.put_slice(&bytes);
    }
    buf.freeze()
}

pub fn decode_records(mut data: &[u8]) -> Result<Vec<MetadataRecord>, QuorumError> {
    let mut records = Vec::new();
    while data.has_remaining() {
        if data.remaining() < 4 {
            return Err(QuorumError::Corrupt("a record length cut short".into()));
        }
        let len = data.get_u32() as usize;
        if len > data.remaining() {
            return Err(QuorumError::Corrupt(format!(
                "a record of {len} bytes in {} left",
                data.remaining()
            )));
        }
        let record = MetadataRecord::decode(&data[..len])
            .map_err(|error| QuorumError::Corrupt(error.to_string()))?;
        records.push(record);
        data.advance(len);
    }
    Ok(records)
}

/// The image a snapshot's records build; a snapshot that does not replay
/// is a corrupt log (a snapshot is only ever taken of a valid image).
pub fn image_of_records(data: &[u8]) -> Result<MetadataImage, QuorumError> {
    let records = decode_records(data)?;
    MetadataImage::replay(&records)
        .map_err(|error| QuorumError::Corrupt(format!("snapshot: {error}")))
}
