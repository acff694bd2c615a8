//! OAUTHBEARER tokens signed by an identity provider, checked against its
//! JSON Web Key Set (RFC 7517) as Kafka's `OAuthBearerValidatorCallbackHandler`
//! checks them (jose4j underneath): the signature by the key its `kid`
//! names (RS256/384/512 with RSA keys, ES256/384 with P-256/P-384 keys,
//! verified by ring; `none` refused), then the claims: `exp` and `iat`
//! required, `nbf` if present, each within `sasl.oauthbearer.clock.skew.seconds`;
//! `aud` among `sasl.oauthbearer.expected.audience` and `iss` equal to
//! `sasl.oauthbearer.expected.issuer` when they are set; the principal
//! from `sasl.oauthbearer.sub.claim.name`. `JwksCache` is a shard's copy
//! of each key set it uses, which `server::jwks_refresh` replaces.
//!
//! Invariant: pure: the key set comes in parsed (`jwks_fetch` reads it),
//! the time is an argument; no error holds the token.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::Value;

use super::jws::{self, Jws};
use super::sasl::oauthbearer::{BearerToken, TokenFailure};
use crate::config::JwksValidatorOptions;

/// Keys taken from one set: a provider publishes a few (current and
/// next); this bounds the work of a set that lists many.
pub const KEYS_MAX: usize = 64;

/// The signature algorithms served, by JWS name (RFC 7518 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Rs256,
    Rs384,
    Rs512,
    Es256,
    Es384,
}

impl Algorithm {
    fn of(name: &str) -> Option<Algorithm> {
        Some(match name {
            "RS256" => Algorithm::Rs256,
            "RS384" => Algorithm::Rs384,
            "RS512" => Algorithm::Rs512,
            "ES256" => Algorithm::Es256,
            "ES384" => Algorithm::Es384,
            _ => return None,
        })
    }
}

/// One public key of a set.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PublicKey {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed point (`0x04 || x || y`) and its curve's size.
    Ec {
        point: Vec<u8>,
        p384: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Jwk {
    kid: Option<String>,
    key: PublicKey,
}

/// A parsed key set: the signing keys shoal can use, others skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwkSet {
    keys: Vec<Jwk>,
}

