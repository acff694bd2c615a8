//! `shoal bench produce | consume | e2e`: a load generator for any
//! Kafka-compatible broker, in the manner of kafka-producer-perf-test and
//! the OpenMessaging Benchmark, reporting throughput and HDR latency
//! percentiles (as one JSON object with `--json`).
//!
//! - `produce` ([`produce`]): each `--connections` connection is a thread
//!   that fills one batch per partition (`--batch-bytes`, `--linger-ms`) and
//!   pipelines up to [`produce::IN_FLIGHT_MAX`] Produce requests, with a
//!   second thread reading the acknowledgements. Latency per record is from
//!   the send of its request (or, at a fixed `--rate`, from the moment it was
//!   due, so a stalled broker cannot hide its stall: no coordinated
//!   omission) to the acknowledgement.
//! - `consume` ([`consume`]): reads the topic from the beginning, its
//!   partitions spread over the connections; latency is the Fetch round trip.
//! - `e2e` ([`e2e`]): a producer at `--rate` and a consumer in one process;
//!   each value starts with the instant it was due, and latency is its
//!   arrival at the consumer minus that.
//!
//! Invariant: the load generator reaches the broker only over the Kafka
//! protocol, through [`crate::client`], as any other client would. Broker
//! errors are counted by name and reported; a broker that goes away ends the
//! run with an error naming it.

mod batch;
mod consume;
mod e2e;
mod meter;
mod produce;

use std::collections::HashMap;
use std::sync::OnceLock;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{CreateTopicsRequest, MetadataResponse};
use uuid::Uuid;

use crate::cli::{BootstrapArg, CompressionArg};
use crate::client::{
    broker_addr, check, error_name, partition_leader, topic_name, Cluster, Connection,
    UNKNOWN_TOPIC_OR_PARTITION,
};
pub use meter::{Percentiles, Report};

/// The topic benchmarks use unless told otherwise.
pub const DEFAULT_TOPIC: &str = "shoal-bench";
/// Most connections (threads) a run may open; two threads each for produce.
const CONNECTIONS_MAX: usize = 256;
/// Largest record value; Kafka's default `message.max.bytes` is 1 MiB.
const RECORD_SIZE_MAX: usize = 1 << 20;
/// Largest `--batch-bytes`; several partitions' batches share one request,
/// and Kafka's default `max.request.size` is 1 MiB.
const BATCH_BYTES_MAX: usize = 1 << 20;
/// Length of the timestamp at the start of every e2e record's value.
const STAMP_BYTES: usize = 8;
/// How long the broker may take to create the topic and elect its leaders.
const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Wait between Metadata polls while the topic's leaders are elected.
const TOPIC_READY_POLL: Duration = Duration::from_millis(100);
/// `-1` asks the broker for its default partition count and replication.
const BROKER_DEFAULT: i32 = -1;
/// Kafka's TOPIC_ALREADY_EXISTS: another client created it first.
const TOPIC_ALREADY_EXISTS: i16 = 36;
/// ListOffsets timestamp meaning "the log start offset".
const EARLIEST_TIMESTAMP: i64 = -2;
/// ListOffsets timestamp meaning "the log end offset".
const LATEST_TIMESTAMP: i64 = -1;
/// Run length when neither `--records` nor `--duration` is given.
const DEFAULT_DURATION_S: f64 = 10.0;

/// `shoal bench ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchCommand {
    /// Produce as fast as the broker acknowledges (or at --rate) and time
    /// each record from send to acknowledgement.
    Produce(BenchArgs),
    /// Read the topic from the beginning; throughput and Fetch round trips.
    Consume(BenchArgs),
    /// Produce at --rate and consume in this process; time each record from
    /// when it was due to be sent until it was received.
    E2e(BenchArgs),
}

