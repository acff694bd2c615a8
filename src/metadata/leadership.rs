//! Partition leadership as brokers come and go, as Kafka's
//! `ReplicationControlManager` decides it (`handleBrokerFenced`,
//! `handleBrokerInControlledShutdown`, `handleBrokerUnfenced`, through
//! `PartitionChangeBuilder`), without eligible leader replicas (shoal's
//! `metadata.version` writes none):
//!
//! - a broker that leaves (fenced, or in controlled shutdown) leaves every
//!   ISR that keeps another member, and each partition it led gets the
//!   first other ISR member that can lead (in replica order) as leader,
//!   or none (`NO_LEADER`) when no other can: the ISR then keeps its last
//!   member, as Kafka keeps it, so that the partition comes back when that
//!   broker does;
//! - a broker that returns (unfenced) leads every leaderless partition
//!   whose ISR holds it;
//! - unclean election, where the topic's `unclean.leader.election.enable`
//!   (else the controller's broker default) allows it: a partition left
//!   with no ISR member that can lead gets the first replica that can (in
//!   replica order; a returning broker for the leaderless partitions it
//!   replicates) as leader, alone in the ISR, with the leader recovery
//!   state RECOVERING until that leader reports its recovery in an
//!   AlterPartition. What the old ISR had and the new leader lacks is lost:
//!   that is the trade the config makes.
//!
//! - ElectLeaders (`elect`): the preferred replica back as leader, or an
//!   unclean election of a leaderless partition, with Kafka's errors.
//!
//! Each change is one PartitionChangeRecord carrying only what changes;
//! the image applies it as Kafka's `PartitionRegistration.merge` (a new
//! leader bumps the leader epoch, any change the partition epoch).
//!
//! Invariant: pure (the image in, records out); a leader is only ever an
//! ISR member that `can_lead` allows (after an unclean election, the
//! ISR's only member); an ISR is never emptied.

use kafka_protocol::error::ResponseError;

use super::alter_partition::LEADER_RECOVERING;
use super::controller::KafkaError;
use super::image::{MetadataImage, PartitionImage, TopicImage};
use super::records::{
    MetadataRecord, PartitionChangeRecord, CONFIG_RESOURCE_TOPIC, NO_LEADER, NO_LEADER_CHANGE,
};

/// The topic config that allows unclean elections.
pub const UNCLEAN_LEADER_ELECTION_ENABLE: &str = "unclean.leader.election.enable";

/// Whether `topic` may elect a leader outside its ISR: its own
/// `unclean.leader.election.enable`, else `default` (the broker's).
pub fn unclean_allowed(image: &MetadataImage, topic: &TopicImage, default: bool) -> bool {
    image
        .configs
        .get(&(CONFIG_RESOURCE_TOPIC, topic.name.clone()))
        .and_then(|configs| configs.get(UNCLEAN_LEADER_ELECTION_ENABLE))
        .and_then(|value| value.to_ascii_lowercase().parse().ok())
        .unwrap_or(default)
}

/// The changes that take `broker_id` out of leadership and out of the
/// ISRs it shares. `can_lead`: whether another broker may lead (active:
/// unfenced, not shutting down); `unclean_default`: the broker's
/// `unclean.leader.election.enable`.
pub fn broker_leaves(
    image: &MetadataImage,
    broker_id: i32,
    can_lead: impl Fn(i32) -> bool,
    unclean_default: bool,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        let unclean = unclean_allowed(image, topic, unclean_default);
        for (&partition_id, partition) in &topic.partitions {
            let mut record = PartitionChangeRecord::new(topic.id, partition_id);
            if leave(partition, broker_id, &can_lead, unclean, &mut record) {
                records.push(MetadataRecord::PartitionChange(record));
            }
        }
    }
    records
}

/// Sets on `record` the new ISR and leader of `partition` once
/// `broker_id` leaves; false: nothing changes.
fn leave(
    partition: &PartitionImage,
    broker_id: i32,
    can_lead: &impl Fn(i32) -> bool,
    unclean: bool,
    record: &mut PartitionChangeRecord,
) -> bool {
    let in_isr = partition.isr.contains(&broker_id);
    let leads = partition.leader == broker_id;
    if !in_isr && !leads {
        return false;
    }
    let others: Vec<i32> = partition
        .isr
        .iter()
        .copied()
        .filter(|&id| id != broker_id)
        .collect();
    if in_isr && !others.is_empty() {
        record.isr = Some(others);
    }
    if leads {
        let clean = partition
            .replicas
            .iter()
            .copied()
            .find(|&id| id != broker_id && partition.isr.contains(&id) && can_lead(id));
        let uncleanly = || {
            partition
                .replicas
                .iter()
                .copied()
                .find(|&id| id != broker_id && can_lead(id))
        };
        record.leader = match (clean, unclean.then(uncleanly).flatten()) {
            (Some(leader), _) => leader,
            (None, Some(leader)) => {
                elect_uncleanly(record, leader);
                leader
            }
            (None, None) => NO_LEADER,
        };
    }
    record.isr.is_some() || record.leader != NO_LEADER_CHANGE
}

