//! The classic group protocol: JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! DescribeGroups, the timers behind them, and the group metadata record.
//! Behaviour follows Apache Kafka's `GroupMetadataManager` for classic
//! groups; where this module is silent, Kafka's rules apply. `group.rs`
//! holds a group's data and the rules that need no clock; `tests.rs` drives
//! the protocol as clients would.
//!
//! Invariant: every token passed to `join` or `sync` is answered exactly
//! once, by a `Completion` in the `Effects` of some later (or the same) call,
//! whatever happens to the member or the group in between.

mod group;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use crate::group::coordinator::GroupCoordinator;
use crate::group::records::{self, GroupValue, MemberValue};
use crate::group::types::*;
pub(in crate::group) use group::{Group, JoinTimer, JoinTimerKind, Member, CONSUMER_PROTOCOL_TYPE};

/// From this JoinGroup version a new member first gets MEMBER_ID_REQUIRED
/// (KIP-394).
const JOIN_VERSION_REQUIRES_MEMBER_ID: i16 = 4;
/// From this JoinGroup version a static leader rejoining a stable group is
/// told to skip the assignment (KIP-814).
const JOIN_VERSION_SKIPS_ASSIGNMENT: i16 = 9;

impl GroupCoordinator {
    /// JoinGroup. The answer for `token` is a `Completion::Join` in these
    /// effects or in those of a later call (when the join barrier closes).
    pub fn join(&mut self, now_ms: i64, token: RequestToken, request: JoinRequest) -> Effects {
        self.join_group(now_ms, token, request);
        self.take_effects()
    }

    /// SyncGroup. The answer for `token` is a `Completion::Sync` in these
    /// effects or in those of a later call (when the leader syncs).
    pub fn sync(&mut self, now_ms: i64, token: RequestToken, request: SyncRequest) -> Effects {
        let group_id = request.group_id.clone();
        if group_id.is_empty() {
            self.answer_sync(token, SyncResponse::failure(ResponseError::InvalidGroupId));
        } else if self
            .with_group(&group_id, |this, group| {
                this.sync_group(group, now_ms, token, request)
            })
            .is_none()
        {
            self.answer_sync(token, SyncResponse::failure(ResponseError::UnknownMemberId));
        }
        self.take_effects()
    }

    /// Heartbeat: keeps the member's session alive and tells it whether to
    /// rejoin. Changes no durable state, so it has no effects.
    pub fn heartbeat(&mut self, now_ms: i64, request: &HeartbeatRequest) -> Option<ResponseError> {
        if request.group_id.is_empty() {
            return Some(ResponseError::InvalidGroupId);
        }
        let Some(group) = self.groups.get_mut(&request.group_id) else {
            return Some(ResponseError::UnknownMemberId);
        };
        if let Err(error) = validate_member(
            group,
            &request.member_id,
            request.group_instance_id.as_deref(),
        ) {
            return Some(error);
        }
        if request.generation_id != group.generation_id {
            return Some(ResponseError::IllegalGeneration);
        }
        let rebalancing = group.is(GroupState::PreparingRebalance);
        let empty = group.is(GroupState::Empty);
        match group.members.get_mut(&request.member_id) {
            Some(member) if !empty => {
                member.session_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
                rebalancing.then_some(ResponseError::RebalanceInProgress)
            }
            _ => Some(ResponseError::UnknownMemberId),
        }
    }

    /// LeaveGroup, batched as in v3+: each member by id, or by
    /// `group.instance.id` (then a non-empty id must match it).
    pub fn leave(
        &mut self,
        now_ms: i64,
        group_id: &str,
        members: Vec<LeavingMember>,
    ) -> (LeaveResponse, Effects) {
        let response = self
            .with_group(group_id, |this, group| {
                this.leave_group(group, now_ms, members)
            })
            .unwrap_or(LeaveResponse {
                error: Some(ResponseError::UnknownMemberId),
                members: Vec::new(),
            });
        (response, self.take_effects())
    }

