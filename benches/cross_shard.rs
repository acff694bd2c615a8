//! The cost of reaching another shard: what `Shard::call` does when a
//! connection's shard is not a partition's owner. A request goes over the
//! owner's unbounded futures-channel inbox with a oneshot for the answer,
//! between two glommio executors on different cores (where the machine has
//! two), against the same call made inline on one shard.
//!
//! - `round_trip`: one call at a time, the latency a single produce part
//!   pays for the hop;
//! - `pipelined_16`: 16 calls in flight, as a pipelined connection sends
//!   them, per call;
//!
//! each with the executors parking at once when idle and with them spinning
//! 100 µs first (glommio's `spin_before_park`): the hop's cost is mostly the
//! owner's wake-up from its sleep in the kernel.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_channel::{mpsc, oneshot};
use futures_util::StreamExt;

/// Calls in flight in the pipelined case: the broker's per-connection
/// `IN_FLIGHT_REQUESTS_MAX`.
const IN_FLIGHT: u64 = 16;
/// glommio's `spin_before_park`: how long an executor with nothing to do
/// keeps polling before it sleeps in the kernel. Measured without and with.
const SPINS_US: [u64; 2] = [0, 100];

type Envelope = (u64, oneshot::Sender<u64>);

fn executor(core: Option<usize>, spin_us: u64) -> glommio::LocalExecutorBuilder {
    let placement = match core {
        Some(core) => glommio::Placement::Fixed(core),
        None => glommio::Placement::Unbound,
    };
    glommio::LocalExecutorBuilder::new(placement)
        .io_memory(shoal::shard::SHARD_IO_MEMORY_BYTES)
        .spin_before_park(Duration::from_micros(spin_us))
}

/// Runs `iters` calls through an owner shard on another core; returns the
/// time they took on the calling shard.
fn cross_shard(iters: u64, in_flight: u64, spin_us: u64) -> Duration {
    let cores: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|core| core.id)
        .collect();
    let (owner_core, caller_core) = match cores.as_slice() {
        [first, second, ..] => (Some(*first), Some(*second)),
        _ => (None, None),
    };
    let (inbox, mut requests) = mpsc::unbounded::<Envelope>();
    let owner = executor(owner_core, spin_us)
        .spawn(move || async move {
            while let Some((value, reply)) = requests.next().await {
                let _ = reply.send(value + 1);
            }
        })
        .expect("owner shard");
    let caller = executor(caller_core, spin_us)
        .spawn(move || async move {
            let start = Instant::now();
            let mut left = iters;
            while left > 0 {
                let wave = left.min(in_flight);
                let calls = (0..wave).map(|value| {
                    let (reply, answer) = oneshot::channel();
                    inbox.unbounded_send((value, reply)).expect("owner alive");
                    answer
                });
                for answer in futures_util::future::join_all(calls).await {
                    answer.expect("answered");
                }
                left -= wave;
            }
            start.elapsed()
        })
        .expect("caller shard");
    let elapsed = caller.join().expect("caller");
    owner.join().expect("owner");
    elapsed
}

/// The same calls answered inline on the caller's shard.
fn same_shard(iters: u64) -> Duration {
    executor(None, 0)
        .spawn(move || async move {
            let start = Instant::now();
            for value in 0..iters {
                let (reply, answer) = oneshot::channel();
                let _ = reply.send(value + 1);
                answer.await.expect("answered");
            }
            start.elapsed()
        })
        .expect("shard")
        .join()
        .expect("join")
}

fn calls(c: &mut Criterion) {
    let mut group = c.benchmark_group("shard_call");
    group.throughput(Throughput::Elements(1));
    group.bench_function("same_shard", |b| b.iter_custom(same_shard));
    for spin_us in SPINS_US {
        group.bench_function(format!("cross_shard_round_trip/spin_{spin_us}us"), |b| {
            b.iter_custom(|iters| cross_shard(iters, 1, spin_us))
        });
        group.bench_function(format!("cross_shard_pipelined_16/spin_{spin_us}us"), |b| {
            b.iter_custom(|iters| cross_shard(iters, IN_FLIGHT, spin_us))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    targets = calls
}
criterion_main!(benches);
