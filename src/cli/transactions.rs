//! `shoal transactions list|describe|describe-producers|abort`, the
//! kafka-transactions.sh subset, over ListTransactions (every broker),
//! FindCoordinator (key type transaction) with DescribeTransactions, and
//! DescribeProducers and WriteTxnMarkers (the partition leader).
//!
//! Invariant: tables have kafka-transactions.sh's shape (its headers, `None`
//! where a value is absent, each cell padded to its column's width and
//! followed by a tab), so scripts written against Kafka read shoal's output
//! unchanged. `abort` writes only an ABORT marker, only for a producer the
//! partition leader reports with an open transaction starting at the given
//! offset (or, the older form, exactly the producer named).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::describe_producers_response::ProducerState;
use kafka_protocol::messages::describe_transactions_response::TransactionState;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeProducersRequest, DescribeTransactionsRequest,
    ListTransactionsRequest, ProducerId, TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::table::{broker_ids, table, Layout};
use super::BootstrapArg;
use crate::client::coordinator::KEY_TYPE_TRANSACTION;
use crate::client::{check, topic_name, Cluster, Coordinator, KafkaError};

/// ListTransactions carries a duration filter from this version (KIP-994).
const LIST_DURATION_FILTER_VERSION: i16 = 1;
/// The duration filter that keeps every transaction.
const ALL_DURATIONS: i64 = -1;
/// What kafka-transactions.sh prints for an absent value.
const NONE: &str = "None";
/// Kafka's UNSUPPORTED_VERSION error code.
const UNSUPPORTED_VERSION: i16 = 35;

const LIST_HEADERS: [&str; 4] = [
    "TransactionalId",
    "Coordinator",
    "ProducerId",
    "TransactionState",
];
const PRODUCERS_HEADERS: [&str; 6] = [
    "ProducerId",
    "ProducerEpoch",
    "LatestCoordinatorEpoch",
    "LastSequence",
    "LastTimestamp",
    "CurrentTransactionStartOffset",
];
const DESCRIBE_HEADERS: [&str; 9] = [
    "CoordinatorId",
    "TransactionalId",
    "ProducerId",
    "ProducerEpoch",
    "TransactionState",
    "TransactionTimeoutMs",
    "CurrentTransactionStartTimeMs",
    "TransactionDurationMs",
    "TopicPartitions",
];

/// `shoal transactions ...`
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum TransactionsCommand {
    /// List the transactional ids every broker coordinates, with their state.
    List {
        /// Only transactions running longer than this many ms (negative: all).
        #[arg(long, value_name = "MS", allow_negative_numbers = true)]
        duration_filter: Option<i64>,
        #[command(flatten)]
        bootstrap: BootstrapArg,
    },
    /// Describe the state of a transactional id at its coordinator.
    Describe {
        /// The transactional id.
        #[arg(long)]
        transactional_id: String,
        #[command(flatten)]
        bootstrap: BootstrapArg,
    },
    /// Describe the producers of one partition, with their open transactions.
    DescribeProducers {
        /// The topic.
        #[arg(long)]
        topic: String,
        /// The partition.
        #[arg(long)]
        partition: i32,
        /// Ask this broker rather than the partition's leader.
        #[arg(long)]
        broker_id: Option<i32>,
        #[command(flatten)]
        bootstrap: BootstrapArg,
    },
    /// Abort a hanging transaction on one partition (writes an ABORT marker).
    Abort(AbortArgs),
}

