//! The cluster view built from images: three registered brokers, partitions
//! led here, elsewhere, by a fenced broker and by none; and the single node's
//! view of any image, which answers as shoal did before the view was the
//! cluster's. `cluster_view` serves the handlers' tests too.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use proptest::prelude::*;
use uuid::Uuid;

use super::brokers::{Broker, BrokerLayout, DEFAULT_LISTENER_NAME};
use super::controller::TopicTable;
use super::image::MetadataImage;
use super::records::{
    BrokerEndpoint, BrokerEpochRecord, MetadataRecord, PartitionChangeRecord, PartitionRecord,
    RegisterBrokerRecord, TopicRecord, NO_LEADER,
};
use super::{table, ClusterView, TopicMeta, NO_LEADER_EPOCH};

/// This node.
const HERE: i32 = 1;
const SHARDS: usize = 2;
const TOPIC: u128 = 0x7;

fn empty_view(layout: BrokerLayout) -> ClusterView {
    ClusterView {
        cluster_id: "c".into(),
        node_id: HERE,
        advertised_host: "here.example".into(),
        advertised_port: 9092,
        listener_name: DEFAULT_LISTENER_NAME.into(),
        broker_layout: layout,
        shard_count: SHARDS,
        controller_node_id: HERE,
        registered: Vec::new(),
        topics: BTreeMap::new(),
        topic_names_by_id: Default::default(),
        acls: Default::default(),
        scram: Default::default(),
        quotas: Default::default(),
        broker_configs: Default::default(),
    }
}

fn register(id: i32, endpoints: &[(&str, u16)], rack: Option<&str>) -> MetadataRecord {
    MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        broker_id: id,
        is_migrating_zk_broker: false,
        incarnation_id: Uuid::from_u128(id as u128),
        broker_epoch: 10 + i64::from(id),
        end_points: endpoints
            .iter()
            .map(|&(name, port)| BrokerEndpoint {
                name: name.to_string(),
                host: format!("node{id}.example"),
                port,
                security_protocol: 0,
            })
            .collect(),
        features: Vec::new(),
        rack: rack.map(str::to_string),
        fenced: false,
        in_controlled_shutdown: false,
        log_dirs: Vec::new(),
    })
}

/// (replicas, shards, leader, leader epoch) of each partition of topic `t`.
type Partitions<'a> = &'a [(&'a [i32], &'a [i32], i32, i32)];

fn partition(
    index: i32,
    (replicas, shards, leader, epoch): (&[i32], &[i32], i32, i32),
) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        partition_id: index,
        topic_id: Uuid::from_u128(TOPIC),
        replicas: replicas.to_vec(),
        isr: replicas.iter().copied().filter(|&r| r != 3).collect(),
        removing_replicas: Vec::new(),
        adding_replicas: Vec::new(),
        leader,
        leader_recovery_state: 0,
        leader_epoch: epoch,
        partition_epoch: epoch,
        directories: Vec::new(),
        shards: shards.to_vec(),
    })
}

/// Brokers 1 (here), 2 and 3 registered, 3 then fenced; broker 4 only on
/// another listener. Topic `t`: partition 0 led here at epoch 5, 1 led by 2
/// with a replica here, 2 led by 2 without one, 3 led by the fenced 3,
/// 4 with no leader.
fn cluster_image() -> MetadataImage {
    let partitions: Partitions = &[
        (&[1, 2, 3], &[1, 0, 0], 1, 5),
        (&[2, 1], &[0, 0], 2, 3),
        (&[2, 3], &[1, 1], 2, 0),
        (&[3, 1], &[0, 1], 3, 1),
        (&[1, 2], &[0, 0], NO_LEADER, 2),
    ];
    let mut records = vec![
        register(1, &[("PLAINTEXT", 9092), ("CONTROLLER", 9093)], None),
        register(
            2,
            &[("CONTROLLER", 19093), ("PLAINTEXT", 19092)],
            Some("r2"),
        ),
        register(3, &[("PLAINTEXT", 29092)], None),
        register(4, &[("INTERNAL", 39092)], None),
        MetadataRecord::FenceBroker(BrokerEpochRecord { id: 3, epoch: 13 }),
        MetadataRecord::Topic(TopicRecord {
            name: "t".into(),
            topic_id: Uuid::from_u128(TOPIC),
        }),
    ];
    records.extend(
        partitions
            .iter()
            .enumerate()
            .map(|(index, &p)| partition(index as i32, p)),
    );
    let mut image = MetadataImage::default();
    for record in &records {
        image.apply(record).expect("applies");
    }
    image
}

