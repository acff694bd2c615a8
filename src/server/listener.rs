//! The listener every shard runs: bind the shared port (SO_REUSEPORT, so the
//! kernel spreads connections over the shards), and in shard-aware mode the
//! shard's own port too (`metadata::brokers`); accept until told to stop,
//! within the connection limits (`limits`), and serve each connection on
//! this shard.
//!
//! A pure controller (`process.roles=controller`) serves no client: its
//! shards bind nothing here and wait to be stopped, and what it serves
//! other nodes goes through the CONTROLLER listener alone (the hook set
//! here, `controller_apis`).

use std::net::ToSocketAddrs;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::Arc;

use futures_util::future::{select, Either, FutureExt, Shared};
use socket2::{Domain, Protocol, Socket, Type};

use super::connection::{self, Port};
use super::controller_apis;
use super::jwks_refresh;
use super::limits::{
    AcceptBackoff, Admission, BrokerConnections, ConnectionPermit, ShardConnections,
};
use super::stream::{ReadHalf, WriteHalf};
use crate::config::{BrokerConfig, JwksSource, OAuthValidatorConfig};
use crate::metadata::quotas::CONNECTION_CREATION_RATE;
use crate::quota::precedence;
use crate::security::jwks::JwkSet;
use crate::security::jwks_fetch;
use crate::security::principal::KafkaPrincipal;
use crate::security::tls::{HandshakeError, TlsAcceptor, TlsAcceptors, HANDSHAKE_TIMEOUT_MAX};
use crate::security::SecurityProtocol;
use crate::shard::{Shard, ShardStart, CONTROLLER_SHARD};

/// A listener that serves clients (one of `listeners` that is not a
/// controller listener), as every shard binds it.
pub struct ClientListener {
    pub name: Arc<str>,
    pub protocol: SecurityProtocol,
    /// `host:port` to bind.
    pub address: String,
    /// Where clients are told this node is on this listener, when that is
    /// not the broker listener the metadata view advertises.
    pub advertised: Option<(String, i32)>,
    /// The TLS settings of an SSL or SASL_SSL listener, loaded at start
    /// (each shard's `TlsAcceptors` starts with them).
    pub tls: Option<Arc<TlsAcceptor>>,
    /// Where its OAUTHBEARER keys come from, and the set read at start.
    pub jwks: Option<(JwksSource, Arc<JwkSet>)>,
}

impl ClientListener {
    /// Every client listener of `config`, the broker listener first, with
    /// the TLS ones' keystores and truststores loaded.
    pub fn all(config: &BrokerConfig) -> Result<Vec<ClientListener>, String> {
        let protocols = config.cluster.effective_security_protocol_map();
        let primary = config.cluster.broker_listener().map(|l| l.name.clone());
        let mut listeners = Vec::new();
        for listener in config.cluster.client_listeners() {
            let protocol = protocols
                .get(&listener.name)
                .and_then(|name| SecurityProtocol::parse(name))
                .ok_or_else(|| format!("no security protocol for listener {}", listener.name))?;
            let tls = match protocol.uses_tls() {
                true => Some(
                    config
                        .security
                        .ssl(&listener.name)
                        .map_err(|error| error.0)
                        .and_then(|settings| TlsAcceptor::new(&settings))
                        .map(Arc::new)
                        .map_err(|error| format!("listener {}: {error}", listener.name))?,
                ),
                false => None,
            };
            let advertised = (primary.as_ref() != Some(&listener.name)).then(|| {
                let shown = config.cluster.advertised_listener(listener);
                (shown.host.clone(), i32::from(shown.port))
            });
            let entry = ClientListener {
                name: Arc::from(listener.name.as_str()),
                protocol,
                address: listener.address(),
                advertised,
                tls,
                jwks: jwks(config, &listener.name, protocol)?,
            };
            match primary.as_ref() == Some(&listener.name) {
                true => listeners.insert(0, entry),
                false => listeners.push(entry),
            }
        }
        Ok(listeners)
    }

    /// The connection's two halves and the principal its transport proves:
    /// at once and `User:ANONYMOUS` on a PLAINTEXT listener, after the
    /// handshake (bounded by `connections.max.idle.ms` and
    /// `HANDSHAKE_TIMEOUT_MAX`) on a TLS one, with the shard's current
    /// acceptor for it, the client certificate's mapped subject if it sent one.
    pub async fn secure(
        &self,
        acceptors: &TlsAcceptors,
        stream: glommio::net::TcpStream,
        writer: glommio::net::TcpStream,
        idle_timeout: std::time::Duration,
    ) -> Result<(ReadHalf, WriteHalf, KafkaPrincipal), HandshakeError> {
        let Some(tls) = acceptors.get(&self.name).or_else(|| self.tls.clone()) else {
            let anonymous = KafkaPrincipal::anonymous();
            return Ok((ReadHalf::Plain(stream), WriteHalf::Plain(writer), anonymous));
        };
        let bound = idle_timeout.min(HANDSHAKE_TIMEOUT_MAX);
        let (reader, writer, principal) = tls.accept(stream, writer, bound).await?;
        Ok((ReadHalf::Tls(reader), WriteHalf::Tls(writer), principal))
    }
}

