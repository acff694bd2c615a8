//! The idempotent and transactional producers of one partition, as Kafka's
//! `ProducerStateManager` keeps them: per producer id its epoch, its last
//! `BATCHES_TO_RETAIN` batches (first and last sequence, first and last
//! offset, max timestamp), the coordinator epoch of its last transaction
//! marker and the first offset of its ongoing transaction; and the checks an
//! append passes against them.
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
//! Transactions (Kafka's `ProducerAppendInfo`): a transactional batch starts
//! its producer's transaction at its first offset unless one is open; a
//! non-transactional batch while one is open is INVALID_TXN_STATE. A
//! COMMIT or ABORT marker (a control batch) ends it: a marker whose producer
//! epoch is older than the producer's is INVALID_PRODUCER_EPOCH, one whose
//! coordinator epoch is older than the last marker's is
//! TRANSACTION_COORDINATOR_FENCED. A marker that ends a transaction with
//! data here completes it ([`CompletedTxn`]: an aborted one goes to the
//! `.txnindex`). The open transactions give the first unstable offset, the
//! smallest first offset among them: the last stable offset is it or the
//! high watermark, whichever is lower.
//!
//! KIP-890 part 1 (`verification`): with verification asked for, a client's
//! transactional batch that would open its producer's transaction (none is
//! open here in its epoch) needs the guard of a verification the
//! transaction coordinator confirmed; without one it is refused
//! `Unverified` (first try) or INVALID_TXN_STATE (a stale guard).
//!
//! Snapshot format (`<offset>.snapshot`: the state of the producers after
//! every batch below `offset`), all integers big-endian:
//!
//! ```text
//! magic "shoal-producers-2" (17 bytes) | crc32c u32 of what follows |
//! count u32 | count × (producer_id i64, epoch i16, last_timestamp i64,
//!   coordinator_epoch i32, txn_first_offset i64 (-1: none),
//!   batches u8, batches × (first_seq i32, last_seq i32,
//!   first_offset i64, last_offset i64, max_timestamp i64))
//! ```
//!
//! Version 1 (magic "shoal-producers-1", before transactions) lacks the
//! coordinator epoch and transaction offset and has 1 to 5 batches per
//! producer; it is still read. Unlike Kafka's snapshot (the last batch of
//! each producer) it keeps all five, so a retry of any in-flight batch is
//! still known as a duplicate after a restart.
//!
//! Invariant: pure (no IO, no clock: time comes in as arguments); an entry
//! holds up to `BATCHES_TO_RETAIN` batches of one epoch, oldest first, with
//! growing offsets, and has a batch, an open transaction or a marker seen;
//! `ongoing` holds exactly the open transactions of the entries; `admit`
//! changes nothing, `commit` applies what it admitted.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::protocol::batch::{increment_sequence, BatchHeader};
use crate::protocol::batch_records::BatchRecords;
use crate::protocol::records::TxnMarker;
use kafka_protocol::records::NO_SEQUENCE;

mod verification;

pub use verification::{TxnVerification, Verifications};

/// Batches remembered per producer: Kafka's `NUM_BATCHES_TO_RETAIN`, the
/// most requests an idempotent client keeps in flight per connection
/// (`max.in.flight.requests.per.connection` <= 5), so that any of them may
/// be retried and recognised.
pub const BATCHES_TO_RETAIN: usize = 5;

/// The coordinator epoch of a producer no marker has been seen of (Kafka's
/// `RecordBatch.NO_PARTITION_LEADER_EPOCH`, which DescribeProducers shows).
pub const NO_COORDINATOR_EPOCH: i32 = -1;

const SNAPSHOT_MAGIC: &[u8] = b"shoal-producers-2";
const SNAPSHOT_MAGIC_V1: &[u8] = b"shoal-producers-1";
const ENTRY_BYTES_V1: usize = 8 + 2 + 8 + 1;
const ENTRY_BYTES: usize = ENTRY_BYTES_V1 + 4 + 8;
const BATCH_BYTES: usize = 4 + 4 + 8 + 8 + 8;

/// One data batch as the producer state sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub transactional: bool,
    pub meta: BatchMetadata,
}

impl ProducerBatch {
    /// The batch whose header is `header`, at `first_offset`; `None` for a
    /// batch without a producer id (not idempotent) or a control batch.
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
            transactional: header.is_transactional(),
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

/// A COMMIT or ABORT marker as the producer state sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerMarker {
    pub marker: TxnMarker,
    pub offset: i64,
    pub timestamp: i64,
}

