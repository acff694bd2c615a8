//! SCRAM credentials in the cluster metadata, as Kafka keeps them:
//! UserScramCredentialRecord (api key 11: name, mechanism, salt, stored
//! key, server key, iterations; never the password) and
//! RemoveUserScramCredentialRecord (api key 22), their framing, the
//! image's part (`ScramCredentials`, one credential per user and
//! mechanism), and the controller's pure decision on an
//! AlterUserScramCredentials request (Kafka's `ScramControlManager`).
//!
//! Invariant: a credential in the image was applied from a record whole;
//! a removal of a credential the image does not hold is refused, as Kafka's
//! replay refuses it.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;

use super::records::MetadataRecord;
use crate::config::SaslMechanism;
use crate::protocol::schema::{
    put_compact_length, put_compact_string, put_no_tagged_fields, Reader, RecordError,
};
use crate::security::sasl::scram::{
    credential_from_salted, ScramCredential, ITERATIONS_MAX, ITERATIONS_MIN,
};

/// Kafka's api key of UserScramCredentialRecord.
pub const USER_SCRAM_CREDENTIAL_KEY: u32 = 11;
/// Kafka's api key of RemoveUserScramCredentialRecord.
pub const REMOVE_USER_SCRAM_CREDENTIAL_KEY: u32 = 22;

/// UserScramCredentialRecord (api key 11, version 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserScramCredentialRecord {
    pub name: String,
    /// Kafka's `ScramMechanism` type: 1 SHA-256, 2 SHA-512.
    pub mechanism: i8,
    pub credential: ScramCredential,
}

/// RemoveUserScramCredentialRecord (api key 22, version 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveUserScramCredentialRecord {
    pub name: String,
    pub mechanism: i8,
}

fn put_compact_bytes(buf: &mut BytesMut, bytes: &[u8]) {
    put_compact_length(buf, Some(bytes.len()));
    buf.put_slice(bytes);
}

pub fn put_credential(buf: &mut BytesMut, record: &UserScramCredentialRecord) {
    put_compact_string(buf, Some(&record.name));
    buf.put_i8(record.mechanism);
    put_compact_bytes(buf, &record.credential.salt);
    put_compact_bytes(buf, &record.credential.stored_key);
    put_compact_bytes(buf, &record.credential.server_key);
    buf.put_i32(record.credential.iterations);
    put_no_tagged_fields(buf);
}

pub fn read_credential(reader: &mut Reader<'_>) -> Result<UserScramCredentialRecord, RecordError> {
    let name = reader.string()?;
    let mechanism = reader.i8()?;
    let bytes = |reader: &mut Reader<'_>| reader.bytes().map(|b: Bytes| b.to_vec());
    let salt = bytes(reader)?;
    let stored_key = bytes(reader)?;
    let server_key = bytes(reader)?;
    let iterations = reader.i32()?;
    reader.tagged_fields()?;
    Ok(UserScramCredentialRecord {
        name,
        mechanism,
        credential: ScramCredential {
            salt,
            stored_key,
            server_key,
            iterations,
        },
    })
}

pub fn put_removal(buf: &mut BytesMut, record: &RemoveUserScramCredentialRecord) {
    put_compact_string(buf, Some(&record.name));
    buf.put_i8(record.mechanism);
    put_no_tagged_fields(buf);
}

pub fn read_removal(
    reader: &mut Reader<'_>,
) -> Result<RemoveUserScramCredentialRecord, RecordError> {
    let name = reader.string()?;
    let mechanism = reader.i8()?;
    reader.tagged_fields()?;
    Ok(RemoveUserScramCredentialRecord { name, mechanism })
}

/// The image's credentials, by (user, mechanism type).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScramCredentials {
    by_user: BTreeMap<(String, i8), ScramCredential>,
}

impl ScramCredentials {
    pub fn get(&self, user: &str, mechanism: SaslMechanism) -> Option<&ScramCredential> {
        let code = mechanism.scram_type()?;
        self.by_user.get(&(user.to_string(), code))
    }

    pub fn is_empty(&self) -> bool {
        self.by_user.is_empty()
    }

    /// Every user's mechanisms and iterations, by user.
    pub fn users(&self) -> BTreeMap<&str, Vec<(i8, i32)>> {
        let mut users: BTreeMap<&str, Vec<(i8, i32)>> = BTreeMap::new();
        for ((user, mechanism), credential) in &self.by_user {
            users
                .entry(user)
                .or_default()
                .push((*mechanism, credential.iterations));
        }
        users
    }

    pub fn apply(&mut self, record: &UserScramCredentialRecord) {
        self.by_user.insert(
            (record.name.clone(), record.mechanism),
            record.credential.clone(),
        );
    }

