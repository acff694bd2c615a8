//! Transaction markers: the control batch a transaction coordinator has
//! written to each partition of a transaction when it commits or aborts it
//! (WriteTxnMarkers).
//!
//! Invariant: a marker is appended like any batch (its offset from the log
//! end, through the group-commit writer) and answered only once durable, as
//! Kafka appends markers with `acks=all`: the coordinator completes the
//! transaction only after every marker is in.

use std::rc::Rc;

use bytes::BytesMut;

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
