//! The interrupt affinity of the network cards' queues against the cores
//! the shards run on.
//!
//! A NIC's IRQs are found three ways, together: its PCI device's
//! `msi_irqs/` (for virtio, the PCI device above the `virtioN` device), and
//! the `/proc/interrupts` lines named after the interface (`eth0-TxRx-0`) or
//! its virtio device (`virtio2-input.0`). Virtio's `-config` interrupt
//! carries no traffic and is left alone. Virtual interfaces (loopback,
//! bridges, veth) have no IRQs of their own.
//!
//! What is wanted: each queue's IRQ pinned to one shard core, the IRQs dealt
//! round-robin over those cores, as Seastar's `perftune.py` does for
//! Redpanda's shards.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use super::profile::Reason;
use super::{format_cpu_list, parse_cpu_list, Change, Check, Host, Status};

const NET_DIR: &str = "sys/class/net";
const INTERRUPTS: &str = "proc/interrupts";
const NAME: &str = "irq_affinity";

/// One network card and its queue IRQs, ascending.
struct Nic {
    name: String,
    irqs: Vec<u32>,
}

pub(super) fn affinity(host: &Host, setting: &Reason) -> Check {
    let cores = &host.shard_cores;
    let wanted = format!(
        "each queue IRQ on one shard core, dealt round-robin over {}",
        format_cpu_list(cores)
    );
    let nics = nics(host);
    if nics.is_empty() || cores.is_empty() {
        return Check::new(
            NAME,
            Status::Unavailable,
            "no network card with IRQs of its own (loopback or virtual interfaces only, as in a container)"
                .to_string(),
            wanted,
            &setting.why,
        );
    }
    let mut changes = Vec::new();
    let mut found = Vec::new();
    let mut unreadable = Vec::new();
    let mut next_core = cores.iter().cycle();
    for nic in &nics {
        let mut irqs_by_cpus: BTreeMap<String, usize> = BTreeMap::new();
        for &irq in &nic.irqs {
            let relative = format!("proc/irq/{irq}/smp_affinity_list");
            let Some(core) = next_core.next() else { break };
            let Some(current) = host
                .read(&relative)
                .ok()
                .and_then(|text| parse_cpu_list(&text))
            else {
                unreadable.push(irq);
                continue;
            };
            *irqs_by_cpus.entry(format_cpu_list(&current)).or_default() += 1;
            if current != [*core] {
                changes.push(Change {
                    path: host.path(&relative),
                    value: core.to_string(),
                    previous: format_cpu_list(&current),
                });
            }
        }
        let groups: Vec<String> = irqs_by_cpus
            .iter()
            .map(|(cpus, count)| format!("{count} on {cpus}"))
            .collect();
        found.push(format!(
            "{}: {} IRQs ({})",
            nic.name,
            nic.irqs.len(),
            groups.join(", ")
        ));
    }
    let status = Status::of(changes.is_empty() && unreadable.is_empty());
    let mut check = Check::new(NAME, status, found.join("; "), wanted, &setting.why);
    check.changes = changes;
    let mut advice = Vec::new();
    if !unreadable.is_empty() {
        advice.push(format!(
            "cannot read the affinity of IRQ {:?} in /proc/irq",
            unreadable
        ));
    }
    if status == Status::Differs && irqbalance_running(host) {
        advice.push(
            "irqbalance is running and moves IRQs back: stop it (systemctl disable --now irqbalance) before applying"
                .to_string(),
        );
    }
    if !advice.is_empty() {
        check.advice = Some(advice.join("; "));
    }
    check
}

/// The host's network cards with IRQs, by interface name.
fn nics(host: &Host) -> Vec<Nic> {
    let interrupts = host
        .read(INTERRUPTS)
        .map(|text| parse_interrupts(&text))
        .unwrap_or_default();
    let mut names: Vec<String> = fs::read_dir(host.path(NET_DIR))
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|name| {
            let link = host.path(NET_DIR).join(&name);
            let interface = fs::canonicalize(&link).ok()?;
            if interface.to_string_lossy().contains("/devices/virtual/") {
                return None;
            }
            let device = fs::canonicalize(link.join("device")).ok()?;
            let irqs = nic_irqs(&name, &device, &interrupts);
            (!irqs.is_empty()).then_some(Nic { name, irqs })
        })
        .collect()
}

fn nic_irqs(name: &str, device: &Path, interrupts: &BTreeMap<u32, String>) -> Vec<u32> {
    let device_name = device
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let virtio = device_name.starts_with("virtio");
    let mut irqs: BTreeSet<u32> = msi_irqs(device);
    if virtio {
        if let Some(pci) = device.parent() {
            irqs.extend(msi_irqs(pci));
        }
    }
    for (&irq, action) in interrupts {
        let by_interface = action.split(['-', '@', ':']).any(|part| part == name);
        let by_virtio = virtio && action.split('-').next() == Some(device_name.as_str());
        if by_interface || by_virtio {
            irqs.insert(irq);
        }
    }
    irqs.retain(|irq| {
        interrupts
            .get(irq)
            .is_none_or(|action| !action.ends_with("-config"))
    });
    irqs.into_iter().collect()
}

