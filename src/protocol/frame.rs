//! Request framing: the size prefix, the request header, and the decoding of
//! the body into the message types of the APIs shoal implements.
//!
//! Invariant: nothing here panics on what a socket delivers. Lengths are
//! checked before anything is read or allocated, and the crate's decoders run
//! under `catch_unwind` as a second line of defense. Every error says which
//! request it belongs to as far as the bytes allowed reading that.
//!
//! The `kafka-protocol` 0.18 decoders size a `Vec` from an array length read
//! off the wire before checking that the bytes are there (kafka-protocol-rs
//! PRs #152, #161 and #200, open), so a small body declaring 2^31 elements
//! asks for hundreds of GB at once. The process allocator (`crate::alloc`)
//! serves such a request with a mapping that commits no memory; the decoder
//! then runs out of bytes after a few elements and fails. What it commits is
//! bounded by the frame. `tests/fuzz_requests.rs` checks both, on mutated
//! copies of real clients' requests.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, DescribeTransactionsRequest, EndTxnRequest,
    ListTransactionsRequest, TxnOffsetCommitRequest,
};
use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};
use kafka_protocol::messages::{
    AlterConfigsRequest, ApiKey, ApiVersionsRequest, ConsumerGroupDescribeRequest,
    ConsumerGroupHeartbeatRequest, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteGroupsRequest, DeleteRecordsRequest, DeleteTopicsRequest, DescribeClusterRequest,
    DescribeConfigsRequest, DescribeGroupsRequest, DescribeLogDirsRequest,
    DescribeProducersRequest, DescribeQuorumRequest, ElectLeadersRequest, FetchRequest,
    FindCoordinatorRequest, HeartbeatRequest, IncrementalAlterConfigsRequest,
    InitProducerIdRequest, JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest,
    ListOffsetsRequest, MetadataRequest, OffsetCommitRequest, OffsetDeleteRequest,
    OffsetFetchRequest, OffsetForLeaderEpochRequest, ProduceRequest, RequestHeader, ResponseHeader,
    SyncGroupRequest, WriteTxnMarkersRequest,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, DescribeTopicPartitionsRequest,
    ListPartitionReassignmentsRequest,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest, SaslAuthenticateRequest,
    SaslHandshakeRequest,
};
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::protocol::versions;

/// Bytes of the big-endian `INT32` that precedes every frame.
pub const SIZE_PREFIX_BYTES: usize = 4;

/// `request_api_key`, `request_api_version` and `correlation_id`: the part of
/// every request header version that comes before anything variable.
const HEADER_FIXED_BYTES: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The size prefix is zero or negative.
    InvalidSize { size_bytes: i32 },
    /// The size prefix is over `socket.request.max.bytes`.
    TooLarge { size_bytes: usize, max_bytes: usize },
    /// The frame ends before the correlation id.
    TooShort { size_bytes: usize },
    /// An API key Kafka does not define.
    UnknownApiKey { api_key: i16, correlation_id: i32 },
    /// The rest of the header (client id, tagged fields) does not decode.
    MalformedHeader {
        api_key: ApiKey,
        correlation_id: i32,
    },
    /// An API or version outside `versions::SUPPORTED_APIS`.
    UnsupportedVersion { api_key: ApiKey, version: i16 },
    /// The body does not decode as the request it claims to be.
    MalformedBody { api_key: ApiKey, version: i16 },
}

