//! Log compaction, Kafka's log cleaner: the pieces of one cleaning pass over
//! a partition's closed segments. `PartitionLog::clean` runs a pass;
//! `shard` decides when and on which log.
//!
//! A pass: the dirty section (from the cleaner offset to the first segment
//! that may not be cleaned yet: the active one, or the one holding the last
//! stable offset) is read into an [`OffsetMap`], key hash → latest offset,
//! until the map is full; `map_end` is where it stopped, at a batch
//! boundary. Then every closed segment from the log start up to `map_end`
//! is rewritten, in groups of adjacent segments that fit one segment
//! (`segment.bytes`): a record is kept when no later record of its key is
//! in the map; keyless records below `map_end` go; a tombstone stays until
//! `delete.retention.ms` after the pass that first kept it, which marks its
//! batch with that delete horizon (KIP-534). Batches from `map_end` on and
//! batches that cannot be read as records are kept as they are.
//!
//! Transactions, as Kafka's cleaner (see `cleaner_txns.rs`): the batches of
//! aborted transactions go, whatever their keys, and are never mapped; a
//! marker stays while its transaction has a batch in the log, then, like a
//! tombstone, `delete.retention.ms` more; the `.txnindex` of a cleaned
//! group holds the aborted transactions whose markers it kept with data.
//! The batch holding a producer's last data offset (or, with none, its
//! markers of its epoch) stays, emptied if nothing of it survives, so that
//! the producer's sequence and epoch survive a restart's replay.
//!
//! A group is written to `{base}.log.cleaned` and its indexes to
//! `.index.cleaned` / `.timeindex.cleaned`, all fdatasync'd, then renamed to
//! `.swap`: from then on the group is complete, and recovery finishes the
//! replacement if the process dies (see `recovery.rs`).
//!
//! Invariants: the cleaner reads and writes only sealed segments, never the
//! active one. A cleaned group ends at the offset the segments it replaces
//! ended at (its last batch stays, emptied if nothing of it survives), so
//! segments still chain and nothing moves the log end offset. Every kept
//! batch keeps its base and last offsets. The map holds at most its budget,
//! but for the first batch of a pass, always taken so that a pass moves on.
//! Between batches the cleaner pauses once its turn is over: after
//! `CLEANER_SLICE` on an idle shard, after `CLEANER_BUSY_SLICE` when a
//! request is waiting or the shard has started work since the last pause,
//! so produce and fetch on the same shard wait at most about that long.
//! While the shard stays busy the pauses grow to `CLEANER_BUSY_PAUSE_MAX`:
//! the cleaner then takes about 2.5% of the shard, never nothing.

use std::cell::Cell;
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::Hasher;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::io::{BufferedFile, OpenOptions};

use super::cleaner_txns::TxnCleaning;
use super::producer_state::LastRecord;
use super::segment::{
    self, write_index_files, ReadBudget, Segment, SegmentIndexes, CLEANED_SUFFIX,
};
use super::txn_index::AbortedTxn;
use super::{LogError, ShardLoad, SEGMENT_BYTES_MAX};
use crate::protocol::batch::BatchHeader;
use crate::protocol::batch_records::{
    emptied, rebuild, BatchRecords, RecordView, RecordsError, ATTR_DELETE_HORIZON,
};

