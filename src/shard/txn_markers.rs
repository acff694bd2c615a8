//! Writing transaction markers: a coordinator ending a transaction (or the
//! WriteTxnMarkers API) hands a marker per partition; each goes to the
//! partition's owner shard, all owners at once.
//!
//! Invariant: an answer of success means the marker is durable in that
//! partition's log; a partition the broker does not have gets
//! UNKNOWN_TOPIC_OR_PARTITION and nothing is written for it.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::error::ResponseError;

use super::messages::{KafkaError, ShardReply, ShardRequest, TopicPartition};
use super::Shard;
use crate::protocol::records::TxnMarker;

/// One owner's markers, with their positions in the caller's list.
type OwnerMarkers = (Vec<usize>, Vec<(TopicPartition, TxnMarker)>);

impl Shard {
    /// Appends each marker to its partition, on the partition's owner;
    /// one result per item of `parts`, in order.
    pub async fn write_txn_markers(
        self: &Rc<Self>,
        parts: Vec<(TopicPartition, TxnMarker)>,
    ) -> Vec<Result<(), KafkaError>> {
        let view = self.view();
        let mut results: Vec<Option<Result<(), KafkaError>>> = Vec::with_capacity(parts.len());
        let mut by_owner: BTreeMap<usize, OwnerMarkers> = BTreeMap::new();
        for (position, (partition, marker)) in parts.into_iter().enumerate() {
            let known = view
                .topic(&partition.topic)
                .is_some_and(|topic| (0..topic.partitions).contains(&partition.partition));
            if !known {
                results.push(Some(Err(KafkaError::new(
                    ResponseError::UnknownTopicOrPartition,
                ))));
                continue;
            }
            results.push(None);
            let owner = view.owner(&partition.topic, partition.partition);
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
}
