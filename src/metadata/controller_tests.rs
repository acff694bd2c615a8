//! The controller's decisions checked: Kafka's rules for each request,
//! placement over the registered brokers, and random requests that keep
//! the topic table sound.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::controller::*;
use super::image::MetadataImage;
use super::placer::{self, PlacementBroker};
use super::records::{MetadataRecord, RegisterBrokerRecord};
use super::{
    initial_placement, table, BrokerLayout, ClusterView, PartitionState, TopicMeta,
    CLUSTER_METADATA_TOPIC,
};
use crate::config::{BrokerConfig, ConfigOp};

fn view(layout: BrokerLayout) -> ClusterView {
    ClusterView {
        cluster_id: "c".into(),
        node_id: 1,
        advertised_host: "localhost".into(),
        advertised_port: 9092,
        broker_layout: layout,
        shard_count: 2,
        topics: BTreeMap::new(),
        topic_names_by_id: HashMap::new(),
        acls: Default::default(),
        scram: Default::default(),
        quotas: Default::default(),
        broker_configs: Default::default(),
        listener_name: "PLAINTEXT".into(),
        controller_node_id: 1,
        registered: Vec::new(),
    }
}

fn new_topic(name: &str, partitions: i32) -> NewTopic {
    NewTopic {
        name: name.to_string(),
        partitions,
        replication_factor: -1,
        configs: Vec::new(),
        assignments: Vec::new(),
        validate_only: false,
    }
}

/// This node alone, as placement sees an image that registers no broker.
fn alone() -> Vec<PlacementBroker> {
    placement_brokers(&MetadataImage::default(), Some(1))
}

/// The seeds a test's placements start from: Kafka's `MockRandom` seed.
fn seeds() -> impl FnMut() -> u64 {
    || 17
}

fn ids() -> impl FnMut() -> Uuid {
    let mut next = 0;
    move || {
        next += 1;
        Uuid::from_u128(next)
    }
}

fn code(result: &Result<impl Sized, KafkaError>) -> i16 {
    result.as_ref().err().map_or(0, |error| error.code)
}

/// The plans without a mutation quota; `mutations_are_counted_per_topic`
/// gives them one.
fn create_topics(
    config: &BrokerConfig,
    view: &ClusterView,
    brokers: &[PlacementBroker],
    topics: Vec<NewTopic>,
    seed: impl FnMut() -> u64,
    new_id: impl FnMut() -> Uuid,
) -> Plan<Arc<TopicMeta>> {
    super::controller::create_topics(config, view, brokers, topics, seed, new_id, &mut |_| Ok(()))
}

fn delete_topics(view: &ClusterView, topics: Vec<TopicRef>) -> Plan<(String, Uuid)> {
    super::controller::delete_topics(view, topics, &mut |_| Ok(()))
}

fn create_partitions(
    view: &ClusterView,
    brokers: &[PlacementBroker],
    growths: Vec<PartitionGrowth>,
    seed: impl FnMut() -> u64,
) -> Plan<()> {
    super::controller::create_partitions(view, brokers, growths, seed, &mut |_| Ok(()))
}

/// The partition counts a quota was asked for.
type Asked = Rc<RefCell<Vec<i32>>>;

/// A quota of `budget` partitions that refuses a topic once it is spent,
/// and the counts it was asked for.
fn budget_quota(budget: i32) -> (impl FnMut(i32) -> Result<(), KafkaError>, Asked) {
    let asked = Rc::new(RefCell::new(Vec::new()));
    let seen = asked.clone();
    let mut left = budget;
    let quota = move |partitions: i32| {
        seen.borrow_mut().push(partitions);
        if left < 0 {
            return Err(KafkaError::new(ResponseError::ThrottlingQuotaExceeded));
        }
        left -= partitions;
        Ok(())
    };
    (quota, asked)
}

