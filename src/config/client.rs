//! How shoal connects as a client, with the names Kafka's clients read:
//! `security.protocol`, `sasl.mechanism`, `sasl.jaas.config`
//! (`PlainLoginModule` / `ScramLoginModule` with `username` and
//! `password`), `ssl.truststore.*`, `ssl.keystore.*`, `ssl.key.password`
//! and `ssl.endpoint.identification.algorithm` (`https` by default, as
//! Kafka's clients; empty turns the host name check off). One
//! `ClientSecurity` comes from a tool's `--command-config` file
//! (`from_properties`), or from a broker's own settings for its
//! connections to the other brokers (`inter_broker`: the listener of
//! `inter.broker.listener.name` / `security.inter.broker.protocol`,
//! `sasl.mechanism.inter.broker.protocol`, and the username and password
//! of that listener's `listener.name.<l>.<mechanism>.sasl.jaas.config`)
//! and to the controllers (`controller`: the first of
//! `controller.listener.names`, `sasl.mechanism.controller.protocol`).
//!
//! Invariant: plain data, as all of `config`; no file is read here
//! (`security::tls_client` loads the PEM files). No password shows in a
//! `Debug` output or an error.

use super::sasl::{parse_jaas, SaslMechanism};
use super::security::{list, store_type, PemSource, SecurityConfig};
use super::{BrokerConfig, ConfigError};

/// Kafka's default `security.protocol` for clients.
const PLAINTEXT: &str = "PLAINTEXT";
/// Kafka's default `sasl.mechanism`, which shoal does not speak.
const GSSAPI: &str = "GSSAPI";
/// The listener name the client keys resolve under: none, so the global
/// `ssl.*` keys apply.
const NO_LISTENER: &str = "";

/// A client's own user and password.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// How to log in after connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslLogin {
    pub mechanism: SaslMechanism,
    pub credentials: ClientCredentials,
}

/// The TLS side of a client connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTlsSettings {
    /// The CA certificates the server's chain is checked against.
    pub truststore: PemSource,
    /// The client's own key and chain, for mutual TLS.
    pub keystore: Option<(PemSource, PemSource)>,
    /// `ssl.key.password`: the keystore's key is encrypted with it.
    pub key_password: Option<String>,
    /// `ssl.endpoint.identification.algorithm=https`: the server's
    /// certificate must name the host connected to.
    pub endpoint_identification: bool,
    /// A subset of `TLS_VERSIONS`.
    pub enabled_protocols: Vec<String>,
}

/// A client connection's security: TLS, SASL, both, or neither.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientSecurity {
    pub tls: Option<ClientTlsSettings>,
    pub sasl: Option<SaslLogin>,
}

impl ClientSecurity {
    /// PLAINTEXT: what a client without a config speaks.
    pub fn plaintext() -> ClientSecurity {
        ClientSecurity::default()
    }

    /// Whether the connection is plain TCP without a login.
    pub fn is_plaintext(&self) -> bool {
        self.tls.is_none() && self.sasl.is_none()
    }

    /// A client properties file (Java properties: `key=value` lines, `#`
    /// and `!` comments, a trailing `\` continues a line). Keys other than
    /// the security ones are a client's business and are ignored.
    pub fn from_properties(text: &str) -> Result<ClientSecurity, ConfigError> {
        let mut protocol = PLAINTEXT.to_string();
        let mut mechanism = GSSAPI.to_string();
        let mut jaas = None;
        let mut ssl = SecurityConfig::default();
        for (key, value) in properties(text)? {
            match key.as_str() {
                "security.protocol" => protocol = value.trim().to_ascii_uppercase(),
                "sasl.mechanism" => mechanism = value.trim().to_ascii_uppercase(),
                "sasl.jaas.config" => jaas = Some(value),
                _ => {
                    ssl.set(&key, &value)?;
                }
            }
        }
        let login = |mechanism: &str| -> Result<SaslLogin, ConfigError> {
            let jaas = jaas.as_deref().ok_or_else(|| {
                ConfigError(format!(
                    "security.protocol={protocol} needs sasl.jaas.config with the username and password"
                ))
            })?;
            sasl_login(mechanism, "sasl.jaas.config", jaas)
        };
        resolve(&protocol, &ssl, NO_LISTENER, &mechanism, login)
    }

