//! The idempotent producers of one partition, as Kafka's
//! `ProducerStateManager` keeps them: per producer id its epoch and its last
//! `BATCHES_TO_RETAIN` batches (first and last sequence, first and last
//! offset, max timestamp), and the checks an append passes against them.
//!
//! Kafka's rules, in its order: a batch that repeats one of the last five of
//! its producer (same epoch, same first and last sequence) is a duplicate,
//! answered with the offsets it got the first time and not appended again;
//! an epoch older than the producer's is INVALID_PRODUCER_EPOCH; a newer
//! epoch must start at sequence 0 (the KIP-360 bump an idempotent client
//! makes by itself); within an epoch each batch starts one past the last
//! sequence (wrapping from `i32::MAX` to 0), else
//! OUT_OF_ORDER_SEQUENCE_NUMBER. A producer the partition does not know
//! (new, expired, or whose batches were given up) may start at any
//! sequence, as Kafka accepts since KIP-360 instead of answering
//! UNKNOWN_PRODUCER_ID.
//!
//! Snapshot format (`<offset>.snapshot`: the state of the producers after
//! every batch below `offset`), all integers big-endian:
//!
//! ```text
//! magic "shoal-producers-1" (17 bytes) | crc32c u32 of what follows |
//! count u32 | count × (producer_id i64, epoch i16, last_timestamp i64,
//!   batches u8, batches × (first_seq i32, last_seq i32,
//!   first_offset i64, last_offset i64, max_timestamp i64))
//! ```
//!
//! Unlike Kafka's snapshot (the last batch of each producer) it keeps all
//! five, so a retry of any in-flight batch is still known as a duplicate
//! after a restart.
//!
//! Invariant: pure (no IO, no clock: time comes in as arguments); an entry
//! holds 1 to `BATCHES_TO_RETAIN` batches of one epoch, oldest first, with
//! growing offsets; `admit` changes nothing, `commit` applies what it
//! admitted.

use std::collections::{HashMap, VecDeque};

use crate::protocol::batch::BatchHeader;

/// Batches remembered per producer: Kafka's `NUM_BATCHES_TO_RETAIN`, the
/// most requests an idempotent client keeps in flight per connection
/// (`max.in.flight.requests.per.connection` <= 5), so that any of them may
/// be retried and recognised.
pub const BATCHES_TO_RETAIN: usize = 5;

const SNAPSHOT_MAGIC: &[u8] = b"shoal-producers-1";
const ENTRY_BYTES: usize = 8 + 2 + 8 + 1;
const BATCH_BYTES: usize = 4 + 4 + 8 + 8 + 8;

/// One batch as the producer state sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub meta: BatchMetadata,
}

impl ProducerBatch {
    /// The batch whose header is `header`, at `first_offset`; `None` for a
    /// batch without a producer id (not idempotent) or a control batch
    /// (transaction markers are the transaction coordinator's).
    pub fn of(header: &BatchHeader, first_offset: i64) -> Option<ProducerBatch> {
        let producer_id = header.producer_id.get();
        if producer_id < 0 || header.is_control() {
            return None;
        }
        let delta = header.last_offset_delta.get();
        let first_seq = header.base_sequence.get();
        Some(ProducerBatch {
            producer_id,
            epoch: header.producer_epoch.get(),
            meta: BatchMetadata {
                first_seq,
                last_seq: increment_sequence(first_seq, delta),
                first_offset,
                last_offset: first_offset + i64::from(delta),
                max_timestamp: header.max_timestamp.get(),
            },
        })
    }
}

/// `sequence + increment`, wrapping past `i32::MAX` to 0 as Kafka's
/// sequences do.
fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    i64::from(next_seq) == i64::from(last_seq) + 1 || (next_seq == 0 && last_seq == i32::MAX)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first; 1 to `BATCHES_TO_RETAIN` of them.
    pub batches: VecDeque<BatchMetadata>,
    /// The max timestamp of its last batch, which expiration goes by (as Kafka's).
    pub last_timestamp: i64,
}

impl ProducerEntry {
    fn new(epoch: i16) -> ProducerEntry {
        ProducerEntry {
            epoch,
            batches: VecDeque::with_capacity(BATCHES_TO_RETAIN),
            last_timestamp: i64::MIN,
        }
    }

