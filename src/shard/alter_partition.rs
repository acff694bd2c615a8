//! A partition leader's AlterPartition (api 56) to the active controller:
//! the broker's side of ISR changes (Kafka's `AlterPartitionManager`).
//! The leader's bookkeeping calls `alter_partition` from its owner shard
//! with the ISR it wants at the leader and partition epochs it knows; the
//! call goes over the mesh to `CONTROLLER_SHARD`, where `AlterPartitions`
//! sends it as this node's broker (its id and registered broker epoch) to
//! the active controller: in process when this node is that controller
//! (a lone voter's only way, and one hop fewer for any leading voter),
//! else over a `ControllerChannel` of its own, as heartbeats go over
//! theirs, so a slow ISR change never holds up a heartbeat or a forwarded
//! admin request. The answer is the partition as committed (leader, leader
//! epoch, ISR, recovery state, partition epoch) or Kafka's error for it.
//!
//! Invariant: every call is bounded: the mesh bounds the calls one shard
//! queues on another, the channel its waiting callers
//! (`WAITING_CALLERS_MAX`; one more fails at once) and each call's time
//! (`ALTER_PARTITION_TIMEOUT_MS`).

use std::rc::{Rc, Weak};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_request::{BrokerState, PartitionData, TopicData};
use kafka_protocol::messages::{AlterPartitionRequest, AlterPartitionResponse, BrokerId};

use super::brokers::{BrokerControl, ALTER_PARTITION_VERSION_MAX};
use super::messages::{KafkaError, ShardReply, ShardRequest};
use super::Shard;
use crate::config::BrokerConfig;
use crate::metadata::alter_partition::{CommittedPartition, IsrRequest};
use crate::metadata::controller::CONTROLLER_SHARD;
use crate::quorum::channel::{ChannelConfig, ControllerChannel, LeaderFn};
use crate::quorum::link::LinkSecurity;

/// The ISR change a leader asks for: topic id, partition, the leader and
/// partition epochs it knows, the new ISR with each member's broker epoch
/// (-1: unchecked), the leader recovery state.
pub type AlterPartitionItem = IsrRequest;

/// The partition as the controller committed it.
pub type AlterPartitionOutcome = CommittedPartition;

/// How long one AlterPartition may look for the controller, retries
/// included: Kafka's `controller.quorum.request.timeout.ms` default, the
/// time a heartbeat gets too. A leader that hears nothing keeps its ISR
/// and asks again on its next round.
const ALTER_PARTITION_TIMEOUT_MS: u64 = 2_000;

/// Asks the active controller for `item`'s ISR change, from any shard;
/// the committed partition, or Kafka's error (NOT_CONTROLLER, REQUEST_
/// TIMED_OUT and the like are retriable; INVALID_UPDATE_VERSION and
/// FENCED_LEADER_EPOCH mean the leader's view is stale).
pub async fn alter_partition(
    shard: &Rc<Shard>,
    item: AlterPartitionItem,
) -> Result<AlterPartitionOutcome, KafkaError> {
    let request = ShardRequest::AlterPartition(Box::new(item));
    match shard.call(CONTROLLER_SHARD, request).await {
        ShardReply::AlterPartition(outcome) => outcome,
        other => Err(other.into_error()),
    }
}

/// On `CONTROLLER_SHARD`: `item` sent as this node's broker.
pub async fn serve(
    shard: &Shard,
    item: AlterPartitionItem,
) -> Result<CommittedPartition, KafkaError> {
    let to = shard
        .alter_partitions
        .as_ref()
        .ok_or_else(|| KafkaError::new(ResponseError::NotController))?;
    let view = shard.view();
    let epoch = view
        .registered
        .iter()
        .find(|broker| broker.id == view.node_id)
        .map(|broker| broker.epoch)
        .ok_or_else(|| {
            KafkaError::with_message(
                ResponseError::StaleBrokerEpoch,
                "this broker is not registered yet".to_string(),
            )
        })?;
    to.send(view.node_id, epoch, item).await
}

