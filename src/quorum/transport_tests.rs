//! The transport over real loopback sockets on a real glommio executor:
//! voters exchanging Raft messages, a peer down and back, a full queue,
//! bad frames, DescribeQuorum from a Rust client and from Kafka's own
//! `MetadataQuorumCommand`.

use std::future::Future;
use std::net::TcpListener as StdListener;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerHeartbeatRequest,
    BrokerHeartbeatResponse, DescribeClusterRequest, DescribeClusterResponse,
    DescribeQuorumRequest, DescribeQuorumResponse, ProduceRequest, RequestHeader, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use raft::eraftpb::{Entry, Message, MessageType};

use super::describe::{QuorumStatus, ReplicaStatus, METADATA_TOPIC};
use super::transport::{
    decode_body, ControllerRequest, ControllerService, Inbound, StatusFn, Transport,
    TransportConfig, INBOUND_FRAME_BYTES_BUDGET, INBOUND_MESSAGES_MAX, PEER_QUEUE_BYTES_MAX,
    PEER_QUEUE_MESSAGES_MAX,
};
use super::wire::{self, CONTROLLER_FRAME_BYTES_MAX};
use crate::config::Voter;
use crate::shard::block_on;

const CLUSTER_ID: &str = "MkU3OEVBNTcwNTJENDM2Qg";
/// How long a test waits for what must happen; generous for a loaded
/// two-core machine, never reached when the transport works.
const WAIT: Duration = Duration::from_secs(20);
/// The pause between resends while a peer comes up.
const RESEND_EVERY: Duration = Duration::from_millis(20);

/// Listeners on free loopback ports, and the voters they make (ids from 1).
fn bind_voters(count: usize) -> (Vec<StdListener>, Vec<Voter>) {
    let listeners: Vec<StdListener> = (0..count)
        .map(|_| StdListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let voters = listeners
        .iter()
        .enumerate()
        .map(|(index, listener)| Voter {
            id: index as i32 + 1,
            host: "127.0.0.1".to_string(),
            port: listener.local_addr().expect("address").port(),
        })
        .collect();
    (listeners, voters)
}

/// Binds `voter`'s port again, waiting while the last listener on it is
/// still being closed by its cancelled task.
async fn rebind(voter: &Voter) -> StdListener {
    let deadline = Instant::now() + WAIT;
    loop {
        match StdListener::bind(voter.address()) {
            Ok(listener) => return listener,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                glommio::timer::sleep(RESEND_EVERY).await;
            }
            Err(error) => panic!("rebind {}: {error}", voter.address()),
        }
    }
}

fn status(local_id: i32, leader_id: i32) -> QuorumStatus {
    let replica = |id, log_end_offset| ReplicaStatus {
        id,
        log_end_offset,
        last_fetch_timestamp_ms: 1_700_000_000_000,
        last_caught_up_timestamp_ms: 1_700_000_000_000,
    };
    QuorumStatus {
        local_id,
        leader_id,
        epoch: 5,
        high_watermark: 17,
        voters: vec![replica(1, 17), replica(2, 15), replica(3, 17)],
        observers: vec![],
    }
}

fn start(voters: &[Voter], local_id: i32, listener: StdListener) -> (Transport, Inbound) {
    start_serving(voters, local_id, listener, ControllerService::none())
}

fn start_serving(
    voters: &[Voter],
    local_id: i32,
    listener: StdListener,
    service: ControllerService,
) -> (Transport, Inbound) {
    let config = TransportConfig {
        local_id,
        cluster_id: CLUSTER_ID.to_string(),
        listener_name: "CONTROLLER".to_string(),
        voters: voters.to_vec(),
        gate: Default::default(),
        peers: Default::default(),
    };
    let fixed: StatusFn = Rc::new(move || status(local_id, 1));
    Transport::start(config, listener, fixed, service).expect("start transport")
}

/// A heartbeat from `from` to `to`, told apart by `commit`.
fn heartbeat(from: i32, to: i32, commit: u64) -> Message {
    let mut message = Message::default();
    message.set_msg_type(MessageType::MsgHeartbeat);
    message.from = from as u64;
    message.to = to as u64;
    message.term = 5;
    message.commit = commit;
    message
}

