//! TLS on a connection's socket: rustls' state machine driven by the
//! shard's own glommio reactor (no thread, no OpenSSL). `TlsAcceptor` is a
//! TLS listener's settings loaded once at start (PEM files, client
//! verification, versions, the principal mapper); `accept` runs one
//! handshake within a time bound and splits the connection into a
//! `TlsReader` and a `TlsWriter` that share its rustls state.
//! `TlsAcceptors` is a shard's acceptor per TLS listener: the one loaded
//! at start until `reload` (the dynamic `listener.name.<l>.ssl.*` broker
//! configs, Kafka's certificate update without restart, `shard::dynamic_tls`)
//! replaces it for new handshakes; a connection keeps the settings its
//! handshake began with.
//!
//! Invariant: every buffer is bounded (`CIPHERTEXT_READ_BYTES` of
//! ciphertext read ahead; rustls' own limits on decrypted plaintext and
//! on encrypted output, drained by `TlsWriter::flush`), the rustls state
//! is borrowed only between awaits (reader and writer are two tasks on
//! one thread), and nothing a peer sends panics: every malformed record,
//! alert or certificate ends the connection with an error.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use futures_util::future::{select, Either};
use glommio::net::TcpStream;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};

use super::pem_key::private_key;
use super::principal::KafkaPrincipal;
use super::ssl_principal::{subject_dn, PrincipalMapper};
use crate::config::{ClientAuth, PemSource, SecurityConfig, SslSettings};

/// Ciphertext read from the socket ahead of rustls: one TLS record at its
/// largest (16 KiB of data plus header and expansion) and some, so that a
/// read takes a whole record where the kernel holds one.
const CIPHERTEXT_READ_BYTES: usize = 18 * 1024;
/// Encrypted bytes gathered from rustls before a socket write: a few
/// records per system call, bounded.
const FLUSH_BYTES_MAX: usize = 64 * 1024;
/// The longest a TLS handshake may take, when `connections.max.idle.ms`
/// is longer: a client that opens a connection and stalls its handshake
/// holds a connection slot no longer than this (Kafka has no setting for
/// it). A real handshake takes milliseconds.
pub const HANDSHAKE_TIMEOUT_MAX: Duration = Duration::from_secs(10);

/// A TLS listener's loaded settings, shared by every shard's connections.
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
    mapper: PrincipalMapper,
    /// The subject of the keystore's certificate, which a reload keeps.
    subject: String,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Why a handshake ended without a connection.
#[derive(Debug)]
pub enum HandshakeError {
    /// The socket failed, or the peer's bytes are not TLS that this
    /// listener accepts (the rustls error inside says which).
    Io(std::io::Error),
    Tls(rustls::Error),
    /// The peer closed before the handshake finished.
    Closed,
    TimedOut(Duration),
    /// `ssl.principal.mapping.rules` has no rule for the client's subject.
    Principal(String),
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::Io(error) => write!(f, "TLS handshake failed: {error}"),
            HandshakeError::Tls(error) => write!(f, "TLS handshake failed: {error}"),
            HandshakeError::Closed => write!(f, "closed during the TLS handshake"),
            HandshakeError::TimedOut(bound) => {
                write!(f, "TLS handshake unfinished after {} ms", bound.as_millis())
            }
            HandshakeError::Principal(error) => write!(f, "TLS client refused: {error}"),
        }
    }
}

/// rustls' versions of Kafka's `ssl.enabled.protocols` names (TLSv1.2,
/// TLSv1.3; others are refused when the config is read).
pub(super) fn protocol_versions(
    names: &[String],
) -> Vec<&'static rustls::SupportedProtocolVersion> {
    names
        .iter()
        .filter_map(|name| match name.as_str() {
            "TLSv1.2" => Some(&rustls::version::TLS12),
            "TLSv1.3" => Some(&rustls::version::TLS13),
            _ => None,
        })
        .collect()
}

