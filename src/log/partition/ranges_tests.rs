//! Reads for a fetch that reach the segment files: checked ranges the page
//! cache holds go out as file ranges, and no record byte is copied in user
//! space (issue 16's "0 bytes copied per byte fetched" for page-cache
//! reads); what is not checked yet, not cached or above the high watermark
//! is read and checked as before.

use std::os::fd::AsRawFd;
use std::rc::Rc;

use kafka_protocol::records::Compression;

use super::super::{copy_counts, AppendWait, Chunk, CopyCounts, LogConfig};
use super::tests::*;
use super::PartitionLog;
use crate::protocol::batch::tests::sample_batch;
use crate::protocol::batch::BATCH_HEADER_SIZE;
use crate::protocol::chunk::total_len;

/// Batches each test appends: several segments' worth.
const BATCHES: usize = 40;
/// Small segments (a few large batches each) and no tail cache: every
/// read reaches the files.
fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 32 << 10,
        ..small_config(0)
    }
}

/// A batch above the index interval, so that each one is indexed.
fn large() -> Vec<u8> {
    sample_batch(400, Compression::None)
}

async fn filled_log(dir: std::path::PathBuf) -> (Rc<PartitionLog>, usize) {
    let log = PartitionLog::open(dir, config()).await.unwrap();
    let batch = large();
    for _ in 0..BATCHES {
        append_one(&log, &batch, AppendWait::Durable).await.unwrap();
    }
    (log, batch.len())
}

/// The counts of what happened between `before` and now.
fn since(before: CopyCounts) -> CopyCounts {
    let now = copy_counts();
    CopyCounts {
        copied_bytes: now.copied_bytes - before.copied_bytes,
        header_bytes: now.header_bytes - before.header_bytes,
        file_bytes: now.file_bytes - before.file_bytes,
        wait_bytes: now.wait_bytes - before.wait_bytes,
    }
}

fn all_files(chunks: &[Chunk]) -> bool {
    chunks.iter().all(|chunk| matches!(chunk, Chunk::File(_)))
}

/// Zero-copy fetch, the log's half for older data: bytes this process
/// wrote (checked on produce) and the page cache holds go out as file
/// ranges; the read copies no record byte, only a few batch headers to
/// find where the ranges end, and serves what the copy path would.
#[test]
fn page_cache_reads_copy_no_record_byte() {
    with_dir(|dir| async move {
        let (log, batch_bytes) = filled_log(dir).await;
        let hw = log.high_watermark();
        let before = copy_counts();
        let read = log.read_chunks(0, hw, usize::MAX, true).await.unwrap();
        let counts = since(before);
        let fetched = total_len(&read.chunks);
        assert_eq!(fetched, BATCHES * batch_bytes);
        assert!(all_files(&read.chunks), "a read copied part of the log");
        assert_eq!(counts.copied_bytes, 0, "bytes copied per {fetched} fetched");
        assert_eq!(counts.file_bytes, fetched as u64);
        // One range per segment, each ending at its segment's end: no
        // header read but where a segment's first batch is found.
        let segments = read.chunks.len() as u64;
        assert!(segments > 3, "{segments} segments");
        assert!(
            counts.header_bytes <= segments * 2 * BATCH_HEADER_SIZE as u64,
            "{} header bytes for {segments} ranges",
            counts.header_bytes
        );
        assert_eq!(read.last_offset, Some(hw - 1));
        let copied = log.read(0, hw, usize::MAX, true).await.unwrap().concat();
        assert_eq!(chunk_bytes(&read.chunks), copied);
        log.close().await.unwrap();
    });
}

