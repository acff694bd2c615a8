//! A task that blocks its shard's reactor past the stall budget is reported
//! by glommio's stall detector with the shard executor settings shoal uses
//! (`shard::stall`), and a shard that only does short work reports nothing.

use std::sync::Mutex;
use std::time::Duration;

use shoal::shard::stall::{StallBudget, PREEMPT_TIMER_MS, STALL_BUDGET_MS};

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

fn stall_lines() -> usize {
    WARNINGS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|line| line.contains("stall-detector"))
        .count()
}

fn run_on_shard_executor(block_ms: u64) {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(shoal::shard::SHARD_IO_MEMORY_BYTES)
        .preempt_timer(Duration::from_millis(PREEMPT_TIMER_MS))
        .detect_stalls(Some(Box::new(StallBudget)))
        .spawn(move || async move {
            for _ in 0..20 {
                // Blocking on purpose: this is the stall being detected.
                std::thread::sleep(Duration::from_millis(block_ms));
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
    log::set_logger(&Capture).expect("logger");
    log::set_max_level(log::LevelFilter::Warn);

    run_on_shard_executor(1);
    // One report is tolerated: on a loaded machine the OS alone can hold
    // the thread off its core for 10 ms.
    let false_reports = stall_lines();
    assert!(
        false_reports <= 1,
        "{false_reports} short tasks reported as stalls"
    );

    run_on_shard_executor(STALL_BUDGET_MS * 3);
    assert!(
        stall_lines() > false_reports,
        "a {} ms block went unreported",
        STALL_BUDGET_MS * 3
    );
}
