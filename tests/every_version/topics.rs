//! ApiVersions and the topic APIs (CreateTopics, Metadata, DescribeConfigs,
//! DescribeCluster, DeleteTopics) at every advertised version.

use std::io::Write;

use bytes::BytesMut;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, CreateTopicsRequest, DeleteTopicsRequest,
    DescribeClusterRequest, DescribeConfigsRequest, MetadataRequest, MetadataResponse,
    RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use shoal::client::frame;
use shoal::protocol::versions::{SASL_APIS, SUPPORTED_APIS};
use uuid::Uuid;

use crate::broker::{Broker, Conn, NODE_ID, RESPONSE_FRAME_MAX_BYTES};
use crate::wire::{
    name, str_bytes, versions_of, DYNAMIC_TOPIC_CONFIG, NONE, PARTITIONS, RESOURCE_BROKER,
    RESOURCE_TOPIC, TOPIC_ALREADY_EXISTS, UNKNOWN_TOPIC_ID, UNKNOWN_TOPIC_OR_PARTITION,
    UNSUPPORTED_VERSION,
};

/// The table as ApiVersions should advertise it on a PLAINTEXT listener:
/// every API shoal serves but the SASL exchange's.
fn expected_api_table() -> Vec<(i16, i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .filter(|api| !SASL_APIS.contains(&api.key))
        .map(|api| (api.key as i16, api.min_version, api.max_version))
        .collect()
}

pub fn api_versions(conn: &mut Conn) {
    for version in versions_of(ApiKey::ApiVersions) {
        let mut request = ApiVersionsRequest::default();
        if version >= 3 {
            request.client_software_name = str_bytes("every-version");
            request.client_software_version = str_bytes("1.0");
        }
        let response = conn.call(&request, version);
        assert_eq!(response.error_code, NONE, "ApiVersions v{version}");
        let table: Vec<(i16, i16, i16)> = response
            .api_keys
            .iter()
            .map(|api| (api.api_key, api.min_version, api.max_version))
            .collect();
        assert_eq!(table, expected_api_table(), "ApiVersions v{version} table");
    }

    // KIP-511: a version the broker does not know gets a v0 answer with
    // UNSUPPORTED_VERSION and the table, under the same correlation id.
    let unknown_version = 127;
    let correlation_id = 4242;
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(unknown_version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(str_bytes("every-version")));
    let mut body = BytesMut::new();
    header
        .encode(
            &mut body,
            ApiKey::ApiVersions.request_header_version(unknown_version),
        )
        .unwrap();
    // A v3+-shaped body: two empty compact strings and no tagged fields.
    body.extend_from_slice(&[1, 1, 0]);
    let mut request = (body.len() as i32).to_be_bytes().to_vec();
    request.extend_from_slice(&body);
    conn.stream.write_all(&request).unwrap();
    let mut response = frame::read_frame(&mut conn.stream, RESPONSE_FRAME_MAX_BYTES)
        .expect("ApiVersions v127: no response");
    let header = ResponseHeader::decode(&mut response, 0).unwrap();
    assert_eq!(header.correlation_id, correlation_id, "ApiVersions v127");
    let response = frame::decode_response::<ApiVersionsRequest>(response, 0).unwrap();
    assert_eq!(response.error_code, UNSUPPORTED_VERSION, "ApiVersions v127");
    let table: Vec<(i16, i16, i16)> = response
        .api_keys
        .iter()
        .map(|api| (api.api_key, api.min_version, api.max_version))
        .collect();
    assert_eq!(table, expected_api_table(), "ApiVersions v127 table");
}

/// A topic created through CreateTopics at `version`.
pub struct CreatedTopic {
    name: String,
    version: i16,
    segment_bytes: String,
}