/// The key set of `listener`'s OAUTHBEARER validator, when it checks
/// tokens with a JWKS: read now (before any shard runs), so that a bad
/// URL stops the start with its reason and the first client finds keys.
fn jwks(
    config: &BrokerConfig,
    listener: &str,
    protocol: SecurityProtocol,
) -> Result<Option<(JwksSource, Arc<JwkSet>)>, String> {
    if !protocol.uses_sasl() {
        return Ok(None);
    }
    let Some(OAuthValidatorConfig::Jwks(source, _)) = config.sasl.oauth_validator(listener) else {
        return Ok(None);
    };
    let keys = jwks_fetch::fetch(&source.url).map_err(|error| {
        format!("listener {listener}: sasl.oauthbearer.jwks.endpoint.url: {error}")
    })?;
    log::info!(
        "listener {listener}: {} OAUTHBEARER keys from {}",
        keys.len(),
        source.url
    );
    Ok(Some((source, Arc::new(keys))))
}

/// Accept backlog per shard, as Kafka's default `net.core.somaxconn`-bounded listen.
pub const LISTEN_BACKLOG: i32 = 1024;

/// Binds a port with SO_REUSEADDR (as Kafka sets) so a restarted broker can
/// bind while the previous one's closed connections linger in FIN_WAIT or
/// TIME_WAIT, and for the shared port SO_REUSEPORT so every shard listens on
/// it; a `Port::Own` (a shard's own, the admin listener) is this process's
/// alone.
pub fn bind(address: &str, port: Port) -> std::io::Result<glommio::net::TcpListener> {
    let address: std::net::SocketAddr = address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address"))?;
    let domain = if address.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(port == Port::Shared)?;
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    // SAFETY: the descriptor is a listening TCP socket we own; ownership
    // moves to the glommio listener, which closes it.
    Ok(unsafe { glommio::net::TcpListener::from_raw_fd(socket.into_raw_fd()) })
}

pub async fn run(
    start: ShardStart,
    connections: Arc<BrokerConnections>,
    client_listeners: Arc<Vec<Arc<ClientListener>>>,
) {
    let ShardStart { shard, stop, ready } = start;
    shard.serve_controller_apis(controller_apis::apis(&shard));
    if let Err(error) = crate::admin::start(&shard) {
        let _ = ready.send(Err(error));
        return;
    }
    if shard.config.cluster.pure_controller() {
        // Its CONTROLLER listener (the quorum's transport on
        // `CONTROLLER_SHARD`) is all it serves.
        let _ = ready.send(Ok(shard.id));
        let _ = stop.await;
        return;
    }
    let mut addresses: Vec<(String, Port, Arc<ClientListener>)> = client_listeners
        .iter()
        .map(|listener| (listener.address.clone(), Port::Shared, listener.clone()))
        .collect();
    if shard.config.listener_shard_aware {
        if let Some(primary) = client_listeners.first() {
            let own = shard.config.shard_listen_address(shard.id);
            addresses.push((own, Port::Own, primary.clone()));
        }
    }
    let mut listeners = Vec::with_capacity(addresses.len());
    for (address, port, client_listener) in addresses {
        match bind(&address, port) {
            Ok(listener) => listeners.push((listener, (port, client_listener))),
            Err(error) => {
                let _ = ready.send(Err(format!(
                    "shard {}: cannot listen on {address}: {error}",
                    shard.id
                )));
                return;
            }
        }
    }
    let _ = ready.send(Ok(shard.id));
    let limits = Rc::new(ShardConnections::new(
        shard.id,
        shard.config.shards,
        &shard.config.connections,
        connections,
    ));
    let mut stop = stop.shared();
    for listener in client_listeners.iter() {
        if let Some(tls) = &listener.tls {
            shard.tls.install_static(&listener.name, tls.clone());
        }
        if let Some((source, keys)) = &listener.jwks {
            shard.jwks.install(&source.url, JwkSet::clone(keys));
            let refresh = jwks_refresh::refresh(shard.clone(), source.clone(), stop.clone());
            glommio::spawn_local(refresh).detach();
        }
    }
    if shard.config.cluster.quorum_voters.len() > 1 && !until_unfenced(&shard, &mut stop).await {
        return;
    }
    let accepting = listeners.into_iter().map(|(listener, port)| {
        accept(shard.clone(), limits.clone(), listener, port, stop.clone())
    });
    futures_util::future::join_all(accepting).await;
}

/// How often a shard looks whether its broker is unfenced yet: a view
/// install away, so often enough to add nothing a client would notice.
const UNFENCED_POLL_MS: u64 = 50;
/// How often it says that it still waits.
const UNFENCED_LOG_MS: u64 = 10_000;

