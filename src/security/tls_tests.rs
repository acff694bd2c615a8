use std::io::{Read as _, Write as _};
use std::net::SocketAddr;

use super::*;
use crate::config::SslSettings;

/// A CA, a server certificate and key it signed, and a client certificate
/// and key it signed (subject `CN=alice,O=corp`), all PEM.
struct Pki {
    ca: String,
    server_chain: String,
    server_key: String,
    client_chain: String,
    client_key: String,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "test-ca");
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let server_key = KeyPair::generate().expect("key");
    let server = CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .signed_by(&server_key, &ca, &ca_key)
        .expect("server");
    let client_key = KeyPair::generate().expect("key");
    let mut client_params = CertificateParams::new(Vec::new()).expect("params");
    client_params.distinguished_name = rcgen::DistinguishedName::new();
    client_params
        .distinguished_name
        .push(DnType::OrganizationName, "corp");
    client_params
        .distinguished_name
        .push(DnType::CommonName, "alice");
    let client = client_params
        .signed_by(&client_key, &ca, &ca_key)
        .expect("client");
    Pki {
        ca: ca.pem(),
        server_chain: server.pem(),
        server_key: server_key.serialize_pem(),
        client_chain: client.pem(),
        client_key: client_key.serialize_pem(),
    }
}

fn settings(pki: &Pki, client_auth: ClientAuth, rules: &str) -> SslSettings {
    SslSettings {
        keystore: (
            PemSource::Inline(pki.server_key.clone()),
            PemSource::Inline(pki.server_chain.clone()),
        ),
        key_password: None,
        truststore: Some(PemSource::Inline(pki.ca.clone())),
        client_auth,
        enabled_protocols: vec!["TLSv1.2".into(), "TLSv1.3".into()],
        cipher_suites: Vec::new(),
        principal_mapping_rules: rules.to_string(),
    }
}

/// A blocking rustls client for `pki`, with the client certificate when
/// `with_certificate`.
fn client_config(pki: &Pki, with_certificate: bool) -> Arc<rustls::ClientConfig> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates(pki.ca.as_bytes(), "ca").expect("ca") {
        roots.add(certificate).expect("root");
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = if with_certificate {
        let chain = certificates(pki.client_chain.as_bytes(), "chain").expect("chain");
        let key = PrivateKeyDer::from_pem_slice(pki.client_key.as_bytes()).expect("key");
        builder
            .with_client_auth_cert(chain, key)
            .expect("client cert")
    } else {
        builder.with_no_client_auth()
    };
    Arc::new(config)
}

/// Runs `acceptor` on a glommio listener against `client` (run on its own
/// thread with the address); what the server's `accept` and its session
/// gave, and the client's result.
fn serve_one<C: Send + 'static>(
    acceptor: TlsAcceptor,
    bound: Duration,
    client: impl FnOnce(SocketAddr) -> C + Send + 'static,
) -> (Result<Vec<u8>, String>, C) {
    crate::shard::block_on(move || async move {
        let listener = glommio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let client = std::thread::spawn(move || client(address));
        let stream = listener.accept().await.expect("accept");
        let writer = crate::server::connection::writer_handle(&stream).expect("dup");
        let served = match acceptor.accept(stream, writer, bound).await {
            Ok((mut reader, mut writer, principal)) => {
                // Echo one message, prefixed with the principal.
                let mut message = vec![0u8; 5];
                let mut got = 0;
                while got < message.len() {
                    let read = reader.read(&mut message[got..]).await.expect("read");
                    assert!(read > 0, "closed early");
                    got += read;
                }
                let mut answer = principal.to_string().into_bytes();
                answer.extend_from_slice(&message);
                writer.write_all(&answer).await.expect("write");
                writer.flush().await.expect("flush");
                writer.close().await;
                Ok(answer)
            }
            Err(error) => Err(error.to_string()),
        };
        (served, client.join().expect("client thread"))
    })
}

fn tls_client(config: Arc<rustls::ClientConfig>, address: SocketAddr) -> Result<Vec<u8>, String> {
    let socket = std::net::TcpStream::connect(address).map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let connection = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let mut stream = rustls::StreamOwned::new(connection, socket);
    stream.write_all(b"hello").map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => Ok(answer),
        Err(error) => Err(error.to_string()),
    }
}

#[test]
fn a_client_with_a_certificate_is_its_mapped_subject() {
    let pki = pki();
    let acceptor = TlsAcceptor::new(&settings(
        &pki,
        ClientAuth::Required,
        "RULE:^CN=([^,]*),O=corp$/$1/U,DEFAULT",
    ))
    .expect("acceptor");
    let config = client_config(&pki, true);
    let (served, client) = serve_one(acceptor, Duration::from_secs(5), move |address| {
        tls_client(config, address)
    });
    assert_eq!(served.expect("served"), b"User:ALICEhello");
    assert_eq!(client.expect("client"), b"User:ALICEhello");
}

#[test]
fn a_client_without_a_certificate_is_refused_where_one_is_required() {
    let pki = pki();
    let acceptor =
        TlsAcceptor::new(&settings(&pki, ClientAuth::Required, "DEFAULT")).expect("acceptor");
    let config = client_config(&pki, false);
    let (served, client) = serve_one(acceptor, Duration::from_secs(5), move |address| {
        tls_client(config, address)
    });
    let error = served.expect_err("refused");
    assert!(error.contains("TLS handshake failed"), "{error}");
    assert!(client.is_err(), "the client was answered");
}

#[test]
fn a_client_without_a_certificate_is_anonymous_where_one_is_requested() {
    let pki = pki();
    let acceptor =
        TlsAcceptor::new(&settings(&pki, ClientAuth::Requested, "DEFAULT")).expect("acceptor");
    let config = client_config(&pki, false);
    let (served, _) = serve_one(acceptor, Duration::from_secs(5), move |address| {
        tls_client(config, address)
    });
    assert_eq!(served.expect("served"), b"User:ANONYMOUShello");
}