/// Bytes read or written per step. Kafka's `log.cleaner.io.buffer.size`
/// is 512 KiB; each step is a copy the kernel makes while the shard waits
/// (a page-cache read, a buffered write), which no turn limit cuts short.
/// 64 KiB steps took produce p99 with the cleaner churning from 1.18× to
/// 1.05× of the cleaner-off figure in `perf/compaction.py`.
const CLEANER_IO_BYTES: usize = 64 << 10;
/// Share of the map's slots that may be used before it counts as full:
/// Kafka's `log.cleaner.io.buffer.load.factor`.
const OFFSET_MAP_LOAD_FACTOR: f64 = 0.9;
/// One slot: a 16-byte hash of the key and the 8-byte offset, as in
/// Kafka's SkimpyOffsetMap (which hashes with MD5).
pub const OFFSET_MAP_SLOT_BYTES: usize = 24;
/// Longest turn of the cleaner on an idle shard before it lets the shard
/// poll its sockets and run what is waiting. 200 µs rather than 1 ms took
/// produce p99 under full-speed cleaning from 4.1 to 3.4 ms in
/// `perf/compaction.py` (2.4 ms without the cleaner).
const CLEANER_SLICE: Duration = Duration::from_micros(200);
/// The shard counts as busy while it started work (a request, a call from
/// another shard) less than this long ago: a shard serving a steady load
/// (hundreds of requests a second) never looks idle between two of them,
/// and one that served a burst is left to the cleaner 10 ms after it.
const CLEANER_BUSY_WINDOW: Duration = Duration::from_millis(10);
/// Turn of the cleaner while a request waits or the shard is busy: how long
/// a request arriving during a turn waits for it, at most about one batch
/// more.
const CLEANER_BUSY_SLICE: Duration = Duration::from_micros(50);
/// The pause after a turn on an idle shard. Any timer makes the executor
/// poll io_uring (a yield alone would not when nothing else is runnable yet).
const CLEANER_PAUSE: Duration = Duration::from_micros(50);
/// Longest pause between turns while the shard stays busy: the pause
/// doubles from `CLEANER_PAUSE` each busy turn up to this. With
/// `CLEANER_BUSY_SLICE` it is the floor a shard that never idles still
/// leaves the cleaner, about 2.5% of it: enough to keep a topic taking
/// 25,000 keyed records/s per shard within about twice its compacted size
/// in `perf/compaction.py`, and each sleep and wake of the shard costs
/// CPU too, so shorter pauses cost produce more.
const CLEANER_BUSY_PAUSE_MAX: Duration = Duration::from_millis(2);
/// Longest sleep of a throttled cleaner before it checks whether its log is
/// closing: a close waits at most this long for the cleaner to let go.
const CLEANER_NAP_MAX: Duration = Duration::from_millis(100);

/// Key hash → offset of the newest record with that key, in a fixed number
/// of slots (open addressing, linear probing). Keys are compared by a
/// 128-bit hash: two keys colliding would lose the older one's latest
/// value, which at 2^-128 per pair is not a risk worth more memory.
pub struct OffsetMap {
    /// `[hash high, hash low, offset + 1]`; 0 in the last word is empty.
    slots: Vec<[u64; 3]>,
    entries: usize,
    /// Entries allowed before the map is full.
    limit: usize,
}

impl OffsetMap {
    /// A map within `budget_bytes`, no larger than `expected_keys` need.
    pub fn new(budget_bytes: usize, expected_keys: u64) -> OffsetMap {
        let budget_slots = (budget_bytes / OFFSET_MAP_SLOT_BYTES).max(1);
        // Saturates: a dirty section of more offsets than memory can map.
        let needed_slots =
            ((expected_keys as f64 / OFFSET_MAP_LOAD_FACTOR) as usize).saturating_add(1);
        OffsetMap::with_slots(budget_slots.min(needed_slots))
    }

    fn with_slots(slots: usize) -> OffsetMap {
        let slots = slots.max(1);
        OffsetMap {
            // All-zero slots: the allocation comes zeroed from the system.
            slots: vec![[0; 3]; slots],
            entries: 0,
            limit: ((slots as f64 * OFFSET_MAP_LOAD_FACTOR) as usize).max(1),
        }
    }

    /// Whether `keys` more keys surely fit. An empty map grows to take them:
    /// each pass takes at least one batch, whatever the budget.
    pub fn make_room(&mut self, keys: usize) -> bool {
        if self.entries + keys <= self.limit {
            return true;
        }
        if self.entries > 0 {
            return false;
        }
        *self = OffsetMap::with_slots((keys as f64 / OFFSET_MAP_LOAD_FACTOR) as usize + 1);
        true
    }

