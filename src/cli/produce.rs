//! `shoal produce`: one record per stdin line, like kafka-console-producer.
//!
//! A reader thread feeds lines through a bounded channel; the main thread
//! takes whatever has arrived (up to [`BATCH_RECORDS_MAX`] records or
//! [`BATCH_BYTES_MAX`] bytes), so a pipe is sent in large batches and an
//! interactive terminal line by line. Each round becomes one RecordBatch v2
//! per partition and one Produce request per leader.
//!
//! Invariant: a round is acknowledged (per `--acks`) before the next one is
//! sent, so an error names the round that failed and nothing after it was
//! sent.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, BrokerId, ProduceRequest};
use kafka_protocol::records::Compression;

use super::BootstrapArg;
use crate::client::partitioner::{partition_for_key, StickyPartitioner};
use crate::client::{check, topic_name, Cluster, KafkaError, UNKNOWN_TOPIC_OR_PARTITION};
use crate::clock::now_ms;
use crate::protocol::records::{encode_batch, ProducerRecord};

/// Most records sent in one round.
pub const BATCH_RECORDS_MAX: usize = 10_000;
/// Most key and value bytes sent in one round; Kafka's default
/// `max.request.size` is 1 MiB, and record overhead must fit beside this.
pub const BATCH_BYTES_MAX: usize = 512 << 10;
/// Lines the reader thread may run ahead of the sender.
const STDIN_QUEUE_LINES_MAX: usize = 2 * BATCH_RECORDS_MAX;
/// How long the broker may take to make a round durable.
const PRODUCE_TIMEOUT_MS: i32 = 30_000;

/// `--compression` values, as Kafka names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompressionArg {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl From<CompressionArg> for Compression {
    fn from(arg: CompressionArg) -> Compression {
        match arg {
            CompressionArg::None => Compression::None,
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Snappy => Compression::Snappy,
            CompressionArg::Lz4 => Compression::Lz4,
            CompressionArg::Zstd => Compression::Zstd,
        }
    }
}

/// `shoal produce TOPIC ...`
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ProduceArgs {
    /// The topic to write to.
    pub topic: String,
    #[command(flatten)]
    pub bootstrap: BootstrapArg,
    /// Read each line as KEY SEP VALUE, split at the first SEP.
    #[arg(long, value_name = "SEP")]
    pub key_separator: Option<String>,
    /// Write every record to this partition instead of partitioning by key.
    #[arg(long)]
    pub partition: Option<i32>,
    /// Acknowledgements to wait for: -1 (all in-sync replicas), 1 (leader), 0 (none).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i16).range(-1..=1))]
    pub acks: i16,
    /// Compression codec of the batches.
    #[arg(long, value_enum, default_value_t = CompressionArg::None)]
    pub compression: CompressionArg,
}

/// Reads stdin to EOF and produces every line to `args.topic`.
pub fn run_produce(args: ProduceArgs) -> anyhow::Result<()> {
    let mut cluster = Cluster::connect(&args.bootstrap.bootstrap, &[&args.topic])?;
    let topic = cluster.topic(&args.topic)?;
    let topic_id = topic.topic_id;
    let partition_count = i32::try_from(topic.partitions.len()).context("partition count")?;
    if partition_count == 0 {
        bail!(KafkaError {
            code: UNKNOWN_TOPIC_OR_PARTITION,
            message: format!("topic {} has no partitions", args.topic),
        });
    }
    if let Some(p) = args.partition {
        if !(0..partition_count).contains(&p) {
            bail!(KafkaError {
                code: UNKNOWN_TOPIC_OR_PARTITION,
                message: format!("{}-{p}: topic has {partition_count} partitions", args.topic),
            });
        }
    }

    let lines = spawn_stdin_reader();
    let mut router = Router {
        fixed_partition: args.partition,
        partition_count,
        sticky: StickyPartitioner::new(std::process::id()),
    };
    let mut line_number = 0usize;
    while let Some(round) = next_round(&lines)? {
        let mut records = Vec::with_capacity(round.len());
        for line in round {
            line_number += 1;
            records.push(parse_line(
                line,
                args.key_separator.as_deref(),
                line_number,
            )?);
        }
        let by_partition = router.assign(records);
        send_round(&mut cluster, &args, topic_id, by_partition)?;
    }
    Ok(())
}

/// Starts the thread that reads stdin line by line, without line endings.
/// The channel closes at EOF; a read error is sent as the last item.
fn spawn_stdin_reader() -> Receiver<std::io::Result<Vec<u8>>> {
    let (sender, receiver) = mpsc::sync_channel(STDIN_QUEUE_LINES_MAX);
    thread::spawn(move || read_lines(std::io::stdin().lock(), &sender));
    receiver
}

