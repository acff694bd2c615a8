//! Reads of a segment file into buffers: the copy path. Every batch read
//! is checked before it is served (magic, CRC-32C, offsets that follow
//! on), and the range of checked batches is remembered (`Verified`), so
//! that later reads of it that find it in the page cache go out as file
//! ranges (`ranges.rs`) instead of being read again.
//!
//! Invariant: bytes that are not what the log wrote are never served; no
//! read holds the reactor for more than one `READ_STEP_BYTES` step of
//! copying or checksumming; a page not in the page cache is never waited
//! for on the reactor (`read_cached` refuses it, glommio reads it).

use std::os::fd::{AsRawFd, RawFd};

use bytes::{Bytes, BytesMut};

use super::{frame, Expected, ReadBudget, Segment, READ_STEP_BYTES};
use crate::log::file_range::count;
use crate::log::LogError;
use crate::protocol::batch::{
    stored_crc, verify_stored, BatchError, BatchHeader, BATCH_HEADER_SIZE,
};

/// A copy-path read: from the batch holding `offset` (at `start` when the
/// caller knows where it is) to below `max_offset`. A bad batch ends it
/// without an error when `served_before` (earlier batches of the same
/// fetch went out).
#[derive(Debug, Clone, Copy)]
pub(super) struct CopyRead {
    pub offset: i64,
    pub start: Option<u64>,
    pub max_offset: i64,
    pub served_before: bool,
}

impl Segment {
    /// Reads exactly `len` bytes at `position` into one buffer, at most
    /// `READ_STEP_BYTES` per read, letting other tasks run between reads.
    /// What the page cache holds is copied once, by the kernel, straight
    /// into the buffer returned (`read_cached`); only what is not cached
    /// goes through glommio's read, whose buffer is `!Send` and is copied
    /// again into the returned one, which may leave the shard.
    pub async fn read_exact(&self, position: u64, len: usize) -> Result<Bytes, LogError> {
        assert!(
            position + len as u64 <= self.written_bytes.get(),
            "a read past the written bytes of {}",
            self.log_path().display()
        );
        let file = self.file().await?;
        let mut out = BytesMut::with_capacity(len);
        while out.len() < len {
            let at = position + out.len() as u64;
            let step = (len - out.len()).min(READ_STEP_BYTES);
            let missed = read_cached(file.as_raw_fd(), at, step, &mut out) == 0;
            self.read_ahead(at, missed).await;
            if missed {
                let chunk = file.read_at(at, step).await?;
                if chunk.is_empty() {
                    return Err(self.corrupt(at, "unexpected end of segment file"));
                }
                out.extend_from_slice(&chunk);
            }
            glommio::yield_if_needed().await;
        }
        assert_eq!(out.len(), len, "a read longer than asked");
        count(|counts| counts.copied_bytes += len as u64);
        Ok(out.freeze())
    }

    /// Appends to `out` the whole batches of this segment from the one holding
    /// `offset`, stopping before a batch reaching `max_offset` or one the
    /// budget refuses. Returns true when the read is over, false when it may
    /// go on in the next segment.
    ///
    /// Every batch returned is checked first (magic, CRC-32C, offsets that
    /// follow on): bytes that are not what the log wrote are never served.
    /// A bad batch ends the read after the good ones before it, as Kafka's
    /// consumers see it; only when it would be the first batch of the read
    /// (`out` still empty) is it an error, `LogError::Corrupt`.
    pub async fn read_batches(
        &self,
        offset: i64,
        max_offset: i64,
        budget: &mut ReadBudget,
        out: &mut Vec<Bytes>,
    ) -> Result<bool, LogError> {
        let read = CopyRead {
            offset,
            start: None,
            max_offset,
            served_before: false,
        };
        self.read_copied(read, budget, out).await
    }