/// Bytes of the entry `append` carries.
const APPEND_BYTES: usize = 1024 * 1024;

/// An append of one entry of `APPEND_BYTES`, told apart by `commit`.
fn append(from: i32, to: i32, commit: u64) -> Message {
    let mut message = heartbeat(from, to, commit);
    message.set_msg_type(MessageType::MsgAppend);
    let entry = Entry {
        data: Bytes::from(vec![7u8; APPEND_BYTES]),
        ..Entry::default()
    };
    message.entries = vec![entry].into();
    message
}

/// `future`, or `None` after `wait`.
async fn within<T>(wait: Duration, future: impl Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(future.await) }, async {
        glommio::timer::sleep(wait).await;
        None
    })
    .await
}

/// Sends `message` again every `RESEND_EVERY` until `receiver` yields one
/// with its `commit`, skipping older ones.
async fn send_until_received(sender: &Transport, receiver: &Inbound, message: Message) {
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "{message:?} never arrived");
        sender.send([message.clone()]);
        if let Some(Some(got)) = within(RESEND_EVERY, receiver.recv()).await {
            if got.commit == message.commit {
                assert_eq!(got, message);
                return;
            }
        }
    }
}

#[test]
fn three_voters_exchange_messages_every_way() {
    block_on(|| async {
        let (listeners, voters) = bind_voters(3);
        let nodes: Vec<_> = listeners
            .into_iter()
            .zip(&voters)
            .map(|(listener, voter)| start(&voters, voter.id, listener))
            .collect();
        for (from, (transport, _)) in nodes.iter().enumerate() {
            let from = from as i32 + 1;
            transport.send(
                (1..=3)
                    .filter(|&to| to != from)
                    .flat_map(|to| (0..50).map(move |n| heartbeat(from, to, n))),
            );
        }
        for (to, (_, receiver)) in nodes.iter().enumerate() {
            let mut got: Vec<(u64, u64)> = Vec::new();
            while got.len() < 100 {
                let message = within(WAIT, receiver.recv())
                    .await
                    .flatten()
                    .expect("messages from both other voters");
                assert_eq!(message.to, to as u64 + 1);
                got.push((message.from, message.commit));
            }
            for from in (1..=3).filter(|&from| from != to as u64 + 1) {
                let commits: Vec<u64> = got
                    .iter()
                    .filter(|(sender, _)| *sender == from)
                    .map(|&(_, commit)| commit)
                    .collect();
                // One connection per peer: each sender's messages in order.
                assert_eq!(commits, (0..50).collect::<Vec<_>>());
            }
        }
        let stats = nodes[0].0.peer_stats(2).expect("voter 2");
        assert_eq!((stats.sent_messages, stats.dropped_messages), (50, 0));
        assert!(nodes[0].0.peer_stats(1).is_none());
    });
}

#[test]
fn a_peer_down_then_up_is_reconnected_and_messages_flow_again() {
    block_on(|| async {
        let (mut listeners, voters) = bind_voters(2);
        // Voter 2 is down: nothing listens on its port.
        drop(listeners.pop());
        let (one, from_two) = start(&voters, 1, listeners.pop().expect("listener 1"));
        for commit in 0..10 {
            one.send([heartbeat(1, 2, commit)]);
            glommio::timer::sleep(RESEND_EVERY).await;
        }
        assert_eq!(one.peer_stats(2).expect("voter 2").connects, 0);

        let (two, from_one) = start(&voters, 2, rebind(&voters[1]).await);
        send_until_received(&one, &from_one, heartbeat(1, 2, 100)).await;
        send_until_received(&two, &from_two, heartbeat(2, 1, 200)).await;

        // Voter 2 stops and comes back on the same port.
        drop(two);
        drop(from_one);
        for commit in 300..310 {
            one.send([heartbeat(1, 2, commit)]);
            glommio::timer::sleep(RESEND_EVERY).await;
        }
        let (two, from_one) = start(&voters, 2, rebind(&voters[1]).await);
        send_until_received(&one, &from_one, heartbeat(1, 2, 400)).await;
        send_until_received(&two, &from_two, heartbeat(2, 1, 500)).await;
        assert!(one.peer_stats(2).expect("voter 2").connects >= 2);
    });
}