/// `shoal transactions abort --topic T --partition P --start-offset N`, or
/// the producer named outright (kafka-transactions.sh's form for brokers
/// older than 3.0).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["start_offset", "producer_id"])))]
pub struct AbortArgs {
    /// The topic.
    #[arg(long)]
    pub topic: String,
    /// The partition.
    #[arg(long)]
    pub partition: i32,
    /// The first offset of the transaction to abort.
    #[arg(long, value_name = "OFFSET", conflicts_with = "producer_id")]
    pub start_offset: Option<i64>,
    /// The producer id of the transaction to abort.
    #[arg(long, requires_all = ["producer_epoch", "coordinator_epoch"])]
    pub producer_id: Option<i64>,
    /// Its producer epoch.
    #[arg(long, requires = "producer_id")]
    pub producer_epoch: Option<i16>,
    /// Its coordinator epoch.
    #[arg(long, requires = "producer_id", allow_negative_numbers = true)]
    pub coordinator_epoch: Option<i32>,
    #[command(flatten)]
    pub bootstrap: BootstrapArg,
}

/// Runs one `shoal transactions` command, printing to stdout.
pub fn run_transactions(cmd: TransactionsCommand) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cmd {
        TransactionsCommand::List {
            duration_filter,
            bootstrap,
        } => {
            let rows = list(&bootstrap.bootstrap, duration_filter)?;
            write!(out, "{}", table(Layout::Tabbed, &LIST_HEADERS, &rows))?;
        }
        TransactionsCommand::Describe {
            transactional_id,
            bootstrap,
        } => {
            let row = describe(&bootstrap.bootstrap, &transactional_id)?;
            write!(out, "{}", table(Layout::Tabbed, &DESCRIBE_HEADERS, &[row]))?;
        }
        TransactionsCommand::DescribeProducers {
            topic,
            partition,
            broker_id,
            bootstrap,
        } => {
            let mut cluster = Cluster::connect(&bootstrap.bootstrap, &[&topic])?;
            let node_id = match broker_id {
                Some(id) => BrokerId(id),
                None => cluster.leader(&topic, partition)?,
            };
            let producers = describe_producers(cluster.broker(node_id)?, &topic, partition)?;
            let rows: Vec<_> = producers.iter().map(producer_row).collect();
            write!(out, "{}", table(Layout::Tabbed, &PRODUCERS_HEADERS, &rows))?;
        }
        TransactionsCommand::Abort(args) => abort(&args)?,
    }
    out.flush()?;
    Ok(())
}

/// One row per transactional id, by coordinator then id.
fn list(bootstrap: &str, duration_filter: Option<i64>) -> anyhow::Result<Vec<Vec<String>>> {
    let mut cluster = Cluster::connect(bootstrap, &[])?;
    let mut rows = BTreeMap::new();
    for node_id in broker_ids(&cluster) {
        let conn = cluster.broker(node_id)?;
        let version = conn.require_version(ApiKey::ListTransactions)?;
        let mut request = ListTransactionsRequest::default();
        if let Some(ms) = duration_filter.filter(|&ms| ms != ALL_DURATIONS) {
            if version < LIST_DURATION_FILTER_VERSION {
                bail!(KafkaError {
                    code: UNSUPPORTED_VERSION,
                    message: format!(
                        "broker {} cannot filter transactions by duration",
                        node_id.0
                    ),
                });
            }
            request = request.with_duration_filter(ms);
        }
        let response = conn.send_version(request, version)?;
        check(response.error_code, None, "ListTransactions")?;
        for state in response.transaction_states {
            let id = state.transactional_id.0.to_string();
            rows.insert(
                (node_id.0, id.clone()),
                vec![
                    id,
                    node_id.0.to_string(),
                    state.producer_id.0.to_string(),
                    state.transaction_state.to_string(),
                ],
            );
        }
    }
    Ok(rows.into_values().collect())
}

