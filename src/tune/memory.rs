//! Memory: the locked-memory limit the shards' io_uring buffers need
//! (advice only: a resource limit belongs to the session that starts the
//! broker), and transparent huge pages.

use crate::server::preflight::{locked_memory_needed_bytes, LOCKED_MEMORY_HEADROOM_BYTES};
use crate::shard::SHARD_IO_MEMORY_BYTES;

use super::profile::{OneOf, Reason};
use super::{first_offered, parse_choice, Change, Check, Host, Status};

/// Bit of `CAP_SYS_RESOURCE` in the capability sets (linux/capability.h):
/// without it not even root can raise a hard limit.
const CAP_SYS_RESOURCE_BIT: u32 = 24;
const LIMITS: &str = "proc/self/limits";
const STATUS: &str = "proc/self/status";
const THP_DIR: &str = "sys/kernel/mm/transparent_hugepage";
const KIB: u64 = 1024;

/// A limit from `/proc/self/limits`; `None` is unlimited.
type Limit = Option<u64>;

pub(super) fn memlock(host: &Host, setting: &Reason) -> Check {
    const NAME: &str = "memlock";
    let needed = locked_memory_needed_bytes(host.shards);
    let wanted = format!(
        "at least {} KiB: {} shard(s) x {} KiB of io_uring buffers + {} KiB for the rings",
        needed / KIB,
        host.shards,
        SHARD_IO_MEMORY_BYTES as u64 / KIB,
        LOCKED_MEMORY_HEADROOM_BYTES / KIB
    );
    let Some((soft, hard)) = host
        .read(LIMITS)
        .ok()
        .and_then(|text| locked_memory_limits(&text))
    else {
        return Check::new(
            NAME,
            Status::Unavailable,
            format!("no \"Max locked memory\" line in /{LIMITS}"),
            wanted,
            &setting.why,
        );
    };
    let can_raise_hard = host
        .read(STATUS)
        .ok()
        .and_then(|text| effective_capabilities(&text))
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE_BIT) != 0);
    let mut found = format!("soft {}, hard {}", show(soft), show(hard));
    if !can_raise_hard {
        found.push_str(
            "; no CAP_SYS_RESOURCE, so the hard limit cannot be raised from this session",
        );
    }
    // `shoal serve` raises its soft limit up to the hard one by itself.
    let enough = |limit: Limit| limit.is_none_or(|bytes| bytes >= needed);
    let status = Status::of(enough(soft) || enough(hard));
    let mut check = Check::new(NAME, status, found, wanted, &setting.why);
    let needed_kib = needed / KIB;
    let where_to_set = |bytes: &str| {
        format!(
            "where shoal's session is created: LimitMEMLOCK={bytes} in its systemd unit, \
             \"<user> - memlock <KiB>\" in /etc/security/limits.conf (then log in again), \
             or --ulimit memlock={bytes}:{bytes} for a container"
        )
    };
    let fits = |hard: u64| {
        hard.saturating_sub(LOCKED_MEMORY_HEADROOM_BYTES) / SHARD_IO_MEMORY_BYTES as u64
    };
    check.advice = match (status, hard) {
        (Status::Differs, Some(hard)) if !can_raise_hard => Some(format!(
            "this session cannot raise its hard limit ({} KiB), not even as root: set {needed_kib} KiB {}; \
             or run at most {} shard(s) (--shards)",
            hard / KIB,
            where_to_set(&needed.to_string()),
            fits(hard)
        )),
        (Status::Differs, _) => Some(format!(
            "run `ulimit -l {needed_kib}` in the shell that starts shoal, or set it {}",
            where_to_set(&needed.to_string())
        )),
        (_, Some(hard)) if !can_raise_hard => Some(format!(
            "the hard limit fits at most {} shard(s) and this session cannot raise it; \
             for N shards set N x {} + {} KiB {}",
            fits(hard),
            SHARD_IO_MEMORY_BYTES as u64 / KIB,
            LOCKED_MEMORY_HEADROOM_BYTES / KIB,
            where_to_set("<bytes>")
        )),
        _ => None,
    };
    check
}

pub(super) fn transparent_hugepage(host: &Host, file: &str, setting: &OneOf) -> Check {
    let name = match file {
        "enabled" => "transparent_hugepage".to_string(),
        other => format!("transparent_hugepage_{other}"),
    };
    let relative = format!("{THP_DIR}/{file}");
    let wanted = setting.want.join(" or ");
    let Some((current, offered)) = host
        .read(&relative)
        .ok()
        .and_then(|text| parse_choice(&text))
    else {
        return Check::new(
            &name,
            Status::Unavailable,
            "this kernel has no transparent huge pages".to_string(),
            wanted,
            &setting.why,
        );
    };
    if setting.want.contains(&current) {
        return Check::new(&name, Status::Ok, current, wanted, &setting.why);
    }
    let mut check = Check::new(
        &name,
        Status::Differs,
        current.clone(),
        wanted,
        &setting.why,
    );
    match first_offered(&setting.want, &offered) {
        Some(target) => check.changes.push(Change {
            path: host.path(&relative),
            value: target.clone(),
            previous: current,
        }),
        None => check.advice = Some(format!("this kernel offers only {}", offered.join(", "))),
    }
    check
}

