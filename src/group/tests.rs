//! Scenario tests of the coordinator, driven with a fake clock the way the
//! shard will drive it: calls, ticks, records appended, completions
//! delivered.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::*;

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;
const GROUP: &str = "g";

/// A coordinator, a clock, and what the shard would have delivered.
struct Harness {
    coordinator: GroupCoordinator,
    now_ms: i64,
    next_token: RequestToken,
    joins: BTreeMap<RequestToken, JoinResponse>,
    syncs: BTreeMap<RequestToken, SyncResponse>,
    /// Everything appended to `__consumer_offsets`, in order.
    log: Vec<Record>,
}

impl Harness {
    fn new() -> Harness {
        Harness::with_config(GroupConfig::default())
    }

    fn with_config(config: GroupConfig) -> Harness {
        Harness {
            coordinator: GroupCoordinator::new(config, 7),
            now_ms: 1_000_000,
            next_token: 1,
            joins: BTreeMap::new(),
            syncs: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    fn absorb(&mut self, effects: Effects) {
        self.log.extend(effects.records);
        for completion in effects.completions {
            match completion {
                Completion::Join(token, response) => {
                    assert!(
                        self.joins.insert(token, response).is_none(),
                        "join {token} answered twice"
                    );
                }
                Completion::Sync(token, response) => {
                    assert!(
                        self.syncs.insert(token, response).is_none(),
                        "sync {token} answered twice"
                    );
                }
            }
        }
    }

    fn advance(&mut self, ms: i64) {
        self.now_ms += ms;
        let effects = self.coordinator.tick(self.now_ms);
        self.absorb(effects);
    }

    fn token(&mut self) -> RequestToken {
        self.next_token += 1;
        self.next_token
    }

    fn join_request(&self, member_id: &str, instance: Option<&str>, client: &str) -> JoinRequest {
        JoinRequest {
            group_id: GROUP.into(),
            member_id: member_id.into(),
            group_instance_id: instance.map(str::to_string),
            client_id: client.into(),
            client_host: "/10.0.0.1".into(),
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: REBALANCE_MS,
            protocol_type: "consumer".into(),
            protocols: vec![
                ("range".into(), Bytes::from(subscription(&["t"]))),
                ("roundrobin".into(), Bytes::from_static(b"rr")),
            ],
            reason: None,
            api_version: 9,
        }
    }

    fn send_join(&mut self, request: JoinRequest) -> RequestToken {
        let token = self.token();
        let effects = self.coordinator.join(self.now_ms, token, request);
        self.absorb(effects);
        token
    }

    fn join(&mut self, member_id: &str, instance: Option<&str>, client: &str) -> RequestToken {
        let request = self.join_request(member_id, instance, client);
        self.send_join(request)
    }

    fn join_answer(&mut self, token: RequestToken) -> Option<JoinResponse> {
        self.joins.remove(&token)
    }

    fn join_error(&mut self, token: RequestToken) -> Option<ResponseError> {
        self.join_answer(token).expect("answered at once").error
    }

    /// A dynamic member's first JoinGroup: MEMBER_ID_REQUIRED, then the
    /// join that waits in the barrier. Returns the id and the waiting token.
    fn join_new(&mut self, client: &str) -> (String, RequestToken) {
        let first = self.join("", None, client);
        let answer = self.join_answer(first).expect("answered at once");
        assert_eq!(answer.error, Some(ResponseError::MemberIdRequired));
        assert!(answer.member_id.starts_with(&format!("{client}-")));
        let token = self.join(&answer.member_id, None, client);
        (answer.member_id, token)
    }

    fn sync(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation_id: i32,
        assignments: &[(&str, &str)],
    ) -> RequestToken {
        let token = self.token();
        let request = SyncRequest {
            group_id: GROUP.into(),
            generation_id,
            member_id: member_id.into(),
            group_instance_id: instance.map(str::to_string),
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments: assignments
                .iter()
                .map(|(member, assignment)| {
                    (
                        member.to_string(),
                        Bytes::copy_from_slice(assignment.as_bytes()),
                    )
                })
                .collect(),
        };
        let effects = self.coordinator.sync(self.now_ms, token, request);
        self.absorb(effects);
        token
    }

    fn heartbeat(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation_id: i32,
    ) -> Option<ResponseError> {
        let request = HeartbeatRequest {
            group_id: GROUP.into(),
            generation_id,
            member_id: member_id.into(),
            group_instance_id: instance.map(str::to_string),
        };
        self.coordinator.heartbeat(self.now_ms, &request)
    }

    fn commit(
        &mut self,
        generation_id: i32,
        member_id: &str,
        offsets: &[(&str, i32, i64)],
    ) -> Vec<Option<ResponseError>> {
        let request = CommitRequest {
            group_id: GROUP.into(),
            generation_id,
            member_id: member_id.into(),
            group_instance_id: None,
            offsets: offsets
                .iter()
                .map(|(topic, partition, offset)| OffsetToCommit {
                    topic: topic.to_string(),
                    partition: *partition,
                    offset: *offset,
                    leader_epoch: 5,
                    metadata: Some(format!("m{offset}")),
                })
                .collect(),
            api_version: 9,
        };
        let (results, effects) = self.coordinator.commit(self.now_ms, request);
        self.absorb(effects);
        results.into_iter().map(|result| result.error).collect()
    }

    fn committed(&self, topic: &str, partition: i32) -> Option<i64> {
        let wanted = [(topic.to_string(), partition)];
        let fetched = self.coordinator.fetch_offsets(GROUP, Some(&wanted));
        fetched[0]
            .committed
            .as_ref()
            .map(|committed| committed.offset)
    }

    fn state(&self) -> GroupState {
        self.coordinator.describe_group(GROUP).state
    }

    /// Advances in 1 s ticks until `token` is answered, at most `limit_ms`.
    fn wait_join(&mut self, token: RequestToken, limit_ms: i64) -> JoinResponse {
        let deadline_ms = self.now_ms + limit_ms;
        while self.now_ms < deadline_ms {
            if let Some(answer) = self.join_answer(token) {
                return answer;
            }
            self.advance(1_000);
        }
        self.join_answer(token).expect("join answered in time")
    }

    /// Known members joining again (after a rebalance started).
    fn rejoin(&mut self, ids: &[String]) -> Vec<(String, RequestToken)> {
        ids.iter()
            .map(|id| (id.clone(), self.join(id, None, "c")))
            .collect()
    }

    /// `count` dynamic members through join and sync: a Stable group.
    /// Returns member ids (leader first) and the generation.
    fn stable_group(&mut self, count: usize) -> (Vec<String>, i32) {
        let pending: Vec<(String, RequestToken)> = (0..count)
            .map(|index| self.join_new(&format!("c{index}")))
            .collect();
        self.finish_rebalance(pending)
    }

    /// Waits for the given joins, then syncs everyone, the leader last,
    /// assigning each member `p-<its index>`.
    fn finish_rebalance(&mut self, pending: Vec<(String, RequestToken)>) -> (Vec<String>, i32) {
        let answers: Vec<JoinResponse> = pending
            .iter()
            .map(|(_, token)| self.wait_join(*token, 60_000))
            .collect();
        let generation = answers[0].generation_id;
        let leader = answers[0].leader.clone();
        for answer in &answers {
            assert_eq!(answer.error, None);
            assert_eq!(answer.generation_id, generation);
            assert_eq!(answer.leader, leader);
            assert_eq!(answer.protocol_name.as_deref(), Some("range"));
            let is_leader = answer.member_id == leader;
            assert_eq!(
                answer.members.len(),
                if is_leader { pending.len() } else { 0 }
            );
        }
        let mut ids: Vec<String> = answers
            .iter()
            .map(|answer| answer.member_id.clone())
            .collect();
        ids.sort_by_key(|id| *id != leader);
        let assignments: Vec<(String, String)> = ids
            .iter()
            .enumerate()
            .map(|(index, id)| (id.clone(), format!("p-{index}")))
            .collect();
        let mut tokens = Vec::new();
        for id in ids.iter().skip(1) {
            tokens.push(self.sync(id, None, generation, &[]));
        }
        assert!(
            tokens.iter().all(|token| !self.syncs.contains_key(token)),
            "followers wait for the leader"
        );
        let pairs: Vec<(&str, &str)> = assignments
            .iter()
            .map(|(id, a)| (id.as_str(), a.as_str()))
            .collect();
        tokens.insert(0, self.sync(&leader, None, generation, &pairs));
        for (index, token) in tokens.iter().enumerate() {
            let answer = self.syncs.remove(token).expect("sync answered");
            assert_eq!(answer.error, None);
            assert_eq!(answer.assignment, Bytes::from(format!("p-{index}")));
        }
        assert_eq!(self.state(), GroupState::Stable);
        (ids, generation)
    }
}

/// A ConsumerProtocolSubscription v0 naming `topics`.
fn subscription(topics: &[&str]) -> Vec<u8> {
    let mut bytes = vec![0, 0];
    bytes.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for topic in topics {
        bytes.extend_from_slice(&(topic.len() as i16).to_be_bytes());
        bytes.extend_from_slice(topic.as_bytes());
    }
    bytes.extend_from_slice(&(-1i32).to_be_bytes());
    bytes
}

#[test]
fn three_members_form_one_generation_and_sync_distributes_assignments() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group(3);
    assert_eq!(generation, 1);
    let described = h.coordinator.describe_group(GROUP);
    assert_eq!(described.protocol_type, "consumer");
    assert_eq!(described.protocol_name, "range");
    assert_eq!(described.members.len(), 3);
    for member in &described.members {
        let index = ids.iter().position(|id| *id == member.member_id).unwrap();
        assert_eq!(member.assignment, Bytes::from(format!("p-{index}")));
        assert_eq!(member.client_host, "/10.0.0.1");
        assert_eq!(member.metadata, Bytes::from(subscription(&["t"])));
    }
    for id in &ids {
        assert_eq!(h.heartbeat(id, None, generation), None);
    }
    let group_records = h
        .log
        .iter()
        .filter(|record| record.key == records::encode_group_key(GROUP))
        .count();
    assert_eq!(
        group_records, 2,
        "created empty, then written after the leader's sync"
    );
}

#[test]
fn initial_delay_waits_for_members_to_keep_arriving() {
    let mut h = Harness::new();
    let (_, first) = h.join_new("a");
    h.advance(2_000);
    let (_, second) = h.join_new("b");
    h.advance(1_000);
    assert!(
        h.joins.is_empty(),
        "the delay restarts while members arrive"
    );
    h.advance(2_000);
    assert!(h.joins.is_empty());
    h.advance(1_000);
    let answer = h
        .join_answer(first)
        .expect("closed one quiet delay after the last arrival");
    assert_eq!(answer.generation_id, 1);
    assert!(h.join_answer(second).is_some());
    assert_eq!(h.state(), GroupState::CompletingRebalance);
}

#[test]
fn a_leaving_member_hands_its_share_to_the_others() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group(3);
    let (response, effects) = h.coordinator.leave(
        h.now_ms,
        GROUP,
        vec![LeavingMember {
            member_id: ids[2].clone(),
            group_instance_id: None,
        }],
    );
    h.absorb(effects);
    assert_eq!(response.error, None);
    assert_eq!(response.members[0].1, None);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(
        h.heartbeat(&ids[0], None, generation),
        Some(ResponseError::RebalanceInProgress)
    );
    assert_eq!(
        h.heartbeat(&ids[2], None, generation),
        Some(ResponseError::UnknownMemberId)
    );
    let pending = h.rejoin(&ids[..2]);
    assert_eq!(
        h.joins.len(),
        2,
        "the barrier closes as soon as every member rejoined"
    );
    let (new_ids, new_generation) = h.finish_rebalance(pending);
    assert_eq!(new_generation, generation + 1);
    assert_eq!(new_ids.len(), 2);
    let assigned: Vec<Bytes> = h
        .coordinator
        .describe_group(GROUP)
        .members
        .iter()
        .map(|member| member.assignment.clone())
        .collect();
    assert_eq!(assigned, vec![Bytes::from("p-0"), Bytes::from("p-1")]);
}

