//! The idempotent producers of a partition (`producer_state`), kept with its
//! log: the checks an append passes before it gets offsets, the answer to a
//! duplicate, forgetting appends the writer gave up, expiration, and the
//! state's persistence as `<offset>.snapshot` files beside the segments.
//!
//! Snapshots: one is taken in memory when the active segment rolls (the
//! state after every batch below the new segment), and one at the log end
//! when a checkpoint finds everything written, or the log closes. A
//! snapshot is written only once the log is written up to its offset, so
//! a snapshot file never names offsets a given-up write took back. `open`
//! loads the newest snapshot at or below the recovered log end (a crash may
//! have cut the log below newer ones; those are deleted) and replays the
//! batches after it; with none, the whole log. The two newest files are
//! kept, so one damaged file still leaves the other.
//!
//! Invariant: the table reflects exactly the batches below the log end
//! offset: `admit` and `commit` run with the append and no `.await`
//! between them, and a give-up truncates it with the log.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::super::checkpoint::{self, read_whole};
use super::super::producer_state::{
    Admission, AppendOrigin, BatchMetadata, CompletedTxn, LastRecord, ProducerAppend,
    ProducerDescription, ProducerError, ProducerStateTable, ProducerUpdate, TxnVerification,
};
use super::super::{AppendResult, AppendWait, LogError};
use super::PartitionLog;
use crate::protocol::batch::{framed_size, BatchHeader};

const SNAPSHOT_SUFFIX: &str = ".snapshot";
const SNAPSHOT_TMP_FILE: &str = "producers.snapshot.tmp";
/// Snapshot files kept: the newest, and one more in case it is damaged.
const SNAPSHOTS_KEPT: usize = 2;
/// A snapshot larger than this is not read (the log is replayed instead):
/// some 700,000 producers of five batches each.
const SNAPSHOT_BYTES_MAX: u64 = 128 << 20;
/// Bytes read per step when the state is rebuilt from the log.
const REPLAY_READ_BYTES: usize = 1 << 20;

/// The producer state of one log and its snapshots.
#[derive(Default)]
pub(super) struct Producers {
    table: RefCell<ProducerStateTable>,
    /// Taken at the last roll, written once the log is written that far.
    pending_snapshot: RefCell<Option<(i64, Vec<u8>)>>,
    /// Offset of the newest snapshot file.
    snapshot_offset: Cell<Option<i64>>,
    /// Give-ups so far: a duplicate's answer waiting through one fails.
    give_ups: Cell<u64>,
}

fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}{SNAPSHOT_SUFFIX}"))
}

/// The snapshot files of `dir` by offset, newest first.
fn snapshot_offsets(dir: &Path) -> Result<Vec<i64>, LogError> {
    let mut offsets = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SNAPSHOT_SUFFIX)) else {
            continue;
        };
        if let Ok(offset) = stem.parse::<i64>() {
            offsets.push(offset);
        }
    }
    offsets.sort_unstable_by(|a, b| b.cmp(a));
    Ok(offsets)
}

