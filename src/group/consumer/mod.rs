//! The consumer group protocol of KIP-848: ConsumerGroupHeartbeat,
//! ConsumerGroupDescribe, and the timers behind them. Behaviour follows
//! Apache Kafka's `GroupMetadataManager.consumerGroupHeartbeat` and
//! `CurrentAssignmentBuilder`:
//!
//! - a member joins with epoch 0; a new member, a changed subscription or a
//!   change in the subscribed topics (created, grown) bumps the group epoch;
//! - when the group epoch is ahead of the target assignment's, the group's
//!   server assignor (`uniform` or `range`) computes a new target;
//! - each member moves to its target on its own heartbeats: first it gives
//!   up what it must revoke (it stays at its epoch until its heartbeat no
//!   longer reports those partitions), then it takes the epoch of the
//!   target and the partitions no other member still holds;
//! - a member whose epoch does not match is fenced (FENCED_MEMBER_EPOCH), an
//!   unknown one gets UNKNOWN_MEMBER_ID; one silent for
//!   `group.consumer.session.timeout.ms`, or holding partitions to revoke
//!   past its rebalance timeout, is removed by `tick`.
//!
//! A group id names either a classic group or a consumer group: a
//! non-empty group of one kind refuses members of the other, an empty one
//! changes kind. Committed offsets belong to the group whatever its kind.
//!
//! Persistence: the membership of consumer groups (members, epochs, target
//! and current assignments) is written to `__consumer_offsets` as Kafka's
//! ConsumerGroup* records by `records.rs`, so members keep their
//! ids, epochs and partitions across a coordinator restart.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

pub(in crate::group) mod assignor;
pub(in crate::group) mod records;
#[cfg(test)]
mod tests;

use crate::group::classic::{Group, CONSUMER_PROTOCOL_TYPE};
use crate::group::coordinator::GroupCoordinator;
use crate::group::types::*;
use assignor::{Assignment, AssignorMember};

/// From this ConsumerGroupHeartbeat version the member makes up its own id.
const HEARTBEAT_VERSION_CLIENT_MEMBER_ID: i16 = 1;
/// Members of consumer groups commit with OffsetCommit v9 or later, which
/// carries the member epoch.
const OFFSET_COMMIT_VERSION_MEMBER_EPOCH: i16 = 9;
/// Kafka's sentinel for "rebalance timeout unchanged".
const UNCHANGED_REBALANCE_TIMEOUT_MS: i32 = -1;

/// Where a member stands on its way to its target assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::group) enum MemberState {
    /// Holds its target (or all of it that is free), at the target epoch.
    Stable,
    /// Must give up `pending_revocation` before it moves on.
    UnrevokedPartitions,
    /// At the target epoch, waiting for partitions others still hold.
    UnreleasedPartitions,
}

#[derive(Debug, Clone, PartialEq)]
pub(in crate::group) struct ConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: BTreeSet<String>,
    pub server_assignor: Option<String>,
    pub state: MemberState,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
    /// KIP-1251: the member epoch at which the member got each partition
    /// of `assigned` and `pending_revocation`. A commit carrying an older
    /// member epoch is accepted for a partition held since that epoch.
    pub assignment_epochs: BTreeMap<(Uuid, i32), i32>,
    pub session_deadline_ms: i64,
    /// While partitions wait for revocation: when the member is fenced if
    /// it has not given them up.
    pub rebalance_deadline_ms: Option<i64>,
}

impl ConsumerMember {
    fn new(member_id: String) -> ConsumerMember {
        ConsumerMember {
            member_id,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout_ms: 0,
            subscribed_topic_names: BTreeSet::new(),
            server_assignor: None,
            state: MemberState::Stable,
            member_epoch: 0,
            previous_member_epoch: 0,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            assignment_epochs: BTreeMap::new(),
            session_deadline_ms: 0,
            rebalance_deadline_ms: None,
        }
    }

    fn is_reconciled_to(&self, epoch: i32) -> bool {
        self.state == MemberState::Stable && self.member_epoch == epoch
    }

    fn set_epoch(&mut self, epoch: i32) {
        self.previous_member_epoch = self.member_epoch;
        self.member_epoch = epoch;
    }

