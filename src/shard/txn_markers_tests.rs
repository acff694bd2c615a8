//! The WriteTxnMarkers a coordinator sends another node: one marker entry
//! per distinct marker with its partitions by topic, and each partition's
//! result read back, one the answer does not name not written.

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};

use super::*;

const COMMIT: TxnMarker = TxnMarker {
    producer_id: 11,
    producer_epoch: 3,
    coordinator_epoch: 5,
    commit: true,
};

fn items() -> Vec<(TopicPartition, TxnMarker)> {
    vec![
        (TopicPartition::new("t", 0), COMMIT),
        (TopicPartition::new("u", 4), COMMIT),
        (TopicPartition::new("t", 2), COMMIT),
    ]
}

#[test]
fn markers_go_as_one_entry_with_their_partitions_by_topic() {
    let request = markers_request(&items());
    assert_eq!(request.markers.len(), 1);
    let marker = &request.markers[0];
    assert_eq!(
        (
            marker.producer_id.0,
            marker.producer_epoch,
            marker.coordinator_epoch,
            marker.transaction_result
        ),
        (11, 3, 5, true)
    );
    let topics: Vec<(&str, Vec<i32>)> = marker
        .topics
        .iter()
        .map(|t| (t.name.0.as_str(), t.partition_indexes.clone()))
        .collect();
    assert_eq!(topics, vec![("t", vec![0, 2]), ("u", vec![4])]);
    let abort = TxnMarker {
        commit: false,
        ..COMMIT
    };
    let mixed = markers_request(&[
        (TopicPartition::new("t", 0), COMMIT),
        (TopicPartition::new("t", 1), abort),
    ]);
    assert_eq!(mixed.markers.len(), 2, "a marker entry per distinct marker");
}

#[test]
fn each_partition_reads_its_own_result() {
    let partition = |index, code| {
        WritableTxnMarkerPartitionResult::default()
            .with_partition_index(index)
            .with_error_code(code)
    };
    let not_leader = ResponseError::NotLeaderOrFollower.code();
    let response =
        WriteTxnMarkersResponse::default().with_markers(vec![WritableTxnMarkerResult::default()
            .with_producer_id(ProducerId(11))
            .with_topics(vec![WritableTxnMarkerTopicResult::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![partition(0, 0), partition(2, not_leader)])])]);
    let answers = markers_answers(&items(), &response);
    assert_eq!(answers[0], Ok(()));
    assert_eq!(
        answers[1],
        Err(KafkaError::new(ResponseError::UnknownServerError)),
        "u-4 is not named: not written"
    );
    assert_eq!(answers[2].as_ref().map_err(|e| e.code), Err(not_leader));
}
