//! The Kafka server: start-up checks, the listener on every shard, the
//! per-connection request loop, and one handler per Kafka API.
//!
//! Invariant: the server speaks the protocol and routes work to owner shards;
//! it never opens a segment file or touches a `PartitionLog` directly
//! (`tests/architecture.rs` fails on any path through `log::segment` here).

pub mod authorize;
pub mod connection;
mod controller_apis;
pub mod forward;
pub mod handlers;
mod jwks_refresh;
pub mod limits;
pub mod listener;
pub mod preflight;
mod stream;
pub mod throttle;

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::config::BrokerConfig;
use crate::metadata::brokers::DEFAULT_LISTENER_NAME;
use crate::metadata::controller::TopicTable;
use crate::metadata::image::MetadataImage;
use crate::metadata::{initial_placement, producer_ids, store, table, BrokerLayout, ClusterView};
use crate::quorum::transport::TransportConfig;
use crate::quorum::{QuorumNode, QuorumSettings};
use crate::shard::messages::TopicPartition;
use crate::shard::observer::{self, MetadataStart};
use crate::shard::progress::{StartProgress, Step};
use crate::shard::quorum::QuorumStart;
use crate::shard::strays;

/// Runs the broker until SIGTERM or SIGINT; returns after a clean shutdown.
pub fn serve(mut config: BrokerConfig) -> anyhow::Result<()> {
    crate::logging::set_format(config.observability.log_format);
    let progress = StartProgress::new(config.shards);
    let slow_start = progress.report_while_slow();
    if let Some(reason) = config.cluster.unsupported_quorum(config.node_id) {
        anyhow::bail!(reason);
    }
    // Keystores and truststores are read before anything starts, so that
    // a bad one stops the start with its reason.
    let client_listeners: Vec<Arc<listener::ClientListener>> =
        listener::ClientListener::all(&config)
            .map_err(anyhow::Error::msg)?
            .into_iter()
            .map(Arc::new)
            .collect();
    let client_listeners = Arc::new(client_listeners);
    // So is the inter-broker listener's client side (its truststore, the
    // broker's own login), on a node that has other brokers to reach.
    let pure_broker = config.cluster.has_role(crate::config::ProcessRole::Broker)
        && !config
            .cluster
            .has_role(crate::config::ProcessRole::Controller);
    if config.cluster.quorum_voters.len() > 1 || pure_broker {
        crate::quorum::link::LinkSecurity::inter_broker(&config)
            .map_err(|error| anyhow::anyhow!("inter-broker connections: {error}"))?;
        crate::quorum::link::LinkSecurity::controller(&config)
            .map_err(|error| anyhow::anyhow!("connections to the controllers: {error}"))?;
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
    preflight::check_client_ports(&config)?;
    crate::alloc::keep_freed_memory();

    // A node of a cluster (`process.roles`) starts only from storage
    // `shoal storage format` prepared, as Kafka's; a plain node formats its own.
    let cluster_id = if config.cluster.kraft() {
        store::formatted_cluster_id(&config.data_dir, config.node_id)?
    } else {
        store::load_or_create_cluster_id(&config.data_dir, config.node_id)
            .context("cannot read meta.properties")?
    };
    let settings = QuorumSettings::of(&config);
    // A lone voter is its own controller; one of several names the leader
    // once the controller finds it.
    let controller_node_id = if settings.sole_voter() {
        config.node_id
    } else {
        crate::quorum::describe::UNKNOWN
    };
    progress.node(Step::OpeningMetadataLog);
    let (metadata, image, topics) = start_metadata(&config, settings, &cluster_id)?;
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
            acls: Default::default(),
            scram: Default::default(),
            quotas: Default::default(),
            broker_configs: Default::default(),
            listener_name: config
                .cluster
                .broker_listener()
                .map_or_else(|| DEFAULT_LISTENER_NAME.to_string(), |l| l.name.clone()),
            controller_node_id,
            registered: Vec::new(),
        }
        .with_image(&image),
    );

    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .context("cannot install signal handlers")?;
    let connections = Arc::new(limits::BrokerConnections::new(&config.connections)?);
    let config = Arc::new(config);
    let serve = move |start| listener::run(start, connections.clone(), client_listeners.clone());
    progress.node(Step::StartingShards);
    let shards = crate::shard::spawn_all(config.clone(), view, metadata, &progress, serve)
        .map_err(anyhow::Error::msg)?;
    drop(slow_start);
    println!("shoal ready on {}", ready_address(&config));
    let _ = std::io::stdout().flush();
    if let Some(signal) = signals.forever().next() {
        log::info!("signal {signal}: shutting down");
    }
    shards.shutdown();
    log::info!("shutdown complete");
    Ok(())
}

