//! Offsets committed inside a transaction (TxnOffsetCommit, KIP-98 and
//! KIP-447), as Kafka's group coordinator keeps them: pending per group and
//! producer id (`Group::pending_txn`), invisible to OffsetFetch, until the
//! producer's transaction ends. Its COMMIT or ABORT marker lands in the
//! group's `__consumer_offsets` partition, and `complete_txn` then makes the
//! offsets committed or drops them.
//!
//! The records are the plain OffsetCommit records, written in transactional
//! batches of the producer (`Record::txn`); `replay` keeps those pending
//! until the partition's marker for the producer is replayed in turn, so a
//! restart rebuilds exactly what was decided.
//!
//! Invariant: `open_txns` names, for each `__consumer_offsets` partition and
//! producer id, exactly the groups whose `pending_txn` holds that producer
//! (perhaps with no offsets left, after a tombstone), so a marker finds its
//! groups without a look at every group.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

use super::classic::{drop_if_unused, Group};
use super::coordinator::GroupCoordinator;
use super::offsets::{refuse_all, validate_classic_commit, StoredOffset};
use super::types::*;

impl GroupCoordinator {
    /// TxnOffsetCommit. Validated as Kafka validates it: like OffsetCommit,
    /// but the group's state does not matter (no REBALANCE_IN_PROGRESS),
    /// a request without member (before v3) is accepted in any state, and
    /// for a consumer-protocol group an older member epoch is
    /// ILLEGAL_GENERATION. One record per accepted partition, in a batch of
    /// the producer's transaction.
    pub fn txn_commit(
        &mut self,
        now_ms: i64,
        request: TxnCommitRequest,
    ) -> (Vec<PartitionOffset>, Effects) {
        let results = match self.validate_txn_commit(now_ms, &request) {
            Ok(()) => self.write_offsets(
                now_ms,
                &request.group_id,
                request.offsets,
                Some(request.producer),
            ),
            Err(error) => refuse_all(request.offsets, error),
        };
        (results, self.take_effects())
    }

    /// Kafka's `validateTransactionalOffsetCommit`.
    fn validate_txn_commit(
        &mut self,
        now_ms: i64,
        request: &TxnCommitRequest,
    ) -> Result<(), ResponseError> {
        self.commit_target(now_ms, &request.group_id, request.generation_id)?;
        let Some(group) = self.groups.get(&request.group_id) else {
            return Err(ResponseError::CoordinatorNotAvailable);
        };
        if let Some(consumer) = &group.consumer {
            if request.generation_id < 0 && consumer.members.is_empty() {
                return Ok(());
            }
            let member = consumer
                .members
                .get(&request.member_id)
                .ok_or(ResponseError::UnknownMemberId)?;
            return match request.generation_id.cmp(&member.member_epoch) {
                std::cmp::Ordering::Greater => Err(ResponseError::FencedMemberEpoch),
                std::cmp::Ordering::Less => Err(ResponseError::IllegalGeneration),
                std::cmp::Ordering::Equal => Ok(()),
            };
        }
        let instance_id = request.group_instance_id.as_deref();
        validate_classic_commit(
            group,
            request.generation_id,
            &request.member_id,
            instance_id,
        )
        .map(|_| ())
    }

    /// The end of producer `producer_id`'s transaction in `__consumer_offsets`
    /// partition `partition`, once its marker is there (appended, or read
    /// back at load): on COMMIT its pending offsets become committed, each
    /// unless a more recent one was committed meanwhile; on ABORT they are
    /// dropped. Nothing to write: the marker is the record. A marker with
    /// no pending offsets is no error (the transaction wrote none here).
    pub fn complete_txn(&mut self, now_ms: i64, partition: i32, producer_id: i64, commit: bool) {
        let Some(group_ids) = self.open_txns.remove(&(partition, producer_id)) else {
            return;
        };
        for group_id in group_ids {
            self.with_group(&group_id, |_, group| {
                let pending = group.pending_txn.remove(&producer_id).unwrap_or_default();
                if commit {
                    for (key, stored) in pending {
                        let newer = group
                            .offsets
                            .get(&key)
                            .is_none_or(|current| stored.order > current.order);
                        if newer {
                            group.offsets.insert(key, stored);
                        }
                    }
                }
                drop_if_unused(group, now_ms);
            });
        }
    }

    /// Replays an OffsetCommit record (Kafka's `OffsetMetadataManager.replay`):
    /// from a transactional batch (`producer_id` Some) the offset is pending
    /// until the producer's marker; otherwise committed. A tombstone removes
    /// the committed offset and the pending ones of every producer.
    pub(super) fn replay_offset(
        &mut self,
        now_ms: i64,
        record_offset: i64,
        producer_id: Option<i64>,
        key: (String, String, i32),
        value: Option<CommittedOffset>,
    ) {
        self.next_record_order = self.next_record_order.max(record_offset + 1);
        let (group_id, topic, partition) = key;
        let key = (topic, partition);
        let Some(committed) = value else {
            self.with_group(&group_id, |_, group| {
                group.offsets.remove(&key);
                remove_pending(group, &key);
                drop_if_unused(group, now_ms);
            });
            return;
        };
        let stored = StoredOffset {
            committed,
            order: record_offset,
        };
        self.group_or_create(&group_id, now_ms);
        let Some(mut group) = self.groups.remove(&group_id) else {
            return;
        };
        match producer_id {
            None => {
                group.offsets.insert(key, stored);
            }
            Some(producer_id) => self.add_pending(&mut group, producer_id, key, stored),
        }
        self.groups.insert(group_id, group);
    }

    /// Adds an offset pending in `producer_id`'s transaction to `group`
    /// (out of the map while it changes), replacing one the same
    /// transaction committed before.
    pub(super) fn add_pending(
        &mut self,
        group: &mut Group,
        producer_id: i64,
        key: (String, i32),
        stored: StoredOffset,
    ) {
        group
            .pending_txn
            .entry(producer_id)
            .or_default()
            .insert(key, stored);
        self.open_txns
            .entry((group.partition, producer_id))
            .or_default()
            .insert(group.group_id.clone());
    }

    /// Forgets the open transactions of a group that dies with offsets
    /// still pending (DeleteGroups): their markers find nothing to do.
    pub(super) fn forget_pending(&mut self, group: &mut Group) {
        for producer_id in std::mem::take(&mut group.pending_txn).into_keys() {
            let key = (group.partition, producer_id);
            if let Some(group_ids) = self.open_txns.get_mut(&key) {
                group_ids.remove(&group.group_id);
                if group_ids.is_empty() {
                    self.open_txns.remove(&key);
                }
            }
        }
    }

    /// A stand-in for the log position of a record written now, after
    /// every record written or replayed before.
    pub(super) fn next_order(&mut self) -> i64 {
        let order = self.next_record_order;
        self.next_record_order += 1;
        order
    }
}

/// Whether some open transaction has an offset pending for `key`.
pub(super) fn has_pending(group: &Group, key: &(String, i32)) -> bool {
    group
        .pending_txn
        .values()
        .any(|offsets| offsets.contains_key(key))
}

/// Removes `key` from every open transaction of `group`; true if one had
/// it. The transactions stay open (their markers are still to come).
pub(super) fn remove_pending(group: &mut Group, key: &(String, i32)) -> bool {
    let mut removed = false;
    for offsets in group.pending_txn.values_mut() {
        removed |= offsets.remove(key).is_some();
    }
    removed
}

/// Offsets pending per producer id.
pub(super) type PendingTxnOffsets = BTreeMap<i64, BTreeMap<(String, i32), StoredOffset>>;
