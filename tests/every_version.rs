//! Every advertised version of every API, against the real broker binary.
//!
//! One broker is started on a free port with a fresh data directory; each
//! API is then called over raw TCP at every version `ApiVersions`
//! advertises (`shoal::protocol::versions::SUPPORTED_APIS`), and each
//! response is decoded at that version and checked for content, not just
//! for shape. The broker is always killed and its directory removed, even
//! when an assertion fails.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::ops::RangeInclusive;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    alter_configs_request, create_partitions_request, delete_records_request,
    describe_log_dirs_request, describe_quorum_request, incremental_alter_configs_request,
    AlterConfigsRequest, CreatePartitionsRequest, DeleteRecordsRequest, DescribeLogDirsRequest,
    DescribeQuorumRequest, IncrementalAlterConfigsRequest,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, ConsumerProtocolAssignment, ConsumerProtocolSubscription,
    CreateTopicsRequest, DeleteGroupsRequest, DeleteTopicsRequest, DescribeClusterRequest,
    DescribeConfigsRequest, DescribeGroupsRequest, FetchRequest, FetchResponse,
    FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
    ListGroupsRequest, ListOffsetsRequest, MetadataRequest, MetadataResponse, OffsetCommitRequest,
    OffsetDeleteRequest, OffsetFetchRequest, ProduceRequest, RequestHeader, ResponseHeader,
    SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};
use shoal::client::frame;
use shoal::protocol::versions::{self, SUPPORTED_APIS};
use uuid::Uuid;

/// The client id of every request the test sends.
const CLIENT_ID: &str = "every-version";
/// How long the broker may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a refused `serve` may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
/// Socket read timeout: a broker that never answers fails the test instead
/// of hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest response frame the test accepts.
const RESPONSE_FRAME_MAX_BYTES: usize = 64 << 20;
/// The broker's `node.id` unless told otherwise.
const NODE_ID: i32 = 1;
/// Partitions of every topic the test creates.
const PARTITIONS: i32 = 2;
/// Records per produced batch.
const RECORDS_PER_BATCH: usize = 3;
/// First batch's record timestamp; batch `k` uses `BASE + k * STEP`.
const TIMESTAMP_BASE_MS: i64 = 1_700_000_000_000;
const TIMESTAMP_STEP_MS: i64 = 1_000;

/// Kafka error codes the test expects.
const NONE: i16 = 0;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const UNSUPPORTED_VERSION: i16 = 35;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;
const MEMBER_ID_REQUIRED: i16 = 79;
const UNKNOWN_TOPIC_ID: i16 = 100;
/// DescribeConfigs config source DYNAMIC_TOPIC_CONFIG.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
/// DescribeConfigs resource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// ListOffsets special timestamps.
const LATEST_TIMESTAMP: i64 = -1;
const EARLIEST_TIMESTAMP: i64 = -2;
/// KIP-1005, from ListOffsets v9.
const LATEST_TIERED_TIMESTAMP: i64 = -5;

/// A running broker; killed and its data directory removed on drop.
struct Broker {
    child: Child,
    port: u16,
    /// Dropped after the child is dead, removing the data directory.
    _data_dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// A broker started with `extra_args` after the usual ones (say
    /// `--override KEY=VALUE`).
    fn start_with(extra_args: &[&str]) -> Broker {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--shards",
                "2",
            ])
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(extra_args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn shoal serve");
        let stdout = child.stdout.take().expect("child stdout");
        // From here on the guard owns the child, so a failed wait kills it.
        let broker = Broker {
            child,
            port,
            _data_dir: data_dir,
        };
        let (lines_tx, lines_rx) = mpsc::channel();
        // Keeps draining stdout for the broker's whole life so it never
        // blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    // Nobody listens any more; keep reading to drain.
                }
            }
        });
        let ready = format!("shoal ready on 127.0.0.1:{port}");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) if line.trim() == ready => return broker,
                Ok(_) => continue,
                Err(error) => panic!("broker not ready within {READY_TIMEOUT:?}: {error}"),
            }
        }
    }

    fn connect(&self) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to broker");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            next_correlation_id: 1,
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

/// One client connection; every call checks the correlation id and that the
/// response decodes at the request's version with nothing left over.
struct Conn {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl Conn {
    /// Sends a request that gets no response (Produce with acks=0).
    fn send_unanswered<Req: Request>(&mut self, request: &Req, version: i16) {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let bytes = frame::encode_request(request, version, correlation_id, CLIENT_ID)
            .unwrap_or_else(|error| panic!("encode v{version}: {error:#}"));
        frame::write_frame(&mut self.stream, &bytes).unwrap();
    }

    fn call<Req: Request>(&mut self, request: &Req, version: i16) -> Req::Response {
        let api_key = frame::api_key_of::<Req>().unwrap();
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let bytes = frame::encode_request(request, version, correlation_id, CLIENT_ID)
            .unwrap_or_else(|error| panic!("encode {api_key:?} v{version}: {error:#}"));
        frame::write_frame(&mut self.stream, &bytes).unwrap();
        let response = frame::read_frame(&mut self.stream, RESPONSE_FRAME_MAX_BYTES)
            .unwrap_or_else(|error| panic!("{api_key:?} v{version}: no response: {error:#}"));
        let body = frame::split_response::<Req>(response, version, correlation_id)
            .unwrap_or_else(|error| panic!("{api_key:?} v{version}: {error:#}"));
        frame::decode_response::<Req>(body, version)
            .unwrap_or_else(|error| panic!("{api_key:?} v{version}: {error:#}"))
    }
}

fn versions_of(key: ApiKey) -> RangeInclusive<i16> {
    let api = versions::supported(key).unwrap_or_else(|| panic!("{key:?} not supported"));
    api.min_version..=api.max_version
}

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_owned()))
}

fn str_bytes(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

/// The table as ApiVersions should advertise it.
fn expected_api_table() -> Vec<(i16, i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .map(|api| (api.key as i16, api.min_version, api.max_version))
        .collect()
}

/// One record batch of `RECORDS_PER_BATCH` records, all stamped `timestamp`,
/// with values `{label}-{i}`.
fn record_batch(label: &str, timestamp: i64) -> Bytes {
    let records: Vec<Record> = (0..RECORDS_PER_BATCH)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // Keeping `offset - sequence` constant keeps one batch.
            sequence: NO_SEQUENCE.wrapping_add(i as i32),
            timestamp,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("{label}-{i}"))),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).expect("encode batch");
    buf.freeze()
}

/// What the produce phase wrote to partition 0 of the records topic, in
/// offset order: (timestamp, value) per record.
#[derive(Default)]
struct Produced {
    records: Vec<(i64, Bytes)>,
    /// First offset and timestamp of each batch.
    batches: Vec<(i64, i64)>,
}

#[test]
fn every_advertised_version_of_every_api() {
    let broker = Broker::start();
    let mut conn = broker.connect();

    api_versions(&mut conn);
    let created = create_topics(&mut conn);
    let records_topic = "t-records";
    create_one(&mut conn, records_topic, &[]);
    let topic_ids = metadata(&mut conn, &broker, &created);
    let records_topic_id = topic_ids
        .iter()
        .find(|(name, _)| name == records_topic)
        .map(|(_, id)| *id)
        .expect("records topic id");
    let produced = produce(&mut conn, records_topic, records_topic_id);
    fetch(&mut conn, records_topic, records_topic_id, &produced);
    list_offsets(&mut conn, records_topic, &produced);
    describe_configs(&mut conn, &created);
    describe_cluster(&mut conn, &broker);
    delete_topics(&mut conn, &created, &topic_ids);
}

