//! The SASL gate of a connection on a SASL listener, in the order of
//! Kafka's `SaslServerAuthenticator`: first ApiVersions or SaslHandshake;
//! after an ApiVersions, SaslHandshake only; once a mechanism is chosen,
//! its tokens: in SaslAuthenticate requests after a SaslHandshake v1, or
//! bare size-prefixed tokens after a v0 (the framing of old clients). Any
//! other request before the client is authenticated closes the
//! connection, as Kafka's does (a SaslHandshake where a token is expected
//! is answered ILLEGAL_SASL_STATE first). A refused mechanism is answered
//! UNSUPPORTED_SASL_MECHANISM with the enabled list, a failed exchange
//! SASL_AUTHENTICATION_FAILED with Kafka's message, and either closes.
//!
//! The connection hands this gate one frame at a time, waiting for each
//! answer, until the session is authenticated: no request runs beside an
//! exchange, and a frame is bounded by `sasl.server.max.receive.size`.
//!
//! Re-authentication (KIP-368): a session has a lifetime when
//! `connections.max.reauth.ms` is set for its listener and mechanism or
//! its credential expires (a bearer token's `exp`): the smaller of the
//! two, answered in SaslAuthenticate v1+ as `session_lifetime_ms`. Such a
//! session may start over with a SaslHandshake at any time (requests
//! already in flight finish; the exchange then goes through this gate
//! again) with the same mechanism and ending with the same principal, or
//! it is refused as Kafka refuses it; a request other than that
//! SaslHandshake after the lifetime closes the connection (`after_authentication`).
//!
//! Invariant: the principal is set only by a completed exchange, and a
//! re-authentication never changes it; a log line says why an exchange
//! failed (rate-limited) and never holds a token.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, RequestHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};

use super::{api_versions, dispatch, encode, str_bytes, Response};
use crate::config::{BrokerConfig, OAuthValidatorConfig};
use crate::protocol::frame::{self, Request};
use crate::security::jwks;
use crate::security::principal::KafkaPrincipal;
use crate::security::sasl::{
    validate_unsecured, Authenticator, BearerToken, Credentials, SaslError, SaslMechanism, Step,
    TokenFailure, Validator,
};
use crate::security::SecurityProtocol;
use crate::server::connection::ConnectionContext;
use crate::server::limits::LogLimiter;

/// What a SASL listener accepts, from the broker's config.
pub struct SaslListener {
    pub name: String,
    pub mechanisms: Vec<SaslMechanism>,
    plain_users: BTreeMap<String, String>,
    /// `sasl.server.max.receive.size`: the frame bound until authenticated.
    pub max_receive_bytes: usize,
    /// How OAUTHBEARER tokens are checked, when the listener enables it.
    oauth: Option<OAuthValidatorConfig>,
}

impl SaslListener {
    /// The SASL settings of the client listener `name`, which speaks
    /// `protocol`, if that is SASL_PLAINTEXT or SASL_SSL.
    pub fn of(
        config: &BrokerConfig,
        name: &str,
        protocol: SecurityProtocol,
    ) -> Option<SaslListener> {
        if !protocol.uses_sasl() {
            return None;
        }
        let name = name.to_string();
        Some(SaslListener {
            mechanisms: config.sasl.mechanisms_of(&name).to_vec(),
            plain_users: config.sasl.plain_users(&name),
            max_receive_bytes: config.sasl.server_max_receive_size,
            oauth: config.sasl.oauth_validator(&name),
            name,
        })
    }
}

enum State {
    HandshakeOrVersions,
    Handshake,
    Authenticate {
        mechanism: SaslMechanism,
        authenticator: Box<Authenticator>,
        /// After a SaslHandshake v0: bare tokens, no request headers.
        raw_tokens: bool,
    },
    /// A re-authentication asked for another mechanism than the
    /// session's: the next token is refused with this message (Kafka's
    /// REAUTH_BAD_MECHANISM).
    BadMechanism(String),
    /// Refused, or authenticated: the gate takes no more frames.
    Ended,
}

