//! Reactor stall detection. Each shard's executor yields to its reactor
//! (which polls io_uring) at least every `PREEMPT_TIMER_MS` while it has
//! work queued. A task that keeps the reactor from polling for longer than
//! `STALL_BUDGET_MS` delays every connection and partition of the shard;
//! glommio's stall detector then logs a warning naming the executor, the
//! overage and the backtrace of the task that caused it
//! (`[stall-detector -- executor N] task queue ... went over-budget`). The
//! perf harness counts those lines per workload.
//!
//! glommio measures wall time, so a shard thread that the OS took off its
//! core (other processes, the benchmark's own client on a small machine, the
//! hypervisor) is reported too, whatever its task was doing. To tell the two
//! apart, [`StallLogger`] puts in front of each report how long the thread
//! was on a CPU between the start of the run and the moment the budget ran
//! out: `reactor stall (busy)` when it was for most of that time (a task
//! did not yield), `reactor stall (preempted)` when it was not. Both
//! instants are taken on the shard's thread: the start when glommio asks
//! [`StallBudget`] for the threshold, the end in a handler of the signal
//! glommio's detector sends when the budget runs out (glommio resolves the
//! backtrace before it logs, which takes milliseconds: a clock read in the
//! logger would count that too).
//!
//! glommio does not export the type its `stall` callback receives, so the
//! report is glommio's own log line, extended by the logger.
//!
//! Invariant: reporting costs two clock reads per task-queue run and nothing
//! more unless a stall is reported.

use std::cell::Cell;
use std::sync::Once;
use std::time::{Duration, Instant};

use glommio::{StallDetectionHandler, TaskQueueHandle};

/// How long a task queue runs before glommio asks it to yield (glommio's
/// default is 100 ms, too coarse to see a 10 ms stall).
pub const PREEMPT_TIMER_MS: u64 = 5;
/// The longest the reactor may go without polling before it is a stall.
pub const STALL_BUDGET_MS: u64 = 10;
/// The `log` target of glommio's stall reports.
const GLOMMIO_STALL_TARGET: &str = "glommio::executor::stall";

thread_local! {
    /// When the task-queue run now going on in this thread started: wall
    /// clock and the thread's CPU time.
    static RUN_START: Cell<Option<Clocks>> = const { Cell::new(None) };
    /// The same, when the stall detector's signal last reached this thread.
    /// Written by a signal handler: a `const` thread-local without a
    /// destructor is a plain memory access, safe there.
    static BUDGET_OUT: Cell<Option<Clocks>> = const { Cell::new(None) };
}

/// A wall-clock instant and the thread's CPU time then.
type Clocks = (Instant, Duration);

fn now() -> Clocks {
    (Instant::now(), thread_cpu_time())
}

static SIGNAL_HANDLER: Once = Once::new();

/// Reports a task queue that runs `STALL_BUDGET_MS` without yielding.
#[derive(Debug)]
pub struct StallBudget {
    _private: (),
}

impl StallBudget {
    /// The handler for a shard's executor. The first one also installs, for
    /// the whole process, the signal handler that notes when a budget ran
    /// out; it must be made before the executors start (glommio installs
    /// its own handler for the same signal as each one starts).
    pub fn installed() -> StallBudget {
        let budget = StallBudget { _private: () };
        let signal = i32::from(budget.signal());
        SIGNAL_HANDLER.call_once(|| {
            // SAFETY: the action only reads two clocks (clock_gettime is
            // async-signal-safe) and writes a const thread-local.
            let installed = unsafe {
                signal_hook::low_level::register(signal, || {
                    BUDGET_OUT.with(|out| out.set(Some(now())))
                })
            };
            if let Err(error) = installed {
                log::warn!("stall reports will not say whether the shard was busy: {error}");
            }
        });
        budget
    }
}

