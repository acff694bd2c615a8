//! DeleteGroups: removes empty groups and their offsets.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, GroupId, RequestHeader};

use super::group_route::{call_group, code};
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{GroupAnswer, GroupCall};

pub async fn handle(
    context: &ConnectionContext,
    _header: &RequestHeader,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut response = DeleteGroupsResponse::default();
    for group_id in &request.groups_names {
        let mut result = DeletableGroupResult::default();
        result.group_id = GroupId(group_id.0.clone());
        result.error_code = match call_group(
            context,
            group_id.0.as_str(),
            GroupCall::Delete(group_id.0.to_string()),
        )
        .await
        {
            Ok(GroupAnswer::Deleted(error)) => code(error),
            Ok(_) => 0,
            Err(error) => error.code(),
        };
        response.results.push(result);
    }
    response
}