fn remove_snapshot(dir: &Path, offset: i64) -> Result<(), LogError> {
    match std::fs::remove_file(snapshot_path(dir, offset)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

impl PartitionLog {
    /// Kafka's producer checks of `batches` if they were appended now at the
    /// log end offset. Changes nothing, but for starting a KIP-890
    /// verification (`LogError::TxnUnverified`, with its guard);
    /// `commit_producers` applies them.
    pub(super) fn admit_producers(
        &self,
        batches: &[u8],
        origin: AppendOrigin,
        verification: TxnVerification,
    ) -> Result<Admission, LogError> {
        let mut offset = self.offsets.log_end();
        let mut producer_batches = Vec::new();
        let mut cursor = 0;
        while cursor < batches.len() {
            let size = framed_size(&batches[cursor..]).map_err(LogError::InvalidBatch)?;
            let batch = &batches[cursor..cursor + size];
            if let Some(header) = BatchHeader::view(batch) {
                producer_batches.extend(ProducerAppend::of(batch, offset));
                offset += i64::from(header.last_offset_delta.get()) + 1;
            }
            cursor += size;
        }
        if producer_batches.is_empty() {
            return Ok(Admission::Append(ProducerUpdate::default()));
        }
        let partition = self.dir.file_name().map_or_else(
            || self.dir.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        let admitted = self.producers.table.borrow().admit(
            &producer_batches,
            &partition,
            origin,
            verification,
        );
        admitted.map_err(|error| match error {
            ProducerError::Unverified {
                producer_id,
                epoch,
                first_seq,
            } => {
                let now_ms = i64::try_from(crate::clock::now_ms()).unwrap_or(i64::MAX);
                let guard = self.producers.table.borrow_mut().start_verification(
                    producer_id,
                    (epoch, first_seq),
                    now_ms,
                );
                LogError::TxnUnverified {
                    producer_id,
                    epoch,
                    guard,
                }
            }
            other => LogError::Producer(other),
        })
    }

    /// Applies what `admit_producers` returned, once the append is queued;
    /// the transactions its markers completed.
    pub(super) fn commit_producers(&self, update: ProducerUpdate) -> Vec<CompletedTxn> {
        self.producers.table.borrow_mut().commit(update)
    }

    /// The answer to a retried batch: the offsets it got the first time,
    /// once they are as durable as `wait` asks. Fails, to be retried, if
    /// the writer gives appends up meanwhile (perhaps the first one).
    pub(super) async fn answer_duplicate(
        &self,
        batch: BatchMetadata,
        wait: AppendWait,
    ) -> Result<AppendResult, LogError> {
        let give_ups = self.producers.give_ups.get();
        let given_up = |log: &Self| log.producers.give_ups.get() != give_ups;
        let done = |log: &Self| match wait {
            AppendWait::Nothing => true,
            AppendWait::Written => log.offsets.written() > batch.last_offset,
            AppendWait::Local => log.durable_end() > batch.last_offset,
            // As the first append's own wait: failed if deposed meanwhile.
            AppendWait::Durable => true,
        };
        if wait == AppendWait::Durable {
            self.wait_for_commit(given_up, batch.last_offset).await?;
        }
        self.wait_until(|log| given_up(log) || done(log)).await?;
        if given_up(self) {
            return Err(LogError::WriteFailed(
                self.writer.last_write_error.borrow().clone(),
            ));
        }
        Ok(AppendResult {
            base_offset: batch.first_offset,
            last_offset: batch.last_offset,
            log_start_offset: self.offsets.log_start(),
        })
    }

    /// The writer gave up the appends from `offset` on: so does the state.
    pub(super) fn give_up_producers(&self, offset: i64) {
        self.producers
            .give_ups
            .set(self.producers.give_ups.get() + 1);
        self.producers.table.borrow_mut().truncate_from(offset);
        let mut pending = self.producers.pending_snapshot.borrow_mut();
        if pending.as_ref().is_some_and(|(at, _)| *at > offset) {
            *pending = None;
        }
    }

    /// The active segment rolls at `offset`: the state now is the state
    /// after every batch below it.
    pub(super) fn snapshot_producers_at(&self, offset: i64) {
        let bytes = self.producers.table.borrow().encode();
        *self.producers.pending_snapshot.borrow_mut() = Some((offset, bytes));
    }

    /// Writes the snapshot taken at the last roll once the log is written
    /// that far, or else one at the log end if everything is written and
    /// the newest file is older.
    pub(super) async fn write_producer_snapshot(&self) -> Result<(), LogError> {
        // The periodic checkpoint and `close` may both get here: one at a
        // time, as they share the temporary file.
        let _permit = self.checkpoint_lock.acquire_permit(1).await?;
        let written = self.offsets.written();
        let ready = self
            .producers
            .pending_snapshot
            .borrow()
            .as_ref()
            .is_some_and(|(at, _)| *at <= written);
        let (offset, bytes) = if ready {
            match self.producers.pending_snapshot.borrow_mut().take() {
                Some(snapshot) => snapshot,
                None => return Ok(()),
            }
        } else if written == self.offsets.log_end()
            && self.producers.snapshot_offset.get() != Some(written)
        {
            (written, self.producers.table.borrow().encode())
        } else {
            return Ok(());
        };
        if self.producers.snapshot_offset.get() >= Some(offset) {
            return Ok(());
        }
        let name = format!("{offset:020}{SNAPSHOT_SUFFIX}");
        checkpoint::replace(&self.dir, &name, SNAPSHOT_TMP_FILE, bytes).await?;
        self.producers.snapshot_offset.set(Some(offset));
        // Also kept: the newest at or below the active segment's base, the
        // one a replay after a crash starts from (`load_producers`).
        let active_base = self.active().base_offset;
        let offsets = snapshot_offsets(&self.dir)?;
        let for_recovery = offsets.iter().copied().find(|&at| at <= active_base);
        for old in offsets.into_iter().skip(SNAPSHOTS_KEPT) {
            if Some(old) != for_recovery {
                remove_snapshot(&self.dir, old)?;
            }
        }
        Ok(())
    }

    /// At `open`: the newest usable snapshot, then the batches after it.
    /// When recovery scanned segments from `scanned_from`, the snapshot is
    /// one at or below it, so that the replay also puts back the aborted
    /// transactions their `.txnindex` may lack.
    pub(super) async fn load_producers(&self, scanned_from: Option<i64>) -> Result<(), LogError> {
        let log_end = self.offsets.log_end();
        let limit = scanned_from.map_or(log_end, |from| from.min(log_end));
        let mut table = None;
        for offset in snapshot_offsets(&self.dir)? {
            if offset > log_end {
                // The log was cut below it (a crash lost unsynced bytes).
                remove_snapshot(&self.dir, offset)?;
                continue;
            }
            if offset > limit {
                continue;
            }
            let path = snapshot_path(&self.dir, offset);
            let decoded = match read_whole(&path, SNAPSHOT_BYTES_MAX).await? {
                Some(bytes) => ProducerStateTable::decode(&bytes),
                None => Err("missing or too large".to_string()),
            };
            match decoded {
                Ok(loaded) => {
                    self.producers.snapshot_offset.set(Some(offset));
                    table = Some((offset, loaded));
                    break;
                }
                Err(reason) => {
                    ::log::warn!("{}: not used: {reason}", path.display());
                }
            }
        }
        let (from, table) = table.unwrap_or_default();
        *self.producers.table.borrow_mut() = table;
        self.replay_producers(from.max(self.offsets.log_start()))
            .await
    }

    async fn replay_producers(&self, mut offset: i64) -> Result<(), LogError> {
        let log_end = self.offsets.log_end();
        let mut sealed_changed = false;
        while offset < log_end {
            let batches = self.read(offset, log_end, REPLAY_READ_BYTES, true).await?;
            let Some(last) = batches.last() else {
                break;
            };
            let next = BatchHeader::view(last).map_or(log_end, |h| h.last_offset() + 1);
            for batch in &batches {
                let append = BatchHeader::view(batch)
                    .and_then(|h| ProducerAppend::of(batch, h.base_offset.get()));
                let completed = append.and_then(|a| self.producers.table.borrow_mut().replay(&a));
                if let Some(completed) = completed {
                    sealed_changed |= self.index_aborted(&[completed]);
                }
            }
            assert!(next > offset, "a replay read must move forward");
            offset = next;
        }
        if sealed_changed {
            self.rewrite_txn_indexes().await?;
        }
        Ok(())
    }

    /// Writes again the `.txnindex` of every sealed segment: the replay
    /// found aborted transactions a crash kept out of them.
    async fn rewrite_txn_indexes(&self) -> Result<(), LogError> {
        let sealed: Vec<_> = {
            let segments = self.segments.borrow();
            segments[..segments.len() - 1].to_vec()
        };
        for segment in sealed {
            segment.write_txn_index().await?;
        }
        Ok(())
    }

    /// A follower's batch, taken in as the replay at `open` takes it.
    pub(super) fn producers_replay(&self, append: &ProducerAppend) -> Option<CompletedTxn> {
        self.producers.table.borrow_mut().replay(append)
    }

    /// `truncate_to` cut the log at its log end: the snapshots past it go,
    /// and the state is rebuilt as `open` builds it (the newest snapshot at
    /// or below the end, then the batches after it).
    pub(super) async fn rebuild_producers(&self) -> Result<(), LogError> {
        let log_end = self.offsets.log_end();
        {
            let mut pending = self.producers.pending_snapshot.borrow_mut();
            if pending.as_ref().is_some_and(|(at, _)| *at > log_end) {
                *pending = None;
            }
        }
        self.producers.snapshot_offset.set(None);
        self.producers
            .give_ups
            .set(self.producers.give_ups.get() + 1);
        self.load_producers(None).await
    }

    /// The log restarted empty (`truncate_fully_and_start_at`): every
    /// producer is forgotten, with its snapshots, pending or on disk, so
    /// that neither `open` nor the next checkpoint brings one back.
    pub(super) fn forget_producers(&self) -> Result<(), LogError> {
        self.producers
            .give_ups
            .set(self.producers.give_ups.get() + 1);
        *self.producers.table.borrow_mut() = ProducerStateTable::default();
        *self.producers.pending_snapshot.borrow_mut() = None;
        self.producers.snapshot_offset.set(None);
        for offset in snapshot_offsets(&self.dir)? {
            remove_snapshot(&self.dir, offset)?;
        }
        Ok(())
    }

    pub(super) fn producers_first_unstable_offset(&self) -> Option<i64> {
        self.producers.table.borrow().first_unstable_offset()
    }

    /// What the cleaner keeps of each producer (see `LastRecord`).
    pub(super) fn producers_last_records(&self) -> HashMap<i64, LastRecord> {
        self.producers.table.borrow().last_records()
    }

    /// Forgets the producers idle for `expiration_ms` or more
    /// (`producer.id.expiration.ms`); returns how many.
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        self.producers
            .table
            .borrow_mut()
            .expire(now_ms, expiration_ms)
    }

    /// The producers this partition remembers.
    pub fn producer_count(&self) -> usize {
        self.producers.table.borrow().len()
    }

    /// Every producer this partition remembers, as DescribeProducers shows it.
    pub fn describe_producers(&self) -> Vec<ProducerDescription> {
        self.producers.table.borrow().describe()
    }

    /// The last stable offset: read_committed consumers read below it. The
    /// first offset of the oldest open transaction, or the high watermark
    /// when that is lower (or no transaction is open). Never below the log
    /// start: retention and DeleteRecords may remove an open transaction's
    /// first batches, and Kafka then counts it from the log start.
    pub fn last_stable_offset(&self) -> i64 {
        let high_watermark = self.high_watermark();
        self.producers_first_unstable_offset()
            .map_or(high_watermark, |first| {
                first.max(self.log_start_offset()).min(high_watermark)
            })
    }
}