/// The soft and hard `Max locked memory` of `/proc/self/limits`.
fn locked_memory_limits(limits: &str) -> Option<(Limit, Limit)> {
    let line = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max locked memory"))?;
    let mut fields = line.split_whitespace();
    let mut limit = || -> Option<Limit> {
        match fields.next()? {
            "unlimited" => Some(None),
            bytes => bytes.parse().ok().map(Some),
        }
    };
    Some((limit()?, limit()?))
}

/// `CapEff` of `/proc/self/status`.
fn effective_capabilities(status: &str) -> Option<u64> {
    let hex = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

fn show(limit: Limit) -> String {
    match limit {
        None => "unlimited".to_string(),
        Some(bytes) => format!("{} KiB", bytes / KIB),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::fake::FakeRoot;

    const ROOT_WITHOUT_SYS_RESOURCE: &str = "000001fffeffffff";
    const ROOT_CAPS: &str = "000001ffffffffff";

    fn limits(soft: &str, hard: &str) -> String {
        format!(
            "Limit                     Soft Limit           Hard Limit           Units\n\
             Max open files            1024                 524288               files\n\
             Max locked memory         {soft:<20} {hard:<20} bytes\n"
        )
    }

    fn reason() -> Reason {
        Reason {
            why: "io_uring".into(),
        }
    }

    #[test]
    fn a_hard_limit_that_fits_is_ok_since_serve_raises_the_soft_one() {
        let root = FakeRoot::new();
        root.write(LIMITS, &limits("65536", "8388608"));
        root.write(STATUS, &format!("Name:\tshoal\nCapEff:\t{ROOT_CAPS}\n"));
        let check = memlock(&root.host(), &reason());
        assert_eq!(check.status, Status::Ok, "{check:?}");
        assert_eq!(check.found, "soft 64 KiB, hard 8192 KiB");
        assert!(
            check.wanted.starts_with("at least 5120 KiB"),
            "{}",
            check.wanted
        );
        assert_eq!(check.advice, None);
        assert!(check.changes.is_empty());
    }

    #[test]
    fn too_small_without_cap_sys_resource_says_where_to_set_it() {
        let root = FakeRoot::new();
        root.write(LIMITS, &limits("2097152", "4194304"));
        root.write(STATUS, &format!("CapEff:\t{ROOT_WITHOUT_SYS_RESOURCE}\n"));
        let check = memlock(&root.host(), &reason());
        assert_eq!(check.status, Status::Differs);
        assert!(
            check.found.contains("no CAP_SYS_RESOURCE"),
            "{}",
            check.found
        );
        let advice = check.advice.unwrap();
        assert!(advice.contains("LimitMEMLOCK=5242880"), "{advice}");
        assert!(advice.contains("at most 1 shard(s)"), "{advice}");
        assert!(check.changes.is_empty(), "memlock is advice only");
    }

    #[test]
    fn unlimited_is_ok() {
        let root = FakeRoot::new();
        root.write(LIMITS, &limits("unlimited", "unlimited"));
        root.write(STATUS, &format!("CapEff:\t{ROOT_CAPS}\n"));
        let check = memlock(&root.host(), &reason());
        assert_eq!(check.status, Status::Ok);
        assert_eq!(check.found, "soft unlimited, hard unlimited");
    }

    #[test]
    fn transparent_hugepage_reads_and_plans() {
        let root = FakeRoot::new();
        let host = root.host();
        let setting = OneOf {
            want: vec!["madvise".into(), "never".into()],
            why: "stalls".into(),
        };
        let missing = transparent_hugepage(&host, "enabled", &setting);
        assert_eq!(missing.status, Status::Unavailable);

        root.write(&format!("{THP_DIR}/enabled"), "always madvise [never]");
        let ok = transparent_hugepage(&host, "enabled", &setting);
        assert_eq!((ok.status, ok.found.as_str()), (Status::Ok, "never"));

        root.write(
            &format!("{THP_DIR}/defrag"),
            "[always] defer defer+madvise madvise never",
        );
        let defrag = transparent_hugepage(&host, "defrag", &setting);
        assert_eq!(defrag.name, "transparent_hugepage_defrag");
        assert_eq!(defrag.status, Status::Differs);
        assert_eq!(defrag.changes[0].value, "madvise");
        assert_eq!(
            defrag.changes[0].path,
            root.path(&format!("{THP_DIR}/defrag"))
        );
    }
}
