//! Reads a JSON Web Key Set from `sasl.oauthbearer.jwks.endpoint.url`: a
//! `file://` path, or an `https://` URL fetched with one HTTP/1.1 GET over
//! rustls, trusting the system's CA bundle (`SSL_CERT_FILE`, else the
//! usual bundle paths; Kafka trusts the JVM's). Kafka refuses plain
//! `http://` for keys, and so does shoal.
//!
//! Invariant: blocking, so it runs at start (before any shard) or on a
//! shard's blocking thread pool (`server::jwks_refresh`), never on a
//! reactor; every read is bounded in bytes (`DOCUMENT_BYTES_MAX`) and in
//! time (`FETCH_TIMEOUT`).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use super::jwks::JwkSet;

/// The largest key set read: a provider's is a few KiB.
pub const DOCUMENT_BYTES_MAX: usize = 1024 * 1024;
/// The longest a connect, a read or a write of a fetch may wait.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The response head read before the body: status line and headers.
const HEAD_BYTES_MAX: usize = 16 * 1024;
/// Where CA bundles usually are, when `SSL_CERT_FILE` is unset.
const CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// Reads and parses the key set at `url`.
pub fn fetch(url: &str) -> Result<JwkSet, String> {
    let document = if let Some(path) = url.strip_prefix("file://") {
        read_file(path)?
    } else if let Some(rest) = url.strip_prefix("https://") {
        https_get(rest)?
    } else {
        return Err(format!(
            "{url}: the JWKS endpoint must be an https:// or file:// URL"
        ));
    };
    JwkSet::parse(&document).map_err(|error| format!("{url}: {error}"))
}

fn read_file(path: &str) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|error| format!("cannot read {path}: {error}"))?;
    let mut document = Vec::new();
    file.take(DOCUMENT_BYTES_MAX as u64 + 1)
        .read_to_end(&mut document)
        .map_err(|error| format!("cannot read {path}: {error}"))?;
    if document.len() > DOCUMENT_BYTES_MAX {
        return Err(format!("{path} is over {DOCUMENT_BYTES_MAX} bytes"));
    }
    Ok(document)
}

/// GETs `host[:port]/path` over TLS; the body of a 200 answer.
fn https_get(rest: &str) -> Result<Vec<u8>, String> {
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => {
            let port = port
                .parse::<u16>()
                .map_err(|_| format!("bad port in {authority}"))?;
            (host, port)
        }
        _ => (authority, 443),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let fail = |why: String| format!("https://{rest}: {why}");
    let address = (host, port)
        .to_socket_addrs()
        .map_err(|error| fail(error.to_string()))?
        .next()
        .ok_or_else(|| fail("no address".to_string()))?;
    let socket =
        TcpStream::connect_timeout(&address, FETCH_TIMEOUT).map_err(|e| fail(e.to_string()))?;
    socket
        .set_read_timeout(Some(FETCH_TIMEOUT))
        .map_err(|e| fail(e.to_string()))?;
    socket
        .set_write_timeout(Some(FETCH_TIMEOUT))
        .map_err(|e| fail(e.to_string()))?;
    let name = ServerName::try_from(host.to_string()).map_err(|e| fail(e.to_string()))?;
    let connection =
        rustls::ClientConnection::new(client_config()?, name).map_err(|e| fail(e.to_string()))?;
    let mut stream = rustls::StreamOwned::new(connection, socket);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| fail(e.to_string()))?;
    let mut response = Vec::new();
    let limit = (HEAD_BYTES_MAX + DOCUMENT_BYTES_MAX) as u64 + 1;
    match stream.take(limit).read_to_end(&mut response) {
        Ok(_) => {}
        // A server that closes without TLS's close_notify: the body's
        // length (below) says whether all of it came.
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(error) => return Err(fail(error.to_string())),
    }
    body(&response).map_err(fail)
}

/// The body of an HTTP/1.1 response: a 200, whole (by Content-Length,
/// chunked, or up to the close).
fn body(response: &[u8]) -> Result<Vec<u8>, String> {
    let end = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .filter(|end| *end <= HEAD_BYTES_MAX)
        .ok_or("no complete HTTP response head")?;
    let head = String::from_utf8_lossy(&response[..end]);
    let rest = &response[end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("answered {status:?}"));
    }
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(length) = header("content-length") {
        let length: usize = length.parse().map_err(|_| "bad Content-Length")?;
        rest.get(..length).ok_or("the body ended early")?.to_vec()
    } else {
        rest.to_vec()
    };
    if body.len() > DOCUMENT_BYTES_MAX {
        return Err(format!("the body is over {DOCUMENT_BYTES_MAX} bytes"));
    }
    Ok(body)
}

/// A chunked body (RFC 9112 §7.1), extensions and trailers ignored.
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|window| window == b"\r\n")
            .ok_or("a chunk's size line is cut")?;
        let line = String::from_utf8_lossy(&rest[..line_end]);
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| "a bad chunk size")?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if size > DOCUMENT_BYTES_MAX || rest.len() < size + 2 {
            return Err("a chunk is cut or too large".to_string());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// A client that trusts the system's CAs.
fn client_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let path = std::env::var("SSL_CERT_FILE")
        .ok()
        .or_else(|| {
            CA_BUNDLES
                .iter()
                .find(|p| std::path::Path::new(p).exists())
                .map(|p| p.to_string())
        })
        .ok_or("no CA bundle to trust (set SSL_CERT_FILE)")?;
    let pem = std::fs::read(&path).map_err(|error| format!("cannot read {path}: {error}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&pem).flatten() {
        // A bundle may hold a certificate rustls cannot use: skipped.
        let _ = roots.add(certificate);
    }
    if roots.is_empty() {
        return Err(format!("{path} holds no usable CA certificate"));
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_body_by_length_chunks_or_close() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcdEXTRA";
        assert_eq!(body(ok).unwrap(), b"abcd");
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(body(chunked).unwrap(), b"abcde");
        assert_eq!(body(b"HTTP/1.0 200 OK\r\n\r\n{}").unwrap(), b"{}");
        assert!(body(b"HTTP/1.1 404 Not Found\r\n\r\n")
            .unwrap_err()
            .contains("404"));
        assert!(body(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab").is_err());
        assert!(body(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nff\r\nab").is_err());
        assert!(body(b"HTTP/1.1 200").is_err());
    }

    #[test]
    fn only_file_and_https_urls_are_read() {
        assert!(fetch("http://example.com/jwks")
            .unwrap_err()
            .contains("https:// or file://"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, br#"{"keys":[]}"#).unwrap();
        let error = fetch(&format!("file://{}", path.display())).unwrap_err();
        assert!(error.contains("none of its 0 keys"), "{error}");
        assert!(fetch("file:///nonexistent/jwks.json")
            .unwrap_err()
            .contains("cannot read"));
    }
}
