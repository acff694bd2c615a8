//! Writing transaction markers: a coordinator ending a transaction (or the
//! WriteTxnMarkers API) hands a marker per partition; each goes to the
//! partition's owner shard, all owners at once. The coordinator's markers
//! for partitions another node leads go to that node as WriteTxnMarkers
//! (Kafka's `TransactionMarkerChannelManager`), one request per node,
//! on this shard's marker link to it (`to_broker.rs`).
//!
//! Invariant: an answer of success means the marker is durable in that
//! partition's log (on the node leading it), and for a
//! `__consumer_offsets` partition that the group coordinator has made the
//! transaction's offsets committed (or dropped them); a partition the
//! broker does not have gets UNKNOWN_TOPIC_OR_PARTITION and nothing is
//! written for it. WriteTxnMarkers received is written here or refused,
//! never sent on: two nodes that disagree on a leader cannot pass markers
//! back and forth.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::messages::{KafkaError, ShardReply, ShardRequest, TopicPartition};
use super::to_broker::Purpose;
use super::Shard;
use crate::group::OFFSETS_TOPIC;
use crate::metadata::records::NO_LEADER;
use crate::metadata::NO_LEADER_EPOCH;
use crate::protocol::records::TxnMarker;

/// WriteTxnMarkers' only version (shoal's and Kafka's coordinators send).
const WRITE_TXN_MARKERS_VERSION: i16 = 1;

/// One owner's markers, with their positions in the caller's list.
type OwnerMarkers = (Vec<usize>, Vec<(TopicPartition, TxnMarker)>);

/// Where the coordinator's marker for a partition goes.
enum Destination {
    Here,
    Node(i32),
    Nowhere(ResponseError),
}

impl Shard {
    /// The coordinator's markers: each to its partition's leader, this
    /// node's owner shard or the leading node; one result per item of
    /// `parts`, in order.
    pub async fn send_txn_markers(
        self: &Rc<Self>,
        parts: Vec<(TopicPartition, TxnMarker)>,
    ) -> Vec<Result<(), KafkaError>> {
        let view = self.view();
        let mut results: Vec<Option<Result<(), KafkaError>>> = Vec::with_capacity(parts.len());
        let mut here: OwnerMarkers = (Vec::new(), Vec::new());
        let mut by_node: BTreeMap<i32, OwnerMarkers> = BTreeMap::new();
        for (position, (partition, marker)) in parts.into_iter().enumerate() {
            let destination = match view.topic(&partition.topic) {
                Some(topic) if (0..topic.partitions).contains(&partition.partition) => {
                    let leader = view.state(topic, partition.partition).leader;
                    if leader == view.node_id {
                        Destination::Here
                    } else if leader == NO_LEADER {
                        Destination::Nowhere(ResponseError::NotLeaderOrFollower)
                    } else {
                        Destination::Node(leader)
                    }
                }
                _ => Destination::Nowhere(ResponseError::UnknownTopicOrPartition),
            };
            let group = match destination {
                Destination::Here => &mut here,
                Destination::Node(node_id) => by_node.entry(node_id).or_default(),
                Destination::Nowhere(error) => {
                    results.push(Some(Err(KafkaError::new(error))));
                    continue;
                }
            };
            results.push(None);
            group.0.push(position);
            group.1.push((partition, marker));
        }
        let local = async {
            let (positions, items) = here;
            positions
                .into_iter()
                .zip(self.write_txn_markers(items).await)
                .collect::<Vec<_>>()
        };
        let remote = by_node
            .into_iter()
            .map(|(node_id, (positions, items))| async move {
                let answers = self.write_txn_markers_on(node_id, &items).await;
                positions.into_iter().zip(answers).collect::<Vec<_>>()
            });
        let (local, remote) =
            futures_util::future::join(local, futures_util::future::join_all(remote)).await;
        filled(
            results,
            local.into_iter().chain(remote.into_iter().flatten()),
        )
    }

    /// Sends `items` to node `node_id` in one WriteTxnMarkers; each
    /// partition's answer in order (NETWORK_EXCEPTION for all when the
    /// exchange fails, which the coordinator retries).
    async fn write_txn_markers_on(
        &self,
        node_id: i32,
        items: &[(TopicPartition, TxnMarker)],
    ) -> Vec<Result<(), KafkaError>> {
        let request = markers_request(items);
        let answer = self
            .call_broker(
                Purpose::Markers,
                node_id,
                &request,
                WRITE_TXN_MARKERS_VERSION,
            )
            .await;
        match answer {
            Ok(response) => markers_answers(items, &response),
            Err(error) => {
                log::warn!("transaction markers on node {node_id}: {error}");
                let failed = KafkaError::with_message(ResponseError::NetworkException, error);
                vec![Err(failed); items.len()]
            }
        }
    }

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
        let answers = futures_util::future::join_all(calls).await;
        filled(results, answers.into_iter().flatten())
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

/// `results` with each `(position, answer)` of `answers` in its place;
/// a place none filled is an UNKNOWN_SERVER_ERROR.
fn filled(
    mut results: Vec<Option<Result<(), KafkaError>>>,
    answers: impl Iterator<Item = (usize, Result<(), KafkaError>)>,
) -> Vec<Result<(), KafkaError>> {
    for (position, answer) in answers {
        results[position] = Some(answer);
    }
    results
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|| Err(KafkaError::new(ResponseError::UnknownServerError)))
        })
        .collect()
}

/// WriteTxnMarkers for `items`: one marker entry per distinct marker, its
/// partitions by topic.
fn markers_request(items: &[(TopicPartition, TxnMarker)]) -> WriteTxnMarkersRequest {
    let mut markers: Vec<(TxnMarker, BTreeMap<&str, Vec<i32>>)> = Vec::new();
    for (partition, marker) in items {
        let at = match markers.iter().position(|(m, _)| m == marker) {
            Some(at) => at,
            None => {
                markers.push((*marker, BTreeMap::new()));
                markers.len() - 1
            }
        };
        markers[at]
            .1
            .entry(&*partition.topic)
            .or_default()
            .push(partition.partition);
    }
    let markers = markers
        .into_iter()
        .map(|(marker, topics)| {
            WritableTxnMarker::default()
                .with_producer_id(ProducerId(marker.producer_id))
                .with_producer_epoch(marker.producer_epoch)
                .with_transaction_result(marker.commit)
                .with_coordinator_epoch(marker.coordinator_epoch)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(topic, partitions)| {
                            WritableTxnMarkerTopic::default()
                                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                                .with_partition_indexes(partitions)
                        })
                        .collect(),
                )
        })
        .collect();
    WriteTxnMarkersRequest::default().with_markers(markers)
}

/// Each item's result in `response`, found by producer id, topic and
/// partition; one the answer does not name is not written.
fn markers_answers(
    items: &[(TopicPartition, TxnMarker)],
    response: &WriteTxnMarkersResponse,
) -> Vec<Result<(), KafkaError>> {
    items
        .iter()
        .map(|(partition, marker)| {
            let code = response
                .markers
                .iter()
                .filter(|m| m.producer_id.0 == marker.producer_id)
                .flat_map(|m| &m.topics)
                .filter(|t| t.name.0.as_str() == &*partition.topic)
                .flat_map(|t| &t.partitions)
                .find(|p| p.partition_index == partition.partition)
                .map(|p| p.error_code);
            match code {
                Some(0) => Ok(()),
                Some(code) => Err(KafkaError {
                    code,
                    message: None,
                }),
                None => Err(KafkaError::new(ResponseError::UnknownServerError)),
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "txn_markers_tests.rs"]
mod tests;
