//! KIP-890 part 1, the partition's half of the defence against hanging
//! transactions (Kafka's `VerificationStateEntry` and `VerificationGuard`):
//! the first transactional batch of a producer's transaction here is
//! appended only once the transaction coordinator has confirmed that the
//! partition is in that transaction. The first try of such an append starts
//! a verification (a guard, unique on this partition) and is refused with
//! it; the caller asks the coordinator and tries again with the guard. Any
//! append of the producer (a batch or a marker) ends the verification, so
//! a guard obtained before an abort marker is no longer accepted after it:
//! the batch cannot open a transaction the coordinator has already ended.
//!
//! Invariant: pure (time comes in as arguments); at most
//! `VERIFICATIONS_MAX` entries, the oldest dropped first; `order` indexes
//! exactly the entries of `by_producer`, by guard.

use std::collections::{BTreeMap, HashMap};

/// Verifications in flight a partition keeps. A client has at most one per
/// partition and producer at a time, so this is many thousands of
/// producers starting a transaction here at once; past it the oldest is
/// dropped, and its producer's batch is refused INVALID_TXN_STATE (as one
/// whose transaction was aborted meanwhile), which aborts its transaction.
pub const VERIFICATIONS_MAX: usize = 10_000;

/// What a client's append brings to the verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnVerification {
    /// No verification: `transaction.partition.verification.enable` is off,
    /// or the request names no transactional id.
    Off,
    /// A first try: a transactional batch that would open its producer's
    /// transaction here starts a verification and is refused with its guard.
    Start,
    /// The coordinator confirmed the partition under this guard.
    Verified(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    guard: u64,
    /// When it started, for `producer.id.expiration.ms`.
    started_ms: i64,
    /// The newest epoch of the batches waiting for it, and the lowest
    /// first sequence among that epoch's: no later batch may come first.
    epoch: i16,
    lowest_seq: i32,
}

/// The verifications in flight on one partition, by producer id.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verifications {
    by_producer: HashMap<i64, Entry>,
    /// Guard -> producer id: guards grow, so the first is the oldest.
    order: BTreeMap<u64, i64>,
    next_guard: u64,
}

impl Verifications {
    /// The producer's guard for a batch of `epoch` from `first_seq`: the
    /// one in flight, else a new one (Kafka's
    /// `maybeCreateVerificationStateEntry`, with its lowest sequence).
    pub fn start(&mut self, producer_id: i64, (epoch, first_seq): (i16, i32), now_ms: i64) -> u64 {
        if let Some(entry) = self.by_producer.get_mut(&producer_id) {
            if epoch > entry.epoch {
                entry.epoch = epoch;
                entry.lowest_seq = first_seq;
            } else if epoch == entry.epoch {
                entry.lowest_seq = entry.lowest_seq.min(first_seq);
            }
            return entry.guard;
        }
        if self.by_producer.len() >= VERIFICATIONS_MAX {
            if let Some((_, oldest)) = self.order.pop_first() {
                self.by_producer.remove(&oldest);
            }
        }
        self.next_guard += 1;
        let guard = self.next_guard;
        self.by_producer.insert(
            producer_id,
            Entry {
                guard,
                started_ms: now_ms,
                epoch,
                lowest_seq: first_seq,
            },
        );
        self.order.insert(guard, producer_id);
        self.check();
        guard
    }

    /// Whether `guard` is the producer's verification in flight.
    pub fn verifies(&self, producer_id: i64, guard: u64) -> bool {
        self.by_producer
            .get(&producer_id)
            .is_some_and(|entry| entry.guard == guard)
    }

    /// The lowest first sequence of the producer's batches waiting for
    /// its verification in flight, if one is.
    pub fn lowest_seq(&self, producer_id: i64) -> Option<i32> {
        self.by_producer
            .get(&producer_id)
            .map(|entry| entry.lowest_seq)
    }

    /// The producer appended (a batch or a marker): its verification, if
    /// any, is over.
    pub fn end(&mut self, producer_id: i64) {
        if let Some(entry) = self.by_producer.remove(&producer_id) {
            self.order.remove(&entry.guard);
        }
    }

    /// Forgets the verifications started `expiration_ms` or more before
    /// `now_ms`: their producers never came back (Kafka's
    /// `removeExpiredProducers`).
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) {
        let order = &mut self.order;
        self.by_producer.retain(|_, entry| {
            let keep = now_ms.saturating_sub(entry.started_ms) < expiration_ms;
            if !keep {
                order.remove(&entry.guard);
            }
            keep
        });
        self.check();
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_producer.len()
    }

    fn check(&self) {
        assert!(self.by_producer.len() <= VERIFICATIONS_MAX);
        assert_eq!(self.by_producer.len(), self.order.len());
    }
}
