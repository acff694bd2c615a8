//! The `ssl.*` settings of a TLS listener, with Kafka's names and
//! defaults, and the per-listener override `listener.name.<name>.ssl.*`
//! over the global key. shoal reads PEM only: `ssl.keystore.type` and
//! `ssl.truststore.type` JKS or PKCS12 are refused when a store is set.
//!
//! Invariant: plain data, as all of `config`: keys are checked as they are
//! set, and `ssl` resolves and checks one listener's settings as a whole;
//! no file is read here (`security::tls` loads them at start).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::ConfigError;

/// The `ssl.*` keys a listener takes, with Kafka's defaults (None: unset).
/// The last four are accepted for compatibility and have no effect (they
/// name Java's security providers, or a client-side check).
const SSL_KEYS: &[(&str, Option<&str>)] = &[
    ("ssl.keystore.type", Some("JKS")),
    ("ssl.keystore.location", None),
    ("ssl.keystore.password", None),
    ("ssl.key.password", None),
    ("ssl.keystore.key", None),
    ("ssl.keystore.certificate.chain", None),
    ("ssl.truststore.type", Some("JKS")),
    ("ssl.truststore.location", None),
    ("ssl.truststore.password", None),
    ("ssl.truststore.certificates", None),
    ("ssl.client.auth", Some("none")),
    ("ssl.enabled.protocols", Some("TLSv1.2,TLSv1.3")),
    ("ssl.protocol", Some("TLSv1.3")),
    ("ssl.cipher.suites", Some("")),
    ("ssl.principal.mapping.rules", Some("DEFAULT")),
    ("ssl.endpoint.identification.algorithm", Some("https")),
    ("ssl.keymanager.algorithm", Some("SunX509")),
    ("ssl.trustmanager.algorithm", Some("PKIX")),
    ("ssl.secure.random.implementation", None),
];

/// The keys whose values are secrets: never shown.
pub const SSL_SENSITIVE_KEYS: &[&str] = &[
    "ssl.keystore.password",
    "ssl.key.password",
    "ssl.keystore.key",
    "ssl.truststore.password",
];

/// The store type shoal reads.
const PEM: &str = "PEM";
/// `ssl.enabled.protocols` values shoal speaks (rustls: TLS 1.2 and 1.3).
pub const TLS_VERSIONS: &[&str] = &["TLSv1.2", "TLSv1.3"];
/// `ssl.protocol` values Kafka accepts that name TLS 1.2 or later.
const SSL_PROTOCOLS: &[&str] = &["TLS", "TLSv1.2", "TLSv1.3"];

/// Where PEM text comes from: a file, or the config value itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemSource {
    File(PathBuf),
    Inline(String),
}

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    /// A certificate is asked for; a client without one is `ANONYMOUS`.
    Requested,
    Required,
}

/// One TLS listener's settings, resolved and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslSettings {
    /// The private key and the certificate chain: one PEM file
    /// (`ssl.keystore.location`) or two inline values.
    pub keystore: (PemSource, PemSource),
    pub key_password: Option<String>,
    /// The CA certificates client certificates are checked against.
    pub truststore: Option<PemSource>,
    pub client_auth: ClientAuth,
    /// A subset of `TLS_VERSIONS`.
    pub enabled_protocols: Vec<String>,
    /// Empty: rustls' defaults.
    pub cipher_suites: Vec<String>,
    pub principal_mapping_rules: String,
}

/// The `ssl.*` keys as set: globally, and per listener name (upper case).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityConfig {
    global: BTreeMap<String, String>,
    listeners: BTreeMap<String, BTreeMap<String, String>>,
}

fn is_ssl_key(key: &str) -> bool {
    SSL_KEYS.iter().any(|(known, _)| *known == key)
}

