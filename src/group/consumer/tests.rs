//! Consumer-protocol groups (KIP-848) driven the way a client drives them:
//! each simulated member heartbeats with the partitions it owns and takes
//! whatever assignment comes back, on a fake clock.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use crate::group::*;

const TOPIC: &str = "events";
const OTHER: &str = "audit";

fn topic_id(name: &str) -> Uuid {
    match name {
        TOPIC => Uuid::from_u128(1),
        _ => Uuid::from_u128(2),
    }
}

/// A client: its id, its epoch and what it owns.
#[derive(Debug, Clone)]
struct Client {
    member_id: String,
    epoch: i32,
    owned: BTreeMap<Uuid, BTreeSet<i32>>,
    topics: Vec<String>,
    assignor: Option<String>,
    instance_id: Option<String>,
}

struct Harness {
    coordinator: GroupCoordinator,
    /// Fed every record the coordinator writes, as a restarted coordinator
    /// would load them: it must describe the group the same way.
    restarted: GroupCoordinator,
    records_written: usize,
    now_ms: i64,
    topics: BTreeMap<String, (Uuid, i32)>,
}

impl Harness {
    fn new(partitions: &[(&str, i32)]) -> Harness {
        Harness {
            coordinator: GroupCoordinator::new(GroupConfig::default(), 7),
            restarted: GroupCoordinator::new(GroupConfig::default(), 8),
            records_written: 0,
            now_ms: 1_000_000,
            topics: partitions
                .iter()
                .map(|(name, count)| (name.to_string(), (topic_id(name), *count)))
                .collect(),
        }
    }

    fn client(&self, name: &str, topics: &[&str]) -> Client {
        Client {
            member_id: format!("member-{name}"),
            epoch: 0,
            owned: BTreeMap::new(),
            topics: topics.iter().map(|topic| topic.to_string()).collect(),
            assignor: None,
            instance_id: None,
        }
    }

    fn send(&mut self, request: ConsumerHeartbeatRequest) -> ConsumerHeartbeatResponse {
        let topics = self.topics.clone();
        let lookup = move |name: &str| topics.get(name).copied();
        let (response, effects) =
            self.coordinator
                .consumer_heartbeat(self.now_ms, request, &lookup);
        self.persist(&effects);
        response
    }

    fn tick(&mut self) -> Effects {
        let effects = self.coordinator.tick(self.now_ms);
        self.persist(&effects);
        effects
    }

    /// Replays `effects`' records into `restarted` and checks that it now
    /// holds the same membership, epochs and assignments.
    fn persist(&mut self, effects: &Effects) {
        for record in &effects.records {
            let offset = self.records_written as i64;
            self.records_written += 1;
            self.restarted
                .replay(
                    self.now_ms,
                    offset,
                    None,
                    &record.key,
                    record.value.as_deref(),
                )
                .expect("replays");
        }
        let groups = vec!["g".to_string()];
        assert_eq!(
            self.restarted.consumer_describe(&groups),
            self.coordinator.consumer_describe(&groups),
            "what is written describes the live group"
        );
    }

    fn request(&self, client: &Client) -> ConsumerHeartbeatRequest {
        let joining = client.epoch == JOIN_MEMBER_EPOCH;
        ConsumerHeartbeatRequest {
            group_id: "g".into(),
            member_id: client.member_id.clone(),
            member_epoch: client.epoch,
            instance_id: client.instance_id.clone(),
            rebalance_timeout_ms: if joining { 300_000 } else { -1 },
            subscribed_topic_names: joining.then(|| client.topics.clone()),
            server_assignor: client.assignor.clone(),
            topic_partitions: Some(
                client
                    .owned
                    .iter()
                    .map(|(id, partitions)| (*id, partitions.iter().copied().collect()))
                    .collect(),
            ),
            client_id: "rdkafka".into(),
            client_host: "/127.0.0.1".into(),
            api_version: 1,
            ..ConsumerHeartbeatRequest::default()
        }
    }

