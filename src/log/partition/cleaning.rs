//! The log's side of compaction: which closed segments a pass may touch and
//! how dirty they are, the pass itself (driving `cleaner.rs`), and the swap
//! of a cleaned group into the segment list.
//!
//! Invariant: only sealed segments below the last stable offset (so below
//! the high watermark, and holding no open transaction), never the active
//! one, under the maintenance lock; a cleaned group is complete on
//! disk (`.swap`) before the segment list changes, the list changes in one
//! step, and a group that `delete_records` took segments from is not
//! swapped in. The cleaner offset only grows.

use std::cell::Cell;
use std::path::PathBuf;
use std::rc::Rc;

use super::super::checkpoint::{self, sync_dir, CleanerCheckpoint};
use super::super::cleaner::{self, CleanRules, CleanedGroup, OffsetMap, Pacer};
use super::super::cleaner_txns::TxnCleaning;
use super::super::segment::{self, Segment, CLEANED_SUFFIX, NO_TIMESTAMP, SWAP_SUFFIX};
use super::super::txn_index::AbortedTxn;
use super::super::{CleanOutcome, CleanerBudget, CleaningNeed, LogError, ShardLoad};
use super::PartitionLog;

/// What the cleaner has done to this log, kept in `shoal.cleaner`.
pub(super) struct CleanerState {
    /// The cleaner has cleaned every offset below this; the dirty section
    /// starts here.
    pub(super) offset: Cell<i64>,
    /// Earliest delete horizon of a tombstone or transaction marker in the
    /// cleaned section, or the end of a pass that left markers free to go
    /// (`i64::MAX` for none): from then on a pass has something to drop.
    pub(super) tombstone_horizon_ms: Cell<i64>,
    /// The cleaner has worked on this log (`shoal.cleaner` exists): its
    /// segments may have offset gaps.
    pub(super) offset_gaps: Cell<bool>,
}

/// The closed segments a cleaning pass may touch, and how dirty they are.
struct CleanableRange {
    /// Oldest first: sealed, and old enough for `min.compaction.lag.ms`.
    segments: Vec<Rc<Segment>>,
    first_dirty: i64,
    clean_bytes: u64,
    dirty_bytes: u64,
    /// About the oldest timestamp of the dirty section.
    dirty_since_ms: Option<i64>,
}

impl PartitionLog {
    /// The closed segments a cleaning pass may touch now: sealed, below the
    /// last stable offset (Kafka's first uncleanable offset: a segment
    /// holding an open transaction's batch, or one past it, waits for its
    /// end), and, with `min.compaction.lag.ms`, holding no record younger
    /// than that. Never the active segment.
    fn cleanable_range(&self, now_ms: i64) -> CleanableRange {
        let bound = self.offsets.sealed().min(self.last_stable_offset());
        let segments = self.segments.borrow();
        let lag_ms = self.config.borrow().min_compaction_lag_ms;
        let first_dirty = self.cleaning.offset.get().max(self.offsets.log_start());
        let mut range = CleanableRange {
            segments: Vec::new(),
            first_dirty,
            clean_bytes: 0,
            dirty_bytes: 0,
            dirty_since_ms: None,
        };
        for segment in segments.iter().take(segments.len().saturating_sub(1)) {
            let indexes = segment.indexes.borrow();
            if segment.next_offset.get() > bound
                || (lag_ms > 0 && indexes.max_timestamp > now_ms.saturating_sub(lag_ms))
            {
                break;
            }
            let size = segment.queued_bytes.get();
            if segment.next_offset.get() <= first_dirty {
                range.clean_bytes += size;
            } else {
                range.dirty_bytes += size;
                if range.dirty_since_ms.is_none() {
                    range.dirty_since_ms = indexes.times.first().map(|e| e.timestamp);
                }
            }
            range.segments.push(segment.clone());
        }
        range
    }

