//! The client-quota APIs at every version: AlterClientQuotas sets a
//! quota for a client id of its own per version, and DescribeClientQuotas
//! at every version reads each back, strict and exact.

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{AlterClientQuotasRequest, ApiKey, DescribeClientQuotasRequest};

use crate::broker::Conn;
use crate::wire::{str_bytes, versions_of, NONE};

/// DescribeClientQuotas' exact match.
const MATCH_TYPE_EXACT: i8 = 0;

fn client(version: i16) -> String {
    format!("quota-client-v{version}")
}

fn rate(version: i16) -> f64 {
    1000.0 * f64::from(version + 1)
}

pub fn quota_apis(conn: &mut Conn) {
    for version in versions_of(ApiKey::AlterClientQuotas) {
        let entry = EntryData::default()
            .with_entity(vec![EntityData::default()
                .with_entity_type(str_bytes("client-id"))
                .with_entity_name(Some(str_bytes(&client(version))))])
            .with_ops(vec![OpData::default()
                .with_key(str_bytes("producer_byte_rate"))
                .with_value(rate(version))]);
        let request = AlterClientQuotasRequest::default().with_entries(vec![entry]);
        let response = conn.call(&request, version);
        let codes: Vec<i16> = response.entries.iter().map(|e| e.error_code).collect();
        assert_eq!(codes, [NONE], "AlterClientQuotas v{version}");
    }
    for version in versions_of(ApiKey::DescribeClientQuotas) {
        for altered in versions_of(ApiKey::AlterClientQuotas) {
            let request = DescribeClientQuotasRequest::default()
                .with_components(vec![ComponentData::default()
                    .with_entity_type(str_bytes("client-id"))
                    .with_match_type(MATCH_TYPE_EXACT)
                    .with_match(Some(str_bytes(&client(altered))))])
                .with_strict(true);
            let response = conn.call(&request, version);
            assert_eq!(response.error_code, NONE, "DescribeClientQuotas v{version}");
            let entries = response.entries.unwrap_or_default();
            let values: Vec<(String, f64)> = entries
                .iter()
                .flat_map(|entry| entry.values.iter())
                .map(|value| (value.key.to_string(), value.value))
                .collect();
            assert_eq!(
                values,
                [("producer_byte_rate".to_string(), rate(altered))],
                "DescribeClientQuotas v{version} of the quota set at v{altered}"
            );
        }
    }
}
