//! Round-trip samples of the admin APIs of issue 4 — DeleteRecords,
//! CreatePartitions, AlterConfigs, IncrementalAlterConfigs and
//! DescribeLogDirs, InitProducerId (issue 13) and DescribeQuorum (issue
//! 14): a populated request and response per version, for the table-wide
//! round trip in `roundtrip.rs`.

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

/// The first DescribeQuorum version with replica timestamps.
const DESCRIBE_QUORUM_TIMESTAMPS: i16 = 1;
/// The first DescribeQuorum version with error messages, directory ids and
/// the voters' endpoints (KIP-853).
const DESCRIBE_QUORUM_NODES: i16 = 2;

/// The first DescribeLogDirs version with the top-level error code.
const DESCRIBE_LOG_DIRS_ERROR_CODE: i16 = 3;
/// The first DescribeLogDirs version with the volume's total and usable bytes.
const DESCRIBE_LOG_DIRS_VOLUME_BYTES: i16 = 4;

fn s(value: &'static str) -> StrBytes {
    StrBytes::from_static_str(value)
}

fn topic(value: &'static str) -> TopicName {
    s(value).into()
}

pub(super) fn delete_records_request(_version: i16) -> DeleteRecordsRequest {
    let partition = |index, offset| {
        delete_records_request::DeleteRecordsPartition::default()
            .with_partition_index(index)
            .with_offset(offset)
    };
    DeleteRecordsRequest::default()
        .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
            .with_name(topic("orders"))
            .with_partitions(vec![partition(0, 1200), partition(3, -1)])])
        .with_timeout_ms(30_000)
}

pub(super) fn delete_records_response(_version: i16) -> DeleteRecordsResponse {
    let partition = |index, low_watermark, error_code| {
        delete_records_response::DeleteRecordsPartitionResult::default()
            .with_partition_index(index)
            .with_low_watermark(low_watermark)
            .with_error_code(error_code)
    };
    DeleteRecordsResponse::default()
        .with_throttle_time_ms(1)
        .with_topics(vec![
            delete_records_response::DeleteRecordsTopicResult::default()
                .with_name(topic("orders"))
                .with_partitions(vec![partition(0, 1200, 0), partition(3, -1, 1)]),
        ])
}

pub(super) fn create_partitions_request(_version: i16) -> CreatePartitionsRequest {
    let assigned = create_partitions_request::CreatePartitionsTopic::default()
        .with_name(topic("orders"))
        .with_count(6)
        .with_assignments(Some(vec![
            create_partitions_request::CreatePartitionsAssignment::default()
                .with_broker_ids(vec![BrokerId(1)]),
            create_partitions_request::CreatePartitionsAssignment::default()
                .with_broker_ids(vec![BrokerId(1)]),
        ]));
    let unassigned = create_partitions_request::CreatePartitionsTopic::default()
        .with_name(topic("events"))
        .with_count(12)
        .with_assignments(None);
    CreatePartitionsRequest::default()
        .with_topics(vec![assigned, unassigned])
        .with_timeout_ms(30_000)
        .with_validate_only(true)
}

pub(super) fn create_partitions_response(_version: i16) -> CreatePartitionsResponse {
    CreatePartitionsResponse::default()
        .with_throttle_time_ms(1)
        .with_results(vec![
            create_partitions_response::CreatePartitionsTopicResult::default()
                .with_name(topic("orders")),
            create_partitions_response::CreatePartitionsTopicResult::default()
                .with_name(topic("events"))
                .with_error_code(37) // INVALID_PARTITIONS
                .with_error_message(Some(s("Topic already has 12 partition(s)."))),
        ])
}

pub(super) fn alter_configs_request(_version: i16) -> AlterConfigsRequest {
    let config = |name, value| {
        alter_configs_request::AlterableConfig::default()
            .with_name(s(name))
            .with_value(value)
    };
    AlterConfigsRequest::default()
        .with_resources(vec![alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2) // TOPIC
            .with_resource_name(s("orders"))
            .with_configs(vec![
                config("retention.ms", Some(s("86400000"))),
                config("cleanup.policy", None),
            ])])
        .with_validate_only(true)
}

pub(super) fn alter_configs_response(_version: i16) -> AlterConfigsResponse {
    AlterConfigsResponse::default()
        .with_throttle_time_ms(1)
        .with_responses(vec![
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(2)
                .with_resource_name(s("orders")),
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(40) // INVALID_CONFIG
                .with_error_message(Some(s("invalid value x for configuration retention.ms")))
                .with_resource_type(2)
                .with_resource_name(s("events")),
        ])
}

pub(super) fn incremental_alter_configs_request(_version: i16) -> IncrementalAlterConfigsRequest {
    let op = |name, operation, value| {
        incremental_alter_configs_request::AlterableConfig::default()
            .with_name(s(name))
            .with_config_operation(operation)
            .with_value(value)
    };
    IncrementalAlterConfigsRequest::default()
        .with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2) // TOPIC
                .with_resource_name(s("orders"))
                .with_configs(vec![
                    op("retention.ms", 0, Some(s("86400000"))),  // SET
                    op("segment.bytes", 1, None),                // DELETE
                    op("cleanup.policy", 2, Some(s("compact"))), // APPEND
                ]),
        ])
        .with_validate_only(false)
}