/// One batch of an append (or of a replay) that concerns a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerAppend {
    Data(ProducerBatch),
    Marker(ProducerMarker),
}

impl ProducerAppend {
    /// What the complete batch `batch` (framed, checked) at `first_offset`
    /// means to its producer: a data batch with a producer id, or a
    /// transaction marker; `None` for anything else (no producer id, an
    /// emptied control batch, another kind of control record).
    pub fn of(batch: &[u8], first_offset: i64) -> Option<ProducerAppend> {
        let header = BatchHeader::view(batch)?;
        if !header.is_control() {
            return ProducerBatch::of(header, first_offset).map(ProducerAppend::Data);
        }
        let records = BatchRecords::decode(batch).ok()?;
        let records = records.records().ok()?;
        let record = records.first()?;
        let marker = TxnMarker::decode(
            header.producer_id.get(),
            header.producer_epoch.get(),
            record.key?,
            record.value?,
        )?;
        Some(ProducerAppend::Marker(ProducerMarker {
            marker,
            offset: first_offset,
            timestamp: header.max_timestamp.get(),
        }))
    }

    fn producer_id(&self) -> i64 {
        match self {
            ProducerAppend::Data(batch) => batch.producer_id,
            ProducerAppend::Marker(marker) => marker.marker.producer_id,
        }
    }

    fn epoch(&self) -> i16 {
        match self {
            ProducerAppend::Data(batch) => batch.epoch,
            ProducerAppend::Marker(marker) => marker.marker.producer_epoch,
        }
    }
}

/// A transaction a marker ended, with data in this partition (Kafka's
/// `CompletedTxn`): `first_offset` its first batch, `last_offset` the marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub aborted: bool,
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
    /// Oldest first; up to `BATCHES_TO_RETAIN` of them (none when only a
    /// marker was seen, or the producer's batches were given up).
    pub batches: VecDeque<BatchMetadata>,
    /// The max timestamp of its last batch or marker, which expiration goes
    /// by (as Kafka's).
    pub last_timestamp: i64,
    /// The coordinator epoch of its last marker.
    pub coordinator_epoch: i32,
    /// The first offset of its ongoing transaction.
    pub txn_first_offset: Option<i64>,
    /// Its last marker's offset, and the transaction that marker ended, so
    /// that giving the marker up opens that transaction again. Not in
    /// snapshots: a snapshot holds only written batches, never given up.
    last_marker: Option<(i64, Option<i64>)>,
}

impl ProducerEntry {
    fn new(epoch: i16) -> ProducerEntry {
        ProducerEntry {
            epoch,
            batches: VecDeque::with_capacity(BATCHES_TO_RETAIN),
            last_timestamp: i64::MIN,
            coordinator_epoch: NO_COORDINATOR_EPOCH,
            txn_first_offset: None,
            last_marker: None,
        }
    }

