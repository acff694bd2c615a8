//! A small blocking Kafka client over `std::net::TcpStream`, used by the
//! command-line tools and the load generator.
//!
//! A [`Connection`] negotiates API versions when it connects and then sends
//! any `kafka-protocol` request at the highest version both sides support.
//! `send` writes a request and reads its response before returning. For
//! pipelining, [`Connection::into_pipeline`] splits a connection into a
//! [`RequestSender`] and a [`ResponseReceiver`] that two threads can drive:
//! Kafka answers the requests of one connection in order.
//!
//! Invariant: the client never trusts the network. Every response is bounded
//! by [`RESPONSE_FRAME_MAX_BYTES`], matched by correlation id and decoded
//! fully; broker error codes surface as [`KafkaError`]s, never as panics.

pub mod cluster;
pub mod coordinator;
pub mod error;
pub mod frame;
pub mod partitioner;
pub mod security;
mod tls_relay;

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::Buf;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, FetchRequest, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use uuid::Uuid;

pub use cluster::Cluster;
pub use coordinator::Coordinator;
pub use error::{check, error_name, KafkaError};

/// How long to wait for a TCP connection to a broker.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a blocked write may wait for the broker to drain its socket.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for a response. Longer than any long-poll wait the tools
/// ask a broker for, so a slow Fetch is not mistaken for a dead broker.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest response frame the client accepts. Fetch responses are bounded by
/// the request's `max_bytes` (the tools ask for far less), so anything larger
/// is a broken or hostile peer.
pub const RESPONSE_FRAME_MAX_BYTES: usize = 100 << 20;
/// The `client.id` sent in every request header.
pub const CLIENT_ID: &str = "shoal-cli";
/// ApiVersions version tried first; v3 is the first flexible version, which
/// carries the client software name.
const API_VERSIONS_FIRST_TRY: i16 = 3;
/// ApiVersions version every broker understands, used after a refusal.
const API_VERSIONS_FALLBACK: i16 = 0;
/// Newest Produce and Fetch version that still names topics; from v13 on
/// they carry only topic ids.
pub const TOPIC_BY_NAME_VERSION_MAX: i16 = 12;
/// Kafka's UNSUPPORTED_VERSION error code.
const UNSUPPORTED_VERSION: i16 = 35;

/// One blocking connection to one broker.
pub struct Connection {
    sender: RequestSender,
    receiver: ResponseReceiver,
    /// Chosen version per API key: the highest both sides support.
    versions: HashMap<i16, i16>,
}

/// The sending half of a connection: frames and writes requests without
/// waiting for their responses.
pub struct RequestSender {
    addr: String,
    writer: BufWriter<Socket>,
    next_correlation_id: i32,
}

impl RequestSender {
    /// Writes `req` at `version` and returns its correlation id, which the
    /// response to it will carry.
    pub fn send<Req: Request>(&mut self, req: &Req, version: i16) -> anyhow::Result<i32> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let frame = frame::encode_request(req, version, correlation_id, CLIENT_ID)?;
        frame::write_frame(&mut self.writer, &frame)
            .with_context(|| format!("sending to {}", self.addr))?;
        Ok(correlation_id)
    }
}

/// The receiving half of a connection: reads responses in the order their
/// requests were sent.
pub struct ResponseReceiver {
    addr: String,
    reader: BufReader<Socket>,
}

impl ResponseReceiver {
    /// Reads the next response, which must answer the request sent as
    /// `correlation_id` at `version`, and decodes it.
    pub fn receive<Req: Request>(
        &mut self,
        version: i16,
        correlation_id: i32,
    ) -> anyhow::Result<Req::Response> {
        let body = self.receive_body::<Req>(version, correlation_id)?;
        frame::decode_response::<Req>(body, version)
    }