    /// One heartbeat of `client`, which then takes its new assignment at
    /// once (revoking what is gone, as a client does before its next beat).
    fn beat(&mut self, client: &mut Client) -> Result<(), ResponseError> {
        let response = self.send(self.request(client));
        if let Some(error) = response.error {
            return Err(error);
        }
        client.epoch = response.member_epoch;
        if let Some(member_id) = response.member_id {
            client.member_id = member_id;
        }
        assert_eq!(response.heartbeat_interval_ms, 5_000);
        if let Some(assignment) = response.assignment {
            client.owned = assignment
                .into_iter()
                .map(|(id, partitions)| (id, partitions.into_iter().collect()))
                .collect();
        }
        Ok(())
    }

    /// Takes client `index` out of `clients` and sends its leave heartbeat.
    fn leave(
        &mut self,
        clients: &mut Vec<Client>,
        index: usize,
    ) -> (Client, ConsumerHeartbeatResponse) {
        let mut leaving = clients.remove(index);
        leaving.epoch = LEAVE_MEMBER_EPOCH;
        let response = self.send(self.request(&leaving));
        (leaving, response)
    }

    fn state(&self) -> GroupState {
        self.coordinator.list_groups(&[])[0].state
    }

    /// Heartbeats every client in turn until the group is Stable, checking
    /// after every beat that no partition is owned twice.
    fn settle(&mut self, clients: &mut [Client]) {
        for _ in 0..20 {
            for index in 0..clients.len() {
                self.beat(&mut clients[index]).expect("heartbeat");
                assert_disjoint(clients.iter());
            }
            if self.state() == GroupState::Stable {
                return;
            }
        }
        panic!("group did not settle: {:?}", self.state());
    }
}

fn assert_disjoint<'a>(clients: impl Iterator<Item = &'a Client>) {
    let mut seen = BTreeSet::new();
    for client in clients {
        for (id, partitions) in &client.owned {
            for partition in partitions {
                assert!(
                    seen.insert((*id, *partition)),
                    "{id}/{partition} owned twice"
                );
            }
        }
    }
}

fn count(client: &Client) -> usize {
    client.owned.values().map(BTreeSet::len).sum()
}

fn all_partitions(clients: &[Client]) -> BTreeSet<(Uuid, i32)> {
    clients
        .iter()
        .flat_map(|client| {
            client
                .owned
                .iter()
                .flat_map(|(id, partitions)| partitions.iter().map(move |p| (*id, *p)))
        })
        .collect()
}

fn full(topic: &str, partitions: i32) -> BTreeSet<(Uuid, i32)> {
    (0..partitions).map(|p| (topic_id(topic), p)).collect()
}

fn three_stable(harness: &mut Harness) -> Vec<Client> {
    let mut clients: Vec<Client> = ["a", "b", "c"]
        .iter()
        .map(|name| harness.client(name, &[TOPIC]))
        .collect();
    harness.settle(&mut clients);
    clients
}

#[test]
fn steady_heartbeats_write_nothing() {
    let mut harness = Harness::new(&[(TOPIC, 6)]);
    let mut clients = three_stable(&mut harness);
    let written = harness.records_written;
    assert!(written > 0);
    for _ in 0..5 {
        harness.now_ms += 5_000;
        for client in clients.iter_mut() {
            harness.beat(client).unwrap();
        }
    }
    assert_eq!(harness.records_written, written);
}

#[test]
fn three_members_split_six_partitions_after_reconciliation() {
    let mut harness = Harness::new(&[(TOPIC, 6)]);
    let mut clients = three_stable(&mut harness);
    assert_eq!(all_partitions(&clients), full(TOPIC, 6));
    assert!(clients.iter().all(|client| count(client) == 2));
    let described = harness.coordinator.consumer_describe(&["g".to_string()]);
    let group = &described[0];
    assert_eq!(group.error, None);
    assert_eq!(group.state, GroupState::Stable);
    assert_eq!(group.assignor_name, UNIFORM_ASSIGNOR);
    assert_eq!(group.group_epoch, group.assignment_epoch);
    assert_eq!(group.members.len(), 3);
    for member in &group.members {
        assert_eq!(member.member_epoch, group.group_epoch);
        assert_eq!(member.assignment, member.target_assignment);
        assert_eq!(member.assignment[0].topic_name, TOPIC);
        assert_eq!(member.client_id, "rdkafka");
        assert_eq!(member.subscribed_topic_names, vec![TOPIC.to_string()]);
    }
    // Stable members keep their epoch and get no assignment resent.
    let epoch = clients[0].epoch;
    let response = harness.send(harness.request(&clients[0]));
    assert_eq!((response.member_epoch, response.assignment), (epoch, None));
    harness.beat(&mut clients[0]).unwrap();
    let listed = harness.coordinator.list_groups(&[]);
    assert_eq!(listed[0].group_type, GroupType::Consumer);
    assert_eq!(listed[0].protocol_type, "consumer");
}

