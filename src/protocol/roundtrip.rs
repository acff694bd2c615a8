//! Every version `ApiVersions` advertises, proven by a round trip: a populated
//! request and response of each API at each version in `SUPPORTED_APIS` is
//! encoded, decoded back to the same message, and re-encoded to the same
//! bytes. A version added to the table without a sample here fails the test.
//!
//! Samples set only the fields that exist at the version at hand, with values
//! a real client or broker would send, so a field lost or misread at one
//! version shows up as a difference.

use std::fmt::Debug;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::Compression;
use uuid::Uuid;

use crate::protocol::batch::tests::sample_batch;
use crate::protocol::versions::SUPPORTED_APIS;

const TOPIC_ID: Uuid = Uuid::from_u128(0x5a17_0000_0000_4000_8000_0000_0000_0001);

fn s(value: &'static str) -> StrBytes {
    StrBytes::from_static_str(value)
}

fn topic(value: &'static str) -> TopicName {
    s(value).into()
}

fn broker(id: i32) -> BrokerId {
    id.into()
}

fn group(value: &'static str) -> GroupId {
    s(value).into()
}

fn records(n: usize, compression: Compression) -> Bytes {
    Bytes::from(sample_batch(n, compression))
}

/// Encodes `message`, decodes it, re-encodes the result, and checks that the
/// message and the bytes survive. Returns the encoded bytes.
fn round_trip<M>(what: &str, version: i16, message: &M) -> Bytes
where
    M: Encodable + Decodable + PartialEq + Debug,
{
    let mut first = BytesMut::new();
    message
        .encode(&mut first, version)
        .unwrap_or_else(|e| panic!("{what} v{version} does not encode: {e}"));
    let size = message.compute_size(version).unwrap();
    assert_eq!(first.len(), size, "{what} v{version}: compute_size");
    let first = first.freeze();
    let mut cursor = first.clone();
    let decoded = M::decode(&mut cursor, version)
        .unwrap_or_else(|e| panic!("{what} v{version} does not decode: {e}"));
    assert!(cursor.is_empty(), "{what} v{version}: bytes left over");
    assert_eq!(&decoded, message, "{what} v{version}: decoded differs");
    let mut second = BytesMut::new();
    decoded.encode(&mut second, version).unwrap();
    assert_eq!(first, second, "{what} v{version}: re-encoded bytes differ");
    first
}

/// Round-trips the sample request and response of `key` at `version` and
/// returns the encoded request body.
use super::roundtrip_admin as admin;
use super::roundtrip_kip848 as kip848;

pub(super) fn round_trip_api(key: ApiKey, version: i16) -> Bytes {
    macro_rules! both {
        ($request:expr, $response:expr) => {{
            round_trip(&format!("{key:?} response"), version, &$response(version));
            round_trip(&format!("{key:?} request"), version, &$request(version))
        }};
    }
    match key {
        ApiKey::Produce => both!(produce_request, produce_response),
        ApiKey::Fetch => both!(fetch_request, fetch_response),
        ApiKey::ListOffsets => both!(list_offsets_request, list_offsets_response),
        ApiKey::Metadata => both!(metadata_request, metadata_response),
        ApiKey::ApiVersions => both!(api_versions_request, api_versions_response),
        ApiKey::CreateTopics => both!(create_topics_request, create_topics_response),
        ApiKey::DeleteTopics => both!(delete_topics_request, delete_topics_response),
        ApiKey::DescribeConfigs => both!(describe_configs_request, describe_configs_response),
        ApiKey::DescribeCluster => both!(describe_cluster_request, describe_cluster_response),
        ApiKey::FindCoordinator => both!(find_coordinator_request, find_coordinator_response),
        ApiKey::JoinGroup => both!(join_group_request, join_group_response),
        ApiKey::SyncGroup => both!(sync_group_request, sync_group_response),
        ApiKey::Heartbeat => both!(heartbeat_request, heartbeat_response),
        ApiKey::LeaveGroup => both!(leave_group_request, leave_group_response),
        ApiKey::OffsetCommit => both!(offset_commit_request, offset_commit_response),
        ApiKey::OffsetFetch => both!(offset_fetch_request, offset_fetch_response),
        ApiKey::DescribeGroups => both!(describe_groups_request, describe_groups_response),
        ApiKey::ListGroups => both!(list_groups_request, list_groups_response),
        ApiKey::DeleteGroups => both!(delete_groups_request, delete_groups_response),
        ApiKey::OffsetDelete => both!(offset_delete_request, offset_delete_response),
        ApiKey::ConsumerGroupHeartbeat => both!(
            kip848::consumer_group_heartbeat_request,
            kip848::consumer_group_heartbeat_response
        ),
        ApiKey::ConsumerGroupDescribe => both!(
            kip848::consumer_group_describe_request,
            kip848::consumer_group_describe_response
        ),
        ApiKey::DeleteRecords => both!(
            admin::delete_records_request,
            admin::delete_records_response
        ),
        ApiKey::CreatePartitions => both!(
            admin::create_partitions_request,
            admin::create_partitions_response
        ),
        ApiKey::AlterConfigs => both!(admin::alter_configs_request, admin::alter_configs_response),
        ApiKey::IncrementalAlterConfigs => both!(
            admin::incremental_alter_configs_request,
            admin::incremental_alter_configs_response
        ),
        ApiKey::DescribeLogDirs => both!(
            admin::describe_log_dirs_request,
            admin::describe_log_dirs_response
        ),
        other => panic!("{other:?} is advertised but has no round-trip sample"),
    }
}

