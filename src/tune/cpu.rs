//! The CPU frequency governor of every CPU
//! (`/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor`). Most VMs have
//! no cpufreq at all: the hypervisor owns the clock, and that is reported
//! as unavailable.

use std::collections::BTreeMap;
use std::fs;

use super::profile::OneOf;
use super::{first_offered, format_cpu_list, Change, Check, Host, Status};

const CPU_DIR: &str = "sys/devices/system/cpu";
const NAME: &str = "cpu_governor";

pub(super) fn governor(host: &Host, setting: &OneOf) -> Check {
    let wanted = setting.want.join(" or ");
    let mut cpus_by_governor: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut changes = Vec::new();
    let mut not_offered = Vec::new();
    for cpu in cpus(host) {
        let dir = format!("{CPU_DIR}/cpu{cpu}/cpufreq");
        let Ok(current) = host.read(&format!("{dir}/scaling_governor")) else {
            continue;
        };
        if !setting.want.contains(&current) {
            let offered: Vec<String> = host
                .read(&format!("{dir}/scaling_available_governors"))
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect();
            match first_offered(&setting.want, &offered) {
                Some(target) => changes.push(Change {
                    path: host.path(&format!("{dir}/scaling_governor")),
                    value: target.clone(),
                    previous: current.clone(),
                }),
                None => not_offered.push(cpu),
            }
        }
        cpus_by_governor.entry(current).or_default().push(cpu);
    }
    if cpus_by_governor.is_empty() {
        return Check::new(
            NAME,
            Status::Unavailable,
            "no cpufreq: a VM, or a host whose firmware sets the clock".to_string(),
            wanted,
            &setting.why,
        );
    }
    let found = cpus_by_governor
        .iter()
        .map(|(governor, cpus)| format!("{governor} on {}", format_cpu_list(cpus)))
        .collect::<Vec<_>>()
        .join(", ");
    let status = Status::of(changes.is_empty() && not_offered.is_empty());
    let mut check = Check::new(NAME, status, found, wanted.clone(), &setting.why);
    check.changes = changes;
    if !not_offered.is_empty() {
        check.advice = Some(format!(
            "the cpufreq driver of cpu {} offers none of {wanted} (see scaling_available_governors); \
             the firmware's power profile (BIOS: \"maximum performance\") is the other lever",
            format_cpu_list(&not_offered)
        ));
    }
    check
}

/// Every `cpuN` directory's N, ascending.
fn cpus(host: &Host) -> Vec<usize> {
    let mut cpus: Vec<usize> = fs::read_dir(host.path(CPU_DIR))
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            entry
                .ok()?
                .file_name()
                .to_str()?
                .strip_prefix("cpu")?
                .parse()
                .ok()
        })
        .collect();
    cpus.sort_unstable();
    cpus
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::fake::FakeRoot;

    fn setting() -> OneOf {
        OneOf {
            want: vec!["performance".into()],
            why: "steady clocks".into(),
        }
    }

    #[test]
    fn no_cpufreq_is_unavailable() {
        let root = FakeRoot::new();
        root.write("sys/devices/system/cpu/cpu0/topology/core_id", "0");
        let check = governor(&root.host(), &setting());
        assert_eq!(check.status, Status::Unavailable);
        assert!(check.changes.is_empty());
        assert_eq!(check.why, "steady clocks");
    }

    #[test]
    fn differing_cpus_get_the_wanted_governor() {
        let root = FakeRoot::new();
        let offered = "performance powersave";
        for (cpu, governor) in [(0, "powersave"), (1, "performance"), (2, "powersave")] {
            let dir = format!("sys/devices/system/cpu/cpu{cpu}/cpufreq");
            root.write(&format!("{dir}/scaling_governor"), governor);
            root.write(&format!("{dir}/scaling_available_governors"), offered);
        }
        let check = governor(&root.host(), &setting());
        assert_eq!(check.status, Status::Differs);
        assert_eq!(check.found, "performance on 1, powersave on 0,2");
        let paths: Vec<_> = check.changes.iter().map(|c| c.path.clone()).collect();
        assert_eq!(
            paths,
            [0, 2].map(|cpu| root.path(&format!(
                "sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor"
            )))
        );
        assert!(check.changes.iter().all(|c| c.value == "performance"));
    }

    #[test]
    fn a_governor_the_driver_lacks_is_advice() {
        let root = FakeRoot::new();
        let dir = "sys/devices/system/cpu/cpu0/cpufreq";
        root.write(&format!("{dir}/scaling_governor"), "schedutil");
        root.write(&format!("{dir}/scaling_available_governors"), "schedutil");
        let check = governor(&root.host(), &setting());
        assert_eq!(check.status, Status::Differs);
        assert!(check.changes.is_empty());
        assert!(check.advice.unwrap().contains("offers none of performance"));
    }
}
