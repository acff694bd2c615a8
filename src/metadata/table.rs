//! The topic table the shards serve from (`controller::TopicTable`) and
//! the metadata records that hold it, each way: the records that turn the
//! image's table into another (`changes`: what the controller proposes
//! for a plan, what start-up commits to migrate `shoal-topics.json` or to
//! re-place partitions on fewer shards), and the table an image holds
//! (`topic_table`).
//!
//! A partition the controller makes has the replicas, ISR and leader its
//! plan placed (`TopicMeta::states`, at epoch 0; this node alone for a
//! table without states, from before the metadata log). The shard that
//! owns it on this node rides in the PartitionRecord's shoal-only tagged
//! field (`PartitionRecord::shards`), so the image alone rebuilds the
//! table; other nodes' replicas are written `NO_SHARD`, and each of those
//! nodes owns its replica on its own placement rule's shard (it knows its
//! shard count, the controller does not). The table carries each
//! partition's replicas, ISR, leader and leader epoch as the image holds
//! them, whoever wrote them; `changes` never rewrites the state of a
//! partition the image holds (leadership changes are other records).
//!
//! A new log starts with `bootstrap_records`.
//!
//! Invariant: pure. Applying `changes(image, table)` to `image` gives an
//! image whose `topic_table` is `table`.

use std::sync::Arc;

use super::controller::TopicTable;
use super::image::{MetadataImage, TopicImage};
use super::owner_shard;
use super::records::{
    ConfigRecord, FeatureLevelRecord, MetadataRecord, PartitionRecord, TopicRecord,
    CONFIG_RESOURCE_TOPIC,
};
use super::{PartitionState, TopicMeta};

/// The shard written for a replica on another node: that node chooses.
pub const NO_SHARD: i32 = -1;

/// Kafka's feature that versions the metadata records.
pub const METADATA_VERSION_FEATURE: &str = "metadata.version";
/// The `metadata.version` a new log is bootstrapped at: 4.0-IV3 (25),
/// Kafka 4.0's newest, whose records (PartitionRecord version 1 with
/// directories, no eligible leader replicas) are the ones shoal writes.
pub const METADATA_VERSION_LEVEL: i16 = 25;

/// The records a log needs before any other, as Kafka's storage format
/// writes them: the `metadata.version` feature level, when `image` has
/// none yet.
pub fn bootstrap_records(image: &MetadataImage) -> Vec<MetadataRecord> {
    if image.features.contains_key(METADATA_VERSION_FEATURE) {
        return Vec::new();
    }
    vec![MetadataRecord::FeatureLevel(FeatureLevelRecord {
        name: METADATA_VERSION_FEATURE.to_string(),
        feature_level: METADATA_VERSION_LEVEL,
    })]
}

/// The topic table `image` holds, each partition owned by the shard its
/// record names for `node_id`'s replica (the placement rule when none,
/// `NO_SHARD`, or when `node_id` holds no replica: such a partition is
/// never opened here), with its replicas and leader.
pub fn topic_table(image: &MetadataImage, node_id: i32, shard_count: usize) -> TopicTable {
    image
        .topics
        .values()
        .map(|topic| {
            let meta = topic_meta(image, topic, node_id, shard_count);
            (meta.name.clone(), Arc::new(meta))
        })
        .collect()
}

fn topic_meta(
    image: &MetadataImage,
    topic: &TopicImage,
    node_id: i32,
    shard_count: usize,
) -> TopicMeta {
    let placement = topic
        .partitions
        .iter()
        .map(|(&partition_id, partition)| {
            partition
                .replicas
                .iter()
                .position(|&replica| replica == node_id)
                .and_then(|at| partition.shards.get(at))
                .and_then(|&shard| u32::try_from(shard).ok())
                .unwrap_or_else(|| owner_shard(&topic.name, partition_id, shard_count) as u32)
        })
        .collect();
    let states = topic
        .partitions
        .values()
        .map(|partition| PartitionState {
            replicas: partition.replicas.clone(),
            isr: partition.isr.clone(),
            leader: partition.leader,
            leader_epoch: partition.leader_epoch,
            partition_epoch: partition.partition_epoch,
        })
        .collect();
    TopicMeta {
        name: topic.name.clone(),
        id: topic.id,
        partitions: topic.partitions.len() as i32,
        configs: image
            .configs
            .get(&(CONFIG_RESOURCE_TOPIC, topic.name.clone()))
            .cloned()
            .unwrap_or_default(),
        placement,
        states,
    }
}

