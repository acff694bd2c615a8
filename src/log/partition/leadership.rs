//! Leadership of one replica of the partition: the epoch it stamps or
//! follows, and its leader-epoch cache (`epochs.rs`) with the file that
//! keeps it. A leader records `(epoch, log end)` when it takes an epoch; its
//! appends stamp the epoch into each batch (and record it, should the cache
//! lack it); a follower's `append_replicated` records each new epoch of
//! its leader's batches at their base offset. `truncate_to`, retention and
//! DeleteRecords cut the cache with the log.
//!
//! A leader deposed (`become_follower`) fails every `acks=all` append still
//! waiting for the high watermark, with `NotLeader`, at once.
//!
//! Invariant: the cache describes the log: no entry starts at or past the
//! log end but a leader's own epoch starting at it, none before the log
//! start. The file is written before the bytes of a new epoch are (the
//! writer writes it first), so after a crash it holds at least every epoch
//! the durable log holds; `open` drops the entries past the recovered end.
//! The file is replaced under `checkpoint_lock`, one writer at a time.

use std::cell::Cell;

use super::super::epochs::{self, LeaderEpochs};
use super::super::segment::Segment;
use super::super::LogError;
use super::PartitionLog;
use crate::protocol::batch::{BatchHeader, BATCH_HEADER_SIZE};

/// What this replica does with appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// Nobody said (a partition not replicated): appends as a leader, with
    /// the epoch of the checkpoint.
    Unassigned,
    Leader,
    /// Takes appends only through `append_replicated`.
    Follower,
}

/// The cache and how far its file is behind it.
#[derive(Default)]
pub(super) struct EpochState {
    pub(super) cache: std::cell::RefCell<LeaderEpochs>,
    /// Bumped at each change of `cache`.
    version: Cell<u64>,
    /// The `version` the file holds.
    written: Cell<u64>,
}

impl EpochState {
    /// Applies `change` to the cache; marks the file stale if it changed.
    pub(super) fn change(&self, change: impl FnOnce(&mut LeaderEpochs) -> bool) {
        if change(&mut self.cache.borrow_mut()) {
            self.version.set(self.version.get() + 1);
        }
    }

    pub(super) fn latest_epoch(&self) -> Option<i32> {
        self.cache.borrow().latest().map(|e| e.epoch)
    }
}

impl PartitionLog {
    /// Leads the partition at `epoch` from now on: appended batches carry
    /// it, and the cache records that it starts at the log end when it is
    /// newer than its latest entry (Kafka's `assignEpochStartOffset`). The
    /// epoch never goes back.
    pub fn become_leader(&self, epoch: i32) {
        self.take_epoch(epoch);
        self.role.set(Role::Leader);
        let log_end = self.log_end_offset();
        if self
            .epochs
            .latest_epoch()
            .is_none_or(|latest| latest < epoch)
        {
            self.epochs.change(|cache| cache.assign(epoch, log_end));
        }
    }

    /// Follows the leader of `epoch` (the `current_leader_epoch` of its
    /// fetches): appends come only through `append_replicated` from now on.
    /// A leader that becomes a follower fails its `acks=all` waits at once
    /// (`wait_for_commit`).
    pub fn become_follower(&self, epoch: i32) {
        self.take_epoch(epoch);
        if self.role.replace(Role::Follower) != Role::Follower {
            self.deposals.set(self.deposals.get() + 1);
            self.marks.progress.notify();
        }
    }

    /// `acks=all`: waits until the high watermark covers `last_offset`.
    /// Fails with `NotLeader` as soon as this replica stops leading
    /// meanwhile, even if the high watermark covered it just before (Kafka
    /// completes its delayed produces so: what it knew as leader no longer
    /// counts, and the producer retries at the new leader).
    pub(super) async fn wait_for_commit(
        &self,
        given_up: impl Fn(&Self) -> bool,
        last_offset: i64,
    ) -> Result<(), LogError> {
        let deposals = self.deposals.get();
        let deposed = |log: &Self| log.deposals.get() != deposals;
        self.wait_until(|log| given_up(log) || deposed(log) || log.high_watermark() > last_offset)
            .await?;
        if given_up(self) {
            return Err(LogError::WriteFailed(
                self.writer.last_write_error.borrow().clone(),
            ));
        }
        match deposed(self) {
            true => Err(LogError::NotLeader),
            false => Ok(()),
        }
    }

    fn take_epoch(&self, epoch: i32) {
        assert!(
            epoch >= 0 && epoch >= self.leader_epoch.get(),
            "leader epoch {} -> {epoch}: it never goes back",
            self.leader_epoch.get()
        );
        self.leader_epoch.set(epoch);
    }