#[test]
fn mutations_are_counted_per_topic() {
    let config = BrokerConfig::new(PathBuf::from("/tmp/x"), 2);
    let empty = view(BrokerLayout::Node);
    let throttled = ResponseError::ThrottlingQuotaExceeded.code();
    // A topic that fails its checks is not counted; one that finds the
    // budget spent is refused and not created.
    let (mut quota, asked) = budget_quota(2);
    let plan = super::controller::create_topics(
        &config,
        &empty,
        &alone(),
        vec![
            new_topic("a", 3),
            new_topic("zero", 0),
            new_topic("b", 2),
            new_topic("c", 1),
        ],
        seeds(),
        ids(),
        &mut quota,
    );
    let codes: Vec<i16> = plan.results.iter().map(code).collect();
    let invalid = ResponseError::InvalidPartitions.code();
    assert_eq!(codes, vec![0, invalid, throttled, throttled]);
    assert_eq!(*asked.borrow(), vec![3, 2, 1]);
    assert_eq!(plan.table.keys().collect::<Vec<_>>(), vec!["a"]);
    let current = empty.with_topics(plan.table);

    // Growth counts the partitions added.
    let (mut quota, asked) = budget_quota(0);
    let grow = |count| PartitionGrowth {
        topic: "a".into(),
        count,
        assignments: None,
        validate_only: false,
    };
    let plan = super::controller::create_partitions(
        &current,
        &alone(),
        vec![grow(5)],
        seeds(),
        &mut quota,
    );
    assert_eq!(code(&plan.results[0]), 0);
    assert_eq!(*asked.borrow(), vec![2]);

    // A refused deletion keeps the topic.
    let (mut quota, _) = budget_quota(-1);
    let plan =
        super::controller::delete_topics(&current, vec![TopicRef::Name("a".into())], &mut quota);
    assert_eq!(code(&plan.results[0]), throttled);
    assert!(plan.table.contains_key("a") && plan.delete.is_empty());
}

#[test]
fn creation_checks_each_topic_and_plans_the_opens() {
    let config = BrokerConfig::new(PathBuf::from("/tmp/x"), 2);
    let empty = view(BrokerLayout::Node);
    let mut bad_config = new_topic("c", 1);
    bad_config.configs = vec![("segment.bytes".into(), "1".into())];
    let mut dry = new_topic("d", 2);
    dry.validate_only = true;
    let plan = create_topics(
        &config,
        &empty,
        &alone(),
        vec![
            new_topic("a", -1),
            new_topic("a", 1),
            new_topic("bad name!", 1),
            bad_config,
            dry,
            new_topic("zero", 0),
            new_topic(CLUSTER_METADATA_TOPIC, 1),
        ],
        seeds(),
        ids(),
    );
    let codes: Vec<i16> = plan.results.iter().map(code).collect();
    assert_eq!(
        codes,
        vec![
            0,
            ResponseError::TopicAlreadyExists.code(),
            ResponseError::InvalidTopicException.code(),
            ResponseError::InvalidConfig.code(),
            0,
            ResponseError::InvalidPartitions.code(),
            ResponseError::InvalidRequest.code(),
        ]
    );
    assert_eq!(plan.table.keys().collect::<Vec<_>>(), vec!["a"]);
    assert_eq!(plan.open.len(), 1, "validate_only opens nothing");
    assert_eq!((plan.open[0].0, plan.open[0].1.partitions), (0, 1));
    assert!(plan.changes_table());

    let mut plan = plan;
    plan.open_failed(0, None, KafkaError::new(ResponseError::KafkaStorageError));
    assert!(
        plan.table.is_empty(),
        "a topic that cannot open is not created"
    );
    plan.save_failed("disk");
    assert!(plan.results.iter().all(|result| result.is_err()));
}

