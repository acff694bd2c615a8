//! Slices of request frames with the log: each tail charges the bodies it
//! holds, the shard's budget each frame once, and the frame goes back to
//! the budget when its last slice leaves (evicted, truncated, the log
//! deleted); a frame the budget has no room for is copied.

use std::path::Path;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use super::super::pinned::{Backing, FrameBudget, PinnedFrame};
use super::super::{AppendWait, LogConfig, TxnVerification};
use super::read_tests::{large_and_small, open_large};
use super::tests::*;
use super::PartitionLog;
use crate::protocol::batch::BATCH_HEADER_SIZE;

/// Partitions one request frame holds a batch for: W1's shape.
const PARTITIONS: usize = 8;

/// Appends `batches` as a request's records lying in `backing`.
async fn append_pinned(log: &Rc<PartitionLog>, batches: &[u8], backing: Backing) {
    log.append_verified(
        TxnVerification::Off,
        BytesMut::from(batches),
        backing,
        AppendWait::Durable,
        None,
    )
    .await
    .unwrap();
}

/// What the log serves from `from`, split as the tail holds it, equals
/// what the segment gives back once the tail is gone (the log reopened);
/// the chunks served from the tail.
async fn served_from_tail_as_from_segment(
    dir: &Path,
    config: LogConfig,
    log: Rc<PartitionLog>,
    from: i64,
) -> usize {
    let hw = log.high_watermark();
    let read = log.read_chunks(from, hw, usize::MAX, true).await.unwrap();
    assert_eq!(read.last_offset, Some(hw - 1));
    log.close().await.unwrap();
    let log = PartitionLog::open(dir.to_path_buf(), config).await.unwrap();
    let from_segment = log.read_chunks(from, hw, usize::MAX, true).await.unwrap();
    assert_eq!(chunk_bytes(&from_segment.chunks), chunk_bytes(&read.chunks));
    log.close().await.unwrap();
    read.chunks.len()
}

/// `PARTITIONS` logs under `dir`, each given `large` sliced from one
/// frame charged to `budget`: the frame's bytes, and the logs.
async fn slice_one_frame(
    dir: &Path,
    budget: &Rc<FrameBudget>,
    large: &[u8],
) -> (usize, Vec<Rc<PartitionLog>>) {
    let allocation_bytes = PARTITIONS * large.len() + 4;
    let frame = PinnedFrame::new(budget, allocation_bytes);
    let mut logs = Vec::new();
    for partition in 0..PARTITIONS {
        let (log, _) = open_large(&dir.join(partition.to_string()), TAIL_CACHE_TEST_BYTES).await;
        append_pinned(&log, large, Backing::Frame(frame.clone())).await;
        logs.push(log);
    }
    (allocation_bytes, logs)
}

/// W1's shape: one frame with a batch for each of 8 partitions is charged
/// to the budget once, and each tail only the batch it holds (its copied
/// header and its body), not the frame.
#[test]
fn one_frame_sliced_by_eight_partitions_is_charged_once() {
    with_dir(|dir| async move {
        let (large, _) = large_and_small();
        let budget = FrameBudget::new(1 << 20);
        let (allocation_bytes, logs) = slice_one_frame(&dir, &budget, &large).await;
        assert_eq!(budget.charged_bytes(), allocation_bytes);
        for log in &logs {
            assert_eq!(log.tail.borrow().pinned_bytes(), large.len());
            let read = log
                .read_chunks(0, log.high_watermark(), usize::MAX, true)
                .await
                .unwrap();
            assert_eq!(read.chunks.len(), 2, "the patched header and the slice");
            assert_eq!(read.chunks[0].len(), BATCH_HEADER_SIZE);
        }
        for log in logs {
            log.close().await.unwrap();
        }
        assert_eq!(budget.charged_bytes(), 0);
    });
}

