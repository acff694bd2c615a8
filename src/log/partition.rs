//! [`PartitionLog`]: offsets, the group-commit writer, the tail cache, reads
//! and timestamp lookups of one partition, all on its owner shard.
//!
//! Append path: `append` assigns offsets and patches the batch headers in
//! place, accounts the batches in the active segment's indexes and the tail
//! cache, and queues the bytes — all without an `.await`, so offsets are given
//! in call order and the log end offset moves at once. One writer task per
//! partition then takes everything queued, writes it with one `write_at` per
//! segment, fdatasyncs once (`FlushPolicy::Sync`), raises the high watermark
//! and wakes whoever waits. Appends arriving meanwhile form the next group.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use glommio::sync::Semaphore;
use kafka_protocol::records::RecordBatchDecoder;

use super::checkpoint::{self, sync_dir, Checkpoint, CleanerCheckpoint};
use super::cleaner::{self, CleanRules, CleanedGroup, OffsetMap, Pacer};
use super::recovery;
use super::segment::{
    self, IndexMark, ReadBudget, Segment, CLEANED_SUFFIX, NO_TIMESTAMP, SWAP_SUFFIX,
};
use super::{
    AppendResult, AppendWait, CleanOutcome, CleanerBudget, CleaningNeed, FlushPolicy, LogConfig,
    LogError, RetentionOutcome, ShardLoad, SEGMENT_BYTES_MAX,
};
use crate::clock::now_ms;
use crate::protocol::batch::{
    framed_size, set_base_offset, set_log_append_time, set_partition_leader_epoch, BatchError,
    BatchHeader, ATTR_TIMESTAMP_TYPE_LOG_APPEND,
};

/// Why the writer could not write a group.
enum WriteFailure {
    /// A write, a file creation or an index write failed (typically a full
    /// disk, ENOSPC): the bytes in question never counted as written, so
    /// the log goes back to where it is intact (`give_up`) and takes
    /// appends again once there is room.
    Retryable(LogError),
    /// fdatasync failed. The kernel may already have dropped the dirty pages
    /// it could not write and would report a retried sync as a success, so
    /// what the file holds is unknown (PostgreSQL's "fsyncgate"). The log
    /// takes nothing more; a restart re-reads the files through recovery.
    Fatal(LogError),
}

/// Most bytes the writer puts in one group (one `write_at`): bounds the
/// buffer it builds while still coalescing thousands of small produces.
const GROUP_BYTES_MAX: usize = 16 << 20;
/// Bytes read per step while looking for a timestamp: the time index lands
/// within about `index.interval.bytes` of the answer.
const TIMESTAMP_SCAN_BYTES: usize = 1 << 20;

/// A tiny waiter list: futures wait for the generation to move on. A waiter
/// dropped before it is woken (a fetch long poll that timed out) takes its
/// waker out, so an idle partition does not collect them.
#[derive(Default)]
struct Signal {
    generation: Cell<u64>,
    next_key: Cell<u64>,
    wakers: RefCell<Vec<(u64, Waker)>>,
}

impl Signal {
    fn generation(&self) -> u64 {
        self.generation.get()
    }

    fn notify(&self) {
        self.generation.set(self.generation.get() + 1);
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for (_, waker) in wakers {
            waker.wake();
        }
    }

    /// Resolves at the first `notify` after the generation was `seen`.
    fn changed(&self, seen: u64) -> Changed<'_> {
        Changed {
            signal: self,
            seen,
            key: None,
        }
    }
}

struct Changed<'a> {
    signal: &'a Signal,
    seen: u64,
    /// Key of this waiter's entry in the list, once registered.
    key: Option<u64>,
}

impl Future for Changed<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let signal = self.signal;
        if signal.generation.get() != self.seen {
            return Poll::Ready(());
        }
        let mut wakers = signal.wakers.borrow_mut();
        let registered = self
            .key
            .and_then(|key| wakers.iter_mut().find(|(k, _)| *k == key));
        match registered {
            Some((_, waker)) => waker.clone_from(cx.waker()),
            None => {
                let key = signal.next_key.get();
                signal.next_key.set(key + 1);
                wakers.push((key, cx.waker().clone()));
                self.key = Some(key);
            }
        }
        Poll::Pending
    }
}

impl Drop for Changed<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.signal.wakers.borrow_mut().retain(|(k, _)| *k != key);
        }
    }
}

/// What long polls watch; shared so their futures do not borrow the log.
#[derive(Default)]
struct Watermarks {
    high_watermark: Cell<i64>,
    closed: Cell<bool>,
    /// Notified whenever a group is written, synced, or the log closes or fails.
    progress: Signal,
}

/// Work for the writer, in append order.
enum Pending {
    Write {
        segment: Rc<Segment>,
        position: u64,
        bytes: Bytes,
        /// The offsets of these bytes are `base_offset..next_offset`.
        base_offset: i64,
        next_offset: i64,
        /// The segment's indexes before these batches were recorded.
        indexes_before: IndexMark,
        /// Raised when the writer gives these bytes up; their append fails.
        given_up: Rc<Cell<bool>>,
    },
    /// The segment rolled: everything before this is its last data.
    Seal(Rc<Segment>),
}

struct CachedBatch {
    last_offset: i64,
    bytes: Bytes,
}

/// The newest batches, contiguous up to the log end offset.
struct TailCache {
    batches: VecDeque<CachedBatch>,
    size_bytes: usize,
    capacity_bytes: usize,
}

impl TailCache {
    fn push(&mut self, batch: CachedBatch) {
        self.size_bytes += batch.bytes.len();
        self.batches.push_back(batch);
        while self.size_bytes > self.capacity_bytes {
            let Some(evicted) = self.batches.pop_front() else {
                break;
            };
            self.size_bytes -= evicted.bytes.len();
        }
    }

    /// Drops the batches that end at or after `offset` (given up by the writer).
    fn truncate_from(&mut self, offset: i64) {
        while let Some(last) = self.batches.back() {
            if last.last_offset < offset {
                break;
            }
            self.size_bytes -= last.bytes.len();
            self.batches.pop_back();
        }
    }

    /// Drops the batches that end below `offset` (deleted by retention).
    fn evict_below(&mut self, offset: i64) {
        while let Some(first) = self.batches.front() {
            if first.last_offset >= offset {
                break;
            }
            self.size_bytes -= first.bytes.len();
            self.batches.pop_front();
        }
    }

    /// First offset the cache can serve.
    fn start_offset(&self) -> Option<i64> {
        let first = self.batches.front()?;
        BatchHeader::view(&first.bytes).map(|h| h.base_offset.get())
    }

    fn read(&self, offset: i64, max_offset: i64, budget: &mut ReadBudget, out: &mut Vec<Bytes>) {
        let from = self.batches.partition_point(|b| b.last_offset < offset);
        for batch in self.batches.range(from..) {
            if batch.last_offset >= max_offset || !budget.admit(batch.bytes.len()) {
                return;
            }
            out.push(batch.bytes.clone());
        }
    }
}

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
    log_start_offset: Cell<i64>,
    log_end_offset: Cell<i64>,
    /// One past the last offset in the segment files.
    written_offset: Cell<i64>,
    /// Every segment below this offset is sealed and synced (recovery point).
    sealed_offset: Cell<i64>,
    leader_epoch: Cell<i32>,
    pending: RefCell<VecDeque<Pending>>,
    writer_running: Cell<bool>,
    flush_scheduled: Cell<bool>,
    last_sync: Cell<Instant>,
    tail: RefCell<TailCache>,
    marks: Rc<Watermarks>,
    /// Set when an fdatasync failed (or a failed write could not be cut
    /// back): the log takes nothing more. See `WriteFailure`.
    failure: RefCell<Option<String>>,
    /// Why the last appends given up were given up.
    last_write_error: RefCell<String>,
    /// Set from a write that failed until one succeeds.
    write_failing: Cell<bool>,
    closing: Cell<bool>,
    /// Held while the checkpoint file is replaced.
    checkpoint_lock: Semaphore,
    /// Held by retention, the cleaner and `close`: one at a time changes
    /// the closed segments.
    maintenance_lock: Semaphore,
    /// The cleaner has cleaned every offset below this; the dirty section
    /// starts here.
    cleaner_offset: Cell<i64>,
    /// Earliest delete horizon of a tombstone in the cleaned section
    /// (`i64::MAX` for none): from then on a pass can drop it.
    tombstone_horizon_ms: Cell<i64>,
    /// The cleaner has worked on this log (`shoal.cleaner` exists): its
    /// segments may have offset gaps.
    offset_gaps: Cell<bool>,
    recovery_scanned_bytes: u64,
}

