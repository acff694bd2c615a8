//! The consumer side of the benchmarks: one thread per connection, each
//! reading its share of the partitions with long-polling Fetch requests and
//! decoding every record, as a real consumer does. A thread whose partitions
//! have several leaders (shard-aware shoal, a cluster) keeps one Fetch in
//! flight to each and sends a leader its next Fetch as soon as it answers,
//! as Kafka's consumer and librdkafka do: a leader whose partitions have
//! nothing new long-polls (`fetch.max.wait.ms`) without holding up the
//! others.
//!
//! Invariant: no record is counted twice and the total never exceeds the
//! target: each thread claims its records from the shared count. A thread
//! waits on one leader while another's answer is ready only for the
//! [`ERROR_BACKOFF`] after a partition error.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use kafka_protocol::messages::{ApiKey, FetchRequest};

use super::meter::{micros, Meter, Progress};
use super::{
    join_all, offsets, prepare_topic, spread, unstamp, BenchArgs, Outcome, TopicLayout,
    EARLIEST_TIMESTAMP,
};
use crate::client::{check, error_name, fetch_request, Connection};
use crate::protocol::records::decode_records;

/// Longest a Fetch waits on the broker for data (`fetch.max.wait.ms`).
const FETCH_MAX_WAIT_MS: i32 = 500;
/// Most bytes per Fetch response (`fetch.max.bytes`, Kafka's default).
const FETCH_MAX_BYTES: i32 = 50 << 20;
/// Most bytes per partition per Fetch (`max.partition.fetch.bytes`).
const PARTITION_FETCH_MAX_BYTES: i32 = 1 << 20;
/// A consumer thread that has received nothing for this long gives up.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a partition error before asking again, so a persistent error
/// is counted at a bounded rate instead of in a busy loop.
const ERROR_BACKOFF: Duration = Duration::from_millis(100);
/// Longest a thread waits for any of its leaders to answer before it looks
/// again at the shared count, its deadline and [`IDLE_TIMEOUT`]: another
/// thread may reach the target while this one's Fetches long-poll.
const ANSWER_WAIT_MS: i32 = 100;

/// `shoal bench consume`.
pub fn run(args: &BenchArgs) -> anyhow::Result<Outcome> {
    let layout = prepare_topic(args, false)?;
    let starts = offsets(args, &layout, EARLIEST_TIMESTAMP)?;
    let meter = Meter::new()?;
    let target = Arc::new(AtomicU64::new(args.records.unwrap_or(u64::MAX)));
    let progress = Progress::start("consume", meter.clone());
    let start = Instant::now();
    let deadline = args.deadline(start);
    let workers = spawn(
        args,
        &layout,
        &starts,
        Timing::Fetch,
        &target,
        deadline,
        &meter,
    );
    let mut failure = join_all(workers);
    let elapsed = start.elapsed();
    drop(progress);
    if failure.is_none() {
        if let Some(wanted) = args.records.filter(|&n| meter.records() < n) {
            failure = Some(anyhow::anyhow!(
                "only {} of {wanted} records arrived; nothing new for {} s",
                meter.records(),
                IDLE_TIMEOUT.as_secs()
            ));
        }
    }
    Ok(Outcome {
        report: meter.report("consume", &layout.name, elapsed),
        failure,
    })
}

/// What the latency histogram holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timing {
    /// The round trip of each Fetch that returned records.
    Fetch,
    /// Each record's arrival minus the instant stamped in its value.
    Stamped,
}