    /// Gives every partition the member holds its assignment epoch: the
    /// one it had in `earlier` if it was held then, else the member epoch.
    pub(in crate::group) fn carry_assignment_epochs(
        &mut self,
        earlier: &BTreeMap<(Uuid, i32), i32>,
    ) {
        let epoch = self.member_epoch;
        self.assignment_epochs = [&self.assigned, &self.pending_revocation]
            .into_iter()
            .flat_map(|assignment| {
                assignment.iter().flat_map(|(topic_id, partitions)| {
                    partitions
                        .iter()
                        .map(move |partition| (*topic_id, *partition))
                })
            })
            .map(|key| (key, earlier.get(&key).copied().unwrap_or(epoch)))
            .collect();
    }

    /// KIP-1251's commit check: the member's current epoch, or an older
    /// one no older than when it got each committed partition. `None` in
    /// `partitions` is a topic the group does not know.
    fn may_commit_at(
        &self,
        epoch: i32,
        mut partitions: impl Iterator<Item = Option<(Uuid, i32)>>,
    ) -> bool {
        epoch == self.member_epoch
            || (epoch < self.member_epoch
                && partitions.all(|key| {
                    key.and_then(|key| self.assignment_epochs.get(&key))
                        .is_some_and(|since| *since <= epoch)
                }))
    }
}

/// The KIP-848 side of a group: present while the group is a consumer
/// group.
#[derive(Debug, Clone, Default)]
pub(in crate::group) struct ConsumerGroup {
    pub group_epoch: i32,
    /// The epoch of `target`.
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    /// `group.instance.id` to member id.
    pub static_members: HashMap<String, String>,
    pub target: BTreeMap<String, Assignment>,
    /// The subscribed topics that exist, with their id and partition
    /// count, as of the last heartbeat (Kafka's subscription metadata).
    pub topics: BTreeMap<String, (Uuid, i32)>,
    /// The assignor that computed `target`.
    pub assignor: String,
}

impl ConsumerGroup {
    /// Kafka's `ConsumerGroup.updateState`.
    pub fn state(&self) -> GroupState {
        if self.members.is_empty() {
            GroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            GroupState::Assigning
        } else if self
            .members
            .values()
            .any(|member| !member.is_reconciled_to(self.assignment_epoch))
        {
            GroupState::Reconciling
        } else {
            GroupState::Stable
        }
    }

    pub fn subscribed_topic_names(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|member| member.subscribed_topic_names.iter().cloned())
            .collect()
    }

    /// Every partition some member holds or still has to revoke: those a
    /// member waiting for them cannot have yet.
    fn held_partitions(&self) -> BTreeSet<(Uuid, i32)> {
        self.members
            .values()
            .flat_map(|member| [&member.assigned, &member.pending_revocation])
            .flat_map(|assignment| {
                assignment.iter().flat_map(|(topic_id, partitions)| {
                    partitions
                        .iter()
                        .map(move |partition| (*topic_id, *partition))
                })
            })
            .collect()
    }

    /// The assignor most members ask for, else the broker's default.
    pub(in crate::group) fn preferred_assignor(&self, default: &str) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(name) = &member.server_assignor {
                *votes.entry(name).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(name, count)| (*count, std::cmp::Reverse(*name)))
            .map_or_else(|| default.to_string(), |(name, _)| name.to_string())
    }

    fn compute_target(&mut self, default_assignor: &str) {
        self.assignor = self.preferred_assignor(default_assignor);
        let members: Vec<AssignorMember<'_>> = self
            .members
            .values()
            .map(|member| AssignorMember {
                member_id: &member.member_id,
                subscribed: &member.subscribed_topic_names,
                previous: self.target.get(&member.member_id),
            })
            .collect();
        let target = assignor::assign(&self.assignor, &members, &self.topics);
        self.target = target;
        self.assignment_epoch = self.group_epoch;
    }

    fn topic_name(&self, topic_id: &Uuid) -> String {
        self.topics
            .iter()
            .find(|(_, (id, _))| id == topic_id)
            .map(|(name, _)| name.clone())
            .unwrap_or_default()
    }

    fn describe_assignment(&self, assignment: &Assignment) -> Vec<DescribedTopicPartitions> {
        assignment
            .iter()
            .map(|(topic_id, partitions)| DescribedTopicPartitions {
                topic_id: *topic_id,
                topic_name: self.topic_name(topic_id),
                partitions: partitions.iter().copied().collect(),
            })
            .collect()
    }

    /// The group as the classic DescribeGroups shows it: protocol type
    /// "consumer", the assignor as the protocol, members without metadata.
    pub fn describe_as_classic(&self, group: &Group) -> DescribedGroup {
        DescribedGroup {
            group_id: group.group_id.clone(),
            state: group.state,
            protocol_type: CONSUMER_PROTOCOL_TYPE.to_string(),
            protocol_name: self.assignor.clone(),
            members: self
                .members
                .values()
                .map(|member| DescribedMember {
                    member_id: member.member_id.clone(),
                    group_instance_id: member.instance_id.clone(),
                    client_id: member.client_id.clone(),
                    client_host: member.client_host.clone(),
                    metadata: Default::default(),
                    assignment: Default::default(),
                })
                .collect(),
        }
    }

    /// Drops a member (left, expired or fenced); its partitions become free
    /// and the group epoch moves so the others get a new target.
    fn remove_member(&mut self, member_id: &str) {
        let Some(member) = self.members.remove(member_id) else {
            return;
        };
        if let Some(instance_id) = &member.instance_id {
            if self.static_members.get(instance_id).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance_id);
            }
        }
        self.target.remove(member_id);
        self.group_epoch += 1;
    }
}

