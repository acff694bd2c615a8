//! DescribeAcls: the ACLs a filter matches, answered by any node from its
//! own view of the metadata image (as Kafka's brokers answer from their
//! authorizer's copy), grouped by resource pattern. Needs DESCRIBE on the
//! cluster; SECURITY_DISABLED without an authorizer; INVALID_REQUEST for
//! a filter with a field Kafka does not know.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};

use super::create_acls::security_disabled;
use super::str_bytes;
use crate::metadata::acls;
use crate::security::acl::{AclFilter, Operation, PatternType, Permission, ResourceType};
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::KafkaError;

pub fn handle(context: &ConnectionContext, request: DescribeAclsRequest) -> DescribeAclsResponse {
    let filter = filter(&request);
    if !authorize::cluster(context, Operation::Describe) {
        return refused(authorize::cluster_denied());
    }
    if !authorize::enabled(context) {
        return refused(security_disabled());
    }
    if let Some(reason) = filter.invalid() {
        return refused(KafkaError::with_message(
            ResponseError::InvalidRequest,
            reason,
        ));
    }
    let view = context.shard.view();
    let mut resources: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for (_, acl) in acls::matching(view.acls.acls(), &filter) {
        let key = (
            acl.resource_type.code(),
            acl.resource_name.clone(),
            acl.pattern_type.code(),
        );
        let mut description = AclDescription::default();
        description.principal = str_bytes(acl.principal.as_str());
        description.host = str_bytes(acl.host.as_str());
        description.operation = acl.operation.code();
        description.permission_type = acl.permission.code();
        resources.entry(key).or_default().push(description);
    }
    let mut response = DescribeAclsResponse::default();
    response.resources = resources
        .into_iter()
        .map(|((resource_type, name, pattern_type), acls)| {
            let mut resource = DescribeAclsResource::default();
            resource.resource_type = resource_type;
            resource.resource_name = str_bytes(name);
            resource.pattern_type = pattern_type;
            resource.acls = acls;
            resource
        })
        .collect();
    response
}

fn filter(request: &DescribeAclsRequest) -> AclFilter {
    AclFilter {
        resource_type: ResourceType::from_code(request.resource_type_filter),
        resource_name: request
            .resource_name_filter
            .as_ref()
            .map(|name| name.to_string()),
        pattern_type: PatternType::from_code(request.pattern_type_filter),
        principal: request.principal_filter.as_ref().map(|p| p.to_string()),
        host: request.host_filter.as_ref().map(|host| host.to_string()),
        operation: Operation::from_code(request.operation),
        permission: Permission::from_code(request.permission_type),
    }
}

fn refused(error: KafkaError) -> DescribeAclsResponse {
    let mut response = DescribeAclsResponse::default();
    response.error_code = error.code;
    response.error_message = error.message.map(str_bytes);
    response
}
