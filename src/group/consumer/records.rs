//! Persistence of KIP-848 consumer groups: the ConsumerGroup* records of
//! `__consumer_offsets` (key versions 3 to 8), byte for byte as Kafka writes
//! them (group-coordinator/src/main/resources/common/message/*.json), so a
//! consumer group's members, epochs and assignments survive a restart.
//!
//! The coordinator keeps, per consumer group, the durable part of its state
//! as last written ([`DurableConsumerGroup`]: everything but timers). After
//! each call it compares the touched groups with what was written and
//! appends only the records whose content changed, so a heartbeat that
//! changes nothing durable writes nothing. At load, the records are replayed
//! into the same durable form and the live group is rebuilt from it, with a
//! fresh session for every member, as Kafka does.
//!
//! Invariant: for every loaded consumer group, `durable_consumers` holds
//! exactly what replaying its records gives; the live group differs from it
//! only in timers until the next `take_effects`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use super::assignor::Assignment;
use super::{ConsumerGroup, ConsumerMember, MemberState};
use crate::group::classic::{drop_if_unused, CONSUMER_PROTOCOL_TYPE};
use crate::group::coordinator::GroupCoordinator;
use crate::group::offsets_partition;
use crate::group::records::{encode_consumer_key, ConsumerRecordKind};
use crate::group::types::{GroupState, Record};
use crate::protocol::schema::{
    put_compact_length, put_compact_string, put_no_tagged_fields, Reader, RecordError,
};

/// ConsumerGroupMemberMetadataValue: who a member is and what it wants.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(in crate::group) struct MemberSubscription {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: BTreeSet<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

/// ConsumerGroupCurrentMemberAssignmentValue: where a member stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::group) struct MemberAssignment {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
}

impl Default for MemberAssignment {
    fn default() -> Self {
        MemberAssignment {
            member_epoch: 0,
            previous_member_epoch: 0,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
        }
    }
}

/// A member as its records describe it. Either half may be missing while
/// a log is replayed (Kafka writes them as separate records).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(in crate::group) struct DurableMember {
    pub subscription: Option<MemberSubscription>,
    pub assignment: Option<MemberAssignment>,
}

/// What Kafka keeps of a consumer group in `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(in crate::group) struct DurableConsumerGroup {
    pub group_epoch: i32,
    /// The subscribed topics that existed: name → (id, partition count).
    pub topics: BTreeMap<String, (Uuid, i32)>,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, DurableMember>,
    pub target: BTreeMap<String, Assignment>,
}

impl DurableConsumerGroup {
    pub fn of(group: &ConsumerGroup) -> DurableConsumerGroup {
        DurableConsumerGroup {
            group_epoch: group.group_epoch,
            topics: group.topics.clone(),
            assignment_epoch: group.assignment_epoch,
            members: group
                .members
                .iter()
                .map(|(member_id, member)| {
                    let durable = DurableMember {
                        subscription: Some(MemberSubscription {
                            instance_id: member.instance_id.clone(),
                            rack_id: member.rack_id.clone(),
                            client_id: member.client_id.clone(),
                            client_host: member.client_host.clone(),
                            subscribed_topic_names: member.subscribed_topic_names.clone(),
                            rebalance_timeout_ms: member.rebalance_timeout_ms,
                            server_assignor: member.server_assignor.clone(),
                        }),
                        assignment: Some(MemberAssignment {
                            member_epoch: member.member_epoch,
                            previous_member_epoch: member.previous_member_epoch,
                            state: member.state,
                            assigned: member.assigned.clone(),
                            pending_revocation: member.pending_revocation.clone(),
                        }),
                    };
                    (member_id.clone(), durable)
                })
                .collect(),
            target: group.target.clone(),
        }
    }