#[test]
fn a_full_queue_drops_its_oldest_and_stays_bounded() {
    block_on(|| async {
        let (mut listeners, voters) = bind_voters(2);
        drop(listeners.pop());
        let (one, _) = start(&voters, 1, listeners.pop().expect("listener 1"));
        let sent = 10 * PEER_QUEUE_MESSAGES_MAX as u64;
        one.send((0..sent).map(|commit| heartbeat(1, 2, commit)));
        let stats = one.peer_stats(2).expect("voter 2");
        assert_eq!(stats.queued_messages, PEER_QUEUE_MESSAGES_MAX);
        assert_eq!(
            stats.dropped_messages,
            sent - PEER_QUEUE_MESSAGES_MAX as u64
        );

        // Large messages meet the byte bound first.
        let big_count = 2 * PEER_QUEUE_BYTES_MAX / APPEND_BYTES;
        one.send((0..big_count as u64).map(|n| append(1, 2, sent + n)));
        let stats = one.peer_stats(2).expect("voter 2");
        assert!(stats.queued_bytes <= PEER_QUEUE_BYTES_MAX);
        assert!(stats.queued_messages < big_count);
        let newest = sent + big_count as u64 - 1;

        // A message over the frame bound is dropped, never queued.
        let mut huge = heartbeat(1, 2, u64::MAX);
        let entry = Entry {
            data: Bytes::from(vec![0u8; CONTROLLER_FRAME_BYTES_MAX]),
            ..Entry::default()
        };
        huge.entries = vec![entry].into();
        let dropped = one.peer_stats(2).expect("voter 2").dropped_messages;
        one.send([huge]);
        let after = one.peer_stats(2).expect("voter 2");
        assert_eq!(after.dropped_messages, dropped + 1);

        // Voter 2 comes up: what is left arrives, newest last.
        let (_two, from_one) = start(&voters, 2, rebind(&voters[1]).await);
        let mut last = None;
        for _ in 0..after.queued_messages {
            let message = within(WAIT, from_one.recv())
                .await
                .flatten()
                .expect("queued messages");
            last = Some(message.commit);
        }
        assert_eq!(last, Some(newest));
    });
}

#[test]
fn a_peer_that_reads_nothing_is_dropped_and_connected_again() {
    block_on(|| async {
        let (mut listeners, voters) = bind_voters(2);
        // Voter 2's port completes connections (the kernel's backlog) but
        // nothing ever reads them, as with a stopped process.
        let _stalled = listeners.pop();
        let (one, _) = start(&voters, 1, listeners.pop().expect("listener 1"));
        let deadline = Instant::now() + WAIT;
        let mut commit = 0;
        while one.peer_stats(2).expect("voter 2").connects < 2 {
            assert!(Instant::now() < deadline, "a stalled peer is never dropped");
            one.send([append(1, 2, commit)]);
            commit += 1;
            glommio::timer::sleep(RESEND_EVERY).await;
        }
        let stats = one.peer_stats(2).expect("voter 2");
        assert!(stats.dropped_messages > 0);
        assert!(stats.queued_bytes <= PEER_QUEUE_BYTES_MAX);
    });
}

/// One request on `stream`, its response decoded.
async fn round_trip<Req: Encodable, Resp: Decodable>(
    stream: &mut TcpStream,
    api_key: ApiKey,
    version: i16,
    request: &Req,
) -> Resp {
    let mut header = RequestHeader::default();
    header.request_api_key = api_key as i16;
    header.request_api_version = version;
    header.correlation_id = 42;
    header.client_id = Some(StrBytes::from_static_str("transport-test"));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, api_key.request_header_version(version))
        .expect("header");
    request.encode(&mut body, version).expect("request");
    write_frame(stream, &body).await;
    let mut frame = read_answer(stream).await.expect("a response");
    let response_header =
        ResponseHeader::decode(&mut frame, api_key.response_header_version(version))
            .expect("response header");
    assert_eq!(response_header.correlation_id, 42);
    Resp::decode(&mut frame, version).expect("response")
}

