//! Reads served as file ranges: the batches of a checked range
//! (`Verified`) that the page cache holds go out as one `FileRange` per
//! step, which the connection's writer has the kernel send; no record byte
//! is copied in user space. What cannot go out so (a range not checked
//! yet, pages not cached, a compacted segment with offset gaps, a first
//! batch larger than the budget) is read by the copy path (`read.rs`).
//!
//! Where a range starts and ends comes from the offset index and from a
//! few batch headers read from the page cache (`RWF_NOWAIT`, 61 bytes
//! each): the batch holding the offset asked for (at most
//! `HEADER_HOPS_MAX` headers from its index entry, usually one or two),
//! and the batch after the range's end.
//!
//! Invariant: a range is whole batches, checked this run, all below the
//! bound the caller passes (the high watermark: shoal never cuts a log
//! below it, and never rewrites a file in place), starting at the batch
//! holding the offset asked for and ending at a batch boundary whose next
//! offset is known; its bytes fit the budget.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use super::read::{read_nowait, CopyRead};
use super::{ReadBudget, Segment};
use crate::log::file_range::{count, pages_cached, Chunk, FileRange};
use crate::log::LogError;
use crate::protocol::batch::{BatchHeader, BATCH_HEADER_SIZE};

/// Most batch headers read to find the batch holding an offset from its
/// index entry. Index entries come every `index.interval.bytes` (4 KiB by
/// default), so batches of 1 KiB or more need at most a few; past this
/// many the copy path, which reads a whole window in one call, is cheaper.
const HEADER_HOPS_MAX: usize = 8;

/// A batch's place, from its header.
#[derive(Debug, Clone, Copy)]
struct Located {
    base_offset: i64,
    last_offset: i64,
    size: u64,
}

/// The first batch of the next range: where it starts, its size.
#[derive(Debug, Clone, Copy)]
struct First {
    position: u64,
    size: u64,
}

/// The batch right after a range: where the next read starts.
#[derive(Debug, Clone, Copy)]
struct Next {
    position: u64,
    offset: i64,
    /// Its size; `None` at the end of the segment.
    size: Option<u64>,
}

impl Segment {
    /// The fetch's read of this segment: batches from the one holding
    /// `offset`, below `max_offset`, within the budget, as `read_batches`
    /// returns them, but each checked range below `file_below` that the
    /// page cache holds as a file range; the rest through the copy path.
    pub async fn read_chunks(
        &self,
        offset: i64,
        max_offset: i64,
        file_below: i64,
        budget: &mut ReadBudget,
        out: &mut Vec<Chunk>,
    ) -> Result<bool, LogError> {
        let served_before = !out.is_empty();
        let mut from = offset.max(self.base_offset);
        let mut start = None;
        let bound = max_offset.min(file_below);
        while !self.offset_gaps.get() && from < bound {
            let file = self.shared_file().await?;
            let first = match start {
                Some(first) => first,
                None => match self.holding(file.as_raw_fd(), from) {
                    Some(first) => first,
                    None => break,
                },
            };
            start = Some(first);
            if !budget.admits(first.size as usize) {
                return Ok(true);
            }
            let Some((range, next)) = self.file_range(file, first.position, from, bound, budget)
            else {
                break;
            };
            out.push(Chunk::File(range));
            self.read_ahead(next.position, false).await;
            if next.offset >= max_offset {
                return Ok(true);
            }
            let Some(size) = next.size else {
                return Ok(false);
            };
            (from, start) = (
                next.offset,
                Some(First {
                    position: next.position,
                    size,
                }),
            );
        }
        let mut copied = Vec::new();
        let read = CopyRead {
            offset: from,
            start: start.map(|first| first.position),
            max_offset,
            served_before: served_before || !out.is_empty(),
        };
        let result = self.read_copied(read, budget, &mut copied).await;
        out.extend(copied.into_iter().map(Chunk::Memory));
        result
    }

