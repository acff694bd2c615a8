//! Producer ids as the shards hand them out (InitProducerId): each shard
//! takes ids from a block of its own, and asks the controller shard for a
//! new block when it runs out, which has the active controller make one
//! (itself, or another node's over the CONTROLLER listener), as a Kafka
//! broker asks its controller. The block's `ProducerIdsRecord` is
//! committed to the metadata log (`Controller::allocate_producer_ids`)
//! before it is handed out.
//!
//! Invariant: an id is handed out at most once, on one shard: blocks never
//! overlap, and a shard takes ids from its block without an `.await`.

use std::cell::Cell;
use std::rc::Rc;

use glommio::sync::Semaphore;
use kafka_protocol::error::ResponseError;

use super::messages::{KafkaError, ShardReply, ShardRequest};
use super::{Shard, CONTROLLER_SHARD};
use crate::metadata::producer_ids::ProducerIdBlock;

pub struct ProducerIds {
    /// The ids this shard may still hand out.
    block: Cell<ProducerIdBlock>,
    /// One request for a new block at a time: the others wait and use it.
    refill: Semaphore,
}

impl Default for ProducerIds {
    fn default() -> Self {
        ProducerIds {
            block: Cell::new(ProducerIdBlock::default()),
            refill: Semaphore::new(1),
        }
    }
}

/// The retriable error InitProducerId answers while no id can be given.
pub fn unavailable(reason: String) -> KafkaError {
    KafkaError::with_message(ResponseError::CoordinatorNotAvailable, reason)
}

impl ProducerIds {
    /// A producer id never handed out before.
    pub async fn next(&self, shard: &Rc<Shard>) -> Result<i64, KafkaError> {
        loop {
            if let Some(id) = self.take() {
                return Ok(id);
            }
            let Ok(_refill) = self.refill.acquire_permit(1).await else {
                return Err(unavailable("the shard is stopping".into()));
            };
            // Another request may have refilled the block meanwhile.
            if let Some(id) = self.take() {
                return Ok(id);
            }
            let block = match shard
                .call(CONTROLLER_SHARD, ShardRequest::AllocateProducerIds(None))
                .await
            {
                ShardReply::ProducerIds(block) => block?,
                other => return Err(other.into_error()),
            };
            assert!(block.next < block.end, "an empty producer id block");
            self.block.set(block);
        }
    }

    fn take(&self) -> Option<i64> {
        let mut block = self.block.get();
        let id = block.take();
        self.block.set(block);
        id
    }
}

/// On `CONTROLLER_SHARD`: a block of producer ids for `requester` (another
/// node's broker id and epoch: AllocateProducerIds, served only by the
/// leader) or for this node's shards (`None`): made here when this node
/// leads the quorum, else asked of the leader with this node's broker
/// epoch. A shard's ask that meets a leadership change is told to retry.
pub async fn allocate(
    shard: &Rc<Shard>,
    requester: Option<(i32, i64)>,
) -> Result<ProducerIdBlock, KafkaError> {
    let not_controller = || KafkaError::new(ResponseError::NotController);
    if let Some((broker_id, broker_epoch)) = requester {
        let controller = shard.controller.as_ref().ok_or_else(not_controller)?;
        return controller
            .allocate_producer_ids(broker_id, Some(broker_epoch))
            .await;
    }
    let view = shard.view();
    let block = match (&shard.controller, &shard.to_controller) {
        (Some(controller), _) if controller.leads() => {
            controller.allocate_producer_ids(view.node_id, None).await
        }
        (_, Some(to_controller)) => {
            let epoch = view
                .registered
                .iter()
                .find(|broker| broker.id == view.node_id)
                .map(|broker| broker.epoch)
                .ok_or_else(|| unavailable("this broker is not registered yet".into()))?;
            to_controller.producer_ids(view.node_id, epoch).await
        }
        _ => Err(not_controller()),
    };
    block.map_err(|error| {
        if error.code == ResponseError::NotController.code() {
            unavailable("producer ids come from the metadata quorum's leader, which moved".into())
        } else {
            error
        }
    })
}
