//! The group-commit writer: one task per partition that takes everything
//! `append` queued (up to `GROUP_BYTES_MAX`), writes it with one `write_at`
//! per segment, seals rolled segments, fdatasyncs as the flush policy asks,
//! raises the durable end (and with it the high watermark of a partition
//! not replicated) and wakes whoever waits.
//!
//! Invariant: at most one writer task runs per log (`Writer::running`);
//! each segment's bytes are written in order, each run starting where the
//! last ended (`Segment::written_bytes` only grows), so no group is written
//! twice; the written offset only grows, except when a failed write gives
//! the unwritten tail up (`give_up`), which moves the log end offset back to
//! it. The high watermark never moves back.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::super::pinned::PinnedFrame;
use super::super::segment::{IndexMark, Segment};
use super::super::{FlushPolicy, LogError};
use super::admission::Admission;
use super::PartitionLog;
use crate::protocol::batch::{framed_size, BatchHeader};

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
pub(super) const GROUP_BYTES_MAX: usize = 16 << 20;

/// Work for the writer, in append order.
pub(super) enum Pending {
    Write {
        segment: Rc<Segment>,
        position: u64,
        /// Bytes in `owned` and `bodies`.
        len: usize,
        /// The patched headers and the batches copied whole, back to back.
        owned: Bytes,
        /// The bodies kept as slices of the request, each with where in
        /// `owned` its header ends (where it goes).
        bodies: Vec<(usize, Bytes)>,
        /// The offsets of these bytes are `base_offset..next_offset`.
        base_offset: i64,
        next_offset: i64,
        /// The segment's indexes before these batches were recorded.
        indexes_before: IndexMark,
        /// Raised when the writer gives these bytes up; their append fails.
        given_up: Rc<Cell<bool>>,
        /// The request frame `bodies` are slices of, kept charged to its
        /// shard's budget until they are written.
        _frame: Option<Rc<PinnedFrame>>,
    },
    /// The segment rolled: everything before this is its last data.
    Seal(Rc<Segment>),
}

/// Bytes of one segment the writer puts down with one `write_at`.
struct Run {
    segment: Rc<Segment>,
    /// Where `buf` goes in the segment file.
    position: u64,
    /// `buf` holds the batches of offsets `base_offset..next_offset`.
    base_offset: i64,
    next_offset: i64,
    buf: Vec<u8>,
}

impl Run {
    /// Adds the bytes of the next append, queued at `position` up to
    /// offset `next_offset`: the copy every produced byte takes once, as
    /// `write_at` takes its buffer by value.
    fn extend(&mut self, position: u64, owned: &[u8], bodies: &[(usize, Bytes)], next_offset: i64) {
        assert_eq!(self.position + self.buf.len() as u64, position);
        let mut from = 0;
        for (at, body) in bodies {
            self.buf.extend_from_slice(&owned[from..*at]);
            self.buf.extend_from_slice(body);
            from = *at;
        }
        self.buf.extend_from_slice(&owned[from..]);
        self.next_offset = next_offset;
    }

    /// Before the bytes go to disk: back-to-back well-framed batches whose
    /// offsets follow on from `base_offset` to `next_offset` (or grow, in
    /// a segment with offset gaps: a follower's copy of a compacted
    /// leader's batches). Reads the batch headers only (O(1) per batch),
    /// so it runs in production too.
    fn check_framing(&self) {
        let gaps = self.segment.offset_gaps.get();
        let mut cursor = 0;
        let mut offset = self.base_offset;
        while cursor < self.buf.len() {
            let batch = &self.buf[cursor..];
            let size = framed_size(batch).expect("a queued batch is framed");
            let header = BatchHeader::view(batch).expect("a framed batch has a header");
            let base = header.base_offset.get();
            assert!(
                base == offset || (gaps && base > offset),
                "a batch out of place in a group: {base} where {offset} was due"
            );
            offset = header.last_offset() + 1;
            cursor += size;
        }
        assert_eq!(
            offset, self.next_offset,
            "a group that ends off its offsets"
        );
    }
}

