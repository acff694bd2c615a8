//! The data directory's disk: its I/O scheduler and the mount options of
//! its filesystem.
//!
//! The block device is found from the directory's `st_dev` through
//! `/sys/dev/block/MAJ:MIN` (or, for filesystems with anonymous device
//! numbers such as btrfs, from the mount's source in `/proc/self/mountinfo`).
//! A partition's scheduler is its disk's; a device-mapper or md device is
//! followed through `slaves/` to the disks under it. A directory with no
//! block device behind it (tmpfs, an overlay) is unavailable. The data
//! directory need not exist yet: its nearest existing parent is checked.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::profile::{AllOf, DiskScheduler};
use super::{first_offered, parse_choice, read_trimmed, Change, Check, Host, Status};

/// How many layers of stacked block devices (dm over md over disks) are
/// followed down to the disks.
const DEVICE_STACK_DEPTH_MAX: usize = 4;
const MOUNTINFO: &str = "proc/self/mountinfo";

/// The mount a path lives on, from `/proc/self/mountinfo`.
#[derive(Debug, PartialEq)]
struct Mount {
    point: PathBuf,
    options: Vec<String>,
    fstype: String,
    source: String,
}

pub(super) fn scheduler(host: &Host, setting: &DiskScheduler) -> Check {
    const NAME: &str = "disk_scheduler";
    let wanted = format!(
        "{} (spinning disks: {})",
        setting.want.join(" or "),
        setting.want_rotational.join(" or ")
    );
    let disks = match data_dir(host).and_then(|(dir, dev)| disks_under(host, &dir, dev)) {
        Ok(disks) => disks,
        Err(reason) => return Check::new(NAME, Status::Unavailable, reason, wanted, &setting.why),
    };
    let mut found = Vec::new();
    let mut changes = Vec::new();
    let mut advice = Vec::new();
    for disk in &disks {
        let name = disk
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file = disk.join("queue/scheduler");
        let Some((current, offered)) = read_trimmed(&file).ok().and_then(|t| parse_choice(&t))
        else {
            continue;
        };
        let rotational = read_trimmed(&disk.join("queue/rotational")).is_ok_and(|r| r == "1");
        let want = if rotational {
            &setting.want_rotational
        } else {
            &setting.want
        };
        let kind = if rotational {
            "spinning"
        } else {
            "solid state"
        };
        found.push(format!("{name}: {current} ({kind})"));
        if want.contains(&current) {
            continue;
        }
        match first_offered(want, &offered) {
            Some(target) => changes.push(Change {
                path: file,
                value: target.clone(),
                previous: current,
            }),
            None => advice.push(format!(
                "{name} offers only {} (modprobe the wanted scheduler's module)",
                offered.join(", ")
            )),
        }
    }
    if found.is_empty() {
        let names: Vec<String> = disks.iter().map(|d| d.display().to_string()).collect();
        return Check::new(
            NAME,
            Status::Unavailable,
            format!("no queue/scheduler under {}", names.join(", ")),
            wanted,
            &setting.why,
        );
    }
    let status = Status::of(changes.is_empty() && advice.is_empty());
    let mut check = Check::new(NAME, status, found.join(", "), wanted, &setting.why);
    check.changes = changes;
    check.advice = (!advice.is_empty()).then(|| advice.join("; "));
    check
}

pub(super) fn mount_options(host: &Host, setting: &AllOf) -> Check {
    const NAME: &str = "mount_options";
    let wanted = setting.want.join(",");
    let mount = data_dir(host).and_then(|(dir, _)| {
        mount_of(host, &dir).ok_or_else(|| format!("no mount of {} in /{MOUNTINFO}", dir.display()))
    });
    let mount = match mount {
        Ok(mount) => mount,
        Err(reason) => return Check::new(NAME, Status::Unavailable, reason, wanted, &setting.why),
    };
    let point = mount.point.display();
    let found = format!(
        "{} on {point} ({}): {}",
        mount.fstype,
        mount.source,
        mount.options.join(",")
    );
    let missing: Vec<&str> = setting
        .want
        .iter()
        .filter(|want| !mount.options.contains(want))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return Check::new(NAME, Status::Ok, found, wanted, &setting.why);
    }
    let mut check = Check::new(NAME, Status::Differs, found, wanted, &setting.why);
    let missing = missing.join(",");
    check.advice = Some(format!(
        "not applied (remounting under a running broker is the administrator's call): \
         `mount -o remount,{missing} {point}` now, and add {missing} to {point}'s options in /etc/fstab to keep it"
    ));
    check
}