/// This node's view of `cluster_image`, for the handlers' tests.
pub(crate) fn cluster_view(layout: BrokerLayout) -> ClusterView {
    empty_view(layout).with_image(&cluster_image())
}

/// `cluster_view` after `records` (more topics, partition changes).
pub(crate) fn cluster_view_after(records: &[MetadataRecord]) -> ClusterView {
    let mut image = cluster_image();
    for record in records {
        image.apply(record).expect("applies");
    }
    empty_view(BrokerLayout::Node).with_image(&image)
}

fn broker(id: i32, host: &str, port: i32, rack: Option<&str>) -> Broker {
    Broker {
        id,
        host: host.into(),
        port,
        rack: rack.map(str::to_string),
    }
}

#[test]
fn the_brokers_are_the_live_registered_ones_on_the_clients_listener() {
    let view = empty_view(BrokerLayout::Node).with_image(&cluster_image());
    assert_eq!(
        view.brokers(),
        vec![
            broker(1, "here.example", 9092, None),
            broker(2, "node2.example", 19092, Some("r2")),
        ],
        "3 is fenced, 4 has no PLAINTEXT endpoint"
    );
    assert_eq!(
        view.broker(2),
        Some(broker(2, "node2.example", 19092, Some("r2")))
    );
    assert_eq!(view.broker(3), None);
    assert_eq!(
        view.fenced_brokers(),
        vec![broker(3, "node3.example", 29092, None)]
    );
    assert!(view.node_is_live(1) && view.node_is_live(2));
    assert!(!view.node_is_live(3) && !view.node_is_live(4) && !view.node_is_live(5));
    assert_eq!(view.controller_id(), HERE);
    let elsewhere = ClusterView {
        controller_node_id: 2,
        ..view
    };
    assert_eq!(elsewhere.controller_id(), 2);
}

#[test]
fn leaders_are_the_images_when_live() {
    let view = empty_view(BrokerLayout::Node).with_image(&cluster_image());
    let t = view.topic("t").expect("topic").clone();
    let leaders: Vec<i32> = (0..5).map(|p| view.leader_id(&t, p)).collect();
    assert_eq!(leaders, vec![1, 2, 2, NO_LEADER, NO_LEADER]);
    assert_eq!(
        view.leader(&t, 1),
        Some((broker(2, "node2.example", 19092, Some("r2")), 3))
    );
    assert_eq!(view.leader(&t, 3), None, "its leader is fenced");
    let state = view.state(&t, 0);
    assert_eq!((&state.replicas, &state.isr), (&vec![1, 2, 3], &vec![1, 2]));
}

#[test]
fn only_the_leader_serves_and_epochs_are_checked_first() {
    let view = empty_view(BrokerLayout::Node).with_image(&cluster_image());
    let t = view.topic("t").expect("topic").clone();
    assert_eq!(
        view.lead(&t, 0, NO_LEADER_EPOCH),
        Ok(1),
        "the replica's shard"
    );
    assert_eq!(view.lead(&t, 0, 5), Ok(1));
    assert_eq!(view.lead(&t, 0, 4), Err(ResponseError::FencedLeaderEpoch));
    assert_eq!(view.lead(&t, 0, 6), Err(ResponseError::UnknownLeaderEpoch));
    assert_eq!(
        view.lead(&t, 1, NO_LEADER_EPOCH),
        Err(ResponseError::NotLeaderOrFollower)
    );
    assert_eq!(view.lead(&t, 1, 2), Err(ResponseError::FencedLeaderEpoch));
    assert_eq!(
        view.lead(&t, 2, 7),
        Err(ResponseError::NotLeaderOrFollower),
        "not a replica here: no epoch to compare"
    );
    assert_eq!(
        view.lead(&t, 4, NO_LEADER_EPOCH),
        Err(ResponseError::NotLeaderOrFollower)
    );
}

