//! Admission of appends while the writer is behind. A partition keeps at
//! most `QUEUED_BYTES_MAX` bytes queued for its writer (besides the group
//! being written, itself at most `writer::GROUP_BYTES_MAX`). An append that
//! would go past that waits for its turn: first come, first served, so
//! appends keep the order they arrived in (one producer's pipelined
//! requests stay in order), and the memory a partition holds for its writer
//! stays bounded. The wait is backpressure that reaches the socket: the
//! produce request waits, so its connection's in-flight bound stops the
//! reading of more.
//!
//! Invariant: appends are admitted in the order they asked; none overtakes
//! one that waits; bytes are queued past the bound only when the queue was
//! empty (a single append larger than the bound still goes in alone).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

/// Bytes a partition queues for its writer at most: two full groups, so
/// the writer always has the next group ready while one is written, and a
/// disk slower than the producers holds them rather than memory.
pub(super) const QUEUED_BYTES_MAX: usize = 32 << 20;

#[derive(Default)]
pub(super) struct Admission {
    /// Bytes appended and not yet taken into a group by the writer.
    queued_bytes: Cell<usize>,
    /// Tickets of the appends waiting for room, oldest first.
    waiting: RefCell<VecDeque<u64>>,
    next_ticket: Cell<u64>,
}

impl Admission {
    /// Whether `len` more bytes may be queued now.
    fn has_room(&self, len: usize) -> bool {
        let queued = self.queued_bytes.get();
        queued == 0 || queued + len <= QUEUED_BYTES_MAX
    }

    /// An append of `len` bytes may go in at once: room, and nobody waiting.
    pub(super) fn admits_now(&self, len: usize) -> bool {
        self.waiting.borrow().is_empty() && self.has_room(len)
    }

    /// Takes the next place in the line of waiting appends.
    pub(super) fn take_ticket(&self) -> u64 {
        let ticket = self.next_ticket.get();
        self.next_ticket.set(ticket + 1);
        self.waiting.borrow_mut().push_back(ticket);
        ticket
    }

    /// `ticket` is first in line and its `len` bytes fit.
    pub(super) fn turn_of(&self, ticket: u64, len: usize) -> bool {
        self.waiting.borrow().front() == Some(&ticket) && self.has_room(len)
    }

    /// `ticket` leaves the line: admitted, or its append gave up waiting.
    pub(super) fn leave(&self, ticket: u64) {
        self.waiting.borrow_mut().retain(|&t| t != ticket);
    }

    /// `len` bytes were queued for the writer.
    pub(super) fn queued(&self, len: usize) {
        let queued = self.queued_bytes.get();
        assert!(
            queued == 0 || queued + len <= QUEUED_BYTES_MAX,
            "an append queued past the bound"
        );
        self.queued_bytes.set(queued + len);
    }

    /// The writer took `len` queued bytes into a group.
    pub(super) fn taken(&self, len: usize) {
        let queued = self.queued_bytes.get();
        assert!(len <= queued, "the writer took more than was queued");
        self.queued_bytes.set(queued - len);
    }

    /// The writer's queue was emptied without writing it (given up, or the
    /// log failed).
    pub(super) fn emptied(&self) {
        self.queued_bytes.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_appends_are_admitted_in_the_order_they_asked() {
        let admission = Admission::default();
        admission.queued(QUEUED_BYTES_MAX - 10);
        assert!(admission.admits_now(10));
        assert!(!admission.admits_now(11));
        let first = admission.take_ticket();
        let second = admission.take_ticket();
        // Once someone waits, even a small append takes its place in line.
        assert!(!admission.admits_now(1));
        assert!(!admission.turn_of(first, 100));
        assert!(!admission.turn_of(second, 1), "no overtaking the first");
        admission.taken(QUEUED_BYTES_MAX - 10);
        assert!(admission.turn_of(first, 100));
        admission.leave(first);
        admission.queued(100);
        assert!(admission.turn_of(second, 1));
        admission.leave(second);
        assert!(admission.admits_now(1));
    }

    #[test]
    fn an_append_larger_than_the_bound_goes_in_alone() {
        let admission = Admission::default();
        assert!(admission.admits_now(QUEUED_BYTES_MAX * 2));
        admission.queued(QUEUED_BYTES_MAX * 2);
        assert!(!admission.admits_now(1));
        admission.taken(QUEUED_BYTES_MAX * 2);
        assert!(admission.admits_now(1));
    }

    #[test]
    fn a_waiter_that_gives_up_lets_the_next_one_in() {
        let admission = Admission::default();
        admission.queued(QUEUED_BYTES_MAX);
        let gone = admission.take_ticket();
        let next = admission.take_ticket();
        admission.leave(gone);
        admission.emptied();
        assert!(admission.turn_of(next, 1));
    }
}