    /// The file range from the batch at `start`, which holds `from`, and
    /// the batch after it; `None` when the copy path must read from there.
    fn file_range(
        &self,
        file: Arc<OwnedFd>,
        start: u64,
        from: i64,
        bound: i64,
        budget: &mut ReadBudget,
    ) -> Option<(FileRange, Next)> {
        let fd = file.as_raw_fd();
        let checked_end = self.verified.borrow().end_from(start)?;
        let limit = checked_end.min(start.saturating_add(budget.remaining() as u64));
        let next = self.range_end(fd, start, limit, bound)?;
        let len = next.position - start;
        if !pages_cached(fd, start, len) {
            return None;
        }
        budget.take(len as usize);
        count(|counts| counts.file_bytes += len);
        let range = FileRange::new(file, start, len as usize, from..next.offset);
        Some((range, next))
    }

    /// The batch holding `offset`, found from its index entry through at
    /// most `HEADER_HOPS_MAX` headers in the page cache.
    fn holding(&self, fd: i32, offset: i64) -> Option<First> {
        let mut position = self.lookup(offset);
        for _ in 0..HEADER_HOPS_MAX {
            let batch = self.header_at(fd, position)?;
            if batch.last_offset >= offset {
                return (batch.base_offset <= offset).then_some(First {
                    position,
                    size: batch.size,
                });
            }
            position += batch.size;
        }
        None
    }

    /// The end of a range from `start`: the last batch boundary at or
    /// before `limit` with every batch before it below `bound`. That is
    /// the segment's end, or else the start of an indexed batch (its
    /// header read for its base offset and size).
    fn range_end(&self, fd: i32, start: u64, limit: u64, bound: i64) -> Option<Next> {
        let written = self.written_bytes.get();
        let next_offset = self.next_offset.get();
        // The segment's end, when nothing is queued past the written bytes
        // (so `next_offset` is the offset after them).
        if written > start
            && written <= limit
            && self.queued_bytes.get() == written
            && next_offset <= bound
        {
            return Some(Next {
                position: written,
                offset: next_offset,
                size: None,
            });
        }
        let entry = {
            let indexes = self.indexes.borrow();
            let entries = indexes.offsets.entries();
            let within = entries.partition_point(|e| u64::from(e.position) <= limit.min(written));
            let below = entries
                .partition_point(|e| self.base_offset + i64::from(e.relative_offset) < bound);
            let last = within.min(below).checked_sub(1)?;
            entries[last]
        };
        let position = u64::from(entry.position);
        if position <= start {
            return None;
        }
        let batch = self.header_at(fd, position)?;
        let indexed_last = self.base_offset + i64::from(entry.relative_offset);
        (batch.last_offset == indexed_last).then_some(Next {
            position,
            offset: batch.base_offset,
            size: Some(batch.size),
        })
    }

    /// The header of the batch at `position`, from the page cache, if it
    /// is there and frames a batch within the written bytes.
    fn header_at(&self, fd: i32, position: u64) -> Option<Located> {
        let written = self.written_bytes.get();
        if position + BATCH_HEADER_SIZE as u64 > written {
            return None;
        }
        let mut header = [0u8; BATCH_HEADER_SIZE];
        // SAFETY: `header` is a live local of BATCH_HEADER_SIZE bytes; `fd`
        // is the segment's shared descriptor, open for the call.
        let read = unsafe { read_nowait(fd, position, header.as_mut_ptr(), header.len()) };
        count(|counts| counts.header_bytes += read as u64);
        if read != header.len() {
            return None;
        }
        let view = BatchHeader::view(&header)?;
        let size = u64::try_from(view.total_size()).ok()?;
        (size >= BATCH_HEADER_SIZE as u64 && position + size <= written).then_some(Located {
            base_offset: view.base_offset.get(),
            last_offset: view.last_offset(),
            size,
        })
    }

    /// The segment file's descriptor that file ranges share: a duplicate
    /// of the log's, made on first use, so that ranges outlive the
    /// segment's own file (closed by retention, the cleaner's swap).
    pub(super) async fn shared_file(&self) -> Result<Arc<OwnedFd>, LogError> {
        if let Some(file) = self.shared.borrow().as_ref() {
            return Ok(file.clone());
        }
        let file = self.file().await?;
        // SAFETY: the log's descriptor, open while `file` (an Rc of it) lives.
        let borrowed = unsafe { BorrowedFd::borrow_raw(file.as_raw_fd()) };
        let shared = Arc::new(borrowed.try_clone_to_owned()?);
        *self.shared.borrow_mut() = Some(shared.clone());
        Ok(shared)
    }
}
