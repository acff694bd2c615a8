//! Producer ids as the shards hand them out (InitProducerId): each shard
//! takes ids from a block of its own, and asks the controller shard for a
//! new block when it runs out, as a Kafka broker asks its controller. The
//! controller shard persists the next block start (`metadata::producer_ids`)
//! before it answers.
//!
//! Invariant: an id is handed out at most once, on one shard: blocks never
//! overlap, and a shard takes ids from its block without an `.await`.

use std::cell::Cell;
use std::rc::Rc;

use glommio::sync::Semaphore;
use kafka_protocol::error::ResponseError;

use super::messages::{KafkaError, ShardReply, ShardRequest};
use super::{Shard, CONTROLLER_SHARD};
use crate::metadata::producer_ids::{self, ProducerIdBlock};

pub struct ProducerIds {
    /// The ids this shard may still hand out.
    block: Cell<ProducerIdBlock>,
    /// One request for a new block at a time: the others wait and use it.
    refill: Semaphore,
    /// On the controller shard: the start of the next block, read from the
    /// file at the first allocation.
    next_block_start: Cell<Option<i64>>,
}

impl Default for ProducerIds {
    fn default() -> Self {
        ProducerIds {
            block: Cell::new(ProducerIdBlock::default()),
            refill: Semaphore::new(1),
            next_block_start: Cell::new(None),
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

    /// On the controller shard: the next block, persisted before it is
    /// returned. No `.await` between reading and moving the next start, so
    /// two allocations never get the same block.
    pub fn allocate_block(&self, shard: &Shard) -> Result<ProducerIdBlock, KafkaError> {
        if shard.id != CONTROLLER_SHARD {
            return Err(KafkaError::new(ResponseError::NotController));
        }
        let data_dir = &shard.config.data_dir;
        let start = match self.next_block_start.get() {
            Some(start) => start,
            None => producer_ids::load_next_block_start(data_dir).map_err(|error| {
                log::error!("producer ids: {error}");
                unavailable(format!("producer ids cannot be read: {error}"))
            })?,
        };
        match producer_ids::allocate_block(data_dir, start) {
            Ok(Some(block)) => {
                self.next_block_start.set(Some(block.end));
                Ok(block)
            }
            Ok(None) => Err(KafkaError::with_message(
                ResponseError::UnknownServerError,
                "producer ids are used up".into(),
            )),
            Err(error) => {
                log::error!("producer ids: cannot persist the next block: {error}");
                Err(unavailable(format!(
                    "producer ids cannot be persisted: {error}"
                )))
            }
        }
    }
}