    fn receive_body<Req: Request>(
        &mut self,
        version: i16,
        correlation_id: i32,
    ) -> anyhow::Result<bytes::Bytes> {
        let frame = frame::read_frame(&mut self.reader, RESPONSE_FRAME_MAX_BYTES)
            .with_context(|| format!("receiving from {}", self.addr))?;
        frame::split_response::<Req>(frame, version, correlation_id)
    }
}

impl Connection {
    /// Connects to `addr` (`host:port`), negotiates API versions and, with
    /// a client config installed (`security::install_file`), speaks TLS
    /// and logs in as it says.
    pub fn connect(addr: &str) -> anyhow::Result<Connection> {
        Connection::connect_secured(addr, security::installed())
    }

    /// Connects to `addr` with `secured` (None: PLAINTEXT).
    pub fn connect_secured(
        addr: &str,
        secured: Option<&security::Secured>,
    ) -> anyhow::Result<Connection> {
        let stream = connect_stream(addr)?;
        stream.set_nodelay(true).context("setting TCP_NODELAY")?;
        // Bounds the TLS handshake too, which runs on this socket.
        Socket::Tcp(stream.try_clone().context("cloning socket")?).set_timeouts()?;
        let host = split_host(addr);
        let socket = security::wrap(stream, host, secured)?;
        socket.set_timeouts()?;
        let reader = BufReader::new(socket.try_clone().context("cloning socket")?);
        let mut connection = Connection {
            sender: RequestSender {
                addr: addr.to_owned(),
                writer: BufWriter::new(socket),
                next_correlation_id: 0,
            },
            receiver: ResponseReceiver {
                addr: addr.to_owned(),
                reader,
            },
            versions: HashMap::new(),
        };
        connection.negotiate_versions()?;
        if let Some(login) = secured.and_then(|secured| secured.security.sasl.as_ref()) {
            security::authenticate(&mut connection, login)?;
        }
        Ok(connection)
    }

