//! A classic group and its members: the data and the rules that need no
//! clock (protocol choice, leader succession, static member bookkeeping).
//! The transitions that involve time and answers live in `mod.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use indexmap::IndexMap;

use crate::group::consumer::ConsumerGroup;
use crate::group::offsets::StoredOffset;
use crate::group::txn_offsets::PendingTxnOffsets;
use crate::group::types::{GroupState, GroupType, JoinMember, RequestToken};

/// The protocol type of Kafka consumers, whose subscriptions the coordinator
/// can read (for OffsetDelete's GROUP_SUBSCRIBED_TO_TOPIC).
pub(in crate::group) const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

#[derive(Debug, Clone)]
pub(in crate::group) struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// Protocol name and metadata, most preferred first.
    pub protocols: Vec<(String, Bytes)>,
    /// What the leader assigned in the current generation.
    pub assignment: Bytes,
    pub awaiting_join: Option<RequestToken>,
    pub awaiting_sync: Option<RequestToken>,
    /// Joined but not yet through a completed join barrier: such a member
    /// has no generation to heartbeat with, so its deadline is the new-member
    /// join timeout and waiting does not keep it alive.
    pub is_new: bool,
    pub session_deadline_ms: i64,
}

impl Member {
    /// The member's metadata for `protocol`, empty when it has none.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }

    /// Whether a rejoin brings exactly the protocols the member has.
    pub fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// The member's most preferred protocol among `candidates`.
    fn vote<'a>(&'a self, candidates: &[&str]) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .find(|name| candidates.contains(name))
    }

    /// Whether an expired session deadline still spares the member: one
    /// waiting in a barrier is alive by definition, unless it is new.
    pub fn has_satisfied_heartbeat(&self) -> bool {
        !self.is_new && (self.awaiting_join.is_some() || self.awaiting_sync.is_some())
    }
}

/// What the join barrier is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::group) enum JoinTimerKind {
    /// The first rebalance of an empty group: wait `delay_ms` for more
    /// members, and again while members keep arriving, up to `remaining_ms`.
    Initial { delay_ms: i32, remaining_ms: i32 },
    /// Every known member must rejoin within the rebalance timeout.
    Rebalance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::group) struct JoinTimer {
    pub deadline_ms: i64,
    pub kind: JoinTimerKind,
}

#[derive(Debug, Clone)]
pub(in crate::group) struct Group {
    pub group_id: String,
    /// Its `__consumer_offsets` partition.
    pub partition: i32,
    pub state: GroupState,
    pub previous_state: GroupState,
    /// When the group entered its current state (`currentStateTimestamp`).
    pub state_timestamp_ms: Option<i64>,
    pub generation_id: i32,
    /// None for a group that only holds offsets (simple consumers, tools).
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    /// In join order: the leader's successor is the oldest member.
    pub members: IndexMap<String, Member>,
    /// `group.instance.id` to its current member id.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, to their deadline.
    pub pending_members: BTreeMap<String, i64>,
    /// Members of the current generation that have not yet sent SyncGroup.
    pub pending_sync: BTreeSet<String>,
    pub join_timer: Option<JoinTimer>,
    pub sync_deadline_ms: Option<i64>,
    /// A member arrived during the initial delay: extend it once more.
    pub new_member_added: bool,
    pub offsets: BTreeMap<(String, i32), StoredOffset>,
    /// Offsets of open transactions by producer id (`txn_offsets.rs`).
    pub pending_txn: PendingTxnOffsets,
    /// Set while the group is a consumer-protocol group (KIP-848): then the
    /// classic membership above is empty, and this holds the members.
    pub consumer: Option<ConsumerGroup>,
}

impl Group {
    pub fn new(group_id: &str, partition: i32, now_ms: i64) -> Group {
        Group {
            group_id: group_id.to_string(),
            partition,
            state: GroupState::Empty,
            previous_state: GroupState::Empty,
            state_timestamp_ms: Some(now_ms),
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: IndexMap::new(),
            static_members: HashMap::new(),
            pending_members: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            join_timer: None,
            sync_deadline_ms: None,
            new_member_added: false,
            offsets: BTreeMap::new(),
            pending_txn: PendingTxnOffsets::new(),
            consumer: None,
        }
    }

    pub fn transition(&mut self, state: GroupState, now_ms: i64) {
        self.previous_state = self.state;
        self.state = state;
        self.state_timestamp_ms = Some(now_ms);
    }

    pub fn group_type(&self) -> GroupType {
        match self.consumer {
            Some(_) => GroupType::Consumer,
            None => GroupType::Classic,
        }
    }

