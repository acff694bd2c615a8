//! ConsumerGroupDescribe (KIP-848): epochs, assignor, and each member's
//! subscription, current and target assignment, asked of each group's
//! coordinator shard.

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, GroupId, RequestHeader, TopicName,
};

use super::group_route::{call_group, code};
use super::{authorized, str_bytes};
use crate::group::DescribedTopicPartitions;
use crate::security::acl::ResourceType;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{GroupAnswer, GroupCall};

/// ConsumerGroupDescribe v1 `memberType` of a member speaking the consumer
/// protocol (0 is classic, -1 unknown).
const CONSUMER_MEMBER_TYPE: i8 = 1;

pub async fn handle(
    context: &ConnectionContext,
    _header: &RequestHeader,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let mut response = ConsumerGroupDescribeResponse::default();
    for group_id in &request.group_ids {
        let name = group_id.0.to_string();
        let mut entry = DescribedGroup::default();
        entry.group_id = GroupId(group_id.0.clone());
        let call = GroupCall::ConsumerDescribe(vec![name.clone()]);
        match call_group(context, &name, call).await {
            Ok(GroupAnswer::ConsumerDescribed(mut groups)) if groups.len() == 1 => {
                let group = groups.remove(0);
                entry.error_code = code(group.error);
                entry.error_message = group.error_message.map(str_bytes);
                entry.group_state = str_bytes(group.state.as_str());
                entry.group_epoch = group.group_epoch;
                entry.assignment_epoch = group.assignment_epoch;
                entry.assignor_name = str_bytes(group.assignor_name);
                entry.members = group
                    .members
                    .into_iter()
                    .map(|member| {
                        let mut out = Member::default();
                        out.member_id = str_bytes(member.member_id);
                        out.instance_id = member.instance_id.map(str_bytes);
                        out.rack_id = member.rack_id.map(str_bytes);
                        out.member_epoch = member.member_epoch;
                        out.client_id = str_bytes(member.client_id);
                        out.client_host = str_bytes(member.client_host);
                        out.subscribed_topic_names = member
                            .subscribed_topic_names
                            .into_iter()
                            .map(|name| TopicName(str_bytes(name)))
                            .collect();
                        out.subscribed_topic_regex = member.subscribed_topic_regex.map(str_bytes);
                        out.assignment = assignment(member.assignment);
                        out.target_assignment = assignment(member.target_assignment);
                        out.member_type = CONSUMER_MEMBER_TYPE;
                        out
                    })
                    .collect();
            }
            Ok(_) => {
                entry.error_code = kafka_protocol::error::ResponseError::UnknownServerError.code()
            }
            Err(error) => entry.error_code = error.code(),
        }
        if request.include_authorized_operations && entry.error_code == 0 {
            entry.authorized_operations =
                authorize::operations(context, ResourceType::Group, &name, authorized::GROUP);
        }
        response.groups.push(entry);
    }
    response
}

fn assignment(topics: Vec<DescribedTopicPartitions>) -> Assignment {
    let mut out = Assignment::default();
    out.topic_partitions = topics
        .into_iter()
        .map(|topic| {
            let mut entry = TopicPartitions::default();
            entry.topic_id = topic.topic_id;
            entry.topic_name = TopicName(str_bytes(topic.topic_name));
            entry.partitions = topic.partitions;
            entry
        })
        .collect();
    out
}