/// A fetch's byte budget cuts file ranges at batch boundaries, as it cuts
/// the copy path's reads (whole batches only, never a partial one); the
/// next fetch resumes at the next batch, and together they are the log.
#[test]
fn a_budget_cuts_file_ranges_between_whole_batches() {
    with_dir(|dir| async move {
        let (log, batch_bytes) = filled_log(dir).await;
        let hw = log.high_watermark();
        let max_bytes = 3 * batch_bytes + 100;
        let whole = log.read(0, hw, usize::MAX, true).await.unwrap().concat();
        let before = copy_counts();
        let (mut offset, mut served) = (0, Vec::new());
        while offset < hw {
            let read = log.read_chunks(offset, hw, max_bytes, true).await.unwrap();
            let len = total_len(&read.chunks);
            assert!(len <= max_bytes && len % batch_bytes == 0, "{len} bytes");
            assert!(all_files(&read.chunks));
            served.extend(chunk_bytes(&read.chunks));
            offset = read.last_offset.expect("a batch at least") + 1;
        }
        assert_eq!(served, whole);
        assert_eq!(since(before).copied_bytes, 0);
        log.close().await.unwrap();
    });
}

/// After a restart only what was read and checked since is trusted (the
/// producer state's replay at open reads the tail through the copy path):
/// once read, every range goes out from the file. (A fresh segment's first
/// read copies: `segment::read_tests`.)
#[test]
fn a_reopened_log_serves_ranges_from_the_file_once_read() {
    with_dir(|dir| async move {
        let (log, _) = filled_log(dir.clone()).await;
        let hw = log.high_watermark();
        let whole = log.read(0, hw, usize::MAX, true).await.unwrap().concat();
        log.close().await.unwrap();
        let log = PartitionLog::open(dir, config()).await.unwrap();
        let first = log.read_chunks(0, hw, usize::MAX, true).await.unwrap();
        assert_eq!(chunk_bytes(&first.chunks), whole);
        let before = copy_counts();
        let second = log.read_chunks(0, hw, usize::MAX, true).await.unwrap();
        assert!(all_files(&second.chunks));
        assert_eq!(since(before).copied_bytes, 0);
        assert_eq!(chunk_bytes(&second.chunks), whole);
        log.close().await.unwrap();
    });
}

/// Above the high watermark (a follower's fetch reads to the durable end)
/// nothing goes out as a file range: a deposed leader may cut it.
#[test]
fn nothing_above_the_high_watermark_is_a_file_range() {
    with_dir(|dir| async move {
        let log = PartitionLog::open(dir, config()).await.unwrap();
        log.set_replicated(true);
        let batch = large();
        for _ in 0..BATCHES {
            append_one(&log, &batch, AppendWait::Local).await.unwrap();
        }
        assert_eq!(log.high_watermark(), 0);
        let end = log.durable_end();
        let read = log.read_chunks(0, end, usize::MAX, true).await.unwrap();
        assert_eq!(total_len(&read.chunks), BATCHES * batch.len());
        assert!(read.chunks.iter().all(|chunk| chunk.memory().is_some()));
        log.close().await.unwrap();
    });
}

/// How often pages are evicted before the test gives up: the kernel drops
/// clean pages on the first try but for the rare one in flight.
const EVICTION_TRIES: usize = 5;

/// Pages not in the page cache are never sent from the file (a send would
/// wait for the disk on the reactor): they are read, and checked again.
#[test]
fn evicted_pages_are_read_and_checked_again() {
    with_dir(|dir| async move {
        let (log, _) = filled_log(dir.clone()).await;
        let hw = log.high_watermark();
        let first_segment = std::fs::File::open(dir.join(format!("{:020}.log", 0))).unwrap();
        let mut copied_when_cold = false;
        for _ in 0..EVICTION_TRIES {
            first_segment.sync_all().unwrap();
            // SAFETY: fadvise on an open descriptor; it drops clean pages.
            let result = unsafe {
                libc::posix_fadvise(first_segment.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED)
            };
            assert_eq!(result, 0);
            let before = copy_counts();
            let read = log.read_chunks(0, hw, usize::MAX, true).await.unwrap();
            if read.chunks[0].memory().is_some() && since(before).copied_bytes > 0 {
                copied_when_cold = true;
                break;
            }
        }
        assert!(copied_when_cold, "evicted pages went out as a file range");
        log.close().await.unwrap();
    });
}
