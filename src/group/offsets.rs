//! Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete and their
//! expiry under `offsets.retention.minutes` (KIP-211). Offsets pending in a
//! transaction are `txn_offsets.rs`'s; here they only hold things back
//! (OffsetFetch's `require_stable`, expiry).

use kafka_protocol::error::ResponseError;

use super::classic::{drop_if_unused, validate_member, Group, CONSUMER_PROTOCOL_TYPE};
use super::coordinator::GroupCoordinator;
use super::records;
use super::txn_offsets::{has_pending, remove_pending};
use super::types::*;

/// An offset as the coordinator keeps it: what OffsetFetch answers, and
/// where its record sits among the partition's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredOffset {
    pub committed: CommittedOffset,
    /// Grows with the record's position in its `__consumer_offsets`
    /// partition: the log offset when replayed, the order of the calls
    /// since (`GroupCoordinator::next_order`). A transaction's offset is
    /// made visible at its COMMIT only over an older one: Kafka keeps the
    /// most recent record when plain and transactional commits mix.
    pub order: i64,
}

impl GroupCoordinator {
    /// OffsetCommit. Generation -1 with an empty member id is a commit from
    /// outside group management (`assign()` consumers, tools): accepted
    /// while the group has no members. Members must name the current
    /// generation. One record per accepted partition.
    pub fn commit(
        &mut self,
        now_ms: i64,
        request: CommitRequest,
    ) -> (Vec<PartitionOffset>, Effects) {
        let results = match self.validate_commit(now_ms, &request) {
            Ok(()) => self.write_offsets(now_ms, &request.group_id, request.offsets, None),
            Err(error) => refuse_all(request.offsets, error),
        };
        (results, self.take_effects())
    }

    /// Writes one record per offset within `offset.metadata.max.bytes` to
    /// the validated group `group_id`: committed at once, or pending in
    /// `txn` until its transaction ends.
    pub(super) fn write_offsets(
        &mut self,
        now_ms: i64,
        group_id: &str,
        offsets: Vec<OffsetToCommit>,
        txn: Option<TxnProducer>,
    ) -> Vec<PartitionOffset> {
        let metadata_max = self.config.offset_metadata_max_bytes;
        let Some(mut group) = self.groups.remove(group_id) else {
            return refuse_all(offsets, ResponseError::CoordinatorNotAvailable);
        };
        let mut results = Vec::with_capacity(offsets.len());
        for offset in offsets {
            let metadata = offset.metadata.unwrap_or_default();
            if metadata.len() > metadata_max {
                results.push(PartitionOffset {
                    topic: offset.topic,
                    partition: offset.partition,
                    error: Some(ResponseError::OffsetMetadataTooLarge),
                    committed: None,
                });
                continue;
            }
            let committed = CommittedOffset {
                offset: offset.offset,
                leader_epoch: offset.leader_epoch,
                metadata,
                commit_timestamp_ms: now_ms,
            };
            self.out.records.push(Record {
                partition: group.partition,
                key: records::encode_offset_key(&group.group_id, &offset.topic, offset.partition),
                value: Some(records::encode_offset_value(&committed)),
                txn,
            });
            let stored = StoredOffset {
                committed: committed.clone(),
                order: self.next_order(),
            };
            let key = (offset.topic.clone(), offset.partition);
            match txn {
                None => {
                    group.offsets.insert(key, stored);
                }
                Some(txn) => self.add_pending(&mut group, txn.producer_id, key, stored),
            }
            results.push(PartitionOffset {
                topic: offset.topic,
                partition: offset.partition,
                error: None,
                committed: Some(committed),
            });
        }
        self.groups.insert(group.group_id.clone(), group);
        results
    }