fn produce_request(version: i16) -> ProduceRequest {
    let partition = |index, records| {
        produce_request::PartitionProduceData::default()
            .with_index(index)
            .with_records(Some(records))
    };
    let mut orders = produce_request::TopicProduceData::default().with_partition_data(vec![
        partition(0, records(3, Compression::None)),
        partition(2, records(5, Compression::Zstd)),
    ]);
    if version >= 13 {
        orders.topic_id = TOPIC_ID;
    } else {
        orders.name = topic("orders");
    }
    ProduceRequest::default()
        .with_transactional_id(Some(s("txn-7").into()))
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![orders])
}

fn produce_response(version: i16) -> ProduceResponse {
    let mut partition = produce_response::PartitionProduceResponse::default()
        .with_index(2)
        .with_error_code(0)
        .with_base_offset(4_096)
        .with_log_append_time_ms(1_700_000_000_123);
    if version >= 5 {
        partition.log_start_offset = 100;
    }
    let mut failed = produce_response::PartitionProduceResponse::default()
        .with_index(0)
        .with_error_code(87) // INVALID_RECORD
        .with_base_offset(-1);
    if version >= 8 {
        failed.record_errors = vec![produce_response::BatchIndexAndErrorMessage::default()
            .with_batch_index(1)
            .with_batch_index_error_message(Some(s("timestamp out of range")))];
        failed.error_message = Some(s("one record failed"));
    }
    let mut response = ProduceResponse::default().with_throttle_time_ms(5);
    if version >= 10 {
        failed.current_leader = produce_response::LeaderIdAndEpoch::default()
            .with_leader_id(broker(2))
            .with_leader_epoch(9);
        response.node_endpoints = vec![produce_response::NodeEndpoint::default()
            .with_node_id(broker(2))
            .with_host(s("broker-2"))
            .with_port(9092)
            .with_rack(Some(s("rack-a")))];
    }
    let mut orders = produce_response::TopicProduceResponse::default()
        .with_partition_responses(vec![partition, failed]);
    if version >= 13 {
        orders.topic_id = TOPIC_ID;
    } else {
        orders.name = topic("orders");
    }
    response.responses = vec![orders];
    response
}

fn fetch_request(version: i16) -> FetchRequest {
    let mut partition = fetch_request::FetchPartition::default()
        .with_partition(3)
        .with_fetch_offset(1_234)
        .with_partition_max_bytes(1_048_576);
    if version >= 5 {
        partition.log_start_offset = 0;
    }
    if version >= 9 {
        partition.current_leader_epoch = 4;
    }
    if version >= 12 {
        partition.last_fetched_epoch = 3;
    }
    if version >= 17 {
        partition.replica_directory_id = Uuid::from_u128(0xd1);
    }
    if version >= 18 {
        partition.high_watermark = 1_200;
    }
    let mut orders = fetch_request::FetchTopic::default().with_partitions(vec![partition]);
    let mut request = FetchRequest::default()
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(52_428_800)
        .with_isolation_level(1);
    if version >= 7 {
        request.session_id = 17;
        request.session_epoch = 2;
        let mut forgotten = fetch_request::ForgottenTopic::default().with_partitions(vec![0, 1]);
        if version >= 13 {
            forgotten.topic_id = TOPIC_ID;
        } else {
            forgotten.topic = topic("old-topic");
        }
        request.forgotten_topics_data = vec![forgotten];
    }
    if version >= 11 {
        request.rack_id = s("rack-b");
    }
    if version >= 12 {
        request.cluster_id = Some(s("shoal-cluster"));
    }
    if version >= 13 {
        orders.topic_id = TOPIC_ID;
    } else {
        orders.topic = topic("orders");
    }
    if version >= 15 {
        request.replica_state = fetch_request::ReplicaState::default()
            .with_replica_id(broker(1))
            .with_replica_epoch(6);
    } else {
        request.replica_id = broker(1);
    }
    request.topics = vec![orders];
    request
}

