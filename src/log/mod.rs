//! The partition log: segments of RecordBatch v2 bytes on disk, their sparse
//! indexes, the group-commit writer, the tail cache and crash recovery.
//!
//! Architecture invariant: `log/` knows RecordBatch v2 bytes (through
//! `crate::protocol::batch`) and files; it never parses a Kafka request and
//! never sees a socket (a `FileRange` is sent to whatever descriptor the
//! connection's writer names: it knows only that it is one). A [`PartitionLog`] lives on exactly one shard: it is
//! `!Send`, its state sits in `Cell`/`RefCell` and no borrow is held across an
//! `.await`. All file IO after `open` goes through glommio. It imports no
//! `server`, `shard` or `metadata` outside its tests (`tests/architecture.rs`).
//!
//! Map of the module:
//! - `segment.rs`: one `{base_offset:020}.log` file with its in-memory
//!   indexes and the ranges of it checked this run (`segment/verified.rs`),
//!   its reads into buffers, each batch checked (`segment/read.rs`), and a
//!   fetch's reads of checked, cached ranges as file ranges
//!   (`segment/ranges.rs`).
//! - `file_range.rs`: the `FileRange` a fetch hands the connection instead
//!   of bytes (sent with `sendfile`), the page-cache check (`cachestat`),
//!   and the per-thread count of bytes reads copied.
//! - `index.rs`: the `.index` (8-byte entries: u32 BE `last offset of a batch
//!   − segment base`, u32 BE file position of that batch) and `.timeindex`
//!   (12-byte entries: i64 BE largest timestamp so far, u32 BE relative offset
//!   of the batch holding it) formats, as Kafka lays them out. Both are kept in
//!   memory and written whole when a segment is sealed (rolled or closed).
//! - `checkpoint.rs`: the `shoal.checkpoint` and `shoal.cleaner` text files.
//! - `epochs.rs`: the leader-epoch cache and its `leader-epoch-checkpoint`
//!   file (Kafka's format); pure but for reading and writing it.
//! - `recovery.rs`: what `open` does with what it finds on disk.
//! - `partition/`: [`PartitionLog`], one file per concern: its front
//!   (`mod.rs`: what it owns, open, close, checkpoints), the append path,
//!   the group-commit writer, the tail cache, reads, retention, the cleaning
//!   pass's bookkeeping (which segments, the swap into the segment list),
//!   timestamp lookups, the waiters, and the offsets with their rules.
//! - `cleaner.rs`: compaction's pieces: the key→offset map, the pacing, the
//!   rewriting of a group of segments into `.cleaned` files.
//! - `cleaner_txns.rs`: the transactions a cleaning pass reads through:
//!   aborted batches, and the markers that may go; pure.
//! - `producer_state.rs`: the idempotent and transactional producers of a
//!   partition (epoch, last five batches, coordinator epoch, open
//!   transaction), Kafka's checks on append and markers, the first unstable
//!   offset and the snapshot format; pure. `partition/producers.rs` keeps
//!   it with the log: checked before an append gets offsets, the last
//!   stable offset, `<offset>.snapshot` files, rebuilt at `open`.
//! - `txn_index.rs`: the `.txnindex` format (Kafka's `AbortedTxn` entries)
//!   and the search of it a read_committed fetch makes; pure. Each
//!   `Segment` holds its entries in memory and writes them when sealed;
//!   `partition/markers.rs` adds them as ABORT markers are appended.
//! - `pinned.rs`: the request frames that sliced bodies keep alive, each
//!   charged once to its shard's `FrameBudget`.
//! - `volume.rs`: the size and free space of the data directory's
//!   filesystem (statvfs).
//!
//! Checkpoint format (`shoal.checkpoint`, replaced atomically by writing
//! `shoal.checkpoint.tmp`, fdatasync, rename, fsync of the directory):
//!
//! ```text
//! shoal-checkpoint 1
//! recovery_point 1200
//! log_start_offset 0
//! high_watermark 1200
//! leader_epoch 0
//! ```
//!
//! `recovery_point`: every segment that ends at or before this offset is
//! complete and fdatasync'd together with its index files, so recovery trusts
//! it without scanning. A running log checkpoints the base offset of its active
//! segment (older segments were sealed and synced when they rolled); a clean
//! `close` checkpoints the log end offset, so the next `open` scans nothing.
//!
//! Recovery: trusted segments are checked only by their last index entry (one
//! header read: it must name the last batch and end the file). The first
//! untrusted segment and every later one are scanned batch by batch with
//! `batch::validate_stored` and growing offsets; the first torn or corrupt batch
//! truncates its file there and deletes every later segment. As in Kafka, the
//! segment holding the recovery point is scanned whole: after a crash, that is
//! the active segment (at most `segment.bytes`).
//!
//! Durability: the durable end is what this replica holds as durable as
//! its flush policy asks. Under `FlushPolicy::Sync` it moves once the group
//! holding the offsets is on the disk: new segments are opened `O_DSYNC`,
//! so the group's one write returns only then (and acks=1 waits for it
//! too), and a segment opened before (recovered, or under another policy)
//! gets an fdatasync after the write; under `Interval` and `None` after the
//! write (the data then reaches the disk at the next interval flush, roll
//! or close). The high watermark (what consumers may read) moves with it
//! unless the partition is replicated; then the replication bookkeeping
//! moves it (`advance_high_watermark`). `AppendWait::Durable` (acks=all)
//! waits for the high watermark, `Local` (acks=1 of a replicated
//! partition) for the durable end, `Written` (acks=1) for the write.
//!
//! Write failures: a failed write, file creation or index write (a full
//! disk) gives up the group being written and everything queued behind it:
//! those appends fail with `LogError::WriteFailed`, the log end offset, the
//! active segment (file, size, indexes) and the tail cache go back to the
//! written offset, segments rolled past it are removed, and the next append
//! retries at that offset. A failed fdatasync is different: the kernel may
//! have dropped the pages it could not write and a second sync would not
//! say so, so the log fails for good (appends and reads report it) until a
//! restart lets recovery re-read the files.
//!
//! Assertions run in every build, the cheap ones (O(1) per batch or group)
//! in production too: offsets only grow (each append starts at the log end
//! offset; only a given-up write moves it back, to the written offset), the
//! high watermark stays at or below the written offset and never moves back,
//! each write starts where the last one to its segment ended and carries
//! well-framed batches with consecutive offsets, reads and index entries stay
//! within a segment's written bytes, and what a read hands out starts at the
//! batch holding the offset asked for.
//!
//! Reads check what they serve: every batch read from a segment file is
//! checked (magic, CRC-32C, offsets in place) before it is returned, so a
//! byte that rotted on disk is never served (the tail cache holds bytes
//! checked on append). A bad batch ends a read after the good batches
//! before it; a read that would start with it fails with
//! `LogError::Corrupt`, logged once with the file and position.
//!
//! Retention (`PartitionLog::enforce_retention`): whole closed segments, the
//! oldest first, once the writer has sealed them; the log start offset moves
//! to the first kept segment, in memory at once (reads below it fail with
//! `OffsetOutOfRange`), then in the checkpoint, and only then are the files
//! removed. A read already inside a deleted segment finishes on its open file
//! or reports `OffsetOutOfRange`; a deleted segment never reopens its file.
//!
//! DeleteRecords (`PartitionLog::delete_records`): the log start offset moves
//! to the requested offset (never past the high watermark) in memory and in
//! the checkpoint before the answer; the closed segments wholly below it are
//! deleted as retention deletes them, and one the writer has not sealed yet
//! goes at the next retention pass.
//!
//! Runtime config changes (`PartitionLog::reconfigure`) replace the
//! `LogConfig`; each setting applies from its next use.
//!
//! Compaction (`PartitionLog::clean`, see `cleaner.rs`): only sealed
//! segments, never the active one, under the same lock as retention. A
//! cleaned group is complete once its files are renamed `.swap`; the segment
//! list then changes in one step, the old files go, the new ones take their
//! names. Recovery deletes `.cleaned` files and finishes any `.swap`. Batches
//! in a cleaned segment may hold fewer records than offsets and leave offset
//! gaps between them, so in a log the cleaner has touched (one with a
//! `shoal.cleaner`, written before its first swap) recovery and reads check
//! that offsets grow; elsewhere, that they follow on. Segments still chain
//! exactly (a cleaned group keeps its last batch, emptied if need be), and a
//! `delete_records` during a pass wins: a group it took segments from is not
//! swapped in. The cleaner follows transactions as Kafka's does (see
//! `cleaner_txns.rs`) and never cleans at or past the last stable offset's
//! segment. `shoal.cleaner` holds the cleaner offset (the dirty section
//! starts there) and the earliest time a pass has something more to drop
//! (a kept tombstone's or marker's delete horizon):
//!
//! ```text
//! shoal-cleaner 1
//! cleaner_offset 5000
//! tombstone_horizon_ms 9223372036854775807
//! ```
//!
//! Replication (issue 15): the high watermark is split from the durable
//! end (`partition/watermarks.rs`), leader epochs are kept in
//! `leader-epoch-checkpoint` (`epochs.rs`, `partition/leadership.rs`), a
//! follower appends its leader's batches verbatim
//! (`partition/replicated.rs`) and cuts its tail to the point of divergence
//! (`partition/truncation.rs`).
//!
//! Indexes of every segment are held in memory (Kafka mmaps them); the age of
//! a segment for `segment.ms` restarts when the log is opened.

