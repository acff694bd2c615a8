//! The web console the admin listener serves (`/console/`): a page of
//! plain HTML, a hand-written script that draws SVG charts, and the JSON
//! endpoints under `/v1/console/` it calls. Brokers, topics, consumer
//! groups and their lag come from this node's metadata view and from the
//! shards' metrics snapshots over the mesh (as `/metrics` gathers them,
//! with every partition's series, and the high watermarks other nodes'
//! leaders last gave, `watermarks`); records from the partition's owner
//! shard (`browse`); the last hour's charts from the admin task's
//! `history`.
//!
//! Its two admin actions, creating a topic and resetting a group's
//! offsets, are `actions`'s, off unless `admin.console.actions.enabled`.
//!
//! Invariant: bounded as the rest of the admin listener: every list is
//! cut at a named bound (and says so), record pages at `browse`'s. What
//! is here only reads; a change is made by `actions` alone, through the
//! Kafka API's own handlers. While an authorizer is on, records are shown
//! only to a user whose HTTP Basic credentials check (`auth`) and whom
//! the ACLs allow READ on the topic, as a consumer's Fetch needs.

use std::rc::Rc;

use serde_json::{json, Value};

use std::net::SocketAddr;

use super::browse::{self, Query};
use super::history::{History, Sample, SAMPLES_MAX, SAMPLE_INTERVAL};
use super::http::{query_pairs, Request, Response};
use super::Memory;
use crate::metrics::{group_lag, BrokerMetrics, PartitionMetrics};
use crate::security::acl::{Operation, ResourceType};
use crate::shard::Shard;

const INDEX_HTML: &str = include_str!("console/index.html");
const CONSOLE_JS: &str = include_str!("console/console.js");
const CONSOLE_CSS: &str = include_str!("console/console.css");

/// Topics listed at most: past it the list says it was cut (the metadata
/// endpoints of the Kafka API list them all).
pub const TOPICS_LISTED_MAX: usize = 2_000;
/// Partitions of one topic listed at most.
pub const PARTITIONS_LISTED_MAX: usize = 2_000;
/// Groups listed at most, and group partitions in all.
pub const GROUPS_LISTED_MAX: usize = 1_000;
pub const GROUP_PARTITIONS_LISTED_MAX: usize = 5_000;

/// The console's answer to `request`, or `None` when its path is not the
/// console's.
pub async fn route(
    shard: &Rc<Shard>,
    memory: &Memory,
    request: &Request,
    peer: Option<SocketAddr>,
) -> Option<Response> {
    if let Some(response) = super::actions::route(shard, request, peer).await {
        return Some(response);
    }
    let asset = |content_type, text: &'static str| Some(Response::new(200, content_type, text));
    let path = request.path.as_str();
    let ours = matches!(
        path,
        "/" | "/console" | "/console/" | "/console/console.js" | "/console/console.css"
    ) || path.starts_with("/v1/console/");
    if !ours {
        return None;
    }
    if !matches!(request.method.as_str(), "GET" | "HEAD") {
        return Some(Response::method_not_allowed("GET, HEAD"));
    }
    let pairs = query_pairs(&request.query);
    match path {
        "/" | "/console" | "/console/" => asset("text/html; charset=utf-8", INDEX_HTML),
        "/console/console.js" => asset("text/javascript; charset=utf-8", CONSOLE_JS),
        "/console/console.css" => asset("text/css; charset=utf-8", CONSOLE_CSS),
        "/v1/console/brokers" => Some(ok(brokers(
            shard,
            &super::gather(shard, memory, false).await,
        ))),
        "/v1/console/topics" => Some(ok(topics(shard, &super::gather(shard, memory, true).await))),
        "/v1/console/topic" => Some(topic(
            shard,
            &super::gather(shard, memory, true).await,
            &pairs,
        )),
        "/v1/console/groups" => Some(ok(groups(&super::gather(shard, memory, true).await))),
        "/v1/console/history" => {
            let now = super::gather(shard, memory, true).await;
            let group = pairs.iter().find(|(key, _)| key == "group");
            let group = group.map(|(_, group)| group.as_str());
            Some(ok(charts(&memory.history.borrow(), &now, group)))
        }
        "/v1/console/records" => Some(records(shard, request, peer, &pairs).await),
        _ => Some(Response::status(404)),
    }
}

fn ok(value: Value) -> Response {
    Response::json(200, &value)
}

fn refuse(status: u16, reason: &str) -> Response {
    Response::json(status, &json!({ "error": reason }))
}