    fn add(&mut self, epoch: i16, meta: BatchMetadata) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
        if self.batches.len() == BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.batches.push_back(meta);
        self.last_timestamp = meta.max_timestamp;
    }

    fn duplicate_of(&self, batch: &ProducerBatch) -> Option<BatchMetadata> {
        (batch.epoch == self.epoch)
            .then(|| {
                self.batches.iter().copied().find(|meta| {
                    meta.first_seq == batch.meta.first_seq && meta.last_seq == batch.meta.last_seq
                })
            })
            .flatten()
    }

    /// Kafka's epoch and sequence checks of a batch appended after this
    /// entry; only the epoch's for a coordinator's batch.
    fn check(
        &self,
        batch: &ProducerBatch,
        partition: &str,
        origin: AppendOrigin,
    ) -> Result<(), ProducerError> {
        let id = batch.producer_id;
        let first_seq = batch.meta.first_seq;
        if batch.epoch < self.epoch {
            return Err(ProducerError::InvalidProducerEpoch(format!(
                "Epoch of producer {id} in {partition} is {}, which is smaller than the last seen epoch {}",
                batch.epoch, self.epoch
            )));
        }
        if origin == AppendOrigin::Coordinator {
            return Ok(());
        }
        if batch.epoch != self.epoch {
            if first_seq != 0 {
                return Err(ProducerError::OutOfOrderSequence(format!(
                    "Invalid sequence number for new epoch of producer {id} in partition {partition}: {} (request epoch), {first_seq} (seq. number), {} (current producer epoch)",
                    batch.epoch, self.epoch
                )));
            }
            return Ok(());
        }
        match self.batches.back() {
            Some(last) if !in_sequence(last.last_seq, first_seq) => {
                Err(ProducerError::OutOfOrderSequence(format!(
                    "Out of order sequence number for producer {id} in partition {partition}: {first_seq} (incoming seq. number), {} (current end sequence number)",
                    last.last_seq
                )))
            }
            _ => Ok(()),
        }
    }
}

/// Why an append was refused. Kafka's error codes at the protocol edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProducerError {
    /// INVALID_PRODUCER_EPOCH.
    InvalidProducerEpoch(String),
    /// OUT_OF_ORDER_SEQUENCE_NUMBER.
    OutOfOrderSequence(String),
}

/// Who appends, as Kafka's `AppendOrigin` says: a client's batches pass
/// every check; a coordinator of this broker writing its internal topic
/// (the group coordinator's batches of a transaction's offsets, base
/// sequence 0 each time) only the epoch check, as in Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOrigin {
    Client,
    Coordinator,
}

/// What `admit` decided for an append.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Append it, then `commit` these entries.
    Append(Vec<(i64, ProducerEntry)>),
    /// A retry of a batch already in the log: answer with its offsets.
    Duplicate(BatchMetadata),
}

