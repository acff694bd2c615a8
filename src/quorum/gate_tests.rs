//! The CONTROLLER listener secured: voters over TLS with a SASL/PLAIN
//! login exchange Raft messages; a wrong password, a client without a
//! login and a SCRAM login are each kept out, with nothing delivered; a
//! login without CLUSTER_ACTION is refused each request Kafka's
//! authorization matrix refuses it.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::TcpListener as StdListener;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use kafka_protocol::protocol::Encodable;
use raft::eraftpb::{Message, MessageType};

use super::describe::QuorumStatus;
use super::gate::ControllerGate;
use super::link::{self, LinkSecurity};
use super::transport::{ControllerService, Inbound, StatusFn, Transport, TransportConfig};
use super::wire;
use crate::config::{
    ClientAuth, ClientCredentials, ClientSecurity, ClientTlsSettings, PemSource, SaslLogin,
    SaslMechanism, SslSettings, Voter,
};
use crate::security::tls::TlsAcceptor;
use crate::shard::block_on;

/// How long a test waits for what must happen.
const WAIT: Duration = Duration::from_secs(20);
/// How long a test waits for what must not happen.
const QUIET: Duration = Duration::from_secs(2);
const RESEND_EVERY: Duration = Duration::from_millis(50);
const PASSWORD: &str = "controller-secret";

/// A CA and a certificate for 127.0.0.1 it signed, PEM.
struct Pki {
    ca: String,
    key: String,
    chain: String,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "ca");
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let key = KeyPair::generate().expect("key");
    let certificate = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .signed_by(&key, &ca, &ca_key)
        .expect("signed");
    Pki {
        ca: ca.pem(),
        key: key.serialize_pem(),
        chain: certificate.pem(),
    }
}

fn gate(pki: &Pki, with_tls: bool) -> ControllerGate {
    gate_for(pki, with_tls, &["controller"])
}

/// A gate taking PLAIN logins of `users`, all with `PASSWORD`.
fn gate_for(pki: &Pki, with_tls: bool, users: &[&str]) -> ControllerGate {
    let tls = with_tls.then(|| {
        TlsAcceptor::new(&SslSettings {
            keystore: (
                PemSource::Inline(pki.key.clone()),
                PemSource::Inline(pki.chain.clone()),
            ),
            key_password: None,
            truststore: None,
            client_auth: ClientAuth::None,
            enabled_protocols: vec!["TLSv1.2".into(), "TLSv1.3".into()],
            cipher_suites: Vec::new(),
            principal_mapping_rules: "DEFAULT".into(),
        })
        .expect("acceptor")
    });
    let users = users
        .iter()
        .map(|user| (user.to_string(), PASSWORD.to_string()))
        .collect::<BTreeMap<_, _>>();
    ControllerGate::new(tls, Some(users))
}

fn login(pki: &Pki, mechanism: SaslMechanism, password: &str) -> LinkSecurity {
    login_as(pki, mechanism, "controller", password)
}

fn login_as(pki: &Pki, mechanism: SaslMechanism, user: &str, password: &str) -> LinkSecurity {
    LinkSecurity::load(ClientSecurity {
        tls: Some(ClientTlsSettings {
            truststore: PemSource::Inline(pki.ca.clone()),
            keystore: None,
            key_password: None,
            endpoint_identification: true,
            enabled_protocols: vec!["TLSv1.3".into()],
        }),
        sasl: Some(SaslLogin {
            mechanism,
            credentials: ClientCredentials {
                user: user.into(),
                password: password.into(),
            },
        }),
    })
    .expect("client settings")
}

/// Starts voter `id` of `voters` on `listener`, secured as given.
fn start(
    voters: &[Voter],
    id: i32,
    listener: StdListener,
    security: (ControllerGate, LinkSecurity),
) -> (Transport, Inbound) {
    start_serving(voters, id, listener, security, ControllerService::none())
}

fn start_serving(
    voters: &[Voter],
    id: i32,
    listener: StdListener,
    (gate, peers): (ControllerGate, LinkSecurity),
    service: ControllerService,
) -> (Transport, Inbound) {
    let config = TransportConfig {
        local_id: id,
        cluster_id: "c".to_string(),
        listener_name: "CONTROLLER".to_string(),
        voters: voters.to_vec(),
        gate: Arc::new(gate),
        peers: Arc::new(peers),
    };
    let status: StatusFn = Rc::new(move || QuorumStatus {
        local_id: id,
        leader_id: -1,
        epoch: 0,
        high_watermark: -1,
        voters: Vec::new(),
        observers: Vec::new(),
    });
    Transport::start(config, listener, status, service).expect("transport")
}

