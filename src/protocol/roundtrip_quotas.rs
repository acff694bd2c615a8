//! Round-trip samples of DescribeClientQuotas (api 48) and
//! AlterClientQuotas (49): a populated request and response per version,
//! for the table-wide round trip in `roundtrip.rs`. Every field exists at
//! both versions shoal serves (v1 is the flexible one).

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn s(value: &'static str) -> StrBytes {
    StrBytes::from_static_str(value)
}

pub(super) fn describe_client_quotas_request(_version: i16) -> DescribeClientQuotasRequest {
    DescribeClientQuotasRequest::default()
        .with_components(vec![
            describe_client_quotas_request::ComponentData::default()
                .with_entity_type(s("user"))
                .with_match_type(0)
                .with_match(Some(s("alice"))),
            describe_client_quotas_request::ComponentData::default()
                .with_entity_type(s("client-id"))
                .with_match_type(1)
                .with_match(None),
        ])
        .with_strict(true)
}

pub(super) fn describe_client_quotas_response(_version: i16) -> DescribeClientQuotasResponse {
    use describe_client_quotas_response::{EntityData, EntryData, ValueData};
    DescribeClientQuotasResponse::default()
        .with_throttle_time_ms(3)
        .with_entries(Some(vec![EntryData::default()
            .with_entity(vec![
                EntityData::default()
                    .with_entity_type(s("user"))
                    .with_entity_name(Some(s("alice"))),
                EntityData::default()
                    .with_entity_type(s("client-id"))
                    .with_entity_name(None),
            ])
            .with_values(vec![ValueData::default()
                .with_key(s("producer_byte_rate"))
                .with_value(1024.0)])]))
}

pub(super) fn alter_client_quotas_request(_version: i16) -> AlterClientQuotasRequest {
    use alter_client_quotas_request::{EntityData, EntryData, OpData};
    AlterClientQuotasRequest::default()
        .with_entries(vec![EntryData::default()
            .with_entity(vec![EntityData::default()
                .with_entity_type(s("ip"))
                .with_entity_name(None)])
            .with_ops(vec![
                OpData::default()
                    .with_key(s("connection_creation_rate"))
                    .with_value(5.0),
                OpData::default()
                    .with_key(s("request_percentage"))
                    .with_remove(true),
            ])])
        .with_validate_only(true)
}

pub(super) fn alter_client_quotas_response(_version: i16) -> AlterClientQuotasResponse {
    use alter_client_quotas_response::{EntityData, EntryData};
    AlterClientQuotasResponse::default()
        .with_throttle_time_ms(2)
        .with_entries(vec![EntryData::default()
            .with_error_code(42)
            .with_error_message(Some(s("Invalid configuration key request_percentage")))
            .with_entity(vec![EntityData::default()
                .with_entity_type(s("ip"))
                .with_entity_name(Some(s("10.0.0.1")))])])
}