fn read_lines(mut input: impl BufRead, sender: &SyncSender<std::io::Result<Vec<u8>>>) {
    loop {
        let mut line = Vec::new();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                if sender.send(Ok(line)).is_err() {
                    return;
                }
            }
            Err(error) => {
                // The receiver may be gone already; nothing is left to tell.
                let _ = sender.send(Err(error));
                return;
            }
        }
    }
}

/// Waits for at least one line, then takes what is already queued, up to the
/// round limits. `None` at EOF.
fn next_round(lines: &Receiver<std::io::Result<Vec<u8>>>) -> anyhow::Result<Option<Vec<Vec<u8>>>> {
    let Ok(first) = lines.recv() else {
        return Ok(None);
    };
    let first = first.context("reading stdin")?;
    let mut bytes = first.len();
    let mut round = vec![first];
    while round.len() < BATCH_RECORDS_MAX && bytes < BATCH_BYTES_MAX {
        match lines.try_recv() {
            Ok(line) => {
                let line = line.context("reading stdin")?;
                bytes += line.len();
                round.push(line);
            }
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
        }
    }
    Ok(Some(round))
}

/// One stdin line as a record: the whole line as the value, or with a
/// separator, the key before its first occurrence and the value after.
fn parse_line(
    line: Vec<u8>,
    separator: Option<&str>,
    line_number: usize,
) -> anyhow::Result<ProducerRecord> {
    let line = Bytes::from(line);
    let Some(separator) = separator else {
        return Ok(ProducerRecord {
            key: None,
            value: Some(line),
        });
    };
    let at = find(&line, separator.as_bytes())
        .ok_or_else(|| anyhow!("no key separator {separator:?} found on line {line_number}"))?;
    Ok(ProducerRecord {
        key: Some(line.slice(..at)),
        value: Some(line.slice(at + separator.len()..)),
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Decides the partition of each record.
struct Router {
    fixed_partition: Option<i32>,
    partition_count: i32,
    sticky: StickyPartitioner,
}

impl Router {
    /// Groups one round's records by partition, keeping their order. Keyed
    /// records go where Kafka's default partitioner would put them; keyless
    /// ones all go to this round's sticky partition.
    fn assign(&mut self, records: Vec<ProducerRecord>) -> BTreeMap<i32, Vec<ProducerRecord>> {
        let sticky = match self.fixed_partition {
            Some(partition) => partition,
            None => self.sticky.next_batch(self.partition_count),
        };
        let mut by_partition: BTreeMap<i32, Vec<ProducerRecord>> = BTreeMap::new();
        for record in records {
            let partition = match (self.fixed_partition, &record.key) {
                (Some(partition), _) => partition,
                (None, Some(key)) => partition_for_key(key, self.partition_count),
                (None, None) => sticky,
            };
            by_partition.entry(partition).or_default().push(record);
        }
        by_partition
    }
}

/// Sends one round: a batch per partition, a request per leader.
fn send_round(
    cluster: &mut Cluster,
    args: &ProduceArgs,
    topic_id: uuid::Uuid,
    by_partition: BTreeMap<i32, Vec<ProducerRecord>>,
) -> anyhow::Result<()> {
    let compression = Compression::from(args.compression);
    let timestamp_ms = now_ms() as i64;
    let mut by_leader: HashMap<BrokerId, Vec<PartitionProduceData>> = HashMap::new();
    for (partition, records) in by_partition {
        let batch = encode_batch(&records, compression, timestamp_ms)?;
        by_leader
            .entry(cluster.leader(&args.topic, partition)?)
            .or_default()
            .push(
                PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch)),
            );
    }
    for (leader, partitions) in by_leader {
        let mut sent: Vec<i32> = partitions.iter().map(|p| p.index).collect();
        let request = ProduceRequest::default()
            .with_acks(args.acks)
            .with_timeout_ms(PRODUCE_TIMEOUT_MS)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(&args.topic))
                .with_topic_id(topic_id)
                .with_partition_data(partitions)]);
        let conn = cluster.broker(leader)?;
        let version = conn.topic_version(ApiKey::Produce, topic_id)?;
        if args.acks == 0 {
            conn.send_no_response(request, version)?;
            continue;
        }
        let response = conn.send_version(request, version)?;
        for partition in response
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
        {
            check(
                partition.error_code,
                partition.error_message.as_deref(),
                &format!("{}-{}", args.topic, partition.index),
            )?;
            sent.retain(|&p| p != partition.index);
        }
        if let Some(missing) = sent.first() {
            bail!(
                "Produce response has no answer for {}-{missing}",
                args.topic
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn key_value(record: &ProducerRecord) -> (Option<&[u8]>, Option<&[u8]>) {
        (record.key.as_deref(), record.value.as_deref())
    }

    #[test]
    fn lines_split_at_the_first_separator() {
        let record = parse_line(b"k1:v:1".to_vec(), Some(":"), 1).unwrap();
        assert_eq!(key_value(&record), (Some(&b"k1"[..]), Some(&b"v:1"[..])));

        let record = parse_line(b"k||v".to_vec(), Some("||"), 1).unwrap();
        assert_eq!(key_value(&record), (Some(&b"k"[..]), Some(&b"v"[..])));

        let record = parse_line(b":v".to_vec(), Some(":"), 1).unwrap();
        assert_eq!(key_value(&record), (Some(&b""[..]), Some(&b"v"[..])));

        let record = parse_line(b"no sep here".to_vec(), None, 1).unwrap();
        assert_eq!(key_value(&record), (None, Some(&b"no sep here"[..])));

        let err = parse_line(b"nosep".to_vec(), Some(":"), 7).unwrap_err();
        assert!(err.to_string().contains("line 7"), "{err}");
    }

    #[test]
    fn reader_strips_line_endings_and_keeps_empty_lines() {
        let (sender, receiver) = mpsc::sync_channel(16);
        read_lines(&b"a\r\nb\n\nlast"[..], &sender);
        drop(sender);
        let lines: Vec<Vec<u8>> = receiver.iter().map(|l| l.unwrap()).collect();
        assert_eq!(lines, [&b"a"[..], b"b", b"", b"last"]);
    }

    #[test]
    fn rounds_take_what_is_queued_up_to_the_limit() {
        let (sender, receiver) = mpsc::sync_channel(STDIN_QUEUE_LINES_MAX);
        for i in 0..BATCH_RECORDS_MAX + 5 {
            sender.send(Ok(i.to_string().into_bytes())).unwrap();
        }
        drop(sender);
        assert_eq!(
            next_round(&receiver).unwrap().unwrap().len(),
            BATCH_RECORDS_MAX
        );
        assert_eq!(next_round(&receiver).unwrap().unwrap().len(), 5);
        assert!(next_round(&receiver).unwrap().is_none());

        let (sender, receiver) = mpsc::sync_channel(STDIN_QUEUE_LINES_MAX);
        let big = vec![b'x'; BATCH_BYTES_MAX / 2];
        for _ in 0..3 {
            sender.send(Ok(big.clone())).unwrap();
        }
        drop(sender);
        assert_eq!(next_round(&receiver).unwrap().unwrap().len(), 2);
        assert_eq!(next_round(&receiver).unwrap().unwrap().len(), 1);
    }

    fn keyed(key: &'static str) -> ProducerRecord {
        ProducerRecord {
            key: Some(Bytes::from_static(key.as_bytes())),
            value: None,
        }
    }

    fn keyless() -> ProducerRecord {
        ProducerRecord {
            key: None,
            value: None,
        }
    }

    #[test]
    fn router_hashes_keys_sticks_keyless_and_honours_fixed_partition() {
        let mut router = Router {
            fixed_partition: None,
            partition_count: 4,
            sticky: StickyPartitioner::new(0),
        };
        let assigned = router.assign(vec![keyed("foobar"), keyless(), keyless(), keyed("21")]);
        let foobar = partition_for_key(b"foobar", 4);
        let twenty_one = partition_for_key(b"21", 4);
        assert!(assigned[&foobar].contains(&keyed("foobar")));
        assert!(assigned[&twenty_one].contains(&keyed("21")));
        let keyless_count = assigned[&0].iter().filter(|r| r.key.is_none()).count();
        assert_eq!(keyless_count, 2);
        let next = router.assign(vec![keyless()]);
        assert_eq!(next.keys().copied().collect::<Vec<_>>(), [1]);

        let mut fixed = Router {
            fixed_partition: Some(2),
            partition_count: 4,
            sticky: StickyPartitioner::new(0),
        };
        let assigned = fixed.assign(vec![keyed("foobar"), keyless()]);
        assert_eq!(assigned.keys().copied().collect::<Vec<_>>(), [2]);
        assert_eq!(assigned[&2].len(), 2);
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ProduceArgs,
    }

    #[test]
    fn options_parse_like_the_console_producer() {
        let args = Cli::try_parse_from([
            "produce",
            "t",
            "--acks",
            "-1",
            "--compression",
            "zstd",
            "--key-separator",
            ":",
            "--partition",
            "2",
        ])
        .unwrap()
        .args;
        assert_eq!(args.acks, -1);
        assert_eq!(args.compression, CompressionArg::Zstd);
        assert_eq!(args.key_separator.as_deref(), Some(":"));
        assert_eq!(args.partition, Some(2));
        assert_eq!(args.bootstrap.bootstrap, "127.0.0.1:9092");

        let defaults = Cli::try_parse_from(["produce", "t"]).unwrap().args;
        assert_eq!(defaults.acks, -1);
        assert_eq!(defaults.compression, CompressionArg::None);
        assert!(Cli::try_parse_from(["produce", "t", "--acks", "2"]).is_err());
        assert!(Cli::try_parse_from(["produce", "t", "--compression", "brotli"]).is_err());
    }
}
