//! `shoal cluster status`: the operators' view of a cluster in one command.
//! From a controller (`--bootstrap-controller`, its CONTROLLER listener):
//! the metadata quorum as `kafka-metadata-quorum.sh describe --status` and
//! `describe --replication --human-readable` show it, over DescribeCluster
//! (which names the quorum leader and the voters' addresses) and
//! DescribeQuorum (which only the leader answers). From a broker
//! (`--bootstrap-server`): the brokers, fenced or not, over DescribeCluster
//! v2, and the partitions without a leader, over Metadata.
//!
//! Invariant: reading is apart from printing. The `read_*` functions speak
//! the protocol and return plain views; the `*_lines` functions are pure, so
//! the output's shape is unit-tested. Each comma-separated address list is
//! tried in order until one answers; a list none of whose addresses answers
//! is an error of one line, returned after everything that did answer has
//! been printed.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{anyhow, bail};
use kafka_protocol::messages::describe_quorum_request::{
    PartitionData as QuorumRequestPartition, TopicData as QuorumRequestTopic,
};
use kafka_protocol::messages::describe_quorum_response::ReplicaState;
use kafka_protocol::messages::{
    ApiKey, DescribeClusterRequest, DescribeClusterResponse, DescribeQuorumRequest,
    DescribeQuorumResponse, MetadataResponse,
};

use super::table::{table, Layout};
use super::DEFAULT_BOOTSTRAP;
use crate::client::{check, format_host_port, topic_name, Connection};

/// The metadata log's topic and partition, which DescribeQuorum names.
const METADATA_TOPIC: &str = "__cluster_metadata";
const METADATA_PARTITION: i32 = 0;
/// DescribeCluster's `EndpointType` (KIP-919): brokers or controllers.
const ENDPOINT_TYPE_BROKER: i8 = 1;
const ENDPOINT_TYPE_CONTROLLER: i8 = 2;
/// The first DescribeCluster versions with an endpoint type (v1) and with
/// fenced brokers on request (v2, KIP-1073).
const ENDPOINT_TYPE_VERSION: i16 = 1;
const FENCED_BROKERS_VERSION: i16 = 2;
/// What Kafka's tools print for an unknown offset or timestamp.
const UNKNOWN: i64 = -1;
/// What the broker table prints for a broker without `broker.rack`.
const NO_RACK: &str = "-";
/// The width of `Name:` before its value, as kafka-metadata-quorum.sh pads
/// its `--status` lines (`MaxFollowerLagTimeMs:   ` is the longest).
const FIELD_WIDTH: usize = 24;

const REPLICATION_HEADERS: [&str; 7] = [
    "NodeId",
    "Endpoint",
    "LogEndOffset",
    "Lag",
    "LastFetchTimestamp",
    "LastCaughtUpTimestamp",
    "Status",
];
const BROKER_HEADERS: [&str; 4] = ["BrokerId", "Endpoint", "Rack", "Status"];
const OFFLINE_HEADERS: [&str; 3] = ["Topic", "OfflinePartitionCount", "Partitions"];

/// `shoal cluster ...`
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum ClusterCommand {
    /// The quorum leader, the voters and their lag (from a controller), the
    /// brokers and their state, and the partitions without a leader (from a
    /// broker).
    Status(StatusArgs),
}

/// Where `shoal cluster status` looks; with neither option, the broker at
/// 127.0.0.1:9092.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct StatusArgs {
    /// Controllers to ask about the metadata quorum (their CONTROLLER
    /// listeners), tried in order.
    #[arg(long, value_name = "HOST:PORT[,...]")]
    pub bootstrap_controller: Option<String>,
    /// Brokers to ask about the brokers and partitions, tried in order.
    #[arg(long, value_name = "HOST:PORT[,...]")]
    pub bootstrap_server: Option<String>,
    /// Client properties, as kafka-metadata-quorum.sh's --command-config
    /// (installed by `main`, as `BootstrapArg`'s).
    #[arg(long, value_name = "FILE")]
    pub command_config: Option<std::path::PathBuf>,
}

