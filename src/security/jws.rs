//! A JSON Web Signature in compact serialization (RFC 7515 §7.1): three
//! base64url parts (header, payload, signature), the first two JSON
//! objects. Both OAUTHBEARER validators read tokens through it: the
//! unsecured one (`alg` none, an empty signature) and the JWKS one (a
//! signature over `header.payload`, `jwks`).
//!
//! Invariant: pure; no error holds the token or a claim's value, only
//! claim names and numbers (a token is a bearer credential).

use base64::Engine;
use serde_json::{Map, Value};

/// One token, decoded.
#[derive(Debug)]
pub struct Jws<'a> {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    /// `header.payload` as sent: the bytes the signature signs.
    pub signing_input: &'a str,
    pub signature: Vec<u8>,
}

/// Decodes a compact serialization; the reason it is not one.
pub fn parse(token: &str) -> Result<Jws<'_>, String> {
    if token.contains("..") {
        return Err("Malformed compact serialization contains '..'".to_string());
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err(format!(
            "a compact serialization has 3 parts separated by '.', this one {}",
            parts.len()
        ));
    };
    Ok(Jws {
        header: object(header, "header")?,
        claims: object(payload, "payload")?,
        signing_input: &token[..header.len() + 1 + payload.len()],
        signature: base64url(signature, "signature")?,
    })
}

/// base64url (RFC 4648 §5), with the padding some encoders add anyway.
pub fn base64url(part: &str, what: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| format!("the {what} is not base64url"))
}

fn object(part: &str, what: &str) -> Result<Map<String, Value>, String> {
    let bytes = base64url(part, what)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(format!("the {what} is not a JSON object")),
    }
}

impl Jws<'_> {
    /// A claim that must be a number when present (`exp`, `iat`, `nbf`).
    pub fn number(&self, name: &str) -> Result<Option<f64>, String> {
        match self.claims.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(number)) => Ok(number.as_f64()),
            Some(_) => Err(format!("The '{name}' claim was not of type Number")),
        }
    }

    /// A claim that must be a string when present.
    pub fn string(&self, name: &str) -> Result<Option<&str>, String> {
        match self.claims.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.as_str())),
            Some(other) => Err(format!(
                "The {name} claim had the incorrect type: {}",
                json_type(other)
            )),
        }
    }

    /// A claim that is a string or a list of strings (`scope`, `aud`):
    /// a string is split at spaces when `split` says so (a scope), kept
    /// whole otherwise (an audience).
    pub fn strings(&self, name: &str, split: bool) -> Result<Vec<String>, String> {
        let wrong = || format!("The '{name}' claim was not of type String or List");
        match self.claims.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(text)) if split => {
                Ok(text.split_whitespace().map(str::to_string).collect())
            }
            Some(Value::String(text)) => Ok(vec![text.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| item.as_str().map(str::to_string).ok_or_else(wrong))
                .collect(),
            Some(_) => Err(wrong()),
        }
    }
}

/// The Java type name Kafka's messages show for a JSON value.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "Null",
        Value::Bool(_) => "Boolean",
        Value::Number(_) => "Number",
        Value::String(_) => "String",
        Value::Array(_) => "List",
        Value::Object(_) => "Map",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(part: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(part)
    }

    #[test]
    fn a_compact_serialization_decodes_into_its_parts() {
        let token = format!(
            "{}.{}.{}",
            encode(r#"{"alg":"none"}"#),
            encode(r#"{"sub":"alice","exp":1.5e9,"scope":"a b","aud":["x","y"]}"#),
            encode("sig")
        );
        let jws = parse(&token).unwrap();
        assert_eq!(jws.header["alg"], "none");
        assert_eq!(jws.string("sub").unwrap(), Some("alice"));
        assert_eq!(jws.number("exp").unwrap(), Some(1.5e9));
        assert_eq!(jws.number("iat").unwrap(), None);
        assert_eq!(jws.strings("scope", true).unwrap(), ["a", "b"]);
        assert_eq!(jws.strings("aud", false).unwrap(), ["x", "y"]);
        assert_eq!(jws.signature, b"sig");
        assert_eq!(jws.signing_input, &token[..token.rfind('.').unwrap()]);
        assert!(jws.number("sub").is_err());
        assert_eq!(
            jws.string("exp").unwrap_err(),
            "The exp claim had the incorrect type: Number"
        );
    }

    #[test]
    fn what_is_not_a_jws_is_refused_without_its_bytes() {
        let header = encode(r#"{"alg":"none"}"#);
        for token in [
            String::new(),
            "a.b".to_string(),
            format!("{header}..x"),
            format!("{header}.{header}.{header}.x"),
            format!("{header}.!!.x"),
            format!("{header}.{}.", encode("[1]")),
        ] {
            let error = parse(&token).unwrap_err();
            assert!(token.is_empty() || !error.contains(&token), "{error}");
        }
        assert!(parse(&format!("{header}.{header}.")).is_ok());
        assert!(parse(&format!("{header}=.{header}.")).is_ok());
    }
}