    pub fn is(&self, state: GroupState) -> bool {
        self.state == state
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    /// The longest rebalance timeout of any member: how long the join
    /// barrier waits.
    pub fn rebalance_timeout_ms(&self) -> i32 {
        self.members
            .values()
            .map(|member| member.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }

    /// Whether the join barrier is the first rebalance's delay.
    pub fn in_initial_delay(&self) -> bool {
        matches!(
            self.join_timer,
            Some(JoinTimer {
                kind: JoinTimerKind::Initial { .. },
                ..
            })
        )
    }

    /// Whether `tick` has anything to do for this group at `now_ms`.
    pub fn has_due_timer(&self, now_ms: i64) -> bool {
        self.join_timer
            .is_some_and(|timer| timer.deadline_ms <= now_ms)
            || self
                .sync_deadline_ms
                .is_some_and(|deadline_ms| deadline_ms <= now_ms)
            || self
                .pending_members
                .values()
                .any(|deadline_ms| *deadline_ms <= now_ms)
            || self.members.values().any(|member| {
                member.session_deadline_ms <= now_ms && !member.has_satisfied_heartbeat()
            })
    }

    pub fn awaiting_join_count(&self) -> usize {
        self.members
            .values()
            .filter(|member| member.awaiting_join.is_some())
            .count()
    }

    pub fn has_all_members_joined(&self) -> bool {
        self.awaiting_join_count() == self.members.len() && self.pending_members.is_empty()
    }

    /// Protocols every member supports, in the oldest member's order.
    fn candidate_protocols(&self) -> Vec<&str> {
        let Some(first) = self.members.values().next() else {
            return Vec::new();
        };
        first
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| {
                self.members
                    .values()
                    .all(|member| member.protocols.iter().any(|(other, _)| other == name))
            })
            .collect()
    }

    /// Whether a member with these protocols could join: an empty group
    /// takes any non-empty offer; otherwise the type must match and one
    /// protocol must be supported by every member.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && self
                .candidate_protocols()
                .iter()
                .any(|candidate| protocols.iter().any(|(name, _)| name == candidate))
    }

    /// The protocol for the next generation: each member votes for its most
    /// preferred candidate; the most votes win, ties going to the candidate
    /// the oldest member prefers.
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes = vec![0usize; candidates.len()];
        for member in self.members.values() {
            if let Some(choice) = member.vote(&candidates) {
                if let Some(index) = candidates.iter().position(|name| *name == choice) {
                    votes[index] += 1;
                }
            }
        }
        let mut best: Option<usize> = None;
        for (index, count) in votes.iter().enumerate() {
            if best.is_none_or(|best| *count > votes[best]) {
                best = Some(index);
            }
        }
        best.map(|index| candidates[index].to_string())
    }

    pub fn add_member(&mut self, member: Member, protocol_type: &str) {
        if self.members.is_empty() {
            self.protocol_type = Some(protocol_type.to_string());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member.member_id.clone());
        }
        if let Some(instance_id) = &member.group_instance_id {
            self.static_members
                .insert(instance_id.clone(), member.member_id.clone());
        }
        self.pending_members.remove(&member.member_id);
        self.members.insert(member.member_id.clone(), member);
    }

    /// Removes a member; the oldest remaining member succeeds a leader.
    pub fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let removed = self.members.shift_remove(member_id);
        if let Some(instance_id) = removed.as_ref().and_then(|m| m.group_instance_id.as_ref()) {
            if self.static_members.get(instance_id).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance_id);
            }
        }
        if self.is_leader(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
        self.pending_members.remove(member_id);
        self.pending_sync.remove(member_id);
        removed
    }

    /// Gives a static member a new member id, keeping everything else
    /// (its place, its assignment, its leadership). Returns the old member's
    /// waiting tokens, which the caller answers with FENCED_INSTANCE_ID.
    pub fn replace_static_member(
        &mut self,
        instance_id: &str,
        old_member_id: &str,
        new_member_id: &str,
    ) -> (Option<RequestToken>, Option<RequestToken>) {
        let Some(index) = self.members.get_index_of(old_member_id) else {
            return (None, None);
        };
        let (_, mut member) = self
            .members
            .shift_remove_index(index)
            .expect("index just looked up");
        let fenced = (member.awaiting_join.take(), member.awaiting_sync.take());
        member.member_id = new_member_id.to_string();
        self.members
            .shift_insert(index, new_member_id.to_string(), member);
        if self.is_leader(old_member_id) {
            self.leader_id = Some(new_member_id.to_string());
        }
        if self.pending_sync.remove(old_member_id) {
            self.pending_sync.insert(new_member_id.to_string());
        }
        self.static_members
            .insert(instance_id.to_string(), new_member_id.to_string());
        fenced
    }

    /// If the leader has not rejoined, hands leadership to the oldest member
    /// that has. False when nobody rejoined (or there is no leader).
    pub fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader_id) = &self.leader_id else {
            return false;
        };
        if self
            .members
            .get(leader_id)
            .is_some_and(|leader| leader.awaiting_join.is_some())
        {
            return true;
        }
        match self
            .members
            .values()
            .find(|member| member.awaiting_join.is_some())
        {
            Some(member) => {
                self.leader_id = Some(member.member_id.clone());
                true
            }
            None => false,
        }
    }

    /// The member list the leader gets in its JoinGroup response.
    pub fn members_for_leader(&self) -> Vec<JoinMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|member| JoinMember {
                member_id: member.member_id.clone(),
                group_instance_id: member.group_instance_id.clone(),
                metadata: member.metadata(protocol),
            })
            .collect()
    }

    /// Topics the members of a consumer group subscribe to, read from their
    /// ConsumerProtocolSubscription metadata; None when the group is not a
    /// consumer group or a subscription cannot be read.
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if let Some(consumer) = &self.consumer {
            return Some(consumer.subscribed_topic_names());
        }
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = BTreeSet::new();
        for member in self.members.values() {
            topics.extend(subscription_topics(&member.metadata(protocol))?);
        }
        Some(topics)
    }
}

/// The topics of a ConsumerProtocolSubscription (every version starts with
/// `version: int16, topics: [string]`, non-flexible).
fn subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut reader = crate::protocol::schema::Reader::new(metadata, false);
    reader.i16().ok()?;
    let count = reader.array_len().ok()?;
    (0..count).map(|_| reader.string().ok()).collect()
}
