//! DescribeCluster: the cluster id, the brokers this node advertises (itself,
//! or one per shard in shard-aware mode) and the controller among them.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, RequestHeader,
};

use super::{authorized, str_bytes};
use crate::server::connection::ConnectionContext;

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
    response.brokers = view
        .brokers()
        .into_iter()
        .map(|broker| {
            let mut entry = DescribeClusterBroker::default();
            entry.broker_id = BrokerId(broker.id);
            entry.host = str_bytes(broker.host);
            entry.port = broker.port;
            entry.rack = broker.rack.map(str_bytes);
            entry
        })
        .collect();
    response
}
