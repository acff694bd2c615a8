//! AlterConfigs (the legacy, non-incremental API): each resource's configs
//! replace its whole set, as in Kafka; what is not named goes back to its
//! default. Topic changes are applied by the controller (shard 0); BROKER
//! resources' are dynamic broker configs (`broker_configs`).
//!
//! Also what both alter APIs share: the checks made before anything
//! reaches the controller, as Kafka's broker makes them
//! (`ConfigAdminManager`): each resource at most once, each key at most
//! once per resource, no null value to set, a known resource type, then
//! a BROKER resource's own checks on the broker that receives it. What
//! passes goes to the controller: in a copy of the request holding only
//! it, forwarded (`forward::forward_request`), when this node is not the
//! controller, else to shard 0.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, ApiKey, RequestHeader};

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::{broker_configs, str_bytes};
use crate::metadata::broker_configs::BrokerConfigChange;
use crate::security::acl::Operation;
use crate::server::connection::ConnectionContext;
use crate::server::{authorize, forward};
use crate::shard::messages::{
    ConfigChange, KafkaError, ShardReply, ShardRequest, TopicConfigChange,
};
use crate::shard::CONTROLLER_SHARD;

/// One resource of an alter request, as the shared checks see it.
pub(super) struct Resource<'a> {
    pub resource_type: i8,
    pub name: &'a str,
    pub keys: Vec<&'a str>,
    /// Keys whose value is null where the operation needs one.
    pub null_values: Vec<&'a str>,
}

/// Where a resource goes after the shared checks.
pub(super) enum Route {
    /// To the controller.
    Topic,
    /// A BROKER resource: its own checks next (`broker_configs::check`).
    Broker,
    /// A BROKER resource's change that passed them, to the controller.
    BrokerChecked(BrokerConfigChange),
    /// Answered already.
    Done(Result<(), KafkaError>),
}

impl Route {
    /// Still to be carried out by the controller.
    pub(super) fn pending(&self) -> bool {
        matches!(self, Route::Topic | Route::BrokerChecked(_))
    }
}

fn invalid_request(message: String) -> KafkaError {
    KafkaError::with_message(ResponseError::InvalidRequest, message)
}

