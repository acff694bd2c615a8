//! `shoal consume`: print a topic's records, like kafka-console-consumer
//! without a consumer group.
//!
//! The consumer assigns itself every partition (or the one asked for),
//! resolves where to start through ListOffsets, then long-polls Fetch on each
//! leader and prints values (or `key SEP value`) one per line.
//!
//! Invariant: each partition's records are printed in offset order, each at
//! most once, and never more than `--max-messages` in total.

use std::collections::BTreeMap;
use std::io::Write;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, ListOffsetsRequest};

use super::BootstrapArg;
use crate::client::fetch_request;
use crate::client::{check, topic_name, Cluster, KafkaError, UNKNOWN_TOPIC_OR_PARTITION};
use crate::protocol::records::{decode_records, ConsumedRecord};

/// Longest a Fetch may wait on the broker for new data (`fetch.max.wait.ms`,
/// Kafka's default).
const FETCH_MAX_WAIT_MS: i32 = 500;
/// Most bytes per Fetch response (`fetch.max.bytes`, Kafka's default 50 MiB);
/// well under the client's response frame limit.
const FETCH_MAX_BYTES: i32 = 50 << 20;
/// Most bytes per partition per Fetch (`max.partition.fetch.bytes`).
const PARTITION_FETCH_MAX_BYTES: i32 = 1 << 20;
/// ListOffsets timestamp meaning "the log start offset".
const EARLIEST_TIMESTAMP: i64 = -2;
/// ListOffsets timestamp meaning "the log end offset".
const LATEST_TIMESTAMP: i64 = -1;
/// What is printed for a null key or value, as Kafka's formatter does.
const NULL_TEXT: &[u8] = b"null";

/// Where `--offset` starts: `earliest`, `latest`, or an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    At(i64),
}

impl FromStr for OffsetSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<OffsetSpec, String> {
        match s {
            "earliest" => Ok(OffsetSpec::Earliest),
            "latest" => Ok(OffsetSpec::Latest),
            _ => match s.parse::<i64>() {
                Ok(offset) if offset >= 0 => Ok(OffsetSpec::At(offset)),
                _ => Err(format!(
                    "expected 'earliest', 'latest' or a non-negative offset, got {s:?}"
                )),
            },
        }
    }
}

/// `shoal consume TOPIC ...`
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ConsumeArgs {
    /// The topic to read.
    pub topic: String,
    #[command(flatten)]
    pub bootstrap: BootstrapArg,
    /// Start at the earliest offset instead of the latest.
    #[arg(long, conflicts_with = "offset")]
    pub from_beginning: bool,
    /// Read only this partition.
    #[arg(long)]
    pub partition: Option<i32>,
    /// Where to start in --partition: 'earliest', 'latest' or an offset.
    #[arg(long, requires = "partition")]
    pub offset: Option<OffsetSpec>,
    /// Exit after printing this many records.
    #[arg(long)]
    pub max_messages: Option<u64>,
    /// Exit when no record has arrived for this long.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Print each record's key before its value.
    #[arg(long)]
    pub print_key: bool,
    /// What goes between key and value with --print-key.
    #[arg(long, value_name = "SEP", default_value = "\t")]
    pub key_separator: String,
}

/// Consumes until `--max-messages` or `--timeout-ms`, printing records to
/// stdout and `Processed a total of N messages` to stderr.
/// Ctrl-C and SIGTERM end the run as cleanly as `--max-messages` does.
pub fn run_consume(args: ConsumeArgs) -> anyhow::Result<()> {
    stop_on_signals();
    let mut printed = 0u64;
    let result = match consume(&args, &mut printed) {
        // A closed stdout (`| head`) is the reader saying it has enough.
        Err(error) if is_broken_pipe(&error) => Ok(()),
        other => other,
    };
    eprintln!("Processed a total of {printed} messages");
    result
}

/// Set by SIGINT or SIGTERM; the fetch loop checks it between fetches, which
/// the long-poll bound ([`FETCH_MAX_WAIT_MS`]) keeps frequent.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_signal: libc::c_int) {
    STOP_REQUESTED.store(true, Ordering::Relaxed);
}

