use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::export::{self, Exposition, Kind, DURATION_BOUNDS_US};
use super::*;

fn histogram_of(values_us: &[u64]) -> Histogram<u64> {
    let mut histogram =
        Histogram::new_with_bounds(1, DURATION_US_MAX, SIGNIFICANT_DIGITS).expect("bounds");
    for &value in values_us {
        histogram.record(value).expect("in range");
    }
    histogram
}

/// The value of the one line of `text` that starts with `series` and a
/// space.
fn value_of(text: &str, series: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| {
            line.strip_prefix(series)
                .is_some_and(|rest| rest.starts_with(' '))
        })
        .collect();
    assert_eq!(lines.len(), 1, "{series} in:\n{text}");
    lines[0][series.len() + 1..].to_string()
}

#[test]
fn samples_are_written_with_escaped_labels_after_help_and_type() {
    let mut out = Exposition::default();
    out.family("shoal_x_total", Kind::Counter, "An x.\nTwo lines \\ here.");
    out.sample(
        "shoal_x_total",
        &[("topic", "a\"b\\c\nd"), ("partition", "3")],
        7,
    );
    out.sample("shoal_x_total", &[], 1.5);
    assert_eq!(
        out.finish(),
        "# HELP shoal_x_total An x.\\nTwo lines \\\\ here.\n\
         # TYPE shoal_x_total counter\n\
         shoal_x_total{topic=\"a\\\"b\\\\c\\nd\",partition=\"3\"} 7\n\
         shoal_x_total 1.5\n"
    );
}

#[test]
fn a_histogram_is_exported_as_cumulative_buckets_in_seconds() {
    // 90 µs, twice 1 ms, 40 ms, and 20 s (past the last bound).
    let histogram = histogram_of(&[90, 1_000, 1_000, 40_000, 20_000_000]);
    let mut out = Exposition::default();
    out.family("t_seconds", Kind::Histogram, "T.");
    out.histogram(
        "t_seconds",
        &[("api", "Fetch")],
        &histogram,
        DURATION_BOUNDS_US,
        1e6,
    );
    let text = out.finish();
    let bucket = |le: &str| {
        value_of(
            &text,
            &format!("t_seconds_bucket{{api=\"Fetch\",le=\"{le}\"}}"),
        )
    };
    assert_eq!(bucket("0.0001"), "1");
    assert_eq!(bucket("0.00025"), "1");
    assert_eq!(bucket("0.001"), "3");
    assert_eq!(bucket("0.025"), "3");
    assert_eq!(bucket("0.05"), "4");
    assert_eq!(bucket("10"), "4");
    assert_eq!(bucket("+Inf"), "5");
    assert_eq!(value_of(&text, "t_seconds_count{api=\"Fetch\"}"), "5");
    let sum: f64 = value_of(&text, "t_seconds_sum{api=\"Fetch\"}")
        .parse()
        .expect("a number");
    let exact = (90 + 2_000 + 40_000 + 20_000_000) as f64 / 1e6;
    assert!((sum - exact).abs() < exact * 0.01, "{sum} vs {exact}");
    // Buckets never decrease, and every bound of the family is there.
    let buckets: Vec<u64> = text
        .lines()
        .filter(|line| line.starts_with("t_seconds_bucket"))
        .map(|line| {
            line.rsplit(' ')
                .next()
                .expect("value")
                .parse()
                .expect("count")
        })
        .collect();
    assert_eq!(buckets.len(), DURATION_BOUNDS_US.len() + 1);
    assert!(buckets.windows(2).all(|pair| pair[0] <= pair[1]));
}

fn shard_snapshot(shard: usize, produce_requests: u64, latencies_us: &[u64]) -> ShardMetrics {
    ShardMetrics {
        shard,
        counters: Counters {
            bytes_in: 100 * produce_requests,
            connections_opened: 3,
            connections_closed: 1,
            ..Counters::default()
        },
        requests: vec![(0, 9, produce_requests), (18, 3, 1)],
        latency_us: vec![(0, histogram_of(latencies_us))],
        fsync_us: (shard == 0).then(|| histogram_of(&[5_000])),
        partitions: vec![PartitionMetrics {
            topic: Arc::from("t"),
            partition: 1 - shard as i32,
            log_start_offset: 0,
            log_end_offset: 10,
            high_watermark: 10,
            size_bytes: 1000,
            segments: 1,
            leader: true,
            under_replicated: false,
        }],
        ..ShardMetrics::default()
    }
}