fn fetch_response(version: i16) -> FetchResponse {
    let mut partition = fetch_response::PartitionData::default()
        .with_partition_index(3)
        .with_high_watermark(1_300)
        .with_last_stable_offset(1_250)
        .with_aborted_transactions(Some(vec![fetch_response::AbortedTransaction::default()
            .with_producer_id(4_000.into())
            .with_first_offset(1_240)]))
        .with_records(Some(records(4, Compression::Lz4)));
    let mut moved = fetch_response::PartitionData::default()
        .with_partition_index(4)
        .with_error_code(6) // NOT_LEADER_OR_FOLLOWER
        .with_high_watermark(-1)
        .with_aborted_transactions(None);
    if version >= 5 {
        partition.log_start_offset = 10;
    }
    if version >= 11 {
        partition.preferred_read_replica = broker(2);
    }
    if version >= 12 {
        partition.diverging_epoch = fetch_response::EpochEndOffset::default()
            .with_epoch(2)
            .with_end_offset(1_100);
        partition.snapshot_id = fetch_response::SnapshotId::default()
            .with_end_offset(900)
            .with_epoch(1);
        moved.current_leader = fetch_response::LeaderIdAndEpoch::default()
            .with_leader_id(broker(2))
            .with_leader_epoch(5);
    }
    let mut orders =
        fetch_response::FetchableTopicResponse::default().with_partitions(vec![partition, moved]);
    if version >= 13 {
        orders.topic_id = TOPIC_ID;
    } else {
        orders.topic = topic("orders");
    }
    let mut response = FetchResponse::default()
        .with_throttle_time_ms(3)
        .with_responses(vec![orders]);
    if version >= 7 {
        response.session_id = 17;
    }
    if version >= 16 {
        response.node_endpoints = vec![fetch_response::NodeEndpoint::default()
            .with_node_id(broker(2))
            .with_host(s("broker-2"))
            .with_port(9092)];
    }
    response
}

fn list_offsets_request(version: i16) -> ListOffsetsRequest {
    let mut latest = list_offsets_request::ListOffsetsPartition::default()
        .with_partition_index(1)
        .with_timestamp(-1);
    if version >= 4 {
        latest.current_leader_epoch = 8;
    }
    let earliest = list_offsets_request::ListOffsetsPartition::default()
        .with_partition_index(2)
        .with_timestamp(-2);
    let mut request = ListOffsetsRequest::default()
        .with_replica_id(broker(-1))
        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(topic("orders"))
            .with_partitions(vec![latest, earliest])]);
    if version >= 2 {
        request.isolation_level = 1;
    }
    if version >= 10 {
        request.timeout_ms = 15_000;
    }
    request
}

fn list_offsets_response(version: i16) -> ListOffsetsResponse {
    let mut found = list_offsets_response::ListOffsetsPartitionResponse::default()
        .with_partition_index(1)
        .with_timestamp(1_700_000_000_000)
        .with_offset(777);
    if version >= 4 {
        found.leader_epoch = 8;
    }
    let missing = list_offsets_response::ListOffsetsPartitionResponse::default()
        .with_partition_index(9)
        .with_error_code(3); // UNKNOWN_TOPIC_OR_PARTITION
    let mut response = ListOffsetsResponse::default().with_topics(vec![
        list_offsets_response::ListOffsetsTopicResponse::default()
            .with_name(topic("orders"))
            .with_partitions(vec![found, missing]),
    ]);
    if version >= 2 {
        response.throttle_time_ms = 1;
    }
    response
}

fn metadata_request(version: i16) -> MetadataRequest {
    let mut orders =
        metadata_request::MetadataRequestTopic::default().with_name(Some(topic("orders")));
    if version >= 10 {
        orders.topic_id = TOPIC_ID;
    }
    let mut request = MetadataRequest::default().with_topics(Some(vec![orders]));
    if version >= 4 {
        request.allow_auto_topic_creation = false;
    }
    if (8..=10).contains(&version) {
        request.include_cluster_authorized_operations = true;
    }
    if version >= 8 {
        request.include_topic_authorized_operations = true;
    }
    request
}

fn metadata_response(version: i16) -> MetadataResponse {
    let brokers = (1..=2)
        .map(|id| {
            let mut broker_entry = metadata_response::MetadataResponseBroker::default()
                .with_node_id(broker(id))
                .with_host(s("broker.example"))
                .with_port(9091 + id);
            if version >= 1 {
                broker_entry.rack = Some(s("rack-a"));
            }
            broker_entry
        })
        .collect();
    let mut partition = metadata_response::MetadataResponsePartition::default()
        .with_partition_index(0)
        .with_leader_id(broker(1))
        .with_replica_nodes(vec![broker(1), broker(2)])
        .with_isr_nodes(vec![broker(1)]);
    if version >= 5 {
        partition.offline_replicas = vec![broker(2)];
    }
    if version >= 7 {
        partition.leader_epoch = 12;
    }
    let mut orders = metadata_response::MetadataResponseTopic::default()
        .with_name(Some(topic("orders")))
        .with_partitions(vec![partition]);
    if version >= 1 {
        orders.is_internal = false;
    }
    if version >= 8 {
        orders.topic_authorized_operations = 0b1111_1000;
    }
    if version >= 10 {
        orders.topic_id = TOPIC_ID;
    }
    let missing = metadata_response::MetadataResponseTopic::default()
        .with_error_code(3)
        .with_name(Some(topic("missing")));
    let mut response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_topics(vec![orders, missing]);
    if version >= 1 {
        response.controller_id = broker(1);
    }
    if version >= 2 {
        response.cluster_id = Some(s("shoal-cluster"));
    }
    if version >= 3 {
        response.throttle_time_ms = 2;
    }
    if (8..=10).contains(&version) {
        response.cluster_authorized_operations = 0b1000;
    }
    response
}

