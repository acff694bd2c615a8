//! Every advertised version of every API, against the real broker binary.
//!
//! One broker is started on a free port with a fresh data directory; each
//! API is then called over raw TCP at every version `ApiVersions`
//! advertises (`shoal::protocol::versions::SUPPORTED_APIS`), and each
//! response is decoded at that version and checked for content, not just
//! for shape. The broker is always killed and its directory removed, even
//! when an assertion fails.

mod acls;
mod admin;
mod broker;
#[macro_use]
mod group_offsets;
mod groups;
mod quotas;
mod records;
mod topics;
mod wire;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, DescribeConfigsRequest, MetadataRequest,
};

use crate::admin::{
    alter_configs, create_partitions, delete_records, describe_log_dirs, describe_quorum,
    incremental_alter_configs,
};
use crate::broker::{free_port, serve_expecting_exit, Broker};
use crate::groups::{
    find_coordinator, group_round, offsets_topic_partitions, GROUP_APIS, OFFSETS_TOPIC,
    OFFSETS_TOPIC_PARTITIONS,
};
use crate::records::{
    fetch, fetch_request, list_offsets, only_partition, produce, produce_request, record_batch,
    RECORDS_PER_BATCH, TIMESTAMP_BASE_MS,
};
use crate::topics::{
    api_versions, create_one, create_topics, delete_topics, describe_cluster, describe_configs,
    metadata, metadata_topic_id,
};
use crate::wire::{name, str_bytes, versions_of, NONE, RESOURCE_TOPIC, UNKNOWN_TOPIC_OR_PARTITION};

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
    acls::acl_apis(&mut conn);
    quotas::quota_apis(&mut conn);
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
