//! The tools' security, as Kafka's clients take it from `--command-config`:
//! a `ClientSecurity` installed once per process (`install`), after which
//! every `Connection::connect` speaks TLS (through `tls_relay`) and logs
//! in with SaslHandshake v1 and SaslAuthenticate (after ApiVersions, as
//! Kafka's `SaslClientAuthenticator` does) where it says so. A process
//! with nothing installed connects in PLAINTEXT.
//!
//! Invariant: installed at most once, before the first connection, and
//! read-only after (a `OnceLock`, no lock on any path); the PEM files are
//! read once, at `install`; a SASL exchange takes at most
//! `SASL_ROUNDS_MAX` round trips whatever the server answers.

use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use rustls::ClientConfig;

use super::{Connection, KafkaError};
use crate::config::{ClientSecurity, SaslLogin};
use crate::security::sasl::client::{ClientExchange, ClientStep};
use crate::security::sasl::SaslError;
use crate::security::tls_client::{client_config, server_name};

/// SaslHandshake version sent: v1 is the one after which the tokens go in
/// SaslAuthenticate requests (v0 sent them as bare frames).
const SASL_HANDSHAKE_VERSION: i16 = 1;
/// Round trips of one SASL exchange: SCRAM takes two, PLAIN one; more
/// means a server that never ends it.
const SASL_ROUNDS_MAX: usize = 4;

/// A `ClientSecurity` with its TLS settings loaded.
pub struct Secured {
    pub security: ClientSecurity,
    tls: Option<Arc<ClientConfig>>,
}

impl Secured {
    /// Loads the PEM files `security` names.
    pub fn load(security: ClientSecurity) -> anyhow::Result<Secured> {
        let tls = match &security.tls {
            Some(settings) => Some(client_config(settings).map_err(|error| anyhow!(error))?),
            None => None,
        };
        Ok(Secured { security, tls })
    }
}

static INSTALLED: OnceLock<Secured> = OnceLock::new();

/// Reads a client properties file (`--command-config`) and makes it the
/// process's security.
pub fn install_file(path: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let security = ClientSecurity::from_properties(&text)
        .map_err(|error| anyhow!("{}: {}", path.display(), error.0))?;
    let secured = Secured::load(security).with_context(|| path.display().to_string())?;
    INSTALLED
        .set(secured)
        .map_err(|_| anyhow!("a client config is already installed"))
}

/// The process's security, if one was installed.
pub fn installed() -> Option<&'static Secured> {
    INSTALLED.get()
}

/// The socket a connection to `host` speaks through: `socket` itself, or
/// the application end of a TLS relay over it.
pub(super) fn wrap(
    socket: TcpStream,
    host: &str,
    secured: Option<&Secured>,
) -> anyhow::Result<super::Socket> {
    match secured.and_then(|secured| secured.tls.clone()) {
        None => Ok(super::Socket::Tcp(socket)),
        Some(config) => {
            let name = server_name(host).map_err(|error| anyhow!(error))?;
            let relay = super::tls_relay::connect(socket, config, name)
                .with_context(|| format!("TLS to {host}"))?;
            Ok(super::Socket::Relay(relay))
        }
    }
}

/// Logs `connection` in with `login`: SaslHandshake, then SaslAuthenticate
/// until the mechanism is done (and, for SCRAM, the server proved it
/// knows the password).
pub(super) fn authenticate(connection: &mut Connection, login: &SaslLogin) -> anyhow::Result<()> {
    let mechanism = login.mechanism;
    let handshake = connection.send_version(
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism.name())),
        SASL_HANDSHAKE_VERSION,
    )?;
    if handshake.error_code != 0 {
        let enabled: Vec<String> = handshake.mechanisms.iter().map(|m| m.to_string()).collect();
        bail!(KafkaError {
            code: handshake.error_code,
            message: format!(
                "{} is not enabled on {}; it offers {enabled:?}",
                mechanism.name(),
                connection.addr()
            ),
        });
    }
    let version = connection.require_version(ApiKey::SaslAuthenticate)?;
    let (mut exchange, mut token) =
        ClientExchange::start(mechanism, &login.credentials).map_err(sasl_error)?;
    for _ in 0..SASL_ROUNDS_MAX {
        let response = connection.send_version(
            SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)),
            version,
        )?;
        if response.error_code != 0 {
            bail!(KafkaError {
                code: response.error_code,
                message: response
                    .error_message
                    .map(|message| message.to_string())
                    .unwrap_or_default(),
            });
        }
        match exchange.step(&response.auth_bytes).map_err(sasl_error)? {
            ClientStep::Send(next) => token = next,
            ClientStep::Done => return Ok(()),
        }
    }
    bail!(
        "{}: the {} exchange did not end within {SASL_ROUNDS_MAX} round trips",
        connection.addr(),
        mechanism.name()
    )
}

fn sasl_error(error: SaslError) -> anyhow::Error {
    anyhow!("SASL authentication failed: {}", error.reason())
}