/// Where this node serves once it is ready: its client listener, or a
/// pure controller's CONTROLLER listener (it has no other).
fn ready_address(config: &BrokerConfig) -> String {
    match config.cluster.controller_listener() {
        Some(listener) if config.cluster.pure_controller() => listener.address(),
        _ => config.listen.clone(),
    }
}

/// What this node's metadata starts from, the image it holds and its
/// topic table: its voter's log (`start_quorum`, `start_voter`), or for a
/// pure broker (`process.roles=broker`, not among the voters) the
/// quorum's committed log as one voter gives it (`catch_up_blocking`:
/// no metadata on disk, so it waits for a voter to answer).
fn start_metadata(
    config: &BrokerConfig,
    settings: QuorumSettings,
    cluster_id: &str,
) -> anyhow::Result<(MetadataStart, Arc<MetadataImage>, TopicTable)> {
    if config.cluster.kraft() && !settings.voters.contains(&config.node_id) {
        log::info!(
            "node {} observes the metadata quorum of {} voter(s)",
            config.node_id,
            settings.voters.len()
        );
        let follower = observer::catch_up_blocking(config);
        let image = follower.applied().image;
        let topics = table::topic_table(&image, config.node_id, config.shards);
        return Ok((MetadataStart::Observer(follower), image, topics));
    }
    let (start, topics) = if settings.sole_voter() {
        let (node, topics) = start_quorum(config, settings.clone())?;
        let network = None;
        let start = QuorumStart {
            node,
            settings,
            network,
        };
        (start, topics)
    } else {
        start_voter(config, settings, cluster_id)?
    };
    let image = start.node.image().clone();
    Ok((MetadataStart::Voter(Box::new(start)), image, topics))
}

/// Opens the metadata log and elects this node, the quorum's one voter
/// (before any shard runs, so its writes may block), then brings the
/// log up to date: the bootstrap records of a new log, the topics of a
/// `shoal-topics.json` and the producer id block of a `shoal-producer-ids`
/// from before the log, the partitions re-placed on
/// this run's shards. Returns the node and the topic table it holds.
fn start_quorum(
    config: &BrokerConfig,
    settings: QuorumSettings,
) -> anyhow::Result<(QuorumNode, TopicTable)> {
    let mut quorum = QuorumNode::start_blocking(&config.data_dir, settings)
        .context("cannot start the metadata quorum")?;
    // The file stays until its topics are committed: a crash before that
    // migrates it again, and the records are the difference from what the
    // log holds, so nothing is written twice.
    if let Some(legacy) =
        store::load_topics(&config.data_dir).context("cannot read shoal-topics.json")?
    {
        commit_table(config, &mut quorum, &legacy)?;
        store::retire_topics_file(&config.data_dir)
            .context("cannot rename the migrated shoal-topics.json")?;
        log::info!(
            "{} topic(s) of shoal-topics.json migrated into the metadata log",
            legacy.len()
        );
    }
    if let Some(start) = producer_ids::load_legacy_next_block_start(&config.data_dir)
        .context("cannot read shoal-producer-ids")?
    {
        let records = producer_ids::migration_records(quorum.image().next_producer_id, start);
        if !records.is_empty() {
            quorum
                .propose_blocking(&records)
                .context("cannot commit the producer id block")?;
        }
        producer_ids::retire_file(&config.data_dir)
            .context("cannot rename the migrated shoal-producer-ids")?;
        log::info!("shoal-producer-ids migrated into the metadata log (next block at {start})");
    }
    let mut topics = table::topic_table(quorum.image(), config.node_id, config.shards);
    if place_on_shards(config, &mut topics) {
        log::info!("placing partitions on {} shard(s)", config.shards);
        commit_table(config, &mut quorum, &topics)?;
    }
    Ok((quorum, topics))
}