impl FrameError {
    /// The correlation id of the refused request, where it could be read.
    pub fn correlation_id(&self) -> Option<i32> {
        match *self {
            FrameError::UnknownApiKey { correlation_id, .. }
            | FrameError::MalformedHeader { correlation_id, .. } => Some(correlation_id),
            _ => None,
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::InvalidSize { size_bytes } => {
                write!(f, "invalid frame size {size_bytes}")
            }
            FrameError::TooLarge {
                size_bytes,
                max_bytes,
            } => write!(
                f,
                "frame of {size_bytes} bytes over socket.request.max.bytes={max_bytes}"
            ),
            FrameError::TooShort { size_bytes } => {
                write!(
                    f,
                    "frame of {size_bytes} bytes too short for a request header"
                )
            }
            FrameError::UnknownApiKey {
                api_key,
                correlation_id,
            } => write!(
                f,
                "unknown API key {api_key} (correlation id {correlation_id})"
            ),
            FrameError::MalformedHeader {
                api_key,
                correlation_id,
            } => write!(
                f,
                "malformed {api_key:?} request header (correlation id {correlation_id})"
            ),
            FrameError::UnsupportedVersion { api_key, version } => {
                write!(f, "unsupported {api_key:?} version {version}")
            }
            FrameError::MalformedBody { api_key, version } => {
                write!(f, "malformed {api_key:?} v{version} request body")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// `body` as a complete response frame to `request` at `version`: size
/// prefix, response header, body. An error says what did not encode.
pub fn encode_response<R: Encodable>(
    request: &RequestHeader,
    version: i16,
    body: &R,
) -> Result<Bytes, String> {
    let api_key = ApiKey::try_from(request.request_api_key)
        .map_err(|()| format!("unknown api key {}", request.request_api_key))?;
    let mut header = ResponseHeader::default();
    header.correlation_id = request.correlation_id;
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, api_key.response_header_version(version))
        .and_then(|()| body.encode(&mut buf, version))
        .map_err(|error| format!("{api_key:?} v{version} does not encode: {error}"))?;
    let size_bytes = i32::try_from(buf.len() - SIZE_PREFIX_BYTES)
        .map_err(|_| format!("{api_key:?} v{version}: {} bytes", buf.len()))?;
    buf[..SIZE_PREFIX_BYTES].copy_from_slice(&size_bytes.to_be_bytes());
    Ok(buf.freeze())
}

/// The length of the frame announced by a size prefix, refused unless it is
/// positive and at most `max_bytes`. Call it before allocating for the frame.
pub fn frame_size(prefix: [u8; SIZE_PREFIX_BYTES], max_bytes: usize) -> Result<usize, FrameError> {
    let size_bytes = i32::from_be_bytes(prefix);
    if size_bytes <= 0 {
        return Err(FrameError::InvalidSize { size_bytes });
    }
    let size_bytes = size_bytes as usize;
    if size_bytes > max_bytes {
        return Err(FrameError::TooLarge {
            size_bytes,
            max_bytes,
        });
    }
    Ok(size_bytes)
}

/// Splits a frame (size prefix already removed) into its header and body.
/// The body shares the frame's memory.
pub fn parse_request_header(frame: &Bytes) -> Result<(RequestHeader, Bytes), FrameError> {
    if frame.len() < HEADER_FIXED_BYTES {
        return Err(FrameError::TooShort {
            size_bytes: frame.len(),
        });
    }
    let mut fixed = &frame[..HEADER_FIXED_BYTES];
    let raw_api_key = fixed.get_i16();
    let api_version = fixed.get_i16();
    let correlation_id = fixed.get_i32();
    let api_key = ApiKey::try_from(raw_api_key).map_err(|()| FrameError::UnknownApiKey {
        api_key: raw_api_key,
        correlation_id,
    })?;
    let malformed = FrameError::MalformedHeader {
        api_key,
        correlation_id,
    };
    let mut rest = frame.clone();
    let decoded = catch_unwind(AssertUnwindSafe(|| {
        let header_version = api_key.request_header_version(api_version);
        RequestHeader::decode(&mut rest, header_version)
    }));
    match decoded {
        Ok(Ok(header)) => Ok((header, rest)),
        Ok(Err(_)) | Err(_) => Err(malformed),
    }
}

/// A decoded request of one of the APIs in `versions::SUPPORTED_APIS`.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Produce(ProduceRequest),
    Fetch(FetchRequest),
    ListOffsets(ListOffsetsRequest),
    OffsetForLeaderEpoch(OffsetForLeaderEpochRequest),
    Metadata(MetadataRequest),
    ApiVersions(ApiVersionsRequest),
    CreateTopics(CreateTopicsRequest),
    DeleteTopics(DeleteTopicsRequest),
    DescribeConfigs(DescribeConfigsRequest),
    DescribeCluster(DescribeClusterRequest),
    DescribeTopicPartitions(DescribeTopicPartitionsRequest),
    AlterPartitionReassignments(AlterPartitionReassignmentsRequest),
    ListPartitionReassignments(ListPartitionReassignmentsRequest),
    DescribeQuorum(DescribeQuorumRequest),
    FindCoordinator(FindCoordinatorRequest),
    JoinGroup(JoinGroupRequest),
    SyncGroup(SyncGroupRequest),
    Heartbeat(HeartbeatRequest),
    LeaveGroup(LeaveGroupRequest),
    OffsetCommit(OffsetCommitRequest),
    OffsetFetch(OffsetFetchRequest),
    TxnOffsetCommit(TxnOffsetCommitRequest),
    DescribeGroups(DescribeGroupsRequest),
    ListGroups(ListGroupsRequest),
    DeleteGroups(DeleteGroupsRequest),
    OffsetDelete(OffsetDeleteRequest),
    ConsumerGroupHeartbeat(ConsumerGroupHeartbeatRequest),
    ConsumerGroupDescribe(ConsumerGroupDescribeRequest),
    DeleteRecords(DeleteRecordsRequest),
    DescribeProducers(DescribeProducersRequest),
    CreatePartitions(CreatePartitionsRequest),
    ElectLeaders(ElectLeadersRequest),
    AlterConfigs(AlterConfigsRequest),
    IncrementalAlterConfigs(IncrementalAlterConfigsRequest),
    DescribeLogDirs(DescribeLogDirsRequest),
    InitProducerId(InitProducerIdRequest),
    WriteTxnMarkers(WriteTxnMarkersRequest),
    AddPartitionsToTxn(AddPartitionsToTxnRequest),
    AddOffsetsToTxn(AddOffsetsToTxnRequest),
    EndTxn(EndTxnRequest),
    DescribeTransactions(DescribeTransactionsRequest),
    ListTransactions(ListTransactionsRequest),
    CreateAcls(CreateAclsRequest),
    DescribeAcls(DescribeAclsRequest),
    DeleteAcls(DeleteAclsRequest),
    SaslHandshake(SaslHandshakeRequest),
    SaslAuthenticate(SaslAuthenticateRequest),
    AlterUserScramCredentials(AlterUserScramCredentialsRequest),
    DescribeUserScramCredentials(DescribeUserScramCredentialsRequest),
    DescribeClientQuotas(DescribeClientQuotasRequest),
    AlterClientQuotas(AlterClientQuotasRequest),
}

impl Request {
    pub fn api_key(&self) -> ApiKey {
        match self {
            Request::Produce(_) => ApiKey::Produce,
            Request::Fetch(_) => ApiKey::Fetch,
            Request::ListOffsets(_) => ApiKey::ListOffsets,
            Request::OffsetForLeaderEpoch(_) => ApiKey::OffsetForLeaderEpoch,
            Request::Metadata(_) => ApiKey::Metadata,
            Request::ApiVersions(_) => ApiKey::ApiVersions,
            Request::CreateTopics(_) => ApiKey::CreateTopics,
            Request::DeleteTopics(_) => ApiKey::DeleteTopics,
            Request::DescribeConfigs(_) => ApiKey::DescribeConfigs,
            Request::DescribeCluster(_) => ApiKey::DescribeCluster,
            Request::DescribeTopicPartitions(_) => ApiKey::DescribeTopicPartitions,
            Request::AlterPartitionReassignments(_) => ApiKey::AlterPartitionReassignments,
            Request::ListPartitionReassignments(_) => ApiKey::ListPartitionReassignments,
            Request::DescribeQuorum(_) => ApiKey::DescribeQuorum,
            Request::FindCoordinator(_) => ApiKey::FindCoordinator,
            Request::JoinGroup(_) => ApiKey::JoinGroup,
            Request::SyncGroup(_) => ApiKey::SyncGroup,
            Request::Heartbeat(_) => ApiKey::Heartbeat,
            Request::LeaveGroup(_) => ApiKey::LeaveGroup,
            Request::OffsetCommit(_) => ApiKey::OffsetCommit,
            Request::OffsetFetch(_) => ApiKey::OffsetFetch,
            Request::TxnOffsetCommit(_) => ApiKey::TxnOffsetCommit,
            Request::DescribeGroups(_) => ApiKey::DescribeGroups,
            Request::ListGroups(_) => ApiKey::ListGroups,
            Request::DeleteGroups(_) => ApiKey::DeleteGroups,
            Request::OffsetDelete(_) => ApiKey::OffsetDelete,
            Request::ConsumerGroupHeartbeat(_) => ApiKey::ConsumerGroupHeartbeat,
            Request::ConsumerGroupDescribe(_) => ApiKey::ConsumerGroupDescribe,
            Request::DeleteRecords(_) => ApiKey::DeleteRecords,
            Request::DescribeProducers(_) => ApiKey::DescribeProducers,
            Request::CreatePartitions(_) => ApiKey::CreatePartitions,
            Request::ElectLeaders(_) => ApiKey::ElectLeaders,
            Request::AlterConfigs(_) => ApiKey::AlterConfigs,
            Request::IncrementalAlterConfigs(_) => ApiKey::IncrementalAlterConfigs,
            Request::DescribeLogDirs(_) => ApiKey::DescribeLogDirs,
            Request::InitProducerId(_) => ApiKey::InitProducerId,
            Request::WriteTxnMarkers(_) => ApiKey::WriteTxnMarkers,
            Request::AddPartitionsToTxn(_) => ApiKey::AddPartitionsToTxn,
            Request::AddOffsetsToTxn(_) => ApiKey::AddOffsetsToTxn,
            Request::EndTxn(_) => ApiKey::EndTxn,
            Request::DescribeTransactions(_) => ApiKey::DescribeTransactions,
            Request::ListTransactions(_) => ApiKey::ListTransactions,
            Request::CreateAcls(_) => ApiKey::CreateAcls,
            Request::DescribeAcls(_) => ApiKey::DescribeAcls,
            Request::DeleteAcls(_) => ApiKey::DeleteAcls,
            Request::SaslHandshake(_) => ApiKey::SaslHandshake,
            Request::SaslAuthenticate(_) => ApiKey::SaslAuthenticate,
            Request::AlterUserScramCredentials(_) => ApiKey::AlterUserScramCredentials,
            Request::DescribeUserScramCredentials(_) => ApiKey::DescribeUserScramCredentials,
            Request::DescribeClientQuotas(_) => ApiKey::DescribeClientQuotas,
            Request::AlterClientQuotas(_) => ApiKey::AlterClientQuotas,
        }
    }
}

/// Decodes a request body. Refuses versions outside `SUPPORTED_APIS`; record
/// data stays in slices of `body`.
pub fn decode_request(
    api_key: ApiKey,
    version: i16,
    body: &mut Bytes,
) -> Result<Request, FrameError> {
    let supported = versions::supported(api_key)
        .is_some_and(|api| api.min_version <= version && version <= api.max_version);
    if !supported {
        return Err(FrameError::UnsupportedVersion { api_key, version });
    }
    let decoded = catch_unwind(AssertUnwindSafe(|| {
        let request = match api_key {
            ApiKey::Produce => Request::Produce(ProduceRequest::decode(body, version)?),
            ApiKey::Fetch => Request::Fetch(FetchRequest::decode(body, version)?),
            ApiKey::ListOffsets => Request::ListOffsets(ListOffsetsRequest::decode(body, version)?),
            ApiKey::OffsetForLeaderEpoch => {
                Request::OffsetForLeaderEpoch(OffsetForLeaderEpochRequest::decode(body, version)?)
            }
            ApiKey::Metadata => Request::Metadata(MetadataRequest::decode(body, version)?),
            ApiKey::ApiVersions => Request::ApiVersions(ApiVersionsRequest::decode(body, version)?),
            ApiKey::CreateTopics => {
                Request::CreateTopics(CreateTopicsRequest::decode(body, version)?)
            }
            ApiKey::DeleteTopics => {
                Request::DeleteTopics(DeleteTopicsRequest::decode(body, version)?)
            }
            ApiKey::DescribeConfigs => {
                Request::DescribeConfigs(DescribeConfigsRequest::decode(body, version)?)
            }
            ApiKey::DescribeCluster => {
                Request::DescribeCluster(DescribeClusterRequest::decode(body, version)?)
            }
            ApiKey::DescribeTopicPartitions => Request::DescribeTopicPartitions(
                DescribeTopicPartitionsRequest::decode(body, version)?,
            ),
            ApiKey::AlterPartitionReassignments => Request::AlterPartitionReassignments(
                AlterPartitionReassignmentsRequest::decode(body, version)?,
            ),
            ApiKey::ListPartitionReassignments => Request::ListPartitionReassignments(
                ListPartitionReassignmentsRequest::decode(body, version)?,
            ),
            ApiKey::DescribeQuorum => {
                Request::DescribeQuorum(DescribeQuorumRequest::decode(body, version)?)
            }
            ApiKey::FindCoordinator => {
                Request::FindCoordinator(FindCoordinatorRequest::decode(body, version)?)
            }
            ApiKey::JoinGroup => Request::JoinGroup(JoinGroupRequest::decode(body, version)?),
            ApiKey::SyncGroup => Request::SyncGroup(SyncGroupRequest::decode(body, version)?),
            ApiKey::Heartbeat => Request::Heartbeat(HeartbeatRequest::decode(body, version)?),
            ApiKey::LeaveGroup => Request::LeaveGroup(LeaveGroupRequest::decode(body, version)?),
            ApiKey::OffsetCommit => {
                Request::OffsetCommit(OffsetCommitRequest::decode(body, version)?)
            }
            ApiKey::OffsetFetch => Request::OffsetFetch(OffsetFetchRequest::decode(body, version)?),
            ApiKey::TxnOffsetCommit => {
                Request::TxnOffsetCommit(TxnOffsetCommitRequest::decode(body, version)?)
            }
            ApiKey::DescribeGroups => {
                Request::DescribeGroups(DescribeGroupsRequest::decode(body, version)?)
            }
            ApiKey::ListGroups => Request::ListGroups(ListGroupsRequest::decode(body, version)?),
            ApiKey::DeleteGroups => {
                Request::DeleteGroups(DeleteGroupsRequest::decode(body, version)?)
            }
            ApiKey::OffsetDelete => {
                Request::OffsetDelete(OffsetDeleteRequest::decode(body, version)?)
            }
            ApiKey::ConsumerGroupHeartbeat => Request::ConsumerGroupHeartbeat(
                ConsumerGroupHeartbeatRequest::decode(body, version)?,
            ),
            ApiKey::ConsumerGroupDescribe => {
                Request::ConsumerGroupDescribe(ConsumerGroupDescribeRequest::decode(body, version)?)
            }
            ApiKey::DeleteRecords => {
                Request::DeleteRecords(DeleteRecordsRequest::decode(body, version)?)
            }
            ApiKey::DescribeProducers => {
                Request::DescribeProducers(DescribeProducersRequest::decode(body, version)?)
            }
            ApiKey::CreatePartitions => {
                Request::CreatePartitions(CreatePartitionsRequest::decode(body, version)?)
            }
            ApiKey::ElectLeaders => {
                Request::ElectLeaders(ElectLeadersRequest::decode(body, version)?)
            }
            ApiKey::AlterConfigs => {
                Request::AlterConfigs(AlterConfigsRequest::decode(body, version)?)
            }
            ApiKey::IncrementalAlterConfigs => Request::IncrementalAlterConfigs(
                IncrementalAlterConfigsRequest::decode(body, version)?,
            ),
            ApiKey::DescribeLogDirs => {
                Request::DescribeLogDirs(DescribeLogDirsRequest::decode(body, version)?)
            }
            ApiKey::InitProducerId => {
                Request::InitProducerId(InitProducerIdRequest::decode(body, version)?)
            }
            ApiKey::WriteTxnMarkers => {
                Request::WriteTxnMarkers(WriteTxnMarkersRequest::decode(body, version)?)
            }
            ApiKey::AddPartitionsToTxn => {
                Request::AddPartitionsToTxn(AddPartitionsToTxnRequest::decode(body, version)?)
            }
            ApiKey::AddOffsetsToTxn => {
                Request::AddOffsetsToTxn(AddOffsetsToTxnRequest::decode(body, version)?)
            }
            ApiKey::EndTxn => Request::EndTxn(EndTxnRequest::decode(body, version)?),
            ApiKey::DescribeTransactions => {
                Request::DescribeTransactions(DescribeTransactionsRequest::decode(body, version)?)
            }
            ApiKey::ListTransactions => {
                Request::ListTransactions(ListTransactionsRequest::decode(body, version)?)
            }
            ApiKey::CreateAcls => Request::CreateAcls(CreateAclsRequest::decode(body, version)?),
            ApiKey::DescribeAcls => {
                Request::DescribeAcls(DescribeAclsRequest::decode(body, version)?)
            }
            ApiKey::DeleteAcls => Request::DeleteAcls(DeleteAclsRequest::decode(body, version)?),
            ApiKey::SaslHandshake => {
                Request::SaslHandshake(SaslHandshakeRequest::decode(body, version)?)
            }
            ApiKey::SaslAuthenticate => {
                Request::SaslAuthenticate(SaslAuthenticateRequest::decode(body, version)?)
            }
            ApiKey::AlterUserScramCredentials => Request::AlterUserScramCredentials(
                AlterUserScramCredentialsRequest::decode(body, version)?,
            ),
            ApiKey::DescribeUserScramCredentials => Request::DescribeUserScramCredentials(
                DescribeUserScramCredentialsRequest::decode(body, version)?,
            ),
            ApiKey::DescribeClientQuotas => {
                Request::DescribeClientQuotas(DescribeClientQuotasRequest::decode(body, version)?)
            }
            ApiKey::AlterClientQuotas => {
                Request::AlterClientQuotas(AlterClientQuotasRequest::decode(body, version)?)
            }
            _ => anyhow::bail!("{api_key:?} is in SUPPORTED_APIS but not in Request"),
        };
        Ok(request)
    }));
    match decoded {
        Ok(Ok(request)) => Ok(request),
        Ok(Err(_)) | Err(_) => Err(FrameError::MalformedBody { api_key, version }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use proptest::prelude::*;

    /// A frame as a client sends it, size prefix excluded.
    fn client_frame(api_key: ApiKey, version: i16, correlation_id: i32, body: &[u8]) -> Bytes {
        let mut frame = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("rdkafka")))
            .encode(&mut frame, api_key.request_header_version(version))
            .unwrap();
        frame.extend_from_slice(body);
        frame.freeze()
    }

    fn body(message: &impl Encodable, version: i16) -> Vec<u8> {
        let mut body = BytesMut::new();
        message.encode(&mut body, version).unwrap();
        body.to_vec()
    }

    /// A valid frame of every supported API at every supported version.
    fn valid_frames() -> Vec<Bytes> {
        let mut frames = Vec::new();
        for api in versions::SUPPORTED_APIS {
            for version in api.min_version..=api.max_version {
                let body = crate::protocol::roundtrip::round_trip_api(api.key, version);
                frames.push(client_frame(api.key, version, 11, &body));
            }
        }
        frames
    }

    #[test]
    fn size_prefix_limits() {
        let max = 104_857_600;
        assert_eq!(frame_size(100i32.to_be_bytes(), max), Ok(100));
        assert_eq!(frame_size((max as i32).to_be_bytes(), max), Ok(max));
        assert_eq!(
            frame_size((max as i32 + 1).to_be_bytes(), max),
            Err(FrameError::TooLarge {
                size_bytes: max + 1,
                max_bytes: max
            })
        );
        assert_eq!(
            frame_size(0i32.to_be_bytes(), max),
            Err(FrameError::InvalidSize { size_bytes: 0 })
        );
        assert_eq!(
            frame_size((-1i32).to_be_bytes(), max),
            Err(FrameError::InvalidSize { size_bytes: -1 })
        );
        assert!(frame_size(i32::MAX.to_be_bytes(), max).is_err());
    }

    #[test]
    fn header_and_body_split() {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("shoal-test"))
            .with_client_software_version(StrBytes::from_static_str("1.0"));
        let frame = client_frame(ApiKey::ApiVersions, 3, 42, &body(&request, 3));
        let (header, mut body) = parse_request_header(&frame).unwrap();
        assert_eq!(header.request_api_key, ApiKey::ApiVersions as i16);
        assert_eq!(header.request_api_version, 3);
        assert_eq!(header.correlation_id, 42);
        assert_eq!(header.client_id.as_deref(), Some("rdkafka"));
        let decoded = decode_request(ApiKey::ApiVersions, 3, &mut body).unwrap();
        assert_eq!(decoded, Request::ApiVersions(request));
        assert!(body.is_empty());
    }

    #[test]
    fn body_shares_the_frame_memory() {
        let frame = client_frame(
            ApiKey::Metadata,
            12,
            1,
            &body(&MetadataRequest::default(), 12),
        );
        let (_, body) = parse_request_header(&frame).unwrap();
        let frame_range = frame.as_ptr_range();
        assert!(frame_range.contains(&body.as_ptr()) || body.is_empty());
        assert_eq!(body.as_ptr_range().end, frame_range.end);
    }

    #[test]
    fn unknown_api_key_keeps_the_correlation_id() {
        let mut frame = BytesMut::new();
        frame.extend_from_slice(&i16::MAX.to_be_bytes());
        frame.extend_from_slice(&0i16.to_be_bytes());
        frame.extend_from_slice(&77i32.to_be_bytes());
        let err = parse_request_header(&frame.freeze()).unwrap_err();
        assert_eq!(
            err,
            FrameError::UnknownApiKey {
                api_key: i16::MAX,
                correlation_id: 77
            }
        );
        assert_eq!(err.correlation_id(), Some(77));
    }

    /// KIP-511: a client newer than the broker sends ApiVersions at a version
    /// the broker does not know; the broker still reads the header and
    /// answers with its own list.
    #[test]
    fn future_api_versions_request_reads_its_header() {
        let mut frame = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(ApiKey::ApiVersions as i16)
            .with_request_api_version(9)
            .with_correlation_id(5)
            .encode(&mut frame, 2)
            .unwrap();
        frame.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let (header, mut body) = parse_request_header(&frame.freeze()).unwrap();
        assert_eq!(header.correlation_id, 5);
        assert_eq!(
            decode_request(ApiKey::ApiVersions, 9, &mut body),
            Err(FrameError::UnsupportedVersion {
                api_key: ApiKey::ApiVersions,
                version: 9
            })
        );
    }

    #[test]
    fn short_and_malformed_headers() {
        for len in 0..HEADER_FIXED_BYTES {
            assert_eq!(
                parse_request_header(&Bytes::from(vec![0; len])),
                Err(FrameError::TooShort { size_bytes: len })
            );
        }
        // Metadata v1, correlation id 9, client id declared 300 bytes long.
        let frame = Bytes::from_static(&[0, 3, 0, 1, 0, 0, 0, 9, 1, 44, b'x']);
        let err = parse_request_header(&frame).unwrap_err();
        assert_eq!(err.correlation_id(), Some(9));
    }

    #[test]
    fn unimplemented_apis_are_refused() {
        let mut body = Bytes::new();
        assert_eq!(
            decode_request(ApiKey::CreateDelegationToken, 1, &mut body),
            Err(FrameError::UnsupportedVersion {
                api_key: ApiKey::CreateDelegationToken,
                version: 1
            })
        );
        assert!(decode_request(ApiKey::Produce, 2, &mut body).is_err());
        assert!(decode_request(ApiKey::Fetch, 19, &mut body).is_err());
        assert!(decode_request(ApiKey::OffsetCommit, 1, &mut body).is_err());
        assert!(decode_request(ApiKey::OffsetDelete, 1, &mut body).is_err());
    }

    /// Every prefix of every valid frame is refused or decoded, never a panic.
    #[test]
    fn every_truncation_of_every_frame_is_refused() {
        for frame in valid_frames() {
            let (header, mut body) = parse_request_header(&frame).unwrap();
            let api_key = ApiKey::try_from(header.request_api_key).unwrap();
            let version = header.request_api_version;
            decode_request(api_key, version, &mut body).unwrap();
            for cut in 0..frame.len() {
                if let Ok((_, mut body)) = parse_request_header(&frame.slice(..cut)) {
                    // Decoding reads every byte of a whole body, so any
                    // prefix of it runs short of some field.
                    let decoded = decode_request(api_key, version, &mut body);
                    assert!(decoded.is_err(), "{api_key:?} v{version} cut at {cut}");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn any_size_prefix_is_judged(prefix in any::<[u8; 4]>(), max in 0usize..=1 << 31) {
            let declared = i32::from_be_bytes(prefix);
            let judged = frame_size(prefix, max);
            prop_assert_eq!(judged.is_ok(), declared > 0 && declared as usize <= max);
        }

        #[test]
        fn random_headers_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_request_header(&Bytes::from(frame));
        }

        #[test]
        fn random_header_of_a_known_api_never_panics(
            api in 0usize..versions::SUPPORTED_APIS.len(),
            version in -1i16..20,
            tail in proptest::collection::vec(any::<u8>(), 0..48),
        ) {
            let mut frame = BytesMut::new();
            frame.extend_from_slice(&(versions::SUPPORTED_APIS[api].key as i16).to_be_bytes());
            frame.extend_from_slice(&version.to_be_bytes());
            frame.extend_from_slice(&3i32.to_be_bytes());
            frame.extend_from_slice(&tail);
            if let Err(err) = parse_request_header(&frame.freeze()) {
                prop_assert_eq!(err.correlation_id(), Some(3));
            }
        }

        #[test]
        fn truncated_frames_never_panic(which in any::<prop::sample::Index>(), cut in any::<prop::sample::Index>()) {
            let frames = valid_frames();
            let frame = which.get(&frames);
            let truncated = frame.slice(..cut.index(frame.len()));
            if let Ok((header, mut body)) = parse_request_header(&truncated) {
                let api_key = ApiKey::try_from(header.request_api_key).unwrap();
                let _ = decode_request(api_key, header.request_api_version, &mut body);
            }
        }
    }
}
