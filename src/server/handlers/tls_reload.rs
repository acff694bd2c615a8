//! Certificate reload without restart, Kafka's dynamic listener SSL
//! configs: IncrementalAlterConfigs (or the older AlterConfigs, which
//! only sets them here: DescribeConfigs does not list them, so a tool
//! that replaces a broker's dynamic configs whole would drop them) on this
//! broker's entity setting or
//! deleting `listener.name.<l>.ssl.keystore.location` or
//! `listener.name.<l>.ssl.truststore.location` of one of its TLS
//! listeners (`kafka-configs --entity-type brokers --entity-name <id>
//! --alter --add-config ...`). The new settings are loaded off the
//! reactor, checked (the files parse, the certificate's subject is the
//! old one's: `tls::reload`) and installed on every shard; new handshakes
//! use them, open connections keep theirs. Setting the same path again
//! reads the file again, as Kafka reloads a keystore modified in place.
//!
//! Kafka keeps such a change in the cluster metadata, and a restarted
//! broker applies it; shoal keeps it until the broker stops, and a
//! restart reads the config file (docs/security.md says so).
//!
//! Invariant: a change is checked whole before any shard installs it;
//! files are read on the blocking thread pool, never on the reactor.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;

use crate::config::BrokerConfig;
use crate::security::tls::{reload, TlsAcceptor};
use crate::security::SecurityProtocol;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{KafkaError, ShardRequest};

/// The listener keys a certificate reload takes (Kafka's reloadable
/// files; shoal's keystores are PEM files without store passwords).
const RELOADABLE: &[&str] = &["ssl.keystore.location", "ssl.truststore.location"];

/// The TLS listener (upper case) whose reloadable key `key` is, if it is one.
pub fn reloadable_listener(config: &BrokerConfig, key: &str) -> Option<String> {
    let (listener, name) = key.strip_prefix("listener.name.")?.split_once('.')?;
    if !RELOADABLE.contains(&name) {
        return None;
    }
    let listener = listener.to_ascii_uppercase();
    let protocols = config.cluster.effective_security_protocol_map();
    protocols
        .get(&listener)
        .and_then(|protocol| SecurityProtocol::parse(protocol))
        .is_some_and(SecurityProtocol::uses_tls)
        .then_some(listener)
}

fn invalid_config(message: String) -> KafkaError {
    KafkaError::with_message(ResponseError::InvalidConfig, message)
}

/// One change to a reloadable key: its new value, or None to delete it
/// (back to the config file's value).
pub type Change = (String, Option<String>);

/// Applies `changes` to the reloadable keys of broker `name` (each key
/// one `reloadable_listener` takes); Ok at once when there are none.
pub async fn apply(
    context: &ConnectionContext,
    name: &str,
    changes: Vec<Change>,
    validate_only: bool,
) -> Result<(), KafkaError> {
    if changes.is_empty() {
        return Ok(());
    }
    let config = &context.shard.config;
    let keys: Vec<&str> = changes.iter().map(|(key, _)| key.as_str()).collect();
    if name.is_empty() {
        return Err(KafkaError::with_message(
            ResponseError::InvalidRequest,
            format!(
                "Cannot update these configs at default cluster level, broker id must be specified: {}",
                keys.join(", ")
            ),
        ));
    }
    if name != config.node_id.to_string() {
        return Err(KafkaError::with_message(
            ResponseError::InvalidRequest,
            format!(
                "{} reload the certificates of the broker that serves them: ask broker {name}, not {}",
                keys.join(", "),
                config.node_id
            ),
        ));
    }
    let mut dynamic = context.shard.tls.dynamic();
    let mut listeners = BTreeSet::new();
    for (key, value) in &changes {
        let listener = reloadable_listener(config, key)
            .ok_or_else(|| invalid_config(format!("{key} is not a reloadable config")))?;
        match value {
            Some(value) => dynamic.insert(key.clone(), value.clone()),
            None => dynamic.remove(key),
        };
        listeners.insert(listener);
    }
    let mut built = Vec::with_capacity(listeners.len());
    for listener in listeners {
        let acceptor = load(context, &listener, &dynamic).await?;
        built.push((listener, acceptor));
    }
    if validate_only {
        return Ok(());
    }
    for (listener, acceptor) in built {
        let make = || ShardRequest::InstallTls {
            listener: listener.clone(),
            acceptor: acceptor.clone(),
            dynamic: dynamic.clone(),
        };
        context.shard.broadcast(make).await;
        log::info!("listener {listener}: TLS certificates reloaded; new connections use them");
    }
    Ok(())
}

/// Builds `listener`'s acceptor under `dynamic` on the blocking pool.
async fn load(
    context: &ConnectionContext,
    listener: &str,
    dynamic: &BTreeMap<String, String>,
) -> Result<Arc<TlsAcceptor>, KafkaError> {
    let current = context.shard.tls.get(listener);
    let security = context.shard.config.security.clone();
    let (keys, name) = (dynamic.clone(), listener.to_string());
    glommio::executor()
        .spawn_blocking(move || reload(&security, &keys, &name, current.as_deref()))
        .await
        .map(Arc::new)
        .map_err(|error| {
            invalid_config(format!(
                "Validation of dynamic config update of SSLFactory failed: {error}"
            ))
        })
}
