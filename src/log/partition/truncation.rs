//! `truncate_to`: a follower cuts its log's tail at the point where it
//! diverges from its leader's (KIP-101, KIP-279), or a returning old
//! leader drops what the new one never had.
//!
//! Steps: the queued writes go down; the segment holding the cut is
//! scanned up to it (its kept batches and indexes); then, with no `.await`,
//! the segment list, the cut segment, the offsets, the tail cache, the
//! marks and the epoch cache all end at the cut. Then the files, in an
//! order a crash between any two steps recovers from: the checkpoint (its
//! recovery point at or below the cut segment, so that `open` scans it),
//! the segments wholly past the cut (newest first, so what is left is
//! always a prefix), the cut segment's file (cut, synced, its stale index
//! files removed), the epoch file (after the data: `open` drops entries
//! past the log end it finds), and the producer state rebuilt as `open`
//! builds it (the snapshots past the cut go). A crash before the files
//! are cut recovers the whole old log, consistent, and the caller
//! truncates again.
//!
//! `truncate_fully_and_start_at`: a follower whose log ends below its
//! leader's log start (retention or DeleteRecords there removed what it
//! never copied) drops every segment and starts empty at the leader's
//! start (Kafka's `truncateFullyAndStartAt`). In memory at once, without
//! an `.await`; then the files, newest segment first (a crash leaves a
//! prefix of the old log under the old checkpoint, and the follower finds
//! itself out of range again; the producer snapshots went first), then
//! the checkpoint naming the new start, then the emptied epoch file.
//!
//! Invariant: afterwards the log, its indexes, tail cache, epochs and
//! producer state are exactly those of a log that never had the tail (or,
//! restarted, of a fresh log whose start is the offset given); the cut is
//! at a batch boundary (the batch holding the offset goes whole), never
//! below the log start.

use std::rc::Rc;

use super::super::recovery::{scan_below, Scan};
use super::super::segment::Segment;
use super::super::LogError;
use super::PartitionLog;
use crate::clock::now_ms;

impl PartitionLog {
    /// Removes every record at and after `offset` (the whole batch holding
    /// it: the log then ends at that batch's base offset, see
    /// `log_end_offset`); nothing when `offset` is at or past the log end.
    /// The high watermark and durable end are clamped to the new end. The
    /// caller never truncates below a high watermark it acknowledged (the
    /// log does not check) and appends nothing meanwhile. Fails with
    /// `OffsetOutOfRange`, changing nothing, when the cut would fall below
    /// the log start (`offset` inside the batch holding it).
    pub async fn truncate_to(&self, offset: i64) -> Result<(), LogError> {
        assert!(
            offset >= self.log_start_offset(),
            "truncation to {offset} below the log start {}",
            self.log_start_offset()
        );
        self.check_open()?;
        if offset >= self.log_end_offset() {
            // Nothing to cut but epoch entries at the end with no batch: a
            // leader that recorded its epoch's start and was deposed before
            // any batch of it landed would otherwise name that epoch as its
            // last fetched one, and diverge at the same offset for ever
            // (Kafka's `truncateTo` cuts its epoch cache here too).
            self.cut_epochs(self.log_end_offset());
            return self.write_epochs().await;
        }
        // Retention and the cleaner change the segment list: not meanwhile.
        let _permit = self.maintenance_lock.acquire_permit(1).await?;
        self.wait_until(|log| !log.writer.running.get() && log.writer.pending.borrow().is_empty())
            .await?;
        self.check_open()?;
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        let (holding, kept) = self.find_cut(offset).await?;
        if kept.next_offset < self.log_start_offset() {
            return Err(self.out_of_range());
        }
        let removed = self.cut_in_memory(&holding, kept);
        self.cut_files(&removed).await
    }

