//! What the CONTROLLER listener asks of a connection before it serves it,
//! as its protocol in `listener.security.protocol.map` says: a TLS
//! handshake (`SSL`, `SASL_SSL`: the listener's `ssl.*` settings, client
//! certificates checked where `ssl.client.auth` asks), then a SASL/PLAIN
//! login (`SASL_PLAINTEXT`, `SASL_SSL`) in Kafka's order: ApiVersions
//! (answered with the controller's APIs and the two SASL ones), then
//! SaslHandshake v1, then SaslAuthenticate. PLAIN is the one mechanism
//! served here: SCRAM credentials live in the metadata log, which the
//! controllers must reach each other to read (Kafka has the same rule).
//!
//! Invariant: nothing but ApiVersions, SaslHandshake and SaslAuthenticate
//! is read before the login succeeded, at most `LOGIN_FRAMES_MAX` of them,
//! each bounded by `sasl.server.max.receive.size`; a refusal is answered
//! with Kafka's error code and closes the connection; no log line or
//! error holds a password.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};

use bytes::Bytes;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, RequestHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::channel::decode;
use super::describe;
use crate::config::{BrokerConfig, SaslMechanism};
use crate::protocol::frame::{self, SIZE_PREFIX_BYTES};
use crate::security::principal::KafkaPrincipal;
use crate::security::sasl::{Authenticator, Credentials, SaslError, Step};
use crate::security::tls::{TlsAcceptor, TlsReader, TlsWriter, HANDSHAKE_TIMEOUT_MAX};

/// Requests a connection may send before its login ends: ApiVersions,
/// SaslHandshake, and a few SaslAuthenticate rounds (PLAIN takes one).
const LOGIN_FRAMES_MAX: usize = 6;
/// The SASL APIs, advertised beside the controller's before a login.
const SASL_APIS: [(ApiKey, i16, i16); 2] = [
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
];

/// The listener's settings, loaded once at start.
#[derive(Default)]
pub struct ControllerGate {
    tls: Option<TlsAcceptor>,
    sasl: Option<GateSasl>,
}

struct GateSasl {
    mechanisms: Vec<SaslMechanism>,
    plain_users: BTreeMap<String, String>,
    max_receive_bytes: usize,
}

impl std::fmt::Debug for ControllerGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerGate")
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl.as_ref().map(|sasl| &sasl.mechanisms))
            .finish()
    }
}

impl ControllerGate {
    /// The CONTROLLER listener's gate from the node's settings; none (an
    /// open gate) without a controller listener or on PLAINTEXT.
    pub fn of(config: &BrokerConfig) -> Result<ControllerGate, String> {
        let Some(listener) = config.cluster.controller_listener() else {
            return Ok(ControllerGate::default());
        };
        let name = listener.name.as_str();
        let protocols = config.cluster.effective_security_protocol_map();
        let protocol = protocols.get(name).map_or("PLAINTEXT", String::as_str);
        let tls = if protocol.ends_with("SSL") {
            let settings = config.security.ssl(name).map_err(|error| error.0)?;
            Some(TlsAcceptor::new(&settings).map_err(|error| format!("listener {name}: {error}"))?)
        } else {
            None
        };
        let sasl = protocol.starts_with("SASL_").then(|| GateSasl {
            mechanisms: config.sasl.mechanisms_of(name).to_vec(),
            plain_users: config.sasl.plain_users(name),
            max_receive_bytes: config.sasl.server_max_receive_size,
        });
        Ok(ControllerGate { tls, sasl })
    }

    /// A gate over `tls` and a PLAIN login with `plain_users` (tests).
    pub fn new(tls: Option<TlsAcceptor>, plain_users: Option<BTreeMap<String, String>>) -> Self {
        ControllerGate {
            tls,
            sasl: plain_users.map(|plain_users| GateSasl {
                mechanisms: vec![SaslMechanism::Plain],
                plain_users,
                max_receive_bytes: crate::config::SASL_SERVER_MAX_RECEIVE_SIZE_DEFAULT,
            }),
        }
    }

