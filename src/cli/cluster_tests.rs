//! Tests of `cluster.rs`: the views built from DescribeQuorum,
//! DescribeCluster and Metadata answers, and the lines printed from them.

use std::cell::RefCell;
use std::collections::BTreeMap;

use anyhow::anyhow;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterResponse, DescribeQuorumResponse, MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::cluster::*;
use crate::client::{topic_name, KafkaError};

const NOT_LEADER_OR_FOLLOWER: i16 = 6;

fn replica(id: i32, log_end_offset: i64, fetch_ms: i64, caught_up_ms: i64) -> Replica {
    Replica {
        id,
        log_end_offset,
        last_fetch_timestamp_ms: fetch_ms,
        last_caught_up_timestamp_ms: caught_up_ms,
    }
}

/// Three voters led by 2, which reports its own times as 10_000; voter 3
/// is 5 entries behind and last caught up 1.5 s before the leader.
fn quorum() -> QuorumView {
    QuorumView {
        cluster_id: "MkU3OEVBNTcwNTJENDM2Qg".to_string(),
        leader_id: 2,
        leader_epoch: 4,
        high_watermark: 40,
        voters: vec![
            replica(1, 42, 9_900, 9_900),
            replica(2, 42, 10_000, 10_000),
            replica(3, 37, 9_700, 8_500),
        ],
        observers: vec![],
        endpoints: (1..=3)
            .map(|id| {
                let endpoint = Endpoint {
                    listener: (id != 3).then(|| "CONTROLLER".to_string()),
                    address: format!("127.0.0.1:{}", 19093 + 10_000 * (id - 1)),
                };
                (id, endpoint)
            })
            .collect(),
    }
}

