//! Who is on the other end of a connection, and how it got there: the
//! listener it came in on, that listener's security protocol, and the
//! principal it authenticated as (`Session`). `tls` puts TLS on a
//! connection's socket (rustls on the shard's own reactor) and `principal`
//! turns a client certificate's subject into a principal name, as Kafka's
//! `ssl.principal.mapping.rules` do.
//!
//! Invariant: nothing here touches a partition, a file or another shard;
//! a `Session` is made once per connection, before its first request is
//! read, and only an authentication step of that same connection (a TLS
//! handshake here, a SASL exchange later) may change its principal.

pub mod principal;
pub mod tls;

use std::sync::Arc;

/// Kafka's security protocols (`listener.security.protocol.map` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    /// The protocol Kafka names `name` (upper case), if any.
    pub fn parse(name: &str) -> Option<SecurityProtocol> {
        match name {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether the connection's bytes go through TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
}

/// Kafka's principal type of every authenticated or anonymous client.
pub const USER_PRINCIPAL_TYPE: &str = "User";
/// Kafka's name of the principal of a client that did not authenticate
/// (a PLAINTEXT connection, or TLS without a client certificate).
pub const ANONYMOUS: &str = "ANONYMOUS";

/// A principal as Kafka writes it: `User:alice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub principal_type: String,
    pub name: String,
}

impl Principal {
    pub fn user(name: impl Into<String>) -> Principal {
        Principal {
            principal_type: USER_PRINCIPAL_TYPE.to_string(),
            name: name.into(),
        }
    }

    pub fn anonymous() -> Principal {
        Principal::user(ANONYMOUS)
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

/// What a connection knows of its client's identity: set when the
/// connection is accepted (listener, protocol, `User:ANONYMOUS`) and by its
/// authentication (the TLS client certificate's mapped subject, or the
/// SASL user). The authorizer asks it for the principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The listener's name, upper case (`PLAINTEXT`, `SSL`, ...).
    pub listener: Arc<str>,
    pub protocol: SecurityProtocol,
    pub principal: Principal,
}

impl Session {
    /// A connection accepted on `listener`, not yet authenticated.
    pub fn new(listener: Arc<str>, protocol: SecurityProtocol) -> Session {
        Session {
            listener,
            protocol,
            principal: Principal::anonymous(),
        }
    }
}
