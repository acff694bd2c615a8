//! `FetchSession` with real messages: every request built is encoded and
//! decoded by `kafka_protocol` as a leader would read it, every answer is
//! encoded as a leader would write it and decoded before the session reads it.

use super::*;
use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchRequest;
use kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchResponse, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use proptest::prelude::*;
use std::collections::BTreeMap;
use uuid::Uuid;

const ME: ReplicaIdentity = ReplicaIdentity {
    replica_id: 2,
    broker_epoch: 77,
};
const VERSION: i16 = FETCH_VERSION_MAX;

fn tp(topic: u128, partition: i32) -> TopicPartitionId {
    TopicPartitionId {
        topic_id: Uuid::from_u128(topic),
        partition,
    }
}

fn planned(id: TopicPartitionId, fetch_offset: i64) -> PlannedPartition {
    PlannedPartition {
        id,
        current_leader_epoch: 4,
        fetch_offset,
        last_fetched_epoch: 3,
        log_start_offset: 0,
        partition_max_bytes: REPLICA_FETCH_MAX_BYTES,
    }
}

/// The request as the leader decodes it.
fn on_the_wire(request: &FetchRequest, version: i16) -> FetchRequest {
    let mut buf = BytesMut::new();
    request.encode(&mut buf, version).unwrap();
    FetchRequest::decode(&mut buf.freeze(), version).unwrap()
}

/// (topic, partition, fetch offset) of each partition the request carries.
fn carried(request: &FetchRequest) -> Vec<(u128, i32, i64)> {
    request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.topic_id.as_u128(), p.partition, p.fetch_offset))
        })
        .collect()
}

fn forgotten(request: &FetchRequest) -> Vec<(u128, i32)> {
    request
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id.as_u128(), *p)))
        .collect()
}

fn partition_data(partition: i32) -> PartitionData {
    PartitionData::default()
        .with_partition_index(partition)
        .with_high_watermark(9)
        .with_log_start_offset(0)
}

/// A leader's answer, through the wire.
fn response(session_id: i32, error: i16, partitions: Vec<(u128, PartitionData)>) -> FetchResponse {
    let topics = partitions
        .into_iter()
        .map(|(topic, data)| {
            FetchableTopicResponse::default()
                .with_topic_id(Uuid::from_u128(topic))
                .with_partitions(vec![data])
        })
        .collect();
    let response = FetchResponse::default()
        .with_error_code(error)
        .with_session_id(session_id)
        .with_responses(topics);
    let mut buf = BytesMut::new();
    response.encode(&mut buf, VERSION).unwrap();
    FetchResponse::decode(&mut buf.freeze(), VERSION).unwrap()
}

/// A session the leader opened as `session_id`, over partitions 0 and 1
/// of topic 1 and 0 of topic 2, at offsets 10, 20, 30.
fn opened(session_id: i32) -> (FetchSession, Vec<PlannedPartition>) {
    let mut session = FetchSession::new();
    let plan = vec![
        planned(tp(1, 0), 10),
        planned(tp(1, 1), 20),
        planned(tp(2, 0), 30),
    ];
    session.build(&plan, ME, VERSION).unwrap();
    session
        .on_response(&response(session_id, 0, vec![]))
        .unwrap();
    (session, plan)
}

#[test]
fn the_first_fetch_is_full_and_says_who_fetches_as_each_version_does() {
    let mut session = FetchSession::new();
    let plan = [planned(tp(1, 0), 10), planned(tp(2, 3), 30)];
    let request = on_the_wire(&session.build(&plan, ME, VERSION).unwrap(), VERSION);
    assert_eq!((request.session_id, request.session_epoch), (0, 0));
    assert_eq!(carried(&request), vec![(1, 0, 10), (2, 3, 30)]);
    assert_eq!(request.replica_state.replica_id.0, 2);
    assert_eq!(request.replica_state.replica_epoch, 77);
    assert_eq!(request.max_bytes, REPLICA_FETCH_RESPONSE_MAX_BYTES);
    let partition = &request.topics[0].partitions[0];
    assert_eq!(
        (partition.current_leader_epoch, partition.last_fetched_epoch),
        (4, 3)
    );
    // Before v15 the replica id is the request's own field, no epoch.
    let mut old = FetchSession::new();
    let request = on_the_wire(&old.build(&plan, ME, 14).unwrap(), 14);
    assert_eq!(request.replica_id.0, 2);
    assert_eq!(
        FetchSession::new().build(&plan, ME, 12).unwrap_err(),
        SessionError::UnsupportedVersion(12)
    );
}

