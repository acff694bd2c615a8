//! The module rules the `//!` docs state, checked on the source text, in
//! the manner of rust-analyzer's `tidy` tests: a forbidden import fails
//! here instead of waiting for a reviewer.
//!
//! The rules (each module's own `//!` doc says the same):
//! - `config` imports nothing of shoal: it is plain data at the bottom, and
//!   the settings types other layers obey (`LogConfig`, `GroupConfig`) live
//!   in it.
//! - `protocol` imports nothing of shoal: it knows bytes and Kafka's types.
//! - `group` imports nothing of shoal but `config` (its settings) and
//!   `protocol` (the framing of its records): no server, shard, log or
//!   metadata.
//! - `txn` imports nothing of shoal but `config` and `protocol`, as `group`.
//! - `log` never imports `server`, `shard` or `metadata`.
//! - `metadata` never imports `shard` or `server`.
//! - `quorum` (the metadata log's Raft storage and driver) never imports
//!   `shard` or `server`: whoever runs it hands it bytes and files.
//! - `replication` (the ISR, high watermark and fetch bookkeeping) imports
//!   nothing of shoal but `metadata` (the partition image it is built
//!   from): no shard, server, log or quorum; the shard drives it.
//! - `server` never opens a segment: no path through `log::segment`.
//! - `quota` (client quotas: rates, precedence, a shard's sensors)
//!   imports nothing of shoal but `config` (its windows) and `metadata`
//!   (the quotas of the image): the server and the shard drive it.
//! - `metrics` (each shard's counters) imports nothing of shoal: every
//!   layer may call its hooks.
//! - `logging` imports nothing of shoal but `config` (the log format).
//!
//! An import is any `crate::` path (in a `use` or inline, groups
//! `crate::{a, b::{c}}` included) and any `super::` path that climbs out of
//! its top-level module. Comments are skipped. Test code is exempt, since a
//! test may run an executor of `shard` to drive what it checks: an inline
//! `#[cfg(test)] mod x { ... }`, and the files of a `#[cfg(test)] mod x;`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// What one top-level module may import of the other top-level modules.
enum Allowed {
    /// Only these modules (its own always).
    Only(&'static [&'static str]),
    /// Anything but these paths (a module, or `module::child`).
    AllBut(&'static [&'static str]),
}

const RULES: &[(&str, Allowed)] = &[
    ("config", Allowed::Only(&[])),
    ("protocol", Allowed::Only(&[])),
    ("group", Allowed::Only(&["config", "protocol"])),
    ("txn", Allowed::Only(&["config", "protocol"])),
    ("log", Allowed::AllBut(&["server", "shard", "metadata"])),
    ("metadata", Allowed::AllBut(&["shard", "server"])),
    ("quorum", Allowed::AllBut(&["shard", "server"])),
    ("replication", Allowed::Only(&["metadata"])),
    ("server", Allowed::AllBut(&["log::segment"])),
    ("quota", Allowed::Only(&["config", "metadata"])),
    ("metrics", Allowed::Only(&[])),
    ("logging", Allowed::Only(&["config"])),
];

/// One source file, as the rules see it.
struct Source {
    path: PathBuf,
    /// The file's module path below the crate root (`["group", "classic"]`).
    module: Vec<String>,
    /// The text without comments and without test code.
    code: String,
}

