use std::time::Duration;

use super::*;
use crate::config::{ClientAuth, PemSource, SslSettings};
use crate::security::tls::TlsAcceptor;

/// A CA's certificate, and a server key and chain it signed for
/// `localhost` and 127.0.0.1, and a client key and chain, all PEM.
struct Pki {
    ca: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "ca");
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let signed = |names: Vec<String>| {
        let key = KeyPair::generate().expect("key");
        let certificate = CertificateParams::new(names)
            .expect("params")
            .signed_by(&key, &ca, &ca_key)
            .expect("signed");
        (key.serialize_pem(), certificate.pem())
    };
    Pki {
        ca: ca.pem(),
        server: signed(vec!["localhost".into(), "127.0.0.1".into()]),
        client: signed(vec!["broker".into()]),
    }
}

fn settings(ca: &str, keystore: Option<&(String, String)>, check_name: bool) -> ClientTlsSettings {
    ClientTlsSettings {
        truststore: PemSource::Inline(ca.to_string()),
        keystore: keystore.map(|(key, chain)| {
            (
                PemSource::Inline(key.clone()),
                PemSource::Inline(chain.clone()),
            )
        }),
        key_password: None,
        endpoint_identification: check_name,
        enabled_protocols: vec!["TLSv1.2".into(), "TLSv1.3".into()],
    }
}

fn acceptor(pki: &Pki, client_auth: ClientAuth) -> TlsAcceptor {
    TlsAcceptor::new(&SslSettings {
        keystore: (
            PemSource::Inline(pki.server.0.clone()),
            PemSource::Inline(pki.server.1.clone()),
        ),
        key_password: None,
        truststore: Some(PemSource::Inline(pki.ca.clone())),
        client_auth,
        enabled_protocols: vec!["TLSv1.2".into(), "TLSv1.3".into()],
        cipher_suites: Vec::new(),
        principal_mapping_rules: "DEFAULT".into(),
    })
    .expect("acceptor")
}

/// A glommio TLS listener with `acceptor` and a `TlsClientStream` to it
/// as `host`: the principal the server saw and the echo the client read,
/// or the first failure.
fn round_trip(
    acceptor: TlsAcceptor,
    config: Arc<ClientConfig>,
    host: &str,
) -> Result<String, String> {
    let name = server_name(host)?;
    crate::shard::block_on(move || async move {
        let listener = glommio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let server = glommio::spawn_local(async move {
            let stream = listener.accept().await.expect("accept");
            let writer = crate::server::connection::writer_handle(&stream).expect("dup");
            let (mut reader, mut writer, principal) = acceptor
                .accept(stream, writer, Duration::from_secs(5))
                .await
                .map_err(|error| error.to_string())?;
            let mut message = [0u8; 5];
            let mut got = 0;
            while got < message.len() {
                let read = reader
                    .read(&mut message[got..])
                    .await
                    .map_err(|e| e.to_string())?;
                if read == 0 {
                    return Err("closed early".to_string());
                }
                got += read;
            }
            let mut answer = principal.to_string().into_bytes();
            answer.extend_from_slice(&message);
            writer.write_all(&answer).await.map_err(|e| e.to_string())?;
            writer.flush().await.map_err(|e| e.to_string())?;
            Ok::<usize, String>(answer.len())
        })
        .detach();
        let socket = glommio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let client = async {
            let mut stream = TlsClientStream::connect(config, name, socket)
                .await
                .map_err(|error| error.to_string())?;
            stream
                .write_all(b"hello")
                .await
                .map_err(|e| e.to_string())?;
            let answer_bytes = server.await.ok_or("server task gone")??;
            let mut answer = vec![0u8; answer_bytes];
            stream
                .read_exact(&mut answer)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<String, String>(String::from_utf8_lossy(&answer).into_owned())
        };
        client.await
    })
}

#[test]
fn a_shard_speaks_tls_to_a_listener_and_checks_its_name() {
    let pki = pki();
    let checked = client_config(&settings(&pki.ca, None, true)).unwrap();
    assert_eq!(
        round_trip(
            acceptor(&pki, ClientAuth::None),
            checked.clone(),
            "localhost"
        )
        .unwrap(),
        "User:ANONYMOUShello"
    );
    assert_eq!(
        round_trip(
            acceptor(&pki, ClientAuth::None),
            checked.clone(),
            "127.0.0.1"
        )
        .unwrap(),
        "User:ANONYMOUShello"
    );
    let error = round_trip(acceptor(&pki, ClientAuth::None), checked, "elsewhere").unwrap_err();
    assert!(error.contains("name") || error.contains("Name"), "{error}");
    let unchecked = client_config(&settings(&pki.ca, None, false)).unwrap();
    assert!(round_trip(acceptor(&pki, ClientAuth::None), unchecked, "elsewhere").is_ok());
}

#[test]
fn another_ca_is_refused_even_without_the_name_check() {
    let pki = pki();
    let other = self::pki();
    let config = client_config(&settings(&other.ca, None, false)).unwrap();
    assert!(round_trip(acceptor(&pki, ClientAuth::None), config, "localhost").is_err());
}

#[test]
fn the_client_certificate_is_presented_for_mutual_tls() {
    let pki = pki();
    let with = client_config(&settings(&pki.ca, Some(&pki.client), true)).unwrap();
    let answer = round_trip(acceptor(&pki, ClientAuth::Required), with, "localhost").unwrap();
    assert!(answer.starts_with("User:CN="), "{answer}");
    let without = client_config(&settings(&pki.ca, None, true)).unwrap();
    assert!(round_trip(acceptor(&pki, ClientAuth::Required), without, "localhost").is_err());
}

#[test]
fn bad_stores_are_refused_with_the_reason() {
    let pki = pki();
    let error = client_config(&settings("not pem", None, true)).unwrap_err();
    assert!(error.contains("ssl.truststore"), "{error}");
    let broken = ("no key".to_string(), pki.client.1.clone());
    let error = client_config(&settings(&pki.ca, Some(&broken), true)).unwrap_err();
    assert!(error.contains("ssl.keystore"), "{error}");
    assert!(server_name("[::1]").is_ok());
    assert!(server_name("bad host!").is_err());
}
