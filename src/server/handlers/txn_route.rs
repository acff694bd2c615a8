//! Routing of transaction requests to the shard that coordinates the
//! transactional id: the owner of its `__transaction_state` partition
//! (Kafka's `partitionFor`: the id's Java string hash modulo
//! `transaction.state.log.num.partitions`), the topic created on first use
//! with the configs Kafka gives it.
//!
//! A client's request is served only by the coordinator's node (else
//! NOT_COORDINATOR, and the client finds the coordinator again). A
//! partition leader's own questions (KIP-890's verification, and the
//! implicit add of transactions version 2) go wherever the coordinator
//! is: over the mesh on this node, else to its node as AddPartitionsToTxn
//! (`Shard::verify_on_node`), as Kafka's `AddPartitionsToTxnManager` does.

use std::time::Duration;

use kafka_protocol::error::ResponseError;

use super::group_route::ensure_internal_topic;
use crate::clock::now_ms;
use crate::group::offsets_partition;
use crate::metadata::records::NO_LEADER;
use crate::server::connection::{ConnectionContext, Port};
use crate::shard::messages::{ShardReply, ShardRequest, TxnAnswer, TxnCall};
use crate::shard::txn_verify::Verification;
use crate::txn::{ListedTxn, TxnState, TRANSACTION_STATE_TOPIC};

/// Transactions version 2 adds a partition from the request that writes to
/// it; the coordinator answers CONCURRENT_TRANSACTIONS while the previous
/// transaction's markers are still being written, which is usual right
/// after an EndTxn. Kafka's broker retries it itself, every
/// `add.partitions.to.txn.retry.backoff.ms` (default 20) for up to
/// `add.partitions.to.txn.retry.backoff.max.ms` (default 100), before the
/// client sees a retriable error; so does shoal, with Kafka's defaults.
const ADD_PARTITIONS_RETRY_BACKOFF_MS: u64 = 20;
const ADD_PARTITIONS_RETRY_MAX_MS: u64 = 100;

/// Creates `__transaction_state` unless it exists. Errors are Kafka's
/// COORDINATOR_NOT_AVAILABLE, which clients retry.
pub async fn ensure_txn_topic(context: &ConnectionContext) -> Result<(), ResponseError> {
    let config = &context.shard.config.txn;
    // Kafka's TransactionLog: compacted, uncompressed, its own segment size.
    ensure_internal_topic(
        context,
        TRANSACTION_STATE_TOPIC,
        config.state_log_num_partitions,
        vec![
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("compression.type".to_string(), "uncompressed".to_string()),
            (
                "segment.bytes".to_string(),
                config.state_log_segment_bytes.to_string(),
            ),
        ],
    )
    .await
}

/// The shard coordinating `transactional_id`: the owner of its
/// `__transaction_state` partition when this node leads it, else
/// NOT_COORDINATOR (as Kafka's); COORDINATOR_NOT_AVAILABLE without the topic.
pub fn coordinator_shard(
    context: &ConnectionContext,
    transactional_id: &str,
) -> Result<usize, ResponseError> {
    match coordinator_of(context, transactional_id)? {
        Coordinator::Shard(shard) => Ok(shard),
        Coordinator::Node(_) => Err(ResponseError::NotCoordinator),
    }
}

/// Where the coordinator of a transactional id runs, for a partition
/// leader's questions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coordinator {
    /// On this node, on that shard.
    Shard(usize),
    /// On another node.
    Node(i32),
}

/// The coordinator of `transactional_id` wherever it is: the leader of its
/// `__transaction_state` partition. COORDINATOR_NOT_AVAILABLE without the
/// topic, NOT_COORDINATOR while the partition has no leader (a produce
/// waiting on either is told NOT_ENOUGH_REPLICAS, and retries).
pub fn coordinator_of(
    context: &ConnectionContext,
    transactional_id: &str,
) -> Result<Coordinator, ResponseError> {
    let view = context.shard.view();
    let meta = view
        .topic(TRANSACTION_STATE_TOPIC)
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
    let partition = offsets_partition(transactional_id, meta.partitions);
    if view.leads(meta, partition) {
        return Ok(Coordinator::Shard(meta.owner(partition, view.shard_count)));
    }
    match view.state(meta, partition).leader {
        NO_LEADER => Err(ResponseError::NotCoordinator),
        node_id => Ok(Coordinator::Node(node_id)),
    }
}

/// Asks the coordinator whether each of `partitions` is in the producer's
/// transaction (AddPartitionsToTxn's `verify_only`): each one's error,
/// None when it is in.
pub async fn verify(
    context: &ConnectionContext,
    transactional_id: &str,
    (producer_id, producer_epoch): (i64, i16),
    partitions: Vec<(String, i32)>,
) -> Vec<Option<ResponseError>> {
    let count = partitions.len();
    let node_id = match coordinator_of(context, transactional_id) {
        Ok(Coordinator::Node(node_id)) => node_id,
        Ok(Coordinator::Shard(_)) => {
            let call = TxnCall::AddPartitions {
                transactional_id: transactional_id.to_string(),
                producer_id,
                producer_epoch,
                partitions,
                verify_only: true,
            };
            return match call_txn(context, transactional_id, call).await {
                Ok(TxnAnswer::Added(Ok(errors))) if errors.len() == count => errors,
                Ok(TxnAnswer::Added(Err(error))) | Err(error) => vec![Some(error); count],
                Ok(_) => vec![Some(ResponseError::UnknownServerError); count],
            };
        }
        Err(error) => return vec![Some(error); count],
    };
    let verification = Verification {
        transactional_id: transactional_id.to_string(),
        producer_id,
        producer_epoch,
        add: false,
        partitions,
    };
    context.shard.verify_on_node(node_id, verification).await
}

