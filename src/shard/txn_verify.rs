//! KIP-890 verifications whose transaction coordinator is on another node
//! (Kafka's `AddPartitionsToTxnManager`): the partition leader asks the
//! node leading the transactional id's `__transaction_state` partition
//! with AddPartitionsToTxn in its broker form (v4+: a batch of
//! transactions, each `verify_only`, or adding its partitions for a
//! producer of transactions version 2).
//!
//! Batched per coordinator node, as Kafka's: while a shard's request to a
//! node is out, the verifications for that node wait in one batch that
//! goes out when the answer is in. A transactional id appears once in a
//! request: a second verification of the same producer and epoch joins
//! the first (each hears its own partitions); one of another epoch or
//! operation follows Kafka's rule (the older epoch is fenced,
//! INVALID_PRODUCER_EPOCH; at the same epoch the one waiting gives way
//! with NETWORK_EXCEPTION, which its producer retries).
//!
//! Invariant: every verification gets exactly one answer, one entry per
//! partition in its order; a partition the coordinator's answer does not
//! name is not verified; at most one request per (shard, node) is out, and
//! a batch holds at most `BATCH_TXNS_MAX` verifications.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::{Rc, Weak};

use futures_channel::oneshot;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use super::to_broker::Purpose;
use super::Shard;

/// The version sent: the broker form with TRANSACTION_ABORTABLE (KIP-890),
/// which Kafka's brokers send; errors are translated for the producer's
/// Produce version by the caller.
pub const ADD_PARTITIONS_BROKER_VERSION: i16 = 5;

/// Verifications one batch holds. Each is one produce request's
/// partitions of one producer waiting on this shard; more than this for
/// one node means the node is not answering, and the producer is better
/// told to retry.
const BATCH_TXNS_MAX: usize = 1024;

/// One producer's partitions to verify (or add) with its coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Add the partitions (transactions version 2) instead of checking.
    pub add: bool,
    pub partitions: Vec<(String, i32)>,
}

/// Each partition's error, None when verified (or added), in order.
pub type Verdicts = Vec<Option<ResponseError>>;

struct Waiting {
    verification: Verification,
    reply: oneshot::Sender<Verdicts>,
}

impl Waiting {
    fn answer(self, error: ResponseError) {
        let count = self.verification.partitions.len();
        let _ = self.reply.send(vec![Some(error); count]);
    }
}

/// A shard's verifications by coordinator node: those waiting for the
/// next request, and the nodes a request is out to.
#[derive(Default)]
pub struct TxnVerifier {
    waiting: RefCell<BTreeMap<i32, Vec<Waiting>>>,
    in_flight: RefCell<BTreeSet<i32>>,
}

impl TxnVerifier {
    /// Puts `new` in `node_id`'s next batch, or answers it (or the one it
    /// displaces) at once by Kafka's rule; true when no request is out to
    /// the node, so the caller starts one.
    fn join(&self, node_id: i32, new: Waiting) -> bool {
        let mut waiting = self.waiting.borrow_mut();
        let batch = waiting.entry(node_id).or_default();
        let id = &new.verification.transactional_id;
        let same_id = batch
            .iter()
            .position(|w| &w.verification.transactional_id == id);
        if let Some(at) = same_id {
            let old = &batch[at].verification;
            let new_ = &new.verification;
            let joins = (old.producer_id, old.producer_epoch, old.add)
                == (new_.producer_id, new_.producer_epoch, new_.add);
            if !joins {
                if new_.producer_epoch < old.producer_epoch {
                    new.answer(ResponseError::InvalidProducerEpoch);
                    return false;
                }
                let error = if old.producer_epoch < new_.producer_epoch {
                    ResponseError::InvalidProducerEpoch
                } else {
                    ResponseError::NetworkException
                };
                batch.remove(at).answer(error);
            }
        }
        if batch.len() >= BATCH_TXNS_MAX {
            new.answer(ResponseError::NetworkException);
            return false;
        }
        batch.push(new);
        self.in_flight.borrow_mut().insert(node_id)
    }

    /// The batch for `node_id`, or None (and the node no longer in
    /// flight) when nothing waits.
    fn take(&self, node_id: i32) -> Option<Vec<Waiting>> {
        let batch = self.waiting.borrow_mut().remove(&node_id);
        match batch.filter(|batch| !batch.is_empty()) {
            Some(batch) => Some(batch),
            None => {
                self.in_flight.borrow_mut().remove(&node_id);
                None
            }
        }
    }
}

