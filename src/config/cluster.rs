//! The settings a node joins a cluster by, with Kafka's KRaft names and
//! defaults: its roles, the controller quorum, its named listeners and
//! which of them serve clients and controllers, its rack, and the quorum's
//! timings. `BrokerConfig::set` parses each key here; `check` is Kafka's
//! validation of the whole (`KafkaConfig.validateValues`), run once every
//! key is known because the rules span keys.

use std::collections::BTreeMap;

use super::parse::{parse_range, split_host_port};
use super::ConfigError;

/// Kafka's `controller.quorum.election.timeout.ms` default.
pub const QUORUM_ELECTION_TIMEOUT_MS_DEFAULT: i32 = 1000;
/// Kafka's `metadata.log.max.record.bytes.between.snapshots` default (20 MiB).
pub const METADATA_SNAPSHOT_BYTES_DEFAULT: u64 = 20 * 1024 * 1024;
/// Kafka's `controller.quorum.fetch.timeout.ms` default.
pub const QUORUM_FETCH_TIMEOUT_MS_DEFAULT: i32 = 2000;
/// Kafka's `controller.quorum.election.backoff.max.ms` default.
pub const QUORUM_ELECTION_BACKOFF_MAX_MS_DEFAULT: i32 = 1000;
/// Kafka's `broker.session.timeout.ms` default.
pub const BROKER_SESSION_TIMEOUT_MS_DEFAULT: i32 = 9000;
/// Kafka's `broker.heartbeat.interval.ms` default.
pub const BROKER_HEARTBEAT_INTERVAL_MS_DEFAULT: i32 = 2000;
/// Kafka's `listener.security.protocol.map` default.
pub const SECURITY_PROTOCOL_MAP_DEFAULT: &str =
    "SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT";
/// Kafka's security protocols; shoal speaks all four on client listeners.
const SECURITY_PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];
/// The protocol every listener speaks unless mapped otherwise.
const PLAINTEXT: &str = "PLAINTEXT";

/// A role of `process.roles`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProcessRole {
    Broker,
    Controller,
}

impl ProcessRole {
    pub fn name(self) -> &'static str {
        match self {
            ProcessRole::Broker => "broker",
            ProcessRole::Controller => "controller",
        }
    }
}

/// One entry of `listeners` or `advertised.listeners`: `NAME://host:port`.
/// The name is upper case, as Kafka normalises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// `host:port`, an IPv6 host in brackets.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl Listener {
    pub fn address(&self) -> String {
        host_port(&self.host, self.port)
    }
}

/// One voter of `controller.quorum.voters`: `id@host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

impl Voter {
    pub fn address(&self) -> String {
        host_port(&self.host, self.port)
    }
}

/// Cluster membership settings (see the module doc). Empty `process_roles`
/// is shoal's plain single node, which formats its own storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub process_roles: Vec<ProcessRole>,
    pub quorum_voters: Vec<Voter>,
    /// `controller.quorum.bootstrap.servers`: `host:port` of controllers.
    pub quorum_bootstrap_servers: Vec<(String, u16)>,
    pub listeners: Vec<Listener>,
    /// None: the listeners, as in Kafka.
    pub advertised_listeners: Option<Vec<Listener>>,
    /// None: Kafka's default map, with each controller listener name
    /// mapped to PLAINTEXT (Kafka's effective map when it is not set).
    pub security_protocol_map: Option<BTreeMap<String, String>>,
    pub controller_listener_names: Vec<String>,
    pub inter_broker_listener_name: Option<String>,
    /// `security.inter.broker.protocol`: names the inter-broker listener
    /// by its protocol when `inter.broker.listener.name` is not set.
    pub inter_broker_security_protocol: Option<String>,
    pub broker_rack: Option<String>,
    pub quorum_election_timeout_ms: i32,
    pub quorum_fetch_timeout_ms: i32,
    pub quorum_election_backoff_max_ms: i32,
    pub broker_session_timeout_ms: i32,
    pub broker_heartbeat_interval_ms: i32,
    /// `metadata.log.max.record.bytes.between.snapshots`: the record bytes
    /// the metadata log takes before the image is snapshot and the log
    /// compacted.
    pub metadata_snapshot_bytes: u64,
}

