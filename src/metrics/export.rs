//! The Prometheus text exposition format, version 0.0.4: `# HELP` and
//! `# TYPE` once per family, then its samples together; histograms as
//! cumulative `_bucket{le=...}` series with fixed bounds, `_sum` and
//! `_count`. `render` writes the broker's metrics (names, and the Kafka
//! JMX names they stand for, in docs/operations.md).
//!
//! Invariant: every family is written whole, at one place, so no family
//! is split (the format forbids it); label values are escaped.

use std::fmt::{Display, Write};

use hdrhistogram::Histogram;
use kafka_protocol::messages::ApiKey;

use super::snapshot::{group_lag, BrokerMetrics, ShardGauges};
use super::Counters;

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Bucket bounds of every duration histogram, in microseconds: 100 µs to
/// 10 s in 1-2.5-5 steps (Kafka's request times run from under a
/// millisecond to a long poll's `fetch.max.wait.ms`).
pub const DURATION_BOUNDS_US: &[u64] = &[
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];
/// Bucket bounds of the group-commit size histogram, in bytes: 1 KiB to
/// 64 MiB in powers of four.
pub const GROUP_BYTES_BOUNDS: &[u64] = &[
    1 << 10,
    1 << 12,
    1 << 14,
    1 << 16,
    1 << 18,
    1 << 20,
    1 << 22,
    1 << 24,
    1 << 26,
];
/// Bucket bounds of the group-commit batch-count histogram.
pub const GROUP_BATCHES_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 1024];
/// Microseconds in a second: durations are exported in seconds.
const MICROS_PER_SECOND: f64 = 1e6;

/// A family's Prometheus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A text exposition being written.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// Starts a family: its help and type lines.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.name());
    }

    /// One sample of the family last started.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.text.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.text, " {value}");
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.text.push('{');
        let all = labels.iter().copied().chain(le.map(|le| ("le", le)));
        for (index, (name, value)) in all.enumerate() {
            if index > 0 {
                self.text.push(',');
            }
            self.text.push_str(name);
            self.text.push_str("=\"");
            escape_label_value(&mut self.text, value);
            self.text.push('"');
        }
        self.text.push('}');
    }

    /// A histogram's samples: a cumulative bucket per bound in `bounds`
    /// (values recorded in the histogram's unit, shown divided by
    /// `per_unit`), `+Inf`, `_sum` and `_count`. A value counts in the
    /// first bucket whose bound is at least the lowest value hdrhistogram
    /// holds equivalent to it (1% precision); `_sum` adds each value's
    /// middle equivalent, so it is as precise.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        histogram: &Histogram<u64>,
        bounds: &[u64],
        per_unit: f64,
    ) {
        let mut counts = vec![0u64; bounds.len()];
        let mut sum = 0f64;
        for step in histogram.iter_recorded() {
            let value = histogram.lowest_equivalent(step.value_iterated_to());
            let count = step.count_at_value();
            sum += histogram.median_equivalent(value) as f64 * count as f64;
            if let Some(bucket) = bounds.iter().position(|&bound| value <= bound) {
                counts[bucket] += count;
            }
        }
        let bucket_name = format!("{name}_bucket");
        let mut cumulative = 0;
        for (bound, count) in bounds.iter().zip(counts) {
            cumulative += count;
            let le = (*bound as f64 / per_unit).to_string();
            self.text.push_str(&bucket_name);
            self.labels(labels, Some(&le));
            let _ = writeln!(self.text, " {cumulative}");
        }
        self.text.push_str(&bucket_name);
        self.labels(labels, Some("+Inf"));
        let _ = writeln!(self.text, " {}", histogram.len());
        self.sample(&format!("{name}_sum"), labels, sum / per_unit);
        self.sample(&format!("{name}_count"), labels, histogram.len());
    }

    pub fn finish(self) -> String {
        self.text
    }
}

/// Escapes a label value as the format asks: backslash, double quote and
/// line feed.
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A per-shard counter family: name, help, and how to read it.
type ShardCounter = (&'static str, &'static str, fn(&Counters) -> u64);

