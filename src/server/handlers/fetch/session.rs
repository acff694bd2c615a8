//! One shard's incremental fetch sessions (KIP-227): the pure cache.
//!
//! Invariant: no IO, no clock and no randomness of its own; the driver
//! passes the time and the random bits, so every rule here is tested
//! deterministically. Session ids are unique across the whole broker with no
//! word between shards: shard `s` of `n` hands out only ids with
//! `id % n == s`, drawn at random (positive, never 0) and checked against its
//! own sessions, so a request naming another shard's session can never touch
//! one here. The cache holds at most its share of
//! `max.incremental.fetch.session.cache.slots`, and a session holds only
//! partitions that metadata knew when a request named them (one entry each).
//! Eviction is Kafka's `FetchSessionCache`: a new session takes a slot only
//! from a stale session (unused for `min.incremental.fetch.session.eviction.ms`,
//! least recently used first) or from an older session with fewer partitions.

use std::collections::{BTreeSet, HashMap};

use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;

use crate::shard::messages::TopicPartition;

/// The session id that means "no session" (Kafka's `INVALID_SESSION_ID`).
pub const INVALID_SESSION_ID: i32 = 0;
/// Kafka's `min.incremental.fetch.session.eviction.ms` (a constant in Kafka
/// too): a session unused this long may be evicted by any new one, and a
/// session younger than this is never evicted for its size.
pub const EVICTION_MS: u64 = 120_000;
/// Random draws before giving up on a free id. A shard's id space holds at
/// least `i32::MAX / shards` ids and its cache at most as many sessions as
/// `slots / shards`, so with the default slots one draw almost always
/// suffices; giving up answers "no session", which clients handle.
const ID_DRAWS_MAX: usize = 64;

/// What a session remembers of one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionPartition {
    pub topic_id: uuid::Uuid,
    pub fetch_offset: i64,
    pub max_bytes: i32,
    /// A follower's last fetched epoch, kept as Kafka's session keeps it
    /// (`CachedPartition.lastFetchedEpoch`); -1 for a consumer.
    pub last_fetched_epoch: i32,
    /// A follower's log start offset, kept as Kafka's session keeps it
    /// (`CachedPartition.fetcherLogStartOffset`): what DeleteRecords on
    /// the leader waits for (the low watermark); -1 for a consumer.
    pub log_start_offset: i64,
    /// The leader epoch the fetcher last named (`CachedPartition.leaderEpoch`),
    /// checked again on every fetch that covers the partition without
    /// naming it; -1 (no check) when it named none.
    pub current_leader_epoch: i32,
    /// What the last response said of this partition; an incremental
    /// response leaves a partition out while these stay the same.
    pub sent_high_watermark: i64,
    pub sent_log_start_offset: i64,
}

impl SessionPartition {
    /// A partition no response has spoken of yet.
    pub fn new(
        topic_id: uuid::Uuid,
        fetch_offset: i64,
        max_bytes: i32,
        last_fetched_epoch: i32,
    ) -> SessionPartition {
        SessionPartition {
            topic_id,
            fetch_offset,
            max_bytes,
            last_fetched_epoch,
            log_start_offset: -1,
            current_leader_epoch: -1,
            sent_high_watermark: -1,
            sent_log_start_offset: -1,
        }
    }
}

pub type SessionPartitions = IndexMap<TopicPartition, SessionPartition>;

struct Session {
    /// The epoch the next incremental request must carry.
    next_epoch: i32,
    /// Fetch v13+ names topics by id; a session made one way refuses the other.
    uses_topic_ids: bool,
    partitions: SessionPartitions,
    created_ms: u64,
    last_used_ms: u64,
}

/// An incremental fetch request, as the cache sees it.
pub struct IncrementalFetch {
    pub session_id: i32,
    pub epoch: i32,
    pub uses_topic_ids: bool,
    /// Partitions the request names: added, or their position moved.
    pub upserts: Vec<(TopicPartition, SessionPartition)>,
    pub forgotten: Vec<TopicPartition>,
}

pub struct SessionCache {
    shard: u32,
    shards: u32,
    slots: usize,
    sessions: HashMap<i32, Session>,
    /// (last used, id) of every session: least recently used first.
    lru: BTreeSet<(u64, i32)>,
}

impl SessionCache {
    /// The cache of shard `shard` of `shards`, holding its share of the
    /// broker's `slots` (Kafka divides them evenly between its cache shards).
    pub fn new(shard: usize, shards: usize, slots: usize) -> SessionCache {
        assert!(shard < shards, "shard {shard} of {shards}");
        let shards = u32::try_from(shards).expect("shard count fits u32");
        SessionCache {
            shard: shard as u32,
            shards,
            slots: slots / shards as usize,
            sessions: HashMap::new(),
            lru: BTreeSet::new(),
        }
    }