    /// DescribeGroups for one group. Metadata, assignments and the protocol
    /// name are shown only when the group is Stable, as Kafka does.
    pub fn describe_group(&self, group_id: &str) -> DescribedGroup {
        let Some(group) = self.groups.get(group_id) else {
            return DescribedGroup {
                group_id: group_id.to_string(),
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol_name: String::new(),
                members: Vec::new(),
            };
        };
        if let Some(consumer) = &group.consumer {
            return consumer.describe_as_classic(group);
        }
        let stable = group.is(GroupState::Stable);
        let protocol = group.protocol_name.clone().unwrap_or_default();
        DescribedGroup {
            group_id: group.group_id.clone(),
            state: group.state,
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol_name: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: group
                .members
                .values()
                .map(|member| DescribedMember {
                    member_id: member.member_id.clone(),
                    group_instance_id: member.group_instance_id.clone(),
                    client_id: member.client_id.clone(),
                    client_host: member.client_host.clone(),
                    metadata: if stable {
                        member.metadata(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        member.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }

    fn new_member_id(&mut self, prefix: &str) -> String {
        let unique = self.new_uuid();
        format!("{prefix}-{unique}")
    }

    fn join_group(&mut self, now_ms: i64, token: RequestToken, request: JoinRequest) {
        let reject = |error| JoinResponse::failure(error, &request.member_id);
        if request.group_id.is_empty() {
            return self.answer_join(token, reject(ResponseError::InvalidGroupId));
        }
        if request.session_timeout_ms < self.config.min_session_timeout_ms
            || request.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return self.answer_join(token, reject(ResponseError::InvalidSessionTimeout));
        }
        let new_member = request.member_id.is_empty();
        if let Some(group) = self.groups.get_mut(&request.group_id) {
            // A consumer-protocol group takes no classic members; an empty
            // one turns back into a classic group, as in Kafka.
            if group
                .consumer
                .as_ref()
                .is_some_and(|consumer| !consumer.members.is_empty())
            {
                return self.answer_join(token, reject(ResponseError::InconsistentGroupProtocol));
            }
            if group.consumer.take().is_some() {
                self.touched_consumers.insert(request.group_id.clone());
                group.protocol_type = None;
                group.transition(GroupState::Empty, now_ms);
            }
        }
        if !self.groups.contains_key(&request.group_id) {
            if !new_member {
                return self.answer_join(token, reject(ResponseError::UnknownMemberId));
            }
            let group = self.group_or_create(&request.group_id, now_ms);
            let record = group_record(group);
            self.out.records.push(record);
        }
        let group_id = request.group_id.clone();
        self.with_group(&group_id, |this, group| {
            if !this.accepts_joining_member(group, &request.member_id) {
                if group.members.contains_key(&request.member_id) {
                    this.remove_member_and_update(
                        group,
                        &request.member_id,
                        now_ms,
                        "refused: group full",
                    );
                }
                this.answer_join(
                    token,
                    JoinResponse::failure(ResponseError::GroupMaxSizeReached, ""),
                );
            } else if !group.supports_protocols(&request.protocol_type, &request.protocols) {
                let response = JoinResponse::failure(
                    ResponseError::InconsistentGroupProtocol,
                    &request.member_id,
                );
                this.answer_join(token, response);
            } else if new_member {
                this.join_new_member(group, now_ms, token, request);
            } else {
                this.join_existing_member(group, now_ms, token, request);
            }
        });
    }

    fn accepts_joining_member(&self, group: &Group, member_id: &str) -> bool {
        let max_size = self.config.max_size;
        match group.state {
            GroupState::Empty | GroupState::Dead => true,
            // Consumer-protocol states: such a group takes no classic member.
            GroupState::Assigning | GroupState::Reconciling => false,
            GroupState::PreparingRebalance => {
                group
                    .members
                    .get(member_id)
                    .is_some_and(|member| member.awaiting_join.is_some())
                    || group.awaiting_join_count() < max_size
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                group.members.contains_key(member_id) || group.members.len() < max_size
            }
        }
    }

    fn join_new_member(
        &mut self,
        group: &mut Group,
        now_ms: i64,
        token: RequestToken,
        request: JoinRequest,
    ) {
        let prefix = request
            .group_instance_id
            .as_deref()
            .unwrap_or(&request.client_id);
        let member_id = self.new_member_id(prefix);
        if let Some(instance_id) = &request.group_instance_id {
            if let Some(old_member_id) = group.static_members.get(instance_id).cloned() {
                return self.replace_static_member(
                    group,
                    now_ms,
                    token,
                    request,
                    &old_member_id,
                    member_id,
                );
            }
        } else if request.api_version >= JOIN_VERSION_REQUIRES_MEMBER_ID {
            // KIP-394: the member must come back with this id, so a client
            // that times out and retries does not leave a ghost member.
            let deadline_ms = now_ms + i64::from(request.session_timeout_ms);
            group.pending_members.insert(member_id.clone(), deadline_ms);
            return self.answer_join(
                token,
                JoinResponse::failure(ResponseError::MemberIdRequired, &member_id),
            );
        }
        self.add_member_then_rebalance(group, now_ms, token, request, member_id);
    }

    fn join_existing_member(
        &mut self,
        group: &mut Group,
        now_ms: i64,
        token: RequestToken,
        request: JoinRequest,
    ) {
        let member_id = request.member_id.clone();
        if group.pending_members.contains_key(&member_id) {
            if request.group_instance_id.is_some() {
                // Pending ids are only handed to dynamic members.
                return self.answer_join(
                    token,
                    JoinResponse::failure(ResponseError::UnknownMemberId, &member_id),
                );
            }
            return self.add_member_then_rebalance(group, now_ms, token, request, member_id);
        }
        if let Err(error) = validate_member(group, &member_id, request.group_instance_id.as_deref())
        {
            return self.answer_join(token, JoinResponse::failure(error, &member_id));
        }
        let Some(member) = group.members.get(&member_id) else {
            return self.answer_join(
                token,
                JoinResponse::failure(ResponseError::UnknownMemberId, &member_id),
            );
        };
        let same_metadata = member.matches(&request.protocols);
        match group.state {
            GroupState::PreparingRebalance => {
                self.update_member_then_rebalance(group, now_ms, token, request)
            }
            // The member lost its JoinGroup response: send it again.
            GroupState::CompletingRebalance if same_metadata => {
                let response =
                    current_generation_response(group, &member_id, group.is_leader(&member_id));
                self.answer_join(token, response)
            }
            // A follower rejoining unchanged needs no rebalance.
            GroupState::Stable if same_metadata && !group.is_leader(&member_id) => {
                let response = current_generation_response(group, &member_id, false);
                self.answer_join(token, response)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_then_rebalance(group, now_ms, token, request)
            }
            GroupState::Empty
            | GroupState::Dead
            | GroupState::Assigning
            | GroupState::Reconciling => self.answer_join(
                token,
                JoinResponse::failure(ResponseError::UnknownMemberId, &member_id),
            ),
        }
    }

    fn add_member_then_rebalance(
        &mut self,
        group: &mut Group,
        now_ms: i64,
        token: RequestToken,
        request: JoinRequest,
        member_id: String,
    ) {
        let reason = join_reason("joined", &member_id, request.reason.as_deref());
        let member = Member {
            member_id,
            group_instance_id: request.group_instance_id,
            client_id: request.client_id,
            client_host: request.client_host,
            session_timeout_ms: request.session_timeout_ms,
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            protocols: request.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(token),
            awaiting_sync: None,
            is_new: true,
            session_deadline_ms: now_ms + i64::from(self.config.new_member_join_timeout_ms),
        };
        if group.in_initial_delay() {
            group.new_member_added = true;
        }
        group.add_member(member, &request.protocol_type);
        self.maybe_prepare_rebalance_or_complete_join(group, now_ms, &reason);
    }

    fn update_member_then_rebalance(
        &mut self,
        group: &mut Group,
        now_ms: i64,
        token: RequestToken,
        request: JoinRequest,
    ) {
        let Some(member) = group.members.get_mut(&request.member_id) else {
            return;
        };
        member.protocols = request.protocols;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.session_timeout_ms = request.session_timeout_ms;
        let superseded = member.awaiting_join.replace(token);
        if let Some(old_token) = superseded {
            let response =
                JoinResponse::failure(ResponseError::RebalanceInProgress, &request.member_id);
            self.answer_join(old_token, response);
        }
        let reason = join_reason("rejoined", &request.member_id, request.reason.as_deref());
        self.maybe_prepare_rebalance_or_complete_join(group, now_ms, &reason);
    }

    /// KIP-345: a known `group.instance.id` joins without a member id (its
    /// process restarted). It takes over the old member's place; in a Stable
    /// group whose protocol would not change, without a rebalance.
    fn replace_static_member(
        &mut self,
        group: &mut Group,
        now_ms: i64,
        token: RequestToken,
        request: JoinRequest,
        old_member_id: &str,
        new_member_id: String,
    ) {
        let instance_id = request.group_instance_id.clone().unwrap_or_default();
        let reason = join_reason("restarted", &instance_id, request.reason.as_deref());
        let leader_before = group.leader_id.clone().unwrap_or_default();
        let (fenced_join, fenced_sync) =
            group.replace_static_member(&instance_id, old_member_id, &new_member_id);
        if let Some(old_token) = fenced_join {
            let response = JoinResponse::failure(ResponseError::FencedInstanceId, old_member_id);
            self.answer_join(old_token, response);
        }
        if let Some(old_token) = fenced_sync {
            self.answer_sync(
                old_token,
                SyncResponse::failure(ResponseError::FencedInstanceId),
            );
        }
        let Some(member) = group.members.get_mut(&new_member_id) else {
            return;
        };
        member.protocols = request.protocols;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.session_timeout_ms = request.session_timeout_ms;
        member.session_deadline_ms = now_ms + i64::from(request.session_timeout_ms);
        if group.is(GroupState::Stable) && group.select_protocol() == group.protocol_name {
            let record = group_record(group);
            self.out.records.push(record);
            let is_leader = group.is_leader(&new_member_id);
            let mut response = current_generation_response(group, &new_member_id, false);
            if request.api_version >= JOIN_VERSION_SKIPS_ASSIGNMENT {
                if is_leader {
                    response.members = group.members_for_leader();
                    response.skip_assignment = true;
                }
            } else {
                // An old leader told it leads would assign again
                // without the members' metadata: name the old id.
                response.leader = leader_before;
            }
            return self.answer_join(token, response);
        }
        if let Some(member) = group.members.get_mut(&new_member_id) {
            member.awaiting_join = Some(token);
        }
        if group.is(GroupState::CompletingRebalance) {
            self.prepare_rebalance(group, now_ms, &reason);
        } else {
            self.maybe_prepare_rebalance_or_complete_join(group, now_ms, &reason);
        }
    }

    fn maybe_prepare_rebalance_or_complete_join(
        &mut self,
        group: &mut Group,
        now_ms: i64,
        reason: &str,
    ) {
        match group.state {
            GroupState::Empty | GroupState::CompletingRebalance | GroupState::Stable => {
                self.prepare_rebalance(group, now_ms, reason)
            }
            GroupState::PreparingRebalance => self.maybe_complete_join_phase(group, now_ms),
            GroupState::Dead | GroupState::Assigning | GroupState::Reconciling => {}
        }
    }

    fn prepare_rebalance(&mut self, group: &mut Group, now_ms: i64, reason: &str) {
        log::info!(
            "group {}: preparing to rebalance from {} generation {} ({reason})",
            group.group_id,
            group.state.as_str(),
            group.generation_id
        );
        if group.is(GroupState::CompletingRebalance) {
            self.reset_assignments_with_error(group, ResponseError::RebalanceInProgress);
        }
        group.sync_deadline_ms = None;
        let initial = group.is(GroupState::Empty);
        group.transition(GroupState::PreparingRebalance, now_ms);
        if initial {
            let delay_ms = self.config.initial_rebalance_delay_ms;
            let remaining_ms = (group.rebalance_timeout_ms() - delay_ms).max(0);
            group.new_member_added = false;
            group.join_timer = Some(JoinTimer {
                deadline_ms: now_ms + i64::from(delay_ms),
                kind: JoinTimerKind::Initial {
                    delay_ms,
                    remaining_ms,
                },
            });
        } else if group.has_all_members_joined() {
            self.complete_join(group, now_ms);
        } else {
            group.join_timer = Some(JoinTimer {
                deadline_ms: now_ms + i64::from(group.rebalance_timeout_ms()),
                kind: JoinTimerKind::Rebalance,
            });
        }
    }

    fn maybe_complete_join_phase(&mut self, group: &mut Group, now_ms: i64) {
        if group.is(GroupState::PreparingRebalance)
            && !group.in_initial_delay()
            && group.has_all_members_joined()
        {
            self.complete_join(group, now_ms);
        }
    }

    /// Closes the join barrier: dynamic members that did not rejoin are
    /// dropped (static ones keep their place until their session expires),
    /// the next generation starts and every waiting member is answered.
    fn complete_join(&mut self, group: &mut Group, now_ms: i64) {
        group.join_timer = None;
        let not_rejoined: Vec<String> = group
            .members
            .values()
            .filter(|member| member.awaiting_join.is_none() && member.group_instance_id.is_none())
            .map(|member| member.member_id.clone())
            .collect();
        for member_id in not_rejoined {
            self.remove_quietly(group, &member_id);
        }
        if !group.maybe_elect_new_joined_leader() && !group.members.is_empty() {
            // Only static members that have not rejoined are left: wait for
            // them to rejoin or for their sessions to end.
            group.join_timer = Some(JoinTimer {
                deadline_ms: now_ms + i64::from(group.rebalance_timeout_ms()),
                kind: JoinTimerKind::Rebalance,
            });
            return;
        }
        group.generation_id += 1;
        group.pending_sync.clear();
        if group.members.is_empty() {
            log::info!(
                "group {}: generation {} is empty",
                group.group_id,
                group.generation_id
            );
            group.protocol_name = None;
            group.transition(GroupState::Empty, now_ms);
            let record = group_record(group);
            self.out.records.push(record);
            return;
        }
        group.protocol_name = group.select_protocol();
        group.transition(GroupState::CompletingRebalance, now_ms);
        log::info!(
            "group {}: generation {} with {} members",
            group.group_id,
            group.generation_id,
            group.members.len()
        );
        let member_ids: Vec<String> = group.members.keys().cloned().collect();
        for member_id in member_ids {
            let is_leader = group.is_leader(&member_id);
            let response = current_generation_response(group, &member_id, is_leader);
            let Some(member) = group.members.get_mut(&member_id) else {
                continue;
            };
            member.is_new = false;
            member.session_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
            if let Some(token) = member.awaiting_join.take() {
                self.answer_join(token, response);
            }
            group.pending_sync.insert(member_id);
        }
        group.sync_deadline_ms = Some(now_ms + i64::from(group.rebalance_timeout_ms()));
    }

    fn reset_assignments_with_error(&mut self, group: &mut Group, error: ResponseError) {
        let mut tokens = Vec::new();
        for member in group.members.values_mut() {
            member.assignment = Bytes::new();
            tokens.extend(member.awaiting_sync.take());
        }
        for token in tokens {
            self.answer_sync(token, SyncResponse::failure(error));
        }
    }

    fn sync_group(
        &mut self,
        group: &mut Group,
        now_ms: i64,
        token: RequestToken,
        request: SyncRequest,
    ) {
        let member_id = request.member_id.as_str();
        if let Err(error) = validate_member(group, member_id, request.group_instance_id.as_deref())
        {
            return self.answer_sync(token, SyncResponse::failure(error));
        }
        if request.generation_id != group.generation_id {
            return self.answer_sync(
                token,
                SyncResponse::failure(ResponseError::IllegalGeneration),
            );
        }
        let type_differs = request
            .protocol_type
            .as_ref()
            .is_some_and(|name| group.protocol_type.as_ref() != Some(name));
        let name_differs = request
            .protocol_name
            .as_ref()
            .is_some_and(|name| group.protocol_name.as_ref() != Some(name));
        if type_differs || name_differs {
            return self.answer_sync(
                token,
                SyncResponse::failure(ResponseError::InconsistentGroupProtocol),
            );
        }
        match group.state {
            GroupState::Empty
            | GroupState::Dead
            | GroupState::Assigning
            | GroupState::Reconciling => {
                self.answer_sync(token, SyncResponse::failure(ResponseError::UnknownMemberId))
            }
            GroupState::PreparingRebalance => self.answer_sync(
                token,
                SyncResponse::failure(ResponseError::RebalanceInProgress),
            ),
            GroupState::CompletingRebalance => {
                self.received_sync(group, member_id);
                let Some(member) = group.members.get_mut(member_id) else {
                    return;
                };
                if let Some(old_token) = member.awaiting_sync.replace(token) {
                    self.answer_sync(
                        old_token,
                        SyncResponse::failure(ResponseError::RebalanceInProgress),
                    );
                }
                if group.is_leader(member_id) {
                    self.apply_assignments(group, now_ms, request.assignments);
                }
            }
            GroupState::Stable => {
                self.received_sync(group, member_id);
                let response = sync_success(group, member_id);
                self.answer_sync(token, response);
            }
        }
    }

    fn received_sync(&mut self, group: &mut Group, member_id: &str) {
        group.pending_sync.remove(member_id);
        if group.pending_sync.is_empty() {
            group.sync_deadline_ms = None;
        }
    }

    /// The leader's SyncGroup: store the assignment (members it left out get
    /// an empty one), write the group, answer every waiting member.
    fn apply_assignments(
        &mut self,
        group: &mut Group,
        now_ms: i64,
        assignments: Vec<(String, Bytes)>,
    ) {
        let mut assignments: BTreeMap<String, Bytes> = assignments.into_iter().collect();
        for (member_id, member) in group.members.iter_mut() {
            member.assignment = assignments.remove(member_id).unwrap_or_default();
        }
        let record = group_record(group);
        self.out.records.push(record);
        group.transition(GroupState::Stable, now_ms);
        let waiting: Vec<(String, RequestToken)> = group
            .members
            .values_mut()
            .filter_map(|member| Some((member.member_id.clone(), member.awaiting_sync.take()?)))
            .collect();
        for (member_id, token) in waiting {
            let response = sync_success(group, &member_id);
            self.answer_sync(token, response);
        }
    }

    fn leave_group(
        &mut self,
        group: &mut Group,
        now_ms: i64,
        members: Vec<LeavingMember>,
    ) -> LeaveResponse {
        let mut results = Vec::with_capacity(members.len());
        for leaving in members {
            let error = match &leaving.group_instance_id {
                None if group.pending_members.remove(&leaving.member_id).is_some() => {
                    self.maybe_complete_join_phase(group, now_ms);
                    None
                }
                None if group.members.contains_key(&leaving.member_id) => {
                    self.remove_member_and_update(group, &leaving.member_id, now_ms, "left");
                    None
                }
                None => Some(ResponseError::UnknownMemberId),
                Some(instance_id) => match group.static_members.get(instance_id).cloned() {
                    None => Some(ResponseError::UnknownMemberId),
                    Some(current)
                        if !leaving.member_id.is_empty() && leaving.member_id != current =>
                    {
                        Some(ResponseError::FencedInstanceId)
                    }
                    Some(current) => {
                        self.remove_member_and_update(group, &current, now_ms, "left");
                        None
                    }
                },
            };
            results.push((leaving, error));
        }
        LeaveResponse {
            error: None,
            members: results,
        }
    }

    pub(in crate::group) fn tick_group(&mut self, group: &mut Group, now_ms: i64) {
        let expired_pending: Vec<String> = group
            .pending_members
            .iter()
            .filter(|(_, deadline_ms)| **deadline_ms <= now_ms)
            .map(|(member_id, _)| member_id.clone())
            .collect();
        for member_id in expired_pending {
            group.pending_members.remove(&member_id);
            self.maybe_complete_join_phase(group, now_ms);
        }
        let expired: Vec<String> = group
            .members
            .values()
            .filter(|member| {
                member.session_deadline_ms <= now_ms && !member.has_satisfied_heartbeat()
            })
            .map(|member| member.member_id.clone())
            .collect();
        for member_id in expired {
            self.remove_member_and_update(group, &member_id, now_ms, "session expired");
        }
        if let Some(timer) = group.join_timer.filter(|timer| timer.deadline_ms <= now_ms) {
            match timer.kind {
                JoinTimerKind::Initial {
                    delay_ms,
                    remaining_ms,
                } if group.new_member_added && remaining_ms > 0 => {
                    group.new_member_added = false;
                    let next_delay_ms = self.config.initial_rebalance_delay_ms.min(remaining_ms);
                    group.join_timer = Some(JoinTimer {
                        deadline_ms: now_ms + i64::from(next_delay_ms),
                        kind: JoinTimerKind::Initial {
                            delay_ms: next_delay_ms,
                            remaining_ms: (remaining_ms - delay_ms).max(0),
                        },
                    });
                }
                _ => self.complete_join(group, now_ms),
            }
        }
        if group
            .sync_deadline_ms
            .is_some_and(|deadline_ms| deadline_ms <= now_ms)
        {
            group.sync_deadline_ms = None;
            let syncing = group.is(GroupState::CompletingRebalance) || group.is(GroupState::Stable);
            if syncing && !group.pending_sync.is_empty() {
                let late: Vec<String> = group.pending_sync.iter().cloned().collect();
                for member_id in &late {
                    self.remove_quietly(group, member_id);
                }
                let reason = format!("members {late:?} did not sync in time");
                self.prepare_rebalance(group, now_ms, &reason);
            }
        }
    }

    /// Removes a member, answering what it waits on with UNKNOWN_MEMBER_ID
    /// (a client still there will rejoin), without touching the group state.
    fn remove_quietly(&mut self, group: &mut Group, member_id: &str) {
        let Some(member) = group.remove_member(member_id) else {
            return;
        };
        if let Some(token) = member.awaiting_join {
            self.answer_join(
                token,
                JoinResponse::failure(ResponseError::UnknownMemberId, ""),
            );
        }
        if let Some(token) = member.awaiting_sync {
            self.answer_sync(token, SyncResponse::failure(ResponseError::UnknownMemberId));
        }
    }

    /// Removes a member (left, expired, or refused) and moves the group on.
    fn remove_member_and_update(
        &mut self,
        group: &mut Group,
        member_id: &str,
        now_ms: i64,
        why: &str,
    ) {
        self.remove_quietly(group, member_id);
        match group.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(group, now_ms, &format!("member {member_id} {why}"))
            }
            GroupState::PreparingRebalance => self.maybe_complete_join_phase(group, now_ms),
            GroupState::Empty
            | GroupState::Dead
            | GroupState::Assigning
            | GroupState::Reconciling => {}
        }
    }
}

/// What the log says caused a rebalance.
fn join_reason(verb: &str, member_id: &str, client_reason: Option<&str>) -> String {
    match client_reason {
        Some(why) => format!("member {member_id} {verb}; client reason: {why}"),
        None => format!("member {member_id} {verb}"),
    }
}

/// Kafka's `validateMember`: a static member must be the current holder of
/// its instance id; a dynamic one must be known.
pub(in crate::group) fn validate_member(
    group: &Group,
    member_id: &str,
    instance_id: Option<&str>,
) -> Result<(), ResponseError> {
    match instance_id {
        Some(instance_id) => match group.static_members.get(instance_id) {
            None => Err(ResponseError::UnknownMemberId),
            Some(current) if current != member_id => Err(ResponseError::FencedInstanceId),
            Some(_) => Ok(()),
        },
        None if group.members.contains_key(member_id) => Ok(()),
        None => Err(ResponseError::UnknownMemberId),
    }
}

fn current_generation_response(group: &Group, member_id: &str, with_members: bool) -> JoinResponse {
    JoinResponse {
        error: None,
        generation_id: group.generation_id,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol_name.clone(),
        leader: group.leader_id.clone().unwrap_or_default(),
        skip_assignment: false,
        member_id: member_id.to_string(),
        members: if with_members {
            group.members_for_leader()
        } else {
            Vec::new()
        },
    }
}

fn sync_success(group: &Group, member_id: &str) -> SyncResponse {
    SyncResponse {
        error: None,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol_name.clone(),
        assignment: group
            .members
            .get(member_id)
            .map(|member| member.assignment.clone())
            .unwrap_or_default(),
    }
}

/// The GroupMetadata record of the group as it is now.
pub(in crate::group) fn group_record(group: &Group) -> Record {
    let protocol = group.protocol_name.as_deref().unwrap_or_default();
    let value = GroupValue {
        protocol_type: group.protocol_type.clone().unwrap_or_default(),
        generation: group.generation_id,
        protocol: group.protocol_name.clone(),
        leader: group.leader_id.clone(),
        current_state_timestamp_ms: group.state_timestamp_ms.unwrap_or(-1),
        members: group
            .members
            .values()
            .map(|member| MemberValue {
                member_id: member.member_id.clone(),
                group_instance_id: member.group_instance_id.clone(),
                client_id: member.client_id.clone(),
                client_host: member.client_host.clone(),
                rebalance_timeout_ms: member.rebalance_timeout_ms,
                session_timeout_ms: member.session_timeout_ms,
                subscription: member.metadata(protocol),
                assignment: member.assignment.clone(),
            })
            .collect(),
    };
    Record {
        partition: group.partition,
        key: records::encode_group_key(&group.group_id),
        value: Some(records::encode_group_value(&value)),
        txn: None,
    }
}

pub(in crate::group) fn empty_group_value() -> GroupValue {
    GroupValue {
        protocol_type: String::new(),
        generation: 0,
        protocol: None,
        leader: None,
        current_state_timestamp_ms: -1,
        members: Vec::new(),
    }
}

/// Rebuilds a group's membership from its GroupMetadata record: a group
/// with members is Stable in the recorded generation, as Kafka loads it.
pub(in crate::group) fn load_group(group: &mut Group, value: GroupValue, now_ms: i64) {
    let protocol = value.protocol.clone().unwrap_or_default();
    group.generation_id = value.generation;
    group.protocol_type = Some(value.protocol_type).filter(|name| !name.is_empty());
    group.protocol_name = value.protocol;
    group.leader_id = value.leader;
    group.state_timestamp_ms = Some(value.current_state_timestamp_ms).filter(|ms| *ms >= 0);
    group.members.clear();
    group.static_members.clear();
    group.pending_members.clear();
    group.pending_sync.clear();
    group.join_timer = None;
    group.sync_deadline_ms = None;
    for member in value.members {
        if let Some(instance_id) = &member.group_instance_id {
            group
                .static_members
                .insert(instance_id.clone(), member.member_id.clone());
        }
        group.members.insert(
            member.member_id.clone(),
            Member {
                member_id: member.member_id,
                group_instance_id: member.group_instance_id,
                client_id: member.client_id,
                client_host: member.client_host,
                session_timeout_ms: member.session_timeout_ms,
                rebalance_timeout_ms: if member.rebalance_timeout_ms < 0 {
                    member.session_timeout_ms
                } else {
                    member.rebalance_timeout_ms
                },
                protocols: vec![(protocol.clone(), member.subscription)],
                assignment: member.assignment,
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
                session_deadline_ms: now_ms + i64::from(member.session_timeout_ms),
            },
        );
    }
    if group
        .leader_id
        .as_ref()
        .is_none_or(|leader| !group.members.contains_key(leader))
    {
        group.leader_id = group.members.keys().next().cloned();
    }
    group.state = if group.members.is_empty() {
        GroupState::Empty
    } else {
        GroupState::Stable
    };
    group.previous_state = group.state;
}

/// A group with no members, no protocol, no offsets and no open
/// transaction is forgotten.
pub(in crate::group) fn drop_if_unused(group: &mut Group, now_ms: i64) {
    if group.members.is_empty()
        && group.pending_members.is_empty()
        && group.offsets.is_empty()
        && group.pending_txn.is_empty()
        && group.protocol_type.is_none()
    {
        group.transition(GroupState::Dead, now_ms);
    }
}
