//! SASL/PLAIN (RFC 4616) as Kafka's `PlainSaslServer` checks it: one
//! token, `[authzid] NUL authcid NUL passwd`, checked against the
//! listener's JAAS users; an authorization id, if given, must be the user.

use subtle::ConstantTimeEq;

use super::{Credentials, SaslError, Step};

/// The fields of a PLAIN token (Kafka reads at most one more, to count it).
const TOKENS: usize = 3;

pub(super) fn authenticate(token: &[u8], credentials: &Credentials<'_>) -> Result<Step, SaslError> {
    let text = String::from_utf8_lossy(token);
    let fields: Vec<&str> = text.splitn(TOKENS + 1, '\0').collect();
    let [authzid, user, password] = fields[..] else {
        return Err(SaslError::Refused(format!(
            "Invalid SASL/PLAIN response: expected {TOKENS} tokens, got {}",
            fields.len()
        )));
    };
    if user.is_empty() {
        return Err(refused("username not specified"));
    }
    if password.is_empty() {
        return Err(refused("password not specified"));
    }
    // Compared whole and in constant time; a missing user compares
    // against nothing, so its timing says no more than a wrong password's.
    let known = credentials.plain_password(user);
    let expected = known.unwrap_or_default().as_bytes();
    let matches: bool = expected.ct_eq(password.as_bytes()).into();
    if known.is_none() || !matches {
        return Err(refused("Invalid username or password"));
    }
    if !authzid.is_empty() && authzid != user {
        return Err(refused(
            "Client requested an authorization id that is different from username",
        ));
    }
    Ok(Step::Done {
        user: user.to_string(),
        token: Vec::new(),
    })
}

fn refused(why: &str) -> SaslError {
    SaslError::Refused(format!("Authentication failed: {why}"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn run(token: &[u8]) -> Result<Step, SaslError> {
        let users = BTreeMap::from([("alice".to_string(), "alice-secret".to_string())]);
        let credentials = Credentials {
            plain_users: &users,
            scram: &|_, _| None,
            oauth: None,
        };
        authenticate(token, &credentials)
    }

    fn refusal(token: &[u8]) -> String {
        match run(token) {
            Err(SaslError::Refused(message)) => message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_rfc_4616_forms_are_accepted() {
        let done = |user: &str| {
            Ok(Step::Done {
                user: user.to_string(),
                token: Vec::new(),
            })
        };
        assert_eq!(run(b"\0alice\0alice-secret"), done("alice"));
        assert_eq!(run(b"alice\0alice\0alice-secret"), done("alice"));
    }

    #[test]
    fn failures_have_kafkas_messages() {
        let invalid = "Authentication failed: Invalid username or password";
        assert_eq!(refusal(b"\0alice\0wrong"), invalid);
        assert_eq!(refusal(b"\0alice\0alice-secre"), invalid);
        assert_eq!(
            refusal(b"\0alice\0alice-secret\0"),
            "Invalid SASL/PLAIN response: expected 3 tokens, got 4"
        );
        assert_eq!(refusal(b"\0bob\0alice-secret"), invalid);
        assert_eq!(
            refusal(b"alice-secret"),
            "Invalid SASL/PLAIN response: expected 3 tokens, got 1"
        );
        assert_eq!(
            refusal(b"\0\0x"),
            "Authentication failed: username not specified"
        );
        assert_eq!(
            refusal(b"\0alice\0"),
            "Authentication failed: password not specified"
        );
        assert!(refusal(b"bob\0alice\0alice-secret").contains("authorization id"));
        assert_eq!(
            refusal(b""),
            "Invalid SASL/PLAIN response: expected 3 tokens, got 1"
        );
    }
}