/// One connection's SASL state.
pub struct SaslSession {
    pub listener: SaslListener,
    state: RefCell<State>,
    authenticated: Cell<bool>,
    /// The mechanism of the last completed exchange.
    mechanism: Cell<Option<SaslMechanism>>,
    /// When the session's lifetime ends, if it has one.
    expires_at: Cell<Option<Instant>>,
    /// A re-authentication is under way.
    reauthenticating: Cell<bool>,
    /// When the last re-authentication began.
    reauthenticated_at: Cell<Option<Instant>>,
}

/// Kafka's `MIN_REAUTH_INTERVAL_ONE_SECOND_NANOS`: a SaslHandshake sooner
/// than this after the last re-authentication began is served as on a
/// session without a lifetime (ILLEGAL_SASL_STATE), so that a client
/// cannot keep the broker authenticating.
const REAUTH_INTERVAL_MIN: Duration = Duration::from_secs(1);

/// What an authenticated session makes of a frame (`after_authentication`).
#[derive(Debug, PartialEq, Eq)]
pub enum Authenticated {
    /// A request to serve.
    Serve,
    /// A SaslHandshake that starts a re-authentication: to the gate.
    Reauthenticate,
    /// The session's lifetime is over: close (Kafka's expired channel).
    Expired,
}

/// A session's lifetime in ms as Kafka computes it (`SaslServerAuthenticator`'s
/// `calcCompletionTimesAndReturnSessionLifetimeMs`): the least of
/// `max_reauth_ms` (when positive) and the credential's remaining time;
/// None when neither bounds it.
pub fn session_lifetime_ms(
    now_ms: i64,
    credential_expires_ms: Option<i64>,
    max_reauth_ms: i64,
) -> Option<i64> {
    let max_reauth = (max_reauth_ms > 0).then_some(max_reauth_ms);
    let remaining = credential_expires_ms.map(|expires| expires.saturating_sub(now_ms));
    let lifetime = match (remaining, max_reauth) {
        (None, None) => return None,
        (Some(remaining), Some(max)) => remaining.min(max),
        (Some(lifetime), None) | (None, Some(lifetime)) => lifetime,
    };
    Some(lifetime.max(0))
}

/// What the connection does after a frame the gate took.
pub struct Gate {
    /// The answer to send, if any.
    pub answer: Option<Response>,
    /// Close once it is sent.
    pub close: bool,
}

impl Gate {
    fn answer(answer: Response) -> Gate {
        Gate {
            answer: Some(answer),
            close: false,
        }
    }

    fn last(answer: Option<Response>) -> Gate {
        Gate {
            answer,
            close: true,
        }
    }
}

impl SaslSession {
    pub fn new(listener: SaslListener) -> SaslSession {
        SaslSession {
            listener,
            state: RefCell::new(State::HandshakeOrVersions),
            authenticated: Cell::new(false),
            mechanism: Cell::new(None),
            expires_at: Cell::new(None),
            reauthenticating: Cell::new(false),
            reauthenticated_at: Cell::new(None),
        }
    }

    /// What to do with `frame` on this authenticated session: a
    /// SaslHandshake on a session with a lifetime starts over (the gate
    /// takes it); any other frame after the lifetime closes.
    pub fn after_authentication(&self, frame: &[u8], now: Instant) -> Authenticated {
        debug_assert!(self.authenticated());
        let Some(expires_at) = self.expires_at.get() else {
            return Authenticated::Serve;
        };
        let api_key = frame
            .get(..2)
            .map(|key| i16::from_be_bytes([key[0], key[1]]));
        let too_soon = self
            .reauthenticated_at
            .get()
            .is_some_and(|began| now.saturating_duration_since(began) < REAUTH_INTERVAL_MIN);
        if api_key == Some(ApiKey::SaslHandshake as i16) && !too_soon {
            self.reauthenticated_at.set(Some(now));
            *self.state.borrow_mut() = State::Handshake;
            self.authenticated.set(false);
            self.reauthenticating.set(true);
            return Authenticated::Reauthenticate;
        }
        match now > expires_at {
            true => Authenticated::Expired,
            false => Authenticated::Serve,
        }
    }