    /// The live group: every member gets a full session from `now_ms`, and
    /// one still revoking gets its rebalance timeout again.
    fn to_live(
        &self,
        default_assignor: &str,
        now_ms: i64,
        session_timeout_ms: i64,
    ) -> ConsumerGroup {
        let mut group = ConsumerGroup {
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            topics: self.topics.clone(),
            target: self.target.clone(),
            ..ConsumerGroup::default()
        };
        for (member_id, durable) in &self.members {
            let subscription = durable.subscription.clone().unwrap_or_default();
            let assignment = durable.assignment.clone().unwrap_or_default();
            let rebalance_deadline_ms = (assignment.state == MemberState::UnrevokedPartitions)
                .then(|| now_ms + i64::from(subscription.rebalance_timeout_ms));
            if let Some(instance_id) = &subscription.instance_id {
                group
                    .static_members
                    .insert(instance_id.clone(), member_id.clone());
            }
            let mut member = ConsumerMember {
                member_id: member_id.clone(),
                instance_id: subscription.instance_id,
                rack_id: subscription.rack_id,
                client_id: subscription.client_id,
                client_host: subscription.client_host,
                rebalance_timeout_ms: subscription.rebalance_timeout_ms,
                subscribed_topic_names: subscription.subscribed_topic_names,
                server_assignor: subscription.server_assignor,
                state: assignment.state,
                member_epoch: assignment.member_epoch,
                previous_member_epoch: assignment.previous_member_epoch,
                assigned: assignment.assigned,
                pending_revocation: assignment.pending_revocation,
                assignment_epochs: BTreeMap::new(),
                session_deadline_ms: now_ms + session_timeout_ms,
                rebalance_deadline_ms,
            };
            // Kafka 4.3 writes each partition's assignment epoch in the
            // record (KIP-1251); this format predates that field, so a
            // reloaded member holds all it has since its current epoch and
            // commits must carry that epoch until its next change.
            member.carry_assignment_epochs(&BTreeMap::new());
            group.members.insert(member_id.clone(), member);
        }
        group.assignor = group.preferred_assignor(default_assignor);
        group
    }

    /// Applies one record (`value` None is a tombstone). Returns false when
    /// the record deletes the whole group (a group epoch tombstone).
    fn apply(
        &mut self,
        kind: ConsumerRecordKind,
        value: Option<&[u8]>,
    ) -> Result<bool, RecordError> {
        let Some(value) = value else {
            match kind {
                ConsumerRecordKind::GroupEpoch => return Ok(false),
                ConsumerRecordKind::PartitionMetadata => self.topics.clear(),
                ConsumerRecordKind::TargetEpoch => self.assignment_epoch = 0,
                ConsumerRecordKind::MemberMetadata(member_id) => {
                    self.members.remove(&member_id);
                }
                ConsumerRecordKind::TargetMember(member_id) => {
                    self.target.remove(&member_id);
                }
                ConsumerRecordKind::CurrentAssignment(member_id) => {
                    if let Some(member) = self.members.get_mut(&member_id) {
                        member.assignment = None;
                        if member.subscription.is_none() {
                            self.members.remove(&member_id);
                        }
                    }
                }
            }
            return Ok(true);
        };
        // KIP-848 values are flexible from version 0, the only version
        // Kafka has written.
        let (mut reader, _) = Reader::value(value, 0, 0)?;
        match kind {
            ConsumerRecordKind::GroupEpoch => self.group_epoch = reader.i32()?,
            ConsumerRecordKind::PartitionMetadata => self.topics = read_topics(&mut reader)?,
            ConsumerRecordKind::TargetEpoch => self.assignment_epoch = reader.i32()?,
            ConsumerRecordKind::MemberMetadata(member_id) => {
                let subscription = read_subscription(&mut reader)?;
                self.members.entry(member_id).or_default().subscription = Some(subscription);
            }
            ConsumerRecordKind::TargetMember(member_id) => {
                let assignment = read_assignment(&mut reader)?;
                self.target.insert(member_id, assignment);
            }
            ConsumerRecordKind::CurrentAssignment(member_id) => {
                let assignment = MemberAssignment {
                    member_epoch: reader.i32()?,
                    previous_member_epoch: reader.i32()?,
                    state: member_state(reader.i8()?),
                    assigned: read_assignment(&mut reader)?,
                    pending_revocation: read_assignment(&mut reader)?,
                };
                self.members.entry(member_id).or_default().assignment = Some(assignment);
            }
        }
        Ok(true)
    }
}