impl Shard {
    /// Verifies (or adds) `verification`'s partitions with the transaction
    /// coordinator on node `node_id`.
    pub async fn verify_on_node(
        self: &Rc<Self>,
        node_id: i32,
        verification: Verification,
    ) -> Verdicts {
        let count = verification.partitions.len();
        let (reply, answer) = oneshot::channel();
        let waiting = Waiting {
            verification,
            reply,
        };
        if self.txn_verifier.join(node_id, waiting) {
            glommio::spawn_local(send_batches(Rc::downgrade(self), node_id)).detach();
        }
        answer
            .await
            .unwrap_or_else(|_| vec![Some(ResponseError::NetworkException); count])
    }
}

/// Sends `node_id`'s batches, one request at a time, until none waits.
async fn send_batches(shard: Weak<Shard>, node_id: i32) {
    loop {
        let Some(shard) = shard.upgrade() else { return };
        let Some(batch) = shard.txn_verifier.take(node_id) else {
            return;
        };
        let request = request_of(&batch);
        let answer = shard
            .call_broker(
                Purpose::Verify,
                node_id,
                &request,
                ADD_PARTITIONS_BROKER_VERSION,
            )
            .await;
        match answer {
            Ok(response) => deliver(batch, &response),
            Err(error) => {
                log::warn!("transaction verification on node {node_id}: {error}");
                for waiting in batch {
                    waiting.answer(ResponseError::NetworkException);
                }
            }
        }
    }
}

/// The request for `batch`: one transaction per id, the partitions of
/// every verification of it (they share producer, epoch and operation).
fn request_of(batch: &[Waiting]) -> AddPartitionsToTxnRequest {
    let mut transactions: Vec<(&Verification, BTreeMap<&str, BTreeSet<i32>>)> = Vec::new();
    for waiting in batch {
        let v = &waiting.verification;
        let at = match transactions
            .iter()
            .position(|(first, _)| first.transactional_id == v.transactional_id)
        {
            Some(at) => at,
            None => {
                transactions.push((v, BTreeMap::new()));
                transactions.len() - 1
            }
        };
        for (topic, partition) in &v.partitions {
            transactions[at]
                .1
                .entry(topic.as_str())
                .or_default()
                .insert(*partition);
        }
    }
    let transactions = transactions
        .into_iter()
        .map(|(v, topics)| {
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(
                    v.transactional_id.clone(),
                )))
                .with_producer_id(ProducerId(v.producer_id))
                .with_producer_epoch(v.producer_epoch)
                .with_verify_only(!v.add)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(topic, partitions)| {
                            AddPartitionsToTxnTopic::default()
                                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                                .with_partitions(partitions.into_iter().collect())
                        })
                        .collect(),
                )
        })
        .collect();
    AddPartitionsToTxnRequest::default().with_transactions(transactions)
}

/// Gives each verification of `batch` its partitions' errors from
/// `response`, as Kafka's manager reads them: a top-level error for all
/// (CLUSTER_AUTHORIZATION_FAILED, which a producer must not see, as
/// INVALID_TXN_STATE), else each partition's code.
fn deliver(batch: Vec<Waiting>, response: &AddPartitionsToTxnResponse) {
    for waiting in batch {
        let verdicts = verdicts(&waiting.verification, response);
        let _ = waiting.reply.send(verdicts);
    }
}

/// `verification`'s partitions' errors in `response`.
fn verdicts(verification: &Verification, response: &AddPartitionsToTxnResponse) -> Verdicts {
    let count = verification.partitions.len();
    if response.error_code != 0 {
        let error = match ResponseError::try_from_code(response.error_code) {
            Some(ResponseError::ClusterAuthorizationFailed) => ResponseError::InvalidTxnState,
            Some(error) => error,
            None => ResponseError::UnknownServerError,
        };
        return vec![Some(error); count];
    }
    let result = response
        .results_by_transaction
        .iter()
        .find(|result| result.transactional_id.0.as_str() == verification.transactional_id);
    verification
        .partitions
        .iter()
        .map(|(topic, partition)| {
            let code = result
                .and_then(|result| {
                    result
                        .topic_results
                        .iter()
                        .find(|t| t.name.0.as_str() == topic)
                })
                .and_then(|t| {
                    t.results_by_partition
                        .iter()
                        .find(|p| p.partition_index == *partition)
                })
                .map(|p| p.partition_error_code);
            match code {
                Some(0) => None,
                Some(code) => Some(
                    ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError),
                ),
                None => Some(ResponseError::UnknownServerError),
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "txn_verify_tests.rs"]
mod tests;