    /// Kafka's `validateOffsetCommit` for classic groups. A member's
    /// accepted commit also counts as a heartbeat.
    fn validate_commit(
        &mut self,
        now_ms: i64,
        request: &CommitRequest,
    ) -> Result<(), ResponseError> {
        self.commit_target(now_ms, &request.group_id, request.generation_id)?;
        if let Some(verdict) = self.validate_consumer_commit(now_ms, request) {
            return verdict;
        }
        let Some(group) = self.groups.get_mut(&request.group_id) else {
            return Err(ResponseError::CoordinatorNotAvailable);
        };
        let instance_id = request.group_instance_id.as_deref();
        let from_member = validate_classic_commit(
            group,
            request.generation_id,
            &request.member_id,
            instance_id,
        )?;
        if !from_member && !group.is(GroupState::Empty) {
            return Err(ResponseError::UnknownMemberId);
        }
        if group.is(GroupState::CompletingRebalance) {
            return Err(ResponseError::RebalanceInProgress);
        }
        if let Some(member) = group.members.get_mut(&request.member_id) {
            member.session_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
        }
        Ok(())
    }

    /// Makes sure group `group_id`, which a commit (plain or transactional)
    /// names, exists: an unknown group is created (a simple group) for a
    /// commit from outside group management, else ILLEGAL_GENERATION.
    pub(super) fn commit_target(
        &mut self,
        now_ms: i64,
        group_id: &str,
        generation_id: i32,
    ) -> Result<(), ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        if !self.groups.contains_key(group_id) {
            if generation_id >= 0 {
                return Err(ResponseError::IllegalGeneration);
            }
            self.group_or_create(group_id, now_ms);
        }
        Ok(())
    }

    /// OffsetFetch for one group: the listed partitions (those never
    /// committed answer `committed: None`, offset -1), or with `None` every
    /// partition the group has committed. An unknown group is no error.
    /// With `require_stable` (v7+, KIP-447), a partition with offsets
    /// pending in an open transaction answers UNSTABLE_OFFSET_COMMIT, which
    /// the client retries until the transaction ends.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, i32)]>,
        require_stable: bool,
    ) -> Vec<PartitionOffset> {
        let group = self.groups.get(group_id);
        let answer = |key: &(String, i32), stored: Option<&StoredOffset>| {
            let unstable = require_stable && group.is_some_and(|group| has_pending(group, key));
            PartitionOffset {
                topic: key.0.clone(),
                partition: key.1,
                error: unstable.then_some(ResponseError::UnstableOffsetCommit),
                committed: stored
                    .filter(|_| !unstable)
                    .map(|stored| stored.committed.clone()),
            }
        };
        match partitions {
            Some(partitions) => partitions
                .iter()
                .map(|key| answer(key, group.and_then(|group| group.offsets.get(key))))
                .collect(),
            None => group
                .map(|group| {
                    group
                        .offsets
                        .iter()
                        .map(|(key, stored)| answer(key, Some(stored)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// OffsetDelete. Allowed for an Empty group, and for a consumer group
    /// with members on topics none of them subscribes to.
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> (Result<Vec<PartitionOffset>, ResponseError>, Effects) {
        let result = match self.groups.get_mut(group_id) {
            None => Err(ResponseError::GroupIdNotFound),
            Some(group) if group.is(GroupState::Dead) => Err(ResponseError::GroupIdNotFound),
            Some(group)
                if !group.is(GroupState::Empty)
                    && group.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) =>
            {
                Err(ResponseError::NonEmptyGroup)
            }
            Some(group) => {
                let subscribed = match group.is(GroupState::Empty) {
                    true => None,
                    false => group.subscribed_topics(),
                };
                let mut results = Vec::with_capacity(partitions.len());
                for (topic, partition) in partitions {
                    let in_use = subscribed
                        .as_ref()
                        .is_some_and(|topics| topics.contains(topic));
                    // Kafka writes the tombstone for a pending offset too:
                    // it ends that offset whatever the transaction does.
                    let key = (topic.clone(), *partition);
                    if !in_use
                        && (group.offsets.remove(&key).is_some() | remove_pending(group, &key))
                    {
                        self.out
                            .records
                            .push(offset_tombstone(group, topic, *partition));
                    }
                    results.push(PartitionOffset {
                        topic: topic.clone(),
                        partition: *partition,
                        error: in_use.then_some(ResponseError::GroupSubscribedToTopic),
                        committed: None,
                    });
                }
                Ok(results)
            }
        };
        (result, self.take_effects())
    }

    /// Expires offsets past `offsets.retention.minutes` and forgets empty
    /// groups left with none, at most once per check interval. The clock
    /// of an offset starts when its group became Empty (KIP-211); for groups
    /// without a protocol (simple consumers) and for topics a Stable
    /// consumer group no longer subscribes to, at the commit.
    pub(super) fn expire_offsets(&mut self, now_ms: i64) {
        if now_ms < self.next_offset_expiry_ms {
            return;
        }
        self.next_offset_expiry_ms = now_ms + self.config.offsets_retention_check_interval_ms;
        let retention_ms = self.config.offsets_retention_ms;
        let group_ids: Vec<String> = self.groups.keys().cloned().collect();
        for group_id in &group_ids {
            self.with_group(group_id, |this, group| {
                let expired = expired_offsets(group, now_ms, retention_ms);
                for (topic, partition) in expired {
                    group.offsets.remove(&(topic.clone(), partition));
                    this.out
                        .records
                        .push(offset_tombstone(group, &topic, partition));
                }
                if group.is(GroupState::Empty)
                    && group.offsets.is_empty()
                    && group.pending_members.is_empty()
                    && group.pending_txn.is_empty()
                {
                    this.delete_all(group, now_ms);
                }
                drop_if_unused(group, now_ms);
            });
        }
    }
}

/// The offsets of `group` past retention. An offset with one pending in a
/// transaction waits for the transaction, as in Kafka.
fn expired_offsets(group: &Group, now_ms: i64, retention_ms: i64) -> Vec<(String, i32)> {
    let expired = |base_ms: i64| now_ms.saturating_sub(base_ms) >= retention_ms;
    let keys_where = |keep: &dyn Fn(&(String, i32), &CommittedOffset) -> bool| {
        group
            .offsets
            .iter()
            .filter(|(key, stored)| keep(key, &stored.committed) && !has_pending(group, key))
            .map(|(key, _)| key.clone())
            .collect()
    };
    if group.protocol_type.is_none() {
        return keys_where(&|_, committed| expired(committed.commit_timestamp_ms));
    }
    if group.is(GroupState::Empty) {
        return keys_where(&|_, committed| {
            expired(
                group
                    .state_timestamp_ms
                    .unwrap_or(committed.commit_timestamp_ms),
            )
        });
    }
    if group.is(GroupState::Stable) {
        if let Some(subscribed) = group.subscribed_topics() {
            return keys_where(&|(topic, _), committed| {
                !subscribed.contains(topic) && expired(committed.commit_timestamp_ms)
            });
        }
    }
    Vec::new()
}

fn offset_tombstone(group: &Group, topic: &str, partition: i32) -> Record {
    Record {
        partition: group.partition,
        key: records::encode_offset_key(&group.group_id, topic, partition),
        value: None,
        txn: None,
    }
}

/// The checks of a commit (plain or transactional) to classic group
/// `group` that both make in Kafka: a commit naming a member (a generation,
/// a member id or an instance id) must come from a current member at the
/// current generation, unless it has no generation and the group is Empty.
/// True when the commit was checked as a member's.
pub(super) fn validate_classic_commit(
    group: &Group,
    generation_id: i32,
    member_id: &str,
    instance_id: Option<&str>,
) -> Result<bool, ResponseError> {
    if group.is(GroupState::Dead) {
        return Err(ResponseError::CoordinatorNotAvailable);
    }
    if generation_id < 0 && group.is(GroupState::Empty) {
        return Ok(false);
    }
    if generation_id < 0 && member_id.is_empty() && instance_id.is_none() {
        return Ok(false);
    }
    validate_member(group, member_id, instance_id)?;
    if generation_id != group.generation_id {
        return Err(ResponseError::IllegalGeneration);
    }
    Ok(true)
}

/// Every offset refused with `error`.
pub(super) fn refuse_all(
    offsets: Vec<OffsetToCommit>,
    error: ResponseError,
) -> Vec<PartitionOffset> {
    offsets
        .into_iter()
        .map(|offset| PartitionOffset {
            topic: offset.topic,
            partition: offset.partition,
            error: Some(error),
            committed: None,
        })
        .collect()
}
