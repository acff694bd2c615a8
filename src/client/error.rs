//! Kafka error codes as the errors the client returns, named the way Kafka's
//! own tools print them (`TOPIC_ALREADY_EXISTS`).
//!
//! Invariant: every non-zero error code a broker returns reaches the caller as
//! a [`KafkaError`]; nothing here retries or swallows one.

use std::fmt;

use kafka_protocol::error::ResponseError;

/// A non-zero Kafka error code from a response, with the broker's message if
/// it sent one. Displays as `NAME: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaError {
    pub code: i16,
    pub message: String,
}

impl KafkaError {
    /// The Kafka name of the error, e.g. `UNKNOWN_TOPIC_OR_PARTITION`.
    pub fn name(&self) -> String {
        error_name(self.code)
    }
}

impl fmt::Display for KafkaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name(), self.message)
    }
}

impl std::error::Error for KafkaError {}

/// `Ok(())` for error code 0, otherwise a [`KafkaError`] saying what failed
/// (`context`) and the broker's message, if it sent one.
pub fn check(code: i16, message: Option<&str>, context: &str) -> Result<(), KafkaError> {
    if code == 0 {
        return Ok(());
    }
    let message = match message {
        Some(detail) if !detail.is_empty() => format!("{context}: {detail}"),
        _ => context.to_owned(),
    };
    Err(KafkaError { code, message })
}

/// Kafka's upper snake case name for `code`, `NONE` for 0, or
/// `UNKNOWN_ERROR_CODE_<n>` for codes the protocol crate does not know.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_owned(),
        Some(ResponseError::Unknown(code)) => format!("UNKNOWN_ERROR_CODE_{code}"),
        Some(error) => upper_snake_case(&format!("{error}")),
    }
}

/// `TopicAlreadyExists` to `TOPIC_ALREADY_EXISTS`.
fn upper_snake_case(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_kafka() {
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(35), "UNSUPPORTED_VERSION");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(i16::MAX), "UNKNOWN_ERROR_CODE_32767");
    }

    #[test]
    fn check_passes_zero_and_names_the_rest() {
        assert!(check(0, None, "topic t").is_ok());
        let err = check(36, Some("Topic 't' already exists."), "topic t").unwrap_err();
        assert_eq!(
            err.to_string(),
            "TOPIC_ALREADY_EXISTS: topic t: Topic 't' already exists."
        );
        let err = check(3, None, "t-0").unwrap_err();
        assert_eq!(err.to_string(), "UNKNOWN_TOPIC_OR_PARTITION: t-0");
        assert_eq!(check(3, Some(""), "t-0").unwrap_err(), err);
    }
}