    pub fn authenticated(&self) -> bool {
        self.authenticated.get()
    }

    fn raw_tokens(&self) -> bool {
        matches!(
            *self.state.borrow(),
            State::Authenticate {
                raw_tokens: true,
                ..
            }
        )
    }
}

/// Takes one frame of a connection not yet authenticated (see the module doc).
pub async fn gate(
    context: &ConnectionContext,
    session: &SaslSession,
    frame: Bytes,
    log: &LogLimiter,
) -> Gate {
    let refuse = |why: String| {
        if log.allow() {
            log::info!(
                "closing connection from {:?} on SASL listener {}: {why}",
                context.peer,
                session.listener.name
            );
        }
        *session.state.borrow_mut() = State::Ended;
        Gate::last(None)
    };
    if session.raw_tokens() {
        return raw_token(context, session, &frame, log);
    }
    if let Some(fallback) = api_versions::unsupported_version_fallback(&frame, true) {
        return Gate::answer(Response::Frame(fallback));
    }
    let (header, mut body) = match frame::parse_request_header(&frame) {
        Ok(parsed) => parsed,
        Err(error) => return refuse(format!("{error} during SASL authentication")),
    };
    let Ok(api_key) = ApiKey::try_from(header.request_api_key) else {
        return refuse("an unknown request during SASL authentication".into());
    };
    let phase = match *session.state.borrow() {
        State::HandshakeOrVersions => 0,
        State::Handshake => 1,
        State::Authenticate { .. } | State::BadMechanism(_) => 2,
        State::Ended => 3,
    };
    let request = match (phase, api_key) {
        (0, ApiKey::ApiVersions) => {
            *session.state.borrow_mut() = State::Handshake;
            return match dispatch(context, frame).await {
                Ok(answer) => Gate::answer(answer),
                Err(error) => refuse(error.to_string()),
            };
        }
        (0 | 1, ApiKey::SaslHandshake) | (2, ApiKey::SaslAuthenticate | ApiKey::SaslHandshake) => {
            match frame::decode_request(api_key, header.request_api_version, &mut body) {
                Ok(request) => request,
                Err(error) => return refuse(error.to_string()),
            }
        }
        (_, other) => {
            return refuse(format!(
                "unexpected Kafka request of type {other:?} during SASL authentication"
            ))
        }
    };
    match request {
        Request::SaslHandshake(request) if phase < 2 => {
            handshake(context, session, &header, request, log)
        }
        Request::SaslHandshake(_) => {
            *session.state.borrow_mut() = State::Ended;
            let answer = illegal_handshake();
            Gate::last(encode(&header, &answer).ok())
        }
        Request::SaslAuthenticate(request) => authenticate(context, session, &header, request, log),
        _ => refuse("a request out of order during SASL authentication".into()),
    }
}