    /// Removes the session `id` names, if this shard holds it.
    pub fn close(&mut self, id: i32) -> bool {
        match self.sessions.remove(&id) {
            Some(session) => {
                self.lru.remove(&(session.last_used_ms, id));
                true
            }
            None => false,
        }
    }

    /// A new session over `partitions` after a full fetch: its id, or
    /// `INVALID_SESSION_ID` when the cache is full and nothing may be evicted.
    pub fn create(
        &mut self,
        now_ms: u64,
        uses_topic_ids: bool,
        partitions: SessionPartitions,
        random: &mut dyn FnMut() -> u64,
    ) -> i32 {
        if self.sessions.len() >= self.slots && !self.evict_for(partitions.len(), now_ms) {
            return INVALID_SESSION_ID;
        }
        let Some(id) = self.free_id(random) else {
            return INVALID_SESSION_ID;
        };
        debug_assert_eq!(id as u32 % self.shards, self.shard);
        self.sessions.insert(
            id,
            Session {
                next_epoch: 1,
                uses_topic_ids,
                partitions,
                created_ms: now_ms,
                last_used_ms: now_ms,
            },
        );
        self.lru.insert((now_ms, id));
        assert!(self.sessions.len() <= self.slots);
        id
    }

    /// Applies an incremental fetch to its session and returns every
    /// partition the session now covers, with what was last sent of each;
    /// `Ok(None)` when the request forgot every partition, which closes the
    /// session (Kafka answers such a request without one).
    pub fn update(
        &mut self,
        now_ms: u64,
        request: IncrementalFetch,
    ) -> Result<Option<SessionPartitions>, ResponseError> {
        let id = request.session_id;
        let session = self
            .sessions
            .get_mut(&id)
            .ok_or(ResponseError::FetchSessionIdNotFound)?;
        if session.next_epoch != request.epoch {
            return Err(ResponseError::InvalidFetchSessionEpoch);
        }
        if session.uses_topic_ids != request.uses_topic_ids {
            return Err(ResponseError::FetchSessionTopicIdError);
        }
        // A partition sent again only moves its position (KIP-227): what was
        // last sent of it stays, so an unchanged partition stays quiet.
        for (partition, update) in request.upserts {
            match session.partitions.get_mut(&partition) {
                Some(state) => {
                    state.topic_id = update.topic_id;
                    state.fetch_offset = update.fetch_offset;
                    state.max_bytes = update.max_bytes;
                    state.last_fetched_epoch = update.last_fetched_epoch;
                    state.log_start_offset = update.log_start_offset;
                    state.current_leader_epoch = update.current_leader_epoch;
                }
                None => {
                    session.partitions.insert(partition, update);
                }
            }
        }
        for partition in &request.forgotten {
            session.partitions.shift_remove(partition);
        }
        if session.partitions.is_empty() {
            self.close(id);
            return Ok(None);
        }
        session.next_epoch = next_epoch(session.next_epoch);
        self.lru.remove(&(session.last_used_ms, id));
        session.last_used_ms = now_ms;
        self.lru.insert((now_ms, id));
        Ok(Some(session.partitions.clone()))
    }

    /// Remembers what a response said of each partition of session `id`.
    pub fn record_sent(
        &mut self,
        id: i32,
        sent: impl IntoIterator<Item = (TopicPartition, i64, i64)>,
    ) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        for (partition, high_watermark, log_start_offset) in sent {
            if let Some(state) = session.partitions.get_mut(&partition) {
                state.sent_high_watermark = high_watermark;
                state.sent_log_start_offset = log_start_offset;
            }
        }
    }

    /// Frees a slot for a new session of `size` partitions by Kafka's rules:
    /// the least recently used session if it is stale; otherwise the
    /// smallest session older than `EVICTION_MS` if the new one is larger.
    fn evict_for(&mut self, size: usize, now_ms: u64) -> bool {
        let Some(&(last_used_ms, oldest)) = self.lru.first() else {
            return false;
        };
        if now_ms.saturating_sub(last_used_ms) > EVICTION_MS {
            return self.close(oldest);
        }
        let smallest = self
            .sessions
            .iter()
            .filter(|(_, session)| now_ms.saturating_sub(session.created_ms) > EVICTION_MS)
            .map(|(&id, session)| (session.partitions.len(), id))
            .min();
        match smallest {
            Some((smallest_size, id)) if size > smallest_size => self.close(id),
            _ => false,
        }
    }

    /// A random id of this shard's residue class not in use here.
    fn free_id(&self, random: &mut dyn FnMut() -> u64) -> Option<i32> {
        let shards = u64::from(self.shards);
        let shard = u64::from(self.shard);
        // id = k * shards + shard for k in first..=last, so 1 <= id <= i32::MAX.
        let first = u64::from(shard == 0);
        let last = (i32::MAX as u64 - shard) / shards;
        let choices = last - first + 1;
        (0..ID_DRAWS_MAX)
            .map(|_| ((first + random() % choices) * shards + shard) as i32)
            .find(|id| !self.sessions.contains_key(id))
    }
}

