//! `shoal bench e2e`: producers at `--rate` and consumers in one process.
//! Each record's value starts with the instant it was due to be sent
//! ([`super::stamp`]), so its latency — arrival at a consumer minus that
//! instant — includes any time it waited to be sent.
//!
//! Invariant: the consumers start at the log end offsets read before the
//! first record is produced, so they count exactly this run's records, and
//! the run ends when every acknowledged record has arrived (or nothing has
//! for [`consume::IDLE_TIMEOUT`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::anyhow;

use super::consume::{self, Timing};
use super::meter::{Meter, Progress};
use super::{join_all, offsets, prepare_topic, produce, BenchArgs, Outcome, LATEST_TIMESTAMP};

pub fn run(args: &BenchArgs) -> anyhow::Result<Outcome> {
    let layout = prepare_topic(args, true)?;
    let starts = offsets(args, &layout, LATEST_TIMESTAMP)?;
    let sent = Meter::new()?;
    let received = Meter::new()?;
    let target = Arc::new(AtomicU64::new(u64::MAX));
    let progress = Progress::start("e2e", received.clone());
    let start = Instant::now();
    let consumers = consume::spawn(
        args,
        &layout,
        &starts,
        Timing::Stamped,
        &target,
        None,
        &received,
    );
    let producers = produce::spawn(args, &layout, true, start, &sent);
    let mut failure = join_all(producers);
    if failure.is_some() {
        received.stop();
    }
    target.store(sent.records(), Ordering::Relaxed);
    if let Some(error) = join_all(consumers) {
        failure.get_or_insert(error);
    }
    let elapsed = start.elapsed();
    drop(progress);
    let mut report = received.report("e2e", &layout.name, elapsed);
    for (name, records) in sent.report("e2e", &layout.name, elapsed).errors {
        *report.errors.entry(name).or_default() += records;
    }
    if failure.is_none() && report.records < sent.records() {
        failure = Some(anyhow!(
            "{} records were acknowledged but only {} arrived; nothing new for {} s",
            sent.records(),
            report.records,
            consume::IDLE_TIMEOUT.as_secs()
        ));
    }
    Ok(Outcome { report, failure })
}