/// A frame the budget has no room for is copied, charged to nothing but
/// its tail (the batch's size), until the frames held before it go.
#[test]
fn a_full_budget_means_copies() {
    with_dir(|dir| async move {
        let (large, _) = large_and_small();
        let allocation_bytes = 2 * large.len();
        let budget = FrameBudget::new(allocation_bytes);
        let (first, config) = open_large(&dir.join("first"), TAIL_CACHE_TEST_BYTES).await;
        let held = PinnedFrame::new(&budget, allocation_bytes);
        append_pinned(&first, &large, Backing::Frame(held.clone())).await;
        assert_eq!(budget.charged_bytes(), allocation_bytes);

        let second_dir = dir.join("second");
        let (second, _) = open_large(&second_dir, TAIL_CACHE_TEST_BYTES).await;
        let refused = PinnedFrame::new(&budget, allocation_bytes);
        append_pinned(&second, &large, Backing::Frame(refused)).await;
        assert_eq!(budget.charged_bytes(), allocation_bytes);
        assert_eq!(second.tail.borrow().pinned_bytes(), large.len());

        drop(held);
        first.close().await.unwrap();
        assert_eq!(budget.charged_bytes(), 0);
        let sliced = PinnedFrame::new(&budget, allocation_bytes);
        append_pinned(&second, &large, Backing::Frame(sliced)).await;
        assert_eq!(budget.charged_bytes(), allocation_bytes);
        let chunks = served_from_tail_as_from_segment(&second_dir, config, second, 0).await;
        assert_eq!(chunks, 1 + 2, "the batch copied whole, then one sliced");
        assert_eq!(budget.charged_bytes(), 0);
    });
}

/// The frame stays charged while any slice of it is held, and goes back
/// once the last goes: tails evicted from the front (retention), cut from
/// the back (a given-up write), and logs deleted.
#[test]
fn every_slice_gone_gives_the_frame_back() {
    with_dir(|dir| async move {
        let (large, _) = large_and_small();
        let budget = FrameBudget::new(1 << 20);
        let (allocation_bytes, mut logs) = slice_one_frame(&dir, &budget, &large).await;
        for log in &logs {
            // The writer holds its slices until written.
            log.wait_until(|log| !log.writer.running.get())
                .await
                .unwrap();
        }
        let deleted = logs.split_off(PARTITIONS - 2);
        for (index, log) in logs.iter().enumerate() {
            assert_eq!(budget.charged_bytes(), allocation_bytes);
            let mut tail = log.tail.borrow_mut();
            match index % 2 {
                0 => tail.evict_below(log.log_end_offset()),
                _ => tail.truncate_from(0),
            }
            assert_eq!(tail.pinned_bytes(), 0);
        }
        for log in deleted {
            assert_eq!(budget.charged_bytes(), allocation_bytes);
            log.delete().await.unwrap();
        }
        assert_eq!(budget.charged_bytes(), 0);
        for log in logs {
            log.close().await.unwrap();
        }
    });
}

/// A tail of slices charges the bodies it holds, so its bound counts
/// batches by their size, not by their frames; the budget holds the
/// frames of the batches still cached, and none once the log is closed.
#[test]
fn a_tail_charges_its_bodies_and_the_budget_their_frames() {
    with_dir(|dir| async move {
        let (large, _) = large_and_small();
        let capacity_bytes = 3 * large.len();
        let (log, config) = open_large(&dir, capacity_bytes).await;
        let budget = FrameBudget::new(1 << 20);
        let allocation_bytes = 4 * large.len();
        for _ in 0..PARTITIONS {
            let frame = PinnedFrame::new(&budget, allocation_bytes);
            append_pinned(&log, &large, Backing::Frame(frame)).await;
        }
        log.wait_until(|log| !log.writer.running.get())
            .await
            .unwrap();
        let kept = 3;
        assert_eq!(log.tail.borrow().pinned_bytes(), kept * large.len());
        assert_eq!(budget.charged_bytes(), kept * allocation_bytes);
        let per_batch = log.log_end_offset() / PARTITIONS as i64;
        let from = (PARTITIONS - kept) as i64 * per_batch;
        assert_eq!(log.tail.borrow().start_offset(), Some(from));
        let chunks = served_from_tail_as_from_segment(&dir, config, log, from).await;
        assert_eq!(chunks, 2 * kept, "each batch as its header and its slice");
        assert_eq!(budget.charged_bytes(), 0);
    });
}

/// A frame a batch is too small to slice is never charged.
#[test]
fn a_frame_with_no_batch_to_slice_is_not_charged() {
    with_dir(|dir| async move {
        let (_, small) = large_and_small();
        let (log, _) = open_large(&dir, TAIL_CACHE_TEST_BYTES).await;
        let budget = FrameBudget::new(1 << 20);
        let frame = PinnedFrame::new(&budget, 64 << 10);
        append_pinned(&log, &small, Backing::Frame(frame.clone())).await;
        assert_eq!(budget.charged_bytes(), 0);
        let read = log.read_chunks(0, 5, usize::MAX, true).await.unwrap();
        let memory: Vec<Option<Bytes>> = read.chunks.iter().map(|c| c.memory().cloned()).collect();
        assert_eq!(memory, vec![Some(Bytes::from(small))]);
        log.close().await.unwrap();
    });
}