    /// Kafka's `maybeUpdateProducerEpoch`: a new epoch forgets the batches.
    fn update_epoch(&mut self, epoch: i16) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
    }

    fn add(&mut self, batch: &ProducerBatch) {
        self.update_epoch(batch.epoch);
        if self.batches.len() == BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.batches.push_back(batch.meta);
        self.last_timestamp = batch.meta.max_timestamp;
        if batch.transactional && self.txn_first_offset.is_none() {
            self.txn_first_offset = Some(batch.meta.first_offset);
        }
    }

    /// Ends the open transaction, if any: the one it completes.
    fn end_txn(&mut self, marker: &ProducerMarker) -> Option<CompletedTxn> {
        let completed = self.txn_first_offset.map(|first_offset| CompletedTxn {
            producer_id: marker.marker.producer_id,
            first_offset,
            last_offset: marker.offset,
            aborted: !marker.marker.commit,
        });
        self.update_epoch(marker.marker.producer_epoch);
        self.coordinator_epoch = marker.marker.coordinator_epoch;
        self.last_timestamp = marker.timestamp;
        self.last_marker = Some((marker.offset, self.txn_first_offset.take()));
        completed
    }

    /// The last offset this entry has seen, batch or marker.
    fn last_offset(&self) -> Option<i64> {
        let batch = self.batches.back().map(|b| b.last_offset);
        let marker = self.last_marker.map(|(offset, _)| offset);
        batch.max(marker)
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

    /// Kafka's checks of a batch appended after this entry, in its order:
    /// epoch, sequence (not for a coordinator's batch), transaction state.
    fn check(
        &self,
        batch: &ProducerBatch,
        partition: &str,
        origin: AppendOrigin,
    ) -> Result<(), ProducerError> {
        self.check_epoch(batch.producer_id, batch.epoch, partition)?;
        if origin == AppendOrigin::Client {
            self.check_sequence(batch, partition)?;
        }
        if self.txn_first_offset.is_some() && !batch.transactional {
            return Err(ProducerError::InvalidTxnState(format!(
                "Expected transactional write from producer {} at offset {} in partition {partition}",
                batch.producer_id, batch.meta.first_offset
            )));
        }
        Ok(())
    }

    fn check_sequence(&self, batch: &ProducerBatch, partition: &str) -> Result<(), ProducerError> {
        let id = batch.producer_id;
        let first_seq = batch.meta.first_seq;
        if batch.epoch != self.epoch {
            if first_seq != 0 {
                return Err(ProducerError::OutOfOrderSequence(format!(
                    "Invalid sequence number for new epoch of producer {id} in partition {partition}: {} (request epoch), {first_seq} (seq. number), {} (current producer epoch)",
                    batch.epoch, self.epoch
                )));
            }
            return Ok(());
        }
        // An epoch with no batch yet (a marker brought it: transactions
        // version 2 bumps the epoch at every end) starts at sequence 0, as
        // in Kafka; a later batch appended first, say of a second request
        // in flight verified sooner, would make the first out of order.
        let last_seq = self
            .batches
            .back()
            .map_or(NO_SEQUENCE, |last| last.last_seq);
        if in_sequence(last_seq, first_seq) {
            return Ok(());
        }
        Err(ProducerError::OutOfOrderSequence(format!(
            "Out of order sequence number for producer {id} in partition {partition}: {first_seq} (incoming seq. number), {last_seq} (current end sequence number)"
        )))
    }

    fn check_epoch(&self, id: i64, epoch: i16, partition: &str) -> Result<(), ProducerError> {
        if epoch < self.epoch {
            return Err(ProducerError::InvalidProducerEpoch(format!(
                "Epoch of producer {id} in {partition} is {epoch}, which is smaller than the last seen epoch {}",
                self.epoch
            )));
        }
        Ok(())
    }

    /// Kafka's checks of a marker appended after this entry.
    fn check_marker(&self, marker: &ProducerMarker, partition: &str) -> Result<(), ProducerError> {
        let id = marker.marker.producer_id;
        self.check_epoch(id, marker.marker.producer_epoch, partition)?;
        if self.coordinator_epoch > marker.marker.coordinator_epoch {
            return Err(ProducerError::CoordinatorFenced(format!(
                "Invalid coordinator epoch for producerId {id} at offset {} in partition {partition}: {} (zombie), {} (current)",
                marker.offset, marker.marker.coordinator_epoch, self.coordinator_epoch
            )));
        }
        Ok(())
    }

    /// Applies one batch or marker without checks; the transaction a marker
    /// completed.
    fn apply(&mut self, append: &ProducerAppend) -> Option<CompletedTxn> {
        match append {
            ProducerAppend::Data(batch) => {
                self.add(batch);
                None
            }
            ProducerAppend::Marker(marker) => self.end_txn(marker),
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
    /// INVALID_TXN_STATE: a non-transactional batch in a transaction.
    InvalidTxnState(String),
    /// OUT_OF_ORDER_SEQUENCE_NUMBER for a batch after the earliest one
    /// waiting for its producer's verification; the produce path waits a
    /// little for that one before answering it.
    BehindVerifying(String),
    /// TRANSACTION_COORDINATOR_FENCED: a marker from an older coordinator.
    CoordinatorFenced(String),
    /// KIP-890: a transactional batch that would open its producer's
    /// transaction here, before the coordinator confirmed the partition is
    /// in it (`verification`); not an answer to a client, a step.
    Unverified {
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
    },
}

/// Who appends, as Kafka's `AppendOrigin` says: a client's batches pass
/// every check; a coordinator of this broker writing its internal topic
/// (the group coordinator's batches of a transaction's offsets, base
/// sequence 0 each time) only the epoch checks, as in Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOrigin {
    Client,
    Coordinator,
}

/// What an admitted append does to the producers, for `commit`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ProducerUpdate {
    entries: Vec<(i64, ProducerEntry)>,
    completed: Vec<CompletedTxn>,
}

