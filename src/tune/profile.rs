//! Tuning profiles: the TOML files in `tuning/`. The built-in ones are
//! compiled into the binary, so `--profile latency` works from any
//! directory; any other `.toml` file is read from its path.
//!
//! Invariant: a profile that loads is complete and consistent — every check
//! has its section and its reason, every list of wanted values is non-empty,
//! every sysctl name is a plain dotted name (it becomes a path under
//! `/proc/sys`), and numeric rules have numeric values — so the checks never
//! meet a malformed setting.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{bail, Context};
use serde::Deserialize;

/// The profile `shoal tune` uses unless told otherwise.
pub const DEFAULT_PROFILE: &str = "throughput";

/// The profiles in `tuning/`, by name.
const BUILT_IN: &[(&str, &str)] = &[
    ("throughput", include_str!("../../tuning/throughput.toml")),
    ("latency", include_str!("../../tuning/latency.toml")),
];

/// A whole profile; see `tuning/README.md` for every setting.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Its built-in name, or the path it was read from.
    #[serde(skip)]
    pub name: String,
    pub description: String,
    pub cpu_governor: OneOf,
    pub irq_affinity: Reason,
    /// By sysctl name (`vm.swappiness`).
    pub sysctl: BTreeMap<String, Sysctl>,
    pub memlock: Reason,
    pub io_uring: Reason,
    pub transparent_hugepage: OneOf,
    pub transparent_hugepage_defrag: OneOf,
    pub disk_scheduler: DiskScheduler,
    pub mount_options: AllOf,
}

/// A setting whose wanted value shoal works out itself (from the shard
/// count, or "available"); the profile gives the reason.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    pub why: String,
}

/// A setting satisfied by any of `want`; `--apply` sets the first one the
/// kernel offers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneOf {
    pub want: Vec<String>,
    pub why: String,
}

/// A setting that needs every one of `want` (mount options).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllOf {
    pub want: Vec<String>,
    pub why: String,
}

/// The I/O scheduler, wanted per kind of disk.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskScheduler {
    /// For SSDs and NVMe (`queue/rotational` is 0).
    pub want: Vec<String>,
    /// For spinning disks.
    pub want_rotational: Vec<String>,
    pub why: String,
}

/// One `/proc/sys` value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sysctl {
    pub want: SysctlValue,
    pub rule: Rule,
    pub why: String,
}

/// A sysctl value as written in the profile: `1` or `"4096 131072 16777216"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum SysctlValue {
    Number(i64),
    Text(String),
}

impl SysctlValue {
    /// The value as whitespace-separated fields, the way `/proc/sys` prints
    /// multi-valued settings.
    pub fn fields(&self) -> Vec<String> {
        match self {
            SysctlValue::Number(number) => vec![number.to_string()],
            SysctlValue::Text(text) => text.split_whitespace().map(str::to_string).collect(),
        }
    }
}

/// How a found sysctl value is compared with the wanted one. Multi-valued
/// settings (`tcp_rmem`'s min, default and max) compare field by field.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Every field at least the wanted one; `--apply` never lowers a value
    /// someone raised.
    AtLeast,
    /// Every field at most the wanted one.
    AtMost,
    Equal,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::AtLeast => "at least",
            Rule::AtMost => "at most",
            Rule::Equal => "exactly",
        })
    }
}

/// Loads a built-in profile by name, or a `.toml` file by path.
pub fn load(name_or_path: &str) -> anyhow::Result<Profile> {
    if let Some((name, text)) = BUILT_IN.iter().find(|(name, _)| *name == name_or_path) {
        return parse(name, text);
    }
    if !name_or_path.ends_with(".toml") {
        let names: Vec<&str> = BUILT_IN.iter().map(|(name, _)| *name).collect();
        bail!(
            "unknown profile {name_or_path:?}: the built-in profiles are {}, or give the path of a .toml file",
            names.join(", ")
        );
    }
    let text = std::fs::read_to_string(name_or_path)
        .with_context(|| format!("cannot read profile {name_or_path}"))?;
    parse(name_or_path, &text)
}