#[test]
fn deletion_growth_and_config_changes_follow_kafkas_rules() {
    let config = BrokerConfig::new(PathBuf::from("/tmp/x"), 2);
    let created = create_topics(
        &config,
        &view(BrokerLayout::Node),
        &alone(),
        vec![new_topic("t", 2)],
        seeds(),
        ids(),
    );
    let current = view(BrokerLayout::Node).with_topics(created.table);

    let plan = delete_topics(
        &current,
        vec![TopicRef::Name("t".into()), TopicRef::Id(Uuid::from_u128(9))],
    );
    assert_eq!(
        plan.results[0].as_ref().ok(),
        Some(&("t".to_string(), Uuid::from_u128(1)))
    );
    assert_eq!(code(&plan.results[1]), ResponseError::UnknownTopicId.code());
    assert!(plan.table.is_empty() && plan.delete.len() == 1);

    let grow = |count, assignments| PartitionGrowth {
        topic: "t".into(),
        count,
        assignments,
        validate_only: false,
    };
    let plan = create_partitions(
        &current,
        &alone(),
        vec![
            grow(1, None),
            grow(2, None),
            grow(4, Some(vec![vec![1]])),
            grow(3, None),
        ],
        seeds(),
    );
    let codes: Vec<i16> = plan.results.iter().map(code).collect();
    assert_eq!(
        codes,
        vec![
            ResponseError::InvalidPartitions.code(),
            ResponseError::InvalidPartitions.code(),
            ResponseError::InvalidReplicaAssignment.code(),
            0,
        ]
    );
    assert_eq!(plan.table["t"].partitions, 3);
    assert_eq!(plan.table["t"].placement.len(), 3);

    let change = |op| TopicConfigChange {
        topic: "t".into(),
        change: ConfigChange::Incremental(vec![("retention.ms".into(), op)]),
        validate_only: false,
    };
    let plan = alter_topic_configs(
        &config,
        &current,
        vec![
            change(ConfigOp::Set("1000".into())),
            change(ConfigOp::Append("x".into())),
        ],
    );
    assert_eq!(code(&plan.results[0]), 0);
    assert_eq!(code(&plan.results[1]), ResponseError::InvalidConfig.code());
    assert!(plan.reconfigured && plan.changes_table());
    assert_eq!(plan.table["t"].configs["retention.ms"], "1000");
    let unchanged = alter_topic_configs(&config, &current, vec![]);
    assert!(!unchanged.changes_table());
}

/// An image registering `brokers` (id, rack, fenced).
fn registered(brokers: &[(i32, Option<&str>, bool)]) -> MetadataImage {
    let mut image = MetadataImage::default();
    for &(id, rack, fenced) in brokers {
        let record = MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            broker_id: id,
            is_migrating_zk_broker: false,
            incarnation_id: Uuid::from_u128(id as u128),
            broker_epoch: 10 + i64::from(id),
            end_points: Vec::new(),
            features: Vec::new(),
            rack: rack.map(str::to_string),
            fenced,
            in_controlled_shutdown: false,
            log_dirs: Vec::new(),
        });
        image.apply(&record).expect("applies");
    }
    image
}

/// Each partition's (replicas, leader) in a topic `plan` made.
fn placed(meta: &TopicMeta) -> Vec<(Vec<i32>, i32)> {
    meta.states
        .iter()
        .map(|state| (state.replicas.clone(), state.leader))
        .collect()
}

fn created(plan: &Plan<Arc<TopicMeta>>, index: usize) -> Arc<TopicMeta> {
    match &plan.results[index] {
        Ok(meta) => meta.clone(),
        Err(error) => panic!("request {index}: {error:?}"),
    }
}

fn message(result: &Result<impl Sized, KafkaError>) -> (i16, String) {
    let error = result.as_ref().err().expect("an error");
    (error.code, error.message.clone().unwrap_or_default())
}

#[test]
fn a_topic_spreads_over_three_brokers_as_kafkas_placer_does() {
    let config = BrokerConfig::new(PathBuf::from("/tmp/x"), 2);
    let brokers = placement_brokers(
        &registered(&[(1, None, false), (2, None, false), (3, None, false)]),
        None,
    );
    let plan = create_topics(
        &config,
        &view(BrokerLayout::Node),
        &brokers,
        vec![new_topic("t", 12)],
        seeds(),
        ids(),
    );
    let meta = created(&plan, 0);
    let kafka = placer::place_new_topic(&brokers, 12, 1, 17).expect("placed");
    let expected: Vec<(Vec<i32>, i32)> =
        kafka.into_iter().map(|p| (p.replicas, p.leader)).collect();
    assert_eq!(placed(&meta), expected);
    for broker in 1..=3 {
        let led = meta
            .states
            .iter()
            .filter(|state| state.leader == broker)
            .count();
        assert_eq!(led, 4, "broker {broker} leads a third");
    }
    assert!(meta
        .states
        .iter()
        .all(|state| state.isr == state.replicas && state.leader_epoch == 0));
    assert_eq!(
        meta.placement,
        initial_placement("t", 12, 2),
        "shards by the rule"
    );
    // The table written and read back is the plan's, on every node.
    let mut image = registered(&[]);
    for record in table::changes(&image, &plan.table, 1, 2) {
        image.apply(&record).expect("applies");
    }
    assert_eq!(table::topic_table(&image, 1, 2), plan.table);
    let there = table::topic_table(&image, 2, 3);
    assert_eq!(there["t"].states, meta.states);
}

