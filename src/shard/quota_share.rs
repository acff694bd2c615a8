//! Carries each shard's client-quota rates to the other shards of the
//! node (`quota` explains why): every `SHARE_INTERVAL_MS`, a shard with
//! active sensors, or one whose last report had rates, sends its rates
//! to every other shard, which replace what it said before.
//!
//! Invariant: nothing is sent while no client is measured; at most one
//! report per shard pair is in flight (the next waits for the last).

use std::rc::Rc;
use std::time::Duration;

use super::messages::ShardRequest;
use super::Shard;
use crate::quota::SHARE_INTERVAL_MS;

/// Starts the shard's reports; nothing to do on a single shard.
pub fn start(shard: &Rc<Shard>) {
    if shard.count() < 2 {
        return;
    }
    let sharing = Rc::downgrade(shard);
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(Duration::from_millis(SHARE_INTERVAL_MS)).await;
            let Some(shard) = sharing.upgrade() else {
                break;
            };
            let Some(rates) = shard.quotas.report() else {
                continue;
            };
            let from = shard.id;
            let calls = (0..shard.count())
                .filter(|&other| other != from)
                .map(|other| {
                    let request = ShardRequest::QuotaRates {
                        from,
                        rates: rates.clone(),
                    };
                    let shard = shard.clone();
                    async move { shard.call(other, request).await }
                });
            futures_util::future::join_all(calls).await;
        }
    })
    .detach();
}