/// The data directory, or its nearest existing parent, made absolute, and
/// its device number.
fn data_dir(host: &Host) -> Result<(PathBuf, u64), String> {
    let absolute = std::path::absolute(&host.data_dir)
        .map_err(|error| format!("cannot resolve {}: {error}", host.data_dir.display()))?;
    let existing = absolute
        .ancestors()
        .find(|dir| dir.exists())
        .ok_or_else(|| format!("no part of {} exists", absolute.display()))?;
    let dir = fs::canonicalize(existing)
        .map_err(|error| format!("cannot resolve {}: {error}", existing.display()))?;
    let dev = fs::metadata(&dir)
        .map_err(|error| format!("cannot stat {}: {error}", dir.display()))?
        .dev();
    Ok((dir, dev))
}

/// The disks (sysfs device directories) holding `dir`, whose `st_dev` is
/// `dev`.
fn disks_under(host: &Host, dir: &Path, dev: u64) -> Result<Vec<PathBuf>, String> {
    let number = format!("{}:{}", libc::major(dev), libc::minor(dev));
    let device = fs::canonicalize(host.path(&format!("sys/dev/block/{number}")))
        .or_else(|_| {
            let mount = mount_of(host, dir).ok_or(())?;
            let name = mount.source.strip_prefix("/dev/").ok_or(())?;
            fs::canonicalize(host.path("sys/class/block").join(name)).map_err(|_| ())
        })
        .map_err(|()| {
            let what = mount_of(host, dir)
                .map(|mount| format!("{} on {}", mount.fstype, mount.source))
                .unwrap_or_else(|| format!("device {number}"));
            format!(
                "no block device behind {} ({what}); the disk underneath is the host's to tune",
                dir.display()
            )
        })?;
    let mut disks = Vec::new();
    collect_disks(device, 0, &mut disks);
    Ok(disks)
}

/// Walks from a block device down to its disks: a partition to its parent,
/// a stacked device through `slaves/`.
fn collect_disks(device: PathBuf, depth: usize, disks: &mut Vec<PathBuf>) {
    let device = match device.parent() {
        Some(parent) if device.join("partition").exists() => parent.to_path_buf(),
        _ => device,
    };
    let mut slaves: Vec<PathBuf> = fs::read_dir(device.join("slaves"))
        .into_iter()
        .flatten()
        .filter_map(|entry| fs::canonicalize(entry.ok()?.path()).ok())
        .collect();
    slaves.sort();
    if slaves.is_empty() || depth >= DEVICE_STACK_DEPTH_MAX {
        if !disks.contains(&device) {
            disks.push(device);
        }
        return;
    }
    for slave in slaves {
        collect_disks(slave, depth + 1, disks);
    }
}

/// The mount `dir` lives on: the longest mount point above it, the later
/// of two on the same point (it is mounted over the first).
fn mount_of(host: &Host, dir: &Path) -> Option<Mount> {
    let text = host.read(MOUNTINFO).ok()?;
    let mut best: Option<Mount> = None;
    for mount in text.lines().filter_map(parse_mountinfo_line) {
        let longer = best
            .as_ref()
            .is_none_or(|best| mount.point.as_os_str().len() >= best.point.as_os_str().len());
        if dir.starts_with(&mount.point) && longer {
            best = Some(mount);
        }
    }
    best
}