#[test]
fn racks_and_fenced_brokers_shape_placement() {
    let config = BrokerConfig::new(PathBuf::from("/tmp/x"), 2);
    let create = |brokers: &[PlacementBroker], topic: NewTopic| {
        let plan = create_topics(
            &config,
            &view(BrokerLayout::Node),
            brokers,
            vec![topic],
            seeds(),
            ids(),
        );
        plan.results.into_iter().next().expect("one result")
    };
    let racked = placement_brokers(
        &registered(&[
            (1, Some("a"), false),
            (2, Some("a"), false),
            (3, Some("b"), false),
        ]),
        None,
    );
    let meta = create(&racked, new_topic("t", 6)).expect("placed");
    let kafka = placer::place_new_topic(&racked, 6, 1, 17).expect("placed");
    let expected: Vec<(Vec<i32>, i32)> =
        kafka.into_iter().map(|p| (p.replicas, p.leader)).collect();
    assert_eq!(placed(&meta), expected);
    let on_b = meta.states.iter().filter(|state| state.leader == 3).count();
    assert_eq!(on_b, 3, "rack b's one broker leads half: racks first");

    let fenced = placement_brokers(
        &registered(&[(1, None, false), (2, None, false), (3, None, true)]),
        None,
    );
    let meta = create(&fenced, new_topic("t", 8)).expect("placed");
    assert!(
        meta.states.iter().all(|state| state.leader != 3),
        "{:?}",
        meta.states
    );
    assert!(meta.states.iter().any(|state| state.leader == 1));
    assert!(meta.states.iter().any(|state| state.leader == 2));

    let all_fenced = placement_brokers(&registered(&[(1, None, true), (2, None, true)]), None);
    assert_eq!(
        message(&create(&all_fenced, new_topic("t", 1))),
        (
            ResponseError::InvalidReplicationFactor.code(),
            "Unable to replicate the partition 1 time(s): All brokers are currently fenced."
                .to_string()
        )
    );
}

#[test]
fn replication_factors_go_up_to_the_registered_brokers() {
    let config = BrokerConfig::new(PathBuf::from("/tmp/x"), 2);
    let three = placement_brokers(
        &registered(&[(1, None, false), (2, None, false), (3, None, false)]),
        None,
    );
    let with_factor = |factor: i16| NewTopic {
        replication_factor: factor,
        ..new_topic(&format!("t{factor}"), 3)
    };
    let plan = create_topics(
        &config,
        &view(BrokerLayout::Node),
        &three,
        vec![with_factor(4), with_factor(3), with_factor(0)],
        seeds(),
        ids(),
    );
    let invalid = ResponseError::InvalidReplicationFactor.code();
    assert_eq!(
        message(&plan.results[0]),
        (invalid, "Unable to replicate the partition 4 time(s): The target replication factor of 4 cannot be reached because only 3 broker(s) are registered.".to_string())
    );
    let created = plan.results[1].as_ref().expect("RF=3 over 3 brokers");
    for state in &created.states {
        let mut replicas = state.replicas.clone();
        replicas.sort_unstable();
        assert_eq!(replicas, vec![1, 2, 3]);
        assert_eq!(state.isr, state.replicas, "every replica starts in the ISR");
        assert_eq!(state.leader, state.replicas[0]);
        assert_eq!((state.leader_epoch, state.partition_epoch), (0, 0));
    }
    assert_eq!(code_of(&plan.results[2]), invalid);
    // A single node that registers none is still one broker.
    let plan = create_topics(
        &config,
        &view(BrokerLayout::Node),
        &alone(),
        vec![with_factor(2)],
        seeds(),
        ids(),
    );
    assert!(message(&plan.results[0])
        .1
        .ends_with("only 1 broker(s) are registered."));
}

