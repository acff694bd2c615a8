//! Reactor stall detection, without signals. Each shard's executor yields
//! to its reactor (which polls io_uring) at least every `PREEMPT_TIMER_MS`
//! while it has work queued. A task that keeps the reactor from polling for
//! longer than `STALL_BUDGET_MS` delays every connection and partition of
//! the shard.
//!
//! A watchdog task on each shard sleeps `WATCH_INTERVAL_MS` at a time and
//! measures how late its timer fired. glommio fires timers when its reactor
//! polls, so a timer late by `STALL_BUDGET_MS` or more means the reactor
//! went that long without polling: one warning, `reactor stall (busy)` when
//! the shard's thread was on a CPU for most of the window (a task did not
//! yield), `reactor stall (preempted)` when it was not (the OS or the
//! hypervisor gave the core to something else). The perf harness counts
//! those lines per workload. A gap of `WATCH_INTERVAL_MS + STALL_BUDGET_MS`
//! or more is always seen; a shorter one over the budget when it spans a tick.
//!
//! Why not glommio's own detector: it takes a backtrace in a signal handler
//! on the shard's thread, at any point of the shard's code, and brokers
//! flooded with garbage (tests/integration/test_garbage_flood.py, 60 s)
//! died of heap corruption (`double free or corruption`) with it and never
//! without it. Its reports were also 60 lines each.
//!
//! Invariant: costs one timer per `WATCH_INTERVAL_MS` per shard and two
//! clock reads per tick; nothing runs in a signal handler.

use std::time::{Duration, Instant};

/// How long a task queue runs before glommio asks it to yield (glommio's
/// default is 100 ms, too coarse to see a 10 ms stall).
pub const PREEMPT_TIMER_MS: u64 = 5;
/// The longest the reactor may go without polling before it is a stall.
pub const STALL_BUDGET_MS: u64 = 10;
/// The watchdog's tick: half the budget, so that a stall of about the
/// budget is seen, at 200 timer wake-ups a second per shard.
pub const WATCH_INTERVAL_MS: u64 = STALL_BUDGET_MS / 2;
/// Scheduler shares of the watchdog's task queue (the default queue has
/// 1000): it runs for microseconds per tick, so its due ticks go first.
const WATCHDOG_SHARES: usize = 1000;

/// CPU time this thread has used (zero if the clock cannot be read).
pub fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the struct we pass.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// A watchdog window in which the reactor stalled: `wall` time from the
/// tick's start to its late wake-up, `on_cpu` of it on a CPU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StalledRun {
    pub wall: Duration,
    pub on_cpu: Duration,
}

impl StalledRun {
    /// The window of a tick that fired `late` past its due time, if that is
    /// a stall.
    fn of_tick(interval: Duration, wall: Duration, on_cpu: Duration) -> Option<StalledRun> {
        let late = wall.checked_sub(interval)?;
        (late >= Duration::from_millis(STALL_BUDGET_MS)).then_some(StalledRun { wall, on_cpu })
    }

    /// The thread was on a CPU for most of the window: a task did not
    /// yield. Otherwise the OS (or the hypervisor) gave the core to
    /// something else for more than half of it, and the tasks may have
    /// been short.
    pub fn busy(&self) -> bool {
        self.wall >= Duration::from_millis(STALL_BUDGET_MS) && self.on_cpu * 2 >= self.wall
    }
}

impl std::fmt::Display for StalledRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.busy() { "busy" } else { "preempted" };
        write!(
            f,
            "reactor stall ({kind}): on CPU {:.1} ms of {:.1} ms",
            self.on_cpu.as_secs_f64() * 1e3,
            self.wall.as_secs_f64() * 1e3
        )
    }
}

/// Starts the watchdog of the executor this runs on (a shard's), in a task
/// queue of its own; it runs as long as the executor does.
pub fn spawn_watchdog(shard_id: usize) {
    let queue = glommio::executor().create_task_queue(
        glommio::Shares::Static(WATCHDOG_SHARES),
        glommio::Latency::NotImportant,
        "stall-watchdog",
    );
    let spawned = glommio::spawn_local_into(watch(shard_id), queue);
    match spawned {
        Ok(task) => {
            task.detach();
        }
        Err(error) => log::error!("shard {shard_id}: no stall reports: {error}"),
    }
}

async fn watch(shard_id: usize) {
    let interval = Duration::from_millis(WATCH_INTERVAL_MS);
    loop {
        let (wall_start, cpu_start) = (Instant::now(), thread_cpu_time());
        glommio::timer::sleep(interval).await;
        let wall = wall_start.elapsed();
        let on_cpu = thread_cpu_time().saturating_sub(cpu_start);
        if let Some(run) = StalledRun::of_tick(interval, wall, on_cpu) {
            crate::metrics::stalled(run.busy(), run.wall);
            log::warn!("shard {shard_id}: {run}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_run_is_busy_when_it_held_the_cpu_most_of_the_time() {
        let budget = Duration::from_millis(STALL_BUDGET_MS);
        let held = StalledRun {
            wall: budget,
            on_cpu: budget - MS,
        };
        let preempted = StalledRun {
            wall: budget * 3,
            on_cpu: budget / 2,
        };
        assert!(held.busy());
        assert!(!preempted.busy());
        assert_eq!(
            preempted.to_string(),
            "reactor stall (preempted): on CPU 5.0 ms of 30.0 ms"
        );
    }

    #[test]
    fn a_tick_is_a_stall_when_it_fired_a_budget_late() {
        let interval = Duration::from_millis(WATCH_INTERVAL_MS);
        let budget = Duration::from_millis(STALL_BUDGET_MS);
        assert_eq!(StalledRun::of_tick(interval, interval + MS, MS), None);
        assert_eq!(StalledRun::of_tick(interval, interval - MS, MS), None);
        let late = StalledRun::of_tick(interval, interval + budget, budget).expect("a stall");
        assert!(late.busy());
        let off_cpu = StalledRun::of_tick(interval, interval + budget * 2, MS).expect("a stall");
        assert!(!off_cpu.busy());
    }
}