fn voters(listeners: &[StdListener]) -> Vec<Voter> {
    listeners
        .iter()
        .enumerate()
        .map(|(index, listener)| Voter {
            id: index as i32 + 1,
            host: "127.0.0.1".to_string(),
            port: listener.local_addr().expect("address").port(),
        })
        .collect()
}

fn heartbeat(from: i32, to: i32, commit: u64) -> Message {
    let mut message = Message::default();
    message.set_msg_type(MessageType::MsgHeartbeat);
    message.from = from as u64;
    message.to = to as u64;
    message.term = 3;
    message.commit = commit;
    message
}

async fn within<T>(wait: Duration, future: impl Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(future.await) }, async {
        glommio::timer::sleep(wait).await;
        None
    })
    .await
}

/// Whether `message` reaches `receiver` within `wait`, sent again and again.
async fn arrives(sender: &Transport, receiver: &Inbound, message: Message, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        sender.send([message.clone()]);
        if let Some(Some(got)) = within(RESEND_EVERY, receiver.recv()).await {
            if got == message {
                return true;
            }
        }
    }
    false
}

#[test]
fn voters_log_in_over_tls_and_exchange_messages() {
    block_on(|| async {
        let pki = pki();
        let listeners: Vec<StdListener> = (0..2)
            .map(|_| StdListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let voters = voters(&listeners);
        let mut nodes = Vec::new();
        for (listener, voter) in listeners.into_iter().zip(&voters) {
            let security = (
                gate(&pki, true),
                login(&pki, SaslMechanism::Plain, PASSWORD),
            );
            nodes.push(start(&voters, voter.id, listener, security));
        }
        assert!(arrives(&nodes[0].0, &nodes[1].1, heartbeat(1, 2, 7), WAIT).await);
        assert!(arrives(&nodes[1].0, &nodes[0].1, heartbeat(2, 1, 8), WAIT).await);
    });
}

#[test]
fn a_wrong_password_or_no_login_delivers_nothing() {
    block_on(|| async {
        let pki = pki();
        let listeners: Vec<StdListener> = (0..2)
            .map(|_| StdListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let voters = voters(&listeners);
        let mut listeners = listeners.into_iter();
        let first = listeners.next().expect("first");
        let second = listeners.next().expect("second");
        let guarded = start(
            &voters,
            1,
            first,
            (gate(&pki, true), LinkSecurity::default()),
        );
        let wrong = (gate(&pki, true), login(&pki, SaslMechanism::Plain, "wrong"));
        let intruder = start(&voters, 2, second, wrong);
        assert!(!arrives(&intruder.0, &guarded.1, heartbeat(2, 1, 9), QUIET).await);

        // A raw Raft frame with no TLS and no login: closed, not delivered.
        let address = voters[0].address();
        let mut raw = glommio::net::TcpStream::connect(address.as_str())
            .await
            .expect("connect");
        let body = wire::encode_frame(
            2,
            0,
            &[wire::encode_message(&heartbeat(2, 1, 10)).expect("encodes")],
        );
        let _ = raw.write_all(&body).await;
        let mut rest = Vec::new();
        let closed = within(WAIT, raw.read_to_end(&mut rest)).await;
        assert!(
            closed.is_some(),
            "the gate keeps a connection without TLS open"
        );
        assert!(within(QUIET, guarded.1.recv()).await.is_none());
    });
}

#[test]
fn scram_is_refused_on_the_controller_listener() {
    block_on(|| async {
        let pki = pki();
        let listener = StdListener::bind("127.0.0.1:0").expect("bind");
        let voters = voters(std::slice::from_ref(&listener));
        let _node = start(
            &voters,
            1,
            listener,
            (gate(&pki, true), LinkSecurity::default()),
        );
        let deadline = Instant::now() + WAIT;
        let scram = login(&pki, SaslMechanism::ScramSha512, PASSWORD);
        let refused = link::connect(&voters[0].address(), deadline, &scram, "test")
            .await
            .err()
            .expect("refused");
        assert!(refused.to_string().contains("not enabled"), "{refused}");
        let plain = login(&pki, SaslMechanism::Plain, PASSWORD);
        let mut stream = link::connect(&voters[0].address(), deadline, &plain, "test")
            .await
            .expect("PLAIN is served");
        // Logged in, it is served: an ApiVersions answers.
        let mut request = BytesMut::new();
        let header = kafka_protocol::messages::RequestHeader::default()
            .with_request_api_key(kafka_protocol::messages::ApiKey::ApiVersions as i16)
            .with_request_api_version(0)
            .with_correlation_id(5);
        header.encode(&mut request, 1).expect("header");
        let mut frame = (request.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&request);
        stream.write_all(&frame).await.expect("write");
        let answer = stream.read_frame(1 << 20).await.expect("an answer");
        assert_eq!(&answer[..4], &5i32.to_be_bytes());
    });
}

/// Sends `body` as a request of `api_key` at `version` and returns the
/// response's body.
async fn call<R: Encodable + kafka_protocol::protocol::HeaderVersion>(
    stream: &mut link::LinkStream,
    api_key: kafka_protocol::messages::ApiKey,
    version: i16,
    body: &R,
) -> bytes::Bytes {
    use kafka_protocol::messages::{RequestHeader, ResponseHeader};
    use kafka_protocol::protocol::Decodable;
    let mut request = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(9)
        .encode(&mut request, R::header_version(version))
        .expect("header");
    body.encode(&mut request, version).expect("body");
    let mut frame = (request.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&request);
    stream.write_all(&frame).await.expect("write");
    let mut answer = stream.read_frame(1 << 20).await.expect("an answer");
    let header = ResponseHeader::decode(&mut answer, api_key.response_header_version(version))
        .expect("response header");
    assert_eq!(header.correlation_id, 9);
    answer
}

#[test]
fn a_login_without_cluster_action_is_refused_what_kafka_refuses() {
    use kafka_protocol::error::ResponseError;
    use kafka_protocol::messages::{
        ApiKey, BrokerHeartbeatRequest, BrokerHeartbeatResponse, DescribeQuorumRequest,
        DescribeQuorumResponse,
    };
    use kafka_protocol::protocol::Decodable;
    block_on(|| async {
        let pki = pki();
        // Voter 2 is never started: its Raft messages would be delivered
        // but for the authorizer.
        let listeners: Vec<StdListener> = (0..2)
            .map(|_| StdListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let voters = voters(&listeners);
        let listener = listeners.into_iter().next().expect("first");
        let gate = gate_for(&pki, true, &["controller", "intruder"]);
        // The controllers' user alone is a super user.
        let service = ControllerService {
            versions: &[(ApiKey::BrokerHeartbeat, 0, 1)],
            authorize: Rc::new(|principal: &str, _, _| principal == "User:controller"),
            ..ControllerService::none()
        };
        let node = start_serving(
            &voters,
            1,
            listener,
            (gate, LinkSecurity::default()),
            service,
        );
        let deadline = Instant::now() + WAIT;
        let address = voters[0].address();
        let intruder = login_as(&pki, SaslMechanism::Plain, "intruder", PASSWORD);
        let mut stream = link::connect(&address, deadline, &intruder, "test")
            .await
            .expect("the login itself is fine");
        let refused = ResponseError::ClusterAuthorizationFailed.code();
        let broker_heartbeat = BrokerHeartbeatRequest::default()
            .with_broker_id(kafka_protocol::messages::BrokerId(2))
            .with_broker_epoch(5);
        let mut answer = call(&mut stream, ApiKey::BrokerHeartbeat, 1, &broker_heartbeat).await;
        let answer = BrokerHeartbeatResponse::decode(&mut answer, 1).expect("heartbeat answer");
        assert_eq!(answer.error_code, refused);
        let describe = DescribeQuorumRequest::default();
        let mut answer = call(&mut stream, ApiKey::DescribeQuorum, 1, &describe).await;
        let answer = DescribeQuorumResponse::decode(&mut answer, 1).expect("describe answer");
        assert_eq!(answer.error_code, refused);
        // The quorum's own messages from it close the connection.
        let body = wire::encode_frame(
            2,
            0,
            &[wire::encode_message(&heartbeat(2, 1, 11)).expect("encodes")],
        );
        let _ = stream.write_all(&body).await;
        assert!(stream.read_frame(1 << 20).await.is_err(), "closed");
        assert!(within(QUIET, node.1.recv()).await.is_none());
        // The controllers' own login is served.
        let controller = login(&pki, SaslMechanism::Plain, PASSWORD);
        let mut stream = link::connect(&address, deadline, &controller, "test")
            .await
            .expect("logged in");
        let mut answer = call(&mut stream, ApiKey::DescribeQuorum, 1, &describe).await;
        let answer = DescribeQuorumResponse::decode(&mut answer, 1).expect("describe answer");
        assert_eq!(answer.error_code, 0);
    });
}
