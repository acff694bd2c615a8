//! One handler per Kafka API, and the dispatcher that decodes a frame and
//! routes it to the right one.
//!
//! Invariant: handlers turn requests into shard messages and shard answers
//! into responses; they hold no partition state of their own (fetch sessions,
//! which belong to a connection's shard, are the one exception).

mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_client_quotas;
mod alter_configs;
mod alter_partition_reassignments;
mod alter_user_scram_credentials;
mod api_versions;
mod authorized;
mod broker_configs;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_acls;
mod create_partitions;
mod create_topics;
mod delete_acls;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_acls;
mod describe_client_quotas;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod describe_producers;
mod describe_quorum;
mod describe_topic_partitions;
mod describe_transactions;
mod describe_user_scram_credentials;
mod elect_leaders;
mod end_txn;
mod fetch;
mod find_coordinator;
mod group_route;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod list_partition_reassignments;
mod list_transactions;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
pub mod sasl_session;
mod sync_group;
mod txn_offset_commit;
mod txn_route;
mod write_txn_markers;

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::connection::ConnectionContext;
use super::forward;
use crate::log::Chunk;
use crate::metadata::brokers::Broker;
use crate::metadata::{ClusterView, TopicMeta};
use crate::protocol::frame::{self, FrameError, Request};
use crate::shard::messages::{KafkaError, ShardReply, ShardRequest, TopicPartition};

/// What goes back on the socket for one request.
pub enum Response {
    /// Nothing: `acks=0` produce.
    None,
    Frame(Bytes),
    /// A frame in pieces, record bytes shared rather than copied (memory,
    /// or file ranges the kernel sends).
    Chunks(Vec<Chunk>),
}

/// Why a connection must close.
#[derive(Debug)]
pub enum CloseReason {
    Frame(FrameError),
    /// A response that cannot be encoded: a bug, logged, and the client
    /// reconnects rather than reading a broken frame.
    Encode(String),
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::Frame(error) => write!(f, "{error}"),
            CloseReason::Encode(reason) => write!(f, "cannot encode response: {reason}"),
        }
    }
}

impl From<FrameError> for CloseReason {
    fn from(error: FrameError) -> CloseReason {
        CloseReason::Frame(error)
    }
}