    /// The newest epoch in the log's cache: a follower's LastFetchedEpoch.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// OffsetForLeaderEpoch (see `LeaderEpochs::end_offset_for`): `None` is
    /// UNDEFINED_EPOCH with UNDEFINED_EPOCH_OFFSET.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.epochs
            .cache
            .borrow()
            .end_offset_for(epoch, self.log_end_offset())
    }

    /// The epoch of the batch holding `offset`, as the cache has it.
    pub fn epoch_at(&self, offset: i64) -> Option<i32> {
        self.epochs.cache.borrow().epoch_at(offset)
    }

    /// The cache's entries, oldest first, as (epoch, start offset).
    pub fn leader_epochs(&self) -> Vec<(i32, i64)> {
        let cache = self.epochs.cache.borrow();
        cache
            .entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    /// A client append takes offsets from `base_offset` with the current
    /// epoch: fails on a follower; records the epoch if the cache lacks it.
    pub(super) fn epoch_for_append(&self, base_offset: i64) -> Result<i32, LogError> {
        if self.role.get() == Role::Follower {
            return Err(LogError::NotLeader);
        }
        let epoch = self.leader_epoch.get();
        if self.epochs.latest_epoch() != Some(epoch) {
            self.epochs.change(|cache| cache.assign(epoch, base_offset));
        }
        Ok(epoch)
    }

    /// The log ends at `end` now (a given-up write, `truncate_to`): the
    /// entries from there go, but a leader keeps its own epoch at the end.
    pub(super) fn cut_epochs(&self, end: i64) {
        self.epochs.change(|cache| cache.truncate_from_end(end));
        if self.role.get() == Role::Leader {
            let epoch = self.leader_epoch.get();
            if self
                .epochs
                .latest_epoch()
                .is_none_or(|latest| latest < epoch)
            {
                self.epochs.change(|cache| cache.assign(epoch, end));
            }
        }
    }

    /// The log starts at `start` now (retention, DeleteRecords).
    pub(super) fn start_epochs_at(&self, start: i64) {
        self.epochs.change(|cache| cache.truncate_from_start(start));
    }

    /// Writes the file if the cache changed since it was last written.
    pub(super) async fn write_epochs(&self) -> Result<(), LogError> {
        if self.epochs.version.get() == self.epochs.written.get() {
            return Ok(());
        }
        let _permit = self.checkpoint_lock.acquire_permit(1).await?;
        let version = self.epochs.version.get();
        if version == self.epochs.written.get() {
            return Ok(());
        }
        let cache = self.epochs.cache.borrow().clone();
        epochs::write(&self.dir, &cache).await?;
        // Later changes bumped `version` again and stay to be written.
        self.epochs
            .written
            .set(version.max(self.epochs.written.get()));
        Ok(())
    }

    /// At `open`: the file cut to the recovered log, or, without one (a
    /// log from before leader epochs were kept), the cache rebuilt from
    /// the batches' `partitionLeaderEpoch` (`rebuild_epochs`).
    pub(super) async fn load_epochs(&self) -> Result<(), LogError> {
        let (log_start, log_end) = (self.log_start_offset(), self.log_end_offset());
        let loaded = epochs::read(&self.dir).await?;
        let found = loaded.is_some();
        *self.epochs.cache.borrow_mut() = loaded.unwrap_or_default();
        if !found {
            self.rebuild_epochs().await?;
        }
        self.epochs.change(|cache| cache.truncate_from_end(log_end));
        self.epochs
            .change(|cache| cache.truncate_from_start(log_start));
        if let Some(latest) = self.epochs.latest_epoch() {
            self.leader_epoch.set(self.leader_epoch.get().max(latest));
        }
        self.write_epochs().await
    }

    /// One segment at a time: when its first and last batches carry the
    /// same epoch, every batch between does (epochs never go back in a
    /// log), so two header reads stand for the whole segment; only a
    /// segment where the epoch changes is walked batch by batch, one
    /// header read each. A log from before epochs were kept (one epoch
    /// throughout) costs two reads per segment.
    async fn rebuild_epochs(&self) -> Result<(), LogError> {
        let segments = self.segments.borrow().clone();
        for segment in segments {
            let last_position = segment.indexes.borrow().last_batch_position();
            let Some(last_position) = last_position else {
                continue;
            };
            let (first_base, first_epoch, _) = batch_epoch_at(&segment, 0).await?;
            let (_, last_epoch, _) = batch_epoch_at(&segment, u64::from(last_position)).await?;
            if first_epoch == last_epoch {
                self.rebuilt_epoch(first_epoch, first_base);
                continue;
            }
            let mut position = 0;
            while position < segment.written_bytes.get() {
                let (base, epoch, size) = batch_epoch_at(&segment, position).await?;
                self.rebuilt_epoch(epoch, base);
                position += size;
            }
        }
        Ok(())
    }

    /// The rebuild found `epoch` from `base` on.
    fn rebuilt_epoch(&self, epoch: i32, base: i64) {
        if epoch >= 0
            && self
                .epochs
                .latest_epoch()
                .is_none_or(|latest| latest < epoch)
        {
            self.epochs.change(|cache| cache.assign(epoch, base));
        }
    }
}

/// The base offset, leader epoch and size of the batch at `position` in
/// `segment` (recovered: its batches were checked at open or before).
async fn batch_epoch_at(segment: &Segment, position: u64) -> Result<(i64, i32, u64), LogError> {
    let header = segment.read_exact(position, BATCH_HEADER_SIZE).await?;
    let header =
        BatchHeader::view(&header).ok_or_else(|| segment.corrupt(position, "no batch header"))?;
    let size = u64::try_from(header.total_size())
        .ok()
        .filter(|&size| size >= BATCH_HEADER_SIZE as u64)
        .ok_or_else(|| segment.corrupt(position, "batch size"))?;
    Ok((
        header.base_offset.get(),
        header.partition_leader_epoch.get(),
        size,
    ))
}
