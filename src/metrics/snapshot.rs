//! The snapshots a scrape gathers, one per shard, and their merge into the
//! broker's metrics (`BrokerMetrics`), which `export` writes out.
//!
//! Invariant: plain data (a snapshot crosses the mesh); merging adds
//! counters and histograms and never loses a shard's counts.

use std::collections::BTreeMap;
use std::sync::Arc;

use hdrhistogram::Histogram;

use super::Counters;

/// What one shard reported to a scrape.
#[derive(Debug, Clone, Default)]
pub struct ShardMetrics {
    pub shard: usize,
    pub counters: Counters,
    /// (API key, version, requests) for every pair seen.
    pub requests: Vec<(i16, i16, u64)>,
    /// Request latency in microseconds, by API key.
    pub latency_us: Vec<(i16, Histogram<u64>)>,
    pub fsync_us: Option<Histogram<u64>>,
    pub group_commit_bytes: Option<Histogram<u64>>,
    pub group_commit_batches: Option<Histogram<u64>>,
    pub gauges: ShardGauges,
    /// Empty unless `metrics.partition.series.enabled`.
    pub partitions: Vec<PartitionMetrics>,
    /// The consumer groups this shard coordinates.
    pub groups: Vec<GroupMetrics>,
}

/// A shard's levels now (not counts since start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardGauges {
    /// Partitions with a log open on this shard (replicas of this node).
    pub partitions: u64,
    /// Of those, the ones this node leads.
    pub leaders: u64,
    /// Led here with fewer in-sync replicas than replicas.
    pub under_replicated: u64,
    /// Led here with fewer in-sync replicas than `min.insync.replicas`.
    pub under_min_isr: u64,
    /// Bytes of every open log.
    pub log_bytes: u64,
    /// The largest dirty share of a compacted log, in percent.
    pub cleaner_max_dirty_percent: u64,
    /// Client requests being handled.
    pub requests_in_flight: u64,
    /// This shard runs the controller that leads the metadata quorum.
    pub leads_quorum: bool,
}

/// One partition's log as its owner shard sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetrics {
    pub topic: Arc<str>,
    pub partition: i32,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
    pub size_bytes: u64,
    pub segments: u64,
    pub leader: bool,
    pub under_replicated: bool,
}

/// One consumer group as its coordinator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetrics {
    pub group: String,
    /// Kafka's name of the group's state (`Stable`, `Empty`, ...).
    pub state: &'static str,
    pub members: u64,
    /// (topic, partition, committed offset), when per-partition series
    /// are on.
    pub offsets: Vec<(String, i32, i64)>,
}

/// A group's lag on a partition: records from its committed offset to
/// the high watermark (0 for a commit past the high watermark known, the
/// leader's answer being a sample old). Saturating: a client may commit
/// any i64, `i64::MIN` too.
pub fn group_lag(high_watermark: i64, committed: i64) -> i64 {
    high_watermark.saturating_sub(committed).max(0)
}

/// What the whole cluster looks like from this node's metadata view, and
/// this node's own standing in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterGauges {
    pub topics: u64,
    pub partitions: u64,
    /// Partitions with no leader.
    pub offline_partitions: u64,
    pub brokers_active: u64,
    pub brokers_fenced: u64,
    /// This node leads the metadata quorum (set by `merge`, from the
    /// controller shard's snapshot).
    pub active_controller: bool,
    /// `/v1/status/ready` would answer 200.
    pub ready: bool,
}

/// Every shard's snapshot merged: per-shard counters and gauges kept apart
/// (labelled by shard), requests, histograms, partitions and groups
/// merged across shards.
#[derive(Debug, Clone, Default)]
pub struct BrokerMetrics {
    /// (shard, counters, gauges), in shard order.
    pub shards: Vec<(usize, Counters, ShardGauges)>,
    pub requests: BTreeMap<(i16, i16), u64>,
    pub latency_us: BTreeMap<i16, Histogram<u64>>,
    pub fsync_us: Option<Histogram<u64>>,
    pub group_commit_bytes: Option<Histogram<u64>>,
    pub group_commit_batches: Option<Histogram<u64>>,
    /// Sorted by topic and partition.
    pub partitions: Vec<PartitionMetrics>,
    /// Sorted by group id.
    pub groups: Vec<GroupMetrics>,
    /// The high watermarks of group partitions other nodes lead, as their
    /// leaders last answered the admin task (`admin::watermarks`); empty
    /// where it does not ask.
    pub led_elsewhere: BTreeMap<(Arc<str>, i32), i64>,
    pub cluster: ClusterGauges,
}