/// One line of mountinfo: `id parent maj:min root point options
/// [optional...] - fstype source super_options`.
fn parse_mountinfo_line(line: &str) -> Option<Mount> {
    let (before, after) = line.split_once(" - ")?;
    let fields: Vec<&str> = before.split(' ').collect();
    let mut after = after.split(' ');
    Some(Mount {
        point: PathBuf::from(unescape(fields.get(4)?)),
        options: fields.get(5)?.split(',').map(str::to_string).collect(),
        fstype: after.next()?.to_string(),
        source: unescape(after.next()?),
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::fake::FakeRoot;

    fn scheduler_setting() -> DiskScheduler {
        DiskScheduler {
            want: vec!["none".into(), "mq-deadline".into()],
            want_rotational: vec!["mq-deadline".into()],
            why: "fewer layers".into(),
        }
    }

    fn noatime() -> AllOf {
        AllOf {
            want: vec!["noatime".into()],
            why: "no writes on reads".into(),
        }
    }

    /// `sys/dev/block/MAJ:MIN` for the fake data directory's real device.
    fn device_number(root: &FakeRoot) -> String {
        let dev = fs::metadata(root.path("data")).unwrap().dev();
        format!("{}:{}", libc::major(dev), libc::minor(dev))
    }

    #[test]
    fn a_partition_is_followed_to_its_disk() {
        let root = FakeRoot::new();
        let disk = "sys/devices/pci0000:00/0000:00:05.0/nvme/nvme0/nvme0n1";
        root.write(
            &format!("{disk}/queue/scheduler"),
            "none [mq-deadline] kyber bfq",
        );
        root.write(&format!("{disk}/queue/rotational"), "0");
        root.write(&format!("{disk}/nvme0n1p2/partition"), "2");
        root.symlink(
            &format!("sys/dev/block/{}", device_number(&root)),
            "../../devices/pci0000:00/0000:00:05.0/nvme/nvme0/nvme0n1/nvme0n1p2",
        );
        let check = scheduler(&root.host(), &scheduler_setting());
        assert_eq!(check.status, Status::Ok, "{check:?}");
        assert_eq!(check.found, "nvme0n1: mq-deadline (solid state)");

        root.write(&format!("{disk}/queue/rotational"), "1");
        root.write(
            &format!("{disk}/queue/scheduler"),
            "[none] mq-deadline kyber bfq",
        );
        let spinning = scheduler(&root.host(), &scheduler_setting());
        assert_eq!(spinning.status, Status::Differs);
        assert_eq!(
            spinning.changes,
            [Change {
                path: root.path(&format!("{disk}/queue/scheduler")),
                value: "mq-deadline".into(),
                previous: "none".into(),
            }]
        );
    }

    #[test]
    fn device_mapper_is_followed_to_the_disks_under_it() {
        let root = FakeRoot::new();
        for disk in ["sda", "sdb"] {
            let dir = format!("sys/devices/pci0000:00/ata/{disk}");
            root.write(&format!("{dir}/queue/scheduler"), "[bfq] mq-deadline none");
            root.write(&format!("{dir}/queue/rotational"), "0");
            root.write(&format!("{dir}/{disk}1/partition"), "1");
        }
        root.write("sys/devices/virtual/block/dm-0/queue/scheduler", "none");
        root.symlink(
            "sys/devices/virtual/block/dm-0/slaves/sda1",
            "../../../../pci0000:00/ata/sda/sda1",
        );
        root.symlink(
            "sys/devices/virtual/block/dm-0/slaves/sdb1",
            "../../../../pci0000:00/ata/sdb/sdb1",
        );
        root.symlink(
            &format!("sys/dev/block/{}", device_number(&root)),
            "../../devices/virtual/block/dm-0",
        );
        let check = scheduler(&root.host(), &scheduler_setting());
        assert_eq!(
            check.found,
            "sda: bfq (solid state), sdb: bfq (solid state)"
        );
        assert_eq!(check.changes.len(), 2);
        assert!(check.changes.iter().all(|c| c.value == "none"));
    }

    #[test]
    fn no_block_device_is_unavailable() {
        let root = FakeRoot::new();
        root.write(
            MOUNTINFO,
            "22 1 0:45 / / rw,relatime - overlay overlay rw,lowerdir=/x",
        );
        let check = scheduler(&root.host(), &scheduler_setting());
        assert_eq!(check.status, Status::Unavailable);
        assert!(
            check.found.contains("overlay on overlay"),
            "{}",
            check.found
        );
    }

    #[test]
    fn mount_options_of_the_longest_mount_point() {
        let root = FakeRoot::new();
        let data = root.path("data");
        let escaped = data.display().to_string().replace(' ', "\\040");
        root.write(
            MOUNTINFO,
            &format!(
                "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
                 1 0 254:0 / / rw,relatime,discard - ext4 /dev/vda rw\n\
                 40 1 259:2 / {escaped} rw,noatime - xfs /dev/nvme0n1p2 rw,attr2\n"
            ),
        );
        let host = root.host();
        let check = mount_options(&host, &noatime());
        assert_eq!(check.status, Status::Ok, "{check:?}");
        assert!(check.found.starts_with("xfs on "), "{}", check.found);

        root.write(
            MOUNTINFO,
            "1 0 254:0 / / rw,relatime,discard - ext4 /dev/vda rw",
        );
        let check = mount_options(&host, &noatime());
        assert_eq!(check.status, Status::Differs);
        assert_eq!(check.found, "ext4 on / (/dev/vda): rw,relatime,discard");
        assert!(check.changes.is_empty(), "mount options are advice only");
        assert!(check.advice.unwrap().contains("mount -o remount,noatime /"));
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape("/mnt/my\\040disk"), "/mnt/my disk");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("trailing\\04"), "trailing\\04");
    }
}