    fn hash(key: &[u8]) -> [u64; 2] {
        // SipHash with fixed keys, twice with different prefixes: stable
        // within the process, which is all the map needs.
        let mut high = DefaultHasher::new();
        high.write_u8(0);
        high.write(key);
        let mut low = DefaultHasher::new();
        low.write_u8(1);
        low.write(key);
        [high.finish(), low.finish()]
    }

    fn slot_of(&self, hash: [u64; 2]) -> usize {
        let mut slot = (hash[0] % self.slots.len() as u64) as usize;
        loop {
            let entry = self.slots[slot];
            if entry[2] == 0 || (entry[0] == hash[0] && entry[1] == hash[1]) {
                return slot;
            }
            slot = (slot + 1) % self.slots.len();
        }
    }

    /// Records `offset` as the newest of `key`. The caller has made room.
    pub fn put(&mut self, key: &[u8], offset: i64) {
        debug_assert!(offset >= 0 && self.entries < self.slots.len());
        let hash = OffsetMap::hash(key);
        let slot = self.slot_of(hash);
        if self.slots[slot][2] == 0 {
            self.entries += 1;
        }
        self.slots[slot] = [hash[0], hash[1], offset as u64 + 1];
    }

    /// The newest offset recorded for `key`.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        let entry = self.slots[self.slot_of(OffsetMap::hash(key))];
        (entry[2] != 0).then(|| entry[2] as i64 - 1)
    }
}

/// When the cleaner's turns end and how long it pauses after each: the
/// arithmetic of [`Pacer`], apart from clocks and the shard.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Turns {
    pause: Duration,
}

impl Turns {
    fn new() -> Turns {
        Turns {
            pause: CLEANER_PAUSE,
        }
    }

    /// After a batch, `ran` into the turn: the pause to take now if the
    /// turn is over. `idle_for`: how long ago the shard last started work
    /// (`None`: not watched, or never); `request_waiting`: a socket of the
    /// shard has data. A busy shard (work within `CLEANER_BUSY_WINDOW`)
    /// shortens turns and doubles the pause after each, up to
    /// `CLEANER_BUSY_PAUSE_MAX`; the first turn that finds it idle drops the
    /// pause back to `CLEANER_PAUSE`.
    fn after_batch(
        &mut self,
        ran: Duration,
        idle_for: Option<Duration>,
        request_waiting: bool,
    ) -> Option<Duration> {
        let busy = idle_for.is_some_and(|idle| idle < CLEANER_BUSY_WINDOW);
        let turn = if busy || request_waiting {
            CLEANER_BUSY_SLICE
        } else {
            CLEANER_SLICE
        };
        if ran < turn {
            return None;
        }
        self.pause = if busy {
            (self.pause * 2).clamp(CLEANER_PAUSE, CLEANER_BUSY_PAUSE_MAX)
        } else {
            CLEANER_PAUSE
        };
        Some(self.pause)
    }
}

/// Keeps the cleaner's turns short and backs it off while its shard is busy
/// (see [`Turns`]), holds its IO to `log.cleaner.io.max.bytes.per.second`,
/// and stops it when its log closes.
pub struct Pacer<'a> {
    slice_start: Instant,
    turns: Turns,
    /// `None`: the pass does not back off for load (an urgent one), but
    /// still keeps its turns short.
    load: Option<&'a ShardLoad>,
    stopped: &'a Cell<bool>,
    io_bytes_per_second: f64,
    io_start: Instant,
    io_bytes: f64,
}