#[test]
fn a_silent_member_expires_after_its_session_and_the_group_rebalances() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group(3);
    for _ in 0..3 {
        h.advance(3_000);
        assert_eq!(h.heartbeat(&ids[0], None, generation), None);
        assert_eq!(h.heartbeat(&ids[1], None, generation), None);
    }
    assert_eq!(
        h.state(),
        GroupState::Stable,
        "9 s of silence is within the 10 s session"
    );
    h.advance(1_000);
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(
        h.heartbeat(&ids[2], None, generation),
        Some(ResponseError::UnknownMemberId)
    );
    let pending = h.rejoin(&ids[..2]);
    let (_, new_generation) = h.finish_rebalance(pending);
    assert_eq!(new_generation, generation + 1);
    assert_eq!(h.coordinator.describe_group(GROUP).members.len(), 2);
}

#[test]
fn a_member_that_does_not_rejoin_is_dropped_at_the_rebalance_timeout() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group(2);
    let rejoin = h.join(&ids[0], None, "c");
    assert_eq!(
        h.state(),
        GroupState::PreparingRebalance,
        "a leader rejoining forces a rebalance"
    );
    // The follower keeps heartbeating but never rejoins.
    for _ in 0..REBALANCE_MS / 3_000 {
        assert!(h.join_answer(rejoin).is_none());
        assert_eq!(
            h.heartbeat(&ids[1], None, generation),
            Some(ResponseError::RebalanceInProgress)
        );
        h.advance(3_000);
    }
    let answer = h
        .join_answer(rejoin)
        .expect("barrier closed at the timeout");
    assert_eq!(answer.generation_id, generation + 1);
    assert_eq!(answer.members.len(), 1);
    assert_eq!(
        h.heartbeat(&ids[1], None, generation),
        Some(ResponseError::UnknownMemberId)
    );
}