fn api_versions_request(version: i16) -> ApiVersionsRequest {
    let mut request = ApiVersionsRequest::default();
    if version >= 3 {
        request.client_software_name = s("librdkafka");
        request.client_software_version = s("2.6.1");
    }
    request
}

/// What shoal answers: the whole table.
fn api_versions_response(version: i16) -> ApiVersionsResponse {
    let api_keys = SUPPORTED_APIS
        .iter()
        .map(|api| {
            api_versions_response::ApiVersion::default()
                .with_api_key(api.key as i16)
                .with_min_version(api.min_version)
                .with_max_version(api.max_version)
        })
        .collect();
    let mut response = ApiVersionsResponse::default().with_api_keys(api_keys);
    if version >= 1 {
        response.throttle_time_ms = 0;
    }
    if version >= 3 {
        response.supported_features = vec![api_versions_response::SupportedFeatureKey::default()
            .with_name(s("metadata.version"))
            .with_min_version(1)
            .with_max_version(20)];
        response.finalized_features_epoch = 3;
        response.finalized_features = vec![api_versions_response::FinalizedFeatureKey::default()
            .with_name(s("metadata.version"))
            .with_min_version_level(20)
            .with_max_version_level(20)];
    }
    response
}

fn create_topics_request(_version: i16) -> CreateTopicsRequest {
    let explicit = create_topics_request::CreatableTopic::default()
        .with_name(topic("placed"))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(vec![
            create_topics_request::CreatableReplicaAssignment::default()
                .with_partition_index(0)
                .with_broker_ids(vec![broker(1), broker(2)]),
        ]);
    let configured = create_topics_request::CreatableTopic::default()
        .with_name(topic("compacted"))
        .with_num_partitions(6)
        .with_replication_factor(1)
        .with_configs(vec![
            create_topics_request::CreatableTopicConfig::default()
                .with_name(s("cleanup.policy"))
                .with_value(Some(s("compact"))),
            create_topics_request::CreatableTopicConfig::default()
                .with_name(s("retention.ms"))
                .with_value(None),
        ]);
    CreateTopicsRequest::default()
        .with_topics(vec![explicit, configured])
        .with_timeout_ms(60_000)
        .with_validate_only(true)
}

fn create_topics_response(version: i16) -> CreateTopicsResponse {
    let mut created = create_topics_response::CreatableTopicResult::default()
        .with_name(topic("compacted"))
        .with_error_message(None);
    if version >= 5 {
        created.num_partitions = 6;
        created.replication_factor = 1;
        created.configs = Some(vec![
            create_topics_response::CreatableTopicConfigs::default()
                .with_name(s("cleanup.policy"))
                .with_value(Some(s("compact")))
                .with_config_source(1),
        ]);
    }
    if version >= 7 {
        created.topic_id = TOPIC_ID;
    }
    let mut refused = create_topics_response::CreatableTopicResult::default()
        .with_name(topic("placed"))
        .with_error_code(36) // TOPIC_ALREADY_EXISTS
        .with_error_message(Some(s("Topic 'placed' already exists.")));
    if version >= 5 {
        refused.topic_config_error_code = 29; // TOPIC_AUTHORIZATION_FAILED
    }
    CreateTopicsResponse::default()
        .with_throttle_time_ms(4)
        .with_topics(vec![created, refused])
}

fn delete_topics_request(version: i16) -> DeleteTopicsRequest {
    let mut request = DeleteTopicsRequest::default().with_timeout_ms(30_000);
    if version >= 6 {
        request.topics = vec![
            delete_topics_request::DeleteTopicState::default().with_name(Some(topic("orders"))),
            delete_topics_request::DeleteTopicState::default().with_topic_id(TOPIC_ID),
        ];
    } else {
        request.topic_names = vec![topic("orders"), topic("payments")];
    }
    request
}

fn delete_topics_response(version: i16) -> DeleteTopicsResponse {
    let deleted =
        delete_topics_response::DeletableTopicResult::default().with_name(Some(topic("orders")));
    let mut missing = delete_topics_response::DeletableTopicResult::default()
        .with_name(Some(topic("payments")))
        .with_error_code(3);
    if version >= 5 {
        missing.error_message = Some(s("This server does not host this topic-partition."));
    }
    if version >= 6 {
        missing.topic_id = TOPIC_ID;
    }
    DeleteTopicsResponse::default()
        .with_throttle_time_ms(1)
        .with_responses(vec![deleted, missing])
}

