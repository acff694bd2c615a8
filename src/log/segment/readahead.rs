//! Readahead for catch-up reads that reach the disk. A read whose first
//! page is not in the page cache asks the kernel to read the next
//! `READAHEAD_BYTES` of the segment (`posix_fadvise(WILLNEED)`, which
//! queues the reads and returns); a reader that comes within half of that
//! of the end of what was asked asks for the next stretch. The next
//! fetches then find their pages cached, and go out as file ranges
//! (`ranges.rs`) rather than waiting for the disk one step at a time.
//!
//! The kernel's own readahead, started by the small reads a fetch begins
//! with (a batch header from the index), reads a small window, so a cold
//! catch-up read waited for the disk at almost every 256 KiB step
//! (`read_tests.rs`: without the ask, the 3.5 MiB after a cold 4 KiB read
//! stay uncached).
//!
//! Invariant: the advice runs on glommio's blocking pool, never on the
//! reactor (queueing megabytes of reads allocates their pages); at most
//! one request is in flight per segment and `ASKS_IN_FLIGHT_MAX` per
//! shard thread, each within the written bytes and at most
//! `READAHEAD_BYTES`; a segment whose reads all find their pages (tail
//! readers, warm catch-up reads) never asks.

use std::cell::Cell;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;

use super::Segment;

/// How far ahead of a cold read the kernel is asked to read: the 8 MiB
/// of Linux's largest readahead window (`read_ahead_kb` on this machine's
/// disk), enough queued per partition to keep a disk busy between a
/// consumer's fetches.
const READAHEAD_BYTES: u64 = 8 << 20;

/// Requests a shard thread has with the blocking pool at once: 256 MiB
/// of reads queued. A catch-up of more partitions than this at once
/// reads the rest as without readahead rather than queueing more.
const ASKS_IN_FLIGHT_MAX: usize = 32;

thread_local! {
    /// This shard thread's requests with the blocking pool.
    static ASKS_IN_FLIGHT: Cell<usize> = const { Cell::new(0) };
}

/// One segment's readahead: how far it was asked, and whether the ask is
/// still with the blocking pool.
#[derive(Debug, Default)]
pub(super) struct Readahead {
    /// End of the bytes last asked for; 0 until a read missed the cache.
    asked_to: Cell<u64>,
    in_flight: Rc<Cell<bool>>,
}

impl Readahead {
    /// The stretch to ask for, if any, of a read at `position` of a file
    /// of `written` bytes; `missed` when its first page was not cached;
    /// `shard_asks` the shard thread's requests in flight. Marks it asked.
    fn next(
        &self,
        position: u64,
        missed: bool,
        written: u64,
        shard_asks: usize,
    ) -> Option<(u64, u64)> {
        if self.in_flight.get() || shard_asks >= ASKS_IN_FLIGHT_MAX {
            return None;
        }
        let asked = self.asked_to.get();
        let start = if missed {
            position
        } else if asked > position && asked - position <= READAHEAD_BYTES / 2 {
            // A reader streaming through what was asked: the next stretch.
            asked
        } else {
            return None;
        };
        let end = position.saturating_add(READAHEAD_BYTES).min(written);
        if end <= start {
            return None;
        }
        self.asked_to.set(end);
        self.in_flight.set(true);
        Some((start, end))
    }
}

impl Segment {
    /// A read of this segment is at `position`; `missed` when its first
    /// page was not in the page cache. Asks for the stretch ahead when
    /// `Readahead::next` says so, without waiting for it.
    pub(super) async fn read_ahead(&self, position: u64, missed: bool) {
        let shard_asks = ASKS_IN_FLIGHT.with(Cell::get);
        let written = self.written_bytes.get();
        let Some((start, end)) = self.readahead.next(position, missed, written, shard_asks) else {
            return;
        };
        ASKS_IN_FLIGHT.with(|asks| asks.set(asks.get() + 1));
        let in_flight = self.readahead.in_flight.clone();
        let answered = move || {
            in_flight.set(false);
            ASKS_IN_FLIGHT.with(|asks| asks.set(asks.get() - 1));
        };
        let Ok(file) = self.shared_file().await else {
            answered();
            return;
        };
        glommio::spawn_local(async move {
            glommio::executor()
                .spawn_blocking(move || advise_will_need(&file, start, end - start))
                .await;
            answered();
        })
        .detach();
    }
}

/// `posix_fadvise(WILLNEED)` of `len` bytes at `start`: the kernel queues
/// reads of the pages it does not hold. Advice only: an error is ignored
/// (the reads then wait for the disk, as without it).
fn advise_will_need(file: &Arc<OwnedFd>, start: u64, len: u64) {
    let (Ok(start), Ok(len)) = (libc::off_t::try_from(start), libc::off_t::try_from(len)) else {
        return;
    };
    // SAFETY: fadvise on a descriptor the Arc keeps open; it reads nothing
    // of ours and writes nothing of ours.
    unsafe { libc::posix_fadvise(file.as_raw_fd(), start, len, libc::POSIX_FADV_WILLNEED) };
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_miss_asks_for_the_stretch_ahead_and_a_streaming_reader_the_next() {
        let readahead = Readahead::default();
        let written = 100 * MIB;
        assert_eq!(readahead.next(0, false, written, 0), None, "cached: no ask");
        assert_eq!(readahead.next(MIB, true, written, 0), Some((MIB, 9 * MIB)));
        assert_eq!(
            readahead.next(2 * MIB, true, written, 0),
            None,
            "one in flight"
        );
        readahead.in_flight.set(false);
        assert_eq!(
            readahead.next(3 * MIB, false, written, 0),
            None,
            "far from the end"
        );
        assert_eq!(
            readahead.next(5 * MIB, false, written, 0),
            Some((9 * MIB, 13 * MIB)),
            "within half of the end: the next stretch, from where the last ended"
        );
        readahead.in_flight.set(false);
        assert_eq!(readahead.next(20 * MIB, false, written, 0), None, "past it");
        assert_eq!(
            readahead.next(20 * MIB, true, written, 0),
            Some((20 * MIB, 28 * MIB))
        );
    }

    #[test]
    fn a_shard_with_its_most_asks_in_flight_asks_no_more() {
        let readahead = Readahead::default();
        let full = ASKS_IN_FLIGHT_MAX;
        assert_eq!(readahead.next(0, true, 100 * MIB, full), None);
        assert_eq!(
            readahead.next(0, true, 100 * MIB, full - 1),
            Some((0, 8 * MIB))
        );
    }

    #[test]
    fn asks_stay_within_the_written_bytes() {
        let readahead = Readahead::default();
        assert_eq!(readahead.next(MIB, true, 3 * MIB, 0), Some((MIB, 3 * MIB)));
        readahead.in_flight.set(false);
        assert_eq!(
            readahead.next(2 * MIB, false, 3 * MIB, 0),
            None,
            "all asked"
        );
        assert_eq!(
            readahead.next(3 * MIB, true, 3 * MIB, 0),
            None,
            "at the end"
        );
    }
}