#[test]
fn a_member_that_never_syncs_is_dropped() {
    let mut h = Harness::new();
    let (a, a_join) = h.join_new("a");
    let (b, b_join) = h.join_new("b");
    let leader = h.wait_join(a_join, 10_000).leader;
    h.wait_join(b_join, 0);
    let follower = if leader == a { b } else { a };
    let sync = h.sync(&leader, None, 1, &[(&leader, "x"), (&follower, "y")]);
    assert_eq!(h.syncs.remove(&sync).unwrap().assignment, Bytes::from("x"));
    // Both heartbeat, so only the missing SyncGroup can remove the follower.
    for _ in 0..REBALANCE_MS / 3_000 {
        assert_eq!(h.state(), GroupState::Stable);
        assert_eq!(h.heartbeat(&leader, None, 1), None);
        assert_eq!(h.heartbeat(&follower, None, 1), None);
        h.advance(3_000);
    }
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    assert_eq!(
        h.heartbeat(&follower, None, 1),
        Some(ResponseError::UnknownMemberId)
    );
}

#[test]
fn join_errors() {
    let mut h = Harness::new();
    let mut request = h.join_request("", None, "a");
    request.session_timeout_ms = 5_999;
    let token = h.send_join(request);
    assert_eq!(
        h.join_error(token),
        Some(ResponseError::InvalidSessionTimeout)
    );

    let token = h.join("made-up", None, "a");
    assert_eq!(h.join_error(token), Some(ResponseError::UnknownMemberId));

    // Before v4 a new member enters at once, without MEMBER_ID_REQUIRED.
    let mut request = h.join_request("", None, "a");
    request.api_version = 3;
    let first = h.send_join(request);
    assert!(h.join_answer(first).is_none());

    let mut request = h.join_request("", None, "b");
    request.protocol_type = "connect".into();
    let token = h.send_join(request);
    assert_eq!(
        h.join_error(token),
        Some(ResponseError::InconsistentGroupProtocol)
    );

    let mut request = h.join_request("", None, "b");
    request.protocols = vec![("sticky".into(), Bytes::new())];
    let token = h.send_join(request);
    assert_eq!(
        h.join_error(token),
        Some(ResponseError::InconsistentGroupProtocol)
    );

    let first = h.wait_join(first, 10_000);
    assert_eq!(first.error, None);

    let mut full = Harness::with_config(GroupConfig {
        max_size: 1,
        ..GroupConfig::default()
    });
    let (_, first) = full.join_new("a");
    assert!(full.join_answer(first).is_none());
    let token = full.join("", None, "b");
    assert_eq!(
        full.join_error(token),
        Some(ResponseError::GroupMaxSizeReached)
    );
}