    /// `read_batches` as `read` asks. The batches served are remembered
    /// as checked.
    pub(super) async fn read_copied(
        &self,
        read: CopyRead,
        budget: &mut ReadBudget,
        out: &mut Vec<Bytes>,
    ) -> Result<bool, LogError> {
        let mut checked = None;
        let result = self.walk_copied(&read, budget, out, &mut checked).await;
        if let Some((start, end)) = checked {
            self.verified.borrow_mut().insert(start, end);
        }
        result
    }

    /// The walk of `read_copied`; `checked` is the file range of the
    /// batches it checked.
    async fn walk_copied(
        &self,
        read: &CopyRead,
        budget: &mut ReadBudget,
        out: &mut Vec<Bytes>,
        checked: &mut Option<(u64, u64)>,
    ) -> Result<bool, LogError> {
        let CopyRead {
            offset,
            start,
            max_offset,
            served_before,
        } = *read;
        let end = self.written_bytes.get();
        let mut position = start.unwrap_or_else(|| self.lookup(offset));
        // The caller reads below the written offset: the batch the index
        // names is written.
        assert!(position <= end, "an index entry past the written bytes");
        let mut want = budget.window_bytes();
        let mut expected = Expected::Holding(offset.max(self.base_offset));
        let served = |out: &Vec<Bytes>| served_before || !out.is_empty();
        while position < end {
            let buf = self
                .read_exact(position, want.min(end - position) as usize)
                .await?;
            let mut cursor = 0;
            while cursor < buf.len() {
                let at = position + cursor as u64;
                let size = match frame(&buf[cursor..]) {
                    Ok(Some(size)) => size,
                    Ok(None) => break,
                    Err(e) => return self.end_at_corruption(at, &format!("{e:?}"), served(out)),
                };
                let Some(header) = BatchHeader::view(&buf[cursor..]) else {
                    break;
                };
                let last_offset = header.last_offset();
                if last_offset >= offset {
                    if !budget.admit(size) {
                        return Ok(true);
                    }
                    let batch = buf.slice(cursor..cursor + size);
                    if let Err(reason) = self.check_batch(&batch, expected).await {
                        return self.end_at_corruption(at, &reason, served(out));
                    }
                    let first = checked.map_or(at, |(first, _)| first);
                    *checked = Some((first, at + size as u64));
                    if last_offset >= max_offset {
                        return Ok(true);
                    }
                    expected = Expected::StartingAt(last_offset + 1);
                    out.push(batch);
                }
                cursor += size;
            }
            if cursor == 0 {
                // One batch larger than the window: read it alone, at its size.
                want = match self.batch_size_at(position, end).await {
                    Ok(size) => size,
                    Err(LogError::Corrupt { .. }) if served(out) => return Ok(true),
                    Err(e) => return Err(e),
                };
                continue;
            }
            want = budget.window_bytes();
            position += cursor as u64;
        }
        Ok(false)
    }

    /// A batch about to be served: intact (`batch::verify_stored`) and at
    /// the offsets this segment holds, where the read expects it. (The base
    /// offset is outside the CRC; this is what catches a flip there.)
    async fn check_batch(&self, batch: &[u8], expected: Expected) -> Result<(), String> {
        let header = BatchHeader::view(batch).ok_or("short batch header")?;
        let (base, last) = (header.base_offset.get(), header.last_offset());
        verify_in_steps(batch)
            .await
            .map_err(|e| format!("{e:?} in the batch of offsets {base}..={last}"))?;
        let in_segment = base >= self.base_offset && last < self.next_offset.get();
        let in_place = match (expected, self.offset_gaps.get()) {
            (Expected::Holding(offset), false) => base <= offset && offset <= last,
            (Expected::StartingAt(offset), false) => base == offset,
            // The first batch at or after `offset`; then any later one.
            (Expected::Holding(offset), true) => offset <= last,
            (Expected::StartingAt(offset), true) => base >= offset,
        };
        if !in_segment || !in_place {
            return Err(format!(
                "batch claims offsets {base}..={last}, expected {expected:?} within [{}, {})",
                self.base_offset,
                self.next_offset.get()
            ));
        }
        Ok(())
    }

