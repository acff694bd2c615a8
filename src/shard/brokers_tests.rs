//! The active controller's brokers over a real lone-voter quorum on a
//! glommio executor, called in process: two brokers register and are
//! unfenced, one that falls silent is fenced by the timer with its
//! partition left leaderless, it comes back and leads again, and the other
//! stops with a controlled shutdown.

use std::time::{Duration, Instant};

use kafka_protocol::messages::broker_registration_request::Feature;
use kafka_protocol::messages::{BrokerHeartbeatRequest, BrokerId, BrokerRegistrationRequest};
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

#[test]
fn brokers_register_are_fenced_when_silent_return_and_shut_down_under_control() {
    block_on(|| async {
        let dir = tempfile::tempdir().expect("dir");
        let settings = QuorumSettings {
            node_id: 1,
            voters: vec![1],
            election_timeout_ms: 1000,
            snapshot_bytes: u64::MAX,
        };
        let node = QuorumNode::start_blocking(dir.path(), settings.clone()).expect("quorum");
        let start = QuorumStart {
            node,
            settings,
            network: None,
        };
        let quorum = quorum::start(start, dir.path().to_path_buf(), |_| {
            ControllerService::none()
        })
        .expect("start");
        quorum
            .propose(Box::new(|image| {
                let mut records = table::bootstrap_records(image);
                records.push(MetadataRecord::Topic(TopicRecord {
                    name: "t".into(),
                    topic_id: TOPIC,
                }));
                records.extend([partition(0, 1), partition(1, 2)]);
                records
            }))
            .await
            .expect("topic");
        // Not sole: the expiry timer runs.
        let control =
            BrokerControl::start(quorum.clone(), CLUSTER.into(), SESSION_TIMEOUT_MS, false);
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
