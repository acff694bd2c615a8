//! What `shoal tune` prints: a table of the checks followed by each
//! setting's reason, the list of changes for `--apply [--dry-run]`, or the
//! same as one JSON object.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::json;

use super::{format_cpu_list, Applied, Change, Check, Status};

/// Width of the STATUS column: "unavailable".
const STATUS_WIDTH: usize = 11;
/// Between the table's columns.
const COLUMN_GAP: &str = "  ";
/// Width of the FOUND column; longer findings wrap inside it.
const FOUND_WIDTH: usize = 46;
/// Width of the WANTED column.
const WANTED_WIDTH: usize = 34;
/// Width of the reasons and advice under the table.
const TEXT_WIDTH: usize = 96;

/// What the run was about, printed above everything else.
#[derive(Serialize)]
pub struct Context {
    pub profile: String,
    pub description: String,
    pub shards: usize,
    pub shard_cores: Vec<usize>,
    pub data_dir: PathBuf,
}

impl Context {
    fn heading(&self) -> String {
        format!(
            "profile {}: {}\n{} shard(s) on cores {}, data directory {}\n",
            self.profile,
            self.description.trim(),
            self.shards,
            format_cpu_list(&self.shard_cores),
            self.data_dir.display()
        )
    }
}

/// Checks differing from the profile.
pub fn differing(checks: &[Check]) -> usize {
    checks
        .iter()
        .filter(|c| c.status == Status::Differs)
        .count()
}

pub fn check_text(context: &Context, checks: &[Check]) -> String {
    let name_width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut out = context.heading();
    out.push('\n');
    let header = [
        ("SETTING", name_width),
        ("STATUS", STATUS_WIDTH),
        ("FOUND", FOUND_WIDTH),
    ];
    for (title, width) in header {
        out.push_str(&format!("{title:<width$}{COLUMN_GAP}"));
    }
    out.push_str("WANTED\n");
    for check in checks {
        let found = wrap(&check.found, FOUND_WIDTH);
        let wanted = wrap(&check.wanted, WANTED_WIDTH);
        for line in 0..found.len().max(wanted.len()) {
            let (name, status) = if line == 0 {
                (check.name.as_str(), status_label(check.status))
            } else {
                ("", "")
            };
            let found = found.get(line).map_or("", String::as_str);
            let wanted = wanted.get(line).map_or("", String::as_str);
            let row = format!(
                "{name:<name_width$}{COLUMN_GAP}{status:<STATUS_WIDTH$}{COLUMN_GAP}{found:<FOUND_WIDTH$}{COLUMN_GAP}{wanted}"
            );
            out.push_str(row.trim_end());
            out.push('\n');
        }
    }
    out.push_str("\nWhy\n");
    for check in checks {
        push_note(&mut out, &check.name, &check.why);
    }
    push_advice(&mut out, checks, "Advice (what --apply leaves to you)");
    let differing = differing(checks);
    out.push('\n');
    out.push_str(&if differing == 0 {
        "Every available setting matches the profile.\n".to_string()
    } else {
        format!(
            "{differing} setting(s) differ. `shoal tune --apply --dry-run` lists what --apply would change.\n"
        )
    });
    out
}

pub fn check_json(context: &Context, checks: &[Check]) -> serde_json::Value {
    json!({
        "context": context,
        "checks": checks,
        "differs": differing(checks),
    })
}

