//! The `__consumer_offsets` record encodings, byte for byte as Kafka writes
//! them (group-coordinator/src/main/resources/common/message/*.json): every
//! key and value starts with its int16 schema version.
//!
//! Written: OffsetCommitKey v1 / OffsetCommitValue v3 and GroupMetadataKey v2
//! / GroupMetadataValue v3, the versions Kafka 2.3+ writes. Read: every
//! version of those four, including the flexible v4 values newer Kafka
//! writes, so a log Kafka wrote loads too. The keys of the KIP-848 records
//! (versions 3 to 8) are here too; their values are in `consumer_records.rs`.
//! Later key versions (share and streams groups) decode as `Unsupported` and
//! are skipped. The framing (versions, strings, tagged fields) is
//! `protocol::schema`'s.

use bytes::{BufMut, Bytes, BytesMut};

use super::types::CommittedOffset;
pub use crate::protocol::schema::RecordError;
use crate::protocol::schema::{put_nullable_string, put_string, Reader};

pub const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
pub const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
pub const GROUP_METADATA_KEY_VERSION: i16 = 2;
pub const GROUP_METADATA_VALUE_VERSION: i16 = 3;
/// The first flexible (compact strings, tagged fields) value version, and
/// the last Kafka has written of OffsetCommitValue and GroupMetadataValue.
const FIRST_FLEXIBLE_VALUE_VERSION: i16 = 4;
const VALUE_VERSION_MAX: i16 = FIRST_FLEXIBLE_VALUE_VERSION;

/// What a `__consumer_offsets` key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
    /// KIP-848 records of consumer group `group`, by key version.
    Consumer {
        group: String,
        kind: ConsumerRecordKind,
    },
    /// A record type this coordinator does not read (share, streams groups).
    Unsupported(i16),
}

/// The KIP-848 consumer group records; the discriminant is the key version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerRecordKind {
    /// ConsumerGroupMetadata: the group epoch.
    GroupEpoch,
    /// ConsumerGroupPartitionMetadata: the subscribed topics' metadata.
    PartitionMetadata,
    /// ConsumerGroupMemberMetadata: a member's subscription and client.
    MemberMetadata(String),
    /// ConsumerGroupTargetAssignmentMetadata: the target assignment's epoch.
    TargetEpoch,
    /// ConsumerGroupTargetAssignmentMember: a member's target partitions.
    TargetMember(String),
    /// ConsumerGroupCurrentMemberAssignment: a member's epoch and partitions.
    CurrentAssignment(String),
}

impl ConsumerRecordKind {
    fn key_version(&self) -> i16 {
        match self {
            ConsumerRecordKind::GroupEpoch => 3,
            ConsumerRecordKind::PartitionMetadata => 4,
            ConsumerRecordKind::MemberMetadata(_) => 5,
            ConsumerRecordKind::TargetEpoch => 6,
            ConsumerRecordKind::TargetMember(_) => 7,
            ConsumerRecordKind::CurrentAssignment(_) => 8,
        }
    }

    fn member_id(&self) -> Option<&str> {
        match self {
            ConsumerRecordKind::MemberMetadata(member)
            | ConsumerRecordKind::TargetMember(member)
            | ConsumerRecordKind::CurrentAssignment(member) => Some(member),
            _ => None,
        }
    }
}

/// GroupMetadataValue: a group's membership after a completed rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    /// Empty for a group that only holds offsets.
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// -1 when unknown (v0, v1).
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// -1 when unknown (v0).
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

pub fn encode_offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut buf = BytesMut::with_capacity(8 + group.len() + topic.len());
    buf.put_i16(OFFSET_COMMIT_KEY_VERSION);
    put_string(&mut buf, group);
    put_string(&mut buf, topic);
    buf.put_i32(partition);
    buf.freeze()
}

pub fn encode_group_key(group: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(4 + group.len());
    buf.put_i16(GROUP_METADATA_KEY_VERSION);
    put_string(&mut buf, group);
    buf.freeze()
}