type Failure = (ResponseError, String);

fn fail<T>(error: ResponseError, message: impl Into<String>) -> Result<T, Failure> {
    Err((error, message.into()))
}

fn from_assignment(assignment: &Assignment) -> TopicPartitions {
    assignment
        .iter()
        .map(|(topic_id, partitions)| (*topic_id, partitions.iter().copied().collect()))
        .collect()
}

/// Whether the member still reports any of `revoking` as owned; a member
/// that reports nothing is assumed to own everything it had.
fn owns_any(owned: Option<&TopicPartitions>, revoking: &Assignment) -> bool {
    let Some(owned) = owned else {
        return true;
    };
    owned.iter().any(|(topic_id, partitions)| {
        revoking.get(topic_id).is_some_and(|revoked| {
            partitions
                .iter()
                .any(|partition| revoked.contains(partition))
        })
    })
}

fn is_subset(owned: Option<&TopicPartitions>, assigned: &Assignment) -> bool {
    owned.is_some_and(|owned| {
        owned.iter().all(|(topic_id, partitions)| {
            partitions.is_empty()
                || assigned
                    .get(topic_id)
                    .is_some_and(|set| partitions.iter().all(|partition| set.contains(partition)))
        })
    })
}

/// Kafka's `CurrentAssignmentBuilder`: one step of `member` towards
/// `target` at `target_epoch`. `held` is every partition some member holds.
fn reconcile(
    member: &ConsumerMember,
    target_epoch: i32,
    target: &Assignment,
    held: &BTreeSet<(Uuid, i32)>,
    owned: Option<&TopicPartitions>,
) -> ConsumerMember {
    let (epoch, assigned) = match member.state {
        MemberState::Stable if member.member_epoch == target_epoch => return member.clone(),
        MemberState::Stable | MemberState::UnreleasedPartitions => {
            (member.member_epoch, &member.assigned)
        }
        MemberState::UnrevokedPartitions => {
            if owns_any(owned, &member.pending_revocation) {
                return member.clone();
            }
            (member.member_epoch + 1, &member.assigned)
        }
    };
    let mut kept = Assignment::new();
    let mut revoking = Assignment::new();
    let mut incoming = Assignment::new();
    let mut unreleased = false;
    let topic_ids: BTreeSet<&Uuid> = target.keys().chain(assigned.keys()).collect();
    let empty = BTreeSet::new();
    for topic_id in topic_ids {
        let wanted = target.get(topic_id).unwrap_or(&empty);
        let current = assigned.get(topic_id).unwrap_or(&empty);
        let keep: BTreeSet<i32> = current.intersection(wanted).copied().collect();
        let revoke: BTreeSet<i32> = current.difference(&keep).copied().collect();
        let mut take: BTreeSet<i32> = wanted.difference(&keep).copied().collect();
        let before = take.len();
        take.retain(|partition| !held.contains(&(*topic_id, *partition)));
        unreleased |= take.len() != before;
        for (map, set) in [
            (&mut kept, keep),
            (&mut revoking, revoke),
            (&mut incoming, take),
        ] {
            if !set.is_empty() {
                map.insert(*topic_id, set);
            }
        }
    }
    let mut next = member.clone();
    if !revoking.is_empty() && owns_any(owned, &revoking) {
        next.state = MemberState::UnrevokedPartitions;
        next.set_epoch(epoch);
        next.assigned = kept;
        next.pending_revocation = revoking;
    } else {
        for (topic_id, partitions) in incoming {
            kept.entry(topic_id).or_default().extend(partitions);
        }
        next.state = if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
        next.set_epoch(target_epoch);
        next.assigned = kept;
        next.pending_revocation = Assignment::new();
    }
    if next.member_epoch == member.member_epoch {
        next.previous_member_epoch = member.previous_member_epoch;
    }
    next.carry_assignment_epochs(&member.assignment_epochs);
    next
}