/// Starts one consumer thread per connection (at most one per partition),
/// reading from `starts` until `target` records were counted in `meter`,
/// `deadline`, or [`IDLE_TIMEOUT`] without a record.
pub(super) fn spawn(
    args: &BenchArgs,
    layout: &TopicLayout,
    starts: &HashMap<i32, i64>,
    timing: Timing,
    target: &Arc<AtomicU64>,
    deadline: Option<Instant>,
    meter: &Arc<Meter>,
) -> Vec<JoinHandle<anyhow::Result<()>>> {
    let positions: Vec<Position> = layout
        .partitions
        .iter()
        .map(|p| Position {
            partition: p.partition,
            leader: p.leader.clone(),
            next_offset: starts.get(&p.partition).copied().unwrap_or(0),
        })
        .collect();
    let connections = args.connections.min(positions.len());
    spread(&positions, connections)
        .into_iter()
        .map(|positions| {
            let reader = Reader {
                topic: layout.name.clone(),
                topic_id: layout.id,
                timing,
                deadline,
                target: target.clone(),
                meter: meter.clone(),
            };
            thread::spawn(move || {
                let result = reader.read(positions);
                if result.is_err() {
                    reader.meter.stop();
                }
                result
            })
        })
        .collect()
}

/// A partition being read and the offset of the next record to count.
#[derive(Debug, Clone)]
struct Position {
    partition: i32,
    leader: String,
    next_offset: i64,
}

/// A Fetch sent and not yet answered.
#[derive(Debug, Clone, Copy)]
struct SentFetch {
    version: i16,
    correlation_id: i32,
    sent_at: Instant,
}

/// A leader of some of a thread's partitions, with the Fetch in flight to it.
struct Leader {
    connection: Connection,
    positions: Vec<Position>,
    fetch: SentFetch,
}