fn stop_on_signals() {
    let handler = request_stop as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe; glibc's signal() restarts interrupted reads.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// A partition being read and the offset of the next record to print.
#[derive(Debug, Clone, Copy)]
struct Position {
    partition: i32,
    next_offset: i64,
}

fn consume(args: &ConsumeArgs, printed: &mut u64) -> anyhow::Result<()> {
    let mut cluster = Cluster::connect(&args.bootstrap.bootstrap, &[&args.topic])?;
    let topic = cluster.topic(&args.topic)?;
    let topic_id = topic.topic_id;
    let mut partitions: Vec<i32> = topic.partitions.iter().map(|p| p.partition_index).collect();
    partitions.sort_unstable();
    if let Some(p) = args.partition {
        if !partitions.contains(&p) {
            bail!(KafkaError {
                code: UNKNOWN_TOPIC_OR_PARTITION,
                message: format!("{}-{p}: no such partition", args.topic),
            });
        }
        partitions = vec![p];
    }
    if partitions.is_empty() {
        bail!(KafkaError {
            code: UNKNOWN_TOPIC_OR_PARTITION,
            message: format!("topic {} has no partitions", args.topic),
        });
    }
    let start = match (args.offset, args.from_beginning) {
        (Some(spec), _) => spec,
        (None, true) => OffsetSpec::Earliest,
        (None, false) => OffsetSpec::Latest,
    };

    let mut by_leader: BTreeMap<BrokerId, Vec<Position>> = BTreeMap::new();
    for partition in partitions {
        let leader = cluster.leader(&args.topic, partition)?;
        by_leader.entry(leader).or_default().push(Position {
            partition,
            next_offset: 0,
        });
    }
    for (leader, positions) in &mut by_leader {
        resolve_start(&mut cluster, &args.topic, *leader, positions, start)?;
    }

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let timeout = args.timeout_ms.map(Duration::from_millis);
    let mut last_progress = Instant::now();
    loop {
        if args.max_messages.is_some_and(|max| *printed >= max)
            || STOP_REQUESTED.load(Ordering::Relaxed)
        {
            return Ok(());
        }
        let wait_ms = match timeout {
            Some(timeout) => {
                let left = timeout.saturating_sub(last_progress.elapsed());
                if left.is_zero() {
                    return Ok(());
                }
                i32::try_from(left.as_millis())
                    .map_or(FETCH_MAX_WAIT_MS, |ms| ms.min(FETCH_MAX_WAIT_MS))
            }
            None => FETCH_MAX_WAIT_MS,
        };
        for (leader, positions) in &mut by_leader {
            let records = fetch(
                &mut cluster,
                &args.topic,
                topic_id,
                *leader,
                positions,
                wait_ms,
            )?;
            for record in records {
                if args.max_messages.is_some_and(|max| *printed >= max) {
                    break;
                }
                print_record(&mut out, &record, args).context("writing to stdout")?;
                *printed += 1;
                last_progress = Instant::now();
            }
            out.flush().context("writing to stdout")?;
        }
    }
}

/// Sets each position's start offset, asking the leader where needed.
fn resolve_start(
    cluster: &mut Cluster,
    topic: &str,
    leader: BrokerId,
    positions: &mut [Position],
    start: OffsetSpec,
) -> anyhow::Result<()> {
    let timestamp = match start {
        OffsetSpec::At(offset) => {
            for position in positions.iter_mut() {
                position.next_offset = offset;
            }
            return Ok(());
        }
        OffsetSpec::Earliest => EARLIEST_TIMESTAMP,
        OffsetSpec::Latest => LATEST_TIMESTAMP,
    };
    let request = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
        .with_name(topic_name(topic))
        .with_partitions(
            positions
                .iter()
                .map(|p| {
                    ListOffsetsPartition::default()
                        .with_partition_index(p.partition)
                        .with_timestamp(timestamp)
                })
                .collect(),
        )]);
    let response = cluster.broker(leader)?.send(request)?;
    for position in positions.iter_mut() {
        let answer = response
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == position.partition)
            .ok_or_else(|| {
                anyhow!(
                    "ListOffsets response does not mention {topic}-{}",
                    position.partition
                )
            })?;
        check(
            answer.error_code,
            None,
            &format!("{topic}-{}", position.partition),
        )?;
        position.next_offset = answer.offset;
    }
    Ok(())
}

