//! Reads: whole batches from an offset, the newest from the tail cache as
//! zero-copy clones, older ones from the segment files. A fetch takes them
//! as chunks (`read_chunks`: a batch the tail holds in two parts is two
//! chunks, and batches below the high watermark that this process checked
//! and the page cache holds are file ranges the kernel sends, see
//! `segment/ranges.rs`); the log's own readers take each batch in one
//! buffer (`read`), each checked as it is read (`segment/read.rs`).
//!
//! Invariant: a read never returns bytes past the high watermark the caller
//! passes nor past what the writer has written, starts at the batch holding
//! the offset asked for, and holds no borrow of the segment list across an
//! `.await` (retention and the cleaner change the list under a read). A file
//! range lies below the log's high watermark, which no cut goes below.

use std::rc::Rc;

use bytes::Bytes;

use super::super::file_range::Chunk;
use super::super::segment::{ReadBudget, Segment};
use super::super::LogError;
use super::PartitionLog;
use crate::protocol::batch::BatchHeader;

impl PartitionLog {
    /// Whole batches from the one holding `offset`, stopping before a batch
    /// that reaches `max_offset` (exclusive; the caller passes the high
    /// watermark) and at about `max_bytes`, with at least one whole batch when
    /// `min_one_batch` (KIP-74). The newest come from the tail cache as
    /// zero-copy clones, older ones are read from the segment files.
    /// Each batch in one buffer: a tail batch held in two parts is copied.
    pub async fn read(
        &self,
        offset: i64,
        max_offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<Vec<Bytes>, LogError> {
        let chunks = self
            .read_batches(offset, max_offset, max_bytes, min_one_batch, None)
            .await?;
        Ok(chunks
            .into_iter()
            .map(|chunk| match chunk {
                Chunk::Memory(bytes) => bytes,
                Chunk::File(range) => unreachable!("a file range at {}", range.position()),
            })
            .collect())
    }

    /// `read` for a fetch: the batches as the chunks they are held in (no
    /// copy), to be sent back to back: memory, or file ranges below the
    /// high watermark.
    pub async fn read_chunks(
        &self,
        offset: i64,
        max_offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadChunks, LogError> {
        let file_below = self.high_watermark();
        let chunks = self
            .read_batches(
                offset,
                max_offset,
                max_bytes,
                min_one_batch,
                Some(file_below),
            )
            .await?;
        let last_offset = match chunks.last() {
            Some(Chunk::File(range)) => Some(range.offsets().end - 1),
            _ => batch_starts(&chunks)
                .last()
                .and_then(|&i| chunks[i].memory().and_then(|b| BatchHeader::view(b)))
                .map(|header| header.last_offset()),
        };
        Ok(ReadChunks {
            chunks,
            last_offset,
        })
    }

    /// The read: `file_below` is `Some` for a fetch (chunks as held, file
    /// ranges below it), `None` for the log's own readers (each batch in
    /// one buffer).
    async fn read_batches(
        &self,
        offset: i64,
        max_offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        file_below: Option<i64>,
    ) -> Result<Vec<Chunk>, LogError> {
        let contiguous = file_below.is_none();
        let log_end_offset = self.offsets.log_end();
        if offset < self.offsets.log_start() || offset > log_end_offset {
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
                let mut held = Vec::new();
                tail.read(offset, max_offset, &mut budget, contiguous, &mut held);
                out.extend(held.into_iter().map(Chunk::Memory));
                assert_served(&out, offset, max_offset, self.cleaning.offset_gaps.get());
                return Ok(out);
            }
        }
        // Only written bytes are in the files.
        let max_offset = max_offset.min(self.offsets.written());
        if offset >= max_offset {
            return Ok(out);
        }
        let mut from = offset;
        let mut next = self.segment_after(from, None);
        // One segment at a time: no borrow of the list across a read, and the
        // next segment is found by offset, as retention may shorten the list
        // and the cleaner replace segments while a read waits.
        while let Some(segment) = next {
            if segment.base_offset >= max_offset {
                break;
            }
            // Retention removed the segments from `from` on under the read
            // (the list then starts past it): what was read is all there is
            // before a gap, and serving past it would skip offsets.
            if segment.base_offset > from {
                if out.is_empty() {
                    return Err(self.out_of_range());
                }
                break;
            }
            // i64::MIN: no offset is below it, so no file range.
            let below = file_below.unwrap_or(i64::MIN);
            match segment
                .read_chunks(from, max_offset, below, &mut budget, &mut out)
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
        assert_served(&out, offset, max_offset, self.cleaning.offset_gaps.get());
        Ok(out)
    }

    /// The segment holding `offset` (or the first one, when it is below
    /// them all), unless that is `done`: then the one after it.
    pub(super) fn segment_after(
        &self,
        offset: i64,
        done: Option<&Rc<Segment>>,
    ) -> Option<Rc<Segment>> {
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

    pub(super) fn out_of_range(&self) -> LogError {
        LogError::OffsetOutOfRange {
            log_start_offset: self.offsets.log_start(),
            log_end_offset: self.offsets.log_end(),
        }
    }
}

/// What `read_chunks` hands out: batches back to back, each one chunk or
/// two (its header, then its body), or many in one file range.
pub struct ReadChunks {
    pub chunks: Vec<Chunk>,
    /// The last offset of the last batch; `None` when there is none.
    pub last_offset: Option<i64>,
}

/// Where each batch (or file range of batches) starts among `chunks`: a
/// memory chunk shorter than the batch its header frames is followed by
/// the rest of that batch.
fn batch_starts(chunks: &[Chunk]) -> Vec<usize> {
    let mut starts = Vec::with_capacity(chunks.len());
    let mut i = 0;
    while i < chunks.len() {
        starts.push(i);
        let Chunk::Memory(head) = &chunks[i] else {
            i += 1;
            continue;
        };
        let size = BatchHeader::view(head)
            .and_then(|header| usize::try_from(header.total_size()).ok())
            .expect("a served batch starts with its header");
        let mut have = head.len();
        i += 1;
        if have < size {
            have += chunks.get(i).and_then(Chunk::memory).map_or(0, Bytes::len);
            i += 1;
        }
        assert_eq!(have, size, "a served batch in more than two chunks");
    }
    starts
}

/// The offsets a served batch (or file range) holds, first and last: for
/// a file range, from the offset its read asked for.
fn served_offsets(chunk: &Chunk) -> (i64, i64) {
    match chunk {
        Chunk::Memory(head) => {
            let header = BatchHeader::view(head).expect("a served batch has a header");
            (header.base_offset.get(), header.last_offset())
        }
        Chunk::File(range) => (range.offsets().start, range.offsets().end - 1),
    }
}

/// What a read hands out, checked after the bytes came back: the first
/// batch holds `offset` (in a log with offset gaps, it may start past it),
/// each next one starts right after the last (or later, with gaps), and
/// none reaches `max_offset`. Headers only, O(1) per batch.
fn assert_served(out: &[Chunk], offset: i64, max_offset: i64, gaps: bool) {
    let mut expected = offset;
    for (i, start) in batch_starts(out).into_iter().enumerate() {
        let (base, last) = served_offsets(&out[start]);
        let in_place = match (i, gaps) {
            (0, false) => base <= expected && expected <= last,
            (0, true) => expected <= last,
            (_, false) => base == expected,
            (_, true) => base >= expected,
        };
        assert!(
            in_place && last < max_offset,
            "read from {offset} below {max_offset}: batch {i} holds {base}..={last}"
        );
        expected = last + 1;
    }
}
