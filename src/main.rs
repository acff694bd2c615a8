//! The `shoal` command: `serve` runs the broker; `storage` formats its data
//! directory for a cluster; `tune` checks the host it runs on; the other
//! subcommands (`cluster status` among them) are Kafka-protocol clients of
//! a running cluster.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use shoal::cli::{
    AclCommand, ClusterCommand, ConsumeArgs, GroupCommand, ProduceArgs, StorageCommand,
    TopicCommand, TransactionsCommand,
};
use shoal::config::BrokerConfig;

#[derive(Parser)]
#[command(
    name = "shoal",
    version,
    about = "A Kafka-compatible, thread-per-core streaming broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker.
    Serve(ServeArgs),
    /// Print a cluster id, format or inspect the data directory of a node
    /// that runs with process.roles (like kafka-storage.sh).
    #[command(subcommand)]
    Storage(StorageCommand),
    /// Show the metadata quorum, the brokers and the offline partitions
    /// (like kafka-metadata-quorum.sh describe).
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Create, list, describe, delete and grow topics, change their configs,
    /// delete their old records (like kafka-topics.sh, kafka-configs.sh and
    /// kafka-delete-records.sh).
    #[command(subcommand)]
    Topic(TopicCommand),
    /// List, describe, reset offsets of and delete consumer groups (like
    /// kafka-consumer-groups.sh).
    #[command(subcommand)]
    Group(GroupCommand),
    /// List and describe transactions, abort a hanging one (like
    /// kafka-transactions.sh).
    #[command(subcommand)]
    Transactions(TransactionsCommand),
    /// Add, list and remove ACLs (like kafka-acls.sh).
    #[command(subcommand)]
    Acl(AclCommand),
    /// Produce one record per stdin line (like kafka-console-producer.sh).
    Produce(ProduceArgs),
    /// Print records to stdout (like kafka-console-consumer.sh).
    Consume(ConsumeArgs),
    /// Measure a Kafka-compatible broker: throughput and latency percentiles.
    #[command(subcommand)]
    Bench(shoal::bench::BenchCommand),
    /// Check (or apply) the host settings of a profile in tuning/: CPU
    /// governor, IRQ affinity, sysctls, memlock, io_uring, huge pages, disk.
    Tune(shoal::tune::command::TuneArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// A server.properties file (Kafka config names).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to accept Kafka clients on.
    #[arg(long)]
    listen: Option<String>,
    /// Address clients are told to connect to (defaults to --listen).
    #[arg(long)]
    advertise: Option<String>,
    /// Directory holding the partitions and metadata.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Shards (threads, one per core); defaults to every online core.
    #[arg(long)]
    shards: Option<usize>,
    /// This broker's id.
    #[arg(long)]
    node_id: Option<i32>,
    /// Any broker config by Kafka's name, e.g. num.partitions=3 (repeatable).
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

fn broker_config(args: ServeArgs) -> anyhow::Result<BrokerConfig> {
    let mut config = BrokerConfig::new(
        PathBuf::from(shoal::config::DEFAULT_DATA_DIR),
        shoal::shard::default_shard_count(),
    );
    config.apply_file_and_overrides(args.config.as_deref(), &args.overrides)?;
    // The flags that stand for configs count as set, as an --override
    // would (DescribeConfigs shows them as the operator's).
    if let Some(listen) = args.listen {
        config.set("listeners", &listen)?;
    }
    if let Some(advertise) = args.advertise {
        config.set("advertised.listeners", &advertise)?;
    }
    if let Some(data_dir) = args.data_dir {
        let shown = data_dir.display().to_string();
        config.data_dir = data_dir;
        config.explicit.insert("log.dirs".to_string(), shown);
    }
    if let Some(shards) = args.shards {
        if shards == 0 {
            anyhow::bail!("--shards must be at least 1");
        }
        config.shards = shards;
    }
    if let Some(node_id) = args.node_id {
        config.set("node.id", &node_id.to_string())?;
    }
    config.check_cluster()?;
    Ok(config)
}

/// The `--command-config` file of whichever tool was asked for, if any.
fn command_config(matches: &ArgMatches) -> Option<PathBuf> {
    // `try_get_one` fails for a command that has no such argument.
    if let Ok(Some(path)) = matches.try_get_one::<PathBuf>(shoal::cli::COMMAND_CONFIG_ID) {
        return Some(path.clone());
    }
    matches
        .subcommand()
        .and_then(|(_, subcommand)| command_config(subcommand))
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    if let Some(path) = command_config(&matches) {
        if let Err(error) = shoal::client::security::install_file(&path) {
            eprintln!("Error: {error:#}");
            return ExitCode::FAILURE;
        }
    }
    let default_log_level = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    shoal::logging::install(default_log_level);
    let result = match cli.command {
        Command::Serve(args) => {
            shoal::fatal::install();
            return match broker_config(args).and_then(shoal::server::serve) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("shoal: {error:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Storage(command) => {
            return match shoal::cli::run_storage(command) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(error) => {
                    eprintln!("Error: {error:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Cluster(command) => shoal::cli::run_cluster(command),
        Command::Topic(command) => shoal::cli::run_topic(command),
        Command::Group(command) => shoal::cli::run_group(command),
        Command::Transactions(command) => shoal::cli::run_transactions(command),
        Command::Acl(command) => shoal::cli::run_acl(command),
        Command::Produce(args) => shoal::cli::run_produce(args),
        Command::Consume(args) => shoal::cli::run_consume(args),
        Command::Bench(command) => shoal::bench::run_bench(command),
        Command::Tune(args) => {
            return shoal::tune::command::run_tune(args).unwrap_or_else(|error| {
                eprintln!("shoal tune: {error:#}");
                ExitCode::from(shoal::tune::command::EXIT_ERROR)
            });
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error}");
            ExitCode::FAILURE
        }
    }
}