impl TlsAcceptor {
    /// Loads the keystore and truststore and builds the rustls settings.
    pub fn new(settings: &SslSettings) -> Result<TlsAcceptor, String> {
        let provider = Arc::new(provider(&settings.cipher_suites)?);
        let versions = protocol_versions(&settings.enabled_protocols);
        let verifier = match (&settings.truststore, settings.client_auth) {
            (_, ClientAuth::None) => WebPkiClientVerifier::no_client_auth(),
            (None, _) => return Err("client authentication needs a truststore".to_string()),
            (Some(truststore), auth) => {
                let roots = Arc::new(root_store(truststore)?);
                let builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
                let builder = match auth {
                    ClientAuth::Requested => builder.allow_unauthenticated(),
                    _ => builder,
                };
                builder
                    .build()
                    .map_err(|error| format!("ssl.truststore: {error}"))?
            }
        };
        let (key, chain) = keystore(settings)?;
        // Only compared by a reload: a subject the parser cannot read
        // compares as empty rather than refusing a certificate rustls takes.
        let subject = subject_dn(chain[0].as_ref()).unwrap_or_default();
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|error| format!("ssl.enabled.protocols: {error}"))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|error| format!("ssl.keystore: {error}"))?;
        let mapper = PrincipalMapper::parse(&settings.principal_mapping_rules)
            .map_err(|error| format!("ssl.principal.mapping.rules: {error}"))?;
        Ok(TlsAcceptor {
            config: Arc::new(config),
            mapper,
            subject,
        })
    }

    /// Runs the handshake on a connection's socket (`reader`, and its
    /// duplicate `writer`) within `bound`; the two halves of the TLS
    /// connection, and the client's principal (`User:ANONYMOUS` without a
    /// certificate).
    pub async fn accept(
        &self,
        mut reader: TcpStream,
        writer: TcpStream,
        bound: Duration,
    ) -> Result<(TlsReader, TlsWriter, KafkaPrincipal), HandshakeError> {
        let mut connection =
            ServerConnection::new(self.config.clone()).map_err(HandshakeError::Tls)?;
        let mut ciphertext = Ciphertext::default();
        let handshake = Box::pin(handshake(&mut connection, &mut reader, &mut ciphertext));
        match select(handshake, Box::pin(glommio::timer::sleep(bound))).await {
            Either::Left((done, _)) => done?,
            Either::Right(_) => return Err(HandshakeError::TimedOut(bound)),
        }
        let principal = self.principal(&connection)?;
        let shared = Rc::new(RefCell::new(connection));
        let reader = TlsReader {
            connection: shared.clone(),
            socket: reader,
            ciphertext,
            plaintext_waiting: 0,
        };
        let writer = TlsWriter {
            connection: shared,
            socket: writer,
            out: Vec::new(),
        };
        Ok((reader, writer, principal))
    }

    fn principal(&self, connection: &ServerConnection) -> Result<KafkaPrincipal, HandshakeError> {
        let Some(certificate) = connection.peer_certificates().and_then(|c| c.first()) else {
            return Ok(KafkaPrincipal::anonymous());
        };
        let dn = subject_dn(certificate).map_err(HandshakeError::Principal)?;
        let name = self.mapper.map(&dn).map_err(HandshakeError::Principal)?;
        Ok(KafkaPrincipal::user(&name))
    }
}

/// A shard's acceptor per TLS listener (upper-case name). Each shard
/// holds its own copy, installed by broadcast; bounded by the listeners.
#[derive(Default)]
pub struct TlsAcceptors {
    by_listener: RefCell<BTreeMap<String, Arc<TlsAcceptor>>>,
}

impl TlsAcceptors {
    /// The acceptor new handshakes on `listener` use.
    pub fn get(&self, listener: &str) -> Option<Arc<TlsAcceptor>> {
        self.by_listener.borrow().get(listener).cloned()
    }

    /// Installs `acceptor` for `listener`, built under the dynamic broker
    /// configs (a certificate reload).
    pub fn install(&self, listener: &str, acceptor: Arc<TlsAcceptor>) {
        self.by_listener
            .borrow_mut()
            .insert(listener.to_string(), acceptor);
    }

    /// Installs the static config's `acceptor` for `listener`, at start,
    /// unless the dynamic configs' reached this shard first.
    pub fn install_static(&self, listener: &str, acceptor: Arc<TlsAcceptor>) {
        self.by_listener
            .borrow_mut()
            .entry(listener.to_string())
            .or_insert(acceptor);
    }
}

/// `listener`'s acceptor rebuilt from the static `security` settings under
/// the `dynamic` keys, re-reading the files they name (so a file replaced
/// in place is read again even when its path is unchanged, as Kafka
/// reloads a modified keystore). Refused, as Kafka refuses it without
/// `ssl.allow.dn.changes`, when the new certificate's subject is not
/// `current`'s.
pub fn reload(
    security: &SecurityConfig,
    dynamic: &BTreeMap<String, String>,
    listener: &str,
    current: Option<&TlsAcceptor>,
) -> Result<TlsAcceptor, String> {
    let mut security = security.clone();
    for (key, value) in dynamic {
        security.set(key, value).map_err(|error| error.0)?;
    }
    let settings = security.ssl(listener).map_err(|error| error.0)?;
    let acceptor = TlsAcceptor::new(&settings)?;
    if let Some(current) = current.filter(|current| current.subject != acceptor.subject) {
        return Err(format!(
            "Keystore DistinguishedName does not match:  existing={{DN={}}}, new={{DN={}}}",
            current.subject, acceptor.subject
        ));
    }
    Ok(acceptor)
}

