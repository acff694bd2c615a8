//! A shard's answer to a scrape (`ShardRequest::Metrics`): its recorder's
//! counters and histograms (`metrics`), the connections' and the
//! routing's own counts, what glommio counted on its rings since the last
//! scrape, and the levels of its partitions and groups read now.
//!
//! Invariant: reads only this shard's state; runs once per scrape per
//! shard, and its cost grows with the partitions and groups it holds,
//! never with the traffic.

use std::sync::Arc;

use super::Shard;
use crate::metadata::ClusterView;
use crate::metrics::{
    self, ClusterGauges, ExecutorDelta, GroupMetrics, PartitionMetrics, ShardGauges, ShardMetrics,
};

/// Percent in a whole: the dirty ratio is exported in percent.
const PERCENT: f64 = 100.0;

/// Everything shard `shard` reports to a scrape; its partitions' series
/// and its groups' offsets only when `series`.
pub fn snapshot(shard: &Shard, series: bool) -> ShardMetrics {
    metrics::executor_ran(executor_delta());
    let mut snapshot = metrics::snapshot(shard.id);
    let written = crate::server::connection::write_counts();
    let counters = &mut snapshot.counters;
    counters.network_sent_bytes = written.memory_bytes + written.file_bytes;
    let routing = &shard.routing;
    counters.produce_parts_local = routing.produce_here.get();
    counters.produce_parts_forwarded = routing.produce_forwarded.get();
    counters.fetch_parts_local = routing.fetch_here.get();
    counters.fetch_parts_forwarded = routing.fetch_forwarded.get();
    let (gauges, partitions) = partitions(shard, series);
    snapshot.gauges = gauges;
    snapshot.partitions = partitions;
    snapshot.groups = groups(shard, series);
    snapshot
}

/// What glommio counted on this executor since the last call: its stats
/// are taken (reset) as they are read, and only this module reads them.
fn executor_delta() -> ExecutorDelta {
    let executor = glommio::executor();
    let rings = executor.io_stats().all_rings();
    let (file_reads, file_read_bytes) = rings.file_reads();
    let (buffered_reads, buffered_read_bytes) = rings.file_buffered_reads();
    let (file_writes, file_written_bytes) = rings.file_writes();
    let (buffered_writes, buffered_written_bytes) = rings.file_buffered_writes();
    let stats = executor.executor_stats();
    ExecutorDelta {
        file_reads: file_reads + buffered_reads,
        file_read_bytes: file_read_bytes + buffered_read_bytes,
        file_writes: file_writes + buffered_writes,
        file_written_bytes: file_written_bytes + buffered_written_bytes,
        tasks_executed: stats.tasks_executed(),
        busy_us: u64::try_from(stats.executor_runtime().as_micros()).unwrap_or(u64::MAX),
    }
}

/// The shard's partition gauges, and a series per partition when `series`.
fn partitions(shard: &Shard, series: bool) -> (ShardGauges, Vec<PartitionMetrics>) {
    let view = shard.view();
    let now_ms = i64::try_from(crate::clock::now_ms()).unwrap_or(i64::MAX);
    let mut gauges = ShardGauges {
        under_min_isr: shard.replication.under_min_isr() as u64,
        requests_in_flight: shard.in_flight_requests.get() as u64,
        leads_quorum: shard.leads_quorum(),
        ..ShardGauges::default()
    };
    let mut max_dirty = 0f64;
    let mut partitions = Vec::new();
    for (partition, log) in shard.partitions.open_logs() {
        let (leader, under_replicated) = view
            .topic(&partition.topic)
            .map(|meta| {
                let state = view.state(meta, partition.partition);
                let leader = state.leader == view.node_id;
                (leader, leader && state.isr.len() < state.replicas.len())
            })
            .unwrap_or_default();
        let size_bytes = log.size_bytes();
        gauges.partitions += 1;
        gauges.leaders += u64::from(leader);
        gauges.under_replicated += u64::from(under_replicated);
        gauges.log_bytes += size_bytes;
        if let Some(need) = log.cleaning_need(now_ms) {
            max_dirty = max_dirty.max(need.dirty_ratio);
        }
        if series {
            partitions.push(PartitionMetrics {
                topic: Arc::clone(&partition.topic),
                partition: partition.partition,
                log_start_offset: log.log_start_offset(),
                log_end_offset: log.log_end_offset(),
                high_watermark: log.high_watermark(),
                size_bytes,
                segments: log.segment_count() as u64,
                leader,
                under_replicated,
            });
        }
    }
    gauges.cleaner_max_dirty_percent = (max_dirty * PERCENT) as u64;
    (gauges, partitions)
}

/// The cluster as this node's view shows it, and whether it is ready:
/// registered, unfenced and caught up with the metadata log since it
/// started (a pure controller: its quorum has a leader).
pub fn cluster(shard: &Shard) -> ClusterGauges {
    let view = shard.view();
    let mut gauges = ClusterGauges {
        topics: view.topics.len() as u64,
        ready: ready(shard, &view),
        ..ClusterGauges::default()
    };
    for meta in view.topics.values() {
        for partition in 0..meta.partitions {
            gauges.partitions += 1;
            let leader = view.state(meta, partition).leader;
            gauges.offline_partitions += u64::from(leader == crate::metadata::records::NO_LEADER);
        }
    }
    for broker in &view.registered {
        match broker.fenced {
            true => gauges.brokers_fenced += 1,
            false => gauges.brokers_active += 1,
        }
    }
    gauges
}

/// `/v1/status/ready`: a broker serves once its registration is in the
/// view, unfenced, and of this incarnation (it caught up with the
/// metadata log); a pure controller once its quorum knows a leader.
pub fn ready(shard: &Shard, view: &ClusterView) -> bool {
    if shard.config.cluster.pure_controller() {
        return view.controller_node_id >= 0;
    }
    let unfenced = view
        .registered
        .iter()
        .any(|broker| broker.id == view.node_id && !broker.fenced);
    unfenced && shard.replication.holds_own_registration(view)
}

/// The groups this shard's coordinator keeps, with their committed
/// offsets when `series` (the lag's other half is the partitions' high
/// watermarks, `metrics::export`).
fn groups(shard: &Shard, series: bool) -> Vec<GroupMetrics> {
    shard
        .groups
        .gauges()
        .into_iter()
        .map(|gauge| GroupMetrics {
            group: gauge.group_id,
            state: gauge.state.as_str(),
            members: gauge.members as u64,
            offsets: match series {
                true => gauge.offsets,
                false => Vec::new(),
            },
        })
        .collect()
}