/// What `admit` decided for an append.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Append it, then `commit` this.
    Append(ProducerUpdate),
    /// A retry of a batch already in the log: answer with its offsets.
    Duplicate(BatchMetadata),
}

/// One producer as DescribeProducers shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerDescription {
    pub producer_id: i64,
    pub epoch: i16,
    /// -1 when no batch is remembered.
    pub last_sequence: i32,
    /// -1 when none is known.
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    /// -1 when no transaction is open.
    pub txn_start_offset: i64,
}

/// What the cleaner keeps of a producer so that its state survives
/// cleaning (Kafka's `LastRecord`): the batch ending at its last data
/// batch's last offset, or, when it has no batch, its markers of its epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastRecord {
    pub last_data_offset: Option<i64>,
    pub epoch: i16,
}

/// The producers of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
    /// The open transactions: first offset -> producer id.
    ongoing: BTreeMap<i64, i64>,
    /// KIP-890 verifications in flight; not in snapshots (a restart
    /// forgets them, and the producers' retries start new ones).
    verifications: Verifications,
}

impl ProducerStateTable {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    #[cfg(test)]
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// The first offset of the oldest open transaction: nothing at or past
    /// it is stable.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// The last record of every producer, by id (Kafka's
    /// `lastRecordsOfActiveProducers`).
    pub fn last_records(&self) -> HashMap<i64, LastRecord> {
        self.producers
            .iter()
            .map(|(&id, entry)| {
                let last = LastRecord {
                    last_data_offset: entry.batches.back().map(|b| b.last_offset),
                    epoch: entry.epoch,
                };
                (id, last)
            })
            .collect()
    }

    /// Every producer, by id.
    pub fn describe(&self) -> Vec<ProducerDescription> {
        let mut described: Vec<ProducerDescription> = self
            .producers
            .iter()
            .map(|(&producer_id, entry)| ProducerDescription {
                producer_id,
                epoch: entry.epoch,
                last_sequence: entry.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: if entry.last_timestamp == i64::MIN {
                    -1
                } else {
                    entry.last_timestamp
                },
                coordinator_epoch: entry.coordinator_epoch,
                txn_start_offset: entry.txn_first_offset.unwrap_or(-1),
            })
            .collect();
        described.sort_by_key(|d| d.producer_id);
        described
    }

    /// Checks the batches of one append, in order, as Kafka does: any batch
    /// that repeats one already appended makes the whole append that
    /// duplicate; otherwise each batch must follow its producer's last one
    /// (or the one before it in this append), and each marker must come
    /// from the producer's epoch or a newer one. A client's transactional
    /// batch that would open its producer's transaction passes only with
    /// the guard of a verification in flight (`verification`). Changes
    /// nothing.
    pub fn admit(
        &self,
        appends: &[ProducerAppend],
        partition: &str,
        origin: AppendOrigin,
        verification: TxnVerification,
    ) -> Result<Admission, ProducerError> {
        let mut update = ProducerUpdate::default();
        for append in appends {
            let id = append.producer_id();
            let current = self.producers.get(&id);
            if let ProducerAppend::Data(batch) = append {
                let client = origin == AppendOrigin::Client;
                if let Some(duplicate) = current
                    .filter(|_| client)
                    .and_then(|entry| entry.duplicate_of(batch))
                {
                    return Ok(Admission::Duplicate(duplicate));
                }
                let first_of_producer = !update.entries.iter().any(|(known, _)| *known == id);
                if client && batch.transactional {
                    let latest = update
                        .entries
                        .iter()
                        .find(|(known, _)| *known == id)
                        .map(|(_, entry)| entry)
                        .or(current);
                    self.check_verified(batch, latest, partition, verification)?;
                }
                if client && first_of_producer {
                    self.check_earliest_verified(batch, partition)?;
                }
            }
            let index = match update.entries.iter().position(|(known, _)| *known == id) {
                Some(index) => index,
                None => {
                    let entry = match current {
                        Some(entry) => entry.clone(),
                        None => {
                            // Unknown: any epoch and sequence start it.
                            let mut entry = ProducerEntry::new(append.epoch());
                            update.completed.extend(entry.apply(append));
                            update.entries.push((id, entry));
                            continue;
                        }
                    };
                    update.entries.push((id, entry));
                    update.entries.len() - 1
                }
            };
            let entry = &mut update.entries[index].1;
            match append {
                ProducerAppend::Data(batch) => entry.check(batch, partition, origin)?,
                ProducerAppend::Marker(marker) => entry.check_marker(marker, partition)?,
            }
            update.completed.extend(entry.apply(append));
        }
        Ok(Admission::Append(update))
    }

