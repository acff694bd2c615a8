use super::*;
use crate::metadata::records::{MetadataRecord, PartitionRecord, TopicRecord};

const TOPIC_ID: Uuid = Uuid::from_u128(0x7);

fn standing(id: i32) -> BrokerStanding {
    BrokerStanding {
        id,
        epoch: 10,
        fenced: false,
        in_controlled_shutdown: false,
    }
}

fn brokers() -> Vec<BrokerStanding> {
    (1..=4).map(standing).collect()
}

/// Topic `t`, partition 0: `replicas` (owner shards 10, 20, ... by
/// position), ISR `isr`, led by `leader` at epoch 5.
fn image(replicas: &[i32], isr: &[i32], leader: i32) -> MetadataImage {
    let mut image = MetadataImage::default();
    let records = [
        MetadataRecord::Topic(TopicRecord {
            name: "t".into(),
            topic_id: TOPIC_ID,
        }),
        MetadataRecord::Partition(PartitionRecord {
            partition_id: 0,
            topic_id: TOPIC_ID,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            removing_replicas: Vec::new(),
            adding_replicas: Vec::new(),
            leader,
            leader_recovery_state: 0,
            leader_epoch: 5,
            partition_epoch: 5,
            directories: Vec::new(),
            shards: replicas.iter().map(|r| r * 10).collect(),
        }),
    ];
    for record in &records {
        image.apply(record).expect("applies");
    }
    image
}

fn partition(image: &MetadataImage) -> &PartitionImage {
    &image.topic_by_name("t").expect("topic").partitions[&0]
}

/// A reassignment of `topic`'s `partition` to `target` (None: a cancel)
/// that may change the replication factor (v0's meaning).
fn item(topic: &str, partition: i32, target: Option<&[i32]>) -> ReassignItem {
    ReassignItem {
        topic: topic.into(),
        partition,
        target: target.map(<[i32]>::to_vec),
        allow_replication_factor_change: true,
    }
}

/// Applies `record` when there is one.
fn apply(image: &mut MetadataImage, record: Option<PartitionChangeRecord>) {
    if let Some(record) = record {
        image
            .apply(&MetadataRecord::PartitionChange(record))
            .expect("applies");
    }
}

/// The ISR change a leader's AlterPartition makes, with `complete`.
fn isr_change(image: &MetadataImage, isr: &[i32]) -> PartitionChangeRecord {
    let mut record = PartitionChangeRecord::new(TOPIC_ID, 0);
    record.isr = Some(isr.to_vec());
    complete(partition(image), &brokers(), &mut record);
    record
}

#[test]
fn a_move_adds_the_target_waits_for_the_isr_then_drops_the_old_replicas() {
    let mut image = image(&[1, 2], &[1, 2], 1);
    let started = alter(&image, &brokers(), &item("t", 0, Some(&[3, 4])), false).unwrap();
    apply(&mut image, started);
    let p = partition(&image).clone();
    assert_eq!(p.replicas, vec![3, 4, 1, 2]);
    assert_eq!(
        (p.adding_replicas, p.removing_replicas),
        (vec![3, 4], vec![1, 2])
    );
    assert_eq!(
        (p.leader, p.leader_epoch, p.isr.clone()),
        (1, 5, vec![1, 2])
    );
    // Kept replicas keep their shard; new ones are placed by their node.
    assert_eq!(p.shards, vec![-1, -1, 10, 20]);
    assert_eq!(
        ongoing(&image, None),
        vec![Ongoing {
            topic: "t".into(),
            partition: 0,
            replicas: vec![3, 4, 1, 2],
            adding: vec![3, 4],
            removing: vec![1, 2],
        }]
    );

    // 3 joins: not yet complete.
    let record = isr_change(&image, &[1, 2, 3]);
    assert_eq!(record.replicas, None);
    apply(&mut image, Some(record));
    // 4 joins: the old replicas leave, and the leader with them.
    let record = isr_change(&image, &[1, 2, 3, 4]);
    assert_eq!(record.replicas, Some(vec![3, 4]));
    assert_eq!(record.isr, Some(vec![3, 4]));
    assert_eq!(record.leader, 3);
    apply(&mut image, Some(record));
    let p = partition(&image);
    assert_eq!(
        (p.replicas.clone(), p.isr.clone(), p.leader),
        (vec![3, 4], vec![3, 4], 3)
    );
    assert!(p.adding_replicas.is_empty() && p.removing_replicas.is_empty());
    assert_eq!(p.leader_epoch, 6);
    assert!(ongoing(&image, None).is_empty());
}