/// ring's provider, its cipher suites cut to `names` (Kafka's
/// `ssl.cipher.suites`, IANA names) when any are given.
pub(super) fn provider(names: &[String]) -> Result<CryptoProvider, String> {
    // ring, not aws-lc-rs: it builds with a C compiler alone (no cmake),
    // at the cost of rustls' post-quantum key exchange, which the Java and
    // librdkafka clients of today do not offer a broker anyway.
    #[allow(deprecated)]
    let mut provider = rustls::crypto::ring::default_provider();
    if names.is_empty() {
        return Ok(provider);
    }
    // rustls names TLS 1.3 suites `TLS13_...` where IANA (and Java) say `TLS_...`.
    let iana = |suite: &rustls::SupportedCipherSuite| {
        format!("{:?}", suite.suite()).replacen("TLS13_", "TLS_", 1)
    };
    if let Some(unknown) = names
        .iter()
        .find(|name| !provider.cipher_suites.iter().any(|s| &iana(s) == *name))
    {
        return Err(format!(
            "ssl.cipher.suites: {unknown} is not a suite shoal offers"
        ));
    }
    provider
        .cipher_suites
        .retain(|suite| names.contains(&iana(suite)));
    Ok(provider)
}

pub(super) fn pem_text(source: &PemSource, key: &str) -> Result<Vec<u8>, String> {
    match source {
        PemSource::File(path) => std::fs::read(path)
            .map_err(|error| format!("{key}: cannot read {}: {error}", path.display())),
        PemSource::Inline(text) => Ok(text.as_bytes().to_vec()),
    }
}

/// The private key and the certificate chain of the keystore.
fn keystore(
    settings: &SslSettings,
) -> Result<(PrivateKeyDer<'static>, Vec<CertificateDer<'static>>), String> {
    let (key_source, chain_source) = &settings.keystore;
    let key_text = pem_text(key_source, "ssl.keystore")?;
    let key = private_key(&key_text, settings.key_password.as_deref())?;
    let chain_text = pem_text(chain_source, "ssl.keystore")?;
    let chain = certificates(&chain_text, "ssl.keystore")?;
    Ok((key, chain))
}

pub(super) fn certificates(pem: &[u8], key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("{key}: {error}"))?;
    if certificates.is_empty() {
        return Err(format!("{key}: no certificate found"));
    }
    Ok(certificates)
}

pub(super) fn root_store(source: &PemSource) -> Result<RootCertStore, String> {
    let text = pem_text(source, "ssl.truststore")?;
    let mut roots = RootCertStore::empty();
    for certificate in certificates(&text, "ssl.truststore")? {
        roots
            .add(certificate)
            .map_err(|error| format!("ssl.truststore: {error}"))?;
    }
    Ok(roots)
}

/// Ciphertext read from the socket and not yet given to rustls.
struct Ciphertext {
    buffer: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Default for Ciphertext {
    fn default() -> Ciphertext {
        Ciphertext {
            buffer: vec![0; CIPHERTEXT_READ_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }
}

impl Ciphertext {
    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Reads what the socket has, up to the buffer (which must be empty);
    /// false when the peer closed.
    async fn fill(&mut self, socket: &mut TcpStream) -> std::io::Result<bool> {
        debug_assert!(self.is_empty());
        let read = socket.read(&mut self.buffer).await?;
        self.start = 0;
        self.end = read;
        Ok(read > 0)
    }

    /// Gives rustls what it takes of the buffered bytes and has it process
    /// them; the plaintext it then holds. Fails rather than spin when
    /// rustls takes nothing and has nothing to give.
    fn feed(&mut self, connection: &mut ServerConnection) -> std::io::Result<usize> {
        let mut pending = &self.buffer[self.start..self.end];
        let before = pending.len();
        // Reading from a slice cannot fail but for a full plaintext buffer,
        // which the callers drain first.
        let _ = connection.read_tls(&mut pending);
        let taken = before - pending.len();
        self.start += taken;
        let state = connection.process_new_packets().map_err(tls_error)?;
        let plaintext = state.plaintext_bytes_to_read();
        if taken == 0 && plaintext == 0 && !connection.wants_write() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "TLS records stalled",
            ));
        }
        Ok(plaintext)
    }
}

