//! The group coordinator's front: the one `GroupCoordinator`, its state
//! shared by both protocols (groups by id, the effects of the current call,
//! the member id source), and what is not one protocol's: the timer tick that
//! routes to each, ListGroups, DeleteGroups, loading and unloading
//! `__consumer_offsets` partitions. The classic protocol is `classic/`, the
//! consumer protocol of KIP-848 `consumer/`, committed offsets `offsets.rs`.
//!
//! Invariant: every token passed to `join` or `sync` is answered exactly
//! once, by a `Completion` in the `Effects` of some later (or the same) call,
//! whatever happens to the member or the group in between.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;

use super::classic::{drop_if_unused, empty_group_value, load_group, Group};
use super::consumer::records::DurableConsumerGroups;
use super::records::{self, RecordError, RecordKey};
use super::types::*;
use super::{offsets_partition, GroupConfig};

pub struct GroupCoordinator {
    pub(super) config: GroupConfig,
    /// Dead groups are never kept: a group leaves the map when it dies.
    pub(super) groups: BTreeMap<String, Group>,
    /// With `member_id_count`, makes member ids unique across restarts
    /// without a random source inside the state machine.
    member_id_seed: u64,
    member_id_count: u64,
    /// Collected during one call, handed back at its end.
    pub(super) out: Effects,
    pub(super) next_offset_expiry_ms: i64,
    /// Consumer groups as their records last described them.
    pub(super) durable_consumers: DurableConsumerGroups,
    /// Consumer groups changed since the last `take_effects`.
    pub(super) touched_consumers: BTreeSet<String>,
    /// The groups with offsets pending in each open transaction, by
    /// `__consumer_offsets` partition and producer id (`txn_offsets.rs`).
    pub(super) open_txns: BTreeMap<(i32, i64), BTreeSet<String>>,
    /// See `StoredOffset::order`.
    pub(super) next_record_order: i64,
}