#[test]
fn a_target_the_isr_covers_completes_at_once_and_bumps_the_epoch_when_replicas_leave() {
    let mut image = image(&[1, 2, 3], &[1, 2, 3], 2);
    let record = alter(&image, &brokers(), &item("t", 0, Some(&[3, 1])), false).unwrap();
    let record = record.expect("a change");
    assert_eq!(record.replicas, Some(vec![3, 1]));
    assert_eq!(record.isr, Some(vec![1, 3]));
    assert_eq!(
        record.leader, 3,
        "the leader 2 leaves: the first target in the ISR"
    );
    assert_eq!(
        (
            record.adding_replicas.clone(),
            record.removing_replicas.clone()
        ),
        (None, None)
    );
    apply(&mut image, Some(record));
    assert_eq!(partition(&image).shards, vec![30, 10]);

    // A reordering of the same replicas keeps leader and epoch.
    let mut image = image_of(&[1, 2], 1);
    let record = alter(&image, &brokers(), &item("t", 0, Some(&[2, 1])), false).unwrap();
    assert_eq!(record.as_ref().map(|r| r.leader), Some(NO_LEADER_CHANGE));
    apply(&mut image, record);
    assert_eq!(partition(&image).leader_epoch, 5);
    // The same target again changes nothing.
    assert_eq!(
        alter(&image, &brokers(), &item("t", 0, Some(&[2, 1])), false).unwrap(),
        None
    );
}

fn image_of(replicas: &[i32], leader: i32) -> MetadataImage {
    image(replicas, replicas, leader)
}

#[test]
fn a_cancel_reverts_to_the_original_replicas() {
    let mut image = image_of(&[1, 2], 1);
    let change = alter(&image, &brokers(), &item("t", 0, Some(&[2, 3])), false).unwrap();
    apply(&mut image, change);
    let change = isr_change(&image, &[1, 2]);
    apply(&mut image, Some(change));
    let record = alter(&image, &brokers(), &item("t", 0, None), false)
        .unwrap()
        .expect("a change");
    // Kafka's original replicas: the current ones without the adding.
    assert_eq!(record.replicas, Some(vec![2, 1]));
    assert_eq!(record.adding_replicas, Some(vec![]));
    assert_eq!(record.removing_replicas, Some(vec![]));
    apply(&mut image, Some(record));
    assert_eq!(partition(&image).replicas, vec![2, 1]);
    assert_eq!(partition(&image).shards, vec![20, 10]);
    let none = alter(&image, &brokers(), &item("t", 0, None), false).unwrap_err();
    assert_eq!(none.code, ResponseError::NoReassignmentInProgress.code());
}

#[test]
fn a_cancel_that_empties_the_isr_needs_an_unclean_election() {
    // Only the adding replica 3 is in the ISR (1 and 2 fell out).
    let mut image = image(&[1, 2], &[1], 1);
    let change = alter(&image, &brokers(), &item("t", 0, Some(&[3])), false).unwrap();
    apply(&mut image, change);
    let mut record = PartitionChangeRecord::new(TOPIC_ID, 0);
    record.isr = Some(vec![3]);
    record.leader = 3;
    apply(&mut image, Some(record));
    assert_eq!(partition(&image).replicas, vec![3, 1, 2]);
    let refused = alter(&image, &brokers(), &item("t", 0, None), false).unwrap_err();
    assert_eq!(refused.code, ResponseError::InvalidReplicaAssignment.code());
    let record = alter(&image, &brokers(), &item("t", 0, None), true)
        .unwrap()
        .expect("a change");
    assert_eq!((record.isr.clone(), record.leader), (Some(vec![1]), 1));
    assert_eq!(record.leader_recovery_state, LEADER_RECOVERING);
}

