//! DescribeClientQuotas: the quotas of the entities a filter matches,
//! from this shard's view of the metadata image (Kafka's
//! `ClientQuotasImage.describe`, `metadata::quotas::describe`): exact
//! names, defaults, or any entity naming a type; `strict` asks for
//! entities of exactly the filter's types. Needs DESCRIBE_CONFIGS on the
//! cluster, as Kafka's authorization matrix says.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};

use super::str_bytes;
use crate::metadata::quotas::{self, FilterComponent};
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;

pub fn handle(
    context: &ConnectionContext,
    request: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let mut response = DescribeClientQuotasResponse::default();
    // Null unless an error says why (the crate's default is "").
    response.error_message = None;
    if !authorize::cluster(context, Operation::DescribeConfigs) {
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        response.error_message = Some(str_bytes(
            ResponseError::ClusterAuthorizationFailed.to_string(),
        ));
        return response;
    }
    let components: Vec<FilterComponent> = request
        .components
        .iter()
        .map(|component| FilterComponent {
            entity_type: component.entity_type.to_string(),
            match_type: component.match_type,
            matched: component._match.as_ref().map(|name| name.to_string()),
        })
        .collect();
    let view = context.shard.view();
    match quotas::describe(&view.quotas, &components, request.strict) {
        Ok(entries) => {
            response.entries = Some(
                entries
                    .into_iter()
                    .map(|(entity, values)| {
                        let mut entry = EntryData::default();
                        entry.entity = entity
                            .parts()
                            .into_iter()
                            .map(|(entity_type, name)| {
                                let mut data = EntityData::default();
                                data.entity_type = str_bytes(entity_type);
                                data.entity_name = name.map(str_bytes);
                                data
                            })
                            .collect();
                        entry.values = values
                            .iter()
                            .map(|(key, value)| {
                                let mut data = ValueData::default();
                                data.key = str_bytes(key.clone());
                                data.value = value.0;
                                data
                            })
                            .collect();
                        entry
                    })
                    .collect(),
            );
        }
        Err((error, message)) => {
            response.error_code = error.code();
            response.error_message = Some(str_bytes(message));
        }
    }
    response
}