/// The closed segments a cleaning pass may touch, and how dirty they are.
struct CleanableRange {
    /// Oldest first: sealed, and old enough for `min.compaction.lag.ms`.
    segments: Vec<Rc<Segment>>,
    first_dirty: i64,
    clean_bytes: u64,
    dirty_bytes: u64,
    /// About the oldest timestamp of the dirty section.
    dirty_since_ms: Option<i64>,
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
        let cleaner = checkpoint::read_cleaner(&dir).await?;
        let log = Rc::new(PartitionLog {
            tail: RefCell::new(TailCache {
                batches: VecDeque::new(),
                size_bytes: 0,
                capacity_bytes: config.tail_cache_bytes,
            }),
            dir,
            config: RefCell::new(config),
            segments: RefCell::new(recovered.segments),
            log_start_offset: Cell::new(recovered.log_start_offset),
            log_end_offset: Cell::new(log_end_offset),
            written_offset: Cell::new(log_end_offset),
            sealed_offset: Cell::new(active_base),
            leader_epoch: Cell::new(recovered.leader_epoch),
            pending: RefCell::new(VecDeque::new()),
            writer_running: Cell::new(false),
            flush_scheduled: Cell::new(false),
            last_sync: Cell::new(Instant::now()),
            marks,
            failure: RefCell::new(None),
            last_write_error: RefCell::new(String::new()),
            write_failing: Cell::new(false),
            closing: Cell::new(false),
            checkpoint_lock: Semaphore::new(1),
            maintenance_lock: Semaphore::new(1),
            cleaner_offset: Cell::new(
                cleaner
                    .map_or(0, |c| c.cleaner_offset)
                    .clamp(recovered.log_start_offset, log_end_offset),
            ),
            tombstone_horizon_ms: Cell::new(cleaner.map_or(i64::MAX, |c| c.tombstone_horizon_ms)),
            offset_gaps: Cell::new(recovered.offset_gaps),
            recovery_scanned_bytes: recovered.scanned_bytes,
        });
        // A fresh log's first segment has no file yet; a recovered active
        // segment keeps its plain file (and fdatasync) until it rolls.
        log.active().prefer_write_through(log.writes_through());
        // The checkpoint already on disk stays true of the files, so a full
        // disk does not keep the log from opening: the next one scans more.
        if let Err(e) = log.checkpoint().await {
            ::log::warn!(
                "partition log {}: checkpoint after open: {e}",
                log.dir.display()
            );
        }
        Ok(log)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.get()
    }

    /// The next offset to assign.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.get()
    }

    /// What consumers may read: fdatasync'd under `FlushPolicy::Sync`,
    /// written otherwise.
    pub fn high_watermark(&self) -> i64 {
        self.marks.high_watermark.get()
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

    /// Appends `batches` (complete RecordBatch v2, back to back, validated by
    /// the caller): assigns offsets from the log end offset, patches
    /// `baseOffset` and `partitionLeaderEpoch` in place (the CRC does not
    /// cover them), applies LogAppendTime when `log_append_time_ms` is set,
    /// rolls the segment when needed, queues the bytes for the writer and
    /// returns when they are as durable as `wait` asks.
    pub async fn append(
        self: &Rc<Self>,
        batches: BytesMut,
        wait: AppendWait,
        log_append_time_ms: Option<i64>,
    ) -> Result<AppendResult, LogError> {
        let (result, given_up) = self.enqueue(batches, log_append_time_ms)?;
        self.start_writer();
        let last_offset = result.last_offset;
        match wait {
            AppendWait::Nothing => {}
            AppendWait::Written => {
                self.wait_for_append(&given_up, |log| log.written_offset.get() > last_offset)
                    .await?
            }
            AppendWait::Durable => {
                self.wait_for_append(&given_up, |log| log.high_watermark() > last_offset)
                    .await?
            }
        }
        Ok(result)
    }

    /// `wait_until` for one append: fails once the writer has given its
    /// bytes up, even when later appends have since reused its offsets.
    async fn wait_for_append(
        &self,
        given_up: &Cell<bool>,
        done: impl Fn(&Self) -> bool,
    ) -> Result<(), LogError> {
        self.wait_until(|log| given_up.get() || done(log)).await?;
        if given_up.get() {
            return Err(LogError::WriteFailed(
                self.last_write_error.borrow().clone(),
            ));
        }
        Ok(())
    }

    fn check_open(&self) -> Result<(), LogError> {
        self.check_failure()?;
        if self.closing.get() {
            return Err(LogError::Closed);
        }
        Ok(())
    }

    /// The synchronous half of `append`: offsets, indexes, cache, queue.
    /// Also returns the flag the writer raises if it gives the bytes up.
    fn enqueue(
        &self,
        mut batches: BytesMut,
        log_append_time_ms: Option<i64>,
    ) -> Result<(AppendResult, Rc<Cell<bool>>), LogError> {
        self.check_open()?;
        if batches.is_empty() {
            return Err(LogError::InvalidBatch(BatchError::Truncated));
        }
        if batches.len() as u64 > SEGMENT_BYTES_MAX {
            return Err(LogError::InvalidBatch(BatchError::TooLarge));
        }
        let base_offset = self.log_end_offset.get();
        let epoch = self.leader_epoch.get();
        // (size, last offset, max timestamp) per batch.
        let mut framed: Vec<(usize, i64, i64)> = Vec::new();
        let mut next_offset = base_offset;
        let mut cursor = 0;
        while cursor < batches.len() {
            let size = framed_size(&batches[cursor..]).map_err(LogError::InvalidBatch)?;
            let batch = &mut batches[cursor..cursor + size];
            let delta = BatchHeader::view(batch)
                .map(|h| h.last_offset_delta.get())
                .ok_or(LogError::InvalidBatch(BatchError::Truncated))?;
            if delta < 0 {
                return Err(LogError::InvalidBatch(BatchError::InvalidRecordCount));
            }
            set_base_offset(batch, next_offset);
            set_partition_leader_epoch(batch, epoch);
            if let Some(now) = log_append_time_ms {
                set_log_append_time(batch, now);
            }
            let max_timestamp =
                BatchHeader::view(batch).map_or(NO_TIMESTAMP, |h| h.max_timestamp.get());
            next_offset += i64::from(delta) + 1;
            framed.push((size, next_offset - 1, max_timestamp));
            cursor += size;
        }
        let last_offset = next_offset - 1;
        if last_offset - base_offset > i64::from(u32::MAX) {
            return Err(LogError::InvalidBatch(BatchError::InvalidRecordCount));
        }
        let batches_len = batches.len() as u64;
        let segment = self.segment_for(base_offset, last_offset, batches_len);
        let bytes = batches.freeze();
        let start_position = segment.queued_bytes.get();
        // `segment_for` rolled unless these bytes fit: positions stay u32.
        debug_assert!(start_position + batches_len <= SEGMENT_BYTES_MAX);
        let mut position = start_position;
        let mut start = 0;
        let index_interval_bytes = self.config.borrow().index_interval_bytes;
        let indexes_before = segment.indexes.borrow().mark();
        {
            let mut indexes = segment.indexes.borrow_mut();
            let mut tail = self.tail.borrow_mut();
            for (size, batch_last_offset, max_timestamp) in framed {
                indexes.record(
                    segment.base_offset,
                    position as u32,
                    batch_last_offset,
                    max_timestamp,
                    size as u64,
                    index_interval_bytes,
                );
                tail.push(CachedBatch {
                    last_offset: batch_last_offset,
                    bytes: bytes.slice(start..start + size),
                });
                position += size as u64;
                start += size;
            }
        }
        segment.queued_bytes.set(position);
        segment.next_offset.set(next_offset);
        let given_up = Rc::new(Cell::new(false));
        self.pending.borrow_mut().push_back(Pending::Write {
            segment,
            position: start_position,
            bytes,
            base_offset,
            next_offset,
            indexes_before,
            given_up: given_up.clone(),
        });
        self.log_end_offset.set(next_offset);
        let result = AppendResult {
            base_offset,
            last_offset,
            log_start_offset: self.log_start_offset.get(),
        };
        Ok((result, given_up))
    }

    /// The segment the next `len` bytes (offsets up to `last_offset`) go to,
    /// rolling to a new one at `base_offset` when the active one is full,
    /// too old, or would overflow its u32 relative offsets.
    fn segment_for(&self, base_offset: i64, last_offset: i64, len: u64) -> Rc<Segment> {
        let active = self.active();
        let now = now_ms();
        let (segment_bytes, segment_ms) = {
            let config = self.config.borrow();
            (config.segment_bytes, config.segment_ms)
        };
        let roll = active.queued_bytes.get() > 0
            && (active.queued_bytes.get() + len > segment_bytes
                || now.saturating_sub(active.created_ms) >= segment_ms
                || last_offset - active.base_offset > i64::from(u32::MAX));
        if !roll {
            return active;
        }
        let segment = Rc::new(Segment::new(&self.dir, base_offset, now));
        segment.prefer_write_through(self.writes_through());
        self.segments.borrow_mut().push(segment.clone());
        self.pending.borrow_mut().push_back(Pending::Seal(active));
        segment
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

    fn start_writer(self: &Rc<Self>) {
        if self.writer_running.get() || self.pending.borrow().is_empty() {
            return;
        }
        self.writer_running.set(true);
        let log = self.clone();
        glommio::spawn_local(async move { log.run_writer().await }).detach();
    }

    async fn run_writer(self: Rc<Self>) {
        loop {
            let (group, group_bytes) = self.take_group();
            if group.is_empty() {
                break;
            }
            let fatal = match self.write_group(&group, group_bytes).await {
                Ok(()) => {
                    if self.write_failing.replace(false) {
                        ::log::info!(
                            "partition log {}: writes resumed at offset {}",
                            self.dir.display(),
                            self.written_offset.get()
                        );
                    }
                    continue;
                }
                Err(WriteFailure::Retryable(e)) => {
                    // Logged when writes start failing, not at every retry.
                    let level = if self.write_failing.replace(true) {
                        ::log::Level::Debug
                    } else {
                        ::log::Level::Error
                    };
                    ::log::log!(
                        level,
                        "partition log {}: write failed; appends from offset {} on are given up and new ones go there: {e}",
                        self.dir.display(),
                        self.written_offset.get()
                    );
                    *self.last_write_error.borrow_mut() = e.to_string();
                    match self.give_up(group).await {
                        Ok(()) => continue,
                        Err(e) => e,
                    }
                }
                Err(WriteFailure::Fatal(e)) => e,
            };
            ::log::error!(
                "partition log {}: {fatal}; it takes nothing more until the broker restarts",
                self.dir.display()
            );
            *self.failure.borrow_mut() = Some(fatal.to_string());
            self.pending.borrow_mut().clear();
            // Long polls are released; appends and reads report the failure.
            self.marks.closed.set(true);
            break;
        }
        self.writer_running.set(false);
        self.marks.progress.notify();
    }

    /// After a failed write: gives up the failed group and everything queued
    /// behind it, so that the log ends at the written offset again. Their
    /// appends fail; the log end offset, the active segment's size and
    /// indexes and the tail cache go back to that offset, segments rolled
    /// after it are removed, and later appends take those offsets again.
    /// The in-memory part happens before any `.await`, so no append slips
    /// in with offsets about to be reused; then the files are cut back (the
    /// writer is this task, so nothing new is written before that).
    async fn give_up(&self, group: Vec<Pending>) -> Result<(), LogError> {
        let to = self.written_offset.get();
        let mut items = group;
        items.extend(self.pending.borrow_mut().drain(..));
        // Per segment: where its first given-up bytes start, and its
        // indexes before them. Seals are dropped: the segment each names is
        // either removed below or becomes the active one again.
        let mut cuts: Vec<(Rc<Segment>, u64, IndexMark)> = Vec::new();
        for item in items {
            let Pending::Write {
                segment,
                position,
                base_offset,
                indexes_before,
                given_up,
                ..
            } = item
            else {
                continue;
            };
            // Written and synced before a seal that succeeded in the group.
            if base_offset < to {
                continue;
            }
            given_up.set(true);
            if !cuts.iter().any(|(s, _, _)| Rc::ptr_eq(s, &segment)) {
                cuts.push((segment, position, indexes_before));
            }
        }
        let removed = {
            let mut segments = self.segments.borrow_mut();
            // The list never empties: a first segment starting at `to` stays, emptied.
            let keep = segments.partition_point(|s| s.base_offset < to).max(1);
            segments.split_off(keep)
        };
        let active = self.active();
        // Only the active segment holds both kept and given-up bytes.
        debug_assert!(cuts
            .iter()
            .all(|(segment, _, _)| Rc::ptr_eq(segment, &active)
                || removed.iter().any(|r| Rc::ptr_eq(r, segment))));
        for (segment, position, mark) in &cuts {
            if Rc::ptr_eq(segment, &active) {
                segment.rewind(*position, to, *mark);
            }
        }
        active.next_offset.set(to);
        self.sealed_offset
            .set(self.sealed_offset.get().min(active.base_offset));
        self.log_end_offset.set(to);
        self.tail.borrow_mut().truncate_from(to);
        if let Some((_, position, _)) = cuts.iter().find(|(s, _, _)| Rc::ptr_eq(s, &active)) {
            active.truncate_file(*position).await?;
        }
        for segment in removed {
            segment.delete_files().await?;
        }
        // The given-up appends fail once the files are back too.
        self.marks.progress.notify();
        Ok(())
    }

    /// Everything queued, up to `GROUP_BYTES_MAX` (always at least one
    /// item), and its size in bytes.
    fn take_group(&self) -> (Vec<Pending>, usize) {
        let mut pending = self.pending.borrow_mut();
        let mut group = Vec::new();
        let mut group_bytes = 0;
        while let Some(item) = pending.front() {
            let len = match item {
                Pending::Write { bytes, .. } => bytes.len(),
                Pending::Seal(_) => 0,
            };
            if !group.is_empty() && group_bytes + len > GROUP_BYTES_MAX {
                break;
            }
            group_bytes += len;
            group.extend(pending.pop_front());
        }
        (group, group_bytes)
    }

    /// Writes one group: one `write_at` per run of bytes of one segment,
    /// seals where the log rolled, one fdatasync as the policy asks. On a
    /// `Retryable` failure, `written_offset` is where the log is intact:
    /// the group start, or the end of a segment sealed in the group.
    async fn write_group(
        self: &Rc<Self>,
        group: &[Pending],
        group_bytes: usize,
    ) -> Result<(), WriteFailure> {
        use WriteFailure::{Fatal, Retryable};
        let mut run: Option<(Rc<Segment>, u64, Vec<u8>)> = None;
        let mut next_offset = self.written_offset.get();
        let mut last_segment = None;
        for item in group {
            match item {
                Pending::Write {
                    segment,
                    position,
                    bytes,
                    next_offset: next,
                    ..
                } => {
                    next_offset = *next;
                    if let Some((run_segment, start, buf)) = run.as_mut() {
                        if Rc::ptr_eq(run_segment, segment) {
                            debug_assert_eq!(*start + buf.len() as u64, *position);
                            buf.extend_from_slice(bytes);
                            continue;
                        }
                    }
                    Self::write_run(run.take()).await?;
                    // Usually the whole group goes to this one segment.
                    let mut buf = Vec::with_capacity(group_bytes);
                    buf.extend_from_slice(bytes);
                    run = Some((segment.clone(), *position, buf));
                    last_segment = Some(segment.clone());
                }
                Pending::Seal(segment) => {
                    Self::write_run(run.take()).await?;
                    segment.sync().await.map_err(Fatal)?;
                    segment.write_indexes().await.map_err(Retryable)?;
                    // Everything up to the end of this segment is written
                    // and synced: a later failure in the group keeps it.
                    let end = segment.next_offset.get();
                    self.sealed_offset.set(end);
                    self.written_offset.set(end);
                    self.raise_high_watermark(end);
                }
            }
        }
        Self::write_run(run.take()).await?;
        self.written_offset.set(next_offset);
        let flush_policy = self.config.borrow().flush_policy;
        match flush_policy {
            FlushPolicy::Sync => {
                // `AppendWait::Written` (acks=1) does not wait for the sync
                // (on a write-through segment the write was the sync).
                self.marks.progress.notify();
                if let Some(segment) = last_segment {
                    segment.sync().await.map_err(Fatal)?;
                }
                self.last_sync.set(Instant::now());
            }
            FlushPolicy::Interval { flush_ms } => {
                let due = Duration::from_millis(flush_ms);
                let elapsed = self.last_sync.get().elapsed();
                if elapsed >= due {
                    self.active().sync().await.map_err(Fatal)?;
                    self.last_sync.set(Instant::now());
                } else {
                    self.schedule_flush(due - elapsed);
                }
            }
            FlushPolicy::None => {}
        }
        self.raise_high_watermark(next_offset);
        Ok(())
    }

    async fn write_run(run: Option<(Rc<Segment>, u64, Vec<u8>)>) -> Result<(), WriteFailure> {
        let Some((segment, position, buf)) = run else {
            return Ok(());
        };
        // Runs of one segment are written in order, each right after the last.
        debug_assert_eq!(position, segment.written_bytes.get());
        let end = position + buf.len() as u64;
        if let Err(e) = segment.write_all(buf, position).await {
            return Err(if segment.write_error_is_fatal(&e) {
                WriteFailure::Fatal(e)
            } else {
                WriteFailure::Retryable(e)
            });
        }
        segment.written_bytes.set(end);
        Ok(())
    }

    fn raise_high_watermark(&self, offset: i64) {
        if offset > self.marks.high_watermark.get() {
            self.marks.high_watermark.set(offset);
        }
        self.marks.progress.notify();
    }

    /// `FlushPolicy::Interval`: one fdatasync of the active segment `delay`
    /// from now, unless one is already planned.
    fn schedule_flush(self: &Rc<Self>, delay: Duration) {
        if self.flush_scheduled.replace(true) {
            return;
        }
        let log = self.clone();
        glommio::spawn_local(async move {
            glommio::timer::sleep(delay).await;
            log.flush_scheduled.set(false);
            if log.marks.closed.get() {
                return;
            }
            if let Err(e) = log.active().sync().await {
                ::log::error!("partition log {}: flush failed: {e}", log.dir.display());
                *log.failure.borrow_mut() = Some(e.to_string());
                log.marks.progress.notify();
            }
            log.last_sync.set(Instant::now());
        })
        .detach();
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

    /// Whole batches from the one holding `offset`, stopping before a batch
    /// that reaches `max_offset` (exclusive; the caller passes the high
    /// watermark) and at about `max_bytes`, with at least one whole batch when
    /// `min_one_batch` (KIP-74). The newest come from the tail cache as
    /// zero-copy clones, older ones are read from the segment files.
    pub async fn read(
        &self,
        offset: i64,
        max_offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<Vec<Bytes>, LogError> {
        let log_end_offset = self.log_end_offset.get();
        if offset < self.log_start_offset.get() || offset > log_end_offset {
            return Err(self.out_of_range());
        }
        // A log failed by an fdatasync error serves nothing: the files may
        // not hold what the log believes it wrote.
        self.check_failure()?;
        if self.marks.closed.get() {
            return Err(LogError::Closed);
        }
        let mut out = Vec::new();
        let mut budget = ReadBudget::new(max_bytes, min_one_batch);
        let max_offset = max_offset.min(log_end_offset);
        if offset >= max_offset {
            return Ok(out);
        }
        {
            let tail = self.tail.borrow();
            if tail.start_offset().is_some_and(|start| start <= offset) {
                tail.read(offset, max_offset, &mut budget, &mut out);
                return Ok(out);
            }
        }
        // Only written bytes are in the files.
        let max_offset = max_offset.min(self.written_offset.get());
        let mut from = offset;
        let mut next = self.segment_after(from, None);
        // One segment at a time: no borrow of the list across a read, and the
        // next segment is found by offset, as retention may shorten the list
        // and the cleaner replace segments while a read waits.
        while let Some(segment) = next {
            if segment.base_offset >= max_offset {
                break;
            }
            match segment
                .read_batches(from, max_offset, &mut budget, &mut out)
                .await
            {
                Ok(true) => break,
                Ok(false) => {}
                // Retention deleted the segment under the read.
                Err(_) if out.is_empty() && segment.base_offset < self.log_start_offset() => {
                    return Err(self.out_of_range());
                }
                Err(_) if segment.base_offset < self.log_start_offset() => break,
                Err(e) => return Err(e),
            }
            from = from.max(segment.next_offset.get());
            next = self.segment_after(from, Some(&segment));
        }
        Ok(out)
    }

    /// The segment holding `offset` (or the first one, when it is below
    /// them all), unless that is `done`: then the one after it.
    fn segment_after(&self, offset: i64, done: Option<&Rc<Segment>>) -> Option<Rc<Segment>> {
        let segments = self.segments.borrow();
        let holding = segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1);
        match segments.get(holding) {
            Some(segment) if done.is_some_and(|done| Rc::ptr_eq(segment, done)) => {
                segments.get(holding + 1).cloned()
            }
            other => other.cloned(),
        }
    }

    fn out_of_range(&self) -> LogError {
        LogError::OffsetOutOfRange {
            log_start_offset: self.log_start_offset.get(),
            log_end_offset: self.log_end_offset.get(),
        }
    }

    /// Deletes the oldest closed segments that `retention.ms` or
    /// `retention.bytes` no longer keep, as Kafka does: whole segments, from
    /// the oldest, stopping at the first one both limits keep. By time, a
    /// segment goes when its largest timestamp is older than `now_ms -
    /// retention.ms` (a segment without timestamps is kept); by size, while
    /// the log without it still holds at least `retention.bytes`. Segments
    /// wholly below the log start offset (moved by `delete_records`) go too.
    /// The active segment, and any segment the writer has not sealed yet,
    /// always stays. The log start offset moves to the first kept segment and
    /// is checkpointed before the files go.
    pub async fn enforce_retention(&self, now_ms: i64) -> Result<RetentionOutcome, LogError> {
        self.check_open()?;
        let _permit = self.maintenance_lock.acquire_permit(1).await?;
        self.check_open()?;
        let (retention_ms, retention_bytes) = {
            let config = self.config.borrow();
            (config.retention_ms, config.retention_bytes)
        };
        let oldest_kept_ms = now_ms.saturating_sub(retention_ms);
        let log_start_offset = self.log_start_offset();
        let deleted = self.take_segments_while(|segment, size_without_bytes| {
            let max_timestamp = segment.indexes.borrow().max_timestamp;
            let by_time = retention_ms >= 0
                && max_timestamp != NO_TIMESTAMP
                && max_timestamp < oldest_kept_ms;
            let by_size =
                u64::try_from(retention_bytes).is_ok_and(|limit| size_without_bytes >= limit);
            let by_start = segment.next_offset.get() <= log_start_offset;
            by_time || by_size || by_start
        });
        self.remove_segments(&deleted).await?;
        Ok(RetentionOutcome {
            deleted_segments: deleted.len(),
            log_start_offset: self.log_start_offset(),
        })
    }

    /// DeleteRecords: moves the log start offset up to `offset` (at most the
    /// high watermark), checkpoints it, and deletes the closed segments that
    /// now lie wholly below it. Returns the log start offset afterwards (the
    /// low watermark); an offset at or below the current start changes
    /// nothing. Reads below the new start fail with `OffsetOutOfRange` at
    /// once; a segment the writer has not sealed yet goes at the next
    /// retention pass.
    pub async fn delete_records(&self, offset: i64) -> Result<i64, LogError> {
        self.check_open()?;
        if offset < 0 || offset > self.high_watermark() {
            return Err(self.out_of_range());
        }
        if offset <= self.log_start_offset() {
            return Ok(self.log_start_offset());
        }
        self.log_start_offset.set(offset);
        self.tail.borrow_mut().evict_below(offset);
        let deleted = self.take_segments_while(|segment, _| segment.next_offset.get() <= offset);
        if deleted.is_empty() {
            // The new start is durable before the answer, even when no file goes.
            self.checkpoint().await?;
        } else {
            self.remove_segments(&deleted).await?;
        }
        Ok(self.log_start_offset())
    }

    /// Takes the oldest sealed, closed segments out of the list while
    /// `expired(segment, bytes of the log without it and those before it)`
    /// holds, and moves the log start offset to the first kept segment.
    fn take_segments_while(
        &self,
        mut expired: impl FnMut(&Segment, u64) -> bool,
    ) -> Vec<Rc<Segment>> {
        let mut segments = self.segments.borrow_mut();
        let mut size_bytes: u64 = segments.iter().map(|s| s.queued_bytes.get()).sum();
        let sealed_offset = self.sealed_offset.get();
        let mut count = 0;
        for segment in segments.iter().take(segments.len().saturating_sub(1)) {
            if segment.next_offset.get() > sealed_offset {
                break;
            }
            let size_without_bytes = size_bytes - segment.queued_bytes.get();
            if !expired(segment, size_without_bytes) {
                break;
            }
            size_bytes = size_without_bytes;
            count += 1;
        }
        if count == 0 {
            return Vec::new();
        }
        // `count` stops before the active segment: the list stays non-empty.
        let log_start_offset = segments[count].base_offset.max(self.log_start_offset.get());
        let deleted: Vec<Rc<Segment>> = segments.drain(..count).collect();
        self.log_start_offset.set(log_start_offset);
        self.tail.borrow_mut().evict_below(log_start_offset);
        deleted
    }

    /// The closed segments a cleaning pass may touch now: sealed (and below
    /// the high watermark), and, with `min.compaction.lag.ms`, holding no
    /// record younger than that. Never the active segment.
    fn cleanable_range(&self, now_ms: i64) -> CleanableRange {
        let segments = self.segments.borrow();
        let bound = self.sealed_offset.get().min(self.high_watermark());
        let lag_ms = self.config.borrow().min_compaction_lag_ms;
        let first_dirty = self.cleaner_offset.get().max(self.log_start_offset.get());
        let mut range = CleanableRange {
            segments: Vec::new(),
            first_dirty,
            clean_bytes: 0,
            dirty_bytes: 0,
            dirty_since_ms: None,
        };
        for segment in segments.iter().take(segments.len().saturating_sub(1)) {
            let indexes = segment.indexes.borrow();
            if segment.next_offset.get() > bound
                || (lag_ms > 0 && indexes.max_timestamp > now_ms.saturating_sub(lag_ms))
            {
                break;
            }
            let size = segment.queued_bytes.get();
            if segment.next_offset.get() <= first_dirty {
                range.clean_bytes += size;
            } else {
                range.dirty_bytes += size;
                if range.dirty_since_ms.is_none() {
                    range.dirty_since_ms = indexes.times.first().map(|e| e.timestamp);
                }
            }
            range.segments.push(segment.clone());
        }
        range
    }

    /// Whether the cleaner should clean this log now, as Kafka decides: a
    /// compacted log whose dirty share of the cleanable bytes is above
    /// `min.cleanable.dirty.ratio`, or whose oldest dirty record is older
    /// than `max.compaction.lag.ms`, or whose cleaned tombstones have
    /// reached their delete horizon. `None` when there is nothing to do.
    pub fn cleaning_need(&self, now_ms: i64) -> Option<CleaningNeed> {
        let config = self.config.borrow().clone();
        if !config.compact || self.check_open().is_err() {
            return None;
        }
        let range = self.cleanable_range(now_ms);
        let total = range.clean_bytes + range.dirty_bytes;
        let dirty_ratio = if total == 0 {
            0.0
        } else {
            range.dirty_bytes as f64 / total as f64
        };
        let overdue = range.dirty_since_ms.is_some_and(|oldest| {
            oldest != NO_TIMESTAMP && oldest <= now_ms.saturating_sub(config.max_compaction_lag_ms)
        });
        let tombstones_due = range.clean_bytes > 0 && self.tombstone_horizon_ms.get() <= now_ms;
        let dirty =
            range.dirty_bytes > 0 && (dirty_ratio > config.min_cleanable_dirty_ratio || overdue);
        (dirty || tombstones_due).then_some(CleaningNeed {
            dirty_ratio,
            urgent: overdue || tombstones_due,
        })
    }

    /// One cleaning pass (see `cleaner.rs`): maps the keys of the dirty
    /// section, at most `budget.map_bytes` of them, then rewrites every
    /// cleanable segment below where the map stopped, a group of segments
    /// at a time, each group swapped in whole. Reads in flight finish on the
    /// files they opened; new reads see the cleaned segments. With `load`,
    /// the pass backs off while that shard is busy.
    pub async fn clean(
        &self,
        now_ms: i64,
        budget: CleanerBudget,
        load: Option<&ShardLoad>,
    ) -> Result<CleanOutcome, LogError> {
        self.check_open()?;
        let _permit = self.maintenance_lock.acquire_permit(1).await?;
        self.check_open()?;
        // The settings as they are at the start hold for the whole pass.
        let config = self.config.borrow().clone();
        let range = self.cleanable_range(now_ms);
        let first_dirty = range.first_dirty;
        let dirty_end = range
            .segments
            .last()
            .map_or(first_dirty, |s| s.next_offset.get())
            .max(first_dirty);
        let mut map = OffsetMap::new(budget.map_bytes, (dirty_end - first_dirty) as u64);
        let mut pacer = Pacer::new(&self.closing, load, budget.io_bytes_per_second);
        let map_end =
            match cleaner::build_offset_map(&range.segments, first_dirty, &mut map, &mut pacer)
                .await
            {
                Ok(map_end) => map_end,
                // `delete_records` removed segments under the pass: the next
                // pass starts from what is left.
                Err(_) if self.any_removed(&range.segments) => {
                    return Ok(CleanOutcome {
                        cleaner_offset: self.cleaner_offset.get(),
                        ..CleanOutcome::default()
                    })
                }
                Err(e) => return Err(e),
            };
        let to_clean: Vec<Rc<Segment>> = range
            .segments
            .into_iter()
            .filter(|s| s.base_offset < map_end)
            .collect();
        let mut outcome = CleanOutcome {
            segments_before: to_clean.len(),
            bytes_before: to_clean.iter().map(|s| s.queued_bytes.get()).sum(),
            cleaner_offset: map_end,
            ..CleanOutcome::default()
        };
        let rules = CleanRules {
            map: &map,
            map_end,
            now_ms,
            delete_retention_ms: config.delete_retention_ms,
            index_interval_bytes: config.index_interval_bytes,
        };
        if !self.offset_gaps.get() && !to_clean.is_empty() {
            // From the first swap on, segments may have gaps: the checkpoint
            // that says so (to recovery) is on disk before it.
            self.write_cleaner_checkpoint().await?;
            self.offset_gaps.set(true);
            for segment in self.segments.borrow().iter() {
                segment.offset_gaps.set(true);
            }
        }
        let mut tombstone_horizon_ms = i64::MAX;
        for group in group_by_size(&to_clean, config.segment_bytes) {
            let cleaned = match cleaner::clean_group(&self.dir, &group, &rules, &mut pacer).await {
                Ok(cleaned) => cleaned,
                Err(e) => {
                    self.remove_cleaner_files(group[0].base_offset, CLEANED_SUFFIX)
                        .await;
                    if self.any_removed(&group) {
                        continue;
                    }
                    return Err(e);
                }
            };
            let (horizon, removed, size) = (
                cleaned.tombstone_horizon_ms,
                cleaned.records_removed,
                cleaned.size_bytes,
            );
            if self.install_cleaned(&group, cleaned).await? {
                tombstone_horizon_ms = tombstone_horizon_ms.min(horizon);
                outcome.records_removed += removed;
                outcome.bytes_after += size;
                outcome.segments_after += 1;
            }
        }
        self.cleaner_offset
            .set(self.cleaner_offset.get().max(map_end));
        self.tombstone_horizon_ms.set(tombstone_horizon_ms);
        self.write_cleaner_checkpoint().await?;
        Ok(outcome)
    }

    async fn write_cleaner_checkpoint(&self) -> Result<(), LogError> {
        let state = CleanerCheckpoint {
            cleaner_offset: self.cleaner_offset.get(),
            tombstone_horizon_ms: self.tombstone_horizon_ms.get(),
        };
        checkpoint::write_cleaner(&self.dir, &state).await
    }

    /// Puts a cleaned group in place of the segments it was made from. On
    /// disk: its `.cleaned` files become `.swap` (complete: recovery would
    /// finish from here), the old segments' files go, and the `.swap` files
    /// take the final names, the `.log` last. In memory, the segment list
    /// changes in one step, before any old file goes. Returns false, and
    /// changes nothing, when `delete_records` took segments of the group
    /// out of the log meanwhile.
    async fn install_cleaned(
        &self,
        group: &[Rc<Segment>],
        cleaned: CleanedGroup,
    ) -> Result<bool, LogError> {
        let base = cleaned.base_offset;
        let renamed = |from: &str, to: &str| {
            segment_file_paths(&self.dir, base).map(|path| {
                (
                    segment::with_suffix(path.clone(), from),
                    segment::with_suffix(path, to),
                )
            })
        };
        if self.group_position(group).is_none() {
            self.remove_cleaner_files(base, CLEANED_SUFFIX).await;
            return Ok(false);
        }
        for (from, to) in renamed(CLEANED_SUFFIX, SWAP_SUFFIX) {
            if let Err(e) = glommio::io::rename(&from, &to).await {
                self.remove_cleaner_files(base, CLEANED_SUFFIX).await;
                self.remove_cleaner_files(base, SWAP_SUFFIX).await;
                return Err(LogError::Io(e.into()));
            }
        }
        sync_dir(&self.dir).await?;
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            return Ok(false);
        };
        let next_offset = last.next_offset.get();
        let segment = Rc::new(Segment::existing(
            &self.dir,
            base,
            cleaned.file,
            cleaned.size_bytes,
            cleaned.indexes,
            next_offset,
            first.created_ms,
        ));
        segment.offset_gaps.set(true);
        // No await from the check to the splice: the group is still there.
        let Some(start) = self.group_position(group) else {
            // What a crash would leave now is finished by recovery below the
            // log start offset, where retention removes it.
            self.remove_cleaner_files(base, SWAP_SUFFIX).await;
            return Ok(false);
        };
        self.segments
            .borrow_mut()
            .splice(start..start + group.len(), [segment]);
        self.tail.borrow_mut().evict_below(next_offset);
        first.retire().await?;
        for old in &group[1..] {
            old.delete_files().await?;
        }
        for (from, to) in renamed(SWAP_SUFFIX, "") {
            glommio::io::rename(&from, &to)
                .await
                .map_err(|e| LogError::Io(e.into()))?;
        }
        sync_dir(&self.dir).await?;
        Ok(true)
    }

    /// Whether any of `segments` left the segment list (`delete_records`).
    fn any_removed(&self, segments: &[Rc<Segment>]) -> bool {
        let list = self.segments.borrow();
        segments
            .iter()
            .any(|s| !list.iter().any(|kept| Rc::ptr_eq(kept, s)))
    }

    /// Where `group` starts in the segment list, if all of it is still
    /// there, in order.
    fn group_position(&self, group: &[Rc<Segment>]) -> Option<usize> {
        let segments = self.segments.borrow();
        let first = group.first()?;
        let start = segments.iter().position(|s| Rc::ptr_eq(s, first))?;
        let here = segments.get(start..start + group.len())?;
        here.iter()
            .zip(group)
            .all(|(a, b)| Rc::ptr_eq(a, b))
            .then_some(start)
    }

    /// Removes what a failed pass left of segment `base`'s `suffix` files.
    async fn remove_cleaner_files(&self, base: i64, suffix: &str) {
        for path in segment_file_paths(&self.dir, base) {
            let path = segment::with_suffix(path, suffix);
            if let Err(e) = glommio::io::remove(&path).await {
                let e: std::io::Error = e.into();
                if e.kind() != std::io::ErrorKind::NotFound {
                    ::log::warn!("removing {}: {e}", path.display());
                }
            }
        }
    }

    /// Checkpoints the log start offset that `take_segments_while` moved,
    /// then removes the files of the segments it took. A read already inside
    /// one of them keeps its open file.
    async fn remove_segments(&self, deleted: &[Rc<Segment>]) -> Result<(), LogError> {
        if deleted.is_empty() {
            return Ok(());
        }
        self.checkpoint().await?;
        for segment in deleted {
            segment.delete_files().await?;
        }
        Ok(())
    }

    /// Applies new settings (a topic config changed at runtime). Each takes
    /// effect at its next use: `segment.bytes` and `segment.ms` at the next
    /// append, `retention.*` at the next retention pass, `flush.policy` at
    /// the next group. The tail cache keeps the capacity it was opened with.
    pub fn reconfigure(&self, config: LogConfig) {
        *self.config.borrow_mut() = bounded(config);
    }

    /// Resolves once the high watermark grows past its value at the call (or
    /// the log closes). Woken by the writer; no timer, no spinning.
    pub fn wait_for_data(&self) -> impl Future<Output = ()> {
        let marks = self.marks.clone();
        let start = marks.high_watermark.get();
        async move {
            loop {
                let seen = marks.progress.generation();
                if marks.high_watermark.get() > start || marks.closed.get() {
                    return;
                }
                marks.progress.changed(seen).await;
            }
        }
    }

    /// ListOffsets by timestamp: offset and timestamp of the first record
    /// (below the high watermark) with a timestamp at or above `timestamp`.
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let start = {
            let segments = self.segments.borrow();
            let Some(segment) = segments
                .iter()
                .find(|s| s.indexes.borrow().max_timestamp >= timestamp)
            else {
                return Ok(None);
            };
            let indexes = segment.indexes.borrow();
            indexes
                .times
                .lookup(timestamp)
                .map_or(segment.base_offset, |relative| {
                    segment.base_offset + i64::from(relative) + 1
                })
        };
        let high_watermark = self.high_watermark();
        let mut offset = start.max(self.log_start_offset());
        while offset < high_watermark {
            let batches = self
                .read(offset, high_watermark, TIMESTAMP_SCAN_BYTES, true)
                .await?;
            if batches.is_empty() {
                break;
            }
            for batch in batches {
                let Some(header) = BatchHeader::view(&batch) else {
                    break;
                };
                offset = header.last_offset() + 1;
                if header.max_timestamp.get() >= timestamp {
                    if let Some(found) = self.find_record(batch, |ts| ts >= timestamp)? {
                        return Ok(Some(found));
                    }
                }
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP: offset and timestamp of the first record
    /// carrying the largest timestamp, `None` when the log is empty.
    pub async fn max_timestamp(&self) -> Result<Option<(i64, i64)>, LogError> {
        let (timestamp, batch_last_offset) = {
            let segments = self.segments.borrow();
            let mut best = (NO_TIMESTAMP, -1);
            for segment in segments.iter() {
                let indexes = segment.indexes.borrow();
                if indexes.max_timestamp > best.0 {
                    best = (indexes.max_timestamp, indexes.offset_of_max_timestamp);
                }
            }
            best
        };
        if batch_last_offset < self.log_start_offset() {
            return Ok(None);
        }
        let batches = self
            .read(batch_last_offset, self.log_end_offset(), 1, true)
            .await?;
        if let Some(batch) = batches.into_iter().next() {
            if let Some(found) = self.find_record(batch, |ts| ts == timestamp)? {
                return Ok(Some(found));
            }
        }
        Ok(Some((batch_last_offset, timestamp)))
    }

    /// (offset, timestamp) of the first record of `batch` whose timestamp
    /// matches. Decodes the batch: only for the rare timestamp lookups.
    fn find_record(
        &self,
        batch: Bytes,
        matches: impl Fn(i64) -> bool,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let Some(header) = BatchHeader::view(&batch) else {
            return Ok(None);
        };
        if header.attributes.get() & ATTR_TIMESTAMP_TYPE_LOG_APPEND != 0 {
            let timestamp = header.max_timestamp.get();
            return Ok(matches(timestamp).then_some((header.base_offset.get(), timestamp)));
        }
        let position = header.base_offset.get();
        let mut buf = batch;
        let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| {
            let reason = format!("undecodable batch at offset {position}: {e}");
            ::log::error!("partition log {}: {reason}", self.dir.display());
            LogError::Corrupt {
                path: self.dir.clone(),
                position: position as u64,
                reason,
            }
        })?;
        Ok(set
            .records
            .iter()
            .find(|r| matches(r.timestamp))
            .map(|r| (r.offset, r.timestamp)))
    }

    /// Writes the checkpoint. Its recovery point is the start of the first
    /// segment not yet sealed: everything before it is synced with its indexes.
    pub async fn checkpoint(&self) -> Result<(), LogError> {
        self.write_checkpoint(self.sealed_offset.get()).await
    }

    async fn write_checkpoint(&self, recovery_point: i64) -> Result<(), LogError> {
        // The periodic checkpoint, retention and close all write it: one at
        // a time, as they share the temporary file.
        let _permit = self.checkpoint_lock.acquire_permit(1).await?;
        let checkpoint = Checkpoint {
            recovery_point,
            log_start_offset: self.log_start_offset(),
            high_watermark: self.high_watermark(),
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
        self.wait_until(|log| !log.writer_running.get()).await?;
        let result = self.seal_and_checkpoint().await;
        self.marks.closed.set(true);
        self.marks.progress.notify();
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
        self.sealed_offset.set(log_end_offset);
        self.raise_high_watermark(log_end_offset);
        self.write_checkpoint(log_end_offset).await
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

/// The `.index`, `.timeindex` and `.log` paths of segment `base`, the log
/// last (renamed last, so that a `.log.swap` means its indexes are done).
fn segment_file_paths(dir: &std::path::Path, base: i64) -> [PathBuf; 3] {
    [
        segment::index_path(dir, base),
        segment::time_index_path(dir, base),
        segment::log_path(dir, base),
    ]
}

/// Adjacent segments in groups that fit one segment: at most `segment_bytes`
/// together, offsets within u32 of the group's base (Kafka's grouping).
fn group_by_size(segments: &[Rc<Segment>], segment_bytes: u64) -> Vec<Vec<Rc<Segment>>> {
    let mut groups: Vec<Vec<Rc<Segment>>> = Vec::new();
    let mut size_bytes = 0;
    for segment in segments {
        let fits = groups.last().and_then(|g| g.first()).is_some_and(|first| {
            size_bytes + segment.queued_bytes.get() <= segment_bytes
                && segment.next_offset.get() - first.base_offset <= i64::from(u32::MAX)
        });
        match groups.last_mut() {
            Some(group) if fits => group.push(segment.clone()),
            _ => {
                groups.push(vec![segment.clone()]);
                size_bytes = 0;
            }
        }
        size_bytes += segment.queued_bytes.get();
    }
    groups
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::protocol::batch::tests::{sample_batch, CODECS};
    use crate::shard;
    use kafka_protocol::records::Compression;
    use std::path::Path;

    /// `sample_batch(n, compression)` moved in time: its records carry
    /// timestamps `base_timestamp .. base_timestamp + n`.
    pub fn batch_at(n: usize, compression: Compression, base_timestamp: i64) -> Vec<u8> {
        let mut batch = sample_batch(n, compression);
        batch[27..35].copy_from_slice(&base_timestamp.to_be_bytes());
        let max_timestamp = base_timestamp + n as i64 - 1;
        batch[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        batch
    }

    /// A batch with its assigned fields (base offset, leader epoch) blanked,
    /// to compare what went in with what comes out.
    pub fn unassigned(batch: &[u8]) -> Vec<u8> {
        let mut batch = batch.to_vec();
        batch[..8].fill(0);
        batch[12..16].fill(0);
        batch
    }

    /// Small segments and a dense index so tests cross every boundary.
    pub fn small_config(tail_cache_bytes: usize) -> LogConfig {
        LogConfig {
            segment_bytes: 2048,
            index_interval_bytes: 300,
            tail_cache_bytes,
            ..LogConfig::default()
        }
    }

    /// Runs `test` on a fresh shard with a fresh partition directory.
    pub fn with_dir<M, F>(test: M)
    where
        M: FnOnce(PathBuf) -> F + Send + 'static,
        F: Future<Output = ()> + 'static,
    {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("topic-0");
        shard::block_on(move || test(dir));
    }

    pub async fn read_all(log: &PartitionLog) -> Vec<Bytes> {
        log.read(
            log.log_start_offset(),
            log.high_watermark(),
            usize::MAX,
            true,
        )
        .await
        .unwrap()
    }

    pub fn segment_files(dir: &Path, extension: &str) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == extension)
            })
            .count()
    }

    #[test]
    fn round_trip_across_a_clean_restart() {
        for cache in [0, TAIL_CACHE_TEST_BYTES] {
            with_dir(move |dir| async move {
                let log = PartitionLog::open(dir.clone(), small_config(cache))
                    .await
                    .unwrap();
                assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
                let mut sent = Vec::new();
                let mut next = 0;
                for (i, codec) in CODECS.iter().cycle().take(12).enumerate() {
                    let batch = sample_batch(i % 4 + 1, *codec);
                    let result = log
                        .append(BytesMut::from(&batch[..]), AppendWait::Durable, None)
                        .await
                        .unwrap();
                    assert_eq!(result.base_offset, next);
                    assert_eq!(result.last_offset, next + (i % 4) as i64);
                    next = result.last_offset + 1;
                    sent.push(unassigned(&batch));
                }
                assert_eq!(log.log_end_offset(), next);
                assert_eq!(log.high_watermark(), next);
                let check = |got: Vec<Bytes>| {
                    assert_eq!(got.len(), sent.len());
                    let mut expected_base = 0;
                    for (batch, sent) in got.iter().zip(&sent) {
                        let header = BatchHeader::view(batch).unwrap();
                        assert_eq!(header.base_offset.get(), expected_base);
                        expected_base = header.last_offset() + 1;
                        assert_eq!(&unassigned(batch), sent);
                    }
                };
                check(read_all(&log).await);
                let size = log.size_bytes();
                log.close().await.unwrap();
                assert!(matches!(
                    log.append(BytesMut::from(&sent[0][..]), AppendWait::Nothing, None)
                        .await,
                    Err(LogError::Closed)
                ));

                let log = PartitionLog::open(dir.clone(), small_config(cache))
                    .await
                    .unwrap();
                assert_eq!(
                    log.recovery_scanned_bytes(),
                    0,
                    "a clean close needs no scan"
                );
                assert_eq!(log.log_end_offset(), next);
                assert_eq!(log.high_watermark(), next);
                assert_eq!(log.size_bytes(), size);
                check(read_all(&log).await);
                log.close().await.unwrap();
            });
        }
    }

    const TAIL_CACHE_TEST_BYTES: usize = 1 << 20;

    #[test]
    fn segments_roll_by_size_and_reads_cross_them() {
        with_dir(|dir| async move {
            let log = PartitionLog::open(dir.clone(), small_config(0))
                .await
                .unwrap();
            let batch = sample_batch(5, Compression::None);
            for _ in 0..40 {
                log.append(BytesMut::from(&batch[..]), AppendWait::Durable, None)
                    .await
                    .unwrap();
            }
            let per_segment = 2048 / batch.len();
            assert_eq!(log.segment_count(), 40_usize.div_ceil(per_segment));
            assert!(log.segment_count() >= 3);
            assert!(segment_files(&dir, "index") >= log.segment_count() - 1);
            let got = read_all(&log).await;
            assert_eq!(got.len(), 40);
            // Every offset, read alone, comes back in the batch that holds it.
            for offset in 0..log.log_end_offset() {
                let got = log
                    .read(offset, log.high_watermark(), 1, true)
                    .await
                    .unwrap();
                let header = BatchHeader::view(&got[0]).unwrap();
                assert_eq!(header.base_offset.get(), offset / 5 * 5, "offset {offset}");
            }
            log.close().await.unwrap();
            assert_eq!(segment_files(&dir, "log"), segment_files(&dir, "timeindex"));

            let log = PartitionLog::open(dir, small_config(0)).await.unwrap();
            assert_eq!(log.recovery_scanned_bytes(), 0);
            assert_eq!(read_all(&log).await.len(), 40);
            let got = log
                .read(123, log.high_watermark(), usize::MAX, false)
                .await
                .unwrap();
            assert_eq!(BatchHeader::view(&got[0]).unwrap().base_offset.get(), 120);
            assert_eq!(got.len(), 40 - 24);
        });
    }

    /// Zero-copy fetch, the log's half: a read served from the tail cache
    /// hands out the very memory the append was given (the Fetch writer's
    /// half is `record_buffers_go_out_as_the_same_memory`).
    #[test]
    fn tail_reads_share_the_appended_memory() {
        with_dir(|dir| async move {
            let log = PartitionLog::open(dir, small_config(TAIL_CACHE_TEST_BYTES))
                .await
                .unwrap();
            let batch = sample_batch(5, Compression::None);
            let mut appended = Vec::new();
            for _ in 0..3 {
                let buffer = BytesMut::from(&batch[..]);
                let start = buffer.as_ptr() as usize;
                appended.push(start..start + buffer.len());
                log.append(buffer, AppendWait::Durable, None).await.unwrap();
            }
            let chunks = log
                .read(0, log.high_watermark(), usize::MAX, true)
                .await
                .unwrap();
            let fetched: usize = chunks.iter().map(Bytes::len).sum();
            assert_eq!(fetched, 3 * batch.len());
            let copied: usize = chunks
                .iter()
                .filter(|chunk| {
                    let start = chunk.as_ptr() as usize;
                    !appended
                        .iter()
                        .any(|range| range.contains(&start) && start + chunk.len() <= range.end)
                })
                .map(Bytes::len)
                .sum();
            assert_eq!(copied, 0, "bytes copied per {fetched} fetched");
            log.close().await.unwrap();
        });
    }

    #[test]
    fn index_files_have_kafkas_layout() {
        with_dir(|dir| async move {
            let config = LogConfig {
                index_interval_bytes: 0,
                ..small_config(0)
            };
            let log = PartitionLog::open(dir.clone(), config).await.unwrap();
            let mut expected_index = Vec::new();
            let mut expected_time_index = Vec::new();
            let mut position = 0u32;
            for b in 0..5i64 {
                let batch = batch_at(3, Compression::None, 100 * b);
                let result = log
                    .append(BytesMut::from(&batch[..]), AppendWait::Durable, None)
                    .await
                    .unwrap();
                let relative = result.last_offset as u32;
                expected_index.extend(relative.to_be_bytes());
                expected_index.extend(position.to_be_bytes());
                expected_time_index.extend((100 * b + 2).to_be_bytes());
                expected_time_index.extend(relative.to_be_bytes());
                position += batch.len() as u32;
            }
            log.close().await.unwrap();
            let name = format!("{:020}", 0);
            let read = |ext: &str| std::fs::read(dir.join(format!("{name}.{ext}"))).unwrap();
            assert_eq!(read("index"), expected_index);
            assert_eq!(read("timeindex"), expected_time_index);
            assert_eq!(read("log").len() as u32, position);
        });
    }

    #[test]
    fn unacknowledged_appends_are_flushed_by_close() {
        for policy in [
            FlushPolicy::Interval { flush_ms: 60_000 },
            FlushPolicy::None,
        ] {
            with_dir(move |dir| async move {
                let config = LogConfig {
                    flush_policy: policy,
                    ..small_config(TAIL_CACHE_TEST_BYTES)
                };
                let log = PartitionLog::open(dir.clone(), config.clone())
                    .await
                    .unwrap();
                for _ in 0..50 {
                    let batch = sample_batch(2, Compression::Lz4);
                    log.append(BytesMut::from(&batch[..]), AppendWait::Nothing, None)
                        .await
                        .unwrap();
                }
                assert_eq!(log.log_end_offset(), 100);
                log.close().await.unwrap();
                let log = PartitionLog::open(dir, config).await.unwrap();
                assert_eq!(log.recovery_scanned_bytes(), 0);
                assert_eq!(log.high_watermark(), 100);
                assert_eq!(read_all(&log).await.len(), 50);
            });
        }
    }

    #[test]
    fn segments_roll_by_age() {
        with_dir(|dir| async move {
            let config = LogConfig {
                segment_ms: 0,
                ..small_config(0)
            };
            let log = PartitionLog::open(dir, config).await.unwrap();
            for _ in 0..3 {
                log.append(
                    BytesMut::from(&sample_batch(1, Compression::None)[..]),
                    AppendWait::Durable,
                    None,
                )
                .await
                .unwrap();
            }
            assert_eq!(log.segment_count(), 3);
        });
    }

    #[test]
    fn max_bytes_and_min_one_batch() {
        for cache in [0, TAIL_CACHE_TEST_BYTES] {
            with_dir(move |dir| async move {
                let log = PartitionLog::open(dir, small_config(cache)).await.unwrap();
                let batch = sample_batch(3, Compression::None);
                let size = batch.len();
                for _ in 0..5 {
                    log.append(BytesMut::from(&batch[..]), AppendWait::Durable, None)
                        .await
                        .unwrap();
                }
                let hw = log.high_watermark();
                assert_eq!(log.read(0, hw, 2 * size + 1, false).await.unwrap().len(), 2);
                assert_eq!(log.read(0, hw, 2 * size, true).await.unwrap().len(), 2);
                assert!(log.read(0, hw, size - 1, false).await.unwrap().is_empty());
                assert_eq!(log.read(0, hw, 1, true).await.unwrap().len(), 1);
                // max_offset is exclusive and never splits a batch.
                assert_eq!(log.read(0, 6, usize::MAX, true).await.unwrap().len(), 2);
                assert_eq!(log.read(0, 7, usize::MAX, true).await.unwrap().len(), 2);
                assert!(log.read(6, 6, usize::MAX, true).await.unwrap().is_empty());
            });
        }
    }

    #[test]
    fn offsets_out_of_range() {
        with_dir(|dir| async move {
            let log = PartitionLog::open(dir, small_config(0)).await.unwrap();
            log.append(
                BytesMut::from(&sample_batch(4, Compression::Lz4)[..]),
                AppendWait::Durable,
                None,
            )
            .await
            .unwrap();
            assert!(log.read(4, 4, 100, true).await.unwrap().is_empty());
            for offset in [-1, 5, i64::MAX] {
                match log.read(offset, 4, 100, true).await {
                    Err(LogError::OffsetOutOfRange {
                        log_start_offset: 0,
                        log_end_offset: 4,
                    }) => {}
                    other => panic!("offset {offset}: {other:?}"),
                }
            }
        });
    }

    #[test]
    fn bad_appends_are_refused_whole() {
        with_dir(|dir| async move {
            let log = PartitionLog::open(dir, small_config(0)).await.unwrap();
            let batch = sample_batch(2, Compression::None);
            let mut torn = batch.clone();
            torn.extend_from_slice(&batch[..30]);
            for bad in [Vec::new(), batch[..40].to_vec(), torn] {
                assert!(matches!(
                    log.append(BytesMut::from(&bad[..]), AppendWait::Durable, None)
                        .await,
                    Err(LogError::InvalidBatch(_))
                ));
            }
            assert_eq!(log.log_end_offset(), 0);
        });
    }

    /// The open-file flags of this process's descriptor for `path`, from
    /// `/proc/self/fdinfo` (octal).
    fn open_flags(path: &Path) -> Option<u32> {
        std::fs::read_dir("/proc/self/fd").ok()?.find_map(|entry| {
            let entry = entry.ok()?;
            if std::fs::read_link(entry.path()).ok()? != path {
                return None;
            }
            let info = std::fs::read_to_string(format!(
                "/proc/self/fdinfo/{}",
                entry.file_name().to_str()?
            ))
            .ok()?;
            let flags = info.lines().find_map(|line| line.strip_prefix("flags:"))?;
            u32::from_str_radix(flags.trim(), 8).ok()
        })
    }

    #[test]
    fn segments_are_written_through_only_under_the_sync_policy() {
        for (policy, through) in [
            (FlushPolicy::Sync, true),
            (FlushPolicy::Interval { flush_ms: 5 }, false),
            (FlushPolicy::None, false),
        ] {
            with_dir(move |dir| async move {
                let config = LogConfig {
                    flush_policy: policy,
                    ..small_config(0)
                };
                let log = PartitionLog::open(dir.clone(), config).await.unwrap();
                let batch = sample_batch(2, Compression::None);
                log.append(BytesMut::from(&batch[..]), AppendWait::Durable, None)
                    .await
                    .unwrap();
                let path = segment::log_path(&dir, 0);
                let flags = open_flags(&path).expect("the segment file is open");
                assert_eq!(
                    flags & libc::O_DSYNC as u32 != 0,
                    through,
                    "{policy:?}: flags {flags:o}"
                );
                assert_eq!(read_all(&log).await.len(), 1);
            });
        }
    }

    #[test]
    fn several_batches_in_one_append() {
        with_dir(|dir| async move {
            let log = PartitionLog::open(dir, small_config(0)).await.unwrap();
            let mut batches = sample_batch(2, Compression::None);
            batches.extend(sample_batch(3, Compression::Zstd));
            let result = log
                .append(BytesMut::from(&batches[..]), AppendWait::Durable, None)
                .await
                .unwrap();
            assert_eq!((result.base_offset, result.last_offset), (0, 4));
            let got = read_all(&log).await;
            assert_eq!(got.len(), 2);
            assert_eq!(BatchHeader::view(&got[1]).unwrap().base_offset.get(), 2);
        });
    }

    #[test]
    fn concurrent_appends_are_group_committed_in_order() {
        for policy in [
            FlushPolicy::Sync,
            FlushPolicy::Interval { flush_ms: 5 },
            FlushPolicy::None,
        ] {
            with_dir(move |dir| async move {
                let config = LogConfig {
                    flush_policy: policy,
                    ..small_config(0)
                };
                let log = PartitionLog::open(dir, config).await.unwrap();
                // A reader reading from the files while appends roll segments.
                let reader = {
                    let log = log.clone();
                    glommio::spawn_local(async move {
                        while log.log_end_offset() < 100 {
                            let got = read_all(&log).await;
                            assert!(got.len() <= 64);
                            log.wait_for_data().await;
                        }
                    })
                };
                let tasks: Vec<_> = (0..64)
                    .map(|i| {
                        let log = log.clone();
                        glommio::spawn_local(async move {
                            let batch = sample_batch(i % 3 + 1, Compression::None);
                            log.append(BytesMut::from(&batch[..]), AppendWait::Durable, None)
                                .await
                                .unwrap()
                        })
                    })
                    .collect();
                let mut results = Vec::new();
                for task in tasks {
                    results.push(task.await);
                }
                results.sort_by_key(|r| r.base_offset);
                let mut next = 0;
                for result in &results {
                    assert_eq!(result.base_offset, next);
                    next = result.last_offset + 1;
                }
                assert_eq!(log.high_watermark(), next);
                assert_eq!(read_all(&log).await.len(), 64);
                assert!(log.segment_count() > 1);
                log.close().await.unwrap();
                reader.await;
            });
        }
    }

    #[test]
    fn delete_removes_the_partition() {
        with_dir(|dir| async move {
            let log = PartitionLog::open(dir.clone(), small_config(0))
                .await
                .unwrap();
            log.append(
                BytesMut::from(&sample_batch(2, Compression::None)[..]),
                AppendWait::Nothing,
                None,
            )
            .await
            .unwrap();
            log.delete().await.unwrap();
            assert!(!dir.exists());
            assert!(matches!(
                log.read(0, 2, 100, true).await,
                Err(LogError::Closed)
            ));
            assert!(matches!(
                log.append(
                    BytesMut::from(&sample_batch(2, Compression::None)[..]),
                    AppendWait::Nothing,
                    None
                )
                .await,
                Err(LogError::Closed)
            ));
        });
    }

    #[test]
    fn log_append_time_is_applied_and_found() {
        with_dir(|dir| async move {
            let log = PartitionLog::open(dir, small_config(0)).await.unwrap();
            for now in [5_000, 6_000] {
                log.append(
                    BytesMut::from(&batch_at(3, Compression::Snappy, 10)[..]),
                    AppendWait::Durable,
                    Some(now),
                )
                .await
                .unwrap();
            }
            let got = read_all(&log).await;
            let header = BatchHeader::view(&got[1]).unwrap();
            assert_eq!(header.max_timestamp.get(), 6_000);
            assert!(crate::protocol::batch::validate(&got[1], 1 << 20).is_ok());
            assert_eq!(
                log.offset_for_timestamp(5_500).await.unwrap(),
                Some((3, 6_000))
            );
            assert_eq!(log.max_timestamp().await.unwrap(), Some((3, 6_000)));
        });
    }

    /// Flips one byte of the `index`-th batch of the segment file at `path`
    /// (`batch_len` bytes each), `at` bytes into the batch.
    fn flip_byte(path: &Path, batch_len: usize, index: usize, at: usize) {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[batch_len * index + at] ^= 0x04;
        std::fs::write(path, bytes).unwrap();
    }

    fn base_of(batch: &Bytes) -> i64 {
        BatchHeader::view(batch).unwrap().base_offset.get()
    }

    #[test]
    fn a_flipped_byte_in_a_closed_segment_is_caught_when_read() {
        with_dir(|dir| async move {
            let batch = sample_batch(5, Compression::None);
            let log = PartitionLog::open(dir.clone(), small_config(0))
                .await
                .unwrap();
            append_at(&log, 40, 1_000).await;
            log.close().await.unwrap();
            let per_segment = (2048 / batch.len()) as i64;
            let second = 5 * per_segment;
            // A byte of a record of the third batch of the second segment.
            let victim = super::super::segment::log_path(&dir, second);
            flip_byte(&victim, batch.len(), 2, batch.len() - 3);
            let bad = second + 10;

            let log = PartitionLog::open(dir.clone(), small_config(0))
                .await
                .unwrap();
            assert_eq!(log.recovery_scanned_bytes(), 0, "a closed log is trusted");
            let hw = log.high_watermark();
            // The first batch of a read is bad: an error naming file and position.
            for offset in [bad, bad + 4] {
                match log.read(offset, hw, usize::MAX, true).await {
                    Err(LogError::Corrupt { path, position, .. }) => {
                        assert_eq!(path, victim);
                        assert_eq!(position, 2 * batch.len() as u64);
                    }
                    other => panic!("offset {offset}: expected Corrupt, got {other:?}"),
                }
            }
            // A read from before it gets the good batches and stops there.
            let got = log.read(0, hw, usize::MAX, true).await.unwrap();
            assert_eq!(got.len() as i64, bad / 5);
            assert_eq!(base_of(got.last().unwrap()), bad - 5);
            // After it, and in other segments, everything reads.
            let got = log.read(bad + 5, hw, usize::MAX, true).await.unwrap();
            assert_eq!(base_of(&got[0]), bad + 5);
            assert_eq!(got.len() as i64, (200 - bad - 5) / 5);
            assert_eq!(log.read(0, hw, 1, true).await.unwrap().len(), 1);
            // Appends go on.
            append_at(&log, 1, 1_000).await;
            assert_eq!(log.log_end_offset(), 205);
        });
    }

    #[test]
    fn a_batch_at_the_wrong_offset_is_not_served() {
        with_dir(|dir| async move {
            let batch = sample_batch(5, Compression::None);
            let log = PartitionLog::open(dir.clone(), small_config(0))
                .await
                .unwrap();
            append_at(&log, 4, 1_000).await;
            log.close().await.unwrap();
            // baseOffset is outside the CRC: only the offsets give it away.
            flip_byte(&super::super::segment::log_path(&dir, 0), batch.len(), 2, 7);
            let log = PartitionLog::open(dir, small_config(0)).await.unwrap();
            let got = log.read(0, 20, usize::MAX, true).await.unwrap();
            assert_eq!(got.len(), 2);
            assert!(matches!(
                log.read(10, 20, usize::MAX, true).await,
                Err(LogError::Corrupt { .. })
            ));
        });
    }

    #[test]
    fn batches_larger_than_a_read_step_are_read_whole_and_checked() {
        with_dir(|dir| async move {
            let records = 20_000;
            let batch = sample_batch(records, Compression::None);
            let step = super::super::segment::READ_STEP_BYTES;
            assert!(batch.len() > step + 100, "{} bytes", batch.len());
            let config = small_config(0);
            let config = LogConfig {
                segment_bytes: LogConfig::default().segment_bytes,
                ..config
            };
            let log = PartitionLog::open(dir.clone(), config.clone())
                .await
                .unwrap();
            for _ in 0..3 {
                append_one(&log, &batch, AppendWait::Durable).await.unwrap();
            }
            let got: Vec<Vec<u8>> = read_all(&log).await.iter().map(|b| unassigned(b)).collect();
            assert_eq!(got, vec![unassigned(&batch); 3]);
            log.close().await.unwrap();
            // A byte of the second batch that its first step does not cover.
            let path = super::super::segment::log_path(&dir, 0);
            flip_byte(&path, batch.len(), 1, step + 100);

            let log = PartitionLog::open(dir, config).await.unwrap();
            let hw = log.high_watermark();
            let got = log.read(0, hw, usize::MAX, true).await.unwrap();
            assert_eq!(got.len(), 1, "the read stops before the damaged batch");
            match log.read(records as i64, hw, usize::MAX, true).await {
                Err(LogError::Corrupt { position, .. }) => {
                    assert_eq!(position, batch.len() as u64)
                }
                other => panic!("expected Corrupt, got {other:?}"),
            }
            let got = log.read(2 * records as i64, hw, 1, true).await.unwrap();
            assert_eq!(got.len(), 1, "the batch after it reads");
        });
    }

    /// Offsets 0.. in 5-record batches, exactly `count` of them.
    fn assert_contiguous(got: &[Bytes], count: usize) {
        let bases: Vec<i64> = got.iter().map(base_of).collect();
        let expected: Vec<i64> = (0..count as i64).map(|b| b * 5).collect();
        assert_eq!(bases, expected);
    }

    #[test]
    fn a_failed_write_gives_up_its_appends_and_the_log_goes_on() {
        for cache in [0, TAIL_CACHE_TEST_BYTES] {
            with_dir(move |dir| async move {
                let batch = sample_batch(5, Compression::None);
                let per_segment = 2048 / batch.len();
                let log = PartitionLog::open(dir.clone(), small_config(cache))
                    .await
                    .unwrap();
                append_at(&log, per_segment - 2, 1_000).await;
                let acked = log.log_end_offset();
                // Sealing segment 0 fails: its index file cannot be created.
                let trap = super::super::segment::index_path(&dir, 0);
                std::fs::create_dir(&trap).unwrap();
                for _ in 0..2 {
                    // The end of segment 0, its seal and the start of
                    // segment 1, unacknowledged (acks=0), then one that waits.
                    for _ in 0..=per_segment {
                        if log.segment_count() > 1 {
                            break;
                        }
                        append_one(&log, &batch, AppendWait::Nothing).await.unwrap();
                    }
                    assert_eq!(log.segment_count(), 2);
                    let failed = append_one(&log, &batch, AppendWait::Durable).await;
                    assert!(
                        matches!(failed, Err(LogError::WriteFailed(_))),
                        "{failed:?}"
                    );
                    // Back to what was written before the failed group:
                    // the acknowledged batches, maybe some acks=0 ones.
                    let end = log.log_end_offset();
                    assert!((acked..acked + 15).contains(&end), "log end {end}");
                    assert_eq!(log.high_watermark(), end);
                    assert_eq!(log.segment_count(), 1);
                    assert_eq!(log.size_bytes(), (end / 5) as u64 * batch.len() as u64);
                    let log_file = super::super::segment::log_path(&dir, 0);
                    let file_size = std::fs::metadata(log_file).unwrap().len();
                    assert_eq!(file_size, log.size_bytes());
                    assert_eq!(segment_files(&dir, "log"), 1);
                    assert_contiguous(&read_all(&log).await, (end / 5) as usize);
                }
                // Room again: the given-up offsets are taken anew.
                std::fs::remove_dir(&trap).unwrap();
                let end = log.log_end_offset();
                let result = append_one(&log, &batch, AppendWait::Durable).await.unwrap();
                assert_eq!(result.base_offset, end);
                append_at(&log, 5, 1_000).await;
                let batches = (end / 5 + 6) as usize;
                assert_eq!(log.log_end_offset(), 5 * batches as i64);
                assert_eq!(log.segment_count(), 2);
                assert_contiguous(&read_all(&log).await, batches);
                log.close().await.unwrap();

                let log = PartitionLog::open(dir, small_config(cache)).await.unwrap();
                assert_eq!(log.recovery_scanned_bytes(), 0);
                assert_contiguous(&read_all(&log).await, batches);
            });
        }
    }

    /// Appends `batch` and waits for `wait`.
    async fn append_one(
        log: &Rc<PartitionLog>,
        batch: &[u8],
        wait: AppendWait,
    ) -> Result<AppendResult, LogError> {
        log.append(BytesMut::from(batch), wait, None).await
    }

    #[test]
    fn wait_for_data_wakes_on_append() {
        with_dir(|dir| async move {
            let log = PartitionLog::open(dir, small_config(0)).await.unwrap();
            let woke = Rc::new(Cell::new(false));
            let waiter = {
                let woke = woke.clone();
                let wait = log.wait_for_data();
                glommio::spawn_local(async move {
                    wait.await;
                    woke.set(true);
                })
            };
            glommio::yield_if_needed().await;
            assert!(!woke.get());
            log.append(
                BytesMut::from(&sample_batch(1, Compression::None)[..]),
                AppendWait::Durable,
                None,
            )
            .await
            .unwrap();
            waiter.await;
            assert!(woke.get());
            // A long poll given up leaves nothing behind.
            let abandoned = log.wait_for_data();
            let polled = futures_lite::future::poll_once(Box::pin(abandoned)).await;
            assert!(polled.is_none());
            assert!(log.marks.progress.wakers.borrow().is_empty());
            // A waiter on a closing log is released too.
            let wait = log.wait_for_data();
            log.close().await.unwrap();
            wait.await;
        });
    }

    fn assert_out_of_range(result: Result<Vec<Bytes>, LogError>, log_start: i64) {
        match result {
            Err(LogError::OffsetOutOfRange {
                log_start_offset, ..
            }) => assert_eq!(log_start_offset, log_start),
            other => panic!("expected OffsetOutOfRange, got {other:?}"),
        }
    }

    /// Appends `count` batches of 5 records stamped `timestamp`, acknowledged.
    async fn append_at(log: &Rc<PartitionLog>, count: usize, timestamp: i64) {
        for _ in 0..count {
            let batch = batch_at(5, Compression::None, timestamp);
            log.append(BytesMut::from(&batch[..]), AppendWait::Durable, None)
                .await
                .unwrap();
        }
    }

    #[test]
    fn retention_by_size_keeps_the_newest_segments() {
        for cache in [0, TAIL_CACHE_TEST_BYTES] {
            with_dir(move |dir| async move {
                let config = LogConfig {
                    retention_bytes: 3 * 2048,
                    ..small_config(cache)
                };
                let log = PartitionLog::open(dir.clone(), config).await.unwrap();
                append_at(&log, 60, now_ms() as i64).await;
                let (segments_before, size_before) = (log.segment_count(), log.size_bytes());
                assert!(segments_before > 4);
                let outcome = log.enforce_retention(now_ms() as i64).await.unwrap();
                assert!(outcome.deleted_segments > 0);
                assert_eq!(
                    log.segment_count(),
                    segments_before - outcome.deleted_segments
                );
                assert_eq!(outcome.log_start_offset, log.log_start_offset());
                assert_eq!(log.log_end_offset(), 300);
                // Kafka's rule: what is left holds at least retention.bytes,
                // and without its oldest segment it would not.
                let oldest = log.segments.borrow()[0].queued_bytes.get();
                assert!(log.size_bytes() >= 3 * 2048);
                assert!(log.size_bytes() - oldest < 3 * 2048);
                assert!(log.size_bytes() < size_before);
                let start = log.log_start_offset();
                assert_eq!(start, log.segments.borrow()[0].base_offset);
                assert_out_of_range(log.read(start - 1, 300, usize::MAX, true).await, start);
                assert_out_of_range(log.read(0, 300, usize::MAX, true).await, start);
                let got = read_all(&log).await;
                assert_eq!(BatchHeader::view(&got[0]).unwrap().base_offset.get(), start);
                assert_eq!(got.len() as i64, (300 - start) / 5);
                assert_eq!(segment_files(&dir, "log"), log.segment_count());
                assert_eq!(segment_files(&dir, "index"), log.segment_count() - 1);
                assert_eq!(segment_files(&dir, "timeindex"), log.segment_count() - 1);
                // Nothing more to delete until the log grows.
                let again = log.enforce_retention(now_ms() as i64).await.unwrap();
                assert_eq!(again.deleted_segments, 0);
                assert_eq!(again.log_start_offset, start);
            });
        }
    }

    #[test]
    fn retention_by_time_stops_at_the_first_recent_segment() {
        with_dir(|dir| async move {
            let config = LogConfig {
                retention_ms: 60_000,
                ..small_config(0)
            };
            let log = PartitionLog::open(dir, config).await.unwrap();
            let now = now_ms() as i64;
            append_at(&log, 30, 1_000).await;
            let old_end = log.log_end_offset();
            append_at(&log, 30, now).await;
            append_at(&log, 30, 2_000).await;
            let outcome = log.enforce_retention(now).await.unwrap();
            assert!(outcome.deleted_segments > 0);
            // Every kept segment but the one straddling old and new data
            // holds recent timestamps, and the old ones after them stay.
            let start = log.log_start_offset();
            assert!(start <= old_end);
            assert!(log.segments.borrow()[0].indexes.borrow().max_timestamp >= now - 60_000);
            assert_eq!(read_all(&log).await.len() as i64, (450 - start) / 5);
            assert_out_of_range(log.read(0, 450, usize::MAX, true).await, start);
        });
    }

    #[test]
    fn retention_never_deletes_the_active_segment() {
        with_dir(|dir| async move {
            let config = LogConfig {
                retention_ms: 60_000,
                retention_bytes: 0,
                ..small_config(0)
            };
            let log = PartitionLog::open(dir, config).await.unwrap();
            append_at(&log, 40, 1_000).await;
            let outcome = log.enforce_retention(now_ms() as i64).await.unwrap();
            assert!(outcome.deleted_segments > 0);
            assert_eq!(log.segment_count(), 1);
            assert_eq!(log.log_start_offset(), log.active().base_offset);
            assert_eq!(log.log_end_offset(), 200);
            assert!(!read_all(&log).await.is_empty());
            // Appends go on at the log end offset.
            append_at(&log, 1, 1_000).await;
            assert_eq!(log.log_end_offset(), 205);
        });
    }

    #[test]
    fn retention_waits_for_the_writer_to_seal_a_segment() {
        with_dir(|dir| async move {
            let config = LogConfig {
                retention_bytes: 0,
                ..small_config(0)
            };
            let log = PartitionLog::open(dir, config).await.unwrap();
            for _ in 0..40 {
                let batch = sample_batch(5, Compression::None);
                log.append(BytesMut::from(&batch[..]), AppendWait::Nothing, None)
                    .await
                    .unwrap();
            }
            assert!(log.segment_count() > 1);
            // Nothing is written or sealed yet: nothing may go.
            let outcome = log.enforce_retention(now_ms() as i64).await.unwrap();
            assert_eq!(outcome.deleted_segments, 0);
            log.wait_until(|log| log.sealed_offset.get() == log.active().base_offset)
                .await
                .unwrap();
            let outcome = log.enforce_retention(now_ms() as i64).await.unwrap();
            assert!(outcome.deleted_segments > 0);
            assert_eq!(log.segment_count(), 1);
        });
    }

    #[test]
    fn a_read_racing_retention_gets_its_data_or_out_of_range() {
        with_dir(|dir| async move {
            let config = LogConfig {
                retention_bytes: 0,
                ..small_config(0)
            };
            let log = PartitionLog::open(dir, config).await.unwrap();
            append_at(&log, 40, 1_000).await;
            let reader = {
                let log = log.clone();
                glommio::spawn_local(async move { log.read(0, 200, usize::MAX, true).await })
            };
            let outcome = log.enforce_retention(now_ms() as i64).await.unwrap();
            match reader.await {
                Ok(got) => {
                    assert_eq!(BatchHeader::view(&got[0]).unwrap().base_offset.get(), 0)
                }
                Err(e) => assert_out_of_range(Err(e), outcome.log_start_offset),
            }
            assert_out_of_range(
                log.read(0, 200, usize::MAX, true).await,
                outcome.log_start_offset,
            );
        });
    }

    #[test]
    fn log_start_offset_survives_a_restart() {
        for clean in [true, false] {
            with_dir(move |dir| async move {
                let config = LogConfig {
                    retention_bytes: 2 * 2048,
                    ..small_config(0)
                };
                let log = PartitionLog::open(dir.clone(), config.clone())
                    .await
                    .unwrap();
                append_at(&log, 40, 1_000).await;
                let outcome = log.enforce_retention(now_ms() as i64).await.unwrap();
                assert!(outcome.log_start_offset > 0);
                let segments = log.segment_count();
                if clean {
                    log.close().await.unwrap();
                }
                drop(log);
                let log = PartitionLog::open(dir, config).await.unwrap();
                assert_eq!(log.log_start_offset(), outcome.log_start_offset);
                assert_eq!(log.segment_count(), segments);
                assert_eq!(log.log_end_offset(), 200);
                assert_out_of_range(
                    log.read(0, 200, usize::MAX, true).await,
                    outcome.log_start_offset,
                );
                let got = read_all(&log).await;
                assert_eq!(
                    BatchHeader::view(&got[0]).unwrap().base_offset.get(),
                    outcome.log_start_offset
                );
            });
        }
    }

    #[test]
    fn delete_records_moves_the_start_and_drops_whole_segments() {
        for (cache, clean) in [(0, true), (TAIL_CACHE_TEST_BYTES, false)] {
            with_dir(move |dir| async move {
                let log = PartitionLog::open(dir.clone(), small_config(cache))
                    .await
                    .unwrap();
                append_at(&log, 80, 1_000).await;
                let segments_before = log.segment_count();
                assert!(segments_before > 3);
                assert!(matches!(
                    log.delete_records(401).await,
                    Err(LogError::OffsetOutOfRange { .. })
                ));
                assert_eq!(log.delete_records(103).await.unwrap(), 103);
                assert_eq!(log.log_start_offset(), 103);
                assert!(log.segment_count() < segments_before);
                assert!(log.segments.borrow()[0].base_offset <= 103);
                assert_eq!(segment_files(&dir, "log"), log.segment_count());
                assert_out_of_range(log.read(102, 400, usize::MAX, true).await, 103);
                // The batch holding the new start is served whole.
                let got = log.read(103, 400, usize::MAX, true).await.unwrap();
                assert_eq!(BatchHeader::view(&got[0]).unwrap().base_offset.get(), 100);
                // Below the start is no change.
                assert_eq!(log.delete_records(50).await.unwrap(), 103);
                if clean {
                    log.close().await.unwrap();
                }
                drop(log);
                let log = PartitionLog::open(dir.clone(), small_config(cache))
                    .await
                    .unwrap();
                assert_eq!(log.log_start_offset(), 103);
                assert_out_of_range(log.read(0, 400, usize::MAX, true).await, 103);
                // Up to the high watermark: only the active segment is left.
                assert_eq!(log.delete_records(400).await.unwrap(), 400);
                assert_eq!(log.segment_count(), 1);
                assert!(log
                    .read(400, 400, usize::MAX, true)
                    .await
                    .unwrap()
                    .is_empty());
                append_at(&log, 1, 1_000).await;
                assert_eq!(log.log_end_offset(), 405);
                let got = read_all(&log).await;
                assert_eq!(BatchHeader::view(&got[0]).unwrap().base_offset.get(), 400);
            });
        }
    }

    #[test]
    fn reconfigure_applies_to_the_next_append_and_retention_pass() {
        with_dir(|dir| async move {
            let log = PartitionLog::open(dir, LogConfig::default()).await.unwrap();
            append_at(&log, 20, 1_000).await;
            assert_eq!(log.segment_count(), 1);
            log.reconfigure(LogConfig {
                retention_bytes: 0,
                ..small_config(0)
            });
            append_at(&log, 20, 1_000).await;
            assert!(log.segment_count() > 1);
            let outcome = log.enforce_retention(now_ms() as i64).await.unwrap();
            assert!(outcome.deleted_segments > 0);
            assert_eq!(log.segment_count(), 1);
        });
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        /// Random batches in, the same bytes out (but for the assigned
        /// offsets and epoch), across a clean close or a crash.
        #[test]
        fn random_batches_survive_a_restart(
            appends in proptest::collection::vec(
                proptest::collection::vec((1usize..20, 0usize..CODECS.len()), 1..4),
                1..20,
            ),
            segment_bytes in 200u64..6000,
            cached in proptest::bool::ANY,
            clean in proptest::bool::ANY,
        ) {
            with_dir(move |dir| async move {
                let config = LogConfig {
                    segment_bytes,
                    index_interval_bytes: 256,
                    tail_cache_bytes: if cached { TAIL_CACHE_TEST_BYTES } else { 0 },
                    ..LogConfig::default()
                };
                let log = PartitionLog::open(dir.clone(), config.clone()).await.unwrap();
                let mut sent = Vec::new();
                for batches in &appends {
                    let mut bytes = Vec::new();
                    for &(records, codec) in batches {
                        let batch = sample_batch(records, CODECS[codec]);
                        sent.push(unassigned(&batch));
                        bytes.extend(batch);
                    }
                    log.append(BytesMut::from(&bytes[..]), AppendWait::Durable, None)
                        .await
                        .unwrap();
                }
                let expect = |got: Vec<Bytes>| {
                    let got: Vec<Vec<u8>> = got.iter().map(|b| unassigned(b)).collect();
                    assert_eq!(got, sent);
                };
                expect(read_all(&log).await);
                let log_end_offset = log.log_end_offset();
                if clean {
                    log.close().await.unwrap();
                }
                drop(log);
                let log = PartitionLog::open(dir, config).await.unwrap();
                assert_eq!(log.log_end_offset(), log_end_offset);
                if clean {
                    assert_eq!(log.recovery_scanned_bytes(), 0);
                }
                expect(read_all(&log).await);
            });
        }
    }

    #[test]
    fn timestamps_are_found() {
        for cache in [0, TAIL_CACHE_TEST_BYTES] {
            with_dir(move |dir| async move {
                let log = PartitionLog::open(dir.clone(), small_config(cache))
                    .await
                    .unwrap();
                assert_eq!(log.max_timestamp().await.unwrap(), None);
                assert_eq!(log.offset_for_timestamp(0).await.unwrap(), None);
                // 30 batches of 4 records, batch b at timestamps 1000 + 40 * b
                // + (0..4), except batch 17 at 9000..9004, the largest.
                for b in 0..30 {
                    let codec = CODECS[b % CODECS.len()];
                    let mut batch = batch_at(4, codec, 1000 + 40 * b as i64);
                    if b == 17 {
                        batch = batch_at(4, codec, 9000);
                    }
                    log.append(BytesMut::from(&batch[..]), AppendWait::Durable, None)
                        .await
                        .unwrap();
                }
                // Batch 17 holds offsets 68..72.
                let check = |log: Rc<PartitionLog>| async move {
                    // (target timestamp, first offset at or after it, its timestamp)
                    let expected = [
                        (0, 0, 1000),
                        (1000, 0, 1000),
                        (1001, 1, 1001),
                        (1003, 3, 1003),
                        (1004, 4, 1040),
                        (1645, 68, 9000),
                        (1641, 65, 1641),
                        (9001, 69, 9001),
                    ];
                    for (target, offset, timestamp) in expected {
                        assert_eq!(
                            log.offset_for_timestamp(target).await.unwrap(),
                            Some((offset, timestamp)),
                            "timestamp {target}"
                        );
                    }
                    assert_eq!(log.offset_for_timestamp(9004).await.unwrap(), None);
                    assert_eq!(log.max_timestamp().await.unwrap(), Some((71, 9003)));
                    log
                };
                let log = check(log).await;
                log.close().await.unwrap();
                let log = PartitionLog::open(dir, small_config(cache)).await.unwrap();
                check(log).await;
            });
        }
    }
}