    /// Removes a credential; false when there is none to remove.
    pub fn remove(&mut self, record: &RemoveUserScramCredentialRecord) -> bool {
        self.by_user
            .remove(&(record.name.clone(), record.mechanism))
            .is_some()
    }

    /// The records that rebuild these credentials.
    pub fn records(&self) -> impl Iterator<Item = UserScramCredentialRecord> + '_ {
        self.by_user.iter().map(
            |((name, mechanism), credential)| UserScramCredentialRecord {
                name: name.clone(),
                mechanism: *mechanism,
                credential: credential.clone(),
            },
        )
    }
}

/// One change an AlterUserScramCredentials request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScramChange {
    Delete {
        name: String,
        mechanism: i8,
    },
    Upsert {
        name: String,
        mechanism: i8,
        iterations: i32,
        salt: Vec<u8>,
        salted_password: Vec<u8>,
    },
}

impl ScramChange {
    pub fn name(&self) -> &str {
        match self {
            ScramChange::Delete { name, .. } | ScramChange::Upsert { name, .. } => name,
        }
    }
}

/// The outcome for one user: its error and message, if any.
pub type ScramResult = (String, Option<(ResponseError, String)>);

/// What the records of one AlterUserScramCredentials make of `current`:
/// the records, and one result per user named (Kafka's
/// `ScramControlManager.alterCredentials`: deletions first, a user named
/// twice refused whole with DUPLICATE_RESOURCE, each change checked).
pub fn alter(
    current: &ScramCredentials,
    changes: &[ScramChange],
) -> (Vec<MetadataRecord>, Vec<ScramResult>) {
    let mut accepted: BTreeMap<&str, &ScramChange> = BTreeMap::new();
    let mut refused: BTreeMap<&str, (ResponseError, String)> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    let deletions = changes
        .iter()
        .filter(|c| matches!(c, ScramChange::Delete { .. }));
    let upsertions = changes
        .iter()
        .filter(|c| matches!(c, ScramChange::Upsert { .. }));
    for change in deletions.chain(upsertions) {
        let name = change.name();
        if refused.contains_key(name) {
            continue;
        }
        if accepted.remove(name).is_some() {
            refused.insert(
                name,
                (
                    ResponseError::DuplicateResource,
                    "A user credential cannot be altered twice in the same request".to_string(),
                ),
            );
            continue;
        }
        order.push(name);
        match check(current, change) {
            Ok(()) => {
                accepted.insert(name, change);
            }
            Err(error) => {
                refused.insert(name, error);
            }
        }
    }
    let mut records = Vec::new();
    let mut results = Vec::new();
    for name in order {
        if let Some(change) = accepted.get(name) {
            records.push(record_of(change));
            results.push((name.to_string(), None));
        } else if let Some(error) = refused.get(name) {
            results.push((name.to_string(), Some(error.clone())));
        }
    }
    (records, results)
}

fn record_of(change: &ScramChange) -> MetadataRecord {
    match change {
        ScramChange::Delete { name, mechanism } => {
            MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord {
                name: name.clone(),
                mechanism: *mechanism,
            })
        }
        ScramChange::Upsert {
            name,
            mechanism,
            iterations,
            salt,
            salted_password,
        } => {
            let sasl =
                SaslMechanism::from_scram_type(*mechanism).unwrap_or(SaslMechanism::ScramSha256);
            MetadataRecord::UserScramCredential(UserScramCredentialRecord {
                name: name.clone(),
                mechanism: *mechanism,
                credential: credential_from_salted(sasl, salted_password, salt, *iterations),
            })
        }
    }
}

/// Kafka's checks of one change, with its errors and messages.
fn check(current: &ScramCredentials, change: &ScramChange) -> Result<(), (ResponseError, String)> {
    let (name, mechanism) = match change {
        ScramChange::Delete { name, mechanism }
        | ScramChange::Upsert {
            name, mechanism, ..
        } => (name, *mechanism),
    };
    let fail = |error, message: &str| Err((error, message.to_string()));
    if name.is_empty() {
        return fail(
            ResponseError::UnacceptableCredential,
            "Username must not be empty",
        );
    }
    let Some(sasl) = SaslMechanism::from_scram_type(mechanism) else {
        return fail(
            ResponseError::UnsupportedSaslMechanism,
            "Unknown SCRAM mechanism",
        );
    };
    match change {
        ScramChange::Delete { .. } if current.get(name, sasl).is_none() => fail(
            ResponseError::ResourceNotFound,
            "Attempt to delete a user credential that does not exist",
        ),
        ScramChange::Upsert { iterations, .. } if *iterations < ITERATIONS_MIN => {
            fail(ResponseError::UnacceptableCredential, "Too few iterations")
        }
        ScramChange::Upsert { iterations, .. } if *iterations > ITERATIONS_MAX => {
            fail(ResponseError::UnacceptableCredential, "Too many iterations")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
#[path = "scram_tests.rs"]
mod tests;