#[test]
fn a_partition_moves_only_after_its_owner_revoked_it() {
    let mut harness = Harness::new(&[(TOPIC, 6)]);
    let mut first = harness.client("a", &[TOPIC]);
    harness.beat(&mut first).unwrap();
    assert_eq!(count(&first), 6);
    let first_epoch = first.epoch;

    let mut second = harness.client("b", &[TOPIC]);
    harness.beat(&mut second).unwrap();
    assert_eq!(count(&second), 0, "nothing is free yet");
    assert_eq!(harness.state(), GroupState::Reconciling);

    // The owner is asked to revoke half; its epoch holds until it has.
    harness.beat(&mut first).unwrap();
    assert_eq!((count(&first), first.epoch), (3, first_epoch));
    harness.beat(&mut second).unwrap();
    assert_eq!(
        count(&second),
        0,
        "the owner has not reported the revocation yet"
    );

    // It acknowledges by reporting only what it kept.
    harness.beat(&mut first).unwrap();
    assert_eq!(count(&first), 3);
    assert!(first.epoch > first_epoch);
    harness.beat(&mut second).unwrap();
    assert_eq!(count(&second), 3);
    assert_eq!(all_partitions(&[first, second]), full(TOPIC, 6));
    assert_eq!(harness.state(), GroupState::Stable);
}

#[test]
fn a_member_leaving_hands_its_partitions_to_the_others() {
    let mut harness = Harness::new(&[(TOPIC, 6)]);
    let mut clients = three_stable(&mut harness);
    let (mut leaving, response) = harness.leave(&mut clients, 1);
    assert_eq!(response.error, None);
    assert_eq!(response.member_epoch, LEAVE_MEMBER_EPOCH);
    harness.settle(&mut clients);
    assert_eq!(all_partitions(&clients), full(TOPIC, 6));
    assert!(clients.iter().all(|client| count(client) == 3));
    // The member is gone: its old epoch is unknown now.
    leaving.epoch = 5;
    assert_eq!(
        harness.beat(&mut leaving),
        Err(ResponseError::UnknownMemberId)
    );
}

#[test]
fn a_silent_member_expires_after_the_session_timeout() {
    let mut harness = Harness::new(&[(TOPIC, 6)]);
    let mut clients = three_stable(&mut harness);
    let silent = clients.remove(2);
    for _ in 0..8 {
        harness.now_ms += 5_000;
        for client in clients.iter_mut() {
            harness.beat(client).unwrap();
        }
        let effects = harness.tick();
        assert!(effects.is_empty());
    }
    assert!(harness.coordinator.consumer_describe(&["g".into()])[0]
        .members
        .iter()
        .any(|member| member.member_id == silent.member_id));
    harness.now_ms += 10_000;
    for client in clients.iter_mut() {
        harness.beat(client).unwrap();
    }
    let _ = harness.tick();
    let members = &harness.coordinator.consumer_describe(&["g".into()])[0].members;
    assert_eq!(members.len(), 2);
    harness.settle(&mut clients);
    assert_eq!(all_partitions(&clients), full(TOPIC, 6));
}

#[test]
fn a_member_that_does_not_revoke_in_time_is_removed() {
    let mut harness = Harness::new(&[(TOPIC, 6)]);
    let mut first = harness.client("a", &[TOPIC]);
    harness.beat(&mut first).unwrap();
    let mut second = harness.client("b", &[TOPIC]);
    harness.beat(&mut second).unwrap();
    // The first is told to revoke but keeps reporting everything.
    let stubborn = first.clone();
    let _ = harness.send(harness.request(&stubborn));
    harness.now_ms += 299_000;
    let _ = harness.send(harness.request(&stubborn));
    harness.beat(&mut second).unwrap();
    let _ = harness.tick();
    assert_eq!(
        harness.coordinator.consumer_describe(&["g".into()])[0]
            .members
            .len(),
        2
    );
    harness.now_ms += 2_000;
    harness.beat(&mut second).unwrap();
    let _ = harness.tick();
    assert_eq!(
        harness.coordinator.consumer_describe(&["g".into()])[0]
            .members
            .len(),
        1
    );
    harness.beat(&mut second).unwrap();
    assert_eq!(count(&second), 6);
    assert_eq!(
        harness.beat(&mut first.clone()),
        Err(ResponseError::UnknownMemberId)
    );
}