    /// The segment holding `offset` and what it keeps: the batches below
    /// the one holding `offset` (their bytes, indexes and end offset).
    async fn find_cut(&self, offset: i64) -> Result<(Rc<Segment>, Scan), LogError> {
        let holding = self
            .segment_after(offset, None)
            .expect("a log has a segment");
        let index_interval_bytes = self.config.borrow().index_interval_bytes;
        let size = holding.written_bytes.get();
        let scan = scan_below(&holding, size, index_interval_bytes, offset).await?;
        if !scan.reason.is_empty() {
            return Err(holding.corrupt(scan.valid_bytes, &scan.reason));
        }
        Ok((holding, scan))
    }

    /// The in-memory half, without an `.await`: every structure ends at
    /// `end`. Returns the segments wholly past it, taken out of the list.
    fn cut_in_memory(&self, holding: &Rc<Segment>, kept: Scan) -> Vec<Rc<Segment>> {
        let (position, end) = (kept.valid_bytes, kept.next_offset);
        let removed = {
            let mut segments = self.segments.borrow_mut();
            let at = segments
                .iter()
                .position(|s| Rc::ptr_eq(s, holding))
                .expect("the holding segment is in the list");
            // An emptied segment goes, but for the first: the list never empties.
            let keep = if position == 0 && at > 0 { at } else { at + 1 };
            segments.split_off(keep)
        };
        let active = self.active();
        if Rc::ptr_eq(&active, holding) {
            active.cut(position, end, kept.indexes);
        }
        assert_eq!(
            active.next_offset.get(),
            end,
            "the active segment ends at the cut"
        );
        self.offsets.truncated_to(end, active.base_offset);
        self.tail.borrow_mut().truncate_from(end);
        self.clamp_marks(end);
        self.cut_epochs(end);
        self.cleaning
            .offset
            .set(self.cleaning.offset.get().min(end));
        removed
    }

    /// The files, in the order the module doc gives.
    async fn cut_files(&self, removed: &[Rc<Segment>]) -> Result<(), LogError> {
        self.write_checkpoint(self.offsets.sealed()).await?;
        for segment in removed.iter().rev() {
            segment.delete_files().await?;
        }
        self.active().cut_file().await?;
        self.write_epochs().await?;
        self.rebuild_producers().await
    }
}

impl PartitionLog {
    /// Drops every record and starts the log empty at `offset`: log start,
    /// log end, durable end and high watermark all there, no epochs, no
    /// producers. For a follower only (the caller appends nothing
    /// meanwhile); `offset` is never below the log start.
    pub async fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), LogError> {
        assert!(
            offset >= self.log_start_offset(),
            "restart at {offset} below the log start {}",
            self.log_start_offset()
        );
        self.check_open()?;
        let _permit = self.maintenance_lock.acquire_permit(1).await?;
        self.wait_until(|log| !log.writer.running.get() && log.writer.pending.borrow().is_empty())
            .await?;
        self.check_open()?;
        let removed = self.restart_in_memory(offset);
        // Before any `.await`: no checkpoint meanwhile writes an old
        // producer's snapshot, and none on disk outlives the old segments.
        self.forget_producers()?;
        for segment in removed.iter().rev() {
            segment.delete_files().await?;
        }
        self.write_checkpoint(offset).await?;
        self.write_epochs().await
    }

    /// The in-memory half: one new, empty segment at `offset`; returns the
    /// old ones, taken out of the list.
    fn restart_in_memory(&self, offset: i64) -> Vec<Rc<Segment>> {
        let fresh = Rc::new(Segment::new(&self.dir, offset, now_ms()));
        fresh.prefer_write_through(self.writes_through());
        fresh.offset_gaps.set(self.cleaning.offset_gaps.get());
        let removed = std::mem::replace(&mut *self.segments.borrow_mut(), vec![fresh]);
        self.offsets.restarted_at(offset);
        self.tail.borrow_mut().clear();
        self.restart_marks(offset);
        // Every entry goes: the leader's batches bring their epochs.
        self.epochs
            .change(|cache| cache.truncate_from_end(i64::MIN));
        self.cleaning.offset.set(offset);
        removed
    }
}
