//! Retention and DeleteRecords: which whole closed segments go, and the log
//! start offset that moves past them.
//!
//! Invariant: only segments the writer has sealed, never the active one,
//! oldest first; the log start offset only grows, moves in memory at once
//! and reaches the checkpoint before any file is removed.

use std::rc::Rc;

use super::super::segment::{Segment, NO_TIMESTAMP};
use super::super::{LogError, RetentionOutcome};
use super::PartitionLog;

impl PartitionLog {
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
        self.offsets.start_at(offset);
        self.start_epochs_at(offset);
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
        let sealed_offset = self.offsets.sealed();
        let mut count = 0;
        for segment in segments.iter().take(segments.len().saturating_sub(1)) {
            // Nothing above the high watermark goes: a replicated
            // partition's may lag what the writer sealed (Kafka's rule).
            if segment.next_offset.get() > sealed_offset
                || segment.next_offset.get() > self.high_watermark()
            {
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
        let log_start_offset = segments[count].base_offset.max(self.offsets.log_start());
        let deleted: Vec<Rc<Segment>> = segments.drain(..count).collect();
        self.offsets.start_at(log_start_offset);
        self.start_epochs_at(log_start_offset);
        self.tail.borrow_mut().evict_below(log_start_offset);
        deleted
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
}
