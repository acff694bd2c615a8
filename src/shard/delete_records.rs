//! DeleteRecords on a partition's owner shard, as Kafka's leader answers it
//! (`ReplicaManager.deleteRecords` and `DelayedDeleteRecords`): the leader
//! moves its log start offset up to the offset asked for (-1: the high
//! watermark), then answers once the partition's low watermark reaches
//! that offset. The low watermark is the lowest log start among the leader
//! and the followers on alive brokers (registered, unfenced: Kafka's
//! `Partition.lowWatermarkIfLeader`); a follower moves its start up to its
//! leader's as it fetches (`fetcher.rs`) and tells the leader in its next
//! Fetch. A follower on a broker killed and then fenced stops counting,
//! so the answer does not wait for it; it catches up when it returns.
//!
//! A waiting DeleteRecords is a `DeleteWaiters` entry of the partition's
//! `LeaderState` holder (`replication.rs`), checked whenever a follower's
//! Fetch is counted and whenever a view is installed (a broker fenced or
//! unfenced, the partition's replicas moved), where Kafka checks only when
//! a watermark moves (a DeleteRecords there waits out its timeout when the
//! last lagging follower dies on an idle partition). It ends with the
//! low watermark, REQUEST_TIMED_OUT at the request's `timeout_ms`, or
//! NOT_LEADER_OR_FOLLOWER when this node stops leading the partition.
//!
//! Invariant: at most `DELETE_RECORDS_WAITING_MAX` waiters per partition,
//! each dropped with its request (a waiter whose request ended is removed
//! at the next check); no answer carries a low watermark below the offset
//! asked for.

use std::rc::Rc;
use std::time::Duration;

use futures_channel::oneshot;
use futures_util::future::{self, Either};
use kafka_protocol::error::ResponseError;

use super::messages::{KafkaError, TopicPartition};
use super::replication::{refuse_then_run, LowWatermarkWait};
use super::Shard;

/// DeleteRecords waiting at once on one partition: an admin call, a few at a
/// time in practice; the bound keeps a client that floods them from
/// growing the list. One beyond it is answered REQUEST_TIMED_OUT at once
/// (its log start has moved; the client may ask again).
pub const DELETE_RECORDS_WAITING_MAX: usize = 64;

/// The DeleteRecords waiting on one led partition for its low watermark.
#[derive(Default)]
pub struct DeleteWaiters {
    /// (the offset the low watermark must reach, where to send it).
    waiting: Vec<(i64, oneshot::Sender<i64>)>,
}

impl DeleteWaiters {
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// A waiter for the low watermark to reach `required`; None when
    /// `DELETE_RECORDS_WAITING_MAX` wait already.
    pub fn add(&mut self, required: i64) -> Option<oneshot::Receiver<i64>> {
        self.waiting.retain(|(_, sender)| !sender.is_canceled());
        if self.waiting.len() >= DELETE_RECORDS_WAITING_MAX {
            return None;
        }
        let (sender, receiver) = oneshot::channel();
        self.waiting.push((required, sender));
        Some(receiver)
    }

    /// Takes out the waiters `low_watermark` satisfies (and those whose
    /// request ended), to be answered once no borrow is held.
    pub fn take_reached(&mut self, low_watermark: i64) -> Vec<oneshot::Sender<i64>> {
        let (reached, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(required, sender)| *required <= low_watermark || sender.is_canceled());
        self.waiting = waiting;
        reached.into_iter().map(|(_, sender)| sender).collect()
    }
}

/// DeleteRecords on the owner shard: each partition's log start moved,
/// then its answer once the low watermark reaches the offset asked for
/// (see the module doc). A partition a restarted node's stale view names it
/// leader of is refused NOT_LEADER_OR_FOLLOWER, as Produce and Fetch are.
pub async fn delete_records(
    shard: &Rc<Shard>,
    parts: Vec<(TopicPartition, i64)>,
    timeout_ms: i32,
) -> Vec<Result<i64, KafkaError>> {
    let replication = &shard.replication;
    let refuse = |(partition, _): &(TopicPartition, i64)| replication.refuse_held(partition).err();
    let run = |accepted: Vec<(TopicPartition, i64)>| async move {
        let partitions: Vec<TopicPartition> = accepted.iter().map(|(p, _)| p.clone()).collect();
        let moved = shard.partitions.delete_records(accepted).await;
        let waits = partitions
            .into_iter()
            .zip(moved)
            .map(|(partition, moved)| async move {
                let (required, log_start_offset) = moved?;
                low_watermark(shard, &partition, required, log_start_offset, timeout_ms).await
            });
        future::join_all(waits).await
    };
    refuse_then_run(parts, refuse, run, |error| Err(KafkaError::new(error))).await
}

/// The low watermark once it reaches `required`, for a partition whose
/// leader's log start is now `log_start_offset`.
async fn low_watermark(
    shard: &Rc<Shard>,
    partition: &TopicPartition,
    required: i64,
    log_start_offset: i64,
    timeout_ms: i32,
) -> Result<i64, KafkaError> {
    let view = shard.view();
    let receiver = match shard
        .replication
        .wait_for_low_watermark(&view, partition, required)
    {
        LowWatermarkWait::Unreplicated => return Ok(log_start_offset),
        LowWatermarkWait::Reached(low_watermark) => return Ok(low_watermark),
        LowWatermarkWait::Full => return Err(KafkaError::new(ResponseError::RequestTimedOut)),
        LowWatermarkWait::Waiting(receiver) => receiver,
    };
    let timeout_ms = u64::try_from(timeout_ms).unwrap_or(0);
    let deadline = std::pin::pin!(glommio::timer::sleep(Duration::from_millis(timeout_ms)));
    match future::select(receiver, deadline).await {
        Either::Left((Ok(low_watermark), _)) => Ok(low_watermark),
        Either::Left((Err(oneshot::Canceled), _)) => {
            Err(KafkaError::new(ResponseError::NotLeaderOrFollower))
        }
        Either::Right(_) => Err(KafkaError::new(ResponseError::RequestTimedOut)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_are_answered_once_the_low_watermark_reaches_them() {
        let mut waiters = DeleteWaiters::default();
        let mut at_10 = waiters.add(10).unwrap();
        let mut at_20 = waiters.add(20).unwrap();
        assert!(waiters.take_reached(9).is_empty());
        let reached = waiters.take_reached(15);
        assert_eq!(reached.len(), 1);
        for sender in reached {
            sender.send(15).unwrap();
        }
        assert_eq!(at_10.try_recv(), Ok(Some(15)));
        assert_eq!(at_20.try_recv(), Ok(None));
        assert!(!waiters.is_empty());
        // A waiter whose request ended goes at the next check.
        drop(at_20);
        assert_eq!(waiters.take_reached(0).len(), 1);
        assert!(waiters.is_empty());
    }

    #[test]
    fn the_waiters_of_a_partition_are_bounded() {
        let mut waiters = DeleteWaiters::default();
        let kept: Vec<_> = (0..DELETE_RECORDS_WAITING_MAX)
            .map(|at| waiters.add(at as i64).unwrap())
            .collect();
        assert!(waiters.add(0).is_none());
        // Room again once one of them ends.
        drop(kept);
        assert!(waiters.add(0).is_some());
    }
}
