//! IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT (the last two
//! only on LIST configs such as `cleanup.policy`) on a topic's overrides,
//! applied by the controller (shard 0), and SET and DELETE on a BROKER
//! resource's dynamic configs (`broker_configs`). The checks and the way
//! to the controller shared with AlterConfigs are in `alter_configs.rs`.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    ApiKey, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, RequestHeader,
};

use super::alter_configs::{
    carry_out, check_brokers, forward_pending, forwarded_answer, forwarding, route, Resource,
};
use super::str_bytes;
use crate::config::ConfigOp;
use crate::metadata::broker_configs::BrokerConfigChange;
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

/// A BROKER resource's change: SET and DELETE; APPEND and SUBTRACT are
/// refused as Kafka refuses them on a config that is not a list (none of
/// the dynamic broker configs is one).
fn broker_change(
    resource: &AlterConfigsResource,
    validate_only: bool,
) -> Result<BrokerConfigChange, KafkaError> {
    let ops = resource
        .configs
        .iter()
        .map(|op| match (op.config_operation, &op.value) {
            (OP_SET, value) => Ok((
                op.name.to_string(),
                Some(value.as_deref().unwrap_or_default().to_string()),
            )),
            (OP_DELETE, _) => Ok((op.name.to_string(), None)),
            (OP_APPEND, _) | (OP_SUBTRACT, _) => Err(KafkaError::with_message(
                ResponseError::InvalidConfig,
                format!(
                    "Config value {} is not allowed for config key: {}",
                    if op.config_operation == OP_APPEND {
                        "append"
                    } else {
                        "subtract"
                    },
                    op.name.as_str()
                ),
            )),
            (other, _) => Err(KafkaError::with_message(
                ResponseError::InvalidRequest,
                format!("Unknown operations type {other}"),
            )),
        })
        .collect::<Result<_, _>>()?;
    Ok(BrokerConfigChange {
        name: resource.resource_name.to_string(),
        ops,
        replace: false,
        validate_only,
    })
}

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
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
                .filter(|config| config.config_operation != OP_DELETE && config.value.is_none())
                .map(|config| config.name.as_str())
                .collect(),
        })
        .collect();
    let mut routes = route(context, &resources);
    let validate_only = request.validate_only;
    check_brokers(context, &mut routes, |index| {
        broker_change(&request.resources[index], validate_only)
    })
    .await;
    if forwarding(context, ApiKey::IncrementalAlterConfigs, &routes) {
        let answers = |response: &IncrementalAlterConfigsResponse| {
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
            |request: &mut IncrementalAlterConfigsRequest| &mut request.resources,
            answers,
        )
        .await;
    }
    let topic_change = |index: usize| -> Result<TopicConfigChange, KafkaError> {
        let resource: &AlterConfigsResource = &request.resources[index];
        let ops = resource
            .configs
            .iter()
            .map(config_op)
            .collect::<Result<_, _>>()?;
        Ok(TopicConfigChange {
            topic: resource.resource_name.to_string(),
            change: ConfigChange::Incremental(ops),
            validate_only,
        })
    };
    let results = carry_out(context, routes, topic_change).await;
    let mut response = IncrementalAlterConfigsResponse::default();
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
