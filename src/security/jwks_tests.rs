//! JWKS validation: keys made here (an RSA key fixed below, since ring
//! makes no RSA keys; a fresh P-256 key), tokens signed with them.

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, RsaKeyPair, RsaPublicKeyComponents, ECDSA_P256_SHA256_FIXED_SIGNING,
    RSA_PKCS1_SHA256,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;

use super::*;

/// A 2048-bit RSA key for these tests only.
const RSA_KEY: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDbplOmC0VL9VdV\n\
t4ohOpbGjszIx9CZO/HPHiB4q9gLqpahTRbRkk0HRiosQgLp5gOPLjW/ARriflkN\n\
QUbZq0G2ycSZpph+g8oeXISGb5d6mPvX2GTJ5o33AaXOyH0fNng16a1CEymStvW3\n\
chzLD/1oiZ8Mps2fDpNPwPF1+kulhS1rjNr8cYwgiQje94hs6fmkyiaA7aD5jxjH\n\
BTr+kG1S30QcEsg/D1vyjNu3Uyb0bjfrJ8VuI257zNJmNqBFQQxhIAucrNSNlyZB\n\
n80PWhfOzBTJ09SUcdoH6Gk/2wz6GH6aTBo6hOn8mcMSbSVxCYLemb6fI4Poqpnd\n\
S+h7DLMLAgMBAAECggEALqPWxz9Fa6eg79aVQhEKywavfULQjHkqE2y2QGlc6r1C\n\
VuXjnoSOTqkbc2Jg9AGfZ9vMFc7KQqXJiwL9ZGL1BTc6w9WYM+UQGfpTOaigZavu\n\
bhrI7AZExtpWtt3jk6khRXFlFM602S54ZoeYjZXLnVL7rtgMeWXC6gByRTbssSx9\n\
g8Lpoq07tFKLG2/ixMNK7XSbBQBeAgAt8pcmkcpOvJ6lR3cuOOuxjH8CuVw5wTmY\n\
RNW5hcImcZZNU3ZxaonTU2qDTwmxY+d8o6XqB9gxyEPWXuG2NdaZ+VN9oeKCcasf\n\
oJ+cTz3ODLE3kbQjOdOY/aQR4cJwZiORmoJ0dF0+QQKBgQD0lYrhH2rmqMfA1Ih6\n\
EagAqwhEC+h+oFXG4itskOK9zIQVpDulfyqAs2XW4H4FD2BCPSvTwuEY/uELlQPh\n\
Tu3Tpp8U9L9GHlU36BKDwKO2WxvEOJLr+fzaOgVBH3g4+Ww1YEhNDIiEywbxMUg0\n\
SMJa0ypbVx8Yb/C/Fg7Td0YkIwKBgQDl5tnF9QkH5SIz15sE2icetevRpnrjK2oI\n\
oGWrPOA6eMqNpb+hm285IwhsEjwFBeKXTL4W/FroSyoMiu3tq5PLW/zUVk3xq6d3\n\
rJTogv1u6M4kODcHOQQypwIB/AhjDB+Ro2bUMPbHdNfWUHubeBCm9HUQBhRr5weQ\n\
flC/iAyP+QKBgB4EOE4Wl/0E27b7nmA0yISEePg46eiYbs6AtUmWom0eq1sok7Vk\n\
3Od8nNP5Kx4d2/dlIHrVoOB7b00HlblSAXgHK+DbhJnrYRQCZDtNKgpYNhknxEg3\n\
nuN9WWW7ofqECdanIVhrYFnDvO9e1/iqsUeKQNmC4KsUGdyprVogejg3AoGAXKKL\n\
J0eXrvW1tVvv26GnV6mH7r79DyIEJJu0u63Yz9ayDyc1MwH1a/lgwGMMih2X8sz6\n\
XzqpyqXWuJ0WR8j10WAsXMa1u2YmIYOJsLJvOcxWm6OHEML5nQtMNM5/9qEA62cC\n\
3QcpuK6s9W8Sj09urkccECvS+LNrid5L3RENtskCgYEAh3LndtqJycDKR5+oaXXp\n\
1XoM6TMAQvV9cTNi64ODkAd23slHlzaLCnMod3ulCTvpR82xYMpUQglMJu8dIj9g\n\
MkPlqSPHsqLx500DCrWp2Jzvaet+bZmV4EJOExx8InXUvw2Qz9ybLql10slO6mBN\n\
zxBqe2z1hij7mYHlyfv1348=\n\
-----END PRIVATE KEY-----\n\
";
const NOW_MS: i64 = 1_800_000_000_000;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa_key() -> RsaKeyPair {
    let der = PrivateKeyDer::from_pem_slice(RSA_KEY.as_bytes()).expect("pem");
    RsaKeyPair::from_pkcs8(der.secret_der()).expect("rsa")
}

