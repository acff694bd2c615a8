//! Round-trip samples of CreateAcls (api 30), DescribeAcls (29) and
//! DeleteAcls (31): a populated request and response per version, for
//! the table-wide round trip in `roundtrip.rs`. Every field exists at
//! every version shoal serves (v1-v3; v2 is the first flexible one).

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn s(value: &'static str) -> StrBytes {
    StrBytes::from_static_str(value)
}

/// TOPIC, PREFIXED, READ, ALLOW in Kafka's codes.
const TOPIC: i8 = 2;
const PREFIXED: i8 = 4;
const READ: i8 = 3;
const ALLOW: i8 = 3;
const ANY: i8 = 1;

pub(super) fn create_acls_request(_version: i16) -> CreateAclsRequest {
    CreateAclsRequest::default().with_creations(vec![create_acls_request::AclCreation::default()
        .with_resource_type(TOPIC)
        .with_resource_name(s("orders."))
        .with_resource_pattern_type(PREFIXED)
        .with_principal(s("User:alice"))
        .with_host(s("*"))
        .with_operation(READ)
        .with_permission_type(ALLOW)])
}

pub(super) fn create_acls_response(_version: i16) -> CreateAclsResponse {
    CreateAclsResponse::default()
        .with_throttle_time_ms(1)
        .with_results(vec![
            create_acls_response::AclCreationResult::default(),
            create_acls_response::AclCreationResult::default()
                .with_error_code(42)
                .with_error_message(Some(s("Invalid operation ANY"))),
        ])
}

pub(super) fn describe_acls_request(_version: i16) -> DescribeAclsRequest {
    DescribeAclsRequest::default()
        .with_resource_type_filter(TOPIC)
        .with_resource_name_filter(Some(s("orders")))
        .with_pattern_type_filter(2)
        .with_principal_filter(None)
        .with_host_filter(Some(s("*")))
        .with_operation(ANY)
        .with_permission_type(ANY)
}

pub(super) fn describe_acls_response(_version: i16) -> DescribeAclsResponse {
    DescribeAclsResponse::default()
        .with_throttle_time_ms(1)
        .with_resources(vec![describe_acls_response::DescribeAclsResource::default(
        )
        .with_resource_type(TOPIC)
        .with_resource_name(s("orders."))
        .with_pattern_type(PREFIXED)
        .with_acls(vec![describe_acls_response::AclDescription::default()
            .with_principal(s("User:alice"))
            .with_host(s("*"))
            .with_operation(READ)
            .with_permission_type(ALLOW)])])
}

pub(super) fn delete_acls_request(_version: i16) -> DeleteAclsRequest {
    DeleteAclsRequest::default().with_filters(vec![delete_acls_request::DeleteAclsFilter::default(
    )
    .with_resource_type_filter(TOPIC)
    .with_resource_name_filter(Some(s("orders.")))
    .with_pattern_type_filter(PREFIXED)
    .with_principal_filter(Some(s("User:alice")))
    .with_host_filter(None)
    .with_operation(ANY)
    .with_permission_type(ANY)])
}

pub(super) fn delete_acls_response(_version: i16) -> DeleteAclsResponse {
    DeleteAclsResponse::default()
        .with_throttle_time_ms(1)
        .with_filter_results(vec![delete_acls_response::DeleteAclsFilterResult::default(
        )
        .with_matching_acls(vec![delete_acls_response::DeleteAclsMatchingAcl::default(
        )
        .with_resource_type(TOPIC)
        .with_resource_name(s("orders."))
        .with_pattern_type(PREFIXED)
        .with_principal(s("User:alice"))
        .with_host(s("*"))
        .with_operation(READ)
        .with_permission_type(ALLOW)])])
}
