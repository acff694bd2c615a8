use std::collections::BTreeMap;

use super::super::scram::{credential_from_password, ScramServer};
use super::super::{Credentials, Step};
use super::*;

/// RFC 7677 section 3: user "user", password "pencil".
const RFC7677_CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const RFC7677_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const RFC7677_SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const RFC7677_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const RFC7677_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

/// The SCRAM-SHA-512 exchange of `scram_tests.rs` (Python's hashlib).
const SHA512_CLIENT_NONCE: &str = "fyko+d2lbbFgONRv9qkxdawL";
const SHA512_CLIENT_FIRST: &str = "n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL";
const SHA512_SERVER_FIRST: &str =
    "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096";
const SHA512_CLIENT_FINAL: &str = "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=HaikemR29Zh7A9Q0eFSXcXNonJ9f/Lh+Q0hTL2CEJBNcpBthqTFnyhirqjjXQFr8Z4IDRi8XlEQs0jLfW4HdPA==";
const SHA512_SERVER_FINAL: &str =
    "v=3PF6hBoFM5lxYIaJr3NIH5NgWzXrSyCcXzcBlgzqqn75nDafhFe+qwQw9lFvyq4ffzugN+I3cni1p4OSo5jL3A==";

fn credentials(user: &str, password: &str) -> ClientCredentials {
    ClientCredentials {
        user: user.to_string(),
        password: password.to_string(),
    }
}

fn client(mechanism: SaslMechanism, user: &str, password: &str, nonce: &str) -> ScramClient {
    let (client, _) = ScramClient::start(mechanism, &credentials(user, password), nonce.into());
    client
}

#[test]
fn the_rfc_7677_exchange_is_reproduced_and_the_server_checked() {
    let (mut client, first) = ScramClient::start(
        SaslMechanism::ScramSha256,
        &credentials("user", "pencil"),
        RFC7677_CLIENT_NONCE.into(),
    );
    assert_eq!(first, RFC7677_CLIENT_FIRST.as_bytes());
    assert_eq!(
        client.step(RFC7677_SERVER_FIRST.as_bytes()),
        Ok(ClientStep::Send(RFC7677_CLIENT_FINAL.as_bytes().to_vec()))
    );
    assert_eq!(
        client.step(RFC7677_SERVER_FINAL.as_bytes()),
        Ok(ClientStep::Done)
    );
    assert!(client.step(b"v=x").is_err(), "nothing after the end");
}

#[test]
fn the_sha_512_exchange_is_reproduced() {
    let (mut client, first) = ScramClient::start(
        SaslMechanism::ScramSha512,
        &credentials("alice", "alice-secret"),
        SHA512_CLIENT_NONCE.into(),
    );
    assert_eq!(first, SHA512_CLIENT_FIRST.as_bytes());
    assert_eq!(
        client.step(SHA512_SERVER_FIRST.as_bytes()),
        Ok(ClientStep::Send(SHA512_CLIENT_FINAL.as_bytes().to_vec()))
    );
    assert_eq!(
        client.step(SHA512_SERVER_FINAL.as_bytes()),
        Ok(ClientStep::Done)
    );
}

#[test]
fn a_server_that_does_not_know_the_password_is_not_believed() {
    let mut client = client(
        SaslMechanism::ScramSha256,
        "user",
        "pencil",
        RFC7677_CLIENT_NONCE,
    );
    client.step(RFC7677_SERVER_FIRST.as_bytes()).unwrap();
    // The RFC's signature with its last character changed.
    let forged = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=";
    assert!(matches!(
        client.step(forged.as_bytes()),
        Err(SaslError::Invalid(_))
    ));
    let mut client = client_after_first();
    assert!(matches!(
        client.step(b"e=invalid-proof"),
        Err(SaslError::Refused(message)) if message.contains("invalid-proof")
    ));
    let mut client = client_after_first();
    assert!(client.step(b"garbage").is_err());
}

fn client_after_first() -> ScramClient {
    let mut client = client(
        SaslMechanism::ScramSha256,
        "user",
        "pencil",
        RFC7677_CLIENT_NONCE,
    );
    client.step(RFC7677_SERVER_FIRST.as_bytes()).unwrap();
    client
}

#[test]
fn bad_server_first_messages_are_refused() {
    let refused = |server_first: &str| {
        client(SaslMechanism::ScramSha256, "user", "pencil", "abc")
            .step(server_first.as_bytes())
            .is_err()
    };
    // The server's nonce must extend the client's.
    assert!(refused("r=xyzdef,s=QUJD,i=4096"));
    assert!(refused("r=abc,s=QUJD,i=4096"));
    // Too few or too many iterations (a server cannot make us spin).
    assert!(refused("r=abcdef,s=QUJD,i=4095"));
    assert!(refused("r=abcdef,s=QUJD,i=100000000"));
    assert!(refused("r=abcdef,s=QUJD,i=many"));
    assert!(refused("r=abcdef,s=not base64!,i=4096"));
    assert!(refused("m=ext,r=abcdef,s=QUJD,i=4096"));
    assert!(refused("r=abcdef"));
    assert!(refused(""));
    assert!(client(SaslMechanism::ScramSha256, "user", "pencil", "abc")
        .step(&[0xff, 0xfe])
        .is_err());
    assert!(!refused("r=abcdef,s=QUJD,i=4096"));
}

#[test]
fn the_client_and_shoals_server_agree_for_both_mechanisms() {
    for mechanism in [SaslMechanism::ScramSha256, SaslMechanism::ScramSha512] {
        for (password, accepted) in [("right", true), ("wrong", false)] {
            let credential = credential_from_password(mechanism, "right", b"salt-salt", 4096);
            let users = BTreeMap::new();
            let lookup = |m: SaslMechanism, name: &str| {
                (m == mechanism && name == "a,b=c").then(|| credential.clone())
            };
            let server_credentials = Credentials {
                plain_users: &users,
                scram: &lookup,
                oauth: None,
            };
            let mut server = ScramServer::new(mechanism, "server-nonce".into());
            let (mut client, first) =
                ClientExchange::start(mechanism, &credentials("a,b=c", password)).unwrap();
            let Ok(Step::Continue(server_first)) = server.step(&first, &server_credentials) else {
                panic!("server-first expected");
            };
            let ClientStep::Send(last) = client.step(&server_first).unwrap() else {
                panic!("client-final expected");
            };
            match server.step(&last, &server_credentials) {
                Ok(Step::Done { user, token }) => {
                    assert!(accepted);
                    assert_eq!(user, "a,b=c");
                    assert_eq!(client.step(&token), Ok(ClientStep::Done));
                }
                Err(_) => assert!(!accepted),
                Ok(other) => panic!("{other:?}"),
            }
        }
    }
}

#[test]
fn plain_sends_one_token_and_is_done_on_the_answer() {
    let (mut exchange, token) =
        ClientExchange::start(SaslMechanism::Plain, &credentials("alice", "s3cret")).unwrap();
    assert_eq!(token, b"\0alice\0s3cret");
    assert_eq!(exchange.step(b""), Ok(ClientStep::Done));
}

#[test]
fn user_names_are_escaped_and_debug_hides_the_password() {
    assert_eq!(escape("a,b=c"), "a=2Cb=3Dc");
    let shown = format!("{:?}", credentials("alice", "s3cret"));
    assert!(
        shown.contains("alice") && !shown.contains("s3cret"),
        "{shown}"
    );
}
