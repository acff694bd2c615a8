//! The transaction coordinator's broker settings (`transaction.*`,
//! `transactional.id.*`), as plain data.
//!
//! Invariant: as all of `config`, imports nothing of shoal; `txn` takes its
//! settings from here.

/// Broker settings of the transaction coordinator, by Kafka's names, with
/// Kafka's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a
    /// producer may ask for (INVALID_TRANSACTION_TIMEOUT above it).
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: how long a transactional id with no
    /// transaction in progress is kept after its last update.
    pub id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how
    /// often transactions past their timeout are looked for and aborted.
    pub abort_timed_out_interval_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`: how
    /// often expired transactional ids are looked for and removed.
    pub remove_expired_interval_ms: i64,
    /// `transaction.state.log.num.partitions`: how transactional ids spread
    /// over `__transaction_state`.
    pub state_log_num_partitions: i32,
    /// `transaction.state.log.segment.bytes`: `segment.bytes` of
    /// `__transaction_state` when it is created.
    pub state_log_segment_bytes: u64,
    /// `transaction.partition.verification.enable` (KIP-890 part 1): the
    /// first transactional batch of a transaction into a partition is
    /// appended only once the coordinator confirms the partition is in it.
    pub partition_verification_enable: bool,
    /// `transaction.version`: the level of Kafka's `transaction.version`
    /// feature this broker finalizes (Kafka sets it when the storage is
    /// formatted, `--feature transaction.version=N`, and a fresh Kafka 4
    /// cluster takes 2). 0: value v0 records; 1: flexible value v1 records
    /// (KIP-890); 2: also advertised to clients, which then run
    /// transactions version 2 (an epoch bump at every EndTxn, partitions
    /// added by Produce and TxnOffsetCommit themselves).
    pub transaction_version: i16,
}

/// The highest `transaction.version` level shoal supports (Kafka 4's).
pub const TRANSACTION_VERSION_MAX: i16 = 2;

impl Default for TxnConfig {
    fn default() -> TxnConfig {
        TxnConfig {
            max_timeout_ms: 900_000,
            id_expiration_ms: 604_800_000,
            abort_timed_out_interval_ms: 10_000,
            remove_expired_interval_ms: 3_600_000,
            state_log_num_partitions: 50,
            state_log_segment_bytes: 104_857_600,
            partition_verification_enable: true,
            transaction_version: TRANSACTION_VERSION_MAX,
        }
    }
}
