//! The transaction coordinator's operations, each in Kafka's two steps:
//! a request checks the metadata and, when the state must change, returns
//! a `Transit` (the record to append, the target state, pending until
//! then); the caller appends the record and hands the `Transit` back to
//! `complete`, which applies it and says what to answer and which markers
//! to write. Markers written, `markers_written` gives the Complete
//! `Transit`.
//!
//! Transactions version 2 (KIP-890 part 2, an EndTxn v5 client): every
//! commit or abort bumps the epoch, so its markers fence the transaction's
//! own late batches and the next transaction starts at the new epoch; at
//! the last epoch the commit or abort rotates to a new producer id
//! (`next_producer_id`, taken once the markers are written). A retry of a
//! completed EndTxn (the epoch one below, or the rotated id's last epoch)
//! gets the same answer again; an abort with nothing added bumps the epoch
//! too. Version 1 clients keep the epoch, as before.
//!
//! Invariant: a transactional id has at most one `Transit` in flight
//! (`TxnMetadata::pending`); every request meeting one is answered
//! CONCURRENT_TRANSACTIONS, as Kafka answers it.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;

use super::records::{self, RecordError, TxnValue};
use super::state::{TxnMetadata, TxnState, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, TV_0, TV_2};
use super::TxnConfig;

/// A record for `__transaction_state` partition `partition`; a tombstone
/// when `value` is None.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub partition: i32,
    pub key: bytes::Bytes,
    pub value: Option<bytes::Bytes>,
}

/// Who waits for a `Transit` and what it gets once the record is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiter {
    /// InitProducerId: the producer id and epoch.
    InitProducerId,
    /// InitProducerId that found a transaction in progress and aborts it
    /// first: CONCURRENT_TRANSACTIONS, so the client retries.
    Fence,
    AddPartitions,
    EndTxn,
    /// The coordinator itself (timeouts, markers written, expiration).
    Coordinator,
}

/// A state change whose record is being appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transit {
    pub transactional_id: String,
    pub record: Record,
    pub waiter: Waiter,
    target: TxnValue,
    last_producer_epoch: i16,
}

/// Transaction markers to write: one per partition, then `markers_written`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerJob {
    pub transactional_id: String,
    /// The `__transaction_state` partition of the id.
    pub txn_partition: i32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub partitions: Vec<(String, i32)>,
}

/// What `complete` says: the answer to the waiter (producer id and epoch
/// where the request answers them) and markers to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub waiter: Waiter,
    pub answer: Result<(i64, i16), ResponseError>,
    pub markers: Option<MarkerJob>,
}

/// EndTxn's outcome before anything is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndOutcome {
    /// A retry of an EndTxn already complete: answered at once.
    Done(i64, i16),
    Write(Transit),
}

/// DescribeTransactions for one id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedTxn {
    pub state: TxnState,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub start_ms: i64,
    pub partitions: BTreeSet<(String, i32)>,
}

/// ListTransactions: one id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTxn {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: TxnState,
}

pub struct TxnCoordinator {
    config: TxnConfig,
    txns: BTreeMap<String, TxnMetadata>,
}