/// The metadata quorum as its leader reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumView {
    pub cluster_id: String,
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<Replica>,
    pub observers: Vec<Replica>,
    /// Where each controller listens for the quorum, by id.
    pub endpoints: BTreeMap<i32, Endpoint>,
}

/// A controller's CONTROLLER listener: `host:port`, and its name where the
/// leader said it (DescribeQuorum v2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub listener: Option<String>,
    pub address: String,
}

/// One replica of the metadata log; `UNKNOWN` where the leader does not know.
/// Timestamps are the leader's wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replica {
    pub id: i32,
    pub log_end_offset: i64,
    pub last_fetch_timestamp_ms: i64,
    pub last_caught_up_timestamp_ms: i64,
}

/// The brokers and partitions as one broker's metadata has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokersView {
    pub cluster_id: String,
    /// The active controller as the broker knows it, -1 if none.
    pub controller_id: i32,
    pub brokers: Vec<BrokerRow>,
    /// The partitions without a leader, by topic, in order.
    pub offline: BTreeMap<String, Vec<i32>>,
    pub partition_count: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRow {
    pub id: i32,
    pub endpoint: String,
    pub rack: Option<String>,
    pub fenced: bool,
}

/// Runs one `shoal cluster` command, printing to stdout.
pub fn run_cluster(command: ClusterCommand) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Status(args) => status(&args),
    }
}

fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let servers = match (&args.bootstrap_controller, &args.bootstrap_server) {
        (None, None) => Some(DEFAULT_BOOTSTRAP),
        (_, servers) => servers.as_deref(),
    };
    let mut text = String::new();
    let mut failures = Vec::new();
    let mut shown_cluster_id = None;
    if let Some(addrs) = args.bootstrap_controller.as_deref() {
        match first_answer(addrs, read_quorum) {
            Ok(view) => {
                text.push_str(&quorum_lines(&view, now_ms()));
                shown_cluster_id = Some(view.cluster_id);
            }
            Err(error) => failures.push(format!("no controller answered: {error:#}")),
        }
    }
    if let Some(addrs) = servers {
        match first_answer(addrs, read_brokers) {
            Ok(view) => {
                if !text.is_empty() {
                    text.push('\n');
                }
                let show_cluster_id = shown_cluster_id.as_deref() != Some(&view.cluster_id);
                text.push_str(&brokers_lines(&view, show_cluster_id));
            }
            Err(error) => failures.push(format!("no broker answered: {error:#}")),
        }
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    Ok(())
}

/// `read` of the first address of the comma-separated `addrs` that answers;
/// otherwise an error of one line naming each address with what went wrong
/// there (a broker's message may hold line breaks; they become spaces).
pub(super) fn first_answer<T>(
    addrs: &str,
    read: impl Fn(&str) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut failures = Vec::new();
    for addr in addrs.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        match read(addr) {
            Ok(view) => return Ok(view),
            Err(error) => failures.push(format!("{addr}: {error:#}").replace('\n', " ")),
        }
    }
    if failures.is_empty() {
        bail!("no address given in {addrs:?}");
    }
    bail!("{}", failures.join("; "))
}

fn now_ms() -> i64 {
    i64::try_from(crate::clock::now_ms()).unwrap_or(i64::MAX)
}

/// The quorum through the controller at `addr`: DescribeCluster there names
/// the leader and where it listens, and the leader answers DescribeQuorum.
fn read_quorum(addr: &str) -> anyhow::Result<QuorumView> {
    let mut seed = Connection::connect(addr)?;
    let cluster = describe_cluster(&mut seed, ENDPOINT_TYPE_CONTROLLER)?;
    let leader_id = cluster.controller_id.0;
    if leader_id < 0 {
        bail!("the quorum has no leader (an election may be under way)");
    }
    let endpoints: BTreeMap<i32, Endpoint> = cluster
        .brokers
        .iter()
        .map(|node| {
            let address = format_host_port(&node.host, node.port);
            let endpoint = Endpoint {
                listener: None,
                address,
            };
            (node.broker_id.0, endpoint)
        })
        .collect();
    let leader_addr = &endpoints
        .get(&leader_id)
        .ok_or_else(|| {
            anyhow!("the quorum leader {leader_id} is not among the controllers {addr} lists")
        })?
        .address;
    let mut leader = if leader_addr == addr {
        seed
    } else {
        Connection::connect(leader_addr)?
    };
    let response = leader.send(describe_quorum_request())?;
    quorum_view(cluster.cluster_id.to_string(), endpoints, &response)
}

