//! ListGroups: the groups of every shard (of this shard only on its own port
//! in shard-aware mode), filtered by state (v4+) and type (v5+).

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse, RequestHeader};

use super::group_route::list_all;
use super::str_bytes;
use crate::group::{GroupState, GroupType};
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    let version = header.request_api_version;
    let states: Vec<GroupState> = request
        .states_filter
        .iter()
        .filter_map(|state| GroupState::parse(state.as_str()))
        .collect();
    let wants_state = request.states_filter.is_empty() || !states.is_empty();
    let types: Vec<GroupType> = request
        .types_filter
        .iter()
        .filter_map(|kind| GroupType::parse(kind.as_str()))
        .collect();
    let wants_type = request.types_filter.is_empty() || !types.is_empty();
    let mut response = ListGroupsResponse::default();
    if !wants_state || !wants_type {
        return response;
    }
    // Kafka lists every group to DESCRIBE on the cluster, else those the
    // principal may DESCRIBE.
    let all_groups = authorize::cluster(context, Operation::Describe);
    response.groups = list_all(context, states)
        .await
        .into_iter()
        .filter(|group| types.is_empty() || types.contains(&group.group_type))
        .filter(|group| {
            all_groups || authorize::group(context, Operation::Describe, &group.group_id)
        })
        .map(|group| {
            let mut entry = ListedGroup::default();
            entry.group_id = GroupId(str_bytes(group.group_id));
            entry.protocol_type = str_bytes(group.protocol_type);
            if version >= 4 {
                entry.group_state = str_bytes(group.state.as_str());
            }
            if version >= 5 {
                entry.group_type = str_bytes(group.group_type.as_str());
            }
            entry
        })
        .collect();
    response
}
