//! DescribeCluster: the cluster id, the live brokers as Metadata lists them
//! (`metadata::brokers`; v2 adds the fenced ones when asked, as Kafka) and
//! the active controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, RequestHeader,
};

use super::{authorized, str_bytes};
use crate::metadata::brokers::Broker;
use crate::server::connection::ConnectionContext;

/// DescribeCluster v2 lists fenced brokers on request (KIP-1073).
const FENCED_BROKERS_VERSION: i16 = 2;

pub fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let view = context.shard.view();
    let mut response = DescribeClusterResponse::default();
    if header.request_api_version >= 1 {
        response.endpoint_type = request.endpoint_type;
    }
    response.cluster_id = str_bytes(view.cluster_id.clone());
    if request.include_cluster_authorized_operations {
        response.cluster_authorized_operations = authorized::CLUSTER;
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
