//! The RFC 7628 message, the exchange (a refusal as a JSON challenge,
//! then the client's %x01), and Kafka's unsecured validator.

use std::collections::BTreeMap;

use base64::Engine;

use super::super::oauthbearer_unsecured::validate;
use super::*;
use crate::config::UnsecuredValidatorOptions;

const NOW_MS: i64 = 1_800_000_000_000;

fn unsecured_token(claims: &str) -> String {
    let encode = |part: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(part);
    format!("{}.{}.", encode(r#"{"alg":"none"}"#), encode(claims))
}

fn options() -> UnsecuredValidatorOptions {
    UnsecuredValidatorOptions {
        principal_claim_name: "sub".to_string(),
        scope_claim_name: "scope".to_string(),
        required_scope: Vec::new(),
        allowable_clock_skew_ms: 0,
    }
}

fn claims(extra: &str) -> String {
    let (iat, exp) = (NOW_MS / 1000 - 10, NOW_MS / 1000 + 60);
    format!(r#"{{"sub":"alice","iat":{iat},"exp":{exp}{extra}}}"#)
}

#[test]
fn the_client_first_message_parses_as_kafka_parses_it() {
    let first = client_first(b"n,,\x01auth=Bearer abc.def.\x01\x01").unwrap();
    assert_eq!(
        first,
        ClientFirst {
            authzid: "",
            token: "abc.def."
        }
    );
    let first =
        client_first(b"n,a=alice,\x01host=h\x01auth=bearer  t0k-_~+/=\x01port=9\x01\x01").unwrap();
    assert_eq!(
        first,
        ClientFirst {
            authzid: "alice",
            token: "t0k-_~+/="
        }
    );
    let generic = "Invalid OAUTHBEARER client first message";
    for bad in [
        &b""[..],
        b"y,,\x01auth=Bearer t\x01\x01",
        b"n,\x01auth=Bearer t\x01\x01",
        b"n,,auth=Bearer t\x01\x01",
        b"n,,\x01auth=Bearer t\x01",
        b"n,,\x01auth=Bearer t\x01\x01\x01",
        b"n,,\x01auth\x01\x01",
        b"n,,\x01k3y=v\x01auth=Bearer t\x01\x01",
        b"n,b=x,\x01auth=Bearer t\x01\x01",
        b"n,,\x01auth=Bearer t\xff\x01\x01",
    ] {
        assert_eq!(
            client_first(bad).unwrap_err(),
            SaslError::Invalid(generic.to_string()),
            "{bad:?}"
        );
    }
    let reason = |bad: &[u8]| client_first(bad).unwrap_err().reason().to_string();
    assert!(reason(b"n,,\x01host=h\x01\x01").ends_with("'auth' not specified"));
    assert!(reason(b"n,,\x01\x01").ends_with("'auth' not specified"));
    assert!(reason(b"n,,\x01auth=Bearer\x01\x01").ends_with("invalid 'auth' format"));
    assert!(reason(b"n,,\x01auth=Bearer a!b\x01\x01").ends_with("invalid 'auth' format"));
    assert!(reason(b"n,,\x01auth=Basic abc\x01\x01").starts_with("Invalid scheme"));
}

#[test]
fn the_unsecured_validator_checks_kafkas_claims() {
    let check = |claims: &str, options: &UnsecuredValidatorOptions| {
        validate(&unsecured_token(claims), options, NOW_MS)
    };
    let token = check(&claims(""), &options()).unwrap();
    assert_eq!(token.principal, "alice");
    assert_eq!(token.expires_ms, (NOW_MS / 1000 + 60) * 1000);
    let reason = |claims: &str, options: &UnsecuredValidatorOptions| {
        let failure = check(claims, options).unwrap_err();
        assert_eq!(failure.json(), r#"{"status":"invalid_token"}"#);
        failure.reason
    };
    let now_s = NOW_MS / 1000;
    assert_eq!(
        reason(r#"{"sub":"a"}"#, &options()),
        "No expiration time in JWT"
    );
    assert_eq!(
        reason(&format!(r#"{{"exp":{}}}"#, now_s + 5), &options()),
        "Required claim missing: sub"
    );
    assert!(
        reason(&format!(r#"{{"sub":1,"exp":{}}}"#, now_s + 5), &options())
            .contains("incorrect type")
    );
    assert!(
        reason(&format!(r#"{{"sub":"a","exp":{now_s}}}"#), &options())
            .contains("on or after the Expiration Time")
    );
    assert!(reason(
        &format!(r#"{{"sub":"a","exp":{},"iat":{}}}"#, now_s + 9, now_s + 1),
        &options()
    )
    .contains("Issued At value"));
    let skewed = UnsecuredValidatorOptions {
        allowable_clock_skew_ms: 2000,
        ..options()
    };
    assert!(check(
        &format!(r#"{{"sub":"a","exp":{},"iat":{}}}"#, now_s + 5, now_s + 1),
        &skewed
    )
    .is_ok());
    assert!(reason(
        &format!(r#"{{"sub":"a","exp":{},"iat":{}}}"#, now_s + 1, now_s + 1),
        &skewed
    )
    .contains("was not after the Issued At"));
    assert!(check(&format!(r#"{{"sub":"a","exp":{}}}"#, now_s - 1), &skewed).is_ok());
    let renamed = UnsecuredValidatorOptions {
        principal_claim_name: "client".to_string(),
        ..options()
    };
    assert_eq!(
        check(&claims(r#","client":"svc""#), &renamed).map(|t| t.principal),
        Ok("svc".to_string())
    );
    // A signature, or an algorithm, makes it no unsecured token.
    let signed = format!("{}sig", unsecured_token(&claims("")));
    assert!(validate(&signed, &options(), NOW_MS)
        .unwrap_err()
        .reason
        .contains("digital signature"));
    let encode = |part: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(part);
    let rs256 = format!("{}.{}.", encode(r#"{"alg":"RS256"}"#), encode(&claims("")));
    assert!(validate(&rs256, &options(), NOW_MS)
        .unwrap_err()
        .reason
        .contains("'none'"));
}

#[test]
fn a_missing_scope_is_insufficient_scope() {
    let wanted = UnsecuredValidatorOptions {
        required_scope: vec!["read".to_string(), "write".to_string()],
        ..options()
    };
    let ok = validate(
        &unsecured_token(&claims(r#","scope":"write read x""#)),
        &wanted,
        NOW_MS,
    );
    assert!(ok.is_ok());
    let ok = validate(
        &unsecured_token(&claims(r#","scope":["read","write"]"#)),
        &wanted,
        NOW_MS,
    );
    assert!(ok.is_ok());
    let failure = validate(
        &unsecured_token(&claims(r#","scope":"read""#)),
        &wanted,
        NOW_MS,
    )
    .unwrap_err();
    assert_eq!(
        failure.json(),
        r#"{"status":"insufficient_scope", "scope":"[read, write]"}"#
    );
    assert!(
        failure.reason.contains("missing a required scope (write)"),
        "{}",
        failure.reason
    );
}

/// An exchange with `server` through the unsecured validator.
fn exchange(server: &mut OAuthBearerServer, message: &[u8]) -> Result<Step, SaslError> {
    let users = BTreeMap::new();
    let validator: Validator<'_> = &|token: &str| validate(token, &options(), NOW_MS);
    let credentials = Credentials {
        plain_users: &users,
        scram: &|_, _| None,
        oauth: Some(validator),
    };
    server.step(message, &credentials)
}

fn first_message(authzid: &str, token: &str) -> Vec<u8> {
    format!("n,{authzid},\x01auth=Bearer {token}\x01\x01").into_bytes()
}

#[test]
fn a_valid_token_authenticates_its_subject_until_it_expires() {
    let mut server = OAuthBearerServer::default();
    let token = unsecured_token(&claims(""));
    assert_eq!(
        exchange(&mut server, &first_message("", &token)),
        Ok(Step::Done {
            user: "alice".to_string(),
            token: Vec::new()
        })
    );
    assert_eq!(server.expires_ms(), Some((NOW_MS / 1000 + 60) * 1000));
    let mut server = OAuthBearerServer::default();
    assert!(exchange(&mut server, &first_message("a=alice", &token)).is_ok());
    let mut server = OAuthBearerServer::default();
    let refused = exchange(&mut server, &first_message("a=bob", &token)).unwrap_err();
    assert!(
        matches!(&refused, SaslError::Refused(m) if m.contains("(bob)") && m.contains("(alice)"))
    );
}

#[test]
fn a_refusal_is_a_json_challenge_then_the_failure() {
    let mut server = OAuthBearerServer::default();
    let expired = unsecured_token(&format!(r#"{{"sub":"a","exp":{}}}"#, NOW_MS / 1000 - 1));
    assert_eq!(
        exchange(&mut server, &first_message("", &expired)),
        Ok(Step::Continue(br#"{"status":"invalid_token"}"#.to_vec()))
    );
    let SaslError::Token { answer, reason } = exchange(&mut server, b"\x01").unwrap_err() else {
        panic!("not a token refusal");
    };
    assert_eq!(answer, r#"{"status":"invalid_token"}"#);
    assert!(reason.contains("Expiration Time"), "{reason}");
    assert!(!reason.contains(&expired));
    assert_eq!(server.expires_ms(), None);
    // A %x01 with no refusal before it is no first message.
    let mut server = OAuthBearerServer::default();
    assert!(matches!(
        exchange(&mut server, b"\x01"),
        Err(SaslError::Invalid(_))
    ));
}