/// Runs `call` on the coordinator of its transactional id.
pub async fn call_txn(
    context: &ConnectionContext,
    transactional_id: &str,
    call: TxnCall,
) -> Result<TxnAnswer, ResponseError> {
    if transactional_id.is_empty() {
        return Err(ResponseError::InvalidRequest);
    }
    ensure_txn_topic(context).await?;
    let owner = coordinator_shard(context, transactional_id)?;
    match context.shard.call(owner, ShardRequest::Txn(call)).await {
        ShardReply::Txn(answer) => Ok(answer),
        ShardReply::Failed(error) => Err(ResponseError::try_from_code(error.code)
            .unwrap_or(ResponseError::CoordinatorNotAvailable)),
        _ => Err(ResponseError::CoordinatorNotAvailable),
    }
}

/// Transactions version 2: adds `partitions` to the producer's
/// transaction on its coordinator (no AddPartitionsToTxn came before), with
/// Kafka's retries of CONCURRENT_TRANSACTIONS.
pub async fn add_implicitly(
    context: &ConnectionContext,
    transactional_id: &str,
    producer: (i64, i16),
    partitions: Vec<(String, i32)>,
) -> Result<(), ResponseError> {
    let retries = AddRetries::new();
    loop {
        match add_once(context, transactional_id, producer, partitions.clone()).await {
            Err(error) if retries.wait(error).await => continue,
            added => return added,
        }
    }
}

/// One implicit add of `partitions` to the producer's transaction, on the
/// coordinator wherever it is. Without `__transaction_state` there is no
/// coordinator: a produce does not create it, as Kafka's does not.
pub async fn add_once(
    context: &ConnectionContext,
    transactional_id: &str,
    (producer_id, producer_epoch): (i64, i16),
    partitions: Vec<(String, i32)>,
) -> Result<(), ResponseError> {
    if let Coordinator::Node(node_id) = coordinator_of(context, transactional_id)? {
        let verification = Verification {
            transactional_id: transactional_id.to_string(),
            producer_id,
            producer_epoch,
            add: true,
            partitions,
        };
        let verdicts = context.shard.verify_on_node(node_id, verification).await;
        return match verdicts.into_iter().flatten().next() {
            Some(error) => Err(error),
            None => Ok(()),
        };
    }
    let call = TxnCall::AddImplicitly {
        transactional_id: transactional_id.to_string(),
        producer_id,
        producer_epoch,
        partitions,
    };
    match call_txn(context, transactional_id, call).await {
        Ok(TxnAnswer::Added(Ok(_))) => Ok(()),
        Ok(TxnAnswer::Added(Err(error))) | Err(error) => Err(error),
        Ok(_) => Err(ResponseError::UnknownServerError),
    }
}

/// Kafka's broker-side retries of an implicit add answered
/// CONCURRENT_TRANSACTIONS, from one request's first try.
pub struct AddRetries {
    started_ms: u64,
}

impl AddRetries {
    pub fn new() -> AddRetries {
        AddRetries {
            started_ms: now_ms(),
        }
    }

    /// Waits the backoff and says true when `error` is worth another try
    /// within the bound; false at once otherwise.
    pub async fn wait(&self, error: ResponseError) -> bool {
        let waited_ms = now_ms().saturating_sub(self.started_ms);
        if error != ResponseError::ConcurrentTransactions
            || waited_ms + ADD_PARTITIONS_RETRY_BACKOFF_MS > ADD_PARTITIONS_RETRY_MAX_MS
        {
            return false;
        }
        glommio::timer::sleep(Duration::from_millis(ADD_PARTITIONS_RETRY_BACKOFF_MS)).await;
        true
    }
}

/// ListTransactions over the coordinators a connection speaks for: every
/// shard's on the shared port, only its own shard's on a shard's own port.
/// COORDINATOR_LOAD_IN_PROGRESS while any of them loads, as Kafka.
pub async fn list_all(
    context: &ConnectionContext,
    states: Vec<TxnState>,
    producer_ids: Vec<i64>,
    min_duration_ms: i64,
) -> Result<Vec<ListedTxn>, ResponseError> {
    let shards = match context.port {
        Port::Shared => 0..context.shard.count(),
        Port::Own => context.shard.id..context.shard.id + 1,
    };
    let calls = shards.map(|shard| {
        let call = TxnCall::List {
            states: states.clone(),
            producer_ids: producer_ids.clone(),
            min_duration_ms,
        };
        context.shard.call(shard, ShardRequest::Txn(call))
    });
    let mut listed = Vec::new();
    for reply in futures_util::future::join_all(calls).await {
        match reply {
            ShardReply::Txn(TxnAnswer::Listed(txns)) => listed.extend(txns),
            ShardReply::Failed(error) => {
                return Err(ResponseError::try_from_code(error.code)
                    .unwrap_or(ResponseError::CoordinatorNotAvailable))
            }
            _ => return Err(ResponseError::CoordinatorNotAvailable),
        }
    }
    listed.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
    Ok(listed)
}

/// Kafka answers clients older than PRODUCER_FENCED (added by KIP-588)
/// with INVALID_PRODUCER_EPOCH, which they handle the same way.
pub fn fenced_for(version: i16, first_fenced_version: i16, error: ResponseError) -> ResponseError {
    if error == ResponseError::ProducerFenced && version < first_fenced_version {
        ResponseError::InvalidProducerEpoch
    } else {
        error
    }
}
