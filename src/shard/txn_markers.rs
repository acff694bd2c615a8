//! Writing transaction markers: a coordinator ending a transaction (or the
//! WriteTxnMarkers API) hands a marker per partition; each goes to the
//! partition's owner shard, all owners at once.
//!
//! Invariant: an answer of success means the marker is durable in that
//! partition's log, and for a `__consumer_offsets` partition that the group
//! coordinator has made the transaction's offsets committed (or dropped
//! them); a partition the broker does not have gets
//! UNKNOWN_TOPIC_OR_PARTITION and nothing is written for it.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::error::ResponseError;

use super::messages::{KafkaError, ShardReply, ShardRequest, TopicPartition};
use super::Shard;
use crate::group::OFFSETS_TOPIC;
use crate::metadata::NO_LEADER_EPOCH;
use crate::protocol::records::TxnMarker;

/// One owner's markers, with their positions in the caller's list.
type OwnerMarkers = (Vec<usize>, Vec<(TopicPartition, TxnMarker)>);

impl Shard {
    /// Appends each marker to its partition, on the partition's owner
    /// (NOT_LEADER_OR_FOLLOWER for a partition this node does not lead);
    /// one result per item of `parts`, in order.
    pub async fn write_txn_markers(
        self: &Rc<Self>,
        parts: Vec<(TopicPartition, TxnMarker)>,
    ) -> Vec<Result<(), KafkaError>> {
        let view = self.view();
        let mut results: Vec<Option<Result<(), KafkaError>>> = Vec::with_capacity(parts.len());
        let mut by_owner: BTreeMap<usize, OwnerMarkers> = BTreeMap::new();
        for (position, (partition, marker)) in parts.into_iter().enumerate() {
            let led = match view.topic(&partition.topic) {
                Some(topic) if (0..topic.partitions).contains(&partition.partition) => {
                    view.lead(topic, partition.partition, NO_LEADER_EPOCH)
                }
                _ => Err(ResponseError::UnknownTopicOrPartition),
            };
            let owner = match led {
                Ok(owner) => owner,
                Err(error) => {
                    results.push(Some(Err(KafkaError::new(error))));
                    continue;
                }
            };
            results.push(None);
            let group = by_owner.entry(owner).or_default();
            group.0.push(position);
            group.1.push((partition, marker));
        }
        let calls = by_owner
            .into_iter()
            .map(|(owner, (positions, items))| async move {
                let count = items.len();
                let answers = match self.call(owner, ShardRequest::WriteTxnMarkers(items)).await {
                    ShardReply::TxnMarkers(answers) if answers.len() == count => answers,
                    other => vec![Err(other.into_error()); count],
                };
                positions.into_iter().zip(answers).collect::<Vec<_>>()
            });
        for (position, answer) in futures_util::future::join_all(calls)
            .await
            .into_iter()
            .flatten()
        {
            results[position] = Some(answer);
        }
        results
            .into_iter()
            .map(|result| {
                result.unwrap_or_else(|| Err(KafkaError::new(ResponseError::UnknownServerError)))
            })
            .collect()
    }

    /// On the owner of every partition in `parts`: appends each marker, and
    /// once one is durable in a `__consumer_offsets` partition, ends the
    /// producer's pending offsets there (Kafka's
    /// `GroupCoordinator.onTransactionCompleted`).
    pub(super) async fn write_txn_markers_here(
        &self,
        parts: Vec<(TopicPartition, TxnMarker)>,
    ) -> Vec<Result<(), KafkaError>> {
        let offsets_ends: Vec<Option<(i32, TxnMarker)>> = parts
            .iter()
            .map(|(partition, marker)| {
                (&*partition.topic == OFFSETS_TOPIC).then_some((partition.partition, *marker))
            })
            .collect();
        let results = self.partitions.write_txn_markers(parts).await;
        for (result, end) in results.iter().zip(offsets_ends) {
            if let (Ok(()), Some((partition, marker))) = (result, end) {
                self.groups
                    .complete_txn(partition, marker.producer_id, marker.commit);
            }
        }
        results
    }
}
