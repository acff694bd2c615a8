//! A range of a segment file that a read hands out instead of its bytes:
//! the connection's writer has the kernel send it from the page cache
//! (`sendfile`), so record bytes never enter user space. Also the page
//! cache residency check that keeps such sends off the disk (`cachestat`),
//! and this thread's count of the bytes reads copied or handed out.
//!
//! Invariant: a `FileRange` holds its own descriptor of the file (a
//! duplicate, shared by the ranges of one segment), so retention, the
//! cleaner's swap or a topic's deletion, which close and unlink the
//! segment, do not end a send: an unlinked file stays readable through an
//! open descriptor. The log hands out only ranges of checked batches below
//! the high watermark, which shoal never cuts or rewrites in place
//! (`Segment` says so where ranges are made), so the bytes a range names
//! do not change while it lives. Nothing here waits for the disk on the
//! shard's thread: pages not cached are read through io_uring (`read`);
//! `send` is for pages `cached` has just found in the page cache.

use std::cell::Cell;
use std::ops::Range;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use glommio::io::{BufferedFile, ReadResult};

use crate::protocol::chunk::{self, FileChunk};

/// A piece of a response: memory, or a range of a segment file.
pub type Chunk = chunk::Chunk<FileRange>;

/// `cachestat(2)` (Linux 6.5), the same number on every architecture
/// (the generic syscall table); the libc crate has no binding for x86_64.
const SYS_CACHESTAT: libc::c_long = 451;
/// The kernel's page size on the architectures shoal runs on; a wrong
/// guess only makes `pages_cached` answer false (the range is then read).
const PAGE_BYTES: u64 = 4096;

/// `struct cachestat_range` of `cachestat(2)`.
#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

/// `struct cachestat` of `cachestat(2)`: page counts within the range.
#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// Whether every page of `len` bytes at `position` of the file `fd` is in
/// the page cache. False on any error, and where `cachestat` does not
/// exist (before Linux 6.5): the caller then reads the range instead.
pub fn pages_cached(fd: RawFd, position: u64, len: u64) -> bool {
    if len == 0 {
        return true;
    }
    let range = CachestatRange { off: position, len };
    let mut stat = Cachestat::default();
    // SAFETY: both pointers are to live locals of the layout the kernel
    // expects; `fd` is an open descriptor the caller holds.
    let result = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            fd,
            &range as *const CachestatRange,
            &mut stat as *mut Cachestat,
            0,
        )
    };
    let pages = (position + len - 1) / PAGE_BYTES - position / PAGE_BYTES + 1;
    result == 0 && stat.nr_cache >= pages
}

/// `len` bytes at `position` of a segment file, whole batches, sent by
/// the kernel.
#[derive(Debug, Clone)]
pub struct FileRange {
    file: Arc<OwnedFd>,
    position: u64,
    len: usize,
    /// The offset the read asked for (held by the first batch) up to the
    /// offset after the last batch.
    offsets: Range<i64>,
}

impl FileChunk for FileRange {
    fn byte_len(&self) -> usize {
        self.len
    }
}

impl FileRange {
    /// A range of `file`, which must hold `len` bytes at `position`:
    /// whole batches holding `offsets`.
    pub fn new(file: Arc<OwnedFd>, position: u64, len: usize, offsets: Range<i64>) -> FileRange {
        assert!(len > 0 && !offsets.is_empty(), "an empty file range");
        FileRange {
            file,
            position,
            len,
            offsets,
        }
    }

    pub fn position(&self) -> u64 {
        self.position
    }

    /// From the offset the read asked for to the one after the last batch.
    pub fn offsets(&self) -> Range<i64> {
        self.offsets.clone()
    }

    /// Whether the `len` bytes `from` bytes into the range are all in the
    /// page cache: a send of them then never waits for the disk.
    pub fn cached(&self, from: usize, len: usize) -> bool {
        let (at, len) = self.within(from, len);
        pages_cached(self.file.as_raw_fd(), at, len as u64)
    }

    /// Reads at most `len` bytes `from` bytes into the range through the
    /// shard's io_uring, which waits for the disk while the reactor runs
    /// other tasks: what a send does with pages evicted since their read
    /// (`cached` said no). Empty when the file is shorter than the range.
    /// The bytes enter user space: counted in `CopyCounts::copied_bytes`.
    pub async fn read(&self, from: usize, len: usize) -> std::io::Result<ReadResult> {
        let (at, len) = self.within(from, len);
        // A descriptor of its own: glommio's file closes the one it holds.
        let own = self.file.try_clone()?;
        // SAFETY: `own` is a fresh duplicate that nothing else owns; the
        // `BufferedFile` takes it over and closes it.
        let file = unsafe { BufferedFile::from_raw_fd(own.into_raw_fd()) };
        let read = file.read_at(at, len).await;
        // Nothing was written through it: a failed close loses nothing.
        let _ = file.close().await;
        let read = read?;
        count(|counts| counts.copied_bytes += read.len() as u64);
        Ok(read)
    }