#[test]
fn wrong_epochs_are_fenced_and_unknown_members_refused() {
    let mut harness = Harness::new(&[(TOPIC, 6)]);
    let clients = three_stable(&mut harness);
    let mut ahead = clients[0].clone();
    ahead.epoch += 1;
    assert_eq!(
        harness.beat(&mut ahead),
        Err(ResponseError::FencedMemberEpoch)
    );
    let mut behind = clients[0].clone();
    behind.epoch -= 1;
    behind.owned = [(topic_id(TOPIC), (0..6).collect())].into();
    assert_eq!(
        harness.beat(&mut behind),
        Err(ResponseError::FencedMemberEpoch)
    );
    let mut stranger = harness.client("z", &[TOPIC]);
    stranger.epoch = 3;
    assert_eq!(
        harness.beat(&mut stranger),
        Err(ResponseError::UnknownMemberId)
    );
    // Rejoining under a known id with epoch 0 is fenced too, as in Kafka.
    let mut rejoin = clients[1].clone();
    rejoin.epoch = 0;
    rejoin.owned.clear();
    assert_eq!(
        harness.beat(&mut rejoin),
        Err(ResponseError::FencedMemberEpoch)
    );
}

#[test]
fn requests_are_validated() {
    let mut harness = Harness::new(&[(TOPIC, 6)]);
    let client = harness.client("a", &[TOPIC]);
    let mut request = harness.request(&client);
    request.member_id.clear();
    assert_eq!(
        harness.send(request.clone()).error,
        Some(ResponseError::InvalidRequest)
    );
    // v0 members may let the coordinator pick their id.
    request.api_version = 0;
    let response = harness.send(request);
    assert_eq!(response.error, None);
    assert!(!response.member_id.unwrap().is_empty());
    let mut unknown_assignor = harness.request(&harness.client("b", &[TOPIC]));
    unknown_assignor.server_assignor = Some("sticky".into());
    assert_eq!(
        harness.send(unknown_assignor).error,
        Some(ResponseError::UnsupportedAssignor)
    );
    let mut no_subscription = harness.request(&harness.client("c", &[TOPIC]));
    no_subscription.subscribed_topic_names = None;
    assert_eq!(
        harness.send(no_subscription).error,
        Some(ResponseError::InvalidRequest)
    );
}

#[test]
fn range_and_uniform_assign_differently() {
    let assign = |assignor: &str| {
        let mut harness = Harness::new(&[(TOPIC, 3), (OTHER, 3)]);
        let mut clients: Vec<Client> = ["a", "b"]
            .iter()
            .map(|name| {
                let mut client = harness.client(name, &[TOPIC, OTHER]);
                client.assignor = Some(assignor.to_string());
                client
            })
            .collect();
        harness.settle(&mut clients);
        let mut all = full(TOPIC, 3);
        all.extend(full(OTHER, 3));
        assert_eq!(all_partitions(&clients), all);
        assert_eq!(
            harness.coordinator.consumer_describe(&["g".into()])[0].assignor_name,
            assignor
        );
        let mut leaving = clients.clone();
        while !leaving.is_empty() {
            harness.leave(&mut leaving, 0);
        }
        assert_eq!(
            harness.coordinator.consumer_describe(&["g".into()])[0].assignor_name,
            UNIFORM_ASSIGNOR,
            "an empty group names the default assignor, as Kafka's does"
        );
        clients
    };
    let range = assign(RANGE_ASSIGNOR);
    let first = &range[0].owned;
    assert_eq!(first[&topic_id(TOPIC)], [0, 1].into());
    assert_eq!(first[&topic_id(OTHER)], [0, 1].into());
    assert_eq!((count(&range[0]), count(&range[1])), (4, 2));
    let uniform = assign(UNIFORM_ASSIGNOR);
    assert_eq!((count(&uniform[0]), count(&uniform[1])), (3, 3));
}