#[test]
fn an_unclaimed_member_id_expires() {
    let mut h = Harness::new();
    let token = h.join("", None, "a");
    let member_id = h.join_answer(token).unwrap().member_id;
    h.advance(i64::from(SESSION_MS));
    let token = h.join(&member_id, None, "a");
    assert_eq!(h.join_error(token), Some(ResponseError::UnknownMemberId));
}

#[test]
fn a_static_member_restarting_keeps_its_assignment_without_a_rebalance() {
    let mut h = Harness::new();
    let a = h.join("", Some("i-a"), "a");
    let b = h.join("", Some("i-b"), "b");
    let a_id = h.wait_join(a, 10_000).member_id;
    let b_id = h.wait_join(b, 0).member_id;
    assert!(
        a_id.starts_with("i-a-"),
        "static ids start with the instance id"
    );
    let a_sync = h.sync(&a_id, Some("i-a"), 1, &[(&a_id, "pa"), (&b_id, "pb")]);
    let b_sync = h.sync(&b_id, Some("i-b"), 1, &[]);
    assert_eq!(
        h.syncs.remove(&a_sync).unwrap().assignment,
        Bytes::from("pa")
    );
    assert_eq!(
        h.syncs.remove(&b_sync).unwrap().assignment,
        Bytes::from("pb")
    );

    // b's process restarts within its session: same instance id, no member id.
    h.advance(4_000);
    let records_before = h.log.len();
    let rejoin = h.join("", Some("i-b"), "b");
    let answer = h.join_answer(rejoin).expect("answered at once");
    assert_eq!(answer.error, None);
    assert_eq!(answer.generation_id, 1, "no new generation");
    assert_ne!(answer.member_id, b_id);
    assert_eq!(h.state(), GroupState::Stable);
    assert_eq!(
        h.log.len(),
        records_before + 1,
        "the new member id is written"
    );
    let new_b = answer.member_id;
    let sync = h.sync(&new_b, Some("i-b"), 1, &[]);
    assert_eq!(h.syncs.remove(&sync).unwrap().assignment, Bytes::from("pb"));
    assert_eq!(
        h.heartbeat(&a_id, Some("i-a"), 1),
        None,
        "the others see no rebalance"
    );
    assert_eq!(
        h.heartbeat(&b_id, Some("i-b"), 1),
        Some(ResponseError::FencedInstanceId)
    );
    assert_eq!(h.heartbeat(&new_b, Some("i-b"), 1), None);
    let stale = CommitRequest {
        group_id: GROUP.into(),
        generation_id: 1,
        member_id: b_id.clone(),
        group_instance_id: Some("i-b".into()),
        offsets: vec![OffsetToCommit {
            topic: "t".into(),
            partition: 0,
            offset: 1,
            leader_epoch: -1,
            metadata: None,
        }],
        api_version: 9,
    };
    let (results, effects) = h.coordinator.commit(h.now_ms, stale);
    assert_eq!(results[0].error, Some(ResponseError::FencedInstanceId));
    assert!(effects.is_empty());
}

#[test]
fn a_static_member_that_stays_away_expires() {
    let mut h = Harness::new();
    let a = h.join("", Some("i-a"), "a");
    let a_id = h.wait_join(a, 10_000).member_id;
    let sync = h.sync(&a_id, Some("i-a"), 1, &[(&a_id, "pa")]);
    assert!(h.syncs.remove(&sync).is_some());
    h.advance(i64::from(SESSION_MS));
    assert_eq!(h.state(), GroupState::Empty);
    assert_eq!(
        h.heartbeat(&a_id, Some("i-a"), 1),
        Some(ResponseError::UnknownMemberId)
    );
}

#[test]
fn offsets_of_a_standalone_consumer_and_of_members() {
    let mut h = Harness::new();
    assert_eq!(
        h.commit(-1, "", &[("t", 0, 10), ("t", 1, 20)]),
        vec![None, None]
    );
    assert_eq!(h.committed("t", 0), Some(10));
    assert_eq!(h.committed("t", 1), Some(20));
    assert_eq!(h.committed("t", 2), None);
    let listed = h.coordinator.list_groups(&[]);
    assert_eq!(listed[0].protocol_type, "", "a group holding only offsets");
    assert_eq!(h.coordinator.fetch_offsets(GROUP, None).len(), 2);
    assert_eq!(h.coordinator.fetch_offsets("other", None), Vec::new());

    let (ids, generation) = h.stable_group(2);
    assert_eq!(h.commit(generation, &ids[1], &[("t", 0, 11)]), vec![None]);
    assert_eq!(h.committed("t", 0), Some(11));
    assert_eq!(
        h.commit(generation - 1, &ids[1], &[("t", 0, 12)]),
        vec![Some(ResponseError::IllegalGeneration)]
    );
    assert_eq!(
        h.commit(generation, "stranger", &[("t", 0, 12)]),
        vec![Some(ResponseError::UnknownMemberId)]
    );
    assert_eq!(
        h.commit(-1, "", &[("t", 0, 12)]),
        vec![Some(ResponseError::UnknownMemberId)],
        "the group has members"
    );
    assert_eq!(h.committed("t", 0), Some(11));

    let long = OffsetToCommit {
        topic: "t".into(),
        partition: 3,
        offset: 1,
        leader_epoch: -1,
        metadata: Some("x".repeat(4097)),
    };
    let (results, _) = h.coordinator.commit(
        h.now_ms,
        CommitRequest {
            group_id: GROUP.into(),
            generation_id: generation,
            member_id: ids[0].clone(),
            group_instance_id: None,
            offsets: vec![long],
            api_version: 9,
        },
    );
    assert_eq!(
        results[0].error,
        Some(ResponseError::OffsetMetadataTooLarge)
    );

    let _rejoin = h.join(&ids[0], None, "c");
    let _rejoin = h.join(&ids[1], None, "c");
    assert_eq!(h.state(), GroupState::CompletingRebalance);
    assert_eq!(
        h.commit(generation + 1, &ids[0], &[("t", 0, 13)]),
        vec![Some(ResponseError::RebalanceInProgress)]
    );
    assert_eq!(
        h.commit(7, "", &[("t", 0, 13)]),
        vec![Some(ResponseError::UnknownMemberId)]
    );
    let mut other = CommitRequest {
        group_id: "new-group".into(),
        generation_id: 3,
        member_id: "m".into(),
        group_instance_id: None,
        offsets: vec![],
        api_version: 9,
    };
    other.offsets.push(OffsetToCommit {
        topic: "t".into(),
        partition: 0,
        offset: 1,
        leader_epoch: -1,
        metadata: None,
    });
    let (results, _) = h.coordinator.commit(h.now_ms, other);
    assert_eq!(results[0].error, Some(ResponseError::IllegalGeneration));
}