/// Parses and validates a profile's text.
pub fn parse(name: &str, text: &str) -> anyhow::Result<Profile> {
    let mut profile: Profile =
        toml::from_str(text).with_context(|| format!("profile {name} is not valid"))?;
    profile.name = name.to_string();
    validate(&profile).with_context(|| format!("profile {name} is not valid"))?;
    Ok(profile)
}

fn validate(profile: &Profile) -> anyhow::Result<()> {
    let lists = [
        ("cpu_governor", &profile.cpu_governor.want),
        ("transparent_hugepage", &profile.transparent_hugepage.want),
        (
            "transparent_hugepage_defrag",
            &profile.transparent_hugepage_defrag.want,
        ),
        ("disk_scheduler", &profile.disk_scheduler.want),
        (
            "disk_scheduler.want_rotational",
            &profile.disk_scheduler.want_rotational,
        ),
        ("mount_options", &profile.mount_options.want),
    ];
    for (section, want) in lists {
        if want.is_empty() || want.iter().any(|value| !is_plain_word(value)) {
            bail!("{section}.want must list one or more plain words");
        }
    }
    for (key, setting) in &profile.sysctl {
        if key.split('.').any(|part| !is_plain_word(part)) {
            bail!("sysctl {key:?} is not a dotted name such as vm.swappiness");
        }
        let fields = setting.want.fields();
        if fields.is_empty() {
            bail!("sysctl {key}: want is empty");
        }
        if setting.rule != Rule::Equal && fields.iter().any(|f| f.parse::<i64>().is_err()) {
            bail!(
                "sysctl {key}: rule {:?} needs numbers, got {:?}",
                setting.rule,
                fields.join(" ")
            );
        }
    }
    Ok(())
}

/// Letters, digits, `_`, `-` and `+` (`defer+madvise`): safe in a path and
/// in a sysfs write.
fn is_plain_word(word: &str) -> bool {
    !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::listener::LISTEN_BACKLOG;

    #[test]
    fn built_in_profiles_load() {
        for (name, _) in BUILT_IN {
            let profile = load(name).unwrap();
            assert_eq!(profile.name, *name);
            assert!(!profile.description.is_empty());
        }
        assert!(load(DEFAULT_PROFILE).is_ok());
    }

    /// The kernel caps every listen backlog at somaxconn, so a profile
    /// asking for less than shoal's backlog would accept a silent cut.
    #[test]
    fn built_in_somaxconn_covers_the_listen_backlog() {
        for (name, _) in BUILT_IN {
            let profile = load(name).unwrap();
            let somaxconn = &profile.sysctl["net.core.somaxconn"];
            assert_eq!(somaxconn.rule, Rule::AtLeast);
            let wanted: i64 = somaxconn.want.fields()[0].parse().unwrap();
            assert!(wanted >= i64::from(LISTEN_BACKLOG), "{name}");
        }
    }

    #[test]
    fn unknown_names_and_bad_values_are_refused() {
        assert!(load("fastest").is_err());
        let good = BUILT_IN[0].1;
        assert!(parse("x", good).is_ok());
        let unknown_key = format!("{good}\nsurprise = 1\n");
        assert!(parse("x", &unknown_key).is_err());
        let traversal = format!(
            "{good}\n[sysctl.\"../etc/passwd\"]\nwant = 1\nrule = \"equal\"\nwhy = \"no\"\n"
        );
        assert!(parse("x", &traversal).is_err());
        let text_at_least = format!(
            "{good}\n[sysctl.\"vm.dirty_ratio\"]\nwant = \"lots\"\nrule = \"at_least\"\nwhy = \"no\"\n"
        );
        assert!(parse("x", &text_at_least).is_err());
        let no_governor = good.replace("[cpu_governor]", "[cpu_governor_gone]");
        assert!(parse("x", &no_governor).is_err());
    }
}
