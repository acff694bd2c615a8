//! The high watermarks of partitions other nodes lead, for the lag of the
//! groups this node coordinates. A group's coordinator holds its committed
//! offsets but often not the partitions it consumes; their lag (high
//! watermark − committed offset, as `kafka-consumer-groups --describe`
//! shows it: its `OffsetSpec.latest()` at read_uncommitted is the high
//! watermark) needs the leader's high watermark. Once per sample the admin
//! task asks each leader for them: one ListOffsets per node (as a
//! consumer, `replica_id` -1, read_uncommitted), all nodes at once, on the
//! inter-broker links (`shard::to_broker`, purpose `Lag`). The console and
//! `/metrics` read the last answers (`BrokerMetrics::high_watermarks`).
//!
//! Invariant: bounded and off every request's path. At most
//! `PARTITIONS_ASKED_MAX` partitions asked per sample, each node's answer
//! awaited at most `ASK_TIMEOUT`; the answers replace the last ones whole,
//! so a partition whose leader did not answer (or answered an error) has
//! no known high watermark and no lag, never a stale one. Only the admin
//! task's sampler asks; a page or a scrape only reads.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::ListOffsetsResponse;

use crate::metadata::records::NO_LEADER;
use crate::metrics::BrokerMetrics;
use crate::replication::{
    offsets_answer, offsets_request, OffsetsQuery, LATEST_TIMESTAMP, LIST_OFFSETS_VERSION,
};
use crate::shard::to_broker::Purpose;
use crate::shard::Shard;

/// Partitions led elsewhere whose high watermark one sample asks for: as
/// many as the console lists group partitions
/// (`console::GROUP_PARTITIONS_LISTED_MAX`); past it (in group, topic,
/// partition order) the rest have no lag. A ListOffsets answer is a few
/// dozen bytes per partition.
pub const PARTITIONS_ASKED_MAX: usize = 5_000;
/// How long a sample waits for a leader's answer: well within the
/// `history::SAMPLE_INTERVAL`, so one node that does not answer delays
/// the sample by at most this and never two samples' worth.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(3);
/// ListOffsets' `replica_id` of a consumer: the answer is the high
/// watermark, not the leader's log end.
const CONSUMER_REPLICA_ID: i32 = -1;
/// ListOffsets' `current_leader_epoch` when the asker does not fence:
/// any epoch of the leader answers.
const NO_LEADER_EPOCH: i32 = -1;

/// The high watermarks of partitions led elsewhere, by (topic, partition),
/// as their leaders last answered.
pub type LeaderWatermarks = BTreeMap<(Arc<str>, i32), i64>;

/// Asks the leaders of the group partitions in `metrics` that this node
/// does not lead for their high watermarks, and returns those they gave.
pub async fn ask_leaders(shard: &Rc<Shard>, metrics: &BrokerMetrics) -> LeaderWatermarks {
    let by_node = led_elsewhere(shard, metrics);
    let asks = by_node
        .into_iter()
        .map(|(node_id, queries)| ask(shard, node_id, queries));
    futures_util::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// The group partitions this node does not lead, by their leader's node
/// id, at most `PARTITIONS_ASKED_MAX` in all.
fn led_elsewhere(shard: &Shard, metrics: &BrokerMetrics) -> BTreeMap<i32, Vec<OffsetsQuery>> {
    let led_here: BTreeSet<(&str, i32)> = metrics
        .partitions
        .iter()
        .filter(|partition| partition.leader)
        .map(|partition| (&*partition.topic, partition.partition))
        .collect();
    let mut consumed: BTreeSet<(&str, i32)> = BTreeSet::new();
    let offsets = metrics.groups.iter().flat_map(|group| group.offsets.iter());
    for (topic, partition, _) in offsets {
        if consumed.len() == PARTITIONS_ASKED_MAX {
            break;
        }
        let key = (topic.as_str(), *partition);
        if !led_here.contains(&key) {
            consumed.insert(key);
        }
    }
    let view = shard.view();
    let mut by_node: BTreeMap<i32, Vec<OffsetsQuery>> = BTreeMap::new();
    for (topic, partition) in consumed {
        let Some(meta) = view.topic(topic) else {
            continue;
        };
        if partition < 0 || partition >= meta.partitions {
            continue;
        }
        let leader = view.state(meta, partition).leader;
        if leader == NO_LEADER || leader == view.node_id {
            continue;
        }
        by_node.entry(leader).or_default().push(OffsetsQuery {
            topic: topic.to_string(),
            partition,
            current_leader_epoch: NO_LEADER_EPOCH,
        });
    }
    assert!(by_node.values().map(Vec::len).sum::<usize>() <= PARTITIONS_ASKED_MAX);
    by_node
}

/// Node `node_id`'s high watermarks of `queries`: those it answered
/// without an error within `ASK_TIMEOUT`; none when it did not answer.
async fn ask(
    shard: &Rc<Shard>,
    node_id: i32,
    queries: Vec<OffsetsQuery>,
) -> Vec<((Arc<str>, i32), i64)> {
    let request = offsets_request(&queries, CONSUMER_REPLICA_ID, LATEST_TIMESTAMP);
    let call = shard.call_broker(Purpose::Lag, node_id, &request, LIST_OFFSETS_VERSION);
    let timeout = async {
        glommio::timer::sleep(ASK_TIMEOUT).await;
        Err(format!("no answer within {ASK_TIMEOUT:?}"))
    };
    let answer: Result<ListOffsetsResponse, String> = futures_lite::future::or(call, timeout).await;
    let response = match answer {
        Ok(response) => response,
        Err(error) => {
            log::debug!("consumer lag: high watermarks from node {node_id}: {error}");
            return Vec::new();
        }
    };
    queries
        .iter()
        .zip(offsets_answer(&queries, &response))
        .filter_map(|(query, offset)| {
            let high_watermark = offset.ok()?;
            Some((
                (Arc::from(query.topic.as_str()), query.partition),
                high_watermark,
            ))
        })
        .collect()
}
