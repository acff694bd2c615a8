//! Round-trip samples of the transaction APIs of issue 13 (WriteTxnMarkers,
//! DescribeProducers, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,
//! DescribeTransactions, ListTransactions): a populated request and
//! response per version, for the table-wide round trip in `roundtrip.rs`.

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

fn txn_id(value: &'static str) -> TransactionalId {
    StrBytes::from_static_str(value).into()
}

fn add_partitions_topic(
    name: &'static str,
    partitions: Vec<i32>,
) -> add_partitions_to_txn_request::AddPartitionsToTxnTopic {
    add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
        .with_name(topic(name))
        .with_partitions(partitions)
}

pub(super) fn add_partitions_to_txn_request(version: i16) -> AddPartitionsToTxnRequest {
    let topics = vec![
        add_partitions_topic("orders", vec![0, 2]),
        add_partitions_topic("audit", vec![1]),
    ];
    if version < 4 {
        return AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(txn_id("txn-7"))
            .with_v3_and_below_producer_id(ProducerId(4001))
            .with_v3_and_below_producer_epoch(3)
            .with_v3_and_below_topics(topics);
    }
    let transaction = |id, verify_only, topics| {
        add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default()
            .with_transactional_id(txn_id(id))
            .with_producer_id(ProducerId(4001))
            .with_producer_epoch(3)
            .with_verify_only(verify_only)
            .with_topics(topics)
    };
    AddPartitionsToTxnRequest::default().with_transactions(vec![
        transaction("txn-7", false, topics),
        transaction("txn-8", true, vec![add_partitions_topic("orders", vec![5])]),
    ])
}

pub(super) fn add_partitions_to_txn_response(version: i16) -> AddPartitionsToTxnResponse {
    let partition = |index, code| {
        add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(index)
            .with_partition_error_code(code)
    };
    let topics = vec![
        add_partitions_to_txn_response::AddPartitionsToTxnTopicResult::default()
            .with_name(topic("orders"))
            .with_results_by_partition(vec![partition(0, 0), partition(2, 3)]),
    ];
    let response = AddPartitionsToTxnResponse::default().with_throttle_time_ms(1);
    if version < 4 {
        return response.with_results_by_topic_v3_and_below(topics);
    }
    response.with_results_by_transaction(vec![
        add_partitions_to_txn_response::AddPartitionsToTxnResult::default()
            .with_transactional_id(txn_id("txn-7"))
            .with_topic_results(topics),
    ])
}

pub(super) fn add_offsets_to_txn_request(_version: i16) -> AddOffsetsToTxnRequest {
    AddOffsetsToTxnRequest::default()
        .with_transactional_id(txn_id("txn-7"))
        .with_producer_id(ProducerId(4001))
        .with_producer_epoch(3)
        .with_group_id(StrBytes::from_static_str("orders-app").into())
}

pub(super) fn add_offsets_to_txn_response(_version: i16) -> AddOffsetsToTxnResponse {
    AddOffsetsToTxnResponse::default()
        .with_throttle_time_ms(1)
        .with_error_code(47)
}

pub(super) fn end_txn_request(_version: i16) -> EndTxnRequest {
    EndTxnRequest::default()
        .with_transactional_id(txn_id("txn-7"))
        .with_producer_id(ProducerId(4001))
        .with_producer_epoch(3)
        .with_committed(true)
}

pub(super) fn end_txn_response(version: i16) -> EndTxnResponse {
    let response = EndTxnResponse::default()
        .with_throttle_time_ms(1)
        .with_error_code(51);
    if version < 5 {
        return response;
    }
    response
        .with_producer_id(ProducerId(4001))
        .with_producer_epoch(4)
}

pub(super) fn describe_transactions_request(_version: i16) -> DescribeTransactionsRequest {
    DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![txn_id("txn-7"), txn_id("txn-8")])
}

pub(super) fn describe_transactions_response(_version: i16) -> DescribeTransactionsResponse {
    DescribeTransactionsResponse::default()
        .with_throttle_time_ms(1)
        .with_transaction_states(vec![
            describe_transactions_response::TransactionState::default()
                .with_transactional_id(txn_id("txn-7"))
                .with_transaction_state(StrBytes::from_static_str("Ongoing"))
                .with_transaction_timeout_ms(60_000)
                .with_transaction_start_time_ms(1_700_000_000_000)
                .with_producer_id(ProducerId(4001))
                .with_producer_epoch(3)
                .with_topics(vec![describe_transactions_response::TopicData::default()
                    .with_topic(topic("orders"))
                    .with_partitions(vec![0, 2])]),
            describe_transactions_response::TransactionState::default()
                .with_transactional_id(txn_id("txn-8"))
                .with_error_code(105),
        ])
}

pub(super) fn list_transactions_request(version: i16) -> ListTransactionsRequest {
    let request = ListTransactionsRequest::default()
        .with_state_filters(vec![StrBytes::from_static_str("Ongoing")])
        .with_producer_id_filters(vec![ProducerId(4001)]);
    if version < 1 {
        return request;
    }
    request.with_duration_filter(60_000)
}

pub(super) fn list_transactions_response(_version: i16) -> ListTransactionsResponse {
    ListTransactionsResponse::default()
        .with_throttle_time_ms(1)
        .with_unknown_state_filters(vec![StrBytes::from_static_str("Going")])
        .with_transaction_states(vec![list_transactions_response::TransactionState::default(
        )
        .with_transactional_id(txn_id("txn-7"))
        .with_producer_id(ProducerId(4001))
        .with_transaction_state(StrBytes::from_static_str("Ongoing"))])
}