    /// The `host:port` this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.sender.addr
    }

    /// Splits the connection into halves that pipeline: one thread may keep
    /// sending while another reads the responses, in request order. Versions
    /// stay as negotiated; ask [`Connection::version`] before splitting.
    pub fn into_pipeline(self) -> (RequestSender, ResponseReceiver) {
        (self.sender, self.receiver)
    }

    /// The negotiated version for `key`, if both sides support one.
    pub fn version(&self, key: ApiKey) -> Option<i16> {
        self.versions.get(&(key as i16)).copied()
    }

    /// The negotiated version for `key`, or UNSUPPORTED_VERSION.
    pub fn require_version(&self, key: ApiKey) -> anyhow::Result<i16> {
        self.version(key).ok_or_else(|| {
            anyhow!(KafkaError {
                code: UNSUPPORTED_VERSION,
                message: format!("broker {} supports no version of {key:?}", self.addr()),
            })
        })
    }

    /// The version to send a Produce or Fetch for a topic at: the negotiated
    /// one, capped at [`TOPIC_BY_NAME_VERSION_MAX`] when the topic id is not
    /// known (nil), since later versions name topics only by id.
    pub fn topic_version(&self, key: ApiKey, topic_id: Uuid) -> anyhow::Result<i16> {
        let version = self.require_version(key)?;
        Ok(if topic_id.is_nil() {
            version.min(TOPIC_BY_NAME_VERSION_MAX)
        } else {
            version
        })
    }

    /// Sends `req` at the negotiated version and returns the response.
    pub fn send<Req: Request>(&mut self, req: Req) -> anyhow::Result<Req::Response> {
        let version = self.require_version(frame::api_key_of::<Req>()?)?;
        self.send_version(req, version)
    }

    /// Sends `req` at an explicit `version`, for callers that must cap the
    /// version (e.g. when they lack the topic ids newer versions need).
    pub fn send_version<Req: Request>(
        &mut self,
        req: Req,
        version: i16,
    ) -> anyhow::Result<Req::Response> {
        let correlation_id = self.write_request(&req, version)?;
        let body = self.read_response::<Req>(version, correlation_id)?;
        frame::decode_response::<Req>(body, version)
    }

    /// Sends `req` at `version` and returns its correlation id without
    /// waiting, so that requests to several brokers are in flight together;
    /// [`Connection::receive`] reads the answer.
    pub fn send_only<Req: Request>(&mut self, req: &Req, version: i16) -> anyhow::Result<i32> {
        self.write_request(req, version)
    }

    /// The answer to the request [`Connection::send_only`] sent as
    /// `correlation_id` at `version`.
    pub fn receive<Req: Request>(
        &mut self,
        version: i16,
        correlation_id: i32,
    ) -> anyhow::Result<Req::Response> {
        self.receiver.receive::<Req>(version, correlation_id)
    }

    /// Whether bytes of a response are already buffered, so that reading it
    /// starts without waiting on the socket (where poll(2) on the
    /// connection's fd would not see them).
    pub fn has_buffered_input(&self) -> bool {
        !self.receiver.reader.buffer().is_empty()
    }

    /// Sends `req` at `version` without waiting for a response, for requests
    /// the broker does not answer (Produce with `acks=0`).
    pub fn send_no_response<Req: Request>(&mut self, req: Req, version: i16) -> anyhow::Result<()> {
        self.write_request(&req, version).map(|_| ())
    }

    /// Metadata for `topics`, or for every topic when `topics` is `None`.
    pub fn metadata(&mut self, topics: Option<&[&str]>) -> anyhow::Result<MetadataResponse> {
        let topics = topics.map(|names| {
            names
                .iter()
                .map(|name| MetadataRequestTopic::default().with_name(Some(topic_name(name))))
                .collect()
        });
        let response = self.send(
            MetadataRequest::default()
                .with_topics(topics)
                .with_allow_auto_topic_creation(false),
        )?;
        check(response.error_code, None, "metadata")?;
        Ok(response)
    }

    fn write_request<Req: Request>(&mut self, req: &Req, version: i16) -> anyhow::Result<i32> {
        self.sender.send(req, version)
    }

    fn read_response<Req: Request>(
        &mut self,
        version: i16,
        correlation_id: i32,
    ) -> anyhow::Result<bytes::Bytes> {
        self.receiver.receive_body::<Req>(version, correlation_id)
    }

    /// ApiVersions at v3; a broker that refuses it answers in v0 with
    /// UNSUPPORTED_VERSION, and the client asks again at v0.
    fn negotiate_versions(&mut self) -> anyhow::Result<()> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("shoal"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let correlation_id = self.write_request(&request, API_VERSIONS_FIRST_TRY)?;
        let body =
            self.read_response::<ApiVersionsRequest>(API_VERSIONS_FIRST_TRY, correlation_id)?;
        // error_code leads the body in every version, so it can be read
        // before knowing which version the broker answered in.
        let response = if body.clone().try_get_i16().ok() == Some(UNSUPPORTED_VERSION) {
            self.send_version(request, API_VERSIONS_FALLBACK)?
        } else {
            frame::decode_response::<ApiVersionsRequest>(body, API_VERSIONS_FIRST_TRY)?
        };
        check(response.error_code, None, "ApiVersions")?;
        self.versions = choose_versions(&response);
        Ok(())
    }
}

/// The socket responses arrive on, so that a thread with requests in flight
/// on several connections can wait for the first to answer (poll(2)).
impl AsFd for Connection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.receiver.reader.get_ref().as_fd()
    }
}

/// The byte stream under a connection: the TCP socket, or the
/// application end of a TLS relay (`tls_relay`).
pub(crate) enum Socket {
    Tcp(TcpStream),
    Relay(UnixStream),
}

impl Socket {
    fn try_clone(&self) -> std::io::Result<Socket> {
        Ok(match self {
            Socket::Tcp(stream) => Socket::Tcp(stream.try_clone()?),
            Socket::Relay(stream) => Socket::Relay(stream.try_clone()?),
        })
    }

