use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};

use super::*;

/// Bytes echoed in one test: several TLS records, more than the relay
/// holds at once.
const ECHO_BYTES: usize = 600 * 1024;

/// A CA's rustls client settings and a server's settings it signed for
/// 127.0.0.1.
fn configs() -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let key = KeyPair::generate().expect("key");
    let server = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .signed_by(&key, &ca, &ca_key)
        .expect("server");
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).expect("ca"))
        .expect("root");
    let client = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let chain = vec![CertificateDer::from_pem_slice(server.pem().as_bytes()).expect("chain")];
    let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).expect("key");
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
    (Arc::new(client), Arc::new(server))
}

/// A TLS server on a loopback port that echoes what it reads until the
/// client closes; its address and the bytes it echoed.
fn echo_server(config: Arc<ServerConfig>) -> (String, std::thread::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let server = std::thread::spawn(move || {
        let (socket, _) = listener.accept().expect("accept");
        let connection = ServerConnection::new(config).expect("connection");
        let mut stream = StreamOwned::new(connection, socket);
        let mut echoed = 0;
        let mut buffer = vec![0u8; 32 * 1024];
        loop {
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => return echoed,
                Ok(read) => {
                    if stream.write_all(&buffer[..read]).is_err() {
                        return echoed;
                    }
                    echoed += read;
                }
            }
        }
    });
    (address, server)
}

#[test]
fn bytes_go_through_the_relay_both_ways_and_a_close_ends_it() {
    let (client, server) = configs();
    let (address, echo) = echo_server(server);
    let socket = TcpStream::connect(&address).expect("connect");
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let application = connect(socket, client, name).expect("handshake");
    let mut reader = application.try_clone().expect("clone");
    let mut writer = application;
    let sent: Vec<u8> = (0..ECHO_BYTES).map(|i| (i % 251) as u8).collect();
    let to_send = sent.clone();
    // One thread writes while this one reads, as a pipelined connection.
    let writing = std::thread::spawn(move || {
        writer.write_all(&to_send).expect("write");
        writer
    });
    let mut got = vec![0u8; ECHO_BYTES];
    reader.read_exact(&mut got).expect("echo");
    assert!(got == sent, "the echo differs");
    drop(writing.join().expect("writer"));
    drop(reader);
    assert_eq!(echo.join().expect("server"), ECHO_BYTES);
}

#[test]
fn a_server_the_truststore_does_not_know_is_refused_at_connect() {
    let (_, server) = configs();
    let (other_client, _) = configs();
    let (address, _echo) = echo_server(server);
    let socket = TcpStream::connect(&address).expect("connect");
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let error = connect(socket, other_client, name).expect_err("refused");
    assert!(
        format!("{error:#}").contains("TLS handshake failed"),
        "{error:#}"
    );
}
