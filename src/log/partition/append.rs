//! The append path: `append` assigns offsets and patches the batch headers
//! in copies of its own (the caller's bytes are never written to: they are
//! slices of a request), accounts the batches in the active segment's indexes and the
//! tail cache, rolls the segment when it is full or old, and queues the
//! bytes for the writer, all without an `.await`, so offsets are given in
//! call order and the log end offset moves at once. It then waits as long
//! as `AppendWait` asks.
//!
//! Invariant: each append starts at the log end offset and moves it to one
//! past its last offset; every batch queued is well framed with consecutive
//! offsets and sits at the segment position where the previous one ended.

use std::cell::Cell;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use super::super::pinned::Backing;
use super::super::producer_state::{Admission, AppendOrigin, TxnVerification};
use super::super::segment::{Segment, NO_TIMESTAMP};
use super::super::{AppendResult, AppendWait, LogError, SEGMENT_BYTES_MAX};
use super::tail::CachedBatch;
use super::writer::Pending;
use super::PartitionLog;
use crate::clock::now_ms;
use crate::protocol::batch::{
    framed_size, set_base_offset, set_log_append_time, set_partition_leader_epoch, BatchError,
    BatchHeader, ATTR_TIMESTAMP_TYPE_LOG_APPEND, BATCH_HEADER_SIZE,
};

/// Batches from this size on may be kept as a slice of the request's
/// records (only their header is copied, to be patched), when what they
/// lie in may be kept (`Backing`); smaller ones are copied whole: copying
/// 4 KiB costs about 0.2 us (benches/log.rs `request_append`), far less
/// than writing it.
pub(super) const SLICE_BATCH_BYTES_MIN: usize = 4096;

/// Where the CRC's coverage starts: the attributes (see `protocol::batch`).
const CRC_START: usize = 21;

impl PartitionLog {
    /// Appends `batches` (complete RecordBatch v2, back to back, validated by
    /// the caller): assigns offsets from the log end offset, patches
    /// `baseOffset` and `partitionLeaderEpoch` in a copy of each header (the
    /// CRC does not cover them), applies LogAppendTime when `log_append_time_ms` is set,
    /// rolls the segment when needed, queues the bytes for the writer and
    /// returns when they are as durable as `wait` asks. `batches` are taken
    /// to lie in a buffer of exactly their size (`Backing::Own`: the log's
    /// callers'); a request's go through `append_verified`.
    pub async fn append(
        self: &Rc<Self>,
        batches: impl Into<Bytes>,
        wait: AppendWait,
        log_append_time_ms: Option<i64>,
    ) -> Result<AppendResult, LogError> {
        self.append_verified(
            TxnVerification::Off,
            batches,
            Backing::Own,
            wait,
            log_append_time_ms,
        )
        .await
    }

    /// `append` of a client's batches under KIP-890's `verification`;
    /// `backing` is what `batches` lie in (a request frame, `Backing::Frame`).
    pub async fn append_verified(
        self: &Rc<Self>,
        verification: TxnVerification,
        batches: impl Into<Bytes>,
        backing: Backing,
        wait: AppendWait,
        log_append_time_ms: Option<i64>,
    ) -> Result<AppendResult, LogError> {
        self.append_checked(
            AppendOrigin::Client,
            verification,
            (batches.into(), backing),
            wait,
            log_append_time_ms,
        )
        .await
    }

    /// `append` of batches from `origin`: a coordinator's pass only the
    /// producer epoch check (`AppendOrigin`).
    pub async fn append_from(
        self: &Rc<Self>,
        origin: AppendOrigin,
        batches: impl Into<Bytes>,
        wait: AppendWait,
        log_append_time_ms: Option<i64>,
    ) -> Result<AppendResult, LogError> {
        self.append_checked(
            origin,
            TxnVerification::Off,
            (batches.into(), Backing::Own),
            wait,
            log_append_time_ms,
        )
        .await
    }

