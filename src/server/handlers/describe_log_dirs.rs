//! DescribeLogDirs: shoal has one log directory, the data directory. Every
//! shard reports the size of the partitions it owns; the answer lists those
//! asked for (all when the topic list is null), each with offset lag 0 (one
//! replica, no future log), and from v4 the volume's total and usable bytes.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    DescribeLogDirsRequest, DescribeLogDirsResponse, RequestHeader, TopicName,
};

use super::str_bytes;
use crate::log::volume_bytes;
use crate::security::acl::Operation;
use crate::server::authorize;
use crate::server::connection::ConnectionContext;
use crate::shard::messages::{ShardReply, ShardRequest};

/// Kafka's value for sizes a version does not carry or cannot tell.
const UNKNOWN_BYTES: i64 = -1;

pub async fn handle(
    context: &ConnectionContext,
    header: &RequestHeader,
    request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let version = header.request_api_version;
    if !authorize::cluster(context, Operation::Describe) {
        let mut response = DescribeLogDirsResponse::default();
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return response;
    }
    let calls = (0..context.shard.count()).map(|owner| {
        let shard = context.shard.clone();
        async move { shard.call(owner, ShardRequest::PartitionSizes).await }
    });
    // topic → partition → size; a BTreeMap so the answer comes sorted.
    let mut sizes: BTreeMap<String, BTreeMap<i32, u64>> = BTreeMap::new();
    for reply in futures_util::future::join_all(calls).await {
        if let ShardReply::PartitionSizes(partitions) = reply {
            for (partition, size) in partitions {
                sizes
                    .entry(partition.topic.to_string())
                    .or_default()
                    .insert(partition.partition, size);
            }
        }
    }
    let wanted = |topic: &str, partition: i32| match &request.topics {
        None => true,
        Some(topics) => topics
            .iter()
            .any(|t| t.topic.0.as_str() == topic && t.partitions.contains(&partition)),
    };
    let topics = sizes
        .into_iter()
        .filter_map(|(topic, partitions)| {
            let partitions: Vec<DescribeLogDirsPartition> = partitions
                .into_iter()
                .filter(|&(partition, _)| wanted(&topic, partition))
                .map(|(partition, size)| {
                    let mut entry = DescribeLogDirsPartition::default();
                    entry.partition_index = partition;
                    entry.partition_size = i64::try_from(size).unwrap_or(i64::MAX);
                    entry.offset_lag = 0;
                    entry.is_future_key = false;
                    entry
                })
                .collect();
            if partitions.is_empty() {
                return None;
            }
            let mut entry = DescribeLogDirsTopic::default();
            entry.name = TopicName(str_bytes(topic));
            entry.partitions = partitions;
            Some(entry)
        })
        .collect();
    let data_dir = &context.shard.config.data_dir;
    let mut result = DescribeLogDirsResult::default();
    result.log_dir = str_bytes(data_dir.display().to_string());
    result.topics = topics;
    (result.total_bytes, result.usable_bytes) = if version >= 4 {
        volume_bytes(data_dir).map_or((UNKNOWN_BYTES, UNKNOWN_BYTES), |volume| {
            let bytes = |count: u64| i64::try_from(count).unwrap_or(i64::MAX);
            (bytes(volume.total), bytes(volume.usable))
        })
    } else {
        (UNKNOWN_BYTES, UNKNOWN_BYTES)
    };
    let mut response = DescribeLogDirsResponse::default();
    response.results = vec![result];
    response
}
