//! The settings of SASL/OAUTHBEARER on a listener, with Kafka's names:
//! the unsecured validator's options in the listener's JAAS entry
//! (`listener.name.<l>.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule
//! required unsecuredLoginStringClaim_sub="..." unsecuredValidatorRequiredScope="..." ;`),
//! and the JWKS validator's `sasl.oauthbearer.*` keys, global or per
//! listener (`listener.name.<l>.oauthbearer.sasl.oauthbearer.*`). A listener
//! validates with its JWKS when `sasl.oauthbearer.jwks.endpoint.url` is
//! set for it, with the unsecured validator otherwise (Kafka also asks for
//! `...oauthbearer.sasl.server.callback.handler.class`; shoal takes Kafka's
//! class names there and checks they agree with the URL).
//!
//! Invariant: plain data, as all of `config`; imports nothing of shoal.

use std::collections::BTreeMap;

use super::parse::parse_range;
use super::ConfigError;

/// Kafka's login module of SASL/OAUTHBEARER.
pub const OAUTHBEARER_LOGIN_MODULE: &str =
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule";
/// Kafka's validating callback handlers (the second its pre-3.4 name).
const SECURED_HANDLERS: &[&str] = &[
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler",
];
/// Kafka's default server callback handler of OAUTHBEARER.
const UNSECURED_HANDLER: &str = "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler";
/// Kafka's `sasl.oauthbearer.jwks.endpoint.refresh.ms` default: an hour.
pub const JWKS_REFRESH_MS_DEFAULT: u64 = 3_600_000;
/// Kafka's `sasl.oauthbearer.jwks.endpoint.retry.backoff.ms` default.
pub const JWKS_RETRY_BACKOFF_MS_DEFAULT: u64 = 100;
/// Kafka's `sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms` default.
pub const JWKS_RETRY_BACKOFF_MAX_MS_DEFAULT: u64 = 10_000;
/// Kafka's `sasl.oauthbearer.clock.skew.seconds` default.
pub const CLOCK_SKEW_SECONDS_DEFAULT: i64 = 30;

/// The `sasl.oauthbearer.*` keys a broker takes (their suffixes).
const KEYS: &[&str] = &[
    "jwks.endpoint.url",
    "jwks.endpoint.refresh.ms",
    "jwks.endpoint.retry.backoff.ms",
    "jwks.endpoint.retry.backoff.max.ms",
    "clock.skew.seconds",
    "expected.audience",
    "expected.issuer",
    "sub.claim.name",
    "scope.claim.name",
];

/// The unsecured validator's JAAS options (`OAuthBearerUnsecuredValidatorCallbackHandler`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsecuredValidatorOptions {
    pub principal_claim_name: String,
    pub scope_claim_name: String,
    pub required_scope: Vec<String>,
    pub allowable_clock_skew_ms: i64,
}

/// The JWKS validator's claim checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksValidatorOptions {
    pub expected_audiences: Vec<String>,
    pub expected_issuer: Option<String>,
    pub sub_claim_name: String,
    pub scope_claim_name: String,
    pub clock_skew_seconds: i64,
}

/// Where a listener's keys come from and how often they are read again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSource {
    pub url: String,
    pub refresh_ms: u64,
    pub retry_backoff_ms: u64,
    pub retry_backoff_max_ms: u64,
}

/// How a listener validates tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthValidatorConfig {
    Unsecured(UnsecuredValidatorOptions),
    Jwks(JwksSource, JwksValidatorOptions),
}

/// The `sasl.oauthbearer.*` keys as set, globally and per listener.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OAuthConfig {
    global: BTreeMap<String, String>,
    /// By upper-case listener name.
    listeners: BTreeMap<String, BTreeMap<String, String>>,
    /// `listener.name.<l>.oauthbearer.sasl.server.callback.handler.class`.
    handlers: BTreeMap<String, String>,
}

impl OAuthConfig {
    /// Takes `sasl.oauthbearer.<key>`; false when `key` is not one.
    pub fn set_global(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        let Some(suffix) = key.strip_prefix("sasl.oauthbearer.") else {
            return Ok(false);
        };
        if !KEYS.contains(&suffix) {
            return Ok(false);
        }
        check(key, suffix, value)?;
        self.global
            .insert(suffix.to_string(), value.trim().to_string());
        Ok(true)
    }

    /// Takes the rest of `listener.name.<listener>.oauthbearer.<rest>`.
    pub fn set_listener(
        &mut self,
        key: &str,
        listener: &str,
        rest: &str,
        value: &str,
    ) -> Result<bool, ConfigError> {
        let listener = listener.to_ascii_uppercase();
        if rest == "sasl.server.callback.handler.class" {
            let known = SECURED_HANDLERS.contains(&value) || value == UNSECURED_HANDLER;
            if !known {
                return Err(ConfigError(format!(
                    "{key}={value}: shoal validates OAUTHBEARER tokens with Kafka's {} (a JWKS) or {UNSECURED_HANDLER}",
                    SECURED_HANDLERS[0]
                )));
            }
            self.handlers.insert(listener, value.to_string());
            return Ok(true);
        }
        let Some(suffix) = rest.strip_prefix("sasl.oauthbearer.") else {
            return Ok(false);
        };
        if !KEYS.contains(&suffix) {
            return Ok(false);
        }
        check(key, suffix, value)?;
        self.listeners
            .entry(listener)
            .or_default()
            .insert(suffix.to_string(), value.trim().to_string());
        Ok(true)
    }