impl Default for ClusterConfig {
    fn default() -> ClusterConfig {
        ClusterConfig {
            process_roles: Vec::new(),
            quorum_voters: Vec::new(),
            quorum_bootstrap_servers: Vec::new(),
            listeners: vec![Listener {
                name: PLAINTEXT.to_string(),
                host: "127.0.0.1".to_string(),
                port: 9092,
            }],
            advertised_listeners: None,
            security_protocol_map: None,
            controller_listener_names: Vec::new(),
            inter_broker_listener_name: None,
            inter_broker_security_protocol: None,
            broker_rack: None,
            quorum_election_timeout_ms: QUORUM_ELECTION_TIMEOUT_MS_DEFAULT,
            quorum_fetch_timeout_ms: QUORUM_FETCH_TIMEOUT_MS_DEFAULT,
            quorum_election_backoff_max_ms: QUORUM_ELECTION_BACKOFF_MAX_MS_DEFAULT,
            broker_session_timeout_ms: BROKER_SESSION_TIMEOUT_MS_DEFAULT,
            broker_heartbeat_interval_ms: BROKER_HEARTBEAT_INTERVAL_MS_DEFAULT,
            metadata_snapshot_bytes: METADATA_SNAPSHOT_BYTES_DEFAULT,
        }
    }
}

/// Kafka's comma-separated list: entries trimmed, empty ones dropped.
fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// `NAME://host:port`; a bare `host:port` (shoal's `--listen`) is the
/// PLAINTEXT listener.
fn listener(entry: &str) -> Result<Listener, ConfigError> {
    let unparsable = || ConfigError(format!("Unable to parse {entry} to a broker endpoint"));
    let (name, address) = entry.split_once("://").unwrap_or((PLAINTEXT, entry));
    if name.is_empty() {
        return Err(unparsable());
    }
    let (host, port) = split_host_port(address).ok_or_else(unparsable)?;
    Ok(Listener {
        name: name.to_ascii_uppercase(),
        host,
        port: u16::try_from(port).map_err(|_| unparsable())?,
    })
}

fn listeners(value: &str) -> Result<Vec<Listener>, ConfigError> {
    list(value).map(listener).collect()
}

fn voters(value: &str) -> Result<Vec<Voter>, ConfigError> {
    let key = "controller.quorum.voters";
    let mut voters: Vec<Voter> = Vec::new();
    for entry in list(value) {
        let (id, address) = entry.split_once('@').ok_or_else(|| {
            ConfigError(format!(
                "Invalid configuration value for {key}: Invalid entry {entry}, expected ID@HOST:PORT"
            ))
        })?;
        let id: i32 = id.trim().parse().map_err(|_| {
            ConfigError(format!(
                "Failed to parse voter ID as an integer from {}",
                id.trim()
            ))
        })?;
        let (host, port) = split_host_port(address.trim())
            .and_then(|(host, port)| Some((host, u16::try_from(port).ok()?)))
            .ok_or_else(|| {
                ConfigError(format!(
                    "Failed to parse host name and port from entry {entry} of {key}"
                ))
            })?;
        if voters.iter().any(|voter| voter.id == id) {
            return Err(ConfigError(format!(
                "Invalid configuration value for {key}: duplicate voter id {id}"
            )));
        }
        voters.push(Voter { id, host, port });
    }
    Ok(voters)
}

fn protocol_map(value: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let key = "listener.security.protocol.map";
    let mut map = BTreeMap::new();
    for entry in list(value) {
        let (name, protocol) = entry.split_once(':').ok_or_else(|| {
            ConfigError(format!(
                "Invalid value {value} for configuration {key}: Map entry '{entry}' is improperly formatted"
            ))
        })?;
        let protocol = protocol.trim().to_ascii_uppercase();
        if !SECURITY_PROTOCOLS.contains(&protocol.as_str()) {
            return Err(ConfigError(format!(
                "Invalid security protocol `{}` defined in {key}",
                protocol
            )));
        }
        map.insert(name.trim().to_ascii_uppercase(), protocol);
    }
    Ok(map)
}

