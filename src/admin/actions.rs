//! The console's admin actions, off unless `admin.console.actions.enabled`:
//! `POST /v1/console/actions/create-topic` and `POST
//! /v1/console/actions/reset-offsets`, each a JSON object in the body;
//! `GET /v1/console/actions` tells the page whether they are on and how
//! it authenticates.
//!
//! Each action is the Kafka API it stands for, run in-process (`kafka`):
//! creating a topic is a CreateTopics request (validated and placed by
//! the controller, forwarded to it from any other node); resetting a
//! group's offsets is kafka-consumer-groups' `--reset-offsets --execute`:
//! DescribeGroups (only a group without active members, Empty or Dead,
//! is reset), ListOffsets for the partitions' earliest and latest offsets
//! (a given offset is kept within them, as the tool does), then an
//! OffsetCommit from outside group management (generation -1), through
//! the group coordinator. Kafka's errors come back as HTTP statuses with
//! Kafka's names (`kafka::status`).
//!
//! On a cluster the group's coordinator, and the leaders ListOffsets asks,
//! must be this node: otherwise the answer is a 409 naming the node to ask
//! (NOT_COORDINATOR, NOT_LEADER_OR_FOLLOWER); the console does not relay.
//!
//! Invariant: no change without all of: actions enabled; a POST with the
//! `X-Shoal-Console` header and, if it says where it comes from, an
//! `Origin` of this listener (a cross-site form or script can do neither
//! without a CORS preflight, which is never answered); a body within
//! `http::BODY_BYTES_MAX`; and, while an authorizer is on, Basic
//! credentials of a user the ACLs allow (`auth`), checked again by the
//! Kafka handler itself.

use std::net::SocketAddr;
use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId,
    ListOffsetsRequest, OffsetCommitRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth;
use super::browse::{EARLIEST, LATEST};
use super::http::{Request, Response};
use super::kafka::{self, refusal};
use crate::security::acl::{Operation, ResourceType, CLUSTER_NAME};
use crate::server::connection::ConnectionContext;
use crate::server::forward;
use crate::shard::Shard;

/// The header a console request carries: a page of another site cannot
/// set it without a CORS preflight, which this listener does not answer.
pub const CONSOLE_HEADER: &str = "x-shoal-console";
/// How long CreateTopics waits for the controller (its `timeout_ms`).
const CREATE_TIMEOUT_MS: i32 = 30_000;
/// Partitions one reset names at most: a topic's worth, bounded as the
/// console lists them.
const RESET_PARTITIONS_MAX: usize = super::console::PARTITIONS_LISTED_MAX;
/// The API versions the actions speak: the newest each handler takes
/// that the handlers here all answer alike.
const CREATE_TOPICS_VERSION: i16 = 7;
const DESCRIBE_GROUPS_VERSION: i16 = 5;
const FIND_COORDINATOR_VERSION: i16 = 4;
const LIST_OFFSETS_VERSION: i16 = 7;
const OFFSET_COMMIT_VERSION: i16 = 8;
/// The group states kafka-consumer-groups resets: no active member.
const INACTIVE_STATES: [&str; 2] = ["Empty", "Dead"];

/// The actions' answer to `request`, or `None` when its path is not
/// theirs.
pub async fn route(
    shard: &Rc<Shard>,
    request: &Request,
    peer: Option<SocketAddr>,
) -> Option<Response> {
    let path = request.path.as_str();
    let action = match path {
        "/v1/console/actions" => {
            return Some(match request.method.as_str() {
                "GET" | "HEAD" => status(shard),
                _ => Response::method_not_allowed("GET, HEAD"),
            })
        }
        "/v1/console/actions/create-topic" => Action::CreateTopic,
        "/v1/console/actions/reset-offsets" => Action::ResetOffsets,
        _ => return None,
    };
    if request.method != "POST" {
        return Some(Response::method_not_allowed("POST"));
    }
    Some(act(shard, request, peer, action).await)
}

#[derive(Clone, Copy, Debug)]
enum Action {
    CreateTopic,
    ResetOffsets,
}

fn status(shard: &Shard) -> Response {
    let authentication = match shard.config.authorizer.enabled {
        true => "basic",
        false => "none",
    };
    Response::json(
        200,
        &json!({
            "enabled": shard.config.observability.console_actions_enabled,
            "authentication": authentication,
        }),
    )
}

