//! Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete and their
//! expiry under `offsets.retention.minutes` (KIP-211).

use kafka_protocol::error::ResponseError;

use super::classic::{drop_if_unused, validate_member, Group, CONSUMER_PROTOCOL_TYPE};
use super::coordinator::GroupCoordinator;
use super::records;
use super::types::*;

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
        let verdict = self.validate_commit(now_ms, &request);
        let metadata_max = self.config.offset_metadata_max_bytes;
        let mut results = Vec::with_capacity(request.offsets.len());
        let group = match verdict {
            Ok(()) => self.groups.get_mut(&request.group_id),
            Err(_) => None,
        };
        match group {
            None => {
                let error = verdict.err().unwrap_or(ResponseError::UnknownServerError);
                for offset in request.offsets {
                    results.push(PartitionOffset {
                        topic: offset.topic,
                        partition: offset.partition,
                        error: Some(error),
                        committed: None,
                    });
                }
            }
            Some(group) => {
                for offset in request.offsets {
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
                        key: records::encode_offset_key(
                            &group.group_id,
                            &offset.topic,
                            offset.partition,
                        ),
                        value: Some(records::encode_offset_value(&committed)),
                    });
                    group
                        .offsets
                        .insert((offset.topic.clone(), offset.partition), committed.clone());
                    results.push(PartitionOffset {
                        topic: offset.topic,
                        partition: offset.partition,
                        error: None,
                        committed: Some(committed),
                    });
                }
            }
        }
        (results, self.take_effects())
    }

    /// Kafka's `validateOffsetCommit` for classic groups. A member's
    /// accepted commit also counts as a heartbeat.
    fn validate_commit(
        &mut self,
        now_ms: i64,
        request: &CommitRequest,
    ) -> Result<(), ResponseError> {
        if request.group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        if !self.groups.contains_key(&request.group_id) {
            if request.generation_id >= 0 {
                return Err(ResponseError::IllegalGeneration);
            }
            self.group_or_create(&request.group_id, now_ms);
        }
        if let Some(verdict) = self.validate_consumer_commit(now_ms, request) {
            return verdict;
        }
        let Some(group) = self.groups.get_mut(&request.group_id) else {
            return Err(ResponseError::CoordinatorNotAvailable);
        };
        if group.is(GroupState::Dead) {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if request.generation_id < 0 && group.is(GroupState::Empty) {
            return Ok(());
        }
        let instance_id = request.group_instance_id.as_deref();
        if request.generation_id >= 0 || !request.member_id.is_empty() || instance_id.is_some() {
            validate_member(group, &request.member_id, instance_id)?;
            if request.generation_id != group.generation_id {
                return Err(ResponseError::IllegalGeneration);
            }
        } else if !group.is(GroupState::Empty) {
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

    /// OffsetFetch for one group: the listed partitions (those never
    /// committed answer `committed: None`, offset -1), or with `None` every
    /// partition the group has committed. An unknown group is no error.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Vec<PartitionOffset> {
        let group = self.groups.get(group_id);
        match partitions {
            Some(partitions) => partitions
                .iter()
                .map(|(topic, partition)| PartitionOffset {
                    topic: topic.clone(),
                    partition: *partition,
                    error: None,
                    committed: group
                        .and_then(|group| group.offsets.get(&(topic.clone(), *partition)))
                        .cloned(),
                })
                .collect(),
            None => group
                .map(|group| {
                    group
                        .offsets
                        .iter()
                        .map(|((topic, partition), committed)| PartitionOffset {
                            topic: topic.clone(),
                            partition: *partition,
                            error: None,
                            committed: Some(committed.clone()),
                        })
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
                    if !in_use && group.offsets.remove(&(topic.clone(), *partition)).is_some() {
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
                {
                    this.delete_all(group, now_ms);
                }
                drop_if_unused(group, now_ms);
            });
        }
    }
}

fn expired_offsets(group: &Group, now_ms: i64, retention_ms: i64) -> Vec<(String, i32)> {
    let expired = |base_ms: i64| now_ms.saturating_sub(base_ms) >= retention_ms;
    let keys_where = |keep: &dyn Fn(&(String, i32), &CommittedOffset) -> bool| {
        group
            .offsets
            .iter()
            .filter(|(key, committed)| keep(key, committed))
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
    }
}
