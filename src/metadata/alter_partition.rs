//! AlterPartition (api 56) on the active controller, as Kafka's
//! `ReplicationControlManager.alterPartition` decides it: a partition
//! leader asks for a new ISR (shrunk after `replica.lag.time.max.ms`,
//! expanded once a follower caught up) at the leader and partition epochs
//! it knows; the controller checks the request against the image and the
//! brokers' states and, when it holds, returns the PartitionChangeRecord
//! that sets the ISR (the image bumps the partition epoch as it applies
//! it). The answer is then the partition as committed (`committed`).
//!
//! Versions 2 and 3 (Kafka 4's: topics by id; version 3 sends each new
//! ISR member's broker epoch). Kafka's errors, in Kafka's order: the
//! sender's broker epoch (STALE_BROKER_EPOCH, the whole request); an
//! unknown topic (UNKNOWN_TOPIC_ID) or partition
//! (UNKNOWN_TOPIC_OR_PARTITION); epochs newer than the image's (NOT_CONTROLLER: this
//! controller is behind); an older leader epoch (FENCED_LEADER_EPOCH); a
//! sender that does not lead (INVALID_REQUEST, as Kafka); an older
//! partition epoch (INVALID_UPDATE_VERSION); an ISR that is not a subset of
//! the replicas, repeats a broker or lacks the leader (INVALID_REQUEST); a
//! leader recovery state that goes back to RECOVERING, or RECOVERING with
//! more than the leader (INVALID_REQUEST); a new member that is not
//! registered, is fenced, is shutting down, or (version 3) is at another
//! broker epoch (INELIGIBLE_REPLICA).
//!
//! An ISR change that covers a reassignment's target also completes it
//! (`reassignment::complete`), as Kafka's `PartitionChangeBuilder` does.
//!
//! Invariant: pure (image and brokers in, a record or an error out); a
//! record it makes keeps the leader, unless it completes a reassignment
//! that removes the leader (then the first target replica in the ISR
//! leads), so the leader stays an ISR member and the ISR is never emptied.

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::controller::KafkaError;
use super::image::{MetadataImage, PartitionImage};
use super::reassignment;
use super::records::PartitionChangeRecord;

/// Kafka's `LeaderRecoveryState`: the leader was elected cleanly, or
/// uncleanly and has not yet told the controller it recovered.
pub const LEADER_RECOVERED: i8 = 0;
pub const LEADER_RECOVERING: i8 = 1;

/// A broker epoch of -1 in `new_isr_with_epochs`: not checked (version 2
/// and below send no epochs).
pub const UNCHECKED_BROKER_EPOCH: i64 = -1;

/// One partition of an AlterPartition request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrRequest {
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// The ISR wanted, each member with its broker epoch
    /// (`UNCHECKED_BROKER_EPOCH` when the request carries none).
    pub new_isr: Vec<(i32, i64)>,
    pub leader_recovery_state: i8,
}

/// A registered broker as the active controller sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerStanding {
    pub id: i32,
    pub epoch: i64,
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
}

/// A partition as committed: what a successful AlterPartition answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedPartition {
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    pub leader_recovery_state: i8,
    pub partition_epoch: i32,
}

