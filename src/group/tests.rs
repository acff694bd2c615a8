//! Scenario tests of the coordinator's front (offsets, loading, admin
//! views), driven with a fake clock the way the shard drives it: calls,
//! ticks, records appended, completions delivered. The `Harness` here also
//! drives the classic protocol's tests (`classic/tests.rs`).

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::*;

pub(super) const SESSION_MS: i32 = 10_000;
pub(super) const REBALANCE_MS: i32 = 30_000;
pub(super) const GROUP: &str = "g";

/// Replays `log` into `coordinator`, each record at its position in `log`
/// as its offset.
pub(super) fn replay_records(coordinator: &mut GroupCoordinator, now_ms: i64, log: &[Record]) {
    for (offset, record) in log.iter().enumerate() {
        let txn = record.txn.map(|txn| txn.producer_id);
        let value = record.value.as_deref();
        coordinator
            .replay(now_ms, offset as i64, txn, &record.key, value)
            .expect("replays");
    }
}

/// A coordinator, a clock, and what the shard would have delivered.
pub(super) struct Harness {
    pub(super) coordinator: GroupCoordinator,
    pub(super) now_ms: i64,
    pub(super) next_token: RequestToken,
    pub(super) joins: BTreeMap<RequestToken, JoinResponse>,
    pub(super) syncs: BTreeMap<RequestToken, SyncResponse>,
    /// Everything appended to `__consumer_offsets`, in order.
    pub(super) log: Vec<Record>,
}

impl Harness {
    pub(super) fn new() -> Harness {
        Harness::with_config(GroupConfig::default())
    }

    pub(super) fn with_config(config: GroupConfig) -> Harness {
        Harness {
            coordinator: GroupCoordinator::new(config, 7),
            now_ms: 1_000_000,
            next_token: 1,
            joins: BTreeMap::new(),
            syncs: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    pub(super) fn absorb(&mut self, effects: Effects) {
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

    pub(super) fn advance(&mut self, ms: i64) {
        self.now_ms += ms;
        let effects = self.coordinator.tick(self.now_ms);
        self.absorb(effects);
    }

    pub(super) fn token(&mut self) -> RequestToken {
        self.next_token += 1;
        self.next_token
    }

    pub(super) fn join_request(
        &self,
        member_id: &str,
        instance: Option<&str>,
        client: &str,
    ) -> JoinRequest {
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

    pub(super) fn send_join(&mut self, request: JoinRequest) -> RequestToken {
        let token = self.token();
        let effects = self.coordinator.join(self.now_ms, token, request);
        self.absorb(effects);
        token
    }

    pub(super) fn join(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        client: &str,
    ) -> RequestToken {
        let request = self.join_request(member_id, instance, client);
        self.send_join(request)
    }

    pub(super) fn join_answer(&mut self, token: RequestToken) -> Option<JoinResponse> {
        self.joins.remove(&token)
    }

    pub(super) fn join_error(&mut self, token: RequestToken) -> Option<ResponseError> {
        self.join_answer(token).expect("answered at once").error
    }

    /// A dynamic member's first JoinGroup: MEMBER_ID_REQUIRED, then the
    /// join that waits in the barrier. Returns the id and the waiting token.
    pub(super) fn join_new(&mut self, client: &str) -> (String, RequestToken) {
        let first = self.join("", None, client);
        let answer = self.join_answer(first).expect("answered at once");
        assert_eq!(answer.error, Some(ResponseError::MemberIdRequired));
        assert!(answer.member_id.starts_with(&format!("{client}-")));
        let token = self.join(&answer.member_id, None, client);
        (answer.member_id, token)
    }

    pub(super) fn sync(
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

    pub(super) fn heartbeat(
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

    pub(super) fn commit(
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
            offsets: to_commit(offsets),
            api_version: 9,
        };
        let (results, effects) = self.coordinator.commit(self.now_ms, request);
        self.absorb(effects);
        results.into_iter().map(|result| result.error).collect()
    }

    pub(super) fn committed(&self, topic: &str, partition: i32) -> Option<i64> {
        let wanted = [(topic.to_string(), partition)];
        let fetched = self.coordinator.fetch_offsets(GROUP, Some(&wanted), false);
        fetched[0]
            .committed
            .as_ref()
            .map(|committed| committed.offset)
    }

    pub(super) fn state(&self) -> GroupState {
        self.coordinator.describe_group(GROUP).state
    }

    /// Advances in 1 s ticks until `token` is answered, at most `limit_ms`.
    pub(super) fn wait_join(&mut self, token: RequestToken, limit_ms: i64) -> JoinResponse {
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
    pub(super) fn rejoin(&mut self, ids: &[String]) -> Vec<(String, RequestToken)> {
        ids.iter()
            .map(|id| (id.clone(), self.join(id, None, "c")))
            .collect()
    }

    /// `count` dynamic members through join and sync: a Stable group.
    /// Returns member ids (leader first) and the generation.
    pub(super) fn stable_group(&mut self, count: usize) -> (Vec<String>, i32) {
        let pending: Vec<(String, RequestToken)> = (0..count)
            .map(|index| self.join_new(&format!("c{index}")))
            .collect();
        self.finish_rebalance(pending)
    }

    /// Waits for the given joins, then syncs everyone, the leader last,
    /// assigning each member `p-<its index>`.
    pub(super) fn finish_rebalance(
        &mut self,
        pending: Vec<(String, RequestToken)>,
    ) -> (Vec<String>, i32) {
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
pub(super) fn subscription(topics: &[&str]) -> Vec<u8> {
    let mut bytes = vec![0, 0];
    bytes.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for topic in topics {
        bytes.extend_from_slice(&(topic.len() as i16).to_be_bytes());
        bytes.extend_from_slice(topic.as_bytes());
    }
    bytes.extend_from_slice(&(-1i32).to_be_bytes());
    bytes
}

/// `(topic, partition, offset)`s as a commit carries them: leader epoch 5,
/// metadata `m<offset>`.
pub(super) fn to_commit(offsets: &[(&str, i32, i64)]) -> Vec<OffsetToCommit> {
    offsets
        .iter()
        .map(|(topic, partition, offset)| OffsetToCommit {
            topic: topic.to_string(),
            partition: *partition,
            offset: *offset,
            leader_epoch: 5,
            metadata: Some(format!("m{offset}")),
        })
        .collect()
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
    assert_eq!(h.coordinator.fetch_offsets(GROUP, None, false).len(), 2);
    assert_eq!(
        h.coordinator.fetch_offsets("other", None, false),
        Vec::new()
    );

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
    }
    replay_records(&mut loaded, h.now_ms, &h.log);
    assert_eq!(
        loaded.fetch_offsets(GROUP, None, false),
        h.coordinator.fetch_offsets(GROUP, None, false)
    );
    assert_eq!(loaded.fetch_offsets(GROUP, None, false).len(), 2);
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
    replay_records(&mut h.coordinator, h.now_ms, &h.log);
    assert_eq!(h.state(), GroupState::Stable);
    assert_eq!(h.committed("t", 0), Some(3));
    assert_eq!(h.heartbeat(&ids[1], None, generation), None);
}