/// Options every benchmark takes; each ignores those that do not apply to it.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub bootstrap: BootstrapArg,
    /// The topic to use.
    #[arg(long, default_value = DEFAULT_TOPIC)]
    pub topic: String,
    /// Partitions of the topic when it has to be created (default: the
    /// broker's num.partitions).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: Option<i32>,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Give the records keys, cycling through this many distinct 8-byte ones
    /// (for compacted topics); keyless when omitted.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub keys: Option<u64>,
    /// Records to send or receive in total [default: run for 10 s].
    #[arg(long, conflicts_with = "duration")]
    pub records: Option<u64>,
    /// Seconds to run.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Records per second over all connections (fixed-rate mode); unlimited
    /// when omitted.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Acknowledgements to wait for: -1 (all in-sync replicas), 1 (leader), 0 (none).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i16).range(-1..=1))]
    pub acks: i16,
    /// Compression codec of the batches.
    #[arg(long, value_enum, default_value_t = CompressionArg::None)]
    pub compression: CompressionArg,
    /// Most bytes per partition batch (Kafka's batch.size).
    #[arg(long, default_value_t = 16384)]
    pub batch_bytes: usize,
    /// How long a batch that is not full may wait for more records (Kafka's linger.ms).
    #[arg(long, default_value_t = 0)]
    pub linger_ms: u64,
    /// Parallel connections, each on its own thread.
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Produce as an idempotent producer, as Kafka's producer does by
    /// default: a producer id per connection (InitProducerId) and
    /// sequenced batches. Needs `--acks -1`.
    #[arg(long)]
    pub idempotent: bool,
    /// Print one JSON object at the end instead of a summary line.
    #[arg(long)]
    pub json: bool,
}

impl BenchArgs {
    fn validate(&self) -> anyhow::Result<()> {
        if !(1..=CONNECTIONS_MAX).contains(&self.connections) {
            bail!("--connections must be between 1 and {CONNECTIONS_MAX}");
        }
        if self.record_size > RECORD_SIZE_MAX {
            bail!("--record-size must be at most {RECORD_SIZE_MAX}");
        }
        if !(1..=BATCH_BYTES_MAX).contains(&self.batch_bytes) {
            bail!("--batch-bytes must be between 1 and {BATCH_BYTES_MAX}");
        }
        if self
            .rate
            .is_some_and(|rate| !(rate.is_finite() && rate > 0.0))
        {
            bail!("--rate must be a positive number of records per second");
        }
        if self
            .duration
            .is_some_and(|seconds| !(seconds.is_finite() && seconds > 0.0))
        {
            bail!("--duration must be a positive number of seconds");
        }
        if self.idempotent && self.acks != -1 {
            // Kafka's producer refuses the same combination.
            bail!("--idempotent needs --acks -1");
        }
        Ok(())
    }

    /// When a `--duration` run (or the default one) ends; `None` with `--records`.
    fn deadline(&self, start: Instant) -> Option<Instant> {
        match (self.records, self.duration) {
            (Some(_), _) => None,
            (None, seconds) => {
                Some(start + Duration::from_secs_f64(seconds.unwrap_or(DEFAULT_DURATION_S)))
            }
        }
    }
}

/// Runs one benchmark and prints its report (JSON or a summary) to stdout.
pub fn run_bench(command: BenchCommand) -> anyhow::Result<()> {
    let (args, outcome) = match command {
        BenchCommand::Produce(args) => {
            args.validate()?;
            let outcome = produce::run(&args);
            (args, outcome)
        }
        BenchCommand::Consume(args) => {
            args.validate()?;
            let outcome = consume::run(&args);
            (args, outcome)
        }
        BenchCommand::E2e(args) => {
            args.validate()?;
            if args.record_size < STAMP_BYTES {
                bail!("e2e needs --record-size of at least {STAMP_BYTES} for the timestamp");
            }
            let outcome = e2e::run(&args);
            (args, outcome)
        }
    };
    // The caller prints only the outermost message; the causes (which
    // broker, what the socket said) belong in it.
    let with_causes = |error: anyhow::Error| anyhow!("{error:#}");
    let Outcome { report, failure } = outcome.map_err(with_causes)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{}", report.summary());
    }
    match failure {
        Some(error) => Err(with_causes(error)),
        None => Ok(()),
    }
}

/// A finished run: its report, and the error that ended it early, if any.
/// The report is printed either way, so a run cut short still shows what it
/// measured.
struct Outcome {
    report: Report,
    failure: Option<anyhow::Error>,
}

/// One partition of the topic under test and where its leader listens.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PartitionLeader {
    partition: i32,
    leader: String,
}

/// The topic under test as the cluster describes it.
struct TopicLayout {
    name: String,
    id: Uuid,
    partitions: Vec<PartitionLeader>,
}