/// Waits, as a Kafka broker waits before it serves clients, until the
/// cluster's metadata holds this node's broker registered and unfenced
/// (its lifecycle on the controller shard gets it there); false when told
/// to stop first. Meanwhile clients wait in the listen backlog, so a
/// cluster starting up never answers them with the errors of a broker the
/// controller does not count yet (no partitions placed on it, all brokers
/// fenced). A lone voter is unfenced before its shards serve.
async fn until_unfenced(
    shard: &Shard,
    stop: &mut Shared<futures_channel::oneshot::Receiver<()>>,
) -> bool {
    let started = std::time::Instant::now();
    let mut said = started;
    loop {
        let view = shard.view();
        let unfenced = view
            .registered
            .iter()
            .any(|broker| broker.id == view.node_id && !broker.fenced);
        if unfenced {
            return true;
        }
        if said.elapsed().as_millis() >= u128::from(UNFENCED_LOG_MS) && shard.id == CONTROLLER_SHARD
        {
            log::info!(
                "waiting {} s so far for this broker to be registered and unfenced before serving clients",
                started.elapsed().as_secs()
            );
            said = std::time::Instant::now();
        }
        let pause = Box::pin(glommio::timer::sleep(std::time::Duration::from_millis(
            UNFENCED_POLL_MS,
        )));
        if let Either::Right(_) = select(pause, &mut *stop).await {
            return false;
        }
    }
}

/// Admits a connection from `peer` by the connection limits and rates
/// (`limits::Admission`): the connection and its permit, or `None` when
/// it is refused (closed now, or later when its address is over its
/// rate) or `stop` resolved during a wait for the broker-wide rate.
async fn admit(
    shard: &Shard,
    limits: &ShardConnections,
    peer: Option<std::net::SocketAddr>,
    connection: (glommio::net::TcpStream, glommio::net::TcpStream),
    stop: &mut Shared<futures_channel::oneshot::Receiver<()>>,
) -> Option<(
    ConnectionPermit,
    (glommio::net::TcpStream, glommio::net::TcpStream),
)> {
    let ip = peer.map(|peer| peer.ip());
    let ip_rate = ip.and_then(|ip| {
        precedence::ip_connection_rate(&shard.view().quotas, CONNECTION_CREATION_RATE, ip)
    });
    match limits.broker.admit(ip, ip_rate) {
        Admission::Admitted { permit, delay } => {
            if !delay.is_zero() {
                let waiting = Box::pin(glommio::timer::sleep(delay));
                if let Either::Right(_) = select(waiting, &mut *stop).await {
                    return None;
                }
            }
            Some((permit, connection))
        }
        Admission::TooMany => {
            if limits.close_log.allow() {
                log::info!(
                    "shard {}: closing connection from {peer:?}: its address has max.connections.per.ip connections",
                    shard.id
                );
            }
            None
        }
        Admission::Throttled(delay) => {
            log::debug!(
                "shard {}: closing connection from {peer:?} in {delay:?}: its address is over its connection_creation_rate",
                shard.id
            );
            limits.close_later(connection, delay);
            None
        }
    }
}

/// Accepts on `listener` until `stop` resolves. One loop per listener, so an
/// accept in progress is never dropped for another listener's connection.
/// A failed accept pauses the loop (`AcceptBackoff`); at `max.connections`
/// the accepted connection waits for a slot and the loop with it, so further
/// clients wait in the kernel's backlog, as Kafka's acceptor blocks.
async fn accept(
    shard: Rc<Shard>,
    limits: Rc<ShardConnections>,
    listener: glommio::net::TcpListener,
    port: (Port, Arc<ClientListener>),
    mut stop: Shared<futures_channel::oneshot::Receiver<()>>,
) {
    let mut backoff = AcceptBackoff::default();
    loop {
        // A connection takes two descriptors (its writer's handle), so
        // running out of them shows at either step, and both back off.
        let accepted = select(Box::pin(listener.accept()), &mut stop).await;
        let accepted = match accepted {
            Either::Left((Ok(stream), _)) => connection::writer_handle(&stream)
                .map(|writer| (stream, writer))
                .map_err(glommio::GlommioError::from),
            Either::Left((Err(error), _)) => Err(error),
            Either::Right(_) => break,
        };
        let (stream, writer) = match accepted {
            Ok(halves) => {
                backoff.succeeded(shard.id);
                halves
            }
            Err(error) => {
                let pause = backoff.failed(shard.id, &error);
                let sleeping = Box::pin(glommio::timer::sleep(pause));
                if let Either::Right(_) = select(sleeping, &mut stop).await {
                    break;
                }
                continue;
            }
        };
        let peer = stream.peer_addr().ok();
        let admitted = admit(&shard, &limits, peer, (stream, writer), &mut stop).await;
        let Some((mut permit, (stream, writer))) = admitted else {
            continue;
        };
        if !limits.broker.has_room() && limits.close_log.allow() {
            log::info!(
                "shard {}: max.connections reached: accepting again when one closes",
                shard.id
            );
        }
        if !permit.count((&mut stop).map(|_| ())).await {
            break;
        }
        glommio::spawn_local(connection::serve(
            shard.clone(),
            limits.clone(),
            (stream, writer),
            port.clone(),
            permit,
        ))
        .detach();
        // A backlog full of connections is accepted without waiting: give
        // the connections (and everything else on the shard) their turn.
        glommio::yield_if_needed().await;
    }
}
