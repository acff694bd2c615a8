//! The metadata image: the pure replay of the metadata log's records
//! (`records.rs`), with Kafka's apply rules (`MetadataDelta` and its
//! `TopicsDelta`, `ClusterDelta`, `ConfigurationsDelta`, `FeaturesDelta`,
//! `ProducerIdsDelta`, `AclsDelta`, and `PartitionRegistration.merge`), and the records
//! that rebuild it (a snapshot's content, `MetadataImage.write`'s order).
//!
//! Invariant: `apply` either applies a record whole or refuses it with a
//! [`ApplyError`] and leaves the image as it was; it never panics. Two
//! images fed the same records are equal, and an image rebuilt from its
//! own snapshot records equals it.

use std::collections::BTreeMap;
use std::fmt;

use uuid::Uuid;

use super::broker_configs::{BrokerConfigs, ConfigTouches};
use super::quotas::ClientQuotas;
use super::records::{
    BrokerEpochRecord, ConfigRecord, FeatureLevelRecord, MetadataRecord, PartitionChangeRecord,
    PartitionRecord, ProducerIdsRecord, RegisterBrokerRecord, TopicRecord, CONFIG_RESOURCE_BROKER,
    CONFIG_RESOURCE_BROKER_LOGGER, CONFIG_RESOURCE_CLIENT_METRICS, CONFIG_RESOURCE_GROUP,
    CONFIG_RESOURCE_TOPIC, NO_LEADER_CHANGE,
};
use super::scram::ScramCredentials;
use super::table::NO_SHARD;
use crate::security::acl::Acl;

/// A record that does not apply to the image it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyError {
    TopicIdExists(Uuid),
    TopicNameExists(String),
    UnknownTopicId(Uuid),
    InvalidPartitionId(i32),
    UnknownPartition {
        topic_id: Uuid,
        partition_id: i32,
    },
    /// Directories must be absent or one per replica (Kafka's
    /// `checkDirectories`).
    DirectoriesMismatch {
        replicas: usize,
        directories: usize,
    },
    UnknownConfigResourceType(i8),
    /// Fence or unfence of a broker not registered at that epoch.
    UnknownBrokerEpoch {
        id: i32,
        epoch: i64,
    },
    /// A producer id block that does not move the end forward.
    ProducerIdsBackwards {
        current: i64,
        next: i64,
    },
    /// A RemoveAccessControlEntryRecord for an ACL id the image lacks.
    UnknownAclId(Uuid),
    /// A removal of a SCRAM credential the image does not hold.
    UnknownScramCredential {
        name: String,
        mechanism: i8,
    },
    /// A ClientQuotaRecord whose entity Kafka could not have written.
    InvalidQuotaEntity(String),
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApplyError::TopicIdExists(id) => write!(f, "topic id {id} exists"),
            ApplyError::TopicNameExists(name) => write!(f, "topic {name} exists"),
            ApplyError::UnknownTopicId(id) => write!(f, "no topic with id {id}"),
            ApplyError::InvalidPartitionId(id) => write!(f, "invalid partition id {id}"),
            ApplyError::UnknownPartition {
                topic_id,
                partition_id,
            } => write!(f, "no partition {partition_id} in topic {topic_id}"),
            ApplyError::DirectoriesMismatch {
                replicas,
                directories,
            } => write!(f, "{directories} directories for {replicas} replicas"),
            ApplyError::UnknownConfigResourceType(kind) => {
                write!(f, "unknown config resource type {kind}")
            }
            ApplyError::UnknownBrokerEpoch { id, epoch } => {
                write!(f, "no broker {id} registered at epoch {epoch}")
            }
            ApplyError::ProducerIdsBackwards { current, next } => {
                write!(f, "producer id block end {next} is not past {current}")
            }
            ApplyError::UnknownAclId(id) => write!(f, "no ACL with id {id}"),
            ApplyError::UnknownScramCredential { name, mechanism } => {
                write!(
                    f,
                    "no SCRAM credential of mechanism {mechanism} for user {name}"
                )
            }
            ApplyError::InvalidQuotaEntity(message) => {
                write!(f, "invalid client quota entity: {message}")
            }
        }
    }
}