/// The topic's layout; when it does not exist and `create`, creates it with
/// `--partitions` and waits (bounded) for every partition to have a leader.
fn prepare_topic(args: &BenchArgs, create: bool) -> anyhow::Result<TopicLayout> {
    let mut conn = Connection::connect(&args.bootstrap.bootstrap)?;
    let topic = args.topic.as_str();
    let give_up = Instant::now() + TOPIC_READY_TIMEOUT;
    let mut created = false;
    loop {
        let metadata = conn.metadata(Some(&[topic]))?;
        match layout(&metadata, topic) {
            Ok(layout) => {
                if let Some(wanted) = args.partitions {
                    if !created && layout.partitions.len() != wanted as usize {
                        eprintln!(
                            "bench: topic {topic} exists with {} partitions, not {wanted}; using it as it is",
                            layout.partitions.len()
                        );
                    }
                }
                return Ok(layout);
            }
            Err(LayoutError::Missing) if create && !created => {
                create_topic(&mut conn, topic, args.partitions)?;
                created = true;
            }
            Err(LayoutError::Missing) if !created => {
                bail!(
                    "{}: topic {topic} does not exist",
                    error_name(UNKNOWN_TOPIC_OR_PARTITION)
                )
            }
            Err(LayoutError::Missing | LayoutError::NotReady(_)) if Instant::now() < give_up => {
                thread::sleep(TOPIC_READY_POLL)
            }
            Err(LayoutError::Missing) => bail!("topic {topic} did not appear after creation"),
            Err(LayoutError::NotReady(error)) => {
                return Err(error.context(format!("topic {topic} is not ready")))
            }
        }
    }
}

enum LayoutError {
    Missing,
    NotReady(anyhow::Error),
}

fn layout(metadata: &MetadataResponse, topic: &str) -> Result<TopicLayout, LayoutError> {
    let meta = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic))
        .ok_or(LayoutError::Missing)?;
    if meta.error_code == UNKNOWN_TOPIC_OR_PARTITION {
        return Err(LayoutError::Missing);
    }
    check(meta.error_code, None, &format!("topic {topic}"))
        .map_err(|error| LayoutError::NotReady(error.into()))?;
    let mut partitions = Vec::with_capacity(meta.partitions.len());
    for p in &meta.partitions {
        let leader = partition_leader(metadata, topic, p.partition_index)
            .and_then(|leader| broker_addr(metadata, leader))
            .map_err(LayoutError::NotReady)?;
        partitions.push(PartitionLeader {
            partition: p.partition_index,
            leader,
        });
    }
    if partitions.is_empty() {
        return Err(LayoutError::NotReady(anyhow!("it has no partitions")));
    }
    partitions.sort_by_key(|p| p.partition);
    Ok(TopicLayout {
        name: topic.to_owned(),
        id: meta.topic_id,
        partitions,
    })
}

fn create_topic(conn: &mut Connection, topic: &str, partitions: Option<i32>) -> anyhow::Result<()> {
    let response = conn.send(
        CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(topic))
                .with_num_partitions(partitions.unwrap_or(BROKER_DEFAULT))
                .with_replication_factor(BROKER_DEFAULT as i16)])
            .with_timeout_ms(TOPIC_READY_TIMEOUT.as_millis() as i32),
    )?;
    for result in &response.topics {
        if result.error_code != TOPIC_ALREADY_EXISTS {
            check(
                result.error_code,
                result.error_message.as_deref(),
                &format!("creating topic {topic}"),
            )?;
        }
    }
    Ok(())
}

/// Each partition's offset at `timestamp` (earliest or latest), asked of
/// its leader through the client's `Cluster::list_offsets`.
fn offsets(
    args: &BenchArgs,
    layout: &TopicLayout,
    timestamp: i64,
) -> anyhow::Result<HashMap<i32, i64>> {
    let partitions: Vec<i32> = layout.partitions.iter().map(|p| p.partition).collect();
    let mut cluster = Cluster::connect(&args.bootstrap.bootstrap, &[&layout.name])?;
    cluster
        .list_offsets(&layout.name, &partitions, timestamp)?
        .into_iter()
        .map(|(partition, offset)| {
            let offset =
                offset.ok_or_else(|| anyhow!("no offset for {}-{partition}", layout.name))?;
            Ok((partition, offset))
        })
        .collect()
}

/// Deals `items` to `connections` lanes: round-robin when there are at
/// least as many items, otherwise lane `i` takes item `i % len` (shared).
fn spread<T: Clone>(items: &[T], connections: usize) -> Vec<Vec<T>> {
    let mut lanes = vec![Vec::new(); connections];
    if items.len() >= connections {
        for (i, item) in items.iter().enumerate() {
            lanes[i % connections].push(item.clone());
        }
    } else {
        for (i, lane) in lanes.iter_mut().enumerate() {
            lane.push(items[i % items.len()].clone());
        }
    }
    lanes
}