impl ClusterConfig {
    /// Applies one of its keys; `Ok(false)` when `key` is not one of them.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        let timeout = |value: &str| parse_range(key, value, 0, i32::MAX);
        match key {
            "process.roles" => {
                let mut roles = Vec::new();
                for role in list(value) {
                    let role = match role {
                        "broker" => ProcessRole::Broker,
                        "controller" => ProcessRole::Controller,
                        _ => {
                            return Err(ConfigError(format!(
                                "Unknown process role '{role}' (only 'broker' and 'controller' are allowed roles)"
                            )))
                        }
                    };
                    if roles.contains(&role) {
                        return Err(ConfigError(format!(
                            "Duplicate role names found in `process.roles`: {value}"
                        )));
                    }
                    roles.push(role);
                }
                roles.sort();
                self.process_roles = roles;
            }
            "controller.quorum.voters" => self.quorum_voters = voters(value)?,
            "controller.quorum.bootstrap.servers" => {
                self.quorum_bootstrap_servers = list(value)
                    .map(|entry| {
                        split_host_port(entry)
                            .and_then(|(host, port)| Some((host, u16::try_from(port).ok()?)))
                            .ok_or_else(|| {
                                ConfigError(format!(
                                    "Invalid url in controller.quorum.bootstrap.servers: {entry}"
                                ))
                            })
                    })
                    .collect::<Result<_, _>>()?
            }
            "listeners" | "listen" => self.listeners = listeners(value)?,
            "advertised.listeners" | "advertise" => {
                self.advertised_listeners = Some(listeners(value)?)
            }
            "listener.security.protocol.map" => {
                self.security_protocol_map = Some(protocol_map(value)?)
            }
            "controller.listener.names" => {
                self.controller_listener_names = list(value).map(str::to_ascii_uppercase).collect()
            }
            "inter.broker.listener.name" => {
                self.inter_broker_listener_name = Some(value.to_ascii_uppercase())
            }
            "security.inter.broker.protocol" => {
                let protocol = value.trim().to_ascii_uppercase();
                if !SECURITY_PROTOCOLS.contains(&protocol.as_str()) {
                    return Err(ConfigError(format!(
                        "Invalid value {value} for configuration {key}: String must be one of: {}",
                        SECURITY_PROTOCOLS.join(", ")
                    )));
                }
                self.inter_broker_security_protocol = Some(protocol)
            }
            "broker.rack" => self.broker_rack = Some(value.to_string()),
            "controller.quorum.election.timeout.ms" => {
                self.quorum_election_timeout_ms = timeout(value)?
            }
            "controller.quorum.fetch.timeout.ms" => self.quorum_fetch_timeout_ms = timeout(value)?,
            "controller.quorum.election.backoff.max.ms" => {
                self.quorum_election_backoff_max_ms = timeout(value)?
            }
            "broker.session.timeout.ms" => self.broker_session_timeout_ms = timeout(value)?,
            "broker.heartbeat.interval.ms" => self.broker_heartbeat_interval_ms = timeout(value)?,
            "metadata.log.max.record.bytes.between.snapshots" => {
                self.metadata_snapshot_bytes = parse_range(key, value, 1, i64::MAX as u64)?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub fn has_role(&self, role: ProcessRole) -> bool {
        self.process_roles.contains(&role)
    }

    /// Whether the node runs in KRaft mode (`process.roles` set): its
    /// storage must be formatted by `shoal storage format`.
    pub fn kraft(&self) -> bool {
        !self.process_roles.is_empty()
    }

    fn is_controller_listener(&self, name: &str) -> bool {
        self.controller_listener_names.iter().any(|n| n == name)
    }

    /// The listener the quorum's voters reach this node on: the first of
    /// `listeners` named in `controller.listener.names`, as Kafka's.
    pub fn controller_listener(&self) -> Option<&Listener> {
        self.controller_listener_names
            .iter()
            .find_map(|name| self.listeners.iter().find(|l| &l.name == name))
    }

    /// The advertised listeners: `advertised.listeners`, else `listeners`.
    pub fn effective_advertised(&self) -> &[Listener] {
        self.advertised_listeners
            .as_deref()
            .unwrap_or(&self.listeners)
    }

    /// The listener clients are served on: `inter.broker.listener.name` if
    /// it names one, else the first that is not a controller listener.
    pub fn broker_listener(&self) -> Option<&Listener> {
        let named = self
            .inter_broker_listener_name
            .as_ref()
            .or(self.inter_broker_security_protocol.as_ref())
            .and_then(|name| self.listeners.iter().find(|l| &l.name == name));
        named.or_else(|| {
            self.listeners
                .iter()
                .find(|l| !self.is_controller_listener(&l.name))
        })
    }

    /// Every listener that serves clients (not a controller listener), in
    /// `listeners` order.
    pub fn client_listeners(&self) -> impl Iterator<Item = &Listener> {
        self.listeners
            .iter()
            .filter(|l| !self.is_controller_listener(&l.name))
    }

    /// Where clients are told to connect on `listener`: its entry of the
    /// advertised listeners, else the listener itself.
    pub fn advertised_listener<'a>(&'a self, listener: &'a Listener) -> &'a Listener {
        self.effective_advertised()
            .iter()
            .find(|l| l.name == listener.name)
            .unwrap_or(listener)
    }

    /// Where clients are told to connect: the advertised listener of the
    /// broker listener's name, else the broker listener itself.
    pub fn advertised_broker_listener(&self) -> Option<&Listener> {
        let broker = self.broker_listener()?;
        self.effective_advertised()
            .iter()
            .find(|l| l.name == broker.name)
            .or(Some(broker))
    }

    /// The security protocol of each listener name: the map as set, or
    /// Kafka's default plus each controller listener name as PLAINTEXT.
    pub fn effective_security_protocol_map(&self) -> BTreeMap<String, String> {
        match &self.security_protocol_map {
            Some(map) => map.clone(),
            None => {
                let mut map = protocol_map(SECURITY_PROTOCOL_MAP_DEFAULT).unwrap_or_default();
                for name in &self.controller_listener_names {
                    map.entry(name.clone())
                        .or_insert_with(|| PLAINTEXT.to_string());
                }
                map
            }
        }
    }

    /// Kafka's rules over the whole config (`KafkaConfig.validateValues`
    /// and the listener checks), with Kafka's messages, plus what shoal
    /// cannot do: several client listeners on a node of a cluster.
    /// `node_id_set`: whether `node.id` was given (Kafka has no default).
    pub fn check(&self, node_id: i32, node_id_set: bool) -> Result<(), ConfigError> {
        let fail = |message: String| Err(ConfigError(message));
        let names: Vec<&str> = self.listeners.iter().map(|l| l.name.as_str()).collect();
        let listed = self
            .listeners
            .iter()
            .map(|l| format!("{}://{}", l.name, l.address()))
            .collect::<Vec<_>>()
            .join(",");
        for (at, listener) in self.listeners.iter().enumerate() {
            let later = &self.listeners[at + 1..];
            if later.iter().any(|l| l.name == listener.name) {
                return fail(format!(
                    "Each listener must have a different name, listeners: {listed}"
                ));
            }
            if later.iter().any(|l| l.port == listener.port) {
                return fail(format!(
                    "Each listener must have a different port, listeners: {listed}"
                ));
            }
        }
        let protocols = self.effective_security_protocol_map();
        for listener in self.listeners.iter().chain(self.effective_advertised()) {
            if !protocols.contains_key(&listener.name) {
                return fail(format!(
                    "No security protocol defined for listener {}",
                    listener.name
                ));
            }
        }
        if let Some(name) = &self.inter_broker_listener_name {
            if !protocols.contains_key(name) {
                return fail(format!(
                    "Listener with name {name} defined in inter.broker.listener.name not found in listener.security.protocol.map."
                ));
            }
            if self.inter_broker_security_protocol.is_some() {
                return fail("Only one of inter.broker.listener.name and security.inter.broker.protocol should be set.".to_string());
            }
        }
        self.check_client_listeners()?;
        let voter_ids: Vec<i32> = self.quorum_voters.iter().map(|v| v.id).collect();
        let voter_set = format!(
            "{{{}}}",
            voter_ids
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        let controller_listeners: Vec<&Listener> = self
            .listeners
            .iter()
            .filter(|l| self.is_controller_listener(&l.name))
            .collect();
        if !self.kraft() {
            if !self.controller_listener_names.is_empty() {
                return fail(format!(
                    "controller.listener.names must be empty when not running in KRaft mode: [{}]",
                    self.controller_listener_names.join(", ")
                ));
            }
        } else {
            if !node_id_set || node_id < 0 {
                return fail("Missing configuration `node.id` which is required when `process.roles` is defined (i.e. when running in KRaft mode).".to_string());
            }
            if self.quorum_voters.is_empty() && self.quorum_bootstrap_servers.is_empty() {
                return fail("If using process.roles, either controller.quorum.bootstrap.servers must contain the set of bootstrap controllers or controller.quorum.voters must contain a parseable set of controllers.".to_string());
            }
            let controller = self.has_role(ProcessRole::Controller);
            if controller {
                if !voter_ids.is_empty() && !voter_ids.contains(&node_id) {
                    return fail(format!("If process.roles contains the 'controller' role, the node id {node_id} must be included in the set of voters controller.quorum.voters={voter_set}"));
                }
                if controller_listeners.is_empty() {
                    return fail("controller.listener.names must contain at least one value appearing in the 'listeners' configuration when running the KRaft controller role".to_string());
                }
                if !self
                    .controller_listener_names
                    .iter()
                    .all(|name| names.contains(&name.as_str()))
                {
                    return fail("controller.listener.names must only contain values appearing in the 'listeners' configuration when running the KRaft controller role".to_string());
                }
                // The voters are how the other controllers reach this one:
                // its own entry must be where its controller listener is.
                let own = controller_listeners[0];
                if let Some(voter) = self.quorum_voters.iter().find(|v| v.id == node_id) {
                    if voter.port != own.port {
                        return fail(format!(
                            "controller.quorum.voters names node {node_id} at {}, but its controller listener {} is at {}",
                            voter.address(),
                            own.name,
                            own.address()
                        ));
                    }
                }
                if !self.has_role(ProcessRole::Broker)
                    && controller_listeners.len() != self.listeners.len()
                {
                    return fail("The listeners config must only contain KRaft controller listeners from controller.listener.names when process.roles=controller".to_string());
                }
            } else {
                if voter_ids.contains(&node_id) {
                    return fail(format!("If process.roles contains just the 'broker' role, the node id {node_id} must not be included in the set of voters controller.quorum.voters={voter_set}"));
                }
                if self.controller_listener_names.is_empty() {
                    return fail("controller.listener.names must contain at least one value when running KRaft with just the broker role".to_string());
                }
                if !controller_listeners.is_empty() {
                    return fail("controller.listener.names must not contain a value appearing in the 'listeners' configuration when running KRaft with just the broker role".to_string());
                }
            }
        }
        for listener in self.effective_advertised() {
            if listener.host == "0.0.0.0" {
                return fail("advertised.listeners cannot use the nonroutable meta-address 0.0.0.0. Use a routable IP address.".to_string());
            }
        }
        if self.kraft() && !self.has_role(ProcessRole::Broker) {
            return Ok(());
        }
        let advertised: Vec<&str> = self
            .effective_advertised()
            .iter()
            .map(|l| l.name.as_str())
            .filter(|name| !self.is_controller_listener(name))
            .collect();
        if advertised.is_empty() {
            return fail(format!(
                "There must be at least one broker advertised listener.{}",
                if self.kraft() {
                    " Perhaps all listeners appear in controller.listener.names?"
                } else {
                    ""
                }
            ));
        }
        if let Some(name) = &self.inter_broker_listener_name {
            if !advertised.contains(&name.as_str()) {
                return fail(format!("inter.broker.listener.name must be a listener name defined in advertised.listeners. The valid options based on currently configured listeners are {}", advertised.join(",")));
            }
        }
        if !advertised.iter().all(|name| names.contains(name)) {
            return fail(format!("advertised.listeners listener names must be equal to or a subset of the ones defined in listeners. Found {}. The valid options based on the current configuration are {}", advertised.join(","), names.join(",")));
        }
        Ok(())
    }

    /// What shoal cannot do yet with several client listeners or TLS: a
    /// node of a multi-node cluster serves clients on one listener (other
    /// brokers are advertised at their registered endpoint, one per
    /// broker); `security.inter.broker.protocol` names a listener.
    fn check_client_listeners(&self) -> Result<(), ConfigError> {
        let several_nodes = self.quorum_voters.len() > 1 || self.pure_broker();
        let client_listeners = self.client_listeners().count();
        if several_nodes && client_listeners > 1 {
            return Err(ConfigError(format!(
                "a node of a multi-node cluster serves clients on one listener; listeners has {client_listeners} that are not controller listeners: {}",
                Self::listeners_text(&self.listeners)
            )));
        }
        if let Some(protocol) = &self.inter_broker_security_protocol {
            if !self.listeners.iter().any(|l| &l.name == protocol) {
                return Err(ConfigError(format!(
                    "security.inter.broker.protocol={protocol} names no listener of that name in listeners"
                )));
            }
        }
        // The inter-broker listener may use any protocol: the brokers
        // connect to it as clients (`quorum::link`), with the login
        // `ClientSecurity::inter_broker` reads, checked at start.
        Ok(())
    }

    /// A broker without the controller role (`process.roles=broker`).
    fn pure_broker(&self) -> bool {
        self.has_role(ProcessRole::Broker) && !self.has_role(ProcessRole::Controller)
    }

    /// Whether this node is a controller and no broker
    /// (`process.roles=controller`): it serves its CONTROLLER listener
    /// only, and never hosts a partition.
    pub fn pure_controller(&self) -> bool {
        self.has_role(ProcessRole::Controller) && !self.has_role(ProcessRole::Broker)
    }

    /// Why this node cannot run, if it cannot. A KRaft node runs as a
    /// combined broker and controller among the voters, as a pure
    /// controller among several voters, or as a pure broker observing
    /// several (`shard::observer`). A lone voter binds no CONTROLLER
    /// listener (it elects itself in process), so no broker could reach a
    /// lone pure controller and a pure broker could reach no controller;
    /// a dynamic quorum is not built.
    pub fn unsupported_quorum(&self, node_id: i32) -> Option<String> {
        if !self.kraft() {
            return None;
        }
        if self.quorum_voters.is_empty() {
            return Some("a dynamic quorum (controller.quorum.bootstrap.servers without controller.quorum.voters) is not built yet (issue 14): set controller.quorum.voters".to_string());
        }
        let voter = self.quorum_voters.iter().any(|voter| voter.id == node_id);
        let broker = self.has_role(ProcessRole::Broker);
        let controller = self.has_role(ProcessRole::Controller);
        let several = self.quorum_voters.len() >= 2;
        match (broker, controller, voter) {
            (true, true, true) => None,
            (false, true, true) if several => None,
            (true, false, false) if several => None,
            (false, true, true) => Some("a pure controller (process.roles=controller) as the only voter of controller.quorum.voters is not built yet: a lone voter listens for no broker; list the other controllers in controller.quorum.voters, or run process.roles=broker,controller".to_string()),
            (true, false, false) => Some("a pure broker (process.roles=broker) needs a quorum of several controller.quorum.voters: a lone voter serves no controller listener yet".to_string()),
            _ => {
                let roles: Vec<&str> = self.process_roles.iter().map(|r| r.name()).collect();
                Some(format!(
                    "process.roles={} with node {node_id} {} controller.quorum.voters: a controller must be a voter and a pure broker must not",
                    roles.join(","),
                    if voter { "among" } else { "not among" }
                ))
            }
        }
    }

    /// `listeners` as Kafka prints it.
    pub fn listeners_text(listeners: &[Listener]) -> String {
        listeners
            .iter()
            .map(|l| format!("{}://{}", l.name, l.address()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> ClusterConfig {
        let mut config = ClusterConfig::default();
        for (key, value) in pairs {
            assert!(config.set(key, value).unwrap(), "{key}");
        }
        config
    }

    const COMBINED: &[(&str, &str)] = &[
        ("process.roles", "broker,controller"),
        ("controller.quorum.voters", "1@127.0.0.1:19093"),
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
        ),
        ("controller.listener.names", "CONTROLLER"),
    ];

    fn error(config: &ClusterConfig, node_id: i32) -> String {
        config.check(node_id, true).unwrap_err().0
    }

    #[test]
    fn a_combined_single_node_is_valid_and_serves_its_broker_listener() {
        let config = config(COMBINED);
        config.check(1, true).unwrap();
        assert_eq!(
            config.broker_listener().unwrap().address(),
            "127.0.0.1:19092"
        );
        assert_eq!(config.unsupported_quorum(1), None);
        assert!(config.kraft());
        let protocols = config.effective_security_protocol_map();
        assert_eq!(protocols["CONTROLLER"], "PLAINTEXT");
        assert_eq!(protocols["SSL"], "SSL");
        assert!(config
            .check(1, false)
            .unwrap_err()
            .0
            .contains("Missing configuration `node.id`"));
    }

    #[test]
    fn parsing_refuses_what_kafka_refuses() {
        let mut config = ClusterConfig::default();
        let set = |config: &mut ClusterConfig, key, value| config.set(key, value).unwrap_err().0;
        assert!(set(&mut config, "process.roles", "broker,leader")
            .contains("Unknown process role 'leader'"));
        assert!(set(&mut config, "process.roles", "broker,broker").contains("Duplicate role names"));
        assert!(set(&mut config, "controller.quorum.voters", "x@h:1").contains("voter ID"));
        assert!(set(&mut config, "controller.quorum.voters", "1@h").contains("host name and port"));
        assert!(set(&mut config, "controller.quorum.voters", "1@h:1,1@g:2").contains("duplicate"));
        assert!(set(&mut config, "listeners", "PLAINTEXT://h").contains("Unable to parse"));
        assert!(set(&mut config, "listener.security.protocol.map", "A:TLS")
            .contains("Invalid security protocol `TLS`"));
        assert!(set(&mut config, "controller.quorum.election.timeout.ms", "-1").contains("[0,"));
        config
            .set("controller.quorum.voters", "1@[::1]:9093, 2@h:9094")
            .unwrap();
        assert_eq!(config.quorum_voters[0].host, "::1");
        assert_eq!(config.quorum_voters[1].port, 9094);
        config.set("listeners", "plaintext://[::1]:9092").unwrap();
        assert_eq!(config.listeners[0].name, "PLAINTEXT");
        assert_eq!(config.listeners[0].address(), "[::1]:9092");
        assert_eq!(config.quorum_election_timeout_ms, 1000);
        assert_eq!(config.broker_session_timeout_ms, 9000);
    }

    #[test]
    fn kafka_rules_across_keys() {
        let mut c = config(COMBINED);
        c.set("controller.quorum.voters", "2@127.0.0.1:19093")
            .unwrap();
        assert!(error(&c, 1).contains(
            "the node id 1 must be included in the set of voters controller.quorum.voters={2}"
        ));

        let mut c = config(COMBINED);
        c.set("controller.quorum.voters", "1@127.0.0.1:19094")
            .unwrap();
        assert!(
            error(&c, 1).contains("but its controller listener CONTROLLER is at 127.0.0.1:19093")
        );

        let mut c = config(COMBINED);
        c.set("controller.listener.names", "CTRL").unwrap();
        assert!(error(&c, 1).contains("No security protocol defined for listener CONTROLLER"));
        c.set(
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,CTRL:PLAINTEXT",
        )
        .unwrap();
        assert!(error(&c, 1).contains("controller.listener.names must contain at least one value appearing in the 'listeners'"));

        let mut c = config(COMBINED);
        c.set("controller.quorum.voters", "").unwrap();
        assert!(error(&c, 1).contains("either controller.quorum.bootstrap.servers"));
        c.set("controller.quorum.bootstrap.servers", "127.0.0.1:19093")
            .unwrap();
        c.check(1, true).unwrap();
        assert!(c
            .unsupported_quorum(1)
            .unwrap()
            .contains("a dynamic quorum"));

        let mut c = config(COMBINED);
        c.set("process.roles", "broker").unwrap();
        assert!(error(&c, 1).contains("just the 'broker' role, the node id 1 must not be included"));
        c.set("controller.quorum.voters", "2@127.0.0.1:29093")
            .unwrap();
        assert!(error(&c, 1).contains("must not contain a value appearing in the 'listeners'"));
        c.set("listeners", "PLAINTEXT://127.0.0.1:19092").unwrap();
        c.check(1, true).unwrap();
        assert!(c
            .unsupported_quorum(1)
            .unwrap()
            .contains("a pure broker (process.roles=broker) needs a quorum of several"));
        c.set(
            "controller.quorum.voters",
            "2@127.0.0.1:29093,3@127.0.0.1:39093",
        )
        .unwrap();
        c.check(1, true).unwrap();
        assert_eq!(c.unsupported_quorum(1), None, "a pure broker observes");

        let mut c = config(COMBINED);
        c.set("process.roles", "controller").unwrap();
        assert!(error(&c, 1).contains("must only contain KRaft controller listeners"));

        let mut c = config(COMBINED);
        c.set(
            "controller.quorum.voters",
            "1@127.0.0.1:19093,2@127.0.0.1:29093",
        )
        .unwrap();
        c.check(1, true).unwrap();
        assert_eq!(
            c.unsupported_quorum(1),
            None,
            "one combined voter of several"
        );

        let mut c = config(COMBINED);
        c.set(
            "listeners",
            "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19092",
        )
        .unwrap();
        assert!(error(&c, 1).contains("Each listener must have a different port"));
        c.set(
            "listeners",
            "PLAINTEXT://127.0.0.1:19092,BROKER://127.0.0.1:19094,CONTROLLER://127.0.0.1:19093",
        )
        .unwrap();
        assert!(error(&c, 1).contains("No security protocol defined for listener BROKER"));
        c.set(
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT",
        )
        .unwrap();
        // A lone node serves clients on several listeners, TLS or not.
        c.check(1, true).unwrap();
        assert_eq!(c.client_listeners().count(), 2);
        c.set(
            "listener.security.protocol.map",
            "PLAINTEXT:SSL,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT",
        )
        .unwrap();
        c.check(1, true).unwrap();
        c.set(
            "listener.security.protocol.map",
            "PLAINTEXT:SASL_SSL,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT",
        )
        .unwrap();
        c.check(1, true).unwrap();
        c.set(
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:SSL",
        )
        .unwrap();
        // A TLS controller listener is served (`quorum::gate`).
        c.check(1, true).unwrap();
        // Several nodes: one client listener, and brokers talk PLAINTEXT.
        c.set(
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT",
        )
        .unwrap();
        c.set(
            "controller.quorum.voters",
            "1@127.0.0.1:19093,2@127.0.0.1:29093",
        )
        .unwrap();
        assert!(error(&c, 1).contains("serves clients on one listener"));
        c.set(
            "listeners",
            "SSL://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
        )
        .unwrap();
        c.set(
            "listener.security.protocol.map",
            "SSL:SSL,CONTROLLER:PLAINTEXT",
        )
        .unwrap();
        // An SSL inter-broker listener is served: the brokers connect to
        // it as TLS clients (`quorum::link`).
        c.check(1, true).unwrap();

        let mut c = config(COMBINED);
        c.set("advertised.listeners", "OTHER://h:1").unwrap();
        assert!(error(&c, 1).contains("No security protocol defined for listener OTHER"));
        c.set("advertised.listeners", "PLAINTEXT://0.0.0.0:1")
            .unwrap();
        assert!(error(&c, 1).contains("nonroutable meta-address 0.0.0.0"));
        c.set("advertised.listeners", "PLAINTEXT://example.com:1")
            .unwrap();
        c.check(1, true).unwrap();
        assert_eq!(
            c.advertised_broker_listener().unwrap().address(),
            "example.com:1"
        );
        c.set("inter.broker.listener.name", "CONTROLLER").unwrap();
        assert!(error(&c, 1).contains(
            "inter.broker.listener.name must be a listener name defined in advertised.listeners"
        ));

        let mut plain = ClusterConfig::default();
        plain
            .set("controller.listener.names", "CONTROLLER")
            .unwrap();
        assert!(error(&plain, 1).contains("must be empty when not running in KRaft mode"));
    }

    const PURE_CONTROLLER: &[(&str, &str)] = &[
        ("process.roles", "controller"),
        (
            "controller.quorum.voters",
            "1@127.0.0.1:19093,2@127.0.0.1:29093,3@127.0.0.1:39093",
        ),
        ("listeners", "CONTROLLER://127.0.0.1:19093"),
        ("controller.listener.names", "CONTROLLER"),
    ];

    #[test]
    fn a_pure_controller_among_several_voters_runs() {
        let c = config(PURE_CONTROLLER);
        c.check(1, true).unwrap();
        assert!(c.pure_controller());
        assert_eq!(c.unsupported_quorum(1), None);
        assert_eq!(c.broker_listener(), None, "it has no client listener");
        assert!(!config(COMBINED).pure_controller());
        assert!(!ClusterConfig::default().pure_controller());
    }

    #[test]
    fn a_pure_controller_is_refused_as_kafka_refuses_it() {
        // Kafka's KafkaConfig: only controller listeners, itself a voter,
        // its controller listener among the listeners.
        let mut c = config(PURE_CONTROLLER);
        c.set(
            "listeners",
            "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
        )
        .unwrap();
        assert!(error(&c, 1).contains("The listeners config must only contain KRaft controller listeners from controller.listener.names when process.roles=controller"));

        let c = config(PURE_CONTROLLER);
        assert!(error(&c, 4).contains(
            "the node id 4 must be included in the set of voters controller.quorum.voters={1, 2, 3}"
        ));

        let mut c = config(PURE_CONTROLLER);
        c.set("controller.listener.names", "OTHER").unwrap();
        c.set(
            "listener.security.protocol.map",
            "CONTROLLER:PLAINTEXT,OTHER:PLAINTEXT",
        )
        .unwrap();
        assert!(error(&c, 1).contains("controller.listener.names must contain at least one value appearing in the 'listeners'"));

        // shoal's own limit: a lone voter listens for no broker.
        let mut c = config(PURE_CONTROLLER);
        c.set("controller.quorum.voters", "1@127.0.0.1:19093")
            .unwrap();
        c.check(1, true).unwrap();
        assert!(c
            .unsupported_quorum(1)
            .unwrap()
            .contains("a pure controller (process.roles=controller) as the only voter"));
    }
}
