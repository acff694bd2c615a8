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
//!   whose ISR holds it.
//!
//! Each change is one PartitionChangeRecord carrying only what changes;
//! the image applies it as Kafka's `PartitionRegistration.merge` (a new
//! leader bumps the leader epoch, any change the partition epoch).
//!
//! Invariant: pure (the image in, records out); a leader is only ever an
//! ISR member that `can_lead` allows; an ISR is never emptied.

use super::image::{MetadataImage, PartitionImage};
use super::records::{MetadataRecord, PartitionChangeRecord, NO_LEADER, NO_LEADER_CHANGE};

/// The changes that take `broker_id` out of leadership and out of the
/// ISRs it shares. `can_lead`: whether another broker may lead (active:
/// unfenced, not shutting down).
pub fn broker_leaves(
    image: &MetadataImage,
    broker_id: i32,
    can_lead: impl Fn(i32) -> bool,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        for (&partition_id, partition) in &topic.partitions {
            let change = leave(partition, broker_id, &can_lead);
            if let Some((isr, leader)) = change {
                let mut record = PartitionChangeRecord::new(topic.id, partition_id);
                record.isr = isr;
                record.leader = leader;
                records.push(MetadataRecord::PartitionChange(record));
            }
        }
    }
    records
}

/// The new ISR (if it changes) and leader (`NO_LEADER_CHANGE` if it does
/// not) of `partition` once `broker_id` leaves; None: nothing changes.
fn leave(
    partition: &PartitionImage,
    broker_id: i32,
    can_lead: &impl Fn(i32) -> bool,
) -> Option<(Option<Vec<i32>>, i32)> {
    let in_isr = partition.isr.contains(&broker_id);
    let leads = partition.leader == broker_id;
    if !in_isr && !leads {
        return None;
    }
    let others: Vec<i32> = partition
        .isr
        .iter()
        .copied()
        .filter(|&id| id != broker_id)
        .collect();
    let isr = (in_isr && !others.is_empty()).then_some(others);
    let leader = if leads {
        partition
            .replicas
            .iter()
            .copied()
            .find(|&id| id != broker_id && partition.isr.contains(&id) && can_lead(id))
            .unwrap_or(NO_LEADER)
    } else {
        NO_LEADER_CHANGE
    };
    if isr.is_none() && leader == NO_LEADER_CHANGE {
        return None;
    }
    Some((isr, leader))
}

/// The changes that make `broker_id` leader of every leaderless partition
/// whose ISR holds it.
pub fn broker_returns(image: &MetadataImage, broker_id: i32) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        for (&partition_id, partition) in &topic.partitions {
            if partition.leader == NO_LEADER && partition.isr.contains(&broker_id) {
                let mut record = PartitionChangeRecord::new(topic.id, partition_id);
                record.leader = broker_id;
                records.push(MetadataRecord::PartitionChange(record));
            }
        }
    }
    records
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
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::metadata::records::{PartitionRecord, TopicRecord};

    fn image(partitions: &[(Vec<i32>, Vec<i32>, i32)]) -> MetadataImage {
        let topic_id = Uuid::from_u128(1);
        let mut records = vec![MetadataRecord::Topic(TopicRecord {
            name: "t".into(),
            topic_id,
        })];
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
        MetadataImage::replay(&records).expect("replay")
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
        let records = broker_leaves(&start, 1, |_| true);
        assert_eq!(records.len(), 1);
        let after = applied(start.clone(), &records);
        assert_eq!(after, vec![(vec![1], NO_LEADER, 1), (vec![2], 2, 0)]);
        // Back: it leads again, one epoch on; nothing else moves.
        let mut left = start;
        for record in &records {
            left.apply(record).expect("apply");
        }
        let back = broker_returns(&left, 1);
        assert_eq!(
            applied(left.clone(), &back),
            vec![(vec![1], 1, 2), (vec![2], 2, 0)]
        );
        assert!(broker_returns(&left, 2).is_empty());
    }

    #[test]
    fn a_leader_that_leaves_hands_over_to_an_isr_member_that_can_lead() {
        let start = image(&[
            (vec![1, 2, 3], vec![1, 2, 3], 1),
            (vec![3, 1], vec![3, 1], 3),
        ]);
        // 2 is fenced too: 3 leads partition 0; 1 leaves the ISR of 1.
        let records = broker_leaves(&start, 1, |id| id != 2);
        assert_eq!(
            applied(start.clone(), &records),
            vec![(vec![2, 3], 3, 1), (vec![3], 3, 0)]
        );
        // No one else can lead: leaderless, the others kept in the ISR.
        let records = broker_leaves(&start, 1, |_| false);
        assert_eq!(applied(start, &records)[0], (vec![2, 3], NO_LEADER, 1));
    }

    #[test]
    fn leads_any_sees_only_leaders() {
        let start = image(&[(vec![1, 2], vec![1, 2], 1)]);
        assert!(leads_any(&start, 1));
        assert!(!leads_any(&start, 2));
    }
}