/// An unclean election of `leader`: alone in the ISR, recovering.
fn elect_uncleanly(record: &mut PartitionChangeRecord, leader: i32) {
    record.leader = leader;
    record.isr = Some(vec![leader]);
    record.leader_recovery_state = LEADER_RECOVERING;
}

/// The changes that make `broker_id` leader of every leaderless partition
/// whose ISR holds it, and, where unclean elections are allowed
/// (`unclean_default` the broker's), of every other leaderless partition
/// it replicates.
pub fn broker_returns(
    image: &MetadataImage,
    broker_id: i32,
    unclean_default: bool,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        let unclean = unclean_allowed(image, topic, unclean_default);
        for (&partition_id, partition) in &topic.partitions {
            if partition.leader != NO_LEADER || !partition.replicas.contains(&broker_id) {
                continue;
            }
            let mut record = PartitionChangeRecord::new(topic.id, partition_id);
            if partition.isr.contains(&broker_id) {
                record.leader = broker_id;
            } else if unclean {
                elect_uncleanly(&mut record, broker_id);
            } else {
                continue;
            }
            records.push(MetadataRecord::PartitionChange(record));
        }
    }
    records
}

/// ElectLeaders' election types (Kafka's `ElectionType`: 0 and 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Election {
    /// The first replica leads again, if it is in the ISR and can lead.
    Preferred,
    /// A leaderless partition gets a leader, outside the ISR if it must.
    Unclean,
}

/// Kafka's `ReplicationControlManager.electLeader`, for ElectLeaders (api
/// 43): the change that elects `election`'s leader of `partition_id` of
/// `topic`, or Kafka's error: UNKNOWN_TOPIC_OR_PARTITION; ELECTION_NOT_NEEDED
/// when the preferred replica already leads (preferred) or the partition
/// has a leader (unclean); PREFERRED_LEADER_NOT_AVAILABLE when the
/// preferred replica is out of the ISR or cannot lead;
/// ELIGIBLE_LEADERS_NOT_AVAILABLE when no replica can lead.
pub fn elect(
    image: &MetadataImage,
    topic: &str,
    partition_id: i32,
    election: Election,
    can_lead: impl Fn(i32) -> bool,
) -> Result<PartitionChangeRecord, KafkaError> {
    let found = image
        .topic_by_name(topic)
        .ok_or_else(|| unknown(format!("No such topic as {topic}")))?;
    let partition = found
        .partitions
        .get(&partition_id)
        .ok_or_else(|| unknown(format!("No such partition as {topic}-{partition_id}")))?;
    let preferred = partition.replicas.first().copied();
    let not_needed = match election {
        Election::Preferred => preferred == Some(partition.leader),
        Election::Unclean => partition.leader != NO_LEADER,
    };
    if not_needed {
        return Err(KafkaError::new(ResponseError::ElectionNotNeeded));
    }
    let mut record = PartitionChangeRecord::new(found.id, partition_id);
    let in_isr = |id: &i32| partition.isr.contains(id) && can_lead(*id);
    match election {
        Election::Preferred => match preferred.filter(in_isr) {
            Some(leader) => record.leader = leader,
            None => return Err(KafkaError::new(ResponseError::PreferredLeaderNotAvailable)),
        },
        Election::Unclean => {
            let clean = partition.replicas.iter().copied().find(in_isr);
            let unclean = || partition.replicas.iter().copied().find(|&id| can_lead(id));
            match (clean, unclean()) {
                (Some(leader), _) => record.leader = leader,
                (None, Some(leader)) => elect_uncleanly(&mut record, leader),
                (None, None) => {
                    return Err(KafkaError::new(ResponseError::EligibleLeadersNotAvailable))
                }
            }
        }
    }
    Ok(record)
}

fn unknown(message: String) -> KafkaError {
    KafkaError::with_message(ResponseError::UnknownTopicOrPartition, message)
}

/// Whether `broker_id` leads any partition in `image`.
pub fn leads_any(image: &MetadataImage, broker_id: i32) -> bool {
    image
        .topics
        .values()
        .flat_map(|topic| topic.partitions.values())
        .any(|partition| partition.leader == broker_id)
}

