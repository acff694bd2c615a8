//! Leader epochs: which epoch's leader wrote which offsets, as Kafka's
//! `LeaderEpochFileCache` keeps them, and their `leader-epoch-checkpoint`
//! file. OffsetForLeaderEpoch answers from it, and a follower finds with it
//! where its log diverges from its leader's (KIP-101, KIP-279).
//!
//! File format (Kafka's): a version line `0`, a line with the number of
//! entries, then one `epoch startOffset` line per entry, oldest first;
//! replaced atomically (temporary file, fdatasync, rename, fsync of the
//! directory) whenever it changes.
//!
//! Invariant: entries strictly increase in both epoch and start offset
//! (asserted after every change and after every read of the file); an
//! entry's epoch wrote the offsets from its start to the next entry's start
//! (or the log end). Pure but for `read` and `write`.

use std::path::Path;

use super::checkpoint::{read_whole, replace};
use super::LogError;

pub const EPOCHS_FILE: &str = "leader-epoch-checkpoint";
const EPOCHS_TMP_FILE: &str = "leader-epoch-checkpoint.tmp";
const VERSION: &str = "0";
/// Entries read from a file at most: one per leader change, so a
/// partition with more has a file that is not ours. Bounds the read.
const EPOCH_ENTRIES_MAX: usize = 1 << 16;
/// The longest line: two numbers and a space.
const LINE_BYTES_MAX: u64 = 32;

/// One leader epoch and the first offset its leader wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// The epochs of one partition, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochs {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochs {
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// The epoch that wrote `offset`: the newest entry starting at or
    /// before it.
    pub fn epoch_at(&self, offset: i64) -> Option<i32> {
        let after = self.entries.partition_point(|e| e.start_offset <= offset);
        after.checked_sub(1).map(|i| self.entries[i].epoch)
    }

    /// Records that `epoch` starts at `start_offset`, unless the latest
    /// entry already says so (same epoch, starting no later). As Kafka's
    /// `assign`: entries that would break the order (an epoch at or above
    /// `epoch`, or a start at or past `start_offset`) go first. Returns
    /// whether anything changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        assert!(
            epoch >= 0 && start_offset >= 0,
            "epoch {epoch} at {start_offset}"
        );
        let needed = self
            .latest()
            .is_none_or(|last| last.epoch != epoch || start_offset < last.start_offset);
        if !needed {
            return false;
        }
        while self
            .latest()
            .is_some_and(|last| last.epoch >= epoch || last.start_offset >= start_offset)
        {
            self.entries.pop();
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.assert_ordered();
        true
    }

    /// OffsetForLeaderEpoch for `epoch` on a log ending at `log_end`, as
    /// Kafka's `endOffsetFor`: the largest epoch at or below it and the
    /// start of the next larger epoch, or the log end when `epoch` is the
    /// latest. An epoch below the first entry answers itself with the first
    /// entry's start. `None` (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET) for
    /// an undefined (negative) epoch, or when no entry is larger and
    /// `epoch` is not the latest (above every entry, or no entries).
    pub fn end_offset_for(&self, epoch: i32, log_end: i64) -> Option<(i32, i64)> {
        if epoch < 0 {
            return None;
        }
        if self.latest().is_some_and(|last| last.epoch == epoch) {
            return Some((epoch, log_end));
        }
        let higher = self.entries.partition_point(|e| e.epoch <= epoch);
        let next = self.entries.get(higher)?;
        let floor = higher.checked_sub(1).map(|i| self.entries[i].epoch);
        // An epoch below the first entry: Kafka answers the asked epoch with
        // the first entry's start (all of the log is newer than it).
        Some((floor.unwrap_or(epoch), next.start_offset))
    }

    /// Drops the entries that start at or past `end` (the log was cut there).
    /// Returns whether anything changed.
    pub fn truncate_from_end(&mut self, end: i64) -> bool {
        let keep = self.entries.partition_point(|e| e.start_offset < end);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// The log starts at `start` now: the entries starting at or before it
    /// go but the newest of them, which now starts at `start` (Kafka's
    /// `truncateFromStart`). Returns whether anything changed.
    pub fn truncate_from_start(&mut self, start: i64) -> bool {
        let covered = self.entries.partition_point(|e| e.start_offset <= start);
        let Some(newest) = covered.checked_sub(1) else {
            return false;
        };
        if newest == 0 && self.entries[0].start_offset == start {
            return false;
        }
        self.entries.drain(..newest);
        self.entries[0].start_offset = start;
        self.assert_ordered();
        true
    }

    fn assert_ordered(&self) {
        assert!(
            self.entries
                .windows(2)
                .all(|w| w[0].epoch < w[1].epoch && w[0].start_offset < w[1].start_offset),
            "leader epochs out of order: {:?}",
            self.entries
        );
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        let mut text = format!("{VERSION}\n{}\n", self.entries.len());
        for entry in &self.entries {
            text.push_str(&format!("{} {}\n", entry.epoch, entry.start_offset));
        }
        text.into_bytes()
    }

    pub(super) fn decode(text: &str) -> Result<LeaderEpochs, String> {
        let mut lines = text.lines();
        if lines.next() != Some(VERSION) {
            return Err("unknown version line".into());
        }
        let count: usize = lines
            .next()
            .and_then(|line| line.parse().ok())
            .ok_or("malformed count line")?;
        if count > EPOCH_ENTRIES_MAX {
            return Err(format!("{count} entries"));
        }
        let mut entries = Vec::with_capacity(count);
        for line in lines.by_ref().take(count) {
            let parsed = line
                .split_once(' ')
                .and_then(|(epoch, offset)| Some((epoch.parse().ok()?, offset.parse().ok()?)));
            let Some((epoch, start_offset)) = parsed else {
                return Err(format!("malformed line {line:?}"));
            };
            if epoch < 0 || start_offset < 0 {
                return Err(format!("negative entry {line:?}"));
            }
            entries.push(EpochEntry {
                epoch,
                start_offset,
            });
        }
        if entries.len() != count || lines.next().is_some() {
            return Err(format!("expected {count} entries"));
        }
        let epochs = LeaderEpochs { entries };
        let ordered = epochs
            .entries
            .windows(2)
            .all(|w| w[0].epoch < w[1].epoch && w[0].start_offset < w[1].start_offset);
        if !ordered {
            return Err("entries out of order".into());
        }
        Ok(epochs)
    }
}

/// The epochs in `dir`'s file; `Ok(None)` when there is none or it does not
/// decode (logged): the caller rebuilds them from the batches.
pub async fn read(dir: &Path) -> Result<Option<LeaderEpochs>, LogError> {
    let path = dir.join(EPOCHS_FILE);
    let bytes_max = (EPOCH_ENTRIES_MAX as u64 + 2) * LINE_BYTES_MAX;
    let Some(bytes) = read_whole(&path, bytes_max).await? else {
        return Ok(None);
    };
    let decoded = std::str::from_utf8(&bytes)
        .map_err(|_| "not utf-8".to_string())
        .and_then(LeaderEpochs::decode);
    match decoded {
        Ok(epochs) => Ok(Some(epochs)),
        Err(reason) => {
            ::log::warn!("{}: not used, rebuilt: {reason}", path.display());
            Ok(None)
        }
    }
}

/// Replaces `dir`'s file with `epochs`, atomically.
pub async fn write(dir: &Path, epochs: &LeaderEpochs) -> Result<(), LogError> {
    replace(dir, EPOCHS_FILE, EPOCHS_TMP_FILE, epochs.encode()).await
}