fn api_versions(conn: &mut Conn) {
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
struct CreatedTopic {
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
fn create_one(conn: &mut Conn, topic: &str, configs: &[(&str, &str)]) {
    let version = *versions_of(ApiKey::CreateTopics).end();
    let response = conn.call(&creatable(topic, configs), version);
    assert_eq!(response.topics.len(), 1);
    assert_eq!(response.topics[0].error_code, NONE, "create {topic}");
}

fn create_topics(conn: &mut Conn) -> Vec<CreatedTopic> {
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
fn metadata(conn: &mut Conn, broker: &Broker, created: &[CreatedTopic]) -> Vec<(String, Uuid)> {
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

fn produce_request(
    version: i16,
    acks: i16,
    topic: &str,
    topic_id: Uuid,
    records: Bytes,
) -> ProduceRequest {
    let mut partition = PartitionProduceData::default();
    partition.index = 0;
    partition.records = Some(records);
    let mut data = TopicProduceData::default();
    if version >= 13 {
        data.topic_id = topic_id;
    } else {
        data.name = name(topic);
    }
    data.partition_data = vec![partition];
    let mut request = ProduceRequest::default();
    request.acks = acks;
    request.timeout_ms = 10_000;
    request.topic_data = vec![data];
    request
}

fn check_produce(
    conn: &mut Conn,
    request: &ProduceRequest,
    version: i16,
    topic: &str,
    topic_id: Uuid,
    expected_base: i64,
) {
    let acks = request.acks;
    let response = conn.call(request, version);

    assert_eq!(
        response.responses.len(),
        1,
        "Produce v{version} acks={acks}"
    );
    let topic_response = &response.responses[0];
    if version >= 13 {
        assert_eq!(topic_response.topic_id, topic_id, "Produce v{version}");
    } else {
        assert_eq!(topic_response.name.0.as_str(), topic, "Produce v{version}");
    }
    assert_eq!(topic_response.partition_responses.len(), 1);
    let partition = &topic_response.partition_responses[0];
    assert_eq!(partition.index, 0, "Produce v{version} acks={acks}");
    assert_eq!(
        partition.error_code, NONE,
        "Produce v{version} acks={acks}: {:?}",
        partition.error_message
    );
    assert_eq!(
        partition.base_offset, expected_base,
        "Produce v{version} acks={acks} base offset"
    );
    if version >= 5 {
        assert_eq!(partition.log_start_offset, 0, "Produce v{version}");
    }
}

fn produce(conn: &mut Conn, topic: &str, topic_id: Uuid) -> Produced {
    let mut produced = Produced::default();
    for version in versions_of(ApiKey::Produce) {
        // acks=0 gets no answer, yet the acks=1 batch after it on the same
        // connection must land after it. acks=1 is answered once written,
        // before the sync that raises the high watermark; the acks=-1 batch
        // last waits for that sync, so every record ends up readable.
        for acks in [0i16, 1, -1] {
            let label = format!("v{version}-acks{acks}");
            let timestamp = TIMESTAMP_BASE_MS + TIMESTAMP_STEP_MS * produced.batches.len() as i64;
            let batch = record_batch(&label, timestamp);
            let request = produce_request(version, acks, topic, topic_id, batch);
            let expected_base = produced.records.len() as i64;
            if acks == 0 {
                conn.send_unanswered(&request, version);
            } else {
                check_produce(conn, &request, version, topic, topic_id, expected_base);
            }
            produced.batches.push((expected_base, timestamp));
            for i in 0..RECORDS_PER_BATCH {
                produced
                    .records
                    .push((timestamp, Bytes::from(format!("{label}-{i}"))));
            }
        }

        let unknown = produce_request(
            version,
            -1,
            "t-no-such-topic",
            Uuid::new_v4(),
            record_batch("lost", TIMESTAMP_BASE_MS),
        );
        let response = conn.call(&unknown, version);
        let expected = if version >= 13 {
            UNKNOWN_TOPIC_ID
        } else {
            UNKNOWN_TOPIC_OR_PARTITION
        };
        assert_eq!(response.responses.len(), 1, "Produce v{version} unknown");
        let partitions = &response.responses[0].partition_responses;
        assert_eq!(partitions.len(), 1, "Produce v{version} unknown");
        assert_eq!(
            partitions[0].error_code, expected,
            "Produce v{version} unknown topic"
        );
    }
    produced
}

fn fetch_request(
    version: i16,
    topic: &str,
    topic_id: Uuid,
    fetch_offset: i64,
    session: (i32, i32),
) -> FetchRequest {
    let mut partition = FetchPartition::default();
    partition.partition = 0;
    partition.fetch_offset = fetch_offset;
    partition.partition_max_bytes = 1 << 20;
    let mut want = FetchTopic::default();
    if version >= 13 {
        want.topic_id = topic_id;
    } else {
        want.topic = name(topic);
    }
    want.partitions = vec![partition];
    let mut request = FetchRequest::default();
    request.replica_id = BrokerId(-1);
    request.max_wait_ms = 0;
    request.min_bytes = 1;
    request.max_bytes = 4 << 20;
    request.isolation_level = 0;
    if version >= 7 {
        request.session_id = session.0;
        request.session_epoch = session.1;
    }
    request.topics = vec![want];
    request
}

/// The only partition of a one-topic Fetch response.
fn only_partition<'a>(
    response: &'a FetchResponse,
    version: i16,
    topic: &str,
    topic_id: Uuid,
) -> &'a kafka_protocol::messages::fetch_response::PartitionData {
    assert_eq!(response.error_code, NONE, "Fetch v{version}");
    assert_eq!(response.responses.len(), 1, "Fetch v{version} topics");
    let topic_response = &response.responses[0];
    if version >= 13 {
        assert_eq!(topic_response.topic_id, topic_id, "Fetch v{version}");
    } else {
        assert_eq!(topic_response.topic.0.as_str(), topic, "Fetch v{version}");
    }
    assert_eq!(topic_response.partitions.len(), 1, "Fetch v{version}");
    &topic_response.partitions[0]
}

fn fetch(conn: &mut Conn, topic: &str, topic_id: Uuid, produced: &Produced) {
    let high_watermark = produced.records.len() as i64;
    for version in versions_of(ApiKey::Fetch) {
        let request = fetch_request(version, topic, topic_id, 0, (0, 0));
        let response = conn.call(&request, version);
        let partition = only_partition(&response, version, topic, topic_id);
        assert_eq!(partition.partition_index, 0, "Fetch v{version}");
        assert_eq!(partition.error_code, NONE, "Fetch v{version}");
        assert_eq!(
            partition.high_watermark, high_watermark,
            "Fetch v{version} HW"
        );
        assert_eq!(
            partition.last_stable_offset, high_watermark,
            "Fetch v{version} LSO"
        );
        if version >= 5 {
            assert_eq!(partition.log_start_offset, 0, "Fetch v{version}");
        }
        let mut records = partition.records.clone().expect("Fetch records");
        let sets = RecordBatchDecoder::decode_all(&mut records)
            .unwrap_or_else(|error| panic!("Fetch v{version}: decode records: {error:#}"));
        let fetched: Vec<(i64, i64, Bytes)> = sets
            .iter()
            .flat_map(|set| &set.records)
            .map(|record| {
                (
                    record.offset,
                    record.timestamp,
                    record.value.clone().unwrap_or_default(),
                )
            })
            .collect();
        let expected: Vec<(i64, i64, Bytes)> = produced
            .records
            .iter()
            .enumerate()
            .map(|(offset, (timestamp, value))| (offset as i64, *timestamp, value.clone()))
            .collect();
        assert_eq!(fetched, expected, "Fetch v{version} records");

        if version >= 7 {
            assert_ne!(
                response.session_id, 0,
                "Fetch v{version}: no session created"
            );
            incremental_fetch_without_changes(conn, version, topic, topic_id, high_watermark);
        }

        let beyond = fetch_request(version, topic, topic_id, high_watermark + 5, (0, -1));
        let response = conn.call(&beyond, version);
        let partition = only_partition(&response, version, topic, topic_id);
        assert_eq!(
            partition.error_code, OFFSET_OUT_OF_RANGE,
            "Fetch v{version} beyond the high watermark"
        );

        let unknown_id = Uuid::new_v4();
        let unknown = fetch_request(version, "t-no-such-topic", unknown_id, 0, (0, -1));
        let response = conn.call(&unknown, version);
        let partition = only_partition(&response, version, "t-no-such-topic", unknown_id);
        let expected = if version >= 13 {
            UNKNOWN_TOPIC_ID
        } else {
            UNKNOWN_TOPIC_OR_PARTITION
        };
        assert_eq!(
            partition.error_code, expected,
            "Fetch v{version} unknown topic"
        );
    }
}

/// A session made by a full fetch at the high watermark (so nothing is
/// left to read): the incremental fetch after it, changing nothing, names
/// no partition at all.
fn incremental_fetch_without_changes(
    conn: &mut Conn,
    version: i16,
    topic: &str,
    topic_id: Uuid,
    high_watermark: i64,
) {
    let mut full = fetch_request(version, topic, topic_id, high_watermark, (0, 0));
    full.min_bytes = 0;
    let response = conn.call(&full, version);
    let partition = only_partition(&response, version, topic, topic_id);
    assert_eq!(partition.error_code, NONE, "Fetch v{version} at the end");
    assert_eq!(partition.high_watermark, high_watermark, "Fetch v{version}");
    assert!(
        partition.records.as_ref().is_none_or(Bytes::is_empty),
        "Fetch v{version}: records past the high watermark"
    );
    let session_id = response.session_id;
    assert_ne!(session_id, 0, "Fetch v{version}: no session created");

    let mut incremental = fetch_request(version, topic, topic_id, 0, (session_id, 1));
    incremental.topics.clear();
    incremental.min_bytes = 0;
    let response = conn.call(&incremental, version);
    assert_eq!(response.error_code, NONE, "Fetch v{version} incremental");
    assert_eq!(
        response.session_id, session_id,
        "Fetch v{version} incremental session"
    );
    let partitions: usize = response
        .responses
        .iter()
        .map(|topic| topic.partitions.len())
        .sum();
    assert_eq!(partitions, 0, "Fetch v{version} incremental partitions");
}

fn list_offsets_request(version: i16, topic: &str, timestamp: i64) -> ListOffsetsRequest {
    let mut partition = ListOffsetsPartition::default();
    partition.partition_index = 0;
    partition.timestamp = timestamp;
    let mut want = ListOffsetsTopic::default();
    want.name = name(topic);
    want.partitions = vec![partition];
    let mut request = ListOffsetsRequest::default();
    request.replica_id = BrokerId(-1);
    request.topics = vec![want];
    if version >= 10 {
        request.timeout_ms = 10_000;
    }
    request
}

fn list_offsets(conn: &mut Conn, topic: &str, produced: &Produced) {
    let latest = produced.records.len() as i64;
    let (third_batch_offset, third_batch_timestamp) = produced.batches[2];
    let (_, last_batch_timestamp) = *produced.batches.last().expect("a produced batch");
    // (timestamp asked, offset expected, timestamp expected back if any).
    let cases = [
        (EARLIEST_TIMESTAMP, 0, None),
        (LATEST_TIMESTAMP, latest, None),
        (
            third_batch_timestamp,
            third_batch_offset,
            Some(third_batch_timestamp),
        ),
        // Between two batches: the first batch at or after it.
        (
            third_batch_timestamp - 1,
            third_batch_offset,
            Some(third_batch_timestamp),
        ),
        // After every record: no offset, as Kafka answers (-1, -1).
        (last_batch_timestamp + 1, -1, Some(-1)),
        // Nothing is tiered: no offset, as Kafka without remote storage.
        (LATEST_TIERED_TIMESTAMP, -1, Some(-1)),
    ];
    for version in versions_of(ApiKey::ListOffsets) {
        for (timestamp, expected, expected_timestamp) in cases {
            if timestamp == LATEST_TIERED_TIMESTAMP && version < 9 {
                continue;
            }
            let request = list_offsets_request(version, topic, timestamp);
            let response = conn.call(&request, version);
            assert_eq!(response.topics.len(), 1, "ListOffsets v{version}");
            assert_eq!(response.topics[0].name.0.as_str(), topic);
            let partitions = &response.topics[0].partitions;
            assert_eq!(partitions.len(), 1, "ListOffsets v{version}");
            assert_eq!(
                partitions[0].error_code, NONE,
                "ListOffsets v{version} ts={timestamp}"
            );
            assert_eq!(
                partitions[0].offset, expected,
                "ListOffsets v{version} ts={timestamp}"
            );
            if let Some(expected_timestamp) = expected_timestamp {
                assert_eq!(
                    partitions[0].timestamp, expected_timestamp,
                    "ListOffsets v{version} ts={timestamp} found timestamp"
                );
            }
            if version >= 4 {
                // No offset, no epoch (Kafka's -1); the only epoch otherwise.
                let epoch = if expected < 0 { -1 } else { 0 };
                assert_eq!(
                    partitions[0].leader_epoch, epoch,
                    "ListOffsets v{version} ts={timestamp} leader epoch"
                );
            }
        }

        let request = list_offsets_request(version, "t-no-such-topic", LATEST_TIMESTAMP);
        let response = conn.call(&request, version);
        assert_eq!(response.topics.len(), 1, "ListOffsets v{version} unknown");
        assert_eq!(response.topics[0].partitions.len(), 1);
        assert_eq!(
            response.topics[0].partitions[0].error_code, UNKNOWN_TOPIC_OR_PARTITION,
            "ListOffsets v{version} unknown topic"
        );
    }
}

fn describe_configs(conn: &mut Conn, created: &[CreatedTopic]) {
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

fn describe_cluster(conn: &mut Conn, broker: &Broker) {
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

fn delete_topics(conn: &mut Conn, created: &[CreatedTopic], topic_ids: &[(String, Uuid)]) {
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

/// Runs `shoal serve` with `args` and waits (bounded) for it to exit;
/// returns its status and stderr. Kills it if it does not exit.
fn serve_expecting_exit(args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .arg("serve")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shoal serve");
    let deadline = Instant::now() + EXIT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("shoal serve {args:?} still running after {EXIT_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

#[test]
fn second_broker_on_the_same_data_dir_is_refused() {
    let broker = Broker::start();
    let data_dir = broker._data_dir.path().to_str().unwrap().to_owned();
    let listen = format!("127.0.0.1:{}", free_port());
    let (status, stderr) = serve_expecting_exit(&[
        "--listen",
        &listen,
        "--data-dir",
        &data_dir,
        "--shards",
        "1",
    ]);
    assert!(!status.success(), "second serve exited with {status}");
    assert!(
        stderr.to_lowercase().contains("lock"),
        "second serve's stderr does not mention the lock: {stderr}"
    );
    // The first broker is unharmed.
    let mut conn = broker.connect();
    let response = conn.call(&ApiVersionsRequest::default(), 0);
    assert_eq!(response.error_code, NONE);
}

#[test]
fn unknown_override_is_refused() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let listen = format!("127.0.0.1:{}", free_port());
    let (status, stderr) = serve_expecting_exit(&[
        "--listen",
        &listen,
        "--data-dir",
        data_dir.path().to_str().unwrap(),
        "--shards",
        "1",
        "--override",
        "no.such.key=1",
    ]);
    assert!(
        !status.success(),
        "serve with an unknown override: {status}"
    );
    assert!(
        stderr.contains("no.such.key"),
        "stderr does not name the key: {stderr}"
    );
}

/// KIP-227: a partition the consumer re-sends in an incremental fetch only
/// to move its fetch offset keeps the high watermark and log start offset
/// the session last sent, so with nothing new it stays out of the answer.
/// Kafka's `CachedPartition::updateRequestParams` keeps them; shoal's
/// session replaces the whole entry (src/server/handlers/fetch.rs, the
/// `session.partitions.insert(.., session_partition(want))` of the
/// incremental branch), which resets them to -1 and re-sends the partition.
#[test]

fn incremental_fetch_that_only_moves_the_offset_names_no_partition() {
    let broker = Broker::start();
    let mut conn = broker.connect();
    let topic = "t-session";
    create_one(&mut conn, topic, &[]);
    let topic_id = metadata_topic_id(&mut conn, topic);
    let produce_version = *versions_of(ApiKey::Produce).end();
    let request = produce_request(
        produce_version,
        -1,
        topic,
        topic_id,
        record_batch("session", TIMESTAMP_BASE_MS),
    );
    let response = conn.call(&request, produce_version);
    assert_eq!(
        response.responses[0].partition_responses[0].error_code,
        NONE
    );
    let high_watermark = RECORDS_PER_BATCH as i64;

    for version in versions_of(ApiKey::Fetch).filter(|&version| version >= 7) {
        let full = fetch_request(version, topic, topic_id, 0, (0, 0));
        let response = conn.call(&full, version);
        let partition = only_partition(&response, version, topic, topic_id);
        assert_eq!(partition.high_watermark, high_watermark, "Fetch v{version}");
        let session_id = response.session_id;
        assert_ne!(session_id, 0, "Fetch v{version}: no session created");

        let mut moved = fetch_request(version, topic, topic_id, high_watermark, (session_id, 1));
        moved.min_bytes = 0;
        let response = conn.call(&moved, version);
        assert_eq!(response.error_code, NONE, "Fetch v{version} incremental");
        let partitions: usize = response
            .responses
            .iter()
            .map(|topic| topic.partitions.len())
            .sum();
        assert_eq!(
            partitions, 0,
            "Fetch v{version}: unchanged partition re-sent after its offset moved"
        );
    }
}

/// The id Metadata reports for `topic`.
fn metadata_topic_id(conn: &mut Conn, topic: &str) -> Uuid {
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

/// Every group API at every version, in one classic-group round per
/// JoinGroup version: the other APIs run at the round's version clamped into
/// their own range, which walks each of their versions because no range
/// reaches past JoinGroup's (checked first).
///
/// The broker runs with `group.initial.rebalance.delay.ms=0`, so a group's
/// first (single-member) join completes at the next coordinator tick instead
/// of after Kafka's 3 s default.
#[test]
fn every_advertised_version_of_every_group_api() {
    let rounds = versions_of(ApiKey::JoinGroup);
    for key in GROUP_APIS {
        let range = versions_of(key);
        assert!(
            rounds.start() <= range.start() && range.end() <= rounds.end(),
            "{key:?} {range:?} is not walked by JoinGroup rounds {rounds:?}"
        );
    }
    let broker = Broker::start_with(&["--override", "group.initial.rebalance.delay.ms=0"]);
    let mut conn = broker.connect();
    let topic = "t-groups";
    create_one(&mut conn, topic, &[]);

    assert_eq!(
        offsets_topic_partitions(&mut conn, 4),
        Err(UNKNOWN_TOPIC_OR_PARTITION),
        "{OFFSETS_TOPIC} before any group request"
    );
    find_coordinator(&mut conn, &broker);
    assert_eq!(
        offsets_topic_partitions(&mut conn, 1),
        Ok(OFFSETS_TOPIC_PARTITIONS),
        "{OFFSETS_TOPIC} after FindCoordinator"
    );

    for round in rounds {
        group_round(&mut conn, round, topic);
    }
}

/// The group APIs a round walks, JoinGroup's rounds aside.
const GROUP_APIS: [ApiKey; 9] = [
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::DescribeGroups,
    ApiKey::ListGroups,
    ApiKey::DeleteGroups,
    ApiKey::OffsetDelete,
];
const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Kafka's `offsets.topic.num.partitions` default.
const OFFSETS_TOPIC_PARTITIONS: usize = 50;
/// Within the broker's `group.{min,max}.session.timeout.ms`.
const SESSION_TIMEOUT_MS: i32 = 30_000;
const REBALANCE_TIMEOUT_MS: i32 = 30_000;
const PROTOCOL_TYPE: &str = "consumer";
const ASSIGNOR: &str = "range";
/// The leader epoch committed from OffsetCommit v6.
const COMMITTED_LEADER_EPOCH: i32 = 0;
const NO_LEADER_EPOCH: i32 = -1;

/// The partitions of `__consumer_offsets` and that it is internal, or the
/// error Metadata gives for it; at every Metadata version from `first`,
/// which must be at least 1 (`is_internal`), and at least 4 if the topic
/// must not be auto-created (v1–v3 cannot ask not to).
fn offsets_topic_partitions(conn: &mut Conn, first: i16) -> Result<usize, i16> {
    let mut answers = Vec::new();
    for version in versions_of(ApiKey::Metadata).filter(|&version| version >= first) {
        let mut want = MetadataRequestTopic::default();
        want.name = Some(name(OFFSETS_TOPIC));
        let mut request = MetadataRequest::default();
        request.topics = Some(vec![want]);
        if version >= 4 {
            request.allow_auto_topic_creation = false;
        }
        let response = conn.call(&request, version);
        assert_eq!(response.topics.len(), 1, "Metadata v{version}");
        let topic = &response.topics[0];
        let answer = if topic.error_code == NONE {
            assert!(topic.is_internal, "Metadata v{version}: {OFFSETS_TOPIC}");
            Ok(topic.partitions.len())
        } else {
            Err(topic.error_code)
        };
        answers.push(answer);
    }
    let first = answers[0];
    assert!(
        answers.iter().all(|answer| *answer == first),
        "Metadata versions disagree on {OFFSETS_TOPIC}: {answers:?}"
    );
    first
}

fn find_coordinator(conn: &mut Conn, broker: &Broker) {
    for version in versions_of(ApiKey::FindCoordinator) {
        let keys = [
            format!("g-find-v{version}-a"),
            format!("g-find-v{version}-b"),
        ];
        let mut request = FindCoordinatorRequest::default();
        let asked: &[String] = if version >= 4 {
            request.coordinator_keys = keys.iter().map(|key| str_bytes(key)).collect();
            &keys
        } else {
            request.key = str_bytes(&keys[0]);
            &keys[..1]
        };
        let response = conn.call(&request, version);
        // (key, error, node, host, port) per key asked.
        let answers: Vec<(String, i16, i32, String, i32)> = if version >= 4 {
            response
                .coordinators
                .iter()
                .map(|coordinator| {
                    (
                        coordinator.key.to_string(),
                        coordinator.error_code,
                        coordinator.node_id.0,
                        coordinator.host.to_string(),
                        coordinator.port,
                    )
                })
                .collect()
        } else {
            vec![(
                keys[0].clone(),
                response.error_code,
                response.node_id.0,
                response.host.to_string(),
                response.port,
            )]
        };
        let expected: Vec<(String, i16, i32, String, i32)> = asked
            .iter()
            .map(|key| {
                let port = i32::from(broker.port);
                (key.clone(), NONE, NODE_ID, "127.0.0.1".to_owned(), port)
            })
            .collect();
        assert_eq!(answers, expected, "FindCoordinator v{version}");
    }
}

/// The version of `key` a round at JoinGroup `round` uses.
fn round_version(key: ApiKey, round: i16) -> i16 {
    let range = versions_of(key);
    round.clamp(*range.start(), *range.end())
}

fn group_id(text: &str) -> GroupId {
    GroupId(str_bytes(text))
}

/// A ConsumerProtocolSubscription v0 to `topic`, as JoinGroup metadata.
fn subscription(topic: &str) -> Bytes {
    let mut subscription = ConsumerProtocolSubscription::default();
    subscription.topics = vec![str_bytes(topic)];
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    subscription.encode(&mut buf, 0).unwrap();
    buf.freeze()
}

/// A ConsumerProtocolAssignment v0 of every partition of `topic`.
fn assignment(topic: &str) -> Bytes {
    let mut partitions = TopicPartition::default();
    partitions.topic = name(topic);
    partitions.partitions = (0..PARTITIONS).collect();
    let mut assignment = ConsumerProtocolAssignment::default();
    assignment.assigned_partitions = vec![partitions];
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    assignment.encode(&mut buf, 0).unwrap();
    buf.freeze()
}

/// (topic, partition, error code) of every partition of the per-topic
/// answers of OffsetCommit or OffsetDelete.
macro_rules! partition_errors {
    ($topics:expr) => {
        $topics
            .iter()
            .flat_map(|answer| {
                answer.partitions.iter().map(move |partition| {
                    (
                        answer.name.0.to_string(),
                        partition.partition_index,
                        partition.error_code,
                    )
                })
            })
            .collect::<Vec<(String, i32, i16)>>()
    };
}

/// A member of the group of one round, after SyncGroup.
struct Member {
    group: String,
    member_id: String,
    generation_id: i32,
}

/// One offset as a commit sends it and a fetch should return it.
#[derive(Debug, Clone, PartialEq)]
struct Committed {
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: Option<String>,
}

/// Join, sync, heartbeat, commit and fetch, describe, list, delete, leave:
/// the life of a one-member consumer group, at JoinGroup version `round`.
fn group_round(conn: &mut Conn, round: i16, topic: &str) {
    let member = join_and_sync(conn, round, topic);
    heartbeat(conn, round, &member);

    let commit_version = round_version(ApiKey::OffsetCommit, round);
    let fetch_version = round_version(ApiKey::OffsetFetch, round);
    let round_offset = 100 * i64::from(round);
    let offsets = [
        Committed {
            partition: 0,
            offset: round_offset + 1,
            leader_epoch: COMMITTED_LEADER_EPOCH,
            metadata: Some(format!("round-v{round}")),
        },
        Committed {
            partition: 1,
            offset: round_offset + 2,
            leader_epoch: COMMITTED_LEADER_EPOCH,
            metadata: None,
        },
    ];
    commit(
        conn,
        commit_version,
        &member.group,
        (member.generation_id, &member.member_id),
        topic,
        &offsets,
    );
    let fetched = fetch_offsets(conn, fetch_version, &member.group, topic, Some(&[0, 1]));
    let expected = expected_fetch(&offsets, commit_version, fetch_version);
    assert_eq!(
        fetched, expected,
        "OffsetFetch v{fetch_version} after OffsetCommit v{commit_version}"
    );
    if fetch_version >= 2 {
        let mut every = fetch_offsets(conn, fetch_version, &member.group, topic, None);
        every.sort_by_key(|committed| committed.partition);
        assert_eq!(
            every, expected,
            "OffsetFetch v{fetch_version} of every partition"
        );
    }

    // A standalone commit (an `assign()` consumer): no generation, no
    // member, and the group it names stays Empty.
    let standalone = format!("g-standalone-v{round}");
    let standalone_offsets = [Committed {
        partition: 0,
        offset: round_offset + 3,
        leader_epoch: COMMITTED_LEADER_EPOCH,
        metadata: Some("standalone".to_owned()),
    }];
    commit(
        conn,
        commit_version,
        &standalone,
        (-1, ""),
        topic,
        &standalone_offsets,
    );
    let fetched = fetch_offsets(conn, fetch_version, &standalone, topic, Some(&[0]));
    let expected = expected_fetch(&standalone_offsets, commit_version, fetch_version);
    assert_eq!(
        fetched, expected,
        "OffsetFetch v{fetch_version} after a standalone OffsetCommit v{commit_version}"
    );

    describe_stable(conn, round, &member, topic);
    list_groups(conn, round, &member.group, &standalone);

    let delete_version = round_version(ApiKey::DeleteGroups, round);
    assert_eq!(
        delete_groups(conn, delete_version, &[&member.group]),
        vec![NON_EMPTY_GROUP],
        "DeleteGroups v{delete_version} of a group with a member"
    );

    // OffsetDelete on the Empty group: the offset is gone, nothing else is.
    let version = round_version(ApiKey::OffsetDelete, round);
    let mut partition = OffsetDeleteRequestPartition::default();
    partition.partition_index = 0;
    let mut delete_topic = OffsetDeleteRequestTopic::default();
    delete_topic.name = name(topic);
    delete_topic.partitions = vec![partition];
    let mut request = OffsetDeleteRequest::default();
    request.group_id = group_id(&standalone);
    request.topics = vec![delete_topic];
    let response = conn.call(&request, version);
    assert_eq!(response.error_code, NONE, "OffsetDelete v{version}");
    let answers = partition_errors!(response.topics);
    assert_eq!(
        answers,
        vec![(topic.to_owned(), 0, NONE)],
        "OffsetDelete v{version}"
    );
    let fetched = fetch_offsets(conn, fetch_version, &standalone, topic, Some(&[0]));
    assert_eq!(
        fetched,
        expected_fetch(&[no_offset(0)], commit_version, fetch_version),
        "OffsetFetch v{fetch_version} after OffsetDelete v{version}"
    );

    leave(conn, round, &member);
    assert_eq!(
        delete_groups(conn, delete_version, &[&member.group, &standalone]),
        vec![NONE, NONE],
        "DeleteGroups v{delete_version} of empty groups"
    );
    let listed = listed_groups(conn, round_version(ApiKey::ListGroups, round), &[]);
    for deleted in [&member.group, &standalone] {
        assert!(
            !listed.iter().any(|(group, _, _)| group == deleted),
            "ListGroups after DeleteGroups v{delete_version}: {deleted} still listed"
        );
    }
    assert_eq!(
        delete_groups(conn, delete_version, &[&member.group]),
        vec![GROUP_ID_NOT_FOUND],
        "DeleteGroups v{delete_version} of a deleted group"
    );
    describe_deleted(conn, round, &member.group);
}

/// DescribeGroups of a group that does not exist: Dead before v6, an error
/// from v6 (KIP-1043).
fn describe_deleted(conn: &mut Conn, round: i16, group: &str) {
    let version = round_version(ApiKey::DescribeGroups, round);
    let mut request = DescribeGroupsRequest::default();
    request.groups = vec![group_id(group)];
    let response = conn.call(&request, version);
    assert_eq!(response.groups.len(), 1, "DescribeGroups v{version}");
    let described = &response.groups[0];
    assert_eq!(described.group_id.0.as_str(), group);
    assert!(
        described.members.is_empty(),
        "DescribeGroups v{version} {group}"
    );
    if version >= 6 {
        assert_eq!(
            described.error_code, GROUP_ID_NOT_FOUND,
            "DescribeGroups v{version} of a deleted group"
        );
    } else {
        assert_eq!(
            (described.error_code, described.group_state.as_str()),
            (NONE, "Dead"),
            "DescribeGroups v{version} of a deleted group"
        );
    }
}

/// JoinGroup at `round` (twice from v4: KIP-394's MEMBER_ID_REQUIRED hands
/// out the member id to rejoin with), then SyncGroup with the leader's
/// assignment.
fn join_and_sync(conn: &mut Conn, round: i16, topic: &str) -> Member {
    let group = format!("g-round-v{round}");
    let join = |member_id: &str| {
        let mut protocol = JoinGroupRequestProtocol::default();
        protocol.name = str_bytes(ASSIGNOR);
        protocol.metadata = subscription(topic);
        let mut request = JoinGroupRequest::default();
        request.group_id = group_id(&group);
        request.session_timeout_ms = SESSION_TIMEOUT_MS;
        if round >= 1 {
            request.rebalance_timeout_ms = REBALANCE_TIMEOUT_MS;
        }
        request.member_id = str_bytes(member_id);
        request.protocol_type = str_bytes(PROTOCOL_TYPE);
        request.protocols = vec![protocol];
        if round >= 8 {
            request.reason = Some(str_bytes("every-version round"));
        }
        request
    };
    let mut response = conn.call(&join(""), round);
    if round >= 4 {
        assert_eq!(
            response.error_code, MEMBER_ID_REQUIRED,
            "JoinGroup v{round} without a member id"
        );
        assert!(
            !response.member_id.is_empty(),
            "JoinGroup v{round}: MEMBER_ID_REQUIRED without a member id"
        );
        let member_id = response.member_id.to_string();
        response = conn.call(&join(&member_id), round);
        assert_eq!(
            response.member_id.as_str(),
            member_id,
            "JoinGroup v{round} rejoin"
        );
    }
    assert_eq!(response.error_code, NONE, "JoinGroup v{round}");
    let member_id = response.member_id.to_string();
    assert!(!member_id.is_empty(), "JoinGroup v{round}: no member id");
    assert_eq!(response.generation_id, 1, "JoinGroup v{round} generation");
    assert_eq!(
        response.leader.as_str(),
        member_id,
        "JoinGroup v{round} leader"
    );
    assert_eq!(
        response.protocol_name.as_deref(),
        Some(ASSIGNOR),
        "JoinGroup v{round} protocol"
    );
    if round >= 7 {
        assert_eq!(
            response.protocol_type.as_deref(),
            Some(PROTOCOL_TYPE),
            "JoinGroup v{round} protocol type"
        );
    }
    let members: Vec<(String, Option<StrBytes>, Bytes)> = response
        .members
        .iter()
        .map(|member| {
            let id = member.member_id.to_string();
            (
                id,
                member.group_instance_id.clone(),
                member.metadata.clone(),
            )
        })
        .collect();
    assert_eq!(
        members,
        vec![(member_id.clone(), None, subscription(topic))],
        "JoinGroup v{round}: the leader gets the members"
    );

    let version = round_version(ApiKey::SyncGroup, round);
    let mut share = SyncGroupRequestAssignment::default();
    share.member_id = str_bytes(&member_id);
    share.assignment = assignment(topic);
    let mut request = SyncGroupRequest::default();
    request.group_id = group_id(&group);
    request.generation_id = response.generation_id;
    request.member_id = str_bytes(&member_id);
    request.assignments = vec![share];
    if version >= 5 {
        request.protocol_type = Some(str_bytes(PROTOCOL_TYPE));
        request.protocol_name = Some(str_bytes(ASSIGNOR));
    }
    let synced = conn.call(&request, version);
    assert_eq!(synced.error_code, NONE, "SyncGroup v{version}");
    assert_eq!(synced.assignment, assignment(topic), "SyncGroup v{version}");
    if version >= 5 {
        assert_eq!(synced.protocol_type.as_deref(), Some(PROTOCOL_TYPE));
        assert_eq!(synced.protocol_name.as_deref(), Some(ASSIGNOR));
    }
    Member {
        group,
        member_id,
        generation_id: response.generation_id,
    }
}

fn heartbeat(conn: &mut Conn, round: i16, member: &Member) {
    let version = round_version(ApiKey::Heartbeat, round);
    for (generation_id, expected) in [
        (member.generation_id, NONE),
        (member.generation_id + 1, ILLEGAL_GENERATION),
    ] {
        let mut request = HeartbeatRequest::default();
        request.group_id = group_id(&member.group);
        request.generation_id = generation_id;
        request.member_id = str_bytes(&member.member_id);
        let response = conn.call(&request, version);
        assert_eq!(
            response.error_code, expected,
            "Heartbeat v{version} generation {generation_id}"
        );
    }
}

/// Commits `offsets` of `topic` as `(generation, member id)`; every
/// partition must be accepted.
fn commit(
    conn: &mut Conn,
    version: i16,
    group: &str,
    (generation_id, member_id): (i32, &str),
    topic: &str,
    offsets: &[Committed],
) {
    let partitions = offsets
        .iter()
        .map(|committed| {
            let mut partition = OffsetCommitRequestPartition::default();
            partition.partition_index = committed.partition;
            partition.committed_offset = committed.offset;
            if version >= 6 {
                partition.committed_leader_epoch = committed.leader_epoch;
            }
            partition.committed_metadata = committed.metadata.as_deref().map(str_bytes);
            partition
        })
        .collect();
    let mut commit_topic = OffsetCommitRequestTopic::default();
    commit_topic.name = name(topic);
    commit_topic.partitions = partitions;
    let mut request = OffsetCommitRequest::default();
    request.group_id = group_id(group);
    request.generation_id_or_member_epoch = generation_id;
    request.member_id = str_bytes(member_id);
    request.topics = vec![commit_topic];
    let response = conn.call(&request, version);
    let answers = partition_errors!(response.topics);
    let expected: Vec<(String, i32, i16)> = offsets
        .iter()
        .map(|committed| (topic.to_owned(), committed.partition, NONE))
        .collect();
    assert_eq!(answers, expected, "OffsetCommit v{version} {group}");
}

/// What OffsetFetch reports for a partition without a committed offset.
fn no_offset(partition: i32) -> Committed {
    Committed {
        partition,
        offset: -1,
        leader_epoch: NO_LEADER_EPOCH,
        metadata: Some(String::new()),
    }
}

/// What OffsetFetch at `fetch_version` should return for `offsets`
/// committed at `commit_version`: metadata null becomes empty (Kafka's
/// `NO_METADATA`), and the leader epoch shows only if both versions carry
/// it.
fn expected_fetch(
    offsets: &[Committed],
    commit_version: i16,
    fetch_version: i16,
) -> Vec<Committed> {
    offsets
        .iter()
        .map(|committed| Committed {
            leader_epoch: if commit_version >= 6 && fetch_version >= 5 {
                committed.leader_epoch
            } else {
                NO_LEADER_EPOCH
            },
            metadata: Some(committed.metadata.clone().unwrap_or_default()),
            ..committed.clone()
        })
        .collect()
}

/// The committed offsets of `partitions` of `topic` (None: of every
/// partition with one, from v2), through the one-group form before v8 and
/// the groups form from v8.
fn fetch_offsets(
    conn: &mut Conn,
    version: i16,
    group: &str,
    topic: &str,
    partitions: Option<&[i32]>,
) -> Vec<Committed> {
    let mut request = OffsetFetchRequest::default();
    if version >= 8 {
        let want = partitions.map(|partitions| {
            let mut want = OffsetFetchRequestTopics::default();
            want.name = name(topic);
            want.partition_indexes = partitions.to_vec();
            vec![want]
        });
        let mut one_group = OffsetFetchRequestGroup::default();
        one_group.group_id = group_id(group);
        one_group.topics = want;
        request.groups = vec![one_group];
    } else {
        let want = partitions.map(|partitions| {
            let mut want = OffsetFetchRequestTopic::default();
            want.name = name(topic);
            want.partition_indexes = partitions.to_vec();
            vec![want]
        });
        request.group_id = group_id(group);
        request.topics = want;
    }
    let response = conn.call(&request, version);
    let context = format!("OffsetFetch v{version} {group}");
    // The topics of the one group asked for, in the form of the version.
    macro_rules! committed {
        ($topics:expr) => {
            $topics
                .iter()
                .flat_map(|answer| {
                    assert_eq!(answer.name.0.as_str(), topic, "{context}");
                    answer.partitions.iter().map(|partition| {
                        assert_eq!(partition.error_code, NONE, "{context}");
                        Committed {
                            partition: partition.partition_index,
                            offset: partition.committed_offset,
                            // Decoded as NO_LEADER_EPOCH before v5.
                            leader_epoch: partition.committed_leader_epoch,
                            metadata: partition.metadata.as_deref().map(str::to_owned),
                        }
                    })
                })
                .collect()
        };
    }
    if version >= 8 {
        assert_eq!(response.groups.len(), 1, "{context}");
        let answer = &response.groups[0];
        assert_eq!(answer.group_id.0.as_str(), group, "{context}");
        assert_eq!(answer.error_code, NONE, "{context}");
        committed!(answer.topics)
    } else {
        assert_eq!(response.error_code, NONE, "{context}");
        committed!(response.topics)
    }
}

/// DescribeGroups of a Stable one-member group: its protocol, and the member
/// with the client id and host of this connection, its subscription and its
/// assignment.
fn describe_stable(conn: &mut Conn, round: i16, member: &Member, topic: &str) {
    let version = round_version(ApiKey::DescribeGroups, round);
    let mut request = DescribeGroupsRequest::default();
    request.groups = vec![group_id(&member.group)];
    let response = conn.call(&request, version);
    assert_eq!(response.groups.len(), 1, "DescribeGroups v{version}");
    let described = &response.groups[0];
    assert_eq!(described.error_code, NONE, "DescribeGroups v{version}");
    assert_eq!(described.group_id.0.as_str(), member.group);
    assert_eq!(
        described.group_state.as_str(),
        "Stable",
        "DescribeGroups v{version}"
    );
    assert_eq!(described.protocol_type.as_str(), PROTOCOL_TYPE);
    assert_eq!(described.protocol_data.as_str(), ASSIGNOR);
    assert_eq!(described.members.len(), 1, "DescribeGroups v{version}");
    let described_member = &described.members[0];
    assert_eq!(described_member.member_id.as_str(), member.member_id);
    assert_eq!(described_member.group_instance_id, None);
    assert_eq!(
        described_member.client_id.as_str(),
        CLIENT_ID,
        "DescribeGroups v{version}"
    );
    assert!(
        described_member.client_host.contains("127.0.0.1"),
        "DescribeGroups v{version} client host {:?}",
        described_member.client_host
    );
    assert_eq!(described_member.member_metadata, subscription(topic));
    assert_eq!(described_member.member_assignment, assignment(topic));
}

/// (group, protocol type, state) of every group ListGroups gives for
/// `states` (a filter only from v4; the state is "" before v4).
fn listed_groups(conn: &mut Conn, version: i16, states: &[&str]) -> Vec<(String, String, String)> {
    let mut request = ListGroupsRequest::default();
    request.states_filter = states.iter().map(|state| str_bytes(state)).collect();
    let response = conn.call(&request, version);
    assert_eq!(response.error_code, NONE, "ListGroups v{version}");
    response
        .groups
        .iter()
        .map(|group| {
            (
                group.group_id.0.to_string(),
                group.protocol_type.to_string(),
                group.group_state.to_string(),
            )
        })
        .collect()
}

fn list_groups(conn: &mut Conn, round: i16, stable: &str, empty: &str) {
    let version = round_version(ApiKey::ListGroups, round);
    let state = |text: &'static str| if version >= 4 { text } else { "" };
    let ours = |listed: Vec<(String, String, String)>| -> Vec<(String, String, String)> {
        let mut ours: Vec<_> = listed
            .into_iter()
            .filter(|(group, _, _)| group == stable || group == empty)
            .collect();
        ours.sort();
        ours
    };
    let mut expected = vec![
        (
            stable.to_owned(),
            PROTOCOL_TYPE.to_owned(),
            state("Stable").to_owned(),
        ),
        (empty.to_owned(), String::new(), state("Empty").to_owned()),
    ];
    expected.sort();
    assert_eq!(
        ours(listed_groups(conn, version, &[])),
        expected,
        "ListGroups v{version}"
    );
    if version >= 4 {
        assert_eq!(
            ours(listed_groups(conn, version, &["Stable"])),
            vec![(
                stable.to_owned(),
                PROTOCOL_TYPE.to_owned(),
                "Stable".to_owned()
            )],
            "ListGroups v{version} states Stable"
        );
        assert_eq!(
            ours(listed_groups(conn, version, &["Dead"])),
            Vec::new(),
            "ListGroups v{version} states Dead"
        );
    }
}

/// The error of each of `groups` after DeleteGroups.
fn delete_groups(conn: &mut Conn, version: i16, groups: &[&str]) -> Vec<i16> {
    let mut request = DeleteGroupsRequest::default();
    request.groups_names = groups.iter().map(|group| group_id(group)).collect();
    let response = conn.call(&request, version);
    let named: Vec<&str> = response
        .results
        .iter()
        .map(|result| result.group_id.0.as_str())
        .collect();
    assert_eq!(named, groups, "DeleteGroups v{version}");
    response
        .results
        .iter()
        .map(|result| result.error_code)
        .collect()
}

/// LeaveGroup of `member_id`: the request's error and, from v3, the one
/// member's (checked to name it); NONE for the member's before v3.
fn leave_group(conn: &mut Conn, version: i16, group: &str, member_id: &str) -> (i16, i16) {
    let mut request = LeaveGroupRequest::default();
    request.group_id = group_id(group);
    if version >= 3 {
        let mut identity = MemberIdentity::default();
        identity.member_id = str_bytes(member_id);
        if version >= 5 {
            identity.reason = Some(str_bytes("every-version round done"));
        }
        request.members = vec![identity];
    } else {
        request.member_id = str_bytes(member_id);
    }
    let response = conn.call(&request, version);
    if version < 3 {
        return (response.error_code, NONE);
    }
    assert_eq!(response.members.len(), 1, "LeaveGroup v{version}");
    let left = &response.members[0];
    assert_eq!(left.member_id.as_str(), member_id, "LeaveGroup v{version}");
    assert_eq!(left.group_instance_id, None, "LeaveGroup v{version}");
    (response.error_code, left.error_code)
}

/// LeaveGroup of the round's only member: by member id (v0–v2) or in the
/// members list (v3+). The group is Empty after it.
fn leave(conn: &mut Conn, round: i16, member: &Member) {
    let version = round_version(ApiKey::LeaveGroup, round);
    assert_eq!(
        leave_group(conn, version, &member.group, &member.member_id),
        (NONE, NONE),
        "LeaveGroup v{version}"
    );
    // A member the group does not know: the whole request's error before
    // v3, that member's from v3.
    assert_eq!(
        leave_group(conn, version, &member.group, "no-such-member"),
        if version >= 3 {
            (NONE, UNKNOWN_MEMBER_ID)
        } else {
            (UNKNOWN_MEMBER_ID, NONE)
        },
        "LeaveGroup v{version} of an unknown member"
    );

    let describe_version = round_version(ApiKey::DescribeGroups, round);
    let mut request = DescribeGroupsRequest::default();
    request.groups = vec![group_id(&member.group)];
    let response = conn.call(&request, describe_version);
    let described = &response.groups[0];
    assert_eq!(
        (described.group_state.as_str(), described.members.len()),
        ("Empty", 0),
        "DescribeGroups v{describe_version} after LeaveGroup v{version}"
    );
}

/// A Metadata request naming `__consumer_offsets` (v1–v3 always allow
/// auto-creation) creates it the way the group coordinator would, as Kafka's
/// `AutoTopicCreationManager` does: `offsets.topic.num.partitions`
/// partitions, compacted, rather than with a user topic's `num.partitions`
/// and `cleanup.policy=delete`, which would expire committed offsets.
#[test]
fn metadata_auto_creates_the_offsets_topic_as_the_coordinator_needs_it() {
    let broker = Broker::start();
    let mut conn = broker.connect();
    let mut want = MetadataRequestTopic::default();
    want.name = Some(name(OFFSETS_TOPIC));
    let mut request = MetadataRequest::default();
    request.topics = Some(vec![want]);
    conn.call(&request, 1);
    assert_eq!(
        offsets_topic_partitions(&mut conn, 4),
        Ok(OFFSETS_TOPIC_PARTITIONS)
    );

    let mut resource = DescribeConfigsResource::default();
    resource.resource_type = RESOURCE_TOPIC;
    resource.resource_name = str_bytes(OFFSETS_TOPIC);
    resource.configuration_keys = Some(vec![str_bytes("cleanup.policy")]);
    let mut request = DescribeConfigsRequest::default();
    request.resources = vec![resource];
    let version = *versions_of(ApiKey::DescribeConfigs).end();
    let response = conn.call(&request, version);
    assert_eq!(response.results.len(), 1);
    assert_eq!(response.results[0].error_code, NONE);
    let policy: Vec<Option<&str>> = response.results[0]
        .configs
        .iter()
        .map(|config| config.value.as_deref())
        .collect();
    assert_eq!(
        policy,
        vec![Some("compact")],
        "{OFFSETS_TOPIC} cleanup.policy"
    );
}

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

/// The admin APIs of issue 4 at every version, each checked by its effect
/// as other APIs show it: DescribeConfigs, Metadata, Produce, ListOffsets,
/// Fetch.
#[test]
fn every_advertised_version_of_every_admin_api() {
    let broker = Broker::start();
    let mut conn = broker.connect();
    incremental_alter_configs(&mut conn);
    alter_configs(&mut conn);
    create_partitions(&mut conn);
    delete_records(&mut conn);
    describe_log_dirs(&mut conn);
    describe_quorum(&mut conn);
}

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

fn incremental_alter_configs(conn: &mut Conn) {
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

fn alter_configs(conn: &mut Conn) {
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

fn create_partitions(conn: &mut Conn) {
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

fn delete_records(conn: &mut Conn) {
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

fn describe_log_dirs(conn: &mut Conn) {
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
fn describe_quorum(conn: &mut Conn) {
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

/// InitProducerId at every version: a new producer id with epoch 0 without
/// a transactional id (whatever id and epoch v3+ passes); with a new
/// transactional id, a new producer id with epoch 0 from the transaction
/// coordinator (once it has loaded: Kafka's retriable answers meanwhile).
#[test]
fn every_advertised_version_of_init_producer_id() {
    use kafka_protocol::messages::{InitProducerIdRequest, ProducerId, TransactionalId};
    const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    const NOT_COORDINATOR: i16 = 16;
    const INVALID_REQUEST: i16 = 42;
    // The coordinator gets about ten seconds to create and load
    // `__transaction_state`.
    const COORDINATOR_ATTEMPTS_MAX: u32 = 100;
    let broker = Broker::start();
    let mut conn = broker.connect();
    let mut ids = Vec::new();
    for version in versions_of(ApiKey::InitProducerId) {
        let mut request = InitProducerIdRequest::default();
        request.transactional_id = None;
        request.transaction_timeout_ms = 60_000;
        if version >= 3 {
            request.producer_id = ProducerId(ids.last().copied().unwrap_or(-1));
            request.producer_epoch = 0;
        }
        let response = conn.call(&request, version);
        assert_eq!(response.error_code, NONE, "InitProducerId v{version}");
        assert_eq!(response.producer_epoch, 0, "InitProducerId v{version}");
        assert!(response.producer_id.0 >= 0, "InitProducerId v{version}");
        assert!(
            !ids.contains(&response.producer_id.0),
            "InitProducerId v{version}: id reused"
        );
        ids.push(response.producer_id.0);

        request.transactional_id = Some(TransactionalId(str_bytes(&format!("tx-v{version}"))));
        request.producer_id = ProducerId(-1);
        request.producer_epoch = -1;
        let context = format!("InitProducerId v{version} transactional");
        let mut response = conn.call(&request, version);
        for _ in 0..COORDINATOR_ATTEMPTS_MAX {
            if !matches!(
                response.error_code,
                COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR
            ) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            response = conn.call(&request, version);
        }
        assert_eq!(response.error_code, NONE, "{context}");
        assert_eq!(response.producer_epoch, 0, "{context}");
        assert!(
            response.producer_id.0 >= 0 && !ids.contains(&response.producer_id.0),
            "{context}: a new id"
        );
        ids.push(response.producer_id.0);

        // Kafka refuses an empty transactional id.
        request.transactional_id = Some(TransactionalId(str_bytes("")));
        let response = conn.call(&request, version);
        assert_eq!(
            response.error_code, INVALID_REQUEST,
            "InitProducerId v{version} empty id"
        );
    }
}