fn describe_configs_request(version: i16) -> DescribeConfigsRequest {
    let mut request = DescribeConfigsRequest::default()
        .with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2) // TOPIC
                .with_resource_name(s("orders"))
                .with_configuration_keys(Some(vec![s("retention.ms"), s("cleanup.policy")])),
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(4) // BROKER
                .with_resource_name(s("1"))
                .with_configuration_keys(None),
        ])
        .with_include_synonyms(true);
    if version >= 3 {
        request.include_documentation = true;
    }
    request
}

fn describe_configs_response(version: i16) -> DescribeConfigsResponse {
    let mut retention = describe_configs_response::DescribeConfigsResourceResult::default()
        .with_name(s("retention.ms"))
        .with_value(Some(s("604800000")))
        .with_config_source(5) // DEFAULT_CONFIG
        .with_synonyms(vec![
            describe_configs_response::DescribeConfigsSynonym::default()
                .with_name(s("log.retention.ms"))
                .with_value(Some(s("604800000")))
                .with_source(5),
        ]);
    let secret = describe_configs_response::DescribeConfigsResourceResult::default()
        .with_name(s("sasl.jaas.config"))
        .with_value(None)
        .with_is_sensitive(true)
        .with_read_only(true);
    if version >= 3 {
        retention.config_type = 5; // LONG
        retention.documentation = Some(s("How long a log is kept."));
    }
    DescribeConfigsResponse::default()
        .with_throttle_time_ms(2)
        .with_results(vec![
            describe_configs_response::DescribeConfigsResult::default()
                .with_resource_type(2)
                .with_resource_name(s("orders"))
                .with_configs(vec![retention, secret]),
            describe_configs_response::DescribeConfigsResult::default()
                .with_error_code(3)
                .with_error_message(Some(s("no such topic")))
                .with_resource_type(2)
                .with_resource_name(s("missing")),
        ])
}

fn describe_cluster_request(version: i16) -> DescribeClusterRequest {
    let mut request =
        DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
    if version >= 1 {
        request.endpoint_type = 1; // BROKERS
    }
    if version >= 2 {
        request.include_fenced_brokers = true;
    }
    request
}

fn describe_cluster_response(version: i16) -> DescribeClusterResponse {
    let brokers = (1..=2)
        .map(|id| {
            let mut entry = describe_cluster_response::DescribeClusterBroker::default()
                .with_broker_id(broker(id))
                .with_host(s("broker.example"))
                .with_port(9091 + id)
                .with_rack((id == 1).then(|| s("rack-a")));
            if version >= 2 {
                entry.is_fenced = id == 2;
            }
            entry
        })
        .collect();
    let mut response = DescribeClusterResponse::default()
        .with_throttle_time_ms(1)
        .with_cluster_id(s("shoal-cluster"))
        .with_controller_id(broker(1))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(0b1_0000_0000);
    if version >= 1 {
        response.endpoint_type = 1;
    }
    response
}

/// A ConsumerProtocolSubscription v0 naming `orders`, as a consumer puts it
/// in JoinGroup.
const SUBSCRIPTION: &[u8] = b"\0\0\0\0\0\x01\0\x06orders\xff\xff\xff\xff";
/// A ConsumerProtocolAssignment v0 of `orders` partitions 0 and 2, as the
/// leader puts it in SyncGroup.
const ASSIGNMENT: &[u8] = b"\0\0\0\0\0\x01\0\x06orders\0\0\0\x02\0\0\0\0\0\0\0\x02\xff\xff\xff\xff";

fn find_coordinator_request(version: i16) -> FindCoordinatorRequest {
    let mut request = FindCoordinatorRequest::default();
    if version >= 1 {
        request.key_type = 1; // TRANSACTION
    }
    match version {
        0 => request.key = s("orders-app"),
        1..=3 => request.key = s("txn-7"),
        _ => request.coordinator_keys = vec![s("txn-7"), s("txn-8")],
    }
    request
}

fn find_coordinator_response(version: i16) -> FindCoordinatorResponse {
    let mut response = FindCoordinatorResponse::default();
    if version >= 1 {
        response.throttle_time_ms = 2;
    }
    if version >= 4 {
        response.coordinators = vec![
            find_coordinator_response::Coordinator::default()
                .with_key(s("txn-7"))
                .with_node_id(broker(2))
                .with_host(s("broker-2"))
                .with_port(9092),
            find_coordinator_response::Coordinator::default()
                .with_key(s("txn-8"))
                .with_node_id(broker(-1))
                .with_port(-1)
                .with_error_code(15) // COORDINATOR_NOT_AVAILABLE
                .with_error_message(Some(s("The coordinator is not available."))),
        ];
        return response;
    }
    response.node_id = broker(2);
    response.host = s("broker-2");
    response.port = 9092;
    if version >= 1 {
        response.error_message = Some(s("NONE"));
    }
    response
}