/// Kafka's `checkBrokerEpoch`: the sender must be registered at `epoch`.
pub fn check_sender(
    brokers: &[BrokerStanding],
    broker_id: i32,
    epoch: i64,
) -> Result<(), KafkaError> {
    match brokers.iter().find(|broker| broker.id == broker_id) {
        None => Err(KafkaError::with_message(
            ResponseError::StaleBrokerEpoch,
            format!("No broker registration found for broker id {broker_id}"),
        )),
        Some(broker) if broker.epoch != epoch => Err(KafkaError::with_message(
            ResponseError::StaleBrokerEpoch,
            format!(
                "Expected broker epoch {}, but got broker epoch {epoch}",
                broker.epoch
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// The change `request` from `sender` (whose epoch `check_sender` passed)
/// makes to `image`: a record, None when the partition already is as
/// asked, or Kafka's error.
pub fn alter_isr(
    image: &MetadataImage,
    brokers: &[BrokerStanding],
    sender: i32,
    request: &IsrRequest,
) -> Result<Option<PartitionChangeRecord>, KafkaError> {
    let partition = find(image, request)?;
    check_epochs(partition, sender, request)?;
    check_isr(partition, request)?;
    check_eligible(brokers, &request.new_isr)?;
    let isr: Vec<i32> = request.new_isr.iter().map(|&(id, _)| id).collect();
    let mut record = PartitionChangeRecord::new(request.topic_id, request.partition);
    if isr != partition.isr {
        record.isr = Some(isr);
    }
    if request.leader_recovery_state != partition.leader_recovery_state {
        record.leader_recovery_state = request.leader_recovery_state;
    }
    let unchanged = record.isr.is_none() && record.leader_recovery_state == -1;
    if unchanged {
        return Ok(None);
    }
    // An ISR that now covers a reassignment's target completes it.
    reassignment::complete(partition, brokers, &mut record);
    Ok(Some(record))
}

/// The partition `request` names, as `image` holds it: the answer to a
/// change once it is committed.
pub fn committed(
    image: &MetadataImage,
    request: &IsrRequest,
) -> Result<CommittedPartition, KafkaError> {
    let partition = find(image, request)?;
    Ok(CommittedPartition {
        leader: partition.leader,
        leader_epoch: partition.leader_epoch,
        isr: partition.isr.clone(),
        leader_recovery_state: partition.leader_recovery_state,
        partition_epoch: partition.partition_epoch,
    })
}

fn find<'a>(
    image: &'a MetadataImage,
    request: &IsrRequest,
) -> Result<&'a PartitionImage, KafkaError> {
    image
        .topics
        .get(&request.topic_id)
        .ok_or_else(|| KafkaError::new(ResponseError::UnknownTopicId))?
        .partitions
        .get(&request.partition)
        .ok_or_else(|| KafkaError::new(ResponseError::UnknownTopicOrPartition))
}

/// The epochs and the sender, in Kafka's order (the module doc).
fn check_epochs(
    partition: &PartitionImage,
    sender: i32,
    request: &IsrRequest,
) -> Result<(), KafkaError> {
    if request.leader_epoch > partition.leader_epoch
        || request.partition_epoch > partition.partition_epoch
    {
        return Err(KafkaError::new(ResponseError::NotController));
    }
    if request.leader_epoch < partition.leader_epoch {
        return Err(KafkaError::new(ResponseError::FencedLeaderEpoch));
    }
    if sender != partition.leader {
        return Err(KafkaError::with_message(
            ResponseError::InvalidRequest,
            format!(
                "broker {sender} does not lead the partition (its leader is {})",
                partition.leader
            ),
        ));
    }
    if request.partition_epoch < partition.partition_epoch {
        return Err(KafkaError::new(ResponseError::InvalidUpdateVersion));
    }
    Ok(())
}

/// The new ISR's shape: distinct replicas, the leader among them, one
/// member only while the leader recovers, never back to recovering.
fn check_isr(partition: &PartitionImage, request: &IsrRequest) -> Result<(), KafkaError> {
    let invalid = |message: &str| {
        Err(KafkaError::with_message(
            ResponseError::InvalidRequest,
            message.to_string(),
        ))
    };
    let isr: Vec<i32> = request.new_isr.iter().map(|&(id, _)| id).collect();
    let distinct = isr
        .iter()
        .enumerate()
        .all(|(at, id)| !isr[..at].contains(id));
    if !distinct || !isr.iter().all(|id| partition.replicas.contains(id)) {
        return invalid("the new ISR is not a set of the partition's replicas");
    }
    if !isr.contains(&partition.leader) {
        return invalid("the new ISR does not include the leader");
    }
    let recovering = request.leader_recovery_state == LEADER_RECOVERING;
    if recovering && isr.len() > 1 {
        return invalid(
            "the ISR may hold only the leader while it recovers from an unclean election",
        );
    }
    if recovering && partition.leader_recovery_state == LEADER_RECOVERED {
        return invalid("the leader recovery state cannot go from RECOVERED to RECOVERING");
    }
    Ok(())
}

/// Kafka's `ineligibleReplicasForIsr`: each member registered, unfenced,
/// not shutting down, and at the epoch the leader saw (when it sent one).
fn check_eligible(brokers: &[BrokerStanding], new_isr: &[(i32, i64)]) -> Result<(), KafkaError> {
    let ineligible = new_isr.iter().find_map(|&(id, epoch)| {
        let why = match brokers.iter().find(|broker| broker.id == id) {
            None => "not registered".to_string(),
            Some(broker) if broker.in_controlled_shutdown => "shutting down".to_string(),
            Some(broker) if broker.fenced => "fenced".to_string(),
            Some(broker) if epoch != UNCHECKED_BROKER_EPOCH && epoch != broker.epoch => format!(
                "broker epoch mismatch: requested={epoch} VS expected={}",
                broker.epoch
            ),
            Some(_) => return None,
        };
        Some(format!("broker {id}: {why}"))
    });
    match ineligible {
        None => Ok(()),
        Some(why) => Err(KafkaError::with_message(
            ResponseError::IneligibleReplica,
            why,
        )),
    }
}
