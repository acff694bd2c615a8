//! The transaction coordinator, as a pure state machine: per transactional
//! id its metadata (`state.rs`: producer id and epoch, timeout, Kafka's
//! states and their legal transitions, the partitions of the transaction),
//! the operations of Kafka's TransactionCoordinator (`coordinator.rs`:
//! InitProducerId with a transactional id, AddPartitionsToTxn,
//! AddOffsetsToTxn, EndTxn, timeouts, expiration, Describe and
//! ListTransactions) and the `__transaction_state` records they write
//! (`records.rs`, Kafka's TransactionLogKey/TransactionLogValue), which
//! `replay` reads back at load. Transactions version 1 (the client adds
//! partitions with AddPartitionsToTxn, EndTxn keeps the epoch) and 2
//! (KIP-890 part 2: EndTxn v5 bumps the epoch, rotating the producer id at
//! the last one; Produce and TxnOffsetCommit add their partitions), per
//! request; `TxnConfig::transaction_version` picks the records' version.
//!
//! One `TxnCoordinator` runs on the shard that owns the
//! `__transaction_state` partitions of its ids. It is single-threaded and
//! deterministic: no IO, no clock, no channels. Time comes in as `now_ms`
//! arguments; producer ids come in from the caller, which allocates them.
//! Effects come back as data: a `Transit` holds the record to append before
//! the state changes and the waiter's answer; `complete` applies it and
//! returns the `MarkerJob` (transaction markers to write) of a prepared
//! commit or abort; `markers_written` gives the record that completes it.
//!
//! Invariant: this module depends on nothing else in shoal but `config` (its
//! settings, plain data) and `protocol` (the framing of its records, bytes
//! only); `tests/architecture.rs` checks it. It knows neither
//! shards nor sockets nor the log; `shard/transactions.rs` drives it,
//! `server/handlers` translates requests into its plain-data API.

mod coordinator;
pub mod records;
mod state;

#[cfg(test)]
mod tests;

pub use coordinator::{
    Completion, DescribedTxn, EndOutcome, ListedTxn, MarkerJob, Record, Transit, TxnCoordinator,
    Waiter,
};
// The settings are plain data of `config` (which imports nothing of shoal).
pub use crate::config::TxnConfig;
pub use records::RecordError;
pub use state::{TxnMetadata, TxnState, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, TV_0, TV_2};

/// Name of the internal topic holding the transactions' state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";
