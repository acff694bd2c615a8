//! `shoal tune`: compares the host settings shoal's speed depends on with a
//! profile from `tuning/` and, when asked, applies those that are safe to
//! change on a running system.
//!
//! One file per family of checks: `cpu` (frequency governor), `irq` (the
//! NIC's interrupt affinity), `sysctl` (`/proc/sys` values), `memory`
//! (locked-memory limit, transparent huge pages), `io_uring`, `disk` (the
//! data directory's I/O scheduler and mount options). Each returns a
//! [`Check`]: what it found, what the profile wants, why, and the
//! [`Change`]s that would make the two agree. `command` is the CLI and
//! `report` prints tables and JSON.
//!
//! Invariant: every file read or written is under [`Host::root`] ("/" on a
//! real machine, a crafted tree in tests). Checking never writes. [`apply`]
//! writes exactly the changes the checks planned — the list `--apply
//! --dry-run` prints — and nothing else; settings that cannot safely change
//! under a running system (mount options, resource limits, the io_uring
//! security switch) only ever produce advice.

pub mod command;
mod cpu;
mod disk;
mod io_uring;
mod irq;
mod memory;
pub mod profile;
mod report;
mod sysctl;

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use profile::Profile;

/// Highest CPU number a cpu list may name: the largest `NR_CPUS` Linux
/// builds with. Bounds what a corrupt or crafted list can make us allocate.
const CPU_ID_MAX: usize = 8191;

/// The machine being checked, and what the broker will run on it.
pub struct Host {
    /// Where `proc/` and `sys/` are: "/" on a real machine.
    pub root: PathBuf,
    /// The broker's data directory; it need not exist yet.
    pub data_dir: PathBuf,
    /// Shards the broker will run.
    pub shards: usize,
    /// The cores those shards run on.
    pub shard_cores: Vec<usize>,
    /// Creates and closes a throwaway io_uring: preflight's probe on a real
    /// machine, a stand-in in tests.
    pub probe_io_uring: fn() -> anyhow::Result<()>,
}

impl Host {
    fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    fn read(&self, relative: &str) -> io::Result<String> {
        read_trimmed(&self.path(relative))
    }
}

/// A file's text without its trailing newline.
fn read_trimmed(path: &Path) -> io::Result<String> {
    fs::read_to_string(path).map(|text| text.trim_end().to_string())
}

/// How a setting compares with the profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Differs,
    /// The setting does not exist here (no cpufreq in a VM, no block device
    /// under an overlay): a finding, not a failure.
    Unavailable,
}

impl Status {
    /// `Ok` when the setting matches, else `Differs`.
    fn of(matches: bool) -> Status {
        if matches {
            Status::Ok
        } else {
            Status::Differs
        }
    }
}

/// One setting: what was found, what the profile wants, and why.
#[derive(Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub found: String,
    pub wanted: String,
    pub why: String,
    /// What `--apply` writes; empty when the setting matches or is advice only.
    pub changes: Vec<Change>,
    /// What to do by hand about what `--apply` leaves alone.
    pub advice: Option<String>,
}

impl Check {
    fn new(name: &str, status: Status, found: String, wanted: String, why: &str) -> Check {
        Check {
            name: name.to_string(),
            status,
            found,
            wanted,
            why: why.to_string(),
            changes: Vec::new(),
            advice: None,
        }
    }
}

/// One write `--apply` makes: `value` into the file at `path`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub path: PathBuf,
    pub value: String,
    /// The file's value when checked, for the record.
    pub previous: String,
}

/// A change `--apply` made, or tried to.
#[derive(Debug, Serialize)]
pub struct Applied {
    pub setting: String,
    #[serde(flatten)]
    pub change: Change,
    /// `None` when the write succeeded.
    pub error: Option<String>,
}

/// Runs every check of `profile` against `host`, in the profile's order.
pub fn check_all(host: &Host, profile: &Profile) -> Vec<Check> {
    let mut checks = vec![
        cpu::governor(host, &profile.cpu_governor),
        irq::affinity(host, &profile.irq_affinity),
    ];
    checks.extend(
        profile
            .sysctl
            .iter()
            .map(|(key, setting)| sysctl::check(host, key, setting)),
    );
    checks.extend([
        memory::memlock(host, &profile.memlock),
        io_uring::check(host, &profile.io_uring),
        memory::transparent_hugepage(host, "enabled", &profile.transparent_hugepage),
        memory::transparent_hugepage(host, "defrag", &profile.transparent_hugepage_defrag),
        disk::scheduler(host, &profile.disk_scheduler),
        disk::mount_options(host, &profile.mount_options),
    ]);
    for check in &checks {
        debug_assert!(
            check.status == Status::Differs || check.changes.is_empty(),
            "{} plans changes but does not differ",
            check.name
        );
    }
    checks
}

/// Writes every change the checks planned, each on its own: one that fails
/// (a read-only `/sys` in a container, an IRQ the kernel manages) is
/// reported and the rest still go ahead.
pub fn apply(checks: &[Check]) -> Vec<Applied> {
    checks
        .iter()
        .flat_map(|check| {
            check.changes.iter().map(|change| Applied {
                setting: check.name.clone(),
                change: change.clone(),
                error: write_value(&change.path, &change.value)
                    .err()
                    .map(|error| error.to_string()),
            })
        })
        .collect()
}

