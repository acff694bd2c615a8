//! `shoal tune` on this machine and on a crafted tree: the report's
//! structure (every check with found, wanted and why), exit codes that
//! follow the findings, `--apply --dry-run` writing nothing, and `--apply`
//! writing exactly what the dry run listed. Nothing is asserted about this
//! machine's actual values.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Every check the default profile runs, in its order.
const THROUGHPUT_CHECKS: &[&str] = &[
    "cpu_governor",
    "irq_affinity",
    "net.core.rmem_max",
    "net.core.somaxconn",
    "net.core.wmem_max",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "vm.swappiness",
    "memlock",
    "io_uring",
    "transparent_hugepage",
    "transparent_hugepage_defrag",
    "disk_scheduler",
    "mount_options",
];

fn shoal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(args)
        .output()
        .expect("running shoal")
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "not JSON ({error}): {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn text(value: &Value, key: &str) -> String {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {value}"))
        .to_string()
}

/// Runs `--check --json` with `profile` and checks the report's shape.
fn check_report(profile: &str) -> Value {
    let output = shoal(&["tune", "--check", "--json", "--profile", profile]);
    let report = json_of(&output);
    let checks = report["checks"].as_array().expect("a checks array");
    let mut differs = 0;
    for check in checks {
        for key in ["name", "found", "wanted", "why"] {
            assert!(!text(check, key).is_empty(), "{key} is empty in {check}");
        }
        let status = text(check, "status");
        assert!(
            ["ok", "differs", "unavailable"].contains(&status.as_str()),
            "{check}"
        );
        differs += usize::from(status == "differs");
        let changes = check["changes"].as_array().expect("a changes array");
        if status != "differs" {
            assert!(
                changes.is_empty(),
                "only a differing setting plans changes: {check}"
            );
        }
        for change in changes {
            for key in ["path", "value", "previous"] {
                assert!(change[key].is_string(), "{change}");
            }
        }
        assert!(check["advice"].is_null() || check["advice"].is_string());
    }
    assert_eq!(report["differs"], differs);
    let expected_exit = if differs > 0 { 1 } else { 0 };
    assert_eq!(output.status.code(), Some(expected_exit), "{report}");
    assert_eq!(report["context"]["profile"], profile);
    report
}

fn names(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|check| text(check, "name"))
        .collect()
}