/// The records that make `image`'s topic table `table` on node `node_id`:
/// removed topics first (a name may come back with a new id), then new
/// topics whole, then for a kept topic its new partitions, the partitions
/// that moved to another shard, and its changed config keys.
pub fn changes(
    image: &MetadataImage,
    table: &TopicTable,
    node_id: i32,
    shard_count: usize,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    let kept = |topic: &TopicImage| {
        table
            .get(&topic.name)
            .is_some_and(|meta| meta.id == topic.id)
    };
    for topic in image.topics.values().filter(|topic| !kept(topic)) {
        records.push(MetadataRecord::RemoveTopic { topic_id: topic.id });
    }
    for meta in table.values() {
        match image.topics.get(&meta.id).filter(|topic| kept(topic)) {
            None => new_topic(&mut records, meta, node_id, shard_count),
            Some(topic) => {
                let before = topic_meta(image, topic, node_id, shard_count);
                changed_topic(&mut records, &before, topic, meta, node_id, shard_count);
            }
        }
    }
    records
}

fn new_topic(records: &mut Vec<MetadataRecord>, meta: &TopicMeta, node_id: i32, shards: usize) {
    records.push(MetadataRecord::Topic(TopicRecord {
        name: meta.name.clone(),
        topic_id: meta.id,
    }));
    for partition in 0..meta.partitions {
        records.push(new_partition(meta, partition, node_id, shards));
    }
    for (name, value) in &meta.configs {
        records.push(topic_config(&meta.name, name, Some(value)));
    }
}

fn changed_topic(
    records: &mut Vec<MetadataRecord>,
    before: &TopicMeta,
    topic: &TopicImage,
    meta: &TopicMeta,
    node_id: i32,
    shards: usize,
) {
    for partition in 0..meta.partitions {
        let owner = meta.owner(partition, shards);
        match topic.partitions.get(&partition) {
            None => records.push(new_partition(meta, partition, node_id, shards)),
            Some(image) if before.owner(partition, shards) != owner => {
                // The same partition, its epochs kept, on another shard.
                records.push(MetadataRecord::Partition(PartitionRecord {
                    partition_id: partition,
                    topic_id: meta.id,
                    replicas: image.replicas.clone(),
                    isr: image.isr.clone(),
                    removing_replicas: image.removing_replicas.clone(),
                    adding_replicas: image.adding_replicas.clone(),
                    leader: image.leader,
                    leader_recovery_state: image.leader_recovery_state,
                    leader_epoch: image.leader_epoch,
                    partition_epoch: image.partition_epoch,
                    directories: image.directories.clone(),
                    shards: image
                        .replicas
                        .iter()
                        .zip(image.shards.iter().chain(std::iter::repeat(&NO_SHARD)))
                        .map(|(&replica, &shard)| {
                            if replica == node_id {
                                owner as i32
                            } else {
                                shard
                            }
                        })
                        .collect(),
                }));
            }
            Some(_) => {}
        }
    }
    for name in before.configs.keys() {
        if !meta.configs.contains_key(name) {
            records.push(topic_config(&meta.name, name, None));
        }
    }
    for (name, value) in &meta.configs {
        if before.configs.get(name) != Some(value) {
            records.push(topic_config(&meta.name, name, Some(value)));
        }
    }
}

/// A new partition as `meta` places it (this node alone when `meta` holds
/// no state for it), at partition epoch 0, with this node's owner shard.
fn new_partition(meta: &TopicMeta, partition: i32, node_id: i32, shards: usize) -> MetadataRecord {
    let state = meta
        .state(partition)
        .cloned()
        .unwrap_or_else(|| PartitionState::single_node(node_id));
    let owner = meta.owner(partition, shards) as i32;
    MetadataRecord::Partition(PartitionRecord {
        partition_id: partition,
        topic_id: meta.id,
        shards: state
            .replicas
            .iter()
            .map(|&replica| if replica == node_id { owner } else { NO_SHARD })
            .collect(),
        replicas: state.replicas,
        isr: state.isr,
        removing_replicas: Vec::new(),
        adding_replicas: Vec::new(),
        leader: state.leader,
        leader_recovery_state: 0,
        leader_epoch: state.leader_epoch,
        partition_epoch: 0,
        directories: Vec::new(),
    })
}

