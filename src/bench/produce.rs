//! The producer side of the benchmarks: one thread per connection that
//! builds batches and pipelines Produce requests, and per leader a thread
//! that reads their acknowledgements in order.
//!
//! A lane's writer fills one batch per partition it owns, "sticky" like
//! Kafka's producer: records go to one partition until its batch is full,
//! then to the next. A batch is sent when it is full, when `--linger-ms` has
//! passed since it was opened, or at once with `--linger-ms 0`. Up to
//! [`IN_FLIGHT_MAX`] requests per connection await their answers (Kafka's
//! `max.in.flight.requests.per.connection`); while the writer waits for one
//! to be answered, due records pile up and go out together in the next
//! request, as they do in Kafka's accumulator. A thread whose partitions have
//! several leaders (shard-aware shoal, a cluster) has one connection per
//! leader and waits only when none of them can take a request.
//!
//! Invariant: every record generated is counted exactly once, as acknowledged
//! (with its latency) or as lost to a named broker error; with `--acks 0` it
//! counts as sent once written to the socket.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, ProduceRequest, ProduceResponse, ProducerId,
};
use kafka_protocol::records::Compression;

use super::batch::{BatchBuilder, ProducerStamp};
use super::meter::{micros, Meter, Progress};
use super::{
    join_all, payload, prepare_topic, share, spread, stamp, BenchArgs, Outcome, Pacing,
    PartitionLeader, TopicLayout,
};
use crate::client::coordinator::{
    COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR,
};
use crate::client::{error_name, topic_name, Connection, RequestSender, ResponseReceiver};
use crate::clock::now_ms;
use crate::protocol::batch::increment_sequence;

/// Produce requests awaiting an answer per connection, as Kafka allows.
pub const IN_FLIGHT_MAX: usize = 5;
/// How long the broker may take to make a request durable.
const PRODUCE_TIMEOUT_MS: i32 = 30_000;
/// What a batch that the broker's response did not mention is counted as.
const MISSING_ANSWER: &str = "NO_ANSWER_FOR_PARTITION";

/// `shoal bench produce`.
pub fn run(args: &BenchArgs) -> anyhow::Result<Outcome> {
    let layout = prepare_topic(args, true)?;
    let meter = Meter::new()?;
    let progress = Progress::start("produce", meter.clone());
    let start = Instant::now();
    let workers = spawn(args, &layout, false, start, &meter);
    let failure = join_all(workers);
    let elapsed = start.elapsed();
    drop(progress);
    Ok(Outcome {
        report: meter.report("produce", &layout.name, elapsed),
        failure,
    })
}

/// Starts one producer thread per connection, writing `--records` (or until
/// the deadline) from `start`. With `stamped`, each value starts with the
/// instant the record was due (for e2e).
pub(super) fn spawn(
    args: &BenchArgs,
    layout: &TopicLayout,
    stamped: bool,
    start: Instant,
    meter: &Arc<Meter>,
) -> Vec<JoinHandle<anyhow::Result<()>>> {
    let shared = Arc::new(Shared {
        topic: layout.name.clone(),
        topic_id: layout.id,
        acks: args.acks,
        compression: Compression::from(args.compression),
        batch_bytes: args.batch_bytes,
        linger: Duration::from_millis(args.linger_ms),
        payload: payload(args.record_size),
        keys: args.keys,
        stamped,
        idempotent: args.idempotent,
    });
    let connections = args.connections;
    spread(&layout.partitions, connections)
        .into_iter()
        .enumerate()
        .map(|(lane, partitions)| {
            let plan = Plan {
                partitions,
                records: args.records.map(|n| share(n, connections, lane)),
                deadline: args.deadline(start),
                pacing: args
                    .rate
                    .map(|rate| Pacing::new(start, rate / connections as f64)),
                start,
            };
            let shared = shared.clone();
            let meter = meter.clone();
            thread::spawn(move || {
                let result = produce(&shared, plan, &meter);
                if result.is_err() {
                    meter.stop();
                }
                result
            })
        })
        .collect()
}

/// What every producer thread of a run shares.
struct Shared {
    topic: String,
    topic_id: uuid::Uuid,
    acks: i16,
    compression: Compression,
    batch_bytes: usize,
    linger: Duration,
    payload: Vec<u8>,
    /// `--keys`: record `n` gets key `n % keys` as a u64 BE.
    keys: Option<u64>,
    stamped: bool,
    /// `--idempotent`: each thread is one idempotent producer.
    idempotent: bool,
}

/// Bytes of a `--keys` key: a u64, big-endian.
const KEY_BYTES: usize = 8;

