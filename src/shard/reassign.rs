//! The controller's side of partition reassignment (`metadata::reassignment`
//! decides): AlterPartitionReassignments commits each partition's change,
//! made from the committed image, as one quorum entry, and installs the
//! image it leaves before answering, so that the new replicas' nodes open
//! their logs and start fetching; ListPartitionReassignments reads the
//! committed image. The completion comes later, with the AlterPartition
//! that brings the last new replica into the ISR.
//!
//! Invariant: the same one-change-at-a-time permit as every other change
//! of the controller, and nothing proposed unless this node leads.

use std::rc::Rc;

use kafka_protocol::error::ResponseError;

use super::{Controller, KafkaError, Shard};
use crate::metadata::image::MetadataImage;
use crate::metadata::leadership;
use crate::metadata::reassignment::{self, Ongoing, ReassignItem};
use crate::metadata::records::MetadataRecord;

impl Controller {
    /// AlterPartitionReassignments: one result per item, in order.
    pub async fn alter_reassignments(
        &self,
        shard: &Rc<Shard>,
        items: Vec<ReassignItem>,
    ) -> Vec<Result<(), KafkaError>> {
        let unclean_default = shard.config.replication.unclean_leader_election_enable;
        let count = items.len();
        self.commit_decision(shard, count, move |image| {
            changes(image, &items, unclean_default)
        })
        .await
    }

    /// ListPartitionReassignments, from the committed image.
    pub fn list_reassignments(
        &self,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<Ongoing>, KafkaError> {
        if !self.quorum.leads() {
            return Err(KafkaError::new(ResponseError::NotController));
        }
        Ok(reassignment::ongoing(&self.quorum.latest().image, topics))
    }
}

/// The records of `items` against `image`, each made on the image the
/// ones before it leave (two items for one partition apply in order), and
/// each item's result.
fn changes(
    image: &MetadataImage,
    items: &[ReassignItem],
    unclean_default: bool,
) -> (Vec<MetadataRecord>, Vec<Result<(), KafkaError>>) {
    let mut next = image.clone();
    let standings = reassignment::standings(image);
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        let unclean = next
            .topic_by_name(&item.topic)
            .is_some_and(|topic| leadership::unclean_allowed(&next, topic, unclean_default));
        let outcome = reassignment::alter(&next, &standings, item, unclean);
        let outcome = outcome.and_then(|record| {
            let Some(record) = record else {
                return Ok(());
            };
            let record = MetadataRecord::PartitionChange(record);
            next.apply(&record).map_err(|error| {
                KafkaError::with_message(ResponseError::UnknownServerError, error.to_string())
            })?;
            records.push(record);
            Ok(())
        });
        results.push(outcome);
    }
    (records, results)
}
