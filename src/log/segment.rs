//! One segment: the `{base_offset:020}.log` file of back-to-back batches, its
//! in-memory indexes (offsets, timestamps, aborted transactions), the byte
//! ranges of it this process has checked (`verified.rs`), and its reads:
//! into buffers, each batch checked (`read.rs`), or, for a fetch, checked
//! ranges the page cache holds as file ranges the kernel sends
//! (`ranges.rs`); a read that misses the page cache has the kernel read
//! the stretch ahead (`readahead.rs`).
//!
//! Invariant: the file is only appended to, except where shoal cuts a log
//! (a failed write's unwritten tail, a follower's truncation above the
//! high watermark, recovery before anything is served); a cut forgets the
//! checked ranges past it. File ranges outlive the segment through their
//! own descriptor (`file_range.rs`).

use std::cell::{Cell, RefCell};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use glommio::io::{BufferedFile, OpenOptions};

use super::index::{OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};
use super::txn_index::{self, AbortedTxn};
use super::LogError;
use crate::protocol::batch::{framed_size, BatchError};
use readahead::Readahead;
use verified::Verified;

mod ranges;
mod read;
#[cfg(test)]
mod read_tests;
mod readahead;
mod verified;

/// Kafka's "no timestamp".
pub const NO_TIMESTAMP: i64 = -1;
/// Smallest read from a segment file: one syscall should bring several
/// batches, and cover the distance from an index entry to the target.
const READ_WINDOW_BYTES_MIN: u64 = 64 << 10;
/// Largest single read from a segment file, and the most bytes a read
/// copies or checksums before it lets the shard's other tasks run
/// (`yield_if_needed`): reads are sized by the caller's `max_bytes` and
/// taken this much at a time. Copying and checking 256 KiB takes well under
/// a millisecond, so a fetch of many megabytes never holds the reactor near
/// its 10 ms stall budget (`shard::stall`); a window of typical 16 KiB
/// batches re-reads little of the partial batch at its end; and the windows
/// of several partitions read at once fit in the shard's io memory
/// (`SHARD_IO_MEMORY_BYTES`), which glommio reads into without faulting in
/// fresh pages. A larger batch is read alone, in steps of this size.
pub const READ_STEP_BYTES: usize = 256 << 10;

pub fn log_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.log"))
}

pub fn index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.index"))
}

pub fn time_index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.timeindex"))
}

pub fn txn_index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.txnindex"))
}

/// Suffix of a segment's files while the cleaner writes them (incomplete:
/// recovery deletes them).
pub const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix of a cleaned segment's complete files that replace the segments
/// they cover (recovery finishes the replacement).
pub const SWAP_SUFFIX: &str = ".swap";