fn join_group_request(version: i16) -> JoinGroupRequest {
    let protocol = |name, metadata| {
        join_group_request::JoinGroupRequestProtocol::default()
            .with_name(s(name))
            .with_metadata(Bytes::from_static(metadata))
    };
    let mut request = JoinGroupRequest::default()
        .with_group_id(group("orders-app"))
        .with_session_timeout_ms(45_000)
        .with_member_id(s("rdkafka-5f1e0c2a"))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            protocol("range", SUBSCRIPTION),
            protocol(
                "cooperative-sticky",
                b"\0\x01\0\0\0\0\xff\xff\xff\xff\0\0\0\0",
            ),
        ]);
    if version >= 1 {
        request.rebalance_timeout_ms = 300_000;
    }
    if version >= 5 {
        request.group_instance_id = Some(s("orders-app-1"));
    }
    if version >= 8 {
        request.reason = Some(s("rebalance after metadata change"));
    }
    request
}

fn join_group_response(version: i16) -> JoinGroupResponse {
    let members = ["member-a", "member-b"]
        .into_iter()
        .enumerate()
        .map(|(i, member_id)| {
            let mut member = join_group_response::JoinGroupResponseMember::default()
                .with_member_id(s(member_id))
                .with_metadata(Bytes::from_static(SUBSCRIPTION));
            if version >= 5 {
                member.group_instance_id = (i == 0).then(|| s("orders-app-1"));
            }
            member
        })
        .collect();
    let mut response = JoinGroupResponse::default()
        .with_generation_id(3)
        .with_protocol_name(Some(s("range")))
        .with_leader(s("member-a"))
        .with_member_id(s("member-a"))
        .with_members(members);
    if version >= 2 {
        response.throttle_time_ms = 1;
    }
    if version >= 7 {
        response.protocol_type = Some(s("consumer"));
    }
    if version >= 9 {
        response.skip_assignment = true;
    }
    response
}

fn sync_group_request(version: i16) -> SyncGroupRequest {
    let assignment = |member_id| {
        sync_group_request::SyncGroupRequestAssignment::default()
            .with_member_id(s(member_id))
            .with_assignment(Bytes::from_static(ASSIGNMENT))
    };
    let mut request = SyncGroupRequest::default()
        .with_group_id(group("orders-app"))
        .with_generation_id(3)
        .with_member_id(s("member-a"))
        .with_assignments(vec![assignment("member-a"), assignment("member-b")]);
    if version >= 3 {
        request.group_instance_id = Some(s("orders-app-1"));
    }
    if version >= 5 {
        request.protocol_type = Some(s("consumer"));
        request.protocol_name = Some(s("range"));
    }
    request
}

fn sync_group_response(version: i16) -> SyncGroupResponse {
    let mut response = SyncGroupResponse::default().with_assignment(Bytes::from_static(ASSIGNMENT));
    if version >= 1 {
        response.throttle_time_ms = 1;
    }
    if version >= 5 {
        response.protocol_type = Some(s("consumer"));
        response.protocol_name = Some(s("range"));
    }
    response
}

fn heartbeat_request(version: i16) -> HeartbeatRequest {
    let mut request = HeartbeatRequest::default()
        .with_group_id(group("orders-app"))
        .with_generation_id(3)
        .with_member_id(s("member-a"));
    if version >= 3 {
        request.group_instance_id = Some(s("orders-app-1"));
    }
    request
}

fn heartbeat_response(version: i16) -> HeartbeatResponse {
    let mut response = HeartbeatResponse::default().with_error_code(27); // REBALANCE_IN_PROGRESS
    if version >= 1 {
        response.throttle_time_ms = 1;
    }
    response
}

fn leave_group_request(version: i16) -> LeaveGroupRequest {
    let mut request = LeaveGroupRequest::default().with_group_id(group("orders-app"));
    if version >= 3 {
        request.members = ["member-a", "member-b"]
            .into_iter()
            .enumerate()
            .map(|(i, member_id)| {
                let mut member = leave_group_request::MemberIdentity::default()
                    .with_member_id(s(member_id))
                    .with_group_instance_id((i == 0).then(|| s("orders-app-1")));
                if version >= 5 {
                    member.reason = Some(s("the consumer is being closed"));
                }
                member
            })
            .collect();
    } else {
        request.member_id = s("member-a");
    }
    request
}

fn leave_group_response(version: i16) -> LeaveGroupResponse {
    let mut response = LeaveGroupResponse::default();
    if version >= 1 {
        response.throttle_time_ms = 1;
    }
    if version >= 3 {
        response.members = vec![
            leave_group_response::MemberResponse::default()
                .with_member_id(s("member-a"))
                .with_group_instance_id(Some(s("orders-app-1"))),
            leave_group_response::MemberResponse::default()
                .with_member_id(s("member-b"))
                .with_error_code(25), // UNKNOWN_MEMBER_ID
        ];
    }
    response
}

