//! A view of a cluster from one Metadata response, with one connection per
//! broker opened on first use, so producers and consumers send each
//! partition's requests to its leader.
//!
//! Invariant: connections go to the addresses the cluster advertises, never
//! to guesses; the metadata is a snapshot and is not refreshed behind the
//! caller's back.

use std::collections::{BTreeMap, HashMap};

use anyhow::anyhow;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, MetadataResponse};

use super::{broker_addr, check, partition_leader, topic_name, unknown_topic, Connection};

/// ListOffsets timestamp meaning "the log start offset".
pub const EARLIEST_TIMESTAMP: i64 = -2;
/// ListOffsets timestamp meaning "the log end offset".
pub const LATEST_TIMESTAMP: i64 = -1;

/// Metadata for some topics plus the connections opened so far.
pub struct Cluster {
    metadata: MetadataResponse,
    connections: HashMap<BrokerId, Connection>,
}

impl Cluster {
    /// Connects to `bootstrap`, reads metadata for `topics`, and keeps the
    /// bootstrap connection if it is one of the advertised brokers.
    pub fn connect(bootstrap: &str, topics: &[&str]) -> anyhow::Result<Cluster> {
        let mut seed = Connection::connect(bootstrap)?;
        let metadata = seed.metadata(Some(topics))?;
        let mut connections = HashMap::new();
        if let Some(broker) = metadata.brokers.iter().find(|broker| {
            broker_addr(&metadata, broker.node_id).ok().as_deref() == Some(bootstrap)
        }) {
            connections.insert(broker.node_id, seed);
        }
        Ok(Cluster {
            metadata,
            connections,
        })
    }

    /// The metadata snapshot.
    pub fn metadata(&self) -> &MetadataResponse {
        &self.metadata
    }

    /// The metadata of `name`, or its Kafka error.
    pub fn topic(&self, name: &str) -> anyhow::Result<&MetadataResponseTopic> {
        let topic = self
            .metadata
            .topics
            .iter()
            .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(name))
            .ok_or_else(|| anyhow!(unknown_topic(name)))?;
        check(topic.error_code, None, &format!("topic {name}"))?;
        Ok(topic)
    }

    /// The leader of `topic`/`partition`.
    pub fn leader(&self, topic: &str, partition: i32) -> anyhow::Result<BrokerId> {
        partition_leader(&self.metadata, topic, partition)
    }

    /// The connection to broker `node_id`, opened now if it is not yet.
    pub fn broker(&mut self, node_id: BrokerId) -> anyhow::Result<&mut Connection> {
        if !self.connections.contains_key(&node_id) {
            let connection = Connection::connect(&broker_addr(&self.metadata, node_id)?)?;
            self.connections.insert(node_id, connection);
        }
        self.connections
            .get_mut(&node_id)
            .ok_or_else(|| anyhow!("connection to broker {} vanished", node_id.0))
    }

    /// ListOffsets for `partitions` of `topic`, each asked of its leader:
    /// the offset per partition for `timestamp` ([`EARLIEST_TIMESTAMP`],
    /// [`LATEST_TIMESTAMP`] or a time in ms), `None` where no record is that
    /// recent.
    pub fn list_offsets(
        &mut self,
        topic: &str,
        partitions: &[i32],
        timestamp: i64,
    ) -> anyhow::Result<BTreeMap<i32, Option<i64>>> {
        let mut by_leader: BTreeMap<BrokerId, Vec<i32>> = BTreeMap::new();
        for &partition in partitions {
            by_leader
                .entry(self.leader(topic, partition)?)
                .or_default()
                .push(partition);
        }
        let mut offsets = BTreeMap::new();
        for (leader, partitions) in by_leader {
            let request =
                ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|&p| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(p)
                                    .with_timestamp(timestamp)
                            })
                            .collect(),
                    )]);
            let response = self.broker(leader)?.send(request)?;
            for partition in partitions {
                let answer = response
                    .topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .find(|p| p.partition_index == partition)
                    .ok_or_else(|| {
                        anyhow!("ListOffsets response does not mention {topic}-{partition}")
                    })?;
                check(answer.error_code, None, &format!("{topic}-{partition}"))?;
                offsets.insert(partition, (answer.offset >= 0).then_some(answer.offset));
            }
        }
        Ok(offsets)
    }
}
