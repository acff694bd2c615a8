//! Security at the connection's edge and behind it: who the client is
//! (`principal`), how it proves it (`tls` with a client certificate mapped
//! by `ssl_principal`, or `sasl`), and what it may do (`acl`, the
//! authorizer and its ACLs). A connection has one identity, its principal
//! (`User:ANONYMOUS` until a TLS handshake with a client certificate or a
//! SASL exchange of that same connection sets it).
//!
//! The client side lives here too: `sasl::client` (PLAIN and SCRAM as a
//! client) and `tls_client` (rustls' client settings, and a TLS stream a
//! shard opens to another broker).
//!
//! Invariant: pure but for `tls`, `tls_client` and `jwks_fetch`. Nothing
//! else here reads a socket, a clock or a file; the server feeds tokens,
//! certificates, key sets, times and requests in and takes answers,
//! principals and decisions out, so every mechanism and rule is
//! unit-tested without a broker. `tls` and `tls_client` drive rustls on a
//! connection's socket and nothing else: they touch no partition, file or
//! other shard. `jwks_fetch` is a blocking read of an OAUTHBEARER key set,
//! run at start or on a blocking thread, never on a reactor. Imports only
//! `config`.

pub mod acl;
pub mod jwks;
pub mod jwks_fetch;
pub mod jws;
pub mod pem_key;
pub mod principal;
pub mod sasl;
pub mod ssl_principal;
pub mod tls;
pub mod tls_client;

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

    /// Whether the connection's bytes go through TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether the client must authenticate with SASL before any request.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}
