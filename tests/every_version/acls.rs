//! The ACL APIs at every version, on a broker without an authorizer: each
//! answers SECURITY_DISABLED in its own shape, as Kafka's broker does
//! (tests/integration/test_acls.py drives them with an authorizer).

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{ApiKey, CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};

use crate::broker::Conn;
use crate::wire::{str_bytes, versions_of};

/// Kafka's SECURITY_DISABLED.
const SECURITY_DISABLED: i16 = 54;
/// ANY in Kafka's resource, pattern, operation and permission codes.
const ANY: i8 = 1;
/// TOPIC, LITERAL, READ, ALLOW.
const TOPIC: i8 = 2;
const LITERAL: i8 = 3;
const READ: i8 = 3;
const ALLOW: i8 = 3;

pub fn acl_apis(conn: &mut Conn) {
    for version in versions_of(ApiKey::DescribeAcls) {
        let request = DescribeAclsRequest::default()
            .with_resource_type_filter(ANY)
            .with_pattern_type_filter(ANY)
            .with_operation(ANY)
            .with_permission_type(ANY);
        let response = conn.call(&request, version);
        assert_eq!(
            response.error_code, SECURITY_DISABLED,
            "DescribeAcls v{version}"
        );
        assert!(response.resources.is_empty(), "DescribeAcls v{version}");
    }
    for version in versions_of(ApiKey::CreateAcls) {
        let creation = AclCreation::default()
            .with_resource_type(TOPIC)
            .with_resource_name(str_bytes("t"))
            .with_resource_pattern_type(LITERAL)
            .with_principal(str_bytes("User:alice"))
            .with_host(str_bytes("*"))
            .with_operation(READ)
            .with_permission_type(ALLOW);
        let request = CreateAclsRequest::default().with_creations(vec![creation]);
        let response = conn.call(&request, version);
        let codes: Vec<i16> = response.results.iter().map(|r| r.error_code).collect();
        assert_eq!(codes, [SECURITY_DISABLED], "CreateAcls v{version}");
    }
    for version in versions_of(ApiKey::DeleteAcls) {
        let filter = DeleteAclsFilter::default()
            .with_resource_type_filter(ANY)
            .with_pattern_type_filter(ANY)
            .with_operation(ANY)
            .with_permission_type(ANY);
        let request = DeleteAclsRequest::default().with_filters(vec![filter]);
        let response = conn.call(&request, version);
        let codes: Vec<i16> = response
            .filter_results
            .iter()
            .map(|r| r.error_code)
            .collect();
        assert_eq!(codes, [SECURITY_DISABLED], "DeleteAcls v{version}");
    }
}