    /// What a read does on finding a bad batch at `position`: it ends there
    /// with what it has, or fails if it has served nothing.
    fn end_at_corruption(
        &self,
        position: u64,
        reason: &str,
        served: bool,
    ) -> Result<bool, LogError> {
        if served {
            Ok(true)
        } else {
            Err(self.corrupt(position, reason))
        }
    }

    /// Size of the batch at `position` from its header, checked to end
    /// within the `end` bytes of the segment.
    async fn batch_size_at(&self, position: u64, end: u64) -> Result<u64, LogError> {
        let header_len = BATCH_HEADER_SIZE.min((end - position) as usize);
        let header = self.read_exact(position, header_len).await?;
        BatchHeader::view(&header)
            .map(|h| h.total_size())
            .filter(|&size| size >= BATCH_HEADER_SIZE as i64 && size as u64 <= end - position)
            .map(|size| size as u64)
            .ok_or_else(|| self.corrupt(position, "batch runs past the end of the segment"))
    }
}

/// Reads up to `len` bytes at `position` of the file `fd` straight from the
/// page cache into the spare capacity of `out`, and returns how many it
/// read: 0 when the first of them is not cached (or on any error, which
/// the caller's glommio read then meets and reports). `RWF_NOWAIT` makes
/// the kernel return at once instead of waiting for the disk, so this
/// synchronous call never holds the reactor for IO; copying one
/// `READ_STEP_BYTES` step from the page cache takes tens of microseconds.
/// A file system without `RWF_NOWAIT` support (EOPNOTSUPP) reads through
/// glommio alone.
pub(super) fn read_cached(fd: RawFd, position: u64, len: usize, out: &mut BytesMut) -> usize {
    let spare = out.spare_capacity_mut();
    let len = len.min(spare.len());
    // SAFETY: the spare capacity is `len` or more bytes that nothing else
    // touches during the call; the kernel writes, never reads, them.
    let read = unsafe { read_nowait(fd, position, spare.as_mut_ptr().cast(), len) };
    // SAFETY: the kernel wrote `read` bytes at the start of the spare
    // capacity, right after the buffer's initialized bytes.
    unsafe { out.set_len(out.len() + read) };
    read
}

/// `preadv2(RWF_NOWAIT)` of up to `len` bytes at `position` into `buf`:
/// how many were read from the page cache, 0 when the first is not cached
/// or on any error.
///
/// # Safety
/// `buf` must point to `len` writable bytes, untouched during the call;
/// `fd` must be open.
pub(super) unsafe fn read_nowait(fd: RawFd, position: u64, buf: *mut u8, len: usize) -> usize {
    let Ok(offset) = libc::off_t::try_from(position) else {
        return 0;
    };
    let iov = libc::iovec {
        iov_base: buf.cast(),
        iov_len: len,
    };
    // SAFETY: the one iovec points at `len` writable bytes (the caller's
    // promise); `fd` is open, kept so by the caller.
    let read = unsafe { libc::preadv2(fd, &iov, 1, offset, libc::RWF_NOWAIT) };
    let Ok(read) = usize::try_from(read) else {
        return 0;
    };
    assert!(read <= len, "preadv2 read more than asked");
    read
}

/// `batch::verify_stored`, checksumming `READ_STEP_BYTES` at a time and
/// letting other tasks run after each step, so a batch of many megabytes
/// does not hold the reactor.
async fn verify_in_steps(batch: &[u8]) -> Result<(), BatchError> {
    if batch.len() <= READ_STEP_BYTES {
        return verify_stored(batch);
    }
    let (covered, claimed) = stored_crc(batch)?;
    let mut crc = 0;
    for step in covered.chunks(READ_STEP_BYTES) {
        crc = crc32c::crc32c_append(crc, step);
        glommio::yield_if_needed().await;
    }
    if crc != claimed {
        return Err(BatchError::CrcMismatch);
    }
    Ok(())
}
