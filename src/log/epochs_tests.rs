//! The leader-epoch cache against Kafka's `LeaderEpochFileCacheTest` cases,
//! and its file format.

use super::epochs::{EpochEntry, LeaderEpochs};

fn cache(entries: &[(i32, i64)]) -> LeaderEpochs {
    let mut cache = LeaderEpochs::default();
    for &(epoch, start) in entries {
        assert!(cache.assign(epoch, start));
    }
    cache
}

fn pairs(cache: &LeaderEpochs) -> Vec<(i32, i64)> {
    cache
        .entries()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect()
}

/// (cache, asked epoch, answer).
type Case = (&'static [(i32, i64)], i32, Option<(i32, i64)>);

#[test]
fn end_offset_for_answers_as_kafka() {
    const LOG_END: i64 = 100;
    // Kafka's documented cases.
    let cases: &[Case] = &[
        // The latest epoch ends at the log end.
        (&[(2, 6), (3, 8), (4, 9)], 4, Some((4, LOG_END))),
        // An undefined epoch, or no epoch recorded: undefined.
        (&[], -1, None),
        (&[], 0, None),
        (&[(2, 6)], -1, None),
        // An earlier epoch ends where the next one starts.
        (&[(1, 5), (2, 7), (4, 9)], 1, Some((1, 7))),
        (&[(1, 5), (2, 7), (4, 9)], 2, Some((2, 9))),
        // No exact epoch: the largest below, ending at the next's start.
        (&[(0, 10), (2, 13), (4, 17)], 1, Some((0, 13))),
        (&[(0, 10), (2, 13), (4, 17)], 3, Some((2, 17))),
        // Below the first epoch: the asked epoch, ending at the first start.
        (&[(5, 11), (6, 12), (7, 13)], 4, Some((4, 11))),
        // Above the latest: undefined.
        (&[(2, 5)], 3, None),
    ];
    for (entries, asked, answer) in cases {
        assert_eq!(
            cache(entries).end_offset_for(*asked, LOG_END),
            *answer,
            "cache {entries:?}, epoch {asked}"
        );
    }
}

#[test]
fn assign_keeps_both_columns_increasing() {
    let mut epochs = cache(&[(2, 6), (3, 8), (4, 11)]);
    // The latest epoch again, starting later: nothing to record.
    assert!(!epochs.assign(4, 12));
    // The latest epoch starting earlier: it moves back.
    assert!(epochs.assign(4, 10));
    assert_eq!(pairs(&epochs), [(2, 6), (3, 8), (4, 10)]);
    // An older epoch: the entries at or above it go (Kafka's
    // maybeTruncateNonMonotonicEntries).
    assert!(epochs.assign(3, 9));
    assert_eq!(pairs(&epochs), [(2, 6), (3, 9)]);
    // A newer epoch starting before the latest's start: the latest goes.
    assert!(epochs.assign(5, 9));
    assert_eq!(pairs(&epochs), [(2, 6), (5, 9)]);
    assert_eq!(epochs.epoch_at(5), None);
    assert_eq!(epochs.epoch_at(8), Some(2));
    assert_eq!(epochs.epoch_at(9), Some(5));
    assert_eq!(
        epochs.latest(),
        Some(EpochEntry {
            epoch: 5,
            start_offset: 9
        })
    );
}

#[test]
fn truncation_from_either_end_keeps_the_cache_consistent() {
    let entries = [(2, 6), (3, 8), (4, 11)];
    // (log end, entries kept): Kafka's truncateFromEnd.
    for (end, kept) in [
        (12, &entries[..]),
        (11, &entries[..2]),
        (9, &entries[..2]),
        (8, &entries[..1]),
        (0, &[][..]),
    ] {
        let mut epochs = cache(&entries);
        assert_eq!(epochs.truncate_from_end(end), kept.len() < 3, "end {end}");
        assert_eq!(pairs(&epochs), kept, "end {end}");
    }
    // (log start, entries after): Kafka's truncateFromStart.
    for (start, after) in [
        (5, vec![(2, 6), (3, 8), (4, 11)]),
        (6, vec![(2, 6), (3, 8), (4, 11)]),
        (7, vec![(2, 7), (3, 8), (4, 11)]),
        (9, vec![(3, 9), (4, 11)]),
        (12, vec![(4, 12)]),
    ] {
        let mut epochs = cache(&entries);
        assert_eq!(
            epochs.truncate_from_start(start),
            start > 6,
            "start {start}"
        );
        assert_eq!(pairs(&epochs), after, "start {start}");
    }
}

#[test]
fn the_file_is_kafkas_format_and_damage_is_refused() {
    let epochs = cache(&[(1, 0), (3, 100)]);
    let encoded = String::from_utf8(epochs.encode()).unwrap();
    assert_eq!(encoded, "0\n2\n1 0\n3 100\n");
    assert_eq!(LeaderEpochs::decode(&encoded), Ok(epochs));
    assert_eq!(LeaderEpochs::decode("0\n0\n"), Ok(LeaderEpochs::default()));
    for damaged in [
        "",
        "1\n0\n",
        "0\n2\n1 0\n",
        "0\n1\n1 0\n3 100\n",
        "0\n1\n1\n",
        "0\n2\n3 0\n1 100\n",
        "0\n2\n1 100\n3 100\n",
        "0\n1\n-1 0\n",
        "0\n99999999\n",
    ] {
        assert!(LeaderEpochs::decode(damaged).is_err(), "{damaged:?}");
    }
}