/// Kafka's epoch after `epoch`: 1 follows `i32::MAX` (0 means "new session").
fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partitions(count: i32) -> SessionPartitions {
        (0..count)
            .map(|partition| {
                (
                    TopicPartition::new("t", partition),
                    SessionPartition::new(uuid::Uuid::nil(), 0, 1024, -1),
                )
            })
            .collect()
    }

    /// A random source that walks a fixed sequence (then repeats its last value).
    fn sequence(values: &[u64]) -> impl FnMut() -> u64 + '_ {
        let mut next = 0;
        move || {
            let value = values[next.min(values.len() - 1)];
            next += 1;
            value
        }
    }

    fn counter() -> impl FnMut() -> u64 {
        let mut value = 0u64;
        move || {
            value = value
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            value
        }
    }

    fn incremental(session_id: i32, epoch: i32) -> IncrementalFetch {
        IncrementalFetch {
            session_id,
            epoch,
            uses_topic_ids: false,
            upserts: Vec::new(),
            forgotten: Vec::new(),
        }
    }

    #[test]
    fn ids_are_positive_and_in_the_shard_residue_class() {
        let shards = 3;
        let mut seen = std::collections::HashSet::new();
        for shard in 0..shards {
            let mut cache = SessionCache::new(shard, shards, 3 * 200);
            let mut random = counter();
            for _ in 0..200 {
                let id = cache.create(0, false, partitions(1), &mut random);
                assert!(id > 0, "{id}");
                assert_eq!(id as usize % shards, shard);
                assert!(seen.insert(id), "id {id} handed out twice");
            }
        }
        // The extremes of the draw stay in range: never 0, never past i32::MAX.
        for shard in 0..shards {
            let mut cache = SessionCache::new(shard, shards, 3 * 10);
            for random in [0, u64::MAX, i32::MAX as u64 / 3 - 1] {
                let id = cache.create(0, false, partitions(1), &mut || random);
                assert!(id > 0, "shard {shard} random {random}: {id}");
                assert_eq!(id as usize % shards, shard);
            }
        }
    }

    #[test]
    fn a_taken_id_is_drawn_again() {
        let mut cache = SessionCache::new(0, 1, 10);
        let first = cache.create(0, false, partitions(1), &mut sequence(&[41]));
        let second = cache.create(0, false, partitions(1), &mut sequence(&[41, 41, 7]));
        assert_eq!(first, 42);
        assert_eq!(second, 8);
    }

    #[test]
    fn no_free_id_after_bounded_draws_means_no_session() {
        let mut cache = SessionCache::new(0, 1, 10);
        let first = cache.create(0, false, partitions(1), &mut || 5);
        assert_eq!(first, 6);
        assert_eq!(
            cache.create(0, false, partitions(1), &mut || 5),
            INVALID_SESSION_ID
        );
        assert_eq!(cache.sessions.len(), 1);
    }

    #[test]
    fn slots_are_divided_between_shards() {
        let mut cache = SessionCache::new(1, 2, 5);
        let mut random = counter();
        assert_ne!(
            cache.create(0, false, partitions(1), &mut random),
            INVALID_SESSION_ID
        );
        assert_ne!(
            cache.create(0, false, partitions(1), &mut random),
            INVALID_SESSION_ID
        );
        assert_eq!(
            cache.create(0, false, partitions(1), &mut random),
            INVALID_SESSION_ID
        );
        let mut none = SessionCache::new(0, 2, 1);
        assert_eq!(
            none.create(0, false, partitions(1), &mut random),
            INVALID_SESSION_ID
        );
    }

    #[test]
    fn a_full_cache_of_young_sessions_refuses_a_new_one() {
        let mut cache = SessionCache::new(0, 1, 2);
        let mut random = counter();
        let a = cache.create(0, false, partitions(1), &mut random);
        let b = cache.create(0, false, partitions(1), &mut random);
        // Larger, but both are younger than EVICTION_MS.
        assert_eq!(
            cache.create(EVICTION_MS, false, partitions(9), &mut random),
            INVALID_SESSION_ID
        );
        assert!(cache.close(a) && cache.close(b));
    }

    #[test]
    fn the_least_recently_used_stale_session_goes_first() {
        let mut cache = SessionCache::new(0, 1, 2);
        let mut random = counter();
        let a = cache.create(0, false, partitions(5), &mut random);
        let b = cache.create(10, false, partitions(5), &mut random);
        // a is used later than b, so b is the least recently used.
        assert!(cache.update(20, incremental(a, 1)).is_ok());
        let c = cache.create(10 + EVICTION_MS + 1, false, partitions(1), &mut random);
        assert_ne!(c, INVALID_SESSION_ID);
        assert_eq!(
            cache.update(10 + EVICTION_MS + 1, incremental(b, 1)).err(),
            Some(ResponseError::FetchSessionIdNotFound)
        );
        assert!(cache
            .update(10 + EVICTION_MS + 1, incremental(a, 2))
            .is_ok());
    }

    #[test]
    fn an_older_smaller_session_yields_to_a_larger_one() {
        let mut cache = SessionCache::new(0, 1, 2);
        let mut random = counter();
        let small = cache.create(0, false, partitions(2), &mut random);
        let large = cache.create(0, false, partitions(4), &mut random);
        // Both in use, so neither is stale; both are old enough to evict.
        let now = EVICTION_MS + 1;
        assert!(cache.update(now, incremental(small, 1)).is_ok());
        assert!(cache.update(now, incremental(large, 1)).is_ok());
        // Not larger than the smallest: refused.
        assert_eq!(
            cache.create(now, false, partitions(2), &mut random),
            INVALID_SESSION_ID
        );
        let newer = cache.create(now, false, partitions(3), &mut random);
        assert_ne!(newer, INVALID_SESSION_ID);
        assert!(cache.update(now, incremental(small, 2)).is_err());
        assert!(cache.update(now, incremental(large, 2)).is_ok());
        // The newcomer is young: a still larger session cannot evict it, and
        // `large` (4) is not smaller than 4.
        assert_eq!(
            cache.create(now, false, partitions(4), &mut random),
            INVALID_SESSION_ID
        );
    }

    #[test]
    fn epochs_advance_and_are_checked() {
        let mut cache = SessionCache::new(0, 1, 1);
        let id = cache.create(0, false, partitions(1), &mut counter());
        assert!(cache.update(0, incremental(id, 1)).is_ok());
        assert_eq!(
            cache.update(0, incremental(id, 1)).err(),
            Some(ResponseError::InvalidFetchSessionEpoch)
        );
        assert!(cache.update(0, incremental(id, 2)).is_ok());
        assert_eq!(next_epoch(i32::MAX), 1);
        let mut by_id = incremental(id, 3);
        by_id.uses_topic_ids = true;
        assert_eq!(
            cache.update(0, by_id).err(),
            Some(ResponseError::FetchSessionTopicIdError)
        );
    }

    #[test]
    fn an_update_moves_positions_keeps_what_was_sent_and_forgets() {
        let mut cache = SessionCache::new(0, 1, 1);
        let id = cache.create(0, false, partitions(2), &mut counter());
        cache.record_sent(id, [(TopicPartition::new("t", 0), 7, 1)]);
        let mut request = incremental(id, 1);
        request.upserts = vec![
            (
                TopicPartition::new("t", 0),
                SessionPartition::new(uuid::Uuid::nil(), 5, 99, -1),
            ),
            (
                TopicPartition::new("u", 0),
                SessionPartition::new(uuid::Uuid::nil(), 3, 10, -1),
            ),
        ];
        request.forgotten = vec![TopicPartition::new("t", 1)];
        let covered = cache.update(1, request).unwrap().unwrap();
        let keys: Vec<_> = covered
            .keys()
            .map(|p| (p.topic.to_string(), p.partition))
            .collect();
        assert_eq!(keys, vec![("t".to_string(), 0), ("u".to_string(), 0)]);
        let moved = &covered[&TopicPartition::new("t", 0)];
        assert_eq!((moved.fetch_offset, moved.max_bytes), (5, 99));
        assert_eq!(
            (moved.sent_high_watermark, moved.sent_log_start_offset),
            (7, 1)
        );
    }

    #[test]
    fn forgetting_every_partition_closes_the_session() {
        let mut cache = SessionCache::new(0, 1, 1);
        let id = cache.create(0, false, partitions(1), &mut counter());
        let mut request = incremental(id, 1);
        request.forgotten = vec![TopicPartition::new("t", 0)];
        assert_eq!(cache.update(0, request), Ok(None));
        assert_eq!(cache.sessions.len(), 0);
    }

    #[test]
    fn closing_an_id_of_another_shard_touches_nothing_here() {
        let mut zero = SessionCache::new(0, 2, 2);
        let mut one = SessionCache::new(1, 2, 2);
        let a = zero.create(0, false, partitions(1), &mut || 0);
        let b = one.create(0, false, partitions(1), &mut || 0);
        assert_ne!(a, b);
        assert!(!zero.close(b));
        assert!(zero.update(0, incremental(a, 1)).is_ok());
    }
}