impl TxnCoordinator {
    pub fn new(config: TxnConfig) -> TxnCoordinator {
        TxnCoordinator {
            config,
            txns: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// The value version this broker writes (Kafka's
    /// `transactionLogValueVersion` of its `transaction.version`).
    fn value_version(&self) -> i16 {
        if self.config.transaction_version >= 1 {
            records::FLEXIBLE_VALUE_VERSION
        } else {
            records::VALUE_VERSION
        }
    }

    pub fn metadata(&self, transactional_id: &str) -> Option<&TxnMetadata> {
        self.txns.get(transactional_id)
    }

    /// Whether InitProducerId for `transactional_id` would take a new
    /// producer id: the id is new, or its epochs are used up. The caller
    /// allocates one (asynchronously) before calling `init_producer_id`.
    pub fn needs_producer_id(&self, transactional_id: &str) -> bool {
        self.txns.get(transactional_id).is_none_or(|txn| {
            txn.epoch_exhausted()
                && matches!(
                    txn.state,
                    TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                )
        })
    }

    /// InitProducerId with a transactional id (TransactionCoordinator's
    /// `handleInitProducerId`). `expected`: the producer id and epoch a
    /// KIP-360 client passes; `new_producer_id`: one never handed out, when
    /// `needs_producer_id` said so.
    pub fn init_producer_id(
        &mut self,
        now_ms: i64,
        txn_partition: i32,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        new_producer_id: Option<i64>,
    ) -> Result<Transit, ResponseError> {
        // The record key holds the id as a non-flexible string.
        if transactional_id.is_empty() || transactional_id.len() > records::STRING_BYTES_MAX {
            return Err(ResponseError::InvalidRequest);
        }
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        let version = self.value_version();
        let server_tv = self.config.transaction_version;
        if !self.txns.contains_key(transactional_id) {
            // The caller was told to bring one; without it, let it retry.
            let producer_id = new_producer_id.ok_or(ResponseError::ConcurrentTransactions)?;
            let created = TxnMetadata::new(
                transactional_id,
                txn_partition,
                producer_id,
                timeout_ms,
                now_ms,
            );
            self.txns.insert(transactional_id.to_string(), created);
        }
        let txn = self
            .txns
            .get_mut(transactional_id)
            .ok_or(ResponseError::UnknownServerError)?;
        if txn.pending.is_some() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        if let Some(expected) = expected {
            let (producer_id, epoch) = expected;
            let valid = txn.producer_epoch == NO_PRODUCER_EPOCH
                || producer_id == txn.producer_id
                || (producer_id == txn.previous_producer_id
                    && super::state::epoch_exhausted(epoch));
            if !valid {
                return Err(ResponseError::ProducerFenced);
            }
        }
        match txn.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                Err(ResponseError::ConcurrentTransactions)
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let rotate = txn.epoch_exhausted()
                    && expected.is_none_or(|(_, epoch)| epoch == txn.producer_epoch);
                let (producer_id, epoch, last_epoch) = if rotate {
                    let producer_id =
                        new_producer_id.ok_or(ResponseError::ConcurrentTransactions)?;
                    let last = if expected.is_some() {
                        txn.producer_epoch
                    } else {
                        NO_PRODUCER_EPOCH
                    };
                    (producer_id, 0, last)
                } else {
                    let (epoch, last) = next_epoch(txn, expected.map(|(_, epoch)| epoch))?;
                    (txn.producer_id, epoch, last)
                };
                let target = TxnValue {
                    producer_id,
                    previous_producer_id: txn.producer_id,
                    next_producer_id: NO_PRODUCER_ID,
                    producer_epoch: epoch,
                    timeout_ms,
                    state: TxnState::Empty,
                    partitions: BTreeSet::new(),
                    last_update_ms: now_ms,
                    start_ms: -1,
                    client_transaction_version: TV_0,
                };
                Ok(transit(
                    txn,
                    target,
                    last_epoch,
                    Waiter::InitProducerId,
                    version,
                ))
            }
            TxnState::Ongoing => Ok(fence_and_abort(
                txn,
                now_ms,
                Waiter::Fence,
                server_tv,
                version,
            )),
            TxnState::Dead | TxnState::PrepareEpochFence => Err(ResponseError::UnknownServerError),
        }
    }

    /// AddPartitionsToTxn and AddOffsetsToTxn (`client_tv` 0), or a
    /// transactions version 2 Produce or TxnOffsetCommit adding its
    /// partitions itself (`client_tv` 2): None when every partition is in
    /// the transaction already (answered at once, nothing written).
    pub fn add_partitions(
        &mut self,
        now_ms: i64,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
        client_tv: i16,
    ) -> Result<Option<Transit>, ResponseError> {
        let version = self.value_version();
        let rotating = self.txns.get(transactional_id).is_some_and(|txn| {
            txn.pending.is_some()
                && txn.next_producer_id == producer_id
                && producer_id != NO_PRODUCER_ID
        });
        if rotating {
            // The id a version 2 commit or abort rotates to, used before
            // the markers completed it: the same wait as for the epoch.
            return Err(ResponseError::ConcurrentTransactions);
        }
        let txn = self.checked(transactional_id, producer_id, producer_epoch)?;
        if txn.pending.is_some()
            || matches!(txn.state, TxnState::PrepareCommit | TxnState::PrepareAbort)
        {
            return Err(ResponseError::ConcurrentTransactions);
        }
        let known = partitions
            .iter()
            .all(|partition| txn.partitions.contains(partition));
        if txn.state == TxnState::Ongoing && known {
            return Ok(None);
        }
        let start_ms = match txn.state {
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => now_ms,
            _ => txn.start_ms,
        };
        if !TxnState::Ongoing.can_follow(txn.state) {
            return Err(ResponseError::InvalidTxnState);
        }
        let mut target = TxnValue::of(txn);
        target.state = TxnState::Ongoing;
        target.partitions.extend(partitions.iter().cloned());
        target.start_ms = start_ms;
        target.last_update_ms = now_ms;
        target.client_transaction_version = client_tv;
        let last_epoch = txn.last_producer_epoch;
        Ok(Some(transit(
            txn,
            target,
            last_epoch,
            Waiter::AddPartitions,
            version,
        )))
    }