impl std::error::Error for ApplyError {}

/// One partition as the last records left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionImage {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub removing_replicas: Vec<i32>,
    pub adding_replicas: Vec<i32>,
    pub leader: i32,
    pub leader_recovery_state: i8,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub directories: Vec<Uuid>,
    /// The owner shard of each replica (`PartitionRecord::shards`).
    pub shards: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub partitions: BTreeMap<i32, PartitionImage>,
}

/// The whole cluster's metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    pub topics: BTreeMap<Uuid, TopicImage>,
    pub topic_ids_by_name: BTreeMap<String, Uuid>,
    /// Config overrides by (resource type, resource name), then key.
    pub configs: BTreeMap<(i8, String), BTreeMap<String, String>>,
    /// Each broker's last registration, its fenced state kept current.
    pub brokers: BTreeMap<i32, RegisterBrokerRecord>,
    /// Finalized feature levels; a level of 0 is no entry.
    pub features: BTreeMap<String, i16>,
    /// The first producer id of the next block to hand out.
    pub next_producer_id: i64,
    /// Every ACL, by its id (`acls.rs`).
    pub acls: BTreeMap<Uuid, Acl>,
    /// SCRAM credentials by user and mechanism.
    pub scram: ScramCredentials,
    /// Client quotas by entity.
    pub quotas: ClientQuotas,
    /// The BROKER ConfigRecords applied since this image was built: not
    /// metadata, and equal whatever the counts (`ConfigTouches`).
    pub config_touches: ConfigTouches,
}

/// The owner shards of `replicas`, each replica keeping the one it had
/// (`NO_SHARD` for a new one), so that a reassignment's new replica
/// list never moves a kept replica to another shard.
fn shards_of(partition: &PartitionImage, replicas: &[i32]) -> Vec<i32> {
    if partition.shards.is_empty() || partition.replicas == replicas {
        return partition.shards.clone();
    }
    replicas
        .iter()
        .map(|replica| {
            partition
                .replicas
                .iter()
                .position(|r| r == replica)
                .and_then(|at| partition.shards.get(at))
                .copied()
                .unwrap_or(NO_SHARD)
        })
        .collect()
}

impl MetadataImage {
    pub fn topic_by_name(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(self.topic_ids_by_name.get(name)?)
    }

    /// Applies one record, or refuses it and changes nothing.
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<(), ApplyError> {
        match record {
            MetadataRecord::RegisterBroker(record) => {
                self.brokers.insert(record.broker_id, record.clone());
            }
            MetadataRecord::Topic(record) => self.apply_topic(record)?,
            MetadataRecord::Partition(record) => self.apply_partition(record)?,
            MetadataRecord::Config(record) => self.apply_config(record)?,
            MetadataRecord::PartitionChange(record) => self.apply_partition_change(record)?,
            MetadataRecord::FenceBroker(record) => self.broker_at(record)?.fenced = true,
            MetadataRecord::UnfenceBroker(record) => self.broker_at(record)?.fenced = false,
            MetadataRecord::RemoveTopic { topic_id } => {
                let topic = self
                    .topics
                    .remove(topic_id)
                    .ok_or(ApplyError::UnknownTopicId(*topic_id))?;
                self.topic_ids_by_name.remove(&topic.name);
                // Kafka drops a removed topic's configs with it.
                self.configs.remove(&(CONFIG_RESOURCE_TOPIC, topic.name));
            }
            MetadataRecord::FeatureLevel(FeatureLevelRecord {
                name,
                feature_level,
            }) => {
                if *feature_level == 0 {
                    self.features.remove(name);
                } else {
                    self.features.insert(name.clone(), *feature_level);
                }
            }
            MetadataRecord::ProducerIds(record) => {
                if record.next_producer_id <= self.next_producer_id {
                    return Err(ApplyError::ProducerIdsBackwards {
                        current: self.next_producer_id,
                        next: record.next_producer_id,
                    });
                }
                self.next_producer_id = record.next_producer_id;
            }
            MetadataRecord::AccessControlEntry { id, acl } => {
                self.acls.insert(*id, acl.clone());
            }
            MetadataRecord::RemoveAccessControlEntry { id } => {
                self.acls.remove(id).ok_or(ApplyError::UnknownAclId(*id))?;
            }
            MetadataRecord::UserScramCredential(record) => self.scram.apply(record),
            MetadataRecord::RemoveUserScramCredential(record) => {
                if !self.scram.remove(record) {
                    return Err(ApplyError::UnknownScramCredential {
                        name: record.name.clone(),
                        mechanism: record.mechanism,
                    });
                }
            }
            MetadataRecord::ClientQuota(record) => self
                .quotas
                .apply(record)
                .map_err(ApplyError::InvalidQuotaEntity)?,
            MetadataRecord::NoOp => {}
        }
        Ok(())
    }

