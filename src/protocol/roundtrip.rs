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

pub(super) const TOPIC_ID: Uuid = Uuid::from_u128(0x5a17_0000_0000_4000_8000_0000_0000_0001);

pub(super) fn s(value: &'static str) -> StrBytes {
    StrBytes::from_static_str(value)
}

pub(super) fn topic(value: &'static str) -> TopicName {
    s(value).into()
}

pub(super) fn broker(id: i32) -> BrokerId {
    id.into()
}

pub(super) fn group(value: &'static str) -> GroupId {
    s(value).into()
}

pub(super) fn records(n: usize, compression: Compression) -> Bytes {
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

use super::roundtrip_acls as acls;
/// Round-trips the sample request and response of `key` at `version` and
/// returns the encoded request body.
use super::roundtrip_admin as admin;
use super::roundtrip_elect as elect;
use super::roundtrip_groups as groups;
use super::roundtrip_kip848 as kip848;
use super::roundtrip_quotas as quotas;
use super::roundtrip_reassign as reassign;
use super::roundtrip_sasl as sasl;
use super::roundtrip_txn as txn;

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
        ApiKey::OffsetForLeaderEpoch => both!(
            offset_for_leader_epoch_request,
            offset_for_leader_epoch_response
        ),
        ApiKey::Metadata => both!(metadata_request, metadata_response),
        ApiKey::ApiVersions => both!(api_versions_request, api_versions_response),
        ApiKey::CreateTopics => both!(create_topics_request, create_topics_response),
        ApiKey::DeleteTopics => both!(delete_topics_request, delete_topics_response),
        ApiKey::DescribeConfigs => both!(describe_configs_request, describe_configs_response),
        ApiKey::DescribeCluster => both!(describe_cluster_request, describe_cluster_response),
        ApiKey::AlterPartitionReassignments => both!(
            reassign::alter_partition_reassignments_request,
            reassign::alter_partition_reassignments_response
        ),
        ApiKey::ListPartitionReassignments => both!(
            reassign::list_partition_reassignments_request,
            reassign::list_partition_reassignments_response
        ),
        ApiKey::DescribeTopicPartitions => both!(
            reassign::describe_topic_partitions_request,
            reassign::describe_topic_partitions_response
        ),
        ApiKey::FindCoordinator => both!(
            groups::find_coordinator_request,
            groups::find_coordinator_response
        ),
        ApiKey::JoinGroup => both!(groups::join_group_request, groups::join_group_response),
        ApiKey::SyncGroup => both!(groups::sync_group_request, groups::sync_group_response),
        ApiKey::Heartbeat => both!(groups::heartbeat_request, groups::heartbeat_response),
        ApiKey::LeaveGroup => both!(groups::leave_group_request, groups::leave_group_response),
        ApiKey::OffsetCommit => both!(
            groups::offset_commit_request,
            groups::offset_commit_response
        ),
        ApiKey::TxnOffsetCommit => both!(
            groups::txn_offset_commit_request,
            groups::txn_offset_commit_response
        ),
        ApiKey::OffsetFetch => both!(groups::offset_fetch_request, groups::offset_fetch_response),
        ApiKey::DescribeGroups => both!(
            groups::describe_groups_request,
            groups::describe_groups_response
        ),
        ApiKey::ListGroups => both!(groups::list_groups_request, groups::list_groups_response),
        ApiKey::DeleteGroups => both!(
            groups::delete_groups_request,
            groups::delete_groups_response
        ),
        ApiKey::OffsetDelete => both!(
            groups::offset_delete_request,
            groups::offset_delete_response
        ),
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
        ApiKey::DescribeProducers => both!(
            txn::describe_producers_request,
            txn::describe_producers_response
        ),
        ApiKey::CreatePartitions => both!(
            admin::create_partitions_request,
            admin::create_partitions_response
        ),
        ApiKey::ElectLeaders => both!(elect::elect_leaders_request, elect::elect_leaders_response),
        ApiKey::AlterConfigs => both!(admin::alter_configs_request, admin::alter_configs_response),
        ApiKey::IncrementalAlterConfigs => both!(
            admin::incremental_alter_configs_request,
            admin::incremental_alter_configs_response
        ),
        ApiKey::DescribeLogDirs => both!(
            admin::describe_log_dirs_request,
            admin::describe_log_dirs_response
        ),
        ApiKey::DescribeQuorum => both!(
            admin::describe_quorum_request,
            admin::describe_quorum_response
        ),
        ApiKey::InitProducerId => both!(
            admin::init_producer_id_request,
            admin::init_producer_id_response
        ),
        ApiKey::WriteTxnMarkers => both!(
            txn::write_txn_markers_request,
            txn::write_txn_markers_response
        ),
        ApiKey::AddPartitionsToTxn => both!(
            txn::add_partitions_to_txn_request,
            txn::add_partitions_to_txn_response
        ),
        ApiKey::AddOffsetsToTxn => both!(
            txn::add_offsets_to_txn_request,
            txn::add_offsets_to_txn_response
        ),
        ApiKey::EndTxn => both!(txn::end_txn_request, txn::end_txn_response),
        ApiKey::DescribeTransactions => both!(
            txn::describe_transactions_request,
            txn::describe_transactions_response
        ),
        ApiKey::ListTransactions => both!(
            txn::list_transactions_request,
            txn::list_transactions_response
        ),
        ApiKey::CreateAcls => both!(acls::create_acls_request, acls::create_acls_response),
        ApiKey::DescribeAcls => both!(acls::describe_acls_request, acls::describe_acls_response),
        ApiKey::DeleteAcls => both!(acls::delete_acls_request, acls::delete_acls_response),
        ApiKey::SaslHandshake => both!(sasl::sasl_handshake_request, sasl::sasl_handshake_response),
        ApiKey::SaslAuthenticate => both!(
            sasl::sasl_authenticate_request,
            sasl::sasl_authenticate_response
        ),
        ApiKey::AlterUserScramCredentials => both!(
            sasl::alter_user_scram_credentials_request,
            sasl::alter_user_scram_credentials_response
        ),
        ApiKey::DescribeUserScramCredentials => both!(
            sasl::describe_user_scram_credentials_request,
            sasl::describe_user_scram_credentials_response
        ),
        ApiKey::DescribeClientQuotas => both!(
            quotas::describe_client_quotas_request,
            quotas::describe_client_quotas_response
        ),
        ApiKey::AlterClientQuotas => both!(
            quotas::alter_client_quotas_request,
            quotas::alter_client_quotas_response
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

fn offset_for_leader_epoch_request(version: i16) -> OffsetForLeaderEpochRequest {
    let partition = offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
        .with_partition(1)
        .with_current_leader_epoch(8)
        .with_leader_epoch(5);
    let mut request = OffsetForLeaderEpochRequest::default().with_topics(vec![
        offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
            .with_topic(topic("orders"))
            .with_partitions(vec![partition]),
    ]);
    if version >= 3 {
        request.replica_id = broker(-1);
    }
    request
}

fn offset_for_leader_epoch_response(_version: i16) -> OffsetForLeaderEpochResponse {
    let found = offset_for_leader_epoch_response::EpochEndOffset::default()
        .with_partition(1)
        .with_leader_epoch(5)
        .with_end_offset(777);
    let fenced = offset_for_leader_epoch_response::EpochEndOffset::default()
        .with_partition(2)
        .with_error_code(74) // FENCED_LEADER_EPOCH
        .with_leader_epoch(-1)
        .with_end_offset(-1);
    OffsetForLeaderEpochResponse::default()
        .with_throttle_time_ms(1)
        .with_topics(vec![
            offset_for_leader_epoch_response::OffsetForLeaderTopicResult::default()
                .with_topic(topic("orders"))
                .with_partitions(vec![found, fenced]),
        ])
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