/// Decodes one request frame and runs its handler. An error means the frame
/// was unacceptable and the connection must close.
pub async fn dispatch(context: &ConnectionContext, frame: Bytes) -> Result<Response, CloseReason> {
    let sasl = context.sasl.is_some();
    if let Some(fallback) = api_versions::unsupported_version_fallback(&frame, sasl) {
        return Ok(Response::Frame(fallback));
    }
    let (header, mut body) = frame::parse_request_header(&frame)?;
    let api_key =
        ApiKey::try_from(header.request_api_key).map_err(|_| FrameError::UnknownApiKey {
            api_key: header.request_api_key,
            correlation_id: header.correlation_id,
        })?;
    if forward::forwards(context, api_key) && !forward::CHECKED_BEFORE_FORWARDING.contains(&api_key)
    {
        if let Some(response) = forward::forward(context, &frame).await {
            return Ok(response);
        }
    }
    let request = frame::decode_request(api_key, header.request_api_version, &mut body)?;
    match request {
        Request::ApiVersions(request) => {
            encode(&header, &api_versions::handle(context, &header, request))
        }
        Request::Metadata(request) => {
            encode(&header, &metadata::handle(context, &header, request).await)
        }
        Request::CreateTopics(request) => encode(
            &header,
            &create_topics::handle(context, &header, request).await,
        ),
        Request::DeleteTopics(request) => encode(
            &header,
            &delete_topics::handle(context, &header, request).await,
        ),
        Request::Produce(request) => {
            match produce::handle(context, &header, request, frame.len()).await {
                Some(response) => encode(&header, &response),
                None => Ok(Response::None),
            }
        }
        Request::Fetch(request) => Ok(fetch::handle(context, &header, request).await),
        Request::ListOffsets(request) => encode(
            &header,
            &list_offsets::handle(context, &header, request).await,
        ),
        Request::OffsetForLeaderEpoch(request) => encode(
            &header,
            &offset_for_leader_epoch::handle(context, &header, request).await,
        ),
        Request::DescribeConfigs(request) => encode(
            &header,
            &describe_configs::handle(context, &header, request),
        ),
        Request::DescribeCluster(request) => encode(
            &header,
            &describe_cluster::handle(context, &header, request),
        ),
        Request::AlterPartitionReassignments(request) => encode(
            &header,
            &alter_partition_reassignments::handle(context, request).await,
        ),
        Request::ListPartitionReassignments(request) => encode(
            &header,
            &list_partition_reassignments::handle(context, request).await,
        ),
        Request::DescribeTopicPartitions(request) => encode(
            &header,
            &describe_topic_partitions::handle(context, request),
        ),
        Request::DescribeQuorum(request) => encode(
            &header,
            &describe_quorum::handle(context, &header, request).await,
        ),
        Request::FindCoordinator(request) => encode(
            &header,
            &find_coordinator::handle(context, &header, request).await,
        ),
        Request::JoinGroup(request) => encode(
            &header,
            &join_group::handle(context, &header, request).await,
        ),
        Request::SyncGroup(request) => encode(
            &header,
            &sync_group::handle(context, &header, request).await,
        ),
        Request::Heartbeat(request) => {
            encode(&header, &heartbeat::handle(context, &header, request).await)
        }
        Request::LeaveGroup(request) => encode(
            &header,
            &leave_group::handle(context, &header, request).await,
        ),
        Request::OffsetCommit(request) => encode(
            &header,
            &offset_commit::handle(context, &header, request).await,
        ),
        Request::TxnOffsetCommit(request) => encode(
            &header,
            &txn_offset_commit::handle(context, &header, request).await,
        ),
        Request::OffsetFetch(request) => encode(
            &header,
            &offset_fetch::handle(context, &header, request).await,
        ),
        Request::DescribeGroups(request) => encode(
            &header,
            &describe_groups::handle(context, &header, request).await,
        ),
        Request::ListGroups(request) => encode(
            &header,
            &list_groups::handle(context, &header, request).await,
        ),
        Request::DeleteGroups(request) => encode(
            &header,
            &delete_groups::handle(context, &header, request).await,
        ),
        Request::OffsetDelete(request) => encode(
            &header,
            &offset_delete::handle(context, &header, request).await,
        ),
        Request::ConsumerGroupHeartbeat(request) => encode(
            &header,
            &consumer_group_heartbeat::handle(context, &header, request).await,
        ),
        Request::ConsumerGroupDescribe(request) => encode(
            &header,
            &consumer_group_describe::handle(context, &header, request).await,
        ),
        Request::IncrementalAlterConfigs(request) => encode(
            &header,
            &incremental_alter_configs::handle(context, &header, request).await,
        ),
        Request::AlterConfigs(request) => encode(
            &header,
            &alter_configs::handle(context, &header, request).await,
        ),
        Request::ElectLeaders(request) => encode(
            &header,
            &elect_leaders::handle(context, &header, request).await,
        ),
        Request::CreatePartitions(request) => encode(
            &header,
            &create_partitions::handle(context, &header, request).await,
        ),
        Request::DeleteRecords(request) => encode(
            &header,
            &delete_records::handle(context, &header, request).await,
        ),
        Request::DescribeProducers(request) => {
            encode(&header, &describe_producers::handle(context, request).await)
        }
        Request::InitProducerId(request) => encode(
            &header,
            &init_producer_id::handle(context, header.request_api_version, request).await,
        ),
        Request::DescribeLogDirs(request) => encode(
            &header,
            &describe_log_dirs::handle(context, &header, request).await,
        ),
        Request::WriteTxnMarkers(request) => {
            encode(&header, &write_txn_markers::handle(context, request).await)
        }
        Request::AddPartitionsToTxn(request) => encode(
            &header,
            &add_partitions_to_txn::handle(context, header.request_api_version, request).await,
        ),
        Request::AddOffsetsToTxn(request) => encode(
            &header,
            &add_offsets_to_txn::handle(context, header.request_api_version, request).await,
        ),
        Request::EndTxn(request) => encode(
            &header,
            &end_txn::handle(context, header.request_api_version, request).await,
        ),
        Request::DescribeTransactions(request) => encode(
            &header,
            &describe_transactions::handle(context, request).await,
        ),
        Request::ListTransactions(request) => encode(
            &header,
            &list_transactions::handle(context, header.request_api_version, request).await,
        ),
        Request::CreateAcls(request) => {
            encode(&header, &create_acls::handle(context, request).await)
        }
        Request::DescribeAcls(request) => encode(&header, &describe_acls::handle(context, request)),
        Request::DeleteAcls(request) => {
            encode(&header, &delete_acls::handle(context, request).await)
        }
        // Past the gate (authenticated, or no SASL on this listener).
        Request::SaslHandshake(_) => encode(&header, &sasl_session::illegal_handshake()),
        Request::SaslAuthenticate(_) => encode(&header, &sasl_session::illegal_authenticate()),
        Request::AlterUserScramCredentials(request) => encode(
            &header,
            &alter_user_scram_credentials::handle(context, request).await,
        ),
        Request::DescribeUserScramCredentials(request) => encode(
            &header,
            &describe_user_scram_credentials::handle(context, request),
        ),
        Request::DescribeClientQuotas(request) => {
            encode(&header, &describe_client_quotas::handle(context, request))
        }
        Request::AlterClientQuotas(request) => encode(
            &header,
            &alter_client_quotas::handle(context, request).await,
        ),
    }
}