    fn set_timeouts(&self) -> anyhow::Result<()> {
        match self {
            Socket::Tcp(stream) => {
                stream.set_read_timeout(Some(READ_TIMEOUT))?;
                stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
            }
            Socket::Relay(stream) => {
                stream.set_read_timeout(Some(READ_TIMEOUT))?;
                stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
            }
        }
        Ok(())
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Socket::Tcp(stream) => stream.read(buf),
            Socket::Relay(stream) => stream.read(buf),
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Socket::Tcp(stream) => stream.write(buf),
            Socket::Relay(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Socket::Tcp(stream) => stream.flush(),
            Socket::Relay(stream) => stream.flush(),
        }
    }
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Socket::Tcp(stream) => stream.as_fd(),
            Socket::Relay(stream) => stream.as_fd(),
        }
    }
}

/// The host of `host:port` (an IPv6 host without its brackets).
fn split_host(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The highest version per API that both the broker (per `response`) and the
/// `kafka-protocol` crate support; APIs with no common version are left out.
pub fn choose_versions(response: &ApiVersionsResponse) -> HashMap<i16, i16> {
    response
        .api_keys
        .iter()
        .filter_map(|api| {
            let key = ApiKey::try_from(api.api_key).ok()?;
            let ours = key.valid_versions();
            let min = api.min_version.max(ours.min);
            let max = api.max_version.min(ours.max);
            (min <= max).then_some((api.api_key, max))
        })
        .collect()
}

/// The advertised `host:port` of broker `node_id`.
pub fn broker_addr(metadata: &MetadataResponse, node_id: BrokerId) -> anyhow::Result<String> {
    let broker = metadata
        .brokers
        .iter()
        .find(|broker| broker.node_id == node_id)
        .ok_or_else(|| anyhow!("broker {} is not in the metadata", node_id.0))?;
    Ok(format_host_port(broker.host.as_str(), broker.port))
}

/// The leader of `topic`/`partition` per `metadata`, or the Kafka error that
/// explains why there is none.
pub fn partition_leader(
    metadata: &MetadataResponse,
    topic: &str,
    partition: i32,
) -> anyhow::Result<BrokerId> {
    let topic_meta = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic))
        .ok_or_else(|| anyhow!(unknown_topic(topic)))?;
    check(topic_meta.error_code, None, &format!("topic {topic}"))?;
    let partition_meta = topic_meta
        .partitions
        .iter()
        .find(|p| p.partition_index == partition)
        .ok_or_else(|| {
            anyhow!(KafkaError {
                code: UNKNOWN_TOPIC_OR_PARTITION,
                message: format!("{topic}-{partition}: no such partition"),
            })
        })?;
    check(
        partition_meta.error_code,
        None,
        &format!("{topic}-{partition}"),
    )?;
    if partition_meta.leader_id.0 < 0 {
        bail!(KafkaError {
            code: LEADER_NOT_AVAILABLE,
            message: format!("{topic}-{partition} has no leader"),
        });
    }
    Ok(partition_meta.leader_id)
}

/// Connects to `addr`, finds the leader of `topic`/`partition` through
/// Metadata and returns a connection to it, at the address the cluster
/// advertises for it.
pub fn bootstrap(addr: &str, topic: &str, partition: i32) -> anyhow::Result<Connection> {
    let mut seed = Connection::connect(addr)?;
    let metadata = seed.metadata(Some(&[topic]))?;
    let leader = partition_leader(&metadata, topic, partition)?;
    let leader_addr = broker_addr(&metadata, leader)?;
    if leader_addr == seed.addr() {
        return Ok(seed);
    }
    Connection::connect(&leader_addr)
}