mod checkpoint;
mod cleaner;
#[cfg(test)]
mod cleaner_tests;
mod cleaner_txns;
mod epochs;
#[cfg(test)]
mod epochs_tests;
mod file_range;
pub mod index;
mod partition;
mod pinned;
mod producer_state;
mod recovery;
mod segment;
mod txn_index;
mod volume;

use std::cell::Cell;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::protocol::batch::BatchError;

pub use file_range::{copy_counts, Chunk, CopyCounts, FileRange};
pub use partition::{PartitionLog, ReadChunks};
pub use pinned::{Backing, FrameBudget, PinnedFrame, SHARD_PINNED_FRAME_BYTES_MAX};
pub use producer_state::{AppendOrigin, ProducerDescription, ProducerError, TxnVerification};
pub use volume::{volume_bytes, VolumeBytes};
// The storage settings are plain data of `config`, so that `config` needs
// nothing of `log`; they are re-exported here as the log's own API.
pub use crate::config::{
    FlushPolicy, LogConfig, DELETE_RETENTION_MS_DEFAULT, INDEX_INTERVAL_BYTES_DEFAULT,
    MAX_COMPACTION_LAG_MS_DEFAULT, MIN_CLEANABLE_DIRTY_RATIO_DEFAULT,
    MIN_COMPACTION_LAG_MS_DEFAULT, RETENTION_BYTES_DEFAULT, RETENTION_MS_DEFAULT,
    SEGMENT_BYTES_DEFAULT, SEGMENT_MS_DEFAULT, TAIL_CACHE_BYTES_DEFAULT,
};