    /// Runs what the listener asks of `stream` (whose read timeout bounds
    /// the login); the stream to serve and who logged in.
    /// `controller_apis` are the APIs ApiVersions lists beside the SASL ones.
    pub async fn admit(
        &self,
        stream: TcpStream,
        controller_apis: &[(ApiKey, i16, i16)],
    ) -> Result<(InboundStream, KafkaPrincipal), String> {
        let (mut stream, principal) = match &self.tls {
            None => (InboundStream::Plain(stream), KafkaPrincipal::anonymous()),
            Some(acceptor) => {
                let writer = duplicate(&stream).map_err(|error| error.to_string())?;
                let (reader, writer, principal) = acceptor
                    .accept(stream, writer, HANDSHAKE_TIMEOUT_MAX)
                    .await
                    .map_err(|error| error.to_string())?;
                (InboundStream::Tls(Box::new((reader, writer))), principal)
            }
        };
        match &self.sasl {
            None => Ok((stream, principal)),
            Some(sasl) => {
                let user = sasl.login(&mut stream, controller_apis).await?;
                Ok((stream, KafkaPrincipal::user(&user)))
            }
        }
    }
}

impl GateSasl {
    /// The login's frames until it succeeds (the user) or is refused.
    async fn login(
        &self,
        stream: &mut InboundStream,
        controller_apis: &[(ApiKey, i16, i16)],
    ) -> Result<String, String> {
        let mut chosen: Option<(SaslMechanism, Authenticator)> = None;
        for _ in 0..LOGIN_FRAMES_MAX {
            let frame = stream.read_frame(self.max_receive_bytes).await?;
            let (header, mut body) =
                frame::parse_request_header(&frame).map_err(|error| error.to_string())?;
            let version = header.request_api_version;
            let api_key = ApiKey::try_from(header.request_api_key)
                .map_err(|()| "an unknown request during SASL authentication".to_string())?;
            match api_key {
                ApiKey::ApiVersions if chosen.is_none() => {
                    let mut apis = controller_apis.to_vec();
                    apis.extend(SASL_APIS);
                    let answer = describe::api_versions(version, &apis);
                    let served = describe::served_versions(api_key)
                        .is_some_and(|(min, max)| min <= version && version <= max);
                    answer_with(stream, &header, if served { version } else { 0 }, &answer).await?;
                }
                ApiKey::SaslHandshake if chosen.is_none() && version == 1 => {
                    let request: SaslHandshakeRequest =
                        decode(&mut body, version).map_err(|error| error.to_string())?;
                    let offered = self.offered();
                    let mut answer = SaslHandshakeResponse::default();
                    answer.mechanisms = offered
                        .iter()
                        .map(|m| StrBytes::from_static_str(m.name()))
                        .collect();
                    let asked = SaslMechanism::from_name(request.mechanism.as_str())
                        .filter(|mechanism| offered.contains(mechanism));
                    let Some(mechanism) = asked else {
                        answer.error_code = ResponseError::UnsupportedSaslMechanism.code();
                        answer_with(stream, &header, version, &answer).await?;
                        return Err(format!(
                            "SASL mechanism {} is not enabled",
                            request.mechanism.as_str()
                        ));
                    };
                    answer_with(stream, &header, version, &answer).await?;
                    let authenticator = Authenticator::new(mechanism).map_err(message)?;
                    chosen = Some((mechanism, authenticator));
                }
                ApiKey::SaslAuthenticate if chosen.is_some() => {
                    let request: SaslAuthenticateRequest =
                        decode(&mut body, version).map_err(|error| error.to_string())?;
                    let Some((mechanism, authenticator)) = chosen.as_mut() else {
                        return Err("no mechanism chosen".to_string());
                    };
                    let credentials = Credentials {
                        plain_users: &self.plain_users,
                        scram: &|_, _| None,
                        oauth: None,
                    };
                    let mut answer = SaslAuthenticateResponse::default();
                    match authenticator.step(&request.auth_bytes, &credentials) {
                        Ok(Step::Continue(token)) => {
                            answer.auth_bytes = Bytes::from(token);
                            answer_with(stream, &header, version, &answer).await?;
                        }
                        Ok(Step::Done { user, token }) => {
                            answer.auth_bytes = Bytes::from(token);
                            answer_with(stream, &header, version, &answer).await?;
                            return Ok(user);
                        }
                        Err(error) => {
                            answer.error_code = ResponseError::SaslAuthenticationFailed.code();
                            answer.error_message =
                                Some(StrBytes::from_string(error.client_message(*mechanism)));
                            answer_with(stream, &header, version, &answer).await?;
                            return Err(format!("authentication failed: {}", message(error)));
                        }
                    }
                }
                other => {
                    return Err(format!(
                        "unexpected {other:?} v{version} during SASL authentication"
                    ))
                }
            }
        }
        Err(format!("no login within {LOGIN_FRAMES_MAX} requests"))
    }