    /// What `append`, `append_verified` and `append_from` share.
    async fn append_checked(
        self: &Rc<Self>,
        origin: AppendOrigin,
        verification: TxnVerification,
        (batches, backing): (Bytes, Backing),
        wait: AppendWait,
        log_append_time_ms: Option<i64>,
    ) -> Result<AppendResult, LogError> {
        self.wait_for_room(batches.len()).await?;
        // No `.await` from the admission to the queue: nothing overtakes,
        // and the producer checks see the log end the batches will get.
        let producers = match self.admit_producers(&batches, origin, verification)? {
            Admission::Append(updated) => updated,
            Admission::Duplicate(batch) => return self.answer_duplicate(batch, wait).await,
        };
        let (result, given_up) = self.enqueue(batches, backing, log_append_time_ms)?;
        let completed = self.commit_producers(producers);
        self.index_aborted(&completed);
        self.start_writer();
        let last_offset = result.last_offset;
        match wait {
            AppendWait::Nothing => {}
            AppendWait::Written => {
                self.wait_for_append(&given_up, |log| log.offsets.written() > last_offset)
                    .await?
            }
            AppendWait::Local => {
                self.wait_for_append(&given_up, |log| log.durable_end() > last_offset)
                    .await?
            }
            AppendWait::Durable => {
                self.wait_for_commit(|_| given_up.get(), last_offset)
                    .await?
            }
        }
        Ok(result)
    }

    /// Waits until `len` more bytes may be queued for the writer, in the
    /// order appends asked (`admission`); at once when there is room and
    /// nobody waits.
    pub(super) async fn wait_for_room(&self, len: usize) -> Result<(), LogError> {
        if self.writer.admission.admits_now(len) {
            return Ok(());
        }
        let turn = Turn {
            log: self,
            ticket: self.writer.admission.take_ticket(),
        };
        self.wait_until(|log| log.writer.admission.turn_of(turn.ticket, len))
            .await
    }

    /// `wait_until` for one append: fails once the writer has given its
    /// bytes up, even when later appends have since reused its offsets.
    pub(super) async fn wait_for_append(
        &self,
        given_up: &Cell<bool>,
        done: impl Fn(&Self) -> bool,
    ) -> Result<(), LogError> {
        self.wait_until(|log| given_up.get() || done(log)).await?;
        if given_up.get() {
            return Err(LogError::WriteFailed(
                self.writer.last_write_error.borrow().clone(),
            ));
        }
        Ok(())
    }

    /// The synchronous half of `append`: offsets, indexes, cache, queue.
    /// Also returns the flag the writer raises if it gives the bytes up.
    /// The request's bytes are not written to: each batch's header (where
    /// every patched field lies) is copied to a buffer of the log's own
    /// and patched there, with the whole batch when it is small
    /// (`SLICE_BATCH_BYTES_MIN`) or when what it lies in may not be kept
    /// (`backing`'s frame finds no room in its shard's budget); a larger one's
    /// body stays a slice.
    fn enqueue(
        &self,
        batches: Bytes,
        backing: Backing,
        log_append_time_ms: Option<i64>,
    ) -> Result<(AppendResult, Rc<Cell<bool>>), LogError> {
        self.check_open()?;
        if batches.is_empty() {
            return Err(LogError::InvalidBatch(BatchError::Truncated));
        }
        if batches.len() as u64 > SEGMENT_BYTES_MAX {
            return Err(LogError::InvalidBatch(BatchError::TooLarge));
        }
        let base_offset = self.offsets.log_end();
        let mut framed: Vec<Framed> = Vec::new();
        let mut cursor = 0;
        while cursor < batches.len() {
            let size = framed_size(&batches[cursor..]).map_err(LogError::InvalidBatch)?;
            framed.push(Framed {
                start: cursor,
                size,
                owned_len: size,
                last_offset: 0,
                max_timestamp: NO_TIMESTAMP,
            });
            cursor += size;
        }
        let epoch = self.epoch_for_append(base_offset)?;
        owned_parts(&mut framed, &backing);
        let owned_len = framed.iter().map(|f| f.owned_len).sum();
        let mut owned = BytesMut::with_capacity(owned_len);
        let mut next_offset = base_offset;
        for framed in &mut framed {
            let batch = &batches[framed.start..framed.start + framed.size];
            let at = owned.len();
            owned.extend_from_slice(&batch[..framed.owned_len]);
            let (head, body) = (&mut owned[at..], &batch[framed.owned_len..]);
            let delta = BatchHeader::view(head)
                .map(|h| h.last_offset_delta.get())
                .ok_or(LogError::InvalidBatch(BatchError::Truncated))?;
            if delta < 0 {
                return Err(LogError::InvalidBatch(BatchError::InvalidRecordCount));
            }
            set_base_offset(head, next_offset);
            set_partition_leader_epoch(head, epoch);
            if let Some(now) = log_append_time_ms {
                if body.is_empty() {
                    set_log_append_time(head, now);
                } else {
                    set_log_append_time_split(head, body, now);
                }
            }
            framed.max_timestamp =
                BatchHeader::view(head).map_or(NO_TIMESTAMP, |h| h.max_timestamp.get());
            next_offset += i64::from(delta) + 1;
            framed.last_offset = next_offset - 1;
        }
        if next_offset - 1 - base_offset > i64::from(u32::MAX) {
            return Err(LogError::InvalidBatch(BatchError::InvalidRecordCount));
        }
        Ok(self.queue(
            (batches, backing),
            framed,
            owned.freeze(),
            base_offset,
            next_offset,
        ))
    }

