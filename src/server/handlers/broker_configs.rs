//! Changes to BROKER resources through AlterConfigs and
//! IncrementalAlterConfigs: Kafka's dynamic broker configs, in shoal a TLS
//! listener's reloadable keys (`metadata::broker_configs`), such as
//! `kafka-configs --entity-type brokers --entity-name <id> --alter
//! --add-config listener.name.<l>.ssl.keystore.location=...`.
//!
//! The broker a client sends the change to checks it as Kafka's
//! `ConfigAdminManager.preprocess` does (Kafka's clients send a broker's
//! change to that broker): the resource names this broker or the cluster
//! default, the keys are dynamic ones, and the new settings load (the
//! files parse, the certificate's subject is the old one's:
//! `dynamic_tls::load`); a failure is INVALID_REQUEST and changes nothing.
//! Then the change goes to the controller (`forward::forward_request`
//! when this node is not it), which checks the keys again but not the
//! files (they are the sending broker's), and commits its ConfigRecords
//! (`Controller::alter_broker_configs`). Every broker applies the records
//! addressed to it as they reach it, and again at start
//! (`shard::dynamic_tls`).
//!
//! Invariant: files are read on the blocking pool, never on the reactor;
//! a change is checked whole before anything is committed.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;

use crate::metadata::broker_configs::{self, BrokerConfigChange, CLUSTER_DEFAULT};
use crate::metadata::ClusterView;
use crate::server::connection::ConnectionContext;
use crate::shard::dynamic_tls;
use crate::shard::messages::{KafkaError, ShardRequest};

fn invalid_request(message: String) -> KafkaError {
    KafkaError::with_message(ResponseError::InvalidRequest, message)
}

/// Kafka's checks of `change` on the node `context` is on: the broker the
/// client sent it to, or the controller it was forwarded to.
pub async fn check(
    context: &ConnectionContext,
    change: &BrokerConfigChange,
) -> Result<(), KafkaError> {
    let view = context.shard.view();
    let node_id = context.shard.config.node_id;
    let name = change.name.as_str();
    if name != CLUSTER_DEFAULT {
        let id: i32 = name.parse().map_err(|_| {
            invalid_request(format!("Node id must be an integer, but it is: {name}"))
        })?;
        if context.forwarded {
            registered(&view, id, name)?;
        } else if id != node_id {
            return Err(invalid_request(format!(
                "Unexpected broker id, expected {node_id}, but received {name}"
            )));
        }
    }
    broker_configs::check_keys(name, &change.set_keys()).map_err(invalid_request)?;
    if context.forwarded || name == CLUSTER_DEFAULT {
        return Ok(());
    }
    loads(context, &view, change).await
}

/// The broker the resource names must be registered (a forwarded change
/// was checked by it; here the controller only knows it exists).
fn registered(view: &ClusterView, id: i32, name: &str) -> Result<(), KafkaError> {
    if view.brokers().iter().any(|broker| broker.id == id) {
        return Ok(());
    }
    let expected: Vec<String> = view
        .brokers()
        .iter()
        .map(|broker| broker.id.to_string())
        .collect();
    Err(invalid_request(format!(
        "Unexpected broker id, expected {}, but received {name}",
        expected.join(" or ")
    )))
}

/// This broker's TLS listeners the change touches load under the dynamic
/// configs it leaves, each checked against the listener's current
/// certificate subject.
async fn loads(
    context: &ConnectionContext,
    view: &ClusterView,
    change: &BrokerConfigChange,
) -> Result<(), KafkaError> {
    let config = &context.shard.config;
    let current = view
        .broker_configs
        .get(&change.name)
        .cloned()
        .unwrap_or_default();
    let mut configs = (*view.broker_configs).clone();
    configs.insert(change.name.clone(), change.applied_to(&current));
    let next = broker_configs::effective(&configs, config.node_id);
    let tls = dynamic_tls::tls_client_listeners(config);
    // Each key the change sets (true) or deletes, a replacement deleting
    // what it does not name.
    let touched = change
        .ops
        .iter()
        .map(|(key, value)| (key, value.is_some()))
        .chain(
            current
                .keys()
                .filter(|_| change.replace)
                .map(|key| (key, false)),
        );
    let mut listeners = BTreeSet::new();
    for (key, sets) in touched {
        let Some((listener, _)) = broker_configs::listener_ssl_key(key) else {
            continue;
        };
        if tls.contains(&listener) {
            listeners.insert(listener);
        } else if sets {
            return Err(invalid_request(format!(
                "Cannot update these configs dynamically: {key}: {listener} is not a TLS client listener of broker {}",
                config.node_id
            )));
        }
    }
    for listener in listeners {
        let acceptor = context.shard.tls.get(&listener);
        dynamic_tls::load(config, &next, &listener, acceptor)
            .await
            .map_err(|error| {
                invalid_request(format!(
                    "Validation of dynamic config update of SSLFactory failed: {error}"
                ))
            })?;
    }
    Ok(())
}