    fn apply_topic(&mut self, record: &TopicRecord) -> Result<(), ApplyError> {
        if self.topics.contains_key(&record.topic_id) {
            return Err(ApplyError::TopicIdExists(record.topic_id));
        }
        if self.topic_ids_by_name.contains_key(&record.name) {
            return Err(ApplyError::TopicNameExists(record.name.clone()));
        }
        self.topic_ids_by_name
            .insert(record.name.clone(), record.topic_id);
        self.topics.insert(
            record.topic_id,
            TopicImage {
                name: record.name.clone(),
                id: record.topic_id,
                partitions: BTreeMap::new(),
            },
        );
        Ok(())
    }

    /// A PartitionRecord sets the whole partition, new or not, as Kafka's
    /// `TopicDelta` does.
    fn apply_partition(&mut self, record: &PartitionRecord) -> Result<(), ApplyError> {
        if record.partition_id < 0 {
            return Err(ApplyError::InvalidPartitionId(record.partition_id));
        }
        check_directories(record.replicas.len(), &record.directories)?;
        let topic = self
            .topics
            .get_mut(&record.topic_id)
            .ok_or(ApplyError::UnknownTopicId(record.topic_id))?;
        topic.partitions.insert(
            record.partition_id,
            PartitionImage {
                replicas: record.replicas.clone(),
                isr: record.isr.clone(),
                removing_replicas: record.removing_replicas.clone(),
                adding_replicas: record.adding_replicas.clone(),
                leader: record.leader,
                leader_recovery_state: record.leader_recovery_state,
                leader_epoch: record.leader_epoch,
                partition_epoch: record.partition_epoch,
                directories: record.directories.clone(),
                shards: record.shards.clone(),
            },
        );
        Ok(())
    }

    /// Kafka's `PartitionRegistration.merge`: each field the record carries
    /// replaces the partition's; a new leader (anything but
    /// `NO_LEADER_CHANGE`, even the same one) bumps the leader epoch; every
    /// change bumps the partition epoch.
    fn apply_partition_change(&mut self, record: &PartitionChangeRecord) -> Result<(), ApplyError> {
        let partition = self
            .topics
            .get_mut(&record.topic_id)
            .ok_or(ApplyError::UnknownTopicId(record.topic_id))?
            .partitions
            .get_mut(&record.partition_id)
            .ok_or(ApplyError::UnknownPartition {
                topic_id: record.topic_id,
                partition_id: record.partition_id,
            })?;
        let replicas = record.replicas.as_ref().unwrap_or(&partition.replicas);
        let directories = record
            .directories
            .as_ref()
            .unwrap_or(&partition.directories);
        check_directories(replicas.len(), directories)?;
        let mut next = partition.clone();
        next.shards = shards_of(partition, replicas);
        next.replicas = replicas.clone();
        next.directories = directories.clone();
        for (field, change) in [
            (&mut next.isr, &record.isr),
            (&mut next.removing_replicas, &record.removing_replicas),
            (&mut next.adding_replicas, &record.adding_replicas),
        ] {
            if let Some(change) = change {
                field.clone_from(change);
            }
        }
        if record.leader != NO_LEADER_CHANGE {
            next.leader = record.leader;
            next.leader_epoch = next.leader_epoch.wrapping_add(1);
        }
        if record.leader_recovery_state != -1 {
            next.leader_recovery_state = record.leader_recovery_state;
        }
        next.partition_epoch = next.partition_epoch.wrapping_add(1);
        *partition = next;
        Ok(())
    }

