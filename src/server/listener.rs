//! The listener every shard runs: bind the shared port (SO_REUSEPORT, so the
//! kernel spreads connections over the shards), accept until told to stop,
//! and serve each connection on this shard.

use std::net::ToSocketAddrs;
use std::os::fd::{FromRawFd, IntoRawFd};

use futures_util::future::{select, Either};
use socket2::{Domain, Protocol, Socket, Type};

use super::connection;
use crate::shard::ShardStart;

/// Accept backlog per shard, as Kafka's default `net.core.somaxconn`-bounded listen.
pub const LISTEN_BACKLOG: i32 = 1024;

/// Binds the shared port: SO_REUSEPORT so every shard listens on it, and
/// SO_REUSEADDR (as Kafka sets) so a restarted broker can bind while the
/// previous one's closed connections linger in FIN_WAIT or TIME_WAIT.
fn bind(address: &str) -> std::io::Result<glommio::net::TcpListener> {
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
    socket.set_reuse_port(true)?;
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    // SAFETY: the descriptor is a listening TCP socket we own; ownership
    // moves to the glommio listener, which closes it.
    Ok(unsafe { glommio::net::TcpListener::from_raw_fd(socket.into_raw_fd()) })
}

pub async fn run(start: ShardStart) {
    let ShardStart { shard, stop, ready } = start;
    let listener = match bind(shard.config.listen.as_str()) {
        Ok(listener) => listener,
        Err(error) => {
            let _ = ready.send(Err(format!(
                "shard {}: cannot listen on {}: {error}",
                shard.id, shard.config.listen
            )));
            return;
        }
    };
    let _ = ready.send(Ok(shard.id));
    let mut stop = stop;
    loop {
        match select(Box::pin(listener.accept()), &mut stop).await {
            Either::Left((Ok(stream), _)) => {
                let shard = shard.clone();
                glommio::spawn_local(connection::serve(shard, stream)).detach();
            }
            Either::Left((Err(error), _)) => {
                log::warn!("shard {}: accept failed: {error}", shard.id);
            }
            Either::Right(_) => break,
        }
    }
}
