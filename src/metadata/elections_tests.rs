//! ElectLeaders over many partitions and the automatic rebalance: which
//! partitions move, and Kafka's answer for each.

use kafka_protocol::error::ResponseError;

use super::elections::*;
use super::image::MetadataImage;
use super::leadership::Election;
use super::records::{MetadataRecord, NO_LEADER};

/// Topics `a` and `b` with the partitions given as (replicas, ISR, leader).
fn image(a: &[(Vec<i32>, Vec<i32>, i32)], b: &[(Vec<i32>, Vec<i32>, i32)]) -> MetadataImage {
    super::leadership::tests::image_of_topics(&[("a", a), ("b", b)])
}

/// (topic, partition, leader, leader epoch) of every partition once
/// `records` are applied.
fn leaders(mut image: MetadataImage, records: &[MetadataRecord]) -> Vec<(String, i32, i32, i32)> {
    for record in records {
        image.apply(record).expect("apply");
    }
    image
        .topics
        .values()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(|(&id, p)| (topic.name.clone(), id, p.leader, p.leader_epoch))
        })
        .collect()
}

fn codes(results: &[TopicElection]) -> Vec<(String, Vec<(i32, i16)>)> {
    results
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|(p, r)| (*p, r.as_ref().err().map_or(0, |e| e.code)))
                .collect();
            (topic.topic.clone(), partitions)
        })
        .collect()
}

/// a-0 led by its preferred replica; a-1 led by 2, preferred 1 in the
/// ISR; b-0 led by 3, preferred 2 out of the ISR.
fn failed_over() -> MetadataImage {
    image(
        &[
            (vec![1, 2, 3], vec![1, 2, 3], 1),
            (vec![1, 2, 3], vec![1, 2, 3], 2),
        ],
        &[(vec![2, 3, 1], vec![3, 1], 3)],
    )
}

#[test]
fn listed_partitions_are_answered_each_in_request_order() {
    let start = failed_over();
    let wanted = vec![
        ("a".to_string(), vec![1, 0, 1, 7]),
        ("b".to_string(), vec![0]),
        ("gone".to_string(), vec![0]),
    ];
    let elected = elect_leaders(&start, Election::Preferred, Some(&wanted), |_| true);
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    assert_eq!(
        codes(&elected.results),
        vec![
            (
                "a".to_string(),
                vec![
                    (1, 0),
                    (0, ResponseError::ElectionNotNeeded.code()),
                    (1, 0),
                    (7, unknown)
                ]
            ),
            (
                "b".to_string(),
                vec![(0, ResponseError::PreferredLeaderNotAvailable.code())]
            ),
            ("gone".to_string(), vec![(0, unknown)]),
        ]
    );
    // a-1 listed twice is elected once: one epoch on, not two.
    assert_eq!(elected.records.len(), 1);
    let after = leaders(start, &elected.records);
    assert_eq!(after[1], ("a".to_string(), 1, 1, 1));
}

#[test]
fn all_partitions_leave_out_those_that_need_no_election() {
    let start = failed_over();
    let elected = elect_leaders(&start, Election::Preferred, None, |_| true);
    assert_eq!(
        codes(&elected.results),
        vec![
            ("a".to_string(), vec![(1, 0)]),
            (
                "b".to_string(),
                vec![(0, ResponseError::PreferredLeaderNotAvailable.code())]
            ),
        ]
    );
    let after = leaders(start.clone(), &elected.records);
    assert_eq!(after[0], ("a".to_string(), 0, 1, 0));
    assert_eq!(after[1], ("a".to_string(), 1, 1, 1));
    // The preferred replica cannot lead (fenced): no election.
    let elected = elect_leaders(&start, Election::Preferred, None, |id| id != 1);
    assert!(elected.records.is_empty());
}

#[test]
fn unclean_elections_give_leaderless_partitions_a_leader() {
    let start = image(
        &[
            (vec![1, 2], vec![1], NO_LEADER),
            (vec![1, 2], vec![1, 2], 2),
        ],
        &[(vec![3], vec![3], NO_LEADER)],
    );
    // 1 is gone: 2 leads a-0 out of the ISR; b-0 has no one.
    let elected = elect_leaders(&start, Election::Unclean, None, |id| id == 2);
    assert_eq!(
        codes(&elected.results),
        vec![
            ("a".to_string(), vec![(0, 0)]),
            (
                "b".to_string(),
                vec![(0, ResponseError::EligibleLeadersNotAvailable.code())]
            ),
        ]
    );
    assert_eq!(
        leaders(start, &elected.records)[0],
        ("a".to_string(), 0, 2, 1)
    );
}