#[test]
fn internal_topics_take_their_factor_capped_at_the_unfenced_brokers() {
    let config = BrokerConfig::new(PathBuf::from("/tmp/x"), 2);
    let internal = |name: &str| NewTopic {
        name: name.to_string(),
        replication_factor: -1,
        ..new_topic(name, 2)
    };
    let factor = |plan: &Plan<Arc<TopicMeta>>, at: usize| {
        plan.results[at].as_ref().expect("created").states[0]
            .replicas
            .len()
    };
    // One node with Kafka's default of 3: one replica, not a refusal.
    let plan = create_topics(
        &config,
        &view(BrokerLayout::Node),
        &alone(),
        vec![
            internal("__consumer_offsets"),
            internal("__transaction_state"),
        ],
        seeds(),
        ids(),
    );
    assert_eq!((factor(&plan, 0), factor(&plan, 1)), (1, 1));
    // Four brokers, one fenced: 3 for the default; 2 where asked.
    let four = placement_brokers(
        &registered(&[
            (1, None, false),
            (2, None, false),
            (3, None, true),
            (4, None, false),
        ]),
        None,
    );
    let mut two = config.clone();
    two.set("transaction.state.log.replication.factor", "2")
        .unwrap();
    let plan = create_topics(
        &two,
        &view(BrokerLayout::Node),
        &four,
        vec![
            internal("__consumer_offsets"),
            internal("__transaction_state"),
            internal("plain"),
        ],
        seeds(),
        ids(),
    );
    assert_eq!(factor(&plan, 0), 3);
    assert_eq!(factor(&plan, 1), 2);
    assert_eq!(factor(&plan, 2), 1, "default.replication.factor");
}

fn code_of(result: &Result<impl Sized, KafkaError>) -> i16 {
    result.as_ref().err().map_or(0, |error| error.code)
}

#[test]
fn placement_counts_only_registered_brokers_once_one_registers() {
    assert_eq!(
        alone(),
        vec![PlacementBroker {
            id: 1,
            rack: None,
            fenced: false,
            in_controlled_shutdown: false
        }],
        "no registration yet: the lone broker's node alone"
    );
    assert_eq!(
        placement_brokers(&registered(&[(2, None, false)]), Some(1)),
        placement_brokers(&registered(&[(2, None, false)]), None),
        "once a broker registers, only the registered"
    );
    let others = placement_brokers(&registered(&[(2, Some("r"), false), (3, None, true)]), None);
    let seen: Vec<(i32, bool)> = others.iter().map(|b| (b.id, b.fenced)).collect();
    assert_eq!(
        seen,
        vec![(2, false), (3, true)],
        "this node is not registered: not a broker"
    );
    let config = BrokerConfig::new(PathBuf::from("/tmp/x"), 2);
    let plan = create_topics(
        &config,
        &view(BrokerLayout::Node),
        &others,
        vec![new_topic("t", 4)],
        seeds(),
        ids(),
    );
    let meta = created(&plan, 0);
    assert!(meta.states.iter().all(|state| state.replicas == vec![2]));
}

#[test]
fn a_pure_controller_is_never_given_a_replica() {
    // Node 3 is a voter and the controller, no broker: brokers 1 and 2
    // registered, it not.
    let config = BrokerConfig::new(PathBuf::from("/tmp/x"), 2);
    let controller = ClusterView {
        node_id: 3,
        controller_node_id: 3,
        ..view(BrokerLayout::Node)
    };
    let brokers = placement_brokers(&registered(&[(1, None, false), (2, None, false)]), None);
    let plan = create_topics(
        &config,
        &controller,
        &brokers,
        vec![new_topic("t", 12)],
        seeds(),
        ids(),
    );
    let meta = created(&plan, 0);
    for leader in [1, 2] {
        let led = meta.states.iter().filter(|s| s.leader == leader).count();
        assert_eq!(led, 6, "broker {leader} leads half");
    }
    assert!(meta.states.iter().all(|s| !s.replicas.contains(&3)));
    assert!((0..12).all(|partition| !controller.hosts(&meta, partition)));
    let grown = create_partitions(
        &controller.with_topics(plan.table.clone()),
        &brokers,
        vec![PartitionGrowth {
            topic: "t".into(),
            count: 20,
            assignments: None,
            validate_only: false,
        }],
        seeds(),
    );
    assert_eq!(code(&grown.results[0]), 0);
    assert!(grown.table["t"]
        .states
        .iter()
        .all(|s| !s.replicas.contains(&3)));
    // A client naming the controller in its assignment: no such broker.
    let named = assigned("u", &[(0, &[3])]);
    let plan = create_topics(&config, &controller, &brokers, vec![named], seeds(), ids());
    assert_eq!(
        code(&plan.results[0]),
        ResponseError::InvalidReplicaAssignment.code()
    );
}