impl<'a> Pacer<'a> {
    /// A pacer that fails the pass with `LogError::Closed` once `stopped`.
    pub fn new(
        stopped: &'a Cell<bool>,
        load: Option<&'a ShardLoad>,
        io_bytes_per_second: f64,
    ) -> Pacer<'a> {
        let now = Instant::now();
        Pacer {
            slice_start: now,
            turns: Turns::new(),
            load,
            stopped,
            io_bytes_per_second,
            io_start: now,
            io_bytes: 0.0,
        }
    }

    /// Called after each batch with the bytes it read and wrote: pauses when
    /// the turn is over, sleeps while the IO is ahead of its rate (as
    /// Kafka's throttler does), in naps short enough to notice a close.
    pub async fn pace(&mut self, io_bytes: usize) -> Result<(), LogError> {
        self.io_bytes += io_bytes as f64;
        let now = Instant::now();
        let idle_for = self.load.and_then(|load| load.idle_for(now));
        // Network receives complete on glommio's latency ring, which is
        // what `need_preempt` watches.
        let request_waiting = glommio::executor().need_preempt();
        let ran = now.saturating_duration_since(self.slice_start);
        if let Some(pause) = self.turns.after_batch(ran, idle_for, request_waiting) {
            self.nap(pause).await?;
        }
        loop {
            self.check_stopped()?;
            let due = Duration::try_from_secs_f64(self.io_bytes / self.io_bytes_per_second)
                .unwrap_or(Duration::ZERO);
            let ahead = due.saturating_sub(self.io_start.elapsed());
            if ahead.is_zero() {
                return Ok(());
            }
            self.nap(ahead.min(CLEANER_NAP_MAX)).await?;
        }
    }

    async fn nap(&mut self, duration: Duration) -> Result<(), LogError> {
        glommio::timer::sleep(duration).await;
        self.slice_start = Instant::now();
        self.check_stopped()
    }

    fn check_stopped(&self) -> Result<(), LogError> {
        if self.stopped.get() {
            return Err(LogError::Closed);
        }
        Ok(())
    }
}

/// The batches of one sealed segment from an offset on, read
/// `CLEANER_IO_BYTES` at a time. `read_batches` checks each (CRC included)
/// and fails at a damaged one: it is never rewritten with a fresh CRC.
struct SegmentBatches<'a> {
    segment: &'a Segment,
    next_offset: i64,
    buffered: VecDeque<Bytes>,
    exhausted: bool,
}

impl<'a> SegmentBatches<'a> {
    fn new(segment: &'a Segment, from: i64) -> SegmentBatches<'a> {
        SegmentBatches {
            segment,
            next_offset: from,
            buffered: VecDeque::new(),
            exhausted: false,
        }
    }

    async fn next(&mut self) -> Result<Option<Bytes>, LogError> {
        loop {
            if let Some(batch) = self.buffered.pop_front() {
                return Ok(Some(batch));
            }
            if self.exhausted {
                return Ok(None);
            }
            let mut out = Vec::new();
            let mut budget = ReadBudget::new(CLEANER_IO_BYTES, true);
            let more = self
                .segment
                .read_batches(self.next_offset, i64::MAX, &mut budget, &mut out)
                .await?;
            match out.last().and_then(|b| BatchHeader::view(b)) {
                Some(last) => self.next_offset = last.last_offset() + 1,
                None => self.exhausted = true,
            }
            if !more {
                self.exhausted = true;
            }
            self.buffered.extend(out);
        }
    }
}

/// Fills `map` with the keys of the batches of `segments` from offset
/// `from`, until the map is full or the segments end; `txns` (started at
/// `from`) tells the batches of aborted transactions, left out. Returns
/// `map_end`: one past the last offset mapped, a batch boundary.
pub async fn build_offset_map(
    segments: &[Rc<Segment>],
    from: i64,
    map: &mut OffsetMap,
    txns: &mut TxnCleaning,
    pacer: &mut Pacer<'_>,
) -> Result<i64, LogError> {
    let mut map_end = from;
    for segment in segments {
        if segment.next_offset.get() <= from {
            continue;
        }
        let mut batches = SegmentBatches::new(segment, from.max(segment.base_offset));
        while let Some(batch) = batches.next().await? {
            let Some(header) = BatchHeader::view(&batch) else {
                break;
            };
            let last_offset = header.last_offset();
            if header.is_control() {
                txns.marker(&batch, header);
            } else if !txns.data_batch(header) {
                let decoded = BatchRecords::decode(&batch);
                let records = match &decoded {
                    Ok(decoded) => decoded.records(),
                    Err(e) => Err(e.clone()),
                };
                match records {
                    Ok(records) => {
                        if !map.make_room(records.len()) {
                            return Ok(map_end);
                        }
                        for record in &records {
                            if let Some(key) = record.key {
                                map.put(key, record.offset);
                            }
                        }
                    }
                    // Kept as it is by `clean_group`, its keys unmapped:
                    // older values of them stay too, nothing is lost.
                    Err(e) => ::log::warn!(
                        "{}: cleaner keeps batch at offset {} unread: {e}",
                        segment.log_path().display(),
                        header.base_offset.get()
                    ),
                }
            }
            map_end = last_offset + 1;
            pacer.pace(batch.len()).await?;
        }
    }
    Ok(map_end)
}

/// What the cleaning of one group of segments needs to know.
pub struct CleanRules<'a> {
    pub map: &'a OffsetMap,
    /// Batches from here on are kept as they are.
    pub map_end: i64,
    pub now_ms: i64,
    /// `delete.retention.ms`.
    pub delete_retention_ms: i64,
    /// `index.interval.bytes`, for the new segment's index.
    pub index_interval_bytes: u32,
    /// The producers the log remembers: their last batches stay.
    pub producers: &'a HashMap<i64, LastRecord>,
}