/// One producer thread's share of the work.
struct Plan {
    partitions: Vec<PartitionLeader>,
    records: Option<u64>,
    deadline: Option<Instant>,
    pacing: Option<Pacing>,
    start: Instant,
}

impl Plan {
    /// Whether record `seq` is past the end of the run at `now`.
    fn exhausted(&self, seq: u64, now: Instant) -> bool {
        self.records.is_some_and(|n| seq >= n) || self.deadline.is_some_and(|d| now >= d)
    }
}

/// A partition's batch being filled.
struct Open {
    partition: i32,
    /// Index into the thread's lanes (one per leader).
    lane: usize,
    builder: BatchBuilder,
    /// Sequence number (within this thread) of the batch's first record; a
    /// batch holds consecutive records.
    first_seq: u64,
    opened_at: Instant,
    /// With `--idempotent`: the producer sequence of the next batch's first
    /// record in this partition.
    next_sequence: i32,
}

/// A connection to one leader: the sending half, the slots that bound the
/// requests in flight, and the thread reading the answers.
struct Lane {
    sender: RequestSender,
    version: i16,
    slots: SyncSender<()>,
    in_flight: Sender<InFlight>,
    reader: Option<JoinHandle<anyhow::Result<()>>>,
}

/// A sent request whose answer is awaited.
struct InFlight {
    correlation_id: i32,
    sent_at: Instant,
    batches: Vec<SentBatch>,
}

#[derive(Debug, Clone, Copy)]
struct SentBatch {
    partition: i32,
    first_seq: u64,
    records: u64,
}