    /// Whether the cleaner should clean this log now, as Kafka decides: a
    /// compacted log whose dirty share of the cleanable bytes is above
    /// `min.cleanable.dirty.ratio`, or whose oldest dirty record is older
    /// than `max.compaction.lag.ms`, or whose cleaned tombstones or markers
    /// have reached their delete horizon (or markers a pass left free to
    /// go). `None` when there is nothing to do.
    pub fn cleaning_need(&self, now_ms: i64) -> Option<CleaningNeed> {
        let config = self.config.borrow().clone();
        if !config.compact || self.check_open().is_err() {
            return None;
        }
        let range = self.cleanable_range(now_ms);
        let total = range.clean_bytes + range.dirty_bytes;
        let dirty_ratio = if total == 0 {
            0.0
        } else {
            range.dirty_bytes as f64 / total as f64
        };
        let overdue = range.dirty_since_ms.is_some_and(|oldest| {
            oldest != NO_TIMESTAMP && oldest <= now_ms.saturating_sub(config.max_compaction_lag_ms)
        });
        let tombstones_due =
            range.clean_bytes > 0 && self.cleaning.tombstone_horizon_ms.get() <= now_ms;
        let dirty =
            range.dirty_bytes > 0 && (dirty_ratio > config.min_cleanable_dirty_ratio || overdue);
        (dirty || tombstones_due).then_some(CleaningNeed {
            dirty_ratio,
            urgent: overdue || tombstones_due,
        })
    }

    /// One cleaning pass (see `cleaner.rs`): maps the keys of the dirty
    /// section, at most `budget.map_bytes` of them, then rewrites every
    /// cleanable segment below where the map stopped, a group of segments
    /// at a time, each group swapped in whole. Reads in flight finish on the
    /// files they opened; new reads see the cleaned segments. With `load`,
    /// the pass backs off while that shard is busy.
    pub async fn clean(
        &self,
        now_ms: i64,
        budget: CleanerBudget,
        load: Option<&ShardLoad>,
    ) -> Result<CleanOutcome, LogError> {
        self.check_open()?;
        let _permit = self.maintenance_lock.acquire_permit(1).await?;
        self.check_open()?;
        // The settings as they are at the start hold for the whole pass.
        let config = self.config.borrow().clone();
        let range = self.cleanable_range(now_ms);
        let first_dirty = range.first_dirty;
        let dirty_end = range
            .segments
            .last()
            .map_or(first_dirty, |s| s.next_offset.get())
            .max(first_dirty);
        let mut map = OffsetMap::new(budget.map_bytes, (dirty_end - first_dirty) as u64);
        let mut pacer = Pacer::new(&self.closing, load, budget.io_bytes_per_second);
        let aborted = self.aborted_txns();
        let mut map_txns = TxnCleaning::new(aborted.iter().copied(), first_dirty);
        let map_end = match cleaner::build_offset_map(
            &range.segments,
            first_dirty,
            &mut map,
            &mut map_txns,
            &mut pacer,
        )
        .await
        {
            Ok(map_end) => map_end,
            // `delete_records` removed segments under the pass: the next
            // pass starts from what is left.
            Err(_) if self.any_removed(&range.segments) => {
                return Ok(CleanOutcome {
                    cleaner_offset: self.cleaning.offset.get(),
                    ..CleanOutcome::default()
                })
            }
            Err(e) => return Err(e),
        };
        let to_clean: Vec<Rc<Segment>> = range
            .segments
            .into_iter()
            .filter(|s| s.base_offset < map_end)
            .collect();
        let mut outcome = CleanOutcome {
            segments_before: to_clean.len(),
            bytes_before: to_clean.iter().map(|s| s.queued_bytes.get()).sum(),
            cleaner_offset: map_end,
            ..CleanOutcome::default()
        };
        let producers = self.producers_last_records();
        let rules = CleanRules {
            map: &map,
            map_end,
            now_ms,
            delete_retention_ms: config.delete_retention_ms,
            index_interval_bytes: config.index_interval_bytes,
            producers: &producers,
        };
        let log_start = to_clean.first().map_or(first_dirty, |s| s.base_offset);
        let mut txns = TxnCleaning::new(aborted, log_start);
        if !to_clean.is_empty() {
            self.allow_offset_gaps().await?;
        }
        let mut tombstone_horizon_ms = i64::MAX;
        for group in group_by_size(&to_clean, config.segment_bytes) {
            let cleaned = match cleaner::clean_group(
                &self.dir, &group, &rules, &mut txns, &mut pacer,
            )
            .await
            {
                Ok(cleaned) => cleaned,
                Err(e) => {
                    self.remove_cleaner_files(group[0].base_offset, CLEANED_SUFFIX)
                        .await;
                    if self.any_removed(&group) {
                        continue;
                    }
                    return Err(e);
                }
            };
            let (horizon, removed, size) = (
                cleaned.tombstone_horizon_ms,
                cleaned.records_removed,
                cleaned.size_bytes,
            );
            if self.install_cleaned(&group, cleaned).await? {
                tombstone_horizon_ms = tombstone_horizon_ms.min(horizon);
                outcome.records_removed += removed;
                outcome.bytes_after += size;
                outcome.segments_after += 1;
            }
        }
        if txns.markers_freed() {
            tombstone_horizon_ms = tombstone_horizon_ms.min(now_ms);
        }
        self.cleaning
            .offset
            .set(self.cleaning.offset.get().max(map_end));
        self.cleaning.tombstone_horizon_ms.set(tombstone_horizon_ms);
        self.write_cleaner_checkpoint().await?;
        Ok(outcome)
    }

