//! `/proc/sys` values (`vm.swappiness`, `net.core.somaxconn`, the socket
//! buffer limits), compared by the profile's rule. A sysctl missing from
//! this kernel or network namespace is unavailable, not an error.

use std::io::ErrorKind;

use super::profile::{Rule, Sysctl};
use super::{Change, Check, Host, Status};

pub(super) fn check(host: &Host, key: &str, setting: &Sysctl) -> Check {
    let want = setting.want.fields();
    let wanted = format!("{} {}", setting.rule, want.join(" "));
    let relative = format!("proc/sys/{}", key.replace('.', "/"));
    let found = match host.read(&relative) {
        Ok(found) => found,
        Err(error) => {
            let found = if error.kind() == ErrorKind::NotFound {
                "not in this kernel or network namespace".to_string()
            } else {
                format!("cannot read /{relative}: {error}")
            };
            return Check::new(key, Status::Unavailable, found, wanted, &setting.why);
        }
    };
    let fields: Vec<&str> = found.split_whitespace().collect();
    let shown = fields.join(" ");
    match target(&fields, &want, setting.rule) {
        Ok(None) => Check::new(key, Status::Ok, shown, wanted, &setting.why),
        Ok(Some(value)) => {
            let mut check = Check::new(key, Status::Differs, shown.clone(), wanted, &setting.why);
            check.changes.push(Change {
                path: host.path(&relative),
                value,
                previous: shown,
            });
            check
        }
        Err(problem) => {
            let mut check = Check::new(key, Status::Differs, shown, wanted, &setting.why);
            check.advice = Some(problem);
            check
        }
    }
}

/// The value to write so that `found` satisfies `want` under `rule`, or
/// `None` when it already does. Field-wise: a bound moves only the fields
/// outside it, so applying never lowers what someone raised.
fn target(found: &[&str], want: &[String], rule: Rule) -> Result<Option<String>, String> {
    if found.len() != want.len() {
        return Err(format!(
            "the kernel has {} field(s) here, the profile {}: set it by hand",
            found.len(),
            want.len()
        ));
    }
    let value: Vec<String> = match rule {
        Rule::Equal => want.to_vec(),
        Rule::AtLeast | Rule::AtMost => {
            let mut value = Vec::with_capacity(want.len());
            for (found, want) in found.iter().zip(want) {
                let parsed = (found.parse::<i64>(), want.parse::<i64>());
                let (Ok(found), Ok(want)) = parsed else {
                    return Err(format!("cannot compare {found:?} with {want:?} as numbers"));
                };
                let bounded = if rule == Rule::AtLeast {
                    found.max(want)
                } else {
                    found.min(want)
                };
                value.push(bounded.to_string());
            }
            value
        }
    };
    Ok((value.iter().map(String::as_str).ne(found.iter().copied())).then(|| value.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::fake::FakeRoot;
    use crate::tune::profile::SysctlValue;

    fn setting(want: SysctlValue, rule: Rule) -> Sysctl {
        Sysctl {
            want,
            rule,
            why: "because".into(),
        }
    }

    #[test]
    fn rules_compare_field_by_field() {
        let want = |text: &str| text.split(' ').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            target(&["60"], &want("1"), Rule::AtMost),
            Ok(Some("1".into()))
        );
        assert_eq!(target(&["0"], &want("1"), Rule::AtMost), Ok(None));
        assert_eq!(target(&["4096"], &want("1024"), Rule::AtLeast), Ok(None));
        assert_eq!(
            target(
                &["4096", "16384", "4194304"],
                &want("4096 65536 16777216"),
                Rule::AtLeast
            ),
            Ok(Some("4096 65536 16777216".into()))
        );
        assert_eq!(
            target(
                &["4096", "131072", "33554432"],
                &want("4096 87380 16777216"),
                Rule::AtLeast
            ),
            Ok(None)
        );
        assert_eq!(
            target(
                &["8192", "16384", "4194304"],
                &want("4096 65536 16777216"),
                Rule::AtLeast
            ),
            Ok(Some("8192 65536 16777216".into())),
            "a raised field stays raised"
        );
        assert_eq!(
            target(&["1"], &want("0"), Rule::Equal),
            Ok(Some("0".into()))
        );
        assert!(target(&["1", "2"], &want("1"), Rule::AtLeast).is_err());
    }

    #[test]
    fn reads_plans_and_reports_missing_ones() {
        let root = FakeRoot::new();
        root.write("proc/sys/net/ipv4/tcp_wmem", "4096\t16384\t4194304");
        let host = root.host();
        let wmem = setting(
            SysctlValue::Text("4096 65536 16777216".into()),
            Rule::AtLeast,
        );
        let check = check(&host, "net.ipv4.tcp_wmem", &wmem);
        assert_eq!(check.status, Status::Differs);
        assert_eq!(check.found, "4096 16384 4194304");
        assert_eq!(check.wanted, "at least 4096 65536 16777216");
        assert_eq!(
            check.changes,
            [Change {
                path: root.path("proc/sys/net/ipv4/tcp_wmem"),
                value: "4096 65536 16777216".into(),
                previous: "4096 16384 4194304".into(),
            }]
        );

        let missing = super::check(
            &host,
            "net.core.rmem_max",
            &setting(SysctlValue::Number(1), Rule::AtLeast),
        );
        assert_eq!(missing.status, Status::Unavailable);
        assert!(missing.changes.is_empty());
    }
}