/// Opens the metadata log of one voter among several and replays it to
/// its commit; binds the CONTROLLER listener the other voters reach it
/// on. Nothing is proposed here: the quorum elects a leader once the
/// shards run, and that leader commits the bootstrap records a new log
/// lacks. Returns the quorum's start and the topic table of the image.
fn start_voter(
    config: &BrokerConfig,
    settings: QuorumSettings,
    cluster_id: &str,
) -> anyhow::Result<(QuorumStart, TopicTable)> {
    // The files of a node from before the metadata log are only ever a
    // single node's: merged into a cluster's log they would fight the
    // topics the other voters hold.
    let legacy_topics = store::load_topics(&config.data_dir)
        .context("cannot read shoal-topics.json")?
        .is_some();
    let legacy_ids = producer_ids::load_legacy_next_block_start(&config.data_dir)
        .context("cannot read shoal-producer-ids")?
        .is_some();
    if legacy_topics || legacy_ids {
        anyhow::bail!(
            "{} holds shoal-topics.json or shoal-producer-ids, the metadata of a single node from before the metadata log: start it once as its own sole voter to migrate them, or use an empty formatted directory for a node of a cluster",
            config.data_dir.display()
        );
    }
    let listener = config.cluster.controller_listener().with_context(|| {
        format!(
            "no listener of controller.listener.names ({}) in listeners",
            config.cluster.controller_listener_names.join(",")
        )
    })?;
    let address = listener.address();
    preflight::check_port_free(&address)?;
    let socket = std::net::TcpListener::bind(&address)
        .with_context(|| format!("cannot listen on {address} (the controller listener)"))?;
    let gate = crate::quorum::gate::ControllerGate::of(config)
        .map_err(|error| anyhow::anyhow!("the controller listener: {error}"))?;
    let peers = crate::quorum::link::LinkSecurity::controller(config)
        .map_err(|error| anyhow::anyhow!("connections to the other controllers: {error}"))?;
    let transport = TransportConfig {
        local_id: config.node_id,
        cluster_id: cluster_id.to_string(),
        listener_name: listener.name.clone(),
        voters: config.cluster.quorum_voters.clone(),
        gate: Arc::new(gate),
        peers: Arc::new(peers),
    };
    let node = QuorumNode::open(&config.data_dir, settings.clone())
        .context("cannot open the metadata log")?;
    let topics = table::topic_table(node.image(), config.node_id, config.shards);
    log::info!(
        "metadata quorum: voter {} of {} on {address}, log applied to {}",
        config.node_id,
        settings.voters.len(),
        node.applied()
    );
    let quorum = QuorumStart {
        node,
        settings,
        network: Some((transport, socket)),
    };
    Ok((quorum, topics))
}

/// Commits the records that make the quorum's topic table `topics`.
fn commit_table(
    config: &BrokerConfig,
    quorum: &mut QuorumNode,
    topics: &TopicTable,
) -> anyhow::Result<()> {
    let records = table::changes(quorum.image(), topics, config.node_id, config.shards);
    if !records.is_empty() {
        quorum
            .propose_blocking(&records)
            .context("cannot commit topic metadata")?;
    }
    Ok(())
}

/// Gives every partition an owner among this run's shards; true when a
/// placement made with more shards than this run has is redone with the
/// placement rule. Partition directories are shared, so any shard can
/// open any partition.
fn place_on_shards(config: &BrokerConfig, topics: &mut TopicTable) -> bool {
    let mut changed = false;
    for topic in topics.values_mut() {
        if !topic.placement_fits(config.shards) {
            let meta = Arc::make_mut(topic);
            meta.placement = initial_placement(&meta.name, meta.partitions, config.shards);
            changed = true;
        }
    }
    changed
}

/// Removes partition directories whose topic no longer exists (a deletion
/// interrupted by a crash), so a re-created topic never sees stale data.
fn remove_orphan_partitions(config: &BrokerConfig, topics: &TopicTable) {
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
        // Not the metadata log's directory, named like a partition's.
        let is_partition_dir = entry.path().is_dir() && strays::partition_of(&name).is_some();
        if is_partition_dir && !expected.contains(&name) {
            log::warn!("removing orphan partition directory {name}");
            if let Err(error) = std::fs::remove_dir_all(entry.path()) {
                log::error!("cannot remove {name}: {error}");
            }
        }
    }
}
