//! Fetch response assembly: from the outcomes of the reads to the parts the
//! zero-copy writer encodes.
//!
//! Invariant: record bytes are moved, never copied or decoded. The records
//! kept add up to at most the response's byte budget, except that the first
//! non-empty partition goes whole (KIP-74), so one large batch cannot stall
//! a consumer. An incremental response leaves out a partition with no
//! records, no error and the same high watermark and log start offset as the
//! session last sent (KIP-227). Pure: no IO, no session cache.

use bytes::Bytes;
use kafka_protocol::protocol::StrBytes;

use super::Wanted;
use crate::protocol::fetch_writer::{FetchPartitionParts, FetchTopicParts};
use crate::shard::messages::{FetchOutcome, TopicPartition};

/// The topics of a response, and what it said of each partition it named:
/// (partition, high watermark, log start offset), for the session.
pub struct Assembled {
    pub topics: Vec<FetchTopicParts>,
    pub sent: Vec<(TopicPartition, i64, i64)>,
}

/// KIP-74: drops the records of every partition after the first non-empty
/// one that would take the response past `response_max_bytes`.
pub fn trim_to_max_bytes(outcomes: &mut [FetchOutcome], response_max_bytes: usize) {
    let mut total_bytes = 0usize;
    for outcome in outcomes.iter_mut() {
        let size: usize = outcome.records.iter().map(Bytes::len).sum();
        if size == 0 {
            continue;
        }
        if total_bytes > 0 && total_bytes + size > response_max_bytes {
            outcome.records.clear();
            continue;
        }
        total_bytes += size;
    }
}

/// Groups the outcomes by topic, in the order wanted, leaving out what an
/// incremental response need not repeat.
pub fn assemble(wanted: &[Wanted], outcomes: Vec<FetchOutcome>) -> Assembled {
    let mut topics: Vec<FetchTopicParts> = Vec::new();
    let mut sent = Vec::new();
    for (want, outcome) in wanted.iter().zip(outcomes) {
        if unchanged(want, &outcome) {
            continue;
        }
        sent.push((
            want.partition.clone(),
            outcome.high_watermark,
            outcome.log_start_offset,
        ));
        let part = FetchPartitionParts {
            partition_index: want.partition.partition,
            error_code: outcome.error_code,
            high_watermark: outcome.high_watermark,
            last_stable_offset: outcome.high_watermark,
            log_start_offset: outcome.log_start_offset,
            aborted_transactions: None,
            preferred_read_replica: -1,
            current_leader: None,
            records: outcome.records,
        };
        match topics.last_mut() {
            Some(last)
                if last.name.as_str() == &*want.partition.topic
                    && last.topic_id == want.topic_id =>
            {
                last.partitions.push(part)
            }
            _ => topics.push(FetchTopicParts {
                name: StrBytes::from_string(want.partition.topic.to_string()),
                topic_id: want.topic_id,
                partitions: vec![part],
            }),
        }
    }
    Assembled { topics, sent }
}

/// True when an incremental response may leave this partition out.
fn unchanged(want: &Wanted, outcome: &FetchOutcome) -> bool {
    want.sent.is_some_and(|(high_watermark, log_start_offset)| {
        outcome.error_code == 0
            && outcome.records.is_empty()
            && high_watermark == outcome.high_watermark
            && log_start_offset == outcome.log_start_offset
    })
}