/// This node's ways to the active controller for AlterPartition, on
/// `CONTROLLER_SHARD`.
pub struct AlterPartitions {
    /// This node's controller, when it is a voter: used while it leads.
    control: Option<Weak<BrokerControl>>,
    /// The channel to the other voters, when there are any.
    channel: Option<ControllerChannel>,
}

impl AlterPartitions {
    /// `control`: this node's controller, if it is a voter; `leader`: the
    /// quorum leader this node knows, when the cluster has other voters
    /// (None for a lone voter, which is always the controller).
    pub fn new(
        config: &BrokerConfig,
        control: Option<&Rc<BrokerControl>>,
        leader: Option<LeaderFn>,
    ) -> AlterPartitions {
        let channel = leader.map(|leader| {
            ControllerChannel::new(
                ChannelConfig {
                    client_id: format!("broker-{}-alter-partition", config.node_id),
                    voters: config.cluster.quorum_voters.clone(),
                    request_timeout_ms: ALTER_PARTITION_TIMEOUT_MS,
                    security: LinkSecurity::controller_or_plaintext(config),
                },
                leader,
            )
        });
        AlterPartitions {
            control: control.map(Rc::downgrade),
            channel,
        }
    }

    async fn send(
        &self,
        broker_id: i32,
        broker_epoch: i64,
        item: AlterPartitionItem,
    ) -> Result<CommittedPartition, KafkaError> {
        let request = request(broker_id, broker_epoch, &item);
        let version = ALTER_PARTITION_VERSION_MAX;
        let local = self.control.as_ref().and_then(Weak::upgrade);
        let response = match (local, &self.channel) {
            (Some(control), _) if control.leads() => {
                control.alter_partition(&request, version).await
            }
            (_, Some(channel)) => channel.call(request, version).await.map_err(|error| {
                KafkaError::with_message(
                    ResponseError::RequestTimedOut,
                    format!("AlterPartition: no answer from the controller: {error}"),
                )
            })?,
            _ => return Err(KafkaError::new(ResponseError::NotController)),
        };
        outcome(&response, &item)
    }
}

/// The request for `item` from broker `broker_id` at `broker_epoch`, at
/// version 3 (each member with its epoch).
fn request(broker_id: i32, broker_epoch: i64, item: &AlterPartitionItem) -> AlterPartitionRequest {
    let partition = PartitionData::default()
        .with_partition_index(item.partition)
        .with_leader_epoch(item.leader_epoch)
        .with_partition_epoch(item.partition_epoch)
        .with_leader_recovery_state(item.leader_recovery_state)
        .with_new_isr_with_epochs(
            item.new_isr
                .iter()
                .map(|&(id, epoch)| {
                    BrokerState::default()
                        .with_broker_id(BrokerId(id))
                        .with_broker_epoch(epoch)
                })
                .collect(),
        );
    AlterPartitionRequest::default()
        .with_broker_id(BrokerId(broker_id))
        .with_broker_epoch(broker_epoch)
        .with_topics(vec![TopicData::default()
            .with_topic_id(item.topic_id)
            .with_partitions(vec![partition])])
}