/// The describe row of `transactional_id`, asked of its coordinator.
fn describe(bootstrap: &str, transactional_id: &str) -> anyhow::Result<Vec<String>> {
    let (coordinator, state) = Coordinator::call_key(
        bootstrap,
        KEY_TYPE_TRANSACTION,
        transactional_id,
        |coordinator| {
            let request = DescribeTransactionsRequest::default().with_transactional_ids(vec![
                TransactionalId(StrBytes::from_string(transactional_id.to_owned())),
            ]);
            let response = coordinator.conn.send(request)?;
            let state = response
                .transaction_states
                .into_iter()
                .find(|s| s.transactional_id.0.as_str() == transactional_id)
                .ok_or_else(|| {
                    anyhow!("DescribeTransactions response does not mention {transactional_id}")
                })?;
            check(
                state.error_code,
                None,
                &format!("transactional id {transactional_id}"),
            )?;
            Ok((coordinator.node_id.0, state))
        },
    )?;
    Ok(describe_row(coordinator, &state, now_ms()))
}

fn describe_row(coordinator: i32, state: &TransactionState, now_ms: i64) -> Vec<String> {
    // Kafka's Admin reports a start time only when there is one (>= 0).
    let (start, duration) = if state.transaction_start_time_ms >= 0 {
        (
            state.transaction_start_time_ms.to_string(),
            (now_ms - state.transaction_start_time_ms).to_string(),
        )
    } else {
        (NONE.to_owned(), NONE.to_owned())
    };
    let mut partitions: Vec<String> = state
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| format!("{}-{p}", t.topic.0))
        })
        .collect();
    partitions.sort();
    vec![
        coordinator.to_string(),
        state.transactional_id.0.to_string(),
        state.producer_id.0.to_string(),
        state.producer_epoch.to_string(),
        state.transaction_state.to_string(),
        state.transaction_timeout_ms.to_string(),
        start,
        duration,
        partitions.join(","),
    ]
}

/// The marker to write: the producer the leader reports with an open
/// transaction starting at `start_offset`, or the one named outright.
fn abort(args: &AbortArgs) -> anyhow::Result<()> {
    let (topic, partition) = (args.topic.as_str(), args.partition);
    let mut cluster = Cluster::connect(&args.bootstrap.bootstrap, &[topic])?;
    let leader = cluster.leader(topic, partition)?;
    let conn = cluster.broker(leader)?;
    let (producer_id, producer_epoch, coordinator_epoch) = match args.start_offset {
        Some(start_offset) => {
            let producers = describe_producers(conn, topic, partition)?;
            let found = open_transaction_at(&producers, start_offset).ok_or_else(|| {
                anyhow!(
                    "Could not find any open transactions starting at offset {start_offset} \
                     on partition {topic}-{partition}"
                )
            })?;
            let epoch = i16::try_from(found.producer_epoch)
                .with_context(|| format!("producer epoch {}", found.producer_epoch))?;
            (found.producer_id.0, epoch, found.coordinator_epoch)
        }
        None => (
            args.producer_id.context("--producer-id")?,
            args.producer_epoch.context("--producer-epoch")?,
            args.coordinator_epoch.context("--coordinator-epoch")?,
        ),
    };
    // A transaction that hung before its first marker has no coordinator
    // epoch (-1); as kafka-transactions.sh, 0 is no newer than any.
    let marker = WritableTxnMarker::default()
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(producer_epoch)
        .with_coordinator_epoch(coordinator_epoch.max(0))
        .with_transaction_result(false)
        .with_topics(vec![WritableTxnMarkerTopic::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(vec![partition])]);
    let response = conn.send(WriteTxnMarkersRequest::default().with_markers(vec![marker]))?;
    let result = response
        .markers
        .iter()
        .find(|m| m.producer_id.0 == producer_id)
        .and_then(|m| m.topics.iter().find(|t| t.name.0.as_str() == topic))
        .and_then(|t| t.partitions.iter().find(|p| p.partition_index == partition))
        .ok_or_else(|| anyhow!("WriteTxnMarkers response does not mention {topic}-{partition}"))?;
    check(
        result.error_code,
        None,
        &format!("aborting the transaction of producer {producer_id} on {topic}-{partition}"),
    )?;
    Ok(())
}