/// The writer's state: what is queued for it and how its last writes went.
pub(super) struct Writer {
    /// Work for the writer, in append order.
    pub(super) pending: RefCell<VecDeque<Pending>>,
    /// A writer task is running: `start_writer` spawns no second one.
    pub(super) running: Cell<bool>,
    /// `FlushPolicy::Interval`: an fdatasync is planned.
    pub(super) flush_scheduled: Cell<bool>,
    pub(super) last_sync: Cell<Instant>,
    /// Why the last appends given up were given up.
    pub(super) last_write_error: RefCell<String>,
    /// Set from a write that failed until one succeeds.
    pub(super) failing: Cell<bool>,
    /// Bounds the bytes in `pending`; appends wait their turn past it.
    pub(super) admission: Admission,
}

impl Writer {
    pub(super) fn new() -> Writer {
        Writer {
            pending: RefCell::new(VecDeque::new()),
            running: Cell::new(false),
            flush_scheduled: Cell::new(false),
            last_sync: Cell::new(Instant::now()),
            last_write_error: RefCell::new(String::new()),
            failing: Cell::new(false),
            admission: Admission::default(),
        }
    }
}

impl PartitionLog {
    pub(super) fn start_writer(self: &Rc<Self>) {
        if self.writer.running.get() || self.writer.pending.borrow().is_empty() {
            return;
        }
        self.writer.running.set(true);
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
                    crate::metrics::group_committed(group.len(), group_bytes);
                    if self.writer.failing.replace(false) {
                        ::log::info!(
                            "partition log {}: writes resumed at offset {}",
                            self.dir.display(),
                            self.offsets.written()
                        );
                    }
                    continue;
                }
                Err(WriteFailure::Retryable(e)) => {
                    // Logged when writes start failing, not at every retry.
                    let level = if self.writer.failing.replace(true) {
                        ::log::Level::Debug
                    } else {
                        ::log::Level::Error
                    };
                    ::log::log!(
                        level,
                        "partition log {}: write failed; appends from offset {} on are given up and new ones go there: {e}",
                        self.dir.display(),
                        self.offsets.written()
                    );
                    *self.writer.last_write_error.borrow_mut() = e.to_string();
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
            self.writer.pending.borrow_mut().clear();
            self.writer.admission.emptied();
            // Long polls are released; appends and reads report the failure.
            self.marks.closed.set(true);
            break;
        }
        self.writer.running.set(false);
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
        let to = self.offsets.written();
        let mut items = group;
        items.extend(self.writer.pending.borrow_mut().drain(..));
        self.writer.admission.emptied();
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
        self.offsets.give_up_to_written(active.base_offset);
        self.tail.borrow_mut().truncate_from(to);
        self.give_up_producers(to);
        self.cut_epochs(to);
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
        let mut pending = self.writer.pending.borrow_mut();
        let mut group = Vec::new();
        let mut group_bytes = 0;
        while let Some(item) = pending.front() {
            let len = match item {
                Pending::Write { len, .. } => *len,
                Pending::Seal(_) => 0,
            };
            if !group.is_empty() && group_bytes + len > GROUP_BYTES_MAX {
                break;
            }
            group_bytes += len;
            self.writer.admission.taken(len);
            group.extend(pending.pop_front());
        }
        (group, group_bytes)
    }

    /// Writes one group: one `write_at` per run of bytes of one segment,
    /// seals where the log rolled, one fdatasync as the policy asks. On a
    /// `Retryable` failure, the written offset is where the log is intact:
    /// the group start, or the end of a segment sealed in the group.
    async fn write_group(
        self: &Rc<Self>,
        group: &[Pending],
        group_bytes: usize,
    ) -> Result<(), WriteFailure> {
        use WriteFailure::{Fatal, Retryable};
        // The epochs of these bytes reach the disk before they do.
        self.write_epochs().await.map_err(Retryable)?;
        let mut run: Option<Run> = None;
        let mut next_offset = self.offsets.written();
        let mut last_segment = None;
        for item in group {
            match item {
                Pending::Write {
                    segment,
                    position,
                    owned,
                    bodies,
                    base_offset,
                    next_offset: next,
                    ..
                } => {
                    // Appends are queued in offset order, each from where
                    // the last ended: the group is one run of offsets.
                    assert_eq!(*base_offset, next_offset, "a gap or overlap in a group");
                    next_offset = *next;
                    if let Some(run) = run.as_mut().filter(|r| Rc::ptr_eq(&r.segment, segment)) {
                        run.extend(*position, owned, bodies, *next);
                        continue;
                    }
                    Self::write_run(run.take()).await?;
                    // Usually the whole group goes to this one segment.
                    let mut new_run = Run {
                        segment: segment.clone(),
                        position: *position,
                        base_offset: *base_offset,
                        next_offset: *base_offset,
                        buf: Vec::with_capacity(group_bytes),
                    };
                    new_run.extend(*position, owned, bodies, *next);
                    run = Some(new_run);
                    last_segment = Some(segment.clone());
                }
                Pending::Seal(segment) => {
                    Self::write_run(run.take()).await?;
                    segment.sync().await.map_err(Fatal)?;
                    segment.write_indexes().await.map_err(Retryable)?;
                    // Everything up to the end of this segment is written
                    // and synced: a later failure in the group keeps it.
                    let end = segment.next_offset.get();
                    assert_eq!(end, next_offset, "a segment sealed before its last batch");
                    self.offsets.wrote_to(end);
                    self.offsets.sealed_to(end);
                    self.raise_durable_end(end);
                }
            }
        }
        Self::write_run(run.take()).await?;
        self.offsets.wrote_to(next_offset);
        self.flush_group(last_segment).await?;
        self.raise_durable_end(next_offset);
        Ok(())
    }

    /// After a group is written: fdatasync as the flush policy asks
    /// (`last_segment` is the one the group's last bytes went to).
    async fn flush_group(
        self: &Rc<Self>,
        last_segment: Option<Rc<Segment>>,
    ) -> Result<(), WriteFailure> {
        let flush_policy = self.config.borrow().flush_policy;
        match flush_policy {
            FlushPolicy::Sync => {
                // `AppendWait::Written` (acks=1) does not wait for the sync
                // (on a write-through segment the write was the sync).
                self.marks.progress.notify();
                if let Some(segment) = last_segment {
                    segment.sync().await.map_err(WriteFailure::Fatal)?;
                }
                self.writer.last_sync.set(Instant::now());
            }
            FlushPolicy::Interval { flush_ms } => {
                let due = Duration::from_millis(flush_ms);
                let elapsed = self.writer.last_sync.get().elapsed();
                if elapsed >= due {
                    self.active().sync().await.map_err(WriteFailure::Fatal)?;
                    self.writer.last_sync.set(Instant::now());
                } else {
                    self.schedule_flush(due - elapsed);
                }
            }
            FlushPolicy::None => {}
        }
        Ok(())
    }

    async fn write_run(run: Option<Run>) -> Result<(), WriteFailure> {
        let Some(run) = run else {
            return Ok(());
        };
        let segment = run.segment.clone();
        // A run starts where the last write to its segment ended: nothing
        // is written twice, nothing skipped.
        assert_eq!(
            run.position,
            segment.written_bytes.get(),
            "a write out of place"
        );
        let end = run.position + run.buf.len() as u64;
        assert!(end <= segment.queued_bytes.get());
        run.check_framing();
        if let Err(e) = segment.write_all(run.buf, run.position).await {
            return Err(if segment.write_error_is_fatal(&e) {
                WriteFailure::Fatal(e)
            } else {
                WriteFailure::Retryable(e)
            });
        }
        segment.written_bytes.set(end);
        Ok(())
    }

    /// `FlushPolicy::Interval`: one fdatasync of the active segment `delay`
    /// from now, unless one is already planned.
    fn schedule_flush(self: &Rc<Self>, delay: Duration) {
        if self.writer.flush_scheduled.replace(true) {
            return;
        }
        let log = self.clone();
        glommio::spawn_local(async move {
            glommio::timer::sleep(delay).await;
            log.writer.flush_scheduled.set(false);
            if log.marks.closed.get() {
                return;
            }
            if let Err(e) = log.active().sync().await {
                ::log::error!("partition log {}: flush failed: {e}", log.dir.display());
                *log.failure.borrow_mut() = Some(e.to_string());
                log.marks.progress.notify();
            }
            log.writer.last_sync.set(Instant::now());
        })
        .detach();
    }
}