#[test]
fn incremental_fetches_carry_only_what_changed_and_forget_what_left() {
    let (mut session, mut plan) = opened(42);
    assert!(!session.next_is_full());
    plan[1].fetch_offset = 25;
    plan.remove(2);
    plan.push(planned(tp(3, 0), 5));
    let request = on_the_wire(&session.build(&plan, ME, VERSION).unwrap(), VERSION);
    assert_eq!((request.session_id, request.session_epoch), (42, 1));
    assert_eq!(carried(&request), vec![(1, 1, 25), (3, 0, 5)]);
    assert_eq!(forgotten(&request), vec![(2, 0)]);
    session.on_response(&response(42, 0, vec![])).unwrap();
    // Nothing changed: an empty incremental fetch, the next epoch.
    let request = on_the_wire(&session.build(&plan, ME, VERSION).unwrap(), VERSION);
    assert_eq!(request.session_epoch, 2);
    assert!(carried(&request).is_empty() && forgotten(&request).is_empty());
}

#[test]
fn epochs_wrap_past_the_largest_to_one() {
    assert_eq!(next_epoch(0), 1);
    assert_eq!(next_epoch(41), 42);
    assert_eq!(next_epoch(i32::MAX), 1);
}

#[test]
fn an_unknown_session_starts_over_and_a_bad_epoch_asks_for_a_new_one() {
    let (mut session, plan) = opened(42);
    session.build(&plan, ME, VERSION).unwrap();
    let not_found = ResponseError::FetchSessionIdNotFound;
    assert_eq!(
        session.on_response(&response(0, not_found.code(), vec![])),
        Err(SessionError::Response(not_found))
    );
    let request = session.build(&plan, ME, VERSION).unwrap();
    assert_eq!((request.session_id, request.session_epoch), (0, 0));
    assert_eq!(carried(&request).len(), 3, "a full fetch again");

    let (mut session, plan) = opened(42);
    session.build(&plan, ME, VERSION).unwrap();
    let bad_epoch = ResponseError::InvalidFetchSessionEpoch;
    assert!(session
        .on_response(&response(42, bad_epoch.code(), vec![]))
        .is_err());
    // A full fetch naming the old session closes it and opens another.
    let request = session.build(&plan, ME, VERSION).unwrap();
    assert_eq!((request.session_id, request.session_epoch), (42, 0));
    assert_eq!(carried(&request).len(), 3);
}

#[test]
fn a_lost_answer_or_a_closed_session_makes_the_next_fetch_full() {
    let (mut session, plan) = opened(42);
    session.build(&plan, ME, VERSION).unwrap();
    assert_eq!(
        session.build(&plan, ME, VERSION).unwrap_err(),
        SessionError::RequestInFlight
    );
    session.start_over();
    assert!(session.next_is_full());
    let (mut session, plan) = opened(42);
    session.build(&plan, ME, VERSION).unwrap();
    session.on_response(&response(0, 0, vec![])).unwrap();
    let request = session.build(&plan, ME, VERSION).unwrap();
    assert_eq!((request.session_id, request.session_epoch), (0, 0));
    assert_eq!(
        FetchSession::new().on_response(&response(0, 0, vec![])),
        Err(SessionError::NoRequestInFlight)
    );
}