/// The key of a KIP-848 record: its version, the group id, and the member
/// id for the per-member kinds.
pub fn encode_consumer_key(group: &str, kind: &ConsumerRecordKind) -> Bytes {
    let member = kind.member_id();
    let mut buf = BytesMut::with_capacity(6 + group.len() + member.map_or(0, str::len));
    buf.put_i16(kind.key_version());
    put_string(&mut buf, group);
    if let Some(member) = member {
        put_string(&mut buf, member);
    }
    buf.freeze()
}

pub fn encode_offset_value(committed: &CommittedOffset) -> Bytes {
    let mut buf = BytesMut::with_capacity(24 + committed.metadata.len());
    buf.put_i16(OFFSET_COMMIT_VALUE_VERSION);
    buf.put_i64(committed.offset);
    buf.put_i32(committed.leader_epoch);
    put_string(&mut buf, &committed.metadata);
    buf.put_i64(committed.commit_timestamp_ms);
    buf.freeze()
}

pub fn encode_group_value(group: &GroupValue) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(GROUP_METADATA_VALUE_VERSION);
    put_string(&mut buf, &group.protocol_type);
    buf.put_i32(group.generation);
    put_nullable_string(&mut buf, group.protocol.as_deref());
    put_nullable_string(&mut buf, group.leader.as_deref());
    buf.put_i64(group.current_state_timestamp_ms);
    buf.put_i32(group.members.len() as i32);
    for member in &group.members {
        put_string(&mut buf, &member.member_id);
        put_nullable_string(&mut buf, member.group_instance_id.as_deref());
        put_string(&mut buf, &member.client_id);
        put_string(&mut buf, &member.client_host);
        buf.put_i32(member.rebalance_timeout_ms);
        buf.put_i32(member.session_timeout_ms);
        buf.put_i32(member.subscription.len() as i32);
        buf.put_slice(&member.subscription);
        buf.put_i32(member.assignment.len() as i32);
        buf.put_slice(&member.assignment);
    }
    buf.freeze()
}

pub fn decode_key(key: &[u8]) -> Result<RecordKey, RecordError> {
    let mut reader = Reader::new(key, false);
    match reader.i16()? {
        0 | 1 => Ok(RecordKey::Offset {
            group: reader.string()?,
            topic: reader.string()?,
            partition: reader.i32()?,
        }),
        2 => Ok(RecordKey::Group {
            group: reader.string()?,
        }),
        version @ 3..=8 => {
            let group = reader.string()?;
            let kind = match version {
                3 => ConsumerRecordKind::GroupEpoch,
                4 => ConsumerRecordKind::PartitionMetadata,
                5 => ConsumerRecordKind::MemberMetadata(reader.string()?),
                6 => ConsumerRecordKind::TargetEpoch,
                7 => ConsumerRecordKind::TargetMember(reader.string()?),
                _ => ConsumerRecordKind::CurrentAssignment(reader.string()?),
            };
            Ok(RecordKey::Consumer { group, kind })
        }
        version if version > 8 => Ok(RecordKey::Unsupported(version)),
        version => Err(RecordError::UnknownKeyVersion(version)),
    }
}

