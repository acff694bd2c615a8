//! Tests of the copy path of segment reads (`read.rs`): page-cache reads
//! that copy once, and cold pages never waited for on the reactor.

use std::os::fd::AsRawFd;

use bytes::BytesMut;

use super::read::read_cached;
use super::*;
use crate::log::file_range::{copy_counts, Chunk};
use crate::protocol::batch::tests::sample_batch;

/// Drops the file's clean pages from the page cache.
fn evict_from_page_cache(file: &std::fs::File) {
    file.sync_all().unwrap();
    // SAFETY: fadvise on an open descriptor; it only drops clean pages.
    let result = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(result, 0);
}

/// The one copy of a page-cache read is the kernel's, into the buffer
/// the read returns; a page not in the cache is left to glommio's read
/// (which may wait for the disk) rather than waited for on the reactor.
#[test]
fn cached_pages_are_read_straight_into_the_buffer_and_cold_ones_are_not_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("segment");
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let mut out = BytesMut::with_capacity(1000);
    out.extend_from_slice(b"kept");
    assert_eq!(read_cached(file.as_raw_fd(), 5000, 900, &mut out), 900);
    assert_eq!(&out[..4], b"kept");
    assert_eq!(&out[4..], &bytes[5000..5900]);
    // Never past the buffer's capacity, nor past the end of the file.
    assert_eq!(read_cached(file.as_raw_fd(), 0, 900, &mut out), 96);
    let mut out = BytesMut::with_capacity(1000);
    assert_eq!(read_cached(file.as_raw_fd(), 299_990, 900, &mut out), 10);
    assert_eq!(read_cached(file.as_raw_fd(), 400_000, 900, &mut out), 0);

    // fadvise may keep a page another CPU still holds in its LRU batch,
    // and a refused read starts readahead: each try evicts again.
    let cold_read_refused = (0..EVICTION_TRIES).any(|_| {
        evict_from_page_cache(&file);
        let mut cold = BytesMut::with_capacity(1000);
        read_cached(file.as_raw_fd(), 200_000, 1000, &mut cold) == 0 && cold.is_empty()
    });
    assert!(cold_read_refused, "every read of evicted pages was served");
}

/// How often the cold read is tried before the test fails: the kernel
/// drops clean pages on the first try but for the rare one in flight.
const EVICTION_TRIES: usize = 5;

/// A segment read over pages the cache dropped, or holds only in part,
/// returns the file's bytes all the same.
#[test]
fn reads_over_evicted_and_partly_cached_pages_return_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..3 * READ_STEP_BYTES as u32 + 77)
        .map(|i| (i % 253) as u8)
        .collect();
    let path = log_path(dir.path(), 0);
    std::fs::write(&path, &bytes).unwrap();
    evict_from_page_cache(&std::fs::File::open(&path).unwrap());
    let dir_path = dir.path().to_path_buf();
    let expected = bytes.clone();
    crate::shard::block_on(move || async move {
        let file = Segment::open_file(&log_path(&dir_path, 0)).await.unwrap();
        let len = expected.len() as u64;
        let segment = Segment::existing(&dir_path, 0, file, len, SegmentIndexes::empty(), 0, 0);
        // The middle comes into the cache first; the whole read then
        // meets cached and uncached pages.
        let middle = segment
            .read_exact(READ_STEP_BYTES as u64, 5000)
            .await
            .unwrap();
        assert_eq!(
            &middle[..],
            &expected[READ_STEP_BYTES..READ_STEP_BYTES + 5000]
        );
        let whole = segment.read_exact(0, expected.len()).await.unwrap();
        assert_eq!(&whole[..], &expected[..]);
        segment.close().await.unwrap();
    });
}

/// A segment opened from disk trusts none of it: the first read of a range
/// copies and checks every batch, the next sends the range from the file
/// (the page cache holds it), copying nothing.
#[test]
fn a_segment_checks_a_range_on_its_first_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = Vec::new();
    let mut next_offset = 0i64;
    for n in [3, 5, 2] {
        let mut batch = sample_batch(n, kafka_protocol::records::Compression::None);
        // The base offset lies outside the CRC: the log assigns it so.
        batch[..8].copy_from_slice(&next_offset.to_be_bytes());
        next_offset += n as i64;
        bytes.extend_from_slice(&batch);
    }
    std::fs::write(log_path(dir.path(), 0), &bytes).unwrap();
    let dir_path = dir.path().to_path_buf();
    crate::shard::block_on(move || async move {
        let file = Segment::open_file(&log_path(&dir_path, 0)).await.unwrap();
        let len = bytes.len() as u64;
        let segment = Segment::existing(
            &dir_path,
            0,
            file,
            len,
            SegmentIndexes::empty(),
            next_offset,
            0,
        );
        let before = copy_counts().copied_bytes;
        let first = read(&segment, next_offset).await;
        assert!(first.iter().all(|chunk| chunk.memory().is_some()));
        assert!(copy_counts().copied_bytes - before >= len);
        let before = copy_counts().copied_bytes;
        let second = read(&segment, next_offset).await;
        assert_eq!(copy_counts().copied_bytes, before, "the second read copied");
        let [Chunk::File(range)] = &second[..] else {
            panic!("not one file range: {second:?}");
        };
        assert_eq!(range.contents(), bytes);
        assert_eq!(range.offsets(), 0..next_offset);
        segment.close().await.unwrap();
    });
}

/// All of `segment` below `next_offset`, as a fetch reads it.
async fn read(segment: &Segment, next_offset: i64) -> Vec<Chunk> {
    let mut budget = ReadBudget::new(usize::MAX, true);
    let mut out = Vec::new();
    segment
        .read_chunks(0, next_offset, next_offset, &mut budget, &mut out)
        .await
        .unwrap();
    out
}

/// A read that misses the page cache has the kernel read the stretch
/// ahead of it (`readahead.rs`), so the reads after it find their pages:
/// a catch-up reader does not wait for the disk at every step.
#[test]
fn a_cold_read_has_the_stretch_ahead_read_into_the_page_cache() {
    use crate::log::file_range::pages_cached;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let len = 4 << 20;
    let bytes: Vec<u8> = (0..len as u32).map(|i| (i % 241) as u8).collect();
    let path = log_path(dir.path(), 0);
    std::fs::write(&path, &bytes).unwrap();
    let dir_path = dir.path().to_path_buf();
    crate::shard::block_on(move || async move {
        let file = Segment::open_file(&log_path(&dir_path, 0)).await.unwrap();
        let segment = Segment::existing(&dir_path, 0, file, len, SegmentIndexes::empty(), 0, 0);
        let reader = std::fs::File::open(log_path(&dir_path, 0)).unwrap();
        let (ahead, ahead_len) = (READ_STEP_BYTES as u64 * 2, len - READ_STEP_BYTES as u64 * 2);
        // Evicted (again, should a page linger) until a read misses.
        let mut missed = false;
        for _ in 0..EVICTION_TRIES {
            evict_from_page_cache(&reader);
            if pages_cached(reader.as_raw_fd(), ahead, ahead_len) {
                continue;
            }
            let first = segment.read_exact(0, 4096).await.unwrap();
            assert_eq!(&first[..], &bytes[..4096]);
            missed = true;
            break;
        }
        assert!(missed, "the file's pages stayed cached");
        // The kernel reads the stretch on its own time: bounded wait.
        let mut cached = false;
        for _ in 0..500 {
            cached = pages_cached(reader.as_raw_fd(), ahead, ahead_len);
            if cached {
                break;
            }
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
        assert!(cached, "the pages ahead of the cold read were not read");
        segment.close().await.unwrap();
    });
}