/// DescribeCluster for `endpoint_type`, at the newest version both sides
/// speak; a controller must speak v1 at least, which carries the type.
fn describe_cluster(
    conn: &mut Connection,
    endpoint_type: i8,
) -> anyhow::Result<DescribeClusterResponse> {
    let version = conn.require_version(ApiKey::DescribeCluster)?;
    let mut request = DescribeClusterRequest::default();
    if version >= ENDPOINT_TYPE_VERSION {
        request.endpoint_type = endpoint_type;
    } else if endpoint_type != ENDPOINT_TYPE_BROKER {
        bail!(
            "{} speaks DescribeCluster v{version} only, which cannot ask for controllers",
            conn.addr()
        );
    }
    request.include_fenced_brokers = version >= FENCED_BROKERS_VERSION;
    let response = conn.send_version(request, version)?;
    check(
        response.error_code,
        response.error_message.as_deref(),
        "DescribeCluster",
    )?;
    Ok(response)
}

fn describe_quorum_request() -> DescribeQuorumRequest {
    DescribeQuorumRequest::default().with_topics(vec![QuorumRequestTopic::default()
        .with_topic_name(topic_name(METADATA_TOPIC))
        .with_partitions(vec![
            QuorumRequestPartition::default().with_partition_index(METADATA_PARTITION)
        ])])
}

/// The view in a DescribeQuorum `response`, or its error. The nodes of v2
/// name the voters' endpoints; without them, `endpoints` from DescribeCluster
/// stand.
pub(super) fn quorum_view(
    cluster_id: String,
    mut endpoints: BTreeMap<i32, Endpoint>,
    response: &DescribeQuorumResponse,
) -> anyhow::Result<QuorumView> {
    check(
        response.error_code,
        response.error_message.as_deref(),
        "DescribeQuorum",
    )?;
    let partition = response
        .topics
        .iter()
        .filter(|topic| topic.topic_name.0.as_str() == METADATA_TOPIC)
        .flat_map(|topic| &topic.partitions)
        .find(|partition| partition.partition_index == METADATA_PARTITION)
        .ok_or_else(|| anyhow!("DescribeQuorum answered without {METADATA_TOPIC}-0"))?;
    check(
        partition.error_code,
        partition.error_message.as_deref(),
        "DescribeQuorum",
    )?;
    for node in &response.nodes {
        if let Some(listener) = node.listeners.first() {
            let endpoint = Endpoint {
                listener: Some(listener.name.to_string()),
                address: format_host_port(&listener.host, i32::from(listener.port)),
            };
            endpoints.insert(node.node_id.0, endpoint);
        }
    }
    let replica = |state: &ReplicaState| Replica {
        id: state.replica_id.0,
        log_end_offset: state.log_end_offset,
        last_fetch_timestamp_ms: state.last_fetch_timestamp,
        last_caught_up_timestamp_ms: state.last_caught_up_timestamp,
    };
    Ok(QuorumView {
        cluster_id,
        leader_id: partition.leader_id.0,
        leader_epoch: partition.leader_epoch,
        high_watermark: partition.high_watermark,
        voters: partition.current_voters.iter().map(replica).collect(),
        observers: partition.observers.iter().map(replica).collect(),
        endpoints,
    })
}

/// The brokers and offline partitions as the broker at `addr` knows them.
fn read_brokers(addr: &str) -> anyhow::Result<BrokersView> {
    let mut conn = Connection::connect(addr)?;
    let cluster = describe_cluster(&mut conn, ENDPOINT_TYPE_BROKER)?;
    let metadata = conn.metadata(None)?;
    Ok(brokers_view(&cluster, &metadata))
}

