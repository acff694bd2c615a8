//! Partition reassignment on the active controller, as Kafka's KRaft
//! controller decides it (`ReplicationControlManager.alterPartitionReassignment`,
//! `PartitionReassignmentReplicas`, `PartitionReassignmentRevert` and the
//! reassignment steps of `PartitionChangeBuilder`):
//!
//! 1. A target starts a reassignment with one PartitionChangeRecord: the
//!    replicas become the target followed by the replicas it drops
//!    (`removing`), and `adding` names the target's new ones.
//! 2. The new replicas fetch and join the ISR through AlterPartition.
//! 3. Once the ISR, without the removing replicas, holds every target
//!    replica, the change that brought it there (`complete`) also drops the
//!    removing replicas from the replicas and the ISR and clears both
//!    lists; a leader being removed hands leadership to the first target
//!    replica in the ISR, and the leader epoch is bumped whenever replicas
//!    leave, so the removed ones are fenced.
//!
//! A target the ISR already covers (a reordering, a shrink) completes in
//! step 1. A request that forbids replication factor changes (KIP-860,
//! AlterPartitionReassignments v1) has a target of another length than the
//! replica set the partition has or is headed for refused
//! INVALID_REPLICATION_FACTOR. A null target cancels: the adding replicas leave, the removing
//! ones stay, and an ISR left empty takes the first original replica,
//! which is an unclean election, refused unless the topic allows one.
//!
//! Invariant: pure (image and brokers in, a record or Kafka's error out);
//! a record it makes leaves the replicas non-empty and distinct, the ISR a
//! non-empty subset of them, and the leader in the ISR or NO_LEADER.

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::alter_partition::{BrokerStanding, LEADER_RECOVERING};
use super::controller::KafkaError;
use super::image::{MetadataImage, PartitionImage};
use super::records::{PartitionChangeRecord, NO_LEADER, NO_LEADER_CHANGE};

/// One partition of an AlterPartitionReassignments request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReassignItem {
    pub topic: String,
    pub partition: i32,
    /// The target replicas; `None` cancels.
    pub target: Option<Vec<i32>>,
    /// KIP-860's `AllowReplicationFactorChange` (v1; true before): false
    /// refuses a target whose length differs from the replication factor
    /// the partition has, or is headed for.
    pub allow_replication_factor_change: bool,
}

/// The brokers as the image registers them, for `alter` and `complete`.
pub fn standings(image: &MetadataImage) -> Vec<BrokerStanding> {
    image
        .brokers
        .values()
        .map(|broker| BrokerStanding {
            id: broker.broker_id,
            epoch: broker.broker_epoch,
            fenced: broker.fenced,
            in_controlled_shutdown: broker.in_controlled_shutdown,
        })
        .collect()
}

/// One partition's reassignment in progress, as ListPartitionReassignments
/// answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ongoing {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// The replicas, ISR, adding and removing lists a change aims at.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    replicas: Vec<i32>,
    isr: Vec<i32>,
    adding: Vec<i32>,
    removing: Vec<i32>,
}

/// The record that starts (a target) or cancels (none) the reassignment
/// of `item`'s partition; None when nothing changes. `unclean_allowed`:
/// the topic's `unclean.leader.election.enable`.
pub fn alter(
    image: &MetadataImage,
    brokers: &[BrokerStanding],
    item: &ReassignItem,
    unclean_allowed: bool,
) -> Result<Option<PartitionChangeRecord>, KafkaError> {
    let (topic, partition) = (&item.topic, item.partition);
    let unknown = || {
        KafkaError::with_message(
            ResponseError::UnknownTopicOrPartition,
            format!("Unable to find partition {topic}:{partition}."),
        )
    };
    let topic_image = image.topic_by_name(topic).ok_or_else(unknown)?;
    let current = topic_image.partitions.get(&partition).ok_or_else(unknown)?;
    let (next, unclean) = match &item.target {
        Some(target) => {
            check_target(brokers, target)?;
            if !item.allow_replication_factor_change {
                check_replication_factor(current, target)?;
            }
            (start(current, target), false)
        }
        None => cancel(current, unclean_allowed)?,
    };
    let mut record = change(topic_image.id, partition, current, next, brokers);
    if let Some(record) = record.as_mut().filter(|_| unclean) {
        // An unclean election: the new leader recovers, as Kafka marks it.
        record.leader_recovery_state = LEADER_RECOVERING;
    }
    Ok(record)
}

