//! The process's logger: env_logger's filter (`RUST_LOG`, or the
//! command's default level) decides what is written, unless a level set
//! at runtime for a module (`set_level`, the admin listener's
//! `PUT /v1/log/level`) says otherwise; each line is written whole to
//! stderr as text, key=value (logfmt) or JSON (`log.format`).
//!
//! Invariant: no lock of shoal's own. The format is an atomic; each
//! runtime level lives in one of `OVERRIDES_MAX` slots, each a module name
//! set once (`OnceLock`) and a level in an atomic, so that a log call on a
//! shard reads atomics only, and the slots bound what runtime changes
//! can hold.

use std::io::Write;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{LevelFilter, Log, Metadata, Record};

use crate::config::LogFormat;

/// Modules that may have a level set at runtime: far more than an
/// operator sets while chasing one problem.
pub const OVERRIDES_MAX: usize = 32;
/// The longest module name a runtime level takes (`shoal::server::...`).
const MODULE_NAME_BYTES_MAX: usize = 128;
/// A slot whose level was reset: its module follows the base filter.
const NO_LEVEL: usize = usize::MAX;

static FORMAT: AtomicU8 = AtomicU8::new(FORMAT_TEXT);
const FORMAT_TEXT: u8 = 0;
const FORMAT_KEY_VALUE: u8 = 1;
const FORMAT_JSON: u8 = 2;
/// The base filter's most verbose level, as `LevelFilter as usize`.
static BASE_MAX: AtomicUsize = AtomicUsize::new(LevelFilter::Info as usize);

struct Override {
    module: String,
    level: AtomicUsize,
}

static OVERRIDES: [OnceLock<Override>; OVERRIDES_MAX] = [const { OnceLock::new() }; OVERRIDES_MAX];

struct Logger {
    base: env_logger::Logger,
}

/// Installs the logger: `RUST_LOG` if set, else `default_level`.
pub fn install(default_level: &str) {
    let base =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level))
            .build();
    BASE_MAX.store(base.filter() as usize, Ordering::Relaxed);
    log::set_max_level(base.filter());
    // Only fails if a logger is already set, and none is before this.
    let _ = log::set_boxed_logger(Box::new(Logger { base }));
}

/// Writes lines in `format` from now on.
pub fn set_format(format: LogFormat) {
    let code = match format {
        LogFormat::Text => FORMAT_TEXT,
        LogFormat::KeyValue => FORMAT_KEY_VALUE,
        LogFormat::Json => FORMAT_JSON,
    };
    FORMAT.store(code, Ordering::Relaxed);
}

fn format() -> LogFormat {
    match FORMAT.load(Ordering::Relaxed) {
        FORMAT_KEY_VALUE => LogFormat::KeyValue,
        FORMAT_JSON => LogFormat::Json,
        _ => LogFormat::Text,
    }
}

/// Sets the level of `module` and the modules under it (`None`: back to
/// the base filter). Fails on a name that is not a Rust path or when
/// every slot holds another module.
pub fn set_level(module: &str, level: Option<LevelFilter>) -> Result<(), String> {
    let valid = !module.is_empty()
        && module.len() <= MODULE_NAME_BYTES_MAX
        && module
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if !valid {
        return Err(format!("not a module path: {module:?}"));
    }
    let code = level.map_or(NO_LEVEL, |level| level as usize);
    for slot in &OVERRIDES {
        let entry = slot.get_or_init(|| Override {
            module: module.to_string(),
            level: AtomicUsize::new(NO_LEVEL),
        });
        if entry.module == module {
            entry.level.store(code, Ordering::Relaxed);
            raise_max_level();
            return Ok(());
        }
    }
    Err(format!(
        "levels are set for {OVERRIDES_MAX} modules already; reset one first"
    ))
}

/// The runtime levels set, by module.
pub fn levels() -> Vec<(String, LevelFilter)> {
    OVERRIDES
        .iter()
        .filter_map(OnceLock::get)
        .filter_map(|entry| {
            Some((
                entry.module.clone(),
                level_of(entry.level.load(Ordering::Relaxed))?,
            ))
        })
        .collect()
}

/// The base filter's most verbose level.
pub fn base_level() -> LevelFilter {
    level_of(BASE_MAX.load(Ordering::Relaxed)).unwrap_or(LevelFilter::Info)
}

/// `log`'s global bound must let through the most verbose level set,
/// or the macros drop the lines before the logger sees them.
fn raise_max_level() {
    let most = levels()
        .into_iter()
        .map(|(_, level)| level)
        .fold(base_level(), Ord::max);
    log::set_max_level(most);
}

fn level_of(code: usize) -> Option<LevelFilter> {
    [
        LevelFilter::Off,
        LevelFilter::Error,
        LevelFilter::Warn,
        LevelFilter::Info,
        LevelFilter::Debug,
        LevelFilter::Trace,
    ]
    .into_iter()
    .find(|level| *level as usize == code)
}

