//! Finding the coordinator of a consumer group or of a transactional id
//! (FindCoordinator) and talking to it, looking it up again when it moved or
//! was still loading.
//!
//! Invariant: a group or transaction request goes only to the broker
//! FindCoordinator named for its key; retries are bounded in count and time and happen only for
//! the three errors that mean "ask again" (COORDINATOR_LOAD_IN_PROGRESS,
//! COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR).

use std::time::Duration;

use anyhow::anyhow;
use kafka_protocol::messages::{ApiKey, BrokerId, FindCoordinatorRequest};
use kafka_protocol::protocol::StrBytes;

use super::{check, format_host_port, Connection, KafkaError};

/// FindCoordinator key type of a consumer group.
pub const KEY_TYPE_GROUP: i8 = 0;
/// FindCoordinator key type of a transactional id.
pub const KEY_TYPE_TRANSACTION: i8 = 1;
/// From this version FindCoordinator carries a list of keys (KIP-699).
const BATCHED_KEYS_VERSION: i16 = 4;
/// Kafka's COORDINATOR_LOAD_IN_PROGRESS error code.
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
/// Kafka's COORDINATOR_NOT_AVAILABLE error code.
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
/// Kafka's NOT_COORDINATOR error code.
pub const NOT_COORDINATOR: i16 = 16;
/// Attempts of one group call before its last error is returned: with the
/// backoff, a coordinator gets about ten seconds to load its groups.
const COORDINATOR_ATTEMPTS_MAX: u32 = 40;
/// Pause between attempts.
const COORDINATOR_RETRY_BACKOFF: Duration = Duration::from_millis(250);

/// A connection to the coordinator of one group or transactional id.
pub struct Coordinator {
    pub node_id: BrokerId,
    pub conn: Connection,
}

impl Coordinator {
    /// Asks the broker at `bootstrap` for the coordinator of `group_id` and
    /// connects to it (reusing the bootstrap connection when it is the one).
    pub fn find(bootstrap: &str, group_id: &str) -> anyhow::Result<Coordinator> {
        Coordinator::find_key(bootstrap, KEY_TYPE_GROUP, group_id)
    }

    /// As [`Coordinator::find`] for a key of `key_type` ([`KEY_TYPE_GROUP`]
    /// or [`KEY_TYPE_TRANSACTION`]).
    pub fn find_key(bootstrap: &str, key_type: i8, key_name: &str) -> anyhow::Result<Coordinator> {
        let mut seed = Connection::connect(bootstrap)?;
        let version = seed.require_version(ApiKey::FindCoordinator)?;
        let key = StrBytes::from_string(key_name.to_owned());
        let request = FindCoordinatorRequest::default().with_key_type(key_type);
        let request = if version >= BATCHED_KEYS_VERSION {
            request.with_coordinator_keys(vec![key])
        } else {
            request.with_key(key)
        };
        let response = seed.send_version(request, version)?;
        let kind = if key_type == KEY_TYPE_TRANSACTION {
            "transactional id"
        } else {
            "group"
        };
        let context = format!("coordinator of {kind} {key_name}");
        let (node_id, host, port) = if version >= BATCHED_KEYS_VERSION {
            let found = response
                .coordinators
                .iter()
                .find(|c| c.key.as_str() == key_name)
                .ok_or_else(|| anyhow!("FindCoordinator response does not mention {key_name}"))?;
            check(found.error_code, found.error_message.as_deref(), &context)?;
            (found.node_id, found.host.to_string(), found.port)
        } else {
            check(
                response.error_code,
                response.error_message.as_deref(),
                &context,
            )?;
            (response.node_id, response.host.to_string(), response.port)
        };
        let addr = format_host_port(&host, port);
        let conn = if addr == seed.addr() {
            seed
        } else {
            Connection::connect(&addr)?
        };
        Ok(Coordinator { node_id, conn })
    }

    /// Runs `call` on the coordinator of `group_id`, finding it again and
    /// retrying (bounded) while the answer is "ask again".
    pub fn call<T>(
        bootstrap: &str,
        group_id: &str,
        call: impl FnMut(&mut Coordinator) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        Coordinator::call_key(bootstrap, KEY_TYPE_GROUP, group_id, call)
    }

    /// As [`Coordinator::call`] for a key of `key_type`.
    pub fn call_key<T>(
        bootstrap: &str,
        key_type: i8,
        key: &str,
        mut call: impl FnMut(&mut Coordinator) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut attempt = 1;
        loop {
            let result =
                Coordinator::find_key(bootstrap, key_type, key).and_then(|mut c| call(&mut c));
            match result {
                Err(error) if attempt < COORDINATOR_ATTEMPTS_MAX && is_retriable(&error) => {
                    attempt += 1;
                    std::thread::sleep(COORDINATOR_RETRY_BACKOFF);
                }
                other => return other,
            }
        }
    }
}

/// Whether `error` is a coordinator error a client answers by asking again.
fn is_retriable(error: &anyhow::Error) -> bool {
    error.downcast_ref::<KafkaError>().is_some_and(|kafka| {
        matches!(
            kafka.code,
            COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_coordinator_errors_are_retried() {
        let kafka = |code| {
            anyhow!(KafkaError {
                code,
                message: String::new(),
            })
        };
        assert!(is_retriable(&kafka(COORDINATOR_LOAD_IN_PROGRESS)));
        assert!(is_retriable(&kafka(COORDINATOR_NOT_AVAILABLE)));
        assert!(is_retriable(&kafka(NOT_COORDINATOR)));
        assert!(!is_retriable(&kafka(69)));
        assert!(!is_retriable(&anyhow!("connection refused")));
    }
}