async fn write_frame(stream: &mut TcpStream, body: &[u8]) {
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.put_slice(body);
    stream.write_all(&frame).await.expect("write");
}

/// The next response frame, or `None` once the transport closed the
/// connection.
async fn read_answer(stream: &mut TcpStream) -> Option<Bytes> {
    let mut prefix = [0u8; 4];
    within(WAIT, stream.read_exact(&mut prefix))
        .await
        .expect("an answer or a close")
        .ok()?;
    let mut frame = vec![0u8; i32::from_be_bytes(prefix) as usize];
    stream.read_exact(&mut frame).await.ok()?;
    Some(Bytes::from(frame))
}

fn describe_quorum_request() -> DescribeQuorumRequest {
    DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])])
}

#[test]
fn kafkas_requests_are_answered_on_the_controller_listener() {
    block_on(|| async {
        let (mut listeners, voters) = bind_voters(2);
        let (two, _) = start(&voters, 2, listeners.pop().expect("listener 2"));
        let (one, _) = start(&voters, 1, listeners.pop().expect("listener 1"));
        let mut stream = TcpStream::connect(one.local_address())
            .await
            .expect("connect");
        let versions: ApiVersionsResponse = round_trip(
            &mut stream,
            ApiKey::ApiVersions,
            3,
            &ApiVersionsRequest::default(),
        )
        .await;
        assert_eq!(versions.error_code, 0);
        assert!(versions
            .api_keys
            .iter()
            .any(|api| api.api_key == ApiKey::DescribeQuorum as i16 && api.max_version == 2));
        let cluster: DescribeClusterResponse = round_trip(
            &mut stream,
            ApiKey::DescribeCluster,
            1,
            &DescribeClusterRequest::default().with_endpoint_type(2),
        )
        .await;
        assert_eq!(cluster.cluster_id.as_str(), CLUSTER_ID);
        assert_eq!((cluster.controller_id.0, cluster.brokers.len()), (1, 2));
        for version in 0..=2 {
            let quorum: DescribeQuorumResponse = round_trip(
                &mut stream,
                ApiKey::DescribeQuorum,
                version,
                &describe_quorum_request(),
            )
            .await;
            let partition = &quorum.topics[0].partitions[0];
            assert_eq!((partition.error_code, partition.leader_id.0), (0, 1));
            assert_eq!((partition.leader_epoch, partition.high_watermark), (5, 17));
            assert_eq!(partition.current_voters.len(), 3);
            assert_eq!(quorum.nodes.len(), if version == 2 { 2 } else { 0 });
        }
        // Voter 2 follows: it sends the asker to the leader.
        let mut follower = TcpStream::connect(two.local_address())
            .await
            .expect("connect");
        let quorum: DescribeQuorumResponse = round_trip(
            &mut follower,
            ApiKey::DescribeQuorum,
            2,
            &describe_quorum_request(),
        )
        .await;
        assert_eq!(quorum.topics[0].partitions[0].error_code, 6);
    });
}

/// BrokerHeartbeat v0..=1 through a hook that answers each request with
/// its broker epoch as `throttle_time_ms`, the first one late.
fn heartbeat_service() -> ControllerService {
    ControllerService {
        apis: Rc::new(|request: ControllerRequest| {
            Box::pin(async move {
                let ControllerRequest {
                    header,
                    api_key,
                    version,
                    mut body,
                } = request;
                let heartbeat: BrokerHeartbeatRequest = decode_body(&mut body, api_key, version)?;
                if heartbeat.broker_epoch == 1 {
                    glommio::timer::sleep(Duration::from_millis(100)).await;
                }
                let answer = BrokerHeartbeatResponse::default()
                    .with_throttle_time_ms(heartbeat.broker_epoch as i32);
                crate::protocol::frame::encode_response(&header, version, &answer)
            })
        }),
        versions: &[(ApiKey::BrokerHeartbeat, 0, 1)],
        authorize: crate::quorum::authorize::allow_all(),
    }
}

