//! The client side of SASL's mechanisms, as Kafka's `PlainSaslClient` and
//! `ScramSaslClient` run them: PLAIN sends one token
//! (`NUL user NUL password`); SCRAM sends client-first
//! (`n,,n=user,r=cnonce`), answers the server-first with client-final
//! (`c=biws,r=nonce,p=proof`), and checks the server-final's signature,
//! so that a server which does not know the password is not believed.
//!
//! Used by everything shoal connects with: the tools (`client`), the
//! brokers' links to each other and to the controllers. Pure: tokens in,
//! tokens out; the caller carries them in SaslAuthenticate.
//!
//! Invariant: no error, message or `Debug` output holds the password, a
//! token or a key; the server's signature is compared in constant time;
//! a server cannot make the client work without bound (iterations are
//! capped at `ITERATIONS_MAX`).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use subtle::ConstantTimeEq;

use super::scram::{hash, hmac, salted_password, ITERATIONS_MAX, ITERATIONS_MIN};
use super::{random_nonce, SaslError, SaslMechanism};
pub use crate::config::ClientCredentials;

/// What the client does after a server token.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientStep {
    /// Send this token next.
    Send(Vec<u8>),
    /// Authenticated: the server proved itself where the mechanism can.
    Done,
}

/// One exchange's client state.
pub enum ClientExchange {
    /// PLAIN: its one token is sent; the server's (empty) answer ends it.
    Plain,
    Scram(ScramClient),
}

impl ClientExchange {
    /// The exchange for `mechanism` and its first token; SCRAM's nonce
    /// comes from the OS.
    pub fn start(
        mechanism: SaslMechanism,
        credentials: &ClientCredentials,
    ) -> Result<(ClientExchange, Vec<u8>), SaslError> {
        match mechanism {
            SaslMechanism::Plain => Ok((ClientExchange::Plain, plain_token(credentials))),
            scram => {
                let (client, first) = ScramClient::start(scram, credentials, random_nonce()?);
                Ok((ClientExchange::Scram(client), first))
            }
        }
    }

    /// Takes the server's answer to the last token sent.
    pub fn step(&mut self, server_token: &[u8]) -> Result<ClientStep, SaslError> {
        match self {
            ClientExchange::Plain => Ok(ClientStep::Done),
            ClientExchange::Scram(client) => client.step(server_token),
        }
    }
}

/// PLAIN's token: no authorization id, the user, the password.
pub fn plain_token(credentials: &ClientCredentials) -> Vec<u8> {
    let mut token = Vec::with_capacity(2 + credentials.user.len() + credentials.password.len());
    token.push(0);
    token.extend_from_slice(credentials.user.as_bytes());
    token.push(0);
    token.extend_from_slice(credentials.password.as_bytes());
    token
}

enum ScramState {
    /// Client-first sent; waiting for server-first.
    First {
        client_first_bare: String,
    },
    /// Client-final sent; the server signature it must answer with.
    Final {
        server_signature: Vec<u8>,
    },
    Ended,
}

/// One SCRAM exchange on the client.
pub struct ScramClient {
    mechanism: SaslMechanism,
    password: String,
    client_nonce: String,
    state: ScramState,
}

/// The GS2 header of a client without channel binding, and its base64
/// (`c=` of client-final).
const GS2_HEADER: &str = "n,,";
const GS2_HEADER_BASE64: &str = "biws";

impl ScramClient {
    /// The client and its client-first message, with `client_nonce`.
    pub fn start(
        mechanism: SaslMechanism,
        credentials: &ClientCredentials,
        client_nonce: String,
    ) -> (ScramClient, Vec<u8>) {
        let bare = format!("n={},r={client_nonce}", escape(&credentials.user));
        let first = format!("{GS2_HEADER}{bare}").into_bytes();
        let client = ScramClient {
            mechanism,
            password: credentials.password.clone(),
            client_nonce,
            state: ScramState::First {
                client_first_bare: bare,
            },
        };
        (client, first)
    }

