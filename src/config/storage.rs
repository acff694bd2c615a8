//! The storage settings of one partition's log (`LogConfig`) and their
//! Kafka defaults: plain data that `config` resolves from topic configs and
//! `log` obeys.
//!
//! Invariant: as all of `config`, imports nothing of shoal.

/// Kafka's `segment.bytes` default: 1 GiB.
pub const SEGMENT_BYTES_DEFAULT: u64 = 1 << 30;
/// Kafka's `segment.ms` default: 7 days.
pub const SEGMENT_MS_DEFAULT: u64 = 7 * 24 * 60 * 60 * 1000;
/// Kafka's `retention.ms` default (`log.retention.hours` 168).
pub const RETENTION_MS_DEFAULT: i64 = 7 * 24 * 60 * 60 * 1000;
/// Kafka's `retention.bytes` default: no size limit.
pub const RETENTION_BYTES_DEFAULT: i64 = -1;
/// Kafka's `index.interval.bytes` default.
pub const INDEX_INTERVAL_BYTES_DEFAULT: u32 = 4096;
/// Kafka's `delete.retention.ms` default: tombstones stay a day after cleaning.
pub const DELETE_RETENTION_MS_DEFAULT: i64 = 24 * 60 * 60 * 1000;
/// Kafka's `min.cleanable.dirty.ratio` default.
pub const MIN_CLEANABLE_DIRTY_RATIO_DEFAULT: f64 = 0.5;
/// Kafka's `min.compaction.lag.ms` default: records may be cleaned at once.
pub const MIN_COMPACTION_LAG_MS_DEFAULT: i64 = 0;
/// Kafka's `max.compaction.lag.ms` default (`Long.MAX_VALUE`): no deadline.
pub const MAX_COMPACTION_LAG_MS_DEFAULT: i64 = i64::MAX;
/// Newest batches kept in memory per partition so that consumers at the tail
/// are served without touching the file: a few seconds of a busy partition.
pub const TAIL_CACHE_BYTES_DEFAULT: usize = 4 << 20;

/// Topic config `flush.policy`: when a group of appended batches is fdatasync'd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Every group is fdatasync'd before it counts as committed (`sync`).
    Sync,
    /// At most one fdatasync every `flush_ms`; data counts once written (`interval`).
    Interval { flush_ms: u64 },
    /// Never fdatasync except at segment roll and close (`none`).
    None,
}

/// Per-partition storage settings, named after Kafka's topic configs.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would grow past this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment is older than this.
    pub segment_ms: u64,
    /// `index.interval.bytes`: bytes of batches between two `.index` entries.
    pub index_interval_bytes: u32,
    /// `flush.policy`.
    pub flush_policy: FlushPolicy,
    /// Bytes of the newest batches served from memory.
    pub tail_cache_bytes: usize,
    /// `retention.ms`: closed segments whose newest timestamp is older than
    /// this are deleted; -1 keeps them forever.
    pub retention_ms: i64,
    /// `retention.bytes`: oldest closed segments are deleted while the log
    /// without them still holds this much; -1 means no size limit.
    pub retention_bytes: i64,
    /// `cleanup.policy` includes `compact`: the cleaner keeps the latest
    /// record of every key.
    pub compact: bool,
    /// `delete.retention.ms`: how long a tombstone outlives the cleaning that
    /// first saw it.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: the share of the log that must be dirty
    /// before it is cleaned.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: records younger than this stay uncleaned.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a dirty record older than this makes the log
    /// cleanable whatever its dirty ratio.
    pub max_compaction_lag_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            segment_ms: SEGMENT_MS_DEFAULT,
            index_interval_bytes: INDEX_INTERVAL_BYTES_DEFAULT,
            flush_policy: FlushPolicy::Sync,
            tail_cache_bytes: TAIL_CACHE_BYTES_DEFAULT,
            retention_ms: RETENTION_MS_DEFAULT,
            retention_bytes: RETENTION_BYTES_DEFAULT,
            compact: false,
            delete_retention_ms: DELETE_RETENTION_MS_DEFAULT,
            min_cleanable_dirty_ratio: MIN_CLEANABLE_DIRTY_RATIO_DEFAULT,
            min_compaction_lag_ms: MIN_COMPACTION_LAG_MS_DEFAULT,
            max_compaction_lag_ms: MAX_COMPACTION_LAG_MS_DEFAULT,
        }
    }
}