/// Drives the handshake until it completes; bytes read past its end stay
/// in `ciphertext` for the reader.
async fn handshake(
    connection: &mut ServerConnection,
    socket: &mut TcpStream,
    ciphertext: &mut Ciphertext,
) -> Result<(), HandshakeError> {
    loop {
        write_pending(connection, socket).await?;
        if !connection.is_handshaking() {
            return Ok(());
        }
        if ciphertext.is_empty() && !ciphertext.fill(socket).await.map_err(HandshakeError::Io)? {
            return Err(HandshakeError::Closed);
        }
        while !ciphertext.is_empty() && connection.is_handshaking() {
            if let Err(error) = ciphertext.feed(connection) {
                // The alert that says why, if it can go.
                let _ = write_pending(connection, socket).await;
                return Err(HandshakeError::Io(error));
            }
        }
    }
}

/// Sends what rustls has to send (handshake messages, alerts).
async fn write_pending(
    connection: &mut ServerConnection,
    socket: &mut TcpStream,
) -> Result<(), HandshakeError> {
    let mut out = Vec::new();
    while connection.wants_write() {
        connection.write_tls(&mut out).map_err(HandshakeError::Io)?;
        socket.write_all(&out).await.map_err(HandshakeError::Io)?;
        out.clear();
    }
    Ok(())
}

fn tls_error(error: rustls::Error) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, error)
}

/// The reading half of a TLS connection: plaintext out of the socket's
/// records.
pub struct TlsReader {
    connection: Rc<RefCell<ServerConnection>>,
    socket: TcpStream,
    ciphertext: Ciphertext,
    /// Plaintext rustls holds decrypted: what a read returns at once.
    plaintext_waiting: usize,
}

impl TlsReader {
    /// Decrypted bytes a read returns without waiting.
    pub fn plaintext_waiting(&self) -> usize {
        self.plaintext_waiting
    }

    pub fn socket(&self) -> &TcpStream {
        &self.socket
    }

    /// Copies into `out` plaintext rustls already decrypted, without
    /// waiting: `WouldBlock` when it holds none.
    pub fn read_plaintext(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let read = self.connection.borrow_mut().reader().read(out)?;
        self.plaintext_waiting = self.plaintext_waiting.saturating_sub(read);
        Ok(read)
    }

    /// Reads plaintext into `out`; 0 when the peer closed (with or without
    /// a close_notify: Kafka clients close the socket bare). Waits on the
    /// socket with its read timeout.
    pub async fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            {
                let mut connection = self.connection.borrow_mut();
                match connection.reader().read(out) {
                    Ok(read) => {
                        self.plaintext_waiting = self.plaintext_waiting.saturating_sub(read);
                        return Ok(read);
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                        return Ok(0)
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(error) => return Err(error),
                }
                if !self.ciphertext.is_empty() {
                    self.plaintext_waiting = self.ciphertext.feed(&mut connection)?;
                    continue;
                }
            }
            if !self.ciphertext.fill(&mut self.socket).await? {
                // rustls learns of the end, and the next read reports it.
                let _ = self.connection.borrow_mut().read_tls(&mut &[][..]);
                let _ = self.connection.borrow_mut().process_new_packets();
            }
        }
    }
}

/// The writing half of a TLS connection: plaintext in, records out.
pub struct TlsWriter {
    connection: Rc<RefCell<ServerConnection>>,
    socket: TcpStream,
    /// Encrypted bytes on their way to the socket (at most about
    /// `FLUSH_BYTES_MAX`).
    out: Vec<u8>,
}

impl TlsWriter {
    /// Encrypts all of `bytes`; what rustls cannot hold goes to the socket
    /// as it fills, and the rest waits for `flush`.
    pub async fn write_all(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            let taken = self.connection.borrow_mut().writer().write(bytes)?;
            bytes = &bytes[taken..];
            if !bytes.is_empty() {
                self.flush().await?;
            }
        }
        Ok(())
    }

    /// Sends every record rustls holds.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        loop {
            self.out.clear();
            {
                let mut connection = self.connection.borrow_mut();
                while connection.wants_write() && self.out.len() < FLUSH_BYTES_MAX {
                    connection.write_tls(&mut self.out)?;
                }
            }
            if self.out.is_empty() {
                return Ok(());
            }
            self.socket.write_all(&self.out).await?;
        }
    }

    /// Says close_notify, then shuts the socket down both ways, which ends
    /// the reader's wait too.
    pub async fn close(mut self) {
        self.connection.borrow_mut().send_close_notify();
        let _ = self.flush().await;
        let _ = self.socket.shutdown(std::net::Shutdown::Both).await;
    }

    pub fn socket(&self) -> &TcpStream {
        &self.socket
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
