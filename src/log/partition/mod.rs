//! [`PartitionLog`]: one partition's log on its owner shard. This file is
//! its front: what it owns, opening, the state getters the broker reads,
//! configuration, checkpoints and close. Each concern is a file beside it:
//!
//! - `append.rs`: offsets assigned and header copies patched, indexes and
//!   tail cache updated, bytes queued, all without an `.await`.
//! - `writer.rs`: the group-commit writer task (one `write_at` per segment
//!   per group, seals, fdatasync per the flush policy, the high watermark),
//!   and giving up the unwritten tail after a failed write.
//! - `tail.rs`: the tail cache of the newest batches.
//! - `read.rs`: reads from the tail cache or the segment files.
//! - `retention.rs`: retention and DeleteRecords.
//! - `cleaning.rs`: the compaction pass's bookkeeping and swap.
//! - `timestamps.rs`: ListOffsets by timestamp.
//! - `waiters.rs`: the `Signal` that appends and long polls wait on.
//! - `watermarks.rs`: the high watermark split from the durable end, and
//!   the waits on each.
//! - `offsets.rs`: the offsets of the log and the order they keep.
//! - `producers.rs`: the idempotent and transactional producers' state, its
//!   checks on append, the last stable offset and its `<offset>.snapshot`
//!   files.
//! - `leadership.rs`: leader or follower, the epoch appends stamp, the
//!   leader-epoch cache (`epochs.rs`) and its file.
//! - `replicated.rs`: a follower's append of its leader's batches, verbatim.
//! - `truncation.rs`: `truncate_to`, cutting the log's tail.
//! - `markers.rs`: transaction markers (control batches) appended for a
//!   transaction coordinator, and the aborted transactions they record.
//!
//! Invariant: `log_start_offset <= high watermark <= durable end <= written
//! offset <= log end offset`; every segment below the sealed offset (the recovery point)
//! is sealed and synced. All state sits in `Cell`/`RefCell` grouped by
//! concern (`Offsets`, `Writer`, `TailCache`, `CleanerState`); no borrow is
//! held across an `.await`.

mod admission;
mod append;
mod cleaning;
mod leadership;
#[cfg(test)]
mod leadership_tests;
mod markers;
mod offsets;
#[cfg(test)]
mod pinned_tests;
mod producers;
#[cfg(test)]
mod producers_tests;
#[cfg(test)]
mod ranges_tests;
mod read;
mod replicated;
#[cfg(test)]
mod replicated_tests;
pub use read::ReadChunks;
#[cfg(test)]
mod read_tests;
mod retention;
#[cfg(test)]
mod retention_tests;
mod tail;
#[cfg(test)]
pub(in crate::log) mod tests;
mod timestamps;
#[cfg(test)]
mod transactions_tests;
mod truncation;
#[cfg(test)]
mod truncation_tests;
mod waiters;
mod watermarks;
#[cfg(test)]
mod watermarks_tests;
mod writer;
#[cfg(test)]
mod writer_tests;

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;

use glommio::sync::Semaphore;

use super::checkpoint::{self, Checkpoint};
use super::recovery;
use super::segment::Segment;
use super::{FlushPolicy, LogConfig, LogError, SEGMENT_BYTES_MAX};
use cleaning::CleanerState;
use leadership::{EpochState, Role};
use offsets::Offsets;
use producers::Producers;
use tail::TailCache;
use waiters::Watermarks;
use writer::Writer;

/// `config` with `segment.bytes` inside what `.index` positions can address.
fn bounded(mut config: LogConfig) -> LogConfig {
    config.segment_bytes = config.segment_bytes.clamp(1, SEGMENT_BYTES_MAX);
    config
}

/// One partition's log. Lives on its owner shard; see the module doc.
pub struct PartitionLog {
    dir: PathBuf,
    /// Replaced whole by `reconfigure`; never borrowed across an `.await`.
    config: RefCell<LogConfig>,
    /// Oldest first; never empty, the last one is active.
    segments: RefCell<Vec<Rc<Segment>>>,
    offsets: Offsets,
    /// The epoch appends stamp (a leader's) or follow (a follower's).
    leader_epoch: Cell<i32>,
    role: Cell<Role>,
    /// Times this replica stopped leading: an `acks=all` wait that sees it
    /// move fails (`wait_for_commit`).
    deposals: Cell<u64>,
    epochs: EpochState,
    writer: Writer,
    tail: RefCell<TailCache>,
    marks: Rc<Watermarks>,
    /// Set when an fdatasync failed (or a failed write could not be cut
    /// back): the log takes nothing more. See `writer::WriteFailure`.
    failure: RefCell<Option<String>>,
    closing: Cell<bool>,
    /// Held while the checkpoint file is replaced.
    checkpoint_lock: Semaphore,
    /// Held by retention, the cleaner and `close`: one at a time changes
    /// the closed segments.
    maintenance_lock: Semaphore,
    cleaning: CleanerState,
    producers: Producers,
    recovery_scanned_bytes: u64,
}