/// Sends the checked changes to the controller; one result per change.
pub async fn apply(
    context: &ConnectionContext,
    changes: Vec<BrokerConfigChange>,
) -> Vec<Result<(), KafkaError>> {
    let count = changes.len();
    super::alter_configs::applied(context, count, ShardRequest::AlterBrokerConfigs(changes)).await
}

/// Kafka's ConfigSource codes of dynamic broker configs.
pub const SOURCE_DYNAMIC_BROKER: i8 = 2;
pub const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
const SOURCE_STATIC_BROKER: i8 = 4;
/// Kafka's ConfigType codes (KIP-569) of the reloadable SSL keys.
const TYPE_STRING: i8 = 2;
const TYPE_PASSWORD: i8 = 9;

/// One dynamic config as DescribeConfigs lists it.
pub struct DynamicEntry {
    pub name: String,
    /// None for a sensitive one, as Kafka hides it.
    pub value: Option<String>,
    pub source: i8,
    pub config_type: i8,
    pub sensitive: bool,
    /// (name, value, source), Kafka's precedence order.
    pub synonyms: Vec<(String, Option<String>, i8)>,
}

/// The dynamic configs of BROKER resource `name` as Kafka's
/// `ConfigHelper` lists them: this broker's (its own over the cluster
/// default's, `DYNAMIC_BROKER_CONFIG` or `DYNAMIC_DEFAULT_BROKER_CONFIG`),
/// or for the cluster default (`CLUSTER_DEFAULT`) the default's alone.
/// Synonyms run from the listener key to its unprefixed key: the dynamic
/// values, the default's, then the config file's.
pub fn described(
    view: &ClusterView,
    config: &crate::config::BrokerConfig,
    name: &str,
) -> Vec<DynamicEntry> {
    let per_broker = name != CLUSTER_DEFAULT;
    let none = Default::default();
    let own = match per_broker {
        true => view.broker_configs.get(name).unwrap_or(&none),
        false => &none,
    };
    let default = view.broker_configs.get(CLUSTER_DEFAULT).unwrap_or(&none);
    let names: BTreeSet<&String> = own.keys().chain(default.keys()).collect();
    names
        .into_iter()
        .map(|key| {
            let base = broker_configs::listener_ssl_key(key).map(|(_, base)| base.to_string());
            let sensitive = base
                .as_deref()
                .is_some_and(|base| broker_configs::SENSITIVE_SSL_KEYS.contains(&base));
            let synonyms_of = [Some(key.clone()), base].into_iter().flatten();
            let shown = |value: &String| (!sensitive).then(|| value.clone());
            let mut synonyms = Vec::new();
            for (map, source) in [
                (own, SOURCE_DYNAMIC_BROKER),
                (default, SOURCE_DYNAMIC_DEFAULT_BROKER),
                (&config.explicit, SOURCE_STATIC_BROKER),
            ] {
                for synonym in synonyms_of.clone() {
                    if let Some(value) = map.get(&synonym) {
                        synonyms.push((synonym, shown(value), source));
                    }
                }
            }
            let (value, source) = synonyms
                .first()
                .map(|(_, value, source)| (value.clone(), *source))
                .unwrap_or((None, SOURCE_DYNAMIC_DEFAULT_BROKER));
            DynamicEntry {
                name: key.clone(),
                value,
                source,
                config_type: if sensitive {
                    TYPE_PASSWORD
                } else {
                    TYPE_STRING
                },
                sensitive,
                synonyms,
            }
        })
        .collect()
}