impl CleanRules<'_> {
    /// Kafka's `isBatchLastRecordOfProducer`: the batch that keeps its
    /// producer's state, kept even when emptied.
    fn keeps_producer(&self, header: &BatchHeader) -> bool {
        let producer_id = header.producer_id.get();
        producer_id >= 0
            && self
                .producers
                .get(&producer_id)
                .is_some_and(|last| match last.last_data_offset {
                    Some(offset) => header.last_offset() == offset,
                    None => header.is_control() && header.producer_epoch.get() == last.epoch,
                })
    }
}

/// A group rewritten into `.cleaned` files, fdatasync'd, not yet in use.
pub struct CleanedGroup {
    pub base_offset: i64,
    /// The new `.log`, open (its name changes under it).
    pub file: BufferedFile,
    pub size_bytes: u64,
    pub indexes: SegmentIndexes,
    /// Earliest delete horizon of a tombstone or marker kept, `i64::MAX`
    /// for none.
    pub tombstone_horizon_ms: i64,
    pub records_removed: u64,
    /// The aborted transactions of the markers it kept with data: its
    /// `.txnindex`.
    pub aborted: Vec<AbortedTxn>,
}

/// What a group's filtering adds up.
struct Tally {
    /// Earliest delete horizon of a tombstone or marker kept.
    horizon_ms: i64,
    records_removed: u64,
}

/// What becomes of one batch.
enum Filtered {
    Keep,
    Rebuilt(Vec<u8>),
    Drop,
}

