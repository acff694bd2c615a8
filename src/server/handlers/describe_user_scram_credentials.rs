//! DescribeUserScramCredentials: each user's SCRAM mechanisms and
//! iterations (never a salt or a key), from this shard's view of the
//! metadata image, as Kafka's `ScramImage.describe`: every user when none
//! is named; a user named twice DUPLICATE_RESOURCE, one without a
//! credential RESOURCE_NOT_FOUND.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};

use super::str_bytes;
use crate::server::connection::ConnectionContext;

pub fn handle(
    context: &ConnectionContext,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let view = context.shard.view();
    let users = view.scram.users();
    let named: Vec<String> = match request.users {
        Some(named) if !named.is_empty() => named.iter().map(|u| u.name.to_string()).collect(),
        _ => users.keys().map(|user| user.to_string()).collect(),
    };
    let mut response = DescribeUserScramCredentialsResponse::default();
    let mut answered: Vec<&str> = Vec::new();
    for name in &named {
        if answered.contains(&name.as_str()) {
            continue;
        }
        answered.push(name);
        let mut result = DescribeUserScramCredentialsResult::default();
        result.user = str_bytes(name.clone());
        let twice = named.iter().filter(|other| *other == name).count() > 1;
        match users.get(name.as_str()) {
            _ if twice => {
                result.error_code = ResponseError::DuplicateResource.code();
                result.error_message = Some(str_bytes(format!(
                    "Cannot describe SCRAM credentials for the same user twice in a single request: {name}"
                )));
            }
            Some(credentials) => {
                result.credential_infos = credentials
                    .iter()
                    .map(|&(mechanism, iterations)| {
                        let mut info = CredentialInfo::default();
                        info.mechanism = mechanism;
                        info.iterations = iterations;
                        info
                    })
                    .collect();
            }
            None => {
                result.error_code = ResponseError::ResourceNotFound.code();
                result.error_message = Some(str_bytes(format!(
                    "Attempt to describe a user credential that does not exist: {name}"
                )));
            }
        }
        response.results.push(result);
    }
    response
}