/// The cluster's brokers as this node's view has them, and this node's
/// shards.
fn brokers(shard: &Shard, metrics: &BrokerMetrics) -> Value {
    let view = shard.view();
    let brokers: Vec<Value> = view
        .registered
        .iter()
        .map(|broker| {
            json!({
                "id": broker.id,
                "host": broker.endpoint.as_ref().map(|(host, _)| host),
                "port": broker.endpoint.as_ref().map(|(_, port)| port),
                "rack": broker.rack,
                "fenced": broker.fenced,
                "epoch": broker.epoch,
                "controller": broker.id == view.controller_node_id,
                "this": broker.id == view.node_id,
            })
        })
        .collect();
    let shards: Vec<Value> = metrics
        .shards
        .iter()
        .map(|(id, counters, gauges)| {
            json!({
                "shard": id,
                "partitions": gauges.partitions,
                "leaders": gauges.leaders,
                "under_replicated": gauges.under_replicated,
                "log_bytes": gauges.log_bytes,
                "connections": counters.connections_opened.saturating_sub(counters.connections_closed),
                "requests_in_flight": gauges.requests_in_flight,
            })
        })
        .collect();
    let cluster = &metrics.cluster;
    json!({
        "cluster_id": view.cluster_id,
        "node_id": view.node_id,
        "controller_id": view.controller_node_id,
        "ready": cluster.ready,
        "topics": cluster.topics,
        "partitions": cluster.partitions,
        "offline_partitions": cluster.offline_partitions,
        "brokers": brokers,
        "shards": shards,
    })
}

/// The partitions this node holds, by (topic, partition).
fn held<'a>(
    metrics: &'a BrokerMetrics,
    topic: &'a str,
) -> impl Iterator<Item = &'a PartitionMetrics> {
    let start = metrics
        .partitions
        .partition_point(|partition| &*partition.topic < topic);
    metrics.partitions[start..]
        .iter()
        .take_while(move |partition| &*partition.topic == topic)
}

/// Every topic with its partitions' count, replication, health and the
/// bytes of its replicas on this node.
fn topics(shard: &Shard, metrics: &BrokerMetrics) -> Value {
    let view = shard.view();
    let listed: Vec<Value> = view
        .topics
        .values()
        .take(TOPICS_LISTED_MAX)
        .map(|meta| {
            let states = (0..meta.partitions).map(|partition| view.state(meta, partition));
            let (mut offline, mut under_replicated, mut replication) = (0, 0, 0);
            for state in states {
                offline += usize::from(state.leader == crate::metadata::records::NO_LEADER);
                under_replicated += usize::from(state.isr.len() < state.replicas.len());
                replication = replication.max(state.replicas.len());
            }
            let held: Vec<&PartitionMetrics> = held(metrics, &meta.name).collect();
            json!({
                "name": meta.name,
                "id": meta.id.to_string(),
                "internal": meta.is_internal(),
                "partitions": meta.partitions,
                "replication_factor": replication,
                "offline": offline,
                "under_replicated": under_replicated,
                "size_bytes_here": held.iter().map(|p| p.size_bytes).sum::<u64>(),
                "records_here": held.iter().filter(|p| p.leader).map(|p| p.high_watermark - p.log_start_offset).sum::<i64>(),
                "configs": meta.configs,
            })
        })
        .collect();
    json!({ "topics": listed, "truncated": view.topics.len() > TOPICS_LISTED_MAX })
}

/// One topic's partitions: leader, replicas, ISR, and the offsets and
/// size of the replicas on this node.
fn topic(shard: &Shard, metrics: &BrokerMetrics, pairs: &[(String, String)]) -> Response {
    let Some((_, name)) = pairs.iter().find(|(key, _)| key == "name") else {
        return refuse(400, "expected ?name=<topic>");
    };
    let view = shard.view();
    let Some(meta) = view.topic(name) else {
        return refuse(404, &format!("no topic {name:?}"));
    };
    let held: Vec<&PartitionMetrics> = held(metrics, name).collect();
    let partitions: Vec<Value> = (0..meta.partitions)
        .take(PARTITIONS_LISTED_MAX)
        .map(|partition| {
            let state = view.state(meta, partition);
            let here = held.iter().find(|p| p.partition == partition);
            json!({
                "partition": partition,
                "leader": state.leader,
                "leader_epoch": state.leader_epoch,
                "replicas": state.replicas,
                "isr": state.isr,
                "log_start_offset": here.map(|p| p.log_start_offset),
                "log_end_offset": here.map(|p| p.log_end_offset),
                "high_watermark": here.map(|p| p.high_watermark),
                "size_bytes": here.map(|p| p.size_bytes),
                "segments": here.map(|p| p.segments),
            })
        })
        .collect();
    ok(json!({
        "name": meta.name,
        "id": meta.id.to_string(),
        "configs": meta.configs,
        "partitions": partitions,
        "truncated": meta.partitions as usize > PARTITIONS_LISTED_MAX,
    }))
}

