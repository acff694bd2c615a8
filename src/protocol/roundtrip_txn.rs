//! Round-trip samples of the transaction APIs of issue 13 (WriteTxnMarkers,
//! ...): a populated request and response per version, for the table-wide
//! round trip in `roundtrip.rs`.

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn topic(value: &'static str) -> TopicName {
    StrBytes::from_static_str(value).into()
}

pub(super) fn write_txn_markers_request(_version: i16) -> WriteTxnMarkersRequest {
    let marker = |producer_id, commit| {
        write_txn_markers_request::WritableTxnMarker::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(3)
            .with_transaction_result(commit)
            .with_coordinator_epoch(1)
            .with_topics(vec![
                write_txn_markers_request::WritableTxnMarkerTopic::default()
                    .with_name(topic("orders"))
                    .with_partition_indexes(vec![0, 2]),
            ])
    };
    WriteTxnMarkersRequest::default().with_markers(vec![marker(4001, true), marker(4002, false)])
}

pub(super) fn write_txn_markers_response(_version: i16) -> WriteTxnMarkersResponse {
    let partition = |index, error_code| {
        write_txn_markers_response::WritableTxnMarkerPartitionResult::default()
            .with_partition_index(index)
            .with_error_code(error_code)
    };
    WriteTxnMarkersResponse::default().with_markers(vec![
        write_txn_markers_response::WritableTxnMarkerResult::default()
            .with_producer_id(ProducerId(4001))
            .with_topics(vec![
                write_txn_markers_response::WritableTxnMarkerTopicResult::default()
                    .with_name(topic("orders"))
                    .with_partitions(vec![partition(0, 0), partition(2, 3)]),
            ]),
    ])
}
