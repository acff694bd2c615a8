//! Certificate reload as every broker carries it out: the dynamic broker
//! configs addressed to this node (its own BROKER resource over the
//! cluster default, `metadata::broker_configs`) give its TLS listeners'
//! reloadable `listener.name.<l>.ssl.*` keys. `Applier::follow` runs on
//! `CONTROLLER_SHARD` with each image the controller installs, and once at
//! start with the image the node starts from (the metadata log replayed,
//! or its snapshot): when the keys in force moved, or a record set them
//! again (a keystore replaced in place under the same path), each TLS
//! client listener they name is rebuilt off the reactor and installed on
//! every shard. New handshakes use it; open connections keep theirs.
//!
//! `load` is also the check a broker makes before it sends a change to
//! the controller (`server::handlers::broker_configs`): the same build,
//! whose error refuses the change.
//!
//! Invariant: files are read on the blocking pool, never on the reactor;
//! a listener whose new settings fail to load keeps the acceptor it has,
//! and the failure is logged once per change.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;

use super::messages::ShardRequest;
use super::Shard;
use crate::config::BrokerConfig;
use crate::metadata::broker_configs::{self, CLUSTER_DEFAULT};
use crate::metadata::image::MetadataImage;
use crate::security::tls::{reload, TlsAcceptor};
use crate::security::SecurityProtocol;

/// The client listeners of `config` that speak TLS (SSL, SASL_SSL), by
/// their upper-case names: those a dynamic key may reload. The CONTROLLER
/// listener is not among them (its settings are read at start).
pub fn tls_client_listeners(config: &BrokerConfig) -> BTreeSet<String> {
    let protocols = config.cluster.effective_security_protocol_map();
    config
        .cluster
        .client_listeners()
        .map(|listener| listener.name.to_ascii_uppercase())
        .filter(|name| {
            protocols
                .get(name)
                .and_then(|protocol| SecurityProtocol::parse(protocol))
                .is_some_and(SecurityProtocol::uses_tls)
        })
        .collect()
}

/// The reloadable listener keys among `dynamic`.
pub fn ssl_keys(dynamic: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    dynamic
        .iter()
        .filter(|(key, _)| broker_configs::listener_ssl_key(key).is_some())
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// `listener`'s acceptor from the static config under the `dynamic` keys,
/// built on the blocking pool; with `current`, refused when the new
/// certificate names another subject (`tls::reload`).
pub async fn load(
    config: &BrokerConfig,
    dynamic: &BTreeMap<String, String>,
    listener: &str,
    current: Option<Arc<TlsAcceptor>>,
) -> Result<Arc<TlsAcceptor>, String> {
    let security = config.security.clone();
    let (keys, name) = (ssl_keys(dynamic), listener.to_string());
    glommio::executor()
        .spawn_blocking(move || reload(&security, &keys, &name, current.as_deref()))
        .await
        .map(Arc::new)
}

/// What this node last applied: the keys in force and the count of
/// records that reached its resource and the default.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Applied {
    keys: BTreeMap<String, String>,
    touches: (u64, u64),
}

/// The dynamic TLS settings this node applied (`CONTROLLER_SHARD` only).
#[derive(Default)]
pub struct Applier {
    applied: RefCell<Option<Applied>>,
}

impl Applier {
    /// Applies the listener keys `image` addresses to this node, when they
    /// moved since the last call (the first call, at start, applies them
    /// as the static config: no subject check, nothing to compare with).
    pub async fn follow(&self, shard: &Rc<Shard>, image: &MetadataImage) {
        let config = &shard.config;
        let own = config.node_id.to_string();
        let next = Applied {
            keys: ssl_keys(&broker_configs::effective(
                &image.broker_configs(),
                config.node_id,
            )),
            touches: (
                image.config_touches.of(CLUSTER_DEFAULT),
                image.config_touches.of(&own),
            ),
        };
        let previous = self.applied.replace(Some(next.clone()));
        if previous.as_ref() == Some(&next) {
            return;
        }
        let starting = previous.is_none();
        let named = |keys: &BTreeMap<String, String>| -> BTreeSet<String> {
            keys.keys()
                .filter_map(|key| broker_configs::listener_ssl_key(key))
                .map(|(listener, _)| listener)
                .collect()
        };
        let mut listeners = named(&next.keys);
        listeners.extend(
            previous
                .as_ref()
                .map(|p| named(&p.keys))
                .unwrap_or_default(),
        );
        let tls = tls_client_listeners(config);
        for listener in listeners {
            if !tls.contains(&listener) {
                log::warn!(
                    "dynamic config: listener {listener} is not a TLS listener of this broker; its keys are ignored"
                );
                continue;
            }
            let current = (!starting).then(|| shard.tls.get(&listener)).flatten();
            match load(config, &next.keys, &listener, current).await {
                Ok(acceptor) => {
                    let make = || ShardRequest::InstallTls {
                        listener: listener.clone(),
                        acceptor: acceptor.clone(),
                    };
                    shard.broadcast(make).await;
                    log::info!(
                        "listener {listener}: TLS certificates loaded from the dynamic broker configs; new connections use them"
                    );
                }
                Err(error) => log::error!(
                    "listener {listener}: the dynamic broker configs do not load, the listener keeps its certificates: {error}"
                ),
            }
        }
    }
}
