//! Dynamic broker configs, Kafka's `DynamicBrokerConfig` as the metadata
//! log keeps them: ConfigRecords of resource type BROKER named by a broker
//! id, or "" for the cluster default, which every broker takes under its
//! own. shoal's dynamic broker configs are the TLS listeners' reloadable
//! keys, `listener.name.<l>.<key>` with `<key>` one of Kafka's
//! `SslConfigs.RECONFIGURABLE_CONFIGS`; all are per broker, as in Kafka.
//!
//! Pure: the checks a change passes (Kafka's `validateConfigs`, with its
//! messages), the records a change commits, the configs in force for one
//! broker, and `ConfigTouches`, how a broker notices a record that sets
//! the value it already had.
//!
//! Invariant: nothing here reads a file or a clock; a change is checked
//! whole before any record is made of it.

use std::collections::BTreeMap;

use super::records::{ConfigRecord, MetadataRecord, CONFIG_RESOURCE_BROKER};

/// Kafka's `SslConfigs.RECONFIGURABLE_CONFIGS`: the keys of a listener's
/// TLS settings a broker takes without a restart.
pub const RECONFIGURABLE_SSL_KEYS: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.key.password",
    "ssl.keystore.key",
    "ssl.keystore.certificate.chain",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.certificates",
];

/// The reloadable keys Kafka types PASSWORD: DescribeConfigs hides their
/// values.
pub const SENSITIVE_SSL_KEYS: &[&str] = &[
    "ssl.keystore.password",
    "ssl.key.password",
    "ssl.keystore.key",
    "ssl.keystore.certificate.chain",
    "ssl.truststore.password",
    "ssl.truststore.certificates",
];

/// The resource name of the cluster-wide default.
pub const CLUSTER_DEFAULT: &str = "";

/// The dynamic configs of each BROKER resource, by resource name.
pub type BrokerConfigs = BTreeMap<String, BTreeMap<String, String>>;

/// The listener (upper case, as the config names it) and the SSL key of a
/// reloadable listener key, `listener.name.<l>.<key>`.
pub fn listener_ssl_key(key: &str) -> Option<(String, &str)> {
    let (listener, name) = key.strip_prefix("listener.name.")?.split_once('.')?;
    RECONFIGURABLE_SSL_KEYS
        .contains(&name)
        .then(|| (listener.to_ascii_uppercase(), name))
}

/// One change to a BROKER resource's dynamic configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfigChange {
    /// A broker id, or `CLUSTER_DEFAULT`.
    pub name: String,
    /// Each key's new value, or None to delete it, in the request's order.
    pub ops: Vec<(String, Option<String>)>,
    /// AlterConfigs: `ops` are the resource's whole new set, and what they
    /// do not name is deleted.
    pub replace: bool,
    pub validate_only: bool,
}

impl BrokerConfigChange {
    /// The keys the change gives a value.
    pub fn set_keys(&self) -> Vec<&str> {
        self.ops
            .iter()
            .filter(|(_, value)| value.is_some())
            .map(|(key, _)| key.as_str())
            .collect()
    }

    /// The resource's configs after the change, from `current`'s.
    pub fn applied_to(&self, current: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut configs = if self.replace {
            BTreeMap::new()
        } else {
            current.clone()
        };
        for (key, value) in &self.ops {
            match value {
                Some(value) => configs.insert(key.clone(), value.clone()),
                None => configs.remove(key),
            };
        }
        configs
    }
}

/// Kafka's `DynamicBrokerConfig.validateConfigs` on the keys a change to
/// resource `name` sets: the message of the first check they fail, which
/// Kafka answers INVALID_REQUEST with. Deleting any key passes (it leaves
/// the static value, as a delete does).
pub fn check_keys(name: &str, set: &[&str]) -> Result<(), String> {
    let unprefixed: Vec<&str> = set
        .iter()
        .copied()
        .filter(|key| RECONFIGURABLE_SSL_KEYS.contains(key))
        .collect();
    let not_dynamic: Vec<&str> = set
        .iter()
        .copied()
        .filter(|key| !RECONFIGURABLE_SSL_KEYS.contains(key) && listener_ssl_key(key).is_none())
        .collect();
    if !not_dynamic.is_empty() {
        return Err(format!(
            "Cannot update these configs dynamically: {}. shoal reads broker configs at start \
             only: set them in the config file or with --override and restart.",
            not_dynamic.join(", ")
        ));
    }
    if !unprefixed.is_empty() {
        return Err(format!(
            "These security configs can be dynamically updated only per-listener using the \
             listener prefix: {}",
            unprefixed.join(", ")
        ));
    }
    if name == CLUSTER_DEFAULT && !set.is_empty() {
        return Err(format!(
            "Cannot update these configs at default cluster level, broker id must be specified: {}",
            set.join(", ")
        ));
    }
    Ok(())
}

/// The records that commit `changes` over `configs`. A key set to the value
/// it has, or deleted where it is absent, still gets its record, as
/// Kafka's controller writes one for every BROKER key (KAFKA-14136): the
/// broker takes the record as a reload, which re-reads a keystore replaced
/// in place under the same path. A `validate_only` change makes none.
pub fn alter(configs: &BrokerConfigs, changes: &[BrokerConfigChange]) -> Vec<MetadataRecord> {
    let record = |name: &str, key: &str, value: Option<&String>| {
        MetadataRecord::Config(ConfigRecord {
            resource_type: CONFIG_RESOURCE_BROKER,
            resource_name: name.to_string(),
            name: key.to_string(),
            value: value.cloned(),
        })
    };
    let mut records = Vec::new();
    for change in changes.iter().filter(|change| !change.validate_only) {
        if change.replace {
            let named = |key: &String| change.ops.iter().any(|(op, _)| op == key);
            let dropped = configs
                .get(&change.name)
                .into_iter()
                .flat_map(|current| current.keys())
                .filter(|key| !named(key));
            records.extend(dropped.map(|key| record(&change.name, key, None)));
        }
        records.extend(
            change
                .ops
                .iter()
                .map(|(key, value)| record(&change.name, key, value.as_ref())),
        );
    }
    records
}

/// The dynamic configs in force on broker `node_id`: the cluster default's,
/// under its own (Kafka's precedence).
pub fn effective(configs: &BrokerConfigs, node_id: i32) -> BTreeMap<String, String> {
    let mut merged = configs.get(CLUSTER_DEFAULT).cloned().unwrap_or_default();
    if let Some(own) = configs.get(&node_id.to_string()) {
        merged.extend(own.iter().map(|(key, value)| (key.clone(), value.clone())));
    }
    merged
}

/// How many BROKER ConfigRecords an image applied, per resource name,
/// since it was built. Not metadata: an image rebuilt from a snapshot
/// starts again at zero, so two images compare equal whatever their
/// counts. A broker compares the counts of its own resource and the
/// default with those it last applied, to take a record that sets the
/// value a key already had as a reload (Kafka's brokers take every such
/// record so, KAFKA-14136).
#[derive(Debug, Clone, Default)]
pub struct ConfigTouches(BTreeMap<String, u64>);

impl PartialEq for ConfigTouches {
    fn eq(&self, _other: &ConfigTouches) -> bool {
        true
    }
}

impl Eq for ConfigTouches {}

impl ConfigTouches {
    pub fn touch(&mut self, name: &str) {
        let count = self.0.entry(name.to_string()).or_default();
        *count = count.wrapping_add(1);
    }

    /// The records applied to resource `name`.
    pub fn of(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }
}

#[cfg(test)]
#[path = "broker_configs_tests.rs"]
mod tests;