#[test]
fn with_no_broker_registered_creation_answers_as_kafkas_controller() {
    let config = BrokerConfig::new(PathBuf::from("/tmp/x"), 2);
    let controller = ClusterView {
        node_id: 3,
        ..view(BrokerLayout::Node)
    };
    let none = placement_brokers(&MetadataImage::default(), None);
    assert!(none.is_empty(), "not even the controller's own node");
    let plan = create_topics(
        &config,
        &controller,
        &none,
        vec![new_topic("t", 3), new_topic("u", -1)],
        seeds(),
        ids(),
    );
    let fenced = (
        ResponseError::InvalidReplicationFactor.code(),
        "Unable to replicate the partition 1 time(s): All brokers are currently fenced."
            .to_string(),
    );
    assert_eq!(message(&plan.results[0]), fenced);
    assert_eq!(message(&plan.results[1]), fenced);
    assert!(plan.table.is_empty() && plan.open.is_empty());
    let fenced_only = placement_brokers(&registered(&[(1, None, true)]), None);
    let plan = create_topics(
        &config,
        &controller,
        &fenced_only,
        vec![new_topic("t", 3)],
        seeds(),
        ids(),
    );
    assert_eq!(message(&plan.results[0]), fenced);
}

fn assigned(name: &str, assignments: &[(i32, &[i32])]) -> NewTopic {
    NewTopic {
        partitions: -1,
        replication_factor: -1,
        assignments: assignments
            .iter()
            .map(|&(index, brokers)| (index, brokers.to_vec()))
            .collect(),
        ..new_topic(name, -1)
    }
}

#[test]
fn explicit_assignments_are_checked_and_kept() {
    let config = BrokerConfig::new(PathBuf::from("/tmp/x"), 2);
    let brokers = placement_brokers(
        &registered(&[(1, None, false), (2, None, false), (3, None, true)]),
        None,
    );
    let plan = create_topics(
        &config,
        &view(BrokerLayout::Node),
        &brokers,
        vec![
            assigned("a", &[(0, &[2, 1]), (1, &[1, 3])]),
            assigned("b", &[(0, &[4])]),
            assigned("c", &[(0, &[1]), (1, &[1, 2])]),
            assigned("d", &[(0, &[1, 2]), (1, &[2, 1])]),
            NewTopic {
                partitions: 2,
                ..assigned("e", &[(0, &[1])])
            },
            assigned("f", &[(1, &[1])]),
            assigned("g", &[(0, &[1]), (1, &[3])]),
        ],
        seeds(),
        ids(),
    );
    // Two replicas each, one fenced: kept, the fenced one out of the ISR.
    let meta = created(&plan, 0);
    assert_eq!(placed(&meta), vec![(vec![2, 1], 2), (vec![1, 3], 1)]);
    let isrs: Vec<Vec<i32>> = meta.states.iter().map(|state| state.isr.clone()).collect();
    assert_eq!(isrs, vec![vec![2, 1], vec![1]]);
    let invalid_assignment = ResponseError::InvalidReplicaAssignment.code();
    assert_eq!(
        message(&plan.results[1]),
        (
            invalid_assignment,
            "The manual partition assignment includes broker 4, but no such broker is registered."
                .to_string()
        )
    );
    assert_eq!(
        code_of(&plan.results[2]),
        invalid_assignment,
        "replica counts differ"
    );
    assert_eq!(
        placed(&created(&plan, 3)),
        vec![(vec![1, 2], 1), (vec![2, 1], 2)],
        "two replicas each"
    );
    assert_eq!(
        code_of(&plan.results[4]),
        ResponseError::InvalidRequest.code()
    );
    assert_eq!(code_of(&plan.results[5]), invalid_assignment, "not from 0");
    assert_eq!(
        message(&plan.results[6]),
        (invalid_assignment, "All brokers specified in the manual partition assignment for partition 1 are fenced or in controlled shutdown.".to_string())
    );
    let plan = create_topics(
        &config,
        &view(BrokerLayout::Node),
        &brokers,
        vec![assigned("a", &[(0, &[2]), (1, &[1]), (2, &[1])])],
        seeds(),
        ids(),
    );
    let meta = created(&plan, 0);
    assert_eq!(
        placed(&meta),
        vec![(vec![2], 2), (vec![1], 1), (vec![1], 1)]
    );
    assert_eq!(meta.placement, initial_placement("a", 3, 2));
}

