//! The active controller's brokers over a real lone-voter quorum on a
//! glommio executor, called in process: two brokers register and are
//! unfenced, one that falls silent is fenced by the timer with its
//! partition left leaderless, it comes back and leads again, and the other
//! stops with a controlled shutdown; a leader's AlterPartition changes
//! its partition's ISR and stale ones are refused.

use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::broker_registration_request::Feature;
use kafka_protocol::messages::{
    alter_partition_request, AlterPartitionRequest, AlterPartitionResponse, BrokerHeartbeatRequest,
    BrokerId, BrokerRegistrationRequest,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::brokers::BrokerControl;
use super::quorum::{self, QuorumHandle, QuorumStart};
use crate::metadata::records::{MetadataRecord, PartitionRecord, TopicRecord, NO_LEADER};
use crate::metadata::table;
use crate::quorum::transport::ControllerService;
use crate::quorum::{QuorumNode, QuorumSettings};
use crate::shard::block_on;

const CLUSTER: &str = "brokers-test";
const SESSION_TIMEOUT_MS: i64 = 500;
/// Far beyond the session timeout: only a broken timer takes this long.
const WAIT: Duration = Duration::from_secs(20);
const TOPIC: Uuid = Uuid::from_u128(77);

fn partition(partition_id: i32, broker: i32) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        partition_id,
        topic_id: TOPIC,
        replicas: vec![broker],
        isr: vec![broker],
        removing_replicas: Vec::new(),
        adding_replicas: Vec::new(),
        leader: broker,
        leader_recovery_state: 0,
        leader_epoch: 0,
        partition_epoch: 0,
        directories: vec![Uuid::from_u128(1000 + broker as u128)],
        shards: vec![0],
    })
}

fn registration(id: i32) -> BrokerRegistrationRequest {
    BrokerRegistrationRequest::default()
        .with_broker_id(BrokerId(id))
        .with_cluster_id(StrBytes::from_static_str(CLUSTER))
        .with_incarnation_id(Uuid::new_v4())
        .with_features(vec![Feature::default()
            .with_name(StrBytes::from_static_str(table::METADATA_VERSION_FEATURE))
            .with_min_supported_version(1)
            .with_max_supported_version(table::METADATA_VERSION_LEVEL)])
        .with_log_dirs(vec![Uuid::from_u128(1000 + id as u128)])
        .with_previous_broker_epoch(-1)
}

fn heartbeat(
    quorum: &QuorumHandle,
    id: i32,
    epoch: i64,
    shut_down: bool,
) -> BrokerHeartbeatRequest {
    BrokerHeartbeatRequest::default()
        .with_broker_id(BrokerId(id))
        .with_broker_epoch(epoch)
        .with_current_metadata_offset(quorum.latest().index as i64 - 1)
        .with_want_shut_down(shut_down)
}

/// (fenced, leader of partition `broker - 1`) of broker `broker` in the image.
fn state(quorum: &QuorumHandle, broker: i32) -> (bool, i32) {
    let image = quorum.latest().image;
    let fenced = image.brokers[&broker].fenced;
    let leader = image.topics[&TOPIC].partitions[&(broker - 1)].leader;
    (fenced, leader)
}

/// A lone voter's quorum on `dir` with topic `t` of `partitions`.
async fn lone_voter(dir: &std::path::Path, partitions: Vec<MetadataRecord>) -> QuorumHandle {
    let settings = QuorumSettings {
        node_id: 1,
        voters: vec![1],
        election_timeout_ms: 1000,
        snapshot_bytes: u64::MAX,
    };
    let node = QuorumNode::start_blocking(dir, settings.clone()).expect("quorum");
    let start = QuorumStart {
        node,
        settings,
        network: None,
    };
    let quorum =
        quorum::start(start, dir.to_path_buf(), |_| ControllerService::none()).expect("start");
    quorum
        .propose(Box::new(|image| {
            let mut records = table::bootstrap_records(image);
            records.push(MetadataRecord::Topic(TopicRecord {
                name: "t".into(),
                topic_id: TOPIC,
            }));
            records.extend(partitions);
            records
        }))
        .await
        .expect("topic");
    quorum
}

