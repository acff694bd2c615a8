//! Reactor stall detection. Each shard's executor yields to its reactor
//! (which polls io_uring) at least every `PREEMPT_TIMER_MS` while it has
//! work queued. A task that keeps the reactor from polling for longer than
//! `STALL_BUDGET_MS` delays every connection and partition of the shard;
//! glommio's stall detector then logs a warning naming the executor, the
//! overage and the backtrace of the task that caused it
//! (`[stall-detector -- executor N] task queue ... went over-budget`). The
//! perf harness counts those lines per workload.
//!
//! glommio does not export the type its `stall` callback receives, so the
//! reporting is glommio's own log line; this handler sets the budget.

use std::time::Duration;

use glommio::{StallDetectionHandler, TaskQueueHandle};

/// How long a task queue runs before glommio asks it to yield (glommio's
/// default is 100 ms, too coarse to see a 10 ms stall).
pub const PREEMPT_TIMER_MS: u64 = 5;
/// The longest the reactor may go without polling before it is a stall.
pub const STALL_BUDGET_MS: u64 = 10;

/// Reports a task queue that runs `STALL_BUDGET_MS` without yielding.
#[derive(Debug)]
pub struct StallBudget;

impl StallDetectionHandler for StallBudget {
    /// Past the preemption point, what is left of the budget.
    fn threshold(
        &self,
        _queue: TaskQueueHandle,
        max_expected_runtime: Duration,
    ) -> Option<Duration> {
        Some(Duration::from_millis(STALL_BUDGET_MS).saturating_sub(max_expected_runtime))
    }
}
