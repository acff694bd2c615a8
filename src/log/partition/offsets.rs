//! The offsets of a partition log, and the only code that moves them.
//!
//! Invariant: `log_start <= log_end`, `sealed <= written <= log_end`
//! (every segment below `sealed` is sealed and synced). `log_start`,
//! `written` and `sealed` only grow, and `log_end` grows by each append
//! from where the last one ended; the ways back are `give_up_to_written`,
//! after a failed write, which moves `log_end` back to `written` (the
//! files are intact up to there), and `truncated_to` (a follower cutting
//! its tail), which moves both back. Each move asserts its rule: they are O(1),
//! so they run in production too.

use std::cell::Cell;

pub(super) struct Offsets {
    log_start: Cell<i64>,
    /// The next offset to assign.
    log_end: Cell<i64>,
    /// One past the last offset in the segment files.
    written: Cell<i64>,
    /// Every segment below this offset is sealed and synced (recovery point).
    sealed: Cell<i64>,
}

impl Offsets {
    /// The offsets of a log recovered with `log_start..log_end` in its
    /// files, all of them sealed below `sealed` (the active segment's base).
    pub(super) fn recovered(log_start: i64, log_end: i64, sealed: i64) -> Offsets {
        assert!(log_start <= log_end && sealed <= log_end);
        Offsets {
            log_start: Cell::new(log_start),
            log_end: Cell::new(log_end),
            written: Cell::new(log_end),
            sealed: Cell::new(sealed),
        }
    }

    pub(super) fn log_start(&self) -> i64 {
        self.log_start.get()
    }

    pub(super) fn log_end(&self) -> i64 {
        self.log_end.get()
    }

    pub(super) fn written(&self) -> i64 {
        self.written.get()
    }

    pub(super) fn sealed(&self) -> i64 {
        self.sealed.get()
    }

    /// An append took `base..next`: it starts where the last one ended.
    pub(super) fn appended(&self, base: i64, next: i64) {
        assert_eq!(
            base,
            self.log_end.get(),
            "an append must start at the log end"
        );
        assert!(next > base, "an append holds at least one offset");
        self.log_end.set(next);
    }

    /// The writer wrote everything below `offset`.
    pub(super) fn wrote_to(&self, offset: i64) {
        raise(&self.written, offset, self.log_end.get(), "written offset");
    }

    /// Every segment below `offset` is sealed and synced; nothing past
    /// what is written.
    pub(super) fn sealed_to(&self, offset: i64) {
        raise(&self.sealed, offset, self.written.get(), "sealed offset");
    }

    /// The log starts at `offset` now (retention, DeleteRecords): never
    /// back, never past the end.
    pub(super) fn start_at(&self, offset: i64) {
        raise(
            &self.log_start,
            offset,
            self.log_end.get(),
            "log start offset",
        );
    }

    /// After a failed write: the log ends at the written offset again, and
    /// the segment that will hold the next appends (based at `active_base`)
    /// is not sealed. Returns the written offset.
    pub(super) fn give_up_to_written(&self, active_base: i64) -> i64 {
        let to = self.written.get();
        assert!(to <= self.log_end.get() && active_base <= to);
        self.log_end.set(to);
        self.sealed.set(self.sealed.get().min(active_base));
        to
    }

    /// `truncate_to` cut the log at `end` (the writer idle, everything
    /// written): it ends there, and the segment based at `active_base`,
    /// which holds the next appends, is not sealed.
    pub(super) fn truncated_to(&self, end: i64, active_base: i64) {
        assert_eq!(
            self.written.get(),
            self.log_end.get(),
            "truncation with queued writes"
        );
        assert!(
            self.log_start.get() <= end && active_base <= end && end <= self.log_end.get(),
            "truncation to {end} outside [{}, {}]",
            self.log_start.get(),
            self.log_end.get()
        );
        self.log_end.set(end);
        self.written.set(end);
        self.sealed.set(self.sealed.get().min(active_base));
    }

    /// `truncate_fully_and_start_at` dropped every segment (the writer
    /// idle, everything written): the log is empty at `offset`, which is
    /// never below the log start.
    pub(super) fn restarted_at(&self, offset: i64) {
        assert_eq!(
            self.written.get(),
            self.log_end.get(),
            "restart with queued writes"
        );
        assert!(
            offset >= self.log_start.get(),
            "restart at {offset} below the log start {}",
            self.log_start.get()
        );
        for cell in [&self.log_start, &self.log_end, &self.written, &self.sealed] {
            cell.set(offset);
        }
    }
}

/// Moves `offset_cell` up to `offset`: never back, never past `bound`.
fn raise(offset_cell: &Cell<i64>, offset: i64, bound: i64, name: &str) {
    let from = offset_cell.get();
    assert!(
        from <= offset && offset <= bound,
        "{name} {from} -> {offset}: it only grows, up to {bound}"
    );
    offset_cell.set(offset);
}

#[cfg(test)]
mod tests {
    use super::Offsets;

    #[test]
    fn offsets_move_by_their_rules() {
        let offsets = Offsets::recovered(0, 10, 5);
        offsets.appended(10, 15);
        offsets.wrote_to(15);
        offsets.sealed_to(15);
        offsets.start_at(12);
        offsets.appended(15, 20);
        assert_eq!(offsets.give_up_to_written(15), 15);
        assert_eq!(
            (offsets.log_start(), offsets.log_end(), offsets.written()),
            (12, 15, 15)
        );
    }

    #[test]
    #[should_panic(expected = "an append must start at the log end")]
    fn an_append_that_skips_offsets_is_caught() {
        Offsets::recovered(0, 10, 0).appended(11, 12);
    }

    #[test]
    #[should_panic(expected = "written offset 10 -> 11: it only grows, up to 10")]
    fn a_write_past_the_log_end_is_caught() {
        Offsets::recovered(0, 10, 0).wrote_to(11);
    }

    #[test]
    #[should_panic(expected = "written offset 10 -> 9")]
    fn the_written_offset_never_moves_back() {
        Offsets::recovered(0, 10, 0).wrote_to(9);
    }
}
