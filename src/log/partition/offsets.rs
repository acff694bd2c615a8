//! The offsets of a partition log.
//!
//! Invariant: `log_start <= log_end`, `written <= log_end`, `sealed <=
//! written` (each segment below `sealed` is sealed and synced). `log_end`
//! and `written` only grow, except when the writer gives an unwritten tail
//! up (`give_up`): then both go back to where the files are intact.

use std::cell::Cell;

pub(super) struct Offsets {
    pub(super) log_start: Cell<i64>,
    /// The next offset to assign.
    pub(super) log_end: Cell<i64>,
    /// One past the last offset in the segment files.
    pub(super) written: Cell<i64>,
    /// Every segment below this offset is sealed and synced (recovery point).
    pub(super) sealed: Cell<i64>,
}
