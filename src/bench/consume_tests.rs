//! Tests of `consume.rs`: one consumer thread reading partitions led by
//! two brokers, one of which has nothing new and holds its Fetch (a long
//! poll), against fake brokers on loopback ports.

use std::collections::HashMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::AtomicU64;
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use clap::Parser;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, FetchRequest, FetchResponse, ResponseHeader,
};
use kafka_protocol::protocol::{decode_request_header_from_buffer, Decodable, Encodable};
use kafka_protocol::records::Compression;
use uuid::Uuid;

use super::batch::BatchBuilder;
use super::consume::{spawn, Timing};
use super::meter::Meter;
use super::{join_all, BenchCommand, PartitionLeader, TopicLayout};
use crate::client::frame::read_frame;

/// Newest Fetch version the fake brokers offer: the last that names topics,
/// so the nil topic id of the test's layout is enough.
const FETCH_VERSION: i16 = 12;
/// Records in each answer of the leader that has data.
const RECORDS_PER_FETCH: i64 = 10;
/// The consumer's target: several answers of the leader with data, all of
/// which must arrive while the other leader still holds its first Fetch.
const TARGET_RECORDS: u64 = 5 * RECORDS_PER_FETCH as u64;
/// Bounds the idle leader's hold so that a consumer that waits on it fails
/// the test instead of hanging it; not a timing assertion.
const HOLD_BOUND: Duration = Duration::from_secs(20);
const FRAME_MAX_BYTES: usize = 1 << 20;

fn api(key: ApiKey, min: i16, max: i16) -> ApiVersion {
    ApiVersion::default()
        .with_api_key(key as i16)
        .with_min_version(min)
        .with_max_version(max)
}

/// Reads one request of `key` and answers it with what `respond` makes of
/// its body, at the request's version; `None` once the client has closed.
fn answer_next<Resp: Encodable>(
    stream: &mut TcpStream,
    key: ApiKey,
    respond: impl FnOnce(Bytes, i16) -> Resp,
) -> Option<()> {
    let mut frame = read_frame(stream, FRAME_MAX_BYTES).ok()?;
    let header = decode_request_header_from_buffer(&mut frame).unwrap();
    assert_eq!(header.request_api_key, key as i16);
    let version = header.request_api_version;
    let response = respond(frame, version);
    let mut body = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(header.correlation_id)
        .encode(&mut body, key.response_header_version(version))
        .unwrap();
    response.encode(&mut body, version).unwrap();
    stream
        .write_all(&(body.len() as i32).to_be_bytes())
        .unwrap();
    stream.write_all(&body).unwrap();
    Some(())
}

/// A one-connection broker on a loopback port that negotiates versions and
/// then plays `script`, whose result the handle returns.
fn fake_leader<T: Send + 'static>(
    script: impl FnOnce(&mut TcpStream) -> T + Send + 'static,
) -> (String, JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let broker = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        answer_next(&mut stream, ApiKey::ApiVersions, |_, _| {
            ApiVersionsResponse::default().with_api_keys(vec![
                api(ApiKey::ApiVersions, 0, 3),
                api(ApiKey::Fetch, 4, FETCH_VERSION),
            ])
        })
        .unwrap();
        script(&mut stream)
    });
    (addr, broker)
}

/// A batch of [`RECORDS_PER_FETCH`] records starting at `base_offset`.
fn batch_at(base_offset: i64) -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None);
    for _ in 0..RECORDS_PER_FETCH {
        builder.push(None, b"value", None, 0);
    }
    let mut batch = BytesMut::from(&builder.finish(None).unwrap()[..]);
    // The base offset is the batch's first field, outside its CRC.
    batch[..8].copy_from_slice(&base_offset.to_be_bytes());
    batch.freeze()
}

/// Answers every Fetch with a batch at each wanted partition's offset,
/// until the client closes; returns how many Fetches it answered.
fn serve_records(stream: &mut TcpStream) -> u64 {
    let mut answered = 0;
    while answer_next(stream, ApiKey::Fetch, |mut body, version| {
        let request = FetchRequest::decode(&mut body, version).unwrap();
        let topics = request.topics.iter().map(|topic| {
            let partitions = topic.partitions.iter().map(|p| {
                PartitionData::default()
                    .with_partition_index(p.partition)
                    .with_high_watermark(p.fetch_offset + RECORDS_PER_FETCH)
                    .with_records(Some(batch_at(p.fetch_offset)))
            });
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions.collect())
        });
        FetchResponse::default().with_responses(topics.collect())
    })
    .is_some()
    {
        answered += 1;
    }
    answered
}

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

#[test]
fn a_leader_with_nothing_new_does_not_hold_up_the_others() {
    let (release, released) = mpsc::channel::<()>();
    // Reads the first Fetch and answers nothing until the consumer is done
    // (true) or HOLD_BOUND passes (false).
    let (idle_addr, idle) = fake_leader(move |stream| {
        read_frame(stream, FRAME_MAX_BYTES).unwrap();
        released.recv_timeout(HOLD_BOUND).is_ok()
    });
    let (busy_addr, busy) = fake_leader(serve_records);
    let layout = TopicLayout {
        name: "t".to_owned(),
        id: Uuid::nil(),
        partitions: vec![
            PartitionLeader {
                partition: 0,
                leader: idle_addr,
            },
            PartitionLeader {
                partition: 1,
                leader: busy_addr,
            },
        ],
    };
    let Ok(BenchCommand::Consume(args)) =
        Cli::try_parse_from(["bench", "consume", "--connections", "1"]).map(|cli| cli.command)
    else {
        panic!("consume did not parse");
    };
    let target = Arc::new(AtomicU64::new(TARGET_RECORDS));
    let meter = Meter::new().unwrap();

    let workers = spawn(
        &args,
        &layout,
        &HashMap::new(),
        Timing::Fetch,
        &target,
        None,
        &meter,
    );
    let failure = join_all(workers);
    let _ = release.send(());

    assert!(
        idle.join().unwrap(),
        "the consumer waited for the leader with nothing new"
    );
    assert!(failure.is_none(), "{failure:?}");
    assert_eq!(meter.records(), TARGET_RECORDS);
    assert!(busy.join().unwrap() >= TARGET_RECORDS / RECORDS_PER_FETCH as u64);
}
