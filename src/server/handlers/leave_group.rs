//! LeaveGroup: one member (v0–v2) or a batch by id or instance id (v3+).

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse, RequestHeader};

use super::group_route::{call_group, code};
use super::str_bytes;
use crate::group::LeavingMember;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{GroupAnswer, GroupCall};

/// LeaveGroup v3 (KIP-345) leaves several members at once.
const BATCH_VERSION: i16 = 3;

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let version = header.request_api_version;
    let group_id = request.group_id.0.to_string();
    let members: Vec<LeavingMember> = if version >= BATCH_VERSION {
        request
            .members
            .iter()
            .map(|member| LeavingMember {
                member_id: member.member_id.to_string(),
                group_instance_id: member.group_instance_id.as_ref().map(|id| id.to_string()),
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: request.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    let call = GroupCall::Leave {
        group_id: group_id.clone(),
        members,
    };
    let mut response = LeaveGroupResponse::default();
    match call_group(context, &group_id, call).await {
        Ok(GroupAnswer::Leave(answer)) => {
            if version >= BATCH_VERSION {
                response.error_code = code(answer.error);
                response.members = answer
                    .members
                    .into_iter()
                    .map(|(member, error)| {
                        let mut entry = MemberResponse::default();
                        entry.member_id = str_bytes(member.member_id);
                        entry.group_instance_id = member.group_instance_id.map(str_bytes);
                        entry.error_code = code(error);
                        entry
                    })
                    .collect();
            } else {
                let member_error = answer.members.first().and_then(|(_, error)| *error);
                response.error_code = code(answer.error.or(member_error));
            }
        }
        Ok(_) => {}
        Err(error) => response.error_code = error.code(),
    }
    response
}
