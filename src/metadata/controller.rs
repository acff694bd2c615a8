//! The metadata controller's decisions, as a pure state machine: it checks
//! topic creation, deletion, config changes and partition growth against the
//! current topic table and the broker's config, and returns a `Plan`: the
//! next table, the answer for each request, and the partitions the owner
//! shards must open or remove. `shard/controller.rs` drives it (on
//! `CONTROLLER_SHARD`): it carries out the plan's opens, writes the table,
//! broadcasts the new snapshot to every shard and only then answers, as
//! `shard/groups.rs` drives the group state machine of `group/`.
//!
//! Invariant: no IO, no clock, no shards, no randomness of its own (topic
//! ids come from the caller): the same table and requests always give the
//! same plan. It imports no `shard` or `server` (`tests/architecture.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::brokers::LocalBroker;
use super::{
    initial_placement, validate_topic_name, ClusterView, TopicMeta, CLUSTER_METADATA_TOPIC,
};
use crate::config::{
    apply_config_ops, validated_overrides, BrokerConfig, ConfigError, ConfigOp,
    PARTITIONS_PER_TOPIC_MAX,
};

/// The shard that runs the controller: the only one that changes the topic
/// table, and the broker clients are told is the controller.
pub const CONTROLLER_SHARD: usize = 0;

/// The topic table: every topic by name.
pub type TopicTable = BTreeMap<String, Arc<TopicMeta>>;

/// A Kafka error code with the message to send back with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaError {
    pub code: i16,
    pub message: Option<String>,
}

impl KafkaError {
    pub fn new(error: ResponseError) -> KafkaError {
        KafkaError {
            code: error.code(),
            message: None,
        }
    }

    pub fn with_message(error: ResponseError, message: String) -> KafkaError {
        KafkaError {
            code: error.code(),
            message: Some(message),
        }
    }
}

/// A topic to create, as the controller receives it.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1: the broker's `num.partitions`.
    pub partitions: i32,
    /// -1: the broker's `default.replication.factor`.
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
    /// The owner shard of each partition, when the client assigned the
    /// replicas to shards' brokers (shard-aware mode); None: the placement rule.
    pub placement: Option<Vec<u32>>,
    pub validate_only: bool,
}

/// A change to one topic's config overrides, as the controller receives it.
#[derive(Debug, Clone)]
pub struct TopicConfigChange {
    pub topic: String,
    pub change: ConfigChange,
    pub validate_only: bool,
}

#[derive(Debug, Clone)]
pub enum ConfigChange {
    /// IncrementalAlterConfigs: these operations, in order.
    Incremental(Vec<(String, ConfigOp)>),
    /// AlterConfigs: this whole override set replaces the old one.
    Replace(Vec<(String, String)>),
}

/// A topic to grow (CreatePartitions), as the controller receives it.
#[derive(Debug, Clone)]
pub struct PartitionGrowth {
    pub topic: String,
    /// The partition count wanted, the existing partitions included.
    pub count: i32,
    /// The replicas (broker ids) of each new partition, when the client
    /// chose them.
    pub assignments: Option<Vec<Vec<i32>>>,
    pub validate_only: bool,
}

/// A topic to delete, by name or by id.
#[derive(Debug, Clone)]
pub enum TopicRef {
    Name(String),
    Id(Uuid),
}

/// What one batch of requests does, decided before anything is carried out.
#[derive(Debug)]
pub struct Plan<T> {
    /// The topic table once every request that succeeded is applied.
    pub table: TopicTable,
    /// One answer per request, in request order.
    pub results: Vec<Result<T, KafkaError>>,
    /// Topics whose owner shards must open their partitions (created or
    /// grown), with the index of the request each answers.
    pub open: Vec<(usize, Arc<TopicMeta>)>,
    /// Topics whose owner shards must remove their partitions.
    pub delete: Vec<Arc<TopicMeta>>,
    /// Some topic's config overrides change.
    pub reconfigured: bool,
}