#[test]
fn quorum_lines_have_the_status_fields_then_leader_followers_and_ages_on_the_leaders_clock() {
    // The client's clock is far off; ages come from the leader's.
    let text = quorum_lines(&quorum(), 99_999_999);
    let expected = "\
ClusterId:              MkU3OEVBNTcwNTJENDM2Qg
LeaderId:               2
LeaderEpoch:            4
HighWatermark:          40
MaxFollowerLag:         5
MaxFollowerLagTimeMs:   1500
CurrentVoters:          [{\"id\": 1, \"endpoints\": [\"CONTROLLER://127.0.0.1:19093\"]}, {\"id\": 2, \"endpoints\": [\"CONTROLLER://127.0.0.1:29093\"]}, {\"id\": 3}]
CurrentObservers:       []

NodeId\tEndpoint       \tLogEndOffset\tLag\tLastFetchTimestamp\tLastCaughtUpTimestamp\tStatus  \t
2     \t127.0.0.1:29093\t42          \t0  \t0 ms ago          \t0 ms ago             \tLeader  \t
1     \t127.0.0.1:19093\t42          \t0  \t100 ms ago        \t100 ms ago           \tFollower\t
3     \t127.0.0.1:39093\t37          \t5  \t300 ms ago        \t1500 ms ago          \tFollower\t
";
    assert_eq!(text, expected);
}

#[test]
fn observers_follow_the_voters_and_unknowns_print_as_minus_one_or_a_dash() {
    let mut view = quorum();
    view.voters[2] = replica(3, -1, -1, -1);
    view.observers = vec![replica(7, 40, 9_000, -1)];
    let text = quorum_lines(&view, 0);
    let rows: Vec<Vec<String>> = text
        .lines()
        .skip_while(|line| !line.starts_with("NodeId"))
        .skip(1)
        .map(|line| {
            line.split('\t')
                .map(|cell| cell.trim().to_string())
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(
        rows[2][..7],
        ["3", "127.0.0.1:39093", "-1", "-1", "-1", "-1", "Follower"]
    );
    assert_eq!(
        rows[3][..7],
        ["7", "-", "40", "2", "1000 ms ago", "-1", "Observer"]
    );
    assert!(text.contains("MaxFollowerLag:         43\n"), "{text}");
    assert!(text.contains("MaxFollowerLagTimeMs:   -1\n"), "{text}");
    assert!(
        text.contains("CurrentObservers:       [{\"id\": 7}]\n"),
        "{text}"
    );
}

#[test]
fn max_follower_lag_is_zero_when_every_voter_has_the_leaders_end() {
    let mut view = quorum();
    view.voters[2] = replica(3, 42, 9_000, 9_000);
    let leader = view.voters[1];
    assert_eq!(max_follower_lag(&view, Some(&leader)), (0, 0));
    assert_eq!(max_follower_lag(&view, None), (-1, -1));
}

#[test]
fn without_the_leaders_own_time_ages_use_the_clients_clock() {
    let mut view = quorum();
    view.voters[1] = replica(2, 42, -1, -1);
    let text = quorum_lines(&view, 10_400);
    assert!(text.contains("\t500 ms ago"), "{text}");
    assert_eq!(age(-1, 5), "-1");
    assert_eq!(age(7, 5), "0 ms ago");
    assert_eq!(age(5, 7), "2 ms ago");
}

fn quorum_response(partition: PartitionData) -> DescribeQuorumResponse {
    DescribeQuorumResponse::default().with_topics(vec![TopicData::default()
        .with_topic_name(topic_name("__cluster_metadata"))
        .with_partitions(vec![partition])])
}

fn state(id: i32, log_end_offset: i64) -> ReplicaState {
    ReplicaState::default()
        .with_replica_id(BrokerId(id))
        .with_log_end_offset(log_end_offset)
        .with_last_fetch_timestamp(-1)
        .with_last_caught_up_timestamp(-1)
}

#[test]
fn quorum_view_reads_the_leaders_answer_and_its_v2_endpoints() {
    let partition = PartitionData::default()
        .with_leader_id(BrokerId(1))
        .with_leader_epoch(3)
        .with_high_watermark(12)
        .with_current_voters(vec![state(1, 12), state(2, 11)])
        .with_observers(vec![state(5, 9)]);
    let response = quorum_response(partition).with_nodes(vec![Node::default()
        .with_node_id(BrokerId(2))
        .with_listeners(vec![Listener::default()
            .with_name(StrBytes::from_static_str("CONTROLLER"))
            .with_host(StrBytes::from_static_str("::1"))
            .with_port(9093)])]);
    let address = |address: &str| Endpoint {
        listener: None,
        address: address.to_string(),
    };
    let from_cluster: BTreeMap<i32, Endpoint> = [(1, address("a:1")), (2, address("b:2"))].into();
    let view = quorum_view("c".to_string(), from_cluster, &response).unwrap();
    assert_eq!(
        (view.leader_id, view.leader_epoch, view.high_watermark),
        (1, 3, 12)
    );
    assert_eq!(view.voters.len(), 2);
    assert_eq!(view.voters[1].log_end_offset, 11);
    assert_eq!(view.observers[0].id, 5);
    assert_eq!(view.endpoints[&1], address("a:1"));
    assert_eq!(view.endpoints[&2].address, "[::1]:9093");
    assert_eq!(view.endpoints[&2].listener.as_deref(), Some("CONTROLLER"));
}

#[test]
fn quorum_view_of_an_error_or_a_missing_partition_is_an_error() {
    let refused = quorum_response(PartitionData::default().with_error_code(NOT_LEADER_OR_FOLLOWER));
    let error = quorum_view("c".to_string(), BTreeMap::new(), &refused).unwrap_err();
    let error = error.downcast::<KafkaError>().unwrap();
    assert_eq!(error.name(), "NOT_LEADER_OR_FOLLOWER");
    let elsewhere = quorum_response(PartitionData::default().with_partition_index(1));
    assert!(quorum_view("c".to_string(), BTreeMap::new(), &elsewhere).is_err());
}

fn broker(id: i32, rack: Option<&'static str>, fenced: bool) -> DescribeClusterBroker {
    DescribeClusterBroker::default()
        .with_broker_id(BrokerId(id))
        .with_host(StrBytes::from_static_str("10.0.0.1"))
        .with_port(9090 + id)
        .with_rack(rack.map(StrBytes::from_static_str))
        .with_is_fenced(fenced)
}

fn topic(name: &str, leaders: &[i32]) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(name)))
        .with_partitions(
            leaders
                .iter()
                .enumerate()
                .map(|(index, &leader)| {
                    MetadataResponsePartition::default()
                        .with_partition_index(index as i32)
                        .with_leader_id(BrokerId(leader))
                })
                .collect(),
        )
}

#[test]
fn broker_lines_list_every_broker_then_the_offline_partitions_by_topic() {
    let cluster = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_static_str("c"))
        .with_controller_id(BrokerId(1))
        .with_brokers(vec![broker(2, None, true), broker(1, Some("r1"), false)]);
    let metadata = MetadataResponse::default().with_topics(vec![
        topic("b", &[1, -1, 1, -1]),
        topic("a", &[-1]),
        topic("healthy", &[1, 1]),
    ]);
    let view = brokers_view(&cluster, &metadata);
    assert_eq!(view.partition_count, 7);
    let expected = "\
ClusterId:              c
ControllerId:           1
BrokerCount:            2
FencedBrokerCount:      1

BrokerId\tEndpoint     \tRack\tStatus  \t
1       \t10.0.0.1:9091\tr1  \tUnfenced\t
2       \t10.0.0.1:9092\t-   \tFenced  \t

PartitionCount:         7
OfflinePartitionCount:  3

Topic\tOfflinePartitionCount\tPartitions\t
a    \t1                    \t0         \t
b    \t2                    \t1,3       \t
";
    assert_eq!(brokers_lines(&view, true), expected);
}

#[test]
fn broker_lines_without_offline_partitions_end_at_the_count() {
    let cluster = DescribeClusterResponse::default()
        .with_controller_id(BrokerId(1))
        .with_brokers(vec![broker(1, None, false)]);
    let metadata = MetadataResponse::default().with_topics(vec![topic("t", &[1])]);
    let text = brokers_lines(&brokers_view(&cluster, &metadata), false);
    assert!(text.starts_with("ControllerId:           1\n"), "{text}");
    assert!(text.ends_with("OfflinePartitionCount:  0\n"), "{text}");
}

#[test]
fn first_answer_tries_each_address_in_order_and_names_every_failure() {
    let tried = RefCell::new(Vec::new());
    let read = |addr: &str| {
        tried.borrow_mut().push(addr.to_string());
        if addr == "b:2" {
            Ok(addr.len())
        } else {
            Err(anyhow!("refused").context(format!("connecting to {addr}")))
        }
    };
    assert_eq!(first_answer("a:1, b:2,c:3", read).unwrap(), 3);
    assert_eq!(*tried.borrow(), ["a:1", "b:2"]);
    let error = first_answer("a:1,c:3", read).unwrap_err().to_string();
    assert_eq!(
        error,
        "a:1: connecting to a:1: refused; c:3: connecting to c:3: refused"
    );
    assert!(first_answer(" , ", read).is_err());
    let two_lines = |_: &str| -> anyhow::Result<()> { Err(anyhow!("first\nsecond")) };
    assert_eq!(
        first_answer("a:1", two_lines).unwrap_err().to_string(),
        "a:1: first second"
    );
}