#[cfg(test)]
pub(super) mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::metadata::records::{ConfigRecord, PartitionRecord, TopicRecord};

    /// A partition as (replicas, ISR, leader).
    pub(in crate::metadata) type Partition = (Vec<i32>, Vec<i32>, i32);

    /// Topics named and numbered in order (ids 1, 2, ...), each with its
    /// partitions.
    pub(in crate::metadata) fn image_of_topics(topics: &[(&str, &[Partition])]) -> MetadataImage {
        let mut records = Vec::new();
        for (n, (name, partitions)) in topics.iter().enumerate() {
            let topic_id = Uuid::from_u128(n as u128 + 1);
            records.push(MetadataRecord::Topic(TopicRecord {
                name: (*name).into(),
                topic_id,
            }));
            for (at, (replicas, isr, leader)) in partitions.iter().enumerate() {
                records.push(MetadataRecord::Partition(PartitionRecord {
                    partition_id: at as i32,
                    topic_id,
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    removing_replicas: Vec::new(),
                    adding_replicas: Vec::new(),
                    leader: *leader,
                    leader_recovery_state: 0,
                    leader_epoch: 0,
                    partition_epoch: 0,
                    directories: Vec::new(),
                    shards: Vec::new(),
                }));
            }
        }
        MetadataImage::replay(&records).expect("replay")
    }

    fn image(partitions: &[(Vec<i32>, Vec<i32>, i32)]) -> MetadataImage {
        image_of_topics(&[("t", partitions)])
    }

    fn applied(mut image: MetadataImage, records: &[MetadataRecord]) -> Vec<(Vec<i32>, i32, i32)> {
        for record in records {
            image.apply(record).expect("apply");
        }
        image
            .topics
            .values()
            .next()
            .expect("topic")
            .partitions
            .values()
            .map(|p| (p.isr.clone(), p.leader, p.leader_epoch))
            .collect()
    }

    #[test]
    fn a_lone_replica_that_leaves_leaves_its_partition_leaderless_with_its_isr() {
        let start = image(&[(vec![1], vec![1], 1), (vec![2], vec![2], 2)]);
        let records = broker_leaves(&start, 1, |_| true, false);
        assert_eq!(records.len(), 1);
        let after = applied(start.clone(), &records);
        assert_eq!(after, vec![(vec![1], NO_LEADER, 1), (vec![2], 2, 0)]);
        // Back: it leads again, one epoch on; nothing else moves.
        let mut left = start;
        for record in &records {
            left.apply(record).expect("apply");
        }
        let back = broker_returns(&left, 1, false);
        assert_eq!(
            applied(left.clone(), &back),
            vec![(vec![1], 1, 2), (vec![2], 2, 0)]
        );
        assert!(broker_returns(&left, 2, false).is_empty());
    }

    #[test]
    fn a_leader_that_leaves_hands_over_to_an_isr_member_that_can_lead() {
        let start = image(&[
            (vec![1, 2, 3], vec![1, 2, 3], 1),
            (vec![3, 1], vec![3, 1], 3),
        ]);
        // 2 is fenced too: 3 leads partition 0; 1 leaves the ISR of 1.
        let records = broker_leaves(&start, 1, |id| id != 2, false);
        assert_eq!(
            applied(start.clone(), &records),
            vec![(vec![2, 3], 3, 1), (vec![3], 3, 0)]
        );
        // No one else can lead: leaderless, the others kept in the ISR.
        let records = broker_leaves(&start, 1, |_| false, false);
        assert_eq!(applied(start, &records)[0], (vec![2, 3], NO_LEADER, 1));
    }

    /// Partition 0 on 1, 2, 3 led by 1 with ISR [1]: 1 leaves while 2
    /// and 3 are alive; (unclean allowed, what follows) per case.
    #[test]
    fn unclean_election_takes_the_first_live_replica_alone_and_recovering() {
        let start = image(&[(vec![1, 2, 3], vec![1], 1)]);
        let partition = |image: &MetadataImage| {
            image.topics.values().next().expect("topic").partitions[&0].clone()
        };
        // Clean only: leaderless, ISR kept.
        let records = broker_leaves(&start, 1, |id| id != 1, false);
        assert_eq!(
            applied(start.clone(), &records),
            vec![(vec![1], NO_LEADER, 1)]
        );
        // Unclean by the broker default: 2 leads alone, recovering.
        let records = broker_leaves(&start, 1, |id| id != 1, true);
        let mut after = start.clone();
        for record in &records {
            after.apply(record).expect("apply");
        }
        let moved = partition(&after);
        assert_eq!((moved.leader, moved.isr.clone()), (2, vec![2]));
        assert_eq!(moved.leader_recovery_state, LEADER_RECOVERING);
        assert_eq!(moved.leader_epoch, 1);
        // 2 fenced too: 3 is the first replica that can lead.
        let records = broker_leaves(&start, 1, |id| id == 3, true);
        assert_eq!(applied(start.clone(), &records), vec![(vec![3], 3, 1)]);
        // The topic's own config wins over the broker default.
        let mut strict = start.clone();
        strict
            .apply(&MetadataRecord::Config(ConfigRecord {
                resource_type: CONFIG_RESOURCE_TOPIC,
                resource_name: "t".into(),
                name: UNCLEAN_LEADER_ELECTION_ENABLE.into(),
                value: Some("false".into()),
            }))
            .expect("apply");
        let records = broker_leaves(&strict, 1, |id| id != 1, true);
        assert_eq!(applied(strict, &records), vec![(vec![1], NO_LEADER, 1)]);
        // Nobody can lead: leaderless either way.
        let records = broker_leaves(&start, 1, |_| false, true);
        assert_eq!(applied(start, &records), vec![(vec![1], NO_LEADER, 1)]);
    }

    #[test]
    fn a_returning_replica_outside_the_isr_leads_only_where_unclean_is_allowed() {
        // Leaderless with ISR [1]: 3 comes back.
        let start = image(&[
            (vec![1, 2, 3], vec![1], NO_LEADER),
            (vec![1], vec![1], NO_LEADER),
        ]);
        assert!(broker_returns(&start, 3, false).is_empty());
        let records = broker_returns(&start, 3, true);
        assert_eq!(records.len(), 1, "3 replicates only partition 0");
        assert_eq!(
            applied(start.clone(), &records),
            vec![(vec![3], 3, 1), (vec![1], NO_LEADER, 0)]
        );
        // 1, in the ISR, returns cleanly, unclean allowed or not.
        let records = broker_returns(&start, 1, true);
        assert_eq!(
            applied(start, &records),
            vec![(vec![1], 1, 1), (vec![1], 1, 1)]
        );
    }

    /// Partition p of `t`: (replicas, ISR, leader), brokers 1 to 3 alive
    /// unless the case says; (election, partition, alive, what follows).
    #[test]
    fn elections_answer_as_kafkas_controller() {
        let start = image(&[
            (vec![1, 2, 3], vec![1, 2, 3], 2),
            (vec![1, 2, 3], vec![2, 3], 2),
            (vec![1, 2, 3], vec![1, 2, 3], 1),
            (vec![1, 2, 3], vec![1], NO_LEADER),
            (vec![1, 2, 3], vec![1, 2], NO_LEADER),
        ]);
        let ok = |leader, isr: Vec<i32>| Ok((leader, isr));
        let error = |error: ResponseError| Err(error.code());
        type Case = (Election, i32, &'static [i32], Result<(i32, Vec<i32>), i16>);
        let cases: Vec<Case> = vec![
            (Election::Preferred, 0, &[1, 2, 3], ok(1, vec![1, 2, 3])),
            (
                Election::Preferred,
                0,
                &[2, 3],
                error(ResponseError::PreferredLeaderNotAvailable),
            ),
            (
                Election::Preferred,
                1,
                &[1, 2, 3],
                error(ResponseError::PreferredLeaderNotAvailable),
            ),
            (
                Election::Preferred,
                2,
                &[1, 2, 3],
                error(ResponseError::ElectionNotNeeded),
            ),
            (Election::Preferred, 3, &[1, 2, 3], ok(1, vec![1])),
            (
                Election::Preferred,
                9,
                &[1, 2, 3],
                error(ResponseError::UnknownTopicOrPartition),
            ),
            (
                Election::Unclean,
                0,
                &[1, 2, 3],
                error(ResponseError::ElectionNotNeeded),
            ),
            (Election::Unclean, 3, &[2, 3], ok(2, vec![2])),
            (Election::Unclean, 4, &[2, 3], ok(2, vec![1, 2])),
            (
                Election::Unclean,
                3,
                &[],
                error(ResponseError::EligibleLeadersNotAvailable),
            ),
        ];
        for (election, partition, alive, expected) in cases {
            let result = elect(&start, "t", partition, election, |id| alive.contains(&id));
            let got = result.map_err(|error| error.code).map(|record| {
                let mut after = start.clone();
                after
                    .apply(&MetadataRecord::PartitionChange(record))
                    .expect("apply");
                let moved = &after.topics.values().next().expect("topic").partitions[&partition];
                (moved.leader, moved.isr.clone())
            });
            assert_eq!(
                got, expected,
                "{election:?} of {partition} with {alive:?} alive"
            );
        }
        assert_eq!(
            elect(&start, "nope", 0, Election::Preferred, |_| true).map_err(|e| e.code),
            Err(ResponseError::UnknownTopicOrPartition.code())
        );
    }

    #[test]
    fn leads_any_sees_only_leaders() {
        let start = image(&[(vec![1, 2], vec![1, 2], 1)]);
        assert!(leads_any(&start, 1));
        assert!(!leads_any(&start, 2));
    }
}