impl<T> Plan<T> {
    fn new(table: TopicTable, requests: usize) -> Plan<T> {
        Plan {
            table,
            results: Vec::with_capacity(requests),
            open: Vec::new(),
            delete: Vec::new(),
            reconfigured: false,
        }
    }

    /// True when the table changes: only then is it written and broadcast.
    pub fn changes_table(&self) -> bool {
        !self.open.is_empty() || !self.delete.is_empty() || self.reconfigured
    }

    /// The owners could not open the partitions of request `index`: the
    /// topic goes back to `before` (absent when it was new) and the request
    /// fails with `error`.
    pub fn open_failed(&mut self, index: usize, before: Option<Arc<TopicMeta>>, error: KafkaError) {
        let Some((_, meta)) = self.open.iter().find(|(at, _)| *at == index) else {
            return;
        };
        match before {
            Some(before) => self.table.insert(meta.name.clone(), before),
            None => self.table.remove(&meta.name),
        };
        self.results[index] = Err(error);
    }

    /// The table could not be written: nothing is installed and every
    /// request that succeeded fails with KAFKA_STORAGE_ERROR.
    pub fn save_failed(&mut self, error: &str) {
        for result in self.results.iter_mut().filter(|result| result.is_ok()) {
            *result = Err(KafkaError::with_message(
                ResponseError::KafkaStorageError,
                error.to_string(),
            ));
        }
    }
}

/// CreateTopics: each topic checked (name, partition count, replication
/// factor, configs) and, unless `validate_only`, added with an id from
/// `new_id`.
pub fn create_topics(
    config: &BrokerConfig,
    view: &ClusterView,
    topics: Vec<NewTopic>,
    mut new_id: impl FnMut() -> Uuid,
) -> Plan<Arc<TopicMeta>> {
    let mut plan = Plan::new(view.topics.clone(), topics.len());
    for topic in topics {
        if plan.table.contains_key(&topic.name) {
            plan.results.push(Err(KafkaError::with_message(
                ResponseError::TopicAlreadyExists,
                format!("Topic '{}' already exists.", topic.name),
            )));
            continue;
        }
        let (partitions, configs) = match check_new_topic(config, &topic) {
            Ok(checked) => checked,
            Err(error) => {
                plan.results.push(Err(error));
                continue;
            }
        };
        let placement = match &topic.placement {
            Some(owners) if owners.len() == partitions as usize => owners.clone(),
            _ => initial_placement(&topic.name, partitions, view.shard_count),
        };
        let meta = Arc::new(TopicMeta {
            placement,
            name: topic.name,
            id: new_id(),
            partitions,
            configs,
            states: Vec::new(),
        });
        if !topic.validate_only {
            plan.table.insert(meta.name.clone(), meta.clone());
            plan.open.push((plan.results.len(), meta.clone()));
        }
        plan.results.push(Ok(meta));
    }
    plan
}

/// DeleteTopics: each topic found by name or id leaves the table; its
/// partitions are to be removed by their owners (per `view`, which still
/// holds it).
pub fn delete_topics(view: &ClusterView, topics: Vec<TopicRef>) -> Plan<(String, Uuid)> {
    let mut plan = Plan::new(view.topics.clone(), topics.len());
    for topic in topics {
        let found = match &topic {
            TopicRef::Name(name) => plan.table.get(name).cloned(),
            TopicRef::Id(id) => plan.table.values().find(|meta| meta.id == *id).cloned(),
        };
        match found {
            Some(meta) => {
                plan.table.remove(&meta.name);
                plan.results.push(Ok((meta.name.clone(), meta.id)));
                plan.delete.push(meta);
            }
            None => plan.results.push(Err(match topic {
                TopicRef::Name(_) => KafkaError::new(ResponseError::UnknownTopicOrPartition),
                TopicRef::Id(_) => KafkaError::new(ResponseError::UnknownTopicId),
            })),
        }
    }
    plan
}