impl GroupCoordinator {
    /// Replays one KIP-848 record into the durable and the live state.
    pub(in crate::group) fn replay_consumer(
        &mut self,
        now_ms: i64,
        group_id: &str,
        kind: ConsumerRecordKind,
        value: Option<&[u8]>,
    ) -> Result<(), RecordError> {
        let durable = self
            .durable_consumers
            .entry(group_id.to_string())
            .or_default();
        if !durable.apply(kind, value)? {
            self.durable_consumers.remove(group_id);
        }
        let session_timeout_ms = i64::from(self.config.consumer_session_timeout_ms);
        let default_assignor = self.config.consumer_assignors[0].clone();
        let live = self
            .durable_consumers
            .get(group_id)
            .map(|durable| durable.to_live(&default_assignor, now_ms, session_timeout_ms));
        if live.is_some() {
            self.group_or_create(group_id, now_ms);
        }
        self.with_group(group_id, |_, group| {
            match live {
                Some(live) => {
                    group.consumer = Some(live);
                    group.protocol_type = Some(CONSUMER_PROTOCOL_TYPE.to_string());
                    group.protocol_name = None;
                    group.leader_id = None;
                }
                None => {
                    if group.consumer.take().is_some() {
                        group.protocol_type = None;
                        group.transition(GroupState::Empty, now_ms);
                    }
                    drop_if_unused(group, now_ms);
                }
            }
            super::refresh_state(group, now_ms);
        });
        // Replayed state is written state: nothing to append for it.
        self.touched_consumers.remove(group_id);
        Ok(())
    }

    /// Appends the records that bring what is written of every touched
    /// consumer group up to its live state. Called by `take_effects`.
    pub(in crate::group) fn persist_consumer_groups(&mut self) {
        for group_id in std::mem::take(&mut self.touched_consumers) {
            let now = self
                .groups
                .get(&group_id)
                .and_then(|group| group.consumer.as_ref())
                .map(DurableConsumerGroup::of);
            let before = self.durable_consumers.get(&group_id);
            if before == now.as_ref() {
                continue;
            }
            let partition = offsets_partition(&group_id, self.config.offsets_topic_num_partitions);
            let records = changes(&group_id, before, now.as_ref());
            self.out
                .records
                .extend(records.into_iter().map(|(key, value)| Record {
                    partition,
                    key,
                    value,
                    txn: None,
                }));
            match now {
                Some(now) => self.durable_consumers.insert(group_id, now),
                None => self.durable_consumers.remove(&group_id),
            };
        }
    }

    /// Forgets what was written of the groups of an unloaded partition.
    pub(in crate::group) fn forget_consumer_groups(&mut self, group_ids: &[String]) {
        for group_id in group_ids {
            self.durable_consumers.remove(group_id);
            self.touched_consumers.remove(group_id);
        }
    }
}

/// The per-group map of what was written, kept by the coordinator.
pub(in crate::group) type DurableConsumerGroups = HashMap<String, DurableConsumerGroup>;

type KeyValue = (Bytes, Option<Bytes>);

