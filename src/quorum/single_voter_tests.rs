//! A sketch of the driver the next increment wires into serve, as a test:
//! one voter's `RawNode` over the durable store, metadata records proposed,
//! committed entries applied to the image, a compaction to a snapshot of
//! the image, and a restart that replays snapshot and log to the same image.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use raft::eraftpb::{ConfState, Entry, EntryType};
use raft::{Config, RawNode, StateRole};
use uuid::Uuid;

use super::RaftLogStore;
use crate::metadata::image::MetadataImage;
use crate::metadata::records::{
    ConfigRecord, FeatureLevelRecord, MetadataRecord, PartitionChangeRecord, PartitionRecord,
    TopicRecord, CONFIG_RESOURCE_TOPIC,
};

const NODE_ID: u64 = 1;
/// Ready rounds a single voter needs to elect itself or commit a proposal
/// are a handful; the bound keeps a broken loop from hanging the test.
const ROUNDS_MAX: usize = 100;

fn start_node(store: RaftLogStore) -> RawNode<RaftLogStore> {
    let config = Config {
        id: NODE_ID,
        election_tick: 10,
        heartbeat_tick: 3,
        applied: store.last_snapshot().get_metadata().index,
        ..Config::default()
    };
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    RawNode::new(&config, store, &logger).unwrap()
}

/// A snapshot's data: each record's length (u32) and bytes.
fn snapshot_data(image: &MetadataImage) -> Bytes {
    let mut buf = BytesMut::new();
    for record in image.snapshot_records() {
        let bytes = record.encode();
        buf.put_u32(bytes.len() as u32);
        buf.put_slice(&bytes);
    }
    buf.freeze()
}

fn image_of_snapshot(mut data: &[u8]) -> MetadataImage {
    let mut image = MetadataImage::default();
    while data.has_remaining() {
        let len = data.get_u32() as usize;
        let record = MetadataRecord::decode(&data[..len]).unwrap();
        image.apply(&record).unwrap();
        data.advance(len);
    }
    image
}

fn apply_committed(image: &mut MetadataImage, applied: &mut u64, entries: Vec<Entry>) {
    for entry in entries {
        *applied = entry.index;
        // A new leader's first entry is empty.
        if entry.data.is_empty() || entry.get_entry_type() != EntryType::EntryNormal {
            continue;
        }
        let record = MetadataRecord::decode(&entry.data).unwrap();
        image.apply(&record).unwrap();
    }
}

/// One round of the ready loop: persist before acknowledging (a single
/// voter has no one to send to), apply what is committed.
fn on_ready(node: &mut RawNode<RaftLogStore>, image: &mut MetadataImage, applied: &mut u64) {
    if !node.has_ready() {
        return;
    }
    let mut ready = node.ready();
    assert!(ready.messages().is_empty() && ready.snapshot().get_metadata().index == 0);
    apply_committed(image, applied, ready.take_committed_entries());
    node.mut_store()
        .persist(ready.entries(), ready.hs())
        .unwrap();
    assert!(ready.persisted_messages().is_empty());
    let mut light = node.advance(ready);
    if let Some(commit) = light.commit_index() {
        node.mut_store().set_commit(commit).unwrap();
    }
    apply_committed(image, applied, light.take_committed_entries());
    node.advance_apply();
}

fn until(
    node: &mut RawNode<RaftLogStore>,
    image: &mut MetadataImage,
    applied: &mut u64,
    done: impl Fn(&RawNode<RaftLogStore>, u64) -> bool,
) {
    for _ in 0..ROUNDS_MAX {
        if done(node, *applied) {
            return;
        }
        on_ready(node, image, applied);
    }
    panic!("not done after {ROUNDS_MAX} ready rounds");
}

fn propose(
    node: &mut RawNode<RaftLogStore>,
    image: &mut MetadataImage,
    applied: &mut u64,
    record: &MetadataRecord,
) {
    node.propose(Vec::new(), record.encode().to_vec()).unwrap();
    // The proposal's index: in the unstable log, not yet in the store.
    let index = node.raft.raft_log.last_index();
    until(node, image, applied, |_, applied| applied >= index);
}

fn elect(node: &mut RawNode<RaftLogStore>, image: &mut MetadataImage, applied: &mut u64) {
    node.campaign().unwrap();
    until(node, image, applied, |node, _| {
        node.raft.state == StateRole::Leader
    });
}

#[test]
fn a_single_voter_commits_records_and_replays_them_to_the_same_image() {
    let dir = tempfile::tempdir().unwrap();
    let topic_id = Uuid::from_bytes([7; 16]);
    let mut store = RaftLogStore::open(dir.path()).unwrap();
    let mut voters = ConfState::default();
    voters.set_voters(vec![NODE_ID]);
    store.set_conf_state(&voters).unwrap();
    let mut node = start_node(store);
    let (mut image, mut applied) = (MetadataImage::default(), 0);
    elect(&mut node, &mut image, &mut applied);

    let partition = |partition_id| {
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
    };
    let mut change = PartitionChangeRecord::new(topic_id, 1);
    change.leader = 1;
    let before_compaction = [
        MetadataRecord::FeatureLevel(FeatureLevelRecord {
            name: "metadata.version".into(),
            feature_level: 27,
        }),
        MetadataRecord::Topic(TopicRecord {
            name: "t".into(),
            topic_id,
        }),
        partition(0),
        partition(1),
    ];
    for record in &before_compaction {
        propose(&mut node, &mut image, &mut applied, record);
    }
    let data = snapshot_data(&image);
    node.mut_store().compact(applied, data).unwrap();
    let after_compaction = [
        MetadataRecord::PartitionChange(change),
        MetadataRecord::Config(ConfigRecord {
            resource_type: CONFIG_RESOURCE_TOPIC,
            resource_name: "t".into(),
            name: "retention.ms".into(),
            value: Some("1000".into()),
        }),
    ];
    for record in &after_compaction {
        propose(&mut node, &mut image, &mut applied, record);
    }
    let partition = &image.topic_by_name("t").unwrap().partitions[&1];
    assert_eq!((partition.leader_epoch, partition.partition_epoch), (1, 1));
    drop(node);

    // Restart: the snapshot rebuilds the image to its index, the log's
    // committed entries after it bring the rest.
    let store = RaftLogStore::open(dir.path()).unwrap();
    let snapshot = store.last_snapshot().clone();
    let mut replayed = image_of_snapshot(&snapshot.data);
    let mut replayed_applied = snapshot.get_metadata().index;
    let mut node = start_node(store);
    elect(&mut node, &mut replayed, &mut replayed_applied);
    until(
        &mut node,
        &mut replayed,
        &mut replayed_applied,
        |_, applied_now| applied_now >= applied,
    );
    assert_eq!(replayed, image);
}