impl GroupCoordinator {
    /// ConsumerGroupHeartbeat: joins, keeps alive, reconciles or removes a
    /// member of a consumer-protocol group. `topics` resolves a topic name
    /// to its id and partition count in the broker's current metadata.
    pub fn consumer_heartbeat(
        &mut self,
        now_ms: i64,
        request: ConsumerHeartbeatRequest,
        topics: TopicLookup<'_>,
    ) -> (ConsumerHeartbeatResponse, Effects) {
        self.touched_consumers.insert(request.group_id.clone());
        let response = match self.consumer_heartbeat_checked(now_ms, request, topics) {
            Ok(response) => response,
            Err((error, message)) => ConsumerHeartbeatResponse::failure(error, message),
        };
        (response, self.take_effects())
    }

    /// ConsumerGroupDescribe. A group that is unknown or classic answers
    /// GROUP_ID_NOT_FOUND.
    pub fn consumer_describe(&self, group_ids: &[String]) -> Vec<DescribedConsumerGroup> {
        group_ids
            .iter()
            .map(|group_id| {
                let found = self
                    .groups
                    .get(group_id)
                    .and_then(|group| Some((group, group.consumer.as_ref()?)));
                let Some((group, consumer)) = found else {
                    return DescribedConsumerGroup {
                        group_id: group_id.clone(),
                        error: Some(ResponseError::GroupIdNotFound),
                        error_message: Some(format!("Group {group_id} is not a consumer group.")),
                        state: GroupState::Dead,
                        group_epoch: -1,
                        assignment_epoch: -1,
                        assignor_name: String::new(),
                        members: Vec::new(),
                    };
                };
                DescribedConsumerGroup {
                    group_id: group_id.clone(),
                    error: None,
                    error_message: None,
                    state: group.state,
                    group_epoch: consumer.group_epoch,
                    assignment_epoch: consumer.assignment_epoch,
                    // As Kafka: what the members ask for now, so an empty
                    // group names the default, not the last one used.
                    assignor_name: consumer.preferred_assignor(&self.config.consumer_assignors[0]),
                    members: consumer
                        .members
                        .values()
                        .map(|member| DescribedConsumerMember {
                            member_id: member.member_id.clone(),
                            instance_id: member.instance_id.clone(),
                            rack_id: member.rack_id.clone(),
                            member_epoch: member.member_epoch,
                            client_id: member.client_id.clone(),
                            client_host: member.client_host.clone(),
                            subscribed_topic_names: member
                                .subscribed_topic_names
                                .iter()
                                .cloned()
                                .collect(),
                            subscribed_topic_regex: None,
                            assignment: consumer.describe_assignment(&member.assigned),
                            target_assignment: consumer.describe_assignment(
                                consumer
                                    .target
                                    .get(&member.member_id)
                                    .unwrap_or(&Assignment::new()),
                            ),
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// Removes members of consumer groups whose session expired, or who
    /// held partitions to revoke past their rebalance timeout.
    pub(in crate::group) fn tick_consumer_groups(&mut self, now_ms: i64) {
        for group in self.groups.values_mut() {
            let Some(consumer) = group.consumer.as_mut() else {
                continue;
            };
            let expired: Vec<(String, &'static str)> = consumer
                .members
                .values()
                .filter_map(|member| {
                    if member.session_deadline_ms <= now_ms {
                        Some((member.member_id.clone(), "session expired"))
                    } else if member.state == MemberState::UnrevokedPartitions
                        && member
                            .rebalance_deadline_ms
                            .is_some_and(|deadline| deadline <= now_ms)
                    {
                        Some((member.member_id.clone(), "did not revoke in time"))
                    } else {
                        None
                    }
                })
                .collect();
            if expired.is_empty() {
                continue;
            }
            self.touched_consumers.insert(group.group_id.clone());
            for (member_id, why) in expired {
                log::info!(
                    "group {}: member {member_id} removed: {why}",
                    group.group_id
                );
                consumer.remove_member(&member_id);
            }
            refresh_state(group, now_ms);
        }
    }

    /// OffsetCommit checks for a consumer-protocol group (Kafka's
    /// `ConsumerGroup.validateOffsetCommit`): a commit from outside the group
    /// is accepted while it has no members; a member must commit with v9+
    /// at its current member epoch, or (KIP-1251, Kafka 4.3) at an older
    /// one if it has held every partition it commits since that epoch: a
    /// commit sent while a heartbeat bumps the epoch is no zombie. The
    /// commit keeps the member alive.
    pub(in crate::group) fn validate_consumer_commit(
        &mut self,
        now_ms: i64,
        request: &CommitRequest,
    ) -> Option<Result<(), ResponseError>> {
        let session_timeout_ms = i64::from(self.config.consumer_session_timeout_ms);
        let consumer = self.groups.get_mut(&request.group_id)?.consumer.as_mut()?;
        if request.generation_id < 0 && consumer.members.is_empty() {
            return Some(Ok(()));
        }
        let Some(member) = consumer.members.get_mut(&request.member_id) else {
            return Some(Err(ResponseError::UnknownMemberId));
        };
        if request.api_version < OFFSET_COMMIT_VERSION_MEMBER_EPOCH {
            return Some(Err(ResponseError::UnsupportedVersion));
        }
        let topics = &consumer.topics;
        let partitions = request.offsets.iter().map(|offset| {
            topics
                .get(&offset.topic)
                .map(|(topic_id, _)| (*topic_id, offset.partition))
        });
        if !member.may_commit_at(request.generation_id, partitions) {
            return Some(Err(ResponseError::StaleMemberEpoch));
        }
        member.session_deadline_ms = now_ms + session_timeout_ms;
        Some(Ok(()))
    }

    /// OffsetFetch v9 from a member (Kafka's
    /// `ConsumerGroup.validateOffsetFetch`): in a consumer-protocol group it
    /// must be known and at its current epoch. Other groups check nothing.
    pub fn validate_consumer_fetch(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
    ) -> Option<ResponseError> {
        let consumer = self.groups.get(group_id)?.consumer.as_ref()?;
        match consumer.members.get(member_id) {
            None => Some(ResponseError::UnknownMemberId),
            Some(member) if member.member_epoch != member_epoch => {
                Some(ResponseError::StaleMemberEpoch)
            }
            Some(_) => None,
        }
    }

    fn consumer_heartbeat_checked(
        &mut self,
        now_ms: i64,
        mut request: ConsumerHeartbeatRequest,
        topics: TopicLookup<'_>,
    ) -> Result<ConsumerHeartbeatResponse, Failure> {
        self.validate_heartbeat(&request)?;
        if request.member_epoch == LEAVE_MEMBER_EPOCH
            || request.member_epoch == LEAVE_STATIC_MEMBER_EPOCH
        {
            return self.consumer_leave(now_ms, &request);
        }
        let joining = request.member_epoch == JOIN_MEMBER_EPOCH;
        let unknown = || {
            fail(
                ResponseError::UnknownMemberId,
                format!(
                    "Member {} is not a member of group {}.",
                    request.member_id, request.group_id
                ),
            )
        };
        match self.groups.get(&request.group_id) {
            None if !joining => return unknown(),
            Some(group) if group.consumer.is_none() => {
                let classic_in_use = !group.members.is_empty() || !group.pending_members.is_empty();
                if classic_in_use {
                    return fail(
                        ResponseError::GroupIdNotFound,
                        format!("Group {} is not a consumer group.", request.group_id),
                    );
                }
                if !joining {
                    return unknown();
                }
            }
            _ => {}
        }
        if request.member_id.is_empty() {
            request.member_id = self.new_uuid().to_string();
        }
        let config = self.config.clone();
        let group = self.group_or_create(&request.group_id, now_ms);
        if group.consumer.is_none() {
            // An empty classic group (or one only holding offsets) becomes a
            // consumer group; its offsets stay.
            group.consumer = Some(ConsumerGroup {
                assignor: config.consumer_assignors[0].clone(),
                ..ConsumerGroup::default()
            });
            group.protocol_type = Some(CONSUMER_PROTOCOL_TYPE.to_string());
            group.protocol_name = None;
            group.leader_id = None;
        }
        let group_id = group.group_id.clone();
        let result = heartbeat_member(group, &config, now_ms, request, topics);
        if let Some(group) = self.groups.get_mut(&group_id) {
            refresh_state(group, now_ms);
        }
        result
    }

    /// Kafka's `throwIfConsumerGroupHeartbeatRequestIsInvalid`.
    fn validate_heartbeat(&self, request: &ConsumerHeartbeatRequest) -> Result<(), Failure> {
        let invalid = |message: &str| fail(ResponseError::InvalidRequest, message);
        if request.group_id.is_empty() {
            return fail(ResponseError::InvalidGroupId, "GroupId can't be empty.");
        }
        if request.instance_id.as_deref() == Some("") {
            return invalid("InstanceId can't be empty.");
        }
        if request.rack_id.as_deref() == Some("") {
            return invalid("RackId can't be empty.");
        }
        let epoch = request.member_epoch;
        let member_id_needed =
            epoch != JOIN_MEMBER_EPOCH || request.api_version >= HEARTBEAT_VERSION_CLIENT_MEMBER_ID;
        if member_id_needed && request.member_id.is_empty() {
            return invalid("MemberId can't be empty.");
        }
        if epoch == JOIN_MEMBER_EPOCH {
            if request.rebalance_timeout_ms == UNCHANGED_REBALANCE_TIMEOUT_MS {
                return invalid("RebalanceTimeoutMs must be provided in first request.");
            }
            if request
                .topic_partitions
                .as_ref()
                .is_none_or(|owned| !owned.is_empty())
            {
                return invalid("TopicPartitions must be empty when (re-)joining.");
            }
            if request.subscribed_topic_names.is_none() && request.subscribed_topic_regex.is_none()
            {
                return invalid(
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                );
            }
        } else if epoch == LEAVE_STATIC_MEMBER_EPOCH {
            if request.instance_id.is_none() {
                return invalid("InstanceId can't be null.");
            }
        } else if epoch < LEAVE_STATIC_MEMBER_EPOCH {
            return invalid(&format!("MemberEpoch {epoch} is invalid."));
        }
        if request
            .subscribed_topic_regex
            .as_deref()
            .is_some_and(|regex| !regex.is_empty())
        {
            return fail(
                ResponseError::InvalidRequest,
                "SubscribedTopicRegex is not supported by shoal yet: subscribe by topic names.",
            );
        }
        if let Some(name) = &request.server_assignor {
            if !self.config.consumer_assignors.contains(name) {
                return fail(
                    ResponseError::UnsupportedAssignor,
                    format!("ServerAssignor {name} is not supported."),
                );
            }
        }
        Ok(())
    }

    /// A heartbeat with epoch -1 (leave) or -2 (a static member leaving
    /// for a while: it keeps its assignment until its session expires).
    fn consumer_leave(
        &mut self,
        now_ms: i64,
        request: &ConsumerHeartbeatRequest,
    ) -> Result<ConsumerHeartbeatResponse, Failure> {
        let Some(group) = self.groups.get_mut(&request.group_id) else {
            return fail(
                ResponseError::GroupIdNotFound,
                format!("Group {} not found.", request.group_id),
            );
        };
        let Some(consumer) = group.consumer.as_mut() else {
            return fail(
                ResponseError::GroupIdNotFound,
                format!("Group {} is not a consumer group.", request.group_id),
            );
        };
        let member_id = match &request.instance_id {
            None => request.member_id.clone(),
            Some(instance_id) => match consumer.static_members.get(instance_id) {
                None => {
                    return fail(
                        ResponseError::UnknownMemberId,
                        format!("Instance id {instance_id} is unknown."),
                    )
                }
                Some(current) if *current != request.member_id => {
                    return fail(
                        ResponseError::FencedInstanceId,
                        format!("Instance id {instance_id} belongs to member {current}."),
                    )
                }
                Some(current) => current.clone(),
            },
        };
        let Some(member) = consumer.members.get_mut(&member_id) else {
            return fail(
                ResponseError::UnknownMemberId,
                format!(
                    "Member {member_id} is not a member of group {}.",
                    request.group_id
                ),
            );
        };
        if request.member_epoch == LEAVE_STATIC_MEMBER_EPOCH {
            member.set_epoch(LEAVE_STATIC_MEMBER_EPOCH);
            member.pending_revocation.clear();
        } else {
            consumer.remove_member(&member_id);
        }
        refresh_state(group, now_ms);
        Ok(ConsumerHeartbeatResponse {
            member_id: Some(member_id),
            member_epoch: request.member_epoch,
            ..ConsumerHeartbeatResponse::default()
        })
    }
}

/// The heartbeat of a joining or known member of `group` (a consumer group).
fn heartbeat_member(
    group: &mut Group,
    config: &crate::group::GroupConfig,
    now_ms: i64,
    request: ConsumerHeartbeatRequest,
    topics: TopicLookup<'_>,
) -> Result<ConsumerHeartbeatResponse, Failure> {
    let consumer = group.consumer.as_mut().expect("a consumer group");
    let owned = request.topic_partitions.as_ref();
    let joining = request.member_epoch == JOIN_MEMBER_EPOCH;
    let member = find_member(consumer, config, &request)?;
    let is_new = !consumer.members.contains_key(&member.member_id);
    check_epoch(&member, request.member_epoch, owned)?;
    let mut updated = member.clone();
    if let Some(instance_id) = &request.instance_id {
        updated.instance_id = Some(instance_id.clone());
    }
    if let Some(rack_id) = &request.rack_id {
        updated.rack_id = Some(rack_id.clone());
    }
    if request.rebalance_timeout_ms != UNCHANGED_REBALANCE_TIMEOUT_MS {
        updated.rebalance_timeout_ms = request.rebalance_timeout_ms;
    }
    if let Some(name) = &request.server_assignor {
        updated.server_assignor = Some(name.clone());
    }
    if let Some(names) = &request.subscribed_topic_names {
        updated.subscribed_topic_names = names.iter().cloned().collect();
    }
    updated.client_id = request.client_id.clone();
    updated.client_host = request.client_host.clone();
    let mut bump = is_new
        || updated.subscribed_topic_names != member.subscribed_topic_names
        || updated.server_assignor != member.server_assignor;
    consumer
        .members
        .insert(updated.member_id.clone(), updated.clone());
    if let Some(instance_id) = &updated.instance_id {
        consumer
            .static_members
            .insert(instance_id.clone(), updated.member_id.clone());
    }
    // Subscription metadata: the subscribed topics that exist now.
    let metadata: BTreeMap<String, (Uuid, i32)> = consumer
        .subscribed_topic_names()
        .into_iter()
        .filter_map(|name| Some((name.clone(), topics(&name)?)))
        .collect();
    if metadata != consumer.topics {
        consumer.topics = metadata;
        bump = true;
    }
    if bump {
        consumer.group_epoch += 1;
    }
    if consumer.group_epoch > consumer.assignment_epoch {
        consumer.compute_target(&config.consumer_assignors[0]);
    }
    let target = consumer
        .target
        .get(&updated.member_id)
        .cloned()
        .unwrap_or_default();
    if !updated.is_reconciled_to(consumer.assignment_epoch) {
        let held = consumer.held_partitions();
        let next = reconcile(&updated, consumer.assignment_epoch, &target, &held, owned);
        if next != updated {
            let revoking_anew = next.state == MemberState::UnrevokedPartitions
                && (updated.state != MemberState::UnrevokedPartitions
                    || next.member_epoch != updated.member_epoch
                    || next.pending_revocation != updated.pending_revocation);
            updated = next;
            updated.rebalance_deadline_ms = match updated.state {
                MemberState::UnrevokedPartitions if revoking_anew => {
                    Some(now_ms + i64::from(updated.rebalance_timeout_ms))
                }
                MemberState::UnrevokedPartitions => updated.rebalance_deadline_ms,
                _ => None,
            };
        }
    }
    updated.session_deadline_ms = now_ms + i64::from(config.consumer_session_timeout_ms);
    let full_request = joining
        || (request.rebalance_timeout_ms != UNCHANGED_REBALANCE_TIMEOUT_MS
            && request.subscribed_topic_names.is_some()
            && owned.is_some());
    let assignment = (full_request || updated.assigned != member.assigned)
        .then(|| from_assignment(&updated.assigned));
    let response = ConsumerHeartbeatResponse {
        error: None,
        error_message: None,
        member_id: Some(updated.member_id.clone()),
        member_epoch: updated.member_epoch,
        heartbeat_interval_ms: config.consumer_heartbeat_interval_ms,
        assignment,
    };
    consumer.members.insert(updated.member_id.clone(), updated);
    Ok(response)
}

/// The member a heartbeat is about: existing, new (epoch 0), or a static
/// member taking over the assignment of its instance's previous member.
fn find_member(
    consumer: &mut ConsumerGroup,
    config: &crate::group::GroupConfig,
    request: &ConsumerHeartbeatRequest,
) -> Result<ConsumerMember, Failure> {
    let joining = request.member_epoch == JOIN_MEMBER_EPOCH;
    let member_id = &request.member_id;
    let unknown = || {
        fail(
            ResponseError::UnknownMemberId,
            format!("Member {member_id} is not a member of group."),
        )
    };
    let full = consumer.members.len() >= config.consumer_max_size
        && !consumer.members.contains_key(member_id);
    let Some(instance_id) = &request.instance_id else {
        return match consumer.members.get(member_id) {
            Some(member) => Ok(member.clone()),
            None if !joining => unknown(),
            None if full => fail(
                ResponseError::GroupMaxSizeReached,
                "The consumer group has reached its maximum capacity.",
            ),
            None => Ok(ConsumerMember::new(member_id.clone())),
        };
    };
    let current = consumer.static_members.get(instance_id).cloned();
    if !joining {
        return match current {
            None => unknown(),
            Some(current) if current != *member_id => fail(
                ResponseError::FencedInstanceId,
                format!("Instance id {instance_id} belongs to member {current}."),
            ),
            Some(current) => consumer
                .members
                .get(&current)
                .cloned()
                .map_or_else(unknown, Ok),
        };
    }
    let Some(previous_id) = current else {
        if full {
            return fail(
                ResponseError::GroupMaxSizeReached,
                "The consumer group has reached its maximum capacity.",
            );
        }
        return Ok(consumer
            .members
            .get(member_id)
            .cloned()
            .unwrap_or_else(|| ConsumerMember::new(member_id.clone())));
    };
    let Some(previous) = consumer.members.get(&previous_id) else {
        return Ok(ConsumerMember::new(member_id.clone()));
    };
    if previous.member_epoch != LEAVE_STATIC_MEMBER_EPOCH {
        return fail(
            ResponseError::UnreleasedInstanceId,
            format!("Static member {previous_id} with instance id {instance_id} is not released."),
        );
    }
    // The new member takes the old one's place, assignment and target; it
    // reconciles from epoch 0 without a new group epoch.
    let mut replacement = previous.clone();
    consumer.members.remove(&previous_id);
    replacement.member_id = member_id.clone();
    replacement.member_epoch = 0;
    replacement.previous_member_epoch = 0;
    replacement.assignment_epochs.clear();
    replacement.state = MemberState::Stable;
    if let Some(target) = consumer.target.remove(&previous_id) {
        consumer.target.insert(member_id.clone(), target);
    }
    consumer
        .members
        .insert(member_id.clone(), replacement.clone());
    consumer
        .static_members
        .insert(instance_id.clone(), member_id.clone());
    Ok(replacement)
}

/// Kafka's `throwIfConsumerGroupMemberEpochIsInvalid`: the member's epoch,
/// or its previous one when the answer with the new one may have been lost
/// (it then owns no more than its current assignment).
fn check_epoch(
    member: &ConsumerMember,
    received: i32,
    owned: Option<&TopicPartitions>,
) -> Result<(), Failure> {
    let fenced = |relation: &str| {
        fail(
            ResponseError::FencedMemberEpoch,
            format!(
                "The consumer group member has a {relation} member epoch ({received}) than the \
                 one known by the group coordinator ({}). The member must abandon all its \
                 partitions and rejoin.",
                member.member_epoch
            ),
        )
    };
    if received > member.member_epoch {
        return fenced("greater");
    }
    if received < member.member_epoch
        && (received != member.previous_member_epoch || !is_subset(owned, &member.assigned))
    {
        return fenced("smaller");
    }
    Ok(())
}

/// Sets a consumer group's `state` from its membership.
pub(in crate::group) fn refresh_state(group: &mut Group, now_ms: i64) {
    if let Some(state) = group.consumer.as_ref().map(ConsumerGroup::state) {
        if state != group.state {
            group.transition(state, now_ms);
        }
    }
}