async fn act(
    shard: &Rc<Shard>,
    request: &Request,
    peer: Option<SocketAddr>,
    action: Action,
) -> Response {
    if !shard.config.observability.console_actions_enabled {
        return refuse(
            403,
            "console actions are off (admin.console.actions.enabled=false)",
        );
    }
    if let Err(reason) = same_origin(request) {
        log::info!("console action from {peer:?} refused: {reason}");
        return refuse(403, &reason);
    }
    let principal = match auth::principal(shard, request, peer) {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    let context = kafka::context(shard, principal.clone(), peer);
    let outcome = match action {
        Action::CreateTopic => match parse(&request.body) {
            Ok(topic) => create_topic(&context, topic).await,
            Err(response) => Err(response),
        },
        Action::ResetOffsets => match parse(&request.body) {
            Ok(reset) => reset_offsets(&context, reset).await,
            Err(response) => Err(response),
        },
    };
    outcome.unwrap_or_else(|refused| {
        log::info!(
            "console: {action:?} of {principal} from {peer:?} refused: {} {}",
            refused.status,
            String::from_utf8_lossy(&refused.body).trim_end()
        );
        refused
    })
}

/// Refuses a request a page of another site could have sent: without the
/// console's header, or with an `Origin` other than this listener's.
fn same_origin(request: &Request) -> Result<(), String> {
    if request.header(CONSOLE_HEADER).is_none() {
        return Err("a console action needs the X-Shoal-Console header".to_string());
    }
    match (request.header("origin"), request.header("host")) {
        (None, _) => Ok(()),
        (Some(origin), Some(host)) if origin == format!("http://{host}") => Ok(()),
        (Some(origin), _) => Err(format!("cross-site request from {origin} refused")),
    }
}

fn refuse(status: u16, reason: &str) -> Response {
    Response::json(status, &json!({ "error": reason }))
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, Response> {
    serde_json::from_slice(body)
        .map_err(|error| refuse(400, &format!("the body is not the action's JSON: {error}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTopic {
    name: String,
    partitions: i32,
    replication_factor: i16,
    #[serde(default)]
    configs: std::collections::BTreeMap<String, String>,
}

/// CreateTopics for one topic, authorized (CREATE on the cluster or the
/// topic) and forwarded as the Kafka API is.
async fn create_topic(context: &ConnectionContext, topic: NewTopic) -> Result<Response, Response> {
    let principal = context.principal.borrow().clone();
    let allowed =
        |resource_type, name: &str| auth::may(context, Operation::Create, resource_type, name);
    if !allowed(ResourceType::Cluster, CLUSTER_NAME) && !allowed(ResourceType::Topic, &topic.name) {
        return Err(auth::forbidden(
            &principal,
            &format!(
                "create topic {:?} (CREATE on the cluster or the topic)",
                topic.name
            ),
        ));
    }
    let creatable = forward::creatable_topic(crate::shard::messages::NewTopic {
        name: topic.name.clone(),
        partitions: topic.partitions,
        replication_factor: topic.replication_factor,
        configs: topic.configs.clone().into_iter().collect(),
        assignments: Vec::new(),
        validate_only: false,
    });
    let request = CreateTopicsRequest::default()
        .with_topics(vec![creatable])
        .with_timeout_ms(CREATE_TIMEOUT_MS);
    let response = kafka::call(context, CREATE_TOPICS_VERSION, &request).await?;
    let Some(result) = response.topics.first() else {
        return Err(refusal(ResponseError::UnknownServerError.code(), None));
    };
    if result.error_code != 0 {
        return Err(refusal(result.error_code, result.error_message.as_deref()));
    }
    // Kafka hides the counts from a user without DESCRIBE_CONFIGS (-1):
    // then the request's are shown.
    let partitions = Some(result.num_partitions).filter(|n| *n >= 0);
    let replication = Some(result.replication_factor).filter(|n| *n >= 0);
    let partitions = partitions.unwrap_or(topic.partitions);
    let replication = replication.unwrap_or(topic.replication_factor);
    log::info!(
        "console: {principal} created topic {} ({partitions} partitions, replication factor {replication})",
        topic.name
    );
    Ok(Response::json(
        200,
        &json!({
            "name": topic.name,
            "id": result.topic_id.to_string(),
            "partitions": partitions,
            "replication_factor": replication,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reset {
    group: String,
    topic: String,
    /// None: every partition of the topic.
    #[serde(default)]
    partitions: Option<Vec<i32>>,
    to: ResetTo,
    /// With `to: "offset"`.
    #[serde(default)]
    offset: Option<i64>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum ResetTo {
    Earliest,
    Latest,
    Offset,
}

/// kafka-consumer-groups' `--reset-offsets --execute` for one topic (or
/// some of its partitions).
async fn reset_offsets(context: &ConnectionContext, reset: Reset) -> Result<Response, Response> {
    let principal = context.principal.borrow().clone();
    let may_read =
        |resource_type, name: &str| auth::may(context, Operation::Read, resource_type, name);
    if !may_read(ResourceType::Group, &reset.group) {
        return Err(auth::forbidden(
            &principal,
            &format!("reset group {:?} (READ on the group)", reset.group),
        ));
    }
    if !may_read(ResourceType::Topic, &reset.topic) {
        return Err(auth::forbidden(
            &principal,
            &format!(
                "commit offsets of topic {:?} (READ on the topic)",
                reset.topic
            ),
        ));
    }
    let partitions = reset_partitions(context, &reset)?;
    require_inactive(context, &reset.group).await?;
    let earliest = list_offsets(context, &reset.topic, &partitions, EARLIEST).await?;
    let latest = list_offsets(context, &reset.topic, &partitions, LATEST).await?;
    let offsets: Vec<(i32, i64)> = partitions
        .iter()
        .zip(earliest.iter().zip(&latest))
        .map(|(&partition, (&low, &high))| {
            let offset = match reset.to {
                ResetTo::Earliest => low,
                ResetTo::Latest => high,
                // Kafka's tool keeps a given offset within the log.
                ResetTo::Offset => reset.offset.unwrap_or(low).clamp(low, high.max(low)),
            };
            (partition, offset)
        })
        .collect();
    commit(context, &reset, &offsets).await?;
    log::info!(
        "console: {principal} reset group {} on {} partitions of {}",
        reset.group,
        offsets.len(),
        reset.topic
    );
    let listed: Vec<Value> = offsets
        .iter()
        .map(|(partition, offset)| json!({ "partition": partition, "offset": offset }))
        .collect();
    Ok(Response::json(
        200,
        &json!({ "group": reset.group, "topic": reset.topic, "offsets": listed }),
    ))
}

/// The partitions a reset names, each of the topic, at most
/// `RESET_PARTITIONS_MAX`; an offset given when, and only when, it says
/// `to: "offset"`.
fn reset_partitions(context: &ConnectionContext, reset: &Reset) -> Result<Vec<i32>, Response> {
    match (reset.to, reset.offset) {
        (ResetTo::Offset, Some(offset)) if offset >= 0 => {}
        (ResetTo::Offset, _) => return Err(refuse(400, "to: \"offset\" needs an offset >= 0")),
        (_, Some(_)) => return Err(refuse(400, "an offset goes with to: \"offset\" only")),
        (_, None) => {}
    }
    if reset.group.is_empty() {
        return Err(refusal(ResponseError::InvalidGroupId.code(), None));
    }
    let view = context.shard.view();
    let Some(meta) = view.topic(&reset.topic) else {
        return Err(refusal(
            ResponseError::UnknownTopicOrPartition.code(),
            Some(&format!("no topic {:?}", reset.topic)),
        ));
    };
    let mut partitions = match &reset.partitions {
        Some(partitions) => partitions.clone(),
        None => (0..meta.partitions).collect(),
    };
    partitions.sort_unstable();
    partitions.dedup();
    if partitions.is_empty() || partitions.len() > RESET_PARTITIONS_MAX {
        return Err(refuse(
            400,
            &format!("name 1 to {RESET_PARTITIONS_MAX} partitions"),
        ));
    }
    if let Some(missing) = partitions
        .iter()
        .find(|p| !(0..meta.partitions).contains(*p))
    {
        return Err(refusal(
            ResponseError::UnknownTopicOrPartition.code(),
            Some(&format!("no partition {}-{missing}", reset.topic)),
        ));
    }
    Ok(partitions)
}

/// Refuses a group with active members (kafka-consumer-groups' check),
/// and a group this node does not coordinate, naming its coordinator.
async fn require_inactive(context: &ConnectionContext, group: &str) -> Result<(), Response> {
    let request = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let response = kafka::call(context, DESCRIBE_GROUPS_VERSION, &request).await?;
    let Some(described) = response.groups.first() else {
        return Err(refusal(ResponseError::UnknownServerError.code(), None));
    };
    match ResponseError::try_from_code(described.error_code) {
        None | Some(ResponseError::GroupIdNotFound) => {}
        Some(ResponseError::NotCoordinator) => return Err(not_coordinator(context, group).await),
        Some(_) => {
            return Err(refusal(
                described.error_code,
                described.error_message.as_deref(),
            ))
        }
    }
    let state = described.group_state.as_str();
    if described.error_code == 0 && !INACTIVE_STATES.contains(&state) {
        return Err(refusal(
            ResponseError::NonEmptyGroup.code(),
            Some(&format!(
                "Assignments can only be reset if the group '{group}' is inactive, but the current state is {state} ({} members)",
                described.members.len()
            )),
        ));
    }
    Ok(())
}

/// NOT_COORDINATOR naming the node that coordinates `group`, found with
/// FindCoordinator.
async fn not_coordinator(context: &ConnectionContext, group: &str) -> Response {
    let request = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![StrBytes::from_string(group.to_string())]);
    let found = kafka::call(context, FIND_COORDINATOR_VERSION, &request).await;
    let named = found.ok().and_then(|response| {
        let coordinator = response.coordinators.into_iter().next()?;
        (coordinator.error_code == 0).then(|| {
            format!(
                "the coordinator of group '{group}' is node {} ({}:{}): use its admin listener",
                coordinator.node_id.0, coordinator.host, coordinator.port
            )
        })
    });
    let message = named.unwrap_or_else(|| format!("this node does not coordinate group '{group}'"));
    refusal(ResponseError::NotCoordinator.code(), Some(&message))
}

/// The offsets ListOffsets answers at `timestamp` for `partitions` of
/// `topic`, in their order.
async fn list_offsets(
    context: &ConnectionContext,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> Result<Vec<i64>, Response> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&partition| {
                        ListOffsetsPartition::default()
                            .with_partition_index(partition)
                            .with_current_leader_epoch(-1)
                            .with_timestamp(timestamp)
                    })
                    .collect(),
            )]);
    let response = kafka::call(context, LIST_OFFSETS_VERSION, &request).await?;
    let answered: Vec<_> = response
        .topics
        .into_iter()
        .flat_map(|topic| topic.partitions)
        .collect();
    partitions
        .iter()
        .map(|&partition| {
            let answer = answered
                .iter()
                .find(|answer| answer.partition_index == partition);
            match answer {
                Some(answer) if answer.error_code == 0 => Ok(answer.offset),
                Some(answer) => Err(not_here(context, topic, partition, answer.error_code)),
                None => Err(refusal(ResponseError::UnknownServerError.code(), None)),
            }
        })
        .collect()
}

/// A partition's ListOffsets error; NOT_LEADER_OR_FOLLOWER names its
/// leader.
fn not_here(context: &ConnectionContext, topic: &str, partition: i32, code: i16) -> Response {
    if code != ResponseError::NotLeaderOrFollower.code() {
        return refusal(code, None);
    }
    let view = context.shard.view();
    let leader = view
        .topic(topic)
        .map(|meta| view.state(meta, partition).leader);
    let message = format!(
        "node {:?} leads {topic}-{partition}, not this one: use its admin listener",
        leader.unwrap_or(-1)
    );
    refusal(code, Some(&message))
}

/// OffsetCommit of `offsets` to `reset.group`, from outside group
/// management (generation -1, no member), as the tool commits.
async fn commit(
    context: &ConnectionContext,
    reset: &Reset,
    offsets: &[(i32, i64)],
) -> Result<(), Response> {
    let partitions = offsets
        .iter()
        .map(|&(partition, offset)| {
            OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(StrBytes::from_static_str("")))
        })
        .collect();
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(reset.group.clone())))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_string(reset.topic.clone())))
            .with_partitions(partitions)]);
    let response = kafka::call(context, OFFSET_COMMIT_VERSION, &request).await?;
    let failed = response
        .topics
        .iter()
        .flat_map(|topic| &topic.partitions)
        .find(|partition| partition.error_code != 0);
    match failed {
        None => Ok(()),
        Some(partition) if partition.error_code == ResponseError::NotCoordinator.code() => {
            Err(not_coordinator(context, &reset.group).await)
        }
        Some(partition) => Err(refusal(
            partition.error_code,
            Some(&format!(
                "the commit of partition {} was refused: {}",
                partition.partition_index,
                crate::client::error::error_name(partition.error_code)
            )),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        Request {
            method: "POST".into(),
            path: "/v1/console/actions/create-topic".into(),
            query: String::new(),
            headers: headers
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            body: Vec::new(),
        }
    }

    #[test]
    fn only_the_consoles_own_requests_act() {
        let host = ("host", "127.0.0.1:9644");
        let console = (CONSOLE_HEADER, "1");
        assert!(same_origin(&request(&[host, console])).is_ok());
        assert!(same_origin(&request(&[
            host,
            console,
            ("origin", "http://127.0.0.1:9644")
        ]))
        .is_ok());
        assert!(same_origin(&request(&[host])).is_err());
        assert!(same_origin(&request(&[
            host,
            console,
            ("origin", "http://evil.example")
        ]))
        .is_err());
        assert!(same_origin(&request(&[console, ("origin", "http://127.0.0.1:9644")])).is_err());
    }

    #[test]
    fn resets_parse_with_their_target() {
        let reset: Reset =
            parse(br#"{"group":"g","topic":"t","to":"offset","offset":4,"partitions":[0]}"#)
                .unwrap_or_else(|_| panic!("parses"));
        assert!(reset.to == ResetTo::Offset && reset.offset == Some(4));
        assert!(parse::<Reset>(br#"{"group":"g","topic":"t","to":"middle"}"#).is_err());
        assert!(parse::<Reset>(br#"{"group":"g","topic":"t","to":"latest","extra":1}"#).is_err());
        assert!(parse::<NewTopic>(br#"{"name":"t","partitions":1}"#).is_err());
    }
}