fn describe_producers(
    conn: &mut crate::client::Connection,
    topic: &str,
    partition: i32,
) -> anyhow::Result<Vec<ProducerState>> {
    let request = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(topic_name(topic))
        .with_partition_indexes(vec![partition])]);
    let response = conn.send(request)?;
    let answer = response
        .topics
        .into_iter()
        .filter(|t| t.name.0.as_str() == topic)
        .flat_map(|t| t.partitions)
        .find(|p| p.partition_index == partition)
        .ok_or_else(|| {
            anyhow!("DescribeProducers response does not mention {topic}-{partition}")
        })?;
    check(
        answer.error_code,
        answer.error_message.as_deref(),
        &format!("producers of {topic}-{partition}"),
    )?;
    Ok(answer.active_producers)
}

fn producer_row(p: &ProducerState) -> Vec<String> {
    let start = if p.current_txn_start_offset >= 0 {
        p.current_txn_start_offset.to_string()
    } else {
        NONE.to_owned()
    };
    vec![
        p.producer_id.0.to_string(),
        p.producer_epoch.to_string(),
        p.coordinator_epoch.to_string(),
        p.last_sequence.to_string(),
        p.last_timestamp.to_string(),
        start,
    ]
}

fn open_transaction_at(producers: &[ProducerState], start_offset: i64) -> Option<&ProducerState> {
    producers
        .iter()
        .find(|p| p.current_txn_start_offset >= 0 && p.current_txn_start_offset == start_offset)
}

/// kafka-transactions.sh's table: each cell padded to its column's width,
/// then a tab; header first.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_transactions_response::TopicData;

    #[test]
    fn describe_row_shows_none_without_a_start_time() {
        let state = TransactionState::default()
            .with_transactional_id(TransactionalId(StrBytes::from_static_str("t")))
            .with_producer_id(ProducerId(7))
            .with_producer_epoch(2)
            .with_transaction_state(StrBytes::from_static_str("Empty"))
            .with_transaction_timeout_ms(60_000)
            .with_transaction_start_time_ms(-1);
        assert_eq!(
            describe_row(1, &state, 5_000),
            ["1", "t", "7", "2", "Empty", "60000", "None", "None", ""]
        );
        let ongoing = state
            .with_transaction_state(StrBytes::from_static_str("Ongoing"))
            .with_transaction_start_time_ms(1_000)
            .with_topics(vec![
                TopicData::default()
                    .with_topic(topic_name("b"))
                    .with_partitions(vec![1, 0]),
                TopicData::default()
                    .with_topic(topic_name("a"))
                    .with_partitions(vec![3]),
            ]);
        assert_eq!(
            describe_row(1, &ongoing, 5_000),
            [
                "1",
                "t",
                "7",
                "2",
                "Ongoing",
                "60000",
                "1000",
                "4000",
                "a-3,b-0,b-1"
            ]
        );
    }

    #[test]
    fn producer_rows_show_none_without_an_open_transaction() {
        let producer = ProducerState::default()
            .with_producer_id(ProducerId(4))
            .with_producer_epoch(1)
            .with_last_sequence(9)
            .with_last_timestamp(1_700)
            .with_coordinator_epoch(-1)
            .with_current_txn_start_offset(-1);
        assert_eq!(
            producer_row(&producer),
            ["4", "1", "-1", "9", "1700", "None"]
        );
        let open = producer.with_current_txn_start_offset(12);
        assert_eq!(producer_row(&open)[5], "12");
    }

    #[test]
    fn abort_finds_only_a_transaction_open_at_that_offset() {
        let producer = |id, start| {
            ProducerState::default()
                .with_producer_id(ProducerId(id))
                .with_current_txn_start_offset(start)
        };
        let producers = [producer(1, -1), producer(2, 40), producer(3, 12)];
        assert_eq!(
            open_transaction_at(&producers, 12).map(|p| p.producer_id.0),
            Some(3)
        );
        assert!(open_transaction_at(&producers, 13).is_none());
        assert!(open_transaction_at(&producers, -1).is_none());
    }
}