fn ec_key() -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("gen");
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).expect("ec")
}

fn key_set(rsa: &RsaKeyPair, ec: &EcdsaKeyPair) -> JwkSet {
    use ring::signature::KeyPair;
    let components = RsaPublicKeyComponents::<Vec<u8>>::from(rsa.public());
    let point = ec.public_key().as_ref();
    let document = serde_json::json!({"keys": [
        {"kty": "RSA", "kid": "r1", "use": "sig", "n": b64(&components.n), "e": b64(&components.e)},
        {"kty": "EC", "kid": "e1", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])},
        {"kty": "oct", "kid": "s1", "k": "c2VjcmV0"},
        {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
    ]});
    JwkSet::parse(document.to_string().as_bytes()).expect("jwks")
}

fn claims(extra: serde_json::Value) -> serde_json::Value {
    let mut claims = serde_json::json!({
        "sub": "alice", "iat": NOW_MS / 1000 - 10, "exp": NOW_MS / 1000 + 600,
        "aud": ["kafka"], "iss": "https://issuer",
    });
    for (key, value) in extra.as_object().expect("object") {
        claims[key] = value.clone();
    }
    claims
}

fn signed(
    header: serde_json::Value,
    claims: &serde_json::Value,
    sign: impl Fn(&[u8]) -> Vec<u8>,
) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = sign(input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

fn rs256(key: &RsaKeyPair, kid: &str, claims: &serde_json::Value) -> String {
    let header = serde_json::json!({"alg": "RS256", "kid": kid, "typ": "JWT"});
    signed(header, claims, |input| {
        let mut signature = vec![0; key.public().modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            input,
            &mut signature,
        )
        .expect("sign");
        signature
    })
}

fn es256(key: &EcdsaKeyPair, kid: Option<&str>, claims: &serde_json::Value) -> String {
    let header = match kid {
        Some(kid) => serde_json::json!({"alg": "ES256", "kid": kid}),
        None => serde_json::json!({"alg": "ES256"}),
    };
    signed(header, claims, |input| {
        key.sign(&SystemRandom::new(), input)
            .expect("sign")
            .as_ref()
            .to_vec()
    })
}

fn options() -> JwksValidatorOptions {
    JwksValidatorOptions {
        expected_audiences: vec!["kafka".to_string()],
        expected_issuer: Some("https://issuer".to_string()),
        sub_claim_name: "sub".to_string(),
        scope_claim_name: "scope".to_string(),
        clock_skew_seconds: 30,
    }
}

fn reason(result: Result<BearerToken, TokenFailure>) -> String {
    let failure = result.expect_err("refused");
    assert_eq!(failure.json(), r#"{"status":"invalid_token"}"#);
    failure.reason
}

#[test]
fn the_set_keeps_its_rsa_and_ec_signing_keys() {
    let (rsa, ec) = (rsa_key(), ec_key());
    assert_eq!(key_set(&rsa, &ec).len(), 2);
    assert!(JwkSet::parse(br#"{"keys":[{"kty":"oct","k":"x"}]}"#).is_err());
    assert!(JwkSet::parse(b"[]").is_err());
    assert!(JwkSet::parse(b"{").is_err());
}

#[test]
fn rs256_and_es256_tokens_verify_by_kid() {
    let (rsa, ec) = (rsa_key(), ec_key());
    let keys = key_set(&rsa, &ec);
    let expected = BearerToken {
        principal: "alice".to_string(),
        expires_ms: (NOW_MS / 1000 + 600) * 1000,
    };
    let token = rs256(&rsa, "r1", &claims(serde_json::json!({})));
    assert_eq!(
        validate(&token, &keys, &options(), NOW_MS),
        Ok(expected.clone())
    );
    let token = es256(&ec, Some("e1"), &claims(serde_json::json!({})));
    assert_eq!(
        validate(&token, &keys, &options(), NOW_MS),
        Ok(expected.clone())
    );
    // No kid: every key of the algorithm's type is tried.
    let token = es256(&ec, None, &claims(serde_json::json!({})));
    assert_eq!(validate(&token, &keys, &options(), NOW_MS), Ok(expected));
}

#[test]
fn a_wrong_key_kid_or_algorithm_is_refused() {
    let (rsa, ec) = (rsa_key(), ec_key());
    let keys = key_set(&rsa, &ec);
    let good = claims(serde_json::json!({}));
    let other = ec_key();
    let reasons = [
        es256(&other, Some("e1"), &good),
        rs256(&rsa, "nope", &good),
        rs256(&rsa, "e1", &good),
        signed(serde_json::json!({"alg": "none"}), &good, |_| Vec::new()),
        signed(
            serde_json::json!({"alg": "HS256", "kid": "s1"}),
            &good,
            |_| vec![1; 32],
        ),
    ]
    .map(|token| reason(validate(&token, &keys, &options(), NOW_MS)));
    assert!(
        reasons[0].contains("signature does not verify"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("no key"), "{reasons:?}");
    assert!(reasons[2].contains("no key"), "{reasons:?}");
    assert!(reasons[3].contains("'none' is not allowed"), "{reasons:?}");
    assert!(reasons[4].contains("'HS256' is not allowed"), "{reasons:?}");
    // A claim changed after signing.
    let token = rs256(&rsa, "r1", &good);
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = b64(claims(serde_json::json!({"sub": "mallory"}))
        .to_string()
        .as_bytes());
    parts[1] = &forged;
    let why = reason(validate(&parts.join("."), &keys, &options(), NOW_MS));
    assert!(why.contains("signature does not verify"), "{why}");
}

#[test]
fn claims_are_checked_as_kafka_configures_jose4j() {
    let (rsa, ec) = (rsa_key(), ec_key());
    let keys = key_set(&rsa, &ec);
    let check = |extra: serde_json::Value, now_ms: i64| {
        validate(
            &es256(&ec, Some("e1"), &claims(extra)),
            &keys,
            &options(),
            now_ms,
        )
    };
    let exp_ms = (NOW_MS / 1000 + 600) * 1000;
    // Within the 30 s of skew past exp, and not past it.
    assert!(check(serde_json::json!({}), exp_ms + 29_000).is_ok());
    assert!(reason(check(serde_json::json!({}), exp_ms + 30_000)).contains("no longer valid"));
    assert!(reason(check(serde_json::json!({"exp": null}), NOW_MS)).contains("(exp)"));
    assert!(reason(check(serde_json::json!({"iat": null}), NOW_MS)).contains("(iat)"));
    assert!(reason(check(
        serde_json::json!({"nbf": NOW_MS / 1000 + 60}),
        NOW_MS
    ))
    .contains("not yet valid"));
    assert!(check(serde_json::json!({"nbf": NOW_MS / 1000 + 20}), NOW_MS).is_ok());
    assert!(reason(check(serde_json::json!({"aud": "other"}), NOW_MS)).contains("Audience"));
    assert!(check(serde_json::json!({"aud": "kafka"}), NOW_MS).is_ok());
    assert!(reason(check(serde_json::json!({"aud": null}), NOW_MS)).contains("No Audience"));
    assert!(reason(check(serde_json::json!({"iss": "https://else"}), NOW_MS)).contains("Issuer"));
    assert!(reason(check(serde_json::json!({"sub": " "}), NOW_MS)).contains("sub value"));
    assert!(reason(check(serde_json::json!({"sub": 7}), NOW_MS)).contains("incorrect type"));
    // Without expectations, audience and issuer are not looked at.
    let open = JwksValidatorOptions {
        expected_audiences: Vec::new(),
        expected_issuer: None,
        sub_claim_name: "client_id".to_string(),
        ..options()
    };
    let token = es256(
        &ec,
        Some("e1"),
        &claims(serde_json::json!({"aud": null, "iss": null, "client_id": "svc"})),
    );
    assert_eq!(
        validate(&token, &keys, &open, NOW_MS).map(|t| t.principal),
        Ok("svc".to_string())
    );
}

#[test]
fn a_shards_cache_holds_the_last_set_installed() {
    let cache = JwksCache::default();
    assert!(cache.get("file:///k").is_none());
    let (rsa, ec) = (rsa_key(), ec_key());
    cache.install("file:///k", key_set(&rsa, &ec));
    assert_eq!(cache.get("file:///k").map(|keys| keys.len()), Some(2));
    cache.install("file:///k", JwkSet::parse(br#"{"keys":[{"kty":"EC","crv":"P-256","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}"#).expect("jwks"));
    assert_eq!(cache.get("file:///k").map(|keys| keys.len()), Some(1));
}
