//! A task that blocks its shard's reactor past the stall budget is reported
//! by the shard's stall watchdog with the executor settings shoal uses
//! (`shard::stall`), a shard that only does short work reports nothing, and
//! the report says whether the task held the CPU (busy) or the thread was off
//! it (preempted).

use std::sync::Mutex;
use std::time::Duration;

use shoal::shard::stall::{spawn_watchdog, thread_cpu_time, PREEMPT_TIMER_MS, STALL_BUDGET_MS};

/// Warnings logged by this test binary.
static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let mut warnings = WARNINGS.lock().unwrap_or_else(|e| e.into_inner());
            warnings.push(record.args().to_string());
        }
    }

    fn flush(&self) {}
}

/// Stall reports logged so far that contain `mark`.
fn stall_lines(mark: &str) -> usize {
    WARNINGS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|line| line.contains("reactor stall") && line.contains(mark))
        .count()
}

/// How a task holds its shard for a while.
#[derive(Clone, Copy)]
enum Block {
    /// Off the CPU, as a thread the OS does not run.
    Sleep,
    /// On the CPU, as a task that does not yield.
    Spin,
}

fn block(how: Block, duration: Duration) {
    match how {
        Block::Sleep => std::thread::sleep(duration),
        Block::Spin => {
            let start = thread_cpu_time();
            while thread_cpu_time().saturating_sub(start) < duration {
                std::hint::spin_loop();
            }
        }
    }
}

fn run_on_shard_executor(how: Block, block_ms: u64) {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(shoal::shard::SHARD_IO_MEMORY_BYTES)
        .preempt_timer(Duration::from_millis(PREEMPT_TIMER_MS))
        .spawn(move || async move {
            spawn_watchdog(0);
            for _ in 0..20 {
                // Blocking on purpose: this is the stall being detected.
                block(how, Duration::from_millis(block_ms));
                glommio::yield_if_needed().await;
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
        })
        .expect("spawn")
        .join()
        .expect("join");
}

#[test]
fn stalls_over_the_budget_are_reported_and_short_work_is_not() {
    log::set_boxed_logger(Box::new(Capture)).expect("logger");
    log::set_max_level(log::LevelFilter::Warn);

    run_on_shard_executor(Block::Spin, 1);
    // One report is tolerated: on a loaded machine the OS alone can hold
    // the thread off its core for 10 ms.
    let false_reports = stall_lines("");
    assert!(
        false_reports <= 1,
        "{false_reports} short tasks reported as stalls"
    );
    let busy_before = stall_lines("reactor stall (busy)");

    run_on_shard_executor(Block::Sleep, STALL_BUDGET_MS * 3);
    let reports = stall_lines("");
    assert!(
        reports > false_reports,
        "a {} ms block went unreported",
        STALL_BUDGET_MS * 3
    );
    assert!(
        stall_lines("reactor stall (preempted)") > 0,
        "a thread off the CPU was not reported as preempted"
    );
    assert_eq!(
        stall_lines("reactor stall (busy)"),
        busy_before,
        "a sleeping thread was reported busy"
    );

    run_on_shard_executor(Block::Spin, STALL_BUDGET_MS * 3);
    assert!(
        stall_lines("reactor stall (busy)") > busy_before,
        "a task spinning {} ms on the CPU was not reported busy",
        STALL_BUDGET_MS * 3
    );
}