    /// What `enqueue` and a follower's `enqueue_replicated` share, once the
    /// batches (offsets `base_offset..next_offset`) are framed and `owned`
    /// holds what the log copied of them: the segment (rolled if need be),
    /// its indexes, the tail cache, the writer's queue and the log end.
    pub(super) fn queue(
        &self,
        (batches, backing): (Bytes, Backing),
        framed: Vec<Framed>,
        owned: Bytes,
        base_offset: i64,
        next_offset: i64,
    ) -> (AppendResult, Rc<Cell<bool>>) {
        let last_offset = next_offset - 1;
        let batches_len = batches.len() as u64;
        let segment = self.segment_for(base_offset, last_offset, batches_len);
        let start_position = segment.queued_bytes.get();
        // `segment_for` rolled unless these bytes fit: positions stay u32.
        assert!(start_position + batches_len <= SEGMENT_BYTES_MAX);
        // The active segment ends at the log end offset.
        assert_eq!(segment.next_offset.get(), base_offset);
        let mut position = start_position;
        let mut owned_at = 0;
        // Usually empty: only batches of `SLICE_BATCH_BYTES_MIN` or more.
        let mut bodies = Vec::new();
        let index_interval_bytes = self.config.borrow().index_interval_bytes;
        let indexes_before = segment.indexes.borrow().mark();
        {
            let mut indexes = segment.indexes.borrow_mut();
            let mut tail = self.tail.borrow_mut();
            let newest = framed.len() - 1;
            for (index, framed) in framed.into_iter().enumerate() {
                indexes.record(
                    segment.base_offset,
                    position as u32,
                    framed.last_offset,
                    framed.max_timestamp,
                    framed.size as u64,
                    index_interval_bytes,
                );
                let head = owned.slice(owned_at..owned_at + framed.owned_len);
                owned_at += head.len();
                let body = if head.len() < framed.size {
                    let body = batches.slice(framed.start + head.len()..framed.start + framed.size);
                    bodies.push((owned_at, body.clone()));
                    body
                } else {
                    Bytes::new()
                };
                let frame = match &backing {
                    Backing::Frame(frame) if !body.is_empty() => Some(frame.clone()),
                    _ => None,
                };
                tail.push(CachedBatch {
                    last_offset: framed.last_offset,
                    head,
                    body,
                    pinned_bytes: if index == newest {
                        tail_charge(&owned, &bodies, &backing, batches.len())
                    } else {
                        0
                    },
                    _frame: frame,
                });
                position += framed.size as u64;
            }
        }
        segment.queued_bytes.set(position);
        segment.next_offset.set(next_offset);
        let given_up = Rc::new(Cell::new(false));
        let frame = match backing {
            Backing::Frame(frame) if !bodies.is_empty() => Some(frame),
            _ => None,
        };
        self.writer.admission.queued(batches.len());
        self.writer.pending.borrow_mut().push_back(Pending::Write {
            segment,
            position: start_position,
            len: batches.len(),
            owned,
            bodies,
            base_offset,
            next_offset,
            indexes_before,
            given_up: given_up.clone(),
            _frame: frame,
        });
        self.offsets.appended(base_offset, next_offset);
        let result = AppendResult {
            base_offset,
            last_offset,
            log_start_offset: self.offsets.log_start(),
        };
        (result, given_up)
    }