/// The runtime level of the most specific module set for `target`.
fn override_for(target: &str) -> Option<LevelFilter> {
    let mut best: Option<(usize, LevelFilter)> = None;
    for entry in OVERRIDES.iter().map_while(OnceLock::get) {
        let Some(level) = level_of(entry.level.load(Ordering::Relaxed)) else {
            continue;
        };
        let module = entry.module.as_str();
        let covers = target
            .strip_prefix(module)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"));
        if covers && best.is_none_or(|(length, _)| module.len() > length) {
            best = Some((module.len(), level));
        }
    }
    best.map(|(_, level)| level)
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        match override_for(metadata.target()) {
            Some(level) => metadata.level() <= level,
            None => self.base.enabled(metadata),
        }
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64);
        let thread = std::thread::current();
        let line = format_line(format(), record, unix_ms, thread.name());
        // One write per line, so that lines of several threads never mix.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// One log line, ending in a newline.
fn format_line(
    format: LogFormat,
    record: &Record<'_>,
    unix_ms: u64,
    thread: Option<&str>,
) -> String {
    let message = record.args().to_string();
    let level = record.level();
    let target = record.target();
    match format {
        LogFormat::Text => {
            let time = rfc3339(unix_ms, false);
            format!("[{time} {level:<5} {target}] {message}\n")
        }
        LogFormat::KeyValue => {
            let mut line = format!(
                "ts={} level={} target={}",
                rfc3339(unix_ms, true),
                level.as_str().to_ascii_lowercase(),
                logfmt_value(target)
            );
            if let Some(thread) = thread {
                line.push_str(" thread=");
                line.push_str(&logfmt_value(thread));
            }
            line.push_str(" msg=");
            line.push_str(&logfmt_value(&message));
            line.push('\n');
            line
        }
        LogFormat::Json => {
            let object = serde_json::json!({
                "ts": rfc3339(unix_ms, true),
                "level": level.as_str(),
                "target": target,
                "thread": thread,
                "msg": message,
            });
            format!("{object}\n")
        }
    }
}

/// A logfmt value: bare when it is one plain word, else quoted with `"`,
/// `\` and line breaks escaped.
fn logfmt_value(value: &str) -> String {
    let bare = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '=' && c != '\\');
    if bare {
        return value.to_string();
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// `unix_ms` as RFC 3339 in UTC, to the second (env_logger's default) or
/// to the millisecond.
fn rfc3339(unix_ms: u64, millis: bool) -> String {
    let seconds = unix_ms / 1000;
    let (days, day_seconds) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_date(days as i64);
    let (hour, minute, second) = (
        day_seconds / 3600,
        day_seconds % 3600 / 60,
        day_seconds % 60,
    );
    let date = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}");
    match millis {
        true => format!("{date}.{:03}Z", unix_ms % 1000),
        false => format!("{date}Z"),
    }
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_date(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month_number = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let month = month_number as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(format: LogFormat, message: &str) -> String {
        format_line(
            format,
            &Record::builder()
                .args(format_args!("{message}"))
                .level(log::Level::Warn)
                .target("shoal::server")
                .build(),
            1_700_000_000_123,
            Some("shoal-shard-0"),
        )
    }

    #[test]
    fn lines_are_text_logfmt_or_json() {
        assert_eq!(
            line(LogFormat::Text, "closing connection"),
            "[2023-11-14T22:13:20Z WARN  shoal::server] closing connection\n"
        );
        assert_eq!(
            line(LogFormat::KeyValue, "said \"no\" = 1\nthen"),
            "ts=2023-11-14T22:13:20.123Z level=warn target=shoal::server thread=shoal-shard-0 \
             msg=\"said \\\"no\\\" = 1\\nthen\"\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&line(LogFormat::Json, "a \"quoted\" word")).expect("JSON");
        assert_eq!(json["msg"], "a \"quoted\" word");
        assert_eq!(json["level"], "WARN");
        assert_eq!(json["ts"], "2023-11-14T22:13:20.123Z");
        assert_eq!(json["thread"], "shoal-shard-0");
    }

    #[test]
    fn dates_are_gregorian() {
        assert_eq!(rfc3339(0, true), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000, false), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(4_102_444_799_000, false), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn a_runtime_level_covers_its_module_and_below_the_most_specific_first() {
        set_level("shoal::metrics_test_a", Some(LevelFilter::Debug)).expect("set");
        set_level("shoal::metrics_test_a::inner", Some(LevelFilter::Error)).expect("set");
        assert_eq!(
            override_for("shoal::metrics_test_a"),
            Some(LevelFilter::Debug)
        );
        assert_eq!(
            override_for("shoal::metrics_test_a::x"),
            Some(LevelFilter::Debug)
        );
        assert_eq!(
            override_for("shoal::metrics_test_a::inner::y"),
            Some(LevelFilter::Error)
        );
        assert_eq!(override_for("shoal::metrics_test_ab"), None);
        assert!(levels().contains(&("shoal::metrics_test_a".to_string(), LevelFilter::Debug)));
        set_level("shoal::metrics_test_a", None).expect("reset");
        assert_eq!(override_for("shoal::metrics_test_a::x"), None);
        assert!(set_level("shoal server", Some(LevelFilter::Debug)).is_err());
        assert!(set_level("", None).is_err());
    }
}