    fn apply_config(&mut self, record: &ConfigRecord) -> Result<(), ApplyError> {
        if ![
            CONFIG_RESOURCE_TOPIC,
            CONFIG_RESOURCE_BROKER,
            CONFIG_RESOURCE_BROKER_LOGGER,
            CONFIG_RESOURCE_CLIENT_METRICS,
            CONFIG_RESOURCE_GROUP,
        ]
        .contains(&record.resource_type)
        {
            return Err(ApplyError::UnknownConfigResourceType(record.resource_type));
        }
        if record.resource_type == CONFIG_RESOURCE_BROKER {
            self.config_touches.touch(&record.resource_name);
        }
        let resource = (record.resource_type, record.resource_name.clone());
        match &record.value {
            Some(value) => {
                self.configs
                    .entry(resource)
                    .or_default()
                    .insert(record.name.clone(), value.clone());
            }
            None => {
                if let Some(configs) = self.configs.get_mut(&resource) {
                    configs.remove(&record.name);
                    // An empty map is no resource, so that a snapshot
                    // (which writes keys, not resources) rebuilds it.
                    if configs.is_empty() {
                        self.configs.remove(&resource);
                    }
                }
            }
        }
        Ok(())
    }

    /// The dynamic configs of every BROKER resource (`broker_configs`).
    pub fn broker_configs(&self) -> BrokerConfigs {
        self.configs
            .iter()
            .filter(|((resource_type, _), _)| *resource_type == CONFIG_RESOURCE_BROKER)
            .map(|((_, name), configs)| (name.clone(), configs.clone()))
            .collect()
    }

    /// Kafka's `ClusterDelta.getBrokerOrThrow`: the broker at that epoch.
    fn broker_at(
        &mut self,
        record: &BrokerEpochRecord,
    ) -> Result<&mut RegisterBrokerRecord, ApplyError> {
        self.brokers
            .get_mut(&record.id)
            .filter(|broker| broker.broker_epoch == record.epoch)
            .ok_or(ApplyError::UnknownBrokerEpoch {
                id: record.id,
                epoch: record.epoch,
            })
    }