impl StallDetectionHandler for StallBudget {
    /// Past the preemption point, what is left of the budget. glommio asks
    /// on the executor's thread as each task-queue run starts.
    fn threshold(
        &self,
        _queue: TaskQueueHandle,
        max_expected_runtime: Duration,
    ) -> Option<Duration> {
        RUN_START.with(|start| start.set(Some(now())));
        Some(Duration::from_millis(STALL_BUDGET_MS).saturating_sub(max_expected_runtime))
    }
}

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

/// A stalled run from its start to the moment its budget ran out: `wall`
/// time, `on_cpu` of it on a CPU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StalledRun {
    pub wall: Duration,
    pub on_cpu: Duration,
}

impl StalledRun {
    /// The thread was on a CPU for most of the run: a task did not yield.
    /// Otherwise the OS (or the hypervisor) gave the core to something else
    /// for more than half the budget, and the task may have been short. A
    /// signal that comes before the budget is out was sent late, for an
    /// earlier run, by the detector's thread, which waited for a CPU itself:
    /// the machine was busy with something else, so that is preempted too.
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

/// The run going on in this thread, up to its budget running out: known
/// when the detector's signal came after the run started. Consumed.
fn stalled_run() -> Option<StalledRun> {
    let (wall_start, cpu_start) = RUN_START.with(Cell::get)?;
    let (wall_out, cpu_out) = BUDGET_OUT.with(Cell::take)?;
    Some(StalledRun {
        wall: wall_out.checked_duration_since(wall_start)?,
        on_cpu: cpu_out.saturating_sub(cpu_start),
    })
}

/// The process logger, with each glommio stall report prefixed by what the
/// stalled run was (`StalledRun`). glommio logs the report on the stalled
/// executor's thread as the run ends, which is what makes the prefix right.
pub struct StallLogger<L> {
    inner: L,
}

impl<L: log::Log> StallLogger<L> {
    pub fn new(inner: L) -> Self {
        StallLogger { inner }
    }
}

impl<L: log::Log> log::Log for StallLogger<L> {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &log::Record) {
        let run = (record.target() == GLOMMIO_STALL_TARGET)
            .then(stalled_run)
            .flatten();
        match run {
            Some(run) => self.inner.log(
                &log::Record::builder()
                    .args(format_args!("{run}; {}", record.args()))
                    .metadata(record.metadata().clone())
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .build(),
            ),
            None => self.inner.log(record),
        }
    }

    fn flush(&self) {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_busy_when_it_held_the_cpu_most_of_the_time() {
        let budget = Duration::from_millis(STALL_BUDGET_MS);
        let held = StalledRun {
            wall: budget,
            on_cpu: budget - Duration::from_millis(1),
        };
        let preempted = StalledRun {
            wall: budget * 3,
            on_cpu: budget / 2,
        };
        let late = StalledRun {
            wall: budget / 4,
            on_cpu: budget / 4,
        };
        assert!(held.busy());
        assert!(!preempted.busy());
        assert!(!late.busy());
        assert_eq!(
            preempted.to_string(),
            "reactor stall (preempted): on CPU 5.0 ms of 30.0 ms"
        );
    }

    #[test]
    fn a_stalled_run_counts_cpu_time_up_to_the_signal() {
        let budget = StallBudget::installed();
        budget.threshold(
            TaskQueueHandle::default(),
            Duration::from_millis(PREEMPT_TIMER_MS),
        );
        std::thread::sleep(Duration::from_millis(30));
        // SAFETY: raises the detector's signal on this thread, whose
        // handler `StallBudget::new` installed.
        assert_eq!(unsafe { libc::raise(i32::from(budget.signal())) }, 0);
        let run = stalled_run().expect("a run whose budget ran out");
        assert!(run.wall >= Duration::from_millis(30), "{run:?}");
        assert!(run.on_cpu < Duration::from_millis(15), "{run:?}");
        assert!(!run.busy());
        assert_eq!(stalled_run(), None, "a signal is used for one report");
    }
}