    /// How this broker connects to the other brokers: as a client of the
    /// inter-broker listener, with its protocol, mechanism and credentials.
    pub fn inter_broker(config: &BrokerConfig) -> Result<ClientSecurity, ConfigError> {
        let Some(listener) = config.cluster.broker_listener() else {
            return Ok(ClientSecurity::plaintext());
        };
        let name = listener.name.as_str();
        let protocols = config.cluster.effective_security_protocol_map();
        let protocol = protocols.get(name).map_or(PLAINTEXT, String::as_str);
        let mechanism = config
            .sasl
            .inter_broker_mechanism
            .as_deref()
            .unwrap_or(GSSAPI);
        let login = |mechanism: &str| -> Result<SaslLogin, ConfigError> {
            let parsed = client_mechanism(mechanism)?;
            let key = format!(
                "listener.name.{}.{}.sasl.jaas.config",
                name.to_ascii_lowercase(),
                mechanism.to_ascii_lowercase()
            );
            let jaas = config.sasl.jaas.get(&(name.to_string(), parsed)).ok_or_else(|| {
                ConfigError(format!(
                    "the inter-broker listener {name} uses {protocol} with sasl.mechanism.inter.broker.protocol={mechanism}: {key} must give the broker's own username and password"
                ))
            })?;
            login_of(parsed, &key, &jaas.options)
        };
        resolve(protocol, &config.security, name, mechanism, login)
    }

    /// How this node connects to the controllers: as a client of the
    /// CONTROLLER listener (the first of `controller.listener.names`),
    /// with `sasl.mechanism.controller.protocol` and the username and
    /// password of that listener's JAAS entry. PLAIN only among the SASL
    /// mechanisms: SCRAM credentials live in the metadata log, which the
    /// controllers must reach each other to read.
    pub fn controller(config: &BrokerConfig) -> Result<ClientSecurity, ConfigError> {
        let Some(name) = config.cluster.controller_listener_names.first() else {
            return Ok(ClientSecurity::plaintext());
        };
        let name = name.as_str();
        let protocols = config.cluster.effective_security_protocol_map();
        let protocol = protocols.get(name).map_or(PLAINTEXT, String::as_str);
        let mechanism = config
            .sasl
            .controller_mechanism
            .as_deref()
            .unwrap_or(GSSAPI);
        let login = |mechanism: &str| -> Result<SaslLogin, ConfigError> {
            let parsed = client_mechanism(mechanism)?;
            if parsed != SaslMechanism::Plain {
                return Err(ConfigError(format!(
                    "the controller listener {name} uses {protocol} with sasl.mechanism.controller.protocol={mechanism}: SCRAM credentials live in the metadata log, which the controllers must reach each other to read; use PLAIN, or SSL with client certificates, on the controller listener"
                )));
            }
            let key = format!(
                "listener.name.{}.plain.sasl.jaas.config",
                name.to_ascii_lowercase()
            );
            let jaas = config.sasl.jaas.get(&(name.to_string(), parsed)).ok_or_else(|| {
                ConfigError(format!(
                    "the controller listener {name} uses {protocol}: {key} must give this node's own username and password"
                ))
            })?;
            login_of(parsed, &key, &jaas.options)
        };
        resolve(protocol, &config.security, name, mechanism, login)
    }
}

/// The security of `protocol`, its TLS settings from `ssl`'s keys for
/// `listener`, its login from `login(mechanism)`.
fn resolve(
    protocol: &str,
    ssl: &SecurityConfig,
    listener: &str,
    mechanism: &str,
    login: impl FnOnce(&str) -> Result<SaslLogin, ConfigError>,
) -> Result<ClientSecurity, ConfigError> {
    let (uses_tls, uses_sasl) = match protocol {
        "PLAINTEXT" => (false, false),
        "SSL" => (true, false),
        "SASL_PLAINTEXT" => (false, true),
        "SASL_SSL" => (true, true),
        other => {
            return Err(ConfigError(format!(
                "security.protocol={other}: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
            )))
        }
    };
    let tls = if uses_tls {
        Some(client_tls(ssl, listener)?)
    } else {
        None
    };
    let sasl = if uses_sasl {
        Some(login(mechanism)?)
    } else {
        None
    };
    Ok(ClientSecurity { tls, sasl })
}

/// A mechanism shoal logs in with as a client: the server side's but
/// OAUTHBEARER (shoal's tools and brokers fetch no tokens).
fn client_mechanism(mechanism: &str) -> Result<SaslMechanism, ConfigError> {
    SaslMechanism::from_name(mechanism)
        .filter(|parsed| *parsed != SaslMechanism::OAuthBearer)
        .ok_or_else(|| unspoken(mechanism))
}

