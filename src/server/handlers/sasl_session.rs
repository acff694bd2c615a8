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
//! Invariant: the principal is set only by a completed exchange; a log
//! line says why an exchange failed (rate-limited) and never holds a token.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, RequestHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};

use super::{api_versions, dispatch, encode, str_bytes, Response};
use crate::config::BrokerConfig;
use crate::protocol::frame::{self, Request};
use crate::security::principal::KafkaPrincipal;
use crate::security::sasl::{Authenticator, Credentials, SaslError, SaslMechanism, Step};
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
    /// Refused, or authenticated: the gate takes no more frames.
    Ended,
}

/// One connection's SASL state.
pub struct SaslSession {
    pub listener: SaslListener,
    state: RefCell<State>,
    authenticated: Cell<bool>,
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
        State::Authenticate { .. } => 2,
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
    match authenticator {
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

/// Runs one token through the session's mechanism: the server's token,
/// the mechanism, and whether it authenticated the client (the session
/// then ends, the principal set); the error ends the session as well.
fn step(
    context: &ConnectionContext,
    session: &SaslSession,
    token: &[u8],
) -> Result<(Vec<u8>, SaslMechanism), (SaslMechanism, SaslError)> {
    let mut state = session.state.borrow_mut();
    let State::Authenticate {
        mechanism,
        authenticator,
        ..
    } = &mut *state
    else {
        return Err((
            SaslMechanism::Plain,
            SaslError::Invalid("no exchange in progress".into()),
        ));
    };
    let mechanism = *mechanism;
    let view = context.shard.view();
    let scram = |m: SaslMechanism, user: &str| view.scram.get(user, m).cloned();
    let credentials = Credentials {
        plain_users: &session.listener.plain_users,
        scram: &scram,
    };
    match authenticator.step(token, &credentials) {
        Ok(Step::Continue(answer)) => Ok((answer, mechanism)),
        Ok(Step::Done { user, token }) => {
            *state = State::Ended;
            log::debug!(
                "connection from {:?} authenticated as User:{user} with SASL/{}",
                context.peer,
                mechanism.name()
            );
            *context.principal.borrow_mut() = Rc::from(KafkaPrincipal::user(&user).to_string());
            session.authenticated.set(true);
            Ok((token, mechanism))
        }
        Err(error) => {
            *state = State::Ended;
            Err((mechanism, error))
        }
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
        Ok((token, _)) => {
            answer.auth_bytes = Bytes::from(token);
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
        Ok((token, _)) => {
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
    let reason = match error {
        SaslError::Refused(reason) | SaslError::Invalid(reason) => reason,
    };
    log::info!(
        "SASL/{} authentication of connection from {:?} on listener {} failed: {reason}",
        mechanism.map_or("?", SaslMechanism::name),
        context.peer,
        session.listener.name
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