/// One Fetch of `positions` from their `leader`; returns the new records in
/// partition order and advances the positions past them.
fn fetch(
    cluster: &mut Cluster,
    topic: &str,
    topic_id: uuid::Uuid,
    leader: BrokerId,
    positions: &mut [Position],
    wait_ms: i32,
) -> anyhow::Result<Vec<ConsumedRecord>> {
    let request = fetch_request(
        topic,
        topic_id,
        positions.iter().map(|p| (p.partition, p.next_offset)),
        wait_ms,
        FETCH_MAX_BYTES,
        PARTITION_FETCH_MAX_BYTES,
    );
    let conn = cluster.broker(leader)?;
    let version = conn.topic_version(ApiKey::Fetch, topic_id)?;
    let response = conn.send_version(request, version)?;
    check(response.error_code, None, "fetch")?;

    let mut records = Vec::new();
    // The request names one topic, so every partition in the answer is ours
    // (whether the broker answered by name or by id).
    for data in response.responses.iter().flat_map(|t| &t.partitions) {
        let Some(position) = positions
            .iter_mut()
            .find(|p| p.partition == data.partition_index)
        else {
            continue;
        };
        check(
            data.error_code,
            None,
            &format!("{topic}-{}", data.partition_index),
        )?;
        let Some(set) = &data.records else {
            continue;
        };
        let fetched = decode_records(set, position.next_offset)
            .with_context(|| format!("{topic}-{}", position.partition))?;
        if let Some(next) = fetched.next_offset {
            position.next_offset = position.next_offset.max(next);
        }
        records.extend(fetched.records);
    }
    Ok(records)
}

/// Writes one record: the value, or `key SEP value` with `--print-key`.
fn print_record(
    out: &mut impl Write,
    record: &ConsumedRecord,
    args: &ConsumeArgs,
) -> anyhow::Result<()> {
    if args.print_key {
        out.write_all(record.key.as_deref().unwrap_or(NULL_TEXT))?;
        out.write_all(args.key_separator.as_bytes())?;
    }
    out.write_all(record.value.as_deref().unwrap_or(NULL_TEXT))?;
    out.write_all(b"\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ConsumeArgs,
    }

    fn parse(args: &[&str]) -> Result<ConsumeArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("consume").chain(args.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn options_parse_like_the_console_consumer() {
        let args = parse(&[
            "t",
            "--partition",
            "1",
            "--offset",
            "42",
            "--max-messages",
            "10",
            "--timeout-ms",
            "2000",
            "--print-key",
        ])
        .unwrap();
        assert_eq!(args.partition, Some(1));
        assert_eq!(args.offset, Some(OffsetSpec::At(42)));
        assert_eq!(args.max_messages, Some(10));
        assert_eq!(args.timeout_ms, Some(2000));
        assert!(args.print_key);
        assert_eq!(args.key_separator, "\t");
        assert!(!args.from_beginning);

        assert_eq!(
            parse(&["t", "--partition", "0", "--offset", "earliest"])
                .unwrap()
                .offset,
            Some(OffsetSpec::Earliest)
        );
        assert!(
            parse(&["t", "--offset", "5"]).is_err(),
            "--offset needs --partition"
        );
        assert!(parse(&["t", "--partition", "0", "--offset", "-3"]).is_err());
        assert!(parse(&["t", "--from-beginning", "--partition", "0", "--offset", "1"]).is_err());
        assert!(parse(&["t", "--from-beginning"]).unwrap().from_beginning);
    }

    #[test]
    fn records_print_as_value_or_key_sep_value() {
        let record = ConsumedRecord {
            offset: 0,
            timestamp: 0,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"v")),
        };
        let keyless = ConsumedRecord {
            key: None,
            value: None,
            ..record.clone()
        };
        let mut args = parse(&["t"]).unwrap();
        let mut out = Vec::new();
        print_record(&mut out, &record, &args).unwrap();
        assert_eq!(out, b"v\n");

        args.print_key = true;
        args.key_separator = "::".into();
        let mut out = Vec::new();
        print_record(&mut out, &record, &args).unwrap();
        print_record(&mut out, &keyless, &args).unwrap();
        assert_eq!(out, b"k::v\nnull::null\n");
    }
}
