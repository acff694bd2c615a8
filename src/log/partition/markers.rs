//! Transaction markers: the control batch a transaction coordinator has
//! written to each partition of a transaction when it commits or aborts it
//! (WriteTxnMarkers), and the aborted transactions they leave in the
//! segments' `.txnindex`, which read_committed fetches report.
//!
//! Invariant: a marker is appended like any batch (its offset from the log
//! end, through the group-commit writer, the producer state's checks before
//! it gets its offset) and answered only once durable, as Kafka appends
//! markers with `acks=all`: the coordinator completes the transaction only
//! after every marker is in. An ABORT that ends a transaction with data here
//! is in its segment's aborted list from the moment it has its offset (as
//! Kafka's `completeTxn`), so a read below the LSO always finds it; a
//! given-up marker leaves it again with the segment's rewind.

use std::rc::Rc;

use bytes::BytesMut;

use super::super::producer_state::CompletedTxn;
use super::super::txn_index::{self, AbortedTxn};
use super::super::{AppendResult, AppendWait, LogError};
use super::PartitionLog;
use crate::clock::now_ms;
use crate::protocol::records::TxnMarker;

impl PartitionLog {
    /// Appends `marker` as one control batch stamped now, and returns once
    /// it is durable.
    pub async fn append_txn_marker(
        self: &Rc<Self>,
        marker: TxnMarker,
    ) -> Result<AppendResult, LogError> {
        let batch = marker
            .encode(now_ms() as i64)
            .map_err(|error| LogError::Io(std::io::Error::other(error.to_string())))?;
        self.append(BytesMut::from(&batch[..]), AppendWait::Durable, None)
            .await
    }

    /// Records the aborted ones of the transactions an append completed
    /// (its state already committed) in the segment holding each marker,
    /// with the LSO as Kafka's `lastStableOffset(completedTxn)` gives it.
    /// True when a segment other than the active one got an entry (only
    /// replay at `open` does that: its file is then written again).
    pub(super) fn index_aborted(&self, completed: &[CompletedTxn]) -> bool {
        let mut sealed_changed = false;
        for txn in completed.iter().filter(|txn| txn.aborted) {
            let last_stable_offset = self
                .producers_first_unstable_offset()
                .map_or(txn.last_offset + 1, |first| first.min(txn.last_offset + 1));
            let Some(segment) = self.segment_after(txn.last_offset, None) else {
                continue;
            };
            let added = segment.add_aborted(AbortedTxn {
                producer_id: txn.producer_id,
                first_offset: txn.first_offset,
                last_offset: txn.last_offset,
                last_stable_offset,
            });
            sealed_changed |= added && !Rc::ptr_eq(&segment, &self.active());
        }
        sealed_changed
    }

    /// The aborted transactions that overlap the offsets
    /// `fetch_offset..upper_offset`, as (producer id, first offset), which a
    /// read_committed consumer drops (Kafka's `collectAbortedTxns` over the
    /// segments from the one holding `fetch_offset`).
    pub fn aborted_transactions(&self, fetch_offset: i64, upper_offset: i64) -> Vec<(i64, i64)> {
        let segments = self.segments.borrow();
        let first = segments
            .partition_point(|s| s.base_offset <= fetch_offset)
            .saturating_sub(1);
        let mut found = Vec::new();
        for segment in &segments[first..] {
            if txn_index::collect(
                &segment.aborted.borrow(),
                fetch_offset,
                upper_offset,
                &mut found,
            ) {
                break;
            }
        }
        found
            .into_iter()
            .map(|txn| (txn.producer_id, txn.first_offset))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::records::Compression;

    use super::super::tests::*;
    use super::*;
    use crate::protocol::batch::tests::sample_batch;
    use crate::protocol::batch::BatchHeader;

    /// A marker lands after the data as one control batch of its own, at the
    /// next offset, and is durable when the call returns.
    #[test]
    fn a_marker_is_a_durable_control_batch_at_the_log_end() {
        with_dir(|dir| async move {
            let log = PartitionLog::open(dir, small_config(TAIL_CACHE_TEST_BYTES))
                .await
                .unwrap();
            let batch = sample_batch(3, Compression::None);
            log.append(BytesMut::from(&batch[..]), AppendWait::Durable, None)
                .await
                .unwrap();
            let marker = TxnMarker {
                producer_id: 9,
                producer_epoch: 2,
                coordinator_epoch: 0,
                commit: true,
            };
            let appended = log.append_txn_marker(marker).await.unwrap();
            assert_eq!((appended.base_offset, appended.last_offset), (3, 3));
            assert_eq!(log.high_watermark(), 4);
            let chunks = log
                .read(3, log.high_watermark(), usize::MAX, true)
                .await
                .unwrap();
            let read: Vec<u8> = chunks.iter().flat_map(|chunk| chunk.to_vec()).collect();
            let header = BatchHeader::view(&read).unwrap();
            assert!(header.is_control() && header.is_transactional());
            assert_eq!(header.base_offset.get(), 3);
            assert_eq!(header.producer_id.get(), 9);
            log.close().await.unwrap();
        });
    }
}