#[test]
fn imports_follow_the_module_rules() {
    let sources = crate_sources();
    assert!(
        sources.iter().any(|source| source.module == ["config"]),
        "src/config.rs not found: the test reads the wrong tree"
    );
    let violations: Vec<String> = sources.iter().flat_map(violations).collect();
    assert!(
        violations.is_empty(),
        "imports that break the module rules (tests/architecture.rs):\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_checker_sees_every_form_of_import() {
    let module = vec!["group".to_string(), "classic".to_string()];
    let code = strip_comments(
        "use crate::{config::GroupConfig, shard::{messages, Shard}};\n\
         // use crate::server; (a comment)\n\
         fn f() { crate::log::now_ms(); super::super::metadata::x(); super::types::y(); }\n",
    );
    let paths: Vec<Vec<String>> = imported_paths(&module, &code);
    let tops: BTreeSet<String> = paths.iter().map(|path| path.join("::")).collect();
    assert_eq!(
        tops,
        BTreeSet::from(
            [
                "config::GroupConfig",
                "shard::messages",
                "shard::Shard",
                "log::now_ms",
                "metadata::x",
                "group::types",
            ]
            .map(String::from)
        )
    );
    let test_code = without_test_code(
        "fn a() { crate::config::x(); }\n#[cfg(test)]\npub(super) mod tests {\n    fn b() { let s = \"}\"; crate::shard::block_on(); }\n}\nfn c() {}\n",
    );
    assert!(!test_code.contains("crate::shard"), "{test_code}");
    assert!(test_code.contains("fn c()"), "{test_code}");
}

/// Every way `source` breaks the rule of its top-level module.
fn violations(source: &Source) -> Vec<String> {
    let Some(top) = source.module.first() else {
        return Vec::new();
    };
    let Some((_, allowed)) = RULES.iter().find(|(module, _)| module == top) else {
        return Vec::new();
    };
    imported_paths(&source.module, &source.code)
        .into_iter()
        .filter(|path| path[0] != *top)
        .filter(|path| match allowed {
            Allowed::Only(modules) => !modules.contains(&path[0].as_str()),
            Allowed::AllBut(forbidden) => forbidden.iter().any(|rule| {
                let rule: Vec<&str> = rule.split("::").collect();
                path.len() >= rule.len() && path.iter().zip(&rule).all(|(a, b)| a == b)
            }),
        })
        .map(|path| {
            format!(
                "{}: `{top}` imports `{}`",
                source.path.display(),
                path.join("::")
            )
        })
        .collect()
}

/// The first two segments of every path `code` (in the file of module
/// `module`) names outside its own file: `crate::` paths and `super::`
/// paths resolved to the crate root. Only paths that start with a
/// top-level module of the crate are kept, so `super::*` and `crate::Foo`
/// of a test module are not mistaken for modules.
fn imported_paths(module: &[String], code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let bytes = code.as_bytes();
    let mut at = 0;
    while at < code.len() {
        let rest = &code[at..];
        let preceded_by_ident = at > 0 && is_ident(bytes[at - 1]);
        if !preceded_by_ident && rest.starts_with("crate::") {
            let (found, used) = path_tree(&rest["crate::".len()..]);
            paths.extend(found);
            at += "crate::".len() + used.max(1);
        } else if !preceded_by_ident && rest.starts_with("super::") {
            let mut climbs = 0;
            let mut tail = rest;
            while let Some(next) = tail.strip_prefix("super::") {
                climbs += 1;
                tail = next;
            }
            let used = rest.len() - tail.len();
            // The file's own module is `module`; each `super` climbs one.
            let base = &module[..module.len().saturating_sub(climbs)];
            let (found, consumed) = path_tree(tail);
            for path in found {
                let mut full: Vec<String> = base.to_vec();
                full.extend(path);
                paths.push(full);
            }
            at += used + consumed.max(1);
        } else {
            at += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    paths
        .into_iter()
        .filter(|path| !path.is_empty() && TOP_LEVEL.with(|top| top.contains(&path[0])))
        .map(|mut path| {
            path.truncate(2);
            path
        })
        .collect()
}

thread_local! {
    /// The crate's top-level modules, from `src/lib.rs`.
    static TOP_LEVEL: BTreeSet<String> = top_level_modules();
}

fn top_level_modules() -> BTreeSet<String> {
    let lib = fs::read_to_string(src_dir().join("lib.rs")).expect("read src/lib.rs");
    let mut modules: BTreeSet<String> = lib
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let name = line
                .strip_prefix("pub mod ")
                .or_else(|| line.strip_prefix("mod "))?;
            Some(name.trim_end_matches(';').trim().to_string())
        })
        .collect();
    // The checks of the unit tests name these whatever lib.rs holds.
    modules.extend(["config", "group", "log", "metadata", "shard", "server"].map(String::from));
    modules
}

/// The paths of a `use` tree at the start of `text` (after `crate::` or
/// the last `super::`), each a list of segments, and the bytes read.
fn path_tree(text: &str) -> (Vec<Vec<String>>, usize) {
    let bytes = text.as_bytes();
    if text.starts_with('{') {
        let mut paths = Vec::new();
        let mut at = 1;
        loop {
            while at < bytes.len() && (bytes[at].is_ascii_whitespace() || bytes[at] == b',') {
                at += 1;
            }
            if at >= bytes.len() || bytes[at] == b'}' {
                return (paths, (at + 1).min(bytes.len()));
            }
            let (found, used) = path_tree(&text[at..]);
            paths.extend(found);
            if used == 0 {
                // Not a path (e.g. `*` or `self`): step over it.
                at += 1;
            }
            at += used;
        }
    }
    let ident_len = bytes.iter().take_while(|&&b| is_ident(b)).count();
    if ident_len == 0 {
        return (Vec::new(), 0);
    }
    let ident = text[..ident_len].to_string();
    let Some(after) = text[ident_len..].strip_prefix("::") else {
        return (vec![vec![ident]], ident_len);
    };
    let (children, used) = path_tree(after);
    let consumed = ident_len + 2 + used;
    if children.is_empty() {
        return (vec![vec![ident]], consumed);
    }
    let paths = children
        .into_iter()
        .map(|child| std::iter::once(ident.clone()).chain(child).collect())
        .collect();
    (paths, consumed)
}

fn is_ident(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every non-test `.rs` file under `src/` with its module path.
fn crate_sources() -> Vec<Source> {
    let mut files = Vec::new();
    collect_files(&src_dir(), &mut files);
    let texts: Vec<(PathBuf, String)> = files
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path).unwrap_or_else(|error| {
                panic!("read {}: {error}", path.display());
            });
            (path, text)
        })
        .collect();
    let test_files = test_only_files(&texts);
    texts
        .into_iter()
        .filter(|(path, _)| !test_files.iter().any(|test| path.starts_with(test)))
        .filter_map(|(path, text)| {
            let module = module_path(&path)?;
            let code = without_test_code(&strip_comments(&text));
            Some(Source { path, module, code })
        })
        .collect()
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