const SHARD_COUNTERS: &[ShardCounter] = &[
    (
        "shoal_bytes_in_total",
        "Record batch bytes appended from produce requests.",
        |c| c.bytes_in,
    ),
    (
        "shoal_records_in_total",
        "Records appended from produce requests.",
        |c| c.records_in,
    ),
    (
        "shoal_network_received_bytes_total",
        "Request bytes read from clients.",
        |c| c.network_received_bytes,
    ),
    (
        "shoal_network_sent_bytes_total",
        "Response bytes written to clients.",
        |c| c.network_sent_bytes,
    ),
    (
        "shoal_connections_opened_total",
        "Client connections accepted.",
        |c| c.connections_opened,
    ),
    (
        "shoal_connections_closed_total",
        "Client connections closed.",
        |c| c.connections_closed,
    ),
    (
        "shoal_cross_shard_calls_total",
        "Calls this shard sent to other shards.",
        |c| c.cross_shard_calls,
    ),
    (
        "shoal_isr_shrinks_total",
        "ISR shrinks of partitions led here, as committed.",
        |c| c.isr_shrinks,
    ),
    (
        "shoal_isr_expands_total",
        "ISR expansions of partitions led here, as committed.",
        |c| c.isr_expands,
    ),
    (
        "shoal_log_retention_deleted_segments_total",
        "Segments deleted by retention.",
        |c| c.retention_deleted_segments,
    ),
    (
        "shoal_log_cleaner_passes_total",
        "Cleaning passes of compacted logs.",
        |c| c.cleaner_passes,
    ),
    (
        "shoal_log_cleaner_read_bytes_total",
        "Segment bytes the cleaner read.",
        |c| c.cleaner_read_bytes,
    ),
    (
        "shoal_log_cleaner_written_bytes_total",
        "Segment bytes the cleaner wrote.",
        |c| c.cleaner_written_bytes,
    ),
    (
        "shoal_log_cleaner_removed_records_total",
        "Records the cleaner removed.",
        |c| c.cleaner_removed_records,
    ),
    (
        "shoal_io_file_reads_total",
        "File reads through the shard's io_uring rings.",
        |c| c.io_file_reads,
    ),
    (
        "shoal_io_file_read_bytes_total",
        "Bytes of those reads.",
        |c| c.io_file_read_bytes,
    ),
    (
        "shoal_io_file_writes_total",
        "File writes through the shard's io_uring rings.",
        |c| c.io_file_writes,
    ),
    (
        "shoal_io_file_written_bytes_total",
        "Bytes of those writes.",
        |c| c.io_file_written_bytes,
    ),
    (
        "shoal_shard_tasks_total",
        "Tasks the shard's executor ran.",
        |c| c.tasks_executed,
    ),
];

/// A per-shard gauge family: name, help, and how to read it.
type ShardGauge = (
    &'static str,
    &'static str,
    fn(&Counters, &ShardGauges) -> u64,
);

const SHARD_GAUGES: &[ShardGauge] = &[
    ("shoal_connections", "Client connections open.", |c, _| {
        c.connections_opened.saturating_sub(c.connections_closed)
    }),
    (
        "shoal_requests_in_flight",
        "Client requests being handled.",
        |_, g| g.requests_in_flight,
    ),
    (
        "shoal_partitions",
        "Partition replicas with a log open here.",
        |_, g| g.partitions,
    ),
    (
        "shoal_leader_partitions",
        "Partitions this node leads.",
        |_, g| g.leaders,
    ),
    (
        "shoal_under_replicated_partitions",
        "Led partitions with ISR below replicas.",
        |_, g| g.under_replicated,
    ),
    (
        "shoal_under_min_isr_partitions",
        "Led partitions with ISR below min.insync.replicas.",
        |_, g| g.under_min_isr,
    ),
    (
        "shoal_log_size_bytes",
        "Bytes of every partition log open here.",
        |_, g| g.log_bytes,
    ),
    (
        "shoal_log_cleaner_max_dirty_percent",
        "Largest dirty share of a compacted log.",
        |_, g| g.cleaner_max_dirty_percent,
    ),
];

/// Writes `metrics` in the text format.
pub fn render(metrics: &BrokerMetrics) -> String {
    let mut out = Exposition::default();
    render_cluster(&mut out, metrics);
    render_requests(&mut out, metrics);
    render_shards(&mut out, metrics);
    render_log_histograms(&mut out, metrics);
    render_partitions(&mut out, metrics);
    render_groups(&mut out, metrics);
    out.finish()
}

fn render_cluster(out: &mut Exposition, metrics: &BrokerMetrics) {
    let cluster = &metrics.cluster;
    let gauges: [(&str, &str, u64); 7] = [
        (
            "shoal_ready",
            "1 when /v1/status/ready answers 200.",
            u64::from(cluster.ready),
        ),
        (
            "shoal_active_controller",
            "1 when this node leads the metadata quorum.",
            { u64::from(cluster.active_controller) },
        ),
        (
            "shoal_global_topics",
            "Topics in the cluster.",
            cluster.topics,
        ),
        (
            "shoal_global_partitions",
            "Partitions in the cluster.",
            cluster.partitions,
        ),
        (
            "shoal_offline_partitions",
            "Partitions with no leader.",
            cluster.offline_partitions,
        ),
        (
            "shoal_active_brokers",
            "Brokers registered and unfenced.",
            cluster.brokers_active,
        ),
        (
            "shoal_fenced_brokers",
            "Brokers registered and fenced.",
            cluster.brokers_fenced,
        ),
    ];
    for (name, help, value) in gauges {
        out.family(name, Kind::Gauge, help);
        out.sample(name, &[], value);
    }
}