    /// While a verification of the producer is in flight, no batch after
    /// the earliest one waiting for it may come first (Kafka's
    /// `VerificationStateEntry.lowestSequence`): two requests in flight
    /// whose coordinator answers arrive out of order would otherwise
    /// append the second first, which makes the first out of order for
    /// good. Kafka refuses the later one OUT_OF_ORDER_SEQUENCE_NUMBER,
    /// which the Java producer 4.x takes as abortable inside a
    /// transaction; shoal's produce path waits for the earlier one first.
    fn check_earliest_verified(
        &self,
        batch: &ProducerBatch,
        partition: &str,
    ) -> Result<(), ProducerError> {
        match self.verifications.lowest_seq(batch.producer_id) {
            Some(lowest) if batch.meta.first_seq > lowest => {
                Err(ProducerError::BehindVerifying(format!(
                    "Out of order sequence number for producer {} in partition {partition}: {} (incoming seq. number), {lowest} (earliest seen sequence)",
                    batch.producer_id, batch.meta.first_seq
                )))
            }
            _ => Ok(()),
        }
    }

    /// KIP-890 (Kafka's `analyzeAndValidateProducerState`): a
    /// transactional batch of a producer with no transaction open here, in
    /// its epoch, needs the guard of its verification in flight.
    fn check_verified(
        &self,
        batch: &ProducerBatch,
        latest: Option<&ProducerEntry>,
        partition: &str,
        verification: TxnVerification,
    ) -> Result<(), ProducerError> {
        let open = latest
            .is_some_and(|entry| entry.txn_first_offset.is_some() && entry.epoch == batch.epoch);
        match verification {
            TxnVerification::Off => Ok(()),
            _ if open => Ok(()),
            TxnVerification::Start => Err(ProducerError::Unverified {
                producer_id: batch.producer_id,
                epoch: batch.epoch,
                first_seq: batch.meta.first_seq,
            }),
            TxnVerification::Verified(guard)
                if self.verifications.verifies(batch.producer_id, guard) =>
            {
                Ok(())
            }
            TxnVerification::Verified(_) => Err(ProducerError::InvalidTxnState(format!(
                "Record was not part of an ongoing transaction: producer {} in partition {partition}",
                batch.producer_id
            ))),
        }
    }

    /// Starts the producer's verification (or finds the one in flight) for
    /// a batch of `epoch` from sequence `first_seq`: the guard its verified
    /// append brings back.
    pub fn start_verification(
        &mut self,
        producer_id: i64,
        (epoch, first_seq): (i16, i32),
        now_ms: i64,
    ) -> u64 {
        self.verifications
            .start(producer_id, (epoch, first_seq), now_ms)
    }

    /// Verifications in flight.
    #[cfg(test)]
    pub fn verifications(&self) -> usize {
        self.verifications.len()
    }

    /// Applies what `admit` returned, once the append has its offsets;
    /// returns the transactions its markers completed. Every producer it
    /// touched has ended its verification: its transaction is open here or
    /// just ended.
    pub fn commit(&mut self, update: ProducerUpdate) -> Vec<CompletedTxn> {
        for (producer_id, entry) in update.entries {
            self.verifications.end(producer_id);
            self.insert(producer_id, entry);
        }
        update.completed
    }

    /// Puts `entry` in place of the producer's, keeping `ongoing` in step.
    fn insert(&mut self, producer_id: i64, entry: ProducerEntry) {
        let before = self
            .producers
            .get(&producer_id)
            .and_then(|e| e.txn_first_offset);
        if before != entry.txn_first_offset {
            if let Some(first) = before {
                self.ongoing.remove(&first);
            }
            if let Some(first) = entry.txn_first_offset {
                self.ongoing.insert(first, producer_id);
            }
        }
        self.producers.insert(producer_id, entry);
    }

    /// A batch or marker read back from the log (recovery): applied
    /// without checks, as Kafka rebuilds its state; the transaction a
    /// marker completed.
    pub fn replay(&mut self, append: &ProducerAppend) -> Option<CompletedTxn> {
        let id = append.producer_id();
        let mut entry = self
            .producers
            .get(&id)
            .cloned()
            .unwrap_or_else(|| ProducerEntry::new(append.epoch()));
        let first_offset = match append {
            ProducerAppend::Data(batch) => batch.meta.first_offset,
            ProducerAppend::Marker(marker) => marker.offset,
        };
        if entry.last_offset().is_some_and(|last| last >= first_offset) {
            return None;
        }
        let completed = entry.apply(append);
        self.insert(id, entry);
        completed
    }

