//! `shoal storage`, as Kafka's `kafka-storage.sh`: `random-uuid` prints a
//! new cluster id, `format` writes `meta.properties` into a node's data
//! directory before its first start in a cluster, `info` shows what a data
//! directory holds. Local files only: no broker is reached.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Args, Subcommand};

use crate::config::{BrokerConfig, ProcessRole, SaslMechanism, DEFAULT_DATA_DIR};
use crate::metadata::records::{MetadataRecord, UserScramCredentialRecord};
use crate::metadata::store;
use crate::quorum::{QuorumNode, QuorumSettings};
use crate::security::sasl::scram;

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
    /// A SCRAM credential for the cluster's metadata, as kafka-storage.sh
    /// takes it: `SCRAM-SHA-256=[name=alice,password=alice-secret]`
    /// (also `iterations=`, `salt=` in base64, `saltedpassword=` in
    /// base64 with `salt`). Repeatable.
    #[arg(
        short = 'S',
        long = "add-scram",
        value_name = "MECHANISM=[name=...,password=...]"
    )]
    pub add_scram: Vec<String>,
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
    let scram = args
        .add_scram
        .iter()
        .map(|arg| add_scram_record(arg))
        .collect::<Result<Vec<_>, _>>()?;
    store::format_meta_properties(dir, &args.cluster_id, config.node_id)?;
    // The one voter's log gets its bootstrap records now, as Kafka's
    // format writes them; a voter among several gets its log with the
    // voter set (Kafka's static `controller.quorum.voters`), and the first
    // leader commits the bootstrap records.
    if config.cluster.unsupported_quorum(config.node_id).is_none() {
        let settings = QuorumSettings::of(&config);
        if settings.sole_voter() {
            let mut node = QuorumNode::start_blocking(dir, settings)?;
            if !scram.is_empty() {
                node.propose_blocking(&scram)?;
            }
        } else {
            QuorumNode::open(dir, settings)?;
            // For whichever voter leads first (`quorum::bootstrap_file`).
            if !scram.is_empty() {
                crate::quorum::bootstrap_file::write(dir, &scram)?;
            }
        }
    }
    Ok(())
}

/// Random bytes of a salt `--add-scram` makes (Kafka's `secureRandomBytes`).
const SCRAM_SALT_BYTES: usize = 32;
/// Kafka's iterations when `--add-scram` names none.
const SCRAM_ITERATIONS_DEFAULT: i32 = 4096;

/// One `--add-scram` argument as Kafka's `ScramParser` reads it, made the
/// UserScramCredentialRecord it stands for. Errors never repeat a password.
fn add_scram_record(arg: &str) -> anyhow::Result<MetadataRecord> {
    use base64::Engine;
    let base64 = base64::engine::general_purpose::STANDARD;
    let (mechanism, config) = arg
        .trim()
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("Failed to find equals sign in SCRAM argument"))?;
    let sasl = SaslMechanism::from_name(mechanism)
        .filter(|m| m.scram_type().is_some())
        .ok_or_else(|| anyhow::anyhow!("The add-scram mechanism {mechanism} is not supported."))?;
    let config = config
        .strip_prefix('[')
        .ok_or_else(|| anyhow::anyhow!("Expected configuration string to start with ["))?
        .strip_suffix(']')
        .ok_or_else(|| anyhow::anyhow!("Expected configuration string to end with ]"))?;
    let mut fields = BTreeMap::new();
    for component in config.split(',') {
        let (key, value) = component
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("No equals sign found in a SCRAM component"))?;
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        fields.insert(key.trim().to_string(), value.to_string());
    }
    let name = fields
        .remove("name")
        .ok_or_else(|| anyhow::anyhow!("You must supply 'name' to add-scram"))?;
    let decode = |what: &str, text: String| {
        base64
            .decode(text)
            .map_err(|_| anyhow::anyhow!("Failed to decode given {what}"))
    };
    let salt = match fields.remove("salt") {
        Some(salt) => decode("salt", salt)?,
        None => {
            let mut salt = vec![0u8; SCRAM_SALT_BYTES];
            getrandom::getrandom(&mut salt)?;
            salt
        }
    };
    let iterations = match fields.remove("iterations") {
        Some(text) => text
            .parse::<i32>()
            .map_err(|_| anyhow::anyhow!("Failed to parse iterations count: {text}"))?,
        None => SCRAM_ITERATIONS_DEFAULT,
    };
    if iterations < scram::ITERATIONS_MIN {
        bail!(
            "The 'iterations' value must be >= {} for add-scram",
            scram::ITERATIONS_MIN
        );
    }
    if iterations > scram::ITERATIONS_MAX {
        bail!(
            "The 'iterations' value must be <= {} for add-scram",
            scram::ITERATIONS_MAX
        );
    }
    let credential = match (fields.remove("password"), fields.remove("saltedpassword")) {
        (Some(password), _) => scram::credential_from_password(sasl, &password, &salt, iterations),
        (None, Some(salted)) => {
            let salted = decode("saltedPassword", salted)?;
            scram::credential_from_salted(sasl, &salted, &salt, iterations)
        }
        (None, None) => bail!("You must supply one of 'password' or 'saltedpassword' to add-scram"),
    };
    if !fields.is_empty() {
        let unknown: Vec<&str> = fields.keys().map(String::as_str).collect();
        bail!("Unknown SCRAM configurations: {}", unknown.join(", "));
    }
    Ok(MetadataRecord::UserScramCredential(
        UserScramCredentialRecord {
            name,
            mechanism: sasl.scram_type().unwrap_or_default(),
            credential,
        },
    ))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_scram_reads_kafkas_syntax() {
        let record = add_scram_record(
            "SCRAM-SHA-256=[name=alice,password=alice-secret,iterations=8192,salt=\"c2FsdA==\"]",
        )
        .unwrap();
        let MetadataRecord::UserScramCredential(record) = record else {
            panic!("{record:?}");
        };
        assert_eq!((record.name.as_str(), record.mechanism), ("alice", 1));
        let expected = scram::credential_from_password(
            SaslMechanism::ScramSha256,
            "alice-secret",
            b"salt",
            8192,
        );
        assert_eq!(record.credential, expected);
        let random = add_scram_record("SCRAM-SHA-512=[name=bob,password=pw]").unwrap();
        let MetadataRecord::UserScramCredential(random) = random else {
            panic!("{random:?}");
        };
        assert_eq!(random.credential.salt.len(), SCRAM_SALT_BYTES);
        assert_eq!(random.credential.iterations, 4096);
    }

    #[test]
    fn add_scram_errors_are_kafkas_and_hide_the_password() {
        for (arg, expected) in [
            ("PLAIN=[name=a,password=secret]", "is not supported"),
            ("SCRAM-SHA-256=name=a,password=secret]", "start with ["),
            ("SCRAM-SHA-256=[password=secret]", "You must supply 'name'"),
            (
                "SCRAM-SHA-256=[name=a]",
                "one of 'password' or 'saltedpassword'",
            ),
            (
                "SCRAM-SHA-256=[name=a,password=secret,iterations=10]",
                "must be >= 4096",
            ),
            (
                "SCRAM-SHA-256=[name=a,password=secret,colour=red]",
                "Unknown SCRAM configurations: colour",
            ),
            ("SCRAM-SHA-256=[name=a,secret]", "No equals sign"),
        ] {
            let error = add_scram_record(arg).unwrap_err().to_string();
            assert!(error.contains(expected), "{arg}: {error}");
            assert!(!error.contains("secret"), "{arg}: {error}");
        }
    }
}
