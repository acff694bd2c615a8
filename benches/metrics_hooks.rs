//! What the metrics cost a request: the hooks a produce request runs on
//! its shard (`RequestTimer::start` when its frame arrives, `produced` per
//! partition appended, `RequestTimer::done` with its latency into the
//! API's histogram), with recording on (the default) and off
//! (`metrics.enabled=false`: each hook returns at its first check).
//! perf/RESULTS.md turns the difference into a share of the broker's CPU
//! per produce request at W1.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use shoal::metrics::{self, RequestTimer};

/// The first bytes of a Produce v9 request header: API key 0, version 9,
/// correlation id; the hook reads only the key and the version.
const PRODUCE_HEADER: [u8; 8] = [0, 0, 0, 9, 0, 0, 0, 1];
/// Partitions one W1 produce request appends to (perf/run's W1 topic).
const PARTITIONS: usize = 8;

fn one_request(frame: &[u8]) {
    let timer = RequestTimer::start(black_box(frame));
    for _ in 0..PARTITIONS {
        metrics::produced(black_box(16_384), black_box(160));
    }
    if let Some(timer) = timer {
        timer.done();
    }
}

fn hooks(c: &mut Criterion) {
    let mut group = c.benchmark_group("produce_request_hooks");
    for (name, on) in [("metrics_on", true), ("metrics_off", false)] {
        metrics::enable(on);
        group.bench_function(name, |b| b.iter(|| one_request(&PRODUCE_HEADER)));
    }
    group.finish();
}

criterion_group!(benches, hooks);
criterion_main!(benches);
