//! The tail cache: the newest batches of a partition, so consumers at the
//! tail are served without touching the file. A batch is held as its
//! patched header plus a body: small batches whole in a buffer of the log's
//! own, larger ones as the 61-byte header the log patched and a `Bytes`
//! slice of the produce request's records (see `append.rs`).
//!
//! Invariant: the cached batches are contiguous and end at the log end
//! offset (append pushes, a given-up write truncates back, retention and
//! DeleteRecords evict from the front), and count at most `capacity_bytes`
//! (evicting the oldest first) as charged by `append.rs`: the batches of
//! one append share the buffer the log copied their headers (and small
//! batches) to, so the newest batch of each append still cached is charged
//! that buffer's size plus its slices (a caller's own buffer whole; of a
//! request frame, the bodies' length), the others nothing. A body sliced
//! from a request frame holds its `PinnedFrame`, which its shard's
//! `FrameBudget` charges once however many tails hold it (`pinned.rs`). So
//! a shard's tails keep at most `tail_cache_bytes` per partition it leads
//! allocated (the allocator's rounding aside) plus that budget of frames.
//! Holds bytes checked on append; never does IO.

use std::collections::VecDeque;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use super::super::pinned::PinnedFrame;
use super::super::segment::ReadBudget;
use crate::protocol::batch::BatchHeader;

/// One batch: `head` followed by `body` (empty when `head` is the whole batch).
pub(super) struct CachedBatch {
    pub(super) last_offset: i64,
    pub(super) head: Bytes,
    pub(super) body: Bytes,
    /// What the cache counts for this batch: the memory its append keeps
    /// allocated when it is the append's newest batch, else 0.
    pub(super) pinned_bytes: usize,
    /// The request frame `body` is a slice of, kept charged to its shard's
    /// budget while the body is held.
    pub(super) _frame: Option<Rc<PinnedFrame>>,
}

impl CachedBatch {
    pub(super) fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }

    /// The batch's bytes as the chunks they are held in, without copying.
    pub(super) fn push_chunks(&self, out: &mut Vec<Bytes>) {
        out.push(self.head.clone());
        if !self.body.is_empty() {
            out.push(self.body.clone());
        }
    }

    /// The batch in one buffer: a copy when it is held in two parts.
    pub(super) fn contiguous(&self) -> Bytes {
        if self.body.is_empty() {
            return self.head.clone();
        }
        let mut whole = BytesMut::with_capacity(self.len());
        whole.extend_from_slice(&self.head);
        whole.extend_from_slice(&self.body);
        whole.freeze()
    }
}

/// The newest batches, in offset order up to the log end offset
/// (contiguous but for a compacted leader's gaps a follower copied).
pub(super) struct TailCache {
    batches: VecDeque<CachedBatch>,
    /// The sum of the batches' `pinned_bytes`.
    pinned_bytes: usize,
    capacity_bytes: usize,
}

impl TailCache {
    pub(super) fn new(capacity_bytes: usize) -> TailCache {
        TailCache {
            batches: VecDeque::new(),
            pinned_bytes: 0,
            capacity_bytes,
        }
    }

    pub(super) fn push(&mut self, batch: CachedBatch) {
        if let Some(last) = self.batches.back() {
            // Contiguous but where a compacted leader's batches, taken
            // verbatim by a follower, leave offset gaps.
            assert!(
                BatchHeader::view(&batch.head)
                    .is_some_and(|h| h.base_offset.get() > last.last_offset),
                "the tail cache holds batches in offset order"
            );
        }
        self.pinned_bytes += batch.pinned_bytes;
        self.batches.push_back(batch);
        while self.pinned_bytes > self.capacity_bytes {
            let Some(evicted) = self.batches.pop_front() else {
                break;
            };
            self.pinned_bytes -= evicted.pinned_bytes;
        }
    }

    /// Drops the batches that end at or after `offset` (given up by the
    /// writer). Should that leave an append's older batches, the newest of
    /// them takes over the charge of what they still pin.
    pub(super) fn truncate_from(&mut self, offset: i64) {
        let mut dropped_bytes = 0;
        while let Some(last) = self.batches.back() {
            if last.last_offset < offset {
                break;
            }
            dropped_bytes += last.pinned_bytes;
            self.batches.pop_back();
        }
        match self.batches.back_mut() {
            Some(last) if last.pinned_bytes == 0 => last.pinned_bytes = dropped_bytes,
            _ => self.pinned_bytes -= dropped_bytes,
        }
    }

    /// Drops every batch (the log closed), giving their frames back.
    pub(super) fn clear(&mut self) {
        self.batches.clear();
        self.pinned_bytes = 0;
    }

    /// What the cached batches pin, as charged.
    #[cfg(test)]
    pub(super) fn pinned_bytes(&self) -> usize {
        self.pinned_bytes
    }

    /// Drops the batches that end below `offset` (deleted by retention).
    pub(super) fn evict_below(&mut self, offset: i64) {
        while let Some(first) = self.batches.front() {
            if first.last_offset >= offset {
                break;
            }
            self.pinned_bytes -= first.pinned_bytes;
            self.batches.pop_front();
        }
    }

    /// First offset the cache can serve.
    pub(super) fn start_offset(&self) -> Option<i64> {
        let first = self.batches.front()?;
        BatchHeader::view(&first.head).map(|h| h.base_offset.get())
    }

    /// The batches from the one holding `offset` below `max_offset`, as
    /// `budget` admits: each in one buffer when `contiguous`, else as the
    /// chunks it is held in (a header and a body, no copy).
    pub(super) fn read(
        &self,
        offset: i64,
        max_offset: i64,
        budget: &mut ReadBudget,
        contiguous: bool,
        out: &mut Vec<Bytes>,
    ) {
        let from = self.batches.partition_point(|b| b.last_offset < offset);
        if let Some(first) = self.batches.get(from) {
            // Or, with `offset` in a gap, at the first batch after it.
            assert!(
                from > 0
                    || BatchHeader::view(&first.head)
                        .is_some_and(|h| h.base_offset.get() <= offset),
                "a tail read starts at the batch holding its offset"
            );
        }
        for batch in self.batches.range(from..) {
            if batch.last_offset >= max_offset || !budget.admit(batch.len()) {
                return;
            }
            if contiguous {
                out.push(batch.contiguous());
            } else {
                batch.push_chunks(out);
            }
        }
    }
}