#[test]
fn targets_kafka_refuses() {
    let image = image_of(&[1, 2], 1);
    let code = |target: &[i32]| {
        alter(&image, &brokers(), &item("t", 0, Some(target)), false)
            .unwrap_err()
            .code
    };
    let invalid = ResponseError::InvalidReplicaAssignment.code();
    assert_eq!(code(&[]), invalid);
    assert_eq!(code(&[1, 1]), invalid);
    assert_eq!(code(&[1, 9]), invalid, "9 is not registered");
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    let missing = |topic, partition| {
        alter(
            &image,
            &brokers(),
            &item(topic, partition, Some(&[1])),
            false,
        )
        .unwrap_err()
        .code
    };
    assert_eq!((missing("nope", 0), missing("t", 1)), (unknown, unknown));
}

#[test]
fn a_fenced_leader_is_replaced_by_a_live_isr_member() {
    let mut brokers = brokers();
    brokers[0].fenced = true;
    let image = image_of(&[1, 2, 3], 1);
    let record = alter(&image, &brokers, &item("t", 0, Some(&[1, 2, 4])), false)
        .unwrap()
        .expect("a change");
    assert_eq!(record.leader, 2);
    assert_eq!(record.adding_replicas, Some(vec![4]));
}

#[test]
fn listing_named_partitions_skips_the_unknown_and_the_settled() {
    let mut image = image_of(&[1, 2], 1);
    let change = alter(&image, &brokers(), &item("t", 0, Some(&[3])), false).unwrap();
    apply(&mut image, change);
    let asked = [("t".to_string(), vec![0, 1]), ("nope".to_string(), vec![0])];
    let listed = ongoing(&image, Some(&asked));
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].adding.clone(), listed[0].removing.clone()),
        (vec![3], vec![1, 2])
    );
    assert!(ongoing(&image, Some(&[("t".to_string(), vec![1])])).is_empty());
}

#[test]
fn without_a_replication_factor_change_allowed_only_a_target_as_long_as_the_factor_passes() {
    let mut image = image(&[1, 2], &[1, 2], 1);
    let fixed = |target: &[i32]| ReassignItem {
        allow_replication_factor_change: false,
        ..item("t", 0, Some(target))
    };
    for (target, factor_after) in [(&[1, 2, 3][..], 3), (&[3][..], 1)] {
        let refused = alter(&image, &brokers(), &fixed(target), false).unwrap_err();
        assert_eq!(refused.code, ResponseError::InvalidReplicationFactor.code());
        assert_eq!(
            refused.message.as_deref(),
            Some(format!("The replication factor is changed from 2 to {factor_after}").as_str())
        );
    }
    // The same targets pass when the flag allows them (v0 always does).
    assert!(alter(&image, &brokers(), &item("t", 0, Some(&[1, 2, 3])), false).is_ok());
    // A move of the same size passes; during it the factor compared is
    // the target's (replicas and adding, without removing), not the
    // replica list's four.
    let moving = alter(&image, &brokers(), &fixed(&[3, 4]), false).unwrap();
    apply(&mut image, moving);
    assert_eq!(partition(&image).replicas.len(), 4);
    assert!(alter(&image, &brokers(), &fixed(&[4, 3]), false).is_ok());
    let refused = alter(&image, &brokers(), &fixed(&[1, 3, 4]), false).unwrap_err();
    assert_eq!(
        refused.message.as_deref(),
        Some("The replication factor is changed from 2 to 3")
    );
    // A cancel has no target to compare.
    let cancel = ReassignItem {
        allow_replication_factor_change: false,
        ..item("t", 0, None)
    };
    assert!(alter(&image, &brokers(), &cancel, false).is_ok());
    // An invalid target is refused for that first, as Kafka checks it first.
    let unknown = alter(&image, &brokers(), &fixed(&[9]), false).unwrap_err();
    assert_eq!(unknown.code, ResponseError::InvalidReplicaAssignment.code());
}