fn offset_commit_request(version: i16) -> OffsetCommitRequest {
    let partition = |index, offset, metadata| {
        let mut partition = offset_commit_request::OffsetCommitRequestPartition::default()
            .with_partition_index(index)
            .with_committed_offset(offset)
            .with_committed_metadata(metadata);
        if version >= 6 {
            partition.committed_leader_epoch = 4;
        }
        partition
    };
    let mut request = OffsetCommitRequest::default()
        .with_group_id(group("orders-app"))
        .with_generation_id_or_member_epoch(3)
        .with_member_id(s("member-a"))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(topic("orders"))
                .with_partitions(vec![
                    partition(0, 1_234, Some(s("checkpoint-17"))),
                    partition(2, 0, None),
                ]),
        ]);
    if (2..=4).contains(&version) {
        request.retention_time_ms = 86_400_000;
    }
    if version >= 7 {
        request.group_instance_id = Some(s("orders-app-1"));
    }
    request
}

fn offset_commit_response(version: i16) -> OffsetCommitResponse {
    let mut response = OffsetCommitResponse::default().with_topics(vec![
        offset_commit_response::OffsetCommitResponseTopic::default()
            .with_name(topic("orders"))
            .with_partitions(vec![
                offset_commit_response::OffsetCommitResponsePartition::default()
                    .with_partition_index(0),
                offset_commit_response::OffsetCommitResponsePartition::default()
                    .with_partition_index(2)
                    .with_error_code(22), // ILLEGAL_GENERATION
            ]),
    ]);
    if version >= 3 {
        response.throttle_time_ms = 1;
    }
    response
}

fn offset_fetch_request(version: i16) -> OffsetFetchRequest {
    let mut request = OffsetFetchRequest::default();
    if version >= 8 {
        let mut named = offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(group("orders-app"))
            .with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopics::default()
                    .with_name(topic("orders"))
                    .with_partition_indexes(vec![0, 2]),
            ]));
        if version >= 9 {
            named.member_id = Some(s("member-a"));
            named.member_epoch = 5;
        }
        let every_topic = offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(group("audit-app"))
            .with_topics(None);
        request.groups = vec![named, every_topic];
    } else {
        request.group_id = group("orders-app");
        request.topics = Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(topic("orders"))
                .with_partition_indexes(vec![0, 2]),
        ]);
    }
    if version >= 7 {
        request.require_stable = true;
    }
    request
}

fn offset_fetch_response(version: i16) -> OffsetFetchResponse {
    let mut response = OffsetFetchResponse::default();
    if version >= 3 {
        response.throttle_time_ms = 1;
    }
    if version >= 8 {
        let partitions = vec![
            offset_fetch_response::OffsetFetchResponsePartitions::default()
                .with_partition_index(0)
                .with_committed_offset(1_234)
                .with_committed_leader_epoch(4)
                .with_metadata(Some(s("checkpoint-17"))),
            offset_fetch_response::OffsetFetchResponsePartitions::default()
                .with_partition_index(2)
                .with_committed_offset(-1)
                .with_metadata(Some(s(""))),
        ];
        response.groups = vec![
            offset_fetch_response::OffsetFetchResponseGroup::default()
                .with_group_id(group("orders-app"))
                .with_topics(vec![
                    offset_fetch_response::OffsetFetchResponseTopics::default()
                        .with_name(topic("orders"))
                        .with_partitions(partitions),
                ]),
            offset_fetch_response::OffsetFetchResponseGroup::default()
                .with_group_id(group("audit-app"))
                .with_error_code(14), // COORDINATOR_LOAD_IN_PROGRESS
        ];
        return response;
    }
    let mut found = offset_fetch_response::OffsetFetchResponsePartition::default()
        .with_partition_index(0)
        .with_committed_offset(1_234)
        .with_metadata(Some(s("checkpoint-17")));
    let none = offset_fetch_response::OffsetFetchResponsePartition::default()
        .with_partition_index(2)
        .with_committed_offset(-1)
        .with_metadata(Some(s("")));
    if version >= 5 {
        found.committed_leader_epoch = 4;
    }
    response.topics = vec![offset_fetch_response::OffsetFetchResponseTopic::default()
        .with_name(topic("orders"))
        .with_partitions(vec![found, none])];
    response
}

fn describe_groups_request(version: i16) -> DescribeGroupsRequest {
    let mut request = DescribeGroupsRequest::default()
        .with_groups(vec![group("orders-app"), group("missing-app")]);
    if version >= 3 {
        request.include_authorized_operations = true;
    }
    request
}

fn describe_groups_response(version: i16) -> DescribeGroupsResponse {
    let mut member = describe_groups_response::DescribedGroupMember::default()
        .with_member_id(s("member-a"))
        .with_client_id(s("rdkafka"))
        .with_client_host(s("/127.0.0.1"))
        .with_member_metadata(Bytes::from_static(SUBSCRIPTION))
        .with_member_assignment(Bytes::from_static(ASSIGNMENT));
    if version >= 4 {
        member.group_instance_id = Some(s("orders-app-1"));
    }
    let mut stable = describe_groups_response::DescribedGroup::default()
        .with_group_id(group("orders-app"))
        .with_group_state(s("Stable"))
        .with_protocol_type(s("consumer"))
        .with_protocol_data(s("range"))
        .with_members(vec![member]);
    if version >= 3 {
        stable.authorized_operations = 0b1_0110_0000;
    }
    // Before v6 an unknown group is described as Dead without an error.
    let mut missing = describe_groups_response::DescribedGroup::default()
        .with_group_id(group("missing-app"))
        .with_group_state(s("Dead"));
    if version >= 6 {
        missing.error_code = 69; // GROUP_ID_NOT_FOUND
        missing.error_message = Some(s("Group missing-app not found."));
    }
    let mut response = DescribeGroupsResponse::default().with_groups(vec![stable, missing]);
    if version >= 1 {
        response.throttle_time_ms = 1;
    }
    response
}

