//! DescribeCluster: the cluster id, the live brokers as Metadata lists them
//! (`metadata::brokers`; v2 adds the fenced ones when asked, as Kafka) and
//! the active controller. A broker listener serves the brokers' endpoint
//! type only: a request for controllers (an admin client given a broker's
//! address as `bootstrap.controllers`) is MISMATCHED_ENDPOINT_TYPE, as
//! Kafka's broker answers it, so a tool looking for a controller moves on.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, RequestHeader,
};

use super::{authorized, str_bytes};
use crate::metadata::brokers::Broker;
use crate::security::acl::{ResourceType, CLUSTER_NAME};
use crate::server::authorize;
use crate::server::connection::ConnectionContext;

/// DescribeCluster v2 lists fenced brokers on request (KIP-1073).
const FENCED_BROKERS_VERSION: i16 = 2;

/// DescribeCluster's `EndpointType`s (KIP-919). v0 has no such field and
/// decodes as brokers.
const ENDPOINT_TYPE_BROKER: i8 = 1;
const ENDPOINT_TYPE_CONTROLLER: i8 = 2;

pub fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    if let Some((error, message)) = endpoint_type_error(request.endpoint_type) {
        return DescribeClusterResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(str_bytes(message)));
    }
    let view = context.shard.view();
    let mut response = DescribeClusterResponse::default();
    if header.request_api_version >= 1 {
        response.endpoint_type = request.endpoint_type;
    }
    response.cluster_id = str_bytes(view.cluster_id.clone());
    if request.include_cluster_authorized_operations {
        response.cluster_authorized_operations = authorize::operations(
            context,
            ResourceType::Cluster,
            CLUSTER_NAME,
            authorized::CLUSTER,
        );
    }
    response.controller_id = BrokerId(view.controller_id());
    let fenced =
        if header.request_api_version >= FENCED_BROKERS_VERSION && request.include_fenced_brokers {
            view.fenced_brokers()
        } else {
            Vec::new()
        };
    let mut brokers: Vec<(Broker, bool)> = view
        .brokers()
        .into_iter()
        .map(|broker| (broker, false))
        .chain(fenced.into_iter().map(|broker| (broker, true)))
        .collect();
    brokers.sort_by_key(|(broker, _)| broker.id);
    response.brokers = brokers
        .into_iter()
        .map(|(broker, is_fenced)| {
            let broker = context.seen(broker);
            let mut entry = DescribeClusterBroker::default();
            entry.broker_id = BrokerId(broker.id);
            entry.host = str_bytes(broker.host);
            entry.port = broker.port;
            entry.rack = broker.rack.map(str_bytes);
            entry.is_fenced = is_fenced;
            entry
        })
        .collect();
    response
}

/// Why a broker refuses a request for `endpoint_type`, in Kafka's words:
/// controllers are asked of the CONTROLLER listener
/// (`quorum::describe::describe_cluster`), any other type is unknown.
fn endpoint_type_error(endpoint_type: i8) -> Option<(ResponseError, String)> {
    match endpoint_type {
        ENDPOINT_TYPE_BROKER => None,
        ENDPOINT_TYPE_CONTROLLER => Some((
            ResponseError::MismatchedEndpointType,
            "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER".to_string(),
        )),
        other => Some((
            ResponseError::UnsupportedEndpointType,
            format!("Unsupported endpoint type {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_serves_the_brokers_endpoint_type_only() {
        assert!(endpoint_type_error(ENDPOINT_TYPE_BROKER).is_none());
        let refused = |endpoint_type| endpoint_type_error(endpoint_type).map(|(error, _)| error);
        assert_eq!(
            refused(ENDPOINT_TYPE_CONTROLLER),
            Some(ResponseError::MismatchedEndpointType)
        );
        for unknown in [0, 3, -1] {
            assert_eq!(
                refused(unknown),
                Some(ResponseError::UnsupportedEndpointType)
            );
        }
    }
}