fn heartbeat_frame(correlation_id: i32, version: i16, broker_epoch: i64) -> BytesMut {
    let mut header = RequestHeader::default();
    header.request_api_key = ApiKey::BrokerHeartbeat as i16;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    let mut body = BytesMut::new();
    header
        .encode(
            &mut body,
            ApiKey::BrokerHeartbeat.request_header_version(version),
        )
        .expect("header");
    // Version 2 does not exist: its body is v1's, the header says 2.
    BrokerHeartbeatRequest::default()
        .with_broker_epoch(broker_epoch)
        .encode(&mut body, version.min(1))
        .expect("request");
    body
}

#[test]
fn the_hook_answers_its_apis_in_request_order_and_only_its_versions() {
    block_on(|| async {
        let (mut listeners, voters) = bind_voters(1);
        let listener = listeners.pop().expect("listener");
        let (one, _) = start_serving(&voters, 1, listener, heartbeat_service());
        let mut stream = TcpStream::connect(one.local_address())
            .await
            .expect("connect");
        let versions: ApiVersionsResponse = round_trip(
            &mut stream,
            ApiKey::ApiVersions,
            3,
            &ApiVersionsRequest::default(),
        )
        .await;
        let listed: Vec<(i16, i16)> = versions
            .api_keys
            .iter()
            .map(|api| (api.api_key, api.max_version))
            .collect();
        assert!(listed.contains(&(ApiKey::BrokerHeartbeat as i16, 1)));
        assert!(listed.contains(&(ApiKey::DescribeQuorum as i16, 2)));
        // Pipelined: the first answer is late, and still goes out first.
        write_frame(&mut stream, &heartbeat_frame(1, 1, 1)).await;
        write_frame(&mut stream, &heartbeat_frame(2, 0, 2)).await;
        for (correlation_id, version) in [(1, 1), (2, 0)] {
            let mut frame = read_answer(&mut stream).await.expect("an answer");
            let api_key = ApiKey::BrokerHeartbeat;
            let header =
                ResponseHeader::decode(&mut frame, api_key.response_header_version(version))
                    .expect("response header");
            assert_eq!(header.correlation_id, correlation_id);
            let answer = BrokerHeartbeatResponse::decode(&mut frame, version).expect("response");
            assert_eq!(answer.throttle_time_ms, correlation_id);
        }
        // A version the hook does not serve closes the connection.
        write_frame(&mut stream, &heartbeat_frame(3, 2, 3)).await;
        assert!(read_answer(&mut stream).await.is_none());
        // Without a hook, its API is refused the same way.
        let (mut listeners, voters) = bind_voters(1);
        let (bare, _) = start(&voters, 1, listeners.pop().expect("listener"));
        let mut stream = TcpStream::connect(bare.local_address())
            .await
            .expect("connect");
        write_frame(&mut stream, &heartbeat_frame(1, 0, 1)).await;
        assert!(read_answer(&mut stream).await.is_none());
    });
}

/// A raft frame from `sender_id` carrying `message`.
fn raft_frame(sender_id: i32, message: &Message) -> Bytes {
    let encoded = wire::encode_message(message).expect("encode");
    wire::encode_frame(sender_id, 0, &[encoded])
}