fn list_groups_request(version: i16) -> ListGroupsRequest {
    let mut request = ListGroupsRequest::default();
    if version >= 4 {
        request.states_filter = vec![s("Stable"), s("Empty")];
    }
    if version >= 5 {
        request.types_filter = vec![s("classic")];
    }
    request
}

fn list_groups_response(version: i16) -> ListGroupsResponse {
    let groups = [("orders-app", "Stable"), ("audit-app", "Empty")]
        .into_iter()
        .map(|(group_id, state)| {
            let mut listed = list_groups_response::ListedGroup::default()
                .with_group_id(group(group_id))
                .with_protocol_type(s("consumer"));
            if version >= 4 {
                listed.group_state = s(state);
            }
            if version >= 5 {
                listed.group_type = s("classic");
            }
            listed
        })
        .collect();
    let mut response = ListGroupsResponse::default().with_groups(groups);
    if version >= 1 {
        response.throttle_time_ms = 1;
    }
    response
}

fn delete_groups_request(_version: i16) -> DeleteGroupsRequest {
    DeleteGroupsRequest::default().with_groups_names(vec![group("audit-app"), group("orders-app")])
}

fn delete_groups_response(_version: i16) -> DeleteGroupsResponse {
    DeleteGroupsResponse::default()
        .with_throttle_time_ms(1)
        .with_results(vec![
            delete_groups_response::DeletableGroupResult::default()
                .with_group_id(group("audit-app")),
            delete_groups_response::DeletableGroupResult::default()
                .with_group_id(group("orders-app"))
                .with_error_code(68), // NON_EMPTY_GROUP
        ])
}

fn offset_delete_request(_version: i16) -> OffsetDeleteRequest {
    OffsetDeleteRequest::default()
        .with_group_id(group("audit-app"))
        .with_topics(vec![
            offset_delete_request::OffsetDeleteRequestTopic::default()
                .with_name(topic("orders"))
                .with_partitions(vec![
                    offset_delete_request::OffsetDeleteRequestPartition::default()
                        .with_partition_index(0),
                    offset_delete_request::OffsetDeleteRequestPartition::default()
                        .with_partition_index(2),
                ]),
        ])
}

fn offset_delete_response(_version: i16) -> OffsetDeleteResponse {
    OffsetDeleteResponse::default()
        .with_throttle_time_ms(1)
        .with_topics(vec![
            offset_delete_response::OffsetDeleteResponseTopic::default()
                .with_name(topic("orders"))
                .with_partitions(vec![
                    offset_delete_response::OffsetDeleteResponsePartition::default()
                        .with_partition_index(0),
                    offset_delete_response::OffsetDeleteResponsePartition::default()
                        .with_partition_index(2)
                        .with_error_code(86), // GROUP_SUBSCRIBED_TO_TOPIC
                ]),
        ])
}

#[test]
fn every_advertised_version_round_trips() {
    for api in SUPPORTED_APIS {
        for version in api.min_version..=api.max_version {
            round_trip_api(api.key, version);
        }
    }
}

#[test]
fn api_versions_carries_the_whole_table_at_every_version() {
    for version in 0..=4 {
        round_trip(
            "ApiVersions request",
            version,
            &api_versions_request(version),
        );
        let bytes = round_trip(
            "ApiVersions response",
            version,
            &api_versions_response(version),
        );
        let decoded = ApiVersionsResponse::decode(&mut bytes.clone(), version).unwrap();
        assert_eq!(decoded.api_keys.len(), SUPPORTED_APIS.len(), "v{version}");
        for (entry, api) in decoded.api_keys.iter().zip(SUPPORTED_APIS) {
            assert_eq!(entry.api_key, api.key as i16, "v{version}");
            assert_eq!(entry.min_version, api.min_version, "v{version}");
            assert_eq!(entry.max_version, api.max_version, "v{version}");
        }
    }
}

/// A record batch inside a Produce request is decoded as a slice of the
/// frame, not a copy: the produce path validates it in place.
#[test]
fn produce_records_stay_in_the_frame() {
    let version = 9;
    let body = round_trip("Produce request", version, &produce_request(version));
    let decoded = ProduceRequest::decode(&mut body.clone(), version).unwrap();
    let frame = body.as_ptr_range();
    for partition in &decoded.topic_data[0].partition_data {
        let records = partition.records.as_ref().unwrap();
        assert!(frame.contains(&records.as_ptr()));
    }
}