    /// Every aborted transaction the segments' `.txnindex` entries hold,
    /// in marker order.
    fn aborted_txns(&self) -> Vec<AbortedTxn> {
        self.segments
            .borrow()
            .iter()
            .flat_map(|segment| segment.aborted.borrow().clone())
            .collect()
    }

    /// From now on segments may have offset gaps (the cleaner's first swap,
    /// a follower's first batch from a compacted leader): the checkpoint
    /// that tells recovery so is on disk first.
    pub(super) async fn allow_offset_gaps(&self) -> Result<(), LogError> {
        if self.cleaning.offset_gaps.get() {
            return Ok(());
        }
        self.write_cleaner_checkpoint().await?;
        self.cleaning.offset_gaps.set(true);
        for segment in self.segments.borrow().iter() {
            segment.offset_gaps.set(true);
        }
        Ok(())
    }

    async fn write_cleaner_checkpoint(&self) -> Result<(), LogError> {
        let state = CleanerCheckpoint {
            cleaner_offset: self.cleaning.offset.get(),
            tombstone_horizon_ms: self.cleaning.tombstone_horizon_ms.get(),
        };
        checkpoint::write_cleaner(&self.dir, &state).await
    }

    /// Puts a cleaned group in place of the segments it was made from. On
    /// disk: its `.cleaned` files become `.swap` (complete: recovery would
    /// finish from here), the old segments' files go, and the `.swap` files
    /// take the final names, the `.log` last. In memory, the segment list
    /// changes in one step, before any old file goes. Returns false, and
    /// changes nothing, when `delete_records` took segments of the group
    /// out of the log meanwhile.
    async fn install_cleaned(
        &self,
        group: &[Rc<Segment>],
        cleaned: CleanedGroup,
    ) -> Result<bool, LogError> {
        let base = cleaned.base_offset;
        // The aborted transactions whose markers the group kept with data:
        // the new segment's `.txnindex`, which moves with its other files.
        let aborted = cleaned.aborted.clone();
        // Written, even empty, when the group's first segment has one: the
        // new file takes its name, so no entry the pass dropped comes back
        // with the old file at the next open.
        let txn_index = !aborted.is_empty()
            || group
                .first()
                .is_some_and(|first| !first.aborted.borrow().is_empty());
        let renamed = |from: &str, to: &str| {
            segment_file_paths(&self.dir, base)
                .into_iter()
                .filter(|path| txn_index || !is_txn_index(path))
                .map(|path| {
                    (
                        segment::with_suffix(path.clone(), from),
                        segment::with_suffix(path, to),
                    )
                })
                .collect::<Vec<_>>()
        };
        if self.group_position(group).is_none() {
            self.remove_cleaner_files(base, CLEANED_SUFFIX).await;
            return Ok(false);
        }
        if txn_index {
            if let Err(e) =
                segment::write_txn_index_file(&self.dir, base, &aborted, CLEANED_SUFFIX).await
            {
                self.remove_cleaner_files(base, CLEANED_SUFFIX).await;
                return Err(e);
            }
        }
        for (from, to) in renamed(CLEANED_SUFFIX, SWAP_SUFFIX) {
            if let Err(e) = glommio::io::rename(&from, &to).await {
                self.remove_cleaner_files(base, CLEANED_SUFFIX).await;
                self.remove_cleaner_files(base, SWAP_SUFFIX).await;
                return Err(LogError::Io(e.into()));
            }
        }
        sync_dir(&self.dir).await?;
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            return Ok(false);
        };
        let next_offset = last.next_offset.get();
        let segment = Rc::new(Segment::existing(
            &self.dir,
            base,
            cleaned.file,
            cleaned.size_bytes,
            cleaned.indexes,
            next_offset,
            first.created_ms,
        ));
        segment.offset_gaps.set(true);
        *segment.aborted.borrow_mut() = aborted.clone();
        // No await from the check to the splice: the group is still there.
        let Some(start) = self.group_position(group) else {
            // What a crash would leave now is finished by recovery below the
            // log start offset, where retention removes it.
            self.remove_cleaner_files(base, SWAP_SUFFIX).await;
            return Ok(false);
        };
        self.segments
            .borrow_mut()
            .splice(start..start + group.len(), [segment]);
        self.tail.borrow_mut().evict_below(next_offset);
        first.retire().await?;
        for old in &group[1..] {
            old.delete_files().await?;
        }
        for (from, to) in renamed(SWAP_SUFFIX, "") {
            glommio::io::rename(&from, &to)
                .await
                .map_err(|e| LogError::Io(e.into()))?;
        }
        sync_dir(&self.dir).await?;
        Ok(true)
    }

    /// Whether any of `segments` left the segment list (`delete_records`).
    fn any_removed(&self, segments: &[Rc<Segment>]) -> bool {
        let list = self.segments.borrow();
        segments
            .iter()
            .any(|s| !list.iter().any(|kept| Rc::ptr_eq(kept, s)))
    }

    /// Where `group` starts in the segment list, if all of it is still
    /// there, in order.
    fn group_position(&self, group: &[Rc<Segment>]) -> Option<usize> {
        let segments = self.segments.borrow();
        let first = group.first()?;
        let start = segments.iter().position(|s| Rc::ptr_eq(s, first))?;
        let here = segments.get(start..start + group.len())?;
        here.iter()
            .zip(group)
            .all(|(a, b)| Rc::ptr_eq(a, b))
            .then_some(start)
    }

    /// Removes what a failed pass left of segment `base`'s `suffix` files.
    async fn remove_cleaner_files(&self, base: i64, suffix: &str) {
        for path in segment_file_paths(&self.dir, base) {
            let path = segment::with_suffix(path, suffix);
            if let Err(e) = glommio::io::remove(&path).await {
                let e: std::io::Error = e.into();
                if e.kind() != std::io::ErrorKind::NotFound {
                    ::log::warn!("removing {}: {e}", path.display());
                }
            }
        }
    }
}