impl PartitionLog {
    /// Opens (creating if missing) the partition directory `dir` and recovers
    /// what is in it.
    pub async fn open(dir: PathBuf, config: LogConfig) -> Result<Rc<PartitionLog>, LogError> {
        let config = bounded(config);
        std::fs::create_dir_all(&dir)?;
        let recovered = recovery::recover(&dir, config.index_interval_bytes).await?;
        let active_base = recovered.segments.last().map_or(0, |s| s.base_offset);
        let log_end_offset = recovered.segments.last().map_or(0, |s| s.next_offset.get());
        let marks = Rc::new(Watermarks::default());
        marks.high_watermark.set(log_end_offset);
        marks.durable_end.set(log_end_offset);
        marks.recovered_high_watermark.set(
            recovered
                .high_watermark
                .map(|hw| hw.clamp(recovered.log_start_offset, log_end_offset)),
        );
        let cleaner = checkpoint::read_cleaner(&dir).await?;
        let scanned_from = recovered.scanned_from;
        let log = Rc::new(PartitionLog {
            tail: RefCell::new(TailCache::new(config.tail_cache_bytes)),
            dir,
            config: RefCell::new(config),
            segments: RefCell::new(recovered.segments),
            offsets: Offsets::recovered(recovered.log_start_offset, log_end_offset, active_base),
            leader_epoch: Cell::new(recovered.leader_epoch),
            role: Cell::new(Role::Unassigned),
            deposals: Cell::new(0),
            epochs: EpochState::default(),
            writer: Writer::new(),
            marks,
            failure: RefCell::new(None),
            closing: Cell::new(false),
            checkpoint_lock: Semaphore::new(1),
            maintenance_lock: Semaphore::new(1),
            cleaning: CleanerState {
                offset: Cell::new(
                    cleaner
                        .map_or(0, |c| c.cleaner_offset)
                        .clamp(recovered.log_start_offset, log_end_offset),
                ),
                tombstone_horizon_ms: Cell::new(
                    cleaner.map_or(i64::MAX, |c| c.tombstone_horizon_ms),
                ),
                offset_gaps: Cell::new(recovered.offset_gaps),
            },
            producers: Producers::default(),
            recovery_scanned_bytes: recovered.scanned_bytes,
        });
        log.load_producers(scanned_from).await?;
        log.load_epochs().await?;
        // A fresh log's first segment has no file yet; a recovered active
        // segment keeps its plain file (and fdatasync) until it rolls.
        log.active().prefer_write_through(log.writes_through());
        // The checkpoint already on disk stays true of the files, so a full
        // disk does not keep the log from opening: the next one scans more.
        // The producer snapshot waits for the periodic checkpoint: one fsync
        // less per partition at start, when the disk is busiest.
        if let Err(e) = log.write_checkpoint(log.offsets.sealed()).await {
            ::log::warn!(
                "partition log {}: checkpoint after open: {e}",
                log.dir.display()
            );
        }
        Ok(log)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.offsets.log_start()
    }

    /// The next offset to assign.
    pub fn log_end_offset(&self) -> i64 {
        self.offsets.log_end()
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.get()
    }

    /// Bytes of all segments, queued bytes included.
    pub fn size_bytes(&self) -> u64 {
        self.segments
            .borrow()
            .iter()
            .map(|s| s.queued_bytes.get())
            .sum()
    }

    /// Bytes of batches `open` had to scan and check (zero after a clean close).
    pub fn recovery_scanned_bytes(&self) -> u64 {
        self.recovery_scanned_bytes
    }

    /// Number of segment files, the active one included.
    pub fn segment_count(&self) -> usize {
        self.segments.borrow().len()
    }

    /// False once `close` (or `delete`) began: nothing more is appended.
    pub fn is_open(&self) -> bool {
        !self.closing.get()
    }

