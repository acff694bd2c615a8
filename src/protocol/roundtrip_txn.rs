//! Round-trip samples of the transaction APIs of issue 13 (WriteTxnMarkers,
//! DescribeProducers, ...): a populated request and response per version, for the table-wide
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

pub(super) fn describe_producers_request(_version: i16) -> DescribeProducersRequest {
    DescribeProducersRequest::default().with_topics(vec![
        describe_producers_request::TopicRequest::default()
            .with_name(topic("orders"))
            .with_partition_indexes(vec![0, 3]),
    ])
}

pub(super) fn describe_producers_response(_version: i16) -> DescribeProducersResponse {
    let producer = describe_producers_response::ProducerState::default()
        .with_producer_id(ProducerId(4001))
        .with_producer_epoch(2)
        .with_last_sequence(41)
        .with_last_timestamp(1_700_000_000_000)
        .with_coordinator_epoch(5)
        .with_current_txn_start_offset(120);
    DescribeProducersResponse::default()
        .with_throttle_time_ms(7)
        .with_topics(vec![describe_producers_response::TopicResponse::default()
            .with_name(topic("orders"))
            .with_partitions(vec![
                describe_producers_response::PartitionResponse::default()
                    .with_partition_index(0)
                    .with_active_producers(vec![producer]),
                describe_producers_response::PartitionResponse::default()
                    .with_partition_index(3)
                    .with_error_code(3)
                    .with_error_message(Some(StrBytes::from_static_str("unknown"))),
            ])])
}
