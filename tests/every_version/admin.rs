//! The admin APIs of issue 4 at every version (IncrementalAlterConfigs,
//! AlterConfigs, CreatePartitions, DeleteRecords, DescribeLogDirs,
//! DescribeQuorum), each checked by its effect as other APIs show it.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    alter_configs_request, create_partitions_request, delete_records_request,
    describe_log_dirs_request, describe_quorum_request, incremental_alter_configs_request,
    AlterConfigsRequest, CreatePartitionsRequest, DeleteRecordsRequest, DescribeLogDirsRequest,
    DescribeQuorumRequest, IncrementalAlterConfigsRequest,
};
use kafka_protocol::messages::{ApiKey, BrokerId, DescribeConfigsRequest, MetadataRequest};
use uuid::Uuid;

use crate::broker::{Conn, NODE_ID};
use crate::records::{
    check_produce, fetch_request, list_offsets_request, only_partition, produce_request,
    record_batch, RECORDS_PER_BATCH, TIMESTAMP_BASE_MS,
};
use crate::topics::create_one;
use crate::wire::{
    name, str_bytes, versions_of, DYNAMIC_TOPIC_CONFIG, EARLIEST_TIMESTAMP, NONE,
    OFFSET_OUT_OF_RANGE, PARTITIONS, RESOURCE_BROKER, RESOURCE_TOPIC, UNKNOWN_TOPIC_OR_PARTITION,
};

/// Kafka error codes of the admin APIs.
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const POLICY_VIOLATION: i16 = 44;
/// DescribeConfigs config source DEFAULT_CONFIG.
const DEFAULT_CONFIG: i8 = 5;
/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
/// The newest Produce version that names topics (the tests know no ids here).
const PRODUCE_BY_NAME_VERSION: i16 = 12;

/// (value, source) of config `key` of `topic`, per DescribeConfigs.
fn topic_config(conn: &mut Conn, topic: &str, key: &str) -> (String, i8) {
    let mut resource = DescribeConfigsResource::default();
    resource.resource_type = RESOURCE_TOPIC;
    resource.resource_name = str_bytes(topic);
    resource.configuration_keys = Some(vec![str_bytes(key)]);
    let mut request = DescribeConfigsRequest::default();
    request.resources = vec![resource];
    let response = conn.call(&request, *versions_of(ApiKey::DescribeConfigs).end());
    let result = &response.results[0];
    assert_eq!(result.error_code, NONE, "DescribeConfigs {topic}");
    let config = result
        .configs
        .iter()
        .find(|config| config.name.as_str() == key)
        .unwrap_or_else(|| panic!("{topic} has no {key}"));
    let value = config.value.as_deref().unwrap_or_default().to_owned();
    (value, config.config_source)
}