    /// Forgets every batch and marker at or after `offset` (appends given
    /// up after a failed write): a transaction started there is no longer
    /// open, one a given-up marker ended is open again. A producer left
    /// with nothing is forgotten: its retry may then start at any sequence,
    /// as for an unknown producer.
    pub fn truncate_from(&mut self, offset: i64) {
        self.producers.retain(|_, entry| {
            while entry
                .batches
                .back()
                .is_some_and(|b| b.last_offset >= offset)
            {
                entry.batches.pop_back();
            }
            if let Some((marker_offset, ended)) = entry.last_marker {
                if marker_offset >= offset {
                    entry.txn_first_offset = ended;
                    entry.last_marker = None;
                }
            }
            if entry.txn_first_offset.is_some_and(|first| first >= offset) {
                entry.txn_first_offset = None;
            }
            if let Some(last) = entry.batches.back() {
                entry.last_timestamp = last.max_timestamp;
            }
            !entry.batches.is_empty()
                || entry.txn_first_offset.is_some()
                || entry.coordinator_epoch != NO_COORDINATOR_EPOCH
        });
        self.rebuild_ongoing();
    }

    fn rebuild_ongoing(&mut self) {
        self.ongoing = self
            .producers
            .iter()
            .filter_map(|(&id, entry)| entry.txn_first_offset.map(|first| (first, id)))
            .collect();
    }

    /// Removes the producers whose last batch is `expiration_ms` or more
    /// older than `now_ms` (`producer.id.expiration.ms`) and that have no
    /// open transaction (as Kafka's `isProducerExpired`); returns how many.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        self.verifications.expire(now_ms, expiration_ms);
        let before = self.producers.len();
        self.producers.retain(|_, entry| {
            entry.txn_first_offset.is_some()
                || now_ms.saturating_sub(entry.last_timestamp) < expiration_ms
        });
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
            body.extend_from_slice(&entry.coordinator_epoch.to_be_bytes());
            body.extend_from_slice(&entry.txn_first_offset.unwrap_or(-1).to_be_bytes());
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

    /// Reads a snapshot `encode` wrote (or version 1); any damage is an
    /// error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<ProducerStateTable, String> {
        let (rest, v1) = match bytes.strip_prefix(SNAPSHOT_MAGIC) {
            Some(rest) => (rest, false),
            None => (
                bytes
                    .strip_prefix(SNAPSHOT_MAGIC_V1)
                    .ok_or("not a producer snapshot")?,
                true,
            ),
        };
        let mut reader = Reader(rest);
        let crc = reader.u32()?;
        if crc32c::crc32c(reader.0) != crc {
            return Err("producer snapshot fails its CRC-32C".into());
        }
        let count = reader.u32()? as usize;
        let entry_bytes_min = if v1 {
            ENTRY_BYTES_V1 + BATCH_BYTES
        } else {
            ENTRY_BYTES
        };
        if count > reader.0.len() / entry_bytes_min {
            return Err("producer count larger than the snapshot".into());
        }
        let mut table = ProducerStateTable::default();
        for _ in 0..count {
            let id = reader.i64()?;
            let mut entry = ProducerEntry::new(reader.i16()?);
            entry.last_timestamp = reader.i64()?;
            if !v1 {
                entry.coordinator_epoch = reader.i32()?;
                entry.txn_first_offset = match reader.i64()? {
                    -1 => None,
                    first if first >= 0 => Some(first),
                    other => return Err(format!("producer {id} with transaction at {other}")),
                };
            }
            let batches = reader.u8()? as usize;
            let batches_min = usize::from(v1);
            if !(batches_min..=BATCHES_TO_RETAIN).contains(&batches) {
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
            if let Some(first) = entry.txn_first_offset {
                if table.ongoing.insert(first, id).is_some() {
                    return Err(format!("two transactions at offset {first}"));
                }
            }
            if table.producers.insert(id, entry).is_some() {
                return Err(format!("producer {id} twice"));
            }
        }
        if !reader.0.is_empty() {
            return Err("bytes after the last producer".into());
        }
        Ok(table)
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
mod tests;
