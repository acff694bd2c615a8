//! Scenario tests of the classic protocol, driven by the coordinator
//! harness of `group/tests.rs` on a fake clock: joins, syncs, heartbeats,
//! leaves, static members, and random client populations (a property test).

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use crate::group::tests::*;
use crate::group::*;

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