#[test]
fn a_bad_frame_closes_its_connection_and_no_other() {
    block_on(|| async {
        let (mut listeners, voters) = bind_voters(3);
        // Voter 3 is only a port: a voter id that may not speak for 2.
        let _three = listeners.pop();
        let (two, _) = start(&voters, 2, listeners.pop().expect("listener 2"));
        let (one, from_two) = start(&voters, 1, listeners.pop().expect("listener 1"));
        let mut produce = BytesMut::new();
        let mut header = RequestHeader::default();
        header.request_api_key = ApiKey::Produce as i16;
        header.request_api_version = 9;
        header.encode(&mut produce, 2).expect("header");
        ProduceRequest::default()
            .encode(&mut produce, 9)
            .expect("produce");
        let mut over = BytesMut::new();
        over.put_i32(CONTROLLER_FRAME_BYTES_MAX as i32 + 1);
        let bad: Vec<Bytes> = vec![
            over.freeze(),
            Bytes::from_static(&[0, 0, 0, 8, 0x77, 0x77, 0, 0, 0, 0, 0, 1]),
            Bytes::from_static(&[0, 0, 0, 2, 1, 2]),
            raft_frame(9, &heartbeat(9, 1, 1)),
            raft_frame(2, &heartbeat(3, 1, 1)),
            raft_frame(2, &heartbeat(2, 3, 1)),
            raft_frame(1, &heartbeat(1, 1, 1)),
            [
                raft_frame(2, &heartbeat(2, 1, 1)),
                raft_frame(3, &heartbeat(3, 1, 1)),
            ]
            .concat()
            .into(),
            {
                let mut frame = BytesMut::new();
                frame.put_i32(produce.len() as i32);
                frame.put_slice(&produce);
                frame.freeze()
            },
        ];
        // A good connection opened before the bad ones stays up.
        let mut good = TcpStream::connect(one.local_address())
            .await
            .expect("connect");
        for frame in bad {
            let mut stream = TcpStream::connect(one.local_address())
                .await
                .expect("connect");
            stream.write_all(&frame).await.expect("write");
            assert!(
                read_answer(&mut stream).await.is_none(),
                "{frame:?} was answered"
            );
        }
        let quorum: DescribeQuorumResponse = round_trip(
            &mut good,
            ApiKey::DescribeQuorum,
            2,
            &describe_quorum_request(),
        )
        .await;
        assert_eq!(quorum.topics[0].partitions[0].error_code, 0);
        send_until_received(&two, &from_two, heartbeat(2, 1, 7)).await;
        // The refused connections are gone; the good one and voter 2's remain.
        let deadline = Instant::now() + WAIT;
        while one.inbound_connections() > 2 {
            assert!(Instant::now() < deadline, "refused connections linger");
            glommio::timer::sleep(RESEND_EVERY).await;
        }
    });
}

#[test]
fn frames_being_read_share_one_budget() {
    block_on(|| async {
        let (mut listeners, voters) = bind_voters(2);
        let (one, _) = start(&voters, 1, listeners.remove(0));
        // Each announces a whole frame and sends all of it but its last
        // byte, so none ever completes.
        let mut almost = BytesMut::new();
        almost.put_i32(CONTROLLER_FRAME_BYTES_MAX as i32);
        almost.put_bytes(0, CONTROLLER_FRAME_BYTES_MAX - 1);
        let almost = almost.freeze();
        let connections = INBOUND_FRAME_BYTES_BUDGET / CONTROLLER_FRAME_BYTES_MAX + 1;
        let mut streams = Vec::new();
        let mut refused = 0;
        for _ in 0..connections {
            let mut stream = TcpStream::connect(one.local_address())
                .await
                .expect("connect");
            match stream.write_all(&almost).await {
                Ok(()) => streams.push(stream),
                Err(_) => refused += 1,
            }
        }
        let mut byte = [0u8; 1];
        for mut stream in streams {
            // A closed connection reads its end at once; an open one waits.
            match within(Duration::from_millis(500), stream.read(&mut byte)).await {
                Some(Ok(0) | Err(_)) => refused += 1,
                Some(Ok(_)) => panic!("an unfinished frame was answered"),
                None => {}
            }
        }
        assert_eq!(refused, 1);
        // The budget comes back when the frames go.
        let deadline = Instant::now() + WAIT;
        while one.inbound_connections() > 0 {
            assert!(Instant::now() < deadline, "closed connections linger");
            glommio::timer::sleep(RESEND_EVERY).await;
        }
        let mut stream = TcpStream::connect(one.local_address())
            .await
            .expect("connect");
        stream.write_all(&almost).await.expect("the budget is back");
    });
}

