//! ApiVersions: what shoal implements, from `protocol::versions`, and the
//! features it supports and finalizes (KIP-584), as Kafka 4 advertises
//! them: `transaction.version` 0 to 2, finalized at the broker's
//! `transaction.version` (a Kafka 4 producer runs transactions version 2
//! when it is finalized at 2 or more). Kafka's other features (metadata,
//! kraft, group, share, streams versions) name Kafka's own machinery and
//! are left out: no client of shoal's needs them.

use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};

use crate::clock::now_ms;
use crate::config::TRANSACTION_VERSION_MAX;
use crate::protocol::versions::{self, SASL_APIS, SUPPORTED_APIS};
use crate::server::connection::ConnectionContext;

/// Kafka's name of the transactions feature.
const TRANSACTION_VERSION_FEATURE: &str = "transaction.version";
/// ApiVersions v3 is the first with features (tagged fields).
const FEATURES_VERSION: i16 = 3;
/// Before v4, Kafka leaves out a supported feature whose lowest level is 0:
/// older clients fail to read it (KAFKA-17492).
const MIN_LEVEL_ZERO_VERSION: i16 = 4;

/// The finalized features' epoch. Kafka's grows with its metadata log; a
/// shoal broker's features are fixed while it runs, so the epoch is when
/// the process first answered, which grows across restarts (a level
/// changed by a restart is newer than the one a client saw before).
fn finalized_features_epoch() -> i64 {
    static EPOCH: OnceLock<i64> = OnceLock::new();
    *EPOCH.get_or_init(|| i64::try_from(now_ms()).unwrap_or(i64::MAX))
}

/// The supported and finalized features of a response of `version` for a
/// broker finalizing `transaction.version` at `level`. A level of 0 is not
/// listed as finalized (Kafka lists only levels above 0).
fn add_features(response: &mut ApiVersionsResponse, version: i16, level: i16) {
    if version < FEATURES_VERSION {
        return;
    }
    if version >= MIN_LEVEL_ZERO_VERSION {
        response.supported_features = vec![SupportedFeatureKey::default()
            .with_name(StrBytes::from_static_str(TRANSACTION_VERSION_FEATURE))
            .with_min_version(0)
            .with_max_version(TRANSACTION_VERSION_MAX)];
    }
    response.finalized_features_epoch = finalized_features_epoch();
    if level > 0 {
        response.finalized_features = vec![FinalizedFeatureKey::default()
            .with_name(StrBytes::from_static_str(TRANSACTION_VERSION_FEATURE))
            .with_min_version_level(level)
            .with_max_version_level(level)];
    }
}

/// The table, without the SASL APIs unless the listener speaks SASL.
fn response(error_code: i16, sasl: bool) -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.error_code = error_code;
    response.api_keys = SUPPORTED_APIS
        .iter()
        .filter(|api| sasl || !SASL_APIS.contains(&api.key))
        .map(|api| {
            let mut entry = ApiVersion::default();
            entry.api_key = api.key as i16;
            entry.min_version = api.min_version;
            entry.max_version = api.max_version;
            entry
        })
        .collect();
    response
}

pub fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    _request: ApiVersionsRequest,
) -> ApiVersionsResponse {
    let mut answer = response(0, context.sasl.is_some());
    let level = context.shard.config.txn.transaction_version;
    add_features(&mut answer, header.request_api_version, level);
    answer
}

/// KIP-511: a client may send an ApiVersions newer than the broker knows.
/// The broker answers in v0 with UNSUPPORTED_VERSION and its version table,
/// and the client retries with the highest version listed.
pub fn unsupported_version_fallback(frame: &[u8], sasl: bool) -> Option<Bytes> {
    if frame.len() < 8 {
        return None;
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let supported = versions::supported(ApiKey::ApiVersions)?;
    if key != ApiKey::ApiVersions as i16 || version <= supported.max_version {
        return None;
    }
    let body = response(ResponseError::UnsupportedVersion.code(), sasl);
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    buf.put_i32(correlation_id);
    body.encode(&mut buf, 0).ok()?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Some(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(version: i16, level: i16) -> ApiVersionsResponse {
        let mut answer = response(0, false);
        add_features(&mut answer, version, level);
        answer
    }

    #[test]
    fn transaction_version_is_supported_and_finalized_as_kafka_lists_it() {
        let answer = features(4, 2);
        let supported = &answer.supported_features[0];
        assert_eq!(supported.name.as_str(), "transaction.version");
        assert_eq!((supported.min_version, supported.max_version), (0, 2));
        let finalized = &answer.finalized_features[0];
        assert_eq!(finalized.name.as_str(), "transaction.version");
        assert_eq!(
            (finalized.min_version_level, finalized.max_version_level),
            (2, 2)
        );
        assert!(answer.finalized_features_epoch >= 0);
        // The epoch stays while the broker runs.
        assert_eq!(
            features(4, 1).finalized_features_epoch,
            answer.finalized_features_epoch
        );
    }

    #[test]
    fn sasl_apis_are_listed_only_on_a_sasl_listener() {
        let keys = |sasl| -> Vec<i16> {
            response(0, sasl)
                .api_keys
                .iter()
                .map(|api| api.api_key)
                .collect()
        };
        let handshake = ApiKey::SaslHandshake as i16;
        assert!(keys(true).contains(&handshake));
        assert!(!keys(false).contains(&handshake));
        assert!(!keys(false).contains(&(ApiKey::SaslAuthenticate as i16)));
        assert!(keys(false).contains(&(ApiKey::DescribeUserScramCredentials as i16)));
    }

    #[test]
    fn level_zero_and_older_versions_list_what_kafka_lists() {
        assert!(features(4, 0).finalized_features.is_empty());
        assert_eq!(features(4, 0).supported_features.len(), 1);
        // v3: the feature's lowest level is 0, so it is left out.
        let v3 = features(3, 1);
        assert!(v3.supported_features.is_empty());
        assert_eq!(v3.finalized_features[0].max_version_level, 1);
        let v2 = features(2, 2);
        assert!(v2.finalized_features.is_empty() && v2.finalized_features_epoch == -1);
    }
}