/// `lane`'s share of `total` when it is split over `lanes` as evenly as
/// possible.
fn share(total: u64, lanes: usize, lane: usize) -> u64 {
    let lanes = lanes as u64;
    total / lanes + u64::from((lane as u64) < total % lanes)
}

/// When each record of a fixed-rate lane is due: `start + seq / rate`.
#[derive(Debug, Clone, Copy)]
struct Pacing {
    start: Instant,
    interval_ns: f64,
}

impl Pacing {
    fn new(start: Instant, records_per_s: f64) -> Pacing {
        Pacing {
            start,
            interval_ns: 1e9 / records_per_s,
        }
    }

    fn due(&self, seq: u64) -> Instant {
        self.start + Duration::from_nanos((seq as f64 * self.interval_ns) as u64)
    }
}

/// The process-wide origin of e2e timestamps.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// `at` as the 8 bytes an e2e record's value starts with.
fn stamp(at: Instant) -> [u8; STAMP_BYTES] {
    let ns = u64::try_from(at.saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX);
    ns.to_be_bytes()
}

/// The instant stamped at the start of `value`, if it has a stamp.
fn unstamp(value: &[u8]) -> Option<Instant> {
    let ns = u64::from_be_bytes(value.get(..STAMP_BYTES)?.try_into().ok()?);
    Some(epoch() + Duration::from_nanos(ns))
}

/// Joins worker threads, returning the first error any of them ended with.
fn join_all(workers: Vec<JoinHandle<anyhow::Result<()>>>) -> Option<anyhow::Error> {
    let mut first = None;
    for worker in workers {
        let result = worker
            .join()
            .unwrap_or_else(|_| Err(anyhow!("a benchmark thread panicked")));
        if let Err(error) = result {
            first.get_or_insert(error);
        }
    }
    first
}

/// Payload bytes: uppercase letters, as kafka-producer-perf-test uses, from
/// a fixed seed so that runs compress alike.
fn payload(size: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b'A' + (state % 26) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn spread_deals_round_robin_or_shares() {
        assert_eq!(spread(&[0, 1, 2, 3, 4], 2), [vec![0, 2, 4], vec![1, 3]]);
        assert_eq!(spread(&[7, 8], 3), [vec![7], vec![8], vec![7]]);
        assert_eq!(spread(&[1], 1), [vec![1]]);
    }

    #[test]
    fn shares_add_up() {
        for (total, lanes) in [(10, 3), (2, 4), (0, 1), (20_000, 7)] {
            let sum: u64 = (0..lanes).map(|lane| share(total, lanes, lane)).sum();
            assert_eq!(sum, total);
        }
        assert_eq!(share(10, 3, 0), 4);
        assert_eq!(share(10, 3, 2), 3);
    }

    #[test]
    fn stamps_round_trip_and_pacing_is_linear() {
        let at = epoch() + Duration::from_micros(1234);
        assert_eq!(unstamp(&stamp(at)), Some(at));
        assert_eq!(unstamp(&[1, 2]), None);
        let pacing = Pacing::new(at, 1000.0);
        assert_eq!(pacing.due(0), at);
        assert_eq!(pacing.due(1500), at + Duration::from_millis(1500));
    }

    #[test]
    fn payload_is_letters() {
        let bytes = payload(1000);
        assert_eq!(bytes.len(), 1000);
        assert!(bytes.iter().all(u8::is_ascii_uppercase));
    }

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: BenchCommand,
    }

    #[test]
    fn options_parse_and_validate() {
        let parse = |argv: &[&str]| Cli::try_parse_from(argv).map(|cli| cli.command);
        let Ok(BenchCommand::Produce(args)) = parse(&[
            "bench",
            "produce",
            "--records",
            "5",
            "--acks",
            "1",
            "--compression",
            "lz4",
            "--partitions",
            "4",
        ]) else {
            panic!("produce did not parse");
        };
        assert_eq!(args.records, Some(5));
        assert_eq!(args.acks, 1);
        assert_eq!(args.topic, DEFAULT_TOPIC);
        assert_eq!(args.batch_bytes, 16384);
        assert!(args.validate().is_ok());
        assert!(args.deadline(Instant::now()).is_none());

        assert!(parse(&["bench", "consume", "--records", "1", "--duration", "2"]).is_err());
        assert!(parse(&["bench", "e2e", "--partitions", "0"]).is_err());
        let Ok(BenchCommand::E2e(args)) = parse(&["bench", "e2e", "--rate", "0"]) else {
            panic!("e2e did not parse");
        };
        assert!(args.validate().is_err());
        assert!(args.deadline(Instant::now()).is_some());
    }
}
