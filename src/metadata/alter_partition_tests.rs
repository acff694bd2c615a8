//! AlterPartition's checks, one Kafka error per case.

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::alter_partition::*;
use super::image::MetadataImage;
use super::records::{MetadataRecord, PartitionChangeRecord, PartitionRecord, TopicRecord};

const TOPIC: Uuid = Uuid::from_u128(7);

/// Topic `t`: partition 0 on brokers 1, 2, 3, all in the ISR, led by 1
/// at leader epoch 5 and partition epoch 7.
fn image() -> MetadataImage {
    MetadataImage::replay(&[
        MetadataRecord::Topic(TopicRecord {
            name: "t".into(),
            topic_id: TOPIC,
        }),
        MetadataRecord::Partition(PartitionRecord {
            partition_id: 0,
            topic_id: TOPIC,
            replicas: vec![1, 2, 3],
            isr: vec![1, 2, 3],
            removing_replicas: Vec::new(),
            adding_replicas: Vec::new(),
            leader: 1,
            leader_recovery_state: LEADER_RECOVERED,
            leader_epoch: 5,
            partition_epoch: 7,
            directories: Vec::new(),
            shards: Vec::new(),
        }),
    ])
    .expect("replay")
}

/// Brokers 1 to 4 at epochs 10 to 40, all unfenced and running.
fn brokers() -> Vec<BrokerStanding> {
    (1..=4)
        .map(|id| BrokerStanding {
            id,
            epoch: i64::from(id) * 10,
            fenced: false,
            in_controlled_shutdown: false,
        })
        .collect()
}

/// Leader 1 asks for ISR `isr` (with their epochs) at the image's epochs.
fn shrink_to(isr: &[i32]) -> IsrRequest {
    IsrRequest {
        topic_id: TOPIC,
        partition: 0,
        leader_epoch: 5,
        partition_epoch: 7,
        new_isr: isr.iter().map(|&id| (id, i64::from(id) * 10)).collect(),
        leader_recovery_state: LEADER_RECOVERED,
    }
}

fn code(result: Result<Option<PartitionChangeRecord>, super::controller::KafkaError>) -> i16 {
    match result {
        Ok(_) => 0,
        Err(error) => error.code,
    }
}

#[test]
fn each_refusal_is_kafkas_error() {
    let fenced_3 = |mut brokers: Vec<BrokerStanding>| {
        brokers[2].fenced = true;
        brokers
    };
    let stopping_2 = |mut brokers: Vec<BrokerStanding>| {
        brokers[1].in_controlled_shutdown = true;
        brokers
    };
    type Case = (
        &'static str,
        i32,
        IsrRequest,
        Vec<BrokerStanding>,
        ResponseError,
    );
    let cases: Vec<Case> = vec![
        (
            "unknown topic id",
            1,
            IsrRequest {
                topic_id: Uuid::from_u128(99),
                ..shrink_to(&[1, 2])
            },
            brokers(),
            ResponseError::UnknownTopicId,
        ),
        (
            "unknown partition",
            1,
            IsrRequest {
                partition: 4,
                ..shrink_to(&[1, 2])
            },
            brokers(),
            ResponseError::UnknownTopicOrPartition,
        ),
        (
            "a newer leader epoch: this controller is behind",
            1,
            IsrRequest {
                leader_epoch: 6,
                ..shrink_to(&[1, 2])
            },
            brokers(),
            ResponseError::NotController,
        ),
        (
            "a newer partition epoch",
            1,
            IsrRequest {
                partition_epoch: 8,
                ..shrink_to(&[1, 2])
            },
            brokers(),
            ResponseError::NotController,
        ),
        (
            "an older leader epoch",
            1,
            IsrRequest {
                leader_epoch: 4,
                ..shrink_to(&[1, 2])
            },
            brokers(),
            ResponseError::FencedLeaderEpoch,
        ),
        (
            "a sender that does not lead",
            2,
            shrink_to(&[1, 2]),
            brokers(),
            ResponseError::InvalidRequest,
        ),
        (
            "an older partition epoch",
            1,
            IsrRequest {
                partition_epoch: 6,
                ..shrink_to(&[1, 2])
            },
            brokers(),
            ResponseError::InvalidUpdateVersion,
        ),
        (
            "a member that is no replica",
            1,
            shrink_to(&[1, 4]),
            brokers(),
            ResponseError::InvalidRequest,
        ),
        (
            "a member twice",
            1,
            shrink_to(&[1, 2, 2]),
            brokers(),
            ResponseError::InvalidRequest,
        ),
        (
            "an ISR without the leader",
            1,
            shrink_to(&[2, 3]),
            brokers(),
            ResponseError::InvalidRequest,
        ),
        (
            "back to RECOVERING",
            1,
            IsrRequest {
                leader_recovery_state: LEADER_RECOVERING,
                ..shrink_to(&[1])
            },
            brokers(),
            ResponseError::InvalidRequest,
        ),
        (
            "a fenced member",
            1,
            shrink_to(&[1, 3]),
            fenced_3(brokers()),
            ResponseError::IneligibleReplica,
        ),
        (
            "a member shutting down",
            1,
            shrink_to(&[1, 2]),
            stopping_2(brokers()),
            ResponseError::IneligibleReplica,
        ),
        (
            "a member at another broker epoch (v3)",
            1,
            IsrRequest {
                new_isr: vec![(1, 10), (2, 19)],
                ..shrink_to(&[1, 2])
            },
            brokers(),
            ResponseError::IneligibleReplica,
        ),
        (
            "a member no longer registered",
            1,
            shrink_to(&[1, 2]),
            brokers()
                .into_iter()
                .filter(|broker| broker.id != 2)
                .collect(),
            ResponseError::IneligibleReplica,
        ),
    ];
    let image = image();
    for (name, sender, request, brokers, error) in cases {
        let result = alter_isr(&image, &brokers, sender, &request);
        assert_eq!(code(result), error.code(), "{name}");
    }
}