fn creatable(topic: &str, configs: &[(&str, &str)]) -> CreateTopicsRequest {
    let mut creatable = CreatableTopic::default();
    creatable.name = name(topic);
    creatable.num_partitions = PARTITIONS;
    creatable.replication_factor = 1;
    creatable.configs = configs
        .iter()
        .map(|(key, value)| {
            let mut config = CreatableTopicConfig::default();
            config.name = str_bytes(key);
            config.value = Some(str_bytes(value));
            config
        })
        .collect();
    let mut request = CreateTopicsRequest::default();
    request.topics = vec![creatable];
    request.timeout_ms = 10_000;
    request
}

/// Creates `topic` at the newest CreateTopics version and checks it worked.
pub fn create_one(conn: &mut Conn, topic: &str, configs: &[(&str, &str)]) {
    let version = *versions_of(ApiKey::CreateTopics).end();
    let response = conn.call(&creatable(topic, configs), version);
    assert_eq!(response.topics.len(), 1);
    assert_eq!(response.topics[0].error_code, NONE, "create {topic}");
}

pub fn create_topics(conn: &mut Conn) -> Vec<CreatedTopic> {
    let mut created = Vec::new();
    for version in versions_of(ApiKey::CreateTopics) {
        let topic = format!("t-create-v{version}");
        let segment_bytes = (1_048_576 + i64::from(version) * 4096).to_string();
        let request = creatable(&topic, &[("segment.bytes", &segment_bytes)]);

        let response = conn.call(&request, version);
        assert_eq!(response.topics.len(), 1, "CreateTopics v{version}");
        let result = &response.topics[0];
        assert_eq!(result.name.0.as_str(), topic, "CreateTopics v{version}");
        assert_eq!(
            result.error_code, NONE,
            "CreateTopics v{version}: {:?}",
            result.error_message
        );
        if version >= 5 {
            assert_eq!(result.num_partitions, PARTITIONS, "CreateTopics v{version}");
            assert_eq!(result.replication_factor, 1, "CreateTopics v{version}");
            let configs = result.configs.as_deref().unwrap_or_default();
            let segment = configs
                .iter()
                .find(|config| config.name.as_str() == "segment.bytes")
                .unwrap_or_else(|| panic!("CreateTopics v{version}: no segment.bytes"));
            assert_eq!(
                segment.value.as_deref(),
                Some(segment_bytes.as_str()),
                "CreateTopics v{version}"
            );
        }
        if version >= 7 {
            assert!(
                !result.topic_id.is_nil(),
                "CreateTopics v{version} topic id"
            );
        }

        let again = conn.call(&request, version);
        assert_eq!(
            again.topics[0].error_code, TOPIC_ALREADY_EXISTS,
            "CreateTopics v{version} twice"
        );
        created.push(CreatedTopic {
            name: topic,
            version,
            segment_bytes,
        });
    }
    created
}