impl SecurityConfig {
    /// Takes `key` if it is an `ssl.*` key, global or
    /// `listener.name.<name>.`-prefixed; `Ok(false)` when it is not one.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        if is_ssl_key(key) {
            check_value(key, value)?;
            self.global.insert(key.to_string(), value.to_string());
            return Ok(true);
        }
        let Some((listener, key)) = key
            .strip_prefix("listener.name.")
            .and_then(|rest| rest.split_once('.'))
        else {
            return Ok(false);
        };
        if !is_ssl_key(key) {
            return Ok(false);
        }
        check_value(key, value)?;
        self.listeners
            .entry(listener.to_ascii_uppercase())
            .or_default()
            .insert(key.to_string(), value.to_string());
        Ok(true)
    }

    /// The value of `key` for `listener`: its override, the global key, or
    /// Kafka's default; empty counts as unset.
    pub(super) fn value(&self, listener: &str, key: &str) -> Option<&str> {
        let set = self
            .listeners
            .get(listener)
            .and_then(|keys| keys.get(key))
            .or_else(|| self.global.get(key))
            .map(String::as_str);
        let default = SSL_KEYS
            .iter()
            .find(|(known, _)| *known == key)
            .and_then(|(_, default)| *default);
        set.or(default).filter(|value| !value.trim().is_empty())
    }

    /// The listener names that have `listener.name.<name>.ssl.*` keys.
    pub fn overridden_listeners(&self) -> impl Iterator<Item = &str> {
        self.listeners.keys().map(String::as_str)
    }

    /// The settings of TLS listener `listener`, checked as a whole.
    pub fn ssl(&self, listener: &str) -> Result<SslSettings, ConfigError> {
        let value = |key| self.value(listener, key);
        let in_listener = |message: String| ConfigError(format!("listener {listener}: {message}"));
        let fail = |message: String| Err(in_listener(message));
        let keystore = match (
            value("ssl.keystore.location"),
            value("ssl.keystore.key"),
            value("ssl.keystore.certificate.chain"),
        ) {
            (Some(path), None, None) => {
                let file = PemSource::File(PathBuf::from(path));
                (file.clone(), file)
            }
            (None, Some(key), Some(chain)) => (
                PemSource::Inline(key.to_string()),
                PemSource::Inline(chain.to_string()),
            ),
            (None, None, None) => {
                return fail("an SSL listener needs ssl.keystore.location (a PEM file with the private key and the certificate chain), or ssl.keystore.key and ssl.keystore.certificate.chain".to_string())
            }
            _ => return fail("set either ssl.keystore.location, or both ssl.keystore.key and ssl.keystore.certificate.chain".to_string()),
        };
        store_type("ssl.keystore.type", value("ssl.keystore.type")).map_err(in_listener)?;
        if value("ssl.keystore.password").is_some() {
            return fail("SSL key store password cannot be specified with PEM format, only key password may be specified (ssl.key.password)".to_string());
        }
        let truststore =
            match (
                value("ssl.truststore.location"),
                value("ssl.truststore.certificates"),
            ) {
                (Some(path), None) => Some(PemSource::File(PathBuf::from(path))),
                (None, Some(certificates)) => Some(PemSource::Inline(certificates.to_string())),
                (None, None) => None,
                _ => return fail(
                    "set either ssl.truststore.location or ssl.truststore.certificates, not both"
                        .to_string(),
                ),
            };
        if truststore.is_some() {
            store_type("ssl.truststore.type", value("ssl.truststore.type")).map_err(in_listener)?;
            if value("ssl.truststore.password").is_some() {
                return fail(
                    "SSL trust store password cannot be specified with PEM format".to_string(),
                );
            }
        }
        let client_auth = client_auth(value("ssl.client.auth").unwrap_or("none"))?;
        if client_auth != ClientAuth::None && truststore.is_none() {
            return fail(format!("ssl.client.auth={} needs a truststore to check client certificates against: set ssl.truststore.type=PEM and ssl.truststore.location (the JVM's default truststore has no equivalent here)", value("ssl.client.auth").unwrap_or_default()));
        }
        let enabled_protocols: Vec<String> = list(value("ssl.enabled.protocols"));
        if enabled_protocols.is_empty() {
            return fail("ssl.enabled.protocols is empty".to_string());
        }
        Ok(SslSettings {
            keystore,
            key_password: value("ssl.key.password").map(str::to_string),
            truststore,
            client_auth,
            enabled_protocols,
            cipher_suites: list(value("ssl.cipher.suites")),
            principal_mapping_rules: value("ssl.principal.mapping.rules")
                .unwrap_or("DEFAULT")
                .to_string(),
        })
    }
}

pub(super) fn list(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::to_string)
        .collect()
}

/// A keystore or truststore type shoal can read: PEM only.
pub(super) fn store_type(key: &str, value: Option<&str>) -> Result<(), String> {
    match value.unwrap_or(PEM) {
        kind if kind.eq_ignore_ascii_case(PEM) => Ok(()),
        kind => Err(format!(
            "{key}={kind} is not supported: shoal reads PEM files only (set {key}=PEM; convert a JKS or PKCS12 store with keytool and openssl)"
        )),
    }
}

fn client_auth(value: &str) -> Result<ClientAuth, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "none" => Ok(ClientAuth::None),
        "requested" => Ok(ClientAuth::Requested),
        "required" => Ok(ClientAuth::Required),
        _ => Err(ConfigError(format!(
            "Invalid value {value} for configuration ssl.client.auth: String must be one of: required, requested, none"
        ))),
    }
}

/// The checks one value allows alone.
fn check_value(key: &str, value: &str) -> Result<(), ConfigError> {
    let invalid = |why: &str| {
        Err(ConfigError(format!(
            "Invalid value {value} for configuration {key}: {why}"
        )))
    };
    match key {
        "ssl.client.auth" => client_auth(value).map(|_| ()),
        "ssl.enabled.protocols" => {
            match list(Some(value))
                .into_iter()
                .find(|version| !TLS_VERSIONS.contains(&version.as_str()))
            {
                Some(version) => invalid(&format!(
                    "{version} is not supported: shoal speaks {}",
                    TLS_VERSIONS.join(" and ")
                )),
                None => Ok(()),
            }
        }
        "ssl.protocol" if !SSL_PROTOCOLS.contains(&value.trim()) => {
            invalid(&format!("shoal speaks {}", TLS_VERSIONS.join(" and ")))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
#[path = "security_tests.rs"]
mod tests;
