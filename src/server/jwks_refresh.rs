//! Keeps a shard's copy of an OAUTHBEARER key set fresh: every
//! `sasl.oauthbearer.jwks.endpoint.refresh.ms` the set is read again
//! (`security::jwks_fetch`) on the shard's blocking thread pool and
//! installed in `Shard::jwks` when it parses. A failed read keeps the
//! last good set and is tried again after
//! `sasl.oauthbearer.jwks.endpoint.retry.backoff.ms`, doubling up to
//! `...retry.backoff.max.ms`, as Kafka's refresher does.
//!
//! Invariant: the reactor never waits on a read (it runs on the blocking
//! pool); one read per shard and URL is in flight at a time; the task
//! ends when the shard is told to stop.

use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{select, Either, Shared};

use crate::config::JwksSource;
use crate::security::jwks_fetch;
use crate::shard::Shard;

/// Refreshes `source`'s key set on `shard` until `stop` resolves.
pub async fn refresh(
    shard: Rc<Shard>,
    source: JwksSource,
    mut stop: Shared<futures_channel::oneshot::Receiver<()>>,
) {
    let mut wait_ms = source.refresh_ms;
    let mut backoff_ms = source.retry_backoff_ms.max(1);
    loop {
        let pause = Box::pin(glommio::timer::sleep(Duration::from_millis(wait_ms)));
        if let Either::Right(_) = select(pause, &mut stop).await {
            return;
        }
        let url = source.url.clone();
        let fetched = glommio::executor()
            .spawn_blocking(move || jwks_fetch::fetch(&url))
            .await;
        match fetched {
            Ok(keys) => {
                log::debug!(
                    "shard {}: {} keys from {}",
                    shard.id,
                    keys.len(),
                    source.url
                );
                shard.jwks.install(&source.url, keys);
                wait_ms = source.refresh_ms;
                backoff_ms = source.retry_backoff_ms.max(1);
            }
            Err(error) => {
                log::warn!(
                    "shard {}: cannot refresh the JWKS (the last one stays in use): {error}",
                    shard.id
                );
                wait_ms = backoff_ms;
                backoff_ms = (backoff_ms * 2).min(source.retry_backoff_max_ms.max(1));
            }
        }
    }
}