pub(super) fn brokers_view(
    cluster: &DescribeClusterResponse,
    metadata: &MetadataResponse,
) -> BrokersView {
    let mut brokers: Vec<BrokerRow> = cluster
        .brokers
        .iter()
        .map(|broker| BrokerRow {
            id: broker.broker_id.0,
            endpoint: format_host_port(&broker.host, broker.port),
            rack: broker.rack.as_ref().map(|rack| rack.to_string()),
            fenced: broker.is_fenced,
        })
        .collect();
    brokers.sort_by_key(|broker| broker.id);
    let mut offline: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    let mut partition_count = 0;
    for topic in &metadata.topics {
        let name = topic.name.as_ref().map_or("", |name| name.0.as_str());
        partition_count += topic.partitions.len();
        for partition in &topic.partitions {
            if partition.leader_id.0 < 0 {
                offline
                    .entry(name.to_string())
                    .or_default()
                    .push(partition.partition_index);
            }
        }
    }
    for partitions in offline.values_mut() {
        partitions.sort_unstable();
    }
    BrokersView {
        cluster_id: cluster.cluster_id.to_string(),
        controller_id: cluster.controller_id.0,
        brokers,
        offline,
        partition_count,
    }
}

/// `Name:` padded as kafka-metadata-quorum.sh pads it, then the value.
fn field(name: &str, value: impl std::fmt::Display) -> String {
    format!("{:<FIELD_WIDTH$}{value}\n", format!("{name}:"))
}

/// The `--status` lines of kafka-metadata-quorum.sh, then one row per
/// replica as
/// its `--replication --human-readable` prints them, with each
/// controller's endpoint in place of its directory id. Ages are measured
/// on the leader's clock: the leader reports its own times as its now,
/// and `client_now_ms` stands in only if it did not.
pub fn quorum_lines(view: &QuorumView, client_now_ms: i64) -> String {
    let leader = view.voters.iter().find(|voter| voter.id == view.leader_id);
    let leader_end = leader.map_or(UNKNOWN, |leader| leader.log_end_offset);
    let now_ms = match leader {
        Some(leader) if leader.last_fetch_timestamp_ms >= 0 => leader.last_fetch_timestamp_ms,
        _ => client_now_ms,
    };
    let (max_lag, max_lag_time_ms) = max_follower_lag(view, leader);
    let mut text = field("ClusterId", &view.cluster_id);
    text.push_str(&field("LeaderId", view.leader_id));
    text.push_str(&field("LeaderEpoch", view.leader_epoch));
    text.push_str(&field("HighWatermark", view.high_watermark));
    text.push_str(&field("MaxFollowerLag", max_lag));
    text.push_str(&field("MaxFollowerLagTimeMs", max_lag_time_ms));
    text.push_str(&field("CurrentVoters", replica_list(view, &view.voters)));
    text.push_str(&field(
        "CurrentObservers",
        replica_list(view, &view.observers),
    ));
    text.push('\n');
    let followers = view.voters.iter().filter(|v| v.id != view.leader_id);
    let rows: Vec<Vec<String>> = leader
        .map(|leader| (leader, "Leader"))
        .into_iter()
        .chain(followers.map(|voter| (voter, "Follower")))
        .chain(view.observers.iter().map(|observer| (observer, "Observer")))
        .map(|(replica, status)| replica_row(view, replica, leader_end, now_ms, status))
        .collect();
    text.push_str(&table(Layout::Tabbed, &REPLICATION_HEADERS, &rows));
    text
}

