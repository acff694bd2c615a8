//! AlterClientQuotas: sets and removes quotas of user, client-id and ip
//! entities, checked and committed by the controller
//! (`metadata::quotas::alter`, Kafka's validation and errors), forwarded
//! there from any other node (`forward.rs`). `validate_only` checks the
//! entries against this node's image and commits nothing. Needs
//! ALTER_CONFIGS on the cluster, as Kafka's authorization matrix says;
//! refused, every entry answers CLUSTER_AUTHORIZATION_FAILED.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};

use super::str_bytes;
use crate::metadata::quotas::{self, QuotaAlteration, QuotaResult};
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{ShardReply, ShardRequest};
use crate::shard::CONTROLLER_SHARD;

pub async fn handle(
    context: &ConnectionContext,
    request: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let alterations: Vec<QuotaAlteration> = request
        .entries
        .iter()
        .map(|entry| QuotaAlteration {
            entity: entry
                .entity
                .iter()
                .map(|entity| {
                    (
                        entity.entity_type.to_string(),
                        entity.entity_name.as_ref().map(|name| name.to_string()),
                    )
                })
                .collect(),
            ops: entry
                .ops
                .iter()
                .map(|op| (op.key.to_string(), (!op.remove).then_some(op.value)))
                .collect(),
        })
        .collect();
    let results = results(context, &alterations, request.validate_only).await;
    let mut response = AlterClientQuotasResponse::default();
    response.entries = alterations
        .iter()
        .zip(results)
        .map(|(alteration, result)| entry_answer(alteration, result))
        .collect();
    response
}

/// One result per entry: checked here when only validating, else decided
/// and committed by the controller.
async fn results(
    context: &ConnectionContext,
    alterations: &[QuotaAlteration],
    validate_only: bool,
) -> Vec<QuotaResult> {
    let every = |error: ResponseError, message: String| -> Vec<QuotaResult> {
        alterations
            .iter()
            .map(|_| Some((error, message.clone())))
            .collect()
    };
    if !authorize::cluster(context, Operation::AlterConfigs) {
        let error = ResponseError::ClusterAuthorizationFailed;
        return every(error, error.to_string());
    }
    if validate_only {
        let view = context.shard.view();
        return quotas::alter(&view.quotas, alterations).1;
    }
    let request = ShardRequest::AlterQuotas(alterations.to_vec());
    match context.shard.call(CONTROLLER_SHARD, request).await {
        ShardReply::Quotas(results) if results.len() == alterations.len() => results,
        other => {
            let failure = other.into_error();
            let error = ResponseError::try_from_code(failure.code)
                .unwrap_or(ResponseError::UnknownServerError);
            every(error, failure.message.unwrap_or_default())
        }
    }
}

fn entry_answer(alteration: &QuotaAlteration, result: QuotaResult) -> EntryData {
    let mut entry = EntryData::default();
    entry.entity = alteration
        .entity
        .iter()
        .map(|(entity_type, name)| {
            let mut data = EntityData::default();
            data.entity_type = str_bytes(entity_type.clone());
            data.entity_name = name.clone().map(str_bytes);
            data
        })
        .collect();
    // Null on success, as Kafka answers (the crate's default is "").
    entry.error_message = result.map(|(error, message)| {
        entry.error_code = error.code();
        str_bytes(message)
    });
    entry
}