/// `src/group/classic/mod.rs` → `["group", "classic"]`; `src/config.rs` →
/// `["config"]`. The crate roots (`lib.rs`, `main.rs`) have none.
fn module_path(path: &Path) -> Option<Vec<String>> {
    let relative = path.strip_prefix(src_dir()).ok()?;
    let mut module: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    if module.last().is_some_and(|last| last == "mod") {
        module.pop();
    }
    if module.len() == 1 && (module[0] == "lib" || module[0] == "main") {
        return None;
    }
    Some(module)
}

/// The files (and directories) of modules declared `#[cfg(test)] mod x;`.
fn test_only_files(texts: &[(PathBuf, String)]) -> Vec<PathBuf> {
    let mut test_files = Vec::new();
    for (path, text) in texts {
        let dir = match path.file_name().and_then(|name| name.to_str()) {
            Some("mod.rs" | "lib.rs" | "main.rs") => path.parent().map(Path::to_path_buf),
            _ => Some(path.with_extension("")),
        };
        let Some(dir) = dir else {
            continue;
        };
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for pair in lines.windows(2) {
            if pair[0] != "#[cfg(test)]" {
                continue;
            }
            let declared = without_visibility(pair[1])
                .strip_prefix("mod ")
                .and_then(|rest| rest.strip_suffix(';'));
            if let Some(name) = declared {
                test_files.push(dir.join(format!("{name}.rs")));
                test_files.push(dir.join(name));
            }
        }
    }
    test_files
}

/// `text` without `//` comments (doc comments included); literals are
/// kept whole, so `"PLAINTEXT://"` stays code.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < text.len() {
        let rest = &text[at..];
        if let Some(len) = literal_len(rest) {
            out.push_str(&rest[..len]);
            at += len;
        } else if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            at += end;
        } else {
            let c = rest.chars().next().expect("not at the end");
            out.push(c);
            at += c.len_utf8();
        }
    }
    out
}

/// The length of the string or char literal at the start of `text`, if
/// one starts there (a lifetime `'a` is none).
fn literal_len(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    match bytes.first()? {
        b'"' => {
            let mut at = 1;
            while at < bytes.len() {
                match bytes[at] {
                    b'\\' => at += 2,
                    b'"' => return Some(at + 1),
                    _ => at += 1,
                }
            }
            Some(bytes.len())
        }
        b'\'' => {
            if bytes.get(1) == Some(&b'\\') {
                let end = text[2..].find('\'')?;
                return Some(2 + end + 1);
            }
            let c = text[1..].chars().next()?;
            let close = 1 + c.len_utf8();
            (bytes.get(close) == Some(&b'\'')).then_some(close + 1)
        }
        _ => None,
    }
}

/// `code` without its inline `#[cfg(test)] mod x { ... }` blocks.
fn without_test_code(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let header = without_visibility(after.trim_start());
        let is_inline_module = header.starts_with("mod ")
            && header
                .find(['{', ';'])
                .is_some_and(|end| header.as_bytes()[end] == b'{');
        if !is_inline_module {
            out.push_str("#[cfg(test)]");
            rest = after;
            continue;
        }
        let open = after.find('{').expect("checked above");
        rest = &after[open + block_len(&after[open..])..];
    }
    out.push_str(rest);
    out
}

/// `text` without a leading `pub`, `pub(crate)`, `pub(super)`, ...
fn without_visibility(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("pub") else {
        return text;
    };
    let rest = match rest.strip_prefix('(') {
        Some(inside) => inside.split_once(')').map_or(rest, |(_, after)| after),
        None => rest,
    };
    rest.trim_start()
}

/// Bytes of the `{ ... }` block at the start of `text`, through its `}`.
/// Braces in literals do not count.
fn block_len(text: &str) -> usize {
    let mut depth = 0usize;
    let mut at = 0;
    while at < text.len() {
        let rest = &text[at..];
        if let Some(len) = literal_len(rest) {
            at += len;
            continue;
        }
        let c = rest.chars().next().expect("not at the end");
        match c {
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return at + 1;
                }
            }
            _ => {}
        }
        at += c.len_utf8();
    }
    text.len()
}