/// kafka-metadata-quorum.sh's voter and observer lists:
/// `[{"id": 1, "endpoints": ["CONTROLLER://host:port"]}, ...]`, the
/// endpoints left out where the listener's name is not known.
fn replica_list(view: &QuorumView, replicas: &[Replica]) -> String {
    let items: Vec<String> = replicas
        .iter()
        .map(|replica| match view.endpoints.get(&replica.id) {
            Some(Endpoint {
                listener: Some(name),
                address,
            }) => format!(
                r#"{{"id": {}, "endpoints": ["{name}://{address}"]}}"#,
                replica.id
            ),
            _ => format!(r#"{{"id": {}}}"#, replica.id),
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// kafka-metadata-quorum.sh's MaxFollowerLag (the leader's end offset less
/// the lowest voter's) and MaxFollowerLagTimeMs (how long before the
/// leader's last catch-up that voter last caught up; 0 when no voter is
/// behind, -1 when a time is unknown).
pub(super) fn max_follower_lag(view: &QuorumView, leader: Option<&Replica>) -> (i64, i64) {
    let (Some(leader), Some(lowest)) = (
        leader,
        view.voters.iter().min_by_key(|voter| voter.log_end_offset),
    ) else {
        return (UNKNOWN, UNKNOWN);
    };
    let lag = leader.log_end_offset - lowest.log_end_offset;
    let lag_time_ms = if lag == 0 {
        0
    } else if leader.last_caught_up_timestamp_ms >= 0 && lowest.last_caught_up_timestamp_ms >= 0 {
        leader.last_caught_up_timestamp_ms - lowest.last_caught_up_timestamp_ms
    } else {
        UNKNOWN
    };
    (lag, lag_time_ms)
}

fn replica_row(
    view: &QuorumView,
    replica: &Replica,
    leader_end: i64,
    now_ms: i64,
    status: &str,
) -> Vec<String> {
    let lag = if replica.log_end_offset < 0 || leader_end < 0 {
        UNKNOWN
    } else {
        leader_end - replica.log_end_offset
    };
    vec![
        replica.id.to_string(),
        // An observer (a pure broker) has no CONTROLLER endpoint: shown as
        // a broker without a rack is.
        view.endpoints
            .get(&replica.id)
            .map_or_else(|| NO_RACK.to_string(), |endpoint| endpoint.address.clone()),
        replica.log_end_offset.to_string(),
        lag.to_string(),
        age(replica.last_fetch_timestamp_ms, now_ms),
        age(replica.last_caught_up_timestamp_ms, now_ms),
        status.to_string(),
    ]
}

/// `N ms ago`, as kafka-metadata-quorum.sh's `--human-readable`, or -1 for
/// an unknown time. A time ahead of `now_ms` (clocks apart) reads 0 ms ago.
pub(super) fn age(timestamp_ms: i64, now_ms: i64) -> String {
    if timestamp_ms < 0 {
        return UNKNOWN.to_string();
    }
    format!("{} ms ago", now_ms.saturating_sub(timestamp_ms).max(0))
}

/// The controller the broker names, one row per broker (fenced or not),
/// then the partitions without a leader, counted per topic. The cluster id
/// leads when the quorum's lines did not already show it.
pub fn brokers_lines(view: &BrokersView, show_cluster_id: bool) -> String {
    let mut text = String::new();
    if show_cluster_id {
        text.push_str(&field("ClusterId", &view.cluster_id));
    }
    let fenced = view.brokers.iter().filter(|broker| broker.fenced).count();
    text.push_str(&field("ControllerId", view.controller_id));
    text.push_str(&field("BrokerCount", view.brokers.len()));
    text.push_str(&field("FencedBrokerCount", fenced));
    text.push('\n');
    let rows: Vec<Vec<String>> = view
        .brokers
        .iter()
        .map(|broker| {
            vec![
                broker.id.to_string(),
                broker.endpoint.clone(),
                broker.rack.clone().unwrap_or_else(|| NO_RACK.to_string()),
                if broker.fenced { "Fenced" } else { "Unfenced" }.to_string(),
            ]
        })
        .collect();
    text.push_str(&table(Layout::Tabbed, &BROKER_HEADERS, &rows));
    text.push('\n');
    let offline_count: usize = view.offline.values().map(Vec::len).sum();
    text.push_str(&field("PartitionCount", view.partition_count));
    text.push_str(&field("OfflinePartitionCount", offline_count));
    if offline_count > 0 {
        text.push('\n');
        let rows: Vec<Vec<String>> = view
            .offline
            .iter()
            .map(|(topic, partitions)| {
                let list: Vec<String> = partitions.iter().map(i32::to_string).collect();
                vec![topic.clone(), partitions.len().to_string(), list.join(",")]
            })
            .collect();
        text.push_str(&table(Layout::Tabbed, &OFFLINE_HEADERS, &rows));
    }
    text
}