#[test]
fn a_shard_opens_only_what_this_node_replicates() {
    let view = empty_view(BrokerLayout::Node).with_image(&cluster_image());
    let t = view.topic("t").expect("topic").clone();
    // Here: partitions 0 (shard 1), 1 (shard 0), 3 (shard 1), 4 (shard 0).
    assert_eq!(view.local_partitions(&t, 0), vec![1, 4]);
    assert_eq!(view.local_partitions(&t, 1), vec![0, 3]);
    assert_eq!(view.led_partitions(&t, 0), Vec::<i32>::new());
    assert_eq!(view.led_partitions(&t, 1), vec![0]);
}

#[test]
fn shard_aware_names_local_replicas_by_shard_and_others_by_node() {
    let view = empty_view(BrokerLayout::PerShard { port_base: 9100 }).with_image(&cluster_image());
    let t = view.topic("t").expect("topic").clone();
    assert_eq!(view.leader_id(&t, 0), 1001, "led here, on shard 1");
    assert_eq!(view.leader_id(&t, 1), 2);
    assert_eq!(view.replica_broker_id(&t, 1, 1), 1000);
    assert_eq!(
        view.brokers().iter().map(|b| b.id).collect::<Vec<_>>(),
        vec![2, 1000, 1001]
    );
    assert_eq!(view.broker(1001).map(|b| b.port), Some(9101));
    assert_eq!(view.controller_id(), 1000);
}

/// `cluster_image` with topic `t` grown by a partition 5 on this node,
/// and a topic `u` made with one partition here and one on node 2.
fn grown_image() -> MetadataImage {
    let mut image = cluster_image();
    let u = Uuid::from_u128(0x8);
    let mut records = vec![
        partition(5, (&[1], &[1], 1, 0)),
        MetadataRecord::Topic(TopicRecord {
            name: "u".into(),
            topic_id: u,
        }),
    ];
    for (index, replicas) in [(0, [2]), (1, [1])] {
        let MetadataRecord::Partition(mut record) =
            partition(index, (&replicas, &[0], replicas[0], 0))
        else {
            unreachable!()
        };
        record.topic_id = u;
        records.push(MetadataRecord::Partition(record));
    }
    for record in &records {
        image.apply(record).expect("applies");
    }
    image
}

#[test]
fn an_install_opens_what_arrives_here_and_removes_what_left() {
    let before = empty_view(BrokerLayout::Node).with_image(&cluster_image());
    let after = before.with_image(&grown_image());
    let arriving: Vec<(String, Vec<i32>)> = before
        .arriving_in(&after)
        .into_iter()
        .map(|(meta, partitions)| (meta.name.clone(), partitions))
        .collect();
    assert_eq!(
        arriving,
        vec![("t".to_string(), vec![5]), ("u".to_string(), vec![1])],
        "only the new partitions with a replica here"
    );
    assert!(after.arriving_in(&after).is_empty(), "idempotent");
    assert!(before.removed_in(&after).is_empty());
    // From nothing (start-up opens these itself), all of this node's.
    let empty = empty_view(BrokerLayout::Node);
    let all: Vec<Vec<i32>> = empty
        .arriving_in(&before)
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    assert_eq!(all, vec![vec![0, 1, 3, 4]]);

    // `t` deleted, and re-created under its name: the old one goes, the
    // new one's partitions all arrive.
    let mut image = grown_image();
    image
        .apply(&MetadataRecord::RemoveTopic {
            topic_id: Uuid::from_u128(TOPIC),
        })
        .expect("applies");
    let deleted = after.with_image(&image);
    let removed: Vec<Uuid> = after
        .removed_in(&deleted)
        .iter()
        .map(|meta| meta.id)
        .collect();
    assert_eq!(removed, vec![Uuid::from_u128(TOPIC)]);
    assert!(after.arriving_in(&deleted).is_empty());
    let again = Uuid::from_u128(0x9);
    image
        .apply(&MetadataRecord::Topic(TopicRecord {
            name: "t".into(),
            topic_id: again,
        }))
        .expect("applies");
    let MetadataRecord::Partition(mut record) = partition(0, (&[1], &[1], 1, 0)) else {
        unreachable!()
    };
    record.topic_id = again;
    image
        .apply(&MetadataRecord::Partition(record))
        .expect("applies");
    let recreated = after.with_image(&image);
    assert_eq!(after.removed_in(&recreated).len(), 1);
    let arriving = after.arriving_in(&recreated);
    assert_eq!(arriving.len(), 1);
    assert_eq!((arriving[0].0.id, arriving[0].1.clone()), (again, vec![0]));

    let t = after.topic("t").expect("topic").clone();
    let by_owner = after.hosted_by_owner(&t, 0..t.partitions);
    assert_eq!(
        by_owner.into_iter().collect::<Vec<_>>(),
        vec![(0, vec![1, 4]), (1, vec![0, 3, 5])],
        "partition 2 has no replica here"
    );
}