pub fn decode_offset_value(value: &[u8]) -> Result<CommittedOffset, RecordError> {
    let (mut reader, version) =
        Reader::value(value, FIRST_FLEXIBLE_VALUE_VERSION, VALUE_VERSION_MAX)?;
    let offset = reader.i64()?;
    let leader_epoch = if version >= 3 { reader.i32()? } else { -1 };
    let metadata = reader.string()?;
    let commit_timestamp_ms = reader.i64()?;
    if version == 1 {
        // expireTimestamp: per-commit retention, superseded by KIP-211.
        reader.i64()?;
    }
    reader.tagged_fields()?;
    Ok(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

pub fn decode_group_value(value: &[u8]) -> Result<GroupValue, RecordError> {
    let (mut reader, version) =
        Reader::value(value, FIRST_FLEXIBLE_VALUE_VERSION, VALUE_VERSION_MAX)?;
    let protocol_type = reader.string()?;
    let generation = reader.i32()?;
    let protocol = reader.nullable_string()?;
    let leader = reader.nullable_string()?;
    let current_state_timestamp_ms = if version >= 2 { reader.i64()? } else { -1 };
    let count = reader.array_len()?;
    let mut members = Vec::with_capacity(count.min(value.len()));
    for _ in 0..count {
        let member_id = reader.string()?;
        let group_instance_id = if version >= 3 {
            reader.nullable_string()?
        } else {
            None
        };
        let client_id = reader.string()?;
        let client_host = reader.string()?;
        let rebalance_timeout_ms = if version >= 1 { reader.i32()? } else { -1 };
        let session_timeout_ms = reader.i32()?;
        let subscription = reader.bytes()?;
        let assignment = reader.bytes()?;
        reader.tagged_fields()?;
        members.push(MemberValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    reader.tagged_fields()?;
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp_ms,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_records_match_kafkas_bytes() {
        let key = encode_offset_key("g", "t", 7);
        assert_eq!(
            &key[..],
            &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 7],
            "version 1, group, topic, partition"
        );
        let committed = CommittedOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: "m".into(),
            commit_timestamp_ms: 1000,
        };
        let value = encode_offset_value(&committed);
        let mut expected = vec![0, 3];
        expected.extend_from_slice(&42i64.to_be_bytes());
        expected.extend_from_slice(&3i32.to_be_bytes());
        expected.extend_from_slice(&[0, 1, b'm']);
        expected.extend_from_slice(&1000i64.to_be_bytes());
        assert_eq!(&value[..], &expected[..]);
        assert_eq!(decode_offset_value(&value), Ok(committed));
        assert_eq!(
            decode_key(&key),
            Ok(RecordKey::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 7
            })
        );
    }

    #[test]
    fn older_offset_values_decode() {
        // v1: offset, metadata, commitTimestamp, expireTimestamp.
        let mut v1 = vec![0, 1];
        v1.extend_from_slice(&5i64.to_be_bytes());
        v1.extend_from_slice(&[0, 0]);
        v1.extend_from_slice(&9i64.to_be_bytes());
        v1.extend_from_slice(&(-1i64).to_be_bytes());
        let decoded = decode_offset_value(&v1).unwrap();
        assert_eq!((decoded.offset, decoded.leader_epoch), (5, -1));
        assert_eq!(decoded.commit_timestamp_ms, 9);
        // v4: flexible, compact metadata string, empty tagged fields.
        let mut v4 = vec![0, 4];
        v4.extend_from_slice(&6i64.to_be_bytes());
        v4.extend_from_slice(&2i32.to_be_bytes());
        v4.extend_from_slice(&[3, b'h', b'i']);
        v4.extend_from_slice(&11i64.to_be_bytes());
        v4.push(0);
        let decoded = decode_offset_value(&v4).unwrap();
        assert_eq!(
            (
                decoded.offset,
                decoded.leader_epoch,
                decoded.metadata.as_str()
            ),
            (6, 2, "hi")
        );
    }

    #[test]
    fn group_values_round_trip() {
        let group = GroupValue {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("a-1".into()),
            current_state_timestamp_ms: 77,
            members: vec![MemberValue {
                member_id: "a-1".into(),
                group_instance_id: Some("i".into()),
                client_id: "a".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let bytes = encode_group_value(&group);
        assert_eq!(&bytes[..2], &[0, 3]);
        assert_eq!(decode_group_value(&bytes), Ok(group));
        assert_eq!(
            decode_key(&encode_group_key("g")),
            Ok(RecordKey::Group { group: "g".into() })
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(decode_key(&[0]), Err(RecordError::Truncated));
        assert_eq!(
            decode_key(&[0xff, 0xff]),
            Err(RecordError::UnknownKeyVersion(-1))
        );
        assert_eq!(decode_key(&[0, 3, 1, 2]), Err(RecordError::Truncated));
        assert_eq!(decode_key(&[0, 9, 1, 2]), Ok(RecordKey::Unsupported(9)));
        assert_eq!(
            decode_offset_value(&[0, 9]),
            Err(RecordError::UnknownValueVersion(9))
        );
        assert_eq!(
            decode_group_value(&[0, 3, 0xff, 0xfe]),
            Err(RecordError::NegativeLength)
        );
        let mut huge_count = vec![0, 3, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        huge_count.extend_from_slice(&0i64.to_be_bytes());
        huge_count.extend_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(decode_group_value(&huge_count), Err(RecordError::Truncated));
    }
}