/// The shared checks, one route per resource, in order.
pub(super) fn route(context: &ConnectionContext, resources: &[Resource<'_>]) -> Vec<Route> {
    let mut seen = BTreeSet::new();
    let repeated: BTreeSet<(i8, &str)> = resources
        .iter()
        .filter(|resource| !seen.insert((resource.resource_type, resource.name)))
        .map(|resource| (resource.resource_type, resource.name))
        .collect();
    resources
        .iter()
        .map(|resource| {
            if repeated.contains(&(resource.resource_type, resource.name)) {
                return Route::Done(Err(invalid_request(
                    "Each resource must appear at most once.".to_string(),
                )));
            }
            let mut keys = BTreeSet::new();
            if !resource.keys.iter().all(|key| keys.insert(*key)) {
                return Route::Done(Err(invalid_request(
                    "Error due to duplicate config keys".to_string(),
                )));
            }
            if !resource.null_values.is_empty() {
                return Route::Done(Err(invalid_request(format!(
                    "Null value not supported for : {}",
                    resource.null_values.join(", ")
                ))));
            }
            let (kind, name) = (resource.resource_type, resource.name);
            if let Some(error) =
                authorize::config_resource(context, kind, name, Operation::AlterConfigs)
            {
                return Route::Done(Err(error));
            }
            match resource.resource_type {
                RESOURCE_TOPIC => Route::Topic,
                RESOURCE_BROKER => Route::Broker,
                other => Route::Done(Err(invalid_request(format!(
                    "Unknown resource type {other}"
                )))),
            }
        })
        .collect()
}

/// Runs the BROKER checks of each `Route::Broker`, whose change `change`
/// makes of its index (or refuses).
pub(super) async fn check_brokers(
    context: &ConnectionContext,
    routes: &mut [Route],
    change: impl Fn(usize) -> Result<BrokerConfigChange, KafkaError>,
) {
    for (index, route) in routes.iter_mut().enumerate() {
        if !matches!(route, Route::Broker) {
            continue;
        }
        let checked = match change(index) {
            Ok(change) => broker_configs::check(context, &change)
                .await
                .map(|()| change),
            Err(error) => Err(error),
        };
        *route = match checked {
            Ok(change) => Route::BrokerChecked(change),
            Err(error) => Route::Done(Err(error)),
        };
    }
}

/// Whether the pending routes go to the controller in a forwarded copy of
/// the request: this node is not the controller, and some are pending.
pub(super) fn forwarding(context: &ConnectionContext, api_key: ApiKey, routes: &[Route]) -> bool {
    forward::forwards(context, api_key) && routes.iter().any(Route::pending)
}

/// Answers the pending routes, in order, with the forwarded request's
/// `answers` (type, name, result), found by resource.
pub(super) fn take_forwarded(
    routes: &mut [Route],
    types_and_names: &[(i8, &str)],
    answers: Vec<(i8, String, Result<(), KafkaError>)>,
) {
    let mut answers = answers;
    for (route, (kind, name)) in routes.iter_mut().zip(types_and_names) {
        if !route.pending() {
            continue;
        }
        let found = answers
            .iter()
            .position(|(k, n, _)| k == kind && n == name)
            .map(|at| answers.swap_remove(at).2);
        *route = Route::Done(
            found.unwrap_or_else(|| Err(KafkaError::new(ResponseError::UnknownServerError))),
        );
    }
}

/// Forwards the pending routes' resources to the active controller, in a
/// copy of `request` that holds only them (`resources_of` names its
/// resource list), and takes the controller's answers (`answers` reads
/// them from its response as `forwarded_answer` makes them) into `routes`.
pub(super) async fn forward_pending<Req, Item>(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: &Req,
    resources: &[Resource<'_>],
    routes: &mut [Route],
    resources_of: impl Fn(&mut Req) -> &mut Vec<Item>,
    answers: impl Fn(&Req::Response) -> Vec<(i8, String, Result<(), KafkaError>)>,
) where
    Req: kafka_protocol::protocol::Request + Clone,
{
    let mut copy = request.clone();
    let all = std::mem::take(resources_of(&mut copy));
    *resources_of(&mut copy) = all
        .into_iter()
        .zip(routes.iter())
        .filter(|(_, route)| route.pending())
        .map(|(resource, _)| resource)
        .collect();
    if let Some(response) = forward::forward_request(context, header, &copy).await {
        let named: Vec<(i8, &str)> = resources
            .iter()
            .map(|resource| (resource.resource_type, resource.name))
            .collect();
        take_forwarded(routes, &named, answers(&response));
    }
}

/// One forwarded answer (resource type, name, error code, message) as
/// `take_forwarded` takes it.
pub(super) fn forwarded_answer(
    (resource_type, name, code, message): (i8, &str, i16, Option<&str>),
) -> (i8, String, Result<(), KafkaError>) {
    (
        resource_type,
        name.to_string(),
        answer_result(code, message),
    )
}

/// A response's error as a result.
pub(super) fn answer_result(code: i16, message: Option<&str>) -> Result<(), KafkaError> {
    match code {
        0 => Ok(()),
        code => Err(KafkaError {
            code,
            message: message.map(str::to_string),
        }),
    }
}

/// Sends the topic changes to the controller; one result per change.
pub(super) async fn apply(
    context: &ConnectionContext,
    changes: Vec<TopicConfigChange>,
) -> Vec<Result<(), KafkaError>> {
    let count = changes.len();
    applied(context, count, ShardRequest::AlterTopicConfigs(changes)).await
}

/// Sends `request`, holding `count` changes, to the controller; one
/// result per change.
pub(super) async fn applied(
    context: &ConnectionContext,
    count: usize,
    request: ShardRequest,
) -> Vec<Result<(), KafkaError>> {
    if count == 0 {
        return Vec::new();
    }
    match context.shard.call(CONTROLLER_SHARD, request).await {
        ShardReply::Applied(results) if results.len() == count => results,
        other => vec![Err(other.into_error()); count],
    }
}

/// Carries out the pending routes here (this node is the controller, or
/// the controller could not be reached: then each is answered
/// NOT_CONTROLLER): topics with `topic_changes` made of their indexes,
/// BROKER changes as checked. One result per route, in order.
pub(super) async fn carry_out(
    context: &ConnectionContext,
    routes: Vec<Route>,
    topic_change: impl Fn(usize) -> Result<TopicConfigChange, KafkaError>,
) -> Vec<Result<(), KafkaError>> {
    let mut routes = routes;
    let mut topics = Vec::new();
    for (index, route) in routes.iter_mut().enumerate() {
        if matches!(route, Route::Topic) {
            match topic_change(index) {
                Ok(change) => topics.push(change),
                Err(error) => *route = Route::Done(Err(error)),
            }
        }
    }
    let brokers: Vec<BrokerConfigChange> = routes
        .iter()
        .filter_map(|route| match route {
            Route::BrokerChecked(change) => Some(change.clone()),
            _ => None,
        })
        .collect();
    let mut topics = apply(context, topics).await.into_iter();
    let mut brokers = broker_configs::apply(context, brokers).await.into_iter();
    let lost = || Err(KafkaError::new(ResponseError::UnknownServerError));
    routes
        .into_iter()
        .map(|route| match route {
            Route::Topic => topics.next().unwrap_or_else(lost),
            Route::BrokerChecked(_) => brokers.next().unwrap_or_else(lost),
            Route::Broker => lost(),
            Route::Done(result) => result,
        })
        .collect()
}

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let resources: Vec<Resource<'_>> = request
        .resources
        .iter()
        .map(|resource| Resource {
            resource_type: resource.resource_type,
            name: resource.resource_name.as_str(),
            keys: resource.configs.iter().map(|c| c.name.as_str()).collect(),
            null_values: resource
                .configs
                .iter()
                .filter(|config| config.value.is_none())
                .map(|config| config.name.as_str())
                .collect(),
        })
        .collect();
    let mut routes = route(context, &resources);
    let broker_change = |index: usize| -> Result<BrokerConfigChange, KafkaError> {
        let resource = &request.resources[index];
        Ok(BrokerConfigChange {
            name: resource.resource_name.to_string(),
            ops: resource
                .configs
                .iter()
                .map(|op| {
                    (
                        op.name.to_string(),
                        op.value.as_ref().map(|v| v.to_string()),
                    )
                })
                .collect(),
            replace: true,
            validate_only: request.validate_only,
        })
    };
    check_brokers(context, &mut routes, broker_change).await;
    if forwarding(context, ApiKey::AlterConfigs, &routes) {
        let answers = |response: &AlterConfigsResponse| {
            let answers = response.responses.iter();
            answers
                .map(|a| {
                    (
                        a.resource_type,
                        a.resource_name.as_str(),
                        a.error_code,
                        a.error_message.as_deref(),
                    )
                })
                .map(forwarded_answer)
                .collect()
        };
        forward_pending(
            context,
            header,
            &request,
            &resources,
            &mut routes,
            |request: &mut AlterConfigsRequest| &mut request.resources,
            answers,
        )
        .await;
    }
    let topic_change = |index: usize| -> Result<TopicConfigChange, KafkaError> {
        let resource = &request.resources[index];
        Ok(TopicConfigChange {
            topic: resource.resource_name.to_string(),
            change: ConfigChange::Replace(
                resource
                    .configs
                    .iter()
                    .map(|config| {
                        let value = config.value.as_deref().unwrap_or_default();
                        (config.name.to_string(), value.to_string())
                    })
                    .collect(),
            ),
            validate_only: request.validate_only,
        })
    };
    let results = carry_out(context, routes, topic_change).await;
    let mut response = AlterConfigsResponse::default();
    response.responses = request
        .resources
        .iter()
        .zip(results)
        .map(|(resource, result)| {
            let mut answer = AlterConfigsResourceResponse::default();
            answer.resource_type = resource.resource_type;
            answer.resource_name = resource.resource_name.clone();
            if let Err(error) = result {
                answer.error_code = error.code;
                answer.error_message = error.message.map(str_bytes);
            }
            answer
        })
        .collect();
    response
}
