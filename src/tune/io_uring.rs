//! io_uring: whether this process can create a ring (preflight's probe,
//! the same one `shoal serve` runs), and the `kernel.io_uring_disabled`
//! sysctl (Linux 6.6+) that may forbid it. Advice only: that sysctl is a
//! security choice, not a performance knob for `--apply` to flip.

use super::profile::Reason;
use super::{Check, Host, Status};

const NAME: &str = "io_uring";
const DISABLED_SYSCTL: &str = "proc/sys/kernel/io_uring_disabled";

pub(super) fn check(host: &Host, setting: &Reason) -> Check {
    let wanted = "a ring can be created (kernel.io_uring_disabled=0 where it exists)".to_string();
    let disabled = host.read(DISABLED_SYSCTL).ok();
    let probe = (host.probe_io_uring)();
    let sysctl = match &disabled {
        Some(value) => format!("kernel.io_uring_disabled={value}"),
        None => "no kernel.io_uring_disabled (a kernel before 6.6)".to_string(),
    };
    let found = match &probe {
        Ok(()) => format!("{sysctl}; a ring was created"),
        Err(error) => format!("{sysctl}; {error:#}"),
    };
    let status = Status::of(probe.is_ok());
    let mut check = Check::new(NAME, status, found, wanted, &setting.why);
    check.advice = match disabled.as_deref() {
        Some("0") | None => None,
        Some("1") => Some(
            "kernel.io_uring_disabled=1 allows io_uring only to root and members of the group in \
             kernel.io_uring_group: run shoal as one of them, or `sysctl -w kernel.io_uring_disabled=0` \
             (a security choice, so --apply leaves it)"
                .to_string(),
        ),
        Some(_) => Some(
            "io_uring is disabled for everyone: `sysctl -w kernel.io_uring_disabled=0` \
             (a security choice, so --apply leaves it)"
                .to_string(),
        ),
    };
    check
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::fake::FakeRoot;

    fn reason() -> Reason {
        Reason {
            why: "shoal's I/O".into(),
        }
    }

    #[test]
    fn the_probe_decides_and_the_sysctl_is_advice() {
        let root = FakeRoot::new();
        let mut host = root.host();
        let ok = check(&host, &reason());
        assert_eq!(ok.status, Status::Ok);
        assert!(ok.found.contains("before 6.6"), "{}", ok.found);
        assert_eq!(ok.advice, None);

        root.write(DISABLED_SYSCTL, "2");
        host.probe_io_uring = || anyhow::bail!("io_uring unavailable (EPERM): blocked");
        let blocked = check(&host, &reason());
        assert_eq!(blocked.status, Status::Differs);
        assert!(blocked.found.contains("kernel.io_uring_disabled=2"));
        assert!(blocked.found.contains("blocked"));
        assert!(blocked
            .advice
            .unwrap()
            .contains("sysctl -w kernel.io_uring_disabled=0"));
        assert!(blocked.changes.is_empty(), "never applied");
    }
}