#[test]
fn merging_adds_requests_and_histograms_and_keeps_shards_apart() {
    let merged = BrokerMetrics::merge(
        vec![
            shard_snapshot(1, 2, &[300, 400]),
            shard_snapshot(0, 5, &[2_000]),
        ],
        ClusterGauges::default(),
    );
    assert_eq!(merged.requests[&(0, 9)], 7);
    assert_eq!(merged.requests[&(18, 3)], 2);
    assert_eq!(merged.latency_us[&0].len(), 3);
    assert_eq!(merged.fsync_us.as_ref().map(Histogram::len), Some(1));
    let shards: Vec<usize> = merged.shards.iter().map(|(id, ..)| *id).collect();
    assert_eq!(shards, vec![0usize, 1]);
    assert_eq!(merged.total().bytes_in, 700);
    let partitions: Vec<i32> = merged.partitions.iter().map(|p| p.partition).collect();
    assert_eq!(partitions, vec![0i32, 1]);

    let text = export::render(&merged);
    assert_eq!(
        value_of(&text, "shoal_requests_total{api=\"Produce\",version=\"9\"}"),
        "7"
    );
    assert_eq!(
        value_of(
            &text,
            "shoal_request_latency_seconds_count{api=\"Produce\"}"
        ),
        "3"
    );
    assert_eq!(value_of(&text, "shoal_bytes_in_total{shard=\"1\"}"), "200");
    assert_eq!(value_of(&text, "shoal_connections{shard=\"0\"}"), "2");
    assert_eq!(
        value_of(
            &text,
            "shoal_partition_log_end_offset{topic=\"t\",partition=\"0\"}"
        ),
        "10"
    );
    assert_eq!(value_of(&text, "shoal_log_flush_seconds_count"), "1");
    assert_each_family_is_whole(&text);
}

#[test]
fn group_lag_is_exported_where_the_high_watermark_is_known_here_or_from_its_leader() {
    let mut merged = BrokerMetrics::merge(
        vec![ShardMetrics {
            groups: vec![GroupMetrics {
                group: "g".into(),
                state: "Empty",
                members: 0,
                offsets: vec![
                    ("t".into(), 0, 4),
                    ("t".into(), 1, 3),
                    ("t".into(), 2, 12),
                    ("u".into(), 0, 1),
                ],
            }],
            ..shard_snapshot(0, 1, &[])
        }],
        ClusterGauges::default(),
    );
    // Partition 1 is led here (high watermark 10); 0 and 2 elsewhere, and
    // their leader answered; u-0's leader did not.
    merged.led_elsewhere.insert((Arc::from("t"), 0), 7);
    merged.led_elsewhere.insert((Arc::from("t"), 2), 11);
    let text = export::render(&merged);
    let lag = |partition: &str| {
        value_of(
            &text,
            &format!("shoal_group_lag{{group=\"g\",topic=\"t\",partition=\"{partition}\"}}"),
        )
    };
    assert_eq!([lag("0"), lag("1"), lag("2")], ["3", "7", "0"]);
    assert!(!text.contains("shoal_group_lag{group=\"g\",topic=\"u\""));
    assert_each_family_is_whole(&text);
}

/// Every sample follows its own family's `# TYPE` line, and no family is
/// declared twice.
fn assert_each_family_is_whole(text: &str) {
    let mut declared = std::collections::BTreeSet::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            current = rest.split(' ').next().expect("a name").to_string();
            assert!(declared.insert(current.clone()), "{current} declared twice");
        } else if !line.starts_with('#') {
            let series = line.split(['{', ' ']).next().expect("a name");
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| series.strip_suffix(suffix).filter(|f| *f == current))
                .unwrap_or(series);
            assert_eq!(family, current, "{line}");
        }
    }
}

#[test]
fn a_recorder_counts_only_once_enabled_and_snapshots_what_it_counted() {
    // A thread of its own: the recorder is the thread's.
    std::thread::spawn(|| {
        let produce_v9 = [0u8, 0, 0, 9, 0, 0, 0, 1];
        assert!(RequestTimer::start(&produce_v9).is_none());
        produced(10, 1);
        enable(true);
        let timer = RequestTimer::start(&produce_v9).expect("recording");
        timer.done();
        assert!(RequestTimer::start(&[0, 0]).is_none(), "no version");
        assert!(
            RequestTimer::start(&[0x7f, 0, 0, 1]).is_none(),
            "key out of range"
        );
        produced(100, 4);
        let open = OpenConnection::open();
        stalled(true, Duration::from_millis(30));
        fsynced(Duration::from_micros(700));
        group_committed(3, 4096);
        let snapshot = snapshot(2);
        drop(open);
        assert_eq!(snapshot.shard, 2);
        assert_eq!(snapshot.requests, vec![(0i16, 9i16, 1u64)]);
        assert_eq!(snapshot.latency_us.len(), 1);
        assert_eq!(snapshot.counters.bytes_in, 100);
        assert_eq!(snapshot.counters.records_in, 4);
        assert_eq!(snapshot.counters.network_received_bytes, 8 + 2 + 4);
        assert_eq!(snapshot.counters.connections_opened, 1);
        assert_eq!(snapshot.counters.connections_closed, 0);
        assert_eq!(snapshot.counters.stalls_busy, 1);
        assert_eq!(snapshot.counters.stall_ms, 30);
        assert_eq!(snapshot.fsync_us.map(|h| h.len()), Some(1));
        assert_eq!(snapshot.group_commit_batches.map(|h| h.max()), Some(3));
        assert_eq!(super::snapshot(2).counters.connections_closed, 1);
    })
    .join()
    .expect("recording thread");
}