/// Kafka's `validatePartitionReplicationFactorUnchanged` (KIP-860): the
/// target is as long as the replica set the partition has, or, during a
/// reassignment, the one it is headed for (its replicas and adding ones,
/// without the removing ones).
fn check_replication_factor(current: &PartitionImage, target: &[i32]) -> Result<(), KafkaError> {
    let mut heading: Vec<i32> = current.replicas.clone();
    heading.extend(without(&current.adding_replicas, &current.replicas));
    let factor = without(&heading, &current.removing_replicas).len();
    if factor == target.len() {
        return Ok(());
    }
    Err(KafkaError::with_message(
        ResponseError::InvalidReplicationFactor,
        format!(
            "The replication factor is changed from {factor} to {}",
            target.len()
        ),
    ))
}

/// Kafka's `validateManualPartitionAssignment`: a non-empty list of
/// distinct registered brokers.
fn check_target(brokers: &[BrokerStanding], target: &[i32]) -> Result<(), KafkaError> {
    let invalid = |message: String| {
        Err(KafkaError::with_message(
            ResponseError::InvalidReplicaAssignment,
            message,
        ))
    };
    if target.is_empty() {
        return invalid("The manual partition assignment includes an empty replica list.".into());
    }
    let distinct = target
        .iter()
        .enumerate()
        .all(|(at, id)| !target[..at].contains(id));
    if !distinct {
        return invalid(format!(
            "The manual partition assignment includes the broker ids {target:?} more than once."
        ));
    }
    match target
        .iter()
        .find(|&&id| !brokers.iter().any(|broker| broker.id == id))
    {
        Some(id) => invalid(format!(
            "The manual partition assignment includes broker {id}, but no such broker is registered."
        )),
        None => Ok(()),
    }
}

/// Step 1: the target first, then the current replicas it drops.
fn start(current: &PartitionImage, target: &[i32]) -> Target {
    let removing = without(&current.replicas, target);
    let adding = without(target, &current.replicas);
    let mut replicas = target.to_vec();
    replicas.extend(&removing);
    Target {
        replicas,
        isr: current.isr.clone(),
        adding,
        removing,
    }
}

/// Kafka's `PartitionReassignmentRevert`; true when the ISR it leaves
/// needs an unclean election.
fn cancel(current: &PartitionImage, unclean_allowed: bool) -> Result<(Target, bool), KafkaError> {
    if current.adding_replicas.is_empty() && current.removing_replicas.is_empty() {
        return Err(KafkaError::new(ResponseError::NoReassignmentInProgress));
    }
    let replicas = without(&current.replicas, &current.adding_replicas);
    let mut isr = without(&current.isr, &current.adding_replicas);
    let unclean = isr.is_empty();
    if unclean {
        let first = replicas.first().copied().ok_or_else(|| {
            KafkaError::with_message(
                ResponseError::InvalidReplicaAssignment,
                "Invalid replica assignment: addingReplicas contains all replicas.".into(),
            )
        })?;
        if !unclean_allowed {
            return Err(KafkaError::with_message(
                ResponseError::InvalidReplicaAssignment,
                "Unable to revert the partition assignment because it would require an \
                 unclean leader election."
                    .into(),
            ));
        }
        isr.push(first);
    }
    let target = Target {
        replicas,
        isr,
        adding: Vec::new(),
        removing: Vec::new(),
    };
    Ok((target, unclean))
}

/// Step 3 for a change to `isr` (an AlterPartition's): the record gains the
/// reassignment's completion when the new ISR covers the target, and a new
/// leader when the old one leaves. Other changes are left as they were.
pub fn complete(
    current: &PartitionImage,
    brokers: &[BrokerStanding],
    record: &mut PartitionChangeRecord,
) {
    if current.adding_replicas.is_empty() && current.removing_replicas.is_empty() {
        return;
    }
    let target = Target {
        replicas: current.replicas.clone(),
        isr: record.isr.clone().unwrap_or_else(|| current.isr.clone()),
        adding: current.adding_replicas.clone(),
        removing: current.removing_replicas.clone(),
    };
    if let Some(done) = completed(&target) {
        if let Some(full) = change(record.topic_id, record.partition_id, current, done, brokers) {
            record.replicas = full.replicas;
            record.isr = full.isr.or(record.isr.take());
            record.adding_replicas = full.adding_replicas;
            record.removing_replicas = full.removing_replicas;
            if full.leader != NO_LEADER_CHANGE {
                record.leader = full.leader;
            }
        }
    }
}

