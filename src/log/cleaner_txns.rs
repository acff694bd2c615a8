//! The transactions a cleaning pass reads through, Kafka's
//! `CleanedTransactionMetadata`: which data batches belong to aborted
//! transactions (the pass drops them whatever their keys, and never puts
//! their keys in the offset map, so an aborted value never hides a
//! committed one), and which transaction markers may go.
//!
//! Kafka's rule for markers: a marker whose transaction still has a batch
//! in the log (read earlier in the same pass, which reads from the log
//! start) is kept, an ABORT one with its `.txnindex` entry. A marker with
//! no batch of its transaction left may go: like a tombstone, it first
//! gets a delete horizon (`delete.retention.ms` after the pass that finds
//! it so), and a pass at or past the horizon removes it. An emptied control
//! batch may go at once. The aborted transactions come from the
//! `.txnindex` entries, which the pass consumes as it reaches their first
//! offsets.
//!
//! Invariant: pure; fed every batch of the pass in offset order; started
//! with the aborted transactions whose marker is at or after the pass's
//! first offset.

use std::collections::HashMap;

use super::producer_state::ProducerAppend;
use super::txn_index::AbortedTxn;
use crate::protocol::batch::BatchHeader;

/// An aborted transaction the pass is inside of.
#[derive(Debug, Clone, Copy)]
struct AbortedSeen {
    txn: AbortedTxn,
    /// A batch of it was read this pass.
    read: bool,
    /// A batch of it stays (emptied, as its producer's last).
    kept: bool,
}

/// The transactions of one pass, batch by batch.
#[derive(Debug, Default)]
pub struct TxnCleaning {
    /// Aborted transactions not reached yet, newest first offset first.
    pending: Vec<AbortedTxn>,
    /// By producer id: its aborted transaction the pass is inside of.
    aborted: HashMap<i64, AbortedSeen>,
    /// By producer id: its transaction (not aborted) a batch was read of,
    /// and whether a batch of it stays.
    committed: HashMap<i64, bool>,
    /// The entries of the ABORT markers kept since `take_kept`.
    kept: Vec<AbortedTxn>,
    /// A marker was kept whose transaction lost all its batches in this
    /// pass: the next pass finds it free to go.
    markers_freed: bool,
}

impl TxnCleaning {
    /// A pass reading from offset `from`, knowing the `aborted`
    /// transactions of the log.
    pub fn new(aborted: impl IntoIterator<Item = AbortedTxn>, from: i64) -> TxnCleaning {
        let mut pending: Vec<AbortedTxn> = aborted
            .into_iter()
            .filter(|txn| txn.last_offset >= from)
            .collect();
        pending.sort_unstable_by_key(|txn| std::cmp::Reverse(txn.first_offset));
        TxnCleaning {
            pending,
            ..TxnCleaning::default()
        }
    }

    /// The aborted transactions that start at or before `offset` are now
    /// open to the pass.
    fn reach(&mut self, offset: i64) {
        while let Some(txn) = self.pending.pop_if(|txn| txn.first_offset <= offset) {
            self.aborted.entry(txn.producer_id).or_insert(AbortedSeen {
                txn,
                read: false,
                kept: false,
            });
        }
    }

    /// A data batch read: true when it belongs to an aborted transaction.
    pub fn data_batch(&mut self, header: &BatchHeader) -> bool {
        self.reach(header.last_offset());
        if !header.is_transactional() {
            return false;
        }
        let producer_id = header.producer_id.get();
        match self.aborted.get_mut(&producer_id) {
            Some(seen) => {
                seen.read = true;
                true
            }
            None => {
                self.committed.entry(producer_id).or_insert(false);
                false
            }
        }
    }

    /// The data batch last read stays in the log (whole, in part or
    /// emptied).
    pub fn batch_kept(&mut self, header: &BatchHeader) {
        if !header.is_transactional() {
            return;
        }
        let producer_id = header.producer_id.get();
        if let Some(seen) = self.aborted.get_mut(&producer_id) {
            seen.kept = true;
        } else if let Some(kept) = self.committed.get_mut(&producer_id) {
            *kept = true;
        }
    }

    /// A control batch read: true when no batch of its transaction is left,
    /// so that it may go (after its delete horizon). Control records other
    /// than markers stay.
    pub fn marker(&mut self, batch: &[u8], header: &BatchHeader) -> bool {
        self.reach(header.last_offset());
        if header.records_count.get() == 0 {
            return true;
        }
        let Some(ProducerAppend::Marker(marker)) =
            ProducerAppend::of(batch, header.base_offset.get())
        else {
            return false;
        };
        let producer_id = marker.marker.producer_id;
        let seen = if marker.marker.commit {
            self.committed.remove(&producer_id)
        } else {
            match self.aborted.remove(&producer_id) {
                Some(seen) if seen.read => {
                    self.kept.push(seen.txn);
                    Some(seen.kept)
                }
                _ => None,
            }
        };
        match seen {
            Some(kept) => {
                self.markers_freed |= !kept;
                false
            }
            None => true,
        }
    }

