//! A follower's append: its leader's batches, kept exactly as the leader
//! wrote them (offsets, leader epochs, timestamps: no header is patched),
//! through the same indexes, tail cache and group-commit writer as a
//! client's append.
//!
//! Invariant: each batch starts at the log end or past it (a compacted
//! leader's batches leave offset gaps, taken as they are: Kafka's follower
//! appends them so), never below it or overlapping the one before
//! (`LogError::NotAtLogEnd`); the first gap makes the log one that may
//! have gaps (`allow_offset_gaps`, on disk before the batch); each passes the stored-batch checks (framing, magic, CRC-32C,
//! record count), and carries a leader epoch no lower than the batch
//! before it (`LogError::EpochBackward`); every new epoch is in the epoch
//! cache at its batch's base offset before the batch is queued. A refused
//! append changes nothing: every batch is checked before any is queued.
//! The producer state takes the batches as recovery's replay does, so a
//! follower that becomes leader knows its producers (issue 15, item 7).

use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use super::super::pinned::Backing;
use super::super::producer_state::ProducerAppend;
use super::super::{LogError, SEGMENT_BYTES_MAX};
use super::append::{owned_parts, Framed};
use super::PartitionLog;
use crate::protocol::batch::{framed_size, validate_stored, BatchError, BatchHeader};

impl PartitionLog {
    /// Appends `records`, a fetch response's records for this partition
    /// from its leader, verbatim, and returns the new log end once it is
    /// durable (below `durable_end`), so that the next fetch offset a
    /// follower sends is always durable. A partial batch at the end (which
    /// Fetch may return) is left out, not an error. `backing` is what
    /// `records` lie in, charged as a produce request's frame is.
    pub async fn append_replicated(
        self: &Rc<Self>,
        records: Bytes,
        backing: Backing,
    ) -> Result<i64, LogError> {
        self.check_open()?;
        let whole = whole_batches_len(&records).map_err(LogError::InvalidBatch)?;
        let batches = records.slice(..whole);
        if batches.is_empty() {
            let log_end = self.log_end_offset();
            self.wait_until(|log| log.durable_end() >= log_end).await?;
            return Ok(log_end);
        }
        let (_, _, gaps) = self.check_replicated(&batches, self.log_end_offset())?;
        if gaps {
            self.allow_offset_gaps().await?;
        }
        self.wait_for_room(batches.len()).await?;
        // No `.await` from here to the queue: the log end checked is the
        // one the batches get.
        let (next_offset, given_up) = self.enqueue_replicated(batches, backing)?;
        self.start_writer();
        self.wait_for_append(&given_up, |log| log.durable_end() >= next_offset)
            .await?;
        Ok(next_offset)
    }

    /// The synchronous half: checks every batch, records the new epochs,
    /// queues the batches, takes them into the producer state.
    fn enqueue_replicated(
        &self,
        batches: Bytes,
        backing: Backing,
    ) -> Result<(i64, Rc<std::cell::Cell<bool>>), LogError> {
        self.check_open()?;
        let base_offset = self.offsets.log_end();
        let (mut framed, new_epochs, gaps) = self.check_replicated(&batches, base_offset)?;
        assert!(
            !gaps || self.cleaning.offset_gaps.get(),
            "offset gaps are allowed before a batch leaves one"
        );
        let next_offset = framed.last().map_or(base_offset, |f| f.last_offset + 1);
        // Entries at the log end describe no batch (a past leadership of
        // this replica): the leader's batches say what is there.
        self.epochs
            .change(|cache| cache.truncate_from_end(base_offset));
        for (epoch, start) in new_epochs {
            self.epochs.change(|cache| cache.assign(epoch, start));
        }
        owned_parts(&mut framed, &backing);
        let owned_len = framed.iter().map(|f| f.owned_len).sum();
        let mut owned = BytesMut::with_capacity(owned_len);
        for framed in &framed {
            owned.extend_from_slice(&batches[framed.start..framed.start + framed.owned_len]);
        }
        let starts: Vec<(usize, usize)> = framed.iter().map(|f| (f.start, f.size)).collect();
        let (_, given_up) = self.queue(
            (batches.clone(), backing),
            framed,
            owned.freeze(),
            base_offset,
            next_offset,
        );
        for (start, size) in starts {
            let batch = &batches[start..start + size];
            let append = BatchHeader::view(batch)
                .and_then(|h| ProducerAppend::of(batch, h.base_offset.get()));
            let completed = append.and_then(|a| self.producers_replay(&a));
            if let Some(completed) = completed {
                self.index_aborted(&[completed]);
            }
        }
        Ok((next_offset, given_up))
    }

    /// Checks `batches` as a follower takes them at `base_offset`: the
    /// batches framed, the (epoch, start offset) of each epoch they begin,
    /// and whether any leaves an offset gap. Changes nothing.
    fn check_replicated(
        &self,
        batches: &[u8],
        base_offset: i64,
    ) -> Result<(Vec<Framed>, NewEpochs, bool), LogError> {
        let mut expected = base_offset;
        let mut previous_epoch = match base_offset > self.log_start_offset() {
            true => self.epochs.cache.borrow().epoch_at(base_offset - 1),
            false => None,
        };
        let mut framed = Vec::new();
        let mut new_epochs = Vec::new();
        let mut gaps = false;
        let mut cursor = 0;
        while cursor < batches.len() {
            let batch = &batches[cursor..];
            let size = validate_stored(batch, SEGMENT_BYTES_MAX as usize)
                .map_err(LogError::InvalidBatch)?;
            let header =
                BatchHeader::view(batch).ok_or(LogError::InvalidBatch(BatchError::Truncated))?;
            let batch_base = header.base_offset.get();
            if batch_base < expected {
                return Err(LogError::NotAtLogEnd {
                    log_end_offset: self.log_end_offset(),
                    base_offset: batch_base,
                });
            }
            gaps |= batch_base > expected;
            let epoch = header.partition_leader_epoch.get();
            if epoch >= 0 {
                if let Some(previous) = previous_epoch.filter(|&previous| epoch < previous) {
                    return Err(LogError::EpochBackward {
                        base_offset: batch_base,
                        previous_epoch: previous,
                        epoch,
                    });
                }
                if previous_epoch != Some(epoch) {
                    new_epochs.push((epoch, batch_base));
                    previous_epoch = Some(epoch);
                }
            }
            let last_offset = header.last_offset();
            if last_offset - base_offset > i64::from(u32::MAX) {
                return Err(LogError::InvalidBatch(BatchError::InvalidRecordCount));
            }
            framed.push(Framed {
                start: cursor,
                size,
                owned_len: size,
                last_offset,
                max_timestamp: header.max_timestamp.get(),
            });
            expected = last_offset + 1;
            cursor += size;
        }
        Ok((framed, new_epochs, gaps))
    }
}

/// (epoch, start offset) of each epoch a follower's batches begin.
type NewEpochs = Vec<(i32, i64)>;

/// Bytes of the complete batches at the start of `records`: a batch cut
/// short at the end is left out; a malformed length is an error.
fn whole_batches_len(records: &[u8]) -> Result<usize, BatchError> {
    let mut cursor = 0;
    while cursor < records.len() {
        match framed_size(&records[cursor..]) {
            Ok(size) => cursor += size,
            Err(BatchError::Truncated) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(cursor)
}