#[test]
fn records_replay_into_the_same_offsets_and_group() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group(3);
    assert_eq!(
        h.commit(
            generation,
            &ids[0],
            &[("t", 0, 5), ("t", 1, 6), ("u", 0, 7)]
        ),
        vec![None, None, None]
    );
    assert_eq!(h.commit(generation, &ids[1], &[("t", 0, 8)]), vec![None]);
    let (result, effects) = h.coordinator.delete_offsets(GROUP, &[("u".into(), 0)]);
    h.absorb(effects);
    assert_eq!(result.unwrap()[0].error, None, "u is not subscribed");

    let mut loaded = GroupCoordinator::new(GroupConfig::default(), 8);
    for record in &h.log {
        assert_eq!(record.partition, offsets_partition(GROUP, 50));
        loaded
            .replay(h.now_ms, &record.key, record.value.as_deref())
            .expect("replays");
    }
    assert_eq!(
        loaded.fetch_offsets(GROUP, None),
        h.coordinator.fetch_offsets(GROUP, None)
    );
    assert_eq!(loaded.fetch_offsets(GROUP, None).len(), 2);
    assert_eq!(
        loaded.describe_group(GROUP),
        h.coordinator.describe_group(GROUP)
    );

    // The loaded group carries on: same generation, same assignments.
    let request = HeartbeatRequest {
        group_id: GROUP.into(),
        generation_id: generation,
        member_id: ids[2].clone(),
        group_instance_id: None,
    };
    assert_eq!(loaded.heartbeat(h.now_ms, &request), None);
    let effects = loaded.sync(
        h.now_ms,
        1,
        SyncRequest {
            group_id: GROUP.into(),
            generation_id: generation,
            member_id: ids[2].clone(),
            group_instance_id: None,
            protocol_type: None,
            protocol_name: None,
            assignments: vec![],
        },
    );
    assert_eq!(
        effects.completions,
        vec![Completion::Sync(
            1,
            SyncResponse {
                error: None,
                protocol_type: Some("consumer".into()),
                protocol_name: Some("range".into()),
                assignment: Bytes::from("p-2"),
            }
        )]
    );
}

#[test]
fn offsets_of_empty_groups_expire_after_retention() {
    let retention_ms = GroupConfig::default().offsets_retention_ms;
    let mut h = Harness::new();
    assert_eq!(h.commit(-1, "", &[("t", 0, 10)]), vec![None]);
    h.advance(retention_ms - 1);
    assert_eq!(h.committed("t", 0), Some(10));
    h.advance(GroupConfig::default().offsets_retention_check_interval_ms);
    assert_eq!(h.committed("t", 0), None);
    assert!(
        h.coordinator.list_groups(&[]).is_empty(),
        "nothing left of the group"
    );
    let tombstones: Vec<&Record> = h
        .log
        .iter()
        .filter(|record| record.value.is_none())
        .collect();
    assert_eq!(tombstones.len(), 2, "the offset, then the group");

    // A consumer group keeps its offsets while it has members, however old.
    let short = GroupConfig {
        offsets_retention_ms: 20_000,
        offsets_retention_check_interval_ms: 1_000,
        ..GroupConfig::default()
    };
    let mut h2 = Harness::with_config(short);
    let (ids, generation) = h2.stable_group(1);
    assert_eq!(h2.commit(generation, &ids[0], &[("t", 0, 30)]), vec![None]);
    for _ in 0..10 {
        h2.advance(i64::from(SESSION_MS) / 2);
        assert_eq!(h2.heartbeat(&ids[0], None, generation), None);
    }
    assert_eq!(h2.committed("t", 0), Some(30));
    let (_, effects) = h2.coordinator.leave(
        h2.now_ms,
        GROUP,
        vec![LeavingMember {
            member_id: ids[0].clone(),
            group_instance_id: None,
        }],
    );
    h2.absorb(effects);
    assert_eq!(h2.state(), GroupState::Empty);
    h2.advance(19_000);
    assert_eq!(
        h2.committed("t", 0),
        Some(30),
        "retention counts from when the group emptied"
    );
    h2.advance(1_000);
    assert_eq!(h2.committed("t", 0), None);
}

