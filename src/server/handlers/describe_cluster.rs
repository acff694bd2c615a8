//! DescribeCluster: this node, the cluster id and the controller (itself).

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, RequestHeader,
};

use super::str_bytes;
use crate::server::connection::ConnectionContext;

pub fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let view = context.shard.view();
    let mut broker = DescribeClusterBroker::default();
    broker.broker_id = BrokerId(view.node_id);
    broker.host = str_bytes(view.advertised_host.clone());
    broker.port = view.advertised_port;
    let mut response = DescribeClusterResponse::default();
    if header.request_api_version >= 1 {
        response.endpoint_type = request.endpoint_type;
    }
    response.cluster_id = str_bytes(view.cluster_id.clone());
    response.controller_id = BrokerId(view.node_id);
    response.brokers = vec![broker];
    response
}
