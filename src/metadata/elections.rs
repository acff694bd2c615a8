//! The controller's leader elections beyond failover: ElectLeaders (api
//! 43) over many partitions, and the automatic rebalance of
//! `auto.leader.rebalance.enable`. Each partition's election is
//! `leadership::elect`'s; this module decides which partitions, and what
//! is answered for each:
//!
//! - ElectLeaders with a list of partitions answers each listed one, in
//!   request order (a partition listed twice is elected once and answered
//!   alike); with none (`TopicPartitions: null`) it tries every partition
//!   of every topic and, as Kafka's `ReplicationControlManager
//!   .electLeaders`, leaves out those answered ELECTION_NOT_NEEDED;
//! - the rebalance, Kafka's KRaft rule (`ReplicationControlManager
//!   .maybeBalancePartitionLeaders` over its `imbalancedPartitions`): every
//!   partition not led by its preferred replica (the first of its
//!   replicas, the target's first during a reassignment) gets a preferred
//!   election, which elects that replica when it is in the ISR and can
//!   lead. There is no per-broker threshold: the ZooKeeper controller's
//!   `leader.imbalance.per.broker.percentage` is not read by Kafka's
//!   KRaft controller, nor here. One round elects at most
//!   `REBALANCE_ELECTIONS_MAX`, and says whether it stopped there (the
//!   next round then comes at once, as Kafka reschedules it).
//!
//! Invariant: pure (the image in, records and answers out); every record
//! is `leadership::elect`'s, so a leader is only ever an ISR member that
//! `can_lead` allows, or, for an unclean election, a replica that can.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

use super::controller::KafkaError;
use super::image::MetadataImage;
use super::leadership::{self, Election};
use super::records::MetadataRecord;

/// The elections of one rebalance round at most: Kafka's controller
/// elects at most 1,000 preferred leaders per round
/// (`maxElectionsPerImbalance`), so one round's metadata entry stays small
/// and the rest wait for the next round.
pub const REBALANCE_ELECTIONS_MAX: usize = 1_000;

/// The partitions of one topic ElectLeaders answers, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicElection {
    pub topic: String,
    pub partitions: Vec<(i32, Result<(), KafkaError>)>,
}

/// ElectLeaders' records and answers.
#[derive(Debug, Default)]
pub struct Elected {
    pub records: Vec<MetadataRecord>,
    pub results: Vec<TopicElection>,
}

/// ElectLeaders: `election` on each partition of `wanted` (topic,
/// partitions), or on every partition when `wanted` is None.
pub fn elect_leaders(
    image: &MetadataImage,
    election: Election,
    wanted: Option<&[(String, Vec<i32>)]>,
    can_lead: impl Fn(i32) -> bool,
) -> Elected {
    match wanted {
        Some(wanted) => elect_listed(image, election, wanted, &can_lead),
        None => elect_all(image, election, &can_lead),
    }
}

fn elect_listed(
    image: &MetadataImage,
    election: Election,
    wanted: &[(String, Vec<i32>)],
    can_lead: &impl Fn(i32) -> bool,
) -> Elected {
    let mut elected = Elected::default();
    let mut answered: BTreeMap<(&str, i32), Result<(), KafkaError>> = BTreeMap::new();
    for (topic, partitions) in wanted {
        let mut results = Vec::with_capacity(partitions.len());
        for &partition in partitions {
            let answer = answered
                .entry((topic.as_str(), partition))
                .or_insert_with(|| {
                    let outcome = leadership::elect(image, topic, partition, election, can_lead);
                    outcome.map(|record| {
                        elected
                            .records
                            .push(MetadataRecord::PartitionChange(record));
                    })
                });
            results.push((partition, answer.clone()));
        }
        elected.results.push(TopicElection {
            topic: topic.clone(),
            partitions: results,
        });
    }
    elected
}

fn elect_all(
    image: &MetadataImage,
    election: Election,
    can_lead: &impl Fn(i32) -> bool,
) -> Elected {
    let not_needed = ResponseError::ElectionNotNeeded.code();
    let mut elected = Elected::default();
    for topic in image.topic_ids_by_name.keys() {
        let Some(found) = image.topic_by_name(topic) else {
            continue;
        };
        let mut results = Vec::new();
        for &partition in found.partitions.keys() {
            match leadership::elect(image, topic, partition, election, can_lead) {
                Ok(record) => {
                    elected
                        .records
                        .push(MetadataRecord::PartitionChange(record));
                    results.push((partition, Ok(())));
                }
                Err(error) if error.code == not_needed => {}
                Err(error) => results.push((partition, Err(error))),
            }
        }
        elected.results.push(TopicElection {
            topic: topic.clone(),
            partitions: results,
        });
    }
    elected
}

/// One rebalance round: its records, and whether it stopped at
/// `REBALANCE_ELECTIONS_MAX` with partitions left to try.
#[derive(Debug, Default)]
pub struct Rebalance {
    pub records: Vec<MetadataRecord>,
    pub more: bool,
}

/// One rebalance round (Kafka's `maybeBalancePartitionLeaders`): a
/// preferred election for each partition whose leader is not its preferred
/// replica, those that elect someone becoming records. No records means
/// nothing to propose.
pub fn rebalance(image: &MetadataImage, can_lead: impl Fn(i32) -> bool) -> Rebalance {
    let mut round = Rebalance::default();
    for topic in image.topics.values() {
        for (&partition_id, partition) in &topic.partitions {
            if partition.replicas.first() == Some(&partition.leader) {
                continue;
            }
            if round.records.len() >= REBALANCE_ELECTIONS_MAX {
                round.more = true;
                return round;
            }
            let elected = leadership::elect(
                image,
                &topic.name,
                partition_id,
                Election::Preferred,
                &can_lead,
            );
            if let Ok(record) = elected {
                round.records.push(MetadataRecord::PartitionChange(record));
            }
        }
    }
    round
}