/// The groups this node coordinates, each partition's committed offset,
/// its high watermark and lag where this node knows the high watermark:
/// the partitions it leads, and those whose leader answered the admin
/// task's last ask (`watermarks`); null otherwise.
fn groups(metrics: &BrokerMetrics) -> Value {
    let high_watermarks = metrics.high_watermarks();
    let mut budget = GROUP_PARTITIONS_LISTED_MAX;
    let listed: Vec<Value> = metrics
        .groups
        .iter()
        .take(GROUPS_LISTED_MAX)
        .map(|group| {
            let offsets: Vec<Value> = group
                .offsets
                .iter()
                .take(budget)
                .map(|(topic, partition, committed)| {
                    let high_watermark =
                        high_watermarks.get(&(topic.as_str(), *partition)).copied();
                    json!({
                        "topic": topic,
                        "partition": partition,
                        "committed": committed,
                        "high_watermark": high_watermark,
                        "lag": high_watermark.map(|hw| group_lag(hw, *committed)),
                    })
                })
                .collect();
            budget -= offsets.len();
            json!({
                "group": group.group,
                "state": group.state,
                "members": group.members,
                "offsets": offsets,
            })
        })
        .collect();
    let partitions: usize = metrics.groups.iter().map(|g| g.offsets.len()).sum();
    json!({
        "groups": listed,
        "truncated": metrics.groups.len() > GROUPS_LISTED_MAX || partitions > GROUP_PARTITIONS_LISTED_MAX,
    })
}

/// The last hour's samples and one of now, for the charts: counters,
/// latency percentiles, and the lag of `group`'s partitions.
fn charts(history: &History, now: &BrokerMetrics, group: Option<&str>) -> Value {
    let current = history.sample(now, crate::clock::now_ms());
    let samples: Vec<Value> = history
        .samples()
        .chain(std::iter::once(&current))
        .map(|sample| sample_json(sample, group))
        .collect();
    json!({
        "interval_ms": SAMPLE_INTERVAL.as_millis() as u64,
        "samples_max": SAMPLES_MAX,
        "samples": samples,
    })
}

fn sample_json(sample: &Sample, group: Option<&str>) -> Value {
    let latency = |index: usize| {
        sample.latency[index].map(|latency| {
            json!({
                "p50_us": latency.p50_us,
                "p99_us": latency.p99_us,
                "max_us": latency.max_us,
                "count": latency.count,
            })
        })
    };
    let lags: Vec<Value> = sample
        .lags
        .iter()
        .filter(|lag| Some(&*lag.group) == group)
        .map(|lag| json!([&*lag.topic, lag.partition, lag.lag]))
        .collect();
    json!({
        "time_ms": sample.time_ms,
        "bytes_in": sample.bytes_in,
        "bytes_out": sample.bytes_out,
        "records_in": sample.records_in,
        "requests": sample.requests,
        "produce": latency(0),
        "fetch": latency(1),
        "lags": lags,
    })
}

/// A page of a partition's records (`browse`); while an authorizer is
/// on, for a user with READ on the topic only.
async fn records(
    shard: &Rc<Shard>,
    request: &Request,
    peer: Option<SocketAddr>,
    pairs: &[(String, String)],
) -> Response {
    let query = match Query::parse(pairs) {
        Ok(query) => query,
        Err(reason) => return refuse(400, &reason),
    };
    let principal = match super::auth::principal(shard, request, peer) {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    let topic = &query.topic;
    if !super::auth::allowed(
        shard,
        &principal,
        peer,
        Operation::Read,
        ResourceType::Topic,
        topic,
    ) {
        log::info!("console: {principal} from {peer:?} may not read topic {topic}");
        return super::auth::forbidden(
            &principal,
            &format!("read topic {topic:?} (READ on the topic)"),
        );
    }
    match browse::page(shard, &query).await {
        Ok(page) => ok(page),
        Err((status, reason)) => refuse(status, &reason),
    }
}