fn render_requests(out: &mut Exposition, metrics: &BrokerMetrics) {
    let name = "shoal_requests_total";
    out.family(
        name,
        Kind::Counter,
        "Requests answered, by API and version.",
    );
    for (&(key, version), count) in &metrics.requests {
        let Some(api) = api_name(key) else {
            continue;
        };
        let version = version.to_string();
        out.sample(
            name,
            &[("api", api.as_str()), ("version", version.as_str())],
            count,
        );
    }
    let name = "shoal_request_latency_seconds";
    out.family(
        name,
        Kind::Histogram,
        "Time from a request's arrival to its answer, by API.",
    );
    for (&key, histogram) in &metrics.latency_us {
        let Some(api) = api_name(key) else {
            continue;
        };
        let labels = [("api", api.as_str())];
        out.histogram(
            name,
            &labels,
            histogram,
            DURATION_BOUNDS_US,
            MICROS_PER_SECOND,
        );
    }
}

/// Kafka's name of API `key` (`Produce`, `Fetch`), as its JMX `request`
/// tag shows it; `None` for a key Kafka does not have.
fn api_name(key: i16) -> Option<String> {
    ApiKey::try_from(key).ok().map(|api| format!("{api:?}"))
}

fn render_shards(out: &mut Exposition, metrics: &BrokerMetrics) {
    let shard_ids: Vec<String> = metrics
        .shards
        .iter()
        .map(|(id, ..)| id.to_string())
        .collect();
    for &(name, help, read) in SHARD_COUNTERS {
        out.family(name, Kind::Counter, help);
        for ((_, counters, _), shard) in metrics.shards.iter().zip(&shard_ids) {
            out.sample(name, &[("shard", shard.as_str())], read(counters));
        }
    }
    let name = "shoal_reactor_stalls_total";
    out.family(
        name,
        Kind::Counter,
        "Reactor stalls over the budget, busy or preempted.",
    );
    for ((_, counters, _), shard) in metrics.shards.iter().zip(&shard_ids) {
        out.sample(
            name,
            &[("shard", shard.as_str()), ("kind", "busy")],
            counters.stalls_busy,
        );
        out.sample(
            name,
            &[("shard", shard.as_str()), ("kind", "preempted")],
            counters.stalls_preempted,
        );
    }
    let name = "shoal_reactor_stall_seconds_total";
    out.family(
        name,
        Kind::Counter,
        "Time in reactor stalls over the budget.",
    );
    for ((_, counters, _), shard) in metrics.shards.iter().zip(&shard_ids) {
        out.sample(
            name,
            &[("shard", shard.as_str())],
            counters.stall_ms as f64 / 1e3,
        );
    }
    let name = "shoal_partition_parts_total";
    out.family(
        name,
        Kind::Counter,
        "Produce and fetch partition parts, run here or forwarded.",
    );
    for ((_, c, _), shard) in metrics.shards.iter().zip(&shard_ids) {
        let parts = [
            ("produce", "local", c.produce_parts_local),
            ("produce", "forwarded", c.produce_parts_forwarded),
            ("fetch", "local", c.fetch_parts_local),
            ("fetch", "forwarded", c.fetch_parts_forwarded),
        ];
        for (api, route, count) in parts {
            out.sample(
                name,
                &[("shard", shard.as_str()), ("api", api), ("route", route)],
                count,
            );
        }
    }
    let name = "shoal_shard_busy_seconds_total";
    out.family(name, Kind::Counter, "Time the shard's executor ran tasks.");
    for ((_, counters, _), shard) in metrics.shards.iter().zip(&shard_ids) {
        out.sample(
            name,
            &[("shard", shard.as_str())],
            counters.busy_us as f64 / MICROS_PER_SECOND,
        );
    }
    for &(name, help, read) in SHARD_GAUGES {
        out.family(name, Kind::Gauge, help);
        for ((_, counters, gauges), shard) in metrics.shards.iter().zip(&shard_ids) {
            out.sample(name, &[("shard", shard.as_str())], read(counters, gauges));
        }
    }
}

