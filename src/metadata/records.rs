//! Kafka's metadata records (`metadata/src/main/resources/common/metadata`
//! in Kafka's tree), the entries of the `__cluster_metadata` log and its
//! snapshots, in Kafka's exact framing: the frame version (1), the api key
//! and the record version, each an unsigned varint, then the record's
//! flexible-version body (compact lengths, tagged fields last in tag order,
//! a tagged field written only when it differs from its default).
//!
//! Each record is written at one version, the newest shoal models; reading
//! takes every version up to it. PartitionRecord and PartitionChangeRecord
//! stop at version 1 (directories, KIP-858): version 2 adds eligible leader
//! replicas (KIP-966), which shoal does not model, so it is refused rather
//! than read and half dropped.
//!
//! Invariant: decoding never panics and never allocates more than the input
//! could hold (`protocol::schema::Reader` checks every length).

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use crate::security::acl::Acl;

use super::acls;
use super::quotas::{put_client_quota, read_client_quota, CLIENT_QUOTA_KEY};
pub use super::quotas::{ClientQuotaRecord, QuotaValue};
use super::scram::{
    put_credential, put_removal, read_credential, read_removal, REMOVE_USER_SCRAM_CREDENTIAL_KEY,
    USER_SCRAM_CREDENTIAL_KEY,
};
pub use super::scram::{RemoveUserScramCredentialRecord, UserScramCredentialRecord};
use crate::protocol::schema::{
    put_compact_length, put_compact_string, put_no_tagged_fields, put_unsigned_varint, Reader,
    RecordError,
};

/// `AbstractApiMessageSerde.DEFAULT_FRAME_VERSION`, the only one Kafka reads.
pub const FRAME_VERSION: u32 = 1;

/// The tag of shoal's replica shards in PartitionRecord: far above the
/// tags Kafka numbers from 0 up (2 at version 2), so that a later Kafka
/// field never takes it.
pub const SHARDS_TAG: u32 = 10_000;

/// Kafka's leader sentinels (`LeaderConstants`).
pub const NO_LEADER: i32 = -1;
pub const NO_LEADER_CHANGE: i32 = -2;

/// `ConfigResource.Type` codes a ConfigRecord may carry.
pub const CONFIG_RESOURCE_TOPIC: i8 = 2;
pub const CONFIG_RESOURCE_BROKER: i8 = 4;
pub const CONFIG_RESOURCE_BROKER_LOGGER: i8 = 8;
pub const CONFIG_RESOURCE_CLIENT_METRICS: i8 = 16;
pub const CONFIG_RESOURCE_GROUP: i8 = 32;

/// Why a metadata record could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecordError {
    Field(RecordError),
    UnknownFrameVersion(u32),
    UnknownApiKey(u32),
    UnknownVersion {
        api_key: u32,
        version: u32,
    },
    /// Bytes after the record's body: a framing error, not padding.
    TrailingBytes(usize),
}

impl From<RecordError> for MetadataRecordError {
    fn from(error: RecordError) -> MetadataRecordError {
        MetadataRecordError::Field(error)
    }
}

impl fmt::Display for MetadataRecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetadataRecordError::Field(error) => write!(f, "{error}"),
            MetadataRecordError::UnknownFrameVersion(version) => {
                write!(f, "unknown metadata frame version {version}")
            }
            MetadataRecordError::UnknownApiKey(key) => write!(f, "unknown metadata record {key}"),
            MetadataRecordError::UnknownVersion { api_key, version } => {
                write!(f, "unknown version {version} of metadata record {api_key}")
            }
            MetadataRecordError::TrailingBytes(len) => {
                write!(f, "{len} bytes after a metadata record")
            }
        }
    }
}

impl std::error::Error for MetadataRecordError {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerEndpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub security_protocol: i16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerFeature {
    pub name: String,
    pub min_supported_version: i16,
    pub max_supported_version: i16,
}

/// RegisterBrokerRecord (api key 0), written at version 3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterBrokerRecord {
    pub broker_id: i32,
    pub is_migrating_zk_broker: bool,
    pub incarnation_id: Uuid,
    pub broker_epoch: i64,
    pub end_points: Vec<BrokerEndpoint>,
    pub features: Vec<BrokerFeature>,
    pub rack: Option<String>,
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
    pub log_dirs: Vec<Uuid>,
}