/// The `.index`, `.timeindex`, `.txnindex` and `.log` paths of segment
/// `base`, the log last (renamed last, so that a `.log.swap` means its
/// indexes are done).
fn segment_file_paths(dir: &std::path::Path, base: i64) -> [PathBuf; 4] {
    [
        segment::index_path(dir, base),
        segment::time_index_path(dir, base),
        segment::txn_index_path(dir, base),
        segment::log_path(dir, base),
    ]
}

fn is_txn_index(path: &std::path::Path) -> bool {
    path.extension()
        .is_some_and(|extension| extension == "txnindex")
}

/// Adjacent segments in groups that fit one segment: at most `segment_bytes`
/// together, offsets within u32 of the group's base (Kafka's grouping).
fn group_by_size(segments: &[Rc<Segment>], segment_bytes: u64) -> Vec<Vec<Rc<Segment>>> {
    let mut groups: Vec<Vec<Rc<Segment>>> = Vec::new();
    let mut size_bytes = 0;
    for segment in segments {
        let fits = groups.last().and_then(|g| g.first()).is_some_and(|first| {
            size_bytes + segment.queued_bytes.get() <= segment_bytes
                && segment.next_offset.get() - first.base_offset <= i64::from(u32::MAX)
        });
        match groups.last_mut() {
            Some(group) if fits => group.push(segment.clone()),
            _ => {
                groups.push(vec![segment.clone()]);
                size_bytes = 0;
            }
        }
        size_bytes += segment.queued_bytes.get();
    }
    groups
}
