//! Who a console request comes from and what it may do, while an
//! authorizer is on (`authorizer.class.name`): HTTP Basic credentials
//! (RFC 7617) checked against the broker's own SASL users, the PLAIN users
//! of its listeners' JAAS entries through the PLAIN authenticator, then
//! the SCRAM credentials of the metadata (the password salted again and
//! its stored key compared); the principal `User:<name>` is then asked of
//! the same authorizer, with the same ACLs, as the Kafka APIs ask.
//!
//! With no authorizer nothing is checked, as on a Kafka listener without
//! one: every request is `User:ANONYMOUS` and allowed.
//!
//! Invariant: no password reaches a log line, an answer or a `Debug`
//! output; a refusal is one log line naming the user and the peer. Basic
//! sends the password in the clear: the admin listener binds loopback by
//! default (`docs/operations.md`, "Console").

use std::net::SocketAddr;
use std::rc::Rc;

use base64::Engine;
use serde_json::json;

use super::http::{Request, Response};
use crate::config::SaslMechanism;
use crate::security::acl::{self, Operation, Requester, ResourceType, ANONYMOUS};
use crate::security::sasl::{self, Authenticator, Credentials, Step};
use crate::server::connection::ConnectionContext;
use crate::shard::Shard;

/// The SCRAM mechanisms a password is tried against, strongest first.
const SCRAM_MECHANISMS: [SaslMechanism; 2] =
    [SaslMechanism::ScramSha512, SaslMechanism::ScramSha256];

/// The principal of `request`: `User:ANONYMOUS` while no authorizer is
/// on, else the user its Basic credentials prove; a 401 asking for them
/// when they are missing or wrong.
pub fn principal(
    shard: &Shard,
    request: &Request,
    peer: Option<SocketAddr>,
) -> Result<Rc<str>, Response> {
    if !shard.config.authorizer.enabled {
        return Ok(Rc::from(ANONYMOUS));
    }
    let Some((user, password)) = request.header("authorization").and_then(basic) else {
        return Err(unauthorized("HTTP Basic credentials are required"));
    };
    if verify(shard, &user, &password) {
        return Ok(Rc::from(format!("User:{user}")));
    }
    log::info!("admin listener: credentials of user {user:?} from {peer:?} refused");
    Err(unauthorized("invalid username or password"))
}

/// Whether `principal`, from `peer`, may do `operation` on the resource
/// `name` of `resource_type`; always while no authorizer is on.
pub fn allowed(
    shard: &Shard,
    principal: &str,
    peer: Option<SocketAddr>,
    operation: Operation,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    let config = &shard.config.authorizer;
    if !config.enabled {
        return true;
    }
    let requester = Requester {
        principal,
        host: peer.map(|peer| peer.ip()),
    };
    let view = shard.view();
    acl::authorize(
        config,
        &view.acls,
        requester,
        operation,
        resource_type,
        name,
    )
}

/// `allowed` for the principal and peer of a console request's context.
pub fn may(
    context: &ConnectionContext,
    operation: Operation,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    let principal = context.principal.borrow().clone();
    allowed(
        &context.shard,
        &principal,
        context.peer,
        operation,
        resource_type,
        name,
    )
}

/// A 403 saying what `principal` may not do.
pub fn forbidden(principal: &str, what: &str) -> Response {
    Response::json(
        403,
        &json!({ "error": "AUTHORIZATION_FAILED", "message": format!("{principal} may not {what}") }),
    )
}

fn unauthorized(reason: &str) -> Response {
    Response {
        basic_challenge: true,
        ..Response::json(401, &json!({ "error": reason }))
    }
}

/// `Basic base64(user:password)` → (user, password); None when the
/// header is of another scheme or does not decode.
fn basic(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    (!user.is_empty() && !password.is_empty()).then(|| (user.to_string(), password.to_string()))
}

/// Whether `password` is `user`'s: as a PLAIN user of some listener, or
/// as a SCRAM credential of the cluster.
fn verify(shard: &Shard, user: &str, password: &str) -> bool {
    let sasl = &shard.config.sasl;
    let plain = sasl
        .jaas
        .iter()
        .filter(|((_, mechanism), _)| *mechanism == SaslMechanism::Plain)
        .any(|(_, jaas)| plain_matches(&jaas.plain_users(), user, password));
    if plain {
        return true;
    }
    let view = shard.view();
    SCRAM_MECHANISMS.iter().any(|&mechanism| {
        view.scram.get(user, mechanism).is_some_and(|credential| {
            sasl::scram::password_matches(mechanism, credential, password)
        })
    })
}

/// The PLAIN authenticator's verdict on `user` and `password` against
/// one listener's users.
fn plain_matches(
    users: &std::collections::BTreeMap<String, String>,
    user: &str,
    password: &str,
) -> bool {
    let credentials = Credentials {
        plain_users: users,
        scram: &|_, _| None,
        oauth: None,
    };
    let token = format!("\0{user}\0{password}");
    let Ok(mut authenticator) = Authenticator::new(SaslMechanism::Plain) else {
        return false;
    };
    matches!(
        authenticator.step(token.as_bytes(), &credentials),
        Ok(Step::Done { user: done, .. }) if done == user
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_decode_or_are_none() {
        let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        assert_eq!(
            basic(&format!("Basic {}", encode("alice:pw:with:colons"))),
            Some(("alice".into(), "pw:with:colons".into()))
        );
        assert_eq!(
            basic(&format!("basic {}", encode("bob:x"))),
            Some(("bob".into(), "x".into()))
        );
        for bad in [
            format!("Bearer {}", encode("alice:pw")),
            format!("Basic {}", encode("alice")),
            format!("Basic {}", encode(":pw")),
            format!("Basic {}", encode("alice:")),
            "Basic !!!".to_string(),
            "Basic".to_string(),
        ] {
            assert_eq!(basic(&bad), None, "{bad}");
        }
    }

    #[test]
    fn plain_users_match_through_the_plain_authenticator() {
        let users = std::collections::BTreeMap::from([("alice".into(), "secret".into())]);
        assert!(plain_matches(&users, "alice", "secret"));
        assert!(!plain_matches(&users, "alice", "secre"));
        assert!(!plain_matches(&users, "bob", "secret"));
        // A NUL in the user cannot forge another PLAIN token.
        assert!(!plain_matches(&users, "x\0alice", "secret"));
    }
}
