//! The SASL settings, with Kafka's names: `sasl.enabled.mechanisms` (and
//! its per-listener form), the JAAS configuration of each listener and
//! mechanism (`listener.name.<listener>.<mechanism>.sasl.jaas.config`, in
//! Kafka's JAAS syntax), `sasl.mechanism.inter.broker.protocol`,
//! `sasl.mechanism.controller.protocol`, `sasl.server.max.receive.size`
//! and `connections.max.reauth.ms` (KIP-368, global or per listener and
//! mechanism: `listener.name.<l>.<mechanism>.connections.max.reauth.ms`);
//! OAUTHBEARER's own keys are in `oauthbearer`.
//!
//! Kafka's `sasl.enabled.mechanisms` default is GSSAPI (Kerberos), which
//! shoal does not serve: a SASL listener needs the key set to PLAIN,
//! SCRAM-SHA-256, SCRAM-SHA-512 and/or OAUTHBEARER (`SaslConfig::check` says so).
//!
//! Invariant: a JAAS option's value (a password) is never printed: the
//! `Debug` of `JaasConfig` shows option names only.

use std::collections::BTreeMap;
use std::fmt;

use super::oauthbearer::{OAuthConfig, OAuthValidatorConfig, OAUTHBEARER_LOGIN_MODULE};
use super::parse::parse_range;
use super::ConfigError;

/// Kafka's `sasl.server.max.receive.size` default: the largest frame a
/// connection may send before it is authenticated.
pub const SASL_SERVER_MAX_RECEIVE_SIZE_DEFAULT: usize = 524_288;
/// Kafka's login module of SASL/PLAIN, whose `user_<name>` options are
/// the users a broker accepts.
pub const PLAIN_LOGIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";
/// Kafka's login module of SASL/SCRAM (its options are a client's own
/// credentials: a broker's SCRAM users live in the cluster metadata).
pub const SCRAM_LOGIN_MODULE: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";
/// The prefix of a PLAIN user's option: `user_alice="secret"`.
const PLAIN_USER_PREFIX: &str = "user_";
/// The mechanisms Kafka knows and shoal does not serve, refused by name.
const UNSERVED_MECHANISMS: &[&str] = &["GSSAPI"];
/// The mechanisms served, as messages list them.
const SERVED: &str = "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER";

/// A SASL mechanism shoal serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
    OAuthBearer,
}

impl SaslMechanism {
    pub const ALL: [SaslMechanism; 4] = [
        SaslMechanism::Plain,
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
        SaslMechanism::OAuthBearer,
    ];

    /// The name clients ask for in SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    pub fn from_name(name: &str) -> Option<SaslMechanism> {
        SaslMechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's `ScramMechanism` type code (AlterUserScramCredentials, the
    /// UserScramCredentialRecord): 1 for SHA-256, 2 for SHA-512.
    pub fn scram_type(self) -> Option<i8> {
        match self {
            SaslMechanism::Plain | SaslMechanism::OAuthBearer => None,
            SaslMechanism::ScramSha256 => Some(1),
            SaslMechanism::ScramSha512 => Some(2),
        }
    }

    pub fn from_scram_type(code: i8) -> Option<SaslMechanism> {
        SaslMechanism::ALL
            .into_iter()
            .find(|m| m.scram_type() == Some(code))
    }
}

/// One parsed JAAS entry: `<LoginModule> <flag> key="value" ... ;`.
#[derive(Clone, PartialEq, Eq)]
pub struct JaasConfig {
    pub login_module: String,
    pub options: BTreeMap<String, String>,
}

impl fmt::Debug for JaasConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JaasConfig")
            .field("login_module", &self.login_module)
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl JaasConfig {
    /// The PLAIN users of `user_<name>="<password>"` options.
    pub fn plain_users(&self) -> BTreeMap<String, String> {
        self.options
            .iter()
            .filter_map(|(key, value)| {
                let name = key.strip_prefix(PLAIN_USER_PREFIX)?;
                Some((name.to_string(), value.clone()))
            })
            .collect()
    }
}