    pub fn step(&mut self, token: &[u8]) -> Result<ClientStep, SaslError> {
        let text = std::str::from_utf8(token)
            .map_err(|_| SaslError::Invalid("a SCRAM server message that is not UTF-8".into()))?;
        match std::mem::replace(&mut self.state, ScramState::Ended) {
            ScramState::First { client_first_bare } => {
                let (token, server_signature) = self.client_final(&client_first_bare, text)?;
                self.state = ScramState::Final { server_signature };
                Ok(ClientStep::Send(token))
            }
            ScramState::Final { server_signature } => {
                check_server_final(text, &server_signature)?;
                Ok(ClientStep::Done)
            }
            ScramState::Ended => Err(SaslError::Invalid(
                "a SCRAM server message after the exchange ended".into(),
            )),
        }
    }

    /// Client-final for `server_first`, and the server signature to expect.
    fn client_final(
        &self,
        client_first_bare: &str,
        server_first: &str,
    ) -> Result<(Vec<u8>, Vec<u8>), SaslError> {
        let first = ServerFirst::parse(server_first)?;
        if !first.nonce.starts_with(&self.client_nonce) || first.nonce == self.client_nonce {
            return Err(SaslError::Invalid(
                "Invalid server nonce: does not start with the client nonce".into(),
            ));
        }
        if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&first.iterations) {
            return Err(SaslError::Invalid(format!(
                "Requested iterations {} is outside {ITERATIONS_MIN}..={ITERATIONS_MAX} for {}",
                first.iterations,
                self.mechanism.name()
            )));
        }
        let mechanism = self.mechanism;
        let rounds = u32::try_from(first.iterations).unwrap_or(ITERATIONS_MIN as u32);
        let salted = salted_password(mechanism, self.password.as_bytes(), &first.salt, rounds);
        let without_proof = format!("c={GS2_HEADER_BASE64},r={}", first.nonce);
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_key = hmac(mechanism, &salted, b"Client Key");
        let stored_key = hash(mechanism, &client_key);
        let client_signature = hmac(mechanism, &stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(key, signature)| key ^ signature)
            .collect();
        let server_key = hmac(mechanism, &salted, b"Server Key");
        let server_signature = hmac(mechanism, &server_key, auth_message.as_bytes());
        let token = format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes();
        Ok((token, server_signature))
    }
}

/// Checks server-final (`v=signature`, or `e=error`) against `expected`.
fn check_server_final(text: &str, expected: &[u8]) -> Result<(), SaslError> {
    if let Some(error) = text.strip_prefix("e=") {
        return Err(SaslError::Refused(format!(
            "Authentication failed: the server says {error}"
        )));
    }
    let signature = text
        .split(',')
        .next()
        .and_then(|field| field.strip_prefix("v="))
        .and_then(|value| BASE64.decode(value).ok())
        .ok_or_else(|| SaslError::Invalid("Invalid SCRAM server final message".into()))?;
    if !bool::from(signature.ct_eq(expected)) {
        return Err(SaslError::Invalid(
            "Invalid server signature in the SCRAM server final message".into(),
        ));
    }
    Ok(())
}

/// A parsed server-first message (`r=nonce,s=salt,i=iterations[,ext]`).
struct ServerFirst {
    nonce: String,
    salt: Vec<u8>,
    iterations: i32,
}

impl ServerFirst {
    fn parse(text: &str) -> Result<ServerFirst, SaslError> {
        let invalid = || SaslError::Invalid("Invalid SCRAM server first message format".into());
        if text.starts_with("m=") {
            return Err(SaslError::Invalid(
                "a SCRAM server first message with a mandatory extension".into(),
            ));
        }
        let mut fields = text.split(',');
        let mut field = |prefix: &str| {
            fields
                .next()
                .and_then(|f| f.strip_prefix(prefix))
                .filter(|value| !value.is_empty())
                .ok_or_else(invalid)
        };
        let nonce = field("r=")?.to_string();
        let salt = BASE64.decode(field("s=")?).map_err(|_| invalid())?;
        let iterations = field("i=")?.parse::<i32>().map_err(|_| invalid())?;
        Ok(ServerFirst {
            nonce,
            salt,
            iterations,
        })
    }
}

/// RFC 5802's `saslname` of a user: ',' as `=2C`, '=' as `=3D`.
fn escape(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