/// TopicRecord (api key 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRecord {
    pub name: String,
    pub topic_id: Uuid,
}

/// PartitionRecord (api key 3), written at version 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRecord {
    pub partition_id: i32,
    pub topic_id: Uuid,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub removing_replicas: Vec<i32>,
    pub adding_replicas: Vec<i32>,
    pub leader: i32,
    /// 1 while recovering from an unclean election, else 0 (tagged).
    pub leader_recovery_state: i8,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// The log directory of each replica, in `replicas` order; empty at
    /// version 0.
    pub directories: Vec<Uuid>,
    /// shoal's own field: the shard of each replica's broker that owns the
    /// partition, in `replicas` order (tag `SHARDS_TAG`; Kafka's decoders
    /// keep an unknown tagged field aside). Empty: the placement rule.
    pub shards: Vec<i32>,
}

/// ConfigRecord (api key 4): `value` None deletes the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRecord {
    pub resource_type: i8,
    pub resource_name: String,
    pub name: String,
    pub value: Option<String>,
}

/// PartitionChangeRecord (api key 5), written at version 1. Every field
/// but the ids is tagged; None (or `NO_LEADER_CHANGE`, or -1 for the
/// recovery state) means unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionChangeRecord {
    pub partition_id: i32,
    pub topic_id: Uuid,
    pub isr: Option<Vec<i32>>,
    pub leader: i32,
    pub replicas: Option<Vec<i32>>,
    pub removing_replicas: Option<Vec<i32>>,
    pub adding_replicas: Option<Vec<i32>>,
    pub leader_recovery_state: i8,
    pub directories: Option<Vec<Uuid>>,
}

impl PartitionChangeRecord {
    /// A change of nothing yet, to set fields on.
    pub fn new(topic_id: Uuid, partition_id: i32) -> PartitionChangeRecord {
        PartitionChangeRecord {
            partition_id,
            topic_id,
            isr: None,
            leader: NO_LEADER_CHANGE,
            replicas: None,
            removing_replicas: None,
            adding_replicas: None,
            leader_recovery_state: -1,
            directories: None,
        }
    }
}

/// FenceBrokerRecord (api key 7) and UnfenceBrokerRecord (api key 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerEpochRecord {
    pub id: i32,
    pub epoch: i64,
}

/// FeatureLevelRecord (api key 12): level 0 removes the feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureLevelRecord {
    pub name: String,
    pub feature_level: i16,
}

/// ProducerIdsRecord (api key 15): the end of the last producer id block
/// handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerIdsRecord {
    pub broker_id: i32,
    pub broker_epoch: i64,
    pub next_producer_id: i64,
}

/// One entry of the metadata log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    RegisterBroker(RegisterBrokerRecord),
    Topic(TopicRecord),
    Partition(PartitionRecord),
    Config(ConfigRecord),
    PartitionChange(PartitionChangeRecord),
    FenceBroker(BrokerEpochRecord),
    UnfenceBroker(BrokerEpochRecord),
    RemoveTopic {
        topic_id: Uuid,
    },
    FeatureLevel(FeatureLevelRecord),
    ProducerIds(ProducerIdsRecord),
    /// AccessControlEntryRecord (api key 18): an ACL and its id.
    AccessControlEntry {
        id: Uuid,
        acl: Acl,
    },
    /// RemoveAccessControlEntryRecord (api key 19).
    RemoveAccessControlEntry {
        id: Uuid,
    },
    UserScramCredential(UserScramCredentialRecord),
    RemoveUserScramCredential(RemoveUserScramCredentialRecord),
    /// ClientQuotaRecord (api key 14).
    ClientQuota(ClientQuotaRecord),
    NoOp,
}