    /// The enabled mechanisms the gate serves: PLAIN.
    fn offered(&self) -> Vec<SaslMechanism> {
        self.mechanisms
            .iter()
            .copied()
            .filter(|mechanism| *mechanism == SaslMechanism::Plain)
            .collect()
    }
}

fn message(error: SaslError) -> String {
    error.reason().to_string()
}

async fn answer_with<R: Encodable>(
    stream: &mut InboundStream,
    header: &RequestHeader,
    version: i16,
    body: &R,
) -> Result<(), String> {
    let answer = frame::encode_response(header, version, body)?;
    stream
        .write_all(&answer)
        .await
        .map_err(|error| error.to_string())
}

/// A second descriptor of `stream`'s socket: the TLS writer's.
fn duplicate(stream: &TcpStream) -> io::Result<TcpStream> {
    // SAFETY: dup of a descriptor `stream` owns and keeps open for the call.
    let duplicate = unsafe { libc::dup(stream.as_raw_fd()) };
    if duplicate < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `duplicate` is a fresh descriptor of a connected TCP socket,
    // owned by nothing else; the returned TcpStream closes it.
    Ok(unsafe { TcpStream::from_raw_fd(duplicate) })
}

/// An admitted connection on the CONTROLLER listener.
pub enum InboundStream {
    Plain(TcpStream),
    Tls(Box<(TlsReader, TlsWriter)>),
}

impl InboundStream {
    /// Reads what is there into `out`; 0 when the peer closed.
    pub async fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match self {
            InboundStream::Plain(stream) => stream.read(out).await,
            InboundStream::Tls(halves) => halves.0.read(out).await,
        }
    }

    /// Writes all of `bytes` and sends them.
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            InboundStream::Plain(stream) => stream.write_all(bytes).await,
            InboundStream::Tls(halves) => {
                halves.1.write_all(bytes).await?;
                halves.1.flush().await
            }
        }
    }

    /// One login frame without its size prefix, refused over
    /// `frame_bytes_max` before anything is allocated for it.
    async fn read_frame(&mut self, frame_bytes_max: usize) -> Result<Bytes, String> {
        let mut prefix = [0u8; SIZE_PREFIX_BYTES];
        self.fill(&mut prefix).await?;
        let size_bytes =
            frame::frame_size(prefix, frame_bytes_max).map_err(|error| error.to_string())?;
        let mut frame = vec![0u8; size_bytes];
        self.fill(&mut frame).await?;
        Ok(Bytes::from(frame))
    }

    async fn fill(&mut self, out: &mut [u8]) -> Result<(), String> {
        let mut filled = 0;
        while filled < out.len() {
            match self.read(&mut out[filled..]).await {
                Ok(0) => return Err("closed during the SASL login".to_string()),
                Ok(read) => filled += read,
                Err(error) => return Err(error.to_string()),
            }
        }
        Ok(())
    }
}
