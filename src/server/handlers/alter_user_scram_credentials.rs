//! AlterUserScramCredentials: upsertions (the client salts the password:
//! only the salted password travels, and only stored and server keys are
//! kept) and deletions of SCRAM credentials, checked and committed by the
//! controller (`metadata::scram::alter`, Kafka's errors), forwarded there
//! from any other node (`forward.rs`).

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
};

use super::str_bytes;
use crate::metadata::scram::{ScramChange, ScramResult};
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{ShardReply, ShardRequest};
use crate::shard::CONTROLLER_SHARD;

pub async fn handle(
    context: &ConnectionContext,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let deletions = request
        .deletions
        .iter()
        .map(|deletion| ScramChange::Delete {
            name: deletion.name.to_string(),
            mechanism: deletion.mechanism,
        });
    let upsertions = request
        .upsertions
        .iter()
        .map(|upsertion| ScramChange::Upsert {
            name: upsertion.name.to_string(),
            mechanism: upsertion.mechanism,
            iterations: upsertion.iterations,
            salt: upsertion.salt.to_vec(),
            salted_password: upsertion.salted_password.to_vec(),
        });
    let changes: Vec<ScramChange> = deletions.chain(upsertions).collect();
    let names: Vec<String> = changes.iter().map(|c| c.name().to_string()).collect();
    let results: Vec<ScramResult> = match context
        .shard
        .call(CONTROLLER_SHARD, ShardRequest::AlterScram(changes))
        .await
    {
        ShardReply::Scram(results) => results,
        other => {
            let failure = other.into_error();
            let error = ResponseError::try_from_code(failure.code)
                .unwrap_or(ResponseError::UnknownServerError);
            let message = failure.message.unwrap_or_default();
            let mut seen = BTreeSet::new();
            names
                .into_iter()
                .filter(|name| seen.insert(name.clone()))
                .map(|name| (name, Some((error, message.clone()))))
                .collect()
        }
    };
    let mut response = AlterUserScramCredentialsResponse::default();
    response.results = results
        .into_iter()
        .map(|(user, error)| {
            let mut result = AlterUserScramCredentialsResult::default();
            result.user = str_bytes(user);
            if let Some((error, message)) = error {
                result.error_code = error.code();
                result.error_message = Some(str_bytes(message));
            }
            result
        })
        .collect();
    response
}
