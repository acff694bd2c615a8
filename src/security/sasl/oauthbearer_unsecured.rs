//! Kafka's unsecured-JWS validator (`OAuthBearerUnsecuredValidatorCallbackHandler`),
//! for tests and development: a token whose header says `alg` none and
//! which carries no signature, checked for its claims only: the principal
//! claim (`sub`, or `unsecuredValidatorPrincipalClaimName`), `exp`, `iat`,
//! their consistency, and the `unsecuredValidatorRequiredScope`, each time
//! within `unsecuredValidatorAllowableClockSkewMs`. Anyone can mint such a
//! token: a listener that serves it trusts every client.
//!
//! Invariant: pure (the time is an argument); the failure reasons are
//! Kafka's words (`OAuthBearerValidationUtils`).

use super::oauthbearer::{BearerToken, TokenFailure};
use crate::config::UnsecuredValidatorOptions;
use crate::security::jws::{self, Jws};

/// Checks `token` at `now_ms` as Kafka's unsecured validator does.
pub fn validate(
    token: &str,
    options: &UnsecuredValidatorOptions,
    now_ms: i64,
) -> Result<BearerToken, TokenFailure> {
    let jws = jws::parse(token).map_err(TokenFailure::invalid)?;
    let (principal, expires_ms) = claims(&jws, options, now_ms).map_err(TokenFailure::invalid)?;
    let scope = jws
        .strings(&options.scope_claim_name, true)
        .map_err(TokenFailure::invalid)?;
    if let Some(missing) = options.required_scope.iter().find(|s| !scope.contains(s)) {
        return Err(TokenFailure {
            status: "insufficient_scope",
            scope: Some(format!("[{}]", options.required_scope.join(", "))),
            reason: format!(
                "The provided scope ([{}]) was missing a required scope ({missing}).  All required scope elements: [{}]",
                scope.join(", "),
                options.required_scope.join(", ")
            ),
        });
    }
    Ok(BearerToken {
        principal,
        expires_ms,
    })
}

/// The header, the principal and the times, in Kafka's order.
fn claims(
    jws: &Jws<'_>,
    options: &UnsecuredValidatorOptions,
    now_ms: i64,
) -> Result<(String, i64), String> {
    if jws.header.get("alg").and_then(|alg| alg.as_str()) != Some("none") {
        return Err("Unsecured JWS must have 'none' for an algorithm".to_string());
    }
    if !jws.signature.is_empty() {
        return Err("Unsecured JWS must not contain a digital signature".to_string());
    }
    let name = &options.principal_claim_name;
    let expires = jws.number("exp")?.ok_or("No expiration time in JWT")?;
    let principal = jws
        .string(name)?
        .ok_or_else(|| format!("Required claim missing: {name}"))?;
    let skew_ms = options.allowable_clock_skew_ms;
    let issued = jws.number("iat")?;
    if let Some(issued) = issued {
        if 1000.0 * issued > (now_ms + skew_ms) as f64 {
            return Err(format!(
                "The Issued At value ({issued:.6} seconds) was after the indicated time ({now_ms} ms) plus allowable clock skew ({skew_ms} ms)"
            ));
        }
    }
    if (now_ms - skew_ms) as f64 >= 1000.0 * expires {
        return Err(format!(
            "The indicated time ({now_ms} ms) minus allowable clock skew ({skew_ms} ms) was on or after the Expiration Time value ({expires:.6} seconds)"
        ));
    }
    if let Some(issued) = issued.filter(|issued| expires <= *issued) {
        return Err(format!(
            "The Expiration Time time ({expires:.6} seconds) was not after the Issued At time ({issued:.6} seconds)"
        ));
    }
    Ok((principal.to_string(), (1000.0 * expires) as i64))
}
