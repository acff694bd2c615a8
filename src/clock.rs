//! The broker's one wall clock.
//!
//! Architecture invariant: every layer (log, server, shard, CLI, bench) takes
//! its wall-clock milliseconds from here, so a future simulated clock has one
//! thing to replace. Depends on nothing in the crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