/// Rewrites the batches of `group` (adjacent sealed segments, oldest first)
/// under `rules` into the `.cleaned` files of a segment at the group's base.
/// `txns` follows the transactions from the log start through every group
/// of the pass.
pub async fn clean_group(
    dir: &Path,
    group: &[Rc<Segment>],
    rules: &CleanRules<'_>,
    txns: &mut TxnCleaning,
    pacer: &mut Pacer<'_>,
) -> Result<CleanedGroup, LogError> {
    let base_offset = group.first().map_or(0, |s| s.base_offset);
    let path = segment::with_suffix(segment::log_path(dir, base_offset), CLEANED_SUFFIX);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .buffered_open(&path)
        .await?;
    let mut output = Output {
        base_offset,
        file,
        position: 0,
        buffer: Vec::with_capacity(CLEANER_IO_BYTES),
        indexes: SegmentIndexes::empty(),
        index_interval_bytes: rules.index_interval_bytes,
    };
    let mut tally = Tally {
        horizon_ms: i64::MAX,
        records_removed: 0,
    };
    // One batch behind: the group's last batch stays even if emptied.
    let mut held: Option<(Bytes, Filtered)> = None;
    for segment in group {
        let mut batches = SegmentBatches::new(segment, segment.base_offset);
        while let Some(batch) = batches.next().await? {
            let filtered =
                filter(&batch, rules, txns, &mut tally).map_err(|e| corrupt(&path, e))?;
            let read_bytes = batch.len();
            let written_bytes = match held.replace((batch, filtered)) {
                Some((previous, outcome)) => output.push(&previous, outcome).await?,
                None => 0,
            };
            pacer.pace(read_bytes + written_bytes).await?;
        }
    }
    if let Some((last, outcome)) = held {
        let outcome = match outcome {
            Filtered::Drop => Filtered::Rebuilt(emptied(&last).map_err(|e| corrupt(&path, e))?),
            kept => kept,
        };
        output.push(&last, outcome).await?;
    }
    output.flush().await?;
    output.file.fdatasync().await?;
    let mut indexes = output.indexes;
    indexes.seal(base_offset);
    write_index_files(
        dir,
        base_offset,
        indexes.offsets.encode(),
        indexes.times.encode(),
        CLEANED_SUFFIX,
    )
    .await?;
    Ok(CleanedGroup {
        base_offset,
        file: output.file,
        size_bytes: output.position,
        indexes,
        tombstone_horizon_ms: tally.horizon_ms,
        records_removed: tally.records_removed,
        aborted: txns.take_kept(),
    })
}

fn corrupt(path: &Path, e: impl std::fmt::Display) -> LogError {
    LogError::Corrupt {
        path: path.to_path_buf(),
        position: 0,
        reason: e.to_string(),
    }
}

/// Decides what of `batch` survives `rules` and the transactions `txns`
/// has read; notes in `tally` the delete horizons it keeps and the records
/// it drops.
fn filter(
    batch: &Bytes,
    rules: &CleanRules<'_>,
    txns: &mut TxnCleaning,
    tally: &mut Tally,
) -> Result<Filtered, RecordsError> {
    let Some(header) = BatchHeader::view(batch) else {
        return Ok(Filtered::Keep);
    };
    if header.is_control() {
        let free = txns.marker(batch, header);
        return filter_marker(batch, header, free, rules, tally);
    }
    let filtered = if txns.data_batch(header) {
        tally.records_removed += u64::try_from(header.records_count.get()).unwrap_or(0);
        remove(batch, header, rules)?
    } else {
        filter_records(batch, header, rules, tally)?
    };
    if !matches!(filtered, Filtered::Drop) {
        txns.batch_kept(header);
    }
    Ok(filtered)
}

/// A batch all of whose records go: dropped, or emptied when it keeps its
/// producer's state.
fn remove(
    batch: &Bytes,
    header: &BatchHeader,
    rules: &CleanRules<'_>,
) -> Result<Filtered, RecordsError> {
    if !rules.keeps_producer(header) {
        Ok(Filtered::Drop)
    } else if header.records_count.get() == 0 {
        Ok(Filtered::Keep)
    } else {
        emptied(batch).map(Filtered::Rebuilt)
    }
}

/// A control batch: kept as it is while its transaction has data (`free`
/// false) or it is not a marker; else stamped with a delete horizon by the
/// first pass that finds it free, removed by the first one past that.
fn filter_marker(
    batch: &Bytes,
    header: &BatchHeader,
    free: bool,
    rules: &CleanRules<'_>,
    tally: &mut Tally,
) -> Result<Filtered, RecordsError> {
    if !free {
        return Ok(Filtered::Keep);
    }
    if header.records_count.get() == 0 {
        return remove(batch, header, rules);
    }
    let horizon =
        (header.attributes.get() & ATTR_DELETE_HORIZON != 0).then(|| header.base_timestamp.get());
    match horizon {
        Some(horizon) if rules.now_ms >= horizon => {
            tally.records_removed += u64::try_from(header.records_count.get()).unwrap_or(0);
            remove(batch, header, rules)
        }
        Some(horizon) => {
            tally.horizon_ms = tally.horizon_ms.min(horizon);
            Ok(Filtered::Keep)
        }
        None => {
            let horizon = rules.now_ms.saturating_add(rules.delete_retention_ms);
            tally.horizon_ms = tally.horizon_ms.min(horizon);
            let decoded = BatchRecords::decode(batch)?;
            rebuild(batch, &decoded.records()?, Some(horizon)).map(Filtered::Rebuilt)
        }
    }
}

