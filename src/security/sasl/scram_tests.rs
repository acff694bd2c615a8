use std::collections::BTreeMap;

use super::*;

/// RFC 7677 section 3: user "user", password "pencil".
const RFC7677_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
const RFC7677_CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const RFC7677_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const RFC7677_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const RFC7677_SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const RFC7677_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const RFC7677_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

/// SCRAM-SHA-512 has no RFC example: this exchange was computed with
/// Python's hashlib and hmac (salt b"0123456789abcdef", 4096 iterations).
const SHA512_SERVER_NONCE: &str = "3rfcNHYJY1ZVvWVs7j";
const SHA512_CLIENT_FIRST: &str = "n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL";
const SHA512_SERVER_FIRST: &str =
    "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096";
const SHA512_CLIENT_FINAL: &str = "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=HaikemR29Zh7A9Q0eFSXcXNonJ9f/Lh+Q0hTL2CEJBNcpBthqTFnyhirqjjXQFr8Z4IDRi8XlEQs0jLfW4HdPA==";
const SHA512_SERVER_FINAL: &str =
    "v=3PF6hBoFM5lxYIaJr3NIH5NgWzXrSyCcXzcBlgzqqn75nDafhFe+qwQw9lFvyq4ffzugN+I3cni1p4OSo5jL3A==";
const SHA512_STORED_KEY: &str =
    "nmk6vIl7V+y4ZT9HOfhwQ3zYKcbc1h3I16wfNiNBKxSQVfy4DJaTPUF6DyLMQvUfc01rDC81sG0sX50SIYRuxA==";

fn rfc_credential() -> ScramCredential {
    let salt = BASE64.decode(RFC7677_SALT).unwrap();
    credential_from_password(SaslMechanism::ScramSha256, "pencil", &salt, 4096)
}

fn sha512_credential() -> ScramCredential {
    credential_from_password(
        SaslMechanism::ScramSha512,
        "alice-secret",
        b"0123456789abcdef",
        4096,
    )
}

/// Runs `tokens` through a server that knows `user` with `credential`;
/// the answers, or the first error.
fn exchange(
    mechanism: SaslMechanism,
    server_nonce: &str,
    user: &str,
    credential: ScramCredential,
    tokens: &[&str],
) -> Result<Vec<Step>, SaslError> {
    let users = BTreeMap::new();
    let lookup = move |m: SaslMechanism, name: &str| {
        (m == mechanism && name == user).then(|| credential.clone())
    };
    let credentials = Credentials {
        plain_users: &users,
        scram: &lookup,
        oauth: None,
    };
    let mut server = ScramServer::new(mechanism, server_nonce.to_string());
    tokens
        .iter()
        .map(|token| server.step(token.as_bytes(), &credentials))
        .collect()
}

fn rfc_exchange(tokens: &[&str]) -> Result<Vec<Step>, SaslError> {
    let nonce = RFC7677_SERVER_NONCE;
    exchange(
        SaslMechanism::ScramSha256,
        nonce,
        "user",
        rfc_credential(),
        tokens,
    )
}

#[test]
fn rfc_7677_sha_256_example() {
    let steps = rfc_exchange(&[RFC7677_CLIENT_FIRST, RFC7677_CLIENT_FINAL]).unwrap();
    assert_eq!(
        steps[0],
        Step::Continue(RFC7677_SERVER_FIRST.as_bytes().to_vec())
    );
    assert_eq!(
        steps[1],
        Step::Done {
            user: "user".to_string(),
            token: RFC7677_SERVER_FINAL.as_bytes().to_vec()
        }
    );
    assert!(RFC7677_SERVER_FIRST.contains(RFC7677_CLIENT_NONCE));
}

#[test]
fn sha_512_exchange_matches_an_independent_implementation() {
    let credential = sha512_credential();
    assert_eq!(BASE64.encode(&credential.stored_key), SHA512_STORED_KEY);
    let steps = exchange(
        SaslMechanism::ScramSha512,
        SHA512_SERVER_NONCE,
        "alice",
        credential,
        &[SHA512_CLIENT_FIRST, SHA512_CLIENT_FINAL],
    )
    .unwrap();
    assert_eq!(
        steps[0],
        Step::Continue(SHA512_SERVER_FIRST.as_bytes().to_vec())
    );
    assert_eq!(
        steps[1],
        Step::Done {
            user: "alice".to_string(),
            token: SHA512_SERVER_FINAL.as_bytes().to_vec()
        }
    );
}

