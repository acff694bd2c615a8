//! JoinGroup: enters the group's join barrier on its coordinator shard and
//! answers when the barrier closes (or at once with an error).

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse, RequestHeader};

use super::group_route::{call_group, code};
use super::str_bytes;
use crate::group::{JoinRequest, JoinResponse};
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{GroupAnswer, GroupCall};

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: JoinGroupRequest,
) -> JoinGroupResponse {
    let version = header.request_api_version;
    let group_id = request.group_id.0.to_string();
    let join = JoinRequest {
        group_id: group_id.clone(),
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|id| id.to_string()),
        client_id: header
            .client_id
            .as_ref()
            .map(|id| id.to_string())
            .unwrap_or_default(),
        client_host: context.client_host(),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .iter()
            .map(|protocol| (protocol.name.to_string(), protocol.metadata.clone()))
            .collect(),
        reason: request.reason.as_ref().map(|reason| reason.to_string()),
        api_version: version,
    };
    let answer = match call_group(context, &group_id, GroupCall::Join(join)).await {
        Ok(GroupAnswer::Join(answer)) => answer,
        Ok(_) => JoinResponse::default(),
        Err(error) => JoinResponse {
            error: Some(error),
            generation_id: -1,
            member_id: request.member_id.to_string(),
            ..JoinResponse::default()
        },
    };
    let mut response = JoinGroupResponse::default();
    response.error_code = code(answer.error);
    response.generation_id = answer.generation_id;
    if version >= 7 {
        response.protocol_type = answer.protocol_type.map(str_bytes);
    }
    // Before v7 the protocol name is not nullable.
    response.protocol_name = match answer.protocol_name {
        Some(name) => Some(str_bytes(name)),
        None if version < 7 => Some(str_bytes("")),
        None => None,
    };
    response.leader = str_bytes(answer.leader);
    if version >= 9 {
        response.skip_assignment = answer.skip_assignment;
    }
    response.member_id = str_bytes(answer.member_id);
    response.members = answer
        .members
        .into_iter()
        .map(|member| {
            let mut entry = JoinGroupResponseMember::default();
            entry.member_id = str_bytes(member.member_id);
            if version >= 5 {
                entry.group_instance_id = member.group_instance_id.map(str_bytes);
            }
            entry.metadata = member.metadata;
            entry
        })
        .collect();
    response
}
