//! The connections this node opens as a client of another node, secured
//! as Kafka secures its inter-broker and controller clients: to the other
//! brokers (the replica fetcher, transaction verifications and markers)
//! on the inter-broker listener (`inter.broker.listener.name` /
//! `security.inter.broker.protocol`, `sasl.mechanism.inter.broker.protocol`),
//! and to the controllers (the channel, the quorum's peers, an observer's
//! fetches) on the CONTROLLER listener (the first of
//! `controller.listener.names`, `sasl.mechanism.controller.protocol`):
//! TLS with that listener's `ssl.*` settings (its keystore doubling as
//! this node's client certificate), then SaslHandshake v1 and
//! SaslAuthenticate with the username and password of the listener's
//! JAAS entry. The node then acts as its own user, so
//! `super.users=User:<broker user>` lets it fetch (CLUSTER_ACTION) and
//! write markers where an authorizer is on.
//!
//! Invariant: every step of a connection is bounded by the caller's
//! deadline; a login takes at most `SASL_ROUNDS_MAX` round trips and
//! reads answers of at most `SASL_FRAME_BYTES_MAX`; a connection is
//! handed out only after its login succeeded.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use kafka_protocol::messages::{
    ApiKey, ResponseHeader, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Request, StrBytes};
use rustls::ClientConfig;

use super::channel::{connect_address, decode, request_frame, within};
use crate::config::{BrokerConfig, ClientSecurity, SaslLogin};
use crate::protocol::frame::{self, SIZE_PREFIX_BYTES};
use crate::security::sasl::client::{ClientExchange, ClientStep};
use crate::security::sasl::SaslError;
use crate::security::tls_client::{client_config, server_name, TlsClientStream};

/// SaslHandshake v1: the tokens then travel in SaslAuthenticate.
const SASL_HANDSHAKE_VERSION: i16 = 1;
/// SaslAuthenticate v1, which every Kafka broker since 2.2 serves (v2 only
/// adds tagged fields).
const SASL_AUTHENTICATE_VERSION: i16 = 1;
/// Round trips of one login: SCRAM takes two, PLAIN one.
const SASL_ROUNDS_MAX: usize = 4;
/// The largest answer read during a login: a SCRAM message is a few
/// hundred bytes; a SaslHandshake answer lists a few mechanism names.
const SASL_FRAME_BYTES_MAX: usize = 64 * 1024;

/// How one kind of connection is secured, its PEM files loaded.
#[derive(Default)]
pub struct LinkSecurity {
    tls: Option<Arc<ClientConfig>>,
    sasl: Option<SaslLogin>,
}

impl std::fmt::Debug for LinkSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSecurity")
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl)
            .finish()
    }
}

impl LinkSecurity {
    /// This broker's settings for connecting to the other brokers.
    pub fn inter_broker(config: &BrokerConfig) -> Result<LinkSecurity, String> {
        LinkSecurity::load(ClientSecurity::inter_broker(config).map_err(|error| error.0)?)
    }

    /// This node's settings for connecting to the controllers.
    pub fn controller(config: &BrokerConfig) -> Result<LinkSecurity, String> {
        LinkSecurity::load(ClientSecurity::controller(config).map_err(|error| error.0)?)
    }

    /// `controller`, or PLAINTEXT when the settings do not load (logged
    /// at debug: `server::serve` refuses to start a node of several whose
    /// settings do not load, and a lone node reaches no other).
    pub fn controller_or_plaintext(config: &BrokerConfig) -> Arc<LinkSecurity> {
        Arc::new(LinkSecurity::controller(config).unwrap_or_else(|error| {
            log::debug!("connections to the controllers in PLAINTEXT: {error}");
            LinkSecurity::default()
        }))
    }

    /// Loads the PEM files `security` names.
    pub fn load(security: ClientSecurity) -> Result<LinkSecurity, String> {
        let tls = match &security.tls {
            Some(settings) => Some(client_config(settings)?),
            None => None,
        };
        Ok(LinkSecurity {
            tls,
            sasl: security.sasl,
        })
    }

    /// Plain TCP without a login.
    pub fn is_plaintext(&self) -> bool {
        self.tls.is_none() && self.sasl.is_none()
    }
}

/// An open connection to another broker, logged in where it must be.
pub enum LinkStream {
    Plain(TcpStream),
    Tls(Box<TlsClientStream>),
}

