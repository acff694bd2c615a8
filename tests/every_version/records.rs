//! Produce, Fetch (with fetch sessions) and ListOffsets at every advertised
//! version, against what the produce phase wrote.

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, ProduceRequest,
};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};
use uuid::Uuid;

use crate::broker::Conn;
use crate::wire::{
    name, versions_of, EARLIEST_TIMESTAMP, LATEST_TIERED_TIMESTAMP, LATEST_TIMESTAMP, NONE,
    OFFSET_OUT_OF_RANGE, UNKNOWN_TOPIC_ID, UNKNOWN_TOPIC_OR_PARTITION,
};

/// Records per produced batch.
pub const RECORDS_PER_BATCH: usize = 3;
/// First batch's record timestamp; batch `k` uses `BASE + k * STEP`.
pub const TIMESTAMP_BASE_MS: i64 = 1_700_000_000_000;
const TIMESTAMP_STEP_MS: i64 = 1_000;

/// One record batch of `RECORDS_PER_BATCH` records, all stamped `timestamp`,
/// with values `{label}-{i}`.
pub fn record_batch(label: &str, timestamp: i64) -> Bytes {
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
pub struct Produced {
    records: Vec<(i64, Bytes)>,
    /// First offset and timestamp of each batch.
    batches: Vec<(i64, i64)>,
}

pub fn produce_request(
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

pub fn check_produce(
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

pub fn produce(conn: &mut Conn, topic: &str, topic_id: Uuid) -> Produced {
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

pub fn fetch_request(
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
pub fn only_partition<'a>(
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

pub fn fetch(conn: &mut Conn, topic: &str, topic_id: Uuid, produced: &Produced) {
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

pub fn list_offsets_request(version: i16, topic: &str, timestamp: i64) -> ListOffsetsRequest {
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

pub fn list_offsets(conn: &mut Conn, topic: &str, produced: &Produced) {
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