    /// The `.txnindex` entries of the ABORT markers kept since the last call.
    pub fn take_kept(&mut self) -> Vec<AbortedTxn> {
        std::mem::take(&mut self.kept)
    }

    /// Whether the next pass will find markers this one kept free to go.
    pub fn markers_freed(&self) -> bool {
        self.markers_freed
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions};

    use super::*;
    use crate::protocol::records::TxnMarker;

    const NOW_MS: i64 = 1_700_000_000_000;

    /// A batch at `offset` of `count` offsets of `producer_id`.
    fn data(producer_id: i64, offset: i64, count: i64, transactional: bool) -> Vec<u8> {
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id,
                producer_epoch: 0,
                timestamp_type: kafka_protocol::records::TimestampType::Creation,
                offset: offset + i,
                sequence: i as i32,
                timestamp: NOW_MS,
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(b"v")),
                headers: Default::default(),
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: kafka_protocol::records::Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, records.iter(), &options).unwrap();
        buf.to_vec()
    }

    fn marker(producer_id: i64, offset: i64, commit: bool) -> Vec<u8> {
        let mut batch = TxnMarker {
            producer_id,
            producer_epoch: 0,
            coordinator_epoch: 0,
            commit,
        }
        .encode(NOW_MS)
        .unwrap()
        .to_vec();
        batch[..8].copy_from_slice(&offset.to_be_bytes());
        batch
    }

    fn aborted(producer_id: i64, first_offset: i64, last_offset: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id,
            first_offset,
            last_offset,
            last_stable_offset: last_offset + 1,
        }
    }

    fn read_data(txns: &mut TxnCleaning, batch: &[u8], kept: bool) -> bool {
        let header = BatchHeader::view(batch).unwrap();
        let is_aborted = txns.data_batch(header);
        if kept {
            txns.batch_kept(header);
        }
        is_aborted
    }

    fn read_marker(txns: &mut TxnCleaning, batch: &[u8]) -> bool {
        txns.marker(batch, BatchHeader::view(batch).unwrap())
    }

    /// Producer 1 aborts 0..=2 (marker 3), producer 2 commits 1..=1 (marker
    /// 4), producer 1 then commits 5..=5 (marker 6).
    #[test]
    fn aborted_batches_are_known_and_markers_stay_while_their_data_does() {
        let entries = [aborted(1, 0, 3)];
        let mut txns = TxnCleaning::new(entries, 0);
        assert!(read_data(&mut txns, &data(1, 0, 1, true), false));
        assert!(!read_data(&mut txns, &data(2, 1, 1, true), true));
        assert!(read_data(&mut txns, &data(1, 2, 1, true), false));
        assert!(!read_marker(&mut txns, &marker(1, 3, false)));
        assert!(!read_marker(&mut txns, &marker(2, 4, true)));
        // The producer's next transaction is not the aborted one.
        assert!(!read_data(&mut txns, &data(1, 5, 1, true), false));
        assert!(!read_marker(&mut txns, &marker(1, 6, true)));
        // Non-transactional batches are never aborted.
        assert!(!read_data(&mut txns, &data(3, 7, 1, false), false));
        assert_eq!(txns.take_kept(), entries.to_vec());
        assert!(txns.take_kept().is_empty());
        // Both of producer 1's transactions lost all their batches.
        assert!(txns.markers_freed());

        // The next pass: the data is gone, so are the markers' reasons.
        let mut txns = TxnCleaning::new(entries, 0);
        assert!(!read_data(&mut txns, &data(2, 1, 1, true), true));
        assert!(read_marker(&mut txns, &marker(1, 3, false)));
        assert!(!read_marker(&mut txns, &marker(2, 4, true)));
        assert!(read_marker(&mut txns, &marker(1, 6, true)));
        assert!(txns.take_kept().is_empty(), "the entry goes with its data");
        assert!(!txns.markers_freed());
    }

    #[test]
    fn an_emptied_control_batch_may_go_and_entries_before_the_pass_are_ignored() {
        // The abort ended before offset 10: producer 1's batch at 10 is
        // from a later transaction.
        let mut txns = TxnCleaning::new([aborted(1, 0, 5)], 10);
        assert!(!read_data(&mut txns, &data(1, 10, 2, true), true));
        let emptied = crate::protocol::batch_records::emptied(&marker(1, 12, true)).unwrap();
        assert!(read_marker(&mut txns, &emptied));
        assert!(!txns.markers_freed());
    }
}