/// Checks every Metadata version; returns every topic's (name, id) as the
/// newest version reports them.
pub fn metadata(conn: &mut Conn, broker: &Broker, created: &[CreatedTopic]) -> Vec<(String, Uuid)> {
    let mut topic_ids = Vec::new();
    for version in versions_of(ApiKey::Metadata) {
        let mut request = MetadataRequest::default();
        // v0 has no null for "all topics"; an empty list means all.
        request.topics = if version == 0 { Some(Vec::new()) } else { None };
        let response: MetadataResponse = conn.call(&request, version);

        assert_eq!(response.brokers.len(), 1, "Metadata v{version} brokers");
        let node = &response.brokers[0];
        assert_eq!(node.node_id, BrokerId(NODE_ID), "Metadata v{version}");
        assert_eq!(node.host.as_str(), "127.0.0.1", "Metadata v{version}");
        assert_eq!(node.port, i32::from(broker.port), "Metadata v{version}");
        if version >= 1 {
            assert_eq!(
                response.controller_id,
                BrokerId(NODE_ID),
                "Metadata v{version}"
            );
        }
        if version >= 2 {
            assert!(
                response.cluster_id.is_some(),
                "Metadata v{version} cluster id"
            );
        }

        for want in created {
            let topic = response
                .topics
                .iter()
                .find(|topic| topic.name.as_ref().map(|n| n.0.as_str()) == Some(&want.name))
                .unwrap_or_else(|| panic!("Metadata v{version}: {} missing", want.name));
            assert_eq!(topic.error_code, NONE, "Metadata v{version} {}", want.name);
            let mut partitions: Vec<i32> =
                topic.partitions.iter().map(|p| p.partition_index).collect();
            partitions.sort_unstable();
            assert_eq!(
                partitions,
                (0..PARTITIONS).collect::<Vec<_>>(),
                "Metadata v{version} {}",
                want.name
            );
            for partition in &topic.partitions {
                assert_eq!(partition.error_code, NONE, "Metadata v{version}");
                assert_eq!(
                    partition.leader_id,
                    BrokerId(NODE_ID),
                    "Metadata v{version}"
                );
                assert_eq!(
                    partition.replica_nodes,
                    vec![BrokerId(NODE_ID)],
                    "Metadata v{version}"
                );
                assert_eq!(
                    partition.isr_nodes,
                    vec![BrokerId(NODE_ID)],
                    "Metadata v{version}"
                );
            }
            if version >= 10 {
                assert!(
                    !topic.topic_id.is_nil(),
                    "Metadata v{version} {} topic id",
                    want.name
                );
            }
        }

        if version >= 4 {
            let mut unknown = MetadataRequestTopic::default();
            unknown.name = Some(name("t-no-such-topic"));
            let mut request = MetadataRequest::default();
            request.topics = Some(vec![unknown]);
            request.allow_auto_topic_creation = false;
            let response = conn.call(&request, version);
            assert_eq!(response.topics.len(), 1, "Metadata v{version} unknown");
            assert_eq!(
                response.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION,
                "Metadata v{version} unknown topic"
            );
        }

        // From v12 a topic can be asked for by id alone (KIP-516).
        if version >= 12 {
            let wanted = &created[0].name;
            let id = response
                .topics
                .iter()
                .find(|topic| topic.name.as_ref().map(|n| n.0.as_str()) == Some(wanted))
                .map(|topic| topic.topic_id)
                .expect("created topic listed");
            let mut by_id = MetadataRequestTopic::default();
            by_id.name = None;
            by_id.topic_id = id;
            let mut request = MetadataRequest::default();
            request.topics = Some(vec![by_id]);
            request.allow_auto_topic_creation = false;
            let by_id_response = conn.call(&request, version);
            assert_eq!(by_id_response.topics.len(), 1, "Metadata v{version} by id");
            let topic = &by_id_response.topics[0];
            assert_eq!(topic.error_code, NONE, "Metadata v{version} by id");
            assert_eq!(topic.topic_id, id, "Metadata v{version} by id");
            assert_eq!(
                topic.name.as_ref().map(|n| n.0.as_str()),
                Some(wanted.as_str()),
                "Metadata v{version} by id: name"
            );
            assert_eq!(topic.partitions.len(), PARTITIONS as usize);

            let mut unknown = MetadataRequestTopic::default();
            unknown.name = None;
            unknown.topic_id = Uuid::new_v4();
            request.topics = Some(vec![unknown]);
            let unknown_response = conn.call(&request, version);
            assert_eq!(unknown_response.topics.len(), 1);
            assert_eq!(
                unknown_response.topics[0].error_code, UNKNOWN_TOPIC_ID,
                "Metadata v{version} unknown topic id"
            );
        }

        if version == *versions_of(ApiKey::Metadata).end() {
            topic_ids = response
                .topics
                .iter()
                .map(|topic| {
                    let name = topic.name.as_ref().expect("topic name").0.to_string();
                    (name, topic.topic_id)
                })
                .collect();
        }
    }
    topic_ids
}