/// Positions in `.index` are u32 and Kafka's `segment.bytes` is an int, so a
/// segment never grows past `i32::MAX` bytes.
pub const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;

/// How long `append` waits: `acks=0`, `acks=1`, `acks=all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendWait {
    /// Return once offsets are assigned and the bytes are queued.
    Nothing,
    /// Return once the bytes are written to the segment file.
    Written,
    /// Return once the bytes are below this replica's durable end
    /// (fdatasync'd under `FlushPolicy::Sync`, written otherwise): `acks=1`
    /// of a replicated partition.
    Local,
    /// Return once the bytes are below the high watermark: the durable end
    /// of a partition not replicated, what the replicas have for one that is.
    Durable,
}

/// What one `enforce_retention` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Whole segments deleted, oldest first.
    pub deleted_segments: usize,
    /// The log start offset afterwards.
    pub log_start_offset: i64,
}

/// Why the cleaner should take a log now (`PartitionLog::cleaning_need`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleaningNeed {
    /// Dirty bytes over cleanable bytes; the dirtiest log goes first.
    pub dirty_ratio: f64,
    /// `max.compaction.lag.ms` passed, or tombstones reached their delete
    /// horizon: goes before any log that is only dirty.
    pub urgent: bool,
}

/// A shard's share of the cleaner's broker-wide limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanerBudget {
    /// Bytes of the key→offset map (`log.cleaner.dedupe.buffer.size`).
    pub map_bytes: usize,
    /// Bytes read and written per second
    /// (`log.cleaner.io.max.bytes.per.second`).
    pub io_bytes_per_second: f64,
}

/// When the shard running a cleaner last took on work: a client request
/// read from one of its connections or a call from another shard. The shard
/// notes it, the cleaner reads it and backs off while the shard is busy (see
/// `cleaner::Pacer`).
#[derive(Debug, Default)]
pub struct ShardLoad {
    last_work: Cell<Option<Instant>>,
}

