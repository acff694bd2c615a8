//! OffsetCommit and OffsetFetch of a group round: what a commit sends and
//! what a fetch at each version should return for it.

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetFetchRequest};

use crate::broker::Conn;
use crate::groups::{group_id, NO_LEADER_EPOCH};
use crate::wire::{name, str_bytes, NONE};

/// (topic, partition, error code) of every partition of the per-topic
/// answers of OffsetCommit or OffsetDelete.
macro_rules! partition_errors {
    ($topics:expr) => {
        $topics
            .iter()
            .flat_map(|answer| {
                answer.partitions.iter().map(move |partition| {
                    (
                        answer.name.0.to_string(),
                        partition.partition_index,
                        partition.error_code,
                    )
                })
            })
            .collect::<Vec<(String, i32, i16)>>()
    };
}

/// One offset as a commit sends it and a fetch should return it.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// Commits `offsets` of `topic` as `(generation, member id)`; every
/// partition must be accepted.
pub fn commit(
    conn: &mut Conn,
    version: i16,
    group: &str,
    (generation_id, member_id): (i32, &str),
    topic: &str,
    offsets: &[Committed],
) {
    let partitions = offsets
        .iter()
        .map(|committed| {
            let mut partition = OffsetCommitRequestPartition::default();
            partition.partition_index = committed.partition;
            partition.committed_offset = committed.offset;
            if version >= 6 {
                partition.committed_leader_epoch = committed.leader_epoch;
            }
            partition.committed_metadata = committed.metadata.as_deref().map(str_bytes);
            partition
        })
        .collect();
    let mut commit_topic = OffsetCommitRequestTopic::default();
    commit_topic.name = name(topic);
    commit_topic.partitions = partitions;
    let mut request = OffsetCommitRequest::default();
    request.group_id = group_id(group);
    request.generation_id_or_member_epoch = generation_id;
    request.member_id = str_bytes(member_id);
    request.topics = vec![commit_topic];
    let response = conn.call(&request, version);
    let answers = partition_errors!(response.topics);
    let expected: Vec<(String, i32, i16)> = offsets
        .iter()
        .map(|committed| (topic.to_owned(), committed.partition, NONE))
        .collect();
    assert_eq!(answers, expected, "OffsetCommit v{version} {group}");
}

/// What OffsetFetch reports for a partition without a committed offset.
pub fn no_offset(partition: i32) -> Committed {
    Committed {
        partition,
        offset: -1,
        leader_epoch: NO_LEADER_EPOCH,
        metadata: Some(String::new()),
    }
}

/// What OffsetFetch at `fetch_version` should return for `offsets`
/// committed at `commit_version`: metadata null becomes empty (Kafka's
/// `NO_METADATA`), and the leader epoch shows only if both versions carry
/// it.
pub fn expected_fetch(
    offsets: &[Committed],
    commit_version: i16,
    fetch_version: i16,
) -> Vec<Committed> {
    offsets
        .iter()
        .map(|committed| Committed {
            leader_epoch: if commit_version >= 6 && fetch_version >= 5 {
                committed.leader_epoch
            } else {
                NO_LEADER_EPOCH
            },
            metadata: Some(committed.metadata.clone().unwrap_or_default()),
            ..committed.clone()
        })
        .collect()
}

/// The committed offsets of `partitions` of `topic` (None: of every
/// partition with one, from v2), through the one-group form before v8 and
/// the groups form from v8.
pub fn fetch_offsets(
    conn: &mut Conn,
    version: i16,
    group: &str,
    topic: &str,
    partitions: Option<&[i32]>,
) -> Vec<Committed> {
    let mut request = OffsetFetchRequest::default();
    if version >= 8 {
        let want = partitions.map(|partitions| {
            let mut want = OffsetFetchRequestTopics::default();
            want.name = name(topic);
            want.partition_indexes = partitions.to_vec();
            vec![want]
        });
        let mut one_group = OffsetFetchRequestGroup::default();
        one_group.group_id = group_id(group);
        one_group.topics = want;
        request.groups = vec![one_group];
    } else {
        let want = partitions.map(|partitions| {
            let mut want = OffsetFetchRequestTopic::default();
            want.name = name(topic);
            want.partition_indexes = partitions.to_vec();
            vec![want]
        });
        request.group_id = group_id(group);
        request.topics = want;
    }
    let response = conn.call(&request, version);
    let context = format!("OffsetFetch v{version} {group}");
    // The topics of the one group asked for, in the form of the version.
    macro_rules! committed {
        ($topics:expr) => {
            $topics
                .iter()
                .flat_map(|answer| {
                    assert_eq!(answer.name.0.as_str(), topic, "{context}");
                    answer.partitions.iter().map(|partition| {
                        assert_eq!(partition.error_code, NONE, "{context}");
                        Committed {
                            partition: partition.partition_index,
                            offset: partition.committed_offset,
                            // Decoded as NO_LEADER_EPOCH before v5.
                            leader_epoch: partition.committed_leader_epoch,
                            metadata: partition.metadata.as_deref().map(str::to_owned),
                        }
                    })
                })
                .collect()
        };
    }
    if version >= 8 {
        assert_eq!(response.groups.len(), 1, "{context}");
        let answer = &response.groups[0];
        assert_eq!(answer.group_id.0.as_str(), group, "{context}");
        assert_eq!(answer.error_code, NONE, "{context}");
        committed!(answer.topics)
    } else {
        assert_eq!(response.error_code, NONE, "{context}");
        committed!(response.topics)
    }
}
