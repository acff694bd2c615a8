//! DescribeGroups: state, protocol and members of each group.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse, GroupId, RequestHeader,
};

use super::group_route::call_group;
use super::{authorized, str_bytes};
use crate::group::GroupState;
use crate::security::acl::ResourceType;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{GroupAnswer, GroupCall};

/// From v6 (KIP-1043) a group that does not exist is GROUP_ID_NOT_FOUND;
/// before, it is described as Dead.
const GROUP_NOT_FOUND_VERSION: i16 = 6;
/// Authorized operations exist in DescribeGroups from v3.
const AUTHORIZED_OPERATIONS_VERSION: i16 = 3;

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let version = header.request_api_version;
    let mut response = DescribeGroupsResponse::default();
    for group_id in &request.groups {
        let mut entry = DescribedGroup::default();
        entry.group_id = GroupId(group_id.0.clone());
        match call_group(
            context,
            group_id.0.as_str(),
            GroupCall::Describe(group_id.0.to_string()),
        )
        .await
        {
            Ok(GroupAnswer::Described(group))
                if version >= GROUP_NOT_FOUND_VERSION && group.state == GroupState::Dead =>
            {
                entry.error_code = ResponseError::GroupIdNotFound.code();
                entry.error_message =
                    Some(str_bytes(format!("Group {} not found.", group.group_id)));
            }
            Ok(GroupAnswer::Described(group)) => {
                entry.group_state = str_bytes(group.state.as_str());
                entry.protocol_type = str_bytes(group.protocol_type);
                entry.protocol_data = str_bytes(group.protocol_name);
                entry.members = group
                    .members
                    .into_iter()
                    .map(|member| {
                        let mut out = DescribedGroupMember::default();
                        out.member_id = str_bytes(member.member_id);
                        if version >= 4 {
                            out.group_instance_id = member.group_instance_id.map(str_bytes);
                        }
                        out.client_id = str_bytes(member.client_id);
                        out.client_host = str_bytes(member.client_host);
                        out.member_metadata = member.metadata;
                        out.member_assignment = member.assignment;
                        out
                    })
                    .collect();
            }
            Ok(_) => {}
            Err(error) => entry.error_code = error.code(),
        }
        if version >= AUTHORIZED_OPERATIONS_VERSION
            && request.include_authorized_operations
            && entry.error_code == 0
        {
            entry.authorized_operations = authorize::operations(
                context,
                ResourceType::Group,
                group_id.0.as_str(),
                authorized::GROUP,
            );
        }
        response.groups.push(entry);
    }
    response
}