/// A data batch of no aborted transaction: its records whose key has no
/// later record in the map, and its tombstones until their horizon.
fn filter_records(
    batch: &Bytes,
    header: &BatchHeader,
    rules: &CleanRules<'_>,
    tally: &mut Tally,
) -> Result<Filtered, RecordsError> {
    if header.last_offset() >= rules.map_end {
        return Ok(Filtered::Keep);
    }
    let decoded = match BatchRecords::decode(batch) {
        Ok(decoded) => decoded,
        Err(_) => return Ok(Filtered::Keep),
    };
    let Ok(records) = decoded.records() else {
        return Ok(Filtered::Keep);
    };
    let horizon =
        (header.attributes.get() & ATTR_DELETE_HORIZON != 0).then(|| header.base_timestamp.get());
    let tombstones_expired = horizon.is_some_and(|h| rules.now_ms >= h);
    let kept: Vec<RecordView<'_>> = records
        .iter()
        .filter(|record| {
            let Some(key) = record.key else {
                return false;
            };
            let latest = rules
                .map
                .get(key)
                .is_none_or(|newest| record.offset >= newest);
            latest && !(record.is_tombstone && tombstones_expired)
        })
        .copied()
        .collect();
    tally.records_removed += (records.len() - kept.len()) as u64;
    let keeps_tombstone = kept.iter().any(|r| r.is_tombstone);
    let new_horizon = (keeps_tombstone && horizon.is_none())
        .then(|| rules.now_ms.saturating_add(rules.delete_retention_ms));
    if keeps_tombstone {
        tally.horizon_ms = tally
            .horizon_ms
            .min(horizon.or(new_horizon).unwrap_or(i64::MAX));
    }
    if kept.is_empty() {
        return remove(batch, header, rules);
    }
    if kept.len() == records.len() && new_horizon.is_none() {
        return Ok(Filtered::Keep);
    }
    rebuild(batch, &kept, new_horizon).map(Filtered::Rebuilt)
}

/// The new segment's file as it is written, and its indexes.
struct Output {
    base_offset: i64,
    file: BufferedFile,
    position: u64,
    buffer: Vec<u8>,
    indexes: SegmentIndexes,
    index_interval_bytes: u32,
}

impl Output {
    /// Appends what `outcome` keeps of `original`; returns its size.
    async fn push(&mut self, original: &Bytes, outcome: Filtered) -> Result<usize, LogError> {
        let bytes: &[u8] = match &outcome {
            Filtered::Keep => original,
            Filtered::Rebuilt(bytes) => bytes,
            Filtered::Drop => return Ok(0),
        };
        let Some(header) = BatchHeader::view(bytes) else {
            return Ok(0);
        };
        let position = self.position + self.buffer.len() as u64;
        // The group fits one segment, so positions fit the index's u32.
        debug_assert!(position + bytes.len() as u64 <= SEGMENT_BYTES_MAX);
        self.indexes.record(
            self.base_offset,
            position as u32,
            header.last_offset(),
            header.max_timestamp.get(),
            bytes.len() as u64,
            self.index_interval_bytes,
        );
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CLEANER_IO_BYTES {
            self.flush().await?;
        }
        Ok(bytes.len())
    }