#[test]
fn messages_the_driver_does_not_take_are_dropped_not_buffered() {
    block_on(|| async {
        let (mut listeners, voters) = bind_voters(2);
        let (two, _) = start(&voters, 2, listeners.pop().expect("listener 2"));
        let (one, from_two) = start(&voters, 1, listeners.pop().expect("listener 1"));
        let kept = INBOUND_MESSAGES_MAX as u64;
        let sent = 2 * kept;
        // In rounds that fit the sender's queue, so every drop is the
        // receiver's.
        let round = PEER_QUEUE_MESSAGES_MAX as u64 / 2;
        let deadline = Instant::now() + WAIT;
        for start in (0..sent).step_by(round as usize) {
            two.send((start..start + round).map(|commit| heartbeat(2, 1, commit)));
            while two.peer_stats(1).expect("voter 1").sent_messages < start + round {
                assert!(Instant::now() < deadline, "voter 2 does not send");
                glommio::timer::sleep(RESEND_EVERY).await;
            }
        }
        assert_eq!(two.peer_stats(1).expect("voter 1").dropped_messages, 0);
        while one.inbound_dropped() < sent - kept {
            assert!(Instant::now() < deadline, "drops not counted");
            glommio::timer::sleep(RESEND_EVERY).await;
        }
        assert_eq!(one.inbound_dropped(), sent - kept);
        // The oldest went; the driver finds the newest.
        let first = from_two.try_recv().expect("the oldest kept");
        assert_eq!(first.commit, sent - kept);
        let mut last = first;
        while let Some(message) = from_two.try_recv() {
            last = message;
        }
        assert_eq!(last.commit, sent - 1);
        drop(one);
        assert!(from_two.recv().await.is_none());
    });
}

/// Where Kafka's jars are: `SHOAL_KAFKA_LIBS`, else `target/kafka` as
/// `tests/kafka/setup` leaves them.
fn kafka_libs() -> std::path::PathBuf {
    std::env::var_os("SHOAL_KAFKA_LIBS").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/kafka"),
        Into::into,
    )
}

/// Runs Kafka's `MetadataQuorumCommand` against `address`, killed after
/// `WAIT`; its standard output.
fn metadata_quorum_command(address: &str, what: &str) -> String {
    let mut child = Command::new("java")
        .arg("-cp")
        .arg(format!("{}/*", kafka_libs().display()))
        .args(["org.apache.kafka.tools.MetadataQuorumCommand"])
        .args(["--bootstrap-controller", address, "describe", what])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("java");
    let deadline = Instant::now() + WAIT * 3;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("MetadataQuorumCommand {what} did not finish");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn kafkas_metadata_quorum_tool_describes_the_quorum() {
    if Command::new("java").arg("-version").output().is_err() || !kafka_libs().exists() {
        // tests/run installs both as root; elsewhere it warns and skips
        // the Kafka tests, and so does this one.
        eprintln!("java or Kafka's jars missing: MetadataQuorumCommand not run");
        return;
    }
    let (mut listeners, voters) = bind_voters(3);
    let address = voters[0].address();
    let stop = Arc::new(AtomicBool::new(false));
    let serving = Arc::clone(&stop);
    let server = std::thread::spawn(move || {
        block_on(move || async move {
            let (_one, _) = start(&voters, 1, listeners.remove(0));
            while !serving.load(Ordering::Relaxed) {
                glommio::timer::sleep(RESEND_EVERY).await;
            }
        })
    });
    let outcome = std::panic::catch_unwind(|| {
        (
            metadata_quorum_command(&address, "--status"),
            metadata_quorum_command(&address, "--replication"),
        )
    });
    stop.store(true, Ordering::Relaxed);
    server.join().expect("server thread");
    let (status, replication) = outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    assert!(
        status.contains(&format!("ClusterId:              {CLUSTER_ID}")),
        "{status}"
    );
    assert!(status.contains("LeaderId:               1"), "{status}");
    assert!(status.contains("LeaderEpoch:            5"), "{status}");
    assert!(status.contains("HighWatermark:          17"), "{status}");
    assert!(status.contains("MaxFollowerLag:         2"), "{status}");
    assert!(status.contains("CONTROLLER://127.0.0.1:"), "{status}");
    let rows: Vec<Vec<&str>> = replication
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "{replication}");
    let row = |id: &str| {
        rows.iter()
            .find(|row| row[0] == id)
            .expect("a row per voter")
    };
    assert!(row("1").contains(&"Leader"), "{replication}");
    assert!(row("2").contains(&"Follower"), "{replication}");
    // NodeId DirectoryId LogEndOffset Lag LastFetchTimestamp LastCaughtUpTimestamp Status
    assert_eq!(row("2")[2..4], ["15", "2"], "{replication}");
}
