//! `shoal storage`, as Kafka's `kafka-storage.sh`: `random-uuid` prints a
//! new cluster id, `format` writes `meta.properties` into a node's data
//! directory before its first start in a cluster, `info` shows what a data
//! directory holds. Local files only: no broker is reached.

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Args, Subcommand};

use crate::config::{BrokerConfig, ProcessRole, DEFAULT_DATA_DIR};
use crate::metadata::store;
use crate::quorum::{QuorumNode, QuorumSettings};

#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Print a new random cluster id.
    RandomUuid,
    /// Format the data directory of a node that runs with process.roles.
    Format(FormatArgs),
    /// Show the state of the data directory.
    Info(InfoArgs),
}

#[derive(Debug, Args)]
pub struct FormatArgs {
    /// The cluster id (from `shoal storage random-uuid`).
    #[arg(short = 't', long = "cluster-id")]
    pub cluster_id: String,
    /// The server.properties the node will start with.
    #[arg(short = 'c', long = "config")]
    pub config: PathBuf,
    /// Skip a directory that is already formatted instead of failing.
    #[arg(short = 'g', long = "ignore-formatted")]
    pub ignore_formatted: bool,
    /// Any broker config by Kafka's name, as `serve --override` (repeatable).
    #[arg(long = "override", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The server.properties the node starts with.
    #[arg(short = 'c', long = "config")]
    pub config: PathBuf,
}

/// Runs a `shoal storage` command; `Ok(false)` when `info` found problems
/// (Kafka's tool then exits 1).
pub fn run_storage(command: StorageCommand) -> anyhow::Result<bool> {
    match command {
        StorageCommand::RandomUuid => {
            println!("{}", store::random_uuid());
            Ok(true)
        }
        StorageCommand::Format(args) => format(&args).map(|()| true),
        StorageCommand::Info(args) => info(&args),
    }
}

fn node_config(path: &Path, overrides: &[String]) -> anyhow::Result<BrokerConfig> {
    // The shard count plays no part in storage.
    let mut config = BrokerConfig::new(PathBuf::from(DEFAULT_DATA_DIR), 1);
    config.apply_file_and_overrides(Some(path), overrides)?;
    config.check_cluster()?;
    Ok(config)
}

fn format(args: &FormatArgs) -> anyhow::Result<()> {
    let config = node_config(&args.config, &args.overrides)?;
    if !config.cluster.kraft() {
        bail!("The kafka configuration file appears to be for a legacy cluster. Formatting is only supported for clusters in KRaft mode.");
    }
    if config.cluster.has_role(ProcessRole::Controller) && config.cluster.quorum_voters.is_empty() {
        // Kafka then needs --standalone or --initial-controllers to write
        // the first voter set; shoal has no dynamic quorum yet.
        bail!("Because controller.quorum.voters is not set on this controller, this node needs a dynamic quorum (controller.quorum.bootstrap.servers alone), which shoal has not built yet (issue 14); set controller.quorum.voters");
    }
    if !store::is_valid_uuid(&args.cluster_id) {
        bail!(
            "Cluster ID string {} does not appear to be a valid UUID: 16 bytes in unpadded URL-safe base64 (shoal storage random-uuid prints one)",
            args.cluster_id
        );
    }
    let dir = &config.data_dir;
    if let Some(meta) = store::read_meta_properties(dir)? {
        if let Some(stored) = meta.cluster_id.as_deref() {
            if stored != args.cluster_id {
                bail!(
                    "Invalid cluster.id in: {}. Expected {}, but read {stored}",
                    store::meta_properties_path(dir).display(),
                    args.cluster_id
                );
            }
        }
        if !args.ignore_formatted {
            bail!(
                "Log directory {} is already formatted. Use --ignore-formatted to ignore this directory and format the others.",
                dir.display()
            );
        }
        println!("All of the log directories are already formatted.");
        return Ok(());
    }
    println!(
        "Formatting data directory {} with cluster.id {} and node.id {}.",
        dir.display(),
        args.cluster_id,
        config.node_id
    );
    store::format_meta_properties(dir, &args.cluster_id, config.node_id)?;
    // The one voter's log gets its bootstrap records now, as Kafka's
    // format writes them; a voter among several gets its log with the
    // voter set (Kafka's static `controller.quorum.voters`), and the first
    // leader commits the bootstrap records.
    if config.cluster.unsupported_quorum(config.node_id).is_none() {
        let settings = QuorumSettings::of(&config);
        if settings.sole_voter() {
            QuorumNode::start_blocking(dir, settings)?;
        } else {
            QuorumNode::open(dir, settings)?;
        }
    }
    Ok(())
}

fn info(args: &InfoArgs) -> anyhow::Result<bool> {
    let config = node_config(&args.config, &[])?;
    let dir = &config.data_dir;
    let mut problems = Vec::new();
    let mut found = None;
    if !dir.is_dir() {
        problems.push(if dir.exists() {
            format!("{} is not a directory", dir.display())
        } else {
            format!("{} does not exist", dir.display())
        });
    } else {
        println!("Found log directory:\n  {}\n", dir.display());
        match store::read_meta_properties(dir) {
            Ok(None) => problems.push(format!("{} is not formatted.", dir.display())),
            Ok(Some(meta)) => found = Some(meta),
            Err(error) => problems.push(format!(
                "Error loading {}: {error}",
                store::meta_properties_path(dir).display()
            )),
        }
    }
    if let Some(meta) = &found {
        println!("Found metadata: {meta}\n");
        if config.cluster.kraft() && meta.version == 0 {
            problems.push("The kafka configuration file appears to be for a cluster in KRaft mode, but the directories are formatted for legacy mode.".to_string());
        }
    }
    if problems.is_empty() {
        return Ok(true);
    }
    println!(
        "Found problem{}:",
        if problems.len() == 1 { "" } else { "s" }
    );
    for problem in &problems {
        println!("  {problem}");
    }
    Ok(false)
}