#[test]
fn list_describe_delete() {
    let mut h = Harness::new();
    let (ids, _) = h.stable_group(2);
    let listed = h.coordinator.list_groups(&[GroupState::Stable]);
    assert_eq!(
        listed,
        vec![ListedGroup {
            group_type: GroupType::Classic,
            group_id: GROUP.into(),
            protocol_type: "consumer".into(),
            state: GroupState::Stable
        }]
    );
    assert!(h.coordinator.list_groups(&[GroupState::Empty]).is_empty());
    assert_eq!(
        GroupState::parse("completingrebalance"),
        Some(GroupState::CompletingRebalance)
    );

    let unknown = h.coordinator.describe_group("nope");
    assert_eq!(unknown.state, GroupState::Dead);
    assert!(unknown.members.is_empty());

    let (error, _) = h.coordinator.delete_group(h.now_ms, GROUP);
    assert_eq!(error, Some(ResponseError::NonEmptyGroup));
    let (error, _) = h.coordinator.delete_group(h.now_ms, "nope");
    assert_eq!(error, Some(ResponseError::GroupIdNotFound));

    let leaving = ids
        .iter()
        .map(|id| LeavingMember {
            member_id: id.clone(),
            group_instance_id: None,
        })
        .chain([LeavingMember {
            member_id: "ghost".into(),
            group_instance_id: None,
        }])
        .collect();
    let (response, effects) = h.coordinator.leave(h.now_ms, GROUP, leaving);
    h.absorb(effects);
    let errors: Vec<Option<ResponseError>> =
        response.members.iter().map(|(_, error)| *error).collect();
    assert_eq!(
        errors,
        vec![None, None, Some(ResponseError::UnknownMemberId)]
    );
    let described = h.coordinator.describe_group(GROUP);
    assert_eq!(described.state, GroupState::Empty);
    assert_eq!(described.protocol_type, "consumer");

    assert_eq!(
        h.commit(-1, "", &[("t", 0, 1)]),
        vec![None],
        "an empty group takes standalone commits"
    );
    let (error, effects) = h.coordinator.delete_group(h.now_ms, GROUP);
    assert_eq!(error, None);
    assert_eq!(effects.records.len(), 2);
    assert!(effects.records.iter().all(|record| record.value.is_none()));
    assert!(h.coordinator.list_groups(&[]).is_empty());
    assert_eq!(h.committed("t", 0), None);
}

#[test]
fn offset_delete_refuses_subscribed_topics() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group(1);
    assert_eq!(
        h.commit(generation, &ids[0], &[("t", 0, 1), ("u", 0, 2)]),
        vec![None, None]
    );
    let (result, effects) = h
        .coordinator
        .delete_offsets(GROUP, &[("t".into(), 0), ("u".into(), 0)]);
    let errors: Vec<Option<ResponseError>> = result.unwrap().iter().map(|p| p.error).collect();
    assert_eq!(
        errors,
        vec![Some(ResponseError::GroupSubscribedToTopic), None]
    );
    assert_eq!(effects.records.len(), 1);
    assert_eq!(h.committed("u", 0), None);
    let (result, _) = h.coordinator.delete_offsets("nope", &[]);
    assert_eq!(result, Err(ResponseError::GroupIdNotFound));
}

#[test]
fn groups_map_to_kafkas_partitions() {
    // Java: Math.abs("my-group".hashCode()) % 50, "test-group" and a
    // non-ASCII id (hashed over UTF-16 code units).
    assert_eq!(
        offsets_partition("foo", 10),
        4,
        "Kafka's own test: 101574 % 10"
    );
    assert_eq!(
        offsets_partition("my-group", 50),
        12,
        "negative hash -1906497762"
    );
    assert_eq!(offsets_partition("test-group", 50), 12);
    assert_eq!(offsets_partition("gräs", 50), 10);
}

#[test]
fn sync_errors_and_a_sync_cut_short_by_a_new_member() {
    let mut h = Harness::new();
    let (a, a_join) = h.join_new("a");
    let (b, b_join) = h.join_new("b");
    let leader = h.wait_join(a_join, 10_000).leader;
    assert_eq!(h.wait_join(b_join, 0).generation_id, 1);
    let follower = if leader == a { b.clone() } else { a.clone() };

    let stale = h.sync(&follower, None, 0, &[]);
    assert_eq!(
        h.syncs.remove(&stale).unwrap().error,
        Some(ResponseError::IllegalGeneration)
    );
    let stranger = h.sync("stranger", None, 1, &[]);
    assert_eq!(
        h.syncs.remove(&stranger).unwrap().error,
        Some(ResponseError::UnknownMemberId)
    );
    let mut request = SyncRequest {
        group_id: GROUP.into(),
        generation_id: 1,
        member_id: follower.clone(),
        group_instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("roundrobin".into()),
        assignments: vec![],
    };
    let effects = h.coordinator.sync(h.now_ms, 99, request.clone());
    h.absorb(effects);
    assert_eq!(
        h.syncs.remove(&99).unwrap().error,
        Some(ResponseError::InconsistentGroupProtocol)
    );

    // A follower that lost its JoinGroup response asks again: same answer.
    let again = h.join(&follower, None, "c");
    let again = h.join_answer(again).expect("answered at once");
    assert_eq!((again.generation_id, again.members.len()), (1, 0));

    // The follower waits for the leader; a new member arrives first.
    request.protocol_name = None;
    let effects = h.coordinator.sync(h.now_ms, 100, request);
    h.absorb(effects);
    assert!(!h.syncs.contains_key(&100));
    let (_, c_join) = h.join_new("c");
    assert_eq!(
        h.syncs.remove(&100).unwrap().error,
        Some(ResponseError::RebalanceInProgress)
    );
    assert_eq!(h.state(), GroupState::PreparingRebalance);
    let late = h.sync(&leader, None, 1, &[]);
    assert_eq!(
        h.syncs.remove(&late).unwrap().error,
        Some(ResponseError::RebalanceInProgress)
    );

    let mut pending = h.rejoin(&[a, b]);
    pending.push((String::new(), c_join));
    let (ids, generation) = h.finish_rebalance(pending);
    assert_eq!((ids.len(), generation), (3, 2));
}