/// Encodes `body` as a complete response frame: size, header, body.
fn encode<R: Encodable>(request: &RequestHeader, body: &R) -> Result<Response, CloseReason> {
    frame::encode_response(request, request.request_api_version, body)
        .map(Response::Frame)
        .map_err(CloseReason::Encode)
}

/// KIP-951's hint for a partition refused with `error`: the leader to ask
/// instead, and its epoch, where Kafka gives one (NOT_LEADER_OR_FOLLOWER,
/// FENCED_LEADER_EPOCH) and the view knows a live leader.
fn leader_hint(
    view: &ClusterView,
    meta: &TopicMeta,
    partition: i32,
    error: ResponseError,
) -> Option<(Broker, i32)> {
    match error {
        ResponseError::NotLeaderOrFollower | ResponseError::FencedLeaderEpoch => {
            view.leader(meta, partition)
        }
        _ => None,
    }
}

/// The brokers named by leader hints, each once, in id order: a
/// response's `node_endpoints` (KIP-951).
fn hinted_endpoints<'a>(hints: impl Iterator<Item = &'a (Broker, i32)>) -> Vec<Broker> {
    let mut brokers: Vec<Broker> = hints.map(|(broker, _)| broker.clone()).collect();
    brokers.sort_by_key(|broker| broker.id);
    brokers.dedup_by_key(|broker| broker.id);
    brokers
}

/// `StrBytes` from an owned string.
fn str_bytes(text: impl Into<String>) -> StrBytes {
    StrBytes::from_string(text.into())
}