/// The IRQ numbers listed in a device's `msi_irqs/` directory.
fn msi_irqs(device: &Path) -> BTreeSet<u32> {
    fs::read_dir(device.join("msi_irqs"))
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// `/proc/interrupts`' numbered lines: IRQ number → the action's name
/// (the last column).
fn parse_interrupts(text: &str) -> BTreeMap<u32, String> {
    text.lines()
        .filter_map(|line| {
            let (number, rest) = line.trim_start().split_once(':')?;
            let irq = number.parse().ok()?;
            let action = rest.split_whitespace().last()?;
            Some((irq, action.to_string()))
        })
        .collect()
}

/// Whether a process named `irqbalance` runs.
fn irqbalance_running(host: &Host) -> bool {
    fs::read_dir(host.path("proc"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .any(|entry| {
            fs::read_to_string(entry.path().join("comm"))
                .is_ok_and(|comm| comm.trim() == "irqbalance")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::fake::FakeRoot;

    const INTERRUPTS_TEXT: &str = "           CPU0       CPU1
 26:          0         14  IO-APIC   4-edge      ttyS0
 35:          0          1 PCI-MSIX-0000:00:02.0   0-edge      virtio1-config
 36:          0    8059850 PCI-MSIX-0000:00:02.0   1-edge      virtio1-req.0
 37:          0          0 PCI-MSIX-0000:00:03.0   0-edge      virtio2-config
 38:          0       5497 PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0
 39:       4060          0 PCI-MSIX-0000:00:03.0   2-edge      virtio2-output.0
 50:          0          0 PCI-MSI-0000:00:04.0   0-edge      eth1-TxRx-0
NMI:          0          0   Non-maskable interrupts
";

    fn setting() -> Reason {
        Reason {
            why: "no bouncing".into(),
        }
    }

    /// eth0 is virtio (IRQs found through the PCI device above it and by
    /// the virtio name), eth1 a plain NIC named in /proc/interrupts, lo
    /// virtual; the block device's virtio1 IRQs are not a NIC's.
    fn machine() -> FakeRoot {
        let root = FakeRoot::new();
        root.write("proc/interrupts", INTERRUPTS_TEXT);
        let pci = "sys/devices/pci0000:00/0000:00:03.0";
        root.write(&format!("{pci}/virtio2/net/eth0/mtu"), "1500");
        for irq in [37, 38, 39] {
            root.write(&format!("{pci}/msi_irqs/{irq}"), "msix");
        }
        root.symlink(
            "sys/class/net/eth0",
            "../../devices/pci0000:00/0000:00:03.0/virtio2/net/eth0",
        );
        root.symlink(
            &format!("{pci}/virtio2/net/eth0/device"),
            "../../../virtio2",
        );
        let eth1 = "sys/devices/pci0000:00/0000:00:04.0";
        root.write(&format!("{eth1}/net/eth1/mtu"), "1500");
        root.symlink(
            "sys/class/net/eth1",
            "../../devices/pci0000:00/0000:00:04.0/net/eth1",
        );
        root.symlink(&format!("{eth1}/net/eth1/device"), "../../../0000:00:04.0");
        root.write("sys/devices/virtual/net/lo/mtu", "65536");
        root.symlink("sys/class/net/lo", "../../devices/virtual/net/lo");
        for irq in [26, 35, 36, 37, 38, 39, 50] {
            root.write(&format!("proc/irq/{irq}/smp_affinity_list"), "0-1");
        }
        root
    }

    #[test]
    fn queue_irqs_are_dealt_over_the_shard_cores() {
        let root = machine();
        let check = affinity(&root.host(), &setting());
        assert_eq!(check.status, Status::Differs);
        assert_eq!(
            check.found,
            "eth0: 2 IRQs (2 on 0-1); eth1: 1 IRQs (1 on 0-1)"
        );
        let planned: Vec<(String, String)> = check
            .changes
            .iter()
            .map(|c| {
                (
                    c.path
                        .strip_prefix(root.path(""))
                        .unwrap()
                        .display()
                        .to_string(),
                    c.value.clone(),
                )
            })
            .collect();
        assert_eq!(
            planned,
            [
                ("proc/irq/38/smp_affinity_list".to_string(), "0".to_string()),
                ("proc/irq/39/smp_affinity_list".to_string(), "1".to_string()),
                ("proc/irq/50/smp_affinity_list".to_string(), "0".to_string()),
            ]
        );
        assert_eq!(check.advice, None);
    }

    #[test]
    fn pinned_irqs_match_and_irqbalance_is_named_when_they_do_not() {
        let root = machine();
        for (irq, core) in [(38, "0"), (39, "1"), (50, "0")] {
            root.write(&format!("proc/irq/{irq}/smp_affinity_list"), core);
        }
        let check = affinity(&root.host(), &setting());
        assert_eq!(check.status, Status::Ok, "{check:?}");
        assert!(check.changes.is_empty());

        root.write("proc/irq/50/smp_affinity_list", "1");
        root.write("proc/4242/comm", "irqbalance");
        let check = affinity(&root.host(), &setting());
        assert_eq!(check.status, Status::Differs);
        assert_eq!(check.changes.len(), 1);
        assert!(check.advice.unwrap().contains("irqbalance is running"));
    }

    #[test]
    fn virtual_interfaces_only_is_unavailable() {
        let root = FakeRoot::new();
        root.write("proc/interrupts", INTERRUPTS_TEXT);
        root.write("sys/devices/virtual/net/lo/mtu", "65536");
        root.symlink("sys/class/net/lo", "../../devices/virtual/net/lo");
        let check = affinity(&root.host(), &setting());
        assert_eq!(check.status, Status::Unavailable);
    }
}