/// A Fetch of one topic's `partitions`, each as (index, offset to read
/// from): up to `partition_max_bytes` each and `max_bytes` in all, waiting
/// up to `wait_ms` for the first byte.
pub fn fetch_request(
    topic: &str,
    topic_id: Uuid,
    partitions: impl IntoIterator<Item = (i32, i64)>,
    wait_ms: i32,
    max_bytes: i32,
    partition_max_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_topic_id(topic_id)
            .with_partitions(
                partitions
                    .into_iter()
                    .map(|(partition, offset)| {
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(partition_max_bytes)
                    })
                    .collect(),
            )])
}

/// Kafka's UNKNOWN_TOPIC_OR_PARTITION error code.
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// Kafka's LEADER_NOT_AVAILABLE error code.
const LEADER_NOT_AVAILABLE: i16 = 5;

/// The error for a topic missing from a Metadata response.
pub fn unknown_topic(topic: &str) -> KafkaError {
    KafkaError {
        code: UNKNOWN_TOPIC_OR_PARTITION,
        message: format!("topic {topic} does not exist"),
    }
}

/// A topic name as the protocol types carry it.
pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// `host:port`, the host bracketed when it is an IPv6 address.
pub fn format_host_port(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Opens a TCP connection to the first address of `addr` that accepts within
/// [`CONNECT_TIMEOUT`].
fn connect_stream(addr: &str) -> anyhow::Result<TcpStream> {
    let candidates: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
        .collect();
    let mut last_error = None;
    for candidate in candidates {
        match TcpStream::connect_timeout(&candidate, CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(error) => last_error = Some(error),
        }
    }
    match last_error {
        Some(error) => Err(error).with_context(|| format!("connecting to {addr}")),
        None => bail!("{addr} resolved to no address"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };

    fn api(key: ApiKey, min: i16, max: i16) -> ApiVersion {
        ApiVersion::default()
            .with_api_key(key as i16)
            .with_min_version(min)
            .with_max_version(max)
    }

    #[test]
    fn chooses_highest_common_version_per_api() {
        let response = ApiVersionsResponse::default().with_api_keys(vec![
            api(ApiKey::Produce, 3, 9),
            api(ApiKey::Fetch, 0, i16::MAX),
            api(ApiKey::ListOffsets, 0, 0),
            ApiVersion::default()
                .with_api_key(i16::MAX)
                .with_max_version(3),
        ]);
        let versions = choose_versions(&response);
        assert_eq!(versions.get(&(ApiKey::Produce as i16)), Some(&9));
        assert_eq!(
            versions.get(&(ApiKey::Fetch as i16)),
            Some(&ApiKey::Fetch.valid_versions().max)
        );
        // The crate cannot speak ListOffsets v0, and nobody knows key 32767.
        assert_eq!(versions.get(&(ApiKey::ListOffsets as i16)), None);
        assert_eq!(versions.len(), 2);
    }

    fn metadata_with_leader(leader: i32) -> MetadataResponse {
        MetadataResponse::default()
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(StrBytes::from_static_str("10.0.0.1"))
                .with_port(9093)])
            .with_topics(vec![MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
                .with_partitions(vec![MetadataResponsePartition::default()
                    .with_partition_index(0)
                    .with_leader_id(BrokerId(leader))])])
    }

    #[test]
    fn finds_leader_and_its_advertised_address() {
        let metadata = metadata_with_leader(1);
        let leader = partition_leader(&metadata, "t", 0).unwrap();
        assert_eq!(broker_addr(&metadata, leader).unwrap(), "10.0.0.1:9093");
    }

    #[test]
    fn missing_topic_partition_or_leader_are_kafka_errors() {
        let metadata = metadata_with_leader(-1);
        let name = |e: anyhow::Error| e.downcast::<KafkaError>().unwrap().name();
        assert_eq!(
            name(partition_leader(&metadata, "nope", 0).unwrap_err()),
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
        assert_eq!(
            name(partition_leader(&metadata, "t", 1).unwrap_err()),
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
        assert_eq!(
            name(partition_leader(&metadata, "t", 0).unwrap_err()),
            "LEADER_NOT_AVAILABLE"
        );
    }

    /// Answers one request on `stream` the way a broker would: checks the
    /// API and version it expects, then replies with `response`.
    fn answer<Resp: kafka_protocol::protocol::Encodable>(
        stream: &mut TcpStream,
        key: ApiKey,
        expected_version: i16,
        reply_version: i16,
        response: &Resp,
    ) {
        use kafka_protocol::protocol::{decode_request_header_from_buffer, Encodable};
        use std::io::Write;

        let mut frame = frame::read_frame(stream, RESPONSE_FRAME_MAX_BYTES).unwrap();
        let header = decode_request_header_from_buffer(&mut frame).unwrap();
        assert_eq!(header.request_api_key, key as i16);
        assert_eq!(header.request_api_version, expected_version);
        let mut body = bytes::BytesMut::new();
        kafka_protocol::messages::ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(&mut body, key.response_header_version(reply_version))
            .unwrap();
        response.encode(&mut body, reply_version).unwrap();
        stream
            .write_all(&(body.len() as i32).to_be_bytes())
            .unwrap();
        stream.write_all(&body).unwrap();
    }

    /// A one-connection broker on a loopback port that plays `script`.
    fn fake_broker(
        script: impl FnOnce(&mut TcpStream) + Send + 'static,
    ) -> (String, std::thread::JoinHandle<()>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let broker = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            script(&mut stream);
        });
        (addr, broker)
    }

    #[test]
    fn falls_back_to_api_versions_v0_then_speaks_negotiated_versions() {
        let (addr, broker) = fake_broker(|stream| {
            let refusal = ApiVersionsResponse::default()
                .with_error_code(UNSUPPORTED_VERSION)
                .with_api_keys(vec![api(ApiKey::ApiVersions, 0, 2)]);
            answer(stream, ApiKey::ApiVersions, 3, 0, &refusal);
            let versions = ApiVersionsResponse::default().with_api_keys(vec![
                api(ApiKey::ApiVersions, 0, 2),
                api(ApiKey::Metadata, 0, 9),
            ]);
            answer(stream, ApiKey::ApiVersions, 0, 0, &versions);
            let metadata = metadata_with_leader(1);
            answer(stream, ApiKey::Metadata, 9, 9, &metadata);
        });

        let mut conn = Connection::connect(&addr).unwrap();
        assert_eq!(conn.version(ApiKey::Metadata), Some(9));
        assert_eq!(conn.version(ApiKey::Produce), None);
        let id = Uuid::from_u128(7);
        assert!(conn.topic_version(ApiKey::Fetch, id).is_err());
        let metadata = conn.metadata(Some(&["t"])).unwrap();
        assert_eq!(partition_leader(&metadata, "t", 0).unwrap(), BrokerId(1));
        let err = conn
            .send(kafka_protocol::messages::ProduceRequest::default())
            .unwrap_err();
        assert_eq!(
            err.downcast::<KafkaError>().unwrap().name(),
            "UNSUPPORTED_VERSION"
        );
        broker.join().unwrap();
    }

    #[test]
    fn topic_version_is_capped_without_a_topic_id() {
        let (addr, broker) = fake_broker(|stream| {
            let versions = ApiVersionsResponse::default().with_api_keys(vec![
                api(ApiKey::ApiVersions, 0, 3),
                api(ApiKey::Fetch, 4, 17),
            ]);
            answer(stream, ApiKey::ApiVersions, 3, 3, &versions);
        });
        let conn = Connection::connect(&addr).unwrap();
        broker.join().unwrap();
        assert_eq!(
            conn.topic_version(ApiKey::Fetch, Uuid::from_u128(7))
                .unwrap(),
            17
        );
        assert_eq!(
            conn.topic_version(ApiKey::Fetch, Uuid::nil()).unwrap(),
            TOPIC_BY_NAME_VERSION_MAX
        );
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(format_host_port("::1", 9092), "[::1]:9092");
        assert_eq!(format_host_port("localhost", 9092), "localhost:9092");
    }
}