pub fn describe_configs(conn: &mut Conn, created: &[CreatedTopic]) {
    let topic = created.last().expect("a created topic");
    for version in versions_of(ApiKey::DescribeConfigs) {
        let mut topic_resource = DescribeConfigsResource::default();
        topic_resource.resource_type = RESOURCE_TOPIC;
        topic_resource.resource_name = str_bytes(&topic.name);
        topic_resource.configuration_keys = None;
        let mut broker_resource = DescribeConfigsResource::default();
        broker_resource.resource_type = RESOURCE_BROKER;
        broker_resource.resource_name = str_bytes(&NODE_ID.to_string());
        broker_resource.configuration_keys = None;
        let mut unknown_resource = DescribeConfigsResource::default();
        unknown_resource.resource_type = RESOURCE_TOPIC;
        unknown_resource.resource_name = str_bytes("t-no-such-topic");
        unknown_resource.configuration_keys = None;
        let mut request = DescribeConfigsRequest::default();
        request.resources = vec![topic_resource, broker_resource, unknown_resource];

        let response = conn.call(&request, version);
        assert_eq!(response.results.len(), 3, "DescribeConfigs v{version}");
        let topic_result = &response.results[0];
        assert_eq!(topic_result.error_code, NONE, "DescribeConfigs v{version}");
        assert_eq!(topic_result.resource_type, RESOURCE_TOPIC);
        assert_eq!(topic_result.resource_name.as_str(), topic.name);
        let segment = topic_result
            .configs
            .iter()
            .find(|config| config.name.as_str() == "segment.bytes")
            .unwrap_or_else(|| panic!("DescribeConfigs v{version}: no segment.bytes"));
        assert_eq!(
            segment.value.as_deref(),
            Some(topic.segment_bytes.as_str()),
            "DescribeConfigs v{version} segment.bytes"
        );
        assert_eq!(
            segment.config_source, DYNAMIC_TOPIC_CONFIG,
            "DescribeConfigs v{version} segment.bytes source"
        );

        let broker_result = &response.results[1];
        assert_eq!(broker_result.error_code, NONE, "DescribeConfigs v{version}");
        assert_eq!(broker_result.resource_type, RESOURCE_BROKER);
        assert!(
            broker_result
                .configs
                .iter()
                .any(|config| config.name.as_str() == "message.max.bytes"
                    && config.value.is_some()),
            "DescribeConfigs v{version}: broker has no message.max.bytes"
        );

        assert_eq!(
            response.results[2].error_code, UNKNOWN_TOPIC_OR_PARTITION,
            "DescribeConfigs v{version} unknown topic"
        );
    }
}

pub fn describe_cluster(conn: &mut Conn, broker: &Broker) {
    for version in versions_of(ApiKey::DescribeCluster) {
        let mut request = DescribeClusterRequest::default();
        if version >= 1 {
            request.endpoint_type = 1;
        }
        let response = conn.call(&request, version);
        assert_eq!(response.error_code, NONE, "DescribeCluster v{version}");
        assert!(
            !response.cluster_id.is_empty(),
            "DescribeCluster v{version}"
        );
        assert_eq!(response.controller_id, BrokerId(NODE_ID));
        assert_eq!(response.brokers.len(), 1, "DescribeCluster v{version}");
        let node = &response.brokers[0];
        assert_eq!(
            node.broker_id,
            BrokerId(NODE_ID),
            "DescribeCluster v{version}"
        );
        assert_eq!(
            node.host.as_str(),
            "127.0.0.1",
            "DescribeCluster v{version}"
        );
        assert_eq!(
            node.port,
            i32::from(broker.port),
            "DescribeCluster v{version}"
        );
        // Not asked: Kafka's "not asked" value. Asked: every operation Kafka
        // defines on the cluster (CREATE, ALTER, DESCRIBE, CLUSTER_ACTION,
        // DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE), as without ACLs.
        assert_eq!(response.cluster_authorized_operations, i32::MIN);
        request.include_cluster_authorized_operations = true;
        let asked = conn.call(&request, version);
        assert_eq!(
            asked.cluster_authorized_operations, 0b1_1111_1010_0000,
            "DescribeCluster v{version} authorized operations"
        );
    }
}