#[test]
fn the_sender_must_be_registered_at_its_epoch() {
    let brokers = brokers();
    assert!(check_sender(&brokers, 1, 10).is_ok());
    let stale = ResponseError::StaleBrokerEpoch.code();
    assert_eq!(check_sender(&brokers, 1, 11).unwrap_err().code, stale);
    assert_eq!(check_sender(&brokers, 9, 90).unwrap_err().code, stale);
}

#[test]
fn a_valid_change_commits_the_isr_and_bumps_the_partition_epoch() {
    let mut image = image();
    let brokers = brokers();
    let request = shrink_to(&[1, 3]);
    let record = alter_isr(&image, &brokers, 1, &request)
        .expect("valid")
        .expect("a change");
    assert_eq!(record.isr, Some(vec![1, 3]));
    assert_eq!(record.leader, super::records::NO_LEADER_CHANGE);
    image
        .apply(&MetadataRecord::PartitionChange(record))
        .expect("apply");
    let answer = committed(&image, &request).expect("committed");
    assert_eq!(
        answer,
        CommittedPartition {
            leader: 1,
            leader_epoch: 5,
            isr: vec![1, 3],
            leader_recovery_state: LEADER_RECOVERED,
            partition_epoch: 8,
        }
    );
    // The same request again is stale: the partition moved on.
    assert_eq!(
        code(alter_isr(&image, &brokers, 1, &request)),
        ResponseError::InvalidUpdateVersion.code()
    );
    // At the new epoch, expanding back; unchecked epochs (v2) pass.
    let expand = IsrRequest {
        partition_epoch: 8,
        new_isr: vec![(1, -1), (2, -1), (3, -1)],
        ..request
    };
    let record = alter_isr(&image, &brokers, 1, &expand).expect("valid");
    assert_eq!(record.expect("a change").isr, Some(vec![1, 2, 3]));
    // Asking for the ISR it has changes nothing.
    let same = IsrRequest {
        partition_epoch: 8,
        ..shrink_to(&[1, 3])
    };
    assert_eq!(alter_isr(&image, &brokers, 1, &same), Ok(None));
}

#[test]
fn a_recovering_leader_reports_its_recovery() {
    let mut image = image();
    let mut change = PartitionChangeRecord::new(TOPIC, 0);
    change.isr = Some(vec![1]);
    change.leader_recovery_state = LEADER_RECOVERING;
    image
        .apply(&MetadataRecord::PartitionChange(change))
        .expect("apply");
    let brokers = brokers();
    let request = IsrRequest {
        partition_epoch: 8,
        ..shrink_to(&[1, 2])
    };
    let record = alter_isr(&image, &brokers, 1, &request)
        .expect("valid")
        .expect("a change");
    assert_eq!(record.leader_recovery_state, LEADER_RECOVERED);
    assert_eq!(record.isr, Some(vec![1, 2]));
    // Still recovering, with more than itself: refused.
    let early = IsrRequest {
        leader_recovery_state: LEADER_RECOVERING,
        ..request
    };
    assert_eq!(
        code(alter_isr(&image, &brokers, 1, &early)),
        ResponseError::InvalidRequest.code()
    );
}