#[test]
fn growth_is_placed_over_the_brokers_or_where_assigned() {
    let config = BrokerConfig::new(PathBuf::from("/tmp/x"), 2);
    let brokers = placement_brokers(
        &registered(&[(1, None, false), (2, None, false), (3, None, false)]),
        None,
    );
    let plan = create_topics(
        &config,
        &view(BrokerLayout::Node),
        &brokers,
        vec![new_topic("t", 3)],
        seeds(),
        ids(),
    );
    let current = view(BrokerLayout::Node).with_topics(plan.table);
    let before = current.topic("t").expect("made").clone();
    let grow = |count, assignments| PartitionGrowth {
        topic: "t".into(),
        count,
        assignments,
        validate_only: false,
    };
    let plan = create_partitions(&current, &brokers, vec![grow(9, None)], seeds());
    let grown = plan.table["t"].clone();
    assert_eq!(
        &grown.states[..3],
        &before.states[..],
        "existing partitions stay"
    );
    let kafka = placer::place_new_partitions(&brokers, 6, 1, 17).expect("placed");
    let added: Vec<(Vec<i32>, i32)> = kafka.into_iter().map(|p| (p.replicas, p.leader)).collect();
    assert_eq!(placed(&grown)[3..], added[..]);
    assert_eq!(grown.placement, initial_placement("t", 9, 2));

    let plan = create_partitions(
        &current,
        &brokers,
        vec![grow(5, Some(vec![vec![3], vec![2]]))],
        seeds(),
    );
    assert!(plan.results[0].is_ok());
    let grown = plan.table["t"].clone();
    assert_eq!(placed(&grown)[3..], [(vec![3], 3), (vec![2], 2)]);
    let plan = create_partitions(
        &current,
        &brokers,
        vec![grow(4, Some(vec![vec![5]]))],
        seeds(),
    );
    assert_eq!(
        code_of(&plan.results[0]),
        ResponseError::InvalidReplicaAssignment.code(),
        "no broker 5"
    );
}

#[test]
fn shard_aware_assignments_name_this_nodes_shards() {
    let config = BrokerConfig::new(PathBuf::from("/tmp/x"), 2);
    let layout = BrokerLayout::PerShard { port_base: 9100 };
    let plan = create_topics(
        &config,
        &view(layout),
        &alone(),
        vec![
            assigned("a", &[(0, &[1001]), (1, &[1001]), (2, &[1000])]),
            assigned("b", &[(0, &[1])]),
        ],
        seeds(),
        ids(),
    );
    let meta = created(&plan, 0);
    assert_eq!(meta.placement, vec![1, 1, 0]);
    assert!(meta
        .states
        .iter()
        .all(|state| *state == PartitionState::single_node(1)));
    assert_eq!(
        code_of(&plan.results[1]),
        ResponseError::InvalidReplicaAssignment.code(),
        "the node id is no broker in shard-aware mode"
    );
    let current = view(layout).with_topics(plan.table);
    let growth = PartitionGrowth {
        topic: "a".into(),
        count: 4,
        assignments: Some(vec![vec![1001]]),
        validate_only: false,
    };
    let plan = create_partitions(&current, &alone(), vec![growth], seeds());
    assert_eq!(plan.table["a"].placement, vec![1, 1, 0, 1]);
    assert_eq!(plan.table["a"].states[3], PartitionState::single_node(1));
}