/// `path` with `suffix` appended to its file name.
pub fn with_suffix(path: PathBuf, suffix: &str) -> PathBuf {
    let mut name = path.into_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Size of the batch framed at the start of `buf`: `Ok(None)` when `buf`
/// holds only part of it, `Err` when its length field cannot be right.
pub fn frame(buf: &[u8]) -> Result<Option<usize>, BatchError> {
    match framed_size(buf) {
        Ok(size) => Ok(Some(size)),
        Err(BatchError::Truncated) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The indexes of a segment and what is needed to extend them.
#[derive(Debug, Default)]
pub struct SegmentIndexes {
    pub offsets: OffsetIndex,
    pub times: TimeIndex,
    bytes_since_entry: u64,
    /// Largest batch `maxTimestamp` in the segment, `NO_TIMESTAMP` if empty.
    pub max_timestamp: i64,
    /// Last offset of the first batch that carries `max_timestamp`.
    pub offset_of_max_timestamp: i64,
    /// (last offset, position) of the newest batch.
    last_batch: Option<(i64, u32)>,
}

impl SegmentIndexes {
    pub fn empty() -> Self {
        SegmentIndexes {
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: -1,
            ..Default::default()
        }
    }

    /// Loaded from files whose last entries name the last batch (a sealed
    /// segment always has them).
    pub fn loaded(offsets: OffsetIndex, times: TimeIndex, base_offset: i64) -> Self {
        let last_batch = offsets
            .last()
            .map(|e| (base_offset + i64::from(e.relative_offset), e.position));
        let (max_timestamp, offset_of_max_timestamp) =
            times.last().map_or((NO_TIMESTAMP, -1), |e| {
                (e.timestamp, base_offset + i64::from(e.relative_offset))
            });
        SegmentIndexes {
            offsets,
            times,
            bytes_since_entry: 0,
            max_timestamp,
            offset_of_max_timestamp,
            last_batch,
        }
    }

    /// Accounts one batch of `size` bytes written at `position`. Adds an
    /// index entry for it when `interval_bytes` have passed since the last one
    /// (and for the first batch), as Kafka does.
    pub fn record(
        &mut self,
        base_offset: i64,
        position: u32,
        last_offset: i64,
        max_timestamp: i64,
        size: u64,
        interval_bytes: u32,
    ) {
        if max_timestamp > self.max_timestamp {
            self.max_timestamp = max_timestamp;
            self.offset_of_max_timestamp = last_offset;
        }
        self.last_batch = Some((last_offset, position));
        if self.offsets.last().is_none() || self.bytes_since_entry >= u64::from(interval_bytes) {
            self.index_last_batch(base_offset);
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += size;
    }

    /// File position of the newest batch, if any.
    pub fn last_batch_position(&self) -> Option<u32> {
        self.last_batch.map(|(_, position)| position)
    }

    /// Makes the last entries of both indexes describe the newest batch and
    /// the largest timestamp: what recovery relies on to trust a sealed segment.
    pub fn seal(&mut self, base_offset: i64) {
        self.index_last_batch(base_offset);
    }

    fn index_last_batch(&mut self, base_offset: i64) {
        let Some((last_offset, position)) = self.last_batch else {
            return;
        };
        let relative_offset = relative(base_offset, last_offset);
        if self
            .offsets
            .last()
            .is_none_or(|e| e.relative_offset < relative_offset)
        {
            self.offsets.push(OffsetEntry {
                relative_offset,
                position,
            });
        }
        if self.max_timestamp > self.times.last().map_or(NO_TIMESTAMP, |e| e.timestamp) {
            self.times.push(TimeEntry {
                timestamp: self.max_timestamp,
                relative_offset: relative(base_offset, self.offset_of_max_timestamp),
            });
        }
    }
}

/// What `SegmentIndexes` held before some batches were recorded, to go back
/// to when those batches are given up (a failed write): entries only ever
/// get appended, so counts and the few scalars are the whole state.
#[derive(Debug, Clone, Copy)]
pub struct IndexMark {
    offset_entries: usize,
    time_entries: usize,
    bytes_since_entry: u64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    last_batch: Option<(i64, u32)>,
}

impl SegmentIndexes {
    pub fn mark(&self) -> IndexMark {
        IndexMark {
            offset_entries: self.offsets.entry_count(),
            time_entries: self.times.entry_count(),
            bytes_since_entry: self.bytes_since_entry,
            max_timestamp: self.max_timestamp,
            offset_of_max_timestamp: self.offset_of_max_timestamp,
            last_batch: self.last_batch,
        }
    }

    /// Forgets everything recorded (or sealed) since `mark` was taken.
    pub fn rewind(&mut self, mark: IndexMark) {
        self.offsets.truncate_to(mark.offset_entries);
        self.times.truncate_to(mark.time_entries);
        self.bytes_since_entry = mark.bytes_since_entry;
        self.max_timestamp = mark.max_timestamp;
        self.offset_of_max_timestamp = mark.offset_of_max_timestamp;
        self.last_batch = mark.last_batch;
    }
}

/// Removes the file at `path`; one already gone is no error.
async fn remove_if_present(path: &Path) -> Result<(), LogError> {
    match glommio::io::remove(path).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let e: std::io::Error = e.into();
            match e.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(e.into()),
            }
        }
    }
}

/// Offsets in a segment stay within u32 of its base: the log rolls before.
fn relative(base_offset: i64, offset: i64) -> u32 {
    assert!(offset >= base_offset && offset - base_offset <= i64::from(u32::MAX));
    (offset - base_offset) as u32
}

/// Where the next batch a read returns must sit (in a segment with
/// `offset_gaps`: at or after it).
#[derive(Debug, Clone, Copy)]
enum Expected {
    /// The first one: it holds this offset.
    Holding(i64),
    /// Any later one: it starts right after the previous.
    StartingAt(i64),
}

/// How much a read may still return.
pub struct ReadBudget {
    max_bytes: usize,
    min_one_batch: bool,
    used_bytes: usize,
    batches: usize,
}

impl ReadBudget {
    pub fn new(max_bytes: usize, min_one_batch: bool) -> Self {
        ReadBudget {
            max_bytes,
            min_one_batch,
            used_bytes: 0,
            batches: 0,
        }
    }

    /// Bytes the read may still return (past them, only a first batch
    /// promised by KIP-74).
    pub fn remaining(&self) -> usize {
        self.max_bytes.saturating_sub(self.used_bytes)
    }

    /// Whether a batch of `size` bytes would fit without the KIP-74 promise.
    pub fn fits(&self, size: usize) -> bool {
        self.used_bytes + size <= self.max_bytes
    }

    /// Whether `admit` would take a batch of `size` bytes.
    pub fn admits(&self, size: usize) -> bool {
        self.fits(size) || (self.batches == 0 && self.min_one_batch)
    }

    /// Takes `size` bytes of whole batches that fit (a file range).
    pub fn take(&mut self, size: usize) {
        assert!(self.fits(size), "a file range past the budget");
        self.used_bytes += size;
        self.batches += 1;
    }

    /// Takes a batch of `size` bytes if it fits, or if it is the first and
    /// one is promised (KIP-74).
    pub fn admit(&mut self, size: usize) -> bool {
        if self.admits(size) {
            self.used_bytes += size;
            self.batches += 1;
            true
        } else {
            false
        }
    }

    /// How much to read from a file next: what may still be returned, plus
    /// slack for the batches skipped before the wanted offset.
    fn window_bytes(&self) -> u64 {
        let remaining = self.max_bytes.saturating_sub(self.used_bytes) as u64;
        remaining
            .saturating_add(READ_WINDOW_BYTES_MIN)
            .clamp(READ_WINDOW_BYTES_MIN, READ_STEP_BYTES as u64)
    }
}

pub struct Segment {
    pub base_offset: i64,
    dir: PathBuf,
    file: RefCell<Option<Rc<BufferedFile>>>,
    pub indexes: RefCell<SegmentIndexes>,
    /// The transactions aborted by a marker in this segment (its
    /// `.txnindex`, written with the other indexes), in marker order.
    pub aborted: RefCell<Vec<AbortedTxn>>,
    /// Bytes given to this segment: written plus queued for the writer.
    pub queued_bytes: Cell<u64>,
    /// Bytes in the file.
    pub written_bytes: Cell<u64>,
    /// One past the last offset given to this segment.
    pub next_offset: Cell<i64>,
    /// Wall-clock birth, for `segment.ms`.
    pub created_ms: u64,
    /// Set by retention: the files are gone and must not be created again.
    deleted: Cell<bool>,
    /// File position of the last corruption logged, so it is logged once.
    reported_corruption: Cell<Option<u64>>,
    /// The cleaner may have left offset gaps between batches here: reads
    /// check that offsets grow instead of that they follow on.
    pub offset_gaps: Cell<bool>,
    /// The file is (or will be, when created) opened with `O_DSYNC`: each
    /// write returns once its bytes and the file's size are on the disk,
    /// so `sync` has nothing to do.
    write_through: Cell<bool>,
    /// The byte ranges whose batches this process checked.
    verified: RefCell<Verified>,
    /// The descriptor file ranges hold (`ranges.rs`), made on first use.
    shared: RefCell<Option<Arc<OwnedFd>>>,
    /// What cold reads asked the kernel to read ahead (`readahead.rs`).
    readahead: Readahead,
}

impl Segment {
    /// A segment whose file is created by its first write.
    pub fn new(dir: &Path, base_offset: i64, created_ms: u64) -> Segment {
        Segment {
            base_offset,
            dir: dir.to_path_buf(),
            file: RefCell::new(None),
            indexes: RefCell::new(SegmentIndexes::empty()),
            aborted: RefCell::new(Vec::new()),
            queued_bytes: Cell::new(0),
            written_bytes: Cell::new(0),
            next_offset: Cell::new(base_offset),
            created_ms,
            deleted: Cell::new(false),
            reported_corruption: Cell::new(None),
            offset_gaps: Cell::new(false),
            write_through: Cell::new(false),
            verified: RefCell::new(Verified::default()),
            shared: RefCell::new(None),
            readahead: Readahead::default(),
        }
    }

    /// A segment found on disk, `size_bytes` long, ending before `next_offset`.
    pub fn existing(
        dir: &Path,
        base_offset: i64,
        file: BufferedFile,
        size_bytes: u64,
        indexes: SegmentIndexes,
        next_offset: i64,
        created_ms: u64,
    ) -> Segment {
        Segment {
            base_offset,
            dir: dir.to_path_buf(),
            file: RefCell::new(Some(Rc::new(file))),
            indexes: RefCell::new(indexes),
            aborted: RefCell::new(Vec::new()),
            queued_bytes: Cell::new(size_bytes),
            written_bytes: Cell::new(size_bytes),
            next_offset: Cell::new(next_offset),
            created_ms,
            deleted: Cell::new(false),
            reported_corruption: Cell::new(None),
            offset_gaps: Cell::new(false),
            write_through: Cell::new(false),
            verified: RefCell::new(Verified::default()),
            shared: RefCell::new(None),
            readahead: Readahead::default(),
        }
    }

    pub fn log_path(&self) -> PathBuf {
        log_path(&self.dir, self.base_offset)
    }

    pub fn txn_index_path(&self) -> PathBuf {
        txn_index_path(&self.dir, self.base_offset)
    }

    /// Opens the segment file for reading and writing, creating it if needed.
    pub async fn open_file(path: &Path) -> Result<BufferedFile, LogError> {
        Segment::open_file_with(path, 0).await
    }

    async fn open_file_with(path: &Path, flags: libc::c_int) -> Result<BufferedFile, LogError> {
        Ok(OpenOptions::new()
            .custom_flags(flags)
            .read(true)
            .write(true)
            .create(true)
            .buffered_open(path)
            .await?)
    }

    async fn file(&self) -> Result<Rc<BufferedFile>, LogError> {
        if let Some(file) = self.file.borrow().as_ref() {
            return Ok(file.clone());
        }
        if self.deleted.get() {
            return Err(LogError::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("segment {} was deleted", self.log_path().display()),
            )));
        }
        let flags = if self.write_through.get() {
            libc::O_DSYNC
        } else {
            0
        };
        let file = Rc::new(Segment::open_file_with(&self.log_path(), flags).await?);
        *self.file.borrow_mut() = Some(file.clone());
        Ok(file)
    }

    /// Makes the segment's writes durable as they return (`O_DSYNC`), for
    /// `flush.policy=sync`: one trip to the kernel's IO workers per group
    /// instead of a write and then an fdatasync. Only before the file is
    /// opened; a segment whose file is open keeps its mode.
    pub fn prefer_write_through(&self, on: bool) {
        if self.file.borrow().is_none() {
            self.write_through.set(on);
        }
    }

    /// Whether a failed write may have lost earlier acknowledged bytes: on
    /// a write-through file the write includes the sync, and after a
    /// failed sync the kernel may have dropped pages it could not write
    /// (see the module doc); a full disk fails before anything is written.
    pub fn write_error_is_fatal(&self, error: &LogError) -> bool {
        use std::io::ErrorKind::{QuotaExceeded, StorageFull, WriteZero};
        // By kind: glommio's errors keep the OS error's kind (ENOSPC is
        // StorageFull, EDQUOT QuotaExceeded), not its number.
        let no_space = matches!(
            error,
            LogError::Io(e) if matches!(e.kind(), StorageFull | QuotaExceeded | WriteZero)
        );
        self.write_through.get() && !no_space
    }

    /// Writes all of `buf` at `position`. glommio owns the buffer during the
    /// write, so a short write (a full disk) is an error, not a retry.
    /// `buf` is whole batches checked before (a produce's or a leader's,
    /// framing and CRC-32C, or markers the log made): the range written
    /// counts as checked.
    pub async fn write_all(&self, buf: Vec<u8>, position: u64) -> Result<(), LogError> {
        let file = self.file().await?;
        let len = buf.len();
        let started = std::time::Instant::now();
        let written = file.write_at(buf, position).await?;
        // A write-through segment's write is its flush (`sync` is then
        // nothing): timed as one, as the fdatasync of any other is.
        if self.write_through.get() {
            crate::metrics::fsynced(started.elapsed());
        }
        if written != len {
            return Err(LogError::Io(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "short segment write",
            )));
        }
        self.verified
            .borrow_mut()
            .insert(position, position + len as u64);
        Ok(())
    }

    pub async fn truncate(&self, size: u64) -> Result<(), LogError> {
        self.verified.borrow_mut().cut(size);
        self.file().await?.truncate(size).await?;
        self.queued_bytes.set(size);
        self.written_bytes.set(size);
        Ok(())
    }

    /// Forgets, in memory, the bytes from `position` on (given up after a
    /// failed write): the segment ends before `next_offset` again and its
    /// indexes go back to `mark`, taken when the first of them was queued.
    /// `truncate_file` then cuts the file.
    pub fn rewind(&self, position: u64, next_offset: i64, mark: IndexMark) {
        self.verified.borrow_mut().cut(position);
        self.queued_bytes.set(position);
        self.written_bytes
            .set(self.written_bytes.get().min(position));
        self.next_offset.set(next_offset);
        self.indexes.borrow_mut().rewind(mark);
        self.aborted
            .borrow_mut()
            .retain(|txn| txn.last_offset < next_offset);
    }

    /// Cuts the segment, in memory, to its first `position` bytes, which
    /// hold the offsets below `next_offset` and are described by `indexes`
    /// (`truncate_to`; the writer is idle). `cut_file` then cuts the file.
    pub fn cut(&self, position: u64, next_offset: i64, indexes: SegmentIndexes) {
        assert!(position <= self.written_bytes.get() && next_offset >= self.base_offset);
        assert_eq!(self.queued_bytes.get(), self.written_bytes.get());
        self.verified.borrow_mut().cut(position);
        self.queued_bytes.set(position);
        self.written_bytes.set(position);
        self.next_offset.set(next_offset);
        *self.indexes.borrow_mut() = indexes;
        self.aborted
            .borrow_mut()
            .retain(|txn| txn.last_offset < next_offset);
    }

    /// After `cut`: cuts the file to the segment's bytes, syncs it, and
    /// removes its index files, which described the bytes cut (sealing
    /// writes them again; until then recovery scans the segment).
    pub async fn cut_file(&self) -> Result<(), LogError> {
        let file = self.file.borrow().clone();
        if let Some(file) = file {
            file.truncate(self.written_bytes.get()).await?;
            // Even a write-through file: its size changed without a write.
            file.fdatasync().await?;
        }
        for path in [
            index_path(&self.dir, self.base_offset),
            time_index_path(&self.dir, self.base_offset),
            txn_index_path(&self.dir, self.base_offset),
        ] {
            remove_if_present(&path).await?;
        }
        Ok(())
    }

    /// Records a transaction aborted by a marker in this segment, unless
    /// it is already there (recovery replays markers the file may hold);
    /// true when it was added.
    pub fn add_aborted(&self, txn: AbortedTxn) -> bool {
        let mut aborted = self.aborted.borrow_mut();
        if aborted
            .last()
            .is_some_and(|last| last.last_offset >= txn.last_offset)
        {
            return false;
        }
        aborted.push(txn);
        true
    }

    /// Writes the `.txnindex` whole, fdatasync'd, when it has entries
    /// (Kafka too makes the file only for a segment with an abort).
    pub async fn write_txn_index(&self) -> Result<(), LogError> {
        let bytes = txn_index::encode(&self.aborted.borrow());
        if bytes.is_empty() {
            return Ok(());
        }
        write_whole(&self.txn_index_path(), bytes).await
    }

    /// Cuts the file to `size` bytes, if this segment has one open (a
    /// segment whose file was never created has nothing to cut).
    pub async fn truncate_file(&self, size: u64) -> Result<(), LogError> {
        let file = self.file.borrow().clone();
        if let Some(file) = file {
            file.truncate(size).await?;
        }
        Ok(())
    }

    pub async fn sync(&self) -> Result<(), LogError> {
        if self.write_through.get() {
            return Ok(());
        }
        let file = self.file.borrow().clone();
        match file {
            Some(file) => {
                let started = std::time::Instant::now();
                file.fdatasync().await?;
                crate::metrics::fsynced(started.elapsed());
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Seals the indexes and writes both index files whole, fdatasync'd.
    pub async fn write_indexes(&self) -> Result<(), LogError> {
        let (offsets, times) = {
            let mut indexes = self.indexes.borrow_mut();
            indexes.seal(self.base_offset);
            // Index entries point at written batches.
            assert!(indexes
                .offsets
                .last()
                .is_none_or(|e| u64::from(e.position) < self.written_bytes.get()));
            (indexes.offsets.encode(), indexes.times.encode())
        };
        write_index_files(&self.dir, self.base_offset, offsets, times, "").await?;
        self.write_txn_index().await
    }

    /// Takes the segment out of service without removing its files (they
    /// are being replaced): like `delete_files`, its file is never reopened.
    pub async fn retire(&self) -> Result<(), LogError> {
        self.deleted.set(true);
        self.close().await
    }

    /// Closes the file; the segment must not be used afterwards. File
    /// ranges handed out keep their own descriptor.
    pub async fn close(&self) -> Result<(), LogError> {
        self.shared.borrow_mut().take();
        let file = self.file.borrow_mut().take();
        if let Some(file) = file.and_then(|f| Rc::try_unwrap(f).ok()) {
            file.close().await?;
        }
        Ok(())
    }

    /// Closes the file (unless a read still holds it: it closes when that
    /// read ends) and removes the segment's `.log`, `.index`, `.timeindex`
    /// and `.txnindex`.
    pub async fn delete_files(&self) -> Result<(), LogError> {
        self.deleted.set(true);
        self.close().await?;
        for path in [
            self.log_path(),
            index_path(&self.dir, self.base_offset),
            time_index_path(&self.dir, self.base_offset),
            txn_index_path(&self.dir, self.base_offset),
        ] {
            remove_if_present(&path).await?;
        }
        Ok(())
    }

    /// Position to start scanning from for the batch holding `offset`.
    pub fn lookup(&self, offset: i64) -> u64 {
        let relative = (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        u64::from(self.indexes.borrow().offsets.lookup(relative))
    }

    /// A `LogError::Corrupt` for the bytes at `position` of this segment,
    /// logged with the file and position the first time it is found there:
    /// a consumer retrying the same fetch does not repeat the line.
    pub fn corrupt(&self, position: u64, reason: &str) -> LogError {
        if self.reported_corruption.replace(Some(position)) != Some(position) {
            ::log::error!(
                "corrupt data in {} at file position {position}: {reason}",
                self.log_path().display()
            );
        }
        LogError::Corrupt {
            path: self.log_path(),
            position,
            reason: reason.to_string(),
        }
    }
}

/// Writes the encoded `.index` and `.timeindex` of segment `base_offset`,
/// their names ending in `suffix`, each fdatasync'd.
pub async fn write_index_files(
    dir: &Path,
    base_offset: i64,
    offsets: Vec<u8>,
    times: Vec<u8>,
    suffix: &str,
) -> Result<(), LogError> {
    write_whole(&with_suffix(index_path(dir, base_offset), suffix), offsets).await?;
    write_whole(
        &with_suffix(time_index_path(dir, base_offset), suffix),
        times,
    )
    .await
}

/// Writes `entries` as the `.txnindex` of segment `base_offset`, its name
/// ending in `suffix`, fdatasync'd.
pub async fn write_txn_index_file(
    dir: &Path,
    base_offset: i64,
    entries: &[AbortedTxn],
    suffix: &str,
) -> Result<(), LogError> {
    let path = with_suffix(txn_index_path(dir, base_offset), suffix);
    write_whole(&path, txn_index::encode(entries)).await
}

/// Replaces the file at `path` with `bytes`, fdatasync'd.
async fn write_whole(path: &Path, bytes: Vec<u8>) -> Result<(), LogError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .buffered_open(path)
        .await?;
    let len = bytes.len();
    if len > 0 && file.write_at(bytes, 0).await? != len {
        return Err(LogError::Io(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            "short index write",
        )));
    }
    file.fdatasync().await?;
    file.close().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_full_disk_leaves_a_write_through_segment_usable() {
        let segment = Segment::new(Path::new("/nonexistent"), 0, 0);
        let enospc = || std::io::Error::from_raw_os_error(libc::ENOSPC);
        // What glommio hands back for a failed write: the OS error's kind
        // survives, its number does not.
        let glommio_enospc = || {
            LogError::from(glommio::GlommioError::<()>::EnhancedIoError {
                source: enospc(),
                op: "Writing",
                path: None,
                fd: Some(3),
            })
        };
        let eio = || LogError::Io(std::io::Error::from_raw_os_error(libc::EIO));
        assert!(
            !segment.write_error_is_fatal(&eio()),
            "buffered: the sync comes later"
        );
        segment.prefer_write_through(true);
        assert!(segment.write_error_is_fatal(&eio()));
        assert!(!segment.write_error_is_fatal(&LogError::Io(enospc())));
        assert!(!segment.write_error_is_fatal(&glommio_enospc()));
    }
}