/// The changes `--apply` would make (`applied` is `None`) or made.
pub fn apply_text(context: &Context, checks: &[Check], applied: Option<&[Applied]>) -> String {
    let mut out = context.heading();
    out.push('\n');
    let lines: Vec<(&str, &Change, String)> = match applied {
        Some(applied) => applied
            .iter()
            .map(|applied| {
                let result = match &applied.error {
                    None => "  ok".to_string(),
                    Some(error) => format!("  FAILED: {error}"),
                };
                (applied.setting.as_str(), &applied.change, result)
            })
            .collect(),
        None => checks
            .iter()
            .flat_map(|check| {
                check
                    .changes
                    .iter()
                    .map(|change| (check.name.as_str(), change, String::new()))
            })
            .collect(),
    };
    if lines.is_empty() {
        out.push_str("Nothing to change: every setting --apply may change matches the profile.\n");
    } else {
        out.push_str(if applied.is_some() {
            "Changes made:\n"
        } else {
            "Changes --apply would make (dry run, nothing written):\n"
        });
        for (setting, change, result) in lines {
            out.push_str(&format!(
                "  {setting}: write {:?} to {} (was {:?}){result}\n",
                change.value,
                change.path.display(),
                change.previous
            ));
        }
        out.push_str("These last until the next boot; tuning/README.md says how to keep them.\n");
    }
    push_advice(&mut out, checks, "Advice, not applied:");
    out
}

pub fn apply_json(
    context: &Context,
    checks: &[Check],
    applied: Option<&[Applied]>,
) -> serde_json::Value {
    let changes = match applied {
        Some(applied) => json!(applied),
        None => json!(checks
            .iter()
            .flat_map(|check| check.changes.iter().map(|change| {
                json!({"setting": check.name, "path": change.path, "value": change.value, "previous": change.previous})
            }))
            .collect::<Vec<_>>()),
    };
    let advice: Vec<serde_json::Value> = checks
        .iter()
        .filter_map(|check| Some(json!({"setting": check.name, "advice": check.advice.as_ref()?})))
        .collect();
    json!({
        "context": context,
        "dry_run": applied.is_none(),
        "changes": changes,
        "advice": advice,
    })
}

fn status_label(status: Status) -> &'static str {
    match status {
        Status::Ok => "ok",
        Status::Differs => "DIFFERS",
        Status::Unavailable => "unavailable",
    }
}

/// A titled list of every check's advice, if any has some.
fn push_advice(out: &mut String, checks: &[Check], title: &str) {
    let advised: Vec<(&str, &str)> = checks
        .iter()
        .filter_map(|check| Some((check.name.as_str(), check.advice.as_deref()?)))
        .collect();
    if advised.is_empty() {
        return;
    }
    out.push_str(&format!("\n{title}\n"));
    for (name, advice) in advised {
        push_note(out, name, advice);
    }
}

/// `  name: text`, wrapped and indented under the name.
fn push_note(out: &mut String, name: &str, text: &str) {
    out.push_str(&format!("  {name}:\n"));
    for line in wrap(text, TEXT_WIDTH) {
        out.push_str(&format!("      {line}\n"));
    }
}

/// Splits `text` into lines of at most `width` characters at spaces; a
/// word longer than `width` is cut.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        while word.len() > width {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            lines.push(word.drain(..width).collect());
        }
        let word: String = word.into_iter().collect();
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_words_and_width() {
        assert_eq!(wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
        assert_eq!(wrap("abcdefgh", 3), ["abc", "def", "gh"]);
        assert_eq!(wrap("", 5), [""]);
    }

    #[test]
    fn the_table_shows_found_wanted_and_why() {
        let context = Context {
            profile: "throughput".into(),
            description: "records per second".into(),
            shards: 2,
            shard_cores: vec![0, 1],
            data_dir: PathBuf::from("/data"),
        };
        let mut check = Check::new(
            "vm.swappiness",
            Status::Differs,
            "60".into(),
            "at most 1".into(),
            "keep the broker in memory",
        );
        check.advice = Some("think".into());
        let text = check_text(&context, &[check]);
        assert!(text.contains("2 shard(s) on cores 0-1"), "{text}");
        let row = text
            .lines()
            .find(|l| l.starts_with("vm.swappiness"))
            .unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells, ["vm.swappiness", "DIFFERS", "60", "at", "most", "1"]);
        assert!(text.contains("      keep the broker in memory\n"));
        assert!(text.contains("1 setting(s) differ"));
        assert!(text.contains("Advice"));
    }
}
