use kafka_protocol::error::ResponseError;

use super::*;
use crate::metadata::view_tests::cluster_view;
use crate::metadata::BrokerLayout;

/// A partition led by broker 2 answers NOT_LEADER_OR_FOLLOWER, naming
/// it from v10 (KIP-951); one led by a fenced broker names none.
#[test]
fn a_partition_led_elsewhere_names_its_leader_from_v10() {
    let view = cluster_view(BrokerLayout::Node);
    let t = view.topic("t").unwrap().clone();
    let refused = |partition| {
        let error = view.lead(&t, partition, NO_LEADER_EPOCH).unwrap_err();
        Slot::Done(Err(Refusal {
            leader: leader_hint(&view, &t, partition, error),
            ..KafkaError::new(error).into()
        }))
    };
    for version in [9, 10, 13] {
        let slots = vec![vec![refused(1), refused(2), refused(3)]];
        let endpoints = node_endpoints(version, &slots, |broker| broker);
        let answers: Vec<PartitionProduceResponse> = slots
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(index, slot)| partition_answer(version, index as i32, slot))
            .collect();
        assert!(answers
            .iter()
            .all(|answer| answer.error_code == ResponseError::NotLeaderOrFollower.code()));
        let leaders: Vec<(i32, i32)> = answers
            .iter()
            .map(|a| (a.current_leader.leader_id.0, a.current_leader.leader_epoch))
            .collect();
        if version >= 10 {
            assert_eq!(leaders, vec![(2, 3), (2, 0), (-1, -1)]);
            assert_eq!(endpoints.len(), 1, "broker 2, once");
            let node = &endpoints[0];
            assert_eq!(
                (node.node_id.0, node.host.as_str(), node.port),
                (2, "node2.example", 19092)
            );
            assert_eq!(node.rack.as_deref(), Some("r2"));
        } else {
            assert_eq!(leaders, vec![(-1, -1); 3]);
            assert!(endpoints.is_empty());
        }
    }
}

/// Kafka's translations of the coordinator's answers, per version.
#[test]
fn verification_errors_are_kafkas_per_produce_version() {
    let code = |version, error| verification_error(version, error).code;
    let abortable = ResponseError::TransactionAbortable;
    assert_eq!(code(10, abortable), ResponseError::InvalidTxnState.code());
    assert_eq!(code(11, abortable), abortable.code());
    assert_eq!(
        code(11, ResponseError::ProducerFenced),
        ResponseError::InvalidProducerEpoch.code()
    );
    let busy = verification_error(9, ResponseError::CoordinatorLoadInProgress);
    assert_eq!(busy.code, ResponseError::NotEnoughReplicas.code());
    assert!(
        busy.message.is_some_and(
            |message| message.ends_with("Underlying error: COORDINATOR_LOAD_IN_PROGRESS")
        )
    );
    assert_eq!(
        code(3, ResponseError::InvalidProducerIdMapping),
        ResponseError::InvalidProducerIdMapping.code()
    );
}