    fn value(&self, listener: &str, suffix: &str) -> Option<&str> {
        self.listeners
            .get(listener)
            .and_then(|keys| keys.get(suffix))
            .or_else(|| self.global.get(suffix))
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    /// How `listener` validates tokens, its JAAS options given.
    pub fn validator(
        &self,
        listener: &str,
        jaas: &BTreeMap<String, String>,
    ) -> Result<OAuthValidatorConfig, ConfigError> {
        let handler = self.handlers.get(listener).map(String::as_str);
        let Some(url) = self.value(listener, "jwks.endpoint.url") else {
            if handler.is_some_and(|h| SECURED_HANDLERS.contains(&h)) {
                return Err(ConfigError(format!(
                    "listener {listener}: the OAUTHBEARER validator {} needs sasl.oauthbearer.jwks.endpoint.url",
                    handler.unwrap_or_default()
                )));
            }
            return unsecured(jaas).map(OAuthValidatorConfig::Unsecured);
        };
        if handler == Some(UNSECURED_HANDLER) {
            return Err(ConfigError(format!(
                "listener {listener}: sasl.oauthbearer.jwks.endpoint.url is set, and the callback handler is the unsecured one"
            )));
        }
        let number = |suffix: &str, default: u64| {
            self.value(listener, suffix)
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let source = JwksSource {
            url: url.to_string(),
            refresh_ms: number("jwks.endpoint.refresh.ms", JWKS_REFRESH_MS_DEFAULT),
            retry_backoff_ms: number(
                "jwks.endpoint.retry.backoff.ms",
                JWKS_RETRY_BACKOFF_MS_DEFAULT,
            ),
            retry_backoff_max_ms: number(
                "jwks.endpoint.retry.backoff.max.ms",
                JWKS_RETRY_BACKOFF_MAX_MS_DEFAULT,
            ),
        };
        let text = |suffix: &str, default: &str| {
            self.value(listener, suffix).unwrap_or(default).to_string()
        };
        let options = JwksValidatorOptions {
            expected_audiences: self
                .value(listener, "expected.audience")
                .map(|list| {
                    list.split(',')
                        .map(|a| a.trim().to_string())
                        .filter(|a| !a.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            expected_issuer: self.value(listener, "expected.issuer").map(str::to_string),
            sub_claim_name: text("sub.claim.name", "sub"),
            scope_claim_name: text("scope.claim.name", "scope"),
            clock_skew_seconds: self
                .value(listener, "clock.skew.seconds")
                .and_then(|v| v.parse().ok())
                .unwrap_or(CLOCK_SKEW_SECONDS_DEFAULT),
        };
        Ok(OAuthValidatorConfig::Jwks(source, options))
    }
}

/// A key's value checked as Kafka's ConfigDef would.
fn check(key: &str, suffix: &str, value: &str) -> Result<(), ConfigError> {
    match suffix {
        "jwks.endpoint.refresh.ms" => {
            // Kafka's validator: at least 10 s between refreshes.
            parse_range::<u64>(key, value, 10_000, u64::MAX).map(drop)
        }
        "jwks.endpoint.retry.backoff.ms" | "jwks.endpoint.retry.backoff.max.ms" => {
            parse_range::<u64>(key, value, 0, u64::MAX).map(drop)
        }
        "clock.skew.seconds" => parse_range::<i64>(key, value, 0, i64::from(i32::MAX)).map(drop),
        "jwks.endpoint.url" => {
            let value = value.trim();
            if value.is_empty() || value.starts_with("https://") || value.starts_with("file://") {
                Ok(())
            } else {
                Err(ConfigError(format!(
                    "{key}={value}: the JWKS endpoint must be an https:// or file:// URL"
                )))
            }
        }
        _ => Ok(()),
    }
}

/// The unsecured validator's options from the JAAS entry's
/// `unsecuredValidator*` options, with Kafka's defaults and checks.
pub fn unsecured(
    jaas: &BTreeMap<String, String>,
) -> Result<UnsecuredValidatorOptions, ConfigError> {
    let option = |name: &str| {
        jaas.get(name)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    };
    let skew = option("unsecuredValidatorAllowableClockSkewMs").unwrap_or("0");
    let allowable_clock_skew_ms = match skew.parse::<i32>() {
        Ok(ms) if ms >= 0 => i64::from(ms),
        _ => {
            return Err(ConfigError(format!(
                "unsecuredValidatorAllowableClockSkewMs={skew}: must be a non-negative int (ms)"
            )))
        }
    };
    Ok(UnsecuredValidatorOptions {
        principal_claim_name: option("unsecuredValidatorPrincipalClaimName")
            .unwrap_or("sub")
            .to_string(),
        scope_claim_name: option("unsecuredValidatorScopeClaimName")
            .unwrap_or("scope")
            .to_string(),
        required_scope: option("unsecuredValidatorRequiredScope")
            .map(|scope| scope.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        allowable_clock_skew_ms,
    })
}
