//! ApiVersions: what shoal implements, from `protocol::versions`.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use kafka_protocol::protocol::Encodable;

use crate::protocol::versions::{self, SUPPORTED_APIS};

fn response(error_code: i16) -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.error_code = error_code;
    response.api_keys = SUPPORTED_APIS
        .iter()
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

pub fn handle(_header: &RequestHeader, _request: ApiVersionsRequest) -> ApiVersionsResponse {
    response(0)
}

/// KIP-511: a client may send an ApiVersions newer than the broker knows.
/// The broker answers in v0 with UNSUPPORTED_VERSION and its version table,
/// and the client retries with the highest version listed.
pub fn unsupported_version_fallback(frame: &[u8]) -> Option<Bytes> {
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
    let body = response(ResponseError::UnsupportedVersion.code());
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    buf.put_i32(correlation_id);
    body.encode(&mut buf, 0).ok()?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Some(buf.freeze())
}