impl GroupCoordinator {
    /// `member_id_seed` must differ between runs of the broker (take it from
    /// a random source or the start time) so member ids never repeat.
    pub fn new(config: GroupConfig, member_id_seed: u64) -> GroupCoordinator {
        GroupCoordinator {
            config,
            groups: BTreeMap::new(),
            member_id_seed,
            member_id_count: 0,
            out: Effects::default(),
            next_offset_expiry_ms: i64::MIN,
            durable_consumers: DurableConsumerGroups::default(),
            touched_consumers: BTreeSet::new(),
            open_txns: BTreeMap::new(),
            next_record_order: 0,
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// Expires sessions, closes join and sync barriers whose time is up, and
    /// expires old offsets. A look at every group and member; the shard
    /// calls it on a timer (Kafka's timers resolve to about 100 ms too).
    pub fn tick(&mut self, now_ms: i64) -> Effects {
        let due: Vec<String> = self
            .groups
            .values()
            .filter(|group| group.has_due_timer(now_ms))
            .map(|group| group.group_id.clone())
            .collect();
        for group_id in &due {
            self.with_group(group_id, |this, group| this.tick_group(group, now_ms));
        }
        self.tick_consumer_groups(now_ms);
        self.expire_offsets(now_ms);
        self.take_effects()
    }

    /// ListGroups. An empty `states` filter lists every group.
    pub fn list_groups(&self, states: &[GroupState]) -> Vec<ListedGroup> {
        self.groups
            .values()
            .filter(|group| states.is_empty() || states.contains(&group.state))
            .map(|group| ListedGroup {
                group_id: group.group_id.clone(),
                group_type: group.group_type(),
                protocol_type: group.protocol_type.clone().unwrap_or_default(),
                state: group.state,
            })
            .collect()
    }

    /// Every group's state, members and committed offsets, for the
    /// broker's metrics.
    pub fn gauges(&self) -> Vec<GroupGauge> {
        self.groups
            .values()
            .map(|group| GroupGauge {
                group_id: group.group_id.clone(),
                state: group.state,
                members: group
                    .consumer
                    .as_ref()
                    .map_or(group.members.len(), |consumer| consumer.members.len()),
                offsets: group
                    .offsets
                    .iter()
                    .map(|((topic, partition), stored)| {
                        (topic.clone(), *partition, stored.committed.offset)
                    })
                    .collect(),
            })
            .collect()
    }

    /// DeleteGroups for one group: only an Empty group can go, with all its
    /// offsets.
    pub fn delete_group(
        &mut self,
        now_ms: i64,
        group_id: &str,
    ) -> (Option<ResponseError>, Effects) {
        let error = self
            .with_group(group_id, |this, group| match group.state {
                GroupState::Empty => {
                    this.delete_all(group, now_ms);
                    None
                }
                GroupState::Dead => Some(ResponseError::GroupIdNotFound),
                _ => Some(ResponseError::NonEmptyGroup),
            })
            .unwrap_or(Some(ResponseError::GroupIdNotFound));
        (error, self.take_effects())
    }

    /// Applies one `__consumer_offsets` record while the coordinator loads
    /// its partitions (`value` None is a tombstone): the record at log
    /// offset `offset`, of a transactional batch of `txn_producer_id` or
    /// of none. Loaded members get a full session from `now_ms` to
    /// heartbeat in, as in Kafka. The partition's transaction markers go to
    /// `complete_txn`, in log order with the records.
    pub fn replay(
        &mut self,
        now_ms: i64,
        offset: i64,
        txn_producer_id: Option<i64>,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), RecordError> {
        match records::decode_key(key)? {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => {
                let committed = value.map(records::decode_offset_value).transpose()?;
                let key = (group, topic, partition);
                self.replay_offset(now_ms, offset, txn_producer_id, key, committed);
            }
            RecordKey::Group { group } => match value {
                Some(value) => {
                    let value = records::decode_group_value(value)?;
                    load_group(self.group_or_create(&group, now_ms), value, now_ms);
                }
                None => {
                    self.with_group(&group, |_, group| {
                        load_group(group, empty_group_value(), now_ms);
                        drop_if_unused(group, now_ms);
                    });
                }
            },
            RecordKey::Consumer { group, kind } => {
                self.replay_consumer(now_ms, &group, kind, value)?;
            }
            RecordKey::Unsupported(_) => {}
        }
        Ok(())
    }

    /// Forgets every group of `__consumer_offsets` partition `partition`,
    /// answering their waiting requests with NOT_COORDINATOR (the clients
    /// look the coordinator up again). For a partition moving to another
    /// shard, and for recovery when appending records failed: unload, then
    /// `replay` the partition's log, and the state is what is durable.
    pub fn unload_partition(&mut self, partition: i32) -> Effects {
        let unloaded: Vec<String> = self
            .groups
            .values()
            .filter(|group| group.partition == partition)
            .map(|group| group.group_id.clone())
            .collect();
        self.forget_consumer_groups(&unloaded);
        self.open_txns
            .retain(|(txn_partition, _), _| *txn_partition != partition);
        for group_id in unloaded {
            let Some(group) = self.groups.remove(&group_id) else {
                continue;
            };
            for member in group.members.into_values() {
                if let Some(token) = member.awaiting_join {
                    let response =
                        JoinResponse::failure(ResponseError::NotCoordinator, &member.member_id);
                    self.answer_join(token, response);
                }
                if let Some(token) = member.awaiting_sync {
                    self.answer_sync(token, SyncResponse::failure(ResponseError::NotCoordinator));
                }
            }
        }
        self.take_effects()
    }

    pub(super) fn take_effects(&mut self) -> Effects {
        self.persist_consumer_groups();
        std::mem::take(&mut self.out)
    }

    /// Runs `f` on a group taken out of the map (so `f` can use `self`
    /// freely), putting it back unless it died.
    pub(super) fn with_group<R>(
        &mut self,
        group_id: &str,
        f: impl FnOnce(&mut Self, &mut Group) -> R,
    ) -> Option<R> {
        let mut group = self.groups.remove(group_id)?;
        let result = f(self, &mut group);
        if group.consumer.is_some() || self.durable_consumers.contains_key(group_id) {
            self.touched_consumers.insert(group_id.to_string());
        }
        if !group.is(GroupState::Dead) {
            self.groups.insert(group.group_id.clone(), group);
        }
        Some(result)
    }

    pub(super) fn group_or_create(&mut self, group_id: &str, now_ms: i64) -> &mut Group {
        let partition = offsets_partition(group_id, self.config.offsets_topic_num_partitions);
        self.groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id, partition, now_ms))
    }

    /// Tombstones for every offset, pending ones included (Kafka's
    /// `deleteAllOffsets`: their transactions then commit nothing here),
    /// and the group metadata, and the group dies.
    pub(super) fn delete_all(&mut self, group: &mut Group, now_ms: i64) {
        let mut keys: BTreeSet<(String, i32)> =
            std::mem::take(&mut group.offsets).into_keys().collect();
        keys.extend(
            group
                .pending_txn
                .values()
                .flat_map(|offsets| offsets.keys().cloned()),
        );
        self.forget_pending(group);
        for (topic, partition) in keys {
            self.out.records.push(Record {
                partition: group.partition,
                key: records::encode_offset_key(&group.group_id, &topic, partition),
                value: None,
                txn: None,
            });
        }
        self.out.records.push(Record {
            partition: group.partition,
            key: records::encode_group_key(&group.group_id),
            value: None,
            txn: None,
        });
        group.transition(GroupState::Dead, now_ms);
    }

    pub(super) fn answer_join(&mut self, token: RequestToken, response: JoinResponse) {
        self.out.completions.push(Completion::Join(token, response));
    }

    pub(super) fn answer_sync(&mut self, token: RequestToken, response: SyncResponse) {
        self.out.completions.push(Completion::Sync(token, response));
    }

    /// A UUID no other member of any run of the broker gets.
    pub(super) fn new_uuid(&mut self) -> uuid::Uuid {
        self.member_id_count += 1;
        uuid::Uuid::from_u64_pair(self.member_id_seed, self.member_id_count)
    }
}