fn topic_config(topic: &str, name: &str, value: Option<&String>) -> MetadataRecord {
    MetadataRecord::Config(ConfigRecord {
        resource_type: CONFIG_RESOURCE_TOPIC,
        resource_name: topic.to_string(),
        name: name.to_string(),
        value: value.cloned(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use uuid::Uuid;

    use super::*;

    const NODE: i32 = 1;
    const SHARDS: usize = 3;

    fn meta(name: &str, id: u8, placement: Vec<u32>, configs: &[(&str, &str)]) -> Arc<TopicMeta> {
        Arc::new(TopicMeta {
            name: name.to_string(),
            id: Uuid::from_bytes([id; 16]),
            partitions: placement.len() as i32,
            configs: configs
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            placement,
            states: Vec::new(),
        })
    }

    fn table(topics: &[Arc<TopicMeta>]) -> TopicTable {
        topics
            .iter()
            .map(|meta| (meta.name.clone(), meta.clone()))
            .collect()
    }

    /// `table` without the partitions' states, as the tables these tests
    /// write hold them (a single node's, from before the metadata log):
    /// the image gives each to this node alone.
    fn stateless(table: TopicTable) -> TopicTable {
        table
            .into_iter()
            .map(|(name, meta)| {
                let states = &meta.states;
                assert!(
                    states
                        .iter()
                        .all(|state| *state == PartitionState::single_node(NODE)),
                    "one node's partitions: {states:?}"
                );
                let meta = TopicMeta {
                    states: Vec::new(),
                    ..meta.as_ref().clone()
                };
                (name, Arc::new(meta))
            })
            .collect()
    }

    fn apply(image: &mut MetadataImage, records: &[MetadataRecord]) {
        for record in records {
            image.apply(record).unwrap();
        }
    }

    #[test]
    fn a_created_topic_is_a_topic_record_its_partitions_and_configs() {
        let mut image = MetadataImage::default();
        let wanted = table(&[meta("t", 1, vec![2, 0], &[("retention.ms", "1000")])]);
        let records = changes(&image, &wanted, NODE, SHARDS);
        assert_eq!(records.len(), 4);
        let MetadataRecord::Partition(first) = &records[1] else {
            panic!("{records:?}");
        };
        assert_eq!(
            (&first.replicas, &first.isr, first.leader, &first.shards),
            (&vec![NODE], &vec![NODE], NODE, &vec![2])
        );
        apply(&mut image, &records);
        assert_eq!(stateless(topic_table(&image, NODE, SHARDS)), wanted);
        assert!(changes(&image, &wanted, NODE, SHARDS).is_empty());
    }

    #[test]
    fn growth_configs_moves_and_deletes_are_only_what_changed() {
        let mut image = MetadataImage::default();
        let before = table(&[
            meta("a", 1, vec![0, 1], &[("retention.ms", "1000"), ("x", "1")]),
            meta("b", 2, vec![1], &[]),
        ]);
        let records = changes(&image, &before, NODE, SHARDS);
        apply(&mut image, &records);
        let after = table(&[meta(
            "a",
            1,
            vec![2, 1, 0],
            &[("retention.ms", "2000"), ("y", "2")],
        )]);
        let records = changes(&image, &after, NODE, SHARDS);
        let removed = Uuid::from_bytes([2; 16]);
        assert_eq!(
            records[0],
            MetadataRecord::RemoveTopic { topic_id: removed }
        );
        // Partition 0 moved, 2 is new; 1 stays; x deleted, retention.ms and y set.
        let partitions: Vec<i32> = records
            .iter()
            .filter_map(|record| match record {
                MetadataRecord::Partition(record) => Some(record.partition_id),
                _ => None,
            })
            .collect();
        assert_eq!(partitions, vec![0, 2]);
        assert_eq!(records.len(), 1 + 2 + 3);
        apply(&mut image, &records);
        assert_eq!(stateless(topic_table(&image, NODE, SHARDS)), after);
    }

    #[test]
    fn a_topic_recreated_under_its_name_is_removed_then_made_anew() {
        let mut image = MetadataImage::default();
        let before = table(&[meta("t", 1, vec![0], &[])]);
        let records = changes(&image, &before, NODE, SHARDS);
        apply(&mut image, &records);
        let after = table(&[meta("t", 9, vec![1, 1], &[])]);
        let records = changes(&image, &after, NODE, SHARDS);
        apply(&mut image, &records);
        assert_eq!(stateless(topic_table(&image, NODE, SHARDS)), after);
    }

    /// A cluster's topic: partitions led here, by node 2 with a replica
    /// here, and by node 3 alone, as a plan places them.
    #[test]
    fn placed_states_are_written_as_planned_and_read_back() {
        let mut image = MetadataImage::default();
        let state = |replicas: &[i32]| PartitionState {
            replicas: replicas.to_vec(),
            isr: replicas.to_vec(),
            leader: replicas[0],
            leader_epoch: 0,
            partition_epoch: 0,
        };
        let planned = TopicMeta {
            states: vec![state(&[NODE, 2]), state(&[2, NODE]), state(&[3])],
            ..meta("t", 1, vec![2, 0, 1], &[]).as_ref().clone()
        };
        let wanted = table(&[Arc::new(planned)]);
        let records = changes(&image, &wanted, NODE, SHARDS);
        let written: Vec<(Vec<i32>, i32, Vec<i32>)> = records
            .iter()
            .filter_map(|record| match record {
                MetadataRecord::Partition(p) => {
                    Some((p.replicas.clone(), p.leader, p.shards.clone()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            written,
            vec![
                (vec![NODE, 2], NODE, vec![2, NO_SHARD]),
                (vec![2, NODE], 2, vec![NO_SHARD, 0]),
                (vec![3], 3, vec![NO_SHARD]),
            ]
        );
        apply(&mut image, &records);
        // Partition 2 has no replica here: its placement entry is the rule's.
        let mut read = topic_table(&image, NODE, SHARDS);
        assert_eq!(read["t"].placement[2], owner_shard("t", 2, SHARDS) as u32);
        Arc::make_mut(read.get_mut("t").unwrap()).placement[2] = 1;
        assert_eq!(read, wanted);
        assert!(changes(&image, &read, NODE, SHARDS).is_empty());
        // Node 2 owns its replicas on its own rule's shards, of its count.
        let there = topic_table(&image, 2, 5);
        let rule: Vec<u32> = (0..3).map(|p| owner_shard("t", p, 5) as u32).collect();
        assert_eq!(there["t"].placement, rule);
        assert_eq!(there["t"].states, read["t"].states);
    }

    fn arbitrary_table() -> impl Strategy<Value = TopicTable> {
        let topic = (
            0u8..6,
            prop::collection::vec(0u32..SHARDS as u32, 1..5),
            prop::collection::btree_map("[a-c]", "[0-9]{1,2}", 0..3),
        );
        prop::collection::vec(topic, 0..4).prop_map(|topics| {
            let mut table = BTreeMap::new();
            for (id, placement, configs) in topics {
                let name = format!("t{}", id % 3);
                let meta = TopicMeta {
                    name: name.clone(),
                    id: Uuid::from_bytes([id; 16]),
                    partitions: placement.len() as i32,
                    configs,
                    placement,
                    states: Vec::new(),
                };
                if !table
                    .values()
                    .any(|other: &Arc<TopicMeta>| other.id == meta.id)
                {
                    table.insert(name, Arc::new(meta));
                }
            }
            table
        })
    }

    proptest! {
        #[test]
        fn any_sequence_of_tables_replays_to_the_last(tables in prop::collection::vec(arbitrary_table(), 1..5)) {
            let mut image = MetadataImage::default();
            for wanted in &tables {
                // A topic never shrinks: grow each kept topic's wanted
                // count to at least what it has.
                let current = topic_table(&image, NODE, SHARDS);
                let wanted: TopicTable = wanted
                    .iter()
                    .map(|(name, meta)| {
                        let mut meta = meta.as_ref().clone();
                        if let Some(old) = current.get(name).filter(|old| old.id == meta.id) {
                            for partition in meta.partitions..old.partitions {
                                meta.placement.push(old.owner(partition, SHARDS) as u32);
                            }
                            meta.partitions = meta.partitions.max(old.partitions);
                        }
                        (name.clone(), Arc::new(meta))
                    })
                    .collect();
                let records = changes(&image, &wanted, NODE, SHARDS);
                for record in &records {
                    prop_assert_eq!(image.apply(record), Ok(()));
                }
                prop_assert_eq!(&stateless(topic_table(&image, NODE, SHARDS)), &wanted);
            }
        }
    }
}
