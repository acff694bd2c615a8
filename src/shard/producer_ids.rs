//! Producer ids as the shards hand them out (InitProducerId): each shard
//! takes ids from a block of its own, and asks the controller shard for a
//! new block when it runs out, as a Kafka broker asks its controller. The
//! controller commits the block's `ProducerIdsRecord` to the metadata log
//! (`Controller::allocate_producer_ids`) before it answers.
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
fn unavailable(reason: String) -> KafkaError {
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
                .call(CONTROLLER_SHARD, ShardRequest::AllocateProducerIds)
                .await
            {
                // Blocks come from the quorum's leader; until a broker
                // forwards the ask (issue 14, increment 4) a client of any
                // other node is told to retry, as Kafka's brokers answer
                // while their next block is on its way.
                ShardReply::ProducerIds(Err(error))
                    if error.code == ResponseError::NotController.code() =>
                {
                    return Err(unavailable(
                        "producer ids come from the metadata quorum's leader, which this node is not"
                            .into(),
                    ));
                }
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