/// IncrementalAlterConfigs and AlterConfigs on topics: the new override set
/// of each is checked whole (INVALID_CONFIG) and, unless `validate_only`,
/// replaces the old one.
pub fn alter_topic_configs(
    config: &BrokerConfig,
    view: &ClusterView,
    changes: Vec<TopicConfigChange>,
) -> Plan<()> {
    let mut plan = Plan::new(view.topics.clone(), changes.len());
    for change in changes {
        let Some(meta) = plan.table.get(&change.topic).cloned() else {
            plan.results.push(Err(unknown_topic(&change.topic)));
            continue;
        };
        let configs = match change.change {
            ConfigChange::Incremental(ops) => apply_config_ops(config, &meta.configs, &ops),
            ConfigChange::Replace(pairs) => validated_overrides(pairs),
        };
        match configs {
            Ok(configs) => {
                if !change.validate_only && configs != meta.configs {
                    let meta = TopicMeta {
                        configs,
                        ..meta.as_ref().clone()
                    };
                    plan.table.insert(change.topic, Arc::new(meta));
                    plan.reconfigured = true;
                }
                plan.results.push(Ok(()));
            }
            Err(error) => plan.results.push(Err(invalid_config(error))),
        }
    }
    plan
}

/// CreatePartitions: each topic grown to the count asked for, the new
/// partitions placed by the rule or on the shards whose brokers the client
/// named (shard-aware mode).
pub fn create_partitions(view: &ClusterView, growths: Vec<PartitionGrowth>) -> Plan<()> {
    let mut plan = Plan::new(view.topics.clone(), growths.len());
    for growth in growths {
        match check_growth(view, plan.table.get(&growth.topic), &growth) {
            Ok(meta) if !growth.validate_only => {
                let meta = Arc::new(meta);
                plan.table.insert(growth.topic, meta.clone());
                plan.open.push((plan.results.len(), meta));
                plan.results.push(Ok(()));
            }
            Ok(_) => plan.results.push(Ok(())),
            Err(error) => plan.results.push(Err(error)),
        }
    }
    plan
}

/// The partitions of `meta` by the shard that owns each, among `shard_count`.
pub fn partitions_by_owner(meta: &TopicMeta, shard_count: usize) -> BTreeMap<usize, Vec<i32>> {
    let mut by_owner: BTreeMap<usize, Vec<i32>> = BTreeMap::new();
    for partition in 0..meta.partitions {
        by_owner
            .entry(meta.owner(partition, shard_count))
            .or_default()
            .push(partition);
    }
    by_owner
}

/// Every result an error: the controller is shutting down.
pub fn unavailable<T>(count: usize) -> Vec<Result<T, KafkaError>> {
    (0..count)
        .map(|_| Err(KafkaError::new(ResponseError::BrokerNotAvailable)))
        .collect()
}

/// The partition count and the checked overrides of a topic to create.
fn check_new_topic(
    config: &BrokerConfig,
    topic: &NewTopic,
) -> Result<(i32, BTreeMap<String, String>), KafkaError> {
    validate_topic_name(&topic.name).map_err(|message| {
        KafkaError::with_message(ResponseError::InvalidTopicException, message)
    })?;
    if topic.name == CLUSTER_METADATA_TOPIC {
        // Kafka's answer (`ControllerApis.createTopics`).
        return Err(KafkaError::with_message(
            ResponseError::InvalidRequest,
            format!("Creation of internal topic {CLUSTER_METADATA_TOPIC} is prohibited."),
        ));
    }
    let partitions = if topic.partitions == -1 {
        config.num_partitions
    } else {
        topic.partitions
    };
    if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
        return Err(KafkaError::with_message(
            ResponseError::InvalidPartitions,
            format!("Number of partitions must be in [1, {PARTITIONS_PER_TOPIC_MAX}], got {partitions}."),
        ));
    }
    let replication = if topic.replication_factor == -1 {
        config.default_replication_factor
    } else {
        topic.replication_factor
    };
    if replication < 1 {
        return Err(KafkaError::with_message(
            ResponseError::InvalidReplicationFactor,
            "Replication factor must be larger than 0.".to_string(),
        ));
    }
    if replication > 1 {
        return Err(KafkaError::with_message(
            ResponseError::InvalidReplicationFactor,
            format!("Unable to replicate the partition {replication} time(s): The target replication factor of {replication} cannot be reached because only 1 broker(s) are registered."),
        ));
    }
    let configs = validated_overrides(topic.configs.iter().cloned()).map_err(invalid_config)?;
    Ok((partitions, configs))
}

