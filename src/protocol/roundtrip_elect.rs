//! Round-trip samples of ElectLeaders (api 43, issue 15): a populated
//! request and response per version, for the table-wide round trip in
//! `roundtrip.rs`.

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

/// The first ElectLeaders version with the election type and the
/// response's top-level error code.
const ELECT_LEADERS_ELECTION_TYPE: i16 = 1;
/// Kafka's UNCLEAN election type.
const UNCLEAN: i8 = 1;

fn topic(value: &'static str) -> TopicName {
    StrBytes::from_static_str(value).into()
}

pub(super) fn elect_leaders_request(version: i16) -> ElectLeadersRequest {
    let request = ElectLeadersRequest::default()
        .with_topic_partitions(Some(vec![elect_leaders_request::TopicPartitions::default(
        )
        .with_topic(topic("orders"))
        .with_partitions(vec![0, 3])]))
        .with_timeout_ms(60_000);
    if version >= ELECT_LEADERS_ELECTION_TYPE {
        request.with_election_type(UNCLEAN)
    } else {
        request
    }
}

pub(super) fn elect_leaders_response(version: i16) -> ElectLeadersResponse {
    let partition = |id, error_code, message: Option<&'static str>| {
        elect_leaders_response::PartitionResult::default()
            .with_partition_id(id)
            .with_error_code(error_code)
            .with_error_message(message.map(StrBytes::from_static_str))
    };
    let response = ElectLeadersResponse::default()
        .with_throttle_time_ms(1)
        .with_replica_election_results(vec![
            elect_leaders_response::ReplicaElectionResult::default()
                .with_topic(topic("orders"))
                .with_partition_result(vec![
                    partition(0, 0, None),
                    partition(3, 80, Some("preferred leader not available")),
                ]),
        ]);
    if version >= ELECT_LEADERS_ELECTION_TYPE {
        response.with_error_code(0)
    } else {
        response
    }
}
