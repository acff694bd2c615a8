//! What the broker tells its operator: the admin HTTP listener
//! (`admin.listeners`: `/metrics`, health checks, log levels, the console
//! and its actions, `admin.console.actions.enabled`), the
//! metrics it keeps (`metrics.enabled`, `metrics.partition.series.enabled`)
//! and the format of its log lines (`log.format`).

use super::parse::parse;
use super::ConfigError;

/// Where the admin listener binds by default: loopback, so that nothing
/// outside the host reads the metrics or changes a log level unless the
/// operator says so; Redpanda's admin port, which operators of a
/// Kafka-compatible broker already open for it.
pub const ADMIN_LISTENER_DEFAULT: &str = "http://127.0.0.1:9644";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `[time LEVEL target] message`, as env_logger writes it.
    Text,
    /// `ts=... level=... target=... thread=... msg="..."` (logfmt).
    KeyValue,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    pub fn parse(value: &str) -> Option<LogFormat> {
        match value {
            "text" => Some(LogFormat::Text),
            "logfmt" | "key=value" => Some(LogFormat::KeyValue),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::KeyValue => "logfmt",
            LogFormat::Json => "json",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservabilityConfig {
    /// `host:port` the admin listener binds; `None` when turned off
    /// (`admin.listeners=` empty).
    pub admin_address: Option<String>,
    /// The operator named `admin.listeners`: then a port that cannot be
    /// bound stops the start; the default's only warns (several test
    /// brokers on one host would otherwise fight over it).
    pub admin_explicit: bool,
    /// `admin.console.actions.enabled`: the console may create topics and
    /// reset a group's offsets. Off by default: the console only reads.
    pub console_actions_enabled: bool,
    /// Shards record metrics (the hooks cost a few adds per request).
    pub metrics_enabled: bool,
    /// `/metrics` shows a series per partition (7 per partition replica).
    pub metrics_partition_series_enabled: bool,
    pub log_format: LogFormat,
}

impl Default for ObservabilityConfig {
    fn default() -> ObservabilityConfig {
        ObservabilityConfig {
            admin_address: admin_address(ADMIN_LISTENER_DEFAULT),
            admin_explicit: false,
            console_actions_enabled: false,
            metrics_enabled: true,
            metrics_partition_series_enabled: true,
            log_format: LogFormat::Text,
        }
    }
}

/// `http://host:port` → `host:port`.
fn admin_address(listener: &str) -> Option<String> {
    listener.strip_prefix("http://").map(str::to_string)
}

impl ObservabilityConfig {
    /// Applies one of its keys; `Ok(false)` when `key` is not one of them.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        match key {
            "admin.listeners" => {
                self.admin_address = admin_listener(key, value)?;
                self.admin_explicit = true;
            }
            "admin.console.actions.enabled" => self.console_actions_enabled = parse(key, value)?,
            "metrics.enabled" => self.metrics_enabled = parse(key, value)?,
            "metrics.partition.series.enabled" => {
                self.metrics_partition_series_enabled = parse(key, value)?
            }
            "log.format" => {
                self.log_format = LogFormat::parse(value).ok_or_else(|| {
                    ConfigError(format!(
                    "invalid value {value} for configuration {key}: expected text, logfmt or json"
                ))
                })?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `admin.listeners` as DescribeConfigs shows it.
    pub fn admin_listeners(&self) -> String {
        self.admin_address
            .as_ref()
            .map(|address| format!("http://{address}"))
            .unwrap_or_default()
    }
}

/// One `http://host:port` listener, or none for an empty value. Only
/// plain HTTP: TLS for the admin listener is not there yet.
fn admin_listener(key: &str, value: &str) -> Result<Option<String>, ConfigError> {
    if value.is_empty() {
        return Ok(None);
    }
    let invalid = |why: &str| {
        ConfigError(format!(
            "invalid value {value} for configuration {key}: {why}"
        ))
    };
    if value.contains(',') {
        return Err(invalid("one listener only"));
    }
    let address = admin_address(value).ok_or_else(|| invalid("expected http://host:port"))?;
    if super::split_host_port(&address).is_none() {
        return Err(invalid("expected http://host:port"));
    }
    Ok(Some(address))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_listener_is_one_http_address_or_none() {
        let mut config = ObservabilityConfig::default();
        assert_eq!(config.admin_address.as_deref(), Some("127.0.0.1:9644"));
        assert!(!config.admin_explicit);
        assert!(config
            .set("admin.listeners", "http://0.0.0.0:19644")
            .expect("valid"));
        assert_eq!(config.admin_address.as_deref(), Some("0.0.0.0:19644"));
        assert!(config.admin_explicit);
        assert_eq!(config.admin_listeners(), "http://0.0.0.0:19644");
        config
            .set("admin.listeners", "")
            .expect("empty turns it off");
        assert_eq!(config.admin_address, None);
        for bad in [
            "127.0.0.1:9644",
            "https://h:1",
            "http://h",
            "http://a:1,http://b:2",
        ] {
            assert!(config.set("admin.listeners", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn log_format_and_metrics_switches_parse() {
        let mut config = ObservabilityConfig::default();
        config.set("log.format", "json").expect("json");
        assert_eq!(config.log_format, LogFormat::Json);
        config.set("log.format", "logfmt").expect("logfmt");
        assert_eq!(config.log_format, LogFormat::KeyValue);
        assert!(config.set("log.format", "xml").is_err());
        assert!(!config.console_actions_enabled);
        config
            .set("admin.console.actions.enabled", "true")
            .expect("bool");
        assert!(config.console_actions_enabled);
        config.set("metrics.enabled", "false").expect("bool");
        assert!(!config.metrics_enabled);
        config
            .set("metrics.partition.series.enabled", "false")
            .expect("bool");
        assert!(!config.metrics_partition_series_enabled);
        assert!(!config.set("num.partitions", "3").expect("not ours"));
    }
}