/// A coordinator follows its partition's leader: partition 0 of `t` is led
/// here on shard 1 until its leader is fenced away, then elected back.
#[test]
fn coordinators_move_with_leadership() {
    let led = empty_view(BrokerLayout::Node).with_image(&cluster_image());
    let mut image = cluster_image();
    image
        .apply(&MetadataRecord::PartitionChange(PartitionChangeRecord {
            leader: NO_LEADER,
            ..PartitionChangeRecord::new(Uuid::from_u128(TOPIC), 0)
        }))
        .expect("applies");
    let leaderless = led.with_image(&image);
    assert_eq!(led.leadership_moves(&leaderless, "t", 1), (vec![], vec![0]));
    assert_eq!(leaderless.leadership_moves(&led, "t", 1), (vec![0], vec![]));
    assert_eq!(led.leadership_moves(&led, "t", 1), (vec![], vec![]));
    assert_eq!(
        led.leadership_moves(&leaderless, "t", 0),
        (vec![], vec![]),
        "another shard's"
    );
    assert_eq!(
        led.leadership_moves(&leaderless, "absent", 1),
        (vec![], vec![])
    );
    let empty = empty_view(BrokerLayout::Node);
    assert_eq!(
        empty.leadership_moves(&led, "t", 1),
        (vec![0], vec![]),
        "a topic made here"
    );
}

fn arbitrary_table() -> impl Strategy<Value = TopicTable> {
    let topic = (
        prop::collection::vec(0u32..SHARDS as u32, 1..6),
        prop::collection::btree_map("[a-c]", "[0-9]", 0..2),
    );
    prop::collection::vec(topic, 0..4).prop_map(|topics| {
        topics
            .into_iter()
            .enumerate()
            .map(|(index, (placement, configs))| {
                let meta = TopicMeta {
                    name: format!("t{index}"),
                    id: Uuid::from_u128(index as u128 + 1),
                    partitions: placement.len() as i32,
                    configs,
                    placement,
                    states: Vec::new(),
                };
                (meta.name.clone(), Arc::new(meta))
            })
            .collect()
    })
}

proptest! {
    /// One node, whatever its topics: it is the only broker, the
    /// controller, and leads every partition at epoch 0 on the shard its
    /// placement names, with itself as the replicas and ISR.
    #[test]
    fn a_single_nodes_view_answers_as_before(wanted in arbitrary_table(), shard_aware in any::<bool>()) {
        let mut image = MetadataImage::default();
        for record in table::changes(&image, &wanted, HERE, SHARDS) {
            prop_assert_eq!(image.apply(&record), Ok(()));
        }
        let layout = if shard_aware {
            BrokerLayout::PerShard { port_base: 9100 }
        } else {
            BrokerLayout::Node
        };
        let view = empty_view(layout).with_image(&image);
        let this_node: Vec<Broker> = (0..if shard_aware { SHARDS } else { 1 })
            .map(|shard| view.broker_of_shard(shard))
            .collect();
        prop_assert_eq!(view.brokers(), this_node);
        prop_assert_eq!(view.controller_id(), view.broker_of_shard(0).id);
        for (name, meta) in &wanted {
            let served = view.topic(name).expect("the image holds it");
            for p in 0..meta.partitions {
                let owner = meta.placement[p as usize] as usize;
                let leader = view.broker_of_shard(owner).id;
                prop_assert_eq!(view.leader_id(served, p), leader);
                prop_assert_eq!(view.lead(served, p, NO_LEADER_EPOCH), Ok(owner));
                prop_assert_eq!(view.lead(served, p, 0), Ok(owner));
                let state = view.state(served, p);
                prop_assert_eq!((&state.replicas, &state.isr), (&vec![HERE], &vec![HERE]));
                prop_assert_eq!(state.leader_epoch, 0);
            }
            let opened: usize = (0..SHARDS).map(|s| view.local_partitions(served, s).len()).sum();
            prop_assert_eq!(opened, meta.partitions as usize);
        }
    }
}