fn render_log_histograms(out: &mut Exposition, metrics: &BrokerMetrics) {
    let histograms = [
        (
            "shoal_log_flush_seconds",
            "Time of each segment flush: an fdatasync, or a durable O_DSYNC write.",
            &metrics.fsync_us,
            DURATION_BOUNDS_US,
            MICROS_PER_SECOND,
        ),
        (
            "shoal_log_group_commit_bytes",
            "Bytes of each group the group-commit writer wrote.",
            &metrics.group_commit_bytes,
            GROUP_BYTES_BOUNDS,
            1.0,
        ),
        (
            "shoal_log_group_commit_batches",
            "Appends of each group the group-commit writer wrote.",
            &metrics.group_commit_batches,
            GROUP_BATCHES_BOUNDS,
            1.0,
        ),
    ];
    for (name, help, histogram, bounds, per_unit) in histograms {
        out.family(name, Kind::Histogram, help);
        if let Some(histogram) = histogram {
            out.histogram(name, &[], histogram, bounds, per_unit);
        }
    }
}

/// A per-partition gauge family: name, help, and how to read it.
type PartitionGauge = (
    &'static str,
    &'static str,
    fn(&super::PartitionMetrics) -> i64,
);

const PARTITION_GAUGES: &[PartitionGauge] = &[
    (
        "shoal_partition_log_start_offset",
        "The log start offset.",
        |p| p.log_start_offset,
    ),
    (
        "shoal_partition_log_end_offset",
        "The log end offset.",
        |p| p.log_end_offset,
    ),
    (
        "shoal_partition_high_watermark",
        "The high watermark.",
        |p| p.high_watermark,
    ),
    (
        "shoal_partition_size_bytes",
        "Bytes of the partition's segments.",
        |p| i64::try_from(p.size_bytes).unwrap_or(i64::MAX),
    ),
    (
        "shoal_partition_segments",
        "Segments of the partition's log.",
        |p| i64::try_from(p.segments).unwrap_or(i64::MAX),
    ),
    (
        "shoal_partition_leader",
        "1 when this node leads the partition.",
        |p| i64::from(p.leader),
    ),
    (
        "shoal_partition_under_replicated",
        "1 when led here with ISR below replicas.",
        |p| i64::from(p.under_replicated),
    ),
];

fn render_partitions(out: &mut Exposition, metrics: &BrokerMetrics) {
    if metrics.partitions.is_empty() {
        return;
    }
    let indexes: Vec<String> = metrics
        .partitions
        .iter()
        .map(|p| p.partition.to_string())
        .collect();
    for &(name, help, read) in PARTITION_GAUGES {
        out.family(name, Kind::Gauge, help);
        for (partition, index) in metrics.partitions.iter().zip(&indexes) {
            let labels = [("topic", &*partition.topic), ("partition", index.as_str())];
            out.sample(name, &labels, read(partition));
        }
    }
}

fn render_groups(out: &mut Exposition, metrics: &BrokerMetrics) {
    let name = "shoal_group_members";
    out.family(
        name,
        Kind::Gauge,
        "Members of each consumer group this node coordinates.",
    );
    for group in &metrics.groups {
        out.sample(name, &[("group", group.group.as_str())], group.members);
    }
    let name = "shoal_group_state";
    out.family(
        name,
        Kind::Gauge,
        "1 for each consumer group's current state.",
    );
    for group in &metrics.groups {
        out.sample(
            name,
            &[("group", group.group.as_str()), ("state", group.state)],
            1,
        );
    }
    if metrics.groups.iter().all(|group| group.offsets.is_empty()) {
        return;
    }
    let name = "shoal_group_committed_offset";
    out.family(
        name,
        Kind::Gauge,
        "Each consumer group's committed offset, by partition.",
    );
    for group in &metrics.groups {
        for (topic, partition, offset) in &group.offsets {
            let partition = partition.to_string();
            let labels = [
                ("group", group.group.as_str()),
                ("topic", topic.as_str()),
                ("partition", partition.as_str()),
            ];
            out.sample(name, &labels, offset);
        }
    }
    // The lag where this node knows the high watermark: partitions it
    // leads, and those whose leader answered the admin task's last ask.
    let high_watermarks = metrics.high_watermarks();
    let name = "shoal_group_lag";
    out.family(
        name,
        Kind::Gauge,
        "Records from a group's committed offset to the high watermark.",
    );
    for group in &metrics.groups {
        for (topic, partition, offset) in &group.offsets {
            let Some(high_watermark) = high_watermarks.get(&(topic.as_str(), *partition)) else {
                continue;
            };
            let index = partition.to_string();
            let labels = [
                ("group", group.group.as_str()),
                ("topic", topic.as_str()),
                ("partition", index.as_str()),
            ];
            out.sample(name, &labels, group_lag(*high_watermark, *offset));
        }
    }
}