fn handshake(
    context: &ConnectionContext,
    session: &SaslSession,
    header: &RequestHeader,
    request: SaslHandshakeRequest,
    log: &LogLimiter,
) -> Gate {
    let enabled = &session.listener.mechanisms;
    let mut answer = SaslHandshakeResponse::default();
    answer.mechanisms = enabled.iter().map(|m| str_bytes(m.name())).collect();
    let chosen = SaslMechanism::from_name(request.mechanism.as_str())
        .filter(|mechanism| enabled.contains(mechanism));
    let authenticator = chosen.map(|mechanism| (mechanism, Authenticator::new(mechanism)));
    let previous = session.mechanism.get();
    match authenticator {
        Some((mechanism, Ok(_)))
            if session.reauthenticating.get() && previous != Some(mechanism) =>
        {
            *session.state.borrow_mut() = State::BadMechanism(format!(
                "SASL mechanism '{}' requested by client is not supported for re-authentication of mechanism '{}'",
                mechanism.name(),
                previous.map_or("?", SaslMechanism::name)
            ));
            match encode(header, &answer) {
                Ok(frame) => Gate::answer(frame),
                Err(_) => Gate::last(None),
            }
        }
        Some((mechanism, Ok(authenticator))) => {
            *session.state.borrow_mut() = State::Authenticate {
                mechanism,
                authenticator: Box::new(authenticator),
                raw_tokens: header.request_api_version == 0,
            };
            match encode(header, &answer) {
                Ok(frame) => Gate::answer(frame),
                Err(_) => Gate::last(None),
            }
        }
        Some((_, Err(error))) => {
            failed(context, session, None, &error, log);
            Gate::last(None)
        }
        None => {
            if log.allow() {
                log::info!(
                    "connection from {:?} asked for SASL mechanism {:?}, which listener {} does not enable",
                    context.peer,
                    request.mechanism.as_str(),
                    session.listener.name
                );
            }
            *session.state.borrow_mut() = State::Ended;
            answer.error_code = ResponseError::UnsupportedSaslMechanism.code();
            Gate::last(encode(header, &answer).ok())
        }
    }
}

/// What a token led to: the server's token, and once the exchange is
/// complete, the session's lifetime for the client (0: none).
struct Stepped {
    token: Vec<u8>,
    lifetime_ms: i64,
}

/// Runs one token through the session's mechanism (see `complete` for
/// the last); an error ends the session.
fn step(
    context: &ConnectionContext,
    session: &SaslSession,
    token: &[u8],
) -> Result<Stepped, (SaslMechanism, SaslError)> {
    let mut state = session.state.borrow_mut();
    let (mechanism, authenticator) = match &mut *state {
        State::Authenticate {
            mechanism,
            authenticator,
            ..
        } => (*mechanism, authenticator),
        State::BadMechanism(message) => {
            let error = SaslError::Refused(std::mem::take(message));
            let mechanism = session.mechanism.get().unwrap_or(SaslMechanism::Plain);
            *state = State::Ended;
            return Err((mechanism, error));
        }
        _ => {
            return Err((
                SaslMechanism::Plain,
                SaslError::Invalid("no exchange in progress".into()),
            ))
        }
    };
    let now_ms = crate::clock::now_ms() as i64;
    let view = context.shard.view();
    let scram = |m: SaslMechanism, user: &str| view.scram.get(user, m).cloned();
    let validate: Validator<'_> = &|token: &str| bearer_token(context, session, token, now_ms);
    let credentials = Credentials {
        plain_users: &session.listener.plain_users,
        scram: &scram,
        oauth: Some(validate),
    };
    let outcome = authenticator.step(token, &credentials);
    let expires_ms = authenticator.credential_expires_ms();
    match outcome {
        Ok(Step::Continue(answer)) => Ok(Stepped {
            token: answer,
            lifetime_ms: 0,
        }),
        Ok(Step::Done { user, token }) => {
            *state = State::Ended;
            drop(state);
            let lifetime_ms = complete(context, session, mechanism, &user, (now_ms, expires_ms))
                .map_err(|error| (mechanism, error))?;
            Ok(Stepped { token, lifetime_ms })
        }
        Err(error) => {
            *state = State::Ended;
            Err((mechanism, error))
        }
    }
}