#[test]
fn an_answer_becomes_one_partition_answer_per_partition_of_the_session() {
    let (mut session, plan) = opened(42);
    session.build(&plan, ME, VERSION).unwrap();
    let records = Bytes::from_static(b"batches");
    let diverged = EpochEndOffset::default().with_epoch(2).with_end_offset(18);
    let answers = session
        .on_response(&response(
            42,
            0,
            vec![
                (1, partition_data(0).with_records(Some(records.clone()))),
                (1, partition_data(1).with_diverging_epoch(diverged)),
                (
                    2,
                    partition_data(0).with_error_code(ResponseError::OffsetOutOfRange.code()),
                ),
                // Not in the session: dropped.
                (9, partition_data(0)),
            ],
        ))
        .unwrap();
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[0].id, tp(1, 0));
    assert_eq!(answers[0].fetch_offset, 10);
    assert_eq!(answers[0].records, Some(records));
    assert_eq!(
        (answers[0].high_watermark_offset, answers[0].diverging_epoch),
        (9, None)
    );
    assert_eq!(
        answers[1].diverging_epoch,
        Some(LocalEpochEnd {
            epoch: 2,
            end_offset: 18
        })
    );
    assert_eq!(answers[2].error, Some(ResponseError::OffsetOutOfRange));
    assert_eq!(answers[2].fetch_offset, 30);
}

#[test]
fn a_plan_answered_feeds_the_follower_decisions() {
    let mut followers = Followers::new();
    followers.apply_metadata(&[FollowedPartition {
        id: tp(1, 0),
        leader_id: 5,
        leader_epoch: 4,
    }]);
    let local = LocalLog {
        log_start_offset: 0,
        log_end_offset: 10,
        durable_end_offset: 10,
        latest_epoch: Some(3),
        high_watermark_offset: 8,
    };
    let plan = followers.plan(5, 0, |_| Some(local));
    let mut session = FetchSession::new();
    session.build(&plan, ME, VERSION).unwrap();
    let answers = session
        .on_response(&response(42, 0, vec![(1, partition_data(0))]))
        .unwrap();
    let decision = followers.on_answer(5, &answers[0], &local, |_| None, 0);
    assert!(matches!(
        decision,
        FollowerDecision::Append {
            leader_high_watermark_offset: 9,
            ..
        }
    ));
}

/// What a leader's session cache holds after reading `request` (KIP-227):
/// a full fetch replaces it, an incremental one updates and forgets.
fn leader_side(cache: &mut BTreeMap<(u128, i32), i64>, request: &FetchRequest) {
    if request.session_epoch == 0 {
        cache.clear();
    }
    for (topic, partition) in forgotten(request) {
        cache.remove(&(topic, partition));
    }
    for (topic, partition, fetch_offset) in carried(request) {
        cache.insert((topic, partition), fetch_offset);
    }
}

proptest! {
    #[test]
    fn the_leaders_session_always_holds_the_last_plan(
        rounds in prop::collection::vec(
            (prop::collection::btree_map((1u128..3, 0i32..4), 0i64..5, 0..8), 0u8..10),
            1..40,
        ),
    ) {
        let mut session = FetchSession::new();
        let mut cache = BTreeMap::new();
        let mut session_id = 0;
        for (round, (offsets, fate)) in rounds.iter().enumerate() {
            let plan: Vec<PlannedPartition> = offsets
                .iter()
                .map(|(&(topic, partition), &offset)| planned(tp(topic, partition), offset))
                .collect();
            let request = on_the_wire(&session.build(&plan, ME, VERSION).unwrap(), VERSION);
            prop_assert!(request.session_epoch == 0 || request.session_id == session_id);
            match fate {
                // Lost: the leader never saw it.
                0 => session.start_over(),
                // The leader lost the session.
                1 => {
                    let error = ResponseError::FetchSessionIdNotFound.code();
                    prop_assert!(session.on_response(&response(0, error, vec![])).is_err());
                }
                _ => {
                    leader_side(&mut cache, &request);
                    if request.session_epoch == 0 {
                        session_id = round as i32 + 1;
                    }
                    session.on_response(&response(session_id, 0, vec![])).unwrap();
                    let expected: BTreeMap<(u128, i32), i64> = plan
                        .iter()
                        .map(|p| ((p.id.topic_id.as_u128(), p.id.partition), p.fetch_offset))
                        .collect();
                    prop_assert_eq!(&cache, &expected);
                }
            }
        }
    }
}
