//! Parsing and checking of config values: Kafka's number ranges, policy
//! names and `host:port` addresses, each failure a `ConfigError` that names
//! the key.

use std::fmt;

use super::{ConfigError, FlushPolicy};

/// Splits `key=value` (or `key:value`, as Java properties allow) at the first separator.
pub fn split_key_value(text: &str) -> Option<(&str, &str)> {
    let at = text.find(['=', ':'])?;
    let key = text[..at].trim();
    if key.is_empty() {
        return None;
    }
    Some((key, text[at + 1..].trim()))
}

/// `host:port` → (host, port); IPv6 in brackets is accepted.
pub fn split_host_port(address: &str) -> Option<(String, i32)> {
    let at = address.rfind(':')?;
    let host = address[..at].trim_start_matches('[').trim_end_matches(']');
    let port: i32 = address[at + 1..].parse().ok()?;
    if host.is_empty() || !(1..=65535).contains(&port) {
        return None;
    }
    Some((host.to_string(), port))
}

pub(super) fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value
        .parse()
        .map_err(|_| ConfigError(format!("invalid value {value} for configuration {key}")))
}

pub(super) fn parse_range<T: std::str::FromStr + PartialOrd + fmt::Display>(
    key: &str,
    value: &str,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    let parsed: T = parse(key, value)?;
    if parsed < min || parsed > max {
        return Err(ConfigError(format!(
            "invalid value {value} for configuration {key}: value must be in [{min}, {max}]"
        )));
    }
    Ok(parsed)
}

pub(super) fn flush_policy(value: &str, flush_ms: u64) -> Result<FlushPolicy, ConfigError> {
    match value {
        "sync" => Ok(FlushPolicy::Sync),
        "interval" => Ok(FlushPolicy::Interval { flush_ms }),
        "none" => Ok(FlushPolicy::None),
        _ => Err(ConfigError(format!(
            "invalid value {value} for flush.policy: expected sync, interval or none"
        ))),
    }
}

pub(super) fn timestamp_type(value: &str) -> Result<(), ConfigError> {
    match value {
        "CreateTime" | "LogAppendTime" => Ok(()),
        _ => Err(ConfigError(format!(
            "invalid value {value} for message.timestamp.type: expected CreateTime or LogAppendTime"
        ))),
    }
}

pub(super) fn validate_cleanup_policy(value: &str) -> Result<(), ConfigError> {
    let ok = !value.is_empty()
        && value
            .split(',')
            .all(|part| matches!(part.trim(), "delete" | "compact"));
    if ok {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "invalid value {value} for cleanup.policy: expected delete, compact or both"
        )))
    }
}

/// A `min.cleanable.dirty.ratio`: a fraction in [0, 1].
pub(super) fn dirty_ratio(key: &str, value: &str) -> Result<f64, ConfigError> {
    let ratio: f64 = parse(key, value)?;
    if !(0.0..=1.0).contains(&ratio) {
        return Err(ConfigError(format!(
            "invalid value {value} for configuration {key}: value must be in [0, 1]"
        )));
    }
    Ok(ratio)
}

pub(super) fn validate_compression(value: &str) -> Result<(), ConfigError> {
    match value {
        "producer" | "uncompressed" | "gzip" | "snappy" | "lz4" | "zstd" => Ok(()),
        _ => Err(ConfigError(format!(
            "invalid value {value} for compression.type"
        ))),
    }
}
