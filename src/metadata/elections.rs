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
//! - the rebalance, Kafka's rule (`leader.imbalance.per.broker.percentage`):
//!   per broker, the partitions whose preferred replica (first in the
//!   assignment) it is; when more than that percentage of them are led
//!   elsewhere, each of those whose preferred replica is in the ISR and
//!   can lead gets it back as leader. Partitions under reassignment are
//!   left alone, as Kafka leaves them, and one round elects at most
//!   `REBALANCE_ELECTIONS_MAX`.
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

/// A partition led by another broker than its preferred replica: its
/// topic's name and its id.
type Imbalanced<'a> = (&'a str, i32);

/// One rebalance round: the preferred replicas elected back where their
/// broker's imbalance is above `imbalance_percentage` (0 to 100).
pub fn rebalance(
    image: &MetadataImage,
    imbalance_percentage: i32,
    can_lead: impl Fn(i32) -> bool,
) -> Vec<MetadataRecord> {
    // Per preferred broker: its partitions, and those led elsewhere.
    let mut brokers: BTreeMap<i32, (usize, Vec<Imbalanced>)> = BTreeMap::new();
    for topic in image.topics.values() {
        for (&partition_id, partition) in &topic.partitions {
            let Some(&preferred) = partition.replicas.first() else {
                continue;
            };
            let (total, imbalanced) = brokers.entry(preferred).or_default();
            *total += 1;
            let moving =
                !partition.adding_replicas.is_empty() || !partition.removing_replicas.is_empty();
            if partition.leader != preferred && !moving {
                imbalanced.push((topic.name.as_str(), partition_id));
            }
        }
    }
    let percentage = usize::try_from(imbalance_percentage.clamp(0, 100)).unwrap_or(0);
    let mut records = Vec::new();
    for (total, imbalanced) in brokers.values() {
        if imbalanced.len() * 100 <= percentage * total {
            continue;
        }
        for &(topic, partition) in imbalanced {
            if records.len() == REBALANCE_ELECTIONS_MAX {
                return records;
            }
            if let Ok(record) =
                leadership::elect(image, topic, partition, Election::Preferred, &can_lead)
            {
                records.push(MetadataRecord::PartitionChange(record));
            }
        }
    }
    records
}