impl JwkSet {
    /// Parses a JWKS document; fails when it holds no key shoal can use.
    pub fn parse(document: &[u8]) -> Result<JwkSet, String> {
        let value: Value =
            serde_json::from_slice(document).map_err(|error| format!("not JSON: {error}"))?;
        let listed = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("no \"keys\" array")?;
        let keys: Vec<Jwk> = listed.iter().filter_map(jwk).take(KEYS_MAX).collect();
        if keys.is_empty() {
            return Err(format!(
                "none of its {} keys is an RSA or EC (P-256, P-384) signing key",
                listed.len()
            ));
        }
        Ok(JwkSet { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys that may have signed a token with this `kid` (all when
    /// the token names none, as jose4j tries them) and algorithm.
    fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        algorithm: Algorithm,
    ) -> impl Iterator<Item = &'a Jwk> + 'a {
        self.keys.iter().filter(move |jwk| {
            let kid_ok = kid.is_none() || jwk.kid.as_deref() == kid;
            let type_ok = matches!(
                (&jwk.key, algorithm),
                (
                    PublicKey::Rsa { .. },
                    Algorithm::Rs256 | Algorithm::Rs384 | Algorithm::Rs512
                ) | (PublicKey::Ec { p384: false, .. }, Algorithm::Es256)
                    | (PublicKey::Ec { p384: true, .. }, Algorithm::Es384)
            );
            kid_ok && type_ok
        })
    }
}

/// One key of the set, if it is a signing key of a type shoal verifies.
fn jwk(value: &Value) -> Option<Jwk> {
    let field = |name: &str| value.get(name).and_then(Value::as_str);
    if field("use").is_some_and(|usage| usage != "sig") {
        return None;
    }
    let bytes = |name: &str| field(name).and_then(|part| jws::base64url(part, name).ok());
    let key = match (field("kty")?, field("crv")) {
        ("RSA", _) => PublicKey::Rsa {
            n: bytes("n")?,
            e: bytes("e")?,
        },
        ("EC", Some(curve @ ("P-256" | "P-384"))) => {
            let (x, y) = (bytes("x")?, bytes("y")?);
            let size = if curve == "P-256" { 32 } else { 48 };
            if x.len() != size || y.len() != size {
                return None;
            }
            let mut point = vec![0x04];
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            PublicKey::Ec {
                point,
                p384: size == 48,
            }
        }
        _ => return None,
    };
    Some(Jwk {
        kid: field("kid").map(str::to_string),
        key,
    })
}

fn verifies(key: &PublicKey, algorithm: Algorithm, message: &[u8], signature: &[u8]) -> bool {
    match key {
        PublicKey::Rsa { n, e } => {
            let parameters = match algorithm {
                Algorithm::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                Algorithm::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                _ => &signature::RSA_PKCS1_2048_8192_SHA512,
            };
            RsaPublicKeyComponents { n, e }
                .verify(parameters, message, signature)
                .is_ok()
        }
        PublicKey::Ec { point, p384 } => {
            let parameters = match p384 {
                false => &signature::ECDSA_P256_SHA256_FIXED,
                true => &signature::ECDSA_P384_SHA384_FIXED,
            };
            UnparsedPublicKey::new(parameters, point)
                .verify(message, signature)
                .is_ok()
        }
    }
}

/// Checks `token` against `keys` and `options` at `now_ms`.
pub fn validate(
    token: &str,
    keys: &JwkSet,
    options: &JwksValidatorOptions,
    now_ms: i64,
) -> Result<BearerToken, TokenFailure> {
    let invalid =
        |why: String| TokenFailure::invalid(format!("Could not validate the access token: {why}"));
    let jws = jws::parse(token).map_err(invalid)?;
    let named = jws.header.get("alg").and_then(Value::as_str).unwrap_or("");
    let algorithm = Algorithm::of(named)
        .ok_or_else(|| invalid(format!("the algorithm '{named}' is not allowed")))?;
    let kid = jws.header.get("kid").and_then(Value::as_str);
    let message = jws.signing_input.as_bytes();
    let mut candidates = keys.candidates(kid, algorithm).peekable();
    if candidates.peek().is_none() {
        return Err(invalid(format!(
            "no key of the JWKS matches kid {kid:?} and alg {named}"
        )));
    }
    if !candidates.any(|jwk| verifies(&jwk.key, algorithm, message, &jws.signature)) {
        return Err(invalid("the signature does not verify".to_string()));
    }
    claims(&jws, options, now_ms).map_err(invalid)
}

/// jose4j's claim checks as Kafka configures them, then Kafka's own on
/// the subject and scope (`ClaimValidationUtils`).
fn claims(
    jws: &Jws<'_>,
    options: &JwksValidatorOptions,
    now_ms: i64,
) -> Result<BearerToken, String> {
    let now_s = now_ms as f64 / 1000.0;
    let skew_s = options.clock_skew_seconds as f64;
    let expires = jws
        .number("exp")?
        .ok_or("No Expiration Time (exp) claim present")?;
    jws.number("iat")?
        .ok_or("No Issued At (iat) claim present")?;
    if now_s >= expires + skew_s {
        return Err(format!(
            "The JWT is no longer valid - the evaluation time {now_s:.0} is on or after the Expiration Time (exp={expires:.0}) claim value (Allowed clock skew: {} seconds)",
            options.clock_skew_seconds
        ));
    }
    if let Some(not_before) = jws.number("nbf")? {
        if now_s + skew_s < not_before {
            return Err(format!("The JWT is not yet valid (nbf={not_before:.0})"));
        }
    }
    if !options.expected_audiences.is_empty() {
        let audiences = jws.strings("aud", false)?;
        if audiences.is_empty() {
            return Err("No Audience (aud) claim present".to_string());
        }
        if !audiences
            .iter()
            .any(|a| options.expected_audiences.contains(a))
        {
            return Err(
                "Audience (aud) claim does not contain an acceptable identifier".to_string(),
            );
        }
    }
    if let Some(issuer) = &options.expected_issuer {
        match jws.string("iss")? {
            None => return Err("No Issuer (iss) claim present".to_string()),
            Some(given) if given != issuer => {
                return Err("Issuer (iss) claim value is not the expected issuer".to_string())
            }
            Some(_) => {}
        }
    }
    let name = &options.sub_claim_name;
    let principal = jws.string(name)?.map(str::trim).unwrap_or("");
    if principal.is_empty() {
        return Err(format!("{name} value must be non-null and non-empty"));
    }
    let scope = jws.strings(&options.scope_claim_name, false)?;
    if scope.iter().any(|s| s.trim().is_empty()) {
        return Err(format!(
            "{} value must not contain empty values",
            options.scope_claim_name
        ));
    }
    Ok(BearerToken {
        principal: principal.to_string(),
        expires_ms: (expires * 1000.0) as i64,
    })
}

/// A shard's key sets, by JWKS URL: each installed at start and replaced
/// by its refresher (`server::jwks_refresh`), read by each authentication.
/// Bounded by the listeners' URLs, which the config fixes.
#[derive(Default)]
pub struct JwksCache {
    sets: RefCell<BTreeMap<String, Rc<JwkSet>>>,
}

impl JwksCache {
    pub fn get(&self, url: &str) -> Option<Rc<JwkSet>> {
        self.sets.borrow().get(url).cloned()
    }

    pub fn install(&self, url: &str, keys: JwkSet) {
        self.sets
            .borrow_mut()
            .insert(url.to_string(), Rc::new(keys));
    }
}

#[cfg(test)]
#[path = "jwks_tests.rs"]
mod tests;