#[test]
fn leaving_by_instance_id() {
    let mut h = Harness::new();
    let a = h.join("", Some("i-a"), "a");
    let a_id = h.wait_join(a, 10_000).member_id;
    let leave = |member_id: &str, instance: &str| LeavingMember {
        member_id: member_id.into(),
        group_instance_id: Some(instance.into()),
    };
    let (response, effects) = h.coordinator.leave(
        h.now_ms,
        GROUP,
        vec![leave("someone-else", "i-a"), leave("", "i-z")],
    );
    h.absorb(effects);
    let errors: Vec<Option<ResponseError>> =
        response.members.iter().map(|(_, error)| *error).collect();
    assert_eq!(
        errors,
        vec![
            Some(ResponseError::FencedInstanceId),
            Some(ResponseError::UnknownMemberId)
        ]
    );
    assert_eq!(h.state(), GroupState::CompletingRebalance);

    let (response, effects) = h.coordinator.leave(h.now_ms, GROUP, vec![leave("", "i-a")]);
    h.absorb(effects);
    assert_eq!(
        response.members[0].1, None,
        "an admin may remove a static member by instance id alone"
    );
    assert_eq!(h.state(), GroupState::Empty);
    assert_eq!(
        h.heartbeat(&a_id, Some("i-a"), 1),
        Some(ResponseError::UnknownMemberId)
    );
    let (response, _) = h
        .coordinator
        .leave(h.now_ms, "nope", vec![leave("", "i-a")]);
    assert_eq!(response.error, Some(ResponseError::UnknownMemberId));
}

#[test]
fn the_protocol_most_members_prefer_wins() {
    let mut h = Harness::new();
    let mut pending = Vec::new();
    for (client, protocols) in [
        ("a", ["range", "roundrobin"]),
        ("b", ["roundrobin", "range"]),
        ("c", ["roundrobin", "range"]),
    ] {
        let mut request = h.join_request("", None, client);
        request.api_version = 3;
        request.protocols = protocols
            .iter()
            .map(|name| (name.to_string(), Bytes::from(*name)))
            .collect();
        pending.push(h.send_join(request));
    }
    let answer = h.wait_join(pending[0], 10_000);
    assert_eq!(answer.protocol_name.as_deref(), Some("roundrobin"));
    assert!(answer
        .members
        .iter()
        .all(|member| member.metadata == "roundrobin"));
}