pub fn delete_topics(conn: &mut Conn, created: &[CreatedTopic], topic_ids: &[(String, Uuid)]) {
    let id_of = |topic: &str| {
        topic_ids
            .iter()
            .find(|(name, _)| name == topic)
            .map(|(_, id)| *id)
            .unwrap_or_else(|| panic!("no topic id for {topic}"))
    };
    let mut remaining: Vec<&CreatedTopic> = created.iter().collect();
    for version in versions_of(ApiKey::DeleteTopics) {
        let victim = remaining.pop().expect("a topic left to delete");
        let mut request = DeleteTopicsRequest::default();
        request.timeout_ms = 10_000;
        if version >= 6 {
            let mut by_id = DeleteTopicState::default();
            by_id.topic_id = id_of(&victim.name);
            request.topics = vec![by_id];
        } else {
            request.topic_names = vec![name(&victim.name)];
        }
        let response = conn.call(&request, version);
        assert_eq!(response.responses.len(), 1, "DeleteTopics v{version}");
        let result = &response.responses[0];
        assert_eq!(
            result.error_code, NONE,
            "DeleteTopics v{version} {} (created at v{}): {:?}",
            victim.name, victim.version, result.error_message
        );
        if version >= 6 {
            assert_eq!(
                result.topic_id,
                id_of(&victim.name),
                "DeleteTopics v{version}"
            );
        }
        assert_eq!(
            result.name.as_ref().map(|n| n.0.as_str()),
            Some(victim.name.as_str()),
            "DeleteTopics v{version} name"
        );

        let mut unknown = DeleteTopicsRequest::default();
        unknown.timeout_ms = 10_000;
        if version >= 6 {
            let mut by_name = DeleteTopicState::default();
            by_name.name = Some(name("t-no-such-topic"));
            let mut by_id = DeleteTopicState::default();
            by_id.topic_id = Uuid::new_v4();
            unknown.topics = vec![by_name, by_id];
        } else {
            unknown.topic_names = vec![name("t-no-such-topic")];
        }
        let response = conn.call(&unknown, version);
        let codes: Vec<i16> = response.responses.iter().map(|r| r.error_code).collect();
        let expected = if version >= 6 {
            vec![UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN_TOPIC_ID]
        } else {
            vec![UNKNOWN_TOPIC_OR_PARTITION]
        };
        assert_eq!(codes, expected, "DeleteTopics v{version} unknown");
    }

    // What was deleted is gone from Metadata; what was not is still there.
    let response = conn.call(&MetadataRequest::default(), 12);
    let listed: Vec<&str> = response
        .topics
        .iter()
        .filter_map(|topic| topic.name.as_ref().map(|n| n.0.as_str()))
        .collect();
    for topic in created {
        let kept = remaining.iter().any(|left| left.name == topic.name);
        assert_eq!(
            listed.contains(&topic.name.as_str()),
            kept,
            "{} after DeleteTopics",
            topic.name
        );
    }
}

/// The id Metadata reports for `topic`.
pub fn metadata_topic_id(conn: &mut Conn, topic: &str) -> Uuid {
    let mut want = MetadataRequestTopic::default();
    want.name = Some(name(topic));
    let mut request = MetadataRequest::default();
    request.topics = Some(vec![want]);
    request.allow_auto_topic_creation = false;
    let version = *versions_of(ApiKey::Metadata).end();
    let response = conn.call(&request, version);
    assert_eq!(response.topics.len(), 1);
    assert_eq!(response.topics[0].error_code, NONE, "Metadata {topic}");
    response.topics[0].topic_id
}
