//! The high watermark split from this replica's durable end.
//!
//! The writer moves the durable end: what this replica has made as
//! durable as its flush policy asks (fdatasync'd under `FlushPolicy::Sync`,
//! written otherwise); a follower reports it and a leader counts it for
//! itself. The high watermark is what is committed: consumers read below
//! it, `acks=all` waits for it. A partition nobody marks replicated (every
//! RF=1 partition) moves it with the durable end, as a single broker
//! always did; a replicated one moves it only through
//! `advance_high_watermark`, from the leader's bookkeeping or the leader's
//! answer to a follower's fetch.
//!
//! Invariant: `log start <= high watermark <= durable end <= written
//! offset`; neither mark moves back, but for `truncate_to`, which clamps
//! both. A replicated partition opened after a crash starts from the
//! checkpointed high watermark, never from its log end: a restarted replica
//! does not claim as committed what it never knew to be.

use std::future::Future;

use super::waiters::Watermarks;
use super::PartitionLog;

impl PartitionLog {
    /// What consumers may read and `acks=all` waits for: the durable end
    /// unless the partition is replicated (see the module doc).
    pub fn high_watermark(&self) -> i64 {
        self.marks.high_watermark.get()
    }

    /// What this replica has made as durable as its flush policy asks:
    /// fdatasync'd under `FlushPolicy::Sync`, written otherwise.
    pub fn durable_end(&self) -> i64 {
        self.marks.durable_end.get()
    }

    /// Marks the partition replicated (its high watermark then moves only
    /// through `advance_high_watermark`) or not (it moves with the durable
    /// end again, raised to it at once). Marking it replicated never raises
    /// the high watermark; right after `open` it lowers it to the
    /// checkpointed one.
    pub fn set_replicated(&self, replicated: bool) {
        let marks = &self.marks;
        marks.replicated.set(replicated);
        if replicated {
            if let Some(recovered) = marks.recovered_high_watermark.take() {
                let start = recovered.clamp(self.log_start_offset(), self.durable_end());
                marks
                    .high_watermark
                    .set(marks.high_watermark.get().min(start));
            }
        } else {
            marks.recovered_high_watermark.set(None);
            marks
                .high_watermark
                .set(marks.high_watermark.get().max(self.durable_end()));
        }
        self.assert_marks();
        marks.progress.notify();
    }

    /// Whether the high watermark moves only through `advance_high_watermark`.
    pub fn is_replicated(&self) -> bool {
        self.marks.replicated.get()
    }

    /// Raises the high watermark to `offset`, clamped to the durable end;
    /// an offset at or below it changes nothing (it never moves back).
    /// Wakes whoever waits on it (acks, long polls); returns whether it moved.
    pub fn advance_high_watermark(&self, offset: i64) -> bool {
        let marks = &self.marks;
        let before = marks.high_watermark.get();
        let to = offset.min(self.durable_end());
        if to <= before {
            return false;
        }
        marks.high_watermark.set(to);
        marks.recovered_high_watermark.set(None);
        self.assert_marks();
        marks.progress.notify();
        true
    }

    /// The writer made everything below `offset` durable: raises the
    /// durable end (never back, only over written bytes), and the high
    /// watermark with it unless replicated; wakes the waiters.
    pub(super) fn raise_durable_end(&self, offset: i64) {
        assert!(
            offset <= self.offsets.written(),
            "durable end {offset} past the written offset {}",
            self.offsets.written()
        );
        let marks = &self.marks;
        if offset > marks.durable_end.get() {
            marks.durable_end.set(offset);
        }
        if !marks.replicated.get() {
            // A write of an RF=1 partition commits what it wrote: the
            // checkpointed value no longer tells anything.
            marks.recovered_high_watermark.set(None);
            if offset > marks.high_watermark.get() {
                marks.high_watermark.set(offset);
            }
        }
        self.assert_marks();
        marks.progress.notify();
    }

    /// The high watermark a checkpoint writes: the committed one, or the
    /// checkpointed one found at `open` while nothing since committed more
    /// (so that a crash right after `open` does not commit the recovered tail).
    pub(super) fn checkpoint_high_watermark(&self) -> i64 {
        let high_watermark = self.high_watermark();
        self.marks
            .recovered_high_watermark
            .get()
            .map_or(high_watermark, |recovered| recovered.min(high_watermark))
    }

    /// `truncate_to`: both marks (and the recovered one) at most `end`.
    pub(super) fn clamp_marks(&self, end: i64) {
        let marks = &self.marks;
        marks.durable_end.set(marks.durable_end.get().min(end));
        marks
            .high_watermark
            .set(marks.high_watermark.get().min(end));
        if let Some(recovered) = marks.recovered_high_watermark.get() {
            marks.recovered_high_watermark.set(Some(recovered.min(end)));
        }
        self.assert_marks();
        marks.progress.notify();
    }

    /// `truncate_fully_and_start_at`: both marks at the new start, the
    /// recovered one forgotten (Kafka sets the high watermark there too).
    pub(super) fn restart_marks(&self, offset: i64) {
        let marks = &self.marks;
        marks.durable_end.set(offset);
        marks.high_watermark.set(offset);
        marks.recovered_high_watermark.set(None);
        self.assert_marks();
        marks.progress.notify();
    }

    /// O(1), so it runs in production too.
    fn assert_marks(&self) {
        let (high_watermark, durable_end) = (self.high_watermark(), self.durable_end());
        assert!(
            high_watermark <= durable_end && durable_end <= self.offsets.written(),
            "high watermark {high_watermark} <= durable end {durable_end} <= written {}",
            self.offsets.written()
        );
    }

    /// Resolves once the high watermark grows past its value at the call (or
    /// the log closes): a consumer's long poll. Woken by the writer or
    /// `advance_high_watermark`; no timer, no spinning.
    pub fn wait_for_data(&self) -> impl Future<Output = ()> {
        let start = self.marks.high_watermark.get();
        self.wait_for_mark(move |marks| marks.high_watermark.get() > start)
    }

    /// Resolves once the durable end passes `offset` (or the log closes): a
    /// follower's fetch parked at this leader's log end.
    pub fn wait_for_durable_end_past(&self, offset: i64) -> impl Future<Output = ()> {
        self.wait_for_mark(move |marks| marks.durable_end.get() > offset)
    }

    /// Resolves once `reached` holds of the marks or the log closes; holds
    /// the marks, not the log.
    fn wait_for_mark(&self, reached: impl Fn(&Watermarks) -> bool) -> impl Future<Output = ()> {
        let marks = self.marks.clone();
        async move {
            loop {
                let seen = marks.progress.generation();
                if reached(&marks) || marks.closed.get() {
                    return;
                }
                marks.progress.changed(seen).await;
            }
        }
    }
}