    async fn flush(&mut self) -> Result<(), LogError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let buffer = std::mem::replace(&mut self.buffer, Vec::with_capacity(CLEANER_IO_BYTES));
        let len = buffer.len();
        if self.file.write_at(buffer, self.position).await? != len {
            return Err(LogError::Io(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "short cleaned segment write",
            )));
        }
        self.position += len as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_keeps_the_newest_offset_per_key() {
        let mut map = OffsetMap::new(1 << 20, 100);
        assert!(map.make_room(3));
        map.put(b"a", 1);
        map.put(b"b", 2);
        map.put(b"a", 7);
        assert_eq!(map.get(b"a"), Some(7));
        assert_eq!(map.get(b"b"), Some(2));
        assert_eq!(map.get(b"c"), None);
        assert_eq!(map.get(b""), None);
        map.put(b"", 0);
        assert_eq!(map.get(b""), Some(0));
        assert_eq!(map.entries, 3);
    }

    #[test]
    fn the_map_is_full_at_its_budget_but_takes_a_first_batch() {
        // Ten slots: nine entries at the load factor.
        let mut map = OffsetMap::new(10 * OFFSET_MAP_SLOT_BYTES, u64::MAX);
        assert!(map.make_room(9));
        for i in 0..9u8 {
            map.put(&[i], i64::from(i));
        }
        assert!(!map.make_room(1));
        assert!(map.make_room(0));
        // An empty map grows for one batch larger than its budget.
        let mut map = OffsetMap::new(10 * OFFSET_MAP_SLOT_BYTES, u64::MAX);
        assert!(map.make_room(1000));
        for i in 0..1000u32 {
            map.put(&i.to_be_bytes(), i64::from(i));
        }
        assert_eq!(map.get(&999u32.to_be_bytes()), Some(999));
        assert!(!map.make_room(1000));
    }

    #[test]
    fn turns_shorten_and_pauses_grow_while_the_shard_is_busy() {
        let us = Duration::from_micros;
        let busy = Some(us(100));
        let idle = Some(CLEANER_BUSY_WINDOW);
        let mut turns = Turns::new();
        // Idle (or not watched): full turns, shortest pauses.
        assert_eq!(turns.after_batch(us(199), idle, false), None);
        assert_eq!(
            turns.after_batch(CLEANER_SLICE, idle, false),
            Some(CLEANER_PAUSE)
        );
        assert_eq!(
            turns.after_batch(CLEANER_SLICE, None, false),
            Some(CLEANER_PAUSE)
        );
        // A request waiting ends the turn early, without a longer pause.
        assert_eq!(turns.after_batch(us(49), None, true), None);
        assert_eq!(
            turns.after_batch(CLEANER_BUSY_SLICE, None, true),
            Some(CLEANER_PAUSE)
        );
        // Busy: short turns, and the pause doubles up to its cap and stays...
        assert_eq!(turns.after_batch(us(49), busy, false), None);
        let pauses: Vec<Duration> = (0..8)
            .filter_map(|_| turns.after_batch(CLEANER_BUSY_SLICE, busy, false))
            .collect();
        assert_eq!(
            pauses,
            [100, 200, 400, 800, 1600, 2000, 2000, 2000]
                .map(us)
                .to_vec()
        );
        // ...so a shard that never idles still leaves the cleaner its floor.
        let floor = CLEANER_BUSY_SLICE.as_secs_f64()
            / (CLEANER_BUSY_SLICE + CLEANER_BUSY_PAUSE_MAX).as_secs_f64();
        assert!(floor > 0.02, "{floor}");
        // The first idle turn drops the pause back.
        assert_eq!(
            turns.after_batch(CLEANER_SLICE, idle, false),
            Some(CLEANER_PAUSE)
        );
        assert_eq!(
            turns.after_batch(CLEANER_BUSY_SLICE, busy, false),
            Some(us(100))
        );
    }

    #[test]
    fn a_small_log_gets_a_small_map() {
        let map = OffsetMap::new(64 << 20, 100);
        assert!(map.slots.len() < 200);
    }
}
