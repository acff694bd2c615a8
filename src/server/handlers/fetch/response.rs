//! Fetch response assembly: from the outcomes of the reads to the parts the
//! zero-copy writer encodes.
//!
//! Invariant: record bytes are moved, never copied or decoded. The records
//! kept add up to at most the response's byte budget, except that the first
//! non-empty partition goes whole (KIP-74), so one large batch cannot stall
//! a consumer. An incremental response leaves out a partition with no
//! records, no error and the same high watermark and log start offset as the
//! session last sent (KIP-227). Pure: no IO, no session cache.

use kafka_protocol::protocol::StrBytes;

use super::Wanted;
use crate::log::FileRange;
use crate::protocol::chunk::total_len;
use crate::protocol::fetch_writer::{
    AbortedTransaction, CurrentLeader, DivergingEpoch, FetchPartitionParts, FetchTopicParts,
};
use crate::shard::messages::{FetchOutcome, TopicPartition};

/// The topics of a response, and what it said of each partition it named:
/// (partition, high watermark, log start offset), for the session.
pub struct Assembled {
    pub topics: Vec<FetchTopicParts<FileRange>>,
    pub sent: Vec<(TopicPartition, i64, i64)>,
}

/// KIP-74: drops the records of every partition after the first non-empty
/// one that would take the response past `response_max_bytes`.
pub fn trim_to_max_bytes(outcomes: &mut [FetchOutcome], response_max_bytes: usize) {
    let mut total_bytes = 0usize;
    for outcome in outcomes.iter_mut() {
        let size = total_len(&outcome.records);
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
    let mut topics: Vec<FetchTopicParts<FileRange>> = Vec::new();
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
            last_stable_offset: outcome.last_stable_offset,
            log_start_offset: outcome.log_start_offset,
            aborted_transactions: outcome.aborted_transactions.map(|aborted| {
                aborted
                    .into_iter()
                    .map(|(producer_id, first_offset)| AbortedTransaction {
                        producer_id,
                        first_offset,
                    })
                    .collect()
            }),
            preferred_read_replica: -1,
            diverging_epoch: outcome
                .diverging_epoch
                .map(|(epoch, end_offset)| DivergingEpoch { epoch, end_offset }),
            current_leader: want.leader.as_ref().map(|(broker, epoch)| CurrentLeader {
                leader_id: broker.id,
                leader_epoch: *epoch,
            }),
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::log::Chunk;

    fn outcome(record_bytes: &[usize]) -> FetchOutcome {
        FetchOutcome {
            high_watermark: 10,
            log_start_offset: 0,
            records: record_bytes
                .iter()
                .map(|&size| Chunk::Memory(Bytes::from(vec![0u8; size])))
                .collect(),
            ..FetchOutcome::default()
        }
    }

    fn want(topic: &str, partition: i32, sent: Option<(i64, i64)>) -> Wanted {
        Wanted {
            partition: TopicPartition::new(topic, partition),
            topic_id: uuid::Uuid::nil(),
            fetch_offset: 0,
            max_bytes: 1 << 20,
            last_fetched_epoch: -1,
            log_start_offset: -1,
            current_leader_epoch: -1,
            error: None,
            owner: 0,
            leader: None,
            sent,
        }
    }

    #[test]
    fn the_first_non_empty_partition_goes_whole_and_the_rest_fit_the_budget() {
        let mut outcomes = vec![
            outcome(&[]),
            outcome(&[60, 60]),
            outcome(&[30]),
            outcome(&[10]),
        ];
        trim_to_max_bytes(&mut outcomes, 100);
        let kept: Vec<usize> = outcomes
            .iter()
            .map(|outcome| total_len(&outcome.records))
            .collect();
        assert_eq!(kept, vec![0, 120, 0, 0]);

        let mut outcomes = vec![outcome(&[50]), outcome(&[60]), outcome(&[40])];
        trim_to_max_bytes(&mut outcomes, 100);
        let kept: Vec<usize> = outcomes.iter().map(|o| o.records.len()).collect();
        assert_eq!(kept, vec![1, 0, 1]);
    }

    #[test]
    fn an_incremental_response_omits_only_what_it_already_said() {
        let wanted = vec![
            want("a", 0, Some((10, 0))),
            want("a", 1, Some((9, 0))),
            want("b", 0, Some((10, 0))),
            want("b", 1, None),
        ];
        let outcomes = vec![outcome(&[]), outcome(&[]), outcome(&[5]), outcome(&[])];
        let assembled = assemble(&wanted, outcomes);
        let named: Vec<(String, Vec<i32>)> = assembled
            .topics
            .iter()
            .map(|topic| {
                let partitions = topic.partitions.iter().map(|p| p.partition_index).collect();
                (topic.name.to_string(), partitions)
            })
            .collect();
        assert_eq!(
            named,
            vec![("a".to_string(), vec![1]), ("b".to_string(), vec![0, 1])]
        );
        let sent: Vec<(String, i32)> = assembled
            .sent
            .iter()
            .map(|(partition, _, _)| (partition.topic.to_string(), partition.partition))
            .collect();
        assert_eq!(
            sent,
            vec![("a".into(), 1), ("b".into(), 0), ("b".into(), 1)]
        );
    }
}
