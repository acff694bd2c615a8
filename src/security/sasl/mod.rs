//! The server side of SASL's mechanisms: PLAIN (RFC 4616),
//! SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677) and OAUTHBEARER
//! (RFC 7628, `oauthbearer`). An `Authenticator`
//! takes the client's tokens one at a time and answers each with the
//! server's token, until the client is authenticated as a user or
//! refused.
//!
//! Errors come in Kafka's two kinds: `Refused` carries a message the
//! client sees as is (Kafka's `SaslAuthenticationException`: "Authentication
//! failed: Invalid username or password"), `Invalid` a reason for the
//! broker's log only, the client seeing Kafka's generic message (its
//! `SaslException`, which may not say whether a user exists), and `Token`
//! both: OAUTHBEARER's JSON status for the client, its reason for the log.
//!
//! Invariant: no error, message or `Debug` output holds a password, a
//! token or a key; secrets are compared in constant time.

pub mod client;
pub mod oauthbearer;
mod oauthbearer_unsecured;
mod plain;
pub mod scram;

use std::collections::BTreeMap;

pub use crate::config::SaslMechanism;
pub use oauthbearer::{BearerToken, TokenFailure, Validator};
pub use oauthbearer_unsecured::validate as validate_unsecured;
pub use scram::ScramCredential;

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslError {
    /// Shown to the client as is.
    Refused(String),
    /// For the log; the client sees `generic_failure`.
    Invalid(String),
    /// A refused bearer token: `answer` for the client, `reason` for the log.
    Token { answer: String, reason: String },
}

impl SaslError {
    /// What the client is told, Kafka's words.
    pub fn client_message(&self, mechanism: SaslMechanism) -> String {
        match self {
            SaslError::Refused(message) => message.clone(),
            SaslError::Invalid(_) => generic_failure(mechanism),
            SaslError::Token { answer, .. } => answer.clone(),
        }
    }

    /// What the broker's log says of it.
    pub fn reason(&self) -> &str {
        match self {
            SaslError::Refused(reason)
            | SaslError::Invalid(reason)
            | SaslError::Token { reason, .. } => reason,
        }
    }
}

/// Kafka's message for a `SaslException`: nothing of why.
pub fn generic_failure(mechanism: SaslMechanism) -> String {
    format!(
        "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
        mechanism.name()
    )
}

/// What one client token led to.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// More is expected: the server's token for the client.
    Continue(Vec<u8>),
    /// The client is `user`; `token` is the server's last one (empty for PLAIN).
    Done { user: String, token: Vec<u8> },
}

/// Where the credentials come from: the listener's PLAIN users (its JAAS
/// entry), the cluster's SCRAM credentials (the metadata image), and the
/// listener's OAUTHBEARER validator (at the time of the exchange).
pub struct Credentials<'a> {
    pub plain_users: &'a BTreeMap<String, String>,
    pub scram: &'a dyn Fn(SaslMechanism, &str) -> Option<ScramCredential>,
    pub oauth: Option<Validator<'a>>,
}

impl Credentials<'_> {
    fn plain_password(&self, user: &str) -> Option<&str> {
        self.plain_users.get(user).map(String::as_str)
    }

    fn scram(&self, mechanism: SaslMechanism, user: &str) -> Option<ScramCredential> {
        (self.scram)(mechanism, user)
    }
}

/// One exchange's server state.
pub enum Authenticator {
    Plain,
    Scram(scram::ScramServer),
    OAuthBearer(oauthbearer::OAuthBearerServer),
}

impl Authenticator {
    /// The server for `mechanism`; SCRAM's nonce comes from the OS.
    pub fn new(mechanism: SaslMechanism) -> Result<Authenticator, SaslError> {
        Ok(match mechanism {
            SaslMechanism::Plain => Authenticator::Plain,
            SaslMechanism::OAuthBearer => Authenticator::OAuthBearer(Default::default()),
            _ => Authenticator::Scram(scram::ScramServer::new(mechanism, random_nonce()?)),
        })
    }

    /// Takes the client's next token.
    pub fn step(&mut self, token: &[u8], credentials: &Credentials<'_>) -> Result<Step, SaslError> {
        match self {
            Authenticator::Plain => plain::authenticate(token, credentials),
            Authenticator::Scram(server) => server.step(token, credentials),
            Authenticator::OAuthBearer(server) => server.step(token, credentials),
        }
    }

    /// When the credential the client authenticated with expires (ms
    /// since the epoch): a bearer token's `exp`; passwords do not.
    pub fn credential_expires_ms(&self) -> Option<i64> {
        match self {
            Authenticator::OAuthBearer(server) => server.expires_ms(),
            _ => None,
        }
    }
}

/// Random bytes of a SCRAM server nonce: 144 bits, more than Kafka's 130.
const NONCE_BYTES: usize = 18;

/// A fresh server nonce from the OS, printable and free of ',' (RFC 5802).
fn random_nonce() -> Result<String, SaslError> {
    use base64::Engine;
    let mut bytes = [0u8; NONCE_BYTES];
    getrandom::getrandom(&mut bytes)
        .map_err(|error| SaslError::Invalid(format!("no random nonce: {error}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}