/// One admin request of a random client.
#[derive(Debug, Clone)]
enum Request {
    Create { topic: u8, partitions: i32 },
    Delete { topic: u8 },
    Grow { topic: u8, count: i32 },
    Configure { topic: u8, retention_ms: i64 },
}

fn request() -> impl proptest::strategy::Strategy<Value = Request> {
    use proptest::prelude::*;
    prop_oneof![
        (0..4u8, -1..6i32).prop_map(|(topic, partitions)| Request::Create { topic, partitions }),
        (0..4u8).prop_map(|topic| Request::Delete { topic }),
        (0..4u8, 0..8i32).prop_map(|(topic, count)| Request::Grow { topic, count }),
        (0..4u8, -2..5i64).prop_map(|(topic, retention_ms)| Request::Configure {
            topic,
            retention_ms
        }),
    ]
}

proptest::proptest! {
    /// Whatever clients ask, a request succeeds exactly when Kafka's
    /// rules allow it, and the table stays sound: every topic placed on
    /// existing shards, ids unique and kept, partitions never fewer,
    /// existing partitions never moved.
    #[test]
    fn random_requests_keep_the_topic_table_sound(
        requests in proptest::collection::vec(request(), 1..40)
    ) {
        let config = BrokerConfig::new(PathBuf::from("/tmp/x"), 2);
        let mut current = view(BrokerLayout::Node);
        let mut new_id = ids();
        for request in requests {
            let before = current.topics.clone();
            let (ok, allowed, table) = match request {
                Request::Create { topic, partitions } => {
                    let name = format!("t{topic}");
                    let plan = create_topics(
                        &config,
                        &current,
                        &alone(),
                        vec![new_topic(&name, partitions)],
                        seeds(),
                        &mut new_id,
                    );
                    let allowed = !before.contains_key(&name) && partitions != 0;
                    (plan.results[0].is_ok(), allowed, plan.table)
                }
                Request::Delete { topic } => {
                    let name = format!("t{topic}");
                    let plan = delete_topics(&current, vec![TopicRef::Name(name.clone())]);
                    (plan.results[0].is_ok(), before.contains_key(&name), plan.table)
                }
                Request::Grow { topic, count } => {
                    let name = format!("t{topic}");
                    let growth = PartitionGrowth {
                        topic: name.clone(),
                        count,
                        assignments: None,
                        validate_only: false,
                    };
                    let plan = create_partitions(&current, &alone(), vec![growth], seeds());
                    let allowed = before.get(&name).is_some_and(|meta| count > meta.partitions);
                    (plan.results[0].is_ok(), allowed, plan.table)
                }
                Request::Configure { topic, retention_ms } => {
                    let name = format!("t{topic}");
                    let change = TopicConfigChange {
                        topic: name.clone(),
                        change: ConfigChange::Incremental(vec![(
                            "retention.ms".to_string(),
                            ConfigOp::Set(retention_ms.to_string()),
                        )]),
                        validate_only: false,
                    };
                    let plan = alter_topic_configs(&config, &current, vec![change]);
                    let allowed = before.contains_key(&name) && retention_ms >= -1;
                    (plan.results[0].is_ok(), allowed, plan.table)
                }
            };
            proptest::prop_assert_eq!(ok, allowed);
            let mut seen_ids = std::collections::BTreeSet::new();
            for (name, meta) in &table {
                proptest::prop_assert_eq!(&meta.name, name);
                proptest::prop_assert!(meta.placement_fits(current.shard_count));
                proptest::prop_assert!(seen_ids.insert(meta.id), "ids are unique");
                if let Some(earlier) = before.get(name) {
                    proptest::prop_assert_eq!(earlier.id, meta.id);
                    proptest::prop_assert!(meta.partitions >= earlier.partitions);
                    proptest::prop_assert_eq!(
                        &earlier.placement[..],
                        &meta.placement[..earlier.placement.len()]
                    );
                }
            }
            current = current.with_topics(table);
        }
    }
}
