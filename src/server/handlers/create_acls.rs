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
    let results = if !authorize::cluster(context, Operation::Alter) {
        vec![Err(authorize::cluster_denied()); count]
    } else if !authorize::enabled(context) {
        vec![Err(security_disabled()); count]
    } else if count == 0 {
        Vec::new()
    } else {
        let acls = request.creations.iter().map(acl).collect();
        match context
            .shard
            .call(CONTROLLER_SHARD, ShardRequest::CreateAcls(acls))
            .await
        {
            ShardReply::Applied(results) if results.len() == count => results,
            other => vec![Err(other.into_error()); count],
        }
    };
    let mut response = CreateAclsResponse::default();
    response.results = results.into_iter().map(result).collect();
    response
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
