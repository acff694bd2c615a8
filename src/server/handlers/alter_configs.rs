//! AlterConfigs (the legacy, non-incremental API): each topic resource's
//! configs replace its whole override set, as in Kafka; what is not named
//! goes back to its default. Applied by the controller (shard 0).
//!
//! Also the checks both alter APIs share, made before anything reaches the
//! controller, as Kafka's broker makes them (`ConfigAdminManager`): each
//! resource at most once, each key at most once per resource, no null value
//! to set, a known resource type. Broker resources end there but for a
//! TLS listener's certificate locations (`tls_reload`): shoal has no other
//! dynamic broker configs, so a change to one is refused with Kafka's answer
//! for a config that cannot be updated dynamically (INVALID_REQUEST), and an
//! empty change or a delete succeeds.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, RequestHeader};

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::{str_bytes, tls_reload};
use crate::metadata::ClusterView;
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
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
    /// Keys the change deletes (IncrementalAlterConfigs' DELETE).
    pub deleted: Vec<&'a str>,
}

/// Where a resource goes after the shared checks.
pub(super) enum Route {
    /// To the controller.
    Topic,
    /// Answered already.
    Done(Result<(), KafkaError>),
}

fn invalid_request(message: String) -> KafkaError {
    KafkaError::with_message(ResponseError::InvalidRequest, message)
}

/// The shared checks, one route per resource, in order.
pub(super) fn route(context: &ConnectionContext, resources: &[Resource<'_>]) -> Vec<Route> {
    let view = context.shard.view();
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
                RESOURCE_BROKER => Route::Done(broker_change(&view, resource)),
                other => Route::Done(Err(invalid_request(format!(
                    "Unknown resource type {other}"
                )))),
            }
        })
        .collect()
}

/// A change to a broker's configs: the resource must name a registered
/// broker (or be empty, for the cluster default; the request may have been
/// forwarded to the controller's node, so not necessarily this one), and no
/// config can be set. Deleting one succeeds: with no dynamic broker configs
/// there is none to delete, and the broker keeps its static value, which is
/// what a delete leaves (kafka-reassign-partitions --verify deletes its
/// throttles so).
fn broker_change(view: &ClusterView, resource: &Resource<'_>) -> Result<(), KafkaError> {
    if !resource.name.is_empty() {
        let id: i32 = resource.name.parse().map_err(|_| {
            invalid_request(format!(
                "Node id must be an integer, but it is: {}",
                resource.name
            ))
        })?;
        if !view.brokers().iter().any(|broker| broker.id == id) {
            let expected: Vec<String> = view
                .brokers()
                .iter()
                .map(|broker| broker.id.to_string())
                .collect();
            return Err(invalid_request(format!(
                "Unexpected broker id, expected {}, but received {}",
                expected.join(" or "),
                resource.name
            )));
        }
    }
    let set: Vec<&str> = resource
        .keys
        .iter()
        .filter(|key| !resource.deleted.contains(key))
        .copied()
        .collect();
    if set.is_empty() {
        return Ok(());
    }
    Err(invalid_request(format!(
        "Cannot update these configs dynamically: {}. shoal reads broker configs at start only: \
         set them in the config file or with --override and restart.",
        set.join(", ")
    )))
}

/// Sends the topic changes to the controller; one result per change.
pub(super) async fn apply(
    context: &ConnectionContext,
    changes: Vec<TopicConfigChange>,
) -> Vec<Result<(), KafkaError>> {
    if changes.is_empty() {
        return Vec::new();
    }
    let count = changes.len();
    match context
        .shard
        .call(CONTROLLER_SHARD, ShardRequest::AlterTopicConfigs(changes))
        .await
    {
        ShardReply::Applied(results) if results.len() == count => results,
        other => vec![Err(other.into_error()); count],
    }
}

/// Fills the routes' results in order: `Topic` routes take the next of
/// `applied`.
pub(super) fn results(
    routes: Vec<Route>,
    applied: Vec<Result<(), KafkaError>>,
) -> Vec<Result<(), KafkaError>> {
    let mut applied = applied.into_iter();
    routes
        .into_iter()
        .map(|route| match route {
            Route::Topic => applied
                .next()
                .unwrap_or_else(|| Err(KafkaError::new(ResponseError::UnknownServerError))),
            Route::Done(result) => result,
        })
        .collect()
}

pub async fn handle(
    context: &ConnectionContext,
    _header: &RequestHeader,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    // A broker's certificate keys are `tls_reload`'s, not `route`'s.
    let config = &context.shard.config;
    let reloadable = |resource_type: i8, key: &str| {
        resource_type == RESOURCE_BROKER && tls_reload::reloadable_listener(config, key).is_some()
    };
    let resources: Vec<Resource<'_>> = request
        .resources
        .iter()
        .map(|resource| Resource {
            resource_type: resource.resource_type,
            name: resource.resource_name.as_str(),
            keys: resource
                .configs
                .iter()
                .map(|c| c.name.as_str())
                .filter(|key| !reloadable(resource.resource_type, key))
                .collect(),
            deleted: Vec::new(),
            null_values: resource
                .configs
                .iter()
                .filter(|config| config.value.is_none())
                .map(|config| config.name.as_str())
                .collect(),
        })
        .collect();
    let mut routes = route(context, &resources);
    for (resource, route) in request.resources.iter().zip(routes.iter_mut()) {
        if resource.resource_type != RESOURCE_BROKER || !matches!(route, Route::Done(Ok(()))) {
            continue;
        }
        let changes = resource
            .configs
            .iter()
            .filter(|op| reloadable(resource.resource_type, &op.name))
            .map(|op| {
                (
                    op.name.to_string(),
                    op.value.as_ref().map(|v| v.to_string()),
                )
            })
            .collect();
        let name = resource.resource_name.as_str();
        *route =
            Route::Done(tls_reload::apply(context, name, changes, request.validate_only).await);
    }
    let changes = request
        .resources
        .iter()
        .zip(&routes)
        .filter(|(_, route)| matches!(route, Route::Topic))
        .map(|(resource, _)| TopicConfigChange {
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
        .collect();
    let applied = apply(context, changes).await;
    let mut response = AlterConfigsResponse::default();
    response.responses = request
        .resources
        .iter()
        .zip(results(routes, applied))
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