/// What the server says to a client that sends `bytes` and then waits
/// (`hold`) or closes.
fn after_sending(bytes: Vec<u8>, hold: bool, bound: Duration) -> String {
    let pki = pki();
    let acceptor =
        TlsAcceptor::new(&settings(&pki, ClientAuth::None, "DEFAULT")).expect("acceptor");
    let (served, _) = serve_one(acceptor, bound, move |address| {
        let mut socket = std::net::TcpStream::connect(address).expect("connect");
        let _ = socket.write_all(&bytes);
        if hold {
            let _ = socket.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = socket.read_to_end(&mut Vec::new());
        }
    });
    served.expect_err("no connection")
}

#[test]
fn garbage_truncation_and_silence_end_the_handshake_cleanly() {
    let bound = Duration::from_millis(300);
    // A Kafka request, as a PLAINTEXT client would send it.
    let kafka = [0, 0, 0, 10, 0, 18, 0, 3, 0, 0, 0, 1, 0, 0].to_vec();
    assert!(after_sending(kafka, true, bound).contains("TLS handshake failed"));
    // A ClientHello's record header and a few bytes, then the end.
    let truncated = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01].to_vec();
    assert!(after_sending(truncated.clone(), false, bound).contains("closed during"));
    // The same, held open: the bound ends it.
    assert!(after_sending(truncated, true, bound).contains("unfinished after 300 ms"));
    // Random bytes from a fixed seed (xorshift), many times over.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..20 {
        let bytes: Vec<u8> = (0..512)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let _ = after_sending(bytes, false, bound);
    }
}

#[test]
fn an_encrypted_key_without_its_password_and_an_unknown_suite_are_refused_with_the_reason() {
    let pki = pki();
    let mut encrypted = settings(&pki, ClientAuth::None, "DEFAULT");
    encrypted.keystore.0 = PemSource::Inline(
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
            .to_string(),
    );
    let error = TlsAcceptor::new(&encrypted).expect_err("refused");
    assert!(error.contains("ssl.key.password is not set"), "{error}");
    encrypted.key_password = Some("secret".to_string());
    let error = TlsAcceptor::new(&encrypted).expect_err("refused");
    assert!(error.contains("encrypted private key"), "{error}");
    let mut suites = settings(&pki, ClientAuth::None, "DEFAULT");
    suites.cipher_suites = vec!["TLS_RSA_WITH_NULL_SHA".to_string()];
    let error = TlsAcceptor::new(&suites).expect_err("refused");
    assert!(error.contains("not a suite shoal offers"), "{error}");
    suites.cipher_suites = vec!["TLS_AES_128_GCM_SHA256".to_string()];
    assert!(TlsAcceptor::new(&suites).is_ok());
}

#[test]
fn a_reload_reads_the_new_keystore_and_keeps_its_subject() {
    let dir = tempfile::tempdir().expect("dir");
    let write = |name: &str, key: &str, chain: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{key}{chain}")).expect("write");
        path.display().to_string()
    };
    let (first, second) = (pki(), pki());
    let mut security = SecurityConfig::default();
    security.set("ssl.keystore.type", "PEM").expect("type");
    let path = write("first.pem", &first.server_key, &first.server_chain);
    security
        .set("ssl.keystore.location", &path)
        .expect("location");
    let current = TlsAcceptor::new(&security.ssl("SSL").expect("settings")).expect("acceptor");
    let key = "listener.name.ssl.ssl.keystore.location";
    let renewed = write("second.pem", &second.server_key, &second.server_chain);
    let dynamic = BTreeMap::from([(key.to_string(), renewed)]);
    let reloaded = reload(&security, &dynamic, "SSL", Some(&current)).expect("reload");
    assert_eq!(reloaded.subject, current.subject);
    assert!(!Arc::ptr_eq(&reloaded.config, &current.config));
    // Another listener's keys leave this one's alone; a certificate for
    // another subject is refused, as is a file that is not there.
    let elsewhere = BTreeMap::from([(
        "listener.name.other.ssl.keystore.location".to_string(),
        "/nonexistent.pem".to_string(),
    )]);
    assert!(reload(&security, &elsewhere, "SSL", Some(&current)).is_ok());
    let other = write("other.pem", &first.client_key, &first.client_chain);
    let dynamic = BTreeMap::from([(key.to_string(), other)]);
    let error = reload(&security, &dynamic, "SSL", Some(&current)).unwrap_err();
    assert!(
        error.contains("Keystore DistinguishedName does not match"),
        "{error}"
    );
    assert!(error.contains("CN=alice"), "{error}");
    let dynamic = BTreeMap::from([(key.to_string(), "/nonexistent.pem".to_string())]);
    assert!(reload(&security, &dynamic, "SSL", Some(&current)).is_err());
    // A shard's acceptors: a reload replaces what serves; the static
    // acceptor, installed at start, does not replace a reload that came
    // first.
    let acceptors = TlsAcceptors::default();
    assert!(acceptors.get("SSL").is_none());
    let (current, reloaded) = (Arc::new(current), Arc::new(reloaded));
    acceptors.install_static("SSL", current.clone());
    assert!(Arc::ptr_eq(
        &acceptors.get("SSL").expect("static"),
        &current
    ));
    acceptors.install("SSL", reloaded.clone());
    assert!(Arc::ptr_eq(
        &acceptors.get("SSL").expect("reloaded"),
        &reloaded
    ));
    acceptors.install_static("SSL", current);
    assert!(Arc::ptr_eq(&acceptors.get("SSL").expect("kept"), &reloaded));
}