impl BrokerMetrics {
    /// Merges the shards' snapshots (in any order) with the cluster's view.
    pub fn merge(snapshots: Vec<ShardMetrics>, cluster: ClusterGauges) -> BrokerMetrics {
        let mut merged = BrokerMetrics {
            cluster,
            ..BrokerMetrics::default()
        };
        for snapshot in snapshots {
            merged.add(snapshot);
        }
        merged.shards.sort_by_key(|(shard, ..)| *shard);
        merged.cluster.active_controller = merged.shards.iter().any(|(.., g)| g.leads_quorum);
        merged
            .partitions
            .sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        merged.groups.sort_by(|a, b| a.group.cmp(&b.group));
        merged
    }

    /// Every high watermark this node knows, by (topic, partition): its
    /// own where it leads the partition, else the leader's last answer.
    pub fn high_watermarks(&self) -> BTreeMap<(&str, i32), i64> {
        let led_here = self
            .partitions
            .iter()
            .filter(|partition| partition.leader)
            .map(|p| ((&*p.topic, p.partition), p.high_watermark));
        let elsewhere = self
            .led_elsewhere
            .iter()
            .map(|((topic, partition), high_watermark)| ((&**topic, *partition), *high_watermark));
        // This node's own, fresher, win over an answer of a former leader.
        elsewhere.chain(led_here).collect()
    }

    fn add(&mut self, snapshot: ShardMetrics) {
        self.shards
            .push((snapshot.shard, snapshot.counters, snapshot.gauges));
        for (key, version, count) in snapshot.requests {
            *self.requests.entry((key, version)).or_default() += count;
        }
        for (key, histogram) in snapshot.latency_us {
            match self.latency_us.get_mut(&key) {
                Some(total) => add_histogram(total, &histogram),
                None => {
                    self.latency_us.insert(key, histogram);
                }
            }
        }
        merge_optional(&mut self.fsync_us, snapshot.fsync_us);
        merge_optional(&mut self.group_commit_bytes, snapshot.group_commit_bytes);
        merge_optional(
            &mut self.group_commit_batches,
            snapshot.group_commit_batches,
        );
        self.partitions.extend(snapshot.partitions);
        self.groups.extend(snapshot.groups);
    }

    /// Every shard's counters added up.
    pub fn total(&self) -> Counters {
        let mut total = Counters::default();
        for (_, counters, _) in &self.shards {
            total.add(counters);
        }
        total
    }
}

fn merge_optional(total: &mut Option<Histogram<u64>>, more: Option<Histogram<u64>>) {
    match (total.as_mut(), more) {
        (Some(total), Some(more)) => add_histogram(total, &more),
        (None, more) => *total = more,
        (Some(_), None) => {}
    }
}

/// Adds `more` into `total`. Every shard makes a histogram of one kind
/// with the same bounds, so the add cannot fail for want of range; a
/// failure is a bug, and the shard's counts are left out rather than
/// half added.
fn add_histogram(total: &mut Histogram<u64>, more: &Histogram<u64>) {
    let added = total.add(more);
    debug_assert!(added.is_ok(), "histograms of one kind share their bounds");
}

#[cfg(test)]
mod tests {
    use super::group_lag;

    #[test]
    fn a_lag_is_never_negative_and_any_committed_offset_is_taken() {
        assert_eq!(group_lag(100, 40), 60);
        assert_eq!(group_lag(100, 140), 0, "a commit past the high watermark");
        assert_eq!(group_lag(100, i64::MIN), i64::MAX, "a garbage commit");
        assert_eq!(group_lag(-1, i64::MAX), 0);
    }
}