/// One step of a client population acting at random.
#[derive(Debug, Clone)]
enum Step {
    Join {
        client: usize,
        fresh: bool,
        is_static: bool,
        old_version: bool,
    },
    Sync {
        client: usize,
        assign: bool,
        stale: bool,
    },
    Heartbeat {
        client: usize,
    },
    Leave {
        client: usize,
    },
    Commit {
        client: usize,
        standalone: bool,
    },
    Advance {
        ms: i64,
    },
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    let client = 0..4usize;
    prop_oneof![
        (client.clone(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(client, fresh, is_static, old_version)| Step::Join {
                client,
                fresh,
                is_static,
                old_version
            }
        ),
        (client.clone(), any::<bool>(), any::<bool>()).prop_map(|(client, assign, stale)| {
            Step::Sync {
                client,
                assign,
                stale,
            }
        }),
        client.clone().prop_map(|client| Step::Heartbeat { client }),
        client.clone().prop_map(|client| Step::Leave { client }),
        (client, any::<bool>())
            .prop_map(|(client, standalone)| Step::Commit { client, standalone }),
        (0..15_000i64).prop_map(|ms| Step::Advance { ms }),
    ]
}

/// What must hold after every call, whatever the clients do.
fn check_invariants(coordinator: &GroupCoordinator) {
    for group in coordinator.groups.values() {
        assert_ne!(group.state, GroupState::Dead, "dead groups are dropped");
        match group.state {
            GroupState::Empty => assert!(group.members.is_empty()),
            GroupState::CompletingRebalance | GroupState::Stable => {
                assert!(!group.members.is_empty())
            }
            _ => {}
        }
        match &group.leader_id {
            Some(leader) => assert!(group.members.contains_key(leader), "the leader is a member"),
            None => assert!(
                group.members.is_empty(),
                "a group with members has a leader"
            ),
        }
        for (instance_id, member_id) in &group.static_members {
            let member = group
                .members
                .get(member_id)
                .expect("static ids point at members");
            assert_eq!(member.group_instance_id.as_ref(), Some(instance_id));
        }
        assert!(group
            .pending_sync
            .iter()
            .all(|id| group.members.contains_key(id)));
        if group.is(GroupState::PreparingRebalance) {
            assert!(
                group.join_timer.is_some(),
                "a barrier always has a deadline"
            );
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Random clients never break the group's invariants, never get two
    /// answers to one request, and every waiting request is answered once
    /// time runs on long enough.
    #[test]
    fn random_clients_keep_the_group_sound(steps in proptest::collection::vec(step(), 1..80)) {
        let mut h = Harness::new();
        let mut ids: [String; 4] = Default::default();
        let mut generations = [-1i32; 4];
        let mut asked: Vec<RequestToken> = Vec::new();
        for step in steps {
            match step {
                Step::Join { client, fresh, is_static, old_version } => {
                    let instance = format!("i-{client}");
                    let member_id = if fresh { String::new() } else { ids[client].clone() };
                    let mut request = h.join_request(&member_id, is_static.then_some(instance.as_str()), &format!("c{client}"));
                    if old_version {
                        request.api_version = 3;
                    }
                    asked.push(h.send_join(request));
                }
                Step::Sync { client, assign, stale } => {
                    let assignments: Vec<(String, String)> = if assign {
                        ids.iter().map(|id| (id.clone(), "p".to_string())).collect()
                    } else {
                        Vec::new()
                    };
                    let pairs: Vec<(&str, &str)> = assignments.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
                    let generation = generations[client] - i32::from(stale);
                    let member_id = ids[client].clone();
                    asked.push(h.sync(&member_id, None, generation, &pairs));
                }
                Step::Heartbeat { client } => {
                    let member_id = ids[client].clone();
                    h.heartbeat(&member_id, None, generations[client]);
                }
                Step::Leave { client } => {
                    let leaving = vec![LeavingMember { member_id: ids[client].clone(), group_instance_id: None }];
                    let (_, effects) = h.coordinator.leave(h.now_ms, GROUP, leaving);
                    h.absorb(effects);
                }
                Step::Commit { client, standalone } => {
                    let (generation, member_id) = match standalone {
                        true => (-1, String::new()),
                        false => (generations[client], ids[client].clone()),
                    };
                    h.commit(generation, &member_id, &[("t", 0, 1)]);
                }
                Step::Advance { ms } => h.advance(ms),
            }
            for answer in h.joins.values() {
                let owner = (0..4).find(|client| {
                    answer.member_id.starts_with(&format!("c{client}-"))
                        || answer.member_id.starts_with(&format!("i-{client}-"))
                });
                let usable = matches!(answer.error, None | Some(ResponseError::MemberIdRequired));
                if let (Some(client), true) = (owner, usable) {
                    ids[client] = answer.member_id.clone();
                    generations[client] = answer.generation_id;
                }
            }
            check_invariants(&h.coordinator);
        }
        for _ in 0..40 {
            h.advance(30_000);
            check_invariants(&h.coordinator);
        }
        for token in asked {
            proptest::prop_assert!(
                h.joins.contains_key(&token) || h.syncs.contains_key(&token),
                "request {} never answered", token
            );
        }
        proptest::prop_assert!(h.coordinator.groups.values().all(|group| group.members.is_empty()));
    }
}

#[test]
fn unloading_answers_waiters_and_replay_restores_the_durable_state() {
    let mut h = Harness::new();
    let (ids, generation) = h.stable_group(2);
    assert_eq!(h.commit(generation, &ids[0], &[("t", 0, 3)]), vec![None]);
    let rejoin = h.join(&ids[0], None, "c");
    let partition = offsets_partition(GROUP, 50);
    let effects = h.coordinator.unload_partition(partition + 1);
    assert!(effects.is_empty(), "other partitions' groups stay");
    let effects = h.coordinator.unload_partition(partition);
    assert_eq!(
        effects.completions,
        vec![Completion::Join(
            rejoin,
            JoinResponse::failure(ResponseError::NotCoordinator, &ids[0])
        )]
    );
    assert!(h.coordinator.list_groups(&[]).is_empty());
    for record in &h.log {
        h.coordinator
            .replay(h.now_ms, &record.key, record.value.as_deref())
            .unwrap();
    }
    assert_eq!(h.state(), GroupState::Stable);
    assert_eq!(h.committed("t", 0), Some(3));
    assert_eq!(h.heartbeat(&ids[1], None, generation), None);
}

#[test]
fn a_restarted_static_leader_skips_the_assignment_or_is_not_named_leader() {
    let mut h = Harness::new();
    let a = h.join("", Some("i-a"), "a");
    let old_id = h.wait_join(a, 10_000).member_id;
    let sync = h.sync(&old_id, Some("i-a"), 1, &[(&old_id, "pa")]);
    assert!(h.syncs.remove(&sync).is_some());

    let rejoin = h.join("", Some("i-a"), "a");
    let answer = h.join_answer(rejoin).unwrap();
    assert_eq!(answer.leader, answer.member_id, "v9+: it leads");
    assert!(answer.skip_assignment, "and keeps the current assignment");
    assert_eq!(answer.members.len(), 1);

    let mut request = h.join_request("", Some("i-a"), "a");
    request.api_version = 5;
    let rejoin = h.send_join(request);
    let older = h.join_answer(rejoin).unwrap();
    assert_eq!(
        older.leader, answer.member_id,
        "before v9 the previous id is named"
    );
    assert!(!older.skip_assignment && older.members.is_empty());
    assert_eq!(h.state(), GroupState::Stable);
    let sync = h.sync(&older.member_id, Some("i-a"), 1, &[]);
    assert_eq!(h.syncs.remove(&sync).unwrap().assignment, Bytes::from("pa"));
}