    /// One `sendfile` of at most `len` bytes from `from` bytes into the
    /// range to `socket`, which must be non-blocking (`WouldBlock` when it
    /// is full). The kernel copies from the page cache to the socket; a
    /// page not cached is read from the disk first, holding the caller, so
    /// the caller checks `cached` just before (and `read`s what is not).
    /// Ok(0) means the file is shorter than the range: it was cut under
    /// the send.
    pub fn send(&self, socket: RawFd, from: usize, len: usize) -> std::io::Result<usize> {
        let (at, len) = self.within(from, len);
        let mut offset = libc::off_t::try_from(at)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: `offset` is a live local the kernel advances; both
        // descriptors are open (the socket is the caller's, the file held
        // by this range), and `sendfile` touches no memory of ours.
        let sent = unsafe { libc::sendfile(socket, self.file.as_raw_fd(), &mut offset, len) };
        if sent < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(sent as usize)
    }

    /// Reads into `buf` the bytes from `from` bytes into the range, at
    /// most to its end: the copy path of a connection that cannot use
    /// `sendfile` (TLS encrypts in user space). As for `send`, the caller
    /// checks `cached` first (and `read`s what is not), or this waits for
    /// the disk. Ok(0) means the file was cut under the read.
    pub fn read_cached(&self, from: usize, buf: &mut [u8]) -> std::io::Result<usize> {
        let (at, len) = self.within(from, buf.len());
        let offset = libc::off_t::try_from(at)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: reads at most `len` bytes, no more than `buf` holds, into
        // `buf`, from a descriptor the range holds open.
        let read =
            unsafe { libc::pread(self.file.as_raw_fd(), buf.as_mut_ptr().cast(), len, offset) };
        if read < 0 {
            return Err(std::io::Error::last_os_error());
        }
        count(|counts| counts.copied_bytes += read as u64);
        Ok(read as usize)
    }

    /// The byte `from` bytes into the range: what a writer sends through
    /// its runtime to wait for a full socket to drain (counted in
    /// `CopyCounts::wait_bytes`).
    pub fn byte_at(&self, from: usize) -> std::io::Result<u8> {
        let (at, _) = self.within(from, 1);
        let offset = libc::off_t::try_from(at)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        let mut byte = 0u8;
        // SAFETY: reads one byte into a live local from a descriptor the
        // range holds open.
        let read = unsafe {
            libc::pread(
                self.file.as_raw_fd(),
                (&mut byte as *mut u8).cast(),
                1,
                offset,
            )
        };
        match read {
            1 => {
                count(|counts| counts.wait_bytes += 1);
                Ok(byte)
            }
            0 => Err(std::io::ErrorKind::UnexpectedEof.into()),
            _ => Err(std::io::Error::last_os_error()),
        }
    }

    /// The range's bytes, read from the file (tests compare them).
    #[cfg(test)]
    pub fn contents(&self) -> Vec<u8> {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::from(self.file.as_ref().try_clone().expect("dup"));
        let mut bytes = vec![0u8; self.len];
        file.read_exact_at(&mut bytes, self.position)
            .expect("read the range");
        bytes
    }

    /// File position and length of `len` bytes `from` bytes into the range.
    fn within(&self, from: usize, len: usize) -> (u64, usize) {
        assert!(from < self.len, "{from} bytes into a range of {}", self.len);
        (self.position + from as u64, len.min(self.len - from))
    }
}

/// What this thread's reads did with the bytes they served, since it
/// started: the measure of "user-space bytes copied per byte fetched".
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CopyCounts {
    /// Bytes read from segment files into buffers (reads not served as
    /// file ranges: the first read of a range this process has not
    /// checked, and pages not in the page cache, at the read or, evicted
    /// since, at the send).
    pub copied_bytes: u64,
    /// Batch header bytes read to find where file ranges start and end.
    pub header_bytes: u64,
    /// Bytes handed out as file ranges, for the kernel to send.
    pub file_bytes: u64,
    /// Bytes read to wait for a full socket to drain: one per wait.
    pub wait_bytes: u64,
}

thread_local! {
    static COPY_COUNTS: Cell<CopyCounts> = Cell::new(CopyCounts::default());
}

/// This thread's counts (each shard is one thread: its own reads).
pub fn copy_counts() -> CopyCounts {
    COPY_COUNTS.with(Cell::get)
}

pub(crate) fn count(update: impl FnOnce(&mut CopyCounts)) {
    COPY_COUNTS.with(|cell| {
        let mut counts = cell.get();
        update(&mut counts);
        cell.set(counts);
    });
}