    /// The segment the next `len` bytes (offsets up to `last_offset`) go to,
    /// rolling to a new one at `base_offset` when the active one is full,
    /// too old, or would overflow its u32 relative offsets.
    fn segment_for(&self, base_offset: i64, last_offset: i64, len: u64) -> Rc<Segment> {
        let active = self.active();
        let now = now_ms();
        let (segment_bytes, segment_ms) = {
            let config = self.config.borrow();
            (config.segment_bytes, config.segment_ms)
        };
        let roll = active.queued_bytes.get() > 0
            && (active.queued_bytes.get() + len > segment_bytes
                || now.saturating_sub(active.created_ms) >= segment_ms
                || last_offset - active.base_offset > i64::from(u32::MAX));
        if !roll {
            return active;
        }
        self.snapshot_producers_at(base_offset);
        let segment = Rc::new(Segment::new(&self.dir, base_offset, now));
        segment.prefer_write_through(self.writes_through());
        segment.offset_gaps.set(self.cleaning.offset_gaps.get());
        self.segments.borrow_mut().push(segment.clone());
        self.writer
            .pending
            .borrow_mut()
            .push_back(Pending::Seal(active));
        segment
    }
}

/// One batch of an append, as `queue` takes it.
pub(super) struct Framed {
    /// Where it lies in the appended bytes, and its size.
    pub(super) start: usize,
    pub(super) size: usize,
    /// How much of it the log copies: all of it, or its header only (the
    /// body stays a slice, see `owned_parts`).
    pub(super) owned_len: usize,
    /// Its last offset and largest timestamp as queued.
    pub(super) last_offset: i64,
    pub(super) max_timestamp: i64,
}

/// Sets how much of each batch the log copies: the header only of a batch
/// of `SLICE_BATCH_BYTES_MIN` or more when what it lies in may be kept (a
/// frame is charged to its shard's budget only then), else all of it.
pub(super) fn owned_parts(framed: &mut [Framed], backing: &Backing) {
    let slicing = framed.iter().any(|f| f.size >= SLICE_BATCH_BYTES_MIN)
        && match backing {
            Backing::Own => true,
            Backing::Frame(frame) => frame.charge(),
        };
    for framed in framed {
        framed.owned_len = match slicing && framed.size >= SLICE_BATCH_BYTES_MIN {
            true => BATCH_HEADER_SIZE,
            false => framed.size,
        };
    }
}

/// A place in the line of appends waiting for room. Dropped when the
/// append is admitted or stops waiting (its log failed or closed, or its
/// request went away): it leaves the line, and the next one is woken.
struct Turn<'a> {
    log: &'a PartitionLog,
    ticket: u64,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.log.writer.admission.leave(self.ticket);
        self.log.marks.progress.notify();
    }
}

/// What a partition's tail charges for one append (on its newest batch):
/// the buffer the log copied to (allocated to its size, `with_capacity`),
/// plus, when bodies are slices, the caller's whole buffer of
/// `batches_len` (`Backing::Own`) or only the bodies themselves (`Backing::Frame`:
/// the frame is charged once to its shard's budget, and each tail holding
/// slices of it counts its share).
fn tail_charge(
    owned: &Bytes,
    bodies: &[(usize, Bytes)],
    backing: &Backing,
    batches_len: usize,
) -> usize {
    let sliced_bytes = match backing {
        _ if bodies.is_empty() => 0,
        Backing::Own => batches_len,
        Backing::Frame(_) => bodies.iter().map(|(_, body)| body.len()).sum(),
    };
    owned.len() + sliced_bytes
}

/// `set_log_append_time` on a batch held as its header and its body: the
/// CRC goes on over the body where it reads, without joining the two.
fn set_log_append_time_split(head: &mut [u8], body: &[u8], now_ms: i64) {
    let attributes = i16::from_be_bytes([head[21], head[22]]) | ATTR_TIMESTAMP_TYPE_LOG_APPEND;
    head[21..23].copy_from_slice(&attributes.to_be_bytes());
    head[35..43].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&head[CRC_START..]), body);
    head[17..21].copy_from_slice(&crc.to_be_bytes());
}
