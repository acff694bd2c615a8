//! `protocol::batch::validate`, the check every produced batch passes, and
//! `verify_stored`, the check every batch read back from a segment file
//! passes before it is served: both cost the CRC-32C over the batch bytes,
//! so throughput is in those bytes (compressed ones for lz4, which neither
//! decompresses).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE,
};
use shoal::protocol::batch;

/// Uncompressed batch sizes measured.
const BATCH_SIZES_BYTES: [usize; 3] = [1 << 10, 16 << 10, 1 << 20];
/// Bytes of each record value; about 20 more go to the record's framing.
const VALUE_SIZE_BYTES: usize = 236;
const RECORD_OVERHEAD_BYTES: usize = 20;
/// Kafka's default `max.message.bytes` plus room: the limit is not what is measured.
const MAX_BATCH_BYTES: usize = 2 << 20;

/// Text-like values (a small alphabet from a fixed LCG), so lz4 compresses
/// them about as much as it does real payloads, not to nothing.
fn value(seed: u64) -> Bytes {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789 ,.:{}\"";
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..VALUE_SIZE_BYTES)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ALPHABET[(state >> 33) as usize % ALPHABET.len()]
        })
        .collect::<Vec<u8>>()
        .into()
}

/// One RecordBatch v2 of about `size_bytes` uncompressed.
fn batch_of(size_bytes: usize, compression: Compression) -> Bytes {
    let count = (size_bytes / (VALUE_SIZE_BYTES + RECORD_OVERHEAD_BYTES)).max(1);
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
            key: None,
            value: Some(value(i as u64)),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).expect("encode batch");
    buf.freeze()
}

fn label(size_bytes: usize) -> String {
    if size_bytes >= 1 << 20 {
        format!("{}MiB", size_bytes >> 20)
    } else {
        format!("{}KiB", size_bytes >> 10)
    }
}

fn validate(c: &mut Criterion) {
    for (codec, compression) in [("none", Compression::None), ("lz4", Compression::Lz4)] {
        let mut group = c.benchmark_group(format!("batch_validate/{codec}"));
        for size_bytes in BATCH_SIZES_BYTES {
            let batch = batch_of(size_bytes, compression);
            assert_eq!(batch::validate(&batch, MAX_BATCH_BYTES), Ok(batch.len()));
            group.throughput(Throughput::Bytes(batch.len() as u64));
            group.bench_with_input(
                BenchmarkId::from_parameter(label(size_bytes)),
                &batch,
                |b, batch| b.iter(|| batch::validate(black_box(batch), MAX_BATCH_BYTES)),
            );
        }
        group.finish();
    }
}

fn verify_stored(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_verify_stored");
    for size_bytes in BATCH_SIZES_BYTES {
        let batch = batch_of(size_bytes, Compression::None);
        assert_eq!(batch::verify_stored(&batch), Ok(()));
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(label(size_bytes)),
            &batch,
            |b, batch| b.iter(|| batch::verify_stored(black_box(batch))),
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
    targets = validate, verify_stored
}
criterion_main!(benches);
