//! Request decoding on a connection's shard: `protocol::frame::
//! parse_request_header` then `decode_request`, for a Produce carrying a
//! 16 KiB batch (records stay a slice of the frame) and a Fetch naming 8
//! partitions. Throughput is in frame bytes.

use std::time::Duration;

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};
use shoal::client::frame::{encode_request, FRAME_SIZE_PREFIX_BYTES};
use shoal::protocol::frame::{decode_request, parse_request_header};

/// Newest Produce version that names topics (v13 uses ids).
const PRODUCE_VERSION: i16 = 12;
/// Newest Fetch version.
const FETCH_VERSION: i16 = 18;
const BATCH_SIZE_BYTES: usize = 16 << 10;
const VALUE_SIZE_BYTES: usize = 1000;
const FETCH_PARTITIONS: i32 = 8;

fn batch() -> Bytes {
    let count = BATCH_SIZE_BYTES / (VALUE_SIZE_BYTES + 24);
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: NO_SEQUENCE.wrapping_add(i as i32),
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(vec![b'v'; VALUE_SIZE_BYTES])),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).expect("encode batch");
    buf.freeze()
}

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str("bench-topic"))
}

fn produce_request() -> ProduceRequest {
    let mut partition = PartitionProduceData::default();
    partition.index = 0;
    partition.records = Some(batch());
    let mut topic = TopicProduceData::default();
    topic.name = topic_name();
    topic.partition_data = vec![partition];
    let mut request = ProduceRequest::default();
    request.acks = -1;
    request.timeout_ms = 30_000;
    request.topic_data = vec![topic];
    request
}

fn fetch_request() -> FetchRequest {
    let mut topic = FetchTopic::default();
    topic.topic_id = uuid::Uuid::from_u128(0x5eed);
    topic.partitions = (0..FETCH_PARTITIONS)
        .map(|index| {
            let mut partition = FetchPartition::default();
            partition.partition = index;
            partition.fetch_offset = 1_000 * i64::from(index);
            partition.partition_max_bytes = 1 << 20;
            partition
        })
        .collect();
    let mut request = FetchRequest::default();
    request.replica_id = BrokerId(-1);
    request.max_wait_ms = 500;
    request.min_bytes = 1;
    request.max_bytes = 50 << 20;
    request.session_id = 0;
    request.session_epoch = -1;
    request.topics = vec![topic];
    request
}

/// The frame as the connection hands it to the dispatcher: no size prefix.
fn frame_of<Req: Request>(request: &Req, version: i16) -> Bytes {
    let framed = encode_request(request, version, 1, "bench").expect("encode request");
    framed.freeze().slice(FRAME_SIZE_PREFIX_BYTES..)
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("request_decode");
    let cases = [
        (
            "produce_16KiB",
            frame_of(&produce_request(), PRODUCE_VERSION),
        ),
        (
            "fetch_8_partitions",
            frame_of(&fetch_request(), FETCH_VERSION),
        ),
    ];
    for (name, frame) in cases {
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let (header, mut body) = parse_request_header(black_box(&frame)).expect("header");
                let api_key = ApiKey::try_from(header.request_api_key).expect("api key");
                decode_request(api_key, header.request_api_version, &mut body).expect("request")
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = decode
}
criterion_main!(benches);