/// The SASL settings (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslConfig {
    /// `sasl.enabled.mechanisms`; None: unset (Kafka's GSSAPI, not served).
    pub enabled_mechanisms: Option<Vec<SaslMechanism>>,
    /// `listener.name.<listener>.sasl.enabled.mechanisms`, by upper-case listener.
    pub listener_mechanisms: BTreeMap<String, Vec<SaslMechanism>>,
    /// `listener.name.<listener>.<mechanism>.sasl.jaas.config`.
    pub jaas: BTreeMap<(String, SaslMechanism), JaasConfig>,
    /// `sasl.mechanism.inter.broker.protocol` as given (Kafka's default GSSAPI).
    pub inter_broker_mechanism: Option<String>,
    /// `sasl.mechanism.controller.protocol` as given.
    pub controller_mechanism: Option<String>,
    /// `sasl.server.max.receive.size`.
    pub server_max_receive_size: usize,
    /// `connections.max.reauth.ms` (0: sessions do not expire by it).
    pub max_reauth_ms: i64,
    /// Its per-listener forms, by upper-case listener and, for
    /// `listener.name.<l>.<mechanism>.connections.max.reauth.ms`, mechanism.
    pub listener_max_reauth_ms: BTreeMap<(String, Option<SaslMechanism>), i64>,
    /// OAUTHBEARER's validators' keys.
    pub oauth: OAuthConfig,
}

impl Default for SaslConfig {
    fn default() -> SaslConfig {
        SaslConfig {
            enabled_mechanisms: None,
            listener_mechanisms: BTreeMap::new(),
            jaas: BTreeMap::new(),
            inter_broker_mechanism: None,
            controller_mechanism: None,
            server_max_receive_size: SASL_SERVER_MAX_RECEIVE_SIZE_DEFAULT,
            max_reauth_ms: 0,
            listener_max_reauth_ms: BTreeMap::new(),
            oauth: OAuthConfig::default(),
        }
    }
}

/// Whether `key` holds a secret: its value is kept out of anything shown.
pub fn is_sensitive(key: &str) -> bool {
    key.ends_with(".sasl.jaas.config")
}

/// A mechanism list: each name Kafka's, GSSAPI refused by name.
fn mechanisms(key: &str, value: &str) -> Result<Vec<SaslMechanism>, ConfigError> {
    let mut list = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let mechanism = SaslMechanism::from_name(name).ok_or_else(|| {
            let why = if UNSERVED_MECHANISMS.contains(&name) {
                format!("shoal does not serve SASL/{name}")
            } else {
                format!("unknown SASL mechanism {name}")
            };
            ConfigError(format!(
                "{key}={value}: {why}; the mechanisms served are {SERVED}"
            ))
        })?;
        if !list.contains(&mechanism) {
            list.push(mechanism);
        }
    }
    Ok(list)
}

/// Kafka's JAAS syntax for one login module: the class name, a control
/// flag (`required`, `requisite`, `sufficient`, `optional`), options as
/// `key=value` with the value quoted or bare, and a closing `;`.
pub fn parse_jaas(key: &str, text: &str) -> Result<JaasConfig, ConfigError> {
    // The message names the key, never the text: it holds passwords.
    let fail = |why: &str| ConfigError(format!("{key}: invalid JAAS configuration: {why}"));
    let text = text.trim();
    let body = text
        .strip_suffix(';')
        .ok_or_else(|| fail("it must end with ';'"))?;
    let (login_module, rest) = body
        .trim()
        .split_once(char::is_whitespace)
        .ok_or_else(|| fail("expected a login module and a control flag"))?;
    let rest = rest.trim_start();
    let (flag, mut rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if !["required", "requisite", "sufficient", "optional"].contains(&flag) {
        return Err(fail(
            "the control flag must be required, requisite, sufficient or optional",
        ));
    }
    let mut options = BTreeMap::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let (name, after) = rest
            .split_once('=')
            .ok_or_else(|| fail("expected key=value"))?;
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(fail("an option has no name"));
        }
        let (value, after) =
            jaas_value(after.trim_start()).ok_or_else(|| fail("an unterminated quoted value"))?;
        options.insert(name.to_string(), value);
        rest = after;
    }
    Ok(JaasConfig {
        login_module: login_module.to_string(),
        options,
    })
}