fn produce(shared: &Shared, plan: Plan, meter: &Arc<Meter>) -> anyhow::Result<()> {
    let mut lanes = Vec::new();
    let mut lane_of_leader: HashMap<&str, usize> = HashMap::new();
    let mut producer = None;
    let mut open = Vec::with_capacity(plan.partitions.len());
    for p in &plan.partitions {
        let lane = match lane_of_leader.get(p.leader.as_str()) {
            Some(&lane) => lane,
            None => {
                lanes.push(open_lane(
                    shared,
                    &p.leader,
                    plan.pacing,
                    meter,
                    &mut producer,
                )?);
                lane_of_leader.insert(&p.leader, lanes.len() - 1);
                lanes.len() - 1
            }
        };
        open.push(Open {
            partition: p.partition,
            lane,
            builder: BatchBuilder::new(shared.compression),
            first_seq: 0,
            opened_at: plan.start,
            next_sequence: 0,
        });
    }
    let result = write_loop(shared, &plan, producer, &mut lanes, &mut open, meter);
    let mut failure = result.err();
    for mut lane in lanes {
        let reader = lane.reader.take();
        // Closing the queue lets the reader finish the answers still due.
        drop(lane);
        if let Some(reader) = reader {
            let result = reader
                .join()
                .unwrap_or_else(|_| Err(anyhow!("an acknowledgement reader panicked")));
            if let Err(error) = result {
                // The reader saw the broker's side of it; prefer its error.
                failure = Some(error);
            }
        }
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Connects a lane to `leader` and starts its acknowledgement reader. With
/// `--idempotent`, the thread's first lane also gets its producer id.
fn open_lane(
    shared: &Shared,
    leader: &str,
    pacing: Option<Pacing>,
    meter: &Arc<Meter>,
    producer: &mut Option<(i64, i16)>,
) -> anyhow::Result<Lane> {
    let mut connection = Connection::connect(leader)?;
    if shared.idempotent && producer.is_none() {
        *producer = Some(init_producer_id(&mut connection)?);
    }
    let version = connection.topic_version(ApiKey::Produce, shared.topic_id)?;
    let (sender, receiver) = connection.into_pipeline();
    let (slots, slots_back) = mpsc::sync_channel(IN_FLIGHT_MAX);
    let (in_flight, in_flight_rx) = mpsc::channel();
    let reader = (shared.acks != 0).then(|| {
        let ack = Acks {
            receiver,
            version,
            pacing,
            record_bytes: shared.payload.len() as u64,
            meter: meter.clone(),
        };
        thread::spawn(move || ack.read(&in_flight_rx, &slots_back))
    });
    Ok(Lane {
        sender,
        version,
        slots,
        in_flight,
        reader,
    })
}

/// InitProducerId attempts while the broker answers "ask again" (a Kafka
/// just started loads its coordinators first): with the backoff, about ten
/// seconds, as the group calls of `client::coordinator` allow.
const INIT_PRODUCER_ID_ATTEMPTS_MAX: u32 = 40;
const INIT_PRODUCER_ID_BACKOFF: Duration = Duration::from_millis(250);

/// A producer id and epoch for an idempotent producer (no transactional id).
fn init_producer_id(connection: &mut Connection) -> anyhow::Result<(i64, i16)> {
    let mut attempt = 1;
    loop {
        let response = connection.send(
            InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(-1)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )?;
        match response.error_code {
            0 => return Ok((response.producer_id.0, response.producer_epoch)),
            COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR
                if attempt < INIT_PRODUCER_ID_ATTEMPTS_MAX =>
            {
                attempt += 1;
                thread::sleep(INIT_PRODUCER_ID_BACKOFF);
            }
            code => return Err(anyhow!("InitProducerId failed: {}", error_name(code))),
        }
    }
}

/// Generates records into the open batches and sends them until the plan is
/// done, the run is stopped, or a connection fails.
fn write_loop(
    shared: &Shared,
    plan: &Plan,
    producer: Option<(i64, i16)>,
    lanes: &mut [Lane],
    open: &mut [Open],
    meter: &Meter,
) -> anyhow::Result<()> {
    let key_bytes = if shared.keys.is_some() { KEY_BYTES } else { 0 };
    let payload_bytes = key_bytes + shared.payload.len();
    let mut seq = 0u64;
    let mut sticky = 0usize;
    while !meter.stopped() {
        let now = Instant::now();
        let timestamp_ms = now_ms() as i64;
        // Move every record due by now into a batch, until all are full.
        'gather: while !plan.exhausted(seq, now) {
            let due = plan.pacing.map(|pacing| pacing.due(seq));
            if due.is_some_and(|due| due > now) {
                break;
            }
            if open[sticky]
                .builder
                .is_full(payload_bytes, shared.batch_bytes)
            {
                let next = (1..open.len())
                    .map(|k| (sticky + k) % open.len())
                    .find(|&i| !open[i].builder.is_full(payload_bytes, shared.batch_bytes));
                match next {
                    Some(next) => sticky = next,
                    None => break 'gather,
                }
            }
            let batch = &mut open[sticky];
            if batch.builder.is_empty() {
                batch.first_seq = seq;
                batch.opened_at = now;
            }
            let stamp = shared.stamped.then(|| stamp(due.unwrap_or(now)));
            let key = shared.keys.map(|keys| (seq % keys).to_be_bytes());
            batch.builder.push(
                key.as_ref().map(|k| &k[..]),
                &shared.payload,
                stamp.as_ref().map(|s| &s[..]),
                timestamp_ms,
            );
            seq += 1;
        }

        let exhausted = plan.exhausted(seq, now);
        let ready: Vec<usize> = (0..open.len())
            .filter(|&i| {
                let batch = &open[i];
                !batch.builder.is_empty()
                    && (exhausted
                        || batch.builder.is_full(payload_bytes, shared.batch_bytes)
                        || now >= batch.opened_at + shared.linger)
            })
            .collect();
        if ready.is_empty() {
            if exhausted {
                return Ok(());
            }
            let mut wake = open
                .iter()
                .filter(|batch| !batch.builder.is_empty())
                .map(|batch| batch.opened_at + shared.linger)
                .min();
            if let Some(pacing) = plan.pacing {
                wake = Some(wake.map_or(pacing.due(seq), |w| w.min(pacing.due(seq))));
            }
            if let Some(deadline) = plan.deadline {
                wake = Some(wake.map_or(deadline, |w| w.min(deadline)));
            }
            if let Some(wake) = wake {
                thread::sleep(wake.saturating_duration_since(Instant::now()));
            }
            continue;
        }
        send_ready(shared, producer, lanes, open, &ready, meter)?;
    }
    Ok(())
}

/// Sends the `ready` batches, one request per lane. A lane with
/// [`IN_FLIGHT_MAX`] requests unanswered is passed over while another lane
/// can send (its batches stay open and keep filling), as Kafka's sender skips
/// a broker that is not ready; only when no lane could send does the writer
/// wait, on the first full one.
fn send_ready(
    shared: &Shared,
    producer: Option<(i64, i16)>,
    lanes: &mut [Lane],
    open: &mut [Open],
    ready: &[usize],
    meter: &Meter,
) -> anyhow::Result<()> {
    let mut sent = false;
    let mut full = None;
    for (lane_index, lane) in lanes.iter_mut().enumerate() {
        if !ready.iter().any(|&i| open[i].lane == lane_index) {
            continue;
        }
        if shared.acks != 0 {
            match lane.slots.try_send(()) {
                Ok(()) => {}
                Err(TrySendError::Full(())) => {
                    full.get_or_insert(lane_index);
                    continue;
                }
                Err(TrySendError::Disconnected(())) => {
                    return Err(anyhow!("the acknowledgement reader stopped"))
                }
            }
        }
        send_lane(shared, producer, lane, lane_index, open, ready, meter)?;
        sent = true;
    }
    if let (false, Some(lane_index)) = (sent, full) {
        let lane = &mut lanes[lane_index];
        // Blocks while IN_FLIGHT_MAX requests await answers; fails when
        // the reader has ended (its error is reported when it is joined).
        lane.slots
            .send(())
            .map_err(|_| anyhow!("the acknowledgement reader stopped"))?;
        send_lane(shared, producer, lane, lane_index, open, ready, meter)?;
    }
    Ok(())
}

/// Sends lane `lane_index`'s `ready` batches as one request; the lane's
/// in-flight slot is already taken (unless `acks=0`).
fn send_lane(
    shared: &Shared,
    producer: Option<(i64, i16)>,
    lane: &mut Lane,
    lane_index: usize,
    open: &mut [Open],
    ready: &[usize],
    meter: &Meter,
) -> anyhow::Result<()> {
    let mut partition_data = Vec::new();
    let mut batches = Vec::new();
    for &i in ready {
        let batch = &mut open[i];
        if batch.lane != lane_index {
            continue;
        }
        batches.push(SentBatch {
            partition: batch.partition,
            first_seq: batch.first_seq,
            records: batch.builder.len() as u64,
        });
        let count = i32::try_from(batch.builder.len()).context("too many records in a batch")?;
        let stamp = producer.map(|(producer_id, epoch)| ProducerStamp {
            producer_id,
            epoch,
            base_sequence: batch.next_sequence,
        });
        batch.next_sequence = increment_sequence(batch.next_sequence, count);
        let records: Bytes = batch.builder.finish(stamp)?;
        partition_data.push(
            PartitionProduceData::default()
                .with_index(batch.partition)
                .with_records(Some(records)),
        );
    }
    let request = ProduceRequest::default()
        .with_acks(shared.acks)
        .with_timeout_ms(PRODUCE_TIMEOUT_MS)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(&shared.topic))
            .with_topic_id(shared.topic_id)
            .with_partition_data(partition_data)]);
    if shared.acks == 0 {
        lane.sender.send(&request, lane.version)?;
        let records: u64 = batches.iter().map(|b| b.records).sum();
        meter.add(records, records * shared.payload.len() as u64);
        return Ok(());
    }
    let sent_at = Instant::now();
    let correlation_id = lane.sender.send(&request, lane.version)?;
    lane.in_flight
        .send(InFlight {
            correlation_id,
            sent_at,
            batches,
        })
        .map_err(|_| anyhow!("the acknowledgement reader stopped"))
}

