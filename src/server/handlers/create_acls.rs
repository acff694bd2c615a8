//! CreateAcls: each ACL checked and committed by the active controller (a
//! broker forwards the request there, `forward.rs`), which answers once
//! the ACLs are in the metadata log and on every shard of its node. Needs
//! ALTER on the cluster; SECURITY_DISABLED when no authorizer is
//! configured, as Kafka.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};

use super::str_bytes;
use crate::security::acl::{Acl, Operation, PatternType, Permission, ResourceType};
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{KafkaError, ShardReply, ShardRequest};
use crate::shard::CONTROLLER_SHARD;

pub async fn handle(context: &ConnectionContext, request: CreateAclsRequest) -> CreateAclsResponse {
    let count = request.creations.len();
    let results = controller_acl_call(
        context,
        count,
        || ShardRequest::CreateAcls(request.creations.iter().map(acl).collect()),
        |reply| match reply {
            ShardReply::Applied(results) if results.len() == count => Ok(results),
            other => Err(other.into_error()),
        },
    )
    .await;
    let mut response = CreateAclsResponse::default();
    response.results = results.into_iter().map(result).collect();
    response
}

/// What CreateAcls and DeleteAcls share: ALTER on the cluster, an
/// authorizer configured, then one call to the controller shard whose
/// reply `unpack` turns into one result per item (`count` of them), or
/// into the error it carries when it is not the expected answer. Every refusal answers
/// each item with the same error.
pub(super) async fn controller_acl_call<T>(
    context: &ConnectionContext,
    count: usize,
    request: impl FnOnce() -> ShardRequest,
    unpack: impl FnOnce(ShardReply) -> Result<Vec<Result<T, KafkaError>>, KafkaError>,
) -> Vec<Result<T, KafkaError>> {
    let refusal = if !authorize::cluster(context, Operation::Alter) {
        authorize::cluster_denied()
    } else if !authorize::enabled(context) {
        security_disabled()
    } else if count == 0 {
        return Vec::new();
    } else {
        match unpack(context.shard.call(CONTROLLER_SHARD, request()).await) {
            Ok(results) => return results,
            Err(error) => error,
        }
    };
    (0..count).map(|_| Err(refusal.clone())).collect()
}

/// SECURITY_DISABLED, with Kafka's message.
pub(super) fn security_disabled() -> KafkaError {
    KafkaError::with_message(
        ResponseError::SecurityDisabled,
        "No Authorizer is configured.".into(),
    )
}

fn acl(creation: &AclCreation) -> Acl {
    Acl {
        resource_type: ResourceType::from_code(creation.resource_type),
        resource_name: creation.resource_name.to_string(),
        pattern_type: PatternType::from_code(creation.resource_pattern_type),
        principal: creation.principal.to_string(),
        host: creation.host.to_string(),
        operation: Operation::from_code(creation.operation),
        permission: Permission::from_code(creation.permission_type),
    }
}

fn result(outcome: Result<(), KafkaError>) -> AclCreationResult {
    let mut result = AclCreationResult::default();
    if let Err(error) = outcome {
        result.error_code = error.code;
        result.error_message = error.message.map(str_bytes);
    }
    result
}
