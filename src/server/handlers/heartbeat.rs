//! Heartbeat: keeps a member's session alive and tells it when to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse, RequestHeader};

use super::group_route::{call_group, code};
use crate::group;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{GroupAnswer, GroupCall};

pub async fn handle(
    context: &ConnectionContext,
    _header: &RequestHeader,
    request: HeartbeatRequest,
) -> HeartbeatResponse {
    let group_id = request.group_id.0.to_string();
    let beat = group::HeartbeatRequest {
        group_id: group_id.clone(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|id| id.to_string()),
    };
    let error = match call_group(context, &group_id, GroupCall::Heartbeat(beat)).await {
        Ok(GroupAnswer::Heartbeat(error)) => error,
        Ok(_) => None,
        Err(error) => Some(error),
    };
    let mut response = HeartbeatResponse::default();
    response.error_code = code(error);
    response
}