/// Ends an exchange that authenticated `user`: on a re-authentication
/// the principal must be the session's (Kafka's words otherwise); the
/// principal is set and the session's lifetime starts. The lifetime in
/// ms for the client.
fn complete(
    context: &ConnectionContext,
    session: &SaslSession,
    mechanism: SaslMechanism,
    user: &str,
    (now_ms, credential_expires_ms): (i64, Option<i64>),
) -> Result<i64, SaslError> {
    let principal = KafkaPrincipal::user(user).to_string();
    if session.reauthenticating.get() {
        let previous = context.principal.borrow().clone();
        if *previous != principal {
            return Err(SaslError::Refused(format!(
                "Cannot change principals during re-authentication from {}: {}",
                previous.replacen(':', ".", 1),
                principal.replacen(':', ".", 1)
            )));
        }
    }
    let max_reauth_ms = context
        .shard
        .config
        .sasl
        .max_reauth_ms(&session.listener.name, mechanism);
    let lifetime_ms = session_lifetime_ms(now_ms, credential_expires_ms, max_reauth_ms);
    let expires_at = lifetime_ms.map(|ms| Instant::now() + Duration::from_millis(ms as u64));
    log::debug!(
        "connection from {:?} {} as {principal} with SASL/{}; session lifetime {lifetime_ms:?} ms",
        context.peer,
        if session.reauthenticating.get() {
            "re-authenticated"
        } else {
            "authenticated"
        },
        mechanism.name()
    );
    *context.principal.borrow_mut() = Rc::from(principal);
    session.mechanism.set(Some(mechanism));
    session.expires_at.set(expires_at);
    session.reauthenticating.set(false);
    session.authenticated.set(true);
    Ok(lifetime_ms.unwrap_or(0))
}

/// Checks a bearer token with the listener's validator at `now_ms`.
fn bearer_token(
    context: &ConnectionContext,
    session: &SaslSession,
    token: &str,
    now_ms: i64,
) -> Result<BearerToken, TokenFailure> {
    match &session.listener.oauth {
        Some(OAuthValidatorConfig::Unsecured(options)) => {
            validate_unsecured(token, options, now_ms)
        }
        Some(OAuthValidatorConfig::Jwks(source, options)) => {
            match context.shard.jwks.get(&source.url) {
                Some(keys) => jwks::validate(token, &keys, options, now_ms),
                None => Err(TokenFailure::invalid(format!(
                    "no key set from {} loaded",
                    source.url
                ))),
            }
        }
        None => Err(TokenFailure::invalid(
            "the listener has no OAUTHBEARER validator".to_string(),
        )),
    }
}

fn authenticate(
    context: &ConnectionContext,
    session: &SaslSession,
    header: &RequestHeader,
    request: SaslAuthenticateRequest,
    log: &LogLimiter,
) -> Gate {
    let mut answer = SaslAuthenticateResponse::default();
    match step(context, session, &request.auth_bytes) {
        Ok(stepped) => {
            answer.auth_bytes = Bytes::from(stepped.token);
            answer.session_lifetime_ms = stepped.lifetime_ms;
            match encode(header, &answer) {
                Ok(frame) => Gate::answer(frame),
                Err(_) => Gate::last(None),
            }
        }
        Err((mechanism, error)) => {
            failed(context, session, Some(mechanism), &error, log);
            answer.error_code = ResponseError::SaslAuthenticationFailed.code();
            answer.error_message = Some(str_bytes(error.client_message(mechanism)));
            Gate::last(encode(header, &answer).ok())
        }
    }
}

/// A token after a SaslHandshake v0: the frame is the token, the answer a
/// size-prefixed token; a failure closes the connection unanswered.
fn raw_token(
    context: &ConnectionContext,
    session: &SaslSession,
    token: &[u8],
    log: &LogLimiter,
) -> Gate {
    match step(context, session, token) {
        Ok(Stepped { token, .. }) => {
            let mut framed = BytesMut::with_capacity(frame::SIZE_PREFIX_BYTES + token.len());
            framed.put_u32(token.len() as u32);
            framed.put_slice(&token);
            Gate::answer(Response::Frame(framed.freeze()))
        }
        Err((mechanism, error)) => {
            failed(context, session, Some(mechanism), &error, log);
            Gate::last(None)
        }
    }
}

/// One rate-limited line for a failed exchange: the reason, never a token.
fn failed(
    context: &ConnectionContext,
    session: &SaslSession,
    mechanism: Option<SaslMechanism>,
    error: &SaslError,
    log: &LogLimiter,
) {
    if !log.allow() {
        return;
    }
    log::info!(
        "SASL/{} {} of connection from {:?} on listener {} failed: {}",
        mechanism.map_or("?", SaslMechanism::name),
        if session.reauthenticating.get() {
            "re-authentication"
        } else {
            "authentication"
        },
        context.peer,
        session.listener.name,
        error.reason()
    );
}

