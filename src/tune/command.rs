//! `shoal tune --check | --apply [--dry-run]`.
//!
//! Exit status: 0 when every available setting matches (`--check`) or
//! every change was made (`--apply`); 1 when a setting differs or a change
//! failed; 2 when the command could not run (unknown profile, `--apply`
//! without root).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::ArgGroup;

use super::report::{self, Context};
use super::{apply, check_all, profile, Host};
use crate::config::DEFAULT_DATA_DIR;
use crate::server::preflight::probe_io_uring;
use crate::shard::{allowed_cores, default_shard_count, shard_cores};

/// `--check` found a difference, or `--apply` a change that failed.
const EXIT_DIFFERS: u8 = 1;
/// The command could not run at all.
pub const EXIT_ERROR: u8 = 2;

/// `shoal tune ...`
#[derive(Debug, clap::Args)]
#[command(group(ArgGroup::new("mode").required(true).args(["check", "apply"])))]
pub struct TuneArgs {
    /// Compare the host with the profile and change nothing; exit 1 if a
    /// setting differs.
    #[arg(long)]
    check: bool,
    /// Make the changes the profile asks for that are safe at runtime
    /// (sysctls, governor, huge pages, disk scheduler, IRQ affinity); needs
    /// root. The rest (mount options, memlock) is printed as advice.
    #[arg(long)]
    apply: bool,
    /// With --apply: list exactly the changes it would make, write nothing.
    #[arg(long, requires = "apply")]
    dry_run: bool,
    /// A profile of tuning/ by name (throughput, latency) or a .toml path.
    #[arg(long, default_value = profile::DEFAULT_PROFILE)]
    profile: String,
    /// Shards the broker will run (memlock, IRQ placement); as `shoal
    /// serve`, one per core by default.
    #[arg(long)]
    shards: Option<usize>,
    /// The broker's data directory, whose disk and mount are checked.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// One JSON object instead of tables.
    #[arg(long)]
    json: bool,
    /// Where proc/ and sys/ are: a crafted tree, for tests.
    #[arg(long, default_value = "/", hide = true)]
    root: PathBuf,
}

/// Runs `shoal tune` and prints its report to stdout.
pub fn run_tune(args: TuneArgs) -> anyhow::Result<ExitCode> {
    let profile = profile::load(&args.profile)?;
    let shards = args.shards.unwrap_or_else(default_shard_count);
    if shards == 0 {
        bail!("--shards must be at least 1");
    }
    let host = Host {
        root: args.root,
        data_dir: args.data_dir,
        shards,
        shard_cores: shard_cores(shards).unwrap_or_else(allowed_cores),
        probe_io_uring,
    };
    let context = Context {
        profile: profile.name.clone(),
        description: profile.description.clone(),
        shards,
        shard_cores: host.shard_cores.clone(),
        data_dir: host.data_dir.clone(),
    };
    // SAFETY: geteuid has no arguments and cannot fail.
    if args.apply && !args.dry_run && unsafe { libc::geteuid() } != 0 {
        bail!(
            "shoal tune --apply needs root: it writes under /proc/sys and /sys. \
             Run it with sudo, or see what it would change with --apply --dry-run"
        );
    }
    let checks = check_all(&host, &profile);
    let (output, failed) = if args.check {
        let output = if args.json {
            format!("{:#}\n", report::check_json(&context, &checks))
        } else {
            report::check_text(&context, &checks)
        };
        (output, report::differing(&checks) > 0)
    } else {
        let applied = (!args.dry_run).then(|| apply(&checks));
        let failed = applied.iter().flatten().any(|a| a.error.is_some());
        let output = if args.json {
            format!(
                "{:#}\n",
                report::apply_json(&context, &checks, applied.as_deref())
            )
        } else {
            report::apply_text(&context, &checks, applied.as_deref())
        };
        (output, failed)
    };
    print!("{output}");
    Ok(if failed {
        ExitCode::from(EXIT_DIFFERS)
    } else {
        ExitCode::SUCCESS
    })
}
