//! DeleteAcls: each filter's matching ACLs removed by the active
//! controller (forwarded there, `forward.rs`), which answers with the ACLs
//! each filter removed once the removals are committed and installed.
//! Needs ALTER on the cluster; SECURITY_DISABLED without an authorizer.

use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};

use super::create_acls::controller_acl_call;
use super::str_bytes;
use crate::security::acl::{Acl, AclFilter, Operation, PatternType, Permission, ResourceType};
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{KafkaError, ShardReply, ShardRequest};

pub async fn handle(context: &ConnectionContext, request: DeleteAclsRequest) -> DeleteAclsResponse {
    let count = request.filters.len();
    let results = controller_acl_call(
        context,
        count,
        || ShardRequest::DeleteAcls(request.filters.iter().map(filter).collect()),
        |reply| match reply {
            ShardReply::AclsDeleted(results) if results.len() == count => Ok(results),
            other => Err(other.into_error()),
        },
    )
    .await;
    let mut response = DeleteAclsResponse::default();
    response.filter_results = results.into_iter().map(result).collect();
    response
}

fn filter(filter: &DeleteAclsFilter) -> AclFilter {
    AclFilter {
        resource_type: ResourceType::from_code(filter.resource_type_filter),
        resource_name: filter
            .resource_name_filter
            .as_ref()
            .map(|name| name.to_string()),
        pattern_type: PatternType::from_code(filter.pattern_type_filter),
        principal: filter.principal_filter.as_ref().map(|p| p.to_string()),
        host: filter.host_filter.as_ref().map(|host| host.to_string()),
        operation: Operation::from_code(filter.operation),
        permission: Permission::from_code(filter.permission_type),
    }
}

fn result(outcome: Result<Vec<Acl>, KafkaError>) -> DeleteAclsFilterResult {
    let mut result = DeleteAclsFilterResult::default();
    match outcome {
        Ok(acls) => result.matching_acls = acls.into_iter().map(matching).collect(),
        Err(error) => {
            result.error_code = error.code;
            result.error_message = error.message.map(str_bytes);
        }
    }
    result
}

fn matching(acl: Acl) -> DeleteAclsMatchingAcl {
    let mut matching = DeleteAclsMatchingAcl::default();
    matching.resource_type = acl.resource_type.code();
    matching.resource_name = str_bytes(acl.resource_name);
    matching.pattern_type = acl.pattern_type.code();
    matching.principal = str_bytes(acl.principal);
    matching.host = str_bytes(acl.host);
    matching.operation = acl.operation.code();
    matching.permission_type = acl.permission.code();
    matching
}