/// The producers of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateTable {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    #[cfg(test)]
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Checks the batches of one append, in order, as Kafka does: any batch
    /// that repeats one already appended makes the whole append that
    /// duplicate; otherwise each batch must follow its producer's last one
    /// (or the one before it in this append). Changes nothing.
    pub fn admit(
        &self,
        batches: &[ProducerBatch],
        partition: &str,
        origin: AppendOrigin,
    ) -> Result<Admission, ProducerError> {
        let mut updated: Vec<(i64, ProducerEntry)> = Vec::new();
        for batch in batches {
            let current = self.producers.get(&batch.producer_id);
            let client = origin == AppendOrigin::Client;
            if let Some(duplicate) = current
                .filter(|_| client)
                .and_then(|entry| entry.duplicate_of(batch))
            {
                return Ok(Admission::Duplicate(duplicate));
            }
            let index = match updated.iter().position(|(id, _)| *id == batch.producer_id) {
                Some(index) => index,
                None => match current {
                    Some(entry) => {
                        updated.push((batch.producer_id, entry.clone()));
                        updated.len() - 1
                    }
                    None => {
                        // Unknown: any epoch and sequence start it.
                        updated.push((batch.producer_id, ProducerEntry::new(batch.epoch)));
                        let entry = &mut updated.last_mut().expect("just pushed").1;
                        entry.add(batch.epoch, batch.meta);
                        continue;
                    }
                },
            };
            let entry = &mut updated[index].1;
            entry.check(batch, partition, origin)?;
            entry.add(batch.epoch, batch.meta);
        }
        Ok(Admission::Append(updated))
    }

    /// Applies what `admit` returned, once the append has its offsets.
    pub fn commit(&mut self, updated: Vec<(i64, ProducerEntry)>) {
        for (producer_id, entry) in updated {
            debug_assert!(!entry.batches.is_empty());
            self.producers.insert(producer_id, entry);
        }
    }

    /// A batch read back from the log (recovery): applied without checks,
    /// as Kafka rebuilds its state.
    pub fn replay(&mut self, batch: &ProducerBatch) {
        let entry = self
            .producers
            .entry(batch.producer_id)
            .or_insert_with(|| ProducerEntry::new(batch.epoch));
        if entry
            .batches
            .back()
            .is_some_and(|last| last.last_offset >= batch.meta.first_offset)
        {
            return;
        }
        entry.add(batch.epoch, batch.meta);
    }

    /// Forgets every batch at or after `offset` (appends given up after a
    /// failed write). A producer left with none is forgotten: its retry may
    /// then start at any sequence, as for an unknown producer.
    pub fn truncate_from(&mut self, offset: i64) {
        self.producers.retain(|_, entry| {
            while entry
                .batches
                .back()
                .is_some_and(|b| b.last_offset >= offset)
            {
                entry.batches.pop_back();
            }
            if let Some(last) = entry.batches.back() {
                entry.last_timestamp = last.max_timestamp;
            }
            !entry.batches.is_empty()
        });
    }

    /// Removes the producers whose last batch is `expiration_ms` or more
    /// older than `now_ms` (`producer.id.expiration.ms`); returns how many.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, entry| now_ms.saturating_sub(entry.last_timestamp) < expiration_ms);
        before - self.producers.len()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(
            4 + self.producers.len() * (ENTRY_BYTES + BATCHES_TO_RETAIN * BATCH_BYTES),
        );
        body.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort();
        for id in ids {
            let entry = &self.producers[id];
            body.extend_from_slice(&id.to_be_bytes());
            body.extend_from_slice(&entry.epoch.to_be_bytes());
            body.extend_from_slice(&entry.last_timestamp.to_be_bytes());
            body.push(entry.batches.len() as u8);
            for meta in &entry.batches {
                body.extend_from_slice(&meta.first_seq.to_be_bytes());
                body.extend_from_slice(&meta.last_seq.to_be_bytes());
                body.extend_from_slice(&meta.first_offset.to_be_bytes());
                body.extend_from_slice(&meta.last_offset.to_be_bytes());
                body.extend_from_slice(&meta.max_timestamp.to_be_bytes());
            }
        }
        let mut out = Vec::with_capacity(SNAPSHOT_MAGIC.len() + 4 + body.len());
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Reads a snapshot `encode` wrote; any damage is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<ProducerStateTable, String> {
        let rest = bytes
            .strip_prefix(SNAPSHOT_MAGIC)
            .ok_or("not a producer snapshot")?;
        let mut reader = Reader(rest);
        let crc = reader.u32()?;
        if crc32c::crc32c(reader.0) != crc {
            return Err("producer snapshot fails its CRC-32C".into());
        }
        let count = reader.u32()? as usize;
        if count > reader.0.len() / (ENTRY_BYTES + BATCH_BYTES) {
            return Err("producer count larger than the snapshot".into());
        }
        let mut producers = HashMap::with_capacity(count);
        for _ in 0..count {
            let id = reader.i64()?;
            let mut entry = ProducerEntry::new(reader.i16()?);
            entry.last_timestamp = reader.i64()?;
            let batches = reader.u8()? as usize;
            if !(1..=BATCHES_TO_RETAIN).contains(&batches) {
                return Err(format!("producer {id} with {batches} batches"));
            }
            for _ in 0..batches {
                let meta = BatchMetadata {
                    first_seq: reader.i32()?,
                    last_seq: reader.i32()?,
                    first_offset: reader.i64()?,
                    last_offset: reader.i64()?,
                    max_timestamp: reader.i64()?,
                };
                if entry
                    .batches
                    .back()
                    .is_some_and(|b| b.last_offset >= meta.first_offset)
                    || meta.last_offset < meta.first_offset
                {
                    return Err(format!("producer {id} with offsets out of order"));
                }
                entry.batches.push_back(meta);
            }
            if producers.insert(id, entry).is_some() {
                return Err(format!("producer {id} twice"));
            }
        }
        if !reader.0.is_empty() {
            return Err("bytes after the last producer".into());
        }
        Ok(ProducerStateTable { producers })
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or("producer snapshot cut short")?;
        self.0 = rest;
        Ok(*head)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take::<1>()?[0])
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.take()?))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.take()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARTITION: &str = "t-0";

    fn batch(
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        records: i32,
        offset: i64,
    ) -> ProducerBatch {
        ProducerBatch {
            producer_id,
            epoch,
            meta: BatchMetadata {
                first_seq,
                last_seq: increment_sequence(first_seq, records - 1),
                first_offset: offset,
                last_offset: offset + i64::from(records) - 1,
                max_timestamp: 1_000 + offset,
            },
        }
    }

    /// Admits and commits; the error or the duplicate otherwise.
    fn append(
        table: &mut ProducerStateTable,
        batches: &[ProducerBatch],
    ) -> Result<Option<BatchMetadata>, ProducerError> {
        match table.admit(batches, PARTITION, AppendOrigin::Client)? {
            Admission::Append(updated) => {
                table.commit(updated);
                Ok(None)
            }
            Admission::Duplicate(batch) => Ok(Some(batch)),
        }
    }

    /// The group coordinator writes every transactional batch at sequence
    /// 0: only the epoch is checked, as Kafka checks a coordinator's.
    #[test]
    fn a_coordinators_batches_pass_on_their_epoch_alone() {
        let mut table = ProducerStateTable::default();
        for (epoch, offset) in [(3, 0), (3, 1), (4, 2), (4, 3)] {
            let admitted = table.admit(
                &[batch(9, epoch, 0, 1, offset)],
                PARTITION,
                AppendOrigin::Coordinator,
            );
            match admitted {
                Ok(Admission::Append(updated)) => table.commit(updated),
                other => panic!("epoch {epoch} at {offset}: {other:?}"),
            }
        }
        assert!(matches!(
            table.admit(
                &[batch(9, 3, 0, 1, 4)],
                PARTITION,
                AppendOrigin::Coordinator
            ),
            Err(ProducerError::InvalidProducerEpoch(_))
        ));
        assert_eq!(
            table.admit(&[batch(9, 4, 0, 1, 4)], PARTITION, AppendOrigin::Client),
            Ok(Admission::Duplicate(batch(9, 4, 0, 1, 2).meta)),
            "the same batch from a client is a retry"
        );
    }

    #[test]
    fn sequences_follow_on_and_gaps_are_out_of_order() {
        let mut table = ProducerStateTable::default();
        assert_eq!(append(&mut table, &[batch(7, 0, 0, 3, 0)]), Ok(None));
        assert_eq!(append(&mut table, &[batch(7, 0, 3, 2, 3)]), Ok(None));
        assert!(matches!(
            append(&mut table, &[batch(7, 0, 6, 1, 5)]),
            Err(ProducerError::OutOfOrderSequence(_))
        ));
        // An unknown producer may start anywhere (KIP-360).
        assert_eq!(append(&mut table, &[batch(8, 3, 42, 1, 5)]), Ok(None));
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn a_retry_of_any_of_the_last_five_is_a_duplicate_with_its_offsets() {
        let mut table = ProducerStateTable::default();
        for i in 0..7 {
            append(&mut table, &[batch(1, 0, i * 2, 2, i64::from(i) * 2)]).unwrap();
        }
        // Batches 2..=6 are remembered; 0 and 1 are not.
        let dup = append(&mut table, &[batch(1, 0, 4, 2, 99)])
            .unwrap()
            .unwrap();
        assert_eq!((dup.first_offset, dup.last_offset), (4, 5));
        assert!(append(&mut table, &[batch(1, 0, 12, 2, 99)])
            .unwrap()
            .is_some());
        assert!(matches!(
            append(&mut table, &[batch(1, 0, 2, 2, 99)]),
            Err(ProducerError::OutOfOrderSequence(_))
        ));
        // A different range at a known sequence is no duplicate.
        assert!(matches!(
            append(&mut table, &[batch(1, 0, 4, 1, 99)]),
            Err(ProducerError::OutOfOrderSequence(_))
        ));
    }

    #[test]
    fn epochs_fence_older_ones_and_a_new_epoch_starts_at_zero() {
        let mut table = ProducerStateTable::default();
        append(&mut table, &[batch(1, 2, 0, 1, 0)]).unwrap();
        assert!(matches!(
            append(&mut table, &[batch(1, 1, 1, 1, 1)]),
            Err(ProducerError::InvalidProducerEpoch(_))
        ));
        assert!(matches!(
            append(&mut table, &[batch(1, 3, 5, 1, 1)]),
            Err(ProducerError::OutOfOrderSequence(_))
        ));
        assert_eq!(append(&mut table, &[batch(1, 3, 0, 1, 1)]), Ok(None));
        // The old epoch's batches are forgotten: no duplicate across epochs.
        assert!(matches!(
            append(&mut table, &[batch(1, 2, 0, 1, 2)]),
            Err(ProducerError::InvalidProducerEpoch(_))
        ));
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut table = ProducerStateTable::default();
        append(&mut table, &[batch(1, 0, i32::MAX - 1, 2, 0)]).unwrap();
        assert_eq!(table.get(1).unwrap().batches[0].last_seq, i32::MAX);
        assert_eq!(append(&mut table, &[batch(1, 0, 0, 3, 2)]), Ok(None));
        let wrapped = batch(1, 0, i32::MAX, 3, 5);
        assert_eq!(wrapped.meta.last_seq, 1);
        assert!(matches!(
            append(&mut table, &[wrapped]),
            Err(ProducerError::OutOfOrderSequence(_))
        ));
        assert_eq!(append(&mut table, &[batch(1, 0, 3, 1, 5)]), Ok(None));
    }

    #[test]
    fn an_append_of_several_batches_is_checked_in_order_and_all_or_nothing() {
        let mut table = ProducerStateTable::default();
        append(&mut table, &[batch(1, 0, 0, 1, 0)]).unwrap();
        let before = table.clone();
        assert!(append(&mut table, &[batch(1, 0, 1, 1, 1), batch(1, 0, 5, 1, 2)]).is_err());
        assert_eq!(table, before);
        assert_eq!(
            append(&mut table, &[batch(1, 0, 1, 1, 1), batch(1, 0, 2, 1, 2)]),
            Ok(None)
        );
        assert_eq!(table.get(1).unwrap().batches.len(), 3);
    }

    #[test]
    fn given_up_batches_are_forgotten() {
        let mut table = ProducerStateTable::default();
        append(&mut table, &[batch(1, 0, 0, 2, 0)]).unwrap();
        append(&mut table, &[batch(1, 0, 2, 2, 2)]).unwrap();
        append(&mut table, &[batch(2, 0, 0, 2, 4)]).unwrap();
        table.truncate_from(2);
        assert_eq!(table.get(1).unwrap().batches.len(), 1);
        assert!(table.get(2).is_none());
        // The retry of the given-up batch is appended again, not a duplicate.
        assert_eq!(append(&mut table, &[batch(1, 0, 2, 2, 2)]), Ok(None));
    }

    #[test]
    fn idle_producers_expire() {
        let mut table = ProducerStateTable::default();
        append(&mut table, &[batch(1, 0, 0, 1, 0)]).unwrap(); // timestamp 1000
        append(&mut table, &[batch(2, 0, 0, 1, 500)]).unwrap(); // timestamp 1500
        assert_eq!(table.expire(1_999, 1_000), 0);
        assert_eq!(table.expire(2_000, 1_000), 1);
        assert!(table.get(1).is_none() && table.get(2).is_some());
    }

    #[test]
    fn replay_rebuilds_what_appends_built() {
        let mut appended = ProducerStateTable::default();
        let mut replayed = ProducerStateTable::default();
        let batches = [
            batch(1, 0, 0, 2, 0),
            batch(2, 0, 0, 1, 2),
            batch(1, 0, 2, 1, 3),
            batch(1, 1, 0, 1, 4),
        ];
        for b in &batches {
            append(&mut appended, &[*b]).unwrap();
            replayed.replay(b);
        }
        // A batch already covered (replay from an older offset) changes nothing.
        replayed.replay(&batches[2]);
        assert_eq!(appended, replayed);
    }

    #[test]
    fn snapshots_round_trip_and_damage_is_an_error() {
        let mut table = ProducerStateTable::default();
        for i in 0..7 {
            append(
                &mut table,
                &[batch(i64::from(i % 3), 0, i, 1, i64::from(i))],
            )
            .ok();
        }
        let bytes = table.encode();
        assert_eq!(ProducerStateTable::decode(&bytes).unwrap(), table);
        assert_eq!(
            ProducerStateTable::decode(&ProducerStateTable::default().encode()).unwrap(),
            ProducerStateTable::default()
        );
        for cut in 0..bytes.len() {
            assert!(
                ProducerStateTable::decode(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x40;
            assert!(ProducerStateTable::decode(&flipped).is_err(), "flip at {i}");
        }
    }
}
