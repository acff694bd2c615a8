//! The Kafka server: start-up checks, the listener on every shard, the
//! per-connection request loop, and one handler per Kafka API.
//!
//! Invariant: the server speaks the protocol and routes work to owner shards;
//! it never opens a segment file or touches a `PartitionLog` directly
//! (`tests/architecture.rs` fails on any path through `log::segment` here).

pub mod connection;
pub mod handlers;
pub mod limits;
pub mod listener;
pub mod preflight;

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::config::BrokerConfig;
use crate::metadata::{initial_placement, store, BrokerLayout, ClusterView};
use crate::shard::messages::TopicPartition;

/// Runs the broker until SIGTERM or SIGINT; returns after a clean shutdown.
pub fn serve(mut config: BrokerConfig) -> anyhow::Result<()> {
    if let Some(reason) = config.cluster.unsupported_quorum(config.node_id) {
        anyhow::bail!(reason);
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    // glommio opens directories by absolute path only (a relative one fails
    // with EBADF), and the default `./shoal-data` is relative.
    config.data_dir = std::fs::canonicalize(&config.data_dir).with_context(|| {
        format!(
            "cannot resolve data directory {}",
            config.data_dir.display()
        )
    })?;
    let _lock = preflight::lock_data_dir(&config.data_dir)?;
    preflight::ensure_locked_memory(config.shards)?;
    preflight::probe_io_uring()?;
    config.check_shard_listeners()?;
    preflight::check_port_free(&config.listen)?;
    if config.listener_shard_aware {
        for shard in 0..config.shards {
            preflight::check_port_free(&config.shard_listen_address(shard))?;
        }
    }
    crate::alloc::keep_freed_memory();

    // A node of a cluster (`process.roles`) starts only from storage
    // `shoal storage format` prepared, as Kafka's; a plain node formats its own.
    let cluster_id = if config.cluster.kraft() {
        store::formatted_cluster_id(&config.data_dir, config.node_id)?
    } else {
        store::load_or_create_cluster_id(&config.data_dir, config.node_id)
            .context("cannot read meta.properties")?
    };
    let mut topics = store::load_topics(&config.data_dir).context("cannot read topic metadata")?;
    place_on_shards(&config, &mut topics)?;
    remove_orphan_partitions(&config, &topics);
    let (advertised_host, advertised_port) = config.advertised_host_port();
    let view = Arc::new(
        ClusterView {
            cluster_id,
            node_id: config.node_id,
            advertised_host,
            advertised_port,
            broker_layout: if config.listener_shard_aware {
                BrokerLayout::PerShard {
                    port_base: config.shard_port_base(),
                }
            } else {
                BrokerLayout::Node
            },
            shard_count: config.shards,
            topics: Default::default(),
            topic_names_by_id: Default::default(),
        }
        .with_topics(topics),
    );

    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .context("cannot install signal handlers")?;
    let connections = Arc::new(limits::BrokerConnections::new(&config.connections)?);
    let config = Arc::new(config);
    let serve = move |start| listener::run(start, connections.clone());
    let shards =
        crate::shard::spawn_all(config.clone(), view, serve).map_err(anyhow::Error::msg)?;
    println!("shoal ready on {}", config.listen);
    let _ = std::io::stdout().flush();
    if let Some(signal) = signals.forever().next() {
        log::info!("signal {signal}: shutting down");
    }
    shards.shutdown();
    log::info!("shutdown complete");
    Ok(())
}

/// Gives every partition an owner among this run's shards. A placement made
/// with more shards than this run has (or none, from an older version) is
/// redone with the placement rule and persisted; partition directories are
/// shared, so any shard can open any partition.
fn place_on_shards(
    config: &BrokerConfig,
    topics: &mut std::collections::BTreeMap<String, Arc<crate::metadata::TopicMeta>>,
) -> anyhow::Result<()> {
    let mut changed = false;
    for topic in topics.values_mut() {
        if !topic.placement_fits(config.shards) {
            let meta = Arc::make_mut(topic);
            meta.placement = initial_placement(&meta.name, meta.partitions, config.shards);
            changed = true;
        }
    }
    if changed {
        log::info!("placing partitions on {} shard(s)", config.shards);
        store::save_topics(&config.data_dir, topics).context("cannot write topic metadata")?;
    }
    Ok(())
}

/// Removes partition directories whose topic no longer exists (a deletion
/// interrupted by a crash), so a re-created topic never sees stale data.
fn remove_orphan_partitions(
    config: &BrokerConfig,
    topics: &std::collections::BTreeMap<String, Arc<crate::metadata::TopicMeta>>,
) {
    let expected: BTreeSet<String> = topics
        .values()
        .flat_map(|topic| {
            (0..topic.partitions).map(move |p| TopicPartition::new(&topic.name, p).dir_name())
        })
        .collect();
    let Ok(entries) = std::fs::read_dir(&config.data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let is_partition_dir = entry.path().is_dir()
            && name
                .rsplit_once('-')
                .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if is_partition_dir && !expected.contains(&name) {
            log::warn!("removing orphan partition directory {name}");
            if let Err(error) = std::fs::remove_dir_all(entry.path()) {
                log::error!("cannot remove {name}: {error}");
            }
        }
    }
}
