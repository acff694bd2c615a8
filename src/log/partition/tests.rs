//! What the partition log's tests share (and `recovery.rs`'s and
//! `cleaner_tests.rs`' tests use): batches, configs, a shard to run on.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::Compression;

use super::super::{AppendResult, AppendWait, Chunk, LogConfig, LogError};
use super::PartitionLog;
use crate::protocol::batch::tests::sample_batch;
use crate::protocol::batch::{BatchHeader, ATTR_TRANSACTIONAL};
use crate::shard;

/// Room in the tail cache for all a test appends.
pub const TAIL_CACHE_TEST_BYTES: usize = 1 << 20;

/// `sample_batch(n, compression)` moved in time: its records carry
/// timestamps `base_timestamp .. base_timestamp + n`.
pub fn batch_at(n: usize, compression: Compression, base_timestamp: i64) -> Vec<u8> {
    let mut batch = sample_batch(n, compression);
    batch[27..35].copy_from_slice(&base_timestamp.to_be_bytes());
    let max_timestamp = base_timestamp + n as i64 - 1;
    batch[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

/// Makes `batch` one of producer `producer_id` (epoch 0) from sequence
/// `sequence`, in a transaction or only idempotent, with its CRC again.
pub fn as_producer(batch: &mut [u8], producer_id: i64, sequence: i32, transactional: bool) {
    if transactional {
        let attributes = i16::from_be_bytes([batch[21], batch[22]]) | ATTR_TRANSACTIONAL;
        batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    }
    batch[43..51].copy_from_slice(&producer_id.to_be_bytes());
    batch[51..53].copy_from_slice(&0i16.to_be_bytes());
    batch[53..57].copy_from_slice(&sequence.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// A batch with its assigned fields (base offset, leader epoch) blanked,
/// to compare what went in with what comes out.
pub fn unassigned(batch: &[u8]) -> Vec<u8> {
    let mut batch = batch.to_vec();
    batch[..8].fill(0);
    batch[12..16].fill(0);
    batch
}

/// Small segments and a dense index so tests cross every boundary.
pub fn small_config(tail_cache_bytes: usize) -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 300,
        tail_cache_bytes,
        ..LogConfig::default()
    }
}

/// Runs `test` on a fresh shard with a fresh partition directory.
pub fn with_dir<M, F>(test: M)
where
    M: FnOnce(PathBuf) -> F + Send + 'static,
    F: Future<Output = ()> + 'static,
{
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("topic-0");
    shard::block_on(move || test(dir));
}

pub async fn read_all(log: &PartitionLog) -> Vec<Bytes> {
    log.read(
        log.log_start_offset(),
        log.high_watermark(),
        usize::MAX,
        true,
    )
    .await
    .unwrap()
}

pub fn segment_files(dir: &Path, extension: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == extension)
        })
        .count()
}

/// The bytes a read's chunks stand for, file ranges read from their files.
pub fn chunk_bytes(chunks: &[Chunk]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for chunk in chunks {
        match chunk {
            Chunk::Memory(memory) => bytes.extend_from_slice(memory),
            Chunk::File(range) => bytes.extend_from_slice(&range.contents()),
        }
    }
    bytes
}

pub fn base_of(batch: &Bytes) -> i64 {
    BatchHeader::view(batch).unwrap().base_offset.get()
}

/// Offsets 0.. in 5-record batches, exactly `count` of them.
pub fn assert_contiguous(got: &[Bytes], count: usize) {
    let bases: Vec<i64> = got.iter().map(base_of).collect();
    let expected: Vec<i64> = (0..count as i64).map(|b| b * 5).collect();
    assert_eq!(bases, expected);
}

/// Appends `batch` and waits for `wait`.
pub async fn append_one(
    log: &Rc<PartitionLog>,
    batch: &[u8],
    wait: AppendWait,
) -> Result<AppendResult, LogError> {
    log.append(BytesMut::from(batch), wait, None).await
}

/// Appends `count` batches of 5 records stamped `timestamp`, acknowledged.
pub async fn append_at(log: &Rc<PartitionLog>, count: usize, timestamp: i64) {
    for _ in 0..count {
        let batch = batch_at(5, Compression::None, timestamp);
        log.append(BytesMut::from(&batch[..]), AppendWait::Durable, None)
            .await
            .unwrap();
    }
}

/// The named files of `dir` ending in one of `extensions`, with their bytes.
pub fn files(dir: &Path, extensions: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|x| extensions.iter().any(|e| x == *e))
        })
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}
