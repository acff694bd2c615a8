//! WriteTxnMarkers: appends a transaction's COMMIT or ABORT marker to each
//! listed partition. A Kafka transaction coordinator sends it to partition
//! leaders; `kafka-transactions.sh abort` sends it to end a hanging
//! transaction by hand. shoal's own coordinator writes its markers through
//! the same `Shard::write_txn_markers`.

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use crate::protocol::records::TxnMarker;
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::TopicPartition;

pub async fn handle(
    context: &ConnectionContext,
    request: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let mut parts = Vec::new();
    for marker in &request.markers {
        let txn_marker = TxnMarker {
            producer_id: marker.producer_id.0,
            producer_epoch: marker.producer_epoch,
            coordinator_epoch: marker.coordinator_epoch,
            commit: marker.transaction_result,
        };
        for topic in &marker.topics {
            for &partition in &topic.partition_indexes {
                parts.push((TopicPartition::new(&topic.name.0, partition), txn_marker));
            }
        }
    }
    // From brokers only (Kafka's CLUSTER_ACTION).
    let mut answers = if authorize::cluster(context, Operation::ClusterAction) {
        context.shard.write_txn_markers(parts).await
    } else {
        vec![Err(authorize::cluster_denied()); parts.len()]
    }
    .into_iter();
    let mut response = WriteTxnMarkersResponse::default();
    response.markers = request
        .markers
        .iter()
        .map(|marker| {
            let mut result = WritableTxnMarkerResult::default();
            result.producer_id = marker.producer_id;
            result.topics = marker
                .topics
                .iter()
                .map(|topic| {
                    let mut topic_result = WritableTxnMarkerTopicResult::default();
                    topic_result.name = topic.name.clone();
                    topic_result.partitions = topic
                        .partition_indexes
                        .iter()
                        .map(|&partition_index| {
                            let mut partition = WritableTxnMarkerPartitionResult::default();
                            partition.partition_index = partition_index;
                            partition.error_code = match answers.next() {
                                Some(Ok(())) => 0,
                                Some(Err(error)) => error.code,
                                None => {
                                    kafka_protocol::error::ResponseError::UnknownServerError.code()
                                }
                            };
                            partition
                        })
                        .collect();
                    topic_result
                })
                .collect();
            result
        })
        .collect();
    response
}
