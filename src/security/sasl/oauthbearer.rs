//! SASL/OAUTHBEARER (RFC 7628) as Kafka's `OAuthBearerSaslServer` serves
//! it (KIP-255): the client's first message `n,[a=<authzid>],\x01auth=Bearer
//! <token>\x01[<key>=<value>\x01...]\x01` carries a token, which a validator
//! checks (`unsecured` here, Kafka's `OAuthBearerUnsecuredValidatorCallbackHandler`,
//! or `jwks`, its `OAuthBearerValidatorCallbackHandler`). A refused token is
//! answered, as RFC 7628 §3.2.2 says, with a JSON status as the server's
//! challenge (`{"status":"invalid_token"}`); the client's `\x01` then ends
//! the exchange with that status as Kafka's SASL_AUTHENTICATION_FAILED
//! message. A valid token authenticates its principal until its `exp`,
//! which bounds the session (KIP-368).
//!
//! Invariant: pure (the time is an argument); no error or log reason holds
//! the token; extensions are checked for form and otherwise ignored, as
//! both of Kafka's validators accept them all.

use super::{Credentials, SaslError, Step};

/// RFC 7628's separator of the client's key-value pairs, `%x01`.
const SEPARATOR: char = '\u{1}';
/// The client's answer to a refusal: `%x01` alone.
const CONTROL_A: &[u8] = &[0x01];
/// The key of the token in the first message.
const AUTH_KEY: &str = "auth";

/// What a validator made of a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerToken {
    /// The principal's name (the `sub` claim, or the configured one).
    pub principal: String,
    /// The token's `exp`, in ms since the epoch: the session ends there.
    pub expires_ms: i64,
}

/// Why a validator refused a token: RFC 7628's status for the client,
/// the reason for the broker's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFailure {
    /// `invalid_token`, or `insufficient_scope` with the `scope` wanted.
    pub status: &'static str,
    pub scope: Option<String>,
    pub reason: String,
}

impl TokenFailure {
    pub fn invalid(reason: String) -> TokenFailure {
        TokenFailure {
            status: "invalid_token",
            scope: None,
            reason,
        }
    }

    /// Kafka's JSON error (`OAuthBearerSaslServer.jsonErrorResponse`).
    pub fn json(&self) -> String {
        match &self.scope {
            Some(scope) => format!(r#"{{"status":"{}", "scope":"{scope}"}}"#, self.status),
            None => format!(r#"{{"status":"{}"}}"#, self.status),
        }
    }
}

/// A validator: the token's text to a principal and an expiry, or a failure.
pub type Validator<'a> = &'a dyn Fn(&str) -> Result<BearerToken, TokenFailure>;

/// The parts of a client's first message that matter to the server.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientFirst<'a> {
    pub authzid: &'a str,
    pub token: &'a str,
}

fn malformed(why: &str) -> SaslError {
    match why {
        "" => SaslError::Invalid("Invalid OAUTHBEARER client first message".to_string()),
        why => SaslError::Invalid(format!("Invalid OAUTHBEARER client first message: {why}")),
    }
}

/// Parses the client's first message as Kafka's
/// `OAuthBearerClientInitialResponse` does.
pub fn client_first(message: &[u8]) -> Result<ClientFirst<'_>, SaslError> {
    let text = std::str::from_utf8(message).map_err(|_| malformed(""))?;
    let rest = text.strip_prefix("n,").ok_or_else(|| malformed(""))?;
    let (authzid, rest) = rest.split_once(',').ok_or_else(|| malformed(""))?;
    let authzid = match authzid {
        "" => "",
        given => given
            .strip_prefix("a=")
            .filter(|name| !name.is_empty() && !name.contains('\u{0}'))
            .ok_or_else(|| malformed(""))?,
    };
    let pairs = rest
        .strip_prefix(SEPARATOR)
        .and_then(|pairs| pairs.strip_suffix(SEPARATOR))
        .ok_or_else(|| malformed(""))?;
    let mut auth = None;
    for pair in pairs.split_terminator(SEPARATOR) {
        let (key, value) = pair.split_once('=').ok_or_else(|| malformed(""))?;
        let key_ok = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphabetic());
        let value_ok = !value.is_empty()
            && value
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) || b" \t\r\n".contains(&b));
        if !key_ok || !value_ok {
            return Err(malformed(""));
        }
        if key == AUTH_KEY {
            auth = Some(value);
        }
    }
    if !pairs.is_empty() && !pairs.ends_with(SEPARATOR) {
        return Err(malformed(""));
    }
    let auth = auth.ok_or_else(|| malformed("'auth' not specified"))?;
    Ok(ClientFirst {
        authzid,
        token: bearer(auth)?,
    })
}

/// The token of `Bearer <token>` (Kafka's `AUTH_PATTERN`: a scheme of
/// word characters, spaces, then the token's base64url and `.` characters).
fn bearer(auth: &str) -> Result<&str, SaslError> {
    let (scheme, token) = auth
        .split_once(' ')
        .ok_or_else(|| malformed("invalid 'auth' format"))?;
    let token = token.trim_start_matches(' ');
    let body = token.trim_end_matches('=');
    let scheme_ok = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let token_ok = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_~+/.".contains(&b));
    if !scheme_ok || !token_ok {
        return Err(malformed("invalid 'auth' format"));
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(SaslError::Invalid(
            "Invalid scheme in OAUTHBEARER client first message".to_string(),
        ));
    }
    Ok(token)
}

/// One OAUTHBEARER exchange's server state.
#[derive(Default)]
pub struct OAuthBearerServer {
    /// The refusal sent as a challenge, awaiting the client's `%x01`.
    refused: Option<TokenFailure>,
    /// The authenticated token's expiry.
    expires_ms: Option<i64>,
}

impl OAuthBearerServer {
    pub fn step(
        &mut self,
        message: &[u8],
        credentials: &Credentials<'_>,
    ) -> Result<Step, SaslError> {
        if message == CONTROL_A {
            if let Some(failure) = self.refused.take() {
                return Err(SaslError::Token {
                    answer: failure.json(),
                    reason: failure.reason,
                });
            }
        }
        self.refused = None;
        let first = client_first(message)?;
        let validate = credentials
            .oauth
            .ok_or_else(|| SaslError::Invalid("no OAUTHBEARER validator".to_string()))?;
        match validate(first.token) {
            Ok(token) => {
                if !first.authzid.is_empty() && first.authzid != token.principal {
                    return Err(SaslError::Refused(format!(
                        "Authentication failed: Client requested an authorization id ({}) that is different from the token's principal name ({})",
                        first.authzid, token.principal
                    )));
                }
                self.expires_ms = Some(token.expires_ms);
                Ok(Step::Done {
                    user: token.principal,
                    token: Vec::new(),
                })
            }
            Err(failure) => {
                let challenge = failure.json().into_bytes();
                self.refused = Some(failure);
                Ok(Step::Continue(challenge))
            }
        }
    }

    /// When the authenticated token expires (ms since the epoch).
    pub fn expires_ms(&self) -> Option<i64> {
        self.expires_ms
    }
}

#[cfg(test)]
#[path = "oauthbearer_tests.rs"]
mod tests;