#[test]
fn a_new_topic_partition_count_bumps_the_group_epoch() {
    let mut harness = Harness::new(&[(TOPIC, 2)]);
    let mut clients = three_stable(&mut harness);
    let before = harness.coordinator.consumer_describe(&["g".into()])[0].group_epoch;
    harness
        .topics
        .insert(TOPIC.to_string(), (topic_id(TOPIC), 6));
    harness.settle(&mut clients);
    let after = harness.coordinator.consumer_describe(&["g".into()])[0].group_epoch;
    assert_eq!(after, before + 1);
    assert_eq!(all_partitions(&clients), full(TOPIC, 6));
}

#[test]
fn a_static_member_comes_back_to_its_partitions() {
    let mut harness = Harness::new(&[(TOPIC, 6)]);
    let mut clients: Vec<Client> = ["a", "b"]
        .iter()
        .map(|name| {
            let mut client = harness.client(name, &[TOPIC]);
            client.instance_id = Some(format!("instance-{name}"));
            client
        })
        .collect();
    harness.settle(&mut clients);
    let before = clients[0].owned.clone();
    let epoch = harness.coordinator.consumer_describe(&["g".into()])[0].group_epoch;
    let mut leaving = clients[0].clone();
    leaving.epoch = LEAVE_STATIC_MEMBER_EPOCH;
    assert_eq!(harness.send(harness.request(&leaving)).member_epoch, -2);
    // Another process with the same instance id, while the first is still
    // registered, is refused; after the temporary leave it takes over.
    let mut back = harness.client("a2", &[TOPIC]);
    back.instance_id = Some("instance-a".into());
    harness.beat(&mut back).unwrap();
    assert_eq!(back.owned, before);
    let described = &harness.coordinator.consumer_describe(&["g".into()])[0];
    assert_eq!(described.group_epoch, epoch, "no rebalance");
    assert!(described
        .members
        .iter()
        .any(|m| m.member_id == back.member_id));
    let mut intruder = harness.client("a3", &[TOPIC]);
    intruder.instance_id = Some("instance-a".into());
    assert_eq!(
        harness.beat(&mut intruder),
        Err(ResponseError::UnreleasedInstanceId)
    );
}

#[test]
fn classic_and_consumer_groups_do_not_mix() {
    let mut harness = Harness::new(&[(TOPIC, 6)]);
    let mut client = harness.client("a", &[TOPIC]);
    harness.beat(&mut client).unwrap();
    let join = JoinRequest {
        group_id: "g".into(),
        member_id: String::new(),
        group_instance_id: None,
        client_id: "classic".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), bytes::Bytes::from_static(b"x"))],
        reason: None,
        api_version: 9,
    };
    let effects = harness.coordinator.join(harness.now_ms, 1, join.clone());
    harness.persist(&effects);
    match &effects.completions[..] {
        [Completion::Join(1, response)] => {
            assert_eq!(
                response.error,
                Some(ResponseError::InconsistentGroupProtocol)
            )
        }
        other => panic!("{other:?}"),
    }
    // Once empty, the group can turn classic, and then refuses consumers.
    client.epoch = LEAVE_MEMBER_EPOCH;
    assert_eq!(harness.send(harness.request(&client)).error, None);
    let mut join = join;
    join.api_version = 3;
    let effects = harness.coordinator.join(harness.now_ms, 2, join);
    harness.persist(&effects);
    // The consumer group's records are tombstoned, its epoch record last.
    let epoch_key = crate::group::records::encode_consumer_key(
        "g",
        &crate::group::records::ConsumerRecordKind::GroupEpoch,
    );
    let tombstones: Vec<_> = effects
        .records
        .iter()
        .filter(|record| record.key[..2] != [0, 2])
        .collect();
    assert!(tombstones.iter().all(|record| record.value.is_none()));
    assert_eq!(
        tombstones.last().map(|record| &record.key),
        Some(&epoch_key)
    );
    assert_eq!(
        harness.coordinator.list_groups(&[])[0].group_type,
        GroupType::Classic
    );
    let newcomer = harness.client("b", &[TOPIC]);
    assert_eq!(
        harness.send(harness.request(&newcomer)).error,
        Some(ResponseError::GroupIdNotFound)
    );
    assert_eq!(
        harness.coordinator.consumer_describe(&["g".into()])[0].error,
        Some(ResponseError::GroupIdNotFound)
    );
}

