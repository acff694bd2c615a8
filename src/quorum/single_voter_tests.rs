//! One voter's node over the durable store, as serve drives it at
//! start-up: elected alone, records proposed and applied to the image, the
//! log compacted to a snapshot of the image, and a restart that replays
//! snapshot and log to the same image.

use uuid::Uuid;

use super::node::QuorumSettings;
use super::QuorumNode;
use crate::metadata::records::{
    ConfigRecord, FeatureLevelRecord, MetadataRecord, PartitionChangeRecord, PartitionRecord,
    TopicRecord, CONFIG_RESOURCE_TOPIC,
};

fn settings(snapshot_bytes: u64) -> QuorumSettings {
    QuorumSettings {
        node_id: 1,
        voters: vec![1],
        election_timeout_ms: 1000,
        snapshot_bytes,
    }
}

/// A partition record of one replica on node 1 (the observer's tests
/// too).
pub(super) fn partition(topic_id: Uuid, partition_id: i32) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        partition_id,
        topic_id,
        replicas: vec![1],
        isr: vec![1],
        removing_replicas: Vec::new(),
        adding_replicas: Vec::new(),
        leader: 1,
        leader_recovery_state: 0,
        leader_epoch: 0,
        partition_epoch: 0,
        directories: Vec::new(),
        shards: vec![0],
    })
}

#[test]
fn a_single_voter_commits_records_and_replays_them_to_the_same_image() {
    let dir = tempfile::tempdir().unwrap();
    let topic_id = Uuid::from_bytes([7; 16]);
    // A snapshot after the first two proposals' bytes, not before.
    let first = [
        MetadataRecord::FeatureLevel(FeatureLevelRecord {
            name: "metadata.version".into(),
            feature_level: 25,
        }),
        MetadataRecord::Topic(TopicRecord {
            name: "t".into(),
            topic_id,
        }),
    ];
    let second = [partition(topic_id, 0), partition(topic_id, 1)];
    let snapshot_bytes = (super::node::encode_records(&first).len() + 1) as u64;
    let mut node = QuorumNode::open(dir.path(), settings(snapshot_bytes)).unwrap();
    node.elect_blocking().unwrap();
    assert!(node.is_leader());
    node.propose_blocking(&first).unwrap();
    assert_eq!(node.log().lock().last_snapshot().get_metadata().index, 0);
    node.propose_blocking(&second).unwrap();
    assert_eq!(
        node.log().lock().last_snapshot().get_metadata().index,
        node.applied()
    );

    let mut change = PartitionChangeRecord::new(topic_id, 1);
    change.leader = 1;
    node.propose_blocking(&[
        MetadataRecord::PartitionChange(change),
        MetadataRecord::Config(ConfigRecord {
            resource_type: CONFIG_RESOURCE_TOPIC,
            resource_name: "t".into(),
            name: "retention.ms".into(),
            value: Some("1000".into()),
        }),
    ])
    .unwrap();
    let snapshot_index = node.log().lock().last_snapshot().get_metadata().index;
    // Too few bytes for a snapshot: this one stays in the log's tail.
    node.propose_blocking(&[MetadataRecord::NoOp]).unwrap();
    assert!(node.applied() > snapshot_index);
    let image = node.image().clone();
    let partition = &image.topic_by_name("t").unwrap().partitions[&1];
    assert_eq!((partition.leader_epoch, partition.partition_epoch), (1, 1));
    drop(node);

    // Restart: the snapshot rebuilds the image to its index, the log's
    // committed entries after it bring the rest.
    let mut node = QuorumNode::open(dir.path(), settings(u64::MAX)).unwrap();
    assert_eq!(node.image(), &image);
    node.elect_blocking().unwrap();
    assert_eq!(node.image(), &image);
    assert_eq!(
        node.log().lock().last_snapshot().get_metadata().index,
        snapshot_index
    );
}

#[test]
fn a_node_that_is_not_leader_refuses_proposals() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = QuorumNode::open(dir.path(), settings(u64::MAX)).unwrap();
    assert!(matches!(
        node.propose(&[MetadataRecord::NoOp]),
        Err(super::QuorumError::NotLeader)
    ));
}