/// The records that turn `before` into `after` (None: no consumer group),
/// in the order Kafka writes them: subscriptions, group epoch, target,
/// current assignments, and tombstones with the group epoch last.
fn changes(
    group_id: &str,
    before: Option<&DurableConsumerGroup>,
    after: Option<&DurableConsumerGroup>,
) -> Vec<KeyValue> {
    let empty = DurableConsumerGroup::default();
    let old = before.unwrap_or(&empty);
    let new = after.unwrap_or(&empty);
    let key = |kind: ConsumerRecordKind| encode_consumer_key(group_id, &kind);
    let mut out: Vec<KeyValue> = Vec::new();
    let old_member = |member_id: &str| old.members.get(member_id).cloned().unwrap_or_default();

    // Members that left: current assignment, target, then subscription.
    for member_id in old
        .members
        .keys()
        .filter(|id| !new.members.contains_key(*id))
    {
        out.push((
            key(ConsumerRecordKind::CurrentAssignment(member_id.clone())),
            None,
        ));
        if !new.target.contains_key(member_id) && old.target.contains_key(member_id) {
            out.push((
                key(ConsumerRecordKind::TargetMember(member_id.clone())),
                None,
            ));
        }
        out.push((
            key(ConsumerRecordKind::MemberMetadata(member_id.clone())),
            None,
        ));
    }
    if after.is_none() {
        if before.is_some() {
            for member_id in old
                .target
                .keys()
                .filter(|id| !old.members.contains_key(*id))
            {
                out.push((
                    key(ConsumerRecordKind::TargetMember(member_id.clone())),
                    None,
                ));
            }
            out.push((key(ConsumerRecordKind::TargetEpoch), None));
            out.push((key(ConsumerRecordKind::PartitionMetadata), None));
            out.push((key(ConsumerRecordKind::GroupEpoch), None));
        }
        return out;
    }
    for (member_id, member) in &new.members {
        if let Some(subscription) = &member.subscription {
            if old_member(member_id).subscription.as_ref() != Some(subscription) {
                let value = encode_subscription(subscription);
                out.push((
                    key(ConsumerRecordKind::MemberMetadata(member_id.clone())),
                    Some(value),
                ));
            }
        }
    }
    if before.is_none() || old.topics != new.topics {
        out.push((
            key(ConsumerRecordKind::PartitionMetadata),
            Some(encode_topics(&new.topics)),
        ));
    }
    if before.is_none() || old.group_epoch != new.group_epoch {
        out.push((
            key(ConsumerRecordKind::GroupEpoch),
            Some(encode_i32(new.group_epoch)),
        ));
    }
    for (member_id, assignment) in &new.target {
        if old.target.get(member_id) != Some(assignment) {
            let value = value_with(|buf| put_assignment(buf, assignment));
            out.push((
                key(ConsumerRecordKind::TargetMember(member_id.clone())),
                Some(value),
            ));
        }
    }
    for member_id in old.target.keys() {
        let member_left =
            old.members.contains_key(member_id) && !new.members.contains_key(member_id);
        if !new.target.contains_key(member_id) && !member_left {
            out.push((
                key(ConsumerRecordKind::TargetMember(member_id.clone())),
                None,
            ));
        }
    }
    if before.is_none() || old.assignment_epoch != new.assignment_epoch {
        out.push((
            key(ConsumerRecordKind::TargetEpoch),
            Some(encode_i32(new.assignment_epoch)),
        ));
    }
    for (member_id, member) in &new.members {
        if let Some(assignment) = &member.assignment {
            if old_member(member_id).assignment.as_ref() != Some(assignment) {
                let value = encode_current_assignment(assignment);
                out.push((
                    key(ConsumerRecordKind::CurrentAssignment(member_id.clone())),
                    Some(value),
                ));
            }
        }
    }
    out
}

/// A value: version 0, the fields `write` puts, no tagged fields.
fn value_with(write: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(0);
    write(&mut buf);
    put_no_tagged_fields(&mut buf);
    buf.freeze()
}

fn encode_i32(value: i32) -> Bytes {
    value_with(|buf| buf.put_i32(value))
}

fn encode_subscription(subscription: &MemberSubscription) -> Bytes {
    value_with(|buf| {
        put_compact_string(buf, subscription.instance_id.as_deref());
        put_compact_string(buf, subscription.rack_id.as_deref());
        put_compact_string(buf, Some(&subscription.client_id));
        put_compact_string(buf, Some(&subscription.client_host));
        put_compact_length(buf, Some(subscription.subscribed_topic_names.len()));
        for name in &subscription.subscribed_topic_names {
            put_compact_string(buf, Some(name));
        }
        // SubscribedTopicRegex: shoal refuses regex subscriptions.
        put_compact_string(buf, None);
        buf.put_i32(subscription.rebalance_timeout_ms);
        put_compact_string(buf, subscription.server_assignor.as_deref());
    })
}