/// Reads one lane's Produce responses, in the order the requests went out.
struct Acks {
    receiver: ResponseReceiver,
    version: i16,
    pacing: Option<Pacing>,
    record_bytes: u64,
    meter: Arc<Meter>,
}

impl Acks {
    fn read(mut self, in_flight: &Receiver<InFlight>, slots: &Receiver<()>) -> anyhow::Result<()> {
        for request in in_flight {
            let response = self
                .receiver
                .receive::<ProduceRequest>(self.version, request.correlation_id)
                .context("the broker went away")?;
            self.account(&request, &response, Instant::now());
            // The writer may have finished already; the slot no longer matters.
            let _ = slots.try_recv();
        }
        Ok(())
    }

    /// Counts each batch of `request` as acknowledged at `acked_at` or as
    /// lost to its partition's error.
    fn account(&self, request: &InFlight, response: &ProduceResponse, acked_at: Instant) {
        for batch in &request.batches {
            let code = response
                .responses
                .iter()
                .flat_map(|topic| &topic.partition_responses)
                .find(|answer| answer.index == batch.partition)
                .map(|answer| answer.error_code);
            match code {
                Some(0) => {
                    self.meter
                        .add(batch.records, batch.records * self.record_bytes);
                    let mut latencies = self.meter.latencies();
                    match self.pacing {
                        Some(pacing) => {
                            for seq in batch.first_seq..batch.first_seq + batch.records {
                                let latency = acked_at.saturating_duration_since(pacing.due(seq));
                                // In range by `micros`; recording cannot fail.
                                let _ = latencies.record(micros(latency));
                            }
                        }
                        None => {
                            let latency = acked_at.saturating_duration_since(request.sent_at);
                            let _ = latencies.record_n(micros(latency), batch.records);
                        }
                    }
                }
                Some(code) => self.meter.error(error_name(code), batch.records),
                None => self.meter.error(MISSING_ANSWER.to_owned(), batch.records),
            }
        }
    }
}
