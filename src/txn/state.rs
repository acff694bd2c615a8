//! A transactional id's metadata and Kafka's transaction states with their
//! legal transitions (TransactionMetadata.scala's `validPreviousStates`).
//!
//! Invariant: `state` only changes by `TxnState::can_follow`, and only once
//! the record of the change is durable (`pending` holds the target until
//! then).

use std::collections::BTreeSet;

/// Kafka's `RecordBatch.NO_PRODUCER_ID`.
pub const NO_PRODUCER_ID: i64 = -1;
/// Kafka's `RecordBatch.NO_PRODUCER_EPOCH`.
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// The transaction states, with Kafka's ids (the value's `TransactionStatus`)
/// and names (what DescribeTransactions and ListTransactions show).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|state| state.id() == id)
    }

    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|state| state.name() == name)
    }

    /// Whether a transaction may move from `previous` to `self`.
    pub fn can_follow(self, previous: TxnState) -> bool {
        use TxnState::*;
        match self {
            Empty => matches!(previous, Empty | CompleteCommit | CompleteAbort),
            Ongoing => matches!(previous, Ongoing | Empty | CompleteCommit | CompleteAbort),
            PrepareCommit => previous == Ongoing,
            // Transactions version 2 aborts with no partition added too
            // (the client cannot tell whether a produce added one).
            PrepareAbort => matches!(
                previous,
                Ongoing | PrepareEpochFence | Empty | CompleteCommit | CompleteAbort
            ),
            CompleteCommit => previous == PrepareCommit,
            CompleteAbort => previous == PrepareAbort,
            Dead => matches!(previous, Empty | CompleteAbort | CompleteCommit),
            PrepareEpochFence => previous == Ongoing,
        }
    }

    /// States in which an idle transactional id may expire.
    pub fn expiration_allowed(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }
}

/// Transactions version 0: the client adds partitions itself and EndTxn
/// keeps the epoch (levels 0 and 1 of the feature behave alike for clients).
pub const TV_0: i16 = 0;
/// Transactions version 2 (KIP-890 part 2): EndTxn v5 bumps the epoch;
/// Produce v12+ and TxnOffsetCommit v5 add their partitions themselves.
pub const TV_2: i16 = 2;

/// Epochs at or past this are used up: the coordinator keeps the last one
/// to fence with (Kafka's `isEpochExhausted`, `Short.MaxValue - 1`).
pub fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// One transactional id as the coordinator knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    /// The `__transaction_state` partition holding it.
    pub partition: i32,
    pub producer_id: i64,
    /// The producer id before the last rotation (KIP-360 retries).
    pub previous_producer_id: i64,
    /// Transactions version 2: the producer id a commit or abort at the
    /// last epoch rotates to once its markers are written; -1 otherwise.
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump by a KIP-360 InitProducerId, so its
    /// retry gets the same answer; -1 once another producer initialized.
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    /// When the first partition was added; -1 outside a transaction.
    pub start_ms: i64,
    pub last_update_ms: i64,
    /// The state a change in flight (its record being appended, or its
    /// markers being written) leads to.
    pub pending: Option<TxnState>,
    /// The transactions version of the client's last request that
    /// changed the state (Kafka's `clientTransactionVersion`): 2 when its
    /// EndTxn bumps the epoch.
    pub client_transaction_version: i16,
    /// A fence's PrepareAbort could not be written but its epoch bump was
    /// kept: the next fence does not bump again (Kafka's
    /// `hasFailedEpochFence`).
    pub failed_epoch_fence: bool,
}

impl TxnMetadata {
    /// A transactional id seen for the first time: Empty, with no epoch yet.
    pub fn new(
        transactional_id: &str,
        partition: i32,
        producer_id: i64,
        timeout_ms: i32,
        now_ms: i64,
    ) -> TxnMetadata {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            partition,
            producer_id,
            previous_producer_id: NO_PRODUCER_ID,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
            pending: None,
            client_transaction_version: TV_0,
            failed_epoch_fence: false,
        }
    }

    pub fn epoch_exhausted(&self) -> bool {
        epoch_exhausted(self.producer_epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_kafkas_and_round_trip() {
        for (id, state) in TxnState::ALL.into_iter().enumerate() {
            assert_eq!(state.id(), id as i8);
            assert_eq!(TxnState::from_id(id as i8), Some(state));
            assert_eq!(TxnState::from_name(state.name()), Some(state));
        }
        assert_eq!(TxnState::from_id(8), None);
        assert_eq!(TxnState::from_name("ongoing"), None);
    }

    #[test]
    fn transitions_are_kafkas() {
        use TxnState::*;
        let legal = [
            (Empty, Empty),
            (CompleteCommit, Empty),
            (CompleteAbort, Empty),
            (Empty, Ongoing),
            (Ongoing, Ongoing),
            (CompleteCommit, Ongoing),
            (CompleteAbort, Ongoing),
            (Ongoing, PrepareCommit),
            (Ongoing, PrepareAbort),
            (PrepareEpochFence, PrepareAbort),
            (Empty, PrepareAbort),
            (CompleteCommit, PrepareAbort),
            (CompleteAbort, PrepareAbort),
            (PrepareCommit, CompleteCommit),
            (PrepareAbort, CompleteAbort),
            (Empty, Dead),
            (CompleteCommit, Dead),
            (CompleteAbort, Dead),
            (Ongoing, PrepareEpochFence),
        ];
        for from in TxnState::ALL {
            for to in TxnState::ALL {
                assert_eq!(
                    to.can_follow(from),
                    legal.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }

    #[test]
    fn the_last_two_epochs_are_exhausted() {
        assert!(!epoch_exhausted(i16::MAX - 2));
        assert!(epoch_exhausted(i16::MAX - 1));
        assert!(epoch_exhausted(i16::MAX));
    }
}