/// The indexes of the `leaders` whose answers have begun to arrive, after
/// waiting up to `timeout_ms` for one; none when the wait ran out.
fn answering(leaders: &[Leader], timeout_ms: i32) -> anyhow::Result<Vec<usize>> {
    let buffered: Vec<usize> = (0..leaders.len())
        .filter(|&i| leaders[i].connection.has_buffered_input())
        .collect();
    if !buffered.is_empty() {
        return Ok(buffered);
    }
    let mut fds: Vec<libc::pollfd> = leaders
        .iter()
        .map(|leader| libc::pollfd {
            fd: leader.connection.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let count = libc::nfds_t::try_from(fds.len()).context("too many leaders to poll")?;
    // SAFETY: `fds` is an exclusively borrowed array of `count` pollfds, and
    // every fd in it stays open while `leaders` is borrowed.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), count, timeout_ms) };
    if ready < 0 {
        let error = io::Error::last_os_error();
        if error.kind() == io::ErrorKind::Interrupted {
            return Ok(Vec::new());
        }
        return Err(error).context("waiting for the leaders' answers");
    }
    // A hung-up or failed socket counts as answering: reading it reports
    // the broker gone.
    Ok((0..fds.len()).filter(|&i| fds[i].revents != 0).collect())
}

/// One consumer thread.
struct Reader {
    topic: String,
    topic_id: uuid::Uuid,
    timing: Timing,
    deadline: Option<Instant>,
    target: Arc<AtomicU64>,
    meter: Arc<Meter>,
}

impl Reader {
    fn done(&self) -> bool {
        self.meter.stopped()
            || self.meter.records() >= self.target.load(Ordering::Relaxed)
            || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn read(&self, positions: Vec<Position>) -> anyhow::Result<()> {
        let mut leaders = self.connect(positions)?;
        let mut last_record = Instant::now();
        while !self.done() {
            if last_record.elapsed() >= IDLE_TIMEOUT {
                return Ok(());
            }
            for index in answering(&leaders, ANSWER_WAIT_MS)? {
                let leader = &mut leaders[index];
                let counted = self.receive_fetch(
                    &mut leader.connection,
                    &mut leader.positions,
                    leader.fetch,
                )?;
                if counted > 0 {
                    last_record = Instant::now();
                }
                if self.done() {
                    return Ok(());
                }
                leader.fetch = self.send_fetch(&mut leader.connection, &leader.positions)?;
            }
        }
        Ok(())
    }

    /// One connection per leader of `positions`, each with its first Fetch
    /// sent.
    fn connect(&self, positions: Vec<Position>) -> anyhow::Result<Vec<Leader>> {
        let mut by_leader: BTreeMap<String, Vec<Position>> = BTreeMap::new();
        for position in positions {
            by_leader
                .entry(position.leader.clone())
                .or_default()
                .push(position);
        }
        by_leader
            .into_iter()
            .map(|(addr, positions)| {
                let mut connection = Connection::connect(&addr)?;
                let fetch = self.send_fetch(&mut connection, &positions)?;
                Ok(Leader {
                    connection,
                    positions,
                    fetch,
                })
            })
            .collect()
    }

    /// Sends one Fetch of `positions` to their leader.
    fn send_fetch(
        &self,
        connection: &mut Connection,
        positions: &[Position],
    ) -> anyhow::Result<SentFetch> {
        let wait_ms = match self.deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                i32::try_from(left.as_millis())
                    .map_or(FETCH_MAX_WAIT_MS, |ms| ms.min(FETCH_MAX_WAIT_MS))
            }
            None => FETCH_MAX_WAIT_MS,
        };
        let request = fetch_request(
            &self.topic,
            self.topic_id,
            positions.iter().map(|p| (p.partition, p.next_offset)),
            wait_ms,
            FETCH_MAX_BYTES,
            PARTITION_FETCH_MAX_BYTES,
        );
        let version = connection.topic_version(ApiKey::Fetch, self.topic_id)?;
        let sent_at = Instant::now();
        let correlation_id = connection
            .send_only(&request, version)
            .context("the broker went away")?;
        Ok(SentFetch {
            version,
            correlation_id,
            sent_at,
        })
    }

    /// Reads the answer to `fetch` and counts its records; returns how many
    /// it counted.
    fn receive_fetch(
        &self,
        connection: &mut Connection,
        positions: &mut [Position],
        fetch: SentFetch,
    ) -> anyhow::Result<u64> {
        let SentFetch {
            version,
            correlation_id,
            sent_at,
        } = fetch;
        let response = connection
            .receive::<FetchRequest>(version, correlation_id)
            .context("the broker went away")?;
        let fetched_at = Instant::now();
        check(response.error_code, None, "fetch")?;

        let mut counted = 0;
        let mut backoff = false;
        for data in response.responses.iter().flat_map(|t| &t.partitions) {
            let Some(position) = positions
                .iter_mut()
                .find(|p| p.partition == data.partition_index)
            else {
                continue;
            };
            if data.error_code != 0 {
                self.meter.error(error_name(data.error_code), 1);
                backoff = true;
                continue;
            }
            let Some(set) = &data.records else {
                continue;
            };
            let fetched = decode_records(set, position.next_offset)
                .with_context(|| format!("{}-{}", self.topic, position.partition))?;
            if let Some(next) = fetched.next_offset {
                if next < position.next_offset {
                    bail!(
                        "{}-{}: the broker went back from offset {} to {next}",
                        self.topic,
                        position.partition,
                        position.next_offset
                    );
                }
                position.next_offset = next;
            }
            let claimed = self.meter.claim(
                fetched.records.len() as u64,
                self.target.load(Ordering::Relaxed),
            );
            let records = &fetched.records[..claimed as usize];
            let bytes = records
                .iter()
                .map(|r| r.value.as_ref().map_or(0, |v| v.len() as u64))
                .sum();
            self.meter.add_bytes(bytes);
            counted += claimed;
            if self.timing == Timing::Stamped {
                let mut latencies = self.meter.latencies();
                for record in records {
                    if let Some(due) = record.value.as_deref().and_then(unstamp) {
                        let latency = fetched_at.saturating_duration_since(due);
                        // In range by `micros`; recording cannot fail.
                        let _ = latencies.record(micros(latency));
                    }
                }
            }
        }
        if self.timing == Timing::Fetch && counted > 0 {
            let _ = self.meter.latencies().record(micros(fetched_at - sent_at));
        }
        if backoff {
            thread::sleep(ERROR_BACKOFF);
        }
        Ok(counted)
    }
}