#[test]
fn a_salted_password_makes_the_same_credential_as_its_password() {
    let salt = BASE64.decode(RFC7677_SALT).unwrap();
    let salted = salted_password(SaslMechanism::ScramSha256, b"pencil", &salt, 4096);
    let from_salted = credential_from_salted(SaslMechanism::ScramSha256, &salted, &salt, 4096);
    assert_eq!(from_salted, rfc_credential());
    assert!(!format!("{from_salted:?}").contains("stored"));
}

fn invalid(result: Result<Vec<Step>, SaslError>) -> String {
    match result {
        Err(SaslError::Invalid(reason)) => reason,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_wrong_proof_an_unknown_user_or_a_changed_nonce_fails() {
    let wrong_proof = RFC7677_CLIENT_FINAL.replace("p=dHzb", "p=dHzc");
    let reason = invalid(rfc_exchange(&[RFC7677_CLIENT_FIRST, &wrong_proof]));
    assert_eq!(reason, "Invalid client credentials");
    let unknown = invalid(rfc_exchange(&["n,,n=bob,r=abc"]));
    assert!(unknown.contains("Invalid user credentials"), "{unknown}");
    let other_nonce = RFC7677_CLIENT_FINAL.replace("$k0,", "$k1,");
    assert!(invalid(rfc_exchange(&[RFC7677_CLIENT_FIRST, &other_nonce])).contains("nonce"));
    let short_proof = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA";
    assert_eq!(
        invalid(rfc_exchange(&[RFC7677_CLIENT_FIRST, short_proof])),
        "Invalid client credentials"
    );
    let other_binding = RFC7677_CLIENT_FINAL.replace("c=biws", "c=eSws");
    assert!(invalid(rfc_exchange(&[RFC7677_CLIENT_FIRST, &other_binding])).contains("binding"));
    let again = [
        RFC7677_CLIENT_FIRST,
        RFC7677_CLIENT_FINAL,
        RFC7677_CLIENT_FINAL,
    ];
    assert!(invalid(rfc_exchange(&again)).contains("ended"));
}

#[test]
fn malformed_messages_fail_without_echoing_them() {
    for first in [
        "",
        "y,,n=user,r=abc",
        "n,,r=abc",
        "n,,n=user",
        "n,,n=,r=abc",
        "n,,n=us=er,r=abc",
        "n,,n=user,r=",
        "n,x,n=user,r=abc",
        "n,,n=user,r=abc,tokenauth=true",
        "n,,n=user,r=abc,junk",
    ] {
        let reason = invalid(rfc_exchange(&[first]));
        assert!(!reason.contains("user,"), "{first}: {reason}");
    }
    for last in ["", "c=biws", "p=abc", "c=biws,p=!!!", "r=x,c=biws,p=AAAA"] {
        invalid(rfc_exchange(&[RFC7677_CLIENT_FIRST, last]));
    }
    let not_utf8 = {
        let users = BTreeMap::new();
        let credentials = Credentials {
            plain_users: &users,
            scram: &|_, _| None,
            oauth: None,
        };
        let mut server = ScramServer::new(SaslMechanism::ScramSha256, "n".into());
        server.step(&[0xff, 0xfe], &credentials)
    };
    assert!(matches!(not_utf8, Err(SaslError::Invalid(_))));
}

#[test]
fn an_escaped_name_and_an_authorization_id_are_read_as_rfc_5802_says() {
    assert_eq!(sasl_name("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
    assert_eq!(sasl_name("a=2"), None);
    let first = "n,a=user,n=user,r=rOprNGfwEbeRWgbNEkqO";
    let steps = rfc_exchange(&[first]).unwrap();
    assert!(matches!(steps[0], Step::Continue(_)));
    match rfc_exchange(&["n,a=admin,n=user,r=abc"]) {
        Err(SaslError::Refused(message)) => assert!(message.contains("authorization id")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn too_few_iterations_on_record_fail() {
    let mut credential = rfc_credential();
    credential.iterations = ITERATIONS_MIN - 1;
    let nonce = RFC7677_SERVER_NONCE;
    let result = exchange(
        SaslMechanism::ScramSha256,
        nonce,
        "user",
        credential,
        &[RFC7677_CLIENT_FIRST],
    );
    assert!(invalid(result).contains("less than the minimum 4096"));
}

#[test]
fn a_password_matches_only_its_own_credential() {
    let sha256 = SaslMechanism::ScramSha256;
    assert!(password_matches(sha256, &rfc_credential(), "pencil"));
    assert!(!password_matches(sha256, &rfc_credential(), "pencil "));
    assert!(!password_matches(sha256, &rfc_credential(), ""));
    let sha512 = SaslMechanism::ScramSha512;
    assert!(password_matches(
        sha512,
        &sha512_credential(),
        "alice-secret"
    ));
    assert!(!password_matches(sha512, &sha512_credential(), "pencil"));
}
