//! `protocol::fetch_writer::encode_fetch_response`: the hand-written Fetch
//! response. Record buffers are shared into the output, never copied, so
//! the time per byte should fall as partitions get fuller; what is measured
//! is the assembly of the fixed fields and the chunk list.

use std::time::Duration;

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kafka_protocol::protocol::StrBytes;
use shoal::protocol::chunk::{total_len, Chunk};
use shoal::protocol::fetch_writer::{
    encode_fetch_response, FetchPartitionParts, FetchResponseParts, FetchTopicParts,
};
use uuid::Uuid;

/// Partitions per response measured.
const PARTITION_COUNTS: [usize; 3] = [1, 8, 64];
/// Record bytes per partition.
const RECORDS_PER_PARTITION_BYTES: usize = 16 << 10;
/// The newest Fetch version (topics by id, flexible encoding).
const FETCH_VERSION: i16 = 18;

fn parts(partitions: usize) -> FetchResponseParts {
    // One buffer shared by every partition: the writer must not care.
    let records = Bytes::from(vec![0x5a; RECORDS_PER_PARTITION_BYTES]);
    FetchResponseParts {
        session_id: 7,
        topics: vec![FetchTopicParts {
            name: StrBytes::from_static_str("bench-topic"),
            topic_id: Uuid::from_u128(0x5eed),
            partitions: (0..partitions)
                .map(|index| FetchPartitionParts {
                    partition_index: index as i32,
                    error_code: 0,
                    high_watermark: 1_000_000,
                    last_stable_offset: 1_000_000,
                    log_start_offset: 0,
                    aborted_transactions: None,
                    preferred_read_replica: -1,
                    diverging_epoch: None,
                    current_leader: None,
                    records: vec![Chunk::Memory(records.clone())],
                })
                .collect(),
        }],
        ..FetchResponseParts::default()
    }
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("fetch_writer");
    for partitions in PARTITION_COUNTS {
        let parts = parts(partitions);
        let chunks = encode_fetch_response(1, FETCH_VERSION, &parts);
        let frame_bytes = total_len(&chunks);
        assert!(frame_bytes > partitions * RECORDS_PER_PARTITION_BYTES);
        group.throughput(Throughput::Bytes(frame_bytes as u64));
        group.bench_with_input(
            BenchmarkId::new("partitions_16KiB", partitions),
            &parts,
            |b, parts| b.iter(|| encode_fetch_response(1, FETCH_VERSION, black_box(parts))),
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = encode
}
criterion_main!(benches);