    /// The records that rebuild this image from an empty one, in Kafka's
    /// snapshot order: features, brokers, topics with their partitions,
    /// configs, SCRAM credentials, the producer id block, ACLs.
    pub fn snapshot_records(&self) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        for (name, feature_level) in &self.features {
            records.push(MetadataRecord::FeatureLevel(FeatureLevelRecord {
                name: name.clone(),
                feature_level: *feature_level,
            }));
        }
        for broker in self.brokers.values() {
            records.push(MetadataRecord::RegisterBroker(broker.clone()));
        }
        for topic in self.topics.values() {
            records.push(MetadataRecord::Topic(TopicRecord {
                name: topic.name.clone(),
                topic_id: topic.id,
            }));
            for (partition_id, partition) in &topic.partitions {
                records.push(MetadataRecord::Partition(PartitionRecord {
                    partition_id: *partition_id,
                    topic_id: topic.id,
                    replicas: partition.replicas.clone(),
                    isr: partition.isr.clone(),
                    removing_replicas: partition.removing_replicas.clone(),
                    adding_replicas: partition.adding_replicas.clone(),
                    leader: partition.leader,
                    leader_recovery_state: partition.leader_recovery_state,
                    leader_epoch: partition.leader_epoch,
                    partition_epoch: partition.partition_epoch,
                    directories: partition.directories.clone(),
                    shards: partition.shards.clone(),
                }));
            }
        }
        for ((resource_type, resource_name), configs) in &self.configs {
            for (name, value) in configs {
                records.push(MetadataRecord::Config(ConfigRecord {
                    resource_type: *resource_type,
                    resource_name: resource_name.clone(),
                    name: name.clone(),
                    value: Some(value.clone()),
                }));
            }
        }
        records.extend(
            self.scram
                .records()
                .map(MetadataRecord::UserScramCredential),
        );
        records.extend(self.quotas.records().map(MetadataRecord::ClientQuota));
        if self.next_producer_id > 0 {
            // Kafka's `ProducerIdsImage.write`: no broker asked for it.
            records.push(MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: -1,
                broker_epoch: -1,
                next_producer_id: self.next_producer_id,
            }));
        }
        for (id, acl) in &self.acls {
            records.push(MetadataRecord::AccessControlEntry {
                id: *id,
                acl: acl.clone(),
            });
        }
        records
    }

    /// The image the records build from an empty one, or the first refusal.
    pub fn replay<'a>(
        records: impl IntoIterator<Item = &'a MetadataRecord>,
    ) -> Result<MetadataImage, ApplyError> {
        let mut image = MetadataImage::default();
        for record in records {
            image.apply(record)?;
        }
        Ok(image)
    }
}