pub(super) fn incremental_alter_configs_response(_version: i16) -> IncrementalAlterConfigsResponse {
    IncrementalAlterConfigsResponse::default()
        .with_throttle_time_ms(1)
        .with_responses(vec![
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(2)
                .with_resource_name(s("orders")),
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(42) // INVALID_REQUEST
                .with_error_message(Some(s("Error due to duplicate config keys")))
                .with_resource_type(4)
                .with_resource_name(s("1")),
        ])
}

pub(super) fn describe_log_dirs_request(version: i16) -> DescribeLogDirsRequest {
    let topics = if version == DESCRIBE_LOG_DIRS_VOLUME_BYTES {
        None
    } else {
        Some(vec![
            describe_log_dirs_request::DescribableLogDirTopic::default()
                .with_topic(topic("orders"))
                .with_partitions(vec![0, 2]),
        ])
    };
    DescribeLogDirsRequest::default().with_topics(topics)
}

pub(super) fn describe_log_dirs_response(version: i16) -> DescribeLogDirsResponse {
    let partition = |index, size| {
        describe_log_dirs_response::DescribeLogDirsPartition::default()
            .with_partition_index(index)
            .with_partition_size(size)
            .with_offset_lag(0)
            .with_is_future_key(false)
    };
    let mut dir = describe_log_dirs_response::DescribeLogDirsResult::default()
        .with_log_dir(s("/var/lib/shoal"))
        .with_topics(vec![
            describe_log_dirs_response::DescribeLogDirsTopic::default()
                .with_name(topic("orders"))
                .with_partitions(vec![partition(0, 1 << 20), partition(2, 4096)]),
        ]);
    let mut response = DescribeLogDirsResponse::default()
        .with_throttle_time_ms(1)
        .with_results(vec![dir.clone()]);
    if version >= DESCRIBE_LOG_DIRS_VOLUME_BYTES {
        dir.total_bytes = 500 << 30;
        dir.usable_bytes = 120 << 30;
        response.results = vec![dir];
    }
    if version >= DESCRIBE_LOG_DIRS_ERROR_CODE {
        response.error_code = 0;
    }
    response
}

/// InitProducerId v3 added the producer id and epoch a producer resumes
/// with (KIP-360).
const INIT_PRODUCER_ID_RESUME: i16 = 3;

pub(super) fn init_producer_id_request(version: i16) -> InitProducerIdRequest {
    let mut request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    if version >= INIT_PRODUCER_ID_RESUME {
        request.producer_id = ProducerId(4001);
        request.producer_epoch = 7;
    }
    request
}

pub(super) fn init_producer_id_response(_version: i16) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_throttle_time_ms(1)
        .with_producer_id(ProducerId(4002))
        .with_producer_epoch(0)
}

pub(super) fn describe_quorum_request(_version: i16) -> DescribeQuorumRequest {
    DescribeQuorumRequest::default().with_topics(vec![describe_quorum_request::TopicData::default(
    )
    .with_topic_name(topic("__cluster_metadata"))
    .with_partitions(vec![
        describe_quorum_request::PartitionData::default().with_partition_index(0)
    ])])
}

pub(super) fn describe_quorum_response(version: i16) -> DescribeQuorumResponse {
    let replica = |id: i32, log_end_offset| {
        let mut replica = describe_quorum_response::ReplicaState::default()
            .with_replica_id(BrokerId(id))
            .with_log_end_offset(log_end_offset);
        if version >= DESCRIBE_QUORUM_TIMESTAMPS {
            replica.last_fetch_timestamp = 1_700_000_000_000 + i64::from(id);
            replica.last_caught_up_timestamp = 1_700_000_000_000 - i64::from(id);
        }
        if version >= DESCRIBE_QUORUM_NODES {
            replica.replica_directory_id = uuid::Uuid::from_u128(u128::from(id.unsigned_abs()));
        }
        replica
    };
    let mut partition = describe_quorum_response::PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(1))
        .with_leader_epoch(4)
        .with_high_watermark(120)
        .with_current_voters(vec![replica(1, 121), replica(2, 120), replica(3, -1)])
        .with_observers(vec![replica(4, 90)]);
    let mut response = DescribeQuorumResponse::default();
    if version >= DESCRIBE_QUORUM_NODES {
        partition.error_message = None;
        response.error_message = Some(s("none"));
        response.nodes = vec![describe_quorum_response::Node::default()
            .with_node_id(BrokerId(1))
            .with_listeners(vec![describe_quorum_response::Listener::default()
                .with_name(s("CONTROLLER"))
                .with_host(s("controller.example"))
                .with_port(9093)])];
    }
    response.with_topics(vec![describe_quorum_response::TopicData::default()
        .with_topic_name(topic("__cluster_metadata"))
        .with_partitions(vec![partition])])
}