    /// AddPartitionsToTxn v4+ with `verify_only`: whether each partition is
    /// in the transaction (TRANSACTION_ABORTABLE when not), nothing written.
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        let txn = self
            .txns
            .get(transactional_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        if txn.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if txn.producer_epoch != producer_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        if matches!(txn.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
            return Err(ResponseError::ConcurrentTransactions);
        }
        Ok(partitions
            .iter()
            .map(|partition| {
                (!txn.partitions.contains(partition)).then_some(ResponseError::TransactionAbortable)
            })
            .collect())
    }

    /// Whether EndTxn at `client_tv` would rotate the producer id (its
    /// epochs are used up under transactions version 2): the caller then
    /// allocates one before calling `end_txn`.
    pub fn end_needs_producer_id(&self, transactional_id: &str, client_tv: i16) -> bool {
        client_tv >= TV_2
            && self
                .txns
                .get(transactional_id)
                .is_some_and(TxnMetadata::epoch_exhausted)
    }

    /// EndTxn from a client of transactions version `client_tv` (EndTxn
    /// v5 is version 2). `new_producer_id`: one never handed out, when
    /// `end_needs_producer_id` said so.
    pub fn end_txn(
        &mut self,
        now_ms: i64,
        transactional_id: &str,
        (producer_id, producer_epoch): (i64, i16),
        commit: bool,
        client_tv: i16,
        new_producer_id: Option<i64>,
    ) -> Result<EndOutcome, ResponseError> {
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        let version = self.value_version();
        let txn = self
            .txns
            .get_mut(transactional_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        if client_tv < TV_2 {
            return end_v1(txn, now_ms, producer_id, producer_epoch, commit, version);
        }
        let retry = Retry::of(txn, producer_id, producer_epoch);
        if txn.pending.is_some() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        if txn.producer_id != producer_id && !retry.on_overflow {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if !retry.valid_epoch(txn, producer_epoch) {
            return Err(ResponseError::ProducerFenced);
        }
        let is_retry = retry.on_bump || retry.on_overflow;
        use TxnState::*;
        let next = match (txn.state, commit) {
            (Ongoing, true) => PrepareCommit,
            (Ongoing, false) => PrepareAbort,
            (CompleteCommit, true) | (CompleteAbort, false) if is_retry => {
                return Ok(EndOutcome::Done(txn.producer_id, txn.producer_epoch));
            }
            // An abort with nothing added since the last transaction.
            (Empty | CompleteCommit | CompleteAbort, false) if !is_retry => PrepareAbort,
            (PrepareCommit, true) | (PrepareAbort, false) => {
                return Err(ResponseError::ConcurrentTransactions)
            }
            (Dead | PrepareEpochFence, _) => return Err(ResponseError::UnknownServerError),
            _ => return Err(ResponseError::InvalidTxnState),
        };
        let next_producer_id = if txn.epoch_exhausted() {
            new_producer_id.ok_or(ResponseError::ConcurrentTransactions)?
        } else {
            NO_PRODUCER_ID
        };
        let mut target = TxnValue::of(txn);
        target.state = next;
        target.producer_epoch = bumped(txn.producer_epoch);
        target.next_producer_id = next_producer_id;
        target.client_transaction_version = TV_2;
        target.last_update_ms = now_ms;
        if txn.state != Ongoing {
            target.start_ms = now_ms;
        }
        let last_epoch = txn.producer_epoch;
        Ok(EndOutcome::Write(transit(
            txn,
            target,
            last_epoch,
            Waiter::EndTxn,
            version,
        )))
    }

    /// Applies `transit` once its record is durable (`appended` Ok), or
    /// forgets it (the error answers the waiter). A PrepareCommit or
    /// PrepareAbort applied comes back with its markers to write.
    pub fn complete(
        &mut self,
        transit: Transit,
        appended: Result<(), ResponseError>,
    ) -> Completion {
        let Transit {
            transactional_id,
            waiter,
            target,
            last_producer_epoch,
            ..
        } = transit;
        let failed = |error| Completion {
            waiter,
            answer: Err(error),
            markers: None,
        };
        let Some(txn) = self.txns.get_mut(&transactional_id) else {
            return failed(ResponseError::NotCoordinator);
        };
        if txn.pending != Some(target.state) {
            return failed(ResponseError::ConcurrentTransactions);
        }
        txn.pending = None;
        if let Err(error) = appended {
            let fence = target.state == TxnState::PrepareAbort
                && txn.state == TxnState::Ongoing
                && waiter != Waiter::EndTxn
                && target.producer_epoch > txn.producer_epoch;
            if fence {
                // Kafka keeps a fence's bumped epoch even when its record
                // failed: the old producer stays fenced, and the next fence
                // does not bump again (under version 2 its abort bumps once
                // more, from the fence's epoch).
                txn.producer_epoch = if target.client_transaction_version >= TV_2 {
                    last_producer_epoch
                } else {
                    target.producer_epoch
                };
                txn.last_producer_epoch = NO_PRODUCER_EPOCH;
                txn.failed_epoch_fence = true;
            }
            if matches!(
                target.state,
                TxnState::CompleteCommit | TxnState::CompleteAbort
            ) {
                // The markers are written: still waiting, for another try
                // at the record (`markers_written` again).
                txn.pending = Some(target.state);
            }
            return failed(error);
        }
        if target.state == TxnState::Dead {
            self.txns.remove(&transactional_id);
            return Completion {
                waiter,
                answer: Err(ResponseError::TransactionalIdNotFound),
                markers: None,
            };
        }
        assert!(
            target.state.can_follow(txn.state),
            "{:?} -> {:?}",
            txn.state,
            target.state
        );
        let ending = matches!(
            target.state,
            TxnState::CompleteCommit | TxnState::CompleteAbort
        );
        if ending {
            txn.failed_epoch_fence = false;
        } else {
            txn.last_producer_epoch = last_producer_epoch;
        }
        let version_2_end = ending && target.client_transaction_version >= TV_2;
        if target.state == TxnState::Empty || version_2_end {
            txn.previous_producer_id = target.previous_producer_id;
        }
        txn.producer_id = target.producer_id;
        txn.next_producer_id = target.next_producer_id;
        txn.client_transaction_version = target.client_transaction_version;
        txn.producer_epoch = target.producer_epoch;
        txn.timeout_ms = target.timeout_ms;
        txn.state = target.state;
        txn.partitions = target.partitions;
        txn.start_ms = target.start_ms;
        txn.last_update_ms = target.last_update_ms;
        let markers = start_markers(txn);
        let answer = match waiter {
            Waiter::Fence => Err(ResponseError::ConcurrentTransactions),
            // Version 2 at the last epoch: the id the transaction rotates
            // to, as Kafka answers from the completion it prepares.
            _ if txn.next_producer_id != NO_PRODUCER_ID => Ok((txn.next_producer_id, 0)),
            _ => Ok((txn.producer_id, txn.producer_epoch)),
        };
        Completion {
            waiter,
            answer,
            markers,
        }
    }

    /// Every marker of the transaction `job` was for is written (or its
    /// partition is gone): the CompleteCommit or CompleteAbort record.
    /// None when the transaction is no longer waiting for them.
    pub fn markers_written(&mut self, now_ms: i64, job: &MarkerJob) -> Option<Transit> {
        let version = self.value_version();
        let txn = self.txns.get_mut(&job.transactional_id)?;
        let complete = if job.commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        let prepare = if job.commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        if txn.state != prepare
            || txn.pending != Some(complete)
            || txn.producer_id != job.producer_id
            || txn.producer_epoch != job.producer_epoch
        {
            return None;
        }
        let mut target = TxnValue::of(txn);
        target.state = complete;
        target.partitions.clear();
        target.last_update_ms = now_ms;
        if txn.client_transaction_version >= TV_2 {
            // Kafka's `prepareComplete`: the markers are written under the
            // old id, so a rotation takes effect now.
            target.previous_producer_id = txn.producer_id;
            if txn.next_producer_id != NO_PRODUCER_ID {
                target.producer_id = txn.next_producer_id;
                target.producer_epoch = 0;
                target.next_producer_id = NO_PRODUCER_ID;
            }
        }
        let last_epoch = txn.last_producer_epoch;
        // `pending` is already `complete`: it was set when the markers
        // started, so nothing else starts meanwhile.
        txn.pending = None;
        Some(transit(
            txn,
            target,
            last_epoch,
            Waiter::Coordinator,
            version,
        ))
    }

    /// Whether the transaction `job` is for still waits for its markers.
    pub fn awaits_markers(&self, job: &MarkerJob) -> bool {
        self.txns.get(&job.transactional_id).is_some_and(|txn| {
            txn.producer_id == job.producer_id
                && txn.producer_epoch == job.producer_epoch
                && matches!(
                    txn.pending,
                    Some(TxnState::CompleteCommit | TxnState::CompleteAbort)
                )
        })
    }

    /// Ongoing transactions past their timeout, each aborted with an epoch
    /// bump that fences its producer (Kafka's `abortTimedOutTransactions`).
    pub fn abort_timed_out(&mut self, now_ms: i64) -> Vec<Transit> {
        let version = self.value_version();
        let server_tv = self.config.transaction_version;
        self.txns
            .values_mut()
            .filter(|txn| {
                txn.state == TxnState::Ongoing
                    && txn.pending.is_none()
                    && txn.start_ms.saturating_add(i64::from(txn.timeout_ms)) < now_ms
                    && txn.producer_epoch < i16::MAX
            })
            .map(|txn| fence_and_abort(txn, now_ms, Waiter::Coordinator, server_tv, version))
            .collect()
    }

    /// Transactional ids idle past `transactional.id.expiration.ms`, each a
    /// tombstone to write; `complete` then forgets the id.
    pub fn expire(&mut self, now_ms: i64) -> Vec<Transit> {
        let expiration_ms = self.config.id_expiration_ms;
        self.txns
            .values_mut()
            .filter(|txn| {
                txn.state.expiration_allowed()
                    && txn.pending.is_none()
                    && txn.last_update_ms <= now_ms.saturating_sub(expiration_ms)
            })
            .map(|txn| {
                txn.pending = Some(TxnState::Dead);
                let mut target = TxnValue::of(txn);
                target.state = TxnState::Dead;
                target.partitions.clear();
                Transit {
                    transactional_id: txn.transactional_id.clone(),
                    record: Record {
                        partition: txn.partition,
                        key: records::encode_key(&txn.transactional_id),
                        value: None,
                    },
                    waiter: Waiter::Coordinator,
                    target,
                    last_producer_epoch: txn.last_producer_epoch,
                }
            })
            .collect()
    }

    pub fn describe(&self, transactional_id: &str) -> Result<DescribedTxn, ResponseError> {
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        match self.txns.get(transactional_id) {
            Some(txn) if txn.state != TxnState::Dead => Ok(DescribedTxn {
                state: txn.state,
                producer_id: txn.producer_id,
                producer_epoch: txn.producer_epoch,
                timeout_ms: txn.timeout_ms,
                start_ms: txn.start_ms,
                partitions: txn.partitions.clone(),
            }),
            _ => Err(ResponseError::TransactionalIdNotFound),
        }
    }

    /// ListTransactions: empty filters let everything through;
    /// `min_duration_ms` (KIP-994, -1 for none) keeps transactions running
    /// longer than it.
    pub fn list(
        &self,
        now_ms: i64,
        states: &[TxnState],
        producer_ids: &[i64],
        min_duration_ms: i64,
    ) -> Vec<ListedTxn> {
        self.txns
            .values()
            .filter(|txn| txn.state != TxnState::Dead)
            .filter(|txn| producer_ids.is_empty() || producer_ids.contains(&txn.producer_id))
            .filter(|txn| states.is_empty() || states.contains(&txn.state))
            .filter(|txn| min_duration_ms < 0 || now_ms - txn.start_ms > min_duration_ms)
            .map(|txn| ListedTxn {
                transactional_id: txn.transactional_id.clone(),
                producer_id: txn.producer_id,
                state: txn.state,
            })
            .collect()
    }

    /// Applies one `__transaction_state` record of partition `txn_partition`
    /// while loading (`value` None is a tombstone).
    pub fn replay(
        &mut self,
        txn_partition: i32,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), RecordError> {
        let transactional_id = records::decode_key(key)?;
        let Some(value) = value else {
            self.txns.remove(&transactional_id);
            return Ok(());
        };
        let value = records::decode_value(value)?;
        let txn = TxnMetadata {
            transactional_id: transactional_id.clone(),
            partition: txn_partition,
            producer_id: value.producer_id,
            previous_producer_id: value.previous_producer_id,
            next_producer_id: value.next_producer_id,
            producer_epoch: value.producer_epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms: value.timeout_ms,
            state: value.state,
            partitions: value.partitions,
            start_ms: value.start_ms,
            last_update_ms: value.last_update_ms,
            pending: None,
            client_transaction_version: value.client_transaction_version,
            failed_epoch_fence: false,
        };
        self.txns.insert(transactional_id, txn);
        Ok(())
    }

    /// After `txn_partition` loaded: the markers of every transaction it
    /// left prepared but not complete, to write again.
    pub fn loaded(&mut self, txn_partition: i32) -> Vec<MarkerJob> {
        self.txns
            .values_mut()
            .filter(|txn| txn.partition == txn_partition && txn.pending.is_none())
            .filter_map(start_markers)
            .collect()
    }

    /// Forgets every id of `txn_partition` (before loading it again).
    pub fn unload_partition(&mut self, txn_partition: i32) {
        self.txns.retain(|_, txn| txn.partition != txn_partition);
    }

    /// The id's metadata when `producer_id` and `producer_epoch` are its
    /// current ones.
    fn checked(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<&mut TxnMetadata, ResponseError> {
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        let txn = self
            .txns
            .get_mut(transactional_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        if txn.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if txn.producer_epoch != producer_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        Ok(txn)
    }
}

/// The epoch InitProducerId gives and the last epoch it records (Kafka's
/// `prepareIncrementProducerEpoch`).
fn next_epoch(txn: &TxnMetadata, expected_epoch: Option<i16>) -> Result<(i16, i16), ResponseError> {
    let bumped = txn.producer_epoch + 1;
    match expected_epoch {
        None => Ok((bumped, NO_PRODUCER_EPOCH)),
        Some(expected)
            if txn.producer_epoch == NO_PRODUCER_EPOCH || expected == txn.producer_epoch =>
        {
            Ok((bumped, txn.producer_epoch))
        }
        // A retry of a bump that succeeded: the same answer again.
        Some(expected) if expected == txn.last_producer_epoch => {
            Ok((txn.producer_epoch, txn.last_producer_epoch))
        }
        Some(_) => Err(ResponseError::ProducerFenced),
    }
}

/// Aborts an ongoing transaction under a bumped epoch, so its producer is
/// fenced on every partition by the abort markers (Kafka's
/// PrepareEpochFence, then PrepareAbort with the bumped epoch). Under
/// `transaction.version` 2 the abort bumps once more, as Kafka's does (the
/// fence is not a client's, so the broker's level decides).
fn fence_and_abort(
    txn: &mut TxnMetadata,
    now_ms: i64,
    waiter: Waiter,
    server_tv: i16,
    version: i16,
) -> Transit {
    let fenced = if txn.failed_epoch_fence {
        txn.producer_epoch
    } else {
        txn.producer_epoch.saturating_add(1)
    };
    let mut target = TxnValue::of(txn);
    target.state = TxnState::PrepareAbort;
    target.last_update_ms = now_ms;
    let last_epoch = if server_tv >= TV_2 {
        target.producer_epoch = bumped(fenced);
        target.client_transaction_version = TV_2;
        fenced
    } else {
        target.producer_epoch = fenced;
        NO_PRODUCER_EPOCH
    };
    transit(txn, target, last_epoch, waiter, version)
}

/// The epoch a version 2 commit or abort moves to: one more, except at
/// `i16::MAX`, which only a fence reaches and which stays (Kafka's
/// `prepareAbortOrCommit`).
fn bumped(epoch: i16) -> i16 {
    epoch.saturating_add(1)
}

/// Kafka's tests of a version 2 EndTxn that repeats one already applied.
struct Retry {
    /// The epoch is one below the coordinator's: the bump was this
    /// request's.
    on_bump: bool,
    /// The id rotated: the request names the old id at its last epoch.
    on_overflow: bool,
}

impl Retry {
    fn of(txn: &TxnMetadata, producer_id: i64, producer_epoch: i16) -> Retry {
        let version_2 = txn.client_transaction_version >= TV_2;
        Retry {
            on_bump: version_2 && i32::from(txn.producer_epoch) == i32::from(producer_epoch) + 1,
            on_overflow: version_2
                && txn.previous_producer_id == producer_id
                && producer_epoch == i16::MAX - 1
                && txn.producer_epoch == 0,
        }
    }

    /// Kafka's `isValidEpoch` for a version 2 client: the current epoch
    /// where a new request may come, a retry's where only a retry may.
    fn valid_epoch(&self, txn: &TxnMetadata, producer_epoch: i16) -> bool {
        use TxnState::*;
        if txn.client_transaction_version < TV_2 {
            return producer_epoch == txn.producer_epoch;
        }
        match txn.state {
            Ongoing | Empty | Dead | PrepareEpochFence => producer_epoch == txn.producer_epoch,
            PrepareCommit | PrepareAbort => self.on_bump,
            CompleteCommit | CompleteAbort => {
                self.on_bump || self.on_overflow || producer_epoch == txn.producer_epoch
            }
        }
    }
}

/// EndTxn of a version 1 client: the epoch must be the current one and
/// stays.
fn end_v1(
    txn: &mut TxnMetadata,
    now_ms: i64,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    version: i16,
) -> Result<EndOutcome, ResponseError> {
    if txn.producer_id != producer_id {
        return Err(ResponseError::InvalidProducerIdMapping);
    }
    if producer_epoch != txn.producer_epoch {
        return Err(ResponseError::ProducerFenced);
    }
    if txn.pending.is_some() {
        return Err(ResponseError::ConcurrentTransactions);
    }
    match (txn.state, commit) {
        (TxnState::Ongoing, _) => {
            let mut target = TxnValue::of(txn);
            target.state = if commit {
                TxnState::PrepareCommit
            } else {
                TxnState::PrepareAbort
            };
            target.last_update_ms = now_ms;
            target.client_transaction_version = TV_0;
            let last_epoch = txn.last_producer_epoch;
            Ok(EndOutcome::Write(transit(
                txn,
                target,
                last_epoch,
                Waiter::EndTxn,
                version,
            )))
        }
        (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
            Ok(EndOutcome::Done(txn.producer_id, txn.producer_epoch))
        }
        (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
            Err(ResponseError::ConcurrentTransactions)
        }
        _ => Err(ResponseError::InvalidTxnState),
    }
}

/// Marks `txn` pending `target.state` and builds the record for it.
fn transit(
    txn: &mut TxnMetadata,
    target: TxnValue,
    last_epoch: i16,
    waiter: Waiter,
    version: i16,
) -> Transit {
    assert!(
        txn.pending.is_none(),
        "{} has a change in flight",
        txn.transactional_id
    );
    assert!(target.producer_id >= 0 && target.producer_epoch >= 0);
    txn.pending = Some(target.state);
    Transit {
        transactional_id: txn.transactional_id.clone(),
        record: Record {
            partition: txn.partition,
            key: records::encode_key(&txn.transactional_id),
            value: Some(records::encode_value(&target, version)),
        },
        waiter,
        target,
        last_producer_epoch: last_epoch,
    }
}

/// For a transaction just prepared (or found prepared at load): marks it
/// pending its Complete state and says which markers to write.
fn start_markers(txn: &mut TxnMetadata) -> Option<MarkerJob> {
    let (commit, complete) = match txn.state {
        TxnState::PrepareCommit => (true, TxnState::CompleteCommit),
        TxnState::PrepareAbort => (false, TxnState::CompleteAbort),
        _ => return None,
    };
    txn.pending = Some(complete);
    Some(MarkerJob {
        transactional_id: txn.transactional_id.clone(),
        txn_partition: txn.partition,
        producer_id: txn.producer_id,
        producer_epoch: txn.producer_epoch,
        commit,
        partitions: txn.partitions.iter().cloned().collect(),
    })
}