/// Kafka's `maybeCompleteReassignment`: the target without the removing
/// replicas once the ISR, without them, holds every one of it.
fn completed(target: &Target) -> Option<Target> {
    if target.adding.is_empty() && target.removing.is_empty() {
        return None;
    }
    let isr = without(&target.isr, &target.removing);
    let replicas = without(&target.replicas, &target.removing);
    let covered = replicas.iter().all(|replica| isr.contains(replica));
    (!isr.is_empty() && !replicas.is_empty() && covered).then(|| Target {
        replicas,
        isr,
        adding: Vec::new(),
        removing: Vec::new(),
    })
}

/// The record that takes `current` to `next` (completed where it can be),
/// electing a leader from the ISR when the current one is no longer valid.
fn change(
    topic_id: Uuid,
    partition: i32,
    current: &PartitionImage,
    next: Target,
    brokers: &[BrokerStanding],
) -> Option<PartitionChangeRecord> {
    let next = completed(&next).unwrap_or(next);
    let mut record = PartitionChangeRecord::new(topic_id, partition);
    let acceptable = |id: i32| {
        next.isr.contains(&id)
            && brokers
                .iter()
                .any(|b| b.id == id && !b.fenced && !b.in_controlled_shutdown)
    };
    if !acceptable(current.leader) {
        let leader = next
            .replicas
            .iter()
            .copied()
            .find(|&id| acceptable(id))
            .unwrap_or(NO_LEADER);
        if leader != current.leader {
            record.leader = leader;
        }
    }
    // Kafka bumps the leader epoch when replicas leave, fencing them.
    let leaving = current.replicas.iter().any(|r| !next.replicas.contains(r));
    if leaving && record.leader == NO_LEADER_CHANGE {
        record.leader = current.leader;
    }
    if next.isr != current.isr {
        record.isr = Some(next.isr);
    }
    if next.replicas != current.replicas {
        record.replicas = Some(next.replicas);
    }
    if next.removing != current.removing_replicas {
        record.removing_replicas = Some(next.removing);
    }
    if next.adding != current.adding_replicas {
        record.adding_replicas = Some(next.adding);
    }
    let unchanged = record.leader == NO_LEADER_CHANGE
        && record.isr.is_none()
        && record.replicas.is_none()
        && record.removing_replicas.is_none()
        && record.adding_replicas.is_none();
    (!unchanged).then_some(record)
}

/// The reassignments in progress: of every topic (`topics` None) or of the
/// named topics' listed partitions, in topic and partition order.
pub fn ongoing(image: &MetadataImage, topics: Option<&[(String, Vec<i32>)]>) -> Vec<Ongoing> {
    let entry = |name: &str, index: i32, partition: &PartitionImage| {
        let reassigning =
            !partition.adding_replicas.is_empty() || !partition.removing_replicas.is_empty();
        reassigning.then(|| Ongoing {
            topic: name.to_string(),
            partition: index,
            replicas: partition.replicas.clone(),
            adding: partition.adding_replicas.clone(),
            removing: partition.removing_replicas.clone(),
        })
    };
    match topics {
        None => {
            let mut all: Vec<Ongoing> = image
                .topics
                .values()
                .flat_map(|topic| {
                    topic
                        .partitions
                        .iter()
                        .filter_map(|(&index, p)| entry(&topic.name, index, p))
                })
                .collect();
            all.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
            all
        }
        Some(topics) => topics
            .iter()
            .filter_map(|(name, partitions)| Some((image.topic_by_name(name)?, partitions)))
            .flat_map(|(topic, partitions)| {
                partitions
                    .iter()
                    .filter_map(|index| entry(&topic.name, *index, topic.partitions.get(index)?))
            })
            .collect(),
    }
}

/// `from` without the members of `drop`, in order.
fn without(from: &[i32], drop: &[i32]) -> Vec<i32> {
    from.iter()
        .copied()
        .filter(|id| !drop.contains(id))
        .collect()
}

#[cfg(test)]
#[path = "reassignment_tests.rs"]
mod tests;