#[test]
fn members_commit_with_their_member_epoch() {
    let mut harness = Harness::new(&[(TOPIC, 6)]);
    let clients = three_stable(&mut harness);
    let commit = |epoch: i32, member: &str, version: i16| CommitRequest {
        group_id: "g".into(),
        generation_id: epoch,
        member_id: member.into(),
        group_instance_id: None,
        offsets: vec![OffsetToCommit {
            topic: TOPIC.into(),
            partition: 0,
            offset: 42,
            leader_epoch: -1,
            metadata: None,
        }],
        api_version: version,
    };
    let member = &clients[0];
    let error = |harness: &mut Harness, request| {
        let (results, _) = harness.coordinator.commit(harness.now_ms, request);
        results[0].error
    };
    assert_eq!(
        error(&mut harness, commit(member.epoch, &member.member_id, 9)),
        None
    );
    assert_eq!(
        error(&mut harness, commit(member.epoch + 1, &member.member_id, 9)),
        Some(ResponseError::StaleMemberEpoch)
    );
    assert_eq!(
        error(&mut harness, commit(member.epoch, &member.member_id, 8)),
        Some(ResponseError::UnsupportedVersion)
    );
    assert_eq!(
        error(&mut harness, commit(member.epoch, "nobody", 9)),
        Some(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        error(&mut harness, commit(-1, "", 9)),
        Some(ResponseError::UnknownMemberId),
        "tools commit only to empty groups"
    );
    let fetched = harness
        .coordinator
        .fetch_offsets("g", Some(&[(TOPIC.to_string(), 0)]), false);
    assert_eq!(fetched[0].committed.as_ref().map(|c| c.offset), Some(42));
    let fetch = |member_id: &str, epoch| {
        harness
            .coordinator
            .validate_consumer_fetch("g", member_id, epoch)
    };
    assert_eq!(fetch(&member.member_id, member.epoch), None);
    assert_eq!(
        fetch(&member.member_id, member.epoch - 1),
        Some(ResponseError::StaleMemberEpoch)
    );
    assert_eq!(fetch("nobody", 1), Some(ResponseError::UnknownMemberId));
}

#[test]
fn a_commit_racing_an_epoch_bump_is_accepted_for_partitions_held_since() {
    let mut harness = Harness::new(&[(TOPIC, 6)]);
    let mut clients = three_stable(&mut harness);
    harness.leave(&mut clients, 1);
    let before = clients[0].clone();
    harness.settle(&mut clients);
    let after = &clients[0];
    assert!(after.epoch > before.epoch);
    let kept = *before.owned[&topic_id(TOPIC)].iter().next().unwrap();
    let gained = *after.owned[&topic_id(TOPIC)]
        .difference(&before.owned[&topic_id(TOPIC)])
        .next()
        .expect("the member took some of the leaver's partitions");
    let commit = |epoch: i32, partitions: &[i32]| CommitRequest {
        group_id: "g".into(),
        generation_id: epoch,
        member_id: after.member_id.clone(),
        group_instance_id: None,
        offsets: partitions
            .iter()
            .map(|partition| OffsetToCommit {
                topic: TOPIC.into(),
                partition: *partition,
                offset: 7,
                leader_epoch: -1,
                metadata: None,
            })
            .collect(),
        api_version: 9,
    };
    let mut error = |request| harness.coordinator.commit(harness.now_ms, request).0[0].error;
    assert_eq!(
        error(commit(before.epoch, &[kept])),
        None,
        "held since the old epoch"
    );
    assert_eq!(
        error(commit(before.epoch, &[kept, gained])),
        Some(ResponseError::StaleMemberEpoch),
        "the new partition was not the member's at the old epoch"
    );
    assert_eq!(error(commit(after.epoch, &[kept, gained])), None);
    assert_eq!(
        error(commit(after.epoch + 1, &[kept])),
        Some(ResponseError::StaleMemberEpoch),
        "an epoch from the future"
    );
    let foreign = *clients[1].owned[&topic_id(TOPIC)].iter().next().unwrap();
    assert_eq!(
        error(commit(before.epoch, &[foreign])),
        Some(ResponseError::StaleMemberEpoch),
        "another member's partition"
    );
}
