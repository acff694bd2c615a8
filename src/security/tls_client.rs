//! The client side of TLS: the rustls `ClientConfig` of a
//! `ClientTlsSettings` (the truststore's CAs, the client's own certificate
//! for mutual TLS, the host name check of
//! `ssl.endpoint.identification.algorithm=https`), and `TlsClientStream`,
//! a TLS connection a shard opens on its own glommio reactor (the brokers'
//! links to each other). The blocking tools drive the same config through
//! `client::tls_relay`.
//!
//! Invariant: every buffer is bounded (`CIPHERTEXT_READ_BYTES` read
//! ahead; rustls' own limits on plaintext and on encrypted output, which
//! `write_all` drains before it takes more); one task uses a stream at a
//! time (a link's exchange: write, then read), so it holds its rustls
//! state alone; nothing a server sends panics.

use std::io::{Read, Write};
use std::sync::Arc;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct};

use super::pem_key::private_key;
use super::tls::{certificates, pem_text, protocol_versions, provider, root_store};
use crate::config::ClientTlsSettings;

/// Ciphertext read from the socket ahead of rustls: one TLS record at its
/// largest and some (as the server side's).
const CIPHERTEXT_READ_BYTES: usize = 18 * 1024;

/// Builds the rustls client settings, reading the PEM files.
pub fn client_config(settings: &ClientTlsSettings) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(provider(&[])?);
    let versions = protocol_versions(&settings.enabled_protocols);
    let roots = Arc::new(root_store(&settings.truststore)?);
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|error| format!("ssl.truststore: {error}"))?;
    let verifier: Arc<dyn ServerCertVerifier> = if settings.endpoint_identification {
        webpki
    } else {
        Arc::new(AnyName(webpki))
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|error| format!("ssl.enabled.protocols: {error}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match &settings.keystore {
        None => builder.with_no_client_auth(),
        Some((key_source, chain_source)) => {
            let key_text = pem_text(key_source, "ssl.keystore")?;
            let key = private_key(&key_text, settings.key_password.as_deref())?;
            let chain = certificates(&pem_text(chain_source, "ssl.keystore")?, "ssl.keystore")?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|error| format!("ssl.keystore: {error}"))?
        }
    };
    Ok(Arc::new(config))
}

/// The name the server's certificate must carry: the host connected to
/// (a DNS name or an IP address, as Kafka checks it).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string())
        .map_err(|error| format!("{host} is not a host name TLS can check: {error}"))
}

/// `ssl.endpoint.identification.algorithm=` (empty): the chain is checked
/// against the truststore, the name in it is not.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

fn tls_error(error: rustls::Error) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, error)
}

/// A TLS connection on a shard's reactor, used by one task at a time.
pub struct TlsClientStream {
    connection: ClientConnection,
    socket: TcpStream,
    ciphertext: Box<[u8]>,
    start: usize,
    end: usize,
}

impl TlsClientStream {
    /// Runs the handshake on `socket` as a client of `name`; the caller
    /// bounds it in time.
    pub async fn connect(
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        socket: TcpStream,
    ) -> std::io::Result<TlsClientStream> {
        let connection = ClientConnection::new(config, name).map_err(tls_error)?;
        let mut stream = TlsClientStream {
            connection,
            socket,
            ciphertext: vec![0; CIPHERTEXT_READ_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
        };
        loop {
            stream.write_pending().await?;
            if !stream.connection.is_handshaking() {
                return Ok(stream);
            }
            stream.read_records().await?;
        }
    }

    /// Encrypts and sends all of `bytes`.
    pub async fn write_all(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            let taken = self.connection.writer().write(bytes)?;
            bytes = &bytes[taken..];
            self.write_pending().await?;
        }
        Ok(())
    }

    /// Fills `out` with plaintext.
    pub async fn read_exact(&mut self, out: &mut [u8]) -> std::io::Result<()> {
        let mut filled = 0;
        while filled < out.len() {
            // The reader borrows the connection: done before any await.
            let read = self.connection.reader().read(&mut out[filled..]);
            match read {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(read) => filled += read,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    self.write_pending().await?;
                    self.read_records().await?;
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Sends what rustls has to send.
    async fn write_pending(&mut self) -> std::io::Result<()> {
        let mut out = Vec::new();
        while self.connection.wants_write() {
            self.connection.write_tls(&mut out)?;
            self.socket.write_all(&out).await?;
            out.clear();
        }
        Ok(())
    }

    /// Gives rustls the next ciphertext, read from the socket when none
    /// is buffered, and has it process what it took.
    async fn read_records(&mut self) -> std::io::Result<()> {
        if self.start == self.end {
            let read = self.socket.read(&mut self.ciphertext).await?;
            if read == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the TLS connection",
                ));
            }
            self.start = 0;
            self.end = read;
        }
        let mut pending = &self.ciphertext[self.start..self.end];
        let before = pending.len();
        let _ = self.connection.read_tls(&mut pending);
        let taken = before - pending.len();
        self.start += taken;
        let state = self.connection.process_new_packets().map_err(tls_error)?;
        if taken == 0 && state.plaintext_bytes_to_read() == 0 && !self.connection.wants_write() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "TLS records stalled",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "tls_client_tests.rs"]
mod tests;