impl MetadataRecord {
    /// Kafka's api key and the version shoal writes.
    pub fn key_and_version(&self) -> (u32, u32) {
        match self {
            MetadataRecord::RegisterBroker(_) => (0, 3),
            MetadataRecord::Topic(_) => (2, 0),
            MetadataRecord::Partition(_) => (3, 1),
            MetadataRecord::Config(_) => (4, 0),
            MetadataRecord::PartitionChange(_) => (5, 1),
            MetadataRecord::FenceBroker(_) => (7, 0),
            MetadataRecord::UnfenceBroker(_) => (8, 0),
            MetadataRecord::RemoveTopic { .. } => (9, 0),
            MetadataRecord::FeatureLevel(_) => (12, 0),
            MetadataRecord::ProducerIds(_) => (15, 0),
            MetadataRecord::AccessControlEntry { .. } => (18, 0),
            MetadataRecord::RemoveAccessControlEntry { .. } => (19, 0),
            MetadataRecord::UserScramCredential(_) => (USER_SCRAM_CREDENTIAL_KEY, 0),
            MetadataRecord::RemoveUserScramCredential(_) => (REMOVE_USER_SCRAM_CREDENTIAL_KEY, 0),
            MetadataRecord::ClientQuota(_) => (CLIENT_QUOTA_KEY, 0),
            MetadataRecord::NoOp => (20, 0),
        }
    }

    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        let (api_key, version) = self.key_and_version();
        put_unsigned_varint(&mut buf, FRAME_VERSION);
        put_unsigned_varint(&mut buf, api_key);
        put_unsigned_varint(&mut buf, version);
        match self {
            MetadataRecord::RegisterBroker(record) => put_register_broker(&mut buf, record),
            MetadataRecord::Topic(record) => {
                put_compact_string(&mut buf, Some(&record.name));
                buf.put_slice(record.topic_id.as_bytes());
                put_no_tagged_fields(&mut buf);
            }
            MetadataRecord::Partition(record) => put_partition(&mut buf, record),
            MetadataRecord::Config(record) => {
                buf.put_i8(record.resource_type);
                put_compact_string(&mut buf, Some(&record.resource_name));
                put_compact_string(&mut buf, Some(&record.name));
                put_compact_string(&mut buf, record.value.as_deref());
                put_no_tagged_fields(&mut buf);
            }
            MetadataRecord::PartitionChange(record) => put_partition_change(&mut buf, record),
            MetadataRecord::FenceBroker(record) | MetadataRecord::UnfenceBroker(record) => {
                buf.put_i32(record.id);
                buf.put_i64(record.epoch);
                put_no_tagged_fields(&mut buf);
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                buf.put_slice(topic_id.as_bytes());
                put_no_tagged_fields(&mut buf);
            }
            MetadataRecord::FeatureLevel(record) => {
                put_compact_string(&mut buf, Some(&record.name));
                buf.put_i16(record.feature_level);
                put_no_tagged_fields(&mut buf);
            }
            MetadataRecord::ProducerIds(record) => {
                buf.put_i32(record.broker_id);
                buf.put_i64(record.broker_epoch);
                buf.put_i64(record.next_producer_id);
                put_no_tagged_fields(&mut buf);
            }
            MetadataRecord::AccessControlEntry { id, acl } => acls::put_acl(&mut buf, id, acl),
            MetadataRecord::RemoveAccessControlEntry { id } => {
                buf.put_slice(id.as_bytes());
                put_no_tagged_fields(&mut buf);
            }
            MetadataRecord::UserScramCredential(record) => put_credential(&mut buf, record),
            MetadataRecord::RemoveUserScramCredential(record) => put_removal(&mut buf, record),
            MetadataRecord::ClientQuota(record) => put_client_quota(&mut buf, record),
            MetadataRecord::NoOp => put_no_tagged_fields(&mut buf),
        }
        buf.freeze()
    }

    pub fn decode(bytes: &[u8]) -> Result<MetadataRecord, MetadataRecordError> {
        let mut rest = bytes;
        let frame_version = unsigned_varint(&mut rest)?;
        if frame_version != FRAME_VERSION {
            return Err(MetadataRecordError::UnknownFrameVersion(frame_version));
        }
        let api_key = unsigned_varint(&mut rest)?;
        let version = unsigned_varint(&mut rest)?;
        let version_max = match api_key {
            0 => 3,
            2 | 4 | 7 | 8 | 9 | 11 | 12 | 14 | 15 | 18 | 19 | 20 | 22 => 0,
            3 | 5 => 1,
            _ => return Err(MetadataRecordError::UnknownApiKey(api_key)),
        };
        if version > version_max {
            return Err(MetadataRecordError::UnknownVersion { api_key, version });
        }
        let mut reader = Reader::new(rest, true);
        let record = match api_key {
            0 => MetadataRecord::RegisterBroker(read_register_broker(&mut reader, version)?),
            2 => {
                let name = reader.string()?;
                let topic_id = reader.uuid()?;
                reader.tagged_fields()?;
                MetadataRecord::Topic(TopicRecord { name, topic_id })
            }
            3 => MetadataRecord::Partition(read_partition(&mut reader, version)?),
            4 => {
                let resource_type = reader.i8()?;
                let resource_name = reader.string()?;
                let name = reader.string()?;
                let value = reader.nullable_string()?;
                reader.tagged_fields()?;
                MetadataRecord::Config(ConfigRecord {
                    resource_type,
                    resource_name,
                    name,
                    value,
                })
            }
            5 => MetadataRecord::PartitionChange(read_partition_change(&mut reader, version)?),
            7 | 8 => {
                let id = reader.i32()?;
                let epoch = reader.i64()?;
                reader.tagged_fields()?;
                let record = BrokerEpochRecord { id, epoch };
                if api_key == 7 {
                    MetadataRecord::FenceBroker(record)
                } else {
                    MetadataRecord::UnfenceBroker(record)
                }
            }
            9 => {
                let topic_id = reader.uuid()?;
                reader.tagged_fields()?;
                MetadataRecord::RemoveTopic { topic_id }
            }
            12 => {
                let name = reader.string()?;
                let feature_level = reader.i16()?;
                reader.tagged_fields()?;
                MetadataRecord::FeatureLevel(FeatureLevelRecord {
                    name,
                    feature_level,
                })
            }
            15 => {
                let broker_id = reader.i32()?;
                let broker_epoch = reader.i64()?;
                let next_producer_id = reader.i64()?;
                reader.tagged_fields()?;
                MetadataRecord::ProducerIds(ProducerIdsRecord {
                    broker_id,
                    broker_epoch,
                    next_producer_id,
                })
            }
            18 => acls::read_acl(&mut reader)?,
            19 => {
                let id = reader.uuid()?;
                reader.tagged_fields()?;
                MetadataRecord::RemoveAccessControlEntry { id }
            }
            USER_SCRAM_CREDENTIAL_KEY => {
                MetadataRecord::UserScramCredential(read_credential(&mut reader)?)
            }
            REMOVE_USER_SCRAM_CREDENTIAL_KEY => {
                MetadataRecord::RemoveUserScramCredential(read_removal(&mut reader)?)
            }
            CLIENT_QUOTA_KEY => MetadataRecord::ClientQuota(read_client_quota(&mut reader)?),
            _ => {
                reader.tagged_fields()?;
                MetadataRecord::NoOp
            }
        };
        match reader.remaining() {
            0 => Ok(record),
            len => Err(MetadataRecordError::TrailingBytes(len)),
        }
    }
}