/// One write of the whole value, into a file that must already exist:
/// `/proc/sys` and `/sys` files are never created.
fn write_value(path: &Path, value: &str) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)?
        .write_all(value.as_bytes())
}

/// Parses a kernel cpu list ("0-3,8,10-11").
fn parse_cpu_list(text: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|part| !part.is_empty()) {
        let (first, last): (usize, usize) = match part.split_once('-') {
            Some((first, last)) => (first.parse().ok()?, last.parse().ok()?),
            None => {
                let cpu = part.parse().ok()?;
                (cpu, cpu)
            }
        };
        if first > last || last > CPU_ID_MAX {
            return None;
        }
        cpus.extend(first..=last);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Some(cpus)
}

/// Formats sorted cpus as a kernel cpu list ("0-3,8").
fn format_cpu_list(cpus: &[usize]) -> String {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for &cpu in cpus {
        match ranges.last_mut() {
            Some((_, last)) if *last + 1 == cpu => *last = cpu,
            _ => ranges.push((cpu, cpu)),
        }
    }
    ranges
        .iter()
        .map(|&(first, last)| {
            if first == last {
                first.to_string()
            } else {
                format!("{first}-{last}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses a sysfs choice file such as "always [madvise] never": the
/// selected word and every word offered. A file offering one word may print
/// it without brackets ("none").
fn parse_choice(text: &str) -> Option<(String, Vec<String>)> {
    let mut selected = None;
    let mut offered = Vec::new();
    for word in text.split_whitespace() {
        match word.strip_prefix('[').and_then(|w| w.strip_suffix(']')) {
            Some(choice) => {
                selected = Some(choice.to_string());
                offered.push(choice.to_string());
            }
            None => offered.push(word.to_string()),
        }
    }
    match (selected, offered.as_slice()) {
        (Some(selected), _) => Some((selected, offered)),
        (None, [only]) => Some((only.clone(), offered.clone())),
        (None, _) => None,
    }
}

/// The first of `wanted` that `offered` has (every one when nothing is
/// known to be offered).
fn first_offered<'a>(wanted: &'a [String], offered: &[String]) -> Option<&'a String> {
    wanted
        .iter()
        .find(|want| offered.is_empty() || offered.contains(want))
}

#[cfg(test)]
mod fake;

#[cfg(test)]
mod tests {
    use super::*;
    use fake::FakeRoot;

    #[test]
    fn cpu_lists_parse_and_format() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list("1\n"), Some(vec![1]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("0-4294967295"), None);
        assert_eq!(parse_cpu_list("x"), None);
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(format_cpu_list(&[5]), "5");
    }

    #[test]
    fn choices_parse() {
        let (selected, offered) = parse_choice("always [madvise] never").unwrap();
        assert_eq!(selected, "madvise");
        assert_eq!(offered, ["always", "madvise", "never"]);
        assert_eq!(parse_choice("none").unwrap().0, "none");
        assert_eq!(parse_choice("none kyber"), None);
    }

    /// --check on the default profile against a tree where everything
    /// differs plans writes only under the root, and `apply` makes exactly
    /// those, each reported on its own; a write that fails does not stop
    /// the others.
    #[test]
    fn apply_writes_exactly_the_planned_changes() {
        let root = FakeRoot::new();
        root.write("proc/sys/vm/swappiness", "60");
        root.write("proc/sys/net/core/somaxconn", "128");
        root.write(
            "sys/kernel/mm/transparent_hugepage/enabled",
            "[always] madvise never",
        );
        let profile = profile::load(profile::DEFAULT_PROFILE).unwrap();
        let host = root.host();
        let checks = check_all(&host, &profile);
        let planned: Vec<&Change> = checks.iter().flat_map(|c| &c.changes).collect();
        assert_eq!(planned.len(), 3, "{planned:?}");
        assert!(planned
            .iter()
            .all(|change| change.path.starts_with(root.path(""))));

        // A file that vanished between check and apply fails alone.
        std::fs::remove_file(root.path("proc/sys/net/core/somaxconn")).unwrap();
        let applied = apply(&checks);
        assert_eq!(applied.len(), 3);
        let failed: Vec<&str> = applied
            .iter()
            .filter(|a| a.error.is_some())
            .map(|a| a.setting.as_str())
            .collect();
        assert_eq!(failed, ["net.core.somaxconn"]);
        assert!(
            !root.path("proc/sys/net/core/somaxconn").exists(),
            "apply never creates files"
        );
        assert_eq!(root.read("proc/sys/vm/swappiness"), "1");
        assert_eq!(
            root.read("sys/kernel/mm/transparent_hugepage/enabled"),
            "madvise"
        );

        let again = check_all(&host, &profile);
        let swappiness = again.iter().find(|c| c.name == "vm.swappiness").unwrap();
        assert_eq!(swappiness.status, Status::Ok);
    }
}
