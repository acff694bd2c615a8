//! The tail cache: the newest batches of a partition, as `Bytes` slices of
//! the buffers they were appended in, so consumers at the tail are served
//! without touching the file.
//!
//! Invariant: the cached batches are contiguous and end at the log end
//! offset (append pushes, a given-up write truncates back, retention and
//! DeleteRecords evict from the front), and hold at most `capacity_bytes`
//! (evicting the oldest first). Holds bytes checked on append; never does IO.

use std::collections::VecDeque;

use bytes::Bytes;

use super::super::segment::ReadBudget;
use crate::protocol::batch::BatchHeader;

pub(super) struct CachedBatch {
    pub(super) last_offset: i64,
    pub(super) bytes: Bytes,
}

/// The newest batches, contiguous up to the log end offset.
pub(super) struct TailCache {
    batches: VecDeque<CachedBatch>,
    size_bytes: usize,
    capacity_bytes: usize,
}

impl TailCache {
    pub(super) fn new(capacity_bytes: usize) -> TailCache {
        TailCache {
            batches: VecDeque::new(),
            size_bytes: 0,
            capacity_bytes,
        }
    }

    pub(super) fn push(&mut self, batch: CachedBatch) {
        if let Some(last) = self.batches.back() {
            assert_eq!(
                BatchHeader::view(&batch.bytes).map(|h| h.base_offset.get()),
                Some(last.last_offset + 1),
                "the tail cache holds contiguous batches"
            );
        }
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
    pub(super) fn truncate_from(&mut self, offset: i64) {
        while let Some(last) = self.batches.back() {
            if last.last_offset < offset {
                break;
            }
            self.size_bytes -= last.bytes.len();
            self.batches.pop_back();
        }
    }

    /// Drops the batches that end below `offset` (deleted by retention).
    pub(super) fn evict_below(&mut self, offset: i64) {
        while let Some(first) = self.batches.front() {
            if first.last_offset >= offset {
                break;
            }
            self.size_bytes -= first.bytes.len();
            self.batches.pop_front();
        }
    }

    /// First offset the cache can serve.
    pub(super) fn start_offset(&self) -> Option<i64> {
        let first = self.batches.front()?;
        BatchHeader::view(&first.bytes).map(|h| h.base_offset.get())
    }

    pub(super) fn read(
        &self,
        offset: i64,
        max_offset: i64,
        budget: &mut ReadBudget,
        out: &mut Vec<Bytes>,
    ) {
        let from = self.batches.partition_point(|b| b.last_offset < offset);
        if let Some(first) = self.batches.get(from) {
            assert!(
                BatchHeader::view(&first.bytes).is_some_and(|h| h.base_offset.get() <= offset),
                "a tail read starts at the batch holding its offset"
            );
        }
        for batch in self.batches.range(from..) {
            if batch.last_offset >= max_offset || !budget.admit(batch.bytes.len()) {
                return;
            }
            out.push(batch.bytes.clone());
        }
    }
}