fn check_directories(replicas: usize, directories: &[Uuid]) -> Result<(), ApplyError> {
    if directories.is_empty() || directories.len() == replicas {
        return Ok(());
    }
    Err(ApplyError::DirectoriesMismatch {
        replicas,
        directories: directories.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::records::{BrokerEndpoint, NO_LEADER};
    use crate::security::acl::{Operation, PatternType, Permission, ResourceType};
    use proptest::prelude::*;

    fn uuid(byte: u8) -> Uuid {
        Uuid::from_bytes([byte; 16])
    }

    fn partition(topic: u8, partition_id: i32, replicas: Vec<i32>) -> MetadataRecord {
        MetadataRecord::Partition(PartitionRecord {
            partition_id,
            topic_id: uuid(topic),
            isr: replicas.clone(),
            leader: replicas.first().copied().unwrap_or(NO_LEADER),
            directories: replicas.iter().map(|_| uuid(0xd)).collect(),
            replicas,
            removing_replicas: Vec::new(),
            adding_replicas: Vec::new(),
            leader_recovery_state: 0,
            leader_epoch: 0,
            partition_epoch: 0,
            shards: Vec::new(),
        })
    }

    fn broker(id: i32, epoch: i64) -> MetadataRecord {
        MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            broker_id: id,
            is_migrating_zk_broker: false,
            incarnation_id: uuid(id as u8),
            broker_epoch: epoch,
            end_points: vec![BrokerEndpoint {
                name: "PLAINTEXT".into(),
                host: "localhost".into(),
                port: 9092,
                security_protocol: 0,
            }],
            features: Vec::new(),
            rack: None,
            fenced: true,
            in_controlled_shutdown: false,
            log_dirs: Vec::new(),
        })
    }

    fn topic(id: u8, name: &str) -> MetadataRecord {
        MetadataRecord::Topic(TopicRecord {
            name: name.into(),
            topic_id: uuid(id),
        })
    }

    #[test]
    fn a_leader_change_bumps_both_epochs_an_isr_change_only_the_partition_epoch() {
        let mut image =
            MetadataImage::replay(&[topic(1, "t"), partition(1, 0, vec![1, 2, 3])]).unwrap();
        let mut shrink = PartitionChangeRecord::new(uuid(1), 0);
        shrink.isr = Some(vec![1, 2]);
        image
            .apply(&MetadataRecord::PartitionChange(shrink))
            .unwrap();
        let mut elect = PartitionChangeRecord::new(uuid(1), 0);
        elect.leader = 2;
        image
            .apply(&MetadataRecord::PartitionChange(elect))
            .unwrap();
        let partition = &image.topic_by_name("t").unwrap().partitions[&0];
        assert_eq!(partition.isr, vec![1, 2]);
        assert_eq!(partition.leader, 2);
        assert_eq!((partition.leader_epoch, partition.partition_epoch), (1, 2));
    }

    #[test]
    fn records_that_do_not_apply_are_refused_and_change_nothing() {
        let mut image =
            MetadataImage::replay(&[topic(1, "t"), partition(1, 0, vec![1]), broker(1, 10)])
                .unwrap();
        let before = image.clone();
        let mut change = PartitionChangeRecord::new(uuid(1), 0);
        change.replicas = Some(vec![1, 2]);
        for (record, error) in [
            (topic(1, "u"), ApplyError::TopicIdExists(uuid(1))),
            (topic(2, "t"), ApplyError::TopicNameExists("t".into())),
            (
                partition(2, 0, vec![1]),
                ApplyError::UnknownTopicId(uuid(2)),
            ),
            (
                partition(1, -1, vec![1]),
                ApplyError::InvalidPartitionId(-1),
            ),
            (
                MetadataRecord::PartitionChange(PartitionChangeRecord::new(uuid(1), 5)),
                ApplyError::UnknownPartition {
                    topic_id: uuid(1),
                    partition_id: 5,
                },
            ),
            (
                MetadataRecord::PartitionChange(change),
                ApplyError::DirectoriesMismatch {
                    replicas: 2,
                    directories: 1,
                },
            ),
            (
                MetadataRecord::FenceBroker(BrokerEpochRecord { id: 1, epoch: 9 }),
                ApplyError::UnknownBrokerEpoch { id: 1, epoch: 9 },
            ),
            (
                MetadataRecord::RemoveTopic { topic_id: uuid(3) },
                ApplyError::UnknownTopicId(uuid(3)),
            ),
            (
                MetadataRecord::ProducerIds(ProducerIdsRecord {
                    broker_id: 1,
                    broker_epoch: 10,
                    next_producer_id: 0,
                }),
                ApplyError::ProducerIdsBackwards {
                    current: 0,
                    next: 0,
                },
            ),
        ] {
            assert_eq!(image.apply(&record), Err(error));
            assert_eq!(image, before);
        }
    }

    #[test]
    fn removing_a_topic_drops_its_partitions_name_and_configs() {
        let mut image = MetadataImage::replay(&[
            topic(1, "t"),
            partition(1, 0, vec![1]),
            MetadataRecord::Config(ConfigRecord {
                resource_type: CONFIG_RESOURCE_TOPIC,
                resource_name: "t".into(),
                name: "retention.ms".into(),
                value: Some("1000".into()),
            }),
        ])
        .unwrap();
        image
            .apply(&MetadataRecord::RemoveTopic { topic_id: uuid(1) })
            .unwrap();
        assert_eq!(image, MetadataImage::default());
        image.apply(&topic(2, "t")).unwrap();
        assert!(image.topic_by_name("t").unwrap().partitions.is_empty());
    }

    /// Records over a few ids and names, so that most apply and the rest
    /// exercise refusals.
    fn record() -> impl Strategy<Value = MetadataRecord> {
        let small = 0..3u8;
        prop_oneof![
            (0..3i32, 0..3i64).prop_map(|(id, epoch)| broker(id, epoch)),
            (small.clone(), "[ab]").prop_map(|(id, name)| topic(id, &name)),
            (small.clone(), 0..3i32, prop::collection::vec(0..3i32, 0..3))
                .prop_map(|(id, p, replicas)| partition(id, p, replicas)),
            (
                small.clone(),
                0..3i32,
                prop::option::of(prop::collection::vec(0..3i32, 0..3)),
                -2..3i32
            )
                .prop_map(|(id, p, isr, leader)| {
                    let mut change = PartitionChangeRecord::new(uuid(id), p);
                    change.isr = isr;
                    change.leader = leader;
                    MetadataRecord::PartitionChange(change)
                }),
            (
                prop::sample::select(vec![CONFIG_RESOURCE_TOPIC, CONFIG_RESOURCE_BROKER, 3]),
                "[ab]",
                "[xy]",
                prop::option::of("[0-9]")
            )
                .prop_map(|(resource_type, resource_name, name, value)| {
                    MetadataRecord::Config(ConfigRecord {
                        resource_type,
                        resource_name,
                        name,
                        value,
                    })
                }),
            (0..3i32, 0..3i64).prop_map(|(id, epoch)| MetadataRecord::FenceBroker(
                BrokerEpochRecord { id, epoch }
            )),
            (0..3i32, 0..3i64).prop_map(|(id, epoch)| MetadataRecord::UnfenceBroker(
                BrokerEpochRecord { id, epoch }
            )),
            small
                .clone()
                .prop_map(|id| MetadataRecord::RemoveTopic { topic_id: uuid(id) }),
            (small.clone(), "[ab*]", prop::bool::ANY).prop_map(|(id, name, allow)| {
                MetadataRecord::AccessControlEntry {
                    id: uuid(id),
                    acl: Acl {
                        resource_type: ResourceType::Topic,
                        resource_name: name,
                        pattern_type: PatternType::Literal,
                        principal: "User:a".into(),
                        host: "*".into(),
                        operation: Operation::Read,
                        permission: if allow {
                            Permission::Allow
                        } else {
                            Permission::Deny
                        },
                    },
                }
            }),
            small.prop_map(|id| MetadataRecord::RemoveAccessControlEntry { id: uuid(id) }),
            ("[fg]", 0..3i16).prop_map(|(name, feature_level)| MetadataRecord::FeatureLevel(
                FeatureLevelRecord {
                    name,
                    feature_level
                }
            )),
            (0..5000i64).prop_map(|next_producer_id| MetadataRecord::ProducerIds(
                ProducerIdsRecord {
                    broker_id: 0,
                    broker_epoch: 0,
                    next_producer_id
                }
            )),
            Just(MetadataRecord::NoOp),
        ]
    }

    /// Applies what applies, as a replica applies a committed log whose
    /// records the controller checked: refusals are skipped on both sides.
    fn apply_all(image: &mut MetadataImage, records: &[MetadataRecord]) {
        for record in records {
            let before = image.clone();
            if image.apply(record).is_err() {
                assert_eq!(*image, before, "a refusal changed the image");
            }
        }
    }

    proptest! {
        #[test]
        fn two_replicas_fed_the_same_records_agree(records in prop::collection::vec(record(), 0..40)) {
            let (mut one, mut two) = (MetadataImage::default(), MetadataImage::default());
            apply_all(&mut one, &records);
            let encoded: Vec<MetadataRecord> = records
                .iter()
                .map(|record| MetadataRecord::decode(&record.encode()).unwrap())
                .collect();
            apply_all(&mut two, &encoded);
            prop_assert_eq!(one, two);
        }

        #[test]
        fn an_image_rebuilt_from_its_snapshot_is_itself(records in prop::collection::vec(record(), 0..40)) {
            let mut image = MetadataImage::default();
            apply_all(&mut image, &records);
            let rebuilt = MetadataImage::replay(&image.snapshot_records());
            prop_assert_eq!(rebuilt, Ok(image));
        }

        #[test]
        fn a_snapshot_of_a_prefix_then_the_rest_is_the_whole(
            records in prop::collection::vec(record(), 0..40),
            cut in 0..40usize,
        ) {
            let cut = cut.min(records.len());
            let mut whole = MetadataImage::default();
            apply_all(&mut whole, &records);
            let mut prefix = MetadataImage::default();
            apply_all(&mut prefix, &records[..cut]);
            let mut resumed = MetadataImage::replay(&prefix.snapshot_records()).unwrap();
            apply_all(&mut resumed, &records[cut..]);
            prop_assert_eq!(resumed, whole);
        }
    }
}
