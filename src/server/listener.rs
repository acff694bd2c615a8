//! The listener every shard runs: bind the shared port (SO_REUSEPORT, so the
//! kernel spreads connections over the shards), accept until told to stop,
//! and serve each connection on this shard.

use futures_util::future::{select, Either};

use super::connection;
use crate::shard::ShardStart;

pub async fn run(start: ShardStart) {
    let ShardStart { shard, stop, ready } = start;
    let listener = match glommio::net::TcpListener::bind(shard.config.listen.as_str()) {
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