/// Kafka's answer to a SaslHandshake where none is expected: during an
/// exchange, after authentication, or on a listener without SASL.
pub fn illegal_handshake() -> SaslHandshakeResponse {
    let mut answer = SaslHandshakeResponse::default();
    answer.error_code = ResponseError::IllegalSaslState.code();
    answer
}

/// Kafka's answer to a SaslAuthenticate outside an exchange.
pub fn illegal_authenticate() -> SaslAuthenticateResponse {
    let mut answer = SaslAuthenticateResponse::default();
    answer.error_code = ResponseError::IllegalSaslState.code();
    answer.error_message = Some(str_bytes(
        "SaslAuthenticate request received after successful authentication",
    ));
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_lifetime_is_the_least_bound_as_kafka_computes_it() {
        let now = 1_000_000;
        assert_eq!(session_lifetime_ms(now, None, 0), None);
        assert_eq!(session_lifetime_ms(now, None, 3000), Some(3000));
        assert_eq!(session_lifetime_ms(now, Some(now + 5000), 0), Some(5000));
        assert_eq!(session_lifetime_ms(now, Some(now + 5000), 3000), Some(3000));
        assert_eq!(session_lifetime_ms(now, Some(now + 2000), 3000), Some(2000));
        assert_eq!(session_lifetime_ms(now, Some(now - 1), 3000), Some(0));
        assert_eq!(session_lifetime_ms(now, Some(i64::MIN), 0), Some(0));
    }

    fn session(expires_at: Option<Instant>) -> SaslSession {
        let session = SaslSession::new(SaslListener {
            name: "SASL".to_string(),
            mechanisms: vec![SaslMechanism::Plain],
            plain_users: BTreeMap::new(),
            max_receive_bytes: 1024,
            oauth: None,
        });
        session.authenticated.set(true);
        session.mechanism.set(Some(SaslMechanism::Plain));
        session.expires_at.set(expires_at);
        session
    }

    #[test]
    fn a_session_past_its_lifetime_closes_unless_it_reauthenticates() {
        let now = Instant::now();
        let later = now + Duration::from_millis(3000);
        let metadata = [0u8, 3, 0, 1];
        let handshake = (ApiKey::SaslHandshake as i16).to_be_bytes();
        // No lifetime: every request is served, a handshake too (the
        // dispatcher answers it ILLEGAL_SASL_STATE, as Kafka does).
        let endless = session(None);
        assert_eq!(
            endless.after_authentication(&metadata, later),
            Authenticated::Serve
        );
        assert_eq!(
            endless.after_authentication(&handshake, later),
            Authenticated::Serve
        );
        assert!(endless.authenticated());
        let bounded = session(Some(now + Duration::from_millis(1000)));
        assert_eq!(
            bounded.after_authentication(&metadata, now),
            Authenticated::Serve
        );
        assert_eq!(
            bounded.after_authentication(&metadata, later),
            Authenticated::Expired
        );
        assert_eq!(
            bounded.after_authentication(&[0u8], later),
            Authenticated::Expired
        );
        // A handshake starts over, before or after the lifetime.
        assert_eq!(
            bounded.after_authentication(&handshake, later),
            Authenticated::Reauthenticate
        );
        assert!(!bounded.authenticated());
        assert!(bounded.reauthenticating.get());
        assert!(matches!(*bounded.state.borrow(), State::Handshake));
        // Within a second of that, a handshake is no re-authentication.
        bounded.authenticated.set(true);
        let soon = later + Duration::from_millis(500);
        assert_eq!(
            bounded.after_authentication(&handshake, soon),
            Authenticated::Expired
        );
        let again = later + Duration::from_millis(1000);
        assert_eq!(
            bounded.after_authentication(&handshake, again),
            Authenticated::Reauthenticate
        );
    }
}