    fn check_open(&self) -> Result<(), LogError> {
        self.check_failure()?;
        if self.closing.get() {
            return Err(LogError::Closed);
        }
        Ok(())
    }

    /// New segments are written through (`O_DSYNC`) under
    /// `flush.policy=sync`: every group must reach the disk before it is
    /// acknowledged, and one synchronous write costs less than a write and
    /// an fdatasync (`perf/RESULTS.md`, W1 with 1 connection).
    fn writes_through(&self) -> bool {
        self.config.borrow().flush_policy == FlushPolicy::Sync
    }

    fn active(&self) -> Rc<Segment> {
        let segments = self.segments.borrow();
        debug_assert!(!segments.is_empty());
        segments[segments.len() - 1].clone()
    }

    /// Waits for `done`, failing if the log fails or closes first.
    async fn wait_until(&self, done: impl Fn(&Self) -> bool) -> Result<(), LogError> {
        loop {
            let seen = self.marks.progress.generation();
            if done(self) {
                return Ok(());
            }
            self.check_failure()?;
            if self.marks.closed.get() {
                return Err(LogError::Closed);
            }
            self.marks.progress.changed(seen).await;
        }
    }

    /// Applies new settings (a topic config changed at runtime). Each takes
    /// effect at its next use: `segment.bytes` and `segment.ms` at the next
    /// append, `retention.*` at the next retention pass, `flush.policy` at
    /// the next group. The tail cache keeps the capacity it was opened with.
    pub fn reconfigure(&self, config: LogConfig) {
        *self.config.borrow_mut() = bounded(config);
    }

    /// Writes the checkpoint. Its recovery point is the start of the first
    /// segment not yet sealed: everything before it is synced with its indexes.
    /// Also writes the producer state's snapshot when one is due.
    pub async fn checkpoint(&self) -> Result<(), LogError> {
        self.write_checkpoint(self.offsets.sealed()).await?;
        self.write_epochs().await?;
        self.write_producer_snapshot().await
    }

    async fn write_checkpoint(&self, recovery_point: i64) -> Result<(), LogError> {
        // The periodic checkpoint, retention and close all write it: one at
        // a time, as they share the temporary file.
        let _permit = self.checkpoint_lock.acquire_permit(1).await?;
        let checkpoint = Checkpoint {
            recovery_point,
            log_start_offset: self.log_start_offset(),
            high_watermark: self.checkpoint_high_watermark(),
            leader_epoch: self.leader_epoch(),
        };
        checkpoint::write(&self.dir, &checkpoint).await
    }

    /// Clean shutdown: refuse new appends, write everything queued, seal the
    /// active segment, checkpoint with recovery point = log end offset and
    /// close the files. The next `open` scans nothing.
    pub async fn close(&self) -> Result<(), LogError> {
        if self.closing.replace(true) {
            return Ok(());
        }
        // A cleaning pass sees `closing` and stops within a slice.
        let _permit = self.maintenance_lock.acquire_permit(1).await?;
        self.wait_until(|log| !log.writer.running.get()).await?;
        let result = self.seal_and_checkpoint().await;
        self.marks.closed.set(true);
        self.marks.progress.notify();
        // Whoever still holds the log, its frames go back to the budget.
        self.tail.borrow_mut().clear();
        let segments = self.segments.borrow().clone();
        for segment in segments {
            segment.close().await?;
        }
        result
    }

    async fn seal_and_checkpoint(&self) -> Result<(), LogError> {
        self.check_failure()?;
        let active = self.active();
        active.sync().await?;
        active.write_indexes().await?;
        let log_end_offset = self.log_end_offset();
        self.offsets.sealed_to(log_end_offset);
        self.raise_durable_end(log_end_offset);
        self.write_checkpoint(log_end_offset).await?;
        self.write_epochs().await?;
        self.write_producer_snapshot().await
    }

    fn check_failure(&self) -> Result<(), LogError> {
        match self.failure.borrow().as_ref() {
            Some(failure) => Err(LogError::Io(std::io::Error::other(failure.clone()))),
            None => Ok(()),
        }
    }

    /// Closes the log and removes its whole directory (topic deletion).
    pub async fn delete(&self) -> Result<(), LogError> {
        // Whatever close reports, the files are going away.
        if let Err(e) = self.close().await {
            ::log::warn!(
                "partition log {}: close before delete: {e}",
                self.dir.display()
            );
        }
        std::fs::remove_dir_all(&self.dir)?;
        Ok(())
    }
}