/// The frame's unsigned varints, read before the body's reader exists.
fn unsigned_varint(rest: &mut &[u8]) -> Result<u32, RecordError> {
    let mut value = 0u32;
    for shift in (0..35).step_by(7) {
        let (&byte, tail) = rest.split_first().ok_or(RecordError::Truncated)?;
        *rest = tail;
        value |= u32::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(RecordError::Truncated)
}

fn put_i32_array(buf: &mut BytesMut, values: &[i32]) {
    put_compact_length(buf, Some(values.len()));
    for value in values {
        buf.put_i32(*value);
    }
}

fn put_uuid_array(buf: &mut BytesMut, values: &[Uuid]) {
    put_compact_length(buf, Some(values.len()));
    for value in values {
        buf.put_slice(value.as_bytes());
    }
}

fn put_nullable_i32_array(buf: &mut BytesMut, values: Option<&[i32]>) {
    match values {
        Some(values) => put_i32_array(buf, values),
        None => put_compact_length(buf, None),
    }
}

/// A tagged-field section: the count, then each tag, its size and bytes,
/// in ascending tag order (the caller lists them so).
fn put_tagged_fields(buf: &mut BytesMut, fields: &[(u32, BytesMut)]) {
    put_unsigned_varint(buf, fields.len() as u32);
    for (tag, bytes) in fields {
        put_unsigned_varint(buf, *tag);
        put_unsigned_varint(buf, bytes.len() as u32);
        buf.put_slice(bytes);
    }
}

fn tagged(write: impl FnOnce(&mut BytesMut)) -> BytesMut {
    let mut buf = BytesMut::new();
    write(&mut buf);
    buf
}

fn read_i32_array(reader: &mut Reader<'_>) -> Result<Vec<i32>, RecordError> {
    read_nullable_i32_array(reader)?.ok_or(RecordError::NegativeLength)
}

fn read_nullable_i32_array(reader: &mut Reader<'_>) -> Result<Option<Vec<i32>>, RecordError> {
    let Some(len) = reader.nullable_array_len()? else {
        return Ok(None);
    };
    (0..len)
        .map(|_| reader.i32())
        .collect::<Result<_, _>>()
        .map(Some)
}

fn read_uuid_array(reader: &mut Reader<'_>) -> Result<Vec<Uuid>, RecordError> {
    read_nullable_uuid_array(reader)?.ok_or(RecordError::NegativeLength)
}

fn read_nullable_uuid_array(reader: &mut Reader<'_>) -> Result<Option<Vec<Uuid>>, RecordError> {
    let Some(len) = reader.nullable_array_len()? else {
        return Ok(None);
    };
    (0..len)
        .map(|_| reader.uuid())
        .collect::<Result<_, _>>()
        .map(Some)
}

fn read_bool(reader: &mut Reader<'_>) -> Result<bool, RecordError> {
    Ok(reader.i8()? != 0)
}

fn put_register_broker(buf: &mut BytesMut, record: &RegisterBrokerRecord) {
    buf.put_i32(record.broker_id);
    buf.put_u8(u8::from(record.is_migrating_zk_broker));
    buf.put_slice(record.incarnation_id.as_bytes());
    buf.put_i64(record.broker_epoch);
    put_compact_length(buf, Some(record.end_points.len()));
    for endpoint in &record.end_points {
        put_compact_string(buf, Some(&endpoint.name));
        put_compact_string(buf, Some(&endpoint.host));
        buf.put_u16(endpoint.port);
        buf.put_i16(endpoint.security_protocol);
        put_no_tagged_fields(buf);
    }
    put_compact_length(buf, Some(record.features.len()));
    for feature in &record.features {
        put_compact_string(buf, Some(&feature.name));
        buf.put_i16(feature.min_supported_version);
        buf.put_i16(feature.max_supported_version);
        put_no_tagged_fields(buf);
    }
    put_compact_string(buf, record.rack.as_deref());
    buf.put_u8(u8::from(record.fenced));
    buf.put_u8(u8::from(record.in_controlled_shutdown));
    let mut fields = Vec::new();
    if !record.log_dirs.is_empty() {
        fields.push((0, tagged(|buf| put_uuid_array(buf, &record.log_dirs))));
    }
    put_tagged_fields(buf, &fields);
}

fn read_register_broker(
    reader: &mut Reader<'_>,
    version: u32,
) -> Result<RegisterBrokerRecord, RecordError> {
    let broker_id = reader.i32()?;
    let is_migrating_zk_broker = version >= 2 && read_bool(reader)?;
    let incarnation_id = reader.uuid()?;
    let broker_epoch = reader.i64()?;
    let mut end_points = Vec::new();
    for _ in 0..reader.array_len()? {
        end_points.push(BrokerEndpoint {
            name: reader.string()?,
            host: reader.string()?,
            port: reader.i16()? as u16,
            security_protocol: reader.i16()?,
        });
        reader.tagged_fields()?;
    }
    let mut features = Vec::new();
    for _ in 0..reader.array_len()? {
        features.push(BrokerFeature {
            name: reader.string()?,
            min_supported_version: reader.i16()?,
            max_supported_version: reader.i16()?,
        });
        reader.tagged_fields()?;
    }
    let rack = reader.nullable_string()?;
    let fenced = read_bool(reader)?;
    let in_controlled_shutdown = version >= 1 && read_bool(reader)?;
    let mut log_dirs = Vec::new();
    reader.read_tagged_fields(|tag, mut field| {
        if tag == 0 && version >= 3 {
            log_dirs = read_uuid_array(&mut field)?;
        }
        Ok(())
    })?;
    Ok(RegisterBrokerRecord {
        broker_id,
        is_migrating_zk_broker,
        incarnation_id,
        broker_epoch,
        end_points,
        features,
        rack,
        fenced,
        in_controlled_shutdown,
        log_dirs,
    })
}

fn put_partition(buf: &mut BytesMut, record: &PartitionRecord) {
    buf.put_i32(record.partition_id);
    buf.put_slice(record.topic_id.as_bytes());
    put_i32_array(buf, &record.replicas);
    put_i32_array(buf, &record.isr);
    put_i32_array(buf, &record.removing_replicas);
    put_i32_array(buf, &record.adding_replicas);
    buf.put_i32(record.leader);
    buf.put_i32(record.leader_epoch);
    buf.put_i32(record.partition_epoch);
    put_uuid_array(buf, &record.directories);
    let mut fields = Vec::new();
    if record.leader_recovery_state != 0 {
        fields.push((0, tagged(|buf| buf.put_i8(record.leader_recovery_state))));
    }
    if !record.shards.is_empty() {
        fields.push((SHARDS_TAG, tagged(|buf| put_i32_array(buf, &record.shards))));
    }
    put_tagged_fields(buf, &fields);
}

fn read_partition(reader: &mut Reader<'_>, version: u32) -> Result<PartitionRecord, RecordError> {
    let partition_id = reader.i32()?;
    let topic_id = reader.uuid()?;
    let replicas = read_i32_array(reader)?;
    let isr = read_i32_array(reader)?;
    let removing_replicas = read_i32_array(reader)?;
    let adding_replicas = read_i32_array(reader)?;
    let leader = reader.i32()?;
    let leader_epoch = reader.i32()?;
    let partition_epoch = reader.i32()?;
    let directories = if version >= 1 {
        read_uuid_array(reader)?
    } else {
        Vec::new()
    };
    let mut leader_recovery_state = 0;
    let mut shards = Vec::new();
    reader.read_tagged_fields(|tag, mut field| {
        match tag {
            0 => leader_recovery_state = field.i8()?,
            SHARDS_TAG => shards = read_i32_array(&mut field)?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(PartitionRecord {
        partition_id,
        topic_id,
        replicas,
        isr,
        removing_replicas,
        adding_replicas,
        leader,
        leader_recovery_state,
        leader_epoch,
        partition_epoch,
        directories,
        shards,
    })
}

fn put_partition_change(buf: &mut BytesMut, record: &PartitionChangeRecord) {
    buf.put_i32(record.partition_id);
    buf.put_slice(record.topic_id.as_bytes());
    let mut fields = Vec::new();
    if let Some(isr) = &record.isr {
        fields.push((0, tagged(|buf| put_i32_array(buf, isr))));
    }
    if record.leader != NO_LEADER_CHANGE {
        fields.push((1, tagged(|buf| buf.put_i32(record.leader))));
    }
    for (tag, replicas) in [
        (2, &record.replicas),
        (3, &record.removing_replicas),
        (4, &record.adding_replicas),
    ] {
        if replicas.is_some() {
            fields.push((
                tag,
                tagged(|buf| put_nullable_i32_array(buf, replicas.as_deref())),
            ));
        }
    }
    if record.leader_recovery_state != -1 {
        fields.push((5, tagged(|buf| buf.put_i8(record.leader_recovery_state))));
    }
    if let Some(directories) = &record.directories {
        fields.push((8, tagged(|buf| put_uuid_array(buf, directories))));
    }
    put_tagged_fields(buf, &fields);
}

fn read_partition_change(
    reader: &mut Reader<'_>,
    version: u32,
) -> Result<PartitionChangeRecord, RecordError> {
    let mut record = PartitionChangeRecord::new(Uuid::nil(), reader.i32()?);
    record.topic_id = reader.uuid()?;
    reader.read_tagged_fields(|tag, mut field| {
        match tag {
            0 => record.isr = read_nullable_i32_array(&mut field)?,
            1 => record.leader = field.i32()?,
            2 => record.replicas = read_nullable_i32_array(&mut field)?,
            3 => record.removing_replicas = read_nullable_i32_array(&mut field)?,
            4 => record.adding_replicas = read_nullable_i32_array(&mut field)?,
            5 => record.leader_recovery_state = field.i8()?,
            8 if version >= 1 => record.directories = read_nullable_uuid_array(&mut field)?,
            // Tags of later versions or other writers: skipped, as Kafka does.
            _ => {}
        }
        Ok(())
    })?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn uuid(byte: u8) -> Uuid {
        Uuid::from_bytes([byte; 16])
    }

    #[test]
    fn a_topic_record_is_the_bytes_the_schema_gives() {
        // Frame 1, api key 2, version 0; "ab" as a compact string (length
        // 2+1); the 16 bytes of the id; no tagged fields.
        let record = MetadataRecord::Topic(TopicRecord {
            name: "ab".into(),
            topic_id: uuid(7),
        });
        let mut expected = vec![1, 2, 0, 3, b'a', b'b'];
        expected.extend([7; 16]);
        expected.push(0);
        assert_eq!(record.encode()[..], expected[..]);
        assert_eq!(MetadataRecord::decode(&expected), Ok(record));
    }

    #[test]
    fn a_partition_change_carries_only_its_changed_fields_as_tags() {
        // Frame 1, api key 5, version 1; partition 3; the id; two tagged
        // fields in tag order: ISR (tag 0, 9 bytes: compact length 2+1
        // then two int32) and leader (tag 1, 4 bytes).
        let mut change = PartitionChangeRecord::new(uuid(1), 3);
        change.isr = Some(vec![1, 2]);
        change.leader = 2;
        let record = MetadataRecord::PartitionChange(change);
        let mut expected = vec![1, 5, 1, 0, 0, 0, 3];
        expected.extend([1; 16]);
        expected.extend([2, 0, 9, 3, 0, 0, 0, 1, 0, 0, 0, 2, 1, 4, 0, 0, 0, 2]);
        assert_eq!(record.encode()[..], expected[..]);
        assert_eq!(MetadataRecord::decode(&expected), Ok(record));
    }

    #[test]
    fn a_version_0_partition_record_reads_without_directories() {
        let mut bytes = vec![1, 3, 0, 0, 0, 0, 0];
        bytes.extend([9; 16]);
        // Replicas [1], ISR [1], no removing or adding, leader 1, epochs 0
        // and 0, no tagged fields.
        bytes.extend([2, 0, 0, 0, 1, 2, 0, 0, 0, 1, 1, 1]);
        bytes.extend([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let Ok(MetadataRecord::Partition(record)) = MetadataRecord::decode(&bytes) else {
            panic!("not a partition record");
        };
        assert_eq!(record.replicas, vec![1]);
        assert_eq!(record.leader, 1);
        assert!(record.directories.is_empty());
    }

    #[test]
    fn bad_frames_are_errors() {
        assert_eq!(
            MetadataRecord::decode(&[0, 20, 0, 0]),
            Err(MetadataRecordError::UnknownFrameVersion(0))
        );
        assert_eq!(
            MetadataRecord::decode(&[1, 99, 0, 0]),
            Err(MetadataRecordError::UnknownApiKey(99))
        );
        assert_eq!(
            MetadataRecord::decode(&[1, 3, 2, 0]),
            Err(MetadataRecordError::UnknownVersion {
                api_key: 3,
                version: 2
            })
        );
        assert_eq!(
            MetadataRecord::decode(&[1, 20, 0, 0, 5]),
            Err(MetadataRecordError::TrailingBytes(1))
        );
        assert_eq!(
            MetadataRecord::decode(&[1, 2, 0, 200]),
            Err(MetadataRecordError::Field(RecordError::Truncated))
        );
    }

    fn ids() -> impl Strategy<Value = Vec<i32>> {
        prop::collection::vec(-1..5i32, 0..4)
    }

    fn uuids() -> impl Strategy<Value = Vec<Uuid>> {
        prop::collection::vec(any::<u8>().prop_map(uuid), 0..3)
    }

    fn arbitrary_record() -> impl Strategy<Value = MetadataRecord> {
        let name = "[a-z]{0,6}";
        prop_oneof![
            (
                any::<i32>(),
                any::<bool>(),
                any::<i64>(),
                prop::collection::vec((name, name, any::<u16>(), any::<i16>()), 0..3),
                prop::option::of(name),
                any::<(bool, bool)>(),
                uuids()
            )
                .prop_map(
                    |(broker_id, zk, broker_epoch, endpoints, rack, flags, log_dirs)| {
                        MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                            broker_id,
                            is_migrating_zk_broker: zk,
                            incarnation_id: uuid(broker_id as u8),
                            broker_epoch,
                            end_points: endpoints
                                .into_iter()
                                .map(|(name, host, port, security_protocol)| BrokerEndpoint {
                                    name,
                                    host,
                                    port,
                                    security_protocol,
                                })
                                .collect(),
                            features: vec![BrokerFeature {
                                name: "metadata.version".into(),
                                min_supported_version: 7,
                                max_supported_version: 27,
                            }],
                            rack,
                            fenced: flags.0,
                            in_controlled_shutdown: flags.1,
                            log_dirs,
                        })
                    }
                ),
            (name, any::<u8>()).prop_map(|(name, id)| MetadataRecord::Topic(TopicRecord {
                name,
                topic_id: uuid(id)
            })),
            (
                any::<i32>(),
                ids(),
                ids(),
                any::<(i32, i8, i32, i32)>(),
                uuids(),
                ids()
            )
                .prop_map(
                    |(
                        partition_id,
                        replicas,
                        isr,
                        (leader, lrs, leader_epoch, partition_epoch),
                        directories,
                        shards,
                    )| {
                        MetadataRecord::Partition(PartitionRecord {
                            partition_id,
                            topic_id: uuid(1),
                            replicas,
                            isr: isr.clone(),
                            removing_replicas: isr,
                            adding_replicas: Vec::new(),
                            leader,
                            leader_recovery_state: lrs,
                            leader_epoch,
                            partition_epoch,
                            directories,
                            shards,
                        })
                    }
                ),
            (any::<i8>(), name, name, prop::option::of(name)).prop_map(
                |(resource_type, resource_name, name, value)| MetadataRecord::Config(
                    ConfigRecord {
                        resource_type,
                        resource_name,
                        name,
                        value
                    }
                )
            ),
            (
                any::<i32>(),
                prop::option::of(ids()),
                any::<i32>(),
                prop::option::of(ids()),
                any::<i8>(),
                prop::option::of(uuids())
            )
                .prop_map(|(partition_id, isr, leader, replicas, lrs, directories)| {
                    MetadataRecord::PartitionChange(PartitionChangeRecord {
                        isr,
                        leader,
                        replicas: replicas.clone(),
                        adding_replicas: replicas,
                        leader_recovery_state: lrs,
                        directories,
                        ..PartitionChangeRecord::new(uuid(2), partition_id)
                    })
                }),
            any::<(i32, i64)>().prop_map(|(id, epoch)| MetadataRecord::FenceBroker(
                BrokerEpochRecord { id, epoch }
            )),
            any::<(i32, i64)>().prop_map(|(id, epoch)| MetadataRecord::UnfenceBroker(
                BrokerEpochRecord { id, epoch }
            )),
            any::<u8>().prop_map(|id| MetadataRecord::RemoveTopic { topic_id: uuid(id) }),
            (name, any::<i16>()).prop_map(|(name, feature_level)| MetadataRecord::FeatureLevel(
                FeatureLevelRecord {
                    name,
                    feature_level
                }
            )),
            any::<(i32, i64, i64)>().prop_map(|(broker_id, broker_epoch, next_producer_id)| {
                MetadataRecord::ProducerIds(ProducerIdsRecord {
                    broker_id,
                    broker_epoch,
                    next_producer_id,
                })
            }),
            Just(MetadataRecord::NoOp),
        ]
    }

    proptest! {
        #[test]
        fn every_record_round_trips(record in arbitrary_record()) {
            prop_assert_eq!(MetadataRecord::decode(&record.encode()), Ok(record));
        }

        #[test]
        fn any_bytes_decode_to_a_value_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = MetadataRecord::decode(&bytes);
        }
    }
}