impl ShardLoad {
    /// The shard starts a piece of work now.
    pub fn started_work(&self) {
        self.last_work.set(Some(Instant::now()));
    }

    /// How long before `now` the shard last started work; `None` if never.
    fn idle_for(&self, now: Instant) -> Option<Duration> {
        self.last_work
            .get()
            .map(|last| now.saturating_duration_since(last))
    }
}

/// What one cleaning pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanOutcome {
    /// Segments rewritten, and the segments they became.
    pub segments_before: usize,
    pub segments_after: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Superseded records, expired tombstones and keyless records dropped.
    pub records_removed: u64,
    /// Where the next pass's dirty section starts.
    pub cleaner_offset: i64,
}

/// Offsets given to one `append`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_start_offset: i64,
}

/// Everything the log can fail with. Converted to Kafka error codes by the server.
#[derive(Debug)]
pub enum LogError {
    /// A read or lookup outside `[log_start_offset, log_end_offset]`.
    OffsetOutOfRange {
        log_start_offset: i64,
        log_end_offset: i64,
    },
    /// Bytes on disk that are not what the log wrote.
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    /// The appended bytes are not back-to-back complete batches.
    InvalidBatch(BatchError),
    /// An idempotent producer's batch out of epoch or sequence
    /// (`producer_state`).
    Producer(producer_state::ProducerError),
    /// KIP-890: the batch would open its producer's transaction here; the
    /// transaction coordinator must confirm the partition is in it, then
    /// the append comes again with `guard` (`TxnVerification::Verified`).
    TxnUnverified {
        producer_id: i64,
        epoch: i16,
        guard: u64,
    },
    /// The append was given up after a write of its group failed (a full
    /// disk): nothing of it is in the log, and the log takes appends again.
    WriteFailed(String),
    Io(std::io::Error),
    /// The log was closed (or failed) and takes no more requests.
    Closed,
    /// A client append to a follower's log (`become_follower`): only its
    /// leader's batches come in, through `append_replicated`.
    NotLeader,
    /// A follower's batch that starts below the log end or overlaps the
    /// batch before it (a forward gap is a compacted leader's, and taken):
    /// the caller truncates or fetches again from `log_end_offset`.
    NotAtLogEnd {
        log_end_offset: i64,
        base_offset: i64,
    },
    /// A follower's batch whose leader epoch is below the previous batch's.
    EpochBackward {
        base_offset: i64,
        previous_epoch: i32,
        epoch: i32,
    },
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::OffsetOutOfRange {
                log_start_offset,
                log_end_offset,
            } => write!(
                f,
                "offset out of range [{log_start_offset}, {log_end_offset}]"
            ),
            LogError::Corrupt {
                path,
                position,
                reason,
            } => write!(f, "corrupt {} at {position}: {reason}", path.display()),
            LogError::InvalidBatch(e) => write!(f, "invalid record batch: {e:?}"),
            LogError::Producer(e) => write!(f, "producer state: {e:?}"),
            LogError::TxnUnverified {
                producer_id,
                epoch,
                guard,
            } => write!(
                f,
                "producer {producer_id} epoch {epoch}: partition not yet verified in its transaction (guard {guard})"
            ),
            LogError::WriteFailed(reason) => write!(f, "append given up: {reason}"),
            LogError::Io(e) => write!(f, "log io: {e}"),
            LogError::Closed => write!(f, "log closed"),
            LogError::NotLeader => write!(f, "not the leader: a follower takes only its leader's batches"),
            LogError::NotAtLogEnd {
                log_end_offset,
                base_offset,
            } => write!(f, "replicated batch at offset {base_offset}, log end {log_end_offset}"),
            LogError::EpochBackward {
                base_offset,
                previous_epoch,
                epoch,
            } => write!(
                f,
                "replicated batch at offset {base_offset} of leader epoch {epoch} after epoch {previous_epoch}"
            ),
        }
    }
}

impl std::error::Error for LogError {}

impl From<std::io::Error> for LogError {
    fn from(e: std::io::Error) -> Self {
        LogError::Io(e)
    }
}

impl From<glommio::GlommioError<()>> for LogError {
    fn from(e: glommio::GlommioError<()>) -> Self {
        LogError::Io(e.into())
    }
}