#[test]
fn check_reports_every_setting_with_found_wanted_and_why() {
    let report = check_report("throughput");
    assert_eq!(names(&report), THROUGHPUT_CHECKS);

    let latency = check_report("latency");
    let latency_names = names(&latency);
    for name in THROUGHPUT_CHECKS {
        assert!(latency_names.contains(&name.to_string()), "{name}");
    }
    assert!(latency_names.contains(&"net.ipv4.tcp_slow_start_after_idle".to_string()));

    let table = shoal(&["tune", "--check"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("SETTING"), "{table}");
    for name in THROUGHPUT_CHECKS {
        assert!(
            table.lines().any(|line| line.starts_with(name)),
            "{name} missing:\n{table}"
        );
    }
}

#[test]
fn a_bad_profile_or_mode_is_refused() {
    let unknown = shoal(&["tune", "--check", "--profile", "fastest"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown profile"));
    assert_ne!(
        shoal(&["tune"]).status.code(),
        Some(0),
        "a mode is required"
    );
    assert_ne!(
        shoal(&["tune", "--check", "--dry-run"]).status.code(),
        Some(0)
    );
    assert_ne!(
        shoal(&["tune", "--check", "--apply"]).status.code(),
        Some(0)
    );
}

/// Every file on this machine that `--apply` could write.
fn writable_settings() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = [
        "/proc/sys/vm/swappiness",
        "/proc/sys/net/core/somaxconn",
        "/proc/sys/net/core/rmem_max",
        "/proc/sys/net/core/wmem_max",
        "/proc/sys/net/ipv4/tcp_rmem",
        "/proc/sys/net/ipv4/tcp_wmem",
        "/proc/sys/net/ipv4/tcp_slow_start_after_idle",
        "/sys/kernel/mm/transparent_hugepage/enabled",
        "/sys/kernel/mm/transparent_hugepage/defrag",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    let under = |dir: &str, suffix: &str| -> Vec<PathBuf> {
        fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|entry| Some(entry.ok()?.path().join(suffix)))
            .collect()
    };
    paths.extend(under("/proc/irq", "smp_affinity_list"));
    paths.extend(under("/sys/devices/system/cpu", "cpufreq/scaling_governor"));
    paths.extend(under("/sys/block", "queue/scheduler"));
    paths
}

fn snapshot(paths: &[PathBuf]) -> BTreeMap<PathBuf, String> {
    paths
        .iter()
        .filter_map(|path| Some((path.clone(), fs::read_to_string(path).ok()?)))
        .collect()
}

#[test]
fn dry_run_lists_the_planned_changes_and_writes_nothing() {
    for profile in ["throughput", "latency"] {
        let check = check_report(profile);
        let planned: Vec<Value> = check["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .flat_map(|c| c["changes"].as_array().expect("changes").clone())
            .collect();
        let mut paths = writable_settings();
        paths.extend(
            planned
                .iter()
                .map(|change| PathBuf::from(text(change, "path"))),
        );
        let before = snapshot(&paths);

        let output = shoal(&[
            "tune",
            "--apply",
            "--dry-run",
            "--json",
            "--profile",
            profile,
        ]);
        assert_eq!(output.status.code(), Some(0));
        let dry_run = json_of(&output);
        assert_eq!(dry_run["dry_run"], true);
        let listed = dry_run["changes"].as_array().expect("changes");
        assert_eq!(listed.len(), planned.len(), "{dry_run}");
        for (listed, planned) in listed.iter().zip(&planned) {
            for key in ["path", "value", "previous"] {
                assert_eq!(listed[key], planned[key]);
            }
            assert!(!text(listed, "setting").is_empty());
        }
        assert_eq!(
            snapshot(&paths),
            before,
            "--apply --dry-run changed a setting"
        );
    }
}

/// A crafted /proc and /sys in which the swappiness, THP and the governor
/// differ from the default profile.
fn crafted_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("a temp dir");
    let write = |relative: &str, value: &str| {
        let path = root.path().join(relative);
        fs::create_dir_all(path.parent().expect("a parent")).expect("directories");
        fs::write(path, format!("{value}\n")).expect("a file");
    };
    write("proc/sys/vm/swappiness", "60");
    write("proc/sys/net/core/somaxconn", "4096");
    write(
        "sys/kernel/mm/transparent_hugepage/enabled",
        "[always] madvise never",
    );
    write(
        "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
        "powersave",
    );
    write(
        "sys/devices/system/cpu/cpu0/cpufreq/scaling_available_governors",
        "performance powersave",
    );
    fs::create_dir(root.path().join("data")).expect("a data dir");
    root
}

fn read(root: &Path, relative: &str) -> String {
    fs::read_to_string(root.join(relative))
        .expect("a crafted file")
        .trim()
        .to_string()
}

fn apply_args(root: &Path, dry_run: bool) -> Vec<String> {
    let mut args: Vec<String> = ["tune", "--apply", "--json", "--shards", "1", "--root"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(root.display().to_string());
    args.push("--data-dir".to_string());
    args.push(root.join("data").display().to_string());
    if dry_run {
        args.push("--dry-run".to_string());
    }
    args
}

/// `--apply` against a crafted tree: it writes exactly what the dry run
/// listed, and afterwards `--check` finds those settings matching.
#[test]
fn apply_writes_exactly_what_the_dry_run_listed() {
    let root = crafted_root();
    let dry_args = apply_args(root.path(), true);
    let dry_run = json_of(&shoal(
        &dry_args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let listed: Vec<(String, String)> = dry_run["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| (text(c, "path"), text(c, "value")))
        .collect();
    let relative = |path: &str| {
        Path::new(path)
            .strip_prefix(root.path())
            .expect("under the root")
            .display()
            .to_string()
    };
    let listed_relative: Vec<(String, String)> = listed
        .iter()
        .map(|(p, v)| (relative(p), v.clone()))
        .collect();
    assert_eq!(
        listed_relative,
        [
            (
                "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor".to_string(),
                "performance".to_string()
            ),
            ("proc/sys/vm/swappiness".to_string(), "1".to_string()),
            (
                "sys/kernel/mm/transparent_hugepage/enabled".to_string(),
                "madvise".to_string()
            ),
        ]
    );
    assert_eq!(
        read(root.path(), "proc/sys/vm/swappiness"),
        "60",
        "the dry run wrote"
    );

    // SAFETY: geteuid has no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return; // apply_needs_root covers this user
    }
    let args = apply_args(root.path(), false);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = shoal(&args);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let applied = json_of(&output);
    let made: Vec<(String, String)> = applied["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            assert!(c["error"].is_null(), "{c}");
            (text(c, "path"), text(c, "value"))
        })
        .collect();
    assert_eq!(made, listed);
    for (path, value) in &listed {
        assert_eq!(fs::read_to_string(path).expect("written"), *value);
    }
    assert_eq!(
        read(root.path(), "proc/sys/net/core/somaxconn"),
        "4096",
        "untouched"
    );

    let mut check_args = apply_args(root.path(), false);
    check_args[1] = "--check".to_string();
    let check = json_of(&shoal(
        &check_args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    for check in check["checks"].as_array().expect("checks") {
        if ["cpu_governor", "vm.swappiness", "transparent_hugepage"]
            .contains(&text(check, "name").as_str())
        {
            assert_eq!(check["status"], "ok", "{check}");
        }
    }
}

/// As an unprivileged user, `--apply` refuses before writing anything.
#[test]
fn apply_needs_root() {
    // SAFETY: geteuid has no arguments and cannot fail.
    let is_root = unsafe { libc::geteuid() } == 0;
    let root = crafted_root();
    let args = apply_args(root.path(), false);
    let mut command = if is_root {
        // Drop to nobody for this one run; setpriv is util-linux's.
        let mut command = Command::new("setpriv");
        command.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_shoal"),
        ]);
        command
    } else {
        Command::new(env!("CARGO_BIN_EXE_shoal"))
    };
    let output = command.args(&args).output().expect("running shoal");
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("needs root"));
    assert_eq!(read(root.path(), "proc/sys/vm/swappiness"), "60");
}