#[test]
fn the_rebalance_elects_every_preferred_replica_back_whatever_its_brokers_share() {
    // Broker 1 prefers five partitions and leads four: one led elsewhere
    // (20%) is enough, as in Kafka's KRaft controller (no per-broker
    // threshold); broker 2 prefers b-0 and leads it.
    let preferred_by_1 = |leader| (vec![1, 2, 3], vec![1, 2, 3], leader);
    let start = image(
        &[
            preferred_by_1(1),
            preferred_by_1(1),
            preferred_by_1(3),
            preferred_by_1(1),
            preferred_by_1(1),
        ],
        &[(vec![2, 1, 3], vec![2, 1, 3], 2)],
    );
    let round = rebalance(&start, |_| true);
    assert_eq!(round.records.len(), 1);
    assert!(!round.more);
    let after = leaders(start.clone(), &round.records);
    assert_eq!(after[2], ("a".to_string(), 2, 1, 1), "one leader epoch on");
    assert!(
        rebalance(&after_image(start.clone(), &round.records), |_| true)
            .records
            .is_empty()
    );
    // A preferred replica that cannot lead is left where it is.
    assert!(rebalance(&start, |id| id != 1).records.is_empty());
}

/// `image` with `records` applied.
fn after_image(mut image: MetadataImage, records: &[MetadataRecord]) -> MetadataImage {
    for record in records {
        image.apply(record).expect("apply");
    }
    image
}

#[test]
fn a_balanced_cluster_or_preferred_replicas_out_of_the_isr_give_nothing_to_propose() {
    let start = image(&[(vec![1, 2], vec![2], 2)], &[]);
    assert!(rebalance(&start, |_| true).records.is_empty());
    let balanced = image(&[(vec![1, 2], vec![1, 2], 1)], &[]);
    let round = rebalance(&balanced, |_| true);
    assert!(round.records.is_empty() && !round.more);
}

#[test]
fn a_round_elects_at_most_its_bound_and_says_more_are_left() {
    let extra = 5;
    let led_by_2 = vec![(vec![1, 2], vec![1, 2], 2); REBALANCE_ELECTIONS_MAX + extra];
    let start = image(&led_by_2, &[]);
    let first = rebalance(&start, |_| true);
    assert_eq!(first.records.len(), REBALANCE_ELECTIONS_MAX);
    assert!(first.more);
    let next = after_image(start, &first.records);
    let second = rebalance(&next, |_| true);
    assert_eq!(second.records.len(), extra);
    assert!(!second.more);
    let done = after_image(next, &second.records);
    assert!(leaders(done, &[])
        .iter()
        .all(|(_, _, leader, _)| *leader == 1));
}

#[test]
fn a_partition_under_reassignment_gets_its_targets_first_replica_as_kafka_gives_it() {
    use super::reassignment::{alter, ReassignItem};
    let mut start = image(&[(vec![1, 2], vec![1, 2], 1)], &[]);
    let registered = (1..=3)
        .map(|id| super::alter_partition::BrokerStanding {
            id,
            epoch: 10,
            fenced: false,
            in_controlled_shutdown: false,
        })
        .collect::<Vec<_>>();
    let item = ReassignItem {
        topic: "a".into(),
        partition: 0,
        target: Some(vec![2, 3]),
        allow_replication_factor_change: true,
    };
    let moving = alter(&start, &registered, &item, false)
        .unwrap()
        .expect("a change");
    start
        .apply(&MetadataRecord::PartitionChange(moving))
        .expect("apply");
    let partition = &start.topic_by_name("a").unwrap().partitions[&0];
    assert_eq!(
        (partition.replicas.clone(), partition.leader),
        (vec![2, 3, 1], 1)
    );
    let round = rebalance(&start, |_| true);
    let after = leaders(start, &round.records);
    assert_eq!(after[0].2, 2);
}