fn read_subscription(reader: &mut Reader<'_>) -> Result<MemberSubscription, RecordError> {
    let instance_id = reader.nullable_string()?;
    let rack_id = reader.nullable_string()?;
    let client_id = reader.string()?;
    let client_host = reader.string()?;
    let count = reader.array_len()?;
    let mut subscribed_topic_names = BTreeSet::new();
    for _ in 0..count {
        subscribed_topic_names.insert(reader.string()?);
    }
    let _regex = reader.nullable_string()?;
    let rebalance_timeout_ms = reader.i32()?;
    let server_assignor = reader.nullable_string()?;
    // ClassicMemberMetadata is a tagged field: skipped with the others.
    reader.tagged_fields()?;
    Ok(MemberSubscription {
        instance_id,
        rack_id,
        client_id,
        client_host,
        subscribed_topic_names,
        rebalance_timeout_ms,
        server_assignor,
    })
}

/// ConsumerGroupPartitionMetadataValue, rack lists empty ("unavailable").
fn encode_topics(topics: &BTreeMap<String, (Uuid, i32)>) -> Bytes {
    value_with(|buf| {
        put_compact_length(buf, Some(topics.len()));
        for (name, (id, partitions)) in topics {
            buf.put_slice(id.as_bytes());
            put_compact_string(buf, Some(name));
            buf.put_i32(*partitions);
            put_compact_length(buf, Some(0));
            put_no_tagged_fields(buf);
        }
    })
}

fn read_topics(reader: &mut Reader<'_>) -> Result<BTreeMap<String, (Uuid, i32)>, RecordError> {
    let mut topics = BTreeMap::new();
    for _ in 0..reader.array_len()? {
        let id = reader.uuid()?;
        let name = reader.string()?;
        let partitions = reader.i32()?;
        for _ in 0..reader.array_len()? {
            reader.i32()?;
            for _ in 0..reader.array_len()? {
                reader.string()?;
            }
            reader.tagged_fields()?;
        }
        reader.tagged_fields()?;
        topics.insert(name, (id, partitions));
    }
    reader.tagged_fields()?;
    Ok(topics)
}

/// `[]TopicPartitions`: (topic id, partitions) per topic.
fn put_assignment(buf: &mut BytesMut, assignment: &Assignment) {
    put_compact_length(buf, Some(assignment.len()));
    for (topic_id, partitions) in assignment {
        buf.put_slice(topic_id.as_bytes());
        put_compact_length(buf, Some(partitions.len()));
        for partition in partitions {
            buf.put_i32(*partition);
        }
        put_no_tagged_fields(buf);
    }
}

fn read_assignment(reader: &mut Reader<'_>) -> Result<Assignment, RecordError> {
    let mut assignment = Assignment::new();
    for _ in 0..reader.array_len()? {
        let topic_id = reader.uuid()?;
        let mut partitions = BTreeSet::new();
        for _ in 0..reader.array_len()? {
            partitions.insert(reader.i32()?);
        }
        reader.tagged_fields()?;
        assignment.insert(topic_id, partitions);
    }
    Ok(assignment)
}

fn encode_current_assignment(assignment: &MemberAssignment) -> Bytes {
    value_with(|buf| {
        buf.put_i32(assignment.member_epoch);
        buf.put_i32(assignment.previous_member_epoch);
        buf.put_i8(match assignment.state {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
        });
        put_assignment(buf, &assignment.assigned);
        put_assignment(buf, &assignment.pending_revocation);
    })
}