/// The mechanism a key names in lower case (`scram-sha-256`).
fn mechanism_of(key: &str, name: &str) -> Result<SaslMechanism, ConfigError> {
    let upper = name.to_ascii_uppercase();
    SaslMechanism::from_name(&upper).ok_or_else(|| {
        ConfigError(format!(
            "{key}: shoal serves no SASL mechanism {upper} ({SERVED})"
        ))
    })
}

/// A quoted (`"..."`, with `\"` and `\\` escapes) or bare value, and the text after it.
fn jaas_value(text: &str) -> Option<(String, &str)> {
    let Some(quoted) = text.strip_prefix('"') else {
        let end = text.find(char::is_whitespace).unwrap_or(text.len());
        return Some((text[..end].to_string(), &text[end..]));
    };
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Some((value, &quoted[at + 1..])),
            '\\' => value.push(chars.next()?.1),
            c => value.push(c),
        }
    }
    None
}

impl SaslConfig {
    /// Applies one of its keys; `Ok(false)` when `key` is not one of them.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        match key {
            "sasl.enabled.mechanisms" => self.enabled_mechanisms = Some(mechanisms(key, value)?),
            "sasl.mechanism.inter.broker.protocol" => {
                self.inter_broker_mechanism = Some(value.to_string())
            }
            "sasl.mechanism.controller.protocol" => {
                self.controller_mechanism = Some(value.to_string())
            }
            "sasl.server.max.receive.size" => {
                self.server_max_receive_size = parse_range(key, value, 1, i32::MAX as usize)?
            }
            "connections.max.reauth.ms" => {
                self.max_reauth_ms = parse_range(key, value, 0, i64::MAX)?
            }
            _ if self.oauth.set_global(key, value)? => {}
            _ => return self.set_listener_key(key, value),
        }
        Ok(true)
    }

    /// `listener.name.<listener>.sasl.enabled.mechanisms` and
    /// `listener.name.<listener>.<mechanism>.sasl.jaas.config`.
    fn set_listener_key(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        let Some(rest) = key.strip_prefix("listener.name.") else {
            return Ok(false);
        };
        if let Some(listener) = rest.strip_suffix(".sasl.enabled.mechanisms") {
            let list = mechanisms(key, value)?;
            self.listener_mechanisms
                .insert(listener.to_ascii_uppercase(), list);
            return Ok(true);
        }
        if let Some(prefix) = rest.strip_suffix(".connections.max.reauth.ms") {
            let reauth_ms = parse_range(key, value, 0, i64::MAX)?;
            let (listener, mechanism) = match prefix.split_once('.') {
                Some((listener, mechanism)) => (listener, Some(mechanism_of(key, mechanism)?)),
                None => (prefix, None),
            };
            self.listener_max_reauth_ms
                .insert((listener.to_ascii_uppercase(), mechanism), reauth_ms);
            return Ok(true);
        }
        if let Some((listener, rest)) = rest.split_once(".oauthbearer.") {
            if self.oauth.set_listener(key, listener, rest, value)? {
                return Ok(true);
            }
        }
        let Some(prefix) = rest.strip_suffix(".sasl.jaas.config") else {
            return Ok(false);
        };
        let (listener, mechanism) = prefix.split_once('.').ok_or_else(|| {
            ConfigError(format!(
                "{key}: expected listener.name.<listener>.<mechanism>.sasl.jaas.config"
            ))
        })?;
        let mechanism = mechanism_of(key, mechanism)?;
        let jaas = parse_jaas(key, value)?;
        self.jaas
            .insert((listener.to_ascii_uppercase(), mechanism), jaas);
        Ok(true)
    }

    /// `connections.max.reauth.ms` for `mechanism` on `listener`: the
    /// listener-and-mechanism key, else the listener's, else the global one.
    pub fn max_reauth_ms(&self, listener: &str, mechanism: SaslMechanism) -> i64 {
        let listener = listener.to_string();
        self.listener_max_reauth_ms
            .get(&(listener.clone(), Some(mechanism)))
            .or_else(|| self.listener_max_reauth_ms.get(&(listener, None)))
            .copied()
            .unwrap_or(self.max_reauth_ms)
    }

    /// How `listener` validates OAUTHBEARER tokens, if it enables the
    /// mechanism (`check_listener` has checked that it can).
    pub fn oauth_validator(&self, listener: &str) -> Option<OAuthValidatorConfig> {
        if !self
            .mechanisms_of(listener)
            .contains(&SaslMechanism::OAuthBearer)
        {
            return None;
        }
        let jaas = self
            .jaas
            .get(&(listener.to_string(), SaslMechanism::OAuthBearer))?;
        self.oauth.validator(listener, &jaas.options).ok()
    }

    /// The mechanisms `listener` serves: its own list, else the global one.
    pub fn mechanisms_of(&self, listener: &str) -> &[SaslMechanism] {
        self.listener_mechanisms
            .get(listener)
            .or(self.enabled_mechanisms.as_ref())
            .map_or(&[], Vec::as_slice)
    }

    /// The PLAIN users of `listener` (its PlainLoginModule's `user_` options).
    pub fn plain_users(&self, listener: &str) -> BTreeMap<String, String> {
        self.jaas
            .get(&(listener.to_string(), SaslMechanism::Plain))
            .map(JaasConfig::plain_users)
            .unwrap_or_default()
    }

    /// Checks a SASL listener named `listener`: it has mechanisms, and
    /// PLAIN has its login module (the users it accepts).
    pub fn check_listener(&self, listener: &str) -> Result<(), ConfigError> {
        let enabled = self.mechanisms_of(listener);
        if enabled.is_empty() {
            return Err(ConfigError(format!(
                "listener {listener} uses SASL but no mechanism is enabled: Kafka's default sasl.enabled.mechanisms=GSSAPI is not served by shoal; set sasl.enabled.mechanisms to some of {SERVED}"
            )));
        }
        if enabled.contains(&SaslMechanism::Plain) {
            let prefix = format!("listener.name.{}.plain", listener.to_ascii_lowercase());
            match self.jaas.get(&(listener.to_string(), SaslMechanism::Plain)) {
                None => {
                    return Err(ConfigError(format!(
                        "listener {listener} enables SASL/PLAIN but {prefix}.sasl.jaas.config is not set: it names the users (user_<name>=\"<password>\")"
                    )))
                }
                Some(jaas) if jaas.login_module != PLAIN_LOGIN_MODULE => {
                    return Err(ConfigError(format!(
                        "{prefix}.sasl.jaas.config: the login module must be {PLAIN_LOGIN_MODULE}, not {}",
                        jaas.login_module
                    )))
                }
                Some(_) => {}
            }
        }
        for ((name, mechanism), jaas) in &self.jaas {
            let module = match mechanism {
                SaslMechanism::Plain => continue,
                SaslMechanism::OAuthBearer => OAUTHBEARER_LOGIN_MODULE,
                _ => SCRAM_LOGIN_MODULE,
            };
            if name == listener && jaas.login_module != module {
                return Err(ConfigError(format!(
                    "listener.name.{}.{}.sasl.jaas.config: the login module must be {module}, not {}",
                    listener.to_ascii_lowercase(),
                    mechanism.name().to_ascii_lowercase(),
                    jaas.login_module
                )));
            }
        }
        if enabled.contains(&SaslMechanism::OAuthBearer) {
            let key = format!(
                "listener.name.{}.oauthbearer.sasl.jaas.config",
                listener.to_ascii_lowercase()
            );
            let jaas = self
                .jaas
                .get(&(listener.to_string(), SaslMechanism::OAuthBearer))
                .ok_or_else(|| ConfigError(format!(
                    "listener {listener} enables SASL/OAUTHBEARER but {key} is not set: {OAUTHBEARER_LOGIN_MODULE} required;"
                )))?;
            self.oauth
                .validator(listener, &jaas.options)
                .map_err(|error| ConfigError(format!("{key}: {}", error.0)))?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "sasl_tests.rs"]
mod tests;
