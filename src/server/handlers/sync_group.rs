//! SyncGroup: the leader hands in the assignment; every member gets its share.

use kafka_protocol::messages::{RequestHeader, SyncGroupRequest, SyncGroupResponse};

use super::group_route::{call_group, code};
use super::str_bytes;
use crate::group::{SyncRequest, SyncResponse};
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{GroupAnswer, GroupCall};

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: SyncGroupRequest,
) -> SyncGroupResponse {
    let version = header.request_api_version;
    let group_id = request.group_id.0.to_string();
    let sync = SyncRequest {
        group_id: group_id.clone(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|id| id.to_string()),
        protocol_type: request.protocol_type.as_ref().map(|name| name.to_string()),
        protocol_name: request.protocol_name.as_ref().map(|name| name.to_string()),
        assignments: request
            .assignments
            .iter()
            .map(|assignment| {
                (
                    assignment.member_id.to_string(),
                    assignment.assignment.clone(),
                )
            })
            .collect(),
    };
    let answer = match call_group(context, &group_id, GroupCall::Sync(sync)).await {
        Ok(GroupAnswer::Sync(answer)) => answer,
        Ok(_) => SyncResponse::default(),
        Err(error) => SyncResponse {
            error: Some(error),
            ..SyncResponse::default()
        },
    };
    let mut response = SyncGroupResponse::default();
    response.error_code = code(answer.error);
    if version >= 5 {
        response.protocol_type = answer.protocol_type.map(str_bytes);
        response.protocol_name = answer.protocol_name.map(str_bytes);
    }
    response.assignment = answer.assignment;
    response
}