#[test]
fn brokers_register_are_fenced_when_silent_return_and_shut_down_under_control() {
    block_on(|| async {
        let dir = tempfile::tempdir().expect("dir");
        let quorum = lone_voter(dir.path(), vec![partition(0, 1), partition(1, 2)]).await;
        // Not sole: the expiry timer runs.
        let control = BrokerControl::start(
            quorum.clone(),
            CLUSTER.into(),
            SESSION_TIMEOUT_MS,
            false,
            false,
        );
        let mut epochs = Vec::new();
        for id in [1, 2] {
            let answer = control.register(&registration(id)).await;
            assert_eq!(answer.error_code, 0, "broker {id}");
            epochs.push(answer.broker_epoch);
            let answer = control
                .heartbeat(&heartbeat(&quorum, id, answer.broker_epoch, false))
                .await;
            assert_eq!(
                (answer.error_code, answer.is_fenced),
                (0, false),
                "broker {id}"
            );
        }
        assert!(epochs[1] > epochs[0]);
        assert_eq!(
            (state(&quorum, 1), state(&quorum, 2)),
            ((false, 1), (false, 2))
        );

        // Broker 2 falls silent while 1 heartbeats: fenced, its partition leaderless.
        let deadline = Instant::now() + WAIT;
        while state(&quorum, 2) != (true, NO_LEADER) {
            assert!(
                Instant::now() < deadline,
                "broker 2 not fenced: {:?}",
                state(&quorum, 2)
            );
            let answer = control
                .heartbeat(&heartbeat(&quorum, 1, epochs[0], false))
                .await;
            assert_eq!((answer.error_code, answer.is_fenced), (0, false));
            glommio::timer::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(state(&quorum, 1), (false, 1));
        // Back: unfenced, leader again one leader epoch on.
        let answer = control
            .heartbeat(&heartbeat(&quorum, 2, epochs[1], false))
            .await;
        assert_eq!((answer.error_code, answer.is_fenced), (0, false));
        assert_eq!(state(&quorum, 2), (false, 2));
        let leader_epoch = quorum.latest().image.topics[&TOPIC].partitions[&1].leader_epoch;
        assert_eq!(leader_epoch, 2);

        // Broker 1 shuts down under control: its partition leaves it first.
        let answer = control
            .heartbeat(&heartbeat(&quorum, 1, epochs[0], true))
            .await;
        assert_eq!((answer.is_fenced, answer.should_shut_down), (false, false));
        assert_eq!(state(&quorum, 1), (false, NO_LEADER));
        // Once the other broker has caught up to the moves, it may stop.
        control
            .heartbeat(&heartbeat(&quorum, 2, epochs[1], false))
            .await;
        let answer = control
            .heartbeat(&heartbeat(&quorum, 1, epochs[0], true))
            .await;
        assert_eq!((answer.is_fenced, answer.should_shut_down), (true, true));
        assert_eq!(state(&quorum, 1), (true, NO_LEADER));
    });
}

/// Brokers 1 and 2 registered and unfenced on a lone voter that is not
/// sole (the expiry timer runs), partition 0 on both, led by 1.
async fn two_brokers(quorum: &QuorumHandle) -> (std::rc::Rc<BrokerControl>, Vec<i64>) {
    let control = BrokerControl::start(
        quorum.clone(),
        CLUSTER.into(),
        SESSION_TIMEOUT_MS,
        false,
        false,
    );
    let mut epochs = Vec::new();
    for id in [1, 2] {
        let answer = control.register(&registration(id)).await;
        epochs.push(answer.broker_epoch);
        let answer = control
            .heartbeat(&heartbeat(quorum, id, answer.broker_epoch, false))
            .await;
        assert_eq!((answer.error_code, answer.is_fenced), (0, false));
    }
    (control, epochs)
}

/// One partition's AlterPartition at version 3.
fn alter(sender: (i32, i64), partition_epoch: i32, isr: &[(i32, i64)]) -> AlterPartitionRequest {
    let partition = alter_partition_request::PartitionData::default()
        .with_partition_index(0)
        .with_leader_epoch(0)
        .with_partition_epoch(partition_epoch)
        .with_new_isr_with_epochs(
            isr.iter()
                .map(|&(id, epoch)| {
                    alter_partition_request::BrokerState::default()
                        .with_broker_id(BrokerId(id))
                        .with_broker_epoch(epoch)
                })
                .collect(),
        );
    AlterPartitionRequest::default()
        .with_broker_id(BrokerId(sender.0))
        .with_broker_epoch(sender.1)
        .with_topics(vec![alter_partition_request::TopicData::default()
            .with_topic_id(TOPIC)
            .with_partitions(vec![partition])])
}

/// (top-level error, partition error, ISR, partition epoch) of an answer.
fn answered(response: &AlterPartitionResponse) -> (i16, i16, Vec<i32>, i32) {
    let Some(partition) = response.topics.first().and_then(|t| t.partitions.first()) else {
        return (response.error_code, 0, Vec::new(), -1);
    };
    (
        response.error_code,
        partition.error_code,
        partition.isr.iter().map(|id| id.0).collect(),
        partition.partition_epoch,
    )
}

#[test]
fn alter_partition_commits_isr_changes_and_refuses_stale_ones() {
    block_on(|| async {
        let dir = tempfile::tempdir().expect("dir");
        let shared = MetadataRecord::Partition(PartitionRecord {
            replicas: vec![1, 2],
            isr: vec![1, 2],
            directories: Vec::new(),
            shards: Vec::new(),
            ..match partition(0, 1) {
                MetadataRecord::Partition(record) => record,
                _ => unreachable!("a partition record"),
            }
        });
        let quorum = lone_voter(dir.path(), vec![shared]).await;
        let (control, epochs) = two_brokers(&quorum).await;
        let leader = (1, epochs[0]);
        let isr = || {
            quorum.latest().image.topics[&TOPIC].partitions[&0]
                .isr
                .clone()
        };

        // The leader shrinks the ISR to itself: committed, epoch 1.
        let answer = control
            .alter_partition(&alter(leader, 0, &[leader]), 3)
            .await;
        assert_eq!(answered(&answer), (0, 0, vec![1], 1));
        assert_eq!(isr(), vec![1]);
        // The same request again: the partition moved on.
        let answer = control
            .alter_partition(&alter(leader, 0, &[leader]), 3)
            .await;
        let stale = ResponseError::InvalidUpdateVersion.code();
        assert_eq!(answered(&answer).1, stale);
        // A sender at another broker epoch: the whole request.
        let answer = control
            .alter_partition(&alter((1, epochs[0] + 1), 1, &[leader]), 3)
            .await;
        assert_eq!(answered(&answer).0, ResponseError::StaleBrokerEpoch.code());
        // A follower at an epoch it does not have: ineligible.
        let wrong = (2, epochs[1] + 7);
        let answer = control
            .alter_partition(&alter(leader, 1, &[leader, wrong]), 3)
            .await;
        assert_eq!(answered(&answer).1, ResponseError::IneligibleReplica.code());
        // The follower caught up: back in, epoch 2.
        let answer = control
            .alter_partition(&alter(leader, 1, &[leader, (2, epochs[1])]), 3)
            .await;
        assert_eq!(answered(&answer), (0, 0, vec![1, 2], 2));
        assert_eq!(isr(), vec![1, 2]);
        // Not the leader.
        let answer = control
            .alter_partition(&alter((2, epochs[1]), 2, &[(2, epochs[1])]), 3)
            .await;
        assert_eq!(answered(&answer).1, ResponseError::InvalidRequest.code());
    });
}
