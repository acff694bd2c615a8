//! Reading a coordinator's internal compacted topic back at load: the one
//! reader of a `__consumer_offsets` or `__transaction_state` partition that
//! `groups.rs` and `transactions.rs` replay their state from.
//!
//! A load reads to the log end offset, not to the high watermark, as
//! Kafka's loaders do (`CoordinatorLoaderImpl`, and `GroupMetadataManager`
//! and `TransactionStateManager` before it): a replicated partition's new
//! leader starts from its checkpointed high watermark, which trails what
//! its ISR holds until the followers fetch again (after a whole-cluster
//! kill -9 it can be far behind, and offsets committed before the kill
//! would read as missing). A leader elected from the ISR holds every
//! record that was acknowledged; what it holds past them was never
//! answered, and becomes committed as the followers copy it.
//!
//! Invariant: it reads only a partition this shard owns, only up to its
//! log end offset, and never writes; what a record means is the caller's.

use std::fmt::Display;

use super::messages::TopicPartition;
use super::owned::OwnedPartitions;
use crate::protocol::records::{decode_batches, ConsumedRecord, DecodedBatch};

/// Bytes read per step while loading a coordinator's partition.
const LOAD_READ_BYTES: usize = 1 << 20;

/// Those of `partitions` of `topic` that this shard holds with records to
/// read: the ones a coordinator that gains them must load. One just made
/// has nothing to read, so it needs no load, and no window in which its
/// requests are refused as loading.
pub fn with_records(owned: &OwnedPartitions, topic: &str, partitions: Vec<i32>) -> Vec<i32> {
    partitions
        .into_iter()
        .filter(|&partition| {
            owned
                .log(&TopicPartition::new(topic, partition))
                .is_some_and(|log| log.log_end_offset() > log.log_start_offset())
        })
        .collect()
}

/// Reads `topic_partition`'s log from its start to its log end offset as it
/// moves (a transaction marker may land in `__consumer_offsets` during the
/// load), handing every record, control records included, to `apply` with
/// its batch. A record `apply` refuses is logged and skipped; a read or
/// decoding error ends the load where it is, logged.
pub async fn replay_partition<E: Display>(
    owned: &OwnedPartitions,
    topic_partition: &TopicPartition,
    mut apply: impl FnMut(&DecodedBatch, &ConsumedRecord) -> Result<(), E>,
) {
    let Some(log) = owned.log(topic_partition) else {
        return;
    };
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let end = log.log_end_offset();
        let chunks = match log.read(offset, end, LOAD_READ_BYTES, true).await {
            Ok(chunks) if !chunks.is_empty() => chunks,
            Ok(_) => break,
            Err(error) => {
                log::error!("loading {}: {error}", topic_partition.dir_name());
                break;
            }
        };
        let mut next = offset;
        for chunk in chunks {
            let (batches, next_offset) = match decode_batches(&chunk, offset) {
                Ok(decoded) => decoded,
                Err(error) => {
                    log::error!("loading {}: {error}", topic_partition.dir_name());
                    return;
                }
            };
            for batch in &batches {
                for record in &batch.records {
                    if let Err(error) = apply(batch, record) {
                        log::warn!(
                            "{} offset {}: skipped record: {error}",
                            topic_partition.dir_name(),
                            record.offset
                        );
                    }
                }
            }
            next = next.max(next_offset.unwrap_or(next));
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
}