/// The topic `growth` asks for, with Kafka's errors for a request that does
/// not grow it or places replicas elsewhere than this node's brokers. A new
/// partition assigned to a shard's broker (shard-aware mode) is placed on
/// that shard.
fn check_growth(
    view: &ClusterView,
    current: Option<&Arc<TopicMeta>>,
    growth: &PartitionGrowth,
) -> Result<TopicMeta, KafkaError> {
    let meta = current.ok_or_else(|| unknown_topic(&growth.topic))?;
    let (now, wanted) = (meta.partitions, growth.count);
    let invalid = |message| KafkaError::with_message(ResponseError::InvalidPartitions, message);
    if wanted < now {
        return Err(invalid(format!(
            "The topic {} currently has {now} partition(s); {wanted} would not be an increase.",
            growth.topic
        )));
    }
    if wanted == now {
        return Err(invalid(format!("Topic already has {now} partition(s).")));
    }
    if wanted > PARTITIONS_PER_TOPIC_MAX {
        return Err(invalid(format!(
            "Number of partitions must be in [1, {PARTITIONS_PER_TOPIC_MAX}], got {wanted}."
        )));
    }
    let mut grown = meta.grown(wanted, view.shard_count);
    let Some(assignments) = &growth.assignments else {
        return Ok(grown);
    };
    let bad = |message| KafkaError::with_message(ResponseError::InvalidReplicaAssignment, message);
    let added = wanted - now;
    if assignments.len() != added as usize {
        return Err(bad(format!(
            "Attempted to add {added} additional partition(s), but only {} assignment(s) were specified.",
            assignments.len()
        )));
    }
    for (index, replicas) in assignments.iter().enumerate() {
        if let Some(other) = replicas.iter().find(|&&id| view.local_broker(id).is_none()) {
            return Err(bad(format!(
                "The manual partition assignment includes broker {other}, but no broker with that ID is registered."
            )));
        }
        if replicas.len() != 1 {
            return Err(bad(format!(
                "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have 1 replica(s).",
                replicas.len()
            )));
        }
        if let Some(LocalBroker::Shard(owner)) = view.local_broker(replicas[0]) {
            grown.placement[now as usize + index] = owner as u32;
        }
    }
    Ok(grown)
}

/// Kafka's answer for a topic the table does not hold.
fn unknown_topic(topic: &str) -> KafkaError {
    KafkaError::with_message(
        ResponseError::UnknownTopicOrPartition,
        format!("Topic '{topic}' does not exist."),
    )
}

fn invalid_config(error: ConfigError) -> KafkaError {
    KafkaError::with_message(ResponseError::InvalidConfig, error.0)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;

    use super::*;
    use crate::metadata::BrokerLayout;

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
            placement: None,
            validate_only: false,
        }
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
            vec![
                new_topic("a", -1),
                new_topic("a", 1),
                new_topic("bad name!", 1),
                bad_config,
                dry,
                new_topic("zero", 0),
                new_topic(CLUSTER_METADATA_TOPIC, 1),
            ],
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
            vec![new_topic("t", 2)],
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
            vec![
                grow(1, None),
                grow(2, None),
                grow(4, Some(vec![vec![1]])),
                grow(3, None),
            ],
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
            (0..4u8, -1..6i32)
                .prop_map(|(topic, partitions)| Request::Create { topic, partitions }),
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
                            vec![new_topic(&name, partitions)],
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
                        let plan = create_partitions(&current, vec![growth]);
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
}
