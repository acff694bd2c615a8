//! The metadata fetch's serving rules on a real voter's log, and an
//! observer that follows them to the voter's image.

use uuid::Uuid;

use super::fetch::{Fetched, FetchedEntry};
use super::node::{encode_records, QuorumSettings};
use super::observe::{answer, ObserveError, Observed};
use super::{single_voter_tests, QuorumNode};
use crate::metadata::records::{FeatureLevelRecord, MetadataRecord, TopicRecord};

const TOPIC_ID: Uuid = Uuid::from_bytes([7; 16]);

fn voter(dir: &std::path::Path) -> QuorumNode {
    let mut node = QuorumNode::open(
        dir,
        QuorumSettings {
            node_id: 1,
            voters: vec![1],
            election_timeout_ms: 1000,
            snapshot_bytes: u64::MAX,
        },
    )
    .unwrap();
    node.elect_blocking().unwrap();
    node
}

fn topic() -> Vec<MetadataRecord> {
    vec![
        MetadataRecord::FeatureLevel(FeatureLevelRecord {
            name: "metadata.version".into(),
            feature_level: 25,
        }),
        MetadataRecord::Topic(TopicRecord {
            name: "t".into(),
            topic_id: TOPIC_ID,
        }),
    ]
}

fn partition(partition_id: i32) -> Vec<MetadataRecord> {
    vec![single_voter_tests::partition(TOPIC_ID, partition_id)]
}

fn entries(fetched: Option<Fetched>) -> Vec<FetchedEntry> {
    match fetched {
        Some(Fetched::Entries(entries)) => entries,
        other => panic!("entries expected, got {other:?}"),
    }
}

/// Compacts the voter's log to a snapshot of its image, as its driver does.
fn compact(node: &QuorumNode) {
    let data = encode_records(&node.image().snapshot_records());
    node.log().lock().compact(node.applied(), data).unwrap();
}

#[test]
fn a_voter_serves_what_it_applied_after_the_index_and_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = voter(dir.path());
    let election = node.applied();
    assert!(election >= 1, "the leader's empty entry");
    node.propose_blocking(&topic()).unwrap();
    node.propose_blocking(&partition(0)).unwrap();
    let applied = node.applied();

    let all = entries(answer(&node, 0, usize::MAX).unwrap());
    let indexes: Vec<u64> = all.iter().map(|entry| entry.index).collect();
    assert_eq!(indexes, (1..=applied).collect::<Vec<_>>());
    assert!(all[..election as usize]
        .iter()
        .all(|entry| entry.records.is_empty()));
    assert_eq!(
        all[applied as usize - 1].records,
        encode_records(&partition(0))
    );

    let tail = entries(answer(&node, applied - 1, usize::MAX).unwrap());
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].index, applied);
    assert_eq!(answer(&node, applied, usize::MAX).unwrap(), None);
    assert_eq!(answer(&node, applied + 5, usize::MAX).unwrap(), None);

    // At least one entry whatever the bytes asked, and no more than fit.
    let one = entries(answer(&node, election, 1).unwrap());
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].index, election + 1);

    // Proposed and not yet committed: not served.
    node.propose(&partition(1)).unwrap();
    assert_eq!(answer(&node, applied, usize::MAX).unwrap(), None);
}

#[test]
fn an_observer_behind_the_compaction_gets_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = voter(dir.path());
    node.propose_blocking(&topic()).unwrap();
    let mut observer = Observed::default();
    assert!(observer
        .take(answer(&node, observer.index, usize::MAX).unwrap().unwrap())
        .unwrap());
    assert_eq!(observer.index, node.applied());
    assert_eq!(&observer.image, node.image());

    node.propose_blocking(&partition(0)).unwrap();
    node.propose_blocking(&partition(1)).unwrap();
    compact(&node);
    let snapshot = answer(&node, observer.index, usize::MAX).unwrap().unwrap();
    assert!(matches!(&snapshot, Fetched::Snapshot(at) if at.index == node.applied()));
    assert!(observer.take(snapshot).unwrap());
    assert_eq!(observer.index, node.applied());
    assert_eq!(&observer.image, node.image());

    node.propose_blocking(&partition(2)).unwrap();
    assert!(observer
        .take(answer(&node, observer.index, usize::MAX).unwrap().unwrap())
        .unwrap());
    assert_eq!(observer.index, node.applied());
    assert_eq!(&observer.image, node.image());
    assert_eq!(
        observer.image.topic_by_name("t").unwrap().partitions.len(),
        3
    );
}

#[test]
fn an_observer_refuses_answers_that_do_not_follow_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = voter(dir.path());
    node.propose_blocking(&topic()).unwrap();
    node.propose_blocking(&partition(0)).unwrap();
    let mut observer = Observed::default();
    let skipping = answer(&node, 1, usize::MAX).unwrap().unwrap();
    assert_eq!(
        observer.take(skipping),
        Err(ObserveError::OutOfOrder {
            applied: 0,
            given: 2
        })
    );
    assert_eq!(observer.index, 0);
    assert!(observer.take(Fetched::Entries(Vec::new())) == Ok(false));
    observer
        .take(answer(&node, 0, usize::MAX).unwrap().unwrap())
        .unwrap();
    let old = Fetched::Snapshot(FetchedEntry {
        index: 1,
        records: encode_records(&topic()),
    });
    assert!(matches!(
        observer.take(old),
        Err(ObserveError::OutOfOrder { .. })
    ));
    let garbage = Fetched::Snapshot(FetchedEntry {
        index: observer.index + 1,
        records: vec![0, 0, 0, 9, 1].into(),
    });
    assert!(matches!(
        observer.take(garbage),
        Err(ObserveError::Corrupt(_))
    ));
    assert_eq!(&observer.image, node.image());
}