/// Partition work for requests shaped as topics of partitions, each
/// partition carrying its `current_leader_epoch` (`NO_LEADER_EPOCH` where
/// the request has none) and an `X` (ListOffsets' timestamp,
/// DeleteRecords' offset): `unauthorized` answers a topic's partitions
/// first (an authorization error, by its name, before its existence is
/// told), a partition the cluster does not have gets
/// UNKNOWN_TOPIC_OR_PARTITION, one this node does not lead the view's
/// answer (`ClusterView::lead`), `refuse` may answer those of a topic at
/// once (a policy), and the rest go to their owner shards through
/// `scatter`. The results stand `[topic][partition]` in the request's order.
async fn per_partition<'a, X, R>(
    context: &ConnectionContext,
    topics: impl Iterator<Item = (&'a str, Vec<(i32, i32, X)>)>,
    unauthorized: impl Fn(&str) -> Option<KafkaError>,
    refuse: impl Fn(&TopicMeta) -> Option<KafkaError>,
    request: impl Fn(Vec<(TopicPartition, X)>) -> ShardRequest,
    reply: impl Fn(ShardReply, usize) -> Vec<Result<R, KafkaError>>,
) -> Vec<Vec<Result<R, KafkaError>>> {
    let view = context.shard.view();
    let mut answers: Vec<Vec<Option<Result<R, KafkaError>>>> = Vec::new();
    let mut routed = Vec::new();
    for (topic_index, (name, partitions)) in topics.enumerate() {
        if let Some(error) = unauthorized(name) {
            answers.push(
                partitions
                    .iter()
                    .map(|_| Some(Err(error.clone())))
                    .collect(),
            );
            continue;
        }
        let meta = view.topic(name);
        let refused = meta.and_then(|meta| refuse(meta));
        let mut topic_answers = Vec::with_capacity(partitions.len());
        for (partition_index, (partition, epoch, item)) in partitions.into_iter().enumerate() {
            match meta {
                Some(meta) if (0..meta.partitions).contains(&partition) => {
                    let owner = match view.lead(meta, partition, epoch) {
                        Ok(owner) => owner,
                        Err(error) => {
                            topic_answers.push(Some(Err(KafkaError::new(error))));
                            continue;
                        }
                    };
                    if let Some(error) = &refused {
                        topic_answers.push(Some(Err(error.clone())));
                        continue;
                    }
                    topic_answers.push(None);
                    routed.push((
                        owner,
                        (topic_index, partition_index),
                        (TopicPartition::new(&meta.name, partition), item),
                    ));
                }
                _ => topic_answers.push(Some(Err(KafkaError::new(
                    ResponseError::UnknownTopicOrPartition,
                )))),
            }
        }
        answers.push(topic_answers);
    }
    for ((topic_index, partition_index), result) in scatter(context, routed, request, reply).await {
        answers[topic_index][partition_index] = Some(result);
    }
    answers
        .into_iter()
        .map(|topic| {
            topic
                .into_iter()
                .map(|answer| {
                    answer
                        .unwrap_or_else(|| Err(KafkaError::new(ResponseError::UnknownServerError)))
                })
                .collect()
        })
        .collect()
}

/// Groups routed items, `(owner shard, position in the request, item)`, by owner.
fn group_by_owner<P, T>(routed: Vec<(usize, P, T)>) -> BTreeMap<usize, (Vec<P>, Vec<T>)> {
    let mut groups: BTreeMap<usize, (Vec<P>, Vec<T>)> = BTreeMap::new();
    for (owner, position, item) in routed {
        let group = groups.entry(owner).or_default();
        group.0.push(position);
        group.1.push(item);
    }
    groups
}

/// Sends every owner shard its items as one request, all owners in parallel,
/// and returns each answer with its item's position. `request` builds one
/// owner's message; `reply` unpacks its answer into one result per item
/// (given how many were sent, to fill in failures).
async fn scatter<P, T, R>(
    context: &ConnectionContext,
    routed: Vec<(usize, P, T)>,
    request: impl Fn(Vec<T>) -> ShardRequest,
    reply: impl Fn(ShardReply, usize) -> Vec<R>,
) -> Vec<(P, R)> {
    let reply = &reply;
    let calls = group_by_owner(routed)
        .into_iter()
        .map(|(owner, (positions, items))| {
            let shard = context.shard.clone();
            let message = request(items);
            async move {
                let count = positions.len();
                let answer = shard.call(owner, message).await;
                positions
                    .into_iter()
                    .zip(reply(answer, count))
                    .collect::<Vec<_>>()
            }
        });
    futures_util::future::join_all(calls)
        .await
        .into_iter()
        .flatten()
        .collect()
}
