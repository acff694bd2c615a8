//! IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT (the last two
//! only on LIST configs such as `cleanup.policy`) on a topic's overrides,
//! applied by the controller (shard 0), and on a broker's TLS listener
//! certificates (`tls_reload`). The checks shared with AlterConfigs are
//! in `alter_configs.rs`.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, RequestHeader,
};

use super::alter_configs::{apply, results, route, Resource, Route};
use super::describe_configs::RESOURCE_BROKER;
use super::str_bytes;
use super::tls_reload;
use crate::config::ConfigOp;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{ConfigChange, KafkaError, TopicConfigChange};

/// Kafka's `AlterConfigOp.OpType` codes.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// One config operation as the controller takes it, or Kafka's error for
/// an unknown operation code.
fn config_op(config: &AlterableConfig) -> Result<(String, ConfigOp), KafkaError> {
    let value = config.value.as_deref().unwrap_or_default().to_string();
    let op = match config.config_operation {
        OP_SET => ConfigOp::Set(value),
        OP_DELETE => ConfigOp::Delete,
        OP_APPEND => ConfigOp::Append(value),
        OP_SUBTRACT => ConfigOp::Subtract(value),
        other => {
            return Err(KafkaError::with_message(
                ResponseError::InvalidRequest,
                format!("Unknown operations type {other}"),
            ))
        }
    };
    Ok((config.name.to_string(), op))
}

/// The SET and DELETE operations of a broker resource on its reloadable
/// certificate keys (`tls_reload`); Kafka's answer to another operation.
fn certificate_changes(
    context: &ConnectionContext,
    resource: &AlterConfigsResource,
) -> Result<Vec<tls_reload::Change>, KafkaError> {
    let config = &context.shard.config;
    resource
        .configs
        .iter()
        .filter(|op| tls_reload::reloadable_listener(config, &op.name).is_some())
        .map(|op| match (op.config_operation, &op.value) {
            (OP_SET, Some(value)) => Ok((op.name.to_string(), Some(value.to_string()))),
            (OP_DELETE, _) => Ok((op.name.to_string(), None)),
            _ => Err(KafkaError::with_message(
                ResponseError::InvalidConfig,
                format!(
                    "{}: a certificate location is set or deleted",
                    op.name.as_str()
                ),
            )),
        })
        .collect()
}

pub async fn handle(
    context: &ConnectionContext,
    _header: &RequestHeader,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
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
            deleted: resource
                .configs
                .iter()
                .filter(|config| config.config_operation == OP_DELETE)
                .map(|config| config.name.as_str())
                .filter(|key| !reloadable(resource.resource_type, key))
                .collect(),
            null_values: resource
                .configs
                .iter()
                .filter(|config| config.config_operation != OP_DELETE && config.value.is_none())
                .map(|config| config.name.as_str())
                .collect(),
        })
        .collect();
    let mut routes = route(context, &resources);
    for (resource, route) in request.resources.iter().zip(routes.iter_mut()) {
        if resource.resource_type != RESOURCE_BROKER || !matches!(route, Route::Done(Ok(()))) {
            continue;
        }
        let name = resource.resource_name.as_str();
        let changes = certificate_changes(context, resource);
        *route = Route::Done(match changes {
            Ok(changes) => tls_reload::apply(context, name, changes, request.validate_only).await,
            Err(error) => Err(error),
        });
    }
    let mut changes = Vec::new();
    for (resource, route) in request.resources.iter().zip(routes.iter_mut()) {
        if !matches!(route, Route::Topic) {
            continue;
        }
        match resource.configs.iter().map(config_op).collect() {
            Ok(ops) => changes.push(TopicConfigChange {
                topic: resource.resource_name.to_string(),
                change: ConfigChange::Incremental(ops),
                validate_only: request.validate_only,
            }),
            Err(error) => *route = Route::Done(Err(error)),
        }
    }
    let applied = apply(context, changes).await;
    let mut response = IncrementalAlterConfigsResponse::default();
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