fn incremental_resource(
    resource_type: i8,
    resource_name: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> incremental_alter_configs_request::AlterConfigsResource {
    let mut resource = incremental_alter_configs_request::AlterConfigsResource::default();
    resource.resource_type = resource_type;
    resource.resource_name = str_bytes(resource_name);
    resource.configs = ops
        .iter()
        .map(|&(key, operation, value)| {
            let mut config = incremental_alter_configs_request::AlterableConfig::default();
            config.name = str_bytes(key);
            config.config_operation = operation;
            config.value = value.map(str_bytes);
            config
        })
        .collect();
    resource
}

/// (error code, resource name) per resource of IncrementalAlterConfigs.
fn incremental_alter(
    conn: &mut Conn,
    version: i16,
    resources: Vec<incremental_alter_configs_request::AlterConfigsResource>,
    validate_only: bool,
) -> Vec<(i16, String)> {
    let mut request = IncrementalAlterConfigsRequest::default();
    request.resources = resources;
    request.validate_only = validate_only;
    let response = conn.call(&request, version);
    response
        .responses
        .iter()
        .map(|answer| (answer.error_code, answer.resource_name.to_string()))
        .collect()
}

pub fn incremental_alter_configs(conn: &mut Conn) {
    for version in versions_of(ApiKey::IncrementalAlterConfigs) {
        let topic = format!("t-incremental-v{version}");
        create_one(conn, &topic, &[("segment.bytes", "1048576")]);
        let retention_ms = (3_600_000 + i64::from(version)).to_string();
        let ops = [
            ("retention.ms", OP_SET, Some(retention_ms.as_str())),
            ("segment.bytes", OP_DELETE, None),
            ("cleanup.policy", OP_APPEND, Some("compact")),
        ];
        let resource = incremental_resource(RESOURCE_TOPIC, &topic, &ops);
        assert_eq!(
            incremental_alter(conn, version, vec![resource], false),
            vec![(NONE, topic.clone())],
            "IncrementalAlterConfigs v{version}"
        );
        assert_eq!(
            topic_config(conn, &topic, "retention.ms"),
            (retention_ms.clone(), DYNAMIC_TOPIC_CONFIG),
            "IncrementalAlterConfigs v{version} SET"
        );
        assert_eq!(
            topic_config(conn, &topic, "segment.bytes").1,
            DEFAULT_CONFIG,
            "IncrementalAlterConfigs v{version} DELETE"
        );
        assert_eq!(
            topic_config(conn, &topic, "cleanup.policy").0,
            "delete,compact",
            "IncrementalAlterConfigs v{version} APPEND"
        );

        // Validate only: accepted, not applied.
        let resource = incremental_resource(
            RESOURCE_TOPIC,
            &topic,
            &[("retention.ms", OP_SET, Some("1"))],
        );
        assert_eq!(
            incremental_alter(conn, version, vec![resource], true),
            vec![(NONE, topic.clone())],
            "IncrementalAlterConfigs v{version} validate only"
        );
        assert_eq!(topic_config(conn, &topic, "retention.ms").0, retention_ms);

        // Each resource answers for itself; none of them changes anything.
        let resources = vec![
            incremental_resource(
                RESOURCE_TOPIC,
                "t-no-such-topic",
                &[("retention.ms", OP_SET, Some("1"))],
            ),
            incremental_resource(
                RESOURCE_TOPIC,
                &topic,
                &[("retention.ms", OP_SET, Some("soon"))],
            ),
            incremental_resource(RESOURCE_TOPIC, &format!("{topic}-x"), &[]),
            incremental_resource(
                RESOURCE_BROKER,
                &NODE_ID.to_string(),
                &[("num.partitions", OP_SET, Some("3"))],
            ),
        ];
        let answers: Vec<i16> = incremental_alter(conn, version, resources, false)
            .into_iter()
            .map(|(code, _)| code)
            .collect();
        assert_eq!(
            answers,
            vec![
                UNKNOWN_TOPIC_OR_PARTITION,
                INVALID_CONFIG,
                UNKNOWN_TOPIC_OR_PARTITION,
                INVALID_REQUEST
            ],
            "IncrementalAlterConfigs v{version} errors"
        );
        let resource = incremental_resource(
            RESOURCE_TOPIC,
            &topic,
            &[("retention.ms", OP_APPEND, Some("5"))],
        );
        assert_eq!(
            incremental_alter(conn, version, vec![resource], false),
            vec![(INVALID_CONFIG, topic.clone())],
            "IncrementalAlterConfigs v{version} APPEND to a non-list"
        );
        assert_eq!(topic_config(conn, &topic, "retention.ms").0, retention_ms);
    }
}

fn alter_configs_resource(
    topic: &str,
    configs: &[(&str, Option<&str>)],
) -> alter_configs_request::AlterConfigsResource {
    let mut resource = alter_configs_request::AlterConfigsResource::default();
    resource.resource_type = RESOURCE_TOPIC;
    resource.resource_name = str_bytes(topic);
    resource.configs = configs
        .iter()
        .map(|&(key, value)| {
            let mut config = alter_configs_request::AlterableConfig::default();
            config.name = str_bytes(key);
            config.value = value.map(str_bytes);
            config
        })
        .collect();
    resource
}

pub fn alter_configs(conn: &mut Conn) {
    for version in versions_of(ApiKey::AlterConfigs) {
        let topic = format!("t-alter-v{version}");
        create_one(
            conn,
            &topic,
            &[("segment.bytes", "1048576"), ("retention.ms", "1000")],
        );
        let retention_ms = (7_200_000 + i64::from(version)).to_string();
        let mut request = AlterConfigsRequest::default();
        request.resources = vec![alter_configs_resource(
            &topic,
            &[("retention.ms", Some(&retention_ms))],
        )];
        let response = conn.call(&request, version);
        assert_eq!(response.responses.len(), 1, "AlterConfigs v{version}");
        assert_eq!(
            response.responses[0].error_code, NONE,
            "AlterConfigs v{version}"
        );
        assert_eq!(response.responses[0].resource_name.as_str(), topic);
        assert_eq!(
            topic_config(conn, &topic, "retention.ms"),
            (retention_ms.clone(), DYNAMIC_TOPIC_CONFIG),
            "AlterConfigs v{version}"
        );
        // The whole override set was replaced: segment.bytes is back to its default.
        assert_eq!(
            topic_config(conn, &topic, "segment.bytes").1,
            DEFAULT_CONFIG,
            "AlterConfigs v{version} replaces every override"
        );

        let mut request = AlterConfigsRequest::default();
        request.resources = vec![
            alter_configs_resource(&topic, &[("retention.ms", None)]),
            alter_configs_resource("t-no-such-topic", &[("retention.ms", Some("1"))]),
            alter_configs_resource(&format!("{topic}-bad"), &[]),
        ];
        let response = conn.call(&request, version);
        let codes: Vec<i16> = response.responses.iter().map(|r| r.error_code).collect();
        assert_eq!(
            codes,
            vec![
                INVALID_REQUEST,
                UNKNOWN_TOPIC_OR_PARTITION,
                UNKNOWN_TOPIC_OR_PARTITION
            ],
            "AlterConfigs v{version} errors"
        );
        let mut request = AlterConfigsRequest::default();
        request.resources = vec![alter_configs_resource(
            &topic,
            &[("segment.bytes", Some("10"))],
        )];
        let response = conn.call(&request, version);
        assert_eq!(
            response.responses[0].error_code, INVALID_CONFIG,
            "AlterConfigs v{version}"
        );
        assert_eq!(topic_config(conn, &topic, "retention.ms").0, retention_ms);
    }
}

/// Partition ids of `topic` per Metadata.
fn partition_ids(conn: &mut Conn, topic: &str) -> Vec<i32> {
    let mut want = MetadataRequestTopic::default();
    want.name = Some(name(topic));
    let mut request = MetadataRequest::default();
    request.topics = Some(vec![want]);
    let response = conn.call(&request, *versions_of(ApiKey::Metadata).end());
    let mut ids: Vec<i32> = response.topics[0]
        .partitions
        .iter()
        .map(|partition| partition.partition_index)
        .collect();
    ids.sort();
    ids
}

/// The error of each topic of a CreatePartitions of `(topic, count,
/// replicas of each new partition)`.
fn grow(
    conn: &mut Conn,
    version: i16,
    topics: &[(&str, i32, Option<Vec<i32>>)],
    validate_only: bool,
) -> Vec<i16> {
    let mut request = CreatePartitionsRequest::default();
    request.topics = topics
        .iter()
        .map(|(topic, count, replicas)| {
            let mut wanted = create_partitions_request::CreatePartitionsTopic::default();
            wanted.name = name(topic);
            wanted.count = *count;
            wanted.assignments = replicas.as_ref().map(|replicas| {
                let mut assignment =
                    create_partitions_request::CreatePartitionsAssignment::default();
                assignment.broker_ids = replicas.iter().map(|&id| BrokerId(id)).collect();
                vec![assignment]
            });
            wanted
        })
        .collect();
    request.timeout_ms = 10_000;
    request.validate_only = validate_only;
    let response = conn.call(&request, version);
    let named: Vec<&str> = response.results.iter().map(|r| r.name.0.as_str()).collect();
    let asked: Vec<&str> = topics.iter().map(|(topic, _, _)| *topic).collect();
    assert_eq!(named, asked, "CreatePartitions v{version}");
    response
        .results
        .iter()
        .map(|result| result.error_code)
        .collect()
}

pub fn create_partitions(conn: &mut Conn) {
    let topic = "t-grow";
    create_one(conn, topic, &[]);
    let mut count = PARTITIONS;
    for version in versions_of(ApiKey::CreatePartitions) {
        let replicas = (version % 2 == 1).then(|| vec![NODE_ID]);
        assert_eq!(
            grow(conn, version, &[(topic, count + 1, replicas)], false),
            vec![NONE],
            "CreatePartitions v{version}"
        );
        count += 1;
        assert_eq!(partition_ids(conn, topic), (0..count).collect::<Vec<_>>());
        // The new partition takes records.
        let mut request = produce_request(
            PRODUCE_BY_NAME_VERSION,
            -1,
            topic,
            Uuid::nil(),
            record_batch(&format!("grown-v{version}"), TIMESTAMP_BASE_MS),
        );
        request.topic_data[0].partition_data[0].index = count - 1;
        let response = conn.call(&request, PRODUCE_BY_NAME_VERSION);
        let answer = &response.responses[0].partition_responses[0];
        assert_eq!(
            (answer.index, answer.error_code, answer.base_offset),
            (count - 1, NONE, 0),
            "Produce to the partition CreatePartitions v{version} added"
        );

        let errors = grow(
            conn,
            version,
            &[
                (topic, count, None),
                ("t-no-such-topic", 5, None),
                ("t-incremental-v0", 1, None),
            ],
            false,
        );
        assert_eq!(
            errors,
            vec![
                INVALID_PARTITIONS,
                UNKNOWN_TOPIC_OR_PARTITION,
                INVALID_PARTITIONS
            ],
            "CreatePartitions v{version} errors"
        );
        assert_eq!(
            grow(
                conn,
                version,
                &[(topic, count + 1, Some(vec![NODE_ID + 1]))],
                false
            ),
            vec![INVALID_REPLICA_ASSIGNMENT],
            "CreatePartitions v{version} on another broker"
        );
        assert_eq!(
            grow(conn, version, &[(topic, count + 5, None)], true),
            vec![NONE]
        );
        assert_eq!(
            partition_ids(conn, topic).len(),
            count as usize,
            "validate only"
        );
    }
}

/// (error, low watermark) per partition of a DeleteRecords of `topic`.
fn delete_records_of(
    conn: &mut Conn,
    version: i16,
    topic: &str,
    offsets: &[(i32, i64)],
) -> Vec<(i16, i64)> {
    let mut wanted = delete_records_request::DeleteRecordsTopic::default();
    wanted.name = name(topic);
    wanted.partitions = offsets
        .iter()
        .map(|&(partition, offset)| {
            let mut delete = delete_records_request::DeleteRecordsPartition::default();
            delete.partition_index = partition;
            delete.offset = offset;
            delete
        })
        .collect();
    let mut request = DeleteRecordsRequest::default();
    request.topics = vec![wanted];
    request.timeout_ms = 10_000;
    let response = conn.call(&request, version);
    assert_eq!(response.topics.len(), 1, "DeleteRecords v{version}");
    assert_eq!(response.topics[0].name.0.as_str(), topic);
    response.topics[0]
        .partitions
        .iter()
        .zip(offsets)
        .map(|(answer, &(partition, _))| {
            assert_eq!(
                answer.partition_index, partition,
                "DeleteRecords v{version}"
            );
            (answer.error_code, answer.low_watermark)
        })
        .collect()
}

fn earliest_offset(conn: &mut Conn, topic: &str) -> i64 {
    let version = *versions_of(ApiKey::ListOffsets).end();
    let response = conn.call(
        &list_offsets_request(version, topic, EARLIEST_TIMESTAMP),
        version,
    );
    let partition = &response.topics[0].partitions[0];
    assert_eq!(
        partition.error_code, NONE,
        "ListOffsets earliest of {topic}"
    );
    partition.offset
}

pub fn delete_records(conn: &mut Conn) {
    let topic = "t-delete-records";
    create_one(conn, topic, &[]);
    let batches = 6;
    for batch in 0..batches {
        let request = produce_request(
            PRODUCE_BY_NAME_VERSION,
            -1,
            topic,
            Uuid::nil(),
            record_batch(&format!("doomed-{batch}"), TIMESTAMP_BASE_MS),
        );
        check_produce(
            conn,
            &request,
            PRODUCE_BY_NAME_VERSION,
            topic,
            Uuid::nil(),
            batch * RECORDS_PER_BATCH as i64,
        );
    }
    let high_watermark = batches * RECORDS_PER_BATCH as i64;
    let fetch_version = PRODUCE_BY_NAME_VERSION;
    let mut low_watermark = 0;
    for version in versions_of(ApiKey::DeleteRecords) {
        // Into the middle of a batch, then (last) up to the high watermark.
        let (offset, expected) = if version == *versions_of(ApiKey::DeleteRecords).end() {
            (-1, high_watermark)
        } else {
            let offset = low_watermark + RECORDS_PER_BATCH as i64 + 1;
            (offset, offset)
        };
        assert_eq!(
            delete_records_of(conn, version, topic, &[(0, offset), (7, 0)]),
            vec![(NONE, expected), (UNKNOWN_TOPIC_OR_PARTITION, -1)],
            "DeleteRecords v{version} to {offset}"
        );
        low_watermark = expected;
        assert_eq!(
            earliest_offset(conn, topic),
            low_watermark,
            "DeleteRecords v{version}"
        );
        let response = conn.call(
            &fetch_request(fetch_version, topic, Uuid::nil(), low_watermark - 1, (0, 0)),
            fetch_version,
        );
        let partition = only_partition(&response, fetch_version, topic, Uuid::nil());
        assert_eq!(
            partition.error_code, OFFSET_OUT_OF_RANGE,
            "Fetch below the start DeleteRecords v{version} set"
        );
        assert_eq!(partition.log_start_offset, low_watermark);
        assert_eq!(
            delete_records_of(conn, version, topic, &[(0, high_watermark + 1)]),
            vec![(OFFSET_OUT_OF_RANGE, -1)],
            "DeleteRecords v{version} past the high watermark"
        );
        // Below the start: nothing changes.
        assert_eq!(
            delete_records_of(conn, version, topic, &[(0, 0)]),
            vec![(NONE, low_watermark)],
            "DeleteRecords v{version} below the start"
        );
    }
    let compacted = "t-delete-records-compacted";
    create_one(conn, compacted, &[("cleanup.policy", "compact")]);
    let version = *versions_of(ApiKey::DeleteRecords).end();
    assert_eq!(
        delete_records_of(conn, version, compacted, &[(0, 0)]),
        vec![(POLICY_VIOLATION, -1)],
        "DeleteRecords of a compacted topic"
    );
}

pub fn describe_log_dirs(conn: &mut Conn) {
    let topic = "t-delete-records";
    for version in versions_of(ApiKey::DescribeLogDirs) {
        for filter in [false, true] {
            let mut request = DescribeLogDirsRequest::default();
            request.topics = filter.then(|| {
                let mut wanted = describe_log_dirs_request::DescribableLogDirTopic::default();
                wanted.topic = name(topic);
                wanted.partitions = vec![0, 99];
                vec![wanted]
            });
            let response = conn.call(&request, version);
            let context = format!("DescribeLogDirs v{version} filtered={filter}");
            assert_eq!(response.error_code, NONE, "{context}");
            assert_eq!(response.results.len(), 1, "{context}");
            let dir = &response.results[0];
            assert_eq!(dir.error_code, NONE, "{context}");
            assert!(dir.log_dir.starts_with('/'), "{context}: {}", dir.log_dir);
            if version >= 4 {
                assert!(dir.total_bytes > 0, "{context}");
                assert!(
                    (0..=dir.total_bytes).contains(&dir.usable_bytes),
                    "{context}"
                );
            } else {
                assert_eq!((dir.total_bytes, dir.usable_bytes), (-1, -1), "{context}");
            }
            let listed: Vec<&str> = dir.topics.iter().map(|t| t.name.0.as_str()).collect();
            if filter {
                assert_eq!(listed, vec![topic], "{context}");
            } else {
                assert!(
                    listed.contains(&topic) && listed.contains(&"t-grow"),
                    "{context}: {listed:?}"
                );
            }
            let ours = dir
                .topics
                .iter()
                .find(|t| t.name.0.as_str() == topic)
                .unwrap();
            let expected_partitions = if filter { 1 } else { PARTITIONS as usize };
            assert_eq!(ours.partitions.len(), expected_partitions, "{context}");
            let partition = &ours.partitions[0];
            assert_eq!(partition.partition_index, 0, "{context}");
            assert!(partition.partition_size > 0, "{context}");
            assert_eq!(partition.offset_lag, 0, "{context}");
            assert!(!partition.is_future_key, "{context}");
        }
    }
}

/// DescribeQuorum at every version: a lone node leads its own quorum and
/// answers for `__cluster_metadata-0`, itself its one voter (v1's
/// timestamps its own now, v2's endpoints none: it has no CONTROLLER
/// listener); any other partition is UNKNOWN_TOPIC_OR_PARTITION.
pub fn describe_quorum(conn: &mut Conn) {
    let request = |partition| {
        let mut asked = describe_quorum_request::TopicData::default();
        asked.topic_name = name("__cluster_metadata");
        asked.partitions =
            vec![describe_quorum_request::PartitionData::default().with_partition_index(partition)];
        DescribeQuorumRequest::default().with_topics(vec![asked])
    };
    for version in versions_of(ApiKey::DescribeQuorum) {
        let context = format!("DescribeQuorum v{version}");
        let response = conn.call(&request(0), version);
        assert_eq!(response.error_code, NONE, "{context}");
        let partition = &response.topics[0].partitions[0];
        assert_eq!(partition.error_code, NONE, "{context}");
        assert_eq!(partition.leader_id.0, NODE_ID, "{context}");
        assert!(partition.leader_epoch >= 1, "{context}");
        assert!(partition.high_watermark > 0, "{context}");
        let voters: Vec<(i32, bool)> = partition
            .current_voters
            .iter()
            .map(|voter| {
                (
                    voter.replica_id.0,
                    voter.log_end_offset >= partition.high_watermark,
                )
            })
            .collect();
        assert_eq!(voters, [(NODE_ID, true)], "{context}");
        if version >= 1 {
            assert!(
                partition.current_voters[0].last_fetch_timestamp > 0,
                "{context}"
            );
        }
        assert!(
            partition.observers.is_empty() && response.nodes.is_empty(),
            "{context}"
        );

        let other = conn.call(&request(1), version);
        assert_eq!(
            other.topics[0].partitions[0].error_code, UNKNOWN_TOPIC_OR_PARTITION,
            "{context} partition 1"
        );
    }
}