impl LinkStream {
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            LinkStream::Plain(stream) => stream.write_all(bytes).await,
            LinkStream::Tls(stream) => stream.write_all(bytes).await,
        }
    }

    pub async fn read_exact(&mut self, out: &mut [u8]) -> io::Result<()> {
        match self {
            LinkStream::Plain(stream) => stream.read_exact(out).await,
            LinkStream::Tls(stream) => stream.read_exact(out).await,
        }
    }

    /// The next frame without its size prefix, refused over
    /// `frame_bytes_max` before anything is allocated for it.
    pub async fn read_frame(&mut self, frame_bytes_max: usize) -> io::Result<Bytes> {
        let mut prefix = [0u8; SIZE_PREFIX_BYTES];
        self.read_exact(&mut prefix).await?;
        let size_bytes = frame::frame_size(prefix, frame_bytes_max)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error.to_string()))?;
        let mut frame = vec![0u8; size_bytes];
        self.read_exact(&mut frame).await?;
        Ok(Bytes::from(frame))
    }
}

/// A connection to `address` (`host:port`) secured as `security` says,
/// made and logged in by `deadline`.
pub async fn connect(
    address: &str,
    deadline: Instant,
    security: &LinkSecurity,
    client_id: &str,
) -> io::Result<LinkStream> {
    let socket = connect_address(address, deadline).await?;
    secure(socket, address, deadline, security, client_id).await
}

/// `socket`, connected to `address`, secured as `security` says by
/// `deadline`.
pub async fn secure(
    socket: TcpStream,
    address: &str,
    deadline: Instant,
    security: &LinkSecurity,
    client_id: &str,
) -> io::Result<LinkStream> {
    let mut stream = match &security.tls {
        None => LinkStream::Plain(socket),
        Some(config) => {
            let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
            let name = server_name(host).map_err(io::Error::other)?;
            let tls = within(
                deadline,
                TlsClientStream::connect(config.clone(), name, socket),
            )
            .await
            .map_err(|error| io::Error::new(error.kind(), format!("TLS: {error}")))?;
            LinkStream::Tls(Box::new(tls))
        }
    };
    if let Some(login) = &security.sasl {
        within(deadline, authenticate(&mut stream, login, client_id)).await?;
    }
    Ok(stream)
}

/// SaslHandshake, then SaslAuthenticate until the mechanism is done.
async fn authenticate(
    stream: &mut LinkStream,
    login: &SaslLogin,
    client_id: &str,
) -> io::Result<()> {
    let mechanism = login.mechanism;
    let handshake =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism.name()));
    let answer = call(stream, &handshake, SASL_HANDSHAKE_VERSION, 0, client_id).await?;
    if answer.error_code != 0 {
        let offered: Vec<String> = answer.mechanisms.iter().map(|m| m.to_string()).collect();
        return Err(io::Error::other(format!(
            "SASL mechanism {} is not enabled there (it offers {offered:?})",
            mechanism.name()
        )));
    }
    let (mut exchange, mut token) =
        ClientExchange::start(mechanism, &login.credentials).map_err(sasl_error)?;
    for round in 1..=SASL_ROUNDS_MAX {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
        let answer = call(
            stream,
            &request,
            SASL_AUTHENTICATE_VERSION,
            round as i32,
            client_id,
        )
        .await?;
        if answer.error_code != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "SASL authentication as {} failed: {}",
                    login.credentials.user,
                    answer.error_message.as_deref().unwrap_or_default()
                ),
            ));
        }
        match exchange.step(&answer.auth_bytes).map_err(sasl_error)? {
            ClientStep::Send(next) => token = next,
            ClientStep::Done => return Ok(()),
        }
    }
    Err(io::Error::other(format!(
        "the {} login did not end within {SASL_ROUNDS_MAX} round trips",
        mechanism.name()
    )))
}

/// One request of the login and its answer.
async fn call<R: Request>(
    stream: &mut LinkStream,
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: &str,
) -> io::Result<R::Response> {
    let api_key = ApiKey::try_from(R::KEY)
        .map_err(|()| io::Error::other(format!("unknown api key {}", R::KEY)))?;
    let mut body = BytesMut::new();
    request
        .encode(&mut body, version)
        .map_err(|error| io::Error::other(error.to_string()))?;
    let frame = request_frame(api_key, version, correlation_id, client_id, &body.freeze())?;
    stream.write_all(&frame).await?;
    let mut answer = stream.read_frame(SASL_FRAME_BYTES_MAX).await?;
    let header = decode::<ResponseHeader>(&mut answer, api_key.response_header_version(version))?;
    if header.correlation_id != correlation_id {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "correlation id {} answers request {correlation_id}",
                header.correlation_id
            ),
        ));
    }
    decode::<R::Response>(&mut answer, version)
}

fn sasl_error(error: SaslError) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("SASL authentication failed: {}", error.reason()),
    )
}