/// `item`'s answer in `response`: the request's error, the partition's,
/// or the partition as committed.
fn outcome(
    response: &AlterPartitionResponse,
    item: &AlterPartitionItem,
) -> Result<CommittedPartition, KafkaError> {
    let error = |code: i16| KafkaError {
        code,
        message: None,
    };
    if response.error_code != 0 {
        return Err(error(response.error_code));
    }
    let partition = response
        .topics
        .iter()
        .filter(|topic| topic.topic_id == item.topic_id)
        .flat_map(|topic| topic.partitions.iter())
        .find(|partition| partition.partition_index == item.partition)
        .ok_or_else(|| {
            KafkaError::with_message(
                ResponseError::UnknownServerError,
                "the controller's answer lacks the partition".to_string(),
            )
        })?;
    if partition.error_code != 0 {
        return Err(error(partition.error_code));
    }
    Ok(CommittedPartition {
        leader: partition.leader_id.0,
        leader_epoch: partition.leader_epoch,
        isr: partition.isr.iter().map(|id| id.0).collect(),
        leader_recovery_state: partition.leader_recovery_state,
        partition_epoch: partition.partition_epoch,
    })
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::alter_partition_response;
    use uuid::Uuid;

    use super::*;

    fn item() -> AlterPartitionItem {
        IsrRequest {
            topic_id: Uuid::from_u128(3),
            partition: 2,
            leader_epoch: 4,
            partition_epoch: 9,
            new_isr: vec![(1, 100), (2, 200)],
            leader_recovery_state: 0,
        }
    }

    /// Every version served (`BROKER_APIS`) encodes and decodes back, the
    /// request and the response; version 2 carries no member epochs.
    #[test]
    fn every_served_version_round_trips() {
        use bytes::BytesMut;
        use kafka_protocol::protocol::{Decodable, Encodable};

        use super::super::brokers::ALTER_PARTITION_VERSION_MIN;

        let item = item();
        for version in ALTER_PARTITION_VERSION_MIN..=ALTER_PARTITION_VERSION_MAX {
            let mut sent = request(1, 100, &item);
            if version < 3 {
                let partition = &mut sent.topics[0].partitions[0];
                partition.new_isr = vec![BrokerId(1), BrokerId(2)];
                partition.new_isr_with_epochs.clear();
            }
            let mut bytes = BytesMut::new();
            sent.encode(&mut bytes, version).expect("encode");
            let read = AlterPartitionRequest::decode(&mut bytes.freeze(), version).expect("decode");
            assert_eq!(read, sent, "request v{version}");
            let answer = AlterPartitionResponse::default().with_error_code(0);
            let mut bytes = BytesMut::new();
            answer.encode(&mut bytes, version).expect("encode");
            let read =
                AlterPartitionResponse::decode(&mut bytes.freeze(), version).expect("decode");
            assert_eq!(read, answer, "response v{version}");
        }
    }

    #[test]
    fn the_request_carries_the_item_and_the_answer_reads_back() {
        let item = item();
        let request = request(1, 100, &item);
        assert_eq!((request.broker_id.0, request.broker_epoch), (1, 100));
        let partition = &request.topics[0].partitions[0];
        assert_eq!(request.topics[0].topic_id, item.topic_id);
        assert_eq!(
            (
                partition.partition_index,
                partition.leader_epoch,
                partition.partition_epoch
            ),
            (2, 4, 9)
        );
        assert_eq!(partition.new_isr_with_epochs[1].broker_epoch, 200);
        let answer = |code: i16| {
            AlterPartitionResponse::default().with_topics(vec![
                alter_partition_response::TopicData::default()
                    .with_topic_id(item.topic_id)
                    .with_partitions(vec![alter_partition_response::PartitionData::default()
                        .with_partition_index(2)
                        .with_error_code(code)
                        .with_leader_id(BrokerId(1))
                        .with_leader_epoch(4)
                        .with_isr(vec![BrokerId(1), BrokerId(2)])
                        .with_partition_epoch(10)]),
            ])
        };
        let committed = outcome(&answer(0), &item).expect("committed");
        assert_eq!((committed.isr, committed.partition_epoch), (vec![1, 2], 10));
        let stale = ResponseError::InvalidUpdateVersion.code();
        assert_eq!(outcome(&answer(stale), &item).unwrap_err().code, stale);
        let whole = answer(0).with_error_code(ResponseError::StaleBrokerEpoch.code());
        assert_eq!(
            outcome(&whole, &item).unwrap_err().code,
            ResponseError::StaleBrokerEpoch.code()
        );
        let elsewhere = IsrRequest {
            partition: 5,
            ..item
        };
        assert!(outcome(&answer(0), &elsewhere).is_err());
    }
}
