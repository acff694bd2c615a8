//! Where a broker's start is: the node's own step and each shard's, logged
//! every `SLOW_START_REPORT_INTERVAL` while the start goes on past it.
//!
//! Why: a start that recovers many partitions, or waits on a slow disk,
//! otherwise sits silent until "shoal ready". And a start that once sat
//! silent past a test's 20 s in CI (not one log line) left nothing to say
//! which step it waited on.
//!
//! Each step is one relaxed atomic store by the thread taking it; the
//! report thread only reads them, and ends when the start does
//! (`SlowStartReport` dropped).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a start goes before its first report, and between reports.
const SLOW_START_REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// A step of the start, of the node (the thread running `serve`) or of
/// one shard's thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Step {
    /// The shard's thread has not run yet: its glommio executor (rings,
    /// I/O memory) is being built.
    NotStarted = 0,
    CheckingHost,
    OpeningMetadataLog,
    StartingShards,
    StartingQuorum,
    ConnectingShards,
    OpeningPartitions,
    LoadingGroups,
    LoadingTransactions,
    Registering,
    Listening,
}

impl Step {
    const ALL: [Step; 11] = [
        Step::NotStarted,
        Step::CheckingHost,
        Step::OpeningMetadataLog,
        Step::StartingShards,
        Step::StartingQuorum,
        Step::ConnectingShards,
        Step::OpeningPartitions,
        Step::LoadingGroups,
        Step::LoadingTransactions,
        Step::Registering,
        Step::Listening,
    ];

    fn of(value: u8) -> Step {
        Step::ALL
            .get(usize::from(value))
            .copied()
            .unwrap_or(Step::NotStarted)
    }

    fn describe(self) -> &'static str {
        match self {
            Step::NotStarted => "not started (building its executor)",
            Step::CheckingHost => "checking the data directory, io_uring and the ports",
            Step::OpeningMetadataLog => "opening the metadata log",
            Step::StartingShards => "starting the shards",
            Step::StartingQuorum => "starting the metadata quorum",
            Step::ConnectingShards => "connecting to the other shards",
            Step::OpeningPartitions => "opening partitions",
            Step::LoadingGroups => "loading consumer groups",
            Step::LoadingTransactions => "loading transactions",
            Step::Registering => "registering with the controller",
            Step::Listening => "binding its listeners",
        }
    }
}

/// The steps of one start.
pub struct StartProgress {
    node: AtomicU8,
    shards: Box<[AtomicU8]>,
}

impl StartProgress {
    /// A start of `shards` shards, the node at its first step.
    pub fn new(shards: usize) -> Arc<StartProgress> {
        Arc::new(StartProgress {
            node: AtomicU8::new(Step::CheckingHost as u8),
            shards: (0..shards)
                .map(|_| AtomicU8::new(Step::NotStarted as u8))
                .collect(),
        })
    }

    pub fn node(&self, step: Step) {
        self.node.store(step as u8, Ordering::Relaxed);
    }

    fn shard(&self, id: usize, step: Step) {
        if let Some(slot) = self.shards.get(id) {
            slot.store(step as u8, Ordering::Relaxed);
        }
    }

    /// The steps of shard `id`, for its thread.
    pub fn of_shard(self: &Arc<Self>, id: usize) -> ShardSteps {
        ShardSteps {
            id,
            progress: Arc::clone(self),
        }
    }

    /// "node: …; shard 0: …; shard 1: …", the shards once started.
    pub fn describe(&self) -> String {
        let node = Step::of(self.node.load(Ordering::Relaxed));
        let mut text = format!("node: {}", node.describe());
        if node != Step::StartingShards {
            return text;
        }
        for (id, slot) in self.shards.iter().enumerate() {
            let step = Step::of(slot.load(Ordering::Relaxed));
            text.push_str(&format!("; shard {id}: {}", step.describe()));
        }
        text
    }

    /// Logs where the start is every `SLOW_START_REPORT_INTERVAL` until
    /// the returned report is dropped.
    pub fn report_while_slow(self: &Arc<Self>) -> SlowStartReport {
        let (done, wait) = mpsc::channel::<()>();
        let progress = Arc::clone(self);
        let began = Instant::now();
        let thread = std::thread::Builder::new()
            .name("shoal-start-report".to_string())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) =
                    wait.recv_timeout(SLOW_START_REPORT_INTERVAL)
                {
                    log::warn!(
                        "still starting after {} s: {}",
                        began.elapsed().as_secs(),
                        progress.describe()
                    );
                }
            });
        match thread {
            Ok(thread) => SlowStartReport {
                done: Some(done),
                thread: Some(thread),
            },
            Err(error) => {
                log::warn!("no report of a slow start: {error}");
                SlowStartReport {
                    done: None,
                    thread: None,
                }
            }
        }
    }
}

/// One shard's steps, taken on its thread.
pub struct ShardSteps {
    pub id: usize,
    progress: Arc<StartProgress>,
}

impl ShardSteps {
    pub fn step(&self, step: Step) {
        self.progress.shard(self.id, step);
    }
}

/// Ends the reports of a slow start when dropped.
pub struct SlowStartReport {
    done: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for SlowStartReport {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_reads_back_as_itself() {
        for step in Step::ALL {
            assert_eq!(Step::of(step as u8), step);
        }
        assert_eq!(Step::of(u8::MAX), Step::NotStarted);
    }

    #[test]
    fn the_description_names_the_node_and_each_shard() {
        let progress = StartProgress::new(2);
        progress.node(Step::StartingShards);
        progress.shard(1, Step::ConnectingShards);
        progress.shard(7, Step::Listening);
        let before = StartProgress::new(2);
        before.node(Step::OpeningMetadataLog);
        assert_eq!(before.describe(), "node: opening the metadata log");
        assert_eq!(
            progress.describe(),
            "node: starting the shards; shard 0: not started (building its executor); \
             shard 1: connecting to the other shards"
        );
    }
}