fn unspoken(mechanism: &str) -> ConfigError {
    ConfigError(format!(
        "SASL mechanism {mechanism} is not one shoal speaks as a client (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512){}",
        if mechanism == GSSAPI { ": Kafka's default GSSAPI (Kerberos) needs sasl.mechanism set" } else { "" }
    ))
}

/// The login of a JAAS entry's text, for `mechanism`.
fn sasl_login(mechanism: &str, key: &str, jaas: &str) -> Result<SaslLogin, ConfigError> {
    let parsed = client_mechanism(mechanism)?;
    let jaas = parse_jaas(key, jaas)?;
    login_of(parsed, key, &jaas.options)
}

fn login_of(
    mechanism: SaslMechanism,
    key: &str,
    options: &std::collections::BTreeMap<String, String>,
) -> Result<SaslLogin, ConfigError> {
    let option = |name: &str| {
        options
            .get(name)
            .filter(|value| !value.is_empty())
            .cloned()
            .ok_or_else(|| ConfigError(format!("{key}: the {name} option is not set")))
    };
    Ok(SaslLogin {
        mechanism,
        credentials: ClientCredentials {
            user: option("username")?,
            password: option("password")?,
        },
    })
}

/// A client's TLS settings from the `ssl.*` keys of `listener` (its
/// `listener.name.<l>.ssl.*` overrides, else the global keys).
fn client_tls(ssl: &SecurityConfig, listener: &str) -> Result<ClientTlsSettings, ConfigError> {
    let value = |key| ssl.value(listener, key);
    let fail = |message: String| Err(ConfigError(message));
    let truststore = match (
        value("ssl.truststore.location"),
        value("ssl.truststore.certificates"),
    ) {
        (Some(path), None) => PemSource::File(path.into()),
        (None, Some(certificates)) => PemSource::Inline(certificates.to_string()),
        (None, None) => return fail("a TLS client needs ssl.truststore.type=PEM and ssl.truststore.location (the CA certificates the broker's certificate is checked against): shoal has no default trust store".to_string()),
        _ => return fail("set either ssl.truststore.location or ssl.truststore.certificates, not both".to_string()),
    };
    store_type("ssl.truststore.type", value("ssl.truststore.type")).map_err(ConfigError)?;
    let keystore = match (
        value("ssl.keystore.location"),
        value("ssl.keystore.key"),
        value("ssl.keystore.certificate.chain"),
    ) {
        (None, None, None) => None,
        (Some(path), None, None) => {
            let file = PemSource::File(path.into());
            Some((file.clone(), file))
        }
        (None, Some(key), Some(chain)) => Some((
            PemSource::Inline(key.to_string()),
            PemSource::Inline(chain.to_string()),
        )),
        _ => return fail("set either ssl.keystore.location, or both ssl.keystore.key and ssl.keystore.certificate.chain".to_string()),
    };
    if keystore.is_some() {
        store_type("ssl.keystore.type", value("ssl.keystore.type")).map_err(ConfigError)?;
    }
    let enabled_protocols = list(value("ssl.enabled.protocols"));
    if enabled_protocols.is_empty() {
        return fail("ssl.enabled.protocols is empty".to_string());
    }
    let endpoint_identification = match value("ssl.endpoint.identification.algorithm") {
        None => false,
        Some(algorithm) if algorithm.eq_ignore_ascii_case("https") => true,
        Some(other) => {
            return fail(format!(
                "ssl.endpoint.identification.algorithm={other}: expected https, or empty for none"
            ))
        }
    };
    Ok(ClientTlsSettings {
        truststore,
        keystore,
        key_password: value("ssl.key.password").map(str::to_string),
        endpoint_identification,
        enabled_protocols,
    })
}

/// The (key, value) pairs of a Java properties text.
fn properties(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut pairs = Vec::new();
    let mut logical = String::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if logical.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(continued) => {
                logical.push_str(continued);
                continue;
            }
            None => logical.push_str(line),
        }
        let (key, value) = super::split_key_value(&logical)
            .ok_or_else(|| ConfigError(format!("line {}: expected key=value", number + 1)))?;
        pairs.push((key.to_string(), value.to_string()));
        logical.clear();
    }
    Ok(pairs)
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