/// Kafka's `MemberState` codes; UNKNOWN (127) and anything else reads as
/// Stable, from where the next heartbeat reconciles the member.
fn member_state(code: i8) -> MemberState {
    match code {
        1 => MemberState::UnrevokedPartitions,
        2 => MemberState::UnreleasedPartitions,
        _ => MemberState::Stable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::records::{decode_key, RecordKey};

    fn sample() -> DurableConsumerGroup {
        let topic = Uuid::from_u128(7);
        let member = |epoch: i32, partitions: &[i32]| DurableMember {
            subscription: Some(MemberSubscription {
                instance_id: (epoch == 3).then(|| "instance-a".to_string()),
                rack_id: None,
                client_id: "client".to_string(),
                client_host: "/127.0.0.1".to_string(),
                subscribed_topic_names: BTreeSet::from(["orders".to_string()]),
                rebalance_timeout_ms: 45_000,
                server_assignor: Some("uniform".to_string()),
            }),
            assignment: Some(MemberAssignment {
                member_epoch: epoch,
                previous_member_epoch: epoch - 1,
                state: if epoch == 3 {
                    MemberState::UnrevokedPartitions
                } else {
                    MemberState::Stable
                },
                assigned: Assignment::from([(topic, partitions.iter().copied().collect())]),
                pending_revocation: Assignment::new(),
            }),
        };
        DurableConsumerGroup {
            group_epoch: 4,
            topics: BTreeMap::from([("orders".to_string(), (topic, 6))]),
            assignment_epoch: 4,
            members: BTreeMap::from([
                ("m1".to_string(), member(3, &[0, 1, 2])),
                ("m2".to_string(), member(4, &[3, 4, 5])),
            ]),
            target: BTreeMap::from([
                (
                    "m1".to_string(),
                    Assignment::from([(topic, BTreeSet::from([0, 1, 2]))]),
                ),
                (
                    "m2".to_string(),
                    Assignment::from([(topic, BTreeSet::from([3, 4, 5]))]),
                ),
            ]),
        }
    }

    /// Replays `records` over `state` the way a load does.
    fn replay(state: &mut Option<DurableConsumerGroup>, records: &[KeyValue]) {
        for (key, value) in records {
            let Ok(RecordKey::Consumer { group, kind }) = decode_key(key) else {
                panic!("not a consumer record: {key:?}");
            };
            assert_eq!(group, "g");
            let durable = state.get_or_insert_with(DurableConsumerGroup::default);
            if !durable.apply(kind, value.as_deref()).expect("decodes") {
                *state = None;
            }
        }
    }

    #[test]
    fn records_replay_into_the_state_they_were_written_from() {
        let group = sample();
        let records = changes("g", None, Some(&group));
        let mut replayed = None;
        replay(&mut replayed, &records);
        assert_eq!(replayed.as_ref(), Some(&group));

        // A member leaves and the other moves on: only what changed is written.
        let mut next = group.clone();
        next.members.remove("m1");
        next.target.remove("m1");
        next.group_epoch = 5;
        let delta = changes("g", Some(&group), Some(&next));
        assert!(delta.len() < records.len(), "{delta:?}");
        replay(&mut replayed, &delta);
        assert_eq!(replayed.as_ref(), Some(&next));

        // Nothing durable changed: nothing written.
        assert!(changes("g", Some(&next), Some(&next)).is_empty());

        // The group goes: tombstones leave nothing.
        let gone = changes("g", Some(&next), None);
        assert!(gone.iter().all(|(_, value)| value.is_none()));
        replay(&mut replayed, &gone);
        assert_eq!(replayed, None);
    }

    #[test]
    fn group_epoch_value_matches_kafkas_bytes() {
        // ConsumerGroupMetadataKey v3 "g"; value v0 { Epoch 10 } + no tags.
        let records = changes(
            "g",
            None,
            Some(&DurableConsumerGroup {
                group_epoch: 10,
                ..DurableConsumerGroup::default()
            }),
        );
        let (key, value) = records
            .iter()
            .find(|(key, _)| key[..2] == [0, 3])
            .expect("epoch record");
        assert_eq!(&key[..], &[0, 3, 0, 1, b'g']);
        assert_eq!(value.as_deref(), Some(&[0, 0, 0, 0, 0, 10, 0][..]));
    }

    #[test]
    fn garbage_values_are_errors() {
        let mut group = DurableConsumerGroup::default();
        for value in [
            &[0u8][..],
            &[0, 1, 0, 0, 0, 1, 0],
            &[0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f],
        ] {
            assert!(group
                .apply(
                    ConsumerRecordKind::CurrentAssignment("m".to_string()),
                    Some(value)
                )
                .is_err());
        }
    }
}
