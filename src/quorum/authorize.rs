//! Kafka's authorization matrix on the CONTROLLER listener (`ControllerApis`):
//! what each request asks of the connection's principal on the cluster
//! resource, and the answer of one refused. The quorum's own traffic
//! (shoal's Raft messages, Kafka's Vote, BeginQuorumEpoch, EndQuorumEpoch
//! and Fetch) and the brokers' (BrokerRegistration, BrokerHeartbeat,
//! AlterPartition, AllocateProducerIds, Envelope) need CLUSTER_ACTION;
//! DescribeQuorum needs DESCRIBE; DescribeCluster, which a controller
//! answers only to the highly trusted, ALTER. ApiVersions and the SASL
//! login need nothing.
//!
//! Who decides is the runner's (`ClusterAuthorizer`): the node's
//! `authorizer.class.name`, `super.users` and the ACLs of its image. The
//! nodes' own logins must be super users (or hold CLUSTER_ACTION), as
//! Kafka's docs tell operators.
//!
//! Invariant: a refused Kafka request is answered with its API's
//! CLUSTER_AUTHORIZATION_FAILED and served no further; a refused private
//! frame (Raft messages, a metadata fetch) closes its connection.

use std::net::IpAddr;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    AllocateProducerIdsResponse, AlterPartitionResponse, ApiKey, BrokerHeartbeatResponse,
    BrokerRegistrationResponse, DescribeClusterResponse, DescribeQuorumResponse, EnvelopeResponse,
    ProducerId, RequestHeader,
};

use crate::protocol::frame;
use crate::security::acl::Operation;

/// Whether the principal (`User:broker`) of a connection from `host` may
/// do the operation on the cluster.
pub type ClusterAuthorizer = Rc<dyn Fn(&str, Option<IpAddr>, Operation) -> bool>;

/// Every caller may do everything: no authorizer configured.
pub fn allow_all() -> ClusterAuthorizer {
    Rc::new(|_, _, _| true)
}

/// Who sent the frames of one connection.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: String,
    pub host: Option<IpAddr>,
}

impl Caller {
    /// Whether `authorize` lets the caller do `operation`.
    pub fn may(&self, authorize: &ClusterAuthorizer, operation: Operation) -> bool {
        authorize(&self.principal, self.host, operation)
    }
}

/// The operation on the cluster a Kafka request on the listener needs;
/// `None` for ApiVersions and the SASL requests.
pub fn required(api_key: ApiKey) -> Option<Operation> {
    match api_key {
        ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate => None,
        ApiKey::DescribeQuorum => Some(Operation::Describe),
        ApiKey::DescribeCluster => Some(Operation::Alter),
        _ => Some(Operation::ClusterAction),
    }
}

/// The answer to a request of `api_key` the caller may not make:
/// CLUSTER_AUTHORIZATION_FAILED in its response; `Err` for an API that
/// has none here (the connection closes).
pub fn refusal(header: &RequestHeader, api_key: ApiKey, version: i16) -> Result<Bytes, String> {
    let code = ResponseError::ClusterAuthorizationFailed.code();
    match api_key {
        ApiKey::Envelope => {
            let answer = EnvelopeResponse::default().with_error_code(code);
            frame::encode_response(header, version, &answer)
        }
        ApiKey::AllocateProducerIds => {
            let answer = AllocateProducerIdsResponse::default()
                .with_error_code(code)
                .with_producer_id_start(ProducerId(-1));
            frame::encode_response(header, version, &answer)
        }
        ApiKey::BrokerRegistration => {
            let answer = BrokerRegistrationResponse::default().with_error_code(code);
            frame::encode_response(header, version, &answer)
        }
        ApiKey::BrokerHeartbeat => {
            let answer = BrokerHeartbeatResponse::default().with_error_code(code);
            frame::encode_response(header, version, &answer)
        }
        ApiKey::AlterPartition => {
            let answer = AlterPartitionResponse::default().with_error_code(code);
            frame::encode_response(header, version, &answer)
        }
        ApiKey::DescribeCluster => {
            let answer = DescribeClusterResponse::default().with_error_code(code);
            frame::encode_response(header, version, &answer)
        }
        ApiKey::DescribeQuorum => {
            let answer = DescribeQuorumResponse::default().with_error_code(code);
            frame::encode_response(header, version, &answer)
        }
        other => Err(format!(
            "{other:?} v{version} refused: not authorized on the cluster"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ResponseHeader;
    use kafka_protocol::protocol::Decodable;

    #[test]
    fn each_refusal_carries_cluster_authorization_failed() {
        let code = ResponseError::ClusterAuthorizationFailed.code();
        let cases: [(ApiKey, i16); 7] = [
            (ApiKey::Envelope, 0),
            (ApiKey::AllocateProducerIds, 0),
            (ApiKey::BrokerRegistration, 4),
            (ApiKey::BrokerHeartbeat, 1),
            (ApiKey::AlterPartition, 3),
            (ApiKey::DescribeCluster, 1),
            (ApiKey::DescribeQuorum, 2),
        ];
        for (api_key, version) in cases {
            let header = RequestHeader::default()
                .with_request_api_key(api_key as i16)
                .with_request_api_version(version)
                .with_correlation_id(7);
            let framed = refusal(&header, api_key, version).expect("encodes");
            let mut body = framed.slice(4..);
            let response_header =
                ResponseHeader::decode(&mut body, api_key.response_header_version(version))
                    .expect("header");
            assert_eq!(response_header.correlation_id, 7);
            let error_code = match api_key {
                ApiKey::Envelope => {
                    EnvelopeResponse::decode(&mut body, version).map(|r| r.error_code)
                }
                ApiKey::AllocateProducerIds => {
                    AllocateProducerIdsResponse::decode(&mut body, version).map(|r| r.error_code)
                }
                ApiKey::BrokerRegistration => {
                    BrokerRegistrationResponse::decode(&mut body, version).map(|r| r.error_code)
                }
                ApiKey::BrokerHeartbeat => {
                    BrokerHeartbeatResponse::decode(&mut body, version).map(|r| r.error_code)
                }
                ApiKey::AlterPartition => {
                    AlterPartitionResponse::decode(&mut body, version).map(|r| r.error_code)
                }
                ApiKey::DescribeCluster => {
                    DescribeClusterResponse::decode(&mut body, version).map(|r| r.error_code)
                }
                _ => DescribeQuorumResponse::decode(&mut body, version).map(|r| r.error_code),
            }
            .expect("body");
            assert_eq!(error_code, code, "{api_key:?}");
        }
        assert!(refusal(&RequestHeader::default(), ApiKey::Produce, 9).is_err());
    }

    #[test]
    fn kafkas_matrix() {
        assert_eq!(required(ApiKey::ApiVersions), None);
        assert_eq!(required(ApiKey::DescribeQuorum), Some(Operation::Describe));
        assert_eq!(required(ApiKey::DescribeCluster), Some(Operation::Alter));
        for api_key in [
            ApiKey::BrokerHeartbeat,
            ApiKey::BrokerRegistration,
            ApiKey::AlterPartition,
            ApiKey::AllocateProducerIds,
            ApiKey::Envelope,
            ApiKey::Vote,
            ApiKey::Fetch,
        ] {
            assert_eq!(required(api_key), Some(Operation::ClusterAction));
        }
    }
}
